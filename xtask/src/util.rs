//! Helpers shared by the tasks: locating tools and the workspace, running commands.

use std::{
    env,
    ffi::OsString,
    fmt::Write as _,
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, Result, bail};

/// The cargo to invoke: `$CARGO` (set by `cargo run`) or `cargo` from `PATH`.
pub fn cargo() -> OsString {
    env::var_os("CARGO").unwrap_or_else(|| "cargo".into())
}

/// The workspace root (the parent of the `xtask` package).
pub fn workspace_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives inside the workspace")
}

/// Cargo's target directory: `$CARGO_TARGET_DIR` or `<workspace>/target`.
pub fn target_dir() -> PathBuf {
    match env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => workspace_root().join(dir),
        None => workspace_root().join("target"),
    }
}

/// The directory of shared captures: `$PICKET_SHARED_PCAPS`, else `shared/pcaps` beside the
/// workspace (as `tests::shared_pcaps` finds it).
pub fn shared_pcaps() -> PathBuf {
    match env::var_os("PICKET_SHARED_PCAPS") {
        Some(dir) => PathBuf::from(dir),
        None => workspace_root().join("../shared/pcaps"),
    }
}

/// Absolute path of the release `picket` binary.
pub fn picket_bin() -> PathBuf {
    target_dir().join("release").join("picket")
}

/// `~/.cargo/bin` (or `$CARGO_HOME/bin`), where `cargo install` puts binaries.
pub fn cargo_bin_dir() -> Option<PathBuf> {
    env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| env::var_os("HOME").map(|home| PathBuf::from(home).join(".cargo")))
        .map(|home| home.join("bin"))
}

/// The current `PATH` with the cargo bin directory appended when it is missing.
pub fn search_path() -> OsString {
    let current = env::var_os("PATH").unwrap_or_default();
    let mut dirs: Vec<PathBuf> = env::split_paths(&current).collect();
    if let Some(bin) = cargo_bin_dir()
        && !dirs.contains(&bin)
    {
        dirs.push(bin);
    }
    env::join_paths(dirs).unwrap_or(current)
}

/// Where `program` is found on [`search_path`], if anywhere.
pub fn find_program(program: &str) -> Option<PathBuf> {
    which::which_in(program, Some(search_path()), workspace_root()).ok()
}

/// A [`Command`] for `program`, run from the workspace root with [`search_path`] as `PATH`.
pub fn cmd(program: impl Into<OsString>) -> Command {
    let mut command = Command::new(program.into());
    command
        .current_dir(workspace_root())
        .env("PATH", search_path());
    command
}

/// Whether this process runs with effective uid 0.
pub fn is_root() -> bool {
    // `/proc/self` is owned by the effective uid of the process looking at it.
    std::fs::metadata("/proc/self").is_ok_and(|meta| meta.uid() == 0)
}

/// A shell-like rendering of `command` (explicit env vars except `PATH`, program, args).
pub fn display(command: &Command) -> String {
    let mut out = String::new();
    for (key, value) in command.get_envs() {
        if let (Some(value), false) = (value, key == "PATH") {
            let _ = write!(out, "{}={} ", key.to_string_lossy(), quote(value));
        }
    }
    out.push_str(&quote(command.get_program()));
    for arg in command.get_args() {
        out.push(' ');
        out.push_str(&quote(arg));
    }
    out
}

fn quote(word: &std::ffi::OsStr) -> String {
    let word = word.to_string_lossy();
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c));
    if plain {
        word.into_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// Echo `command` as `$ cmd args`, run it with inherited stdio, and fail unless it succeeds.
pub fn run(command: &mut Command) -> Result<()> {
    let shown = display(command);
    println!("$ {shown}");
    let status = command
        .status()
        .with_context(|| format!("could not start `{shown}`"))?;
    if !status.success() {
        bail!("`{shown}` failed ({status})");
    }
    Ok(())
}

/// Build the `picket` binary (`agent` package), in release mode unless `debug`.
pub fn build_agent(debug: bool) -> Result<()> {
    let mut command = cmd(cargo());
    command.args(["build", "--package", "agent"]);
    if !debug {
        command.arg("--release");
    }
    run(&mut command)
}
