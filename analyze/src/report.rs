//! The report of `picket analyze`: the aggregation of every packet, and the types that make up
//! the JSON document (`--json`), which the text and HTML outputs render too.
//!
//! # JSON schema (`"schema": "picket-analyze/1"`)
//!
//! One object; every list is sorted (largest first, ties by name) and ranked lists hold at most
//! `--top` entries (0: all), with the `*_distinct` / `*_total` fields giving the full counts.
//! Times are RFC 3339 UTC strings with milliseconds; `*_ns` fields are nanoseconds since the
//! Unix epoch; byte counts are lengths on the wire (pcap `orig_len`).
//!
//! | field | content |
//! | --- | --- |
//! | `schema` | `"picket-analyze/1"` |
//! | `inputs[]` | per file: `name`, `format` (`pcap`, `pcap_ns`, `pcap_modified`, `pcapng`), `big_endian`, `sections`, `interfaces`, `packets`, `bytes_read`, `truncated`, `warnings[]` |
//! | `totals` | `packets`, `bytes`, `captured_bytes`, `start`/`end` (+ `start_ns`/`end_ns`, absent without packets), `duration_s`, `packets_per_s`, `bits_per_s`, `unsupported_link_packets`, `out_of_order` |
//! | `link_types[]` | `linktype` (number), `name`, `supported`, `packets`, `bytes` — unsupported link types are counted here and in `totals` only |
//! | `protocols` | `ethertypes[]`, `ip_protocols[]`, `l4[]`: each `id`, `name`, `packets`, `bytes`. EtherType ids are `0x0800`-style, `llc` (802.3 length field), `none` (loopback/raw link without a known family) or `unparsed`; IP protocol ids are the decimal number; `l4` ids are `tcp`, `udp`, `icmp`, `icmpv6`, `other_ip` (other protocols and non-first fragments), `non_ip`, `unparsed`, summing to the packets of supported link types |
//! | `top_talkers` | `sources[]`, `destinations[]` (`ip`, `packets`, `bytes`), `conversations[]` (`a`, `b`, `packets`, `bytes`; address pair in either direction), `*_distinct` |
//! | `tcp` | `flows_total`; `outcomes` (`handshake_completed`, `closed`, `reset`, `half_open`, `open`); `connections_per_minute[]` (`minute`, `connections`: flows opened by a SYN); `flows[]` by bytes: `client`, `client_port`, `server`, `server_port` (client = sender of the first SYN, else receiver of the first SYN-ACK, else sender of the first packet; a SYN with a new sequence number or on a closed flow starts a new flow, as Wireshark's streams), `packets`, `bytes`, `packets_to_server`, `packets_to_client`, `first_seen`, `duration_s`, `flags` (`"SYN,ACK,FIN"`: every flag seen), `handshake` (`completed`: SYN then an ACK from the client; `syn`; `syn_ack`: SYN and SYN-ACK only; `syn_ack_only`; `not_seen`: joined mid-stream), `handshake_completed`, `outcome` (`closed`: FIN both ways; `reset`: a RST; `half_open`: SYN without completed handshake; `open`: still open at the end) |
//! | `udp` | `flows_total`; `flows[]`: as TCP without flags, handshake and outcome (client = sender of the first packet) |
//! | `icmp[]` | `version` (`icmp`/`icmpv6`), `type`, `code`, `name` (`"Destination Unreachable / Port Unreachable"`), `packets`, `bytes` |
//! | `application` | `http_requests`, `http_distinct`, `http[]` (`method`, `host`, `url`, `count`, `first_seen`); `urls_distinct`, `urls[]` (`name`, `count`: http/https URLs in cleartext payloads); `dns` (`queries`, `responses`, `malformed`, `rcodes[]` (`name`, `count`), `names_distinct`, `names[]` (`name`, `qtype`, `queries`, `responses`)); `tls_client_hellos`, `tls_sni_distinct`, `tls_sni[]` (`name`, `count`); `entries_not_kept` |
//! | `parse_errors[]` | `kind` (`agent_common::ParseError::name`), `packets` |
//! | `detection` | `thresholds` (as in the config file), `window_s`, `poll_interval_s`, `readings`, `map_reads` (readings that needed the per-source state), `admission_changes` and `sources_deferred` (admission at the second sighting under a spoofed flood, as live), `alerts_by_rule` (episodes started per rule), `globals_packets` (packets in the detectors' state model) |
//! | `alerts[]` | the live agent's alert documents (`picket_detect::document::AlertDocument`: `@timestamp`, `event`, `rule`, `source`, `destination`, `picket`), timed by packet timestamps; `observer.hostname` is empty |
//! | `timeline` | `bucket_s`, `buckets[]` (`t_s` after the first packet, `packets`, `bytes` `[tcp, udp, icmp, other]`, `size_min`, `size_max`) |
//! | `packet_sizes[]` | `range` (`"40-79"`, …, `"5120+"`), `packets` |
//! | `warnings[]` | truncated or corrupt inputs, tables that overflowed, timestamps going backwards |

