//! Picket's kernel side: XDP (ingress) and TC (ingress or egress) programs that classify
//! every packet with `agent_common::classify_eth` and update bounded maps. Every packet is
//! passed on: Picket only observes.
#![no_std]
#![no_main]
#![cfg_attr(target_arch = "bpf", feature(asm_experimental_arch))]

use agent_common::{
    Packet, Summary, classify_eth,
    state::{
        Adder, AddrKey, CONFIG_ADMIT_ON_SECOND, CONFIG_TRACK_DESTS, Config, DEFAULT_DESTS,
        DEFAULT_SOURCES, DIR_EGRESS, DIR_INGRESS, DstState, DstUpdate, Globals, PENDING_SLOTS,
        PlainAdd, SrcState, admit_on_second, dst_update, pending_slot,
    },
};
use aya_ebpf::{
    bindings::{BPF_NOEXIST, TC_ACT_OK, xdp_action},
    helpers::bpf_ktime_get_coarse_ns,
    macros::{classifier, map, xdp},
    maps::{Array, LruHashMap, PerCpuArray},
    programs::{TcContext, XdpContext},
};

/// Per-source state (LRU: a flood of new sources evicts the oldest). Resized at load time.
#[map(name = "SOURCES")]
static SOURCES: LruHashMap<AddrKey, SrcState> = LruHashMap::with_max_entries(DEFAULT_SOURCES, 0);

/// Per-destination SYN state (LRU). Resized at load time.
#[map(name = "DESTS")]
static DESTS: LruHashMap<AddrKey, DstState> = LruHashMap::with_max_entries(DEFAULT_DESTS, 0);

/// Global counters, per CPU, one slot per direction.
#[map(name = "GLOBALS")]
static GLOBALS: PerCpuArray<Globals> = PerCpuArray::with_max_entries(2, 0);

/// Window epoch and flags, written by the agent.
#[map(name = "CONFIG")]
static CONFIG: Array<Config> = Array::with_max_entries(1, 0);

/// Tags of unknown sources seen once, while admission on second sighting is on.
#[map(name = "PENDING")]
static PENDING: Array<u32> = Array::with_max_entries(PENDING_SLOTS, 0);

/// Per-CPU scratch space to build a new per-source entry (too large for the 512-byte stack).
#[map(name = "SRC_SCRATCH")]
static SRC_SCRATCH: PerCpuArray<SrcState> = PerCpuArray::with_max_entries(1, 0);

/// Per-CPU scratch space to build a new per-destination entry.
#[map(name = "DST_SCRATCH")]
static DST_SCRATCH: PerCpuArray<DstState> = PerCpuArray::with_max_entries(1, 0);

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

#[xdp]
pub fn picket_xdp(ctx: XdpContext) -> u32 {
    let pkt = Direct {
        start: ctx.data(),
        end: ctx.data_end(),
        wire_len: ctx.data_end() - ctx.data(),
    };
    account(&pkt, DIR_INGRESS);
    xdp_action::XDP_PASS
}

/// Returns XDP_PASS and nothing else: the baseline `picket bench` measures against.
#[xdp]
pub fn picket_pass(_ctx: XdpContext) -> u32 {
    xdp_action::XDP_PASS
}

#[classifier]
pub fn picket_tc_ingress(ctx: TcContext) -> i32 {
    tc_account(&ctx, DIR_INGRESS);
    TC_ACT_OK
}

#[classifier]
pub fn picket_tc_egress(ctx: TcContext) -> i32 {
    tc_account(&ctx, DIR_EGRESS);
    TC_ACT_OK
}

/// Bytes of headers the classifier may need: Ethernet + 2 VLAN tags + IPv6 + 6 extension
/// headers of common sizes + TCP. Pulled into the linear area when the skb is non-linear.
const TC_PULL_LEN: u32 = 192;

#[inline(always)]
fn tc_account(ctx: &TcContext, dir: u32) {
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
    account(&pkt, dir);
}

