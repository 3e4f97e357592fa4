//! Kernel parity: feed frames through the loaded BPF programs with `BPF_PROG_TEST_RUN` and
//! through the host model ([`picket_detect::model::HostMaps`]), then compare the resulting maps.

use std::collections::BTreeMap;

use agent_common::{
    classify_eth, classify_ip,
    slots::Slot,
    state::{AddrKey, DIR_INGRESS, Flagged, MAP_FLAGGED, SrcState},
};
use anyhow::{Context as _, Result, bail};
use aya::{
    Ebpf,
    maps::{HashMap, MapData},
    programs::{SchedClassifier, TestRun, TestRunOptions, Xdp},
};

use picket_detect::{
    model::{HOST_SEED, HostMaps},
    snapshot::Snapshot,
};

use crate::{
    loader::{self, MapSizes, PROG_TC_EGRESS, PROG_TC_IP_EGRESS, PROG_XDP, PROG_XDP_IP},
    maps::KernelMaps,
};

/// Smallest frame `BPF_PROG_TEST_RUN` accepts (an Ethernet header).
pub const MIN_FRAME: usize = 14;
/// Largest frame the XDP test harness hands whole to a program that is not frags-aware: one
/// page less XDP headroom (256) and `skb_shared_info` (320). Longer frames are cut to this,
/// so comparing them with the host would compare different bytes.
pub const MAX_XDP_FRAME: usize = 4096 - 256 - 320;

/// The CPU the runner's thread is pinned to while it runs frames, so that every frame lands
/// in the same partition of the per-CPU slot tables (the host model has one).
pub const PARITY_CPU: u32 = 0;

/// The loaded programs and maps, ready to run frames.
pub struct KernelRunner {
    ebpf: Ebpf,
    maps: KernelMaps,
    admit_on_second: bool,
    flagged: Option<HashMap<MapData, AddrKey, Flagged>>,
    pinned: Option<std::thread::ThreadId>,
}

/// Pins the calling thread to `cpu`.
fn pin_to(cpu: u32) -> Result<()> {
    // SAFETY: a zeroed cpu_set_t is valid; CPU_SET writes inside it; 0 is this thread.
    let rc = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu as usize, &mut set);
        libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set)
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error())
            .with_context(|| format!("cannot pin the parity thread to CPU {cpu}"));
    }
    Ok(())
}

impl KernelRunner {
    /// Loads the BPF object (needs root or CAP_BPF+CAP_PERFMON) with the given map sizes.
    pub fn load(sizes: MapSizes) -> Result<Self> {
        let mut ebpf = loader::load(sizes)?;
        let mut maps = KernelMaps::take(&mut ebpf)?;
        maps.set_seed(HOST_SEED)?;
        Ok(KernelRunner {
            ebpf,
            maps,
            admit_on_second: false,
            flagged: None,
            pinned: None,
        })
    }

    /// Flags `source` for evidence capture with `budget` bytes and turns capture on (the
    /// ring buffer is not drained: once full, captures count as dropped).
    pub fn flag(&mut self, source: std::net::IpAddr, budget: u64) -> Result<()> {
        if self.flagged.is_none() {
            let map = self
                .ebpf
                .take_map(MAP_FLAGGED)
                .context("map FLAGGED missing")?;
            self.flagged = Some(map.try_into()?);
        }
        let value = Flagged {
            budget,
            ..Default::default()
        };
        if let Some(m) = self.flagged.as_mut() {
            m.insert(AddrKey::from_ip(source), value, 0)?;
        }
        self.maps.set_evidence(true)
    }

    /// The kernel's record of a flagged source.
    pub fn flagged(&self, source: std::net::IpAddr) -> Result<Flagged> {
        let m = self.flagged.as_ref().context("no source flagged")?;
        Ok(m.get(&AddrKey::from_ip(source), 0)?)
    }

    /// Turns admission of new sources at second sighting on or off in the kernel (the host
    /// model follows in [`compare`]).
    pub fn set_admit_on_second(&mut self, on: bool) -> Result<()> {
        self.admit_on_second = on;
        self.maps.set_admit_on_second(on)
    }

    /// Runs one frame through the ingress (XDP) or egress (TC) program. Returns false when
    /// the kernel's test harness refuses the input itself (EINVAL: e.g. the skb harness
    /// wants a whole IP header), in which case the program did not run.
    pub fn run(&mut self, frame: &[u8], dir: u32) -> Result<bool> {
        self.run_on(frame, dir, false)
    }

