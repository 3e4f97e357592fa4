//! Picket's daemon side: load and attach the BPF programs, read their maps, run the detection
//! pipeline (crate `picket-detect`) on them, and report; plus the tools that need the BPF
//! object (`picket bench`, kernel parity, `picket analyze --kernel`).

pub mod afpacket;
pub mod alertmanager;
#[cfg(feature = "analyze")]
pub mod analyze_cmd;
#[cfg(feature = "analyze")]
pub mod analyze_live;
pub mod bench;
pub mod block;
#[cfg(feature = "analyze")]
pub mod capture_filter;
pub mod cli;
pub mod config;
pub mod evidence;
pub mod hook_choice;
#[cfg(feature = "analyze")]
pub mod kernel_check;
pub mod live;
pub mod loader;
pub mod logging;
pub mod maps;
pub mod metrics;
pub mod output;
pub mod parity;
pub mod parse;
pub mod ring_state;
pub mod slot_tables;
pub mod system;
pub mod webconfig;
