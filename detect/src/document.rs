//! Alert and summary documents: readable text lines or JSON documents with ECS-style field
//! names, the same live and in `picket analyze`.

use serde_json::{Value, json};

use crate::{
    detector::{Rates, Rule, Scope},
    episodes::{AlertEvent, Phase},
    snapshot::{Snapshot, same_entry},
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
    /// Per-destination entries in use and capacity.
    pub dests: (usize, u32),
    /// Failed map updates in the interval.
    pub map_failures: u64,
    /// Packets from unknown sources not admitted (admission control under a flood).
    pub deferred: u64,
    /// Top sources by packet rate.
    pub top: Vec<(std::net::IpAddr, Rates)>,
}

impl SummaryLine {
    /// Builds a summary of what happened between two snapshots.
    pub fn new(cur: &Snapshot, prev: &Snapshot) -> Self {
        let dt = (cur.mono_ns.saturating_sub(prev.mono_ns) as f64 / 1e9).max(1e-9);
        let (ci, pi) = (&cur.globals[0], &prev.globals[0]);
        let (ce, pe) = (&cur.globals[1], &prev.globals[1]);
        let before: std::collections::HashMap<_, _> = prev
            .sources
            .iter()
            .map(|(k, v)| (*k, (v.first_seen_ns, v.packets, v.bytes)))
            .collect();
        let mut top: Vec<_> = cur
            .sources
            .iter()
            .filter(|(_, v)| v.last_seen_ns >= prev.mono_ns)
            .map(|(k, v)| {
                // The same entry as before (not evicted and recreated): count the difference.
                let (p, b) = match before.get(k) {
                    Some((first, p, b)) if same_entry(*first, v) => (*p, *b),
                    _ => (0, 0),
                };
                let rates = Rates {
                    packets: v.packets.saturating_sub(p) as f64 / dt,
                    bytes: v.bytes.saturating_sub(b) as f64 / dt,
                    ..Rates::default()
                };
                (k.ip(), rates)
            })
            .filter(|(_, r)| r.packets > 0.0)
            .collect();
        top.sort_by(|a, b| b.1.packets.total_cmp(&a.1.packets));
        top.truncate(5);
        let failures = |g: &agent_common::state::Globals| g.src_failures + g.dst_failures;
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
            dests: (cur.dests.len(), cur.dst_capacity),
            map_failures: (failures(ci) + failures(ce)).saturating_sub(failures(pi) + failures(pe)),
            deferred: ci.src_deferred.saturating_sub(pi.src_deferred),
            top,
        }
    }
}

/// The JSON document of an alert event.
pub fn alert_json(e: &AlertEvent, hostname: &str) -> Value {
    let f = &e.finding;
    let mut v = json!({
        "@timestamp": rfc3339(e.at_ns),
        "event": {
            "kind": "alert",
            "action": e.phase,
            "id": e.episode,
            "start": rfc3339(e.started_ns),
            "duration": e.at_ns.saturating_sub(e.started_ns),
        },
        "rule": { "name": f.rule.name() },
        "observer": { "hostname": hostname, "product": "picket" },
        "picket": {
            "scope": f.scope,
            "value": f.value,
            "peak": e.peak,
            "threshold": f.threshold,
            "unit": f.unit,
            "window_s": f.window_s,
            "estimated": f.estimated,
            "details": f.details,
        },
    });
    if let Some(ip) = f.source {
        v["source"] = json!({ "ip": ip });
    }
    if let Some(ip) = f.destination {
        v["destination"] = json!({ "ip": ip });
    }
    v
}

/// The text line of an alert event.
pub fn alert_text(e: &AlertEvent) -> String {
    let f = &e.finding;
    let who = match (f.scope, f.source, f.destination) {
        (Scope::Source, Some(s), Some(d)) if f.rule.name() != "host_sweep" => format!("{s} -> {d}"),
        (Scope::Source, Some(s), _) => s.to_string(),
        (Scope::Destination, _, Some(d)) => format!("many sources -> {d}"),
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

/// The JSON document of a summary.
pub fn summary_json(s: &SummaryLine, hostname: &str) -> Value {
    json!({
        "@timestamp": rfc3339(s.at_ns),
        "event": { "kind": "summary" },
        "observer": { "hostname": hostname, "product": "picket" },
        "picket": {
            "interval_s": (s.interval_s * 1000.0).round() / 1000.0,
            "packets_per_s": s.packets_per_s.round(),
            "bytes_per_s": s.bytes_per_s.round(),
            "egress_packets_per_s": s.egress_packets_per_s.round(),
            "parse_errors": s.parse_errors,
            "fragments": s.fragments,
            "map_failures": s.map_failures,
            "sources_deferred": s.deferred,
            "sources": { "entries": s.sources.0, "capacity": s.sources.1 },
            "destinations": { "entries": s.dests.0, "capacity": s.dests.1 },
            "top_sources": s.top.iter().map(|(ip, r)| json!({
                "ip": ip, "packets_per_s": r.packets.round(), "bytes_per_s": r.bytes.round()
            })).collect::<Vec<_>>(),
        },
    })
}

/// The text line of a summary.
pub fn summary_text(s: &SummaryLine) -> String {
    let top: Vec<String> = s
        .top
        .iter()
        .map(|(ip, r)| match r.packets {
            p if p < 10.0 => format!("{ip} {p:.1} pkt/s"),
            p => format!("{ip} {p:.0} pkt/s"),
        })
        .collect();
    format!(
        "{} SUMMARY in {:.0} pkt/s {:.1} kB/s, out {:.0} pkt/s | sources {}/{}{} | parse errors {} | fragments {} | map failures {}{}",
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
        if top.is_empty() {
            String::new()
        } else {
            format!(" | top {}", top.join(", "))
        },
    )
}
