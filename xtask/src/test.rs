//! `cargo xtask test`: what CI runs (`.ci/run`).
//!
//! Order: bootstrap, `cargo fmt --check`, clippy (host crates, then the BPF crate on its
//! target), host unit tests, then the privileged
//! end-to-end tests of package `tests` (one thread: they share kernel state). Fails fast.

use anyhow::{Result, bail};

use crate::{
    bootstrap,
    util::{self, cargo, cmd},
};

/// Seconds each fuzz target runs in `cargo xtask test`.
const FUZZ_SECONDS: u64 = 30;

/// Options of `cargo xtask test`.
#[derive(clap::Args)]
pub struct Options {
    /// Skip `cargo fmt --check` and clippy.
    #[arg(long)]
    quick: bool,
}

/// Entry point of `cargo xtask test`.
pub fn main(opts: &Options) -> Result<()> {
    bootstrap::ensure(bootstrap::Needs::Test)?;

    if !opts.quick {
        util::run(cmd(cargo()).args(["fmt", "--all", "--", "--check"]))?;
        util::run(cmd(cargo()).args([
            "clippy",
            "--workspace",
            "--exclude",
            "agent-ebpf",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ]))?;
        // The BPF crate only builds for the BPF target, with the nightly toolchain.
        util::run(cmd("rustup").args([
            "run",
            "nightly",
            "cargo",
            "clippy",
            "--package",
            "agent-ebpf",
            "--release",
            "--target",
            "bpfel-unknown-none",
            "-Z",
            "build-std=core",
            "--bins",
            "--",
            "-D",
            "warnings",
        ]))?;
    }

    // The end-to-end tests drive the release binary found through PICKET_BIN.
    util::build_agent(false)?;
    let picket = util::picket_bin();

    util::run(cmd(cargo()).env("PICKET_BIN", &picket).args([
        "test",
        "--workspace",
        "--exclude",
        "agent-ebpf",
        "--exclude",
        "tests",
    ]))?;

    // Every CI run fuzzes each target briefly (`cargo xtask fuzz` runs longer).
    crate::fuzz::run(FUZZ_SECONDS, &[])?;

    if !util::is_root() {
        bail!(
            "the end-to-end tests (package `tests`) load eBPF programs and create network namespaces: run as root"
        );
    }
    util::run(cmd(cargo()).env("PICKET_BIN", &picket).args([
        "test",
        "--package",
        "tests",
        "--",
        "--test-threads=1",
    ]))
}
