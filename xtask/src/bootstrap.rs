//! `cargo xtask bootstrap`: install what building and testing Picket needs, idempotently.
//!
//! Each step checks first and prints one line: `ok: …` when nothing is to be done,
//! `installing …` before it changes the machine.

use std::{
    io::Write as _,
    process::{Command, Stdio},
};

use anyhow::{Context as _, Result, bail};

use crate::util::{self, cargo, cmd, find_program, is_root};

/// Debian packages needed to build the eBPF object and run `picket`.
const BUILD_PACKAGES: &[&str] = &[
    "llvm-22-dev",
    "libpolly-22-dev",
    "libzstd-dev",
    "zlib1g-dev",
    "libxml2-dev",
    "bpftool",
    "iproute2",
    // `picket analyze --live -f FILTER`: the pcap crate compiles filters with libpcap.
    "libpcap-dev",
    // The static image: ring (TLS for --web-config and Alertmanager) compiles C for musl.
    "musl-tools",
];

/// Extra Debian packages used by the end-to-end tests (traffic generators and capture).
const TEST_PACKAGES: &[&str] = &[
    "nmap",
    "hping3",
    "tshark",
    "tcpdump",
    "netsniff-ng",
    "iputils-ping",
    "python3-dpkt",
    "python3-pip",
    // Metrics, deployment and container tests: a real Prometheus (and promtool), Docker
    // with its containerd and runc, manifest linting, the kubernetes-validate virtualenv,
    // `systemd-analyze verify` and `setpriv` for the systemd unit.
    "prometheus",
    // Alerting tests: a real Alertmanager that picket and Prometheus push to.
    "prometheus-alertmanager",
    // --web-config test: a self-signed certificate, and requests with a wrong password.
    "openssl",
    "curl",
    "docker.io",
    "yamllint",
    "python3-venv",
    "systemd",
    "util-linux",
    // HTTP load test: a real web server under a load generator (one connection per request).
    "lighttpd",
    "apache2-utils",
    // `picket analyze --html`: the interactive charts are checked in headless Chromium.
    "chromium",
    // `cargo xtask bench`: GNU time gives `picket analyze`'s peak resident memory.
    "time",
];

/// Python tool the manifest tests run, installed in [`test_venv`] from PyPI (it bundles the
/// Kubernetes JSON schemas, so validation itself works offline).
const KUBERNETES_VALIDATE: &str = "kubernetes-validate";

/// Python packages the detection corpus (`cargo xtask corpus`) needs in [`test_venv`]: scapy
/// writes the captures, dpkt recounts them independently. Pinned, so the captures stay
/// byte-for-byte reproducible.
/// NFStream is the flow-meter peer of `picket analyze` in `cargo xtask bench`.
const CORPUS_PACKAGES: &[&str] = &["scapy==2.8.0", "dpkt==1.9.8", "nfstream==6.6.0"];

/// Where Debian's `llvm-22-dev` lives; bpf-linker's build needs it as `LLVM_PREFIX`.
const LLVM_PREFIX: &str = "/usr/lib/llvm-22";

/// The only toolchain that builds the BPF object; it must already be installed.
const NIGHTLY: &str = "nightly";

/// Options of `cargo xtask bootstrap`.
#[derive(clap::Args)]
pub struct Options {
    /// Only what building and running needs; skip the end-to-end test tools.
    #[arg(long)]
    build_only: bool,
}

/// Which tool set a task needs.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Needs {
    /// Building and running `picket`.
    Build,
    /// Building plus the end-to-end test tools.
    Test,
}

/// Entry point of `cargo xtask bootstrap`.
pub fn main(opts: &Options) -> Result<()> {
    ensure(if opts.build_only {
        Needs::Build
    } else {
        Needs::Test
    })
}

/// Make sure everything `needs` calls for is installed, installing what is missing.
pub fn ensure(needs: Needs) -> Result<()> {
    cargo_bin_on_path();
    apt_packages(needs)?;
    nightly_rust_src()?;
    bpf_linker()?;
    if needs == Needs::Test {
        cargo_fuzz()?;
        kubernetes_validate()?;
        corpus_tools()?;
    }
    Ok(())
}

