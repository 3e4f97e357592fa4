//! `picket bench`: per-packet cost of the XDP program with `BPF_PROG_TEST_RUN`, always next
//! to a trivial XDP_PASS program measured in the same run, and the cost of reading a full
//! per-source map.

use std::{net::Ipv4Addr, time::Instant};

use agent_common::classify::{IPPROTO_TCP, TCP_ACK, TCP_SYN};
use anyhow::{Context as _, Result, bail};
use aya::programs::{TestRun, TestRunOptions, Xdp};

use picket_detect::detector::{Detector, Thresholds};
use picket_frames as frames;

use crate::{
    cli::BenchArgs,
    loader::{self, MapSizes, PROG_XDP},
    maps::KernelMaps,
};

const PROG_PASS: &str = "picket_pass";

/// Targets from the foundation issue, ns per packet above the baseline.
const TARGET_HOT_NS: f64 = 30.0;
const TARGET_MANY_NS: f64 = 60.0;

struct Case {
    name: &'static str,
    frame: Vec<u8>,
    target: Option<f64>,
    track_dests: bool,
}

/// Runs the benchmark and prints a table.
pub fn run(args: &BenchArgs) -> Result<()> {
    crate::system::check_capabilities()?;
    if let Some(iface) = &args.hold_baseline {
        return hold_baseline(iface);
    }
    // Its diagnostics read `picket bench: …` (an error-level span, so that it is enabled
    // whenever anything is shown).
    let _bench = tracing::error_span!("bench").entered();
    if std::fs::read_to_string("/proc/sys/kernel/bpf_stats_enabled").is_ok_and(|s| s.trim() == "1")
    {
        tracing::warn!("kernel.bpf_stats_enabled=1 adds ~20-70 ns per run");
    }
    let sizes = MapSizes {
        sources: args.sources.max(1024),
        dests: 1024,
    };
    tracing::info!("loading with a {}-entry per-source map", sizes.sources);
    let mut ebpf = loader::load(sizes)?;
    {
        let pass: &mut Xdp = ebpf
            .program_mut(PROG_PASS)
            .context("baseline program missing")?
            .try_into()?;
        pass.load()?;
    }
    let mut maps = KernelMaps::take(&mut ebpf, true)?;
    let src = Ipv4Addr::new(198, 51, 100, 7);
    let dst = Ipv4Addr::new(192, 0, 2, 1);
    let cases = [
        Case {
            name: "IPv4 TCP SYN, one hot source",
            frame: frames::ipv4(src, dst, IPPROTO_TCP, 0, &frames::tcp(40000, 80, TCP_SYN)),
            target: Some(TARGET_HOT_NS),
            track_dests: true,
        },
        Case {
            name: "  same, destination tracking off",
            frame: frames::ipv4(src, dst, IPPROTO_TCP, 0, &frames::tcp(40000, 80, TCP_SYN)),
            target: None,
            track_dests: false,
        },
        Case {
            name: "IPv4 TCP ACK (established), hot",
            frame: frames::ipv4(src, dst, IPPROTO_TCP, 0, &frames::tcp(40000, 80, TCP_ACK)),
            target: None,
            track_dests: true,
        },
        Case {
            name: "IPv6 HBH+DstOpt+Frag TCP SYN, hot",
            frame: frames::ipv6_ext_syn("2001:db8::7".parse()?, "2001:db8::1".parse()?),
            target: None,
            track_dests: true,
        },
    ];
    println!(
        "BPF_PROG_TEST_RUN, kernel-reported ns per run; baseline = XDP_PASS program in the same run\n\
         {} rounds x {} repeats, p50 [p10] over rounds\n",
        args.rounds, args.repeat
    );
    println!(
        "{:<38} {:>14} {:>14} {:>14} {:>8}",
        "case", "baseline", "picket", "delta", "target"
    );
    for case in &cases {
        maps.set_track_dests(case.track_dests)?;
        let mut base = Vec::new();
        let mut prog = Vec::new();
        for _ in 0..args.rounds {
            base.push(time(&mut ebpf, PROG_PASS, &case.frame, args.repeat)?);
            prog.push(time(&mut ebpf, PROG_XDP, &case.frame, args.repeat)?);
        }
        let delta: Vec<f64> = prog.iter().zip(&base).map(|(p, b)| p - b).collect();
        print_row(case.name, &base, &prog, &delta, case.target);
    }

    // Many sources: one run per packet, a new source address each time.
    let n = args.sources;
    tracing::info!("{n} distinct sources, one BPF_PROG_TEST_RUN each (x2 with baseline)");
    let (b, p) = distinct_sources(&mut ebpf, &cases[0].frame, 0x0a00_0000, n)?;
    print_many_row(&format!("IPv4 SYN, {n} distinct sources (new)"), b, p);
    // The same with the map full and admission on second sighting on, as under a spoofed
    // flood once the agent has seen it: each source is looked up, missed and deferred.
    let m = (n / 4).max(1);
    maps.set_admit_on_second(true)?;
    let (b, p) = distinct_sources(&mut ebpf, &cases[0].frame, 0x0b00_0000, m)?;
    maps.set_admit_on_second(false)?;
    print_many_row(&format!("  {m} more, admission on (deferred)"), b, p);

    // Reading the full map, as the agent does every poll.
    let t = Instant::now();
    let snap = maps.read()?;
    let read = t.elapsed();
    let t = Instant::now();
    let mut det = Detector::new(Thresholds::default(), 10.0);
    det.evaluate(&snap);
    let eval = t.elapsed();
    let g = &snap.globals[0];
    println!(
        "\nper-source map: {} entries of {} (LRU evictions ≈ {}), failed inserts {}",
        snap.sources.len(),
        snap.src_capacity,
        g.src_inserts.saturating_sub(snap.sources.len() as u64),
        g.src_failures
    );
    println!(
        "agent poll of the full map: read {:.1} ms ({:.0} ns/entry, BPF_MAP_LOOKUP_BATCH), detectors {:.1} ms",
        read.as_secs_f64() * 1e3,
        read.as_nanos() as f64 / snap.sources.len().max(1) as f64,
        eval.as_secs_f64() * 1e3
    );
    let elem = 48 + 16 + std::mem::size_of::<agent_common::state::SrcState>();
    println!(
        "per-source map memory: {} B/entry (kernel htab element), {:.0} MiB at capacity",
        elem,
        (elem as f64 * f64::from(snap.src_capacity)
            + 16.0 * f64::from(snap.src_capacity.next_power_of_two()))
            / f64::from(1 << 20)
    );
    maps.next_epoch()?;
    Ok(())
}

