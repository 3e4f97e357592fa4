//! Per-flow tallies: TCP flows with their handshake and outcome, UDP flows, TCP connections
//! started per minute, ICMP messages. (Per-address ones are in [`crate::talkers`].)

use std::{cmp::Reverse, collections::BTreeMap};

use agent_common::{
    Summary,
    classify::{
        IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP, TCP_ACK, TCP_CWR, TCP_ECE, TCP_FIN,
        TCP_NS, TCP_PSH, TCP_RST, TCP_SYN, TCP_URG,
    },
    state::AddrKey,
};

use super::{
    HashMap,
    app::Hint,
    names,
    report::{Count, Flow, IcmpMessage, MinuteCount, TcpFlow, TcpOutcomes, TcpSummary, UdpSummary},
    sorted,
};

/// Most flows (TCP and UDP each) and addresses tracked; later new ones are only counted.
pub const MAX_TRACKED: usize = 1 << 20;

/// An IPv4 (mapped) or IPv6 address as the classifier gives it.
pub(crate) type Addr = [u8; 16];

/// The address as text.
pub(crate) fn ip(a: &Addr) -> String {
    AddrKey { addr: *a }.ip().to_string()
}

/// A flow key with the lower endpoint first, and the direction of the packet that made it.
pub(crate) fn canonical(s: &Summary) -> (FlowKey, usize) {
    let a = (s.src, s.src_port);
    let b = (s.dst, s.dst_port);
    if a <= b {
        ((a.0, a.1, b.0, b.1), 0)
    } else {
        ((b.0, b.1, a.0, a.1), 1)
    }
}

/// Adds to a capped map; false when the key is new and the map is full.
pub(crate) fn counted<K: std::hash::Hash + Eq>(
    map: &mut HashMap<K, Count>,
    key: K,
    bytes: u64,
) -> bool {
    let full = map.len() >= MAX_TRACKED;
    match map.entry(key) {
        std::collections::hash_map::Entry::Occupied(c) => c.into_mut().add(bytes),
        std::collections::hash_map::Entry::Vacant(_) if full => return false,
        std::collections::hash_map::Entry::Vacant(v) => v.insert(Count::default()).add(bytes),
    }
    true
}

/// A flow's endpoints, lower first.
pub type FlowKey = (Addr, u16, Addr, u16);

/// What TCP and UDP flows have in common.
#[derive(Clone, Debug, Default)]
struct Base {
    /// Side (0: lower endpoint of the key, 1: higher) of the client.
    client: usize,
    dir: [Count; 2],
    first_ns: u64,
    last_ns: u64,
}

impl Base {
    fn new(client: usize, ts_ns: u64) -> Self {
        Base {
            client,
            first_ns: ts_ns,
            ..Base::default()
        }
    }

    fn add(&mut self, side: usize, bytes: u64, ts_ns: u64) {
        self.dir[side].add(bytes);
        self.last_ns = ts_ns;
    }

    fn packets(&self) -> u64 {
        self.dir[0].packets + self.dir[1].packets
    }

    fn bytes(&self) -> u64 {
        self.dir[0].bytes + self.dir[1].bytes
    }

    /// Ranking: most bytes, then most packets, then earliest.
    fn rank(&self, k: &FlowKey) -> (Reverse<u64>, Reverse<u64>, u64, FlowKey) {
        (
            Reverse(self.bytes()),
            Reverse(self.packets()),
            self.first_ns,
            *k,
        )
    }

    fn report(&self, k: &FlowKey, hint: Option<&Hint>) -> Flow {
        let ends = [(k.0, k.1), (k.2, k.3)];
        let (c, srv) = (ends[self.client], ends[1 - self.client]);
        Flow {
            app: hint.map_or("", |h| h.app),
            app_name: hint.map(|h| h.name.clone()).unwrap_or_default(),
            bytes_to_server: self.dir[self.client].bytes,
            bytes_to_client: self.dir[1 - self.client].bytes,
            last_seen: picket_detect::document::rfc3339(self.last_ns),
            client: ip(&c.0),
            client_port: c.1,
            server: ip(&srv.0),
            server_port: srv.1,
            packets: self.packets(),
            bytes: self.bytes(),
            packets_to_server: self.dir[self.client].packets,
            packets_to_client: self.dir[1 - self.client].packets,
            first_seen: picket_detect::document::rfc3339(self.first_ns),
            duration_s: self.last_ns.saturating_sub(self.first_ns) as f64 / 1e9,
        }
    }
}

