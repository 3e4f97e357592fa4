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
VLAN = (0x8100, 0x88a8, 0x9100, 0x9200)
# agent_common::classify::{MAX_VLAN_TAGS, MAX_EXT_HDRS, MAX_MPLS_LABELS},
# agent_common::tunnel::MAX_HDR_OFF.
MAX_VLAN_TAGS, MAX_EXT_HDRS, MAX_MPLS_LABELS, MAX_HDR_OFF = 4, 8, 4, 1024
ETH_P_TEB = 0x6558
# EtherTypes dpkt decodes through (tags, labels) and picket does not: always use `rules`.
DPKT_SPECIAL = (0x8100, 0x88a8, 0x9100, 0x9200, 0x8847, 0x8848, 0x8864)


def be16(b, o):
    return (b[o] << 8) | b[o + 1]


def l4(buf, off, et, p, end):
    """The transport row of protocol `p` at `off`; the IP payload ends at `end` (headers are
    checked against it, never against the frame: Ethernet padding is not TCP)."""
    n = min(len(buf), end)
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
    return tagged(buf, be16(buf, 12), 14, True)


def tagged(buf, et, off, outer):
    """The row of the L3 packet of EtherType `et` at `off`, after VLAN tags."""
    n = len(buf)
    for _ in range(MAX_VLAN_TAGS):
        if et not in VLAN:
            break
        if off + 4 > n:
            return UNPARSED_ROW
        et = be16(buf, off + 2)
        off += 4
    if et in VLAN:
        return UNPARSED_ROW
    if et == 0x8864:  # PPPoE session: IPv4 or IPv6 inside, else not IP
        if off + 8 > n:
            return UNPARSED_ROW
        ppp = be16(buf, off + 6)
        if ppp in (0x0021, 0x0057):
            et = 0x0800 if ppp == 0x0021 else 0x86DD
            off += 8
    if et in (0x8847, 0x8848):  # MPLS: labels to the bottom of the stack, then the nibble
        for _ in range(MAX_MPLS_LABELS):
            if off + 4 > n:
                return UNPARSED_ROW
            bottom = buf[off + 2] & 1
            off += 4
            if bottom:
                if off + 2 > n:
                    return UNPARSED_ROW
                et = {4: 0x0800, 6: 0x86DD}.get(buf[off] >> 4, et)
                break
    if et == 0x0800:
        if off + 20 > n or buf[off] >> 4 != 4:
            return UNPARSED_ROW
        hl = (buf[off] & 15) * 4
        tot = be16(buf, off + 2)
        if hl < 20 or tot < hl or off + hl > n:
            return UNPARSED_ROW
        p = buf[off + 9]
        if be16(buf, off + 6) & 0x1FFF:
            return (et, p, OTHER_IP)
        first = bool(be16(buf, off + 6) & 0x2000)
        row = l4(buf, off + hl, et, p, off + tot)
        if outer and not first and row != UNPARSED_ROW:
            return decap(buf, et, p, off + hl, min(off + tot, n), row)
        return row
    if et == 0x86DD:
        if off + 40 > n or buf[off] >> 4 != 6:
            return UNPARSED_ROW
        plen = be16(buf, off + 4)
        end = n if plen == 0 else off + 40 + plen
        nh = buf[off + 6]
        off += 40
        first = False
        for _ in range(MAX_EXT_HDRS):
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
                first = first or bool(frag & 1)
            else:
                break
        if nh in (0, 43, 44, 51, 60) or off > n:
            return UNPARSED_ROW
        row = l4(buf, off, et, nh, end)
        if outer and not first and row != UNPARSED_ROW:
            return decap(buf, et, nh, off, min(end, n), row)
        return row
    return (et, None, NON_IP) if et >= 0x600 else ("llc", None, NON_IP)


def decap(buf, et, p, off, end, row):
    """One level of tunnel (agent_common::tunnel): the inner packet's row, or `row` (the
    outer packet's) when there is no tunnel or its inner packet is not decoded."""
    inner = None
    if p in (4, 41):
        inner = (0x0800 if p == 4 else 0x86DD, off)
    elif p == 47:
        if off + 4 > end:
            return row
        flags = be16(buf, off)
        if flags & (0x4000 | 0x0007):
            return row
        proto = be16(buf, off + 2)
        at = off + 4 + (4 if flags & 0x8000 else 0)
        if flags & 0x2000:
            if at + 4 > end:
                return row
            at += 4
        at += 4 if flags & 0x1000 else 0
        inner = (proto, at)
    elif p == 17 and row[2] == UDP:
        dport = be16(buf, off + 2)
        h = off + 8
        if dport in (4789, 8472):
            if h + 8 > end or not buf[h] & 0x08:
                return row
            inner = (ETH_P_TEB, h + 8)
        elif dport == 6081:
            if h + 8 > end or buf[h] >> 6:
                return row
            inner = (be16(buf, h + 2), h + 8 + (buf[h] & 0x3F) * 4)
    if inner is None:
        return row
    proto, at = inner
    if proto not in (ETH_P_TEB, 0x0800, 0x86DD, 0x8847, 0x8848) or at > MAX_HDR_OFF:
        return row
    least = 14 if proto == ETH_P_TEB else 40 if proto == 0x86DD else 20
    if at + least > end:
        return row
    if proto == ETH_P_TEB:
        got = tagged(buf, be16(buf, at + 12), at + 14, False)
    else:
        got = tagged(buf, proto, at, False)
    return row if got == UNPARSED_ROW else got


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
    if p in (4, 41, 47) or (p == 17 and t is dpkt.udp.UDP and seg.dport in (4789, 8472, 6081)):
        return None  # a tunnel: `rules` decapsulates as picket does
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
    if p not in (6, 17, 1, 58, 0, 43, 44, 51, 60, 4, 41, 47):
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
