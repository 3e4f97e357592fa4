//! `--threads`: the detectors and the per-flow work as stages of their own, inline or each
//! on a thread.
//!
//! The first stage (reading, link decoding, classification, protocol mix, timeline) stays on
//! the calling thread. It hands every packet to the detection stage and every IP packet to
//! the flow stage, in order and in batches, so each stage's tables end up exactly as if it
//! had run inline: the report is the same for any number of threads.
//!
//! The detection stage (the detectors, and the talkers, which need no more than it does)
//! takes only the packets' summaries (128 B each), not their bytes. Its detectors replay the
//! kernel's tables, which miss the cache: with two threads it is the one moved off the first
//! thread, and the two end up about evenly loaded. With three or more, the flow stage (TCP and
//! UDP flows, ICMP, application heads) gets a thread too.

use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use agent_common::{ParseError, Summary};
use picket_detect::replay::Detection;

use super::{app::AppStats, flows::FlowStats, talkers::Talkers};

/// Packets per batch handed to a stage.
const BATCH: usize = 1024;
/// Batches in flight per stage (bounds the memory the pipeline holds).
const IN_FLIGHT: usize = 32;

/// The work of one stage: what it is handed per packet, and how packets are batched.
pub trait Work: Send {
    /// One packet, as handed to the stage.
    type Item<'a>;
    /// Packets kept for another thread.
    type Batch: Batch<Self> + Default + Send;
    /// Accounts one packet.
    fn observe(&mut self, item: Self::Item<'_>);
}

/// Packets of a [`Work`] queued for its thread.
pub trait Batch<W: Work + ?Sized> {
    /// Queues one packet.
    fn push(&mut self, item: W::Item<'_>);
    /// Packets queued.
    fn queued(&self) -> usize;
    /// Hands every queued packet to `work`, in order, and empties the batch.
    fn run(&mut self, work: &mut W);
}

/// One stage: on this thread, or on a thread of a `std::thread::scope`.
pub enum Stage<'scope, W: Work> {
    /// The work on this thread.
    Inline(Box<W>),
    /// The work on a thread of its own.
    Piped(Pipe<'scope, W>),
}

/// A stage's thread and the batches going to it.
pub struct Pipe<'scope, W: Work> {
    /// The batch being filled.
    batch: W::Batch,
    /// To the stage's thread.
    to_stage: Option<SyncSender<W::Batch>>,
    /// Emptied batches coming back.
    recycled: Receiver<W::Batch>,
    /// The stage's thread, which returns its work once every batch is through.
    handle: std::thread::ScopedJoinHandle<'scope, W>,
}

impl<'scope, W: Work + 'scope> Stage<'scope, W> {
    /// `work` on a thread of its own in `scope`.
    pub fn piped<'env>(scope: &'scope std::thread::Scope<'scope, 'env>, mut work: W) -> Self {
        let (to_stage, from_first) = sync_channel::<W::Batch>(IN_FLIGHT);
        let (give_back, recycled) = sync_channel::<W::Batch>(IN_FLIGHT + 1);
        let handle = scope.spawn(move || {
            for mut b in from_first {
                b.run(&mut work);
                // The first stage may have finished: then the batch is dropped.
                let _ = give_back.try_send(b);
            }
            work
        });
        Stage::Piped(Pipe {
            batch: W::Batch::default(),
            to_stage: Some(to_stage),
            recycled,
            handle,
        })
    }

    /// Hands one packet to the stage.
    #[inline]
    pub fn observe(&mut self, item: W::Item<'_>) {
        match self {
            Stage::Inline(w) => w.observe(item),
            Stage::Piped(p) => {
                p.batch.push(item);
                if p.batch.queued() >= BATCH {
                    let next = p.recycled.try_recv().unwrap_or_default();
                    let full = std::mem::replace(&mut p.batch, next);
                    if let Some(tx) = &p.to_stage {
                        // A closed channel means the thread died; finish() reports it.
                        let _ = tx.send(full);
                    }
                }
            }
        }
    }

    /// The work once every packet has gone through it.
    pub fn finish(self) -> anyhow::Result<W> {
        match self {
            Stage::Inline(w) => Ok(*w),
            Stage::Piped(mut p) => {
                if let Some(tx) = p.to_stage.take() {
                    let _ = tx.send(p.batch);
                }
                p.handle
                    .join()
                    .map_err(|_| anyhow::anyhow!("an analysis thread failed"))
            }
        }
    }
}

