//! One event, one episode: source-scoped findings that are really one attack on one target
//! fold into one destination-scoped finding, so that a scan hidden among decoys or a storm of
//! forged sources is one episode about the target instead of one per (innocent) address.
//!
//! * **Decoys** (`decoy_scan`): [`DECOY_MIN_SOURCES`] or more sources crossing `port_scan` on
//!   the same destination within [`FOLD_WINDOW_NS`], whose port sets overlap (Jaccard ≥
//!   [`DECOY_MIN_JACCARD`]) with the largest one. `nmap -D` sends every probe from every
//!   decoy, so their sets are the same. The candidates are ranked by follow-ups: the real
//!   scanner's TCP stack answers the target's SYN-ACKs with RSTs, a spoofed decoy sends
//!   nothing else. Senders of RSTs are remembered for [`FOLD_WINDOW_NS`] (at most
//!   [`RST_SENDERS_MAX`]), since the RST may come before the scan crosses its bar.
//! * **Storms**: [`STORM_MIN_SOURCES`] or more source-scoped findings of one rule sharing a
//!   target (or the /24, /64 of their targets) within [`FOLD_WINDOW_NS`] fold into one
//!   destination-scoped finding of that rule, with the source count, a sample and the
//!   number folded.
//!
//! The folding works on findings, whatever rule made them; it keeps a bounded memory of the
//! sources seen per target over the last [`FOLD_WINDOW_NS`]. Sources whose findings came
//! before the bar was reached keep the episodes they had opened (they end as usual).

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    net::IpAddr,
};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use crate::{
    detector::{Details, Finding, Rule, Scope, Sources, Unit},
    episodes::SAMPLE,
    snapshot::Snapshot,
};

/// Memory of the folding: sources seen within this much of each other are one event.
pub const FOLD_WINDOW_NS: u64 = 10_000_000_000;
/// Source-scoped findings of one rule on one target (or /24, /64) that make a storm.
pub const STORM_MIN_SOURCES: usize = 8;
/// Sources scanning the same ports of one destination that make a decoy scan.
pub const DECOY_MIN_SOURCES: usize = 3;
/// Least overlap (|A ∩ B| / |A ∪ B|) of a decoy's ports with the largest set.
pub const DECOY_MIN_JACCARD: f64 = 0.5;
/// How long a source's `port_scan` of a destination many senders reach waits for decoys
/// to cross the bar: their probes settle a reading later, and count at the doubled bar of
/// probers that never get answers (a few readings at the default 1 s poll).
pub const DECOY_HOLD_NS: u64 = 3_000_000_000;
/// Sources remembered per target; more are counted as a lower bound.
const SOURCES_PER_TARGET: usize = 1024;
/// Targets remembered; beyond it the least recently seen are forgotten.
const TARGETS_MAX: usize = 8192;
/// Senders of RSTs remembered (follow-ups of decoy candidates).
pub const RST_SENDERS_MAX: usize = 65_536;

/// What the findings of a storm share: one host, or its /24 (IPv4) or /64 (IPv6).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Target {
    Host(IpAddr),
    Net(IpNet),
}

fn net_of(ip: IpAddr) -> IpNet {
    match ip {
        IpAddr::V4(v4) => IpNet::V4(Ipv4Net::new(v4, 24).expect("24 ≤ 32").trunc()),
        IpAddr::V6(v6) => IpNet::V6(Ipv6Net::new(v6, 64).expect("64 ≤ 128").trunc()),
    }
}

/// Sources seen on one target, with when.
#[derive(Debug, Default)]
struct Seen {
    sources: HashMap<IpAddr, u64>,
    /// Sources beyond the cap, in the window (a lower bound of the rest).
    overflow: u64,
    last_ns: u64,
}

impl Seen {
    fn note(&mut self, ip: IpAddr, now_ns: u64) {
        self.last_ns = now_ns;
        if self.sources.len() < SOURCES_PER_TARGET || self.sources.contains_key(&ip) {
            self.sources.insert(ip, now_ns);
        } else {
            self.overflow += 1;
        }
    }

