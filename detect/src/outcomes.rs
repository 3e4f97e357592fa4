//! The outcome join: conversation records of consecutive ticks in, one [`ProbeEvent`] per
//! settled probe out. The live agent (kernel `CONV` banks, mmapped), the AF_PACKET ring
//! source and `picket analyze` (the host model's banks) all call [`OutcomeJoin::settle`]
//! with each bank as its tick completes, so outcomes mean the same everywhere.
//!
//! When a probe settles (docs/detection-state-design.md §2.2):
//! * **answered in its tick** (the record carries the answer): at once;
//! * **answered in the next tick** (the kernel claims a `cont` record there, or, for UDP and
//!   other protocols, the answer opened the reverse conversation): when that tick is read;
//! * **never answered**: when the next tick is read, 1–2 s after the probe.
//!
//! What an outcome is:
//! * accepted: SYN-ACK; an echo, timestamp or mask reply; SCTP INIT-ACK/COOKIE-ACK; UDP or
//!   another protocol coming back;
//! * rejected: RST; ICMP/ICMPv6 unreachable, prohibited or parameter problem (matched by the
//!   quoted tuple); SCTP ABORT. A bare RST with no probe on record is the answer to an
//!   ACK-class probe (`-sA`, `-sW`, `-sM`, `-PA`): a rejected TCP probe of the RST's source
//!   port, unless it resets a conversation its destination opened (nmap's own RST after a
//!   SYN-ACK);
//! * unanswered: no answer, and the prober is *visible*: some answer to it was seen in the
//!   last [`VISIBLE_NS`];
//! * unknown: no answer from a prober no answer is ever seen for (a one-way vantage: XDP
//!   without egress, a capture of one direction). Rules count these only at doubled bars.
//!
//! Left out (no event):
//! * probes to a target for which the prober received *time exceeded* in the last
//!   [`VISIBLE_NS`]: tracing (traceroute, mtr), whose last hop's unreachables and silent
//!   hops are no scan;
//! * unanswered UDP shaped like a reply (from a port below 1024 to one at or above 1024: a
//!   DNS or NTP answer whose query the vantage did not see); rejected, it still counts
//!   (`-sU -g 53` against closed ports draws port unreachables).

use crate::{HashMap, HashSet};

use agent_common::{
    classify::{IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_SCTP, IPPROTO_TCP, IPPROTO_UDP},
    conv::{
        ANS_ABORT, ANS_EXPIRED, ANS_REPLY, ANS_RST, ANS_RST_BARE, ANS_SYNACK, ANS_UNREACH, ConvKey,
        ConvRec,
    },
};

use crate::probes::{Outcome, ProbeEvent, ProbeGroup};

/// How long an answer keeps its prober visible, and a time-exceeded answer its target traced.
pub const VISIBLE_NS: u64 = 60_000_000_000;
/// Most probers whose visibility (and most prober/target pairs whose tracing) is remembered:
/// 2 × 65 536 entries of about 40 B, 5 MiB at most.
pub const MAX_REMEMBERED: usize = 65_536;

type Addr = [u64; 2];
/// (initiator, responder, responder port, protocol).
type Key = (Addr, Addr, u16, u8);

fn key_of(r: &ConvRec) -> Key {
    (r.init, r.resp, r.resp_port, r.proto)
}

/// The join's state between two ticks.
#[derive(Clone, Debug, Default)]
pub struct OutcomeJoin {
    /// Openings of the previous tick still unanswered, and that tick's time.
    pending: Vec<ConvRec>,
    pending_at: u64,
    /// Last time each prober received an answer.
    visible: HashMap<Addr, u64>,
    /// Last time each (prober, target) pair drew a time-exceeded answer.
    tracing: HashMap<(Addr, Addr), u64>,
    /// (initiator, responder) pairs with a TCP conversation accepted in the previous tick.
    prev_accepted: HashSet<(Addr, Addr)>,
}

impl OutcomeJoin {
    /// An empty join.
    pub fn new() -> Self {
        Self::default()
    }

