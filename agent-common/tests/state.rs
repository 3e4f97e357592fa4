//! State-update tests: per-source, per-destination and global counters, and the
//! per-destination decision table.
#![cfg(feature = "std")]

use agent_common::{
    ParseError, Summary,
    classify::{
        ETH_P_ARP, FRAG_FIRST, FRAG_LATER, IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP,
        PARSE_ERROR_SLOTS, TCP_ACK, TCP_FIN, TCP_PSH, TCP_RST, TCP_SYN, TCP_URG,
    },
    classify_eth,
    slots::{DstSlot, SrcSlot, account_dst},
    state::{AddrFilter, Globals, PlainAdd, SrcState},
};
use picket_frames::layers::*;

const ME: [u8; 4] = [203, 0, 113, 9];

fn classify(p: &Pkt) -> Summary {
    classify_eth(p.bytes.as_slice()).expect("valid packet")
}

fn v4_to(dst: [u8; 4], l4: L4) -> Summary {
    classify(&eth(&Ipv4::new(ME, dst).build(&l4)))
}

fn v4_from(src: [u8; 4], l4: L4) -> Summary {
    classify(&eth(&Ipv4::new(src, [10, 0, 0, 1]).build(&l4)))
}

fn v6_to(dst: [u8; 16], l4: L4) -> Summary {
    classify(&eth(&Ipv6::new(v6(0xffff, 1), dst).build(&l4)))
}

fn syn_to_port(port: u16) -> Summary {
    v4_to([10, 0, 0, 1], tcp(40000, port, TCP_SYN))
}

/// The `i`-th IPv4 host of 10.0.0.0/8.
fn host4(i: u32) -> [u8; 4] {
    let b = (0x0a00_0000 | (i + 1)).to_be_bytes();
    [b[0], b[1], b[2], b[3]]
}

/// The `i`-th IPv6 host of 2001:db8::/32.
fn host6(i: u32) -> [u8; 16] {
    v6((i >> 16) as u16, i as u16)
}

fn fresh() -> SrcState {
    let mut st = SrcState::ZERO;
    st.init(1_000);
    st
}

// ----------------------------------------------------------------------------------------
// SrcState counters
// ----------------------------------------------------------------------------------------

#[test]
fn src_init() {
    let mut st = SrcState::ZERO;
    st.probes = 99;
    st.last_dst = [7; 16];
    st.init(42);
    let mut want = SrcState::ZERO;
    want.first_seen_ns = 42;
    assert_eq!(st, want);
}

#[test]
fn src_counters_per_protocol() {
    let mut st = fresh();
    let tcp_syn = v4_to([10, 0, 0, 1], tcp(40000, 80, TCP_SYN));
    let tcp_ack = v4_to([10, 0, 0, 1], tcp(40000, 80, TCP_ACK));
    let udp_hi = v4_to([10, 0, 0, 1], udp(50000, 53));
    let udp_lo = v4_to([10, 0, 0, 1], udp(53, 50000));
    let ping = v4_to([10, 0, 0, 1], icmp(8, 0));
    let unreach = v4_to([10, 0, 0, 1], icmp(3, 1));
    let ping6 = v6_to(host6(1), icmpv6(128, 0));
    let gre = v4_to([10, 0, 0, 1], raw(47, &[0; 8]));
    let later = classify(&eth(&Ipv4::new(ME, [10, 0, 0, 1])
        .frag(10, false)
        .build(&udp(1, 2))));
    let first = classify(&eth(&Ipv4::new(ME, [10, 0, 0, 1])
        .frag(0, true)
        .build(&tcp(40000, 443, TCP_SYN))));
    assert_eq!(later.fragment, FRAG_LATER);
    assert_eq!(first.fragment, FRAG_FIRST);

    let all = [
        tcp_syn, tcp_ack, udp_hi, udp_lo, ping, unreach, ping6, gre, later, first,
    ];
    let mut now = 1_000;
    let mut bytes = 0;
    let mut sent = SrcSlot::default();
    for s in &all {
        now += 10;
        bytes += s.wire_len;
        let before = st.last_seen_ns;
        st.observe::<PlainAdd>(s, now);
        assert_eq!(st.last_seen_ns, if s.is_probe() { now } else { before });
        sent.observe_sent(s);
    }
    // The sender slot counts every packet; the scan state only the probes.
    assert_eq!((sent.head.pkts, sent.head.bytes), (10, bytes));
    assert_eq!(
        (sent.syn, sent.tcp_other),
        (2, 1),
        "SYN and fragment SYN; ACK"
    );
    assert_eq!(sent.udp, 3, "the two datagrams and the later UDP fragment");
    assert_eq!(
        (sent.icmp_req, sent.icmp_other),
        (2, 1),
        "echo, echo6; unreachable"
    );
    assert_eq!(sent.other, 1, "GRE");
    assert_eq!(sent.frags, 2);
    // Probes: SYN, both datagrams (UDP from any port), echo, echo6, GRE (an IP-protocol
    // probe), first-fragment SYN.
    assert_eq!(st.probes, 7);
    assert_eq!(st.first_seen_ns, 1_000);
}

