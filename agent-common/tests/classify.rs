//! Classifier tests: exact summaries for well-formed packets of every supported shape,
//! truncation of every one of them, and the malformed cases.

use agent_common::{
    ParseError, Summary,
    classify::{
        ETH_P_8021Q, ETH_P_ARP, ETH_P_IPV4, ETH_P_IPV6, ETH_P_QINQ1, ETH_P_QINQ2, FRAG_FIRST,
        FRAG_LATER, FRAG_NONE, FRAG_TINY, IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP,
        TCP_ACK, TCP_CWR, TCP_ECE, TCP_FIN, TCP_NS, TCP_PSH, TCP_RST, TCP_SYN, TCP_URG,
        classify_l3,
    },
    classify_eth, classify_ip,
    packet::{Packet, Snapshot},
};
use picket_frames::layers::*;

const A: [u8; 4] = [192, 0, 2, 1];
const B: [u8; 4] = [198, 51, 100, 7];

fn v6a() -> [u8; 16] {
    v6(0, 1)
}

fn v6b() -> [u8; 16] {
    v6(0xabcd, 0x2)
}

/// Summary of an IPv4 packet in an untagged Ethernet frame from A to B, TTL 64, before L4.
fn v4_base(len: usize) -> Summary {
    Summary {
        src: mapped(A),
        dst: mapped(B),
        wire_len: len as u32,
        ethertype: ETH_P_IPV4,
        l3_off: 14,
        family: 4,
        ttl: 64,
        ..blank()
    }
}

/// Summary of an IPv6 packet in an untagged Ethernet frame, before L4.
fn v6_base(len: usize) -> Summary {
    Summary {
        src: v6a(),
        dst: v6b(),
        wire_len: len as u32,
        ethertype: ETH_P_IPV6,
        l3_off: 14,
        family: 6,
        ttl: 64,
        ..blank()
    }
}

/// Classifies `p`, checks it equals `want`, then checks every prefix of it.
#[track_caller]
fn check(p: &Pkt, want: Summary) {
    let got = classify_eth(p.bytes.as_slice());
    assert_eq!(got, Ok(want), "full packet {:02x?}", p.bytes);
    check_prefixes(p, &want, classify_eth);
}

#[track_caller]
fn check_prefixes(p: &Pkt, want: &Summary, f: fn(&[u8]) -> Result<Summary, ParseError>) {
    for k in 0..=p.bytes.len() {
        let got = f(&p.bytes[..k]);
        assert_eq!(
            got,
            p.expect_prefix(want, k),
            "prefix of {k} bytes of {:02x?}",
            p.bytes
        );
    }
}

fn eth_classify(b: &[u8]) -> Result<Summary, ParseError> {
    classify_eth(b)
}

fn ip_classify(b: &[u8]) -> Result<Summary, ParseError> {
    classify_ip(b, 0)
}

// ----------------------------------------------------------------------------------------
// IPv4
// ----------------------------------------------------------------------------------------

#[test]
fn ipv4_tcp_syn() {
    let p = eth(&Ipv4::new(A, B).build(&tcp(40000, 22, TCP_SYN)));
    assert_eq!(p.bytes.len(), 54);
    let want = Summary {
        proto: IPPROTO_TCP,
        src_port: 40000,
        dst_port: 22,
        tcp_flags: TCP_SYN,
        l4_off: 34,
        payload_off: 54,
        ..v4_base(54)
    };
    check(&p, want);
    let s = classify_eth(p.bytes.as_slice()).unwrap();
    assert!(s.is_ip() && s.has_l4() && s.is_syn() && s.is_probe());
    assert!(!s.is_syn_ack() && !s.is_rst() && !s.is_icmp());
}

#[test]
fn ipv4_tcp_every_flag_bit() {
    let bits = [
        TCP_FIN, TCP_SYN, TCP_RST, TCP_PSH, TCP_ACK, TCP_URG, TCP_ECE, TCP_CWR, TCP_NS,
    ];
    for (i, &bit) in bits.iter().enumerate() {
        assert_eq!(bit, 1 << i);
        let p = eth(&Ipv4::new(A, B).build(&tcp(1, 2, bit)));
        let s = classify_eth(p.bytes.as_slice()).unwrap();
        assert_eq!(s.tcp_flags, bit, "flag bit {i}");
    }
    // All nine at once, and every byte pattern of the low eight with and without NS.
    for flags in 0u16..0x200 {
        let p = eth(&Ipv4::new(A, B).build(&tcp(1, 2, flags)));
        let want = Summary {
            proto: IPPROTO_TCP,
            src_port: 1,
            dst_port: 2,
            tcp_flags: flags,
            l4_off: 34,
            payload_off: 54,
            ..v4_base(54)
        };
        assert_eq!(
            classify_eth(p.bytes.as_slice()),
            Ok(want),
            "flags {flags:#x}"
        );
    }
}

#[test]
fn ipv4_tcp_ns_bit_does_not_disturb_data_offset() {
    // NS sits in the low bit of the data-offset byte: doff 8 (12 option bytes) with NS.
    let l4 = tcp(80, 55555, TCP_NS | TCP_ACK)
        .with_tcp_opts(&[2, 4, 5, 0xb4, 1, 1, 4, 2, 1, 1, 1, 0])
        .with_payload(b"hello");
    let p = eth(&Ipv4::new(A, B).build(&l4));
    let want = Summary {
        proto: IPPROTO_TCP,
        src_port: 80,
        dst_port: 55555,
        tcp_flags: TCP_NS | TCP_ACK,
        l4_off: 34,
        payload_off: 34 + 32,
        ..v4_base(34 + 32 + 5)
    };
    check(&p, want);
}

#[test]
fn ipv4_tcp_max_options_and_payload() {
    let l4 = tcp(1234, 443, TCP_PSH | TCP_ACK)
        .with_tcp_opts(&[1; 40])
        .with_payload(&[0xaa; 100]);
    let p = eth(&Ipv4::new(A, B).build(&l4));
    let want = Summary {
        proto: IPPROTO_TCP,
        src_port: 1234,
        dst_port: 443,
        tcp_flags: TCP_PSH | TCP_ACK,
        l4_off: 34,
        payload_off: 34 + 60,
        ..v4_base(34 + 60 + 100)
    };
    check(&p, want);
}

