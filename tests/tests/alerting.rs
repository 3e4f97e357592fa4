//! Alerts where operators route them (root): picket pushes its episodes to a real
//! Alertmanager (`--alertmanager`, with basic auth), which notifies a webhook; and a fleet of three agents in
//! three namespaces, scraped by one real Prometheus whose PrometheusRule alerts (one source
//! on several nodes, scans on several nodes) fire and reach the same kind of Alertmanager.

use std::{process::Command, time::Duration};

use serde_json::Value;
use tests::{
    ALERTMANAGER, Alerting, Lab, Netns, Picket, Proc, VethPair, http_get, output, require_root,
    require_tools, rules_file_of_prometheus_rule, temp_dir, unique_base, wait_until,
    workspace_root,
};

const METRICS: &str = "127.0.0.1:9464";

/// The label `k` of an Alertmanager or Prometheus alert.
fn label<'a>(a: &'a Value, k: &str) -> &'a str {
    a["labels"][k].as_str().unwrap_or("")
}

#[test]
fn episodes_reach_alertmanager_and_resolve() {
    require_root();
    require_tools(&["nmap", "prometheus-alertmanager"]);
    let dir = temp_dir("alertmanager");
    let lab = Lab::new();
    let victim = &lab.victim;
    // Alertmanager asks for basic auth; picket has the password in a file.
    let alerting = Alerting::start_with(victim, dir.path(), Some(("picket", "am-pass")));
    let password = dir.path().join("am-password");
    std::fs::write(&password, "am-pass\n").unwrap();
    let password = password.display().to_string();
    let url = format!("http://{ALERTMANAGER}");
    let mut args = vec![
        "--alertmanager",
        &url,
        "--alertmanager-user",
        "picket",
        "--alertmanager-password-file",
        &password,
        "--metrics-addr",
        METRICS,
    ];
    args.extend(tests::QUICK_EPISODES);
    let mut picket = lab.picket(&args);
    assert!(
        !picket.stderr().contains("unreachable"),
        "{}",
        picket.report()
    );

    let nmap = lab.scan("1-200");
    assert!(nmap.contains("Nmap done"), "{nmap}");
    let start = picket.wait_alert(|v| tests::is_start(v, "port_scan"), Duration::from_secs(10));
    assert!(start.is_some(), "no port_scan start\n{}", picket.report());

    // Listed by Alertmanager with the labels and annotations.
    let attacker = lab.veth.attacker_v4.to_string();
    let listed = wait_until(Duration::from_secs(15), || {
        alerting
            .alerts(victim)
            .into_iter()
            .find(|a| label(a, "alertname") == "PicketPortScan")
    })
    .unwrap_or_else(|| panic!("no PicketPortScan in /api/v2/alerts\n{}", alerting.logs()));
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    for (k, v) in [
        ("rule", "port_scan"),
        ("scope", "source"),
        ("severity", "warning"),
        ("source_ip", attacker.as_str()),
        ("destination_ip", &lab.veth.victim_v4.to_string()),
        ("instance", hostname.trim()),
    ] {
        assert_eq!(label(&listed, k), v, "{k}: {listed}");
    }
    assert_eq!(listed["status"]["state"], "active", "{listed}");
    let summary = listed["annotations"]["summary"].as_str().unwrap_or("");
    assert!(
        summary.contains(&attacker) && summary.contains("ports"),
        "{listed}"
    );
    assert!(
        listed["annotations"]["value"].as_str().is_some(),
        "{listed}"
    );

    // The webhook got it firing, then resolved once the episode ended.
    let fired = wait_until(Duration::from_secs(15), || {
        alerting
            .notified()
            .into_iter()
            .find(|a| label(a, "alertname") == "PicketPortScan" && a["status"] == "firing")
    });
    assert!(fired.is_some(), "webhook not notified\n{}", alerting.logs());
    let end = picket.wait_alert(
        |v| v["event"]["action"] == "end" && v["rule"]["name"] == "port_scan",
        Duration::from_secs(20),
    );
    assert!(end.is_some(), "no end\n{}", picket.report());
    let resolved = wait_until(Duration::from_secs(15), || {
        alerting
            .notified()
            .into_iter()
            .find(|a| label(a, "alertname") == "PicketPortScan" && a["status"] == "resolved")
    });
    assert!(resolved.is_some(), "never resolved\n{}", alerting.logs());
    assert!(
        !alerting
            .alerts(victim)
            .iter()
            .any(|a| label(a, "alertname") == "PicketPortScan"),
        "still listed after the end\n{}",
        alerting.logs()
    );

    // Counted in /metrics.
    let m = http_get(victim, &format!("http://{METRICS}/metrics"), &[], &[]).unwrap();
    let count = |name: &str| {
        m.body
            .lines()
            .find(|l| l.starts_with(&format!("{name}{{alertmanager=\"{url}\"}}")))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
    };
    assert!(
        count("picket_alertmanager_alerts_sent_total") >= Some(2.0),
        "{}",
        m.body
    );
    assert_eq!(count("picket_alertmanager_alerts_failed_total"), Some(0.0));
    lab.stop_and_check_clean(&mut picket);
}

