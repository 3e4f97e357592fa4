#!/usr/bin/env python3
"""Labelled detection corpus for Picket (issues 11 and 12): writes one capture per scenario.

Usage: generate.py OUT_DIR [--only NAME[,NAME...]] [--list]

Every scenario is deterministic (its own random.Random seeded from the scenario name), writes
OUT_DIR/<name>.pcap (pcap, nanosecond timestamps, Ethernet) and is listed with its label,
parameters and expected counts in OUT_DIR/manifest.json. Nothing is sent on any network:
the generator only writes files.

Packets are laid out with scapy: scapy builds the option blocks, DNS/NTP payloads and SCTP
chunks once, and a sample of every capture's frames is re-dissected and rebuilt by scapy
(checksums and lengths recomputed) and must come out byte for byte the same as the frame the
fast path wrote. The bulk of the frames go through a small struct-based fast path, because
scapy builds a few thousand packets per second and the corpus holds well over a million.

The manifest's `checks` are counted here from what each scenario meant to send (the
per-packet metadata, not the bytes); tests/corpus/check.py recounts them from the bytes with
dpkt and capinfos and fails when they disagree.
"""

import argparse
import ipaddress
import json
import os
import random
import socket
import struct
import sys
import time
import zlib
from array import array
from functools import lru_cache

# scapy is only imported for building payload templates and the self-check (no sniffing or
# sending; conf.route is never consulted because every frame carries explicit addresses).
from scapy.all import DNS, DNSQR, DNSRR, IP, IPv6, TCP, UDP, Dot1Q, Ether, NTP, Raw, conf  # noqa: E402
from scapy.layers.inet import ICMP
from scapy.layers.inet6 import _ICMPv6
from scapy.layers.sctp import SCTP, crc32c

conf.verb = 0

#: First timestamp of every capture: 2026-12-01T12:00:00Z.
BASE_NS = 1_796_126_400 * 1_000_000_000
#: Global seed mixed into every scenario's seed.
SEED = 20261201
#: MAC of the gateway (every address outside 10.0.0.0/8 is behind it).
GW_MAC = bytes.fromhex("001b21aa0001")

# --------------------------------------------------------------------------------------------
# Port lists (nmap 7.93 nmap-services: the 1000 most frequent TCP ports, the 100 most frequent
# UDP ports and the 52 SCTP ports `nmap -sY` probes by default).

TCP_TOP1000 = (
    "1,3-4,6-7,9,13,17,19-26,30,32-33,37,42-43,49,53,70,79-85,88-90,99-100,106,"
    "109-111,113,119,125,135,139,143-144,146,161,163,179,199,211-212,222,254-256,"
    "259,264,280,301,306,311,340,366,389,406-407,416-417,425,427,443-445,458,"
    "464-465,481,497,500,512-515,524,541,543-545,548,554-555,563,587,593,616-617,"
    "625,631,636,646,648,666-668,683,687,691,700,705,711,714,720,722,726,749,"
    "765,777,783,787,800-801,808,843,873,880,888,898,900-903,911-912,981,987,990,"
    "992-993,995,999-1002,1007,1009-1011,1021-1100,1102,1104-1108,1110-1114,1117,1119,"
    "1121-1124,1126,1130-1132,1137-1138,1141,1145,1147-1149,1151-1152,1154,1163-1166,"
    "1169,1174-1175,1183,1185-1187,1192,1198-1199,1201,1213,1216-1218,1233-1234,1236,"
    "1244,1247-1248,1259,1271-1272,1277,1287,1296,1300-1301,1309-1311,1322,1328,1334,"
    "1352,1417,1433-1434,1443,1455,1461,1494,1500-1501,1503,1521,1524,1533,1556,"
    "1580,1583,1594,1600,1641,1658,1666,1687-1688,1700,1717-1721,1723,1755,1761,"
    "1782-1783,1801,1805,1812,1839-1840,1862-1864,1875,1900,1914,1935,1947,1971-1972,"
    "1974,1984,1998-2010,2013,2020-2022,2030,2033-2035,2038,2040-2043,2045-2049,2065,"
    "2068,2099-2100,2103,2105-2107,2111,2119,2121,2126,2135,2144,2160-2161,2170,2179,"
    "2190-2191,2196,2200,2222,2251,2260,2288,2301,2323,2366,2381-2383,2393-2394,2399,"
    "2401,2492,2500,2522,2525,2557,2601-2602,2604-2605,2607-2608,2638,2701-2702,2710,"
    "2717-2718,2725,2800,2809,2811,2869,2875,2909-2910,2920,2967-2968,2998,3000-3001,"
    "3003,3005-3007,3011,3013,3017,3030-3031,3052,3071,3077,3128,3168,3211,3221,"
    "3260-3261,3268-3269,3283,3300-3301,3306,3322-3325,3333,3351,3367,3369-3372,"
    "3389-3390,3404,3476,3493,3517,3527,3546,3551,3580,3659,3689-3690,3703,3737,"
    "3766,3784,3800-3801,3809,3814,3826-3828,3851,3869,3871,3878,3880,3889,3905,"
    "3914,3918,3920,3945,3971,3986,3995,3998,4000-4006,4045,4111,4125-4126,4129,"
    "4224,4242,4279,4321,4343,4443-4446,4449,4550,4567,4662,4848,4899-4900,4998,"
    "5000-5004,5009,5030,5033,5050-5051,5054,5060-5061,5080,5087,5100-5102,5120,5190,"
    "5200,5214,5221-5222,5225-5226,5269,5280,5298,5357,5405,5414,5431-5432,5440,5500,"
    "5510,5544,5550,5555,5560,5566,5631,5633,5666,5678-5679,5718,5730,5800-5802,"
    "5810-5811,5815,5822,5825,5850,5859,5862,5877,5900-5904,5906-5907,5910-5911,5915,"
    "5922,5925,5950,5952,5959-5963,5987-5989,5998-6007,6009,6025,6059,6100-6101,6106,"
    "6112,6123,6129,6156,6346,6389,6502,6510,6543,6547,6565-6567,6580,6646,"
    "6666-6669,6689,6692,6699,6779,6788-6789,6792,6839,6881,6901,6969,7000-7002,7004,"
    "7007,7019,7025,7070,7100,7103,7106,7200-7201,7402,7435,7443,7496,7512,7625,"
    "7627,7676,7741,7777-7778,7800,7911,7920-7921,7937-7938,7999-8002,8007-8011,"
    "8021-8022,8031,8042,8045,8080-8090,8093,8099-8100,8180-8181,8192-8194,8200,8222,"
    "8254,8290-8292,8300,8333,8383,8400,8402,8443,8500,8600,8649,8651-8652,8654,"
    "8701,8800,8873,8888,8899,8994,9000-9003,9009-9011,9040,9050,9071,9080-9081,"
    "9090-9091,9099-9103,9110-9111,9200,9207,9220,9290,9415,9418,9485,9500,9502-9503,"
    "9535,9575,9593-9595,9618,9666,9876-9878,9898,9900,9917,9929,9943-9944,9968,"
    "9998-10004,10009-10010,10012,10024-10025,10082,10180,10215,10243,10566,10616-10617,"
    "10621,10626,10628-10629,10778,11110-11111,11967,12000,12174,12265,12345,13456,"
    "13722,13782-13783,14000,14238,14441-14442,15000,15002-15004,15660,15742,"
    "16000-16001,16012,16016,16018,16080,16113,16992-16993,17877,17988,18040,18101,"
    "18988,19101,19283,19315,19350,19780,19801,19842,20000,20005,20031,20221-20222,"
    "20828,21571,22939,23502,24444,24800,25734-25735,26214,27000,27352-27353,"
    "27355-27356,27715,28201,30000,30718,30951,31038,31337,32768-32785,33354,33899,"
    "34571-34573,35500,38292,40193,40911,41511,42510,44176,44442-44443,44501,45100,"
    "48080,49152-49161,49163,49165,49167,49175-49176,49400,49999-50003,50006,50300,"
    "50389,50500,50636,50800,51103,51493,52673,52822,52848,52869,54045,54328,"
    "55055-55056,55555,55600,56737-56738,57294,57797,58080,60020,60443,61532,61900,"
    "62078,63331,64623,64680,65000,65129,65389"
)
UDP_TOP100 = (
    "7,9,17,19,49,53,67-69,80,88,111,120,123,135-139,158,161-162,177,427,443,"
    "445,497,500,514-515,518,520,593,623,626,631,996-999,1022-1023,1025-1030,"
    "1433-1434,1645-1646,1701,1718-1719,1812-1813,1900,2000,2048-2049,2222-2223,3283,"
    "3456,3703,4444,4500,5000,5060,5353,5632,9200,10000,17185,20031,30718,31337,"
    "32768-32769,32771,32815,33281,49152-49154,49156,49181-49182,49185-49186,49188,"
    "49190-49194,49200-49201,65024"
)
SCTP_PORTS = (
    "7,9,20-22,80,179,443,1167,1812-1813,2049,2225,2427,2904-2905,2944-2945,3097,"
    "3565,3863-3864,3868,4739-4740,5060-5061,5090-5091,5672,5675,6704-6706,7626,8471,"
    "9082,9084,9899-9902,11997-11999,14001,20049,29118,29168-29169,36412,36422"
)


def port_list(spec):
    """'1,3-4,...' -> [1, 3, 4, ...]."""
    out = []
    for part in "".join(spec).split(","):
        if "-" in part:
            lo, hi = part.split("-")
            out.extend(range(int(lo), int(hi) + 1))
        elif part:
            out.append(int(part))
    return out


TCP_PORTS = port_list(TCP_TOP1000)
UDP_PORTS = port_list(UDP_TOP100)
SCTP_LIST = port_list(SCTP_PORTS)
assert len(TCP_PORTS) == 1000 and len(UDP_PORTS) == 100 and len(SCTP_LIST) == 52

# --------------------------------------------------------------------------------------------
# Fast path: Ethernet / IPv4 / IPv6 / TCP / UDP / ICMP / ICMPv6 / SCTP / GRE with struct.

assert sys.byteorder == "little"


def csum(data):
    """Internet checksum, returned in the byte order `struct.pack('=H')` writes correctly."""
    if len(data) & 1:
        data += b"\0"
    s = sum(array("H", data))
    s = (s & 0xFFFF) + (s >> 16)
    s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


@lru_cache(maxsize=None)
def addr(ip):
    """Packed address and whether it is IPv6."""
    if ":" in ip:
        return socket.inet_pton(socket.AF_INET6, ip), True
    return socket.inet_aton(ip), False


#: The watched side of every capture (one host MAC each); all other addresses are behind the gateway.
LOCAL_PREFIXES = ("10.", "198.51.100.", "2001:db8:100:")
LOCAL_HOSTS = {"192.0.2.1"}


@lru_cache(maxsize=None)
def mac(ip):
    """The MAC a frame from or to `ip` carries on the capture's segment: a host MAC for the
    watched networks (10/8, 198.51.100/24, the NAT address 192.0.2.1, 2001:db8:100::/48), the
    gateway's for every other address."""
    if ip.startswith(LOCAL_PREFIXES) or ip in LOCAL_HOSTS:
        return b"\x02\x00" + zlib.crc32(ip.encode()).to_bytes(4, "big")
    return GW_MAC


def l4_pseudo(src, dst, proto, length, v6):
    if v6:
        return src + dst + struct.pack("!IxxxB", length, proto)
    return src + dst + struct.pack("!xBH", proto, length)


def tcp_bytes(s, d, v6, sport, dport, seq, ack, flags, win, opts=b"", data=b"", urg=0):
    off = (20 + len(opts)) // 4
    hdr = struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF,
                      off << 4, flags, win, 0, urg) + opts
    seg = hdr + data
    c = csum(l4_pseudo(s, d, 6, len(seg), v6) + seg)
    return seg[:16] + struct.pack("=H", c) + seg[18:]


def udp_bytes(s, d, v6, sport, dport, data):
    seg = struct.pack("!HHHH", sport, dport, 8 + len(data), 0) + data
    c = csum(l4_pseudo(s, d, 17, len(seg), v6) + seg)
    if c == 0:
        c = 0xFFFF
    return seg[:6] + struct.pack("=H", c) + seg[8:]


def icmp_bytes(typ, code, rest, data):
    msg = struct.pack("!BBH", typ, code, 0) + rest + data
    return msg[:2] + struct.pack("=H", csum(msg)) + msg[4:]


def icmp6_bytes(s, d, typ, code, rest, data):
    msg = struct.pack("!BBH", typ, code, 0) + rest + data
    c = csum(l4_pseudo(s, d, 58, len(msg), True) + msg)
    return msg[:2] + struct.pack("=H", c) + msg[4:]


def sctp_bytes(sport, dport, vtag, chunks):
    pkt = struct.pack("!HHII", sport, dport, vtag, 0) + chunks
    c = crc32c(pkt)
    return pkt[:8] + struct.pack("!I", c) + pkt[12:]


def ip4_bytes(s, d, proto, payload, ttl, ident, df=True, tos=0, frag_off=0, mf=False, total=None):
    flags = (0x4000 if df else 0) | (0x2000 if mf else 0) | (frag_off // 8)
    length = total if total is not None else 20 + len(payload)
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, tos, length, ident & 0xFFFF, flags, ttl, proto, 0, s, d)
    return hdr[:10] + struct.pack("=H", csum(hdr)) + hdr[12:] + payload


def ip6_bytes(s, d, nh, payload, hlim, flow=0, tc=0):
    return struct.pack("!IHBB", (6 << 28) | (tc << 20) | flow, len(payload), nh, hlim) + s + d + payload


