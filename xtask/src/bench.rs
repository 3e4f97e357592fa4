//! `cargo xtask bench`: build release and run `picket bench` under stable conditions, then
//! the live throughput measurement ([`crate::livebench`]) and the offline analysis
//! throughput comparison ([`crate::analyzebench`]).
//!
//! `kernel.bpf_stats_enabled` is forced to 0 for the run (it adds per-packet accounting
//! to every BPF program) and restored afterwards; the run is pinned to CPU 1 with `taskset`
//! when available.

use std::{fs, path::Path};

use anyhow::{Context as _, Result};

use crate::{bootstrap, util};

/// The sysctl that turns on run-time accounting of every BPF program.
const BPF_STATS: &str = "/proc/sys/kernel/bpf_stats_enabled";

/// The CPU the benchmark is pinned to.
const BENCH_CPU: &str = "1";

/// Options of `cargo xtask bench`.
#[derive(clap::Args)]
pub struct Options {
    /// Skip the live veth throughput and agent CPU measurement.
    #[arg(long)]
    no_live: bool,
    /// Skip the offline `picket analyze` throughput comparison with dpkt and tshark.
    #[arg(long)]
    no_analyze: bool,
    /// Run only the offline `picket analyze` comparison (no kernel or live cases).
    #[arg(long, conflicts_with_all = ["no_analyze", "no_live"])]
    analyze_only: bool,
    /// Arguments for `picket bench` (put them after `--`).
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "BENCH_ARGS"
    )]
    args: Vec<String>,
}

/// Entry point of `cargo xtask bench`.
pub fn main(opts: &Options) -> Result<()> {
    bootstrap::ensure(bootstrap::Needs::Test)?;
    util::build_agent(false)?;

    let picket = util::picket_bin();
    let mut command = match util::find_program("taskset") {
        Some(taskset) => {
            let mut command = util::cmd(taskset);
            command.args(["-c", BENCH_CPU]).arg(&picket);
            command
        }
        None => {
            println!("note: taskset not found; not pinning the benchmark to a CPU");
            util::cmd(&picket)
        }
    };
    command.arg("bench").args(&opts.args);

    // Ctrl-C reaches picket through the terminal's process group; xtask stays alive
    // so the guard below can put the sysctl back.
    ctrlc::set_handler(|| {}).context("could not install the Ctrl-C handler")?;
    let _stats = BpfStatsOff::new(Path::new(BPF_STATS))?;
    if opts.analyze_only {
        return crate::analyzebench::run(&picket, BENCH_CPU);
    }
    util::run(&mut command)?;
    if !opts.no_live {
        crate::livebench::run(&picket)?;
    }
    if !opts.no_analyze {
        crate::analyzebench::run(&picket, BENCH_CPU)?;
    }
    Ok(())
}

/// Keeps `kernel.bpf_stats_enabled` at 0 while alive, restoring 1 on drop if it was 1.
struct BpfStatsOff<'a> {
    path: &'a Path,
    restore: bool,
}

impl<'a> BpfStatsOff<'a> {
    fn new(path: &'a Path) -> Result<Self> {
        let current = fs::read_to_string(path)
            .with_context(|| format!("could not read {}", path.display()))?;
        let restore = current.trim() != "0";
        if restore {
            println!("setting {} to 0 for the benchmark", path.display());
            fs::write(path, "0")
                .with_context(|| format!("could not write {} (run as root)", path.display()))?;
        }
        Ok(Self { path, restore })
    }
}

impl Drop for BpfStatsOff<'_> {
    fn drop(&mut self) {
        if self.restore {
            match fs::write(self.path, "1") {
                Ok(()) => println!("restored {} to 1", self.path.display()),
                Err(error) => eprintln!("could not restore {} to 1: {error}", self.path.display()),
            }
        }
    }
}
