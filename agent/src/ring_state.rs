//! The live state without BPF (`--hook afpacket`): AF_PACKET rings ([`crate::afpacket`])
//! feed the classifier and [`HostMaps`], the host model of the kernel maps, which the live
//! loop then reads as it reads the kernel's. Evidence capture works as the kernel's does: the
//! first [`EVIDENCE_SNAP`] bytes of the ingress packets of flagged sources, within a byte
//! budget each, queued (bounded) for the live loop to write.

use std::{
    collections::{HashMap, HashSet, VecDeque},
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicBool, Ordering},
    },
};

use agent_common::{
    ParseError, Summary,
    packet::Snapshot as Frame,
    state::{AddrKey, DIR_EGRESS, DIR_INGRESS, EVIDENCE_SNAP},
};
use anyhow::Result;
use picket_capture::link;
use picket_detect::{episodes::Episodes, model::HostMaps, snapshot::Snapshot};

use crate::{
    afpacket::{Capture, Packet, RingConfig, Sink},
    evidence::{CaptureConfig, PcapRotator, flagged_sources},
    maps::{monotonic_ns, wall_ns},
};

/// Evidence records waiting to be written, at most (as the kernel's ring buffer is bounded).
const EVIDENCE_QUEUE: usize = 8192;

/// Flagged sources with their remaining budgets, and the records waiting.
#[derive(Default)]
struct Flagged {
    budgets: HashMap<AddrKey, i64>,
    queue: VecDeque<(u64, u32, Vec<u8>)>,
    /// Records lost because the queue was full.
    dropped: u64,
}

/// Ring packets classified in one block, accounted under one lock.
struct Accounter {
    maps: Arc<Mutex<HostMaps>>,
    batch: Vec<(Result<Summary, ParseError>, u64, u32)>,
    /// Any source flagged (checked per packet without a lock).
    flagging: Arc<AtomicBool>,
    flagged: Arc<Mutex<Flagged>>,
}

impl Accounter {
    /// Queues the packet's first bytes if its source is flagged and has budget left.
    fn evidence(&self, s: &Summary, p: &Packet<'_>) {
        let mut f = lock(&self.flagged);
        let Some(budget) = f.budgets.get_mut(&AddrKey { addr: s.src }) else {
            return;
        };
        if *budget <= 0 {
            return;
        }
        let data = &p.data[..p.data.len().min(EVIDENCE_SNAP)];
        *budget -= data.len() as i64;
        if f.queue.len() >= EVIDENCE_QUEUE {
            f.dropped += 1;
            return;
        }
        f.queue.push_back((p.ts_ns, p.wire_len, data.to_vec()));
    }
}

impl Sink for Accounter {
    fn packet(&mut self, linktype: u32, p: &Packet<'_>) {
        let frame = Frame {
            data: p.data,
            orig_len: p.wire_len as usize,
        };
        if let Some(parsed) = link::classify(linktype, &frame) {
            let dir = if p.outgoing { DIR_EGRESS } else { DIR_INGRESS };
            if let Ok(s) = &parsed
                && !p.outgoing
                && s.is_ip()
                && self.flagging.load(Ordering::Relaxed)
            {
                self.evidence(s, p);
            }
            self.batch.push((parsed, u64::from(p.wire_len), dir));
        }
    }

