//! Command-line interface.

use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use ipnet::IpNet;

use picket_detect::detector::Thresholds;

use crate::{
    loader::{Hook, XdpModeArg},
    output::Format,
    parse::{MAX_TOP_K, map_entries, parse_duration, parse_metrics_addr, parse_net, positive},
};

/// Picket: who is port-scanning, sweeping or SYN-flooding this host — from eBPF, within seconds.
#[derive(Debug, Parser)]
#[command(
    name = "picket",
    version,
    about,
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    /// Offline or diagnostic subcommand; without one, watch interfaces live.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Live agent options.
    #[command(flatten)]
    pub run: RunArgs,
    /// -v/-q: how much to say on standard error.
    #[command(flatten)]
    pub verbosity: crate::logging::Verbosity,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Measure the XDP program's per-packet cost with BPF_PROG_TEST_RUN (root).
    Bench(BenchArgs),
    /// Analyse pcap/pcapng captures offline: traffic report and the live detectors' alerts
    /// (no root needed).
    #[cfg(feature = "analyze")]
    Analyze(AnalyzeArgs),
    /// Print the documented default configuration file, or check a file.
    Config(ConfigArgs),
}

/// Options of `picket config`.
#[derive(Debug, Args)]
pub struct ConfigArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: ConfigCommand,
}

/// `picket config` subcommands.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the default configuration (TOML, every key documented) to standard output.
    Default,
    /// Check a configuration file; prints `file:line:col: key: reason` for every error and
    /// exits non-zero if there is any.
    Check {
        /// The file to check.
        file: std::path::PathBuf,
    },
}

/// Options of `picket bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Repetitions per BPF_PROG_TEST_RUN call for the single-packet cases.
    #[arg(long, default_value_t = 1_000_000, value_parser = clap::value_parser!(u32).range(1..))]
    pub repeat: u32,
    /// Rounds (each case runs once per round, interleaved with the baseline).
    #[arg(long, default_value_t = 7, value_parser = clap::value_parser!(u32).range(1..))]
    pub rounds: u32,
    /// Distinct sources for the many-sources case.
    #[arg(long, default_value_t = 1_000_000, value_parser = clap::value_parser!(u32).range(1..=16_777_216))]
    pub sources: u32,
    /// Instead of measuring: attach only the trivial XDP_PASS baseline program to IFACE
    /// until SIGINT/SIGTERM, so a live benchmark can compare against the bare XDP path.
    #[arg(long, value_name = "IFACE")]
    pub hold_baseline: Option<String>,
}

#[cfg(feature = "analyze")]
/// Files at least this large get a progress bar (when standard error is a terminal).
const PROGRESS_MIN_BYTES: u64 = 32 << 20;

/// Options of `picket analyze`.
#[cfg(feature = "analyze")]
#[derive(Debug, Args, Clone)]
pub struct AnalyzeArgs {
    /// Capture files, pcap or pcapng (recognised by content, not name); `-` reads standard
    /// input. Several files are read in order as one capture.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<std::path::PathBuf>,
    /// Print the report as one JSON document instead of text.
    #[arg(long)]
    pub json: bool,
    /// Also write a self-contained HTML report with charts to FILE.
    #[arg(long, value_name = "FILE")]
    pub html: Option<std::path::PathBuf>,
    /// Also write the charts as PNG and SVG files into DIR (created if needed).
    #[arg(long, value_name = "DIR")]
    pub plot: Option<std::path::PathBuf>,
    /// Entries in each ranked list (talkers, flows, names, URLs); 0 for all.
    #[arg(long, default_value_t = 10)]
    pub top: usize,
    /// How often, in capture time, the detectors read the state (the live --poll-interval).
    #[arg(long, value_parser = parse_duration, default_value = "1s")]
    pub poll_interval: Duration,
    /// Window of the distinct port/host counts, in capture time.
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    pub window: Duration,
    /// Never alert on offenders in this network (CIDR or address; repeatable).
    #[arg(long = "allow", value_name = "CIDR", value_parser = parse_net)]
    pub allow: Vec<IpNet>,
    /// No progress bar.
    #[arg(long)]
    pub no_progress: bool,
    /// Also run every packet through the loaded BPF program (BPF_PROG_TEST_RUN; root) and
    /// compare the kernel's maps with the host's; any difference is printed and fails.
    #[arg(long)]
    pub kernel: bool,
    /// Detection thresholds.
    #[command(flatten)]
    pub thresholds: ThresholdArgs,
}

#[cfg(feature = "analyze")]
impl AnalyzeArgs {
    /// The library options these flags stand for.
    pub fn options(&self) -> picket_analyze::Options {
        picket_analyze::Options {
            thresholds: self.thresholds.apply(Thresholds::default()),
            poll_interval: self.poll_interval,
            window: self.window,
            allow: self.allow.clone(),
            top: self.top,
            progress_min: (!self.no_progress).then_some(PROGRESS_MIN_BYTES),
        }
    }
}

