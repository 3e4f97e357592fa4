//! Detectors: turn successive [`Snapshot`]s into findings, one per offender and rule, each
//! time the state is read. Thresholds and windows live here, not in the kernel.

use std::{collections::HashMap, net::IpAddr};

use agent_common::{
    sketch::Distinct,
    slots::{DstSlot, SrcSlot},
    state::{AddrKey, Globals, SrcState},
};
use serde::{Deserialize, Serialize};

use crate::snapshot::{Snapshot, TickCounts};

/// A detection rule. Its `name()` (`port_scan`, …) is the stable `rule.name` of alerts, the
/// `rule` label of the metrics and what `FromStr` parses; serde uses it too.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    strum::IntoStaticStr,
    strum::Display,
    strum::EnumString,
)]
#[serde(into = "&'static str")]
#[strum(serialize_all = "snake_case")]
pub enum Rule {
    /// One source probing many destination ports.
    PortScan,
    /// One source probing many destination hosts.
    HostSweep,
    /// SYN rate from one source, or towards one destination from many (spoofed) sources.
    SynFlood,
    /// UDP packet rate from one source.
    UdpFlood,
    /// ICMP/ICMPv6 packet rate from one source.
    IcmpFlood,
}

impl Rule {
    /// Every rule.
    pub const ALL: [Rule; 5] = [
        Rule::PortScan,
        Rule::HostSweep,
        Rule::SynFlood,
        Rule::UdpFlood,
        Rule::IcmpFlood,
    ];

    /// Stable snake_case name.
    pub fn name(self) -> &'static str {
        self.into()
    }
}

/// Unit of a finding's value and threshold (`picket.unit` of alerts).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, strum::IntoStaticStr, strum::Display,
)]
#[serde(into = "&'static str")]
pub enum Unit {
    /// Distinct destination ports.
    #[strum(serialize = "ports")]
    Ports,
    /// Distinct destination hosts.
    #[strum(serialize = "hosts")]
    Hosts,
    /// Packets per second.
    #[strum(serialize = "packets/s")]
    PacketsPerSecond,
}

/// Whom a finding is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// The offender is the source address.
    Source,
    /// The finding is about a destination attacked from many sources.
    Destination,
}

/// Detection thresholds. Defaults and their reasoning are in [`Thresholds::default`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Thresholds {
    /// `port_scan`: distinct destination ports probed by one source in one window.
    pub port_scan_ports: u32,
    /// `host_sweep`: distinct destination hosts probed by one source in one window.
    pub host_sweep_hosts: u32,
    /// `syn_flood` (source): SYNs per second from one source.
    pub syn_flood_pps: f64,
    /// `syn_flood` (destination): SYNs per second towards one destination...
    pub syn_flood_dst_pps: f64,
    /// ...from at least this many distinct sources in the window.
    pub syn_flood_dst_sources: u32,
    /// `udp_flood`: UDP packets per second from one source.
    pub udp_flood_pps: f64,
    /// `icmp_flood`: ICMP/ICMPv6 packets per second from one source.
    pub icmp_flood_pps: f64,
}

impl Default for Thresholds {
    /// Defaults, chosen to catch real tools within seconds and stay quiet otherwise:
    ///
    /// * `port_scan_ports = 30`: only *probes* count (TCP without ACK, UDP from client ports,
    ///   see `Summary::is_probe`), so a client with many connections to a few ports, or DNS
    ///   answers landing on many ephemeral ports, counts one or two ports. `nmap` probes 100
    ///   (`--top-ports 100`) to 1000 ports; services reached on 30+ ports within one 10 s
    ///   window by one client are rare outside scanning.
    /// * `host_sweep_hosts = 64`: a ping or SYN sweep of a /24 touches 254 hosts in seconds;
    ///   a busy client behind a gateway opens connections to dozens of hosts, so the bar sits
    ///   above that.
    /// * `syn_flood_pps = 1000`: `hping3 --flood` sends tens of thousands of SYNs per second;
    ///   default-speed `nmap -sS` stays in the hundreds, and a legitimate client rarely opens
    ///   a thousand connections per second to one host.
    /// * `syn_flood_dst_pps = 2000` from `syn_flood_dst_sources = 64` distinct sources: a
    ///   spoofed flood spreads over thousands of sources, each below every per-source bar.
    /// * `udp_flood_pps = 20000`: above a fast QUIC or media stream from one peer (~10 k
    ///   packets/s at 100 Mbit/s), far below a flood tool's rate.
    /// * `icmp_flood_pps = 1000`: `ping` sends 1/s, `ping -f` hundreds to thousands.
    fn default() -> Self {
        Thresholds {
            port_scan_ports: 30,
            host_sweep_hosts: 64,
            syn_flood_pps: 1000.0,
            syn_flood_dst_pps: 2000.0,
            syn_flood_dst_sources: 64,
            udp_flood_pps: 20_000.0,
            icmp_flood_pps: 1000.0,
        }
    }
}

