//! Capture without BPF programs: AF_PACKET sockets with a TPACKET_V3 receive ring (see the
//! kernel's `Documentation/networking/packet_mmap.rst`), one per CPU in a `PACKET_FANOUT_CPU`
//! group, for the live agent's `--hook afpacket` and for `picket analyze --live`.
//!
//! The kernel fills fixed-size blocks of variable-length frames and hands a block over when
//! it is full or its timeout expires; user space reads it and gives it back. Every offset
//! and length read from a block is checked against the block before use: the kernel is
//! trusted with the memory, not the arithmetic. Memory is fixed at open (the ring), and the
//! sockets close with the process however it ends, so nothing is left attached.

use std::{
    ffi::CString,
    io,
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
    ptr::NonNull,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering},
    },
    thread::JoinHandle,
};

use anyhow::{Context as _, Result, anyhow, bail};

/// Size of one ring block: large enough for a GRO super-packet, small enough that a quiet
/// link still hands blocks over at the timeout rather than holding many packets.
pub const BLOCK_BYTES: u32 = 1 << 20;
/// Smallest ring: two blocks, so the kernel fills one while user space reads the other.
pub const MIN_RING_BYTES: u64 = 2 * BLOCK_BYTES as u64;
/// Largest ring per socket.
pub const MAX_RING_BYTES: u64 = 1 << 30;
/// Default ring size per socket.
pub const DEFAULT_RING_BYTES: u64 = 8 << 20;
/// A block is handed over at most this long after its first packet: the added latency.
const BLOCK_TIMEOUT_MS: u32 = 10;
/// How often a waiting reader checks whether it should stop.
const POLL_MS: i32 = 100;
/// Most sockets in one fanout group.
const MAX_FANOUT: usize = 16;

/// `tpacket_block_desc` and `tpacket3_hdr` field offsets (linux/if_packet.h).
mod layout {
    pub const BLOCK_STATUS: usize = 8;
    pub const NUM_PKTS: usize = 12;
    pub const FIRST_PKT: usize = 16;
    pub const BLK_LEN: usize = 20;
    pub const NEXT_OFFSET: usize = 0;
    pub const SEC: usize = 4;
    pub const NSEC: usize = 8;
    pub const SNAPLEN: usize = 12;
    pub const LEN: usize = 16;
    pub const STATUS: usize = 20;
    pub const MAC: usize = 24;
    pub const VLAN_TCI: usize = 32;
    pub const VLAN_TPID: usize = 36;
    /// `TPACKET_ALIGN(sizeof(struct tpacket3_hdr))`: where `sockaddr_ll` starts.
    pub const SLL: usize = 48;
    pub const SLL_PKTTYPE: usize = SLL + 10;
    /// The frame header with its `sockaddr_ll`.
    pub const HDR_LEN: usize = SLL + 20;
}

/// What to capture.
#[derive(Clone, Debug)]
pub struct RingConfig {
    /// Interface name.
    pub iface: String,
    /// Ring size per socket, in bytes (rounded down to whole blocks).
    pub ring_bytes: u64,
    /// Also capture the host's own outgoing packets.
    pub outgoing: bool,
    /// A classic BPF filter (`SO_ATTACH_FILTER`) run before the ring.
    pub filter: Option<Vec<libc::sock_filter>>,
}

/// One packet in a block.
#[derive(Debug)]
pub struct Packet<'a> {
    /// Capture time, ns since the Unix epoch.
    pub ts_ns: u64,
    /// Length on the wire.
    pub wire_len: u32,
    /// The captured bytes (from the link-layer header).
    pub data: &'a [u8],
    /// Sent by this host (`PACKET_OUTGOING`).
    pub outgoing: bool,
}

/// An AF_PACKET socket with its mapped TPACKET_V3 ring.
pub struct Ring {
    fd: OwnedFd,
    map: NonNull<u8>,
    map_len: usize,
    blocks: usize,
    next: usize,
    linktype: u32,
    /// `tp_packets` and `tp_drops` so far (the kernel resets them at each read).
    packets: u64,
    drops: u64,
}

// SAFETY: the ring is owned by one reader at a time; the mapping lives as long as the Ring.
unsafe impl Send for Ring {}

impl Drop for Ring {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `open`, unmapped once; the socket closes after.
        unsafe { libc::munmap(self.map.as_ptr().cast(), self.map_len) };
    }
}

