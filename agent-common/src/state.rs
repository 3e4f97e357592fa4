//! Map keys and values, and the per-packet updates applied to them.
//!
//! The update functions are generic over [`Adder`] so that the BPF programs use atomic adds
//! on shared map values while the host (parity tests, `picket analyze`) uses plain adds.
//! Everything here is `#[repr(C)]` with explicit padding so the layouts are identical on both
//! sides.

use crate::{
    classify::{
        IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP, PARSE_ERROR_SLOTS, ParseError,
        SHIM_MPLS, SHIM_PPPOE, Summary,
    },
    sketch::addr_hash,
    tunnel::{ENCAP_SLOTS, INNER_ERROR_SLOTS},
};

/// Name of the per-source table (`crate::sources`).
pub const MAP_SOURCES: &str = "SOURCES";
/// Name of the per-CPU global counters array.
pub const MAP_GLOBALS: &str = "GLOBALS";
/// Name of the one-entry configuration array.
pub const MAP_CONFIG: &str = "CONFIG";

/// Default entries of [`MAP_SOURCES`] (a power of two).
pub const DEFAULT_SOURCES: u32 = 65_536;

/// Index of the ingress slot in [`MAP_GLOBALS`].
pub const DIR_INGRESS: u32 = 0;
/// Index of the egress slot in [`MAP_GLOBALS`].
pub const DIR_EGRESS: u32 = 1;

/// How counters are incremented: atomically in the kernel, plainly on the host.
pub trait Adder {
    /// Adds `v` to `*dst`.
    fn add(dst: &mut u64, v: u64);
}

/// Plain (non-atomic) addition, for state owned by one thread.
pub struct PlainAdd;

impl Adder for PlainAdd {
    #[inline(always)]
    fn add(dst: &mut u64, v: u64) {
        *dst = dst.wrapping_add(v);
    }
}

/// Key of the per-source and per-destination maps: an IPv6 address, or an IPv4 address
/// mapped into IPv6 (`::ffff:a.b.c.d`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AddrKey {
    /// The 16 address bytes.
    pub addr: [u8; 16],
}

/// Per-source state: what the alerts of a probing source name, for the probes
/// ([`Summary::is_probe`]) one source sent to the monitored interfaces (ingress). Rates and
/// every other per-source count come from the slot tables (`crate::slots`) and the distinct
/// ports and hosts of a scan from its settled conversations (`crate::conv`), so an entry is
/// small: the map's read and its kernel memory scale with it.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SrcState {
    /// Probes since the entry was created.
    pub probes: u64,
    /// Kernel monotonic time (ns) of the first probe.
    pub first_seen_ns: u64,
    /// Kernel monotonic time (ns) of the latest probe.
    pub last_seen_ns: u64,
    /// Destination of the latest probe (the scanned host, for alerts).
    pub last_dst: [u8; 16],

    // ---- Tunnel of the latest tunnelled probe (issue 12): for alerts -----------------
    /// Outer source (tunnel endpoint) of the latest tunnelled probe; zero if none was.
    pub tunnel_src: [u8; 16],
    /// Outer destination (tunnel endpoint) of the latest tunnelled probe.
    pub tunnel_dst: [u8; 16],
    /// Its VNI or GRE key.
    pub tunnel_vni: u32,
    /// Tick (`crate::slots`) of the latest probe: the per-source table evicts the source
    /// probed longest ago (`crate::sources`).
    pub last_tick: u32,
    /// Its `ENCAP_*` kind (0: no probe of this source came through a tunnel).
    pub tunnel_kind: u8,
    /// Padding, always zero.
    pub _tunnel_pad: [u8; 7],
}

const _: () = assert!(core::mem::size_of::<SrcState>() == 3 * 8 + 16 + 48);

impl SrcState {
    /// An all-zero state.
    pub const ZERO: SrcState = SrcState {
        probes: 0,
        first_seen_ns: 0,
        last_seen_ns: 0,
        last_dst: [0; 16],
        tunnel_src: [0; 16],
        tunnel_dst: [0; 16],
        tunnel_vni: 0,
        last_tick: 0,
        tunnel_kind: 0,
        _tunnel_pad: [0; 7],
    };

