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
//! - Other mutations (stream create/update/delete, purge, delete, swap) take the same
//!   state lock, apply, and write their own fenced transaction.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use infinistream_proto::domain::{AgentSpec, CommitBatch, StreamSpec};
use infinistream_proto::v1::{self, JsError};
use infinistream_protocol::jsapi::ApiError;
use infinistream_protocol::subject;
use infinistream_types::SharedClock;
use prost::Message;
use tokio::sync::{Mutex, mpsc, oneshot};

use crate::errors::CpError;
use crate::keys;
use crate::model::{
    AgentRecord, BatchRecord, ConsumerRecord, EntryRecord, LeaseRecord, LogRecord, LogStream,
    ReleasedRecord, StateRecord, StreamRecord, decode,
};
use crate::store::{Compare, MetaStore, Op, StoreError};
use crate::stream::{ObjectTable, Stream};

mod consumers;
mod round;
pub(crate) mod watch;

pub(crate) use consumers::CreateAction;

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
}

/// A pending stream is folded within about this many rounds (a few streams a round,
/// so folds never come all at once).
const LOG_SPREAD: usize = 16;
/// A stream with something logged this many rounds ago is folded in this round.
const LOG_MAX_AGE: u64 = 64;
/// A stream with this many entries logged and not folded is folded in this round
/// (bounds the size of the index key a fold writes).
const MAX_UNFOLDED: usize = 128;
/// Most round log records deleted in one round.
const MAX_LOG_DELETES_PER_ROUND: usize = 16;
/// Most streams folded in one round besides those changed otherwise than by appends
/// (keeps a round within the store's transaction limits).
const MAX_FOLDS_PER_ROUND: usize = 32;
/// A stream past `MAX_UNFOLDED` may go on logging while its round has spent its fold
/// budget, up to this many unfolded entries (bounds one fold's key).
const MAX_UNFOLDED_DEFERRED: usize = 4 * MAX_UNFOLDED;

impl Group {
    async fn load(store: &dyn MetaStore, name: &str, now: i64) -> Result<Group, CpError> {
        let mut g = Group {
            name: name.to_owned(),
            round_log: store.txn_limits().costly_keys,
            fold_budget: store.txn_limits().max_bytes.map(|max| max / 5),
            ..Default::default()
        };
        // The round log, per stream: (round, its part), oldest first.
        let log_prefix = keys::kind_prefix(name, "log");
        let mut logged: HashMap<String, Vec<(u64, LogStream)>> = HashMap::new();
        for kv in store.scan_prefix(&log_prefix).await? {
            let round = hex_suffix(&kv.key, &log_prefix, "round log")?;
            let rec: LogRecord = decode(&kv.key, &kv.value)?;
            for mut part in rec.streams {
                for e in &mut part.entries {
                    if e.object_ref > 0 {
                        let i = usize::try_from(e.object_ref - 1).unwrap_or(usize::MAX);
                        e.object_key = rec.objects.get(i).cloned().ok_or_else(|| {
                            corrupt(
                                &kv.key,
                                format!("object reference {} out of range", e.object_ref),
                            )
                        })?;
                        e.object_ref = 0;
                    }
                }
                logged
                    .entry(part.stream.clone())
                    .or_default()
                    .push((round, part));
            }
            g.log_keys.insert(round);
            g.log_round = g.log_round.max(round);
        }
        let cfg_prefix = keys::kind_prefix(name, "cfg");
        for kv in store.scan_prefix(&cfg_prefix).await? {
            let Some(stream) = keys::suffix(&kv.key, &cfg_prefix) else {
                continue;
            };
            let rec: StreamRecord = decode(&kv.key, &kv.value)?;
            let spec = StreamSpec::try_from(rec.config.unwrap_or_default())
                .map_err(|e| corrupt(&kv.key, e.to_string()))?;
            // The state is the newest (by store revision) of the state key and the
            // states written along with index keys.
            let st_key = keys::stream_state(name, stream);
            let (mut state_rev, mut state): (i64, StateRecord) = match store.get(&st_key).await? {
                Some(kv) => (kv.mod_revision, decode(&kv.key, &kv.value)?),
                None => (0, StateRecord::default()),
            };
            let ix_prefix = keys::index_prefix(name, stream);
            let mut entries = Vec::new();
            for kv in store.scan_prefix(&ix_prefix).await? {
                let key = hex_suffix(&kv.key, &ix_prefix, "index")?;
                let mut head: EntryRecord = decode(&kv.key, &kv.value)?;
                if let Some(st) = head.state.take()
                    && kv.mod_revision > state_rev
                {
                    state_rev = kv.mod_revision;
                    state = st;
                }
                let more = std::mem::take(&mut head.more);
                for e in std::iter::once(head).chain(more) {
                    *g.object_refs.entry(e.object_key.clone()).or_default() += 1;
                    entries.push((key, e));
                }
            }
            // Then what the round log holds past the last fold.
            let folded = state.folded_round;
            g.log_round = g.log_round.max(folded).max(rec.created_round);
            let mut replayed: Option<(u64, u64)> = None;
            let mut unfolded = 0;
            for (round, part) in logged.remove(stream).unwrap_or_default() {
                if round <= folded || round < rec.created_round {
                    continue;
                }
                let has_entries = !part.entries.is_empty();
                for e in part.entries {
                    *g.object_refs.entry(e.object_key.clone()).or_default() += 1;
                    entries.push((part.key, e));
                    unfolded += 1;
                }
                if let Some(st) = part.state {
                    state = st;
                }
                // The open key is the one the logged entries joined (a part with only
                // a state names no entry).
                let key = match replayed {
                    Some((_, key)) if !has_entries => key,
                    _ => part.key,
                };
                let since = replayed.map_or(round, |(since, _)| since);
                replayed = Some((since, key));
            }
            entries.sort_by_key(|(_, e)| e.first_seq);
            let mut s = Stream::load(spec, rec.created_unix_nanos, state, entries, now);
            s.created_round = rec.created_round;
            if let Some((since, key)) = replayed {
                s.restore_log(key, since, unfolded);
                g.pending.insert((since, stream.to_owned()));
            }
            g.streams.insert(stream.to_owned(), s);
        }
        let batch_prefix = keys::kind_prefix(name, "batch");
        let mut order = Vec::new();
        for kv in store.scan_prefix(&batch_prefix).await? {
            let Some(id) = keys::suffix(&kv.key, &batch_prefix) else {
                continue;
            };
            let rec: BatchRecord = decode(&kv.key, &kv.value)?;
            if rec.response.is_some() || rec.answered {
                g.batches.insert(id.to_owned(), kv.value.into());
                order.push((rec.committed_unix_nanos, id.to_owned()));
            }
        }
        order.sort();
        g.batch_order = order.into();
        let con_prefix = keys::kind_prefix(name, "con");
        for kv in store.scan_prefix(&con_prefix).await? {
            let Some((stream, consumer)) =
                keys::suffix(&kv.key, &con_prefix).and_then(|s| s.split_once('/'))
            else {
                continue;
            };
            let rec = decode::<ConsumerRecord>(&kv.key, &kv.value)?
                .into_memory()
                .map_err(|reason| corrupt(&kv.key, reason))?;
            g.consumers
                .insert((stream.to_owned(), consumer.to_owned()), rec);
        }
        Ok(g)
    }

