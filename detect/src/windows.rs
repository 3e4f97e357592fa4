//! Failed-probe sets per prober, kept over several time scales (docs/detection-state-design.md
//! §3), built from settled probe outcomes ([`ProbeEvent`]) and evaluated at every reading.
//!
//! * A **port set** per (prober, target, protocol group) holds the ports whose probes failed
//!   (rejected or unanswered) or whose outcome is unknown; a **host set** per (prober,
//!   group, port) holds the hosts. Each value keeps the time and outcome of its latest probe.
//!   Accepted probes count per key in 10-second buckets, and an accepted probe takes its
//!   value out of the failures (a retry that succeeded is no failure).
//! * Every set is capped ([`PORT_CAP`], [`HOST_CAP`]): when full, the value seen longest ago
//!   is replaced, which keeps sliding counts right; a count at the cap is `saturated`. The
//!   number of keys is capped too ([`MAX_PORT_KEYS`], [`MAX_HOST_KEYS`]): over it, the quarter
//!   of keys seen longest ago goes, those without failures first. Nothing older than the
//!   slow window is kept.
//! * **Memory bound**: a full set is about 128 × 12 B + 61 × 8 B of buckets + the key and
//!   table overhead, ≈ 2.1 KiB. At the key caps, every set full: (6 144 + 3 072) × 2.1 KiB
//!   ≈ 19 MiB; with the join's visibility and tracing maps (≤ 5 MiB) and its pending probes
//!   (at most one bank, 4 MiB), under the design's 30 MiB. Typical keys hold a few values
//!   (≈ 200 B).
//! * **Scales** ([`Scale`]): fast (the `window` setting, 10 s by default), medium (60 s) and
//!   slow (600 s). Medium and slow count only while failures keep coming (one within a tenth
//!   of their window), so a finding ends soon after the probing stops, whatever the scale.
//! * **One-way vantage**: unknown outcomes count at the fast scale only, at doubled bars. A
//!   slow scan seen without its answers is not reported (no failure tells it from a client).

use std::collections::VecDeque;

use crate::HashMap;

use serde::Serialize;

use crate::probes::{Outcome, ProbeEvent, ProbeGroup};

/// Values a port set holds: above twice the 30-port bar (the unknown-outcome variant), and
/// enough to tell a top-100 scan whole.
pub const PORT_CAP: usize = 128;
/// Values a host set holds: twice the 64-host bar.
pub const HOST_CAP: usize = 128;
/// Port-set keys kept.
pub const MAX_PORT_KEYS: usize = 6_144;
/// Host-set keys kept.
pub const MAX_HOST_KEYS: usize = 3_072;
/// Width of an accepted-count bucket, in seconds.
const BUCKET_S: u32 = 10;

/// Time scale of a scan finding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Scale {
    /// The `window` setting (10 s by default).
    Fast,
    /// 60 s.
    Medium,
    /// 600 s.
    Slow,
}

impl Scale {
    /// Every scale, shortest first.
    pub const ALL: [Scale; 3] = [Scale::Fast, Scale::Medium, Scale::Slow];
}

/// Window of the medium scale, seconds.
pub const MEDIUM_S: u32 = 60;
/// Window of the slow scale, seconds.
pub const SLOW_S: u32 = 600;

/// The bars of one rule at one scale.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bar {
    /// Fewest distinct failed values.
    pub distinct: u32,
    /// Smallest share of failed values among failed values and accepted probes.
    pub ratio: f64,
    /// Fewest distinct seconds the failures came in (a slow scan is spread out; a burst of
    /// one application's failures is not).
    pub ticks: u32,
}

/// Outcome counts of a set over a window (distinct values for failures, probes for
/// accepted).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct OutcomeCounts {
    /// Accepted probes.
    pub accepted: u32,
    /// Distinct values whose latest probe was rejected.
    pub rejected: u32,
    /// Distinct values whose latest probe went unanswered.
    pub unanswered: u32,
    /// Distinct values whose latest probe's outcome is unknown (one-way vantage).
    pub unknown: u32,
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    value: u32,
    at_s: u32,
    outcome: Outcome,
}

/// The order in which a full set gives up values of one second (see `ValueSet::observe`).
fn rank(value: u32) -> u32 {
    agent_common::sketch::fmix32(value)
}

