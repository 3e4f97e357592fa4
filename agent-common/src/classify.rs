//! The L2–L4 packet classifier shared by the BPF programs, the live agent's tests and
//! `picket analyze`.
//!
//! It handles Ethernet II with up to [`MAX_VLAN_TAGS`] VLAN tags (802.1Q, 802.1ad and the
//! older 0x9100/0x9200 QinQ TPIDs), PPPoE sessions, up to [`MAX_MPLS_LABELS`] MPLS labels,
//! one level of tunnel (VXLAN, Geneve, GRE, IP-in-IP: `crate::tunnel`), IPv4 with options and fragments, IPv6 with a chain of up
//! to [`MAX_EXT_HDRS`] extension headers, and TCP, UDP, ICMP and ICMPv6, whose headers must
//! lie within the IP payload (Ethernet padding after it is never read as L4). Everything is `#[inline(always)]` and every loop has a constant bound so that
//! the verifier accepts the same code that the host tests exercise.

use crate::packet::Packet;

/// EtherType of IPv4.
pub const ETH_P_IPV4: u16 = 0x0800;
/// EtherType of IPv6.
pub const ETH_P_IPV6: u16 = 0x86dd;
/// EtherType of ARP.
pub const ETH_P_ARP: u16 = 0x0806;
/// EtherType of an 802.1Q VLAN tag.
pub const ETH_P_8021Q: u16 = 0x8100;
/// EtherType of an 802.1ad (QinQ) service tag.
pub const ETH_P_8021AD: u16 = 0x88a8;
/// TPID of pre-standard QinQ service tags (Cisco and others).
pub const ETH_P_QINQ1: u16 = 0x9100;
/// TPID of pre-standard QinQ service tags, second variant.
pub const ETH_P_QINQ2: u16 = 0x9200;

/// IP protocol number of ICMP.
pub const IPPROTO_ICMP: u8 = 1;
/// IP protocol number of TCP.
pub const IPPROTO_TCP: u8 = 6;
/// IP protocol number of UDP.
pub const IPPROTO_UDP: u8 = 17;
/// IP protocol number of ICMPv6.
pub const IPPROTO_ICMPV6: u8 = 58;
/// IP protocol number of SCTP.
pub const IPPROTO_SCTP: u8 = 132;

/// SCTP chunk type INIT (an association opening: `nmap -sY`).
pub const SCTP_INIT: u8 = 1;
/// SCTP chunk type INIT-ACK (the answer of an open port).
pub const SCTP_INIT_ACK: u8 = 2;
/// SCTP chunk type ABORT (the answer of a closed port).
pub const SCTP_ABORT: u8 = 6;
/// SCTP chunk type COOKIE-ECHO (`nmap -sZ`).
pub const SCTP_COOKIE_ECHO: u8 = 10;
/// SCTP chunk type COOKIE-ACK.
pub const SCTP_COOKIE_ACK: u8 = 11;

/// [`Summary::sflags`]: the ICMP error quotes a packet whose source is the error's
/// destination (only then does it answer that host's probe; otherwise it is ignored).
pub const SF_Q_MATCH: u8 = 1;
/// [`Summary::sflags`]: the quoted L4 header was read (`q_sport`, `q_dport` are set).
pub const SF_Q_L4: u8 = 2;
/// IP protocol number of IPv4 in IP (IP-in-IP, RFC 2003).
pub const IPPROTO_IPIP: u8 = 4;
/// IP protocol number of IPv6 in IP (6in4, RFC 4213; 6in6, RFC 2473).
pub const IPPROTO_IPV6: u8 = 41;
/// IP protocol number of GRE.
pub const IPPROTO_GRE: u8 = 47;

/// EtherType of an MPLS unicast label stack.
pub const ETH_P_MPLS_UC: u16 = 0x8847;
/// EtherType of an MPLS multicast label stack.
pub const ETH_P_MPLS_MC: u16 = 0x8848;
/// EtherType of a PPPoE session frame.
pub const ETH_P_PPPOE_SES: u16 = 0x8864;
/// EtherType (GRE/Geneve protocol type) of transparent Ethernet bridging: an inner frame.
pub const ETH_P_TEB: u16 = 0x6558;

/// Most MPLS labels walked; a stack without its bottom-of-stack bit by then is counted as
/// non-IP (its EtherType stays MPLS). Provider networks use two or three.
pub const MAX_MPLS_LABELS: usize = 4;

/// Most VLAN tags parsed; a frame with more is [`ParseError::TooManyVlanTags`]. Provider
/// networks stack two or three (802.1ad + 802.1Q, sometimes a customer tag again).
pub const MAX_VLAN_TAGS: usize = 4;
/// Most IPv6 extension headers walked before the packet counts as malformed. RFC 8200 puts
/// no limit; real traffic carries one to three, evasion tests use long chains.
pub const MAX_EXT_HDRS: usize = 8;

/// TCP flag FIN.
pub const TCP_FIN: u16 = 0x001;
/// TCP flag SYN.
pub const TCP_SYN: u16 = 0x002;
/// TCP flag RST.
pub const TCP_RST: u16 = 0x004;
/// TCP flag PSH.
pub const TCP_PSH: u16 = 0x008;
/// TCP flag ACK.
pub const TCP_ACK: u16 = 0x010;
/// TCP flag URG.
pub const TCP_URG: u16 = 0x020;
/// TCP flag ECE.
pub const TCP_ECE: u16 = 0x040;
/// TCP flag CWR.
pub const TCP_CWR: u16 = 0x080;
/// TCP flag NS (ECN nonce, bit 8).
pub const TCP_NS: u16 = 0x100;