    /// Prepares a new entry created at `now_ns`.
    #[inline(always)]
    pub fn init(&mut self, now_ns: u64) {
        *self = Self::ZERO;
        self.first_seen_ns = now_ns;
    }

    /// Accounts one ingress probe from this source (other packets are ignored).
    #[inline(always)]
    pub fn observe<A: Adder>(&mut self, s: &Summary, now_ns: u64) {
        if !s.is_probe() {
            return;
        }
        A::add(&mut self.probes, 1);
        if self.last_seen_ns != now_ns {
            self.last_seen_ns = now_ns;
        }
        if self.last_dst != s.dst {
            self.last_dst = s.dst;
        }
        if s.encap != 0 {
            self.tunnel_src = s.outer_src;
            self.tunnel_dst = s.outer_dst;
            self.tunnel_vni = s.vni;
            self.tunnel_kind = s.encap;
        }
    }
}

/// Global counters for one direction, kept per CPU (summed by the agent).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Globals {
    /// Packets seen.
    pub packets: u64,
    /// Bytes on the wire.
    pub bytes: u64,
    /// ARP packets.
    pub arp: u64,
    /// Other non-IP packets.
    pub non_ip: u64,
    /// IPv4 packets.
    pub ipv4: u64,
    /// IPv6 packets.
    pub ipv6: u64,
    /// TCP packets.
    pub tcp: u64,
    /// UDP packets.
    pub udp: u64,
    /// ICMP packets.
    pub icmp: u64,
    /// ICMPv6 packets.
    pub icmpv6: u64,
    /// IP packets of other protocols, and later fragments.
    pub other_l4: u64,
    /// IP fragments (first and later).
    pub fragments: u64,
    /// First fragments too short for their L4 header (`FRAG_TINY`: an evasion).
    pub tiny_fragments: u64,
    /// TCP SYNs without ACK.
    pub syn: u64,
    /// TCP SYN-ACKs.
    pub syn_ack: u64,
    /// TCP RSTs.
    pub rst: u64,
    /// Probe packets ([`Summary::is_probe`]).
    pub probes: u64,
    /// Parse errors by `ParseError as u8` (slot 0 unused).
    pub parse_errors: [u64; PARSE_ERROR_SLOTS],
    /// Per-source entries created.
    pub src_inserts: u64,
    /// Per-source updates that failed (the table does not have the agent's geometry).
    pub src_failures: u64,
    /// Packets from unknown sources not admitted to the per-source map (first sighting
    /// while [`CONFIG_ADMIT_ON_SECOND`] is on).
    pub src_deferred: u64,

    // ---- Encapsulation (issue 12, `crate::tunnel`) -----------------------------------
    // Every frame counts once in `packets`/`bytes` and the per-protocol counters above,
    // by its inner packet when decapsulated; these say how many were tunnelled.
    /// Decapsulated packets by `ENCAP_*` kind (slot 0 unused).
    pub encap: [u64; ENCAP_SLOTS],
    /// Tunnel packets whose inner packet was not decoded, by `INNER_*` (slot 0 unused);
    /// they count by their outer header.
    pub inner_errors: [u64; INNER_ERROR_SLOTS],
    /// Frames with an MPLS label stack.
    pub mpls: u64,
    /// PPPoE session frames.
    pub pppoe: u64,
}

