//! Command-line interface.

use std::time::Duration;

use clap::{Arg, ArgAction, ArgMatches, Args, FromArgMatches, Parser, Subcommand};

use crate::{
    config::{Flags, How, KEYS, Key, Section, Settings},
    parse::parse_duration,
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
    Analyze(Box<AnalyzeArgs>),
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

impl ConfigArgs {
    /// Runs `picket config ...`.
    pub fn run(&self) -> anyhow::Result<()> {
        match &self.command {
            ConfigCommand::Default => crate::config::print_default(),
            ConfigCommand::Check { file } => crate::config::check_file(file),
        }
    }
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
    #[arg(
        required_unless_present = "live",
        conflicts_with = "live",
        value_name = "FILE"
    )]
    pub files: Vec<std::path::PathBuf>,
    /// Analyse live traffic on IFACE instead of files (an AF_PACKET ring; root or
    /// CAP_NET_RAW) until Ctrl-C or --duration, then print the report.
    #[arg(long, value_name = "IFACE", conflicts_with = "kernel")]
    pub live: Option<String>,
    /// With --live: stop after this long.
    #[arg(long, value_parser = parse_duration, requires = "live")]
    pub duration: Option<std::time::Duration>,
    /// Capture filter in libpcap (tcpdump) syntax, e.g. 'tcp port 80 and host 10.0.0.1':
    /// only matching packets are analysed. With --live it runs in the kernel; on files,
    /// libpcap's compiled program runs on each frame.
    #[arg(short = 'f', long, value_name = "FILTER")]
    pub filter: Option<String>,
    /// With --live: also write the packets to FILE (pcap), then FILE's stem.2.pcap, ... when
    /// it reaches --write-file-bytes, deleting the oldest to stay under --write-max-bytes.
    #[arg(long, value_name = "FILE", requires = "live")]
    pub write: Option<std::path::PathBuf>,
    /// Size at which --write starts a new file.
    #[arg(long, default_value_t = crate::evidence::DEFAULT_FILE_BYTES, value_parser = clap::value_parser!(u64).range(crate::evidence::MIN_FILE_BYTES..))]
    pub write_file_bytes: u64,
    /// Total size of --write's files.
    #[arg(long, default_value_t = crate::evidence::DEFAULT_MAX_BYTES)]
    pub write_max_bytes: u64,
    /// Print the report as one JSON document instead of text.
    #[arg(long)]
    pub json: bool,
    /// Also write a self-contained HTML report with charts to FILE.
    #[arg(long, value_name = "FILE")]
    pub html: Option<std::path::PathBuf>,
    /// Also write the charts as PNG and SVG files into DIR (created if needed).
    #[arg(long, value_name = "DIR")]
    pub plot: Option<std::path::PathBuf>,
    /// Entries in each ranked list (talkers, flows, names, URLs) of the text and HTML
    /// reports; 0 for all. The JSON keeps every row.
    #[arg(long, default_value_t = 10)]
    pub top: usize,
    /// No progress bar.
    #[arg(long)]
    pub no_progress: bool,
    /// Also run every packet through the loaded BPF program (BPF_PROG_TEST_RUN; root) and
    /// compare the kernel's maps with the host's; any difference is printed and fails.
    #[arg(long)]
    pub kernel: bool,
    // -- Analyst options: flow export and threads. --
    /// Also write every TCP and UDP flow (5-tuple, times, packets and bytes each way, flags,
    /// outcome, application) to FILE: CSV when it ends in .csv, JSON lines for .jsonl.
    #[arg(long, value_name = "FILE")]
    pub flows: Option<std::path::PathBuf>,
    /// Threads (default: every CPU): with 2, the detectors and talkers run on a second
    /// thread; with 3 or more, flows and application heads on a third. Same report.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub threads: Option<u16>,
    // -- End of the analyst options. --
    /// The live agent's settings that apply offline (poll interval, window, allowlist,
    /// thresholds), with its defaults and checks.
    #[command(flatten)]
    pub settings: SettingArgs<true>,
    /// Whose view the capture is read from (`--local`).
    #[command(flatten)]
    pub vantage: VantageArgs,
}

