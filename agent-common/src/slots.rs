//! The first stage of Picket's kernel state: per-CPU, direct-mapped, 2-way slot tables of
//! what each address sent ([`SrcSlot`]) and received ([`DstSlot`]) in one *tick* (one poll
//! interval), updated with plain stores and no helper calls (docs/detection-state-design.md
//! §1).
//!
//! * **Layout.** A table is one `BPF_MAP_TYPE_ARRAY` (mmapable), partitioned by CPU and by
//!   bank: entry `cpu · 2S + bank · S + set · 2 + way`, with `S` slots per CPU and bank (a
//!   power of two, in [`Config`]). Only the CPU that owns a partition writes it, so there is
//!   no shared cache line and no atomic.
//! * **Ticks and banks.** The agent bumps [`Config::tick`] at every poll; packets write bank
//!   `tick & 1`, and the agent reads the bank of the tick that has just ended. A slot whose
//!   tick is not the current one is stale and is reset by the first packet that claims it,
//!   so nothing ever clears a table.
//! * **Space-Saving in each 2-way set.** A packet updates the way that holds its address;
//!   else claims a stale way; else replaces the way with fewer packets, starting at that
//!   count (`pkts = err = min`). `pkts − err` is then a lower bound and `pkts` an upper bound
//!   of the address's packets in the tick, and every class counter counts only packets seen
//!   since the claim: a lower bound too. Rules use lower bounds, so a replacement can hide a
//!   light hitter but never invent a flood; an address with more than half of its set's
//!   packets always keeps its way.
//! * **Seeded hashes**, so that a sender cannot aim at one set.
//!
//! The same functions run in the BPF programs and in the host model (`picket_detect`'s
//! `HostMaps`, one partition), which the kernel-parity check compares byte for byte.

use crate::{
    Summary,
    classify::{FRAG_NONE, FRAG_TINY, IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP},
    sketch::{absorb, absorb_addr, finish, finish_random, seed_key},
    state::Config,
    tunnel::{ENCAP_GENEVE, ENCAP_NONE, ENCAP_VXLAN},
};

/// Name of the per-CPU table of what addresses sent.
pub const MAP_SRC: &str = "SRC";
/// Name of the per-CPU table of what addresses received.
pub const MAP_DST: &str = "DST";

/// Default total of [`MAP_SRC`] slots per bank, over all CPUs.
pub const DEFAULT_SRC_SLOTS: u32 = 65_536;
/// Default total of [`MAP_DST`] slots per bank, over all CPUs.
pub const DEFAULT_DST_SLOTS: u32 = 8_192;
/// Fewest slots per CPU and bank (one set of each table at least).
pub const MIN_SLOTS_PER_CPU: u32 = 2;

/// Slots per CPU and bank for a total of `total` over `cpus` CPUs: the largest power of two
/// not above `total / cpus`, at least [`MIN_SLOTS_PER_CPU`].
pub const fn slots_per_cpu(total: u32, cpus: u32) -> u32 {
    let per = match total.checked_div(cpus) {
        Some(per) => per,
        None => total,
    };
    if per <= MIN_SLOTS_PER_CPU {
        MIN_SLOTS_PER_CPU
    } else {
        1 << (31 - per.leading_zeros())
    }
}

/// Entries of a table with `per_cpu` slots per CPU and bank over `cpus` possible CPUs.
pub const fn table_entries(per_cpu: u32, cpus: u32) -> u32 {
    per_cpu * 2 * cpus
}

/// What every slot starts with: whose it is, when, and the Space-Saving counts.
///
/// Layout (32 bytes): `addr` at 0 (two native-endian words of the 16 address bytes),
/// `tick` at 16, `err` at 20, `pkts` at 24, `bytes` at 28.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SlotHead {
    /// The address (IPv4-mapped for IPv4), as [`Summary::src_words`] gives it.
    pub addr: [u64; 2],
    /// Tick the slot belongs to; any other value means the slot is free.
    pub tick: u32,
    /// Space-Saving overestimate: packets counted in `pkts` that may be another address's.
    pub err: u32,
    /// Packets, overestimated by at most `err`.
    pub pkts: u32,
    /// Bytes on the wire since the claim (saturating).
    pub bytes: u32,
}

