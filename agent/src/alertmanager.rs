//! Pushing alert episodes to Alertmanager's v2 API (`--alertmanager URL`), the way
//! Prometheus does: an episode's start becomes a firing alert, re-sent every
//! `resend_interval` while the episode lasts with `endsAt` a few resend intervals ahead (so
//! Alertmanager resolves it by itself if the agent dies), and its end is sent with `endsAt`
//! set to the end.
//!
//! [`Book`] is the pure part (events → alerts to send, and when to re-send), unit-tested;
//! [`Notifier`] hands its batches to one sender thread per URL through a bounded queue, so a
//! slow or dead Alertmanager never delays polling: when the queue is full the oldest alerts
//! are dropped (and counted), and a failed POST is retried with exponential backoff.

use std::{
    collections::{BTreeMap, HashMap, VecDeque},
    sync::{Arc, Condvar, Mutex},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};
use base64::Engine as _;
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family},
};
use serde::Serialize;

use crate::{config::Settings, metrics::Metrics};
use picket_detect::{
    detector::{Rule, Scope},
    document::{alert_text, rfc3339},
    episodes::{AlertEvent, Phase},
};

/// Alerts a sender thread holds at most; older ones are dropped first when it is full.
pub const QUEUE_ALERTS: usize = 2048;
/// Alerts in one POST at most (Prometheus' notifier sends 64).
const BATCH: usize = 64;
/// First and longest wait between two tries of a failed POST.
const BACKOFF: (Duration, Duration) = (Duration::from_millis(500), Duration::from_secs(30));
/// A firing alert's `endsAt` is this many resend intervals ahead (as Prometheus does), so
/// an agent that stops sending lets its alerts resolve on their own.
const VALID_FOR_RESENDS: u32 = 4;

/// Where and how to send.
#[derive(Clone, Debug)]
pub struct AlertmanagerConfig {
    /// Alertmanager base URLs (`http://host:9093`); the API path is appended.
    pub urls: Vec<String>,
    /// Time for one request.
    pub timeout: Duration,
    /// Re-send open alerts this often.
    pub resend_interval: Duration,
    /// The `Authorization` header, if any.
    pub authorization: Option<String>,
}

/// Reads the credentials: basic auth (user and a password file) or a bearer token file.
pub fn authorization(
    user: Option<&str>,
    password_file: Option<&std::path::Path>,
    token_file: Option<&std::path::Path>,
) -> Result<Option<String>> {
    let read = |p: &std::path::Path, what: &str| {
        std::fs::read_to_string(p)
            .map(|s| s.trim_end_matches(['\r', '\n']).to_string())
            .with_context(|| format!("cannot read the Alertmanager {what} file {}", p.display()))
    };
    match (user, password_file, token_file) {
        (Some(_), _, Some(_)) => {
            anyhow::bail!("alertmanager: basic_auth_user and bearer_token_file exclude each other")
        }
        (Some(u), p, None) => {
            let password = p
                .map(|p| read(p, "password"))
                .transpose()?
                .unwrap_or_default();
            Ok(Some(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{u}:{password}"))
            )))
        }
        (None, Some(_), _) => {
            anyhow::bail!("alertmanager: password_file needs basic_auth_user")
        }
        (None, None, Some(t)) => Ok(Some(format!("Bearer {}", read(t, "bearer token")?))),
        (None, None, None) => Ok(None),
    }
}

/// A URL the sender can use: http(s), with a host.
pub fn check_url(url: &String) -> Result<(), String> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or_else(|| format!("{url:?} is not an http:// or https:// URL"))?;
    if rest.is_empty() || rest.starts_with('/') || url.contains(char::is_whitespace) {
        return Err(format!("{url:?} has no host"));
    }
    Ok(())
}

