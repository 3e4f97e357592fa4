//! Hardening: detection while under a spoofed flood, `kill -9`, and interfaces going down,
//! coming back, or disappearing while watched.

use std::{
    fs, thread,
    time::{Duration, Instant},
};

use serde_json::Value;
use tests::{DETECTION_DEADLINE, Lab, bpf_object_exists, output, require_tools, signal};

fn started(rule: &'static str, scope: &'static str) -> impl Fn(&Value) -> bool {
    move |v: &Value| {
        v["rule"]["name"] == rule
            && v["picket"]["scope"] == scope
            && v["event"]["action"] == "start"
    }
}

/// Runs an nmap SYN scan of the victim's top 100 ports from the attacker.
fn nmap_scan(lab: &Lab) {
    let out = output(&mut lab.attacker.exec_timeout(
        90.0,
        "nmap",
        &[
            "-sS",
            "--top-ports",
            "100",
            "-T4",
            "-n",
            &lab.veth.victim_v4.to_string(),
        ],
    ));
    assert!(
        out.status.success(),
        "nmap failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Waits for a port_scan start from the attacker, at most `within` after `since`.
fn expect_scan(lab: &Lab, p: &mut tests::Picket, since: Instant, within: Duration) -> Value {
    let attacker = lab.veth.attacker_v4.to_string();
    let (v, at) = p
        .wait_alert_at(
            |v| started("port_scan", "source")(v) && v["source"]["ip"] == attacker.as_str(),
            within,
        )
        .unwrap_or_else(|| {
            panic!(
                "expected a port_scan alert from {attacker} within {within:?}\n{}",
                p.report()
            )
        });
    assert!(
        at.duration_since(since) <= within,
        "port_scan came {:?} after the scan started (limit {within:?})\n{}",
        at.duration_since(since),
        p.report()
    );
    v
}

#[test]
fn scan_is_detected_during_a_spoofed_syn_flood() {
    require_tools(&["hping3", "nmap"]);
    let lab = Lab::new();
    // A small per-source map, so that the flood would churn it in well under a second.
    let mut p = lab.picket(&["--src-map-entries", "4096"]);
    let victim = lab.veth.victim_v4.to_string();
    let mut flood = lab.attacker.spawn_timeout(
        25.0,
        "hping3",
        &["-S", "--flood", "--rand-source", "-p", "80", &victim],
    );
    let f = p
        .wait_alert(started("syn_flood", "destination"), Duration::from_secs(10))
        .unwrap_or_else(|| {
            panic!(
                "expected the spoofed flood at its destination\n{}",
                p.report()
            )
        });
    assert_eq!(f["destination"]["ip"], victim.as_str(), "{f}");
    assert!(
        p.stderr()
            .contains("admitting new sources at their second packet"),
        "expected admission control to engage under the flood\n{}",
        p.report()
    );
    // The scan runs while the flood goes on.
    let t = Instant::now();
    nmap_scan(&lab);
    let scan = expect_scan(&lab, &mut p, t, DETECTION_DEADLINE);
    assert_eq!(scan["destination"]["ip"], victim.as_str(), "{scan}");
    assert!(
        scan["picket"]["value"].as_f64().unwrap_or(0.0) >= 90.0,
        "expected nearly all 100 ports counted despite the flood: {scan}"
    );
    flood.stop();
    lab.stop_and_check_clean(&mut p);
}

#[test]
fn kill_9_leaves_nothing_behind_and_a_restart_works_at_once() {
    require_tools(&["nmap"]);
    let lab = Lab::new();
    // A start's own cost (mostly the verifier) on this machine, the restart's baseline.
    let t = Instant::now();
    let mut p = lab.picket(&[]);
    let first_start = t.elapsed();
    signal(p.pid(), libc::SIGKILL);
    let deadline = Instant::now() + Duration::from_secs(5);
    while p.is_running() {
        assert!(
            Instant::now() < deadline,
            "picket survived SIGKILL\n{}",
            p.report()
        );
        thread::sleep(Duration::from_millis(50));
    }
    // The kernel released the links with the process: nothing attached, nothing pinned.
    lab.assert_nothing_attached(&p);
    let pinned: Vec<String> = fs::read_dir("/sys/fs/bpf")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    assert!(
        !pinned.iter().any(|n| n.to_lowercase().contains("picket")
            || ["SOURCES", "SRC", "DST"].contains(&n.as_str())),
        "expected no pinned picket objects in /sys/fs/bpf, found {pinned:?}"
    );
    // The interface lock went with the process: a new picket starts at once (no wait on a
    // stale lock or attachment: within two seconds of a first start) and works.
    let t = Instant::now();
    let mut p2 = lab.picket(&[]);
    assert!(
        t.elapsed() < first_start + Duration::from_secs(2),
        "restart took {:?}, a first start {first_start:?}",
        t.elapsed()
    );
    let t = Instant::now();
    nmap_scan(&lab);
    expect_scan(&lab, &mut p2, t, DETECTION_DEADLINE);
    lab.stop_and_check_clean(&mut p2);
}

#[test]
fn interface_down_and_up_keeps_the_programs_attached() {
    require_tools(&["nmap"]);
    let lab = Lab::new();
    let mut p = lab.picket(&[]);
    let ifname = lab.veth.victim_if.clone();
    lab.victim.ip(&["link", "set", &ifname, "down"]);
    thread::sleep(Duration::from_secs(2));
    assert!(
        p.is_running(),
        "picket exited when {ifname} went down\n{}",
        p.report()
    );
    lab.victim.ip(&["link", "set", &ifname, "up"]);
    // Wait for the link to carry traffic again.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let ping = output(&mut lab.attacker.exec_timeout(
            3.0,
            "ping",
            &["-c", "1", "-W", "1", &lab.veth.victim_v4.to_string()],
        ));
        if ping.status.success() {
            break;
        }
        assert!(Instant::now() < deadline, "{ifname} did not come back");
    }
    assert!(
        lab.xdp_attached(),
        "expected XDP still attached after down/up\n{}",
        lab.link_details()
    );
    let t = Instant::now();
    nmap_scan(&lab);
    expect_scan(&lab, &mut p, t, DETECTION_DEADLINE);
    lab.stop_and_check_clean(&mut p);
}

#[test]
fn deleted_interface_ends_picket_with_a_clear_error() {
    let lab = Lab::new();
    let mut p = lab.picket(&[]);
    lab.victim.ip(&["link", "del", &lab.veth.victim_if]);
    let deadline = Instant::now() + Duration::from_secs(5);
    while p.is_running() {
        assert!(
            Instant::now() < deadline,
            "expected picket to exit after its interface was deleted\n{}",
            p.report()
        );
        thread::sleep(Duration::from_millis(100));
    }
    let status = p.stop();
    assert_eq!(
        status.code(),
        Some(1),
        "expected exit status 1\n{}",
        p.report()
    );
    let err = p.stderr();
    assert!(
        err.contains("picket: error: interface") && err.contains("disappeared"),
        "expected a one-line error naming the interface\n{}",
        p.report()
    );
    // The interface is gone with its attachments; the links and programs must be too.
    thread::sleep(Duration::from_secs(1));
    for l in p.links() {
        assert!(
            !bpf_object_exists("link", l.link_id) && !bpf_object_exists("prog", l.prog_id),
            "link {} / prog {} still exists after picket exited\n{}",
            l.link_id,
            l.prog_id,
            p.report()
        );
    }
}