    fn stream_info(&self, name: &str, details: bool) -> v1::StreamInfoResponse {
        match self.streams.get(name) {
            Some(s) => {
                let mut info = info_of(s, details);
                if let Some(st) = info.state.as_mut() {
                    st.consumer_count =
                        u32::try_from(self.consumer_count(name)).unwrap_or(u32::MAX);
                }
                info
            }
            None => error_info(ApiError::stream_not_found().into()),
        }
    }

    fn consumer_count(&self, stream: &str) -> usize {
        self.consumers
            .range((stream.to_owned(), String::new())..)
            .take_while(|((s, _), _)| s == stream)
            .count()
    }

    fn commit(
        &mut self,
        batch: &CommitBatch,
        now: i64,
        ttl: i64,
        expire_cap: usize,
    ) -> Arc<v1::CommitBatchResponse> {
        // Forget answers past their retention (bounded work per round).
        let cutoff = now.saturating_sub(ttl);
        while self.expired_batches.len() < expire_cap {
            match self.batch_order.front() {
                Some((at, _)) if *at < cutoff => {}
                _ => break,
            }
            if let Some((_, id)) = self.batch_order.pop_front() {
                self.batches.remove(&id);
                self.expired_batches.push(id);
            }
        }
        if let Some(prev) = self.batches.get(&batch.batch_id) {
            // Decoded before (at load or when stored), so it decodes now.
            let mut replay = BatchRecord::decode(&prev[..])
                .ok()
                .and_then(BatchRecord::answer)
                .unwrap_or_default();
            replay.replayed = true;
            return Arc::new(replay);
        }
        let mut chunks = Vec::with_capacity(batch.chunks.len());
        for chunk in &batch.chunks {
            let result = match self.streams.get_mut(&chunk.stream) {
                None => {
                    let e: JsError = ApiError::stream_not_found().into();
                    v1::ChunkResult {
                        stream: chunk.stream.clone(),
                        chunk_index: chunk.chunk_index,
                        records: chunk
                            .records
                            .iter()
                            .map(|_| v1::RecordResult {
                                result: Some(v1::record_result::Result::Error(e.clone())),
                            })
                            .collect(),
                        error: Some(e),
                    }
                }
                Some(s) => {
                    let before = s.state.last_seq;
                    let records = s.commit_chunk(chunk, &batch.object_key, now);
                    if !self.touched.contains(&chunk.stream) {
                        self.touched.insert(chunk.stream.clone());
                    }
                    self.interest_after_commit(&chunk.stream, before);
                    v1::ChunkResult {
                        stream: chunk.stream.clone(),
                        chunk_index: chunk.chunk_index,
                        records,
                        error: None,
                    }
                }
            };
            chunks.push(result);
        }
        let resp = v1::CommitBatchResponse {
            chunks,
            replayed: false,
        };
        // The stored answer: a compact `BatchRecord` (a first sequence per chunk),
        // encoded without cloning the answer; the caller gets the only copy of `resp`.
        let value = BatchRecord::encode_compact(now, &resp).unwrap_or_else(|| {
            let mut value = Vec::with_capacity(resp.encoded_len() + 16);
            prost::encoding::int64::encode(1, &now, &mut value);
            prost::encoding::message::encode(2, &resp, &mut value);
            value
        });
        let value: Arc<[u8]> = value.into();
        self.batches.insert(batch.batch_id.clone(), value.clone());
        self.batch_order.push_back((now, batch.batch_id.clone()));
        self.new_batches.push((batch.batch_id.clone(), value));
        Arc::new(resp)
    }