fn os_err(what: &str) -> anyhow::Error {
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::EPERM | libc::EACCES) => anyhow!(
            "permission denied opening an AF_PACKET socket: run as root or grant CAP_NET_RAW"
        ),
        _ => anyhow!("{what}: {e}"),
    }
}

fn setsockopt<T>(fd: &OwnedFd, level: i32, name: i32, val: &T, what: &str) -> Result<()> {
    // SAFETY: `val` points to a live T of the size given.
    let r = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            std::ptr::from_ref(val).cast(),
            size_of::<T>() as libc::socklen_t,
        )
    };
    if r != 0 {
        return Err(os_err(what));
    }
    Ok(())
}

/// The interface's index, or the one clear error for a name that is not there.
pub fn ifindex(iface: &str) -> Result<u32> {
    let name = CString::new(iface).map_err(|_| anyhow!("bad interface name {iface:?}"))?;
    // SAFETY: NUL-terminated name.
    let idx = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if idx == 0 {
        bail!("unknown interface {iface:?} (see `ip link`)");
    }
    Ok(idx)
}

/// The pcap link type of the interface's frames: Ethernet, or raw IP for tunnels without a
/// link layer.
pub fn linktype_of(iface: &str) -> u32 {
    let hatype = std::fs::read_to_string(format!("/sys/class/net/{iface}/type"))
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok());
    match hatype {
        // ARPHRD_NONE, ARPHRD_RAWIP: IP without a link layer.
        Some(0xfffe | 519) => picket_capture::link::LINKTYPE_RAW,
        _ => picket_capture::link::LINKTYPE_ETHERNET,
    }
}