    fn expire(&mut self, now_ns: u64) {
        self.sources
            .retain(|_, at| now_ns.saturating_sub(*at) <= FOLD_WINDOW_NS);
        if now_ns.saturating_sub(self.last_ns) > FOLD_WINDOW_NS {
            self.overflow = 0;
        }
    }

    fn count(&self) -> usize {
        self.sources.len() + self.overflow as usize
    }
}

/// One port-scanning source of a destination, for the decoy test.
#[derive(Debug)]
struct Scanner {
    ports: HashSet<u16>,
    at_ns: u64,
    follow_up: bool,
}

/// Folds findings reading by reading.
#[derive(Debug, Default)]
pub struct Folder {
    storms: HashMap<(Rule, Target), Seen>,
    scanners: HashMap<IpAddr, HashMap<IpAddr, Scanner>>,
    /// Addresses that sent RSTs, and when last.
    rst_senders: HashMap<IpAddr, u64>,
    /// (source, destination) of `port_scan` findings held back, and since when.
    held: HashMap<(IpAddr, IpAddr), u64>,
}

/// Findings folded in one reading, per rule of the folded findings.
pub type Folded = BTreeMap<Rule, u64>;

impl Folder {
    /// Whether a `port_scan` is held back for its decoys: readings must go on for it to be
    /// released or folded (an offline replay takes them after its last packet).
    pub fn holding(&self) -> bool {
        !self.held.is_empty()
    }

    /// Folds one reading's findings. `snap` provides the follow-ups (the RSTs each address
    /// sent in the tick).
    pub fn fold(&mut self, snap: &Snapshot, findings: Vec<Finding>) -> (Vec<Finding>, Folded) {
        let now = snap.mono_ns;
        for s in snap.tick.src.iter().filter(|s| s.rst > 0) {
            let ip = agent_common::state::AddrKey {
                addr: s.head.addr_bytes(),
            }
            .ip();
            if self.rst_senders.len() < RST_SENDERS_MAX || self.rst_senders.contains_key(&ip) {
                self.rst_senders.insert(ip, now);
            }
        }
        self.expire(now);
        let mut folded = Folded::new();
        let (mut out, mut candidates): (Vec<Finding>, Vec<Finding>) =
            findings.into_iter().partition(|f| {
                f.scope != Scope::Source || f.source.is_none() || f.destination.is_none()
            });
        candidates = self.fold_decoys(now, candidates, &mut out, &mut folded);
        for level in [false, true] {
            candidates = self.fold_storms(now, level, candidates, &mut out, &mut folded);
        }
        // A target under a flood is crowded by the flood's sources, not by decoys.
        let flooded: HashSet<IpAddr> = out
            .iter()
            .filter(|f| f.scope == Scope::Destination && f.unit != Unit::Ports)
            .filter_map(|f| f.destination)
            .collect();
        out.extend(self.hold_crowded(snap, now, &flooded, candidates));
        (out, folded)
    }