    /// The store ops for everything changed since the last call: one round log
    /// record with what was appended to streams, folds of a few streams (and of every
    /// stream changed otherwise than by appends) into their index keys, and deletes
    /// of log records every stream is folded past.
    fn take_ops(&mut self, now: i64, ops: &mut Vec<Op>) {
        let g = self.name.clone();
        self.log_round += 1;
        let round = self.log_round;
        for name in std::mem::take(&mut self.dropped) {
            self.note_stream_deleted(&name);
            self.pending.retain(|(_, s)| *s != name);
            ops.push(Op::Delete {
                key: keys::stream_cfg(&g, &name),
            });
            ops.push(Op::Delete {
                key: keys::stream_state(&g, &name),
            });
            ops.push(Op::DeletePrefix {
                prefix: keys::index_prefix(&g, &name),
            });
            ops.push(Op::DeletePrefix {
                prefix: keys::consumer_prefix(&g, &name),
            });
        }
        // Streams folded this round besides those that must be: the oldest pending,
        // enough that each is folded within about `LOG_SPREAD` rounds, and every one
        // logged `LOG_MAX_AGE` rounds ago, up to `MAX_FOLDS_PER_ROUND`.
        let spread = self.pending.len().div_ceil(LOG_SPREAD);
        let aged = self
            .pending
            .iter()
            .take_while(|(since, _)| since.saturating_add(LOG_MAX_AGE) <= round)
            .count();
        let folds: BTreeSet<String> = self
            .pending
            .iter()
            .take(spread.max(aged).min(MAX_FOLDS_PER_ROUND))
            .map(|(_, name)| name.clone())
            .collect();
        let touched = std::mem::take(&mut self.touched);
        let mut log = Vec::new();
        let mut objects = ObjectTable::default();
        // Bytes of index keys written by folds so far: once past the fold budget, the
        // folds that can wait (chosen above, or past `MAX_UNFOLDED`) go to later rounds,
        // so a round with many full streams stays within the store's request limit.
        let mut folded_bytes = 0usize;
        for name in touched
            .iter()
            .chain(folds.iter().filter(|n| !touched.contains(*n)))
        {
            if touched.contains(name) {
                self.note_stream(v1::StreamEventKind::StreamEventState, name);
            }
            let Some(s) = self.streams.get_mut(name) else {
                continue;
            };
            let budget_spent = self.fold_budget.is_some_and(|b| folded_bytes >= b);
            let log_it = if budget_spent {
                s.can_log(MAX_UNFOLDED_DEFERRED)
            } else {
                !folds.contains(name) && s.can_log(MAX_UNFOLDED)
            };
            if self.round_log && log_it {
                let was = s.since;
                if s.take_log(round, &mut log, &mut objects) && was.is_none() {
                    self.pending.insert((round, name.clone()));
                }
            } else {
                if let Some(since) = s.since {
                    self.pending.remove(&(since, name.clone()));
                }
                s.begin_fold(round);
                let (puts, deletes) = s.take_entry_changes();
                // Every index key written carries the state; the state key is written
                // only when no index key is.
                let state_carried = !puts.is_empty();
                folded_bytes += puts.iter().map(|(_, v)| v.len()).sum::<usize>();
                for (seq, value) in puts {
                    ops.push(Op::Put {
                        key: keys::index_entry(&g, name, seq),
                        value,
                    });
                }
                for seq in deletes {
                    ops.push(Op::Delete {
                        key: keys::index_entry(&g, name, seq),
                    });
                }
                if std::mem::take(&mut s.state_dirty) && !state_carried {
                    ops.push(Op::Put {
                        key: keys::stream_state(&g, name),
                        value: s.state.encode_to_vec(),
                    });
                }
            }
            for (obj, delta) in std::mem::take(&mut s.obj_delta) {
                apply_delta(&mut self.object_refs, &mut self.released, obj, delta);
            }
        }
        if !log.is_empty() {
            for key in &objects.keys {
                prost::encoding::string::encode(2, key, &mut log);
            }
            ops.push(Op::Put {
                key: keys::log_entry(&g, round),
                value: log,
            });
            self.log_keys.insert(round);
        }
        // Log records every stream is folded past (a bounded number a round: the
        // rest go in the next rounds).
        let oldest = self.pending.first().map_or(u64::MAX, |(since, _)| *since);
        let mut deletes = 0;
        while let Some(&r) = self.log_keys.first()
            && r < oldest
            && deletes < MAX_LOG_DELETES_PER_ROUND
        {
            deletes += 1;
            ops.push(Op::Delete {
                key: keys::log_entry(&g, r),
            });
            self.log_keys.pop_first();
        }
        for obj in std::mem::take(&mut self.released) {
            ops.push(Op::Put {
                key: keys::released(&g, &obj),
                value: ReleasedRecord {
                    released_unix_nanos: now,
                }
                .encode_to_vec(),
            });
        }
        for (id, value) in std::mem::take(&mut self.new_batches) {
            ops.push(Op::Put {
                key: keys::batch(&g, &id),
                value: value.to_vec(),
            });
        }
        for id in std::mem::take(&mut self.expired_batches) {
            ops.push(Op::Delete {
                key: keys::batch(&g, &id),
            });
        }
    }
}

fn corrupt(key: &[u8], reason: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        key: String::from_utf8_lossy(key).into_owned(),
        reason: reason.into(),
    }
}

/// The fixed-width hex number (a sequence or a round) that ends a `what` key.
fn hex_suffix(key: &[u8], prefix: &[u8], what: &str) -> Result<u64, StoreError> {
    keys::suffix(key, prefix)
        .and_then(|hex| u64::from_str_radix(hex, 16).ok())
        .ok_or_else(|| corrupt(key, format!("{what} key without a hex number")))
}

