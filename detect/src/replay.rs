//! The live agent's detectors driven by capture time: packets go into [`HostMaps`] exactly as
//! the BPF programs account them, the state is read every poll interval of packet time (the
//! per-source and per-destination maps only when [`Detector::needs_maps`] says a finding may
//! have changed, as live).
//!
//! Like the live maps, the per-source table holds [`DEFAULT_SOURCES`] entries (in 2-way
//! sets, the source probed longest ago evicted, as in the kernel), the slot tables end a tick at
//! every reading, and admission at the second sighting turns on and off with the live
//! agent's [`Admission`] rule, so a spoofed flood neither exhausts memory nor hides a scanner.
//!
//! Direction (the vantage). Without local networks ([`Detection::with_local`]), the capture is
//! read as a SPAN port sees it: both directions, every packet accounted once as ingress (so
//! `globals[0]` counts every classified packet, and every prober gets a per-source entry).
//! With local networks (`picket analyze --local CIDR`), the capture is read as the live agent
//! on those hosts would see it: packets to a local host are ingress, packets from a local host
//! to elsewhere are egress (TC egress: counted, but they create no per-source scan state), and
//! packets between two other hosts are not seen at all (an agent on a host sees only its own
//! traffic); they are counted in [`DetectionResult::not_local`]. A packet between two local
//! hosts is accounted once, as the receiver's ingress. Frames that are not IP count as
//! ingress either way. The slot tables do not depend on direction: a SYN-ACK updates its
//! sender's slot either way, which is what the `synack_ratio` of destination-scoped
//! `syn_flood` alerts uses.

use std::time::Duration;

use agent_common::{
    ParseError, Summary,
    state::{AddrKey, DEFAULT_SOURCES, DIR_EGRESS, DIR_INGRESS, Globals},
};

use ipnet::IpNet;

use crate::{
    allowlist::Allowlists,
    detector::Thresholds,
    episodes::{AlertEvent, EpisodeTiming},
    folding::DECOY_HOLD_NS,
    model::HostMaps,
    pipeline::Pipeline,
    snapshot::Snapshot,
};

/// Latest packet time the clock follows (year 2116); later timestamps count at this time, so
/// that clock arithmetic never overflows.
const MAX_TIME_NS: u64 = u64::MAX / 4;
/// Longest poll interval honoured (about 31 years).
const MAX_PERIOD_NS: u128 = 1_000_000_000_000_000_000;

#[derive(Clone, Copy, Debug)]
struct Clock {
    /// Latest packet time (the detector clock never goes backwards).
    now: u64,
    next_poll: u64,
}

/// Detection over a capture.
#[derive(Debug)]
pub struct Detection {
    maps: HostMaps,
    pipeline: Pipeline,
    poll_ns: u64,
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
    /// The watched hosts (empty: a SPAN port's view).
    local: Vec<IpNet>,
    not_local: u64,
}