/// Mean kernel-reported ns per run of the baseline and of picket over `n` runs of `frame`,
/// each from a new IPv4 source counting up from `first` (test data only: never sent).
fn distinct_sources(ebpf: &mut aya::Ebpf, frame: &[u8], first: u32, n: u32) -> Result<(f64, f64)> {
    let mut frame = frame.to_vec();
    let (mut base_sum, mut prog_sum) = (0f64, 0f64);
    for i in 0..n {
        frame[26..30].copy_from_slice(&first.wrapping_add(i).to_be_bytes());
        base_sum += time(ebpf, PROG_PASS, &frame, 1)?;
        prog_sum += time(ebpf, PROG_XDP, &frame, 1)?;
    }
    Ok((base_sum / f64::from(n), prog_sum / f64::from(n)))
}

/// One row of the many-sources cases, against the foundation issue's target.
fn print_many_row(name: &str, b: f64, p: f64) {
    println!(
        "{name:<38} {b:>14.1} {p:>14.1} {:>14.1} {:>8}",
        p - b,
        format!(
            "{TARGET_MANY_NS}{}",
            if p - b <= TARGET_MANY_NS {
                " met"
            } else {
                " MISSED"
            }
        )
    );
}

/// Attaches the XDP_PASS baseline (driver mode, else skb) and waits for a signal.
fn hold_baseline(iface: &str) -> Result<()> {
    loader::check_iface(iface)?;
    let mut ebpf = aya::Ebpf::load(loader::BPF_OBJECT)?;
    let prog: &mut Xdp = ebpf
        .program_mut(PROG_PASS)
        .context("baseline program missing")?
        .try_into()?;
    prog.load()?;
    if prog.attach(iface, aya::programs::XdpMode::Driver).is_err() {
        prog.attach(iface, aya::programs::XdpMode::Skb)
            .with_context(|| format!("cannot attach the baseline to {iface}"))?;
    }
    tracing::info!("watching {iface} with the XDP_PASS baseline only; Ctrl-C to stop");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r,
            _ = term.recv() => Ok(()),
        }
    })?;
    Ok(())
}

fn time(ebpf: &mut aya::Ebpf, name: &str, frame: &[u8], repeat: u32) -> Result<f64> {
    let prog: &mut Xdp = ebpf
        .program_mut(name)
        .context("program missing")?
        .try_into()?;
    let r = prog.test_run(TestRunOptions {
        data_in: Some(frame),
        repeat,
        ..Default::default()
    })?;
    if r.return_value != 2 {
        bail!("{name} returned {} instead of XDP_PASS", r.return_value);
    }
    Ok(r.duration.as_nanos() as f64)
}

fn pct(v: &[f64], p: f64) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s[((s.len() - 1) as f64 * p).round() as usize]
}

fn print_row(name: &str, base: &[f64], prog: &[f64], delta: &[f64], target: Option<f64>) {
    let cell = |v: &[f64]| format!("{:.0} [{:.0}]", pct(v, 0.5), pct(v, 0.1));
    let tgt = match target {
        Some(t) => format!(
            "{t}{}",
            if pct(delta, 0.5) <= t {
                " met"
            } else {
                " MISSED"
            }
        ),
        None => "-".into(),
    };
    println!(
        "{name:<38} {:>14} {:>14} {:>14} {:>8}",
        cell(base),
        cell(prog),
        cell(delta),
        tgt
    );
}
