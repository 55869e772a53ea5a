//! The batcher: one buffer per agent, objects at least one batch window apart, ack after
//! commit.
//!
//! Every JetStream publish the agent accepts, from any connection and for any stream,
//! joins one buffer owned by a single writer task (the "one writer loop" of slatedb's
//! `batch_write.rs`). The batch window is the spacing between the agent's objects, not
//! a wait (BRIEF invariant 5; the rule is the pure [`FlushPolicy`]):
//!
//! - a publish that reaches an agent which has not started a flush for a whole window
//!   is sealed at once, together with the publishes already queued behind it (up to the
//!   size cap), so an idle agent acks in one PUT plus one commit;
//! - otherwise it joins the buffer, which is sealed one window after the previous flush
//!   started, or as soon as its encoded size reaches the size cap (4 MiB).
//!
//! A flush *starts* when its sealed object is handed to its upload task, once a flush
//! slot is free. The spacing is between starts — each start is one object, which is what
//! the window bounds — so an upload still running or a commit still queued behind an
//! earlier one does not delay the next flush. The consequence: after a quiet window the
//! first publish goes alone and the rest of a burst goes one window later (two objects
//! for the burst), and a publisher that awaits each PubAck before the next publish gets
//! its first ack after one PUT plus one commit and the next ones about one window apart.
//! Each sealed batch then goes through a flush:
//!
//! 1. PUT the object under a fresh time-ordered key (uploads of several flushes may run
//!    at once);
//! 2. one `CommitBatch` to the control plane, which assigns the sequences. Commits run
//!    strictly in flush order, so one agent's publishes keep their order per stream
//!    across flushes. A commit that fails transiently is retried with the same batch
//!    id (the control plane answers a replay with the stored result, never appending
//!    twice) until the flush deadline;
//! 3. only then each publisher gets its answer: the sequence, the duplicate's original
//!    sequence, or the JetStream error the control plane gave. Flushes answer in flush
//!    order (each after the previous one answered), so per stream the answers come in
//!    the order the publishes were queued.
//!
//! A publish the batcher refuses itself (larger than the buffer) can be queued as a
//! [`Refusal`] ([`Batcher::refuse`]): it takes its place in the buffer without a record,
//! is answered there, and withdraws its fast batch's records queued after it. A buffer
//! holding only refusals writes no object and does not count as a flush start.
//!
//! An atomic batch (ADR-50) arrives as one group ([`Batcher::submit_group`]) and is
//! pushed whole, so its records sit contiguously in one chunk of one flush and the
//! control plane can store them all or none.
//!
//! Nothing is ever acknowledged before step 2 succeeded (invariant 1). Flushes other
//! than size-triggered ones start at least one window apart, so over any span `T` an
//! agent writes at most `T / window + 1` objects plus one per 4 MiB (invariant 5).
//! Buffered bytes are bounded by a semaphore whose permits are bytes: a publisher that
//! finds the buffer full waits in [`Batcher::submit`], which back-pressures only its own
//! connection. A flush that cannot finish within the deadline answers its publishers
//! with a 503-style JetStream error, releases its bytes, and the agent carries on; an
//! object uploaded but never committed stays in the bucket for the jobs role to
//! collect. Each step's latency is a histogram in [`GatewayMetrics`].

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use infinistream_objstore::Bucket;
use infinistream_proto::v1;
use infinistream_protocol::jsapi::ApiError;
use infinistream_protocol::jsapi::msg::PubAck;
use infinistream_segment::{BatchBuilder, BuildOptions, RecordRef};
use infinistream_types::SharedClock;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::flush_policy::{Decision, FlushPolicy, SealReason};
use crate::metrics::GatewayMetrics;

/// A publish waiting to be stored.
#[derive(Debug, Clone)]
pub struct PendingRecord {
    /// The stream that captures the subject.
    pub stream: Arc<str>,
    /// The subject published to.
    pub subject: Bytes,
    /// The raw NATS header block (empty when none).
    pub headers: Bytes,
    /// The payload.
    pub payload: Bytes,
    /// What the control plane checks at commit (msg id, expected headers, rollup, TTL).
    /// `subject`, `size`, `header_size` and `timestamp_unix_nanos` are filled in by the
    /// batcher.
    pub meta: v1::RecordMeta,
    /// Where the PubAck goes; `None` for a publish without a reply subject.
    pub reply: Option<String>,
    /// On the last record of an atomic batch: the batch id and size its PubAck carries.
    pub batch: Option<BatchTag>,
}

impl PendingRecord {
    /// Bytes this record holds in the buffer (what the byte budget counts).
    pub fn buffered_len(&self) -> usize {
        self.subject.len() + self.headers.len() + self.payload.len()
    }
}

/// The PubAck fields of a committed batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchTag {
    pub id: Arc<str>,
    pub count: u64,
}