/// [`Summary::fragment`]: not a fragment.
pub const FRAG_NONE: u8 = 0;
/// [`Summary::fragment`]: first fragment (offset 0, more fragments follow); L4 is parsed.
pub const FRAG_FIRST: u8 = 1;
/// [`Summary::fragment`]: a later fragment; it carries no L4 header and no ports.
pub const FRAG_LATER: u8 = 2;
/// [`Summary::fragment`]: a first fragment whose IP payload is too short for its L4 header
/// (the header is split over fragments, as `nmap -f` does to slip past filters). Ports are
/// set when the payload holds them (4 bytes), TCP flags when it holds them (14 bytes); no
/// L4 header is parsed.
pub const FRAG_TINY: u8 = 3;

/// Why a packet could not be classified. Each kind has its own parse-error counter.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ParseError {
    /// The packet ends inside the Ethernet, VLAN or IP header.
    Truncated = 1,
    /// An IP header with a wrong version, an IHL below 5 or a total length below its header.
    BadIpHeader = 2,
    /// More than [`MAX_VLAN_TAGS`] VLAN tags.
    TooManyVlanTags = 3,
    /// More than [`MAX_EXT_HDRS`] IPv6 extension headers, or one that ends past the packet.
    BadExtHeaders = 4,
    /// The packet, or its IP payload, ends inside the TCP, UDP or ICMP header.
    L4Truncated = 5,
    /// A TCP header whose data offset is below 5.
    BadL4Header = 6,
}

/// Number of parse-error counters (indexed by `ParseError as u8`, slot 0 unused).
pub const PARSE_ERROR_SLOTS: usize = 8;

impl ParseError {
    /// All kinds, in counter order.
    pub const ALL: [ParseError; 6] = [
        ParseError::Truncated,
        ParseError::BadIpHeader,
        ParseError::TooManyVlanTags,
        ParseError::BadExtHeaders,
        ParseError::L4Truncated,
        ParseError::BadL4Header,
    ];

    /// Stable snake_case name used in outputs and metrics.
    pub const fn name(self) -> &'static str {
        match self {
            ParseError::Truncated => "truncated",
            ParseError::BadIpHeader => "bad_ip_header",
            ParseError::TooManyVlanTags => "too_many_vlan_tags",
            ParseError::BadExtHeaders => "bad_ext_headers",
            ParseError::L4Truncated => "l4_truncated",
            ParseError::BadL4Header => "bad_l4_header",
        }
    }
}

/// What the classifier learnt about one packet. `#[repr(C)]`, 128 bytes, no padding; 8-byte
/// aligned so that the addresses can be read as words ([`Summary::src_words`]).
#[repr(C, align(8))]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Summary {
    /// Source address; IPv4 as an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`).
    pub src: [u8; 16],
    /// Destination address, same encoding as `src`.
    pub dst: [u8; 16],
    /// Length on the wire in bytes.
    pub wire_len: u32,
    /// Innermost EtherType (after VLAN tags).
    pub ethertype: u16,
    /// TCP/UDP source port (0 when there is none).
    pub src_port: u16,
    /// TCP/UDP destination port (0 when there is none).
    pub dst_port: u16,
    /// TCP flags, `TCP_*` bits (0 for other protocols).
    pub tcp_flags: u16,
    /// Offset of the L3 header.
    pub l3_off: u16,
    /// Offset of the L4 header (0 when not parsed).
    pub l4_off: u16,
    /// Offset of the L4 payload (0 when not parsed); for the tunnel protocols 4, 41 and 47,
    /// which have no L4 header, the start of the IP payload.
    pub payload_off: u16,
    /// 0 for non-IP, 4 or 6.
    pub family: u8,
    /// IP protocol of the L4 header (after IPv6 extension headers).
    pub proto: u8,
    /// ICMP/ICMPv6 type.
    pub icmp_type: u8,
    /// ICMP/ICMPv6 code.
    pub icmp_code: u8,
    /// `FRAG_NONE`, `FRAG_FIRST`, `FRAG_LATER` or `FRAG_TINY`.
    pub fragment: u8,
    /// Number of VLAN tags.
    pub vlan_depth: u8,
    /// Number of IPv6 extension headers walked.
    pub ext_hdrs: u8,
    /// IP TTL / hop limit.
    pub ttl: u8,
    /// Padding, always zero.
    pub _pad: [u8; 6],

    // ---- Encapsulation (issue 12, `crate::tunnel`): 40 bytes -------------------------
    // When `encap != 0` the fields above describe the INNER packet and these the tunnel.
    /// Outer (tunnel endpoint) source address, encoded as `src`; zero when not tunnelled.
    pub outer_src: [u8; 16],
    /// Outer (tunnel endpoint) destination address, encoded as `src`.
    pub outer_dst: [u8; 16],
    /// VXLAN/Geneve VNI or GRE key (0 when there is none).
    pub vni: u32,
    /// `ENCAP_*` kind of the tunnel decapsulated (`crate::tunnel`), 0 for none.
    pub encap: u8,
    /// `INNER_*` reason why a tunnel's inner packet was not decoded (0: decoded or no
    /// tunnel). The summary then describes the outer packet.
    pub inner_error: u8,
    /// `SHIM_*` bits: L2.5 headers walked before L3 (MPLS, PPPoE).
    pub shim: u8,
    /// Number of MPLS labels walked.
    pub mpls_depth: u8,

    // Outcome-aware probing (issue 11, bytes 104..128): what an ICMP error quotes, and the
    // SCTP chunk type.
    /// ICMP/ICMPv6 errors: destination of the quoted packet (the probed host).
    pub q_dst: [u8; 16],
    /// ICMP errors: source port of the quoted TCP/UDP/SCTP header (0 otherwise).
    pub q_sport: u16,
    /// ICMP errors: destination port of the quoted TCP/UDP/SCTP header, or the type of a
    /// quoted ICMP request (0 otherwise).
    pub q_dport: u16,
    /// ICMP errors: IP protocol of the quoted packet (0 when there is no quote).
    pub q_proto: u8,
    /// SCTP: type of the first chunk (0 for other protocols).
    pub sctp_chunk: u8,
    /// `SF_*` bits.
    pub sflags: u8,
    /// Padding, always zero.
    pub _pad2: u8,
}

