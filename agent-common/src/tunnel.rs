//! One level of decapsulation: VXLAN, Geneve, GRE and IP-in-IP (4in4, 6in4, 4in6, 6in6).
//!
//! A scan inside a tunnel is invisible by its outer header (one pair of tunnel endpoints,
//! one UDP port or protocol 47), so the classifier describes the INNER packet and keeps the
//! endpoints in [`Summary::outer_src`], [`Summary::outer_dst`], [`Summary::vni`] and
//! [`Summary::encap`]. Exactly one level is decoded (a constant, for the verifier): a tunnel
//! inside the tunnel is accounted by its inner-most decoded header, i.e. as the first inner
//! packet. An inner packet that is missing, truncated or malformed (an IP-protocol scan
//! sends protocols 4, 41 and 47 with no payload) leaves the outer summary in place with
//! [`Summary::inner_error`] set: it is never read out of bounds, and the packet still counts
//! by its outer addresses.

use crate::{
    classify::{
        ETH_P_IPV4, ETH_P_IPV6, ETH_P_MPLS_MC, ETH_P_MPLS_UC, ETH_P_TEB, FRAG_NONE, IPPROTO_GRE,
        IPPROTO_IPIP, IPPROTO_IPV6, IPPROTO_UDP, ParseError, Summary, be16, layer_eth,
        layer_tagged,
    },
    packet::Packet,
};

/// [`Summary::encap`]: no tunnel.
pub const ENCAP_NONE: u8 = 0;
/// VXLAN (UDP 4789, or 8472 as Linux used before IANA's port).
pub const ENCAP_VXLAN: u8 = 1;
/// Geneve (UDP 6081).
pub const ENCAP_GENEVE: u8 = 2;
/// GRE (protocol 47) carrying IP, Ethernet or MPLS.
pub const ENCAP_GRE: u8 = 3;
/// IPv4 in IPv4 (protocol 4).
pub const ENCAP_IPIP: u8 = 4;
/// IPv6 in IPv4 (protocol 41, 6in4/SIT).
pub const ENCAP_6IN4: u8 = 5;
/// IPv4 in IPv6 (next header 4).
pub const ENCAP_4IN6: u8 = 6;
/// IPv6 in IPv6 (next header 41).
pub const ENCAP_6IN6: u8 = 7;
/// Number of `encap` counters (indexed by kind, slot 0 unused).
pub const ENCAP_SLOTS: usize = 8;

/// Stable names of the kinds, indexed by `ENCAP_*`.
pub const ENCAP_NAMES: [&str; ENCAP_SLOTS] = [
    "none", "vxlan", "geneve", "gre", "ipip", "6in4", "4in6", "6in6",
];

/// [`Summary::inner_error`]: the packet ends inside the tunnel or inner header (an empty
/// protocol-4/41/47 probe, a snapshot cut short).
pub const INNER_TRUNCATED: u8 = 1;
/// The inner header is malformed (wrong IP version, bad lengths, too many tags or
/// extension headers, TCP data offset below 5).
pub const INNER_BAD: u8 = 2;
/// A tunnel header this classifier does not decode: GRE with routing or version ≠ 0
/// (PPTP), Geneve version ≠ 0, VXLAN without its I flag, an inner protocol other than
/// IP, Ethernet or MPLS, or an inner header deeper than [`MAX_HDR_OFF`].
pub const INNER_UNSUPPORTED: u8 = 3;
/// Number of `inner_errors` counters (indexed by `INNER_*`, slot 0 unused).
pub const INNER_ERROR_SLOTS: usize = 4;
/// Stable names of the inner errors, indexed by `INNER_*`.
pub const INNER_ERROR_NAMES: [&str; INNER_ERROR_SLOTS] =
    ["none", "truncated", "bad", "unsupported"];

/// Deepest offset at which an inner header may start. Bounds the offsets the verifier
/// tracks (far below its 64 KiB packet-offset limit) whatever path the outer parse took.
pub const MAX_HDR_OFF: usize = 1024;

/// UDP port of VXLAN (IANA).
pub const VXLAN_PORT: u16 = 4789;
/// UDP port Linux used for VXLAN before IANA assigned one (still its default in places).
pub const VXLAN_LINUX_PORT: u16 = 8472;
/// UDP port of Geneve.
pub const GENEVE_PORT: u16 = 6081;

