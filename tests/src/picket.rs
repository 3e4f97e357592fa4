//! A running picket whose stdout is read line by line as JSON ([`Picket`]), and helpers to
//! look at its alert lines.

use std::{
    fmt::Write as _,
    io::{BufRead, BufReader},
    process::{Child, ExitStatus, Stdio},
    sync::{
        Arc, Mutex,
        mpsc::{Receiver, RecvTimeoutError, Sender, channel},
    },
    thread::{self, JoinHandle},
    time::{Duration, Instant},
};

use serde_json::Value;

use crate::{
    env::picket_bin,
    lab::{BpfLink, bpf_links_of},
    netns::Netns,
    process::{KILL_GRACE, terminate, wait_timeout},
};

enum Msg {
    Out(Instant, String),
    Err(Instant, String),
}

/// One stdout line of picket with the time it was read.
#[derive(Clone, Debug)]
pub struct Line {
    /// When the line was read.
    pub at: Instant,
    /// Parsed JSON (Null if the line was not JSON; see `raw`).
    pub json: Value,
    /// The line as printed.
    pub raw: String,
}

/// A picket process running in a namespace. Its stdout lines are parsed as JSON by a reader
/// thread; stderr is kept. SIGTERM (then SIGKILL after [`KILL_GRACE`]) on drop.
pub struct Picket {
    child: Child,
    args: Vec<String>,
    rx: Receiver<Msg>,
    lines: Vec<Line>,
    stderr: Arc<Mutex<Vec<String>>>,
    readers: Vec<JoinHandle<()>>,
    status: Option<ExitStatus>,
    links: Vec<BpfLink>,
    watching_at: Option<Instant>,
}

impl std::fmt::Debug for Picket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Picket")
            .field("pid", &self.child.id())
            .field("args", &self.args)
            .finish()
    }
}

impl Picket {
    /// Spawns `picket -i <iface> -o json --summary-interval 0s <extra…>` in `ns` (does not
    /// wait for it to start watching; see [`Picket::wait_watching`]).
    pub fn spawn(ns: &Netns, iface: &str, extra: &[&str]) -> Picket {
        let mut args: Vec<String> = ["-i", iface, "-o", "json", "--summary-interval", "0s"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        args.extend(extra.iter().map(|s| s.to_string()));
        Picket::spawn_args(ns, &args)
    }

    /// Spawns picket with exactly `args` in `ns`.
    pub fn spawn_args(ns: &Netns, args: &[String]) -> Picket {
        Picket::spawn_wrapped(ns, &[], args)
    }

    /// Spawns `wrapper… picket args…` in `ns` (e.g. `setpriv` with fewer capabilities).
    pub fn spawn_wrapped(ns: &Netns, wrapper: &[&str], args: &[String]) -> Picket {
        let mut cmd = match wrapper.split_first() {
            Some((prog, rest)) => {
                let mut c = ns.exec(prog);
                c.args(rest).arg(picket_bin());
                c
            }
            None => ns.exec(picket_bin()),
        };
        cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start picket {args:?}: {e}"));
        let (tx, rx) = channel();
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let mut readers = Vec::new();
        if let Some(out) = child.stdout.take() {
            let tx: Sender<Msg> = tx.clone();
            readers.push(thread::spawn(move || {
                for line in BufReader::new(out).lines() {
                    let Ok(line) = line else { break };
                    if tx.send(Msg::Out(Instant::now(), line)).is_err() {
                        break;
                    }
                }
            }));
        }
        if let Some(err) = child.stderr.take() {
            let store = Arc::clone(&stderr);
            readers.push(thread::spawn(move || {
                for line in BufReader::new(err).lines() {
                    let Ok(line) = line else { break };
                    store.lock().unwrap().push(line.clone());
                    if tx.send(Msg::Err(Instant::now(), line)).is_err() {
                        break;
                    }
                }
            }));
        }
        Picket {
            child,
            args: args.to_vec(),
            rx,
            lines: Vec::new(),
            stderr,
            readers,
            status: None,
            links: Vec::new(),
            watching_at: None,
        }
    }

    /// Process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    fn take(&mut self, msg: Msg) -> Option<String> {
        match msg {
            Msg::Out(at, raw) => {
                let json = serde_json::from_str(&raw).unwrap_or(Value::Null);
                self.lines.push(Line { at, json, raw });
                None
            }
            Msg::Err(at, line) => {
                if line.starts_with("picket: watching") {
                    self.watching_at.get_or_insert(at);
                }
                Some(line)
            }
        }
    }

    /// Receives output until `deadline` or until `stop` returns true for a stderr line or the
    /// latest stdout line; returns whether `stop` matched.
    fn pump_until(
        &mut self,
        deadline: Instant,
        mut stop: impl FnMut(&Self, Option<&str>) -> bool,
    ) -> bool {
        loop {
            let now = Instant::now();
            let wait = deadline.saturating_duration_since(now);
            match self.rx.recv_timeout(wait) {
                Ok(msg) => {
                    let err = self.take(msg);
                    if stop(self, err.as_deref()) {
                        return true;
                    }
                }
                Err(RecvTimeoutError::Timeout) => return false,
                // Both pipes closed: the process is gone and nothing more will come.
                Err(RecvTimeoutError::Disconnected) => return false,
            }
        }
    }

    /// Collects every line that arrives within `d`.
    pub fn collect_for(&mut self, d: Duration) {
        let deadline = Instant::now() + d;
        self.pump_until(deadline, |_, _| false);
        let left = deadline.saturating_duration_since(Instant::now());
        thread::sleep(left);
    }

