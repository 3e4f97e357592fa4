//! `cargo xtask test`: what CI runs (`.ci/run`).
//!
//! Order: bootstrap, `cargo fmt --check`, clippy (host crates, then the BPF crate on its
//! target), host unit tests, then the privileged
//! end-to-end tests of package `tests` (one thread: they share kernel state). Fails fast.

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
};

use anyhow::{Context as _, Result, bail};

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

    let mut total = Totals::default();
    total.run(cmd(cargo()).env("PICKET_BIN", &picket).args([
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
    total.run(cmd(cargo()).env("PICKET_BIN", &picket).args([
        "test",
        "--package",
        "tests",
        "--",
        "--test-threads=1",
    ]))?;
    // One closing line for the whole run (the last cargo line is often a doc-test run with
    // nothing in it).
    println!(
        "total: {} passed, {} failed, {} skipped",
        total.passed, total.failed, total.ignored
    );
    Ok(())
}

/// Test counts summed over every `test result:` line of the cargo test runs.
#[derive(Default)]
struct Totals {
    passed: u64,
    failed: u64,
    ignored: u64,
}

impl Totals {
    /// Runs `command` like [`util::run`], forwarding its standard output line by line and
    /// adding up its `test result:` lines.
    fn run(&mut self, command: &mut Command) -> Result<()> {
        let shown = util::display(command);
        println!("$ {shown}");
        let mut child = command
            .stdout(Stdio::piped())
            .spawn()
            .with_context(|| format!("could not start `{shown}`"))?;
        let stdout = child.stdout.take().context("no stdout")?;
        for line in BufReader::new(stdout).lines() {
            let line = line?;
            println!("{line}");
            self.add(&line);
        }
        let status = child.wait()?;
        if !status.success() {
            bail!("`{shown}` failed ({status})");
        }
        Ok(())
    }

    /// Adds the counts of one `test result: ok. 3 passed; 0 failed; 1 ignored; …` line.
    fn add(&mut self, line: &str) {
        let Some(rest) = line.strip_prefix("test result: ") else {
            return;
        };
        for part in rest.split(';') {
            let mut words = part.split_whitespace().rev();
            let (Some(what), Some(n)) = (words.next(), words.next()) else {
                continue;
            };
            let Ok(n) = n.parse::<u64>() else { continue };
            match what {
                "passed" => self.passed += n,
                "failed" => self.failed += n,
                "ignored" => self.ignored += n,
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Totals;

    #[test]
    fn totals_add_up_cargo_result_lines() {
        let mut t = Totals::default();
        t.add("test result: ok. 22 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; finished in 1.0s");
        t.add("test result: FAILED. 3 passed; 2 failed; 0 ignored; 0 measured; 0 filtered out");
        t.add("running 3 tests");
        assert_eq!((t.passed, t.failed, t.ignored), (25, 2, 1));
    }
}
