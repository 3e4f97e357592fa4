//! Reads the kernel maps into a [`Snapshot`] and writes the configuration map.

use std::{
    os::fd::AsRawFd,
    time::{SystemTime, UNIX_EPOCH},
};

use agent_common::state::{
    CONFIG_ADMIT_ON_SECOND, CONFIG_EVIDENCE, Config, DIR_EGRESS, DIR_INGRESS, Globals, MAP_CONFIG,
    MAP_GLOBALS, MAP_SOURCES,
};
use agent_common::{
    conv::{ConvRec, MAP_CONV},
    slots::{DstSlot, MAP_DST, MAP_SRC, SrcSlot},
    sources::SrcEntry,
};
use anyhow::{Context as _, Result, anyhow};
use aya::{
    Ebpf,
    maps::{Array, MapData, PerCpuArray},
};

use picket_detect::{
    outcomes::OutcomeJoin,
    probes::ProbeEvent,
    snapshot::{Snapshot, TickCounts},
};

use crate::slot_tables::SlotTable;

/// How long the agent waits after bumping the tick before it reads the bank of the tick that
/// ended: programs that read the old tick just before the bump finish within microseconds.
pub const TICK_SETTLE: std::time::Duration = std::time::Duration::from_millis(1);

/// The agent's handles on the kernel maps.
pub struct KernelMaps {
    sources: SlotTable<SrcEntry>,
    globals: PerCpuArray<MapData, Globals>,
    config: Array<MapData, Config>,
    src: SlotTable<SrcSlot>,
    dst: SlotTable<DstSlot>,
    conv: SlotTable<ConvRec>,
    /// Monotonic time the current tick started.
    tick_start_ns: u64,
    current: Config,
    src_capacity: u32,
    /// Outcomes from the completed `CONV` banks.
    join: OutcomeJoin,
}

impl KernelMaps {
    /// Takes the maps out of the loaded object and writes the initial configuration.
    pub fn take(ebpf: &mut Ebpf) -> Result<Self> {
        let mut take = |name: &str| {
            ebpf.take_map(name)
                .ok_or_else(|| anyhow!("map {name} missing"))
        };
        let globals: PerCpuArray<MapData, Globals> = take(MAP_GLOBALS)?.try_into()?;
        let config: Array<MapData, Config> = take(MAP_CONFIG)?.try_into()?;
        let cpus = crate::loader::possible_cpus()?;
        let src = SlotTable::new(take(MAP_SRC)?, MAP_SRC, cpus)?;
        let dst = SlotTable::new(take(MAP_DST)?, MAP_DST, cpus)?;
        // Shared by every CPU: one partition.
        let conv = SlotTable::new(take(MAP_CONV)?, MAP_CONV, 1)?;
        let sources = SlotTable::new(take(MAP_SOURCES)?, MAP_SOURCES, 1)?;
        let src_capacity = sources.entries();
        let mut maps = KernelMaps {
            globals,
            config,
            current: Config {
                flags: 0,
                tick: 1,
                seed: random_seed(),
                src_per_cpu: src.per_cpu,
                dst_per_cpu: dst.per_cpu,
                conv_per_bank: conv.per_cpu,
                sources: src_capacity,
            },
            sources,
            src,
            dst,
            conv,
            tick_start_ns: monotonic_ns(),
            src_capacity,
            join: OutcomeJoin::new(),
        };
        maps.write_config()?;
        Ok(maps)
    }

    /// Turns admission of new sources on second sighting on or off.
    pub fn set_admit_on_second(&mut self, on: bool) -> Result<()> {
        self.set_flag(CONFIG_ADMIT_ON_SECOND, on)
    }

    /// Turns evidence capture (lookups of flagged sources) on or off.
    pub fn set_evidence(&mut self, on: bool) -> Result<()> {
        self.set_flag(CONFIG_EVIDENCE, on)
    }

    /// Turns blocking (lookups of blocked sources in XDP) on or off.
    pub fn set_block(&mut self, on: bool) -> Result<()> {
        self.set_flag(agent_common::state::CONFIG_BLOCK, on)
    }

    fn set_flag(&mut self, flag: u64, on: bool) -> Result<()> {
        let flags = if on {
            self.current.flags | flag
        } else {
            self.current.flags & !flag
        };
        if flags != self.current.flags {
            self.current.flags = flags;
            self.write_config()?;
        }
        Ok(())
    }

    fn write_config(&mut self) -> Result<()> {
        self.config
            .set(0, self.current, 0)
            .context("cannot write the CONFIG map")
    }

    /// Sets the slot tables' hash seed (the parity check uses the host model's).
    pub fn set_seed(&mut self, seed: u32) -> Result<()> {
        self.current.seed = seed;
        self.write_config()
    }

