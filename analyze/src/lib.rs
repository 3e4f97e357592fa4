//! `picket analyze`: offline analysis of pcap and pcapng captures, without root.
//!
//! Packets are read with `pcap-parser` ([`reader`]), their link layer is stripped ([`link`]),
//! and they are classified by `agent_common`'s classifier — the code the BPF programs run. The
//! live agent's state model, detectors and alert episodes run on packet time
//! ([`picket_detect::replay`]); around them the report ([`report`]) adds the protocol mix, talkers,
//! flows ([`flows`]), application hints ([`app`]) and chart data ([`timeline`]). The report
//! is printed as text ([`text`], via [`layout`]) or JSON, and can be written as an HTML page
//! ([`html`]) and as PNG/SVG charts ([`charts`]).

pub mod aggregate;
pub mod app;
pub mod charts;
pub mod flow_export;
pub mod flows;
pub mod html;
pub mod layout;
pub mod names;
pub mod reader;
pub mod report;
pub mod stages;
pub mod streams;
pub mod talkers;
pub mod text;
pub mod timeline;
pub mod tunnels;

use std::{io::Read, path::PathBuf, time::Duration};

use anyhow::{Result, bail};
use ipnet::IpNet;
use picket_detect::{
    allowlist::PortNet,
    detector::Thresholds,
    pipeline::{DEFAULT_POLL_INTERVAL, DEFAULT_WINDOW},
};

pub use picket_capture::link;

/// The hash map of every table: foldhash instead of SipHash, as the keys (addresses, ports)
/// come from packets and hashing them was the largest cost after the tables themselves. The
/// seed is still random per process, and every output is sorted, so no order leaks out.
pub(crate) type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
pub use report::Report;

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
    /// Sources whose probes and findings are ignored (`ignore_scanners`).
    pub ignore_scanners: Vec<PortNet>,
    /// Destinations whose probes and findings are ignored (`ignore_scanned`).
    pub ignore_scanned: Vec<PortNet>,
    /// The watched hosts (`--local`): the capture is accounted as the live agent on them
    /// would see it; empty: as a SPAN port sees it (see `picket_detect::replay`).
    pub local: Vec<IpNet>,
    /// Show a progress bar for files at least this large (when stderr is a terminal).
    pub progress_min: Option<u64>,
    /// Threads: 1 runs everything on the calling thread; 2 run the detection stage (the
    /// detectors and talkers, [`stages`]) on a thread of its own, 3 or more the flow stage too
    /// (the pipeline has three stages, so more threads gain nothing), and build the report's
    /// largest tables in parallel. The report is the same for any value.
    pub threads: usize,
}

impl Default for Options {
    /// The live agent's defaults, no progress bar.
    fn default() -> Self {
        Options {
            thresholds: Thresholds::default(),
            poll_interval: DEFAULT_POLL_INTERVAL,
            window: DEFAULT_WINDOW,
            allow: Vec::new(),
            ignore_scanners: Vec::new(),
            ignore_scanned: Vec::new(),
            local: Vec::new(),
            progress_min: None,
            threads: 1,
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

/// A capture filter: which frames are analysed, decided on the frame's bytes as captured
/// with its link type (`picket analyze -f` runs libpcap's compiled filters through it).
pub trait FrameFilter {
    /// The expression, as given (shown in the report).
    fn expression(&self) -> &str;
    /// Whether the frame passes; an error (one line) when the filter cannot be applied to
    /// frames of this link type.
    fn matches(&mut self, linktype: u32, frame: &[u8]) -> Result<bool>;
}

/// Analyses capture files (`-`: standard input), read in order as one capture. Fails when an
/// input cannot be opened or is not a capture; truncated or corrupt inputs give warnings.
pub fn analyze(paths: &[PathBuf], opts: &Options) -> Result<Report> {
    analyze_filtered(paths, opts, None)
}

/// [`analyze`], on the frames `filter` passes only.
pub fn analyze_filtered(
    paths: &[PathBuf],
    opts: &Options,
    filter: Option<&mut dyn FrameFilter>,
) -> Result<Report> {
    validate(opts)?;
    if opts.threads > 1 {
        std::thread::scope(|scope| {
            read_all(
                paths,
                opts,
                filter,
                aggregate::Aggregator::threaded(scope, opts, opts.threads),
            )
        })
    } else {
        read_all(paths, opts, filter, aggregate::Aggregator::new(opts))
    }
}

fn read_all(
    paths: &[PathBuf],
    opts: &Options,
    mut filter: Option<&mut dyn FrameFilter>,
    mut agg: aggregate::Aggregator<'_>,
) -> Result<Report> {
    let mut matched = 0u64;
    let mut error = None;
    for path in paths {
        let info = reader::read_path(path, opts.progress_min, &mut |f| {
            if let Some(flt) = filter.as_deref_mut() {
                if error.is_some() {
                    return;
                }
                match flt.matches(f.linktype, f.data) {
                    Ok(true) => {}
                    Ok(false) => return,
                    Err(e) => {
                        error = Some(e);
                        return;
                    }
                }
                matched += 1;
            }
            agg.frame(f)
        })?;
        if let Some(e) = error {
            return Err(e.context(path.display().to_string()));
        }
        agg.input(info);
    }
    let mut report = agg.finish()?;
    if let Some(flt) = filter {
        report.filter = Some(report::FilterSummary {
            expression: flt.expression().to_string(),
            packets_read: report.inputs.iter().map(|i| i.packets).sum(),
            packets_matched: matched,
        });
    }
    Ok(report)
}

/// Analyses one capture read from `input`, named `name` in the report.
pub fn analyze_reader<R: Read + Send>(name: &str, input: R, opts: &Options) -> Result<Report> {
    validate(opts)?;
    let mut agg = aggregate::Aggregator::new(opts);
    let info = reader::read_capture(name, input, &mut |_| {}, &mut |f| agg.frame(f))?;
    agg.input(info);
    agg.finish()
}

/// Every item, sorted by `key` (the tables' rows, largest first by their keys).
pub(crate) fn sorted<T, K: Ord>(items: impl Iterator<Item = T>, key: impl Fn(&T) -> K) -> Vec<T> {
    let mut v: Vec<T> = items.collect();
    v.sort_by_key(key);
    v
}
