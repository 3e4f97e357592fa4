//! The report of `picket analyze`: the types that make up the JSON document (`--json`), which
//! the text and HTML outputs render too. [`crate::aggregate`] builds it.
//!
//! # JSON schema (`"schema": "picket-analyze/1"`)
//!
//! One object; every list is sorted (largest first, ties by name) and holds every entry the
//! tables kept (`--top` trims the text and HTML only); `limits` gives the table sizes and
//! what they cut, and the `*_distinct` / `*_total` fields the full counts.
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
//! | `tcp` | `flows_total`; `outcomes` (`handshake_completed`, `closed`, `reset`, `half_open`, `open`); `connections_per_minute[]` (`minute`, `minute_ns`, `connections`: flows opened by a SYN; minutes without any are left out); `flows[]` by bytes: `client`, `client_port`, `server`, `server_port` (client = sender of the first SYN, else receiver of the first SYN-ACK, else sender of the first packet; a SYN with a new sequence number or on a closed flow starts a new flow, as Wireshark's streams), `packets`, `bytes`, `packets_to_server`, `packets_to_client`, `bytes_to_server`, `bytes_to_client`, `first_seen`, `last_seen`, `duration_s`, `app` (`http`, `tls`, `dns`, `ssdp` from the flow's first head, else empty), `app_name` (HTTP Host, TLS SNI or DNS question), `flags` (`"SYN,ACK,FIN"`: every flag seen), `handshake` (`completed`: SYN then an ACK from the client; `syn`; `syn_ack`: SYN and SYN-ACK only; `syn_ack_only`; `not_seen`: joined mid-stream), `handshake_completed`, `outcome` (`closed`: FIN both ways; `reset`: a RST; `half_open`: SYN without completed handshake; `open`: still open at the end) |
//! | `udp` | `flows_total`; `flows[]`: as TCP without flags, handshake and outcome (client = sender of the first packet) |
//! | `icmp[]` | `version` (`icmp`/`icmpv6`), `type`, `code`, `name` (`"Destination Unreachable / Port Unreachable"`), `packets`, `bytes` |
//! | `application` | `http_requests`, `http_distinct`, `http[]` (`method`, `host`, `url`, `count`, `first_seen`); `urls_distinct`, `urls[]` (`name`, `count`: http/https URLs in cleartext payloads); `dns` (`queries`, `responses`, `malformed`, `rcodes[]` (`name`, `count`), `names_distinct`, `names[]` (`name`, `qtype`, `queries`, `responses`)); `tls_client_hellos`, `tls_sni_distinct`, `tls_sni[]` (`name`, `count`); `http_responses`, `http_status[]` (`name`: the status code, `count`); `entries_not_kept`; `not_kept` (`http`, `urls`, `dns_names`, `tls_sni`: entries not kept because the table was full; `streams`: TCP segments read without reassembly because the stream table was full). HTTP, TLS and DNS-over-TCP heads are reassembled across TCP segments (out of order and retransmitted; see `picket_analyze::streams`); any RFC 9110 method token counts |
//! | `parse_errors[]` | `kind` (`agent_common::ParseError::name`), `packets` |
//! | `tunnels[]` | one level of VXLAN, Geneve, GRE or IP-in-IP decapsulated (every other table counts those packets once, by their inner packet): `kind` (`vxlan`, `geneve`, `gre`, `ipip`, `6in4`, `4in6`, `6in6`), `outer_src`, `outer_dst`, `vni` (VNI or GRE key, 0 for none), `packets`, `bytes` (outer frames), `inner_sources` (distinct inner source addresses, at most 4096 counted) |
//! | `detection` | `thresholds` (as in the config file), `window_s`, `poll_interval_s`, `readings`, `map_reads` (readings that needed the per-source state), `admission_changes` and `sources_deferred` (admission at the second sighting under a spoofed flood, as live), `alerts_by_rule` (episodes started per rule), `globals_packets` (packets in the detectors' state model) |
//! | `alerts[]` | the live agent's alert documents (`picket_detect::document::AlertDocument`: `@timestamp`, `event`, `rule`, `source`, `destination`, `picket`), timed by packet timestamps; `observer.hostname` is empty |
//! | `timeline` | `bucket_s`, `buckets[]` (`t_s` after the first packet, `packets`, `bytes` `[tcp, udp, icmp, other]`, `size_min`, `size_max`) |
//! | `packet_sizes[]` | `range` (`"40-79"`, …, `"5120+"`), `packets` |
//! | `limits` | `flows_max`, `addresses_max`, `application_entries_max`, `tcp_streams_max`: the table sizes that bound memory; `packets_untracked`: packets whose flow or ICMP entry did not fit; `packets_addresses_untracked`: packets whose address or address pair did not fit |
//! | `filter` | with `-f` only: `expression`, `packets_read`, `packets_matched` (the packets every other section counts) |
//! | `warnings[]` | truncated or corrupt inputs, tables that overflowed, timestamps going backwards |

