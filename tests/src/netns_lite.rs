//! Small, self-contained helpers for the metrics, container and config-reload tests
//! (`tests/tests/{metrics,container,config_reload}.rs`): two network namespaces joined by a
//! veth pair with 10.252.`subnet`.1/.2, background processes whose output goes to files and
//! which are stopped on drop, temporary directories, and HTTP requests made from inside a
//! namespace (a thread that `setns`es before it connects). Everything is undone on drop,
//! including when a test panics.

use std::{
    fs,
    io::{self, Read as _, Write as _},
    net::{Ipv4Addr, SocketAddr, TcpStream},
    os::fd::AsRawFd as _,
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    thread,
    time::{Duration, Instant},
};

/// Skips nothing: panics with a clear message unless running as root.
pub fn require_root() {
    // SAFETY: plain syscall.
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "this test creates network namespaces and loads BPF programs: run it as root"
    );
}

/// Panics with a clear message naming the first tool not on `PATH`.
pub fn require_tools(tools: &[&str]) {
    for tool in tools {
        let path = std::env::var_os("PATH").unwrap_or_default();
        let found = std::env::split_paths(&path).any(|d| d.join(tool).is_file());
        assert!(
            found,
            "this test needs `{tool}` (`cargo xtask bootstrap` installs the test tools)"
        );
    }
}

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is inside the workspace")
        .to_path_buf()
}

/// `$PICKET_BIN`, else `<workspace>/target/release/picket`; panics if it does not exist.
pub fn picket_bin() -> PathBuf {
    let path = std::env::var_os("PICKET_BIN").map_or_else(
        || workspace_root().join("target/release/picket"),
        PathBuf::from,
    );
    assert!(
        path.is_file(),
        "picket not found at {} (set PICKET_BIN or run `cargo build --release -p agent`)",
        path.display()
    );
    path
}

/// A short name unique to this process: `<prefix><pid % 10000>`.
pub fn tag(prefix: &str) -> String {
    format!("{prefix}{}", std::process::id() % 10_000)
}

pub use crate::{output, run_ok};

/// Polls `f` every 200 ms until it returns `Some` or `timeout` passes.
pub fn wait_until<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if start.elapsed() >= timeout {
            return None;
        }
        thread::sleep(Duration::from_millis(200));
    }
}

/// A directory under the system temp dir, removed on drop.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    /// Creates (after removing any stale one) `<tmp>/picket-<name>`.
    pub fn new(name: &str) -> TempDir {
        let path = std::env::temp_dir().join(format!("picket-{name}"));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).expect("create temp dir");
        TempDir(path)
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A network namespace, deleted (after killing what still runs in it) on drop.
#[derive(Debug)]
pub struct Ns {
    /// Its name (`ip netns`).
    pub name: String,
}

impl Ns {
    /// Creates the namespace (removing a stale one of that name) with `lo` up.
    pub fn new(name: &str) -> Ns {
        let _ = output(Command::new("ip").args(["netns", "del", name]));
        run_ok(Command::new("ip").args(["netns", "add", name]));
        let ns = Ns { name: name.into() };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    /// `ip netns exec <name> <prog>`.
    pub fn cmd(&self, prog: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name]).arg(prog);
        c
    }

    /// `ip -n <name> <args>`, which must succeed.
    pub fn ip(&self, args: &[&str]) -> String {
        run_ok(Command::new("ip").args(["-n", &self.name]).args(args))
    }

    /// `/run/netns/<name>`.
    pub fn path(&self) -> PathBuf {
        Path::new("/run/netns").join(&self.name)
    }

    /// Processes running in the namespace.
    pub fn pids(&self) -> Vec<i32> {
        let out = output(Command::new("ip").args(["netns", "pids", &self.name]));
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect()
    }
}

