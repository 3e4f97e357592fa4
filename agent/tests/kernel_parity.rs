//! Kernel parity: the same frames through the real BPF programs (BPF_PROG_TEST_RUN) and
//! through the host classifier and state model must leave identical maps.

use std::{
    io::Write as _,
    net::{Ipv4Addr, Ipv6Addr},
};

use agent::{
    loader::MapSizes,
    parity::{Comparison, KernelRunner, compare, compare_ticks},
};
use picket_frames::{self as frames, layers::Ext};

use agent_common::{
    classify::{
        IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP, TCP_ACK, TCP_FIN, TCP_PSH, TCP_RST,
        TCP_SYN, TCP_URG,
    },
    state::{DIR_EGRESS, DIR_INGRESS},
};

/// The loaded BPF object, or None (after saying so) when not root: BPF_PROG_TEST_RUN needs
/// it, and a plain `cargo test` runs as any user. As root, failing to load is a failure.
fn runner() -> Option<KernelRunner> {
    runner_with_sources(1 << 18)
}

/// As [`runner`], with a per-source table of `sources` entries.
fn runner_with_sources(sources: u32) -> Option<KernelRunner> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        // Straight to stderr: the test harness would swallow `eprintln!` of a passing test.
        let _ = writeln!(
            std::io::stderr(),
            "skipped: needs root (BPF_PROG_TEST_RUN); `cargo xtask test` runs it as root"
        );
        return None;
    }
    Some(
        KernelRunner::load(MapSizes {
            sources,
            src_slots: 1 << 12,
            dst_slots: 1 << 10,
            conv_slots: 1 << 12,
            blocked: agent_common::state::DEFAULT_BLOCKED,
        })
        .expect("load the BPF object"),
    )
}

fn v4(a: u8, b: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 99, a, b)
}

fn v6(a: u16) -> Ipv6Addr {
    Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, a)
}

