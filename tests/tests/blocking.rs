//! `--block` in namespaces (root): a scanner is detected and blocked by XDP, so its HTTP
//! request to a server on the victim fails while a second client's (another address on the
//! same link) succeeds; the block is lifted after the ttl; SIGKILL leaves nothing blocked;
//! an allowlisted scanner is never blocked; `--block-dry-run` drops nothing and logs.

use std::time::Duration;

use serde_json::Value;
use tests::{Lab, PYTHON, Picket, Proc, http_get, output, str_at, temp_dir, wait_until};

const HTTP_PORT: u16 = 8080;
const METRICS: &str = "127.0.0.1:9464";

/// A lab with an HTTP server on the victim and a second client address on the attacker's
/// side of the link.
struct Setup {
    lab: Lab,
    _server: Proc,
    _dir: tempfile::TempDir,
    other: String,
}

fn setup() -> Setup {
    let lab = Lab::new();
    let dir = temp_dir("blocking");
    std::fs::write(dir.path().join("index.html"), "hello\n").unwrap();
    let victim = lab.veth.victim_v4.to_string();
    let dir_arg = dir.path().display().to_string();
    let server = lab.victim.spawn(
        PYTHON,
        &[
            "-m",
            "http.server",
            &HTTP_PORT.to_string(),
            "--bind",
            &victim,
            "--directory",
            &dir_arg,
        ],
    );
    lab.victim
        .wait_listening("tcp", HTTP_PORT, Duration::from_secs(10));
    let o = lab.veth.attacker_v4.octets();
    let other = format!("{}.{}.{}.3", o[0], o[1], o[2]);
    lab.attacker.ip(&[
        "addr",
        "add",
        &format!("{other}/24"),
        "dev",
        &lab.veth.attacker_if,
    ]);
    Setup {
        lab,
        _server: server,
        _dir: dir,
        other,
    }
}

impl Setup {
    /// Whether a GET from `src` (an attacker-side address) gets the page within 2 s.
    fn get_from(&self, src: &str) -> bool {
        let script = "import http.client, sys\n\
            c = http.client.HTTPConnection(sys.argv[1], int(sys.argv[2]), timeout=2, source_address=(sys.argv[3], 0))\n\
            c.request('GET', '/')\n\
            sys.exit(0 if c.getresponse().status == 200 else 1)\n";
        let victim = self.lab.veth.victim_v4.to_string();
        output(&mut self.lab.attacker.exec_timeout(
            5.0,
            PYTHON,
            &["-c", script, &victim, &HTTP_PORT.to_string(), src],
        ))
        .status
        .success()
    }

    fn scanner(&self) -> String {
        self.lab.veth.attacker_v4.to_string()
    }
}

fn is_block(v: &Value, action: &str) -> bool {
    v["event"]["kind"] == "block" && v["event"]["action"] == action
}

