//! The live agent: attach, poll the maps, detect, print, detach on SIGINT/SIGTERM.

use std::time::Duration;

use anyhow::{Context as _, Result};
use tokio::{
    signal::unix::{SignalKind, signal},
    time::{Instant, MissedTickBehavior, interval_at, sleep_until},
};

use picket_detect::{
    document::SummaryLine,
    episodes::EpisodeTiming,
    pipeline::{AdmissionChange, Pipeline},
    snapshot::Snapshot,
};

use crate::{
    afpacket, alertmanager, block,
    cli::RunArgs,
    config::{self, Settings},
    evidence::{CaptureConfig, Evidence},
    loader::{self, Hook, MapSizes},
    maps::{self, KernelMaps},
    metrics::Metrics,
    output::Printer,
    ring_state::RingState,
    system,
};

/// How often the global counters are checked for a spoofed flood while admission control
/// is off (one per-CPU array read).
const ADMISSION_WATCH: Duration = Duration::from_millis(100);

/// Where the state the detectors read comes from: the maps of the attached BPF programs,
/// or [`HostMaps`](picket_detect::model::HostMaps) fed by AF_PACKET rings.
enum Source {
    Kernel {
        maps: Box<KernelMaps>,
        /// Holds the programs attached (dropping it detaches them).
        _ebpf: Box<aya::Ebpf>,
    },
    Ring(Box<RingState>),
}

impl Source {
    fn read_globals(&self) -> Result<Snapshot> {
        match self {
            Source::Kernel { maps, .. } => maps.read_globals(),
            Source::Ring(r) => Ok(r.read_globals()),
        }
    }

    fn read(&mut self) -> Result<Snapshot> {
        let snap = self.read_poll()?;
        self.read_with(snap)
    }

    /// A poll's reading: the global counters and the tick that has just ended.
    fn read_poll(&mut self) -> Result<Snapshot> {
        match self {
            Source::Kernel { maps, .. } => maps.read_poll(),
            Source::Ring(r) => Ok(r.read_poll()),
        }
    }

    /// Adds the per-source map to a poll's reading.
    fn read_with(&mut self, snap: Snapshot) -> Result<Snapshot> {
        match self {
            Source::Kernel { maps, .. } => maps.read_with(snap),
            Source::Ring(r) => Ok(r.read_with(snap)),
        }
    }

    fn set_admit_on_second(&mut self, on: bool) -> Result<()> {
        match self {
            Source::Kernel { maps, .. } => maps.set_admit_on_second(on),
            Source::Ring(r) => {
                r.set_admit_on_second(on);
                Ok(())
            }
        }
    }

    /// Kernel drops of the rings so far (none for the BPF programs, which see every packet).
    fn capture_drops(&self) -> Option<u64> {
        match self {
            Source::Kernel { .. } => None,
            Source::Ring(r) => Some(r.drops()),
        }
    }

    fn kernel_maps(&mut self) -> Option<&mut KernelMaps> {
        match self {
            Source::Kernel { maps, .. } => Some(maps),
            Source::Ring(_) => None,
        }
    }
}

/// Evidence capture settings, when `capture_dir` is set.
fn capture_config(s: &Settings) -> Option<CaptureConfig> {
    s.capture_dir.as_ref().map(|dir| CaptureConfig {
        dir: dir.clone(),
        bytes_per_alert: s.capture_bytes_per_alert,
        max_bytes: s.capture_max_bytes,
        file_bytes: s.capture_file_bytes,
    })
}

