//! Many-to-one rules over settled probes ([`ProbeEvent`]), for attacks no single source
//! address shows:
//!
//! * `distributed_scan` (scope destination): over [`WINDOW_NS`] (or, for slow ones, over
//!   [`SLOW_WINDOW_NS`] within the set's bound), at least
//!   [`DISTRIBUTED_MIN_PORTS`] distinct failed ports of one destination, from at least
//!   [`DISTRIBUTED_MIN_SOURCES`] sources each contributing at least
//!   [`DISTRIBUTED_MIN_PER_SOURCE`] and staying under its own `port_scan` bar (a source over
//!   it is `port_scan`'s). Snort's "many to one" port scan (`ps_detect.cc`).
//! * IPv6 scanners rotating through their /64: failed probes from IPv6 sources are also
//!   counted per source /64, and a /64 with at least two addresses crossing the `port_scan`
//!   or `host_sweep` bar is one finding whose `source` is the /64's network address and
//!   `details.source_prefix` the /64. It absorbs the findings of the addresses inside it.
//!
//! Only failed probes (rejected, unanswered) count: an unknown outcome (one direction in
//! view) proves nothing about a distributed scan. Every set is bounded: a set keeps its
//! newest entries (the oldest is replaced when full), and the number of sets is capped
//! (the least recently updated go first). Memory: at most [`TARGETS_MAX`] target sets of
//! [`TARGET_SET_CAP`] entries (about 40 B each) and [`PREFIXES_MAX`] prefix sets of
//! [`PREFIX_SET_CAP`] entries (24 B each): under 45 MiB in all.

use std::{
    collections::{HashMap, HashSet},
    hash::Hash,
    net::{IpAddr, Ipv6Addr},
};

use ipnet::{IpNet, Ipv6Net};

use crate::{
    detector::{Details, Finding, Rule, Scope, Sources, Thresholds, Unit},
    episodes::SAMPLE,
    probes::{ProbeEvent, ProbeGroup},
};

/// Window of the many-to-one counts (the medium scale of the per-source rules).
pub const WINDOW_NS: u64 = 60_000_000_000;
/// Slow scale of `distributed_scan` (the slow scale of the per-source rules).
pub const SLOW_WINDOW_NS: u64 = 600_000_000_000;
/// `distributed_scan`: distinct failed ports of one destination.
pub const DISTRIBUTED_MIN_PORTS: usize = 100;
/// `distributed_scan`: contributing sources.
pub const DISTRIBUTED_MIN_SOURCES: usize = 5;
/// `distributed_scan`: failed ports a source must contribute to count.
pub const DISTRIBUTED_MIN_PER_SOURCE: usize = 3;
/// Entries of one destination's set of (source, port). Larger than the design's 128 so
/// that 50 sources probing in turn still show 3 ports each.
pub const TARGET_SET_CAP: usize = 256;
/// Destinations tracked.
pub const TARGETS_MAX: usize = 4096;
/// Entries of one /64's set of ports or hosts (above both bars' defaults).
pub const PREFIX_SET_CAP: usize = 96;
/// /64 sets tracked.
pub const PREFIXES_MAX: usize = 8192;

/// A bounded set of `(value, member)` seen at a time: the newest entries are kept.
#[derive(Debug)]
struct RecentSet<V, M> {
    entries: Vec<(V, M, u64)>,
    cap: usize,
    last_ns: u64,
}

impl<V: Copy + Eq + Hash, M: Copy + Eq + Hash> RecentSet<V, M> {
    fn new(cap: usize) -> Self {
        RecentSet {
            entries: Vec::new(),
            cap,
            last_ns: 0,
        }
    }

    fn insert(&mut self, value: V, member: M, at: u64) {
        self.last_ns = self.last_ns.max(at);
        if let Some(e) = self
            .entries
            .iter_mut()
            .find(|e| e.0 == value && e.1 == member)
        {
            e.2 = e.2.max(at);
        } else if self.entries.len() < self.cap {
            self.entries.push((value, member, at));
        } else if let Some(oldest) = self.entries.iter_mut().min_by_key(|e| e.2) {
            *oldest = (value, member, at);
        }
    }

    fn expire(&mut self, now: u64, keep_ns: u64) {
        self.entries.retain(|e| now.saturating_sub(e.2) <= keep_ns);
    }

    fn saturated(&self) -> bool {
        self.entries.len() >= self.cap
    }
}

