//! `--metrics-addr` against a real Prometheus (root): picket and Prometheus run in the
//! victim namespace, Prometheus scrapes picket on that namespace's loopback every second and
//! evaluates the rules of `deploy/kubernetes/prometheusrule.yaml`, nmap scans the victim
//! from the attacker namespace, and the test reads the outcome through Prometheus' HTTP API.
//! Also: both exposition formats, `promtool check metrics`/`check rules`, `/healthz` and
//! `/readyz`, and that every metric the rules and the Grafana dashboard use exists.

use std::{
    io::Write as _,
    process::{Command, Stdio},
    time::Duration,
};

use serde_json::Value;
use tests::{
    Lab, Netns, Proc, http_get, metric_names, picket_bin, require_root, require_tools,
    rules_file_of_prometheus_rule, run_ok, temp_dir, wait_until, workspace_root,
};

const METRICS: &str = "127.0.0.1:9464";
const PROMETHEUS: &str = "127.0.0.1:9090";
const OPENMETRICS_ACCEPT: &str = "application/openmetrics-text;version=1.0.0,\
     application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

fn url(host: &str, path: &str) -> String {
    format!("http://{host}{path}")
}

/// The result vector of an instant query.
fn query(ns: &Netns, promql: &str) -> Vec<Value> {
    let query = [("query", promql)];
    let Ok(r) = http_get(ns, &url(PROMETHEUS, "/api/v1/query"), &query, &[]) else {
        return Vec::new();
    };
    let v: Value = serde_json::from_str(&r.body).unwrap_or(Value::Null);
    v["data"]["result"].as_array().cloned().unwrap_or_default()
}

/// The value of the first sample of an instant query.
fn first_value(ns: &Netns, promql: &str) -> Option<f64> {
    query(ns, promql)
        .first()
        .and_then(|s| s["value"][1].as_str())
        .and_then(|v| v.parse().ok())
}

