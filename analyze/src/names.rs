//! Names of numbers: link types, EtherTypes, IP protocols, ICMP/ICMPv6 types and codes, DNS
//! types and response codes.

/// Name of a pcap/pcapng link type (as in tcpdump's `linktypes.html`, without `LINKTYPE_`).
pub fn linktype(lt: u32) -> String {
    let name = match lt {
        0 => "NULL",
        1 => "ETHERNET",
        3 => "AX25",
        6 => "IEEE802_5",
        7 => "ARCNET_BSD",
        8 => "SLIP",
        9 => "PPP",
        10 => "FDDI",
        12 => "RAW (DLT 12)",
        14 => "RAW (DLT 14)",
        50 => "PPP_HDLC",
        51 => "PPP_ETHER",
        100 => "ATM_RFC1483",
        101 => "RAW",
        104 => "C_HDLC",
        105 => "IEEE802_11",
        107 => "FRELAY",
        108 => "LOOP",
        113 => "LINUX_SLL",
        114 => "LTALK",
        117 => "PFLOG",
        119 => "IEEE802_11_PRISM",
        122 => "IP_OVER_FC",
        123 => "SUNATM",
        127 => "IEEE802_11_RADIOTAP",
        129 => "ARCNET_LINUX",
        138 => "APPLE_IP_OVER_IEEE1394",
        139 => "MTP2_WITH_PHDR",
        140 => "MTP2",
        141 => "MTP3",
        142 => "SCCP",
        143 => "DOCSIS",
        144 => "LINUX_IRDA",
        147..=162 => return format!("USER{}", lt - 147),
        163 => "IEEE802_11_AVS",
        165 => "BACNET_MS_TP",
        166 => "PPP_PPPD",
        169 => "GPRS_LLC",
        177 => "LINUX_LAPD",
        187 => "BLUETOOTH_HCI_H4",
        189 => "USB_LINUX",
        192 => "PPI",
        195 => "IEEE802_15_4_WITHFCS",
        196 => "SITA",
        197 => "ERF",
        201 => "BLUETOOTH_HCI_H4_WITH_PHDR",
        202 => "AX25_KISS",
        203 => "LAPD",
        204 => "PPP_WITH_DIR",
        205 => "C_HDLC_WITH_DIR",
        206 => "FRELAY_WITH_DIR",
        209 => "IPMB_LINUX",
        215 => "IEEE802_15_4_NONASK_PHY",
        220 => "USB_LINUX_MMAPPED",
        224 => "FC_2",
        225 => "FC_2_WITH_FRAME_DELIMS",
        226 => "IPNET",
        227 => "CAN_SOCKETCAN",
        228 => "IPV4",
        229 => "IPV6",
        230 => "IEEE802_15_4_NOFCS",
        231 => "DBUS",
        235 => "DVB_CI",
        236 => "MUX27010",
        237 => "STANAG_5066_D_PDU",
        239 => "NFLOG",
        240 => "NETANALYZER",
        241 => "NETANALYZER_TRANSPARENT",
        242 => "IPOIB",
        243 => "MPEG_2_TS",
        244 => "NG40",
        245 => "NFC_LLCP",
        247 => "INFINIBAND",
        248 => "SCTP",
        249 => "USBPCAP",
        250 => "RTAC_SERIAL",
        251 => "BLUETOOTH_LE_LL",
        252 => "WIRESHARK_UPPER_PDU",
        253 => "NETLINK",
        254 => "BLUETOOTH_LINUX_MONITOR",
        255 => "BLUETOOTH_BREDR_BB",
        256 => "BLUETOOTH_LE_LL_WITH_PHDR",
        257 => "PROFIBUS_DL",
        258 => "PKTAP",
        259 => "EPON",
        260 => "IPMI_HPM_2",
        261 => "ZWAVE_R1_R2",
        262 => "ZWAVE_R3",
        263 => "WATTSTOPPER_DLM",
        264 => "ISO_14443",
        265 => "RDS",
        266 => "USB_DARWIN",
        268 => "SDLC",
        270 => "LORATAP",
        271 => "VSOCK",
        272 => "NORDIC_BLE",
        273 => "DOCSIS31_XRA31",
        274 => "ETHERNET_MPACKET",
        275 => "DISPLAYPORT_AUX",
        276 => "LINUX_SLL2",
        278 => "OPENVIZSLA",
        279 => "EBHSCR",
        280 => "VPP_DISPATCH",
        281 => "DSA_TAG_BRCM",
        282 => "DSA_TAG_BRCM_PREPEND",
        283 => "IEEE802_15_4_TAP",
        284 => "DSA_TAG_DSA",
        285 => "DSA_TAG_EDSA",
        286 => "ELEE",
        287 => "Z_WAVE_SERIAL",
        288 => "USB_2_0",
        289 => "ATSC_ALP",
        290 => "ETW",
        292 => "ZBOSS_NCP",
        293 => "USB_2_0_LOW_SPEED",
        294 => "USB_2_0_FULL_SPEED",
        295 => "USB_2_0_HIGH_SPEED",
        296 => "AUERSWALD_LOG",
        297 => "ZWAVE_TAP",
        298 => "SILABS_DEBUG_CHANNEL",
        299 => "FIRA_UCI",
        300 => "MDB",
        301 => "DECT_NR",
        _ => return format!("LINKTYPE_{lt}"),
    };
    name.to_string()
}