/// Forgets the least recently updated sets beyond `cap`.
fn bound<K: Copy + Eq + Hash, V: Copy + Eq + Hash, M: Copy + Eq + Hash>(
    map: &mut HashMap<K, RecentSet<V, M>>,
    cap: usize,
) {
    let excess = map.len().saturating_sub(cap);
    if excess == 0 {
        return;
    }
    let mut ages: Vec<(u64, K)> = map.iter().map(|(k, s)| (s.last_ns, *k)).collect();
    ages.select_nth_unstable_by_key(excess - 1, |(t, _)| *t);
    for (_, k) in &ages[..excess] {
        map.remove(k);
    }
}

fn prefix64(ip: Ipv6Addr) -> Ipv6Net {
    Ipv6Net::new(ip, 64).expect("64 ≤ 128").trunc()
}

/// The low 64 bits of an IPv6 address: its interface identifier within the /64.
fn interface_id(ip: Ipv6Addr) -> u64 {
    (u128::from(ip) & u128::from(u64::MAX)) as u64
}

/// State of the many-to-one rules.
#[derive(Debug, Default)]
pub struct ManyToOne {
    /// Failed (port, source) per (destination, protocol group).
    targets: HashMap<(IpAddr, ProbeGroup), RecentSet<u16, IpAddr>>,
    /// Failed (port, address in the /64) per (source /64, destination, group).
    prefix_ports: HashMap<(Ipv6Net, IpAddr, ProbeGroup), RecentSet<u16, u64>>,
    /// Failed (destination, address in the /64) per (source /64, group, port).
    prefix_hosts: HashMap<(Ipv6Net, ProbeGroup, u16), RecentSet<IpAddr, u64>>,
}

impl ManyToOne {
    /// Adds the reading's probes and returns the findings at `now_ns`.
    pub fn evaluate(&mut self, probes: &[ProbeEvent], now_ns: u64, t: &Thresholds) -> Vec<Finding> {
        for p in probes.iter().filter(|p| p.outcome.failed()) {
            let (src, dst) = (p.src_ip(), p.dst_ip());
            self.targets
                .entry((dst, p.group))
                .or_insert_with(|| RecentSet::new(TARGET_SET_CAP))
                .insert(p.port, src, p.at_ns);
            if let IpAddr::V6(v6) = src {
                let (net, id) = (prefix64(v6), interface_id(v6));
                self.prefix_ports
                    .entry((net, dst, p.group))
                    .or_insert_with(|| RecentSet::new(PREFIX_SET_CAP))
                    .insert(p.port, id, p.at_ns);
                self.prefix_hosts
                    .entry((net, p.group, p.port))
                    .or_insert_with(|| RecentSet::new(PREFIX_SET_CAP))
                    .insert(dst, id, p.at_ns);
            }
        }
        self.targets
            .values_mut()
            .for_each(|s| s.expire(now_ns, SLOW_WINDOW_NS));
        self.targets.retain(|_, s| !s.entries.is_empty());
        self.prefix_ports
            .values_mut()
            .for_each(|s| s.expire(now_ns, WINDOW_NS));
        self.prefix_ports.retain(|_, s| !s.entries.is_empty());
        self.prefix_hosts
            .values_mut()
            .for_each(|s| s.expire(now_ns, WINDOW_NS));
        self.prefix_hosts.retain(|_, s| !s.entries.is_empty());
        bound(&mut self.targets, TARGETS_MAX);
        bound(&mut self.prefix_ports, PREFIXES_MAX);
        bound(&mut self.prefix_hosts, PREFIXES_MAX);

        let mut out: Vec<Finding> = self
            .targets
            .iter()
            .filter_map(|((dst, _), set)| {
                [WINDOW_NS, SLOW_WINDOW_NS]
                    .into_iter()
                    .find_map(|w| distributed(*dst, set, t, now_ns, w))
            })
            .collect();
        let mut by_prefix: HashMap<(Ipv6Net, Rule), Finding> = HashMap::new();
        for ((net, dst, _), set) in &self.prefix_ports {
            if let Some(f) =
                prefix_finding(*net, Some(*dst), set, t.port_scan_ports, Rule::PortScan)
            {
                keep_largest(&mut by_prefix, (*net, Rule::PortScan), f);
            }
        }
        for ((net, _, _), set) in &self.prefix_hosts {
            if let Some(f) = prefix_finding(*net, None, set, t.host_sweep_hosts, Rule::HostSweep) {
                keep_largest(&mut by_prefix, (*net, Rule::HostSweep), f);
            }
        }
        out.extend(by_prefix.into_values());
        out.sort_by_key(|f| (f.rule, f.source, f.destination));
        out
    }
}

