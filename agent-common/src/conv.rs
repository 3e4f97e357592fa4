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
//! Openings (probes, [`Summary::is_probe`]) claim a record as initiator; answers
//! ([`Answer::of`]: SYN-ACK, RST, ICMP errors by their quote, echo replies, SCTP INIT-ACK and
//! ABORT, UDP and other protocols coming back) write its responder-side bytes, which the
//! initiator side never writes, so two CPUs updating the two sides never undo each other.
//! An answer whose record is not in the current bank claims one only when the conversation
//! was opened in the previous bank (`cont`: the answer crossed a tick boundary) or when it
//! is a bare RST (what an ACK-class probe draws, `-sA`/`-sW`/`-sM`/`-PA`). User space joins
//! the banks into outcomes (docs/detection-state-design.md §2.2).

use crate::{
    Summary,
    classify::{
        IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_SCTP, IPPROTO_TCP, IPPROTO_UDP, SCTP_ABORT,
        SCTP_COOKIE_ACK, SCTP_INIT_ACK, TCP_ACK, TCP_RST, TCP_SYN,
    },
    sketch::{absorb_addr, finish, seed_key},
};

/// Name of the conversation table.
pub const MAP_CONV: &str = "CONV";
/// Default records per bank.
pub const DEFAULT_CONV_SLOTS: u32 = 65_536;

/// One conversation in one tick.
///
/// Layout (64 bytes): `init` at 0, `resp` at 16, `fp` at 32, `tick` at 36, `resp_port` at
/// 40, `proto` at 42, `init_flags` at 43, `init_seen` at 44, `resp_flags` at 45,
/// `resp_seen` at 46, `answer` at 47, `init_port` at 48, `cont` at 50, padding.
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
    /// OR of the TCP flags the responder sent (low 8 bits).
    pub resp_flags: u8,
    /// Answers seen, saturating at [`SEEN_MAX`].
    pub resp_seen: u8,
    /// OR of the `ANS_*` bits of the answers.
    pub answer: u8,
    /// The initiator's port in the packet that claimed the record (0 without ports).
    pub init_port: u16,
    /// 1: claimed by an answer to a conversation opened in the previous tick.
    pub cont: u8,
    /// Padding, always zero.
    pub _pad: [u8; 13],
}

