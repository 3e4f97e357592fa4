//! Property tests: the classifier never panics, its offsets are always sane, it agrees with
//! a model on random well-formed packets (and on every prefix of them), and the state
//! updates keep their counters consistent.

use agent_common::{
    ParseError, Summary,
    classify::{FRAG_FIRST, FRAG_LATER, FRAG_NONE, FRAG_TINY, MAX_EXT_HDRS, MAX_VLAN_TAGS},
    classify_eth, classify_ip,
    packet::Snapshot,
    tunnel::{ENCAP_SLOTS, INNER_ERROR_SLOTS},
};
use picket_frames::layers::*;
use proptest::prelude::*;

// ----------------------------------------------------------------------------------------
// Invariants of any answer
// ----------------------------------------------------------------------------------------

/// Checks what must hold for any `Ok` summary of a `len`-byte packet.
fn check_invariants(s: &Summary, len: usize) -> Result<(), TestCaseError> {
    prop_assert_eq!(s.wire_len as usize, len);
    prop_assert_eq!(s._pad, [0; 6]);
    prop_assert_eq!(s._pad2, 0);
    prop_assert!((s.encap as usize) < ENCAP_SLOTS);
    prop_assert!((s.inner_error as usize) < INNER_ERROR_SLOTS);
    // Either a tunnel was decoded or its inner packet was not: never both.
    prop_assert!(s.encap == 0 || s.inner_error == 0);
    if s.encap == 0 {
        prop_assert_eq!((s.outer_src, s.outer_dst, s.vni), ([0; 16], [0; 16], 0));
    }
    prop_assert!((s.l3_off as usize) <= len);
    prop_assert!(s.tcp_flags < 0x200);
    prop_assert!(s.fragment <= FRAG_TINY);
    prop_assert!((s.ext_hdrs as usize) <= MAX_EXT_HDRS);
    match s.family {
        0 => {
            let empty = Summary {
                wire_len: s.wire_len,
                ethertype: s.ethertype,
                l3_off: s.l3_off,
                vlan_depth: s.vlan_depth,
                shim: s.shim,
                mpls_depth: s.mpls_depth,
                // A tunnel may carry a non-IP inner frame (ARP in VXLAN).
                outer_src: s.outer_src,
                outer_dst: s.outer_dst,
                vni: s.vni,
                encap: s.encap,
                ..blank()
            };
            prop_assert_eq!(*s, empty);
        }
        4 => {
            prop_assert!(s.l3_off as usize + 20 <= len);
            prop_assert_eq!(&s.src[..12], &mapped([0; 4])[..12]);
            prop_assert_eq!(&s.dst[..12], &mapped([0; 4])[..12]);
            prop_assert_eq!(s.ext_hdrs, 0);
        }
        6 => prop_assert!(s.l3_off as usize + 40 + 8 * s.ext_hdrs as usize <= len),
        f => prop_assert!(false, "family {}", f),
    }
    if s.has_l4() {
        prop_assert!(s.l3_off < s.l4_off, "{:?}", s);
        prop_assert!(s.l4_off <= s.payload_off, "{:?}", s);
        prop_assert!((s.payload_off as usize) <= len, "{:?} len {}", s, len);
        prop_assert!(s.payload_off - s.l4_off >= 8);
        prop_assert!(s.payload_off - s.l4_off <= 60);
        prop_assert_ne!(s.fragment, FRAG_LATER);
        prop_assert!(matches!(s.proto, 1 | 6 | 17 | 58 | 132));
        if s.proto != 6 {
            prop_assert_eq!(s.tcp_flags, 0);
        }
        if s.proto != 6 && s.proto != 17 && s.proto != 132 {
            prop_assert_eq!((s.src_port, s.dst_port), (0, 0));
        }
        if s.proto == 6 || s.proto == 17 {
            prop_assert_eq!((s.icmp_type, s.icmp_code), (0, 0));
        }
    } else {
        if !matches!(s.proto, 4 | 41 | 47) {
            // Only the tunnel protocols say where their IP payload starts.
            prop_assert_eq!(s.payload_off, 0);
        }
        // A tiny first fragment keeps the ports and flags its payload holds (FRAG_TINY).
        if s.fragment != FRAG_TINY {
            prop_assert_eq!((s.src_port, s.dst_port, s.tcp_flags), (0, 0, 0));
            prop_assert!(!s.is_syn() && !s.is_syn_ack() && !s.is_rst());
        }
        prop_assert_eq!((s.icmp_type, s.icmp_code), (0, 0));
    }
    Ok(())
}

