//! Picket's shared core, compiled both into the BPF object and into the host binary.
//!
//! * [`packet`]: how bytes are read — the only part that differs between kernel and host.
//! * [`classify`]: the one L2–L4 packet classifier.
//! * [`state`]: map keys and values and the per-packet state updates applied to them.
//! * [`conv`]: the shared conversation table: a probe's conversation, once per tick.
//! * [`slots`]: the per-CPU first stage: what each address sent and received per tick.
//! * [`sources`]: the shared per-source table of the sources that probe.
//! * [`tunnel`]: one level of decapsulation (VXLAN, Geneve, GRE, IP-in-IP).
//! * [`sketch`]: the hashes and the distinct-count estimate used inside the state.
#![no_std]
#![deny(missing_docs)]

#[cfg(feature = "std")]
extern crate std;

pub mod classify;
pub mod conv;
pub mod packet;
pub mod sketch;
pub mod slots;
pub mod sources;
pub mod state;
pub mod tunnel;

pub use classify::{
    ParseError, Summary, classify_eth, classify_eth_into, classify_ip, classify_ip_into,
};
pub use packet::Packet;