const _: () = assert!(core::mem::size_of::<Summary>() == 128);
const _: () = assert!(core::mem::offset_of!(Summary, outer_src) == 64);
const _: () = assert!(core::mem::offset_of!(Summary, outer_dst) == 80);
const _: () = assert!(core::mem::offset_of!(Summary, q_dst) == 104);
const _: () = assert!(core::mem::offset_of!(Summary, src) == 0);
const _: () = assert!(core::mem::offset_of!(Summary, dst) == 16);

impl Summary {
    /// Every field zero: the classifier's starting point.
    pub const EMPTY: Summary = Summary {
        src: [0; 16],
        dst: [0; 16],
        wire_len: 0,
        ethertype: 0,
        src_port: 0,
        dst_port: 0,
        tcp_flags: 0,
        l3_off: 0,
        l4_off: 0,
        payload_off: 0,
        family: 0,
        proto: 0,
        icmp_type: 0,
        icmp_code: 0,
        fragment: 0,
        vlan_depth: 0,
        ext_hdrs: 0,
        ttl: 0,
        _pad: [0; 6],
        outer_src: [0; 16],
        outer_dst: [0; 16],
        vni: 0,
        encap: 0,
        inner_error: 0,
        shim: 0,
        mpls_depth: 0,
        q_dst: [0; 16],
        q_sport: 0,
        q_dport: 0,
        q_proto: 0,
        sctp_chunk: 0,
        sflags: 0,
        _pad2: 0,
    };

    /// The source address as two native-endian words: two loads instead of sixteen.
    #[inline(always)]
    pub fn src_words(&self) -> [u64; 2] {
        // SAFETY: `src` is at offset 0 of an 8-byte aligned struct (asserted above), so it
        // is 8-byte aligned, and every bit pattern is a valid u64.
        unsafe { *(self.src.as_ptr() as *const [u64; 2]) }
    }

    /// The destination address as two native-endian words (see [`Summary::src_words`]).
    #[inline(always)]
    pub fn dst_words(&self) -> [u64; 2] {
        // SAFETY: `dst` is at offset 16 of an 8-byte aligned struct (asserted above).
        unsafe { *(self.dst.as_ptr() as *const [u64; 2]) }
    }

    /// The quoted destination of an ICMP error as two native-endian words.
    #[inline(always)]
    pub fn q_dst_words(&self) -> [u64; 2] {
        // SAFETY: `q_dst` is at offset 104 of an 8-byte aligned struct (asserted above).
        unsafe { *(self.q_dst.as_ptr() as *const [u64; 2]) }
    }

    /// The tunnel's outer source address as two native-endian words.
    #[inline(always)]
    pub fn outer_src_words(&self) -> [u64; 2] {
        // SAFETY: `outer_src` is at offset 64 of an 8-byte aligned struct (asserted above).
        unsafe { *(self.outer_src.as_ptr() as *const [u64; 2]) }
    }

    /// The tunnel's outer destination address as two native-endian words.
    #[inline(always)]
    pub fn outer_dst_words(&self) -> [u64; 2] {
        // SAFETY: `outer_dst` is at offset 80 of an 8-byte aligned struct.
        unsafe { *(self.outer_dst.as_ptr() as *const [u64; 2]) }
    }

    /// True for IPv4 or IPv6 packets.
    #[inline(always)]
    pub fn is_ip(&self) -> bool {
        self.family != 0
    }

    /// True when the L4 header was parsed (not a later fragment, known protocol).
    #[inline(always)]
    pub fn has_l4(&self) -> bool {
        self.l4_off != 0
    }

    /// TCP with SYN and without ACK: a connection attempt.
    #[inline(always)]
    pub fn is_syn(&self) -> bool {
        self.proto == IPPROTO_TCP
            && self.has_l4()
            && self.tcp_flags & (TCP_SYN | TCP_ACK) == TCP_SYN
    }

    /// TCP with SYN and ACK: a handshake answer.
    #[inline(always)]
    pub fn is_syn_ack(&self) -> bool {
        self.proto == IPPROTO_TCP
            && self.has_l4()
            && self.tcp_flags & (TCP_SYN | TCP_ACK) == (TCP_SYN | TCP_ACK)
    }

