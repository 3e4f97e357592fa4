//! Allowlists: who never raises alerts. Three lists, each a set of networks with an optional
//! port:
//!
//! * `allow` (the original list): offenders in these networks never alert — the source of
//!   source-scoped findings, the destination of destination-scoped ones. No ports.
//! * `ignore_scanners`: probes *from* these networks, and findings about them as a source,
//!   are dropped (a monitoring system, a vulnerability scanner you run).
//! * `ignore_scanned`: probes *to* these hosts, and findings about them as a destination, are
//!   dropped (a honeypot, a host everyone is expected to probe).
//!
//! The names follow Snort's `port_scan.ignore_scanners` / `ignore_scanned`. An entry's port is
//! always the *probed* port (the destination port of the probe), on either side: `10.0.0.5:9100`
//! in `ignore_scanners` ignores 10.0.0.5 probing port 9100 only; `192.0.2.5:443` in
//! `ignore_scanned` ignores probes of 192.0.2.5's port 443 only.
//!
//! Probe events ([`ProbeEvent`]) are filtered before any rule counts them, so a suppressed
//! source takes no room in the window sets. Findings are filtered too, because some rules work
//! from the kernel's per-source state rather than from probe events: there, an entry with a
//! port drops a `port_scan` finding only when every port it lists is ignored.

use std::{fmt, net::IpAddr, str::FromStr};

use ipnet::IpNet;
use serde::Serialize;

use crate::{
    detector::{Finding, Rule, Scope},
    probes::ProbeEvent,
};

/// A network, and optionally one probed port: `10.0.0.0/8`, `192.0.2.5`, `192.0.2.5:443`,
/// `10.0.0.0/8:22`, `2001:db8::/32`, `[2001:db8::/32]:53`, `[2001:db8::1]:53`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PortNet {
    /// The network (an address alone is a /32 or /128).
    pub net: IpNet,
    /// Only probes of this destination port, if given.
    pub port: Option<u16>,
}

impl PortNet {
    /// Whether `ip` probing (or probed on) `port` is covered.
    pub fn covers(&self, ip: IpAddr, port: Option<u16>) -> bool {
        self.net.contains(&ip) && self.port.is_none_or(|p| Some(p) == port)
    }
}

fn parse_net(s: &str) -> Result<IpNet, String> {
    s.parse::<IpNet>()
        .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| format!("{s:?} is not a CIDR or IP address"))
}

impl FromStr for PortNet {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "{s:?} is not CIDR, CIDR:PORT or [IPv6 CIDR]:PORT (e.g. 10.0.0.0/8, \
                 192.0.2.5:443, [2001:db8::/32]:53)"
            )
        };
        let port = |p: &str| p.parse::<u16>().map_err(|_| bad());
        if let Some(rest) = s.strip_prefix('[') {
            let (net, tail) = rest.split_once(']').ok_or_else(bad)?;
            let net = parse_net(net).map_err(|_| bad())?;
            let port = match tail {
                "" => None,
                t => Some(port(t.strip_prefix(':').ok_or_else(bad)?)?),
            };
            return Ok(PortNet { net, port });
        }
        // One colon: IPv4 with a port. More: IPv6 without one (a port needs the brackets).
        match s.matches(':').count() {
            1 => {
                let (net, p) = s.split_once(':').ok_or_else(bad)?;
                Ok(PortNet {
                    net: parse_net(net).map_err(|_| bad())?,
                    port: Some(port(p)?),
                })
            }
            _ => Ok(PortNet {
                net: parse_net(s).map_err(|_| bad())?,
                port: None,
            }),
        }
    }
}

impl fmt::Display for PortNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.port, self.net) {
            (None, net) => write!(f, "{net}"),
            (Some(p), IpNet::V4(net)) => write!(f, "{net}:{p}"),
            (Some(p), IpNet::V6(net)) => write!(f, "[{net}]:{p}"),
        }
    }
}

