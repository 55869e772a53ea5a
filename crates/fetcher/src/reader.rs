//! Reading single messages of a stream: the control-plane index says where a sequence
//! lives, the bucket holds the bytes.
//!
//! A read is three steps, each cached so that reads of neighbouring sequences share
//! the work:
//! 1. `ReadIndex` (control plane) → the index entry holding the sequence: object key,
//!    chunk index, chunk positions per sequence, deleted sequences;
//! 2. the object's footer (batch) or index (compacted segment): one suffix-range GET of
//!    the object's tail, decoded and kept in a bounded LRU keyed by object key;
//! 3. the chunk (or segment block): one ranged GET, verified and decoded once, kept in an
//!    LRU bounded by bytes.
//!
//! Concurrent misses for the same footer or chunk are coalesced: the first caller
//! loads it, the others await the same cell, so a burst of KV gets against one fresh
//! object costs one GET per range. Deleted sequences are never returned: the index
//! marks them, and objects are immutable, so a cached chunk never goes stale — only
//! the index (always asked) decides what is live.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::Arc;

use bytes::Bytes;
use infinistream_cp_client::{CallError, ControlPlaneClient};
use infinistream_objstore::{Bucket, BucketError};
use infinistream_proto::v1;
use infinistream_protocol::jsapi::counter::value_body;
use infinistream_protocol::jsapi::{ApiError, codes};
use infinistream_protocol::subject::matches as subject_matches;
use infinistream_segment::{
    BatchFooter, Block, Chunk, DecodeError, SUGGESTED_TAIL_LEN, SegmentIndex, TailRead,
    decode_block, decode_chunk,
};
use object_store::path::Path;
use parking_lot::Mutex;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::{Registry, Unit};
use tokio::sync::OnceCell;

use crate::cache::WeightedLru;
use crate::zone::{RangeKey, ZoneCache, ZoneError};

/// How many index entries one `ReadIndex` call asks for while scanning forward.
const SCAN_ENTRIES: u32 = 32;

/// One stored message, as the read APIs return it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    /// Stream sequence.
    pub seq: u64,
    /// The subject it was published to.
    pub subject: String,
    /// The raw NATS header block, empty when none.
    pub headers: Bytes,
    /// The payload.
    pub payload: Bytes,
    /// Store time, unix nanoseconds.
    pub timestamp: i64,
}

/// Sequences closer than this to the first of a cluster share one index read in
/// [`StreamReader::get_many`].
const MANY_CLUSTER_SPAN: u64 = 4096;
/// Most index entries one clustered read returns.
const MANY_INDEX_LIMIT: u32 = 4096;

