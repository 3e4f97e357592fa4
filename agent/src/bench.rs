//! `picket bench`: per-packet cost of the XDP program with `BPF_PROG_TEST_RUN`, always next
//! to a trivial XDP_PASS program measured in the same run (and in CPU cycles where the
//! machine has a hardware PMU), its scaling on two CPUs, and the cost of reading a full
//! per-source table.

use std::{net::Ipv4Addr, sync::Barrier, time::Instant};

use agent_common::classify::{IPPROTO_TCP, IPPROTO_UDP, TCP_ACK, TCP_SYN};
use anyhow::{Context as _, Result, bail};
use aya::programs::{TestRun, TestRunOptions, Xdp};
use perf_event::{Builder, Counter, events::Hardware};

use picket_detect::detector::{Detector, Thresholds};
use picket_frames as frames;

use crate::{
    cli::BenchArgs,
    loader::{self, MapSizes, PROG_XDP},
    maps::KernelMaps,
};

const PROG_PASS: &str = "picket_pass";

/// Bench-only copies of `picket_xdp` that stop after each stage, in order, with what each
/// adds to the one before it (the kernel's `STOP_*` constants).
const STAGES: [(&str, &str); 5] = [
    ("picket_stage_entry", "config and per-CPU values"),
    ("picket_stage_parse", "classifier and global counters"),
    ("picket_stage_slots", "first stage (SRC, DST slots)"),
    ("picket_stage_answer", "answer lookup (CONV)"),
    ("picket_stage_opening", "opening record (CONV)"),
];

/// Targets of the line-rate issue, ns per packet above the baseline.
const TARGET_HOT_NS: f64 = 30.0;
const TARGET_MANY_NS: f64 = 60.0;
/// Kernel memory per tracked source.
const TARGET_ENTRY_BYTES: f64 = 256.0;
/// A full read of this many tracked sources must take at most `TARGET_READ_MS`.
const TARGET_READ_SOURCES: usize = 1_000_000;
const TARGET_READ_MS: f64 = 250.0;
/// Two CPUs on the same destination must reach this multiple of one CPU's rate.
const TARGET_SCALING: f64 = 1.8;
/// The VXLAN UDP port (IANA).
const VXLAN_PORT: u16 = 4789;

