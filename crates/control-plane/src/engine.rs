//! The control-plane logic over a [`MetaStore`]: groups of streams in memory, one
//! writer loop that group-commits CommitBatch calls, and every other operation.
//!
//! Why this shape:
//! - **One writer, one transaction per round.** CommitBatch requests queue on a channel;
//!   the writer drains whatever is waiting, applies each batch in arrival order to the
//!   in-memory streams (so sequences follow commit order), and writes everything the
//!   round changed in ONE store transaction; only then are the callers answered. Under
//!   load many agent flushes share one durable write; alone, a flush costs one.
//! - **Pipelined rounds.** A round's transaction is written by its own task while the
//!   writer applies the next round in memory. Writes are issued strictly in the order
//!   their changes were taken (the `order` lock, FIFO, taken under the state lock),
//!   so round N+1's transaction starts only after round N's returned. Nobody sees a
//!   change before it is durable: answers go out after their round's write, and every
//!   other caller (`group_mut`) first waits for the write in flight. If a write fails,
//!   every write taken from the same cache generation (`epoch`) fails with it, and the
//!   cache is dropped before anyone uses it again.
//! - **Fenced writes.** Every writing transaction compares the `cp/leader` key with
//!   this instance's id, so a deposed leader can never commit (two leaders can't both
//!   append). Opening a control plane claims the fence.
//! - **Memory is a cache of the store.** A group is loaded from the store on first use.
//!   If a write fails or its outcome is unknown, every cached group is dropped and
//!   re-read, so the cache never runs ahead of what is durable.
//! - Stream creation queues for the writer too: a round applies creations in arrival
//!   order with the batches, so many concurrent creations share one durable write.
//!   Other mutations (stream update/delete, purge, delete, swap) take the same state
//!   lock, apply, and write their own fenced transaction.
//!
//! Files by concern: this one holds the shared state, the group cache and the fenced
//! writes; `group` a group in memory (loading it, applying a batch, forming its store
//! ops); `commit` the writer and its rounds (`round` sizes them); `streams` stream
//! administration; `reads` index reads; `removal` purge, delete and time-based limits;
//! `consumers` consumer state; `objects` what jobs swap in and collect; `leases` job
//! leases; `agents` the agent registry; `watch` commit notifications.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use infinistream_proto::v1::{self, JsError};
use infinistream_types::SharedClock;
use tokio::sync::{Mutex, mpsc};

use crate::errors::CpError;
use crate::keys;
use crate::model::ConsumerRecord;
use crate::store::{Compare, MetaStore, Op, StoreError};
use crate::stream::Stream;

mod accounts;
mod agents;
mod commit;
mod consumers;
mod group;
mod leases;
mod objects;
mod reads;
mod removal;
mod round;
mod streams;
mod subjects;
pub(crate) mod watch;

use commit::writer;
pub(crate) use consumers::CreateAction;
use removal::retention_ticker;

/// Tunables of a control plane.
#[derive(Debug, Clone)]
pub struct Options {
    /// How long a CommitBatch answer is kept for idempotent retries.
    pub batch_answer_ttl: Duration,
    /// Agent lease when the agent asks for none.
    pub agent_lease_default: Duration,
    /// Most CommitBatch calls folded into one store transaction.
    pub max_batches_per_txn: usize,
    /// How often time-based limits (max_age, TTL) are applied; `None` = only on
    /// commit and on `EnforceRetention` (tests drive it with a mock clock).
    pub retention_interval: Option<Duration>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            batch_answer_ttl: Duration::from_secs(300),
            agent_lease_default: Duration::from_secs(10),
            max_batches_per_txn: 256,
            retention_interval: Some(Duration::from_secs(1)),
        }
    }
}

