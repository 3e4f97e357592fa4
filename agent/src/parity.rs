//! Kernel parity: feed frames through the loaded BPF programs with `BPF_PROG_TEST_RUN` and
//! through the host model ([`picket_detect::model::HostMaps`]), then compare the resulting maps.

use std::collections::BTreeMap;

use agent_common::{
    classify_eth,
    state::{AddrKey, DIR_INGRESS, DstState, Flagged, MAP_FLAGGED, SrcState},
};
use anyhow::{Context as _, Result, bail};
use aya::{
    Ebpf,
    maps::{HashMap, MapData},
    programs::{SchedClassifier, TestRun, TestRunOptions, Xdp},
};

use picket_detect::{model::HostMaps, snapshot::Snapshot};

use crate::{
    loader::{self, MapSizes, PROG_TC_EGRESS, PROG_XDP},
    maps::KernelMaps,
};

/// Smallest frame `BPF_PROG_TEST_RUN` accepts (an Ethernet header).
pub const MIN_FRAME: usize = 14;
/// Largest frame the XDP test harness hands whole to a program that is not frags-aware: one
/// page less XDP headroom (256) and `skb_shared_info` (320). Longer frames are cut to this,
/// so comparing them with the host would compare different bytes.
pub const MAX_XDP_FRAME: usize = 4096 - 256 - 320;

/// The loaded programs and maps, ready to run frames.
pub struct KernelRunner {
    ebpf: Ebpf,
    maps: KernelMaps,
    admit_on_second: bool,
    flagged: Option<HashMap<MapData, AddrKey, Flagged>>,
}

impl KernelRunner {
    /// Loads the BPF object (needs root or CAP_BPF+CAP_PERFMON) with the given map sizes.
    pub fn load(sizes: MapSizes) -> Result<Self> {
        let mut ebpf = loader::load(sizes)?;
        let maps = KernelMaps::take(&mut ebpf, true)?;
        Ok(KernelRunner {
            ebpf,
            maps,
            admit_on_second: false,
            flagged: None,
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
        let opts = TestRunOptions {
            data_in: Some(frame),
            repeat: 1,
            ..Default::default()
        };
        let name = if dir == DIR_INGRESS {
            PROG_XDP
        } else {
            PROG_TC_EGRESS
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
        let mut host = HostMaps::new();
        host.admit_on_second = runner.admit_on_second;
        Comparison {
            runner,
            host,
            report: ParityReport::default(),
        }
    }

    /// Runs one Ethernet frame through the kernel program for `dir` and the host model.
    pub fn feed(&mut self, frame: &[u8], dir: u32) -> Result<()> {
        let fits = frame.len() >= MIN_FRAME && (dir != DIR_INGRESS || frame.len() <= MAX_XDP_FRAME);
        let ran = fits
            && self.runner.run(frame, dir).with_context(|| {
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
        self.host
            .account(&classify_eth(frame), frame.len() as u64, dir, 0);
        Ok(())
    }

    /// Host-side per-source entries so far (to tell when the kernel's LRU map may evict).
    pub fn host_sources(&self) -> usize {
        self.host.sources.len()
    }

    /// Reads the kernel maps and compares them with the host model.
    pub fn finish(mut self) -> Result<ParityReport> {
        let kernel = self.runner.read()?;
        self.report.diffs = diff(&kernel, &self.host.snapshot(0, 0));
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
    let strip_dst = |s: &DstState| DstState {
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
    diff_maps(
        "destination",
        &kernel.dests,
        &host.dests,
        strip_dst,
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
