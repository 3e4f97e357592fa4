//! Reads the kernel maps into a [`Snapshot`] and writes the configuration map.

use std::{
    io,
    mem::size_of,
    os::fd::{AsFd, AsRawFd, BorrowedFd},
    time::{SystemTime, UNIX_EPOCH},
};

use agent_common::state::{
    AddrKey, CONFIG_ADMIT_ON_SECOND, CONFIG_EVIDENCE, CONFIG_TRACK_DESTS, Config, DIR_EGRESS,
    DIR_INGRESS, DstState, Globals, KnownSources, MAP_CONFIG, MAP_DESTS, MAP_GLOBALS, MAP_KNOWN,
    MAP_SOURCES, SrcState,
};
use anyhow::{Context as _, Result, anyhow};
use aya::{
    Ebpf, Pod,
    maps::{Array, HashMap, IterableMap, MapData, PerCpuArray},
};

use picket_detect::snapshot::Snapshot;

/// The agent's handles on the kernel maps.
pub struct KernelMaps {
    sources: HashMap<MapData, AddrKey, SrcState>,
    dests: HashMap<MapData, AddrKey, DstState>,
    globals: PerCpuArray<MapData, Globals>,
    config: Array<MapData, Config>,
    known: Array<MapData, KnownSources>,
    current: Config,
    src_capacity: u32,
    dst_capacity: u32,
}

impl KernelMaps {
    /// Takes the maps out of the loaded object and writes the initial configuration.
    pub fn take(ebpf: &mut Ebpf, track_dests: bool) -> Result<Self> {
        let mut take = |name: &str| {
            ebpf.take_map(name)
                .ok_or_else(|| anyhow!("map {name} missing"))
        };
        let sources: HashMap<MapData, AddrKey, SrcState> = take(MAP_SOURCES)?.try_into()?;
        let dests: HashMap<MapData, AddrKey, DstState> = take(MAP_DESTS)?.try_into()?;
        let globals: PerCpuArray<MapData, Globals> = take(MAP_GLOBALS)?.try_into()?;
        let config: Array<MapData, Config> = take(MAP_CONFIG)?.try_into()?;
        let known: Array<MapData, KnownSources> = take(MAP_KNOWN)?.try_into()?;
        let src_capacity = sources.map().info()?.max_entries();
        let dst_capacity = dests.map().info()?.max_entries();
        let mut maps = KernelMaps {
            sources,
            dests,
            globals,
            config,
            known,
            current: Config {
                epoch: 1,
                flags: if track_dests { CONFIG_TRACK_DESTS } else { 0 },
            },
            src_capacity,
            dst_capacity,
        };
        maps.write_config()?;
        Ok(maps)
    }

    /// Starts a new window: the kernel clears each entry's distinct sets on its next probe.
    pub fn next_epoch(&mut self) -> Result<u64> {
        self.current.epoch += 1;
        self.write_config()?;
        Ok(self.current.epoch)
    }

    /// Turns admission of new sources on second sighting on or off.
    pub fn set_admit_on_second(&mut self, on: bool) -> Result<()> {
        self.set_flag(CONFIG_ADMIT_ON_SECOND, on)
    }

    /// Turns per-destination SYN tracking on or off.
    pub fn set_track_dests(&mut self, on: bool) -> Result<()> {
        self.set_flag(CONFIG_TRACK_DESTS, on)
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

    /// Reads every map.
    pub fn read(&mut self) -> Result<Snapshot> {
        let mut snap = self.read_globals()?;
        snap.sources = read_hash(self.sources.map().fd().as_fd(), self.src_capacity as usize)
            .context("cannot read the SOURCES map")?;
        self.rebuild_known(&snap.sources)?;
        snap.dests = read_hash(self.dests.map().fd().as_fd(), self.dst_capacity as usize)
            .context("cannot read the DESTS map")?;
        snap.maps_read = true;
        Ok(snap)
    }

    /// Rewrites the kernel's known-sources filter from the entries just read, dropping the
    /// bits of evicted sources (see [`KnownSources`]).
    fn rebuild_known(&mut self, sources: &[(AddrKey, SrcState)]) -> Result<()> {
        let mut filter = Box::new(KnownSources::EMPTY);
        for (key, _) in sources {
            filter.insert(&key.addr);
        }
        self.known
            .set(0, filter, 0)
            .context("cannot write the KNOWN map")
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
            epoch: self.current.epoch,
            maps_read: false,
            sources: Vec::new(),
            dests: Vec::new(),
            globals,
            src_capacity: self.src_capacity,
            dst_capacity: self.dst_capacity,
        })
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

const BPF_MAP_LOOKUP_BATCH: libc::c_long = 24;

/// `bpf_attr` for the `BPF_MAP_*_BATCH` commands.
#[repr(C)]
#[derive(Default)]
struct BatchAttr {
    in_batch: u64,
    out_batch: u64,
    keys: u64,
    values: u64,
    count: u32,
    map_fd: u32,
    elem_flags: u64,
    flags: u64,
}

/// Reads a whole hash map with `BPF_MAP_LOOKUP_BATCH` (one syscall per few thousand
/// entries instead of two per entry).
pub fn read_hash<K: Pod, V: Pod>(fd: BorrowedFd<'_>, capacity: usize) -> io::Result<Vec<(K, V)>> {
    let chunk = capacity.clamp(16, 256);
    let mut out = Vec::new();
    let mut keys: Vec<K> = Vec::with_capacity(chunk);
    let mut values: Vec<V> = Vec::with_capacity(chunk);
    let mut token_in = [0u8; 8];
    let mut token_out = [0u8; 8];
    let mut first = true;
    loop {
        let mut attr = BatchAttr {
            in_batch: if first {
                0
            } else {
                token_in.as_mut_ptr() as u64
            },
            out_batch: token_out.as_mut_ptr() as u64,
            keys: keys.as_mut_ptr() as u64,
            values: values.as_mut_ptr() as u64,
            count: chunk as u32,
            map_fd: fd.as_raw_fd() as u32,
            ..Default::default()
        };
        // SAFETY: the kernel writes at most `count` keys and values into buffers of that
        // capacity, and 4 bytes of batch token into `token_out`.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                BPF_MAP_LOOKUP_BATCH,
                &mut attr as *mut BatchAttr,
                size_of::<BatchAttr>(),
            )
        };
        let err = (rc < 0).then(io::Error::last_os_error);
        let n = (attr.count as usize).min(chunk);
        if err
            .as_ref()
            .is_none_or(|e| e.raw_os_error() == Some(libc::ENOENT))
        {
            // SAFETY: the kernel initialised the first `n` elements.
            unsafe {
                keys.set_len(n);
                values.set_len(n);
            }
            out.extend(keys.drain(..).zip(values.drain(..)));
        }
        match err {
            None => {}
            Some(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(out),
            Some(e) => return Err(e),
        }
        token_in = token_out;
        first = false;
    }
}