/// Classifies `b` every way there is, checking invariants and determinism.
fn classify_all_ways(b: &[u8]) -> Result<(), TestCaseError> {
    let first = classify_eth(b);
    prop_assert_eq!(first, classify_eth(b), "deterministic");
    prop_assert_eq!(
        first,
        classify_eth(&Snapshot {
            data: b,
            orig_len: b.len()
        })
    );
    if let Ok(s) = &first {
        check_invariants(s, b.len())?;
        prop_assert!((s.vlan_depth as usize) <= MAX_VLAN_TAGS);
        if s.encap == 0 && s.shim == 0 {
            prop_assert_eq!(s.l3_off as usize, 14 + 4 * s.vlan_depth as usize);
        }
    }
    // A larger wire length changes nothing but `wire_len`.
    let snap = classify_eth(&Snapshot {
        data: b,
        orig_len: b.len() + 1000,
    });
    prop_assert_eq!(
        snap.map(|s| Summary {
            wire_len: b.len() as u32,
            ..s
        }),
        first
    );

    for off in [0usize, 1, 4, 14] {
        let r = classify_ip(b, off);
        prop_assert_eq!(r, classify_ip(b, off), "deterministic");
        if let Ok(s) = &r {
            check_invariants(s, b.len())?;
            if s.encap == 0 {
                prop_assert_eq!(s.l3_off as usize, off);
                prop_assert_eq!(s.vlan_depth, 0);
            }
            prop_assert!(s.family == 4 || s.family == 6);
        } else if off >= b.len() {
            prop_assert_eq!(r, Err(ParseError::Truncated));
        }
    }
    Ok(())
}

// ----------------------------------------------------------------------------------------
// Random well-formed packets and their model
// ----------------------------------------------------------------------------------------

fn l4_strategy() -> impl Strategy<Value = L4> {
    let payload = prop::collection::vec(any::<u8>(), 0..48);
    prop_oneof![
        (
            any::<u16>(),
            any::<u16>(),
            0u16..0x200,
            0usize..=10,
            payload.clone()
        )
            .prop_map(|(sp, dp, fl, words, pl)| tcp(sp, dp, fl)
                .with_tcp_opts(&vec![1u8; words * 4])
                .with_payload(&pl)),
        // Tunnel ports and protocols (4, 41, 47) are tests/tunnel.rs's: this model is of
        // plain packets.
        (any::<u16>(), any::<u16>(), payload.clone())
            .prop_filter("not a tunnel port", |(_, dp, _)| !matches!(
                *dp,
                4789 | 8472 | 6081
            ))
            .prop_map(|(sp, dp, pl)| udp(sp, dp).with_payload(&pl)),
        (any::<bool>(), any::<u8>(), any::<u8>(), payload.clone()).prop_map(
            |(v6, ty, code, mut pl)| {
                // Version nibble 0: the payload is never read as an error's quote (the
                // quote has tests of its own, tests/classify.rs).
                if let Some(b) = pl.first_mut() {
                    *b &= 0x0f;
                }
                if v6 { icmpv6(ty, code) } else { icmp(ty, code) }.with_payload(&pl)
            }
        ),
        (
            prop::sample::select(vec![2u8, 50, 59, 89, 103, 255]),
            payload
        )
            .prop_map(|(p, pl)| raw(p, &pl)),
    ]
}

fn ext_strategy() -> impl Strategy<Value = Ext> {
    prop_oneof![
        (0u8..4).prop_map(Ext::HopByHop),
        (0u8..4).prop_map(Ext::Routing),
        (0u8..4).prop_map(Ext::DestOpts),
        (
            prop::sample::select(vec![0u16, 0, 1, 100, 0x1fff]),
            any::<bool>()
        )
            .prop_map(|(o, m)| Ext::Fragment(o, m)),
        (1u8..8).prop_map(Ext::Ah),
    ]
}

#[derive(Clone, Debug)]
enum L3 {
    V4 { ip: Ipv4 },
    V6 { ip: Ipv6 },
}