/// What one address sent in one tick, on one CPU.
///
/// Layout (64 bytes): `head` at 0, `syn` at 32, `tcp_other` at 36, `udp` at 40, `icmp_req`
/// at 44, `synack` at 48, `rst` at 50, `icmp_other` at 52, `other` at 54, `frags` at 56,
/// `tiny_frag` at 58, `refl_req` at 60, `tcp_small` at 62. The u16 counters saturate; what a
/// one-source flood fills (SYN, other TCP, UDP, ICMP requests) is u32, so that the source
/// explains its whole flood at the destination.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SrcSlot {
    /// Address, tick and counts.
    pub head: SlotHead,
    /// TCP SYNs without ACK.
    pub syn: u32,
    /// TCP without SYN and without RST (ACK, FIN, PSH, … and later TCP fragments).
    pub tcp_other: u32,
    /// UDP packets (later UDP fragments included).
    pub udp: u32,
    /// ICMP/ICMPv6 requests (echo, timestamp, address mask).
    pub icmp_req: u32,
    /// TCP SYN-ACKs.
    pub synack: u16,
    /// TCP RSTs.
    pub rst: u16,
    /// Other ICMP/ICMPv6 (replies and errors).
    pub icmp_other: u16,
    /// Packets of other IP protocols.
    pub other: u16,
    /// IP fragments (first and later).
    pub frags: u16,
    /// First fragments too short to hold the L4 header (`FRAG_TINY`, an evasion).
    pub tiny_frag: u16,
    /// UDP datagrams to a reflector port ([`reflector_port`]): requests, e.g. a resolver's.
    pub refl_req: u16,
    /// Of `tcp_other`, segments of at most [`SMALL_SEGMENT`] bytes on the wire: bare ACKs,
    /// FINs, ACK-class probes.
    pub tcp_small: u16,
}

/// What one address received in one tick, on one CPU.
///
/// Layout (192 bytes, three cache lines): `head` at 0, then u32 counters from 32 to 96,
/// `src_bits` at 96, `refl_b` at 112, `udp_later_p` at 116, `refl_src_bits` at 120,
/// `tcp_b` at 128, `icmp_b` at 132, `outer_p` at 136, `inner_p` at 140, `tun_src` at 144,
/// `tun_dst` at 160, `tun_vni` at 176, `tun_kind` at 180, `_pad` at 181. `*_p` count
/// packets and `*_b` bytes on the wire (saturating). The third line holds what only
/// non-SYN TCP, ICMP and tunnelled packets write.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DstSlot {
    /// Address, tick and counts.
    pub head: SlotHead,
    /// TCP SYNs without ACK: packets.
    pub syn_p: u32,
    /// TCP SYNs without ACK: bytes.
    pub syn_b: u32,
    /// Other TCP: packets.
    pub tcp_p: u32,
    /// Other TCP of at most [`SMALL_SEGMENT`] bytes on the wire: bare ACKs, RSTs, FINs, the
    /// stuff of ACK/RST/FIN floods (a download's data segments are large).
    pub tcp_small_p: u32,
    /// UDP: packets.
    pub udp_p: u32,
    /// UDP: bytes.
    pub udp_b: u32,
    /// ICMP/ICMPv6 requests: packets.
    pub icmp_req_p: u32,
    /// Other ICMP/ICMPv6: packets.
    pub icmp_other_p: u32,
    /// ICMP/ICMPv6 errors (unreachable, time exceeded, parameter problem): packets; the rest
    /// of `icmp_other_p` are replies.
    pub icmp_err_p: u32,
    /// Other IP protocols: packets.
    pub other_p: u32,
    /// Other IP protocols: bytes.
    pub other_b: u32,
    /// IP fragments: packets.
    pub frag_p: u32,
    /// IP fragments: bytes.
    pub frag_b: u32,
    /// TCP SYN-ACKs received (the address is a client, or the target of a reflection).
    pub synack_p: u32,
    /// TCP RSTs received.
    pub rst_p: u32,
    /// UDP from a reflector port ([`reflector_port`]): packets (answers, or a reflection).
    pub refl_p: u32,
    /// 128-bit linear-counting bitmap of the senders.
    pub src_bits: [u64; 2],
    /// UDP from a reflector port: bytes.
    pub refl_b: u32,
    /// Later fragments of UDP datagrams (no UDP header, so no port): packets.
    pub udp_later_p: u32,
    /// 64-bit linear-counting bitmap of the senders from reflector ports.
    pub refl_src_bits: u64,
    /// Other TCP (not SYN): bytes.
    pub tcp_b: u32,
    /// ICMP/ICMPv6 of every type: bytes.
    pub icmp_b: u32,
    /// Tunnelled packets this address received as their *outer* destination (the tunnel
    /// endpoint's view, counted as UDP for VXLAN/Geneve and as another IP protocol for GRE
    /// and IP-in-IP; see [`account_packet`]).
    pub outer_p: u32,
    /// Packets this address received *inside* a tunnel (the inner view).
    pub inner_p: u32,
    /// Outer source of the latest packet received inside a tunnel (as `head.addr`).
    pub tun_src: [u64; 2],
    /// Outer destination of the latest packet received inside a tunnel.
    pub tun_dst: [u64; 2],
    /// VNI or GRE key of that packet.
    pub tun_vni: u32,
    /// `ENCAP_*` kind of that packet (0: nothing received inside a tunnel).
    pub tun_kind: u8,
    /// Padding, always zero.
    pub _pad: [u8; 11],
}

