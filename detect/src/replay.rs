//! The live agent's detectors driven by capture time: packets go into [`HostMaps`] exactly as
//! the BPF programs account them, the state is read every poll interval of packet time (the
//! per-source and per-destination maps only when [`Detector::needs_maps`] says a finding may
//! have changed, as live), and a new window starts every window of packet time.
//!
//! Like the live maps, the per-source scan state holds at most [`DEFAULT_SOURCES`] entries
//! (least recently seen evicted, trimmed at each reading), the slot tables end a tick at
//! every reading, and admission at the second sighting turns on and off with the live
//! agent's [`Admission`] rule, so a spoofed flood neither exhausts memory nor hides a scanner.
//!
//! Direction: offline there is no ingress/egress; every packet is accounted once as ingress
//! (so `globals[0]` counts every classified packet, and every prober gets a per-source
//! entry). The slot tables do not depend on direction: a SYN-ACK updates its sender's slot
//! either way, which is what the `synack_ratio` of destination-scoped `syn_flood` alerts uses.

use std::{collections::HashMap, hash::Hash, time::Duration};

use agent_common::{
    ParseError, Summary,
    state::{DEFAULT_SOURCES, DIR_INGRESS, Globals},
};

use ipnet::IpNet;

use crate::{
    detector::Thresholds,
    episodes::{AlertEvent, EpisodeTiming},
    model::HostMaps,
    pipeline::Pipeline,
    snapshot::Snapshot,
};

/// Latest packet time the clock follows (year 2116); later timestamps count at this time, so
/// that clock arithmetic never overflows.
const MAX_TIME_NS: u64 = u64::MAX / 4;
/// Longest poll interval or window honoured (about 31 years).
const MAX_PERIOD_NS: u128 = 1_000_000_000_000_000_000;

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
    pipeline: Pipeline,
    poll_ns: u64,
    window_ns: u64,
    clock: Option<Clock>,
    /// Packets accounted since the last reading.
    fresh: u64,
    /// Packet time of the last reading, where the current tick began.
    last_reading: Option<u64>,
    /// The last reading found something.
    findings: bool,
    events: Vec<AlertEvent>,
    readings: u64,
    map_reads: u64,
    admission_changes: u64,
}

impl Detection {
    /// Detectors with `thresholds`, reading every `poll` and starting a window every `window`
    /// of capture time; offenders in `allow` never alert.
    pub fn new(
        thresholds: Thresholds,
        poll: Duration,
        window: Duration,
        allow: Vec<IpNet>,
    ) -> Self {
        Detection {
            maps: HostMaps::new(),
            pipeline: Pipeline::new(
                thresholds,
                window,
                EpisodeTiming::default(),
                allow,
                DEFAULT_SOURCES,
            ),
            poll_ns: poll.as_nanos().clamp(1, MAX_PERIOD_NS) as u64,
            window_ns: window.as_nanos().clamp(1, MAX_PERIOD_NS) as u64,
            clock: None,
            fresh: 0,
            last_reading: None,
            findings: false,
            events: Vec::new(),
            readings: 0,
            map_reads: 0,
            admission_changes: 0,
        }
    }

    /// Accounts one packet (classified or not) seen at `ts_ns`.
    pub fn feed(&mut self, parsed: &Result<Summary, ParseError>, wire_len: u64, ts_ns: u64) {
        let ts_ns = ts_ns.min(MAX_TIME_NS);
        let now = match self.clock {
            None => {
                // Baseline reading of the empty state, as the live agent does at start.
                self.pipeline.baseline(&self.maps.snapshot(ts_ns, ts_ns));
                self.last_reading = Some(ts_ns);
                self.clock = Some(Clock {
                    now: ts_ns,
                    next_poll: ts_ns + self.poll_ns,
                    next_window: ts_ns + self.window_ns,
                });
                ts_ns
            }
            Some(c) => c.now.max(ts_ns),
        };
        self.advance(now);
        self.maps.account(parsed, wire_len, DIR_INGRESS, now);
        self.fresh += 1;
    }

