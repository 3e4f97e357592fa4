//! Per-address tallies: the top sources and destinations and the conversations between
//! address pairs. They need only the packets' summaries, so with `--threads` they run beside
//! the detectors, off the thread that reads and decodes.

use std::cmp::Reverse;

use agent_common::Summary;

use super::{
    HashMap,
    flows::{Addr, counted, ip},
    report::{Conversation, Count, Talker, TopTalkers},
    sorted,
};

/// The address and address-pair tables, each capped at [`crate::flows::MAX_TRACKED`] entries.
#[derive(Debug, Default)]
pub struct Talkers {
    sources: HashMap<Addr, Count>,
    destinations: HashMap<Addr, Count>,
    conversations: HashMap<(Addr, Addr), Count>,
    untracked: u64,
}

impl Talkers {
    /// Accounts one classified IP packet of `bytes` wire bytes.
    pub fn observe(&mut self, s: &Summary, bytes: u64) {
        let mut ok = counted(&mut self.sources, s.src, bytes);
        ok &= counted(&mut self.destinations, s.dst, bytes);
        let pair = if s.src <= s.dst {
            (s.src, s.dst)
        } else {
            (s.dst, s.src)
        };
        ok &= counted(&mut self.conversations, pair, bytes);
        if !ok {
            self.untracked += 1;
        }
    }

    /// The talkers section.
    pub fn report(&self) -> TopTalkers {
        let rank = |c: &Count| (Reverse(c.bytes), Reverse(c.packets));
        let talkers = |m: &HashMap<Addr, Count>| {
            sorted(m.iter(), |(a, c)| (rank(c), **a))
                .into_iter()
                .map(|(a, c)| Talker {
                    ip: ip(a),
                    packets: c.packets,
                    bytes: c.bytes,
                })
                .collect()
        };
        TopTalkers {
            sources_distinct: self.sources.len(),
            destinations_distinct: self.destinations.len(),
            conversations_distinct: self.conversations.len(),
            sources: talkers(&self.sources),
            destinations: talkers(&self.destinations),
            conversations: sorted(self.conversations.iter(), |(k, c)| (rank(c), **k))
                .into_iter()
                .map(|((a, b), c)| Conversation {
                    a: ip(a),
                    b: ip(b),
                    packets: c.packets,
                    bytes: c.bytes,
                })
                .collect(),
        }
    }

    /// Packets whose address or address pair could not be tracked (tables full).
    pub fn untracked(&self) -> u64 {
        self.untracked
    }
}