#[derive(Clone, Debug, Default)]
struct Tcp {
    /// Client: sender of the first SYN, else receiver of the first SYN-ACK, else sender of
    /// the first packet.
    base: Base,
    flags: u16,
    syn: bool,
    syn_ack: bool,
    established: bool,
    fin: [bool; 2],
    rst: bool,
    /// Sequence number of the first packet from each side.
    base_seq: [Option<u32>; 2],
}

impl Tcp {
    fn closed(&self) -> bool {
        self.rst || (self.fin[0] && self.fin[1])
    }

    fn outcome(&self) -> &'static str {
        if self.rst {
            "reset"
        } else if self.fin[0] && self.fin[1] {
            "closed"
        } else if self.syn && !self.established {
            "half_open"
        } else {
            "open"
        }
    }

    fn handshake(&self) -> &'static str {
        match (self.syn, self.syn_ack, self.established) {
            (_, _, true) => "completed",
            (true, true, false) => "syn_ack",
            (true, false, false) => "syn",
            (false, true, false) => "syn_ack_only",
            (false, false, false) => "not_seen",
        }
    }
}

/// The flow tables.
#[derive(Debug, Default)]
pub struct FlowStats {
    tcp: HashMap<FlowKey, Tcp>,
    tcp_done: Vec<(FlowKey, Tcp)>,
    /// UDP flows; the client is the sender of the first packet.
    udp: HashMap<FlowKey, Base>,
    per_minute: BTreeMap<u64, u64>,
    icmp: HashMap<(u8, u8, u8), Count>,
    untracked: u64,
}

impl FlowStats {
    /// Accounts one classified IP packet (captured bytes `data`) of `bytes` wire bytes at
    /// `ts_ns`.
    pub fn observe(&mut self, s: &Summary, data: &[u8], bytes: u64, ts_ns: u64) {
        if !s.is_ip() {
            return;
        }
        let mut ok = true;
        if s.has_l4() {
            ok = match s.proto {
                IPPROTO_TCP => self.tcp(s, crate::app::tcp_seq(s, data), bytes, ts_ns),
                IPPROTO_UDP => self.udp(s, bytes, ts_ns),
                IPPROTO_ICMP | IPPROTO_ICMPV6 if s.is_icmp() => {
                    counted(&mut self.icmp, (s.family, s.icmp_type, s.icmp_code), bytes)
                }
                _ => true,
            };
        }
        if !ok {
            self.untracked += 1;
        }
    }

    fn tcp(&mut self, s: &Summary, seq: Option<u32>, bytes: u64, ts_ns: u64) -> bool {
        let (key, side) = canonical(s);
        let syn = s.is_syn();
        // Port reuse: a SYN on a closed flow, or whose sequence number differs from the first
        // one its sender used in this flow, starts a new flow (as Wireshark's streams).
        let reused = |f: &Tcp| f.closed() || f.base_seq[side].is_some_and(|b| Some(b) != seq);
        // One lookup for a packet of a known flow, the common case.
        let f = match self.tcp.get_mut(&key) {
            Some(f) if !(syn && reused(f)) => f,
            known => {
                if known.is_some() {
                    let old = self.tcp.remove(&key).unwrap_or_default();
                    self.tcp_done.push((key, old));
                }
                if self.tcp.len() + self.tcp_done.len() >= MAX_TRACKED {
                    return false;
                }
                if syn {
                    *self.per_minute.entry(ts_ns / 60_000_000_000).or_default() += 1;
                }
                let client = if s.is_syn_ack() { 1 - side } else { side };
                self.tcp.entry(key).or_insert(Tcp {
                    base: Base::new(client, ts_ns),
                    ..Tcp::default()
                })
            }
        };
        f.base.add(side, bytes, ts_ns);
        f.base_seq[side] = f.base_seq[side].or(seq);
        f.flags |= s.tcp_flags;
        let flags = s.tcp_flags;
        if syn {
            f.syn = true;
        } else if s.is_syn_ack() {
            f.syn_ack = true;
        } else if flags & TCP_ACK != 0 && side == f.base.client && (f.syn_ack || f.syn) {
            // The client acknowledges only after a SYN-ACK, even one the capture missed.
            f.established = true;
        }
        if flags & TCP_FIN != 0 {
            f.fin[side] = true;
        }
        if flags & TCP_RST != 0 {
            f.rst = true;
        }
        true
    }

