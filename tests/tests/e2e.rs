//! End-to-end tests: real tools (nmap, hping3, ping, python3, curl) attack or use a victim
//! network namespace watched by picket; assertions are on picket's JSON alert lines.
//!
//! Run as root, one test at a time: `cargo test -p tests -- --test-threads=1`.
//! Each test prints `[latency] …` lines (visible with `--nocapture`).

use std::{
    process::Command,
    time::{Duration, Instant},
};

use serde_json::Value;
use tests::{
    DETECTION_DEADLINE, Lab, PYTHON, Picket, Proc, is_start, ms, output, picket_bin, require_root,
    require_tools, str_at, temp_dir,
};

/// How long we wait for an alert before giving up (longer than the 5 s requirement, so that
/// a late alert is reported with its real latency rather than as missing).
const ALERT_WAIT: Duration = Duration::from_secs(12);

/// Waits for a `start` line of `rule` satisfying `pred`, asserts it arrived within
/// [`DETECTION_DEADLINE`] of `t0`, prints the latency and returns the line.
fn expect_start(
    p: &mut Picket,
    t0: Instant,
    rule: &str,
    traffic: &str,
    pred: impl Fn(&Value) -> bool,
) -> Value {
    let Some((v, at)) = p.wait_alert_at(|v| is_start(v, rule) && pred(v), ALERT_WAIT) else {
        panic!(
            "expected a {rule} start alert within {DETECTION_DEADLINE:?} of starting `{traffic}`, \
             none within {ALERT_WAIT:?}\n{}",
            p.report()
        );
    };
    let latency = at.saturating_duration_since(t0);
    eprintln!(
        "[latency] {rule} for `{traffic}`: {} ms",
        latency.as_millis()
    );
    assert!(
        latency <= DETECTION_DEADLINE,
        "expected the {rule} alert within {DETECTION_DEADLINE:?} of starting `{traffic}`, \
         it came after {} ms: {v}\n{}",
        latency.as_millis(),
        p.report()
    );
    v
}

/// Asserts the identifying fields of an alert line (`None` address: the field must be
/// absent).
fn check_alert(
    p: &Picket,
    v: &Value,
    rule: &str,
    scope: &str,
    source: Option<&str>,
    destination: Option<&str>,
) {
    let ctx = || format!("alert line: {v}\n{}", p.report());
    assert_eq!(
        str_at(v, "/event/kind"),
        "alert",
        "expected event.kind \"alert\"; {}",
        ctx()
    );
    assert_eq!(
        str_at(v, "/event/action"),
        "start",
        "expected event.action \"start\"; {}",
        ctx()
    );
    assert_eq!(
        str_at(v, "/rule/name"),
        rule,
        "expected rule.name {rule:?}; {}",
        ctx()
    );
    assert_eq!(
        str_at(v, "/picket/scope"),
        scope,
        "expected picket.scope {scope:?}; {}",
        ctx()
    );
    assert_eq!(
        v.pointer("/source/ip").and_then(Value::as_str),
        source,
        "expected source.ip {source:?}; {}",
        ctx()
    );
    assert_eq!(
        v.pointer("/destination/ip").and_then(Value::as_str),
        destination,
        "expected destination.ip {destination:?}; {}",
        ctx()
    );
}

/// Collects output for `settle` more, prints every alert line seen, and asserts that each
/// one is of an expected `rule/scope` (no false alarm besides the expected detection).
fn expect_only(p: &mut Picket, settle: Duration, allowed: &[&str], traffic: &str) {
    p.collect_for(settle);
    let alerts = p.alerts();
    for v in &alerts {
        eprintln!("[alert] {v}");
    }
    let unexpected: Vec<&Value> = alerts
        .iter()
        .filter(|v| {
            let key = format!("{}/{}", str_at(v, "/rule/name"), str_at(v, "/picket/scope"));
            !allowed.contains(&key.as_str())
        })
        .collect();
    assert!(
        unexpected.is_empty(),
        "expected only {allowed:?} alerts during `{traffic}`, also got {unexpected:?}\n{}",
        p.report()
    );
}

/// A source-scoped start line of `rule` from `src`.
fn from(rule: &'static str, src: String) -> impl Fn(&Value) -> bool {
    move |v| is_start(v, rule) && str_at(v, "/source/ip") == src
}

/// Starts nmap with `args` from the attacker (stopped after `secs`), waits for the start
/// line of the source-scoped `rule` from `src` (to `dst` when given) and checks it. Returns
/// the line, the running nmap and its command line.
fn nmap_alert(
    lab: &Lab,
    p: &mut Picket,
    rule: &'static str,
    args: &[&str],
    (src, dst): (&str, Option<&str>),
    secs: f64,
) -> (Value, Proc, String) {
    require_tools(&["nmap"]);
    let what = format!("nmap {}", args.join(" "));
    let t0 = Instant::now();
    let nmap = lab.attacker.spawn_timeout(secs, "nmap", args);
    let v = expect_start(p, t0, rule, &what, from(rule, src.into()));
    check_alert(p, &v, rule, "source", Some(src), dst);
    (v, nmap, what)
}

/// nmap's SYN scan of the 100 most common ports, as fast as the victim answers.
const SYN_TOP_100: &[&str] = &["-sS", "--top-ports", "100", "-T4", "-n"];