/// One alert of the v2 API's `postableAlerts`.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Alert {
    /// Identify the alert: `alertname`, `rule`, `scope`, `severity`, `instance`, `node`,
    /// `source_ip`, `destination_ip`.
    pub labels: BTreeMap<String, String>,
    /// `summary` and the values.
    pub annotations: BTreeMap<String, String>,
    /// When the episode started (RFC 3339).
    pub starts_at: String,
    /// When it ended, or (while firing) when Alertmanager should resolve it by itself.
    pub ends_at: String,
}

/// `alertname` of a rule: `PicketPortScan`, ….
pub fn alertname(rule: Rule) -> String {
    let mut out = String::from("Picket");
    for word in rule.name().split('_') {
        let mut c = word.chars();
        if let Some(first) = c.next() {
            out.extend(first.to_uppercase());
            out.push_str(c.as_str());
        }
    }
    out
}

/// `severity`: floods hurt now, scans announce.
fn severity(rule: Rule) -> &'static str {
    match rule {
        Rule::PortScan | Rule::HostSweep | Rule::DistributedScan | Rule::DecoyScan => "warning",
        Rule::SynFlood
        | Rule::UdpFlood
        | Rule::IcmpFlood
        | Rule::TcpFlood
        | Rule::FragFlood
        | Rule::ProtoFlood
        | Rule::Reflection => "critical",
    }
}

/// The open episodes and when each was last sent.
#[derive(Debug)]
pub struct Book {
    instance: String,
    node: Option<String>,
    resend: Duration,
    open: HashMap<u64, (Alert, Instant)>,
}

impl Book {
    /// No open alerts; labels carry `instance` (and `node` when known).
    pub fn new(instance: &str, node: Option<&str>, resend: Duration) -> Book {
        Book {
            instance: instance.to_string(),
            node: node.map(str::to_string),
            resend,
            open: HashMap::new(),
        }
    }

    /// Open episodes.
    pub fn open(&self) -> usize {
        self.open.len()
    }

    fn labels(&self, e: &AlertEvent) -> BTreeMap<String, String> {
        let f = &e.finding;
        let mut l = BTreeMap::new();
        l.insert("alertname".into(), alertname(f.rule));
        l.insert("rule".into(), f.rule.name().into());
        let scope = match f.scope {
            Scope::Source => "source",
            Scope::Destination => "destination",
            Scope::Storm => "storm",
        };
        l.insert("scope".into(), scope.into());
        l.insert("severity".into(), severity(f.rule).into());
        l.insert("instance".into(), self.instance.clone());
        if let Some(n) = &self.node {
            l.insert("node".into(), n.clone());
        }
        if let Some(s) = f.source {
            l.insert("source_ip".into(), s.to_string());
        }
        // A host sweep's destination changes with every probe: not an identity.
        if let Some(d) = f.destination.filter(|_| f.rule != Rule::HostSweep) {
            l.insert("destination_ip".into(), d.to_string());
        }
        l
    }

    fn annotations(e: &AlertEvent) -> BTreeMap<String, String> {
        let f = &e.finding;
        let text = alert_text(e);
        // The text line from the rule on: "port_scan 10.0.0.1 -> 10.0.0.2: 120 ports …".
        let tag = format!("#{} ", e.episode);
        let summary = text
            .split_once(&tag)
            .map_or(text.as_str(), |(_, r)| r)
            .trim();
        BTreeMap::from([
            ("summary".into(), summary.to_string()),
            ("value".into(), f.value.to_string()),
            ("threshold".into(), f.threshold.to_string()),
            ("peak".into(), e.peak.to_string()),
            ("unit".into(), <&str>::from(f.unit).to_string()),
            ("window_s".into(), f.window_s.to_string()),
            ("episode".into(), e.episode.to_string()),
        ])
    }

