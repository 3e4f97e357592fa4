//! Preconditions of a test (root, tools) and where things are: the picket binary, the
//! workspace, the shared captures, temporary directories.

use std::{
    path::{Path, PathBuf},
    sync::atomic::{AtomicU32, Ordering},
};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Panics with a clear message unless the tests run as root (they create network
/// namespaces and load BPF programs).
pub fn require_root() {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    assert!(
        euid == 0,
        "the end-to-end tests of package `tests` must run as root (they create network namespaces \
         and load eBPF programs), but the effective uid is {euid}: run `cargo xtask test`, or \
         `sudo -E cargo test -p tests -- --test-threads=1`"
    );
}

/// Panics with a clear message naming the first of `tools` that is not on `PATH` (or, for
/// an absolute path, does not exist).
pub fn require_tools(tools: &[&str]) {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for tool in tools {
        let found = if tool.starts_with('/') {
            Path::new(tool).exists()
        } else {
            std::env::split_paths(&path).any(|d| d.join(tool).is_file())
        };
        assert!(
            found,
            "the end-to-end tests need `{tool}`, which is not installed \
             (`cargo xtask bootstrap` installs the test tools)"
        );
    }
}

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is inside the workspace")
        .to_path_buf()
}

/// Path of the picket binary: `$PICKET_BIN`, else `<workspace>/target/release/picket`.
/// Panics if it does not exist.
pub fn picket_bin() -> PathBuf {
    let path = std::env::var_os("PICKET_BIN").map_or_else(
        || workspace_root().join("target/release/picket"),
        PathBuf::from,
    );
    assert!(
        path.is_file(),
        "picket binary not found at {} (set PICKET_BIN, or build it with \
         `cargo build --release -p agent`)",
        path.display()
    );
    path
}

/// The directory of shared captures: `$PICKET_SHARED_PCAPS`, else `shared/pcaps` beside the
/// workspace (`<workspace>/../shared/pcaps`). The one place the tests know it.
pub fn shared_pcaps() -> PathBuf {
    match std::env::var_os("PICKET_SHARED_PCAPS") {
        Some(dir) => PathBuf::from(dir),
        None => workspace_root().join("../shared/pcaps"),
    }
}

/// A fresh temporary directory `<tmp>/picket-<tag>-XXXXXX` (mode 0700), removed when the
/// guard is dropped. Panics if it cannot be created.
pub fn temp_dir(tag: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("picket-{tag}-"))
        .tempdir()
        .unwrap_or_else(|e| panic!("cannot create a temporary directory for {tag}: {e}"))
}

/// A unique short name prefix for this process and call: `pk<pid % 10000>x<n>` (at most 10
/// characters, so interface names derived from it stay within the 15-character limit).
pub fn unique_base() -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("pk{}x{}", std::process::id() % 10000, n % 1000)
}

/// A number from 1 to 200 that changes with every [`unique_base`] call (for subnets).
pub(crate) fn unique_subnet() -> u8 {
    (COUNTER.load(Ordering::Relaxed) % 200 + 1) as u8
}