    /// TCP with RST.
    #[inline(always)]
    pub fn is_rst(&self) -> bool {
        self.proto == IPPROTO_TCP && self.has_l4() && self.tcp_flags & TCP_RST != 0
    }

    /// True for ICMP (IPv4) or ICMPv6.
    #[inline(always)]
    pub fn is_icmp(&self) -> bool {
        (self.family == 4 && self.proto == IPPROTO_ICMP)
            || (self.family == 6 && self.proto == IPPROTO_ICMPV6)
    }

    /// A packet that opens something on the destination: what scanners and sweepers send
    /// (docs/detection-state-design.md §2.1, "Opening" and "UDP").
    ///
    /// * TCP without ACK and without RST: SYN, FIN, NULL, Xmas, URG/PSH combinations; and
    ///   SYN with RST, which no stack sends (unicornscan's all-flags probes). Every packet of
    ///   an established connection carries ACK, so ordinary traffic never counts; ACK-class
    ///   probes (`-sA`, `-sW`, `-sM`, `-PA`) count only through the bare RSTs they draw.
    /// * UDP from any source port (`-sU -g 53` included): whether it was a probe is decided
    ///   by what became of it, not by its ports.
    /// * SCTP INIT and COOKIE-ECHO.
    /// * ICMP/ICMPv6 echo, timestamp and address-mask requests.
    /// * Other IP protocols (`-sO`), whatever follows their IP header.
    ///
    /// Later fragments carry no L4 header and never count. A first fragment too short for
    /// its L4 header (`nmap -f`, `--mtu 16`: an evasion) counts by the ports and flags it
    /// holds: TCP without ACK and RST (flags it does not hold read as none), UDP.
    #[inline(always)]
    pub fn is_probe(&self) -> bool {
        if self.fragment == FRAG_TINY {
            return self.dst_port != 0
                && match self.proto {
                    IPPROTO_TCP => tcp_opening(self.tcp_flags),
                    IPPROTO_UDP => true,
                    _ => false,
                };
        }
        if self.fragment == FRAG_LATER {
            return false;
        }
        match self.proto {
            IPPROTO_TCP => self.has_l4() && tcp_opening(self.tcp_flags),
            IPPROTO_UDP => self.has_l4(),
            IPPROTO_SCTP => {
                self.has_l4() && matches!(self.sctp_chunk, SCTP_INIT | SCTP_COOKIE_ECHO)
            }
            IPPROTO_ICMP => {
                self.has_l4() && self.family == 4 && matches!(self.icmp_type, 8 | 13 | 17)
            }
            IPPROTO_ICMPV6 => self.has_l4() && self.family == 6 && self.icmp_type == 128,
            _ => self.is_ip(),
        }
    }

    /// An ICMP/ICMPv6 error (v4 types 3, 11, 12; v6 types 1, 3, 4) that quotes a packet
    /// this error's destination sent ([`SF_Q_MATCH`]): the answer to that packet.
    #[inline(always)]
    pub fn is_quoting_error(&self) -> bool {
        self.q_proto != 0 && self.sflags & SF_Q_MATCH != 0
    }
}

/// TCP flags that open something: no ACK and no RST, or the impossible SYN with RST.
#[inline(always)]
pub fn tcp_opening(flags: u16) -> bool {
    flags & (TCP_ACK | TCP_RST) == 0 || flags & (TCP_SYN | TCP_RST) == TCP_SYN | TCP_RST
}

#[repr(C)]
#[derive(Clone, Copy)]
struct EthHdr {
    _dst: [u8; 6],
    _src: [u8; 6],
    ethertype: [u8; 2],
}

#[repr(C)]
#[derive(Clone, Copy)]
struct VlanTag {
    _tci: [u8; 2],
    ethertype: [u8; 2],
}

#[repr(C)]
#[derive(Clone, Copy)]
struct PppoeHdr {
    _ver_type: u8,
    _code: u8,
    _session: [u8; 2],
    _len: [u8; 2],
    ppp_proto: [u8; 2],
}

#[repr(C)]
#[derive(Clone, Copy)]
struct Ipv4Hdr {
    ver_ihl: u8,
    _tos: u8,
    tot_len: [u8; 2],
    _id: [u8; 2],
    frag: [u8; 2],
    ttl: u8,
    proto: u8,
    _csum: [u8; 2],
    src: [u8; 4],
    dst: [u8; 4],
}

#[repr(C)]
#[derive(Clone, Copy)]
struct Ipv6Hdr {
    ver_tc_fl: [u8; 4],
    _payload_len: [u8; 2],
    next_hdr: u8,
    hop_limit: u8,
    src: [u8; 16],
    dst: [u8; 16],
}

