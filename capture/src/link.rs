//! Link layers: where the L3 header starts and which EtherType it has, for each supported
//! link type; everything after that is `agent_common`'s classifier.

use agent_common::{
    Packet as _, ParseError, Summary,
    classify::{
        ETH_P_8021AD, ETH_P_8021Q, ETH_P_IPV4, ETH_P_IPV6, MAX_VLAN_TAGS, classify_eth,
        classify_ip, classify_l3,
    },
    packet::Snapshot,
};

/// LINKTYPE_NULL: BSD loopback, 4-byte address family in the capturing host's byte order.
pub const LINKTYPE_NULL: u32 = 0;
/// LINKTYPE_ETHERNET.
pub const LINKTYPE_ETHERNET: u32 = 1;
/// DLT_RAW as Linux numbers it in pcap files written by old libpcap versions.
pub const LINKTYPE_RAW_DLT12: u32 = 12;
/// LINKTYPE_RAW: the packet starts with an IPv4 or IPv6 header.
pub const LINKTYPE_RAW: u32 = 101;
/// LINKTYPE_LOOP: OpenBSD loopback, 4-byte address family in network byte order.
pub const LINKTYPE_LOOP: u32 = 108;
/// LINKTYPE_LINUX_SLL: Linux cooked capture v1 (16-byte header).
pub const LINKTYPE_LINUX_SLL: u32 = 113;
/// LINKTYPE_IPV4: raw IPv4.
pub const LINKTYPE_IPV4: u32 = 228;
/// LINKTYPE_IPV6: raw IPv6.
pub const LINKTYPE_IPV6: u32 = 229;
/// LINKTYPE_LINUX_SLL2: Linux cooked capture v2 (20-byte header).
pub const LINKTYPE_LINUX_SLL2: u32 = 276;

/// Address-family values of IPv6 on the BSD loopback link types (NetBSD/OpenBSD, FreeBSD,
/// Darwin, Linux).
const AF_INET6: [u32; 4] = [24, 28, 30, 10];
/// Address family of IPv4 everywhere.
const AF_INET: u32 = 2;

/// True for the link types [`classify`] understands.
pub fn supported(linktype: u32) -> bool {
    matches!(
        linktype,
        LINKTYPE_NULL
            | LINKTYPE_ETHERNET
            | LINKTYPE_RAW_DLT12
            | LINKTYPE_RAW
            | LINKTYPE_LOOP
            | LINKTYPE_LINUX_SLL
            | LINKTYPE_IPV4
            | LINKTYPE_IPV6
            | LINKTYPE_LINUX_SLL2
    )
}

/// True for link types whose frames carry an EtherType (so that small values are 802.3
/// lengths).
pub fn has_ethertype(linktype: u32) -> bool {
    matches!(
        linktype,
        LINKTYPE_ETHERNET | LINKTYPE_LINUX_SLL | LINKTYPE_LINUX_SLL2
    )
}

/// Classifies one captured frame of the given link type; `None` for unsupported link types.
pub fn classify(linktype: u32, p: &Snapshot<'_>) -> Option<Result<Summary, ParseError>> {
    Some(match linktype {
        LINKTYPE_ETHERNET => classify_eth(p),
        LINKTYPE_RAW | LINKTYPE_RAW_DLT12 => classify_ip(p, 0),
        LINKTYPE_IPV4 => classify_l3(p, ETH_P_IPV4, 0),
        LINKTYPE_IPV6 => classify_l3(p, ETH_P_IPV6, 0),
        LINKTYPE_LINUX_SLL => cooked(p, 14, 16),
        LINKTYPE_LINUX_SLL2 => cooked(p, 0, 20),
        LINKTYPE_NULL => loopback(p, false),
        LINKTYPE_LOOP => loopback(p, true),
        _ => return None,
    })
}

fn be16(p: &Snapshot<'_>, off: usize) -> Option<u16> {
    p.load::<[u8; 2]>(off).map(u16::from_be_bytes)
}

/// Linux cooked captures: the protocol (an EtherType, or a small number for non-Ethernet
/// payloads) at `proto_off`, the payload at `hdr_len`. VLAN tags left in the payload are
/// skipped like the Ethernet classifier does.
fn cooked(p: &Snapshot<'_>, proto_off: usize, hdr_len: usize) -> Result<Summary, ParseError> {
    if p.len() < hdr_len {
        return Err(ParseError::Truncated);
    }
    let mut ethertype = be16(p, proto_off).ok_or(ParseError::Truncated)?;
    let mut off = hdr_len;
    let mut depth = 0u8;
    while ethertype == ETH_P_8021Q || ethertype == ETH_P_8021AD {
        if usize::from(depth) == MAX_VLAN_TAGS {
            return Err(ParseError::TooManyVlanTags);
        }
        ethertype = be16(p, off + 2).ok_or(ParseError::Truncated)?;
        off += 4;
        depth += 1;
    }
    let mut s = classify_l3(p, ethertype, off)?;
    s.vlan_depth = depth;
    Ok(s)
}