/// Why a read failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The stream does not exist (10059).
    #[error("stream not found: `{0}`")]
    StreamNotFound(String),
    /// No live message matches (10037).
    #[error("no message found")]
    NoMessage,
    /// The control plane answered with a JetStream error other than the above.
    #[error("control plane refused the read: {0}")]
    Refused(ApiError),
    /// The control plane could not be reached.
    #[error("control plane unavailable: {0}")]
    ControlPlane(String),
    /// The index names an object key that is not a valid path.
    #[error("invalid object key in the index: `{0}`")]
    BadKey(String),
    /// A bucket request failed (after the bucket's own retries).
    #[error("bucket read failed: {0}")]
    Bucket(#[from] BucketError),
    /// A bucket request of the store itself failed.
    #[error("bucket read of `{key}` failed: {source}")]
    Store {
        key: String,
        #[source]
        source: object_store::Error,
    },
    /// The object's bytes did not decode.
    #[error("corrupt object `{key}`: {source}")]
    Decode {
        key: String,
        #[source]
        source: DecodeError,
    },
    /// The index and the object disagree (wrong chunk, missing position).
    #[error("index and object `{key}` disagree: {reason}")]
    Inconsistent { key: String, reason: &'static str },
}

impl From<ZoneError> for ReadError {
    fn from(e: ZoneError) -> Self {
        match e {
            ZoneError::BadKey(key) => ReadError::BadKey(key),
            ZoneError::Bucket(e) => ReadError::Bucket(e),
            ZoneError::Store { key, source } => ReadError::Store { key, source },
        }
    }
}

impl ReadError {
    /// The JetStream API error for this failure, as nats-server would answer.
    pub fn api_error(&self) -> ApiError {
        match self {
            Self::StreamNotFound(_) => ApiError::stream_not_found(),
            Self::NoMessage => ApiError::no_message_found(),
            Self::Refused(e) => e.clone(),
            other => ApiError::internal(other),
        }
    }
}

/// Cache and read counters of a [`StreamReader`]; cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct ReaderMetrics {
    hits: Family<CacheLabel, Counter>,
    misses: Family<CacheLabel, Counter>,
    gets: Family<CacheLabel, Counter>,
    bytes: Family<CacheLabel, Counter>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct CacheLabel {
    cache: &'static str,
}

/// The footer/index cache (`cache="footer"`).
pub const FOOTERS: &str = "footer";
/// The chunk/block cache (`cache="chunk"`).
pub const CHUNKS: &str = "chunk";

impl ReaderMetrics {
    /// Registers the counters under `fetcher_` in `registry`.
    pub fn register(&self, registry: &mut Registry) {
        let registry = registry.sub_registry_with_prefix("fetcher");
        registry.register(
            "cache_hits",
            "Reads served from the in-memory cache, by cache (footer, chunk)",
            self.hits.clone(),
        );
        registry.register(
            "cache_misses",
            "Reads that missed the in-memory cache, by cache (footer, chunk)",
            self.misses.clone(),
        );
        registry.register(
            "bucket_gets",
            "Ranged GETs sent to the bucket by the read path, by cache (footer, chunk)",
            self.gets.clone(),
        );
        registry.register_with_unit(
            "bucket_read",
            "Bytes read from the bucket by the read path, by cache (footer, chunk)",
            Unit::Bytes,
            self.bytes.clone(),
        );
    }

    /// Cache hits of `cache` ([`FOOTERS`] or [`CHUNKS`]).
    pub fn hits(&self, cache: &'static str) -> u64 {
        self.hits.get_or_create(&CacheLabel { cache }).get()
    }

    /// Cache misses of `cache`.
    pub fn misses(&self, cache: &'static str) -> u64 {
        self.misses.get_or_create(&CacheLabel { cache }).get()
    }

    /// Bucket GETs made for `cache`.
    pub fn bucket_gets(&self, cache: &'static str) -> u64 {
        self.gets.get_or_create(&CacheLabel { cache }).get()
    }

    /// Bytes read from the bucket for `cache`.
    pub fn bucket_bytes(&self, cache: &'static str) -> u64 {
        self.bytes.get_or_create(&CacheLabel { cache }).get()
    }

    pub(crate) fn got(&self, cache: &'static str, len: usize) {
        self.gets.get_or_create(&CacheLabel { cache }).inc();
        self.bytes
            .get_or_create(&CacheLabel { cache })
            .inc_by(len as u64);
    }
}

/// Cache bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReaderOptions {
    /// Decoded footers / segment indexes kept.
    pub footer_entries: u64,
    /// Decoded chunk / block bytes kept.
    pub chunk_bytes: u64,
    /// First tail GET length for a footer.
    pub tail_len: u64,
}

impl Default for ReaderOptions {
    fn default() -> Self {
        Self {
            footer_entries: 4096,
            chunk_bytes: 256 * 1024 * 1024,
            tail_len: SUGGESTED_TAIL_LEN,
        }
    }
}

/// An object's decoded table of contents.
#[derive(Debug)]
enum Toc {
    Batch(BatchFooter),
    Segment(SegmentIndex),
}

/// A decoded data range.
#[derive(Debug)]
enum Data {
    Chunk(Chunk),
    Block(Block),
}

/// A cache tier with coalesced loads.
#[derive(Debug)]
struct Tier<K, V> {
    name: &'static str,
    lru: Mutex<WeightedLru<K, V>>,
    loading: Mutex<HashMap<K, Arc<OnceCell<V>>>>,
}

impl<K: Hash + Eq + Clone, V: Clone> Tier<K, V> {
    fn new(name: &'static str, capacity: u64) -> Self {
        Self {
            name,
            lru: Mutex::new(WeightedLru::new(capacity)),
            loading: Mutex::new(HashMap::new()),
        }
    }

    /// The cached value, or the result of `load` (shared with concurrent callers of the
    /// same key). `load` returns the value and its weight.
    async fn get_or_load<F, Fut>(
        &self,
        key: K,
        metrics: &ReaderMetrics,
        load: F,
    ) -> Result<V, ReadError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<(V, u64), ReadError>>,
    {
        let label = CacheLabel { cache: self.name };
        if let Some(v) = self.lru.lock().get(&key) {
            metrics.hits.get_or_create(&label).inc();
            return Ok(v);
        }
        metrics.misses.get_or_create(&label).inc();
        let cell = self.loading.lock().entry(key.clone()).or_default().clone();
        let result = cell
            .get_or_try_init(|| async {
                let (value, weight) = load().await?;
                self.lru.lock().insert(key.clone(), value.clone(), weight);
                Ok::<V, ReadError>(value)
            })
            .await
            .cloned();
        let mut loading = self.loading.lock();
        if loading.get(&key).is_some_and(|c| Arc::ptr_eq(c, &cell)) {
            loading.remove(&key);
        }
        result
    }
}

