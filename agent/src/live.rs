//! The live agent: attach, poll the maps, detect, print, detach on SIGINT/SIGTERM.

use std::time::Duration;

use anyhow::{Context as _, Result};
use tokio::{
    signal::unix::{SignalKind, signal},
    time::{Instant, MissedTickBehavior, interval_at, sleep_until},
};

use agent_common::state::Globals;

use crate::{
    admission::Admission,
    alerts::{Allowlist, EpisodeTiming, Episodes},
    cli::RunArgs,
    config::{self, Settings},
    detect::Detector,
    evidence::{CaptureConfig, Evidence},
    loader::{self, MapSizes},
    maps::KernelMaps,
    metrics::Metrics,
    output::{Printer, SummaryLine},
    snapshot::Snapshot,
    system,
};

/// How often the global counters are checked for a spoofed flood while admission control
/// is off (one per-CPU array read).
const ADMISSION_WATCH: Duration = Duration::from_millis(100);

/// Turns admission at second sighting on or off from the rate of packets from unknown
/// sources.
fn adjust_admission(
    maps: &mut KernelMaps,
    admission: &mut Admission,
    (prev_ns, prev): (u64, Globals),
    snap: &Snapshot,
) -> Result<()> {
    let dt = snap.mono_ns.saturating_sub(prev_ns) as f64 / 1e9;
    if dt <= 0.0 {
        return Ok(());
    }
    let g = &snap.globals[0];
    let unknown =
        (g.src_inserts + g.src_deferred).saturating_sub(prev.src_inserts + prev.src_deferred);
    let rate = unknown as f64 / dt;
    let was = admission.is_on();
    let on = admission.update(rate);
    if on != was {
        maps.set_admit_on_second(on)?;
        if on {
            eprintln!(
                "picket: {rate:.0} packets/s from unknown sources (budget {:.0}/s, spoofed flood?): \
                 admitting new sources at their second packet",
                admission.budget()
            );
        } else {
            eprintln!("picket: unknown sources back to normal: admitting new sources at once");
        }
    }
    Ok(())
}

/// Writes the evidence waiting in the ring buffer; a write error (e.g. a full disk) is
/// reported and does not stop detection.
fn drain(ev: &mut Evidence) {
    if let Err(e) = ev.drain() {
        eprintln!("picket: evidence: {e:#}");
    }
}