    fn end_block(&mut self) {
        let now = monotonic_ns();
        let mut m = lock(&self.maps);
        for (parsed, wire, dir) in self.batch.drain(..) {
            m.account(&parsed, wire, dir, now);
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A reader that panicked left the maps as they were: keep using them.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Evidence capture of the rings (`--capture-dir`).
struct RingEvidence {
    writer: PcapRotator,
    cfg: CaptureConfig,
    active: HashSet<AddrKey>,
}

/// HostMaps fed by the rings of every watched interface.
pub struct RingState {
    maps: Arc<Mutex<HostMaps>>,
    captures: Vec<Capture>,
    /// Entries of the per-source table.
    sources: u32,
    /// Monotonic time the current tick began.
    tick_start_ns: Mutex<u64>,
    flagging: Arc<AtomicBool>,
    flagged: Arc<Mutex<Flagged>>,
    evidence: Option<RingEvidence>,
}

impl RingState {
    /// Opens `rings` rings per interface (a fanout group each) with the given ring size;
    /// outgoing packets are accounted as egress when `egress`; evidence is written as
    /// `capture` says.
    pub fn start(
        ifaces: &[String],
        ring_bytes: u64,
        rings: usize,
        egress: bool,
        sources: u32,
        capture: Option<CaptureConfig>,
    ) -> Result<RingState> {
        let evidence = match capture {
            Some(cfg) => {
                let mut writer = PcapRotator::new(&cfg.dir, cfg.file_bytes, cfg.max_bytes)?;
                writer.verbose = true;
                Some(RingEvidence {
                    writer,
                    cfg,
                    active: HashSet::new(),
                })
            }
            None => None,
        };
        let host = HostMaps::with_sources(sources);
        let sources = host.geometry.sources;
        let maps = Arc::new(Mutex::new(host));
        let flagging = Arc::new(AtomicBool::new(false));
        let flagged = Arc::new(Mutex::new(Flagged::default()));
        let mut captures = Vec::new();
        for iface in ifaces {
            let cfg = RingConfig {
                iface: iface.clone(),
                ring_bytes,
                outgoing: egress,
                filter: None,
            };
            captures.push(Capture::start(&cfg, rings, |_| {
                Box::new(Accounter {
                    maps: maps.clone(),
                    batch: Vec::with_capacity(1024),
                    flagging: flagging.clone(),
                    flagged: flagged.clone(),
                })
            })?);
        }
        Ok(RingState {
            maps,
            captures,
            sources,
            tick_start_ns: Mutex::new(monotonic_ns()),
            flagging,
            flagged,
            evidence,
        })
    }

    /// Flags the sources of the open source-scoped episodes (a fresh budget for each newly
    /// flagged one), unflags the others, and writes the evidence queued (as
    /// [`crate::evidence::Evidence::sync`] and `drain` do for the kernel).
    pub fn sync_evidence(&mut self, episodes: &Episodes) -> Result<()> {
        let Some(ev) = self.evidence.as_mut() else {
            return Ok(());
        };
        let want = flagged_sources(episodes);
        let queued = {
            let mut f = lock(&self.flagged);
            f.budgets.retain(|k, _| want.contains(k));
            let budget = i64::try_from(ev.cfg.bytes_per_alert).unwrap_or(i64::MAX);
            for key in want.difference(&ev.active) {
                f.budgets.insert(*key, budget);
            }
            self.flagging
                .store(!f.budgets.is_empty(), Ordering::Relaxed);
            std::mem::take(&mut f.queue)
        };
        ev.active = want;
        for (ts, wire, data) in &queued {
            ev.writer.write(*ts, *wire, data)?;
        }
        if !queued.is_empty() {
            ev.writer.flush()?;
        }
        Ok(())
    }

    /// Unflags every source, writes what is queued and returns a one-line account.
    pub fn finish_evidence(&mut self) -> Option<Result<String>> {
        let res = self.sync_evidence(&Episodes::new(Default::default()));
        let ev = self.evidence.as_mut()?;
        let dropped = lock(&self.flagged).dropped;
        Some(res.and_then(|()| {
            ev.writer.flush()?;
            let w = &ev.writer;
            Ok(format!(
                "evidence: {} packets in {} new files under {} ({} bytes in all); {} lost \
                 (queue full), {} not written (--capture-max-bytes), {} old files deleted",
                w.written,
                w.opened,
                ev.cfg.dir.display(),
                w.total(),
                dropped,
                w.refused,
                w.deleted
            ))
        }))
    }

    /// Sockets open, over every interface.
    pub fn rings(&self) -> usize {
        self.captures.iter().map(|c| c.rings).sum()
    }

    /// Packets the kernel dropped because a ring was full, so far.
    pub fn drops(&self) -> u64 {
        self.captures.iter().map(Capture::drops).sum()
    }

    /// The error of a reader that stopped (its interface went away), if any.
    pub fn failed(&mut self) -> Option<anyhow::Error> {
        self.captures.iter_mut().find_map(Capture::failed)
    }

    /// The global counters only, as [`crate::maps::KernelMaps::read_globals`].
    pub fn read_globals(&self) -> Snapshot {
        let m = lock(&self.maps);
        Snapshot {
            mono_ns: monotonic_ns(),
            wall_ns: wall_ns(),
            globals: m.globals,
            src_capacity: self.sources,
            ..Snapshot::default()
        }
    }

    /// The global counters and the tick that has just ended, as
    /// [`crate::maps::KernelMaps::read_poll`].
    pub fn read_poll(&self) -> Snapshot {
        let mut snap = self.read_globals();
        let mut start = lock(&self.tick_start_ns);
        let secs = snap.mono_ns.saturating_sub(*start) as f64 / 1e9;
        *start = snap.mono_ns;
        lock(&self.maps).read_tick(&mut snap, secs);
        snap
    }

    /// Adds the per-source map to a poll's reading, as [`crate::maps::KernelMaps::read_with`].
    pub fn read_with(&self, snap: Snapshot) -> Snapshot {
        let full = lock(&self.maps).snapshot(snap.mono_ns, snap.wall_ns);
        Snapshot {
            maps_read: true,
            sources: full.sources,
            ..snap
        }
    }

    /// Admission of new sources at their second sighting on or off.
    pub fn set_admit_on_second(&self, on: bool) {
        lock(&self.maps).admit_on_second = on;
    }

    /// Stops the readers and closes the sockets.
    pub fn stop(&mut self) {
        for c in &mut self.captures {
            c.stop();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use agent_common::classify::IPPROTO_TCP;
    use picket_capture::link::LINKTYPE_ETHERNET;

    use super::*;

    fn syn_from(src: u8) -> Vec<u8> {
        picket_frames::ipv4(
            Ipv4Addr::new(192, 0, 2, src),
            Ipv4Addr::new(198, 51, 100, 1),
            IPPROTO_TCP,
            0,
            &picket_frames::tcp(40000, 80, 0x02),
        )
    }

    fn accounter(sources: u32) -> Accounter {
        Accounter {
            maps: Arc::new(Mutex::new(HostMaps::with_sources(sources))),
            batch: Vec::new(),
            flagging: Arc::new(AtomicBool::new(false)),
            flagged: Arc::new(Mutex::new(Flagged::default())),
        }
    }

    fn feed(a: &mut Accounter, frame: &[u8], outgoing: bool) {
        let p = Packet {
            ts_ns: 0,
            wire_len: frame.len() as u32,
            data: frame,
            outgoing,
        };
        a.packet(LINKTYPE_ETHERNET, &p);
    }

    #[test]
    fn ring_packets_are_accounted_as_the_kernel_would_by_direction() {
        let mut a = accounter(16);
        feed(&mut a, &syn_from(1), false);
        feed(&mut a, &syn_from(2), true);
        // Nothing is accounted before the block ends, then everything under one lock.
        assert_eq!(lock(&a.maps).globals[0].packets, 0);
        a.end_block();
        let m = lock(&a.maps);
        assert_eq!((m.globals[0].packets, m.globals[1].packets), (1, 1));
        assert_eq!(m.tracked_sources(), 1, "only ingress packets make sources");
        assert!(a.batch.is_empty());
    }

    #[test]
    fn the_state_stays_within_the_map_sizes() {
        let mut a = accounter(8);
        for src in 1..=100 {
            feed(&mut a, &syn_from(src), false);
            a.end_block();
            let m = lock(&a.maps);
            assert_eq!(m.sources.len(), 8);
            assert_eq!(
                m.globals[0].src_inserts,
                u64::from(src),
                "every new source gets in"
            );
        }
        let m = lock(&a.maps);
        let used = m.tracked_sources();
        assert!((6..=8).contains(&used), "{used} of 8 ways used");
    }
}