impl Drop for Ns {
    fn drop(&mut self) {
        for pid in self.pids() {
            // SAFETY: plain syscall on a process of this test's namespace.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        let _ = output(Command::new("ip").args(["netns", "del", &self.name]));
    }
}

/// Attacker and victim namespaces joined by a veth pair: attacker 10.252.`subnet`.1/24 on
/// `<tag>a`, victim 10.252.`subnet`.2/24 on `<tag>v`.
#[derive(Debug)]
pub struct Pair {
    /// The attacker's namespace.
    pub attacker: Ns,
    /// The victim's namespace (where picket watches `victim_if`).
    pub victim: Ns,
    /// The attacker's interface.
    pub attacker_if: String,
    /// The victim's interface.
    pub victim_if: String,
    /// The attacker's address.
    pub attacker_ip: Ipv4Addr,
    /// The victim's address.
    pub victim_ip: Ipv4Addr,
}

impl Pair {
    /// Creates both namespaces and the link (directly inside them, never in the host's),
    /// and checks that the victim answers a ping.
    pub fn new(tag: &str, subnet: u8) -> Pair {
        let attacker = Ns::new(&format!("{tag}-a"));
        let victim = Ns::new(&format!("{tag}-v"));
        let (attacker_if, victim_if) = (format!("{tag}a"), format!("{tag}v"));
        assert!(victim_if.len() <= 15, "{victim_if} is too long");
        attacker.ip(&[
            "link",
            "add",
            &attacker_if,
            "type",
            "veth",
            "peer",
            "name",
            &victim_if,
            "netns",
            &victim.name,
        ]);
        let pair = Pair {
            attacker,
            victim,
            attacker_if,
            victim_if,
            attacker_ip: Ipv4Addr::new(10, 252, subnet, 1),
            victim_ip: Ipv4Addr::new(10, 252, subnet, 2),
        };
        for (ns, ifname, ip) in [
            (&pair.attacker, &pair.attacker_if, pair.attacker_ip),
            (&pair.victim, &pair.victim_if, pair.victim_ip),
        ] {
            ns.ip(&["addr", "add", &format!("{ip}/24"), "dev", ifname]);
            ns.ip(&["link", "set", ifname, "up"]);
        }
        let ping = output(pair.attacker.cmd("ping").args([
            "-c",
            "1",
            "-W",
            "3",
            &pair.victim_ip.to_string(),
        ]));
        assert!(
            ping.status.success(),
            "victim unreachable in the test's namespaces"
        );
        pair
    }

    /// `nmap -sS` from the attacker against `ports` of the victim; returns nmap's stdout.
    pub fn scan(&self, ports: &str) -> String {
        run_ok(self.attacker.cmd("nmap").args([
            "-sS",
            "-Pn",
            "-n",
            "-T4",
            "--max-retries",
            "0",
            "-p",
            ports,
            &self.victim_ip.to_string(),
        ]))
    }
}

/// A background process whose stdout and stderr go to files; stopped (SIGTERM, then
/// SIGKILL) on drop.
#[derive(Debug)]
pub struct Proc {
    child: Child,
    what: String,
    out: PathBuf,
    err: PathBuf,
    status: Option<ExitStatus>,
}

impl Proc {
    /// Starts `cmd`, sending its output to `<dir>/<what>.out` and `.err`.
    pub fn spawn(mut cmd: Command, what: &str, dir: &Path) -> Proc {
        let out = dir.join(format!("{what}.out"));
        let err = dir.join(format!("{what}.err"));
        let child = cmd
            .stdin(Stdio::null())
            .stdout(fs::File::create(&out).expect("create stdout file"))
            .stderr(fs::File::create(&err).expect("create stderr file"))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {what} ({cmd:?}): {e}"));
        Proc {
            child,
            what: what.into(),
            out,
            err,
            status: None,
        }
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything it wrote to stdout so far.
    pub fn stdout(&self) -> String {
        fs::read_to_string(&self.out).unwrap_or_default()
    }

    /// Everything it wrote to stderr so far.
    pub fn stderr(&self) -> String {
        fs::read_to_string(&self.err).unwrap_or_default()
    }

    /// Its output, for failure messages.
    pub fn logs(&self) -> String {
        format!(
            "--- {} stdout ---\n{}\n--- {} stderr ---\n{}",
            self.what,
            self.stdout(),
            self.what,
            self.stderr()
        )
    }

    /// Its exit status if it has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().ok().flatten();
        }
        self.status
    }