/// Name of an EtherType.
pub fn ethertype(et: u16) -> &'static str {
    match et {
        0x0800 => "IPv4",
        0x0806 => "ARP",
        0x0842 => "Wake-on-LAN",
        0x22f0 => "AVTP",
        0x22f3 => "TRILL",
        0x6002 => "DEC MOP RC",
        0x6003 => "DECnet",
        0x6004 => "DEC LAT",
        0x8035 => "RARP",
        0x809b => "AppleTalk",
        0x80f3 => "AARP",
        0x8100 => "802.1Q VLAN",
        0x8137 => "IPX",
        0x8204 => "QNX Qnet",
        0x86dd => "IPv6",
        0x8808 => "Ethernet flow control",
        0x8809 => "Slow protocols (LACP)",
        0x8819 => "CobraNet",
        0x8847 => "MPLS unicast",
        0x8848 => "MPLS multicast",
        0x8863 => "PPPoE discovery",
        0x8864 => "PPPoE session",
        0x887b => "HomePlug",
        0x888e => "EAPOL (802.1X)",
        0x8892 => "PROFINET",
        0x889a => "HyperSCSI",
        0x88a2 => "ATA over Ethernet",
        0x88a4 => "EtherCAT",
        0x88a8 => "802.1ad QinQ",
        0x88ab => "Ethernet Powerlink",
        0x88b8 => "GOOSE",
        0x88cc => "LLDP",
        0x88cd => "SERCOS III",
        0x88e1 => "HomePlug AV",
        0x88e3 => "MRP",
        0x88e5 => "MACsec",
        0x88e7 => "PBB",
        0x88f7 => "PTP",
        0x88fb => "PRP",
        0x8902 => "CFM",
        0x8906 => "FCoE",
        0x8914 => "FCoE init",
        0x8915 => "RoCE",
        0x891d => "TTEthernet",
        0x892f => "HSR",
        0x9000 => "Loopback (CTP)",
        _ => "",
    }
}

/// Name of an IP protocol number.
pub fn ip_proto(p: u8) -> &'static str {
    match p {
        0 => "HOPOPT",
        1 => "ICMP",
        2 => "IGMP",
        4 => "IPv4-in-IP",
        6 => "TCP",
        8 => "EGP",
        9 => "IGP",
        17 => "UDP",
        27 => "RDP",
        33 => "DCCP",
        41 => "IPv6-in-IP",
        43 => "IPv6-Route",
        44 => "IPv6-Frag",
        46 => "RSVP",
        47 => "GRE",
        50 => "ESP",
        51 => "AH",
        58 => "ICMPv6",
        59 => "IPv6-NoNxt",
        60 => "IPv6-Opts",
        88 => "EIGRP",
        89 => "OSPF",
        94 => "IPIP",
        97 => "EtherIP",
        98 => "ENCAP",
        103 => "PIM",
        108 => "IPComp",
        112 => "VRRP",
        115 => "L2TP",
        124 => "IS-IS",
        132 => "SCTP",
        135 => "Mobility Header",
        136 => "UDPLite",
        137 => "MPLS-in-IP",
        139 => "HIP",
        143 => "Ethernet",
        _ => "",
    }
}