/// Reads stream messages by sequence and by subject. Cheap to clone.
#[derive(Debug, Clone)]
pub struct StreamReader {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    cp: ControlPlaneClient,
    zone: ZoneCache,
    tail_len: u64,
    tocs: Tier<String, Arc<Toc>>,
    data: Tier<(String, u32), Arc<Data>>,
    metrics: ReaderMetrics,
}

impl StreamReader {
    /// A reader over `bucket` using `cp`'s index, on its own (no zone ring, no disk).
    pub fn new(cp: ControlPlaneClient, bucket: Bucket, options: ReaderOptions) -> Self {
        Self::with_zone(cp, ZoneCache::local(bucket, 0), options)
    }

    /// A reader whose bucket reads go through `zone` (memory, the range's owner in
    /// the zone, disk, then the bucket).
    pub fn with_zone(cp: ControlPlaneClient, zone: ZoneCache, options: ReaderOptions) -> Self {
        let metrics = zone.reader_metrics().clone();
        Self {
            inner: Arc::new(Inner {
                cp,
                zone,
                tail_len: options
                    .tail_len
                    .max(infinistream_segment::TRAILER_LEN as u64),
                tocs: Tier::new(FOOTERS, options.footer_entries),
                data: Tier::new(CHUNKS, options.chunk_bytes),
                metrics,
            }),
        }
    }

    /// The control-plane client the reader asks.
    pub fn control_plane(&self) -> &ControlPlaneClient {
        &self.inner.cp
    }

    /// The reader's counters.
    pub fn metrics(&self) -> &ReaderMetrics {
        &self.inner.metrics
    }

    /// The zone cache under the reader.
    pub fn zone(&self) -> &ZoneCache {
        &self.inner.zone
    }

    /// Bytes of decoded chunks held in memory, and how many there are.
    pub fn cached_chunks(&self) -> (u64, usize) {
        let lru = self.inner.data.lru.lock();
        (lru.weight(), lru.len())
    }

    /// Registers the reader's counters (`fetcher_*`, zone cache `fetcher_zone_*`).
    pub fn register(&self, registry: &mut Registry) {
        self.inner.metrics.register(registry);
        self.inner.zone.metrics().register(registry);
    }

    /// The live message at `seq`.
    #[tracing::instrument(level = "debug", skip(self))]
    pub async fn get(&self, stream: &str, seq: u64) -> Result<StoredMessage, ReadError> {
        if seq == 0 {
            return Err(ReadError::NoMessage);
        }
        let entries = self.read_index(stream, seq, seq, 1).await?;
        let entry = entries
            .into_iter()
            .find(|e| e.first_seq <= seq && seq <= e.last_seq)
            .ok_or(ReadError::NoMessage)?;
        if entry.deleted.contains(&seq) {
            return Err(ReadError::NoMessage);
        }
        self.load(stream, &entry, seq).await
    }

    /// The messages at `seqs`, answered in the same order, with one index read per
    /// cluster of nearby sequences rather than one per message (consumer deliveries
    /// load whole claims through here). A sequence that is not live answers
    /// [`ReadError::NoMessage`]; a sequence the clustered index read did not cover
    /// (an index error, or more entries than one read returns) is read on its own.
    #[tracing::instrument(level = "debug", skip(self, seqs), fields(count = seqs.len()))]
    pub async fn get_many(
        &self,
        stream: &str,
        seqs: &[u64],
    ) -> Vec<Result<StoredMessage, ReadError>> {
        let mut sorted: Vec<u64> = seqs.iter().copied().filter(|s| *s > 0).collect();
        sorted.sort_unstable();
        sorted.dedup();
        let mut entries: Vec<v1::IndexEntry> = Vec::new();
        let mut i = 0;
        while i < sorted.len() {
            let start = sorted[i];
            let mut j = i;
            while j + 1 < sorted.len() && sorted[j + 1] - start < MANY_CLUSTER_SPAN {
                j += 1;
            }
            // Entries overlapping [start, end]; an error leaves these sequences to
            // the single reads below, which report it.
            if let Ok(mut found) = self
                .read_index(stream, start, sorted[j], MANY_INDEX_LIMIT)
                .await
            {
                entries.append(&mut found);
            }
            i = j + 1;
        }
        self.load_many(stream, seqs, entries).await
    }