/// Loads the BPF object and attaches `hook` (and the egress program) to every interface,
/// with evidence capture when asked for.
fn open_kernel(s: &Settings, ifaces: &[String], hook: Hook, metrics: &Metrics) -> Result<Opened> {
    system::check_capabilities()?;
    let mut ebpf = loader::load(MapSizes {
        sources: s.src_map_entries,
        src_slots: s.src_slots,
        dst_slots: s.dst_slots,
        conv_slots: s.conv_slots,
        blocked: s.block.max_sources,
    })?;
    let maps = KernelMaps::take(&mut ebpf)?;
    // With --block, `auto` attaches XDP everywhere (see `hook_choice::choose`).
    let block_hook = if hook == Hook::Auto { Hook::Xdp } else { hook };
    let blocker = block::start(s, block_hook, &mut ebpf, metrics)?;
    let blocking = s.block.enabled || s.block.dry_run;
    let evidence = match capture_config(s) {
        Some(cfg) => Some(Evidence::new(&mut ebpf, cfg)?),
        None => None,
    };
    let mut attached = 0;
    for iface in ifaces {
        let (choice, attachments) =
            loader::attach(&mut ebpf, iface, hook, s.xdp_mode, s.egress, blocking)?;
        tracing::info!(
            "hook {} on {iface}{}: {}",
            loader::hook_name(choice.hook),
            if choice.l3 {
                " (programs for IP packets)"
            } else {
                ""
            },
            choice.reason
        );
        for a in attachments {
            tracing::info!("attached {} to {}", a.what, a.iface);
            attached += 1;
        }
    }
    metrics.attached(attached);
    Ok((
        Source::Kernel {
            maps: Box::new(maps),
            _ebpf: Box::new(ebpf),
        },
        evidence,
        blocker,
    ))
}

/// A state source, with the kernel's evidence capture and blocker when it has them.
type Opened = (Source, Option<Evidence>, Option<block::Blocker>);

/// Opens the AF_PACKET rings on every interface.
fn open_rings(s: &Settings, ifaces: &[String], metrics: &Metrics) -> Result<Source> {
    system::check_net_raw()?;
    let ring = RingState::start(
        ifaces,
        s.afpacket_ring_bytes,
        afpacket::default_rings(),
        s.egress,
        s.src_map_entries,
        capture_config(s),
    )?;
    tracing::info!(
        "capturing with AF_PACKET on {}: {} TPACKET_V3 rings of {} MiB",
        ifaces.join(", "),
        ring.rings(),
        s.afpacket_ring_bytes >> 20
    );
    metrics.capture_rings(ring.rings());
    Ok(Source::Ring(Box::new(ring)))
}

/// The state source `s.hook` asks for; `auto` falls back to AF_PACKET, with one line saying
/// why, when the BPF programs cannot be loaded or attached.
fn open_source(s: &Settings, ifaces: &[String], metrics: &Metrics) -> Result<Opened> {
    match s.hook {
        Hook::Afpacket => Ok((open_rings(s, ifaces, metrics)?, None, None)),
        Hook::Xdp | Hook::Tc => open_kernel(s, ifaces, s.hook, metrics),
        Hook::Auto => match open_kernel(s, ifaces, Hook::Auto, metrics) {
            Ok(k) => Ok(k),
            Err(e) => {
                if s.block.enabled || s.block.dry_run {
                    // Blocking is XDP's: without it, say so rather than watch unprotected.
                    return Err(e.context("--block needs the XDP hook"));
                }
                tracing::warn!(
                    "BPF unavailable ({e:#}): capturing with AF_PACKET instead (--hook afpacket)"
                );
                Ok((open_rings(s, ifaces, metrics)?, None, None))
            }
        },
    }
}

/// Fails at once, with one line, when the process lacks the capabilities of `hook` (for
/// `auto`: those of XDP and those of AF_PACKET both), before anything is locked or opened.
fn check_privileges(hook: Hook) -> Result<()> {
    match hook {
        Hook::Afpacket => system::check_net_raw(),
        Hook::Xdp | Hook::Tc => system::check_capabilities(),
        Hook::Auto => match system::check_capabilities() {
            Err(e) if system::check_net_raw().is_err() => {
                // The BPF capabilities first, as with --hook xdp.
                anyhow::bail!("{e}; CAP_NET_RAW for --hook afpacket is missing too")
            }
            _ => Ok(()),
        },
    }
}