    /// The alerts to send for this poll's `events` (at `now`, wall time `wall_ns`), and the
    /// open ones due for a re-send.
    pub fn step(&mut self, events: &[AlertEvent], now: Instant, wall_ns: u64) -> Vec<Alert> {
        let valid_ns = u64::try_from((self.resend * VALID_FOR_RESENDS).as_nanos())
            .unwrap_or(u64::MAX)
            .saturating_add(wall_ns);
        let mut out = Vec::new();
        for e in events {
            match e.phase {
                Phase::Start | Phase::Update => {
                    // Labels stay those of the start: they are the alert's identity.
                    let labels = match self.open.get(&e.episode) {
                        Some((a, _)) => a.labels.clone(),
                        None => self.labels(e),
                    };
                    let a = Alert {
                        labels,
                        annotations: Self::annotations(e),
                        starts_at: rfc3339(e.started_ns),
                        ends_at: rfc3339(valid_ns),
                    };
                    out.push(a.clone());
                    self.open.insert(e.episode, (a, now));
                }
                Phase::End => {
                    let labels = match self.open.remove(&e.episode) {
                        Some((a, _)) => a.labels,
                        None => self.labels(e),
                    };
                    out.push(Alert {
                        labels,
                        annotations: Self::annotations(e),
                        starts_at: rfc3339(e.started_ns),
                        ends_at: rfc3339(e.at_ns),
                    });
                }
            }
        }
        for (a, sent) in self.open.values_mut() {
            if now.saturating_duration_since(*sent) >= self.resend {
                a.ends_at = rfc3339(valid_ns);
                *sent = now;
                out.push(a.clone());
            }
        }
        out
    }
}

/// `alertmanager`: the URL a counter is about.
#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct UrlLabels {
    alertmanager: String,
}

/// The notifier's counters, registered by `crate::metrics`.
#[derive(Clone, Debug, Default)]
pub struct Counters {
    /// Alerts Alertmanager accepted.
    pub sent: Family<UrlLabels, Counter>,
    /// Alerts in POSTs that failed (each try counts).
    pub failed: Family<UrlLabels, Counter>,
    /// Alerts dropped from a full queue.
    pub dropped: Family<UrlLabels, Counter>,
}

/// The Alertmanager notifier, when URLs are configured.
pub fn start(s: &Settings, metrics: &Metrics) -> Result<Option<Notifier>> {
    let am = &s.alertmanager;
    if am.urls.is_empty() {
        return Ok(None);
    }
    let config = AlertmanagerConfig {
        urls: am.urls.clone(),
        timeout: am.timeout,
        resend_interval: am.resend_interval,
        authorization: authorization(
            am.basic_auth_user.as_deref(),
            am.password_file.as_deref(),
            am.bearer_token_file.as_deref(),
        )?,
    };
    let (hostname, node) = crate::output::identity();
    let book = Book::new(&hostname, node.as_deref(), am.resend_interval);
    let n = Notifier::start(&config, book, metrics.notifications())?;
    tracing::info!("alerts to Alertmanager at {}", am.urls.join(", "));
    Ok(Some(n))
}

/// One URL's queue.
#[derive(Debug, Default)]
struct Queue {
    alerts: Mutex<(VecDeque<Alert>, bool)>,
    ready: Condvar,
}

/// The open alerts and the sender threads.
pub struct Notifier {
    book: Book,
    queues: Vec<(Arc<Queue>, UrlLabels)>,
    counters: Counters,
    threads: Vec<thread::JoinHandle<()>>,
}

impl Notifier {
    /// Starts one sender thread per URL. Each first checks that its Alertmanager answers
    /// and logs one error line if it does not (it keeps trying).
    pub fn start(config: &AlertmanagerConfig, book: Book, counters: Counters) -> Result<Notifier> {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .proxy(None)
            .timeout_global(Some(config.timeout))
            .http_status_as_error(false)
            .build()
            .into();
        let mut queues = Vec::new();
        let mut threads = Vec::new();
        for url in &config.urls {
            let q = Arc::new(Queue::default());
            let labels = UrlLabels {
                alertmanager: url.clone(),
            };
            let sender = Sender {
                agent: agent.clone(),
                base: url.trim_end_matches('/').to_string(),
                authorization: config.authorization.clone(),
                queue: q.clone(),
                counters: counters.clone(),
                labels: labels.clone(),
            };
            for c in [&counters.sent, &counters.failed, &counters.dropped] {
                c.get_or_create(&labels).inc_by(0);
            }
            threads.push(
                thread::Builder::new()
                    .name("alertmanager".into())
                    .spawn(move || sender.run())
                    .context("cannot start the Alertmanager sender thread")?,
            );
            queues.push((q, labels));
        }
        Ok(Notifier {
            book,
            queues,
            counters,
            threads,
        })
    }