/// Largest TCP packet (bytes on the wire) counted as small: Ethernet, IPv6 and TCP with
/// options, and a few bytes of payload.
pub const SMALL_SEGMENT: u32 = 128;

/// UDP ports of services that answer a small request with a large reply, which attackers
/// use as reflectors (US-CERT TA14-017A and later advisories): echo, chargen, DNS, portmap,
/// NTP, NetBIOS, SNMP, CLDAP, SSDP, ARD, WS-Discovery, mDNS, CoAP, Ubiquiti discovery,
/// memcached, DVR discovery, BACnet.
#[inline(always)]
pub fn reflector_port(port: u16) -> bool {
    matches!(
        port,
        7 | 17
            | 19
            | 53
            | 111
            | 123
            | 137
            | 161
            | 389
            | 1900
            | 3283
            | 3702
            | 5353
            | 5683
            | 10001
            | 11211
            | 37810
            | 47808
    )
}

const _: () = assert!(core::mem::size_of::<SlotHead>() == 32);
const _: () = assert!(core::mem::size_of::<SrcSlot>() == 64);
const _: () = assert!(core::mem::offset_of!(SrcSlot, tcp_small) == 62);
const _: () = assert!(core::mem::size_of::<DstSlot>() == 192);
const _: () = assert!(core::mem::offset_of!(DstSlot, tcp_b) == 128);
const _: () = assert!(core::mem::offset_of!(DstSlot, tun_src) == 144);

/// A slot type: what the 2-way set logic needs of it.
pub trait Slot: Copy {
    /// The head.
    fn head(&self) -> &SlotHead;
    /// A slot of `addr` in `tick` whose counts start at `base` (every other field zero).
    fn claimed(addr: [u64; 2], tick: u32, base: u32) -> Self;
}

impl SlotHead {
    /// The head of a slot of `addr` in `tick` whose counts start at `base`.
    #[inline(always)]
    const fn claimed(addr: [u64; 2], tick: u32, base: u32) -> Self {
        SlotHead {
            addr,
            tick,
            err: base,
            pkts: base,
            bytes: 0,
        }
    }
}

