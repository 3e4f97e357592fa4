//! `--config FILE` and SIGHUP (root for the first test): a running picket reloads its
//! thresholds from the file without detaching, keeps its settings when the file turns bad,
//! and a scan below the old threshold alerts under the new one. Also `picket config check`
//! on files with several errors.

use std::{process::Command, thread, time::Duration};

use serde_json::Value;
use tests::{Lab, Proc, alert_lines, output, picket_bin, require_root, require_tools, temp_dir};

fn port_scan_alerts(stdout: &str) -> Vec<Value> {
    let mut starts = alert_lines(stdout, "port_scan");
    starts.retain(|v| v["event"]["action"] == "start");
    starts
}

#[test]
fn sighup_reloads_thresholds_from_the_file() {
    require_root();
    require_tools(&["nmap"]);
    let dir = temp_dir("reload");
    let lab = Lab::new();
    let config = dir.path().join("picket.toml");
    let file = |port_scan_ports: &str, window: &str| {
        format!(
            "output = \"json\"\npoll_interval = \"250ms\"\nwindow = \"{window}\"\n\
             summary_interval = \"0s\"\n[thresholds]\nport_scan_ports = {port_scan_ports}\n"
        )
    };
    std::fs::write(&config, file("1000", "2s")).unwrap();
    let mut cmd = lab.victim.exec(picket_bin());
    cmd.arg("--config")
        .arg(&config)
        .args(["--iface", &lab.veth.victim_if, "--end-after", "2s"]);
    let mut picket = Proc::spawn(cmd, "picket");
    picket.wait_for("the watching line", Duration::from_secs(20), |_, err| {
        err.contains("picket: watching") && err.contains("poll 250ms, window 2s")
    });

    // 40 ports stay below the file's threshold of 1000.
    lab.scan("1-40");
    // The fast window is over, and the slower scales count a set only while its failures
    // keep coming (one within a tenth of their window: 6 s of the medium's 60 s), so after
    // 8 s the scan's counts no longer count for anything.
    thread::sleep(Duration::from_secs(8));
    assert!(
        port_scan_alerts(&picket.stdout()).is_empty(),
        "{}",
        picket.logs()
    );

    // Lower the threshold (and change a key that needs a restart), then SIGHUP.
    std::fs::write(&config, file("20", "3s")).unwrap();
    picket.signal(libc::SIGHUP);
    let line = picket.wait_stderr_line("picket: reloaded", Duration::from_secs(5));
    assert_eq!(
        line,
        format!(
            "picket: reloaded {}: thresholds.port_scan_ports 1000 -> 20 (changes to window \
             take effect after a restart)",
            config.display()
        )
    );

    // A bad file: one line naming the problem, the settings stay.
    std::fs::write(&config, "[thresholds]\nport_scan_ports = \"many\"\n").unwrap();
    picket.signal(libc::SIGHUP);
    picket.wait_for(
        "the failed-reload line",
        Duration::from_secs(5),
        |_, err| err.contains("failed, keeping the current settings"),
    );
    let failed = picket
        .stderr()
        .lines()
        .find(|l| l.contains("keeping the current settings"))
        .unwrap()
        .to_string();
    assert!(
        failed.contains(":2:19: thresholds.port_scan_ports: invalid type: string \"many\""),
        "{failed}"
    );
    thread::sleep(Duration::from_secs(1));
    assert!(
        port_scan_alerts(&picket.stdout()).is_empty(),
        "{}",
        picket.logs()
    );

    // The same 40 ports now alert, against the reloaded threshold.
    lab.scan("1-40");
    picket.wait_for("a port_scan alert", Duration::from_secs(10), |out, _| {
        !port_scan_alerts(out).is_empty()
    });
    let alert = port_scan_alerts(&picket.stdout()).remove(0);
    assert_eq!(alert["picket"]["threshold"], 20.0, "{alert}");
    assert_eq!(alert["source"]["ip"], lab.veth.attacker_v4.to_string());

    // Reloads never detached it: it is still running and exits cleanly.
    assert!(picket.exited().is_none(), "{}", picket.logs());
    assert!(!picket.stderr().contains("detaching\npicket: attached"));
    let status = picket.stop().unwrap();
    assert!(status.success(), "{status}\n{}", picket.logs());
}

#[test]
fn config_check_reports_every_error_and_accepts_the_default() {
    let dir = temp_dir("check");
    let default = output(Command::new(picket_bin()).args(["config", "default"]));
    assert!(default.status.success());
    let good = dir.path().join("default.toml");
    std::fs::write(&good, &default.stdout).unwrap();
    let ok = output(
        Command::new(picket_bin())
            .args(["config", "check"])
            .arg(&good),
    );
    assert!(ok.status.success(), "{ok:?}");

    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "window = \"soon\"\nallow = [\"10.0.0.0/8\", \"10.0.0.300\"]\n\
         [metrics]\ntop_k = 5000\nport = 1\n",
    )
    .unwrap();
    let out = output(
        Command::new(picket_bin())
            .args(["config", "check"])
            .arg(&bad),
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    let b = bad.display();
    let want = [
        format!("{b}:1:10: window: \"soon\": "),
        format!("{b}:2:24: allow[1]: \"10.0.0.300\" is not a CIDR or IP address"),
        format!("{b}:4:9: metrics.top_k: 5000 is above the maximum 1000"),
        format!(
            "{b}:5:1: metrics.port: unknown field `port`, expected one of `addr`, `top_k`, `web_config`"
        ),
        format!("picket: error: {b}: 4 errors"),
    ];
    assert_eq!(lines.len(), want.len(), "{stderr}");
    for (line, want) in lines.iter().zip(&want) {
        assert!(
            line.starts_with(want.as_str()),
            "got {line:?}, want {want:?}…"
        );
    }
}
