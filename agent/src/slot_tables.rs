//! The kernel's tables (`SRC`, `DST`, `CONV`, `SOURCES`; see `agent_common::slots`,
//! `conv` and `sources`), mapped into the agent's memory: reading a completed bank, or the
//! whole per-source table, is a memory copy, with no system call per entry.

use std::{
    marker::PhantomData,
    os::fd::{AsFd, AsRawFd},
    ptr::NonNull,
};

use anyhow::{Context as _, Result, bail};
use aya::maps::{Map, MapData};

/// One `BPF_F_MMAPABLE` array of slots `T`, partitioned by CPU and bank (a shared table is
/// one partition).
pub struct SlotTable<T: aya::Pod> {
    /// Keeps the map (and so the mapping's file) alive.
    map: MapData,
    ptr: NonNull<T>,
    entries: usize,
    bytes: usize,
    /// Slots per CPU and bank.
    pub per_cpu: u32,
    /// Partitions (possible CPUs).
    pub cpus: u32,
    _slots: PhantomData<T>,
}

// SAFETY: the mapping is shared memory owned by this value; reads copy it out.
unsafe impl<T: aya::Pod> Send for SlotTable<T> {}

impl<T: aya::Pod> SlotTable<T> {
    /// Maps `map`, which has `per_cpu · 2 · cpus` entries of `T`.
    pub fn new(map: Map, name: &str, cpus: u32) -> Result<Self> {
        let Map::Array(map) = map else {
            bail!("map {name} is not an array");
        };
        let info = map.info().with_context(|| format!("map {name}"))?;
        let entries = info.max_entries() as usize;
        if info.value_size() as usize != size_of::<T>() {
            bail!(
                "map {name}: value size {} is not {} (agent and BPF object disagree)",
                info.value_size(),
                size_of::<T>()
            );
        }
        let parts = 2 * cpus as usize;
        if entries == 0 || !entries.is_multiple_of(parts) {
            bail!("map {name}: {entries} entries do not split into {parts} partitions");
        }
        let bytes = entries * size_of::<T>();
        let fd = map.fd().as_fd().as_raw_fd();
        // SAFETY: a read-only shared mapping of the map's value area, as the kernel offers
        // for BPF_F_MMAPABLE arrays; unmapped in Drop.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                bytes,
                libc::PROT_READ,
                libc::MAP_SHARED,
                fd,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error())
                .with_context(|| format!("cannot mmap map {name}"));
        }
        Ok(SlotTable {
            map,
            ptr: NonNull::new(ptr.cast()).context("mmap returned null")?,
            entries,
            bytes,
            per_cpu: (entries / parts) as u32,
            cpus,
            _slots: PhantomData,
        })
    }

    /// The map's file descriptor.
    pub fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.map.fd().as_fd()
    }

    /// Entries of the whole table.
    pub fn entries(&self) -> u32 {
        self.entries as u32
    }

    /// Copies of the entries that `keep` accepts, in table order (torn entries the kernel
    /// is writing come out as whatever bytes they hold, as for [`SlotTable::bank`]).
    pub fn filtered<U>(&self, keep: impl Fn(&T) -> Option<U>) -> Vec<U> {
        // SAFETY: the mapping holds `entries` values of T, which is Pod (any bytes are
        // valid); each is copied out with a volatile read, as the kernel may write it.
        (0..self.entries)
            .filter_map(|i| keep(&unsafe { self.ptr.as_ptr().add(i).read_volatile() }))
            .collect()
    }

    /// Slots per bank over all CPUs.
    pub fn slots(&self) -> u32 {
        self.per_cpu * self.cpus
    }

    /// Copies `len` entries from `start`.
    fn copy(&self, start: usize, len: usize) -> Vec<T> {
        let len = len.min(self.entries.saturating_sub(start));
        let mut out = Vec::with_capacity(len);
        // SAFETY: `start + len ≤ entries`, inside the mapping; T is Pod, so any bytes (even a
        // slot the kernel is writing, which the tick check then drops or the rules bound)
        // are a valid T.
        unsafe {
            std::ptr::copy_nonoverlapping(self.ptr.as_ptr().add(start), out.as_mut_ptr(), len);
            out.set_len(len);
        }
        out
    }

    /// The bank of `tick` on every CPU.
    pub fn bank(&self, tick: u32) -> Vec<T> {
        let per = self.per_cpu as usize;
        let bank = (tick & 1) as usize;
        (0..self.cpus as usize)
            .flat_map(|cpu| self.copy(cpu * 2 * per + bank * per, per))
            .collect()
    }

    /// Both banks of one CPU's partition (the parity check compares it with the host model).
    pub fn partition(&self, cpu: u32) -> Vec<T> {
        let per = self.per_cpu as usize;
        self.copy(cpu as usize * 2 * per, 2 * per)
    }
}

impl<T: aya::Pod> Drop for SlotTable<T> {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`, unmapped once.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.bytes) };
    }
}
