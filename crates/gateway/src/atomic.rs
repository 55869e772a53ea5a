//! Atomic batch publish (ADR-50) on the produce agent: staging until the commit.
//!
//! A message with `Nats-Batch-Id` is not buffered for the next flush: it is held here,
//! in memory, until its batch's commit message arrives. The commit then hands the whole
//! batch to the batcher as one group, which puts it contiguously in one chunk of one
//! object and one `CommitBatch`; the control plane stores all of it or none
//! (`control-plane/src/stream/atomic.rs`). Nothing of a batch is in the bucket or the
//! metadata store before its commit, so an agent killed before the commit stores none
//! of it, and needs no recovery.
//!
//! The rules and their order are nats-server's `processJetStreamAtomicBatchMsg`:
//! disabled (10174), id over 64 bytes (10179), sequence missing (10175), unknown batch
//! (10176, or 10199 when the sequence alone is over the limit), too many batches in
//! flight (10210), bad commit value (10200), required API level (10185), a gap or an
//! `eob` first message (10176), over 1,000 messages (10199). Staged messages with a
//! reply get an empty reply; the commit gets one PubAck with the batch id and count.
//!
//! Bounds, as nats-server's defaults: 1,000 messages per batch, 50 batches in flight
//! per stream, 1,000 per agent, and a batch with no message for 10 s is abandoned
//! (swept when the next batch starts; a later message of it answers 10176). The bytes
//! held are bounded too ([`STAGED_BYTES_LIMIT`]): a batch that would pass it is
//! abandoned with 10210 and a warning naming the bound.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use infinistream_protocol::HeaderMap;
use infinistream_protocol::jsapi::ApiError;
use infinistream_protocol::jsapi::headers;
use infinistream_protocol::jsapi::stream::StreamConfig;
use infinistream_protocol::jsapi::versioning::refuses_required_api_level;

use crate::batcher::{BatchTag, PendingRecord};

/// Most messages in one batch (nats-server's `streamDefaultMaxAtomicBatchSize`).
pub const MAX_BATCH_SIZE: u64 = 1000;
/// Most batches in flight per stream.
pub const MAX_INFLIGHT_PER_STREAM: usize = 50;
/// Most batches in flight per agent.
pub const MAX_INFLIGHT_TOTAL: usize = 1000;
/// A batch with no message for this long is abandoned.
pub const BATCH_TIMEOUT: Duration = Duration::from_secs(10);
/// Most bytes (subject + headers + payload) staged across all batches of the agent.
pub const STAGED_BYTES_LIMIT: usize = 256 * 1024 * 1024;
/// Longest batch id.
const MAX_ID_LEN: usize = 64;

/// What to do with one message of an atomic batch.
#[derive(Debug)]
pub enum Staged {
    /// Held; `reply`, when set, gets an empty message.
    Held { reply: Option<String> },
    /// The batch is complete: store these records all or nothing. The last one carries
    /// the reply and the [`BatchTag`] for the PubAck.
    Commit(Vec<PendingRecord>),
    /// Refused (the batch, if any, is abandoned).
    Refused(ApiError),
}

struct Batch {
    records: Vec<PendingRecord>,
    bytes: usize,
    last_seen: Instant,
}

/// Every atomic batch this agent holds. Pure: time is passed in.
#[derive(Default)]
pub struct AtomicBatches {
    batches: HashMap<(Arc<str>, String), Batch>,
    per_stream: HashMap<Arc<str>, usize>,
    bytes: usize,
}

impl std::fmt::Debug for AtomicBatches {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AtomicBatches")
            .field("batches", &self.batches.len())
            .field("bytes", &self.bytes)
            .finish()
    }
}

/// The batch headers of a message, if it has `Nats-Batch-Id`.
pub fn batch_id(headers: &HeaderMap) -> Option<&str> {
    headers.get(headers::BATCH_ID)
}

impl AtomicBatches {
    pub fn new() -> Self {
        Self::default()
    }

    /// Batches held.
    pub fn len(&self) -> usize {
        self.batches.len()
    }

    pub fn is_empty(&self) -> bool {
        self.batches.is_empty()
    }

    /// Bytes held.
    pub fn staged_bytes(&self) -> usize {
        self.bytes
    }

