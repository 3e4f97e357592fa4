//! Detectors: turn successive [`Snapshot`]s into findings, one per offender and rule, each
//! time the state is read. Thresholds and windows live here, not in the kernel.

use std::{collections::HashMap, net::IpAddr};

use agent_common::{
    sketch::Distinct,
    state::{AddrKey, DstState, Globals, SrcState},
};
use serde::{Deserialize, Serialize};

use crate::snapshot::{Snapshot, same_entry};

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
    /// Packets from the source since its entry was created.
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

/// Counters remembered from the previous reading to turn totals into rates.
#[derive(Clone, Copy, Debug)]
struct Prev {
    packets: u64,
    bytes: u64,
    syn: u64,
    udp: u64,
    icmp: u64,
    first_seen_ns: u64,
}

/// Per-source rates over the last interval, for floods and summaries.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Rates {
    /// Packets per second.
    pub packets: f64,
    /// Bytes per second.
    pub bytes: f64,
    /// SYNs per second.
    pub syn: f64,
    /// UDP packets per second.
    pub udp: f64,
    /// ICMP packets per second.
    pub icmp: f64,
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
            packets: st.packets,
        }
    }
}

/// Applies the thresholds to successive snapshots.
///
/// Distinct counts come from tumbling windows (the kernel clears a source's sets in each
/// new window). So that a scan or sweep spanning a window boundary is one episode rather
/// than two, each source's final counts of the previous window stay in force during the
/// next window: a detection ends one full quiet window after the activity stops.
#[derive(Debug)]
pub struct Detector {
    /// Thresholds in force (may be replaced between readings).
    pub thresholds: Thresholds,
    window_s: f64,
    last_mono_ns: Option<u64>,
    epoch: u64,
    prev_src: HashMap<AddrKey, Prev>,
    prev_dst: HashMap<AddrKey, u64>,
    window_counts: HashMap<AddrKey, ScanCounts>,
    prev_window_counts: HashMap<AddrKey, ScanCounts>,
    last_globals: Option<(u64, [Globals; 2])>,
    last_read_globals: Option<[Globals; 2]>,
}

impl Detector {
    /// A detector with `thresholds`, whose distinct counts cover windows of `window_s`.
    pub fn new(thresholds: Thresholds, window_s: f64) -> Self {
        Detector {
            thresholds,
            window_s,
            last_mono_ns: None,
            epoch: 0,
            prev_src: HashMap::new(),
            prev_dst: HashMap::new(),
            window_counts: HashMap::new(),
            prev_window_counts: HashMap::new(),
            last_globals: None,
            last_read_globals: None,
        }
    }

    /// Whether the next reading must include the per-source and per-destination maps, given
    /// the global counters now: only when a probe arrived or the packet rate could put a
    /// single source or destination over a flood threshold since the previous reading.
    /// Otherwise no finding can have changed and [`Detector::evaluate`] works from cached
    /// window counts, which keeps an idle agent with a full map cheap.
    pub fn needs_maps(&self, globals: &[Globals; 2], mono_ns: u64) -> bool {
        let Some((prev_ns, prev)) = &self.last_globals else {
            return true;
        };
        let dt = mono_ns.saturating_sub(*prev_ns) as f64 / 1e9;
        if dt <= 0.0 {
            return true;
        }
        let t = &self.thresholds;
        let (cur, prev) = (&globals[0], &prev[0]);
        let rate = |c: u64, p: u64| c.saturating_sub(p) as f64 / dt;
        let min_flood = t.syn_flood_pps.min(t.udp_flood_pps).min(t.icmp_flood_pps);
        cur.probes != prev.probes
            || rate(cur.packets, prev.packets) >= min_flood
            || rate(cur.syn, prev.syn) >= t.syn_flood_dst_pps
    }