/// Runs nmap with `args` and then the victim's address (IPv6 when `v6`) from the attacker,
/// and expects a port_scan from the attacker's address to the victim's.
fn scan_detected(lab: &Lab, p: &mut Picket, v6: bool, args: &[&str]) -> Value {
    let (src, dst) = if v6 {
        (
            lab.veth.attacker_v6.to_string(),
            lab.veth.victim_v6.to_string(),
        )
    } else {
        (
            lab.veth.attacker_v4.to_string(),
            lab.veth.victim_v4.to_string(),
        )
    };
    let nmap_args: Vec<&str> = args.iter().copied().chain([dst.as_str()]).collect();
    let (v, nmap, what) = nmap_alert(lab, p, "port_scan", &nmap_args, (&src, Some(&dst)), 90.0);
    let value = v.pointer("/picket/value").and_then(Value::as_f64);
    assert!(
        value.is_some_and(|x| x >= 30.0),
        "expected picket.value >= 30 (ports) in {v}\n{}",
        p.report()
    );
    let done = nmap.finish(Duration::from_secs(90));
    assert!(
        done.success() && done.stdout.contains("1 host up"),
        "expected `{what}` to complete against the victim: {done:?}\n{}",
        p.report()
    );
    expect_only(p, Duration::from_millis(1500), &["port_scan/source"], &what);
    v
}

// ---------------------------------------------------------------------------------------
// Port scans

#[test]
fn nmap_syn_scan_is_a_port_scan() {
    let lab = Lab::new();
    let mut p = lab.picket(&[]);
    syn_scan_detected_then_clean(&lab, &mut p);
}

#[test]
fn nmap_connect_scan_is_a_port_scan() {
    let lab = Lab::new();
    let mut p = lab.picket(&[]);
    scan_detected(
        &lab,
        &mut p,
        false,
        &["-sT", "-T4", "-n", "--max-rtt-timeout", "200ms"],
    );
    lab.stop_and_check_clean(&mut p);
}

#[test]
fn nmap_udp_scan_is_a_port_scan() {
    require_tools(&["nmap"]);
    let lab = Lab::new();
    let mut p = lab.picket(&[]);
    let (src, dst) = (
        lab.veth.attacker_v4.to_string(),
        lab.veth.victim_v4.to_string(),
    );
    let args = [
        "-sU",
        "--top-ports",
        "100",
        "-T4",
        "-n",
        "--max-retries",
        "1",
        &dst,
    ];
    // The victim's ICMP port-unreachable answers are rate limited (1/s after a burst), so a
    // full UDP scan takes minutes; the detection only needs its first probes.
    let (v, mut nmap, what) =
        nmap_alert(&lab, &mut p, "port_scan", &args, (&src, Some(&dst)), 60.0);
    let ports = v
        .pointer("/picket/details/ports")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    assert!(
        ports >= 30,
        "expected at least 30 probed UDP ports listed in {v}\n{}",
        p.report()
    );
    nmap.stop();
    expect_only(
        &mut p,
        Duration::from_millis(1500),
        &["port_scan/source"],
        &what,
    );
    lab.stop_and_check_clean(&mut p);
}

#[test]
fn nmap_ipv6_syn_scan_is_a_port_scan() {
    let lab = Lab::new();
    let mut p = lab.picket(&[]);
    let v = scan_detected(
        &lab,
        &mut p,
        true,
        &["-6", "-sS", "--top-ports", "100", "-T4", "-n"],
    );
    assert!(
        str_at(&v, "/source/ip").contains(':'),
        "expected an IPv6 source in {v}\n{}",
        p.report()
    );
    lab.stop_and_check_clean(&mut p);
}

// ---------------------------------------------------------------------------------------
// Sweep

#[test]
fn nmap_ping_sweep_is_a_host_sweep() {
    require_tools(&["nmap"]);
    let lab = Lab::new();
    lab.route_through_victim("10.251.0.0/24");
    let mut p = lab.picket(&[]);
    let src = lab.veth.attacker_v4.to_string();
    // Against a /24 whose hosts never answer (blackholed), nmap's adaptive timing sends only
    // ~20 probes/s and reaches the 64th host after ~5-6 s; --min-rate keeps it a fast sweep
    // (256 hosts in about a second) so that the 5 s bound measures picket, not nmap.
    let args = [
        "-sn",
        "-n",
        "-T4",
        "--min-rate",
        "300",
        "--max-retries",
        "0",
        "10.251.0.0/24",
    ];
    let (v, nmap, what) = nmap_alert(&lab, &mut p, "host_sweep", &args, (&src, None), 60.0);
    let hosts = v
        .pointer("/picket/details/distinct_hosts")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    assert!(
        hosts >= 64,
        "expected picket.details.distinct_hosts >= 64 in {v}\n{}",
        p.report()
    );
    let done = nmap.finish(Duration::from_secs(60));
    assert!(
        done.success(),
        "expected `{what}` to complete: {done:?}\n{}",
        p.report()
    );
    expect_only(
        &mut p,
        Duration::from_millis(1500),
        &["host_sweep/source"],
        &what,
    );
    lab.stop_and_check_clean(&mut p);
}

// ---------------------------------------------------------------------------------------
// Floods

/// Runs `hping3 <args> <victim>` for about 3 s and returns the first start line of `rule`
/// matching `pred`.
fn flood(
    lab: &Lab,
    p: &mut Picket,
    args: &[&str],
    rule: &str,
    allowed: &[&str],
    pred: impl Fn(&Value) -> bool,
) -> Value {
    require_tools(&["hping3"]);
    let victim = lab.veth.victim_v4.to_string();
    let mut all: Vec<&str> = vec!["-k", "2", "3", "hping3"];
    all.extend_from_slice(args);
    all.push(&victim);
    let what = format!("hping3 {} {victim} (3 s)", args.join(" "));
    let t0 = Instant::now();
    // hping3 ignores -c with --flood: timeout(1) ends it.
    let hping = lab.attacker.spawn("timeout", &all);
    let v = expect_start(p, t0, rule, &what, pred);
    let done = hping.finish(Duration::from_secs(10));
    assert_eq!(
        done.status.and_then(|s| s.code()),
        Some(124),
        "expected hping3 to run until timeout(1) ended it (status 124): {done:?}\n{}",
        p.report()
    );
    expect_only(p, Duration::from_millis(1500), allowed, &what);
    v
}

