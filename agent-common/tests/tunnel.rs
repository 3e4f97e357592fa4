//! Decapsulation tests: every tunnel kind and L2.5 header, every prefix of each packet
//! (the outer errors, then the outer summary with `inner_error`, then the inner summary),
//! and the malformed and unsupported tunnel headers.

use agent_common::{
    ParseError, Summary,
    classify::{
        ETH_P_8021Q, ETH_P_IPV4, ETH_P_IPV6, ETH_P_MPLS_UC, ETH_P_PPPOE_SES, ETH_P_TEB,
        IPPROTO_GRE, IPPROTO_IPIP, IPPROTO_IPV6, IPPROTO_TCP, IPPROTO_UDP, SHIM_MPLS, SHIM_PPPOE,
        TCP_SYN, classify_l3,
    },
    classify_eth, classify_ip,
    tunnel::*,
};
use picket_frames::{
    layers::*,
    tunnels::{geneve, gre, gre_raw, mpls, pppoe, shimmed, vxlan},
};

const VTEP_A: [u8; 4] = [10, 0, 0, 1];
const VTEP_B: [u8; 4] = [10, 0, 0, 2];
const POD_A: [u8; 4] = [172, 16, 1, 5];
const POD_B: [u8; 4] = [172, 16, 2, 9];

/// The inner packet every test carries: a SYN from POD_A to POD_B port 22.
fn inner_net() -> Net {
    Ipv4::new(POD_A, POD_B).build(&tcp(40000, 22, TCP_SYN))
}

fn inner_net6() -> Net {
    Ipv6::new(v6(1, 5), v6(2, 9)).build(&udp(5353, 53))
}

/// `s` as if its packet started `base` bytes later in a packet of `wire_len` bytes.
fn shifted(s: Summary, base: usize, wire_len: usize) -> Summary {
    let add = |o: u16| if o == 0 { 0 } else { o + base as u16 };
    Summary {
        wire_len: wire_len as u32,
        l3_off: s.l3_off + base as u16,
        l4_off: add(s.l4_off),
        payload_off: add(s.payload_off),
        ..s
    }
}

fn inner_error_of(e: ParseError) -> u8 {
    match e {
        ParseError::Truncated | ParseError::L4Truncated => INNER_TRUNCATED,
        _ => INNER_BAD,
    }
}

/// A tunnelled packet: the outer frame, its outer layer (how the outer parse sees it), the
/// inner packet with its own layout, where the inner packet starts, and the tunnel.
struct Case {
    outer: Pkt,
    inner: Pkt,
    base: usize,
    kind: u8,
    vni: u32,
    /// Classifies the whole outer frame (Ethernet or raw IP).
    classify: Classifier,
    /// The inner packet alone, classified as its own layer.
    inner_alone: Classifier,
}

type Classifier = fn(&[u8]) -> Result<Summary, ParseError>;

fn eth_c(b: &[u8]) -> Result<Summary, ParseError> {
    classify_eth(b)
}
fn ip_c(b: &[u8]) -> Result<Summary, ParseError> {
    classify_ip(b, 0)
}
fn inner_v4(b: &[u8]) -> Result<Summary, ParseError> {
    classify_l3(b, ETH_P_IPV4, 0)
}
fn inner_v6(b: &[u8]) -> Result<Summary, ParseError> {
    classify_l3(b, ETH_P_IPV6, 0)
}

impl Case {
    /// The outer layer's summary of the first `k` bytes (no decapsulation).
    fn outer_summary(&self, k: usize) -> Result<Summary, ParseError> {
        let b = &self.outer.bytes[..k];
        let l3 = self.outer.l3_off;
        let et = if self.outer.v6 {
            ETH_P_IPV6
        } else {
            ETH_P_IPV4
        };
        if k < l3 {
            return Err(ParseError::Truncated);
        }
        classify_l3(b, et, l3).map(|s| Summary {
            wire_len: k as u32,
            ..s
        })
    }

