//! `--block`: applies the blocking policy (`picket_detect::blocking`) to the kernel. Blocked
//! sources go into the `BLOCKED` map (dry run: with `drop = 0`, so the kernel only counts
//! their packets) and into the `BLOCK_FILTER` bit set, and `CONFIG_BLOCK` is on while any
//! is blocked. The maps belong to the process: when it exits, even by SIGKILL, the XDP
//! program and its maps go with it and nothing stays blocked.

use std::{collections::HashMap as StdHashMap, net::IpAddr};

use agent_common::state::{AddrFilter, AddrKey, Blocked, MAP_BLOCK_FILTER, MAP_BLOCKED};
use anyhow::{Context as _, Result, anyhow};
use aya::{
    Ebpf,
    maps::{Array, HashMap, MapData},
};
use prometheus_client::metrics::{counter::Counter, gauge::Gauge};

use picket_detect::{
    blocking::{BlockAction, BlockEvent, BlockPolicy, Blocklist},
    document::BlockFields,
    episodes::AlertEvent,
};

use crate::{config::Settings, maps::KernelMaps, metrics::Metrics};

/// The blocking metrics, registered by `crate::metrics`.
#[derive(Clone, Debug, Default)]
pub struct BlockCounters {
    /// Sources blocked now.
    pub sources: Gauge,
    /// Packets dropped (dry run: that would have been).
    pub packets: Counter,
    /// Their bytes.
    pub bytes: Counter,
    /// Blocks lifted because the map was full.
    pub evictions: Counter,
}

/// The networks `--block` never blocks: the allowlist, the host's addresses and its
/// default gateways (loopback, link-local, … are added by the policy itself).
pub fn protected_networks(s: &Settings) -> Result<Vec<ipnet::IpNet>> {
    let mut nets = s.allow.clone();
    let own = crate::system::host_addresses()?;
    nets.extend(
        own.into_iter()
            .chain(crate::system::default_gateways())
            .map(ipnet::IpNet::from),
    );
    Ok(nets)
}

/// The blocker, with `--block` or `--block-dry-run`.
pub fn start(
    s: &Settings,
    hook: crate::loader::Hook,
    ebpf: &mut Ebpf,
    metrics: &Metrics,
) -> Result<Option<Blocker>> {
    if !s.block.enabled && !s.block.dry_run {
        return Ok(None);
    }
    if hook != crate::loader::Hook::Xdp {
        anyhow::bail!("--block and --block-dry-run need --hook xdp (XDP drops the packets)");
    }
    let policy = BlockPolicy {
        rules: s.block.rules.clone(),
        ttl: s.block.ttl,
        max_sources: s.block.max_sources as usize,
        protected: protected_networks(s)?,
    };
    let b = Blocker::new(ebpf, policy, s.block.dry_run, metrics.blocking())?;
    tracing::info!(
        "blocking{} the sources of {} episodes (ttl {})",
        if s.block.dry_run { " (dry run)" } else { "" },
        s.block
            .rules
            .iter()
            .map(|r| r.name())
            .collect::<Vec<_>>()
            .join(", "),
        humantime::format_duration(s.block.ttl)
    );
    Ok(Some(b))
}

/// The blocked sources, in the kernel and in the policy.
pub struct Blocker {
    list: Blocklist,
    dry_run: bool,
    map: HashMap<MapData, AddrKey, Blocked>,
    filter: Array<MapData, AddrFilter>,
    /// The kernel counters of each blocked source at the last reading.
    seen: StdHashMap<IpAddr, Blocked>,
    counters: BlockCounters,
}

impl Blocker {
    /// Takes the block maps out of the loaded object.
    pub fn new(
        ebpf: &mut Ebpf,
        policy: BlockPolicy,
        dry_run: bool,
        counters: BlockCounters,
    ) -> Result<Blocker> {
        let mut take = |name: &str| {
            ebpf.take_map(name)
                .ok_or_else(|| anyhow!("map {name} missing"))
        };
        let map: HashMap<MapData, AddrKey, Blocked> = take(MAP_BLOCKED)?.try_into()?;
        let filter: Array<MapData, AddrFilter> = take(MAP_BLOCK_FILTER)?.try_into()?;
        Ok(Blocker {
            list: Blocklist::new(policy),
            dry_run,
            map,
            filter,
            seen: StdHashMap::new(),
            counters,
        })
    }