/// A flood from the attacker's own address: `rule` with scope source, naming both ends.
fn one_source_flood(hping3_args: &[&str], rule: &'static str) {
    let lab = Lab::new();
    let mut p = lab.picket(&[]);
    let (src, dst) = (
        lab.veth.attacker_v4.to_string(),
        lab.veth.victim_v4.to_string(),
    );
    let only = format!("{rule}/source");
    let v = flood(
        &lab,
        &mut p,
        hping3_args,
        rule,
        &[&only],
        from(rule, src.clone()),
    );
    check_alert(&p, &v, rule, "source", Some(&src), Some(&dst));
    lab.stop_and_check_clean(&mut p);
}

#[test]
fn hping3_syn_flood_from_one_source() {
    one_source_flood(&["-S", "--flood", "-p", "80"], "syn_flood");
}

#[test]
fn hping3_spoofed_syn_flood_is_seen_at_the_destination() {
    let lab = Lab::new();
    let mut p = lab.picket(&[]);
    let dst = lab.veth.victim_v4.to_string();
    let v = flood(
        &lab,
        &mut p,
        &["-S", "--flood", "--rand-source", "-p", "80"],
        "syn_flood",
        &["syn_flood/destination"],
        |v| str_at(v, "/picket/scope") == "destination",
    );
    check_alert(&p, &v, "syn_flood", "destination", None, Some(&dst));
    let sources = v
        .pointer("/picket/details/distinct_sources")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    assert!(
        sources >= 64,
        "expected picket.details.distinct_sources >= 64 in {v}\n{}",
        p.report()
    );
    lab.stop_and_check_clean(&mut p);
}

/// A flood that only its destination can see: `rule` with scope destination, at the victim.
fn destination_flood(hping3_args: &[&str], rule: &'static str) -> Value {
    let lab = Lab::new();
    let mut p = lab.picket(&[]);
    let dst = lab.veth.victim_v4.to_string();
    let only = format!("{rule}/destination");
    let v = flood(&lab, &mut p, hping3_args, rule, &[&only], |v| {
        str_at(v, "/picket/scope") == "destination"
    });
    check_alert(&p, &v, rule, "destination", None, Some(&dst));
    lab.stop_and_check_clean(&mut p);
    v
}

#[test]
fn hping3_ack_flood_is_seen_at_the_destination() {
    // Bare ACKs to a port with no connection: the victim only answers with RSTs.
    destination_flood(&["-A", "--flood", "-p", "80"], "tcp_flood");
}

#[test]
fn hping3_spoofed_reflection_is_seen_at_the_destination() {
    // "Answers" from DNS servers (source port 53, kept with -k) at random addresses that the
    // victim never asked: a reflection, not also a UDP flood.
    let v = destination_flood(
        &[
            "--udp",
            "-s",
            "53",
            "-k",
            "--rand-source",
            "--flood",
            "-p",
            "4444",
            "-d",
            "200",
        ],
        "reflection",
    );
    let reflectors = v
        .pointer("/picket/details/reflectors")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    assert!(reflectors >= 10, "expected >= 10 reflectors in {v}");
}

#[test]
fn hping3_spoofed_fragment_flood_is_seen_at_the_destination() {
    // Every datagram split into fragments (-f) from random sources.
    destination_flood(
        &[
            "--udp",
            "-f",
            "--rand-source",
            "--flood",
            "-p",
            "4444",
            "-d",
            "200",
        ],
        "frag_flood",
    );
}

#[test]
fn hping3_udp_flood() {
    // hping3 reaches ~100 k packets/s on a veth here, far above the default 20 000/s, so the
    // default threshold is kept.
    one_source_flood(&["--udp", "--flood", "-p", "7"], "udp_flood");
}

#[test]
fn hping3_icmp_flood() {
    one_source_flood(&["--icmp", "--flood"], "icmp_flood");
}

#[test]
fn short_syn_flood_after_idle_is_detected() {
    require_tools(&["hping3"]);
    let lab = Lab::new();
    let mut p = lab.picket(&[]);
    let (src, dst) = (
        lab.veth.attacker_v4.to_string(),
        lab.veth.victim_v4.to_string(),
    );
    let watching = p.watching_at().expect("watching line seen");
    // picket polls at whole seconds after "watching". Idle for 12 s, then a 1 s flood starting
    // just after a poll, so that one poll sees ~90% of it. Every 1 s interval that overlaps
    // the flood by more than ~0.4 s holds more than 1000 SYNs.
    let at = watching + Duration::from_millis(12_100);
    std::thread::sleep(at.saturating_duration_since(Instant::now()));
    let args = [
        "-k", "1", "1", "hping3", "-S", "-p", "80", "-i", "u250", &dst,
    ];
    let what = format!("hping3 -S -p 80 -i u250 {dst} for 1 s after 12 s of quiet");
    let t0 = Instant::now();
    let hping = lab.attacker.spawn("timeout", &args);
    let v = expect_start(
        &mut p,
        t0,
        "syn_flood",
        &what,
        from("syn_flood", src.clone()),
    );
    check_alert(&p, &v, "syn_flood", "source", Some(&src), Some(&dst));
    let done = hping.finish(Duration::from_secs(5));
    eprintln!("[hping3] {}", done.stderr.trim());
    lab.stop_and_check_clean(&mut p);
}

// ---------------------------------------------------------------------------------------
// Benign traffic

/// UDP responder on port 53 of `argv[1]`: answers every datagram with "answer:" + it.
const DNS_SERVER: &str = r#"
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], 53))
while True:
    d, a = s.recvfrom(2048)
    s.sendto(b"answer:" + d, a)
"#;

