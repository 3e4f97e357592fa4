//! What became of each probe: the settled outcome of one conversation a prober opened.
//!
//! This is the interface between the outcome join (conversation records of two ticks in,
//! one [`ProbeEvent`] per settled conversation out) and the rules that count failed probes
//! over several time scales, per source and per target. The same events come from the
//! kernel's tables live and from their host model in `picket analyze`.

use std::net::{IpAddr, Ipv6Addr};

use serde::Serialize;

/// Protocol family of a probe: scans are counted per group, so a TCP port and a UDP port
/// with the same number are different ports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProbeGroup {
    /// Any TCP opening: SYN, FIN, NULL, XMAS, Maimon, window, ACK-class, all flags.
    Tcp,
    /// UDP from any source port.
    Udp,
    /// SCTP INIT or COOKIE-ECHO.
    Sctp,
    /// ICMP/ICMPv6 requests; the port is the ICMP type.
    Icmp,
    /// Other IP protocols (an IP-protocol scan); the port is the protocol number.
    IpProto,
}

/// What became of one probe.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Handshake completed, or a two-way exchange.
    Accepted,
    /// TCP RST, ICMP/ICMPv6 unreachable, SCTP ABORT.
    Rejected,
    /// No answer although answers to this prober are visible.
    Unanswered,
    /// No answer, and no answer to this prober is ever visible (a one-way vantage).
    Unknown,
}

impl Outcome {
    /// Rejected or unanswered: what scan rules count.
    pub fn failed(self) -> bool {
        matches!(self, Outcome::Rejected | Outcome::Unanswered)
    }
}

/// One settled probe.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ProbeEvent {
    /// The prober (initiator), 16 bytes, IPv4 as IPv4-mapped.
    pub src: [u8; 16],
    /// The probed host.
    pub dst: [u8; 16],
    /// Protocol group.
    pub group: ProbeGroup,
    /// Destination port, ICMP type or IP protocol number (see [`ProbeGroup`]).
    pub port: u16,
    /// What became of it.
    pub outcome: Outcome,
    /// Time of the probe's tick on the snapshot's clock (`Snapshot::mono_ns`), ns.
    pub at_ns: u64,
    /// Known only by the bare RST it drew: an ACK-class probe (`-sA`, `-sW`, `-sM`, `-PA`),
    /// which the vantage cannot tell from a segment of a connection until it is answered
    /// (`crate::ack_sweeps` estimates the silent ones).
    pub ack_class: bool,
}

impl ProbeEvent {
    /// The prober as an address.
    pub fn src_ip(&self) -> IpAddr {
        to_ip(self.src)
    }

    /// The probed host as an address.
    pub fn dst_ip(&self) -> IpAddr {
        to_ip(self.dst)
    }
}

fn to_ip(a: [u8; 16]) -> IpAddr {
    let v6 = Ipv6Addr::from(a);
    match v6.to_ipv4_mapped() {
        Some(v4) => IpAddr::V4(v4),
        None => IpAddr::V6(v6),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapped_addresses_read_as_ipv4() {
        let mut a = [0u8; 16];
        a[10] = 0xff;
        a[11] = 0xff;
        a[12..].copy_from_slice(&[192, 0, 2, 1]);
        let e = ProbeEvent {
            src: a,
            dst: [0; 16],
            group: ProbeGroup::Tcp,
            port: 80,
            outcome: Outcome::Rejected,
            at_ns: 0,
            ack_class: false,
        };
        assert_eq!(e.src_ip(), "192.0.2.1".parse::<IpAddr>().unwrap());
        assert_eq!(e.dst_ip(), "::".parse::<IpAddr>().unwrap());
        assert!(e.outcome.failed() && !Outcome::Unknown.failed());
    }
}