    /// Holds back, for [`DECOY_HOLD_NS`], a source's new `port_scan` of a destination that
    /// [`DECOY_MIN_SOURCES`] or more senders reached in the tick: decoys' probes settle a
    /// reading later than the real scanner's (their answers go to addresses that do not
    /// exist, so they end unanswered instead of refused), and without the wait the real
    /// scanner would open an episode of its own just before the decoy scan folds it.
    fn hold_crowded(
        &mut self,
        snap: &Snapshot,
        now: u64,
        flooded: &HashSet<IpAddr>,
        found: Vec<Finding>,
    ) -> Vec<Finding> {
        self.held
            .retain(|_, at| now.saturating_sub(*at) <= FOLD_WINDOW_NS);
        let crowded: HashSet<IpAddr> = snap
            .tick
            .dst
            .iter()
            .filter(|d| {
                let senders: u32 = d.src_bits.iter().map(|w| w.count_ones()).sum();
                senders as usize >= DECOY_MIN_SOURCES
            })
            .map(|d| {
                agent_common::state::AddrKey {
                    addr: d.head.addr_bytes(),
                }
                .ip()
            })
            .filter(|ip| !flooded.contains(ip))
            .collect();
        found
            .into_iter()
            .filter(|f| {
                let (Rule::PortScan, Some(src), Some(dst)) = (f.rule, f.source, f.destination)
                else {
                    return true;
                };
                let first = match self.held.get(&(src, dst)) {
                    Some(at) => *at,
                    None if crowded.contains(&dst) && self.held.len() < RST_SENDERS_MAX => {
                        self.held.insert((src, dst), now);
                        now
                    }
                    None => return true,
                };
                now.saturating_sub(first) >= DECOY_HOLD_NS
            })
            .collect()
    }

    fn expire(&mut self, now: u64) {
        self.rst_senders
            .retain(|_, at| now.saturating_sub(*at) <= FOLD_WINDOW_NS);
        self.storms.retain(|_, s| {
            s.expire(now);
            !s.sources.is_empty()
        });
        if self.storms.len() > TARGETS_MAX {
            forget_oldest(&mut self.storms, TARGETS_MAX, |s| s.last_ns);
        }
        for m in self.scanners.values_mut() {
            m.retain(|_, s| now.saturating_sub(s.at_ns) <= FOLD_WINDOW_NS);
        }
        self.scanners.retain(|_, m| !m.is_empty());
        if self.scanners.len() > TARGETS_MAX {
            forget_oldest(&mut self.scanners, TARGETS_MAX, |m| {
                m.values().map(|s| s.at_ns).max().unwrap_or(0)
            });
        }
    }

    /// `port_scan` findings of sources scanning the same ports of one destination become
    /// one `decoy_scan` finding per destination; the others are returned.
    fn fold_decoys(
        &mut self,
        now: u64,
        candidates: Vec<Finding>,
        out: &mut Vec<Finding>,
        folded: &mut Folded,
    ) -> Vec<Finding> {
        let mut by_dst: BTreeMap<IpAddr, Vec<Finding>> = BTreeMap::new();
        let mut rest = Vec::new();
        for f in candidates {
            match (f.rule, f.destination) {
                (Rule::PortScan, Some(d)) if !f.details.ports.is_empty() => {
                    by_dst.entry(d).or_default().push(f)
                }
                _ => rest.push(f),
            }
        }
        for (dst, found) in by_dst {
            let seen = self.scanners.entry(dst).or_default();
            for f in &found {
                let src = f.source.expect("candidates have a source");
                let s = seen.entry(src).or_insert_with(|| Scanner {
                    ports: HashSet::new(),
                    at_ns: now,
                    follow_up: false,
                });
                s.ports.extend(f.details.ports.iter().copied());
                s.at_ns = now;
                s.follow_up |= self.rst_senders.contains_key(&src);
            }
            let Some(cluster) = decoy_cluster(seen) else {
                rest.extend(found);
                continue;
            };
            let (mine, others): (Vec<Finding>, Vec<Finding>) = found
                .into_iter()
                .partition(|f| f.source.is_some_and(|s| cluster.contains(&s)));
            rest.extend(others);
            if mine.is_empty() {
                continue;
            }
            *folded.entry(Rule::PortScan).or_default() += mine.len() as u64;
            out.push(decoy_finding(dst, &mine, seen, &cluster));
        }
        rest
    }

