//! Values stored in the metadata store (prost-encoded: compact and schema-evolvable).
//!
//! The index entry is the heart of the model: one per committed chunk, holding for each
//! committed record the little the control plane needs to enforce limits without ever
//! reading the object (subject as an index into a per-chunk subject table, size,
//! timestamp, msg id, TTL) and which of its sequences were deleted since.

use infinistream_protocol::jsapi::ApiError;
use prost::Message;

use crate::errors::CpError;
use crate::store::StoreError;

/// `g/<group>/cfg/<stream>`.
#[derive(Clone, PartialEq, Message)]
pub struct StreamRecord {
    #[prost(message, optional, tag = "1")]
    pub config: Option<infinistream_proto::v1::StreamConfig>,
    #[prost(int64, tag = "2")]
    pub created_unix_nanos: i64,
    /// The round log number the stream was created in: log records older than it
    /// belong to an earlier stream of the same name (see [`LogRecord`]).
    #[prost(uint64, tag = "3")]
    pub created_round: u64,
}

/// `g/<group>/st/<stream>`: what cannot be derived from the index entries.
#[derive(Clone, PartialEq, Message)]
pub struct StateRecord {
    #[prost(uint64, tag = "1")]
    pub last_seq: u64,
    /// First sequence (needed when the stream is empty after a purge).
    #[prost(uint64, tag = "2")]
    pub first_seq: u64,
    /// Msg id of the last stored message ("" when it had none): Nats-Expected-Last-Msg-Id.
    #[prost(string, tag = "3")]
    pub last_msg_id: String,
    #[prost(int64, tag = "4")]
    pub last_ts_unix_nanos: i64,
    /// Every round log record up to this number that holds entries of the stream is
    /// folded into its index keys (see [`LogRecord`]).
    #[prost(uint64, tag = "5")]
    pub folded_round: u64,
}

/// Per committed record, inside an [`EntryRecord`].
#[derive(Clone, PartialEq, Message)]
pub struct RecMeta {
    /// Index into [`EntryRecord::subjects`].
    #[prost(uint32, tag = "1")]
    pub subject: u32,
    #[prost(uint32, tag = "2")]
    pub size: u32,
    #[prost(int64, tag = "3")]
    pub ts: i64,
    #[prost(string, optional, tag = "4")]
    pub msg_id: Option<String>,
    /// Expiry time from Nats-TTL (0 = none).
    #[prost(int64, tag = "5")]
    pub expires: i64,
    /// Position of the record in its chunk.
    #[prost(uint32, tag = "6")]
    pub position: u32,
    #[prost(bool, tag = "7")]
    pub deleted: bool,
    /// Counter streams: the subject's total after this record.
    #[prost(string, optional, tag = "8")]
    pub counter: Option<String>,
    /// A subject delete marker the control plane stored (no object): its
    /// `Nats-Marker-Reason`. Its `Nats-TTL` is `expires - ts`.
    #[prost(string, optional, tag = "9")]
    pub marker: Option<String>,
    /// A schedule message (Nats-Schedule): its next firing time, Unix nanoseconds
    /// (0 = not a schedule, or no longer one). Moved by each stored firing.
    #[prost(int64, tag = "10")]
    pub schedule_next: i64,
}

/// One committed chunk or compacted segment. Stored under
/// `g/<group>/ix/<stream>/<key seq>`, where one key holds every chunk of the stream
/// committed in one writer round (group commit): this record for the first, `more`
/// for the rest, and the stream's state after the round in `state`.
#[derive(Clone, PartialEq, Message)]
pub struct EntryRecord {
    #[prost(string, tag = "1")]
    pub object_key: String,
    #[prost(uint32, tag = "2")]
    pub chunk_index: u32,
    #[prost(uint64, tag = "3")]
    pub byte_size: u64,
    #[prost(uint64, tag = "4")]
    pub first_seq: u64,
    /// Commit time (control-plane clock): the de-duplication window runs from it.
    #[prost(int64, tag = "5")]
    pub committed_unix_nanos: i64,
    #[prost(string, repeated, tag = "6")]
    pub subjects: Vec<String>,
    /// Record of `first_seq + i` at index `i`.
    #[prost(message, repeated, tag = "7")]
    pub records: Vec<RecMeta>,
    #[prost(bool, tag = "8")]
    pub segment: bool,
    /// Further entries stored under the same key (empty in memory).
    #[prost(message, repeated, tag = "9")]
    pub more: Vec<EntryRecord>,
    /// The stream's state when the key was written; the newest of these and the
    /// `st/<stream>` key (by store revision) is the stream's state.
    #[prost(message, optional, tag = "10")]
    pub state: Option<StateRecord>,
    /// In a round log record only (`object_key` is then empty): 1 + the index of
    /// the object key in [`LogRecord::objects`], which every chunk of a batch shares.
    #[prost(uint32, tag = "11")]
    pub object_ref: u32,
}

