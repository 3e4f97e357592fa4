//! Live throughput part of `cargo xtask bench`: packets per second through a veth pair
//! between two network namespaces made here, driven by trafgen, with nothing attached, with
//! picket on XDP, on TC and on AF_PACKET rings (no BPF), measured in the same run; and the
//! agent's CPU use under that load and at idle with a full per-source map.
//!
//! Traffic stays between the two namespaces' veth addresses (10.253.0.1 → 10.253.0.2).

use std::{
    fs,
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

use crate::util::{self, cmd};

const NS_A: &str = "pkbench-a";
const NS_V: &str = "pkbench-v";
const IF_A: &str = "pkb-a0";
const IF_V: &str = "pkb-v0";
const ADDR_A: &str = "10.253.0.1";
const ADDR_V: &str = "10.253.0.2";
/// Seconds of traffic per measurement.
const SECONDS: u64 = 5;
/// Rounds; modes are interleaved within each round.
const ROUNDS: usize = 5;
/// Seconds of idle measured with a full map.
const IDLE_SECONDS: u64 = 10;
/// Seconds of distinct sources sent to fill the per-source map before the idle measurement.
const FILL_SECONDS: u64 = 9;
/// The agent's metrics endpoint in the victim namespace (idle measurement only).
const METRICS: &str = "127.0.0.1:9465";

/// Deletes the namespaces (and so the veth pair and anything attached) on drop.
struct Namespaces;

impl Namespaces {
    fn create() -> Result<Self> {
        Self::remove();
        let guard = Namespaces;
        let ip = |args: &[&str]| util::run(cmd("ip").args(args));
        ip(&["netns", "add", NS_A])?;
        ip(&["netns", "add", NS_V])?;
        ip(&[
            "link", "add", IF_A, "netns", NS_A, "type", "veth", "peer", "name", IF_V, "netns", NS_V,
        ])?;
        ip(&[
            "-n",
            NS_A,
            "addr",
            "add",
            &format!("{ADDR_A}/24"),
            "dev",
            IF_A,
        ])?;
        ip(&[
            "-n",
            NS_V,
            "addr",
            "add",
            &format!("{ADDR_V}/24"),
            "dev",
            IF_V,
        ])?;
        for (ns, dev) in [(NS_A, IF_A), (NS_V, IF_V), (NS_A, "lo"), (NS_V, "lo")] {
            ip(&["-n", ns, "link", "set", dev, "up"])?;
        }
        Ok(guard)
    }

    fn remove() {
        for ns in [NS_A, NS_V] {
            let _ = cmd("ip")
                .args(["netns", "del", ns])
                .stderr(Stdio::null())
                .status();
        }
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        Self::remove();
    }
}

/// A running picket, stopped with SIGINT on drop.
struct Agent(Child);

impl Agent {
    /// Starts picket with `--hook HOOK` and `extra` arguments, or only the XDP_PASS baseline
    /// for `hook == "pass"`.
    fn start(picket: &Path, hook: &str, extra: &[&str]) -> Result<Self> {
        let mut command = cmd("ip");
        command.args(["netns", "exec", NS_V]).arg(picket);
        if hook == "pass" {
            command.args(["bench", "--hold-baseline", IF_V]);
        } else {
            command.args(["-i", IF_V, "--hook", hook, "-o", "json"]);
            command.args(extra);
        }
        let mut child = command
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("cannot start picket")?;
        let stderr = child.stderr.take().context("no stderr")?;
        let mut lines = BufReader::new(stderr).lines();
        let mut said = Vec::new();
        loop {
            match lines.next() {
                Some(Ok(l)) if l.contains("picket: watching") => break,
                Some(Ok(l)) => said.push(l),
                _ => {
                    let _ = child.wait();
                    bail!(
                        "picket ({hook}) did not start on {IF_V}: {}",
                        said.join(" / ")
                    );
                }
            }
        }
        thread::spawn(move || for _ in lines {});
        Ok(Agent(child))
    }

    /// CPU time (user + system) used so far, in seconds.
    fn cpu_s(&self) -> Result<f64> {
        // The child is `ip netns exec`, which execs picket: same pid.
        let stat = fs::read_to_string(format!("/proc/{}/stat", self.0.id()))?;
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .context("bad stat")?
            .1
            .split_whitespace()
            .collect();
        let ticks: f64 = fields[11].parse::<f64>()? + fields[12].parse::<f64>()?;
        // SAFETY: sysconf has no preconditions.
        Ok(ticks / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64)
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGINT) };
        let _ = self.0.wait();
    }
}