    /// [`KernelRunner::run`] through the programs of Ethernet devices, or, with `l3`, those
    /// of devices without a link header (the frame starts at IP).
    pub fn run_on(&mut self, frame: &[u8], dir: u32, l3: bool) -> Result<bool> {
        let me = std::thread::current().id();
        if self.pinned != Some(me) {
            pin_to(PARITY_CPU)?;
            self.pinned = Some(me);
        }
        let opts = TestRunOptions {
            data_in: Some(frame),
            repeat: 1,
            ..Default::default()
        };
        let name = match (dir == DIR_INGRESS, l3) {
            (true, false) => PROG_XDP,
            (false, false) => PROG_TC_EGRESS,
            (true, true) => PROG_XDP_IP,
            (false, true) => PROG_TC_IP_EGRESS,
        };
        let prog = self.ebpf.program_mut(name).context("program missing")?;
        let r = if dir == DIR_INGRESS {
            let p: &mut Xdp = prog.try_into()?;
            p.test_run(opts)
        } else {
            let p: &mut SchedClassifier = prog.try_into()?;
            p.test_run(opts)
        };
        let r = match r {
            Ok(r) => r,
            Err(e) if loader::errno_of(&e) == Some(libc::EINVAL) => return Ok(false),
            Err(e) => return Err(e.into()),
        };
        // XDP_PASS is 2, TC_ACT_OK is 0: Picket never drops.
        let pass = if dir == DIR_INGRESS { 2 } else { 0 };
        if r.return_value != pass {
            bail!(
                "{name} returned {} instead of passing the packet",
                r.return_value
            );
        }
        Ok(true)
    }

    /// Reads the kernel maps.
    pub fn read(&mut self) -> Result<Snapshot> {
        self.maps.read()
    }
}

/// Outcome of a parity run.
#[derive(Debug, Default)]
pub struct ParityReport {
    /// Frames run through both the kernel and the host model.
    pub compared: usize,
    /// Frames the kernel's test harness refuses or would cut (shorter than an Ethernet
    /// header, longer than [`MAX_XDP_FRAME`] for XDP, or refused by the skb harness): given
    /// to neither side.
    pub refused: usize,
    /// Differences, as readable lines (empty when kernel and host agree).
    pub diffs: Vec<String>,
}

/// A kernel-versus-host comparison fed one frame at a time.
pub struct Comparison<'a> {
    runner: &'a mut KernelRunner,
    host: HostMaps,
    report: ParityReport,
}

impl<'a> Comparison<'a> {
    /// Starts a comparison on freshly loaded programs and maps.
    pub fn new(runner: &'a mut KernelRunner) -> Self {
        let mut host = HostMaps::with_tables(runner.maps.geometry());
        host.admit_on_second = runner.admit_on_second;
        Comparison {
            runner,
            host,
            report: ParityReport::default(),
        }
    }

    /// Runs one Ethernet frame through the kernel program for `dir` and the host model.
    pub fn feed(&mut self, frame: &[u8], dir: u32) -> Result<()> {
        self.feed_on(frame, dir, false)
    }

    /// Runs one packet that starts at its IP header through the programs of L3 devices
    /// (`picket_xdp_ip`, `picket_tc_ip_egress`) and the host model.
    pub fn feed_ip(&mut self, packet: &[u8], dir: u32) -> Result<()> {
        self.feed_on(packet, dir, true)
    }

    fn feed_on(&mut self, frame: &[u8], dir: u32, l3: bool) -> Result<()> {
        let fits = frame.len() >= MIN_FRAME && (dir != DIR_INGRESS || frame.len() <= MAX_XDP_FRAME);
        let ran = fits
            && self.runner.run_on(frame, dir, l3).with_context(|| {
                format!(
                    "frame of {} bytes: {:02x?}",
                    frame.len(),
                    &frame[..frame.len().min(40)]
                )
            })?;
        if !ran {
            self.report.refused += 1;
            return Ok(());
        }
        self.report.compared += 1;
        let parsed = if l3 {
            classify_ip(frame, 0)
        } else {
            classify_eth(frame)
        };
        self.host.account(&parsed, frame.len() as u64, dir, 0);
        Ok(())
    }

    /// Host-side per-source entries in use.
    pub fn host_sources(&self) -> usize {
        self.host.tracked_sources()
    }

    /// Compares the tick's tables, then ends the tick on both sides (as a poll does), so
    /// that what follows takes the paths of a new tick (answers to the previous one).
    pub fn next_tick(&mut self) -> Result<()> {
        self.diff_tables();
        self.runner.maps.end_tick()?;
        self.host.next_tick(0.0);
        Ok(())
    }