/// `g/<group>/log/<round>`: what one writer round appended, for every stream it did
/// not fold, in ONE key (instead of one index key per stream per round). A stream's
/// logged entries are later folded into its index key (written whole, with a state
/// whose `folded_round` says which log records it covers); a log record is deleted
/// once every stream in it is folded past it. Loading replays, per stream, the
/// records newer than its `folded_round` (and not older than its `created_round`).
#[derive(Clone, PartialEq, Message)]
pub struct LogRecord {
    #[prost(message, repeated, tag = "1")]
    pub streams: Vec<LogStream>,
    /// The object keys the entries refer to (`EntryRecord::object_ref`).
    #[prost(string, repeated, tag = "2")]
    pub objects: Vec<String>,
}

/// One stream's part of a [`LogRecord`].
#[derive(Clone, PartialEq, Message)]
pub struct LogStream {
    #[prost(string, tag = "1")]
    pub stream: String,
    /// The index key (a sequence) the entries join when folded.
    #[prost(uint64, tag = "2")]
    pub key: u64,
    /// Entries appended in the round, in sequence order.
    #[prost(message, repeated, tag = "3")]
    pub entries: Vec<EntryRecord>,
    /// The stream's state after the round.
    #[prost(message, optional, tag = "4")]
    pub state: Option<StateRecord>,
}

/// `g/<group>/batch/<batch id>`: the answer, compact (`chunks`; written since the
/// round log) or in full (`response`; still read).
#[derive(Clone, PartialEq, Message)]
pub struct BatchRecord {
    #[prost(int64, tag = "1")]
    pub committed_unix_nanos: i64,
    #[prost(message, optional, tag = "2")]
    pub response: Option<infinistream_proto::v1::CommitBatchResponse>,
    #[prost(message, repeated, tag = "3")]
    pub chunks: Vec<AnswerChunk>,
    /// Set with `chunks` (which a batch without chunks leaves empty).
    #[prost(bool, tag = "4")]
    pub answered: bool,
}

/// One chunk's answer in a [`BatchRecord`]: the records stored got `first_seq`,
/// `first_seq + 1`, ... in chunk order, skipping the `exceptions`.
#[derive(Clone, PartialEq, Message)]
pub struct AnswerChunk {
    #[prost(string, tag = "1")]
    pub stream: String,
    #[prost(uint32, tag = "2")]
    pub chunk_index: u32,
    #[prost(uint64, tag = "3")]
    pub first_seq: u64,
    /// Records in the chunk.
    #[prost(uint32, tag = "4")]
    pub records: u32,
    #[prost(message, repeated, tag = "5")]
    pub exceptions: Vec<AnswerException>,
    /// The whole chunk was refused (every record has this error).
    #[prost(message, optional, tag = "6")]
    pub error: Option<infinistream_proto::v1::JsError>,
}

/// A record of an [`AnswerChunk`] not stored: a duplicate or an error.
#[derive(Clone, PartialEq, Message)]
pub struct AnswerException {
    #[prost(uint32, tag = "1")]
    pub position: u32,
    #[prost(uint64, optional, tag = "2")]
    pub duplicate_of: Option<u64>,
    #[prost(message, optional, tag = "3")]
    pub error: Option<infinistream_proto::v1::JsError>,
}

impl BatchRecord {
    /// The stored answer, in full.
    pub fn answer(self) -> Option<infinistream_proto::v1::CommitBatchResponse> {
        use infinistream_proto::v1::{self, record_result::Result as R};
        if let Some(r) = self.response {
            return Some(r);
        }
        if !self.answered {
            return None;
        }
        let chunks = self
            .chunks
            .into_iter()
            .map(|c| {
                let mut next = c.first_seq;
                let mut exceptions = c.exceptions.into_iter().peekable();
                let records = (0..c.records)
                    .map(|pos| {
                        let result = if let Some(e) = &c.error {
                            R::Error(e.clone())
                        } else if let Some(x) = exceptions.next_if(|x| x.position == pos) {
                            match (x.duplicate_of, x.error) {
                                (_, Some(e)) => R::Error(e),
                                (Some(seq), None) => R::DuplicateOf(seq),
                                (None, None) => {
                                    R::Error(ApiError::internal("stored answer damaged").into())
                                }
                            }
                        } else {
                            next += 1;
                            R::Seq(next - 1)
                        };
                        v1::RecordResult {
                            result: Some(result),
                            ..Default::default()
                        }
                    })
                    .collect();
                v1::ChunkResult {
                    stream: c.stream,
                    chunk_index: c.chunk_index,
                    records,
                    error: c.error,
                }
            })
            .collect();
        Some(v1::CommitBatchResponse {
            chunks,
            replayed: false,
        })
    }

