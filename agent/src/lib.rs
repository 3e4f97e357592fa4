//! Picket's user side: load and attach the BPF programs, read their maps, detect scans,
//! sweeps and floods, and report them.

pub mod admission;
pub mod alerts;
pub mod analyze;
pub mod bench;
pub mod cli;
pub mod config;
pub mod detect;
pub mod evidence;
pub mod frames;
pub mod live;
pub mod loader;
pub mod maps;
pub mod metrics;
pub mod model;
pub mod output;
pub mod parity;
pub mod snapshot;
pub mod system;