/// Every frame kind the classifier handles, in both directions.
fn crafted() -> Vec<(Vec<u8>, u32)> {
    let mut f = Vec::new();
    let syn = frames::tcp(40000, 80, TCP_SYN);
    f.push(frames::ipv4(v4(0, 1), v4(0, 2), IPPROTO_TCP, 0, &syn));
    for flags in [
        TCP_SYN | TCP_ACK,
        TCP_RST,
        TCP_RST | TCP_ACK,
        TCP_FIN | TCP_PSH | TCP_URG,
        0,
        TCP_ACK | TCP_PSH,
    ] {
        f.push(frames::ipv4(
            v4(0, 3),
            v4(0, 2),
            IPPROTO_TCP,
            0,
            &frames::tcp(443, 50000, flags),
        ));
    }
    f.push(frames::ipv4(
        v4(0, 4),
        v4(0, 2),
        IPPROTO_UDP,
        0,
        &frames::udp(5353, 53, b"query"),
    ));
    f.push(frames::ipv4(
        v4(0, 5),
        v4(0, 2),
        IPPROTO_UDP,
        0,
        &frames::udp(53, 40001, b"answer"),
    ));
    f.push(frames::ipv4(
        v4(0, 6),
        v4(0, 2),
        IPPROTO_ICMP,
        0,
        &frames::icmp(8, 0),
    ));
    f.push(frames::ipv4(
        v4(0, 6),
        v4(0, 2),
        IPPROTO_ICMP,
        0,
        &frames::icmp(3, 3),
    ));
    // Fragments: first (MF) parses L4, later ones carry no ports.
    f.push(frames::ipv4(
        v4(0, 7),
        v4(0, 2),
        IPPROTO_UDP,
        0x2000,
        &frames::udp(1234, 9999, &[0; 40]),
    ));
    f.push(frames::ipv4(
        v4(0, 7),
        v4(0, 2),
        IPPROTO_UDP,
        0x0005,
        &[0xde; 40],
    ));
    // IPv4 with 40 bytes of options.
    let mut opts = frames::ipv4(v4(0, 8), v4(0, 2), IPPROTO_TCP, 0, &[0; 60]);
    opts[14] = 0x4f;
    opts[16..18].copy_from_slice(&80u16.to_be_bytes());
    opts.truncate(14 + 60);
    opts.extend_from_slice(&frames::tcp(41000, 22, TCP_SYN));
    f.push(opts);
    // VLAN and QinQ.
    let base = frames::ipv4(v4(0, 9), v4(0, 2), IPPROTO_TCP, 0, &syn);
    let mut vlan = base[..12].to_vec();
    vlan.extend_from_slice(&[0x81, 0x00, 0x00, 0x0a]);
    vlan.extend_from_slice(&base[12..]);
    f.push(vlan.clone());
    let mut qinq = base[..12].to_vec();
    qinq.extend_from_slice(&[0x88, 0xa8, 0x00, 0x64, 0x81, 0x00, 0x00, 0x0a]);
    qinq.extend_from_slice(&base[12..]);
    f.push(qinq.clone());
    // Three, four (one with the old 0x9100 TPID) and five tags (too many).
    for tags in [
        &[0x88, 0xa8, 0, 1, 0x81, 0, 0, 2, 0x81, 0, 0, 3][..],
        &[
            0x91, 0x00, 0, 1, 0x88, 0xa8, 0, 2, 0x81, 0, 0, 3, 0x81, 0, 0, 4,
        ][..],
        &[0x92, 0x00, 0, 1, 0x81, 0, 0, 2][..],
        &[
            0x81, 0, 0, 1, 0x81, 0, 0, 2, 0x81, 0, 0, 3, 0x81, 0, 0, 4, 0x81, 0, 0, 5,
        ][..],
    ] {
        let mut tagged = base[..12].to_vec();
        tagged.extend_from_slice(tags);
        tagged.extend_from_slice(&base[12..]);
        f.push(tagged);
    }
    // Ethernet padding after a packet whose TCP header would run into it, and tiny first
    // fragments (`nmap -f`: 8 bytes of TCP; `--mtu 16`: flags included), padded to 60 bytes.
    for (frag, cut) in [(0u16, 8usize), (0x2000, 8), (0x2000, 16), (0x2000, 2)] {
        let mut tiny = frames::ipv4(v4(0, 11), v4(0, 2), IPPROTO_TCP, frag, &syn[..cut]);
        tiny.resize(60, 0);
        f.push(tiny);
    }
    // ARP and another non-IP EtherType.
    let mut arp = vec![0xff; 6];
    arp.extend_from_slice(&[2, 0, 0, 0, 0, 1, 0x08, 0x06]);
    arp.extend_from_slice(&[0; 28]);
    f.push(arp.clone());
    arp[12..14].copy_from_slice(&0x88ccu16.to_be_bytes());
    f.push(arp);
    // IPv6: plain TCP, extension chain, ICMPv6 echo, a later fragment.
    f.push(frames::ipv6(v6(1), v6(2), &[], IPPROTO_TCP, &syn));
    f.push(frames::ipv6_ext_syn(v6(3), v6(2)));
    f.push(frames::ipv6(
        v6(4),
        v6(2),
        &[],
        IPPROTO_ICMPV6,
        &frames::icmp(128, 0),
    ));
    f.push(frames::ipv6(
        v6(5),
        v6(2),
        &[Ext::Fragment(2, false)],
        IPPROTO_UDP,
        &[0; 24],
    ));
    // Chains of seven, eight and nine (too many) extension headers.
    for n in [7, 8, 9] {
        f.push(frames::ipv6(
            v6(6),
            v6(2),
            &vec![Ext::DestOpts(0); n],
            IPPROTO_UDP,
            &frames::udp(1000, 2000, &[]),
        ));
    }
    // Malformed: truncated IPv4, bad IHL, bad version, TCP data offset < 5, cut L4.
    let good = frames::ipv4(v4(0, 10), v4(0, 2), IPPROTO_TCP, 0, &syn);
    f.push(good[..20].to_vec());
    let mut bad = good.clone();
    bad[14] = 0x43;
    f.push(bad);
    let mut bad = good.clone();
    bad[14] = 0x55;
    f.push(bad);
    let mut bad = good.clone();
    bad[14 + 20 + 12] = 0x30;
    f.push(bad);
    f.push(good[..14 + 20 + 6].to_vec());
    f.extend(tunnelled());
    let mut out: Vec<(Vec<u8>, u32)> = f.iter().map(|x| (x.clone(), DIR_INGRESS)).collect();
    out.extend(f.into_iter().map(|x| (x, DIR_EGRESS)));
    out
}