    /// Encodes `resp` as a compact `BatchRecord`; `None` when the stored records of a
    /// chunk do not have consecutive sequences or carry counter totals (then it is
    /// stored in full).
    pub fn encode_compact(
        committed_unix_nanos: i64,
        resp: &infinistream_proto::v1::CommitBatchResponse,
    ) -> Option<Vec<u8>> {
        use infinistream_proto::v1::record_result::Result as R;
        use prost::encoding;
        let mut out = Vec::with_capacity(16 + 16 * resp.chunks.len());
        encoding::int64::encode(1, &committed_unix_nanos, &mut out);
        encoding::bool::encode(4, &true, &mut out);
        let mut inner = Vec::new();
        for c in &resp.chunks {
            inner.clear();
            let mut first = None;
            let mut next = 0;
            let mut exceptions = Vec::new();
            for (pos, r) in c.records.iter().enumerate() {
                let position = u32::try_from(pos).ok()?;
                if !r.counter_value.is_empty() {
                    return None;
                }
                match &r.result {
                    Some(R::Seq(seq)) => {
                        if first.is_none() {
                            first = Some(*seq);
                        } else if *seq != next {
                            return None;
                        }
                        next = seq + 1;
                    }
                    _ if c.error.is_some() => {}
                    Some(R::DuplicateOf(seq)) => exceptions.push(AnswerException {
                        position,
                        duplicate_of: Some(*seq),
                        error: None,
                    }),
                    Some(R::Error(e)) => exceptions.push(AnswerException {
                        position,
                        duplicate_of: None,
                        error: Some(e.clone()),
                    }),
                    None => return None,
                }
            }
            encoding::string::encode(1, &c.stream, &mut inner);
            encoding::uint32::encode(2, &c.chunk_index, &mut inner);
            encoding::uint64::encode(3, &first.unwrap_or(0), &mut inner);
            let n = u32::try_from(c.records.len()).ok()?;
            encoding::uint32::encode(4, &n, &mut inner);
            for x in &exceptions {
                encoding::message::encode(5, x, &mut inner);
            }
            if let Some(e) = &c.error {
                encoding::message::encode(6, e, &mut inner);
            }
            encoding::bytes::encode(3, &inner, &mut out);
        }
        Some(out)
    }
}

/// `g/<group>/agent/<id>`.
#[derive(Clone, PartialEq, Message)]
pub struct AgentRecord {
    #[prost(message, optional, tag = "1")]
    pub info: Option<infinistream_proto::v1::AgentInfo>,
    /// Lease length granted at registration; each heartbeat extends by it.
    #[prost(uint64, tag = "2")]
    pub lease_ms: u64,
}

/// `g/<group>/lease/<name>`.
#[derive(Clone, PartialEq, Message)]
pub struct LeaseRecord {
    #[prost(string, tag = "1")]
    pub holder: String,
    #[prost(int64, tag = "2")]
    pub expires_unix_nanos: i64,
    #[prost(uint64, tag = "3")]
    pub generation: u64,
}

/// `g/<group>/rel/<object key>`.
#[derive(Clone, PartialEq, Message)]
pub struct ReleasedRecord {
    #[prost(int64, tag = "1")]
    pub released_unix_nanos: i64,
}

/// Decodes a stored value, naming the key when it is corrupt.
pub fn decode<M: Message + Default>(key: &[u8], value: &[u8]) -> Result<M, CpError> {
    M::decode(value).map_err(|e| {
        CpError::Store(StoreError::Corrupt {
            key: String::from_utf8_lossy(key).into_owned(),
            reason: e.to_string(),
        })
    })
}

/// One delivered, unacknowledged message of a consumer.
#[derive(Clone, PartialEq, Message)]
pub struct PendingRec {
    #[prost(uint64, tag = "1")]
    pub stream_seq: u64,
    #[prost(uint64, tag = "2")]
    pub consumer_seq: u64,
    #[prost(uint64, tag = "3")]
    pub deliveries: u64,
    /// Claimable again from this time on.
    #[prost(int64, tag = "4")]
    pub deadline: i64,
}