fn nanos(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

/// A group's metadata, loaded.
#[derive(Debug, Default)]
pub(crate) struct Group {
    name: String,
    streams: BTreeMap<String, Stream>,
    /// Every stream's subjects, for the overlap check (kept with `streams`).
    subjects: subjects::SubjectIndex,
    /// Streams changed since the last write.
    touched: BTreeSet<String>,
    /// Streams deleted since the last write.
    dropped: Vec<String>,
    object_refs: HashMap<String, u64>,
    /// Objects released since the last write.
    released: Vec<String>,
    /// Stored answers (an encoded `BatchRecord`, as written to the store) by batch id,
    /// for idempotent retries: compact, and decoded only when a retry comes.
    batches: HashMap<String, Arc<[u8]>>,
    batch_order: VecDeque<(i64, String)>,
    new_batches: Vec<(String, Arc<[u8]>)>,
    expired_batches: Vec<String>,
    /// (stream, consumer) → state.
    consumers: BTreeMap<(String, String), ConsumerRecord>,
    /// (stream, consumer) → what agents report waiting on a `prioritized` consumer
    /// (memory only, see `prioritized`).
    waiting: HashMap<(String, String), crate::prioritized::Reports>,
    /// Watch events queued by changes not yet written (see `watch`).
    events: Vec<v1::StreamEvent>,
    /// Number of the last round log record formed (`take_ops` call); see
    /// `model::LogRecord`.
    log_round: u64,
    /// Round log records in the store (or being written).
    log_keys: BTreeSet<u64>,
    /// (oldest unfolded log record, stream) of every stream with something unfolded.
    pending: BTreeSet<(u64, String)>,
    /// Append through the round log (the store's keys are costly); else every
    /// touched stream is folded in its round (one index key per stream per round).
    round_log: bool,
    /// Most bytes of index keys one round writes for folds it may put off (the
    /// store's request limit minus what the round's batches take, see
    /// `round::Budget`); `None` = no limit.
    fold_budget: Option<usize>,
    /// Each JetStream account's limits, by the account part of its stream ids
    /// (`$G` for bare names; see `accounts`); an account without = unlimited.
    account_limits: HashMap<String, v1::AccountLimits>,
    /// Streams by next expiry (and with schedules), refreshed in `take_ops`.
    expiry: removal::ExpiryIndex,
}

fn apply_delta(refs: &mut HashMap<String, u64>, released: &mut Vec<String>, obj: String, d: i64) {
    if obj.is_empty() {
        // Subject delete markers live in the index only: no object to count.
        return;
    }
    let cur = refs.get(&obj).copied().unwrap_or(0);
    let next = i64::try_from(cur).unwrap_or(i64::MAX).saturating_add(d);
    if next <= 0 {
        if refs.remove(&obj).is_some() || d < 0 {
            released.push(obj);
        }
    } else {
        refs.insert(obj, u64::try_from(next).unwrap_or(0));
    }
}

fn info_of(s: &Stream, details: bool) -> v1::StreamInfoResponse {
    v1::StreamInfoResponse {
        error: None,
        config: Some((&s.spec).into()),
        state: Some(s.state(details)),
        created_unix_nanos: s.created,
    }
}

fn consumer_error(e: JsError) -> v1::ConsumerInfoResponse {
    v1::ConsumerInfoResponse {
        error: Some(e),
        ..Default::default()
    }
}

fn error_info(e: JsError) -> v1::StreamInfoResponse {
    v1::StreamInfoResponse {
        error: Some(e),
        ..Default::default()
    }
}

/// When a write is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Durability {
    /// Once durable: everything whose loss would lose data or an answer someone relies
    /// on (commits, confirmed acks, configuration).
    Synced,
    /// Once ordered and visible, durable a moment later ([`MetaStore::txn_deferred`]):
    /// claims, whose loss in a power cut only delivers their messages again.
    Deferred,
}

#[derive(Debug, Default)]
struct State {
    groups: HashMap<String, Group>,
    /// Generation of the cached groups; bumped when they are dropped after a failed
    /// write (see `Engine::valid_from`).
    epoch: u64,
}

/// Work waiting for the writer: a CommitBatch, or a stream to create (so creations
/// share a round's durable write instead of one each).
#[derive(Debug)]
pub(crate) struct CommitCmd {
    group: String,
    work: commit::Work,
}

