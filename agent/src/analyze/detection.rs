//! The live agent's detectors driven by capture time: packets go into [`HostMaps`] exactly as
//! the BPF programs account them, a snapshot is evaluated every poll interval of packet time,
//! and a new window starts every window of packet time.
//!
//! Direction: offline there is no ingress/egress; every packet is accounted once as ingress
//! (so `globals[0]` counts every classified packet, and every sender gets a per-source
//! entry). SYN-ACK and RST packets are *also* accounted as egress replies of their sender, which
//! only updates the per-destination state (the `synack_ratio` of destination-scoped
//! `syn_flood` alerts) and `globals[1]`, which therefore counts those replies and nothing else.

use std::time::Duration;

use agent_common::{
    ParseError, Summary,
    state::{DIR_EGRESS, DIR_INGRESS},
};

use crate::{
    alerts::{AlertEvent, Allowlist, EpisodeTiming, Episodes},
    detect::{Detector, Thresholds},
    model::HostMaps,
};

#[derive(Clone, Copy, Debug)]
struct Clock {
    /// Latest packet time (the detector clock never goes backwards).
    now: u64,
    next_poll: u64,
    next_window: u64,
}

/// Detection over a capture.
#[derive(Debug)]
pub struct Detection {
    maps: HostMaps,
    detector: Detector,
    episodes: Episodes,
    allow: Allowlist,
    poll_ns: u64,
    window_ns: u64,
    clock: Option<Clock>,
    /// Packets accounted since the last reading.
    fresh: u64,
    /// The last reading found something.
    findings: bool,
    events: Vec<AlertEvent>,
    readings: u64,
    out_of_order: u64,
}

impl Detection {
    /// Detectors with `thresholds`, reading every `poll` and starting a window every `window`
    /// of capture time; offenders in `allow` never alert.
    pub fn new(thresholds: Thresholds, poll: Duration, window: Duration, allow: Allowlist) -> Self {
        Detection {
            maps: HostMaps::new(),
            detector: Detector::new(thresholds, window.as_secs_f64()),
            episodes: Episodes::new(EpisodeTiming::default()),
            allow,
            poll_ns: (poll.as_nanos() as u64).max(1),
            window_ns: (window.as_nanos() as u64).max(1),
            clock: None,
            fresh: 0,
            findings: false,
            events: Vec::new(),
            readings: 0,
            out_of_order: 0,
        }
    }

    /// Accounts one packet (classified or not) seen at `ts_ns`.
    pub fn feed(&mut self, parsed: &Result<Summary, ParseError>, wire_len: u64, ts_ns: u64) {
        let now = match self.clock {
            None => {
                // Baseline reading of the empty state, as the live agent does at start.
                self.detector.evaluate(&self.maps.snapshot(ts_ns, ts_ns));
                self.clock = Some(Clock {
                    now: ts_ns,
                    next_poll: ts_ns + self.poll_ns,
                    next_window: ts_ns + self.window_ns,
                });
                ts_ns
            }
            Some(c) if ts_ns < c.now => {
                self.out_of_order += 1;
                c.now
            }
            Some(_) => ts_ns,
        };
        self.advance(now);
        self.maps.account(parsed, wire_len, DIR_INGRESS, now);
        if let Ok(s) = parsed {
            if s.is_syn_ack() || s.is_rst() {
                self.maps.account(parsed, wire_len, DIR_EGRESS, now);
            }
        }
        self.fresh += 1;
    }

    /// Takes every reading due before `now`.
    fn advance(&mut self, now: u64) {
        while let Some(c) = self.clock {
            if now < c.next_poll {
                self.clock = Some(Clock { now, ..c });
                return;
            }
            // Idle stretch: with no packets since a reading that found nothing and no open
            // episode, every reading until `now` would find nothing either. Skip to the last
            // one (starting a window if at least one would have started).
            let due = (now - c.next_poll) / self.poll_ns;
            let mut c = c;
            if due > 1
                && self.fresh == 0
                && !self.findings
                && self.episodes.active_by_rule().is_empty()
            {
                c.next_poll += due * self.poll_ns;
                if c.next_window <= c.next_poll {
                    self.maps.next_epoch();
                    c.next_window = c.next_poll + self.window_ns;
                }
            }
            self.clock = Some(c);
            self.reading(c.next_poll);
            if let Some(c) = &mut self.clock {
                c.next_poll += self.poll_ns;
            }
        }
    }

    /// One reading at `t`: evaluate, step the episodes, maybe start a window.
    fn reading(&mut self, t: u64) {
        let snap = self.maps.snapshot(t, t);
        let findings = self.allow.filter(self.detector.evaluate(&snap));
        self.findings = !findings.is_empty();
        self.events.extend(self.episodes.step(t, t, findings));
        self.readings += 1;
        self.fresh = 0;
        let window_ns = self.window_ns;
        let poll_ns = self.poll_ns;
        if let Some(c) = &mut self.clock {
            if t >= c.next_window {
                c.next_window = t + window_ns;
                self.maps.next_epoch();
                // Forget entries idle for longer than a window: they can no longer match any
                // rule (their sets are stale, their rates zero), and the live maps would have
                // evicted them under pressure anyway.
                let horizon = t.saturating_sub(window_ns + 2 * poll_ns);
                self.maps.sources.retain(|_, s| s.last_seen_ns >= horizon);
                self.maps.dests.retain(|_, d| d.last_seen_ns >= horizon);
            }
        }
    }

    /// Takes the reading after the last packet, ends every open episode and returns all alert
    /// events in order, with the global counters.
    pub fn finish(mut self) -> DetectionResult {
        if let Some(c) = self.clock {
            self.reading(c.next_poll);
            self.events.extend(self.episodes.finish(c.next_poll));
        }
        DetectionResult {
            events: self.events,
            readings: self.readings,
            out_of_order: self.out_of_order,
            globals: self.maps.globals,
        }
    }
}

/// What detection produced.
#[derive(Debug)]
pub struct DetectionResult {
    /// Alert events (start, update, end) in order.
    pub events: Vec<AlertEvent>,
    /// Readings taken.
    pub readings: u64,
    /// Packets whose timestamp went back in time (accounted at the latest time seen).
    pub out_of_order: u64,
    /// The state model's global counters: `[every packet, SYN-ACK/RST replies]`.
    pub globals: [agent_common::state::Globals; 2],
}