    /// Checks the full packet and every prefix; returns the full summary.
    #[track_caller]
    fn check(&self) -> Summary {
        let inner_full = (self.inner_alone)(&self.inner.bytes).expect("inner packet parses");
        let n = self.outer.bytes.len();
        let outer_full = self.outer_summary(n).unwrap();
        for k in 0..=n {
            let got = (self.classify)(&self.outer.bytes[..k]);
            let outer_want = self.outer.expect_prefix(&outer_full, k).map(|_| ());
            let want = match outer_want {
                Err(e) => Err(e),
                Ok(()) => {
                    let outer = self.outer_summary(k).unwrap();
                    let inner = if k < self.base {
                        Err(ParseError::Truncated)
                    } else {
                        self.inner.expect_prefix(&inner_full, k - self.base)
                    };
                    Ok(match inner {
                        Err(e) => Summary {
                            inner_error: inner_error_of(e),
                            ..outer
                        },
                        Ok(i) => Summary {
                            outer_src: outer.src,
                            outer_dst: outer.dst,
                            vni: self.vni,
                            encap: self.kind,
                            ..shifted(i, self.base, k)
                        },
                    })
                }
            };
            assert_eq!(
                got, want,
                "prefix of {k} of {n} bytes: {:02x?}",
                self.outer.bytes
            );
        }
        (self.classify)(&self.outer.bytes).unwrap()
    }
}

/// An IPv4 outer frame from VTEP_A to VTEP_B carrying `l4`.
fn outer4(l4: &L4) -> Pkt {
    eth(&Ipv4::new(VTEP_A, VTEP_B).build(l4))
}

fn outer6(l4: &L4) -> Pkt {
    eth(&Ipv6::new(v6(0x10, 1), v6(0x10, 2)).build(l4))
}

#[test]
fn vxlan_inner_syn_is_the_summary_and_the_vteps_are_kept() {
    for port in [VXLAN_PORT, VXLAN_LINUX_PORT] {
        let inner = eth(&inner_net());
        let outer = outer4(&udp(50123, port).with_payload(&vxlan(0x00ab_cdef, &inner.bytes)));
        let case = Case {
            base: 14 + 20 + 8 + 8,
            outer,
            inner,
            kind: ENCAP_VXLAN,
            vni: 0x00ab_cdef,
            classify: eth_c,
            inner_alone: eth_c,
        };
        let s = case.check();
        assert_eq!((s.src, s.dst), (mapped(POD_A), mapped(POD_B)));
        assert_eq!((s.outer_src, s.outer_dst), (mapped(VTEP_A), mapped(VTEP_B)));
        assert_eq!(
            (s.proto, s.dst_port, s.tcp_flags),
            (IPPROTO_TCP, 22, TCP_SYN)
        );
        assert!(s.is_syn() && s.is_probe());
        assert_eq!(s.wire_len as usize, case.outer.bytes.len());
    }
}

#[test]
fn vxlan_over_ipv6_with_a_tagged_inner_ipv6_frame() {
    let inner = eth_tagged(&[dot1q(7)], &inner_net6());
    let outer = outer6(&udp(40000, VXLAN_PORT).with_payload(&vxlan(1, &inner.bytes)));
    let case = Case {
        base: 14 + 40 + 8 + 8,
        outer,
        inner,
        kind: ENCAP_VXLAN,
        vni: 1,
        classify: eth_c,
        inner_alone: eth_c,
    };
    let s = case.check();
    assert_eq!((s.family, s.proto, s.vlan_depth), (6, IPPROTO_UDP, 1));
    assert_eq!(s.outer_dst, v6(0x10, 2));
}

#[test]
fn geneve_with_options_carrying_ethernet_or_ip() {
    for opt_words in [0u8, 2, 5] {
        let inner = eth(&inner_net());
        let outer = outer4(&udp(1, GENEVE_PORT).with_payload(&geneve(
            ETH_P_TEB,
            77,
            opt_words,
            &inner.bytes,
        )));
        let case = Case {
            base: 14 + 20 + 8 + 8 + 4 * opt_words as usize,
            outer,
            inner,
            kind: ENCAP_GENEVE,
            vni: 77,
            classify: eth_c,
            inner_alone: eth_c,
        };
        assert_eq!(case.check().dst_port, 22);
    }
    let inner = raw_ip(&inner_net());
    let outer = outer4(&udp(1, GENEVE_PORT).with_payload(&geneve(ETH_P_IPV4, 9, 1, &inner.bytes)));
    let case = Case {
        base: 14 + 20 + 8 + 12,
        outer,
        inner,
        kind: ENCAP_GENEVE,
        vni: 9,
        classify: eth_c,
        inner_alone: inner_v4,
    };
    case.check();
}