#[test]
fn ipv4_udp() {
    let p = eth(&Ipv4::new(A, B)
        .ttl(3)
        .build(&udp(5353, 53).with_payload(b"query")));
    let want = Summary {
        proto: IPPROTO_UDP,
        src_port: 5353,
        dst_port: 53,
        l4_off: 34,
        payload_off: 42,
        ttl: 3,
        ..v4_base(47)
    };
    check(&p, want);
}

#[test]
fn ipv4_udp_zero_ports() {
    let p = eth(&Ipv4::new(A, B).build(&udp(0, 0)));
    let want = Summary {
        proto: IPPROTO_UDP,
        l4_off: 34,
        payload_off: 42,
        ..v4_base(42)
    };
    check(&p, want);
}

#[test]
fn ipv4_icmp_echo_request_reply_unreachable() {
    for (ty, code, probe) in [
        (8u8, 0u8, true),
        (0, 0, false),
        (3, 3, false),
        (3, 13, false),
    ] {
        let p = eth(&Ipv4::new(A, B).build(&icmp(ty, code).with_payload(&[7; 56])));
        let want = Summary {
            proto: IPPROTO_ICMP,
            icmp_type: ty,
            icmp_code: code,
            l4_off: 34,
            payload_off: 42,
            ..v4_base(42 + 56)
        };
        check(&p, want);
        let s = classify_eth(p.bytes.as_slice()).unwrap();
        assert!(s.is_icmp());
        assert_eq!(s.is_probe(), probe, "type {ty} code {code}");
        assert_eq!((s.src_port, s.dst_port, s.tcp_flags), (0, 0, 0));
    }
}

#[test]
fn ipv4_options_ihl_15() {
    let ip = Ipv4::new(A, B).options(40);
    let p = eth(&ip.build(&tcp(1000, 25, TCP_SYN)));
    assert_eq!(p.bytes[14], 0x4f);
    let want = Summary {
        proto: IPPROTO_TCP,
        src_port: 1000,
        dst_port: 25,
        tcp_flags: TCP_SYN,
        l4_off: 74,
        payload_off: 94,
        ..v4_base(94)
    };
    check(&p, want);
}

#[test]
fn ipv4_options_every_ihl() {
    for n in (0..=40).step_by(4) {
        let p = eth(&Ipv4::new(A, B).options(n).build(&udp(9, 10)));
        let want = Summary {
            proto: IPPROTO_UDP,
            src_port: 9,
            dst_port: 10,
            l4_off: (34 + n) as u16,
            payload_off: (42 + n) as u16,
            ..v4_base(42 + n)
        };
        check(&p, want);
    }
}

#[test]
fn ipv4_first_fragment_parses_l4() {
    let l4 = udp(3000, 4000).with_payload(&[1; 64]);
    let p = eth(&Ipv4::new(A, B).frag(0, true).build(&l4));
    let want = Summary {
        proto: IPPROTO_UDP,
        src_port: 3000,
        dst_port: 4000,
        l4_off: 34,
        payload_off: 42,
        fragment: FRAG_FIRST,
        ..v4_base(42 + 64)
    };
    check(&p, want);
}

#[test]
fn ipv4_df_is_not_a_fragment() {
    let p = eth(&Ipv4::new(A, B).df().build(&tcp(1, 2, TCP_ACK)));
    let s = classify_eth(p.bytes.as_slice()).unwrap();
    assert_eq!(s.fragment, FRAG_NONE);
    assert_eq!(s.l4_off, 34);
}

#[test]
fn ipv4_later_fragment_has_no_l4() {
    // The bytes after the IP header look exactly like a TCP SYN to port 22: they must not be
    // read as one.
    let bogus = tcp(6666, 22, TCP_SYN);
    for (off, mf) in [(1u16, true), (1, false), (185, true), (0x1fff, false)] {
        let p = eth(&Ipv4::new(A, B).frag(off, mf).build(&bogus));
        let want = Summary {
            proto: IPPROTO_TCP,
            fragment: FRAG_LATER,
            ..v4_base(54)
        };
        check(&p, want);
        let s = classify_eth(p.bytes.as_slice()).unwrap();
        assert!(!s.has_l4() && !s.is_syn() && !s.is_probe());
    }
    // With options too: still no L4, and a later fragment with nothing after the header.
    let p = eth(&Ipv4::new(A, B)
        .options(8)
        .frag(3, false)
        .build(&raw(IPPROTO_UDP, &[])));
    let want = Summary {
        proto: IPPROTO_UDP,
        fragment: FRAG_LATER,
        ..v4_base(42)
    };
    check(&p, want);
}

#[test]
fn ipv4_unknown_protocol() {
    // PIM (103): no L4 header parsed. (47, GRE, is a tunnel: tests/tunnel.rs.)
    let p = eth(&Ipv4::new(A, B).build(&raw(103, &[0, 0, 0x08, 0, 1, 2, 3, 4])));
    let want = Summary {
        proto: 103,
        ..v4_base(42)
    };
    check(&p, want);
    let s = classify_eth(p.bytes.as_slice()).unwrap();
    // A probe of an IP-protocol scan (`-sO`), whatever its payload.
    assert!(s.is_ip() && !s.has_l4() && s.is_probe());
}

#[test]
fn ipv4_ttl_and_trailing_padding() {
    // Ethernet pads short frames: tot_len is smaller than the frame, which is fine.
    let mut p = eth(&Ipv4::new(A, B).ttl(255).build(&tcp(1, 2, TCP_RST)));
    p.bytes.extend_from_slice(&[0; 6]);
    let want = Summary {
        proto: IPPROTO_TCP,
        src_port: 1,
        dst_port: 2,
        tcp_flags: TCP_RST,
        l4_off: 34,
        payload_off: 54,
        ttl: 255,
        ..v4_base(60)
    };
    check(&p, want);
}

// ----------------------------------------------------------------------------------------
// VLAN
// ----------------------------------------------------------------------------------------

#[test]
fn vlan_8021q() {
    let p = eth_tagged(
        &[dot1q(100)],
        &Ipv4::new(A, B).build(&tcp(5000, 80, TCP_SYN)),
    );
    let want = Summary {
        proto: IPPROTO_TCP,
        src_port: 5000,
        dst_port: 80,
        tcp_flags: TCP_SYN,
        l3_off: 18,
        l4_off: 38,
        payload_off: 58,
        vlan_depth: 1,
        ..v4_base(58)
    };
    check(&p, want);
}