const GRE_C: u16 = 0x8000;
const GRE_R: u16 = 0x4000;
const GRE_K: u16 = 0x2000;
const GRE_S: u16 = 0x1000;
const GRE_VERSION: u16 = 0x0007;

/// What follows a tunnel header.
#[derive(Clone, Copy)]
enum Inner {
    /// An Ethernet frame.
    Eth,
    /// The payload of this EtherType (IPv4, IPv6, MPLS).
    Ether(u16),
}

/// A tunnel header found in an outer packet.
#[derive(Clone, Copy)]
struct Tunnel {
    kind: u8,
    vni: u32,
    off: usize,
    inner: Inner,
    /// End of the outer IP packet: the tunnel and inner headers must lie before it.
    end: usize,
}

/// Decodes the tunnel the packet summarised in `s` carries, if any: `s` becomes the
/// inner packet's summary with the tunnel fields set. Otherwise `s` stays the outer one
/// (with [`Summary::inner_error`] set when a tunnel was announced but not decoded).
/// `scratch` receives the inner parse (its content afterwards is meaningless).
#[inline(always)]
pub fn decapsulate<P: Packet + ?Sized>(p: &P, s: &mut Summary, scratch: &mut Summary) {
    let t = match tunnel_of(p, s) {
        None => return,
        Some(Ok(t)) => t,
        Some(Err(e)) => {
            s.inner_error = e;
            return;
        }
    };
    // Every outer path reaches here with its own offset: merged into one (see
    // `Packet::merge_offset`) and bounded, the inner parse is verified once.
    let at = p.merge_offset(t.off);
    if at > MAX_HDR_OFF {
        s.inner_error = INNER_UNSUPPORTED;
        return;
    }
    // The inner header must lie within the outer IP payload: Ethernet padding after an
    // empty protocol-4/41/47 probe is not an inner packet.
    let least = match t.inner {
        Inner::Eth => 14,
        Inner::Ether(ETH_P_IPV6) => 40,
        Inner::Ether(_) => 20,
    };
    if at + least > t.end {
        s.inner_error = INNER_TRUNCATED;
        return;
    }
    let inner = match t.inner {
        Inner::Eth => layer_eth(p, at, scratch),
        Inner::Ether(et) => layer_tagged(p, et, at, scratch),
    };
    match inner {
        Ok(()) => {
            scratch.outer_src = s.src;
            scratch.outer_dst = s.dst;
            scratch.vni = t.vni;
            scratch.encap = t.kind;
            *s = *scratch;
        }
        Err(e) => s.inner_error = inner_error_of(e),
    }
}

/// End of the outer IP packet `s` (its header's length field), at most the packet's end.
#[inline(always)]
fn ip_end<P: Packet + ?Sized>(p: &P, s: &Summary) -> usize {
    let l3 = s.l3_off as usize;
    // Bounded, so that the verifier can check the load below (an L3 header this deep
    // carries no decoded tunnel anyway).
    if l3 > MAX_HDR_OFF {
        return 0;
    }
    let (field, base) = if s.family == 4 {
        (l3 + 2, l3)
    } else {
        (l3 + 4, l3 + 40)
    };
    match p.load::<[u8; 2]>(field) {
        // An IPv6 payload length of 0 (a jumbogram) runs to the end of the packet.
        Some(n) if s.family == 6 && n == [0, 0] => p.wire_len(),
        Some(n) => base + be16(n) as usize,
        None => 0,
    }
}

/// The `INNER_*` kind of an inner parse error.
#[inline(always)]
fn inner_error_of(e: ParseError) -> u8 {
    match e {
        ParseError::Truncated | ParseError::L4Truncated => INNER_TRUNCATED,
        _ => INNER_BAD,
    }
}