#[test]
fn gre_with_every_optional_field_and_every_payload() {
    for (csum, key, seq) in [
        (false, None, None),
        (true, None, None),
        (false, Some(0xdead_beef), None),
        (false, None, Some(5)),
        (true, Some(3), Some(5)),
    ] {
        let extra =
            4 * (usize::from(csum) + usize::from(key.is_some()) + usize::from(seq.is_some()));
        let inner = raw_ip(&inner_net());
        let outer = outer4(&raw(
            IPPROTO_GRE,
            &gre(ETH_P_IPV4, csum, key, seq, &inner.bytes),
        ));
        let case = Case {
            base: 14 + 20 + 4 + extra,
            outer,
            inner,
            kind: ENCAP_GRE,
            vni: key.unwrap_or(0),
            classify: eth_c,
            inner_alone: inner_v4,
        };
        case.check();
    }
    // IPv6 inside, Ethernet inside (gretap), MPLS inside.
    let inner = raw_ip(&inner_net6());
    let case = Case {
        outer: outer4(&raw(
            IPPROTO_GRE,
            &gre(ETH_P_IPV6, false, None, None, &inner.bytes),
        )),
        inner,
        base: 14 + 20 + 4,
        kind: ENCAP_GRE,
        vni: 0,
        classify: eth_c,
        inner_alone: inner_v6,
    };
    case.check();
    let inner = eth(&inner_net());
    let case = Case {
        outer: outer6(&raw(
            IPPROTO_GRE,
            &gre(ETH_P_TEB, false, Some(1), None, &inner.bytes),
        )),
        inner,
        base: 14 + 40 + 8,
        kind: ENCAP_GRE,
        vni: 1,
        classify: eth_c,
        inner_alone: eth_c,
    };
    case.check();
    let mut labelled = mpls(&[100, 200]);
    labelled.extend_from_slice(&inner_net().bytes);
    let outer = outer4(&raw(
        IPPROTO_GRE,
        &gre(ETH_P_MPLS_UC, false, None, None, &labelled),
    ));
    let s = classify_eth(outer.bytes.as_slice()).unwrap();
    assert_eq!((s.encap, s.mpls_depth, s.shim), (ENCAP_GRE, 2, SHIM_MPLS));
    assert_eq!((s.src, s.dst_port), (mapped(POD_A), 22));
}

#[test]
fn ip_in_ip_every_combination_framed_and_raw() {
    let v4 = inner_net();
    let v6n = inner_net6();
    let cases: [(bool, &Net, u8, u8, Classifier); 4] = [
        (false, &v4, IPPROTO_IPIP, ENCAP_IPIP, inner_v4),
        (false, &v6n, IPPROTO_IPV6, ENCAP_6IN4, inner_v6),
        (true, &v4, IPPROTO_IPIP, ENCAP_4IN6, inner_v4),
        (true, &v6n, IPPROTO_IPV6, ENCAP_6IN6, inner_v6),
    ];
    for (outer_v6, net, proto, kind, inner_alone) in cases {
        let inner = raw_ip(net);
        let l4 = raw(proto, &inner.bytes);
        let (outer, hdr) = if outer_v6 {
            (outer6(&l4), 40)
        } else {
            (outer4(&l4), 20)
        };
        let case = Case {
            base: 14 + hdr,
            outer: outer.clone(),
            inner: inner.clone(),
            kind,
            vni: 0,
            classify: eth_c,
            inner_alone,
        };
        let framed = case.check();
        assert_eq!(framed.encap, kind);
        // The same packet on an L3 device (tun, ipip): no link header.
        let bare = Pkt {
            bytes: outer.bytes[14..].to_vec(),
            l3_off: 0,
            fixed_end: outer.fixed_end - 14,
            net_end: outer.net_end - 14,
            l4_end: outer.l4_end - 14,
            v6: outer.v6,
        };
        let case = Case {
            base: hdr,
            outer: bare,
            inner,
            kind,
            vni: 0,
            classify: ip_c,
            inner_alone,
        };
        case.check();
    }
}

