//! Detectors: turn successive [`Snapshot`]s into findings, one per offender and rule, each
//! time the state is read. Thresholds and windows live here, not in the kernel.

use std::net::IpAddr;

use crate::HashMap;

use agent_common::{
    slots::{DstSlot, SrcSlot, words_to_bytes},
    state::{AddrKey, Globals, SrcState},
};
use serde::{Deserialize, Serialize};

use crate::{
    ack_sweeps::{AckSweep, AckSweeps},
    probes::ProbeGroup,
    snapshot::{Snapshot, TickCounts},
    windows::{Bars, Hit, OutcomeCounts, Scale, SetKey, WindowSets},
};

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
    /// Many sources probing one destination, each below its own bar (`crate::many_to_one`).
    DistributedScan,
    /// Several sources scanning one destination with the same ports: one scanner hiding
    /// among decoys (`nmap -D`); one episode about the target (`crate::folding`).
    DecoyScan,
}

impl Rule {
    /// Every rule.
    pub const ALL: [Rule; 11] = [
        Rule::PortScan,
        Rule::HostSweep,
        Rule::SynFlood,
        Rule::UdpFlood,
        Rule::IcmpFlood,
        Rule::TcpFlood,
        Rule::FragFlood,
        Rule::ProtoFlood,
        Rule::Reflection,
        Rule::DistributedScan,
        Rule::DecoyScan,
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
    /// Offenders folded into one storm episode.
    #[strum(serialize = "offenders")]
    Offenders,
}

/// Whom a finding is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// The offender is the source address.
    Source,
    /// The finding is about a destination attacked from many sources.
    Destination,
    /// Many offenders of one rule beyond its rate of new episodes, folded into one episode
    /// (`crate::episodes`): no offender address, `details.folded` and `details.sources`.
    Storm,
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
    /// ...or SYN bits per second towards it...
    pub syn_flood_dst_bps: f64,
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
    /// ...or their bits per second.
    pub icmp_flood_dst_bps: f64,
    /// `tcp_flood` (destination): small TCP packets without SYN per second towards one
    /// destination...
    pub tcp_flood_pps: f64,
    /// ...or bits per second of all TCP without SYN.
    pub tcp_flood_bps: f64,
    /// `frag_flood` (destination): IP fragments per second towards one destination...
    pub frag_flood_pps: f64,
    /// ...or their bits per second.
    pub frag_flood_bps: f64,
    /// `proto_flood` (destination): packets of other IP protocols per second towards one
    /// destination...
    pub proto_flood_pps: f64,
    /// ...or their bits per second.
    pub proto_flood_bps: f64,
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
    ///   default-speed `nmap -sS` stays in the hundreds. A source that completes its
    ///   handshakes (ACK-class segments at least half its SYNs) is not counted: a load
    ///   generator opening thousands of connections per second to a web server is load, not
    ///   a flood. *Trade-off:* a flood tool that pads its SYNs with as many bare ACKs escapes
    ///   this rule (as it escapes the destination rule's ACK ratio).
    /// * `syn_flood_dst_pps = 2000` with `syn_flood_dst_ack_ratio = 0.2`: a spoofed or
    ///   botnet flood spreads over many sources, each below every per-source bar, and its
    ///   SYNs are never followed by the handshake's ACK (spoofed sources never see the
    ///   SYN-ACK; real bots answer it with RST). A busy server at 2 400 connections/s gets at
    ///   least one ACK-class packet per SYN (the handshake's last ACK, then data and FIN), so
    ///   its ratio is ≥ 1. SYN cookies do not change this: they answer every SYN.
    ///   `syn_flood_dst_bps = 10 Mbit/s`, with the same ACK condition, for SYNs padded with
    ///   data: ordinary SYNs are 60–80 bytes (2 000/s ≈ 1.3 Mbit/s), so only SYNs carrying
    ///   payload reach 10 Mbit/s below the packet bar.
    /// * `udp_flood_pps = 20000`: above a fast QUIC or media stream from one peer (~10 k
    ///   packets/s at 100 Mbit/s), far below a flood tool's rate.
    /// * `udp_flood_dst_pps = 50000` or `udp_flood_dst_bps = 500 Mbit/s`, while the
    ///   destination sends back under 1 % as much UDP: a QUIC download or RTP call is two-way
    ///   (the client ACKs at ≥ 5 %), a flood is one-way.
    /// * `icmp_flood_pps = 1000`: `ping` sends 1/s, `ping -f` hundreds to thousands.
    /// * `icmp_flood_dst_pps = 5000` or `icmp_flood_dst_bps = 50 Mbit/s`: requests, or
    ///   replies and errors the destination never asked for (it sent under 1 % as many
    ///   requests); ping and mtr send 1–10 per second of under 100 bytes, so 50 Mbit/s below
    ///   the packet bar takes pings padded past 1 200 bytes.
    /// * `tcp_flood_pps = 20000` small segments (bare ACK, RST, FIN: ≤ 128 bytes), while the
    ///   destination sends back (other than RST) under 1 % as many TCP packets: an ACK or RST
    ///   flood draws only RSTs, or nothing. A download's data segments are large, and are not
    ///   counted: its receiver, coalescing them (GRO), may ACK well under 1 % of them (seen on
    ///   veth: 115 000 segments/s in, under 1 % ACKed). `tcp_flood_bps = 500 Mbit/s` counts
    ///   every segment without SYN, large ones too (an ACK flood padded to full frames), while
    ///   the destination sends back under 0.1 % as many: a receiver, however it coalesces,
    ///   ACKs at least every 64 KiB it takes in (≥ 2 % of full segments), and a backup or CDN
    ///   stream stalls without ACKs once the window is full.
    /// * `frag_flood_pps = 20000` or `frag_flood_bps = 200 Mbit/s`, and `proto_flood_pps =
    ///   20000` or `proto_flood_bps = 200 Mbit/s`, while the destination sends back under 1 %
    ///   as many packets (of that protocol): NFS over UDP, big DNS answers, tunnels and IPsec
    ///   peers are two-way. A tunnelled packet counts at its outer destination by its outer
    ///   protocol too (`agent_common::slots::account_packet`), so a GRE flood of random inner
    ///   packets is a `proto_flood` of the endpoint it hits, and a busy tunnel endpoint,
    ///   which sends its share of the tunnel back, is not.
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
            syn_flood_dst_bps: 10e6,
            syn_flood_dst_ack_ratio: 0.2,
            udp_flood_pps: 20_000.0,
            udp_flood_dst_pps: 50_000.0,
            udp_flood_dst_bps: 500e6,
            icmp_flood_pps: 1000.0,
            icmp_flood_dst_pps: 5000.0,
            icmp_flood_dst_bps: 50e6,
            tcp_flood_pps: 20_000.0,
            tcp_flood_bps: 500e6,
            frag_flood_pps: 20_000.0,
            frag_flood_bps: 200e6,
            proto_flood_pps: 20_000.0,
            proto_flood_bps: 200e6,
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
            Scope::Storm => None,
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
    /// The destination network the folded findings shared (their targets differed within
    /// one /24 or /64); `destination` is then its network address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub destination_prefix: Option<ipnet::IpNet>,
    /// Distinct hosts probed in the window.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub distinct_hosts: Option<u32>,
    /// Distinct ports probed in the window.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub distinct_ports: Option<u32>,
    /// Distinct sources (destination-scoped floods; 128-bit estimate, saturates near 620).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub distinct_sources: Option<u32>,
    /// Share of the counted (failed, or with `filtered` also unknown) ports or hosts among
    /// them and the accepted probes of the set (scans; see [`Thresholds::scan_failure_ratio`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure_ratio: Option<f64>,
    /// Scans: the count includes probes of unknown outcome (no answer to the prober is ever
    /// visible: a one-way vantage), at doubled bars.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub filtered: bool,
    /// Source-scoped findings folded into this destination-scoped one.
    #[serde(skip_serializing_if = "is_zero")]
    pub folded: u32,
    /// Scans: what became of the probes of the set over the window: accepted probes, and
    /// the distinct ports or hosts whose latest probe was rejected, unanswered or of unknown
    /// outcome.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcomes: Option<OutcomeCounts>,
    /// Packets from the source in the window (floods; a lower bound).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub packets: Option<u64>,
    /// Failed ports of a `port_scan`, sorted (at most 128).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<u16>,
    /// Protocol group of a scan's probes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protocol: Option<crate::probes::ProbeGroup>,
    /// Distinct reflectors (`reflection`; 64-bit estimate, saturates near 260).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reflectors: Option<u32>,
    /// True when a distinct count reached its set's capacity (floods: the estimator's, about
    /// 7000; scans: 128 ports or hosts): the count is then a lower bound.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub saturated: bool,
    /// Scans: the time scale whose window the count is over (`fast`, `medium`, `slow`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scale: Option<Scale>,
    /// The source network a finding aggregates (IPv6 scanners rotating through their /64).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_prefix: Option<ipnet::IpNet>,
    /// The sources behind a destination-scoped or storm finding: how many, and a sample.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sources: Option<Sources>,
    /// SYN-ACKs sent per SYN received (destination-scoped floods).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub synack_ratio: Option<f64>,
    /// First fragments too short for their L4 header that the source sent in the window
    /// (`nmap -f`, `--mtu 16`): the scan tried to slip past filters.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tiny_fragments: Option<u64>,
    /// The tunnel the source's latest tunnelled probe came through (a pod scanning pods
    /// across nodes), or for a destination flood the tunnel that carried most of it: the
    /// source and destination are the inner addresses, these the tunnel endpoints.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tunnel: Option<TunnelInfo>,
}