    /// Findings for one reading. The first reading only sets the baseline for rates.
    pub fn evaluate(&mut self, snap: &Snapshot) -> Vec<Finding> {
        let mut out = Vec::new();
        if snap.epoch != self.epoch {
            self.prev_window_counts = std::mem::take(&mut self.window_counts);
            self.epoch = snap.epoch;
        }
        let prev_poll = self.last_globals.replace((snap.mono_ns, snap.globals));
        if snap.maps_read {
            self.evaluate_maps(snap, prev_poll, &mut out);
        }
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

    /// Rates, floods and fresh window counts from a reading that includes the maps.
    ///
    /// When earlier polls skipped the maps, a counter's change since the last map read spans
    /// several polls; divided by that whole span a short burst would look slow. So each rate
    /// is also bounded from below over the last poll alone: whatever a source received during
    /// the skipped polls is at most what the whole host received then (global counters), and
    /// the rest arrived in the last poll. The larger of the two rates is used; neither can
    /// exceed the true peak rate, so this adds no false alarms.
    fn evaluate_maps(
        &mut self,
        snap: &Snapshot,
        prev_poll: Option<(u64, [Globals; 2])>,
        out: &mut Vec<Finding>,
    ) {
        let t = &self.thresholds;
        let dt_s = self
            .last_mono_ns
            .map(|prev| snap.mono_ns.saturating_sub(prev) as f64 / 1e9)
            .filter(|dt| *dt > 0.0);
        let since_ns = self.last_mono_ns.unwrap_or(0);
        let skipped = Skipped::between(self.last_read_globals.as_ref(), prev_poll, snap.mono_ns);
        let mut next_src = HashMap::with_capacity(snap.sources.len());
        for (key, st) in &snap.sources {
            next_src.insert(
                *key,
                Prev {
                    packets: st.packets,
                    bytes: st.bytes,
                    syn: st.syn,
                    udp: st.udp,
                    icmp: st.icmp,
                    first_seen_ns: st.first_seen_ns,
                },
            );
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
            let Some(dt) = dt_s else { continue };
            if st.last_seen_ns < since_ns {
                continue; // nothing new since the last reading
            }
            // Same entry as last time (not evicted and recreated): difference of totals;
            // otherwise everything it holds is new.
            let base = self
                .prev_src
                .get(key)
                .filter(|p| same_entry(p.first_seen_ns, st));
            let d = |cur: u64, f: fn(&Prev) -> u64, skipped_count: u64| {
                let delta = cur.saturating_sub(base.map_or(0, f));
                skipped.rate(delta, dt, skipped_count)
            };
            let r = Rates {
                packets: d(st.packets, |p| p.packets, skipped.packets),
                bytes: d(st.bytes, |p| p.bytes, skipped.bytes),
                syn: d(st.syn, |p| p.syn, skipped.syn),
                udp: d(st.udp, |p| p.udp, skipped.udp),
                icmp: d(st.icmp, |p| p.icmp, skipped.icmp),
            };
            out.extend(flood_findings(t, dt, key, st, &r));
        }
        self.prev_src = next_src;

        let mut next_dst = HashMap::with_capacity(snap.dests.len());
        for (key, st) in &snap.dests {
            next_dst.insert(*key, st.syn_in);
            let Some(dt) = dt_s else { continue };
            let base = self.prev_dst.get(key).copied().unwrap_or(0);
            let base = if base > st.syn_in { 0 } else { base };
            let rate = skipped.rate(st.syn_in - base, dt, skipped.syn);
            if let Some(f) = dst_flood_finding(t, dt, key, st, snap.epoch, rate) {
                out.push(f);
            }
        }
        self.prev_dst = next_dst;
        self.last_mono_ns = Some(snap.mono_ns);
        self.last_read_globals = Some(snap.globals);
    }
}

/// Ingress counts of the whole host during polls that skipped the maps, and the length of
/// the last poll, to bound per-source rates from below (see `Detector::evaluate_maps`).
#[derive(Clone, Copy, Debug, Default)]
struct Skipped {
    packets: u64,
    bytes: u64,
    syn: u64,
    udp: u64,
    icmp: u64,
    last_poll_s: f64,
}

impl Skipped {
    fn between(
        last_read: Option<&[Globals; 2]>,
        prev_poll: Option<(u64, [Globals; 2])>,
        now_ns: u64,
    ) -> Self {
        let (Some(read), Some((prev_ns, prev))) = (last_read, prev_poll) else {
            return Skipped::default();
        };
        let (r, p) = (&read[0], &prev[0]);
        Skipped {
            packets: p.packets.saturating_sub(r.packets),
            bytes: p.bytes.saturating_sub(r.bytes),
            syn: p.syn.saturating_sub(r.syn),
            udp: p.udp.saturating_sub(r.udp),
            icmp: (p.icmp + p.icmpv6).saturating_sub(r.icmp + r.icmpv6),
            last_poll_s: now_ns.saturating_sub(prev_ns) as f64 / 1e9,
        }
    }