/// Runs the live agent until a signal or `--duration`.
pub async fn run(args: RunArgs) -> Result<()> {
    let mut s = Settings::load(&args)?;
    system::check_capabilities()?;
    let ifaces = if s.interfaces.is_empty() {
        vec![system::default_route_iface()?]
    } else {
        s.interfaces.clone()
    };
    let mut locks = Vec::new();
    let mut watched = Vec::new();
    for iface in &ifaces {
        watched.push((iface.clone(), loader::check_iface(iface)?));
        locks.push(loader::lock_iface(iface)?);
    }
    let mut metrics = Metrics::new(s.metrics.top_k, s.poll_interval);
    if let Some(addr) = s.metrics.addr {
        let bound = metrics.serve(addr).await?;
        eprintln!("picket: metrics on http://{bound}/metrics (/healthz, /readyz)");
    }
    let mut ebpf = loader::load(MapSizes {
        sources: s.src_map_entries,
        dests: s.dst_map_entries,
    })?;
    let mut maps = KernelMaps::take(&mut ebpf, true)?;
    let mut evidence = match &s.capture_dir {
        Some(dir) => Some(Evidence::new(
            &mut ebpf,
            CaptureConfig {
                dir: dir.clone(),
                bytes_per_alert: s.capture_bytes_per_alert,
                max_bytes: s.capture_max_bytes,
                file_bytes: s.capture_file_bytes,
            },
        )?),
        None => None,
    };
    let mut attached = 0;
    for iface in &ifaces {
        for a in loader::attach(&mut ebpf, iface, s.hook, s.xdp_mode, s.egress)? {
            eprintln!("picket: attached {} to {}", a.what, a.iface);
            attached += 1;
        }
    }
    metrics.attached(attached);

    let printer = Printer::new(s.output);
    let mut detector = Detector::new(s.thresholds.clone(), s.window.as_secs_f64());
    let mut episodes = Episodes::new(EpisodeTiming {
        update_every_s: s.update_interval.as_secs_f64(),
        end_after_s: s.end_after.as_secs_f64(),
    });
    let mut allow = Allowlist::new(s.allow.clone());
    let mut admission = Admission::new(s.src_map_entries, s.window.as_secs_f64());

    let mut sigint = signal(SignalKind::interrupt()).context("cannot install SIGINT handler")?;
    let mut sigterm = signal(SignalKind::terminate()).context("cannot install SIGTERM handler")?;
    let mut sighup = signal(SignalKind::hangup()).context("cannot install SIGHUP handler")?;
    let start = Instant::now();
    let deadline = args.duration.map(|d| start + d);
    let mut poll = interval_at(start + s.poll_interval, s.poll_interval);
    poll.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut next_window = start + s.window;
    let mut summary_base: Option<Snapshot> = None;
    let mut next_summary = start + s.summary_interval;
    eprintln!(
        "picket: watching {} (poll {:?}, window {:?}); Ctrl-C to stop",
        ifaces.join(", "),
        s.poll_interval,
        s.window
    );
    // Baseline for rates.
    let first = maps.read()?;
    detector.evaluate(&first);
    let mut prev_globals = (first.mono_ns, first.globals[0]);
    // While admission control is off, the global counters are also checked every
    // ADMISSION_WATCH so that a spoofed flood is met within a tenth of a second rather than
    // after a whole poll interval of map churn (turning it off stays at the poll pace).
    let watch_every = s.poll_interval.min(ADMISSION_WATCH);
    let mut admission_watch = interval_at(start + watch_every, watch_every);
    admission_watch.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut watch_prev = prev_globals;
    summary_base = summary_base.or(Some(first));

    let mut failure = None;
    loop {
        tokio::select! {
            _ = poll.tick() => {}
            _ = async {
                match evidence.as_mut() {
                    Some(e) => e.readable().await,
                    None => std::future::pending().await,
                }
            } => {
                if let Some(e) = evidence.as_mut() {
                    drain(e);
                }
                continue;
            }
            _ = admission_watch.tick(), if !admission.is_on() => {
                let quick = maps.read_globals()?;
                adjust_admission(&mut maps, &mut admission, watch_prev, &quick)?;
                watch_prev = (quick.mono_ns, quick.globals[0]);
                continue;
            }
            _ = sigint.recv() => break,
            _ = sigterm.recv() => break,
            _ = sighup.recv() => {
                if let Some(new) = config::reload(&args, &s) {
                    detector.thresholds = new.thresholds.clone();
                    allow = Allowlist::new(new.allow.clone());
                    (s.thresholds, s.allow) = (new.thresholds, new.allow);
                }
                continue;
            }
            _ = sleep_until(deadline.unwrap_or(start + Duration::from_secs(u32::MAX as u64))), if deadline.is_some() => break,
        }
        // Interfaces may go down and up (programs stay attached); one that is deleted takes
        // its programs with it: end the episodes, detach the rest and exit non-zero.
        if let Err(e) = loader::check_still_there(&watched) {
            failure = Some(e);
            break;
        }
        let polled = std::time::Instant::now();
        // The per-source map is read only when a finding may have changed, or for a summary.
        let summary_due = !s.summary_interval.is_zero() && Instant::now() >= next_summary;
        let quick = maps.read_globals()?;
        let snap = if summary_due || detector.needs_maps(&quick.globals, quick.mono_ns) {
            maps.read()?
        } else {
            quick
        };
        adjust_admission(&mut maps, &mut admission, prev_globals, &snap)?;
        prev_globals = (snap.mono_ns, snap.globals[0]);
        let findings = allow.filter(detector.evaluate(&snap));
        let events = episodes.step(snap.mono_ns, snap.wall_ns, findings);
        for e in &events {
            printer.alert(e)?;
        }
        if let Some(ev) = evidence.as_mut() {
            drain(ev);
            ev.sync(&mut maps, &episodes)?;
        }
        let took = polled.elapsed();
        metrics.observe(&snap, &events, &episodes, admission.is_on(), took);
        let now = Instant::now();
        if !s.summary_interval.is_zero() && now >= next_summary {
            if let Some(base) = &summary_base {
                printer.summary(&SummaryLine::new(&snap, base))?;
            }
            next_summary = now + s.summary_interval;
            summary_base = Some(snap);
        }
        if now >= next_window {
            maps.next_epoch()?;
            next_window = now + s.window;
        }
    }
    metrics.stopping();
    for e in episodes.finish(crate::maps::wall_ns()) {
        printer.alert(&e)?;
    }
    if let Some(ev) = evidence.as_mut() {
        match ev.finish(&mut maps) {
            Ok(line) => eprintln!("picket: {line}"),
            Err(e) => eprintln!("picket: evidence: {e:#}"),
        }
    }
    eprintln!("picket: detaching");
    drop(ebpf);
    drop(locks);
    failure.map_or(Ok(()), Err)
}
