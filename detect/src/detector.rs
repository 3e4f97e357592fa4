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
    /// SYN rate from one source, or towards one destination that does not complete them.
    SynFlood,
    /// UDP rate from one source, or towards one destination that does not answer.
    UdpFlood,
    /// ICMP/ICMPv6 rate from one source, or towards one destination.
    IcmpFlood,
    /// TCP without SYN (ACK, RST, FIN, …) towards one destination that does not answer.
    TcpFlood,
    /// IP fragments towards one destination that does not answer.
    FragFlood,
    /// Other IP protocols (GRE, ESP, …) towards one destination that does not answer.
    ProtoFlood,
    /// Answers from reflector ports (DNS, NTP, …) towards one destination that did not ask.
    Reflection,
}

impl Rule {
    /// Every rule.
    pub const ALL: [Rule; 9] = [
        Rule::PortScan,
        Rule::HostSweep,
        Rule::SynFlood,
        Rule::UdpFlood,
        Rule::IcmpFlood,
        Rule::TcpFlood,
        Rule::FragFlood,
        Rule::ProtoFlood,
        Rule::Reflection,
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
    /// Bits per second (on the wire).
    #[strum(serialize = "bits/s")]
    BitsPerSecond,
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
    /// `port_scan` and `host_sweep`: ... while at least this share of the source's probes
    /// (this window and the previous one) drew no answer accepting them.
    pub scan_failure_ratio: f64,
    /// `syn_flood` (source): SYNs per second from one source.
    pub syn_flood_pps: f64,
    /// `syn_flood` (destination): SYNs per second towards one destination...
    pub syn_flood_dst_pps: f64,
    /// ...followed by fewer ACK-class packets to it than this fraction of the SYNs.
    pub syn_flood_dst_ack_ratio: f64,
    /// `udp_flood`: UDP packets per second from one source.
    pub udp_flood_pps: f64,
    /// `udp_flood` (destination): UDP packets per second towards one destination...
    pub udp_flood_dst_pps: f64,
    /// ...or UDP bits per second towards it.
    pub udp_flood_dst_bps: f64,
    /// `icmp_flood`: ICMP/ICMPv6 packets per second from one source.
    pub icmp_flood_pps: f64,
    /// `icmp_flood` (destination): ICMP/ICMPv6 requests, or unsolicited replies and errors,
    /// per second towards one destination.
    pub icmp_flood_dst_pps: f64,
    /// `tcp_flood` (destination): TCP packets without SYN per second towards one destination.
    pub tcp_flood_pps: f64,
    /// `frag_flood` (destination): IP fragments per second towards one destination.
    pub frag_flood_pps: f64,
    /// `proto_flood` (destination): packets of other IP protocols per second towards one
    /// destination.
    pub proto_flood_pps: f64,
    /// `reflection` (destination): UDP packets per second from reflector ports towards one
    /// destination...
    pub reflection_pps: f64,
    /// ...or bits per second.
    pub reflection_bps: f64,
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
    /// * `scan_failure_ratio = 0.5`: a scan or sweep counts only when at least half of the
    ///   source's probes drew no accepting answer (SYN-ACK, UDP, ICMP reply; RSTs and ICMP
    ///   errors are refusals). Zeek's scan policy counts failed connections only; Snort counts
    ///   negative responses. A monitoring system, a NAT gateway or a resolver reaching many
    ///   hosts is answered; a scanner mostly is not. *Trade-off:* a scanner that pads its
    ///   probes with as many successful connections escapes, and with one direction in view
    ///   every probe counts as failed. 0 turns the condition off.
    /// * `syn_flood_pps = 1000`: `hping3 --flood` sends tens of thousands of SYNs per second;
    ///   default-speed `nmap -sS` stays in the hundreds, and a legitimate client rarely opens
    ///   a thousand connections per second to one host.
    /// * `syn_flood_dst_pps = 2000` with `syn_flood_dst_ack_ratio = 0.2`: a spoofed or
    ///   botnet flood spreads over many sources, each below every per-source bar, and its
    ///   SYNs are never followed by the handshake's ACK (spoofed sources never see the
    ///   SYN-ACK; real bots answer it with RST). A busy server at 2 400 connections/s gets at
    ///   least one ACK-class packet per SYN (the handshake's last ACK, then data and FIN), so
    ///   its ratio is ≥ 1. SYN cookies do not change this: they answer every SYN.
    /// * `udp_flood_pps = 20000`: above a fast QUIC or media stream from one peer (~10 k
    ///   packets/s at 100 Mbit/s), far below a flood tool's rate.
    /// * `udp_flood_dst_pps = 50000` or `udp_flood_dst_bps = 500 Mbit/s`, while the
    ///   destination sends back under 1 % as much UDP: a QUIC download or RTP call is two-way
    ///   (the client ACKs at ≥ 5 %), a flood is one-way.
    /// * `icmp_flood_pps = 1000`: `ping` sends 1/s, `ping -f` hundreds to thousands.
    /// * `icmp_flood_dst_pps = 5000`: requests, or replies and errors the destination never
    ///   asked for (it sent under 1 % as many requests); ping and mtr send 1–10 per second.
    /// * `tcp_flood_pps = 20000` small segments (bare ACK, RST, FIN: ≤ 128 bytes), while the
    ///   destination sends back (other than RST) under 1 % as many TCP packets: an ACK or RST
    ///   flood draws only RSTs, or nothing. A download's data segments are large, and are not
    ///   counted: its receiver, coalescing them (GRO), may ACK well under 1 % of them (seen on
    ///   veth: 115 000 segments/s in, under 1 % ACKed). *Trade-off:* an ACK flood padded past
    ///   128 bytes is a bandwidth flood this rule does not see.
    /// * `frag_flood_pps = 20000` and `proto_flood_pps = 20000`, while the destination sends
    ///   back under 1 % as many packets (of that protocol): NFS over UDP, big DNS answers,
    ///   tunnels and IPsec peers are two-way.
    /// * `reflection_pps = 5000` or `reflection_bps = 50 Mbit/s` from ≥ 10 reflectors, while
    ///   the destination sent under 10 % as many requests to reflector ports: a resolver asks
    ///   about as often as it is answered; amplified answers are large (DNS ANY ≈ 3 000 B,
    ///   NTP monlist ≈ 468 B), hence the bit rate.
    fn default() -> Self {
        Thresholds {
            port_scan_ports: 30,
            host_sweep_hosts: 64,
            scan_failure_ratio: 0.5,
            syn_flood_pps: 1000.0,
            syn_flood_dst_pps: 2000.0,
            syn_flood_dst_ack_ratio: 0.2,
            udp_flood_pps: 20_000.0,
            udp_flood_dst_pps: 50_000.0,
            udp_flood_dst_bps: 500e6,
            icmp_flood_pps: 1000.0,
            icmp_flood_dst_pps: 5000.0,
            tcp_flood_pps: 20_000.0,
            frag_flood_pps: 20_000.0,
            proto_flood_pps: 20_000.0,
            reflection_pps: 5000.0,
            reflection_bps: 50e6,
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
    /// ACK-class packets received per SYN received (destination-scoped `syn_flood`): about
    /// 0 for a flood, 1 or more for a busy server.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ack_ratio: Option<f64>,
    /// Mean bytes per packet from the reflectors (`reflection`: the amplification).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes_per_packet: Option<f64>,
    /// Distinct hosts probed in the window.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub distinct_hosts: Option<u32>,
    /// Distinct ports probed in the window.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub distinct_ports: Option<u32>,
    /// Distinct sources (destination-scoped floods; 128-bit estimate, saturates near 620).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub distinct_sources: Option<u32>,
    /// Share of the source's probes in the window that drew no answer accepting them (scans;
    /// see [`Thresholds::scan_failure_ratio`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure_ratio: Option<f64>,
    /// Source-scoped findings folded into this destination-scoped one.
    #[serde(skip_serializing_if = "is_zero")]
    pub folded: u32,
    /// Packets from the source: its probes since its entry was created (scans), or its
    /// packets in the window (floods; a lower bound).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub packets: Option<u64>,
    /// Probed ports (exact set, first 64), for scans.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<u16>,
    /// Distinct reflectors (`reflection`; 64-bit estimate, saturates near 260).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reflectors: Option<u32>,
    /// True when a distinct count reached the estimator's capacity (about 7000): the
    /// count is then a lower bound.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub saturated: bool,
    /// SYN-ACKs sent per SYN received (destination-scoped floods).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub synack_ratio: Option<f64>,
    /// First fragments too short for their L4 header that the source sent in the window
    /// (`nmap -f`, `--mtu 16`): the scan tried to slip past filters.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tiny_fragments: Option<u64>,
    /// The tunnel the source's latest tunnelled probe came through (a pod scanning pods
    /// across nodes): the source and destination are the inner addresses, these the
    /// tunnel endpoints.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tunnel: Option<TunnelInfo>,
}

/// A tunnel's endpoints, as kept for a probing source ([`SrcState::tunnel_kind`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TunnelInfo {
    /// `vxlan`, `geneve`, `gre`, `ipip`, `6in4`, `4in6` or `6in6`.
    pub kind: &'static str,
    /// Outer destination (the receiving tunnel endpoint).
    pub outer_dst: IpAddr,
    /// Outer source (the sending tunnel endpoint, e.g. the scanning pod's node).
    pub outer_src: IpAddr,
    /// VXLAN/Geneve VNI or GRE key (0 when the tunnel has none).
    pub vni: u32,
}

impl TunnelInfo {
    /// The tunnel a source's state records, if any.
    pub fn of(st: &SrcState) -> Option<Self> {
        let kind = *agent_common::tunnel::ENCAP_NAMES.get(usize::from(st.tunnel_kind))?;
        (st.tunnel_kind != 0).then(|| TunnelInfo {
            kind,
            outer_dst: AddrKey {
                addr: st.tunnel_dst,
            }
            .ip(),
            outer_src: AddrKey {
                addr: st.tunnel_src,
            }
            .ip(),
            vni: st.tunnel_vni,
        })
    }
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// Fractions the destination must send back under for a one-way flood (see
/// [`Thresholds::default`]).
const TCP_ANSWER_MAX: f64 = 0.01;
const ONE_WAY_MAX: f64 = 0.01;
const REFLECTION_ASKED_MAX: f64 = 0.10;
/// Fewest distinct reflectors for `reflection`.
const MIN_REFLECTORS: u32 = 10;

/// Probes a source sent and answers accepting them it received.
#[derive(Clone, Copy, Debug, Default)]
struct Outcome {
    sent: u64,
    accepted: u64,
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
    /// Sources with a UDP flood finding, and destinations with a flood finding, and when: a
    /// flood to random ports is not also a scan.
    flooding: HashMap<AddrKey, u64>,
    flooded: HashMap<IpAddr, u64>,
    /// Tiny first fragments per source in the window, and when the latest came.
    tiny: HashMap<AddrKey, (u64, u64)>,
    /// The tunnel of each probing source whose probes came tunnelled, from the latest map
    /// read.
    tunnels: HashMap<AddrKey, TunnelInfo>,
    /// Probes sent and answers accepting them received, per probing source: this window's
    /// and the previous window's.
    outcomes: HashMap<AddrKey, Outcome>,
    prev_outcomes: HashMap<AddrKey, Outcome>,
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
            flooding: HashMap::new(),
            flooded: HashMap::new(),
            tiny: HashMap::new(),
            tunnels: HashMap::new(),
            outcomes: HashMap::new(),
            prev_outcomes: HashMap::new(),
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
            self.prev_outcomes = std::mem::take(&mut self.outcomes);
            self.epoch = snap.epoch;
        }
        self.last_probes = Some(snap.globals[0].probes);
        if snap.maps_read {
            self.read_scan_counts(snap);
        }
        // What each address received this tick, looked up by the flood and outcome rules.
        let recv: HashMap<[u64; 2], &DstSlot> =
            snap.tick.dst.iter().map(|d| (d.head.addr, d)).collect();
        out.extend(self.flood_findings(&snap.tick, &recv, snap.mono_ns));
        self.count_outcomes(&snap.tick, &recv);
        let t = &self.thresholds;
        let keys: std::collections::BTreeSet<&AddrKey> = self
            .window_counts
            .keys()
            .chain(self.prev_window_counts.keys())
            .collect();
        // A source that flooded with UDP within the last window, or a destination flooded
        // with UDP or TCP within it: the spread of ports is the flood's, not a scan's. A SYN
        // flood hides no scan (a scan inside a spoofed SYN flood is still reported), and a
        // fast SYN scan from one source stays a scan (it may raise syn_flood as well).
        let recent = (self.window_s * 1e9) as u64;
        self.flooding
            .retain(|_, at| snap.mono_ns.saturating_sub(*at) <= recent);
        self.flooded
            .retain(|_, at| snap.mono_ns.saturating_sub(*at) <= recent);
        for s in snap.tick.src.iter().filter(|s| s.tiny_frag > 0) {
            let key = AddrKey {
                addr: s.head.addr_bytes(),
            };
            let e = self.tiny.entry(key).or_insert((0, 0));
            *e = (e.0 + u64::from(s.tiny_frag), snap.mono_ns);
        }
        self.tiny
            .retain(|_, (_, at)| snap.mono_ns.saturating_sub(*at) <= recent);
        for key in keys {
            let mut found = scan_findings(
                t,
                self.window_s,
                key,
                self.window_counts.get(key),
                self.prev_window_counts.get(key),
            );
            let flooded =
                |f: &Finding| f.destination.is_some_and(|d| self.flooded.contains_key(&d));
            if self.flooding.contains_key(key) {
                found.retain(|f| f.rule != Rule::PortScan);
            }
            found.retain(|f| f.rule != Rule::PortScan || !flooded(f));
            if let Some((n, _)) = self.tiny.get(key) {
                for f in &mut found {
                    f.details.tiny_fragments = Some(*n);
                }
            }
            if let Some(tunnel) = self.tunnels.get(key) {
                for f in &mut found {
                    f.details.tunnel = Some(tunnel.clone());
                }
            }
            if let Some(failure) = self.failure_ratio(key) {
                found.retain(|_| failure >= t.scan_failure_ratio);
                for f in &mut found {
                    f.details.failure_ratio = Some((failure * 1000.0).round() / 1000.0);
                }
            }
            out.extend(found);
        }
        out
    }

    /// Fresh window counts and probe destinations from a reading that includes the map.
    fn read_scan_counts(&mut self, snap: &Snapshot) {
        let t = &self.thresholds;
        self.last_dst.clear();
        self.tunnels.clear();
        for (key, st) in &snap.sources {
            self.last_dst.insert(*key, st.last_dst);
            if let Some(tunnel) = TunnelInfo::of(st) {
                self.tunnels.insert(*key, tunnel);
            }
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

    /// Adds the tick's probes and accepting answers of every probing source (those the last
    /// map read found). Accepting answers are what the source received: SYN-ACKs, UDP, and
    /// ICMP replies; RSTs and ICMP errors are refusals.
    fn count_outcomes(&mut self, tick: &TickCounts, recv: &HashMap<[u64; 2], &DstSlot>) {
        for s in &tick.src {
            let key = AddrKey {
                addr: s.head.addr_bytes(),
            };
            if !self.last_dst.contains_key(&key) {
                continue;
            }
            let sent = u64::from(s.syn) + u64::from(s.udp) + u64::from(s.icmp_req);
            let accepted = recv.get(&s.head.addr).map_or(0, |d| {
                u64::from(d.synack_p)
                    + u64::from(d.udp_p)
                    + u64::from(d.icmp_other_p.saturating_sub(d.icmp_err_p))
            });
            let o = self.outcomes.entry(key).or_default();
            o.sent += sent;
            o.accepted += accepted;
        }
    }

    /// Share of `key`'s probes over this and the previous window that were not accepted.
    fn failure_ratio(&self, key: &AddrKey) -> Option<f64> {
        let mut o = self.outcomes.get(key).copied().unwrap_or_default();
        if let Some(p) = self.prev_outcomes.get(key) {
            o.sent += p.sent;
            o.accepted += p.accepted;
        }
        (o.sent > 0).then(|| 1.0 - (o.accepted as f64 / o.sent as f64).min(1.0))
    }

    /// Floods in the tick that has just ended: per source from what it sent, per destination
    /// from what it received and sent back. Every count is a lower bound (see
    /// `agent_common::slots`). One attack makes one finding: a destination flood that its
    /// flagged sources explain (half of its rate or more) is left to them; otherwise their
    /// findings fold into it. A reflection is not also a UDP or fragment flood, nor a
    /// fragment flood also a UDP flood.
    fn flood_findings(
        &mut self,
        tick: &TickCounts,
        recv: &HashMap<[u64; 2], &DstSlot>,
        now_ns: u64,
    ) -> Vec<Finding> {
        if tick.secs <= 0.0 {
            return Vec::new();
        }
        let t = &self.thresholds;
        let mut src: Vec<Finding> = tick
            .src
            .iter()
            .flat_map(|s| {
                let back = recv.get(&s.head.addr).copied();
                src_flood_findings(t, tick.secs, s, back, &self.last_dst)
            })
            .collect();
        let sent: HashMap<[u64; 2], &SrcSlot> = tick.src.iter().map(|s| (s.head.addr, s)).collect();
        let mut dst = Vec::new();
        for d in &tick.dst {
            let mut found = dst_flood_findings(t, tick.secs, d, sent.get(&d.head.addr).copied());
            let has = |f: &[Finding], r: Rule| f.iter().any(|f| f.rule == r);
            if has(&found, Rule::Reflection) {
                found.retain(|f| !matches!(f.rule, Rule::UdpFlood | Rule::FragFlood));
            } else if has(&found, Rule::FragFlood) {
                found.retain(|f| f.rule != Rule::UdpFlood);
            }
            dst.extend(found);
        }
        dst.retain_mut(|f| {
            let family = |r: Rule| match r {
                Rule::FragFlood | Rule::Reflection => Rule::UdpFlood,
                r => r,
            };
            let mine = |s: &Finding| {
                family(s.rule) == family(f.rule)
                    && s.destination.is_none_or(|d| Some(d) == f.destination)
            };
            let covered: f64 = src.iter().filter(|s| mine(s)).map(|s| s.value).sum();
            if covered >= f.value / 2.0 {
                return false;
            }
            let before = src.len();
            src.retain(|s| !mine(s));
            f.details.folded = (before - src.len()) as u32;
            true
        });
        for f in src.iter().filter(|f| f.rule == Rule::UdpFlood) {
            if let Some(ip) = f.source {
                self.flooding.insert(AddrKey::from_ip(ip), now_ns);
            }
        }
        for f in dst
            .iter()
            .filter(|f| matches!(f.rule, Rule::UdpFlood | Rule::TcpFlood))
        {
            if let Some(ip) = f.destination {
                self.flooded.insert(ip, now_ns);
            }
        }
        src.extend(dst);
        src
    }
}

/// Floods from the sender of `s`; `back` is what it received in the same tick.
fn src_flood_findings(
    t: &Thresholds,
    secs: f64,
    s: &SrcSlot,
    back: Option<&DstSlot>,
    last_dst: &HashMap<AddrKey, [u8; 16]>,
) -> Vec<Finding> {
    let key = AddrKey {
        addr: s.head.addr_bytes(),
    };
    // UDP only counts one-way: a QUIC or media server streaming to a client is ACKed back.
    let udp_answered = back.is_some_and(|b| f64::from(b.udp_p) >= ONE_WAY_MAX * f64::from(s.udp));
    let udp = if udp_answered { 0 } else { s.udp };
    [
        (Rule::SynFlood, s.syn, t.syn_flood_pps),
        (Rule::UdpFlood, udp, t.udp_flood_pps),
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

/// True for multicast and broadcast destinations, which no flood rule reports: many hosts
/// legitimately send to them and none answers.
fn group_address(a: &[u8; 16]) -> bool {
    match (AddrKey { addr: *a }).ip() {
        IpAddr::V4(v4) => v4.is_multicast() || v4.is_broadcast() || v4.octets()[3] == 255,
        IpAddr::V6(v6) => v6.is_multicast(),
    }
}

/// Floods at the destination of `d`; `back` is what it sent in the same tick.
fn dst_flood_findings(
    t: &Thresholds,
    secs: f64,
    d: &DstSlot,
    back: Option<&SrcSlot>,
) -> Vec<Finding> {
    let addr = d.head.addr_bytes();
    if group_address(&addr) {
        return Vec::new();
    }
    let back = back.copied().unwrap_or_default();
    let rate = |n: u32| f64::from(n) / secs;
    let bits = |b: u32| f64::from(b) * 8.0 / secs;
    let under = |sent: u32, recv: u32, max: f64| f64::from(sent) < max * f64::from(recv);
    let mut out = Vec::new();
    let mut push = |rule: Rule, value: f64, threshold: f64, unit: Unit, details: Details| {
        out.push(Finding {
            rule,
            scope: Scope::Destination,
            source: None,
            destination: Some(AddrKey { addr }.ip()),
            value: value.round(),
            threshold,
            unit,
            window_s: secs,
            estimated: false,
            details: Details {
                distinct_sources: Some(d.distinct_sources().value),
                saturated: d.distinct_sources().saturated,
                packets: Some(u64::from(d.head.pkts_lower())),
                ..details
            },
        });
    };
    // SYNs not followed by the handshake's ACK: ACK-class packets the destination received.
    let acks = d.tcp_p.saturating_sub(d.rst_p).saturating_sub(d.synack_p);
    if rate(d.syn_p) >= t.syn_flood_dst_pps
        && f64::from(acks) < t.syn_flood_dst_ack_ratio * f64::from(d.syn_p)
    {
        let ratio = |n: u32| (f64::from(n) / f64::from(d.syn_p.max(1)) * 1000.0).round() / 1000.0;
        push(
            Rule::SynFlood,
            rate(d.syn_p),
            t.syn_flood_dst_pps,
            Unit::PacketsPerSecond,
            Details {
                synack_ratio: Some(ratio(u32::from(back.synack))),
                ack_ratio: Some(ratio(acks)),
                ..Details::default()
            },
        );
    }
    // What the destination sent back that a flood target does not: ACK-class segments,
    // SYN-ACKs, and its own SYNs (RSTs answering them are backscatter of its scan or flood,
    // not an attack on it).
    let tcp_back = back
        .tcp_other
        .saturating_add(u32::from(back.synack))
        .saturating_add(back.syn);
    // Small segments only: the data of a download arrives in large ones, and a receiver
    // coalescing them (GRO) ACKs under 1 % of them.
    if rate(d.tcp_small_p) >= t.tcp_flood_pps && under(tcp_back, d.tcp_small_p, TCP_ANSWER_MAX) {
        push(
            Rule::TcpFlood,
            rate(d.tcp_small_p),
            t.tcp_flood_pps,
            Unit::PacketsPerSecond,
            Details::default(),
        );
    }
    if under(back.udp, d.udp_p, ONE_WAY_MAX) {
        if rate(d.udp_p) >= t.udp_flood_dst_pps {
            push(
                Rule::UdpFlood,
                rate(d.udp_p),
                t.udp_flood_dst_pps,
                Unit::PacketsPerSecond,
                Details::default(),
            );
        } else if bits(d.udp_b) >= t.udp_flood_dst_bps {
            push(
                Rule::UdpFlood,
                bits(d.udp_b),
                t.udp_flood_dst_bps,
                Unit::BitsPerSecond,
                Details::default(),
            );
        }
    }
    let unsolicited = under(u32::from(back.icmp_req), d.icmp_other_p, ONE_WAY_MAX);
    let icmp = d
        .icmp_req_p
        .max(if unsolicited { d.icmp_other_p } else { 0 });
    if rate(icmp) >= t.icmp_flood_dst_pps {
        push(
            Rule::IcmpFlood,
            rate(icmp),
            t.icmp_flood_dst_pps,
            Unit::PacketsPerSecond,
            Details::default(),
        );
    }
    if rate(d.frag_p) >= t.frag_flood_pps && under(back.head.pkts, d.frag_p, ONE_WAY_MAX) {
        push(
            Rule::FragFlood,
            rate(d.frag_p),
            t.frag_flood_pps,
            Unit::PacketsPerSecond,
            Details::default(),
        );
    }
    if rate(d.other_p) >= t.proto_flood_pps && under(u32::from(back.other), d.other_p, ONE_WAY_MAX)
    {
        push(
            Rule::ProtoFlood,
            rate(d.other_p),
            t.proto_flood_pps,
            Unit::PacketsPerSecond,
            Details::default(),
        );
    }
    let reflectors = d.distinct_reflectors();
    if reflectors.value >= MIN_REFLECTORS
        && under(u32::from(back.refl_req), d.refl_p, REFLECTION_ASKED_MAX)
    {
        // Amplified answers are often fragmented, and later fragments carry no port: when
        // nearly every UDP datagram comes from a reflector port, all UDP bytes (fragments
        // included) are the reflection's.
        let datagrams = d.udp_p.saturating_sub(d.udp_later_p);
        let refl_b = if f64::from(d.refl_p) >= 0.9 * f64::from(datagrams) {
            d.refl_b.max(d.udp_b)
        } else {
            d.refl_b
        };
        let bytes_per_packet = Some(f64::from(refl_b) / f64::from(d.refl_p.max(1)));
        let details = Details {
            reflectors: Some(reflectors.value),
            bytes_per_packet: bytes_per_packet.map(f64::round),
            ..Details::default()
        };
        if rate(d.refl_p) >= t.reflection_pps {
            push(
                Rule::Reflection,
                rate(d.refl_p),
                t.reflection_pps,
                Unit::PacketsPerSecond,
                details,
            );
        } else if bits(refl_b) >= t.reflection_bps {
            push(
                Rule::Reflection,
                bits(refl_b),
                t.reflection_bps,
                Unit::BitsPerSecond,
                details,
            );
        }
    }
    out
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
    fn a_scan_inside_vxlan_names_the_inner_source_and_the_tunnel() {
        let t = Thresholds::default();
        let node_a = Ipv4Addr::new(10, 0, 0, 1);
        let node_b = Ipv4Addr::new(10, 0, 0, 2);
        let mut m = HostMaps::new();
        let mut d = Detector::new(t.clone(), 10.0);
        for p in 0..t.port_scan_ports {
            let inner = syn(SCANNER, VICTIM, 40000, 1000 + p as u16);
            let body = frames::tunnels::vxlan(77, &inner);
            let outer = frames::ipv4(
                node_a,
                node_b,
                IPPROTO_UDP,
                0,
                &frames::udp(50000 + p as u16, 4789, &body),
            );
            feed(&mut m, &outer, DIR_INGRESS, SEC);
        }
        let f = d.evaluate(&read(&mut m, SEC));
        let scan = f
            .iter()
            .find(|f| f.rule == Rule::PortScan)
            .expect("a port scan");
        assert_eq!(scan.source, Some(SCANNER.into()));
        assert_eq!(scan.destination, Some(VICTIM.into()));
        assert_eq!(
            scan.details.tunnel,
            Some(TunnelInfo {
                kind: "vxlan",
                outer_src: node_a.into(),
                outer_dst: node_b.into(),
                vni: 77,
            })
        );
        // The tunnel endpoints are not the scanner: no finding names them.
        assert!(f.iter().all(|f| f.source != Some(node_a.into())), "{f:?}");
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

    /// Feeds `n` copies of `frame` from `src` to `dst` (and `back` answers) in one tick and
    /// returns the findings of that tick.
    fn one_tick(frames_in: &[(Vec<u8>, u32)]) -> Vec<(Rule, Scope)> {
        let mut m = HostMaps::new();
        let mut d = Detector::new(Thresholds::default(), 10.0);
        d.evaluate(&read(&mut m, SEC));
        for (frame, n) in frames_in {
            for _ in 0..*n {
                feed(&mut m, frame, DIR_INGRESS, SEC + 1);
            }
        }
        let mut f = rules(&d.evaluate(&read(&mut m, 2 * SEC)));
        f.sort();
        f
    }

    fn from(i: u32) -> Ipv4Addr {
        Ipv4Addr::from(0x0b00_0000 + i * 7919)
    }

    #[test]
    fn one_way_floods_at_a_destination_for_every_protocol() {
        let spread = |l4: &dyn Fn(u32) -> (u8, u16, Vec<u8>), n: u32| -> Vec<(Vec<u8>, u32)> {
            (0..n)
                .map(|i| {
                    let (proto, frag, l4) = l4(i);
                    (frames::ipv4(from(i % 200), VICTIM, proto, frag, &l4), 1)
                })
                .collect()
        };
        let ack = |i: u32| (IPPROTO_TCP, 0, frames::tcp(1024 + i as u16, 80, TCP_ACK));
        assert_eq!(
            one_tick(&spread(&ack, 25_000)),
            vec![(Rule::TcpFlood, Scope::Destination)]
        );
        let gre = |_| (47, 0, vec![0u8; 8]);
        assert_eq!(
            one_tick(&spread(&gre, 25_000)),
            vec![(Rule::ProtoFlood, Scope::Destination)]
        );
        let later = |_| (IPPROTO_UDP, 185, vec![0u8; 64]);
        assert_eq!(
            one_tick(&spread(&later, 25_000)),
            vec![(Rule::FragFlood, Scope::Destination)]
        );
        let udp = |i: u32| (IPPROTO_UDP, 0, frames::udp(40000, i as u16, b"x"));
        assert_eq!(
            one_tick(&spread(&udp, 55_000)),
            vec![(Rule::UdpFlood, Scope::Destination)]
        );
        let dns = |_| (IPPROTO_UDP, 0, frames::udp(53, 4444, &[0u8; 64]));
        assert_eq!(
            one_tick(&spread(&dns, 6_000)),
            vec![(Rule::Reflection, Scope::Destination)]
        );
        let ping = |_| (IPPROTO_ICMP, 0, frames::icmp(8, 0));
        assert_eq!(
            one_tick(&spread(&ping, 6_000)),
            vec![(Rule::IcmpFlood, Scope::Destination)]
        );
    }

    #[test]
    fn two_way_traffic_is_not_a_flood() {
        // A download: 25 000 segments in, an ACK out for every second one.
        let data = frames::ipv4(
            SCANNER,
            VICTIM,
            IPPROTO_TCP,
            0,
            &frames::tcp(443, 5000, TCP_ACK),
        );
        let acks = frames::ipv4(
            VICTIM,
            SCANNER,
            IPPROTO_TCP,
            0,
            &frames::tcp(5000, 443, TCP_ACK),
        );
        assert!(one_tick(&[(data, 25_000), (acks, 12_500)]).is_empty());
        // A QUIC download: 30 000 datagrams in, the client's ACKs at 10 %.
        let quic = frames::ipv4(
            SCANNER,
            VICTIM,
            IPPROTO_UDP,
            0,
            &frames::udp(443, 5000, b"q"),
        );
        let back = frames::ipv4(
            VICTIM,
            SCANNER,
            IPPROTO_UDP,
            0,
            &frames::udp(5000, 443, b"a"),
        );
        assert!(one_tick(&[(quic, 30_000), (back, 3_000)]).is_empty());
        // A resolver: as many answers from port 53 as queries to it (50 servers: fewer
        // than a host sweep).
        let answers: Vec<(Vec<u8>, u32)> = (0..50)
            .flat_map(|i| {
                let a = frames::udp(53, 4000, &[0u8; 64]);
                let q = frames::udp(4000, 53, b"q");
                [
                    (frames::ipv4(from(i), VICTIM, IPPROTO_UDP, 0, &a), 120),
                    (frames::ipv4(VICTIM, from(i), IPPROTO_UDP, 0, &q), 120),
                ]
            })
            .collect();
        assert!(one_tick(&answers).is_empty());
    }

    #[test]
    fn a_busy_server_completes_its_handshakes() {
        // 3 000 connections in a second from 500 clients: SYN, then the handshake's ACK.
        let mut f = Vec::new();
        for i in 0..3000u32 {
            let c = from(i % 500);
            f.push((syn(c, VICTIM, 1024 + (i / 500) as u16, 80), 1));
            let ack = frames::tcp(1024 + (i / 500) as u16, 80, TCP_ACK);
            f.push((frames::ipv4(c, VICTIM, IPPROTO_TCP, 0, &ack), 1));
        }
        assert!(one_tick(&f).is_empty());
    }

    #[test]
    fn a_flood_explained_by_its_source_is_reported_once() {
        // One source at 5 000 SYN/s: its own finding, not also one at the destination.
        let mut m = HostMaps::new();
        let mut d = Detector::new(Thresholds::default(), 10.0);
        d.evaluate(&read(&mut m, SEC));
        for i in 0..5000u16 {
            feed(&mut m, &syn(SCANNER, VICTIM, i, 80), DIR_INGRESS, SEC + 1);
        }
        let f = d.evaluate(&read(&mut m, 2 * SEC));
        assert_eq!(rules(&f), vec![(Rule::SynFlood, Scope::Source)]);
    }

    #[test]
    fn answered_sweeps_are_not_scans() {
        // A monitoring system connecting to 100 targets that all accept: quiet; the same
        // sweep refused by RSTs: a sweep.
        for (answer, expect) in [
            (TCP_SYN | TCP_ACK, 0),
            (agent_common::classify::TCP_RST | TCP_ACK, 1),
        ] {
            let mut m = HostMaps::new();
            let mut d = Detector::new(Thresholds::default(), 10.0);
            d.evaluate(&read(&mut m, SEC));
            for h in 0..100u8 {
                let target = Ipv4Addr::new(10, 1, 0, h);
                feed(
                    &mut m,
                    &syn(SCANNER, target, 40000, 9100),
                    DIR_INGRESS,
                    SEC + 1,
                );
                let reply = frames::ipv4(
                    target,
                    SCANNER,
                    IPPROTO_TCP,
                    0,
                    &frames::tcp(9100, 40000, answer),
                );
                feed(&mut m, &reply, DIR_EGRESS, SEC + 1);
            }
            let f = d.evaluate(&read(&mut m, 2 * SEC));
            let sweeps: Vec<_> = f.iter().filter(|f| f.rule == Rule::HostSweep).collect();
            assert_eq!(sweeps.len(), expect, "{f:?}");
            if let Some(f) = sweeps.first() {
                assert_eq!(f.details.failure_ratio, Some(1.0));
            }
        }
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
