//! `picket analyze` against real captures: counts agree with tshark, the detectors raise what
//! the captures call for (expected values computed with tshark, never copied from docs), no
//! input makes it panic, and the outputs hold what they promise. No root needed; tshark and
//! editcap (Debian `tshark`, `wireshark-common`) must be installed.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    path::{Path, PathBuf},
    process::Command,
};

use picket_analyze::{self as analyze, Options, Report, charts, html, text};
use picket_detect::detector::Thresholds;
use serde_json::Value;

fn pcaps() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/pcaps"))
}

fn capture(rel: &str) -> PathBuf {
    pcaps().join(rel)
}

fn esnet_and_ddos() -> Vec<PathBuf> {
    let mut v = Vec::new();
    for dir in ["esnet", "ddos"] {
        let mut files: Vec<PathBuf> = std::fs::read_dir(pcaps().join(dir))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        v.extend(files);
    }
    v
}

fn report(path: &Path, opts: &Options) -> Report {
    analyze::analyze(&[path.to_path_buf()], opts)
        .unwrap_or_else(|e| panic!("{}: {e:#}", path.display()))
}

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("picket-analyze-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Runs tshark on `path` (IP reassembly off, so each frame is judged on its own headers) and
/// returns the requested fields (first occurrence) of the frames matching `filter`.
fn tshark(path: &Path, filter: &str, extra: &[&str], fields: &[&str]) -> Vec<Vec<String>> {
    tshark_occurrence(path, filter, extra, fields, "f")
}

/// [`tshark`] with the given field occurrence (`f` first, `l` last, `a` all, comma-separated):
/// a tunnelled packet has its fields twice, outer then inner.
fn tshark_occurrence(
    path: &Path,
    filter: &str,
    extra: &[&str],
    fields: &[&str],
    occurrence: &str,
) -> Vec<Vec<String>> {
    let occurrence = format!("occurrence={occurrence}");
    let mut cmd = Command::new("tshark");
    cmd.arg("-r")
        .arg(path)
        .args(["-o", "ip.defragment:FALSE", "-o", "ipv6.defragment:FALSE"]);
    cmd.args(extra);
    if !filter.is_empty() {
        cmd.args(["-Y", filter]);
    }
    cmd.args(["-T", "fields", "-E", "separator=|", "-E", &occurrence]);
    for f in fields {
        cmd.args(["-e", f]);
    }
    let out = cmd
        .output()
        .expect("tshark must be installed (apt-get install tshark)");
    assert!(
        out.status.success(),
        "tshark failed on {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| l.split('|').map(str::to_string).collect())
        .collect()
}

/// "1566411407.841604000" → nanoseconds.
fn epoch_ns(s: &str) -> u64 {
    let (sec, frac) = s.split_once('.').unwrap_or((s, "0"));
    let frac = format!("{frac:0<9}");
    sec.parse::<u64>().unwrap() * 1_000_000_000 + frac[..9].parse::<u64>().unwrap()
}

/// Time of the first frame.
fn first_ns(path: &Path) -> u64 {
    epoch_ns(&tshark(path, "", &["-c", "1"], &["frame.time_epoch"])[0][0])
}

/// The transport class of `Summary`-based counting, from tshark's first IP header.
fn l4_class(proto: &str, frag_off: &str, ipv6_nxt: &str) -> &'static str {
    // All occurrences: a tunnel (protocol 4, 41 or 47, or UDP carrying IP) counts by its
    // inner packet, one level deep, as Picket accounts it; an ICMP error's quoted header
    // (after protocol 1 or 58) does not count.
    let pick = |list: &str| -> String {
        let v: Vec<&str> = list.split(',').collect();
        match (v.first(), v.get(1)) {
            (Some(&("4" | "41" | "47" | "17")), Some(inner)) => inner.to_string(),
            (Some(first), _) => first.to_string(),
            _ => String::new(),
        }
    };
    let frag_off = frag_off.split(',').next().unwrap_or("");
    let (proto, ipv6_nxt) = match (proto.is_empty(), ipv6_nxt.is_empty()) {
        // Mixed families (6in4, 4in6): the inner header's field.
        (false, false) if proto.starts_with("41") => (String::new(), pick(ipv6_nxt)),
        (false, false) => (pick(proto), String::new()),
        _ => (pick(proto), pick(ipv6_nxt)),
    };
    let (proto, ipv6_nxt) = (proto.as_str(), ipv6_nxt.as_str());
    let class = |p: u8, v6: bool| match p {
        6 => "tcp",
        17 => "udp",
        1 if !v6 => "icmp",
        58 => "icmpv6",
        _ => "other_ip",
    };
    if !proto.is_empty() {
        if frag_off.parse::<u32>().unwrap_or(0) != 0 {
            "other_ip"
        } else {
            class(proto.parse().unwrap(), false)
        }
    } else if !ipv6_nxt.is_empty() {
        class(ipv6_nxt.parse().unwrap(), true)
    } else {
        "non_ip"
    }
}

/// The alert documents of `rule`, as JSON.
fn alerts(r: &Report, rule: &str) -> Vec<Value> {
    r.alerts
        .iter()
        .map(|a| serde_json::to_value(a).unwrap())
        .filter(|a| a["rule"]["name"] == rule)
        .collect()
}

fn starts(alerts: &[Value]) -> Vec<&Value> {
    alerts
        .iter()
        .filter(|a| a["event"]["action"] == "start")
        .collect()
}

fn picket(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_picket"))
        .arg("analyze")
        .args(args)
        .output()
        .unwrap()
}

fn check_consistent(r: &Report, name: &str) {
    let t = &r.totals;
    assert_eq!(
        t.packets,
        r.inputs.iter().map(|i| i.packets).sum::<u64>(),
        "{name}"
    );
    let l4: u64 = r.protocols.l4.iter().map(|p| p.packets).sum();
    let l2: u64 = r.protocols.ethertypes.iter().map(|p| p.packets).sum();
    let links: u64 = r.link_types.iter().map(|l| l.packets).sum();
    assert_eq!(
        l4 + t.unsupported_link_packets,
        t.packets,
        "{name}: transport rows"
    );
    assert_eq!(l2, l4, "{name}: EtherType rows");
    assert_eq!(links, t.packets, "{name}: link types");
    assert_eq!(
        r.detection.globals_packets, l4,
        "{name}: the state model saw every decoded packet"
    );
    assert_eq!(
        r.timeline.buckets.iter().map(|b| b.packets).sum::<u64>(),
        t.packets,
        "{name}: timeline"
    );
    assert_eq!(
        r.packet_sizes.iter().map(|b| b.packets).sum::<u64>(),
        t.packets,
        "{name}: sizes"
    );
    assert!(t.bytes >= t.captured_bytes, "{name}");
    assert!(
        t.duration_s >= 0.0 && t.packets_per_s.is_finite() && t.bits_per_s.is_finite(),
        "{name}"
    );
}

#[test]
fn corpus_never_panics_and_reports_consistently() {
    let mut files = Vec::new();
    let mut dirs = vec![pcaps()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                dirs.push(p)
            } else {
                files.push(p)
            }
        }
    }
    files.sort();
    assert!(
        files.len() > 800,
        "the shared corpus is missing ({} files)",
        files.len()
    );
    let opts = Options::default();
    let (mut ok, mut errors) = (0, Vec::new());
    for f in &files {
        let name = f.display().to_string();
        let res = std::panic::catch_unwind(|| {
            analyze::analyze(std::slice::from_ref(f), &opts).inspect(|r| {
                check_consistent(r, &name);
                let _ = text::render(r);
                let _ = serde_json::to_string(r).unwrap();
            })
        });
        match res {
            Err(_) => panic!("panic on {name}"),
            Ok(Ok(_)) => ok += 1,
            Ok(Err(e)) => {
                let msg = format!("{e:#}");
                assert!(!msg.contains('\n') && msg.contains(&name), "{msg}");
                errors.push((name, msg));
            }
        }
    }
    // Only files that are not captures at all may fail.
    for (name, msg) in &errors {
        assert!(
            msg.contains("not a pcap or pcapng capture"),
            "{name}: {msg}"
        );
        assert!(!name.contains(".pcap"), "{name}: {msg}");
    }
    assert!(ok > 800, "{ok} captures analysed, errors: {errors:?}");
}

