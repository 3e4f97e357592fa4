//! `picket analyze`: offline analysis of pcap and pcapng captures, without root.
//!
//! Packets are read with `pcap-parser` ([`reader`]), their link layer is stripped ([`link`]),
//! and they are classified by `agent_common`'s classifier — the code the BPF programs run. The
//! live agent's state model, detectors and alert episodes run on packet time
//! ([`detection`]); around them the report ([`report`]) adds the protocol mix, talkers,
//! flows ([`flows`]), application hints ([`app`]) and chart data ([`timeline`]). The report
//! is printed as text ([`text`], via [`layout`]) or JSON, and can be written as an HTML page
//! ([`html`]) and as PNG/SVG charts ([`charts`]).

pub mod app;
pub mod charts;
pub mod detection;
pub mod flows;
pub mod html;
pub mod kernel;
pub mod layout;
pub mod names;
pub mod reader;
pub mod report;
pub mod text;
pub mod timeline;

use std::{
    io::{Read, Write as _},
    path::PathBuf,
    time::Duration,
};

use anyhow::{Context as _, Result, bail};
use clap::Args;
use ipnet::IpNet;

use crate::{
    cli::{ThresholdArgs, parse_duration, parse_net},
    detect::Thresholds,
};
pub use picket_capture::link;
pub use report::Report;

/// Files at least this large get a progress bar (when standard error is a terminal).
const PROGRESS_MIN_BYTES: u64 = 32 << 20;

/// Options of `picket analyze`.
#[derive(Debug, Args, Clone)]
pub struct AnalyzeArgs {
    /// Capture files, pcap or pcapng (recognised by content, not name); `-` reads standard
    /// input. Several files are read in order as one capture.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Print the report as one JSON document instead of text.
    #[arg(long)]
    pub json: bool,
    /// Also write a self-contained HTML report with charts to FILE.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    /// Also write the charts as PNG and SVG files into DIR (created if needed).
    #[arg(long, value_name = "DIR")]
    pub plot: Option<PathBuf>,
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

impl AnalyzeArgs {
    /// The library options these flags stand for.
    pub fn options(&self) -> Options {
        Options {
            thresholds: self.thresholds.apply(Thresholds::default()),
            poll_interval: self.poll_interval,
            window: self.window,
            allow: self.allow.clone(),
            top: self.top,
            progress_min: (!self.no_progress).then_some(PROGRESS_MIN_BYTES),
        }
    }
}

/// What [`analyze`] needs besides the inputs.
#[derive(Clone, Debug)]
pub struct Options {
    /// Detection thresholds.
    pub thresholds: Thresholds,
    /// Interval between detector readings, in capture time.
    pub poll_interval: Duration,
    /// Window of the distinct counts, in capture time.
    pub window: Duration,
    /// Offenders never alerted on.
    pub allow: Vec<IpNet>,
    /// Entries per ranked list (0: all).
    pub top: usize,
    /// Show a progress bar for files at least this large (when stderr is a terminal).
    pub progress_min: Option<u64>,
}

impl Default for Options {
    /// The live agent's defaults, top 10, no progress bar.
    fn default() -> Self {
        Options {
            thresholds: Thresholds::default(),
            poll_interval: Duration::from_secs(1),
            window: Duration::from_secs(10),
            allow: Vec::new(),
            top: 10,
            progress_min: None,
        }
    }
}

fn validate(opts: &Options) -> Result<()> {
    if opts.poll_interval.is_zero() {
        bail!("--poll-interval must be greater than 0");
    }
    if opts.window < opts.poll_interval {
        bail!(
            "--window ({:?}) must be at least --poll-interval ({:?})",
            opts.window,
            opts.poll_interval
        );
    }
    Ok(())
}

/// Analyses capture files (`-`: standard input), read in order as one capture. Fails when an
/// input cannot be opened or is not a capture; truncated or corrupt inputs give warnings.
pub fn analyze(paths: &[PathBuf], opts: &Options) -> Result<Report> {
    validate(opts)?;
    let mut agg = report::Aggregator::new(opts);
    for path in paths {
        let info = reader::read_path(path, opts.progress_min, &mut |f| agg.frame(f))?;
        agg.input(info);
    }
    Ok(agg.finish())
}

/// Analyses one capture read from `input`, named `name` in the report.
pub fn analyze_reader<R: Read + Send>(name: &str, input: R, opts: &Options) -> Result<Report> {
    validate(opts)?;
    let mut agg = report::Aggregator::new(opts);
    let info = reader::read_capture(name, input, &mut |_| {}, &mut |f| agg.frame(f))?;
    agg.input(info);
    Ok(agg.finish())
}

/// Runs `picket analyze`: report on standard output, warnings on standard error, and the
/// HTML page and chart files when asked for.
pub fn run(args: &AnalyzeArgs) -> Result<()> {
    let report = analyze(&args.files, &args.options())?;
    for w in &report.warnings {
        eprintln!("picket: warning: {w}");
    }
    if let Some(path) = &args.html {
        let page = html::render(&report)?;
        std::fs::write(path, page).with_context(|| format!("cannot write {}", path.display()))?;
    }
    if let Some(dir) = &args.plot {
        charts::write_all(&report, dir)?;
    }
    let out = if args.json {
        let mut s = serde_json::to_string_pretty(&report)?;
        s.push('\n');
        s
    } else {
        text::render(&report)
    };
    match std::io::stdout().lock().write_all(out.as_bytes()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => return Err(e.into()),
        _ => {}
    }
    if args.kernel {
        kernel::report(&kernel::check(&args.files)?)?;
    }
    Ok(())
}

/// The first `top` items by `key` (all when `top` is 0), in key order.
pub(crate) fn top_n<T, K: Ord>(
    items: impl Iterator<Item = T>,
    top: usize,
    key: impl Fn(&T) -> K,
) -> Vec<T> {
    let mut v: Vec<T> = items.collect();
    if top > 0 && v.len() > top {
        v.select_nth_unstable_by_key(top - 1, &key);
        v.truncate(top);
    }
    v.sort_by_key(key);
    v
}