    /// What every block event line says of the configuration.
    pub fn fields(&self, s: &Settings) -> BlockFields {
        BlockFields {
            dry_run: self.dry_run,
            ttl_s: s.block.ttl.as_secs_f64(),
        }
    }

    /// Whether nothing is dropped.
    pub fn dry_run(&self) -> bool {
        self.dry_run
    }

    /// Applies a reloaded allowlist (SIGHUP): lifts the blocks it now covers and returns
    /// those changes. If the host's addresses cannot be read, the protection stays as it was.
    pub fn reload(&mut self, maps: &mut KernelMaps, new: &Settings) -> Result<Vec<BlockEvent>> {
        let protected = match protected_networks(new) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!("block: {e:#}; the allowlist change does not apply to blocking");
                return Ok(Vec::new());
            }
        };
        let lifted = self.list.set_protected(protected, crate::maps::wall_ns());
        self.apply(maps, &lifted)?;
        Ok(lifted)
    }

    /// Applies this poll's alert events; returns the block changes to report.
    pub fn step(
        &mut self,
        maps: &mut KernelMaps,
        events: &[AlertEvent],
        now_ns: u64,
    ) -> Result<Vec<BlockEvent>> {
        self.count();
        let changes = self.list.step(events, now_ns);
        self.apply(maps, &changes)?;
        Ok(changes)
    }

    /// Writes `changes` to the kernel maps.
    pub fn apply(&mut self, maps: &mut KernelMaps, changes: &[BlockEvent]) -> Result<()> {
        if changes.is_empty() {
            return Ok(());
        }
        let mut filter = AddrFilter::EMPTY;
        for ip in self.list.blocked() {
            filter.insert(&AddrKey::from_ip(ip).addr);
        }
        // Removals first, so a full map has room; the filter is set before the map entries
        // it lets through, and shrunk after they are gone: never a lookup that should hit
        // and misses.
        for c in changes.iter().filter(|c| c.action == BlockAction::Unblock) {
            self.count_one(c.ip);
            self.seen.remove(&c.ip);
            let _ = self.map.remove(&AddrKey::from_ip(c.ip));
        }
        self.filter
            .set(0, filter, 0)
            .context("cannot write the BLOCK_FILTER map")?;
        for c in changes.iter().filter(|c| c.action == BlockAction::Block) {
            let v = Blocked {
                drop: u64::from(!self.dry_run),
                packets: 0,
                bytes: 0,
            };
            self.map
                .insert(AddrKey::from_ip(c.ip), v, 0)
                .with_context(|| format!("cannot block {}", c.ip))?;
            self.seen.insert(c.ip, v);
        }
        let n = self.list.blocked().count();
        self.counters
            .sources
            .set(i64::try_from(n).unwrap_or(i64::MAX));
        let evicted = self.list.evictions();
        let counted = self.counters.evictions.get();
        self.counters
            .evictions
            .inc_by(evicted.saturating_sub(counted));
        maps.set_block(n > 0)
    }

    /// Adds what the kernel dropped since the last reading to the counters.
    fn count(&mut self) {
        let ips: Vec<IpAddr> = self.seen.keys().copied().collect();
        for ip in ips {
            self.count_one(ip);
        }
    }

    fn count_one(&mut self, ip: IpAddr) {
        let Ok(now) = self.map.get(&AddrKey::from_ip(ip), 0) else {
            return;
        };
        let last = self.seen.entry(ip).or_default();
        self.counters
            .packets
            .inc_by(now.packets.saturating_sub(last.packets));
        self.counters
            .bytes
            .inc_by(now.bytes.saturating_sub(last.bytes));
        *last = now;
    }
}
