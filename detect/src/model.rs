//! A host-side copy of the kernel maps, updated with the same `agent_common` functions as the
//! BPF programs. `picket analyze` runs the detectors on it, and the kernel parity test
//! compares it with what the kernel computed for the same packets.

use agent_common::{
    ParseError, Summary,
    conv::{ConvRec, DEFAULT_CONV_SLOTS, record_answer, record_opening},
    slots::{
        DEFAULT_DST_SLOTS, DEFAULT_SRC_SLOTS, DstSlot, Geometry, SlotTables, SrcSlot,
        account_packet,
    },
    sources::{SrcEntry, entries_for, is_tracked, observe_probe},
    state::{DEFAULT_SOURCES, DIR_INGRESS, Globals, PlainAdd, admitted},
};

use crate::{
    outcomes::OutcomeJoin,
    snapshot::{Snapshot, TickCounts},
};

/// Hash seed of the host model's slot tables: fixed, so that reports are reproducible.
pub const HOST_SEED: u32 = 0x5eed_0001;

/// Host-side per-source, per-destination and global state.
#[derive(Clone, Debug)]
pub struct HostMaps {
    /// The per-source table (`agent_common::sources`).
    pub sources: Vec<SrcEntry>,
    /// Global counters: `[ingress, egress]`.
    pub globals: [Globals; 2],
    /// Admission of new sources at their second sighting (`CONFIG_ADMIT_ON_SECOND`).
    pub admit_on_second: bool,
    /// Tick, seed and sizes of the slot tables.
    pub geometry: Geometry,
    /// The sender table: one CPU's partition, both banks (`agent_common::slots`).
    pub src: Vec<SrcSlot>,
    /// The receiver table, laid out as `src`.
    pub dst: Vec<DstSlot>,
    /// The conversation table, both banks (`agent_common::conv`).
    pub conv: Vec<ConvRec>,
    /// Outcomes from the completed banks of `conv`.
    pub join: OutcomeJoin,
}

/// The host model's slot tables: one CPU's partition of each, both banks.
struct Partition<'a> {
    src: &'a mut [SrcSlot],
    dst: &'a mut [DstSlot],
}

impl SlotTables for Partition<'_> {
    fn src_ways(&mut self, i: u32) -> Option<[&mut SrcSlot; 2]> {
        ways(self.src, i)
    }

    fn dst_ways(&mut self, i: u32) -> Option<[&mut DstSlot; 2]> {
        ways(self.dst, i)
    }
}

/// The two ways of the set at `i`.
fn ways<T>(table: &mut [T], i: u32) -> Option<[&mut T; 2]> {
    let i = i as usize;
    let [a, b] = <&mut [T; 2]>::try_from(table.get_mut(i..i.checked_add(2)?)?).ok()?;
    Some([a, b])
}

impl Default for HostMaps {
    fn default() -> Self {
        Self::new()
    }
}

impl HostMaps {
    /// Empty maps with tables of the live agent's default sizes (the slot tables' total in
    /// one partition).
    pub fn new() -> Self {
        Self::with_sources(DEFAULT_SOURCES)
    }

    /// [`HostMaps::new`] with a per-source table for `capacity` sources.
    pub fn with_sources(capacity: u32) -> Self {
        Self::with_tables(Geometry {
            tick: 1,
            seed: HOST_SEED,
            src_per_cpu: DEFAULT_SRC_SLOTS,
            dst_per_cpu: DEFAULT_DST_SLOTS,
            conv_per_bank: DEFAULT_CONV_SLOTS,
            sources: entries_for(capacity),
        })
    }