#[repr(C)]
#[derive(Clone, Copy)]
struct Ipv6ExtHdr {
    next_hdr: u8,
    len: u8,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct Ipv6FragHdr {
    next_hdr: u8,
    _reserved: u8,
    frag: [u8; 2],
    _id: [u8; 4],
}

#[repr(C)]
#[derive(Clone, Copy)]
struct TcpHdr {
    src_port: [u8; 2],
    dst_port: [u8; 2],
    _seq: [u8; 4],
    _ack: [u8; 4],
    doff_ns: u8,
    flags: u8,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct UdpHdr {
    src_port: [u8; 2],
    dst_port: [u8; 2],
    _len: [u8; 2],
    _csum: [u8; 2],
}

#[repr(C)]
#[derive(Clone, Copy)]
struct IcmpHdr {
    ty: u8,
    code: u8,
    _csum: [u8; 2],
    _rest: [u8; 4],
}

/// SCTP common header and the first chunk's type.
#[repr(C)]
#[derive(Clone, Copy)]
struct SctpHdr {
    src_port: [u8; 2],
    dst_port: [u8; 2],
    _vtag: [u8; 4],
    _csum: [u8; 4],
    chunk: u8,
}

/// The first 8 bytes of a quoted L4 header: ports for TCP/UDP/SCTP, the type for ICMP.
#[repr(C)]
#[derive(Clone, Copy)]
struct QuotedL4 {
    a: [u8; 2],
    b: [u8; 2],
}

#[inline(always)]
pub(crate) fn be16(b: [u8; 2]) -> u16 {
    u16::from_be_bytes(b)
}

/// Length of the Ethernet II header.
const ETH_HLEN: usize = core::mem::size_of::<EthHdr>();
/// Length of one VLAN tag.
const VLAN_HLEN: usize = core::mem::size_of::<VlanTag>();

/// True for the EtherTypes that announce a VLAN tag.
#[inline(always)]
fn is_vlan_tpid(ethertype: u16) -> bool {
    matches!(
        ethertype,
        ETH_P_8021Q | ETH_P_8021AD | ETH_P_QINQ1 | ETH_P_QINQ2
    )
}

/// Classifies a frame that starts with an Ethernet II header, decapsulating one tunnel
/// level (`crate::tunnel`).
#[inline(always)]
pub fn classify_eth<P: Packet + ?Sized>(p: &P) -> Result<Summary, ParseError> {
    by_value(|s, scratch| classify_eth_into(p, s, scratch))
}

/// Classifies from the EtherType `ethertype` whose payload starts at `start` (the cooked
/// link layers whose headers carry an EtherType), decapsulating one tunnel level.
#[inline(always)]
pub fn classify_tagged<P: Packet + ?Sized>(
    p: &P,
    ethertype: u16,
    start: usize,
) -> Result<Summary, ParseError> {
    by_value(|s, scratch| {
        layer_tagged(p, ethertype, start, s)?;
        crate::tunnel::decapsulate(p, s, scratch);
        Ok(())
    })
}

/// Classifies a packet whose byte `off` starts an IP header (raw-IP link types and L3
/// devices such as tun, ipip, gre, wireguard); the IP version comes from the first nibble.
/// Decapsulates one tunnel level.
#[inline(always)]
pub fn classify_ip<P: Packet + ?Sized>(p: &P, off: usize) -> Result<Summary, ParseError> {
    by_value(|s, scratch| classify_ip_into(p, off, s, scratch))
}

/// [`classify_eth`] into `s`, with `scratch` for the inner packet of a tunnel: the BPF
/// programs keep both in a map, as two 128-byte summaries do not fit their 512-byte stack.
/// `s` is meaningless after an error.
#[inline(always)]
pub fn classify_eth_into<P: Packet + ?Sized>(
    p: &P,
    s: &mut Summary,
    scratch: &mut Summary,
) -> Result<(), ParseError> {
    layer_eth(p, 0, s)?;
    crate::tunnel::decapsulate(p, s, scratch);
    Ok(())
}

/// [`classify_ip`] into `s` (see [`classify_eth_into`]).
#[inline(always)]
pub fn classify_ip_into<P: Packet + ?Sized>(
    p: &P,
    off: usize,
    s: &mut Summary,
    scratch: &mut Summary,
) -> Result<(), ParseError> {
    layer_ip(p, off, s)?;
    crate::tunnel::decapsulate(p, s, scratch);
    Ok(())
}

/// Runs a classification into two summaries on the stack and returns the first.
#[inline(always)]
fn by_value(
    f: impl FnOnce(&mut Summary, &mut Summary) -> Result<(), ParseError>,
) -> Result<Summary, ParseError> {
    let mut s = Summary::EMPTY;
    let mut scratch = Summary::EMPTY;
    f(&mut s, &mut scratch)?;
    Ok(s)
}

/// One layer of [`classify_eth`]: the Ethernet header at `off` and what follows, without
/// decapsulation (also the inner frame of VXLAN, Geneve and Ethernet-over-GRE).
#[inline(always)]
pub(crate) fn layer_eth<P: Packet + ?Sized>(
    p: &P,
    off: usize,
    s: &mut Summary,
) -> Result<(), ParseError> {
    let eth: EthHdr = p.load(off).ok_or(ParseError::Truncated)?;
    layer_tagged(p, be16(eth.ethertype), off + ETH_HLEN, s)
}

/// One layer of [`classify_tagged`]: skips up to [`MAX_VLAN_TAGS`] VLAN tags, a PPPoE
/// session header and up to [`MAX_MPLS_LABELS`] MPLS labels, then classifies the L3 header.
#[inline(always)]
pub(crate) fn layer_tagged<P: Packet + ?Sized>(
    p: &P,
    mut ethertype: u16,
    start: usize,
    s: &mut Summary,
) -> Result<(), ParseError> {
    let mut off = start;
    let mut tags = 0;
    while tags < MAX_VLAN_TAGS {
        if !is_vlan_tpid(ethertype) {
            break;
        }
        let tag: VlanTag = p.load(off).ok_or(ParseError::Truncated)?;
        ethertype = be16(tag.ethertype);
        off += VLAN_HLEN;
        tags += 1;
    }
    if is_vlan_tpid(ethertype) {
        return Err(ParseError::TooManyVlanTags);
    }
    let mut shim = 0;
    if ethertype == ETH_P_PPPOE_SES {
        let h: PppoeHdr = p.load(off).ok_or(ParseError::Truncated)?;
        shim |= SHIM_PPPOE;
        match be16(h.ppp_proto) {
            0x0021 => ethertype = ETH_P_IPV4,
            0x0057 => ethertype = ETH_P_IPV6,
            // LCP, authentication and the other PPP protocols: not IP.
            _ => {}
        }
        if ethertype != ETH_P_PPPOE_SES {
            off += core::mem::size_of::<PppoeHdr>();
        }
    }
    let mut labels = 0;
    if ethertype == ETH_P_MPLS_UC || ethertype == ETH_P_MPLS_MC {
        shim |= SHIM_MPLS;
        while labels < MAX_MPLS_LABELS {
            let l: [u8; 4] = p.load(off).ok_or(ParseError::Truncated)?;
            off += 4;
            labels += 1;
            if l[2] & 1 != 0 {
                // Bottom of the stack: the payload's first nibble tells IPv4 from IPv6 (an
                // Ethernet pseudowire, nibble 0, is not decoded: non-IP).
                // Two bytes, not one: LLVM turns a one-byte bound check into a `>=` the
                // verifier cannot use. Any IP header has both.
                let first: [u8; 2] = p.load(off).ok_or(ParseError::Truncated)?;
                match first[0] >> 4 {
                    4 => ethertype = ETH_P_IPV4,
                    6 => ethertype = ETH_P_IPV6,
                    _ => {}
                }
                break;
            }
        }
    }
    // One path from here on whatever the number of tags and labels (see
    // `Packet::merge_offset`): the offset and the depths go through it packed in one word.
    let packed = p.merge_offset(off | (tags << 16) | (labels << 20) | ((shim as usize) << 24));
    let off = packed & 0xffff;
    let tags = (packed >> 16) & 0x0f;
    let labels = (packed >> 20) & 0x0f;
    let shim = ((packed >> 24) & 0x0f) as u8;
    if off < start || off > start + L2_SHIM_MAX {
        return Err(ParseError::Truncated);
    }
    classify_l3_into(p, ethertype, off, s)?;
    s.vlan_depth = tags as u8;
    s.mpls_depth = labels as u8;
    s.shim = shim;
    Ok(())
}

/// [`Summary::shim`]: a PPPoE session header was walked.
pub const SHIM_PPPOE: u8 = 1;
/// [`Summary::shim`]: an MPLS label stack was walked.
pub const SHIM_MPLS: u8 = 2;

/// Most bytes of VLAN tags, PPPoE header and MPLS labels between the link header and L3.
const L2_SHIM_MAX: usize =
    VLAN_HLEN * MAX_VLAN_TAGS + core::mem::size_of::<PppoeHdr>() + 4 * MAX_MPLS_LABELS;

/// One layer of [`classify_ip`]: the IP header at `off`, without decapsulation.
#[inline(always)]
pub(crate) fn layer_ip<P: Packet + ?Sized>(
    p: &P,
    off: usize,
    s: &mut Summary,
) -> Result<(), ParseError> {
    // Two bytes (see the MPLS payload above); any IP header has both.
    let first: [u8; 2] = p.load(off).ok_or(ParseError::Truncated)?;
    match first[0] >> 4 {
        4 => classify_l3_into(p, ETH_P_IPV4, off, s),
        6 => classify_l3_into(p, ETH_P_IPV6, off, s),
        _ => Err(ParseError::BadIpHeader),
    }
}

/// Classifies from an L3 header of the given EtherType at offset `off`. Non-IP EtherTypes
/// give a summary with `family == 0` (counted, never an error).
#[inline(always)]
pub fn classify_l3<P: Packet + ?Sized>(
    p: &P,
    ethertype: u16,
    off: usize,
) -> Result<Summary, ParseError> {
    let mut s = Summary::EMPTY;
    classify_l3_into(p, ethertype, off, &mut s)?;
    Ok(s)
}

/// [`classify_l3`] into `s`, which it resets first.
#[inline(always)]
pub(crate) fn classify_l3_into<P: Packet + ?Sized>(
    p: &P,
    ethertype: u16,
    off: usize,
    s: &mut Summary,
) -> Result<(), ParseError> {
    *s = Summary::EMPTY;
    s.wire_len = p.wire_len() as u32;
    s.ethertype = ethertype;
    s.l3_off = off as u16;
    match ethertype {
        ETH_P_IPV4 => parse_ipv4(p, off, s),
        ETH_P_IPV6 => parse_ipv6(p, off, s),
        _ => Ok(()),
    }
}

#[inline(always)]
fn parse_ipv4<P: Packet + ?Sized>(p: &P, off: usize, s: &mut Summary) -> Result<(), ParseError> {
    let ip: Ipv4Hdr = p.load(off).ok_or(ParseError::Truncated)?;
    if ip.ver_ihl >> 4 != 4 {
        return Err(ParseError::BadIpHeader);
    }
    let hdr_len = ((ip.ver_ihl & 0x0f) as usize) * 4;
    let tot_len = be16(ip.tot_len) as usize;
    if hdr_len < 20 || tot_len < hdr_len {
        return Err(ParseError::BadIpHeader);
    }
    if off + hdr_len > p.len() {
        return Err(ParseError::Truncated);
    }
    s.family = 4;
    s.proto = ip.proto;
    s.ttl = ip.ttl;
    s.src[10] = 0xff;
    s.src[11] = 0xff;
    s.dst[10] = 0xff;
    s.dst[11] = 0xff;
    s.src[12..16].copy_from_slice(&ip.src);
    s.dst[12..16].copy_from_slice(&ip.dst);
    let frag = be16(ip.frag);
    if frag & 0x1fff != 0 {
        s.fragment = FRAG_LATER;
        return Ok(());
    }
    if frag & 0x2000 != 0 {
        s.fragment = FRAG_FIRST;
    }
    parse_l4(p, off + hdr_len, off + tot_len, s)
}

#[inline(always)]
fn parse_ipv6<P: Packet + ?Sized>(p: &P, off: usize, s: &mut Summary) -> Result<(), ParseError> {
    let ip: Ipv6Hdr = p.load(off).ok_or(ParseError::Truncated)?;
    if ip.ver_tc_fl[0] >> 4 != 6 {
        return Err(ParseError::BadIpHeader);
    }
    // End of the IP payload; a payload length of 0 (a jumbogram, RFC 2675) runs to the end
    // of the packet.
    let end = match be16(ip._payload_len) as usize {
        0 => p.wire_len(),
        n => off + core::mem::size_of::<Ipv6Hdr>() + n,
    };
    s.family = 6;
    s.ttl = ip.hop_limit;
    s.src = ip.src;
    s.dst = ip.dst;
    let mut nh = ip.next_hdr;
    let mut off = off + core::mem::size_of::<Ipv6Hdr>();
    let mut i = 0;
    while i < MAX_EXT_HDRS {
        match nh {
            // Hop-by-hop, routing, destination options: length in 8-octet units, not
            // counting the first 8.
            0 | 43 | 60 => {
                let ext: Ipv6ExtHdr = p.load(off).ok_or(ParseError::BadExtHeaders)?;
                nh = ext.next_hdr;
                off += (ext.len as usize + 1) * 8;
            }
            // Authentication header: length in 4-octet units, not counting the first 2.
            51 => {
                let ext: Ipv6ExtHdr = p.load(off).ok_or(ParseError::BadExtHeaders)?;
                nh = ext.next_hdr;
                off += (ext.len as usize + 2) * 4;
            }
            44 => {
                let fh: Ipv6FragHdr = p.load(off).ok_or(ParseError::BadExtHeaders)?;
                nh = fh.next_hdr;
                off += core::mem::size_of::<Ipv6FragHdr>();
                let frag = be16(fh.frag);
                s.ext_hdrs += 1;
                if frag & 0xfff8 != 0 {
                    s.proto = nh;
                    s.fragment = FRAG_LATER;
                    return Ok(());
                }
                if frag & 1 != 0 {
                    s.fragment = FRAG_FIRST;
                }
                i += 1;
                continue;
            }
            _ => break,
        }
        s.ext_hdrs += 1;
        i += 1;
    }
    if matches!(nh, 0 | 43 | 44 | 51 | 60) {
        return Err(ParseError::BadExtHeaders);
    }
    s.proto = nh;
    if off > p.len() || off > end {
        return Err(ParseError::BadExtHeaders);
    }
    parse_l4(p, off, end, s)
}

/// A first fragment whose IP payload (`end - off` bytes from `off`) cannot hold the L4
/// header: take what it does hold ([`FRAG_TINY`]).
#[inline(always)]
fn tiny_fragment<P: Packet + ?Sized>(p: &P, off: usize, end: usize, s: &mut Summary) {
    s.fragment = FRAG_TINY;
    if off + 4 <= end
        && let Some(ports) = p.load::<[u8; 4]>(off)
    {
        s.src_port = be16([ports[0], ports[1]]);
        s.dst_port = be16([ports[2], ports[3]]);
    }
    if s.proto == IPPROTO_TCP
        && off + 14 <= end
        && let Some(tcp) = p.load::<TcpHdr>(off)
    {
        s.tcp_flags = u16::from(tcp.flags) | (u16::from(tcp.doff_ns & 1) << 8);
    }
}

/// Parses the L4 header at `off`; the IP payload ends at `end` (bytes after it, such as
/// Ethernet padding, are not the packet's).
#[inline(always)]
fn parse_l4<P: Packet + ?Sized>(
    p: &P,
    off: usize,
    end: usize,
    s: &mut Summary,
) -> Result<(), ParseError> {
    let fixed = match s.proto {
        IPPROTO_TCP => core::mem::size_of::<TcpHdr>() + 6,
        IPPROTO_UDP => core::mem::size_of::<UdpHdr>(),
        IPPROTO_ICMP | IPPROTO_ICMPV6 => core::mem::size_of::<IcmpHdr>(),
        IPPROTO_SCTP => core::mem::size_of::<SctpHdr>(),
        // Tunnels: no L4 header, but `crate::tunnel` needs where the inner packet starts.
        IPPROTO_IPIP | IPPROTO_IPV6 | IPPROTO_GRE => {
            if off <= end {
                s.payload_off = off as u16;
            }
            return Ok(());
        }
        _ => return Ok(()),
    };
    if off + fixed > end {
        if s.fragment == FRAG_FIRST {
            tiny_fragment(p, off, end, s);
            return Ok(());
        }
        return Err(ParseError::L4Truncated);
    }
    match s.proto {
        IPPROTO_TCP => {
            let tcp: TcpHdr = p.load(off).ok_or(ParseError::L4Truncated)?;
            let doff = ((tcp.doff_ns >> 4) as usize) * 4;
            if doff < 20 {
                return Err(ParseError::BadL4Header);
            }
            // The header (with its options) must be in the packet and in the IP payload:
            // `TcpHdr` covers only its first 14 bytes.
            if off + doff > p.len() {
                return Err(ParseError::L4Truncated);
            }
            if off + doff > end {
                if s.fragment == FRAG_FIRST {
                    tiny_fragment(p, off, end, s);
                    return Ok(());
                }
                return Err(ParseError::L4Truncated);
            }
            s.src_port = be16(tcp.src_port);
            s.dst_port = be16(tcp.dst_port);
            s.tcp_flags = u16::from(tcp.flags) | (u16::from(tcp.doff_ns & 1) << 8);
            s.payload_off = (off + doff) as u16;
        }
        IPPROTO_UDP => {
            let udp: UdpHdr = p.load(off).ok_or(ParseError::L4Truncated)?;
            s.src_port = be16(udp.src_port);
            s.dst_port = be16(udp.dst_port);
            s.payload_off = (off + core::mem::size_of::<UdpHdr>()) as u16;
        }
        IPPROTO_ICMP | IPPROTO_ICMPV6 => {
            let icmp: IcmpHdr = p.load(off).ok_or(ParseError::L4Truncated)?;
            s.icmp_type = icmp.ty;
            s.icmp_code = icmp.code;
            s.payload_off = (off + core::mem::size_of::<IcmpHdr>()) as u16;
            let error = if s.proto == IPPROTO_ICMP {
                matches!(icmp.ty, 3 | 11 | 12)
            } else {
                matches!(icmp.ty, 1 | 3 | 4)
            };
            if error {
                parse_quote(p, off + core::mem::size_of::<IcmpHdr>(), end, s);
            }
        }
        IPPROTO_SCTP => {
            let sctp: SctpHdr = p.load(off).ok_or(ParseError::L4Truncated)?;
            s.src_port = be16(sctp.src_port);
            s.dst_port = be16(sctp.dst_port);
            s.sctp_chunk = sctp.chunk;
            s.payload_off = (off + 12) as u16;
        }
        _ => return Ok(()),
    }
    s.l4_off = off as u16;
    Ok(())
}

/// Reads the packet an ICMP/ICMPv6 error quotes at `off` (its IP header and the first 8
/// bytes of its L4 header, RFC 792 / RFC 4443) into the `q_*` fields. An IPv4 quote is read
/// with its options; an IPv6 quote only when no extension header follows its fixed header
/// (a quote with one is left unread: the error then answers nothing). A quote that does not
/// fit in the IP payload is left unread too: never an error, the ICMP header was valid.
#[inline(always)]
fn parse_quote<P: Packet + ?Sized>(p: &P, off: usize, end: usize, s: &mut Summary) {
    // Every path to an error (tag depths, IP options, extension headers, outer or inner
    // packet) reaches here with offsets of its own: merged and bounded again, the quote is
    // verified once instead of once per path (which took the programs past the verifier's
    // million instructions).
    let off = p.merge_offset(off);
    if off > crate::tunnel::MAX_HDR_OFF + 128 {
        return;
    }
    let (proto, l4, qsrc) = if s.family == 4 {
        let Some(ip) = p.load::<Ipv4Hdr>(off) else {
            return;
        };
        let ihl = ((ip.ver_ihl & 0x0f) as usize) * 4;
        if ip.ver_ihl >> 4 != 4 || ihl < 20 || off + 20 > end {
            return;
        }
        s.q_dst[10] = 0xff;
        s.q_dst[11] = 0xff;
        s.q_dst[12..16].copy_from_slice(&ip.dst);
        let mut src = [0u8; 16];
        src[10] = 0xff;
        src[11] = 0xff;
        src[12..16].copy_from_slice(&ip.src);
        (ip.proto, off + ihl, src)
    } else {
        let Some(ip) = p.load::<Ipv6Hdr>(off) else {
            return;
        };
        if ip.ver_tc_fl[0] >> 4 != 6 || off + core::mem::size_of::<Ipv6Hdr>() > end {
            return;
        }
        s.q_dst = ip.dst;
        (ip.next_hdr, off + core::mem::size_of::<Ipv6Hdr>(), ip.src)
    };
    if proto == 0 {
        return;
    }
    s.q_proto = proto;
    if qsrc == s.dst {
        s.sflags |= SF_Q_MATCH;
    }
    if l4 + 4 > end {
        return;
    }
    let Some(q) = p.load::<QuotedL4>(l4) else {
        return;
    };
    match proto {
        IPPROTO_TCP | IPPROTO_UDP | IPPROTO_SCTP => {
            s.q_sport = be16(q.a);
            s.q_dport = be16(q.b);
        }
        IPPROTO_ICMP | IPPROTO_ICMPV6 => s.q_dport = u16::from(q.a[0]),
        _ => {}
    }
    s.sflags |= SF_Q_L4;
}