/// The flow stage's tables.
#[derive(Debug, Default)]
pub struct FlowStage {
    /// TCP and UDP flows, ICMP messages.
    pub flows: FlowStats,
    /// Application heads.
    pub app: AppStats,
}

/// A classified IP packet for the flow stage: summary, captured bytes, length on the wire,
/// time.
pub type FlowItem<'a> = (&'a Summary, &'a [u8], u64, u64);

impl Work for FlowStage {
    type Item<'a> = FlowItem<'a>;
    type Batch = FlowBatch;
    fn observe(&mut self, (s, data, wire, ts): FlowItem<'_>) {
        self.flows.observe(s, data, wire, ts);
        self.app.observe(s, data, ts);
    }
}

/// Packets for the flow stage: their summaries and captured bytes, back to back.
#[derive(Default)]
pub struct FlowBatch {
    bytes: Vec<u8>,
    packets: Vec<(Summary, usize, usize, u64, u64)>,
}

impl Batch<FlowStage> for FlowBatch {
    fn push(&mut self, (s, data, wire, ts): FlowItem<'_>) {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(data);
        self.packets.push((*s, start, self.bytes.len(), wire, ts));
    }
    fn queued(&self) -> usize {
        self.packets.len()
    }
    fn run(&mut self, work: &mut FlowStage) {
        for (s, start, end, wire, ts) in &self.packets {
            work.observe((s, &self.bytes[*start..*end], *wire, *ts));
        }
        self.bytes.clear();
        self.packets.clear();
    }
}

/// The detection stage: the detectors on packet time, and the talkers.
pub struct DetectionStage {
    /// The live agent's detectors.
    pub detection: Detection,
    /// Sources, destinations, conversations.
    pub talkers: Talkers,
}

impl DetectionStage {
    fn new(detection: Detection) -> Self {
        DetectionStage {
            detection,
            talkers: Talkers::default(),
        }
    }
}

/// A decoded frame for the detection stage: the classifier's result, length on the wire,
/// time.
pub type DetectItem<'a> = (&'a Result<Summary, ParseError>, u64, u64);

impl Work for DetectionStage {
    type Item<'a> = DetectItem<'a>;
    type Batch = Vec<(Result<Summary, ParseError>, u64, u64)>;
    fn observe(&mut self, (parsed, wire, ts): DetectItem<'_>) {
        self.detection.feed(parsed, wire, ts);
        match parsed {
            Ok(s) if s.is_ip() => self.talkers.observe(s, wire),
            _ => {}
        }
    }
}

impl Batch<DetectionStage> for Vec<(Result<Summary, ParseError>, u64, u64)> {
    fn push(&mut self, (parsed, wire, ts): DetectItem<'_>) {
        Vec::push(self, (*parsed, wire, ts));
    }
    fn queued(&self) -> usize {
        self.len()
    }
    fn run(&mut self, work: &mut DetectionStage) {
        for (parsed, wire, ts) in self.iter() {
            work.observe((parsed, *wire, *ts));
        }
        self.clear();
    }
}

/// Every stage after the first.
pub struct Stages<'scope> {
    /// The detectors on packet time, and the talkers.
    pub detection: Stage<'scope, DetectionStage>,
    /// Flows and application heads.
    pub flows: Stage<'scope, FlowStage>,
}

impl<'scope> Stages<'scope> {
    /// Every stage on this thread.
    pub fn inline(detection: Detection) -> Self {
        Stages {
            detection: Stage::Inline(Box::new(DetectionStage::new(detection))),
            flows: Stage::Inline(Box::default()),
        }
    }

    /// True when a stage runs on a thread of its own (so there are threads to spare).
    pub fn any_piped(&self) -> bool {
        matches!(self.detection, Stage::Piped(_))
    }

    /// The stages for `threads` threads in all (this one included): detection on a thread of
    /// its own from 2, the flow stage too from 3.
    pub fn threaded<'env>(
        scope: &'scope std::thread::Scope<'scope, 'env>,
        detection: Detection,
        threads: usize,
    ) -> Self {
        if threads < 2 {
            return Self::inline(detection);
        }
        Stages {
            detection: Stage::piped(scope, DetectionStage::new(detection)),
            flows: if threads >= 3 {
                Stage::piped(scope, FlowStage::default())
            } else {
                Stage::Inline(Box::default())
            },
        }
    }
}