use std::collections::{BTreeMap, HashMap};

use agent_common::{
    ParseError, Summary,
    classify::{IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP, PARSE_ERROR_SLOTS},
    packet::Snapshot,
};
use serde::Serialize;

use picket_capture::link;

use super::{
    Options,
    app::AppStats,
    flows::FlowStats,
    names,
    reader::{Frame, InputInfo},
    timeline::{Class, SizeBin, SizeHistogram, Timeline, TimelineReport},
};
use picket_detect::{detector::Thresholds, document as output, episodes::Phase, replay::Detection};

/// Schema identifier of the JSON document.
pub const SCHEMA: &str = "picket-analyze/1";

/// The whole report.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// [`SCHEMA`].
    pub schema: &'static str,
    /// One entry per input file.
    pub inputs: Vec<InputInfo>,
    /// Totals over every packet.
    pub totals: Totals,
    /// Packets per link type.
    pub link_types: Vec<LinkTypeCount>,
    /// Protocol mix.
    pub protocols: Protocols,
    /// Top talkers.
    pub top_talkers: TopTalkers,
    /// TCP flows.
    pub tcp: TcpSummary,
    /// UDP flows.
    pub udp: UdpSummary,
    /// ICMP and ICMPv6 messages.
    pub icmp: Vec<IcmpMessage>,
    /// Application hints.
    pub application: Application,
    /// Parse errors by kind.
    pub parse_errors: Vec<ErrorCount>,
    /// Detector settings and counts.
    pub detection: DetectionSummary,
    /// Alert documents, as the live agent prints them.
    pub alerts: Vec<output::AlertDocument>,
    /// Alert lines in the live agent's text format (not in the JSON).
    #[serde(skip)]
    pub alert_lines: Vec<String>,
    /// Traffic over time.
    pub timeline: TimelineReport,
    /// Packet-size histogram.
    pub packet_sizes: Vec<SizeBin>,
    /// Problems met.
    pub warnings: Vec<String>,
}

/// Totals.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Totals {
    /// Packets read.
    pub packets: u64,
    /// Bytes on the wire.
    pub bytes: u64,
    /// Bytes captured.
    pub captured_bytes: u64,
    /// Time of the earliest packet.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start: Option<String>,
    /// Time of the latest packet.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end: Option<String>,
    /// Earliest packet, ns since the epoch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_ns: Option<u64>,
    /// Latest packet, ns since the epoch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_ns: Option<u64>,
    /// Seconds from the earliest to the latest packet.
    pub duration_s: f64,
    /// Average packet rate (0 when the duration is 0).
    pub packets_per_s: f64,
    /// Average bit rate (0 when the duration is 0).
    pub bits_per_s: f64,
    /// Packets of link types that are not decoded.
    pub unsupported_link_packets: u64,
    /// Packets whose timestamp is earlier than a previous packet's.
    pub out_of_order: u64,
}

/// Packets of one link type.
#[derive(Clone, Debug, Serialize)]
pub struct LinkTypeCount {
    /// Link type number.
    pub linktype: u32,
    /// Its name.
    pub name: String,
    /// Whether its packets are decoded.
    pub supported: bool,
    /// Packets.
    pub packets: u64,
    /// Bytes on the wire.
    pub bytes: u64,
}

/// One row of a protocol mix.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ProtoCount {
    /// Identifier (see the schema table).
    pub id: String,
    /// Name.
    pub name: String,
    /// Packets.
    pub packets: u64,
    /// Bytes on the wire.
    pub bytes: u64,
}

/// Protocol mix at three layers.
#[derive(Clone, Debug, Serialize)]
pub struct Protocols {
    /// By EtherType.
    pub ethertypes: Vec<ProtoCount>,
    /// By IP protocol (IP packets only).
    pub ip_protocols: Vec<ProtoCount>,
    /// By transport.
    pub l4: Vec<ProtoCount>,
}