struct Case {
    name: &'static str,
    frame: Vec<u8>,
    target: Option<f64>,
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
        src_slots: agent_common::slots::DEFAULT_SRC_SLOTS,
        dst_slots: agent_common::slots::DEFAULT_DST_SLOTS,
        conv_slots: agent_common::conv::DEFAULT_CONV_SLOTS,
        blocked: agent_common::state::DEFAULT_BLOCKED,
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
    for (name, _) in STAGES {
        let stage: &mut Xdp = ebpf
            .program_mut(name)
            .with_context(|| format!("bench program {name} missing"))?
            .try_into()?;
        stage.load()?;
    }
    print_verifier_counts(&ebpf);
    let mut maps = KernelMaps::take(&mut ebpf)?;
    let src = Ipv4Addr::new(198, 51, 100, 7);
    let dst = Ipv4Addr::new(192, 0, 2, 1);
    let cases = [
        Case {
            name: "IPv4 TCP SYN, one hot source",
            frame: frames::ipv4(src, dst, IPPROTO_TCP, 0, &frames::tcp(40000, 80, TCP_SYN)),
            target: Some(TARGET_HOT_NS),
        },
        Case {
            name: "IPv4 TCP ACK (established), hot",
            frame: frames::ipv4(src, dst, IPPROTO_TCP, 0, &frames::tcp(40000, 80, TCP_ACK)),
            target: Some(TARGET_HOT_NS),
        },
        Case {
            name: "IPv4 UDP (64-byte payload), hot",
            frame: frames::ipv4(src, dst, IPPROTO_UDP, 0, &frames::udp(40000, 443, &[0; 64])),
            target: Some(TARGET_HOT_NS),
        },
        Case {
            name: "IPv6 HBH+DstOpt+Frag TCP SYN, hot",
            frame: frames::ipv6_ext_syn("2001:db8::7".parse()?, "2001:db8::1".parse()?),
            target: Some(TARGET_HOT_NS),
        },
        Case {
            name: "VXLAN: IPv4 TCP SYN inside, hot",
            frame: vxlan_syn(src, dst),
            target: Some(TARGET_HOT_NS),
        },
    ];
    println!(
        "BPF_PROG_TEST_RUN, kernel-reported ns per run; baseline = XDP_PASS program in the same run\n\
         {} rounds x {} repeats, p50 [p10] over rounds\n",
        args.rounds, args.repeat
    );
    let mut cycles = cycle_counter();
    if let Err(e) = &cycles {
        tracing::warn!("no cycle counts ({e}): this machine has no usable hardware PMU");
    }
    println!(
        "{:<38} {:>14} {:>14} {:>14} {:>12} {:>10}",
        "case", "baseline", "picket", "delta", "delta cycles", "target"
    );
    for case in &cases {
        let mut base = Vec::new();
        let mut prog = Vec::new();
        for _ in 0..args.rounds {
            base.push(time(&mut ebpf, PROG_PASS, &case.frame, args.repeat)?);
            prog.push(time(&mut ebpf, PROG_XDP, &case.frame, args.repeat)?);
        }
        let delta: Vec<f64> = prog.iter().zip(&base).map(|(p, b)| p - b).collect();
        let extra_cycles = match &mut cycles {
            Ok(c) => {
                let b = cycles_per_run(c, &mut ebpf, PROG_PASS, &case.frame, args.repeat)?;
                let p = cycles_per_run(c, &mut ebpf, PROG_XDP, &case.frame, args.repeat)?;
                Some(p - b)
            }
            Err(_) => None,
        };
        print_row(case.name, &base, &prog, &delta, extra_cycles, case.target);
    }
    print_stages(&mut ebpf, &cases, args)?;
    print_scaling(&ebpf, &cases[0].frame, args.repeat)?;

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

    // Ending the tick and reading the first stage, as the agent does every poll.
    let t = Instant::now();
    let tick = maps.end_tick()?;
    let tick_read = t.elapsed();
    let (src_per_cpu, dst_per_cpu, conv_per_bank) = maps.table_sizes();
    let cpus = crate::loader::possible_cpus()?;
    let mib = |entries: u32, size: usize| f64::from(entries) * size as f64 / f64::from(1 << 20);
    println!(
        "\nfirst stage: the tick's {} sender and {} receiver addresses read in {:.1} ms \
         (mmap, completed bank of {} + {} slots on {cpus} CPUs, {:.1} ms of it waiting for \
         programs in flight)",
        tick.src.len(),
        tick.dst.len(),
        tick_read.as_secs_f64() * 1e3,
        tick.src_slots,
        tick.dst_slots,
        crate::maps::TICK_SETTLE.as_secs_f64() * 1e3
    );
    println!(
        "first stage memory (fixed, whatever the number of sources): SRC {:.1} MiB, DST {:.1} MiB, \
         CONV {:.1} MiB",
        mib(
            2 * src_per_cpu * cpus,
            std::mem::size_of::<agent_common::slots::SrcSlot>()
        ),
        mib(
            2 * dst_per_cpu * cpus,
            std::mem::size_of::<agent_common::slots::DstSlot>()
        ),
        mib(
            2 * conv_per_bank,
            std::mem::size_of::<agent_common::conv::ConvRec>()
        ),
    );

