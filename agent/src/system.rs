//! Facts about the host: privileges, the default-route interface, its addresses and
//! gateways.

use anyhow::{Result, anyhow, bail};

const CAP_NET_ADMIN: u32 = 12;
const CAP_NET_RAW: u32 = 13;
const CAP_SYS_ADMIN: u32 = 21;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

/// The effective capability set.
fn effective() -> Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .ok_or_else(|| anyhow!("cannot read effective capabilities from /proc/self/status"))
}

/// Fails with a one-line message when AF_PACKET sockets cannot be opened (`--hook afpacket`).
pub fn check_net_raw() -> Result<()> {
    if effective()? & (1u64 << CAP_NET_RAW) == 0 {
        bail!("missing capabilities: CAP_NET_RAW (run as root, or grant CAP_NET_RAW)");
    }
    Ok(())
}

/// Fails with a one-line message naming every capability the BPF programs need and the
/// process lacks.
pub fn check_capabilities() -> Result<()> {
    let eff = effective()?;
    let has = |c: u32| eff & (1u64 << c) != 0;
    // CAP_SYS_ADMIN covers BPF and PERFMON on every kernel.
    let mut missing = Vec::new();
    if !has(CAP_BPF) && !has(CAP_SYS_ADMIN) {
        missing.push("CAP_BPF");
    }
    if !has(CAP_PERFMON) && !has(CAP_SYS_ADMIN) {
        missing.push("CAP_PERFMON");
    }
    if !has(CAP_NET_ADMIN) {
        missing.push("CAP_NET_ADMIN");
    }
    if !missing.is_empty() {
        bail!(
            "missing capabilities: {} (run as root, or grant CAP_BPF, CAP_NET_ADMIN and CAP_PERFMON)",
            missing.join(", ")
        );
    }
    Ok(())
}

/// Every address of every interface of the host (`getifaddrs`).
pub fn host_addresses() -> Result<Vec<std::net::IpAddr>> {
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `head` with a list freed below with freeifaddrs.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        bail!(
            "cannot list the host's addresses: {}",
            std::io::Error::last_os_error()
        );
    }
    let mut out = Vec::new();
    let mut cur = head;
    while !cur.is_null() {
        // SAFETY: a node of the list getifaddrs returned; `ifa_addr` may be null and points
        // to a sockaddr of the family it names.
        unsafe {
            let a = (*cur).ifa_addr;
            if !a.is_null() {
                match i32::from((*a).sa_family) {
                    libc::AF_INET => {
                        let sin = &*a.cast::<libc::sockaddr_in>();
                        out.push(
                            std::net::Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)).into(),
                        );
                    }
                    libc::AF_INET6 => {
                        let sin6 = &*a.cast::<libc::sockaddr_in6>();
                        out.push(std::net::Ipv6Addr::from(sin6.sin6_addr.s6_addr).into());
                    }
                    _ => {}
                }
            }
            cur = (*cur).ifa_next;
        }
    }
    // SAFETY: the list getifaddrs allocated, freed once.
    unsafe { libc::freeifaddrs(head) };
    Ok(out)
}

/// The gateways of the default routes (IPv4 and IPv6), from /proc/net.
pub fn default_gateways() -> Vec<std::net::IpAddr> {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    gateways_of(&read("/proc/net/route"), &read("/proc/net/ipv6_route"))
}

/// The default routes' gateways in the text of /proc/net/route and /proc/net/ipv6_route.
fn gateways_of(route: &str, ipv6_route: &str) -> Vec<std::net::IpAddr> {
    let mut out = Vec::new();
    for line in route.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() > 7
            && f[1] == "00000000"
            && f[7] == "00000000"
            && let Ok(g) = u32::from_str_radix(f[2], 16)
            && g != 0
        {
            // Little-endian hex of the address in network order.
            out.push(std::net::Ipv4Addr::from(g.swap_bytes()).into());
        }
    }
    for line in ipv6_route.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() >= 10
            && f[0] == "0".repeat(32)
            && f[1] == "00"
            && let Ok(g) = u128::from_str_radix(f[4], 16)
            && g != 0
        {
            out.push(std::net::Ipv6Addr::from(g).into());
        }
    }
    out
}

/// Name of the interface of the default route (IPv4, else IPv6).
pub fn default_route_iface() -> Result<String> {
    if let Ok(table) = std::fs::read_to_string("/proc/net/route") {
        for line in table.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() > 7 && f[1] == "00000000" && f[7] == "00000000" {
                return Ok(f[0].to_string());
            }
        }
    }
    if let Ok(table) = std::fs::read_to_string("/proc/net/ipv6_route") {
        for line in table.lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() >= 10 && f[0] == "0".repeat(32) && f[1] == "00" && f[9] != "lo" {
                return Ok(f[9].to_string());
            }
        }
    }
    bail!("no default route: name the interface to watch with --iface")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_gateways_from_proc_net() {
        let route = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\n\
                     eth0\t00000000\t0102A8C0\t0003\t0\t0\t0\t00000000\n\
                     eth0\t0002A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\n";
        let v6 = "00000000000000000000000000000000 00 00000000000000000000000000000000 00 \
                  fe800000000000000000000000000001 00000400 00000001 00000000 00000003 eth0\n\
                  20010db8000000000000000000000000 40 00000000000000000000000000000000 00 \
                  00000000000000000000000000000000 00000100 00000001 00000000 00000001 eth0\n";
        let g = gateways_of(route, v6);
        assert_eq!(
            g,
            vec![
                "192.168.2.1".parse::<std::net::IpAddr>().unwrap(),
                "fe80::1".parse().unwrap()
            ]
        );
        assert!(gateways_of("", "").is_empty());
    }

    #[test]
    fn host_addresses_include_loopback() {
        let a = host_addresses().unwrap();
        assert!(a.iter().any(std::net::IpAddr::is_loopback), "{a:?}");
    }
}