#[test]
fn vlan_qinq_8021ad_then_8021q() {
    let p = eth_tagged(
        &[dot1ad(10), dot1q(200)],
        &Ipv6::new(v6a(), v6b()).build(&udp(10000, 443)),
    );
    let want = Summary {
        proto: IPPROTO_UDP,
        src_port: 10000,
        dst_port: 443,
        l3_off: 22,
        l4_off: 62,
        payload_off: 70,
        vlan_depth: 2,
        ..v6_base(70)
    };
    check(&p, want);
    // Two 802.1Q tags (old-style QinQ) are accepted too.
    let p = eth_tagged(&[dot1q(1), dot1q(2)], &Ipv4::new(A, B).build(&udp(1, 2)));
    let s = classify_eth(p.bytes.as_slice()).unwrap();
    assert_eq!(
        (s.vlan_depth, s.l3_off, s.l4_off, s.ethertype),
        (2, 22, 42, ETH_P_IPV4)
    );
}

#[test]
fn vlan_three_and_four_tags_and_old_qinq_tpids() {
    let qinq = |tpid: u16, vid: u16| (tpid, vid);
    for tags in [
        vec![dot1ad(1), dot1q(2), dot1q(3)],
        vec![qinq(ETH_P_QINQ1, 1), dot1q(2)],
        vec![
            qinq(ETH_P_QINQ2, 1),
            qinq(ETH_P_QINQ1, 2),
            dot1ad(3),
            dot1q(4),
        ],
    ] {
        let p = eth_tagged(&tags, &Ipv4::new(A, B).build(&tcp(5, 6, TCP_SYN)));
        let n = tags.len();
        let want = Summary {
            proto: IPPROTO_TCP,
            src_port: 5,
            dst_port: 6,
            tcp_flags: TCP_SYN,
            l3_off: (14 + 4 * n) as u16,
            l4_off: (34 + 4 * n) as u16,
            payload_off: (54 + 4 * n) as u16,
            vlan_depth: n as u8,
            ..v4_base(54 + 4 * n)
        };
        check(&p, want);
    }
}

#[test]
fn vlan_five_tags_is_an_error() {
    for tags in [
        [dot1ad(1), dot1q(2), dot1q(3), dot1q(4), dot1q(5)],
        [dot1q(1), dot1q(2), dot1q(3), dot1q(4), dot1q(5)],
        [
            dot1ad(1),
            dot1ad(2),
            dot1ad(3),
            (ETH_P_QINQ1, 4),
            (ETH_P_QINQ2, 5),
        ],
    ] {
        let p = eth_tagged(&tags, &Ipv4::new(A, B).build(&udp(1, 2)));
        assert_eq!(
            classify_eth(p.bytes.as_slice()),
            Err(ParseError::TooManyVlanTags)
        );
        // Even when the fifth tag itself is cut off: the fourth tag announces a fifth.
        assert_eq!(
            classify_eth(&p.bytes[..30]),
            Err(ParseError::TooManyVlanTags)
        );
        for k in 0..30 {
            assert_eq!(
                classify_eth(&p.bytes[..k]),
                Err(ParseError::Truncated),
                "prefix {k}"
            );
        }
    }
}

#[test]
fn vlan_tagged_arp() {
    let p = eth_tagged(&[dot1q(7)], &arp_request());
    let want = Summary {
        wire_len: 18 + 28,
        ethertype: ETH_P_ARP,
        l3_off: 18,
        vlan_depth: 1,
        ..blank()
    };
    check(&p, want);
}

// ----------------------------------------------------------------------------------------
// Non-IP
// ----------------------------------------------------------------------------------------

#[test]
fn arp_and_other_non_ip() {
    let p = eth(&arp_request());
    let want = Summary {
        wire_len: 42,
        ethertype: ETH_P_ARP,
        l3_off: 14,
        ..blank()
    };
    check(&p, want);
    let s = classify_eth(p.bytes.as_slice()).unwrap();
    assert!(!s.is_ip() && !s.has_l4() && !s.is_probe() && !s.is_icmp());

    // LLDP, PTP, 802.3 length field, an empty payload. (MPLS: tests/tunnel.rs.)
    for ethertype in [0x88ccu16, 0x88f7, 0x0040, 0x0000, 0xffff] {
        let p = eth(&non_ip(ethertype, &[0x45; 30]));
        let want = Summary {
            wire_len: 44,
            ethertype,
            l3_off: 14,
            ..blank()
        };
        check(&p, want);
    }
    let p = eth(&non_ip(0x88b5, &[]));
    assert_eq!(
        classify_eth(p.bytes.as_slice()),
        Ok(Summary {
            wire_len: 14,
            ethertype: 0x88b5,
            l3_off: 14,
            ..blank()
        })
    );
}

// ----------------------------------------------------------------------------------------
// IPv6
// ----------------------------------------------------------------------------------------

#[test]
fn ipv6_tcp() {
    let p = eth(&Ipv6::new(v6a(), v6b())
        .hop_limit(1)
        .build(&tcp(443, 50000, TCP_SYN | TCP_ACK)));
    let want = Summary {
        proto: IPPROTO_TCP,
        src_port: 443,
        dst_port: 50000,
        tcp_flags: TCP_SYN | TCP_ACK,
        l4_off: 54,
        payload_off: 74,
        ttl: 1,
        ..v6_base(74)
    };
    check(&p, want);
    let s = classify_eth(p.bytes.as_slice()).unwrap();
    assert!(s.is_syn_ack() && !s.is_syn() && !s.is_probe());
}

#[test]
fn ipv6_udp() {
    let p = eth(&Ipv6::new(v6a(), v6b()).build(&udp(40000, 4790).with_payload(&[0; 20])));
    let want = Summary {
        proto: IPPROTO_UDP,
        src_port: 40000,
        dst_port: 4790,
        l4_off: 54,
        payload_off: 62,
        ..v6_base(82)
    };
    check(&p, want);
}