/// `argv[2]` queries to `argv[1]`:53, each from a fresh socket (a new random ephemeral
/// port); prints the number of correct answers.
const DNS_CLIENT: &str = r#"
import socket, sys
ok = 0
for i in range(int(sys.argv[2])):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(1)
    q = b"q%d" % i
    s.sendto(q, (sys.argv[1], 53))
    try:
        d, _ = s.recvfrom(2048)
        ok += d == b"answer:" + q
    except socket.timeout:
        pass
    s.close()
print(ok)
"#;

/// `argv[2]` HTTP requests (one connection each) to `argv[1]` on the ports `argv[3]`
/// (comma-separated, round robin), never through a proxy; prints the number of successes.
const HTTP_CLIENT: &str = r#"
import sys, urllib.request
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
ports = sys.argv[3].split(",")
ok = 0
for i in range(int(sys.argv[2])):
    url = "http://%s:%s/small" % (sys.argv[1], ports[i % len(ports)])
    with opener.open(url, timeout=5) as r:
        ok += r.status == 200 and len(r.read()) == 1024
print(ok)
"#;

const BIG: u64 = 200 * 1024 * 1024;

/// `curl` of `url` into /dev/null (never through a proxy); returns the bytes downloaded.
fn download(ns: &tests::Netns, url: &str) -> u64 {
    let out = output(&mut ns.exec_timeout(
        60.0,
        "curl",
        &[
            "-sS",
            "--noproxy",
            "*",
            "-o",
            "/dev/null",
            "-w",
            "%{size_download}",
            url,
        ],
    ));
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0)
}

#[test]
fn benign_traffic_stays_silent() {
    require_tools(&[PYTHON, "curl", "ping"]);
    let lab = Lab::new();
    let (a4, v4) = (
        lab.veth.attacker_v4.to_string(),
        lab.veth.victim_v4.to_string(),
    );
    let v6 = lab.veth.victim_v6.to_string();

    // Content: a small page and a sparse 200 MiB file.
    let www = temp_dir("www");
    std::fs::write(www.path().join("small"), vec![b'x'; 1024]).unwrap();
    std::fs::File::create(www.path().join("big"))
        .and_then(|f| f.set_len(BIG))
        .unwrap();
    let dir = www.path().to_str().unwrap().to_string();

    // Servers: HTTP on two ports in the victim, one in the attacker; DNS-like responders on
    // port 53 in both.
    let http = |ns: &tests::Netns, ip: &str, port: &str| -> Proc {
        ns.spawn(
            PYTHON,
            &["-m", "http.server", port, "--bind", ip, "--directory", &dir],
        )
    };
    let _servers = [
        http(&lab.victim, &v4, "8000"),
        http(&lab.victim, &v4, "8080"),
        http(&lab.attacker, &a4, "8000"),
        lab.victim.spawn(PYTHON, &["-c", DNS_SERVER, &v4]),
        lab.attacker.spawn(PYTHON, &["-c", DNS_SERVER, &a4]),
    ];
    for (ns, proto, port) in [
        (&lab.victim, "tcp", 8000),
        (&lab.victim, "tcp", 8080),
        (&lab.attacker, "tcp", 8000),
        (&lab.victim, "udp", 53),
        (&lab.attacker, "udp", 53),
    ] {
        ns.wait_listening(proto, port, Duration::from_secs(10));
    }

    let mut p = lab.picket(&[]);
    let t0 = Instant::now();
    let mut done = Vec::new();

    // ~300 TCP connections to two ports.
    let out = output(&mut lab.attacker.exec_timeout(
        60.0,
        PYTHON,
        &["-c", HTTP_CLIENT, &v4, "300", "8000,8080"],
    ));
    let n = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert_eq!(
        n,
        "300",
        "expected 300 successful HTTP requests: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        p.report()
    );
    done.push(format!(
        "300 HTTP requests at {} ms",
        ms(t0, Instant::now())
    ));

    // DNS-like lookups both ways: answers from port 53 land on many ephemeral ports.
    for (client, server) in [(&lab.attacker, &v4), (&lab.victim, &a4)] {
        let out =
            output(&mut client.exec_timeout(60.0, PYTHON, &["-c", DNS_CLIENT, server, "200"]));
        let n: u32 = String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or(0);
        assert!(
            n >= 190,
            "expected ~200 answered DNS-like queries from {} to {server}:53, got {n}: {}\n{}",
            client.name(),
            String::from_utf8_lossy(&out.stderr),
            p.report()
        );
        done.push(format!(
            "{n} DNS-like queries {} -> {server} at {} ms",
            client.name(),
            ms(t0, Instant::now())
        ));
    }

    // Pings, IPv4 and IPv6.
    for (fam, dst) in [("-4", &v4), ("-6", &v6)] {
        let out = output(&mut lab.attacker.exec_timeout(
            20.0,
            "ping",
            &[fam, "-c", "5", "-i", "0.2", dst],
        ));
        assert!(
            out.status.success(),
            "expected ping {dst} to succeed: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            p.report()
        );
    }
    done.push(format!("pings at {} ms", ms(t0, Instant::now())));

    // Bulk downloads, 200 MiB each way.
    for (client, url) in [
        (&lab.attacker, format!("http://{v4}:8000/big")),
        (&lab.victim, format!("http://{a4}:8000/big")),
    ] {
        let got = download(client, &url);
        assert_eq!(
            got,
            BIG,
            "expected to download {BIG} bytes from {url} in {}\n{}",
            client.name(),
            p.report()
        );
        done.push(format!(
            "{url} downloaded in {} at {} ms",
            client.name(),
            ms(t0, Instant::now())
        ));
    }

    // Keep watching for the rest of ~15 s (the traffic's effects span windows).
    let elapsed = t0.elapsed();
    p.collect_for(Duration::from_secs(15).saturating_sub(elapsed));
    lab.stop_and_check_clean(&mut p);
    eprintln!("[benign] {}", done.join("; "));
    assert!(
        p.lines().is_empty(),
        "expected no output at all from picket during benign traffic ({}), got {} lines\n{}",
        done.join("; "),
        p.lines().len(),
        p.report()
    );
}

