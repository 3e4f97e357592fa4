//! `picket analyze --kernel`: every packet of the captures also goes through the loaded XDP
//! program with `BPF_PROG_TEST_RUN`, and the kernel's maps are compared with the host
//! model's (see [`crate::parity`]). Needs root (or CAP_BPF and CAP_PERFMON).
//!
//! The XDP program reads Ethernet frames; packets of other supported link types are given a
//! synthetic Ethernet header carrying their EtherType ([`link::ethernet`], from the link-layer
//! decoding `picket analyze` itself uses), and the host classifies the very same bytes.
//! Frames the kernel's test harness refuses (shorter than an Ethernet header, larger than a
//! page) are counted, and given to neither side.

use std::path::PathBuf;

use agent_common::state::DIR_INGRESS;
use anyhow::{Result, bail};

use picket_analyze::reader;
use picket_capture::link;

use crate::{
    loader::MapSizes,
    parity::{Comparison, KernelRunner, ParityReport},
};

/// Per-source table size for the check. Beyond it both sides evict alike (the host model has
/// the kernel's geometry and evicts by the same tick).
pub const SOURCES: u32 = 1 << 18;

/// Outcome of the check over all inputs.
#[derive(Debug)]
pub struct KernelCheck {
    /// The comparison.
    pub report: ParityReport,
    /// Packets that cannot be framed as Ethernet: other link types, or no network layer.
    pub skipped: u64,
    /// Distinct sources seen (differences are expected past [`SOURCES`]).
    pub sources: usize,
}

/// Runs every packet of `paths` through the kernel and the host model.
pub fn check(paths: &[PathBuf]) -> Result<KernelCheck> {
    if paths.iter().any(|p| p.as_os_str() == "-") {
        bail!("--kernel reads its inputs twice: give files, not standard input");
    }
    crate::system::check_capabilities()?;
    let mut runner = KernelRunner::load(MapSizes {
        sources: SOURCES,
        src_slots: 1 << 16,
        dst_slots: 1 << 14,
        conv_slots: 1 << 16,
        blocked: agent_common::state::DEFAULT_BLOCKED,
    })?;
    let mut cmp = Comparison::new(&mut runner);
    let mut skipped = 0u64;
    let mut failure = None;
    let mut buf = Vec::with_capacity(2048);
    for path in paths {
        reader::read_path(path, None, &mut |f| {
            if failure.is_some() {
                return;
            }
            match link::ethernet(f.linktype, f.data, &mut buf) {
                Some(frame) => {
                    if let Err(e) = cmp.feed(frame, DIR_INGRESS) {
                        failure = Some(e);
                    }
                }
                None => skipped += 1,
            }
        })?;
    }
    if let Some(e) = failure {
        return Err(e);
    }
    let sources = cmp.host_sources();
    Ok(KernelCheck {
        report: cmp.finish()?,
        skipped,
        sources,
    })
}

/// Prints the outcome and fails when the kernel and the host disagree.
pub fn report(c: &KernelCheck) -> Result<()> {
    let r = &c.report;
    tracing::info!(
        "kernel parity: {} packets through BPF_PROG_TEST_RUN and the host model, {} refused by the kernel's test harness, {} of other link types, {} sources: {}",
        r.compared,
        r.refused,
        c.skipped,
        c.sources,
        if r.diffs.is_empty() {
            "kernel and host agree".to_string()
        } else {
            format!("{} differences", r.diffs.len())
        }
    );
    for d in &r.diffs {
        tracing::info!("kernel parity: {d}");
    }
    if !r.diffs.is_empty() {
        bail!(
            "the kernel and the host classifier disagree on {} entries",
            r.diffs.len()
        );
    }
    Ok(())
}