impl Ring {
    /// Opens a socket bound to the interface with a ring of `cfg.ring_bytes`, joined to
    /// fanout group `fanout` when given.
    pub fn open(cfg: &RingConfig, fanout: Option<u16>) -> Result<Ring> {
        let idx = ifindex(&cfg.iface)?;
        let proto = (libc::ETH_P_ALL as u16).to_be();
        // Protocol 0: no packet arrives before the bind names the interface and ETH_P_ALL
        // (else the ring would get other interfaces' packets meanwhile).
        // SAFETY: plain syscall; the descriptor is owned at once.
        let raw = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        if raw < 0 {
            return Err(os_err("cannot open an AF_PACKET socket"));
        }
        // SAFETY: a fresh descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // The filter goes on before the bind, so no unfiltered packet reaches the ring.
        if let Some(f) = &cfg.filter {
            let prog = libc::sock_fprog {
                len: u16::try_from(f.len()).map_err(|_| anyhow!("filter too long"))?,
                filter: f.as_ptr().cast_mut(),
            };
            setsockopt(
                &fd,
                libc::SOL_SOCKET,
                libc::SO_ATTACH_FILTER,
                &prog,
                "the kernel rejected the capture filter",
            )?;
        }
        let version = libc::tpacket_versions::TPACKET_V3 as i32;
        setsockopt(
            &fd,
            libc::SOL_PACKET,
            libc::PACKET_VERSION,
            &version,
            "this kernel has no TPACKET_V3",
        )?;
        if !cfg.outgoing {
            let one: i32 = 1;
            // Kernels before 4.20 lack it: outgoing packets are then skipped when read.
            let _ = setsockopt(
                &fd,
                libc::SOL_PACKET,
                libc::PACKET_IGNORE_OUTGOING,
                &one,
                "",
            );
        }
        let blocks = (cfg.ring_bytes / u64::from(BLOCK_BYTES))
            .clamp(2, MAX_RING_BYTES / u64::from(BLOCK_BYTES)) as u32;
        let req = libc::tpacket_req3 {
            tp_block_size: BLOCK_BYTES,
            tp_block_nr: blocks,
            // Frames are variable-sized in V3; the frame fields only need to be consistent.
            tp_frame_size: 2048,
            tp_frame_nr: blocks * (BLOCK_BYTES / 2048),
            tp_retire_blk_tov: BLOCK_TIMEOUT_MS,
            tp_sizeof_priv: 0,
            tp_feature_req_word: 0,
        };
        setsockopt(
            &fd,
            libc::SOL_PACKET,
            libc::PACKET_RX_RING,
            &req,
            "cannot set up the AF_PACKET ring (lower --afpacket-ring-bytes?)",
        )?;
        let map_len = blocks as usize * BLOCK_BYTES as usize;
        let map_with = |extra: i32| {
            // SAFETY: maps the ring just configured on this socket; checked for failure.
            let m = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    map_len,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_SHARED | extra,
                    fd.as_raw_fd(),
                    0,
                )
            };
            (m != libc::MAP_FAILED).then_some(m)
        };
        // Locked, so the kernel never waits for a page fault; under a low RLIMIT_MEMLOCK
        // (no CAP_IPC_LOCK) unlocked instead.
        let map = map_with(libc::MAP_LOCKED)
            .or_else(|| map_with(0))
            .ok_or_else(|| os_err("cannot map the AF_PACKET ring"))?;
        let map = NonNull::new(map.cast::<u8>()).ok_or_else(|| anyhow!("mmap returned NULL"))?;
        let ring = Ring {
            fd,
            map,
            map_len,
            blocks: blocks as usize,
            next: 0,
            linktype: linktype_of(&cfg.iface),
            packets: 0,
            drops: 0,
        };
        // SAFETY: sockaddr_ll is plain data; zeroed is a valid value.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = proto;
        sll.sll_ifindex = idx as i32;
        // SAFETY: binds to a valid sockaddr_ll of the size given.
        let r = unsafe {
            libc::bind(
                ring.fd.as_raw_fd(),
                std::ptr::from_ref(&sll).cast(),
                size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if r != 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::ENODEV) {
                bail!("unknown interface {:?} (see `ip link`)", cfg.iface);
            }
            bail!("cannot bind an AF_PACKET socket to {}: {e}", cfg.iface);
        }
        if let Some(group) = fanout {
            let arg: u32 = u32::from(group) | (libc::PACKET_FANOUT_CPU << 16);
            setsockopt(
                &ring.fd,
                libc::SOL_PACKET,
                libc::PACKET_FANOUT,
                &arg,
                "cannot join the AF_PACKET fanout group",
            )?;
        }
        Ok(ring)
    }

    /// The pcap link type of the captured frames.
    pub fn linktype(&self) -> u32 {
        self.linktype
    }

    fn block_status(&self, i: usize) -> &AtomicU32 {
        // SAFETY: block `i` < blocks lies inside the mapping, which is page-aligned, so the
        // status word is aligned; the kernel and this reader hand it over atomically.
        unsafe {
            AtomicU32::from_ptr(
                self.map
                    .as_ptr()
                    .add(i * BLOCK_BYTES as usize + layout::BLOCK_STATUS)
                    .cast(),
            )
        }
    }

    /// Waits up to `timeout_ms` for the next block and passes its packets to `each`, then
    /// gives the block back. Returns the number of packets read.
    pub fn read_block(
        &mut self,
        timeout_ms: i32,
        each: &mut dyn FnMut(&Packet<'_>),
    ) -> Result<usize> {
        let i = self.next;
        if self.block_status(i).load(Ordering::Acquire) & libc::TP_STATUS_USER == 0 {
            let mut pfd = libc::pollfd {
                fd: self.fd.as_raw_fd(),
                events: libc::POLLIN | libc::POLLERR,
                revents: 0,
            };
            // SAFETY: one valid pollfd.
            let r = unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
            if r < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    return Ok(0);
                }
                return Err(anyhow!("poll on the AF_PACKET socket: {e}"));
            }
            if pfd.revents & libc::POLLERR != 0 {
                // The interface went down (ENETDOWN): reading the error clears it, and the
                // socket captures again when the interface comes back up (a deleted one is
                // noticed by the live loop).
                self.take_error();
                if pfd.revents & libc::POLLIN == 0 {
                    std::thread::sleep(std::time::Duration::from_millis(u64::from(
                        timeout_ms.unsigned_abs(),
                    )));
                }
            }
            if self.block_status(i).load(Ordering::Acquire) & libc::TP_STATUS_USER == 0 {
                return Ok(0);
            }
        }
        // SAFETY: the block belongs to user space until its status is written back below;
        // it lies inside the mapping.
        let block = unsafe {
            std::slice::from_raw_parts(
                self.map.as_ptr().add(i * BLOCK_BYTES as usize),
                BLOCK_BYTES as usize,
            )
        };
        let n = walk_block(block, &mut |p| each(p));
        self.block_status(i)
            .store(libc::TP_STATUS_KERNEL, Ordering::Release);
        self.next = (i + 1) % self.blocks;
        Ok(n)
    }

    /// Reads the socket option `name` into `val`; false when the kernel refuses.
    fn getsockopt<T>(&self, level: i32, name: i32, val: &mut T) -> bool {
        let mut len = size_of::<T>() as libc::socklen_t;
        // SAFETY: `val` and `len` are valid for the kernel to write, `len` bytes at most.
        let r = unsafe {
            libc::getsockopt(
                self.fd.as_raw_fd(),
                level,
                name,
                std::ptr::from_mut(val).cast(),
                &mut len,
            )
        };
        r == 0
    }

    /// Reads and clears the socket's pending error.
    fn take_error(&self) {
        let mut err: i32 = 0;
        self.getsockopt(libc::SOL_SOCKET, libc::SO_ERROR, &mut err);
    }

    /// Packets received and dropped by the kernel (ring full) so far.
    pub fn stats(&mut self) -> (u64, u64) {
        let mut st = libc::tpacket_stats_v3 {
            tp_packets: 0,
            tp_drops: 0,
            tp_freeze_q_cnt: 0,
        };
        if self.getsockopt(libc::SOL_PACKET, libc::PACKET_STATISTICS, &mut st) {
            self.packets += u64::from(st.tp_packets);
            self.drops += u64::from(st.tp_drops);
        }
        (self.packets, self.drops)
    }
}