    // Reading the full map, as the agent does every poll.
    let t = Instant::now();
    let snap = maps.read()?;
    let first_read = t.elapsed();
    // Every later poll: the mapping's pages are in place.
    let t = Instant::now();
    let snap = maps.read_with(snap)?;
    let read = t.elapsed();
    let t = Instant::now();
    let mut det = Detector::new(Thresholds::default(), 10.0);
    det.evaluate(&snap);
    let eval = t.elapsed();
    let g = &snap.globals[0];
    let tracked = snap.sources.len();
    println!(
        "per-source table: {tracked} sources in {} entries (evicted ≈ {}), failed inserts {}",
        snap.src_capacity,
        g.src_inserts.saturating_sub(tracked as u64),
        g.src_failures
    );
    println!(
        "agent poll of the full table: read {:.1} ms ({:.0} ns/source, mmap; the first read, \
         faulting the mapping in, {:.1} ms), detectors {:.1} ms; read target {}",
        read.as_secs_f64() * 1e3,
        read.as_nanos() as f64 / tracked.max(1) as f64,
        first_read.as_secs_f64() * 1e3,
        eval.as_secs_f64() * 1e3,
        read_verdict(tracked, read)
    );
    let kernel = maps.sources_memory()?;
    let per_source = kernel as f64 / tracked.max(1) as f64;
    println!(
        "per-source table memory: {per_source:.0} B per tracked source ({:.0} MiB, kernel's own \
         count; {:.0} B per entry, value {} B), target {}",
        kernel as f64 / f64::from(1 << 20),
        kernel as f64 / f64::from(snap.src_capacity.max(1)),
        std::mem::size_of::<agent_common::sources::SrcEntry>(),
        verdict(TARGET_ENTRY_BYTES, per_source <= TARGET_ENTRY_BYTES)
    );
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

/// One row of the many-sources cases, against the line-rate issue's target.
fn print_many_row(name: &str, b: f64, p: f64) {
    println!(
        "{name:<38} {b:>14.1} {p:>14.1} {:>14.1} {:>12} {:>10}",
        p - b,
        "-",
        verdict(TARGET_MANY_NS, p - b <= TARGET_MANY_NS)
    );
}

/// The read target's verdict: it is set for a full map of a million sources, so a smaller
/// map is judged at its share of the budget.
fn read_verdict(entries: usize, read: std::time::Duration) -> String {
    let budget = TARGET_READ_MS * entries as f64 / TARGET_READ_SOURCES as f64;
    let ms = read.as_secs_f64() * 1e3;
    let budget = (budget * 10.0).round() / 10.0;
    format!(
        "{budget} ms{}",
        if ms <= budget { " met" } else { " MISSED" }
    )
}

/// "30 met" or "30 MISSED".
fn verdict(target: f64, met: bool) -> String {
    format!("{target}{}", if met { " met" } else { " MISSED" })
}

/// An Ethernet frame carrying VXLAN (UDP 4789, VNI 42) around an Ethernet IPv4 TCP SYN.
fn vxlan_syn(src: Ipv4Addr, dst: Ipv4Addr) -> Vec<u8> {
    let inner = frames::ipv4(
        Ipv4Addr::new(10, 244, 1, 7),
        Ipv4Addr::new(10, 244, 2, 9),
        IPPROTO_TCP,
        0,
        &frames::tcp(40000, 80, TCP_SYN),
    );
    let mut vxlan = vec![0x08, 0, 0, 0, 0, 0, 42, 0];
    vxlan.extend_from_slice(&inner);
    frames::ipv4(
        src,
        dst,
        IPPROTO_UDP,
        0,
        &frames::udp(51000, VXLAN_PORT, &vxlan),
    )
}

/// A counter of the CPU cycles this thread spends, in user and kernel mode (where
/// `BPF_PROG_TEST_RUN` runs the program).
fn cycle_counter() -> std::io::Result<Counter> {
    let mut builder = Builder::new().kind(Hardware::CPU_CYCLES);
    builder.include_kernel();
    builder.build()
}

/// Cycles per run of `repeat` runs of `frame`, syscall included (amortised over `repeat`).
fn cycles_per_run(
    counter: &mut Counter,
    ebpf: &mut aya::Ebpf,
    name: &str,
    frame: &[u8],
    repeat: u32,
) -> Result<f64> {
    counter.reset()?;
    counter.enable()?;
    let run = time(ebpf, name, frame, repeat);
    counter.disable()?;
    run?;
    Ok(counter.read()? as f64 / f64::from(repeat))
}

/// Rates of one program alone and on two CPUs at once.
struct Scaling {
    /// Packets per second, one thread on CPU 0.
    one: f64,
    /// Packets per second summed over one thread on each of CPUs 0 and 1.
    two: f64,
    /// Share of the longer thread's wall time during which both ran: contention on a shared
    /// cache line shows only if they overlap.
    overlap: f64,
}

/// Packets per second of `name` on `frame` with one thread on CPU 0, and with one thread on
/// each of CPUs 0 and 1 at once (the same frame, so the same source and destination): the
/// kernel-reported time per run of each thread, its inverse summed over threads.
fn scaling(ebpf: &aya::Ebpf, name: &str, frame: &[u8], repeat: u32) -> Result<Scaling> {
    let prog: &Xdp = ebpf.program(name).context("program missing")?.try_into()?;
    // Packets per second, and when the run started and ended.
    let run = |cpu: usize, start: Option<&Barrier>| -> Result<(f64, Instant, Instant)> {
        pin_to_cpu(cpu)?;
        if let Some(b) = start {
            b.wait();
        }
        let began = Instant::now();
        let r = prog.test_run(TestRunOptions {
            data_in: Some(frame),
            repeat,
            ..Default::default()
        })?;
        Ok((
            1e9 / (r.duration.as_nanos() as f64).max(1e-3),
            began,
            Instant::now(),
        ))
    };
    let panicked = || anyhow::anyhow!("benchmark thread panicked");
    let (one, ..) =
        std::thread::scope(|s| s.spawn(|| run(0, None)).join()).map_err(|_| panicked())??;
    let start = Barrier::new(2);
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| run(0, Some(&start)));
        let b = s.spawn(|| run(1, Some(&start)));
        match (a.join(), b.join()) {
            (Ok(a), Ok(b)) => Ok((a?, b?)),
            _ => Err(panicked()),
        }
    })?;
    let both = a.2.min(b.2).saturating_duration_since(a.1.max(b.1));
    let longest = (a.2 - a.1).max(b.2 - b.1);
    Ok(Scaling {
        one,
        two: a.0 + b.0,
        overlap: both.as_secs_f64() / longest.as_secs_f64().max(1e-9),
    })
}

