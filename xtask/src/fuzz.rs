//! `cargo xtask fuzz`: run the cargo-fuzz targets in `fuzz/`, seeded from `../shared/pcaps`.
//!
//! Seeds: for `classify` and `l4_payload`, every Ethernet frame of the captures under
//! `../shared/pcaps`; for `capture` (the capture-file reader), the files themselves, the
//! large ones cut short; for the payload parsers `http`, `dns` and `tls_sni`, the L4
//! payloads of their protocol in frames of every supported link type (classified as
//! `picket analyze` does). The corpus lives in `fuzz/corpus/<target>` (not tracked). Crashes
//! land in `fuzz/artifacts/<target>`; each one found must become a regression test.
//!
//! The three payload parsers are small: together they get the time of one target (a third
//! each), so a CI run (30 s per target) fuzzes for 2 minutes.

use std::{
    collections::HashSet,
    fs,
    hash::{DefaultHasher, Hash, Hasher},
    path::{Path, PathBuf},
};

use agent_common::{
    Summary,
    classify::{IPPROTO_TCP, IPPROTO_UDP},
    packet::Snapshot,
};
use anyhow::{Context as _, Result, bail};
use picket_capture::{link, reader::read_capture};

use crate::{
    bootstrap,
    util::{self, cmd, workspace_root},
};

/// Options of `cargo xtask fuzz`.
#[derive(clap::Args)]
pub struct Options {
    /// Seconds to run each target (the payload parsers a third of it each).
    #[arg(long, default_value_t = 60)]
    pub seconds: u64,
    /// Targets to run (default: all).
    #[arg(long = "target")]
    pub targets: Vec<String>,
}

/// Every fuzz target, with how its seed corpus is made and the share of `--seconds` it runs
/// (seconds divided by this).
const TARGETS: &[(&str, Seeds, u64)] = &[
    ("classify", Seeds::Frames, 1),
    ("capture", Seeds::Files, 1),
    ("l4_payload", Seeds::Frames, 1),
    ("http", Seeds::Payloads(App::Http), 3),
    ("dns", Seeds::Payloads(App::Dns), 3),
    ("tls_sni", Seeds::Payloads(App::Tls), 3),
    ("streams", Seeds::Payloads(App::Http), 3),
];

/// Kinds of seed corpus.
#[derive(Clone, Copy)]
enum Seeds {
    /// Ethernet frames extracted from the shared captures.
    Frames,
    /// The shared capture files, cut to [`MAX_SEED_FILE`] bytes (a cut file is a truncated
    /// capture: a case of its own).
    Files,
    /// L4 payloads of one application protocol.
    Payloads(App),
}

/// Application protocols whose payloads seed a parser.
#[derive(Clone, Copy)]
enum App {
    /// TCP payloads to or from the usual HTTP ports.
    Http,
    /// UDP payloads to or from port 53 or 5353, and DNS messages of TCP port 53 (after the
    /// 2-byte length).
    Dns,
    /// TCP payloads that start with a TLS handshake record.
    Tls,
}

impl App {
    /// The bytes the parser of this protocol is given, when `s` carries it.
    fn payload<'a>(self, s: &Summary, payload: &'a [u8]) -> Option<&'a [u8]> {
        let port = |ports: &[u16]| ports.contains(&s.src_port) || ports.contains(&s.dst_port);
        match self {
            App::Http if s.proto == IPPROTO_TCP && port(&[80, 8000, 8080, 3128]) => Some(payload),
            App::Dns if s.proto == IPPROTO_UDP && port(&[53, 5353]) => Some(payload),
            App::Dns if s.proto == IPPROTO_TCP && port(&[53]) => payload.get(2..),
            App::Tls if s.proto == IPPROTO_TCP && payload.starts_with(&[0x16, 3]) => Some(payload),
            _ => None,
        }
    }
}

/// Longest capture-file seed: longer inputs only slow the fuzzer down.
const MAX_SEED_FILE: usize = 64 * 1024;

/// Most seeds written per target (the shared captures hold far more frames).
const MAX_SEEDS: usize = 20_000;

/// Entry point of `cargo xtask fuzz`.
pub fn main(opts: &Options) -> Result<()> {
    bootstrap::ensure(bootstrap::Needs::Test)?;
    run(opts.seconds, &opts.targets)
}

