//! The two-namespace [`Lab`] a test attacks and watches, and what the kernel can tell about
//! the BPF programs picket attached in it.

use std::{
    process::Command,
    thread,
    time::{Duration, Instant},
};

use crate::{
    env::{require_root, unique_base, unique_subnet},
    netns::{Netns, VethPair},
    picket::Picket,
    process::{output, run_ok},
};

/// `nmap -sS` from `ns` against `ports` of `target` (one try per port, no host discovery,
/// `extra` options before the target); panics unless nmap succeeds, returns its stdout.
pub fn syn_scan(ns: &Netns, target: &str, ports: &str, extra: &[&str]) -> String {
    run_ok(
        ns.exec("nmap")
            .args(["-sS", "-Pn", "-n", "-T4", "--max-retries", "0", "-p", ports])
            .args(extra)
            .arg(target),
    )
}

/// One test's lab: attacker and victim namespaces joined by a [`VethPair`].
#[derive(Debug)]
pub struct Lab {
    /// The attacker's namespace.
    pub attacker: Netns,
    /// The victim's namespace, where picket runs.
    pub victim: Netns,
    /// The link between them.
    pub veth: VethPair,
}

impl Lab {
    /// Builds a fresh lab with unique names and checks that the victim answers ping.
    pub fn new() -> Lab {
        require_root();
        let base = unique_base();
        let subnet = unique_subnet();
        let attacker = Netns::new(&format!("{base}a"));
        let victim = Netns::new(&format!("{base}v"));
        let veth = VethPair::new(&attacker, &victim, &base, subnet);
        let lab = Lab {
            attacker,
            victim,
            veth,
        };
        // Reachability (also resolves the neighbours, so tools start at once).
        let v4 = lab.veth.victim_v4.to_string();
        let v6 = lab.veth.victim_v6.to_string();
        for (dst, fam) in [(&v4, "-4"), (&v6, "-6")] {
            // A fresh link can drop the very first packet (IPv6 in particular): retry briefly.
            let mut out = output(&mut lab.attacker.exec_timeout(
                10.0,
                "ping",
                &[fam, "-c", "1", "-W", "2", dst],
            ));
            for _ in 0..4 {
                if out.status.success() {
                    break;
                }
                thread::sleep(Duration::from_millis(250));
                out = output(&mut lab.attacker.exec_timeout(
                    10.0,
                    "ping",
                    &[fam, "-c", "1", "-W", "2", dst],
                ));
            }
            assert!(
                out.status.success(),
                "lab setup: {dst} unreachable from the attacker namespace: {}",
                String::from_utf8_lossy(&out.stdout)
            );
        }
        lab
    }

    /// Routes `cidr` from the attacker through the victim, where a blackhole route drops it
    /// (so probes of those addresses reach the victim's interface and die there).
    pub fn route_through_victim(&self, cidr: &str) {
        self.attacker.ip(&[
            "route",
            "add",
            cidr,
            "via",
            &self.veth.victim_v4.to_string(),
        ]);
        self.victim.ip(&["route", "add", "blackhole", cidr]);
    }

    /// `nmap -sS` from the attacker against `ports` of the victim's IPv4 address (one try
    /// per port, no host discovery); panics unless nmap succeeds, and returns its stdout.
    pub fn scan(&self, ports: &str) -> String {
        syn_scan(&self.attacker, &self.veth.victim_v4.to_string(), ports, &[])
    }

    /// Starts picket on the victim's interface (`-i <veth> -o json --summary-interval 0s
    /// <extra…>`), waits for "picket: watching", and checks that its programs are attached.
    pub fn picket(&self, extra: &[&str]) -> Picket {
        // `--hook auto` picks TC on veth: the tests of the XDP path ask for it (the default's
        // choice has a test of its own).
        let mut args = extra.to_vec();
        if !extra.contains(&"--hook") {
            args.extend(["--hook", "xdp"]);
        }
        let extra = &args[..];
        let mut p = Picket::spawn(&self.victim, &self.veth.victim_if, extra);
        p.wait_watching(Duration::from_secs(15));
        p.record_links();
        let ifindex = self.victim_ifindex();
        assert!(
            !p.links().is_empty() && p.links().iter().all(|l| l.ifindex == ifindex),
            "expected picket to hold BPF links on {} (ifindex {ifindex}), found {:?}\n{}",
            self.veth.victim_if,
            p.links(),
            p.report()
        );
        let xdp = extra.iter().all(|a| *a != "tc");
        assert_eq!(
            self.xdp_attached(),
            xdp,
            "expected XDP attached = {xdp} on {} while picket runs; `ip -d link show`:\n{}\n{}",
            self.veth.victim_if,
            self.link_details(),
            p.report()
        );
        p
    }