/// One rule matched for one offender at one reading.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Finding {
    /// The rule.
    pub rule: Rule,
    /// Whether `source` or `destination` is the offender's side.
    pub scope: Scope,
    /// Source address (absent for destination-scoped findings).
    pub source: Option<IpAddr>,
    /// Destination address (the probed host for scans, the target for floods).
    pub destination: Option<IpAddr>,
    /// Observed value (distinct count, or rate per second).
    pub value: f64,
    /// Threshold it crossed.
    pub threshold: f64,
    /// Unit of `value`.
    pub unit: Unit,
    /// Window the value was measured over, in seconds.
    pub window_s: f64,
    /// True when `value` is an estimate rather than an exact count.
    pub estimated: bool,
    /// Rule-specific details.
    pub details: Details,
}

impl Finding {
    /// The address episodes are keyed on.
    pub fn offender(&self) -> Option<IpAddr> {
        match self.scope {
            Scope::Source => self.source,
            Scope::Destination => self.destination,
        }
    }
}

/// Rule-specific context of a finding.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Details {
    // Declared in alphabetical order: the JSON documents list keys sorted.
    /// Distinct hosts probed in the window.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub distinct_hosts: Option<u32>,
    /// Distinct ports probed in the window.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub distinct_ports: Option<u32>,
    /// Distinct sources (destination-scoped floods).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub distinct_sources: Option<u32>,
    /// Packets from the source: its probes since its entry was created (scans), or its
    /// packets in the window (floods; a lower bound).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub packets: Option<u64>,
    /// Probed ports (exact set, first 64), for scans.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<u16>,
    /// True when a distinct count reached the estimator's capacity (about 7000): the
    /// count is then a lower bound.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub saturated: bool,
    /// SYN-ACKs sent per SYN received (destination-scoped floods).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub synack_ratio: Option<f64>,
}

/// Distinct counts of one source in one window.
#[derive(Clone, Debug)]
struct ScanCounts {
    ports: Distinct,
    hosts: Distinct,
    ports_seen: Vec<u16>,
    last_dst: [u8; 16],
    packets: u64,
}

impl ScanCounts {
    fn of(st: &SrcState) -> Self {
        // An estimate can overshoot slightly; there cannot be more distinct values than probes.
        let cap = |mut d: Distinct| {
            d.value = d.value.min(u32::try_from(st.probes).unwrap_or(u32::MAX));
            d
        };
        ScanCounts {
            ports: cap(st.distinct_ports()),
            hosts: cap(st.distinct_hosts()),
            ports_seen: st.ports_seen(),
            last_dst: st.last_dst,
            packets: st.probes,
        }
    }
}

/// Applies the thresholds to successive snapshots.
///
/// Floods come from the slot tables' counts of the tick that has just ended (every reading
/// has them). Distinct counts come from tumbling windows (the kernel clears a source's sets in
/// each new window). So that a scan or sweep spanning a window boundary is one episode rather
/// than two, each source's final counts of the previous window stay in force during the
/// next window: a detection ends one full quiet window after the activity stops.
#[derive(Debug)]
pub struct Detector {
    /// Thresholds in force (may be replaced between readings).
    pub thresholds: Thresholds,
    window_s: f64,
    epoch: u64,
    /// Destination of each probing source's latest probe, from the latest map read: where a
    /// flood from that source goes.
    last_dst: HashMap<AddrKey, [u8; 16]>,
    window_counts: HashMap<AddrKey, ScanCounts>,
    prev_window_counts: HashMap<AddrKey, ScanCounts>,
    last_probes: Option<u64>,
}

