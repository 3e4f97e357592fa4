//! One event, one episode: source-scoped findings that are really one attack on one target
//! fold into one destination-scoped finding, so that a scan hidden among decoys or a storm of
//! forged sources is one episode about the target instead of one per (innocent) address.
//!
//! * **Decoys** (`decoy_scan`): [`DECOY_MIN_SOURCES`] or more sources crossing `port_scan` on
//!   the same destination within [`FOLD_WINDOW_NS`], whose port sets overlap (Jaccard ≥
//!   [`DECOY_MIN_JACCARD`]) with the largest one. `nmap -D` sends every probe from every
//!   decoy, so their sets are the same. The candidates are ranked by follow-ups: the real
//!   scanner's TCP stack answers the target's SYN-ACKs with RSTs, a spoofed decoy sends
//!   nothing else.
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
    detector::{Details, Finding, Rule, Scope, Sources},
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
/// Sources remembered per target; more are counted as a lower bound.
const SOURCES_PER_TARGET: usize = 1024;
/// Targets remembered; beyond it the least recently seen are forgotten.
const TARGETS_MAX: usize = 8192;

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
}

/// Findings folded in one reading, per rule of the folded findings.
pub type Folded = BTreeMap<Rule, u64>;

impl Folder {
    /// Folds one reading's findings. `snap` provides the follow-ups (RSTs and ACK-class
    /// segments each address sent in the tick).
    pub fn fold(&mut self, snap: &Snapshot, findings: Vec<Finding>) -> (Vec<Finding>, Folded) {
        let now = snap.mono_ns;
        self.expire(now);
        let mut folded = Folded::new();
        let answered: HashSet<IpAddr> = snap
            .tick
            .src
            .iter()
            .filter(|s| s.rst > 0 || s.tcp_other > 0)
            .map(|s| agent_common::state::AddrKey {
                addr: s.head.addr_bytes(),
            })
            .map(|k| k.ip())
            .collect();
        let (mut out, mut candidates): (Vec<Finding>, Vec<Finding>) =
            findings.into_iter().partition(|f| {
                f.scope != Scope::Source || f.source.is_none() || f.destination.is_none()
            });
        candidates = self.fold_decoys(now, candidates, &answered, &mut out, &mut folded);
        for level in [false, true] {
            candidates = self.fold_storms(now, level, candidates, &mut out, &mut folded);
        }
        out.extend(candidates);
        (out, folded)
    }

    fn expire(&mut self, now: u64) {
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
        answered: &HashSet<IpAddr>,
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
                s.follow_up |= answered.contains(&src);
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
