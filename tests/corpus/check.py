#!/usr/bin/env python3
"""Independent count check of the detection corpus: recounts every manifest check from the
bytes of the captures with dpkt (never scapy, which wrote them), and each file's packet count
with Wireshark's capinfos as well. Exits 1, naming every disagreement, when any count differs.

Checks look at the innermost packet (one level of VXLAN, Geneve, GRE or IP-in-IP is opened
here by hand, VLAN tags by dpkt) unless their filter says `"layer": "outer"`.

Usage: check.py CORPUS_DIR   (the directory holding manifest.json)
CORPUS_CHECK_JOBS (default 2) files are recounted in parallel.
"""

import ipaddress
import json
import os
import shutil
import struct
import subprocess
import sys
from functools import lru_cache

import dpkt


@lru_cache(maxsize=None)
def net(spec):
    return ipaddress.ip_network(spec, strict=False)


@lru_cache(maxsize=None)
def ip_str(raw):
    return str(ipaddress.ip_address(raw))


def l3_fields(ip, l4):
    """(src, dst, proto, sport, dport, tcp_flags, icmp_type, icmp_code, frag, sctp_chunk) of
    one dpkt IP/IP6 packet whose transport bytes are `l4`; frag is 0, 1 (first fragment) or 2
    (later fragment). TCP in a first fragment too short for dpkt is read by hand: ports from 4
    bytes, flags from 14."""
    if isinstance(ip, dpkt.ip.IP):
        proto = ip.p
        frag = 2 if ip.offset else (1 if ip.mf else 0)
    else:
        proto = getattr(ip, "p", ip.nxt)  # dpkt walks the extension headers into `p`
        frag = 0
    src, dst = ip_str(ip.src), ip_str(ip.dst)
    sport = dport = flags = ityp = icode = chunk = None
    if frag == 2:
        return src, dst, proto, None, None, None, None, None, frag, None
    if proto in (1, 6, 17, 58, 132) and len(l4) < 4:
        pass  # an empty header (IP-protocol scan): no ports
    elif proto == 6 and (frag == 1 or len(l4) < 20):
        sport, dport = struct.unpack("!HH", l4[:4])
        flags = l4[13] if len(l4) >= 14 else None
    elif proto == 6:
        tcp = dpkt.tcp.TCP(l4)
        sport, dport, flags = tcp.sport, tcp.dport, tcp.flags
    elif proto == 17:
        sport, dport = struct.unpack("!HH", l4[:4])
    elif proto in (1, 58):
        ityp, icode = l4[0], l4[1]
    elif proto == 132:
        sport, dport = struct.unpack("!HH", l4[:4])
        chunk = l4[12] if len(l4) > 12 else None
    return src, dst, proto, sport, dport, flags, ityp, icode, frag, chunk


def ip_layer(buf):
    """The dpkt IP/IP6 packet of an Ethernet frame (dpkt skips any 802.1Q/802.1ad/0x9100
    tags) and its transport bytes."""
    eth = dpkt.ethernet.Ethernet(buf)
    ip = eth.data
    if not isinstance(ip, (dpkt.ip.IP, dpkt.ip6.IP6)):
        raise ValueError("not IP (ethertype 0x%04x)" % eth.type)
    return ip, transport(ip)


def transport(ip):
    if isinstance(ip, dpkt.ip.IP):
        return bytes(ip)[ip.hl * 4:ip.len]
    return bytes(ip.data)


def inner_ip(ip, l4, proto, frag):
    """The packet inside one level of VXLAN (4789), Geneve (6081), GRE or IP-in-IP, or None."""
    if frag:
        return None
    try:
        if proto == 17 and len(l4) >= 16:
            dport = struct.unpack("!H", l4[2:4])[0]
            if dport == 4789:
                return ip_layer(l4[16:])
            if dport == 6081:
                optlen = (l4[8] & 0x3F) * 4
                return ip_layer(l4[16 + optlen:])
        if proto == 47 and len(l4) >= 4:
            flags, ptype = struct.unpack("!HH", l4[:4])
            off = 4 + 4 * bool(flags & 0x8000) + 4 * bool(flags & 0x2000) + 4 * bool(flags & 0x1000)
            if ptype == 0x0800:
                inner = dpkt.ip.IP(l4[off:])
                return inner, transport(inner)
        if proto == 4 and len(l4) >= 20:
            inner = dpkt.ip.IP(l4)
            return inner, transport(inner)
    except (dpkt.UnpackError, ValueError):
        return None
    return None