    /// Settles the probes the completed bank of `tick` (`bank`: every record of the bank,
    /// torn or stale ones included, which are skipped) decides, read at `at_ns`; `seed` is
    /// the table's hash seed (a record whose hash does not match was torn by a write racing
    /// the read).
    pub fn settle(
        &mut self,
        bank: &[ConvRec],
        tick: u32,
        seed: u32,
        at_ns: u64,
    ) -> Vec<ProbeEvent> {
        let recs: Vec<&ConvRec> = bank
            .iter()
            .filter(|r| r.tick == tick && r.fp != 0 && r.fp == rec_key(r).hash(seed))
            .collect();
        let by_key: HashMap<Key, usize> = recs
            .iter()
            .enumerate()
            .map(|(i, r)| (key_of(r), i))
            .collect();
        // Pairs with a TCP conversation the responder accepted (SYN-ACK): a bare RST from
        // its initiator resets its own connection (nmap's RST after a SYN-ACK, a bot's after
        // the victim's SYN-ACK), whatever the
        // ports; the previous tick's pairs count too (the RST may come a tick later).
        let accepted: HashSet<(Addr, Addr)> = recs
            .iter()
            .copied()
            .filter(|r| r.proto == IPPROTO_TCP && r.answer & ANS_SYNACK != 0)
            .map(|r| (r.init, r.resp))
            .collect();
        for r in &recs {
            self.remember(r, at_ns);
        }
        let mut consumed = vec![false; recs.len()];
        let mut out = Vec::new();
        for p in std::mem::take(&mut self.pending) {
            let mut answer = p.answer;
            if let Some(&i) = by_key.get(&key_of(&p)) {
                answer |= recs[i].answer;
                if recs[i].init_seen == 0 {
                    consumed[i] = true;
                }
            }
            if two_way(p.proto) {
                let reverse = (p.resp, p.init, p.init_port, p.proto);
                if let Some(&i) = by_key.get(&reverse)
                    && recs[i].init_port == p.resp_port
                {
                    answer |= ANS_REPLY;
                    consumed[i] = true;
                }
            }
            let p = ConvRec { answer, ..p };
            self.remember(&p, at_ns);
            out.extend(self.event(&p, self.pending_at, at_ns));
        }
        for (i, r) in recs.iter().enumerate() {
            if consumed[i] {
                continue;
            }
            if r.init_seen == 0 {
                // An answer alone: a bare RST is a rejected ACK-class probe, unless it resets
                // a connection its sender opened.
                let pair = (r.resp, r.init);
                let own = accepted.contains(&pair) || self.prev_accepted.contains(&pair);
                if r.cont == 0 && r.answer & ANS_RST_BARE != 0 && !own {
                    out.extend(self.event(r, at_ns, at_ns));
                }
                continue;
            }
            if outcome_of(r.answer).is_some() || r.answer & ANS_EXPIRED != 0 {
                out.extend(self.event(r, at_ns, at_ns));
            } else {
                self.pending.push(**r);
            }
        }
        self.pending_at = at_ns;
        self.prev_accepted = accepted;
        self.forget(at_ns);
        out
    }

    /// Notes what a record tells about its prober: visible when it was answered, tracing
    /// its target when the answer was time exceeded.
    fn remember(&mut self, r: &ConvRec, at_ns: u64) {
        if r.answer != 0 || r.resp_seen > 0 {
            self.visible.insert(r.init, at_ns);
        }
        if r.answer & ANS_EXPIRED != 0 {
            self.tracing.insert((r.init, r.resp), at_ns);
        }
    }

    /// Drops what is older than [`VISIBLE_NS`], and the oldest half when over the cap.
    fn forget(&mut self, now: u64) {
        let fresh = |at: &u64| now.saturating_sub(*at) <= VISIBLE_NS;
        self.visible.retain(|_, at| fresh(at));
        self.tracing.retain(|_, at| fresh(at));
        fn trim<K: Copy + Eq + std::hash::Hash>(m: &mut HashMap<K, u64>) {
            if m.len() > MAX_REMEMBERED {
                let mut ats: Vec<u64> = m.values().copied().collect();
                let (_, median, _) = ats.select_nth_unstable(m.len() / 2);
                let median = *median;
                m.retain(|_, at| *at > median);
            }
        }
        trim(&mut self.visible);
        trim(&mut self.tracing);
    }

    /// The event of a settled record probed at `probe_ns`, if it makes one.
    fn event(&self, r: &ConvRec, probe_ns: u64, now: u64) -> Option<ProbeEvent> {
        let recent = |at: Option<&u64>| at.is_some_and(|at| now.saturating_sub(*at) <= VISIBLE_NS);
        if recent(self.tracing.get(&(r.init, r.resp))) || r.answer & ANS_EXPIRED != 0 {
            return None;
        }
        let outcome = match outcome_of(r.answer) {
            Some(o) => o,
            None => {
                let reply_shaped =
                    r.proto == IPPROTO_UDP && r.init_port < 1024 && r.resp_port >= 1024;
                if reply_shaped {
                    return None;
                }
                if recent(self.visible.get(&r.init)) {
                    Outcome::Unanswered
                } else {
                    Outcome::Unknown
                }
            }
        };
        let (group, port) = match r.proto {
            IPPROTO_TCP => (ProbeGroup::Tcp, r.resp_port),
            IPPROTO_UDP => (ProbeGroup::Udp, r.resp_port),
            IPPROTO_SCTP => (ProbeGroup::Sctp, r.resp_port),
            IPPROTO_ICMP | IPPROTO_ICMPV6 => (ProbeGroup::Icmp, r.resp_port),
            p => (ProbeGroup::IpProto, u16::from(p)),
        };
        Some(ProbeEvent {
            src: bytes(r.init),
            dst: bytes(r.resp),
            group,
            port,
            outcome,
            at_ns: probe_ns,
            ack_class: r.proto == IPPROTO_TCP && r.init_seen == 0 && r.answer & ANS_RST_BARE != 0,
        })
    }

