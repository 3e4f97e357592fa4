//! Tunnel and L2.5 headers (issue 12): the bytes that go in front of an inner packet, to
//! be carried by the [`crate::layers`] builders (`udp(…).with_payload`, `raw(47, …)`, or
//! after an Ethernet header with [`shimmed`]).

use crate::layers::{MAC_DST, MAC_SRC, Net, Pkt};

/// A VXLAN header (I flag set) with this VNI, followed by `inner`.
pub fn vxlan(vni: u32, inner: &[u8]) -> Vec<u8> {
    let v = vni.to_be_bytes();
    let mut b = vec![0x08, 0, 0, 0, v[1], v[2], v[3], 0];
    b.extend_from_slice(inner);
    b
}

/// A Geneve header (version 0) with `opt_words` 4-byte words of options, the protocol type
/// and VNI, followed by `inner`.
pub fn geneve(proto: u16, vni: u32, opt_words: u8, inner: &[u8]) -> Vec<u8> {
    let v = vni.to_be_bytes();
    let p = proto.to_be_bytes();
    let mut b = vec![opt_words & 0x3f, 0, p[0], p[1], v[1], v[2], v[3], 0];
    for i in 0..opt_words {
        // One option class/type/length word, then data words (content is not read).
        b.extend_from_slice(&[0x01, 0x02, i, 0]);
    }
    b.extend_from_slice(inner);
    b
}

/// A GRE header (version 0) with the protocol type, an optional checksum field, key and
/// sequence number, followed by `inner`.
pub fn gre(proto: u16, csum: bool, key: Option<u32>, seq: Option<u32>, inner: &[u8]) -> Vec<u8> {
    let mut flags = 0u16;
    if csum {
        flags |= 0x8000;
    }
    if key.is_some() {
        flags |= 0x2000;
    }
    if seq.is_some() {
        flags |= 0x1000;
    }
    let mut b = Vec::new();
    b.extend_from_slice(&flags.to_be_bytes());
    b.extend_from_slice(&proto.to_be_bytes());
    if csum {
        b.extend_from_slice(&[0, 0, 0, 0]);
    }
    if let Some(k) = key {
        b.extend_from_slice(&k.to_be_bytes());
    }
    if let Some(s) = seq {
        b.extend_from_slice(&s.to_be_bytes());
    }
    b.extend_from_slice(inner);
    b
}

/// A GRE header with raw flags/version and protocol words (for the unsupported variants).
pub fn gre_raw(flags_version: u16, proto: u16, inner: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&flags_version.to_be_bytes());
    b.extend_from_slice(&proto.to_be_bytes());
    b.extend_from_slice(inner);
    b
}

/// An MPLS label stack (bottom-of-stack bit on the last label, TTL 64).
pub fn mpls(labels: &[u32]) -> Vec<u8> {
    let mut b = Vec::new();
    for (i, l) in labels.iter().enumerate() {
        let bos = u32::from(i + 1 == labels.len());
        b.extend_from_slice(&((l << 12) | (bos << 8) | 64).to_be_bytes());
    }
    b
}

/// A PPPoE session header (RFC 2516) for a PPP payload of `len` bytes of protocol
/// `ppp_proto` (0x0021 IPv4, 0x0057 IPv6).
pub fn pppoe(ppp_proto: u16, len: usize) -> Vec<u8> {
    let mut b = vec![0x11, 0x00, 0x12, 0x34];
    b.extend_from_slice(&((len + 2) as u16).to_be_bytes());
    b.extend_from_slice(&ppp_proto.to_be_bytes());
    b
}

/// An Ethernet frame of EtherType `ethertype` whose payload is `shim` then `net`; the
/// layout's offsets are those of `net`.
pub fn shimmed(ethertype: u16, shim: &[u8], net: &Net) -> Pkt {
    let mut b = Vec::new();
    b.extend_from_slice(&MAC_DST);
    b.extend_from_slice(&MAC_SRC);
    b.extend_from_slice(&ethertype.to_be_bytes());
    b.extend_from_slice(shim);
    let l3 = b.len();
    b.extend_from_slice(&net.bytes);
    crate::layers::layout_at(b, l3, net)
}