    /// Empty maps of `geometry`'s sizes (slot tables of `src_per_cpu` and `dst_per_cpu`
    /// slots per bank, `conv_per_bank` conversation records per bank, `sources` per-source
    /// entries: powers of two, at least 2), hashed with its seed, at its tick.
    pub fn with_tables(geometry: Geometry) -> Self {
        HostMaps {
            geometry,
            src: vec![SrcSlot::default(); 2 * geometry.src_per_cpu as usize],
            dst: vec![DstSlot::default(); 2 * geometry.dst_per_cpu as usize],
            conv: vec![ConvRec::default(); 2 * geometry.conv_per_bank as usize],
            join: OutcomeJoin::new(),
            sources: vec![SrcEntry::EMPTY; geometry.sources as usize],
            globals: [Globals::default(), Globals::default()],
            admit_on_second: false,
        }
    }

    /// Accounts one packet seen in direction `dir` at `now_ns`, exactly as the BPF programs
    /// do (see `agent-ebpf/src/main.rs`: `account`).
    pub fn account(
        &mut self,
        parsed: &Result<Summary, ParseError>,
        wire_len: u64,
        dir: u32,
        now_ns: u64,
    ) {
        let g = &mut self.globals[(dir & 1) as usize];
        let s = match parsed {
            Ok(s) => s,
            Err(e) => {
                g.observe_error(*e, wire_len);
                return;
            }
        };
        g.observe(s);
        if !s.is_ip() {
            return;
        }
        let mut tables = Partition {
            src: &mut self.src,
            dst: &mut self.dst,
        };
        let tick_packets = account_packet(&mut tables, 0, self.geometry, s);
        let conv = self.geometry.conv();
        if record_answer(self.conv.as_mut_slice(), conv, s, !self.admit_on_second) {
            return;
        }
        if dir != DIR_INGRESS || !s.is_probe() {
            return;
        }
        let sources = self.geometry.sources();
        if !admitted(self.admit_on_second, tick_packets)
            && !is_tracked(self.sources.as_mut_slice(), sources, &s.src_words())
        {
            g.src_deferred += 1;
            return;
        }
        if !record_opening(self.conv.as_mut_slice(), conv, s) {
            return;
        }
        observe_probe::<_, PlainAdd>(self.sources.as_mut_slice(), sources, s, now_ns).count_in(g);
    }

    /// Ends the current tick, as the agent does at every poll: returns its counts (lasting
    /// `secs`), and packets from now on count in the next tick.
    pub fn next_tick(&mut self, secs: f64) -> TickCounts {
        let tick = self.geometry.tick;
        self.geometry.tick = tick.wrapping_add(1);
        let bank = |per: u32| {
            let per = per as usize;
            (tick as usize & 1) * per..((tick as usize & 1) + 1) * per
        };
        let (src, dst) = TickCounts::sum(
            tick,
            &self.src[bank(self.geometry.src_per_cpu)],
            &self.dst[bank(self.geometry.dst_per_cpu)],
        );
        TickCounts {
            tick,
            secs,
            src,
            dst,
            src_slots: self.geometry.src_per_cpu,
            dst_slots: self.geometry.dst_per_cpu,
        }
    }

    /// Ends the current tick at a reading (`snap`, taken at its `mono_ns`): its counts, and
    /// the probes its conversation bank settles, into `snap`.
    pub fn read_tick(&mut self, snap: &mut Snapshot, secs: f64) {
        let tick = self.geometry.tick;
        snap.tick = self.next_tick(secs);
        let per = self.geometry.conv_per_bank as usize;
        let bank = &self.conv[(tick as usize & 1) * per..((tick as usize & 1) + 1) * per];
        snap.probes = self
            .join
            .settle(bank, tick, self.geometry.seed, snap.mono_ns);
    }

    /// Sources with a per-source entry.
    pub fn tracked_sources(&self) -> usize {
        self.sources.iter().filter(|e| e.is_used()).count()
    }

    /// A snapshot of the state at the given times.
    pub fn snapshot(&self, mono_ns: u64, wall_ns: u64) -> Snapshot {
        Snapshot {
            mono_ns,
            wall_ns,
            maps_read: true,
            sources: self.sources.iter().filter_map(SrcEntry::tracked).collect(),
            globals: self.globals,
            src_capacity: self.sources.len() as u32,
            tick: TickCounts::default(),
            probes: Vec::new(),
        }
    }
}