/// One key's failed values and accepted counts.
#[derive(Clone, Debug, Default)]
struct ValueSet {
    entries: Vec<Entry>,
    /// (bucket = second / [`BUCKET_S`], accepted probes), oldest first.
    accepted: VecDeque<(u32, u32)>,
    last_s: u32,
    last_failure_s: u32,
}

impl ValueSet {
    fn observe(&mut self, value: u32, at_s: u32, outcome: Outcome, cap: usize) {
        self.last_s = self.last_s.max(at_s);
        let found = self.entries.iter().position(|e| e.value == value);
        if outcome == Outcome::Accepted {
            if let Some(i) = found {
                self.entries.swap_remove(i);
            }
            let bucket = at_s / BUCKET_S;
            match self.accepted.back_mut() {
                Some((b, n)) if *b == bucket => *n += 1,
                _ => self.accepted.push_back((bucket, 1)),
            }
            return;
        }
        self.last_failure_s = self.last_failure_s.max(at_s);
        let e = Entry {
            value,
            at_s,
            outcome,
        };
        match found {
            Some(i) => self.entries[i] = e,
            None if self.entries.len() < cap => self.entries.push(e),
            None => {
                // Full: the newest values stay, and among values of one second those of the
                // smallest rank (a hash of the value alone, the same for every key). So two
                // probers sending the same values in the same seconds keep the same subset,
                // which is what the decoy rule compares; arrival order within a reading does
                // not matter.
                let key = |x: &Entry| (std::cmp::Reverse(x.at_s), rank(x.value));
                if let Some(worst) = self.entries.iter_mut().max_by_key(|x| key(x))
                    && key(&e) < key(worst)
                {
                    *worst = e;
                }
            }
        }
    }

    /// Drops what is older than `from_s`.
    fn expire(&mut self, from_s: u32) {
        self.entries.retain(|e| e.at_s >= from_s);
        while self
            .accepted
            .front()
            .is_some_and(|(b, _)| (b + 1) * BUCKET_S <= from_s)
        {
            self.accepted.pop_front();
        }
    }

    /// Counts and distinct seconds of failures from `from_s` on.
    fn count(&self, from_s: u32) -> (OutcomeCounts, u32) {
        let mut c = OutcomeCounts::default();
        let mut seconds: Vec<u32> = Vec::new();
        for e in self.entries.iter().filter(|e| e.at_s >= from_s) {
            match e.outcome {
                Outcome::Rejected => c.rejected += 1,
                Outcome::Unanswered => c.unanswered += 1,
                Outcome::Unknown => c.unknown += 1,
                Outcome::Accepted => {}
            }
            if e.outcome.failed() && !seconds.contains(&e.at_s) {
                seconds.push(e.at_s);
            }
        }
        c.accepted = self
            .accepted
            .iter()
            .filter(|(b, _)| (b + 1) * BUCKET_S > from_s)
            .map(|(_, n)| n)
            .sum();
        (c, seconds.len() as u32)
    }

    fn values(&self, from_s: u32, failed_only: bool) -> Vec<u32> {
        let mut v: Vec<u32> = self
            .entries
            .iter()
            .filter(|e| e.at_s >= from_s && (!failed_only || e.outcome.failed()))
            .map(|e| e.value)
            .collect();
        v.sort_unstable();
        v
    }
}

/// Which set a hit comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SetKey {
    /// Ports of one target.
    Ports {
        /// The prober.
        src: [u8; 16],
        /// The target.
        dst: [u8; 16],
        /// Protocol group.
        group: ProbeGroup,
    },
    /// Hosts probed on one port.
    Hosts {
        /// The prober.
        src: [u8; 16],
        /// Protocol group.
        group: ProbeGroup,
        /// The port (ICMP type, IP protocol).
        port: u16,
    },
}

impl SetKey {
    /// The prober.
    pub fn src(&self) -> [u8; 16] {
        match self {
            SetKey::Ports { src, .. } | SetKey::Hosts { src, .. } => *src,
        }
    }
}

/// A set over its bar at one scale.
#[derive(Clone, Debug, PartialEq)]
pub struct Hit {
    /// The set.
    pub key: SetKey,
    /// The shortest scale at which it is over its bar.
    pub scale: Scale,
    /// That scale's window, seconds.
    pub window_s: f64,
    /// Distinct values counted (failed, plus unknown when `filtered`).
    pub distinct: u32,
    /// The bar crossed.
    pub bar: u32,
    /// Counted with unknown outcomes, at doubled bars (a one-way vantage).
    pub filtered: bool,
    /// Outcome counts over the window.
    pub outcomes: OutcomeCounts,
    /// Share of counted values among them and the accepted probes.
    pub ratio: f64,
    /// The set is full: `distinct` is a lower bound.
    pub saturated: bool,
    /// The values counted (ports, or address hashes for host sets), sorted.
    pub values: Vec<u32>,
}

