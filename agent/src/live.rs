//! The live agent: attach, poll the maps, detect, print, detach on SIGINT/SIGTERM.

use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use tokio::{
    signal::unix::{SignalKind, signal},
    time::{Instant, MissedTickBehavior, interval_at, sleep_until},
};

use agent_common::state::Globals;

use crate::{
    admission::Admission,
    alerts::{Allowlist, EpisodeTiming, Episodes},
    cli::RunArgs,
    detect::{Detector, Thresholds},
    loader::{self, MapSizes},
    maps::KernelMaps,
    output::{Printer, SummaryLine},
    snapshot::Snapshot,
    system,
};

/// Validates option combinations that clap cannot express.
pub fn validate(args: &RunArgs) -> Result<()> {
    if args.poll_interval.is_zero() {
        bail!("--poll-interval must be greater than 0");
    }
    if args.window < args.poll_interval {
        bail!(
            "--window ({:?}) must be at least --poll-interval ({:?})",
            args.window,
            args.poll_interval
        );
    }
    Ok(())
}

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

/// Runs the live agent until a signal or `--duration`.
pub async fn run(args: RunArgs) -> Result<()> {
    validate(&args)?;
    system::check_capabilities()?;
    let ifaces = if args.ifaces.is_empty() {
        vec![system::default_route_iface()?]
    } else {
        args.ifaces.clone()
    };
    let mut locks = Vec::new();
    for iface in &ifaces {
        loader::check_iface(iface)?;
        locks.push(loader::lock_iface(iface)?);
    }
    let mut ebpf = loader::load(MapSizes {
        sources: args.src_map_entries,
        dests: args.dst_map_entries,
    })?;
    let mut maps = KernelMaps::take(&mut ebpf, true)?;
    for iface in &ifaces {
        for a in loader::attach(&mut ebpf, iface, args.hook, args.xdp_mode, !args.no_egress)? {
            eprintln!("picket: attached {} to {}", a.what, a.iface);
        }
    }

    let printer = Printer::new(args.output);
    let thresholds = args.thresholds.apply(Thresholds::default());
    let mut detector = Detector::new(thresholds, args.window.as_secs_f64());
    let mut episodes = Episodes::new(EpisodeTiming {
        update_every_s: args.update_interval.as_secs_f64(),
        end_after_s: args.end_after.as_secs_f64(),
    });
    let allow = Allowlist::new(args.allow.clone());
    let mut admission = Admission::new(args.src_map_entries, args.window.as_secs_f64());

    let mut sigint = signal(SignalKind::interrupt()).context("cannot install SIGINT handler")?;
    let mut sigterm = signal(SignalKind::terminate()).context("cannot install SIGTERM handler")?;
    let start = Instant::now();
    let deadline = args.duration.map(|d| start + d);
    let mut poll = interval_at(start + args.poll_interval, args.poll_interval);
    poll.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut next_window = start + args.window;
    let mut summary_base: Option<Snapshot> = None;
    let mut next_summary = start + args.summary_interval;
    eprintln!(
        "picket: watching {} (poll {:?}, window {:?}); Ctrl-C to stop",
        ifaces.join(", "),
        args.poll_interval,
        args.window
    );
    // Baseline for rates.
    let first = maps.read()?;
    detector.evaluate(&first);
    let mut prev_globals = (first.mono_ns, first.globals[0]);
    summary_base = summary_base.or(Some(first));

    loop {
        tokio::select! {
            _ = poll.tick() => {}
            _ = sigint.recv() => break,
            _ = sigterm.recv() => break,
            _ = sleep_until(deadline.unwrap_or(start + Duration::from_secs(u32::MAX as u64))), if deadline.is_some() => break,
        }
        let snap = maps.read()?;
        adjust_admission(&mut maps, &mut admission, prev_globals, &snap)?;
        prev_globals = (snap.mono_ns, snap.globals[0]);
        let findings = allow.filter(detector.evaluate(&snap));
        for e in episodes.step(snap.mono_ns, snap.wall_ns, findings) {
            printer.alert(&e)?;
        }
        let now = Instant::now();
        if !args.summary_interval.is_zero() && now >= next_summary {
            if let Some(base) = &summary_base {
                printer.summary(&SummaryLine::new(&snap, base))?;
            }
            next_summary = now + args.summary_interval;
            summary_base = Some(snap);
        }
        if now >= next_window {
            maps.next_epoch()?;
            next_window = now + args.window;
        }
    }
    for e in episodes.finish(crate::maps::wall_ns()) {
        printer.alert(&e)?;
    }
    eprintln!("picket: detaching");
    drop(ebpf);
    drop(locks);
    Ok(())
}
