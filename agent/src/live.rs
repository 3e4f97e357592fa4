//! The live agent: attach, poll the maps, detect, print, detach on SIGINT/SIGTERM.

use std::time::Duration;

use anyhow::{Context as _, Result};
use tokio::{
    signal::unix::{SignalKind, signal},
    time::{Instant, MissedTickBehavior, interval_at, sleep_until},
};

use picket_detect::{
    document::SummaryLine,
    episodes::{Allowlist, EpisodeTiming},
    pipeline::{AdmissionChange, Pipeline},
    snapshot::Snapshot,
};

use crate::{
    alertmanager, block,
    cli::RunArgs,
    config::{self, Settings},
    evidence::{CaptureConfig, Evidence},
    loader::{self, MapSizes},
    maps::{self, KernelMaps},
    metrics::Metrics,
    output::Printer,
    system,
};

/// How often the global counters are checked for a spoofed flood while admission control
/// is off (one per-CPU array read).
const ADMISSION_WATCH: Duration = Duration::from_millis(100);

/// Applies an admission-control change to the kernel and says so.
fn apply_admission(maps: &mut KernelMaps, change: Option<AdmissionChange>) -> Result<()> {
    let Some(c) = change else { return Ok(()) };
    maps.set_admit_on_second(c.on)?;
    if c.on {
        tracing::warn!(
            "{:.0} packets/s from unknown sources (budget {:.0}/s, spoofed flood?): \
             admitting new sources at their second packet",
            c.unknown_per_s,
            c.budget_per_s
        );
    } else {
        tracing::info!("unknown sources back to normal: admitting new sources at once");
    }
    Ok(())
}

/// Writes the evidence waiting in the ring buffer; a write error (e.g. a full disk) is
/// reported and does not stop detection.
fn drain(ev: &mut Evidence) {
    if let Err(e) = ev.drain() {
        tracing::warn!("evidence: {e:#}");
    }
}

/// Runs the live agent until a signal or `--duration`.
pub async fn run(args: RunArgs) -> Result<()> {
    let mut s = Settings::load(args.config.as_deref(), &args.settings.flags)?;
    system::check_capabilities()?;
    // Read before anything is attached: a bad file stops the agent with one line.
    let web = s
        .metrics
        .web_config
        .as_deref()
        .map(crate::webconfig::WebConfig::load)
        .transpose()?;
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
    if web.is_some() && s.metrics.addr.is_none() {
        anyhow::bail!("--web-config needs --metrics-addr");
    }
    if let Some(addr) = s.metrics.addr {
        let scheme = if web.as_ref().is_some_and(|w| w.tls.is_some()) {
            "https"
        } else {
            "http"
        };
        let bound = metrics.serve(addr, web).await?;
        tracing::info!("metrics on {scheme}://{bound}/metrics (/healthz, /readyz)");
    }
    let mut notifier = alertmanager::start(&s, &metrics)?;
    let mut ebpf = loader::load(MapSizes {
        sources: s.src_map_entries,
        src_slots: s.src_slots,
        dst_slots: s.dst_slots,
        conv_slots: s.conv_slots,
        blocked: s.block.max_sources,
    })?;
    let mut maps = KernelMaps::take(&mut ebpf)?;
    let mut blocker = block::start(&s, &mut ebpf, &metrics)?;
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
            tracing::info!("attached {} to {}", a.what, a.iface);
            attached += 1;
        }
    }
    metrics.attached(attached);

    let printer = Printer::new(s.output);
    let mut pipeline = Pipeline::new(
        s.thresholds.clone(),
        s.window,
        EpisodeTiming {
            update_every_s: s.update_interval.as_secs_f64(),
            end_after_s: s.end_after.as_secs_f64(),
        },
        s.allow.clone(),
        s.src_map_entries,
    );

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
    tracing::info!(
        "watching {} (poll {:?}, window {:?}); Ctrl-C to stop",
        ifaces.join(", "),
        s.poll_interval,
        s.window
    );
    // Baseline for rates.
    let first = maps.read()?;
    pipeline.baseline(&first);
    // While admission control is off, the global counters are also checked every
    // ADMISSION_WATCH so that a spoofed flood is met within a tenth of a second rather than
    // after a whole poll interval of map churn (turning it off stays at the poll pace).
    let watch_every = s.poll_interval.min(ADMISSION_WATCH);
    let mut admission_watch = interval_at(start + watch_every, watch_every);
    admission_watch.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut watch_since = (first.mono_ns, first.globals[0]);
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
            _ = admission_watch.tick(), if !pipeline.admission_on() => {
                let quick = maps.read_globals()?;
                let change = pipeline.watch_admission(&mut watch_since, &quick);
                apply_admission(&mut maps, change)?;
                continue;
            }
            _ = sigint.recv() => break,
            _ = sigterm.recv() => break,
            _ = sighup.recv() => {
                if let Some(new) = config::reload(args.config.as_deref(), &args.settings.flags, &s) {
                    pipeline.detector.thresholds = new.thresholds.clone();
                    pipeline.allow = Allowlist::new(new.allow.clone());
                    if let Some(b) = blocker.as_mut() {
                        let fields = b.fields(&s);
                        for c in &b.reload(&mut maps, &new)? {
                            printer.block(c, fields.clone())?;
                        }
                    }
                    (s.thresholds, s.allow) = (new.thresholds, new.allow);
                }
                continue;
            }
            _ = sleep_until(deadline.unwrap_or(start + Duration::from_secs(u64::from(u32::MAX)))), if deadline.is_some() => break,
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
        let quick = maps.read_poll()?;
        let snap = if summary_due || pipeline.needs_maps(&quick.globals, quick.mono_ns) {
            maps.read_with(quick)?
        } else {
            quick
        };
        let step = pipeline.step(&snap);
        apply_admission(&mut maps, step.admission)?;
        let events = step.events;
        for e in &events {
            printer.alert(e)?;
        }
        if let Some(n) = notifier.as_mut() {
            n.observe(&events, snap.wall_ns);
        }
        if let Some(b) = blocker.as_mut() {
            let fields = b.fields(&s);
            for c in b.step(&mut maps, &events, snap.wall_ns)? {
                printer.block(&c, fields.clone())?;
            }
        }
        if let Some(ev) = evidence.as_mut() {
            drain(ev);
            ev.sync(&mut maps, &pipeline.episodes)?;
        }
        let took = polled.elapsed();
        metrics.observe(
            &snap,
            &events,
            &pipeline.episodes,
            pipeline.admission_on(),
            took,
        );
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
    let ended = pipeline.finish(maps::wall_ns());
    for e in &ended {
        printer.alert(e)?;
    }
    if let Some(mut n) = notifier {
        n.observe(&ended, maps::wall_ns());
        n.finish(s.alertmanager.timeout);
    }
    if let Some(ev) = evidence.as_mut() {
        match ev.finish(&mut maps) {
            Ok(line) => tracing::info!("{line}"),
            Err(e) => tracing::warn!("evidence: {e:#}"),
        }
    }
    tracing::info!("detaching");
    drop(ebpf);
    drop(locks);
    failure.map_or(Ok(()), Err)
}