impl BatchTag {
    /// The PubAck of a batch whose last record got `seq`.
    pub fn pub_ack(&self, stream: &str, seq: u64) -> PubAck {
        PubAck {
            batch_id: self.id.to_string(),
            batch_size: self.count,
            ..PubAck::new(stream, seq)
        }
    }
}

/// The answer to one publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublishOutcome {
    /// Stored at this sequence.
    Stored { seq: u64 },
    /// An atomic batch was stored; this is its last record's sequence.
    BatchStored { seq: u64, batch: BatchTag },
    /// Stored at this sequence in a counter stream: the subject's new total.
    Counted { seq: u64, value: String },
    /// A duplicate `Nats-Msg-Id`: the original's sequence.
    Duplicate { seq: u64 },
    /// Not stored.
    Failed(ApiError),
}

/// Receives the answers (the gateway turns them into PubAck messages).
pub trait AckSink: Send + Sync + 'static {
    /// Called once per publish that had a reply subject, after its flush finished.
    fn deliver(&self, reply: &str, stream: &str, outcome: PublishOutcome);

    /// Called after a flush delivered all its answers (flushes answer in order).
    fn flushed(&self) {}
}

/// Why a commit failed.
#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    /// The control plane could not be reached or timed out: retry with the same id.
    #[error("control plane unavailable: {0}")]
    Unavailable(String),
    /// The control plane refused the request as a whole: retrying will not help.
    #[error("control plane refused the commit: {0}")]
    Refused(String),
}

/// Commits batches to the control plane.
#[async_trait]
pub trait Committer: Send + Sync + 'static {
    async fn commit(
        &self,
        request: v1::CommitBatchRequest,
    ) -> Result<v1::CommitBatchResponse, CommitError>;
}

/// Batcher settings.
#[derive(Debug, Clone)]
pub struct BatcherConfig {
    /// The batch window (`INFINISTREAM_BATCH_WRITE`).
    pub window: Duration,
    /// Seal early once the encoded batch reaches this many bytes.
    pub size_cap: usize,
    /// Most bytes buffered or in flight before publishers wait.
    pub max_buffered_bytes: usize,
    /// Most flushes uploading or committing at once.
    pub max_concurrent_flushes: usize,
    /// A flush not committed within this time fails its publishers.
    pub flush_deadline: Duration,
    /// Chunk compression.
    pub build: BuildOptions,
    /// This agent's id, sent with each commit.
    pub agent_id: String,
}

impl Default for BatcherConfig {
    fn default() -> Self {
        BatcherConfig {
            window: infinistream_types::limits::BATCH_WRITE_DEFAULT,
            size_cap: infinistream_types::limits::BATCH_SIZE_CAP,
            max_buffered_bytes: 64 * 1024 * 1024,
            max_concurrent_flushes: 4,
            flush_deadline: Duration::from_secs(4),
            build: BuildOptions::default(),
            agent_id: String::new(),
        }
    }
}

/// Why a publish could not join the buffer.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SubmitError {
    /// The record alone is larger than the whole buffer.
    #[error("message of {size} bytes exceeds the publish buffer of {limit} bytes")]
    TooLarge { size: usize, limit: usize },
    /// The batcher is shutting down.
    #[error("the agent is shutting down")]
    Closed,
}

struct Admitted {
    records: Admission,
    /// The buffer bytes it holds; none for a [`Refusal`].
    permit: Option<OwnedSemaphorePermit>,
}

/// What one admission holds: a publish, or an atomic batch, which the writer pushes
/// whole so that it lands contiguously in one chunk of one flush. `One` stays unboxed:
/// it is every plain publish, and a box would cost each an allocation.
#[allow(clippy::large_enum_variant)]
enum Admission {
    One(PendingRecord),
    Group(Vec<PendingRecord>),
    Refused(Refusal),
}

/// A publish the batcher would not take ([`Batcher::submit`] failed), answered in its
/// place among the publishes queued before it ([`Batcher::refuse`]): its answer comes
/// after theirs, and when it belongs to a fast batch in gap mode `fail`, the records of
/// that batch queued after it are sent `withdrawn` (refused unstored), as nats-server
/// takes nothing of such a batch after a refused message.
#[derive(Debug, Clone)]
pub struct Refusal {
    pub stream: Arc<str>,
    /// Where its answer goes.
    pub reply: String,
    /// Its fast batch, when in gap mode `fail` (`RecordMeta.fail_batch`).
    pub fail_batch: Option<String>,
    pub error: ApiError,
}

/// Handle used by the intake to submit publishes. Cheap to clone.
#[derive(Clone)]
pub struct Batcher {
    tx: mpsc::Sender<Admitted>,
    budget: Arc<Semaphore>,
    max_buffered_bytes: usize,
}

impl std::fmt::Debug for Batcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batcher")
            .field("available_bytes", &self.budget.available_permits())
            .finish()
    }
}

