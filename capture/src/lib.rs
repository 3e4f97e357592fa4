//! Capture files for Picket: [`reader`] turns pcap and pcapng bytes into frames with their
//! link type and timestamp; [`link`] finds the network header of each supported link type
//! and hands the packet to `agent_common`'s classifier; [`writer`] writes classic pcap files.
//!
//! A crate of its own so that `cargo fuzz` (target `capture`) can drive exactly the code
//! `picket analyze` runs on untrusted files, without the agent's eBPF build.

pub mod link;
pub mod reader;
pub mod writer;
