//! The blocking policy (`--block`): which alert episodes block their source, what is never
//! blocked, how long a block lasts and which one goes when the map is full. Pure: the agent
//! applies the [`BlockEvent`]s to the kernel's block map.
//!
//! A source is blocked at the start of a source-scoped episode of one of the chosen rules
//! and stays blocked while any such episode of it is open, then for `ttl` after the last one
//! ended. Destination-scoped episodes (floods from spoofed sources) never block: their
//! sources are forged, and blocking them would block whoever was impersonated.

use std::{
    collections::{BTreeSet, HashMap},
    net::IpAddr,
    time::Duration,
};

use ipnet::IpNet;
use serde::Serialize;

use crate::{
    detector::{Rule, Scope},
    episodes::{AlertEvent, Phase},
};

/// What the policy is given.
#[derive(Clone, Debug)]
pub struct BlockPolicy {
    /// Rules whose episodes block.
    pub rules: Vec<Rule>,
    /// How long a block outlives the source's last episode.
    pub ttl: Duration,
    /// Blocks held at once at most.
    pub max_sources: usize,
    /// Never blocked: the allowlist, the host's addresses and gateways (as host networks).
    pub protected: Vec<IpNet>,
}

/// Networks never blocked whatever the host: loopback, link-local, unspecified, multicast
/// and broadcast.
pub fn always_protected() -> Vec<IpNet> {
    [
        "127.0.0.0/8",
        "169.254.0.0/16",
        "0.0.0.0/32",
        "224.0.0.0/4",
        "255.255.255.255/32",
        "::1/128",
        "::/128",
        "fe80::/10",
        "ff00::/8",
        "::ffff:127.0.0.0/104",
    ]
    .iter()
    .map(|n| n.parse().expect("a network"))
    .collect()
}

/// `event.action` of a block event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BlockAction {
    /// The source's packets are dropped from now on.
    Block,
    /// No longer.
    Unblock,
}

/// `event.reason` of a block event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BlockReason {
    /// An episode of a blocking rule started.
    Episode,
    /// The ttl after its last episode ran out.
    Expired,
    /// The map was full and this block expired first.
    Evicted,
}

/// One change to the set of blocked sources.
#[derive(Clone, Debug, PartialEq)]
pub struct BlockEvent {
    /// Block or unblock.
    pub action: BlockAction,
    /// Why.
    pub reason: BlockReason,
    /// The source.
    pub ip: IpAddr,
    /// The rule of the episode that blocked it.
    pub rule: Rule,
    /// That episode.
    pub episode: u64,
    /// Wall time of the change, ns since the Unix epoch.
    pub at_ns: u64,
}

#[derive(Clone, Debug)]
struct Entry {
    rule: Rule,
    episode: u64,
    open: BTreeSet<u64>,
    blocked_ns: u64,
    /// None while an episode is open.
    expires_ns: Option<u64>,
}

/// The blocked sources.
#[derive(Debug)]
pub struct Blocklist {
    policy: BlockPolicy,
    entries: HashMap<IpAddr, Entry>,
    evictions: u64,
}

impl Blocklist {
    /// Nothing blocked.
    pub fn new(policy: BlockPolicy) -> Blocklist {
        Blocklist {
            policy,
            entries: HashMap::new(),
            evictions: 0,
        }
    }

    /// Whether `ip` is one the policy never blocks.
    pub fn protects(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        self.policy
            .protected
            .iter()
            .chain(always_protected().iter())
            .any(|n| n.contains(&ip))
    }

