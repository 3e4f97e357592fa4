//! Soak: sustained traffic for a bounded time (default 10 minutes; `PICKET_SOAK_SECS`), run
//! by `cargo xtask soak`, not by `cargo xtask test`.
//!
//! Every cycle runs an nmap scan, then a spoofed SYN flood, then stays quiet long enough for
//! both episodes to end, with pings in the background the whole time. Checked at the end:
//! the agent's memory stayed flat, its polls stayed on time (from its own metrics), and every
//! scan and every flood gave exactly one episode with one start and one end line.

use std::{
    collections::BTreeMap,
    fs, thread,
    time::{Duration, Instant},
};

use tests::{Lab, PYTHON, output, require_tools};

/// Seconds per cycle: scan at 0 s, flood from 5 s to 13 s, quiet until the end.
const CYCLE_S: u64 = 30;
const METRICS: &str = "127.0.0.1:9464";
/// Cycles before memory is judged: 3 floods of 40 000 random sources fill the 65 536-entry map.
const WARM_UP_CYCLES: u64 = 3;

fn rss_kib(pid: u32) -> u64 {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

fn scrape(lab: &Lab) -> String {
    let code = format!(
        "import urllib.request;print(urllib.request.urlopen('http://{METRICS}/metrics').read().decode())"
    );
    let out = output(lab.victim.exec(PYTHON).args(["-c", &code]));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("{series} missing from the metrics"))
}

#[test]
#[ignore = "long-running: `cargo xtask soak`"]
fn soak() {
    require_tools(&["nmap", "hping3"]);
    let secs: u64 = std::env::var("PICKET_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(600);
    let cycles = (secs / CYCLE_S).max(WARM_UP_CYCLES + 5);
    let lab = Lab::new();
    let mut p = lab.picket(&[
        "--metrics-addr",
        METRICS,
        "--window",
        "5s",
        "--end-after",
        "3s",
    ]);
    let victim = lab.veth.victim_v4.to_string();
    let _pings = lab.victim.spawn_timeout(
        (cycles * CYCLE_S + 30) as f64,
        "ping",
        &["-i", "0.2", "-q", &lab.veth.attacker_v4.to_string()],
    );
    let start = Instant::now();
    let mut rss = Vec::new();
    for cycle in 0..cycles {
        let t0 = start + Duration::from_secs(cycle * CYCLE_S);
        let out = output(&mut lab.attacker.exec_timeout(
            60.0,
            "nmap",
            &["-sS", "--top-ports", "100", "-T4", "-n", &victim],
        ));
        assert!(out.status.success(), "nmap failed in cycle {cycle}");
        thread::sleep((t0 + Duration::from_secs(5)).saturating_duration_since(Instant::now()));
        // 5000 SYN/s from random sources for 8 s: above the destination threshold.
        let flood = output(&mut lab.attacker.exec_timeout(
            8.0,
            "hping3",
            &[
                "-S",
                "-i",
                "u200",
                "--rand-source",
                "-p",
                "80",
                "-q",
                &victim,
            ],
        ));
        let _ = flood;
        while Instant::now() < t0 + Duration::from_secs(CYCLE_S) {
            thread::sleep(Duration::from_secs(1));
            p.collect_for(Duration::from_millis(10));
        }
        rss.push(rss_kib(p.pid()));
        eprintln!(
            "soak cycle {}/{cycles}: {:.0} s, picket RSS {} KiB, {} lines",
            cycle + 1,
            start.elapsed().as_secs_f64(),
            rss.last().unwrap(),
            p.lines().len()
        );
    }
    let elapsed = start.elapsed().as_secs_f64();
    let text = scrape(&lab);
    let status = p.stop();
    assert_eq!(status.code(), Some(0), "{}", p.report());

    // Memory: flat once the per-source map is full (the floods of the first cycles fill it;
    // the agent's own tables are bounded by the maps, which the kernel preallocates).
    let settled = &rss[WARM_UP_CYCLES as usize..];
    let early = *settled[..settled.len() / 2].iter().max().unwrap();
    let late = *settled[settled.len() / 2..].iter().max().unwrap();
    assert!(
        late <= early + 10 * 1024,
        "RSS grew from {early} KiB to {late} KiB: {rss:?}"
    );

    // Polls on time: one per second, none slower than half a second.
    let polls = metric(&text, "picket_poll_duration_seconds_count");
    assert!(polls >= 0.9 * elapsed, "{polls} polls in {elapsed:.0} s");
    let fast = metric(&text, r#"picket_poll_duration_seconds_bucket{le="0.512"}"#);
    assert_eq!(fast, polls, "polls slower than 0.5 s: {}", polls - fast);

    // Alerts: every episode has exactly one start and one end; one episode per scan and per
    // flood.
    let mut episodes: BTreeMap<u64, (String, String, Vec<String>)> = BTreeMap::new();
    for a in p.alerts() {
        let id = a["event"]["id"].as_u64().expect("event.id");
        let e = episodes.entry(id).or_insert_with(|| {
            (
                a["rule"]["name"].as_str().unwrap_or("").to_string(),
                a["picket"]["scope"].as_str().unwrap_or("").to_string(),
                Vec::new(),
            )
        });
        e.2.push(a["event"]["action"].as_str().unwrap_or("").to_string());
    }
    for (id, (rule, scope, actions)) in &episodes {
        let starts = actions.iter().filter(|a| *a == "start").count();
        let ends = actions.iter().filter(|a| *a == "end").count();
        assert!(
            starts == 1 && ends == 1,
            "episode {id} ({rule}/{scope}): {actions:?}"
        );
    }
    let count = |rule: &str, scope: &str| {
        episodes
            .values()
            .filter(|(r, s, _)| r == rule && s == scope)
            .count() as u64
    };
    assert_eq!(
        count("port_scan", "source"),
        cycles,
        "port_scan episodes: {episodes:?}"
    );
    assert_eq!(
        count("syn_flood", "destination"),
        cycles,
        "syn_flood episodes: {episodes:?}"
    );
    let unexpected: Vec<_> = episodes
        .values()
        .filter(|(r, s, _)| {
            !(r == "port_scan" && s == "source" || r == "syn_flood" && s == "destination")
        })
        .collect();
    assert!(unexpected.is_empty(), "unexpected episodes: {unexpected:?}");
    eprintln!(
        "soak: {cycles} cycles in {elapsed:.0} s, {polls} polls, RSS {early}..{late} KiB, {} episodes",
        episodes.len()
    );
}