fn keep_largest(m: &mut HashMap<(Ipv6Net, Rule), Finding>, key: (Ipv6Net, Rule), f: Finding) {
    match m.get(&key) {
        Some(old) if old.value >= f.value => {}
        _ => {
            m.insert(key, f);
        }
    }
}

/// A distributed scan of `dst` over the entries of `set` within `window_ns` of `now`.
fn distributed(
    dst: IpAddr,
    set: &RecentSet<u16, IpAddr>,
    t: &Thresholds,
    now: u64,
    window_ns: u64,
) -> Option<Finding> {
    let mut per_source: HashMap<IpAddr, HashSet<u16>> = HashMap::new();
    for (port, src, _) in set
        .entries
        .iter()
        .filter(|e| now.saturating_sub(e.2) <= window_ns)
    {
        per_source.entry(*src).or_default().insert(*port);
    }
    // Sources under their own bar with enough ports; those over it are port_scan's.
    let own_bar = t.port_scan_ports as usize;
    let mut counted: Vec<(IpAddr, &HashSet<u16>)> = per_source
        .iter()
        .filter(|(_, p)| p.len() >= DISTRIBUTED_MIN_PER_SOURCE && p.len() < own_bar)
        .map(|(ip, p)| (*ip, p))
        .collect();
    if counted.len() < DISTRIBUTED_MIN_SOURCES {
        return None;
    }
    let ports: HashSet<u16> = counted
        .iter()
        .flat_map(|(_, p)| p.iter().copied())
        .collect();
    if ports.len() < DISTRIBUTED_MIN_PORTS {
        return None;
    }
    // Most ports first in the sample.
    counted.sort_by_key(|(ip, p)| (std::cmp::Reverse(p.len()), *ip));
    let mut listed: Vec<u16> = ports.iter().copied().collect();
    listed.sort_unstable();
    listed.truncate(64);
    Some(Finding {
        rule: Rule::DistributedScan,
        scope: Scope::Destination,
        source: None,
        destination: Some(dst),
        value: ports.len() as f64,
        threshold: DISTRIBUTED_MIN_PORTS as f64,
        unit: Unit::Ports,
        window_s: window_ns as f64 / 1e9,
        estimated: false,
        details: Details {
            distinct_ports: Some(ports.len() as u32),
            ports: listed,
            saturated: set.saturated(),
            sources: Some(Sources {
                count: counted.len() as u32,
                sample: counted.iter().take(SAMPLE).map(|(ip, _)| *ip).collect(),
                estimated: set.saturated(),
                follow_up: Vec::new(),
            }),
            ..Details::default()
        },
    })
}

fn prefix_finding<V: Copy + Eq + Hash>(
    net: Ipv6Net,
    dst: Option<IpAddr>,
    set: &RecentSet<V, u64>,
    bar: u32,
    rule: Rule,
) -> Option<Finding> {
    let values: HashSet<V> = set.entries.iter().map(|e| e.0).collect();
    let members: HashSet<u64> = set.entries.iter().map(|e| e.1).collect();
    // One address alone is the per-source rules' case.
    if members.len() < 2 || values.len() < bar as usize {
        return None;
    }
    let (unit, ports, hosts) = match rule {
        Rule::HostSweep => (Unit::Hosts, None, Some(values.len() as u32)),
        _ => (Unit::Ports, Some(values.len() as u32), None),
    };
    Some(Finding {
        rule,
        scope: Scope::Source,
        source: Some(IpAddr::V6(net.network())),
        destination: dst,
        value: values.len() as f64,
        threshold: f64::from(bar),
        unit,
        window_s: WINDOW_NS as f64 / 1e9,
        estimated: false,
        details: Details {
            distinct_ports: ports,
            distinct_hosts: hosts,
            saturated: set.saturated(),
            sources: Some(Sources {
                count: members.len() as u32,
                sample: {
                    let mut ids: Vec<u64> = members.iter().copied().collect();
                    ids.sort_unstable();
                    let base = u128::from(net.network());
                    ids.iter()
                        .take(SAMPLE)
                        .map(|id| IpAddr::V6(Ipv6Addr::from(base | u128::from(*id))))
                        .collect()
                },
                estimated: set.saturated(),
                follow_up: Vec::new(),
            }),
            source_prefix: Some(IpNet::V6(net)),
            ..Details::default()
        },
    })
}

