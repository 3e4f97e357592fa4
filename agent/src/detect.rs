//! Detectors: turn successive [`Snapshot`]s into findings, one per offender and rule, each
//! time the state is read. Thresholds and windows live here, not in the kernel.

use std::{collections::HashMap, fmt, net::IpAddr, str::FromStr};

use agent_common::state::{AddrKey, DstState, SrcState};
use serde::{Deserialize, Serialize};

use crate::snapshot::Snapshot;

/// A detection rule. Its `name()` is the stable `rule.name` of alerts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
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
    pub const ALL: [Rule; 5] =
        [Rule::PortScan, Rule::HostSweep, Rule::SynFlood, Rule::UdpFlood, Rule::IcmpFlood];

    /// Stable snake_case name.
    pub fn name(self) -> &'static str {
        match self {
            Rule::PortScan => "port_scan",
            Rule::HostSweep => "host_sweep",
            Rule::SynFlood => "syn_flood",
            Rule::UdpFlood => "udp_flood",
            Rule::IcmpFlood => "icmp_flood",
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Rule {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Rule::ALL
            .into_iter()
            .find(|r| r.name() == s)
            .ok_or_else(|| format!("unknown rule {s:?}"))
    }
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
    pub unit: &'static str,
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
    /// Probed ports (exact set, first 64), for scans.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<u16>,
    /// Distinct ports probed in the window.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub distinct_ports: Option<u32>,
    /// Distinct hosts probed in the window.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub distinct_hosts: Option<u32>,
    /// Distinct sources (destination-scoped floods).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub distinct_sources: Option<u32>,
    /// SYN-ACKs sent per SYN received (destination-scoped floods).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub synack_ratio: Option<f64>,
    /// Packets from the source since its entry was created.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub packets: Option<u64>,
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

/// Applies the thresholds to successive snapshots.
#[derive(Debug)]
pub struct Detector {
    /// Thresholds in force (may be replaced between readings).
    pub thresholds: Thresholds,
    window_s: f64,
    last_mono_ns: Option<u64>,
    prev_src: HashMap<AddrKey, Prev>,
    prev_dst: HashMap<AddrKey, u64>,
    /// Rates of each source over the last interval (sources with traffic only).
    pub rates: Vec<(AddrKey, Rates)>,
}

impl Detector {
    /// A detector with `thresholds`, whose distinct counts cover windows of `window_s`.
    pub fn new(thresholds: Thresholds, window_s: f64) -> Self {
        Detector {
            thresholds,
            window_s,
            last_mono_ns: None,
            prev_src: HashMap::new(),
            prev_dst: HashMap::new(),
            rates: Vec::new(),
        }
    }

    /// Findings for one reading. The first reading only sets the baseline for rates.
    pub fn evaluate(&mut self, snap: &Snapshot) -> Vec<Finding> {
        let t = &self.thresholds;
        let mut out = Vec::new();
        let dt_s = self
            .last_mono_ns
            .map(|prev| snap.mono_ns.saturating_sub(prev) as f64 / 1e9)
            .filter(|dt| *dt > 0.0);
        let since_ns = self.last_mono_ns.unwrap_or(0);
        self.rates.clear();
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
            if st.epoch == snap.epoch {
                out.extend(scan_findings(t, self.window_s, key, st));
            }
            let Some(dt) = dt_s else { continue };
            if st.last_seen_ns < since_ns {
                continue; // nothing new since the last reading
            }
            // Same entry as last time (not evicted and recreated): difference of totals;
            // otherwise everything it holds is new.
            let base = self.prev_src.get(key).filter(|p| p.first_seen_ns == st.first_seen_ns);
            let d = |cur: u64, f: fn(&Prev) -> u64| {
                cur.saturating_sub(base.map(f).unwrap_or(0)) as f64 / dt
            };
            let r = Rates {
                packets: d(st.packets, |p| p.packets),
                bytes: d(st.bytes, |p| p.bytes),
                syn: d(st.syn, |p| p.syn),
                udp: d(st.udp, |p| p.udp),
                icmp: d(st.icmp, |p| p.icmp),
            };
            if r.packets > 0.0 {
                self.rates.push((*key, r));
            }
            out.extend(flood_findings(t, dt, key, st, &r));
        }
        self.prev_src = next_src;

        let mut next_dst = HashMap::with_capacity(snap.dests.len());
        for (key, st) in &snap.dests {
            next_dst.insert(*key, st.syn_in);
            let Some(dt) = dt_s else { continue };
            let base = self.prev_dst.get(key).copied().unwrap_or(0);
            let base = if base > st.syn_in { 0 } else { base };
            let rate = (st.syn_in - base) as f64 / dt;
            if let Some(f) = dst_flood_finding(t, dt, key, st, snap.epoch, rate) {
                out.push(f);
            }
        }
        self.prev_dst = next_dst;
        self.last_mono_ns = Some(snap.mono_ns);
        out
    }
}

fn scan_findings(t: &Thresholds, window_s: f64, key: &AddrKey, st: &SrcState) -> Vec<Finding> {
    let mut out = Vec::new();
    let ports = st.distinct_ports();
    let hosts = st.distinct_hosts();
    let base = |rule, d: agent_common::sketch::Distinct, threshold: u32, unit| Finding {
        rule,
        scope: Scope::Source,
        source: Some(key.ip()),
        destination: Some(AddrKey { addr: st.last_dst }.ip()),
        value: d.value as f64,
        threshold: threshold as f64,
        unit,
        window_s,
        estimated: !d.exact,
        details: Details {
            ports: st.ports_seen(),
            distinct_ports: Some(ports.value),
            distinct_hosts: Some(hosts.value),
            packets: Some(st.packets),
            ..Details::default()
        },
    };
    if ports.value >= t.port_scan_ports {
        out.push(base(Rule::PortScan, ports, t.port_scan_ports, "ports"));
    }
    if hosts.value >= t.host_sweep_hosts {
        let mut f = base(Rule::HostSweep, hosts, t.host_sweep_hosts, "hosts");
        f.destination = None;
        out.push(f);
    }
    out
}

fn flood_findings(t: &Thresholds, dt: f64, key: &AddrKey, st: &SrcState, r: &Rates) -> Vec<Finding> {
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
        unit: "packets/s",
        window_s: dt,
        estimated: false,
        details: Details { packets: Some(st.packets), ..Details::default() },
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
    let ratio = if st.syn_in > 0 { st.synack_out as f64 / st.syn_in as f64 } else { 0.0 };
    Some(Finding {
        rule: Rule::SynFlood,
        scope: Scope::Destination,
        source: None,
        destination: Some(key.ip()),
        value: rate.round(),
        threshold: t.syn_flood_dst_pps,
        unit: "packets/s",
        window_s: dt,
        estimated: false,
        details: Details {
            distinct_sources: Some(sources.value),
            synack_ratio: Some((ratio * 1000.0).round() / 1000.0),
            ..Details::default()
        },
    })
}