    /// Takes one message of batch `id` (its parsed headers `map`; `record` is the
    /// message as the intake read it).
    pub fn stage(
        &mut self,
        config: &StreamConfig,
        id: &str,
        map: &HeaderMap,
        mut record: PendingRecord,
        now: Instant,
    ) -> Staged {
        let stream = record.stream.clone();
        if config.max_msg_size >= 0 {
            let max = usize::try_from(config.max_msg_size).unwrap_or(usize::MAX);
            if record.headers.len() > max || record.payload.len() > max - record.headers.len() {
                return Staged::Refused(ApiError::stream_message_exceeds_maximum());
            }
        }
        if !config.allow_atomic_publish {
            return Staged::Refused(ApiError::atomic_publish_disabled());
        }
        if id.len() > MAX_ID_LEN {
            return Staged::Refused(ApiError::atomic_publish_invalid_batch_id());
        }
        let Some(seq) = map
            .get(headers::BATCH_SEQUENCE)
            .and_then(|v| v.trim().parse::<u64>().ok())
        else {
            return Staged::Refused(ApiError::atomic_publish_missing_seq());
        };
        let (commit, eob, commit_invalid) = match map.get(headers::BATCH_COMMIT) {
            None => (false, false, false),
            Some(v) => (
                true,
                v == headers::BATCH_COMMIT_EOB,
                v != headers::BATCH_COMMIT_EOB && v != headers::BATCH_COMMIT_STORE,
            ),
        };
        let size = if eob { seq.saturating_sub(1) } else { seq };
        let key = (stream.clone(), id.to_owned());
        self.sweep(now);
        if !self.batches.contains_key(&key) {
            if seq != 1 {
                if size > MAX_BATCH_SIZE {
                    return Staged::Refused(ApiError::atomic_publish_too_large_batch(
                        MAX_BATCH_SIZE,
                    ));
                }
                return Staged::Refused(ApiError::atomic_publish_incomplete_batch());
            }
            if self.per_stream.get(&stream).copied().unwrap_or(0) + 1 > MAX_INFLIGHT_PER_STREAM
                || self.batches.len() + 1 > MAX_INFLIGHT_TOTAL
            {
                return Staged::Refused(ApiError::atomic_publish_too_many_inflight());
            }
            *self.per_stream.entry(stream.clone()).or_default() += 1;
            self.batches.insert(
                key.clone(),
                Batch {
                    records: Vec::new(),
                    bytes: 0,
                    last_seen: now,
                },
            );
        }
        if commit_invalid {
            self.abandon(&key);
            return Staged::Refused(ApiError::atomic_publish_invalid_batch_commit());
        }
        if let Some(level) = map.get(headers::REQUIRED_API_LEVEL) {
            if refuses_required_api_level(Some(level)) {
                self.abandon(&key);
                return Staged::Refused(ApiError::required_api_level());
            }
            let mut stripped = map.clone();
            stripped.remove(headers::REQUIRED_API_LEVEL);
            record.headers = stripped.to_bytes();
        }
        let held = self.batches.get(&key).map_or(0, |b| b.records.len() as u64);
        // The eob message is counted by the sequence but never held.
        if held + 1 != seq || (seq == 1 && eob) {
            self.abandon(&key);
            return Staged::Refused(ApiError::atomic_publish_incomplete_batch());
        }
        if size > MAX_BATCH_SIZE {
            self.abandon(&key);
            return Staged::Refused(ApiError::atomic_publish_too_large_batch(MAX_BATCH_SIZE));
        }
        if !eob {
            let bytes = record.buffered_len();
            if self.bytes + bytes > STAGED_BYTES_LIMIT {
                tracing::warn!(
                    stream = %stream,
                    batch = id,
                    limit = STAGED_BYTES_LIMIT,
                    "atomic batch abandoned: the agent holds its limit of staged batch bytes"
                );
                self.abandon(&key);
                return Staged::Refused(ApiError::atomic_publish_too_many_inflight());
            }
            let Some(batch) = self.batches.get_mut(&key) else {
                return Staged::Refused(ApiError::atomic_publish_incomplete_batch());
            };
            batch.last_seen = now;
            batch.bytes += bytes;
            self.bytes += bytes;
            let reply = record.reply.take();
            record.meta.atomic_batch = Some(id.to_owned());
            batch.records.push(record);
            if !commit {
                return Staged::Held { reply };
            }
            if let Some(last) = batch.records.last_mut() {
                last.reply = reply;
            }
        } else if let Some(batch) = self.batches.get_mut(&key)
            && let Some(last) = batch.records.last_mut()
        {
            // Committed by "end of batch": the last message gets the normal commit
            // header, and the commit message's reply.
            let mut map = HeaderMap::parse(&last.headers).unwrap_or_default();
            map.insert(headers::BATCH_COMMIT, headers::BATCH_COMMIT_STORE);
            last.headers = map.to_bytes();
            last.reply = record.reply.take();
        }
        let Some(mut batch) = self.remove(&key) else {
            return Staged::Refused(ApiError::atomic_publish_incomplete_batch());
        };
        let count = batch.records.len() as u64;
        if let Some(last) = batch.records.last_mut() {
            last.batch = Some(BatchTag {
                id: Arc::from(id),
                count,
            });
        }
        // nats-server refuses this header at commit, for the whole batch.
        let unsupported = batch
            .records
            .iter()
            .any(|r| r.meta.expected_last_msg_id.is_some());
        if unsupported {
            return Staged::Refused(ApiError::atomic_publish_unsupported_header_batch(
                headers::EXPECTED_LAST_MSG_ID,
            ));
        }
        Staged::Commit(batch.records)
    }

