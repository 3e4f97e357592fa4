//! Alert and summary documents: readable text lines or JSON documents with ECS-style field
//! names, the same live and in `picket analyze`.
//!
//! The JSON documents are types: [`AlertDocument`] and [`SummaryDocument`], each field
//! documented with its dotted name. Their fields are declared in alphabetical order, at every
//! level, so that the serialized keys come sorted as they always have; optional fields
//! (`source`, `destination`, `host`, `observer.name`, most of `picket.details`) are left out
//! when absent. The exact JSON is pinned by the tests at the end of this file.

use std::net::IpAddr;

use agent_common::state::AddrKey;
use serde::Serialize;

use crate::{
    blocking::{BlockAction, BlockEvent, BlockReason},
    detector::{Details, Rule, Scope, Unit},
    episodes::{AlertEvent, Phase},
    snapshot::Snapshot,
};

/// RFC 3339 UTC time with milliseconds.
pub fn rfc3339(ns: u64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_nanos(ns);
    humantime::format_rfc3339_millis(t).to_string()
}

/// Periodic traffic summary.
#[derive(Clone, Debug, PartialEq)]
pub struct SummaryLine {
    /// Wall-clock time, ns since the Unix epoch.
    pub at_ns: u64,
    /// Seconds covered.
    pub interval_s: f64,
    /// Ingress packets per second.
    pub packets_per_s: f64,
    /// Ingress bytes per second.
    pub bytes_per_s: f64,
    /// Egress packets per second.
    pub egress_packets_per_s: f64,
    /// Parse errors in the interval.
    pub parse_errors: u64,
    /// Fragments in the interval.
    pub fragments: u64,
    /// Per-source entries in use and capacity.
    pub sources: (usize, u32),
    /// Addresses that received packets in the last poll, and the receiver slots per bank.
    pub dests: (usize, u32),
    /// Failed map updates in the interval.
    pub map_failures: u64,
    /// Packets from unknown sources not admitted (admission control under a flood).
    pub deferred: u64,
    /// Top sources by packet rate in the last poll (unrounded).
    pub top: Vec<TopSource>,
    /// Packets the kernel dropped in the interval because a capture ring was full
    /// (`--hook afpacket` only).
    pub capture_drops: Option<u64>,
}

impl SummaryLine {
    /// Builds a summary of what happened between two snapshots.
    pub fn new(cur: &Snapshot, prev: &Snapshot) -> Self {
        let dt = (cur.mono_ns.saturating_sub(prev.mono_ns) as f64 / 1e9).max(1e-9);
        let (ci, pi) = (&cur.globals[0], &prev.globals[0]);
        let (ce, pe) = (&cur.globals[1], &prev.globals[1]);
        let secs = cur.tick.secs.max(1e-9);
        let mut top: Vec<TopSource> = cur
            .tick
            .src
            .iter()
            .filter(|s| s.head.pkts_lower() > 0)
            .map(|s| TopSource {
                bytes_per_s: f64::from(s.head.bytes) / secs,
                ip: AddrKey {
                    addr: s.head.addr_bytes(),
                }
                .ip(),
                packets_per_s: f64::from(s.head.pkts_lower()) / secs,
            })
            .collect();
        top.sort_by(|a, b| b.packets_per_s.total_cmp(&a.packets_per_s));
        top.truncate(5);
        let failures = |g: &agent_common::state::Globals| g.src_failures;
        SummaryLine {
            at_ns: cur.wall_ns,
            interval_s: dt,
            packets_per_s: ci.packets.saturating_sub(pi.packets) as f64 / dt,
            bytes_per_s: ci.bytes.saturating_sub(pi.bytes) as f64 / dt,
            egress_packets_per_s: ce.packets.saturating_sub(pe.packets) as f64 / dt,
            parse_errors: (ci.parse_error_total() + ce.parse_error_total())
                .saturating_sub(pi.parse_error_total() + pe.parse_error_total()),
            fragments: ci.fragments.saturating_sub(pi.fragments),
            sources: (cur.sources.len(), cur.src_capacity),
            dests: (cur.tick.dst.len(), cur.tick.dst_slots),
            map_failures: (failures(ci) + failures(ce)).saturating_sub(failures(pi) + failures(pe)),
            deferred: ci.src_deferred.saturating_sub(pi.src_deferred),
            top,
            capture_drops: None,
        }
    }
}