/// The bars of both rules at every scale.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bars {
    /// `port_scan` at fast, medium, slow.
    pub ports: [Bar; 3],
    /// `host_sweep` at fast, medium, slow.
    pub hosts: [Bar; 3],
}

impl Bars {
    /// The design's bars (§3) around the fast-scale thresholds: fast and medium at the
    /// thresholds with `ratio`; slow at Zeek's 15 failed ports per target and 25 failed
    /// hosts per port with a failure ratio of 0.9 over at least 5 distinct seconds.
    pub fn new(ports: u32, hosts: u32, ratio: f64) -> Self {
        let at = |distinct| Bar {
            distinct,
            ratio,
            ticks: 1,
        };
        let slow = |distinct: u32, fast: u32| Bar {
            distinct: distinct.min(fast),
            ratio: ratio.max(0.9),
            ticks: 5,
        };
        Bars {
            ports: [at(ports), at(ports), slow(15, ports)],
            hosts: [at(hosts), at(hosts), slow(25, hosts)],
        }
    }
}

/// All port and host sets.
#[derive(Clone, Debug, Default)]
pub struct WindowSets {
    ports: HashMap<([u8; 16], [u8; 16], ProbeGroup), ValueSet>,
    hosts: HashMap<([u8; 16], ProbeGroup, u16), ValueSet>,
}

fn secs(ns: u64) -> u32 {
    u32::try_from(ns / 1_000_000_000).unwrap_or(u32::MAX)
}

/// A 32-bit hash of an address for the host sets (distinctness only).
fn host_value(a: &[u8; 16]) -> u32 {
    agent_common::sketch::addr_hash(a)
}

impl WindowSets {
    /// Empty sets.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds settled probes.
    pub fn observe(&mut self, events: &[ProbeEvent]) {
        for e in events {
            let at = secs(e.at_ns);
            let creates = e.outcome != Outcome::Accepted;
            let pk = (e.src, e.dst, e.group);
            if creates || self.ports.contains_key(&pk) {
                self.ports.entry(pk).or_default().observe(
                    u32::from(e.port),
                    at,
                    e.outcome,
                    PORT_CAP,
                );
            }
            let hk = (e.src, e.group, e.port);
            if creates || self.hosts.contains_key(&hk) {
                self.hosts.entry(hk).or_default().observe(
                    host_value(&e.dst),
                    at,
                    e.outcome,
                    HOST_CAP,
                );
            }
        }
        trim(&mut self.ports, MAX_PORT_KEYS);
        trim(&mut self.hosts, MAX_HOST_KEYS);
    }

    /// Keys held (ports, hosts).
    pub fn len(&self) -> (usize, usize) {
        (self.ports.len(), self.hosts.len())
    }

    /// True when no set is held.
    pub fn is_empty(&self) -> bool {
        self.ports.is_empty() && self.hosts.is_empty()
    }

    /// Expires what is older than the slow window at `now_ns` and returns every set over a
    /// bar, at its shortest scale; `fast_s` is the fast window.
    pub fn evaluate(&mut self, now_ns: u64, fast_s: f64, bars: &Bars) -> Vec<Hit> {
        let now = secs(now_ns);
        let oldest = now.saturating_sub(SLOW_S);
        let fast = (fast_s.round() as u32).clamp(1, SLOW_S);
        expire(&mut self.ports, oldest);
        expire(&mut self.hosts, oldest);
        let ports = self.ports.iter().filter_map(|(&(src, dst, group), v)| {
            let key = SetKey::Ports { src, dst, group };
            hit(key, v, now, fast, &bars.ports, PORT_CAP)
        });
        let hosts = self.hosts.iter().filter_map(|(&(src, group, port), v)| {
            let key = SetKey::Hosts { src, group, port };
            hit(key, v, now, fast, &bars.hosts, HOST_CAP)
        });
        ports.chain(hosts).collect()
    }
}

