//! Alert episodes: one event when a detection starts, rate-limited updates while it lasts,
//! one event when it ends — never a line per reading. Also the allowlist.

use std::{collections::HashMap, net::IpAddr, time::Duration};

use ipnet::IpNet;
use serde::Serialize;

use crate::detector::{Finding, Rule, Scope};

/// When updates and ends are emitted.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EpisodeTiming {
    /// At most one update per this many seconds while an episode lasts.
    pub update_every_s: f64,
    /// An episode ends after this many seconds without a matching finding.
    pub end_after_s: f64,
}

/// Default of the live `update_interval` setting: at most one update line per episode per
/// this interval.
pub const DEFAULT_UPDATE_INTERVAL: Duration = Duration::from_secs(10);
/// Default of the live `end_after` setting: an episode ends after this long without a match.
pub const DEFAULT_END_AFTER: Duration = Duration::from_secs(5);

impl Default for EpisodeTiming {
    fn default() -> Self {
        EpisodeTiming {
            update_every_s: DEFAULT_UPDATE_INTERVAL.as_secs_f64(),
            end_after_s: DEFAULT_END_AFTER.as_secs_f64(),
        }
    }
}

/// Phase of an alert event (`event.action`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// The detection started.
    Start,
    /// It is still going on.
    Update,
    /// It stopped.
    End,
}

/// One alert line.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AlertEvent {
    /// Start, update or end.
    pub phase: Phase,
    /// Identifier shared by all events of one episode.
    pub episode: u64,
    /// Latest finding of the episode.
    pub finding: Finding,
    /// Highest value seen during the episode.
    pub peak: f64,
    /// Wall-clock start, ns since the Unix epoch.
    pub started_ns: u64,
    /// Wall-clock time of this event, ns since the Unix epoch.
    pub at_ns: u64,
}

impl AlertEvent {
    /// Seconds from the start of the episode to this event.
    pub fn duration_s(&self) -> f64 {
        self.at_ns.saturating_sub(self.started_ns) as f64 / 1e9
    }
}

type EpisodeKey = (Rule, Scope, Option<IpAddr>);

#[derive(Debug)]
struct Active {
    id: u64,
    finding: Finding,
    peak: f64,
    started_wall: u64,
    last_match_mono: u64,
    last_emit_mono: u64,
}

/// Open episodes, keyed by rule, scope and offender.
#[derive(Debug, Default)]
pub struct Episodes {
    timing: EpisodeTiming,
    active: HashMap<EpisodeKey, Active>,
    next_id: u64,
}

impl Episodes {
    /// No open episodes.
    pub fn new(timing: EpisodeTiming) -> Self {
        Episodes {
            timing,
            active: HashMap::new(),
            next_id: 1,
        }
    }

    /// Feeds one reading's findings (at monotonic `mono_ns`, wall `wall_ns`); returns the
    /// events to print, in a stable order.
    pub fn step(
        &mut self,
        mono_ns: u64,
        wall_ns: u64,
        mut findings: Vec<Finding>,
    ) -> Vec<AlertEvent> {
        // Episode ids follow the findings' order: make it independent of hash-map order, so
        // that the same capture gives the same ids in every run.
        findings.sort_by_key(|f| (f.rule, f.scope, f.offender()));
        let mut events = Vec::new();
        let update_ns = (self.timing.update_every_s * 1e9) as u64;
        let end_ns = (self.timing.end_after_s * 1e9) as u64;
        for f in findings {
            let key = (f.rule, f.scope, f.offender());
            match self.active.get_mut(&key) {
                Some(a) => {
                    a.last_match_mono = mono_ns;
                    a.peak = a.peak.max(f.value);
                    a.finding = f;
                    if mono_ns.saturating_sub(a.last_emit_mono) >= update_ns {
                        a.last_emit_mono = mono_ns;
                        events.push(event(Phase::Update, a, wall_ns));
                    }
                }
                None => {
                    let a = Active {
                        id: self.next_id,
                        peak: f.value,
                        finding: f,
                        started_wall: wall_ns,
                        last_match_mono: mono_ns,
                        last_emit_mono: mono_ns,
                    };
                    self.next_id += 1;
                    events.push(event(Phase::Start, &a, wall_ns));
                    self.active.insert(key, a);
                }
            }
        }
        let ended: Vec<EpisodeKey> = self
            .active
            .iter()
            .filter(|(_, a)| mono_ns.saturating_sub(a.last_match_mono) >= end_ns)
            .map(|(k, _)| *k)
            .collect();
        for k in ended {
            if let Some(a) = self.active.remove(&k) {
                events.push(event(Phase::End, &a, wall_ns));
            }
        }
        events.sort_by_key(|e| (e.phase != Phase::Start, e.episode));
        events
    }