/// The value of each series (name and labels, as exposed) from the agent's metrics.
fn metrics(series: &[&str]) -> Result<Vec<u64>> {
    let code = format!(
        "import urllib.request;print(urllib.request.urlopen('http://{METRICS}/metrics').read().decode())"
    );
    let out = cmd("ip")
        .args(["netns", "exec", NS_V, "python3", "-c", &code])
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    series
        .iter()
        .map(|s| {
            let prefix = format!("{s} ");
            text.lines()
                .find_map(|l| l.strip_prefix(prefix.as_str()))
                .and_then(|v| v.trim().parse::<f64>().ok())
                .map(|v| v as u64)
                .with_context(|| format!("{s} missing from the agent's metrics"))
        })
        .collect()
}

/// Entries and capacity of the per-source map, from the agent's metrics.
fn sources_in_map() -> Result<(u64, u64)> {
    let v = metrics(&[
        r#"picket_map_entries{map="sources"}"#,
        r#"picket_map_capacity_entries{map="sources"}"#,
    ])?;
    Ok((v[0], v[1]))
}

fn rx_packets() -> Result<u64> {
    let out = cmd("ip")
        .args([
            "netns",
            "exec",
            NS_V,
            "cat",
            &format!("/sys/class/net/{IF_V}/statistics/rx_packets"),
        ])
        .output()?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().parse()?)
}

/// Packets per second received by the victim while trafgen sends `conf` for `SECONDS`.
fn measure(conf: &Path) -> Result<f64> {
    trafgen(conf, SECONDS, None)
}

/// Runs trafgen with `conf` for `secs` (with `gap` between packets, else as fast as it can)
/// and returns the packets per second the victim received. trafgen sometimes refuses to
/// start right after a program was attached to the veth pair (the link is being
/// reconfigured): it is tried again, at most twice.
fn trafgen(conf: &Path, secs: u64, gap: Option<&str>) -> Result<f64> {
    let mut attempt = 0;
    loop {
        let before = rx_packets()?;
        let t = Instant::now();
        let out = Command::new("ip")
            .args([
                "netns",
                "exec",
                NS_A,
                "timeout",
                &secs.to_string(),
                "trafgen",
                "--dev",
                IF_A,
                "--cpus",
                "1",
                "-q",
            ])
            .args(gap.map(|g| ["-t", g]).iter().flatten())
            .arg("--conf")
            .arg(conf)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .context("cannot run trafgen (apt-get install netsniff-ng)")?;
        // timeout(1) exits 124 when it had to stop trafgen, which is the normal end here.
        if out.status.success() || out.status.code() == Some(124) {
            return Ok((rx_packets()? - before) as f64 / t.elapsed().as_secs_f64());
        }
        attempt += 1;
        if attempt > 2 {
            let why = String::from_utf8_lossy(&out.stderr);
            let why = why
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("");
            bail!("trafgen failed: {}: {why}", out.status);
        }
        thread::sleep(Duration::from_secs(1));
    }
}

fn trafgen_conf(dir: &Path, name: &str, saddr: &str) -> Result<PathBuf> {
    let out = cmd("ip")
        .args(["-n", NS_V, "-j", "link", "show", IF_V])
        .output()?;
    let links: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let mac = links[0]["address"].as_str().context("no MAC address")?;
    let path = dir.join(name);
    fs::write(
        &path,
        format!(
            "{{ eth(da={mac}), ipv4(saddr={saddr}, daddr={ADDR_V}), udp(sport=40000, dport=9), fill(0, 18) }}\n"
        ),
    )?;
    Ok(path)
}