impl Detection {
    /// Detectors with `thresholds` and a fast scale of `window`, reading every `poll` of
    /// capture time; what `allow` covers never alerts.
    pub fn new(
        thresholds: Thresholds,
        poll: Duration,
        window: Duration,
        allow: Allowlists,
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
            clock: None,
            fresh: 0,
            last_reading: None,
            findings: false,
            events: Vec::new(),
            readings: 0,
            map_reads: 0,
            admission_changes: 0,
            local: Vec::new(),
            not_local: 0,
        }
    }

    /// Accounts the capture as the live agent on the hosts of `local` would see it (see the
    /// module's documentation); empty: as a SPAN port sees it.
    pub fn with_local(mut self, local: Vec<IpNet>) -> Self {
        self.local = local;
        self
    }

    /// The direction a live agent on the local hosts would see `parsed` in; none when it
    /// would not see it.
    fn direction(&self, parsed: &Result<Summary, ParseError>) -> Option<u32> {
        let s = match parsed {
            Ok(s) if s.is_ip() && !self.local.is_empty() => s,
            _ => return Some(DIR_INGRESS),
        };
        let local = |a: [u8; 16]| {
            let ip = AddrKey { addr: a }.ip();
            self.local.iter().any(|n| n.contains(&ip))
        };
        match (local(s.src), local(s.dst)) {
            (_, true) => Some(DIR_INGRESS),
            (true, false) => Some(DIR_EGRESS),
            (false, false) => None,
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
                });
                ts_ns
            }
            Some(c) => c.now.max(ts_ns),
        };
        self.advance(now);
        let Some(dir) = self.direction(parsed) else {
            self.not_local += 1;
            return;
        };
        self.maps.account(parsed, wire_len, dir, now);
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
            // one.
            let due = (now - c.next_poll) / self.poll_ns;
            if due > 1
                && self.fresh == 0
                && !self.findings
                && self.pipeline.episodes.active_by_rule().is_empty()
            {
                c.next_poll += due * self.poll_ns;
            }
            self.clock = Some(c);
            self.reading(c.next_poll);
            if let Some(c) = &mut self.clock {
                c.next_poll += self.poll_ns;
            }
        }
    }

    /// One reading at `t`, in the live agent's order: admission, findings, episodes.
    fn reading(&mut self, t: u64) {
        let mut snap = if self.pipeline.needs_maps(&self.maps.globals, t) {
            self.map_reads += 1;
            self.maps.snapshot(t, t)
        } else {
            Snapshot {
                mono_ns: t,
                wall_ns: t,
                globals: self.maps.globals,
                src_capacity: self.maps.geometry.sources,
                ..Snapshot::default()
            }
        };
        let secs = t.saturating_sub(self.last_reading.unwrap_or(t)) as f64 / 1e9;
        self.last_reading = Some(t);
        self.maps.read_tick(&mut snap, secs);
        let step = self.pipeline.step(&mut snap);
        if let Some(change) = step.admission {
            self.maps.admit_on_second = change.on;
            self.admission_changes += 1;
        }
        self.findings = step.findings;
        self.events.extend(step.events);
        self.readings += 1;
        self.fresh = 0;
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
            // A scan held back for its decoys is released (or folded) by the readings the live
            // agent would go on taking: take them, up to the hold's length.
            let hold_end = end.saturating_add(DECOY_HOLD_NS);
            while self.pipeline.holding() && end < hold_end {
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
            not_local: self.not_local,
            folded: self.pipeline.episodes.folded_by_rule().values().sum(),
            suppressed: self.pipeline.suppressed(),
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
    /// Readings that included the per-source and per-destination state.
    pub map_reads: u64,
    /// Times admission at the second sighting turned on or off.
    pub admission_changes: u64,
    /// The state model's global counters: `[ingress, egress]` (without local networks,
    /// every packet counts as ingress).
    pub globals: [Globals; 2],
    /// Packets between two hosts outside the local networks, which a live agent on the
    /// local hosts would not see (always 0 without local networks).
    pub not_local: u64,
    /// Findings folded into other episodes (storms, decoys, the episode rate cap).
    pub folded: u64,
    /// Probes and findings dropped by the allowlists.
    pub suppressed: crate::allowlist::Suppressed,
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use agent_common::{
        classify::{IPPROTO_ICMP, IPPROTO_TCP, TCP_ACK, TCP_RST, TCP_SYN},
        classify_eth,
    };
    use picket_frames as frames;

    use super::*;
    use crate::{
        detector::{Rule, Scope},
        episodes::Phase,
    };

    const MS: u64 = 1_000_000;
    const PINGER: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 7);
    const VICTIM: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);

    fn detection(local: &[&str]) -> Detection {
        Detection::new(
            Thresholds::default(),
            Duration::from_secs(1),
            Duration::from_secs(10),
            Allowlists::default(),
        )
        .with_local(local.iter().map(|n| n.parse().unwrap()).collect())
    }

    fn feed(d: &mut Detection, frame: &[u8], t: u64) {
        d.feed(&classify_eth(frame), frame.len() as u64, t);
    }

    fn starts(r: &DetectionResult) -> Vec<(Rule, Scope, Option<std::net::IpAddr>)> {
        r.events
            .iter()
            .filter(|e| e.phase == Phase::Start)
            .map(|e| (e.finding.rule, e.finding.scope, e.finding.offender()))
            .collect()
    }

    /// A 3 s ping flood at 5000/s, every request answered.
    fn ping_flood(d: &mut Detection) {
        let req = frames::ipv4(PINGER, VICTIM, IPPROTO_ICMP, 0, &frames::icmp(8, 0));
        let rep = frames::ipv4(VICTIM, PINGER, IPPROTO_ICMP, 0, &frames::icmp(0, 0));
        for i in 0..15_000u64 {
            let t = 1_000 * MS + i * 200_000;
            feed(d, &req, t);
            feed(d, &rep, t + 50_000);
        }
    }

    #[test]
    fn echo_replies_of_a_flooded_host_are_not_a_flood_from_it() {
        for local in [&[][..], &["192.0.2.0/24"][..]] {
            let mut d = detection(local);
            ping_flood(&mut d);
            let got = starts(&d.finish());
            assert_eq!(
                got,
                vec![(Rule::IcmpFlood, Scope::Source, Some(PINGER.into()))],
                "local {local:?}"
            );
        }
    }

    fn syn_scan(d: &mut Detection, src: Ipv4Addr, dst: Ipv4Addr, t0: u64) {
        for p in 0..100u16 {
            let syn = frames::tcp(40000, 1000 + p, TCP_SYN);
            feed(
                d,
                &frames::ipv4(src, dst, IPPROTO_TCP, 0, &syn),
                t0 + u64::from(p) * MS,
            );
            let rst = frames::tcp(1000 + p, 40000, TCP_RST);
            feed(
                d,
                &frames::ipv4(dst, src, IPPROTO_TCP, 0, &rst),
                t0 + u64::from(p) * MS,
            );
        }
    }

    #[test]
    fn local_networks_decide_what_the_live_agent_would_see() {
        let scanner = Ipv4Addr::new(203, 0, 113, 9);
        let other = Ipv4Addr::new(203, 0, 113, 50);
        // SPAN: the scan of the victim and the scan between two other hosts.
        let mut span = detection(&[]);
        syn_scan(&mut span, scanner, VICTIM, 1_000 * MS);
        syn_scan(&mut span, scanner, other, 1_200 * MS);
        let r = span.finish();
        assert_eq!(
            starts(&r),
            vec![(Rule::PortScan, Scope::Source, Some(scanner.into()))]
        );
        assert_eq!(r.not_local, 0);
        assert_eq!(r.globals[1].packets, 0);
        // On the victim: the scan of it is ingress (its RSTs egress), the other is unseen.
        let mut on_victim = detection(&["192.0.2.1/32"]);
        syn_scan(&mut on_victim, scanner, VICTIM, 1_000 * MS);
        syn_scan(&mut on_victim, scanner, other, 1_200 * MS);
        let r = on_victim.finish();
        assert_eq!(starts(&r).len(), 1);
        assert_eq!(r.events[0].finding.destination, Some(VICTIM.into()));
        assert_eq!(r.not_local, 200);
        assert_eq!((r.globals[0].packets, r.globals[1].packets), (100, 100));
        // On the scanner: its own probes leave by egress and the refusals come in, and
        // conversations are matched whichever way they go, so the agent there reports its
        // own host scanning.
        let mut on_scanner = detection(&["203.0.113.9/32"]);
        syn_scan(&mut on_scanner, scanner, VICTIM, 1_000 * MS);
        let r = on_scanner.finish();
        assert_eq!(
            starts(&r),
            vec![(Rule::PortScan, Scope::Source, Some(scanner.into()))]
        );
        assert_eq!((r.globals[0].packets, r.globals[1].packets), (100, 100));
    }

    #[test]
    fn a_udp_flood_to_random_ports_is_a_flood_not_also_a_port_scan() {
        use agent_common::classify::IPPROTO_UDP;
        // From one source (40 000 datagrams/s for 3 s), then from random forged sources
        // (60 000/s): every datagram to another port.
        let flooder = Ipv4Addr::new(203, 0, 113, 7);
        let mut d = detection(&[]);
        let mut port = 1u16;
        for i in 0..120_000u64 {
            port = port.wrapping_mul(31).wrapping_add(7) | 1;
            let udp = frames::udp(40000, port, b"x");
            feed(
                &mut d,
                &frames::ipv4(flooder, VICTIM, IPPROTO_UDP, 0, &udp),
                1_000 * MS + i * 25_000,
            );
        }
        let r = d.finish();
        assert_eq!(
            starts(&r),
            vec![(Rule::UdpFlood, Scope::Source, Some(flooder.into()))]
        );
        let mut d = detection(&[]);
        for i in 0..180_000u32 {
            port = port.wrapping_mul(31).wrapping_add(7) | 1;
            let src = Ipv4Addr::from(0x0b00_0000 + (i % 50_000) * 13);
            let udp = frames::udp(40000, port, b"x");
            let t = 1_000 * MS + u64::from(i) * 16_666;
            feed(&mut d, &frames::ipv4(src, VICTIM, IPPROTO_UDP, 0, &udp), t);
        }
        let r = d.finish();
        assert_eq!(
            starts(&r),
            vec![(Rule::UdpFlood, Scope::Destination, Some(VICTIM.into()))]
        );
    }

    #[test]
    fn five_hundred_forged_scanners_of_one_target_are_one_episode() {
        // Each forged source probes 32 ports of its own, in turn, ~1800 SYNs/s in all: below
        // every flood bar, within one window, and no two sources alike (not decoys). The
        // victim refuses each probe (its RSTs go to the forged addresses).
        let mut d = detection(&[]);
        for p in 0..32u16 {
            for s in 0..500u16 {
                let src = Ipv4Addr::from(0x0a00_0000 + u32::from(s) * 7 + 1);
                let port = 2000 + s * 40 + p;
                let syn = frames::tcp(40000, port, TCP_SYN);
                let t = 1_000 * MS + (u64::from(p) * 500 + u64::from(s)) * 550_000;
                feed(&mut d, &frames::ipv4(src, VICTIM, IPPROTO_TCP, 0, &syn), t);
                let rst = frames::tcp(port, 40000, TCP_RST | TCP_ACK);
                feed(
                    &mut d,
                    &frames::ipv4(VICTIM, src, IPPROTO_TCP, 0, &rst),
                    t + 100_000,
                );
            }
        }
        let r = d.finish();
        let got = starts(&r);
        assert_eq!(got.len(), 1, "{got:?}");
        // The episode's last event has every source.
        let f = &r.events.last().expect("an end").finding;
        assert_eq!(
            (f.scope, f.destination),
            (Scope::Destination, Some(VICTIM.into()))
        );
        let sources = f.details.sources.as_ref().expect("sources");
        assert_eq!(sources.count, 500);
        assert_eq!(sources.sample.len(), 16);
        assert!(r.folded >= 500, "{}", r.folded);
    }
}
