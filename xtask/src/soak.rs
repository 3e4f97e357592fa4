//! `cargo xtask soak`: the bounded soak test (tests/tests/soak.rs), which `cargo xtask test`
//! does not run.

use anyhow::{Result, bail};

use crate::{
    bootstrap,
    util::{self, cargo, cmd},
};

/// Options of `cargo xtask soak`.
#[derive(clap::Args)]
pub struct Options {
    /// Minutes of sustained traffic.
    #[arg(long, default_value_t = 10)]
    minutes: u64,
}

/// Entry point of `cargo xtask soak`.
pub fn main(opts: &Options) -> Result<()> {
    bootstrap::ensure(bootstrap::Needs::Test)?;
    if !util::is_root() {
        bail!("the soak test creates network namespaces and loads eBPF programs: run as root");
    }
    util::build_agent(false)?;
    util::run(
        cmd(cargo())
            .env("PICKET_BIN", util::picket_bin())
            .env("PICKET_SOAK_SECS", (opts.minutes * 60).to_string())
            .args([
                "test",
                "--package",
                "tests",
                "--test",
                "soak",
                "--",
                "--ignored",
                "--nocapture",
            ]),
    )
}