impl Batcher {
    /// Starts the writer loop. It runs until `shutdown` is cancelled and every handle
    /// is dropped, then flushes what it holds and waits for in-flight flushes.
    pub fn start(
        config: BatcherConfig,
        bucket: Bucket,
        committer: Arc<dyn Committer>,
        acks: Arc<dyn AckSink>,
        clock: SharedClock,
        metrics: GatewayMetrics,
        shutdown: CancellationToken,
    ) -> (Batcher, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(8192);
        let budget = Arc::new(Semaphore::new(config.max_buffered_bytes));
        let batcher = Batcher {
            tx,
            budget,
            max_buffered_bytes: config.max_buffered_bytes,
        };
        let writer = Writer {
            builder: BatchBuilder::new(config.build),
            pending: Vec::new(),
            policy: FlushPolicy::new(config.window, config.size_cap),
            flush_slots: Arc::new(Semaphore::new(config.max_concurrent_flushes.max(1))),
            previous_commit: None,
            previous_answered: None,
            refusals: Vec::new(),
            withdrawing: HashSet::new(),
            shared: Arc::new(FlushShared {
                bucket,
                committer,
                acks,
                metrics,
                agent_id: config.agent_id.clone(),
                deadline: config.flush_deadline,
                failed_fast: std::sync::Mutex::new(HashMap::new()),
            }),
            config,
            clock,
        };
        let handle = tokio::spawn(writer.run(rx, shutdown));
        (batcher, handle)
    }

    /// Adds a publish to the buffer, waiting while the buffer is full.
    pub async fn submit(&self, record: PendingRecord) -> Result<(), SubmitError> {
        let size = record.buffered_len().max(1);
        self.admit(size, Admission::One(record)).await
    }

    /// Adds an atomic batch to the buffer as one unit: its records go to the same
    /// flush, contiguous in their stream's chunk, and the control plane stores all of
    /// them or none. Waits while the buffer is full.
    pub async fn submit_group(&self, records: Vec<PendingRecord>) -> Result<(), SubmitError> {
        let size = records.iter().map(|r| r.buffered_len().max(1)).sum();
        self.admit(size, Admission::Group(records)).await
    }

    /// Takes `size` bytes of the budget (waiting while the buffer is full) and hands
    /// the records to the writer.
    async fn admit(&self, size: usize, records: Admission) -> Result<(), SubmitError> {
        let too_large = || SubmitError::TooLarge {
            size,
            limit: self.max_buffered_bytes,
        };
        if size > self.max_buffered_bytes {
            return Err(too_large());
        }
        let permits = u32::try_from(size.max(1)).map_err(|_| too_large())?;
        let permit = self
            .budget
            .clone()
            .acquire_many_owned(permits)
            .await
            .map_err(|_| SubmitError::Closed)?;
        self.tx
            .send(Admitted {
                records,
                permit: Some(permit),
            })
            .await
            .map_err(|_| SubmitError::Closed)
    }

    /// Queues the answer to a publish [`Batcher::submit`] refused behind the publishes
    /// queued before it (see [`Refusal`]). Takes no buffer bytes. Fails only when the
    /// batcher is shutting down; the caller then answers at once.
    pub async fn refuse(&self, refusal: Refusal) -> Result<(), SubmitError> {
        self.tx
            .send(Admitted {
                records: Admission::Refused(refusal),
                permit: None,
            })
            .await
            .map_err(|_| SubmitError::Closed)
    }

    /// Bytes currently buffered or in flight.
    pub fn buffered_bytes(&self) -> usize {
        self.max_buffered_bytes
            .saturating_sub(self.budget.available_permits())
    }
}

/// One record's bookkeeping between push and ack.
struct Slot {
    stream: Arc<str>,
    /// The subject, shared with the publish: written into `meta` only when a commit
    /// request is built (one copy per attempt instead of one more per record).
    subject: Bytes,
    /// Everything but the subject (left empty until the request is built).
    meta: v1::RecordMeta,
    reply: Option<String>,
    batch: Option<BatchTag>,
}

struct FlushShared {
    bucket: Bucket,
    committer: Arc<dyn Committer>,
    acks: Arc<dyn AckSink>,
    metrics: GatewayMetrics,
    agent_id: String,
    deadline: Duration,
    /// Fast batches (gap mode `fail`) a commit refused a message of, and when: their
    /// later messages in later flushes are sent `withdrawn`, so none is stored, as
    /// nats-server takes nothing of such a batch after its refused message. Written
    /// before the next flush may commit (flushes commit in order).
    failed_fast: std::sync::Mutex<HashMap<(Arc<str>, String), Instant>>,
}

/// How long a failed fast batch is remembered: twice its idle timeout, after which its
/// id is unknown to the batch state anyway.
const FAILED_FAST_MEMORY: Duration = Duration::from_secs(20);