    /// The larger of the average rate over `dt` and the lower bound over the last poll.
    fn rate(&self, delta: u64, dt: f64, skipped: u64) -> f64 {
        let average = delta as f64 / dt;
        if self.last_poll_s <= 0.0 || self.last_poll_s >= dt {
            return average;
        }
        average.max(delta.saturating_sub(skipped) as f64 / self.last_poll_s)
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

fn flood_findings(
    t: &Thresholds,
    dt: f64,
    key: &AddrKey,
    st: &SrcState,
    r: &Rates,
) -> Vec<Finding> {
    [
        (Rule::SynFlood, r.syn, t.syn_flood_pps),
        (Rule::UdpFlood, r.udp, t.udp_flood_pps),
        (Rule::IcmpFlood, r.icmp, t.icmp_flood_pps),
    ]
    .into_iter()
    .filter(|(_, rate, threshold)| *rate >= *threshold)
    .map(|(rule, rate, threshold)| Finding {
        rule,
        scope: Scope::Source,
        source: Some(key.ip()),
        destination: (st.last_dst != [0; 16]).then(|| AddrKey { addr: st.last_dst }.ip()),
        value: rate.round(),
        threshold,
        unit: Unit::PacketsPerSecond,
        window_s: dt,
        estimated: false,
        details: Details {
            packets: Some(st.packets),
            ..Details::default()
        },
    })
    .collect()
}

fn dst_flood_finding(
    t: &Thresholds,
    dt: f64,
    key: &AddrKey,
    st: &DstState,
    epoch: u64,
    rate: f64,
) -> Option<Finding> {
    if rate < t.syn_flood_dst_pps || st.epoch != epoch {
        return None;
    }
    let sources = st.distinct_sources();
    if sources.value < t.syn_flood_dst_sources {
        return None;
    }
    let ratio = if st.syn_in > 0 {
        st.synack_out as f64 / st.syn_in as f64
    } else {
        0.0
    };
    Some(Finding {
        rule: Rule::SynFlood,
        scope: Scope::Destination,
        source: None,
        destination: Some(key.ip()),
        value: rate.round(),
        threshold: t.syn_flood_dst_pps,
        unit: Unit::PacketsPerSecond,
        window_s: dt,
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
            let f = d.evaluate(&m.snapshot(SEC, SEC));
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
        assert!(d.evaluate(&m.snapshot(SEC, SEC)).is_empty());
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
        let f = d.evaluate(&m.snapshot(SEC, SEC));
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
        assert_eq!(d.evaluate(&m.snapshot(SEC, SEC)).len(), 1);
        m.next_epoch();
        // A few probes in the new window: the previous window's count still holds.
        feed(
            &mut m,
            &syn(SCANNER, VICTIM, 40000, 7),
            DIR_INGRESS,
            2 * SEC,
        );
        let f = d.evaluate(&m.snapshot(2 * SEC, 2 * SEC));
        assert_eq!(rules(&f), vec![(Rule::PortScan, Scope::Source)]);
        assert_eq!(f[0].value, 40.0);
        m.next_epoch();
        assert!(d.evaluate(&m.snapshot(3 * SEC, 3 * SEC)).is_empty());
    }

    #[test]
    fn syn_flood_from_one_source_uses_the_rate_since_last_reading() {
        let mut m = HostMaps::new();
        let mut d = Detector::new(Thresholds::default(), 10.0);
        feed(&mut m, &syn(SCANNER, VICTIM, 1, 80), DIR_INGRESS, SEC);
        assert!(
            d.evaluate(&m.snapshot(SEC, SEC)).is_empty(),
            "first reading is the baseline"
        );
        for i in 0..1500u16 {
            feed(
                &mut m,
                &syn(SCANNER, VICTIM, i, 80),
                DIR_INGRESS,
                SEC + SEC / 2,
            );
        }
        let f = d.evaluate(&m.snapshot(2 * SEC, 2 * SEC));
        assert_eq!(rules(&f), vec![(Rule::SynFlood, Scope::Source)]);
        assert_eq!(f[0].value, 1500.0);
        // Nothing new: no finding.
        assert!(d.evaluate(&m.snapshot(3 * SEC, 3 * SEC)).is_empty());
    }

    #[test]
    fn spoofed_syn_flood_is_seen_at_the_destination() {
        let mut m = HostMaps::new();
        let mut d = Detector::new(Thresholds::default(), 10.0);
        d.evaluate(&m.snapshot(SEC, SEC));
        for i in 0..3000u32 {
            let src = Ipv4Addr::from(0x0b00_0000 + i * 7919);
            feed(&mut m, &syn(src, VICTIM, 1024, 80), DIR_INGRESS, SEC + 1);
            let rst = frames::tcp(80, 1024, agent_common::classify::TCP_RST | TCP_ACK);
            feed(
                &mut m,
                &frames::ipv4(VICTIM, src, IPPROTO_TCP, 0, &rst),
                DIR_EGRESS,
                SEC + 1,
            );
        }
        let f = d.evaluate(&m.snapshot(2 * SEC, 2 * SEC));
        assert_eq!(rules(&f), vec![(Rule::SynFlood, Scope::Destination)]);
        assert_eq!(f[0].destination, Some(VICTIM.into()));
        assert_eq!(f[0].source, None);
        let n = f[0].details.distinct_sources.unwrap();
        assert!((2700..=3300).contains(&n), "{n}");
        assert_eq!(f[0].details.synack_ratio, Some(0.0));
    }

    #[test]
    fn recreated_entry_counts_from_zero() {
        let mut m = HostMaps::new();
        let mut d = Detector::new(Thresholds::default(), 10.0);
        for i in 0..5000u16 {
            feed(&mut m, &syn(SCANNER, VICTIM, i, 80), DIR_INGRESS, SEC);
        }
        d.evaluate(&m.snapshot(SEC, SEC));
        // Evicted and created again with fewer packets than before.
        m.sources.clear();
        for i in 0..1200u16 {
            feed(&mut m, &syn(SCANNER, VICTIM, i, 80), DIR_INGRESS, SEC + 5);
        }
        let f = d.evaluate(&m.snapshot(2 * SEC, 2 * SEC));
        assert_eq!(
            f.iter().find(|f| f.rule == Rule::SynFlood).map(|f| f.value),
            Some(1200.0)
        );
    }

    #[test]
    fn maps_are_skipped_only_when_nothing_can_have_changed() {
        let mut m = HostMaps::new();
        let mut d = Detector::new(Thresholds::default(), 10.0);
        let snap = m.snapshot(SEC, SEC);
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
        // A packet rate that a single source could use to flood: read.
        let mut busy = HostMaps::new();
        let mut d = Detector::new(Thresholds::default(), 10.0);
        d.evaluate(&busy.snapshot(SEC, SEC));
        for i in 0..1000u16 {
            let ack = frames::tcp(443, i, TCP_ACK);
            feed(
                &mut busy,
                &frames::ipv4(SCANNER, VICTIM, IPPROTO_TCP, 0, &ack),
                DIR_INGRESS,
                SEC,
            );
        }
        assert!(d.needs_maps(&busy.globals, 2 * SEC));
    }

    #[test]
    fn cached_counts_keep_a_scan_reported_between_map_reads() {
        let mut m = HostMaps::new();
        let mut d = Detector::new(Thresholds::default(), 10.0);
        for p in 0..40u16 {
            feed(&mut m, &syn(SCANNER, VICTIM, 40000, p), DIR_INGRESS, SEC);
        }
        assert_eq!(d.evaluate(&m.snapshot(SEC, SEC)).len(), 1);
        let mut globals_only = m.snapshot(2 * SEC, 2 * SEC);
        globals_only.maps_read = false;
        globals_only.sources.clear();
        globals_only.dests.clear();
        let f = d.evaluate(&globals_only);
        assert_eq!(rules(&f), vec![(Rule::PortScan, Scope::Source)]);
        assert_eq!(f[0].value, 40.0);
    }

    #[test]
    fn short_flood_after_skipped_polls_is_not_diluted() {
        let mut m = HostMaps::new();
        let mut d = Detector::new(Thresholds::default(), 10.0);
        let globals_only = |m: &HostMaps, t: u64| {
            let mut s = m.snapshot(t * SEC, t * SEC);
            s.maps_read = false;
            s.sources.clear();
            s.dests.clear();
            s
        };
        d.evaluate(&m.snapshot(SEC, SEC));
        // Ten quiet polls that skip the maps.
        for t in 2..12 {
            assert!(!d.needs_maps(&m.globals, t * SEC));
            d.evaluate(&globals_only(&m, t));
        }
        // 1500 SYNs within the last second: over the 1000/s bar, although only 136/s
        // averaged over the 11 s since the last map read.
        for i in 0..1500u16 {
            feed(
                &mut m,
                &syn(SCANNER, VICTIM, i, 80),
                DIR_INGRESS,
                11 * SEC + 1,
            );
        }
        assert!(d.needs_maps(&m.globals, 12 * SEC));
        let f = d.evaluate(&m.snapshot(12 * SEC, 12 * SEC));
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
        let f = d.evaluate(&m.snapshot(SEC, SEC));
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