/// Implements [`Slot`] for slot types with a `head` and a zero `Default`.
macro_rules! impl_slot {
    ($($t:ty),*) => {$(
        impl Slot for $t {
            #[inline(always)]
            fn head(&self) -> &SlotHead {
                &self.head
            }

            #[inline(always)]
            fn claimed(addr: [u64; 2], tick: u32, base: u32) -> Self {
                Self {
                    head: SlotHead::claimed(addr, tick, base),
                    ..Self::default()
                }
            }
        }
    )*};
}

impl_slot!(SrcSlot, DstSlot);

/// Seeded hash of an address (as words) choosing its set.
#[inline(always)]
pub fn slot_hash(addr: &[u64; 2], seed: u32) -> u32 {
    finish(absorb_addr(seed_key(seed), addr))
}

/// Index of way 0 of `addr`'s set in a table with `per_cpu` slots per CPU and bank (a power
/// of two): way 1 is the next entry.
#[inline(always)]
pub fn set_index(cpu: u32, tick: u32, per_cpu: u32, hash: u32) -> u32 {
    let mask = per_cpu.wrapping_sub(1) & !1;
    cpu.wrapping_mul(per_cpu.wrapping_mul(2))
        .wrapping_add((tick & 1).wrapping_mul(per_cpu))
        .wrapping_add(hash & mask)
}

/// The way `addr` is to be counted in, after making it `addr`'s: the way holding it, else a
/// stale way (reset), else the way with fewer packets (replaced, Space-Saving).
#[inline(always)]
pub fn pick<'a, S: Slot>(w0: &'a mut S, w1: &'a mut S, addr: [u64; 2], tick: u32) -> &'a mut S {
    let (h0, h1) = (w0.head(), w1.head());
    if h0.tick == tick && h0.addr == addr {
        return w0;
    }
    if h1.tick == tick && h1.addr == addr {
        return w1;
    }
    let (way, base) = if h0.tick != tick {
        (w0, 0)
    } else if h1.tick != tick {
        (w1, 0)
    } else if h1.pkts < h0.pkts {
        let base = h1.pkts;
        (w1, base)
    } else {
        let base = h0.pkts;
        (w0, base)
    };
    *way = S::claimed(addr, tick, base);
    way
}

#[inline(always)]
fn sat16(v: &mut u16) {
    *v = v.saturating_add(1);
}

#[inline(always)]
fn count(p: &mut u32, b: &mut u32, len: u32) {
    *p = p.wrapping_add(1);
    *b = b.saturating_add(len);
}

#[inline(always)]
fn head_count(h: &mut SlotHead, len: u32) {
    h.pkts = h.pkts.wrapping_add(1);
    h.bytes = h.bytes.saturating_add(len);
}

/// TCP flag classes of a packet with a parsed TCP header.
#[derive(Clone, Copy, PartialEq, Eq)]
enum TcpClass {
    Syn,
    SynAck,
    Rst,
    Other,
}

#[inline(always)]
fn tcp_class(s: &Summary) -> TcpClass {
    use crate::classify::{TCP_ACK, TCP_RST, TCP_SYN};
    if !s.has_l4() {
        TcpClass::Other
    } else if s.tcp_flags & TCP_RST != 0 {
        TcpClass::Rst
    } else if s.tcp_flags & (TCP_SYN | TCP_ACK) == TCP_SYN {
        TcpClass::Syn
    } else if s.tcp_flags & (TCP_SYN | TCP_ACK) == (TCP_SYN | TCP_ACK) {
        TcpClass::SynAck
    } else {
        TcpClass::Other
    }
}

/// ICMP/ICMPv6 requests: echo, timestamp and address mask (v4), echo (v6).
#[inline(always)]
fn icmp_request(s: &Summary) -> bool {
    s.has_l4()
        && match s.proto {
            IPPROTO_ICMP => matches!(s.icmp_type, 8 | 13 | 17),
            _ => s.icmp_type == 128,
        }
}