/// `event.kind`: what a document is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// An alert event ([`AlertDocument`]).
    Alert,
    /// A periodic traffic summary ([`SummaryDocument`]).
    Summary,
    /// A source blocked or unblocked ([`BlockDocument`]).
    Block,
}

/// `observer`: the machine that saw the traffic.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Observer {
    /// `observer.hostname`: the kernel's host name (empty in `picket analyze`).
    pub hostname: String,
    /// `observer.name`: the node name from `NODE_NAME`, absent when unset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `observer.product`: always `picket`.
    pub product: &'static str,
}

impl Observer {
    fn new(hostname: &str) -> Self {
        Observer {
            hostname: hostname.to_string(),
            name: None,
            product: "picket",
        }
    }
}

/// `host`: the node the agent runs on (only with `NODE_NAME`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Host {
    /// `host.name`: the node name.
    pub name: String,
}

/// `source` or `destination`: one address.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Endpoint {
    /// `source.ip` / `destination.ip`.
    pub ip: IpAddr,
}

/// `event` of an alert.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AlertEventFields {
    /// `event.action`: `start`, `update` or `end`.
    pub action: Phase,
    /// `event.duration`: nanoseconds since the episode started.
    pub duration: u64,
    /// `event.id`: the episode, shared by all its events.
    pub id: u64,
    /// `event.kind`: `alert`.
    pub kind: EventKind,
    /// `event.start`: when the episode started (RFC 3339).
    pub start: String,
}

/// `rule` of an alert.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct RuleField {
    /// `rule.name`: the rule's snake_case name (`port_scan`, …).
    pub name: Rule,
}

/// `picket` of an alert: what crossed which bar.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AlertFields {
    /// `picket.details`: rule-specific context.
    pub details: Details,
    /// `picket.estimated`: true when `value` is a sketch's estimate, not an exact count.
    pub estimated: bool,
    /// `picket.peak`: the highest value of the episode so far.
    pub peak: f64,
    /// `picket.scope`: `source` or `destination`, the offender's side.
    pub scope: Scope,
    /// `picket.threshold`: the bar `value` crossed.
    pub threshold: f64,
    /// `picket.unit`: unit of `value`, `peak` and `threshold`.
    pub unit: Unit,
    /// `picket.value`: the observed value (distinct count, or rate per second).
    pub value: f64,
    /// `picket.window_s`: seconds `value` was measured over.
    pub window_s: f64,
}

/// The JSON document of an alert event, one line of `--output json` and one entry of the
/// `alerts` of `picket analyze --json`. Fields are declared, and so serialized, in
/// alphabetical order; absent ones are left out.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AlertDocument {
    /// `@timestamp`: when the event happened (RFC 3339, UTC, milliseconds).
    #[serde(rename = "@timestamp")]
    pub timestamp: String,
    /// `destination`: the probed host or the flood's target; absent for host sweeps.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub destination: Option<Endpoint>,
    /// `event`: kind, phase, episode and timing.
    pub event: AlertEventFields,
    /// `host`: the node, with `NODE_NAME` only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<Host>,
    /// `observer`: the machine that saw the traffic.
    pub observer: Observer,
    /// `picket`: value, threshold and details.
    pub picket: AlertFields,
    /// `rule`: which rule matched.
    pub rule: RuleField,
    /// `source`: the offender; absent for destination-scoped floods (spoofed sources).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<Endpoint>,
}

