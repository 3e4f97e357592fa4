//! Loads the BPF object, sizes its maps and attaches its programs to interfaces through
//! links, so the kernel detaches them when the process exits for any reason (even `kill -9`).

use std::{ffi::CString, fs::File, os::fd::AsRawFd, path::PathBuf};

use crate::hook_choice::{self, HookChoice};
use agent_common::{
    conv::MAP_CONV,
    slots::{MAP_DST, MAP_SRC, slots_per_cpu, table_entries},
    state::{MAP_BLOCKED, MAP_SOURCES},
};
use anyhow::{Context as _, Result, anyhow, bail};
use aya::{
    Ebpf, EbpfError, EbpfLoader,
    programs::{ProgramError, SchedClassifier, TcAttachType, Xdp, XdpMode, tc},
};

/// The BPF object built from `agent-ebpf`.
pub static BPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/picket"));

/// XDP program name.
pub const PROG_XDP: &str = "picket_xdp";
/// TC ingress program name.
pub const PROG_TC_INGRESS: &str = "picket_tc_ingress";
/// TC egress program name.
pub const PROG_TC_EGRESS: &str = "picket_tc_egress";
/// XDP program for devices without an Ethernet header (packets start at IP).
pub const PROG_XDP_IP: &str = "picket_xdp_ip";
/// TC ingress program for devices without an Ethernet header.
pub const PROG_TC_IP_INGRESS: &str = "picket_tc_ip_ingress";
/// TC egress program for devices without an Ethernet header.
pub const PROG_TC_IP_EGRESS: &str = "picket_tc_ip_egress";
/// Every program the agent may attach (all are verified at load).
pub const PROGRAMS: [&str; 6] = [
    PROG_XDP,
    PROG_TC_INGRESS,
    PROG_TC_EGRESS,
    PROG_XDP_IP,
    PROG_TC_IP_INGRESS,
    PROG_TC_IP_EGRESS,
];

/// Where ingress packets are observed.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Hook {
    /// Per interface: TC on veth (where XDP costs 8–20 %) and on devices without an
    /// Ethernet header, XDP elsewhere (and everywhere with `--block`); AF_PACKET when the
    /// BPF programs cannot be loaded or attached.
    Auto,
    /// XDP: earliest and cheapest; sees packets before the stack.
    Xdp,
    /// TC clsact ingress: after the stack built the socket buffer (e.g. when XDP is in use
    /// by another program).
    Tc,
    /// No BPF: AF_PACKET sockets with TPACKET_V3 rings, one per CPU (needs only
    /// CAP_NET_RAW); the same detection in user space, at a higher CPU cost.
    Afpacket,
}

/// XDP attach mode.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum XdpModeArg {
    /// Driver (native) mode, falling back to skb (generic) mode.
    Auto,
    /// Driver (native) mode only.
    Driver,
    /// Generic skb mode.
    Skb,
}

/// Map sizes.
#[derive(Clone, Copy, Debug)]
pub struct MapSizes {
    /// Per-source table capacity (rounded up to a power of two).
    pub sources: u32,
    /// Slots of the sender table per bank, over all CPUs.
    pub src_slots: u32,
    /// Slots of the receiver table per bank, over all CPUs.
    pub dst_slots: u32,
    /// Conversation records per bank (rounded down to a power of two).
    pub conv_slots: u32,
    /// Blocked sources (`--block`).
    pub blocked: u32,
}

/// CPUs the kernel may run programs on (`/sys/devices/system/cpu/possible`): the number of
/// partitions of the slot tables.
pub fn possible_cpus() -> Result<u32> {
    let n = aya::util::nr_cpus().map_err(|(what, e)| anyhow!("cannot read {what}: {e}"))?;
    u32::try_from(n.max(1)).context("too many possible CPUs")
}