    /// The messages at `seqs` (answered in the same order) located through `entries`,
    /// index entries the caller already holds (a consumer claim answers with those of
    /// the claimed messages); a sequence none of them covers is read through the
    /// index on its own.
    #[tracing::instrument(level = "debug", skip(self, seqs, entries), fields(count = seqs.len()))]
    pub async fn get_many_in(
        &self,
        stream: &str,
        seqs: &[u64],
        entries: Vec<v1::IndexEntry>,
    ) -> Vec<Result<StoredMessage, ReadError>> {
        self.load_many(stream, seqs, entries).await
    }

    /// Starts loading the footers and chunks `entries` name into the caches, in the
    /// background (read-ahead: a consumer's next claim finds them loaded). What is
    /// cached already costs a lookup; a load already under way is joined, not
    /// repeated; a failed read-ahead is dropped (the real read reports errors).
    pub fn prefetch(&self, stream: &str, entries: Vec<v1::IndexEntry>) {
        for entry in entries {
            if entry.marker.is_some() {
                continue;
            }
            let Some(seq) = (entry.first_seq..=entry.last_seq).find(|s| !entry.deleted.contains(s))
            else {
                continue;
            };
            let cached = self.inner.tocs.lru.lock().contains(&entry.object_key)
                && (entry.segment
                    || self
                        .inner
                        .data
                        .lru
                        .lock()
                        .contains(&(entry.object_key.clone(), entry.chunk_index)));
            if cached {
                continue;
            }
            let reader = self.clone();
            let stream = stream.to_owned();
            tokio::spawn(async move {
                if let Err(e) = reader.warm(&stream, &entry, seq).await {
                    tracing::debug!(key = %entry.object_key, error = %e, "read-ahead failed");
                }
            });
        }
    }

    /// Loads `seqs` through `entries`, in order; see [`StreamReader::get_many`].
    async fn load_many(
        &self,
        stream: &str,
        seqs: &[u64],
        mut entries: Vec<v1::IndexEntry>,
    ) -> Vec<Result<StoredMessage, ReadError>> {
        entries.sort_by_key(|e| e.first_seq);
        let mut out = Vec::with_capacity(seqs.len());
        // The decoded chunk of the entry read last: neighbouring sequences share it
        // without a cache lookup (key copy, hash, lock) per message.
        let mut memo: Option<(usize, Arc<Data>)> = None;
        for &seq in seqs {
            let at = entries.partition_point(|e| e.first_seq <= seq);
            let found = at
                .checked_sub(1)
                .and_then(|k| entries.get(k).map(|e| (k, e)))
                .filter(|(_, e)| seq <= e.last_seq);
            out.push(match found {
                _ if seq == 0 => Err(ReadError::NoMessage),
                Some((_, e)) if e.deleted.contains(&seq) => Err(ReadError::NoMessage),
                Some((k, e)) => match &memo {
                    Some((mk, data)) if *mk == k => from_chunk(e, seq, data),
                    _ => {
                        let read = self.load(stream, e, seq).await;
                        memo = if read.is_ok() && !e.segment {
                            self.inner
                                .data
                                .lru
                                .lock()
                                .get(&(e.object_key.clone(), e.chunk_index))
                                .map(|d| (k, d))
                        } else {
                            None
                        };
                        read
                    }
                },
                None => self.get(stream, seq).await,
            });
        }
        out
    }

    /// The last live message on the literal subject `subject`.
    #[tracing::instrument(level = "debug", skip(self))]
    pub async fn last_by_subject(
        &self,
        stream: &str,
        subject: &str,
    ) -> Result<StoredMessage, ReadError> {
        // The last sequence and the message are two reads: a commit between them can
        // supersede the message (a KV put under `max_msgs_per_subject`), and its
        // sequence then reads as deleted. Ask again while the answer moves on, so a
        // subject that always had a message never reads as "no message" (found by the
        // chaos suite's linearizability check; regression test in
        // crates/agent/tests/kv.rs).
        const ATTEMPTS: usize = 16;
        let mut previous = None;
        for _ in 0..ATTEMPTS {
            let last = self.last_seqs(stream, vec![subject.to_owned()]).await?;
            // `subject` may be a filter with wildcards: the newest message on any
            // subject it matches (nats-server's last_by_subj).
            let seq = last
                .iter()
                .filter(|s| infinistream_protocol::subject::matches(subject, &s.subject))
                .map(|s| s.last_seq)
                .max()
                .ok_or(ReadError::NoMessage)?;
            match self.get(stream, seq).await {
                Err(ReadError::NoMessage) if previous != Some(seq) => previous = Some(seq),
                done => return done,
            }
        }
        Err(ReadError::ControlPlane(format!(
            "the last message on `{subject}` kept changing during {ATTEMPTS} reads"
        )))
    }