/// The tunnel announced by the outer packet: `None` when there is none, an `INNER_*` error
/// when its header is truncated or not decoded.
#[inline(always)]
fn tunnel_of<P: Packet + ?Sized>(p: &P, s: &Summary) -> Option<Result<Tunnel, u8>> {
    if !s.is_ip() || s.fragment != FRAG_NONE || s.payload_off == 0 {
        return None;
    }
    // Bounded here, whatever the compiler kept of the offset's range: the programs keep the
    // summary in a map, where a reloaded `u16` could be anything up to 64 KiB.
    let off = s.payload_off as usize;
    if off > MAX_HDR_OFF {
        return Some(Err(INNER_UNSUPPORTED));
    }
    match s.proto {
        IPPROTO_UDP if s.has_l4() => match s.dst_port {
            VXLAN_PORT | VXLAN_LINUX_PORT => Some(vxlan(p, off, ip_end(p, s))),
            GENEVE_PORT => Some(geneve(p, off, ip_end(p, s))),
            _ => None,
        },
        IPPROTO_IPIP | IPPROTO_IPV6 => {
            let (kind, et) = match (s.family, s.proto) {
                (4, IPPROTO_IPIP) => (ENCAP_IPIP, ETH_P_IPV4),
                (4, _) => (ENCAP_6IN4, ETH_P_IPV6),
                (_, IPPROTO_IPIP) => (ENCAP_4IN6, ETH_P_IPV4),
                _ => (ENCAP_6IN6, ETH_P_IPV6),
            };
            Some(Ok(Tunnel {
                kind,
                vni: 0,
                off,
                inner: Inner::Ether(et),
                end: ip_end(p, s),
            }))
        }
        IPPROTO_GRE => Some(gre(p, off, ip_end(p, s))),
        _ => None,
    }
}

/// VXLAN (RFC 7348): 8 bytes, the I flag, a 24-bit VNI, then an Ethernet frame.
#[inline(always)]
fn vxlan<P: Packet + ?Sized>(p: &P, off: usize, end: usize) -> Result<Tunnel, u8> {
    let h: [u8; 8] = load_within(p, off, end)?;
    if h[0] & 0x08 == 0 {
        return Err(INNER_UNSUPPORTED);
    }
    Ok(Tunnel {
        kind: ENCAP_VXLAN,
        vni: u32::from_be_bytes([0, h[4], h[5], h[6]]),
        off: off + 8,
        inner: Inner::Eth,
        end,
    })
}

/// Geneve (RFC 8926): 8 bytes plus options, version 0, a protocol type and a 24-bit VNI.
#[inline(always)]
fn geneve<P: Packet + ?Sized>(p: &P, off: usize, end: usize) -> Result<Tunnel, u8> {
    let h: [u8; 8] = load_within(p, off, end)?;
    if h[0] >> 6 != 0 {
        return Err(INNER_UNSUPPORTED);
    }
    let inner = inner_of(be16([h[2], h[3]]))?;
    Ok(Tunnel {
        kind: ENCAP_GENEVE,
        vni: u32::from_be_bytes([0, h[4], h[5], h[6]]),
        off: off + 8 + (h[0] & 0x3f) as usize * 4,
        inner,
        end,
    })
}

/// GRE (RFC 2784/2890): version 0, optional checksum, key (kept as the VNI) and sequence
/// number. Routing (RFC 1701) and version 1 (PPTP) are not decoded.
#[inline(always)]
fn gre<P: Packet + ?Sized>(p: &P, off: usize, end: usize) -> Result<Tunnel, u8> {
    let h: [u8; 4] = load_within(p, off, end)?;
    let flags = be16([h[0], h[1]]);
    if flags & (GRE_R | GRE_VERSION) != 0 {
        return Err(INNER_UNSUPPORTED);
    }
    let inner = inner_of(be16([h[2], h[3]]))?;
    let mut at = off + 4;
    if flags & GRE_C != 0 {
        at += 4;
    }
    let mut vni = 0;
    if flags & GRE_K != 0 {
        let k: [u8; 4] = load_within(p, at, end)?;
        vni = u32::from_be_bytes(k);
        at += 4;
    }
    if flags & GRE_S != 0 {
        at += 4;
    }
    Ok(Tunnel {
        kind: ENCAP_GRE,
        vni,
        off: at,
        inner,
        end,
    })
}

/// A tunnel header at `off` that must end by `end` (the outer IP packet's end).
#[inline(always)]
fn load_within<T: Copy, P: Packet + ?Sized>(p: &P, off: usize, end: usize) -> Result<T, u8> {
    if off + core::mem::size_of::<T>() > end {
        return Err(INNER_TRUNCATED);
    }
    p.load(off).ok_or(INNER_TRUNCATED)
}

/// What a GRE or Geneve protocol type carries.
#[inline(always)]
fn inner_of(proto: u16) -> Result<Inner, u8> {
    match proto {
        ETH_P_TEB => Ok(Inner::Eth),
        ETH_P_IPV4 | ETH_P_IPV6 | ETH_P_MPLS_UC | ETH_P_MPLS_MC => Ok(Inner::Ether(proto)),
        _ => Err(INNER_UNSUPPORTED),
    }
}