impl AlertDocument {
    /// The document of `e`, observed on `hostname`.
    pub fn new(e: &AlertEvent, hostname: &str) -> Self {
        let f = &e.finding;
        AlertDocument {
            timestamp: rfc3339(e.at_ns),
            destination: f.destination.map(|ip| Endpoint { ip }),
            event: AlertEventFields {
                action: e.phase,
                duration: e.at_ns.saturating_sub(e.started_ns),
                id: e.episode,
                kind: EventKind::Alert,
                start: rfc3339(e.started_ns),
            },
            host: None,
            observer: Observer::new(hostname),
            picket: AlertFields {
                details: f.details.clone(),
                estimated: f.estimated,
                peak: e.peak,
                scope: f.scope,
                threshold: f.threshold,
                unit: f.unit,
                value: f.value,
                window_s: f.window_s,
            },
            rule: RuleField { name: f.rule },
            source: f.source.map(|ip| Endpoint { ip }),
        }
    }

    /// Adds the node name as `observer.name` and `host.name`.
    pub fn on_node(mut self, node: &str) -> Self {
        self.observer.name = Some(node.to_string());
        self.host = Some(Host {
            name: node.to_string(),
        });
        self
    }
}

/// `event` of a block event.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BlockEventFields {
    /// `event.action`: `block` or `unblock`.
    pub action: BlockAction,
    /// `event.id`: the episode that blocked the source.
    pub id: u64,
    /// `event.kind`: `block`.
    pub kind: EventKind,
    /// `event.reason`: `episode`, `expired` or `evicted`.
    pub reason: BlockReason,
}

/// `picket` of a block event.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BlockFields {
    /// `picket.dry_run`: nothing is dropped, only counted.
    pub dry_run: bool,
    /// `picket.ttl_s`: how long the block outlives the source's last episode.
    pub ttl_s: f64,
}

/// The JSON document of a block event (`--block`), one line of `--output json`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BlockDocument {
    /// `@timestamp`: when the block changed.
    #[serde(rename = "@timestamp")]
    pub timestamp: String,
    /// `event`: kind, action, reason, episode.
    pub event: BlockEventFields,
    /// `host`: the node, with `NODE_NAME` only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<Host>,
    /// `observer`: the machine that blocks.
    pub observer: Observer,
    /// `picket`: dry run and ttl.
    pub picket: BlockFields,
    /// `rule`: the rule of the episode that blocked the source.
    pub rule: RuleField,
    /// `source`: the blocked source.
    pub source: Endpoint,
}

impl BlockDocument {
    /// The document of `e`, on `hostname`.
    pub fn new(e: &BlockEvent, fields: BlockFields, hostname: &str) -> Self {
        BlockDocument {
            timestamp: rfc3339(e.at_ns),
            event: BlockEventFields {
                action: e.action,
                id: e.episode,
                kind: EventKind::Block,
                reason: e.reason,
            },
            host: None,
            observer: Observer::new(hostname),
            picket: fields,
            rule: RuleField { name: e.rule },
            source: Endpoint { ip: e.ip },
        }
    }

    /// Adds the node name as `observer.name` and `host.name`.
    pub fn on_node(mut self, node: &str) -> Self {
        self.observer.name = Some(node.to_string());
        self.host = Some(Host {
            name: node.to_string(),
        });
        self
    }
}

/// The text line of a block event.
pub fn block_text(e: &BlockEvent, dry_run: bool) -> String {
    let what = match e.action {
        BlockAction::Block => "BLOCK  ",
        BlockAction::Unblock => "UNBLOCK",
    };
    let dry = if dry_run { " (dry run)" } else { "" };
    let reason = match e.reason {
        BlockReason::Episode => "",
        BlockReason::Expired => " expired",
        BlockReason::Evicted => " evicted (block map full)",
    };
    format!(
        "{} {what}{dry} {} ({} #{}){reason}",
        rfc3339(e.at_ns),
        e.ip,
        e.rule,
        e.episode
    )
}