    /// Last live sequence per subject (all subjects when `subjects` is empty).
    pub async fn last_seqs(
        &self,
        stream: &str,
        subjects: Vec<String>,
    ) -> Result<Vec<v1::SubjectLast>, ReadError> {
        self.inner
            .cp
            .last_by_subject(stream, subjects)
            .await
            .map_err(|e| cp_error(stream, e))
    }

    /// The first live sequence stored at or after `timestamp` (unix ns).
    pub async fn seq_for_time(&self, stream: &str, timestamp: i64) -> Result<u64, ReadError> {
        let seq = self
            .inner
            .cp
            .seq_for_time(stream, timestamp)
            .await
            .map_err(|e| cp_error(stream, e))?;
        match seq {
            0 => Err(ReadError::NoMessage),
            seq => Ok(seq),
        }
    }

    /// The first live message with sequence ≥ `from` (and ≤ `up_to`, 0 = no bound)
    /// whose subject matches `filter` (wildcards allowed; empty or `>` = any).
    #[tracing::instrument(level = "debug", skip(self))]
    pub async fn next_matching(
        &self,
        stream: &str,
        filter: &str,
        from: u64,
        up_to: u64,
    ) -> Result<StoredMessage, ReadError> {
        let any = filter.is_empty() || filter == ">";
        let literal = !any && infinistream_protocol::subject::is_literal(filter);
        if literal {
            // A literal subject with nothing at or after `from` needs no scan.
            let last = self.last_seqs(stream, vec![filter.to_owned()]).await?;
            match last.first() {
                Some(s) if s.last_seq >= from.max(1) => {}
                _ => return Err(ReadError::NoMessage),
            }
        }
        let mut next = from.max(1);
        loop {
            if up_to != 0 && next > up_to {
                return Err(ReadError::NoMessage);
            }
            let entries = self.read_index(stream, next, up_to, SCAN_ENTRIES).await?;
            let Some(last_entry) = entries.last() else {
                return Err(ReadError::NoMessage);
            };
            let after = last_entry.last_seq.saturating_add(1);
            for entry in &entries {
                let first = entry.first_seq.max(next);
                let last = if up_to == 0 {
                    entry.last_seq
                } else {
                    entry.last_seq.min(up_to)
                };
                for seq in first..=last {
                    if entry.deleted.contains(&seq) {
                        continue;
                    }
                    let msg = self.load(stream, entry, seq).await?;
                    if any || subject_matches(filter, &msg.subject) {
                        return Ok(msg);
                    }
                }
            }
            if after <= next {
                return Err(ReadError::NoMessage);
            }
            next = after;
        }
    }

    /// How many live messages with sequence ≥ `from` (and ≤ `up_to`, 0 = no bound)
    /// match `filter` (empty or `>` = any). One index walk; without a filter no chunk
    /// is read at all, with one each chunk is read once (and cached).
    pub async fn count_matching(
        &self,
        stream: &str,
        filter: &str,
        from: u64,
        up_to: u64,
    ) -> Result<u64, ReadError> {
        let any = filter.is_empty() || filter == ">";
        let mut count = 0u64;
        let mut next = from.max(1);
        while up_to == 0 || next <= up_to {
            let entries = self.read_index(stream, next, up_to, SCAN_ENTRIES).await?;
            let Some(last_entry) = entries.last() else {
                break;
            };
            let after = last_entry.last_seq.saturating_add(1);
            for entry in &entries {
                let first = entry.first_seq.max(next);
                let last = if up_to == 0 {
                    entry.last_seq
                } else {
                    entry.last_seq.min(up_to)
                };
                if first > last {
                    continue;
                }
                if any {
                    let deleted = entry
                        .deleted
                        .iter()
                        .filter(|&&d| first <= d && d <= last)
                        .count() as u64;
                    count += last - first + 1 - deleted;
                    continue;
                }
                for seq in first..=last {
                    if entry.deleted.contains(&seq) {
                        continue;
                    }
                    let msg = self.load(stream, entry, seq).await?;
                    if subject_matches(filter, &msg.subject) {
                        count += 1;
                    }
                }
            }
            if after <= next {
                break;
            }
            next = after;
        }
        Ok(count)
    }

    /// The stream's last assigned sequence (0 when nothing was ever stored).
    pub async fn last_seq(&self, stream: &str) -> Result<u64, ReadError> {
        let resp = self.read_index_raw(stream, u64::MAX, 0, 1).await?;
        Ok(resp.state.map_or(0, |s| s.last_seq))
    }