/// Which list dropped something (the `side` label of `picket_suppressed_total`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    /// `allow`: the offender.
    Offender,
    /// `ignore_scanners`: the source.
    Scanner,
    /// `ignore_scanned`: the destination.
    Scanned,
}

impl Side {
    /// Every side.
    pub const ALL: [Side; 3] = [Side::Offender, Side::Scanner, Side::Scanned];

    /// Stable snake_case name.
    pub fn name(self) -> &'static str {
        match self {
            Side::Offender => "offender",
            Side::Scanner => "scanner",
            Side::Scanned => "scanned",
        }
    }
}

/// Probe events and findings dropped so far, per [`Side`] (in [`Side::ALL`] order).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Suppressed(pub [u64; 3]);

impl Suppressed {
    fn add(&mut self, side: Side) {
        self.0[side as usize] += 1;
    }

    /// Count for one side.
    pub fn of(&self, side: Side) -> u64 {
        self.0[side as usize]
    }
}

/// The three lists.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Allowlists {
    /// `allow`: offenders never alerted on.
    pub offenders: Vec<IpNet>,
    /// `ignore_scanners`.
    pub scanners: Vec<PortNet>,
    /// `ignore_scanned`.
    pub scanned: Vec<PortNet>,
}

fn any(list: &[PortNet], ip: IpAddr, port: Option<u16>) -> bool {
    list.iter().any(|n| n.covers(ip, port))
}

impl Allowlists {
    /// True when no list has an entry.
    pub fn is_empty(&self) -> bool {
        self.offenders.is_empty() && self.scanners.is_empty() && self.scanned.is_empty()
    }

    /// The list that drops this probe, if any.
    pub fn drops_probe(&self, p: &ProbeEvent) -> Option<Side> {
        let port = Some(p.port);
        if any(&self.scanners, p.src_ip(), port) {
            Some(Side::Scanner)
        } else if any(&self.scanned, p.dst_ip(), port) {
            Some(Side::Scanned)
        } else {
            None
        }
    }

    /// The list that drops this finding, if any.
    pub fn drops_finding(&self, f: &Finding) -> Option<Side> {
        if f.offender()
            .is_some_and(|ip| self.offenders.iter().any(|n| n.contains(&ip)))
        {
            return Some(Side::Offender);
        }
        // An entry with a port covers a port_scan whose every listed port it covers; other
        // findings only by entries without a port.
        let covered = |list: &[PortNet], ip: IpAddr| {
            if any(list, ip, None) {
                return true;
            }
            f.rule == Rule::PortScan
                && !f.details.ports.is_empty()
                && f.details.ports.iter().all(|p| any(list, ip, Some(*p)))
        };
        let source = f.source.filter(|_| f.scope == Scope::Source);
        if source.is_some_and(|ip| covered(&self.scanners, ip)) {
            return Some(Side::Scanner);
        }
        if f.destination.is_some_and(|ip| covered(&self.scanned, ip)) {
            return Some(Side::Scanned);
        }
        None
    }

    /// Drops the probes the lists cover, counting them.
    pub fn filter_probes(&self, probes: &mut Vec<ProbeEvent>, counts: &mut Suppressed) {
        if self.scanners.is_empty() && self.scanned.is_empty() {
            return;
        }
        probes.retain(|p| match self.drops_probe(p) {
            Some(side) => {
                counts.add(side);
                false
            }
            None => true,
        });
    }