/// The text line of an alert event.
pub fn alert_text(e: &AlertEvent) -> String {
    let f = &e.finding;
    let who = match (f.scope, f.source, f.destination) {
        (Scope::Source, Some(s), Some(d)) if f.rule != Rule::HostSweep => format!("{s} -> {d}"),
        (Scope::Source, Some(s), _) => s.to_string(),
        (Scope::Destination, _, Some(d)) => match f.details.destination_prefix {
            Some(net) => format!("many sources -> {net}"),
            None => format!("many sources -> {d}"),
        },
        (Scope::Storm, ..) => "many offenders".into(),
        _ => "?".into(),
    };
    let approx = if f.estimated { "~" } else { "" };
    let what = match e.phase {
        Phase::Start | Phase::Update => format!(
            "{approx}{} {} (threshold {}, window {:.0}s)",
            f.value, f.unit, f.threshold, f.window_s
        ),
        Phase::End => format!("peak {} {}, lasted {:.1}s", e.peak, f.unit, e.duration_s()),
    };
    let mut extra = String::new();
    if f.rule == Rule::PortScan && e.phase == Phase::Start {
        let ports: Vec<String> = f
            .details
            .ports
            .iter()
            .take(12)
            .map(u16::to_string)
            .collect();
        extra = format!(
            " ports {}{}",
            ports.join(","),
            if f.details.ports.len() > 12 {
                ",…"
            } else {
                ""
            }
        );
    }
    if let Some(n) = f.details.distinct_sources {
        let approx = if f.details.saturated { "≥" } else { "~" };
        extra.push_str(&format!(" from {approx}{n} sources"));
    }
    if let Some(s) = &f.details.sources {
        let approx = if s.estimated { "≥" } else { "" };
        let sample: Vec<String> = s.sample.iter().take(4).map(|ip| ip.to_string()).collect();
        let more = if s.count as usize > sample.len() {
            ",…"
        } else {
            ""
        };
        extra.push_str(&format!(
            " from {approx}{} sources ({}{more})",
            s.count,
            sample.join(",")
        ));
    }
    if f.details.folded > 0 {
        extra.push_str(&format!(", {} folded", f.details.folded));
    }
    let phase = match e.phase {
        Phase::Start => "START ",
        Phase::Update => "UPDATE",
        Phase::End => "END   ",
    };
    format!(
        "{} ALERT {phase} #{} {} {who}: {what}{extra}",
        rfc3339(e.at_ns),
        e.episode,
        f.rule
    )
}

/// `event` of a summary.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct SummaryEventFields {
    /// `event.kind`: `summary`.
    pub kind: EventKind,
}

/// Entries in use and capacity of one kernel map.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct MapUse {
    /// Capacity (entries are evicted beyond it).
    pub capacity: u32,
    /// Entries in use.
    pub entries: usize,
}

/// One of `picket.top_sources`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct TopSource {
    /// Bytes per second, rounded.
    pub bytes_per_s: f64,
    /// The source address.
    pub ip: IpAddr,
    /// Packets per second, rounded.
    pub packets_per_s: f64,
}

/// `picket` of a summary: traffic and map use over the interval.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SummaryFields {
    /// `picket.bytes_per_s`: ingress bytes per second, rounded.
    pub bytes_per_s: f64,
    /// `picket.capture_drops`: packets the kernel dropped in the interval because an
    /// AF_PACKET ring was full (`--hook afpacket` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capture_drops: Option<u64>,
    /// `picket.destinations`: addresses that received packets in the last poll (`entries`),
    /// and the slots of the per-CPU receiver table per bank (`capacity`).
    pub destinations: MapUse,
    /// `picket.egress_packets_per_s`: egress packets per second, rounded.
    pub egress_packets_per_s: f64,
    /// `picket.fragments`: IP fragments in the interval.
    pub fragments: u64,
    /// `picket.interval_s`: seconds covered, to the millisecond.
    pub interval_s: f64,
    /// `picket.map_failures`: failed map updates in the interval.
    pub map_failures: u64,
    /// `picket.packets_per_s`: ingress packets per second, rounded.
    pub packets_per_s: f64,
    /// `picket.parse_errors`: packets the classifier rejected in the interval.
    pub parse_errors: u64,
    /// `picket.sources`: the per-source map.
    pub sources: MapUse,
    /// `picket.sources_deferred`: packets of unknown sources not admitted (admission control).
    pub sources_deferred: u64,
    /// `picket.top_sources`: the sources with the highest packet rates in the last poll (lower
    /// bounds), at most five.
    pub top_sources: Vec<TopSource>,
}