fn promtool(args: &[&str], stdin: &str) -> (bool, String) {
    let mut child = Command::new("promtool")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start promtool");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn prometheus_scrapes_picket_and_sees_a_port_scan() {
    require_root();
    require_tools(&["nmap", "prometheus", "promtool"]);
    let bin = picket_bin();
    let dir = temp_dir("metrics");
    let lab = Lab::new();
    let victim = &lab.victim;

    let mut cmd = victim.exec(&bin);
    cmd.args(["--iface", &lab.veth.victim_if, "--output", "json"])
        .args(["--summary-interval", "0s", "--poll-interval", "500ms"])
        .args(["--metrics-addr", METRICS, "--metrics-top-k", "5"]);
    let mut picket = Proc::spawn(cmd, "picket");
    picket.wait_for("the watching line", Duration::from_secs(20), |_, err| {
        err.contains("picket: watching")
    });
    assert!(
        picket
            .stderr()
            .contains(&format!("metrics on http://{METRICS}/metrics")),
        "{}",
        picket.logs()
    );

    // Liveness and readiness.
    let health = http_get(victim, &url(METRICS, "/healthz"), &[], &[]).expect("GET /healthz");
    assert_eq!((health.status, health.body.as_str()), (200, "ok\n"));
    let ready = wait_until(Duration::from_secs(5), || {
        http_get(victim, &url(METRICS, "/readyz"), &[], &[])
            .ok()
            .filter(|r| r.status == 200)
    });
    assert!(ready.is_some(), "/readyz never 200\n{}", picket.logs());

    // Content negotiation: Prometheus text by default, OpenMetrics when asked first.
    let text = http_get(victim, &url(METRICS, "/metrics"), &[], &[]).expect("GET /metrics");
    assert_eq!(text.status, 200);
    assert_eq!(
        text.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    assert!(
        !text.body.contains("# EOF") && text.body.contains("# TYPE picket_packets_total counter")
    );
    let om = http_get(
        victim,
        &url(METRICS, "/metrics"),
        &[],
        &[("Accept", OPENMETRICS_ACCEPT)],
    )
    .expect("GET /metrics (OpenMetrics)");
    assert_eq!(
        om.header("content-type"),
        Some("application/openmetrics-text; version=1.0.0; charset=utf-8")
    );
    assert!(om.body.ends_with("# EOF\n"), "{}", om.body);
    // No address labels by default-sized output: only the top-K family may have them.
    for line in text.body.lines().filter(|l| l.contains("ip=")) {
        assert!(
            line.starts_with("picket_top_offender_threshold_ratio{"),
            "{line}"
        );
    }

    // promtool's linter accepts the exposition.
    let (ok, lint) = promtool(&["check", "metrics"], &text.body);
    assert!(
        ok && lint.trim().is_empty(),
        "promtool check metrics:\n{lint}\n{}",
        text.body
    );

    // The PrometheusRule's rules, as a rules file.
    let manifest =
        std::fs::read_to_string(workspace_root().join("deploy/kubernetes/prometheusrule.yaml"))
            .unwrap();
    let rules = rules_file_of_prometheus_rule(&manifest);
    let rules_path = dir.path().join("rules.yml");
    std::fs::write(&rules_path, &rules).unwrap();
    let checked = run_ok(
        Command::new("promtool")
            .arg("check")
            .arg("rules")
            .arg(&rules_path),
    );
    assert!(checked.contains("SUCCESS"), "{checked}");

    // A real Prometheus on the victim's loopback.
    let config = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
         rule_files:\n  - {}\n\
         scrape_configs:\n  - job_name: picket\n    static_configs:\n      - targets: ['{METRICS}']\n",
        rules_path.display()
    );
    let config_path = dir.path().join("prometheus.yml");
    std::fs::write(&config_path, config).unwrap();
    let mut prom_cmd = victim.exec("prometheus");
    prom_cmd
        .arg(format!("--config.file={}", config_path.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address={PROMETHEUS}"));
    let mut prometheus = Proc::spawn(prom_cmd, "prometheus");
    let up = wait_until(Duration::from_secs(60), || {
        first_value(victim, r#"up{job="picket"}"#).filter(|v| *v == 1.0)
    });
    let _ = prometheus.exited();
    assert!(
        up.is_some(),
        "Prometheus never scraped picket\n{}",
        prometheus.logs()
    );
    let before = wait_until(Duration::from_secs(10), || {
        first_value(victim, r#"picket_alerts_total{rule="port_scan"}"#)
    })
    .expect("picket_alerts_total{rule=\"port_scan\"} exists before any alert");
    assert_eq!(before, 0.0);

    // The scan.
    let nmap = lab.scan("1-200");
    assert!(nmap.contains("Nmap done"), "{nmap}");
    picket.wait_for("a port_scan alert", Duration::from_secs(15), |out, _| {
        out.contains(r#""name":"port_scan""#)
    });
    let after = wait_until(Duration::from_secs(30), || {
        first_value(victim, r#"picket_alerts_total{rule="port_scan"}"#).filter(|v| *v > before)
    });
    assert!(
        after.is_some(),
        "Prometheus did not see picket_alerts_total{{rule=\"port_scan\"}} increase\n{}",
        picket.logs()
    );
    let offender = wait_until(Duration::from_secs(20), || {
        query(
            victim,
            r#"max_over_time(picket_top_offender_threshold_ratio{rule="port_scan"}[5m])"#,
        )
        .into_iter()
        .find_map(|s| s["metric"]["ip"].as_str().map(str::to_string))
    });
    assert_eq!(offender, Some(lab.veth.attacker_v4.to_string()));
    let packets = first_value(victim, r#"picket_packets_total{direction="ingress"}"#).unwrap();
    assert!(packets >= 200.0, "ingress packets {packets}");

    // The rule built on the same counter fires.
    let alert = wait_until(Duration::from_secs(30), || {
        let r = http_get(victim, &url(PROMETHEUS, "/api/v1/alerts"), &[], &[]).ok()?;
        let v: Value = serde_json::from_str(&r.body).ok()?;
        v["data"]["alerts"].as_array()?.iter().find_map(|a| {
            (a["labels"]["alertname"] == "PicketScanDetected" && a["state"] == "firing")
                .then(|| a["labels"]["rule"].as_str().unwrap_or("").to_string())
        })
    });
    assert_eq!(alert.as_deref(), Some("port_scan"), "{}", prometheus.logs());

    // Every metric the rules and the dashboard use is one picket exports.
    let exported: Vec<String> = query(victim, r#"count by (__name__) ({__name__=~"picket_.+"})"#)
        .iter()
        .filter_map(|s| s["metric"]["__name__"].as_str().map(str::to_string))
        .collect();
    let dashboard =
        std::fs::read_to_string(workspace_root().join("deploy/kubernetes/grafana-dashboard.json"))
            .unwrap();
    for name in metric_names(&rules).iter().chain(&metric_names(&dashboard)) {
        assert!(
            exported.contains(name),
            "{name} is not exported: {exported:?}"
        );
    }

    let status = picket.stop().expect("picket exit status");
    assert!(
        status.success(),
        "picket exited with {status}\n{}",
        picket.logs()
    );
    prometheus.stop();
}
