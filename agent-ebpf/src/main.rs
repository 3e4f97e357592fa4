//! Picket's kernel side: XDP (ingress) and TC (ingress or egress) programs that classify
//! every packet with `agent_common::classify_eth_into` (or `classify_ip_into` on devices
//! without an Ethernet header: the `*_ip` programs) and update bounded maps. Every packet is
//! passed on, except, with `--block`, those of the sources the agent blocks (XDP only).
#![no_std]
#![no_main]
#![cfg_attr(target_arch = "bpf", feature(asm_experimental_arch))]
// aya's #[xdp]/#[classifier] generate the exported, undocumented entry points (the programs
// are documented on the functions they wrap), and LICENSE is the kernel's license section.
#![allow(missing_docs)]

use agent_common::{
    Packet, Summary, classify_eth_into, classify_ip_into,
    conv::{ConvRec, ConvTable, DEFAULT_CONV_SLOTS, record_answer, record_opening},
    slots::{
        DEFAULT_DST_SLOTS, DEFAULT_SRC_SLOTS, DstSlot, Geometry, SlotTables, SrcSlot,
        account_packet,
    },
    sources::{SourceTable, SrcEntry, is_tracked, observe_probe},
    state::{
        Adder, AddrFilter, AddrKey, Blocked, CONFIG_ADMIT_ON_SECOND, CONFIG_BLOCK, CONFIG_EVIDENCE,
        Config, DEFAULT_BLOCKED, DEFAULT_SOURCES, DIR_EGRESS, DIR_INGRESS, EVIDENCE_RING_BYTES,
        EVIDENCE_SNAP, EvidenceRecord, FLAGGED_ENTRIES, Flagged, Globals, admitted,
    },
};
use aya_ebpf::{
    bindings::{BPF_F_MMAPABLE, TC_ACT_OK, xdp_action},
    helpers::{
        bpf_get_smp_processor_id, bpf_ktime_get_coarse_ns, bpf_ktime_get_ns, bpf_skb_load_bytes,
        bpf_xdp_load_bytes,
    },
    macros::{classifier, map, xdp},
    maps::{Array, HashMap, PerCpuArray, RingBuf},
    programs::{TcContext, XdpContext},
};

/// What the alerts of each probing source name: a shared table of 2-way sets
/// (`agent_common::sources`), mmapped by the agent. Resized at load time.
#[map(name = "SOURCES")]
static SOURCES: Array<SrcEntry> = Array::with_max_entries(DEFAULT_SOURCES, BPF_F_MMAPABLE);

/// What each address sent per tick: per-CPU partitions of 2-way sets (`agent_common::slots`),
/// mmapped by the agent. Resized at load time.
#[map(name = "SRC")]
static SRC: Array<SrcSlot> = Array::with_max_entries(2 * DEFAULT_SRC_SLOTS, BPF_F_MMAPABLE);

/// What each address received per tick, laid out as `SRC`.
#[map(name = "DST")]
static DST: Array<DstSlot> = Array::with_max_entries(2 * DEFAULT_DST_SLOTS, BPF_F_MMAPABLE);

/// Global counters, per CPU, one slot per direction.
#[map(name = "GLOBALS")]
static GLOBALS: PerCpuArray<Globals> = PerCpuArray::with_max_entries(2, 0);

/// Flags, tick and table geometry, written by the agent.
#[map(name = "CONFIG")]
static CONFIG: Array<Config> = Array::with_max_entries(1, 0);

/// Conversations (`agent_common::conv`), shared by all CPUs, two banks. Resized at load.
#[map(name = "CONV")]
static CONV: Array<ConvRec> = Array::with_max_entries(2 * DEFAULT_CONV_SLOTS, BPF_F_MMAPABLE);

/// Per-CPU room for the classifier's summary (0) and a tunnel's inner packet (1): two
/// 128-byte summaries do not fit the 512-byte stack with everything else.
#[map(name = "SUMMARY")]
static SUMMARY: PerCpuArray<Summary> = PerCpuArray::with_max_entries(2, 0);

/// Per-CPU slot through which `Direct::merge_offset` passes header offsets.
#[map(name = "OFFSET")]
static OFFSET: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);

/// Sources flagged by the agent for evidence capture, with their remaining byte budget.
/// Looked up only while the agent sets `CONFIG_EVIDENCE`.
#[map(name = "FLAGGED")]
static FLAGGED: HashMap<AddrKey, Flagged> = HashMap::with_max_entries(FLAGGED_ENTRIES, 0);

