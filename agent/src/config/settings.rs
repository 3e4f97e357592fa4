//! The declaration: every setting once, with its key, type, default, flag, check, where it
//! applies and its help. Everything else is made from it (see [`super::declare`]): the
//! [`Settings`] struct and its defaults, the [`Flags`] overlay and [`Settings::with_flags`],
//! the checks of [`Settings::problems`], the file's reader, `picket config default`, the
//! command line's flags and help (`crate::cli`) and `picket analyze`'s options.
//!
//! An entry reads
//! `field: Type { default: expr, flag: how(Item) "long-flag" [short 'c'] [value "NAME"],
//! check: Check<Item>, in: [sections], help: "…" [, example: toml] }`, where `how` is `set`
//! (one value), `some` (an optional setting), `list` (repeatable; the flags' list replaces
//! the file's) or `off` (a switch that turns the setting off), and `Item` is the type one
//! flag value has. `table name: new|external Type ("…") { … }` groups entries in a TOML table
//! (`external`: the struct is defined elsewhere, e.g. [`Thresholds`] in picket-detect with
//! the reasoning of its defaults).

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use ipnet::IpNet;
use picket_detect::{
    allowlist::{Allowlists, PortNet},
    detector::{Rule, Thresholds},
    episodes, pipeline,
};
use toml::de::{DeTable, DeValue};

use super::{
    check::{Check, Problem, interface_name},
    declare::{
        Bad, How, Key, Section, apply, declare, first, flag_ty, how, items, opt, read, show, store,
        table_struct, write,
    },
    value::Value,
};
use crate::{
    loader::{Hook, XdpModeArg},
    output::Format,
    parse::{EXAMPLE_METRICS_PORT, MAP_ENTRIES, MAX_TOP_K},
};