    /// Source-scoped findings sharing a target (`nets`: the /24 or /64 of their targets)
    /// with enough other sources within the window fold into one destination-scoped finding.
    fn fold_storms(
        &mut self,
        now: u64,
        nets: bool,
        candidates: Vec<Finding>,
        out: &mut Vec<Finding>,
        folded: &mut Folded,
    ) -> Vec<Finding> {
        let target = |f: &Finding| {
            let d = f.destination.expect("candidates have a destination");
            if nets {
                Target::Net(net_of(d))
            } else {
                Target::Host(d)
            }
        };
        let mut groups: BTreeMap<(Rule, Target), Vec<Finding>> = BTreeMap::new();
        for f in candidates {
            let key = (f.rule, target(&f));
            let seen = self.storms.entry(key).or_default();
            seen.note(f.source.expect("candidates have a source"), now);
            groups.entry(key).or_default().push(f);
        }
        let mut rest = Vec::new();
        for (key, found) in groups {
            let seen = &self.storms[&key];
            if seen.count() < STORM_MIN_SOURCES {
                rest.extend(found);
                continue;
            }
            *folded.entry(key.0).or_default() += found.len() as u64;
            out.push(storm_finding(key.1, found, seen));
        }
        rest
    }
}

/// Forgets the least recently seen entries beyond `cap`.
fn forget_oldest<K: Copy + Eq + std::hash::Hash, V>(
    map: &mut HashMap<K, V>,
    cap: usize,
    last: impl Fn(&V) -> u64,
) {
    let mut ages: Vec<(u64, K)> = map.iter().map(|(k, v)| (last(v), *k)).collect();
    let excess = ages.len().saturating_sub(cap);
    if excess == 0 {
        return;
    }
    ages.select_nth_unstable_by_key(excess - 1, |(t, _)| *t);
    for (_, k) in &ages[..excess] {
        map.remove(k);
    }
}

fn jaccard(a: &HashSet<u16>, b: &HashSet<u16>) -> f64 {
    let union = a.union(b).count();
    if union == 0 {
        return 0.0;
    }
    a.intersection(b).count() as f64 / union as f64
}

/// The sources of a destination whose ports overlap the largest set enough, if they are
/// enough to be a decoy scan.
fn decoy_cluster(seen: &HashMap<IpAddr, Scanner>) -> Option<HashSet<IpAddr>> {
    if seen.len() < DECOY_MIN_SOURCES {
        return None;
    }
    let (_, reference) = seen.iter().max_by_key(|(ip, s)| (s.ports.len(), **ip))?;
    let cluster: HashSet<IpAddr> = seen
        .iter()
        .filter(|(_, s)| jaccard(&s.ports, &reference.ports) >= DECOY_MIN_JACCARD)
        .map(|(ip, _)| *ip)
        .collect();
    (cluster.len() >= DECOY_MIN_SOURCES).then_some(cluster)
}

fn decoy_finding(
    dst: IpAddr,
    mine: &[Finding],
    seen: &HashMap<IpAddr, Scanner>,
    cluster: &HashSet<IpAddr>,
) -> Finding {
    let mut ports: Vec<u16> = cluster
        .iter()
        .flat_map(|ip| seen[ip].ports.iter().copied())
        .collect::<HashSet<u16>>()
        .into_iter()
        .collect();
    ports.sort_unstable();
    // The likeliest real scanner first: those that followed up, then by address.
    let mut ranked: Vec<(bool, IpAddr)> = cluster
        .iter()
        .map(|ip| (!seen[ip].follow_up, *ip))
        .collect();
    ranked.sort();
    let follow_up: Vec<IpAddr> = ranked
        .iter()
        .filter(|(no, _)| !no)
        .map(|(_, ip)| *ip)
        .collect();
    let first = &mine[0];
    let value = mine.iter().map(|f| f.value).fold(0.0, f64::max);
    let distinct = mine
        .iter()
        .filter_map(|f| f.details.distinct_ports)
        .max()
        .unwrap_or(ports.len() as u32);
    Finding {
        rule: Rule::DecoyScan,
        scope: Scope::Destination,
        source: None,
        destination: Some(dst),
        value,
        threshold: first.threshold,
        unit: first.unit,
        window_s: first.window_s,
        estimated: mine.iter().any(|f| f.estimated),
        details: Details {
            distinct_ports: Some(distinct),
            folded: mine.len() as u32,
            ports: ports.into_iter().take(64).collect(),
            sources: Some(Sources {
                count: cluster.len() as u32,
                sample: ranked.iter().take(SAMPLE).map(|(_, ip)| *ip).collect(),
                estimated: false,
                follow_up,
            }),
            tiny_fragments: mine.iter().filter_map(|f| f.details.tiny_fragments).max(),
            ..Details::default()
        },
    }
}

