//! The per-poll detection step, one code path for the live agent and for `picket analyze`:
//! decide admission control from the rate of unknown sources, drop the probes the allowlists
//! cover, evaluate the rules (per source, then many-to-one) on the reading, drop allowlisted
//! findings, fold the findings of one event into one, and turn findings into episode events.
//!
//! The caller owns the state and the clock: it reads a [`Snapshot`] (the global counters
//! only, or the maps too when [`Pipeline::needs_maps`] says so), hands it to
//! [`Pipeline::step`], applies the admission change to its maps, and starts a new window when
//! its window is over.

use std::time::Duration;

use agent_common::state::Globals;

use crate::{
    admission::Admission,
    allowlist::{Allowlists, Suppressed},
    detector::{Detector, Thresholds},
    episodes::{AlertEvent, EpisodeTiming, Episodes},
    folding::Folder,
    many_to_one::{self, ManyToOne},
    snapshot::Snapshot,
};

/// Default of the `poll_interval` setting, live and offline: how often the state is read.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(1);
/// Default of the `window` setting, live and offline: the window of the distinct counts.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(10);

/// Admission control was turned on or off by a reading.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdmissionChange {
    /// Whether new sources are now admitted only at their second packet.
    pub on: bool,
    /// Packets per second from unknown sources that decided it.
    pub unknown_per_s: f64,
    /// The rate of unknown sources the map can take ([`Admission::budget`]).
    pub budget_per_s: f64,
}

/// What one reading produced.
#[derive(Debug, Default)]
pub struct Step {
    /// Alert events (start, update, end) of this reading.
    pub events: Vec<AlertEvent>,
    /// The reading had findings left after the allowlist.
    pub findings: bool,
    /// Admission control changed.
    pub admission: Option<AdmissionChange>,
}

/// Detectors, episodes, allowlist and admission control, stepped once per reading.
#[derive(Debug)]
pub struct Pipeline {
    /// The rules (thresholds can be replaced, e.g. on SIGHUP).
    pub detector: Detector,
    /// Open episodes.
    pub episodes: Episodes,
    /// Who is never alerted on (may be replaced, e.g. on SIGHUP).
    pub allow: Allowlists,
    many_to_one: ManyToOne,
    folder: Folder,
    suppressed: Suppressed,
    admission: Admission,
    /// Time and ingress counters of the previous reading.
    prev: Option<(u64, Globals)>,
}

impl Pipeline {
    /// A pipeline over a per-source map of `src_capacity` entries with windows of `window`.
    pub fn new(
        thresholds: Thresholds,
        window: Duration,
        timing: EpisodeTiming,
        allow: Allowlists,
        src_capacity: u32,
    ) -> Self {
        Pipeline {
            detector: Detector::new(thresholds, window.as_secs_f64()),
            episodes: Episodes::new(timing),
            allow,
            many_to_one: ManyToOne::default(),
            folder: Folder::default(),
            suppressed: Suppressed::default(),
            admission: Admission::new(src_capacity, window.as_secs_f64()),
            prev: None,
        }
    }

    /// The first reading, of the state as it is at start: the base of every rate.
    pub fn baseline(&mut self, snap: &Snapshot) {
        self.detector.evaluate(snap);
        self.prev = Some((snap.mono_ns, snap.globals[0]));
    }

    /// Whether the next reading must include the per-source and per-destination maps.
    pub fn needs_maps(&self, globals: &[Globals; 2], mono_ns: u64) -> bool {
        self.detector.needs_maps(globals, mono_ns)
    }

    /// Whether new sources are admitted only at their second packet.
    pub fn admission_on(&self) -> bool {
        self.admission.is_on()
    }

    /// Updates admission control from the packets of unknown sources between `since` and
    /// `snap`, and moves `since` to `snap`. Live, a quick watch of the global counters calls
    /// this between readings with a `since` of its own.
    pub fn watch_admission(
        &mut self,
        since: &mut (u64, Globals),
        snap: &Snapshot,
    ) -> Option<AdmissionChange> {
        let (prev_ns, prev) = std::mem::replace(since, (snap.mono_ns, snap.globals[0]));
        let dt = snap.mono_ns.saturating_sub(prev_ns) as f64 / 1e9;
        if dt <= 0.0 {
            return None;
        }
        let unknown = |g: &Globals| g.src_inserts + g.src_deferred;
        let rate = unknown(&snap.globals[0]).saturating_sub(unknown(&prev)) as f64 / dt;
        let was = self.admission.is_on();
        let on = self.admission.update(rate);
        (on != was).then(|| AdmissionChange {
            on,
            unknown_per_s: rate,
            budget_per_s: self.admission.budget(),
        })
    }

