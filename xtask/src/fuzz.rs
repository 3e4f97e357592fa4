//! `cargo xtask fuzz`: run the cargo-fuzz targets in `fuzz/`, seeded from `../shared/pcaps`.
//!
//! Seeds: for `classify`, every frame of the Ethernet captures under `../shared/pcaps`; for
//! `capture` (the capture-file reader), the files themselves, the large ones cut short. The
//! corpus lives in `fuzz/corpus/<target>` (not tracked). Crashes land in
//! `fuzz/artifacts/<target>`; each one found must become a regression test.

use std::{
    collections::HashSet,
    fs,
    hash::{DefaultHasher, Hash, Hasher},
    path::{Path, PathBuf},
};

use anyhow::{Context as _, Result, bail};
use pcap_parser::{Block, PcapBlockOwned, PcapError};

use crate::{
    bootstrap,
    util::{self, cmd, workspace_root},
};

/// Options of `cargo xtask fuzz`.
#[derive(clap::Args)]
pub struct Options {
    /// Seconds to run each target.
    #[arg(long, default_value_t = 60)]
    pub seconds: u64,
    /// Targets to run (default: all).
    #[arg(long = "target")]
    pub targets: Vec<String>,
}

/// Every fuzz target, with how its seed corpus is made.
const TARGETS: &[(&str, Seeds)] = &[("classify", Seeds::Frames), ("capture", Seeds::Files)];

/// Kinds of seed corpus.
#[derive(Clone, Copy)]
enum Seeds {
    /// Ethernet frames extracted from the shared captures.
    Frames,
    /// The shared capture files, cut to [`MAX_SEED_FILE`] bytes (a cut file is a truncated
    /// capture: a case of its own).
    Files,
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
        if !TARGETS.iter().any(|(t, _)| t == name) {
            bail!(
                "unknown fuzz target {name:?}; known: {}",
                TARGETS.iter().map(|t| t.0).collect::<Vec<_>>().join(", ")
            );
        }
    }
    for (name, seeds) in TARGETS
        .iter()
        .filter(|(t, _)| targets.is_empty() || targets.iter().any(|n| n == t))
    {
        let corpus = workspace_root().join("fuzz/corpus").join(name);
        let n = seed(&corpus, *seeds)?;
        println!("fuzz {name}: {n} seeds in {}", corpus.display());
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

/// Frames of link type Ethernet in a capture; unreadable parts are skipped (seeds only).
pub(crate) fn ethernet_frames(path: &Path) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let Ok(file) = fs::File::open(path) else {
        return out;
    };
    let Ok(mut reader) = pcap_parser::create_reader(1 << 20, file) else {
        return out;
    };
    let mut legacy_ethernet = false;
    let mut ng_ethernet: Vec<bool> = Vec::new();
    loop {
        match reader.next() {
            Ok((offset, block)) => {
                match block {
                    PcapBlockOwned::LegacyHeader(h) => legacy_ethernet = h.network.0 == 1,
                    PcapBlockOwned::Legacy(p) if legacy_ethernet => out.push(p.data.to_vec()),
                    PcapBlockOwned::NG(Block::SectionHeader(_)) => ng_ethernet.clear(),
                    PcapBlockOwned::NG(Block::InterfaceDescription(i)) => {
                        ng_ethernet.push(i.linktype.0 == 1)
                    }
                    PcapBlockOwned::NG(Block::EnhancedPacket(p))
                        if ng_ethernet.get(p.if_id as usize).copied().unwrap_or(false) =>
                    {
                        out.push(p.data[..(p.caplen as usize).min(p.data.len())].to_vec());
                    }
                    _ => {}
                }
                reader.consume(offset);
            }
            Err(PcapError::Eof) => break,
            Err(PcapError::Incomplete(_)) => {
                if reader.refill().is_err() {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    out
}