impl Detector {
    /// A detector with `thresholds`, whose distinct counts cover windows of `window_s`.
    pub fn new(thresholds: Thresholds, window_s: f64) -> Self {
        Detector {
            thresholds,
            window_s,
            epoch: 0,
            last_dst: HashMap::new(),
            window_counts: HashMap::new(),
            prev_window_counts: HashMap::new(),
            last_probes: None,
        }
    }

    /// Whether the next reading must include the per-source map, given the global counters
    /// now: only when a probe arrived since the previous reading. Otherwise no scan count can
    /// have changed and [`Detector::evaluate`] works from cached window counts, which keeps
    /// an idle agent with a full map cheap. (Floods need no map: every reading has the tick.)
    pub fn needs_maps(&self, globals: &[Globals; 2], _mono_ns: u64) -> bool {
        self.last_probes != Some(globals[0].probes)
    }

    /// Findings for one reading.
    pub fn evaluate(&mut self, snap: &Snapshot) -> Vec<Finding> {
        let mut out = Vec::new();
        if snap.epoch != self.epoch {
            self.prev_window_counts = std::mem::take(&mut self.window_counts);
            self.epoch = snap.epoch;
        }
        self.last_probes = Some(snap.globals[0].probes);
        if snap.maps_read {
            self.read_scan_counts(snap);
        }
        out.extend(self.flood_findings(&snap.tick));
        let t = &self.thresholds;
        let keys: std::collections::BTreeSet<&AddrKey> = self
            .window_counts
            .keys()
            .chain(self.prev_window_counts.keys())
            .collect();
        for key in keys {
            out.extend(scan_findings(
                t,
                self.window_s,
                key,
                self.window_counts.get(key),
                self.prev_window_counts.get(key),
            ));
        }
        out
    }

    /// Fresh window counts and probe destinations from a reading that includes the map.
    fn read_scan_counts(&mut self, snap: &Snapshot) {
        let t = &self.thresholds;
        self.last_dst.clear();
        for (key, st) in &snap.sources {
            self.last_dst.insert(*key, st.last_dst);
            // Cache the window counts of sources at or above a threshold only: they are what
            // findings are made of between map reads and across a window boundary.
            if st.epoch == snap.epoch && st.probes > 0 {
                let c = ScanCounts::of(st);
                if c.ports.value >= t.port_scan_ports || c.hosts.value >= t.host_sweep_hosts {
                    self.window_counts.insert(*key, c);
                } else {
                    self.window_counts.remove(key);
                }
            }
        }
    }

    /// Floods in the tick that has just ended: per source from what it sent, per destination
    /// from what it received. Every count is a lower bound (see `agent_common::slots`).
    fn flood_findings(&self, tick: &TickCounts) -> Vec<Finding> {
        let mut out = Vec::new();
        if tick.secs <= 0.0 {
            return out;
        }
        let t = &self.thresholds;
        for s in &tick.src {
            out.extend(src_flood_findings(t, tick.secs, s, &self.last_dst));
        }
        let synacks: HashMap<[u64; 2], u32> = tick
            .src
            .iter()
            .filter(|s| s.synack > 0)
            .map(|s| (s.head.addr, u32::from(s.synack)))
            .collect();
        for d in &tick.dst {
            let sent = synacks.get(&d.head.addr).copied().unwrap_or(0);
            out.extend(dst_flood_finding(t, tick.secs, d, sent));
        }
        out
    }
}

