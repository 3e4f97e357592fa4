//! `Summary::is_probe`, `is_syn`, `is_syn_ack`, `is_rst`, `is_icmp`, `is_ip`, `has_l4`, on
//! classified packets and on hand-made summaries.

use agent_common::{
    Summary,
    classify::{
        IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP, TCP_ACK, TCP_CWR, TCP_ECE, TCP_FIN,
        TCP_NS, TCP_PSH, TCP_RST, TCP_SYN, TCP_URG,
    },
    classify_eth,
};
use picket_frames::layers::*;

const A: [u8; 4] = [192, 0, 2, 1];
const B: [u8; 4] = [198, 51, 100, 7];

fn v4(l4: L4) -> Summary {
    classify_eth(eth(&Ipv4::new(A, B).build(&l4)).bytes.as_slice()).unwrap()
}

fn v6p(l4: L4) -> Summary {
    classify_eth(
        eth(&Ipv6::new(v6(0, 1), v6(0, 2)).build(&l4))
            .bytes
            .as_slice(),
    )
    .unwrap()
}

/// (is_syn, is_syn_ack, is_rst, is_probe)
type Preds = (bool, bool, bool, bool);

fn preds(s: &Summary) -> Preds {
    (s.is_syn(), s.is_syn_ack(), s.is_rst(), s.is_probe())
}

#[test]
fn tcp_flag_predicates() {
    #[rustfmt::skip]
    let table: &[(&str, u16, Preds)] = &[
        // name           flags                                   syn    synack rst    probe
        ("SYN",           TCP_SYN,                                (true,  false, false, true)),
        ("SYN+ECE+CWR",   TCP_SYN | TCP_ECE | TCP_CWR,            (true,  false, false, true)),
        ("SYN+NS",        TCP_SYN | TCP_NS,                       (true,  false, false, true)),
        ("SYN+FIN",       TCP_SYN | TCP_FIN,                      (true,  false, false, true)),
        ("SYN+ACK",       TCP_SYN | TCP_ACK,                      (false, true,  false, false)),
        ("SYN+ACK+ECE",   TCP_SYN | TCP_ACK | TCP_ECE,            (false, true,  false, false)),
        ("SYN+RST",       TCP_SYN | TCP_RST,                      (true,  false, true,  true)),
        ("SYN+ACK+RST",   TCP_SYN | TCP_ACK | TCP_RST,            (false, true,  true,  true)),
        ("RST",           TCP_RST,                                (false, false, true,  false)),
        ("RST+ACK",       TCP_RST | TCP_ACK,                      (false, false, true,  false)),
        ("ACK",           TCP_ACK,                                (false, false, false, false)),
        ("PSH+ACK",       TCP_PSH | TCP_ACK,                      (false, false, false, false)),
        ("FIN+ACK",       TCP_FIN | TCP_ACK,                      (false, false, false, false)),
        ("FIN scan",      TCP_FIN,                                (false, false, false, true)),
        ("NULL scan",     0,                                      (false, false, false, true)),
        ("Xmas scan",     TCP_FIN | TCP_PSH | TCP_URG,            (false, false, false, true)),
        ("Maimon scan",   TCP_FIN | TCP_ACK,                      (false, false, false, false)),
        ("all flags",     0x1ff,                                  (false, true,  true,  true)),
    ];
    for (name, flags, want) in table {
        for s in [v4(tcp(40000, 80, *flags)), v6p(tcp(40000, 80, *flags))] {
            assert_eq!(preds(&s), *want, "{name} family {}", s.family);
            assert!(s.is_ip() && s.has_l4() && !s.is_icmp());
        }
    }
}

#[test]
fn udp_from_any_port_is_a_probe() {
    // What became of it decides (`-sU -g 53` sends from 53): the outcome join, not the ports.
    for sport in [0u16, 53, 123, 443, 1023, 1024, 33434, 65535] {
        for s in [v4(udp(sport, 53)), v6p(udp(sport, 161))] {
            assert!(s.is_probe(), "from port {sport}");
            assert_eq!(
                (s.is_syn(), s.is_syn_ack(), s.is_rst(), s.is_icmp()),
                (false, false, false, false)
            );
        }
    }
}

#[test]
fn icmp_probe_types() {
    for ty in 0..=255u8 {
        let s = v4(icmp(ty, 0));
        assert!(s.is_icmp());
        assert_eq!(s.is_probe(), matches!(ty, 8 | 13 | 17), "ICMP type {ty}");
        let s = v6p(icmpv6(ty, 0));
        assert!(s.is_icmp());
        assert_eq!(s.is_probe(), ty == 128, "ICMPv6 type {ty}");
    }
}

