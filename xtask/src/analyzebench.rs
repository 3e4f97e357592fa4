//! The offline analysis part of `cargo xtask bench`: `picket analyze` throughput on one core
//! (and on two, `--threads 2`), next to a dpkt script doing the same per-protocol counting
//! (`xtask/bench/dpkt_count.py`), `tshark -q -z io,phs`, NFStream metering the flows
//! (`xtask/bench/nfstream_flows.py`) and `tcpdump -r FILE -w /dev/null` (the read-speed
//! floor), all on the same capture.
//!
//! The capture (`target/bench/analyze-2m.pcap`) is generated from the Ethernet frames of the
//! shared captures (`../shared/pcaps/{esnet,ddos,tcpdump-tests}`), repeated until it holds at
//! least [`PACKETS`] packets, 10 µs apart; it is reused when present with the right size. A
//! prefix file of the first [`PREFIX_PACKETS`] packets checks that picket's protocol mix
//! equals dpkt's (the bench fails otherwise) and stands in for the whole file when dpkt would
//! take too long.

use std::{
    collections::BTreeMap,
    fs,
    io::BufWriter,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use picket_capture::{
    link,
    writer::{self, PcapWriter, Resolution},
};
use serde_json::Value;

use crate::{
    fuzz,
    util::{self, workspace_root},
};

/// Packets in the benchmark capture (at least).
const PACKETS: usize = 2_000_000;
/// Packets in the prefix file used for the count check (and for dpkt when it is slow).
const PREFIX_PACKETS: usize = 200_000;
/// Subdirectories of the shared captures the packet set comes from.
const SOURCES: &[&str] = &["esnet", "ddos", "tcpdump-tests"];
/// First timestamp of the generated captures (2023-11-14T22:13:20Z), in seconds.
const START_S: u64 = 1_700_000_000;
/// Gap between consecutive packets, in microseconds.
const GAP_US: u64 = 10;
/// Runs of picket; the best is kept.
const PICKET_RUNS: usize = 3;
/// dpkt on the whole file when its estimate from the prefix stays below this.
const DPKT_FULL_MAX: Duration = Duration::from_secs(90);
/// Throughput targets: picket at least this many times dpkt, tshark.
const TARGET_DPKT: f64 = 50.0;
const TARGET_TSHARK: f64 = 10.0;
/// Packets per second of the full report on one core.
const TARGET_PACKETS_PER_S: f64 = 5e6;
/// `--threads 2` over `--threads 1`.
const TARGET_TWO_THREADS: f64 = 1.7;
/// NFStream on the whole file when its estimate from the prefix stays below this.
const NFSTREAM_FULL_MAX: Duration = Duration::from_secs(90);
/// Size of the bounded-memory case's capture (at least), in bytes.
const LARGE_BYTES: u64 = 10_000_000_000;
/// GNU time, for peak resident memory.
const GNU_TIME: &str = "/usr/bin/time";
/// Peak resident memory allowed on it: what the table caps (README, `limits` in the JSON:
/// 2^20 TCP flows, as many UDP flows, sources, destinations and conversations, 128 MiB of
/// reassembly buffers) allow, with the report's rows built from full tables.
const LARGE_RSS_MAX: u64 = 3 << 30;

/// One measured tool.
struct Measure {
    name: String,
    packets: u64,
    bytes: u64,
    wall: Duration,
    note: String,
}

impl Measure {
    fn packets_per_s(&self) -> f64 {
        self.packets as f64 / self.wall.as_secs_f64()
    }
    fn mb_per_s(&self) -> f64 {
        self.bytes as f64 / 1e6 / self.wall.as_secs_f64()
    }
}

/// Runs the analyze benchmark with `picket`, pinned to `cpu` when `taskset` exists.
pub fn run(picket: &Path, cpu: &str) -> Result<()> {
    println!("\n== picket analyze throughput (one core) ==");
    let frames = packet_set()?;
    let dir = util::target_dir().join("bench");
    fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let total = PACKETS.div_ceil(frames.len()) * frames.len();
    let full = dir.join("analyze-2m.pcap");
    let prefix = dir.join("analyze-prefix.pcap");
    let full_bytes = write_capture(&full, &frames, total, false)?;
    let prefix_bytes = write_capture(&prefix, &frames, PREFIX_PACKETS.min(total), false)?;
    println!(
        "capture: {} ({total} packets, {:.1} MB; {} distinct frames repeated)",
        full.display(),
        full_bytes as f64 / 1e6,
        frames.len()
    );

    let taskset = util::find_program("taskset");
    if taskset.is_none() {
        println!("note: taskset not found; tools are not pinned to one CPU");
    }
    let pinned = |program: &Path| {
        let mut command = match &taskset {
            Some(taskset) => {
                let mut command = util::cmd(taskset);
                command.args(["-c", cpu]).arg(program);
                command
            }
            None => util::cmd(program),
        };
        command.stdin(Stdio::null());
        command
    };

    // Correctness first: the protocol mix of picket and dpkt on the prefix.
    let picket_json = {
        let mut command = pinned(picket);
        command
            .args(["analyze", "--json", "--no-progress"])
            .arg(&prefix);
        serde_json::from_slice::<Value>(&output(&mut command)?.0)
            .context("picket analyze --json printed invalid JSON")?
    };
    let python = Path::new("/usr/bin/python3");
    let script = workspace_root().join("xtask/bench/dpkt_count.py");
    let dpkt = |file: &Path| -> Result<(Value, Duration)> {
        let mut command = pinned(python);
        command.arg(&script).arg(file);
        let (out, wall) = output(&mut command)?;
        let v =
            serde_json::from_slice::<Value>(&out).context("dpkt_count.py printed invalid JSON")?;
        Ok((v, wall))
    };
    let (dpkt_json, dpkt_prefix_wall) = dpkt(&prefix)?;
    // A differing mix fails the bench, after the figures (they are still worth reading).
    let check = compare(&picket_json, &dpkt_json);
    match &check {
        Ok(()) => println!(
            "check: picket's protocol mix equals dpkt's on {} ({} packets; {} decided by the byte-level rules where dpkt's decoding differs)",
            prefix.display(),
            dpkt_json["packets"],
            dpkt_json["fallback_packets"]
        ),
        Err(e) => println!("check FAILED: {e:#}"),
    }

    let mut rows = Vec::new();
    // picket: best of PICKET_RUNS.
    let (mut best, mut full_rss) = (Duration::MAX, 0);
    for _ in 0..PICKET_RUNS {
        let mut command = pinned(picket);
        command
            .args(["analyze", "--json", "--no-progress", "--threads", "1"])
            .arg(&full);
        let (wall, rss) = timed_rss(&command)?;
        best = best.min(wall);
        full_rss = full_rss.max(rss);
    }
    rows.push(Measure {
        name: "picket analyze --json".into(),
        packets: total as u64,
        bytes: full_bytes,
        wall: best,
        note: format!("best of {PICKET_RUNS}, --threads 1, one core"),
    });
    let picket_report: Value = {
        let mut command = pinned(picket);
        command
            .args(["analyze", "--json", "--no-progress", "--threads", "1"])
            .arg(&full);
        serde_json::from_slice(&output(&mut command)?.0)
            .context("picket analyze --json printed invalid JSON")?
    };
    let picket_flows = picket_report["tcp"]["flows_total"].as_u64().unwrap_or(0)
        + picket_report["udp"]["flows_total"].as_u64().unwrap_or(0);
    // Two threads on two cores: the scaling, and the same report.
    let two_cores = util::find_program("taskset").is_some() && available_cpus() >= 2;
    let mut best2 = Duration::MAX;
    let mut two_same = true;
    if two_cores {
        for _ in 0..PICKET_RUNS {
            let mut command = util::cmd(util::find_program("taskset").unwrap_or_default());
            command
                .args(["-c", "0,1"])
                .arg(picket)
                .args(["analyze", "--json", "--no-progress", "--threads", "2"])
                .arg(&full)
                .stdin(Stdio::null());
            let (out, wall) = output(&mut command)?;
            best2 = best2.min(wall);
            two_same &= serde_json::from_slice::<Value>(&out).ok().as_ref() == Some(&picket_report);
        }
    }

    // dpkt: the whole file when it fits in DPKT_FULL_MAX, else the prefix, scaled.
    let estimate = dpkt_prefix_wall.mul_f64(total as f64 / PREFIX_PACKETS as f64);
    if estimate <= DPKT_FULL_MAX {
        let (v, wall) = dpkt(&full)?;
        if v["packets"].as_u64() != Some(total as u64) {
            bail!("dpkt_count.py read {} packets of {total}", v["packets"]);
        }
        rows.push(Measure {
            name: "dpkt (python3)".into(),
            packets: total as u64,
            bytes: full_bytes,
            wall,
            note: "1 run".into(),
        });
    } else {
        rows.push(Measure {
            name: "dpkt (python3)".into(),
            packets: PREFIX_PACKETS as u64,
            bytes: prefix_bytes,
            wall: dpkt_prefix_wall,
            note: format!(
                "on the first {PREFIX_PACKETS} packets (full file estimated {:.0} s), rates scaled",
                estimate.as_secs_f64()
            ),
        });
    }

    // tshark, one run (it is far slower than picket).
    match util::find_program("tshark") {
        Some(tshark) => {
            let mut command = pinned(&tshark);
            command
                .args(["-q", "-z", "io,phs", "-r"])
                .arg(&full)
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            rows.push(Measure {
                name: "tshark -q -z io,phs".into(),
                packets: total as u64,
                bytes: full_bytes,
                wall: timed(&mut command)?,
                note: "1 run".into(),
            });
        }
        None => bail!("tshark not found (run `cargo xtask bootstrap`)"),
    }

    // NFStream: the flow table work, C-accelerated; the whole file when it fits.
    let venv_python = crate::bootstrap::test_venv().join("bin").join("python");
    let nfstream_script = workspace_root().join("xtask/bench/nfstream_flows.py");
    let nfstream = |file: &Path| -> Result<(Value, Duration)> {
        let mut command = pinned(&venv_python);
        command.arg(&nfstream_script).arg(file);
        let (out, wall) = output(&mut command)?;
        let v = serde_json::from_slice::<Value>(&out)
            .context("nfstream_flows.py printed invalid JSON")?;
        Ok((v, wall))
    };
    let (nf_prefix, nf_prefix_wall) = nfstream(&prefix)?;
    let nf_estimate = nf_prefix_wall.mul_f64(total as f64 / PREFIX_PACKETS as f64);
    let nf_flows = if nf_estimate <= NFSTREAM_FULL_MAX {
        let (v, wall) = nfstream(&full)?;
        rows.push(Measure {
            name: "NFStream (n_meters=1)".into(),
            packets: total as u64,
            bytes: full_bytes,
            wall,
            note: format!("1 run; {} flows (picket: {picket_flows})", v["flows"]),
        });
        v["flows"].clone()
    } else {
        rows.push(Measure {
            name: "NFStream (n_meters=1)".into(),
            packets: PREFIX_PACKETS as u64,
            bytes: prefix_bytes,
            wall: nf_prefix_wall,
            note: format!(
                "on the first {PREFIX_PACKETS} packets (full file estimated {:.0} s), rates scaled; {} flows in them",
                nf_estimate.as_secs_f64(),
                nf_prefix["flows"]
            ),
        });
        Value::Null
    };

    // tcpdump reading the file and writing nothing: how fast the file can be read at all.
    match util::find_program("tcpdump") {
        Some(tcpdump) => {
            let mut command = pinned(&tcpdump);
            command
                .args(["-r"])
                .arg(&full)
                .args(["-w", "/dev/null"])
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            rows.push(Measure {
                name: "tcpdump -r -w /dev/null".into(),
                packets: total as u64,
                bytes: full_bytes,
                wall: timed(&mut command)?,
                note: "1 run; reads and writes nothing back: the read-speed floor".into(),
            });
        }
        None => bail!("tcpdump not found (run `cargo xtask bootstrap`)"),
    }

    print_table(&rows);
    let pps = rows[0].packets_per_s();
    println!(
        "\none core, full report: {pps:.0} packets/s, target >= {TARGET_PACKETS_PER_S:.0}: {}",
        if pps >= TARGET_PACKETS_PER_S {
            "met"
        } else {
            "MISSED"
        }
    );
    if !nf_flows.is_null() {
        println!(
            "flows: picket {picket_flows} (TCP streams split as Wireshark's, UDP by address/port pair), NFStream {nf_flows} (its idle/active timeouts)"
        );
    }
    if two_cores {
        let scaling = best.as_secs_f64() / best2.as_secs_f64();
        println!(
            "--threads 2 on two cores: {:.0} packets/s, {scaling:.2}x --threads 1, target >= {TARGET_TWO_THREADS}x: {}; report {}",
            total as f64 / best2.as_secs_f64(),
            if scaling >= TARGET_TWO_THREADS {
                "met"
            } else {
                "MISSED"
            },
            if two_same { "identical" } else { "DIFFERENT" }
        );
        if !two_same {
            bail!("picket analyze --threads 2 printed a different report than --threads 1");
        }
    } else {
        println!("--threads 2: skipped, fewer than two CPUs (or no taskset)");
    }
    bounded_memory(picket, &frames, &dir, full_rss)?;
    check
}

/// The bounded-memory case: `picket analyze` over a capture of [`LARGE_BYTES`] whose every
/// repetition of the frame set has new IPv4 sources, so the tables fill to their caps; prints
/// its peak resident memory beside the 2 M-packet capture's (`small_rss`) and the budget
/// (picket's warnings say what the caps cut). Fails when the budget is exceeded.
fn bounded_memory(picket: &Path, frames: &[Vec<u8>], dir: &Path, small_rss: u64) -> Result<()> {
    println!("\n== picket analyze memory on a large capture ==");
    let count = LARGE_BYTES.div_ceil(cycle_bytes(frames)) as usize * frames.len();
    let path = dir.join("analyze-10g.pcap");
    let bytes = write_capture(&path, frames, count, true)?;
    println!(
        "capture: {} ({count} packets, {:.1} GB; IPv4 sources renumbered in each of {} repetitions)",
        path.display(),
        bytes as f64 / 1e9,
        count / frames.len()
    );
    let mut command = util::cmd(picket);
    command
        .args(["analyze", "--no-progress", "--top", "1"])
        .arg(&path);
    // What the caps cut comes as warnings on standard error.
    let (wall, rss) = timed_rss(&command)?;
    let verdict = if rss <= LARGE_RSS_MAX {
        "met"
    } else {
        "MISSED"
    };
    println!(
        "{count} packets in {:.1} s ({:.0} packets/s, default threads); peak resident memory {:.0} MiB (2 M-packet capture: {:.0} MiB), budget <= {:.0} MiB: {verdict}",
        wall.as_secs_f64(),
        count as f64 / wall.as_secs_f64(),
        rss as f64 / f64::from(1 << 20),
        small_rss as f64 / f64::from(1 << 20),
        LARGE_RSS_MAX as f64 / f64::from(1 << 20)
    );
    if rss > LARGE_RSS_MAX {
        bail!("picket analyze's memory is not bounded by its table caps");
    }
    Ok(())
}

/// CPUs this process may run on.
fn available_cpus() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

fn print_table(rows: &[Measure]) {
    let picket = rows[0].packets_per_s();
    println!(
        "\n{:<24} {:>12} {:>9} {:>9} {:>12}  target",
        "tool", "packets/s", "MB/s", "wall s", "picket is"
    );
    for (i, m) in rows.iter().enumerate() {
        let (ratio, target) = if i == 0 {
            (String::new(), String::new())
        } else {
            let want = if m.name.starts_with("dpkt") {
                Some(TARGET_DPKT)
            } else if m.name.starts_with("tshark") {
                Some(TARGET_TSHARK)
            } else {
                None
            };
            let ratio = picket / m.packets_per_s();
            let target = want.map_or_else(
                || "-".to_string(),
                |want| {
                    let verdict = if ratio >= want { "met" } else { "MISSED" };
                    format!(">= {want:.0}x {verdict}")
                },
            );
            (format!("{ratio:.2}x"), target)
        };
        println!(
            "{:<24} {:>12.0} {:>9.1} {:>9.2} {:>12}  {}",
            m.name,
            m.packets_per_s(),
            m.mb_per_s(),
            m.wall.as_secs_f64(),
            ratio,
            target
        );
    }
    for m in rows {
        println!("  {}: {}", m.name, m.note);
    }
    println!("  MB = 10^6 bytes of capture file; ratios are of packets/s (the same as of MB/s).");
}

/// Ethernet frames of the shared captures, in file order.
fn packet_set() -> Result<Vec<Vec<u8>>> {
    let root = util::shared_pcaps();
    let mut files = Vec::new();
    for dir in SOURCES {
        fuzz::collect(&root.join(dir), &mut files)?;
    }
    files.sort();
    let frames: Vec<Vec<u8>> = files
        .iter()
        .flat_map(|f| fuzz::ethernet_frames(f))
        .collect();
    if frames.is_empty() {
        bail!("no Ethernet frames under {}", root.display());
    }
    Ok(frames)
}

/// Writes `count` packets cycling through `frames` as a classic microsecond pcap
/// (LINKTYPE_ETHERNET, frames stored whole), unless `path` already has the expected size;
/// returns the file size. With `renumber`, each repetition of `frames` gets its own IPv4
/// sources ([`renumbered`]).
fn write_capture(path: &Path, frames: &[Vec<u8>], count: usize, renumber: bool) -> Result<u64> {
    let (cycles, rest) = (count / frames.len(), count % frames.len());
    let size = writer::FILE_HEADER_LEN
        + cycle_bytes(frames) * cycles as u64
        + cycle_bytes(&frames[..rest]);
    if fs::metadata(path).is_ok_and(|m| m.len() == size) {
        return Ok(size);
    }
    let snaplen = frames.iter().map(Vec::len).max().unwrap_or(0).max(65_535) as u32;
    let tmp = PathBuf::from(format!("{}.tmp", path.display()));
    let file =
        fs::File::create(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
    let mut w = PcapWriter::new(
        BufWriter::with_capacity(1 << 20, file),
        Resolution::Micro,
        link::LINKTYPE_ETHERNET,
        snaplen,
    )?;
    let mut scratch = Vec::new();
    for (i, frame) in frames.iter().cycle().take(count).enumerate() {
        let ts_ns = START_S * 1_000_000_000 + i as u64 * GAP_US * 1_000;
        let repetition = i / frames.len();
        let frame = if renumber && repetition > 0 {
            renumbered(&mut scratch, frame, repetition as u16)
        } else {
            frame
        };
        w.write(ts_ns, frame.len() as u32, frame)?;
    }
    w.into_inner()
        .into_inner()
        .map_err(|e| e.into_error())
        .and_then(|f| f.sync_all())
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    fs::rename(&tmp, path).with_context(|| format!("cannot rename to {}", path.display()))?;
    Ok(size)
}

/// Bytes of the pcap records holding `frames` once each.
fn cycle_bytes(frames: &[Vec<u8>]) -> u64 {
    frames
        .iter()
        .map(|f| writer::RECORD_HEADER_LEN + f.len() as u64)
        .sum()
}

/// `frame` with the low 16 bits of its IPv4 source XORed with `repetition` and the header
/// checksum recomputed (in `scratch`); other frames unchanged.
fn renumbered<'a>(scratch: &'a mut Vec<u8>, frame: &'a [u8], repetition: u16) -> &'a [u8] {
    const IP: usize = 14;
    let Some(&version_ihl) = frame.get(IP) else {
        return frame;
    };
    let ihl = usize::from(version_ihl & 0x0f) * 4;
    let ipv4 = frame.get(12..14) == Some(&[0x08, 0x00][..]) && version_ihl >> 4 == 4;
    if !ipv4 || ihl < 20 || frame.len() < IP + ihl {
        return frame;
    }
    scratch.clear();
    scratch.extend_from_slice(frame);
    let low = u16::from_be_bytes([scratch[IP + 14], scratch[IP + 15]]) ^ repetition;
    scratch[IP + 14..IP + 16].copy_from_slice(&low.to_be_bytes());
    scratch[IP + 10..IP + 12].fill(0);
    let sum: u32 = scratch[IP..IP + ihl]
        .chunks_exact(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
        .sum();
    let folded = (sum & 0xffff) + (sum >> 16);
    let checksum = !(((folded & 0xffff) + (folded >> 16)) as u16);
    scratch[IP + 10..IP + 12].copy_from_slice(&checksum.to_be_bytes());
    scratch
}

/// Runs `command` under GNU time with its output discarded, and returns its wall time and
/// the program's peak resident memory in bytes. (`wait4` here would not do: a child spawned
/// from this process starts with this process's memory high-water mark.)
fn timed_rss(command: &Command) -> Result<(Duration, u64)> {
    let report = util::target_dir().join("bench").join("peak-rss.txt");
    let mut timed_command = util::cmd(GNU_TIME);
    timed_command
        .args(["-f", "%M", "-o"])
        .arg(&report)
        .arg(command.get_program())
        .args(command.get_args())
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    let wall = timed(&mut timed_command)?;
    let text =
        fs::read_to_string(&report).with_context(|| format!("cannot read {}", report.display()))?;
    let kib: u64 = text
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .with_context(|| format!("{GNU_TIME} wrote {text:?}, not a size in KiB"))?;
    Ok((wall, kib * 1024))
}

/// Runs `command` with inherited stdio (as set up by the caller) and returns its wall time.
fn timed(command: &mut Command) -> Result<Duration> {
    let shown = util::display(command);
    println!("$ {shown}");
    let start = Instant::now();
    let status = command
        .status()
        .with_context(|| format!("could not start `{shown}`"))?;
    let wall = start.elapsed();
    if !status.success() {
        bail!("`{shown}` failed ({status})");
    }
    Ok(wall)
}

/// Runs `command`, capturing standard output, and returns it with the wall time.
fn output(command: &mut Command) -> Result<(Vec<u8>, Duration)> {
    let shown = util::display(command);
    println!("$ {shown}");
    let start = Instant::now();
    let out = command
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("could not start `{shown}`"))?;
    let wall = start.elapsed();
    if !out.status.success() {
        bail!("`{shown}` failed ({})", out.status);
    }
    Ok((out.stdout, wall))
}

/// `id -> (packets, bytes)` of one protocol table, zero rows left out.
type Table = BTreeMap<String, (u64, u64)>;

fn picket_table(report: &Value, name: &str) -> Table {
    let rows = report["protocols"][name]
        .as_array()
        .cloned()
        .unwrap_or_default();
    rows.iter()
        .filter_map(|r| {
            let id = r["id"].as_str()?.to_string();
            let c = (r["packets"].as_u64()?, r["bytes"].as_u64()?);
            (c.0 > 0).then_some((id, c))
        })
        .collect()
}

fn dpkt_table(counts: &Value, name: &str) -> Table {
    let rows = counts[name].as_object().cloned().unwrap_or_default();
    rows.iter()
        .filter_map(|(id, r)| {
            let c = (r[0].as_u64()?, r[1].as_u64()?);
            (c.0 > 0).then_some((id.clone(), c))
        })
        .collect()
}

/// Fails unless picket's totals and protocol mix equal dpkt's.
fn compare(picket: &Value, dpkt: &Value) -> Result<()> {
    let totals = (&picket["totals"]["packets"], &picket["totals"]["bytes"]);
    if totals.0 != &dpkt["packets"] || totals.1 != &dpkt["bytes"] {
        bail!(
            "picket counted {} packets / {} bytes, dpkt {} / {}",
            totals.0,
            totals.1,
            dpkt["packets"],
            dpkt["bytes"]
        );
    }
    let mut problems = Vec::new();
    for name in ["ethertypes", "ip_protocols", "l4"] {
        let (p, d) = (picket_table(picket, name), dpkt_table(dpkt, name));
        if p.is_empty() {
            problems.push(format!("{name}: picket's table is empty"));
        }
        for id in p.keys().chain(d.keys().filter(|k| !p.contains_key(*k))) {
            let (a, b) = (p.get(id), d.get(id));
            if a != b {
                problems.push(format!(
                    "{name} {id}: picket {a:?}, dpkt {b:?} (packets, bytes)"
                ));
            }
        }
    }
    if !problems.is_empty() {
        bail!(
            "picket's protocol mix differs from dpkt's; the comparison would be worthless:\n  {}",
            problems.join("\n  ")
        );
    }
    Ok(())
}