/// Every encapsulation the classifier decodes (and the ones it refuses), each carrying a
/// SYN from a source of its own, plus MPLS and PPPoE and empty tunnel probes.
fn tunnelled() -> Vec<Vec<u8>> {
    use agent_common::classify::{
        ETH_P_IPV4, ETH_P_IPV6, ETH_P_MPLS_UC, ETH_P_PPPOE_SES, ETH_P_TEB,
    };
    use frames::tunnels::{geneve, gre, gre_raw, mpls, pppoe, shimmed, vxlan};
    let syn = frames::tcp(40000, 22, TCP_SYN);
    let inner = |i: u8| frames::ipv4(v4(7, i), v4(8, 1), IPPROTO_TCP, 0, &syn);
    let inner_ip = |i: u8| inner(i)[14..].to_vec();
    let inner6 = |i: u16| frames::ipv6(v6(0x700 + i), v6(0x801), &[], IPPROTO_TCP, &syn);
    let outer = |proto: u8, body: &[u8]| frames::ipv4(v4(9, 1), v4(9, 2), proto, 0, body);
    let outer6 = |proto: u8, body: &[u8]| frames::ipv6(v6(0x901), v6(0x902), &[], proto, body);
    let mut f = vec![
        outer(
            IPPROTO_UDP,
            &frames::udp(50000, 4789, &vxlan(42, &inner(1))),
        ),
        outer(
            IPPROTO_UDP,
            &frames::udp(50001, 8472, &vxlan(43, &inner6(2))),
        ),
        outer6(
            IPPROTO_UDP,
            &frames::udp(50002, 4789, &vxlan(44, &inner(3))),
        ),
        outer(
            IPPROTO_UDP,
            &frames::udp(50003, 6081, &geneve(ETH_P_TEB, 5, 3, &inner(4))),
        ),
        outer(
            IPPROTO_UDP,
            &frames::udp(50004, 6081, &geneve(ETH_P_IPV4, 6, 0, &inner_ip(5))),
        ),
        outer(47, &gre(ETH_P_IPV4, false, None, None, &inner_ip(6))),
        outer(47, &gre(ETH_P_IPV4, true, Some(7), Some(1), &inner_ip(7))),
        outer(47, &gre(ETH_P_TEB, false, Some(8), None, &inner(8))),
        outer6(47, &gre(ETH_P_IPV6, false, None, None, &inner6(9)[14..])),
        outer(
            47,
            &gre(
                ETH_P_MPLS_UC,
                false,
                None,
                None,
                &[mpls(&[16, 17]), inner_ip(10)].concat(),
            ),
        ),
        outer(4, &inner_ip(11)),
        outer(41, &inner6(12)[14..]),
        outer6(4, &inner_ip(13)),
        outer6(41, &inner6(14)[14..]),
        // Refused or empty: counted by the outer packet.
        outer(47, &gre_raw(0x2001, 0x880b, &inner_ip(15))),
        outer(IPPROTO_UDP, &frames::udp(50005, 4789, &[])),
        outer(4, &[]),
        outer(41, &[0x55; 40]),
        outer6(47, &[]),
    ];
    for (i, labels) in [&[16u32][..], &[16, 17, 18][..]].iter().enumerate() {
        let net = picket_frames::layers::Ipv4::new([10, 99, 10, i as u8], [10, 99, 8, 1])
            .build(&picket_frames::layers::tcp(1, 80, TCP_SYN));
        f.push(shimmed(ETH_P_MPLS_UC, &mpls(labels), &net).bytes);
    }
    let net = picket_frames::layers::Ipv4::new([10, 99, 11, 1], [10, 99, 8, 1])
        .build(&picket_frames::layers::tcp(1, 80, TCP_SYN));
    f.push(shimmed(ETH_P_PPPOE_SES, &pppoe(0x0021, net.bytes.len()), &net).bytes);
    let net6 = picket_frames::layers::Ipv6::new(
        picket_frames::layers::v6(11, 2),
        picket_frames::layers::v6(8, 1),
    )
    .build(&picket_frames::layers::udp(5000, 53));
    f.push(shimmed(ETH_P_PPPOE_SES, &pppoe(0x0057, net6.bytes.len()), &net6).bytes);
    let _ = ETH_P_IPV6;
    f
}