#[test]
fn empty_and_bad_inner_headers_count_by_the_outer_packet() {
    // An IP-protocol scan (nmap -sO) sends 4, 41 and 47 with nothing after the header.
    for proto in [IPPROTO_IPIP, IPPROTO_IPV6, IPPROTO_GRE] {
        let p = outer4(&raw(proto, &[]));
        let s = classify_eth(p.bytes.as_slice()).unwrap();
        assert_eq!(
            (s.encap, s.inner_error),
            (ENCAP_NONE, INNER_TRUNCATED),
            "proto {proto}"
        );
        assert_eq!((s.src, s.proto), (mapped(VTEP_A), proto));
        let p6 = outer6(&raw(proto, &[]));
        assert_eq!(
            classify_eth(p6.bytes.as_slice()).unwrap().inner_error,
            INNER_TRUNCATED
        );
    }
    // Ethernet padding after an empty probe is not an inner packet or tunnel header.
    for l4 in [
        raw(IPPROTO_IPIP, &[]),
        raw(IPPROTO_GRE, &[]),
        udp(1, VXLAN_PORT),
    ] {
        let mut p = outer4(&l4).bytes;
        p.resize(p.len() + 60, 0x45);
        let s = classify_eth(p.as_slice()).unwrap();
        assert_eq!((s.encap, s.inner_error), (ENCAP_NONE, INNER_TRUNCATED));
    }
    // Garbage after protocol 4 or 41: a bad inner IP header.
    let p = outer4(&raw(IPPROTO_IPIP, &[0x55; 40]));
    assert_eq!(
        classify_eth(p.bytes.as_slice()).unwrap().inner_error,
        INNER_BAD
    );
    let p = outer4(&raw(IPPROTO_IPV6, &inner_net().bytes));
    assert_eq!(
        classify_eth(p.bytes.as_slice()).unwrap().inner_error,
        INNER_BAD
    );
    // A bad inner TCP header (data offset 2).
    let bad_tcp = Ipv4::new(POD_A, POD_B).build(&tcp(1, 2, TCP_SYN).with_doff(2));
    let p = outer4(&raw(IPPROTO_IPIP, &bad_tcp.bytes));
    assert_eq!(
        classify_eth(p.bytes.as_slice()).unwrap().inner_error,
        INNER_BAD
    );
    // A UDP probe of the VXLAN port with no payload stays a UDP probe, by its outer header.
    let p = outer4(&udp(40000, VXLAN_PORT));
    let s = classify_eth(p.bytes.as_slice()).unwrap();
    assert_eq!((s.inner_error, s.dst_port), (INNER_TRUNCATED, VXLAN_PORT));
    assert!(s.is_probe());
}

#[test]
fn unsupported_tunnel_headers_are_counted_not_decoded() {
    let inner = eth(&inner_net()).bytes;
    let ip = raw_ip(&inner_net()).bytes;
    let unsupported = [
        // VXLAN without the I flag.
        outer4(&udp(1, VXLAN_PORT).with_payload(&{
            let mut v = vxlan(5, &inner);
            v[0] = 0;
            v
        })),
        // Geneve version 1.
        outer4(&udp(1, GENEVE_PORT).with_payload(&{
            let mut g = geneve(ETH_P_TEB, 5, 0, &inner);
            g[0] |= 0x40;
            g
        })),
        // Geneve carrying an unknown protocol.
        outer4(&udp(1, GENEVE_PORT).with_payload(&geneve(0x88b5, 5, 0, &inner))),
        // GRE version 1 (PPTP), GRE with the routing bit, GRE of an unknown protocol.
        outer4(&raw(IPPROTO_GRE, &gre_raw(0x2001, 0x880b, &ip))),
        outer4(&raw(IPPROTO_GRE, &gre_raw(0x4000, ETH_P_IPV4, &ip))),
        outer4(&raw(IPPROTO_GRE, &gre_raw(0, 0x88be, &ip))),
    ];
    for p in unsupported {
        let s = classify_eth(p.bytes.as_slice()).unwrap();
        assert_eq!(
            (s.encap, s.inner_error),
            (ENCAP_NONE, INNER_UNSUPPORTED),
            "{:02x?}",
            p.bytes
        );
        assert_eq!(s.src, mapped(VTEP_A));
    }
}

