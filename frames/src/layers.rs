//! Layer-by-layer packet building: an [`L4`] header and payload, inside an [`Ipv4`] or
//! [`Ipv6`] header (with options, fragments, extension headers and overrides of every field
//! the classifier checks) giving a [`Net`], inside an Ethernet frame (with VLAN tags) or raw
//! giving a [`Pkt`].
//!
//! Every builder returns the bytes together with the layout it produced (where the L3
//! header starts, where the network headers end, where the L4 header ends), so that tests
//! can predict the classifier's answer for every prefix of a packet
//! ([`Pkt::expect_prefix`]).

use agent_common::{
    Summary,
    classify::{ETH_P_8021AD, ETH_P_8021Q, ETH_P_IPV4, ETH_P_IPV6},
};

/// Source MAC of every built frame.
pub const MAC_SRC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
/// Destination MAC of every built frame.
pub const MAC_DST: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];

/// IPv6 next-header numbers of extension headers.
pub const NH_HOP: u8 = 0;
/// Routing header.
pub const NH_ROUTING: u8 = 43;
/// Fragment header.
pub const NH_FRAGMENT: u8 = 44;
/// Authentication header.
pub const NH_AH: u8 = 51;
/// No next header.
pub const NH_NONE: u8 = 59;
/// Destination options.
pub const NH_DSTOPTS: u8 = 60;

/// A summary with every field zero (the classifier's starting point).
pub fn blank() -> Summary {
    Summary::EMPTY
}

/// `::ffff:a.b.c.d`.
pub fn mapped(a: [u8; 4]) -> [u8; 16] {
    let mut m = [0u8; 16];
    m[10] = 0xff;
    m[11] = 0xff;
    m[12..].copy_from_slice(&a);
    m
}