/// Loads the object with the given map sizes and loads (verifies) every program.
pub fn load(sizes: MapSizes) -> Result<Ebpf> {
    raise_memlock();
    let cpus = possible_cpus()?;
    let table = |total| table_entries(slots_per_cpu(total, cpus), cpus);
    let mut ebpf = EbpfLoader::new()
        .map_max_entries(
            MAP_SOURCES,
            agent_common::sources::entries_for(sizes.sources),
        )
        .map_max_entries(MAP_SRC, table(sizes.src_slots))
        .map_max_entries(MAP_DST, table(sizes.dst_slots))
        .map_max_entries(MAP_CONV, 2 * slots_per_cpu(sizes.conv_slots, 1))
        .map_max_entries(MAP_BLOCKED, sizes.blocked)
        .load(BPF_OBJECT)
        .map_err(explain_load_error)?;
    for name in PROGRAMS {
        let prog = ebpf
            .program_mut(name)
            .ok_or_else(|| anyhow!("program {name} missing"))?;
        let res = match prog {
            aya::programs::Program::Xdp(p) => p.load(),
            aya::programs::Program::SchedClassifier(p) => p.load(),
            _ => bail!("program {name} has an unexpected type"),
        };
        res.map_err(|e| explain_program_error(name, e))?;
    }
    Ok(ebpf)
}

/// A hook a program attaches to; displayed as in error messages ("XDP", "TC ingress").
#[derive(Clone, Copy, Debug, PartialEq, Eq, strum::Display)]
pub enum HookPoint {
    /// The XDP hook, in whichever mode.
    #[strum(serialize = "XDP")]
    Xdp,
    /// TC clsact ingress.
    #[strum(serialize = "TC ingress")]
    TcIngress,
    /// TC clsact egress.
    #[strum(serialize = "TC egress")]
    TcEgress,
}

/// The XDP mode a program got attached in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, strum::Display)]
#[strum(serialize_all = "snake_case")]
pub enum AttachedXdpMode {
    /// Driver (native) mode.
    Driver,
    /// Generic skb mode.
    Skb,
}

impl AttachedXdpMode {
    fn flags(self) -> XdpMode {
        match self {
            AttachedXdpMode::Driver => XdpMode::Driver,
            AttachedXdpMode::Skb => XdpMode::Skb,
        }
    }
}

/// What got attached; displayed as in the "attached" lines: "xdp (driver)", "tc ingress",
/// "tc egress".
#[derive(Clone, Copy, Debug, PartialEq, Eq, strum::Display)]
pub enum Attached {
    /// The XDP program, in this mode.
    #[strum(to_string = "xdp ({0})")]
    Xdp(AttachedXdpMode),
    /// The TC ingress program.
    #[strum(to_string = "tc ingress")]
    TcIngress,
    /// The TC egress program.
    #[strum(to_string = "tc egress")]
    TcEgress,
}

/// One attached program, for messages.
#[derive(Clone, Debug)]
pub struct Attachment {
    /// Interface name.
    pub iface: String,
    /// What is attached.
    pub what: Attached,
}

/// Holds a per-interface lock so that two agents never watch the same interface; the lock
/// file is removed when the agent exits normally (a killed agent's lock is released by the
/// kernel and the file reused by the next one).
#[derive(Debug)]
pub struct IfaceLock {
    _file: File,
    path: PathBuf,
}

impl Drop for IfaceLock {
    fn drop(&mut self) {
        // Unlink while still holding the lock, so no other agent can hold this file then.
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Takes the per-interface lock, failing if another picket holds it. Interfaces are named
/// per network namespace, so the lock name carries the namespace's inode as well. The lock
/// lives in `$RUNTIME_DIRECTORY` when set (systemd's `RuntimeDirectory=`), else in
/// `/run/picket`.
pub fn lock_iface(iface: &str) -> Result<IfaceLock> {
    let dir = std::env::var_os("RUNTIME_DIRECTORY")
        .filter(|d| !d.is_empty())
        .map_or_else(|| PathBuf::from("/run/picket"), PathBuf::from);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let netns = std::fs::metadata("/proc/self/ns/net")
        .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
        .context("cannot identify the network namespace (/proc/self/ns/net)")?;
    let path = dir.join(format!("netns{netns}-{iface}.lock"));
    let file = File::create(&path).with_context(|| format!("cannot open {}", path.display()))?;
    // SAFETY: flock on a valid fd.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        bail!(
            "another picket is already attached to {iface} (lock {} is held)",
            path.display()
        );
    }
    Ok(IfaceLock { _file: file, path })
}

/// The interface's index, failing with a clear message when it does not exist.
pub fn check_iface(iface: &str) -> Result<u32> {
    let c = CString::new(iface).map_err(|_| anyhow!("invalid interface name {iface:?}"))?;
    // SAFETY: valid C string.
    match unsafe { libc::if_nametoindex(c.as_ptr()) } {
        0 => bail!("unknown interface {iface:?} (see `ip link`)"),
        index => Ok(index),
    }
}