/// ICMP errors: destination unreachable, time exceeded, parameter problem (v4 3, 11, 12;
/// v6 1, 3, 4).
#[inline(always)]
fn icmp_error(s: &Summary) -> bool {
    s.has_l4()
        && match s.proto {
            IPPROTO_ICMP => matches!(s.icmp_type, 3 | 11 | 12),
            _ => matches!(s.icmp_type, 1 | 3 | 4),
        }
}

impl SrcSlot {
    /// Accounts one IP packet sent by this slot's address.
    #[inline(always)]
    pub fn observe_sent(&mut self, s: &Summary) {
        head_count(&mut self.head, s.wire_len);
        match s.proto {
            IPPROTO_TCP => match tcp_class(s) {
                TcpClass::Syn => self.syn = self.syn.wrapping_add(1),
                TcpClass::SynAck => sat16(&mut self.synack),
                TcpClass::Rst => sat16(&mut self.rst),
                TcpClass::Other => {
                    self.tcp_other = self.tcp_other.wrapping_add(1);
                    if s.wire_len <= SMALL_SEGMENT {
                        sat16(&mut self.tcp_small);
                    }
                }
            },
            IPPROTO_UDP => {
                self.udp = self.udp.wrapping_add(1);
                if s.has_l4() && reflector_port(s.dst_port) {
                    sat16(&mut self.refl_req);
                }
            }
            IPPROTO_ICMP | IPPROTO_ICMPV6 => {
                if icmp_request(s) {
                    self.icmp_req = self.icmp_req.wrapping_add(1);
                } else {
                    sat16(&mut self.icmp_other);
                }
            }
            _ => sat16(&mut self.other),
        }
        if s.fragment != FRAG_NONE {
            sat16(&mut self.frags);
            if s.fragment == FRAG_TINY {
                sat16(&mut self.tiny_frag);
            }
        }
    }
}

/// Hash of a packet's sender for the distinct-sender bitmaps (unseeded: a bit, not a set).
#[inline(always)]
fn sender_hash(a: [u64; 2]) -> u32 {
    finish_random(absorb(a[0], a[1]))
}

/// Sets a sender's bit in a 128-bit bitmap; written only when new, so that a hot flow
/// leaves the line clean.
#[inline(always)]
fn mark_sender(bits: &mut [u64; 2], sender: [u64; 2]) {
    let h = sender_hash(sender);
    let word = ((h >> 6) & 1) as usize;
    let bit = 1u64 << (h & 63);
    if bits[word] & bit == 0 {
        bits[word] |= bit;
    }
}

/// Writes `v` into `*field` only when it differs (the line stays clean for a steady flow).
#[inline(always)]
fn set_if_changed<T: PartialEq + Copy>(field: &mut T, v: T) {
    if *field != v {
        *field = v;
    }
}

/// Whether a tunnel's outer header is UDP (VXLAN, Geneve) rather than an IP protocol of
/// its own (GRE, IP-in-IP).
#[inline(always)]
fn outer_is_udp(encap: u8) -> bool {
    encap == ENCAP_VXLAN || encap == ENCAP_GENEVE
}