/// A scanner touching more than 64 ports and hosts, so the estimates are compared too.
fn scan() -> Vec<(Vec<u8>, u32)> {
    let mut out = Vec::new();
    for port in 1..=700u16 {
        let dst = v4(1, (port % 200) as u8);
        out.push((
            frames::ipv4(
                v4(9, 9),
                dst,
                IPPROTO_TCP,
                0,
                &frames::tcp(55555, port, TCP_SYN),
            ),
            DIR_INGRESS,
        ));
        out.push((
            frames::ipv4(
                dst,
                v4(9, 9),
                IPPROTO_TCP,
                0,
                &frames::tcp(port, 55555, TCP_RST | TCP_ACK),
            ),
            DIR_EGRESS,
        ));
    }
    out
}

/// Deterministic xorshift generator.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Mutations and truncations of the crafted frames, plus random bytes after an Ethernet
/// header with an IP EtherType.
fn random(n: usize) -> Vec<(Vec<u8>, u32)> {
    let seeds = crafted();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let (mut f, dir) = seeds[rng.below(seeds.len() as u64) as usize].clone();
        match rng.below(4) {
            0 => {
                for _ in 0..1 + rng.below(4) {
                    let i = 14 + rng.below(f.len().saturating_sub(14).max(1) as u64) as usize;
                    if i < f.len() {
                        f[i] = rng.next() as u8;
                    }
                }
            }
            1 => {
                let keep = 14 + rng.below(f.len().saturating_sub(13) as u64) as usize;
                f.truncate(keep);
            }
            2 => {
                let len = 14 + rng.below(120) as usize;
                let et: u16 = if rng.below(2) == 0 { 0x0800 } else { 0x86dd };
                f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1];
                f.extend_from_slice(&et.to_be_bytes());
                while f.len() < len {
                    f.push(rng.next() as u8);
                }
                // Keep the version nibble right half of the time, so parsing goes deep.
                if f.len() > 14 && rng.below(2) == 0 {
                    f[14] = if et == 0x0800 { 0x45 } else { 0x60 };
                }
            }
            _ => {
                // Same source pool, new ports: grows the sets.
                if f.len() > 14 + 20 + 4 && f[12..14] == [0x08, 0x00] {
                    let port = rng.next() as u16;
                    f[36..38].copy_from_slice(&port.to_be_bytes());
                }
            }
        }
        out.push((f, dir));
    }
    out
}

fn assert_parity(frames: &[(Vec<u8>, u32)]) {
    assert_parity_with(frames, false);
}

fn assert_parity_with(frames: &[(Vec<u8>, u32)], admit_on_second: bool) {
    let Some(mut k) = runner() else { return };
    k.set_admit_on_second(admit_on_second)
        .expect("write CONFIG");
    check_parity(&mut k, frames);
}