/// One address.
#[derive(Clone, Debug, Serialize)]
pub struct Talker {
    /// Address.
    pub ip: String,
    /// Packets.
    pub packets: u64,
    /// Bytes.
    pub bytes: u64,
}

/// Traffic between two addresses, both directions.
#[derive(Clone, Debug, Serialize)]
pub struct Conversation {
    /// Lower address.
    pub a: String,
    /// Higher address.
    pub b: String,
    /// Packets.
    pub packets: u64,
    /// Bytes.
    pub bytes: u64,
}

/// Top talkers.
#[derive(Clone, Debug, Serialize)]
pub struct TopTalkers {
    /// Distinct source addresses.
    pub sources_distinct: usize,
    /// Distinct destination addresses.
    pub destinations_distinct: usize,
    /// Distinct address pairs.
    pub conversations_distinct: usize,
    /// Sources by bytes sent.
    pub sources: Vec<Talker>,
    /// Destinations by bytes received.
    pub destinations: Vec<Talker>,
    /// Address pairs by bytes.
    pub conversations: Vec<Conversation>,
}

/// TCP flow outcomes.
#[derive(Clone, Debug, Default, Serialize)]
pub struct TcpOutcomes {
    /// Flows whose three-way handshake completed (a SYN, then an ACK from its sender; the
    /// SYN-ACK may be missing from one-way captures).
    pub handshake_completed: u64,
    /// Closed by FIN in both directions.
    pub closed: u64,
    /// Reset.
    pub reset: u64,
    /// SYN seen, handshake never completed.
    pub half_open: u64,
    /// Still open at the end of the capture.
    pub open: u64,
}

/// One TCP or UDP flow.
#[derive(Clone, Debug, Serialize)]
pub struct Flow {
    /// Client address.
    pub client: String,
    /// Client port.
    pub client_port: u16,
    /// Server address.
    pub server: String,
    /// Server port.
    pub server_port: u16,
    /// Packets both ways.
    pub packets: u64,
    /// Bytes both ways.
    pub bytes: u64,
    /// Packets client → server.
    pub packets_to_server: u64,
    /// Packets server → client.
    pub packets_to_client: u64,
    /// First packet.
    pub first_seen: String,
    /// Seconds from the first to the last packet.
    pub duration_s: f64,
}

/// One TCP flow.
#[derive(Clone, Debug, Serialize)]
pub struct TcpFlow {
    /// Endpoints and counts.
    #[serde(flatten)]
    pub flow: Flow,
    /// Every flag seen.
    pub flags: String,
    /// Handshake progress.
    pub handshake: &'static str,
    /// Whether the handshake completed.
    pub handshake_completed: bool,
    /// Outcome.
    pub outcome: &'static str,
}

/// TCP connections started in one minute.
#[derive(Clone, Debug, Serialize)]
pub struct MinuteCount {
    /// Start of the minute.
    pub minute: String,
    /// Flows opened by a SYN in it.
    pub connections: u64,
}

/// The TCP section.
#[derive(Clone, Debug, Serialize)]
pub struct TcpSummary {
    /// Flows.
    pub flows_total: usize,
    /// Outcome counts.
    pub outcomes: TcpOutcomes,
    /// Connections started per minute, in time order.
    pub connections_per_minute: Vec<MinuteCount>,
    /// Top flows by bytes.
    pub flows: Vec<TcpFlow>,
}

/// The UDP section.
#[derive(Clone, Debug, Serialize)]
pub struct UdpSummary {
    /// Flows.
    pub flows_total: usize,
    /// Top flows by bytes.
    pub flows: Vec<Flow>,
}

/// ICMP messages of one type and code.
#[derive(Clone, Debug, Serialize)]
pub struct IcmpMessage {
    /// `icmp` or `icmpv6`.
    pub version: &'static str,
    /// Type.
    pub r#type: u8,
    /// Code.
    pub code: u8,
    /// "Type / Code" name.
    pub name: String,
    /// Packets.
    pub packets: u64,
    /// Bytes.
    pub bytes: u64,
}

/// A string and how often it was seen.
#[derive(Clone, Debug, Serialize)]
pub struct NameCount {
    /// The string.
    pub name: String,
    /// Occurrences.
    pub count: u64,
}