fn l3_strategy() -> impl Strategy<Value = L3> {
    prop_oneof![
        (
            any::<[u8; 4]>(),
            any::<[u8; 4]>(),
            any::<u8>(),
            0usize..=10,
            prop::sample::select(vec![0u16, 0, 0, 1, 7, 0x1fff]),
            any::<bool>(),
            any::<bool>(),
        )
            .prop_map(|(s, d, ttl, words, off, mf, df)| {
                let mut ip = Ipv4::new(s, d).ttl(ttl).options(words * 4).frag(off, mf);
                if df {
                    ip = ip.df();
                }
                L3::V4 { ip }
            }),
        (
            any::<[u8; 16]>(),
            any::<[u8; 16]>(),
            any::<u8>(),
            prop::collection::vec(ext_strategy(), 0..=MAX_EXT_HDRS),
        )
            .prop_map(|(s, d, hl, exts)| {
                let mut ip = Ipv6::new(s, d).hop_limit(hl);
                ip.exts = exts;
                L3::V6 { ip }
            }),
    ]
}

fn tags_strategy() -> impl Strategy<Value = Vec<(u16, u16)>> {
    prop::collection::vec(
        (any::<bool>(), any::<u16>())
            .prop_map(|(ad, tci)| if ad { dot1ad(tci) } else { dot1q(tci) }),
        0..=MAX_VLAN_TAGS,
    )
}

/// The summary the classifier must give for a frame built from these parts.
fn model(tags: &[(u16, u16)], l3: &L3, l4: &L4, p: &Pkt) -> Summary {
    let mut s = Summary {
        wire_len: p.bytes.len() as u32,
        l3_off: p.l3_off as u16,
        vlan_depth: tags.len() as u8,
        ..blank()
    };
    let mut later = false;
    match l3 {
        L3::V4 { ip } => {
            s.ethertype = 0x0800;
            s.family = 4;
            s.src = mapped(ip.src);
            s.dst = mapped(ip.dst);
            s.ttl = ip.ttl;
            s.proto = l4.proto();
            if ip.frag_offset != 0 {
                s.fragment = FRAG_LATER;
                later = true;
            } else if ip.mf {
                s.fragment = FRAG_FIRST;
            }
        }
        L3::V6 { ip } => {
            s.ethertype = 0x86dd;
            s.family = 6;
            s.src = ip.src;
            s.dst = ip.dst;
            s.ttl = ip.hop_limit;
            s.proto = l4.proto();
            for (i, e) in ip.exts.iter().enumerate() {
                s.ext_hdrs += 1;
                if let Ext::Fragment(off, m) = e {
                    if *off != 0 {
                        s.fragment = FRAG_LATER;
                        s.proto = ip.exts.get(i + 1).map_or(l4.proto(), Ext::code);
                        later = true;
                        break;
                    }
                    if *m {
                        s.fragment = FRAG_FIRST;
                    }
                }
            }
        }
    }
    if later {
        return s;
    }
    s.l4_off = p.net_end as u16;
    match l4 {
        L4::Tcp {
            sport,
            dport,
            flags,
            ..
        } => {
            s.src_port = *sport;
            s.dst_port = *dport;
            s.tcp_flags = *flags;
        }
        L4::Udp { sport, dport, .. } => {
            s.src_port = *sport;
            s.dst_port = *dport;
        }
        L4::Icmp { ty, code, .. } => {
            s.icmp_type = *ty;
            s.icmp_code = *code;
        }
        L4::Raw { .. } => {
            s.l4_off = 0;
            return s;
        }
    }
    s.payload_off = (p.net_end + l4.hdr_len()) as u16;
    s
}

fn build(tags: &[(u16, u16)], l3: &L3, l4: &L4) -> Pkt {
    let net = match l3 {
        L3::V4 { ip } => ip.build(l4),
        L3::V6 { ip } => ip.build(l4),
    };
    eth_tagged(tags, &net)
}

fn valid_packet() -> impl Strategy<Value = (Vec<(u16, u16)>, L3, L4)> {
    (tags_strategy(), l3_strategy(), l4_strategy())
}

#[derive(Clone, Debug)]
enum Mutation {
    Set(usize, u8),
    Xor(usize, u8),
    Truncate(usize),
    Insert(usize, u8),
    Remove(usize),
    Append(Vec<u8>),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => (any::<usize>(), any::<u8>()).prop_map(|(i, v)| Mutation::Set(i, v)),
        4 => (any::<usize>(), 1u8..).prop_map(|(i, v)| Mutation::Xor(i, v)),
        1 => any::<usize>().prop_map(Mutation::Truncate),
        1 => (any::<usize>(), any::<u8>()).prop_map(|(i, v)| Mutation::Insert(i, v)),
        1 => any::<usize>().prop_map(Mutation::Remove),
        1 => prop::collection::vec(any::<u8>(), 0..16).prop_map(Mutation::Append),
    ]
}