/// 2001:db8::`lo` with `hi` in the fourth group.
pub fn v6(hi: u16, lo: u16) -> [u8; 16] {
    let mut a = [0u8; 16];
    a[0..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
    a[6..8].copy_from_slice(&hi.to_be_bytes());
    a[14..16].copy_from_slice(&lo.to_be_bytes());
    a
}

// ---------------------------------------------------------------------------------------
// L4
// ---------------------------------------------------------------------------------------

/// A transport header plus payload.
#[derive(Clone, Debug)]
pub enum L4 {
    /// TCP; `flags` are the 9 `TCP_*` bits (NS goes into the data-offset byte).
    Tcp {
        /// Source port.
        sport: u16,
        /// Destination port.
        dport: u16,
        /// `TCP_*` bits.
        flags: u16,
        /// Option bytes (padded to a multiple of 4 with NOPs).
        opts: Vec<u8>,
        /// Data offset override in 32-bit words (else computed).
        doff: Option<u8>,
        /// Payload.
        payload: Vec<u8>,
    },
    /// UDP.
    Udp {
        /// Source port.
        sport: u16,
        /// Destination port.
        dport: u16,
        /// Payload.
        payload: Vec<u8>,
    },
    /// ICMP (`v6 == false`, protocol 1) or ICMPv6 (protocol 58).
    Icmp {
        /// ICMPv6 rather than ICMP.
        v6: bool,
        /// Type.
        ty: u8,
        /// Code.
        code: u8,
        /// Rest of header (identifier/sequence, unused, …).
        rest: [u8; 4],
        /// Payload.
        payload: Vec<u8>,
    },
    /// Arbitrary protocol and bytes (the classifier parses no L4 header for it).
    Raw {
        /// IP protocol number.
        proto: u8,
        /// Bytes.
        bytes: Vec<u8>,
    },
}

/// TCP with the given flags and no options or payload.
pub fn tcp(sport: u16, dport: u16, flags: u16) -> L4 {
    L4::Tcp {
        sport,
        dport,
        flags,
        opts: Vec::new(),
        doff: None,
        payload: Vec::new(),
    }
}

/// UDP with no payload.
pub fn udp(sport: u16, dport: u16) -> L4 {
    L4::Udp {
        sport,
        dport,
        payload: Vec::new(),
    }
}

/// ICMP with no payload.
pub fn icmp(ty: u8, code: u8) -> L4 {
    L4::Icmp {
        v6: false,
        ty,
        code,
        rest: [0, 1, 0, 1],
        payload: Vec::new(),
    }
}

/// ICMPv6 with no payload.
pub fn icmpv6(ty: u8, code: u8) -> L4 {
    L4::Icmp {
        v6: true,
        ty,
        code,
        rest: [0, 1, 0, 1],
        payload: Vec::new(),
    }
}

/// Raw bytes of protocol `proto`.
pub fn raw(proto: u8, bytes: &[u8]) -> L4 {
    L4::Raw {
        proto,
        bytes: bytes.to_vec(),
    }
}

impl L4 {
    /// Adds a payload (not for `Raw`).
    pub fn with_payload(mut self, data: &[u8]) -> Self {
        match &mut self {
            L4::Tcp { payload, .. } | L4::Udp { payload, .. } | L4::Icmp { payload, .. } => {
                *payload = data.to_vec()
            }
            L4::Raw { bytes, .. } => bytes.extend_from_slice(data),
        }
        self
    }

    /// Adds TCP options (padded to a multiple of 4 with NOPs).
    pub fn with_tcp_opts(mut self, o: &[u8]) -> Self {
        if let L4::Tcp { opts, .. } = &mut self {
            *opts = o.to_vec();
            while opts.len() % 4 != 0 {
                opts.push(1);
            }
        }
        self
    }

    /// Overrides the TCP data offset (32-bit words).
    pub fn with_doff(mut self, words: u8) -> Self {
        if let L4::Tcp { doff, .. } = &mut self {
            *doff = Some(words);
        }
        self
    }

    /// IP protocol number.
    pub fn proto(&self) -> u8 {
        match self {
            L4::Tcp { .. } => 6,
            L4::Udp { .. } => 17,
            L4::Icmp { v6: false, .. } => 1,
            L4::Icmp { v6: true, .. } => 58,
            L4::Raw { proto, .. } => *proto,
        }
    }

    /// Length of the header the classifier must see in full (0 for `Raw`).
    pub fn hdr_len(&self) -> usize {
        match self {
            L4::Tcp { opts, doff, .. } => match doff {
                Some(w) => *w as usize * 4,
                None => 20 + opts.len(),
            },
            L4::Udp { .. } | L4::Icmp { .. } => 8,
            L4::Raw { .. } => 0,
        }
    }

    /// Wire bytes.
    pub fn bytes(&self) -> Vec<u8> {
        let mut b = Vec::new();
        match self {
            L4::Tcp {
                sport,
                dport,
                flags,
                opts,
                doff,
                payload,
            } => {
                b.extend_from_slice(&sport.to_be_bytes());
                b.extend_from_slice(&dport.to_be_bytes());
                b.extend_from_slice(&0x0102_0304u32.to_be_bytes()); // seq
                b.extend_from_slice(&0u32.to_be_bytes()); // ack
                let words = doff.unwrap_or((5 + opts.len() / 4) as u8);
                b.push((words << 4) | ((flags >> 8) as u8 & 1));
                b.push(*flags as u8);
                b.extend_from_slice(&[0xff, 0xff]); // window
                b.extend_from_slice(&[0, 0]); // checksum
                b.extend_from_slice(&[0, 0]); // urgent pointer
                b.extend_from_slice(opts);
                b.extend_from_slice(payload);
            }
            L4::Udp {
                sport,
                dport,
                payload,
            } => {
                b.extend_from_slice(&sport.to_be_bytes());
                b.extend_from_slice(&dport.to_be_bytes());
                b.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
                b.extend_from_slice(&[0, 0]);
                b.extend_from_slice(payload);
            }
            L4::Icmp {
                ty,
                code,
                rest,
                payload,
                ..
            } => {
                b.push(*ty);
                b.push(*code);
                b.extend_from_slice(&[0, 0]);
                b.extend_from_slice(rest);
                b.extend_from_slice(payload);
            }
            L4::Raw { bytes, .. } => b.extend_from_slice(bytes),
        }
        b
    }
}

// ---------------------------------------------------------------------------------------
// L3
// ---------------------------------------------------------------------------------------

/// An L3 packet (IP header(s) + L4) with its layout, offsets relative to the L3 start.
#[derive(Clone, Debug)]
pub struct Net {
    /// EtherType to put in front of it.
    pub ethertype: u16,
    /// Bytes.
    pub bytes: Vec<u8>,
    /// Length of the fixed IP header (20 or 40; 0 for non-IP).
    pub fixed_len: usize,
    /// Length of all network-layer headers the classifier walks (IPv4 with options; IPv6
    /// with extension headers up to and including a non-first fragment header).
    pub net_len: usize,
    /// Length of the L4 header the classifier needs in full, when it parses one.
    pub l4_hdr_len: usize,
}

/// An IPv4 header description.
#[derive(Clone, Debug)]
pub struct Ipv4 {
    /// Source.
    pub src: [u8; 4],
    /// Destination.
    pub dst: [u8; 4],
    /// TTL.
    pub ttl: u8,
    /// Option bytes (padded to a multiple of 4 with EOL).
    pub options: Vec<u8>,
    /// Fragment offset in 8-byte units.
    pub frag_offset: u16,
    /// More-fragments flag.
    pub mf: bool,
    /// Don't-fragment flag.
    pub df: bool,
    /// Version nibble override.
    pub version: u8,
    /// IHL override (32-bit words).
    pub ihl: Option<u8>,
    /// Total-length override.
    pub tot_len: Option<u16>,
    /// Protocol override.
    pub proto: Option<u8>,
}

impl Ipv4 {
    /// A plain header from `src` to `dst`, TTL 64.
    pub fn new(src: [u8; 4], dst: [u8; 4]) -> Self {
        Ipv4 {
            src,
            dst,
            ttl: 64,
            options: Vec::new(),
            frag_offset: 0,
            mf: false,
            df: false,
            version: 4,
            ihl: None,
            tot_len: None,
            proto: None,
        }
    }

    /// Sets the TTL.
    pub fn ttl(mut self, ttl: u8) -> Self {
        self.ttl = ttl;
        self
    }

    /// Adds `n` bytes of options (NOPs ending in EOL; `n` a multiple of 4, at most 40).
    pub fn options(mut self, n: usize) -> Self {
        assert!(n.is_multiple_of(4) && n <= 40);
        self.options = vec![1u8; n];
        if n > 0 {
            self.options[n - 1] = 0;
        }
        self
    }

    /// Sets fragment fields.
    pub fn frag(mut self, offset_units: u16, mf: bool) -> Self {
        self.frag_offset = offset_units;
        self.mf = mf;
        self
    }

    /// Sets DF.
    pub fn df(mut self) -> Self {
        self.df = true;
        self
    }

    /// Overrides the version nibble.
    pub fn version(mut self, v: u8) -> Self {
        self.version = v;
        self
    }

    /// Overrides the IHL.
    pub fn ihl(mut self, words: u8) -> Self {
        self.ihl = Some(words);
        self
    }

    /// Overrides the total length.
    pub fn tot_len(mut self, n: u16) -> Self {
        self.tot_len = Some(n);
        self
    }

    /// Overrides the protocol.
    pub fn proto(mut self, p: u8) -> Self {
        self.proto = Some(p);
        self
    }

    /// Header length as the IHL says.
    pub fn hdr_len(&self) -> usize {
        match self.ihl {
            Some(w) => w as usize * 4,
            None => 20 + self.options.len(),
        }
    }

    /// Builds the packet carrying `l4`.
    pub fn build(&self, l4: &L4) -> Net {
        let body = l4.bytes();
        let hdr_words = (20 + self.options.len()) / 4;
        let ihl = self.ihl.unwrap_or(hdr_words as u8);
        let tot = self
            .tot_len
            .unwrap_or((20 + self.options.len() + body.len()) as u16);
        let mut b = Vec::new();
        b.push((self.version << 4) | (ihl & 0x0f));
        b.push(0); // tos
        b.extend_from_slice(&tot.to_be_bytes());
        b.extend_from_slice(&0x1234u16.to_be_bytes()); // id
        let mut frag = self.frag_offset & 0x1fff;
        if self.mf {
            frag |= 0x2000;
        }
        if self.df {
            frag |= 0x4000;
        }
        b.extend_from_slice(&frag.to_be_bytes());
        b.push(self.ttl);
        b.push(self.proto.unwrap_or(l4.proto()));
        b.extend_from_slice(&[0, 0]); // checksum
        b.extend_from_slice(&self.src);
        b.extend_from_slice(&self.dst);
        b.extend_from_slice(&self.options);
        b.extend_from_slice(&body);
        let later = self.frag_offset != 0;
        let proto = self.proto.unwrap_or(l4.proto());
        let l4_hdr_len = if later || !matches!(proto, 1 | 6 | 17 | 58) {
            0
        } else {
            l4.hdr_len()
        };
        Net {
            ethertype: ETH_P_IPV4,
            bytes: b,
            fixed_len: 20,
            net_len: self.hdr_len(),
            l4_hdr_len,
        }
    }
}

/// An IPv6 extension header.
#[derive(Clone, Copy, Debug)]
pub enum Ext {
    /// Hop-by-hop options of `(units + 1) * 8` bytes.
    HopByHop(u8),
    /// Routing header of `(units + 1) * 8` bytes.
    Routing(u8),
    /// Destination options of `(units + 1) * 8` bytes.
    DestOpts(u8),
    /// Fragment header: offset in 8-byte units, M flag.
    Fragment(u16, bool),
    /// Authentication header of `(len + 2) * 4` bytes.
    Ah(u8),
}

impl Ext {
    /// Next-header number that announces it.
    pub fn code(&self) -> u8 {
        match self {
            Ext::HopByHop(_) => NH_HOP,
            Ext::Routing(_) => NH_ROUTING,
            Ext::DestOpts(_) => NH_DSTOPTS,
            Ext::Fragment(..) => NH_FRAGMENT,
            Ext::Ah(_) => NH_AH,
        }
    }

    /// Wire length.
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> usize {
        match self {
            Ext::HopByHop(u) | Ext::Routing(u) | Ext::DestOpts(u) => (*u as usize + 1) * 8,
            Ext::Fragment(..) => 8,
            Ext::Ah(l) => (*l as usize + 2) * 4,
        }
    }

    fn bytes(&self, next: u8) -> Vec<u8> {
        let mut b = vec![0u8; self.len()];
        b[0] = next;
        match self {
            Ext::HopByHop(u) | Ext::Routing(u) | Ext::DestOpts(u) => {
                b[1] = *u;
                // PadN filling the rest of the options area.
                b[2] = 1;
                b[3] = (self.len() - 4) as u8;
            }
            Ext::Fragment(off, m) => {
                let v = (off << 3) | u16::from(*m);
                b[2..4].copy_from_slice(&v.to_be_bytes());
                b[4..8].copy_from_slice(&0xdead_beefu32.to_be_bytes());
            }
            Ext::Ah(l) => {
                b[1] = *l;
                b[4..8].copy_from_slice(&0x100u32.to_be_bytes()); // SPI
            }
        }
        b
    }
}

/// An IPv6 header description.
#[derive(Clone, Debug)]
pub struct Ipv6 {
    /// Source.
    pub src: [u8; 16],
    /// Destination.
    pub dst: [u8; 16],
    /// Hop limit.
    pub hop_limit: u8,
    /// Extension headers in order.
    pub exts: Vec<Ext>,
    /// Version nibble override.
    pub version: u8,
    /// Final next-header override (instead of the L4's protocol).
    pub last_nh: Option<u8>,
}

impl Ipv6 {
    /// A plain header from `src` to `dst`, hop limit 64.
    pub fn new(src: [u8; 16], dst: [u8; 16]) -> Self {
        Ipv6 {
            src,
            dst,
            hop_limit: 64,
            exts: Vec::new(),
            version: 6,
            last_nh: None,
        }
    }

    /// Sets the hop limit.
    pub fn hop_limit(mut self, h: u8) -> Self {
        self.hop_limit = h;
        self
    }

    /// Appends an extension header.
    pub fn ext(mut self, e: Ext) -> Self {
        self.exts.push(e);
        self
    }

    /// Overrides the version nibble.
    pub fn version(mut self, v: u8) -> Self {
        self.version = v;
        self
    }

    /// Overrides the final next header.
    pub fn last_nh(mut self, nh: u8) -> Self {
        self.last_nh = Some(nh);
        self
    }

    /// Builds the packet carrying `l4`.
    pub fn build(&self, l4: &L4) -> Net {
        let body = l4.bytes();
        let last = self.last_nh.unwrap_or(l4.proto());
        let codes: Vec<u8> = self.exts.iter().map(Ext::code).chain([last]).collect();
        let mut ext_bytes = Vec::new();
        let mut net_len = 40;
        let mut later = false;
        for (i, e) in self.exts.iter().enumerate() {
            ext_bytes.extend_from_slice(&e.bytes(codes[i + 1]));
            if !later {
                net_len += e.len();
            }
            if let Ext::Fragment(off, _) = e
                && *off != 0
            {
                later = true;
            }
        }
        let payload_len = (ext_bytes.len() + body.len()) as u16;
        let mut b = Vec::new();
        b.extend_from_slice(&[self.version << 4, 0, 0, 0]);
        b.extend_from_slice(&payload_len.to_be_bytes());
        b.push(codes[0]);
        b.push(self.hop_limit);
        b.extend_from_slice(&self.src);
        b.extend_from_slice(&self.dst);
        b.extend_from_slice(&ext_bytes);
        b.extend_from_slice(&body);
        let l4_hdr_len = if later || !matches!(last, 1 | 6 | 17 | 58) {
            0
        } else {
            l4.hdr_len()
        };
        Net {
            ethertype: ETH_P_IPV6,
            bytes: b,
            fixed_len: 40,
            net_len,
            l4_hdr_len,
        }
    }
}

/// A non-IP L3 payload.
pub fn non_ip(ethertype: u16, bytes: &[u8]) -> Net {
    Net {
        ethertype,
        bytes: bytes.to_vec(),
        fixed_len: 0,
        net_len: 0,
        l4_hdr_len: 0,
    }
}

/// A 28-byte ARP request (who-has 10.0.0.2 tell 10.0.0.1).
pub fn arp_request() -> Net {
    let mut b = Vec::new();
    b.extend_from_slice(&[0, 1, 0x08, 0x00, 6, 4, 0, 1]);
    b.extend_from_slice(&MAC_SRC);
    b.extend_from_slice(&[10, 0, 0, 1]);
    b.extend_from_slice(&[0; 6]);
    b.extend_from_slice(&[10, 0, 0, 2]);
    non_ip(agent_common::classify::ETH_P_ARP, &b)
}

// ---------------------------------------------------------------------------------------
// L2
// ---------------------------------------------------------------------------------------

/// A full packet and where its layers are.
#[derive(Clone, Debug)]
pub struct Pkt {
    /// Bytes.
    pub bytes: Vec<u8>,
    /// Offset of the L3 header.
    pub l3_off: usize,
    /// End of the fixed IP header.
    pub fixed_end: usize,
    /// End of the network-layer headers the classifier walks (= L4 offset when parsed).
    pub net_end: usize,
    /// End of the L4 header (= `net_end` when none is parsed).
    pub l4_end: usize,
    /// True for IPv6 (ext-header truncation reports `BadExtHeaders`).
    pub v6: bool,
}

/// An 802.1Q tag with VLAN id `vid`.
pub fn dot1q(vid: u16) -> (u16, u16) {
    (ETH_P_8021Q, vid)
}

/// An 802.1ad service tag with VLAN id `vid`.
pub fn dot1ad(vid: u16) -> (u16, u16) {
    (ETH_P_8021AD, vid)
}

/// Ethernet II frame with the given tags (TPID, TCI) around `net`.
pub fn eth_tagged(tags: &[(u16, u16)], net: &Net) -> Pkt {
    let mut b = Vec::new();
    b.extend_from_slice(&MAC_DST);
    b.extend_from_slice(&MAC_SRC);
    for (tpid, tci) in tags {
        b.extend_from_slice(&tpid.to_be_bytes());
        b.extend_from_slice(&tci.to_be_bytes());
    }
    b.extend_from_slice(&net.ethertype.to_be_bytes());
    let l3 = b.len();
    b.extend_from_slice(&net.bytes);
    layout_at(b, l3, net)
}

/// Ethernet II frame around `net`.
pub fn eth(net: &Net) -> Pkt {
    eth_tagged(&[], net)
}

/// A raw-IP packet (no link header).
pub fn raw_ip(net: &Net) -> Pkt {
    layout_at(net.bytes.clone(), 0, net)
}

/// The layout of `bytes` whose L3 packet `net` starts at `l3`.
pub fn layout_at(bytes: Vec<u8>, l3: usize, net: &Net) -> Pkt {
    Pkt {
        bytes,
        l3_off: l3,
        fixed_end: l3 + net.fixed_len,
        net_end: l3 + net.net_len,
        l4_end: l3 + net.net_len + net.l4_hdr_len,
        v6: net.ethertype == ETH_P_IPV6,
    }
}

impl Pkt {
    /// Expected classifier result for the first `k` bytes of this (valid) packet, given the
    /// summary `full` of the whole packet.
    pub fn expect_prefix(
        &self,
        full: &Summary,
        k: usize,
    ) -> Result<Summary, agent_common::ParseError> {
        use agent_common::ParseError::*;
        if k < self.l3_off || k < self.fixed_end {
            return Err(Truncated);
        }
        if k < self.net_end {
            return Err(if self.v6 { BadExtHeaders } else { Truncated });
        }
        if k < self.l4_end {
            return Err(L4Truncated);
        }
        Ok(Summary {
            wire_len: k as u32,
            ..*full
        })
    }
}