/// An HTTP request (method, host and URL), with how often it was seen.
#[derive(Clone, Debug, Serialize)]
pub struct HttpRequest {
    /// Method.
    pub method: String,
    /// Host header (empty when absent).
    pub host: String,
    /// Full URL.
    pub url: String,
    /// Requests.
    pub count: u64,
    /// First one.
    pub first_seen: String,
}

/// A DNS question.
#[derive(Clone, Debug, Serialize)]
pub struct DnsName {
    /// Name.
    pub name: String,
    /// Record type.
    pub qtype: String,
    /// Queries.
    pub queries: u64,
    /// Responses.
    pub responses: u64,
}

/// DNS over UDP/53 and TCP/53.
#[derive(Clone, Debug, Serialize)]
pub struct DnsSummary {
    /// Queries.
    pub queries: u64,
    /// Responses.
    pub responses: u64,
    /// Port-53 payloads that are not DNS.
    pub malformed: u64,
    /// Responses by response code.
    pub rcodes: Vec<NameCount>,
    /// Distinct questions.
    pub names_distinct: usize,
    /// Top questions.
    pub names: Vec<DnsName>,
}

/// Application hints.
#[derive(Clone, Debug, Serialize)]
pub struct Application {
    /// HTTP requests seen.
    pub http_requests: u64,
    /// Distinct (method, host, URL).
    pub http_distinct: usize,
    /// Top requests.
    pub http: Vec<HttpRequest>,
    /// Distinct URLs in cleartext payloads.
    pub urls_distinct: usize,
    /// Top URLs.
    pub urls: Vec<NameCount>,
    /// DNS.
    pub dns: DnsSummary,
    /// TLS ClientHellos seen.
    pub tls_client_hellos: u64,
    /// Distinct SNI names.
    pub tls_sni_distinct: usize,
    /// Top SNI names.
    pub tls_sni: Vec<NameCount>,
    /// New entries not kept because a table was full.
    pub entries_not_kept: u64,
}

/// Parse errors of one kind.
#[derive(Clone, Debug, Serialize)]
pub struct ErrorCount {
    /// Kind.
    pub kind: &'static str,
    /// Packets.
    pub packets: u64,
}

/// Detector settings and counts.
#[derive(Clone, Debug, Serialize)]
pub struct DetectionSummary {
    /// Thresholds in force.
    pub thresholds: Thresholds,
    /// Window of the distinct counts, seconds of capture time.
    pub window_s: f64,
    /// Interval between readings, seconds of capture time.
    pub poll_interval_s: f64,
    /// Readings taken.
    pub readings: u64,
    /// Readings that included the per-source and per-destination state.
    pub map_reads: u64,
    /// Times admission at the second sighting turned on or off.
    pub admission_changes: u64,
    /// Packets of unknown sources not admitted to the per-source state.
    pub sources_deferred: u64,
    /// Episodes started per rule.
    pub alerts_by_rule: BTreeMap<String, u64>,
    /// Packets in the state model's global counters (every classified or rejected packet).
    pub globals_packets: u64,
}

/// Packets and bytes (shared with the flow tables).
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Count {
    pub(super) packets: u64,
    pub(super) bytes: u64,
}

impl Count {
    pub(super) fn add(&mut self, bytes: u64) {
        self.packets += 1;
        self.bytes += bytes;
    }
}

/// EtherType-level key of a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum L2 {
    Type(u16),
    Llc,
    None,
    Unparsed,
}

/// Transport rows, in report order.
const L4: [(&str, &str); 7] = [
    ("tcp", "TCP"),
    ("udp", "UDP"),
    ("icmp", "ICMP"),
    ("icmpv6", "ICMPv6"),
    (
        "other_ip",
        "Other IP (other protocols, non-first fragments)",
    ),
    ("non_ip", "Non-IP"),
    ("unparsed", "Unparsed (parse error)"),
];

/// Accumulates everything the report needs, one frame at a time.
pub struct Aggregator {
    top: usize,
    window_s: f64,
    poll_s: f64,
    thresholds: Thresholds,
    totals: Totals,
    first: Option<u64>,
    last: Option<u64>,
    prev_ts: Option<u64>,
    linktypes: BTreeMap<u32, Count>,
    l2: HashMap<L2, Count>,
    ip: HashMap<u8, Count>,
    l4: [Count; 7],
    errors: [u64; PARSE_ERROR_SLOTS],
    flows: FlowStats,
    app: AppStats,
    timeline: Timeline,
    sizes: SizeHistogram,
    detection: Detection,
    inputs: Vec<InputInfo>,
}