    /// The last live sequence at or below `up_to` of every subject matching one of
    /// `filters`: a forward scan of `1..=up_to`, for reads bounded in the past (the
    /// index only knows each subject's newest sequence).
    pub async fn last_seqs_up_to(
        &self,
        stream: &str,
        filters: &[String],
        up_to: u64,
    ) -> Result<HashMap<String, u64>, ReadError> {
        let mut lasts = HashMap::new();
        let mut next = 1;
        while up_to > 0 && next <= up_to {
            let entries = self.read_index(stream, next, up_to, SCAN_ENTRIES).await?;
            let Some(last_entry) = entries.last() else {
                break;
            };
            let after = last_entry.last_seq.saturating_add(1);
            for entry in &entries {
                for seq in entry.first_seq.max(next)..=entry.last_seq.min(up_to) {
                    if entry.deleted.contains(&seq) {
                        continue;
                    }
                    let msg = self.load(stream, entry, seq).await?;
                    if filters.iter().any(|f| subject_matches(f, &msg.subject)) {
                        lasts.insert(msg.subject, seq);
                    }
                }
            }
            if after <= next {
                break;
            }
            next = after;
        }
        Ok(lasts)
    }

    async fn read_index(
        &self,
        stream: &str,
        start: u64,
        end: u64,
        limit: u32,
    ) -> Result<Vec<v1::IndexEntry>, ReadError> {
        Ok(self
            .read_index_raw(stream, start, end, limit)
            .await?
            .entries)
    }

    async fn read_index_raw(
        &self,
        stream: &str,
        start: u64,
        end: u64,
        limit: u32,
    ) -> Result<v1::ReadIndexResponse, ReadError> {
        self.inner
            .cp
            .read_index(v1::ReadIndexRequest {
                stream: stream.to_owned(),
                start_seq: start,
                end_seq: end,
                limit,
            })
            .await
            .map_err(|e| cp_error(stream, e))
    }

    /// Loads the footer and chunk of `entry` into the caches (read-ahead: entries
    /// past a claim come without per-message positions, which only reading a message
    /// needs). A segment entry loads the block holding `seq`.
    async fn warm(&self, stream: &str, entry: &v1::IndexEntry, seq: u64) -> Result<(), ReadError> {
        if entry.segment || entry.marker.is_some() {
            return self.load(stream, entry, seq).await.map(|_| ());
        }
        let Toc::Batch(footer) = &*self.toc(&entry.object_key, false).await? else {
            return Err(ReadError::Inconsistent {
                key: entry.object_key.clone(),
                reason: "object changed format",
            });
        };
        self.chunk(stream, entry, footer).await.map(|_| ())
    }

    /// The decoded chunk of batch `entry` (through the caches).
    async fn chunk(
        &self,
        stream: &str,
        entry: &v1::IndexEntry,
        footer: &BatchFooter,
    ) -> Result<Arc<Data>, ReadError> {
        let key = entry.object_key.as_str();
        let inconsistent = |reason| ReadError::Inconsistent {
            key: key.to_owned(),
            reason,
        };
        let meta = footer
            .chunk_at(entry.chunk_index)
            .ok_or_else(|| inconsistent("chunk index past the footer"))?;
        if meta.stream != stream {
            return Err(inconsistent("chunk belongs to another stream"));
        }
        let meta = meta.clone();
        let data = self
            .data(key, entry.chunk_index, meta.range(), |bytes| {
                decode_chunk(&meta, bytes).map(|c| (u64::from(meta.raw_len), Data::Chunk(c)))
            })
            .await?;
        if !matches!(&*data, Data::Chunk(_)) {
            return Err(inconsistent("object changed format"));
        }
        Ok(data)
    }