/// The value of an unlabelled sample in picket's /metrics.
fn metric(lab: &Lab, name: &str) -> Option<f64> {
    let r = http_get(&lab.victim, &format!("http://{METRICS}/metrics"), &[], &[]).ok()?;
    r.body
        .lines()
        .find(|l| l.starts_with(&format!("{name} ")))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[test]
fn a_scanner_is_blocked_then_unblocked_and_kill_leaves_nothing_blocked() {
    let s = setup();
    let lab = &s.lab;
    assert!(
        s.get_from(&s.scanner()) && s.get_from(&s.other),
        "HTTP before picket"
    );
    let mut args = vec!["--block", "--block-ttl", "4s", "--metrics-addr", METRICS];
    args.extend(tests::QUICK_EPISODES);
    let mut picket = lab.picket(&args);
    lab.scan("1-200");
    let block = picket.wait_line_at(|v| is_block(v, "block"), Duration::from_secs(10));
    let (block, _) = block.unwrap_or_else(|| panic!("no block line\n{}", picket.report()));
    assert_eq!(str_at(&block, "/source/ip"), s.scanner(), "{block}");
    assert_eq!(str_at(&block, "/rule/name"), "port_scan");
    assert_eq!(str_at(&block, "/event/reason"), "episode");
    assert_eq!(block["picket"]["dry_run"], false);

    assert!(
        !s.get_from(&s.scanner()),
        "the blocked scanner got through\n{}",
        picket.report()
    );
    assert!(
        s.get_from(&s.other),
        "the other client was blocked\n{}",
        picket.report()
    );
    assert_eq!(metric(lab, "picket_blocked_sources"), Some(1.0));
    let dropped = wait_until(Duration::from_secs(3), || {
        metric(lab, "picket_block_dropped_packets_total").filter(|v| *v > 0.0)
    });
    assert!(
        dropped.is_some(),
        "no dropped packets counted\n{}",
        picket.report()
    );

    // Episode end (window + end_after) + ttl: unblocked.
    let unblock = picket.wait_line_at(|v| is_block(v, "unblock"), Duration::from_secs(20));
    let (unblock, _) = unblock.unwrap_or_else(|| panic!("no unblock line\n{}", picket.report()));
    assert_eq!(str_at(&unblock, "/event/reason"), "expired", "{unblock}");
    assert!(
        s.get_from(&s.scanner()),
        "still blocked after the ttl\n{}",
        picket.report()
    );
    assert_eq!(metric(lab, "picket_blocked_sources"), Some(0.0));

    // Blocked again, then SIGKILL: the program and its maps go with the process.
    lab.scan("201-400");
    let first = block["event"]["id"].clone();
    let again = picket.wait_line_at(
        |v| is_block(v, "block") && v["event"]["id"] != first,
        Duration::from_secs(10),
    );
    assert!(again.is_some(), "not blocked again\n{}", picket.report());
    assert!(
        !s.get_from(&s.scanner()),
        "not blocked the second time\n{}",
        picket.report()
    );
    tests::signal(picket.pid(), libc::SIGKILL);
    let gone = wait_until(Duration::from_secs(10), || {
        (!picket.is_running()).then_some(())
    });
    assert!(gone.is_some());
    let free = wait_until(Duration::from_secs(10), || {
        s.get_from(&s.scanner()).then_some(())
    });
    assert!(free.is_some(), "still blocked after kill -9");
    assert!(!lab.xdp_attached(), "XDP still attached after kill -9");
}

#[test]
fn an_allowlisted_scanner_is_never_blocked() {
    let s = setup();
    let lab = &s.lab;
    let allow = format!("{}/32", s.scanner());
    let mut picket = lab.picket(&["--block", "--allow", &allow, "--poll-interval", "500ms"]);
    lab.scan("1-200");
    picket.collect_for(Duration::from_secs(3));
    assert!(
        !picket
            .lines()
            .iter()
            .any(|l| l.json["event"]["kind"] == "block"),
        "{}",
        picket.report()
    );
    assert!(
        s.get_from(&s.scanner()),
        "allowlisted scanner blocked\n{}",
        picket.report()
    );
    lab.stop_and_check_clean(&mut picket);
}

#[test]
fn dry_run_blocks_nothing_and_logs() {
    let s = setup();
    let lab = &s.lab;
    let mut picket: Picket = lab.picket(&[
        "--block-dry-run",
        "--poll-interval",
        "500ms",
        "--metrics-addr",
        METRICS,
    ]);
    assert!(
        picket.stderr().contains("blocking (dry run)"),
        "{}",
        picket.report()
    );
    lab.scan("1-200");
    let block = picket.wait_line_at(|v| is_block(v, "block"), Duration::from_secs(10));
    let (block, _) = block.unwrap_or_else(|| panic!("no dry-run block line\n{}", picket.report()));
    assert_eq!(block["picket"]["dry_run"], true, "{block}");
    assert_eq!(str_at(&block, "/source/ip"), s.scanner());
    assert!(
        s.get_from(&s.scanner()),
        "dry run dropped packets\n{}",
        picket.report()
    );
    // What would have been dropped is counted.
    let counted = wait_until(Duration::from_secs(3), || {
        metric(lab, "picket_block_dropped_packets_total").filter(|v| *v > 0.0)
    });
    assert!(counted.is_some(), "{}", picket.report());
    lab.stop_and_check_clean(&mut picket);
}