#[test]
fn src_probes_are_tcp_without_ack_or_rst() {
    let mut st = fresh();
    for flags in [
        TCP_SYN,
        TCP_SYN | TCP_ACK,
        TCP_SYN | TCP_FIN,
        TCP_SYN | TCP_RST,
        TCP_ACK,
        TCP_RST,
        0,
    ] {
        st.observe::<PlainAdd>(&syn_flags(flags), 2_000);
    }
    // Probes: TCP without ACK and without RST: SYN, SYN|FIN, NULL; and SYN|RST, which no
    // stack sends.
    assert_eq!(st.probes, 4);
}

fn syn_flags(flags: u16) -> Summary {
    v4_to([10, 0, 0, 1], tcp(40000, 80, flags))
}

#[test]
fn src_non_probes_leave_the_state_alone() {
    let mut st = fresh();
    for port in 1..=100u16 {
        st.observe::<PlainAdd>(&v4_to(host4(u32::from(port)), tcp(40000, port, TCP_ACK)), 1);
        // (UDP from any port is a probe: what became of it decides.)
        st.observe::<PlainAdd>(&v4_to(host4(u32::from(port)), icmp(0, 0)), 1);
    }
    assert_eq!(st.probes, 0);
    assert_eq!(st.last_seen_ns, 0);
    assert_eq!(st, fresh());
}

#[test]
fn src_keeps_the_latest_destination() {
    let mut st = fresh();
    for i in 0..10 {
        st.observe::<PlainAdd>(&v4_to(host4(i), icmp(8, 0)), 1);
        st.observe::<PlainAdd>(&v6_to(host6(i), icmpv6(128, 0)), 1);
    }
    assert_eq!(st.probes, 20);
    assert_eq!(st.last_dst, host6(9));
    st.observe::<PlainAdd>(&v4_to(host4(3), icmp(8, 0)), 1);
    assert_eq!(st.last_dst, mapped(host4(3)));
    assert_eq!(st.tunnel_kind, 0, "no probe came through a tunnel");
}

#[test]
fn src_counters_wrap() {
    let mut st = fresh();
    st.probes = u64::MAX;
    st.observe::<PlainAdd>(&syn_to_port(1), 1);
    assert_eq!(st.probes, 0);
}

// ----------------------------------------------------------------------------------------
// Slot classes
// ----------------------------------------------------------------------------------------

/// The class a packet counts in, in its sender's slot.
fn sent_class(s: &Summary) -> &'static str {
    let mut w = SrcSlot::default();
    w.observe_sent(s);
    let counts = [
        ("syn", w.syn),
        ("synack", u32::from(w.synack)),
        ("rst", u32::from(w.rst)),
        ("tcp_other", w.tcp_other),
        ("udp", w.udp),
        ("icmp_req", w.icmp_req),
        ("icmp_other", u32::from(w.icmp_other)),
        ("other", u32::from(w.other)),
    ];
    let set: Vec<_> = counts.iter().filter(|(_, n)| *n > 0).collect();
    assert_eq!(set.len(), 1, "exactly one class: {set:?}");
    assert_eq!(w.head.pkts, 1);
    set[0].0
}

