//! Which hook and which programs each interface gets: `--hook auto` picks TC on veth (XDP
//! costs 8–20 % there, as generic XDP converts every packet; Cilium chooses TC too) and on
//! devices without an Ethernet header, XDP elsewhere; devices without an Ethernet header
//! (tun, ipip, gre, wireguard: ARPHRD other than 1) get the programs that start at IP.

use std::path::Path;

use anyhow::{Context as _, Result};

use crate::loader::Hook;

/// `ARPHRD_ETHER`: the link type of Ethernet devices (veth, bridges, NICs, VXLAN, tap).
pub const ARPHRD_ETHER: u16 = 1;

/// The hook chosen for one interface, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HookChoice {
    /// `Xdp` or `Tc`.
    pub hook: Hook,
    /// True when the interface has no Ethernet header: the `*_ip` programs.
    pub l3: bool,
    /// Why, in a few words, for the "hook" line.
    pub reason: String,
}

/// What the kernel says about an interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkInfo {
    /// `/sys/class/net/<if>/type`.
    pub arphrd: u16,
    /// The driver (`ethtool -i`), when the device has one to report.
    pub driver: Option<String>,
}

/// Reads the link type and driver of `iface`.
pub fn link_info(iface: &str) -> Result<LinkInfo> {
    let path = Path::new("/sys/class/net").join(iface).join("type");
    let arphrd = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?
        .trim()
        .parse()
        .with_context(|| format!("{} is not a number", path.display()))?;
    Ok(LinkInfo {
        arphrd,
        driver: driver_of(iface),
    })
}

/// The hook for an interface with `link`, given the requested one (`Xdp`, `Tc` or `Auto`;
/// `blocking` when `--block` needs XDP).
pub fn choose(requested: Hook, link: &LinkInfo, blocking: bool) -> HookChoice {
    let l3 = link.arphrd != ARPHRD_ETHER;
    let kind = if l3 {
        format!("no Ethernet header (link type {})", link.arphrd)
    } else {
        format!("{} driver", link.driver.as_deref().unwrap_or("unknown"))
    };
    let (hook, why) = match requested {
        Hook::Xdp => (Hook::Xdp, "asked for (--hook xdp)".to_string()),
        Hook::Tc => (Hook::Tc, "asked for (--hook tc)".to_string()),
        _ if blocking => (Hook::Xdp, "--block drops packets in XDP".to_string()),
        _ if link.driver.as_deref() == Some("veth") => (
            Hook::Tc,
            "veth: XDP costs 8-20 % there (generic conversion per packet) and TC does not"
                .to_string(),
        ),
        _ if l3 => (
            Hook::Tc,
            "an L3 device: TC works on every kind (wireguard, ipip and gre have no native XDP)"
                .to_string(),
        ),
        _ => (Hook::Xdp, "the earliest and cheapest hook".to_string()),
    };
    HookChoice {
        hook,
        l3,
        reason: format!("{kind}: {why}"),
    }
}

/// The driver name `ethtool -i` reports (ETHTOOL_GDRVINFO), if any.
fn driver_of(iface: &str) -> Option<String> {
    const ETHTOOL_GDRVINFO: u32 = 3;
    #[repr(C)]
    struct DrvInfo {
        cmd: u32,
        driver: [u8; 32],
        version: [u8; 32],
        fw_version: [u8; 32],
        bus_info: [u8; 32],
        erom_version: [u8; 32],
        reserved2: [u8; 12],
        n_priv_flags: u32,
        n_stats: u32,
        testinfo_len: u32,
        eedump_len: u32,
        regdump_len: u32,
    }
    let name = iface.as_bytes();
    if name.len() >= libc::IFNAMSIZ {
        return None;
    }
    // SAFETY: zeroed POD structs are valid; the ioctl writes only inside `info`, whose
    // address `ifr` carries; the socket is closed below.
    unsafe {
        let mut info: DrvInfo = std::mem::zeroed();
        info.cmd = ETHTOOL_GDRVINFO;
        let mut ifr: libc::ifreq = std::mem::zeroed();
        for (d, s) in ifr.ifr_name.iter_mut().zip(name) {
            *d = *s as libc::c_char;
        }
        ifr.ifr_ifru.ifru_data = (&mut info as *mut DrvInfo).cast();
        let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return None;
        }
        // The request's type differs between libc flavours (c_ulong on glibc, c_int on musl).
        #[allow(clippy::unnecessary_cast)]
        let rc = libc::ioctl(fd, libc::SIOCETHTOOL as libc::Ioctl, &mut ifr);
        libc::close(fd);
        if rc != 0 {
            return None;
        }
        let end = info.driver.iter().position(|b| *b == 0).unwrap_or(32);
        Some(String::from_utf8_lossy(&info.driver[..end]).into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(arphrd: u16, driver: Option<&str>) -> LinkInfo {
        LinkInfo {
            arphrd,
            driver: driver.map(str::to_string),
        }
    }

    #[test]
    fn auto_picks_tc_on_veth_and_l3_devices_and_xdp_elsewhere() {
        let veth = choose(Hook::Auto, &link(1, Some("veth")), false);
        assert_eq!((veth.hook, veth.l3), (Hook::Tc, false));
        assert!(
            veth.reason.starts_with("veth driver: veth: XDP costs"),
            "{}",
            veth.reason
        );
        let nic = choose(Hook::Auto, &link(1, Some("ixgbe")), false);
        assert_eq!((nic.hook, nic.l3), (Hook::Xdp, false));
        assert_eq!(nic.reason, "ixgbe driver: the earliest and cheapest hook");
        // tun (ARPHRD_NONE 65534), ipip (768), gre (778), wireguard (65534).
        for arphrd in [65534, 768, 778] {
            let c = choose(Hook::Auto, &link(arphrd, Some("tun")), false);
            assert_eq!((c.hook, c.l3), (Hook::Tc, true), "{arphrd}");
            assert!(
                c.reason.contains(&format!("link type {arphrd}")),
                "{}",
                c.reason
            );
        }
        // --block needs XDP, whatever the device.
        assert_eq!(
            choose(Hook::Auto, &link(1, Some("veth")), true).hook,
            Hook::Xdp
        );
    }

    #[test]
    fn an_explicit_hook_is_kept_and_l3_devices_still_get_the_ip_programs() {
        let c = choose(Hook::Xdp, &link(1, Some("veth")), false);
        assert_eq!(
            (c.hook, c.reason.as_str()),
            (Hook::Xdp, "veth driver: asked for (--hook xdp)")
        );
        let c = choose(Hook::Xdp, &link(65534, None), false);
        assert_eq!((c.hook, c.l3), (Hook::Xdp, true));
        let c = choose(Hook::Tc, &link(1, None), false);
        assert_eq!(c.reason, "unknown driver: asked for (--hook tc)");
    }

    #[test]
    fn loopback_reads_as_a_non_ethernet_device() {
        // lo is ARPHRD_LOOPBACK (772) in every network namespace.
        let lo = link_info("lo").expect("lo");
        assert_eq!(lo.arphrd, 772);
        assert!(link_info("pknosuch0").is_err());
    }
}