use std::collections::BTreeMap;

use serde::Serialize;

pub use super::app::NotKept;
use super::{
    reader::InputInfo,
    timeline::{SizeBin, TimelineReport},
};
use picket_detect::detector::Thresholds;

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
    /// Tunnels decapsulated (the other tables count their packets by the inner packet).
    pub tunnels: Vec<crate::tunnels::TunnelRow>,
    /// Detector settings and counts.
    pub detection: DetectionSummary,
    /// Alert documents, as the live agent prints them.
    pub alerts: Vec<picket_detect::document::AlertDocument>,
    /// Alert lines in the live agent's text format (not in the JSON).
    #[serde(skip)]
    pub alert_lines: Vec<String>,
    /// Traffic over time.
    pub timeline: TimelineReport,
    /// Packet-size histogram.
    pub packet_sizes: Vec<SizeBin>,
    /// Table limits and what they cut.
    pub limits: Limits,
    /// The capture filter (`-f`), when one was given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filter: Option<FilterSummary>,
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
    /// Bytes client → server.
    pub bytes_to_server: u64,
    /// Bytes server → client.
    pub bytes_to_client: u64,
    /// First packet.
    pub first_seen: String,
    /// Last packet.
    pub last_seen: String,
    /// Seconds from the first to the last packet.
    pub duration_s: f64,
    /// Application seen in the flow's heads (`http`, `tls`, `dns`, `ssdp`; empty if none).
    pub app: &'static str,
    /// Its name: HTTP Host, TLS server name or DNS question (empty if none).
    pub app_name: String,
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
    /// The same, in ns since the epoch.
    pub minute_ns: u64,
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
    /// HTTP response heads seen.
    pub http_responses: u64,
    /// Responses by status code.
    pub http_status: Vec<NameCount>,
    /// New entries not kept because a table was full (sum of `not_kept` but `streams`).
    pub entries_not_kept: u64,
    /// Per table: entries not kept, and segments read without reassembly.
    pub not_kept: NotKept,
}

/// The capture filter and what it kept.
#[derive(Clone, Debug, Serialize)]
pub struct FilterSummary {
    /// The expression (libpcap syntax).
    pub expression: String,
    /// Packets read from the inputs.
    pub packets_read: u64,
    /// Packets that passed and were analysed (`totals.packets`).
    pub packets_matched: u64,
}

/// The tables' size limits, which bound memory on captures of any size, and what they cut.
#[derive(Clone, Debug, Serialize)]
pub struct Limits {
    /// Most TCP flows, and most UDP flows, kept.
    pub flows_max: usize,
    /// Most addresses (sources, destinations) and address pairs kept.
    pub addresses_max: usize,
    /// Most entries of each application table (HTTP, URLs, DNS names, SNI).
    pub application_entries_max: usize,
    /// Most TCP stream directions reassembled at once.
    pub tcp_streams_max: usize,
    /// Packets whose flow or ICMP entry was not kept because a table was full.
    pub packets_untracked: u64,
    /// Packets whose address or address pair was not kept because a table was full.
    pub packets_addresses_untracked: u64,
}

impl Report {
    /// The report with every ranked list cut to its first `top` entries (0: all), for
    /// the text and HTML renderings; the JSON keeps every row.
    pub fn trimmed(&self, top: usize) -> Report {
        let mut r = self.clone();
        if top == 0 {
            return r;
        }
        let t = &mut r.top_talkers;
        t.sources.truncate(top);
        t.destinations.truncate(top);
        t.conversations.truncate(top);
        r.tcp.flows.truncate(top);
        r.udp.flows.truncate(top);
        let a = &mut r.application;
        a.http.truncate(top);
        a.urls.truncate(top);
        a.dns.names.truncate(top);
        a.tls_sni.truncate(top);
        r
    }
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
pub(crate) struct Count {
    pub(crate) packets: u64,
    pub(crate) bytes: u64,
}

impl Count {
    pub(crate) fn add(&mut self, bytes: u64) {
        self.packets += 1;
        self.bytes += bytes;
    }
}
