//! `picket analyze --kernel`: every packet of the captures also goes through the loaded XDP
//! program with `BPF_PROG_TEST_RUN`, and the kernel's maps are compared with the host
//! model's (see [`crate::parity`]). Needs root (or CAP_BPF and CAP_PERFMON).
//!
//! The XDP program reads Ethernet frames; packets of other supported link types are given a
//! synthetic Ethernet header carrying their EtherType, and the host classifies the very same
//! bytes. Frames the kernel's test harness refuses (shorter than an Ethernet header, larger
//! than a page) are counted, and given to neither side.

use std::path::PathBuf;

use agent_common::state::DIR_INGRESS;
use anyhow::{Result, bail};

use picket_analyze::reader;
use picket_capture::link;

use crate::{
    loader::MapSizes,
    parity::{Comparison, KernelRunner, ParityReport},
};

/// Per-source map size for the check: large enough that the kernel's LRU evicts nothing for
/// captures with fewer sources than this.
pub const SOURCES: u32 = 1 << 18;

/// Outcome of the check over all inputs.
#[derive(Debug)]
pub struct KernelCheck {
    /// The comparison.
    pub report: ParityReport,
    /// Packets of link types that cannot be framed as Ethernet.
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
        dests: 1 << 16,
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
            match ethernet(f.linktype, f.data, &mut buf) {
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

/// The packet as an Ethernet frame: as is for Ethernet, else with a synthetic header.
fn ethernet<'a>(linktype: u32, data: &'a [u8], buf: &'a mut Vec<u8>) -> Option<&'a [u8]> {
    let be16 = |off: usize| {
        data.get(off..off + 2)
            .map(|b| u16::from_be_bytes([b[0], b[1]]))
    };
    let (ethertype, payload) = match linktype {
        link::LINKTYPE_ETHERNET => return Some(data),
        link::LINKTYPE_RAW | link::LINKTYPE_RAW_DLT12 => match data.first()? >> 4 {
            4 => (0x0800, 0),
            6 => (0x86dd, 0),
            _ => return None,
        },
        link::LINKTYPE_IPV4 => (0x0800, 0),
        link::LINKTYPE_IPV6 => (0x86dd, 0),
        link::LINKTYPE_LINUX_SLL => (be16(14)?, 16),
        link::LINKTYPE_LINUX_SLL2 => (be16(0)?, 20),
        link::LINKTYPE_NULL | link::LINKTYPE_LOOP => match data.get(4)? >> 4 {
            4 => (0x0800, 4),
            6 => (0x86dd, 4),
            _ => return None,
        },
        _ => return None,
    };
    buf.clear();
    buf.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01]);
    buf.extend_from_slice(&u16::to_be_bytes(ethertype));
    buf.extend_from_slice(data.get(payload..)?);
    Some(buf)
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
    if c.sources as u64 >= u64::from(SOURCES) {
        tracing::warn!(
            "more sources than the kernel map holds ({SOURCES}): LRU evictions make the kernel differ"
        );
    }
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