/// Applies an admission-control change to the state source and says so.
fn apply_admission(maps: &mut Source, change: Option<AdmissionChange>) -> Result<()> {
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
    check_privileges(s.hook)?;
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
    let (mut maps, mut evidence, mut blocker) = open_source(&s, &ifaces, &metrics)?;

    let printer = Printer::new(s.output);
    let mut pipeline = Pipeline::new(
        s.thresholds.clone(),
        s.window,
        EpisodeTiming {
            update_every_s: s.update_interval.as_secs_f64(),
            end_after_s: s.end_after.as_secs_f64(),
        },
        s.allowlists(),
        s.src_map_entries,
    );

    let mut sigint = signal(SignalKind::interrupt()).context("cannot install SIGINT handler")?;
    let mut sigterm = signal(SignalKind::terminate()).context("cannot install SIGTERM handler")?;
    let mut sighup = signal(SignalKind::hangup()).context("cannot install SIGHUP handler")?;
    let start = Instant::now();
    let deadline = args.duration.map(|d| start + d);
    let mut poll = interval_at(start + s.poll_interval, s.poll_interval);
    poll.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut summary_base: Option<Snapshot> = None;
    let mut next_summary = start + s.summary_interval;
    let mut drops_base = 0;
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
                    pipeline.allow = new.allowlists();
                    if let (Some(b), Some(km)) = (blocker.as_mut(), maps.kernel_maps()) {
                        let fields = b.fields(&s);
                        for c in &b.reload(km, &new)? {
                            printer.block(c, fields.clone())?;
                        }
                    }
                    (s.thresholds, s.allow) = (new.thresholds, new.allow);
                    (s.ignore_scanners, s.ignore_scanned) =
                        (new.ignore_scanners, new.ignore_scanned);
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
        if let Source::Ring(r) = &mut maps
            && let Some(e) = r.failed()
        {
            failure = Some(e);
            break;
        }
        let polled = std::time::Instant::now();
        // The per-source map is read only when a finding may have changed, or for a summary.
        let summary_due = !s.summary_interval.is_zero() && Instant::now() >= next_summary;
        let quick = maps.read_poll()?;
        let mut snap = if summary_due || pipeline.needs_maps(&quick.globals, quick.mono_ns) {
            maps.read_with(quick)?
        } else {
            quick
        };
        let step = pipeline.step(&mut snap);
        apply_admission(&mut maps, step.admission)?;
        let events = step.events;
        for e in &events {
            printer.alert(e)?;
        }
        if let Some(n) = notifier.as_mut() {
            n.observe(&events, snap.wall_ns);
        }
        if let (Some(b), Some(km)) = (blocker.as_mut(), maps.kernel_maps()) {
            let fields = b.fields(&s);
            for c in b.step(km, &events, snap.wall_ns)? {
                printer.block(&c, fields.clone())?;
            }
        }
        if let (Some(ev), Some(km)) = (evidence.as_mut(), maps.kernel_maps()) {
            drain(ev);
            ev.sync(km, &pipeline.episodes)?;
        }
        if let Source::Ring(r) = &mut maps
            && let Err(e) = r.sync_evidence(&pipeline.episodes)
        {
            tracing::warn!("evidence: {e:#}");
        }
        let drops = maps.capture_drops();
        if let Some(d) = drops {
            metrics.capture_drops(d);
        }
        let took = polled.elapsed();
        metrics.observe(
            &snap,
            &events,
            &pipeline.episodes,
            pipeline.admission_on(),
            took,
        );
        metrics.suppressed(pipeline.suppressed());
        let now = Instant::now();
        if !s.summary_interval.is_zero() && now >= next_summary {
            if let Some(base) = &summary_base {
                let mut line = SummaryLine::new(&snap, base);
                line.capture_drops = drops.map(|d| d.saturating_sub(drops_base));
                printer.summary(&line)?;
            }
            next_summary = now + s.summary_interval;
            summary_base = Some(snap);
            drops_base = drops.unwrap_or(0);
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
    if let (Some(ev), Some(km)) = (evidence.as_mut(), maps.kernel_maps()) {
        match ev.finish(km) {
            Ok(line) => tracing::info!("{line}"),
            Err(e) => tracing::warn!("evidence: {e:#}"),
        }
    }
    match &mut maps {
        Source::Kernel { .. } => tracing::info!("detaching"),
        Source::Ring(r) => {
            r.stop();
            match r.finish_evidence() {
                Some(Ok(line)) => tracing::info!("{line}"),
                Some(Err(e)) => tracing::warn!("evidence: {e:#}"),
                None => {}
            }
            tracing::info!(
                "closing the AF_PACKET rings ({} packets dropped by the kernel)",
                r.drops()
            );
        }
    }
    drop(maps);
    drop(locks);
    failure.map_or(Ok(()), Err)
}