    /// Loads `seq` (known live) from the object `entry` names.
    async fn load(
        &self,
        stream: &str,
        entry: &v1::IndexEntry,
        seq: u64,
    ) -> Result<StoredMessage, ReadError> {
        if let Some(marker) = &entry.marker {
            // A subject delete marker: the control plane's index holds all of it.
            return Ok(StoredMessage {
                seq,
                subject: marker.subject.clone(),
                headers: Bytes::from(marker.headers.clone()),
                payload: Bytes::new(),
                timestamp: marker.timestamp_unix_nanos,
            });
        }
        let key = entry.object_key.as_str();
        let inconsistent = |reason| ReadError::Inconsistent {
            key: key.to_owned(),
            reason,
        };
        let toc = self.toc(key, entry.segment).await?;
        let record = match &*toc {
            Toc::Batch(footer) => {
                let offset = usize::try_from(seq - entry.first_seq)
                    .map_err(|_| inconsistent("sequence offset overflows"))?;
                let position = *entry
                    .positions
                    .get(offset)
                    .ok_or_else(|| inconsistent("no chunk position for the sequence"))?;
                let data = self.chunk(stream, entry, footer).await?;
                let Data::Chunk(chunk) = &*data else {
                    return Err(inconsistent("object changed format"));
                };
                chunk
                    .get(position as usize)
                    .ok_or_else(|| inconsistent("chunk position past the chunk"))?
            }
            Toc::Segment(index) => {
                if index.stream() != stream {
                    return Err(inconsistent("segment belongs to another stream"));
                }
                let (block_index, meta) = index
                    .block_at_or_after_seq(seq)
                    .filter(|(_, b)| b.first_seq <= seq)
                    .ok_or(ReadError::NoMessage)?;
                let meta = *meta;
                let block_index = u32::try_from(block_index)
                    .map_err(|_| inconsistent("block index overflows"))?;
                let data = self
                    .data(key, block_index, meta.range(), |bytes| {
                        decode_block(&meta, bytes)
                            .map(|b| (u64::from(meta.raw_len), Data::Block(b)))
                    })
                    .await?;
                let Data::Block(block) = &*data else {
                    return Err(inconsistent("object changed format"));
                };
                block.get(seq).ok_or(ReadError::NoMessage)?.record
            }
        };
        Ok(stored(entry, seq, record))
    }

    /// The decoded footer (batch) or index (compacted segment) of `key`.
    async fn toc(&self, key: &str, is_segment: bool) -> Result<Arc<Toc>, ReadError> {
        let inner = &self.inner;
        inner
            .tocs
            .get_or_load(key.to_owned(), &inner.metrics, || async {
                parse_key(key)?;
                let mut want = inner.tail_len;
                loop {
                    let (tail, object_len) = self.tail(key, want).await?;
                    let decode_err = |source| ReadError::Decode {
                        key: key.to_owned(),
                        source,
                    };
                    let (toc, needed) = if is_segment {
                        match SegmentIndex::decode_from_tail(&tail, object_len)
                            .map_err(decode_err)?
                        {
                            TailRead::Complete(i) => (Some(Toc::Segment(i)), 0),
                            TailRead::NeedTail(n) => (None, n),
                        }
                    } else {
                        match BatchFooter::decode_from_tail(&tail, object_len)
                            .map_err(decode_err)?
                        {
                            TailRead::Complete(f) => (Some(Toc::Batch(f)), 0),
                            TailRead::NeedTail(n) => (None, n),
                        }
                    };
                    if let Some(toc) = toc {
                        return Ok((Arc::new(toc), 1));
                    }
                    if needed <= want {
                        return Err(ReadError::Inconsistent {
                            key: key.to_owned(),
                            reason: "footer needs no more than the tail it was given",
                        });
                    }
                    want = needed;
                }
            })
            .await
    }

    /// The last `n` bytes of `key` and the object's length (one suffix GET on a
    /// zone-wide miss).
    async fn tail(&self, key: &str, n: u64) -> Result<(Bytes, u64), ReadError> {
        let data = self.inner.zone.get(&RangeKey::suffix(key, n)).await?;
        Ok((data.bytes, data.object_len))
    }

    /// The decoded data range `index` of `key` (one ranged GET on a miss).
    async fn data<F>(
        &self,
        key: &str,
        index: u32,
        range: std::ops::Range<u64>,
        decode: F,
    ) -> Result<Arc<Data>, ReadError>
    where
        F: FnOnce(Bytes) -> Result<(u64, Data), DecodeError>,
    {
        let inner = &self.inner;
        inner
            .data
            .get_or_load((key.to_owned(), index), &inner.metrics, || async {
                parse_key(key)?;
                let bytes = inner.zone.get(&RangeKey::bounded(key, range)).await?.bytes;
                let (weight, data) = decode(bytes).map_err(|source| ReadError::Decode {
                    key: key.to_owned(),
                    source,
                })?;
                Ok((Arc::new(data), weight))
            })
            .await
    }
}

/// Message `seq` of batch entry `entry` out of its decoded chunk `data` (which
/// [`StreamReader::load`] checked belongs to the entry's stream).
fn from_chunk(entry: &v1::IndexEntry, seq: u64, data: &Data) -> Result<StoredMessage, ReadError> {
    let inconsistent = |reason| ReadError::Inconsistent {
        key: entry.object_key.clone(),
        reason,
    };
    let Data::Chunk(chunk) = data else {
        return Err(inconsistent("object changed format"));
    };
    let offset = usize::try_from(seq - entry.first_seq)
        .map_err(|_| inconsistent("sequence offset overflows"))?;
    let position = *entry
        .positions
        .get(offset)
        .ok_or_else(|| inconsistent("no chunk position for the sequence"))?;
    let record = chunk
        .get(position as usize)
        .ok_or_else(|| inconsistent("chunk position past the chunk"))?;
    Ok(stored(entry, seq, record))
}

