//! The aggregation of every packet into a [`Report`]: protocol mix, flows, application hints,
//! timeline, sizes and the live detectors on packet time.

use std::collections::BTreeMap;

use crate::HashMap;

use agent_common::{
    ParseError, Summary,
    classify::{IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP, PARSE_ERROR_SLOTS},
    packet::Snapshot,
};
use picket_capture::link;
use picket_detect::{
    allowlist::Allowlists, detector::Thresholds, document as output, episodes::Phase,
    replay::Detection,
};

use super::{
    Options, names,
    reader::{Frame, InputInfo},
    report::{
        Count, DetectionSummary, ErrorCount, Limits, LinkTypeCount, ProtoCount, Protocols, Report,
        SCHEMA, Totals,
    },
    stages::{DetectionStage, Stages},
    timeline::{Class, SizeHistogram, Timeline},
};

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
pub struct Aggregator<'s> {
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
    tunnels: crate::tunnels::Tunnels,
    /// Detection, flows, talkers and application heads (inline or on other threads).
    stages: Stages<'s>,
    timeline: Timeline,
    sizes: SizeHistogram,
    inputs: Vec<InputInfo>,
}

impl<'s> Aggregator<'s> {
    /// An empty aggregation with the given options, every stage on this thread.
    pub fn new(opts: &Options) -> Self {
        Self::with_stages(opts, Stages::inline(detection(opts)))
    }

    /// An empty aggregation with the given options, on `threads` threads of `scope` in all.
    pub fn threaded<'env>(
        scope: &'s std::thread::Scope<'s, 'env>,
        opts: &Options,
        threads: usize,
    ) -> Self {
        Self::with_stages(opts, Stages::threaded(scope, detection(opts), threads))
    }

    fn with_stages(opts: &Options, stages: Stages<'s>) -> Self {
        Aggregator {
            window_s: opts.window.as_secs_f64(),
            poll_s: opts.poll_interval.as_secs_f64(),
            thresholds: opts.thresholds.clone(),
            totals: Totals::default(),
            first: None,
            last: None,
            prev_ts: None,
            linktypes: BTreeMap::new(),
            l2: HashMap::default(),
            ip: HashMap::default(),
            l4: [Count::default(); 7],
            errors: [0; PARSE_ERROR_SLOTS],
            tunnels: crate::tunnels::Tunnels::default(),
            stages,
            timeline: Timeline::default(),
            sizes: SizeHistogram::default(),
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
        self.stages.detection.observe((&parsed, wire, ts));
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
        self.tunnels.add(s, wire);
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
            self.stages.flows.observe((s, f.data, wire, ts));
        }
    }

    /// Records an input once it has been read.
    pub fn input(&mut self, info: InputInfo) {
        self.inputs.push(info);
    }

    /// The report; an error only when a stage's thread failed.
    pub fn finish(self) -> anyhow::Result<Report> {
        let parallel_report = self.stages.any_piped();
        let stage = self.stages.flows.finish()?;
        let (flows, app) = (stage.flows, stage.app);
        let DetectionStage { detection, talkers } = self.stages.detection.finish()?;
        let det = detection.finish();
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
        if flows.untracked() > 0 {
            warnings.push(format!(
                "{} packets belong to flows beyond the table limits",
                flows.untracked()
            ));
        }
        if talkers.untracked() > 0 {
            warnings.push(format!(
                "{} packets have an address or address pair beyond the table limits",
                talkers.untracked()
            ));
        }
        if self.tunnels.untracked > 0 {
            warnings.push(format!(
                "{} tunnelled packets belong to tunnels beyond the table limit",
                self.tunnels.untracked
            ));
        }
        // The flow tables are the bulk of the report: with threads to spare the TCP table
        // (the largest) is built beside the rest.
        let app = &app;
        let tcp = || flows.tcp_summary(&|k| app.hint(IPPROTO_TCP, k));
        let rest = || {
            (
                app.finish(),
                flows.udp_summary(&|k| app.hint(IPPROTO_UDP, k)),
                talkers.report(),
                flows.icmp(),
            )
        };
        let (tcp, (application, udp, top_talkers, icmp)) = if parallel_report {
            std::thread::scope(|scope| {
                let tcp = scope.spawn(tcp);
                let rest = rest();
                tcp.join()
                    .map(|tcp| (tcp, rest))
                    .map_err(|_| anyhow::anyhow!("the report thread failed"))
            })?
        } else {
            (tcp(), rest())
        };
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
        Ok(Report {
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
            top_talkers,
            tcp,
            udp,
            icmp,
            application,
            parse_errors: ParseError::ALL
                .iter()
                .map(|e| ErrorCount {
                    kind: e.name(),
                    packets: self.errors[*e as usize % PARSE_ERROR_SLOTS],
                })
                .filter(|e| e.packets > 0)
                .collect(),
            tunnels: self.tunnels.rows(),
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
            limits: Limits {
                flows_max: crate::flows::MAX_TRACKED,
                addresses_max: crate::flows::MAX_TRACKED,
                application_entries_max: crate::app::MAX_ENTRIES,
                tcp_streams_max: crate::streams::MAX_STREAMS,
                packets_untracked: flows.untracked(),
                packets_addresses_untracked: talkers.untracked(),
            },
            filter: None,
            warnings,
        })
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

/// The live agent's detectors on packet time, with the options' thresholds and lists.
fn detection(opts: &Options) -> Detection {
    Detection::new(
        opts.thresholds.clone(),
        opts.poll_interval,
        opts.window,
        Allowlists {
            offenders: opts.allow.clone(),
            scanners: opts.ignore_scanners.clone(),
            scanned: opts.ignore_scanned.clone(),
        },
    )
    .with_local(opts.local.clone())
}