    /// Starts picket with `--hook afpacket` on the victim's interface (as [`Lab::picket`]),
    /// run through `wrapper` when not empty, and checks that it captures from AF_PACKET
    /// sockets with no BPF program attached.
    pub fn picket_afpacket(&self, wrapper: &[&str], extra: &[&str]) -> Picket {
        let mut args: Vec<String> = [
            "-i",
            self.veth.victim_if.as_str(),
            "-o",
            "json",
            "--summary-interval",
            "0s",
        ]
        .iter()
        .chain(extra)
        .map(|s| s.to_string())
        .collect();
        if !extra.contains(&"--hook") {
            args.extend(["--hook".to_string(), "afpacket".to_string()]);
        }
        let mut p = Picket::spawn_wrapped(&self.victim, wrapper, &args);
        p.wait_watching(Duration::from_secs(15));
        p.record_links();
        assert!(
            p.stderr().contains("capturing with AF_PACKET")
                && p.links().is_empty()
                && !self.xdp_attached(),
            "expected picket to capture with AF_PACKET and attach no BPF program, links {:?}\n{}",
            p.links(),
            p.report()
        );
        assert!(
            self.packet_sockets() > 0,
            "expected AF_PACKET sockets in {} while picket runs\n{}",
            self.victim.name(),
            p.report()
        );
        p
    }

    /// AF_PACKET sockets open in the victim namespace (`/proc/net/packet`).
    pub fn packet_sockets(&self) -> usize {
        run_ok(self.victim.exec("cat").arg("/proc/net/packet"))
            .lines()
            .skip(1)
            .filter(|l| !l.trim().is_empty())
            .count()
    }

    /// Stops an AF_PACKET picket with SIGTERM and asserts a clean exit: status 0, the closing
    /// line, no AF_PACKET socket left in the victim namespace.
    pub fn stop_and_check_closed(&self, p: &mut Picket) {
        stop_saying(p, "closing the AF_PACKET rings");
        self.assert_no_packet_sockets(p);
    }

    /// Asserts that no AF_PACKET socket is left in the victim namespace.
    pub fn assert_no_packet_sockets(&self, p: &Picket) {
        let left = crate::process::wait_until(Duration::from_secs(3), || {
            (self.packet_sockets() == 0).then_some(())
        });
        assert!(
            left.is_some(),
            "expected no AF_PACKET socket in {} after picket exited, /proc/net/packet lists {}\n{}",
            self.victim.name(),
            self.packet_sockets(),
            p.report()
        );
    }