impl FlushShared {
    /// Remembers the fast batches (gap mode `fail`) of `batch` that had a message
    /// refused, by the commit or by the batcher ([`Refusal`]): every one when
    /// `response` is `None` (nothing was stored).
    fn note_failed_fast(&self, batch: &SealedBatch, response: Option<&v1::CommitBatchResponse>) {
        let now = Instant::now();
        let mut failed = self
            .failed_fast
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        failed.retain(|_, at| now.saturating_duration_since(*at) < FAILED_FAST_MEMORY);
        for chunk in &batch.chunks {
            // Only chunks holding a fast-batch record look for their result: the search
            // is linear, and a flush of thousands of streams (one chunk each) made this
            // loop quadratic on the commit chain (docs/benchmarks.md, session 11).
            if chunk.slots.iter().all(|s| s.meta.fail_batch.is_none()) {
                continue;
            }
            let result =
                response.and_then(|r| r.chunks.iter().find(|c| c.chunk_index == chunk.chunk_index));
            for (position, slot) in chunk.slots.iter().enumerate() {
                let Some(id) = slot.meta.fail_batch.as_deref() else {
                    continue;
                };
                let stored = result
                    .and_then(|c| c.records.get(position))
                    .and_then(|r| r.result.as_ref())
                    .is_some_and(|r| !matches!(r, v1::record_result::Result::Error(_)));
                if !stored {
                    failed.insert((slot.stream.clone(), id.to_owned()), now);
                }
            }
        }
        for q in &batch.refusals {
            if let Some(id) = &q.refusal.fail_batch {
                failed.insert((q.refusal.stream.clone(), id.clone()), now);
            }
        }
    }

    /// `slot`'s metadata for the commit: `withdrawn` when an earlier commit refused a
    /// message of its fast batch.
    fn commit_meta(&self, slot: &Slot) -> v1::RecordMeta {
        let mut meta = slot.meta.clone();
        meta.subject = String::from_utf8_lossy(&slot.subject).into_owned();
        if let Some(id) = meta.fail_batch.as_deref() {
            let failed = self
                .failed_fast
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            meta.withdrawn |= failed.contains_key(&(slot.stream.clone(), id.to_owned()));
        }
        meta
    }
}

struct Writer {
    config: BatcherConfig,
    clock: SharedClock,
    builder: BatchBuilder,
    /// Per stream, the records in chunk order (push order).
    pending: Vec<Slot>,
    /// When to seal (the window as a spacing between flush starts).
    policy: FlushPolicy<tokio::time::Instant>,
    flush_slots: Arc<Semaphore>,
    /// Fires when the previous flush's commit has finished (either way).
    previous_commit: Option<oneshot::Receiver<()>>,
    /// Fires when the previous flush has answered its publishers: flushes answer in
    /// flush order, so one agent's answers come in the order its publishes were queued
    /// (per stream), which the fast batches' state relies on.
    previous_answered: Option<oneshot::Receiver<()>>,
    /// Refusals queued in the buffer, answered in their place by its flush.
    refusals: Vec<QueuedRefusal>,
    /// Fast batches (gap mode `fail`) refused in this buffer: their records pushed after
    /// the refusal are `withdrawn`. Later buffers learn it from the flush
    /// ([`FlushShared::note_failed_fast`]), so this empties at each seal.
    withdrawing: HashSet<(Arc<str>, String)>,
    shared: Arc<FlushShared>,
}

impl Writer {
    async fn run(mut self, mut rx: mpsc::Receiver<Admitted>, shutdown: CancellationToken) {
        let mut permits: Vec<OwnedSemaphorePermit> = Vec::new();
        loop {
            let now = tokio::time::Instant::now();
            let seal_at = match self.policy.decide(now, self.builder.encoded_len_estimate()) {
                Decision::Seal(reason) => {
                    self.seal(reason, &mut permits).await;
                    continue;
                }
                Decision::SealAt(at) => Some(at),
                Decision::Empty => None,
            };
            tokio::select! {
                biased;
                item = rx.recv() => match item {
                    Some(item) => {
                        self.push(item, &mut permits);
                        // Publishes already queued behind it reached the agent with it:
                        // they join before the policy decides (up to the size cap).
                        for _ in 0..rx.len() {
                            if self.builder.encoded_len_estimate() >= self.config.size_cap {
                                break;
                            }
                            match rx.try_recv() {
                                Ok(item) => self.push(item, &mut permits),
                                Err(_) => break,
                            }
                        }
                    }
                    None => break,
                },
                () = async {
                    match seal_at {
                        Some(at) => tokio::time::sleep_until(at).await,
                        None => std::future::pending().await,
                    }
                } => {} // due: the policy says `Window` on the next turn
                () = shutdown.cancelled() => {
                    // Stop taking new work, keep what was admitted.
                    rx.close();
                    while let Some(item) = rx.recv().await {
                        self.push(item, &mut permits);
                        if self.builder.encoded_len_estimate() >= self.config.size_cap {
                            self.seal(SealReason::Size, &mut permits).await;
                        }
                    }
                    break;
                }
            }
        }
        if !self.builder.is_empty() {
            self.seal(SealReason::Shutdown, &mut permits).await;
        }
        // Wait for in-flight flushes: they hold flush slots until they finish.
        let slots = self.config.max_concurrent_flushes.max(1);
        if let Ok(all) = self
            .flush_slots
            .acquire_many(u32::try_from(slots).unwrap_or(u32::MAX))
            .await
        {
            drop(all);
        }
        tracing::info!("publish batcher stopped");
    }