/// A tunnel's endpoints, as kept for a probing source ([`SrcState::tunnel_kind`]) and for
/// a destination ([`DstSlot::tun_kind`]).
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
        Self::new(st.tunnel_kind, st.tunnel_src, st.tunnel_dst, st.tunnel_vni)
    }

    /// The tunnel that carried the latest packet a destination received inside one, when
    /// most of what it received came tunnelled.
    pub fn of_dst(d: &DstSlot) -> Option<Self> {
        if u64::from(d.inner_p) * 2 < u64::from(d.head.pkts_lower()) {
            return None;
        }
        Self::new(
            d.tun_kind,
            words_to_bytes(&d.tun_src),
            words_to_bytes(&d.tun_dst),
            d.tun_vni,
        )
    }

    fn new(kind: u8, outer_src: [u8; 16], outer_dst: [u8; 16], vni: u32) -> Option<Self> {
        let name = *agent_common::tunnel::ENCAP_NAMES.get(usize::from(kind))?;
        (kind != 0).then(|| TunnelInfo {
            kind: name,
            outer_dst: AddrKey { addr: outer_dst }.ip(),
            outer_src: AddrKey { addr: outer_src }.ip(),
            vni,
        })
    }
}

/// Sources of a many-to-one finding.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Sources {
    // Alphabetical, as every JSON object of the documents.
    /// Distinct sources counted (at most the tracked cap, see `estimated`).
    pub count: u32,
    /// True when `count` stopped at a cap: a lower bound.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub estimated: bool,
    /// `decoy_scan`: sources that sent RSTs, as a real TCP stack answering the target's
    /// SYN-ACKs does (a spoofed decoy sends nothing); ranked first in `sample`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub follow_up: Vec<IpAddr>,
    /// Up to 16 of them; for `decoy_scan`, the likeliest real scanner first.
    pub sample: Vec<IpAddr>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// Fractions the destination must send back under for a one-way flood (see