/// Captured packets of flagged sources, drained by the agent into pcap files.
#[map(name = "EVIDENCE")]
static EVIDENCE: RingBuf = RingBuf::with_byte_size(EVIDENCE_RING_BYTES, 0);

/// Sources blocked by the agent (`--block`). Looked up only while it sets `CONFIG_BLOCK`,
/// and only for sources whose bit is set in `BLOCK_FILTER`. Resized at load time.
#[map(name = "BLOCKED")]
static BLOCKED: HashMap<AddrKey, Blocked> = HashMap::with_max_entries(DEFAULT_BLOCKED, 0);

/// Bit filter of the blocked sources, rewritten whole by the agent.
#[map(name = "BLOCK_FILTER")]
static BLOCK_FILTER: Array<AddrFilter> = Array::with_max_entries(1, 0);

/// Direct packet access between `data` and `data_end`.
struct Direct {
    start: usize,
    end: usize,
    wire_len: usize,
}

impl Packet for Direct {
    #[inline(always)]
    fn len(&self) -> usize {
        self.end - self.start
    }

    #[inline(always)]
    fn wire_len(&self) -> usize {
        self.wire_len
    }

    #[inline(always)]
    fn load<T: Copy>(&self, off: usize) -> Option<T> {
        // Check and dereference the same pointer, so the verifier can prove the access.
        if self.start + off + core::mem::size_of::<T>() > self.end {
            None
        } else {
            // SAFETY: bounds checked just above; T is an alignment-1 POD header type.
            Some(unsafe { ((self.start + off) as *const T).read_unaligned() })
        }
    }

    #[inline(always)]
    fn merge_offset(&self, off: usize) -> usize {
        match OFFSET.get_ptr_mut(0) {
            // SAFETY: per-CPU slot, used only here, between a write and the read after it.
            Some(slot) => unsafe {
                core::ptr::write_volatile(slot, off as u64);
                core::ptr::read_volatile(slot) as usize
            },
            None => off,
        }
    }
}

/// Atomic add on shared map values: a BPF `lock` add (rustc lowers core atomics to plain
/// load/add/store on this target).
struct AtomicAdd;

impl Adder for AtomicAdd {
    #[inline(always)]
    fn add(dst: &mut u64, v: u64) {
        #[cfg(target_arch = "bpf")]
        // SAFETY: `dst` is a valid, 8-byte aligned u64 inside a map value.
        unsafe {
            core::arch::asm!(
                "lock *(u64 *)({0} + 0) += {1}",
                in(reg) dst as *mut u64,
                in(reg) v,
                options(nostack),
            );
        }
        #[cfg(not(target_arch = "bpf"))]
        {
            *dst = dst.wrapping_add(v);
        }
    }
}

/// The link layer a program's packets start with.
const LINK_ETH: u8 = 0;
/// Devices without a link header (tun, ipip, gre, wireguard): packets start at IP.
const LINK_IP: u8 = 1;

/// Where [`account`] stops (its `STOP` parameter, as `u8`). The live programs run it whole;
/// `picket bench` also times copies that stop after each stage, to say what each costs.
#[repr(u8)]
enum Stop {
    /// Run it all.
    Never,
    /// After the configuration and the per-CPU map values are in hand.
    Entry,
    /// After the classifier and the global counters.
    Parse,
    /// After the first stage (the sender's and receiver's slots).
    Slots,
    /// After an answer is looked for in the conversations.
    Answer,
    /// After a probe's conversation is recorded (only the per-source update follows).
    Opening,
}

/// The live programs' `STOP`.
const STOP_NEVER: u8 = Stop::Never as u8;

#[xdp]
pub fn picket_xdp(ctx: XdpContext) -> u32 {
    xdp_run::<LINK_ETH, STOP_NEVER>(&ctx)
}

/// XDP on an L3 device (ARPHRD other than Ethernet): the packet starts at the IP header.
#[xdp]
pub fn picket_xdp_ip(ctx: XdpContext) -> u32 {
    xdp_run::<LINK_IP, STOP_NEVER>(&ctx)
}

/// Bench-only copies of `picket_xdp` that stop at a [`Stop`] stage (never attached).
macro_rules! stage_programs {
    ($($name:ident: $stop:ident),* $(,)?) => {$(
        #[xdp]
        pub fn $name(ctx: XdpContext) -> u32 {
            xdp_run::<LINK_ETH, { Stop::$stop as u8 }>(&ctx)
        }
    )*};
}

stage_programs!(
    picket_stage_entry: Entry,
    picket_stage_parse: Parse,
    picket_stage_slots: Slots,
    picket_stage_answer: Answer,
    picket_stage_opening: Opening,
);