impl Globals {
    /// Accounts one classified packet (per CPU: plain adds).
    #[inline(always)]
    pub fn observe(&mut self, s: &Summary) {
        self.packets += 1;
        self.bytes += u64::from(s.wire_len);
        self.observe_encap(s);
        match s.family {
            4 => self.ipv4 += 1,
            6 => self.ipv6 += 1,
            _ => {
                if s.ethertype == crate::classify::ETH_P_ARP {
                    self.arp += 1;
                } else {
                    self.non_ip += 1;
                }
                return;
            }
        }
        if s.fragment != 0 {
            self.fragments += 1;
            if s.fragment == crate::classify::FRAG_TINY {
                self.tiny_fragments += 1;
            }
        }
        if s.is_probe() {
            self.probes += 1;
        }
        if !s.has_l4() {
            self.other_l4 += 1;
            return;
        }
        match s.proto {
            IPPROTO_TCP => {
                self.tcp += 1;
                if s.is_syn() {
                    self.syn += 1;
                } else if s.is_syn_ack() {
                    self.syn_ack += 1;
                }
                if s.is_rst() {
                    self.rst += 1;
                }
            }
            IPPROTO_UDP => self.udp += 1,
            IPPROTO_ICMP => self.icmp += 1,
            IPPROTO_ICMPV6 => self.icmpv6 += 1,
            _ => self.other_l4 += 1,
        }
    }

    /// The encapsulation counters of one classified packet.
    #[inline(always)]
    fn observe_encap(&mut self, s: &Summary) {
        // The masks keep the indexes provably in bounds for the verifier.
        if s.encap != 0 {
            self.encap[s.encap as usize & (ENCAP_SLOTS - 1)] += 1;
        }
        if s.inner_error != 0 {
            self.inner_errors[s.inner_error as usize & (INNER_ERROR_SLOTS - 1)] += 1;
        }
        if s.shim & SHIM_MPLS != 0 {
            self.mpls += 1;
        }
        if s.shim & SHIM_PPPOE != 0 {
            self.pppoe += 1;
        }
    }

    /// Accounts a packet the classifier rejected.
    #[inline(always)]
    pub fn observe_error(&mut self, e: ParseError, wire_len: u64) {
        self.packets += 1;
        self.bytes += wire_len;
        // The mask keeps the index provably in bounds for the verifier.
        let slot = core::hint::black_box(e as u8) as usize & (PARSE_ERROR_SLOTS - 1);
        self.parse_errors[slot] += 1;
    }

    /// Total parse errors.
    pub fn parse_error_total(&self) -> u64 {
        self.parse_errors.iter().sum()
    }

    /// Adds another set of counters (summing CPUs or directions).
    pub fn merge(&mut self, o: &Globals) {
        macro_rules! sum { ($($f:ident),*) => { $( self.$f += o.$f; )* } }
        sum!(
            packets,
            bytes,
            arp,
            non_ip,
            ipv4,
            ipv6,
            tcp,
            udp,
            icmp,
            icmpv6,
            other_l4,
            fragments,
            tiny_fragments,
            syn,
            syn_ack,
            rst,
            probes,
            src_inserts,
            src_failures,
            src_deferred
        );
        for (a, b) in self.parse_errors.iter_mut().zip(o.parse_errors.iter()) {
            *a += b;
        }
        for (a, b) in self.encap.iter_mut().zip(o.encap.iter()) {
            *a += b;
        }
        for (a, b) in self.inner_errors.iter_mut().zip(o.inner_errors.iter()) {
            *a += b;
        }
        self.mpls += o.mpls;
        self.pppoe += o.pppoe;
    }
}

/// Run-time configuration written by the agent.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Config {
    /// `CONFIG_*` bits.
    pub flags: u64,
    /// Current tick of the slot tables (`crate::slots`): bumped by the agent at every poll.
    pub tick: u32,
    /// Seed of the slot tables' hashes, random per agent start.
    pub seed: u32,
    /// `SRC` slots per CPU and bank (a power of two).
    pub src_per_cpu: u32,
    /// `DST` slots per CPU and bank (a power of two).
    pub dst_per_cpu: u32,
    /// `CONV` records per bank (a power of two).
    pub conv_per_bank: u32,
    /// [`MAP_SOURCES`] entries (a power of two).
    pub sources: u32,
}