    fn udp(&mut self, s: &Summary, bytes: u64, ts_ns: u64) -> bool {
        let (key, side) = canonical(s);
        let full = self.udp.len() >= MAX_TRACKED;
        match self.udp.entry(key) {
            std::collections::hash_map::Entry::Occupied(f) => f.into_mut().add(side, bytes, ts_ns),
            std::collections::hash_map::Entry::Vacant(_) if full => return false,
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(Base::new(side, ts_ns)).add(side, bytes, ts_ns);
            }
        }
        true
    }

    /// The TCP section; `hint` tells the application of a flow.
    pub fn tcp_summary<'h>(&self, hint: &dyn Fn(&FlowKey) -> Option<&'h Hint>) -> TcpSummary {
        let all = || {
            self.tcp
                .iter()
                .chain(self.tcp_done.iter().map(|(k, f)| (k, f)))
        };
        let mut outcomes = TcpOutcomes::default();
        for (_, f) in all() {
            outcomes.handshake_completed += u64::from(f.established);
            match f.outcome() {
                "reset" => outcomes.reset += 1,
                "closed" => outcomes.closed += 1,
                "half_open" => outcomes.half_open += 1,
                _ => outcomes.open += 1,
            }
        }
        let flows = sorted(all(), |(k, f)| f.base.rank(k))
            .into_iter()
            .map(|(k, f)| TcpFlow {
                flow: f.base.report(k, hint(k)),
                flags: flag_names(f.flags),
                handshake: f.handshake(),
                handshake_completed: f.established,
                outcome: f.outcome(),
            })
            .collect();
        TcpSummary {
            flows_total: self.tcp.len() + self.tcp_done.len(),
            outcomes,
            connections_per_minute: self
                .per_minute
                .iter()
                .map(|(m, n)| MinuteCount {
                    minute: picket_detect::document::rfc3339(m * 60_000_000_000),
                    minute_ns: m * 60_000_000_000,
                    connections: *n,
                })
                .collect(),
            flows,
        }
    }

    /// The UDP section; `hint` tells the application of a flow.
    pub fn udp_summary<'h>(&self, hint: &dyn Fn(&FlowKey) -> Option<&'h Hint>) -> UdpSummary {
        UdpSummary {
            flows_total: self.udp.len(),
            flows: sorted(self.udp.iter(), |(k, f)| f.rank(k))
                .into_iter()
                .map(|(k, f)| f.report(k, hint(k)))
                .collect(),
        }
    }

    /// ICMP and ICMPv6 messages by type and code (all of them, most frequent first).
    pub fn icmp(&self) -> Vec<IcmpMessage> {
        sorted(self.icmp.iter(), |(k, c)| (Reverse(c.packets), **k))
            .into_iter()
            .map(|((family, ty, code), c)| IcmpMessage {
                version: if *family == 6 { "icmpv6" } else { "icmp" },
                r#type: *ty,
                code: *code,
                name: names::icmp(*family, *ty, *code),
                packets: c.packets,
                bytes: c.bytes,
            })
            .collect()
    }

    /// Packets whose flow or ICMP entry could not be tracked (tables full).
    pub fn untracked(&self) -> u64 {
        self.untracked
    }
}