    /// The current tick.
    pub fn tick(&self) -> u32 {
        self.current.tick
    }

    /// The tables' geometry in force (sizes, seed, tick).
    pub fn geometry(&self) -> agent_common::slots::Geometry {
        agent_common::slots::Geometry::of(&self.current)
    }

    /// Kernel memory of the per-source table, as the kernel accounts it (`memlock` of the
    /// map's fdinfo).
    pub fn sources_memory(&self) -> Result<u64> {
        let fd = self.sources.fd().as_raw_fd();
        let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}"))
            .context("cannot read the per-source map's fdinfo")?;
        info.lines()
            .find_map(|l| l.strip_prefix("memlock:"))
            .and_then(|v| v.trim().parse().ok())
            .context("the per-source map's fdinfo has no memlock line")
    }

    /// The tables' sizes: `(SRC, DST)` slots per CPU and bank, and `CONV` records per bank.
    pub fn table_sizes(&self) -> (u32, u32, u32) {
        (
            self.src.per_cpu,
            self.dst.per_cpu,
            self.current.conv_per_bank,
        )
    }

    /// Both banks of `cpu`'s partitions of the slot tables, as they are now.
    pub fn slot_partitions(&self, cpu: u32) -> (Vec<SrcSlot>, Vec<DstSlot>) {
        (self.src.partition(cpu), self.dst.partition(cpu))
    }

    /// Both banks of the conversation table, as they are now.
    pub fn conversations(&self) -> Vec<ConvRec> {
        self.conv.partition(0)
    }

    /// Ends the current tick and reads what it counted: the reading of every poll.
    pub fn end_tick(&mut self) -> Result<TickCounts> {
        let tick = self.current.tick;
        self.current.tick = tick.wrapping_add(1);
        self.write_config()?;
        let now = monotonic_ns();
        let secs = now.saturating_sub(self.tick_start_ns) as f64 / 1e9;
        self.tick_start_ns = now;
        std::thread::sleep(TICK_SETTLE);
        let (src, dst) = TickCounts::sum(tick, &self.src.bank(tick), &self.dst.bank(tick));
        Ok(TickCounts {
            tick,
            secs,
            src,
            dst,
            src_slots: self.src.slots(),
            dst_slots: self.dst.slots(),
        })
    }

    /// The reading of a poll: the global counters and the tick that has just ended.
    pub fn read_poll(&mut self) -> Result<Snapshot> {
        let mut snap = self.read_globals()?;
        snap.tick = self.end_tick()?;
        snap.probes = self.settle_probes(snap.tick.tick, snap.mono_ns);
        Ok(snap)
    }

    /// The probes the completed `CONV` bank of `tick` settles (`detect::outcomes`), copied
    /// from its mapping.
    fn settle_probes(&mut self, tick: u32, at_ns: u64) -> Vec<ProbeEvent> {
        let bank = self.conv.bank(tick);
        self.join.settle(&bank, tick, self.current.seed, at_ns)
    }

    /// Reads every map: a poll's reading and the per-source map.
    pub fn read(&mut self) -> Result<Snapshot> {
        let snap = self.read_poll()?;
        self.read_with(snap)
    }

    /// Adds the per-source map to a poll's reading.
    pub fn read_with(&mut self, mut snap: Snapshot) -> Result<Snapshot> {
        snap.sources = self.sources.filtered(SrcEntry::tracked);
        snap.maps_read = true;
        Ok(snap)
    }

    /// Reads only the global counters (cheap: one per-CPU array slot per direction).
    pub fn read_globals(&self) -> Result<Snapshot> {
        let mut globals = [Globals::default(), Globals::default()];
        for (slot, dir) in globals.iter_mut().zip([DIR_INGRESS, DIR_EGRESS]) {
            for cpu in self.globals.get(&dir, 0)?.iter() {
                slot.merge(cpu);
            }
        }
        Ok(Snapshot {
            mono_ns: monotonic_ns(),
            wall_ns: wall_ns(),
            maps_read: false,
            sources: Vec::new(),
            globals,
            src_capacity: self.src_capacity,
            ..Snapshot::default()
        })
    }
}

/// A random 32-bit seed for the slot tables' hashes (the time, should getrandom fail).
fn random_seed() -> u32 {
    let mut b = [0u8; 4];
    // SAFETY: writes at most 4 bytes into `b`.
    let n = unsafe { libc::getrandom(b.as_mut_ptr().cast(), b.len(), 0) };
    if n == 4 {
        u32::from_ne_bytes(b)
    } else {
        monotonic_ns() as u32 ^ std::process::id()
    }
}

/// `CLOCK_MONOTONIC` in ns: the clock `bpf_ktime_get_coarse_ns` follows.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid pointer to a timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Wall-clock time in ns since the Unix epoch.
pub fn wall_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}