#[test]
fn ipv6_icmpv6() {
    for (ty, code, probe) in [
        (128u8, 0u8, true),
        (129, 0, false),
        (1, 4, false),
        (135, 0, false),
    ] {
        let p = eth(&Ipv6::new(v6a(), v6b()).build(&icmpv6(ty, code).with_payload(&[1; 8])));
        let want = Summary {
            proto: IPPROTO_ICMPV6,
            icmp_type: ty,
            icmp_code: code,
            l4_off: 54,
            payload_off: 62,
            ..v6_base(70)
        };
        check(&p, want);
        let s = classify_eth(p.bytes.as_slice()).unwrap();
        assert!(s.is_icmp());
        assert_eq!(s.is_probe(), probe, "type {ty}");
    }
}

#[test]
fn ipv6_extension_chain() {
    // Hop-by-hop (8) + routing (24) + destination options (16) + fragment (8, first).
    let ip = Ipv6::new(v6a(), v6b())
        .ext(Ext::HopByHop(0))
        .ext(Ext::Routing(2))
        .ext(Ext::DestOpts(1))
        .ext(Ext::Fragment(0, true));
    let p = eth(&ip.build(&tcp(1111, 2222, TCP_SYN).with_payload(b"x")));
    let l4 = 54 + 8 + 24 + 16 + 8;
    let want = Summary {
        proto: IPPROTO_TCP,
        src_port: 1111,
        dst_port: 2222,
        tcp_flags: TCP_SYN,
        l4_off: l4 as u16,
        payload_off: (l4 + 20) as u16,
        fragment: FRAG_FIRST,
        ext_hdrs: 4,
        ..v6_base(l4 + 21)
    };
    check(&p, want);
}

#[test]
fn ipv6_atomic_fragment_is_not_a_fragment() {
    // Fragment header with offset 0 and M clear (RFC 6946).
    let ip = Ipv6::new(v6a(), v6b()).ext(Ext::Fragment(0, false));
    let p = eth(&ip.build(&udp(1, 2)));
    let want = Summary {
        proto: IPPROTO_UDP,
        src_port: 1,
        dst_port: 2,
        l4_off: 62,
        payload_off: 70,
        fragment: FRAG_NONE,
        ext_hdrs: 1,
        ..v6_base(70)
    };
    check(&p, want);
}

#[test]
fn ipv6_later_fragment() {
    let bogus = tcp(6666, 22, TCP_SYN);
    for (off, m) in [(1u16, true), (1, false), (0x1fff, false)] {
        let ip = Ipv6::new(v6a(), v6b())
            .ext(Ext::HopByHop(0))
            .ext(Ext::Fragment(off, m));
        let p = eth(&ip.build(&bogus));
        let want = Summary {
            proto: IPPROTO_TCP,
            fragment: FRAG_LATER,
            ext_hdrs: 2,
            ..v6_base(54 + 16 + 20)
        };
        check(&p, want);
        let s = classify_eth(p.bytes.as_slice()).unwrap();
        assert!(!s.has_l4() && !s.is_syn() && !s.is_probe());
    }
    // A later fragment whose fragmentable part starts with more extension headers: walking
    // stops at the fragment header and `proto` is what it announces.
    let ip = Ipv6::new(v6a(), v6b())
        .ext(Ext::Fragment(2, true))
        .ext(Ext::DestOpts(0));
    let p = eth(&ip.build(&udp(1, 2)));
    let want = Summary {
        proto: 60,
        fragment: FRAG_LATER,
        ext_hdrs: 1,
        ..v6_base(54 + 8 + 8 + 8)
    };
    check(&p, want);
}

#[test]
fn ipv6_eight_extension_headers_ok_nine_rejected() {
    let mut ip = Ipv6::new(v6a(), v6b());
    for _ in 0..8 {
        ip = ip.ext(Ext::DestOpts(0));
    }
    let p = eth(&ip.build(&udp(7, 8)));
    let want = Summary {
        proto: IPPROTO_UDP,
        src_port: 7,
        dst_port: 8,
        l4_off: 54 + 64,
        payload_off: 54 + 72,
        ext_hdrs: 8,
        ..v6_base(54 + 72)
    };
    check(&p, want);

    let ip = ip.ext(Ext::DestOpts(0));
    let p = eth(&ip.build(&udp(7, 8)));
    assert_eq!(
        classify_eth(p.bytes.as_slice()),
        Err(ParseError::BadExtHeaders)
    );

    // Nine of mixed kinds, including a fragment header.
    let ip = Ipv6::new(v6a(), v6b())
        .ext(Ext::HopByHop(0))
        .ext(Ext::DestOpts(0))
        .ext(Ext::Routing(0))
        .ext(Ext::Fragment(0, true))
        .ext(Ext::Ah(4))
        .ext(Ext::DestOpts(0))
        .ext(Ext::Routing(0))
        .ext(Ext::DestOpts(0))
        .ext(Ext::DestOpts(0));
    let p = eth(&ip.build(&tcp(1, 2, TCP_SYN)));
    assert_eq!(
        classify_eth(p.bytes.as_slice()),
        Err(ParseError::BadExtHeaders)
    );
}

#[test]
fn ipv6_authentication_header() {
    // AH with a 12-byte ICV: payload length 4 -> (4 + 2) * 4 = 24 bytes.
    let ip = Ipv6::new(v6a(), v6b()).ext(Ext::Ah(4));
    let p = eth(&ip.build(&tcp(3333, 4444, TCP_FIN)));
    let want = Summary {
        proto: IPPROTO_TCP,
        src_port: 3333,
        dst_port: 4444,
        tcp_flags: TCP_FIN,
        l4_off: 54 + 24,
        payload_off: 54 + 24 + 20,
        ext_hdrs: 1,
        ..v6_base(54 + 44)
    };
    check(&p, want);
    // The smallest AH (length 1: 12 bytes, with an 8-byte-aligned... no ICV padding).
    let ip = Ipv6::new(v6a(), v6b())
        .ext(Ext::HopByHop(0))
        .ext(Ext::Ah(1));
    let p = eth(&ip.build(&udp(5, 6)));
    let want = Summary {
        proto: IPPROTO_UDP,
        src_port: 5,
        dst_port: 6,
        l4_off: 54 + 8 + 12,
        payload_off: 54 + 8 + 12 + 8,
        ext_hdrs: 2,
        ..v6_base(54 + 28)
    };
    check(&p, want);
}

