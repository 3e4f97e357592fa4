//! One reading of Picket's state, whether from the kernel maps or from `picket analyze`'s
//! host-side copy of them.

use agent_common::state::{AddrKey, DstState, Globals, SrcState};

/// Everything the detectors look at, read at one instant.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// Time of the reading on the clock the state's `*_seen_ns` fields use (kernel
    /// monotonic time live, packet time offline), in nanoseconds.
    pub mono_ns: u64,
    /// Wall-clock time of the reading, nanoseconds since the Unix epoch.
    pub wall_ns: u64,
    /// Current window.
    pub epoch: u64,
    /// True when `sources` and `dests` were read; false for a reading of the global
    /// counters only (see `Detector::needs_maps`), where they are empty.
    pub maps_read: bool,
    /// Per-source entries.
    pub sources: Vec<(AddrKey, SrcState)>,
    /// Per-destination entries.
    pub dests: Vec<(AddrKey, DstState)>,
    /// Global counters summed over CPUs: `[ingress, egress]`.
    pub globals: [Globals; 2],
    /// Capacity of the per-source map.
    pub src_capacity: u32,
    /// Capacity of the per-destination map.
    pub dst_capacity: u32,
}

/// Whether an entry read now is the one an earlier reading saw, so that the difference of
/// their totals is what arrived in between. An entry evicted and created again has a new
/// `first_seen_ns`: then everything it holds is new.
pub fn same_entry(earlier_first_seen_ns: u64, now: &SrcState) -> bool {
    earlier_first_seen_ns == now.first_seen_ns
}