declare! {
    top {
        interfaces: Vec<String> {
            default: Vec::new(),
            flag: list(String) "iface" short 'i' value "IFACE",
            check: Check::Custom(interface_name, "1 to 15 characters, no '/' or space"),
            in: [Live],
            help: "Interface to watch (repeat for several). Empty: the interface of the \
                   default route.",
        }
        hook: Hook {
            default: Hook::Auto,
            flag: set(Hook) "hook",
            check: Check::Any,
            in: [Live],
            help: "Ingress hook: xdp, tc, afpacket (no BPF: AF_PACKET rings, CAP_NET_RAW \
                   only) or auto (per interface: tc on veth, where XDP costs 8-20 %, and on \
                   devices without an Ethernet header, xdp elsewhere and with block; \
                   afpacket when the BPF programs cannot be loaded or attached; one line \
                   says which and why). The TC egress program is attached too unless egress = false \
                   (--no-egress).",
        }
        afpacket_ring_bytes: u64 {
            default: crate::afpacket::DEFAULT_RING_BYTES,
            flag: set(u64) "afpacket-ring-bytes",
            check: Check::Within(crate::afpacket::MIN_RING_BYTES, crate::afpacket::MAX_RING_BYTES),
            in: [Live, Analyze],
            help: "With hook afpacket (and analyze --live): size of each AF_PACKET ring, one \
                   per CPU, in bytes (whole MiB blocks). Packets beyond it are dropped by the \
                   kernel and counted as capture drops.",
        }
        xdp_mode: XdpModeArg {
            default: XdpModeArg::Auto,
            flag: set(XdpModeArg) "xdp-mode",
            check: Check::Any,
            in: [Live],
            help: "XDP attach mode (with hook xdp): auto tries driver, then skb.",
        }
        egress: bool {
            default: true,
            flag: off(bool) "no-egress",
            check: Check::Any,
            in: [Live],
            help: "Whether the TC egress program is attached; it sees the SYN-ACKs and RSTs \
                   of floods.",
        }
        poll_interval: Duration {
            default: pipeline::DEFAULT_POLL_INTERVAL,
            flag: set(Duration) "poll-interval",
            check: Check::Positive,
            in: [Live, Analyze],
            help: "How often the maps are read (offline: in capture time): 500ms, 1s, 2m, ...",
        }
        window: Duration {
            default: pipeline::DEFAULT_WINDOW,
            flag: set(Duration) "window",
            check: Check::Any,
            in: [Live, Analyze],
            help: "Window of the distinct port and host counts; at least poll_interval.",
        }
        summary_interval: Duration {
            default: Duration::from_secs(10),
            flag: set(Duration) "summary-interval",
            check: Check::Any,
            in: [Live],
            help: "How often a summary line is printed (0s: never).",
        }
        update_interval: Duration {
            default: episodes::DEFAULT_UPDATE_INTERVAL,
            flag: set(Duration) "update-interval",
            check: Check::Any,
            in: [Live],
            help: "At most one update line per alert episode per this interval.",
        }
        end_after: Duration {
            default: episodes::DEFAULT_END_AFTER,
            flag: set(Duration) "end-after",
            check: Check::Any,
            in: [Live],
            help: "An alert episode ends after this long without a match.",
        }
        allow: Vec<IpNet> {
            default: Vec::new(),
            flag: list(IpNet) "allow",
            check: Check::Any,
            in: [Live, Analyze, Reload],
            help: "Never alert on offenders in this network: a CIDR or an address \
                   (repeatable).",
            example: r#"["10.0.0.0/8", "2001:db8::1"]"#,
        }
        ignore_scanners: Vec<PortNet> {
            default: Vec::new(),
            flag: list(PortNet) "ignore-scanner",
            check: Check::Any,
            in: [Live, Analyze, Reload],
            help: "Ignore probes from this network, and alerts about it as a source: CIDR, or \
                   CIDR:PORT (IPv6: [CIDR]:PORT) for its probes of that port only \
                   (repeatable).",
            example: r#"["10.0.0.5:9100", "[2001:db8::/48]:443"]"#,
        }
        ignore_scanned: Vec<PortNet> {
            default: Vec::new(),
            flag: list(PortNet) "ignore-scanned",
            check: Check::Any,
            in: [Live, Analyze, Reload],
            help: "Ignore probes of this network, and alerts about it as a destination: CIDR, \
                   or CIDR:PORT (IPv6: [CIDR]:PORT) for probes of that port only (repeatable).",
            example: r#"["192.0.2.5:443", "198.51.100.0/24"]"#,
        }
        output: Format {
            default: Format::Auto,
            flag: set(Format) "output" short 'o',
            check: Check::Any,
            in: [Live],
            help: "Output format: auto is text on a terminal, JSON lines otherwise.",
        }
        src_map_entries: u32 {
            default: agent_common::state::DEFAULT_SOURCES,
            flag: set(u32) "src-map-entries",
            check: Check::Within(*MAP_ENTRIES.start(), *MAP_ENTRIES.end()),
            in: [Live],
            help: "Capacity of the per-source table of probing sources (rounded up to a \
                   power of two; 104 bytes per entry in the kernel, 2-way sets, the source \
                   probed longest ago evicted).",
        }
        src_slots: u32 {
            default: agent_common::slots::DEFAULT_SRC_SLOTS,
            flag: set(u32) "src-slots",
            check: Check::Within(*MAP_ENTRIES.start(), *MAP_ENTRIES.end()),
            in: [Live],
            help: "Slots of the per-CPU table of what each address sent per poll, over all \
                   CPUs (rounded down to a power of two per CPU; 64 bytes each, two banks).",
        }
        dst_slots: u32 {
            default: agent_common::slots::DEFAULT_DST_SLOTS,
            flag: set(u32) "dst-slots",
            check: Check::Within(*MAP_ENTRIES.start(), *MAP_ENTRIES.end()),
            in: [Live],
            help: "Slots of the per-CPU table of what each address received per poll, over \
                   all CPUs (rounded down to a power of two per CPU; 128 bytes each, two banks).",
        }
        conv_slots: u32 {
            default: agent_common::conv::DEFAULT_CONV_SLOTS,
            flag: set(u32) "conv-slots",
            check: Check::Within(*MAP_ENTRIES.start(), *MAP_ENTRIES.end()),
            in: [Live],
            help: "Records of the table of conversations opened per poll, shared by all CPUs \
                   (rounded down to a power of two; 64 bytes each, two banks).",
        }
        capture_dir: Option<PathBuf> {
            default: None,
            flag: some(PathBuf) "capture-dir" value "DIR",
            check: Check::Any,
            in: [Live],
            help: "Evidence capture: write the packets (first 256 bytes) of sources with an \
                   open alert to picket-<UTC time>-<n>.pcap files in this directory. Absent: \
                   no capture.",
            example: r#""/var/lib/picket/evidence""#,
        }
        capture_bytes_per_alert: u64 {
            default: crate::evidence::DEFAULT_BYTES_PER_ALERT,
            flag: set(u64) "capture-bytes-per-alert",
            check: Check::Positive,
            in: [Live],
            help: "Packet bytes captured per flagged source and alert episode.",
        }
        capture_max_bytes: u64 {
            default: crate::evidence::DEFAULT_MAX_BYTES,
            flag: set(u64) "capture-max-bytes",
            check: Check::Any,
            in: [Live],
            help: "Total size of the pcap files in capture_dir; the oldest are deleted to \
                   stay under it. At least capture_file_bytes.",
        }
        capture_file_bytes: u64 {
            default: crate::evidence::DEFAULT_FILE_BYTES,
            flag: set(u64) "capture-file-bytes",
            check: Check::Min(crate::evidence::MIN_FILE_BYTES),
            in: [Live],
            help: "Start a new pcap file when the current one reaches this size.",
        }
    }
    table thresholds: external Thresholds ("Detection thresholds: a rule fires when one \
        offender crosses its bar; see README.md, \"Rules and defaults\", for why each \
        default is where it is.")
    {
        port_scan_ports: u32 {
            default: Thresholds::default().port_scan_ports,
            flag: set(u32) "port-scan-ports",
            check: Check::Min(2),
            in: [Live, Analyze, Reload],
            help: "port_scan: distinct destination ports probed by one source per window.",
        }
        host_sweep_hosts: u32 {
            default: Thresholds::default().host_sweep_hosts,
            flag: set(u32) "host-sweep-hosts",
            check: Check::Min(2),
            in: [Live, Analyze, Reload],
            help: "host_sweep: distinct destination hosts probed by one source per window.",
        }
        scan_failure_ratio: f64 {
            default: Thresholds::default().scan_failure_ratio,
            flag: set(f64) "scan-failure-ratio",
            check: Check::Within(0.0, 1.0),
            in: [Live, Analyze, Reload],
            help: "port_scan, host_sweep: ... while at least this share of the source's probes \
                   drew no accepting answer (0: count every probe).",
        }
        syn_flood_pps: f64 {
            default: Thresholds::default().syn_flood_pps,
            flag: set(f64) "syn-flood-pps",
            check: Check::Positive,
            in: [Live, Analyze, Reload],
            help: "syn_flood: SYNs per second from one source.",
        }
        syn_flood_dst_pps: f64 {
            default: Thresholds::default().syn_flood_dst_pps,
            flag: set(f64) "syn-flood-dst-pps",
            check: Check::Positive,
            in: [Live, Analyze, Reload],
            help: "syn_flood (destination): SYNs per second towards one destination ...",
        }
        syn_flood_dst_bps: f64 {
            default: Thresholds::default().syn_flood_dst_bps,
            flag: set(f64) "syn-flood-dst-bps",
            check: Check::Positive,
            in: [Live, Analyze, Reload],
            help: "syn_flood (destination): ... or SYN bits per second towards it ...",
        }
        syn_flood_dst_ack_ratio: f64 {
            default: Thresholds::default().syn_flood_dst_ack_ratio,
            flag: set(f64) "syn-flood-dst-ack-ratio",
            check: Check::Positive,
            in: [Live, Analyze, Reload],
            help: "syn_flood (destination): ... while it receives fewer ACK-class packets \
                   than this fraction of the SYNs (the handshakes are not completed).",
        }
        udp_flood_pps: f64 {
            default: Thresholds::default().udp_flood_pps,
            flag: set(f64) "udp-flood-pps",
            check: Check::Positive,
            in: [Live, Analyze, Reload],
            help: "udp_flood: UDP packets per second from one source.",
        }
        udp_flood_dst_pps: f64 {
            default: Thresholds::default().udp_flood_dst_pps,
            flag: set(f64) "udp-flood-dst-pps",
            check: Check::Positive,
            in: [Live, Analyze, Reload],
            help: "udp_flood (destination): UDP packets per second towards one destination that \
                   sends back under 1 % as much UDP ...",
        }
        udp_flood_dst_bps: f64 {
            default: Thresholds::default().udp_flood_dst_bps,
            flag: set(f64) "udp-flood-dst-bps",
            check: Check::Positive,
            in: [Live, Analyze, Reload],
            help: "udp_flood (destination): ... or UDP bits per second towards it.",
        }
        icmp_flood_pps: f64 {
            default: Thresholds::default().icmp_flood_pps,
            flag: set(f64) "icmp-flood-pps",
            check: Check::Positive,
            in: [Live, Analyze, Reload],
            help: "icmp_flood: ICMP and ICMPv6 packets per second from one source.",
        }
        icmp_flood_dst_pps: f64 {
            default: Thresholds::default().icmp_flood_dst_pps,
            flag: set(f64) "icmp-flood-dst-pps",
            check: Check::Positive,
            in: [Live, Analyze, Reload],
            help: "icmp_flood (destination): ICMP requests, or replies and errors it did not ask \
                   for, per second towards one destination ...",
        }
        icmp_flood_dst_bps: f64 {
            default: Thresholds::default().icmp_flood_dst_bps,
            flag: set(f64) "icmp-flood-dst-bps",
            check: Check::Positive,
            in: [Live, Analyze, Reload],
            help: "icmp_flood (destination): ... or their bits per second.",
        }
        tcp_flood_pps: f64 {
            default: Thresholds::default().tcp_flood_pps,
            flag: set(f64) "tcp-flood-pps",
            check: Check::Positive,
            in: [Live, Analyze, Reload],
            help: "tcp_flood: small TCP packets without SYN (bare ACK, RST, FIN) per second \
                   towards one destination that sends back under 1 % as many ...",
        }
        tcp_flood_bps: f64 {
            default: Thresholds::default().tcp_flood_bps,
            flag: set(f64) "tcp-flood-bps",
            check: Check::Positive,
            in: [Live, Analyze, Reload],
            help: "tcp_flood: ... or bits per second of all TCP without SYN towards one destination \
                   that sends back under 0.1 % as many packets.",
        }
        frag_flood_pps: f64 {
            default: Thresholds::default().frag_flood_pps,
            flag: set(f64) "frag-flood-pps",
            check: Check::Positive,
            in: [Live, Analyze, Reload],
            help: "frag_flood: IP fragments per second towards one destination that sends back \
                   under 1 % as many packets ...",
        }
        frag_flood_bps: f64 {
            default: Thresholds::default().frag_flood_bps,
            flag: set(f64) "frag-flood-bps",
            check: Check::Positive,
            in: [Live, Analyze, Reload],
            help: "frag_flood: ... or their bits per second.",
        }
        proto_flood_pps: f64 {
            default: Thresholds::default().proto_flood_pps,
            flag: set(f64) "proto-flood-pps",
            check: Check::Positive,
            in: [Live, Analyze, Reload],
            help: "proto_flood: packets of other IP protocols (GRE, ESP, tunnels by their outer \
                   header, ...) per second towards one destination that sends back under 1 % \
                   as many ...",
        }
        proto_flood_bps: f64 {
            default: Thresholds::default().proto_flood_bps,
            flag: set(f64) "proto-flood-bps",
            check: Check::Positive,
            in: [Live, Analyze, Reload],
            help: "proto_flood: ... or their bits per second.",
        }
        reflection_pps: f64 {
            default: Thresholds::default().reflection_pps,
            flag: set(f64) "reflection-pps",
            check: Check::Positive,
            in: [Live, Analyze, Reload],
            help: "reflection: UDP packets per second from reflector ports (DNS, NTP, ...) towards \
                   one destination, from 10 or more reflectors, that asked under 10 % as often ...",
        }
        reflection_bps: f64 {
            default: Thresholds::default().reflection_bps,
            flag: set(f64) "reflection-bps",
            check: Check::Positive,
            in: [Live, Analyze, Reload],
            help: "reflection: ... or bits per second.",
        }
    }
    table metrics: new MetricsSettings ("Prometheus/OpenMetrics endpoint: /metrics, \
        /healthz, /readyz.")
    {
        addr: Option<SocketAddr> {
            default: None,
            flag: some(SocketAddr) "metrics-addr",
            check: Check::Any,
            in: [Live],
            help: "Serve Prometheus metrics, /healthz and /readyz on ADDR:PORT (PORT alone: \
                   127.0.0.1). Absent: no endpoint. Anything but loopback exposes the metrics \
                   to the network.",
            example: format!("\"127.0.0.1:{EXAMPLE_METRICS_PORT}\""),
        }
        top_k: u32 {
            default: 0,
            flag: set(u32) "metrics-top-k" value "K",
            check: Check::Max(MAX_TOP_K),
            in: [Live],
            help: "Export the K offenders of open alerts with their address as an `ip` label \
                   (0: no address labels at all).",
        }
        web_config: Option<PathBuf> {
            default: None,
            flag: some(PathBuf) "web-config" value "FILE",
            check: Check::Any,
            in: [Live],
            help: "TLS and basic auth for the endpoint, in the Prometheus exporters' web \
                   configuration format (tls_server_config, basic_auth_users with bcrypt \
                   hashes). Basic auth guards /metrics; /healthz and /readyz stay open.",
            example: r#""/etc/picket/web-config.yml""#,
        }
    }
    table block: new BlockSettings ("Blocking (opt-in, XDP only): while a source-scoped \
        episode of one of the rules is open, and for ttl after it ends, XDP drops the \
        source's packets. Never blocked: allowlisted sources, the host's own addresses, its \
        default gateways, link-local and loopback addresses.")
    {
        enabled: bool {
            default: false,
            flag: on(bool) "block",
            check: Check::Any,
            in: [Live],
            help: "Drop the packets of the sources of open episodes (hook xdp only).",
        }
        rules: Vec<Rule> {
            default: vec![Rule::PortScan, Rule::HostSweep, Rule::SynFlood],
            flag: list(Rule) "block-rule" value "RULE",
            check: Check::Any,
            in: [Live],
            help: "Rules whose source-scoped episodes block their source (repeatable).",
        }
        ttl: Duration {
            default: Duration::from_secs(600),
            flag: set(Duration) "block-ttl",
            check: Check::Positive,
            in: [Live],
            help: "How long a source stays blocked after its last episode ended.",
        }
        dry_run: bool {
            default: false,
            flag: on(bool) "block-dry-run",
            check: Check::Any,
            in: [Live],
            help: "Log and count what would be dropped, drop nothing.",
        }
        max_sources: u32 {
            default: agent_common::state::DEFAULT_BLOCKED,
            flag: set(u32) "block-max-sources",
            check: Check::Within(1, 1 << 20),
            in: [Live],
            help: "Capacity of the block map; when full, the block that expires first is \
                   lifted (counted in picket_block_evictions_total).",
        }
    }
    table alertmanager: new AlertmanagerSettings ("Alertmanager: push alert episodes to its \
        v2 API as Prometheus does (firing at the start, re-sent while open, resolved at the \
        end).")
    {
        urls: Vec<String> {
            default: Vec::new(),
            flag: list(String) "alertmanager" value "URL",
            check: Check::Custom(crate::alertmanager::check_url, "an http:// or https:// URL"),
            in: [Live],
            help: "Alertmanager base URL (repeatable: each gets every alert). Empty: no \
                   alerts are pushed.",
            example: r#"["http://alertmanager.monitoring:9093"]"#,
        }
        timeout: Duration {
            default: Duration::from_secs(10),
            flag: set(Duration) "alertmanager-timeout",
            check: Check::Positive,
            in: [Live],
            help: "Time for one request to an Alertmanager.",
        }
        resend_interval: Duration {
            default: Duration::from_secs(60),
            flag: set(Duration) "alertmanager-resend-interval",
            check: Check::Positive,
            in: [Live],
            help: "Open alerts are re-sent this often, valid for four intervals (keep it well \
                   under Alertmanager's resolve_timeout).",
        }
        basic_auth_user: Option<String> {
            default: None,
            flag: some(String) "alertmanager-user" value "USER",
            check: Check::Any,
            in: [Live],
            help: "Basic auth user name (with password_file).",
            example: r#""picket""#,
        }
        password_file: Option<PathBuf> {
            default: None,
            flag: some(PathBuf) "alertmanager-password-file" value "FILE",
            check: Check::Any,
            in: [Live],
            help: "File holding the basic auth password.",
            example: r#""/etc/picket/alertmanager-password""#,
        }
        bearer_token_file: Option<PathBuf> {
            default: None,
            flag: some(PathBuf) "alertmanager-bearer-token-file" value "FILE",
            check: Check::Any,
            in: [Live],
            help: "File holding a bearer token (instead of basic auth).",
            example: r#""/var/run/secrets/alertmanager/token""#,
        }
    }
}

impl Settings {
    /// The allowlists of the detection pipeline.
    pub fn allowlists(&self) -> Allowlists {
        Allowlists {
            offenders: self.allow.clone(),
            scanners: self.ignore_scanners.clone(),
            scanned: self.ignore_scanned.clone(),
        }
    }
}

/// The flag that sets a key (`allow[1]`: `allow`).
pub fn flag_of(key: &str) -> &'static str {
    let key = key.split('[').next().unwrap_or(key);
    KEYS.iter().find(|k| k.key == key).map_or("", |k| k.flag)
}

impl serde::Serialize for Settings {
    /// As [`Settings::to_table`], plain keys before tables.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap as _;
        let table = self.to_table();
        let mut map = s.serialize_map(Some(table.len()))?;
        for tables in [false, true] {
            for (k, v) in table.iter().filter(|(_, v)| v.is_table() == tables) {
                map.serialize_entry(k, v)?;
            }
        }
        map.end()
    }
}