/// Pins the calling thread to `cpu`.
fn pin_to_cpu(cpu: usize) -> Result<()> {
    // SAFETY: `set` is a plain bit set initialised by CPU_ZERO before use, and the call only
    // reads it.
    let rc = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_ZERO(&mut set);
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set)
    };
    if rc != 0 {
        bail!(
            "cannot pin a benchmark thread to CPU {cpu}: {}",
            std::io::Error::last_os_error()
        );
    }
    Ok(())
}

/// The two-CPU rows: the baseline's own scaling beside picket's, against the target.
fn print_scaling(ebpf: &aya::Ebpf, frame: &[u8], repeat: u32) -> Result<()> {
    // Online CPUs, not this process's affinity: `cargo xtask bench` pins the run to one CPU
    // with taskset, and the two threads pin themselves to CPUs 0 and 1.
    // SAFETY: sysconf has no preconditions.
    let online = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    if online < 2 {
        println!("\ntwo-CPU scaling: skipped, this machine has one CPU online");
        return Ok(());
    }
    let base = scaling(ebpf, PROG_PASS, frame, repeat)?;
    let ours = scaling(ebpf, PROG_XDP, frame, repeat)?;
    println!(
        "\ntwo CPUs at once, IPv4 SYN to one destination (packets/s, kernel time per run):\n\
         {:<38} {:>14} {:>14} {:>8} {:>8} {:>10}",
        "program", "one CPU", "two CPUs", "ratio", "overlap", "target"
    );
    for (name, r, target) in [
        ("baseline (XDP_PASS)", &base, "-".to_string()),
        (
            "picket",
            &ours,
            verdict(TARGET_SCALING, ours.two / ours.one >= TARGET_SCALING),
        ),
    ] {
        println!(
            "{name:<38} {:>14.0} {:>14.0} {:>8.2} {:>7.0}% {target:>10}",
            r.one,
            r.two,
            r.two / r.one,
            r.overlap * 100.0
        );
    }
    if ours.overlap < 0.9 {
        println!(
            "note: the two threads overlapped {:.0}% of the time (a busy machine?): the ratio understates contention",
            ours.overlap * 100.0
        );
    }
    Ok(())
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

fn print_row(
    name: &str,
    base: &[f64],
    prog: &[f64],
    delta: &[f64],
    cycles: Option<f64>,
    target: Option<f64>,
) {
    let cell = |v: &[f64]| format!("{:.0} [{:.0}]", pct(v, 0.5), pct(v, 0.1));
    let tgt = match target {
        Some(t) => verdict(t, pct(delta, 0.5) <= t),
        None => "-".into(),
    };
    let cycles = cycles.map_or_else(|| "n/a".into(), |c| format!("{c:.0}"));
    println!(
        "{name:<38} {:>14} {:>14} {:>14} {cycles:>12} {tgt:>10}",
        cell(base),
        cell(prog),
        cell(delta),
    );
}

/// Where the hot cases' time goes: what each stage program adds to the one before it (the
/// full program is the last row: the per-source update and the rest). Each round times the
/// baseline and every stage back to back, so that a busy machine shifts them together; the
/// median over rounds of each round's increment is printed.
fn print_stages(ebpf: &mut aya::Ebpf, cases: &[Case], args: &BenchArgs) -> Result<()> {
    let programs: Vec<(&str, &str)> = STAGES
        .iter()
        .copied()
        .chain([(PROG_XDP, "per-source update, rest (full)")])
        .collect();
    // added[case][stage]: one increment per round.
    let mut added = vec![vec![Vec::new(); programs.len()]; cases.len()];
    for (case, added) in cases.iter().zip(&mut added) {
        for _ in 0..args.rounds {
            let mut prev = time(ebpf, PROG_PASS, &case.frame, args.repeat)?;
            for ((prog, _), added) in programs.iter().zip(added.iter_mut()) {
                let t = time(ebpf, prog, &case.frame, args.repeat)?;
                added.push(t - prev);
                prev = t;
            }
        }
    }
    println!(
        "\nns per packet added by each stage (each round times them back to back; median over rounds)"
    );
    print!("{:<38}", "stage");
    for case in cases {
        print!(" {:>12.12}", case.name);
    }
    println!();
    for (i, (_, what)) in programs.iter().enumerate() {
        print!("{what:<38}");
        for added in &added {
            print!(" {:>12.0}", pct(&added[i], 0.5));
        }
        println!();
    }
    Ok(())
}

/// The verifier's processed-instruction count of every program (its limit is 1 M; a parse
/// path added to the classifier shows here first).
fn print_verifier_counts(ebpf: &aya::Ebpf) {
    let counts: Vec<String> = loader::PROGRAMS
        .iter()
        .map(|name| {
            let n = ebpf
                .program(name)
                .and_then(|p| p.info().ok())
                .and_then(|i| i.verified_instruction_count());
            match n {
                Some(n) => format!("{name} {n}"),
                None => format!("{name} n/a"),
            }
        })
        .collect();
    println!(
        "verifier, instructions processed (limit 1000000): {}",
        counts.join(", ")
    );
}