#[inline(always)]
fn xdp_run<const LINK: u8, const STOP: u8>(ctx: &XdpContext) -> u32 {
    let pkt = Direct {
        start: ctx.data(),
        end: ctx.data_end(),
        wire_len: ctx.data_end() - ctx.data(),
    };
    let cfg = config();
    if cfg.flags & CONFIG_BLOCK != 0 && blocked::<LINK>(&pkt) {
        return xdp_action::XDP_DROP;
    }
    if cfg.flags & CONFIG_EVIDENCE != 0 {
        capture::<LINK>(&pkt, |off, dst, len| {
            // SAFETY: `dst` points to `len` (1..=256) writable bytes of a ring buffer record.
            unsafe { bpf_xdp_load_bytes(ctx.ctx, off, dst, len) }
        });
    }
    account::<LINK, STOP>(&pkt, DIR_INGRESS, cfg);
    xdp_action::XDP_PASS
}

/// Whether the packet's source is blocked (counted either way); the agent decides who is.
/// The bit filter first, so that sources that are not blocked pay no hash lookup.
#[inline(always)]
fn blocked<const LINK: u8>(pkt: &Direct) -> bool {
    let Some(src) = evidence_source::<LINK>(pkt) else {
        return false;
    };
    let (w, b) = AddrFilter::bit(&src.addr);
    match BLOCK_FILTER.get(0).and_then(|f| f.words.get(w)) {
        Some(word) if *word & b != 0 => {}
        _ => return false,
    }
    let Some(v) = BLOCKED.get_ptr_mut(src) else {
        return false;
    };
    // SAFETY: hash map value; the counters are only changed with atomic adds.
    let v = unsafe { &mut *v };
    AtomicAdd::add(&mut v.packets, 1);
    AtomicAdd::add(&mut v.bytes, pkt.wire_len as u64);
    v.drop != 0
}

/// Returns XDP_PASS and nothing else: the baseline `picket bench` measures against.
#[xdp]
pub fn picket_pass(_ctx: XdpContext) -> u32 {
    xdp_action::XDP_PASS
}

#[classifier]
pub fn picket_tc_ingress(ctx: TcContext) -> i32 {
    tc_account::<LINK_ETH>(&ctx, DIR_INGRESS);
    TC_ACT_OK
}

#[classifier]
pub fn picket_tc_egress(ctx: TcContext) -> i32 {
    tc_account::<LINK_ETH>(&ctx, DIR_EGRESS);
    TC_ACT_OK
}

/// TC ingress on an L3 device: the packet starts at the IP header.
#[classifier]
pub fn picket_tc_ip_ingress(ctx: TcContext) -> i32 {
    tc_account::<LINK_IP>(&ctx, DIR_INGRESS);
    TC_ACT_OK
}

/// TC egress on an L3 device.
#[classifier]
pub fn picket_tc_ip_egress(ctx: TcContext) -> i32 {
    tc_account::<LINK_IP>(&ctx, DIR_EGRESS);
    TC_ACT_OK
}

/// Bytes of headers the classifier may need: Ethernet + 4 VLAN tags + IPv6 + extension
/// headers of common sizes + a tunnel header with Geneve options + the inner headers.
/// Pulled into the linear area when the skb is non-linear.
const TC_PULL_LEN: u32 = 320;

#[inline(always)]
fn tc_account<const LINK: u8>(ctx: &TcContext, dir: u32) {
    let wire_len = ctx.len() as usize;
    if ctx.data_end() - ctx.data() < wire_len && ctx.data_end() - ctx.data() < TC_PULL_LEN as usize
    {
        let _ = ctx.pull_data(if wire_len < TC_PULL_LEN as usize {
            wire_len as u32
        } else {
            TC_PULL_LEN
        });
    }
    let pkt = Direct {
        start: ctx.data(),
        end: ctx.data_end(),
        wire_len,
    };
    let cfg = config();
    if dir == DIR_INGRESS && cfg.flags & CONFIG_EVIDENCE != 0 {
        capture::<LINK>(&pkt, |off, dst, len| {
            // SAFETY: `dst` points to `len` (1..=256) writable bytes of a ring buffer record.
            unsafe { bpf_skb_load_bytes(ctx.skb.skb as *const _, off, dst, len) }
        });
    }
    account::<LINK, STOP_NEVER>(&pkt, dir, cfg);
}

/// The agent's configuration (all zero if the map cannot be read).
#[inline(always)]
fn config() -> Config {
    match CONFIG.get(0) {
        Some(c) => *c,
        None => Config::default(),
    }
}