/// BSD (`NULL`, host byte order) and OpenBSD (`LOOP`, network byte order) loopback: a 4-byte
/// address family, then the IP header. Unknown families are counted as non-IP.
fn loopback(p: &Snapshot<'_>, network_order: bool) -> Result<Summary, ParseError> {
    let raw: [u8; 4] = p.load(0).ok_or(ParseError::Truncated)?;
    let be = u32::from_be_bytes(raw);
    // The capturing host's byte order is unknown for NULL: accept either.
    let le = if network_order {
        be
    } else {
        u32::from_le_bytes(raw)
    };
    let family = |af: u32| af == be || af == le;
    if family(AF_INET) {
        classify_l3(p, ETH_P_IPV4, 4)
    } else if AF_INET6.into_iter().any(family) {
        classify_l3(p, ETH_P_IPV6, 4)
    } else {
        classify_l3(p, 0, 4)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(data: &[u8]) -> Snapshot<'_> {
        Snapshot {
            data,
            orig_len: data.len(),
        }
    }

    /// Ethernet + IPv4 (10.0.0.1 -> 10.0.0.2) + TCP SYN 1234 -> 80, written out by hand.
    fn syn_frame() -> Vec<u8> {
        let mut f = vec![0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 1, 0x08, 0x00];
        f.extend_from_slice(&[
            0x45, 0, 0, 40, 0, 1, 0, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ]);
        f.extend_from_slice(&[
            0x04, 0xd2, 0, 80, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0,
        ]);
        f
    }

    #[test]
    fn every_link_type_finds_the_ip_header() {
        let eth = syn_frame();
        let ip = &eth[14..];
        let mut sll = vec![0, 0, 0, 1, 0, 6, 0, 0, 0, 0, 0, 0, 0, 0, 0x08, 0x00];
        sll.extend_from_slice(ip);
        let mut sll2 = vec![
            0x08, 0x00, 0, 0, 0, 0, 0, 1, 0, 1, 0, 6, 0, 0, 0, 0, 0, 0, 0, 0,
        ];
        sll2.extend_from_slice(ip);
        let mut null_le = 2u32.to_le_bytes().to_vec();
        null_le.extend_from_slice(ip);
        let mut null_be = 2u32.to_be_bytes().to_vec();
        null_be.extend_from_slice(ip);
        let mut vlan = vec![
            0, 0, 0, 1, 0, 6, 0, 0, 0, 0, 0, 0, 0, 0, 0x81, 0x00, 0, 5, 0x08, 0,
        ];
        vlan.extend_from_slice(ip);
        for (lt, frame) in [
            (LINKTYPE_ETHERNET, &eth[..]),
            (LINKTYPE_RAW, ip),
            (LINKTYPE_RAW_DLT12, ip),
            (LINKTYPE_IPV4, ip),
            (LINKTYPE_LINUX_SLL, &sll[..]),
            (LINKTYPE_LINUX_SLL2, &sll2[..]),
            (LINKTYPE_NULL, &null_le[..]),
            (LINKTYPE_NULL, &null_be[..]),
            (LINKTYPE_LOOP, &null_be[..]),
            (LINKTYPE_LINUX_SLL, &vlan[..]),
        ] {
            let s = classify(lt, &snap(frame)).unwrap().unwrap();
            assert_eq!(
                (s.family, s.proto, s.dst_port),
                (4, 6, 80),
                "link type {lt}"
            );
            assert!(s.is_syn());
        }
    }

    #[test]
    fn short_and_unknown() {
        assert_eq!(
            classify(LINKTYPE_LINUX_SLL, &snap(&[0; 10])),
            Some(Err(ParseError::Truncated))
        );
        assert_eq!(
            classify(LINKTYPE_NULL, &snap(&[2])),
            Some(Err(ParseError::Truncated))
        );
        let s = classify(LINKTYPE_LOOP, &snap(&[0, 0, 0, 99, 0x45]))
            .unwrap()
            .unwrap();
        assert_eq!(s.family, 0);
        assert!(classify(105, &snap(&[0; 40])).is_none());
        let mut deep = vec![0u8; 14];
        deep.extend_from_slice(&[0x81, 0, 0, 1, 0x81, 0, 0, 1, 0x81, 0, 0, 1, 0x08, 0]);
        deep.extend_from_slice(&[0; 40]);
        assert_eq!(
            classify(LINKTYPE_LINUX_SLL, &snap(&deep)),
            Some(Err(ParseError::TooManyVlanTags))
        );
    }
}