/// "Type / Code" name of an ICMP (family 4) or ICMPv6 (family 6) message.
pub fn icmp(family: u8, ty: u8, code: u8) -> String {
    let (t, c) = if family == 6 {
        icmpv6_names(ty, code)
    } else {
        icmpv4_names(ty, code)
    };
    match (t, c) {
        ("", _) => format!("Type {ty} / Code {code}"),
        (t, Some(c)) => format!("{t} / {c}"),
        (t, None) if code == 0 => t.to_string(),
        (t, None) => format!("{t} / Code {code}"),
    }
}

fn icmpv4_names(ty: u8, code: u8) -> (&'static str, Option<&'static str>) {
    match ty {
        0 => ("Echo Reply", None),
        3 => (
            "Destination Unreachable",
            match code {
                0 => Some("Net Unreachable"),
                1 => Some("Host Unreachable"),
                2 => Some("Protocol Unreachable"),
                3 => Some("Port Unreachable"),
                4 => Some("Fragmentation Needed"),
                5 => Some("Source Route Failed"),
                6 => Some("Destination Network Unknown"),
                7 => Some("Destination Host Unknown"),
                8 => Some("Source Host Isolated"),
                9 => Some("Network Administratively Prohibited"),
                10 => Some("Host Administratively Prohibited"),
                11 => Some("Network Unreachable for ToS"),
                12 => Some("Host Unreachable for ToS"),
                13 => Some("Communication Administratively Prohibited"),
                14 => Some("Host Precedence Violation"),
                15 => Some("Precedence Cutoff in Effect"),
                _ => None,
            },
        ),
        4 => ("Source Quench", None),
        5 => (
            "Redirect",
            match code {
                0 => Some("Network"),
                1 => Some("Host"),
                2 => Some("ToS and Network"),
                3 => Some("ToS and Host"),
                _ => None,
            },
        ),
        8 => ("Echo Request", None),
        9 => ("Router Advertisement", None),
        10 => ("Router Solicitation", None),
        11 => (
            "Time Exceeded",
            match code {
                0 => Some("TTL Exceeded in Transit"),
                1 => Some("Fragment Reassembly Time Exceeded"),
                _ => None,
            },
        ),
        12 => (
            "Parameter Problem",
            match code {
                0 => Some("Pointer Indicates the Error"),
                1 => Some("Missing a Required Option"),
                2 => Some("Bad Length"),
                _ => None,
            },
        ),
        13 => ("Timestamp", None),
        14 => ("Timestamp Reply", None),
        15 => ("Information Request", None),
        16 => ("Information Reply", None),
        17 => ("Address Mask Request", None),
        18 => ("Address Mask Reply", None),
        30 => ("Traceroute", None),
        42 => ("Extended Echo Request", None),
        43 => ("Extended Echo Reply", None),
        _ => ("", None),
    }
}