    /// The blocked sources.
    pub fn blocked(&self) -> impl Iterator<Item = IpAddr> + '_ {
        self.entries.keys().copied()
    }

    /// Blocks lifted because the map was full.
    pub fn evictions(&self) -> u64 {
        self.evictions
    }

    /// Replaces the allowlist part of the protected networks (SIGHUP) and lifts the blocks
    /// it now protects.
    pub fn set_protected(&mut self, protected: Vec<IpNet>, now_ns: u64) -> Vec<BlockEvent> {
        self.policy.protected = protected;
        let lifted: Vec<IpAddr> = self
            .entries
            .keys()
            .copied()
            .filter(|ip| self.protects(*ip))
            .collect();
        lifted
            .into_iter()
            .filter_map(|ip| self.unblock(ip, BlockReason::Expired, now_ns))
            .collect()
    }

    fn unblock(&mut self, ip: IpAddr, reason: BlockReason, at_ns: u64) -> Option<BlockEvent> {
        let e = self.entries.remove(&ip)?;
        Some(BlockEvent {
            action: BlockAction::Unblock,
            reason,
            ip,
            rule: e.rule,
            episode: e.episode,
            at_ns,
        })
    }

    /// The block changes for one poll's alert events, at wall time `now_ns`.
    pub fn step(&mut self, events: &[AlertEvent], now_ns: u64) -> Vec<BlockEvent> {
        let mut out = Vec::new();
        let ttl_ns = u64::try_from(self.policy.ttl.as_nanos()).unwrap_or(u64::MAX);
        for e in events {
            let f = &e.finding;
            let Some(ip) = f.source.filter(|_| f.scope == Scope::Source) else {
                continue;
            };
            if !self.policy.rules.contains(&f.rule) {
                continue;
            }
            match e.phase {
                Phase::Start | Phase::Update => {
                    if let Some(entry) = self.entries.get_mut(&ip) {
                        entry.open.insert(e.episode);
                        entry.expires_ns = None;
                        continue;
                    }
                    if self.protects(ip) {
                        continue;
                    }
                    if self.entries.len() >= self.policy.max_sources.max(1) {
                        // The block that would end first goes: expiring ones by expiry, then
                        // (all held by open episodes) the oldest.
                        let victim = self
                            .entries
                            .iter()
                            .min_by_key(|(_, v)| (v.expires_ns.unwrap_or(u64::MAX), v.blocked_ns))
                            .map(|(ip, _)| *ip);
                        if let Some(ev) =
                            victim.and_then(|v| self.unblock(v, BlockReason::Evicted, now_ns))
                        {
                            self.evictions += 1;
                            out.push(ev);
                        }
                    }
                    self.entries.insert(
                        ip,
                        Entry {
                            rule: f.rule,
                            episode: e.episode,
                            open: BTreeSet::from([e.episode]),
                            blocked_ns: now_ns,
                            expires_ns: None,
                        },
                    );
                    out.push(BlockEvent {
                        action: BlockAction::Block,
                        reason: BlockReason::Episode,
                        ip,
                        rule: f.rule,
                        episode: e.episode,
                        at_ns: now_ns,
                    });
                }
                Phase::End => {
                    if let Some(entry) = self.entries.get_mut(&ip)
                        && entry.open.remove(&e.episode)
                        && entry.open.is_empty()
                    {
                        entry.expires_ns = Some(e.at_ns.saturating_add(ttl_ns));
                    }
                }
            }
        }
        let expired: Vec<IpAddr> = self
            .entries
            .iter()
            .filter(|(_, v)| v.expires_ns.is_some_and(|t| t <= now_ns))
            .map(|(ip, _)| *ip)
            .collect();
        out.extend(
            expired
                .into_iter()
                .filter_map(|ip| self.unblock(ip, BlockReason::Expired, now_ns)),
        );
        out
    }

    /// When the block of `ip` expires (None: held by an open episode, or not blocked).
    pub fn expires_ns(&self, ip: IpAddr) -> Option<u64> {
        self.entries.get(&ip).and_then(|e| e.expires_ns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detector::{Details, Finding, Unit};

    const S: u64 = 1_000_000_000;

    fn ev(
        phase: Phase,
        episode: u64,
        rule: Rule,
        scope: Scope,
        src: &str,
        at_s: u64,
    ) -> AlertEvent {
        AlertEvent {
            phase,
            episode,
            finding: Finding {
                rule,
                scope,
                source: (scope == Scope::Source).then(|| src.parse().unwrap()),
                destination: Some("10.0.0.2".parse().unwrap()),
                value: 100.0,
                threshold: 30.0,
                unit: Unit::Ports,
                window_s: 10.0,
                estimated: false,
                details: Details::default(),
            },
            peak: 100.0,
            started_ns: 0,
            at_ns: at_s * S,
        }
    }

    fn policy(max: usize) -> BlockPolicy {
        BlockPolicy {
            rules: vec![Rule::PortScan, Rule::HostSweep, Rule::SynFlood],
            ttl: Duration::from_secs(60),
            max_sources: max,
            protected: vec![
                "10.9.0.0/16".parse().unwrap(),
                "10.0.0.1/32".parse().unwrap(),
            ],
        }
    }

    /// A source-scoped event of 10.1.0.5.
    fn of5(phase: Phase, episode: u64, rule: Rule, at_s: u64) -> AlertEvent {
        ev(phase, episode, rule, Scope::Source, "10.1.0.5", at_s)
    }

    #[test]
    fn blocks_while_open_then_for_the_ttl() {
        let mut b = Blocklist::new(policy(16));
        let ip: IpAddr = "10.1.0.5".parse().unwrap();
        let out = b.step(&[of5(Phase::Start, 1, Rule::PortScan, 0)], 0);
        assert_eq!(out.len(), 1);
        assert_eq!(
            (out[0].action, out[0].reason, out[0].ip),
            (BlockAction::Block, BlockReason::Episode, ip)
        );
        // A second episode of the same source: no second block.
        assert!(
            b.step(&[of5(Phase::Start, 2, Rule::HostSweep, 1)], S)
                .is_empty()
        );
        // One of two ends: still held.
        assert!(
            b.step(&[of5(Phase::End, 1, Rule::PortScan, 10)], 10 * S)
                .is_empty()
        );
        assert_eq!(b.expires_ns(ip), None);
        // The last ends at 20 s: expires at 80 s.
        assert!(
            b.step(&[of5(Phase::End, 2, Rule::HostSweep, 20)], 20 * S)
                .is_empty()
        );
        assert_eq!(b.expires_ns(ip), Some(80 * S));
        assert!(b.step(&[], 79 * S).is_empty());
        let out = b.step(&[], 80 * S);
        assert_eq!(
            (out[0].action, out[0].reason),
            (BlockAction::Unblock, BlockReason::Expired)
        );
        assert_eq!(b.blocked().count(), 0);
    }

    #[test]
    fn a_new_episode_during_the_ttl_holds_the_block_again() {
        let mut b = Blocklist::new(policy(16));
        b.step(&[of5(Phase::Start, 1, Rule::PortScan, 0)], 0);
        b.step(&[of5(Phase::End, 1, Rule::PortScan, 5)], 5 * S);
        assert!(
            b.step(&[of5(Phase::Start, 3, Rule::SynFlood, 30)], 30 * S)
                .is_empty()
        );
        assert!(b.step(&[], 1000 * S).is_empty());
    }

    #[test]
    fn never_blocked() {
        let mut b = Blocklist::new(policy(16));
        let cases = [
            ev(
                Phase::Start,
                1,
                Rule::PortScan,
                Scope::Source,
                "10.9.3.4",
                0,
            ), // protected net
            ev(
                Phase::Start,
                2,
                Rule::PortScan,
                Scope::Source,
                "10.0.0.1",
                0,
            ), // host/gateway
            ev(
                Phase::Start,
                3,
                Rule::PortScan,
                Scope::Source,
                "127.0.0.1",
                0,
            ),
            ev(
                Phase::Start,
                4,
                Rule::PortScan,
                Scope::Source,
                "169.254.1.1",
                0,
            ),
            ev(Phase::Start, 5, Rule::PortScan, Scope::Source, "fe80::1", 0),
            ev(Phase::Start, 6, Rule::PortScan, Scope::Source, "::1", 0),
            ev(
                Phase::Start,
                7,
                Rule::PortScan,
                Scope::Source,
                "::ffff:10.9.0.1",
                0,
            ),
            ev(Phase::Start, 8, Rule::SynFlood, Scope::Destination, "", 0), // spoofed
            ev(
                Phase::Start,
                9,
                Rule::UdpFlood,
                Scope::Source,
                "10.1.0.7",
                0,
            ), // rule not chosen
        ];
        assert!(
            b.step(&cases, 0).is_empty(),
            "{:?}",
            b.blocked().collect::<Vec<_>>()
        );
        // An allowlist change lifts a block.
        b.step(
            &[ev(
                Phase::Start,
                10,
                Rule::PortScan,
                Scope::Source,
                "10.2.0.1",
                0,
            )],
            0,
        );
        let lifted = b.set_protected(vec!["10.2.0.0/16".parse().unwrap()], S);
        assert_eq!(lifted.len(), 1);
        assert_eq!(lifted[0].action, BlockAction::Unblock);
    }

    #[test]
    fn a_full_map_evicts_the_block_that_expires_first() {
        let mut b = Blocklist::new(policy(2));
        b.step(
            &[ev(
                Phase::Start,
                1,
                Rule::PortScan,
                Scope::Source,
                "10.1.0.1",
                0,
            )],
            0,
        );
        b.step(
            &[ev(
                Phase::Start,
                2,
                Rule::PortScan,
                Scope::Source,
                "10.1.0.2",
                0,
            )],
            S,
        );
        // .2's episode ends (expires at 70 s); .1 is held open.
        b.step(
            &[ev(
                Phase::End,
                2,
                Rule::PortScan,
                Scope::Source,
                "10.1.0.2",
                10,
            )],
            10 * S,
        );
        let out = b.step(
            &[ev(
                Phase::Start,
                3,
                Rule::PortScan,
                Scope::Source,
                "10.1.0.3",
                11,
            )],
            11 * S,
        );
        assert_eq!(out.len(), 2);
        assert_eq!(
            (out[0].action, out[0].reason),
            (BlockAction::Unblock, BlockReason::Evicted)
        );
        assert_eq!(out[0].ip.to_string(), "10.1.0.2");
        assert_eq!(out[1].ip.to_string(), "10.1.0.3");
        // All open: the oldest goes.
        let out = b.step(
            &[ev(
                Phase::Start,
                4,
                Rule::PortScan,
                Scope::Source,
                "10.1.0.4",
                12,
            )],
            12 * S,
        );
        assert_eq!(out[0].ip.to_string(), "10.1.0.1");
        assert_eq!(b.evictions(), 2);
        assert_eq!(b.blocked().count(), 2);
    }
}