/// Applies `m`, aiming indices at the headers (`hot` bytes) half of the time.
fn apply(b: &mut Vec<u8>, m: &Mutation, hot: usize) {
    let pick = |i: usize, n: usize| {
        if n == 0 {
            0
        } else if i.is_multiple_of(2) {
            (i / 2) % hot.clamp(1, n)
        } else {
            (i / 2) % n
        }
    };
    match m {
        Mutation::Set(i, v) if !b.is_empty() => {
            let i = pick(*i, b.len());
            b[i] = *v;
        }
        Mutation::Xor(i, v) if !b.is_empty() => {
            let i = pick(*i, b.len());
            b[i] ^= *v;
        }
        Mutation::Truncate(i) => {
            let n = pick(*i, b.len() + 1);
            b.truncate(n);
        }
        Mutation::Insert(i, v) => {
            let i = pick(*i, b.len() + 1);
            b.insert(i, *v);
        }
        Mutation::Remove(i) if !b.is_empty() => {
            let i = pick(*i, b.len());
            b.remove(i);
        }
        Mutation::Append(v) => b.extend_from_slice(v),
        _ => {}
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(b in prop::collection::vec(any::<u8>(), 0..300)) {
        classify_all_ways(&b)?;
    }

    #[test]
    fn random_bytes_behind_ip_ethertypes(
        ethertype in prop::sample::select(vec![0x0800u16, 0x86dd, 0x8100, 0x88a8, 0x0806]),
        first in prop::sample::select(vec![0x45u8, 0x46, 0x4f, 0x60, 0x40, 0x44]),
        rest in prop::collection::vec(any::<u8>(), 0..300),
    ) {
        // Random bytes are mostly rejected at the EtherType; start them like real headers.
        let mut b = vec![0u8; 12];
        b.extend_from_slice(&ethertype.to_be_bytes());
        b.push(first);
        b.extend_from_slice(&rest);
        classify_all_ways(&b)?;
    }

    #[test]
    fn valid_packets_match_the_model((tags, l3, l4) in valid_packet()) {
        let p = build(&tags, &l3, &l4);
        let want = model(&tags, &l3, &l4, &p);
        let got = classify_eth(p.bytes.as_slice());
        prop_assert_eq!(got, Ok(want), "{:02x?}", p.bytes);
        check_invariants(&want, p.bytes.len())?;
        // Every prefix: the error of the layer it stops in, or the same summary.
        for k in 0..=p.bytes.len() {
            let got = classify_eth(&p.bytes[..k]);
            prop_assert_eq!(got, p.expect_prefix(&want, k), "prefix {} of {:02x?}", k, p.bytes);
        }
        // Without the link header, through classify_ip.
        let raw = &p.bytes[p.l3_off..];
        let want_raw = Summary {
            wire_len: raw.len() as u32,
            l3_off: 0,
            vlan_depth: 0,
            l4_off: if want.has_l4() { want.l4_off - p.l3_off as u16 } else { 0 },
            payload_off: if want.has_l4() { want.payload_off - p.l3_off as u16 } else { 0 },
            ..want
        };
        prop_assert_eq!(classify_ip(raw, 0), Ok(want_raw));
    }

    #[test]
    fn too_many_ipv6_extension_headers(
        exts in prop::collection::vec(
            prop_oneof![
                (0u8..3).prop_map(Ext::HopByHop),
                (0u8..3).prop_map(Ext::DestOpts),
                (1u8..4).prop_map(Ext::Ah),
                Just(Ext::Fragment(0, true)),
            ],
            MAX_EXT_HDRS + 1..MAX_EXT_HDRS + 4,
        ),
        l4 in l4_strategy(),
    ) {
        let mut ip = Ipv6::new(v6(1, 1), v6(1, 2));
        ip.exts = exts;
        let p = eth(&ip.build(&l4));
        prop_assert_eq!(classify_eth(p.bytes.as_slice()), Err(ParseError::BadExtHeaders));
    }

    #[test]
    fn mutated_packets_never_panic(
        (tags, l3, l4) in valid_packet(),
        muts in prop::collection::vec(mutation(), 1..8),
    ) {
        let p = build(&tags, &l3, &l4);
        let mut b = p.bytes.clone();
        for m in &muts {
            apply(&mut b, m, p.l4_end + 4);
        }
        classify_all_ways(&b)?;
    }

    #[test]
    fn truncated_snapshots_keep_the_wire_length(
        (tags, l3, l4) in valid_packet(),
        cut in any::<prop::sample::Index>(),
    ) {
        let p = build(&tags, &l3, &l4);
        let k = cut.index(p.bytes.len() + 1);
        let snap = Snapshot { data: &p.bytes[..k], orig_len: p.bytes.len() };
        let want = model(&tags, &l3, &l4, &p);
        let got = classify_eth(&snap);
        let by_slice = p.expect_prefix(&want, k);
        prop_assert_eq!(got, by_slice.map(|s| Summary { wire_len: p.bytes.len() as u32, ..s }));
    }
}

// ----------------------------------------------------------------------------------------
// State
// ----------------------------------------------------------------------------------------

#[cfg(feature = "std")]
mod state {
    use super::*;
    use agent_common::{
        slots::{DstSlot, SrcSlot},
        state::{Globals, PlainAdd, SrcState},
    };

    proptest! {
        #[test]
        fn counters_stay_consistent(
            pkts in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..120), 0..40),
            valid in prop::collection::vec(valid_packet(), 0..40),
        ) {
            let mut g = Globals::default();
            let mut src = SrcState::ZERO;
            src.init(0);
            // Every packet into one sender and one receiver slot: the class sums must add up.
            let mut sent = SrcSlot::default();
            let mut recv = DstSlot::default();
            let frames = pkts.into_iter().chain(valid.iter().map(|(t, l3, l4)| build(t, l3, l4).bytes));
            let mut ok_ip = 0u64;
            let mut last_probe = None;
            for (i, b) in frames.enumerate() {
                match classify_eth(b.as_slice()) {
                    Ok(s) => {
                        g.observe(&s);
                        if s.is_ip() {
                            ok_ip += 1;
                            src.observe::<PlainAdd>(&s, i as u64);
                            if s.is_probe() {
                                last_probe = Some((s.dst, i as u64));
                            }
                            sent.observe_sent(&s);
                            recv.observe_recv(&s);
                        }
                    }
                    Err(e) => g.observe_error(e, b.len() as u64),
                }
            }
            prop_assert_eq!(g.packets, g.arp + g.non_ip + g.ipv4 + g.ipv6 + g.parse_error_total());
            prop_assert_eq!(g.ipv4 + g.ipv6, g.tcp + g.udp + g.icmp + g.icmpv6 + g.other_l4);
            prop_assert!(g.syn + g.syn_ack <= g.tcp && g.rst <= g.tcp);
            prop_assert_eq!(g.parse_errors[0], 0);
            prop_assert_eq!(src.probes, g.probes);
            prop_assert_eq!(u64::from(sent.head.pkts), ok_ip);
            let classes = sent.syn + sent.tcp_other + sent.udp
                + u32::from(sent.synack) + u32::from(sent.rst) + sent.icmp()
                + u32::from(sent.other);
            prop_assert_eq!(u64::from(classes), ok_ip);
            prop_assert!(u64::from(sent.syn) <= g.syn && u64::from(sent.synack) <= g.syn_ack);
            prop_assert_eq!(u64::from(sent.rst), g.rst);
            prop_assert_eq!(u64::from(sent.frags), g.fragments);
            prop_assert_eq!(u64::from(recv.head.pkts), ok_ip);
            prop_assert_eq!(
                (recv.syn_p, recv.synack_p, recv.rst_p, recv.udp_p),
                (sent.syn, u32::from(sent.synack), u32::from(sent.rst), sent.udp)
            );
            prop_assert_eq!(u64::from(recv.frag_p), g.fragments);
            // The source state names the latest probe.
            prop_assert_eq!((src.last_dst, src.last_seen_ns), last_probe.unwrap_or_default());

            let mut twice = g;
            twice.merge(&g);
            prop_assert_eq!(twice.packets, 2 * g.packets);
            prop_assert_eq!(twice.parse_error_total(), 2 * g.parse_error_total());
        }
    }
}

#[test]
fn frag_constants() {
    assert_eq!((FRAG_NONE, FRAG_FIRST, FRAG_LATER), (0, 1, 2));
}