fn scan_findings(
    t: &Thresholds,
    window_s: f64,
    key: &AddrKey,
    cur: Option<&ScanCounts>,
    prev: Option<&ScanCounts>,
) -> Vec<Finding> {
    // The larger of this window's counts and the previous window's final counts.
    let pick = |f: fn(&ScanCounts) -> u32| match (cur, prev) {
        (Some(c), Some(p)) => Some(if f(p) > f(c) { p } else { c }),
        (c, p) => c.or(p),
    };
    let mut out = Vec::new();
    let finding = |rule, c: &ScanCounts, d: Distinct, threshold: u32, unit| Finding {
        rule,
        scope: Scope::Source,
        source: Some(key.ip()),
        destination: Some(AddrKey { addr: c.last_dst }.ip()),
        value: f64::from(d.value),
        threshold: f64::from(threshold),
        unit,
        window_s,
        estimated: !d.exact,
        details: Details {
            ports: c.ports_seen.clone(),
            distinct_ports: Some(c.ports.value),
            distinct_hosts: Some(c.hosts.value),
            packets: Some(c.packets),
            ..Details::default()
        },
    };
    if let Some(c) = pick(|c| c.ports.value).filter(|c| c.ports.value >= t.port_scan_ports) {
        out.push(finding(
            Rule::PortScan,
            c,
            c.ports,
            t.port_scan_ports,
            Unit::Ports,
        ));
    }
    if let Some(c) = pick(|c| c.hosts.value).filter(|c| c.hosts.value >= t.host_sweep_hosts) {
        let mut f = finding(Rule::HostSweep, c, c.hosts, t.host_sweep_hosts, Unit::Hosts);
        f.destination = None;
        f.details.ports.clear();
        out.push(f);
    }
    out
}

fn src_flood_findings(
    t: &Thresholds,
    secs: f64,
    s: &SrcSlot,
    last_dst: &HashMap<AddrKey, [u8; 16]>,
) -> Vec<Finding> {
    let key = AddrKey {
        addr: s.head.addr_bytes(),
    };
    [
        (Rule::SynFlood, s.syn, t.syn_flood_pps),
        (Rule::UdpFlood, s.udp, t.udp_flood_pps),
        (Rule::IcmpFlood, s.icmp(), t.icmp_flood_pps),
    ]
    .into_iter()
    .map(|(rule, n, threshold)| (rule, f64::from(n) / secs, threshold))
    .filter(|(_, rate, threshold)| *rate >= *threshold)
    .map(|(rule, rate, threshold)| Finding {
        rule,
        scope: Scope::Source,
        source: Some(key.ip()),
        destination: last_dst.get(&key).map(|d| AddrKey { addr: *d }.ip()),
        value: rate.round(),
        threshold,
        unit: Unit::PacketsPerSecond,
        window_s: secs,
        estimated: false,
        details: Details {
            packets: Some(u64::from(s.head.pkts_lower())),
            ..Details::default()
        },
    })
    .collect()
}

