//! End-to-end tests of Picket in network namespaces (see `tests/`), and the one harness they
//! share.
//!
//! A test builds a private [`Lab`]: an attacker and a victim network namespace joined by a
//! veth pair (IPv4 /24 and IPv6 /64 addresses assigned inside them only), runs `picket`
//! inside the victim namespace on its end of the pair, and reads picket's JSON lines.
//! Every resource is held by a guard whose `Drop` cleans it up even when a test panics:
//! processes ([`Proc`], [`Picket`]) get SIGTERM, then SIGKILL; namespaces ([`Netns`]) end what
//! still runs in them and are deleted (which deletes their veths and every program attached
//! to them); temporary directories ([`temp_dir`]) are removed.
//!
//! Traffic must only ever flow between the addresses of one lab, inside its namespaces.
//!
//! The modules, one job each:
//! - [`env`]: preconditions (root, tools) and where things are (picket, the workspace, the
//!   shared captures, temporary directories);
//! - [`process`]: running commands, and the background-process guard [`Proc`];
//! - [`netns`]: the namespace guard [`Netns`] and the [`VethPair`] between two of them;
//! - [`lab`]: the two-namespace [`Lab`] and what it can tell about attached BPF programs;
//! - [`picket`]: a running picket whose JSON lines are read as they come ([`Picket`]);
//! - [`http`]: HTTP requests made from inside a namespace;
//! - [`alerting`]: a real Alertmanager and the webhook receiver it notifies;
//! - [`deploy`]: reading `deploy/` (Prometheus rules, metric names).

pub mod alerting;
pub mod deploy;
pub mod env;
pub mod http;
pub mod lab;
pub mod netns;
pub mod picket;
pub mod process;

use std::time::Duration;

pub use alerting::{ALERTMANAGER, Alerting};
pub use deploy::{metric_names, rules_file_of_prometheus_rule};
pub use env::{
    picket_bin, require_root, require_tools, shared_pcaps, temp_dir, unique_base, workspace_root,
};
pub use http::{Response, http_get};
pub use lab::{BpfLink, Lab, bpf_links_of, bpf_object_exists, syn_scan};
pub use netns::{Netns, VethPair};
pub use picket::{Line, Picket, alert_lines, is_start, ms, str_at};
pub use process::{
    Finished, KILL_GRACE, Proc, output, run_ok, signal, terminate, wait_timeout, wait_until,
};

/// The maximum time from the start of attack traffic to picket's alert line.
pub const DETECTION_DEADLINE: Duration = Duration::from_secs(5);

/// picket flags that make an episode end within about three seconds of the attack's end
/// (short window, end_after and polls), for tests that wait for ends.
pub const QUICK_EPISODES: [&str; 6] = [
    "--window",
    "2s",
    "--end-after",
    "1s",
    "--poll-interval",
    "500ms",
];

/// The interpreter used by traffic helpers (standard library only).
pub const PYTHON: &str = "/usr/bin/python3";
