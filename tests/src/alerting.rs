//! The alerting side a test runs in a namespace: a real Alertmanager (Debian's
//! `prometheus-alertmanager`, clustering off) routing every alert to a [`Webhook`], a small
//! receiver that appends each notification it gets to a file.

use std::{path::Path, time::Duration};

use serde_json::Value;

use crate::{PYTHON, http::http_get, netns::Netns, process::Proc, process::wait_until};

/// Where the test's Alertmanager listens, on the namespace's loopback.
pub const ALERTMANAGER: &str = "127.0.0.1:9093";
/// Where the webhook receiver listens.
const WEBHOOK: (&str, u16) = ("127.0.0.1", 9095);

/// The receiver: one line per POST body (JSON notifications).
const RECEIVER: &str = r#"
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        with open(sys.argv[3], "ab") as f:
            f.write(body.replace(b"\n", b" ") + b"\n")
        self.send_response(200)
        self.end_headers()
    def log_message(self, *args):
        pass
http.server.HTTPServer((sys.argv[1], int(sys.argv[2])), H).serve_forever()
"#;

/// A webhook receiver and the Alertmanager that notifies it, both in one namespace.
#[derive(Debug)]
pub struct Alerting {
    /// The Alertmanager process.
    pub alertmanager: Proc,
    /// The receiver process.
    pub webhook: Proc,
    log: std::path::PathBuf,
    /// `Authorization` header for its API, when it asks for basic auth.
    auth: Option<String>,
}

impl Alerting {
    /// Starts both in `ns` (files under `dir`) and waits until Alertmanager is ready.
    pub fn start(ns: &Netns, dir: &Path) -> Alerting {
        Alerting::start_with(ns, dir, None)
    }

    /// Like [`Alerting::start`]; with `basic_auth` (user, password) Alertmanager's API asks
    /// for them (its own `--web.config.file`, bcrypt hash).
    pub fn start_with(ns: &Netns, dir: &Path, basic_auth: Option<(&str, &str)>) -> Alerting {
        let log = dir.join("webhook.jsonl");
        let mut hook = ns.exec(PYTHON);
        hook.args(["-c", RECEIVER, WEBHOOK.0, &WEBHOOK.1.to_string()])
            .arg(&log);
        let webhook = Proc::spawn(hook, "webhook receiver");
        ns.wait_listening("tcp", WEBHOOK.1, Duration::from_secs(10));
        let config = format!(
            "route:\n  receiver: hook\n  group_by: ['alertname', 'source_ip', 'ip']\n  \
             group_wait: 1s\n  group_interval: 1s\n  repeat_interval: 1h\n\
             receivers:\n  - name: hook\n    webhook_configs:\n      - url: http://{}:{}/\n        \
             send_resolved: true\n",
            WEBHOOK.0, WEBHOOK.1
        );
        let config_path = dir.join("alertmanager.yml");
        std::fs::write(&config_path, config).expect("write alertmanager.yml");
        let mut cmd = ns.exec("prometheus-alertmanager");
        let auth = basic_auth.map(|(user, password)| {
            let hash = bcrypt::hash(password, 6).expect("bcrypt");
            let web = dir.join("am-web.yml");
            std::fs::write(&web, format!("basic_auth_users:\n  {user}: '{hash}'\n"))
                .expect("write am-web.yml");
            cmd.arg(format!("--web.config.file={}", web.display()));
            let cred = base64::Engine::encode(
                &base64::engine::general_purpose::STANDARD,
                format!("{user}:{password}"),
            );
            format!("Basic {cred}")
        });
        cmd.arg(format!("--config.file={}", config_path.display()))
            .arg(format!("--storage.path={}", dir.join("am-data").display()))
            .arg(format!("--web.listen-address={ALERTMANAGER}"))
            .arg("--cluster.listen-address=");
        let mut alertmanager = Proc::spawn(cmd, "alertmanager");
        let headers: Vec<(&str, &str)> =
            auth.iter().map(|a| ("Authorization", a.as_str())).collect();
        let ready = wait_until(Duration::from_secs(30), || {
            http_get(ns, &format!("http://{ALERTMANAGER}/-/ready"), &[], &headers)
                .ok()
                .filter(|r| r.status == 200)
        });
        let _ = alertmanager.exited();
        assert!(
            ready.is_some(),
            "Alertmanager never ready\n{}",
            alertmanager.logs()
        );
        Alerting {
            alertmanager,
            webhook,
            log,
            auth,
        }
    }

    /// The alerts Alertmanager lists now (`GET /api/v2/alerts`: active, not resolved).
    pub fn alerts(&self, ns: &Netns) -> Vec<Value> {
        let headers: Vec<(&str, &str)> = self
            .auth
            .iter()
            .map(|a| ("Authorization", a.as_str()))
            .collect();
        let url = format!("http://{ALERTMANAGER}/api/v2/alerts");
        let Ok(r) = http_get(ns, &url, &[], &headers) else {
            return Vec::new();
        };
        serde_json::from_str::<Value>(&r.body)
            .ok()
            .and_then(|v| v.as_array().cloned())
            .unwrap_or_default()
    }

    /// Every alert of every notification the webhook received (each with its `status`,
    /// `firing` or `resolved`).
    pub fn notified(&self) -> Vec<Value> {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        text.lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .flat_map(|n| n["alerts"].as_array().cloned().unwrap_or_default())
            .collect()
    }

    /// Text for assertion messages.
    pub fn logs(&self) -> String {
        format!(
            "--- webhook log:\n{}\n{}",
            std::fs::read_to_string(&self.log).unwrap_or_default(),
            self.alertmanager.logs()
        )
    }
}