/// [`Thresholds::default`]).
const TCP_ANSWER_MAX: f64 = 0.01;
/// `tcp_flood` by bits: most TCP packets sent back per TCP packet received.
const TCP_BULK_ANSWER_MAX: f64 = 0.001;
const ONE_WAY_MAX: f64 = 0.01;
const REFLECTION_ASKED_MAX: f64 = 0.10;
/// Fewest distinct reflectors for `reflection`.
const MIN_REFLECTORS: u32 = 10;
/// `syn_flood` (source): ACK-class segments per SYN from a source that completes its
/// handshakes (a client sends about 3 per connection: the handshake's ACK, a request, FIN).
const SRC_HANDSHAKE_ACK_MIN: f64 = 0.5;

/// Applies the thresholds to successive snapshots.
///
/// Floods come from the slot tables' counts of the tick that has just ended (every reading
/// has them). Scans and sweeps come from the failed-probe sets of [`WindowSets`], fed with
/// every reading's settled probes ([`Snapshot::probes`]) and evaluated at three time scales:
/// a prober whose probes are accepted is never a scanner.
#[derive(Debug)]
pub struct Detector {
    /// Thresholds in force (may be replaced between readings).
    pub thresholds: Thresholds,
    window_s: f64,
    /// Destination of each probing source's latest probe, from the latest map read: where a
    /// flood from that source goes.
    last_dst: HashMap<AddrKey, [u8; 16]>,
    /// Failed probes per prober and target or port, over every scale.
    sets: WindowSets,
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
    /// ACK-class probing per source, for the sweeps the outcome join sees only in part.
    acks: AckSweeps,
}

impl Detector {
    /// A detector with `thresholds`, whose fast scale is `window_s` long.
    pub fn new(thresholds: Thresholds, window_s: f64) -> Self {
        Detector {
            thresholds,
            window_s,
            last_dst: HashMap::default(),
            sets: WindowSets::new(),
            last_probes: None,
            flooding: HashMap::default(),
            flooded: HashMap::default(),
            tiny: HashMap::default(),
            tunnels: HashMap::default(),
            acks: AckSweeps::new(),
        }
    }

    /// Whether the next reading must include the per-source map, given the global counters
    /// now: only when a probe arrived since the previous reading (the map gives the
    /// destination of a flooding source's probes, and admission its members). Scans need no
    /// map: every reading carries its settled probes. (Nor do floods: every reading has the
    /// tick.)
    pub fn needs_maps(&self, globals: &[Globals; 2], _mono_ns: u64) -> bool {
        self.last_probes != Some(globals[0].probes)
    }

