//! Command-line interface.

use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use ipnet::IpNet;

use crate::{
    detect::Thresholds,
    loader::{Hook, XdpModeArg},
    output::Format,
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
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Measure the XDP program's per-packet cost with BPF_PROG_TEST_RUN (root).
    Bench(BenchArgs),
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
}

/// Options of the live agent.
#[derive(Debug, Args, Clone)]
pub struct RunArgs {
    /// Interface to watch (repeat for several). Default: the interface of the default route.
    #[arg(short, long = "iface", value_name = "IFACE")]
    pub ifaces: Vec<String>,
    /// Ingress hook.
    #[arg(long, value_enum, default_value_t = Hook::Xdp)]
    pub hook: Hook,
    /// XDP attach mode (with --hook xdp).
    #[arg(long, value_enum, default_value_t = XdpModeArg::Auto)]
    pub xdp_mode: XdpModeArg,
    /// Do not attach the TC egress program (loses the SYN-ACK/RST view of floods).
    #[arg(long)]
    pub no_egress: bool,
    /// How often the maps are read.
    #[arg(long, value_parser = parse_duration, default_value = "1s")]
    pub poll_interval: Duration,
    /// Window of the distinct port/host counts.
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    pub window: Duration,
    /// How often a summary line is printed (0s: never).
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    pub summary_interval: Duration,
    /// At most one update line per alert episode per this interval.
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    pub update_interval: Duration,
    /// An episode ends after this long without a match.
    #[arg(long, value_parser = parse_duration, default_value = "5s")]
    pub end_after: Duration,
    /// Exit after this long (default: run until SIGINT/SIGTERM).
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Never alert on offenders in this network (CIDR or address; repeatable).
    #[arg(long = "allow", value_name = "CIDR", value_parser = parse_net)]
    pub allow: Vec<IpNet>,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = Format::Auto)]
    pub output: Format,
    /// Capacity of the per-source map (LRU).
    #[arg(long, default_value_t = agent_common::state::DEFAULT_SOURCES, value_parser = clap::value_parser!(u32).range(16..=16_777_216))]
    pub src_map_entries: u32,
    /// Capacity of the per-destination map (LRU).
    #[arg(long, default_value_t = agent_common::state::DEFAULT_DESTS, value_parser = clap::value_parser!(u32).range(16..=16_777_216))]
    pub dst_map_entries: u32,
    /// Detection thresholds.
    #[command(flatten)]
    pub thresholds: ThresholdArgs,
}

/// Threshold flags; defaults and reasoning in [`Thresholds::default`].
#[derive(Debug, Args, Clone)]
pub struct ThresholdArgs {
    /// port_scan: distinct destination ports probed by one source per window.
    #[arg(long, value_parser = clap::value_parser!(u32).range(2..))]
    pub port_scan_ports: Option<u32>,
    /// host_sweep: distinct destination hosts probed by one source per window.
    #[arg(long, value_parser = clap::value_parser!(u32).range(2..))]
    pub host_sweep_hosts: Option<u32>,
    /// syn_flood: SYNs per second from one source.
    #[arg(long, value_parser = positive)]
    pub syn_flood_pps: Option<f64>,
    /// syn_flood (destination): SYNs per second towards one destination.
    #[arg(long, value_parser = positive)]
    pub syn_flood_dst_pps: Option<f64>,
    /// syn_flood (destination): distinct sources needed in the window.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub syn_flood_dst_sources: Option<u32>,
    /// udp_flood: UDP packets per second from one source.
    #[arg(long, value_parser = positive)]
    pub udp_flood_pps: Option<f64>,
    /// icmp_flood: ICMP packets per second from one source.
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

/// Parses "1s", "500ms", "2m".
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e} (examples: 1s, 500ms, 2m)"))
}

fn positive(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v > 0.0 && v.is_finite() => Ok(v),
        _ => Err(format!("{s:?} is not a positive number")),
    }
}

/// Parses a CIDR, or a bare address as a host network.
pub fn parse_net(s: &str) -> Result<IpNet, String> {
    s.parse::<IpNet>()
        .or_else(|_| s.parse::<std::net::IpAddr>().map(IpNet::from))
        .map_err(|_| format!("{s:?} is not a CIDR or IP address"))
}