#[test]
fn ipv6_no_next_header() {
    let p = eth(&Ipv6::new(v6a(), v6b()).build(&raw(59, &[])));
    let want = Summary {
        proto: 59,
        ..v6_base(54)
    };
    check(&p, want);
    // After an extension header, with trailing bytes that must be ignored.
    let ip = Ipv6::new(v6a(), v6b()).ext(Ext::DestOpts(0));
    let p = eth(&ip.build(&raw(59, &[0x11; 12])));
    let want = Summary {
        proto: 59,
        ext_hdrs: 1,
        ..v6_base(54 + 8 + 12)
    };
    check(&p, want);
    let s = classify_eth(p.bytes.as_slice()).unwrap();
    assert!(!s.has_l4() && s.is_probe());
}

#[test]
fn ipv6_extension_header_past_end() {
    // A hop-by-hop header that claims 2048 bytes.
    let ip = Ipv6::new(v6a(), v6b()).ext(Ext::HopByHop(255));
    let mut p = eth(&ip.build(&udp(1, 2)));
    p.bytes.truncate(54 + 100);
    assert_eq!(
        classify_eth(p.bytes.as_slice()),
        Err(ParseError::BadExtHeaders)
    );
    // The same followed by "no next header": still past the end.
    let ip = Ipv6::new(v6a(), v6b()).ext(Ext::HopByHop(3));
    let mut p = eth(&ip.build(&raw(59, &[])));
    p.bytes.truncate(54 + 31);
    assert_eq!(
        classify_eth(p.bytes.as_slice()),
        Err(ParseError::BadExtHeaders)
    );
    p.bytes.push(0);
    assert_eq!(classify_eth(p.bytes.as_slice()).map(|s| s.ext_hdrs), Ok(1));
}

#[test]
fn ipv6_esp_is_opaque() {
    let p = eth(&Ipv6::new(v6a(), v6b()).build(&raw(50, &[0; 16])));
    let want = Summary {
        proto: 50,
        ..v6_base(70)
    };
    check(&p, want);
}

// ----------------------------------------------------------------------------------------
// classify_ip / classify_l3
// ----------------------------------------------------------------------------------------

#[test]
fn classify_ip_raw_ipv4_and_ipv6() {
    let p = raw_ip(&Ipv4::new(A, B).options(4).build(&tcp(1, 2, TCP_SYN)));
    let want = Summary {
        proto: IPPROTO_TCP,
        src_port: 1,
        dst_port: 2,
        tcp_flags: TCP_SYN,
        l3_off: 0,
        l4_off: 24,
        payload_off: 44,
        ..v4_base(44)
    };
    assert_eq!(classify_ip(p.bytes.as_slice(), 0), Ok(want));
    check_prefixes(&p, &want, ip_classify);

    let p = raw_ip(&Ipv6::new(v6a(), v6b()).build(&icmpv6(128, 0)));
    let want = Summary {
        proto: IPPROTO_ICMPV6,
        icmp_type: 128,
        l3_off: 0,
        l4_off: 40,
        payload_off: 48,
        ..v6_base(48)
    };
    assert_eq!(classify_ip(p.bytes.as_slice(), 0), Ok(want));
    check_prefixes(&p, &want, ip_classify);
}

#[test]
fn classify_ip_at_offset() {
    // E.g. a 4-byte loopback/null header in front.
    let net = Ipv4::new(A, B).build(&udp(1, 2));
    let mut b = vec![2, 0, 0, 0];
    b.extend_from_slice(&net.bytes);
    let want = Summary {
        proto: IPPROTO_UDP,
        src_port: 1,
        dst_port: 2,
        l3_off: 4,
        l4_off: 24,
        payload_off: 32,
        ..v4_base(32)
    };
    assert_eq!(classify_ip(b.as_slice(), 4), Ok(want));
    assert_eq!(classify_ip(b.as_slice(), 32), Err(ParseError::Truncated));
    assert_eq!(
        classify_ip(b.as_slice(), usize::MAX),
        Err(ParseError::Truncated)
    );
}

#[test]
fn classify_ip_bad_version() {
    for v in [0u8, 1, 5, 7, 15] {
        let p = raw_ip(&Ipv4::new(A, B).version(v).build(&udp(1, 2)));
        assert_eq!(
            classify_ip(p.bytes.as_slice(), 0),
            Err(ParseError::BadIpHeader),
            "v{v}"
        );
        // The version is read with the byte after it (one load the verifier can check).
        assert_eq!(
            classify_ip(&p.bytes[..2], 0),
            Err(ParseError::BadIpHeader),
            "v{v}"
        );
        assert_eq!(
            classify_ip(&p.bytes[..1], 0),
            Err(ParseError::Truncated),
            "v{v}"
        );
    }
    assert_eq!(classify_ip(&[] as &[u8], 0), Err(ParseError::Truncated));
}

#[test]
fn classify_l3_direct() {
    let net = Ipv4::new(A, B).build(&udp(1, 2));
    let s = classify_l3(net.bytes.as_slice(), ETH_P_IPV4, 0).unwrap();
    assert_eq!((s.family, s.l3_off, s.l4_off, s.src_port), (4, 0, 20, 1));
    let s = classify_l3(net.bytes.as_slice(), ETH_P_ARP, 0).unwrap();
    assert_eq!(
        s,
        Summary {
            wire_len: 28,
            ethertype: ETH_P_ARP,
            ..blank()
        }
    );
}

// ----------------------------------------------------------------------------------------
// Malformed
// ----------------------------------------------------------------------------------------

#[test]
fn ipv4_ihl_below_5() {
    for ihl in 0..5 {
        let p = eth(&Ipv4::new(A, B).ihl(ihl).build(&tcp(1, 2, TCP_SYN)));
        assert_eq!(
            classify_eth(p.bytes.as_slice()),
            Err(ParseError::BadIpHeader),
            "ihl {ihl}"
        );
    }
}

#[test]
fn ipv4_ihl_past_end() {
    // IHL 15 but only 20 header bytes and nothing else.
    let p = eth(&Ipv4::new(A, B).ihl(15).tot_len(60).build(&raw(6, &[])));
    assert_eq!(p.bytes.len(), 34);
    assert_eq!(classify_eth(p.bytes.as_slice()), Err(ParseError::Truncated));
}