fn apply_delta(refs: &mut HashMap<String, u64>, released: &mut Vec<String>, obj: String, d: i64) {
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

/// A CommitBatch waiting for the writer.
#[derive(Debug)]
pub(crate) struct CommitCmd {
    group: String,
    batch: CommitBatch,
    reply: oneshot::Sender<Result<Arc<v1::CommitBatchResponse>, CpError>>,
}

/// Re-creates an error for each waiter of a failed round.
fn replicate(e: &CpError) -> CpError {
    match e {
        CpError::Store(StoreError::Unavailable(m)) => StoreError::Unavailable(m.clone()).into(),
        CpError::Store(StoreError::Backend(m)) => StoreError::Backend(m.clone()).into(),
        CpError::Store(StoreError::Corrupt { key, reason }) => StoreError::Corrupt {
            key: key.clone(),
            reason: reason.clone(),
        }
        .into(),
        CpError::Invalid(i) => CpError::Invalid(i.clone()),
        CpError::NotFound(m) => CpError::NotFound(m.clone()),
        CpError::NotLeader(m) => CpError::NotLeader(m.clone()),
        CpError::ShuttingDown => CpError::ShuttingDown,
    }
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
}

type CommitReply = oneshot::Sender<Result<Arc<v1::CommitBatchResponse>, CpError>>;

/// A formed round, written by its own task.
struct RoundWrite {
    epoch: u64,
    ops: Vec<Op>,
    answered: Vec<(CommitReply, Arc<v1::CommitBatchResponse>)>,
    events: Vec<(String, Vec<v1::StreamEvent>)>,
    _order: tokio::sync::OwnedMutexGuard<()>,
    /// Batches in the round, and when it was formed (for the round's debug line).
    batches: usize,
    formed: std::time::Instant,
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

    // ---------------- streams ----------------

    pub(crate) async fn create_stream(
        &self,
        group: &str,
        spec: StreamSpec,
    ) -> Result<v1::StreamInfoResponse, CpError> {
        let mut st = self.state.lock().await;
        let g = self.group_mut(&mut st, group).await?;
        if let Some(existing) = g.streams.get(&spec.name) {
            if existing.spec == spec {
                return Ok(info_of(existing, false));
            }
            return Ok(error_info(ApiError::stream_name_exist().into()));
        }
        if overlaps(g, &spec) {
            return Ok(error_info(ApiError::stream_subject_overlap().into()));
        }
        let now = self.now();
        let name = spec.name.clone();
        // The next `take_ops` (below) forms round `log_round + 1`.
        let created_round = g.log_round + 1;
        let rec = StreamRecord {
            config: Some((&spec).into()),
            created_unix_nanos: now,
            created_round,
        };
        let mut stream = Stream::new(spec, now);
        stream.created_round = created_round;
        g.streams.insert(name.clone(), stream);
        g.touched.insert(name.clone());
        g.note_stream(v1::StreamEventKind::StreamEventCreated, &name);
        let mut ops = vec![Op::Put {
            key: keys::stream_cfg(group, &name),
            value: rec.encode_to_vec(),
        }];
        g.take_ops(now, &mut ops);
        self.write_ops(&mut st, ops).await?;
        let g = self.group_mut(&mut st, group).await?;
        Ok(g.stream_info(&name, false))
    }

    pub(crate) async fn update_stream(
        &self,
        group: &str,
        spec: StreamSpec,
    ) -> Result<v1::StreamInfoResponse, CpError> {
        let mut st = self.state.lock().await;
        let g = self.group_mut(&mut st, group).await?;
        let Some(existing) = g.streams.get(&spec.name) else {
            return Ok(error_info(ApiError::stream_not_found().into()));
        };
        if existing.spec.limits.sealed && !spec.limits.sealed {
            return Ok(error_info(
                ApiError::stream_invalid_config(
                    "stream configuration update can not unseal a sealed stream",
                )
                .into(),
            ));
        }
        if overlaps(g, &spec) {
            return Ok(error_info(ApiError::stream_subject_overlap().into()));
        }
        let now = self.now();
        let name = spec.name.clone();
        let created = existing.created;
        let rec = StreamRecord {
            config: Some((&spec).into()),
            created_unix_nanos: created,
            created_round: existing.created_round,
        };
        if let Some(s) = g.streams.get_mut(&name) {
            s.spec = spec;
            s.enforce_all_limits(now);
        }
        g.touched.insert(name.clone());
        g.note_stream(v1::StreamEventKind::StreamEventUpdated, &name);
        let mut ops = vec![Op::Put {
            key: keys::stream_cfg(group, &name),
            value: rec.encode_to_vec(),
        }];
        g.take_ops(now, &mut ops);
        self.write_ops(&mut st, ops).await?;
        let g = self.group_mut(&mut st, group).await?;
        Ok(g.stream_info(&name, false))
    }

    pub(crate) async fn delete_stream(
        &self,
        group: &str,
        name: &str,
    ) -> Result<Option<JsError>, CpError> {
        let mut st = self.state.lock().await;
        let g = self.group_mut(&mut st, group).await?;
        let Some(mut s) = g.streams.remove(name) else {
            return Ok(Some(ApiError::stream_not_found().into()));
        };
        s.remove_all_entries();
        for (obj, d) in std::mem::take(&mut s.obj_delta) {
            apply_delta(&mut g.object_refs, &mut g.released, obj, d);
        }
        g.touched.remove(name);
        g.dropped.push(name.to_owned());
        g.consumers.retain(|(s, _), _| s != name);
        self.flush_group(&mut st, group).await?;
        Ok(None)
    }

    pub(crate) async fn stream_info(
        &self,
        group: &str,
        name: &str,
        details: bool,
    ) -> Result<v1::StreamInfoResponse, CpError> {
        let mut st = self.state.lock().await;
        let g = self.group_mut(&mut st, group).await?;
        Ok(g.stream_info(name, details))
    }

    pub(crate) async fn list_streams(
        &self,
        group: &str,
        filter: &str,
    ) -> Result<Vec<v1::StreamInfoResponse>, CpError> {
        let mut st = self.state.lock().await;
        let g = self.group_mut(&mut st, group).await?;
        Ok(g.streams
            .iter()
            .filter(|(_, s)| {
                filter.is_empty()
                    || s.spec
                        .limits
                        .subjects
                        .iter()
                        .any(|x| subject::subjects_collide(x, filter))
            })
            .map(|(name, _)| g.stream_info(name, false))
            .collect())
    }

    /// Queues a batch for the writer and waits for its durable answer.
    pub(crate) async fn commit(
        &self,
        group: &str,
        batch: CommitBatch,
    ) -> Result<Arc<v1::CommitBatchResponse>, CpError> {
        let (reply, rx) = oneshot::channel();
        self.commit_tx
            .send(CommitCmd {
                group: group.to_owned(),
                batch,
                reply,
            })
            .await
            .map_err(|_| CpError::ShuttingDown)?;
        rx.await.map_err(|_| CpError::ShuttingDown)?
    }

    /// Forms one writer round: applies `first` and every batch queued after it in
    /// memory, and goes on applying batches as they arrive until the round before is
    /// written (or this round is full), so a round folds everything that queued
    /// during the previous write, as without pipelining, but is applied already when
    /// that write returns. Then takes what changed, first in line for the store. The
    /// state lock is held throughout: nobody sees the undurable changes.
    async fn apply_round(
        &self,
        first: CommitCmd,
        rx: &mut mpsc::Receiver<CommitCmd>,
        held: &mut Option<CommitCmd>,
    ) -> RoundWrite {
        let mut st = self.state.lock().await;
        let limits = self.store.txn_limits();
        let mut budget = round::Budget::new(&limits);
        budget.take(&first.batch);
        let mut count = 1;
        let mut answered = Vec::new();
        let mut groups = BTreeSet::new();
        self.apply_one(&mut st, first, &limits, &mut answered, &mut groups)
            .await;
        let max = self.opts.max_batches_per_txn;
        let mut open = true;
        // Take what is queued now.
        while open && count < max {
            match rx.try_recv() {
                Ok(c) if budget.take(&c.batch) => {
                    count += 1;
                    self.apply_one(&mut st, c, &limits, &mut answered, &mut groups)
                        .await;
                }
                Ok(c) => {
                    *held = Some(c);
                    open = false;
                }
                Err(_) => break,
            }
        }
        // Then what arrives until the write in flight returns.
        let order = self.order.clone().lock_owned();
        tokio::pin!(order);
        let guard = loop {
            if !open || count >= max {
                break order.await;
            }
            tokio::select! {
                biased;
                guard = &mut order => break guard,
                cmd = rx.recv() => match cmd {
                    Some(c) if budget.take(&c.batch) => {
                        count += 1;
                        self.apply_one(&mut st, c, &limits, &mut answered, &mut groups)
                            .await;
                    }
                    Some(c) => {
                        *held = Some(c);
                        open = false;
                    }
                    None => open = false,
                },
            }
        };
        let now = self.now();
        let mut ops = Vec::new();
        let mut events = Vec::new();
        for name in &groups {
            if let Some(g) = st.groups.get_mut(name) {
                g.take_ops(now, &mut ops);
                events.push((name.clone(), std::mem::take(&mut g.events)));
            }
        }
        RoundWrite {
            epoch: st.epoch,
            ops,
            answered,
            events,
            _order: guard,
            batches: count,
            formed: std::time::Instant::now(),
        }
    }

    /// Applies one batch to the cached group (answered later, or now on error).
    async fn apply_one(
        &self,
        st: &mut State,
        cmd: CommitCmd,
        limits: &crate::store::TxnLimits,
        answered: &mut Vec<(CommitReply, Arc<v1::CommitBatchResponse>)>,
        groups: &mut BTreeSet<String>,
    ) {
        let now = self.now();
        let ttl = nanos(self.opts.batch_answer_ttl);
        match self.cached_group(st, &cmd.group).await {
            Ok(g) => {
                let resp = g.commit(&cmd.batch, now, ttl, round::expire_cap(limits));
                if !groups.contains(&cmd.group) {
                    groups.insert(cmd.group.clone());
                }
                answered.push((cmd.reply, resp));
            }
            Err(e) => {
                let _ = cmd.reply.send(Err(e));
            }
        }
    }

    /// Writes a formed round (after the rounds before it) and answers its callers.
    /// Even a round with nothing to write waits its turn: it may replay answers of a
    /// round still being written.
    async fn write_round(&self, round: RoundWrite) {
        let waited = round.formed.elapsed();
        let ops = round.ops.len();
        let res = if round.epoch < self.valid_from.load(std::sync::atomic::Ordering::Acquire) {
            Err(stale_cache())
        } else if round.ops.is_empty() {
            Ok(0)
        } else {
            self.fenced_txn(round.ops, Durability::Synced).await
        };
        tracing::debug!(
            batches = round.batches,
            ops,
            waited_us = u64::try_from(waited.as_micros()).unwrap_or(u64::MAX),
            written_us = u64::try_from(round.formed.elapsed().saturating_sub(waited).as_micros())
                .unwrap_or(u64::MAX),
            ok = res.is_ok(),
            "commit round written"
        );
        match res {
            Ok(_) => {
                for (group, events) in round.events {
                    self.publish_group_events(group, events);
                }
                for (reply, resp) in round.answered {
                    let _ = reply.send(Ok(resp));
                }
            }
            Err(e) => {
                self.fail_epoch(round.epoch);
                for (reply, _) in round.answered {
                    let _ = reply.send(Err(replicate(&e)));
                }
            }
        }
        // `round._order` is released here: the next write may go.
    }

    pub(crate) async fn read_index(
        &self,
        group: &str,
        req: v1::ReadIndexRequest,
    ) -> Result<v1::ReadIndexResponse, CpError> {
        let mut st = self.state.lock().await;
        let g = self.group_mut(&mut st, group).await?;
        let Some(s) = g.streams.get(&req.stream) else {
            return Ok(v1::ReadIndexResponse {
                error: Some(ApiError::stream_not_found().into()),
                ..Default::default()
            });
        };
        let limit = if req.limit == 0 {
            1000
        } else {
            req.limit as usize
        };
        Ok(v1::ReadIndexResponse {
            error: None,
            entries: s.read_index(req.start_seq, req.end_seq, limit),
            state: Some(s.state(false)),
        })
    }

    pub(crate) async fn seq_for_time(
        &self,
        group: &str,
        stream: &str,
        ts: i64,
    ) -> Result<v1::SeqForTimeResponse, CpError> {
        let mut st = self.state.lock().await;
        let g = self.group_mut(&mut st, group).await?;
        Ok(match g.streams.get(stream) {
            Some(s) => v1::SeqForTimeResponse {
                error: None,
                seq: s.seq_for_time(ts),
            },
            None => v1::SeqForTimeResponse {
                error: Some(ApiError::stream_not_found().into()),
                seq: 0,
            },
        })
    }

    pub(crate) async fn last_by_subject(
        &self,
        group: &str,
        stream: &str,
        subjects: &[String],
    ) -> Result<v1::LastBySubjectResponse, CpError> {
        let mut st = self.state.lock().await;
        let g = self.group_mut(&mut st, group).await?;
        Ok(match g.streams.get(stream) {
            Some(s) => v1::LastBySubjectResponse {
                error: None,
                subjects: s.last_by_subject(subjects),
            },
            None => v1::LastBySubjectResponse {
                error: Some(ApiError::stream_not_found().into()),
                subjects: Vec::new(),
            },
        })
    }

    pub(crate) async fn purge(
        &self,
        group: &str,
        req: v1::PurgeStreamRequest,
    ) -> Result<v1::PurgeStreamResponse, CpError> {
        let mut st = self.state.lock().await;
        let g = self.group_mut(&mut st, group).await?;
        let Some(s) = g.streams.get_mut(&req.stream) else {
            return Ok(v1::PurgeStreamResponse {
                error: Some(ApiError::stream_not_found().into()),
                purged: 0,
            });
        };
        let refuse = if s.spec.limits.sealed {
            Some(ApiError::stream_sealed().into())
        } else if s.spec.limits.deny_purge {
            Some(ApiError::stream_purge_failed("stream purge not permitted").into())
        } else {
            None
        };
        if let Some(e) = refuse {
            return Ok(v1::PurgeStreamResponse {
                error: Some(e),
                purged: 0,
            });
        }
        if !req.subject.is_empty() && !subject::is_valid_subject(&req.subject) {
            return Err(CpError::Invalid(infinistream_proto::InvalidArgument {
                field: "subject",
                reason: format!("invalid subject filter `{}`", req.subject),
            }));
        }
        let purged = s.purge(&req.subject, req.keep, req.up_to_seq);
        g.touched.insert(req.stream.clone());
        self.flush_group(&mut st, group).await?;
        Ok(v1::PurgeStreamResponse {
            error: None,
            purged,
        })
    }

    pub(crate) async fn delete_message(
        &self,
        group: &str,
        stream: &str,
        seq: u64,
    ) -> Result<Option<JsError>, CpError> {
        let mut st = self.state.lock().await;
        let g = self.group_mut(&mut st, group).await?;
        let Some(s) = g.streams.get_mut(stream) else {
            return Ok(Some(ApiError::stream_not_found().into()));
        };
        if s.spec.limits.sealed {
            return Ok(Some(ApiError::stream_sealed().into()));
        }
        if s.spec.limits.deny_delete {
            return Ok(Some(
                ApiError::stream_msg_delete_failed("message delete not permitted").into(),
            ));
        }
        if !s.remove_seq(seq) {
            return Ok(Some(
                ApiError::stream_msg_delete_failed("no message found").into(),
            ));
        }
        g.touched.insert(stream.to_owned());
        self.flush_group(&mut st, group).await?;
        Ok(None)
    }

    /// Applies time-based limits to every loaded stream of `group` now.
    pub(crate) async fn enforce_retention(&self, group: &str) -> Result<u64, CpError> {
        let mut st = self.state.lock().await;
        let now = self.now();
        let g = self.group_mut(&mut st, group).await?;
        let mut removed = 0;
        let names: Vec<String> = g.streams.keys().cloned().collect();
        for name in names {
            if let Some(s) = g.streams.get_mut(&name) {
                let n = s.enforce_time(now);
                if n > 0 {
                    removed += n;
                    g.touched.insert(name);
                }
            }
        }
        self.flush_group(&mut st, group).await?;
        Ok(removed)
    }

    async fn loaded_groups(&self) -> Vec<String> {
        self.state.lock().await.groups.keys().cloned().collect()
    }

    // ---------------- jobs ----------------

    pub(crate) async fn swap_index(
        &self,
        group: &str,
        req: v1::SwapIndexRequest,
    ) -> Result<v1::SwapIndexResponse, CpError> {
        let mut st = self.state.lock().await;
        let g = self.group_mut(&mut st, group).await?;
        let Some(s) = g.streams.get_mut(&req.stream) else {
            return Ok(v1::SwapIndexResponse {
                swapped: false,
                reason: "stream not found".into(),
            });
        };
        if let Err(reason) = s.swap(
            &req.replaced,
            &req.segment_object_key,
            req.segment_byte_size,
        ) {
            return Ok(v1::SwapIndexResponse {
                swapped: false,
                reason,
            });
        }
        g.touched.insert(req.stream.clone());
        self.flush_group(&mut st, group).await?;
        Ok(v1::SwapIndexResponse {
            swapped: true,
            reason: String::new(),
        })
    }

    pub(crate) async fn list_objects(
        &self,
        group: &str,
    ) -> Result<v1::ListObjectsResponse, CpError> {
        let mut st = self.state.lock().await;
        let g = self.group_mut(&mut st, group).await?;
        let mut referenced: Vec<String> = g.object_refs.keys().cloned().collect();
        referenced.sort();
        drop(st);
        let prefix = keys::kind_prefix(group, "rel");
        let mut released = Vec::new();
        for kv in self.store.scan_prefix(&prefix).await? {
            let Some(obj) = keys::suffix(&kv.key, &prefix) else {
                continue;
            };
            let rec: ReleasedRecord = decode(&kv.key, &kv.value)?;
            released.push(v1::ReleasedObject {
                object_key: obj.to_owned(),
                released_unix_nanos: rec.released_unix_nanos,
            });
        }
        Ok(v1::ListObjectsResponse {
            referenced,
            released,
        })
    }

    pub(crate) async fn forget_objects(
        &self,
        group: &str,
        objects: &[String],
    ) -> Result<(), CpError> {
        let ops = objects
            .iter()
            .map(|o| Op::Delete {
                key: keys::released(group, o),
            })
            .collect::<Vec<_>>();
        if ops.is_empty() {
            return Ok(());
        }
        self.write_plain(vec![], ops).await.map(|_| ())
    }

    pub(crate) async fn acquire_lease(
        &self,
        group: &str,
        name: &str,
        holder: &str,
        ttl: Duration,
        renew_only: bool,
    ) -> Result<v1::LeaseResponse, CpError> {
        let key = keys::lease(group, name);
        // A CAS loop: retried only when someone else changed the lease meanwhile.
        for _ in 0..16 {
            let now = self.now();
            let current = self.store.get(&key).await?;
            let (rec, rev) = match &current {
                Some(kv) => (
                    Some(decode::<LeaseRecord>(&kv.key, &kv.value)?),
                    Some(kv.mod_revision),
                ),
                None => (None, None),
            };
            let free = rec
                .as_ref()
                .is_none_or(|r| r.expires_unix_nanos <= now || r.holder == holder);
            let ours = rec
                .as_ref()
                .is_some_and(|r| r.holder == holder && r.expires_unix_nanos > now);
            if !free || (renew_only && !ours) {
                let r = rec.unwrap_or_default();
                return Ok(v1::LeaseResponse {
                    acquired: false,
                    holder: r.holder,
                    expires_unix_nanos: r.expires_unix_nanos,
                    generation: r.generation,
                });
            }
            let generation = match &rec {
                Some(r) if r.holder == holder && r.expires_unix_nanos > now => r.generation,
                Some(r) => r.generation + 1,
                None => 1,
            };
            let next = LeaseRecord {
                holder: holder.to_owned(),
                expires_unix_nanos: now.saturating_add(nanos(ttl)),
                generation,
            };
            let ok = self
                .write_plain(
                    vec![Compare::ModRevision {
                        key: key.clone(),
                        revision: rev,
                    }],
                    vec![Op::Put {
                        key: key.clone(),
                        value: next.encode_to_vec(),
                    }],
                )
                .await?;
            if ok {
                return Ok(v1::LeaseResponse {
                    acquired: true,
                    holder: next.holder,
                    expires_unix_nanos: next.expires_unix_nanos,
                    generation: next.generation,
                });
            }
        }
        Err(StoreError::Unavailable(format!("lease `{name}` is contended")).into())
    }

    pub(crate) async fn release_lease(
        &self,
        group: &str,
        name: &str,
        holder: &str,
    ) -> Result<bool, CpError> {
        let key = keys::lease(group, name);
        let Some(kv) = self.store.get(&key).await? else {
            return Ok(false);
        };
        let rec: LeaseRecord = decode(&kv.key, &kv.value)?;
        if rec.holder != holder {
            return Ok(false);
        }
        // Keep the generation: expire the lease instead of deleting it.
        let expired = LeaseRecord {
            expires_unix_nanos: 0,
            ..rec
        };
        self.write_plain(
            vec![Compare::ModRevision {
                key: key.clone(),
                revision: Some(kv.mod_revision),
            }],
            vec![Op::Put {
                key,
                value: expired.encode_to_vec(),
            }],
        )
        .await
    }

    // ---------------- agents ----------------

    pub(crate) async fn register_agent(
        &self,
        group: &str,
        spec: AgentSpec,
        lease: Duration,
    ) -> Result<v1::RegisterResponse, CpError> {
        let lease = if lease.is_zero() {
            self.opts.agent_lease_default
        } else {
            lease.clamp(Duration::from_secs(1), Duration::from_secs(300))
        };
        let expires = self.now().saturating_add(nanos(lease));
        let info = v1::AgentInfo {
            agent_id: spec.agent_id.clone(),
            roles: spec.roles,
            zone: spec.zone,
            client_address: spec.client_address,
            peer_address: spec.peer_address,
            lease_expires_unix_nanos: expires,
            version: spec.version,
        };
        self.write_plain(
            vec![],
            vec![Op::Put {
                key: keys::agent(group, &spec.agent_id),
                value: AgentRecord {
                    info: Some(info),
                    lease_ms: u64::try_from(lease.as_millis()).unwrap_or(u64::MAX),
                }
                .encode_to_vec(),
            }],
        )
        .await?;
        Ok(v1::RegisterResponse {
            lease_expires_unix_nanos: expires,
            lease_ms: u64::try_from(lease.as_millis()).unwrap_or(u64::MAX),
        })
    }

    pub(crate) async fn heartbeat(&self, group: &str, agent_id: &str) -> Result<i64, CpError> {
        let key = keys::agent(group, agent_id);
        for _ in 0..16 {
            let now = self.now();
            let Some(kv) = self.store.get(&key).await? else {
                return Err(CpError::NotFound(format!(
                    "agent `{agent_id}`: register again"
                )));
            };
            let rec: AgentRecord = decode(&kv.key, &kv.value)?;
            let mut info = rec.info.unwrap_or_default();
            let lease = info.lease_expires_unix_nanos;
            if lease <= now {
                return Err(CpError::NotFound(format!(
                    "agent `{agent_id}`: lease expired, register again"
                )));
            }
            let ext = nanos(Duration::from_millis(rec.lease_ms.max(1000)));
            info.lease_expires_unix_nanos = now.saturating_add(ext).max(lease);
            let expires = info.lease_expires_unix_nanos;
            let ok = self
                .write_plain(
                    vec![Compare::ModRevision {
                        key: key.clone(),
                        revision: Some(kv.mod_revision),
                    }],
                    vec![Op::Put {
                        key: key.clone(),
                        value: AgentRecord {
                            info: Some(info),
                            lease_ms: rec.lease_ms,
                        }
                        .encode_to_vec(),
                    }],
                )
                .await?;
            if ok {
                return Ok(expires);
            }
        }
        Err(StoreError::Unavailable(format!("agent `{agent_id}` is contended")).into())
    }

    pub(crate) async fn deregister(&self, group: &str, agent_id: &str) -> Result<(), CpError> {
        self.write_plain(
            vec![],
            vec![Op::Delete {
                key: keys::agent(group, agent_id),
            }],
        )
        .await
        .map(|_| ())
    }

    pub(crate) async fn list_agents(
        &self,
        group: &str,
        role: &str,
        zone: &str,
    ) -> Result<Vec<v1::AgentInfo>, CpError> {
        let now = self.now();
        let mut out = Vec::new();
        for kv in self
            .store
            .scan_prefix(&keys::kind_prefix(group, "agent"))
            .await?
        {
            let rec: AgentRecord = decode(&kv.key, &kv.value)?;
            let Some(info) = rec.info else { continue };
            if info.lease_expires_unix_nanos <= now
                || (!role.is_empty() && !info.roles.iter().any(|r| r == role))
                || (!zone.is_empty() && info.zone != zone)
            {
                continue;
            }
            out.push(info);
        }
        Ok(out)
    }
}

fn overlaps(g: &Group, spec: &StreamSpec) -> bool {
    g.streams.values().any(|other| {
        other.name() != spec.name
            && other.spec.limits.subjects.iter().any(|a| {
                spec.limits
                    .subjects
                    .iter()
                    .any(|b| subject::subjects_collide(a, b))
            })
    })
}

/// The writer: drains queued batches into rounds until the engine is dropped.
/// A round takes what is queued, up to `max_batches_per_txn` and the store's
/// transaction limits (see `round`); a batch that does not fit starts the next round.
async fn writer(engine: std::sync::Weak<Engine>, mut rx: mpsc::Receiver<CommitCmd>) {
    let mut held: Option<CommitCmd> = None;
    loop {
        let first = match held.take() {
            Some(cmd) => cmd,
            None => match rx.recv().await {
                Some(cmd) => cmd,
                None => break,
            },
        };
        let Some(engine) = engine.upgrade() else {
            let _ = first.reply.send(Err(CpError::ShuttingDown));
            break;
        };
        // Apply this round (while the previous one may still be writing), then write
        // it in its own task and go on with the next round.
        let round = engine.apply_round(first, &mut rx, &mut held).await;
        let writer = engine.clone();
        tokio::spawn(async move { writer.write_round(round).await });
    }
}

async fn retention_ticker(engine: std::sync::Weak<Engine>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tick.tick().await;
        let Some(engine) = engine.upgrade() else {
            break;
        };
        for group in engine.loaded_groups().await {
            if let Err(e) = engine.enforce_retention(&group).await {
                tracing::warn!(group, error = %e, "retention pass failed");
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::UNIX_EPOCH;

    use async_trait::async_trait;
    use infinistream_proto::domain::{Chunk, Limits, Record, Rollup};
    use infinistream_types::MockClock;
    use tokio::sync::Notify;

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
                    msg_id: None,
                    expected_stream: None,
                    expected_last_seq: None,
                    expected_last_subject_seq: None,
                    expected_last_subject_seq_subject: None,
                    expected_last_msg_id: None,
                    rollup: Rollup::None,
                    ttl_seconds: None,
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
                batch: batch("B"),
                reply,
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