/// A SYN flood at `d` from many sources; `synacks` is what `d` sent back in the tick.
fn dst_flood_finding(t: &Thresholds, secs: f64, d: &DstSlot, synacks: u32) -> Option<Finding> {
    let rate = f64::from(d.syn_p) / secs;
    if rate < t.syn_flood_dst_pps {
        return None;
    }
    let sources = d.distinct_sources();
    if sources.value < t.syn_flood_dst_sources {
        return None;
    }
    let ratio = f64::from(synacks) / f64::from(d.syn_p.max(1));
    Some(Finding {
        rule: Rule::SynFlood,
        scope: Scope::Destination,
        source: None,
        destination: Some(
            AddrKey {
                addr: d.head.addr_bytes(),
            }
            .ip(),
        ),
        value: rate.round(),
        threshold: t.syn_flood_dst_pps,
        unit: Unit::PacketsPerSecond,
        window_s: secs,
        estimated: false,
        details: Details {
            distinct_sources: Some(sources.value),
            saturated: sources.saturated,
            synack_ratio: Some((ratio * 1000.0).round() / 1000.0),
            ..Details::default()
        },
    })
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use agent_common::{
        classify::{IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP, TCP_ACK, TCP_SYN},
        classify_eth,
        state::{DIR_EGRESS, DIR_INGRESS},
    };

    use super::*;
    use crate::model::HostMaps;
    use picket_frames as frames;

    const SEC: u64 = 1_000_000_000;
    const SCANNER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 66);
    const VICTIM: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);

    fn feed(m: &mut HostMaps, frame: &[u8], dir: u32, t: u64) {
        m.account(&classify_eth(frame), frame.len() as u64, dir, t);
    }

    /// A reading at `t` that ends a one-second tick, as a poll does.
    fn read(m: &mut HostMaps, t: u64) -> Snapshot {
        let mut s = m.snapshot(t, t);
        s.tick = m.next_tick(1.0);
        s
    }

    fn syn(src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16) -> Vec<u8> {
        frames::ipv4(
            src,
            dst,
            IPPROTO_TCP,
            0,
            &frames::tcp(sport, dport, TCP_SYN),
        )
    }

    fn rules(f: &[Finding]) -> Vec<(Rule, Scope)> {
        f.iter().map(|f| (f.rule, f.scope)).collect()
    }

    #[test]
    fn port_scan_at_threshold_not_below() {
        let t = Thresholds::default();
        for (ports, expect) in [(t.port_scan_ports - 1, false), (t.port_scan_ports, true)] {
            let mut m = HostMaps::new();
            let mut d = Detector::new(Thresholds::default(), 10.0);
            for p in 0..ports {
                feed(
                    &mut m,
                    &syn(SCANNER, VICTIM, 40000, 1000 + p as u16),
                    DIR_INGRESS,
                    SEC,
                );
            }
            let f = d.evaluate(&read(&mut m, SEC));
            assert_eq!(
                f.iter().any(|f| f.rule == Rule::PortScan),
                expect,
                "{ports} ports: {f:?}"
            );
            if expect {
                let f = &f[0];
                assert_eq!(f.source, Some(SCANNER.into()));
                assert_eq!(f.destination, Some(VICTIM.into()));
                assert_eq!(f.value, f64::from(ports));
                assert!(!f.estimated);
                assert_eq!(f.details.ports.len(), ports as usize);
            }
        }
    }

    #[test]
    fn established_traffic_and_server_answers_are_not_scans() {
        let mut m = HostMaps::new();
        let mut d = Detector::new(Thresholds::default(), 10.0);
        for p in 0..500u16 {
            // Answers from a web server and a DNS server land on many ephemeral ports.
            let ack = frames::tcp(443, 30000 + p, TCP_ACK);
            feed(
                &mut m,
                &frames::ipv4(SCANNER, VICTIM, IPPROTO_TCP, 0, &ack),
                DIR_INGRESS,
                SEC,
            );
            let dns = frames::udp(53, 40000 + p, b"answer");
            feed(
                &mut m,
                &frames::ipv4(SCANNER, VICTIM, IPPROTO_UDP, 0, &dns),
                DIR_INGRESS,
                SEC,
            );
        }
        assert!(d.evaluate(&read(&mut m, SEC)).is_empty());
    }

    #[test]
    fn host_sweep_counts_distinct_hosts() {
        let mut m = HostMaps::new();
        let mut d = Detector::new(Thresholds::default(), 10.0);
        for h in 0..100u8 {
            let ping = frames::icmp(8, 0);
            feed(
                &mut m,
                &frames::ipv4(SCANNER, Ipv4Addr::new(10, 1, 0, h), IPPROTO_ICMP, 0, &ping),
                DIR_INGRESS,
                SEC,
            );
        }
        let f = d.evaluate(&read(&mut m, SEC));
        assert_eq!(rules(&f), vec![(Rule::HostSweep, Scope::Source)]);
        assert!((f[0].value - 100.0).abs() <= 10.0, "{}", f[0].value);
        assert_eq!(f[0].destination, None);
    }

    #[test]
    fn previous_window_keeps_a_scan_alive_for_one_window() {
        let mut m = HostMaps::new();
        let mut d = Detector::new(Thresholds::default(), 10.0);
        for p in 0..40u16 {
            feed(&mut m, &syn(SCANNER, VICTIM, 40000, p), DIR_INGRESS, SEC);
        }
        assert_eq!(d.evaluate(&read(&mut m, SEC)).len(), 1);
        m.next_epoch();
        // A few probes in the new window: the previous window's count still holds.
        feed(
            &mut m,
            &syn(SCANNER, VICTIM, 40000, 7),
            DIR_INGRESS,
            2 * SEC,
        );
        let f = d.evaluate(&read(&mut m, 2 * SEC));
        assert_eq!(rules(&f), vec![(Rule::PortScan, Scope::Source)]);
        assert_eq!(f[0].value, 40.0);
        m.next_epoch();
        assert!(d.evaluate(&read(&mut m, 3 * SEC)).is_empty());
    }

    #[test]
    fn syn_flood_from_one_source_is_the_rate_of_the_last_tick() {
        let mut m = HostMaps::new();
        let mut d = Detector::new(Thresholds::default(), 10.0);
        for i in 0..999u16 {
            feed(&mut m, &syn(SCANNER, VICTIM, i, 80), DIR_INGRESS, SEC);
        }
        assert!(d.evaluate(&read(&mut m, SEC)).is_empty(), "below the bar");
        for i in 0..1500u16 {
            feed(
                &mut m,
                &syn(SCANNER, VICTIM, i, 80),
                DIR_INGRESS,
                SEC + SEC / 2,
            );
        }
        let f = d.evaluate(&read(&mut m, 2 * SEC));
        assert_eq!(rules(&f), vec![(Rule::SynFlood, Scope::Source)]);
        assert_eq!(f[0].value, 1500.0);
        assert_eq!(f[0].destination, Some(VICTIM.into()));
        assert_eq!(f[0].details.packets, Some(1500));
        // Nothing new: no finding.
        assert!(d.evaluate(&read(&mut m, 3 * SEC)).is_empty());
    }

    #[test]
    fn udp_and_icmp_floods_from_one_source() {
        let mut m = HostMaps::new();
        let mut d = Detector::new(Thresholds::default(), 10.0);
        let dns = frames::ipv4(
            SCANNER,
            VICTIM,
            IPPROTO_UDP,
            0,
            &frames::udp(53, 4000, b"x"),
        );
        for _ in 0..20_000 {
            feed(&mut m, &dns, DIR_INGRESS, SEC);
        }
        let ping = frames::ipv4(SCANNER, VICTIM, IPPROTO_ICMP, 0, &frames::icmp(8, 0));
        for _ in 0..1000 {
            feed(&mut m, &ping, DIR_INGRESS, SEC);
        }
        let mut f = rules(&d.evaluate(&read(&mut m, SEC)));
        f.sort();
        assert_eq!(
            f,
            vec![
                (Rule::UdpFlood, Scope::Source),
                (Rule::IcmpFlood, Scope::Source)
            ]
        );
    }

    /// 100 spoofed sources send 30 SYNs each to the victim; it answers each with `answer`.
    fn spoofed_flood(answer: u16) -> Vec<Finding> {
        let mut m = HostMaps::new();
        let mut d = Detector::new(Thresholds::default(), 10.0);
        d.evaluate(&read(&mut m, SEC));
        for i in 0..3000u32 {
            let src = Ipv4Addr::from(0x0b00_0000 + (i % 100) * 7919);
            feed(&mut m, &syn(src, VICTIM, 1024, 80), DIR_INGRESS, SEC + 1);
            let reply = frames::tcp(80, 1024, answer);
            feed(
                &mut m,
                &frames::ipv4(VICTIM, src, IPPROTO_TCP, 0, &reply),
                DIR_EGRESS,
                SEC + 1,
            );
        }
        d.evaluate(&read(&mut m, 2 * SEC))
    }

    #[test]
    fn spoofed_syn_flood_is_seen_at_the_destination() {
        let f = spoofed_flood(agent_common::classify::TCP_RST | TCP_ACK);
        assert_eq!(rules(&f), vec![(Rule::SynFlood, Scope::Destination)]);
        assert_eq!(f[0].destination, Some(VICTIM.into()));
        assert_eq!(f[0].source, None);
        assert_eq!(f[0].value, 3000.0);
        let n = f[0].details.distinct_sources.unwrap();
        assert!((75..=125).contains(&n), "{n}");
        assert_eq!(f[0].details.synack_ratio, Some(0.0));
        // Answered with SYN-ACKs (SYN cookies), the ratio says so.
        let f = spoofed_flood(TCP_SYN | TCP_ACK);
        assert_eq!(f[0].details.synack_ratio, Some(1.0));
    }

    #[test]
    fn maps_are_skipped_only_when_nothing_can_have_changed() {
        let mut m = HostMaps::new();
        let mut d = Detector::new(Thresholds::default(), 10.0);
        let snap = read(&mut m, SEC);
        assert!(d.needs_maps(&snap.globals, SEC), "first reading");
        d.evaluate(&snap);
        // A few established packets: nothing to read.
        for i in 0..50u16 {
            let ack = frames::tcp(443, 30000 + i, TCP_ACK);
            feed(
                &mut m,
                &frames::ipv4(SCANNER, VICTIM, IPPROTO_TCP, 0, &ack),
                DIR_INGRESS,
                SEC,
            );
        }
        assert!(!d.needs_maps(&m.globals, 2 * SEC));
        // One probe: read.
        feed(&mut m, &syn(SCANNER, VICTIM, 1, 22), DIR_INGRESS, 2 * SEC);
        assert!(d.needs_maps(&m.globals, 2 * SEC));
    }

    #[test]
    fn cached_counts_keep_a_scan_reported_between_map_reads() {
        let mut m = HostMaps::new();
        let mut d = Detector::new(Thresholds::default(), 10.0);
        for p in 0..40u16 {
            feed(&mut m, &syn(SCANNER, VICTIM, 40000, p), DIR_INGRESS, SEC);
        }
        assert_eq!(d.evaluate(&read(&mut m, SEC)).len(), 1);
        let mut globals_only = read(&mut m, 2 * SEC);
        globals_only.maps_read = false;
        globals_only.sources.clear();
        let f = d.evaluate(&globals_only);
        assert_eq!(rules(&f), vec![(Rule::PortScan, Scope::Source)]);
        assert_eq!(f[0].value, 40.0);
    }

    #[test]
    fn short_flood_after_skipped_polls_is_not_diluted() {
        let mut m = HostMaps::new();
        let mut d = Detector::new(Thresholds::default(), 10.0);
        let globals_only = |m: &mut HostMaps, t: u64| {
            let mut s = read(m, t * SEC);
            s.maps_read = false;
            s.sources.clear();
            s
        };
        d.evaluate(&read(&mut m, SEC));
        // Ten quiet polls that skip the maps.
        for t in 2..12 {
            assert!(!d.needs_maps(&m.globals, t * SEC));
            d.evaluate(&globals_only(&mut m, t));
        }
        // 1500 SYNs within the last second, read without the per-source map: the tick has
        // them.
        for i in 0..1500u16 {
            feed(
                &mut m,
                &syn(SCANNER, VICTIM, i, 80),
                DIR_INGRESS,
                11 * SEC + 1,
            );
        }
        let f = d.evaluate(&globals_only(&mut m, 12));
        assert_eq!(
            f.iter().find(|f| f.rule == Rule::SynFlood).map(|f| f.value),
            Some(1500.0),
            "{f:?}"
        );
    }

    #[test]
    fn estimates_never_exceed_the_probes_sent() {
        let mut m = HostMaps::new();
        let mut d = Detector::new(Thresholds::default(), 10.0);
        for p in 0..100u16 {
            feed(
                &mut m,
                &syn(SCANNER, VICTIM, 40000, 1000 + p),
                DIR_INGRESS,
                SEC,
            );
        }
        let f = d.evaluate(&read(&mut m, SEC));
        assert!(f[0].value <= 100.0, "{}", f[0].value);
    }

    #[test]
    fn rule_names_round_trip() {
        for r in Rule::ALL {
            assert_eq!(r.name().parse::<Rule>(), Ok(r));
        }
        assert!("nope".parse::<Rule>().is_err());
        assert_eq!(Rule::HostSweep.to_string(), "host_sweep");
        assert_eq!(
            serde_json::to_string(&Rule::IcmpFlood).unwrap(),
            "\"icmp_flood\""
        );
        assert_eq!(
            serde_json::to_string(&Unit::PacketsPerSecond).unwrap(),
            "\"packets/s\""
        );
        assert_eq!(Unit::Hosts.to_string(), "hosts");
    }
}