    /// Compares the slot and conversation tables of the current tick.
    fn diff_tables(&mut self) {
        let tick = self.host.geometry.tick;
        let (src, dst) = self.runner.maps.slot_partitions(PARITY_CPU);
        let conv = self.runner.maps.conversations();
        let d = &mut self.report.diffs;
        diff_slots(
            "sender slot",
            tick,
            &src,
            &self.host.src,
            |s| s.head().tick,
            d,
        );
        diff_slots(
            "receiver slot",
            tick,
            &dst,
            &self.host.dst,
            |s| s.head().tick,
            d,
        );
        diff_slots("conversation", tick, &conv, &self.host.conv, |r| r.tick, d);
    }

    /// Reads the kernel maps and compares them with the host model.
    pub fn finish(mut self) -> Result<ParityReport> {
        self.diff_tables();
        let kernel = self.runner.read()?;
        self.report
            .diffs
            .extend(diff(&kernel, &self.host.snapshot(0, 0)));
        Ok(self.report)
    }
}

/// Feeds `frames` (with their direction) through the kernel and the host model and compares
/// the resulting maps.
pub fn compare(runner: &mut KernelRunner, frames: &[(Vec<u8>, u32)]) -> Result<ParityReport> {
    let mut c = Comparison::new(runner);
    for (frame, dir) in frames {
        c.feed(frame, *dir)?;
    }
    c.finish()
}

/// As [`compare`], with a tick boundary (a poll) between each group of frames.
pub fn compare_ticks(
    runner: &mut KernelRunner,
    ticks: &[Vec<(Vec<u8>, u32)>],
) -> Result<ParityReport> {
    let mut c = Comparison::new(runner);
    for (i, frames) in ticks.iter().enumerate() {
        if i > 0 {
            c.next_tick()?;
        }
        for (frame, dir) in frames {
            c.feed(frame, *dir)?;
        }
    }
    c.finish()
}

/// Differences between a kernel snapshot and a host one, ignoring timestamps.
pub fn diff(kernel: &Snapshot, host: &Snapshot) -> Vec<String> {
    let mut out = Vec::new();
    for (i, dir) in ["ingress", "egress"].iter().enumerate() {
        if kernel.globals[i] != host.globals[i] {
            out.push(format!(
                "global counters ({dir}) differ:\n  kernel {:?}\n  host   {:?}",
                kernel.globals[i], host.globals[i]
            ));
        }
    }
    let strip_src = |s: &SrcState| SrcState {
        first_seen_ns: 0,
        last_seen_ns: 0,
        ..*s
    };
    diff_maps(
        "source",
        &kernel.sources,
        &host.sources,
        strip_src,
        &mut out,
    );
    out
}

fn diff_maps<V: PartialEq + std::fmt::Debug>(
    what: &str,
    kernel: &[(AddrKey, V)],
    host: &[(AddrKey, V)],
    strip: impl Fn(&V) -> V,
    out: &mut Vec<String>,
) {
    let k: BTreeMap<_, _> = kernel.iter().map(|(a, v)| (*a, strip(v))).collect();
    let h: BTreeMap<_, _> = host.iter().map(|(a, v)| (*a, strip(v))).collect();
    for (addr, hv) in &h {
        match k.get(addr) {
            None => out.push(format!("{what} {} missing in the kernel map", addr.ip())),
            Some(kv) if kv != hv => out.push(format!(
                "{what} {} differs:\n  kernel {kv:?}\n  host   {hv:?}",
                addr.ip()
            )),
            Some(_) => {}
        }
    }
    for addr in k.keys().filter(|a| !h.contains_key(*a)) {
        out.push(format!("{what} {} only in the kernel map", addr.ip()));
    }
}

/// Differences between the kernel's and the host's slots of `tick`, slot by slot (slots of
/// other ticks are stale on both sides: an earlier comparison's, or never used).
fn diff_slots<T: PartialEq + std::fmt::Debug>(
    what: &str,
    tick: u32,
    kernel: &[T],
    host: &[T],
    tick_of: fn(&T) -> u32,
    out: &mut Vec<String>,
) {
    if kernel.len() != host.len() {
        out.push(format!(
            "{what} tables differ in size: kernel {}, host {}",
            kernel.len(),
            host.len()
        ));
        return;
    }
    let live = |s: &T| tick_of(s) == tick;
    let differing: Vec<usize> = (0..host.len())
        .filter(|&i| {
            let (k, h) = (&kernel[i], &host[i]);
            (live(k) || live(h)) && !(live(k) && live(h) && k == h)
        })
        .collect();
    for &i in differing.iter().take(3) {
        out.push(format!(
            "{what} {i} differs:\n  kernel {:?}\n  host   {:?}",
            kernel[i], host[i]
        ));
    }
    if differing.len() > 3 {
        out.push(format!("{what}s: {} more differ", differing.len() - 3));
    }
}