/// `picket analyze --local`: the vantage of the detection.
#[cfg(feature = "analyze")]
#[derive(Debug, Args, Clone, Default)]
pub struct VantageArgs {
    /// A watched host or network (repeatable): the capture is accounted as the live agent
    /// there would see it — packets to it as ingress, from it as egress, packets between two
    /// other hosts not at all. Without it, as a SPAN port sees both directions.
    #[arg(long, value_name = "CIDR", value_parser = crate::parse::parse_net)]
    pub local: Vec<ipnet::IpNet>,
}

#[cfg(feature = "analyze")]
impl AnalyzeArgs {
    /// The library options these flags stand for; an error when a cross-setting check
    /// fails (e.g. a window shorter than the poll interval).
    pub fn options(&self) -> anyhow::Result<picket_analyze::Options> {
        let s = Settings::default().with_flags(&self.settings.flags);
        if let Some(p) = s.problems().first() {
            anyhow::bail!("--{}: {}", crate::config::flag_of(&p.key), p.reason);
        }
        Ok(picket_analyze::Options {
            thresholds: s.thresholds,
            poll_interval: s.poll_interval,
            window: s.window,
            allow: s.allow,
            ignore_scanners: s.ignore_scanners,
            ignore_scanned: s.ignore_scanned,
            local: self.vantage.local.clone(),
            progress_min: (!self.no_progress).then_some(PROGRESS_MIN_BYTES),
            threads: self.threads.map_or_else(
                || std::thread::available_parallelism().map_or(1, usize::from),
                usize::from,
            ),
        })
    }

    /// `--afpacket-ring-bytes` (for `--live`).
    pub fn ring_bytes(&self) -> u64 {
        Settings::default()
            .with_flags(&self.settings.flags)
            .afpacket_ring_bytes
    }
}

/// Options of the live agent. Unset options take their value from `--config FILE`, else
/// the built-in default shown in the help (see [`crate::config`]).
#[derive(Debug, Args, Clone)]
pub struct RunArgs {
    /// TOML configuration file (`picket config default` prints one); flags override it.
    /// SIGHUP reloads its thresholds and allowlists.
    #[arg(short, long, value_name = "FILE")]
    pub config: Option<std::path::PathBuf>,
    /// Exit after this long (default: run until SIGINT/SIGTERM).
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Every setting of the declaration (`crate::config::settings`).
    #[command(flatten)]
    pub settings: SettingArgs<false>,
}

/// The flags of the declared settings: the live agent's (`ANALYZE` false) or those that
/// also apply to `picket analyze`. Each flag's help ends with the built-in default; its
/// value is parsed and checked by [`Flags::set`], as a file's would be.
#[derive(Debug, Clone, Default)]
pub struct SettingArgs<const ANALYZE: bool> {
    /// The flags given.
    pub flags: Flags,
}

impl<const ANALYZE: bool> SettingArgs<ANALYZE> {
    fn keys() -> impl Iterator<Item = &'static Key> {
        let section = if ANALYZE {
            Section::Analyze
        } else {
            Section::Live
        };
        KEYS.iter().filter(move |k| k.is_in(section))
    }
}

/// The flag of one setting.
fn arg_of(key: &'static Key, defaults: &Settings) -> Arg {
    let mut help = match key.how {
        How::Off => format!("Sets {} = false. {}", key.key, key.help),
        How::On => format!("Sets {} = true. {}", key.key, key.help),
        _ => key.help.to_string(),
    };
    if let Some(rule) = (key.rule)() {
        help.push_str(&format!(" ({rule})"));
    }
    if let Some(default) = (key.show)(defaults) {
        help.push_str(&format!(" [default: {default}]"));
    }
    let arg = Arg::new(key.flag).long(key.flag).help(help);
    let arg = match key.short {
        Some(c) => arg.short(c),
        None => arg,
    };
    if matches!(key.how, How::Off | How::On) {
        return arg.action(ArgAction::SetTrue);
    }
    let arg = arg.value_name(key.value_name).action(match key.how {
        How::Append => ArgAction::Append,
        _ => ArgAction::Set,
    });
    if !key.choices.is_empty() {
        return arg.value_parser(clap::builder::PossibleValuesParser::new(key.choices));
    }
    arg.value_parser(move |s: &str| -> Result<String, String> {
        Flags::default().set(key.key, s)?;
        Ok(s.to_string())
    })
}