    /// Probes and findings the allowlists dropped so far (`picket_suppressed_total`).
    pub fn suppressed(&self) -> Suppressed {
        self.suppressed
    }

    /// One reading: admission control, allowlists (probes), findings, allowlists
    /// (findings), folding, episodes. The allowlisted probes are removed from `snap`.
    pub fn step(&mut self, snap: &mut Snapshot) -> Step {
        let mut since = self.prev.unwrap_or((snap.mono_ns, snap.globals[0]));
        let admission = self.watch_admission(&mut since, snap);
        self.prev = Some(since);
        self.allow
            .filter_probes(&mut snap.probes, &mut self.suppressed);
        let mut findings = self.detector.evaluate(snap);
        findings.extend(self.many_to_one.evaluate(
            &snap.probes,
            snap.mono_ns,
            &self.detector.thresholds,
        ));
        let findings = many_to_one::absorb_prefixes(findings);
        let findings = self.allow.filter_findings(findings, &mut self.suppressed);
        let (findings, folded) = self.folder.fold(snap, findings);
        for (rule, n) in folded {
            self.episodes.note_folded(rule, n);
        }
        let had = !findings.is_empty();
        Step {
            events: self.episodes.step(snap.mono_ns, snap.wall_ns, findings),
            findings: had,
            admission,
        }
    }

    /// Whether a finding is held back for what later readings may bring (see
    /// [`Folder::holding`]).
    pub fn holding(&self) -> bool {
        self.folder.holding()
    }

    /// Ends every open episode at `wall_ns`.
    pub fn finish(&mut self, wall_ns: u64) -> Vec<AlertEvent> {
        self.episodes.finish(wall_ns)
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use super::*;
    use crate::{
        allowlist::Side,
        detector::Rule,
        episodes::Phase,
        probes::{Outcome, ProbeEvent, ProbeGroup},
    };

    /// 50 sources × 20 failed ports of 192.0.2.1: a distributed scan.
    fn snapshot() -> Snapshot {
        let mut probes = Vec::new();
        for s in 0..50u16 {
            for p in 0..20u16 {
                let src = Ipv4Addr::new(10, 7, 0, s as u8).to_ipv6_mapped().octets();
                let dst = Ipv4Addr::new(192, 0, 2, 1).to_ipv6_mapped().octets();
                probes.push(ProbeEvent {
                    src,
                    dst,
                    group: ProbeGroup::Tcp,
                    port: 1000 + s * 20 + p,
                    outcome: Outcome::Rejected,
                    at_ns: 1_000_000_000,
                    ack_class: false,
                });
            }
        }
        Snapshot {
            mono_ns: 1_000_000_000,
            probes,
            ..Snapshot::default()
        }
    }

    fn pipeline(allow: Allowlists) -> Pipeline {
        Pipeline::new(
            Thresholds::default(),
            DEFAULT_WINDOW,
            EpisodeTiming::default(),
            allow,
            1024,
        )
    }

    #[test]
    fn probes_reach_the_many_to_one_rules_unless_an_allowlist_drops_them() {
        let mut p = pipeline(Allowlists::default());
        let step = p.step(&mut snapshot());
        let starts: Vec<_> = step
            .events
            .iter()
            .filter(|e| e.phase == Phase::Start)
            .collect();
        assert_eq!(starts.len(), 1);
        assert_eq!(starts[0].finding.rule, Rule::DistributedScan);

        // 32 sources ignored: 18 × 20 = 360 ports, still a distributed scan; the target
        // ignored: nothing, and nothing stored.
        let mut p = pipeline(Allowlists {
            scanners: vec!["10.7.0.0/27".parse().unwrap()],
            ..Allowlists::default()
        });
        let mut snap = snapshot();
        let step = p.step(&mut snap);
        assert_eq!(step.events.len(), 1);
        assert_eq!(p.suppressed().of(Side::Scanner), 32 * 20);
        assert_eq!(snap.probes.len(), 18 * 20);
        let sources = step.events[0].finding.details.sources.clone().unwrap();
        assert!(
            sources
                .sample
                .iter()
                .all(|ip| *ip >= IpAddr::V4(Ipv4Addr::new(10, 7, 0, 32)))
        );

        let mut p = pipeline(Allowlists {
            scanned: vec!["192.0.2.1".parse().unwrap()],
            ..Allowlists::default()
        });
        let step = p.step(&mut snapshot());
        assert!(step.events.is_empty() && !step.findings);
        assert_eq!(p.suppressed().of(Side::Scanned), 1000);
    }
}