// ---------------------------------------------------------------------------------------
// Allowlist and episodes

#[test]
fn allowlisted_scanner_raises_no_alert() {
    require_tools(&["nmap"]);
    let lab = Lab::new();
    let a4 = lab.veth.attacker_v4.to_string();
    let allow = format!("{a4}/32");
    let mut p = lab.picket(&["--allow", &allow]);
    let v4 = lab.veth.victim_v4.to_string();
    let args = ["-sS", "--top-ports", "100", "-T4", "-n", &v4];
    let nmap = lab.attacker.spawn_timeout(60.0, "nmap", &args);
    let got = p.wait_alert(|v| is_start(v, "port_scan"), Duration::from_secs(8));
    let done = nmap.finish(Duration::from_secs(60));
    assert!(
        done.success() && done.stdout.contains("1 host up"),
        "expected the scan to reach the victim: {done:?}\n{}",
        p.report()
    );
    assert!(
        got.is_none() && p.alerts().is_empty(),
        "expected no alert within 8 s for a scan from allowlisted {allow}\n{}",
        p.report()
    );
    // The allowlist is exact: the same host scanning over IPv6 is not covered.
    scan_detected(
        &lab,
        &mut p,
        true,
        &["-6", "-sS", "--top-ports", "100", "-T4", "-n"],
    );
    lab.stop_and_check_clean(&mut p);
}

#[test]
fn one_scan_is_one_episode() {
    let lab = Lab::new();
    let mut p = lab.picket(&["--end-after", "2s", "--window", "3s"]);
    let start = scan_detected(&lab, &mut p, false, SYN_TOP_100);
    let src = lab.veth.attacker_v4.to_string();
    let id = start["event"]["id"].clone();
    let started = Instant::now();
    let end = p.wait_alert(
        |v| v["event"]["id"] == id && str_at(v, "/event/action") == "end",
        Duration::from_secs(20),
    );
    let Some(end) = end else {
        panic!(
            "expected an end line for episode {id} within 20 s of its start (window 3 s, \
             end-after 2 s)\n{}",
            p.report()
        );
    };
    eprintln!(
        "[episode] end line {} ms after the start line was checked",
        ms(started, Instant::now())
    );
    // Anything that would duplicate or reopen the episode would come within a few seconds.
    p.collect_for(Duration::from_secs(5));
    lab.stop_and_check_clean(&mut p);
    let alerts = p.alerts();
    let count = |action: &str| {
        alerts
            .iter()
            .filter(|v| v["event"]["id"] == id && str_at(v, "/event/action") == action)
            .count()
    };
    assert_eq!(
        (count("start"), count("end")),
        (1, 1),
        "expected exactly one start and one end line for episode {id}\n{}",
        p.report()
    );
    let scans = alerts
        .iter()
        .filter(|v| is_start(v, "port_scan") && str_at(v, "/source/ip") == src)
        .count();
    assert_eq!(
        scans,
        1,
        "expected the scan to be a single port_scan episode\n{}",
        p.report()
    );
    let raws: Vec<&str> = p.lines().iter().map(|l| l.raw.as_str()).collect();
    let mut uniq = raws.clone();
    uniq.sort();
    uniq.dedup();
    assert_eq!(
        uniq.len(),
        raws.len(),
        "expected no duplicate lines\n{}",
        p.report()
    );
    assert_eq!(
        (
            str_at(&end, "/rule/name"),
            str_at(&end, "/source/ip"),
            str_at(&end, "/event/start")
        ),
        ("port_scan", src.as_str(), str_at(&start, "/event/start")),
        "expected the end line to match its start line {start}: {end}\n{}",
        p.report()
    );
    assert!(
        end.pointer("/event/duration")
            .and_then(Value::as_u64)
            .is_some_and(|d| d > 0)
            && end.pointer("/picket/peak").and_then(Value::as_f64) >= Some(30.0),
        "expected a positive event.duration and picket.peak >= 30 in the end line {end}\n{}",
        p.report()
    );
}

// ---------------------------------------------------------------------------------------
// Hooks

#[test]
fn tc_hook_detects_a_syn_scan() {
    let lab = Lab::new();
    let mut p = lab.picket(&["--hook", "tc"]);
    assert!(
        p.stderr().contains("tc ingress") && p.links().iter().any(|l| l.link_type == "tcx"),
        "expected picket to attach a tc ingress program with --hook tc, links {:?}\n{}",
        p.links(),
        p.report()
    );
    syn_scan_detected_then_clean(&lab, &mut p);
}

/// An nmap SYN scan from the attacker is a port_scan; then picket stops cleanly.
fn syn_scan_detected_then_clean(lab: &Lab, p: &mut Picket) {
    scan_detected(lab, p, false, SYN_TOP_100);
    lab.stop_and_check_clean(p);
}

#[test]
fn xdp_skb_mode_detects_a_syn_scan() {
    let lab = Lab::new();
    let mut p = lab.picket(&["--xdp-mode", "skb"]);
    let modes = lab.xdp_modes();
    assert!(
        modes.iter().any(|m| m == "xdpgeneric"),
        "expected generic (skb) XDP on {} with --xdp-mode skb, `ip -d link show` says {modes:?}\n{}",
        lab.veth.victim_if,
        p.report()
    );
    syn_scan_detected_then_clean(&lab, &mut p);
}

// ---------------------------------------------------------------------------------------
// Lifecycle and errors