fn check_parity(k: &mut KernelRunner, frames: &[(Vec<u8>, u32)]) {
    let r = compare(k, frames).expect("run frames through the kernel");
    eprintln!(
        "{} frames compared, {} refused by the kernel's test harness",
        r.compared, r.refused
    );
    assert!(
        r.compared >= frames.len() * 9 / 10,
        "too few frames ran: {} of {}",
        r.compared,
        frames.len()
    );
    assert!(
        r.diffs.is_empty(),
        "kernel and host disagree on {} entries:\n{}",
        r.diffs.len(),
        r.diffs
            .iter()
            .take(20)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn l3_device_programs_match_the_host() {
    // The programs of devices without a link header (tun, ipip, gre, wireguard) on the
    // crafted IP packets (framed ones without their Ethernet header) and their mutations.
    let Some(mut k) = runner() else { return };
    let mut c = agent::parity::Comparison::new(&mut k);
    let mut fed = 0;
    for (i, (f, dir)) in crafted().into_iter().chain(random(3000)).enumerate() {
        if f.len() <= 14 || !(f[12..14] == [0x08, 0x00] || f[12..14] == [0x86, 0xdd]) {
            continue;
        }
        let _ = i;
        c.feed_ip(&f[14..], dir).expect("run packet");
        fed += 1;
    }
    let r = c.finish().expect("compare");
    eprintln!(
        "{fed} packets fed, {} compared, {} refused",
        r.compared, r.refused
    );
    assert!(
        r.diffs.is_empty(),
        "kernel and host disagree:\n{}",
        r.diffs.join("\n")
    );
    // The cut ones shorter than the harness's 14-byte minimum do not run.
    assert!(
        r.compared >= fed * 4 / 5,
        "too few ran: {} of {fed}",
        r.compared
    );
}

#[test]
fn evidence_capture_changes_no_counters() {
    // Capture on, with flagged sources among the frames (one with a budget that runs out,
    // and enough frames to fill the undrained ring): the maps still match the host model.
    let Some(mut k) = runner() else { return };
    let (rich, poor, v6src) = (v4(0, 1).into(), v4(0, 3).into(), v6(1).into());
    k.flag(rich, 1 << 30).expect("flag");
    k.flag(poor, 100).expect("flag");
    k.flag(v6src, 1 << 30).expect("flag");
    let mut frames = crafted();
    let syn = frames::tcp(40000, 80, TCP_SYN);
    for _ in 0..5000 {
        frames.push((
            frames::ipv4(v4(0, 1), v4(0, 2), IPPROTO_TCP, 0, &syn),
            DIR_INGRESS,
        ));
    }
    frames.extend(random(5000));
    check_parity(&mut k, &frames);
    let rich = k.flagged(rich).expect("read FLAGGED");
    let poor = k.flagged(poor).expect("read FLAGGED");
    eprintln!("flagged: {rich:?} {poor:?}");
    assert!(rich.captured > 1000, "{rich:?}");
    assert!(rich.dropped > 0, "the undrained ring should fill: {rich:?}");
    assert!(poor.captured >= 1 && (poor.budget as i64) <= 0, "{poor:?}");
}

#[test]
fn crafted_frames_match_host() {
    assert_parity(&crafted());
}

#[test]
fn scanner_sets_and_estimates_match_host() {
    assert_parity(&scan());
}

#[test]
fn mutated_and_random_frames_match_host() {
    assert_parity(&random(20_000));
}

#[test]
fn admission_on_second_sighting_matches_host() {
    // Spoofed one-packet sources interleaved with a scanner: with admission control on, only
    // sources seen twice get entries, identically in kernel and host.
    let mut frames = Vec::new();
    for i in 0..3000u32 {
        let spoofed = Ipv4Addr::from(0x0b00_0000 + i * 7919);
        frames.push((
            frames::ipv4(
                spoofed,
                v4(0, 2),
                IPPROTO_TCP,
                0,
                &frames::tcp(1024, 80, TCP_SYN),
            ),
            DIR_INGRESS,
        ));
        frames.push((
            frames::ipv4(
                v4(9, 9),
                v4(0, 2),
                IPPROTO_TCP,
                0,
                &frames::tcp(5555, (i % 300) as u16, TCP_SYN),
            ),
            DIR_INGRESS,
        ));
    }
    assert_parity_with(&frames, true);
}

/// Probes of every class and their answers: SYN, FIN, ACK, UDP from port 53, SCTP INIT,
/// ICMP echo, IP protocol 47, answered in the same tick or the next (by SYN-ACK, RST, bare
/// RST, ICMP errors quoting them, time exceeded, echo reply, SCTP INIT-ACK and ABORT, UDP
/// and GRE back).
fn answers() -> Vec<Vec<(Vec<u8>, u32)>> {
    use agent_common::classify::{IPPROTO_ICMP, IPPROTO_SCTP};
    let (scanner, victim, router) = (v4(9, 9), v4(0, 2), v4(7, 7));
    let to = |l4: &[u8], proto| frames::ipv4(scanner, victim, proto, 0, l4);
    let from = |l4: &[u8], proto| frames::ipv4(victim, scanner, proto, 0, l4);
    let (mut probes, mut now, mut later) = (Vec::new(), Vec::new(), Vec::new());
    for port in 1..=60u16 {
        let flags = [TCP_SYN, TCP_FIN, 0, TCP_ACK][port as usize % 4];
        probes.push((
            to(&frames::tcp(40000, port, flags), IPPROTO_TCP),
            DIR_INGRESS,
        ));
        let answer = match port % 3 {
            0 => TCP_SYN | TCP_ACK,
            1 => TCP_RST | TCP_ACK,
            _ => TCP_RST,
        };
        let a = (
            from(&frames::tcp(port, 40000, answer), IPPROTO_TCP),
            DIR_EGRESS,
        );
        if port % 2 == 0 {
            now.push(a)
        } else {
            later.push(a)
        }
        let udp = to(&frames::udp(53, port, b"q"), IPPROTO_UDP);
        probes.push((udp.clone(), DIR_INGRESS));
        let err = frames::icmp_error(3, 3, &frames::quote(&udp));
        let a = if port % 5 == 0 {
            (from(&frames::udp(port, 53, b"a"), IPPROTO_UDP), DIR_EGRESS)
        } else if port % 5 == 1 {
            let te = frames::icmp_error(11, 0, &frames::quote(&udp));
            (
                frames::ipv4(router, scanner, IPPROTO_ICMP, 0, &te),
                DIR_INGRESS,
            )
        } else {
            (from(&err, IPPROTO_ICMP), DIR_EGRESS)
        };
        if port % 2 == 0 {
            now.push(a)
        } else {
            later.push(a)
        }
        let sctp = to(&frames::sctp(5000, port, 1), IPPROTO_SCTP);
        probes.push((sctp, DIR_INGRESS));
        let chunk = if port % 2 == 0 { 2 } else { 6 };
        later.push((
            from(&frames::sctp(port, 5000, chunk), IPPROTO_SCTP),
            DIR_EGRESS,
        ));
    }
    for h in 0..20u8 {
        let ping = frames::ipv4(scanner, v4(3, h), IPPROTO_ICMP, 0, &frames::icmp(8, 0));
        probes.push((ping, DIR_INGRESS));
        let reply = frames::ipv4(v4(3, h), scanner, IPPROTO_ICMP, 0, &frames::icmp(0, 0));
        if h % 2 == 0 {
            now.push((reply, DIR_INGRESS))
        } else {
            later.push((reply, DIR_INGRESS))
        }
        probes.push((frames::ipv4(scanner, v4(3, h), 47, 0, &[0; 8]), DIR_INGRESS));
        now.push((frames::ipv4(v4(3, h), scanner, 47, 0, &[0; 8]), DIR_INGRESS));
    }
    let mut first = probes;
    first.extend(now);
    let mut second = later.clone();
    // The same answers again: they find their records and write nothing.
    second.extend(later);
    vec![first, second, Vec::new()]
}

#[test]
fn answers_match_host_across_ticks() {
    let Some(mut k) = runner() else { return };
    let r = compare_ticks(&mut k, &answers()).expect("run frames through the kernel");
    assert!(
        r.diffs.is_empty(),
        "kernel and host disagree:\n{}",
        r.diffs.join("\n")
    );
    assert!(r.compared > 400, "{} frames compared", r.compared);
}

#[test]
fn a_full_per_source_table_evicts_as_the_host_does() {
    // 64 entries, 300 probing sources over four ticks, and one scanner in every tick: sets
    // fill, and new sources take the way probed in the older tick, identically on both sides.
    const ENTRIES: u32 = 64;
    let Some(mut k) = runner_with_sources(ENTRIES) else {
        return;
    };
    let ticks: Vec<Vec<(Vec<u8>, u32)>> = (0..4u16)
        .map(|t| {
            let mut tick = Vec::new();
            for i in 0..75u16 {
                let src = Ipv4Addr::from(0x0c00_0000 + u32::from(t * 75 + i) * 104_729);
                for port in [22, 80] {
                    let syn = frames::tcp(40000 + t, port, TCP_SYN);
                    let f = frames::ipv4(src, v4(0, 2), IPPROTO_TCP, 0, &syn);
                    tick.push((f, DIR_INGRESS));
                }
                let syn = frames::tcp(5555, 1000 + t * 75 + i, TCP_SYN);
                tick.push((
                    frames::ipv4(v4(9, 9), v4(0, 2), IPPROTO_TCP, 0, &syn),
                    DIR_INGRESS,
                ));
            }
            tick
        })
        .collect();
    let mut c = Comparison::new(&mut k);
    for (i, tick) in ticks.iter().enumerate() {
        if i > 0 {
            c.next_tick().expect("end a tick");
        }
        for (frame, dir) in tick {
            c.feed(frame, *dir).expect("run a frame through the kernel");
        }
    }
    let tracked = c.host_sources();
    let r = c.finish().expect("compare the tables");
    assert!(
        r.diffs.is_empty(),
        "kernel and host disagree:\n{}",
        r.diffs.join("\n")
    );
    assert_eq!(r.compared, 4 * 75 * 3);
    assert!(
        tracked > ENTRIES as usize / 2 && tracked <= ENTRIES as usize,
        "{tracked} sources tracked in {ENTRIES} entries"
    );
}

#[test]
fn the_kernel_decapsulates_every_tunnel_kind() {
    // Parity alone would pass if neither side decapsulated: check the kernel's own counts.
    use agent_common::tunnel::*;
    let Some(mut k) = runner() else { return };
    let frames: Vec<(Vec<u8>, u32)> = tunnelled().into_iter().map(|f| (f, DIR_INGRESS)).collect();
    check_parity(&mut k, &frames);
    let g = k.read().expect("read maps").globals[DIR_INGRESS as usize];
    let want = [
        (ENCAP_VXLAN, 3),
        (ENCAP_GENEVE, 2),
        (ENCAP_GRE, 5),
        (ENCAP_IPIP, 1),
        (ENCAP_6IN4, 1),
        (ENCAP_4IN6, 1),
        (ENCAP_6IN6, 1),
    ];
    for (kind, n) in want {
        assert_eq!(g.encap[kind as usize], n, "{}", ENCAP_NAMES[kind as usize]);
    }
    assert_eq!(
        g.inner_errors[INNER_TRUNCATED as usize..]
            .iter()
            .sum::<u64>(),
        5,
        "{:?}",
        g.inner_errors
    );
    // Empty and Ethernet-padded: truncated; garbage after 41: bad; PPTP: unsupported.
    assert_eq!(g.inner_errors, [0, 3, 1, 1]);
    assert_eq!((g.mpls, g.pppoe), (3, 2));
    // The inner SYNs count as SYNs (14 tunnelled, 3 behind MPLS or PPPoE); the refused
    // GRE packet's SYN is not seen.
    assert_eq!(g.syn, 17, "{g:?}");
}