    fn push(&mut self, item: Admitted, permits: &mut Vec<OwnedSemaphorePermit>) {
        let Admitted { records, permit } = item;
        match records {
            Admission::One(record) => self.push_record(record),
            Admission::Group(records) => {
                for record in records {
                    self.push_record(record);
                }
            }
            Admission::Refused(refusal) => self.push_refusal(refusal),
        }
        permits.extend(permit);
    }

    /// Queues a refusal after the records buffered so far: it is answered after them,
    /// and its fast batch's records pushed from now on are withdrawn. The records
    /// already buffered are earlier messages and are committed as they are.
    fn push_refusal(&mut self, refusal: Refusal) {
        self.policy.record_buffered(tokio::time::Instant::now());
        let before = self
            .pending
            .iter()
            .filter(|s| s.stream == refusal.stream)
            .count();
        if let Some(id) = &refusal.fail_batch {
            self.withdrawing
                .insert((refusal.stream.clone(), id.clone()));
        }
        self.refusals.push(QueuedRefusal { refusal, before });
    }

    fn push_record(&mut self, record: PendingRecord) {
        let timestamp = self.clock.now_unix_nanos();
        let msg_id = record.meta.msg_id.as_deref().map(str::as_bytes);
        let pushed = self.builder.push(
            &record.stream,
            &RecordRef {
                subject: &record.subject,
                headers: &record.headers,
                payload: &record.payload,
                timestamp,
                msg_id,
            },
        );
        if let Err(error) = pushed {
            // Only an invalid stream name can fail here; the intake checks names, so
            // this is a bug, but the publisher still gets an answer.
            tracing::error!(%error, stream = %record.stream, "cannot buffer a publish");
            if let Some(reply) = record.reply.as_deref() {
                self.shared.acks.deliver(
                    reply,
                    &record.stream,
                    PublishOutcome::Failed(ApiError::stream_store_failed(error)),
                );
            }
            return;
        }
        self.policy.record_buffered(tokio::time::Instant::now());
        let size = u32::try_from(record.buffered_len()).unwrap_or(u32::MAX);
        self.shared.metrics.add_buffered(size);
        let mut meta = record.meta;
        if !self.withdrawing.is_empty()
            && let Some(id) = &meta.fail_batch
            && self
                .withdrawing
                .contains(&(record.stream.clone(), id.clone()))
        {
            meta.withdrawn = true;
        }
        // The subject goes into the request from `Slot::subject`.
        meta.subject = String::new();
        meta.size = size;
        meta.header_size = u32::try_from(record.headers.len()).unwrap_or(u32::MAX);
        meta.timestamp_unix_nanos = timestamp;
        self.pending.push(Slot {
            stream: record.stream,
            subject: record.subject,
            meta,
            reply: record.reply,
            batch: record.batch,
        });
    }

