//! Link layers: where the L3 header starts and which EtherType it has, for each supported
//! link type; everything after that is `agent_common`'s classifier.

use agent_common::{
    ParseError, Summary,
    classify::{ETH_P_IPV4, ETH_P_IPV6, classify_eth, classify_tagged},
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

/// Where the link layer of a frame says its network layer is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Network {
    /// EtherType of what starts at `offset`: an 802.1Q/802.1ad TPID when a VLAN tag comes
    /// first (cooked captures keep the tags), 0 when the link layer names no protocol known
    /// here (a loopback address family other than IPv4 or IPv6).
    pub ethertype: u16,
    /// Offset of that header (the first VLAN tag, or the L3 header).
    pub offset: usize,
}

/// The one definition of every supported link type: the EtherType and offset of the network
/// layer. [`classify`] classifies from it, and [`ethernet`] re-frames from it for the kernel,
/// so that both read a link type the same way. `None` for unsupported link types; an error
/// when the frame is too short for its link header, or a raw-IP packet has another version.
pub fn network(linktype: u32, data: &[u8]) -> Option<Result<Network, ParseError>> {
    let be16 = |off: usize| {
        data.get(off..off + 2)
            .map(|b| u16::from_be_bytes([b[0], b[1]]))
            .ok_or(ParseError::Truncated)
    };
    let at = |ethertype: u16, offset: usize| {
        if data.len() < offset {
            Err(ParseError::Truncated)
        } else {
            Ok(Network { ethertype, offset })
        }
    };
    Some(match linktype {
        LINKTYPE_ETHERNET => be16(12).and_then(|et| at(et, 14)),
        LINKTYPE_RAW | LINKTYPE_RAW_DLT12 => match data.first().map(|b| b >> 4) {
            None => Err(ParseError::Truncated),
            Some(4) => at(ETH_P_IPV4, 0),
            Some(6) => at(ETH_P_IPV6, 0),
            Some(_) => Err(ParseError::BadIpHeader),
        },
        LINKTYPE_IPV4 => at(ETH_P_IPV4, 0),
        LINKTYPE_IPV6 => at(ETH_P_IPV6, 0),
        LINKTYPE_LINUX_SLL => be16(14).and_then(|et| at(et, 16)),
        LINKTYPE_LINUX_SLL2 => be16(0).and_then(|et| at(et, 20)),
        LINKTYPE_NULL => loopback(data, false),
        LINKTYPE_LOOP => loopback(data, true),
        _ => return None,
    })
}

/// BSD (`NULL`, host byte order) and OpenBSD (`LOOP`, network byte order) loopback: a 4-byte
/// address family, then the IP header. Unknown families are non-IP (EtherType 0).
fn loopback(data: &[u8], network_order: bool) -> Result<Network, ParseError> {
    let raw: [u8; 4] = data
        .get(..4)
        .and_then(|b| b.try_into().ok())
        .ok_or(ParseError::Truncated)?;
    let be = u32::from_be_bytes(raw);
    // The capturing host's byte order is unknown for NULL: accept either.
    let le = if network_order {
        be
    } else {
        u32::from_le_bytes(raw)
    };
    let family = |af: u32| af == be || af == le;
    let ethertype = if family(AF_INET) {
        ETH_P_IPV4
    } else if AF_INET6.into_iter().any(family) {
        ETH_P_IPV6
    } else {
        0
    };
    Ok(Network {
        ethertype,
        offset: 4,
    })
}

/// Classifies one captured frame of the given link type; `None` for unsupported link types.
pub fn classify(linktype: u32, p: &Snapshot<'_>) -> Option<Result<Summary, ParseError>> {
    if linktype == LINKTYPE_ETHERNET {
        // The kernel's own entry point: the same EtherType and offset as [`network`].
        return Some(classify_eth(p));
    }
    Some(network(linktype, p.data)?.and_then(|n| classify_tagged(p, n.ethertype, n.offset)))
}

/// Source and destination MACs of the synthetic Ethernet header [`ethernet`] writes.
const SYNTHETIC_MACS: [u8; 12] = [0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01];

