//! End-to-end tests of the scan types and timings issue 11 lists: real nmap against a victim
//! namespace watched by picket (XDP on ingress and TC on egress, where the victim's RSTs,
//! ICMP errors and SCTP answers are seen), assertions on the port_scan alert line and the
//! outcome evidence it carries.
//!
//! Run as root, one test at a time: `cargo test -p tests --test scans -- --test-threads=1`.
//! Each test prints `[latency] …` with the time from nmap's start to the alert.

use std::time::{Duration, Instant};

use serde_json::Value;
use tests::{Lab, Picket, is_start, require_tools, str_at};

/// Runs nmap from the attacker with `args` and the victim's IPv4 address (stopped after
/// `limit`), and expects a port_scan start line from the attacker to the victim within
/// `within` of nmap's start, whose outcome counts say that `failed` (rejected plus
/// unanswered) reached the bar. Returns the line.
fn scan_alert(lab: &Lab, p: &mut Picket, args: &[&str], within: Duration, limit: f64) -> Value {
    require_tools(&["nmap"]);
    let src = lab.veth.attacker_v4.to_string();
    let dst = lab.veth.victim_v4.to_string();
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["-n", "-Pn", dst.as_str()]);
    let what = format!("nmap {}", all.join(" "));
    let t0 = Instant::now();
    let mut nmap = lab.attacker.spawn_timeout(limit, "nmap", &all);
    let found = p.wait_alert_at(
        |v| is_start(v, "port_scan") && str_at(v, "/source/ip") == src,
        within,
    );
    nmap.stop();
    let Some((v, at)) = found else {
        panic!(
            "expected a port_scan start alert from {src} within {within:?} of starting \
             `{what}`\n{}",
            p.report()
        );
    };
    eprintln!(
        "[latency] port_scan for `{what}`: {} ms, scale {}",
        at.saturating_duration_since(t0).as_millis(),
        str_at(&v, "/picket/details/scale")
    );
    assert_eq!(
        v.pointer("/destination/ip").and_then(Value::as_str),
        Some(dst.as_str()),
        "expected destination.ip {dst} in {v}\n{}",
        p.report()
    );
    let n = |k: &str| {
        v.pointer(&format!("/picket/details/outcomes/{k}"))
            .and_then(Value::as_u64)
            .unwrap_or_else(|| panic!("expected details.outcomes.{k} in {v}\n{}", p.report()))
    };
    let failed = n("rejected") + n("unanswered");
    let value = v
        .pointer("/picket/value")
        .and_then(Value::as_f64)
        .unwrap_or(0.0);
    let threshold = v
        .pointer("/picket/threshold")
        .and_then(Value::as_f64)
        .unwrap_or(f64::MAX);
    assert!(
        failed as f64 >= threshold && value >= threshold,
        "expected at least {threshold} failed ports counted (rejected + unanswered) in {v}\n{}",
        p.report()
    );
    assert!(
        matches!(
            str_at(&v, "/picket/details/scale"),
            "fast" | "medium" | "slow"
        ) && v
            .pointer("/picket/window_s")
            .and_then(Value::as_f64)
            .is_some(),
        "expected details.scale and window_s in {v}\n{}",
        p.report()
    );
    v
}

/// A fast scan of the first 200 ports with `flags` (nmap's scan-type option) is reported
/// within 10 s with its protocol group.
fn fast_scan(flags: &[&str], protocol: &str) {
    let lab = Lab::new();
    let mut p = lab.picket(&[]);
    let mut args = flags.to_vec();
    args.extend(["-p", "1-200", "-T4", "--max-retries", "1"]);
    let v = scan_alert(&lab, &mut p, &args, Duration::from_secs(10), 60.0);
    assert_eq!(
        str_at(&v, "/picket/details/protocol"),
        protocol,
        "expected details.protocol {protocol} in {v}\n{}",
        p.report()
    );
    lab.stop_and_check_clean(&mut p);
}

#[test]
fn ack_scan_is_a_port_scan() {
    fast_scan(&["-sA"], "tcp");
}

#[test]
fn window_scan_is_a_port_scan() {
    fast_scan(&["-sW"], "tcp");
}

#[test]
fn maimon_scan_is_a_port_scan() {
    fast_scan(&["-sM"], "tcp");
}

#[test]
fn fin_null_and_xmas_scans_are_port_scans() {
    for flag in ["-sF", "-sN", "-sX"] {
        fast_scan(&[flag], "tcp");
    }
}

#[test]
fn udp_scan_from_port_53_is_a_port_scan() {
    // The victim rate-limits its port unreachables (about 1/s after a burst of 6): most
    // probes go unanswered, from a prober the unreachables made visible.
    let lab = Lab::new();
    let mut p = lab.picket(&[]);
    let args = [
        "-sU",
        "-g",
        "53",
        "-p",
        "1-200",
        "-T4",
        "--max-retries",
        "0",
    ];
    let v = scan_alert(&lab, &mut p, &args, Duration::from_secs(15), 60.0);
    assert_eq!(str_at(&v, "/picket/details/protocol"), "udp", "{v}");
    lab.stop_and_check_clean(&mut p);
}

#[test]
fn sctp_init_scan_is_a_port_scan() {
    // Without an SCTP stack the victim answers protocol unreachable, quoting the INIT.
    fast_scan(&["-sY"], "sctp");
}

#[test]
fn ip_protocol_scan_is_a_port_scan() {
    let lab = Lab::new();
    let mut p = lab.picket(&[]);
    let args = ["-sO", "-T4", "--max-retries", "1"];
    let v = scan_alert(&lab, &mut p, &args, Duration::from_secs(15), 90.0);
    assert_eq!(str_at(&v, "/picket/details/protocol"), "ip_proto", "{v}");
    lab.stop_and_check_clean(&mut p);
}

#[test]
fn polite_scan_is_reported_within_a_minute() {
    // nmap -T2: 0.4 s between probes, far below the fast bar (30 ports in 10 s).
    let lab = Lab::new();
    let mut p = lab.picket(&[]);
    let args = ["-sS", "-T2", "-p", "1-150", "--max-retries", "0"];
    let v = scan_alert(&lab, &mut p, &args, Duration::from_secs(60), 70.0);
    assert_ne!(str_at(&v, "/picket/details/scale"), "fast", "{v}");
    lab.stop_and_check_clean(&mut p);
}

#[test]
fn tc_hook_sees_an_ack_scan() {
    let lab = Lab::new();
    let mut p = lab.picket(&["--hook", "tc"]);
    let args = ["-sA", "-p", "1-200", "-T4", "--max-retries", "1"];
    scan_alert(&lab, &mut p, &args, Duration::from_secs(10), 60.0);
    lab.stop_and_check_clean(&mut p);
}
