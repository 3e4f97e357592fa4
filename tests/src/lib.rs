//! End-to-end tests of Picket in network namespaces (see `tests/`).
//!
//! The harness builds a private lab per test: an attacker and a victim network namespace
//! joined by a veth pair (IPv4 /24 and IPv6 /64 addresses assigned inside them only), runs
//! `picket` inside the victim namespace on its end of the pair, and reads picket's JSON lines.
//! Every resource is held by a guard whose `Drop` cleans it up even when a test panics:
//! processes get SIGTERM, then SIGKILL after 3 s; namespaces are deleted (which deletes their
//! veths and every program attached to them).
//!
//! Traffic must only ever flow between the addresses of one lab, inside its namespaces.

pub mod netns_lite;

use std::{
    ffi::OsStr,
    fmt::Write as _,
    io::{BufRead, BufReader, Read},
    net::{Ipv4Addr, Ipv6Addr},
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Output, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU32, Ordering},
        mpsc::{Receiver, RecvTimeoutError, Sender, channel},
    },
    thread::{self, JoinHandle},
    time::{Duration, Instant},
};

use serde_json::Value;

/// How long a process gets between SIGTERM and SIGKILL.
pub const KILL_GRACE: Duration = Duration::from_secs(3);

/// The maximum time from the start of attack traffic to picket's alert line.
pub const DETECTION_DEADLINE: Duration = Duration::from_secs(5);

/// The interpreter used by traffic helpers (standard library only).
pub const PYTHON: &str = "/usr/bin/python3";

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Panics with a clear message unless the tests run as root (they create network
/// namespaces and load BPF programs).
pub fn require_root() {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    assert!(
        euid == 0,
        "the end-to-end tests of package `tests` must run as root (they create network namespaces \
         and load eBPF programs), but the effective uid is {euid}: run `sudo -E cargo test -p tests \
         -- --test-threads=1` or `cargo xtask test` as root"
    );
}

/// Panics with a clear message unless `tool` is on `PATH` (or an existing absolute path).
pub fn require_tool(tool: &str) {
    let found = if tool.starts_with('/') {
        Path::new(tool).exists()
    } else {
        std::env::var_os("PATH")
            .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
    };
    assert!(
        found,
        "the end-to-end tests need `{tool}`, which is not installed \
         (`cargo xtask bootstrap` installs the test tools)"
    );
}

/// Path of the picket binary: `$PICKET_BIN`, else `<workspace>/target/release/picket`.
/// Panics if it does not exist.
pub fn picket_bin() -> PathBuf {
    let path = std::env::var_os("PICKET_BIN").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/release/picket"),
        PathBuf::from,
    );
    assert!(
        path.is_file(),
        "picket binary not found at {} (set PICKET_BIN, or build it with \
         `cargo build --release -p agent`)",
        path.display()
    );
    path
}

/// A unique short name prefix for this process and call: `pk<pid % 10000>x<n>` (at most 10
/// characters, so interface names derived from it stay within the 15-character limit).
pub fn unique_base() -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("pk{}x{}", std::process::id() % 10000, n % 1000)
}

/// Runs `cmd` to completion and returns its output; panics if it cannot be started.
pub fn output(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

/// Runs `cmd`, panics (with its stderr) unless it succeeds, and returns its stdout.
pub fn run_ok(cmd: &mut Command) -> String {
    let out = output(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Sends SIGTERM to `child`, waits up to [`KILL_GRACE`], then SIGKILLs it; returns its
/// exit status (None if it could not be reaped).
pub fn terminate(child: &mut Child) -> Option<ExitStatus> {
    if let Ok(Some(status)) = child.try_wait() {
        return Some(status);
    }
    signal(child.id(), libc::SIGTERM);
    if let Some(status) = wait_timeout(child, KILL_GRACE) {
        return Some(status);
    }
    let _ = child.kill();
    child.wait().ok()
}

/// Sends `sig` to process `pid`.
pub fn signal(pid: u32, sig: libc::c_int) {
    // SAFETY: plain syscall on a pid we started.
    unsafe { libc::kill(pid as libc::pid_t, sig) };
}

/// Waits up to `timeout` for `child` to exit.
pub fn wait_timeout(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(20)),
            _ => return None,
        }
    }
}

