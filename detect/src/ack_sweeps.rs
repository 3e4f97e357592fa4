//! ACK-class sweeps (`nmap -sn -PA`, `-sA` across hosts), which the outcome join sees only
//! in part. An ACK opens nothing: the vantage cannot tell it from a segment of a connection
//! that began before it looked, so the join knows such a probe only by the bare RST a live
//! host answers it with ([`ProbeEvent::ack_class`], rejected). Hosts that are down or
//! filtered stay silent, and a sweep of a sparsely used network would stay under the host
//! bar on its resets alone.
//!
//! The estimate adds the silent ones back. A source is a candidate once its ACK-class
//! probes drew bare RSTs from [`MIN_RESET_HOSTS`] distinct hosts within the window: an
//! ordinary client is reset by that many hosts only when its connections' state was lost
//! (a NAT table flushed, a failover), and then its segments are answered, by RSTs. For a
//! candidate, each tick's small ACK-class segments (at most 128 bytes: bare ACKs, FINs) in
//! excess of all the TCP that came back to it are *silent probes*, each taken as one more
//! host. `reset hosts + silent probes` is the estimate the host bar is held against; the
//! finding says it is estimated.
//!
//! *Trade-offs:* a sweep finding fewer than [`MIN_RESET_HOSTS`] live hosts stays unseen; a
//! scanner repeating ACKs to one filtered host among its live ones inflates the estimate.
//! Memory: at most [`MAX_CANDIDATES`] sources, each with at most [`MAX_RESET_HOSTS`] hosts
//! and one count per tick of the window.

use std::collections::VecDeque;

use crate::HashMap;

use agent_common::slots::{DstSlot, SrcSlot};

use crate::probes::ProbeEvent;

/// Distinct hosts resetting a source's ACK-class probes before its silent ones count.
pub const MIN_RESET_HOSTS: usize = 8;
/// Most candidate sources tracked (the oldest is dropped past it).
pub const MAX_CANDIDATES: usize = 4096;
/// Most resetting hosts kept per source.
pub const MAX_RESET_HOSTS: usize = 1024;

type Addr = [u8; 16];

#[derive(Clone, Debug, Default)]
struct Tally {
    /// Hosts that reset the source's ACK-class probes, and when.
    resets: HashMap<Addr, u64>,
    /// Silent ACK-class segments per tick, and when.
    silent: VecDeque<(u64, u32)>,
    /// Port of the latest reset probe.
    port: u16,
    last_ns: u64,
}

/// One source's ACK-class sweep over the window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AckSweep {
    /// The prober.
    pub src: Addr,
    /// Distinct hosts whose bare RSTs answered its probes.
    pub reset_hosts: u32,
    /// Its small ACK-class segments nothing answered.
    pub silent: u32,
    /// The port probed (of the latest reset probe).
    pub port: u16,
}

impl AckSweep {
    /// Estimated hosts probed.
    pub fn hosts(&self) -> u32 {
        self.reset_hosts.saturating_add(self.silent)
    }
}

/// ACK-class probing per source over the fast window.
#[derive(Clone, Debug, Default)]
pub struct AckSweeps {
    tallies: HashMap<Addr, Tally>,
}