    /// Drops batches idle for [`BATCH_TIMEOUT`] (nats-server abandons them without a
    /// reply).
    pub fn sweep(&mut self, now: Instant) {
        let expired: Vec<(Arc<str>, String)> = self
            .batches
            .iter()
            .filter(|(_, b)| now.saturating_duration_since(b.last_seen) >= BATCH_TIMEOUT)
            .map(|(k, _)| k.clone())
            .collect();
        for key in expired {
            tracing::debug!(stream = %key.0, batch = %key.1, "atomic batch abandoned: timeout");
            self.abandon(&key);
        }
    }

    fn abandon(&mut self, key: &(Arc<str>, String)) {
        self.remove(key);
    }

    fn remove(&mut self, key: &(Arc<str>, String)) -> Option<Batch> {
        let batch = self.batches.remove(key)?;
        self.bytes -= batch.bytes;
        if let Some(n) = self.per_stream.get_mut(&key.0) {
            *n -= 1;
            if *n == 0 {
                self.per_stream.remove(&key.0);
            }
        }
        Some(batch)
    }
}

#[cfg(test)]
mod tests {
    use infinistream_proto::v1;

    use super::*;

    fn config() -> StreamConfig {
        StreamConfig {
            name: "S".into(),
            allow_atomic_publish: true,
            ..Default::default()
        }
    }

    fn message(id: &str, seq: u64, commit: Option<&str>) -> (HeaderMap, PendingRecord) {
        let mut map = HeaderMap::new();
        map.insert(headers::BATCH_ID, id);
        map.insert(headers::BATCH_SEQUENCE, seq.to_string());
        if let Some(c) = commit {
            map.insert(headers::BATCH_COMMIT, c);
        }
        let record = PendingRecord {
            stream: Arc::from("S"),
            subject: bytes::Bytes::from_static(b"s.1"),
            headers: map.to_bytes(),
            payload: bytes::Bytes::from_static(b"x"),
            meta: v1::RecordMeta::default(),
            reply: Some("r".into()),
            batch: None,
        };
        (map, record)
    }

    fn stage(
        b: &mut AtomicBatches,
        id: &str,
        seq: u64,
        commit: Option<&str>,
        now: Instant,
    ) -> Staged {
        let (map, record) = message(id, seq, commit);
        b.stage(&config(), id, &map, record, now)
    }

    fn code(staged: Staged) -> u16 {
        match staged {
            Staged::Refused(e) => e.err_code,
            other => panic!("not refused: {other:?}"),
        }
    }

    #[test]
    fn commit_hands_over_the_batch_with_its_tag() {
        let mut b = AtomicBatches::new();
        let now = Instant::now();
        assert!(matches!(
            stage(&mut b, "a", 1, None, now),
            Staged::Held { reply: Some(_) }
        ));
        let Staged::Commit(records) = stage(&mut b, "a", 2, Some("eob"), now) else {
            panic!("commit");
        };
        assert_eq!(records.len(), 1);
        assert_eq!(
            records[0].batch,
            Some(BatchTag {
                id: Arc::from("a"),
                count: 1
            })
        );
        assert_eq!(records[0].meta.atomic_batch.as_deref(), Some("a"));
        let stored = HeaderMap::parse(&records[0].headers).expect("headers");
        assert_eq!(stored.get(headers::BATCH_COMMIT), Some("1"));
        assert!(b.is_empty() && b.staged_bytes() == 0);
    }

    #[test]
    fn bounds_are_nats_servers() {
        let mut b = AtomicBatches::new();
        let now = Instant::now();
        for i in 0..MAX_INFLIGHT_PER_STREAM {
            assert!(matches!(
                stage(&mut b, &format!("b{i}"), 1, None, now),
                Staged::Held { .. }
            ));
        }
        assert_eq!(code(stage(&mut b, "one-more", 1, None, now)), 10210);
        // Idle batches are abandoned after the timeout; a later message is incomplete.
        let later = now + BATCH_TIMEOUT;
        assert_eq!(code(stage(&mut b, "b0", 2, None, later)), 10176);
        assert_eq!(b.len(), 0);
        assert!(matches!(
            stage(&mut b, "fresh", 1, None, later),
            Staged::Held { .. }
        ));
        for seq in 2..=MAX_BATCH_SIZE {
            assert!(matches!(
                stage(&mut b, "fresh", seq, None, later),
                Staged::Held { .. }
            ));
        }
        assert_eq!(
            code(stage(&mut b, "fresh", MAX_BATCH_SIZE + 1, None, later)),
            10199
        );
        assert!(b.is_empty());
    }
}
