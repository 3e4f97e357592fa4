//! One reading of Picket's state, whether from the kernel maps or from `picket analyze`'s
//! host-side copy of them.

use crate::HashMap;

use agent_common::{
    slots::{DstSlot, SrcSlot},
    state::{AddrKey, Globals, SrcState},
};

/// Everything the detectors look at, read at one instant.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// Time of the reading on the clock the state's `*_seen_ns` fields use (kernel
    /// monotonic time live, packet time offline), in nanoseconds.
    pub mono_ns: u64,
    /// Wall-clock time of the reading, nanoseconds since the Unix epoch.
    pub wall_ns: u64,
    /// True when `sources` was read; false for a reading of the global counters and the
    /// tick only (see `Detector::needs_maps`), where it is empty.
    pub maps_read: bool,
    /// Per-source scan entries.
    pub sources: Vec<(AddrKey, SrcState)>,
    /// Global counters summed over CPUs: `[ingress, egress]`.
    pub globals: [Globals; 2],
    /// Capacity of the per-source map.
    pub src_capacity: u32,
    /// What every address sent and received in the tick that has just ended.
    pub tick: TickCounts,
    /// Probes whose outcome settled with this reading (empty until the outcome join
    /// fills it).
    pub probes: Vec<crate::probes::ProbeEvent>,
}

/// The slot tables' counts of one completed tick, summed over CPUs by address.
#[derive(Clone, Debug, Default)]
pub struct TickCounts {
    /// The tick.
    pub tick: u32,
    /// Its length in seconds (0 for the first reading, which has no complete tick).
    pub secs: f64,
    /// What each address sent (one entry per address).
    pub src: Vec<SrcSlot>,
    /// What each address received (one entry per address).
    pub dst: Vec<DstSlot>,
    /// Slots of the sender table per bank, over all CPUs.
    pub src_slots: u32,
    /// Slots of the receiver table per bank, over all CPUs.
    pub dst_slots: u32,
}

impl TickCounts {
    /// Sums slots of `tick` by address; slots of any other tick are stale and left out.
    pub fn sum<'a>(
        tick: u32,
        src: impl IntoIterator<Item = &'a SrcSlot>,
        dst: impl IntoIterator<Item = &'a DstSlot>,
    ) -> (Vec<SrcSlot>, Vec<DstSlot>) {
        fn by_addr<'a, T: Copy + 'a>(
            tick: u32,
            slots: impl IntoIterator<Item = &'a T>,
            head: fn(&T) -> (u32, [u64; 2]),
            merge: fn(&mut T, &T),
        ) -> Vec<T> {
            let mut out: HashMap<[u64; 2], T> = HashMap::default();
            for s in slots {
                let (t, addr) = head(s);
                if t != tick {
                    continue;
                }
                out.entry(addr)
                    .and_modify(|acc| merge(acc, s))
                    .or_insert(*s);
            }
            out.into_values().collect()
        }
        (
            by_addr(tick, src, |s| (s.head.tick, s.head.addr), SrcSlot::merge),
            by_addr(tick, dst, |s| (s.head.tick, s.head.addr), DstSlot::merge),
        )
    }
}
