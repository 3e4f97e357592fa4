//! Picket's detection pipeline, the same for the live agent and for `picket analyze`.
//!
//! * [`snapshot`]: one reading of the kernel state (or of its host model).
//! * [`model`]: [`model::HostMaps`], the host model of the kernel maps, fed packet by packet.
//! * [`probes`]: settled probe outcomes, the input of the scan rules.
//! * [`outcomes`]: the join of conversation records into settled probe outcomes.
//! * [`windows`]: the failed-probe sets per source over several time scales.
//! * [`detector`]: rules and thresholds; successive snapshots in, findings out.
//! * [`many_to_one`]: rules over the probes of many sources (distributed scans, IPv6 /64s).
//! * [`allowlist`]: `allow`, `ignore_scanners`, `ignore_scanned`: probes and findings dropped.
//! * [`folding`]: one event, one episode: decoys and storms of sources folded per target.
//! * [`episodes`]: findings grouped into alert episodes (start, update, end), rate-capped.
//! * [`admission`]: when new sources are admitted at their second packet (spoofed floods).
//! * [`pipeline`]: the per-poll step that ties the above together.
//! * [`replay`]: the pipeline driven by packet time over a capture.
//! * [`blocking`]: the `--block` policy: which episodes block their source, exclusions,
//!   expiry and eviction.
//! * [`document`]: alert, block and summary documents (JSON and text).

/// The hash map of the per-packet and per-reading tables: foldhash instead of SipHash, which
/// took a tenth of `picket analyze`'s replay. Keys come from packets, so the seed is random per
/// process; what leaves a table is sorted. (foldhash does not claim to resist an adversary
/// who studies the running process to reverse its seed; the agent's tables are read by
/// nothing an attacker can time, as their reading runs apart from the packet path.)
pub type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
/// The set of the same tables.
pub type HashSet<K> = std::collections::HashSet<K, foldhash::fast::RandomState>;

pub mod ack_sweeps;
pub mod admission;
pub mod allowlist;
pub mod blocking;
pub mod detector;
pub mod document;
pub mod episodes;
pub mod folding;
pub mod many_to_one;
pub mod model;
pub mod outcomes;
pub mod pipeline;
pub mod probes;
pub mod replay;
pub mod snapshot;
pub mod windows;