/// The control-plane logic; shared by the gRPC services and the writer task.
#[derive(Debug)]
pub(crate) struct Engine {
    store: Arc<dyn MetaStore>,
    clock: SharedClock,
    fence: Vec<u8>,
    opts: Options,
    state: Mutex<State>,
    commit_tx: mpsc::Sender<CommitCmd>,
    /// Durable changes, for `WatchStreams`.
    events: watch::EventSender,
    /// Set when the server stops: ends every watch so a graceful shutdown completes.
    watches_closed: tokio::sync::watch::Sender<bool>,
    /// Held while a transaction of cached changes is written; taken (FIFO) under the
    /// state lock, so transactions reach the store in the order they were formed.
    order: Arc<Mutex<()>>,
    /// Writes formed from a cache generation older than this fail without being
    /// issued: a write before them failed, so what they carry may build on changes
    /// that are not durable.
    valid_from: std::sync::atomic::AtomicU64,
    /// Where the schedule gauges go (the served control plane's metrics).
    metrics: std::sync::Mutex<crate::RequestMetrics>,
}

impl Engine {
    /// The metrics the schedule gauges are set in.
    pub(crate) fn metrics(&self) -> crate::RequestMetrics {
        self.metrics
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Sets the gauges into `metrics` from now on.
    pub(crate) fn set_metrics(&self, metrics: crate::RequestMetrics) {
        *self
            .metrics
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = metrics;
    }
}

fn stale_cache() -> CpError {
    StoreError::Unavailable("an earlier metadata write failed; retry".into()).into()
}

impl Engine {
    /// Claims the store's fence and starts the writer.
    pub(crate) async fn start(
        store: Arc<dyn MetaStore>,
        clock: SharedClock,
        opts: Options,
    ) -> Result<Arc<Engine>, CpError> {
        let fence = ulid::Ulid::generate().to_string().into_bytes();
        store
            .txn(
                vec![],
                vec![Op::Put {
                    key: keys::LEADER.to_vec(),
                    value: fence.clone(),
                }],
            )
            .await?;
        let (commit_tx, commit_rx) = mpsc::channel(4096);
        let engine = Arc::new(Engine {
            store,
            clock,
            fence,
            opts,
            state: Mutex::new(State::default()),
            commit_tx,
            events: watch::channel(),
            watches_closed: tokio::sync::watch::Sender::new(false),
            order: Arc::new(Mutex::new(())),
            valid_from: std::sync::atomic::AtomicU64::new(0),
            metrics: std::sync::Mutex::new(crate::RequestMetrics::new()),
        });
        tokio::spawn(writer(Arc::downgrade(&engine), commit_rx));
        if let Some(every) = engine.opts.retention_interval {
            tokio::spawn(retention_ticker(Arc::downgrade(&engine), every));
        }
        Ok(engine)
    }

    fn now(&self) -> i64 {
        self.clock.now_unix_nanos()
    }