/// [`Config::flags`]: admit a source to the per-source map only at its second sighting.
///
/// The agent sets it while new sources arrive faster than the map can keep them (a flood
/// from spoofed random sources), so that the flood cannot churn out the entries of real
/// scanners. A probe from an untracked source is then admitted only when its sender slot
/// (`crate::slots`) already counts an earlier packet of the source in this tick on this CPU.
/// A random spoofed source sends one packet and never gets in (nor claims a conversation
/// record); a scanner gets in at its second probe and only its first probe goes uncounted.
pub const CONFIG_ADMIT_ON_SECOND: u64 = 2;

/// Whether a probe from a source the per-source map does not hold is admitted, given the
/// sender slot's packets in this tick (this one included).
#[inline(always)]
pub fn admitted(admit_on_second: bool, tick_packets: u32) -> bool {
    !admit_on_second || tick_packets >= 2
}

/// 64-bit words of an [`AddrFilter`]: 2^20 bits, 128 KiB.
pub const FILTER_WORDS: usize = 16_384;

/// A bit filter of addresses, one bit per hashed address: a clear bit proves the address is
/// not in the set, so the kernel skips a hash lookup for it ([`MAP_BLOCK_FILTER`]).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct AddrFilter {
    /// The bits.
    pub words: [u64; FILTER_WORDS],
}

impl AddrFilter {
    /// No address.
    pub const EMPTY: AddrFilter = AddrFilter {
        words: [0; FILTER_WORDS],
    };

    /// Word index and bit mask of an address.
    #[inline(always)]
    pub fn bit(addr: &[u8; 16]) -> (usize, u64) {
        let h = crate::sketch::fmix32(addr_hash(addr) ^ 0x9e37_79b9);
        ((h >> 6) as usize & (FILTER_WORDS - 1), 1u64 << (h & 63))
    }

    /// False only when `addr` is certainly not in the set.
    #[inline(always)]
    pub fn may_contain(&self, addr: &[u8; 16]) -> bool {
        let (w, b) = Self::bit(addr);
        self.words.get(w).is_none_or(|v| v & b != 0)
    }

    /// Sets the bit of `addr` (host side; the kernel uses an atomic or).
    pub fn insert(&mut self, addr: &[u8; 16]) {
        let (w, b) = Self::bit(addr);
        if let Some(v) = self.words.get_mut(w) {
            *v |= b;
        }
    }
}

/// [`Config::flags`]: at least one source is in [`MAP_FLAGGED`], so ingress IP packets look
/// their source up there and copy evidence for it. Off otherwise, so that normal operation
/// pays one branch and no lookup.
pub const CONFIG_EVIDENCE: u64 = 4;

/// Name of the hash map of flagged sources ([`AddrKey`] to [`Flagged`]).
pub const MAP_FLAGGED: &str = "FLAGGED";
/// Capacity of [`MAP_FLAGGED`]: sources captured at the same time.
pub const FLAGGED_ENTRIES: u32 = 256;
/// Name of the ring buffer of [`EvidenceRecord`]s.
pub const MAP_EVIDENCE: &str = "EVIDENCE";
/// Size of [`MAP_EVIDENCE`] in bytes (a power of two, a multiple of the page size).
pub const EVIDENCE_RING_BYTES: u32 = 1 << 20;
/// Bytes of each flagged packet that are captured (the pcap snaplen).
pub const EVIDENCE_SNAP: usize = 256;

/// [`Config::flags`]: at least one source is in [`MAP_BLOCKED`] (`--block`), so XDP looks
/// ingress IP sources up in [`MAP_BLOCK_FILTER`] and, on a hit, in [`MAP_BLOCKED`]. Off
/// otherwise: normal operation pays one branch.
pub const CONFIG_BLOCK: u64 = 8;
/// Name of the hash map of blocked sources ([`AddrKey`] to [`Blocked`]).
pub const MAP_BLOCKED: &str = "BLOCKED";
/// Default capacity of [`MAP_BLOCKED`] (`block.max_sources`; resized at load time).
pub const DEFAULT_BLOCKED: u32 = 4096;
/// Name of the one-value array holding the bit filter (a [`AddrFilter`] bit set) of the
/// blocked sources: a flood of sources that are not blocked costs no hash lookup.
pub const MAP_BLOCK_FILTER: &str = "BLOCK_FILTER";