    /// When the stderr line "picket: watching" was read (picket's polling clock starts just
    /// before it prints that line), if it was.
    pub fn watching_at(&self) -> Option<Instant> {
        self.watching_at
    }

    /// Waits for the stderr line "picket: watching" (picket attached and polling); panics
    /// with its stderr if it exits or does not get there within `timeout`.
    pub fn wait_watching(&mut self, timeout: Duration) {
        if self.watching_at.is_some() {
            return;
        }
        let ok = self.pump_until(Instant::now() + timeout, |_, err| {
            err.is_some_and(|l| l.starts_with("picket: watching"))
        });
        if !ok {
            let status = wait_timeout(&mut self.child, Duration::from_secs(1));
            panic!(
                "expected picket to print \"picket: watching\" within {timeout:?}; exit status: {status:?}\n{}",
                self.report()
            );
        }
    }

    /// Waits up to `timeout` for a stdout line matching `pred` (lines already received are
    /// checked first) and returns it with the time it was read.
    pub fn wait_line_at(
        &mut self,
        pred: impl Fn(&Value) -> bool,
        timeout: Duration,
    ) -> Option<(Value, Instant)> {
        if let Some(l) = self.lines.iter().find(|l| pred(&l.json)) {
            return Some((l.json.clone(), l.at));
        }
        let seen = self.lines.len();
        let found = self.pump_until(Instant::now() + timeout, |me, _| {
            me.lines.len() > seen && me.lines.last().is_some_and(|l| pred(&l.json))
        });
        found.then(|| {
            let l = self.lines.last().expect("a line matched");
            (l.json.clone(), l.at)
        })
    }

    /// Waits up to `timeout` for an alert line (`event.kind == "alert"`) matching `pred`.
    pub fn wait_alert(
        &mut self,
        pred: impl Fn(&Value) -> bool,
        timeout: Duration,
    ) -> Option<Value> {
        self.wait_alert_at(pred, timeout).map(|(v, _)| v)
    }

    /// Like [`Picket::wait_alert`], also returning when the line was read.
    pub fn wait_alert_at(
        &mut self,
        pred: impl Fn(&Value) -> bool,
        timeout: Duration,
    ) -> Option<(Value, Instant)> {
        self.wait_line_at(|v| v["event"]["kind"] == "alert" && pred(v), timeout)
    }

    /// Every stdout line received so far.
    pub fn lines(&self) -> &[Line] {
        &self.lines
    }

    /// The alert lines received so far.
    pub fn alerts(&self) -> Vec<Value> {
        self.lines
            .iter()
            .filter(|l| l.json["event"]["kind"] == "alert")
            .map(|l| l.json.clone())
            .collect()
    }

    /// picket's stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().join("\n")
    }

    /// The arguments picket was started with.
    pub fn args(&self) -> &[String] {
        &self.args
    }

    /// Text for assertion messages: arguments, stderr and every stdout line seen.
    pub fn report(&self) -> String {
        let mut s = format!("--- picket {}\n--- picket stderr:\n", self.args.join(" "));
        for l in self.stderr.lock().unwrap().iter() {
            let _ = writeln!(s, "  {l}");
        }
        let _ = writeln!(s, "--- picket stdout ({} lines):", self.lines.len());
        for l in &self.lines {
            let _ = writeln!(s, "  {}", l.raw);
        }
        s
    }

    /// Records the BPF links picket holds now (for [`Lab::assert_nothing_attached`]).
    pub fn record_links(&mut self) {
        self.links = bpf_links_of(self.pid());
    }

    /// The links recorded by [`Picket::record_links`].
    pub fn links(&self) -> &[BpfLink] {
        &self.links
    }

    /// True while the process has not exited.
    pub fn is_running(&mut self) -> bool {
        if self.status.is_some() {
            return false;
        }
        match self.child.try_wait() {
            Ok(Some(s)) => {
                self.status = Some(s);
                false
            }
            _ => true,
        }
    }

    /// Sends SIGTERM, waits up to [`KILL_GRACE`] (then SIGKILL), reads its remaining output, and returns
    /// its exit status.
    pub fn stop(&mut self) -> ExitStatus {
        if let Some(s) = self.status {
            return s;
        }
        let status = terminate(&mut self.child, KILL_GRACE).expect("picket could not be reaped");
        self.status = Some(status);
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
        while let Ok(msg) = self.rx.try_recv() {
            self.take(msg);
        }
        status
    }
}

impl Drop for Picket {
    fn drop(&mut self) {
        if self.status.is_none() {
            terminate(&mut self.child, KILL_GRACE);
        }
    }
}

/// Milliseconds between two instants, for reports.
pub fn ms(from: Instant, to: Instant) -> u128 {
    to.saturating_duration_since(from).as_millis()
}

/// True when `v` is an alert start line of `rule`.
pub fn is_start(v: &Value, rule: &str) -> bool {
    v["event"]["kind"] == "alert" && v["event"]["action"] == "start" && v["rule"]["name"] == rule
}

/// The string at JSON pointer `ptr` in `v`, or "".
pub fn str_at<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr).and_then(Value::as_str).unwrap_or("")
}

/// picket's JSON alert lines of `rule` in `stdout`, in order.
pub fn alert_lines(stdout: &str, rule: &str) -> Vec<Value> {
    stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["event"]["kind"] == "alert" && v["rule"]["name"] == rule)
        .collect()
}