def frame(src, dst, l3, v6):
    return mac(dst) + mac(src) + (b"\x86\xdd" if v6 else b"\x08\x00") + l3


# --------------------------------------------------------------------------------------------
# Captures.

# Per-packet metadata: what the scenario meant to send, counted for the manifest's checks.
# (src, dst, proto, sport, dport, tcp_flags, icmp_type, icmp_code, frag, sctp_chunk[, outer])
# frag: 0 not a fragment, 1 first fragment, 2 later fragment; outer: the same tuple for the
# tunnel packet around an encapsulated one.

TCP_FLAGS = {"F": 0x01, "S": 0x02, "R": 0x04, "P": 0x08, "A": 0x10, "U": 0x20, "E": 0x40, "C": 0x80}


def flag_bits(flags):
    if isinstance(flags, int):
        return flags
    bits = 0
    for ch in flags:
        bits |= TCP_FLAGS[ch]
    return bits


class Capture:
    """Packets of one scenario: (time in ns from BASE_NS, frame, metadata)."""

    def __init__(self, rng, snaplen=65535):
        self.rng = rng
        self.snaplen = snaplen
        self.pkts = []
        self.ids = {}

    def ipid(self, src):
        """Linux-like per-host IP ID counter (random start)."""
        v = self.ids.get(src)
        if v is None:
            v = self.rng.getrandbits(16)
        self.ids[src] = (v + 1) & 0xFFFF
        return v

    def _ip(self, t, src, dst, proto, l4, ttl, df, meta, tos=0, flow=0):
        s, v6 = addr(src)
        d, _ = addr(dst)
        if v6:
            l3 = ip6_bytes(s, d, proto, l4, ttl, flow)
        else:
            l3 = ip4_bytes(s, d, proto, l4, ttl, self.ipid(src), df, tos)
        self.pkts.append((int(t * 1e9), frame(src, dst, l3, v6), meta))

    def tcp(self, t, src, dst, sport, dport, flags, seq=0, ack=0, win=64240, opts=b"", data=b"",
            ttl=64, df=True, urg=0):
        f = flag_bits(flags)
        s, v6 = addr(src)
        d, _ = addr(dst)
        l4 = tcp_bytes(s, d, v6, sport, dport, seq, ack, f, win, opts, data, urg)
        self._ip(t, src, dst, 6, l4, ttl, df, (src, dst, 6, sport, dport, f, None, None, 0, None))

    def udp(self, t, src, dst, sport, dport, data=b"", ttl=64, df=True, tos=0):
        s, v6 = addr(src)
        d, _ = addr(dst)
        l4 = udp_bytes(s, d, v6, sport, dport, data)
        self._ip(t, src, dst, 17, l4, ttl, df, (src, dst, 17, sport, dport, None, None, None, 0, None), tos)

    def icmp(self, t, src, dst, typ, code, rest=b"\0\0\0\0", data=b"", ttl=64, df=False):
        s, v6 = addr(src)
        d, _ = addr(dst)
        if v6:
            l4 = icmp6_bytes(s, d, typ, code, rest, data)
            proto = 58
        else:
            l4 = icmp_bytes(typ, code, rest, data)
            proto = 1
        self._ip(t, src, dst, proto, l4, ttl, df, (src, dst, proto, None, None, None, typ, code, 0, None))

    def icmp_error(self, t, src, dst, typ, code, quoted_frame, ttl=64):
        """ICMP/ICMPv6 error from `src` quoting a frame this capture already holds: the IPv4
        header plus 8 bytes (RFC 792, as Linux sends for v4 it quotes up to 576 bytes; the
        short form keeps it compact), or for IPv6 as much as fits in 1280 bytes."""
        l3 = quoted_frame[14:]
        if ":" in src:
            quoted = l3[:1232]
        else:
            ihl = (l3[0] & 0x0F) * 4
            quoted = l3[:ihl + 8]
        self.icmp(t, src, dst, typ, code, b"\0\0\0\0", quoted, ttl=ttl)

    def sctp(self, t, src, dst, sport, dport, vtag, chunk_type, chunks, ttl=64):
        l4 = sctp_bytes(sport, dport, vtag, chunks)
        self._ip(t, src, dst, 132, l4, ttl, True, (src, dst, 132, sport, dport, None, None, None, 0, chunk_type))

    def raw_ip(self, t, src, dst, proto, payload, ttl=64, df=False):
        """Any IP protocol with the given payload (IP-protocol scan, GRE)."""
        self._ip(t, src, dst, proto, payload, ttl, df, (src, dst, proto, None, None, None, None, None, 0, None))

    def udp_fragments(self, t, src, dst, sport, dport, data, mtu=1500, ttl=64, gap=0.0):
        """One UDP datagram in IPv4 fragments of at most `mtu` bytes (first fragment first)."""
        s, _ = addr(src)
        d, _ = addr(dst)
        l4 = udp_bytes(s, d, False, sport, dport, data)
        ident = self.ipid(src)
        step = (mtu - 20) // 8 * 8
        off = 0
        while off < len(l4):
            piece = l4[off:off + step]
            mf = off + step < len(l4)
            l3 = ip4_bytes(s, d, 17, piece, ttl, ident, df=False, frag_off=off, mf=mf)
            first = off == 0
            meta = (src, dst, 17, sport if first else None, dport if first else None, None, None, None,
                    1 if first else 2, None)
            self.pkts.append((int(t * 1e9), frame(src, dst, l3, False), meta))
            off += step
            t += gap

    def tcp_fragments(self, t, src, dst, sport, dport, flags, seq, win, opts, ttl, size):
        """A TCP segment in IPv4 fragments of `size` bytes of IP payload (nmap -f: 8,
        --mtu 16: 16); the first fragment shows the flags only if it holds 14 bytes."""
        f = flag_bits(flags)
        s, _ = addr(src)
        d, _ = addr(dst)
        l4 = tcp_bytes(s, d, False, sport, dport, seq, 0, f, win, opts)
        ident = self.ipid(src)
        for off in range(0, len(l4), size):
            piece = l4[off:off + size]
            mf = off + size < len(l4)
            l3 = ip4_bytes(s, d, 6, piece, ttl, ident, df=False, frag_off=off, mf=mf)
            if off == 0:
                meta = (src, dst, 6, sport, dport, f if len(piece) >= 14 else None, None, None, 1, None)
            else:
                meta = (src, dst, 6, None, None, None, None, None, 2, None)
            self.pkts.append((int(t * 1e9), frame(src, dst, l3, False), meta))
            t += 0.000002

    def wrap(self, fn):
        """Re-encapsulates every frame: fn(frame, meta) -> (frame, outer meta)."""
        self.pkts = [(t, *self._wrapped(fn, fr, m)) for t, fr, m in self.pkts]

    @staticmethod
    def _wrapped(fn, fr, m):
        nf, outer = fn(fr, m)
        return nf, m + (outer,)

    def last_frame(self):
        return self.pkts[-1][1]

    def write(self, path):
        self.pkts.sort(key=lambda p: p[0])
        with open(path, "wb", buffering=1 << 20) as f:
            # pcap, nanosecond resolution (magic a1b23c4d), LINKTYPE_ETHERNET.
            f.write(struct.pack("<IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, self.snaplen, 1))
            pack = struct.Struct("<IIII").pack
            snap = self.snaplen
            for t, fr, _ in self.pkts:
                ns = BASE_NS + t
                cap = fr[:snap]
                f.write(pack(ns // 1_000_000_000, ns % 1_000_000_000, len(cap), len(fr)))
                f.write(cap)
        return os.path.getsize(path)

    def duration_s(self):
        if not self.pkts:
            return 0.0
        return (self.pkts[-1][0] - self.pkts[0][0]) / 1e9


# --------------------------------------------------------------------------------------------
# The checks: a `where` filter and a measure, counted here from the metadata and in check.py
# from the bytes. Keys of `where`: src, dst (address or CIDR), proto, sport, dport, flags
# (exact TCP flag byte), flags_all (bits that must be set), icmp_type, icmp_code, frag
# ("any", "first", "later"), sctp_chunk, layer ("outer": the tunnel packet; default the
# innermost packet). Measures: "packets", "distinct:<field>" with field one of
# src, dst, sport, dport, proto.

@lru_cache(maxsize=None)
def in_net(ip, net):
    if "/" not in net:
        return ip == net
    return ipaddress.ip_address(ip) in ipaddress.ip_network(net, strict=False)


META_FIELDS = {"src": 0, "dst": 1, "proto": 2, "sport": 3, "dport": 4}


def layer_of(where, m):
    """The 10-field tuple a check looks at: the innermost packet by default, the outer one
    (the tunnel's) with `"layer": "outer"`. Encapsulated frames carry the outer tuple as an
    11th field."""
    if where.get("layer") == "outer" and len(m) > 10:
        return m[10]
    return m[:10]


def meta_match(where, m):
    src, dst, proto, sport, dport, flags, ityp, icode, frag, chunk = layer_of(where, m)
    for k, v in where.items():
        if k == "layer":
            continue
        if k == "src":
            if not in_net(src, v):
                return False
        elif k == "dst":
            if not in_net(dst, v):
                return False
        elif k == "proto":
            if proto != v:
                return False
        elif k == "sport":
            if sport != v:
                return False
        elif k == "dport":
            if dport != v:
                return False
        elif k == "flags":
            if flags != v:
                return False
        elif k == "flags_all":
            if flags is None or flags & v != v:
                return False
        elif k == "icmp_type":
            if ityp != v:
                return False
        elif k == "icmp_code":
            if icode != v:
                return False
        elif k == "frag":
            if v == "any" and frag == 0 or v == "later" and frag != 2 or v == "first" and frag != 1:
                return False
        elif k == "sctp_chunk":
            if chunk != v:
                return False
        else:
            raise KeyError(k)
    return True


def count(pkts, where, measure):
    sel = [layer_of(where, m) for _, _, m in pkts if meta_match(where, m)]
    if measure == "packets":
        return len(sel)
    field = META_FIELDS[measure.split(":", 1)[1]]
    return len({m[field] for m in sel if m[field] is not None})


# --------------------------------------------------------------------------------------------
# scapy-built templates.

def tcp_opts(options):
    """The option bytes scapy lays out for `options` (padded to a multiple of 4)."""
    return bytes(TCP(options=options))[20:]


LINUX_SYN = tcp_opts([("MSS", 1460), ("SAckOK", b""), ("Timestamp", (2_516_582_211, 0)), ("NOP", None),
                      ("WScale", 7)])
LINUX_SYNACK = tcp_opts([("MSS", 1460), ("SAckOK", b""), ("Timestamp", (1_108_201_456, 2_516_582_211)),
                         ("NOP", None), ("WScale", 7)])
LINUX_TS = tcp_opts([("NOP", None), ("NOP", None), ("Timestamp", (2_516_582_300, 1_108_201_500))])
WIN_SYN = tcp_opts([("MSS", 1460), ("NOP", None), ("WScale", 8), ("NOP", None), ("NOP", None),
                    ("SAckOK", b"")])
NMAP_SYN = tcp_opts([("MSS", 1460)])
# nmap's SCTP INIT: init tag, a_rwnd 0x8000 (32768), 10 outbound and 2048 inbound streams, TSN.
# NTP timestamps are given explicitly: scapy's defaults are the current time.
NTP_SENT = 3_973_939_200.25  # 2025-12-06 in NTP time
NTP_CLIENT = bytes(NTP(version=4, mode=3, ref=0, orig=0, recv=0, sent=NTP_SENT))
NTP_SERVER = bytes(NTP(version=4, mode=4, stratum=2, ref=NTP_SENT - 64, orig=NTP_SENT, recv=NTP_SENT + 0.01,
                       sent=NTP_SENT + 0.0101))
DNS_STATUS = bytes(DNS(id=0, opcode=2, rd=0))  # nmap's UDP payload for port 53


def dns_query(rng, name, qtype="A"):
    return bytes(DNS(id=rng.getrandbits(16), rd=1, qd=DNSQR(qname=name, qtype=qtype)))


def dns_answer(query, name, n_answers=1, rdata="192.0.2.53", rtype="A", ttl=300):
    q = DNS(query)
    rr = [DNSRR(rrname=name, type=rtype, ttl=ttl, rdata=rdata) for _ in range(n_answers)]
    return bytes(DNS(id=q.id, qr=1, aa=1, rd=q.rd, ra=0, qd=q.qd, an=rr))


def sctp_init_chunk(tag, tsn):
    return struct.pack("!BBHIIHHI", 1, 0, 20, tag, 32768, 10, 2048, tsn)


def sctp_init_ack_chunk(tag, tsn):
    # INIT-ACK with a state cookie parameter (type 7) of 32 bytes.
    cookie = struct.pack("!HH", 7, 36) + bytes(32)
    return struct.pack("!BBHIIHHI", 2, 0, 20 + len(cookie), tag, 106496, 10, 10, tsn) + cookie


def sctp_abort_chunk(tbit):
    return struct.pack("!BBH", 6, 1 if tbit else 0, 4)


def scapy_verify(fr):
    """scapy dissects `fr`, forgets the checksums and lengths of the IP and transport headers,
    and rebuilds it; the result must be the frame itself (L4 payloads are kept as raw bytes so
    that scapy's re-encoding of DNS names or quoted headers does not enter the comparison)."""
    p = Ether(fr)
    l3 = p.payload
    l2 = 14
    while isinstance(l3, Dot1Q):
        l3 = l3.payload
        l2 += 4
    if not isinstance(l3, (IP, IPv6)):
        return False  # a tag scapy does not decode (0x9100): not verified
    if isinstance(l3, IP):
        del l3.chksum
        del l3.len
        if l3.flags.MF or l3.frag > 0:
            l3.remove_payload()
            l3.add_payload(Raw(fr[l2 + l3.ihl * 4:]))
            l3 = None
        l4off = l2 + 20
    else:
        del l3.plen
        l4off = l2 + 40
    if l3 is not None:
        l4 = l3.payload
        if isinstance(l4, TCP):
            hlen = l4.dataofs * 4
        elif isinstance(l4, (UDP, ICMP, _ICMPv6)):
            hlen = 8
        elif isinstance(l4, SCTP):
            hlen = 12
        else:
            hlen = None
            l3.remove_payload()
            l3.add_payload(Raw(fr[l4off:]))
        if hlen is not None:
            l4.remove_payload()
            if len(fr) > l4off + hlen:
                l4.add_payload(Raw(fr[l4off + hlen:]))
            if isinstance(l4, _ICMPv6):
                del l4.cksum
            elif not (isinstance(l4, UDP) and l4.chksum == 0):  # tunnels send UDP without checksum
                del l4.chksum
            if isinstance(l4, UDP):
                del l4.len
    rebuilt = bytes(p)
    if rebuilt != fr:
        raise AssertionError("scapy rebuilds the frame differently:\n  fast  %s\n  scapy %s\n%s"
                             % (fr.hex(), rebuilt.hex(), p.show(dump=True)))
    return True


def verify_sample(cap, rng, k=12):
    n = len(cap.pkts)
    if n == 0:
        return 0
    picks = set(range(min(4, n)))
    while len(picks) < min(k, n):
        picks.add(rng.randrange(n))
    return sum(scapy_verify(cap.pkts[i][1]) for i in sorted(picks))


# --------------------------------------------------------------------------------------------
# Scenario building blocks.

SCENARIOS = []


def scenario(name, label, description, expect=None, forbid=None, max_episodes=None, snaplen=65535):
    """Registers a scenario. `expect` lists alternatives: the attack counts as detected when
    any one of them is matched by an alert start. `forbid` lists rules that must not also
    fire (issue 11 §5), `max_episodes` bounds the alert starts (forged-source storms)."""

    def register(fn):
        SCENARIOS.append(dict(name=name, label=label, description=description, expect=expect or [],
                              forbid=forbid or [], max_episodes=max_episodes, snaplen=snaplen, fn=fn))
        return fn

    return register


def E(rule, scope, source=None, destination=None, within_s=None):
    """One acceptable alert; `within_s` bounds its start, in seconds after the first packet
    (issue 11's latency targets for slow scans)."""
    e = {"rule": rule, "scope": scope}
    if within_s is not None:
        e["within_s"] = within_s
    if source:
        e["source"] = source
    if destination:
        e["destination"] = destination
    return e


SCANNER = "203.0.113.9"
VICTIM = "198.51.100.20"
VICTIM_OPEN = {22, 80, 443}
RTT = 0.021  # scanner <-> victim round trip, seconds


def jit(rng, base, spread=0.15):
    """`base` seconds with ±spread relative uniform jitter."""
    return base * (1 + rng.uniform(-spread, spread))


def gaps(rng, n, mean, start=0.0):
    """n send times with exponential inter-arrival of the given mean."""
    t = start
    out = []
    for _ in range(n):
        out.append(t)
        t += rng.expovariate(1.0 / mean)
    return out


def fixed_gaps(rng, n, gap, start=0.0, jitter=0.002):
    """n send times `gap` apart (a timer-paced tool) with small scheduling jitter."""
    return [start + i * gap + abs(rng.gauss(0, jitter)) for i in range(n)]


def syn_probe_reply(c, rng, t, scanner, victim, sport, dport, seq, open_ports, filtered=(), ttl_s=49,
                    rtt=RTT, scanner_rst=True):
    """SYN probe and what a Linux victim and the scanner's kernel do with it."""
    c.tcp(t, scanner, victim, sport, dport, "S", seq=seq, win=1024, opts=NMAP_SYN, ttl=ttl_s, df=False)
    if dport in filtered:
        return False
    tr = t + jit(rng, rtt)
    if dport in open_ports:
        isn = rng.getrandbits(32)
        c.tcp(tr, victim, scanner, dport, sport, "SA", seq=isn, ack=seq + 1, win=65160, opts=LINUX_SYNACK)
        if scanner_rst:
            c.tcp(tr + 0.0002, scanner, victim, sport, dport, "R", seq=seq + 1, win=0, ttl=ttl_s, df=False)
    else:
        c.tcp(tr, victim, scanner, dport, sport, "RA", seq=0, ack=seq + 1, win=0)
    return True


def nmap_syn_scan(c, rng, times, ports, scanner=SCANNER, victim=VICTIM, open_ports=VICTIM_OPEN,
                  filtered=(), ttl_s=49, retry_gap=None):
    sport = rng.randint(32768, 61000)
    for t, p in zip(times, ports):
        seq = rng.getrandbits(32)
        answered = syn_probe_reply(c, rng, t, scanner, victim, sport, p, seq, open_ports, filtered, ttl_s)
        if not answered and retry_gap:
            # nmap retransmits an unanswered probe once, from another source port.
            syn_probe_reply(c, rng, t + retry_gap, scanner, victim, sport + 1, p, rng.getrandbits(32),
                            open_ports, filtered, ttl_s)


def shuffled(rng, items):
    items = list(items)
    rng.shuffle(items)
    return items


def scan_checks(scanner, victim, n_ports, flags=None, proto=6):
    where = {"src": scanner, "dst": victim, "proto": proto}
    if flags is not None:
        where["flags"] = flags
    return [("probes from the scanner", where, "packets"),
            ("distinct destination ports probed", where, "distinct:dport")]


# --------------------------------------------------------------------------------------------
# Scans (issue 11).

@scenario("scan_syn_t4", "attack", "nmap -sS -T4 (top 1000 ports), Linux victim: SYN-ACK from "
          "22/80/443 answered by the scanner's RST, RST/ACK from closed ports",
          [E("port_scan", "source", source=SCANNER)])
def _(c, rng):
    ports = shuffled(rng, TCP_PORTS)
    nmap_syn_scan(c, rng, gaps(rng, len(ports), 0.0009), ports)
    return {"ports": 1000, "mean_gap_s": 0.0009, "open": sorted(VICTIM_OPEN)}, \
        scan_checks(SCANNER, VICTIM, 1000, flags=0x02)


@scenario("scan_syn_t3", "attack", "nmap -sS (default -T3, top 1000 ports) against the same victim",
          [E("port_scan", "source", source=SCANNER)])
def _(c, rng):
    ports = shuffled(rng, TCP_PORTS)
    nmap_syn_scan(c, rng, gaps(rng, len(ports), 0.004), ports)
    return {"ports": 1000, "mean_gap_s": 0.004}, scan_checks(SCANNER, VICTIM, 1000, flags=0x02)


@scenario("scan_syn_t2", "attack", "nmap -sS -T2: one probe every 0.4 s over the top 1000 ports "
          "(400 s), with the victim's SYN-ACK/RST replies",
          [E("port_scan", "source", source=SCANNER, within_s=60)])
def _(c, rng):
    ports = shuffled(rng, TCP_PORTS)
    nmap_syn_scan(c, rng, fixed_gaps(rng, len(ports), 0.4), ports)
    return {"ports": 1000, "gap_s": 0.4}, scan_checks(SCANNER, VICTIM, 1000, flags=0x02)


@scenario("scan_syn_t1", "attack", "nmap -sS -T1: one probe every 15 s for 10 minutes (41 probes, "
          "top ports)", [E("port_scan", "source", source=SCANNER, within_s=600)])
def _(c, rng):
    ports = shuffled(rng, TCP_PORTS[:200])[:41]
    nmap_syn_scan(c, rng, fixed_gaps(rng, 41, 15.0), ports)
    return {"ports": 41, "gap_s": 15.0}, scan_checks(SCANNER, VICTIM, 41, flags=0x02)


@scenario("scan_delay_350ms", "attack", "nmap -sS --scan-delay 350ms over the top 1000 ports (350 s)",
          [E("port_scan", "source", source=SCANNER, within_s=60)])
def _(c, rng):
    ports = shuffled(rng, TCP_PORTS)
    nmap_syn_scan(c, rng, fixed_gaps(rng, 1000, 0.35), ports)
    return {"ports": 1000, "gap_s": 0.35}, scan_checks(SCANNER, VICTIM, 1000, flags=0x02)


@scenario("hping3_slow", "attack", "hping3 -S -p ++1 -i 1: one SYN per second to ports 1, 2, 3, ... "
          "for 5 minutes; the source port steps with every packet",
          [E("port_scan", "source", source=SCANNER, within_s=600)])
def _(c, rng):
    base = rng.randint(1024, 60000)
    seq0 = rng.getrandbits(32)
    for i in range(300):
        t = i * 1.0 + abs(rng.gauss(0, 0.003))
        sport, dport = base + i, 1 + i
        c.tcp(t, SCANNER, VICTIM, sport, dport, "S", seq=seq0 + i * 7919, win=512, ttl=52, df=False)
        tr = t + jit(rng, RTT)
        if dport in VICTIM_OPEN:
            c.tcp(tr, VICTIM, SCANNER, dport, sport, "SA", seq=rng.getrandbits(32), ack=seq0 + i * 7919 + 1,
                  win=64240, opts=tcp_opts([("MSS", 1460)]))
            c.tcp(tr + 0.0001, SCANNER, VICTIM, sport, dport, "R", seq=seq0 + i * 7919 + 1, win=0, ttl=52)
        else:
            c.tcp(tr, VICTIM, SCANNER, dport, sport, "RA", seq=0, ack=seq0 + i * 7919 + 1, win=0)
    return {"ports": 300, "gap_s": 1.0}, scan_checks(SCANNER, VICTIM, 300, flags=0x02)


def stealth_scan(c, rng, flags, times, ports, reply, ttl_s=49, win=1024, retry=True):
    """One-flag-combination scan. `reply(port)` -> 'rst', 'rstack' or None (silence)."""
    sport = rng.randint(32768, 61000)
    fb = flag_bits(flags)
    for t, p in zip(times, ports):
        seq, ack = rng.getrandbits(32), (rng.getrandbits(32) if fb & 0x10 else 0)
        tries = 2 if retry else 1
        for k in range(tries):
            tt = t + k * 0.5
            c.tcp(tt, SCANNER, VICTIM, sport + k, p, fb, seq=seq, ack=ack, win=win, ttl=ttl_s, df=False)
            r = reply(p)
            tr = tt + jit(rng, RTT)
            if r == "rst":  # reset without ACK: seq is the probe's ack number (RFC 793)
                c.tcp(tr, VICTIM, SCANNER, p, sport + k, "R", seq=ack, win=0)
                break
            if r == "rstack":
                seg_len = (1 if fb & 0x01 else 0) + (1 if fb & 0x02 else 0)
                c.tcp(tr, VICTIM, SCANNER, p, sport + k, "RA", seq=0, ack=seq + seg_len, win=0)
                break


def _stealth(name, flags, desc, reply_fn, win=1024):
    @scenario(name, "attack", desc, [E("port_scan", "source", source=SCANNER)])
    def _(c, rng):
        ports = shuffled(rng, TCP_PORTS)
        stealth_scan(c, rng, flags, gaps(rng, 1000, 0.001), ports, reply_fn, win=win)
        return {"ports": 1000, "mean_gap_s": 0.001, "flags": flags}, \
            scan_checks(SCANNER, VICTIM, 1000, flags=flag_bits(flags))


_stealth("scan_ack", "A", "nmap -sA -T4 (top 1000): ACK probes, the unfiltered Linux victim resets "
         "every port", lambda p: "rst")
_stealth("scan_window", "A", "nmap -sW -T4 (top 1000): ACK probes like -sA (nmap reads the RST window)",
         lambda p: "rst")
_stealth("scan_maimon", "FA", "nmap -sM -T4 (top 1000): FIN/ACK probes; Linux resets every port",
         lambda p: "rst")
_stealth("scan_fin", "F", "nmap -sF -T4 (top 1000): FIN probes; closed ports RST/ACK, open ports "
         "silent (retransmitted once)", lambda p: None if p in VICTIM_OPEN else "rstack")
_stealth("scan_null", 0, "nmap -sN -T4 (top 1000): NULL probes; closed RST/ACK, open silent",
         lambda p: None if p in VICTIM_OPEN else "rstack")
_stealth("scan_xmas", "FPU", "nmap -sX -T4 (top 1000): FIN/PSH/URG probes; closed RST/ACK, open silent",
         lambda p: None if p in VICTIM_OPEN else "rstack")


@scenario("scan_unicorn_allflags", "attack", "unicornscan -mTsFSRPAUEC at its default 300 packets/s "
          "over ports 1-1024: every flag set; Linux answers none (RST is set)",
          [E("port_scan", "source", source=SCANNER)])
def _(c, rng):
    ports = shuffled(rng, range(1, 1025))
    stealth_scan(c, rng, 0xFF, gaps(rng, 1024, 1 / 300), ports, lambda p: None, ttl_s=64, win=4096,
                 retry=False)
    return {"ports": 1024, "rate_pps": 300}, scan_checks(SCANNER, VICTIM, 1024, flags=0xFF)


@scenario("scan_sctp_init", "attack", "nmap -sY -T4: SCTP INIT to the 52 SCTP ports; the victim "
          "answers ABORT from closed ports and INIT-ACK from 3868 (Diameter), which the scanner aborts",
          [E("port_scan", "source", source=SCANNER)])
def _(c, rng):
    sport = rng.randint(32768, 61000)
    ports = shuffled(rng, SCTP_LIST)
    for t, p in zip(gaps(rng, len(ports), 0.002), ports):
        tag, tsn = rng.getrandbits(32), rng.getrandbits(32)
        c.sctp(t, SCANNER, VICTIM, sport, p, 0, 1, sctp_init_chunk(tag, tsn), ttl=49)
        tr = t + jit(rng, RTT)
        if p == 3868:
            c.sctp(tr, VICTIM, SCANNER, p, sport, tag, 2, sctp_init_ack_chunk(rng.getrandbits(32), tsn))
            c.sctp(tr + 0.0002, SCANNER, VICTIM, sport, p, tag, 6, sctp_abort_chunk(False), ttl=49)
        else:
            c.sctp(tr, VICTIM, SCANNER, p, sport, tag, 6, sctp_abort_chunk(True))
    where = {"src": SCANNER, "dst": VICTIM, "proto": 132, "sctp_chunk": 1}
    return {"ports": 52, "mean_gap_s": 0.002}, [
        ("INITs from the scanner", where, "packets"),
        ("distinct SCTP ports probed", where, "distinct:dport"),
        ("ABORTs from the victim", {"src": VICTIM, "proto": 132, "sctp_chunk": 6}, "packets")]


@scenario("scan_ipproto", "attack", "nmap -sO -T4: IP protocols 0-255 (empty payloads, proper ICMP "
          "echo / TCP ACK / UDP headers for 1, 6, 17); the victim answers ICMP protocol-unreachable for "
          "every protocol it lacks (ICMP rate limit off)", [E("port_scan", "source", source=SCANNER)])
def _(c, rng):
    protos = shuffled(rng, range(256))
    supported = {1, 2, 6, 17, 136}
    for t, proto in zip(gaps(rng, 256, 0.004), protos):
        if proto == 1:
            c.icmp(t, SCANNER, VICTIM, 8, 0, struct.pack("!HH", rng.getrandbits(16), 0), ttl=49)
            c.icmp(t + jit(rng, RTT), VICTIM, SCANNER, 0, 0, c.last_frame()[14 + 20 + 4:14 + 20 + 8])
            continue
        if proto == 6:
            ack = rng.getrandbits(32)
            c.tcp(t, SCANNER, VICTIM, rng.randint(32768, 61000), 80, "A", seq=rng.getrandbits(32), ack=ack,
                  win=1024, ttl=49, df=False)
            m = c.pkts[-1][2]
            c.tcp(t + jit(rng, RTT), VICTIM, SCANNER, 80, m[3], "R", seq=ack, win=0)
            continue
        if proto == 17:
            c.udp(t, SCANNER, VICTIM, rng.randint(32768, 61000), 40125, b"", ttl=49, df=False)
            c.icmp_error(t + jit(rng, RTT), VICTIM, SCANNER, 3, 3, c.last_frame())
            continue
        c.raw_ip(t, SCANNER, VICTIM, proto, b"", ttl=49)
        if proto not in supported:
            c.icmp_error(t + jit(rng, RTT), VICTIM, SCANNER, 3, 2, c.last_frame())
    return {"protocols": 256, "mean_gap_s": 0.004}, [
        ("probes from the scanner", {"src": SCANNER, "dst": VICTIM}, "packets"),
        ("distinct IP protocols probed", {"src": SCANNER, "dst": VICTIM}, "distinct:proto"),
        ("ICMP protocol unreachables", {"src": VICTIM, "icmp_type": 3, "icmp_code": 2}, "packets")]


SWEEP_NET = "198.51.100."


def live_hosts(rng):
    return set(rng.sample(range(1, 255), 40))


@scenario("sweep_ack_ping", "attack", "nmap -sn -PA80 198.51.100.0/24: one ACK to port 80 of each of "
          "254 hosts; the 40 live hosts reset", [E("host_sweep", "source", source=SCANNER)])
def _(c, rng):
    live = live_hosts(rng)
    sport = rng.randint(32768, 61000)
    hosts = shuffled(rng, range(1, 255))
    for t, h in zip(gaps(rng, 254, 0.003), hosts):
        dst = SWEEP_NET + str(h)
        ack = rng.getrandbits(32)
        c.tcp(t, SCANNER, dst, sport, 80, "A", seq=rng.getrandbits(32), ack=ack, win=1024, ttl=49, df=False)
        if h in live:
            c.tcp(t + jit(rng, RTT), dst, SCANNER, 80, sport, "R", seq=ack, win=0)
    where = {"src": SCANNER, "proto": 6, "flags": 0x10}
    return {"hosts": 254, "live": 40, "mean_gap_s": 0.003}, [
        ("ACK probes", where, "packets"), ("distinct hosts probed", where, "distinct:dst"),
        ("RSTs from live hosts", {"dst": SCANNER, "proto": 6, "flags": 0x04}, "packets")]


@scenario("sweep_ping", "attack", "ping sweep of 198.51.100.0/24 (nmap -sn -PE): ICMP echo to 254 "
          "hosts, 40 answer", [E("host_sweep", "source", source=SCANNER)])
def _(c, rng):
    live = live_hosts(rng)
    ident = rng.getrandbits(16)
    for i, (t, h) in enumerate(zip(gaps(rng, 254, 0.003), shuffled(rng, range(1, 255)))):
        dst = SWEEP_NET + str(h)
        rest = struct.pack("!HH", ident, i)
        c.icmp(t, SCANNER, dst, 8, 0, rest, ttl=49)
        if h in live:
            c.icmp(t + jit(rng, RTT), dst, SCANNER, 0, 0, rest)
    where = {"src": SCANNER, "proto": 1, "icmp_type": 8}
    return {"hosts": 254, "live": 40}, [
        ("echo requests", where, "packets"), ("distinct hosts pinged", where, "distinct:dst"),
        ("echo replies", {"dst": SCANNER, "icmp_type": 0}, "packets")]


def udp_scan(c, rng, sport):
    """nmap -sU -g SPORT --top-ports 100 against Linux: closed ports answer ICMP port
    unreachable, limited to about one per second (the kernel's ICMP rate limit, burst 6), so
    nmap slows to about one probe per second after the first burst; 53 and 123 are open."""
    ports = shuffled(rng, UDP_PORTS)
    t = 0.0
    tokens, last = 6.0, 0.0
    for i, p in enumerate(ports):
        payload = DNS_STATUS if p == 53 else NTP_CLIENT if p == 123 else b""
        c.udp(t, SCANNER, VICTIM, sport, p, payload, ttl=49, df=False)
        probe = c.last_frame()
        tokens = min(6.0, tokens + (t - last))
        last = t
        tr = t + jit(rng, RTT)
        if p == 53:
            c.udp(tr, VICTIM, SCANNER, 53, sport, DNS_STATUS[:2] + b"\x90\x04" + DNS_STATUS[4:])
        elif p == 123:
            c.udp(tr, VICTIM, SCANNER, 123, sport, NTP_SERVER)
        elif tokens >= 1.0:
            tokens -= 1.0
            c.icmp_error(tr, VICTIM, SCANNER, 3, 3, probe)
        t += rng.expovariate(1 / 0.01) if i < 10 else rng.expovariate(1 / 1.05)
    where = {"src": SCANNER, "dst": VICTIM, "proto": 17, "sport": sport}
    return {"ports": 100, "source_port": sport, "mean_gap_s": 1.05}, [
        ("UDP probes", where, "packets"), ("distinct ports probed", where, "distinct:dport"),
        ("ICMP port unreachables", {"src": VICTIM, "icmp_type": 3, "icmp_code": 3}, "packets")]


@scenario("scan_udp_sport53", "attack", "nmap -sU -g 53 --top-ports 100, ICMP port-unreachable replies "
          "(Linux rate limit)", [E("port_scan", "source", source=SCANNER)])
def _(c, rng):
    return udp_scan(c, rng, 53)


@scenario("scan_udp_sport123", "attack", "nmap -sU -g 123 --top-ports 100, ICMP port-unreachable replies",
          [E("port_scan", "source", source=SCANNER)])
def _(c, rng):
    return udp_scan(c, rng, 123)


@scenario("scan_distributed", "attack", "distributed SYN scan: 50 sources (203.0.113.100-149) × 20 "
          "ports each, 1000 distinct ports of one victim within 60 s, each source at ~1 probe/3 s",
          [E("distributed_scan", "destination", destination=VICTIM),
           E("port_scan", "destination", destination=VICTIM)])
def _(c, rng):
    ports = shuffled(rng, TCP_PORTS)
    for i in range(50):
        src = "203.0.113.%d" % (100 + i)
        start = rng.uniform(0, 3)
        nmap_syn_scan(c, rng, gaps(rng, 20, 2.9, start), ports[i * 20:(i + 1) * 20], scanner=src,
                      ttl_s=rng.randint(40, 56))
    where = {"src": "203.0.113.0/24", "dst": VICTIM, "proto": 6, "flags": 0x02}
    return {"sources": 50, "ports_per_source": 20, "mean_gap_s": 2.9}, [
        ("SYNs", where, "packets"), ("distinct ports", where, "distinct:dport"),
        ("distinct sources", where, "distinct:src")]


DECOYS = ["192.0.2.17", "192.0.2.44", "198.18.7.3", "100.70.1.9", "203.0.113.201"]


@scenario("scan_decoy", "attack", "nmap -sS -T4 -D 5 decoys,ME (top 1000): every probe sent from the "
          "5 decoys and the real source; the victim answers them all, only the real source resets "
          "after a SYN-ACK", [E("decoy_scan", "destination", destination=VICTIM)])
def _(c, rng):
    ports = shuffled(rng, TCP_PORTS)
    sports = {s: rng.randint(32768, 61000) for s in DECOYS + [SCANNER]}
    ttls = {s: rng.randint(37, 59) for s in DECOYS + [SCANNER]}
    for t, p in zip(gaps(rng, 1000, 0.003), ports):
        for k, src in enumerate(DECOYS[:3] + [SCANNER] + DECOYS[3:]):
            syn_probe_reply(c, rng, t + k * 0.00005, src, VICTIM, sports[src], p, rng.getrandbits(32),
                            VICTIM_OPEN, ttl_s=ttls[src], scanner_rst=(src == SCANNER))
    where = {"dst": VICTIM, "proto": 6, "flags": 0x02}
    return {"ports": 1000, "decoys": 5}, [
        ("SYNs", where, "packets"), ("distinct sources", where, "distinct:src"),
        ("SYNs from the real source", dict(where, src=SCANNER), "packets")]


V6_NET = "2001:db8:bad:1::/64"
V6_VICTIM = "2001:db8:100::20"


@scenario("scan_ipv6_rotating", "attack", "IPv6 SYN scan of the top 1000 ports from a scanner that "
          "takes a new address in its /64 every 2 probes", [E("port_scan", "source", source=V6_NET)])
def _(c, rng):
    ports = shuffled(rng, TCP_PORTS)
    net = ipaddress.ip_network(V6_NET)
    for i, (t, p) in enumerate(zip(gaps(rng, 1000, 0.002), ports)):
        if i % 2 == 0:
            src = str(net[rng.getrandbits(64)])
            sport = rng.randint(32768, 61000)
        syn_probe_reply(c, rng, t, src, V6_VICTIM, sport, p, rng.getrandbits(32), VICTIM_OPEN, ttl_s=57)
    where = {"src": V6_NET, "dst": V6_VICTIM, "proto": 6, "flags": 0x02}
    return {"ports": 1000, "probes_per_address": 2}, [
        ("SYNs", where, "packets"), ("distinct ports", where, "distinct:dport"),
        ("distinct source addresses", where, "distinct:src")]


# --------------------------------------------------------------------------------------------
# Scans behind encapsulation and parser limits (issue 12).

POD_A, POD_B = "10.244.1.5", "10.244.2.7"  # scanning pod, scanned pod
NODE_A, NODE_B = "10.1.0.11", "10.1.0.12"  # their nodes (tunnel endpoints)


def pod_scan(c, rng):
    """nmap -sS -T4 (top 1000) from one pod to another pod on another node."""
    ports = shuffled(rng, TCP_PORTS)
    nmap_syn_scan(c, rng, gaps(rng, 1000, 0.001), ports, scanner=POD_A, victim=POD_B, ttl_s=64)


def tunnel_ends(m):
    return (NODE_A, NODE_B) if m[0] == POD_A else (NODE_B, NODE_A)


def outer_udp(rng_hash, m, dport, header, inner):
    """IPv4/UDP around `inner` between the pods' nodes, UDP checksum 0 as Linux sends it;
    the source port is the flow hash the kernel derives from the inner headers."""
    osrc, odst = tunnel_ends(m)
    sport = 32768 + zlib.crc32(repr(m[:5]).encode()) % 28000
    udp = struct.pack("!HHHH", sport, dport, 8 + len(header) + len(inner), 0) + header + inner
    l3 = ip4_bytes(addr(osrc)[0], addr(odst)[0], 17, udp, 64, rng_hash.getrandbits(16), df=False)
    return frame(osrc, odst, l3, False), (osrc, odst, 17, sport, dport, None, None, None, 0, None)


def _tunnel(name, desc, encap, outer_check):
    @scenario(name, "attack", desc, [E("port_scan", "source", source=POD_A)])
    def _(c, rng):
        pod_scan(c, rng)
        hrng = random.Random(rng.random())
        c.wrap(lambda fr, m: encap(hrng, fr, m))
        where = {"src": POD_A, "dst": POD_B, "proto": 6, "flags": 0x02}
        return {"inner": "nmap -sS -T4 top 1000, pod to pod", "outer": desc.split(":")[0]}, [
            ("inner SYNs", where, "packets"), ("inner distinct ports", where, "distinct:dport"),
            ("outer tunnel packets", outer_check, "packets")]


VNI = 4242


def vxlan(h, fr, m):
    return outer_udp(h, m, 4789, struct.pack("!II", 0x08000000, VNI << 8), fr)


def geneve(h, fr, m):
    return outer_udp(h, m, 6081, struct.pack("!HHI", 0x0000, 0x6558, VNI << 8), fr)


def gre(h, fr, m):
    osrc, odst = tunnel_ends(m)
    inner_ip = fr[14:]
    payload = struct.pack("!HHI", 0x2000, 0x0800, VNI) + inner_ip  # K bit: 4-byte key
    l3 = ip4_bytes(addr(osrc)[0], addr(odst)[0], 47, payload, 64, h.getrandbits(16), df=False)
    return frame(osrc, odst, l3, False), (osrc, odst, 47, None, None, None, None, None, 0, None)


def ipip(h, fr, m):
    osrc, odst = tunnel_ends(m)
    l3 = ip4_bytes(addr(osrc)[0], addr(odst)[0], 4, fr[14:], 64, h.getrandbits(16), df=False)
    return frame(osrc, odst, l3, False), (osrc, odst, 4, None, None, None, None, None, 0, None)


_tunnel("tunnel_vxlan_scan", "VXLAN (UDP 4789, VNI 4242) between two nodes: a pod scans a pod on the "
        "other node, seen on the node uplink", vxlan, {"layer": "outer", "proto": 17, "dport": 4789})
_tunnel("tunnel_geneve_scan", "Geneve (UDP 6081): the same pod-to-pod scan", geneve,
        {"layer": "outer", "proto": 17, "dport": 6081})
_tunnel("tunnel_gre_scan", "GRE with a key (IP protocol 47): the same pod-to-pod scan", gre,
        {"layer": "outer", "proto": 47})
_tunnel("tunnel_ipip_scan", "IP-in-IP (IP protocol 4): the same pod-to-pod scan", ipip,
        {"layer": "outer", "proto": 4})


def vlan_tags(tags):
    def tag(fr, m):
        tagged = fr[:12] + b"".join(struct.pack("!HH", tpid, vid) for tpid, vid in tags) + fr[12:]
        return tagged, m

    return tag


def _vlan(name, desc, tags):
    @scenario(name, "attack", desc, [E("port_scan", "source", source=SCANNER)])
    def _(c, rng):
        ports = shuffled(rng, TCP_PORTS)
        nmap_syn_scan(c, rng, gaps(rng, 1000, 0.001), ports)
        c.wrap(vlan_tags(tags))
        where = {"src": SCANNER, "dst": VICTIM, "proto": 6, "flags": 0x02}
        return {"tags": ["0x%04x/%d" % t for t in tags]}, [
            ("SYNs", where, "packets"), ("distinct ports", where, "distinct:dport")]


_vlan("vlan_triple_scan", "nmap -sS -T4 (top 1000) behind 3 stacked 802.1Q tags (0x8100 × 3)",
      [(0x8100, 100), (0x8100, 200), (0x8100, 300)])
_vlan("vlan_9100_scan", "nmap -sS -T4 (top 1000) behind a 0x9100 outer tag and a 0x8100 inner tag",
      [(0x9100, 10), (0x8100, 20)])


@scenario("ipv6_exthdr_scan", "attack", "IPv6 SYN scan (top 1000) whose probes carry 7 extension "
          "headers (hop-by-hop + 6 destination options, PadN each); the victim answers plainly",
          [E("port_scan", "source", source="2001:db8:bad:2::9")])
def _(c, rng):
    scanner, victim = "2001:db8:bad:2::9", V6_VICTIM
    ports = shuffled(rng, TCP_PORTS)
    sport = rng.randint(32768, 61000)
    s, d = addr(scanner)[0], addr(victim)[0]
    for t, p in zip(gaps(rng, 1000, 0.001), ports):
        seq = rng.getrandbits(32)
        l4 = tcp_bytes(s, d, True, sport, p, seq, 0, 0x02, 1024, NMAP_SYN)
        chain = [0] + [60] * 6  # hop-by-hop first, then destination options
        ext = b""
        for i in range(len(chain)):
            nxt = chain[i + 1] if i + 1 < len(chain) else 6
            ext += struct.pack("!BB", nxt, 0) + b"\x01\x04" + bytes(4)  # PadN, 8 bytes in all
        l3 = ip6_bytes(s, d, 0, ext + l4, 57)
        c.pkts.append((int(t * 1e9), frame(scanner, victim, l3, True),
                       (scanner, victim, 6, sport, p, 0x02, None, None, 0, None)))
        tr = t + jit(rng, RTT)
        if p in VICTIM_OPEN:
            c.tcp(tr, victim, scanner, p, sport, "SA", seq=rng.getrandbits(32), ack=seq + 1, win=64800,
                  opts=LINUX_SYNACK)
            c.tcp(tr + 0.0002, scanner, victim, sport, p, "R", seq=seq + 1, win=0, ttl=57)
        else:
            c.tcp(tr, victim, scanner, p, sport, "RA", ack=seq + 1, win=0)
    where = {"src": scanner, "proto": 6, "flags": 0x02}
    return {"ports": 1000, "extension_headers": 7}, [
        ("SYNs", where, "packets"), ("distinct ports", where, "distinct:dport")]


def _fragscan(name, desc, size):
    @scenario(name, "attack", desc, [E("port_scan", "source", source=SCANNER)])
    def _(c, rng):
        ports = shuffled(rng, TCP_PORTS)
        sport = rng.randint(32768, 61000)
        for t, p in zip(gaps(rng, 1000, 0.0015), ports):
            seq = rng.getrandbits(32)
            c.tcp_fragments(t, SCANNER, VICTIM, sport, p, "S", seq, 1024, NMAP_SYN, 49, size)
            tr = t + jit(rng, RTT)
            if p in VICTIM_OPEN:  # the victim reassembles and answers as for an unfragmented SYN
                c.tcp(tr, VICTIM, SCANNER, p, sport, "SA", seq=rng.getrandbits(32), ack=seq + 1, win=65160,
                      opts=LINUX_SYNACK)
                c.tcp(tr + 0.0002, SCANNER, VICTIM, sport, p, "R", seq=seq + 1, win=0, ttl=49, df=False)
            else:
                c.tcp(tr, VICTIM, SCANNER, p, sport, "RA", ack=seq + 1, win=0)
        first = {"src": SCANNER, "proto": 6, "frag": "first"}
        return {"ports": 1000, "fragment_payload_bytes": size}, [
            ("first fragments", first, "packets"), ("distinct ports in first fragments", first, "distinct:dport"),
            ("later fragments", {"src": SCANNER, "frag": "later"}, "packets")]


_fragscan("frag_scan_f", "nmap -sS -f -T4 (top 1000): each 24-byte SYN in three 8-byte IP fragments "
          "(the first holds the ports, not the flags)", 8)
_fragscan("frag_scan_mtu16", "nmap -sS --mtu 16 -T4 (top 1000): each SYN in a 16-byte and an 8-byte "
          "fragment", 16)


@scenario("flood_bacnet_reflection", "attack", "BACnet reflection: 80 BACnet/IP devices send 6 000 "
          "ReadPropertyMultiple answers/s (480 bytes) from port 47808 to one victim for 2 s",
          [E("reflection", "destination", destination="198.51.100.80")], max_episodes=1)
def _(c, rng):
    devices = [public_ip(rng) for _ in range(80)]
    bvlc = b"\x81\x0a\x01\xe8"  # BVLC original-unicast-NPDU, length 488
    for t in flood_times(rng, 6000, 2):
        c.udp(t, rng.choice(devices), "198.51.100.80", 47808, 47808, bvlc + b"\x01\x00\x30" + data(rng, 477),
              ttl=rng.randint(45, 60))
    where = {"dst": "198.51.100.80", "proto": 17, "sport": 47808}
    return {"reflectors": 80, "rate_pps": 6000, "seconds": 2}, [
        ("answers", where, "packets"), ("distinct reflectors", where, "distinct:src")]


# --------------------------------------------------------------------------------------------
# Floods (issue 12).

WEB = "198.51.100.80"
POOL = random.Random(SEED).randbytes(1 << 17)


def data(rng, n):
    off = rng.randrange(0, len(POOL) - n)
    return POOL[off:off + n]


def public_ip(rng):
    """A random unicast address outside private, loopback, multicast and reserved space."""
    while True:
        a = rng.randint(1, 223)
        if a in (10, 127, 100, 169, 172, 192, 198, 203):
            continue
        return "%d.%d.%d.%d" % (a, rng.randint(0, 255), rng.randint(0, 255), rng.randint(1, 254))


def flood_times(rng, rate, seconds):
    return gaps(rng, int(rate * seconds), 1.0 / rate)


@scenario("flood_syn_spoofed", "attack", "hping3 -S -p 80 --flood --rand-source at 20 000 SYN/s for "
          "3 s; the victim answers every SYN with a SYN-ACK (SYN cookies) to addresses that never reply",
          [E("syn_flood", "destination", destination=WEB)], max_episodes=1)
def _(c, rng):
    for t in flood_times(rng, 20000, 3):
        src, sport, seq = public_ip(rng), rng.randint(1024, 65535), rng.getrandbits(32)
        c.tcp(t, src, WEB, sport, 80, "S", seq=seq, win=512, ttl=rng.randint(40, 60), df=False)
        c.tcp(t + 0.00003, WEB, src, 80, sport, "SA", seq=rng.getrandbits(32), ack=seq + 1, win=65160,
              opts=LINUX_SYNACK)
    where = {"dst": WEB, "proto": 6, "flags": 0x02}
    return {"rate_pps": 20000, "seconds": 3}, [("SYNs", where, "packets"),
                                               ("SYN-ACKs", {"src": WEB, "flags": 0x12}, "packets")]


@scenario("flood_syn_botnet", "attack", "botnet SYN flood: 50 sources × 950 SYN/s (47 500/s) for 2 s; "
          "SYN-cookie SYN-ACKs, each bot's kernel resets them",
          [E("syn_flood", "destination", destination=WEB)], max_episodes=1)
def _(c, rng):
    bots = ["%s" % public_ip(rng) for _ in range(50)]
    for b in bots:
        ttl = rng.randint(40, 60)
        for t in flood_times(rng, 950, 2):
            sport, seq = rng.randint(1024, 65535), rng.getrandbits(32)
            c.tcp(t, b, WEB, sport, 80, "S", seq=seq, win=64240, opts=LINUX_SYN, ttl=ttl)
            tr = t + 0.00003
            c.tcp(tr, WEB, b, 80, sport, "SA", seq=rng.getrandbits(32), ack=seq + 1, win=65160, opts=LINUX_SYNACK)
            c.tcp(tr + jit(rng, 0.04), b, WEB, sport, 80, "R", seq=seq + 1, win=0, ttl=ttl)
    where = {"dst": WEB, "proto": 6, "flags": 0x02}
    return {"sources": 50, "rate_per_source_pps": 950, "seconds": 2}, [
        ("SYNs", where, "packets"), ("distinct sources", where, "distinct:src")]


@scenario("flood_ack", "attack", "hping3 -A -p 80 --flood --rand-source at 50 000 ACK/s for 2 s; the "
          "victim resets every one", [E("tcp_flood", "destination", destination=WEB)], max_episodes=1)
def _(c, rng):
    for t in flood_times(rng, 50000, 2):
        src, sport, ack = public_ip(rng), rng.randint(1024, 65535), rng.getrandbits(32)
        c.tcp(t, src, WEB, sport, 80, "A", seq=rng.getrandbits(32), ack=ack, win=512, ttl=rng.randint(40, 60),
              df=False)
        c.tcp(t + 0.00002, WEB, src, 80, sport, "R", seq=ack, win=0)
    where = {"dst": WEB, "proto": 6, "flags": 0x10}
    return {"rate_pps": 50000, "seconds": 2}, [("ACKs", where, "packets"),
                                               ("RSTs", {"src": WEB, "flags": 0x04}, "packets")]


@scenario("flood_ack_bandwidth", "attack", "hping3 -A -d 1400 -p 80 --flood --rand-source: 50 000 full-size "
          "ACKs/s (1 454 bytes, ~580 Mbit/s) for 2 s; the victim resets every one; snaplen 128",
          [E("tcp_flood", "destination", destination=WEB)], max_episodes=1, snaplen=128)
def _(c, rng):
    for t in flood_times(rng, 50000, 2):
        src, sport, ack = public_ip(rng), rng.randint(1024, 65535), rng.getrandbits(32)
        c.tcp(t, src, WEB, sport, 80, "A", seq=rng.getrandbits(32), ack=ack, win=512, ttl=rng.randint(40, 60),
              df=False, data=data(rng, 1400))
        c.tcp(t + 0.00002, WEB, src, 80, sport, "R", seq=ack, win=0)
    where = {"dst": WEB, "proto": 6, "flags": 0x10}
    return {"rate_pps": 50000, "seconds": 2, "payload": 1400}, [
        ("ACKs", where, "packets"), ("RSTs", {"src": WEB, "flags": 0x04}, "packets")]


@scenario("flood_udp_random_ports", "attack", "hping3 --udp --flood -d 512 to random destination ports "
          "from one source at 30 000/s for 3 s; ICMP port unreachables at the kernel's rate limit; "
          "snaplen 256", [E("udp_flood", "source", source=SCANNER), E("udp_flood", "destination", destination=WEB)],
          forbid=["port_scan"], snaplen=256)
def _(c, rng):
    sport = rng.randint(1024, 65535)
    tokens, last = 6.0, 0.0
    for t in flood_times(rng, 30000, 3):
        c.udp(t, SCANNER, WEB, sport, rng.randint(1, 65535), data(rng, 512), ttl=52, df=False)
        tokens = min(6.0, tokens + (t - last))
        last = t
        if tokens >= 1:
            tokens -= 1
            c.icmp_error(t + 0.00003, WEB, SCANNER, 3, 3, c.last_frame())
    where = {"src": SCANNER, "dst": WEB, "proto": 17}
    return {"rate_pps": 30000, "seconds": 3, "payload": 512}, [
        ("UDP packets", where, "packets"), ("distinct destination ports", where, "distinct:dport")]


@scenario("flood_dns_reflection", "attack", "DNS reflection: 200 open resolvers send 3 000 ANY answers/s "
          "(3 008 bytes, 3 IPv4 fragments each) from port 53 to one victim for 3 s; capture snaplen 256",
          [E("reflection", "destination", destination=WEB)], max_episodes=1, snaplen=256)
def _(c, rng):
    resolvers = [public_ip(rng) for _ in range(200)]
    q = dns_query(rng, "example.org.", 255)  # ANY
    base = dns_answer(q, "example.org.", n_answers=1, rtype="TXT", rdata=["x" * 250] * 11)
    answer = base + bytes(3000 - len(base)) if len(base) < 3000 else base[:3000]
    for t in flood_times(rng, 3000, 3):
        r = rng.choice(resolvers)
        c.udp_fragments(t, r, WEB, 53, rng.randint(1024, 65535),
                        struct.pack("!H", rng.getrandbits(16)) + answer[2:], ttl=rng.randint(45, 60))
    return {"reflectors": 200, "answers_per_s": 3000, "seconds": 3, "answer_bytes": 3000}, [
        ("first fragments from port 53", {"dst": WEB, "proto": 17, "sport": 53}, "packets"),
        ("later fragments", {"dst": WEB, "frag": "later"}, "packets"),
        ("distinct reflectors", {"dst": WEB, "proto": 17}, "distinct:src")]


@scenario("flood_udp_fragmented", "attack", "fragmented UDP flood: hping3 --udp -d 2900 --flood "
          "--rand-source, 12 000 datagrams/s in 2 fragments for 2 s; snaplen 256",
          [E("frag_flood", "destination", destination=WEB), E("udp_flood", "destination", destination=WEB)],
          max_episodes=1, snaplen=256)
def _(c, rng):
    for t in flood_times(rng, 12000, 2):
        c.udp_fragments(t, public_ip(rng), WEB, rng.randint(1024, 65535), rng.randint(1, 65535), data(rng, 2900),
                        ttl=rng.randint(40, 60))
    return {"datagrams_per_s": 12000, "seconds": 2, "payload": 2900}, [
        ("fragments", {"dst": WEB, "frag": "any"}, "packets"),
        ("later fragments", {"dst": WEB, "frag": "later"}, "packets")]


@scenario("flood_gre", "attack", "GRE flood: 30 000 packets/s for 2 s from random sources, GRE (0x0800) "
          "around random inner IPv4/UDP with 64 bytes of payload",
          [E("proto_flood", "destination", destination=WEB)], max_episodes=1)
def _(c, rng):
    for t in flood_times(rng, 30000, 2):
        isrc, idst = addr(public_ip(rng))[0], addr(public_ip(rng))[0]
        inner = ip4_bytes(isrc, idst, 17, udp_bytes(isrc, idst, False, rng.randint(1, 65535),
                                                    rng.randint(1, 65535), data(rng, 64)), 64, rng.getrandbits(16))
        c.raw_ip(t, public_ip(rng), WEB, 47, b"\x00\x00\x08\x00" + inner, ttl=rng.randint(40, 60))
    return {"rate_pps": 30000, "seconds": 2}, [
        ("GRE packets", {"layer": "outer", "dst": WEB, "proto": 47}, "packets"),
        ("distinct sources", {"layer": "outer", "dst": WEB, "proto": 47}, "distinct:src")]


# --------------------------------------------------------------------------------------------
# Benign workloads (issue 11): no alert at all is expected.

def tcp_session(c, rng, t, cli, srv, cport, sport, exchange, rtt, near="srv", cli_ttl=64, srv_ttl=64,
                cli_syn=LINUX_SYN, finish="fin_c", mss=1448, seq_out=None):
    """A complete TCP connection as seen at a capture point next to `near` ('srv' or 'cli'):
    handshake, `exchange` = [(who, n_bytes or bytes)], then `finish` (fin_c, fin_s, rst_c, open).
    The receiver ACKs every second segment and the last unless its next message carries it.
    Returns the time of the last packet; `seq_out` (a dict) receives the next sequence numbers
    of both sides ('c', 's') when the exchange is done."""

    def d(who):
        return rng.uniform(0.00005, 0.0004) if who == near else jit(rng, rtt, 0.1)

    ttl = {"c": cli_ttl, "s": srv_ttl}
    ends = {"c": (cli, srv, cport, sport), "s": (srv, cli, sport, cport)}
    seq = {"c": rng.getrandbits(32), "s": rng.getrandbits(32)}
    win = {"c": 502, "s": 509}

    latest = [t]  # the time of the latest packet so far: nothing is sent before it

    def send(t, who, flags, payload=b"", opts=LINUX_TS, w=None):
        latest[0] = max(latest[0], t)
        src, dst, sp, dp = ends[who]
        other = "s" if who == "c" else "c"
        c.tcp(t, src, dst, sp, dp, flags, seq=seq[who], ack=seq[other] if "A" in flags else 0,
              win=w or win[who], opts=opts, data=payload, ttl=ttl[who])
        seq[who] += len(payload) + (1 if ("S" in flags or "F" in flags) else 0)

    send(t, "c", "S", opts=cli_syn, w=64240)
    t += d("s")
    send(t, "s", "SA", opts=LINUX_SYNACK, w=65160)
    t += d("c")
    send(t, "c", "A")
    last_who = "c"
    # Who sends the first packet after the exchange (its FIN or RST carries the last ACK).
    closer = {"fin_c": "c", "fin_s": "s", "rst_c": "c"}.get(finish)
    for i, (who, msg) in enumerate(exchange):
        payload = msg if isinstance(msg, bytes) else data(rng, msg)
        other = "s" if who == "c" else "c"
        t = max(t + (d(who) if who != last_who else 0.0002), latest[0] + 0.00001)
        ack_delay = d(other)  # one delay per message keeps the receiver's ACKs in order
        segs = [payload[k:k + mss] for k in range(0, len(payload), mss)]
        for k, seg in enumerate(segs):
            send(t, who, "PA" if k == len(segs) - 1 else "A", seg)
            last_seg = k == len(segs) - 1
            if last_seg:
                # The receiver answers with data (piggybacked ACK) or closes; else it ACKs.
                if i + 1 < len(exchange):
                    ack = exchange[i + 1][0] == who
                else:
                    ack = closer != other
            else:
                ack = k % 2 == 1
            if ack:
                send(t + ack_delay, other, "A")
            t += 0.00003 if not last_seg else 0.0
        last_who = who
    if seq_out is not None:
        seq_out.update(seq)
    if finish == "open":
        return latest[0]
    if finish == "rst_c":
        t = max(t + d("c"), latest[0] + 0.00001)
        send(t, "c", "RA", w=0)
        return t
    first = "c" if finish == "fin_c" else "s"
    second = "s" if first == "c" else "c"
    t = max(t + (d(first) if first != last_who else 0.001), latest[0] + 0.00001)
    send(t, first, "FA")
    t += d(second)
    send(t, second, "FA")
    t += d(first)
    send(t, first, "A")
    return t


HTTP_GET = (b"GET /index.html HTTP/1.1\r\nHost: www.example.com\r\nUser-Agent: Mozilla/5.0\r\n"
            b"Accept: */*\r\n\r\n")
HTTP_200 = (b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 612\r\nConnection: close\r\n\r\n"
            + b"<html>" + b"x" * 600 + b"</html>")


@scenario("benign_web_server", "benign", "busy web server: 2 400 new connections/s from 30 000 clients "
          "for 20 s, every handshake completed, one short HTTP exchange per connection")
def _(c, rng):
    clients = [(public_ip(rng), rng.choice((64, 128)) - rng.randint(8, 20), rng.uniform(0.01, 0.12))
               for _ in range(30000)]
    for t in flood_times(rng, 2400, 20):
        ip, ttl, rtt = rng.choice(clients)
        tcp_session(c, rng, t, ip, WEB, rng.randint(32768, 60999), 80, [("c", HTTP_GET), ("s", HTTP_200)],
                    rtt, cli_ttl=ttl, cli_syn=LINUX_SYN if ttl < 64 else WIN_SYN)
    where = {"dst": WEB, "proto": 6, "flags": 0x02}
    return {"connections_per_s": 2400, "seconds": 20, "clients": 30000}, [
        ("SYNs", where, "packets"), ("SYN-ACKs", {"src": WEB, "flags": 0x12}, "packets"),
        ("distinct clients", where, "distinct:src")]


@scenario("benign_nat_gateway", "benign", "NAT gateway 192.0.2.1: 500 new connections/min for 2 minutes "
          "to 200 servers (HTTPS mostly), Zipf-like popularity, all completed")
def _(c, rng):
    nat = "192.0.2.1"
    servers = [public_ip(rng) for _ in range(200)]
    weights = [1 / (i + 1) ** 0.6 for i in range(200)]
    port = rng.randint(20000, 30000)
    for t in flood_times(rng, 500 / 60, 120):
        srv = rng.choices(servers, weights)[0]
        port = 1024 + (port + rng.randint(1, 50) - 1024) % 64000
        tcp_session(c, rng, t, nat, srv, port, 443 if rng.random() < 0.9 else 80,
                    [("c", 517), ("s", 4100), ("c", 800), ("s", rng.randint(2000, 30000))],
                    rng.uniform(0.01, 0.15), near="cli", cli_ttl=63)
    where = {"src": nat, "proto": 6, "flags": 0x02}
    return {"connections_per_min": 500, "seconds": 120, "servers": 200}, [
        ("SYNs", where, "packets"), ("distinct servers", where, "distinct:dst")]


@scenario("benign_prometheus", "benign", "Prometheus 10.0.0.5, first scrape round of 300 targets spread "
          "over the 15 s interval (node 9100, cadvisor 8080, exporters 9187/9121/9113); 7 targets refuse "
          "(RST), 3 are down (SYN retransmitted)")
def _(c, rng):
    prom = "10.0.0.5"
    ports = [9100] * 200 + [8080] * 40 + [9187] * 20 + [9121] * 20 + [9113] * 20
    targets = [("10.0.%d.%d" % (1 + i // 200, 1 + i % 200), p) for i, p in enumerate(ports)]
    refuse = set(rng.sample(range(300), 10))
    down = set(rng.sample(sorted(refuse), 3))
    for i, (tgt, p) in enumerate(targets):
        t = rng.uniform(0, 15)
        cport = rng.randint(32768, 60999)
        if i in down:
            seq = rng.getrandbits(32)
            for k, back in enumerate((0, 1, 3)):
                c.tcp(t + back, prom, tgt, cport, p, "S", seq=seq, win=64240, opts=LINUX_SYN)
        elif i in refuse:
            seq = rng.getrandbits(32)
            c.tcp(t, prom, tgt, cport, p, "S", seq=seq, win=64240, opts=LINUX_SYN)
            c.tcp(t + jit(rng, 0.0004), tgt, prom, p, cport, "RA", ack=seq + 1, win=0)
        else:
            req = (b"GET /metrics HTTP/1.1\r\nHost: %s:%d\r\nUser-Agent: Prometheus/2.53.0\r\n"
                   b"Accept: application/openmetrics-text\r\nAccept-Encoding: gzip\r\n\r\n" % (tgt.encode(), p))
            tcp_session(c, rng, t, prom, tgt, cport, p, [("c", req), ("s", rng.randint(8000, 40000))],
                        0.0004, near="cli", finish="open")
    where = {"src": prom, "proto": 6, "flags": 0x02}
    return {"targets": 300, "interval_s": 15, "refused": 7, "down": 3}, [
        ("SYNs", where, "packets"), ("distinct targets", where, "distinct:dst"),
        ("RSTs", {"dst": prom, "flags": 0x14}, "packets")]


@scenario("benign_dns_resolver", "benign", "recursive resolver 10.0.0.53 asking 500 authoritative "
          "servers, 1 000 queries/s for 20 s from random source ports; 3 % time out")
def _(c, rng):
    res = "10.0.0.53"
    servers = [public_ip(rng) for _ in range(500)]
    names = ["%s.%s." % (rng.choice(("www", "mail", "api", "cdn", "ns1", "img")),
                         "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(4, 12)))
                         + rng.choice((".com", ".net", ".org", ".de", ".io"))) for _ in range(60)]
    templates = []
    for name in names:
        q = dns_query(rng, name, rng.choice(("A", "AAAA", "NS")))
        templates.append((q, dns_answer(q, name, n_answers=rng.randint(1, 4), rdata=public_ip(rng))))
    cum, acc = [], 0.0
    for i in range(500):  # Zipf-like popularity of the authoritative servers
        acc += 1 / (i + 1) ** 0.7
        cum.append(acc)
    for t in flood_times(rng, 1000, 20):
        srv = rng.choices(servers, cum_weights=cum)[0]
        q, a = rng.choice(templates)
        qid = struct.pack("!H", rng.getrandbits(16))
        sport = rng.randint(1024, 65535)
        c.udp(t, res, srv, sport, 53, qid + q[2:])
        if rng.random() > 0.03:
            c.udp(t + rng.uniform(0.005, 0.12), srv, res, 53, sport, qid + a[2:], ttl=rng.randint(44, 58))
    where = {"src": res, "proto": 17, "dport": 53}
    return {"queries_per_s": 1000, "seconds": 20, "servers": 500, "timeouts": 0.03}, [
        ("queries", where, "packets"), ("distinct servers", where, "distinct:dst"),
        ("answers", {"dst": res, "sport": 53}, "packets")]


@scenario("benign_health_checks", "benign", "load-balancer health checks: 10.0.0.10 checks 100 backends "
          "× 3 ports (80, 443, 8080) every 5 s for 60 s (connect, then RST as HAProxy does); one "
          "backend is down, one has 8080 closed")
def _(c, rng):
    lb = "10.0.0.10"
    backends = ["10.0.4.%d" % i for i in range(1, 101)]
    down, closed8080 = backends[17], backends[42]
    checks = [(b, p) for b in backends for p in (80, 443, 8080)]
    for rnd in range(12):
        for k, (b, p) in enumerate(checks):
            t = rnd * 5 + k * (5 / 300) + rng.uniform(0, 0.005)
            cport = rng.randint(32768, 60999)
            seq = rng.getrandbits(32)
            if b == down:
                c.tcp(t, lb, b, cport, p, "S", seq=seq, win=64240, opts=LINUX_SYN)
            elif b == closed8080 and p == 8080:
                c.tcp(t, lb, b, cport, p, "S", seq=seq, win=64240, opts=LINUX_SYN)
                c.tcp(t + 0.0003, b, lb, p, cport, "RA", ack=seq + 1, win=0)
            else:
                tcp_session(c, rng, t, lb, b, cport, p, [], 0.0003, near="cli", finish="rst_c")
    where = {"src": lb, "proto": 6, "flags": 0x02}
    return {"backends": 100, "ports": [80, 443, 8080], "interval_s": 5, "seconds": 60}, [
        ("SYNs", where, "packets"), ("distinct backends", where, "distinct:dst")]


@scenario("benign_bittorrent", "benign", "BitTorrent peer 10.0.0.77 for 60 s: 600 DHT queries to distinct "
          "nodes (65 % answer), 150 outgoing peer connections on random ports (60 % complete, 20 % RST, "
          "20 % silent), 50 incoming peers, uTP data from 8 peers; snaplen 256", snaplen=256)
def _(c, rng):
    me, dht = "10.0.0.77", 6881
    for t in flood_times(rng, 10, 60):
        node, port = public_ip(rng), rng.randint(1024, 65535)
        q = b"d1:ad2:id20:" + data(rng, 20) + b"9:info_hash20:" + data(rng, 20) + b"e1:q9:get_peers1:t2:aa1:y1:qe"
        c.udp(t, me, node, dht, port, q)
        if rng.random() < 0.65:
            c.udp(t + rng.uniform(0.03, 0.3), node, me, port, dht, b"d1:rd2:id20:" + data(rng, 20) + b"5:nodes208:"
                  + data(rng, 208) + b"e1:t2:aa1:y1:re", ttl=rng.randint(40, 58))
    hs = b"\x13BitTorrent protocol" + bytes(8) + data(rng, 40)
    for t in flood_times(rng, 150 / 60, 60):
        peer, port, cport = public_ip(rng), rng.randint(1024, 65535), rng.randint(32768, 60999)
        r = rng.random()
        if r < 0.6:
            tcp_session(c, rng, t, me, peer, cport, port, [("c", hs), ("s", hs), ("c", 5), ("s", rng.randint(2000, 40000))],
                        rng.uniform(0.03, 0.2), near="cli", srv_ttl=rng.randint(40, 58))
        else:
            seq = rng.getrandbits(32)
            c.tcp(t, me, peer, cport, port, "S", seq=seq, win=64240, opts=LINUX_SYN)
            if r < 0.8:
                c.tcp(t + rng.uniform(0.03, 0.2), peer, me, port, cport, "RA", ack=seq + 1, win=0, ttl=50)
            else:
                c.tcp(t + 1, me, peer, cport, port, "S", seq=seq, win=64240, opts=LINUX_SYN)
    for t in flood_times(rng, 50 / 60, 60):
        peer = public_ip(rng)
        tcp_session(c, rng, t, peer, me, rng.randint(1024, 65535), dht, [("c", hs), ("s", hs), ("s", 5), ("c", 16397)],
                    rng.uniform(0.03, 0.2), near="srv", cli_ttl=rng.randint(40, 58))
    for _ in range(8):
        peer, port, my = public_ip(rng), rng.randint(1024, 65535), dht
        for t in flood_times(rng, 60, 60):
            c.udp(t, peer, me, port, my, b"\x01\x00" + data(rng, 1400 - 10 + 8), ttl=49)
            if rng.random() < 0.5:
                c.udp(t + 0.05, me, peer, my, port, b"\x21\x00" + data(rng, 18))
    where = {"src": me, "proto": 6, "flags": 0x02}
    return {"seconds": 60, "dht_queries": 600, "tcp_out": 150, "tcp_in": 50, "utp_peers": 8}, [
        ("outgoing SYNs", where, "packets"), ("distinct peers contacted over TCP", where, "distinct:dst"),
        ("UDP sent from the DHT/uTP port", {"src": me, "sport": dht, "proto": 17}, "packets")]


@scenario("benign_passive_ftp", "benign", "passive FTP mirror: client 10.0.0.30 fetches 200 files in "
          "60 s over one control connection; every PASV data connection goes to another server port "
          "in 30000-31000")
def _(c, rng):
    cli, srv = "10.0.0.30", "198.51.100.21"
    rtt = 0.025
    ctl_c, ctl = rng.randint(32768, 60999), {}

    def control(t, who, text):
        src, dst, sp, dp = (cli, srv, ctl_c, 21) if who == "c" else (srv, cli, 21, ctl_c)
        other = "s" if who == "c" else "c"
        c.tcp(t, src, dst, sp, dp, "PA", seq=ctl[who], ack=ctl[other], win=502, opts=LINUX_TS, data=text,
              ttl=64 if who == "c" else 52)
        ctl[who] += len(text)

    tcp_session(c, rng, 0.0, cli, srv, ctl_c, 21, [("s", b"220 ProFTPD Server ready.\r\n"), ("c", b"USER anonymous\r\n"),
                                                   ("s", b"331 ok\r\n"), ("c", b"PASS x@\r\n"), ("s", b"230 ok\r\n")],
                rtt, near="cli", finish="open", srv_ttl=52, seq_out=ctl)
    ports = rng.sample(range(30000, 31001), 200)
    t = 1.0
    for i, port in enumerate(ports):
        control(t, "c", b"PASV\r\n")
        control(t + rtt, "s", b"227 Entering Passive Mode (198,51,100,21,%d,%d).\r\n" % (port >> 8, port & 255))
        dc = rng.randint(32768, 60999)
        t2 = tcp_session(c, rng, t + rtt + 0.0003, cli, srv, dc, port, [("s", rng.randint(4000, 60000))], rtt,
                         near="cli", finish="fin_s", srv_ttl=52)
        control(t + rtt + 0.0005, "c", b"RETR file%03d.tar.gz\r\n" % i)
        control(t + 2 * rtt, "s", b"150 Opening BINARY mode data connection\r\n")
        control(max(t2, t + 2 * rtt) + 0.001, "s", b"226 Transfer complete\r\n")
        t = max(t + rng.expovariate(1 / 0.3), t2 + 0.002)
    where = {"src": cli, "dst": srv, "proto": 6, "flags": 0x02}
    return {"files": 200, "pasv_range": "30000-31000"}, [
        ("SYNs", where, "packets"), ("distinct server ports connected to", where, "distinct:dport")]


@scenario("benign_rtp_calls", "benign", "40 G.711 calls for 15 s between an SBC (198.51.100.50) and 40 "
          "phones (10.0.3.x): RTP both ways at 50 packets/s per direction, DSCP EF")
def _(c, rng):
    sbc = "198.51.100.50"
    for i in range(40):
        phone = "10.0.3.%d" % (i + 1)
        ps, pp = 20000 + 2 * i * rng.randint(1, 40), 16384 + 2 * rng.randint(0, 8000)
        start = rng.uniform(0, 1)
        for src, dst, sp, dp in ((phone, sbc, pp, ps), (sbc, phone, ps, pp)):
            ssrc, seq, ts = rng.getrandbits(32), rng.getrandbits(16), rng.getrandbits(32)
            for k in range(750):
                t = start + k * 0.02 + rng.gauss(0, 0.001)
                rtp = struct.pack("!BBHII", 0x80, 0x80 if k == 0 else 0x00, (seq + k) & 0xFFFF,
                                  (ts + 160 * k) & 0xFFFFFFFF, ssrc) + data(rng, 160)
                c.udp(t, src, dst, sp, dp, rtp, tos=0xB8, ttl=64 if src == phone else 60)
    return {"calls": 40, "pps_per_direction": 50, "seconds": 15}, [
        ("RTP packets to the SBC", {"dst": sbc, "proto": 17}, "packets"),
        ("distinct phones", {"dst": sbc, "proto": 17}, "distinct:src")]


def route(rng, hops, silent=()):
    return [None if k in silent else ("10.0.0.1" if k == 1 else public_ip(rng)) for k in range(1, hops)]


@scenario("benign_traceroute", "benign", "traceroute (UDP, 3 probes per hop, 16 in flight) from "
          "10.0.0.40 to 8 destinations in a row, seen at the tracer's gateway: time-exceeded from every "
          "router (some silent), port unreachable from the destination")
def _(c, rng):
    tracer = "10.0.0.40"
    t = 0.0
    for _ in range(8):
        dst = public_ip(rng)
        hops = rng.randint(9, 17)
        routers = route(rng, hops, silent=set(rng.sample(range(2, hops), 2)))
        sport = rng.randint(32768, 60999)
        dport = 33434
        end = t
        for ttl in range(1, hops + 3):
            for _ in range(3):
                tp = t + (ttl - 1) * 0.004 + rng.uniform(0, 0.002)
                c.udp(tp, tracer, dst, sport, dport, bytes(32), ttl=ttl, df=False)
                probe = c.last_frame()
                rtt = 0.001 + ttl * 0.004
                if ttl < hops:
                    r = routers[ttl - 1]
                    if r is not None:
                        c.icmp_error(tp + jit(rng, rtt), r, tracer, 11, 0, probe, ttl=256 - ttl - 1 if ttl > 1 else 64)
                    else:
                        tp += 5.0  # traceroute waits for the silent hop
                else:
                    c.icmp_error(tp + jit(rng, rtt), dst, tracer, 3, 3, probe, ttl=64 - hops)
                end = max(end, tp + 0.2)
                dport += 1
            if ttl >= hops:
                break
        t = end + rng.uniform(0.5, 3)
    where = {"src": tracer, "proto": 17}
    return {"destinations": 8, "probes_per_hop": 3}, [
        ("UDP probes", where, "packets"),
        ("time exceeded", {"dst": tracer, "icmp_type": 11}, "packets"),
        ("port unreachable", {"dst": tracer, "icmp_type": 3, "icmp_code": 3}, "packets")]


@scenario("benign_quic_download", "benign", "QUIC (HTTP/3) download: 198.51.100.60:443 sends 30 000 "
          "packets/s of 1 252 bytes to one client for 5 s, the client ACKs every 4th; snaplen 128",
          snaplen=128)
def _(c, rng):
    srv, cli, cport = "198.51.100.60", "10.0.0.61", rng.randint(32768, 60999)
    cid = data(rng, 8)
    c.udp(0.0, cli, srv, cport, 443, b"\xc3\x00\x00\x00\x01\x08" + cid + data(rng, 1186))  # Initial, padded
    c.udp(0.03, srv, cli, 443, cport, b"\xc3\x00\x00\x00\x01\x08" + data(rng, 8) + data(rng, 1186), ttl=55)
    c.udp(0.0302, srv, cli, 443, cport, b"\xe3\x00\x00\x00\x01" + data(rng, 1000), ttl=55)
    c.udp(0.031, cli, srv, cport, 443, b"\xe3\x00\x00\x00\x01" + data(rng, 80))
    for k, t in enumerate(flood_times(rng, 30000, 5)):
        c.udp(0.035 + t, srv, cli, 443, cport, b"\x43" + cid + data(rng, 1243), ttl=55)
        if k % 4 == 3:
            c.udp(0.035 + t + 0.0001, cli, srv, cport, 443, b"\x41" + cid + data(rng, 31))
    return {"pps": 30000, "seconds": 5, "ack_every": 4}, [
        ("server packets", {"src": srv, "proto": 17, "sport": 443}, "packets"),
        ("client packets", {"src": cli, "proto": 17, "dport": 443}, "packets")]


def bulk_transfer(c, rng, t0, snd, rcv, sport, dport, rate, seconds, ack_every, ttl=64, upload=False):
    """A TCP connection whose sender pushes full segments at `rate` for `seconds` while the
    receiver ACKs every `ack_every`-th (a coalescing receiver's stretch ACKs). The receiver
    opens it (a download), or with `upload` the sender does."""
    cli_seq, srv_seq = rng.getrandbits(32), rng.getrandbits(32)
    if upload:
        c.tcp(t0, snd, rcv, sport, dport, "S", seq=srv_seq - 1, opts=LINUX_SYN)
        c.tcp(t0 + 0.01, rcv, snd, dport, sport, "SA", seq=cli_seq, ack=srv_seq, win=65160, opts=LINUX_SYNACK)
        c.tcp(t0 + 0.0101, snd, rcv, sport, dport, "A", seq=srv_seq, ack=cli_seq + 1, ttl=ttl)
        cli_seq -= 1
    else:
        c.tcp(t0, rcv, snd, dport, sport, "S", seq=cli_seq, opts=LINUX_SYN)
        c.tcp(t0 + 0.01, snd, rcv, sport, dport, "SA", seq=srv_seq, ack=cli_seq + 1, win=65160,
              opts=LINUX_SYNACK, ttl=ttl)
        c.tcp(t0 + 0.0101, rcv, snd, dport, sport, "A", seq=cli_seq + 1, ack=srv_seq + 1)
    seq = srv_seq + 1 if not upload else srv_seq
    for k, t in enumerate(flood_times(rng, rate, seconds)):
        c.tcp(t0 + 0.011 + t, snd, rcv, sport, dport, "A", seq=seq, ack=cli_seq + 1, data=data(rng, 1448),
              ttl=ttl)
        seq = (seq + 1448) & 0xFFFFFFFF
        if k % ack_every == ack_every - 1:
            c.tcp(t0 + 0.011 + t + 0.00005, rcv, snd, dport, sport, "A", seq=cli_seq + 1, ack=seq, win=65000)


@scenario("benign_cdn_download", "benign", "CDN download: 203.0.113.50:443 sends 80 000 segments/s of 1 448 "
          "bytes (~0.96 Gbit/s) to one client for 2 s; the client, coalescing, ACKs every 8th; snaplen 128",
          snaplen=128)
def _(c, rng):
    srv, cli = "203.0.113.50", "10.0.0.71"
    bulk_transfer(c, rng, 0.0, srv, cli, 443, rng.randint(32768, 60999), 80000, 2, 8, ttl=56)
    return {"pps": 80000, "seconds": 2, "ack_every": 8}, [
        ("data segments", {"src": srv, "dst": cli, "proto": 6}, "packets"),
        ("client segments", {"src": cli, "dst": srv, "proto": 6}, "packets")]


@scenario("benign_backup_stream", "benign", "backup stream: 10.0.0.81 pushes to rsync server 198.51.100.90:873 "
          "at 50 000 segments/s (~600 Mbit/s) for 3 s; the server ACKs every 2nd; snaplen 128", snaplen=128)
def _(c, rng):
    cli, srv = "10.0.0.81", "198.51.100.90"
    bulk_transfer(c, rng, 0.0, cli, srv, rng.randint(32768, 60999), 873, 50000, 3, 2, upload=True)
    return {"pps": 50000, "seconds": 3, "ack_every": 2}, [
        ("data segments", {"src": cli, "dst": srv, "proto": 6}, "packets"),
        ("server segments", {"src": srv, "dst": cli, "proto": 6}, "packets")]


@scenario("benign_vxlan_underlay", "benign", "busy VXLAN underlay: a pod on node 10.1.0.12 sends a pod on "
          "10.1.0.11 60 000 segments/s (~720 Mbit/s of UDP 4789 at the node) for 2 s, ACKed every 4th "
          "through the tunnel; snaplen 128", snaplen=128)
def _(c, rng):
    bulk_transfer(c, rng, 0.0, POD_B, POD_A, 8080, rng.randint(32768, 60999), 60000, 2, 4)
    hrng = random.Random(rng.random())
    c.wrap(lambda fr, m: vxlan(hrng, fr, m))
    return {"pps": 60000, "seconds": 2, "ack_every": 4}, [
        ("inner data segments", {"src": POD_B, "dst": POD_A, "proto": 6}, "packets"),
        ("outer packets to the receiving node", {"layer": "outer", "dst": NODE_A, "proto": 17, "dport": 4789},
         "packets")]


SMTP_IN = [("s", b"220 mx.example.net ESMTP Postfix\r\n"), ("c", b"EHLO client.example.com\r\n"),
           ("s", b"250-mx.example.net\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250-STARTTLS\r\n250 8BITMIME\r\n"),
           ("c", b"MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.net>\r\nDATA\r\n"),
           ("s", b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n"),
           ("c", b"From: a@example.com\r\nTo: b@example.net\r\nSubject: report\r\n\r\n"
                 + b"Lorem ipsum dolor sit amet, consectetur adipiscing elit.\r\n" * 100 + b".\r\n"),
           ("s", b"250 2.0.0 Ok: queued as 4Xyz\r\n"), ("c", b"QUIT\r\n"), ("s", b"221 2.0.0 Bye\r\n")]


@scenario("benign_mail_server", "benign", "mail server 198.51.100.25 for 60 s: 300 inbound SMTP sessions "
          "from 250 clients, 150 outbound deliveries to 120 MX hosts (4 refused, 3 unanswered)")
def _(c, rng):
    mta = "198.51.100.25"
    clients = [public_ip(rng) for _ in range(250)]
    for t in flood_times(rng, 5, 60):
        tcp_session(c, rng, t, rng.choice(clients), mta, rng.randint(1024, 65535), 25, SMTP_IN,
                    rng.uniform(0.02, 0.15), near="srv", cli_ttl=rng.randint(40, 58), finish="fin_c")
    mxs = [public_ip(rng) for _ in range(120)]
    for i, t in enumerate(flood_times(rng, 2.5, 60)):
        mx, cport = mxs[i % 120] if i < 120 else rng.choice(mxs), rng.randint(32768, 60999)
        if i in (11, 47, 90, 133):
            seq = rng.getrandbits(32)
            c.tcp(t, mta, mx, cport, 25, "S", seq=seq, win=64240, opts=LINUX_SYN)
            c.tcp(t + 0.05, mx, mta, 25, cport, "RA", ack=seq + 1, win=0, ttl=50)
        elif i in (22, 71, 140):
            seq = rng.getrandbits(32)
            for back in (0, 1, 3):
                c.tcp(t + back, mta, mx, cport, 25, "S", seq=seq, win=64240, opts=LINUX_SYN)
        else:
            # The MTA is the SMTP client here.
            tcp_session(c, rng, t, mta, mx, cport, 25, SMTP_IN, rng.uniform(0.02, 0.15), near="cli",
                        srv_ttl=rng.randint(40, 58))
    return {"inbound_sessions": 300, "clients": 250, "outbound": 150, "mx_hosts": 120}, [
        ("inbound SYNs", {"dst": mta, "dport": 25, "flags": 0x02}, "packets"),
        ("distinct MX hosts", {"src": mta, "dport": 25, "flags": 0x02}, "distinct:dst")]


@scenario("benign_mtr", "benign", "mtr -c 60 (ICMP echo) from 10.0.0.40 to a host 12 hops away: every "
          "second one probe per hop, time-exceeded from the routers (hop 7 silent), echo replies from "
          "the destination")
def _(c, rng):
    tracer, dst = "10.0.0.40", "203.0.113.50"
    routers = route(rng, 12, silent={7})
    ident = rng.getrandbits(16)
    seq = 0
    for rnd in range(60):
        for ttl in range(1, 13):
            t = rnd * 1.0 + (ttl - 1) * (1 / 12) + rng.uniform(0, 0.003)
            rest = struct.pack("!HH", ident, seq & 0xFFFF)
            seq += 1
            c.icmp(t, tracer, dst, 8, 0, rest, data(rng, 36), ttl=ttl)
            probe = c.last_frame()
            rtt = 0.001 + ttl * 0.003
            if ttl < 12:
                r = routers[ttl - 1]
                if r is not None:
                    c.icmp_error(t + jit(rng, rtt), r, tracer, 11, 0, probe, ttl=255 - ttl)
            else:
                c.icmp(t + jit(rng, rtt), dst, tracer, 0, 0, rest, probe[14 + 28:], ttl=52)
    return {"rounds": 60, "hops": 12}, [
        ("echo requests", {"src": tracer, "icmp_type": 8}, "packets"),
        ("time exceeded", {"dst": tracer, "icmp_type": 11}, "packets"),
        ("echo replies", {"dst": tracer, "icmp_type": 0}, "packets")]


# --------------------------------------------------------------------------------------------
# One-way vantages (issue 11 §1): what an XDP program without egress, or a capture of one
# direction, sees of some scenarios above. No answer is ever visible, so outcomes are unknown
# and the scan rules count them at doubled bars.

def one_way(name, base, label, description, keep, expect=None):
    """Scenario `base` with only the packets whose sender passes `keep`; the checks kept are
    those about packets that stay (a sender that passes, or a destination that does not)."""
    sc = next(s for s in SCENARIOS if s["name"] == base)

    @scenario(name, label, description, expect, forbid=sc["forbid"], max_episodes=sc["max_episodes"],
              snaplen=sc["snaplen"])
    def _(c, rng):
        params, checks = sc["fn"](c, rng)
        c.pkts = [p for p in c.pkts if keep(p[2][0])]
        kept = [ch for ch in checks
                if ("src" in ch[1] and keep(ch[1]["src"])) or ("dst" in ch[1] and not keep(ch[1]["dst"]))]
        return dict(params, vantage="one-way: %s without its answers" % base), kept


one_way("oneway_scan_syn_t4", "scan_syn_t4", "attack", "scan_syn_t4 seen one way: the scanner's SYNs, "
        "none of the victim's answers", lambda src: src == SCANNER, [E("port_scan", "source", source=SCANNER)])
one_way("oneway_sweep_ping", "sweep_ping", "attack", "sweep_ping seen one way: the echo requests, none "
        "of the replies", lambda src: src == SCANNER, [E("host_sweep", "source", source=SCANNER)])
one_way("oneway_web_server", "benign_web_server", "benign", "benign_web_server seen one way: the "
        "clients' packets, none of the server's", lambda src: src != WEB)
one_way("oneway_nat_gateway", "benign_nat_gateway", "benign", "benign_nat_gateway seen one way: the "
        "gateway's packets, none of the servers'", lambda src: src == "192.0.2.1")


# --------------------------------------------------------------------------------------------
# Driver.

def run_one(sc, out_dir):
    t0 = time.monotonic()
    seed = SEED ^ zlib.crc32(sc["name"].encode())
    rng = random.Random(seed)
    cap = Capture(rng, sc["snaplen"])
    params, checks = sc["fn"](cap, rng)
    verified = verify_sample(cap, random.Random(seed + 1))
    path = os.path.join(out_dir, sc["name"] + ".pcap")
    size = cap.write(path)
    entry = {
        "name": sc["name"],
        "file": sc["name"] + ".pcap",
        "label": sc["label"],
        "description": sc["description"],
        "expect": sc["expect"],
        "forbid": sc["forbid"],
        "max_episodes": sc["max_episodes"],
        "seed": seed,
        "params": params,
        "snaplen": sc["snaplen"],
        "packets": len(cap.pkts),
        "bytes": size,
        "duration_s": round(cap.duration_s(), 3),
        "first_ns": BASE_NS + min((t for t, _, _ in cap.pkts), default=0),
        "scapy_verified_frames": verified,
        "checks": [{"name": "packets", "where": {}, "measure": "packets", "expect": len(cap.pkts)}]
        + [{"name": n, "where": w, "measure": m, "expect": count(cap.pkts, w, m)} for n, w, m in checks],
        "generate_s": round(time.monotonic() - t0, 2),
    }
    return entry


def _worker(args):
    name, out_dir = args
    sc = next(s for s in SCENARIOS if s["name"] == name)
    return run_one(sc, out_dir)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out_dir", nargs="?")
    ap.add_argument("--only", help="comma-separated scenario names")
    ap.add_argument("--list", action="store_true", help="list the scenarios and exit")
    ap.add_argument("--jobs", type=int, default=1, help="scenarios generated in parallel")
    args = ap.parse_args()
    if args.list:
        for s in SCENARIOS:
            print("%-26s %-7s %s" % (s["name"], s["label"], s["description"]))
        return 0
    if not args.out_dir:
        ap.error("OUT_DIR is required")
    names = [s["name"] for s in SCENARIOS]
    if len(set(names)) != len(names):
        raise SystemExit("duplicate scenario names")
    if args.only:
        wanted = args.only.split(",")
        unknown = set(wanted) - set(names)
        if unknown:
            raise SystemExit("unknown scenarios: %s" % ", ".join(sorted(unknown)))
        names = [n for n in names if n in wanted]
    os.makedirs(args.out_dir, exist_ok=True)
    t0 = time.monotonic()
    jobs = [(n, args.out_dir) for n in names]
    if args.jobs > 1:
        import multiprocessing
        with multiprocessing.Pool(args.jobs) as pool:
            entries = list(pool.imap(_worker, jobs))
    else:
        entries = [_worker(j) for j in jobs]
    for e in entries:
        print("%-26s %-7s %8d packets %9.1f s %7.1f MB  (%.1f s)" % (
            e["name"], e["label"], e["packets"], e["duration_s"], e["bytes"] / 1e6, e["generate_s"]), flush=True)
    manifest = {
        "generator": "tests/corpus/generate.py",
        "seed": SEED,
        "base_time_ns": BASE_NS,
        "format": "pcap, nanosecond timestamps, LINKTYPE_ETHERNET",
        "scenarios": entries,
    }
    with open(os.path.join(args.out_dir, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")
    total = sum(e["packets"] for e in entries)
    size = sum(e["bytes"] for e in entries)
    print("%d scenarios, %d packets, %.1f MB in %.1f s -> %s" % (
        len(entries), total, size / 1e6, time.monotonic() - t0, os.path.join(args.out_dir, "manifest.json")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