    /// Waits until `pred(stdout, stderr)` holds; panics with the logs if `timeout` passes
    /// or the process exits first.
    pub fn wait_for(&mut self, what: &str, timeout: Duration, pred: impl Fn(&str, &str) -> bool) {
        let start = Instant::now();
        loop {
            if pred(&self.stdout(), &self.stderr()) {
                return;
            }
            if let Some(status) = self.exited() {
                // One last look: the line may have come with the exit.
                if pred(&self.stdout(), &self.stderr()) {
                    return;
                }
                panic!(
                    "{} exited ({status}) before {what}\n{}",
                    self.what,
                    self.logs()
                );
            }
            if start.elapsed() > timeout {
                panic!(
                    "no {what} from {} within {timeout:?}\n{}",
                    self.what,
                    self.logs()
                );
            }
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// Sends `sig`.
    pub fn signal(&self, sig: libc::c_int) {
        // SAFETY: plain syscall on our child.
        unsafe { libc::kill(self.child.id() as i32, sig) };
    }

    /// Waits up to `timeout` for it to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        wait_until(timeout, || self.exited())
    }

    /// SIGTERM, up to 10 s, then SIGKILL; returns the exit status.
    pub fn stop(&mut self) -> Option<ExitStatus> {
        if let Some(s) = self.exited() {
            return Some(s);
        }
        self.signal(libc::SIGTERM);
        if let Some(s) = self.wait_exit(Duration::from_secs(10)) {
            return Some(s);
        }
        let _ = self.child.kill();
        self.status = self.child.wait().ok();
        self.status
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop();
    }
}

/// An HTTP response.
#[derive(Clone, Debug)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Headers, names in lower case.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: String,
}

impl Response {
    /// The first value of header `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// `GET path` (HTTP/1.0, so no chunked body) on `addr` from inside namespace `ns`.
pub fn http_get(
    ns: &Ns,
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> io::Result<Response> {
    let ns_path = ns.path();
    let mut request = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n");
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    thread::spawn(move || -> io::Result<Response> {
        let file = fs::File::open(&ns_path)?;
        // SAFETY: setns on this (short-lived) thread only; the socket below is created in
        // the namespace.
        if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            return Err(io::Error::last_os_error());
        }
        let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
        stream.set_read_timeout(Some(Duration::from_secs(20)))?;
        stream.write_all(request.as_bytes())?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw)?;
        parse_response(&raw)
    })
    .join()
    .map_err(|_| io::Error::other("HTTP thread panicked"))?
}

fn parse_response(raw: &[u8]) -> io::Result<Response> {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| io::Error::other(format!("malformed HTTP response: {text:?}")))?;
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| io::Error::other(format!("no status line: {head:?}")))?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Ok(Response {
        status,
        headers,
        body: body.to_string(),
    })
}

/// Percent-encodes a query-string value.
pub fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// picket's JSON alert lines of `rule` in `stdout`, in order.
pub fn alert_lines(stdout: &str, rule: &str) -> Vec<serde_json::Value> {
    stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["event"]["kind"] == "alert" && v["rule"]["name"] == rule)
        .collect()
}

/// Names of the `picket_*` metrics a PromQL text (rules, dashboard) refers to, with the
/// sample suffixes of histograms stripped.
pub fn metric_names(promql: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = promql;
    while let Some(i) = rest.find("picket_") {
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        let name = tail[..end].to_string();
        if !names.contains(&name) {
            names.push(name);
        }
        rest = &tail[end..];
    }
    names
}

/// The `spec` of `deploy/kubernetes/prometheusrule.yaml` as a Prometheus rules file (the
/// block below `spec:`, dedented by two spaces).
pub fn rules_file_of_prometheus_rule(manifest: &str) -> String {
    let (_, spec) = manifest
        .split_once("\nspec:\n")
        .expect("the PrometheusRule has a spec");
    spec.lines()
        .map(|l| l.strip_prefix("  ").unwrap_or(l))
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}
