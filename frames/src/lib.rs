//! Builders of well-formed Ethernet frames, for the benchmark and the kernel parity test.

use std::net::{Ipv4Addr, Ipv6Addr};

const MAC_DST: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];
const MAC_SRC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];

fn eth(ethertype: u16) -> Vec<u8> {
    let mut f = Vec::with_capacity(128);
    f.extend_from_slice(&MAC_DST);
    f.extend_from_slice(&MAC_SRC);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f
}

/// A TCP header (20 bytes, no options) with the given ports and flags (`TCP_*` bits).
pub fn tcp(sport: u16, dport: u16, flags: u16) -> Vec<u8> {
    let mut h = vec![0u8; 20];
    h[0..2].copy_from_slice(&sport.to_be_bytes());
    h[2..4].copy_from_slice(&dport.to_be_bytes());
    h[4..8].copy_from_slice(&1u32.to_be_bytes());
    h[12] = (5 << 4) | ((flags >> 8) as u8 & 1);
    h[13] = flags as u8;
    h[14..16].copy_from_slice(&64240u16.to_be_bytes());
    h
}

/// A UDP header and payload.
pub fn udp(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut h = Vec::with_capacity(8 + payload.len());
    h.extend_from_slice(&sport.to_be_bytes());
    h.extend_from_slice(&dport.to_be_bytes());
    h.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    h.extend_from_slice(&[0, 0]);
    h.extend_from_slice(payload);
    h
}

/// An ICMP/ICMPv6 header with the given type and code.
pub fn icmp(ty: u8, code: u8) -> Vec<u8> {
    vec![ty, code, 0, 0, 0, 1, 0, 1]
}

/// Ethernet + IPv4 frame around an L4 header; `frag` is the raw flags/offset field.
pub fn ipv4(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, frag: u16, l4: &[u8]) -> Vec<u8> {
    let mut f = eth(0x0800);
    let total = (20 + l4.len()) as u16;
    f.extend_from_slice(&[0x45, 0]);
    f.extend_from_slice(&total.to_be_bytes());
    f.extend_from_slice(&[0, 1]);
    f.extend_from_slice(&frag.to_be_bytes());
    f.extend_from_slice(&[64, proto, 0, 0]);
    f.extend_from_slice(&src.octets());
    f.extend_from_slice(&dst.octets());
    f.extend_from_slice(l4);
    // Pad to the 60-byte Ethernet minimum, as on the wire.
    while f.len() < 60 {
        f.push(0);
    }
    f
}

/// Ethernet + IPv6 frame: `ext` are extension headers as (type, body) pairs, each body
/// already padded to a multiple of 8 bytes minus 2; `proto` is the final next header.
pub fn ipv6(src: Ipv6Addr, dst: Ipv6Addr, ext: &[(u8, Vec<u8>)], proto: u8, l4: &[u8]) -> Vec<u8> {
    let mut f = eth(0x86dd);
    let mut chain = Vec::new();
    for (i, (_, body)) in ext.iter().enumerate() {
        let next = ext.get(i + 1).map_or(proto, |(t, _)| *t);
        if ext[i].0 == 44 {
            chain.push(next);
            chain.extend_from_slice(body);
        } else {
            chain.push(next);
            chain.push(((body.len() + 2) / 8 - 1) as u8);
            chain.extend_from_slice(body);
        }
    }
    let first = ext.first().map_or(proto, |(t, _)| *t);
    f.extend_from_slice(&[0x60, 0, 0, 0]);
    f.extend_from_slice(&((chain.len() + l4.len()) as u16).to_be_bytes());
    f.extend_from_slice(&[first, 64]);
    f.extend_from_slice(&src.octets());
    f.extend_from_slice(&dst.octets());
    f.extend_from_slice(&chain);
    f.extend_from_slice(l4);
    f
}

/// IPv6 hop-by-hop, destination-options and (first) fragment headers before TCP.
pub fn ipv6_ext_syn(src: Ipv6Addr, dst: Ipv6Addr) -> Vec<u8> {
    ipv6(
        src,
        dst,
        &[
            (0, vec![1, 4, 0, 0, 0, 0]),
            (60, vec![1, 4, 0, 0, 0, 0]),
            (44, vec![0, 0, 1, 0, 0, 0, 7]),
        ],
        6,
        &tcp(40000, 443, agent_common::classify::TCP_SYN),
    )
}