/// The virtualenv of the Python test tools (`tests/tests/manifests.rs` looks there).
pub fn test_venv() -> std::path::PathBuf {
    util::workspace_root().join("target/test-tools/venv")
}

/// `kubernetes-validate` in [`test_venv`].
fn kubernetes_validate() -> Result<()> {
    let venv = test_venv();
    let tool = venv.join("bin").join(KUBERNETES_VALIDATE);
    let works = |tool: &std::path::Path| {
        Command::new(tool)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if works(&tool) {
        println!("ok: {KUBERNETES_VALIDATE} present ({})", tool.display());
        return Ok(());
    }
    println!("installing {KUBERNETES_VALIDATE} into {}", venv.display());
    util::run(cmd("python3").args(["-m", "venv"]).arg(&venv))?;
    util::run(cmd(venv.join("bin").join("pip")).args(["install", "--quiet", KUBERNETES_VALIDATE]))?;
    if !works(&tool) {
        bail!("{} was installed but does not run", tool.display());
    }
    Ok(())
}

/// scapy and dpkt in [`test_venv`], for the detection corpus, and NFStream for the bench.
pub fn corpus_tools() -> Result<()> {
    let venv = test_venv();
    let python = venv.join("bin").join("python");
    let works = || {
        Command::new(&python)
            .args(["-c", "import scapy, dpkt, nfstream"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if works() {
        println!("ok: scapy, dpkt and nfstream present ({})", venv.display());
        return Ok(());
    }
    println!(
        "installing {} into {}",
        CORPUS_PACKAGES.join(" "),
        venv.display()
    );
    util::run(cmd("python3").args(["-m", "venv"]).arg(&venv))?;
    // `python -m pip`: the venv's own interpreter, even when the venv was moved.
    util::run(
        cmd(&python)
            .args(["-m", "pip", "install", "--quiet"])
            .args(CORPUS_PACKAGES),
    )?;
    if !works() {
        bail!(
            "the test venv's packages were installed but `{} -c 'import scapy, dpkt, nfstream'` fails",
            python.display()
        );
    }
    Ok(())
}

/// cargo-fuzz, for `cargo xtask fuzz` and the short fuzz runs of `cargo xtask test`.
fn cargo_fuzz() -> Result<()> {
    let present = cmd("cargo")
        .args(["fuzz", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if present {
        println!("ok: cargo-fuzz present");
        return Ok(());
    }
    println!("installing cargo-fuzz");
    util::run(cmd("cargo").args(["install", "cargo-fuzz", "--locked"]))
}

/// Report whether `~/.cargo/bin` is on `PATH`; child processes get it either way (see [`util::cmd`]).
fn cargo_bin_on_path() {
    let Some(bin) = util::cargo_bin_dir() else {
        return;
    };
    let path = std::env::var_os("PATH").unwrap_or_default();
    if std::env::split_paths(&path).any(|dir| dir == bin) {
        println!("ok: {} on PATH", bin.display());
    } else {
        println!("adding {} to PATH of child processes", bin.display());
    }
}

fn apt_packages(needs: Needs) -> Result<()> {
    let mut wanted = BUILD_PACKAGES.to_vec();
    if needs == Needs::Test {
        wanted.extend_from_slice(TEST_PACKAGES);
    }
    let mut missing = Vec::new();
    for package in &wanted {
        if !dpkg_installed(package)? {
            missing.push(*package);
        }
    }
    if missing.is_empty() {
        println!("ok: apt packages present ({})", wanted.join(" "));
        return Ok(());
    }
    if !is_root() {
        bail!(
            "missing apt packages: {0}; run `cargo xtask bootstrap` as root or `sudo apt-get install {0}`",
            missing.join(" ")
        );
    }
    println!("installing apt packages: {}", missing.join(" "));
    if missing.contains(&"tshark") {
        // Otherwise wireshark-common asks whether non-root users may capture.
        debconf_preseed("wireshark-common wireshark-common/install-setuid boolean false\n")?;
    }
    util::run(apt_get().arg("update"))?;
    util::run(
        apt_get()
            .args(["install", "-y", "--no-install-recommends"])
            .args(&missing),
    )
}

/// Whether `dpkg` reports `package` as installed.
fn dpkg_installed(package: &str) -> Result<bool> {
    let output = cmd("dpkg-query")
        .args(["-W", "-f=${Status}", package])
        .stderr(Stdio::null())
        .output()
        .context("could not run dpkg-query (is this a Debian-based system?)")?;
    Ok(String::from_utf8_lossy(&output.stdout).contains("install ok installed"))
}

/// `apt-get`, non-interactive, waiting for a concurrent apt/dpkg to release its lock.
fn apt_get() -> Command {
    let mut command = cmd("apt-get");
    command
        .env("DEBIAN_FRONTEND", "noninteractive")
        .args(["-o", "DPkg::Lock::Timeout=600"]);
    command
}

fn debconf_preseed(selections: &str) -> Result<()> {
    println!("$ debconf-set-selections <<< '{}'", selections.trim_end());
    let mut child = cmd("debconf-set-selections")
        .stdin(Stdio::piped())
        .spawn()
        .context("could not start debconf-set-selections")?;
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(selections.as_bytes())
        .context("could not write to debconf-set-selections")?;
    let status = child.wait()?;
    if !status.success() {
        bail!("`debconf-set-selections` failed ({status})");
    }
    Ok(())
}

fn nightly_rust_src() -> Result<()> {
    let rustup = find_program("rustup").context(
        "rustup not found on PATH or in ~/.cargo/bin; it is needed for nightly rust-src",
    )?;
    let output = cmd(&rustup)
        .args(["component", "list", "--toolchain", NIGHTLY, "--installed"])
        .stderr(Stdio::inherit())
        .output()
        .context("could not run rustup")?;
    if !output.status.success() {
        bail!(
            "the `{NIGHTLY}` toolchain is not installed; the BPF object needs the machine's existing nightly"
        );
    }
    let installed = String::from_utf8_lossy(&output.stdout)
        .lines()
        .any(|line| line.split_whitespace().next() == Some("rust-src"));
    if installed {
        println!("ok: rust-src present for {NIGHTLY}");
        return Ok(());
    }
    println!("installing rust-src for {NIGHTLY}");
    util::run(cmd(&rustup).args(["component", "add", "rust-src", "--toolchain", NIGHTLY]))
}

fn bpf_linker() -> Result<()> {
    if let Some(version) = bpf_linker_version()? {
        println!("ok: {version} present");
        return Ok(());
    }
    println!("installing bpf-linker 0.13 (LLVM 22)");
    util::run(
        cmd(cargo())
            .env("LLVM_PREFIX", LLVM_PREFIX)
            .args(["install", "bpf-linker", "--version", "~0.13", "--locked"])
            .args(["--no-default-features", "--features", "llvm-22"]),
    )?;
    let version = bpf_linker_version()?
        .context("bpf-linker was installed but is not on PATH or in ~/.cargo/bin")?;
    println!("ok: {version} present");
    Ok(())
}

/// `bpf-linker --version` (e.g. `bpf-linker 0.13.0`), or `None` when it is not installed.
fn bpf_linker_version() -> Result<Option<String>> {
    let Some(linker) = find_program("bpf-linker") else {
        return Ok(None);
    };
    let output = cmd(&linker)
        .arg("--version")
        .output()
        .with_context(|| format!("could not run {}", linker.display()))?;
    if !output.status.success() {
        bail!(
            "`{} --version` failed ({}); remove it and rerun bootstrap",
            linker.display(),
            output.status
        );
    }
    Ok(Some(
        String::from_utf8_lossy(&output.stdout).trim().to_owned(),
    ))
}
