//! The conversation table `CONV`: one record per conversation and tick, shared by all CPUs,
//! direct-mapped and 2-way, in two banks like the slot tables (`crate::slots`).
//!
//! A conversation is what a probe opens: (initiator, responder, responder port, protocol).
//! The initiator's port is left out, so that the probes of one scanner to one port, whatever
//! their source ports, are one conversation, as a scan-detection key should be (Zeek and
//! Snort key on the same triple). A record is written when its conversation first appears in
//! a tick and when one of its bytes changes, never once per packet: a hot flow leaves its
//! line clean, so CPUs share it without bouncing it.
//!
//! Today only openings (probes) touch the table; its first use is to tell a new conversation
//! from a repeated one, so that the per-source scan state is written once per conversation
//! and tick instead of once per packet. The responder-side bytes are reserved for the
//! answers (outcome-aware detection, docs/detection-state-design.md §2).

use crate::{Summary, sketch::fmix32};

/// Name of the conversation table.
pub const MAP_CONV: &str = "CONV";
/// Default records per bank.
pub const DEFAULT_CONV_SLOTS: u32 = 65_536;

/// One conversation in one tick.
///
/// Layout (64 bytes): `init` at 0, `resp` at 16, `fp` at 32, `tick` at 36, `resp_port` at
/// 40, `proto` at 42, `init_flags` at 43, `init_seen` at 44, then the responder side and
/// padding.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConvRec {
    /// Initiator address (as `Summary::src_words`).
    pub init: [u64; 2],
    /// Responder address.
    pub resp: [u64; 2],
    /// Seeded hash of the key, never 0 in a used record.
    pub fp: u32,
    /// Tick the record belongs to; any other value means free.
    pub tick: u32,
    /// Responder port (0 without ports).
    pub resp_port: u16,
    /// IP protocol.
    pub proto: u8,
    /// OR of the TCP flags the initiator sent (low 8 bits).
    pub init_flags: u8,
    /// Packets from the initiator, saturating at [`SEEN_MAX`].
    pub init_seen: u8,
    /// OR of the TCP flags the responder sent (reserved: answers).
    pub resp_flags: u8,
    /// Packets from the responder, saturating (reserved: answers).
    pub resp_seen: u8,
    /// How the responder answered (reserved: answers).
    pub answer: u8,
    /// Padding, always zero.
    pub _pad: [u8; 16],
}

const _: () = assert!(core::mem::size_of::<ConvRec>() == 64);

/// Where `init_seen` stops counting: past it a hot flow writes nothing.
pub const SEEN_MAX: u8 = 3;

/// What identifies a conversation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvKey {
    /// Initiator address.
    pub init: [u64; 2],
    /// Responder address.
    pub resp: [u64; 2],
    /// Responder port.
    pub resp_port: u16,
    /// IP protocol.
    pub proto: u8,
}

impl ConvKey {
    /// The conversation an opening packet (a probe) belongs to: it goes from the initiator.
    #[inline(always)]
    pub fn opening(s: &Summary) -> Self {
        ConvKey {
            init: s.src_words(),
            resp: s.dst_words(),
            resp_port: s.dst_port,
            proto: s.proto,
        }
    }

    /// Seeded hash, never 0.
    #[inline(always)]
    pub fn hash(&self, seed: u32) -> u32 {
        let fold = |a: &[u64; 2]| {
            let x = a[0] ^ a[1].rotate_left(23);
            (x as u32) ^ ((x >> 32) as u32).rotate_left(11)
        };
        let h = fmix32(fold(&self.init) ^ seed);
        let h = fmix32(h ^ fold(&self.resp));
        fmix32(h ^ (u32::from(self.resp_port) << 8 | u32::from(self.proto))) | 1
    }

    #[inline(always)]
    fn matches(&self, r: &ConvRec, fp: u32, tick: u32) -> bool {
        r.tick == tick
            && r.fp == fp
            && r.resp_port == self.resp_port
            && r.proto == self.proto
            && r.init == self.init
            && r.resp == self.resp
    }
}

/// Index of way 0 of the set of hash `fp` in bank `tick & 1` of a table with `per_bank`
/// records per bank (a power of two, at least 2).
#[inline(always)]
pub fn conv_set(tick: u32, per_bank: u32, fp: u32) -> u32 {
    let mask = per_bank.wrapping_sub(1) & !1;
    (tick & 1).wrapping_mul(per_bank).wrapping_add(fp & mask)
}

/// Records an opening packet of `key` in its set (`w0`, `w1`). Returns true when the
/// conversation is new in this tick: it claimed a stale way, or the way whose initiator sent
/// fewer packets.
#[inline(always)]
pub fn touch_opening(
    w0: &mut ConvRec,
    w1: &mut ConvRec,
    key: &ConvKey,
    fp: u32,
    tick: u32,
    tcp_flags: u16,
) -> bool {
    let flags = tcp_flags as u8;
    let (rec, new) = if key.matches(w0, fp, tick) {
        (w0, false)
    } else if key.matches(w1, fp, tick) {
        (w1, false)
    } else {
        let way = if w0.tick != tick {
            w0
        } else if w1.tick != tick || w1.init_seen < w0.init_seen {
            w1
        } else {
            w0
        };
        *way = ConvRec {
            init: key.init,
            resp: key.resp,
            fp,
            tick,
            resp_port: key.resp_port,
            proto: key.proto,
            ..ConvRec::default()
        };
        (way, true)
    };
    // Write only what changes: a repeated packet leaves the shared line clean.
    if rec.init_seen < SEEN_MAX {
        rec.init_seen += 1;
    }
    if rec.init_flags | flags != rec.init_flags {
        rec.init_flags |= flags;
    }
    new
}

#[cfg(feature = "aya")]
mod pod {
    // SAFETY: #[repr(C)] integers only, no implicit padding (size assert above).
    unsafe impl aya::Pod for super::ConvRec {}
}