/// The frame as Ethernet, for programs that read only Ethernet (the XDP program under
/// `BPF_PROG_TEST_RUN`): as is for Ethernet, else the network layer [`network`] finds behind
/// a synthetic Ethernet header carrying its EtherType (VLAN tags of cooked captures stay, and
/// are skipped by the Ethernet classifier as on the wire). `None` when [`network`] finds no
/// network layer.
pub fn ethernet<'a>(linktype: u32, data: &'a [u8], buf: &'a mut Vec<u8>) -> Option<&'a [u8]> {
    if linktype == LINKTYPE_ETHERNET {
        // Even when short: the kernel's test harness refuses those, and says so.
        return Some(data);
    }
    let n = network(linktype, data)?.ok()?;
    buf.clear();
    buf.extend_from_slice(&SYNTHETIC_MACS);
    buf.extend_from_slice(&n.ethertype.to_be_bytes());
    buf.extend_from_slice(&data[n.offset..]);
    Some(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use agent_common::classify::MAX_VLAN_TAGS;

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

    /// IPv6 + UDP 5353 -> 53 with 4 payload bytes, written out by hand.
    fn udp6_packet() -> Vec<u8> {
        let mut p = vec![0x60, 0, 0, 0, 0, 12, 17, 64];
        p.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        p.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        p.extend_from_slice(&[0x14, 0xe9, 0, 53, 0, 12, 0, 0, 1, 2, 3, 4]);
        p
    }

    fn cat(parts: &[&[u8]]) -> Vec<u8> {
        parts.concat()
    }

    /// The offsets of a summary made relative to its network layer, and the wire length
    /// dropped: what is left must not depend on how the link layer was framed.
    fn relative(mut s: Summary, offset: usize) -> Summary {
        let off = offset as u16;
        s.wire_len = 0;
        s.l3_off -= off;
        for o in [&mut s.l4_off, &mut s.payload_off] {
            if *o != 0 {
                *o -= off;
            }
        }
        s
    }

    /// `classify` (what `picket analyze` reports) and the Ethernet classifier on the frame
    /// `ethernet` re-frames (what `picket analyze --kernel` gives the XDP program) agree for
    /// every supported link type.
    #[test]
    fn classify_and_the_kernels_reframing_agree() {
        let eth = syn_frame();
        let (ip4, ip6) = (eth[14..].to_vec(), udp6_packet());
        let sll_hdr: &[u8] = &[0, 0, 0, 1, 0, 6, 0, 0, 0, 0, 0, 0, 0, 0];
        let sll2_hdr = |et: [u8; 2]| cat(&[&et, &[0, 0, 0, 0, 0, 1, 0, 1, 0, 6], &[0; 8]]);
        // A VLAN tag's TCI and the EtherType after it.
        let tci = |et: [u8; 2]| [0, 5, et[0], et[1]];
        let (v4, v6, q, ad) = ([0x08, 0x00], [0x86, 0xdd], [0x81, 0x00], [0x88, 0xa8]);
        let mut cases: Vec<(u32, Vec<u8>, Result<u8, ParseError>)> = vec![
            (LINKTYPE_ETHERNET, eth.clone(), Ok(4)),
            (
                LINKTYPE_ETHERNET,
                cat(&[&eth[..12], &q, &tci(v4), &ip4]),
                Ok(4),
            ),
            (LINKTYPE_RAW, ip4.clone(), Ok(4)),
            (LINKTYPE_RAW, ip6.clone(), Ok(6)),
            (LINKTYPE_RAW_DLT12, ip6.clone(), Ok(6)),
            (
                LINKTYPE_RAW,
                cat(&[&[0x55], &ip4[1..]]),
                Err(ParseError::BadIpHeader),
            ),
            (LINKTYPE_RAW, Vec::new(), Err(ParseError::Truncated)),
            (LINKTYPE_IPV4, ip4.clone(), Ok(4)),
            (LINKTYPE_IPV6, ip6.clone(), Ok(6)),
            (LINKTYPE_LINUX_SLL, cat(&[sll_hdr, &v4, &ip4]), Ok(4)),
            (LINKTYPE_LINUX_SLL, cat(&[sll_hdr, &v6, &ip6]), Ok(6)),
            // SLL with an 802.1Q tag, and with 802.1ad + 802.1Q (QinQ).
            (
                LINKTYPE_LINUX_SLL,
                cat(&[sll_hdr, &q, &tci(v4), &ip4]),
                Ok(4),
            ),
            (
                LINKTYPE_LINUX_SLL,
                cat(&[sll_hdr, &ad, &tci(q), &tci(v6), &ip6]),
                Ok(6),
            ),
            (
                LINKTYPE_LINUX_SLL,
                cat(&[
                    sll_hdr,
                    &q,
                    &tci(q),
                    &tci(q),
                    &tci(q),
                    &tci(q),
                    &tci(v4),
                    &ip4,
                ]),
                Err(ParseError::TooManyVlanTags),
            ),
            (
                LINKTYPE_LINUX_SLL,
                cat(&[sll_hdr, &v4]),
                Err(ParseError::Truncated),
            ),
            (
                LINKTYPE_LINUX_SLL,
                sll_hdr.to_vec(),
                Err(ParseError::Truncated),
            ),
            (LINKTYPE_LINUX_SLL2, cat(&[&sll2_hdr(v4), &ip4]), Ok(4)),
            (
                LINKTYPE_LINUX_SLL2,
                cat(&[&sll2_hdr(q), &tci(v6), &ip6]),
                Ok(6),
            ),
        ];
        // Loopback: every address family value, in both byte orders.
        for (af, ip, fam) in [(AF_INET, &ip4, 4)]
            .into_iter()
            .chain(AF_INET6.map(|af| (af, &ip6, 6)))
        {
            cases.push((LINKTYPE_NULL, cat(&[&af.to_le_bytes(), ip]), Ok(fam)));
            cases.push((LINKTYPE_NULL, cat(&[&af.to_be_bytes(), ip]), Ok(fam)));
            cases.push((LINKTYPE_LOOP, cat(&[&af.to_be_bytes(), ip]), Ok(fam)));
            // LOOP is network byte order only: a little-endian family is not a family.
            cases.push((LINKTYPE_LOOP, cat(&[&af.to_le_bytes(), ip]), Ok(0)));
        }
        // The family decides, never the IP version nibble: an unknown family is non-IP, and
        // IPv6 bytes under the IPv4 family are a bad IPv4 header.
        cases.push((LINKTYPE_NULL, cat(&[&99u32.to_le_bytes(), &ip4]), Ok(0)));
        cases.push((LINKTYPE_LOOP, cat(&[&99u32.to_be_bytes(), &ip6]), Ok(0)));
        let bad = Err(ParseError::BadIpHeader);
        cases.push((LINKTYPE_NULL, cat(&[&AF_INET.to_le_bytes(), &ip6]), bad));
        cases.push((LINKTYPE_NULL, vec![2, 0], Err(ParseError::Truncated)));
        let covered: std::collections::HashSet<u32> = cases.iter().map(|c| c.0).collect();
        assert!(
            (0..300)
                .filter(|lt| supported(*lt))
                .all(|lt| covered.contains(&lt))
        );

        let mut buf = Vec::new();
        for (lt, frame, expect) in &cases {
            let what = format!("link type {lt}, frame {frame:02x?}");
            let host = classify(*lt, &snap(frame)).unwrap();
            assert_eq!(host.map(|s| s.family), *expect, "{what}");
            let net = network(*lt, frame).unwrap();
            let Some(reframed) = ethernet(*lt, frame, &mut buf) else {
                // Only a frame without a network layer is left out of the kernel check.
                assert_eq!(net.map(|_| ()), host.map(|_| ()), "{what}");
                assert!(net.is_err(), "{what}");
                continue;
            };
            let net = net.unwrap();
            if *lt != LINKTYPE_ETHERNET {
                assert_eq!(reframed[12..14], net.ethertype.to_be_bytes(), "{what}");
                assert_eq!(reframed[14..], frame[net.offset..], "{what}");
            }
            let kernel = classify_eth(&snap(reframed));
            let host_offset = if *lt == LINKTYPE_ETHERNET {
                14
            } else {
                net.offset
            };
            assert_eq!(
                host.map(|s| relative(s, host_offset)),
                kernel.map(|s| relative(s, 14)),
                "{what}"
            );
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
        for _ in 0..=MAX_VLAN_TAGS {
            deep.extend_from_slice(&[0x81, 0, 0, 1]);
        }
        deep.extend_from_slice(&[0x08, 0]);
        deep.extend_from_slice(&[0; 40]);
        assert_eq!(
            classify(LINKTYPE_LINUX_SLL, &snap(&deep)),
            Some(Err(ParseError::TooManyVlanTags))
        );
    }
}