fn icmpv6_names(ty: u8, code: u8) -> (&'static str, Option<&'static str>) {
    match ty {
        1 => (
            "Destination Unreachable",
            match code {
                0 => Some("No Route to Destination"),
                1 => Some("Communication Administratively Prohibited"),
                2 => Some("Beyond Scope of Source Address"),
                3 => Some("Address Unreachable"),
                4 => Some("Port Unreachable"),
                5 => Some("Source Address Failed Policy"),
                6 => Some("Reject Route to Destination"),
                _ => None,
            },
        ),
        2 => ("Packet Too Big", None),
        3 => (
            "Time Exceeded",
            match code {
                0 => Some("Hop Limit Exceeded in Transit"),
                1 => Some("Fragment Reassembly Time Exceeded"),
                _ => None,
            },
        ),
        4 => (
            "Parameter Problem",
            match code {
                0 => Some("Erroneous Header Field"),
                1 => Some("Unrecognized Next Header"),
                2 => Some("Unrecognized IPv6 Option"),
                _ => None,
            },
        ),
        128 => ("Echo Request", None),
        129 => ("Echo Reply", None),
        130 => ("Multicast Listener Query", None),
        131 => ("Multicast Listener Report", None),
        132 => ("Multicast Listener Done", None),
        133 => ("Router Solicitation", None),
        134 => ("Router Advertisement", None),
        135 => ("Neighbor Solicitation", None),
        136 => ("Neighbor Advertisement", None),
        137 => ("Redirect", None),
        138 => ("Router Renumbering", None),
        139 => ("Node Information Query", None),
        140 => ("Node Information Response", None),
        141 => ("Inverse ND Solicitation", None),
        142 => ("Inverse ND Advertisement", None),
        143 => ("Multicast Listener Report v2", None),
        144 => ("Home Agent Address Discovery Request", None),
        145 => ("Home Agent Address Discovery Reply", None),
        146 => ("Mobile Prefix Solicitation", None),
        147 => ("Mobile Prefix Advertisement", None),
        151 => ("Multicast Router Advertisement", None),
        152 => ("Multicast Router Solicitation", None),
        153 => ("Multicast Router Termination", None),
        155 => ("RPL Control", None),
        _ => ("", None),
    }
}

/// Name of a DNS record type.
pub fn dns_type(t: u16) -> String {
    let name = match t {
        1 => "A",
        2 => "NS",
        5 => "CNAME",
        6 => "SOA",
        12 => "PTR",
        13 => "HINFO",
        15 => "MX",
        16 => "TXT",
        17 => "RP",
        18 => "AFSDB",
        24 => "SIG",
        25 => "KEY",
        28 => "AAAA",
        29 => "LOC",
        33 => "SRV",
        35 => "NAPTR",
        36 => "KX",
        37 => "CERT",
        39 => "DNAME",
        41 => "OPT",
        42 => "APL",
        43 => "DS",
        44 => "SSHFP",
        45 => "IPSECKEY",
        46 => "RRSIG",
        47 => "NSEC",
        48 => "DNSKEY",
        49 => "DHCID",
        50 => "NSEC3",
        51 => "NSEC3PARAM",
        52 => "TLSA",
        53 => "SMIMEA",
        55 => "HIP",
        59 => "CDS",
        60 => "CDNSKEY",
        61 => "OPENPGPKEY",
        62 => "CSYNC",
        63 => "ZONEMD",
        64 => "SVCB",
        65 => "HTTPS",
        99 => "SPF",
        249 => "TKEY",
        250 => "TSIG",
        251 => "IXFR",
        252 => "AXFR",
        255 => "ANY",
        256 => "URI",
        257 => "CAA",
        _ => return format!("TYPE{t}"),
    };
    name.to_string()
}

/// Name of a DNS response code (the 4-bit header field).
pub fn dns_rcode(rc: u8) -> String {
    let name = match rc {
        0 => "NOERROR",
        1 => "FORMERR",
        2 => "SERVFAIL",
        3 => "NXDOMAIN",
        4 => "NOTIMP",
        5 => "REFUSED",
        6 => "YXDOMAIN",
        7 => "YXRRSET",
        8 => "NXRRSET",
        9 => "NOTAUTH",
        10 => "NOTZONE",
        _ => return format!("RCODE{rc}"),
    };
    name.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn icmp_names() {
        assert_eq!(icmp(4, 3, 3), "Destination Unreachable / Port Unreachable");
        assert_eq!(icmp(4, 8, 0), "Echo Request");
        assert_eq!(icmp(4, 8, 7), "Echo Request / Code 7");
        assert_eq!(icmp(6, 1, 4), "Destination Unreachable / Port Unreachable");
        assert_eq!(icmp(6, 200, 1), "Type 200 / Code 1");
    }

    #[test]
    fn other_names() {
        assert_eq!(linktype(276), "LINUX_SLL2");
        assert_eq!(linktype(150), "USER3");
        assert_eq!(linktype(9999), "LINKTYPE_9999");
        assert_eq!(dns_type(28), "AAAA");
        assert_eq!(dns_rcode(3), "NXDOMAIN");
        assert_eq!(ethertype(0x86dd), "IPv6");
        assert_eq!(ip_proto(47), "GRE");
    }
}