#[test]
fn ipv4_wrong_version() {
    for v in [0u8, 6, 5, 15] {
        let p = eth(&Ipv4::new(A, B).version(v).build(&udp(1, 2)));
        assert_eq!(
            classify_eth(p.bytes.as_slice()),
            Err(ParseError::BadIpHeader),
            "v{v}"
        );
    }
    // An IPv6 header announced with the IPv6 EtherType but version 4.
    let p = eth(&Ipv6::new(v6a(), v6b()).version(4).build(&udp(1, 2)));
    assert_eq!(
        classify_eth(p.bytes.as_slice()),
        Err(ParseError::BadIpHeader)
    );
}

#[test]
fn ipv4_tot_len_below_header() {
    for tot in [0u16, 1, 19] {
        let p = eth(&Ipv4::new(A, B).tot_len(tot).build(&udp(1, 2)));
        assert_eq!(
            classify_eth(p.bytes.as_slice()),
            Err(ParseError::BadIpHeader),
            "{tot}"
        );
    }
    // Below the header with options.
    let p = eth(&Ipv4::new(A, B).options(8).tot_len(27).build(&udp(1, 2)));
    assert_eq!(
        classify_eth(p.bytes.as_slice()),
        Err(ParseError::BadIpHeader)
    );
    // Exactly the header: the UDP header in the frame lies outside the IP payload, so it is
    // not read.
    let p = eth(&Ipv4::new(A, B).tot_len(20).build(&udp(1, 2)));
    assert_eq!(
        classify_eth(p.bytes.as_slice()),
        Err(ParseError::L4Truncated)
    );
}

#[test]
fn l4_header_must_lie_within_the_ip_payload() {
    // Ethernet pads a frame to 60 bytes: an IPv4 packet of 20 + 8 bytes whose "TCP header"
    // would run into the padding is cut, not a TCP packet with padding for flags.
    let tcp_hdr = tcp(4000, 80, TCP_SYN).bytes();
    for cut in [0usize, 4, 8, 13, 19] {
        let mut p = eth(&Ipv4::new(A, B).build(&raw(IPPROTO_TCP, &tcp_hdr[..cut])));
        p.bytes.resize(60, 0);
        assert_eq!(
            classify_eth(p.bytes.as_slice()),
            Err(ParseError::L4Truncated),
            "{cut} bytes of TCP"
        );
    }
    // TCP options past the IP payload.
    let l4 = tcp(1, 2, TCP_SYN).with_tcp_opts(&[1; 20]);
    let ip = Ipv4::new(A, B).tot_len(20 + 24);
    let p = eth(&ip.build(&l4));
    assert_eq!(
        classify_eth(p.bytes.as_slice()),
        Err(ParseError::L4Truncated)
    );
    // UDP and ICMP likewise; IPv6 by its payload length.
    for l4 in [udp(1, 2), icmp(8, 0)] {
        let mut p = eth(&Ipv4::new(A, B).tot_len(24).build(&l4));
        p.bytes.resize(60, 0);
        assert_eq!(
            classify_eth(p.bytes.as_slice()),
            Err(ParseError::L4Truncated)
        );
    }
    let mut p = eth(&Ipv6::new(v6a(), v6b()).build(&raw(IPPROTO_UDP, &[0, 1, 0, 2])));
    p.bytes.extend_from_slice(&[0; 8]);
    assert_eq!(
        classify_eth(p.bytes.as_slice()),
        Err(ParseError::L4Truncated)
    );
    // A payload length of 0 (jumbogram) runs to the end of the packet.
    let mut p = eth(&Ipv6::new(v6a(), v6b()).build(&udp(5, 6)));
    p.bytes[18..20].copy_from_slice(&[0, 0]);
    assert_eq!(classify_eth(p.bytes.as_slice()).map(|s| s.dst_port), Ok(6));
}

#[test]
fn tiny_first_fragments_keep_what_they_hold() {
    // `nmap -f`: 8 bytes of TCP in the first fragment (ports and sequence number, no flags),
    // padded to 60 bytes on the wire; `--mtu 16`: 16 bytes (flags included).
    let tcp_hdr = tcp(40000, 22, TCP_SYN).bytes();
    for (cut, flags) in [(2usize, None), (8, None), (13, None), (16, Some(TCP_SYN))] {
        let ip = Ipv4::new(A, B).frag(0, true);
        let mut p = eth(&ip.build(&raw(IPPROTO_TCP, &tcp_hdr[..cut])));
        p.bytes.resize(p.bytes.len().max(60), 0);
        let s = classify_eth(p.bytes.as_slice()).unwrap();
        assert_eq!(s.fragment, FRAG_TINY, "{cut}");
        assert_eq!(
            (s.src_port, s.dst_port),
            if cut >= 4 { (40000, 22) } else { (0, 0) },
            "{cut}"
        );
        assert_eq!(s.tcp_flags, flags.unwrap_or(0), "{cut}");
        assert!(!s.has_l4() && !s.is_syn());
        // A probe by the ports it holds (the evasion must not hide the scan).
        assert_eq!(s.is_probe(), cut >= 4, "{cut}");
        assert_eq!((s.src, s.dst, s.proto), (mapped(A), mapped(B), IPPROTO_TCP));
    }
    // A whole header in the first fragment is an ordinary first fragment.
    let ip = Ipv4::new(A, B).frag(0, true);
    let s = classify_eth(eth(&ip.build(&tcp(1, 2, TCP_SYN))).bytes.as_slice()).unwrap();
    assert_eq!((s.fragment, s.l4_off), (FRAG_FIRST, 34));
    // UDP split after its ports, and IPv6.
    let udp_hdr = udp(53, 4444).bytes();
    let ip = Ipv4::new(A, B).frag(0, true);
    let s = classify_eth(
        eth(&ip.build(&raw(IPPROTO_UDP, &udp_hdr[..4])))
            .bytes
            .as_slice(),
    )
    .unwrap();
    assert_eq!((s.fragment, s.src_port, s.dst_port), (FRAG_TINY, 53, 4444));
    let ip = Ipv6::new(v6a(), v6b()).ext(Ext::Fragment(0, true));
    let s = classify_eth(
        eth(&ip.build(&raw(IPPROTO_TCP, &tcp_hdr[..8])))
            .bytes
            .as_slice(),
    )
    .unwrap();
    assert_eq!((s.fragment, s.dst_port, s.ext_hdrs), (FRAG_TINY, 22, 1));
    // Not a first fragment: a cut header is an error as before.
    let p = eth(&Ipv4::new(A, B).build(&raw(IPPROTO_TCP, &tcp_hdr[..8])));
    assert_eq!(
        classify_eth(p.bytes.as_slice()),
        Err(ParseError::L4Truncated)
    );
}

