//! `cargo xtask build`: bootstrap, then build the `picket` binary.

use anyhow::Result;

use crate::{bootstrap, util};

/// Options of `cargo xtask build`.
#[derive(clap::Args)]
pub struct Options {
    /// Build the dev profile (target/debug/picket) instead of release.
    #[arg(long)]
    debug: bool,
}

/// Entry point of `cargo xtask build`.
pub fn main(opts: &Options) -> Result<()> {
    bootstrap::ensure(bootstrap::Needs::Build)?;
    util::build_agent(opts.debug)
}