#[test]
fn slot_class_table() {
    let later = classify(&eth(&Ipv4::new(ME, [10, 0, 0, 1])
        .frag(5, false)
        .build(&tcp(1, 2, TCP_SYN))));
    let udp_s = v4_to([10, 0, 0, 1], udp(40000, 53));
    let ping = v4_to([10, 0, 0, 1], icmp(8, 0));
    let pong = v4_to([10, 0, 0, 1], icmp(0, 0));
    let v6_syn = v6_to(host6(1), tcp(1, 2, TCP_SYN));
    let v6_rst = v6_to(host6(1), tcp(1, 2, TCP_RST));
    let v6_ping = v6_to(host6(1), icmpv6(128, 0));
    let mut no_l4 = syn_flags(TCP_SYN);
    no_l4.l4_off = 0;
    #[rustfmt::skip]
    let table: [(&str, Summary, &str); 17] = [
        ("SYN",         syn_flags(TCP_SYN),                    "syn"),
        ("SYN|FIN",     syn_flags(TCP_SYN | TCP_FIN),          "syn"),
        ("SYN|URG|PSH", syn_flags(TCP_SYN | TCP_URG | TCP_PSH), "syn"),
        ("SYN|ACK",     syn_flags(TCP_SYN | TCP_ACK),          "synack"),
        ("RST",         syn_flags(TCP_RST),                    "rst"),
        ("RST|ACK",     syn_flags(TCP_RST | TCP_ACK),          "rst"),
        ("SYN|RST",     syn_flags(TCP_SYN | TCP_RST),          "rst"),
        ("ACK",         syn_flags(TCP_ACK),                    "tcp_other"),
        ("FIN",         syn_flags(TCP_FIN),                    "tcp_other"),
        ("UDP",         udp_s,                                 "udp"),
        ("ICMP echo",   ping,                                  "icmp_req"),
        ("ICMP reply",  pong,                                  "icmp_other"),
        ("later frag",  later,                                 "tcp_other"),
        ("no L4 header", no_l4,                                "tcp_other"),
        ("v6 SYN",      v6_syn,                                "syn"),
        ("v6 RST",      v6_rst,                                "rst"),
        ("v6 echo",     v6_ping,                               "icmp_req"),
    ];
    for (name, s, class) in table {
        assert_eq!(sent_class(&s), class, "{name}");
    }
}

#[test]
fn receiver_distinct_sources_estimates() {
    for n in [1u32, 10, 32, 64, 100] {
        let (mut d4, mut spare) = (DstSlot::default(), DstSlot::default());
        let mut d6 = DstSlot::default();
        for i in 0..n {
            let s4 = v4_from(host4(i), tcp(40000, 80, TCP_SYN));
            let s6 = classify(&eth(
                &Ipv6::new(host6(i), v6(1, 1)).build(&tcp(1, 80, TCP_SYN))
            ));
            account_dst(&mut d4, &mut spare, 1, &s4);
            account_dst(&mut d4, &mut spare, 1, &s4);
            d6.observe_recv(&s6);
        }
        assert_eq!(d4.syn_p, 2 * n);
        for (d, fam) in [(&d4, "v4"), (&d6, "v6")] {
            let e = d.distinct_sources();
            let err = (f64::from(e.value) - f64::from(n)).abs() / f64::from(n);
            // 128 bits: the standard error is about 7 % up to 100 senders.
            assert!(err <= 0.25, "{fam}: {} for {n}", e.value);
        }
    }
}

// ----------------------------------------------------------------------------------------
// Globals
// ----------------------------------------------------------------------------------------