#[test]
fn tcp_data_offset_below_5() {
    for doff in 0..5 {
        let p = eth(&Ipv4::new(A, B).build(&tcp(1, 2, TCP_SYN).with_doff(doff)));
        assert_eq!(
            classify_eth(p.bytes.as_slice()),
            Err(ParseError::BadL4Header),
            "{doff}"
        );
        let p = eth(&Ipv6::new(v6a(), v6b()).build(&tcp(1, 2, TCP_SYN).with_doff(doff)));
        assert_eq!(
            classify_eth(p.bytes.as_slice()),
            Err(ParseError::BadL4Header),
            "{doff}"
        );
    }
}

#[test]
fn tcp_data_offset_past_end() {
    // The header claims 60 bytes, only the fixed 20 are there.
    let p = eth(&Ipv4::new(A, B).build(&tcp(1, 2, TCP_SYN).with_doff(15)));
    assert_eq!(p.bytes.len(), 54);
    assert_eq!(
        classify_eth(p.bytes.as_slice()),
        Err(ParseError::L4Truncated)
    );
}

#[test]
fn l4_cut_is_l4_truncated() {
    let cases = [
        eth(&Ipv4::new(A, B).build(&tcp(1, 2, TCP_SYN))),
        eth(&Ipv4::new(A, B).build(&udp(1, 2))),
        eth(&Ipv4::new(A, B).build(&icmp(8, 0))),
        eth(&Ipv6::new(v6a(), v6b()).build(&tcp(1, 2, TCP_SYN))),
        eth(&Ipv6::new(v6a(), v6b()).build(&udp(1, 2))),
        eth(&Ipv6::new(v6a(), v6b()).build(&icmpv6(128, 0))),
    ];
    for p in cases {
        for k in p.net_end..p.l4_end {
            assert_eq!(
                classify_eth(&p.bytes[..k]),
                Err(ParseError::L4Truncated),
                "{k}"
            );
        }
        assert!(classify_eth(&p.bytes[..p.l4_end]).is_ok());
    }
}

#[test]
fn short_frames_are_truncated() {
    for k in 0..14 {
        assert_eq!(classify_eth(&[0x08u8; 14][..k]), Err(ParseError::Truncated));
    }
    // EtherType IPv4/IPv6 with nothing after it.
    let mut b = vec![0u8; 12];
    b.extend_from_slice(&ETH_P_IPV4.to_be_bytes());
    assert_eq!(classify_eth(b.as_slice()), Err(ParseError::Truncated));
    b[12..14].copy_from_slice(&ETH_P_IPV6.to_be_bytes());
    assert_eq!(classify_eth(b.as_slice()), Err(ParseError::Truncated));
    // A tag with nothing after it.
    b[12..14].copy_from_slice(&ETH_P_8021Q.to_be_bytes());
    assert_eq!(classify_eth(b.as_slice()), Err(ParseError::Truncated));
}

#[test]
fn ip_family_does_not_leak_into_non_ip() {
    // An IPv4-looking payload behind a non-IP EtherType is not parsed.
    let net = Ipv4::new(A, B).build(&tcp(1, 2, TCP_SYN));
    let p = eth(&non_ip(0x9000, &net.bytes));
    let s = classify_eth(p.bytes.as_slice()).unwrap();
    assert_eq!(
        s,
        Summary {
            wire_len: 54,
            ethertype: 0x9000,
            l3_off: 14,
            ..blank()
        }
    );
}

// ----------------------------------------------------------------------------------------
// Snapshot
// ----------------------------------------------------------------------------------------

#[test]
fn snapshot_wire_len_is_orig_len() {
    let p = eth(&Ipv4::new(A, B).build(&tcp(1, 2, TCP_SYN).with_payload(&[0; 1400])));
    let snap = Snapshot {
        data: &p.bytes[..96],
        orig_len: p.bytes.len(),
    };
    assert_eq!(snap.len(), 96);
    assert_eq!(snap.wire_len(), 1454);
    assert!(!snap.is_empty());
    let s = classify_eth(&snap).unwrap();
    let want = Summary {
        proto: IPPROTO_TCP,
        src_port: 1,
        dst_port: 2,
        tcp_flags: TCP_SYN,
        l4_off: 34,
        payload_off: 54,
        ..v4_base(1454)
    };
    assert_eq!(s, want);
    // Through a reference, too.
    assert_eq!(classify_eth(&&snap), Ok(want));
    // orig_len smaller than the capture: the capture length wins.
    let snap = Snapshot {
        data: &p.bytes[..96],
        orig_len: 10,
    };
    assert_eq!(snap.wire_len(), 96);
    assert_eq!(classify_eth(&snap).map(|s| s.wire_len), Ok(96));
    // Errors are judged on the captured bytes, not the wire length.
    let snap = Snapshot {
        data: &p.bytes[..40],
        orig_len: 1454,
    };
    assert_eq!(classify_eth(&snap), Err(ParseError::L4Truncated));
    let snap = Snapshot {
        data: &[],
        orig_len: 1454,
    };
    assert!(snap.is_empty());
    assert_eq!(classify_eth(&snap), Err(ParseError::Truncated));
}

#[test]
fn slice_packet_load_bounds() {
    let b: &[u8] = &[1, 2, 3, 4];
    assert_eq!(b.load::<[u8; 4]>(0), Some([1, 2, 3, 4]));
    assert_eq!(b.load::<[u8; 2]>(2), Some([3, 4]));
    assert_eq!(b.load::<[u8; 2]>(3), None);
    assert_eq!(b.load::<u8>(4), None);
    assert_eq!(b.load::<u8>(usize::MAX), None);
    assert_eq!(b.load::<[u8; 0]>(4), Some([]));
    assert_eq!(Packet::len(b), 4);
    assert_eq!(b.wire_len(), 4);
}

// ----------------------------------------------------------------------------------------
// Error names
// ----------------------------------------------------------------------------------------