impl DstSlot {
    /// Accounts one IP packet received by this slot's address.
    #[inline(always)]
    pub fn observe_recv(&mut self, s: &Summary) {
        let len = s.wire_len;
        head_count(&mut self.head, len);
        match s.proto {
            IPPROTO_TCP => match tcp_class(s) {
                TcpClass::Syn => count(&mut self.syn_p, &mut self.syn_b, len),
                c => {
                    count(&mut self.tcp_p, &mut self.tcp_b, len);
                    if len <= SMALL_SEGMENT {
                        self.tcp_small_p = self.tcp_small_p.wrapping_add(1);
                    }
                    if c == TcpClass::SynAck {
                        self.synack_p = self.synack_p.wrapping_add(1);
                    } else if c == TcpClass::Rst {
                        self.rst_p = self.rst_p.wrapping_add(1);
                    }
                }
            },
            IPPROTO_UDP => {
                count(&mut self.udp_p, &mut self.udp_b, len);
                if !s.has_l4() {
                    self.udp_later_p = self.udp_later_p.wrapping_add(1);
                } else if reflector_port(s.src_port) {
                    count(&mut self.refl_p, &mut self.refl_b, len);
                    let bit = 1u64 << (sender_hash(s.src_words()) & 63);
                    if self.refl_src_bits & bit == 0 {
                        self.refl_src_bits |= bit;
                    }
                }
            }
            IPPROTO_ICMP | IPPROTO_ICMPV6 => {
                self.icmp_b = self.icmp_b.saturating_add(len);
                if icmp_request(s) {
                    self.icmp_req_p = self.icmp_req_p.wrapping_add(1);
                } else {
                    self.icmp_other_p = self.icmp_other_p.wrapping_add(1);
                    if icmp_error(s) {
                        self.icmp_err_p = self.icmp_err_p.wrapping_add(1);
                    }
                }
            }
            _ => count(&mut self.other_p, &mut self.other_b, len),
        }
        if s.fragment != FRAG_NONE {
            count(&mut self.frag_p, &mut self.frag_b, len);
        }
        mark_sender(&mut self.src_bits, s.src_words());
        if s.encap != ENCAP_NONE {
            self.inner_p = self.inner_p.wrapping_add(1);
            set_if_changed(&mut self.tun_src, s.outer_src_words());
            set_if_changed(&mut self.tun_dst, s.outer_dst_words());
            set_if_changed(&mut self.tun_vni, s.vni);
            set_if_changed(&mut self.tun_kind, s.encap);
        }
    }

    /// Accounts the outer header of a tunnelled packet (`s` describes its inner packet)
    /// received by this slot's address, the tunnel's outer destination.
    #[inline(always)]
    pub fn observe_outer_recv(&mut self, s: &Summary) {
        let len = s.wire_len;
        head_count(&mut self.head, len);
        if outer_is_udp(s.encap) {
            count(&mut self.udp_p, &mut self.udp_b, len);
        } else {
            count(&mut self.other_p, &mut self.other_b, len);
        }
        self.outer_p = self.outer_p.wrapping_add(1);
        mark_sender(&mut self.src_bits, s.outer_src_words());
    }
}

impl SrcSlot {
    /// Accounts the outer header of a tunnelled packet sent by this slot's address, the
    /// tunnel's outer source.
    #[inline(always)]
    pub fn observe_outer_sent(&mut self, s: &Summary) {
        head_count(&mut self.head, s.wire_len);
        if outer_is_udp(s.encap) {
            self.udp = self.udp.wrapping_add(1);
        } else {
            sat16(&mut self.other);
        }
    }
}

/// The per-CPU table geometry and clock a packet is accounted with, from [`Config`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    /// Current tick.
    pub tick: u32,
    /// Hash seed.
    pub seed: u32,
    /// [`MAP_SRC`] slots per CPU and bank.
    pub src_per_cpu: u32,
    /// [`MAP_DST`] slots per CPU and bank.
    pub dst_per_cpu: u32,
    /// `CONV` records per bank (`crate::conv`).
    pub conv_per_bank: u32,
    /// `SOURCES` entries (`crate::sources`).
    pub sources: u32,
}

impl Geometry {
    /// The geometry in force.
    #[inline(always)]
    pub fn of(c: &Config) -> Self {
        Geometry {
            tick: c.tick,
            seed: c.seed,
            src_per_cpu: c.src_per_cpu,
            dst_per_cpu: c.dst_per_cpu,
            conv_per_bank: c.conv_per_bank,
            sources: c.sources,
        }
    }

    /// The per-source table's part of it.
    #[inline(always)]
    pub fn sources(&self) -> crate::sources::SourceGeometry {
        crate::sources::SourceGeometry {
            tick: self.tick,
            seed: self.seed,
            entries: self.sources,
        }
    }