#[test]
fn icmp_of_the_wrong_family_is_neither_icmp_nor_a_probe() {
    // ICMPv6 (58) carried over IPv4, ICMP (1) carried over IPv6.
    let s = v4(icmpv6(128, 0));
    assert_eq!((s.family, s.proto, s.icmp_type), (4, IPPROTO_ICMPV6, 128));
    assert!(!s.is_icmp() && !s.is_probe());
    let s = v6p(icmp(8, 0));
    assert_eq!((s.family, s.proto, s.icmp_type), (6, IPPROTO_ICMP, 8));
    assert!(!s.is_icmp() && !s.is_probe());
}

#[test]
fn fragments() {
    // A first fragment carries the L4 header and counts.
    let s = classify_eth(
        eth(&Ipv4::new(A, B).frag(0, true).build(&tcp(1, 2, TCP_SYN)))
            .bytes
            .as_slice(),
    )
    .unwrap();
    assert!(s.is_syn() && s.is_probe());
    // A later one never does, whatever its bytes look like.
    for l4 in [
        tcp(1, 2, TCP_SYN),
        tcp(1, 2, TCP_RST),
        udp(5000, 53),
        icmp(8, 0),
    ] {
        let s = classify_eth(
            eth(&Ipv4::new(A, B).frag(1, true).build(&l4))
                .bytes
                .as_slice(),
        )
        .unwrap();
        assert_eq!(preds(&s), (false, false, false, false));
        assert!(s.is_ip() && !s.has_l4());
        let ip = Ipv6::new(v6(0, 1), v6(0, 2)).ext(Ext::Fragment(1, false));
        let s = classify_eth(eth(&ip.build(&l4)).bytes.as_slice()).unwrap();
        assert_eq!(preds(&s), (false, false, false, false));
    }
}

#[test]
fn hand_made_summaries_need_an_l4_header() {
    let base = Summary {
        family: 4,
        proto: IPPROTO_TCP,
        tcp_flags: TCP_SYN,
        l3_off: 14,
        ..blank()
    };
    // l4_off == 0: nothing about flags or ports counts.
    assert!(!base.has_l4());
    assert_eq!(preds(&base), (false, false, false, false));
    assert_eq!(
        preds(&Summary {
            tcp_flags: TCP_SYN | TCP_ACK,
            ..base
        }),
        (false, false, false, false)
    );
    assert_eq!(
        preds(&Summary {
            tcp_flags: TCP_RST,
            ..base
        }),
        (false, false, false, false)
    );
    let udp = Summary {
        proto: IPPROTO_UDP,
        src_port: 5000,
        ..base
    };
    assert!(!udp.is_probe());
    // With an L4 header they do.
    let with = Summary {
        l4_off: 34,
        payload_off: 54,
        ..base
    };
    assert_eq!(preds(&with), (true, false, false, true));
    // TCP flags on a UDP summary are ignored.
    let udp = Summary {
        proto: IPPROTO_UDP,
        l4_off: 34,
        payload_off: 42,
        ..base
    };
    assert_eq!(
        (udp.is_syn(), udp.is_syn_ack(), udp.is_rst()),
        (false, false, false)
    );
    // Other protocols are probes of an IP-protocol scan (`-sO`), whatever follows, unless
    // they are later fragments.
    let gre = Summary { proto: 47, ..base };
    assert!(gre.is_probe());
    assert!(
        !Summary {
            fragment: agent_common::classify::FRAG_LATER,
            ..gre
        }
        .is_probe()
    );
    // Non-IP.
    let arp = Summary {
        ethertype: 0x0806,
        l3_off: 14,
        ..blank()
    };
    assert!(!arp.is_ip() && !arp.has_l4() && !arp.is_probe() && !arp.is_icmp());
}

#[test]
fn sctp_openings_are_probes_and_answers_are_not() {
    use agent_common::classify::{
        IPPROTO_SCTP, SCTP_ABORT, SCTP_COOKIE_ACK, SCTP_COOKIE_ECHO, SCTP_INIT, SCTP_INIT_ACK,
    };
    for (chunk, probe) in [
        (SCTP_INIT, true),
        (SCTP_COOKIE_ECHO, true),
        (SCTP_INIT_ACK, false),
        (SCTP_ABORT, false),
        (SCTP_COOKIE_ACK, false),
        (0, false),
    ] {
        let l4 = raw(IPPROTO_SCTP, &picket_frames::sctp(5000, 80, chunk));
        for s in [v4(l4.clone()), v6p(l4)] {
            assert_eq!(s.is_probe(), probe, "chunk {chunk}");
            assert_eq!((s.src_port, s.dst_port, s.sctp_chunk), (5000, 80, chunk));
            assert!(s.has_l4());
        }
    }
}