def fields(buf):
    """The outer and the innermost tuple of one frame (the same when nothing is tunnelled)."""
    ip, l4 = ip_layer(buf)
    outer = l3_fields(ip, l4)
    got = inner_ip(ip, l4, outer[2], outer[8])
    inner = l3_fields(*got) if got else outer
    return outer, inner


def matches(where, f):
    src, dst, proto, sport, dport, flags, ityp, icode, frag, chunk = f
    for k, v in where.items():
        if k == "layer":
            continue
        if k == "src":
            ok = ipaddress.ip_address(src) in net(v) if "/" in v else src == v
        elif k == "dst":
            ok = ipaddress.ip_address(dst) in net(v) if "/" in v else dst == v
        elif k == "proto":
            ok = proto == v
        elif k == "sport":
            ok = sport == v
        elif k == "dport":
            ok = dport == v
        elif k == "flags":
            ok = flags == v
        elif k == "flags_all":
            ok = flags is not None and flags & v == v
        elif k == "icmp_type":
            ok = ityp == v
        elif k == "icmp_code":
            ok = icode == v
        elif k == "frag":
            ok = {"any": frag != 0, "first": frag == 1, "later": frag == 2}[v]
        elif k == "sctp_chunk":
            ok = chunk == v
        else:
            raise KeyError("unknown filter key %r" % k)
        if not ok:
            return False
    return True


INDEX = {"src": 0, "dst": 1, "proto": 2, "sport": 3, "dport": 4}


def recount(path, checks):
    sel = [[] if c["measure"] == "packets" else set() for c in checks]
    counts = [0] * len(checks)
    with open(path, "rb") as f:
        for _, buf in dpkt.pcap.Reader(f):
            both = fields(buf)
            for i, c in enumerate(checks):
                fl = both[0] if c["where"].get("layer") == "outer" else both[1]
                if matches(c["where"], fl):
                    if c["measure"] == "packets":
                        counts[i] += 1
                    else:
                        v = fl[INDEX[c["measure"].split(":", 1)[1]]]
                        if v is not None:
                            sel[i].add(v)
    return [counts[i] if c["measure"] == "packets" else len(sel[i]) for i, c in enumerate(checks)]


def capinfos_count(path):
    out = subprocess.run(["capinfos", "-M", "-c", "-T", "-r", path], check=True, capture_output=True,
                         text=True).stdout.split()
    return int(out[-1])


def main():
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    corpus = sys.argv[1]
    with open(os.path.join(corpus, "manifest.json")) as f:
        manifest = json.load(f)
    have_capinfos = shutil.which("capinfos") is not None
    if not have_capinfos:
        print("note: capinfos not found; packet counts are checked with dpkt only")
    bad = 0
    scenarios = manifest["scenarios"]
    jobs = int(os.environ.get("CORPUS_CHECK_JOBS", "2"))
    args = [(os.path.join(corpus, sc["file"]), sc["checks"]) for sc in scenarios]
    if jobs > 1:
        import multiprocessing
        with multiprocessing.Pool(jobs) as pool:
            results = pool.starmap(recount, args)
    else:
        results = [recount(*a) for a in args]
    for sc, got in zip(scenarios, results):
        path = os.path.join(corpus, sc["file"])
        parts = []
        for c, g in zip(sc["checks"], got):
            ok = g == c["expect"]
            bad += not ok
            parts.append("%s %d%s" % (c["name"], g, "" if ok else " != manifest %d  MISMATCH" % c["expect"]))
        if have_capinfos:
            n = capinfos_count(path)
            if n != sc["packets"]:
                bad += 1
                parts.append("capinfos %d != manifest %d  MISMATCH" % (n, sc["packets"]))
            else:
                parts.append("capinfos agrees")
        print("%-26s %s" % (sc["name"], "; ".join(parts)), flush=True)
    if bad:
        print("FAILED: %d count(s) disagree with the manifest" % bad)
        return 1
    print("ok: every count of %d captures agrees (dpkt%s)" % (len(manifest["scenarios"]),
                                                          ", capinfos" if have_capinfos else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