/// The source address of an IPv4 or IPv6 packet (after at most one VLAN tag, or at offset
/// 0 on an L3 device), as a key of `FLAGGED` and `BLOCKED`; the outer address of a tunnel. A minimal parse of its own, done before (and independent of) the classifier,
/// so that the verifier explores the capture path once rather than once per parse outcome.
#[inline(always)]
fn evidence_source<const LINK: u8>(pkt: &Direct) -> Option<AddrKey> {
    let (et, l3) = if LINK == LINK_IP {
        let v: [u8; 2] = pkt.load(0)?;
        (if v[0] >> 4 == 6 { 0x86dd } else { 0x0800 }, 0)
    } else {
        let mut off = 12;
        let mut et = u16::from_be_bytes(pkt.load::<[u8; 2]>(off)?);
        if et == 0x8100 || et == 0x88a8 {
            off += 4;
            et = u16::from_be_bytes(pkt.load::<[u8; 2]>(off)?);
        }
        (et, off + 2)
    };
    match et {
        0x0800 => {
            let a: [u8; 4] = pkt.load(l3 + 12)?;
            let mut addr = [0u8; 16];
            addr[10] = 0xff;
            addr[11] = 0xff;
            addr[12] = a[0];
            addr[13] = a[1];
            addr[14] = a[2];
            addr[15] = a[3];
            Some(AddrKey { addr })
        }
        0x86dd => Some(AddrKey {
            addr: pkt.load(l3 + 8)?,
        }),
        _ => None,
    }
}

/// Copies the first bytes of a packet from a flagged source into the evidence ring buffer,
/// if its budget allows. `load(offset, dst, len)` is the program type's load-bytes helper.
#[inline(always)]
fn capture<const LINK: u8>(
    pkt: &Direct,
    load: impl FnOnce(u32, *mut core::ffi::c_void, u32) -> i64,
) {
    let Some(src) = evidence_source::<LINK>(pkt) else {
        return;
    };
    let wire_len = pkt.wire_len;
    let Some(f) = FLAGGED.get_ptr_mut(src) else {
        return;
    };
    // SAFETY: hash map value; the fields are only changed with atomic adds.
    let f = unsafe { &mut *f };
    if f.budget as i64 <= 0 || wire_len == 0 {
        return;
    }
    // 1..=EVIDENCE_SNAP, in a form the verifier can bound: (min(len, SNAP) - 1) & 0xff, + 1.
    let n = wire_len.min(EVIDENCE_SNAP) as u32;
    // black_box: otherwise LLVM proves the mask redundant and drops it with the +1.
    let len = (core::hint::black_box(n - 1) & (EVIDENCE_SNAP as u32 - 1)) + 1;
    let Some(mut rec) = EVIDENCE.reserve::<EvidenceRecord>(0) else {
        AtomicAdd::add(&mut f.dropped, 1);
        return;
    };
    let r = rec.as_mut_ptr();
    // SAFETY: `r` is the reserved record, written before submit.
    let ok = unsafe {
        (*r).hdr.ts_ns = bpf_ktime_get_ns();
        (*r).hdr.wire_len = wire_len as u32;
        (*r).hdr.cap_len = len;
        (*r).hdr.src = src.addr;
        load(0, (*r).data.as_mut_ptr() as *mut _, len) == 0
    };
    if ok {
        rec.submit(0);
        AtomicAdd::add(&mut f.captured, 1);
        AtomicAdd::add(&mut f.budget, u64::from(len).wrapping_neg());
    } else {
        rec.discard(0);
    }
}