/// Fails when a watched interface no longer exists (or was replaced by another of the same
/// name): the kernel detached the programs with it, so there is nothing left to watch.
pub fn check_still_there(watched: &[(String, u32)]) -> Result<()> {
    for (iface, index) in watched {
        if check_iface(iface).ok() != Some(*index) {
            bail!("interface {iface} disappeared while watched (its programs went with it)");
        }
    }
    Ok(())
}

/// Attaches the ingress hook and, if `egress`, the TC egress program to `iface`: `hook`,
/// or for `Auto` the one [`hook_choice::choose`] picks for the device (`blocking`: `--block`
/// needs XDP). Devices without an Ethernet header get the programs that start at IP.
/// Returns the choice (to say which and why) and what got attached.
pub fn attach(
    ebpf: &mut Ebpf,
    iface: &str,
    hook: Hook,
    mode: XdpModeArg,
    egress: bool,
    blocking: bool,
) -> Result<(HookChoice, Vec<Attachment>)> {
    if hook == Hook::Afpacket {
        bail!("--hook afpacket attaches no BPF program");
    }
    let choice = hook_choice::choose(hook, &hook_choice::link_info(iface)?, blocking);
    let (xdp, tc_ingress, tc_egress) = if choice.l3 {
        (PROG_XDP_IP, PROG_TC_IP_INGRESS, PROG_TC_IP_EGRESS)
    } else {
        (PROG_XDP, PROG_TC_INGRESS, PROG_TC_EGRESS)
    };
    let mut out = Vec::new();
    match choice.hook {
        Hook::Tc => {
            add_clsact(iface)?;
            let prog: &mut SchedClassifier = program(ebpf, tc_ingress)?;
            prog.attach(iface, TcAttachType::Ingress)
                .map_err(|e| explain_attach_error(iface, HookPoint::TcIngress, e))?;
            out.push(Attachment {
                iface: iface.into(),
                what: Attached::TcIngress,
            });
        }
        _ => {
            let prog: &mut Xdp = program(ebpf, xdp)?;
            let tries: &[AttachedXdpMode] = match mode {
                XdpModeArg::Auto => &[AttachedXdpMode::Driver, AttachedXdpMode::Skb],
                XdpModeArg::Driver => &[AttachedXdpMode::Driver],
                XdpModeArg::Skb => &[AttachedXdpMode::Skb],
            };
            let mut last = None;
            for m in tries {
                match prog.attach(iface, m.flags()) {
                    Ok(_) => {
                        out.push(Attachment {
                            iface: iface.into(),
                            what: Attached::Xdp(*m),
                        });
                        last = None;
                        break;
                    }
                    Err(e) => last = Some(e),
                }
            }
            if let Some(e) = last {
                return Err(explain_attach_error(iface, HookPoint::Xdp, e));
            }
        }
    }
    if egress {
        add_clsact(iface)?;
        let prog: &mut SchedClassifier = program(ebpf, tc_egress)?;
        prog.attach(iface, TcAttachType::Egress)
            .map_err(|e| explain_attach_error(iface, HookPoint::TcEgress, e))?;
        out.push(Attachment {
            iface: iface.into(),
            what: Attached::TcEgress,
        });
    }
    Ok((choice, out))
}

/// `xdp`, `tc`, …: as on the command line.
pub fn hook_name(hook: Hook) -> &'static str {
    match hook {
        Hook::Auto => "auto",
        Hook::Xdp => "xdp",
        Hook::Tc => "tc",
        Hook::Afpacket => "afpacket",
    }
}

fn add_clsact(iface: &str) -> Result<()> {
    // TCX (kernel ≥ 6.6) needs no qdisc; older kernels need clsact, which may exist already.
    use aya::util::KernelVersion;
    if KernelVersion::current().is_ok_and(|v| v >= KernelVersion::new(6, 6, 0)) {
        return Ok(());
    }
    match tc::qdisc_add_clsact(iface) {
        Ok(()) => Ok(()),
        Err(tc::TcError::NetlinkError(e)) if e.raw_os_error() == Some(libc::EEXIST) => Ok(()),
        Err(e) => Err(anyhow!("cannot add clsact qdisc to {iface}: {e}")),
    }
}