#[test]
fn protocol_counts_match_tshark() {
    for f in esnet_and_ddos() {
        let r = report(&f, &Options::default());
        let rows = tshark_occurrence(
            &f,
            "",
            &[],
            &[
                "frame.len",
                "ip.proto",
                "ip.frag_offset",
                "ipv6.nxt",
                "icmp.type",
                "icmp.code",
            ],
            "a",
        );
        let mut l4: BTreeMap<String, (u64, u64)> = BTreeMap::new();
        let mut icmp: BTreeMap<(u8, u8), u64> = BTreeMap::new();
        for row in &rows {
            let len: u64 = row[0].parse().unwrap();
            let class = l4_class(&row[1], &row[2], &row[3]);
            let e = l4.entry(class.to_string()).or_default();
            e.0 += 1;
            e.1 += len;
            if class == "icmp" {
                let first = |f: &str| f.split(',').next().unwrap_or("").parse().unwrap();
                *icmp.entry((first(&row[4]), first(&row[5]))).or_default() += 1;
            }
        }
        let ours: BTreeMap<String, (u64, u64)> = r
            .protocols
            .l4
            .iter()
            .map(|p| (p.id.clone(), (p.packets, p.bytes)))
            .collect();
        assert_eq!(ours, l4, "{}: packets and bytes per transport", f.display());
        let total = (rows.len() as u64, l4.values().map(|v| v.1).sum::<u64>());
        assert_eq!((r.totals.packets, r.totals.bytes), total, "{}", f.display());
        let ours_icmp: BTreeMap<(u8, u8), u64> = r
            .icmp
            .iter()
            .filter(|m| m.version == "icmp")
            .map(|m| ((m.r#type, m.code), m.packets))
            .collect();
        assert_eq!(ours_icmp, icmp, "{}: ICMP types and codes", f.display());
        check_consistent(&r, &f.display().to_string());
    }
    // ICMP names in the report.
    let r = report(
        &capture("ddos/amp.UDP.snmp.src161.pcapng"),
        &Options::default(),
    );
    assert!(
        r.icmp
            .iter()
            .any(|m| m.name == "Time Exceeded / TTL Exceeded in Transit"),
        "{:?}",
        r.icmp
    );
}

#[test]
fn flow_counts_match_tshark() {
    let opts = Options::default();
    for f in esnet_and_ddos() {
        let r = report(&f, &opts);
        // TCP: Wireshark's streams (it also splits reused ports), outside ICMP errors.
        let streams: BTreeSet<String> = tshark(&f, "tcp && !icmp && !icmpv6", &[], &["tcp.stream"])
            .into_iter()
            .map(|r| r[0].clone())
            .collect();
        assert_eq!(
            r.tcp.flows_total,
            streams.len(),
            "{}: TCP flows",
            f.display()
        );
        assert_eq!(r.tcp.flows.len(), r.tcp.flows_total);
        // UDP: distinct address/port pairs.
        let fields = [
            "ip.src",
            "ipv6.src",
            "udp.srcport",
            "ip.dst",
            "ipv6.dst",
            "udp.dstport",
        ];
        // The last occurrence: a tunnel's flow is its inner packet's, one level deep.
        let pairs: BTreeSet<_> =
            tshark_occurrence(&f, "udp && !icmp && !icmpv6", &[], &fields, "l")
                .into_iter()
                .map(|r| {
                    let a = (format!("{}{}", r[0], r[1]), r[2].clone());
                    let b = (format!("{}{}", r[3], r[4]), r[5].clone());
                    if a <= b { (a, b) } else { (b, a) }
                })
                .collect();
        assert_eq!(r.udp.flows_total, pairs.len(), "{}: UDP flows", f.display());
        let o = &r.tcp.outcomes;
        assert_eq!(
            (o.closed + o.reset + o.half_open + o.open) as usize,
            r.tcp.flows_total
        );
    }
    // The nmap capture, flow by flow: every connection is reset by the scanner.
    let r = report(&capture("esnet/nmap_80_vanilla.pcap"), &opts);
    assert_eq!(r.tcp.outcomes.reset as usize, r.tcp.flows_total);
    assert!(
        r.tcp
            .flows
            .iter()
            .all(|f| f.flow.client == "10.87.1.10" && f.outcome == "reset")
    );
    let started: u64 = r
        .tcp
        .connections_per_minute
        .iter()
        .map(|m| m.connections)
        .sum();
    let syns = tshark(
        &capture("esnet/nmap_80_vanilla.pcap"),
        "tcp.flags.syn==1 && tcp.flags.ack==0",
        &[],
        &["tcp.stream"],
    );
    assert_eq!(
        started,
        syns.iter().map(|r| &r[0]).collect::<BTreeSet<_>>().len() as u64
    );
}

/// The sender of the most SYNs (without ACK) and the ports it probed per window of `window_s`
/// seconds from the first packet.
fn scanner(path: &Path, window_s: u64) -> (String, String, BTreeSet<u16>, u64) {
    let t0 = first_ns(path);
    let rows = tshark(
        path,
        "tcp.flags.syn==1 && tcp.flags.ack==0 && !icmp",
        &[],
        &["frame.time_epoch", "ip.src", "ip.dst", "tcp.dstport"],
    );
    let mut by_src: HashMap<String, u64> = HashMap::new();
    for r in &rows {
        *by_src.entry(r[1].clone()).or_default() += 1;
    }
    let src = by_src
        .into_iter()
        .max_by_key(|(s, n)| (*n, s.clone()))
        .unwrap()
        .0;
    let mut windows: BTreeMap<u64, BTreeSet<u16>> = BTreeMap::new();
    let mut ports = BTreeSet::new();
    let mut dst = String::new();
    for r in rows.iter().filter(|r| r[1] == src) {
        let w = (epoch_ns(&r[0]) - t0) / (window_s * 1_000_000_000);
        windows.entry(w).or_default().insert(r[3].parse().unwrap());
        ports.insert(r[3].parse().unwrap());
        dst = r[2].clone();
    }
    let max_window = windows.values().map(|s| s.len() as u64).max().unwrap();
    (src, dst, ports, max_window)
}

#[test]
fn masscan_raises_port_scan_naming_the_scanner() {
    let f = capture("esnet/tcp_0_1000_20190821.pcap");
    let (src, dst, ports, max_window) = scanner(&f, 10);
    assert!(
        max_window >= 30,
        "the capture scans more ports than the default threshold"
    );
    let r = report(&f, &Options::default());
    let scans = alerts(&r, "port_scan");
    assert!(!scans.is_empty(), "{:?}", r.alert_lines);
    for a in &scans {
        assert_eq!(a["source"]["ip"], src.as_str());
        assert_eq!(a["destination"]["ip"], dst.as_str());
    }
    // Peak: the ports of the busiest window, counted exactly up to the port set's cap. The
    // capture holds the probes only (no answer is ever seen): their outcomes are unknown and
    // count at the doubled bar, 60.
    let cap = picket_detect::windows::PORT_CAP as u64;
    let peak = scans
        .iter()
        .map(|a| a["picket"]["peak"].as_f64().unwrap())
        .fold(0.0, f64::max);
    assert_eq!(peak, max_window.min(cap) as f64, "tshark {max_window}");
    let d = &scans[0]["picket"];
    assert_eq!(
        (d["details"]["filtered"].as_bool(), d["threshold"].as_f64()),
        (Some(true), Some(60.0)),
        "{d}"
    );
    // Exactly one episode, and only port_scan.
    assert_eq!(r.detection.alerts_by_rule.len(), 1);
    assert_eq!(r.detection.alerts_by_rule["port_scan"], 1);
    // The first 64 ports in the details are ports the scanner probed.
    let first = &scans[0]["picket"]["details"]["ports"];
    assert!(
        first
            .as_array()
            .unwrap()
            .iter()
            .all(|p| ports.contains(&(p.as_u64().unwrap() as u16)))
    );
}

#[test]
fn answered_nmap_runs_are_no_scan_whatever_the_threshold() {
    // These nmap runs probe few ports, every one open: every probe was accepted (SYN-ACK), so
    // there is no failed port to count, even with the port threshold lowered to what the
    // capture holds (computed here with tshark) and the failure ratio off.
    for rel in [
        "esnet/nmap_80_vanilla.pcap",
        "esnet/nmap_80_w_service_detection.pcap",
    ] {
        let f = capture(rel);
        let (_, _, _, max_window) = scanner(&f, 10);
        let quiet = report(&f, &Options::default());
        assert!(quiet.alerts.is_empty(), "{rel}: {:?}", quiet.alert_lines);
        assert!(max_window < 30);
        let out = picket(&[
            f.to_str().unwrap(),
            "--json",
            "--port-scan-ports",
            &max_window.max(1).to_string(),
            "--scan-failure-ratio",
            "0",
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let doc: Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
        assert_eq!(doc["schema"], "picket-analyze/1");
        let all = doc["alerts"].as_array().unwrap();
        assert!(starts(all).is_empty(), "{rel}: {all:?}");
        assert_eq!(
            doc["detection"]["thresholds"]["port_scan_ports"],
            max_window.max(1)
        );
    }
}

/// Packets per detector reading: frames keyed by the concatenation of the `key` columns (an
/// IPv4 and an IPv6 address field, one of them empty), in whole seconds after `t0` (the
/// detectors read every second from the first packet).
fn per_second(rows: &[Vec<String>], t0: u64, key: &[usize]) -> HashMap<(String, u64), u64> {
    let mut m = HashMap::new();
    for r in rows {
        let second = (epoch_ns(&r[0]) - t0) / 1_000_000_000;
        let k: String = key.iter().map(|i| r[*i].as_str()).collect();
        *m.entry((k, second)).or_default() += 1;
    }
    m
}

#[test]
fn syn_flood_capture_raises_destination_syn_flood() {
    let f = capture("ddos/amp.TCP.syn.optionallyACK.optionallysamePort.pcapng");
    let quiet = report(&f, &Options::default());
    assert!(quiet.alerts.is_empty(), "{:?}", quiet.alert_lines);
    // The capture is slow (about one SYN per second for 13 minutes): test with the highest
    // per-second SYN count towards one destination as the threshold.
    let t0 = first_ns(&f);
    let rows = tshark(
        &f,
        "tcp.flags.syn==1 && tcp.flags.ack==0 && !icmp",
        &[],
        &["frame.time_epoch", "ip.dst", "ipv6.dst"],
    );
    let counts = per_second(&rows, t0, &[1, 2]);
    let ((target, _), &max) = counts.iter().max_by_key(|(k, n)| (**n, k.1)).unwrap();
    assert!(max < 2000, "below the default --syn-flood-dst-pps");
    let opts = Options {
        thresholds: Thresholds {
            syn_flood_dst_pps: max as f64,
            ..Thresholds::default()
        },
        ..Options::default()
    };
    let r = report(&f, &opts);
    let floods = alerts(&r, "syn_flood");
    assert!(!floods.is_empty(), "{:?}", r.alert_lines);
    for a in &floods {
        assert_eq!(a["picket"]["scope"], "destination");
        assert_eq!(a["destination"]["ip"], target.as_str());
        assert!(a.get("source").is_none());
    }
    let peak = floods
        .iter()
        .map(|a| a["picket"]["peak"].as_f64().unwrap())
        .fold(0.0, f64::max);
    assert_eq!(peak, max as f64);
}

#[test]
fn udp_reflection_captures_raise_udp_flood_for_the_busiest_reflectors() {
    // Reflection spreads the flood over thousands of reflectors; the rules rate UDP per
    // source, so the default 20 000/s never fires. With the busiest reflector's per-second
    // rate (tshark) as the threshold, exactly the reflectors reaching it alert.
    for rel in [
        "ddos/amp.UDP.isakmp.pcap",
        "ddos/amp.UDP.snmp.src161.pcapng",
        "ddos/amp.dns.RRSIG.fragmented.pcap",
    ] {
        let f = capture(rel);
        let quiet = report(&f, &Options::default());
        assert!(quiet.alerts.is_empty(), "{rel}: {:?}", quiet.alert_lines);
        let t0 = first_ns(&f);
        // UDP packets, later fragments included (they carry the protocol number, not the
        // header), as the rule counts them.
        let rows = tshark(
            &f,
            "(ip.proto == 17 || ipv6.nxt == 17 || ipv6.fraghdr.nxt == 17) && !icmp && !gre",
            &[],
            &["frame.time_epoch", "ip.src", "ipv6.src"],
        );
        let counts = per_second(&rows, t0, &[1, 2]);
        let max = *counts.values().max().unwrap();
        let expected: BTreeSet<&str> = counts
            .iter()
            .filter(|(_, n)| **n >= max)
            .map(|((src, _), _)| src.as_str())
            .collect();
        let opts = Options {
            thresholds: Thresholds {
                udp_flood_pps: max as f64,
                ..Thresholds::default()
            },
            ..Options::default()
        };
        let r = report(&f, &opts);
        let floods = alerts(&r, "udp_flood");
        let sources: BTreeSet<&str> = floods
            .iter()
            .map(|a| a["source"]["ip"].as_str().unwrap())
            .collect();
        assert_eq!(sources, expected, "{rel}");
        for a in &floods {
            assert_eq!(a["picket"]["peak"].as_f64().unwrap(), max as f64, "{rel}");
        }
        assert_eq!(
            r.detection.alerts_by_rule.keys().collect::<Vec<_>>(),
            ["udp_flood"],
            "{rel}"
        );
    }
}

#[test]
fn ordinary_captures_raise_no_alerts() {
    for rel in [
        "tcpdump-tests/dns_udp.pcap",
        "tcpdump-tests/dns_tcp.pcap",
        "tcpdump-tests/dnssec.pcap",
        "tcpdump-tests/edns-opts.pcap",
        "tcpdump-tests/quic_handshake.pcap",
        "tcpdump-tests/print-flags.pcap",
        "tcpdump-tests/accecn_handshake.pcap",
        "tcpdump-tests/ipv4_tcp_http_xml.pcap",
        "esnet/whois.pcap",
    ] {
        let r = report(&capture(rel), &Options::default());
        assert!(r.totals.packets > 0, "{rel}");
        assert!(r.alerts.is_empty(), "{rel}: {:?}", r.alert_lines);
    }
}

#[test]
fn application_hints_match_tshark() {
    let opts = Options::default();
    // HTTP requests: method and URL of each (tshark leaves the URL empty without Host),
    // SSDP's over UDP included.
    for rel in [
        "esnet/nmap_80_w_service_detection.pcap",
        "tcpdump-tests/accecn_handshake.pcap",
        "tcpdump-tests/print-flags.pcap",
        "tcpdump-tests/eapon1.pcap",
        "ddos/amp.dns.RRSIG.fragmented.pcap",
    ] {
        let f = capture(rel);
        let r = report(&f, &opts);
        let theirs = tshark_http_requests(&f);
        assert_eq!(
            r.application.http_requests,
            theirs.values().sum::<u64>(),
            "{rel}"
        );
        assert_eq!(picket_http_requests(&r), theirs, "{rel}");
    }
    // DNS questions and response codes.
    for rel in [
        "tcpdump-tests/dns_udp.pcap",
        "tcpdump-tests/dns_tcp.pcap",
        "tcpdump-tests/dnssec.pcap",
        "tcpdump-tests/edns-opts.pcap",
    ] {
        let f = capture(rel);
        let r = report(&f, &opts);
        let theirs = tshark(
            &f,
            "dns && (udp.port==53 || tcp.port==53)",
            &[],
            &["dns.flags.response", "dns.qry.name", "dns.flags.rcode"],
        );
        let queries = theirs.iter().filter(|t| t[0] == "0").count() as u64;
        assert_eq!(
            (r.application.dns.queries, r.application.dns.responses),
            (queries, theirs.len() as u64 - queries),
            "{rel}"
        );
        let names: BTreeSet<String> = theirs
            .iter()
            .map(|t| format!("{}.", t[1].to_ascii_lowercase()))
            .collect();
        let ours: BTreeSet<String> = r
            .application
            .dns
            .names
            .iter()
            .map(|n| n.name.clone())
            .collect();
        assert_eq!(ours, names, "{rel}");
    }
    // The DNS reflection capture: without IP reassembly tshark, like the report, reads the DNS
    // header and question of unfragmented datagrams and of first fragments.
    let f = capture("ddos/amp.dns.RRSIG.fragmented.pcap");
    let r = report(&f, &opts);
    let whole = tshark(
        &f,
        "dns && udp.srcport==53 && !icmp",
        &[],
        &["dns.flags.rcode"],
    );
    let first_frags = tshark(
        &f,
        "dns && ip.flags.mf==1 && ip.frag_offset==0",
        &[],
        &["ip.id"],
    );
    assert!(!first_frags.is_empty());
    assert_eq!(r.application.dns.responses, whole.len() as u64);
    let servfail = whole.iter().filter(|t| t[0] == "2").count() as u64;
    let ours_servfail = r
        .application
        .dns
        .rcodes
        .iter()
        .find(|c| c.name == "SERVFAIL")
        .map_or(0, |c| c.count);
    assert_eq!(ours_servfail, servfail);
    // TLS SNI: tshark must be told that port 8080 carries TLS here.
    let hellos = tshark(
        &f,
        "tls.handshake.type==1",
        &["-d", "tcp.port==8080,tls"],
        &["tls.handshake.extensions_server_name"],
    );
    assert_eq!(r.application.tls_client_hellos, hellos.len() as u64);
    let mut sni: BTreeMap<String, u64> = BTreeMap::new();
    for h in hellos.iter().filter(|h| !h[0].is_empty()) {
        *sni.entry(h[0].clone()).or_default() += 1;
    }
    let ours: BTreeMap<String, u64> = r
        .application
        .tls_sni
        .iter()
        .map(|n| (n.name.clone(), n.count))
        .collect();
    assert_eq!(ours, sni);
    // URLs in cleartext include the request URLs with an absolute form or a Host.
    let x = report(&capture("tcpdump-tests/ipv4_tcp_http_xml.pcap"), &opts);
    assert!(
        x.application
            .urls
            .iter()
            .any(|u| u.name == "http://www.w3.org/2001/XMLSchema"),
        "{:?}",
        x.application.urls
    );
}

#[test]
fn html_report_and_plots_contain_the_charts() {
    let f = capture("ddos/amp.dns.RRSIG.fragmented.pcap");
    let r = report(&f, &Options::default());
    let page = html::render(&r).unwrap();
    assert!(page.starts_with("<!DOCTYPE html>"));
    for (id, title) in html::CHARTS {
        assert!(page.contains(&format!("id=\"{id}\"")), "{id}");
        assert!(page.contains(title));
    }
    // Self-contained: the charting library is inlined, nothing is loaded from elsewhere.
    assert!(page.contains("echarts"), "inlined ECharts");
    assert!(!page.contains("<script src"), "no external scripts");
    assert!(!page.contains("src=\"http"), "no external resources");
    assert!(
        page.contains("24.132.150.54"),
        "top talker in the tables and chart"
    );
    // The CLI writes the same page and the chart files.
    let dir = temp_dir("charts");
    let page_path = dir.join("report.html");
    let plots = dir.join("plots");
    let out = picket(&[
        f.to_str().unwrap(),
        "--html",
        page_path.to_str().unwrap(),
        "--plot",
        plots.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        std::fs::read_to_string(&page_path)
            .unwrap()
            .contains("chart-traffic")
    );
    for c in charts::Chart::ALL {
        let png = std::fs::read(plots.join(format!("{}.png", c.name()))).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        assert!(
            png.len() > 5000,
            "{}: a drawn chart, not an empty image",
            c.name()
        );
        let svg = std::fs::read_to_string(plots.join(format!("{}.svg", c.name()))).unwrap();
        assert!(svg.contains("<svg") && svg.contains(c.title()));
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn truncated_capture_reports_what_was_read_with_a_warning() {
    let f = capture("esnet/two_way_all_flags.pcap");
    let bytes = std::fs::read(&f).unwrap();
    let full = report(&f, &Options::default());
    let cut = &bytes[..bytes.len() / 2 + 7];
    let r = analyze::analyze_reader("cut.pcap", cut, &Options::default()).unwrap();
    assert!(r.totals.packets > 0 && r.totals.packets < full.totals.packets);
    assert!(r.inputs[0].truncated);
    assert!(
        r.warnings.iter().any(|w| w.contains("truncated")),
        "{:?}",
        r.warnings
    );
    // What was read is counted as tshark counts the same cut file.
    let dir = temp_dir("truncated");
    let path = dir.join("cut.pcap");
    std::fs::write(&path, cut).unwrap();
    let theirs = Command::new("tshark")
        .arg("-r")
        .arg(&path)
        .args(["-T", "fields", "-e", "frame.number"])
        .output()
        .unwrap();
    assert_eq!(
        r.totals.packets,
        String::from_utf8_lossy(&theirs.stdout).lines().count() as u64
    );
    let out = picket(&[path.to_str().unwrap()]);
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("picket: warning:") && err.contains("truncated"),
        "{err}"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("== Totals =="));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn non_capture_is_a_one_line_error() {
    let f = pcaps().join("README.md");
    let e = analyze::analyze(std::slice::from_ref(&f), &Options::default()).unwrap_err();
    assert!(format!("{e:#}").contains("not a pcap or pcapng capture"));
    let out = picket(&[f.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("picket: error: ") && err.contains("README.md"),
        "{err}"
    );
    let missing = picket(&["/nonexistent/capture.pcap"]);
    assert!(!missing.status.success());
    assert_eq!(
        String::from_utf8(missing.stderr).unwrap().lines().count(),
        1
    );
}

#[test]
fn formats_sections_and_stdin_agree() {
    let f = capture("ddos/amp.UDP.snmp.src161.pcapng"); // classic pcap despite its name
    let base = report(&f, &Options::default());
    assert_eq!(base.inputs[0].format, analyze::reader::Format::Pcap);
    let dir = temp_dir("formats");
    let mut variants = Vec::new();
    for (fmt, name) in [("nsecpcap", "ns.pcap"), ("pcapng", "ng.pcapng")] {
        let out = dir.join(name);
        let st = Command::new("editcap")
            .args(["-F", fmt])
            .arg(&f)
            .arg(&out)
            .status()
            .expect("editcap");
        assert!(st.success());
        variants.push(out);
    }
    let mix = |r: &Report| {
        r.protocols
            .l4
            .iter()
            .map(|p| (p.id.clone(), p.packets, p.bytes))
            .collect::<Vec<_>>()
    };
    for v in &variants {
        let r = report(v, &Options::default());
        assert_eq!(
            (r.totals.packets, r.totals.bytes),
            (base.totals.packets, base.totals.bytes),
            "{}",
            v.display()
        );
        assert_eq!(mix(&r), mix(&base), "{}", v.display());
        assert_eq!(r.totals.start_ns, base.totals.start_ns, "{}", v.display());
        assert_eq!(r.alerts, base.alerts);
    }
    // Two pcapng sections in one file (tshark reads it as one capture).
    let two = dir.join("two-sections.pcapng");
    let mut bytes = std::fs::read(&variants[1]).unwrap();
    bytes.extend(std::fs::read(capture("tcpdump-tests/hdlc_slarp.pcapng")).unwrap());
    std::fs::write(&two, &bytes).unwrap();
    let r = report(&two, &Options::default());
    assert_eq!(r.inputs[0].sections, 2);
    let theirs = tshark(&two, "", &[], &["frame.len"]);
    assert_eq!(r.totals.packets, theirs.len() as u64);
    assert_eq!(
        r.totals.bytes,
        theirs
            .iter()
            .map(|t| t[0].parse::<u64>().unwrap())
            .sum::<u64>()
    );
    // Big-endian files from the corpus, and standard input.
    for rel in ["tcpdump-tests/pptp.pcap", "tcpdump-tests/isup.pcap"] {
        let r = report(&capture(rel), &Options::default());
        assert!(r.inputs[0].big_endian);
        assert_eq!(
            r.totals.packets,
            tshark(&capture(rel), "", &[], &["frame.number"]).len() as u64,
            "{rel}"
        );
    }
    let out = Command::new(env!("CARGO_BIN_EXE_picket"))
        .args(["analyze", "-", "--json"])
        .stdin(std::fs::File::open(&variants[1]).unwrap())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["totals"]["packets"], base.totals.packets);
    assert_eq!(doc["inputs"][0]["name"], "-");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn mutated_captures_never_panic() {
    // Each byte of a small pcap and of its pcapng conversion changed (to 0x00, 0x7f, 0x80 or
    // 0xff in turn), and truncations: a report or a clean error, never a panic.
    let f = capture("esnet/nmap_80_w_service_detection.pcap");
    let dir = temp_dir("mutations");
    let ng = dir.join("ng.pcapng");
    let st = Command::new("editcap")
        .args(["-F", "pcapng", "-r"])
        .arg(&f)
        .arg(&ng)
        .arg("1-6")
        .status()
        .expect("editcap");
    assert!(st.success());
    let ng_bytes = std::fs::read(&ng).unwrap();
    let pcap_bytes: Vec<u8> = std::fs::read(&f)
        .unwrap()
        .into_iter()
        .take(ng_bytes.len())
        .collect();
    let opts = Options::default();
    let mut runs = 0;
    for original in [pcap_bytes, ng_bytes] {
        let cuts = (0..original.len()).filter(|n| *n < 128 || n % 7 == 0);
        let mut variants: Vec<Vec<u8>> = cuts.map(|n| original[..n].to_vec()).collect();
        for i in 0..original.len() {
            let mut m = original.clone();
            m[i] = [0x00, 0x7f, 0x80, 0xff][i % 4];
            variants.push(m);
        }
        for m in variants {
            let res = std::panic::catch_unwind(|| {
                analyze::analyze_reader("m", &m[..], &opts).map(|r| r.totals.packets)
            });
            assert!(res.is_ok(), "panic on a mutation");
            runs += 1;
        }
    }
    assert!(runs > 1000, "{runs}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A nanosecond pcap (Ethernet) of the given frames.
fn pcap_ns(frames: &[(u64, Vec<u8>)]) -> Vec<u8> {
    pcap_ns_link(frames, picket_capture::link::LINKTYPE_ETHERNET)
}

/// A nanosecond pcap of the given frames with link type `link`.
fn pcap_ns_link(frames: &[(u64, Vec<u8>)], link: u32) -> Vec<u8> {
    use picket_capture::writer::{PcapWriter, Resolution};
    let mut w = PcapWriter::new(Vec::new(), Resolution::Nano, link, 65535).unwrap();
    for (ts, data) in frames {
        w.write(*ts, data.len() as u32, data).unwrap();
    }
    w.into_inner()
}

#[test]
fn spoofed_flood_does_not_hide_a_scanner() {
    // 10 000 SYNs/s from random sources for 5 s, and a scanner probing 40 closed ports
    // meanwhile:
    // as live, the flood raises a destination syn_flood, admission at the second sighting
    // keeps the per-source state small, and the scanner still gets its port_scan.
    use agent_common::classify::{IPPROTO_TCP, TCP_ACK, TCP_RST, TCP_SYN};
    use picket_frames as frames;
    use std::net::Ipv4Addr;
    let t0 = 1_700_000_000_000_000_000u64;
    let victim = Ipv4Addr::new(10, 0, 0, 1);
    let scanner = Ipv4Addr::new(192, 0, 2, 66);
    let mut x = 0x1234_5678u32;
    let mut packets = Vec::new();
    for i in 0..50_000u64 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        let syn = frames::tcp((x >> 16) as u16 | 1024, 80, TCP_SYN);
        packets.push((
            t0 + i * 100_000,
            frames::ipv4(Ipv4Addr::from(x), victim, IPPROTO_TCP, 0, &syn),
        ));
        if i % 1000 == 500 {
            let port = 1000 + (i / 1000) as u16;
            let probe = frames::tcp(40_000, port, TCP_SYN);
            packets.push((
                t0 + i * 100_000 + 1,
                frames::ipv4(scanner, victim, IPPROTO_TCP, 0, &probe),
            ));
            // The victim refuses it (a two-way capture): a failed probe.
            let rst = frames::tcp(port, 40_000, TCP_RST | TCP_ACK);
            packets.push((
                t0 + i * 100_000 + 2,
                frames::ipv4(victim, scanner, IPPROTO_TCP, 0, &rst),
            ));
        }
    }
    let r =
        analyze::analyze_reader("flood.pcap", &pcap_ns(&packets)[..], &Options::default()).unwrap();
    assert_eq!(r.totals.packets, 50_100);
    assert_eq!(r.inputs[0].format, analyze::reader::Format::PcapNs);
    let floods = alerts(&r, "syn_flood");
    assert!(
        floods
            .iter()
            .any(|a| a["picket"]["scope"] == "destination" && a["destination"]["ip"] == "10.0.0.1")
    );
    let scans = alerts(&r, "port_scan");
    assert!(!scans.is_empty(), "{:?}", r.alert_lines);
    assert!(scans.iter().all(|a| a["source"]["ip"] == "192.0.2.66"));
    assert!(r.detection.admission_changes >= 1);
    assert!(
        r.detection.sources_deferred > 30_000,
        "{}",
        r.detection.sources_deferred
    );
}

#[test]
fn local_networks_give_the_view_of_the_live_agent_on_those_hosts() {
    // The masscan capture seen from the scanned host, from the scanner, and from a host in
    // neither: only the scanned host's agent sees probes arriving.
    let f = capture("esnet/tcp_0_1000_20190821.pcap");
    let (src, dst, _, _) = scanner(&f, 10);
    let path = f.to_str().unwrap();
    let rules = |local: &str| -> (Vec<String>, Value) {
        let out = picket(&["--json", "--no-progress", "--local", local, path]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        let rules = v["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["event"]["action"] == "start")
            .map(|a| format!("{} {}", a["rule"]["name"], a["source"]["ip"]))
            .collect();
        (rules, v)
    };
    let (on_victim, _) = rules(&dst);
    assert_eq!(on_victim, [format!("\"port_scan\" \"{src}\"")]);
    let (on_scanner, _) = rules(&format!("{src}/32"));
    assert!(on_scanner.is_empty(), "{on_scanner:?}");
    let (elsewhere, _) = rules("192.0.2.0/24");
    assert!(elsewhere.is_empty(), "{elsewhere:?}");
    // A bad network is one line and a failure.
    let out = picket(&["--local", "10.0.0.0/40", path]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not a CIDR"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn ignore_lists_drop_the_scan_and_bad_entries_fail() {
    let f = capture("esnet/tcp_0_1000_20190821.pcap");
    let (src, dst, _, _) = scanner(&f, 10);
    let path = f.to_str().unwrap();
    for args in [
        vec!["--ignore-scanner", src.as_str()],
        vec!["--ignore-scanned", dst.as_str()],
    ] {
        let mut all = vec!["--json", "--no-progress"];
        all.extend(args.iter().copied());
        all.push(path);
        let out = picket(&all);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["alerts"].as_array().map(Vec::len), Some(0), "{args:?}");
    }
    let out = picket(&["--ignore-scanned", "[2001:db8::1]53", path]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("[IPv6 CIDR]:PORT"), "{err}");
}

#[test]
fn scans_inside_every_tunnel_are_caught_offline_as_tshark_counts_them() {
    // A pod (172.16.1.5) scanning 300 ports of another (172.16.2.9) through each tunnel
    // between two nodes, in a capture written here: the alert names the inner source and
    // the tunnel, and its port count is the one tshark finds in the inner headers.
    use agent_common::classify::{ETH_P_IPV4, ETH_P_TEB, IPPROTO_TCP, IPPROTO_UDP, TCP_SYN};
    use picket_frames::{self as frames, tunnels};
    use std::net::Ipv4Addr;
    let (node_a, node_b) = (Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2));
    let (pod_a, pod_b) = (Ipv4Addr::new(172, 16, 1, 5), Ipv4Addr::new(172, 16, 2, 9));
    let dir = temp_dir("tunnels");
    type Wrap = fn(&[u8]) -> Vec<u8>;
    let kinds: [(&str, u32, Wrap); 5] = [
        ("vxlan", 42, |eth| {
            frames::udp(50000, 4789, &tunnels::vxlan(42, eth))
        }),
        ("geneve", 7, |eth| {
            frames::udp(50000, 6081, &tunnels::geneve(ETH_P_TEB, 7, 2, eth))
        }),
        ("gre", 99, |eth| {
            tunnels::gre(ETH_P_IPV4, false, Some(99), Some(1), &eth[14..])
        }),
        ("gre", 0, |eth| {
            tunnels::gre(ETH_P_TEB, true, None, None, eth)
        }),
        ("ipip", 0, |eth| eth[14..].to_vec()),
    ];
    for (i, (kind, vni, wrap)) in kinds.iter().enumerate() {
        let t0 = 1_700_000_000_000_000_000u64;
        let packets: Vec<(u64, Vec<u8>)> = (0..300u16)
            .map(|n| {
                let inner = frames::ipv4(
                    pod_a,
                    pod_b,
                    IPPROTO_TCP,
                    0,
                    &frames::tcp(40000, 1 + n, TCP_SYN),
                );
                let body = wrap(&inner);
                let proto = match *kind {
                    "vxlan" | "geneve" => IPPROTO_UDP,
                    "gre" => 47,
                    _ => 4,
                };
                (
                    t0 + u64::from(n) * 1_000_000,
                    frames::ipv4(node_a, node_b, proto, 0, &body),
                )
            })
            .collect();
        let path = dir.join(format!("{i}-{kind}.pcap"));
        std::fs::write(&path, pcap_ns(&packets)).unwrap();
        let r = report(&path, &Options::default());
        let scans = alerts(&r, "port_scan");
        let scan = scans
            .iter()
            .find(|a| a["source"]["ip"] == "172.16.1.5")
            .unwrap_or_else(|| {
                panic!(
                    "{kind}: no port_scan from the inner source: {:?}",
                    r.alert_lines
                )
            });
        assert_eq!(scan["destination"]["ip"], "172.16.2.9", "{kind}: {scan}");
        let t = &scan["picket"]["details"]["tunnel"];
        assert_eq!(t["kind"], *kind, "{scan}");
        assert_eq!(t["vni"], *vni, "{scan}");
        assert_eq!(
            (t["outer_src"].as_str(), t["outer_dst"].as_str()),
            (Some("10.0.0.1"), Some("10.0.0.2"))
        );
        assert!(
            scans.iter().all(|a| a["source"]["ip"] != "10.0.0.1"),
            "{kind}: {scans:?}"
        );
        // tshark, by the last (inner) IP header: SYNs from the pod and their distinct ports.
        let rows = tshark_occurrence(
            &path,
            "tcp.flags.syn == 1 && tcp.flags.ack == 0",
            &["-d", "udp.port==6081,geneve"],
            &["ip.src", "tcp.dstport"],
            "l",
        );
        assert_eq!(rows.len(), 300, "{kind}: tshark sees the inner SYNs");
        assert!(rows.iter().all(|r| r[0] == "172.16.1.5"), "{kind}");
        let ports: BTreeSet<&str> = rows.iter().map(|r| r[1].as_str()).collect();
        let value = scan["picket"]["value"]
            .as_f64()
            .or(scan["picket"]["observed"].as_f64());
        assert_eq!(r.totals.packets, 300, "{kind}");
        // A port set holds at most PORT_CAP ports; past it the count is a saturated bound.
        let cap = picket_detect::windows::PORT_CAP;
        assert_eq!(
            scan["picket"]["details"]["distinct_ports"].as_u64(),
            Some(ports.len().min(cap) as u64),
            "{kind}: {scan} ({value:?})"
        );
        assert_eq!(
            scan["picket"]["details"]["saturated"].as_bool(),
            Some(ports.len() > cap),
            "{kind}: {scan}"
        );
        // The tunnels table keeps the endpoints; every other table counts the inner packets.
        let row = picket_analyze::tunnels::TunnelRow {
            kind,
            outer_src: "10.0.0.1".into(),
            outer_dst: "10.0.0.2".into(),
            vni: *vni,
            packets: 300,
            bytes: packets.iter().map(|p| p.1.len() as u64).sum(),
            inner_sources: 1,
        };
        assert_eq!(r.tunnels, vec![row], "{kind}");
        assert_eq!(r.top_talkers.sources[0].ip, "172.16.1.5", "{kind}");
        let text = picket_analyze::text::render(&r);
        assert!(
            text.contains("Tunnels") && text.contains("10.0.0.2"),
            "{text}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_scan_captured_on_an_l3_device_is_caught_as_tshark_counts_it() {
    // What `tcpdump -i tun0` writes: LINKTYPE_RAW, every packet starting at its IP header
    // (IPv4 and IPv6 alike). A scan of 200 ports over each family, every probe refused.
    use agent_common::classify::{IPPROTO_TCP, TCP_ACK, TCP_RST, TCP_SYN};
    use picket_capture::link::LINKTYPE_RAW;
    use picket_frames as frames;
    use std::net::{Ipv4Addr, Ipv6Addr};
    let (s4, d4) = (Ipv4Addr::new(10, 8, 0, 2), Ipv4Addr::new(10, 8, 0, 1));
    let (s6, d6): (Ipv6Addr, Ipv6Addr) =
        ("fd00:8::2".parse().unwrap(), "fd00:8::1".parse().unwrap());
    let t0 = 1_700_000_000_000_000_000u64;
    let mut packets = Vec::new();
    for n in 0..200u16 {
        let t = t0 + u64::from(n) * 2_000_000;
        let syn = frames::tcp(40000, 1 + n, TCP_SYN);
        let rst = frames::tcp(1 + n, 40000, TCP_RST | TCP_ACK);
        packets.push((t, frames::ipv4(s4, d4, IPPROTO_TCP, 0, &syn)[14..].to_vec()));
        packets.push((
            t + 100_000,
            frames::ipv4(d4, s4, IPPROTO_TCP, 0, &rst)[14..].to_vec(),
        ));
        packets.push((
            t + 500_000,
            frames::ipv6(s6, d6, &[], IPPROTO_TCP, &syn)[14..].to_vec(),
        ));
        packets.push((
            t + 600_000,
            frames::ipv6(d6, s6, &[], IPPROTO_TCP, &rst)[14..].to_vec(),
        ));
    }
    let dir = temp_dir("l3");
    let path = dir.join("tun.pcap");
    std::fs::write(&path, pcap_ns_link(&packets, LINKTYPE_RAW)).unwrap();
    let r = report(&path, &Options::default());
    assert_eq!(r.totals.packets, 800);
    for (src, dst) in [("10.8.0.2", "10.8.0.1"), ("fd00:8::2", "fd00:8::1")] {
        let rows = tshark(
            &path,
            &if src.contains(':') {
                format!("ipv6.src == {src}")
            } else {
                format!("ip.src == {src}")
            },
            &[],
            &["tcp.dstport"],
        );
        let ports: BTreeSet<&str> = rows.iter().map(|r| r[0].as_str()).collect();
        assert_eq!(ports.len(), 200, "tshark: {src}");
        let scans = alerts(&r, "port_scan");
        let scan = scans
            .iter()
            .find(|a| a["source"]["ip"] == src)
            .unwrap_or_else(|| panic!("no port_scan from {src}: {:?}", r.alert_lines));
        assert_eq!(scan["destination"]["ip"], dst, "{scan}");
        let cap = picket_detect::windows::PORT_CAP;
        assert_eq!(
            scan["picket"]["details"]["distinct_ports"].as_u64(),
            Some(ports.len().min(cap) as u64),
            "{scan}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// An Ethernet/IPv4 TCP segment from `src`:`sport` to `dst`:`dport` with sequence number
/// `seq`, `flags` and `payload`.
fn tcp_segment(
    (src, sport): ([u8; 4], u16),
    (dst, dport): ([u8; 4], u16),
    seq: u32,
    ack: u32,
    flags: u16,
    payload: &[u8],
) -> Vec<u8> {
    use picket_frames as frames;
    let mut l4 = frames::tcp(sport, dport, flags);
    l4[4..8].copy_from_slice(&seq.to_be_bytes());
    l4[8..12].copy_from_slice(&ack.to_be_bytes());
    l4.extend_from_slice(payload);
    frames::ipv4(src.into(), dst.into(), 6, 0, &l4)
}

/// A client talking HTTP to port 80 with its requests cut across segments, one segment late,
/// one retransmitted, three requests pipelined in one segment (one a WebDAV PROPFIND with a
/// body) and a response head split in two.
fn split_http_capture() -> Vec<u8> {
    use agent_common::classify::{TCP_ACK, TCP_FIN, TCP_PSH, TCP_SYN};
    let (c, s) = (([10, 0, 0, 1], 40000), ([10, 0, 0, 2], 80));
    let robots = b"GET /robots.txt HTTP/1.1\r\nHost: t.example\r\nUser-Agent: nmap\r\n\r\n";
    let mut pipelined =
        b"PROPFIND /dav/ HTTP/1.1\r\nHost: t.example\r\nContent-Length: 15\r\n\r\n".to_vec();
    pipelined.extend_from_slice(b"<propfind/>\r\n\r\n");
    pipelined.extend_from_slice(b"GET /a HTTP/1.1\r\nHost: t.example\r\n\r\n");
    pipelined.extend_from_slice(b"MKCOL /dav/x/ HTTP/1.1\r\nHost: t.example\r\n\r\n");
    let last = b"GET /split-at-the-end HTTP/1.1\r\nHost: t.example\r\n\r\n";
    let response = b"HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\n\r\nno\n";
    let (cs, ss) = (1000u32, 5000u32);
    let pa = TCP_PSH | TCP_ACK;
    let mut seq = cs + 1;
    let mut pkts = vec![
        tcp_segment(c, s, cs, 0, TCP_SYN, &[]),
        tcp_segment(s, c, ss, cs + 1, TCP_SYN | TCP_ACK, &[]),
        tcp_segment(c, s, cs + 1, ss + 1, TCP_ACK, &[]),
    ];
    // robots.txt in three segments, the third before the second, the first sent twice.
    let (a, b) = (10, 30);
    pkts.push(tcp_segment(c, s, seq, ss + 1, pa, &robots[..a]));
    pkts.push(tcp_segment(c, s, seq + b as u32, ss + 1, pa, &robots[b..]));
    pkts.push(tcp_segment(c, s, seq, ss + 1, pa, &robots[..a]));
    pkts.push(tcp_segment(c, s, seq + a as u32, ss + 1, pa, &robots[a..b]));
    seq += robots.len() as u32;
    let mut sseq = ss + 1;
    pkts.push(tcp_segment(s, c, sseq, seq, pa, &response[..20]));
    pkts.push(tcp_segment(s, c, sseq + 20, seq, pa, &response[20..]));
    sseq += response.len() as u32;
    pkts.push(tcp_segment(c, s, seq, sseq, pa, &pipelined));
    seq += pipelined.len() as u32;
    // The last head's empty line is split between two segments.
    let cut = last.len() - 3;
    pkts.push(tcp_segment(c, s, seq, sseq, pa, &last[..cut]));
    pkts.push(tcp_segment(c, s, seq + cut as u32, sseq, pa, &last[cut..]));
    seq += last.len() as u32;
    pkts.push(tcp_segment(c, s, seq, sseq, TCP_FIN | TCP_ACK, &[]));
    pkts.push(tcp_segment(s, c, sseq, seq + 1, TCP_FIN | TCP_ACK, &[]));
    pkts.push(tcp_segment(c, s, seq + 1, sseq + 1, TCP_ACK, &[]));
    let t0 = 1_700_000_000_000_000_000u64;
    pcap_ns(
        &pkts
            .into_iter()
            .enumerate()
            .map(|(i, p)| (t0 + i as u64 * 1_000_000, p))
            .collect::<Vec<_>>(),
    )
}

/// Every HTTP request tshark finds (each of several in one frame), as (method, full URI;
/// empty without a Host header).
fn tshark_http_requests(path: &Path) -> BTreeMap<(String, String), u64> {
    let out = Command::new("tshark")
        .arg("-r")
        .arg(path)
        .args([
            "-o",
            "tcp.reassemble_out_of_order:TRUE",
            "-Y",
            "http.request",
        ])
        .args(["-T", "fields", "-E", "separator=|", "-E", "occurrence=a"])
        .args(["-e", "http.request.method", "-e", "http.request.full_uri"])
        .output()
        .expect("tshark must be installed");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut m = BTreeMap::new();
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let (methods, uris) = line.split_once('|').unwrap();
        for (method, uri) in methods.split(',').zip(uris.split(',')) {
            *m.entry((method.to_string(), uri.to_string())).or_default() += 1;
        }
    }
    m
}

fn picket_http_requests(r: &Report) -> BTreeMap<(String, String), u64> {
    let mut ours = BTreeMap::new();
    for h in &r.application.http {
        let url = if h.host.is_empty() {
            String::new()
        } else {
            h.url.clone()
        };
        *ours.entry((h.method.clone(), url)).or_default() += h.count;
    }
    ours
}

#[test]
fn split_and_pipelined_http_requests_match_tshark() {
    let dir = temp_dir("split-http");
    let f = dir.join("split.pcap");
    std::fs::write(&f, split_http_capture()).unwrap();
    let r = report(&f, &Options::default());
    let theirs = tshark_http_requests(&f);
    assert_eq!(
        theirs.values().sum::<u64>(),
        5,
        "tshark should see the five requests: {theirs:?}"
    );
    assert_eq!(picket_http_requests(&r), theirs);
    assert_eq!(r.application.http_requests, 5);
    assert_eq!(
        (
            r.application.http_responses,
            r.application.http_status[0].name.as_str()
        ),
        (1, "404")
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn capture_filter_keeps_what_tcpdump_keeps() {
    for (rel, expr) in [
        (
            "esnet/nmap_80_w_service_detection.pcap",
            "tcp port 80 and host 10.87.1.10",
        ),
        (
            "esnet/nmap_80_w_service_detection.pcap",
            "tcp[tcpflags] & tcp-syn != 0",
        ),
        ("tcpdump-tests/dns_udp.pcap", "udp and not port 53"),
        ("ddos/amp.UDP.snmp.src161.pcapng", "icmp"),
    ] {
        let f = capture(rel);
        let out = picket(&["--json", "--no-progress", "-f", expr, f.to_str().unwrap()]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        let tcpdump = Command::new("tcpdump")
            .args(["-nn", "-r"])
            .arg(&f)
            .arg(expr)
            .output()
            .expect("tcpdump must be installed");
        let lines = String::from_utf8_lossy(&tcpdump.stdout).lines().count() as u64;
        assert_eq!(v["totals"]["packets"], lines, "{rel} -f {expr:?}");
        assert_eq!(v["filter"]["packets_matched"], lines);
        assert_eq!(v["filter"]["expression"], expr);
        assert!(v["filter"]["packets_read"].as_u64() > Some(lines), "{rel}");
    }
    let whois = capture("esnet/whois.pcap");
    let out = picket(&["-f", "tcp prot 80", whois.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.contains("bad capture filter \"tcp prot 80\""), "{err}");
}

#[test]
fn flows_file_holds_every_flow_as_csv_and_json_lines() {
    let dir = temp_dir("flows");
    let f = capture("esnet/nmap_80_w_service_detection.pcap");
    let (csv_path, jsonl) = (dir.join("flows.csv"), dir.join("flows.jsonl"));
    let mut reports = Vec::new();
    for out in [&csv_path, &jsonl] {
        let o = picket(&[
            "--json",
            "--no-progress",
            "--flows",
            out.to_str().unwrap(),
            f.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        reports.push(serde_json::from_slice::<Value>(&o.stdout).unwrap());
    }
    let r = &reports[0];
    let rows: Vec<Value> = std::fs::read_to_string(&jsonl)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let (tcp, udp) = (&r["tcp"], &r["udp"]);
    let total = tcp["flows_total"].as_u64().unwrap() + udp["flows_total"].as_u64().unwrap();
    assert!(total > 5, "{total}");
    assert_eq!(rows.len() as u64, total);
    let l4 = |id: &str| {
        r["protocols"]["l4"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["id"] == id)
            .map_or((0, 0), |p| {
                (p["packets"].as_u64().unwrap(), p["bytes"].as_u64().unwrap())
            })
    };
    for proto in ["tcp", "udp"] {
        let (mut packets, mut bytes) = (0, 0);
        for row in rows.iter().filter(|x| x["proto"] == proto) {
            packets += row["packets_to_server"].as_u64().unwrap()
                + row["packets_to_client"].as_u64().unwrap();
            bytes +=
                row["bytes_to_server"].as_u64().unwrap() + row["bytes_to_client"].as_u64().unwrap();
        }
        assert_eq!((packets, bytes), l4(proto), "{proto}");
    }
    // The HTTP flows carry their application and Host.
    let http: Vec<&Value> = rows.iter().filter(|x| x["app"] == "http").collect();
    assert!(!http.is_empty() && http.iter().all(|x| x["server_port"] == 80));
    // The CSV has the same rows (read back by Python's csv module).
    let check = Command::new("python3")
        .args([
            "-c",
            "import csv,sys,json; rows=list(csv.DictReader(open(sys.argv[1]))); print(json.dumps([len(rows), sorted(rows[0].keys()), sum(int(r['packets_to_server']) for r in rows)]))",
        ])
        .arg(&csv_path)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let v: Value = serde_json::from_slice(&check.stdout).unwrap();
    assert_eq!(v[0].as_u64(), Some(total));
    let mut keys: Vec<String> = rows[0].as_object().unwrap().keys().cloned().collect();
    keys.sort();
    assert_eq!(v[1], serde_json::json!(keys));
    let to_server: u64 = rows
        .iter()
        .map(|x| x["packets_to_server"].as_u64().unwrap())
        .sum();
    assert_eq!(v[2].as_u64(), Some(to_server));
    // An extension that names no format is refused in one line.
    let o = picket(&["--flows", "/tmp/flows.txt", f.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("name the file .csv or .jsonl"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// Runs headless Chromium on `url` with `args` (a 1280-pixel wide window, scale 1).
fn chromium(args: &[&str], url: &str) -> std::process::Output {
    let out = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--force-device-scale-factor=1",
            "--window-size=1280,4200",
            "--virtual-time-budget=5000",
        ])
        .args(args)
        .arg(url)
        .output()
        .expect("chromium must be installed (cargo xtask bootstrap)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The value of attribute `name` of the element with id `id` in a dumped DOM.
fn dom_attr(dom: &str, id: &str, name: &str) -> String {
    let at = dom
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no #{id}"));
    let tag = &dom[dom[..at].rfind('<').unwrap()..];
    let tag = &tag[..tag.find('>').unwrap()];
    let start = tag
        .find(&format!("{name}=\""))
        .unwrap_or_else(|| panic!("#{id} has no {name}: {tag}"))
        + name.len()
        + 2;
    tag[start..start + tag[start..].find('"').unwrap()].to_string()
}

#[test]
fn html_charts_draw_and_zoom_in_headless_chromium() {
    // A capture with alerts, so that the time charts carry episode bands.
    let f = capture("esnet/two_way_all_flags.pcap");
    let dir = temp_dir("chromium");
    let page = dir.join("report.html");
    let out = picket(&[
        f.to_str().unwrap(),
        "--no-progress",
        "--html",
        page.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let url = format!("file://{}", page.display());
    let dom = String::from_utf8(chromium(&["--dump-dom"], &url).stdout).unwrap();
    let body = &dom[dom.find("<body").unwrap()..];
    let drawn = body[body.find("data-charts-drawn=\"").unwrap() + 19..]
        .split('"')
        .next()
        .unwrap()
        .to_string();
    assert_eq!(drawn, html::CHARTS.len().to_string(), "every chart drawn");
    let episodes: usize = body[body.find("data-episodes=\"").unwrap() + 15..]
        .split('"')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(episodes > 0, "the capture raises alerts: bands expected");
    // A screenshot: inside every chart's box, a good share of the pixels are not background.
    let shot = dir.join("shot.png");
    chromium(&[&format!("--screenshot={}", shot.display())], &url);
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&shot).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    let channels = info.color_type.samples();
    for (id, _) in html::CHARTS {
        let b: Vec<usize> = dom_attr(&dom, id, "data-box")
            .split(',')
            .map(|v| v.parse().unwrap())
            .collect();
        let (x0, y0, w, h) = (b[0], b[1], b[2], b[3]);
        assert!(w > 300 && h > 200, "{id}: box {b:?}");
        assert!(
            y0 + h <= info.height as usize,
            "{id} below the screenshot: {b:?}"
        );
        let mut inked = 0usize;
        for y in y0..y0 + h {
            for x in x0..(x0 + w).min(info.width as usize) {
                let p = (y * info.width as usize + x) * channels;
                if buf[p..p + 3].iter().any(|c| *c < 235) {
                    inked += 1;
                }
            }
        }
        let share = inked as f64 / (w * h) as f64;
        assert!(
            share > 0.02,
            "{id}: only {:.1}% of its pixels drawn",
            share * 100.0
        );
    }
    // A scripted zoom: the middle half of the capture's time range.
    let range = |dom: &str| -> (u64, u64) {
        (
            dom_attr(dom, "zoom-range", "data-start-ms")
                .parse()
                .unwrap(),
            dom_attr(dom, "zoom-range", "data-end-ms").parse().unwrap(),
        )
    };
    let (start, end) = range(&dom);
    assert!(end > start);
    let (a, b) = (start + (end - start) / 4, end - (end - start) / 4);
    let zoomed =
        String::from_utf8(chromium(&["--dump-dom"], &format!("{url}#zoom={a},{b}")).stdout)
            .unwrap();
    let (za, zb) = range(&zoomed);
    assert!(
        za >= start && zb <= end && (zb - za) < (end - start) * 3 / 4,
        "zoom to {a}..{b} shows {za}..{zb} (whole range {start}..{end})"
    );
    assert!(za.abs_diff(a) <= (end - start) / 20 && zb.abs_diff(b) <= (end - start) / 20);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn two_threads_give_the_same_report_as_one() {
    // Captures with flows, HTTP heads, DNS and alerts; the split-request capture too.
    let dir = temp_dir("threads");
    let split = dir.join("split.pcap");
    std::fs::write(&split, split_http_capture()).unwrap();
    let files = [
        capture("esnet/tcp_0_1000_20190821.pcap"),
        capture("esnet/nmap_80_w_service_detection.pcap"),
        capture("ddos/amp.dns.RRSIG.fragmented.pcap"),
        capture("tcpdump-tests/dns_tcp.pcap"),
        split,
    ];
    let json = |threads: usize| {
        let opts = Options {
            threads,
            ..Options::default()
        };
        let r = analyze::analyze(&files, &opts).unwrap();
        assert!(r.totals.packets > 5000 && !r.alerts.is_empty() && r.tcp.flows_total > 1000);
        serde_json::to_string_pretty(&r).unwrap()
    };
    let one = json(1);
    assert_eq!(one, json(2), "--threads 2 changed the report");
    assert_eq!(one, json(1), "two runs differ");
    let _ = std::fs::remove_dir_all(&dir);
}