#[test]
fn parse_error_slots_and_names() {
    use agent_common::classify::PARSE_ERROR_SLOTS;
    let mut names = std::collections::HashSet::new();
    for (i, e) in ParseError::ALL.iter().enumerate() {
        assert_eq!(*e as usize, i + 1);
        assert!((*e as usize) < PARSE_ERROR_SLOTS);
        assert!(names.insert(e.name()));
        assert!(
            e.name()
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        );
    }
    assert_eq!(ParseError::L4Truncated.name(), "l4_truncated");
    assert_eq!(std::mem::size_of::<Summary>(), 128);
}

#[test]
fn eth_and_ip_helpers_agree() {
    // The same IP packet classified framed and raw differs only by the offsets.
    let net = Ipv6::new(v6a(), v6b()).ext(Ext::HopByHop(1)).build(&tcp(
        9,
        10,
        TCP_SYN | TCP_ECE | TCP_CWR,
    ));
    let framed = classify_eth(eth(&net).bytes.as_slice()).unwrap();
    let raw = classify_ip(raw_ip(&net).bytes.as_slice(), 0).unwrap();
    assert_eq!(
        raw,
        Summary {
            wire_len: framed.wire_len - 14,
            l3_off: 0,
            l4_off: framed.l4_off - 14,
            payload_off: framed.payload_off - 14,
            ..framed
        }
    );
    assert!(eth_classify(&eth(&net).bytes).is_ok());
}

#[test]
fn icmp_errors_quote_the_probe_they_answer() {
    use agent_common::classify::{IPPROTO_SCTP, SF_Q_L4, SF_Q_MATCH};
    use picket_frames as f;
    use std::net::{Ipv4Addr, Ipv6Addr};
    let (a, b, c) = (
        Ipv4Addr::from(A),
        Ipv4Addr::from(B),
        Ipv4Addr::new(203, 0, 113, 9),
    );
    // (quoted packet, its protocol, quoted ports or type)
    let quoted_v4 = |src: Ipv4Addr| {
        [
            (
                f::ipv4(src, b, IPPROTO_TCP, 0, &f::tcp(40000, 80, TCP_SYN)),
                IPPROTO_TCP,
                (40000, 80),
            ),
            (
                f::ipv4(src, b, IPPROTO_UDP, 0, &f::udp(53, 161, b"")),
                IPPROTO_UDP,
                (53, 161),
            ),
            (
                f::ipv4(src, b, IPPROTO_SCTP, 0, &f::sctp(7, 9, 1)),
                IPPROTO_SCTP,
                (7, 9),
            ),
            (
                f::ipv4(src, b, IPPROTO_ICMP, 0, &f::icmp(8, 0)),
                IPPROTO_ICMP,
                (0, 8),
            ),
            (f::ipv4(src, b, 99, 0, &[0; 8]), 99, (0, 0)),
        ]
    };
    for (probe, proto, (sport, dport)) in quoted_v4(a) {
        // Port unreachable from the target, time exceeded from a router: both quote it.
        for (ty, code, from) in [(3u8, 3u8, b), (11, 0, c), (3, 13, c)] {
            let err = f::ipv4(
                from,
                a,
                IPPROTO_ICMP,
                0,
                &f::icmp_error(ty, code, &f::quote(&probe)),
            );
            let s = classify_eth(err.as_slice()).unwrap();
            assert_eq!(
                (s.q_dst, s.q_proto, s.q_sport, s.q_dport, s.sflags),
                (mapped(B), proto, sport, dport, SF_Q_MATCH | SF_Q_L4),
                "proto {proto} type {ty}"
            );
            assert!(s.is_quoting_error() && !s.is_probe());
            assert_eq!((s.src_port, s.dst_port), (0, 0));
        }
    }
    // A quote of a packet the error's destination did not send answers nothing of its.
    for (probe, ..) in quoted_v4(c) {
        let err = f::ipv4(
            b,
            a,
            IPPROTO_ICMP,
            0,
            &f::icmp_error(3, 3, &f::quote(&probe)),
        );
        let s = classify_eth(err.as_slice()).unwrap();
        assert_eq!(s.sflags & SF_Q_MATCH, 0);
        assert!(!s.is_quoting_error());
    }
    // A quote cut after the IP header: the host and protocol, no ports.
    let probe = f::ipv4(a, b, IPPROTO_UDP, 0, &f::udp(5000, 161, b""));
    let err = f::ipv4(
        b,
        a,
        IPPROTO_ICMP,
        0,
        &f::icmp_error(3, 3, &f::quote(&probe)[..20]),
    );
    let s = classify_eth(err.as_slice()).unwrap();
    assert_eq!(
        (s.q_proto, s.q_dport, s.sflags),
        (IPPROTO_UDP, 0, SF_Q_MATCH)
    );
    // Not an error type: nothing is read as a quote.
    let echo = f::ipv4(
        b,
        a,
        IPPROTO_ICMP,
        0,
        &f::icmp_error(0, 0, &f::quote(&probe)),
    );
    let s = classify_eth(echo.as_slice()).unwrap();
    assert_eq!((s.q_proto, s.sflags, s.q_dst), (0, 0, [0; 16]));
    // ICMPv6 port unreachable quoting UDP.
    let (a6, b6) = (Ipv6Addr::from(v6a()), Ipv6Addr::from(v6b()));
    let probe = f::ipv6(a6, b6, &[], IPPROTO_UDP, &f::udp(5000, 547, b""));
    let err = f::ipv6(
        b6,
        a6,
        &[],
        IPPROTO_ICMPV6,
        &f::icmp_error(1, 4, &f::quote(&probe)),
    );
    let s = classify_eth(err.as_slice()).unwrap();
    assert_eq!(
        (s.q_dst, s.q_proto, s.q_sport, s.q_dport, s.sflags),
        (v6b(), IPPROTO_UDP, 5000, 547, SF_Q_MATCH | SF_Q_L4)
    );
    // Every prefix of an error either fails cleanly or reads a consistent quote.
    let probe = f::ipv4(a, b, IPPROTO_TCP, 0, &f::tcp(40000, 80, TCP_SYN));
    let err = f::ipv4(
        b,
        a,
        IPPROTO_ICMP,
        0,
        &f::icmp_error(3, 3, &f::quote(&probe)),
    );
    for n in 0..err.len() {
        if let Ok(s) = classify_eth(&Snapshot {
            data: &err[..n],
            orig_len: err.len(),
        }) {
            assert!(s.q_proto == 0 || s.q_proto == IPPROTO_TCP, "prefix {n}");
        }
    }
}
