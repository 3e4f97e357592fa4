//! End-to-end tests of encapsulation (issue 12): a scan inside a VXLAN tunnel between two
//! namespaces, caught by picket on the underlay veth and naming the inner source and the
//! tunnel; a scan arriving on a tun device (an L3 interface without an Ethernet header)
//! that the test feeds with IP packets, caught by picket attached to that device. Both run
//! with the default hook, whose choice (TC on veth and on L3 devices) and reason picket
//! prints.
//!
//! This kernel has vxlan and tun built in but no ipip, gre, geneve or wireguard modules:
//! those are covered by the classifier's host tests, the kernel-parity check and offline
//! captures (`agent/tests/analyze.rs`).

use std::time::{Duration, Instant};

use serde_json::Value;
use tests::{DETECTION_DEADLINE, Lab, PYTHON, Picket, is_start, output, require_tools, str_at};

/// VNI of the test's VXLAN.
const VNI: u32 = 4242;

/// Waits for a `port_scan` start alert from `source`, within the detection deadline of `t0`.
fn expect_scan_from(p: &mut Picket, t0: Instant, source: &str, what: &str) -> Value {
    let Some((v, at)) = p.wait_alert_at(
        |v| is_start(v, "port_scan") && v["source"]["ip"] == source,
        Duration::from_secs(12),
    ) else {
        panic!(
            "expected a port_scan alert from {source} ({what}) within {DETECTION_DEADLINE:?}\n{}",
            p.report()
        );
    };
    let latency = at.saturating_duration_since(t0);
    eprintln!("[latency] port_scan {what}: {} ms", latency.as_millis());
    assert!(
        latency <= DETECTION_DEADLINE,
        "the alert came after {} ms: {v}\n{}",
        latency.as_millis(),
        p.report()
    );
    v
}

#[test]
fn nmap_inside_vxlan_is_caught_on_the_underlay_with_the_inner_source() {
    require_tools(&["nmap"]);
    let lab = Lab::new();
    let (a_in, v_in) = ("172.31.77.1", "172.31.77.2");
    let vni = VNI.to_string();
    for (ns, local, remote, underlay, inner) in [
        (
            &lab.attacker,
            lab.veth.attacker_v4,
            lab.veth.victim_v4,
            &lab.veth.attacker_if,
            a_in,
        ),
        (
            &lab.victim,
            lab.veth.victim_v4,
            lab.veth.attacker_v4,
            &lab.veth.victim_if,
            v_in,
        ),
    ] {
        ns.ip(&[
            "link",
            "add",
            "pkvx0",
            "type",
            "vxlan",
            "id",
            &vni,
            "local",
            &local.to_string(),
            "remote",
            &remote.to_string(),
            "dstport",
            "4789",
            "dev",
            underlay,
        ]);
        ns.ip(&["addr", "add", &format!("{inner}/24"), "dev", "pkvx0"]);
        ns.ip(&["link", "set", "pkvx0", "up"]);
    }
    // The overlay works (and the neighbours are resolved) before picket starts.
    let ping = output(&mut lab.attacker.exec_timeout(
        10.0,
        "ping",
        &["-c", "3", "-i", "0.2", "-W", "2", v_in],
    ));
    assert!(ping.status.success(), "no ping through the VXLAN: {ping:?}");

    // The default hook: TC on the veth, with the reason on one line.
    let mut p = Picket::spawn(&lab.victim, &lab.veth.victim_if, &[]);
    p.wait_watching(Duration::from_secs(15));
    let err = p.stderr();
    assert!(
        err.contains(&format!(
            "picket: hook tc on {}: veth driver: veth: XDP costs 8-20 % there",
            lab.veth.victim_if
        )) && err.contains(&format!("attached tc ingress to {}", lab.veth.victim_if)),
        "expected the default hook to be TC on veth, said with its reason\n{}",
        p.report()
    );
    let t0 = Instant::now();
    let out = output(&mut lab.attacker.exec_timeout(
        60.0,
        "nmap",
        &[
            "-sS",
            "-Pn",
            "-n",
            "-T4",
            "--max-retries",
            "0",
            "-p",
            "1-300",
            v_in,
        ],
    ));
    assert!(out.status.success(), "nmap failed: {out:?}");
    let v = expect_scan_from(&mut p, t0, a_in, "inside VXLAN");
    assert_eq!(str_at(&v, "/destination/ip"), v_in, "{v}");
    let tunnel = v
        .pointer("/picket/details/tunnel")
        .unwrap_or_else(|| panic!("expected picket.details.tunnel in {v}"));
    assert_eq!(tunnel["kind"], "vxlan", "{v}");
    assert_eq!(tunnel["vni"], VNI, "{v}");
    assert_eq!(tunnel["outer_src"], lab.veth.attacker_v4.to_string(), "{v}");
    assert_eq!(tunnel["outer_dst"], lab.veth.victim_v4.to_string(), "{v}");
    // The tunnel endpoint itself is no scanner.
    let attacker_outer = lab.veth.attacker_v4.to_string();
    assert!(
        p.alerts()
            .iter()
            .all(|a| a["source"]["ip"] != attacker_outer.as_str()),
        "an alert names the tunnel endpoint {attacker_outer}\n{}",
        p.report()
    );
    lab.stop_and_check_clean(&mut p);
}