/// A network namespace, deleted (after ending the processes left in it) on drop.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates namespace `name` and brings its loopback up. Panics unless root.
    pub fn new(name: &str) -> Netns {
        require_root();
        run_ok(Command::new("ip").args(["netns", "add", name]));
        let ns = Netns { name: name.into() };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    /// The namespace's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A command running `prog` inside the namespace (`ip netns exec <ns> <prog>`; `ip`
    /// execs the program, so the child's pid is the program's).
    pub fn exec(&self, prog: impl AsRef<OsStr>) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name]).arg(prog);
        c.stdin(Stdio::null());
        c
    }

    /// A command running `prog args…` inside the namespace under `timeout(1)`, so that a
    /// hung tool cannot hang the test (SIGTERM after `secs`, SIGKILL 2 s later).
    pub fn exec_timeout(&self, secs: f64, prog: &str, args: &[&str]) -> Command {
        let mut c = self.exec("timeout");
        c.args(["-k", "2", &format!("{secs}"), prog]).args(args);
        c
    }

    /// Runs `ip -n <ns> <args>`, panicking on failure; returns its stdout.
    pub fn ip(&self, args: &[&str]) -> String {
        run_ok(Command::new("ip").args(["-n", &self.name]).args(args))
    }

    /// Starts `prog args…` in the background inside the namespace, collecting its output.
    pub fn spawn(&self, prog: &str, args: &[&str]) -> Bg {
        let mut c = self.exec(prog);
        c.args(args);
        Bg::spawn(c, &format!("{} (in {})", prog_line(prog, args), self.name))
    }

    /// Like [`Netns::spawn`], under `timeout(1)` (see [`Netns::exec_timeout`]).
    pub fn spawn_timeout(&self, secs: f64, prog: &str, args: &[&str]) -> Bg {
        Bg::spawn(
            self.exec_timeout(secs, prog, args),
            &format!("{} (in {})", prog_line(prog, args), self.name),
        )
    }

    /// Waits up to `timeout` for a listening socket on `port` (`proto` "tcp" or "udp") in
    /// this namespace; panics if none appears.
    pub fn wait_listening(&self, proto: &str, port: u16, timeout: Duration) {
        let flag = if proto == "udp" { "-Hlun" } else { "-Hltn" };
        let deadline = Instant::now() + timeout;
        loop {
            let out = output(self.exec("ss").args([flag, &format!("sport = :{port}")]));
            if !String::from_utf8_lossy(&out.stdout).trim().is_empty() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "expected a {proto} listener on port {port} in {} within {timeout:?}",
                self.name
            );
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Pids of the processes whose network namespace is this one.
    pub fn pids(&self) -> Vec<u32> {
        let out = output(Command::new("ip").args(["netns", "pids", &self.name]));
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Anything still running in here was started by this test.
        let pids = self.pids();
        for &p in &pids {
            signal(p, libc::SIGTERM);
        }
        let deadline = Instant::now() + KILL_GRACE;
        while !self.pids().is_empty() && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(50));
        }
        for p in self.pids() {
            signal(p, libc::SIGKILL);
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

fn prog_line(prog: &str, args: &[&str]) -> String {
    std::iter::once(prog)
        .chain(args.iter().copied())
        .collect::<Vec<_>>()
        .join(" ")
}

/// A background process whose stdout and stderr are collected; SIGTERM then SIGKILL on drop.
#[derive(Debug)]
pub struct Bg {
    what: String,
    child: Child,
    out: Option<JoinHandle<String>>,
    err: Option<JoinHandle<String>>,
}

/// What a finished [`Bg`] process left.
#[derive(Debug)]
pub struct Finished {
    /// Exit status (None if it had to be killed and could not be reaped).
    pub status: Option<ExitStatus>,
    /// True when it was still running at the deadline and had to be ended.
    pub timed_out: bool,
    /// Its standard output.
    pub stdout: String,
    /// Its standard error.
    pub stderr: String,
}

impl Finished {
    /// True if it exited with status 0 on its own.
    pub fn success(&self) -> bool {
        !self.timed_out && self.status.is_some_and(|s| s.success())
    }
}

impl Bg {
    /// Spawns `cmd` with piped output; `what` names it in messages.
    pub fn spawn(mut cmd: Command, what: &str) -> Bg {
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
        let slurp = |mut r: Box<dyn Read + Send>| {
            thread::spawn(move || {
                let mut buf = Vec::new();
                let _ = r.read_to_end(&mut buf);
                String::from_utf8_lossy(&buf).into_owned()
            })
        };
        let out = child.stdout.take().map(|o| slurp(Box::new(o)));
        let err = child.stderr.take().map(|e| slurp(Box::new(e)));
        Bg {
            what: what.into(),
            child,
            out,
            err,
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What it runs, for messages.
    pub fn what(&self) -> &str {
        &self.what
    }

    /// Waits up to `timeout` for it to exit (then ends it) and returns what it left.
    pub fn finish(mut self, timeout: Duration) -> Finished {
        let mut status = wait_timeout(&mut self.child, timeout);
        let timed_out = status.is_none();
        if timed_out {
            status = terminate(&mut self.child);
        }
        let join =
            |h: Option<JoinHandle<String>>| h.and_then(|h| h.join().ok()).unwrap_or_default();
        Finished {
            status,
            timed_out,
            stdout: join(self.out.take()),
            stderr: join(self.err.take()),
        }
    }

    /// Ends it now (SIGTERM, then SIGKILL) and returns what it left.
    pub fn stop(self) -> Finished {
        self.finish(Duration::ZERO)
    }
}

impl Drop for Bg {
    fn drop(&mut self) {
        terminate(&mut self.child);
    }
}

/// A veth pair between an attacker and a victim namespace, with IPv4 /24 and IPv6 /64
/// (`nodad`) addresses, both ends up. Deleting either namespace deletes the pair.
#[derive(Clone, Debug)]
pub struct VethPair {
    /// Interface name in the attacker namespace.
    pub attacker_if: String,
    /// Interface name in the victim namespace (the one picket watches).
    pub victim_if: String,
    /// Attacker IPv4 address (10.250.`subnet`.1/24).
    pub attacker_v4: Ipv4Addr,
    /// Victim IPv4 address (10.250.`subnet`.2/24).
    pub victim_v4: Ipv4Addr,
    /// Attacker IPv6 address (fd00:250::`subnet`:1/64).
    pub attacker_v6: Ipv6Addr,
    /// Victim IPv6 address (fd00:250::`subnet`:2/64).
    pub victim_v6: Ipv6Addr,
}

impl VethPair {
    /// Creates `<base>a0` in `attacker` and `<base>v0` in `victim` (created directly in the
    /// namespaces, never in the host's), assigns the addresses and brings the links up.
    pub fn new(attacker: &Netns, victim: &Netns, base: &str, subnet: u8) -> VethPair {
        let pair = VethPair {
            attacker_if: format!("{base}a0"),
            victim_if: format!("{base}v0"),
            attacker_v4: Ipv4Addr::new(10, 250, subnet, 1),
            victim_v4: Ipv4Addr::new(10, 250, subnet, 2),
            attacker_v6: Ipv6Addr::new(0xfd00, 0x250, 0, 0, 0, 0, u16::from(subnet), 1),
            victim_v6: Ipv6Addr::new(0xfd00, 0x250, 0, 0, 0, 0, u16::from(subnet), 2),
        };
        assert!(pair.victim_if.len() <= 15, "{} too long", pair.victim_if);
        attacker.ip(&[
            "link",
            "add",
            &pair.attacker_if,
            "type",
            "veth",
            "peer",
            "name",
            &pair.victim_if,
            "netns",
            victim.name(),
        ]);
        for (ns, ifname, v4, v6) in [
            (
                attacker,
                &pair.attacker_if,
                pair.attacker_v4,
                pair.attacker_v6,
            ),
            (victim, &pair.victim_if, pair.victim_v4, pair.victim_v6),
        ] {
            ns.ip(&["addr", "add", &format!("{v4}/24"), "dev", ifname]);
            ns.ip(&["addr", "add", &format!("{v6}/64"), "dev", ifname, "nodad"]);
            ns.ip(&["link", "set", ifname, "up"]);
        }
        pair
    }
}

/// One test's lab: attacker and victim namespaces joined by a [`VethPair`].
#[derive(Debug)]
pub struct Lab {
    /// The attacker's namespace.
    pub attacker: Netns,
    /// The victim's namespace, where picket runs.
    pub victim: Netns,
    /// The link between them.
    pub veth: VethPair,
}

impl Lab {
    /// Builds a fresh lab with unique names and checks that the victim answers ping.
    pub fn new() -> Lab {
        require_root();
        let base = unique_base();
        let subnet = (COUNTER.load(Ordering::Relaxed) % 200 + 1) as u8;
        let attacker = Netns::new(&format!("{base}a"));
        let victim = Netns::new(&format!("{base}v"));
        let veth = VethPair::new(&attacker, &victim, &base, subnet);
        let lab = Lab {
            attacker,
            victim,
            veth,
        };
        // Reachability (also resolves the neighbours, so tools start at once).
        let v4 = lab.veth.victim_v4.to_string();
        let v6 = lab.veth.victim_v6.to_string();
        for (dst, fam) in [(&v4, "-4"), (&v6, "-6")] {
            // A fresh link can drop the very first packet (IPv6 in particular): retry briefly.
            let mut out = output(&mut lab.attacker.exec_timeout(
                10.0,
                "ping",
                &[fam, "-c", "1", "-W", "2", dst],
            ));
            for _ in 0..4 {
                if out.status.success() {
                    break;
                }
                thread::sleep(Duration::from_millis(250));
                out = output(&mut lab.attacker.exec_timeout(
                    10.0,
                    "ping",
                    &[fam, "-c", "1", "-W", "2", dst],
                ));
            }
            assert!(
                out.status.success(),
                "lab setup: {dst} unreachable from the attacker namespace: {}",
                String::from_utf8_lossy(&out.stdout)
            );
        }
        lab
    }

    /// Routes `cidr` from the attacker through the victim, where a blackhole route drops it
    /// (so probes of those addresses reach the victim's interface and die there).
    pub fn route_through_victim(&self, cidr: &str) {
        self.attacker.ip(&[
            "route",
            "add",
            cidr,
            "via",
            &self.veth.victim_v4.to_string(),
        ]);
        self.victim.ip(&["route", "add", "blackhole", cidr]);
    }

    /// Starts picket on the victim's interface (`-i <veth> -o json --summary-interval 0s
    /// <extra…>`), waits for "picket: watching", and checks that its programs are attached.
    pub fn picket(&self, extra: &[&str]) -> Picket {
        let mut p = Picket::spawn(&self.victim, &self.veth.victim_if, extra);
        p.wait_watching(Duration::from_secs(15));
        p.record_links();
        let ifindex = self.victim_ifindex();
        assert!(
            !p.links().is_empty() && p.links().iter().all(|l| l.ifindex == ifindex),
            "expected picket to hold BPF links on {} (ifindex {ifindex}), found {:?}\n{}",
            self.veth.victim_if,
            p.links(),
            p.report()
        );
        let xdp = extra.iter().all(|a| *a != "tc");
        assert_eq!(
            self.xdp_attached(),
            xdp,
            "expected XDP attached = {xdp} on {} while picket runs; `ip -d link show`:\n{}\n{}",
            self.veth.victim_if,
            self.link_details(),
            p.report()
        );
        p
    }

    /// ifindex of the victim's interface.
    pub fn victim_ifindex(&self) -> u32 {
        let out = self
            .victim
            .ip(&["-o", "link", "show", "dev", &self.veth.victim_if]);
        out.split(':')
            .next()
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("cannot parse ifindex from {out:?}"))
    }

    /// `ip -n <victim> -d link show dev <veth>`.
    pub fn link_details(&self) -> String {
        self.victim
            .ip(&["-d", "link", "show", "dev", &self.veth.victim_if])
    }

    /// The XDP attach modes shown by `ip -d link show` (e.g. "xdp", "xdpgeneric").
    pub fn xdp_modes(&self) -> Vec<String> {
        self.link_details()
            .split_whitespace()
            .filter(|t| t.starts_with("xdp") || t.starts_with("prog/xdp"))
            .map(str::to_string)
            .collect()
    }

    /// True when `ip -d link show` reports an XDP program on the victim's interface.
    pub fn xdp_attached(&self) -> bool {
        !self.xdp_modes().is_empty()
    }

    /// The attachment lines (not section headers) of `bpftool net show` run inside the
    /// victim namespace.
    pub fn bpftool_net_attachments(&self) -> Vec<String> {
        let out = run_ok(self.victim.exec("bpftool").args(["net", "show"]));
        out.lines()
            .map(str::trim_end)
            .filter(|l| !l.is_empty() && !is_section_header(l))
            .map(str::to_string)
            .collect()
    }

    /// Stops picket with SIGTERM and asserts a clean exit: status 0, "detaching" on stderr,
    /// no XDP on the interface, nothing in `bpftool net show` in the victim namespace, and
    /// none of the BPF links or programs picket held still exist.
    pub fn stop_and_check_clean(&self, p: &mut Picket) {
        let status = p.stop();
        assert_eq!(
            status.code(),
            Some(0),
            "expected picket to exit with status 0 on SIGTERM, got {status}\n{}",
            p.report()
        );
        assert!(
            p.stderr().contains("detaching"),
            "expected \"detaching\" on picket's stderr after SIGTERM\n{}",
            p.report()
        );
        self.assert_nothing_attached(p);
    }

    /// Asserts that nothing picket attached remains (see [`Lab::stop_and_check_clean`]).
    pub fn assert_nothing_attached(&self, p: &Picket) {
        assert!(
            !self.xdp_attached(),
            "expected no XDP program on {} after picket exited; `ip -d link show`:\n{}\n{}",
            self.veth.victim_if,
            self.link_details(),
            p.report()
        );
        let lines = self.bpftool_net_attachments();
        assert!(
            lines.is_empty(),
            "expected `bpftool net show` in {} to list nothing after picket exited, got {lines:?}\n{}",
            self.victim.name(),
            p.report()
        );
        // The kernel releases links and programs when their last fd closes; allow for the
        // deferred free.
        let deadline = Instant::now() + Duration::from_secs(3);
        loop {
            let left: Vec<String> = p
                .links()
                .iter()
                .flat_map(|l| {
                    let mut v = Vec::new();
                    if bpf_object_exists("link", l.link_id) {
                        v.push(format!("link {} ({} {})", l.link_id, l.link_type, l.attach));
                    }
                    if bpf_object_exists("prog", l.prog_id) {
                        v.push(format!("prog {}", l.prog_id));
                    }
                    v
                })
                .collect();
            if left.is_empty() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "expected every BPF link and program picket held to be gone after it exited, \
                 still present: {left:?}\n{}",
                p.report()
            );
            thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Default for Lab {
    fn default() -> Self {
        Lab::new()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        // picket's per-interface lock file, named after our unique interface.
        // A killed picket leaves its lock file (the lock itself dies with it).
        let suffix = format!("-{}.lock", self.veth.victim_if);
        if let Ok(dir) = std::fs::read_dir("/run/picket") {
            for e in dir.flatten() {
                if e.file_name().to_string_lossy().ends_with(&suffix) {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
    }
}

/// A `bpftool net show` section header such as "xdp:" or "tc:".
fn is_section_header(line: &str) -> bool {
    line.ends_with(':') && !line.starts_with(' ')
}

/// True if `bpftool <kind> show id <id>` finds the object.
pub fn bpf_object_exists(kind: &str, id: u32) -> bool {
    output(Command::new("bpftool").args([kind, "show", "id", &id.to_string()]))
        .status
        .success()
}

/// A BPF link held by a process, from `/proc/<pid>/fdinfo`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BpfLink {
    /// Kernel link id.
    pub link_id: u32,
    /// Link type ("xdp", "tcx", …).
    pub link_type: String,
    /// Program id.
    pub prog_id: u32,
    /// Interface index (in the process's namespace).
    pub ifindex: u32,
    /// Attach type as the kernel prints it ("47 (egress)"), empty for XDP.
    pub attach: String,
}

/// The BPF links process `pid` holds.
pub fn bpf_links_of(pid: u32) -> Vec<BpfLink> {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fdinfo")) else {
        return Vec::new();
    };
    let mut links = Vec::new();
    for entry in dir.flatten() {
        let Ok(info) = std::fs::read_to_string(entry.path()) else {
            continue;
        };
        let field = |k: &str| {
            info.lines()
                .find_map(|l| l.strip_prefix(k))
                .map(|v| v.trim_start_matches(':').trim().to_string())
        };
        let (Some(link_type), Some(link_id)) = (field("link_type"), field("link_id")) else {
            continue;
        };
        links.push(BpfLink {
            link_id: link_id.parse().unwrap_or(0),
            link_type,
            prog_id: field("prog_id").and_then(|v| v.parse().ok()).unwrap_or(0),
            ifindex: field("ifindex").and_then(|v| v.parse().ok()).unwrap_or(0),
            attach: field("attach_type").unwrap_or_default(),
        });
    }
    links.sort_by_key(|l| l.link_id);
    links
}

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
/// thread; stderr is kept. SIGTERM (then SIGKILL after 3 s) on drop.
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
        let mut cmd = ns.exec(picket_bin());
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

    /// Sends SIGTERM, waits up to 3 s (then SIGKILL), reads its remaining output, and returns
    /// its exit status.
    pub fn stop(&mut self) -> ExitStatus {
        if let Some(s) = self.status {
            return s;
        }
        let status = terminate(&mut self.child).expect("picket could not be reaped");
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
            terminate(&mut self.child);
        }
    }
}

/// A temporary directory under the system temp dir, removed on drop.
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// Creates `<tmp>/<base>-<tag>`.
    pub fn new(tag: &str) -> TempDir {
        let path = std::env::temp_dir().join(format!("{}-{tag}", unique_base()));
        std::fs::create_dir_all(&path)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
        TempDir { path }
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
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