fn storm_finding(target: Target, found: Vec<Finding>, seen: &Seen) -> Finding {
    let (destination, prefix) = match target {
        Target::Host(ip) => (ip, None),
        Target::Net(net) => (net.network(), Some(net)),
    };
    let mut sample: Vec<IpAddr> = seen.sources.keys().copied().collect();
    sample.sort_unstable();
    sample.truncate(SAMPLE);
    let first = &found[0];
    Finding {
        rule: first.rule,
        scope: Scope::Destination,
        source: None,
        destination: Some(destination),
        value: found.iter().map(|f| f.value).fold(0.0, f64::max),
        threshold: first.threshold,
        unit: first.unit,
        window_s: first.window_s,
        estimated: found.iter().any(|f| f.estimated),
        details: Details {
            folded: found.len() as u32,
            sources: Some(Sources {
                count: u32::try_from(seen.count()).unwrap_or(u32::MAX),
                sample,
                estimated: seen.overflow > 0,
                follow_up: Vec::new(),
            }),
            destination_prefix: prefix,
            ..Details::default()
        },
    }
}

#[cfg(test)]
mod tests {
    use agent_common::{slots::SrcSlot, state::AddrKey};

    use super::*;
    use crate::{detector::Unit, episodes::testing::finding};

    const SEC: u64 = 1_000_000_000;

    fn scan(src: &str, dst: &str, ports: std::ops::Range<u16>) -> Finding {
        let mut f = finding(src, ports.len() as f64);
        f.destination = Some(dst.parse().unwrap());
        f.details.ports = ports.collect();
        f
    }

    fn flood(rule: Rule, src: &str, dst: &str) -> Finding {
        Finding {
            rule,
            unit: Unit::PacketsPerSecond,
            ..scan(src, dst, 0..0)
        }
    }

    fn snap(t: u64, rst_from: &[&str]) -> Snapshot {
        let mut s = Snapshot {
            mono_ns: t,
            ..Snapshot::default()
        };
        for ip in rst_from {
            let mut slot = SrcSlot::default();
            let key = AddrKey::from_ip(ip.parse().unwrap());
            slot.head.addr = agent_common::slots::bytes_to_words(&key.addr);
            slot.rst = 3;
            s.tick.src.push(slot);
        }
        s
    }

    /// `snap` whose tick shows `senders` distinct senders reaching `dst`.
    fn crowded(t: u64, dst: &str, senders: u32) -> Snapshot {
        let mut s = snap(t, &[]);
        let mut slot = agent_common::slots::DstSlot::default();
        let key = AddrKey::from_ip(dst.parse().unwrap());
        slot.head.addr = agent_common::slots::bytes_to_words(&key.addr);
        slot.src_bits[0] = (1u64 << senders) - 1;
        s.tick.dst.push(slot);
        s
    }

