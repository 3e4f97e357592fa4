//! The live state without BPF (`--hook afpacket`): AF_PACKET rings ([`crate::afpacket`])
//! feed the classifier and [`HostMaps`], the host model of the kernel maps, which the live
//! loop then reads as it reads the kernel's.

use std::sync::{Arc, Mutex, MutexGuard};

use agent_common::{
    ParseError, Summary,
    packet::Snapshot as Frame,
    state::{DIR_EGRESS, DIR_INGRESS},
};
use anyhow::Result;
use picket_capture::link;
use picket_detect::{model::HostMaps, replay, snapshot::Snapshot};

use crate::{
    afpacket::{Capture, Packet, RingConfig, Sink},
    maps::{monotonic_ns, wall_ns},
};

/// Ring packets classified in one block, accounted under one lock.
struct Accounter {
    maps: Arc<Mutex<HostMaps>>,
    batch: Vec<(Result<Summary, ParseError>, u64, u32)>,
    sources: u32,
    dests: u32,
}

impl Sink for Accounter {
    fn packet(&mut self, linktype: u32, p: &Packet<'_>) {
        let frame = Frame {
            data: p.data,
            orig_len: p.wire_len as usize,
        };
        if let Some(parsed) = link::classify(linktype, &frame) {
            let dir = if p.outgoing { DIR_EGRESS } else { DIR_INGRESS };
            self.batch.push((parsed, u64::from(p.wire_len), dir));
        }
    }

    fn end_block(&mut self) {
        let now = monotonic_ns();
        let mut m = lock(&self.maps);
        for (parsed, wire, dir) in self.batch.drain(..) {
            m.account(&parsed, wire, dir, now);
        }
        // Bounded like the kernel's LRU maps, trimmed in batches of an eighth.
        replay::bound(&mut m, self.sources, self.dests, self.sources / 8);
    }
}

fn lock(m: &Mutex<HostMaps>) -> MutexGuard<'_, HostMaps> {
    // A reader that panicked left the maps as they were: keep using them.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// HostMaps fed by the rings of every watched interface.
pub struct RingState {
    maps: Arc<Mutex<HostMaps>>,
    captures: Vec<Capture>,
    sources: u32,
    dests: u32,
}

impl RingState {
    /// Opens `rings` rings per interface (a fanout group each) with the given ring size;
    /// outgoing packets are accounted as egress when `egress`.
    pub fn start(
        ifaces: &[String],
        ring_bytes: u64,
        rings: usize,
        egress: bool,
        (sources, dests): (u32, u32),
    ) -> Result<RingState> {
        let maps = Arc::new(Mutex::new(HostMaps::new()));
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
                    sources,
                    dests,
                })
            })?);
        }
        Ok(RingState {
            maps,
            captures,
            sources,
            dests,
        })
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
            epoch: m.epoch,
            globals: m.globals,
            src_capacity: self.sources,
            dst_capacity: self.dests,
            ..Snapshot::default()
        }
    }

    /// Everything, as [`crate::maps::KernelMaps::read`].
    pub fn read(&self) -> Snapshot {
        let mut m = lock(&self.maps);
        replay::bound(&mut m, self.sources, self.dests, 0);
        let mut snap = m.snapshot(monotonic_ns(), wall_ns());
        snap.src_capacity = self.sources;
        snap.dst_capacity = self.dests;
        snap
    }

    /// Admission of new sources at their second sighting on or off.
    pub fn set_admit_on_second(&self, on: bool) {
        lock(&self.maps).admit_on_second = on;
    }

    /// Starts a new window.
    pub fn next_epoch(&self) {
        lock(&self.maps).next_epoch();
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
            maps: Arc::new(Mutex::new(HostMaps::new())),
            batch: Vec::new(),
            sources,
            dests: 16,
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
        assert_eq!(m.sources.len(), 1, "only ingress packets make sources");
        assert!(a.batch.is_empty());
    }

    #[test]
    fn the_state_stays_within_the_map_sizes() {
        let mut a = accounter(8);
        for src in 1..=100 {
            feed(&mut a, &syn_from(src), false);
            a.end_block();
            assert!(lock(&a.maps).sources.len() <= 9);
        }
    }
}