    /// The group, loaded if needed, once every change in it is durable: waits for the
    /// round being written (if any) so callers never see an undurable change.
    async fn group_mut<'a>(
        &self,
        st: &'a mut State,
        group: &str,
    ) -> Result<&'a mut Group, CpError> {
        drop(self.order.lock().await);
        self.cached_group(st, group).await
    }

    /// Drops the cache if a write failed since it was formed.
    fn check_epoch(&self, st: &mut State) {
        let valid = self.valid_from.load(std::sync::atomic::Ordering::Acquire);
        if st.epoch < valid {
            st.groups.clear();
            st.epoch = valid;
        }
    }

    /// Marks writes formed from `epoch` (and older) as failed and drops the cache.
    fn fail_epoch(&self, epoch: u64) {
        self.valid_from
            .fetch_max(epoch + 1, std::sync::atomic::Ordering::AcqRel);
    }

    /// The group as cached, loaded if needed (without waiting for a write in flight:
    /// the writer applies the next round meanwhile).
    async fn cached_group<'a>(
        &self,
        st: &'a mut State,
        group: &str,
    ) -> Result<&'a mut Group, CpError> {
        self.check_epoch(st);
        if !st.groups.contains_key(group) {
            let g = Group::load(self.store.as_ref(), group, self.now()).await?;
            st.groups.insert(group.to_owned(), g);
        }
        st.groups
            .get_mut(group)
            .ok_or_else(|| CpError::NotFound(format!("group `{group}`")))
    }

    fn fence(&self) -> Compare {
        Compare::ValueEquals {
            key: keys::LEADER.to_vec(),
            value: self.fence.clone(),
        }
    }

    /// One fenced transaction, answered once durable. On any failure the caches are
    /// dropped.
    async fn write_ops(&self, st: &mut State, ops: Vec<Op>) -> Result<i64, CpError> {
        self.write_ops_with(st, ops, Durability::Synced).await
    }

    /// [`write_ops`](Self::write_ops), answered when `durability` says.
    async fn write_ops_with(
        &self,
        st: &mut State,
        ops: Vec<Op>,
        durability: Durability,
    ) -> Result<i64, CpError> {
        if ops.is_empty() {
            return Ok(0);
        }
        let _order = self.order.lock().await;
        if st.epoch < self.valid_from.load(std::sync::atomic::Ordering::Acquire) {
            self.check_epoch(st);
            return Err(stale_cache());
        }
        let res = self.fenced_txn(ops, durability).await;
        match res {
            Ok(revision) => {
                self.publish_events(st);
                Ok(revision)
            }
            Err(e) => {
                self.fail_epoch(st.epoch);
                self.check_epoch(st);
                Err(e)
            }
        }
    }

    /// One fenced transaction; a moved fence is `NotLeader`.
    async fn fenced_txn(&self, ops: Vec<Op>, durability: Durability) -> Result<i64, CpError> {
        let compares = vec![self.fence()];
        let written = match durability {
            Durability::Synced => self.store.txn(compares, ops).await,
            Durability::Deferred => self.store.txn_deferred(compares, ops).await,
        };
        match written {
            Ok(out) if out.succeeded => Ok(out.revision),
            Ok(_) => {
                tracing::error!("metadata store fence moved: another control plane took over");
                Err(CpError::NotLeader(
                    "the metadata store's fence names another instance".into(),
                ))
            }
            Err(e) => {
                tracing::warn!(error = %e, "metadata write failed; cache dropped");
                Err(e.into())
            }
        }
    }

    /// Writes what `group` changed.
    async fn flush_group(&self, st: &mut State, group: &str) -> Result<(), CpError> {
        let now = self.now();
        let mut ops = Vec::new();
        if let Some(g) = st.groups.get_mut(group) {
            g.take_ops(now, &mut ops);
        }
        self.write_ops(st, ops).await.map(|_| ())
    }

    /// Fenced write outside the cached state (agents, leases).
    async fn write_plain(&self, compares: Vec<Compare>, ops: Vec<Op>) -> Result<bool, CpError> {
        let mut all = vec![self.fence()];
        all.extend(compares);
        let out = self.store.txn(all, ops).await?;
        if out.succeeded {
            return Ok(true);
        }
        // Tell a lost fence apart from a lost compare.
        match self.store.get(keys::LEADER).await? {
            Some(kv) if kv.value == self.fence => Ok(false),
            _ => Err(CpError::NotLeader(
                "the metadata store's fence names another instance".into(),
            )),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::UNIX_EPOCH;

    use async_trait::async_trait;
    use infinistream_proto::domain::{Chunk, CommitBatch, Limits, Record, StreamSpec};
    use infinistream_types::MockClock;
    use tokio::sync::{Notify, oneshot};

    use super::*;
    use crate::store::memory::MemoryStore;
    use crate::store::{KeyValue, TxnOutcome};

    /// A memory store whose next transaction can be held in flight and then failed.
    #[derive(Debug, Default)]
    struct Flaky {
        inner: MemoryStore,
        hold: AtomicBool,
        fail: AtomicBool,
        entered: Notify,
        release: Notify,
        txns: std::sync::atomic::AtomicUsize,
    }

    #[async_trait]
    impl MetaStore for Flaky {
        async fn get(&self, key: &[u8]) -> Result<Option<KeyValue>, StoreError> {
            self.inner.get(key).await
        }
        async fn range(
            &self,
            start: &[u8],
            end: &[u8],
            limit: usize,
        ) -> Result<Vec<KeyValue>, StoreError> {
            self.inner.range(start, end, limit).await
        }
        async fn txn(
            &self,
            compares: Vec<Compare>,
            ops: Vec<Op>,
        ) -> Result<TxnOutcome, StoreError> {
            self.txns.fetch_add(1, Ordering::SeqCst);
            if self.hold.swap(false, Ordering::SeqCst) {
                self.entered.notify_one();
                self.release.notified().await;
            }
            if self.fail.swap(false, Ordering::SeqCst) {
                return Err(StoreError::Unavailable("injected".into()));
            }
            self.inner.txn(compares, ops).await
        }
    }

    fn batch(id: &str) -> CommitBatch {
        CommitBatch {
            batch_id: id.into(),
            object_key: format!("obj-{id}"),
            agent_id: "a".into(),
            chunks: vec![Chunk {
                stream: "S".into(),
                chunk_index: 0,
                byte_size: 10,
                records: vec![Record {
                    subject: "s.a".into(),
                    size: 10,
                    header_size: 0,
                    timestamp_unix_nanos: 1,
                    ..Record::default()
                }],
            }],
        }
    }

    fn first_seq(r: &v1::CommitBatchResponse) -> Option<u64> {
        match r.chunks.first()?.records.first()?.result {
            Some(v1::record_result::Result::Seq(s)) => Some(s),
            _ => None,
        }
    }

    fn spec_n(i: usize) -> StreamSpec {
        StreamSpec {
            name: format!("S{i}"),
            config_json: b"{}".to_vec(),
            limits: Limits {
                subjects: vec![format!("s{i}.>")],
                duplicate_window_nanos: 120_000_000_000,
                ..Default::default()
            },
        }
    }

    /// What a reload must reproduce: every stream's state and index.
    async fn snapshot(engine: &Engine, streams: usize) -> Vec<String> {
        let mut out = Vec::new();
        for i in 0..streams {
            let name = format!("S{i}");
            let info = engine.stream_info("g", &name, true).await.unwrap();
            let index = engine
                .read_index(
                    "g",
                    v1::ReadIndexRequest {
                        stream: name.clone(),
                        start_seq: 1,
                        end_seq: 0,
                        limit: 100_000,
                    },
                )
                .await
                .unwrap();
            out.push(format!("{name}: {:?} {:?}", info.state, index.entries));
        }
        out
    }

    /// Rounds append through the round log and fold a few streams a round; removals,
    /// purges and a deleted and re-created stream fold at once. A reload at any point
    /// (log records pending or not) rebuilds exactly what was answered, and the round
    /// log stays short.
    /// A memory store that says its keys are costly, as etcd does.
    #[derive(Debug, Default)]
    struct CostlyKeys(MemoryStore);

    #[async_trait]
    impl MetaStore for CostlyKeys {
        async fn get(&self, key: &[u8]) -> Result<Option<KeyValue>, StoreError> {
            self.0.get(key).await
        }
        async fn range(
            &self,
            start: &[u8],
            end: &[u8],
            limit: usize,
        ) -> Result<Vec<KeyValue>, StoreError> {
            self.0.range(start, end, limit).await
        }
        async fn txn(
            &self,
            compares: Vec<Compare>,
            ops: Vec<Op>,
        ) -> Result<TxnOutcome, StoreError> {
            self.0.txn(compares, ops).await
        }
        fn txn_limits(&self) -> crate::store::TxnLimits {
            crate::store::TxnLimits {
                costly_keys: true,
                ..Default::default()
            }
        }
    }

    #[tokio::test]
    async fn the_round_log_folds_and_reloads_exactly() {
        folds_and_reloads_exactly(Arc::new(CostlyKeys::default()), true).await;
    }

    #[tokio::test]
    async fn without_the_round_log_every_round_writes_index_keys() {
        folds_and_reloads_exactly(Arc::new(MemoryStore::new()), false).await;
    }

    async fn folds_and_reloads_exactly(store: Arc<dyn MetaStore>, round_log: bool) {
        const STREAMS: usize = 12;
        let clock = Arc::new(MockClock::new(
            UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        ));
        let opts = Options {
            retention_interval: None,
            ..Options::default()
        };
        let mut engine = Engine::start(store.clone(), clock.clone(), opts.clone())
            .await
            .unwrap();
        for i in 0..STREAMS {
            let r = engine.create_stream("g", spec_n(i)).await.unwrap();
            assert!(r.error.is_none());
        }
        let mut logged_at_reload = 0;
        for round in 0..120usize {
            let mut b = batch(&format!("b{round}"));
            b.chunks = (0..STREAMS)
                .filter(|i| (i + round) % 3 != 0)
                .map(|i| Chunk {
                    stream: format!("S{i}"),
                    chunk_index: i as u32,
                    byte_size: 10,
                    records: (0..2)
                        .map(|k| Record {
                            subject: format!("s{i}.k{}", (round + k) % 5),
                            msg_id: (k == 0).then(|| format!("m{round}")),
                            ..batch("x").chunks[0].records[0].clone()
                        })
                        .collect(),
                })
                .collect();
            let resp = engine.commit("g", b).await.unwrap();
            assert!(resp.chunks.iter().all(|c| c.error.is_none()));
            if round % 10 == 7 {
                let seq = (round as u64) / 2 + 1;
                let _ = engine.delete_message("g", "S1", seq).await.unwrap();
            }
            if round % 25 == 24 {
                let r = engine
                    .purge(
                        "g",
                        v1::PurgeStreamRequest {
                            stream: "S2".into(),
                            subject: "s2.k1".into(),
                            keep: None,
                            up_to_seq: None,
                        },
                    )
                    .await
                    .unwrap();
                assert!(r.error.is_none());
            }
            if round == 50 {
                assert!(engine.delete_stream("g", "S3").await.unwrap().is_none());
                let r = engine.create_stream("g", spec_n(3)).await.unwrap();
                assert!(r.error.is_none());
            }
            if round % 17 == 16 {
                let logs = store.scan_prefix(b"g/g/log/").await.unwrap().len();
                assert!(logs <= 70, "the round log stays short: {logs} records");
                logged_at_reload += logs;
                let before = snapshot(&engine, STREAMS).await;
                drop(engine);
                engine = Engine::start(store.clone(), clock.clone(), opts.clone())
                    .await
                    .unwrap();
                assert_eq!(snapshot(&engine, STREAMS).await, before, "round {round}");
            }
        }
        assert_eq!(
            logged_at_reload > 0,
            round_log,
            "reloads replayed the round log"
        );
        // A retried batch is answered from its stored answer after a reload.
        let again = engine.commit("g", batch("b119")).await.unwrap();
        assert!(again.replayed);
        // Msg ids of replayed log entries still de-duplicate.
        let mut dup = batch("late");
        dup.chunks[0].stream = "S0".into();
        dup.chunks[0].records[0].subject = "s0.k0".into();
        dup.chunks[0].records[0].msg_id = Some("m118".into());
        let resp = engine.commit("g", dup).await.unwrap();
        assert!(matches!(
            resp.chunks[0].records[0].result,
            Some(v1::record_result::Result::DuplicateOf(_))
        ));
    }

    /// Counter totals and subject delete markers are index metadata: they survive a
    /// reload exactly (through the round log or folded keys), and markers count no
    /// object reference (nothing for GC to release).
    #[tokio::test]
    async fn counters_and_markers_reload_exactly() {
        for store in [
            Arc::new(CostlyKeys::default()) as Arc<dyn MetaStore>,
            Arc::new(MemoryStore::new()),
        ] {
            let clock = Arc::new(MockClock::new(
                UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            ));
            let opts = Options {
                retention_interval: None,
                ..Options::default()
            };
            let mut engine = Engine::start(store.clone(), clock.clone(), opts.clone())
                .await
                .unwrap();
            let mut ttl_spec = spec_n(0);
            ttl_spec.limits.allow_msg_ttl = true;
            ttl_spec.limits.subject_delete_marker_ttl_nanos = Some(5_000_000_000);
            let mut counter_spec = spec_n(1);
            counter_spec.limits.allow_msg_counter = true;
            for spec in [ttl_spec, counter_spec] {
                assert!(
                    engine
                        .create_stream("g", spec)
                        .await
                        .unwrap()
                        .error
                        .is_none()
                );
            }
            let now = infinistream_types::Clock::now_unix_nanos(clock.as_ref());
            let record = |subject: &str| Record {
                subject: subject.into(),
                timestamp_unix_nanos: now,
                ..batch("x").chunks[0].records[0].clone()
            };
            let mut b = batch("b1");
            b.chunks = vec![
                Chunk {
                    stream: "S0".into(),
                    chunk_index: 0,
                    byte_size: 10,
                    records: vec![Record {
                        ttl_seconds: Some(1),
                        ..record("s0.a")
                    }],
                },
                Chunk {
                    stream: "S1".into(),
                    chunk_index: 1,
                    byte_size: 10,
                    records: ["3", "-1"]
                        .iter()
                        .map(|by| Record {
                            incr: Some((*by).into()),
                            ..record("s1.c")
                        })
                        .collect(),
                },
            ];
            let resp = engine.commit("g", b).await.unwrap();
            let totals: Vec<&str> = resp.chunks[1]
                .records
                .iter()
                .map(|r| r.counter_value.as_str())
                .collect();
            assert_eq!(totals, ["3", "2"]);
            clock.advance(Duration::from_secs(6));
            assert_eq!(engine.enforce_retention("g").await.unwrap(), 1);
            let before = snapshot(&engine, 2).await;
            assert!(
                before[0].contains("marker: Some"),
                "a marker: {}",
                before[0]
            );
            assert!(
                before[1].contains("\"2\""),
                "totals in the index: {}",
                before[1]
            );
            let objects = engine.list_objects("g").await.unwrap();
            assert!(
                objects.referenced.iter().all(|k| !k.is_empty()),
                "{objects:?}"
            );
            drop(engine);
            engine = Engine::start(store.clone(), clock.clone(), opts.clone())
                .await
                .unwrap();
            assert_eq!(snapshot(&engine, 2).await, before);
            // The marker expires after its own TTL and leaves no other.
            clock.advance(Duration::from_secs(5));
            assert_eq!(engine.enforce_retention("g").await.unwrap(), 1);
            let info = engine.stream_info("g", "S0", false).await.unwrap();
            let st = info.state.unwrap();
            assert_eq!((st.messages, st.last_seq), (0, 2));
            // A retried counter batch answers with its totals.
            let again = engine.commit("g", batch("b1")).await.unwrap();
            assert!(again.replayed);
            assert_eq!(again.chunks[1].records[1].counter_value, "2");
        }
    }

    /// Stream creations queued while a round is written share the next round's one
    /// transaction, are answered only once it is durable, keep their API errors (a
    /// name taken in the same round), and survive a reload.
    #[tokio::test]
    async fn creations_queued_behind_a_write_share_one_transaction() {
        let store = Arc::new(Flaky::default());
        let clock = Arc::new(MockClock::new(
            UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        ));
        let opts = Options {
            retention_interval: None,
            ..Options::default()
        };
        let engine = Engine::start(store.clone(), clock.clone(), opts.clone())
            .await
            .unwrap();
        store.hold.store(true, Ordering::SeqCst);
        let e = engine.clone();
        let first = tokio::spawn(async move { e.create_stream("g", spec_n(0)).await });
        store.entered.notified().await;
        let before = store.txns.load(Ordering::SeqCst);
        // Queued (sent) while round 1 is in flight.
        let mut queued = Vec::new();
        let mut taken = spec_n(11);
        taken.name = "S1".into();
        for spec in (1..10).map(spec_n).chain([taken]) {
            let (reply, answer) = oneshot::channel();
            engine
                .commit_tx
                .send(CommitCmd {
                    group: "g".into(),
                    work: commit::Work::CreateStream { spec, reply },
                })
                .await
                .unwrap();
            queued.push(answer);
        }
        while engine.commit_tx.capacity() < engine.commit_tx.max_capacity() {
            tokio::task::yield_now().await;
        }
        assert!(!first.is_finished(), "answered before its write returned");
        store.release.notify_one();
        assert!(first.await.unwrap().unwrap().error.is_none());
        let clash = queued.pop().unwrap().await.unwrap().unwrap();
        for created in queued {
            assert!(created.await.unwrap().unwrap().error.is_none());
        }
        assert_eq!(
            clash.error.map(|e| e.err_code),
            Some(u32::from(
                infinistream_protocol::jsapi::codes::STREAM_NAME_EXIST.err_code
            ))
        );
        assert_eq!(
            store.txns.load(Ordering::SeqCst),
            before + 1,
            "nine creations and a refused one in one transaction"
        );
        drop(engine);
        let engine = Engine::start(store.clone(), clock, opts).await.unwrap();
        assert_eq!(engine.list_streams("g", "", "").await.unwrap().len(), 10);
    }

    /// Round 2 is applied on top of round 1 while round 1 is written; round 1's write
    /// fails: round 2 must fail too (its sequence built on round 1's), nothing is
    /// acked, and the next commits reuse no durable sequence.
    #[tokio::test]
    async fn a_failed_round_fails_the_round_pipelined_behind_it() {
        let store = Arc::new(Flaky::default());
        let clock = Arc::new(MockClock::new(
            UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        ));
        let opts = Options {
            retention_interval: None,
            ..Options::default()
        };
        let engine = Engine::start(store.clone(), clock, opts).await.unwrap();
        let spec = StreamSpec {
            name: "S".into(),
            config_json: b"{}".to_vec(),
            limits: Limits {
                subjects: vec!["s.>".into()],
                duplicate_window_nanos: 120_000_000_000,
                ..Default::default()
            },
        };
        assert!(
            engine
                .create_stream("g", spec)
                .await
                .unwrap()
                .error
                .is_none()
        );

        store.hold.store(true, Ordering::SeqCst);
        store.fail.store(true, Ordering::SeqCst);
        let e = engine.clone();
        let a = tokio::spawn(async move { e.commit("g", batch("A")).await });
        store.entered.notified().await;
        // Round 1 is in flight; B is taken into round 2 (applied in memory) while the
        // writer waits for round 1's write. The test runtime has one thread, so once
        // the writer has taken B off the queue it has applied it.
        let (reply, b) = oneshot::channel();
        engine
            .commit_tx
            .send(CommitCmd {
                group: "g".into(),
                work: commit::Work::Commit {
                    batch: batch("B"),
                    reply,
                },
            })
            .await
            .unwrap();
        while engine.commit_tx.capacity() < engine.commit_tx.max_capacity() {
            tokio::task::yield_now().await;
        }
        store.release.notify_one();
        assert!(a.await.unwrap().is_err(), "round 1 failed");
        assert!(b.await.unwrap().is_err(), "round 2 built on round 1");

        let c = engine.commit("g", batch("C")).await.unwrap();
        assert_eq!(first_seq(&c), Some(1), "nothing of A or B is durable");
        let a = engine.commit("g", batch("A")).await.unwrap();
        assert!(!a.replayed);
        assert_eq!(first_seq(&a), Some(2));
        let info = engine.stream_info("g", "S", false).await.unwrap();
        assert_eq!(info.state.unwrap().last_seq, 2);
    }
}