    #[test]
    fn a_scan_of_a_crowded_target_waits_for_its_decoys() {
        let mut f = Folder::default();
        // The real scanner crosses the bar first; its decoys a reading later: one episode.
        let (out, _) = f.fold(
            &crowded(SEC, "192.0.2.1", 3),
            vec![scan("10.0.0.9", "192.0.2.1", 0..100)],
        );
        assert!(out.is_empty(), "held: {out:#?}");
        let later = vec![
            scan("10.0.0.1", "192.0.2.1", 0..100),
            scan("10.0.0.2", "192.0.2.1", 0..100),
            scan("10.0.0.9", "192.0.2.1", 0..100),
        ];
        let (out, _) = f.fold(&crowded(2 * SEC, "192.0.2.1", 3), later);
        assert_eq!(rules_of(&out), vec![Rule::DecoyScan]);
        // Alone on a crowded target, it is let through once the wait is over; on a target
        // few senders reach, at once.
        let mut f = Folder::default();
        let alone = || vec![scan("10.0.0.9", "192.0.2.1", 0..100)];
        assert!(f.fold(&crowded(SEC, "192.0.2.1", 5), alone()).0.is_empty());
        let t = SEC + DECOY_HOLD_NS;
        assert_eq!(
            rules_of(&f.fold(&snap(t, &[]), alone()).0),
            vec![Rule::PortScan]
        );
        let mut f = Folder::default();
        let quiet = f.fold(&crowded(SEC, "192.0.2.1", 2), alone()).0;
        assert_eq!(rules_of(&quiet), vec![Rule::PortScan]);
        // A target crowded by a flood's forged sources: the scan is reported at once.
        let mut f = Folder::default();
        let mut found = alone();
        let mut syn = flood(Rule::SynFlood, "10.0.0.200", "192.0.2.1");
        (syn.scope, syn.source) = (Scope::Destination, None);
        found.push(syn);
        let out = f.fold(&crowded(SEC, "192.0.2.1", 60), found).0;
        assert_eq!(rules_of(&out), vec![Rule::SynFlood, Rule::PortScan]);
    }

    fn rules_of(out: &[Finding]) -> Vec<Rule> {
        out.iter().map(|f| f.rule).collect()
    }

    #[test]
    fn decoys_fold_into_one_destination_episode_with_the_real_scanner_first() {
        let mut f = Folder::default();
        // The real scanner's RSTs came a reading before its scan crossed the bar.
        let (out, _) = f.fold(&snap(SEC, &["10.0.0.9"]), vec![]);
        assert!(out.is_empty());
        let (out, folded) = f.fold(
            &snap(2 * SEC, &[]),
            vec![
                scan("10.0.0.1", "192.0.2.1", 0..100),
                scan("10.0.0.2", "192.0.2.1", 0..100),
                scan("10.0.0.9", "192.0.2.1", 0..100),
                // Another scanner, other ports: its own episode.
                scan("10.0.0.3", "192.0.2.1", 500..540),
                // Same ports on another target: not this one's.
                scan("10.0.0.4", "192.0.2.2", 0..100),
            ],
        );
        assert_eq!(out.len(), 3, "{out:#?}");
        let d = out.iter().find(|f| f.rule == Rule::DecoyScan).unwrap();
        assert_eq!(d.scope, Scope::Destination);
        assert_eq!(d.destination, Some("192.0.2.1".parse().unwrap()));
        let s = d.details.sources.as_ref().unwrap();
        assert_eq!(s.count, 3);
        assert_eq!(s.sample[0], "10.0.0.9".parse::<IpAddr>().unwrap());
        assert_eq!(s.follow_up, vec!["10.0.0.9".parse::<IpAddr>().unwrap()]);
        assert_eq!(d.details.folded, 3);
        assert_eq!(folded.get(&Rule::PortScan), Some(&3));
        assert!(
            out.iter()
                .any(|f| f.source == Some("10.0.0.3".parse().unwrap()))
        );
    }

    #[test]
    fn two_sources_with_the_same_ports_are_not_decoys() {
        let mut f = Folder::default();
        let (out, _) = f.fold(
            &snap(SEC, &[]),
            vec![
                scan("10.0.0.1", "192.0.2.1", 0..100),
                scan("10.0.0.2", "192.0.2.1", 0..100),
                // Overlap 30/110 with the largest set: under the Jaccard bar.
                scan("10.0.0.3", "192.0.2.1", 70..110),
            ],
        );
        assert!(out.iter().all(|f| f.rule == Rule::PortScan), "{out:#?}");
        assert_eq!(out.len(), 3);
    }