/// `g/<group>/con/<stream>/<name>`: a consumer's config and delivery state.
#[derive(Clone, PartialEq, Message)]
pub struct ConsumerRecord {
    #[prost(message, optional, tag = "1")]
    pub config: Option<infinistream_proto::v1::ConsumerConfig>,
    #[prost(int64, tag = "2")]
    pub created_unix_nanos: i64,
    /// Last stream sequence handed out for the first time (the cursor).
    #[prost(uint64, tag = "3")]
    pub delivered_stream_seq: u64,
    #[prost(uint64, tag = "4")]
    pub delivered_consumer_seq: u64,
    #[prost(uint64, tag = "5")]
    pub ack_floor_stream_seq: u64,
    #[prost(uint64, tag = "6")]
    pub ack_floor_consumer_seq: u64,
    /// Ascending by stream sequence.
    #[prost(message, repeated, tag = "7")]
    pub pending: Vec<PendingRec>,
    #[prost(uint64, tag = "8")]
    pub num_redelivered: u64,
    #[prost(int64, tag = "9")]
    pub last_active_unix_nanos: i64,
    /// deliver_policy last_per_subject: the sequences still to deliver first (the
    /// last per matching subject at creation, ascending; drained as delivered) ...
    #[prost(uint64, repeated, tag = "10")]
    pub start_seqs: Vec<u64>,
    /// ... up to this sequence (the stream's last at creation); after it, every
    /// matching message.
    #[prost(uint64, tag = "11")]
    pub start_upto: u64,
    /// `pending` as stored (see [`ConsumerRecord::encode_stored`]); empty in memory
    /// ([`ConsumerRecord::into_memory`]).
    #[prost(message, repeated, tag = "12")]
    pub pending_runs: Vec<PendingRun>,
}

/// Pending deliveries at consecutive stream and consumer sequences with one delivery
/// count and deadline, stored as one entry: a claim's fresh deliveries are one run, so
/// a record with 1,000 pending messages stores a few runs, not 1,000 entries.
#[derive(Clone, PartialEq, Message)]
pub struct PendingRun {
    #[prost(uint64, tag = "1")]
    pub stream_seq: u64,
    #[prost(uint64, tag = "2")]
    pub consumer_seq: u64,
    #[prost(uint64, tag = "3")]
    pub deliveries: u64,
    #[prost(int64, tag = "4")]
    pub deadline: i64,
    /// Messages in the run (at least 1).
    #[prost(uint64, tag = "5")]
    pub count: u64,
}

/// Most pending entries a stored consumer record may expand to (2 GiB in memory): a
/// run beyond it is corruption, not a consumer.
pub const MAX_PENDING_ENTRIES: u64 = 64 << 20;

impl ConsumerRecord {
    /// The stored form: `pending` as runs. (Written on every claim and ack, so it is
    /// built in place rather than on a clone.)
    pub fn encode_stored(&mut self) -> Vec<u8> {
        let pending = std::mem::take(&mut self.pending);
        let mut runs: Vec<PendingRun> = Vec::new();
        for p in &pending {
            match runs.last_mut() {
                Some(r)
                    if r.stream_seq.checked_add(r.count) == Some(p.stream_seq)
                        && r.consumer_seq.checked_add(r.count) == Some(p.consumer_seq)
                        && r.deliveries == p.deliveries
                        && r.deadline == p.deadline =>
                {
                    r.count += 1;
                }
                _ => runs.push(PendingRun {
                    stream_seq: p.stream_seq,
                    consumer_seq: p.consumer_seq,
                    deliveries: p.deliveries,
                    deadline: p.deadline,
                    count: 1,
                }),
            }
        }
        self.pending_runs = runs;
        let out = self.encode_to_vec();
        self.pending_runs = Vec::new();
        self.pending = pending;
        out
    }

