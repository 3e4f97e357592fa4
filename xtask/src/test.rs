//! `cargo xtask test`: what CI runs (`.ci/run`).
//!
//! Order: bootstrap, `cargo fmt --check`, clippy (host crates, then the BPF crate on its
//! target), host unit tests, a short fuzz run, the labelled detection corpus (`cargo xtask
//! corpus --assert`), then the privileged end-to-end tests of
//! package `tests`. Those are built like everything else, as the invoking user (`cargo test
//! -p tests --no-run`); then each test binary runs on its own, one test at a time (they share
//! kernel state), as root: directly when this process is root, else through `sudo -E`. Fails
//! fast.

use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use anyhow::{Context as _, Result, bail};
use serde_json::Value;

use crate::{
    bootstrap,
    util::{self, cargo, cmd, find_program, workspace_root},
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

    // The labelled detection corpus: every attack detected, every benign workload quiet.
    crate::corpus::main(&crate::corpus::Options::asserting())?;

    // The end-to-end tests load eBPF programs and create network namespaces.
    let sudo = if util::is_root() {
        None
    } else if let Some(sudo) = find_program("sudo") {
        Some(sudo)
    } else {
        bail!(
            "the end-to-end tests (package `tests`) need root, and there is no sudo: run `cargo xtask test` as root"
        );
    };
    for exe in e2e_binaries()? {
        let mut run = match &sudo {
            Some(sudo) => {
                let mut c = cmd(sudo);
                c.arg("-E").arg(&exe);
                c
            }
            None => cmd(&exe),
        };
        // As `cargo test` runs them: from the package's directory.
        run.current_dir(workspace_root().join("tests"))
            .env("PICKET_BIN", &picket)
            .arg("--test-threads=1");
        total.run(&mut run)?;
    }
    // One closing line for the whole run (the last cargo line is often a doc-test run with
    // nothing in it).
    println!(
        "total: {} passed, {} failed, {} skipped",
        total.passed, total.failed, total.ignored
    );
    Ok(())
}

/// Builds the test binaries of package `tests` and returns their paths: the library's first,
/// then the integration tests by name.
fn e2e_binaries() -> Result<Vec<PathBuf>> {
    let mut build = cmd(cargo());
    build.args([
        "test",
        "--package",
        "tests",
        "--no-run",
        "--message-format=json-render-diagnostics",
    ]);
    let shown = util::display(&build);
    println!("$ {shown}");
    let out = build
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("could not start `{shown}`"))?;
    if !out.status.success() {
        bail!("`{shown}` failed ({})", out.status);
    }
    let mut found = test_executables(&String::from_utf8_lossy(&out.stdout));
    found.sort_by(|a, b| (!a.0, &a.1).cmp(&(!b.0, &b.1)));
    if found.is_empty() {
        bail!("`{shown}` reported no test binary");
    }
    Ok(found.into_iter().map(|(_, _, exe)| exe).collect())
}

/// The test executables in cargo's JSON messages, as (is the library's, target name, path).
fn test_executables(json_lines: &str) -> Vec<(bool, String, PathBuf)> {
    json_lines
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["profile"]["test"] == true)
        .filter_map(|m| {
            let exe = Path::new(m["executable"].as_str()?).to_path_buf();
            let name = m["target"]["name"].as_str()?.to_string();
            let lib = m["target"]["kind"]
                .as_array()
                .is_some_and(|k| k.iter().any(|k| k == "lib"));
            Some((lib, name, exe))
        })
        .collect()
}

/// Test counts summed over every `test result:` line of the test runs.
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
    use std::path::PathBuf;

    use super::{Totals, test_executables};

    #[test]
    fn test_executables_are_read_from_cargo_messages() {
        let lines = [
            r#"{"reason":"compiler-artifact","target":{"kind":["lib"],"name":"tests"},"profile":{"test":false},"executable":null}"#,
            r#"{"reason":"compiler-artifact","target":{"kind":["test"],"name":"e2e"},"profile":{"test":true},"executable":"/t/debug/deps/e2e-1"}"#,
            r#"{"reason":"compiler-message","message":{}}"#,
            r#"{"reason":"compiler-artifact","target":{"kind":["lib"],"name":"tests"},"profile":{"test":true},"executable":"/t/debug/deps/tests-2"}"#,
            r#"{"reason":"build-finished","success":true}"#,
        ]
        .join("\n");
        assert_eq!(
            test_executables(&lines),
            [
                (
                    false,
                    "e2e".to_string(),
                    PathBuf::from("/t/debug/deps/e2e-1")
                ),
                (
                    true,
                    "tests".to_string(),
                    PathBuf::from("/t/debug/deps/tests-2")
                ),
            ]
        );
    }

    #[test]
    fn totals_add_up_cargo_result_lines() {
        let mut t = Totals::default();
        t.add("test result: ok. 22 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; finished in 1.0s");
        t.add("test result: FAILED. 3 passed; 2 failed; 0 ignored; 0 measured; 0 filtered out");
        t.add("running 3 tests");
        assert_eq!((t.passed, t.failed, t.ignored), (25, 2, 1));
    }
}
