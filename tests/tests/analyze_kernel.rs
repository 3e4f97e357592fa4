//! `picket analyze --kernel` on the shared captures: every packet through the loaded XDP
//! program and the host classifier, and the two sets of maps must agree.

use std::path::PathBuf;

use tests::{output, picket_bin, require_root, shared_pcaps};

fn captures(dir: &str) -> Vec<PathBuf> {
    let root = shared_pcaps().join(dir);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", root.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "pcap" || x == "pcapng"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no captures under {}", root.display());
    files
}

fn assert_kernel_agrees(dirs: &[&str]) {
    require_root();
    let files: Vec<PathBuf> = dirs.iter().flat_map(|d| captures(d)).collect();
    let out = output(
        std::process::Command::new(picket_bin())
            .args(["analyze", "--kernel", "--no-progress", "--json"])
            .args(&files),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    let summary = err
        .lines()
        .find(|l| l.starts_with("picket: kernel parity:"))
        .unwrap_or("");
    assert!(
        out.status.success() && summary.contains("kernel and host agree"),
        "expected kernel and host to agree on {} captures, got {}:\n{}",
        files.len(),
        out.status,
        err.lines().take(40).collect::<Vec<_>>().join("\n")
    );
    // The check must really have run packets through the kernel.
    let compared: u64 = summary
        .split_whitespace()
        .nth(3)
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(compared > 1000, "too few packets compared: {summary}");
    eprintln!("{summary}");
}

#[test]
fn esnet_and_ddos_captures_agree_in_kernel_and_host() {
    assert_kernel_agrees(&["esnet", "ddos"]);
}

#[test]
fn tcpdump_corpus_agrees_in_kernel_and_host() {
    assert_kernel_agrees(&["tcpdump-tests"]);
}
