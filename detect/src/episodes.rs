//! Alert episodes: one event when a detection starts, rate-limited updates while it lasts,
//! one event when it ends — never a line per reading.
//!
//! New episodes are rate-capped per rule (a token bucket of [`EPISODE_BURST`], refilled at
//! [`EPISODES_PER_MIN`] a minute): beyond it, the offenders of that rule fold into one
//! storm episode (scope `storm`) that counts them, so no storm of findings (forged sources,
//! a botnet) becomes a storm of alerts. The folds are counted per rule
//! (`picket_episodes_folded_total`).

use std::{collections::BTreeMap, net::IpAddr, time::Duration};

use serde::Serialize;

use crate::{
    HashMap, HashSet,
    detector::{Details, Finding, Rule, Scope, Sources, Unit},
};

/// New episodes per rule and minute, once the burst is spent.
pub const EPISODES_PER_MIN: f64 = 20.0;
/// New episodes per rule that may start at once.
pub const EPISODE_BURST: f64 = 20.0;
/// Addresses a storm episode lists in `details.sources.sample`.
pub const SAMPLE: usize = 16;
/// Offenders a storm episode remembers as folded (further ones are counted, not kept).
const STORM_MEMBERS_MAX: usize = 65_536;

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

/// Token bucket of new episodes of one rule.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at_ns: u64,
}