    /// ifindex of the victim's interface.
    pub fn victim_ifindex(&self) -> u32 {
        let out = self
            .victim
            .ip(&["-o", "link", "show", "dev", &self.veth.victim_if]);
        out.split(':')
            .next()
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("cannot parse ifindex from {out:?}"))
    }

    /// `ip -n <victim> -d link show dev <veth>`.
    pub fn link_details(&self) -> String {
        self.victim
            .ip(&["-d", "link", "show", "dev", &self.veth.victim_if])
    }

    /// The XDP attach modes shown by `ip -d link show` (e.g. "xdp", "xdpgeneric").
    pub fn xdp_modes(&self) -> Vec<String> {
        self.link_details()
            .split_whitespace()
            .filter(|t| t.starts_with("xdp") || t.starts_with("prog/xdp"))
            .map(str::to_string)
            .collect()
    }

    /// True when `ip -d link show` reports an XDP program on the victim's interface.
    pub fn xdp_attached(&self) -> bool {
        !self.xdp_modes().is_empty()
    }

    /// The attachment lines (not section headers) of `bpftool net show` run inside the
    /// victim namespace.
    pub fn bpftool_net_attachments(&self) -> Vec<String> {
        let out = run_ok(self.victim.exec("bpftool").args(["net", "show"]));
        out.lines()
            .map(str::trim_end)
            .filter(|l| !l.is_empty() && !is_section_header(l))
            .map(str::to_string)
            .collect()
    }

    /// Stops picket with SIGTERM and asserts a clean exit: status 0, "detaching" on stderr,
    /// no XDP on the interface, nothing in `bpftool net show` in the victim namespace, and
    /// none of the BPF links or programs picket held still exist.
    pub fn stop_and_check_clean(&self, p: &mut Picket) {
        stop_saying(p, "detaching");
        self.assert_nothing_attached(p);
    }

    /// Asserts that nothing picket attached remains (see [`Lab::stop_and_check_clean`]).
    pub fn assert_nothing_attached(&self, p: &Picket) {
        assert!(
            !self.xdp_attached(),
            "expected no XDP program on {} after picket exited; `ip -d link show`:\n{}\n{}",
            self.veth.victim_if,
            self.link_details(),
            p.report()
        );
        let lines = self.bpftool_net_attachments();
        assert!(
            lines.is_empty(),
            "expected `bpftool net show` in {} to list nothing after picket exited, got {lines:?}\n{}",
            self.victim.name(),
            p.report()
        );
        // The kernel releases links and programs when their last fd closes; allow for the
        // deferred free.
        let deadline = Instant::now() + Duration::from_secs(3);
        loop {
            let left: Vec<String> = p
                .links()
                .iter()
                .flat_map(|l| {
                    let mut v = Vec::new();
                    if bpf_object_exists("link", l.link_id) {
                        v.push(format!("link {} ({} {})", l.link_id, l.link_type, l.attach));
                    }
                    if bpf_object_exists("prog", l.prog_id) {
                        v.push(format!("prog {}", l.prog_id));
                    }
                    v
                })
                .collect();
            if left.is_empty() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "expected every BPF link and program picket held to be gone after it exited, \
                 still present: {left:?}\n{}",
                p.report()
            );
            thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Default for Lab {
    fn default() -> Self {
        Lab::new()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        // picket's per-interface lock file, named after our unique interface.
        // A killed picket leaves its lock file (the lock itself dies with it).
        let suffix = format!("-{}.lock", self.veth.victim_if);
        if let Ok(dir) = std::fs::read_dir("/run/picket") {
            for e in dir.flatten() {
                if e.file_name().to_string_lossy().ends_with(&suffix) {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
    }
}

/// A `bpftool net show` section header such as "xdp:" or "tc:".
fn is_section_header(line: &str) -> bool {
    line.ends_with(':') && !line.starts_with(' ')
}

/// True if `bpftool <kind> show id <id>` finds the object.
pub fn bpf_object_exists(kind: &str, id: u32) -> bool {
    output(Command::new("bpftool").args([kind, "show", "id", &id.to_string()]))
        .status
        .success()
}

/// A BPF link held by a process, from `/proc/<pid>/fdinfo`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BpfLink {
    /// Kernel link id.
    pub link_id: u32,
    /// Link type ("xdp", "tcx", …).
    pub link_type: String,
    /// Program id.
    pub prog_id: u32,
    /// Interface index (in the process's namespace).
    pub ifindex: u32,
    /// Attach type as the kernel prints it ("47 (egress)"), empty for XDP.
    pub attach: String,
}

/// The BPF links process `pid` holds.
pub fn bpf_links_of(pid: u32) -> Vec<BpfLink> {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fdinfo")) else {
        return Vec::new();
    };
    let mut links = Vec::new();
    for entry in dir.flatten() {
        let Ok(info) = std::fs::read_to_string(entry.path()) else {
            continue;
        };
        let field = |k: &str| {
            info.lines()
                .find_map(|l| l.strip_prefix(k))
                .map(|v| v.trim_start_matches(':').trim().to_string())
        };
        let (Some(link_type), Some(link_id)) = (field("link_type"), field("link_id")) else {
            continue;
        };
        links.push(BpfLink {
            link_id: link_id.parse().unwrap_or(0),
            link_type,
            prog_id: field("prog_id").and_then(|v| v.parse().ok()).unwrap_or(0),
            ifindex: field("ifindex").and_then(|v| v.parse().ok()).unwrap_or(0),
            attach: field("attach_type").unwrap_or_default(),
        });
    }
    links.sort_by_key(|l| l.link_id);
    links
}

/// Stops picket with SIGTERM and asserts status 0 and `line` on its stderr.
fn stop_saying(p: &mut Picket, line: &str) {
    let status = p.stop();
    assert_eq!(
        status.code(),
        Some(0),
        "expected picket to exit with status 0 on SIGTERM, got {status}\n{}",
        p.report()
    );
    assert!(
        p.stderr().contains(line),
        "expected {line:?} on picket's stderr after SIGTERM\n{}",
        p.report()
    );
}
