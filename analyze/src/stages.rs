//! `--threads`: the per-flow work (flows, talkers, application heads) as a second stage,
//! inline or on its own thread.
//!
//! The first stage (reading, link decoding, classification, protocol mix, timeline and the
//! detectors, which must see packets in time order) stays on the calling thread; the second
//! stage gets the classified packets in the same order, in batches, so its tables end up
//! exactly as if it had run inline: the report is the same for any number of threads.

use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use agent_common::Summary;

use super::{app::AppStats, flows::FlowStats};

/// Packets per batch handed to the second stage.
const BATCH: usize = 1024;
/// Batches in flight (bounds the memory the pipeline holds).
const IN_FLIGHT: usize = 4;

/// The second stage's tables.
#[derive(Debug, Default)]
pub struct FlowStage {
    /// Flows and talkers.
    pub flows: FlowStats,
    /// Application heads.
    pub app: AppStats,
}

impl FlowStage {
    fn observe(&mut self, s: &Summary, data: &[u8], wire: u64, ts: u64) {
        self.flows.observe(s, data, wire, ts);
        self.app.observe(s, data, ts);
    }
}

/// Classified packets: their summaries and captured bytes, back to back.
#[derive(Default)]
pub struct Batch {
    bytes: Vec<u8>,
    packets: Vec<(Summary, usize, usize, u64, u64)>,
}

/// Where the first stage sends classified IP packets.
pub enum Sink<'scope> {
    /// The second stage on this thread.
    Inline(Box<FlowStage>),
    /// The second stage on a thread of a `std::thread::scope`.
    Piped {
        /// The batch being filled.
        batch: Batch,
        /// To the second stage.
        to_stage: Option<SyncSender<Batch>>,
        /// Emptied batches coming back.
        recycled: Receiver<Batch>,
        /// The second stage, which returns its tables.
        stage: std::thread::ScopedJoinHandle<'scope, FlowStage>,
    },
}

impl<'scope> Sink<'scope> {
    /// The second stage on its own thread in `scope`.
    pub fn piped<'env>(scope: &'scope std::thread::Scope<'scope, 'env>) -> Self {
        let (to_stage, from_first) = sync_channel::<Batch>(IN_FLIGHT);
        let (give_back, recycled) = sync_channel::<Batch>(IN_FLIGHT + 1);
        let stage = scope.spawn(move || {
            let mut st = FlowStage::default();
            for mut b in from_first {
                for (s, start, end, wire, ts) in &b.packets {
                    st.observe(s, &b.bytes[*start..*end], *wire, *ts);
                }
                b.bytes.clear();
                b.packets.clear();
                // The first stage may have finished: then the batch is dropped.
                let _ = give_back.try_send(b);
            }
            st
        });
        Sink::Piped {
            batch: Batch::default(),
            to_stage: Some(to_stage),
            recycled,
            stage,
        }
    }

    /// Hands one classified IP packet to the second stage.
    pub fn observe(&mut self, s: &Summary, data: &[u8], wire: u64, ts: u64) {
        match self {
            Sink::Inline(st) => st.observe(s, data, wire, ts),
            Sink::Piped {
                batch,
                to_stage,
                recycled,
                ..
            } => {
                let start = batch.bytes.len();
                batch.bytes.extend_from_slice(data);
                batch.packets.push((*s, start, batch.bytes.len(), wire, ts));
                if batch.packets.len() >= BATCH {
                    let next = recycled.try_recv().unwrap_or_default();
                    let full = std::mem::replace(batch, next);
                    if let Some(tx) = to_stage {
                        // A closed channel means the stage died; finish() reports it.
                        let _ = tx.send(full);
                    }
                }
            }
        }
    }

    /// The second stage's tables once every packet has gone through.
    pub fn finish(self) -> anyhow::Result<FlowStage> {
        match self {
            Sink::Inline(st) => Ok(*st),
            Sink::Piped {
                batch,
                mut to_stage,
                stage,
                ..
            } => {
                if let Some(tx) = to_stage.take() {
                    let _ = tx.send(batch);
                }
                stage
                    .join()
                    .map_err(|_| anyhow::anyhow!("the flow analysis thread failed"))
            }
        }
    }
}