#[test]
fn sigterm_exits_zero_and_detaches_everything() {
    let lab = Lab::new();
    let mut p = lab.picket(&[]);
    // While running, the checks below do see the attachment (so their silence later means
    // something).
    let listed = lab.bpftool_net_attachments();
    assert!(
        listed.iter().any(|l| l.contains(&lab.veth.victim_if)),
        "expected `bpftool net show` in the victim namespace to list XDP on {} while picket \
         runs, got {listed:?}\n{}",
        lab.veth.victim_if,
        p.report()
    );
    assert!(
        p.is_running(),
        "expected picket to keep running\n{}",
        p.report()
    );
    lab.stop_and_check_clean(&mut p);
    assert!(
        p.lines().is_empty(),
        "expected no output without traffic\n{}",
        p.report()
    );
}

/// Runs picket with `args` inside the victim namespace (at most 10 s) and returns (exit
/// code, stdout, stderr); a run that had to be ended by timeout(1) reports code 124.
fn run_picket(lab: &Lab, prefix: &[&str], args: &[&str]) -> (Option<i32>, String, String) {
    let bin = picket_bin();
    let mut all: Vec<&str> = prefix.to_vec();
    all.push(bin.to_str().unwrap());
    all.extend_from_slice(args);
    let out = output(&mut lab.victim.exec_timeout(10.0, all[0], &all[1..]));
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Asserts a failed start: non-zero exit (not a timeout), `needle` in stderr, a short
/// message (at most `max_lines` non-empty lines), no panic, nothing on stdout, and nothing
/// attached.
fn assert_fails(
    lab: &Lab,
    what: &str,
    (code, stdout, stderr): (Option<i32>, String, String),
    needle: &str,
    max_lines: usize,
) {
    let ctx = format!("exit code {code:?}\n--- stdout:\n{stdout}\n--- stderr:\n{stderr}");
    assert!(
        code.is_some_and(|c| c != 0 && c != 124 && c != 137),
        "expected {what} to fail at once with a non-zero status; {ctx}"
    );
    assert!(
        stderr.contains(needle),
        "expected {what} to fail with a message containing {needle:?}; {ctx}"
    );
    let lines = stderr.lines().filter(|l| !l.trim().is_empty()).count();
    assert!(
        (1..=max_lines).contains(&lines) && !stderr.contains("panicked"),
        "expected {what} to fail with a short error (at most {max_lines} lines, no panic); {ctx}"
    );
    assert!(stdout.is_empty(), "expected no stdout from {what}; {ctx}");
    assert!(
        !lab.xdp_attached() && lab.bpftool_net_attachments().is_empty(),
        "expected nothing attached after {what} failed; {ctx}\n{}",
        lab.link_details()
    );
}

#[test]
fn second_picket_on_the_same_interface_fails() {
    let lab = Lab::new();
    let mut first = lab.picket(&[]);
    let iface = lab.veth.victim_if.clone();
    let (code, stdout, stderr) = run_picket(&lab, &[], &["-i", &iface, "-o", "json"]);
    let ctx = format!(
        "second picket: exit code {code:?}\n--- stdout:\n{stdout}\n--- stderr:\n{stderr}\n{}",
        first.report()
    );
    assert!(
        code.is_some_and(|c| c != 0 && c != 124 && c != 137),
        "expected a second picket on {iface} to fail at once; {ctx}"
    );
    assert!(
        stderr.contains("already"),
        "expected the second picket's error to mention \"already\"; {ctx}"
    );
    assert_eq!(
        stderr.trim().lines().count(),
        1,
        "expected a one-line error from the second picket; {ctx}"
    );
    // The first one is unaffected.
    assert!(
        first.is_running() && lab.xdp_attached(),
        "expected the first picket to keep running and attached; {ctx}"
    );
    lab.stop_and_check_clean(&mut first);
}

#[test]
fn unknown_interface_fails() {
    let lab = Lab::new();
    let r = run_picket(&lab, &[], &["-i", "pknosuch0", "-o", "json"]);
    assert_fails(&lab, "picket -i pknosuch0", r, "unknown interface", 1);
}

#[test]
fn bad_flag_values_fail() {
    let lab = Lab::new();
    let iface = lab.veth.victim_if.clone();
    for (bad, needle) in [
        (&["--poll-interval", "0s"][..], "--poll-interval"),
        (&["--port-scan-ports", "abc"][..], "--port-scan-ports"),
        (&["--port-scan-ports", "1"][..], "--port-scan-ports"),
        (&["--window", "500ms"][..], "--window"),
        (&["--syn-flood-pps", "0"][..], "--syn-flood-pps"),
        (&["--allow", "not-a-net"][..], "not-a-net"),
        (&["--hook", "bogus"][..], "--hook"),
        (&["--end-after", "soon"][..], "--end-after"),
    ] {
        let mut args = vec!["-i", iface.as_str(), "-o", "json"];
        args.extend_from_slice(bad);
        let r = run_picket(&lab, &[], &args);
        // clap adds a blank line and a "For more information, try '--help'." line.
        assert_fails(&lab, &format!("picket {}", bad.join(" ")), r, needle, 3);
    }
}

#[test]
fn missing_capabilities_fail() {
    require_tools(&["setpriv"]);
    let lab = Lab::new();
    let iface = lab.veth.victim_if.clone();
    let args = ["-i", iface.as_str(), "-o", "json"];
    let no_caps = ["--inh-caps=-all", "--bounding-set=-all"];
    // As nobody, and as root without capabilities.
    let nobody = [
        &[
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
        ][..],
        &no_caps[..],
    ]
    .concat();
    let root = [&["setpriv"][..], &no_caps[..]].concat();
    for prefix in [nobody, root] {
        let r = run_picket(&lab, &prefix, &args);
        assert_fails(
            &lab,
            &format!("{} picket", prefix.join(" ")),
            r,
            "missing capabilities",
            1,
        );
    }
}

#[test]
fn harness_fails_loudly_without_root() {
    // This test binary, run as nobody, must fail a test with the harness's message rather
    // than pass it silently.
    require_root();
    // A world-readable copy, wherever the target directory is.
    let dir = temp_dir("nonroot");
    let exe = dir.path().join("e2e");
    std::fs::copy(std::env::current_exe().expect("current_exe"), &exe).expect("copy test binary");
    for p in [dir.path(), exe.as_path()] {
        std::fs::set_permissions(p, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .expect("chmod");
    }
    let out = output(
        Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(&exe)
            .args([
                "--exact",
                "sigterm_exits_zero_and_detaches_everything",
                "--test-threads=1",
            ]),
    );
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !out.status.success() && text.contains("must run as root") && text.contains("1 failed"),
        "expected the tests to fail with \"must run as root\" when not root; {}:\n{text}",
        out.status
    );
}

#[test]
fn pickets_in_different_namespaces_do_not_conflict() {
    let lab = Lab::new();
    let mut first = lab.picket(&[]);
    // Another namespace with an interface of the same name as the victim's.
    let other = tests::Netns::new(&format!("{}o", lab.victim.name()));
    let name = lab.veth.victim_if.clone();
    other.ip(&[
        "link", "add", &name, "type", "veth", "peer", "name", "pkpeer0",
    ]);
    other.ip(&["link", "set", &name, "up"]);
    other.ip(&["link", "set", "pkpeer0", "up"]);
    let mut second = Picket::spawn(&other, &name, &[]);
    second.wait_watching(Duration::from_secs(10));
    let status = second.stop();
    assert_eq!(
        status.code(),
        Some(0),
        "expected the picket in {} to run and exit 0\n{}",
        other.name(),
        second.report()
    );
    lab.stop_and_check_clean(&mut first);
}

// ---------------------------------------------------------------------------------------
// Without BPF: AF_PACKET

/// An HTTP server for `dir` on port 8000 and the DNS-like responder on port 53 of the
/// victim's address, listening when this returns.
fn victim_http_and_dns(lab: &Lab, dir: &str) -> [Proc; 2] {
    let dst = lab.veth.victim_v4.to_string();
    let servers = [
        lab.victim.spawn(
            PYTHON,
            &[
                "-m",
                "http.server",
                "8000",
                "--bind",
                &dst,
                "--directory",
                dir,
            ],
        ),
        lab.victim.spawn(PYTHON, &["-c", DNS_SERVER, &dst]),
    ];
    lab.victim
        .wait_listening("tcp", 8000, Duration::from_secs(10));
    lab.victim
        .wait_listening("udp", 53, Duration::from_secs(10));
    servers
}

/// The start alerts seen so far as `rule/scope source -> destination`, sorted.
fn start_keys(p: &Picket) -> Vec<String> {
    let mut keys: Vec<String> = p
        .alerts()
        .iter()
        .filter(|v| str_at(v, "/event/action") == "start")
        .map(|v| {
            format!(
                "{}/{} {} -> {}",
                str_at(v, "/rule/name"),
                str_at(v, "/picket/scope"),
                str_at(v, "/source/ip"),
                str_at(v, "/destination/ip")
            )
        })
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

/// An nmap SYN scan, a spoofed SYN flood, then a benign mix (HTTP fetches, DNS-like
/// queries, pings) against the victim; returns the start alerts seen.
fn scan_flood_and_benign_mix(lab: &Lab, p: &mut Picket) -> Vec<String> {
    require_tools(&[PYTHON, "curl", "ping"]);
    scan_detected(lab, p, false, SYN_TOP_100);
    let dst = lab.veth.victim_v4.to_string();
    flood(
        lab,
        p,
        &["-S", "--flood", "--rand-source", "-p", "80"],
        "syn_flood",
        &["port_scan/source", "syn_flood/destination"],
        |v| str_at(v, "/picket/scope") == "destination",
    );
    let www = temp_dir("www-mix");
    std::fs::write(www.path().join("small"), vec![b'x'; 1024]).unwrap();
    let dir = www.path().to_str().unwrap().to_string();
    let _servers = victim_http_and_dns(lab, &dir);
    let http = output(&mut lab.attacker.exec_timeout(
        30.0,
        PYTHON,
        &["-c", HTTP_CLIENT, &dst, "20", "8000"],
    ));
    let dns = output(
        &mut lab
            .attacker
            .exec_timeout(30.0, PYTHON, &["-c", DNS_CLIENT, &dst, "20"]),
    );
    let ping = output(&mut lab.attacker.exec_timeout(
        20.0,
        "ping",
        &["-c", "5", "-i", "0.2", &dst],
    ));
    assert!(
        String::from_utf8_lossy(&http.stdout).trim() == "20"
            && String::from_utf8_lossy(&dns.stdout).trim() == "20"
            && ping.status.success(),
        "expected the benign mix to succeed: http {http:?} dns {dns:?} ping {ping:?}"
    );
    expect_only(
        p,
        Duration::from_secs(2),
        &["port_scan/source", "syn_flood/destination"],
        "the benign mix after the scan and the flood",
    );
    start_keys(p)
}

#[test]
fn afpacket_hook_gives_the_alerts_of_the_xdp_hook() {
    let mut seen = Vec::new();
    // One lab for both, so that the addresses in the alerts are the same.
    let lab = Lab::new();
    for hook in ["xdp", "afpacket"] {
        let mut p = if hook == "xdp" {
            lab.picket(&["--hook", "xdp"])
        } else {
            lab.picket_afpacket(&[], &[])
        };
        let keys = scan_flood_and_benign_mix(&lab, &mut p);
        eprintln!("[alerts] --hook {hook}: {keys:?}");
        if hook == "xdp" {
            lab.stop_and_check_clean(&mut p);
        } else {
            lab.stop_and_check_closed(&mut p);
        }
        seen.push(keys);
    }
    assert_eq!(
        seen[0], seen[1],
        "expected the same start alerts with --hook afpacket as with --hook xdp"
    );
}

#[test]
fn without_bpf_capabilities_picket_falls_back_to_afpacket() {
    require_tools(&["setpriv"]);
    let lab = Lab::new();
    let iface = lab.veth.victim_if.clone();
    let no_bpf = [
        "setpriv",
        "--inh-caps=-bpf,-sys_admin,-perfmon",
        "--bounding-set=-bpf,-sys_admin,-perfmon",
    ];
    // Asked for explicitly, XDP still fails with the clear error.
    let r = run_picket(
        &lab,
        &no_bpf,
        &["-i", &iface, "-o", "json", "--hook", "xdp"],
    );
    assert_fails(
        &lab,
        "picket --hook xdp without CAP_BPF",
        r,
        "missing capabilities",
        1,
    );
    // By default it falls back, says why in one line, and detects a scan.
    let mut p = lab.picket_afpacket(&no_bpf, &["--hook", "auto"]);
    let said: Vec<String> = p
        .stderr()
        .lines()
        .filter(|l| l.contains("BPF unavailable"))
        .map(str::to_string)
        .collect();
    assert!(
        said.len() == 1 && said[0].contains("CAP_BPF") && said[0].contains("AF_PACKET"),
        "expected one line saying that BPF is unavailable (CAP_BPF) and AF_PACKET is used\n{}",
        p.report()
    );
    scan_detected(&lab, &mut p, false, SYN_TOP_100);
    // Killed outright, it leaves no socket behind either.
    tests::signal(p.pid(), libc::SIGKILL);
    let _ = p.stop();
    lab.assert_no_packet_sockets(&p);
}

/// A DNS query for `argv[2]` (type A) to `argv[1]`:53.
const DNS_QUERY: &str = r#"
import socket, struct, sys
q = struct.pack(">HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0)
q += b"".join(bytes([len(l)]) + l.encode() for l in sys.argv[2].split(".")) + b"\0"
q += struct.pack(">HH", 1, 1)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(1)
s.sendto(q, (sys.argv[1], 53))
try:
    s.recvfrom(2048)
except socket.timeout:
    pass
"#;

#[test]
fn analyze_live_reports_the_url_and_the_dns_name() {
    require_tools(&[PYTHON, "curl", "tshark"]);
    let lab = Lab::new();
    let iface = lab.veth.victim_if.clone();
    let dst = lab.veth.victim_v4.to_string();
    let bin = picket_bin();
    let bin = bin.to_str().unwrap();
    // A bad filter is one clear line.
    let bad = output(&mut lab.victim.exec_timeout(
        10.0,
        bin,
        &["analyze", "--live", &iface, "-f", "tcp prot 80"],
    ));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        !bad.status.success()
            && err.contains("bad capture filter")
            && err.trim().lines().count() == 1,
        "expected one line about the bad filter: {bad:?}"
    );

    let www = temp_dir("www-live");
    std::fs::write(www.path().join("picket-live.txt"), b"hello").unwrap();
    let out = temp_dir("live-out");
    let pcap = out.path().join("live.pcap");
    let pcap_s = pcap.to_str().unwrap().to_string();
    let dir = www.path().to_str().unwrap().to_string();
    let _servers = victim_http_and_dns(&lab, &dir);
    let mut live = lab.victim.spawn(
        bin,
        &[
            "analyze",
            "--live",
            &iface,
            "--duration",
            "6s",
            "--json",
            "-f",
            "tcp port 8000 or udp port 53",
            "--write",
            &pcap_s,
        ],
    );
    live.wait_for("analyze --live start", Duration::from_secs(10), |_, err| {
        err.contains("analyzing live traffic")
    });
    let url = format!("http://{dst}:8000/picket-live.txt");
    let got = output(&mut lab.attacker.exec_timeout(
        10.0,
        "curl",
        &["-sS", "--noproxy", "*", &url],
    ));
    assert_eq!(got.stdout, b"hello", "curl {url}: {got:?}");
    let _ = output(&mut lab.attacker.exec_timeout(
        10.0,
        PYTHON,
        &["-c", DNS_QUERY, &dst, "picket-live.example.org"],
    ));
    // Not captured: the filter keeps only port 8000 and 53.
    let _ = output(
        &mut lab
            .attacker
            .exec_timeout(10.0, "ping", &["-c", "2", "-i", "0.2", &dst]),
    );
    let done = live.finish(Duration::from_secs(20));
    assert!(
        done.success(),
        "expected analyze --live to end after 6 s: {done:?}"
    );
    let report: Value = serde_json::from_str(&done.stdout)
        .unwrap_or_else(|e| panic!("analyze --live --json printed no JSON ({e}): {done:?}"));
    let app = &report["application"];
    let has = |list: &Value, key: &str, want: &str| {
        list.as_array()
            .is_some_and(|a| a.iter().any(|x| x[key].as_str() == Some(want)))
    };
    assert!(
        has(&app["http"], "url", &url),
        "expected the URL {url} in the live report's application section: {app}"
    );
    assert!(
        has(&app["dns"]["names"], "name", "picket-live.example.org."),
        "expected the DNS name picket-live.example.org in the live report: {app}"
    );
    let icmp = report["protocols"]["l4"]
        .as_array()
        .is_some_and(|a| a.iter().any(|x| x["id"] == "icmp"));
    assert!(
        !icmp,
        "expected the filter to keep ICMP out: {}",
        report["protocols"]
    );
    // The written file is a capture tshark reads, with the HTTP request in it.
    let uris = output(Command::new("tshark").args([
        "-r",
        &pcap_s,
        "-Y",
        "http.request",
        "-T",
        "fields",
        "-e",
        "http.request.uri",
    ]));
    assert!(
        uris.status.success() && String::from_utf8_lossy(&uris.stdout).contains("/picket-live.txt"),
        "expected tshark to read the HTTP request from {pcap_s}: {uris:?}"
    );
}