fn program<'a, T>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut T>
where
    &'a mut T: TryFrom<&'a mut aya::programs::Program, Error = ProgramError>,
{
    let p = ebpf
        .program_mut(name)
        .ok_or_else(|| anyhow!("program {name} missing"))?;
    p.try_into()
        .map_err(|e: ProgramError| anyhow!("program {name}: {e}"))
}

fn raise_memlock() {
    let rlim = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: plain syscall; failure only matters on kernels < 5.11 (memcg accounting).
    unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &rlim) };
}

/// The OS error code at the bottom of an error chain, if any.
pub(crate) fn errno_of(e: &(dyn std::error::Error + 'static)) -> Option<i32> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>()
            && let Some(code) = io.raw_os_error()
        {
            return Some(code);
        }
        cur = err.source();
    }
    None
}

fn permission_hint() -> &'static str {
    "picket needs root, or the capabilities CAP_BPF, CAP_NET_ADMIN and CAP_PERFMON"
}

fn explain_load_error(e: EbpfError) -> anyhow::Error {
    match errno_of(&e) {
        Some(libc::EPERM | libc::EACCES) => {
            anyhow!("permission denied loading BPF maps: {}", permission_hint())
        }
        Some(libc::ENOMEM) => {
            anyhow!("cannot create BPF maps: out of memory (lower --src-map-entries?): {e}")
        }
        Some(libc::ENOSYS) => anyhow!("this kernel does not support BPF (bpf syscall missing)"),
        _ => anyhow!("cannot load the BPF object: {e}"),
    }
}

fn explain_program_error(name: &str, e: ProgramError) -> anyhow::Error {
    match e {
        ProgramError::LoadError {
            io_error,
            verifier_log,
        } => match io_error.raw_os_error() {
            // The verifier also answers EACCES; its log tells the two apart.
            Some(libc::EACCES) if !verifier_log.to_string().trim().is_empty() => {
                anyhow!("the kernel rejected {name}: {io_error}\n{verifier_log}")
            }
            Some(libc::EPERM | libc::EACCES) => {
                anyhow!("permission denied loading {name}: {}", permission_hint())
            }
            _ => anyhow!("the kernel rejected {name}: {io_error}\n{verifier_log}"),
        },
        other => match errno_of(&other) {
            Some(libc::EPERM | libc::EACCES) => {
                anyhow!("permission denied loading {name}: {}", permission_hint())
            }
            _ => anyhow!("cannot load {name}: {other}"),
        },
    }
}

fn explain_attach_error(iface: &str, what: HookPoint, e: ProgramError) -> anyhow::Error {
    if let ProgramError::UnknownInterface { name } = &e {
        return anyhow!("unknown interface {name:?} (see `ip link`)");
    }
    match errno_of(&e) {
        Some(libc::EBUSY | libc::EEXIST) => anyhow!(
            "another {what} program is already attached to {iface}; detach it first \
             (e.g. `ip link set dev {iface} xdp off`) or use --hook tc"
        ),
        Some(libc::EPERM | libc::EACCES) => {
            anyhow!(
                "permission denied attaching {what} to {iface}: {}",
                permission_hint()
            )
        }
        Some(libc::EOPNOTSUPP | libc::EINVAL) if what == HookPoint::Xdp => anyhow!(
            "{iface} does not support XDP in the requested mode ({e}); try --xdp-mode skb or --hook tc"
        ),
        Some(libc::ENODEV) => anyhow!("unknown interface {iface:?} (see `ip link`)"),
        _ => anyhow!("cannot attach {what} to {iface}: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attachments_and_hooks_read_as_before() {
        assert_eq!(
            Attached::Xdp(AttachedXdpMode::Driver).to_string(),
            "xdp (driver)"
        );
        assert_eq!(Attached::Xdp(AttachedXdpMode::Skb).to_string(), "xdp (skb)");
        assert_eq!(Attached::TcIngress.to_string(), "tc ingress");
        assert_eq!(Attached::TcEgress.to_string(), "tc egress");
        assert_eq!(HookPoint::Xdp.to_string(), "XDP");
        assert_eq!(HookPoint::TcEgress.to_string(), "TC egress");
    }
}