#[test]
fn one_level_only_and_never_a_fragment() {
    // VXLAN inside GRE: the GRE level is decoded, the inner VXLAN packet is left as UDP.
    let vx = Ipv4::new(POD_A, POD_B)
        .build(&udp(1, VXLAN_PORT).with_payload(&vxlan(3, &eth(&inner_net6()).bytes)));
    let p = outer4(&raw(
        IPPROTO_GRE,
        &gre(ETH_P_IPV4, false, None, None, &vx.bytes),
    ));
    let s = classify_eth(p.bytes.as_slice()).unwrap();
    assert_eq!(
        (s.encap, s.proto, s.dst_port),
        (ENCAP_GRE, IPPROTO_UDP, VXLAN_PORT)
    );
    assert_eq!((s.src, s.outer_src), (mapped(POD_A), mapped(VTEP_A)));
    // A first fragment of a tunnel packet is not decapsulated (its inner packet is cut).
    let frag = Ipv4::new(VTEP_A, VTEP_B)
        .frag(0, true)
        .build(&raw(IPPROTO_IPIP, &raw_ip(&inner_net()).bytes));
    let s = classify_eth(eth(&frag).bytes.as_slice()).unwrap();
    assert_eq!(
        (s.encap, s.inner_error, s.src),
        (ENCAP_NONE, 0, mapped(VTEP_A))
    );
}

#[test]
fn mpls_stacks_and_pppoe_sessions() {
    for n in 1..=MAX_LABELS {
        let labels: Vec<u32> = (0..n as u32).map(|i| 16 + i).collect();
        for net in [inner_net(), inner_net6()] {
            let p = shimmed(ETH_P_MPLS_UC, &mpls(&labels), &net);
            let l3 = 14 + 4 * n;
            let mut want = classify_l3(&p.bytes[l3..], net.ethertype, 0).unwrap();
            want = Summary {
                mpls_depth: n as u8,
                shim: SHIM_MPLS,
                ..shifted(want, l3, p.bytes.len())
            };
            for k in 0..=p.bytes.len() {
                assert_eq!(
                    classify_eth(&p.bytes[..k]),
                    p.expect_prefix(&want, k),
                    "{n} labels, prefix {k}"
                );
            }
        }
    }
    // A stack with no bottom within the limit, and an Ethernet pseudowire: not IP.
    let p = shimmed(
        ETH_P_MPLS_UC,
        &[0, 0x10, 0, 64].repeat(MAX_LABELS + 1),
        &inner_net(),
    );
    let s = classify_eth(p.bytes.as_slice()).unwrap();
    assert_eq!(
        (s.family, s.ethertype, s.mpls_depth),
        (0, ETH_P_MPLS_UC, MAX_LABELS as u8)
    );
    let p = shimmed(ETH_P_MPLS_UC, &mpls(&[16]), &non_ip(0, &[0; 30]));
    assert_eq!(classify_eth(p.bytes.as_slice()).unwrap().family, 0);
    // PPPoE: IPv4 and IPv6 sessions, behind a VLAN tag too; LCP is not IP.
    for net in [inner_net(), inner_net6()] {
        let proto = if net.ethertype == ETH_P_IPV4 {
            0x0021
        } else {
            0x0057
        };
        let p = shimmed(ETH_P_PPPOE_SES, &pppoe(proto, net.bytes.len()), &net);
        let mut want = classify_l3(&p.bytes[22..], net.ethertype, 0).unwrap();
        want = Summary {
            shim: SHIM_PPPOE,
            ..shifted(want, 22, p.bytes.len())
        };
        for k in 0..=p.bytes.len() {
            assert_eq!(
                classify_eth(&p.bytes[..k]),
                p.expect_prefix(&want, k),
                "prefix {k}"
            );
        }
        let mut tagged = p.bytes[..12].to_vec();
        tagged.extend_from_slice(&[0x81, 0, 0, 5]);
        tagged.extend_from_slice(&p.bytes[12..]);
        let s = classify_eth(tagged.as_slice()).unwrap();
        assert_eq!((s.vlan_depth, s.shim, s.l3_off), (1, SHIM_PPPOE, 26));
    }
    let p = shimmed(ETH_P_PPPOE_SES, &pppoe(0xc021, 10), &non_ip(0, &[0; 10]));
    let s = classify_eth(p.bytes.as_slice()).unwrap();
    assert_eq!(
        (s.family, s.ethertype, s.shim),
        (0, ETH_P_PPPOE_SES, SHIM_PPPOE)
    );
    let _ = ETH_P_8021Q;
}

const MAX_LABELS: usize = agent_common::classify::MAX_MPLS_LABELS;

#[test]
fn names_cover_every_kind() {
    assert_eq!(ENCAP_NAMES.len(), ENCAP_SLOTS);
    assert_eq!(ENCAP_NAMES[ENCAP_6IN6 as usize], "6in6");
    assert_eq!(INNER_ERROR_NAMES[INNER_UNSUPPORTED as usize], "unsupported");
    assert_eq!(std::mem::size_of::<Summary>(), 128);
}