impl Aggregator {
    /// An empty aggregation with the given options.
    pub fn new(opts: &Options) -> Self {
        Aggregator {
            top: opts.top,
            window_s: opts.window.as_secs_f64(),
            poll_s: opts.poll_interval.as_secs_f64(),
            thresholds: opts.thresholds.clone(),
            totals: Totals::default(),
            first: None,
            last: None,
            prev_ts: None,
            linktypes: BTreeMap::new(),
            l2: HashMap::new(),
            ip: HashMap::new(),
            l4: [Count::default(); 7],
            errors: [0; PARSE_ERROR_SLOTS],
            flows: FlowStats::default(),
            app: AppStats::default(),
            timeline: Timeline::default(),
            sizes: SizeHistogram::default(),
            detection: Detection::new(
                opts.thresholds.clone(),
                opts.poll_interval,
                opts.window,
                opts.allow.clone(),
            ),
            inputs: Vec::new(),
        }
    }

    /// Accounts one captured frame.
    pub fn frame(&mut self, f: &Frame<'_>) {
        // Simple packet blocks carry no time: they get the previous packet's.
        let ts = f.ts_ns.or(self.prev_ts).unwrap_or(0);
        if self.prev_ts.is_some_and(|p| ts < p) {
            self.totals.out_of_order += 1;
        }
        self.prev_ts = Some(ts);
        let wire = u64::from(f.orig_len).max(f.data.len() as u64);
        self.totals.packets += 1;
        self.totals.bytes += wire;
        self.totals.captured_bytes += f.data.len() as u64;
        self.first = Some(self.first.map_or(ts, |t| t.min(ts)));
        self.last = Some(self.last.map_or(ts, |t| t.max(ts)));
        self.linktypes.entry(f.linktype).or_default().add(wire);
        self.sizes.add(wire);
        let snap = Snapshot {
            data: f.data,
            orig_len: f.orig_len as usize,
        };
        let Some(parsed) = link::classify(f.linktype, &snap) else {
            self.totals.unsupported_link_packets += 1;
            self.timeline.add(ts, Class::Other, wire);
            return;
        };
        self.detection.feed(&parsed, wire, ts);
        match &parsed {
            Ok(s) => self.classified(s, f, wire, ts),
            Err(e) => {
                self.errors[*e as usize % PARSE_ERROR_SLOTS] += 1;
                self.l2.entry(L2::Unparsed).or_default().add(wire);
                self.l4[6].add(wire);
                self.timeline.add(ts, Class::Other, wire);
            }
        }
    }

    fn classified(&mut self, s: &Summary, f: &Frame<'_>, wire: u64, ts: u64) {
        let l2 = if s.is_ip() || (link::has_ethertype(f.linktype) && s.ethertype >= 0x0600) {
            L2::Type(s.ethertype)
        } else if link::has_ethertype(f.linktype) {
            L2::Llc
        } else {
            L2::None
        };
        self.l2.entry(l2).or_default().add(wire);
        // The same categories as `Globals::observe`.
        let (row, class) = if !s.is_ip() {
            (5, Class::Other)
        } else if !s.has_l4() {
            (4, Class::Other)
        } else {
            match s.proto {
                IPPROTO_TCP => (0, Class::Tcp),
                IPPROTO_UDP => (1, Class::Udp),
                IPPROTO_ICMP => (2, Class::Icmp),
                IPPROTO_ICMPV6 => (3, Class::Icmp),
                _ => (4, Class::Other),
            }
        };
        self.l4[row].add(wire);
        self.timeline.add(ts, class, wire);
        if s.is_ip() {
            self.ip.entry(s.proto).or_default().add(wire);
            self.flows.observe(s, f.data, wire, ts);
            self.app.observe(s, f.data, ts);
        }
    }

    /// Records an input once it has been read.
    pub fn input(&mut self, info: InputInfo) {
        self.inputs.push(info);
    }

