//! The tunnels table: packets decapsulated per tunnel (kind, endpoints, VNI or key), with
//! the distinct inner sources each carried. The rest of the report accounts a tunnelled
//! packet by its inner packet; this is where the endpoints stay visible.

use std::collections::{HashMap, HashSet};

use agent_common::{Summary, state::AddrKey, tunnel::ENCAP_NAMES};
use serde::Serialize;

/// Most tunnels tracked (more are counted in the report's warnings).
const MAX_TUNNELS: usize = 65_536;
/// Most distinct inner sources counted per tunnel (the count then says "at least").
const MAX_INNER_SOURCES: usize = 4096;

/// One row of `tunnels[]`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TunnelRow {
    /// `vxlan`, `geneve`, `gre`, `ipip`, `6in4`, `4in6` or `6in6`.
    pub kind: &'static str,
    /// Outer source (sending endpoint).
    pub outer_src: String,
    /// Outer destination (receiving endpoint).
    pub outer_dst: String,
    /// VNI or GRE key (0: none).
    pub vni: u32,
    /// Packets decapsulated.
    pub packets: u64,
    /// Their bytes on the wire (outer frames).
    pub bytes: u64,
    /// Distinct inner source addresses (at most 4096 counted).
    pub inner_sources: usize,
}

type Key = (u8, [u8; 16], [u8; 16], u32);

/// Per-tunnel counts.
#[derive(Default)]
pub struct Tunnels {
    rows: HashMap<Key, (u64, u64, HashSet<[u8; 16]>)>,
    /// Tunnelled packets of tunnels beyond [`MAX_TUNNELS`].
    pub untracked: u64,
}

impl Tunnels {
    /// Accounts one classified packet (those not decapsulated are ignored).
    pub fn add(&mut self, s: &Summary, wire: u64) {
        if s.encap == 0 {
            return;
        }
        let key = (s.encap, s.outer_src, s.outer_dst, s.vni);
        if self.rows.len() >= MAX_TUNNELS && !self.rows.contains_key(&key) {
            self.untracked += 1;
            return;
        }
        let e = self.rows.entry(key).or_default();
        e.0 += 1;
        e.1 += wire;
        if e.2.len() < MAX_INNER_SOURCES {
            e.2.insert(s.src);
        }
    }

    /// Every row, most packets first (ties by endpoints); text and HTML trim them to `--top`.
    pub fn rows(&self) -> Vec<TunnelRow> {
        let ip = |a: &[u8; 16]| AddrKey { addr: *a }.ip().to_string();
        let mut v: Vec<TunnelRow> = self
            .rows
            .iter()
            .map(
                |((kind, src, dst, vni), (packets, bytes, inner))| TunnelRow {
                    kind: ENCAP_NAMES
                        .get(usize::from(*kind))
                        .copied()
                        .unwrap_or("none"),
                    outer_src: ip(src),
                    outer_dst: ip(dst),
                    vni: *vni,
                    packets: *packets,
                    bytes: *bytes,
                    inner_sources: inner.len(),
                },
            )
            .collect();
        v.sort_by(|a, b| {
            b.packets.cmp(&a.packets).then_with(|| {
                (a.kind, &a.outer_src, &a.outer_dst, a.vni).cmp(&(
                    b.kind,
                    &b.outer_src,
                    &b.outer_dst,
                    b.vni,
                ))
            })
        });
        v
    }
}