/// [`ConvRec::answer`]: TCP SYN-ACK.
pub const ANS_SYNACK: u8 = 1;
/// [`ConvRec::answer`]: TCP RST with ACK (a closed port's answer to a SYN, FIN, NULL, Xmas).
pub const ANS_RST: u8 = 2;
/// [`ConvRec::answer`]: TCP RST without ACK (the answer to an ACK-class segment).
pub const ANS_RST_BARE: u8 = 4;
/// [`ConvRec::answer`]: ICMP/ICMPv6 destination unreachable (port, protocol, host,
/// administratively prohibited) or parameter problem.
pub const ANS_UNREACH: u8 = 8;
/// [`ConvRec::answer`]: ICMP/ICMPv6 time exceeded (a router on the way: tracing).
pub const ANS_EXPIRED: u8 = 16;
/// [`ConvRec::answer`]: an accepting answer of another kind: ICMP echo (timestamp, mask)
/// reply, SCTP INIT-ACK or COOKIE-ACK, UDP or another protocol coming back.
pub const ANS_REPLY: u8 = 32;
/// [`ConvRec::answer`]: SCTP ABORT.
pub const ANS_ABORT: u8 = 64;

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
    /// The responder port of an ICMP request is its type (a ping sweep and a timestamp
    /// sweep are different probes).
    #[inline(always)]
    pub fn opening(s: &Summary) -> Self {
        ConvKey {
            init: s.src_words(),
            resp: s.dst_words(),
            resp_port: if s.proto == IPPROTO_ICMP || s.proto == IPPROTO_ICMPV6 {
                u16::from(s.icmp_type)
            } else {
                s.dst_port
            },
            proto: s.proto,
        }
    }

    /// The conversation a packet from the responder answers: the reverse of
    /// [`ConvKey::opening`].
    #[inline(always)]
    fn reverse(s: &Summary, resp_port: u16) -> Self {
        ConvKey {
            init: s.dst_words(),
            resp: s.src_words(),
            resp_port,
            proto: s.proto,
        }
    }

    /// Seeded hash, never 0.
    #[inline(always)]
    pub fn hash(&self, seed: u32) -> u32 {
        let h = absorb_addr(absorb_addr(seed_key(seed), &self.init), &self.resp);
        finish(h ^ (u64::from(self.resp_port) << 8 | u64::from(self.proto))) | 1
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

/// Records an opening packet of `key`, sent from `init_port`, in its set (`w0`, `w1`).
/// Returns true when the conversation is new in this tick: it claimed a stale way, or the
/// way whose initiator sent fewer packets (a record claimed by an answer alone goes first).
#[inline(always)]
pub fn touch_opening(
    w0: &mut ConvRec,
    w1: &mut ConvRec,
    key: &ConvKey,
    fp: u32,
    tick: u32,
    tcp_flags: u16,
    init_port: u16,
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
            init_port,
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

/// What a packet answers, if it can be an answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Answer {
    /// The conversation answered (its initiator is the packet's destination, or for an ICMP
    /// error the quoted packet's source).
    pub key: ConvKey,
    /// `ANS_*` bit.
    pub bits: u8,
    /// UDP and other protocols: the packet answers only if the conversation exists, and
    /// otherwise opens one (the first sender is the initiator).
    pub or_opening: bool,
}

impl Answer {
    /// The answer class of docs/detection-state-design.md §2.1: TCP SYN-ACK and RST; ICMP
    /// errors that quote a packet of their destination (by the quoted tuple); ICMP echo,
    /// timestamp and mask replies; SCTP INIT-ACK, COOKIE-ACK and ABORT; UDP and other IP
    /// protocols (answers when their conversation exists). ACK-class TCP, requests and later
    /// fragments answer nothing.
    #[inline(always)]
    pub fn of(s: &Summary) -> Option<Answer> {
        let answer = |key, bits| {
            Some(Answer {
                key,
                bits,
                or_opening: false,
            })
        };
        if s.fragment == crate::classify::FRAG_LATER {
            return None;
        }
        match s.proto {
            IPPROTO_TCP if s.has_l4() => {
                let bits = if crate::classify::tcp_opening(s.tcp_flags) {
                    return None;
                } else if s.tcp_flags & TCP_RST != 0 {
                    if s.tcp_flags & TCP_ACK != 0 {
                        ANS_RST
                    } else {
                        ANS_RST_BARE
                    }
                } else if s.tcp_flags & (TCP_SYN | TCP_ACK) == (TCP_SYN | TCP_ACK) {
                    ANS_SYNACK
                } else {
                    return None;
                };
                answer(ConvKey::reverse(s, s.src_port), bits)
            }
            IPPROTO_UDP if s.has_l4() => Some(Answer {
                key: ConvKey::reverse(s, s.src_port),
                bits: ANS_REPLY,
                or_opening: true,
            }),
            IPPROTO_SCTP if s.has_l4() => {
                let bits = match s.sctp_chunk {
                    SCTP_INIT_ACK | SCTP_COOKIE_ACK => ANS_REPLY,
                    SCTP_ABORT => ANS_ABORT,
                    _ => return None,
                };
                answer(ConvKey::reverse(s, s.src_port), bits)
            }
            IPPROTO_ICMP | IPPROTO_ICMPV6 if s.has_l4() => {
                if s.is_quoting_error() {
                    let expired = if s.family == 4 {
                        s.icmp_type == 11
                    } else {
                        s.icmp_type == 3
                    };
                    let key = ConvKey {
                        init: s.dst_words(),
                        resp: s.q_dst_words(),
                        resp_port: match s.q_proto {
                            IPPROTO_TCP | IPPROTO_UDP | IPPROTO_SCTP | IPPROTO_ICMP
                            | IPPROTO_ICMPV6 => s.q_dport,
                            _ => 0,
                        },
                        proto: s.q_proto,
                    };
                    return answer(key, if expired { ANS_EXPIRED } else { ANS_UNREACH });
                }
                // The request a reply answers: echo, timestamp, mask (v4); echo (v6).
                let request = match (s.family, s.icmp_type) {
                    (4, 0) => 8,
                    (4, 14) => 13,
                    (4, 18) => 17,
                    (6, 129) => 128,
                    _ => return None,
                };
                answer(ConvKey::reverse(s, request), ANS_REPLY)
            }
            IPPROTO_TCP | IPPROTO_UDP | IPPROTO_SCTP | IPPROTO_ICMP | IPPROTO_ICMPV6 => None,
            _ if s.is_ip() => Some(Answer {
                key: ConvKey::reverse(s, 0),
                bits: ANS_REPLY,
                or_opening: true,
            }),
            _ => None,
        }
    }
}

/// Records an answer in its conversation's record, if the set (`w0`, `w1`) of the current
/// bank holds it; true when it does. Writes only the responder-side bytes that change.
#[inline(always)]
pub fn touch_answer(
    w0: &mut ConvRec,
    w1: &mut ConvRec,
    a: &Answer,
    fp: u32,
    tick: u32,
    tcp_flags: u16,
) -> bool {
    let rec = if a.key.matches(w0, fp, tick) {
        w0
    } else if a.key.matches(w1, fp, tick) {
        w1
    } else {
        return false;
    };
    let flags = tcp_flags as u8;
    if rec.resp_seen < SEEN_MAX {
        rec.resp_seen += 1;
    }
    if rec.resp_flags | flags != rec.resp_flags {
        rec.resp_flags |= flags;
    }
    if rec.answer | a.bits != rec.answer {
        rec.answer |= a.bits;
    }
    true
}

/// Whether the set (`w0`, `w1`) holds `key`'s record of tick `tick` (called on the previous
/// bank: did the conversation an answer belongs to open there?).
#[inline(always)]
pub fn holds(w0: &ConvRec, w1: &ConvRec, key: &ConvKey, fp: u32, tick: u32) -> bool {
    key.matches(w0, fp, tick) || key.matches(w1, fp, tick)
}

/// Claims a record for an answer whose conversation has none in the current bank: `cont`
/// when it opened in the previous one. Takes a stale way, or one claimed by an answer alone
/// with fewer answers; never a conversation an initiator opened in this tick. True when it
/// claimed one.
#[inline(always)]
pub fn claim_answer(
    w0: &mut ConvRec,
    w1: &mut ConvRec,
    a: &Answer,
    fp: u32,
    tick: u32,
    tcp_flags: u16,
    cont: bool,
) -> bool {
    let way = if w0.tick != tick {
        w0
    } else if w1.tick != tick {
        w1
    } else if w0.init_seen == 0 && (w1.init_seen != 0 || w0.resp_seen <= w1.resp_seen) {
        w0
    } else if w1.init_seen == 0 {
        w1
    } else {
        return false;
    };
    *way = ConvRec {
        init: a.key.init,
        resp: a.key.resp,
        fp,
        tick,
        resp_port: a.key.resp_port,
        proto: a.key.proto,
        resp_flags: tcp_flags as u8,
        resp_seen: 1,
        answer: a.bits,
        cont: u8::from(cont),
        ..ConvRec::default()
    };
    true
}

/// The conversation table as the BPF programs and the host model hold it.
pub trait ConvTable {
    /// The two ways of the set whose way 0 is at `i` (even), if in the table.
    fn ways(&mut self, i: u32) -> Option<[&mut ConvRec; 2]>;
}

/// Where the table is and how it is hashed: the agent's `CONFIG` values.
#[derive(Clone, Copy, Debug)]
pub struct ConvGeometry {
    /// Current tick.
    pub tick: u32,
    /// Hash seed.
    pub seed: u32,
    /// Records per bank.
    pub per_bank: u32,
}

/// Records `s` as an answer if it is one ([`Answer::of`]). True when the packet was an
/// answer and nothing more is to be done with it; false when it may be an opening (not an
/// answer, or UDP/another protocol whose conversation the table does not hold).
/// `claims_allowed` (off while the agent defends the table against a flood of new sources)
/// lets a bare RST without a record claim one.
#[inline(always)]
pub fn record_answer<T: ConvTable + ?Sized>(
    t: &mut T,
    g: ConvGeometry,
    s: &Summary,
    claims_allowed: bool,
) -> bool {
    let Some(a) = Answer::of(s) else {
        return false;
    };
    let fp = a.key.hash(g.seed);
    let set = conv_set(g.tick, g.per_bank, fp);
    match t.ways(set) {
        Some([w0, w1]) => {
            if touch_answer(w0, w1, &a, fp, g.tick, s.tcp_flags) {
                return true;
            }
        }
        None => return !a.or_opening,
    }
    if a.or_opening {
        return false;
    }
    let prev = g.tick.wrapping_sub(1);
    let cont = match t.ways(conv_set(prev, g.per_bank, fp)) {
        Some([p0, p1]) => holds(p0, p1, &a.key, fp, prev),
        None => false,
    };
    if (cont || (a.bits == ANS_RST_BARE && claims_allowed))
        && let Some([w0, w1]) = t.ways(set)
    {
        claim_answer(w0, w1, &a, fp, g.tick, s.tcp_flags, cont);
    }
    true
}

/// Records the opening packet `s` (a probe); true when its conversation is new in this tick.
#[inline(always)]
pub fn record_opening<T: ConvTable + ?Sized>(t: &mut T, g: ConvGeometry, s: &Summary) -> bool {
    let key = ConvKey::opening(s);
    let fp = key.hash(g.seed);
    match t.ways(conv_set(g.tick, g.per_bank, fp)) {
        Some([w0, w1]) => touch_opening(w0, w1, &key, fp, g.tick, s.tcp_flags, s.src_port),
        None => true,
    }
}

impl ConvTable for [ConvRec] {
    fn ways(&mut self, i: u32) -> Option<[&mut ConvRec; 2]> {
        let i = i as usize;
        let [a, b] = <&mut [ConvRec; 2]>::try_from(self.get_mut(i..i.checked_add(2)?)?).ok()?;
        Some([a, b])
    }
}

#[cfg(feature = "aya")]
mod pod {
    // SAFETY: #[repr(C)] integers only, no implicit padding (size assert above).
    unsafe impl aya::Pod for super::ConvRec {}
}