/// Runs the named targets (all when empty) for `seconds` each.
pub fn run(seconds: u64, targets: &[String]) -> Result<()> {
    for name in targets {
        if !TARGETS.iter().any(|(t, ..)| t == name) {
            bail!(
                "unknown fuzz target {name:?}; known: {}",
                TARGETS.iter().map(|t| t.0).collect::<Vec<_>>().join(", ")
            );
        }
    }
    for (name, seeds, share) in TARGETS
        .iter()
        .filter(|(t, ..)| targets.is_empty() || targets.iter().any(|n| n == t))
    {
        let corpus = workspace_root().join("fuzz/corpus").join(name);
        let n = seed(&corpus, *seeds)?;
        let seconds = (seconds / share).max(1);
        println!(
            "fuzz {name}: {n} seeds in {}, {seconds} s",
            corpus.display()
        );
        util::run(
            cmd("rustup")
                .args(["run", "nightly", "cargo", "fuzz", "run", name])
                .arg(&corpus)
                .args([
                    "--",
                    &format!("-max_total_time={seconds}"),
                    "-rss_limit_mb=4096",
                    "-print_final_stats=1",
                ]),
        )
        .with_context(|| format!("fuzz target {name} failed: see fuzz/artifacts/{name}"))?;
    }
    Ok(())
}

fn seed(corpus: &Path, seeds: Seeds) -> Result<usize> {
    fs::create_dir_all(corpus).with_context(|| format!("cannot create {}", corpus.display()))?;
    let mut files = Vec::new();
    collect(&util::shared_pcaps(), &mut files)?;
    files.sort();
    let mut seen = HashSet::new();
    let mut keep = |bytes: &[u8]| -> Result<()> {
        let mut h = DefaultHasher::new();
        bytes.hash(&mut h);
        let h = h.finish();
        if seen.len() < MAX_SEEDS && seen.insert(h) {
            fs::write(corpus.join(format!("{h:016x}")), bytes)?;
        }
        Ok(())
    };
    for file in files {
        match seeds {
            Seeds::Frames => {
                for frame in ethernet_frames(&file) {
                    keep(&frame)?;
                }
            }
            Seeds::Files => {
                let bytes =
                    fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
                keep(&bytes[..bytes.len().min(MAX_SEED_FILE)])?;
            }
            Seeds::Payloads(app) => {
                let mut kept = Ok(());
                frames(&file, |linktype, data| {
                    let snap = Snapshot {
                        data,
                        orig_len: data.len(),
                    };
                    let Some(Ok(s)) = link::classify(linktype, &snap) else {
                        return;
                    };
                    // Link-layer padding may follow: the parsers must take it anyway.
                    let payload = data.get(usize::from(s.payload_off)..).unwrap_or_default();
                    if !s.has_l4() || payload.is_empty() || kept.is_err() {
                        return;
                    }
                    if let Some(p) = app.payload(&s, payload) {
                        kept = keep(p);
                    }
                });
                kept?;
            }
        }
    }
    Ok(seen.len())
}

pub(crate) fn collect(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let entries = fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))?;
    for entry in entries {
        let path = entry?.path();
        if path.is_dir() {
            collect(&path, out)?;
        } else if path
            .extension()
            .is_some_and(|e| e == "pcap" || e == "pcapng")
        {
            out.push(path);
        }
    }
    Ok(())
}

/// Calls `f` with the link type and bytes of every frame of a capture, read with
/// picket-capture's reader; unreadable captures give nothing (seeds only).
fn frames(path: &Path, mut f: impl FnMut(u32, &[u8])) {
    let Ok(file) = fs::File::open(path) else {
        return;
    };
    let _ = read_capture(
        &path.display().to_string(),
        std::io::BufReader::new(file),
        &mut |_| {},
        &mut |frame| f(frame.linktype, frame.data),
    );
}

/// Frames of link type Ethernet in a capture; unreadable parts are skipped (seeds only).
pub(crate) fn ethernet_frames(path: &Path) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    frames(path, |linktype, data| {
        if linktype == link::LINKTYPE_ETHERNET {
            out.push(data.to_vec());
        }
    });
    out
}
