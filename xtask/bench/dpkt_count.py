#!/usr/bin/python3
"""Per-protocol counting with dpkt, the baseline of `cargo xtask bench` for `picket analyze`.

Reads a classic Ethernet pcap with dpkt.pcap.Reader, decodes every frame with
dpkt.ethernet.Ethernet and counts packets and bytes per EtherType, IP protocol and transport,
with the categories of `picket analyze`'s protocol mix (agent/src/analyze/report.rs, rules of
agent_common::classify). Frames dpkt decodes cleanly are counted from dpkt's objects; the rare
ones where dpkt's decoding and picket's rules part ways (VLAN/MPLS tags, IPv6 extension
headers, fragments, truncated or malformed headers, LLC) go through `rules`, a byte-level
transcription of those rules, so that the counts can be checked against picket's.

Usage: dpkt_count.py FILE  -> one JSON object on stdout.
"""

import json
import sys

import dpkt

TCP, UDP, ICMP, ICMPV6, OTHER_IP, NON_IP, UNPARSED = (
    "tcp", "udp", "icmp", "icmpv6", "other_ip", "non_ip", "unparsed")
UNPARSED_ROW = ("unparsed", None, UNPARSED)
VLAN = (0x8100, 0x88a8)
# EtherTypes dpkt decodes through (tags, labels) and picket does not: always use `rules`.
DPKT_SPECIAL = (0x8100, 0x88a8, 0x9100, 0x8847, 0x8848)


def be16(b, o):
    return (b[o] << 8) | b[o + 1]


def l4(buf, off, et, p):
    n = len(buf)
    if p == 6:
        if off + 14 > n:
            return UNPARSED_ROW
        doff = (buf[off + 12] >> 4) * 4
        if doff < 20 or off + doff > n:
            return UNPARSED_ROW
        return (et, p, TCP)
    if p == 17:
        return UNPARSED_ROW if off + 8 > n else (et, p, UDP)
    if p in (1, 58):
        return UNPARSED_ROW if off + 8 > n else (et, p, ICMP if p == 1 else ICMPV6)
    return (et, p, OTHER_IP)


def rules(buf):
    """(ethertype key, IP protocol or None, transport row) by picket's rules."""
    n = len(buf)
    if n < 14:
        return UNPARSED_ROW
    et = be16(buf, 12)
    off = 14
    for _ in range(2):
        if et not in VLAN:
            break
        if off + 4 > n:
            return UNPARSED_ROW
        et = be16(buf, off + 2)
        off += 4
    if et in VLAN:
        return UNPARSED_ROW
    if et == 0x0800:
        if off + 20 > n or buf[off] >> 4 != 4:
            return UNPARSED_ROW
        hl = (buf[off] & 15) * 4
        if hl < 20 or be16(buf, off + 2) < hl or off + hl > n:
            return UNPARSED_ROW
        p = buf[off + 9]
        if be16(buf, off + 6) & 0x1FFF:
            return (et, p, OTHER_IP)
        return l4(buf, off + hl, et, p)
    if et == 0x86DD:
        if off + 40 > n or buf[off] >> 4 != 6:
            return UNPARSED_ROW
        nh = buf[off + 6]
        off += 40
        for _ in range(6):
            if nh in (0, 43, 60, 51):
                if off + 2 > n:
                    return UNPARSED_ROW
                nxt, ln = buf[off], buf[off + 1]
                off += (ln + 2) * 4 if nh == 51 else (ln + 1) * 8
                nh = nxt
            elif nh == 44:
                if off + 8 > n:
                    return UNPARSED_ROW
                nxt = buf[off]
                frag = be16(buf, off + 2)
                off += 8
                nh = nxt
                if frag & 0xFFF8:
                    return (et, nh, OTHER_IP)
            else:
                break
        if nh in (0, 43, 44, 51, 60) or off > n:
            return UNPARSED_ROW
        return l4(buf, off, et, nh)
    return (et, None, NON_IP) if et >= 0x600 else ("llc", None, NON_IP)


def with_dpkt(buf):
    """The counting row from dpkt's decoding, or None when `rules` must decide."""
    try:
        eth = dpkt.ethernet.Ethernet(buf)
    except (dpkt.NeedData, dpkt.UnpackError, IndexError, KeyError):
        return None
    et = eth.type
    if et == 0x0800:
        ip = eth.data
        if type(ip) is not dpkt.ip.IP or ip.v != 4:
            return None
        hl = ip.hl * 4
        if len(ip.opts) != hl - 20 or ip.len < hl or ip.offset != 0:
            return None
        p = ip.p
        seg = ip.data
    elif et == 0x86DD:
        ip = eth.data
        if type(ip) is not dpkt.ip6.IP6 or ip.v != 6:
            return None
        p = ip.nxt
        seg = ip.data
    elif et < 0x600 or et in DPKT_SPECIAL:
        return None
    else:
        return (et, None, NON_IP)
    t = type(seg)
    if p == 6 and t is dpkt.tcp.TCP:
        if len(seg.opts) != seg.off * 4 - 20:
            return None
        return (et, p, TCP)
    if p == 17 and t is dpkt.udp.UDP:
        return (et, p, UDP)
    if p == 1 and t is dpkt.icmp.ICMP and len(seg) >= 8:
        return (et, p, ICMP)
    if p == 58 and t is dpkt.icmp6.ICMP6 and len(seg) >= 8:
        return (et, p, ICMPV6)
    if p not in (6, 17, 1, 58, 0, 43, 44, 51, 60):
        return (et, p, OTHER_IP)
    return None


def main():
    ethertypes, ip_protocols, l4_rows = {}, {}, {}
    packets = total = fallback = 0

    def add(table, key, size):
        row = table.get(key)
        if row is None:
            table[key] = [1, size]
        else:
            row[0] += 1
            row[1] += size

    with open(sys.argv[1], "rb") as f:
        reader = dpkt.pcap.Reader(f)
        if reader.datalink() != dpkt.pcap.DLT_EN10MB:
            sys.exit("not an Ethernet capture")
        for _ts, buf in reader:
            size = len(buf)
            packets += 1
            total += size
            row = with_dpkt(buf)
            if row is None:
                fallback += 1
                row = rules(buf)
            et, p, l4row = row
            add(ethertypes, et if isinstance(et, str) else "0x%04x" % et, size)
            if p is not None:
                add(ip_protocols, str(p), size)
            add(l4_rows, l4row, size)
    json.dump({
        "packets": packets,
        "bytes": total,
        "fallback_packets": fallback,
        "ethertypes": ethertypes,
        "ip_protocols": ip_protocols,
        "l4": l4_rows,
    }, sys.stdout, sort_keys=True)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