    /// Seals the buffer into one object and hands it to a flush task. A buffer that
    /// holds only refusals writes no object: its flush answers them in turn.
    async fn seal(&mut self, reason: SealReason, permits: &mut Vec<OwnedSemaphorePermit>) {
        self.shared.metrics.clear_buffered();
        self.withdrawing.clear();
        let refusals = std::mem::take(&mut self.refusals);
        if self.builder.is_empty() && refusals.is_empty() {
            self.policy.buffer_dropped();
            return;
        }
        let slots = std::mem::take(&mut self.pending);
        let bytes_held = std::mem::take(permits);
        let (object, chunks) = if self.builder.is_empty() {
            (None, Vec::new())
        } else {
            let encoding = Instant::now();
            let encoded = self.builder.finish();
            self.shared.metrics.record_encode(encoding.elapsed());
            match encoded {
                Ok(finished) => (
                    Some(finished.object),
                    sealed_chunks(&finished.footer, slots),
                ),
                Err(error) => {
                    self.policy.buffer_dropped();
                    tracing::error!(%error, "cannot encode a batch object");
                    let failure =
                        ApiError::stream_store_failed(format!("batch encoding failed: {error}"));
                    for slot in &slots {
                        if let Some(reply) = slot.reply.as_deref() {
                            self.shared.acks.deliver(
                                reply,
                                &slot.stream,
                                PublishOutcome::Failed(failure.clone()),
                            );
                        }
                    }
                    for q in refusals {
                        deliver_refusal(&self.shared, q.refusal);
                    }
                    return;
                }
            }
        };

        // Wait for a flush slot: bounds the uploads and commits in flight.
        let Ok(slot) = self.flush_slots.clone().acquire_owned().await else {
            self.policy.buffer_dropped();
            return;
        };
        // The flush starts now: the next one is due a window from here. Refusals alone
        // write nothing, so they do not count as a flush.
        let started = tokio::time::Instant::now();
        if object.is_none() {
            self.policy.buffer_dropped();
        } else if let Some(oldest) = self.policy.flush_started(started) {
            self.shared
                .metrics
                .record_buffer_wait(started.saturating_duration_since(oldest));
        }
        let (done_tx, done_rx) = oneshot::channel();
        let previous = self.previous_commit.replace(done_rx);
        let (answered_tx, answered_rx) = oneshot::channel();
        let previous_answered = self.previous_answered.replace(answered_rx);
        let shared = self.shared.clone();
        let batch_id = ulid::Ulid::generate().to_string();
        let span = tracing::info_span!(
            "flush",
            batch_id = %batch_id,
            reason = reason.as_str(),
            objects = u8::from(object.is_some())
        );
        if object.is_some() {
            shared.metrics.record_seal(reason);
        }
        tokio::spawn(
            async move {
                let batch = SealedBatch {
                    batch_id,
                    chunks,
                    refusals,
                };
                let order = Order {
                    previous,
                    done: done_tx,
                    previous_answered,
                    answered: answered_tx,
                };
                match object {
                    Some(object) => flush(shared, batch, object, order).await,
                    None => answer_refusals(&shared, &batch, order).await,
                }
                drop(bytes_held);
                drop(slot);
            }
            .instrument(span),
        );
    }
}

/// Groups the slots per stream in chunk order; the footer gives each stream's chunk
/// index.
fn sealed_chunks(footer: &infinistream_segment::BatchFooter, slots: Vec<Slot>) -> Vec<SealedChunk> {
    let mut by_stream: HashMap<Arc<str>, Vec<Slot>> = HashMap::new();
    for slot in slots {
        by_stream.entry(slot.stream.clone()).or_default().push(slot);
    }
    let mut chunks = Vec::with_capacity(by_stream.len());
    for (stream, slots) in by_stream {
        let Some(chunk) = footer.chunk(&stream) else {
            tracing::error!(%stream, "sealed batch lacks a chunk for a buffered stream");
            continue;
        };
        chunks.push(SealedChunk {
            stream,
            chunk_index: chunk.index,
            byte_size: u64::from(chunk.stored_len),
            slots,
        });
    }
    chunks.sort_by_key(|c| c.chunk_index);
    chunks
}

/// A refusal in the buffer: `before` records of its stream were buffered before it.
struct QueuedRefusal {
    refusal: Refusal,
    before: usize,
}

fn deliver_refusal(shared: &FlushShared, refusal: Refusal) {
    shared.acks.deliver(
        &refusal.reply,
        &refusal.stream,
        PublishOutcome::Failed(refusal.error),
    );
}

/// Where a flush stands among the others: it commits after the previous one's commit
/// finished (`previous`, then `done`), and answers after the previous one answered
/// (`previous_answered`, then `answered`).
struct Order {
    previous: Option<oneshot::Receiver<()>>,
    done: oneshot::Sender<()>,
    previous_answered: Option<oneshot::Receiver<()>>,
    answered: oneshot::Sender<()>,
}

/// A flush of refusals only: nothing to write. Its fast batches are marked failed
/// once the earlier flushes have built their commits (so their records, all earlier
/// messages, are not withdrawn), and its answers follow theirs.
async fn answer_refusals(shared: &FlushShared, batch: &SealedBatch, order: Order) {
    finish_previous(order.previous).await;
    shared.note_failed_fast(batch, None);
    let _ = order.done.send(());
    finish_previous(order.previous_answered).await;
    for q in &batch.refusals {
        deliver_refusal(shared, q.refusal.clone());
    }
    shared.acks.flushed();
    let _ = order.answered.send(());
}

struct SealedChunk {
    stream: Arc<str>,
    chunk_index: u32,
    byte_size: u64,
    slots: Vec<Slot>,
}

struct SealedBatch {
    batch_id: String,
    chunks: Vec<SealedChunk>,
    /// In push order.
    refusals: Vec<QueuedRefusal>,
}