    /// Drops the findings the lists cover, counting them.
    pub fn filter_findings(&self, findings: Vec<Finding>, counts: &mut Suppressed) -> Vec<Finding> {
        if self.is_empty() {
            return findings;
        }
        findings
            .into_iter()
            .filter(|f| match self.drops_finding(f) {
                Some(side) => {
                    counts.add(side);
                    false
                }
                None => true,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        episodes::testing::finding,
        probes::{Outcome, ProbeGroup},
    };

    fn pn(s: &str) -> PortNet {
        s.parse().unwrap()
    }

    fn mapped(ip: &str) -> [u8; 16] {
        match ip.parse::<IpAddr>().unwrap() {
            IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
            IpAddr::V6(v6) => v6.octets(),
        }
    }

    fn probe(src: &str, dst: &str, port: u16) -> ProbeEvent {
        ProbeEvent {
            src: mapped(src),
            dst: mapped(dst),
            group: ProbeGroup::Tcp,
            port,
            outcome: Outcome::Rejected,
            at_ns: 0,
            ack_class: false,
        }
    }

    #[test]
    fn syntax_with_and_without_ports_round_trips() {
        for s in [
            "10.0.0.0/8",
            "192.0.2.5/32:443",
            "10.0.0.0/8:22",
            "2001:db8::/32",
            "[2001:db8::/32]:53",
            "[2001:db8::1/128]:53",
        ] {
            assert_eq!(pn(s).to_string(), s);
        }
        assert_eq!(pn("192.0.2.5:443"), pn("192.0.2.5/32:443"));
        assert_eq!(pn("2001:db8::1"), pn("2001:db8::1/128"));
        assert_eq!(pn("[2001:db8::1]:53").port, Some(53));
        assert_eq!(pn("[2001:db8::1]").port, None);
        for bad in [
            "",
            "10.0.0.0/33",
            "10.0.0.1:http",
            "10.0.0.1:70000",
            "[2001:db8::1]53",
            "[2001:db8::1",
            "host:80",
        ] {
            assert!(bad.parse::<PortNet>().is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn probes_are_dropped_by_side_and_port() {
        let lists = Allowlists {
            offenders: vec![],
            scanners: vec![pn("10.0.0.5:9100"), pn("198.51.100.0/24")],
            scanned: vec![pn("192.0.2.5:443"), pn("[2001:db8::/32]:53")],
        };
        let mut probes = vec![
            probe("10.0.0.5", "192.0.2.9", 9100),      // scanner, its port
            probe("10.0.0.5", "192.0.2.9", 22),        // scanner, another port: kept
            probe("198.51.100.7", "192.0.2.9", 1),     // scanner network
            probe("203.0.113.1", "192.0.2.5", 443),    // scanned host and port
            probe("203.0.113.1", "192.0.2.5", 80),     // scanned host, other port: kept
            probe("2001:db8:1::1", "2001:db8::9", 53), // scanned IPv6 network and port
        ];
        let mut n = Suppressed::default();
        lists.filter_probes(&mut probes, &mut n);
        let kept: Vec<u16> = probes.iter().map(|p| p.port).collect();
        assert_eq!(kept, vec![22, 80]);
        assert_eq!((n.of(Side::Scanner), n.of(Side::Scanned)), (2, 2));
    }

    #[test]
    fn findings_are_dropped_by_the_offender_scanner_or_scanned_lists() {
        let lists = Allowlists {
            offenders: vec!["198.51.100.0/24".parse().unwrap()],
            scanners: vec![pn("203.0.113.9"), pn("203.0.113.10:80")],
            scanned: vec![pn("192.0.2.1:22")],
        };
        let mut single_port = finding("203.0.113.11", 40.0);
        single_port.details.ports = vec![22];
        let mut web = finding("203.0.113.10", 40.0);
        web.details.ports = vec![80];
        let mut many = finding("203.0.113.10", 40.0);
        many.details.ports = vec![80, 81];
        let mut n = Suppressed::default();
        let kept = lists.filter_findings(
            vec![
                finding("198.51.100.7", 40.0), // allow
                finding("203.0.113.9", 40.0),  // ignore_scanners, no port
                web,                           // ignore_scanners, its only port
                many.clone(),                  // port 81 is not ignored: kept
                single_port,                   // target 192.0.2.1, only port 22
                finding("203.0.113.12", 40.0), // kept
            ],
            &mut n,
        );
        assert_eq!(kept.len(), 2);
        assert_eq!(kept[0], many);
        assert_eq!(n.0, [1, 2, 1]);
    }
}