    #[test]
    fn a_storm_of_sources_on_one_target_is_one_finding_from_the_eighth() {
        let mut f = Folder::default();
        let src = |i: u32| format!("10.1.{}.{}", i / 250, i % 250 + 1);
        // Seven sources over two readings: each its own.
        let (out, _) = f.fold(
            &snap(SEC, &[]),
            (0..4)
                .map(|i| flood(Rule::SynFlood, &src(i), "192.0.2.1"))
                .collect(),
        );
        assert_eq!(out.len(), 4);
        let (out, _) = f.fold(
            &snap(2 * SEC, &[]),
            (4..7)
                .map(|i| flood(Rule::SynFlood, &src(i), "192.0.2.1"))
                .collect(),
        );
        assert_eq!(out.len(), 3);
        // From the eighth within 10 s, one destination finding for all of them.
        let (out, folded) = f.fold(
            &snap(3 * SEC, &[]),
            (0..500)
                .map(|i| flood(Rule::SynFlood, &src(i), "192.0.2.1"))
                .collect(),
        );
        assert_eq!(out.len(), 1, "{out:#?}");
        let s = out[0].details.sources.as_ref().unwrap();
        assert_eq!(
            (out[0].scope, s.count, s.sample.len()),
            (Scope::Destination, 500, 16)
        );
        assert_eq!(out[0].details.folded, 500);
        assert_eq!(folded.get(&Rule::SynFlood), Some(&500));
        // 11 s later the memory is gone: sources are their own again.
        let (out, _) = f.fold(
            &snap(14 * SEC, &[]),
            vec![flood(Rule::SynFlood, &src(1), "192.0.2.1")],
        );
        assert_eq!(out[0].scope, Scope::Source);
    }

    #[test]
    fn storms_on_neighbouring_targets_fold_by_their_slash_24_and_slash_64() {
        let mut f = Folder::default();
        let mut found: Vec<Finding> = (0..10)
            .map(|i| {
                flood(
                    Rule::UdpFlood,
                    &format!("10.2.0.{i}"),
                    &format!("192.0.2.{i}"),
                )
            })
            .collect();
        found.extend((0..10).map(|i| {
            flood(
                Rule::UdpFlood,
                &format!("2001:db8:1::{i}"),
                &format!("2001:db8:ff::{i}"),
            )
        }));
        // Different rules never fold together.
        found.push(flood(Rule::SynFlood, "10.2.1.1", "192.0.2.77"));
        let (out, _) = f.fold(&snap(SEC, &[]), found);
        assert_eq!(out.len(), 3, "{out:#?}");
        let prefixes: Vec<String> = out
            .iter()
            .filter_map(|f| f.details.destination_prefix.map(|n| n.to_string()))
            .collect();
        assert_eq!(prefixes, ["192.0.2.0/24", "2001:db8:ff::/64"]);
        assert_eq!(out[0].destination, Some("192.0.2.0".parse().unwrap()));
    }

    #[test]
    fn destination_findings_and_findings_without_a_target_pass_through() {
        let mut f = Folder::default();
        let mut sweeps: Vec<Finding> = (0..20)
            .map(|i| {
                let mut s = finding(&format!("10.3.0.{i}"), 70.0);
                s.rule = Rule::HostSweep;
                s.destination = None;
                s
            })
            .collect();
        let mut dst = flood(Rule::SynFlood, "10.3.1.1", "192.0.2.1");
        dst.scope = Scope::Destination;
        dst.source = None;
        sweeps.push(dst);
        let (out, folded) = f.fold(&snap(SEC, &[]), sweeps);
        assert_eq!(out.len(), 21);
        assert!(folded.is_empty());
    }
}