async fn flush(shared: Arc<FlushShared>, batch: SealedBatch, object: Bytes, order: Order) {
    let Order {
        previous,
        done,
        previous_answered,
        answered,
    } = order;
    let started = Instant::now();
    let deadline = tokio::time::Instant::now() + shared.deadline;
    let records: usize = batch.chunks.iter().map(|c| c.slots.len()).sum();
    let object_len = object.len();

    // 1. Upload, concurrently with earlier flushes' commits.
    let upload = tokio::time::timeout_at(deadline, shared.bucket.put_batch(object)).await;
    let key = match upload {
        Ok(Ok(key)) => key,
        Ok(Err(error)) => {
            shared.metrics.flush_failed("upload");
            tracing::warn!(%error, records, "flush failed: batch upload failed; publishers get errors");
            finish_previous(previous).await;
            shared.note_failed_fast(&batch, None);
            let _ = done.send(());
            finish_previous(previous_answered).await;
            fail_all(
                &shared,
                &batch,
                &ApiError::stream_store_failed(format!("batch upload failed: {error}")),
            );
            shared.acks.flushed();
            let _ = answered.send(());
            return;
        }
        Err(_) => {
            shared.metrics.flush_failed("upload");
            tracing::warn!(
                records,
                "flush failed: batch upload timed out; publishers get errors"
            );
            finish_previous(previous).await;
            shared.note_failed_fast(&batch, None);
            let _ = done.send(());
            finish_previous(previous_answered).await;
            fail_all(
                &shared,
                &batch,
                &ApiError::stream_store_failed("batch upload timed out"),
            );
            shared.acks.flushed();
            let _ = answered.send(());
            return;
        }
    };
    shared.metrics.record_upload(object_len, started.elapsed());

    // 2. Commit in flush order.
    let queued = Instant::now();
    let waited = tokio::time::timeout_at(deadline, finish_previous(previous)).await;
    shared.metrics.record_commit_wait(queued.elapsed());
    let committed = match waited {
        Ok(()) => {
            let called = Instant::now();
            let object_key = key.to_string();
            let committed = commit_with_retry(
                &shared,
                || commit_request(&shared, &batch, &object_key),
                deadline,
            )
            .await;
            shared.metrics.record_commit_call(called.elapsed());
            committed
        }
        // The request was never sent: nothing can have been applied.
        Err(_) => Err(CommitFailure {
            error: CommitError::Unavailable(
                "an earlier flush's commit did not finish in time".into(),
            ),
            maybe_applied: false,
        }),
    };
    shared.note_failed_fast(&batch, committed.as_ref().ok());
    let _ = done.send(());

    // 3. Answer the publishers, after the previous flush answered its own.
    finish_previous(previous_answered).await;
    match committed {
        Ok(response) => {
            shared.metrics.record_commit(records, started.elapsed());
            let answering = Instant::now();
            answer(&shared, &batch, &response);
            shared.metrics.record_answer(answering.elapsed());
        }
        Err(CommitFailure {
            error,
            maybe_applied: false,
        }) => {
            shared.metrics.flush_failed("commit");
            tracing::warn!(
                %error, object = %key, records,
                "flush failed: commit failed; object uploaded but not committed stays for the jobs role to collect"
            );
            fail_all(
                &shared,
                &batch,
                &ApiError::stream_store_failed(format!("commit failed: {error}")),
            );
        }
        // An attempt may have been applied with its answer lost: telling the publisher
        // "failed" could be false (a stored message it then believes lost). Say so,
        // as nats-server's client would see a timeout; a publish again with the same
        // Nats-Msg-Id learns the sequence (or stores it once).
        Err(CommitFailure {
            error,
            maybe_applied: true,
        }) => {
            shared.metrics.flush_failed("commit");
            tracing::warn!(
                %error, object = %key, records,
                "flush failed: commit outcome unknown; an attempt may have been applied"
            );
            fail_all(
                &shared,
                &batch,
                &ApiError::stream_store_failed(format!(
                    "{COMMIT_OUTCOME_UNKNOWN}: {error}; the message may be stored: publish it again with the same Nats-Msg-Id"
                )),
            );
        }
    }
    shared.acks.flushed();
    let _ = answered.send(());
}

/// How the answer to a publish whose commit may or may not have been applied begins.
pub const COMMIT_OUTCOME_UNKNOWN: &str = "commit outcome unknown";

/// A commit that ended without an answer to give.
struct CommitFailure {
    error: CommitError,
    /// Whether an attempt may have reached the control plane and been applied: one
    /// that timed out or failed in transit. A later refusal does not undo it (the
    /// control plane checks a retry's proof before its batch id, so a retry from a
    /// clock-skewed agent is refused even when the first attempt was applied).
    maybe_applied: bool,
}

async fn finish_previous(previous: Option<oneshot::Receiver<()>>) {
    if let Some(previous) = previous {
        // A dropped sender also means "finished".
        let _ = previous.await;
    }
}

