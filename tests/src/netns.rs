//! The network-namespace guard [`Netns`] and the [`VethPair`] that joins two of them.

use std::{
    ffi::OsStr,
    net::{Ipv4Addr, Ipv6Addr},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use crate::{
    env::require_root,
    process::{KILL_GRACE, Proc, output, run_ok, signal},
};

/// A network namespace, deleted (after ending the processes left in it: SIGTERM, then
/// SIGKILL after [`KILL_GRACE`]) on drop.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates namespace `name` (after deleting a stale one of that name, left by an aborted
    /// run) and brings its loopback up. Panics unless root.
    ///
    /// `PICKET_NETNS_PREFIX`, when set, is put before the name, so that two checkouts can run
    /// their suites on one machine at once without deleting each other's namespaces.
    pub fn new(name: &str) -> Netns {
        require_root();
        let name = format!(
            "{}{name}",
            std::env::var("PICKET_NETNS_PREFIX").unwrap_or_default()
        );
        let name = name.as_str();
        let _ = output(Command::new("ip").args(["netns", "del", name]));
        run_ok(Command::new("ip").args(["netns", "add", name]));
        let ns = Netns { name: name.into() };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    /// The namespace's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `/run/netns/<name>`, the namespace's bind mount.
    pub fn path(&self) -> PathBuf {
        Path::new("/run/netns").join(&self.name)
    }

    /// A command running `prog` inside the namespace (`ip netns exec <ns> <prog>`; `ip`
    /// execs the program, so the child's pid is the program's), with no stdin.
    pub fn exec(&self, prog: impl AsRef<OsStr>) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name]).arg(prog);
        c.stdin(Stdio::null());
        c
    }

    /// A command running `prog args…` inside the namespace under `timeout(1)`, so that a
    /// hung tool cannot hang the test (SIGTERM after `secs`, SIGKILL 2 s later).
    pub fn exec_timeout(&self, secs: f64, prog: &str, args: &[&str]) -> Command {
        let mut c = self.exec("timeout");
        c.args(["-k", "2", &format!("{secs}"), prog]).args(args);
        c
    }

    /// Runs `ip -n <ns> <args>`, panicking on failure; returns its stdout.
    pub fn ip(&self, args: &[&str]) -> String {
        run_ok(Command::new("ip").args(["-n", &self.name]).args(args))
    }

    /// Starts `prog args…` in the background inside the namespace.
    pub fn spawn(&self, prog: &str, args: &[&str]) -> Proc {
        let mut c = self.exec(prog);
        c.args(args);
        Proc::spawn(c, &format!("{} (in {})", prog_line(prog, args), self.name))
    }

    /// Like [`Netns::spawn`], under `timeout(1)` (see [`Netns::exec_timeout`]).
    pub fn spawn_timeout(&self, secs: f64, prog: &str, args: &[&str]) -> Proc {
        Proc::spawn(
            self.exec_timeout(secs, prog, args),
            &format!("{} (in {})", prog_line(prog, args), self.name),
        )
    }

    /// Waits up to `timeout` for a listening socket on `port` (`proto` "tcp" or "udp") in
    /// this namespace; panics if none appears.
    pub fn wait_listening(&self, proto: &str, port: u16, timeout: Duration) {
        let flag = if proto == "udp" { "-Hlun" } else { "-Hltn" };
        let deadline = Instant::now() + timeout;
        loop {
            let out = output(self.exec("ss").args([flag, &format!("sport = :{port}")]));
            if !String::from_utf8_lossy(&out.stdout).trim().is_empty() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "expected a {proto} listener on port {port} in {} within {timeout:?}",
                self.name
            );
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Pids of the processes whose network namespace is this one.
    pub fn pids(&self) -> Vec<u32> {
        let out = output(Command::new("ip").args(["netns", "pids", &self.name]));
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Anything still running in here was started by this test.
        for p in self.pids() {
            signal(p, libc::SIGTERM);
        }
        let deadline = Instant::now() + KILL_GRACE;
        while !self.pids().is_empty() && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(50));
        }
        for p in self.pids() {
            signal(p, libc::SIGKILL);
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

fn prog_line(prog: &str, args: &[&str]) -> String {
    std::iter::once(prog)
        .chain(args.iter().copied())
        .collect::<Vec<_>>()
        .join(" ")
}

/// A veth pair between an attacker and a victim namespace, with IPv4 /24 and IPv6 /64
/// (`nodad`) addresses, both ends up. Deleting either namespace deletes the pair.
#[derive(Clone, Debug)]
pub struct VethPair {
    /// Interface name in the attacker namespace.
    pub attacker_if: String,
    /// Interface name in the victim namespace (the one picket watches).
    pub victim_if: String,
    /// Attacker IPv4 address (10.250.`subnet`.1/24).
    pub attacker_v4: Ipv4Addr,
    /// Victim IPv4 address (10.250.`subnet`.2/24).
    pub victim_v4: Ipv4Addr,
    /// Attacker IPv6 address (fd00:250::`subnet`:1/64).
    pub attacker_v6: Ipv6Addr,
    /// Victim IPv6 address (fd00:250::`subnet`:2/64).
    pub victim_v6: Ipv6Addr,
}

impl VethPair {
    /// Creates `<base>a0` in `attacker` and `<base>v0` in `victim` (created directly in the
    /// namespaces, never in the host's), assigns the addresses and brings the links up.
    pub fn new(attacker: &Netns, victim: &Netns, base: &str, subnet: u8) -> VethPair {
        let pair = VethPair {
            attacker_if: format!("{base}a0"),
            victim_if: format!("{base}v0"),
            attacker_v4: Ipv4Addr::new(10, 250, subnet, 1),
            victim_v4: Ipv4Addr::new(10, 250, subnet, 2),
            attacker_v6: Ipv6Addr::new(0xfd00, 0x250, 0, 0, 0, 0, u16::from(subnet), 1),
            victim_v6: Ipv6Addr::new(0xfd00, 0x250, 0, 0, 0, 0, u16::from(subnet), 2),
        };
        assert!(pair.victim_if.len() <= 15, "{} too long", pair.victim_if);
        attacker.ip(&[
            "link",
            "add",
            &pair.attacker_if,
            "type",
            "veth",
            "peer",
            "name",
            &pair.victim_if,
            "netns",
            victim.name(),
        ]);
        for (ns, ifname, v4, v6) in [
            (
                attacker,
                &pair.attacker_if,
                pair.attacker_v4,
                pair.attacker_v6,
            ),
            (victim, &pair.victim_if, pair.victim_v4, pair.victim_v6),
        ] {
            ns.ip(&["addr", "add", &format!("{v4}/24"), "dev", ifname]);
            ns.ip(&["addr", "add", &format!("{v6}/64"), "dev", ifname, "nodad"]);
            ns.ip(&["link", "set", ifname, "up"]);
        }
        pair
    }
}