    /// A record as read from the store: runs expanded into `pending` (records written
    /// before runs existed list every entry, and read the same). A run this code cannot
    /// have written (empty, running off the sequence space, or expanding past
    /// [`MAX_PENDING_ENTRIES`]) is an error rather than a huge allocation.
    pub fn into_memory(mut self) -> Result<ConsumerRecord, String> {
        for r in std::mem::take(&mut self.pending_runs) {
            let fits = r.count > 0
                && r.stream_seq.checked_add(r.count - 1).is_some()
                && r.consumer_seq.checked_add(r.count - 1).is_some()
                && (self.pending.len() as u64).saturating_add(r.count) <= MAX_PENDING_ENTRIES;
            if !fits {
                return Err(format!(
                    "pending run of {} from stream sequence {} / consumer sequence {} is not one a claim wrote",
                    r.count, r.stream_seq, r.consumer_seq
                ));
            }
            for i in 0..r.count {
                self.pending.push(PendingRec {
                    stream_seq: r.stream_seq + i,
                    consumer_seq: r.consumer_seq + i,
                    deliveries: r.deliveries,
                    deadline: r.deadline,
                });
            }
        }
        self.pending.sort_by_key(|p| p.stream_seq);
        Ok(self)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use infinistream_proto::v1::{self, record_result::Result as R};

    use super::*;

    fn pending(stream_seq: u64, consumer_seq: u64, deliveries: u64, deadline: i64) -> PendingRec {
        PendingRec {
            stream_seq,
            consumer_seq,
            deliveries,
            deadline,
        }
    }

    #[test]
    fn a_consumer_record_stores_pending_as_runs_and_reads_back_the_same() {
        let mut rec = ConsumerRecord {
            delivered_stream_seq: 2_000,
            delivered_consumer_seq: 2_100,
            ..Default::default()
        };
        // A claim of 500 (one run), a gap (acked), a redelivery with its own count and
        // deadline inside the next claim's span, a stream gap (a filtered consumer).
        rec.pending
            .extend((0..500).map(|i| pending(100 + i, 10 + i, 1, 7_000)));
        rec.pending.push(pending(700, 600, 2, 9_000));
        rec.pending
            .extend((701..=900).map(|s| pending(s, s - 100, 1, 8_000)));
        rec.pending.push(pending(950, 850, 1, 8_000));
        let want = rec.clone();
        let stored = rec.encode_stored();
        assert_eq!(rec, want, "encoding leaves the record as it was");
        let raw = ConsumerRecord::decode(stored.as_slice()).unwrap();
        assert_eq!(raw.pending_runs.len(), 4);
        assert!(raw.pending.is_empty());
        assert!(stored.len() < 120, "{} bytes", stored.len());
        assert_eq!(raw.into_memory(), Ok(want.clone()));

        // The form written before runs: every entry listed; read the same.
        let old = want.encode_to_vec();
        assert_eq!(
            ConsumerRecord::decode(old.as_slice())
                .unwrap()
                .into_memory(),
            Ok(want.clone())
        );

        // A run no claim could have written is refused, not expanded.
        let mut bad = want;
        bad.pending.clear();
        bad.pending_runs.push(PendingRun {
            stream_seq: 1,
            consumer_seq: 1,
            deliveries: 1,
            deadline: 0,
            count: u64::MAX,
        });
        let err = bad.into_memory().unwrap_err();
        assert!(
            err.starts_with("pending run of 18446744073709551615"),
            "{err}"
        );
    }

    fn rr(r: R) -> v1::RecordResult {
        v1::RecordResult {
            result: Some(r),
            ..Default::default()
        }
    }

    #[test]
    fn a_compact_answer_expands_to_the_answer() {
        let e = v1::JsError {
            code: 400,
            err_code: 10071,
            description: "wrong last sequence: 3".into(),
        };
        let resp = v1::CommitBatchResponse {
            chunks: vec![
                v1::ChunkResult {
                    stream: "A".into(),
                    chunk_index: 0,
                    records: vec![
                        rr(R::Seq(7)),
                        rr(R::DuplicateOf(2)),
                        rr(R::Seq(8)),
                        rr(R::Error(e.clone())),
                        rr(R::Seq(9)),
                    ],
                    error: None,
                },
                v1::ChunkResult {
                    stream: "B".into(),
                    chunk_index: 1,
                    records: vec![rr(R::Error(e.clone())), rr(R::Error(e.clone()))],
                    error: Some(e.clone()),
                },
                v1::ChunkResult {
                    stream: "C".into(),
                    chunk_index: 2,
                    records: vec![rr(R::DuplicateOf(1))],
                    error: None,
                },
            ],
            replayed: false,
        };
        let value = BatchRecord::encode_compact(42, &resp).unwrap();
        assert!(value.len() < resp.encoded_len());
        let rec = BatchRecord::decode(value.as_slice()).unwrap();
        assert_eq!(rec.committed_unix_nanos, 42);
        assert_eq!(rec.answer().unwrap(), resp);
        // No chunks is still an answer.
        let empty = v1::CommitBatchResponse::default();
        let value = BatchRecord::encode_compact(1, &empty).unwrap();
        let rec = BatchRecord::decode(value.as_slice()).unwrap();
        assert_eq!(rec.answer().unwrap(), empty);
        // Sequences that are not consecutive are not made compact.
        let gap = v1::CommitBatchResponse {
            chunks: vec![v1::ChunkResult {
                records: vec![rr(R::Seq(1)), rr(R::Seq(3))],
                ..Default::default()
            }],
            replayed: false,
        };
        assert!(BatchRecord::encode_compact(1, &gap).is_none());
    }
}
