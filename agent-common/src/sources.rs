//! The per-source table ([`MAP_SOURCES`]): for each source that probes, what its alerts name
//! ([`SrcState`]).
//!
//! It is a shared `BPF_F_MMAPABLE` array of 2-way sets, laid out like the slot tables
//! (`crate::slots`) but global and without banks, rather than a kernel LRU hash map:
//! * the agent reads it as memory, with no system call and no kernel copy per entry;
//! * an entry costs its [`SrcEntry`] bytes and nothing else (no hash element header, bucket
//!   or LRU list node);
//! * a lookup or an insert touches one set, with no lock and no LRU list, so a flood of new
//!   sources costs one set write per admitted probe.
//!
//! A new source takes a free way, else the way last probed in the older tick (LRU at tick
//! granularity; way 1 on a tie). The tick is the agent's, so the host model evicts exactly
//! as the kernel does. Concurrent inserts into one set on two CPUs may at worst mix two
//! sources' latest destinations; the probe counts are atomic.

use crate::{
    Summary,
    slots::slot_hash,
    state::{Adder, Globals, SrcState},
};

/// Salt of the per-source table's hash, so that its sets are independent of the slot
/// tables' (which hash the same addresses with the same seed).
const SOURCES_SALT: u32 = 0x51c3_7a05;

/// Entries of a per-source table asked to hold `capacity` sources: the power of two at or
/// above it (at least one set).
pub const fn entries_for(capacity: u32) -> u32 {
    if capacity <= 2 {
        2
    } else {
        capacity.next_power_of_two()
    }
}

/// One way of the per-source table: a source (its address as [`Summary::src_words`]) and
/// its state. A way is free while its state counts no probe.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SrcEntry {
    /// The source address as two native-endian words.
    pub key: [u64; 2],
    /// Its state.
    pub state: SrcState,
}

const _: () = assert!(core::mem::size_of::<SrcEntry>() == 16 + core::mem::size_of::<SrcState>());

impl SrcEntry {
    /// A free way.
    pub const EMPTY: SrcEntry = SrcEntry {
        key: [0; 2],
        state: SrcState::ZERO,
    };

    /// Whether the way holds a source (every entry is created by a probe).
    #[inline(always)]
    pub fn is_used(&self) -> bool {
        self.state.probes != 0
    }

    #[inline(always)]
    fn holds(&self, addr: &[u64; 2]) -> bool {
        self.is_used() && self.key == *addr
    }
}

impl Default for SrcEntry {
    fn default() -> Self {
        Self::EMPTY
    }
}

#[cfg(feature = "std")]
impl SrcEntry {
    /// The source address as a map key.
    pub fn addr(&self) -> crate::state::AddrKey {
        crate::state::AddrKey {
            addr: crate::slots::words_to_bytes(&self.key),
        }
    }

    /// The source and its state, if the way holds one: what a reading of the table keeps.
    pub fn tracked(&self) -> Option<(crate::state::AddrKey, SrcState)> {
        self.is_used().then(|| (self.addr(), self.state))
    }
}

/// The per-source table as the BPF programs and the host model hold it.
pub trait SourceTable {
    /// The two ways of the set whose way 0 is at `i` (even), if in the table.
    fn ways(&mut self, i: u32) -> Option<[&mut SrcEntry; 2]>;
}

impl SourceTable for [SrcEntry] {
    #[inline(always)]
    fn ways(&mut self, i: u32) -> Option<[&mut SrcEntry; 2]> {
        let i = i as usize;
        let [a, b] = <&mut [SrcEntry; 2]>::try_from(self.get_mut(i..i.checked_add(2)?)?).ok()?;
        Some([a, b])
    }
}

/// Where the table is and how it is hashed: the agent's `CONFIG` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SourceGeometry {
    /// Current tick (`crate::slots`).
    pub tick: u32,
    /// Hash seed.
    pub seed: u32,
    /// Entries in the table (a power of two, at least 2).
    pub entries: u32,
}

impl SourceGeometry {
    /// Index of way 0 of `addr`'s set.
    #[inline(always)]
    pub fn set(&self, addr: &[u64; 2]) -> u32 {
        slot_hash(addr, self.seed ^ SOURCES_SALT) & (self.entries.wrapping_sub(1) & !1)
    }
}

/// What [`observe_probe`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tracked {
    /// The source had an entry.
    Updated,
    /// The source got an entry (a free way, or an older source's).
    Inserted,
    /// The set is outside the table (a geometry the table does not have).
    Unreachable,
    /// The packet is not a probe: nothing was done.
    NotAProbe,
}

impl Tracked {
    /// Counts what was done in the global counters (the kernel's and the host model's).
    #[inline(always)]
    pub fn count_in(self, g: &mut Globals) {
        match self {
            Tracked::Inserted => g.src_inserts += 1,
            Tracked::Unreachable => g.src_failures += 1,
            Tracked::Updated | Tracked::NotAProbe => {}
        }
    }
}

/// Whether `addr` has an entry.
#[inline(always)]
pub fn is_tracked<T: SourceTable + ?Sized>(t: &mut T, g: SourceGeometry, addr: &[u64; 2]) -> bool {
    match t.ways(g.set(addr)) {
        Some([w0, w1]) => w0.holds(addr) || w1.holds(addr),
        None => false,
    }
}

/// Accounts a probe ([`Summary::is_probe`]) from `s.src` at `now_ns`, creating the source's
/// entry if it has none.
#[inline(always)]
pub fn observe_probe<T: SourceTable + ?Sized, A: Adder>(
    t: &mut T,
    g: SourceGeometry,
    s: &Summary,
    now_ns: u64,
) -> Tracked {
    if !s.is_probe() {
        return Tracked::NotAProbe;
    }
    let addr = s.src_words();
    let Some([w0, w1]) = t.ways(g.set(&addr)) else {
        return Tracked::Unreachable;
    };
    let (w, tracked) = if w0.holds(&addr) {
        (w0, Tracked::Updated)
    } else if w1.holds(&addr) {
        (w1, Tracked::Updated)
    } else {
        let victim = if !w0.is_used() {
            w0
        } else if !w1.is_used() {
            w1
        } else if g.tick.wrapping_sub(w0.state.last_tick) > g.tick.wrapping_sub(w1.state.last_tick)
        {
            w0
        } else {
            w1
        };
        victim.key = addr;
        victim.state.init(now_ns);
        (victim, Tracked::Inserted)
    };
    w.state.last_tick = g.tick;
    w.state.observe::<A>(s, now_ns);
    tracked
}

#[cfg(feature = "aya")]
mod pod {
    // SAFETY: a #[repr(C)] struct of integers with no implicit padding (size assert above).
    unsafe impl aya::Pod for super::SrcEntry {}
}