impl AckSweeps {
    /// Empty.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes one reading: its settled probes, and each source's sent and received counts of
    /// the tick (`sent`; `recv` by address); forgets what is older than `window_ns`.
    pub fn observe<'a>(
        &mut self,
        probes: &[ProbeEvent],
        sent: impl IntoIterator<Item = &'a SrcSlot>,
        recv: &HashMap<[u64; 2], &DstSlot>,
        now_ns: u64,
        window_ns: u64,
    ) {
        for p in probes.iter().filter(|p| p.ack_class) {
            if !self.tallies.contains_key(&p.src) && self.tallies.len() >= MAX_CANDIDATES {
                self.drop_oldest();
            }
            let t = self.tallies.entry(p.src).or_default();
            if t.resets.len() < MAX_RESET_HOSTS || t.resets.contains_key(&p.dst) {
                t.resets.insert(p.dst, p.at_ns);
            }
            t.port = p.port;
            t.last_ns = now_ns;
        }
        for s in sent {
            let Some(t) = self.tallies.get_mut(&s.head.addr_bytes()) else {
                continue;
            };
            let back = recv
                .get(&s.head.addr)
                .map_or(0, |d| d.tcp_p.saturating_add(d.syn_p));
            let silent = u32::from(s.tcp_small).saturating_sub(back);
            if silent > 0 {
                t.silent.push_back((now_ns, silent));
            }
        }
        let old = |at: u64| now_ns.saturating_sub(at) > window_ns;
        self.tallies.retain(|_, t| {
            t.resets.retain(|_, at| !old(*at));
            while t.silent.front().is_some_and(|(at, _)| old(*at)) {
                t.silent.pop_front();
            }
            !t.resets.is_empty()
        });
    }

    /// The sources whose resets make them candidates, with their estimates.
    pub fn sweeps(&self) -> Vec<AckSweep> {
        let mut out: Vec<AckSweep> = self
            .tallies
            .iter()
            .filter(|(_, t)| t.resets.len() >= MIN_RESET_HOSTS)
            .map(|(src, t)| AckSweep {
                src: *src,
                reset_hosts: t.resets.len() as u32,
                silent: t.silent.iter().map(|(_, n)| *n).sum(),
                port: t.port,
            })
            .collect();
        out.sort_by_key(|s| s.src);
        out
    }

    fn drop_oldest(&mut self) {
        if let Some(k) = self
            .tallies
            .iter()
            .min_by_key(|(_, t)| t.last_ns)
            .map(|(k, _)| *k)
        {
            self.tallies.remove(&k);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probes::{Outcome, ProbeGroup};

    const SEC: u64 = 1_000_000_000;

    fn addr(last: u8) -> Addr {
        let mut a = [0u8; 16];
        a[10] = 0xff;
        a[11] = 0xff;
        a[12..].copy_from_slice(&[198, 51, 100, last]);
        a
    }

    fn words(a: Addr) -> [u64; 2] {
        agent_common::slots::bytes_to_words(&a)
    }

    fn reset(src: Addr, dst: Addr) -> ProbeEvent {
        ProbeEvent {
            src,
            dst,
            group: ProbeGroup::Tcp,
            port: 80,
            outcome: Outcome::Rejected,
            at_ns: SEC,
            ack_class: true,
        }
    }

    fn sent(src: Addr, small: u16) -> SrcSlot {
        let mut s = SrcSlot::default();
        s.head.addr = words(src);
        s.tcp_small = small;
        s
    }

    #[test]
    fn a_sparse_ack_sweep_counts_its_silent_probes() {
        let scanner = addr(9);
        let probes: Vec<ProbeEvent> = (1..=40).map(|h| reset(scanner, addr(h))).collect();
        let mut back = DstSlot::default();
        back.head.addr = words(scanner);
        back.tcp_p = 40;
        let recv: HashMap<_, _> = [(back.head.addr, &back)].into_iter().collect();
        let mut a = AckSweeps::new();
        a.observe(&probes, &[sent(scanner, 254)], &recv, SEC, 10 * SEC);
        let s = a.sweeps();
        assert_eq!(s.len(), 1);
        assert_eq!(
            (s[0].reset_hosts, s[0].silent, s[0].hosts()),
            (40, 214, 254)
        );
    }

    #[test]
    fn a_client_answered_by_its_peers_has_no_silent_probes() {
        let client = addr(7);
        let probes: Vec<ProbeEvent> = (1..=10).map(|h| reset(client, addr(h))).collect();
        let mut back = DstSlot::default();
        back.head.addr = words(client);
        back.tcp_p = 5000;
        let recv: HashMap<_, _> = [(back.head.addr, &back)].into_iter().collect();
        let mut a = AckSweeps::new();
        a.observe(&probes, &[sent(client, 3000)], &recv, SEC, 10 * SEC);
        assert_eq!(a.sweeps()[0].silent, 0);
    }

    #[test]
    fn few_resets_make_no_candidate_and_old_ones_expire() {
        let scanner = addr(9);
        let probes: Vec<ProbeEvent> = (1..=7).map(|h| reset(scanner, addr(h))).collect();
        let mut a = AckSweeps::new();
        a.observe(
            &probes,
            &[sent(scanner, 254)],
            &HashMap::default(),
            SEC,
            10 * SEC,
        );
        assert!(a.sweeps().is_empty());
        a.observe(
            &[reset(scanner, addr(8))],
            [],
            &HashMap::default(),
            SEC,
            10 * SEC,
        );
        assert_eq!(a.sweeps().len(), 1);
        a.observe(&[], [], &HashMap::default(), 30 * SEC, 10 * SEC);
        assert!(a.sweeps().is_empty());
    }
}
