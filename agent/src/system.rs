//! Facts about the host: privileges and the default-route interface.

use anyhow::{Result, anyhow, bail};

const CAP_NET_ADMIN: u32 = 12;
const CAP_NET_RAW: u32 = 13;
const CAP_SYS_ADMIN: u32 = 21;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

/// The effective capability set.
fn effective() -> Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .ok_or_else(|| anyhow!("cannot read effective capabilities from /proc/self/status"))
}

/// Fails with a one-line message when AF_PACKET sockets cannot be opened (`--hook afpacket`).
pub fn check_net_raw() -> Result<()> {
    if effective()? & (1u64 << CAP_NET_RAW) == 0 {
        bail!("missing capabilities: CAP_NET_RAW (run as root, or grant CAP_NET_RAW)");
    }
    Ok(())
}

/// Fails with a one-line message naming every capability the BPF programs need and the
/// process lacks.
pub fn check_capabilities() -> Result<()> {
    let eff = effective()?;
    let has = |c: u32| eff & (1u64 << c) != 0;
    // CAP_SYS_ADMIN covers BPF and PERFMON on every kernel.
    let mut missing = Vec::new();
    if !has(CAP_BPF) && !has(CAP_SYS_ADMIN) {
        missing.push("CAP_BPF");
    }
    if !has(CAP_PERFMON) && !has(CAP_SYS_ADMIN) {
        missing.push("CAP_PERFMON");
    }
    if !has(CAP_NET_ADMIN) {
        missing.push("CAP_NET_ADMIN");
    }
    if !missing.is_empty() {
        bail!(
            "missing capabilities: {} (run as root, or grant CAP_BPF, CAP_NET_ADMIN and CAP_PERFMON)",
            missing.join(", ")
        );
    }
    Ok(())
}

/// Name of the interface of the default route (IPv4, else IPv6).
pub fn default_route_iface() -> Result<String> {
    if let Ok(table) = std::fs::read_to_string("/proc/net/route") {
        for line in table.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() > 7 && f[1] == "00000000" && f[7] == "00000000" {
                return Ok(f[0].to_string());
            }
        }
    }
    if let Ok(table) = std::fs::read_to_string("/proc/net/ipv6_route") {
        for line in table.lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() >= 10 && f[0] == "0".repeat(32) && f[1] == "00" && f[9] != "lo" {
                return Ok(f[9].to_string());
            }
        }
    }
    bail!("no default route: name the interface to watch with --iface")
}
