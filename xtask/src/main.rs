//! `cargo xtask`: developer tasks for Picket.
//!
//! Every task that compiles anything bootstraps first, because `agent`'s build script
//! compiles the eBPF object and that needs `bpf-linker` and nightly `rust-src`.

mod analyzebench;
mod bench;
mod bootstrap;
mod build;
mod corpus;
mod fuzz;
mod image;
mod install;
mod livebench;
mod run;
mod soak;
mod test;
mod util;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Developer tasks for Picket.
#[derive(Parser)]
#[command(name = "cargo xtask", bin_name = "cargo xtask", about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// The available tasks.
#[derive(Subcommand)]
enum Command {
    /// Install whatever the build and the tests need (idempotent).
    Bootstrap(bootstrap::Options),
    /// Bootstrap, then build the `picket` binary.
    Build(build::Options),
    /// Bootstrap, build release, and exec `picket` on the default-route interface.
    Run(run::Options),
    /// Bootstrap, then fmt check, clippy, unit tests and privileged end-to-end tests.
    Test(test::Options),
    /// Bootstrap, build release, and run `picket bench` with BPF stats off.
    Bench(bench::Options),
    /// Run the cargo-fuzz targets, seeded from ../shared/pcaps.
    Fuzz(fuzz::Options),
    /// Run the bounded soak test (sustained traffic in network namespaces).
    Soak(soak::Options),
    /// Build a static (musl) `picket` and the FROM-scratch image of deploy/Dockerfile.
    Image(image::Options),
    /// Install the release `picket`, its systemd unit and the default configuration.
    Install(install::Options),
    /// Generate the labelled detection corpus, check its counts, run `picket analyze` on it
    /// and print recall and false alarms.
    Corpus(corpus::Options),
}

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Command::Bootstrap(opts) => bootstrap::main(&opts),
        Command::Build(opts) => build::main(&opts),
        Command::Run(opts) => run::main(&opts),
        Command::Test(opts) => test::main(&opts),
        Command::Bench(opts) => bench::main(&opts),
        Command::Fuzz(opts) => fuzz::main(&opts),
        Command::Soak(opts) => soak::main(&opts),
        Command::Image(opts) => image::main(&opts),
        Command::Install(opts) => install::main(&opts),
        Command::Corpus(opts) => corpus::main(&opts),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // One line with the whole context chain; no backtrace even with RUST_BACKTRACE set.
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