/// Message `seq` as stored: the record's bytes, except that a counter stream's body is
/// the subject's total after it (`{"val":"…"}`, which the index carries because the
/// control plane computes it at commit and the object holds the empty increment).
fn stored(entry: &v1::IndexEntry, seq: u64, record: infinistream_segment::Record) -> StoredMessage {
    let total = usize::try_from(seq - entry.first_seq)
        .ok()
        .and_then(|i| entry.counter_values.get(i))
        .filter(|v| !v.is_empty());
    StoredMessage {
        seq,
        subject: String::from_utf8_lossy(&record.subject).into_owned(),
        headers: record.headers,
        payload: match total {
            Some(total) => Bytes::from(value_body(total)),
            None => record.payload,
        },
        timestamp: record.timestamp,
    }
}

fn parse_key(key: &str) -> Result<Path, ReadError> {
    Path::parse(key).map_err(|_| ReadError::BadKey(key.to_owned()))
}

/// A failed control-plane call as a read error: a JetStream refusal by its code,
/// anything else with the control plane's message.
fn cp_error(stream: &str, error: CallError) -> ReadError {
    match error {
        CallError::Refused { error: e, .. } => {
            let e = ApiError::from(&e);
            if e.is(codes::STREAM_NOT_FOUND) {
                ReadError::StreamNotFound(stream.to_owned())
            } else if e.is(codes::NO_MESSAGE_FOUND) {
                ReadError::NoMessage
            } else {
                ReadError::Refused(e)
            }
        }
        other => ReadError::ControlPlane(other.message().to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test]
    async fn concurrent_misses_share_one_load() {
        let tier: Arc<Tier<String, Arc<u32>>> = Arc::new(Tier::new(CHUNKS, 1024));
        let metrics = ReaderMetrics::default();
        let loads = Arc::new(AtomicUsize::new(0));
        let (release, gate) = tokio::sync::watch::channel(false);
        let (started_tx, mut started_rx) = tokio::sync::mpsc::unbounded_channel();
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let (tier, metrics, loads, started) = (
                tier.clone(),
                metrics.clone(),
                loads.clone(),
                started_tx.clone(),
            );
            let mut gate = gate.clone();
            tasks.push(tokio::spawn(async move {
                let _ = started.send(());
                tier.get_or_load("k".to_owned(), &metrics, || async move {
                    loads.fetch_add(1, Ordering::SeqCst);
                    // Hold the load open until every caller is waiting on it.
                    let _ = gate.wait_for(|open| *open).await;
                    Ok((Arc::new(7u32), 1))
                })
                .await
            }));
        }
        for _ in 0..8 {
            started_rx.recv().await.expect("task started");
        }
        // Let the callers reach the cell before the load completes.
        while metrics.misses(CHUNKS) < 8 {
            tokio::task::yield_now().await;
        }
        let _ = release.send(true);
        for task in tasks {
            assert_eq!(*task.await.expect("join").expect("loaded"), 7);
        }
        assert_eq!(loads.load(Ordering::SeqCst), 1, "one load for eight misses");
        // Now cached.
        let again = tier
            .get_or_load("k".to_owned(), &metrics, || async {
                Err::<(Arc<u32>, u64), _>(ReadError::NoMessage)
            })
            .await
            .expect("cached");
        assert_eq!(*again, 7);
        assert_eq!(metrics.hits(CHUNKS), 1);
        assert!(tier.loading.lock().is_empty());
    }

    #[tokio::test]
    async fn failed_loads_are_not_cached() {
        let tier: Tier<String, Arc<u32>> = Tier::new(FOOTERS, 16);
        let metrics = ReaderMetrics::default();
        let err = tier
            .get_or_load("k".to_owned(), &metrics, || async {
                Err::<(Arc<u32>, u64), _>(ReadError::ControlPlane("down".into()))
            })
            .await;
        assert!(matches!(err, Err(ReadError::ControlPlane(_))));
        let ok = tier
            .get_or_load("k".to_owned(), &metrics, || async { Ok((Arc::new(1), 1)) })
            .await
            .expect("retried");
        assert_eq!(*ok, 1);
        assert!(tier.loading.lock().is_empty());
    }

    #[test]
    fn errors_map_to_nats_server_codes() {
        assert_eq!(ReadError::NoMessage.api_error().err_code, 10037);
        assert_eq!(
            ReadError::StreamNotFound("S".into()).api_error().err_code,
            10059
        );
        assert_eq!(ReadError::ControlPlane("down".into()).api_error().code, 500);
    }
}