impl Bucket {
    fn take(&mut self, now_ns: u64) -> bool {
        let dt = now_ns.saturating_sub(self.at_ns) as f64 / 1e9;
        self.tokens = (self.tokens + dt * EPISODES_PER_MIN / 60.0).min(EPISODE_BURST);
        self.at_ns = now_ns;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// The offenders folded into a rule's open storm episode.
#[derive(Debug, Default)]
struct Storm {
    members: HashSet<EpisodeKey>,
    /// Folded offenders beyond `members`' cap.
    uncounted: u64,
    sample: Vec<IpAddr>,
}

/// Open episodes, keyed by rule, scope and offender.
#[derive(Debug, Default)]
pub struct Episodes {
    timing: EpisodeTiming,
    active: HashMap<EpisodeKey, Active>,
    next_id: u64,
    buckets: HashMap<Rule, Bucket>,
    storms: HashMap<Rule, Storm>,
    folded: BTreeMap<Rule, u64>,
}

impl Episodes {
    /// No open episodes.
    pub fn new(timing: EpisodeTiming) -> Self {
        Episodes {
            timing,
            next_id: 1,
            ..Episodes::default()
        }
    }

    /// Counts `n` findings of `rule` folded into another episode (by the folding of
    /// findings upstream, or by the rate cap here).
    pub fn note_folded(&mut self, rule: Rule, n: u64) {
        if n > 0 {
            *self.folded.entry(rule).or_default() += n;
        }
    }

    /// Findings folded so far, per rule (`picket_episodes_folded_total`).
    pub fn folded_by_rule(&self) -> &BTreeMap<Rule, u64> {
        &self.folded
    }

    /// Whether a finding for a new episode key may start an episode; if not, it is folded
    /// into the rule's storm, and the storm's finding returned in its place.
    fn admit(&mut self, key: EpisodeKey, f: Finding, now_ns: u64) -> Finding {
        let rule = f.rule;
        let folded_already = self
            .storms
            .get(&rule)
            .is_some_and(|s| s.members.contains(&key));
        if !folded_already {
            let bucket = self.buckets.entry(rule).or_insert(Bucket {
                tokens: EPISODE_BURST,
                at_ns: now_ns,
            });
            if bucket.take(now_ns) {
                return f;
            }
        }
        let storm = self.storms.entry(rule).or_default();
        if !folded_already {
            if storm.members.len() < STORM_MEMBERS_MAX {
                storm.members.insert(key);
            } else {
                storm.uncounted += 1;
            }
            if let Some(ip) = f.offender()
                && storm.sample.len() < SAMPLE
            {
                storm.sample.push(ip);
            }
            *self.folded.entry(rule).or_default() += 1;
        }
        let count = storm.members.len() as u64 + storm.uncounted;
        Finding {
            rule,
            scope: Scope::Storm,
            source: None,
            destination: None,
            value: count as f64,
            threshold: EPISODE_BURST,
            unit: Unit::Offenders,
            window_s: f.window_s,
            estimated: storm.uncounted > 0,
            details: Details {
                folded: u32::try_from(count).unwrap_or(u32::MAX),
                sources: Some(Sources {
                    count: u32::try_from(count).unwrap_or(u32::MAX),
                    sample: storm.sample.clone(),
                    estimated: storm.uncounted > 0,
                    follow_up: Vec::new(),
                }),
                ..Details::default()
            },
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
        // Storm episodes started in this reading, whose start event must show every
        // offender folded in this reading, not only the first.
        let mut storms_started = Vec::new();
        for f in findings {
            let mut key = (f.rule, f.scope, f.offender());
            let f = if self.active.contains_key(&key) {
                f
            } else {
                let f = self.admit(key, f, mono_ns);
                key = (f.rule, f.scope, f.offender());
                f
            };
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
                    if key.1 == Scope::Storm {
                        storms_started.push((events.len(), key));
                    }
                    events.push(event(Phase::Start, &a, wall_ns));
                    self.active.insert(key, a);
                }
            }
        }
        for (i, key) in storms_started {
            if let Some(a) = self.active.get(&key) {
                events[i] = event(Phase::Start, a, wall_ns);
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
            if k.1 == Scope::Storm {
                self.storms.remove(&k.0);
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
        self.storms.clear();
        events.sort_by_key(|e| e.episode);
        events
    }

    /// The latest finding of every open episode.
    pub fn active(&self) -> impl Iterator<Item = &Finding> {
        self.active.values().map(|a| &a.finding)
    }

    /// Number of open episodes per rule.
    pub fn active_by_rule(&self) -> HashMap<Rule, usize> {
        let mut m = HashMap::default();
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
    fn new_episodes_beyond_the_rate_cap_fold_into_one_storm_episode() {
        let mut e = Episodes::new(EpisodeTiming::default());
        let offenders = |r: std::ops::Range<u32>| -> Vec<Finding> {
            r.map(|i| finding(&format!("10.9.{}.{}", i / 200, i % 200 + 1), 40.0))
                .collect()
        };
        // 100 offenders at once: the burst of 20 episodes, then one storm for the other 80.
        let ev = e.step(0, 0, offenders(0..100));
        let starts: Vec<&AlertEvent> = ev.iter().filter(|e| e.phase == Phase::Start).collect();
        assert_eq!(starts.len(), 21);
        let storm = starts
            .iter()
            .find(|e| e.finding.scope == Scope::Storm)
            .expect("a storm episode");
        assert_eq!(storm.finding.value, 80.0);
        assert_eq!(storm.finding.details.folded, 80);
        let sources = storm.finding.details.sources.as_ref().unwrap();
        assert_eq!((sources.count, sources.sample.len()), (80, SAMPLE));
        assert_eq!(e.folded_by_rule().get(&Rule::PortScan), Some(&80));
        // The same offenders again: no new episode, nothing folded twice.
        let ev = e.step(SEC, SEC, offenders(0..100));
        assert!(ev.iter().all(|e| e.phase != Phase::Start), "{ev:?}");
        assert_eq!(e.folded_by_rule().get(&Rule::PortScan), Some(&80));
        // Three seconds later one token is back: one new offender gets its own episode,
        // the next folds.
        let ev = e.step(4 * SEC, 4 * SEC, offenders(0..102));
        let starts: Vec<_> = ev.iter().filter(|e| e.phase == Phase::Start).collect();
        assert_eq!(starts.len(), 1);
        assert_eq!(starts[0].finding.scope, Scope::Source);
        assert_eq!(e.folded_by_rule().get(&Rule::PortScan), Some(&81));
        // Other rules have buckets of their own.
        let mut flood = finding("10.9.9.9", 5000.0);
        flood.rule = Rule::SynFlood;
        let ev = e.step(5 * SEC, 5 * SEC, vec![flood]);
        assert_eq!(ev[0].phase, Phase::Start);
        // When the storm ends its members are forgotten.
        let end = e.step(20 * SEC, 20 * SEC, vec![]);
        assert!(
            end.iter()
                .any(|e| e.finding.scope == Scope::Storm && e.phase == Phase::End)
        );
        assert!(e.storms.is_empty());
    }
}