#[inline(always)]
fn account(pkt: &Direct, dir: u32) {
    let Some(g) = GLOBALS.get_ptr_mut(dir) else {
        return;
    };
    // SAFETY: per-CPU slot, only this program on this CPU touches it.
    let g = unsafe { &mut *g };
    let s = match classify_eth(pkt) {
        Ok(s) => s,
        Err(e) => {
            g.observe_error(e, pkt.wire_len as u64);
            return;
        }
    };
    g.observe(&s);
    if !s.is_ip() {
        return;
    }
    let (epoch, flags) = match CONFIG.get(0) {
        Some(c) => (c.epoch, c.flags),
        None => (0, 0),
    };
    // SAFETY: helper without arguments.
    let now = unsafe { bpf_ktime_get_coarse_ns() };
    if dir == DIR_INGRESS {
        update_source(g, &s, now, epoch, flags);
    }
    if flags & CONFIG_TRACK_DESTS != 0 {
        match dst_update(&s, dir) {
            DstUpdate::SynIn => update_dest(g, AddrKey { addr: s.dst }, &s, now, epoch, true),
            DstUpdate::ReplyOut => update_dest(g, AddrKey { addr: s.src }, &s, now, epoch, false),
            DstUpdate::None => {}
        }
    }
}

// Map values go by reference: by value they would be copied onto the 512-byte BPF stack.
#[allow(clippy::needless_borrows_for_generic_args)]
#[inline(always)]
fn update_source(g: &mut Globals, s: &Summary, now: u64, epoch: u64, flags: u64) {
    let key = AddrKey { addr: s.src };
    if let Some(v) = SOURCES.get_ptr_mut(key) {
        // SAFETY: LRU values are preallocated; concurrent updates are tolerated (counters
        // are atomic, the sets may at worst miss a value).
        unsafe { (*v).observe::<AtomicAdd>(s, now, epoch) };
        return;
    }
    // Under a flood of new sources, admit only at the second sighting.
    if flags & CONFIG_ADMIT_ON_SECOND != 0 {
        let (idx, tag) = pending_slot(&s.src);
        if let Some(slot) = PENDING.get_ptr_mut(idx) {
            // SAFETY: array slot; races only cost an extra deferral or admission.
            if !admit_on_second(unsafe { &mut *slot }, tag) {
                g.src_deferred += 1;
                return;
            }
        }
    }
    let Some(scratch) = SRC_SCRATCH.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: per-CPU scratch slot owned by this program invocation.
    let st = unsafe { &mut *scratch };
    st.init(now, epoch);
    st.observe::<PlainAdd>(s, now, epoch);
    match SOURCES.insert(&key, &*st, BPF_NOEXIST as u64) {
        Ok(()) => g.src_inserts += 1,
        Err(_) => {
            // Another CPU may have created it meanwhile: account there instead.
            match SOURCES.get_ptr_mut(key) {
                Some(v) => unsafe { (*v).observe::<AtomicAdd>(s, now, epoch) },
                None => g.src_failures += 1,
            }
        }
    }
}

// Map values go by reference: by value they would be copied onto the 512-byte BPF stack.
#[allow(clippy::needless_borrows_for_generic_args)]
#[inline(always)]
fn update_dest(g: &mut Globals, key: AddrKey, s: &Summary, now: u64, epoch: u64, syn_in: bool) {
    if let Some(v) = DESTS.get_ptr_mut(key) {
        // SAFETY: as for SOURCES.
        let v = unsafe { &mut *v };
        if syn_in {
            v.observe_syn::<AtomicAdd>(s, now, epoch);
        } else {
            v.observe_reply::<AtomicAdd>(s, now);
        }
        return;
    }
    let Some(scratch) = DST_SCRATCH.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: per-CPU scratch slot owned by this program invocation.
    let st = unsafe { &mut *scratch };
    st.init(now, epoch);
    if syn_in {
        st.observe_syn::<PlainAdd>(s, now, epoch);
    } else {
        st.observe_reply::<PlainAdd>(s, now);
    }
    match DESTS.insert(&key, &*st, BPF_NOEXIST as u64) {
        Ok(()) => g.dst_inserts += 1,
        Err(_) => match DESTS.get_ptr_mut(key) {
            Some(v) => {
                let v = unsafe { &mut *v };
                if syn_in {
                    v.observe_syn::<AtomicAdd>(s, now, epoch);
                } else {
                    v.observe_reply::<AtomicAdd>(s, now);
                }
            }
            None => g.dst_failures += 1,
        },
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