impl<const ANALYZE: bool> Args for SettingArgs<ANALYZE> {
    fn augment_args(mut cmd: clap::Command) -> clap::Command {
        let defaults = Settings::default();
        for key in Self::keys() {
            cmd = cmd.arg(arg_of(key, &defaults));
        }
        cmd
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        Self::augment_args(cmd)
    }
}

impl<const ANALYZE: bool> FromArgMatches for SettingArgs<ANALYZE> {
    fn from_arg_matches(m: &ArgMatches) -> Result<Self, clap::Error> {
        let mut args = SettingArgs::default();
        args.update_from_arg_matches(m)?;
        Ok(args)
    }

    fn update_from_arg_matches(&mut self, m: &ArgMatches) -> Result<(), clap::Error> {
        let invalid = |e: String| clap::Error::raw(clap::error::ErrorKind::ValueValidation, e);
        for key in Self::keys() {
            if matches!(key.how, How::Off | How::On) {
                if m.get_flag(key.flag) {
                    self.flags.set(key.key, "true").map_err(invalid)?;
                }
                continue;
            }
            for raw in m.get_many::<String>(key.flag).into_iter().flatten() {
                self.flags
                    .set(key.key, raw)
                    .map_err(|e| invalid(format!("--{}: {e}", key.flag)))?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::{path::Path, time::Duration};

    use clap::Parser as _;
    use ipnet::IpNet;

    use super::*;
    use crate::config::{ConfigFile, FileErrors};

    fn parse(text: &str) -> Result<Settings, FileErrors> {
        ConfigFile::from_text(Path::new("picket.toml"), text.to_string()).settings()
    }

    fn run_args(flags: &[&str]) -> RunArgs {
        let mut argv = vec!["picket"];
        argv.extend_from_slice(flags);
        Cli::try_parse_from(argv).expect("flags parse").run
    }

    #[test]
    fn flags_override_the_file_which_overrides_defaults() {
        let file = parse(
            "poll_interval = \"2s\"\nwindow = \"20s\"\nallow = [\"10.0.0.0/8\"]\n\
             interfaces = [\"eth0\"]\negress = true\n[thresholds]\nport_scan_ports = 50\n\
             host_sweep_hosts = 70\n[metrics]\naddr = \"0.0.0.0:9464\"\n",
        )
        .unwrap();
        let args = run_args(&[
            "--window",
            "30s",
            "--port-scan-ports",
            "5",
            "--no-egress",
            "--allow",
            "192.0.2.0/24",
            "--metrics-addr",
            "9000",
        ]);
        let s = file.clone().with_flags(&args.settings.flags);
        assert_eq!(s.poll_interval, Duration::from_secs(2)); // file
        assert_eq!(s.window, Duration::from_secs(30)); // flag
        assert_eq!(s.summary_interval, Duration::from_secs(10)); // default
        assert_eq!(s.thresholds.port_scan_ports, 5);
        assert_eq!(s.thresholds.host_sweep_hosts, 70);
        assert!(!s.egress);
        assert_eq!(s.interfaces, ["eth0"]);
        assert_eq!(s.allow, ["192.0.2.0/24".parse::<IpNet>().unwrap()]);
        assert_eq!(s.metrics.addr, Some("127.0.0.1:9000".parse().unwrap()));
        // No flags: the file as is.
        assert_eq!(file.clone().with_flags(&run_args(&[]).settings.flags), file);
    }

    #[test]
    fn help_shows_the_built_in_defaults() {
        use clap::CommandFactory as _;
        let help = Cli::command().render_long_help().to_string();
        let d = Settings::default();
        let dur = |v: Duration| humantime::format_duration(v).to_string();
        for (flag, want) in [
            ("--hook", "auto".to_string()),
            ("--xdp-mode", "auto".into()),
            ("--poll-interval", dur(d.poll_interval)),
            ("--window", dur(d.window)),
            ("--summary-interval", dur(d.summary_interval)),
            ("--update-interval", dur(d.update_interval)),
            ("--end-after", dur(d.end_after)),
            ("--output", "auto".into()),
            ("--src-map-entries", d.src_map_entries.to_string()),
            ("--src-slots", d.src_slots.to_string()),
            ("--dst-slots", d.dst_slots.to_string()),
            ("--conv-slots", d.conv_slots.to_string()),
            ("--metrics-top-k", d.metrics.top_k.to_string()),
            (
                "--capture-bytes-per-alert",
                d.capture_bytes_per_alert.to_string(),
            ),
            ("--capture-max-bytes", d.capture_max_bytes.to_string()),
            ("--capture-file-bytes", d.capture_file_bytes.to_string()),
            (
                "--port-scan-ports",
                d.thresholds.port_scan_ports.to_string(),
            ),
            (
                "--host-sweep-hosts",
                d.thresholds.host_sweep_hosts.to_string(),
            ),
            ("--syn-flood-pps", d.thresholds.syn_flood_pps.to_string()),
            (
                "--syn-flood-dst-pps",
                d.thresholds.syn_flood_dst_pps.to_string(),
            ),
            (
                "--syn-flood-dst-ack-ratio",
                d.thresholds.syn_flood_dst_ack_ratio.to_string(),
            ),
            ("--udp-flood-pps", d.thresholds.udp_flood_pps.to_string()),
            ("--icmp-flood-pps", d.thresholds.icmp_flood_pps.to_string()),
            ("--tcp-flood-pps", d.thresholds.tcp_flood_pps.to_string()),
            ("--reflection-pps", d.thresholds.reflection_pps.to_string()),
        ] {
            let at = help
                .find(&format!("{flag} "))
                .unwrap_or_else(|| panic!("{flag} missing from help"));
            let section = &help[at..];
            let end = section[2..].find("\n  -").map_or(section.len(), |i| i + 2);
            assert!(
                section[..end].contains(&format!("[default: {want}]")),
                "{flag}: want [default: {want}] in {:?}",
                &section[..end]
            );
        }
    }

    #[test]
    fn flags_are_checked_as_the_file_is() {
        for (argv, want) in [
            (&["--port-scan-ports", "1"][..], "1 is below the minimum 2"),
            (&["--syn-flood-pps", "0"][..], "0 is not a positive number"),
            (
                &["--src-map-entries", "8"][..],
                "8 is out of range (16..=16777216)",
            ),
            (
                &["--metrics-top-k", "5000"][..],
                "5000 is above the maximum 1000",
            ),
            (&["--poll-interval", "0s"][..], "must be greater than 0"),
            (
                &["--allow", "not-a-net"][..],
                "\"not-a-net\" is not a CIDR or IP address",
            ),
            (&["--hook", "bogus"][..], "--hook"),
        ] {
            let mut full = vec!["picket"];
            full.extend_from_slice(argv);
            let e = Cli::try_parse_from(full).expect_err("rejected").to_string();
            assert!(e.contains(want) && e.contains(argv[0]), "{argv:?}: {e}");
        }
    }

    #[cfg(feature = "analyze")]
    #[test]
    fn analyze_shares_the_live_defaults_and_checks() {
        let analyze = |flags: &[&str]| {
            let mut argv = vec!["picket", "analyze", "x.pcap"];
            argv.extend_from_slice(flags);
            match Cli::try_parse_from(argv).expect("flags parse").command {
                Some(Command::Analyze(a)) => a.options(),
                other => panic!("{other:?}"),
            }
        };
        let o = analyze(&[]).unwrap();
        let d = Settings::default();
        assert_eq!(o.thresholds, d.thresholds);
        assert_eq!((o.poll_interval, o.window), (d.poll_interval, d.window));
        let o = analyze(&["--port-scan-ports", "5", "--allow", "10.0.0.0/8"]).unwrap();
        assert_eq!(o.thresholds.port_scan_ports, 5);
        assert_eq!(o.allow, ["10.0.0.0/8".parse::<IpNet>().unwrap()]);
        let e = analyze(&["--window", "500ms"]).unwrap_err().to_string();
        assert_eq!(e, "--window: 500ms must be at least poll_interval (1s)");
        // Live-only settings are not flags of analyze.
        let mut argv = vec!["picket", "analyze", "x.pcap", "--hook", "tc"];
        assert!(Cli::try_parse_from(argv.drain(..)).is_err());
    }
}