#[inline(always)]
fn account<const LINK: u8, const STOP: u8>(pkt: &Direct, dir: u32, cfg: Config) {
    let Some(g) = GLOBALS.get_ptr_mut(dir) else {
        return;
    };
    // SAFETY: per-CPU slot, only this program on this CPU touches it.
    let g = unsafe { &mut *g };
    let (Some(sp), Some(scratch)) = (SUMMARY.get_ptr_mut(0), SUMMARY.get_ptr_mut(1)) else {
        return;
    };
    // SAFETY: two different per-CPU slots, used only by this invocation (programs on one
    // CPU do not nest).
    let (s, scratch) = unsafe { (&mut *sp, &mut *scratch) };
    if STOP == Stop::Entry as u8 {
        return;
    }
    // The summary lives in map memory, whose contents the verifier does not track: every
    // parse path (VLAN depth, extension-header chain, options, tunnel) continues as one
    // from here, so the state updates are verified once rather than once per path.
    let parsed = if LINK == LINK_IP {
        classify_ip_into(pkt, 0, s, scratch)
    } else {
        classify_eth_into(pkt, s, scratch)
    };
    if let Err(e) = parsed {
        g.observe_error(e, pkt.wire_len as u64);
        return;
    }
    let s = &*s;
    g.observe(s);
    if STOP == Stop::Parse as u8 || !s.is_ip() {
        return;
    }
    let tick_packets = account_slots(s, &cfg);
    if STOP == Stop::Slots as u8 {
        return;
    }
    let admission_on = cfg.flags & CONFIG_ADMIT_ON_SECOND != 0;
    let geometry = Geometry::of(&cfg);
    // Answers in either direction (TC egress of the watched host, or an interface that sees
    // both ways): they write their conversation's responder side and are not probes.
    if record_answer(&mut SharedConv, geometry.conv(), s, !admission_on)
        || STOP == Stop::Answer as u8
    {
        return;
    }
    if dir != DIR_INGRESS || !s.is_probe() {
        return;
    }
    if !admitted(admission_on, tick_packets)
        && !is_tracked(&mut SharedSources, geometry.sources(), &s.src_words())
    {
        g.src_deferred += 1;
        return;
    }
    // A probe of a conversation already seen in this tick changes no scan state.
    if !record_opening(&mut SharedConv, geometry.conv(), s) || STOP == Stop::Opening as u8 {
        return;
    }
    // SAFETY: helper without arguments.
    let now = unsafe { bpf_ktime_get_coarse_ns() };
    observe_probe::<_, AtomicAdd>(&mut SharedSources, geometry.sources(), s, now).count_in(g);
}

/// The two adjacent entries at `i` (even) of a set-associative array map.
///
/// # Safety
/// The caller names who may write the entries at once: the ways must not be borrowed
/// elsewhere by this program invocation.
#[inline(always)]
// A map is a shared static that hands out pointers to its values (aya's `get_ptr_mut`).
#[allow(clippy::mut_from_ref)]
unsafe fn ways_of<T>(map: &'static Array<T>, i: u32) -> Option<[&'static mut T; 2]> {
    match (map.get_ptr_mut(i), map.get_ptr_mut(i | 1)) {
        // SAFETY: two different entries (i is even) of a preallocated array; the caller
        // vouches for the writers.
        (Some(w0), Some(w1)) => Some(unsafe { [&mut *w0, &mut *w1] }),
        _ => None,
    }
}

/// `SOURCES` as `agent_common::sources` functions see it.
struct SharedSources;

impl SourceTable for SharedSources {
    #[inline(always)]
    fn ways(&mut self, i: u32) -> Option<[&mut SrcEntry; 2]> {
        // SAFETY: the table is shared: a race between CPUs on one set can at worst mix two
        // sources' latest destinations; the probe counts are atomic adds.
        unsafe { ways_of(&SOURCES, i) }
    }
}

/// `CONV` as `agent_common::conv` functions see it.
struct SharedConv;

impl ConvTable for SharedConv {
    #[inline(always)]
    fn ways(&mut self, i: u32) -> Option<[&mut ConvRec; 2]> {
        // SAFETY: the table is shared: a race between CPUs on one record can at worst count
        // a conversation twice or merge flag bits; the two sides of a conversation write
        // disjoint bytes.
        unsafe { ways_of(&CONV, i) }
    }
}

/// The first stage: the sender's `SRC` slot and the receiver's `DST` slot on this CPU.
/// Returns the sender's packets in this tick on this CPU (0 if its slot was out of reach).
#[inline(always)]
fn account_slots(s: &Summary, cfg: &Config) -> u32 {
    // SAFETY: helper without arguments (inlined by the verifier on x86-64).
    let cpu = unsafe { bpf_get_smp_processor_id() };
    account_packet(&mut SlotMaps, cpu, Geometry::of(cfg), s)
}

/// `SRC` and `DST` as `agent_common::slots::account_packet` sees them.
struct SlotMaps;

impl SlotTables for SlotMaps {
    #[inline(always)]
    fn src_ways(&mut self, i: u32) -> Option<[&mut SrcSlot; 2]> {
        // SAFETY: entries of this CPU's partition, written only by programs on this CPU,
        // which do not nest.
        unsafe { ways_of(&SRC, i) }
    }

    #[inline(always)]
    fn dst_ways(&mut self, i: u32) -> Option<[&mut DstSlot; 2]> {
        // SAFETY: as above.
        unsafe { ways_of(&DST, i) }
    }
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(no_mangle)]
#[unsafe(link_section = "license")]
pub static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