/// The packets per second received and the agent's CPU (% of one core) while picket with
/// `--hook HOOK` watches trafgen sending `conf`.
fn cpu_under_load(picket: &Path, hook: &str, conf: &Path) -> Result<(f64, f64)> {
    let agent = Agent::start(picket, hook, &[])?;
    let c0 = agent.cpu_s()?;
    let pps = measure(conf)?;
    Ok((pps, 100.0 * (agent.cpu_s()? - c0) / SECONDS as f64))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Runs the live measurement and prints its table.
pub fn run(picket: &Path) -> Result<()> {
    if util::find_program("trafgen").is_none() {
        bail!("trafgen not found: run `cargo xtask bootstrap` (Debian package netsniff-ng)");
    }
    let _ns = Namespaces::create()?;
    let dir = std::env::temp_dir().join(format!("picket-bench-{}", std::process::id()));
    fs::create_dir_all(&dir)?;
    let fixed = trafgen_conf(&dir, "fixed.cfg", ADDR_A)?;
    let random = trafgen_conf(&dir, "random.cfg", "drnd()")?;

    println!(
        "\nlive: trafgen UDP 64 B frames {NS_A} -> {NS_V} over veth, {SECONDS} s per run, {ROUNDS} rounds, median pps [min-max]"
    );
    let modes = ["none", "pass", "xdp", "tc", "afpacket"];
    for (label, conf) in [("one source", &fixed), ("random sources", &random)] {
        let mut pps: Vec<Vec<f64>> = vec![Vec::new(); modes.len()];
        // AF_PACKET: the share of the packets received that the rings dropped.
        let mut ring_drops = Vec::new();
        for _ in 0..ROUNDS {
            for (i, mode) in modes.iter().enumerate() {
                let extra: &[&str] = if *mode == "afpacket" {
                    &["--metrics-addr", METRICS]
                } else {
                    &[]
                };
                let _agent = match *mode {
                    "none" => None,
                    hook => Some(Agent::start(picket, hook, extra)?),
                };
                let before = rx_packets()?;
                pps[i].push(measure(conf)?);
                if *mode == "afpacket" {
                    let received = rx_packets()?.saturating_sub(before).max(1);
                    let drops = metrics(&["picket_capture_drops_total"])?[0];
                    ring_drops.push(100.0 * drops as f64 / received as f64);
                }
            }
        }
        let base = median(pps[0].clone());
        let pass = median(pps[1].clone());
        for (i, mode) in modes.iter().enumerate() {
            let m = median(pps[i].clone());
            // On veth, attaching any XDP program moves receive into veth's XDP/NAPI path:
            // the bare XDP_PASS program shows that cost apart from Picket's own.
            let of_pass = if *mode == "xdp" {
                format!(" ({:.1}% of XDP_PASS)", 100.0 * m / pass)
            } else if *mode == "afpacket" {
                format!(" (ring drops {:.1}% median)", median(ring_drops.clone()))
            } else {
                String::new()
            };
            let lo = pps[i].iter().copied().fold(f64::INFINITY, f64::min);
            let hi = pps[i].iter().copied().fold(0.0, f64::max);
            println!(
                "  {label:<15} {:<22} {m:>8.0} pps [{lo:.0}-{hi:.0}]  {:>5.1}% of no-picket{of_pass}{}",
                match *mode {
                    "none" => "nothing attached",
                    "pass" => "bare XDP_PASS program",
                    "xdp" => "picket --hook xdp",
                    "tc" => "picket --hook tc",
                    _ => "picket --hook afpacket",
                },
                100.0 * m / base,
                if matches!(*mode, "none" | "pass") {
                    String::new()
                } else if m >= 0.95 * base {
                    "  (target 95%: met)".into()
                } else {
                    "  (target 95%: MISSED)".into()
                }
            );
        }
    }

    // CPU of the agent under a random-source flood (admission control turns on at once, so
    // the map does not fill).
    let (load_pps, load_cpu) = cpu_under_load(picket, "xdp", &random)?;
    // The same without BPF: the rings' readers do in user space what the programs did.
    let (ring_pps, ring_cpu) = cpu_under_load(picket, "afpacket", &random)?;
    // Then idle with a full map: filled with distinct sources below the admission budget
    // (`--window 2s`: 16 384 new sources/s; trafgen with a 50 µs gap sends ~11 000/s).
    let agent = Agent::start(
        picket,
        "xdp",
        &["--window", "2s", "--metrics-addr", METRICS],
    )?;
    trafgen(&random, FILL_SECONDS, Some("50us"))?;
    let (entries, capacity) = sources_in_map()?;
    let c1 = agent.cpu_s()?;
    thread::sleep(Duration::from_secs(IDLE_SECONDS));
    let idle_cpu = 100.0 * (agent.cpu_s()? - c1) / IDLE_SECONDS as f64;
    println!(
        "  agent CPU (1 s polls): {load_cpu:.1}% of one core under {load_pps:.0} pps of random sources; \
         {idle_cpu:.1}% idle with {entries} of {capacity} per-source entries (target < 2%)"
    );
    println!(
        "  agent CPU with --hook afpacket: {ring_cpu:.1}% of one core under {ring_pps:.0} pps of random sources"
    );
    drop(agent);
    let _ = fs::remove_dir_all(&dir);
    Ok(())
}