    /// Ends every open episode (on exit or at the end of a capture).
    pub fn finish(&mut self, wall_ns: u64) -> Vec<AlertEvent> {
        let mut events: Vec<AlertEvent> = self
            .active
            .drain()
            .map(|(_, a)| event(Phase::End, &a, wall_ns))
            .collect();
        events.sort_by_key(|e| e.episode);
        events
    }

    /// The latest finding of every open episode.
    pub fn active(&self) -> impl Iterator<Item = &Finding> {
        self.active.values().map(|a| &a.finding)
    }

    /// Number of open episodes per rule.
    pub fn active_by_rule(&self) -> HashMap<Rule, usize> {
        let mut m = HashMap::new();
        for (rule, _, _) in self.active.keys() {
            *m.entry(*rule).or_default() += 1;
        }
        m
    }
}

fn event(phase: Phase, a: &Active, wall_ns: u64) -> AlertEvent {
    AlertEvent {
        phase,
        episode: a.id,
        finding: a.finding.clone(),
        peak: a.peak,
        started_ns: a.started_wall,
        at_ns: wall_ns,
    }
}

/// Networks whose offenders never raise alerts.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Allowlist {
    nets: Vec<IpNet>,
}

impl Allowlist {
    /// An allowlist of these networks.
    pub fn new(nets: Vec<IpNet>) -> Self {
        Allowlist { nets }
    }

    /// True when the finding's offender (source, or destination for destination-scoped
    /// findings) is in an allowed network.
    pub fn suppresses(&self, f: &Finding) -> bool {
        f.offender()
            .is_some_and(|ip| self.nets.iter().any(|n| n.contains(&ip)))
    }

    /// Drops the findings the allowlist suppresses.
    pub fn filter(&self, findings: Vec<Finding>) -> Vec<Finding> {
        if self.nets.is_empty() {
            return findings;
        }
        findings
            .into_iter()
            .filter(|f| !self.suppresses(f))
            .collect()
    }
}

/// Findings for other crates' tests.
#[cfg(any(test, feature = "testing"))]
pub mod testing {
    use super::*;
    use crate::detector::Details;

    /// A port_scan finding from `src` with `value`.
    pub fn finding(src: &str, value: f64) -> Finding {
        Finding {
            rule: Rule::PortScan,
            scope: Scope::Source,
            source: Some(src.parse().unwrap()),
            destination: Some("192.0.2.1".parse().unwrap()),
            value,
            threshold: 30.0,
            unit: crate::detector::Unit::Ports,
            window_s: 10.0,
            estimated: false,
            details: Details::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{testing::finding, *};

    const SEC: u64 = 1_000_000_000;

    #[test]
    fn one_start_rate_limited_updates_one_end() {
        let mut e = Episodes::new(EpisodeTiming {
            update_every_s: 3.0,
            end_after_s: 2.0,
        });
        let mut phases = Vec::new();
        for t in 0..6u64 {
            for ev in e.step(
                t * SEC,
                t * SEC,
                vec![finding("198.51.100.1", 40.0 + t as f64)],
            ) {
                phases.push((t, ev.phase, ev.episode));
            }
        }
        for t in 6..10u64 {
            for ev in e.step(t * SEC, t * SEC, vec![]) {
                phases.push((t, ev.phase, ev.episode));
                assert_eq!(ev.peak, 45.0);
            }
        }
        assert_eq!(
            phases,
            vec![
                (0, Phase::Start, 1),
                (3, Phase::Update, 1),
                (7, Phase::End, 1)
            ],
        );
        // A new detection afterwards is a new episode.
        let ev = e.step(20 * SEC, 20 * SEC, vec![finding("198.51.100.1", 50.0)]);
        assert_eq!((ev[0].phase, ev[0].episode), (Phase::Start, 2));
    }

    #[test]
    fn offenders_have_separate_episodes_and_finish_ends_all() {
        let mut e = Episodes::new(EpisodeTiming::default());
        let ev = e.step(
            0,
            0,
            vec![finding("198.51.100.1", 40.0), finding("198.51.100.2", 40.0)],
        );
        assert_eq!(ev.len(), 2);
        assert_eq!(e.active_by_rule().get(&Rule::PortScan), Some(&2));
        let end = e.finish(5 * SEC);
        assert!(end.iter().all(|ev| ev.phase == Phase::End));
        assert_eq!(end.len(), 2);
        assert_eq!(end[0].duration_s(), 5.0);
        assert!(e.active_by_rule().is_empty());
    }

    #[test]
    fn allowlist_suppresses_offenders_in_its_networks() {
        let allow = Allowlist::new(vec![
            "198.51.100.0/24".parse().unwrap(),
            "2001:db8::/32".parse().unwrap(),
        ]);
        let kept = allow.filter(vec![
            finding("198.51.100.7", 40.0),
            finding("203.0.113.9", 40.0),
            finding("2001:db8::1", 40.0),
        ]);
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].source, Some("203.0.113.9".parse().unwrap()));
    }
}