    /// Findings for one reading.
    pub fn evaluate(&mut self, snap: &Snapshot) -> Vec<Finding> {
        let mut out = Vec::new();
        self.last_probes = Some(snap.globals[0].probes);
        if snap.maps_read {
            self.last_dst = snap
                .sources
                .iter()
                .map(|(k, st)| (*k, st.last_dst))
                .collect();
            self.tunnels = snap
                .sources
                .iter()
                .filter_map(|(k, st)| Some((*k, TunnelInfo::of(st)?)))
                .collect();
        }
        // What each address received this tick, looked up by the flood rules.
        let recv: HashMap<[u64; 2], &DstSlot> =
            snap.tick.dst.iter().map(|d| (d.head.addr, d)).collect();
        out.extend(self.flood_findings(&snap.tick, &recv, snap.mono_ns));
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
        self.sets.observe(&snap.probes);
        let t = &self.thresholds;
        let bars = Bars::new(t.port_scan_ports, t.host_sweep_hosts, t.scan_failure_ratio);
        let hits = self.sets.evaluate(snap.mono_ns, self.window_s, &bars);
        let mut ack_sweeps = Vec::new();
        // One finding per source and rule: its largest set.
        let mut best: HashMap<(AddrKey, Rule), Hit> = HashMap::default();
        for h in hits {
            let rule = match h.key {
                SetKey::Ports { .. } => Rule::PortScan,
                SetKey::Hosts { .. } => Rule::HostSweep,
            };
            let slot = best.entry((AddrKey { addr: h.key.src() }, rule));
            match slot {
                std::collections::hash_map::Entry::Occupied(mut o) => {
                    if (h.distinct, std::cmp::Reverse(h.scale))
                        > (o.get().distinct, std::cmp::Reverse(o.get().scale))
                    {
                        o.insert(h);
                    }
                }
                std::collections::hash_map::Entry::Vacant(v) => {
                    v.insert(h);
                }
            }
        }
        self.acks
            .observe(&snap.probes, &snap.tick.src, &recv, snap.mono_ns, recent);
        for sweep in self.acks.sweeps() {
            let src = AddrKey { addr: sweep.src };
            if sweep.hosts() >= t.host_sweep_hosts && !best.contains_key(&(src, Rule::HostSweep)) {
                ack_sweeps.push(ack_sweep_finding(&sweep, t.host_sweep_hosts, self.window_s));
            }
        }
        let mut scans: Vec<Finding> = best
            .into_iter()
            .filter(|((src, rule), h)| {
                let flooded = match h.key {
                    SetKey::Ports { dst, .. } => {
                        self.flooded.contains_key(&AddrKey { addr: dst }.ip())
                    }
                    SetKey::Hosts { .. } => false,
                };
                *rule != Rule::PortScan || !(self.flooding.contains_key(src) || flooded)
            })
            .map(|((src, rule), h)| {
                let mut f = scan_finding(rule, &src, &h);
                if let Some((n, _)) = self.tiny.get(&src) {
                    f.details.tiny_fragments = Some(*n);
                }
                f.details.tunnel = self.tunnels.get(&src).cloned();
                f
            })
            .chain(ack_sweeps)
            .collect();
        scans.sort_by(|a, b| (a.source, a.rule.name()).cmp(&(b.source, b.rule.name())));
        out.extend(scans);
        out
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
    // ICMP replies and errors count only beyond what the source received: a host answering
    // a ping flood (or a UDP flood with port unreachables) is its victim, not a flooder.
    let answers = back.map_or(0, |b| b.head.pkts);
    let icmp = s.icmp_req + u32::from(s.icmp_other).saturating_sub(answers);
    // SYNs whose handshakes the source completes (its ACK-class segments: the handshake's
    // ACK, data, FIN) are connections, not a flood: a load generator opening thousands per
    // second to a web server. A flood tool, a SYN scanner, or the kernel of either, answers
    // a SYN-ACK with RST, or not at all.
    let completes = f64::from(s.tcp_other) >= SRC_HANDSHAKE_ACK_MIN * f64::from(s.syn);
    let syn = if completes { 0 } else { s.syn };
    [
        (Rule::SynFlood, syn, t.syn_flood_pps),
        (Rule::UdpFlood, udp, t.udp_flood_pps),
        (Rule::IcmpFlood, icmp, t.icmp_flood_pps),
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
                tunnel: TunnelInfo::of_dst(d),
                ..details
            },
        });
    };
    // The packet rate, or else the bit rate, when either is over its bar.
    let over = |p: u32, b: u32, pps: f64, bps: f64| {
        if rate(p) >= pps {
            Some((rate(p), pps, Unit::PacketsPerSecond))
        } else if bits(b) >= bps {
            Some((bits(b), bps, Unit::BitsPerSecond))
        } else {
            None
        }
    };
    // SYNs not followed by the handshake's ACK: ACK-class packets the destination received.
    let acks = d.tcp_p.saturating_sub(d.rst_p).saturating_sub(d.synack_p);
    if let Some((value, bar, unit)) =
        over(d.syn_p, d.syn_b, t.syn_flood_dst_pps, t.syn_flood_dst_bps)
        && f64::from(acks) < t.syn_flood_dst_ack_ratio * f64::from(d.syn_p)
    {
        let ratio = |n: u32| (f64::from(n) / f64::from(d.syn_p.max(1)) * 1000.0).round() / 1000.0;
        push(
            Rule::SynFlood,
            value,
            bar,
            unit,
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
    // By packets, small segments only: the data of a download arrives in large ones, and a
    // receiver coalescing them (GRO) ACKs under 1 % of them. By bits, every segment, against
    // a far stricter answer bar: even a coalescing receiver ACKs each 64 KiB it takes in.
    if rate(d.tcp_small_p) >= t.tcp_flood_pps && under(tcp_back, d.tcp_small_p, TCP_ANSWER_MAX) {
        push(
            Rule::TcpFlood,
            rate(d.tcp_small_p),
            t.tcp_flood_pps,
            Unit::PacketsPerSecond,
            Details::default(),
        );
    } else if bits(d.tcp_b) >= t.tcp_flood_bps && under(tcp_back, d.tcp_p, TCP_BULK_ANSWER_MAX) {
        push(
            Rule::TcpFlood,
            bits(d.tcp_b),
            t.tcp_flood_bps,
            Unit::BitsPerSecond,
            Details::default(),
        );
    }
    if under(back.udp, d.udp_p, ONE_WAY_MAX)
        && let Some((value, bar, unit)) =
            over(d.udp_p, d.udp_b, t.udp_flood_dst_pps, t.udp_flood_dst_bps)
    {
        push(Rule::UdpFlood, value, bar, unit, Details::default());
    }
    let unsolicited = under(back.icmp_req, d.icmp_other_p, ONE_WAY_MAX);
    let icmp = d
        .icmp_req_p
        .max(if unsolicited { d.icmp_other_p } else { 0 });
    // The bytes of the packets counted, when not all ICMP is: their share of all ICMP's.
    let icmp_all = d.icmp_req_p.saturating_add(d.icmp_other_p).max(1);
    let icmp_b = (u64::from(d.icmp_b) * u64::from(icmp) / u64::from(icmp_all)) as u32;
    if let Some((value, bar, unit)) = over(icmp, icmp_b, t.icmp_flood_dst_pps, t.icmp_flood_dst_bps)
    {
        push(Rule::IcmpFlood, value, bar, unit, Details::default());
    }
    if under(back.head.pkts, d.frag_p, ONE_WAY_MAX)
        && let Some((value, bar, unit)) =
            over(d.frag_p, d.frag_b, t.frag_flood_pps, t.frag_flood_bps)
    {
        push(Rule::FragFlood, value, bar, unit, Details::default());
    }
    if under(u32::from(back.other), d.other_p, ONE_WAY_MAX)
        && let Some((value, bar, unit)) =
            over(d.other_p, d.other_b, t.proto_flood_pps, t.proto_flood_bps)
    {
        push(Rule::ProtoFlood, value, bar, unit, Details::default());
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

/// The finding of an ACK-class sweep whose estimate is over the host bar.
fn ack_sweep_finding(s: &AckSweep, bar: u32, window_s: f64) -> Finding {
    Finding {
        rule: Rule::HostSweep,
        scope: Scope::Source,
        source: Some(AddrKey { addr: s.src }.ip()),
        destination: None,
        value: f64::from(s.hosts()),
        threshold: f64::from(bar),
        unit: Unit::Hosts,
        window_s,
        estimated: true,
        details: Details {
            ports: vec![s.port],
            distinct_hosts: Some(s.hosts()),
            failure_ratio: Some(1.0),
            outcomes: Some(OutcomeCounts {
                accepted: 0,
                rejected: s.reset_hosts,
                unanswered: s.silent,
                unknown: 0,
            }),
            protocol: Some(ProbeGroup::Tcp),
            scale: Some(Scale::Fast),
            ..Details::default()
        },
    }
}

/// The finding of a set over its bar.
fn scan_finding(rule: Rule, src: &AddrKey, h: &Hit) -> Finding {
    let (destination, group, unit) = match h.key {
        SetKey::Ports { dst, group, .. } => (Some(AddrKey { addr: dst }.ip()), group, Unit::Ports),
        SetKey::Hosts { group, .. } => (None, group, Unit::Hosts),
    };
    let distinct = Some(h.distinct);
    Finding {
        rule,
        scope: Scope::Source,
        source: Some(src.ip()),
        destination,
        value: f64::from(h.distinct),
        threshold: f64::from(h.bar),
        unit,
        window_s: h.window_s,
        estimated: false,
        details: Details {
            ports: match h.key {
                SetKey::Ports { .. } => h.values.iter().map(|v| *v as u16).collect(),
                SetKey::Hosts { .. } => Vec::new(),
            },
            distinct_ports: if unit == Unit::Ports { distinct } else { None },
            distinct_hosts: if unit == Unit::Hosts { distinct } else { None },
            failure_ratio: Some((h.ratio * 1000.0).round() / 1000.0),
            filtered: h.filtered,
            outcomes: Some(h.outcomes),
            protocol: Some(group),
            saturated: h.saturated,
            scale: Some(h.scale),
            ..Details::default()
        },
    }
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
        m.read_tick(&mut s, 1.0);
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

    /// A SYN to each port from the scanner, refused by the victim's RST (seen on egress).
    fn refused_scan(m: &mut HostMaps, ports: std::ops::Range<u16>, t: u64) {
        for p in ports {
            feed(m, &syn(SCANNER, VICTIM, 40000, p), DIR_INGRESS, t);
            let rst = frames::tcp(p, 40000, agent_common::classify::TCP_RST | TCP_ACK);
            feed(
                m,
                &frames::ipv4(VICTIM, SCANNER, IPPROTO_TCP, 0, &rst),
                DIR_EGRESS,
                t,
            );
        }
    }

    #[test]
    fn port_scan_at_threshold_not_below() {
        let t = Thresholds::default();
        for (ports, expect) in [(t.port_scan_ports - 1, false), (t.port_scan_ports, true)] {
            let mut m = HostMaps::new();
            let mut d = Detector::new(Thresholds::default(), 10.0);
            refused_scan(&mut m, 1000..1000 + ports as u16, SEC);
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
                assert_eq!(f.details.scale, Some(Scale::Fast));
                assert_eq!(f.window_s, 10.0);
                assert_eq!(
                    f.details.outcomes,
                    Some(OutcomeCounts {
                        rejected: ports,
                        ..OutcomeCounts::default()
                    })
                );
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
        // Each probe refused by the victim, its RST tunnelled back.
        for p in 0..t.port_scan_ports {
            let port = 1000 + p as u16;
            let inner = syn(SCANNER, VICTIM, 40000, port);
            let body = frames::tunnels::vxlan(77, &inner);
            let outer = frames::ipv4(
                node_a,
                node_b,
                IPPROTO_UDP,
                0,
                &frames::udp(50000 + p as u16, 4789, &body),
            );
            feed(&mut m, &outer, DIR_INGRESS, SEC);
            let rst = frames::tcp(port, 40000, agent_common::classify::TCP_RST | TCP_ACK);
            let inner = frames::ipv4(VICTIM, SCANNER, IPPROTO_TCP, 0, &rst);
            let body = frames::tunnels::vxlan(77, &inner);
            let outer = frames::ipv4(
                node_b,
                node_a,
                IPPROTO_UDP,
                0,
                &frames::udp(50000 + p as u16, 4789, &body),
            );
            feed(&mut m, &outer, DIR_EGRESS, SEC);
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
    fn a_tunnelled_flood_counts_at_both_headers_and_names_its_tunnel() {
        use agent_common::classify::ETH_P_IPV4;
        let (node_a, node_b) = (Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2));
        let vxlan = |inner: &[u8]| {
            let body = frames::tunnels::vxlan(77, inner);
            frames::ipv4(
                node_a,
                node_b,
                IPPROTO_UDP,
                0,
                &frames::udp(50000, 4789, &body),
            )
        };
        // A SYN flood of 3 000 forged inner sources on a victim pod, carried from node A.
        let mut m = HostMaps::new();
        let mut d = Detector::new(Thresholds::default(), 10.0);
        for i in 0..3000u32 {
            let src = Ipv4Addr::from(0x0b00_0000 + i * 7);
            feed(
                &mut m,
                &vxlan(&syn(src, VICTIM, 40000, 80)),
                DIR_INGRESS,
                SEC,
            );
        }
        let f = d.evaluate(&read(&mut m, SEC));
        let flood = f
            .iter()
            .find(|f| (f.rule, f.scope) == (Rule::SynFlood, Scope::Destination))
            .unwrap_or_else(|| panic!("{f:?}"));
        assert_eq!(flood.destination, Some(VICTIM.into()));
        let tunnel = flood.details.tunnel.as_ref().expect("the tunnel");
        assert_eq!((tunnel.kind, tunnel.vni), ("vxlan", 77));
        assert_eq!(
            (tunnel.outer_src, tunnel.outer_dst),
            (node_a.into(), node_b.into())
        );
        // A GRE flood from forged outer sources around random inner packets: no inner host
        // gets much, the endpoint it hits gets it all, as another IP protocol.
        let mut m = HostMaps::new();
        let mut d = Detector::new(Thresholds::default(), 10.0);
        for i in 0..30_000u32 {
            let inner = frames::ipv4(
                Ipv4Addr::from(0x0c00_0000 + i * 13),
                Ipv4Addr::from(0x0d00_0000 + i * 17),
                IPPROTO_UDP,
                0,
                &frames::udp(1024, 2048, &[0; 64]),
            );
            let body = frames::tunnels::gre(ETH_P_IPV4, false, None, None, &inner[14..]);
            let outer = frames::ipv4(Ipv4Addr::from(0x0e00_0000 + i * 19), node_b, 47, 0, &body);
            feed(&mut m, &outer, DIR_INGRESS, SEC);
        }
        let f = d.evaluate(&read(&mut m, SEC));
        assert_eq!(
            rules(&f),
            vec![(Rule::ProtoFlood, Scope::Destination)],
            "{f:?}"
        );
        assert_eq!(f[0].destination, Some(node_b.into()));
        // A busy tunnel both ways (60 000 packets in, 15 000 back) is no flood of either node.
        let mut m = HostMaps::new();
        let mut d = Detector::new(Thresholds::default(), 10.0);
        for i in 0..60_000u32 {
            let data = frames::ipv4(
                SCANNER,
                VICTIM,
                IPPROTO_TCP,
                0,
                &frames::tcp(80, 40000, TCP_ACK),
            );
            feed(&mut m, &vxlan(&data), DIR_INGRESS, SEC);
            if i % 4 == 0 {
                let ack = frames::ipv4(
                    VICTIM,
                    SCANNER,
                    IPPROTO_TCP,
                    0,
                    &frames::tcp(40000, 80, TCP_ACK),
                );
                let body = frames::tunnels::vxlan(77, &ack);
                let back = frames::ipv4(
                    node_b,
                    node_a,
                    IPPROTO_UDP,
                    0,
                    &frames::udp(50000, 4789, &body),
                );
                feed(&mut m, &back, DIR_EGRESS, SEC);
            }
        }
        let f = d.evaluate(&read(&mut m, SEC));
        assert!(f.is_empty(), "{f:?}");
    }

    #[test]
    fn every_destination_flood_has_a_bit_rate_bar() {
        let t = Thresholds::default();
        let b = VICTIM.to_ipv6_mapped().octets();
        let addr = agent_common::slots::bytes_to_words(&b);
        // Packets under each packet bar (TCP's counts small segments only), at 1 500 bytes
        // each: over each bit-rate bar.
        type Fill = fn(&mut DstSlot, u32);
        let cases: [(Rule, u32, Fill); 5] = [
            (Rule::SynFlood, 1000, |d, n| {
                (d.syn_p, d.syn_b) = (n, n * 1500)
            }),
            (Rule::TcpFlood, 50_000, |d, n| {
                (d.tcp_p, d.tcp_b) = (n, n * 1500)
            }),
            (Rule::IcmpFlood, 4500, |d, n| {
                (d.icmp_req_p, d.icmp_b) = (n, n * 1500)
            }),
            (Rule::FragFlood, 18_000, |d, n| {
                (d.frag_p, d.frag_b) = (n, n * 1500)
            }),
            (Rule::ProtoFlood, 18_000, |d, n| {
                (d.other_p, d.other_b) = (n, n * 1500)
            }),
        ];
        for (rule, n, fill) in cases {
            let mut d = DstSlot::default();
            d.head.addr = addr;
            d.head.pkts = n;
            fill(&mut d, n);
            let f = dst_flood_findings(&t, 1.0, &d, None);
            assert_eq!(
                f.iter().map(|f| (f.rule, f.unit)).collect::<Vec<_>>(),
                vec![(rule, Unit::BitsPerSecond)],
                "{f:?}"
            );
            // A tenth of it stays under every bar.
            let mut d = DstSlot::default();
            d.head.addr = addr;
            fill(&mut d, n / 10);
            assert!(dst_flood_findings(&t, 1.0, &d, None).is_empty(), "{rule:?}");
        }
        // Full-size TCP answered as a download is (an ACK per 8 segments) is no flood.
        let mut d = DstSlot::default();
        d.head.addr = addr;
        (d.tcp_p, d.tcp_b) = (80_000, 80_000 * 1500);
        let back = SrcSlot {
            tcp_other: 10_000,
            ..SrcSlot::default()
        };
        assert!(dst_flood_findings(&t, 1.0, &d, Some(&back)).is_empty());
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
        // Pings to 100 hosts a router reports unreachable: rejected.
        let mut m = HostMaps::new();
        let mut d = Detector::new(Thresholds::default(), 10.0);
        let router = Ipv4Addr::new(192, 0, 2, 254);
        for h in 0..100u8 {
            let target = Ipv4Addr::new(10, 1, 0, h);
            let ping = frames::ipv4(SCANNER, target, IPPROTO_ICMP, 0, &frames::icmp(8, 0));
            feed(&mut m, &ping, DIR_INGRESS, SEC);
            let err = frames::icmp_error(3, 1, &frames::quote(&ping));
            feed(
                &mut m,
                &frames::ipv4(router, SCANNER, IPPROTO_ICMP, 0, &err),
                DIR_INGRESS,
                SEC,
            );
        }
        let f = d.evaluate(&read(&mut m, SEC));
        assert_eq!(rules(&f), vec![(Rule::HostSweep, Scope::Source)]);
        assert_eq!(f[0].value, 100.0);
        assert_eq!(f[0].destination, None);
        assert_eq!(f[0].details.protocol, Some(crate::probes::ProbeGroup::Icmp));
        assert!(!f[0].details.filtered);
    }

    #[test]
    fn unanswered_probes_of_an_invisible_prober_count_at_doubled_bars() {
        // A one-way vantage: no answer to the sweeper is ever seen. 100 hosts are below the
        // doubled bar (128), 130 are over it; both settle at the next reading.
        for (hosts, expect) in [(100u8, false), (130, true)] {
            let mut m = HostMaps::new();
            let mut d = Detector::new(Thresholds::default(), 10.0);
            for h in 0..hosts {
                let ping = frames::icmp(8, 0);
                let target = Ipv4Addr::new(10, 1, 0, h);
                feed(
                    &mut m,
                    &frames::ipv4(SCANNER, target, IPPROTO_ICMP, 0, &ping),
                    DIR_INGRESS,
                    SEC,
                );
            }
            assert!(d.evaluate(&read(&mut m, SEC)).is_empty(), "not settled yet");
            let f = d.evaluate(&read(&mut m, 2 * SEC));
            assert_eq!(!f.is_empty(), expect, "{hosts} hosts: {f:?}");
            if expect {
                assert_eq!(rules(&f), vec![(Rule::HostSweep, Scope::Source)]);
                assert!(f[0].details.filtered);
                assert_eq!(f[0].threshold, 128.0);
                assert_eq!(f[0].details.outcomes.unwrap().unknown, 128, "the set's cap");
                assert!(f[0].details.saturated);
            }
        }
    }

    #[test]
    fn unanswered_probes_of_a_visible_prober_are_failures() {
        // One answer makes the prober visible: its silent probes are unanswered.
        let mut m = HostMaps::new();
        let mut d = Detector::new(Thresholds::default(), 10.0);
        refused_scan(&mut m, 1..2, SEC);
        for p in 100..140u16 {
            feed(&mut m, &syn(SCANNER, VICTIM, 40000, p), DIR_INGRESS, SEC);
        }
        assert!(d.evaluate(&read(&mut m, SEC)).is_empty());
        let f = d.evaluate(&read(&mut m, 2 * SEC));
        assert_eq!(rules(&f), vec![(Rule::PortScan, Scope::Source)]);
        let o = f[0].details.outcomes.unwrap();
        assert_eq!((o.rejected, o.unanswered, o.unknown), (1, 40, 0));
        assert!(!f[0].details.filtered);
    }

    #[test]
    fn ack_probes_count_through_the_bare_rsts_they_draw() {
        // `nmap -sA`: ACKs (no conversation) draw bare RSTs from every unfiltered port.
        let mut m = HostMaps::new();
        let mut d = Detector::new(Thresholds::default(), 10.0);
        for p in 1..=40u16 {
            let ack = frames::tcp(40000, p, TCP_ACK);
            feed(
                &mut m,
                &frames::ipv4(SCANNER, VICTIM, IPPROTO_TCP, 0, &ack),
                DIR_INGRESS,
                SEC,
            );
            let rst = frames::tcp(p, 40000, agent_common::classify::TCP_RST);
            feed(
                &mut m,
                &frames::ipv4(VICTIM, SCANNER, IPPROTO_TCP, 0, &rst),
                DIR_EGRESS,
                SEC,
            );
        }
        let f = d.evaluate(&read(&mut m, SEC));
        assert_eq!(rules(&f), vec![(Rule::PortScan, Scope::Source)]);
        assert_eq!((f[0].source, f[0].value), (Some(SCANNER.into()), 40.0));
    }

    #[test]
    fn a_scanner_resetting_its_own_half_open_connections_is_not_scanned() {
        // nmap -sS against open ports: SYN-ACK, then nmap's bare RST. The RST answers nothing
        // the victim probed: no scan by the victim, and the scanner's probes are accepted.
        let mut m = HostMaps::new();
        let mut d = Detector::new(Thresholds::default(), 10.0);
        for p in 1..=40u16 {
            feed(
                &mut m,
                &syn(SCANNER, VICTIM, 40000 + p, 80),
                DIR_INGRESS,
                SEC,
            );
            let sa = frames::tcp(80, 40000 + p, TCP_SYN | TCP_ACK);
            feed(
                &mut m,
                &frames::ipv4(VICTIM, SCANNER, IPPROTO_TCP, 0, &sa),
                DIR_EGRESS,
                SEC,
            );
            let rst = frames::tcp(40000 + p, 80, agent_common::classify::TCP_RST);
            feed(
                &mut m,
                &frames::ipv4(SCANNER, VICTIM, IPPROTO_TCP, 0, &rst),
                DIR_INGRESS,
                SEC,
            );
        }
        let snap = read(&mut m, SEC);
        assert!(
            snap.probes
                .iter()
                .all(|p| p.src == SCANNER.to_ipv6_mapped().octets())
        );
        assert!(d.evaluate(&snap).is_empty());
    }

    #[test]
    fn slow_scans_are_reported_at_the_slow_scale_and_end_when_probing_stops() {
        // One refused probe every 15 s (`nmap -T1`): 15 ports after 210 s, far below the
        // fast and medium bars.
        let mut m = HostMaps::new();
        let mut d = Detector::new(Thresholds::default(), 10.0);
        let mut first = None;
        for i in 0..20u16 {
            let t = (1 + 15 * u64::from(i)) * SEC;
            refused_scan(&mut m, 100 + i..101 + i, t);
            let f = d.evaluate(&read(&mut m, t));
            if let Some(f) = f.first() {
                assert_eq!(
                    (f.rule, f.details.scale),
                    (Rule::PortScan, Some(Scale::Slow))
                );
                assert_eq!(f.window_s, 600.0);
                first.get_or_insert(i);
            }
        }
        assert_eq!(first, Some(14), "reported at the 15th port");
        // Probing stops: the slow scale counts only while failures keep coming (60 s).
        let last = (1 + 15 * 19) * SEC;
        assert!(!d.evaluate(&read(&mut m, last + 50 * SEC)).is_empty());
        assert!(d.evaluate(&read(&mut m, last + 61 * SEC)).is_empty());
    }

    #[test]
    fn a_medium_speed_scan_is_reported_at_the_medium_scale() {
        // `nmap -T2`: a probe every 0.4 s, 2–3 per second, refused.
        let mut m = HostMaps::new();
        let mut d = Detector::new(Thresholds::default(), 10.0);
        let mut at = None;
        for sec in 1..=60u64 {
            let p = (sec as u16) * 3;
            refused_scan(&mut m, p..p + 2, sec * SEC);
            if let Some(f) = d.evaluate(&read(&mut m, sec * SEC)).first() {
                at.get_or_insert((sec, f.details.scale));
            }
        }
        // The slow bar (15 ports over ≥ 5 s, ratio ≥ 0.9) comes first: 16 ports after 8 s.
        assert_eq!(at, Some((8, Some(Scale::Slow))));
    }

    #[test]
    fn tracing_is_not_scanning() {
        // traceroute: UDP probes to rising ports; routers answer time exceeded, the target
        // port unreachable; many hops stay silent.
        let mut m = HostMaps::new();
        let mut d = Detector::new(Thresholds::default(), 10.0);
        for p in 33434..33534u16 {
            let probe = frames::ipv4(SCANNER, VICTIM, IPPROTO_UDP, 0, &frames::udp(50000, p, b""));
            feed(&mut m, &probe, DIR_INGRESS, SEC);
            let (from, ty) = match p % 3 {
                0 => (Ipv4Addr::new(10, 9, 0, (p % 200) as u8), 11),
                1 => (VICTIM, 3),
                _ => continue,
            };
            let err = frames::icmp_error(ty, 3, &frames::quote(&probe));
            feed(
                &mut m,
                &frames::ipv4(from, SCANNER, IPPROTO_ICMP, 0, &err),
                DIR_INGRESS,
                SEC,
            );
        }
        assert!(d.evaluate(&read(&mut m, SEC)).is_empty());
        assert!(d.evaluate(&read(&mut m, 2 * SEC)).is_empty());
    }

    #[test]
    fn udp_from_a_service_port_counts_when_refused() {
        // `-sU -g 53` to closed ports: refused by port unreachables, a scan. DNS answers from
        // 53 landing on many ephemeral ports, unanswered: no scan.
        for (refused, expect) in [(true, true), (false, false)] {
            let mut m = HostMaps::new();
            let mut d = Detector::new(Thresholds::default(), 10.0);
            refused_scan(&mut m, 1..2, SEC);
            for p in 2000..2040u16 {
                let probe =
                    frames::ipv4(SCANNER, VICTIM, IPPROTO_UDP, 0, &frames::udp(53, p, b"q"));
                feed(&mut m, &probe, DIR_INGRESS, SEC);
                if refused {
                    let err = frames::icmp_error(3, 3, &frames::quote(&probe));
                    let err = frames::ipv4(VICTIM, SCANNER, IPPROTO_ICMP, 0, &err);
                    feed(&mut m, &err, DIR_EGRESS, SEC);
                }
            }
            let mut f = d.evaluate(&read(&mut m, SEC));
            f.extend(d.evaluate(&read(&mut m, 2 * SEC)));
            assert_eq!(!f.is_empty(), expect, "refused {refused}: {f:?}");
        }
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
    fn one_load_generator_completing_its_handshakes_is_not_a_syn_flood() {
        // `ab` without keep-alive: 3 000 connections in a second from one client, each SYN
        // followed by the handshake's ACK and a request; a SYN flood's source sends no ACKs.
        let client = from(7);
        let mut f = Vec::new();
        for i in 0..3000u32 {
            let port = 20_000 + i as u16;
            f.push((syn(client, VICTIM, port, 80), 1));
            let ack = frames::tcp(port, 80, TCP_ACK);
            f.push((frames::ipv4(client, VICTIM, IPPROTO_TCP, 0, &ack), 2));
        }
        assert!(one_tick(&f).is_empty(), "{:?}", one_tick(&f));
        let flood: Vec<_> = (0..3000u32)
            .map(|i| (syn(client, VICTIM, 20_000 + i as u16, 80), 1))
            .collect();
        assert_eq!(one_tick(&flood), vec![(Rule::SynFlood, Scope::Source)]);
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
    fn scans_need_no_map_read() {
        let mut m = HostMaps::new();
        let mut d = Detector::new(Thresholds::default(), 10.0);
        refused_scan(&mut m, 0..40, SEC);
        let mut globals_only = read(&mut m, SEC);
        globals_only.maps_read = false;
        globals_only.sources.clear();
        let f = d.evaluate(&globals_only);
        assert_eq!(rules(&f), vec![(Rule::PortScan, Scope::Source)]);
        assert_eq!(f[0].value, 40.0);
        // And the count holds at the next reading.
        let f = d.evaluate(&read(&mut m, 2 * SEC));
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
    fn port_sets_saturate_at_their_cap() {
        let mut m = HostMaps::new();
        let mut d = Detector::new(Thresholds::default(), 10.0);
        refused_scan(&mut m, 1000..1200, SEC);
        let f = d.evaluate(&read(&mut m, SEC));
        assert_eq!(f[0].value, crate::windows::PORT_CAP as f64);
        assert!(f[0].details.saturated);
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