    /// Queues this poll's alerts (never blocks on the network).
    pub fn observe(&mut self, events: &[AlertEvent], wall_ns: u64) {
        let alerts = self.book.step(events, Instant::now(), wall_ns);
        if alerts.is_empty() {
            return;
        }
        for (q, labels) in &self.queues {
            let mut g = q.alerts.lock().expect("queue lock");
            g.0.extend(alerts.iter().cloned());
            let over = g.0.len().saturating_sub(QUEUE_ALERTS);
            if over > 0 {
                g.0.drain(..over);
                self.counters
                    .dropped
                    .get_or_create(labels)
                    .inc_by(over as u64);
            }
            q.ready.notify_one();
        }
    }

    /// Lets the senders deliver what is queued (the episodes' ends) for up to `grace`, then
    /// stops them.
    pub fn finish(self, grace: Duration) {
        let deadline = Instant::now() + grace;
        for (q, _) in &self.queues {
            q.alerts.lock().expect("queue lock").1 = true;
            q.ready.notify_one();
        }
        for t in self.threads {
            while !t.is_finished() && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

/// One URL's sender thread.
struct Sender {
    agent: ureq::Agent,
    base: String,
    authorization: Option<String>,
    queue: Arc<Queue>,
    counters: Counters,
    labels: UrlLabels,
}

impl Sender {
    fn run(self) {
        if let Err(e) = self.probe() {
            tracing::error!(
                "alertmanager {} unreachable: {e} (alerts are queued and retried)",
                self.base
            );
        }
        let mut backoff = BACKOFF.0;
        let mut failing = false;
        loop {
            let (batch, closing) = {
                let mut g = self.queue.alerts.lock().expect("queue lock");
                while g.0.is_empty() && !g.1 {
                    g = self.queue.ready.wait(g).expect("queue lock");
                }
                let n = g.0.len().min(BATCH);
                (g.0.iter().take(n).cloned().collect::<Vec<_>>(), g.1)
            };
            if batch.is_empty() {
                return;
            }
            match self.post(&batch) {
                Ok(()) => {
                    let mut g = self.queue.alerts.lock().expect("queue lock");
                    // The queue only loses alerts at its front when full: drop what was sent
                    // if it is still there.
                    let n = batch.len().min(g.0.len());
                    if g.0.iter().take(n).eq(batch.iter().take(n)) {
                        g.0.drain(..n);
                    }
                    drop(g);
                    self.counters
                        .sent
                        .get_or_create(&self.labels)
                        .inc_by(batch.len() as u64);
                    if failing {
                        tracing::info!("alertmanager {} reachable again", self.base);
                    }
                    failing = false;
                    backoff = BACKOFF.0;
                }
                Err(e) => {
                    self.counters
                        .failed
                        .get_or_create(&self.labels)
                        .inc_by(batch.len() as u64);
                    if closing {
                        tracing::warn!(
                            "alertmanager {}: {e}; {} alerts not sent",
                            self.base,
                            batch.len()
                        );
                        return;
                    }
                    if !failing {
                        tracing::warn!("alertmanager {}: {e} (retrying)", self.base);
                    }
                    failing = true;
                    thread::sleep(backoff);
                    backoff = (backoff * 2).min(BACKOFF.1);
                }
            }
        }
    }

    /// `req` with the `Authorization` header, if there is one.
    fn auth<B>(&self, req: ureq::RequestBuilder<B>) -> ureq::RequestBuilder<B> {
        match &self.authorization {
            Some(a) => req.header("Authorization", a),
            None => req,
        }
    }

    /// GET the status page: is anything answering there?
    fn probe(&self) -> Result<(), String> {
        let url = format!("{}/api/v2/status", self.base);
        let r = self
            .auth(self.agent.get(&url))
            .call()
            .map_err(|e| e.to_string())?;
        match r.status().as_u16() {
            200..=299 => Ok(()),
            s => Err(format!("GET {url}: HTTP {s}")),
        }
    }

    fn post(&self, batch: &[Alert]) -> Result<(), String> {
        let url = format!("{}/api/v2/alerts", self.base);
        let body = serde_json::to_string(batch).map_err(|e| e.to_string())?;
        let req = self
            .agent
            .post(&url)
            .header("Content-Type", "application/json");
        let mut r = self
            .auth(req)
            .send(body.as_str())
            .map_err(|e| e.to_string())?;
        match r.status().as_u16() {
            200..=299 => Ok(()),
            s => {
                let text = r.body_mut().read_to_string().unwrap_or_default();
                Err(format!("POST {url}: HTTP {s} {}", text.trim()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use picket_detect::detector::{Details, Finding, Unit};

    use super::*;

    fn event(phase: Phase, episode: u64, rule: Rule, at_s: u64) -> AlertEvent {
        AlertEvent {
            phase,
            episode,
            finding: Finding {
                rule,
                scope: Scope::Source,
                source: Some("10.0.0.9".parse().unwrap()),
                destination: Some("10.0.0.2".parse().unwrap()),
                value: 120.0,
                threshold: 30.0,
                unit: Unit::Ports,
                window_s: 10.0,
                estimated: false,
                details: Details::default(),
            },
            peak: 150.0,
            started_ns: 1_000_000_000_000_000_000,
            at_ns: 1_000_000_000_000_000_000 + at_s * 1_000_000_000,
        }
    }

    #[test]
    fn names_and_credentials() {
        assert_eq!(alertname(Rule::PortScan), "PicketPortScan");
        assert_eq!(alertname(Rule::IcmpFlood), "PicketIcmpFlood");
        assert!(check_url(&"http://127.0.0.1:9093".into()).is_ok());
        assert!(check_url(&"https://am.example/".into()).is_ok());
        assert!(check_url(&"ftp://x".into()).is_err());
        assert!(check_url(&"http://".into()).is_err());
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("t");
        std::fs::write(&token, "secret\n").unwrap();
        assert_eq!(
            authorization(None, None, Some(&token)).unwrap().as_deref(),
            Some("Bearer secret")
        );
        assert_eq!(
            authorization(Some("user"), Some(&token), None)
                .unwrap()
                .as_deref(),
            Some("Basic dXNlcjpzZWNyZXQ=")
        );
        assert!(authorization(Some("u"), None, Some(&token)).is_err());
        assert!(authorization(None, Some(&dir.path().join("missing")), None).is_err());
        assert!(authorization(Some("u"), Some(&dir.path().join("missing")), None).is_err());
    }

    #[test]
    fn an_episode_fires_is_resent_and_resolves() {
        let resend = Duration::from_secs(60);
        let mut book = Book::new("vm", Some("node-a"), resend);
        let t0 = Instant::now();
        let start = event(Phase::Start, 7, Rule::PortScan, 0);
        let sent = book.step(std::slice::from_ref(&start), t0, start.at_ns);
        assert_eq!(sent.len(), 1);
        let a = &sent[0];
        for (k, v) in [
            ("alertname", "PicketPortScan"),
            ("rule", "port_scan"),
            ("scope", "source"),
            ("severity", "warning"),
            ("instance", "vm"),
            ("node", "node-a"),
            ("source_ip", "10.0.0.9"),
            ("destination_ip", "10.0.0.2"),
        ] {
            assert_eq!(a.labels.get(k).map(String::as_str), Some(v), "{k}");
        }
        assert_eq!(a.annotations["value"], "120");
        assert_eq!(a.annotations["threshold"], "30");
        assert!(
            a.annotations["summary"].starts_with("port_scan 10.0.0.9 -> 10.0.0.2: 120 ports"),
            "{}",
            a.annotations["summary"]
        );
        assert_eq!(a.starts_at, rfc3339(start.started_ns));
        // Valid for four resend intervals.
        assert_eq!(a.ends_at, rfc3339(start.at_ns + 240_000_000_000));
        assert_eq!(book.open(), 1);

        // Nothing new and not due: nothing sent.
        assert!(
            book.step(&[], t0 + Duration::from_secs(30), start.at_ns)
                .is_empty()
        );
        // Due: re-sent with a later endsAt.
        let again = book.step(&[], t0 + resend, start.at_ns + 60_000_000_000);
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].labels, a.labels);
        assert_eq!(again[0].ends_at, rfc3339(start.at_ns + 300_000_000_000));

        // An update keeps the start's labels even when the destination moved.
        let mut update = event(Phase::Update, 7, Rule::PortScan, 70);
        update.finding.destination = Some("10.0.0.3".parse().unwrap());
        let up = book.step(&[update], t0 + Duration::from_secs(70), start.at_ns);
        assert_eq!(up.len(), 1);
        assert_eq!(up[0].labels, a.labels);

        // The end: endsAt is the end, and the episode is no longer re-sent.
        let end = event(Phase::End, 7, Rule::PortScan, 80);
        let done = book.step(
            std::slice::from_ref(&end),
            t0 + Duration::from_secs(80),
            end.at_ns,
        );
        assert_eq!(done.len(), 1);
        assert_eq!(done[0].ends_at, rfc3339(end.at_ns));
        assert_eq!(done[0].labels, a.labels);
        assert_eq!(book.open(), 0);
        assert!(
            book.step(&[], t0 + Duration::from_secs(600), end.at_ns)
                .is_empty()
        );
    }

    #[test]
    fn floods_and_destination_scope() {
        let mut book = Book::new("vm", None, Duration::from_secs(60));
        let mut e = event(Phase::Start, 1, Rule::SynFlood, 0);
        e.finding.scope = Scope::Destination;
        e.finding.source = None;
        let a = &book.step(&[e], Instant::now(), 0)[0];
        assert_eq!(a.labels["severity"], "critical");
        assert_eq!(a.labels["scope"], "destination");
        assert!(!a.labels.contains_key("source_ip") && !a.labels.contains_key("node"));
        let mut sweep = event(Phase::Start, 2, Rule::HostSweep, 0);
        sweep.finding.unit = Unit::Hosts;
        let s = &book.step(&[sweep], Instant::now(), 0)[0];
        assert!(!s.labels.contains_key("destination_ip"));
        let json = serde_json::to_value(s).unwrap();
        assert!(json["startsAt"].is_string() && json["endsAt"].is_string());
    }

    #[test]
    fn a_dead_alertmanager_never_blocks_and_the_queue_is_bounded() {
        // A port nothing listens on (bound, then closed).
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = AlertmanagerConfig {
            urls: vec![format!("http://127.0.0.1:{port}")],
            timeout: Duration::from_millis(200),
            resend_interval: Duration::from_secs(60),
            authorization: None,
        };
        let counters = Counters::default();
        let mut n = Notifier::start(
            &config,
            Book::new("vm", None, config.resend_interval),
            counters.clone(),
        )
        .unwrap();
        let t = Instant::now();
        for i in 0..(QUEUE_ALERTS as u64 + 100) {
            n.observe(&[event(Phase::Start, i, Rule::PortScan, 0)], 0);
        }
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
        let labels = &n.queues[0].1.clone();
        assert!(counters.dropped.get_or_create(labels).get() >= 100);
        n.finish(Duration::from_secs(2));
        assert!(counters.failed.get_or_create(labels).get() > 0);
        assert_eq!(counters.sent.get_or_create(labels).get(), 0);
    }
}