fn u16_at(b: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(off..off + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(off..off + 4)?.try_into().ok()?))
}

/// Largest frame handed on with its VLAN tag put back (bigger ones go on without it).
const RETAG_MAX: usize = 16 * 1024;

/// Reads the frames of one block; stops at the first header that does not fit in it.
fn walk_block(block: &[u8], each: &mut dyn FnMut(&Packet<'_>)) -> usize {
    let (Some(num), Some(first), Some(blk_len)) = (
        u32_at(block, layout::NUM_PKTS),
        u32_at(block, layout::FIRST_PKT),
        u32_at(block, layout::BLK_LEN),
    ) else {
        return 0;
    };
    let end = (blk_len as usize).min(block.len());
    let mut off = first as usize;
    let mut retag = Vec::new();
    let mut n = 0;
    for _ in 0..num {
        let Some(hdr) = off
            .checked_add(layout::HDR_LEN)
            .and_then(|e| block.get(off..e.min(end)))
        else {
            break;
        };
        if hdr.len() < layout::HDR_LEN {
            break;
        }
        let field = |o| u32_at(hdr, o).unwrap_or(0);
        let (mac, snap) = (
            usize::from(u16_at(hdr, layout::MAC).unwrap_or(0)),
            field(layout::SNAPLEN) as usize,
        );
        let Some(data) = off
            .checked_add(mac)
            .and_then(|s| block.get(s..s.checked_add(snap)?.min(end)))
        else {
            break;
        };
        let outgoing = hdr[layout::SLL_PKTTYPE] == libc::PACKET_OUTGOING;
        let mut wire_len = field(layout::LEN);
        let ts_ns = u64::from(field(layout::SEC)) * 1_000_000_000 + u64::from(field(layout::NSEC));
        // The kernel strips a VLAN tag into the header: put it back, as XDP would see it.
        let status = field(layout::STATUS);
        let data = if status & libc::TP_STATUS_VLAN_VALID != 0
            && data.len() >= 12
            && data.len() <= RETAG_MAX
        {
            let tpid = if status & libc::TP_STATUS_VLAN_TPID_VALID != 0 {
                u16_at(hdr, layout::VLAN_TPID).unwrap_or(0x8100)
            } else {
                0x8100
            };
            let tci = field(layout::VLAN_TCI) as u16;
            retag.clear();
            retag.extend_from_slice(&data[..12]);
            retag.extend_from_slice(&tpid.to_be_bytes());
            retag.extend_from_slice(&tci.to_be_bytes());
            retag.extend_from_slice(&data[12..]);
            wire_len += 4;
            &retag[..]
        } else {
            data
        };
        each(&Packet {
            ts_ns,
            wire_len: wire_len.max(data.len() as u32),
            data,
            outgoing,
        });
        n += 1;
        let next = field(layout::NEXT_OFFSET) as usize;
        if next == 0 {
            break;
        }
        off = match off.checked_add(next) {
            Some(o) if o < end => o,
            _ => break,
        };
    }
    n
}

/// Counters shared by the readers.
#[derive(Debug, Default)]
pub struct CaptureStats {
    /// Packets the kernel put in the rings.
    pub packets: AtomicU64,
    /// Packets the kernel dropped because a ring was full.
    pub drops: AtomicU64,
}

/// What a reader thread does with its packets.
pub trait Sink: Send {
    /// One packet of the block being read, in frames of `linktype`.
    fn packet(&mut self, linktype: u32, p: &Packet<'_>);
    /// The block is done (e.g. to apply what `packet` collected under one lock).
    fn end_block(&mut self) {}
}

/// Reader threads, one per ring, each passing its packets to a [`Sink`]; stopped (and the
/// sockets closed) on drop.
pub struct Capture {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<Result<()>>>,
    /// Kernel counters, summed over the rings.
    pub stats: Arc<CaptureStats>,
    /// Sockets open.
    pub rings: usize,
}

impl Capture {
    /// Opens `n` rings (at least one, at most 16) on the interface in one fanout group, and
    /// a reader thread per ring that hands its packets to the sink `make(ring_index)`.
    pub fn start(
        cfg: &RingConfig,
        n: usize,
        mut make: impl FnMut(usize) -> Box<dyn Sink>,
    ) -> Result<Capture> {
        let n = n.clamp(1, MAX_FANOUT);
        let mut group = (std::process::id() as u16) ^ (ifindex(&cfg.iface)? as u16).rotate_left(8);
        let mut rings = Vec::with_capacity(n);
        // A fanout id is per network namespace: another process may hold this one (then the
        // kernel answers EINVAL or EALREADY); try a few others.
        let mut tries = 0;
        while rings.len() < n {
            match Ring::open(cfg, (n > 1).then_some(group)) {
                Ok(r) => rings.push(r),
                Err(e)
                    if rings.is_empty()
                        && n > 1
                        && tries < 16
                        && e.to_string().contains("fanout") =>
                {
                    tries += 1;
                    group = group.wrapping_add(0x9e37);
                }
                Err(e) => return Err(e),
            }
        }
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(CaptureStats::default());
        let mut threads = Vec::new();
        for (i, mut ring) in rings.into_iter().enumerate() {
            let (stop, stats) = (stop.clone(), stats.clone());
            let mut sink = make(i);
            let outgoing = cfg.outgoing;
            let t = std::thread::Builder::new()
                .name(format!("picket-ring{i}"))
                .spawn(move || -> Result<()> {
                    let (mut seen, mut dropped) = (0, 0);
                    let lt = ring.linktype();
                    while !stop.load(Ordering::Relaxed) {
                        let n = ring.read_block(POLL_MS, &mut |p| {
                            if outgoing || !p.outgoing {
                                sink.packet(lt, p);
                            }
                        })?;
                        if n > 0 {
                            sink.end_block();
                        }
                        let (p, d) = ring.stats();
                        stats.packets.fetch_add(p - seen, Ordering::Relaxed);
                        stats.drops.fetch_add(d - dropped, Ordering::Relaxed);
                        (seen, dropped) = (p, d);
                    }
                    Ok(())
                })
                .context("cannot start a capture thread")?;
            threads.push(t);
        }
        Ok(Capture {
            stop,
            threads,
            stats,
            rings: n,
        })
    }

    /// Whether a reader stopped on an error (the interface went away): that error.
    pub fn failed(&mut self) -> Option<anyhow::Error> {
        let i = self.threads.iter().position(JoinHandle::is_finished)?;
        match self.threads.swap_remove(i).join() {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(e),
            Err(_) => Some(anyhow!("a capture thread panicked")),
        }
    }

    /// Kernel drops so far.
    pub fn drops(&self) -> u64 {
        self.stats.drops.load(Ordering::Relaxed)
    }

    /// Stops the readers and closes the sockets.
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Compiles a capture filter (tcpdump syntax) for the link type with libpcap into classic
/// BPF instructions for `SO_ATTACH_FILTER`; a bad filter is one clear error.
#[cfg(feature = "analyze")]
pub fn compile_filter(expr: &str, linktype: u32) -> Result<Vec<libc::sock_filter>> {
    let dead = pcap::Capture::dead(pcap::Linktype(linktype as i32))
        .map_err(|e| anyhow!("cannot compile the capture filter: {e}"))?;
    let prog = dead
        .compile(expr, true)
        .map_err(|e| anyhow!("bad capture filter {expr:?}: {e}"))?;
    // The instructions' public form is tcpdump -ddd's: "code jt jf k".
    prog.get_instructions()
        .iter()
        .map(|ins| {
            let text = ins.to_string();
            let f: Vec<u64> = text.split(' ').filter_map(|x| x.parse().ok()).collect();
            match f[..] {
                [code, jt, jf, k] => Ok(libc::sock_filter {
                    code: code as u16,
                    jt: jt as u8,
                    jf: jf as u8,
                    k: k as u32,
                }),
                _ => Err(anyhow!("unexpected compiled filter instruction {text:?}")),
            }
        })
        .collect()
}

/// The number of rings for `--hook afpacket`: one per CPU this process may run on.
pub fn default_rings() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(block: &mut Vec<u8>, off: usize, next: u32, data: &[u8], pkttype: u8) {
        let mac = layout::HDR_LEN + 2;
        block.resize(block.len().max(off + mac + data.len()), 0);
        block[off..off + 4].copy_from_slice(&next.to_ne_bytes());
        block[off + layout::SEC..off + layout::SEC + 4].copy_from_slice(&7u32.to_ne_bytes());
        block[off + layout::SNAPLEN..off + layout::SNAPLEN + 4]
            .copy_from_slice(&(data.len() as u32).to_ne_bytes());
        block[off + layout::LEN..off + layout::LEN + 4]
            .copy_from_slice(&(data.len() as u32 + 10).to_ne_bytes());
        block[off + layout::MAC..off + layout::MAC + 2]
            .copy_from_slice(&(mac as u16).to_ne_bytes());
        block[off + layout::SLL_PKTTYPE] = pkttype;
        block[off + mac..off + mac + data.len()].copy_from_slice(data);
    }

    fn header(block: &mut [u8], num: u32, first: u32) {
        let len = block.len() as u32;
        block[layout::NUM_PKTS..layout::NUM_PKTS + 4].copy_from_slice(&num.to_ne_bytes());
        block[layout::FIRST_PKT..layout::FIRST_PKT + 4].copy_from_slice(&first.to_ne_bytes());
        block[layout::BLK_LEN..layout::BLK_LEN + 4].copy_from_slice(&len.to_ne_bytes());
    }

    fn read(block: &[u8]) -> Vec<(u64, u32, Vec<u8>, bool)> {
        let mut out = Vec::new();
        walk_block(block, &mut |p| {
            out.push((p.ts_ns, p.wire_len, p.data.to_vec(), p.outgoing))
        });
        out
    }

    #[test]
    fn frames_are_read_in_order() {
        let mut b = vec![0u8; 48];
        frame(&mut b, 48, 128, b"first", 0);
        frame(&mut b, 176, 0, b"second", libc::PACKET_OUTGOING);
        header(&mut b, 2, 48);
        let got = read(&b);
        assert_eq!(
            got,
            vec![
                (7_000_000_000, 15, b"first".to_vec(), false),
                (7_000_000_000, 16, b"second".to_vec(), true)
            ]
        );
    }

    #[test]
    fn lying_offsets_and_lengths_stay_inside_the_block() {
        let mut b = vec![0u8; 48];
        frame(&mut b, 48, 100_000, b"ok", 0);
        header(&mut b, 5, 48);
        assert_eq!(
            read(&b).len(),
            1,
            "a next offset past the block ends the walk"
        );
        // A snaplen past the end is cut at the block's end.
        let mut b = vec![0u8; 48];
        frame(&mut b, 48, 0, b"abcd", 0);
        b[48 + layout::SNAPLEN..48 + layout::SNAPLEN + 4].copy_from_slice(&u32::MAX.to_ne_bytes());
        header(&mut b, 1, 48);
        assert_eq!(read(&b)[0].2, b"abcd");
        // A first offset or a count beyond the block reads nothing, without panicking.
        let mut b = vec![0u8; 64];
        header(&mut b, u32::MAX, u32::MAX);
        assert!(read(&b).is_empty());
        assert!(read(&[0u8; 10]).is_empty());
    }

    #[cfg(feature = "analyze")]
    #[test]
    fn filters_compile_and_bad_ones_fail_clearly() {
        let ok = compile_filter("tcp port 80", 1).unwrap();
        assert!(ok.len() > 4 && ok.last().is_some_and(|i| i.code == 6));
        let e = compile_filter("tcp prot 80", 1).unwrap_err().to_string();
        assert!(e.starts_with("bad capture filter \"tcp prot 80\""), "{e}");
    }
}