    /// The conversation table's part of it.
    #[inline(always)]
    pub fn conv(&self) -> crate::conv::ConvGeometry {
        crate::conv::ConvGeometry {
            tick: self.tick,
            seed: self.seed,
            per_bank: self.conv_per_bank,
        }
    }

    /// Index of way 0 of a sender's set in [`MAP_SRC`] on `cpu`.
    #[inline(always)]
    pub fn src_set(&self, cpu: u32, addr: &[u64; 2]) -> u32 {
        set_index(cpu, self.tick, self.src_per_cpu, slot_hash(addr, self.seed))
    }

    /// Index of way 0 of a receiver's set in [`MAP_DST`] on `cpu`.
    #[inline(always)]
    pub fn dst_set(&self, cpu: u32, addr: &[u64; 2]) -> u32 {
        set_index(cpu, self.tick, self.dst_per_cpu, slot_hash(addr, self.seed))
    }
}

/// The two slot tables as [`account_packet`] reaches them: the BPF maps in the kernel, slices in
/// the host model.
pub trait SlotTables {
    /// The two ways of the [`MAP_SRC`] set at `i`.
    fn src_ways(&mut self, i: u32) -> Option<[&mut SrcSlot; 2]>;
    /// The two ways of the [`MAP_DST`] set at `i`.
    fn dst_ways(&mut self, i: u32) -> Option<[&mut DstSlot; 2]>;
}

/// Accounts an IP packet in the slot tables of `cpu`. Returns its sender's packets in this
/// tick on this CPU, this one included (the lower bound).
///
/// A tunnelled packet (`s.encap != 0`, `s` describing the inner packet) is accounted twice,
/// once by each header, as a router and the inner hosts each see it: the inner packet at its
/// inner source and destination, by its inner protocol; the outer header at the tunnel
/// endpoints, as UDP (VXLAN, Geneve) or as its own IP protocol (GRE, IP-in-IP), so that a
/// flood of encapsulated packets counts at the endpoint it hits. Every other count (totals,
/// conversations, probes, per-source state) takes the packet once, by its inner header.
#[inline(always)]
pub fn account_packet<T: SlotTables + ?Sized>(
    t: &mut T,
    cpu: u32,
    geo: Geometry,
    s: &Summary,
) -> u32 {
    let sent = match t.src_ways(geo.src_set(cpu, &s.src_words())) {
        Some([w0, w1]) => account_src(w0, w1, geo.tick, s),
        None => 0,
    };
    if let Some([w0, w1]) = t.dst_ways(geo.dst_set(cpu, &s.dst_words())) {
        account_dst(w0, w1, geo.tick, s);
    }
    if s.encap != ENCAP_NONE {
        let (from, to) = (s.outer_src_words(), s.outer_dst_words());
        if let Some([w0, w1]) = t.src_ways(geo.src_set(cpu, &from)) {
            pick(w0, w1, from, geo.tick).observe_outer_sent(s);
        }
        if let Some([w0, w1]) = t.dst_ways(geo.dst_set(cpu, &to)) {
            pick(w0, w1, to, geo.tick).observe_outer_recv(s);
        }
    }
    sent
}

/// Accounts a packet in its sender's set (`w0`, `w1`: the two ways). Returns the sender's
/// packets in this tick on this CPU, this one included (the lower bound).
#[inline(always)]
pub fn account_src(w0: &mut SrcSlot, w1: &mut SrcSlot, tick: u32, s: &Summary) -> u32 {
    let w = pick(w0, w1, s.src_words(), tick);
    w.observe_sent(s);
    w.head.pkts.wrapping_sub(w.head.err)
}

/// Accounts a packet in its receiver's set (`w0`, `w1`: the two ways).
#[inline(always)]
pub fn account_dst(w0: &mut DstSlot, w1: &mut DstSlot, tick: u32, s: &Summary) {
    pick(w0, w1, s.dst_words(), tick).observe_recv(s);
}

#[cfg(feature = "aya")]
mod pod {
    // SAFETY: #[repr(C)] structs of integers with no implicit padding (size asserts above).
    unsafe impl aya::Pod for super::SrcSlot {}
    unsafe impl aya::Pod for super::DstSlot {}
}

