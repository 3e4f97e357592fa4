//! End-to-end: a botnet SYN flood, 50 sources × 950 SYN/s at one server. Every source stays
//! under the per-source `syn_flood` bar (1000/s), and there are fewer than 64 of them (no
//! "many sources" shortcut): only the destination sees the flood, and must say so.

use std::time::{Duration, Instant};

use serde_json::Value;
use tests::{DETECTION_DEADLINE, Lab, PYTHON, is_start, str_at};

/// Sends SYNs to `dst` port 80 from 50 spoofed sources `<prefix>.100`–`.149`, `rate` per
/// source per second, for `secs` seconds, paced in 10 ms slots (raw socket, valid checksums).
const BOTNET: &str = r#"
import socket, struct, sys, time
prefix, dst, rate, secs = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
def csum(b):
    if len(b) % 2: b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16: s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff
d = socket.inet_aton(dst)
pkts = []
for sport in range(20):
    for i in range(50):
        s = socket.inet_aton("%s.%d" % (prefix, 100 + i))
        tcp = struct.pack("!HHIIBBHHH", 30000 + sport, 80, 7 * sport + i, 0, 5 << 4, 0x02, 1024, 0, 0)
        tcp = tcp[:16] + struct.pack("!H", csum(s + d + struct.pack("!BBH", 0, 6, 20) + tcp)) + tcp[18:]
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 40, i, 0, 64, 6, 0, s, d)
        ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
        pkts.append(ip + tcp)
sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
per_slot = 50 * rate // 100
t0, sent, slot = time.monotonic(), 0, 0
while time.monotonic() - t0 < secs:
    for _ in range(per_slot):
        sock.sendto(pkts[sent % len(pkts)], (dst, 0))
        sent += 1
    slot += 1
    pause = t0 + slot / 100 - time.monotonic()
    if pause > 0:
        time.sleep(pause)
elapsed = time.monotonic() - t0
print("%d %.3f" % (sent, elapsed))
"#;

#[test]
fn fifty_sources_each_under_the_bar_are_a_syn_flood_at_their_target() {
    let lab = Lab::new();
    let mut p = lab.picket(&[]);
    let victim = lab.veth.victim_v4.to_string();
    let octets = lab.veth.attacker_v4.octets();
    let prefix = format!("{}.{}.{}", octets[0], octets[1], octets[2]);
    let t0 = Instant::now();
    let bots = lab
        .attacker
        .spawn(PYTHON, &["-c", BOTNET, &prefix, &victim, "950", "4"]);
    let Some((v, at)) = p.wait_alert_at(
        |v| is_start(v, "syn_flood") && str_at(v, "/picket/scope") == "destination",
        Duration::from_secs(12),
    ) else {
        panic!(
            "expected a destination syn_flood alert at {victim} within {DETECTION_DEADLINE:?}\n{}",
            p.report()
        );
    };
    let latency = at.saturating_duration_since(t0);
    eprintln!(
        "[latency] syn_flood of 50 x 950 SYN/s: {} ms",
        latency.as_millis()
    );
    let done = bots.finish(Duration::from_secs(15));
    // The real rate, to tell a slow sender from a missed detection.
    let figures: Vec<f64> = done
        .stdout
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    let [sent, secs] = figures[..] else {
        panic!("the sender printed no counts: {done:?}")
    };
    let per_source = sent / secs / 50.0;
    eprintln!("[rate] {sent} SYNs in {secs:.2} s: {per_source:.0} per source per second");
    assert!(
        per_source < 1000.0 && per_source > 500.0,
        "the sender did not hold 950 SYN/s per source ({per_source:.0}): {done:?}"
    );
    assert_eq!(str_at(&v, "/destination/ip"), victim, "{v}");
    assert!(
        latency <= DETECTION_DEADLINE,
        "the alert came after {} ms: {v}\n{}",
        latency.as_millis(),
        p.report()
    );
    // No source crossed its own bar: no per-source syn_flood, and no alert names a bot.
    p.collect_for(Duration::from_millis(1500));
    let per_source_alerts: Vec<Value> = p
        .alerts()
        .into_iter()
        .filter(|a| is_start(a, "syn_flood") && str_at(a, "/picket/scope") == "source")
        .collect();
    assert!(
        per_source_alerts.is_empty(),
        "a bot under the bar got its own syn_flood: {per_source_alerts:?}\n{}",
        p.report()
    );
    lab.stop_and_check_clean(&mut p);
}