#[test]
fn globals_observe() {
    let mut g = Globals::default();
    let later = classify(&eth(&Ipv4::new(ME, [10, 0, 0, 1])
        .frag(5, false)
        .build(&udp(1, 2))));
    let first6 = classify(&eth(&Ipv6::new(v6(1, 1), v6(1, 2))
        .ext(Ext::Fragment(0, true))
        .build(&udp(1, 2))));
    let none6 = classify(&eth(&Ipv6::new(v6(1, 1), v6(1, 2)).build(&raw(59, &[]))));
    let arp = classify(&eth(&arp_request()));
    let lldp = classify(&eth(&non_ip(0x88cc, &[0; 40])));
    let pkts = [
        syn_flags(TCP_SYN),
        syn_flags(TCP_SYN | TCP_ACK),
        syn_flags(TCP_RST),
        syn_flags(TCP_RST | TCP_ACK),
        syn_flags(TCP_SYN | TCP_RST),
        syn_flags(TCP_ACK),
        v4_to([10, 0, 0, 1], udp(1, 2)),
        v4_to([10, 0, 0, 1], icmp(8, 0)),
        v6_to(v6(1, 2), icmpv6(128, 0)),
        v6_to(v6(1, 2), tcp(1, 2, TCP_SYN)),
        v4_to([10, 0, 0, 1], raw(47, &[0; 4])),
        later,
        first6,
        none6,
        arp,
        lldp,
    ];
    let mut bytes = 0;
    for s in &pkts {
        g.observe(s);
        bytes += u64::from(s.wire_len);
    }
    let want = Globals {
        packets: 16,
        bytes,
        arp: 1,
        non_ip: 1,
        ipv4: 10,
        ipv6: 4,
        tcp: 7,
        udp: 2,
        icmp: 1,
        icmpv6: 1,
        other_l4: 3,
        fragments: 2,
        syn: 3,
        syn_ack: 1,
        rst: 3,
        // `is_probe` has its own table tests (tests/summary.rs).
        probes: pkts.iter().filter(|s| s.is_probe()).count() as u64,
        // The GRE packet of protocol type 0: a tunnel not decoded.
        inner_errors: [0, 0, 0, 1],
        ..Globals::default()
    };
    assert_eq!(g, want);
    assert_eq!(g.parse_error_total(), 0);
    assert_eq!(arp.ethertype, ETH_P_ARP);
}

#[test]
fn globals_observe_error() {
    let mut g = Globals::default();
    for (i, e) in ParseError::ALL.iter().enumerate() {
        for _ in 0..=i {
            g.observe_error(*e, 100);
        }
    }
    assert_eq!(g.packets, 21);
    assert_eq!(g.bytes, 2100);
    assert_eq!(g.parse_errors, [0, 1, 2, 3, 4, 5, 6, 0]);
    assert_eq!(g.parse_error_total(), 21);
    assert_eq!(g.parse_errors.len(), PARSE_ERROR_SLOTS);
    assert_eq!((g.tcp, g.ipv4, g.non_ip), (0, 0, 0));

    // As the programs do it: classify, and count the error on failure.
    let mut g = Globals::default();
    let p = eth(&Ipv4::new(ME, [10, 0, 0, 1]).build(&tcp(1, 2, TCP_SYN)));
    for k in 0..p.bytes.len() {
        match classify_eth(&p.bytes[..k]) {
            Ok(s) => g.observe(&s),
            Err(e) => g.observe_error(e, k as u64),
        }
    }
    assert_eq!(g.packets, 54);
    assert_eq!(g.parse_errors[ParseError::Truncated as usize], 34);
    assert_eq!(g.parse_errors[ParseError::L4Truncated as usize], 20);
    assert_eq!(g.parse_error_total(), 54);
}