/// Options of the live agent. Unset options take their value from `--config FILE`, else
/// the built-in default shown in the help (see [`crate::config`]).
#[derive(Debug, Args, Clone)]
pub struct RunArgs {
    /// TOML configuration file (`picket config default` prints one); flags override it.
    /// SIGHUP reloads its thresholds and allowlist.
    #[arg(short, long, value_name = "FILE")]
    pub config: Option<std::path::PathBuf>,
    /// Interface to watch (repeat for several). Default: the interface of the default route.
    #[arg(short, long = "iface", value_name = "IFACE")]
    pub ifaces: Vec<String>,
    /// Ingress hook [default: xdp].
    #[arg(long, value_enum)]
    pub hook: Option<Hook>,
    /// XDP attach mode (with --hook xdp) [default: auto].
    #[arg(long, value_enum)]
    pub xdp_mode: Option<XdpModeArg>,
    /// Do not attach the TC egress program (loses the SYN-ACK/RST view of floods).
    #[arg(long)]
    pub no_egress: bool,
    /// How often the maps are read [default: 1s].
    #[arg(long, value_parser = parse_duration)]
    pub poll_interval: Option<Duration>,
    /// Window of the distinct port/host counts [default: 10s].
    #[arg(long, value_parser = parse_duration)]
    pub window: Option<Duration>,
    /// How often a summary line is printed (0s: never) [default: 10s].
    #[arg(long, value_parser = parse_duration)]
    pub summary_interval: Option<Duration>,
    /// At most one update line per alert episode per this interval [default: 10s].
    #[arg(long, value_parser = parse_duration)]
    pub update_interval: Option<Duration>,
    /// An episode ends after this long without a match [default: 5s].
    #[arg(long, value_parser = parse_duration)]
    pub end_after: Option<Duration>,
    /// Exit after this long (default: run until SIGINT/SIGTERM).
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Never alert on offenders in this network (CIDR or address; repeatable).
    #[arg(long = "allow", value_name = "CIDR", value_parser = parse_net)]
    pub allow: Vec<IpNet>,
    /// Output format [default: auto].
    #[arg(short, long, value_enum)]
    pub output: Option<Format>,
    /// Capacity of the per-source map (LRU) [default: 65536].
    #[arg(long, value_parser = map_entries)]
    pub src_map_entries: Option<u32>,
    /// Capacity of the per-destination map (LRU) [default: 16384].
    #[arg(long, value_parser = map_entries)]
    pub dst_map_entries: Option<u32>,
    /// Serve Prometheus metrics, /healthz and /readyz on ADDR:PORT (PORT alone: 127.0.0.1)
    /// [default: no endpoint].
    #[arg(long, value_name = "ADDR:PORT", value_parser = parse_metrics_addr)]
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// Export the K offenders of open alerts with an `ip` label (0: no address labels)
    /// [default: 0].
    #[arg(long, value_name = "K", value_parser = clap::value_parser!(u32).range(0..=MAX_TOP_K as i64))]
    pub metrics_top_k: Option<u32>,
    /// Write the packets (first 256 bytes) of sources with an open alert to pcap files in
    /// DIR [default: no capture].
    #[arg(long, value_name = "DIR")]
    pub capture_dir: Option<std::path::PathBuf>,
    /// Packet bytes captured per flagged source and alert episode [default: 1048576].
    #[arg(long, value_name = "BYTES", value_parser = clap::value_parser!(u64).range(1..))]
    pub capture_bytes_per_alert: Option<u64>,
    /// Total size of the pcap files in --capture-dir; the oldest are deleted to stay under it
    /// [default: 104857600].
    #[arg(long, value_name = "BYTES", value_parser = clap::value_parser!(u64).range(1..))]
    pub capture_max_bytes: Option<u64>,
    /// Start a new pcap file when the current one reaches this size [default: 16777216].
    #[arg(long, value_name = "BYTES", value_parser = clap::value_parser!(u64).range(1..))]
    pub capture_file_bytes: Option<u64>,
    /// Detection thresholds.
    #[command(flatten)]
    pub thresholds: ThresholdArgs,
}

/// Threshold flags; defaults and reasoning in [`Thresholds::default`].
#[derive(Debug, Args, Clone)]
pub struct ThresholdArgs {
    /// port_scan: distinct destination ports probed by one source per window [default: 30].
    #[arg(long, value_parser = clap::value_parser!(u32).range(2..))]
    pub port_scan_ports: Option<u32>,
    /// host_sweep: distinct destination hosts probed by one source per window [default: 64].
    #[arg(long, value_parser = clap::value_parser!(u32).range(2..))]
    pub host_sweep_hosts: Option<u32>,
    /// syn_flood: SYNs per second from one source [default: 1000].
    #[arg(long, value_parser = positive)]
    pub syn_flood_pps: Option<f64>,
    /// syn_flood (destination): SYNs per second towards one destination [default: 2000].
    #[arg(long, value_parser = positive)]
    pub syn_flood_dst_pps: Option<f64>,
    /// syn_flood (destination): distinct sources needed in the window [default: 64].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub syn_flood_dst_sources: Option<u32>,
    /// udp_flood: UDP packets per second from one source [default: 20000].
    #[arg(long, value_parser = positive)]
    pub udp_flood_pps: Option<f64>,
    /// icmp_flood: ICMP packets per second from one source [default: 1000].
    #[arg(long, value_parser = positive)]
    pub icmp_flood_pps: Option<f64>,
}

impl ThresholdArgs {
    /// Applies the flags given over `base`.
    pub fn apply(&self, mut t: Thresholds) -> Thresholds {
        if let Some(v) = self.port_scan_ports {
            t.port_scan_ports = v;
        }
        if let Some(v) = self.host_sweep_hosts {
            t.host_sweep_hosts = v;
        }
        if let Some(v) = self.syn_flood_pps {
            t.syn_flood_pps = v;
        }
        if let Some(v) = self.syn_flood_dst_pps {
            t.syn_flood_dst_pps = v;
        }
        if let Some(v) = self.syn_flood_dst_sources {
            t.syn_flood_dst_sources = v;
        }
        if let Some(v) = self.udp_flood_pps {
            t.udp_flood_pps = v;
        }
        if let Some(v) = self.icmp_flood_pps {
            t.icmp_flood_pps = v;
        }
        t
    }
}
