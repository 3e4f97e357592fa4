//! Prometheus metrics (`--metrics-addr`): the registry, its update from each reading of the
//! maps, and the HTTP endpoint serving `/metrics` (Prometheus text 0.0.4 or OpenMetrics
//! 1.0.0, chosen from the `Accept` header), `/healthz` and `/readyz`.
//!
//! The kernel counters are per direction and summed over CPUs and over every watched
//! interface: there is no `interface` label. No metric carries an address label except
//! `picket_top_offender_threshold_ratio`, which exists only with `--metrics-top-k K > 0` and
//! then holds at most K series.

use std::{
    fmt::Write as _,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use agent_common::{classify::ParseError, state::Globals};
use anyhow::{Context as _, Result};
use axum::{
    Router,
    extract::State,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use prometheus_client::{
    encoding::{
        EncodeLabelSet, EncodeLabelValue, LabelValueEncoder,
        text::{encode_eof, encode_registry},
    },
    metrics::{
        counter::Counter,
        family::Family,
        gauge::Gauge,
        histogram::{Histogram, exponential_buckets},
        info::Info,
    },
    registry::{Registry, Unit},
};

use crate::webconfig::WebConfig;
use picket_detect::{
    allowlist::{Side, Suppressed},
    detector::Rule,
    episodes::{AlertEvent, Episodes, Phase},
    snapshot::Snapshot,
};

/// Content type of the Prometheus text format.
pub const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";
/// Content type of the OpenMetrics text format.
pub const OPENMETRICS_TEXT: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// `/readyz` fails when the last poll is older than this many poll intervals.
pub const READY_POLLS: u32 = 3;

type Ratio = Gauge<f64, std::sync::atomic::AtomicU64>;

/// Label values that are one of a fixed set of names: encoded as their name.
macro_rules! named_label_value {
    ($($t:ty),* $(,)?) => {$(
        impl EncodeLabelValue for $t {
            fn encode(&self, encoder: &mut LabelValueEncoder) -> std::fmt::Result {
                EncodeLabelValue::encode(&<&'static str>::from(*self), encoder)
            }
        }
    )*};
}

/// `direction`: which way the packets went, the slot of the kernel's global counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, strum::IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
enum Direction {
    Ingress,
    Egress,
}

impl Direction {
    /// In the order of the kernel's global counters.
    const ALL: [Direction; 2] = [Direction::Ingress, Direction::Egress];
}

/// `map`: the per-source map, or the per-CPU receiver slot table (`destinations`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, strum::IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
enum MapName {
    Sources,
    Destinations,
}

/// `protocol` of `picket_l3_packets`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, strum::IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
enum L3Protocol {
    Arp,
    Ipv4,
    Ipv6,
    Other,
}

/// `protocol` of `picket_l4_packets`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, strum::IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
enum L4Protocol {
    Tcp,
    Udp,
    Icmp,
    Icmpv6,
    Other,
}

/// `flag` of `picket_tcp_flag_packets`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, strum::IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
enum TcpFlag {
    Syn,
    SynAck,
    Rst,
}

named_label_value!(Direction, MapName, L3Protocol, L4Protocol, TcpFlag);

/// `rule`: a detection rule, by [`Rule::name`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct RuleName(Rule);

impl EncodeLabelValue for RuleName {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> std::fmt::Result {
        EncodeLabelValue::encode(&self.0.name(), encoder)
    }
}

/// `kind` of `picket_parse_errors`, by [`ParseError::name`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct ParseErrorKind(ParseError);

impl EncodeLabelValue for ParseErrorKind {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> std::fmt::Result {
        EncodeLabelValue::encode(&self.0.name(), encoder)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct DirectionLabels {
    direction: Direction,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct L3Labels {
    direction: Direction,
    protocol: L3Protocol,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct L4Labels {
    direction: Direction,
    protocol: L4Protocol,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct FlagLabels {
    direction: Direction,
    flag: TcpFlag,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ParseErrorLabels {
    direction: Direction,
    kind: ParseErrorKind,
}

/// `kind` of `picket_encap_packets` (`ENCAP_NAMES`, `mpls`, `pppoe`) and
/// `picket_inner_errors` (`INNER_ERROR_NAMES`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct KindLabels {
    direction: Direction,
    kind: &'static str,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct MapLabels {
    map: MapName,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RuleLabels {
    rule: RuleName,
}

/// `side` of `picket_suppressed`: the allowlist that dropped a probe or a finding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct SideName(Side);

impl EncodeLabelValue for SideName {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> std::fmt::Result {
        EncodeLabelValue::encode(&self.0.name(), encoder)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct SideLabels {
    side: SideName,
}

/// Only with `--metrics-top-k`: at most K series.
#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct OffenderLabels {
    rule: RuleName,
    ip: String,
}

/// What `/readyz` looks at.
#[derive(Debug)]
struct Health {
    attached: usize,
    last_poll: Option<Instant>,
    poll_interval: Duration,
    stopping: bool,
}

/// State shared with the HTTP server.
#[derive(Debug)]
struct Shared {
    registry: Registry,
    health: Mutex<Health>,
}

/// The agent's metrics.
pub struct Metrics {
    shared: Arc<Shared>,
    packets: Family<DirectionLabels, Counter>,
    bytes: Family<DirectionLabels, Counter>,
    l3_packets: Family<L3Labels, Counter>,
    l4_packets: Family<L4Labels, Counter>,
    tcp_flags: Family<FlagLabels, Counter>,
    fragments: Family<DirectionLabels, Counter>,
    tiny_fragments: Family<DirectionLabels, Counter>,
    parse_errors: Family<ParseErrorLabels, Counter>,
    encap: Family<KindLabels, Counter>,
    inner_errors: Family<KindLabels, Counter>,
    map_entries: Family<MapLabels, Gauge>,
    map_capacity: Family<MapLabels, Gauge>,
    map_inserts: Family<MapLabels, Counter>,
    map_failures: Family<MapLabels, Counter>,
    deferred: Counter,
    admission: Gauge,
    alerts: Family<RuleLabels, Counter>,
    active: Family<RuleLabels, Gauge>,
    folded: Family<RuleLabels, Counter>,
    suppressed: Family<SideLabels, Counter>,
    offenders: Family<OffenderLabels, Ratio>,
    poll_duration: Histogram,
    last_poll: Ratio,
    attached: Gauge,
    notifications: crate::alertmanager::Counters,
    blocking: crate::block::BlockCounters,
    capture_rings: Gauge,
    capture_drops: Counter,
    capture_drops_last: u64,
    last: [Globals; 2],
    top_k: usize,
}

impl Metrics {
    /// Registers every metric. `top_k` offenders of open alerts are exported with their
    /// address; readiness expects a poll every `poll_interval`.
    pub fn new(top_k: u32, poll_interval: Duration) -> Metrics {
        let mut r = Registry::with_prefix("picket");
        let m = Metrics {
            shared: Arc::new(Shared {
                registry: Registry::default(),
                health: Mutex::new(Health {
                    attached: 0,
                    last_poll: None,
                    poll_interval,
                    stopping: false,
                }),
            }),
            packets: Family::default(),
            bytes: Family::default(),
            l3_packets: Family::default(),
            l4_packets: Family::default(),
            tcp_flags: Family::default(),
            fragments: Family::default(),
            tiny_fragments: Family::default(),
            parse_errors: Family::default(),
            encap: Family::default(),
            inner_errors: Family::default(),
            map_entries: Family::default(),
            map_capacity: Family::default(),
            map_inserts: Family::default(),
            map_failures: Family::default(),
            deferred: Counter::default(),
            admission: Gauge::default(),
            alerts: Family::default(),
            active: Family::default(),
            folded: Family::default(),
            suppressed: Family::default(),
            offenders: Family::default(),
            poll_duration: Histogram::new(exponential_buckets(0.0005, 2.0, 14)),
            last_poll: Ratio::default(),
            attached: Gauge::default(),
            notifications: crate::alertmanager::Counters::default(),
            blocking: crate::block::BlockCounters::default(),
            capture_rings: Gauge::default(),
            capture_drops: Counter::default(),
            capture_drops_last: 0,
            last: [Globals::default(); 2],
            top_k: top_k as usize,
        };
        r.register(
            "build",
            "Picket build information",
            Info::new(BuildLabels {
                version: env!("CARGO_PKG_VERSION"),
            }),
        );
        r.register(
            "packets",
            "Packets seen by the BPF programs, by direction (all watched interfaces)",
            m.packets.clone(),
        );
        r.register(
            "bytes",
            "Bytes on the wire seen by the BPF programs, by direction (all watched interfaces)",
            m.bytes.clone(),
        );
        r.register(
            "l3_packets",
            "Packets by direction and network protocol (arp, ipv4, ipv6, other)",
            m.l3_packets.clone(),
        );
        r.register(
            "l4_packets",
            "IP packets by direction and transport protocol (tcp, udp, icmp, icmpv6, other: \
             other protocols and later fragments)",
            m.l4_packets.clone(),
        );
        r.register(
            "tcp_flag_packets",
            "TCP packets by direction and flag (syn: SYN without ACK, syn_ack, rst)",
            m.tcp_flags.clone(),
        );
        r.register(
            "fragments",
            "IP fragments (first and later), by direction",
            m.fragments.clone(),
        );
        r.register(
            "tiny_fragments",
            "First fragments too short for their L4 header (nmap -f, --mtu 16: an evasion), by \
             direction",
            m.tiny_fragments.clone(),
        );
        r.register(
            "parse_errors",
            "Packets the classifier rejected, by direction and kind",
            m.parse_errors.clone(),
        );
        r.register(
            "encap_packets",
            "Packets decapsulated, by direction and kind (vxlan, geneve, gre, ipip, 6in4, 4in6, \
             6in6), and packets behind an MPLS label stack (mpls) or a PPPoE session header \
             (pppoe); the other counters count a tunnelled packet once, by its inner packet",
            m.encap.clone(),
        );
        r.register(
            "inner_errors",
            "Tunnel packets whose inner packet was not decoded (counted by their outer packet), \
             by direction and kind (truncated, bad, unsupported)",
            m.inner_errors.clone(),
        );
        r.register(
            "map_entries",
            "Entries in the per-source and per-destination maps at the last poll",
            m.map_entries.clone(),
        );
        r.register(
            "map_capacity_entries",
            "Capacity of the per-source and per-destination maps (entries evicted beyond it)",
            m.map_capacity.clone(),
        );
        r.register(
            "map_inserts",
            "Entries created in the per-source and per-destination maps",
            m.map_inserts.clone(),
        );
        r.register(
            "map_update_failures",
            "Failed updates of the per-source and per-destination maps",
            m.map_failures.clone(),
        );
        r.register(
            "sources_deferred",
            "Packets from unknown sources not admitted to the per-source map (admission control)",
            m.deferred.clone(),
        );
        r.register(
            "admission_control_active",
            "1 while new sources are admitted at their second packet (spoofed flood), else 0",
            m.admission.clone(),
        );
        r.register(
            "alerts",
            "Alert episodes started, by rule",
            m.alerts.clone(),
        );
        r.register(
            "active_alerts",
            "Alert episodes open at the last poll, by rule",
            m.active.clone(),
        );
        r.register(
            "episodes_folded",
            "Findings folded into another episode instead of opening their own (storms of \
             sources, decoys, the per-rule cap on new episodes), by rule of the folded findings",
            m.folded.clone(),
        );
        r.register(
            "suppressed",
            "Probes and findings dropped by an allowlist, by side (offender: allow, scanner: \
             ignore_scanners, scanned: ignore_scanned)",
            m.suppressed.clone(),
        );
        r.register(
            "top_offender_threshold_ratio",
            "Value over threshold of the offenders of open alerts, top K by ratio \
             (only with --metrics-top-k)",
            m.offenders.clone(),
        );
        r.register_with_unit(
            "poll_duration",
            "Time to read the maps, detect and report, per poll",
            Unit::Seconds,
            m.poll_duration.clone(),
        );
        r.register_with_unit(
            "last_poll_timestamp",
            "Unix time of the last poll",
            Unit::Seconds,
            m.last_poll.clone(),
        );
        r.register(
            "attached_programs",
            "BPF programs attached to interfaces",
            m.attached.clone(),
        );
        r.register(
            "alertmanager_alerts_sent",
            "Alerts Alertmanager accepted, by Alertmanager URL (--alertmanager)",
            m.notifications.sent.clone(),
        );
        r.register(
            "alertmanager_alerts_failed",
            "Alerts in requests to Alertmanager that failed (every try counts), by URL",
            m.notifications.failed.clone(),
        );
        r.register(
            "alertmanager_alerts_dropped",
            "Alerts dropped from a full Alertmanager queue, by URL",
            m.notifications.dropped.clone(),
        );
        r.register(
            "blocked_sources",
            "Sources blocked now (--block; dry run: that would be)",
            m.blocking.sources.clone(),
        );
        r.register(
            "block_dropped_packets",
            "Packets of blocked sources dropped by XDP (dry run: that would have been)",
            m.blocking.packets.clone(),
        );
        r.register(
            "block_dropped_bytes",
            "Bytes of the dropped packets of blocked sources",
            m.blocking.bytes.clone(),
        );
        r.register(
            "block_evictions",
            "Blocks lifted early because the block map was full",
            m.blocking.evictions.clone(),
        );
        r.register(
            "capture_rings",
            "AF_PACKET rings capturing instead of BPF programs (--hook afpacket)",
            m.capture_rings.clone(),
        );
        r.register(
            "capture_drops",
            "Packets the kernel dropped because an AF_PACKET ring was full",
            m.capture_drops.clone(),
        );
        for rule in Rule::ALL {
            // Every rule's series exists from the start, so increase() sees the first alert.
            let l = RuleLabels {
                rule: RuleName(rule),
            };
            m.alerts.get_or_create(&l).inc_by(0);
            m.active.get_or_create(&l).set(0);
            m.folded.get_or_create(&l).inc_by(0);
        }
        for side in Side::ALL {
            m.suppressed
                .get_or_create(&SideLabels {
                    side: SideName(side),
                })
                .inc_by(0);
        }
        let mut m = m;
        m.count(&[Globals::default(); 2]);
        Arc::get_mut(&mut m.shared)
            .expect("not shared yet")
            .registry = r;
        m
    }

    /// The allowlists' totals so far (`picket_suppressed_total`).
    pub fn suppressed(&self, totals: Suppressed) {
        for side in Side::ALL {
            let c = self.suppressed.get_or_create(&SideLabels {
                side: SideName(side),
            });
            c.inc_by(totals.of(side).saturating_sub(c.get()));
        }
    }

    /// Starts the HTTP server on `addr` (in the current tokio runtime) and returns the
    /// address it listens on; `web` adds TLS and basic auth on /metrics (`--web-config`).
    pub async fn serve(&self, addr: SocketAddr, web: Option<WebConfig>) -> Result<SocketAddr> {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr} for --metrics-addr"))?;
        let bound = listener.local_addr()?;
        let mut metrics = get(metrics_handler);
        if let Some(w) = web.clone().filter(WebConfig::needs_auth) {
            metrics = metrics.layer(axum::middleware::from_fn_with_state(w, basic_auth));
        }
        let app = Router::new()
            .route("/metrics", metrics)
            .route("/healthz", get(|| async { "ok\n" }))
            .route("/readyz", get(ready_handler))
            .with_state(self.shared.clone());
        match web.and_then(|w| w.tls) {
            None => {
                tokio::spawn(async move {
                    if let Err(e) = axum::serve(listener, app).await {
                        tracing::error!("metrics endpoint stopped: {e}");
                    }
                });
            }
            Some(tls) => {
                let config = axum_server::tls_rustls::RustlsConfig::from_config(tls);
                let server = axum_server::from_tcp_rustls(listener.into_std()?, config)?;
                tokio::spawn(async move {
                    if let Err(e) = server.serve(app.into_make_service()).await {
                        tracing::error!("metrics endpoint stopped: {e}");
                    }
                });
            }
        }
        Ok(bound)
    }

    /// The Alertmanager notifier's counters (exported under `picket_alertmanager_*`).
    pub fn notifications(&self) -> crate::alertmanager::Counters {
        self.notifications.clone()
    }

    /// The blocking counters (exported as `picket_block*`).
    pub fn blocking(&self) -> crate::block::BlockCounters {
        self.blocking.clone()
    }

    /// Records that `programs` programs are attached (ready from the next poll on).
    pub fn attached(&self, programs: usize) {
        self.attached.set(programs as i64);
        let mut h = self.shared.health.lock().expect("health lock");
        h.attached = programs;
    }

    /// Records that `rings` AF_PACKET rings capture instead of BPF programs (ready from the
    /// next poll on).
    pub fn capture_rings(&self, rings: usize) {
        self.capture_rings.set(rings as i64);
        let mut h = self.shared.health.lock().expect("health lock");
        h.attached = rings;
    }

    /// Records the kernel's total drops of the AF_PACKET rings so far.
    pub fn capture_drops(&mut self, total: u64) {
        let last = self.capture_drops_last;
        if total > last {
            self.capture_drops.inc_by(total - last);
            self.capture_drops_last = total;
        }
    }

    /// Records that the agent is shutting down (no longer ready).
    pub fn stopping(&self) {
        self.shared.health.lock().expect("health lock").stopping = true;
    }

    /// Updates every metric from one poll: the reading, the alert events it produced, the
    /// open episodes, admission control, and how long the poll took.
    pub fn observe(
        &mut self,
        snap: &Snapshot,
        events: &[AlertEvent],
        episodes: &Episodes,
        admission_on: bool,
        took: Duration,
    ) {
        self.count(&snap.globals);
        let maps = [
            (MapName::Sources, snap.sources.len(), snap.src_capacity),
            (
                MapName::Destinations,
                snap.tick.dst.len(),
                snap.tick.dst_slots,
            ),
        ];
        for (map, entries, capacity) in maps {
            let l = MapLabels { map };
            // A reading without the per-source map leaves its last entry count in place (the
            // receiver slots are read at every poll).
            if snap.maps_read || map == MapName::Destinations {
                self.map_entries.get_or_create(&l).set(entries as i64);
            }
            self.map_capacity.get_or_create(&l).set(i64::from(capacity));
        }
        self.admission.set(i64::from(admission_on));

        for e in events.iter().filter(|e| e.phase == Phase::Start) {
            self.alerts
                .get_or_create(&RuleLabels {
                    rule: RuleName(e.finding.rule),
                })
                .inc();
        }
        for (rule, total) in episodes.folded_by_rule() {
            let c = self.folded.get_or_create(&RuleLabels {
                rule: RuleName(*rule),
            });
            c.inc_by(total.saturating_sub(c.get()));
        }
        let open = episodes.active_by_rule();
        for rule in Rule::ALL {
            let n = open.get(&rule).copied().unwrap_or(0);
            self.active
                .get_or_create(&RuleLabels {
                    rule: RuleName(rule),
                })
                .set(n as i64);
        }
        if self.top_k > 0 {
            let mut top: Vec<(Rule, String, f64)> = episodes
                .active()
                .filter_map(|f| {
                    let ip = f.offender()?;
                    Some((
                        f.rule,
                        ip.to_string(),
                        f.value / f.threshold.max(f64::MIN_POSITIVE),
                    ))
                })
                .collect();
            top.sort_by(|a, b| b.2.total_cmp(&a.2));
            top.truncate(self.top_k);
            self.offenders.clear();
            for (rule, ip, ratio) in top {
                self.offenders
                    .get_or_create(&OffenderLabels {
                        rule: RuleName(rule),
                        ip,
                    })
                    .set(ratio);
            }
        }

        self.poll_duration.observe(took.as_secs_f64());
        self.last_poll.set(snap.wall_ns as f64 / 1e9);
        self.shared.health.lock().expect("health lock").last_poll = Some(Instant::now());
    }

    /// Advances the counters that mirror the kernel's global counters to `globals` (which
    /// only grow while the maps live). With zeros, creates every series at 0.
    fn count(&mut self, globals: &[Globals; 2]) {
        for ((direction, cur), last) in Direction::ALL.into_iter().zip(globals).zip(self.last) {
            let dir = DirectionLabels { direction };
            let add = |c: &Counter, cur: u64, last: u64| {
                c.inc_by(cur.saturating_sub(last));
            };
            add(&self.packets.get_or_create(&dir), cur.packets, last.packets);
            add(&self.bytes.get_or_create(&dir), cur.bytes, last.bytes);
            add(
                &self.fragments.get_or_create(&dir),
                cur.fragments,
                last.fragments,
            );
            add(
                &self.tiny_fragments.get_or_create(&dir),
                cur.tiny_fragments,
                last.tiny_fragments,
            );
            let l3 = [
                (L3Protocol::Arp, cur.arp, last.arp),
                (L3Protocol::Ipv4, cur.ipv4, last.ipv4),
                (L3Protocol::Ipv6, cur.ipv6, last.ipv6),
                (L3Protocol::Other, cur.non_ip, last.non_ip),
            ];
            for (protocol, c, l) in l3 {
                let labels = L3Labels {
                    direction,
                    protocol,
                };
                add(&self.l3_packets.get_or_create(&labels), c, l);
            }
            let l4 = [
                (L4Protocol::Tcp, cur.tcp, last.tcp),
                (L4Protocol::Udp, cur.udp, last.udp),
                (L4Protocol::Icmp, cur.icmp, last.icmp),
                (L4Protocol::Icmpv6, cur.icmpv6, last.icmpv6),
                (L4Protocol::Other, cur.other_l4, last.other_l4),
            ];
            for (protocol, c, l) in l4 {
                let labels = L4Labels {
                    direction,
                    protocol,
                };
                add(&self.l4_packets.get_or_create(&labels), c, l);
            }
            let flags = [
                (TcpFlag::Syn, cur.syn, last.syn),
                (TcpFlag::SynAck, cur.syn_ack, last.syn_ack),
                (TcpFlag::Rst, cur.rst, last.rst),
            ];
            for (flag, c, l) in flags {
                let labels = FlagLabels { direction, flag };
                add(&self.tcp_flags.get_or_create(&labels), c, l);
            }
            let names = &agent_common::tunnel::ENCAP_NAMES;
            let mut encap: Vec<(&'static str, u64, u64)> = (1..names.len())
                .map(|k| (names[k], cur.encap[k], last.encap[k]))
                .collect();
            encap.push(("mpls", cur.mpls, last.mpls));
            encap.push(("pppoe", cur.pppoe, last.pppoe));
            for (kind, c, l) in encap {
                add(
                    &self.encap.get_or_create(&KindLabels { direction, kind }),
                    c,
                    l,
                );
            }
            let names = agent_common::tunnel::INNER_ERROR_NAMES;
            for (k, kind) in names.into_iter().enumerate().skip(1) {
                let labels = KindLabels { direction, kind };
                add(
                    &self.inner_errors.get_or_create(&labels),
                    cur.inner_errors[k],
                    last.inner_errors[k],
                );
            }
            for kind in ParseError::ALL {
                let slot = kind as usize;
                let labels = ParseErrorLabels {
                    direction,
                    kind: ParseErrorKind(kind),
                };
                add(
                    &self.parse_errors.get_or_create(&labels),
                    cur.parse_errors[slot],
                    last.parse_errors[slot],
                );
            }
        }
        let mut both = globals[0];
        both.merge(&globals[1]);
        let mut last = self.last[0];
        last.merge(&self.last[1]);
        let maps = [(
            MapName::Sources,
            (both.src_inserts, last.src_inserts),
            (both.src_failures, last.src_failures),
        )];
        for (map, inserts, failures) in maps {
            let l = MapLabels { map };
            self.map_inserts
                .get_or_create(&l)
                .inc_by(inserts.0.saturating_sub(inserts.1));
            self.map_failures
                .get_or_create(&l)
                .inc_by(failures.0.saturating_sub(failures.1));
        }
        self.deferred
            .inc_by(both.src_deferred.saturating_sub(last.src_deferred));
        self.last = *globals;
    }

    /// The exposition, in OpenMetrics or Prometheus text format.
    pub fn render(&self, openmetrics: bool) -> String {
        render(&self.shared.registry, openmetrics)
    }

    /// Whether the agent is ready, or why not.
    pub fn readiness(&self) -> Result<(), String> {
        readiness(&self.shared.health.lock().expect("health lock"))
    }
}

fn render(registry: &Registry, openmetrics: bool) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = encode_registry(&mut out, registry);
    if openmetrics {
        let _ = encode_eof(&mut out);
        out
    } else {
        to_prometheus_text(&out)
    }
}

fn readiness(h: &Health) -> Result<(), String> {
    if h.stopping {
        return Err("shutting down".into());
    }
    if h.attached == 0 {
        return Err("BPF programs not attached yet".into());
    }
    let limit = h.poll_interval * READY_POLLS;
    match h.last_poll {
        Some(t) if t.elapsed() <= limit => Ok(()),
        Some(t) => Err(format!(
            "last poll {:.1}s ago (more than {READY_POLLS} poll intervals of {:?})",
            t.elapsed().as_secs_f64(),
            h.poll_interval
        )),
        None => Err("no poll yet".into()),
    }
}

async fn metrics_handler(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let openmetrics = wants_openmetrics(accept);
    let body = render(&shared.registry, openmetrics);
    let content_type = if openmetrics {
        OPENMETRICS_TEXT
    } else {
        PROMETHEUS_TEXT
    };
    (
        [(header::CONTENT_TYPE, HeaderValue::from_static(content_type))],
        body,
    )
        .into_response()
}

/// 401 unless the request carries a configured user's password (bcrypt runs on the
/// blocking pool: it takes tens of milliseconds by design).
async fn basic_auth(
    State(web): State<WebConfig>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let header = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let ok = tokio::task::spawn_blocking(move || web.authorized(header.as_deref()))
        .await
        .unwrap_or(false);
    if ok {
        next.run(request).await
    } else {
        (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Basic realm=\"picket\"")],
            "Unauthorized\n",
        )
            .into_response()
    }
}

async fn ready_handler(State(shared): State<Arc<Shared>>) -> Response {
    let state = readiness(&shared.health.lock().expect("health lock"));
    match state {
        Ok(()) => (StatusCode::OK, "ready\n".to_string()).into_response(),
        Err(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {why}\n"),
        )
            .into_response(),
    }
}

/// Whether an `Accept` header prefers OpenMetrics over the Prometheus text format (quality
/// values respected; ties go to OpenMetrics, which Prometheus asks for first).
pub fn wants_openmetrics(accept: &str) -> bool {
    let (mut om, mut text) = (0.0f64, 0.0f64);
    for range in accept.split(',') {
        let mut parts = range.split(';').map(str::trim);
        let media = parts.next().unwrap_or("").to_ascii_lowercase();
        let q = parts
            .filter_map(|p| p.strip_prefix("q=").or_else(|| p.strip_prefix("Q=")))
            .find_map(|q| q.parse::<f64>().ok())
            .unwrap_or(1.0);
        match media.as_str() {
            "application/openmetrics-text" => om = om.max(q),
            "text/plain" | "text/*" | "*/*" => text = text.max(q),
            _ => {}
        }
    }
    om > 0.0 && om >= text
}

/// Converts prometheus-client's OpenMetrics text to the Prometheus text format 0.0.4: no
/// `# EOF` and no `# UNIT`, counter and info metadata named after their samples
/// (`x_total`, `x_info`), info as gauge, unknown as untyped.
pub fn to_prometheus_text(openmetrics: &str) -> String {
    let mut out = String::with_capacity(openmetrics.len());
    let mut pending_help: Option<(&str, &str)> = None;
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            // Written once the TYPE line tells which suffix the name takes.
            pending_help = rest.split_once(' ').or(Some((rest, "")));
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, "untyped"));
            let (name, kind) = match kind {
                "counter" => (format!("{name}_total"), "counter"),
                "info" => (format!("{name}_info"), "gauge"),
                "unknown" => (name.to_string(), "untyped"),
                k => (name.to_string(), k),
            };
            if let Some((_, help)) = pending_help.take() {
                let _ = writeln!(out, "# HELP {name} {}", help.replace('\\', "\\\\"));
            }
            let _ = writeln!(out, "# TYPE {name} {kind}");
            continue;
        }
        // Samples: drop exemplars and `_created` series (not in the 0.0.4 format).
        let sample = line.split(" # ").next().unwrap_or(line);
        let metric = sample.split(['{', ' ']).next().unwrap_or("");
        if metric.ends_with("_created") {
            continue;
        }
        out.push_str(sample);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use agent_common::state::{AddrKey, SrcState};

    use super::*;
    use picket_detect::episodes::{EpisodeTiming, testing::finding};

    fn snapshot(packets: u64) -> Snapshot {
        let mut g = Globals {
            packets,
            bytes: packets * 60,
            tcp: packets,
            syn: packets,
            ipv4: packets,
            src_inserts: 2,
            ..Globals::default()
        };
        g.parse_errors[ParseError::Truncated as usize] = 3;
        g.encap[agent_common::tunnel::ENCAP_VXLAN as usize] = packets / 5;
        g.inner_errors[agent_common::tunnel::INNER_TRUNCATED as usize] = 4;
        g.mpls = 1;
        Snapshot {
            wall_ns: 1_700_000_000_000_000_000,
            globals: [g, Globals::default()],
            maps_read: true,
            sources: vec![(
                AddrKey::from_ip("192.0.2.9".parse().unwrap()),
                SrcState::ZERO,
            )],
            src_capacity: 65_536,
            tick: picket_detect::snapshot::TickCounts {
                dst_slots: 16_384,
                ..Default::default()
            },
            ..Snapshot::default()
        }
    }

    fn value(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }

    #[test]
    fn counters_follow_the_kernel_totals_and_alerts_count_starts() {
        let mut m = Metrics::new(0, Duration::from_secs(1));
        let mut episodes = Episodes::new(EpisodeTiming::default());
        let events = episodes.step(0, 0, vec![finding("192.0.2.7", 100.0)]);
        m.observe(
            &snapshot(10),
            &events,
            &episodes,
            false,
            Duration::from_millis(2),
        );
        m.observe(
            &snapshot(25),
            &[],
            &episodes,
            true,
            Duration::from_millis(3),
        );
        let text = m.render(false);
        let v = |s: &str| value(&text, s).unwrap_or_else(|| panic!("{s} missing:\n{text}"));
        assert_eq!(v(r#"picket_packets_total{direction="ingress"}"#), 25.0);
        assert_eq!(v(r#"picket_bytes_total{direction="ingress"}"#), 1500.0);
        assert_eq!(v(r#"picket_packets_total{direction="egress"}"#), 0.0);
        assert_eq!(
            v(r#"picket_l4_packets_total{direction="ingress",protocol="tcp"}"#),
            25.0
        );
        assert_eq!(
            v(r#"picket_parse_errors_total{direction="ingress",kind="truncated"}"#),
            3.0
        );
        assert_eq!(
            v(r#"picket_encap_packets_total{direction="ingress",kind="vxlan"}"#),
            5.0
        );
        assert_eq!(
            v(r#"picket_encap_packets_total{direction="ingress",kind="mpls"}"#),
            1.0
        );
        assert_eq!(
            v(r#"picket_encap_packets_total{direction="egress",kind="6in6"}"#),
            0.0
        );
        assert_eq!(
            v(r#"picket_inner_errors_total{direction="ingress",kind="truncated"}"#),
            4.0
        );
        assert_eq!(v(r#"picket_map_entries{map="sources"}"#), 1.0);
        assert_eq!(v(r#"picket_map_capacity_entries{map="sources"}"#), 65536.0);
        assert_eq!(v(r#"picket_map_inserts_total{map="sources"}"#), 2.0);
        assert_eq!(v(r#"picket_alerts_total{rule="port_scan"}"#), 1.0);
        assert_eq!(v(r#"picket_alerts_total{rule="syn_flood"}"#), 0.0);
        assert_eq!(v(r#"picket_active_alerts{rule="port_scan"}"#), 1.0);
        assert_eq!(v("picket_admission_control_active"), 1.0);
        assert_eq!(v("picket_poll_duration_seconds_count"), 2.0);
        assert_eq!(v(r#"picket_build_info{version="0.1.0"}"#), 1.0);
        // No address labels by default.
        assert!(!text.contains("192.0.2.7"), "{text}");
        assert!(!text.contains("top_offender_threshold_ratio{"), "{text}");
    }

    #[test]
    fn folded_and_suppressed_counters_follow_their_totals() {
        let mut m = Metrics::new(0, Duration::from_secs(1));
        let mut episodes = Episodes::new(EpisodeTiming::default());
        let text = m.render(false);
        assert_eq!(
            value(&text, r#"picket_episodes_folded_total{rule="port_scan"}"#),
            Some(0.0),
            "{text}"
        );
        assert_eq!(
            value(&text, r#"picket_suppressed_total{side="scanner"}"#),
            Some(0.0)
        );
        // 30 offenders at once: 20 episodes, 10 folded into the rule's storm.
        let many: Vec<_> = (0..30)
            .map(|i| finding(&format!("192.0.2.{i}"), 40.0))
            .collect();
        let events = episodes.step(0, 0, many);
        m.observe(&snapshot(1), &events, &episodes, false, Duration::ZERO);
        m.suppressed(picket_detect::allowlist::Suppressed([1, 7, 3]));
        m.suppressed(picket_detect::allowlist::Suppressed([1, 9, 3]));
        let text = m.render(false);
        let v = |s: &str| value(&text, s).unwrap_or_else(|| panic!("{s} missing:\n{text}"));
        assert_eq!(v(r#"picket_episodes_folded_total{rule="port_scan"}"#), 10.0);
        assert_eq!(v(r#"picket_alerts_total{rule="port_scan"}"#), 21.0);
        assert_eq!(v(r#"picket_suppressed_total{side="offender"}"#), 1.0);
        assert_eq!(v(r#"picket_suppressed_total{side="scanner"}"#), 9.0);
        assert_eq!(v(r#"picket_suppressed_total{side="scanned"}"#), 3.0);
    }

    #[test]
    fn top_k_exports_the_strongest_offenders_only() {
        let mut m = Metrics::new(2, Duration::from_secs(1));
        let mut episodes = Episodes::new(EpisodeTiming::default());
        let events = episodes.step(
            0,
            0,
            vec![
                finding("192.0.2.1", 60.0),
                finding("192.0.2.2", 300.0),
                finding("192.0.2.3", 90.0),
            ],
        );
        m.observe(&snapshot(1), &events, &episodes, false, Duration::ZERO);
        let text = m.render(true);
        // Series order follows the label family's hash order: compare them sorted.
        let mut series: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("picket_top_offender_threshold_ratio{"))
            .collect();
        series.sort_unstable();
        assert_eq!(
            series,
            [
                r#"picket_top_offender_threshold_ratio{rule="port_scan",ip="192.0.2.2"} 10.0"#,
                r#"picket_top_offender_threshold_ratio{rule="port_scan",ip="192.0.2.3"} 3.0"#,
            ]
        );
    }

    #[test]
    fn capture_rings_and_drops_are_exported() {
        let mut m = Metrics::new(0, Duration::from_secs(1));
        m.capture_rings(2);
        m.capture_drops(5);
        m.capture_drops(7);
        m.capture_drops(7);
        let text = m.render(false);
        assert_eq!(value(&text, "picket_capture_rings"), Some(2.0));
        assert_eq!(value(&text, "picket_capture_drops_total"), Some(7.0));
        assert_eq!(value(&text, "picket_attached_programs"), Some(0.0));
    }

    #[test]
    fn both_formats_are_well_formed() {
        let mut m = Metrics::new(0, Duration::from_secs(1));
        let episodes = Episodes::new(EpisodeTiming::default());
        m.observe(
            &snapshot(5),
            &[],
            &episodes,
            false,
            Duration::from_millis(1),
        );
        let om = m.render(true);
        assert!(om.ends_with("# EOF\n"));
        assert!(om.contains("# TYPE picket_packets counter\n"));
        assert!(om.contains("# UNIT picket_poll_duration_seconds seconds\n"));
        assert!(om.contains("# TYPE picket_build info\n"));
        let prom = m.render(false);
        assert!(!prom.contains("# EOF") && !prom.contains("# UNIT"));
        assert!(prom.contains("# TYPE picket_packets_total counter\n"));
        assert!(prom.contains("# HELP picket_packets_total Packets seen"));
        assert!(prom.contains("# TYPE picket_build_info gauge\n"));
        assert!(prom.contains("# TYPE picket_poll_duration_seconds histogram\n"));
        // Every sample line follows a TYPE line of its family.
        let mut family = String::new();
        for line in prom.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                family = rest.split(' ').next().unwrap().to_string();
            } else if !line.starts_with('#') {
                let name = line.split(['{', ' ']).next().unwrap();
                let base = name
                    .strip_suffix("_bucket")
                    .or_else(|| name.strip_suffix("_sum"))
                    .or_else(|| name.strip_suffix("_count"))
                    .filter(|b| family == *b)
                    .unwrap_or(name);
                assert_eq!(base, family, "{line}");
            }
        }
    }

    #[test]
    fn accept_header_negotiation() {
        let prometheus_2 = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;\
                            version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert!(wants_openmetrics(prometheus_2));
        assert!(wants_openmetrics("application/openmetrics-text"));
        assert!(!wants_openmetrics(""));
        assert!(!wants_openmetrics("*/*"));
        assert!(!wants_openmetrics("text/plain;version=0.0.4"));
        assert!(!wants_openmetrics(
            "application/openmetrics-text;q=0.3, text/plain;q=0.9"
        ));
        assert!(!wants_openmetrics("application/openmetrics-text;q=0"));
    }

    #[test]
    fn readiness_needs_attachment_and_recent_polls() {
        let mut h = Health {
            attached: 0,
            last_poll: None,
            poll_interval: Duration::from_millis(10),
            stopping: false,
        };
        assert!(readiness(&h).unwrap_err().contains("not attached"));
        h.attached = 2;
        h.last_poll = Some(Instant::now());
        assert_eq!(readiness(&h), Ok(()));
        h.last_poll = Some(Instant::now() - Duration::from_millis(31));
        assert!(readiness(&h).unwrap_err().contains("last poll"));
        h.last_poll = Some(Instant::now());
        h.stopping = true;
        assert!(readiness(&h).is_err());
    }
}
