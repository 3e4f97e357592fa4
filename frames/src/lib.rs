//! The frame builder of Picket's tests, benchmark and kernel parity check: [`layers`] builds
//! packets layer by layer and says where each layer is; the functions here are shorthands
//! over it for well-formed Ethernet frames.

pub mod layers;
pub mod tunnels;

use std::net::{Ipv4Addr, Ipv6Addr};

use layers::{Ext, Ipv4, Ipv6};

/// A TCP header (20 bytes, no options) with the given ports and flags (`TCP_*` bits).
pub fn tcp(sport: u16, dport: u16, flags: u16) -> Vec<u8> {
    layers::tcp(sport, dport, flags).bytes()
}

/// A UDP header and payload.
pub fn udp(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    layers::udp(sport, dport).with_payload(payload).bytes()
}

/// An ICMP/ICMPv6 header with the given type and code.
pub fn icmp(ty: u8, code: u8) -> Vec<u8> {
    layers::icmp(ty, code).bytes()
}

/// Ethernet + IPv4 frame around L4 bytes of protocol `proto`; `frag` is the raw
/// flags/offset field (DF `0x4000`, MF `0x2000`, offset in 8-byte units). Padded to the
/// 60-byte Ethernet minimum, as on the wire.
pub fn ipv4(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, frag: u16, l4: &[u8]) -> Vec<u8> {
    let mut ip = Ipv4::new(src.octets(), dst.octets()).frag(frag & 0x1fff, frag & 0x2000 != 0);
    if frag & 0x4000 != 0 {
        ip = ip.df();
    }
    let mut f = layers::eth(&ip.build(&layers::raw(proto, l4))).bytes;
    f.resize(f.len().max(60), 0);
    f
}

/// Ethernet + IPv6 frame around L4 bytes of protocol `proto` (the final next header), after
/// the extension headers `ext`.
pub fn ipv6(src: Ipv6Addr, dst: Ipv6Addr, ext: &[Ext], proto: u8, l4: &[u8]) -> Vec<u8> {
    let ip = ext
        .iter()
        .fold(Ipv6::new(src.octets(), dst.octets()), |ip, e| ip.ext(*e));
    layers::eth(&ip.build(&layers::raw(proto, l4))).bytes
}

/// IPv6 hop-by-hop, destination-options and (first) fragment headers before TCP.
pub fn ipv6_ext_syn(src: Ipv6Addr, dst: Ipv6Addr) -> Vec<u8> {
    ipv6(
        src,
        dst,
        &[Ext::HopByHop(0), Ext::DestOpts(0), Ext::Fragment(0, true)],
        6,
        &tcp(40000, 443, agent_common::classify::TCP_SYN),
    )
}

/// An SCTP common header (zero verification tag and checksum) and one chunk header of type
/// `chunk` (flags 0, length 4).
pub fn sctp(sport: u16, dport: u16, chunk: u8) -> Vec<u8> {
    let mut b = Vec::with_capacity(16);
    b.extend_from_slice(&sport.to_be_bytes());
    b.extend_from_slice(&dport.to_be_bytes());
    b.extend_from_slice(&[0; 8]);
    b.extend_from_slice(&[chunk, 0, 0, 4]);
    b
}

/// An ICMP/ICMPv6 error of type `ty` and code `code` quoting the IP packet `quoted` (its
/// header and first L4 bytes, as RFC 792 asks: pass [`quote`] of a frame).
pub fn icmp_error(ty: u8, code: u8, quoted: &[u8]) -> Vec<u8> {
    let mut b = vec![ty, code, 0, 0, 0, 0, 0, 0];
    b.extend_from_slice(quoted);
    b
}

/// The IP header and the first 8 bytes of L4 of an Ethernet frame built by [`ipv4`] or
/// [`ipv6`] (no VLAN tag, no IPv6 extension header): what an ICMP error quotes.
pub fn quote(frame: &[u8]) -> Vec<u8> {
    let ip = &frame[14..];
    let hdr = if ip[0] >> 4 == 4 {
        usize::from(ip[0] & 0x0f) * 4
    } else {
        40
    };
    ip[..(hdr + 8).min(ip.len())].to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shorthands_are_the_layers() {
        let (a, b) = (Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2));
        let f = ipv4(
            a,
            b,
            17,
            0x2000 | 3,
            &udp(53, 5353, b"answer.answer.answer"),
        );
        assert_eq!(f.len(), 14 + 20 + 8 + 20);
        assert_eq!(f[12..14], [0x08, 0x00]);
        assert_eq!(f[20..22], [0x20, 3]);
        assert_eq!(f[23], 17);
        assert_eq!(f[34..36], 53u16.to_be_bytes());
        // Short frames padded to 60 bytes; the IP length says what is padding.
        let f = ipv4(a, b, 1, 0x4000, &icmp(8, 0));
        assert_eq!(
            (f.len(), f[16..18].to_vec(), f[20]),
            (60, vec![0, 28], 0x40)
        );
        let f = ipv6_ext_syn(Ipv6Addr::LOCALHOST, Ipv6Addr::LOCALHOST);
        assert_eq!(f.len(), 14 + 40 + 8 * 3 + 20);
        assert_eq!((f[20], f[54], f[62], f[70]), (0, 60, 44, 6));
        assert_eq!(f[72..74], [0, 1]);
    }
}