#[test]
fn globals_merge() {
    let mut a = Globals::default();
    let mut b = Globals::default();
    a.observe(&syn_flags(TCP_SYN));
    a.observe_error(ParseError::BadIpHeader, 60);
    a.src_inserts = 3;
    a.src_deferred = 1;
    b.observe(&v6_to(v6(1, 2), icmpv6(128, 0)));
    b.observe(&classify(&eth(&arp_request())));
    b.observe_error(ParseError::BadIpHeader, 70);
    b.observe_error(ParseError::TooManyVlanTags, 80);
    b.src_failures = 2;

    // Every field of a fully populated value is summed.
    let mut full = Globals {
        packets: 1,
        bytes: 2,
        arp: 3,
        non_ip: 4,
        ipv4: 5,
        ipv6: 6,
        tcp: 7,
        udp: 8,
        icmp: 9,
        icmpv6: 10,
        other_l4: 11,
        fragments: 12,
        tiny_fragments: 30,
        syn: 13,
        syn_ack: 14,
        rst: 15,
        probes: 28,
        parse_errors: [16, 17, 18, 19, 20, 21, 22, 23],
        src_inserts: 24,
        src_failures: 25,
        src_deferred: 29,
        encap: [0, 31, 32, 33, 34, 35, 36, 37],
        inner_errors: [0, 38, 39, 40],
        mpls: 41,
        pppoe: 42,
    };
    let orig = full;
    full.merge(&orig);
    assert_eq!(
        full,
        Globals {
            packets: 2,
            bytes: 4,
            arp: 6,
            non_ip: 8,
            ipv4: 10,
            ipv6: 12,
            tcp: 14,
            udp: 16,
            icmp: 18,
            icmpv6: 20,
            other_l4: 22,
            fragments: 24,
            tiny_fragments: 60,
            syn: 26,
            syn_ack: 28,
            rst: 30,
            probes: 56,
            parse_errors: [32, 34, 36, 38, 40, 42, 44, 46],
            src_inserts: 48,
            src_failures: 50,
            src_deferred: 58,
            encap: [0, 62, 64, 66, 68, 70, 72, 74],
            inner_errors: [0, 76, 78, 80],
            mpls: 82,
            pppoe: 84,
        }
    );

    let mut m = Globals::default();
    m.merge(&a);
    m.merge(&b);
    assert_eq!(m.packets, 6);
    assert_eq!(m.bytes, a.bytes + b.bytes);
    assert_eq!(
        (m.ipv4, m.ipv6, m.arp, m.tcp, m.icmpv6, m.syn),
        (1, 1, 1, 1, 1, 1)
    );
    assert_eq!(m.parse_errors[ParseError::BadIpHeader as usize], 2);
    assert_eq!(m.parse_errors[ParseError::TooManyVlanTags as usize], 1);
    assert_eq!(m.parse_error_total(), 3);
    assert_eq!((m.src_inserts, m.src_failures, m.src_deferred), (3, 2, 1));
    // Merging is order-independent.
    let mut n = b;
    n.merge(&a);
    assert_eq!(m, n);
}

#[test]
fn probe_protocol_constants_used_by_state() {
    // The state code keys on these numbers; keep them pinned.
    assert_eq!(
        (IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP, IPPROTO_ICMPV6),
        (1, 6, 17, 58)
    );
}

/// The address filter never forgets an inserted address, and with 65 536 addresses in it it
/// proves most other addresses absent.
#[test]
fn addr_filter() {
    let addr = |i: u32| {
        let mut a = [0u8; 16];
        a[10] = 0xff;
        a[11] = 0xff;
        a[12..].copy_from_slice(&i.to_be_bytes());
        a
    };
    let mut f = Box::new(AddrFilter::EMPTY);
    assert!(!f.may_contain(&addr(1)));
    for i in 0..65_536u32 {
        f.insert(&addr(0x0a00_0000 + i * 7));
    }
    for i in 0..65_536u32 {
        assert!(f.may_contain(&addr(0x0a00_0000 + i * 7)), "lost {i}");
    }
    let n = 100_000u32;
    let false_positives = (0..n)
        .filter(|i| f.may_contain(&addr(0xc000_0000 + i)))
        .count();
    // 65 536 of 2^20 bits set: about 6 % of unknown addresses pass.
    assert!(
        false_positives < n as usize / 10,
        "{false_positives} of {n} unknown addresses pass the filter"
    );
    let v6 = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    f.insert(&v6);
    assert!(f.may_contain(&v6));
}