/// 16 address bytes as the two native-endian words the tables keep (`Summary::src_words`).
#[cfg(feature = "std")]
pub fn bytes_to_words(b: &[u8; 16]) -> [u64; 2] {
    let (mut lo, mut hi) = ([0u8; 8], [0u8; 8]);
    lo.copy_from_slice(&b[..8]);
    hi.copy_from_slice(&b[8..]);
    [u64::from_ne_bytes(lo), u64::from_ne_bytes(hi)]
}

/// An address kept as two native-endian words (`Summary::src_words`) as its 16 bytes.
#[cfg(feature = "std")]
pub fn words_to_bytes(w: &[u64; 2]) -> [u8; 16] {
    let mut out = [0u8; 16];
    out[..8].copy_from_slice(&w[0].to_ne_bytes());
    out[8..].copy_from_slice(&w[1].to_ne_bytes());
    out
}

#[cfg(feature = "std")]
impl SlotHead {
    /// The address as 16 bytes (IPv4-mapped for IPv4).
    pub fn addr_bytes(&self) -> [u8; 16] {
        words_to_bytes(&self.addr)
    }

    /// Packets certainly this address's (the Space-Saving lower bound).
    pub fn pkts_lower(&self) -> u32 {
        self.pkts.saturating_sub(self.err)
    }
}

#[cfg(feature = "std")]
impl SlotHead {
    fn merge(&mut self, o: &SlotHead) {
        self.err = self.err.saturating_add(o.err);
        self.pkts = self.pkts.saturating_add(o.pkts);
        self.bytes = self.bytes.saturating_add(o.bytes);
    }
}

/// Adds another CPU's slot of the same address and tick (saturating).
#[cfg(feature = "std")]
macro_rules! merge_fields {
    ($self:ident, $o:ident; $($f:ident),*) => {
        $self.head.merge(&$o.head);
        $( $self.$f = $self.$f.saturating_add($o.$f); )*
    };
}

#[cfg(feature = "std")]
impl SrcSlot {
    /// Adds another CPU's slot of the same address and tick.
    pub fn merge(&mut self, o: &SrcSlot) {
        merge_fields!(self, o; syn, tcp_other, udp, synack, rst, icmp_req, icmp_other, other,
            frags, tiny_frag, refl_req, tcp_small);
    }

    /// ICMP and ICMPv6 packets of every kind.
    pub fn icmp(&self) -> u32 {
        self.icmp_req + u32::from(self.icmp_other)
    }
}

#[cfg(feature = "std")]
impl DstSlot {
    /// Adds another CPU's slot of the same address and tick.
    pub fn merge(&mut self, o: &DstSlot) {
        merge_fields!(self, o; syn_p, syn_b, tcp_p, tcp_small_p, udp_p, udp_b, icmp_req_p,
            icmp_other_p, icmp_err_p, other_p, other_b, frag_p, frag_b, synack_p, rst_p, refl_p,
            refl_b, udp_later_p, tcp_b, icmp_b, outer_p, inner_p);
        if o.tun_kind != 0 {
            (self.tun_src, self.tun_dst) = (o.tun_src, o.tun_dst);
            (self.tun_vni, self.tun_kind) = (o.tun_vni, o.tun_kind);
        }
        self.src_bits[0] |= o.src_bits[0];
        self.src_bits[1] |= o.src_bits[1];
        self.refl_src_bits |= o.refl_src_bits;
    }

    /// Estimated distinct senders from reflector ports (64-bit linear counting; saturates
    /// near 260).
    pub fn distinct_reflectors(&self) -> crate::sketch::Distinct {
        crate::sketch::linear_count_bits(&[self.refl_src_bits])
    }

    /// Estimated distinct senders (128-bit linear counting; saturates near 620).
    pub fn distinct_sources(&self) -> crate::sketch::Distinct {
        crate::sketch::linear_count_bits(&self.src_bits)
    }
}