/// Drops the findings of addresses inside a /64 that has its own finding of the same rule.
pub fn absorb_prefixes(findings: Vec<Finding>) -> Vec<Finding> {
    let prefixes: HashSet<(Rule, IpNet)> = findings
        .iter()
        .filter_map(|f| Some((f.rule, f.details.source_prefix?)))
        .collect();
    if prefixes.is_empty() {
        return findings;
    }
    findings
        .into_iter()
        .filter(|f| {
            f.details.source_prefix.is_some()
                || f.scope != Scope::Source
                || !f.source.is_some_and(|ip| {
                    prefixes
                        .iter()
                        .any(|(r, net)| *r == f.rule && net.contains(&ip))
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probes::Outcome;

    const SEC: u64 = 1_000_000_000;

    fn bytes(ip: IpAddr) -> [u8; 16] {
        match ip {
            IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
            IpAddr::V6(v6) => v6.octets(),
        }
    }

    fn probe(src: IpAddr, dst: IpAddr, port: u16, outcome: Outcome, at_ns: u64) -> ProbeEvent {
        ProbeEvent {
            src: bytes(src),
            dst: bytes(dst),
            group: ProbeGroup::Tcp,
            port,
            outcome,
            at_ns,
            ack_class: false,
        }
    }

    fn v4(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// `sources` sources probing `per_source` ports each of `dst`, in turn (round robin).
    fn distributed_probes(sources: u16, per_source: u16, outcome: Outcome) -> Vec<ProbeEvent> {
        let dst = v4("192.0.2.1");
        let mut out = Vec::new();
        for i in 0..per_source {
            for s in 0..sources {
                let src = IpAddr::V4(std::net::Ipv4Addr::new(10, 7, (s >> 8) as u8, s as u8));
                out.push(probe(src, dst, 1000 + s * per_source + i, outcome, SEC));
            }
        }
        out
    }

    #[test]
    fn fifty_sources_of_twenty_ports_are_one_distributed_scan() {
        let mut m = ManyToOne::default();
        let t = Thresholds::default();
        let f = m.evaluate(&distributed_probes(50, 20, Outcome::Rejected), SEC, &t);
        assert_eq!(f.len(), 1, "{f:#?}");
        let f = &f[0];
        assert_eq!(
            (f.rule, f.scope),
            (Rule::DistributedScan, Scope::Destination)
        );
        assert_eq!(f.destination, Some(v4("192.0.2.1")));
        assert!(f.value >= DISTRIBUTED_MIN_PORTS as f64, "{}", f.value);
        let s = f.details.sources.as_ref().unwrap();
        assert!(s.count >= DISTRIBUTED_MIN_SOURCES as u32, "{s:?}");
        assert!(s.sample.len() <= SAMPLE);
        // Two minutes later it is a slow distributed scan; after ten, nothing.
        let slow = m.evaluate(&[], 120 * SEC, &t);
        assert_eq!(slow.len(), 1);
        assert_eq!(slow[0].window_s, 600.0);
        assert!(m.evaluate(&[], 602 * SEC, &t).is_empty());
    }

    #[test]
    fn a_slow_distributed_scan_is_found_at_the_slow_scale() {
        // 10 sources × 12 ports over five minutes: under the bar in any minute.
        let mut m = ManyToOne::default();
        let t = Thresholds::default();
        let dst = v4("192.0.2.1");
        let mut found = Vec::new();
        for i in 0..120u16 {
            let src = IpAddr::V4(std::net::Ipv4Addr::new(10, 9, 0, (i % 10) as u8));
            let at = u64::from(i) * 2_500_000_000;
            let p = probe(src, dst, 3000 + i, Outcome::Unanswered, at);
            found = m.evaluate(&[p], at, &t);
            // The 100th port (i = 99) is the bar.
            assert_eq!(found.is_empty(), i < 99, "{i}: {found:?}");
        }
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!((found[0].value, found[0].window_s), (120.0, 600.0));
    }

    #[test]
    fn answered_probes_few_sources_or_few_ports_are_not_a_distributed_scan() {
        let t = Thresholds::default();
        for (probes, why) in [
            (distributed_probes(50, 20, Outcome::Accepted), "accepted"),
            (
                distributed_probes(50, 20, Outcome::Unknown),
                "unknown outcome",
            ),
            (distributed_probes(4, 29, Outcome::Rejected), "four sources"),
            (
                distributed_probes(40, 2, Outcome::Rejected),
                "two ports each",
            ),
            (distributed_probes(10, 9, Outcome::Rejected), "90 ports"),
        ] {
            let mut m = ManyToOne::default();
            assert!(m.evaluate(&probes, SEC, &t).is_empty(), "{why}");
        }
        // Sources over their own bar are port_scan's, not part of a distributed scan.
        let mut m = ManyToOne::default();
        assert!(
            m.evaluate(&distributed_probes(5, 40, Outcome::Rejected), SEC, &t)
                .is_empty()
        );
    }

    #[test]
    fn a_scanner_rotating_through_its_slash_64_is_found() {
        let mut m = ManyToOne::default();
        let t = Thresholds::default();
        let dst = v4("192.0.2.1");
        // One probe per address: no address is a scanner on its own.
        let probes: Vec<ProbeEvent> = (0..40u16)
            .map(|i| {
                let src = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 5, 0, 0, 0, 100 + i));
                probe(src, dst, 2000 + i, Outcome::Unanswered, SEC)
            })
            .collect();
        let f = m.evaluate(&probes, SEC, &t);
        assert_eq!(f.len(), 1, "{f:#?}");
        assert_eq!((f[0].rule, f[0].scope), (Rule::PortScan, Scope::Source));
        assert_eq!(f[0].source, Some("2001:db8:0:5::".parse().unwrap()));
        assert_eq!(
            f[0].details.source_prefix,
            Some("2001:db8:0:5::/64".parse().unwrap())
        );
        assert_eq!(f[0].details.sources.as_ref().unwrap().count, 40);
        // A sweep by rotating addresses too.
        let mut m = ManyToOne::default();
        let sweep: Vec<ProbeEvent> = (0..70u16)
            .map(|i| {
                let src = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 6, 0, 0, 1, i));
                let dst = IpAddr::V4(std::net::Ipv4Addr::new(10, 8, 0, i as u8));
                probe(src, dst, 22, Outcome::Unanswered, SEC)
            })
            .collect();
        let f = m.evaluate(&sweep, SEC, &t);
        assert_eq!(f.len(), 1);
        assert_eq!((f[0].rule, f[0].value), (Rule::HostSweep, 70.0));
        // One address alone is the per-source rules' case.
        let mut m = ManyToOne::default();
        let one: Vec<ProbeEvent> = (0..40u16)
            .map(|i| {
                let src = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 7, 0, 0, 0, 1));
                probe(src, dst, 2000 + i, Outcome::Unanswered, SEC)
            })
            .collect();
        assert!(m.evaluate(&one, SEC, &t).is_empty());
    }

    #[test]
    fn a_slash_64_finding_absorbs_the_findings_of_its_addresses() {
        let mk = |src: &str, prefix: Option<&str>| Finding {
            rule: Rule::PortScan,
            scope: Scope::Source,
            source: Some(src.parse().unwrap()),
            destination: None,
            value: 40.0,
            threshold: 30.0,
            unit: Unit::Ports,
            window_s: 60.0,
            estimated: false,
            details: Details {
                source_prefix: prefix.map(|p| p.parse().unwrap()),
                ..Details::default()
            },
        };
        let kept = absorb_prefixes(vec![
            mk("2001:db8:0:5::", Some("2001:db8:0:5::/64")),
            mk("2001:db8:0:5::17", None),
            mk("2001:db8:0:6::17", None),
            mk("192.0.2.9", None),
        ]);
        let kept: Vec<String> = kept.iter().map(|f| f.source.unwrap().to_string()).collect();
        assert_eq!(kept, ["2001:db8:0:5::", "2001:db8:0:6::17", "192.0.2.9"]);
    }

    #[test]
    fn sets_stay_bounded() {
        let mut m = ManyToOne::default();
        let t = Thresholds::default();
        let src = v4("10.0.0.1");
        let probes: Vec<ProbeEvent> = (0..(TARGETS_MAX as u32 + 100))
            .map(|i| {
                let dst = IpAddr::V4(std::net::Ipv4Addr::from(0xc000_0000 + i));
                probe(src, dst, 80, Outcome::Rejected, SEC + u64::from(i))
            })
            .collect();
        m.evaluate(&probes, 2 * SEC, &t);
        assert_eq!(m.targets.len(), TARGETS_MAX);
        let dst = v4("192.0.2.1");
        let many: Vec<ProbeEvent> = (0..1000u16)
            .map(|p| probe(src, dst, p, Outcome::Rejected, SEC))
            .collect();
        m.evaluate(&many, 2 * SEC, &t);
        assert_eq!(
            m.targets[&(dst, ProbeGroup::Tcp)].entries.len(),
            TARGET_SET_CAP
        );
    }
}