/// The JSON document of a periodic summary, one line of `--output json`. Fields are declared,
/// and so serialized, in alphabetical order.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SummaryDocument {
    /// `@timestamp`: end of the interval (RFC 3339, UTC, milliseconds).
    #[serde(rename = "@timestamp")]
    pub timestamp: String,
    /// `event`: `kind` only.
    pub event: SummaryEventFields,
    /// `host`: the node, with `NODE_NAME` only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<Host>,
    /// `observer`: the machine that saw the traffic.
    pub observer: Observer,
    /// `picket`: the numbers.
    pub picket: SummaryFields,
}

impl SummaryDocument {
    /// The document of `s`, observed on `hostname`.
    pub fn new(s: &SummaryLine, hostname: &str) -> Self {
        SummaryDocument {
            timestamp: rfc3339(s.at_ns),
            event: SummaryEventFields {
                kind: EventKind::Summary,
            },
            host: None,
            observer: Observer::new(hostname),
            picket: SummaryFields {
                bytes_per_s: s.bytes_per_s.round(),
                capture_drops: s.capture_drops,
                destinations: MapUse {
                    capacity: s.dests.1,
                    entries: s.dests.0,
                },
                egress_packets_per_s: s.egress_packets_per_s.round(),
                fragments: s.fragments,
                interval_s: (s.interval_s * 1000.0).round() / 1000.0,
                map_failures: s.map_failures,
                packets_per_s: s.packets_per_s.round(),
                parse_errors: s.parse_errors,
                sources: MapUse {
                    capacity: s.sources.1,
                    entries: s.sources.0,
                },
                sources_deferred: s.deferred,
                top_sources: s
                    .top
                    .iter()
                    .map(|t| TopSource {
                        bytes_per_s: t.bytes_per_s.round(),
                        packets_per_s: t.packets_per_s.round(),
                        ..*t
                    })
                    .collect(),
            },
        }
    }

    /// Adds the node name as `observer.name` and `host.name`.
    pub fn on_node(mut self, node: &str) -> Self {
        self.observer.name = Some(node.to_string());
        self.host = Some(Host {
            name: node.to_string(),
        });
        self
    }
}