/// "SYN,ACK,…" for a set of `TCP_*` bits.
pub fn flag_names(flags: u16) -> String {
    [
        (TCP_SYN, "SYN"),
        (TCP_ACK, "ACK"),
        (TCP_FIN, "FIN"),
        (TCP_RST, "RST"),
        (TCP_PSH, "PSH"),
        (TCP_URG, "URG"),
        (TCP_ECE, "ECE"),
        (TCP_CWR, "CWR"),
        (TCP_NS, "NS"),
    ]
    .into_iter()
    .filter(|(bit, _)| flags & bit != 0)
    .map(|(_, n)| n)
    .collect::<Vec<_>>()
    .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use agent_common::packet::Snapshot;
    use picket_capture::link;
    use picket_frames as frames;

    /// A classified TCP packet with sequence number `seq`, and its bytes.
    fn tcp(src: u8, sport: u16, dst: u8, dport: u16, flags: u16, seq: u32) -> (Summary, Vec<u8>) {
        let mut l4 = frames::tcp(sport, dport, flags);
        l4[4..8].copy_from_slice(&seq.to_be_bytes());
        let f = frames::ipv4([10, 0, 0, src].into(), [10, 0, 0, dst].into(), 6, 0, &l4);
        let s = link::classify(
            1,
            &Snapshot {
                data: &f,
                orig_len: f.len(),
            },
        )
        .unwrap()
        .unwrap();
        (s, f)
    }

    #[test]
    fn handshakes_and_outcomes() {
        let mut st = FlowStats::default();
        let pkts = [
            // Closed.
            tcp(1, 1000, 2, 80, TCP_SYN, 100),
            tcp(2, 80, 1, 1000, TCP_SYN | TCP_ACK, 500),
            tcp(1, 1000, 2, 80, TCP_ACK, 101),
            tcp(1, 1000, 2, 80, TCP_FIN | TCP_ACK, 101),
            tcp(2, 80, 1, 1000, TCP_FIN | TCP_ACK, 501),
            // Reset.
            tcp(1, 1001, 2, 81, TCP_SYN, 7),
            tcp(2, 81, 1, 1001, TCP_RST | TCP_ACK, 0),
            // Half-open: SYN (retransmitted: same flow), and SYN + SYN-ACK.
            tcp(1, 1002, 2, 82, TCP_SYN, 9),
            tcp(1, 1002, 2, 82, TCP_SYN, 9),
            tcp(1, 1003, 2, 83, TCP_SYN, 9),
            tcp(2, 83, 1, 1003, TCP_SYN | TCP_ACK, 9),
            // Open (joined mid-stream).
            tcp(1, 1004, 2, 84, TCP_ACK | TCP_PSH, 9),
            // Port reuse of the first connection: a new initial sequence number.
            tcp(1, 1000, 2, 80, TCP_SYN, 9000),
        ];
        let mut talkers = crate::talkers::Talkers::default();
        for (i, (s, data)) in pkts.iter().enumerate() {
            st.observe(s, data, 60, i as u64);
            talkers.observe(s, 60);
        }
        let t = st.tcp_summary(&|_| None);
        assert_eq!(t.flows_total, 6);
        let o = &t.outcomes;
        assert_eq!(
            (
                o.closed,
                o.reset,
                o.half_open,
                o.open,
                o.handshake_completed
            ),
            (1, 1, 3, 1, 1)
        );
        let first = t
            .flows
            .iter()
            .find(|f| f.flow.server_port == 80 && f.flow.packets == 5)
            .unwrap();
        assert_eq!(
            (first.flow.client.as_str(), first.flow.client_port),
            ("10.0.0.1", 1000)
        );
        assert_eq!(
            (first.flow.packets_to_server, first.flow.packets_to_client),
            (3, 2)
        );
        assert_eq!(
            (first.flags.as_str(), first.handshake, first.outcome),
            ("SYN,ACK,FIN", "completed", "closed")
        );
        let minutes: u64 = t.connections_per_minute.iter().map(|m| m.connections).sum();
        assert_eq!(minutes, 5);
        let talk = talkers.report();
        assert_eq!(talk.sources.len(), 2);
        assert_eq!(
            (talk.sources[0].ip.as_str(), talk.sources[0].packets),
            ("10.0.0.1", 9)
        );
        assert_eq!(talk.conversations[0].packets, 13);
    }
}