/// The shortest scale at which `v` is over its bar, if any.
fn hit(key: SetKey, v: &ValueSet, now: u32, fast: u32, bars: &[Bar; 3], cap: usize) -> Option<Hit> {
    let least = bars.iter().map(|b| b.distinct).min().unwrap_or(1);
    if (v.entries.len() as u32) < least {
        return None;
    }
    for (scale, bar) in Scale::ALL.iter().zip(bars) {
        let window = match scale {
            Scale::Fast => fast,
            Scale::Medium => MEDIUM_S.max(fast),
            Scale::Slow => SLOW_S.max(fast),
        };
        // Medium and slow count while failures keep coming.
        if *scale != Scale::Fast && now.saturating_sub(v.last_failure_s) > window / 10 {
            continue;
        }
        let from = now.saturating_sub(window.saturating_sub(1));
        let (c, ticks) = v.count(from);
        let failed = c.rejected + c.unanswered;
        let ratio = |n: u32| f64::from(n) / f64::from(n + c.accepted).max(1.0);
        let confirmed = failed >= bar.distinct && ratio(failed) >= bar.ratio && ticks >= bar.ticks;
        let with_unknown = failed + c.unknown;
        // Unknown outcomes (no answer ever visible) count at the fast scale only: the longer
        // scales' low bars rest on failures being rare for ordinary clients, and without
        // answers there is no failure to tell a slow scan from a busy client (a NAT gateway
        // reaches 50 hosts in seconds).
        let filtered = !confirmed
            && *scale == Scale::Fast
            && c.unknown > 0
            && with_unknown >= 2 * bar.distinct
            && ratio(with_unknown) >= bar.ratio
            && ticks_any(v, from) >= bar.ticks;
        if confirmed || filtered {
            let distinct = if confirmed { failed } else { with_unknown };
            return Some(Hit {
                key,
                scale: *scale,
                window_s: f64::from(window),
                distinct,
                bar: if confirmed {
                    bar.distinct
                } else {
                    2 * bar.distinct
                },
                filtered,
                outcomes: c,
                ratio: ratio(distinct),
                saturated: v.entries.len() >= cap,
                values: v.values(from, confirmed),
            });
        }
    }
    None
}

/// Distinct seconds of failed or unknown outcomes from `from` on.
fn ticks_any(v: &ValueSet, from: u32) -> u32 {
    let mut seconds: Vec<u32> = v
        .entries
        .iter()
        .filter(|e| e.at_s >= from)
        .map(|e| e.at_s)
        .collect();
    seconds.sort_unstable();
    seconds.dedup();
    seconds.len() as u32
}

/// Expires every set's values older than `from_s`, and the sets left empty.
fn expire<K>(m: &mut HashMap<K, ValueSet>, from_s: u32) {
    m.retain(|_, v| {
        v.expire(from_s);
        !v.entries.is_empty() || !v.accepted.is_empty()
    });
}

/// Drops the quarter of keys seen longest ago when over `max`, keys without failures first.
fn trim<K: Clone + Eq + std::hash::Hash>(m: &mut HashMap<K, ValueSet>, max: usize) {
    if m.len() <= max {
        return;
    }
    let mut order: Vec<(bool, u32, K)> = m
        .iter()
        .map(|(k, v)| (!v.entries.is_empty(), v.last_s, k.clone()))
        .collect();
    order.sort_unstable_by_key(|(f, at, _)| (*f, *at));
    for (_, _, k) in order.into_iter().take(m.len() - max * 3 / 4) {
        m.remove(&k);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_sets_of_the_same_values_keep_the_same_subset_whatever_the_order() {
        // Two probers refused on the same 1000 ports in the same second, in opposite orders:
        // each set holds PORT_CAP of them, and the same ones (what decoy folding compares).
        let fill = |order: &mut dyn Iterator<Item = u32>| {
            let mut s = ValueSet::default();
            for v in order {
                s.observe(v, 7, Outcome::Rejected, PORT_CAP);
            }
            s.values(0, true)
        };
        let a = fill(&mut (0..1000u32));
        let b = fill(&mut (0..1000u32).rev());
        assert_eq!(a.len(), PORT_CAP);
        assert_eq!(a, b);
        // A newer second still displaces the older values.
        let mut s = ValueSet::default();
        for v in 0..PORT_CAP as u32 {
            s.observe(v, 1, Outcome::Rejected, PORT_CAP);
        }
        s.observe(5000, 2, Outcome::Rejected, PORT_CAP);
        assert!(s.values(0, true).contains(&5000));
        assert_eq!(s.values(2, true), vec![5000]);
    }
}
