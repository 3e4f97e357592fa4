//! `--web-config` (root): TLS and basic auth on /metrics, in the Prometheus exporters' web
//! configuration format. A real Prometheus scrapes picket over TLS with basic auth (and
//! verifies the certificate); a wrong password gets 401; /healthz stays open.

use std::{process::Command, time::Duration};

use serde_json::Value;
use tests::{Lab, Proc, http_get, output, require_tools, run_ok, temp_dir, wait_until};

const METRICS: &str = "127.0.0.1:9464";
const PROMETHEUS: &str = "127.0.0.1:9090";
const PASSWORD: &str = "s3cret-scrape";

/// `curl -k` in the victim namespace: the status code of GET `path` with `user` (if any).
fn status(lab: &Lab, path: &str, user: Option<&str>) -> String {
    let url = format!("https://{METRICS}{path}");
    let mut args = vec!["-sk", "-o", "/dev/null", "-w", "%{http_code}", "-m", "5"];
    if let Some(u) = user {
        args.extend(["-u", u]);
    }
    args.push(&url);
    let out = output(lab.victim.exec("curl").args(&args));
    String::from_utf8_lossy(&out.stdout).to_string()
}

#[test]
fn prometheus_scrapes_over_tls_with_basic_auth() {
    require_tools(&["prometheus", "openssl", "curl"]);
    let dir = temp_dir("webconfig");
    let d = dir.path();
    run_ok(Command::new("openssl").current_dir(d).args([
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        "key.pem",
        "-out",
        "cert.pem",
        "-days",
        "1",
        "-subj",
        "/CN=picket",
        "-addext",
        "subjectAltName=IP:127.0.0.1",
    ]));
    let hash = bcrypt::hash(PASSWORD, 6).unwrap();
    // Relative paths: relative to the file, as exporter-toolkit resolves them.
    let web = d.join("web.yml");
    std::fs::write(
        &web,
        format!(
            "tls_server_config:\n  cert_file: cert.pem\n  key_file: key.pem\n\
             basic_auth_users:\n  prometheus: '{hash}'\n"
        ),
    )
    .unwrap();
    let lab = Lab::new();
    let web_arg = web.display().to_string();
    let mut picket = lab.picket(&["--metrics-addr", METRICS, "--web-config", &web_arg]);
    assert!(
        picket
            .stderr()
            .contains(&format!("metrics on https://{METRICS}/metrics")),
        "{}",
        picket.report()
    );

    let good = format!("prometheus:{PASSWORD}");
    assert_eq!(status(&lab, "/metrics", Some(&good)), "200");
    assert_eq!(status(&lab, "/metrics", Some("prometheus:wrong")), "401");
    assert_eq!(status(&lab, "/metrics", Some("nobody:x")), "401");
    assert_eq!(status(&lab, "/metrics", None), "401");
    assert_eq!(status(&lab, "/healthz", None), "200");
    // Plain HTTP is not served.
    assert!(
        http_get(&lab.victim, &format!("http://{METRICS}/metrics"), &[], &[])
            .map_or(true, |r| r.status != 200)
    );

    // A real Prometheus, verifying the certificate against it as CA.
    let config = format!(
        "global:\n  scrape_interval: 1s\n\
         scrape_configs:\n  - job_name: picket\n    scheme: https\n    \
         tls_config:\n      ca_file: {}\n    \
         basic_auth:\n      username: prometheus\n      password: {PASSWORD}\n    \
         static_configs:\n      - targets: ['{METRICS}']\n  \
         - job_name: wrong\n    scheme: https\n    \
         tls_config:\n      ca_file: {}\n    \
         basic_auth:\n      username: prometheus\n      password: wrong\n    \
         static_configs:\n      - targets: ['{METRICS}']\n",
        d.join("cert.pem").display(),
        d.join("cert.pem").display()
    );
    std::fs::write(d.join("prometheus.yml"), config).unwrap();
    let mut cmd = lab.victim.exec("prometheus");
    cmd.arg(format!(
        "--config.file={}",
        d.join("prometheus.yml").display()
    ))
    .arg(format!("--storage.tsdb.path={}", d.join("data").display()))
    .arg(format!("--web.listen-address={PROMETHEUS}"));
    let mut prometheus = Proc::spawn(cmd, "prometheus");
    let targets = || -> Vec<Value> {
        http_get(
            &lab.victim,
            &format!("http://{PROMETHEUS}/api/v1/targets"),
            &[],
            &[],
        )
        .ok()
        .and_then(|r| serde_json::from_str::<Value>(&r.body).ok())
        .and_then(|v| v["data"]["activeTargets"].as_array().cloned())
        .unwrap_or_default()
    };
    let healths = wait_until(Duration::from_secs(60), || {
        let t = targets();
        let of = |job: &str| {
            t.iter().find(|x| x["labels"]["job"] == job).map(|x| {
                (
                    x["health"].as_str().unwrap_or("").to_string(),
                    x["lastError"].as_str().unwrap_or("").to_string(),
                )
            })
        };
        match (of("picket"), of("wrong")) {
            (Some(a), Some(b)) if a.0 != "unknown" && b.0 != "unknown" => Some((a, b)),
            _ => None,
        }
    });
    let _ = prometheus.exited();
    let ((good_health, good_err), (bad_health, bad_err)) =
        healths.unwrap_or_else(|| panic!("no scrape results\n{}", prometheus.logs()));
    assert_eq!(good_health, "up", "{good_err}\n{}", prometheus.logs());
    assert_eq!(bad_health, "down");
    assert!(bad_err.contains("401"), "{bad_err}");
    // And it stored picket's series.
    let r = http_get(
        &lab.victim,
        &format!("http://{PROMETHEUS}/api/v1/query"),
        &[(
            "query",
            r#"picket_packets_total{job="picket",direction="ingress"}"#,
        )],
        &[],
    )
    .unwrap();
    assert!(r.body.contains("picket_packets_total"), "{}", r.body);
    prometheus.stop();
    lab.stop_and_check_clean(&mut picket);
}

#[test]
fn a_bad_web_config_is_one_line_and_a_non_zero_exit() {
    let dir = temp_dir("webconfig-bad");
    let missing = dir.path().join("missing.yml");
    let bad = dir.path().join("bad.yml");
    std::fs::write(&bad, "basic_auth_users:\n  prometheus: not-a-hash\n").unwrap();
    for (file, says) in [
        (&missing, "cannot read"),
        (&bad, "basic_auth_users.prometheus"),
    ] {
        let out = output(Command::new(tests::picket_bin()).args([
            "--metrics-addr",
            "127.0.0.1:0",
            "--web-config",
            &file.display().to_string(),
            "--duration",
            "1s",
        ]));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{err}");
        assert!(err.contains(says) && !err.contains("panicked"), "{err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
    }
}
