//! `picket analyze --live IFACE`: the offline report over live traffic. One AF_PACKET ring
//! ([`crate::afpacket`], with the `-f` filter in the kernel) feeds the analyzer's
//! [`Aggregator`] exactly as a capture file's frames do, so the report (and its detection on
//! packet time) is the one `picket analyze` gives for the same packets; `--write` keeps them.

use std::{
    io::IsTerminal as _,
    path::Path,
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};
use picket_analyze::{
    Report,
    aggregate::Aggregator,
    reader::{Format, Frame, InputInfo},
};
use tokio::signal::unix::{SignalKind, signal};

use crate::{
    afpacket::{self, Capture, Packet, RingConfig, Sink},
    cli::AnalyzeArgs,
    evidence::PcapRotator,
    system,
};

/// How often the summary on a terminal is refreshed.
const REFRESH: Duration = Duration::from_secs(2);
/// Bytes of each packet kept by `--write`.
const WRITE_SNAP: usize = 65_535;

/// Counters for the refreshed summary.
#[derive(Default)]
struct Progress {
    packets: AtomicU64,
    bytes: AtomicU64,
}

struct Feed {
    agg: Arc<Mutex<Option<Aggregator<'static>>>>,
    write: Option<PcapRotator>,
    write_failed: bool,
    progress: Arc<Progress>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Sink for Feed {
    fn packet(&mut self, linktype: u32, p: &Packet<'_>) {
        if let Some(agg) = lock(&self.agg).as_mut() {
            agg.frame(&Frame {
                ts_ns: Some(p.ts_ns),
                linktype,
                data: p.data,
                orig_len: p.wire_len,
            });
        }
        if let Some(w) = self.write.as_mut().filter(|_| !self.write_failed)
            && let Err(e) = w.write(p.ts_ns, p.wire_len, p.data)
        {
            tracing::warn!("--write: {e:#}; no more packets are written");
            self.write_failed = true;
        }
        self.progress.packets.fetch_add(1, Ordering::Relaxed);
        self.progress
            .bytes
            .fetch_add(u64::from(p.wire_len), Ordering::Relaxed);
    }

    fn end_block(&mut self) {
        if let Some(w) = self.write.as_mut()
            && let Err(e) = w.flush()
        {
            tracing::warn!("--write: {e:#}");
        }
    }
}

/// Captures on `iface` until Ctrl-C, SIGTERM or `--duration`, and returns the report.
pub fn run(args: &AnalyzeArgs, iface: &str) -> Result<Report> {
    let opts = args.options()?;
    afpacket::ifindex(iface)?;
    let linktype = afpacket::linktype_of(iface);
    let filter = args
        .filter
        .as_deref()
        .map(|f| afpacket::compile_filter(f, linktype))
        .transpose()?;
    system::check_net_raw()?;
    let write = args
        .write
        .as_deref()
        .map(|p| writer(p, linktype, args))
        .transpose()?;
    let agg = Arc::new(Mutex::new(Some(Aggregator::new(&opts))));
    let progress = Arc::new(Progress::default());
    let cfg = RingConfig {
        iface: iface.to_string(),
        ring_bytes: args.ring_bytes(),
        outgoing: true,
        filter,
    };
    let mut feed = Some(Feed {
        agg: agg.clone(),
        write,
        write_failed: false,
        progress: progress.clone(),
    });
    let mut capture = Capture::start(&cfg, 1, |_| {
        Box::new(feed.take().expect("one ring, one feed")) as Box<dyn Sink>
    })?;
    tracing::info!(
        "analyzing live traffic on {iface}{}; Ctrl-C for the report",
        args.duration.map_or_else(String::new, |d| format!(
            " for {}",
            humantime::format_duration(d)
        ))
    );
    let failure = wait(&mut capture, args.duration, &progress)?;
    capture.stop();
    let drops = capture.drops();
    if std::io::stderr().is_terminal() {
        eprintln!();
    }
    let mut agg = lock(&agg)
        .take()
        .context("the capture ended without its data")?;
    let packets = progress.packets.load(Ordering::Relaxed);
    let mut warnings = Vec::new();
    if drops > 0 {
        warnings.push(format!(
            "the kernel dropped {drops} packets (ring full): raise --afpacket-ring-bytes"
        ));
    }
    if let Some(e) = failure {
        warnings.push(format!("capture stopped early: {e:#}"));
    }
    agg.input(InputInfo {
        name: format!("live:{iface}"),
        format: Format::Pcap,
        big_endian: false,
        sections: 1,
        interfaces: 1,
        packets,
        bytes_read: progress.bytes.load(Ordering::Relaxed),
        truncated: false,
        warnings,
    });
    agg.finish()
}

fn writer(path: &Path, linktype: u32, args: &AnalyzeArgs) -> Result<PcapRotator> {
    let mut w = PcapRotator::numbered(
        path,
        linktype,
        WRITE_SNAP,
        args.write_file_bytes,
        args.write_max_bytes.max(args.write_file_bytes),
    )?;
    w.verbose = true;
    Ok(w)
}

/// Waits for the end (signal or duration), refreshing a one-line summary on a terminal.
/// Returns the error of a capture that stopped by itself.
fn wait(
    capture: &mut Capture,
    duration: Option<Duration>,
    progress: &Progress,
) -> Result<Option<anyhow::Error>> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let mut sigint = signal(SignalKind::interrupt()).context("cannot install SIGINT handler")?;
        let mut sigterm =
            signal(SignalKind::terminate()).context("cannot install SIGTERM handler")?;
        let start = Instant::now();
        let end = duration.map(|d| tokio::time::Instant::now() + d);
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        let mut next_refresh = start + REFRESH;
        let terminal = std::io::stderr().is_terminal();
        loop {
            tokio::select! {
                _ = sigint.recv() => return Ok(None),
                _ = sigterm.recv() => return Ok(None),
                _ = tokio::time::sleep_until(end.unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(3600))), if end.is_some() => return Ok(None),
                _ = tick.tick() => {}
            }
            if let Some(e) = capture.failed() {
                return Ok(Some(e));
            }
            if terminal && Instant::now() >= next_refresh {
                next_refresh += REFRESH;
                let secs = start.elapsed().as_secs_f64().max(1e-3);
                let (p, b) = (
                    progress.packets.load(Ordering::Relaxed),
                    progress.bytes.load(Ordering::Relaxed),
                );
                eprint!(
                    "\r\x1b[K{secs:.0} s: {p} packets, {:.1} MB ({:.0} pkt/s, {:.1} Mbit/s), {} dropped",
                    b as f64 / 1e6,
                    p as f64 / secs,
                    b as f64 * 8.0 / secs / 1e6,
                    capture.drops()
                );
            }
        }
    })
}