    /// Takes every reading due up to `now`.
    fn advance(&mut self, now: u64) {
        while let Some(mut c) = self.clock {
            if now < c.next_poll {
                self.clock = Some(Clock { now, ..c });
                return;
            }
            // Idle stretch: with no packets since a reading that found nothing and no open
            // episode, every reading until `now` would find nothing either. Skip to the last
            // one (starting a window if at least one would have started).
            let due = (now - c.next_poll) / self.poll_ns;
            if due > 1
                && self.fresh == 0
                && !self.findings
                && self.pipeline.episodes.active_by_rule().is_empty()
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

    /// One reading at `t`, in the live agent's order: admission, findings, episodes, window.
    fn reading(&mut self, t: u64) {
        bound(&mut self.maps, DEFAULT_SOURCES, 0);
        let mut snap = if self.pipeline.needs_maps(&self.maps.globals, t) {
            self.map_reads += 1;
            self.maps.snapshot(t, t)
        } else {
            Snapshot {
                mono_ns: t,
                wall_ns: t,
                epoch: self.maps.epoch,
                globals: self.maps.globals,
                src_capacity: DEFAULT_SOURCES,
                ..Snapshot::default()
            }
        };
        let secs = t.saturating_sub(self.last_reading.unwrap_or(t)) as f64 / 1e9;
        self.last_reading = Some(t);
        self.maps.read_tick(&mut snap, secs);
        let step = self.pipeline.step(&snap);
        if let Some(change) = step.admission {
            self.maps.admit_on_second = change.on;
            self.admission_changes += 1;
        }
        self.findings = step.findings;
        self.events.extend(step.events);
        self.readings += 1;
        self.fresh = 0;
        if let Some(c) = self.clock.as_mut().filter(|c| t >= c.next_window) {
            c.next_window = t + self.window_ns;
            self.maps.next_epoch();
        }
    }

    /// Takes the reading after the last packet, ends every open episode and returns all alert
    /// events in order, with the global counters.
    pub fn finish(mut self) -> DetectionResult {
        if let Some(c) = self.clock {
            self.reading(c.next_poll);
            let mut end = c.next_poll;
            // Probes of the last tick still unanswered settle at the reading after it.
            if self.maps.join.pending() > 0 {
                end = end.saturating_add(self.poll_ns);
                self.reading(end);
            }
            self.events.extend(self.pipeline.finish(end));
        }
        DetectionResult {
            events: self.events,
            readings: self.readings,
            map_reads: self.map_reads,
            admission_changes: self.admission_changes,
            globals: self.maps.globals,
        }
    }
}

/// Holds the per-source state to the live map's capacity as its LRU eviction does: once it
/// has more than `slack` entries beyond its capacity, the least recently seen go (`slack` lets a
/// caller trim in batches rather than at every packet).
pub fn bound(maps: &mut HostMaps, sources: u32, slack: u32) {
    if maps.sources.len() > sources.saturating_add(slack) as usize {
        trim(&mut maps.sources, sources, |s| s.last_seen_ns);
    }
}

/// Evicts the least recently seen entries above `capacity`, as the live LRU maps do.
fn trim<K: Copy + Eq + Hash, V>(map: &mut HashMap<K, V>, capacity: u32, last_seen: fn(&V) -> u64) {
    let excess = map.len().saturating_sub(capacity as usize);
    if excess == 0 {
        return;
    }
    let mut ages: Vec<(u64, K)> = map.iter().map(|(k, v)| (last_seen(v), *k)).collect();
    ages.select_nth_unstable_by_key(excess - 1, |(t, _)| *t);
    for (_, k) in &ages[..excess] {
        map.remove(k);
    }
}

/// What detection produced.
#[derive(Debug)]
pub struct DetectionResult {
    /// Alert events (start, update, end) in order.
    pub events: Vec<AlertEvent>,
    /// Readings taken.
    pub readings: u64,
    /// Readings that included the per-source and per-destination state.
    pub map_reads: u64,
    /// Times admission at the second sighting turned on or off.
    pub admission_changes: u64,
    /// The state model's global counters: `[every packet, nothing]` (offline, every packet
    /// counts as ingress).
    pub globals: [Globals; 2],
}