/// The text line of a summary.
pub fn summary_text(s: &SummaryLine) -> String {
    let top: Vec<String> = s
        .top
        .iter()
        .map(|t| match t.packets_per_s {
            p if p < 10.0 => format!("{} {p:.1} pkt/s", t.ip),
            p => format!("{} {p:.0} pkt/s", t.ip),
        })
        .collect();
    format!(
        "{} SUMMARY in {:.0} pkt/s {:.1} kB/s, out {:.0} pkt/s | sources {}/{}{} | parse errors {} | fragments {} | map failures {}{}{}",
        rfc3339(s.at_ns),
        s.packets_per_s,
        s.bytes_per_s / 1000.0,
        s.egress_packets_per_s,
        s.sources.0,
        s.sources.1,
        if s.deferred > 0 {
            format!(" ({} packets of unknown sources deferred)", s.deferred)
        } else {
            String::new()
        },
        s.parse_errors,
        s.fragments,
        s.map_failures,
        s.capture_drops
            .map_or_else(String::new, |d| format!(" | capture drops {d}")),
        if top.is_empty() {
            String::new()
        } else {
            format!(" | top {}", top.join(", "))
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detector::Finding;

    fn events() -> Vec<AlertEvent> {
        let scan = Finding {
            rule: Rule::PortScan,
            scope: Scope::Source,
            source: Some("10.77.0.1".parse().unwrap()),
            destination: Some("10.77.0.2".parse().unwrap()),
            value: 102.0,
            threshold: 30.0,
            unit: Unit::Ports,
            window_s: 10.0,
            estimated: true,
            details: Details {
                ports: vec![22, 80, 443],
                distinct_ports: Some(102),
                distinct_hosts: Some(1),
                packets: Some(100),
                ..Details::default()
            },
        };
        let sweep = Finding {
            rule: Rule::HostSweep,
            destination: None,
            unit: Unit::Hosts,
            value: 254.0,
            threshold: 64.0,
            details: Details {
                distinct_hosts: Some(254),
                ..Details::default()
            },
            ..scan.clone()
        };
        let spoofed = Finding {
            rule: Rule::SynFlood,
            scope: Scope::Destination,
            source: None,
            destination: Some("2001:db8::7".parse().unwrap()),
            value: 41230.0,
            threshold: 2000.0,
            unit: Unit::PacketsPerSecond,
            window_s: 0.25,
            estimated: false,
            details: Details {
                distinct_sources: Some(7000),
                saturated: true,
                synack_ratio: Some(0.013),
                ..Details::default()
            },
        };
        let udp = Finding {
            rule: Rule::UdpFlood,
            destination: None,
            value: f64::NAN,
            details: Details::default(),
            ..spoofed.clone()
        };
        let event = |phase, episode, finding, peak| AlertEvent {
            phase,
            episode,
            finding,
            peak,
            started_ns: 1_795_427_628_412_000_000,
            at_ns: 1_795_427_631_413_500_000,
        };
        vec![
            event(Phase::Start, 1, scan.clone(), 102.0),
            event(Phase::Update, 1, scan, 140.5),
            event(Phase::Start, 2, sweep, 254.0),
            event(Phase::End, 3, spoofed, 50_000.0),
            event(Phase::Update, 4, udp, f64::INFINITY),
        ]
    }

    fn summaries() -> Vec<SummaryLine> {
        let quiet = SummaryLine {
            at_ns: 1_795_427_631_413_000_000,
            interval_s: 5.00213,
            packets_per_s: 21.2,
            bytes_per_s: 1240.4,
            egress_packets_per_s: 22.0,
            parse_errors: 0,
            fragments: 0,
            sources: (2, 65536),
            dests: (1, 16384),
            map_failures: 0,
            deferred: 0,
            top: vec![TopSource {
                ip: "fe80::e0d7:5bff:fec5:f474".parse().unwrap(),
                packets_per_s: 1.2,
                bytes_per_s: 70.4,
            }],
            capture_drops: None,
        };
        let busy = SummaryLine {
            parse_errors: 3,
            fragments: 7,
            map_failures: 11,
            deferred: 123_456,
            top: Vec::new(),
            ..quiet.clone()
        };
        vec![quiet, busy]
    }

    fn json(doc: &impl Serialize) -> String {
        serde_json::to_string(doc).unwrap()
    }

    #[test]
    fn alert_documents_are_exact() {
        let e = events();
        assert_eq!(
            json(&AlertDocument::new(&e[0], "vm")),
            r#"{"@timestamp":"2026-11-23T09:53:51.413Z","destination":{"ip":"10.77.0.2"},"event":{"action":"start","duration":3001500000,"id":1,"kind":"alert","start":"2026-11-23T09:53:48.412Z"},"observer":{"hostname":"vm","product":"picket"},"picket":{"details":{"distinct_hosts":1,"distinct_ports":102,"packets":100,"ports":[22,80,443]},"estimated":true,"peak":102.0,"scope":"source","threshold":30.0,"unit":"ports","value":102.0,"window_s":10.0},"rule":{"name":"port_scan"},"source":{"ip":"10.77.0.1"}}"#
        );
        // No source (spoofed flood), details of a destination, node name.
        assert_eq!(
            json(&AlertDocument::new(&e[3], "vm").on_node("node-a")),
            r#"{"@timestamp":"2026-11-23T09:53:51.413Z","destination":{"ip":"2001:db8::7"},"event":{"action":"end","duration":3001500000,"id":3,"kind":"alert","start":"2026-11-23T09:53:48.412Z"},"host":{"name":"node-a"},"observer":{"hostname":"vm","name":"node-a","product":"picket"},"picket":{"details":{"distinct_sources":7000,"saturated":true,"synack_ratio":0.013},"estimated":false,"peak":50000.0,"scope":"destination","threshold":2000.0,"unit":"packets/s","value":41230.0,"window_s":0.25},"rule":{"name":"syn_flood"}}"#
        );
        // A decoy scan: about the target, with its candidate sources.
        let decoy = AlertEvent {
            finding: Finding {
                rule: Rule::DecoyScan,
                scope: Scope::Destination,
                source: None,
                details: Details {
                    folded: 3,
                    sources: Some(crate::detector::Sources {
                        count: 3,
                        estimated: false,
                        follow_up: vec!["10.77.0.1".parse().unwrap()],
                        sample: ["10.77.0.1", "10.77.0.77", "10.77.0.78"]
                            .iter()
                            .map(|s| s.parse().unwrap())
                            .collect(),
                    }),
                    ..Details::default()
                },
                ..e[0].finding.clone()
            },
            ..e[0].clone()
        };
        assert_eq!(
            json(&AlertDocument::new(&decoy, "vm")),
            r#"{"@timestamp":"2026-11-23T09:53:51.413Z","destination":{"ip":"10.77.0.2"},"event":{"action":"start","duration":3001500000,"id":1,"kind":"alert","start":"2026-11-23T09:53:48.412Z"},"observer":{"hostname":"vm","product":"picket"},"picket":{"details":{"folded":3,"sources":{"count":3,"follow_up":["10.77.0.1"],"sample":["10.77.0.1","10.77.0.77","10.77.0.78"]}},"estimated":true,"peak":102.0,"scope":"destination","threshold":30.0,"unit":"ports","value":102.0,"window_s":10.0},"rule":{"name":"decoy_scan"}}"#
        );
        assert!(alert_text(&decoy).contains("decoy_scan many sources -> 10.77.0.2"));
        assert!(
            alert_text(&decoy)
                .contains("from 3 sources (10.77.0.1,10.77.0.77,10.77.0.78), 3 folded")
        );
        // No destination (host sweep); not-a-number values as null, as json! had them.
        assert!(!json(&AlertDocument::new(&e[2], "")).contains("destination"));
        assert!(json(&AlertDocument::new(&e[4], "")).contains(r#""peak":null"#));
    }

    #[test]
    fn summary_documents_are_exact() {
        let s = summaries();
        assert_eq!(
            json(&SummaryDocument::new(&s[0], "vm")),
            r#"{"@timestamp":"2026-11-23T09:53:51.413Z","event":{"kind":"summary"},"observer":{"hostname":"vm","product":"picket"},"picket":{"bytes_per_s":1240.0,"destinations":{"capacity":16384,"entries":1},"egress_packets_per_s":22.0,"fragments":0,"interval_s":5.002,"map_failures":0,"packets_per_s":21.0,"parse_errors":0,"sources":{"capacity":65536,"entries":2},"sources_deferred":0,"top_sources":[{"bytes_per_s":70.0,"ip":"fe80::e0d7:5bff:fec5:f474","packets_per_s":1.0}]}}"#
        );
        assert_eq!(
            json(&SummaryDocument::new(&s[1], "vm").on_node("node-a")),
            r#"{"@timestamp":"2026-11-23T09:53:51.413Z","event":{"kind":"summary"},"host":{"name":"node-a"},"observer":{"hostname":"vm","name":"node-a","product":"picket"},"picket":{"bytes_per_s":1240.0,"destinations":{"capacity":16384,"entries":1},"egress_packets_per_s":22.0,"fragments":7,"interval_s":5.002,"map_failures":11,"packets_per_s":21.0,"parse_errors":3,"sources":{"capacity":65536,"entries":2},"sources_deferred":123456,"top_sources":[]}}"#
        );
    }
}
