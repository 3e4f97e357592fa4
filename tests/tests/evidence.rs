//! Evidence capture (`--capture-dir`): the packets of flagged sources end up in pcap files
//! that tshark reads, within the configured byte caps.
//!
//! Run as root, one test at a time: `cargo test -p tests --test evidence -- --test-threads=1`.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use tests::{Lab, Picket, is_start, output, require_tools, str_at, temp_dir};

const ALERT_WAIT: Duration = Duration::from_secs(12);

/// The evidence files in `dir`, sorted, with their sizes.
fn evidence_files(dir: &Path) -> Vec<(PathBuf, u64)> {
    let mut v: Vec<(PathBuf, u64)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            let n = std::fs::metadata(&p).unwrap().len();
            (p, n)
        })
        .collect();
    v.sort();
    v
}

fn dir_size(dir: &Path) -> u64 {
    evidence_files(dir).iter().map(|f| f.1).sum()
}

/// `(ip.src, tcp.flags.syn)` of every packet of a pcap file, read by tshark.
fn tshark_packets(file: &Path) -> Vec<(String, String)> {
    let out = output(Command::new("tshark").args([
        "-r",
        &file.to_string_lossy(),
        "-T",
        "fields",
        "-e",
        "ip.src",
        "-e",
        "tcp.flags.syn",
    ]));
    assert!(
        out.status.success(),
        "tshark could not read {}: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let mut it = l.split('\t');
            let src = it.next().unwrap_or("").to_string();
            let syn = it.next().unwrap_or("").to_string();
            (src, syn)
        })
        .collect()
}

fn wait_start(p: &mut Picket, rule: &str, src: &str) {
    let got = p.wait_alert(
        |v| is_start(v, rule) && str_at(v, "/source/ip") == src,
        ALERT_WAIT,
    );
    assert!(
        got.is_some(),
        "expected a {rule} start alert from {src}\n{}",
        p.report()
    );
}

#[test]
fn scan_packets_are_captured_to_pcap() {
    scan_packets_captured(false);
}

#[test]
fn scan_packets_are_captured_to_pcap_with_afpacket() {
    scan_packets_captured(true);
}

/// Two nmap scans: the packets of the flagged scanner, and only those, end up in evidence
/// files that tshark reads (BPF programs, or AF_PACKET rings when `afpacket`).
fn scan_packets_captured(afpacket: bool) {
    require_tools(&["nmap", "tshark"]);
    let lab = Lab::new();
    let dir = temp_dir("evidence");
    let dir_arg = dir.path().to_string_lossy().into_owned();
    let extra = ["--capture-dir", dir_arg.as_str()];
    let mut p = if afpacket {
        lab.picket_afpacket(&[], &extra)
    } else {
        lab.picket(&extra)
    };
    let (src, dst) = (
        lab.veth.attacker_v4.to_string(),
        lab.veth.victim_v4.to_string(),
    );
    let nmap_args = ["-sS", "--top-ports", "100", "-T4", "-n", dst.as_str()];
    let scan = lab.attacker.spawn_timeout(90.0, "nmap", &nmap_args);
    wait_start(&mut p, "port_scan", &src);
    assert!(scan.finish(Duration::from_secs(90)).success());
    // A second scan while the source is flagged.
    let scan = lab.attacker.spawn_timeout(90.0, "nmap", &nmap_args);
    assert!(scan.finish(Duration::from_secs(90)).success());
    p.collect_for(Duration::from_millis(1500));
    if afpacket {
        lab.stop_and_check_closed(&mut p);
    } else {
        lab.stop_and_check_clean(&mut p);
    }

    let files = evidence_files(dir.path());
    assert!(!files.is_empty(), "no evidence file\n{}", p.report());
    let mut packets = Vec::new();
    for (f, _) in &files {
        packets.extend(tshark_packets(f));
    }
    assert!(!packets.is_empty(), "no packets captured\n{}", p.report());
    assert!(
        packets.iter().all(|(s, _)| *s == src),
        "packets from other sources than {src}: {:?}",
        packets
            .iter()
            .filter(|(s, _)| *s != src)
            .take(5)
            .collect::<Vec<_>>()
    );
    let syns = packets
        .iter()
        .filter(|(_, syn)| syn == "1" || syn == "True")
        .count();
    assert!(
        syns > 50,
        "expected the scan's SYNs, got {syns} of {} packets",
        packets.len()
    );
    let opened = p.stderr().matches("picket: writing evidence to").count();
    assert_eq!(
        opened,
        files.len(),
        "one stderr line per file\n{}",
        p.report()
    );
    assert!(dir_size(dir.path()) <= 100 << 20);
    eprintln!(
        "[evidence] {} packets ({syns} SYNs) in {} files",
        packets.len(),
        files.len()
    );
}

#[test]
fn flood_evidence_rotates_and_stays_under_the_cap() {
    require_tools(&["hping3", "tshark"]);
    let lab = Lab::new();
    let dir = temp_dir("evidence-cap");
    let dir_arg = dir.path().to_string_lossy().into_owned();
    let (max, per_file) = (200_000u64, 50_000u64);
    let mut p = lab.picket(&[
        "--capture-dir",
        &dir_arg,
        "--capture-max-bytes",
        "200000",
        "--capture-file-bytes",
        "50000",
    ]);
    let (src, dst) = (
        lab.veth.attacker_v4.to_string(),
        lab.veth.victim_v4.to_string(),
    );
    let flood = lab.attacker.spawn(
        "timeout",
        &["-k", "2", "5", "hping3", "-S", "--flood", "-p", "80", &dst],
    );
    wait_start(&mut p, "syn_flood", &src);
    // Sample the directory while the flood is captured.
    let until = Instant::now() + Duration::from_secs(3);
    let mut peak = 0;
    while Instant::now() < until {
        peak = peak.max(dir_size(dir.path()));
        p.collect_for(Duration::from_millis(100));
    }
    let _ = flood.finish(Duration::from_secs(10));
    p.collect_for(Duration::from_millis(1500));
    lab.stop_and_check_clean(&mut p);

    let files = evidence_files(dir.path());
    let total = dir_size(dir.path());
    let opened = p.stderr().matches("picket: writing evidence to").count();
    eprintln!(
        "[evidence] {opened} files opened, {} kept, {total} bytes (peak sampled {peak})",
        files.len()
    );
    assert!(
        total <= max && peak <= max,
        "{total}/{peak} > {max}\n{}",
        p.report()
    );
    assert!(
        opened > files.len() && opened >= 5,
        "expected rotation with deletions: {opened} opened, {} kept\n{}",
        files.len(),
        p.report()
    );
    for (f, n) in &files {
        assert!(*n <= per_file, "{} is {n} bytes", f.display());
        let packets = tshark_packets(f);
        assert!(!packets.is_empty(), "{} is empty", f.display());
        assert!(packets.iter().all(|(s, _)| *s == src), "{}", f.display());
    }
    assert!(
        p.stderr().contains("picket: evidence: "),
        "expected the evidence account on exit\n{}",
        p.report()
    );
}