/// Writes `count` TCP SYNs from `src` to ports 1..=count of `dst` into the tun device
/// `dev` (IFF_TUN | IFF_NO_PI: bare IPv4 packets), as a VPN daemon would.
const TUN_WRITER: &str = r#"
import fcntl, os, socket, struct, sys
dev, src, dst, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
fd = os.open("/dev/net/tun", os.O_RDWR)
fcntl.ioctl(fd, 0x400454ca, struct.pack("16sH", dev.encode(), 0x0001 | 0x1000))
def csum(b):
    if len(b) % 2: b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16: s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff
s, d = socket.inet_aton(src), socket.inet_aton(dst)
for port in range(1, count + 1):
    tcp = struct.pack("!HHIIBBHHH", 40000, port, 1000 + port, 0, 5 << 4, 0x02, 1024, 0, 0)
    tcp = tcp[:16] + struct.pack("!H", csum(s + d + struct.pack("!BBH", 0, 6, 20) + tcp)) + tcp[18:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 40, port, 0, 64, 6, 0, s, d)
    ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
    os.write(fd, ip + tcp)
os.close(fd)
"#;

#[test]
fn a_scan_on_a_tun_device_is_caught_by_picket_attached_to_it() {
    let lab = Lab::new();
    let dev = "pktun0";
    lab.victim.ip(&["tuntap", "add", "dev", dev, "mode", "tun"]);
    lab.victim.ip(&["addr", "add", "10.213.0.1/24", "dev", dev]);
    lab.victim.ip(&["link", "set", dev, "up"]);
    let mut p = Picket::spawn(&lab.victim, dev, &[]);
    p.wait_watching(Duration::from_secs(15));
    let err = p.stderr();
    assert!(
        err.contains(&format!(
            "picket: hook tc on {dev} (programs for IP packets): no Ethernet header (link type 65534)"
        )),
        "expected TC with the programs for IP packets on the tun device\n{}",
        p.report()
    );
    let t0 = Instant::now();
    let out = output(lab.victim.exec(PYTHON).args([
        "-c",
        TUN_WRITER,
        dev,
        "10.213.0.9",
        "10.213.0.1",
        "200",
    ]));
    assert!(out.status.success(), "tun writer failed: {out:?}");
    let v = expect_scan_from(&mut p, t0, "10.213.0.9", "on a tun device");
    assert_eq!(str_at(&v, "/destination/ip"), "10.213.0.1", "{v}");
    assert!(v.pointer("/picket/details/tunnel").is_none(), "{v}");
    let status = p.stop();
    assert!(
        status.success(),
        "picket exited with {status}\n{}",
        p.report()
    );
}