    /// The report.
    pub fn finish(self) -> Report {
        let top = self.top;
        let det = self.detection.finish();
        let mut totals = self.totals;
        if let (Some(first), Some(last)) = (self.first, self.last) {
            totals.start = Some(output::rfc3339(first));
            totals.end = Some(output::rfc3339(last));
            totals.start_ns = Some(first);
            totals.end_ns = Some(last);
            totals.duration_s = last.saturating_sub(first) as f64 / 1e9;
        }
        if totals.duration_s > 0.0 {
            totals.packets_per_s = totals.packets as f64 / totals.duration_s;
            totals.bits_per_s = totals.bytes as f64 * 8.0 / totals.duration_s;
        }
        let mut warnings: Vec<String> = self
            .inputs
            .iter()
            .flat_map(|i| i.warnings.iter().map(move |w| format!("{}: {w}", i.name)))
            .collect();
        if totals.out_of_order > 0 {
            warnings.push(format!(
                "{} packets are earlier than a packet before them; detectors account them at the latest time seen",
                totals.out_of_order
            ));
        }
        if self.flows.untracked() > 0 {
            warnings.push(format!(
                "{} packets belong to flows or addresses beyond the table limits",
                self.flows.untracked()
            ));
        }
        let application = self.app.finish(top);
        if application.entries_not_kept > 0 {
            warnings.push(format!(
                "{} application entries beyond the table limits were not kept",
                application.entries_not_kept
            ));
        }
        let mut alerts_by_rule = BTreeMap::new();
        for e in det.events.iter().filter(|e| e.phase == Phase::Start) {
            *alerts_by_rule
                .entry(e.finding.rule.name().to_string())
                .or_default() += 1;
        }
        Report {
            schema: SCHEMA,
            inputs: self.inputs,
            link_types: self
                .linktypes
                .iter()
                .map(|(lt, c)| LinkTypeCount {
                    linktype: *lt,
                    name: names::linktype(*lt),
                    supported: link::supported(*lt),
                    packets: c.packets,
                    bytes: c.bytes,
                })
                .collect(),
            protocols: Protocols {
                ethertypes: rows(self.l2.iter().map(|(k, c)| {
                    let (id, name) = match k {
                        L2::Type(t) => (format!("0x{t:04x}"), names::ethertype(*t).to_string()),
                        L2::Llc => ("llc".into(), "802.3 length field (LLC)".into()),
                        L2::None => ("none".into(), "No link-layer type".into()),
                        L2::Unparsed => ("unparsed".into(), "Unparsed (parse error)".into()),
                    };
                    (id, name, *c)
                })),
                ip_protocols: rows(
                    self.ip
                        .iter()
                        .map(|(p, c)| (p.to_string(), names::ip_proto(*p).to_string(), *c)),
                ),
                l4: L4
                    .iter()
                    .zip(self.l4)
                    .filter(|(_, c)| c.packets > 0)
                    .map(|((id, name), c)| ProtoCount {
                        id: id.to_string(),
                        name: name.to_string(),
                        packets: c.packets,
                        bytes: c.bytes,
                    })
                    .collect(),
            },
            top_talkers: self.flows.talkers(top),
            tcp: self.flows.tcp_summary(top),
            udp: self.flows.udp_summary(top),
            icmp: self.flows.icmp(),
            application,
            parse_errors: ParseError::ALL
                .iter()
                .map(|e| ErrorCount {
                    kind: e.name(),
                    packets: self.errors[*e as usize % PARSE_ERROR_SLOTS],
                })
                .filter(|e| e.packets > 0)
                .collect(),
            detection: DetectionSummary {
                thresholds: self.thresholds,
                window_s: self.window_s,
                poll_interval_s: self.poll_s,
                readings: det.readings,
                map_reads: det.map_reads,
                admission_changes: det.admission_changes,
                sources_deferred: det.globals[0].src_deferred,
                alerts_by_rule,
                globals_packets: det.globals[0].packets,
            },
            alerts: det
                .events
                .iter()
                .map(|e| output::AlertDocument::new(e, ""))
                .collect(),
            alert_lines: det.events.iter().map(output::alert_text).collect(),
            timeline: self.timeline.finish(),
            packet_sizes: self.sizes.finish(),
            totals,
            warnings,
        }
    }
}

/// Protocol rows sorted by packets (then id).
fn rows(it: impl Iterator<Item = (String, String, Count)>) -> Vec<ProtoCount> {
    let mut v: Vec<ProtoCount> = it
        .map(|(id, name, c)| ProtoCount {
            id,
            name,
            packets: c.packets,
            bytes: c.bytes,
        })
        .collect();
    v.sort_by(|a, b| b.packets.cmp(&a.packets).then_with(|| a.id.cmp(&b.id)));
    v
}