#[test]
fn an_unreachable_alertmanager_is_one_line_and_bad_urls_are_refused() {
    require_root();
    let lab = Lab::new();
    // Nothing listens on port 1 of the victim's loopback.
    let mut picket = lab.picket(&["--alertmanager", "http://127.0.0.1:1"]);
    picket.collect_for(Duration::from_secs(2));
    let lines: Vec<String> = picket
        .stderr()
        .lines()
        .filter(|l| l.contains("alertmanager http://127.0.0.1:1 unreachable"))
        .map(str::to_string)
        .collect();
    assert_eq!(lines.len(), 1, "{}", picket.report());
    assert!(picket.is_running(), "{}", picket.report());
    lab.stop_and_check_clean(&mut picket);

    let out = output(Command::new(tests::picket_bin()).args([
        "--alertmanager",
        "ftp://x",
        "--duration",
        "1s",
    ]));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("ftp://x") && err.trim().lines().count() <= 3 && !err.contains("panicked"),
        "{err}"
    );
}

/// Three "nodes" (namespaces), each on its own veth to one hub namespace where the scanner,
/// Prometheus and Alertmanager run.
#[test]
fn prometheus_correlates_a_scan_across_nodes_and_forwards_to_alertmanager() {
    require_root();
    require_tools(&["nmap", "prometheus", "prometheus-alertmanager"]);
    let dir = temp_dir("fleet");
    let base = unique_base();
    let hub = Netns::new(&format!("{base}h"));
    let mut nodes: Vec<(Netns, VethPair)> = Vec::new();
    for i in 0..3u8 {
        let b = unique_base();
        let ns = Netns::new(&format!("{b}n"));
        // Three different /24s on the hub (the namespaces are this test's own).
        let pair = VethPair::new(&hub, &ns, &b, 201 + i);
        nodes.push((ns, pair));
    }
    // One scanner address for all three nodes.
    let scanner = format!("10.251.{}.1", std::process::id() % 250);
    hub.ip(&["addr", "add", &format!("{scanner}/32"), "dev", "lo"]);
    for (ns, pair) in &nodes {
        ns.ip(&[
            "route",
            "add",
            &format!("{scanner}/32"),
            "via",
            &pair.attacker_v4.to_string(),
        ]);
    }

    let mut agents: Vec<Picket> = Vec::new();
    for (ns, pair) in &nodes {
        let addr = format!("{}:9464", pair.victim_v4);
        let mut p = Picket::spawn(
            ns,
            &pair.victim_if,
            &[
                "--metrics-addr",
                &addr,
                "--metrics-top-k",
                "5",
                "--end-after",
                "30s",
            ],
        );
        p.wait_watching(Duration::from_secs(15));
        agents.push(p);
    }

    let alerting = Alerting::start(&hub, dir.path());
    let manifest =
        std::fs::read_to_string(workspace_root().join("deploy/kubernetes/prometheusrule.yaml"))
            .unwrap();
    let rules_path = dir.path().join("rules.yml");
    std::fs::write(&rules_path, rules_file_of_prometheus_rule(&manifest)).unwrap();
    let targets: Vec<String> = nodes
        .iter()
        .map(|(_, p)| format!("'{}:9464'", p.victim_v4))
        .collect();
    let config = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
         rule_files:\n  - {}\n\
         alerting:\n  alertmanagers:\n    - static_configs:\n        - targets: ['{ALERTMANAGER}']\n\
         scrape_configs:\n  - job_name: picket\n    static_configs:\n      - targets: [{}]\n",
        rules_path.display(),
        targets.join(", ")
    );
    let config_path = dir.path().join("prometheus.yml");
    std::fs::write(&config_path, config).unwrap();
    let prom_addr = "127.0.0.1:9090";
    let mut prom_cmd = hub.exec("prometheus");
    prom_cmd
        .arg(format!("--config.file={}", config_path.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address={prom_addr}"));
    let mut prometheus = Proc::spawn(prom_cmd, "prometheus");
    let query = |q: &str| -> Vec<Value> {
        http_get(
            &hub,
            &format!("http://{prom_addr}/api/v1/query"),
            &[("query", q)],
            &[],
        )
        .ok()
        .and_then(|r| serde_json::from_str::<Value>(&r.body).ok())
        .and_then(|v| v["data"]["result"].as_array().cloned())
        .unwrap_or_default()
    };
    let up = wait_until(Duration::from_secs(60), || {
        (query(r#"sum(up{job="picket"})"#)
            .first()
            .and_then(|s| s["value"][1].as_str())
            == Some("3"))
        .then_some(())
    });
    let _ = prometheus.exited();
    assert!(
        up.is_some(),
        "Prometheus never scraped all three\n{}",
        prometheus.logs()
    );

    // One source scans every node.
    for (_, pair) in &nodes {
        let target = pair.victim_v4.to_string();
        let extra = ["-S", scanner.as_str(), "-e", pair.attacker_if.as_str()];
        let out = tests::syn_scan(&hub, &target, "1-200", &extra);
        assert!(out.contains("Nmap done"), "{out}");
    }
    for p in &mut agents {
        let a = p.wait_alert(|v| tests::is_start(v, "port_scan"), Duration::from_secs(10));
        assert!(a.is_some(), "a node missed the scan\n{}", p.report());
        assert_eq!(tests::str_at(a.as_ref().unwrap(), "/source/ip"), scanner);
    }

    // Both fleet rules fire in Prometheus…
    let firing = |name: &str| {
        let r = http_get(&hub, &format!("http://{prom_addr}/api/v1/alerts"), &[], &[]).ok()?;
        let v: Value = serde_json::from_str(&r.body).ok()?;
        v["data"]["alerts"]
            .as_array()?
            .iter()
            .find(|a| label(a, "alertname") == name && a["state"] == "firing")
            .cloned()
    };
    let same = wait_until(Duration::from_secs(30), || {
        firing("PicketSameSourceOnSeveralNodes")
    });
    let same = same.unwrap_or_else(|| {
        panic!(
            "PicketSameSourceOnSeveralNodes not firing\n{}",
            prometheus.logs()
        )
    });
    assert_eq!(label(&same, "ip"), scanner, "{same}");
    let several = wait_until(Duration::from_secs(30), || {
        firing("PicketScanOnSeveralNodes")
    });
    assert!(
        several.is_some(),
        "PicketScanOnSeveralNodes not firing\n{}",
        prometheus.logs()
    );

    // …and Prometheus forwards them to Alertmanager, which notifies the webhook.
    for name in ["PicketSameSourceOnSeveralNodes", "PicketScanOnSeveralNodes"] {
        let at_am = wait_until(Duration::from_secs(20), || {
            alerting
                .alerts(&hub)
                .into_iter()
                .find(|a| label(a, "alertname") == name)
        });
        assert!(
            at_am.is_some(),
            "{name} not in Alertmanager\n{}",
            alerting.logs()
        );
        let hooked = wait_until(Duration::from_secs(15), || {
            alerting
                .notified()
                .into_iter()
                .find(|a| label(a, "alertname") == name && a["status"] == "firing")
        });
        assert!(hooked.is_some(), "{name} not notified\n{}", alerting.logs());
    }
    for p in &mut agents {
        assert!(p.stop().success(), "{}", p.report());
    }
    prometheus.stop();
}