/// The `CommitBatch` request of a flush. Built afresh for each attempt rather than
/// cloned: with thousands of streams per flush a deep copy of the request is a
/// measurable part of the publish path (docs/benchmarks.md, session 11). Every attempt
/// gets the same request: `withdrawn` marks come from commits of earlier flushes, which
/// all finished before this flush's first attempt (commits go in flush order).
fn commit_request(
    shared: &FlushShared,
    batch: &SealedBatch,
    object_key: &str,
) -> v1::CommitBatchRequest {
    v1::CommitBatchRequest {
        batch_id: batch.batch_id.clone(),
        object_key: object_key.to_owned(),
        agent_id: shared.agent_id.clone(),
        chunks: batch
            .chunks
            .iter()
            .map(|c| v1::ChunkMeta {
                stream: c.stream.to_string(),
                chunk_index: c.chunk_index,
                record_count: u32::try_from(c.slots.len()).unwrap_or(u32::MAX),
                byte_size: c.byte_size,
                records: c.slots.iter().map(|s| shared.commit_meta(s)).collect(),
            })
            .collect(),
    }
}

async fn commit_with_retry(
    shared: &FlushShared,
    request: impl Fn() -> v1::CommitBatchRequest,
    deadline: tokio::time::Instant,
) -> Result<v1::CommitBatchResponse, CommitFailure> {
    let mut backoff = Duration::from_millis(20);
    let mut maybe_applied = false;
    loop {
        let attempt = tokio::time::timeout_at(deadline, shared.committer.commit(request())).await;
        match attempt {
            Ok(Ok(response)) => return Ok(response),
            Ok(Err(error @ CommitError::Refused(_))) => {
                return Err(CommitFailure {
                    error,
                    maybe_applied,
                });
            }
            Ok(Err(CommitError::Unavailable(reason))) => {
                maybe_applied = true;
                if tokio::time::Instant::now() + backoff >= deadline {
                    return Err(CommitFailure {
                        error: CommitError::Unavailable(reason),
                        maybe_applied,
                    });
                }
                tracing::debug!(%reason, "commit failed transiently; retrying with the same batch id");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_millis(500));
            }
            Err(_) => {
                return Err(CommitFailure {
                    error: CommitError::Unavailable(
                        "commit did not finish before the flush deadline".into(),
                    ),
                    maybe_applied: true,
                });
            }
        }
    }
}

fn fail_all(shared: &FlushShared, batch: &SealedBatch, error: &ApiError) {
    deliver_in_order(shared, batch, |_, _, _| {
        PublishOutcome::Failed(error.clone())
    });
}

/// Answers each record (`outcome(chunk, position, slot)`) and each refusal, per stream in
/// the order they were pushed; refusals of streams without a chunk come last.
fn deliver_in_order(
    shared: &FlushShared,
    batch: &SealedBatch,
    mut outcome: impl FnMut(&SealedChunk, usize, &Slot) -> PublishOutcome,
) {
    for chunk in &batch.chunks {
        let mut refusals = batch
            .refusals
            .iter()
            .filter(|q| q.refusal.stream == chunk.stream)
            .peekable();
        for position in 0..=chunk.slots.len() {
            while let Some(q) = refusals.next_if(|q| q.before <= position) {
                deliver_refusal(shared, q.refusal.clone());
            }
            let Some(slot) = chunk.slots.get(position) else {
                break;
            };
            let Some(reply) = slot.reply.as_deref() else {
                continue;
            };
            shared
                .acks
                .deliver(reply, &chunk.stream, outcome(chunk, position, slot));
        }
    }
    for q in &batch.refusals {
        if !batch.chunks.iter().any(|c| c.stream == q.refusal.stream) {
            deliver_refusal(shared, q.refusal.clone());
        }
    }
}

fn answer(shared: &FlushShared, batch: &SealedBatch, response: &v1::CommitBatchResponse) {
    let results: HashMap<u32, &v1::ChunkResult> =
        response.chunks.iter().map(|c| (c.chunk_index, c)).collect();
    deliver_in_order(shared, batch, |chunk, position, slot| {
        let Some(result) = results.get(&chunk.chunk_index) else {
            return PublishOutcome::Failed(ApiError::stream_store_failed(
                "the control plane returned no result for this stream",
            ));
        };
        let record = result.records.get(position);
        match record.and_then(|r| r.result.as_ref()) {
            Some(v1::record_result::Result::Seq(seq)) => match (&slot.batch, record) {
                (Some(batch), _) => PublishOutcome::BatchStored {
                    seq: *seq,
                    batch: batch.clone(),
                },
                (None, Some(r)) if !r.counter_value.is_empty() => PublishOutcome::Counted {
                    seq: *seq,
                    value: r.counter_value.clone(),
                },
                _ => PublishOutcome::Stored { seq: *seq },
            },
            Some(v1::record_result::Result::DuplicateOf(seq)) => {
                PublishOutcome::Duplicate { seq: *seq }
            }
            Some(v1::record_result::Result::Error(err)) => {
                PublishOutcome::Failed(ApiError::from(err))
            }
            None => match &result.error {
                Some(err) => PublishOutcome::Failed(ApiError::from(err)),
                None => PublishOutcome::Failed(ApiError::stream_store_failed(
                    "the control plane returned no result for this message",
                )),
            },
        }
    });
}