    /// Probes awaiting the next tick (for tests and metrics).
    pub fn pending(&self) -> usize {
        self.pending.len()
    }
}

/// UDP and the other protocols without an answer class of their own: a packet back is the
/// answer.
fn two_way(proto: u8) -> bool {
    !matches!(
        proto,
        IPPROTO_TCP | IPPROTO_ICMP | IPPROTO_ICMPV6 | IPPROTO_SCTP
    )
}

/// Accepted or rejected, from the answer bits; `None` when no answer decides.
fn outcome_of(answer: u8) -> Option<Outcome> {
    if answer & (ANS_SYNACK | ANS_REPLY) != 0 {
        Some(Outcome::Accepted)
    } else if answer & (ANS_RST | ANS_RST_BARE | ANS_UNREACH | ANS_ABORT) != 0 {
        Some(Outcome::Rejected)
    } else {
        None
    }
}

fn rec_key(r: &ConvRec) -> ConvKey {
    ConvKey {
        init: r.init,
        resp: r.resp,
        resp_port: r.resp_port,
        proto: r.proto,
    }
}

/// An address word pair (`Summary::src_words`) as its 16 bytes.
fn bytes(a: Addr) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&a[0].to_ne_bytes());
    b[8..].copy_from_slice(&a[1].to_ne_bytes());
    b
}

#[cfg(test)]
mod tests {
    use agent_common::{
        classify::{IPPROTO_UDP, TCP_SYN},
        classify_eth,
        state::DIR_INGRESS,
    };
    use picket_frames as frames;
    use std::net::Ipv4Addr;

    use super::*;
    use crate::model::HostMaps;

    const A: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 7);
    const B: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 53);

    fn feed(m: &mut HostMaps, f: &[u8]) {
        m.account(&classify_eth(f), f.len() as u64, DIR_INGRESS, 0);
    }

    fn settle(m: &mut HostMaps, t: u64) -> Vec<ProbeEvent> {
        let mut s = m.snapshot(t, t);
        m.read_tick(&mut s, 1.0);
        s.probes
    }

    #[test]
    fn a_udp_answer_one_tick_late_accepts_its_probe_and_is_no_probe() {
        let mut m = HostMaps::new();
        feed(
            &mut m,
            &frames::ipv4(A, B, IPPROTO_UDP, 0, &frames::udp(40000, 53, b"q")),
        );
        assert!(settle(&mut m, 1_000_000_000).is_empty());
        assert_eq!(m.join.pending(), 1);
        // The answer comes in the next tick: to the kernel it opens B → A:40000.
        feed(
            &mut m,
            &frames::ipv4(B, A, IPPROTO_UDP, 0, &frames::udp(53, 40000, b"a")),
        );
        let e = settle(&mut m, 2_000_000_000);
        assert_eq!(e.len(), 1, "{e:?}");
        assert_eq!((e[0].src_ip(), e[0].port), (A.into(), 53));
        assert_eq!(
            (e[0].outcome, e[0].at_ns),
            (Outcome::Accepted, 1_000_000_000)
        );
        assert!(
            settle(&mut m, 3_000_000_000).is_empty(),
            "the answer made no probe"
        );
    }

    #[test]
    fn torn_and_stale_records_are_skipped() {
        let mut m = HostMaps::new();
        let syn = frames::ipv4(
            A,
            B,
            agent_common::classify::IPPROTO_TCP,
            0,
            &frames::tcp(1, 80, TCP_SYN),
        );
        feed(&mut m, &syn);
        for r in m.conv.iter_mut().filter(|r| r.fp != 0) {
            r.resp_port ^= 1; // a write racing the read
        }
        settle(&mut m, 1_000_000_000);
        assert!(settle(&mut m, 2_000_000_000).is_empty());
        assert_eq!(m.join.pending(), 0);
    }
}