/// A source user space blocks. The policy (which episodes, exclusions, expiry) is in user
/// space; the kernel only drops (or, dry run, counts) its packets.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Blocked {
    /// 1: drop its packets; 0: dry run, count and pass them.
    pub drop: u64,
    /// Packets dropped (or, dry run, that would have been).
    pub packets: u64,
    /// Their bytes on the wire.
    pub bytes: u64,
}

/// A source user space flagged for evidence capture.
///
/// Layout (24 bytes): `budget` at 0, `captured` at 8, `dropped` at 16.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Flagged {
    /// Bytes of packet data that may still be captured, as a signed count: the kernel
    /// checks `budget as i64 > 0`, then adds the two's complement of the captured length
    /// with an atomic add, so concurrent CPUs may overshoot by at most one packet each.
    pub budget: u64,
    /// Packets submitted to the ring buffer.
    pub captured: u64,
    /// Packets lost because the ring buffer was full.
    pub dropped: u64,
}

const _: () = assert!(core::mem::size_of::<Flagged>() == 24);

/// Header of one captured packet.
///
/// Layout (32 bytes): `ts_ns` at 0, `wire_len` at 8, `cap_len` at 12, `src` at 16.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvidenceHeader {
    /// Kernel monotonic time (`bpf_ktime_get_ns`) of capture.
    pub ts_ns: u64,
    /// Length of the packet on the wire (as seen by the program).
    pub wire_len: u32,
    /// Bytes of `data` that hold packet bytes (1..=[`EVIDENCE_SNAP`]).
    pub cap_len: u32,
    /// Source address (IPv4-mapped for IPv4), as in [`AddrKey`].
    pub src: [u8; 16],
}

const _: () = assert!(core::mem::size_of::<EvidenceHeader>() == 32);

/// One record of [`MAP_EVIDENCE`]: a header and the first bytes of the packet.
///
/// Layout (288 bytes): `hdr` at 0, `data` at 32.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EvidenceRecord {
    /// What was captured.
    pub hdr: EvidenceHeader,
    /// The first `hdr.cap_len` bytes of the packet, starting at the Ethernet header.
    pub data: [u8; EVIDENCE_SNAP],
}

const _: () = assert!(core::mem::size_of::<EvidenceRecord>() == 32 + EVIDENCE_SNAP);

#[cfg(feature = "aya")]
mod pod {
    // SAFETY: all are #[repr(C)] structs of integers and integer arrays with no implicit
    // padding (checked by the size assertions above), so every bit pattern is valid.
    unsafe impl aya::Pod for super::AddrKey {}
    unsafe impl aya::Pod for super::SrcState {}
    unsafe impl aya::Pod for super::Globals {}
    unsafe impl aya::Pod for super::Config {}
    unsafe impl aya::Pod for super::Flagged {}
    unsafe impl aya::Pod for super::Blocked {}
    unsafe impl aya::Pod for super::AddrFilter {}
    unsafe impl aya::Pod for super::EvidenceHeader {}
    unsafe impl aya::Pod for super::EvidenceRecord {}
    unsafe impl aya::Pod for crate::classify::Summary {}
}

#[cfg(feature = "std")]
impl AddrKey {
    /// The address as a std IP address (IPv4-mapped addresses become IPv4).
    pub fn ip(&self) -> std::net::IpAddr {
        let v6 = std::net::Ipv6Addr::from(self.addr);
        match v6.to_ipv4_mapped() {
            Some(v4) => std::net::IpAddr::V4(v4),
            None => std::net::IpAddr::V6(v6),
        }
    }

    /// Key for a std IP address.
    pub fn from_ip(ip: std::net::IpAddr) -> Self {
        let v6 = match ip {
            std::net::IpAddr::V4(v4) => v4.to_ipv6_mapped(),
            std::net::IpAddr::V6(v6) => v6,
        };
        AddrKey { addr: v6.octets() }
    }
}
