//! One stream's sequencing state and the JetStream rules applied at commit.
//!
//! The leader keeps every loaded stream in memory: the tail (last sequence, last msg
//! id), the index entries (one per committed chunk), live sequences per subject, the
//! de-duplication window and pending TTL expiries. A commit is checked and applied
//! here synchronously, record by record in chunk order, exactly in the order
//! nats-server's `processJetStreamMsg` checks a publish (sealed, expected stream, TTL
//! allowed, expected last subject sequence, expected last sequence, duplicate msg id,
//! expected last msg id, rollup allowed, max message size, TTL valid, discard-new
//! limits), so answers match nats-server's. The store is written afterwards from the
//! set of store keys a change touched (`dirty`), never from a full snapshot.
//!
//! Everything here is pure (no I/O, time passed in) so it is unit-tested directly.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use infinistream_proto::domain::{Chunk, Record, Rollup, StreamSpec};
use infinistream_proto::v1::{self, IncrProblem, JsError, RecordResult, record_result};
use infinistream_protocol::HeaderMap;
use infinistream_protocol::jsapi::errors::store;
use infinistream_protocol::jsapi::headers;
use infinistream_protocol::jsapi::{ApiError, GoDuration, counter};
use infinistream_protocol::subject;

use crate::model::{EntryRecord, RecMeta, StateRecord};

mod atomic;
mod filter;
mod schedule;

use filter::SubjectFilter;

/// The marker an index-only entry holds, as readers serve it.
fn marker_record(rec: &EntryRecord) -> Option<v1::MarkerRecord> {
    let r = rec.records.first()?;
    let reason = r.marker.as_deref()?;
    Some(v1::MarkerRecord {
        subject: rec.subjects.get(r.subject as usize)?.clone(),
        headers: marker_headers(reason, r.expires.saturating_sub(r.ts)),
        timestamp_unix_nanos: r.ts,
    })
}

/// Most deleted sequences listed in a stream state.
const MAX_DELETED_DETAILS: usize = 100_000;

/// `Nats-Marker-Reason` of a marker left by max_age or a message TTL.
const MARKER_MAX_AGE: &str = "MaxAge";

/// The header block of a subject delete marker, as nats-server writes it.
pub(crate) fn marker_headers(reason: &str, ttl_nanos: i64) -> Vec<u8> {
    let mut map = HeaderMap::new();
    map.insert(headers::MARKER_REASON, reason);
    map.insert(headers::TTL, GoDuration(ttl_nanos).to_string());
    map.insert(headers::ROLLUP, headers::ROLLUP_SUBJECT);
    map.to_bytes().to_vec()
}

/// An index entry in memory.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub rec: EntryRecord,
    /// Records not deleted.
    pub live: u32,
    /// The store key (a sequence) this entry is stored under.
    pub key: u64,
}

impl Entry {
    fn last_seq(&self) -> u64 {
        self.rec.first_seq + self.rec.records.len() as u64 - 1
    }
}

/// One stream, loaded.
#[derive(Debug)]
pub(crate) struct Stream {
    pub spec: StreamSpec,
    pub created: i64,
    pub state: StateRecord,
    pub msgs: u64,
    pub bytes: u64,
    pub entries: BTreeMap<u64, Entry>,
    /// Live sequences per subject, ascending.
    pub subjects: BTreeMap<String, VecDeque<u64>>,
    /// msg id → (seq, commit time).
    dedupe: HashMap<String, (u64, i64)>,
    dedupe_order: VecDeque<(i64, String)>,
    /// (expiry, seq) of records with a TTL.
    ttls: BTreeSet<(i64, u64)>,
    /// Message schedules: schedule subject → (its schedule message's sequence, next
    /// firing time). See `schedule.rs`.
    schedules: HashMap<String, (u64, i64)>,
    /// Store key → first sequences of the entries stored under it. Entries appended in
    /// one writer round share one key, so a round writes one index key per stream
    /// however many batches it folds.
    keys: BTreeMap<u64, BTreeSet<u64>>,
    // ---- changes not yet written ----
    /// Store keys whose entries changed (rewritten, or deleted when none is left).
    pub dirty: BTreeSet<u64>,
    /// The store key new entries join until the next write.
    open_key: Option<u64>,
    pub state_dirty: bool,
    /// Object reference count changes.
    pub obj_delta: HashMap<String, i64>,
    // ---- the round log (see `model::LogRecord`) ----
    /// The round log number the stream was created in.
    pub created_round: u64,
    /// A change other than an append (a removal, a swap) is not yet written: the next
    /// write folds the stream instead of logging it.
    needs_fold: bool,
    /// Entries with a first sequence up to this are logged or folded.
    logged_upto: u64,
    /// The oldest round log record holding something of this stream not yet folded.
    pub since: Option<u64>,
    /// Entries logged but not folded.
    unfolded: usize,
    /// `spec`'s subjects, compiled (refreshed at each chunk's commit).
    filter: SubjectFilter,
}

/// The object keys of one round log record (`LogRecord::objects`).
#[derive(Debug, Default)]
pub(crate) struct ObjectTable {
    index: HashMap<String, u32>,
    pub keys: Vec<String>,
}

impl ObjectTable {
    /// 1 + the index of `key` in the table, added if new.
    fn intern(&mut self, key: &str) -> u32 {
        if let Some(i) = self.index.get(key) {
            return *i;
        }
        self.keys.push(key.to_owned());
        let i = u32::try_from(self.keys.len()).unwrap_or(u32::MAX);
        self.index.insert(key.to_owned(), i);
        i
    }
}

/// Where the records of the chunk being committed go.
struct ChunkCtx<'a> {
    object_key: &'a str,
    chunk_index: u32,
    byte_size: u64,
    committed: i64,
    entry: Option<u64>,
    /// Subject → index in the current entry's subject table (borrowed from the chunk).
    subject_idx: HashMap<&'a str, u32>,
}

fn ok_seq(seq: u64) -> RecordResult {
    RecordResult {
        result: Some(record_result::Result::Seq(seq)),
        counter_value: String::new(),
    }
}

/// Takes `size` bytes from the account's `room` (`None` = unlimited); false, taking
/// nothing, when they do not fit.
fn take_room(room: &mut Option<u64>, size: u64) -> bool {
    match room {
        None => true,
        Some(left) if *left >= size => {
            *left -= size;
            true
        }
        Some(_) => false,
    }
}

/// A record whose subject the stream no longer has: 503 / 10077, a definite "not
/// stored" (a retry is answered the same until the agent's catalog catches up, then
/// with no responders, as by nats-server).
fn subject_not_in_stream(subject: &str, stream: &str) -> JsError {
    ApiError::stream_store_failed(format_args!(
        "subject {subject} is not in stream {stream}'s subjects any more (its config \
         changed while the publish was on its way); the message was not stored"
    ))
    .into()
}

fn err(e: JsError) -> RecordResult {
    RecordResult {
        result: Some(record_result::Result::Error(e)),
        counter_value: String::new(),
    }
}

impl Stream {
    pub fn new(spec: StreamSpec, created: i64) -> Stream {
        Stream {
            filter: SubjectFilter::new(&spec.limits.subjects),
            spec,
            created,
            state: StateRecord::default(),
            msgs: 0,
            bytes: 0,
            entries: BTreeMap::new(),
            subjects: BTreeMap::new(),
            dedupe: HashMap::new(),
            dedupe_order: VecDeque::new(),
            ttls: BTreeSet::new(),
            schedules: HashMap::new(),
            keys: BTreeMap::new(),
            dirty: BTreeSet::new(),
            open_key: None,
            state_dirty: true,
            obj_delta: HashMap::new(),
            created_round: 0,
            needs_fold: false,
            logged_upto: 0,
            since: None,
            unfolded: 0,
        }
    }

    /// Rebuilds a stream from its stored config, state and index entries with the
    /// store key each was read from (in sequence order).
    pub fn load(
        spec: StreamSpec,
        created: i64,
        state: StateRecord,
        entries: Vec<(u64, EntryRecord)>,
        now: i64,
    ) -> Stream {
        let mut s = Stream::new(spec, created);
        s.state = state;
        s.state_dirty = false;
        s.logged_upto = s.state.last_seq;
        let window_start = now.saturating_sub(s.spec.limits.duplicate_window_nanos);
        for (key, rec) in entries {
            let mut live = 0;
            for (i, r) in rec.records.iter().enumerate() {
                let seq = rec.first_seq + i as u64;
                if let Some(id) = &r.msg_id
                    && rec.committed_unix_nanos >= window_start
                {
                    s.remember_msg_id(id, seq, rec.committed_unix_nanos);
                }
                if r.deleted {
                    continue;
                }
                live += 1;
                s.msgs += 1;
                s.bytes += u64::from(r.size);
                let subj = rec
                    .subjects
                    .get(r.subject as usize)
                    .cloned()
                    .unwrap_or_default();
                if r.schedule_next != 0 {
                    s.schedules.insert(subj.clone(), (seq, r.schedule_next));
                }
                s.subjects.entry(subj).or_default().push_back(seq);
                if r.expires != 0 {
                    s.ttls.insert((r.expires, seq));
                }
            }
            if live > 0 {
                s.keys.entry(key).or_default().insert(rec.first_seq);
                s.entries.insert(rec.first_seq, Entry { rec, live, key });
            } else {
                // Nothing live left: rewrite its key without it at the next write.
                s.dirty.insert(key);
                s.needs_fold = true;
            }
        }
        s
    }

    /// A new stream with `first_seq` set starts there: its state is
    /// `first_seq`..`first_seq - 1`, as nats-server reports an empty stream that will
    /// store its first message at `first_seq`.
    pub fn start_at_first_seq(&mut self) {
        let first = self.spec.limits.first_seq;
        if first > 0 {
            self.state.first_seq = first;
            self.state.last_seq = first - 1;
            self.state_dirty = true;
        }
    }

    pub fn name(&self) -> &str {
        &self.spec.name
    }

    fn remember_msg_id(&mut self, id: &str, seq: u64, at: i64) {
        self.dedupe.insert(id.to_owned(), (seq, at));
        self.dedupe_order.push_back((at, id.to_owned()));
    }

    fn expire_dedupe(&mut self, now: i64) {
        let start = now.saturating_sub(self.spec.limits.duplicate_window_nanos);
        while let Some((at, _)) = self.dedupe_order.front() {
            if *at >= start {
                break;
            }
            if let Some((at, id)) = self.dedupe_order.pop_front()
                && self.dedupe.get(&id).is_some_and(|(_, t)| *t == at)
            {
                self.dedupe.remove(&id);
            }
        }
    }

    fn duplicate_of(&self, id: &str, now: i64) -> Option<u64> {
        let start = now.saturating_sub(self.spec.limits.duplicate_window_nanos);
        self.dedupe
            .get(id)
            .filter(|(_, at)| *at >= start && self.spec.limits.duplicate_window_nanos > 0)
            .map(|(seq, _)| *seq)
    }

    /// Last live sequence on a subject filter (wildcards allowed), 0 if none.
    pub fn last_seq_for(&self, filter: &str) -> u64 {
        if subject::is_literal(filter) {
            return self
                .subjects
                .get(filter)
                .and_then(|d| d.back().copied())
                .unwrap_or(0);
        }
        self.subjects
            .iter()
            .filter(|(s, _)| subject::matches(filter, s))
            .filter_map(|(_, d)| d.back().copied())
            .max()
            .unwrap_or(0)
    }

    fn locate(&self, seq: u64) -> Option<(u64, usize)> {
        let (key, e) = self.entries.range(..=seq).next_back()?;
        let idx = usize::try_from(seq - key).ok()?;
        (idx < e.rec.records.len()).then_some((*key, idx))
    }

    fn record(&self, seq: u64) -> Option<(&EntryRecord, &RecMeta)> {
        let (key, idx) = self.locate(seq)?;
        let e = self.entries.get(&key)?;
        let r = e.rec.records.get(idx)?;
        (!r.deleted).then_some((&e.rec, r))
    }

    fn size_of(&self, seq: u64) -> u64 {
        self.record(seq).map_or(0, |(_, r)| u64::from(r.size))
    }

    /// Removes a live sequence from the index; false when it was not live.
    pub fn remove_seq(&mut self, seq: u64) -> bool {
        let Some((key, idx)) = self.locate(seq) else {
            return false;
        };
        let Some(e) = self.entries.get_mut(&key) else {
            return false;
        };
        let Some(r) = e.rec.records.get_mut(idx) else {
            return false;
        };
        if r.deleted {
            return false;
        }
        r.deleted = true;
        let (size, expires, subj_idx) = (r.size, r.expires, r.subject);
        e.live -= 1;
        let subj = e
            .rec
            .subjects
            .get(subj_idx as usize)
            .cloned()
            .unwrap_or_default();
        let store_key = e.key;
        if e.live == 0 {
            let object = e.rec.object_key.clone();
            self.entries.remove(&key);
            self.leave_key(store_key, key);
            *self.obj_delta.entry(object).or_default() -= 1;
        }
        self.dirty.insert(store_key);
        self.needs_fold = true;
        self.msgs -= 1;
        self.bytes = self.bytes.saturating_sub(u64::from(size));
        if let Some(d) = self.subjects.get_mut(&subj) {
            if let Ok(pos) = d.binary_search(&seq) {
                d.remove(pos);
            }
            if d.is_empty() {
                self.subjects.remove(&subj);
            }
        }
        if expires != 0 {
            self.ttls.remove(&(expires, seq));
        }
        if self.schedules.get(&subj).is_some_and(|(s, _)| *s == seq) {
            self.schedules.remove(&subj);
        }
        self.state_dirty = true;
        if seq == self.state.first_seq {
            self.advance_first();
        }
        true
    }

    fn first_live(&self) -> Option<(u64, &RecMeta)> {
        self.entries.values().find_map(|e| {
            e.rec
                .records
                .iter()
                .enumerate()
                .find(|(_, r)| !r.deleted)
                .map(|(i, r)| (e.rec.first_seq + i as u64, r))
        })
    }

    fn advance_first(&mut self) {
        self.state.first_seq = if self.msgs == 0 {
            self.state.last_seq + 1
        } else {
            self.first_live()
                .map_or(self.state.last_seq + 1, |(seq, _)| seq)
        };
        self.state_dirty = true;
    }

    fn append<'a>(
        &mut self,
        ctx: &mut ChunkCtx<'a>,
        position: u32,
        r: &'a Record,
        expires: i64,
        counter: Option<String>,
    ) -> u64 {
        let seq = self.state.last_seq + 1;
        let key = match ctx.entry {
            Some(k) if self.entries.contains_key(&k) => k,
            _ => {
                let store_key = match self.open_key {
                    Some(k) if self.keys.contains_key(&k) => k,
                    _ => {
                        self.open_key = Some(seq);
                        seq
                    }
                };
                self.keys.entry(store_key).or_default().insert(seq);
                self.entries.insert(
                    seq,
                    Entry {
                        key: store_key,
                        rec: EntryRecord {
                            object_key: ctx.object_key.to_owned(),
                            chunk_index: ctx.chunk_index,
                            byte_size: ctx.byte_size,
                            first_seq: seq,
                            committed_unix_nanos: ctx.committed,
                            subjects: Vec::new(),
                            records: Vec::new(),
                            segment: false,
                            more: Vec::new(),
                            state: None,
                            object_ref: 0,
                        },
                        live: 0,
                    },
                );
                // No key allocation when the object is counted already (every chunk
                // of a flush after the first).
                match self.obj_delta.get_mut(ctx.object_key) {
                    Some(d) => *d += 1,
                    None => {
                        self.obj_delta.insert(ctx.object_key.to_owned(), 1);
                    }
                }
                ctx.entry = Some(seq);
                ctx.subject_idx.clear();
                seq
            }
        };
        let Some(e) = self.entries.get_mut(&key) else {
            // Unreachable: inserted or checked above.
            return seq;
        };
        // Contiguity: an entry holds first_seq..first_seq+len with nothing in between.
        while e.rec.first_seq + (e.rec.records.len() as u64) < seq {
            e.rec.records.push(RecMeta {
                deleted: true,
                ..Default::default()
            });
        }
        let subj_idx = match ctx.subject_idx.get(r.subject.as_str()) {
            Some(i) => *i,
            None => {
                let i = u32::try_from(e.rec.subjects.len()).unwrap_or(u32::MAX);
                e.rec.subjects.push(r.subject.clone());
                ctx.subject_idx.insert(&r.subject, i);
                i
            }
        };
        e.rec.records.push(RecMeta {
            subject: subj_idx,
            size: r.size,
            ts: r.timestamp_unix_nanos,
            msg_id: r.msg_id.clone(),
            expires,
            position,
            deleted: false,
            counter,
            marker: None,
            schedule_next: 0,
        });
        e.live += 1;
        let store_key = e.key;
        self.dirty.insert(store_key);
        self.msgs += 1;
        self.bytes += u64::from(r.size);
        // No key allocation when the subject is known (the common case).
        match self.subjects.get_mut(&r.subject) {
            Some(d) => d.push_back(seq),
            None => {
                self.subjects
                    .insert(r.subject.clone(), VecDeque::from([seq]));
            }
        }
        if self.msgs == 1 {
            self.state.first_seq = seq;
        }
        self.state.last_seq = seq;
        match &r.msg_id {
            Some(id) => self.state.last_msg_id.clone_from(id),
            None => self.state.last_msg_id.clear(),
        }
        self.state.last_ts_unix_nanos = r.timestamp_unix_nanos;
        self.state_dirty = true;
        if let Some(id) = &r.msg_id {
            self.remember_msg_id(id, seq, ctx.committed);
        }
        if expires != 0 {
            self.ttls.insert((expires, seq));
        }
        seq
    }

    /// Checks one record against the stream, in nats-server's order. `Ok(Some(seq))`
    /// = duplicate of seq; `Ok(None)` = may be stored.
    fn check(&self, r: &Record, now: i64) -> Result<Option<u64>, JsError> {
        let l = &self.spec.limits;
        // Captured by an agent whose catalog still had a subject the stream dropped:
        // nats-server would not have captured it at all (a publish with a reply gets no
        // responders). A schedule's firing is the stream's own work, as in nats-server.
        if r.firing.is_none() && !self.filter.covers(&r.subject) {
            return Err(subject_not_in_stream(&r.subject, self.name()));
        }
        if l.sealed {
            return Err(ApiError::stream_sealed().into());
        }
        self.check_firing(r)?;
        self.check_incr(r)?;
        if let Some(name) = &r.expected_stream
            && name != self.name()
        {
            return Err(ApiError::stream_not_match().into());
        }
        if let Some(ttl) = r.ttl_seconds
            && ttl != 0
            && !l.allow_msg_ttl
        {
            return Err(ApiError::message_ttl_disabled().into());
        }
        if let Some(expected) = r.expected_last_subject_seq {
            let subj = r
                .expected_last_subject_seq_subject
                .as_deref()
                .unwrap_or(&r.subject);
            let last = self.last_seq_for(subj);
            if last != expected {
                return Err(ApiError::stream_wrong_last_sequence(last).into());
            }
        } else if r.expected_last_subject_seq_subject.is_some() {
            return Err(ApiError::stream_expected_last_seq_per_subject_invalid().into());
        }
        if let Some(expected) = r.expected_last_seq
            && expected != self.state.last_seq
        {
            return Err(ApiError::stream_wrong_last_sequence(self.state.last_seq).into());
        }
        self.check_schedule(r, now)?;
        if let Some(id) = &r.msg_id
            && let Some(seq) = self.duplicate_of(id, now)
        {
            return Ok(Some(seq));
        }
        if l.allow_msg_counter && r.incr.is_none() {
            return Err(ApiError::message_incr_missing().into());
        }
        if let Some(expected) = &r.expected_last_msg_id
            && *expected != self.state.last_msg_id
        {
            return Err(ApiError::stream_wrong_last_msg_id(&self.state.last_msg_id).into());
        }
        if r.rollup != Rollup::None && (!l.allow_rollup || l.deny_purge) {
            return Err(headers::rollup_not_permitted().into());
        }
        if let Rollup::Invalid(value) = &r.rollup {
            return Err(headers::rollup_invalid(value).into());
        }
        if let Some(max) = l.max_msg_size {
            let body = r
                .size
                .saturating_sub(u32::try_from(r.subject.len()).unwrap_or(u32::MAX));
            if body > max {
                return Err(ApiError::stream_message_exceeds_maximum().into());
            }
        }
        if let Some(ttl) = r.ttl_seconds
            && (ttl == 0 || ttl < -1)
        {
            return Err(ApiError::message_ttl_invalid().into());
        }
        if l.discard_new {
            let mut at_subject_limit = false;
            if let Some(mps) = l.max_msgs_per_subject {
                let count = self.subjects.get(&r.subject).map_or(0, |d| d.len() as u64);
                if count + 1 > mps {
                    if l.discard_new_per_subject && r.rollup == Rollup::None {
                        return Err(
                            ApiError::stream_store_failed(store::MAX_MSGS_PER_SUBJECT).into()
                        );
                    }
                    at_subject_limit = true;
                }
            }
            if let Some(mm) = l.max_msgs
                && self.msgs >= mm
                && !at_subject_limit
            {
                return Err(ApiError::stream_store_failed(store::MAX_MSGS).into());
            }
            if let Some(mb) = l.max_bytes
                && self.bytes + u64::from(r.size) > mb
            {
                let first_of_subject = self
                    .subjects
                    .get(&r.subject)
                    .and_then(|d| d.front().copied())
                    .unwrap_or(0);
                if !at_subject_limit || self.size_of(first_of_subject) < u64::from(r.size) {
                    return Err(ApiError::stream_store_failed(store::MAX_BYTES).into());
                }
            }
        }
        Ok(None)
    }

    /// nats-server's `Nats-Incr` pre-checks (ADR-49): an invalid value first, then a
    /// stream without counters, then a payload or a refused header.
    fn check_incr(&self, r: &Record) -> Result<(), JsError> {
        let problem = r.incr_problem;
        if r.incr.is_none() {
            return match problem {
                IncrProblem::None => Ok(()),
                _ => Err(ApiError::message_incr_invalid().into()),
            };
        }
        if !self.spec.limits.allow_msg_counter {
            return Err(ApiError::message_incr_disabled().into());
        }
        match problem {
            IncrProblem::None => Ok(()),
            IncrProblem::Payload => Err(ApiError::message_incr_payload().into()),
            IncrProblem::Invalid => Err(ApiError::message_incr_invalid().into()),
        }
    }

    /// The subject's counter total after adding `incr` to its last live message's.
    fn counter_total(&self, subject: &str, incr: &str) -> Option<String> {
        let last = self.subjects.get(subject).and_then(|d| d.back().copied());
        let total = last
            .and_then(|seq| self.record(seq))
            .and_then(|(_, m)| m.counter.as_deref());
        counter::add(total, incr)
    }

    /// Commits one chunk; answers per record.
    #[cfg(test)]
    pub fn commit_chunk(&mut self, chunk: &Chunk, object_key: &str, now: i64) -> Vec<RecordResult> {
        self.commit_chunk_within(chunk, object_key, now, &mut None)
    }

    /// [`commit_chunk`](Self::commit_chunk) within the bytes the account may still
    /// store (`room`, `None` = unlimited; taken down by what is stored): a record, or
    /// an atomic batch, that does not fit is refused with nats-server's `resource
    /// limits exceeded for account` (10002).
    pub fn commit_chunk_within(
        &mut self,
        chunk: &Chunk,
        object_key: &str,
        now: i64,
        room: &mut Option<u64>,
    ) -> Vec<RecordResult> {
        self.expire_dedupe(now);
        self.enforce_time(now);
        self.filter.refresh(&self.spec.limits.subjects);
        let mut ctx = ChunkCtx {
            object_key,
            chunk_index: chunk.chunk_index,
            byte_size: chunk.byte_size,
            committed: now,
            entry: None,
            subject_idx: HashMap::new(),
        };
        let mut out = Vec::with_capacity(chunk.records.len());
        // Fast batches (gap mode `fail`) that ended at a refused record of this chunk.
        let mut failed: Vec<&str> = Vec::new();
        let mut pos = 0;
        while let Some(r) = chunk.records.get(pos) {
            if let Some(batch) = r.atomic_batch.as_deref() {
                // An atomic batch: its records are contiguous; all are stored or none.
                let len = chunk.records[pos..]
                    .iter()
                    .take_while(|b| b.atomic_batch.as_deref() == Some(batch))
                    .count();
                let records = &chunk.records[pos..pos + len];
                let size = records.iter().map(|r| u64::from(r.size)).sum();
                if take_room(room, size) {
                    self.commit_atomic(&mut ctx, &chunk.records, pos..pos + len, now, &mut out);
                } else {
                    let e: JsError = ApiError::account_resources_exceeded().into();
                    out.extend(records.iter().map(|_| err(e.clone())));
                }
                pos += len;
                continue;
            }
            if let Some(batch) = r.fail_batch.as_deref()
                && (r.withdrawn || failed.contains(&batch))
            {
                // nats-server takes nothing of a batch after its refused message.
                out.push(err(ApiError::batch_publish_unknown_batch_id().into()));
                pos += 1;
                continue;
            }
            let result = match self.check(r, now) {
                Err(e) => err(e),
                Ok(Some(orig)) => RecordResult {
                    result: Some(record_result::Result::DuplicateOf(orig)),
                    ..Default::default()
                },
                Ok(None) if !take_room(room, u64::from(r.size)) => {
                    err(ApiError::account_resources_exceeded().into())
                }
                Ok(None) => self.store_checked(&mut ctx, pos, r),
            };
            if let Some(batch) = r.fail_batch.as_deref()
                && matches!(result.result, Some(record_result::Result::Error(_)))
            {
                failed.push(batch);
            }
            out.push(result);
            pos += 1;
        }
        out
    }

    /// Appends a record that passed its checks, then applies rollups and limits; a
    /// counter's increment is added to its subject's total here.
    fn store_checked<'a>(
        &mut self,
        ctx: &mut ChunkCtx<'a>,
        pos: usize,
        r: &'a Record,
    ) -> RecordResult {
        let expires = match self.effective_ttl(r.ttl_seconds) {
            Some(ttl) if ttl > 0 => r
                .timestamp_unix_nanos
                .saturating_add(ttl.saturating_mul(1_000_000_000)),
            _ => 0,
        };
        let total = match (&r.incr, self.spec.limits.allow_msg_counter) {
            (Some(incr), true) => match self.counter_total(&r.subject, incr) {
                Some(t) => Some(t),
                None => return err(ApiError::message_incr_invalid().into()),
            },
            _ => None,
        };
        let position = u32::try_from(pos).unwrap_or(u32::MAX);
        let seq = self.append(ctx, position, r, expires, total.clone());
        self.after_append(seq, r);
        self.after_append_schedule(seq, r, ctx.committed);
        let mut res = ok_seq(seq);
        res.counter_value = total.unwrap_or_default();
        res
    }

    /// A message TTL as nats-server applies it: with subject delete markers, a TTL
    /// shorter than the marker TTL is raised to it (whole seconds), so a marker never
    /// outlives the message whose removal it reports — except with one message per
    /// subject, which never leaves an older one behind. The gateway rewrites the stored
    /// `Nats-TTL` header by the same rule.
    pub fn effective_ttl(&self, ttl_seconds: Option<i64>) -> Option<i64> {
        let ttl = ttl_seconds?;
        if self.spec.limits.max_msgs_per_subject == Some(1) {
            return Some(ttl);
        }
        let marker_secs = self
            .spec
            .limits
            .subject_delete_marker_ttl_nanos
            .map_or(0, |n| n / 1_000_000_000);
        Some(if ttl > 0 && ttl < marker_secs {
            marker_secs
        } else {
            ttl
        })
    }

    fn after_append(&mut self, seq: u64, r: &Record) {
        match r.rollup {
            Rollup::Subject => {
                let older: Vec<u64> = self
                    .subjects
                    .get(&r.subject)
                    .map(|d| d.iter().copied().filter(|s| *s < seq).collect())
                    .unwrap_or_default();
                for s in older {
                    self.remove_seq(s);
                }
            }
            Rollup::All => {
                let older = self.live_seqs_below(seq);
                for s in older {
                    self.remove_seq(s);
                }
            }
            Rollup::None | Rollup::Invalid(_) => {}
        }
        self.enforce_subject_limit(&r.subject);
        self.enforce_count_limits();
    }

    fn live_seqs_below(&self, below: u64) -> Vec<u64> {
        let mut out = Vec::new();
        for e in self.entries.values() {
            for (i, r) in e.rec.records.iter().enumerate() {
                let seq = e.rec.first_seq + i as u64;
                if seq >= below {
                    return out;
                }
                if !r.deleted {
                    out.push(seq);
                }
            }
        }
        out
    }

    fn enforce_subject_limit(&mut self, subj: &str) {
        let Some(mps) = self.spec.limits.max_msgs_per_subject else {
            return;
        };
        while let Some(d) = self.subjects.get(subj) {
            if d.len() as u64 <= mps {
                break;
            }
            let Some(first) = d.front().copied() else {
                break;
            };
            if !self.remove_seq(first) {
                break;
            }
        }
    }

    fn enforce_count_limits(&mut self) {
        let l = &self.spec.limits;
        if l.discard_new {
            return;
        }
        let (mm, mb) = (l.max_msgs, l.max_bytes);
        while mm.is_some_and(|m| self.msgs > m)
            || mb.is_some_and(|m| self.bytes > m && self.msgs > 1)
        {
            let first = self.state.first_seq;
            if !self.remove_seq(first) {
                break;
            }
        }
    }

    /// Applies every limit at once (after a config update).
    pub fn enforce_all_limits(&mut self, now: i64) {
        if self.spec.limits.max_msgs_per_subject.is_some() {
            let subjects: Vec<String> = self.subjects.keys().cloned().collect();
            for s in subjects {
                self.enforce_subject_limit(&s);
            }
        }
        let discard_new = self.spec.limits.discard_new;
        self.spec.limits.discard_new = false;
        self.enforce_count_limits();
        self.spec.limits.discard_new = discard_new;
        self.enforce_time(now);
    }

    /// When the next message expires (by its TTL or max_age), if any does.
    pub fn next_expiry(&self) -> Option<i64> {
        let by_ttl = self.ttls.first().map(|(at, _)| *at);
        let by_age = self
            .spec
            .limits
            .max_age_nanos
            .and_then(|age| self.first_live().map(|(_, r)| r.ts.saturating_add(age)));
        match (by_ttl, by_age) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Removes messages past max_age or their TTL; returns how many. With
    /// `subject_delete_marker_ttl`, a subject whose last message this removed gets a
    /// marker (see [`Stream::append_marker`]); a marker's own expiry leaves none.
    pub fn enforce_time(&mut self, now: i64) -> u64 {
        let mut removed = 0;
        let mut emptied: Vec<String> = Vec::new();
        if let Some(max_age) = self.spec.limits.max_age_nanos {
            let cutoff = now.saturating_sub(max_age);
            while let Some((seq, r)) = self.first_live() {
                if r.ts >= cutoff {
                    break;
                }
                let subject = self.marker_candidate(seq);
                if !self.remove_seq(seq) {
                    break;
                }
                removed += 1;
                self.note_emptied(subject, &mut emptied);
            }
        }
        while let Some(&(expires, seq)) = self.ttls.first() {
            if expires > now {
                break;
            }
            self.ttls.remove(&(expires, seq));
            let subject = self.marker_candidate(seq);
            if self.remove_seq(seq) {
                removed += 1;
                self.note_emptied(subject, &mut emptied);
            }
        }
        if let Some(ttl) = self.spec.limits.subject_delete_marker_ttl_nanos {
            for subject in emptied {
                self.append_marker(&subject, MARKER_MAX_AGE, now, ttl);
            }
        }
        self.expire_dedupe(now);
        removed
    }

    /// The subject of `seq` when removing it may call for a marker: markers are on,
    /// and `seq` is a live message that is not itself a marker.
    fn marker_candidate(&self, seq: u64) -> Option<String> {
        self.spec.limits.subject_delete_marker_ttl_nanos?;
        let (e, r) = self.record(seq)?;
        if r.marker.is_some() {
            return None;
        }
        e.subjects.get(r.subject as usize).cloned()
    }

    fn note_emptied(&self, subject: Option<String>, emptied: &mut Vec<String>) {
        if let Some(subject) = subject
            && !self.subjects.contains_key(&subject)
            && !emptied.contains(&subject)
        {
            emptied.push(subject);
        }
    }

    /// Stores a subject delete marker on `subject` (nats-server's: an empty message
    /// with `Nats-Marker-Reason`, `Nats-TTL` and `Nats-Rollup: sub`). The control plane
    /// never writes objects, so the marker lives in the index alone: an entry of its
    /// own without an object key, which readers serve from the index
    /// (`IndexEntry::marker`). It expires like any message with a TTL.
    fn append_marker(&mut self, subject: &str, reason: &str, now: i64, ttl_nanos: i64) -> u64 {
        let headers = marker_headers(reason, ttl_nanos);
        let record = Record {
            subject: subject.to_owned(),
            size: u32::try_from(subject.len() + headers.len()).unwrap_or(u32::MAX),
            header_size: u32::try_from(headers.len()).unwrap_or(u32::MAX),
            timestamp_unix_nanos: now,
            ..Record::default()
        };
        let mut ctx = ChunkCtx {
            object_key: "",
            chunk_index: 0,
            byte_size: 0,
            committed: now,
            entry: None,
            subject_idx: HashMap::new(),
        };
        let seq = self.append(&mut ctx, 0, &record, now.saturating_add(ttl_nanos), None);
        if let Some((key, idx)) = self.locate(seq)
            && let Some(r) = self
                .entries
                .get_mut(&key)
                .and_then(|e| e.rec.records.get_mut(idx))
        {
            r.marker = Some(reason.to_owned());
        }
        seq
    }

    /// Purges (JetStream purge request semantics); returns how many were removed.
    pub fn purge(&mut self, filter: &str, keep: Option<u64>, up_to: Option<u64>) -> u64 {
        let mut doomed: Vec<u64> = Vec::new();
        if filter.is_empty() {
            let all = self.live_seqs_below(u64::MAX);
            doomed = match (keep, up_to) {
                (Some(k), _) => {
                    let n = all
                        .len()
                        .saturating_sub(usize::try_from(k).unwrap_or(usize::MAX));
                    all[..n].to_vec()
                }
                (None, Some(u)) => all.into_iter().filter(|s| *s < u).collect(),
                (None, None) => all,
            };
        } else {
            for (s, d) in &self.subjects {
                if !subject::matches(filter, s) {
                    continue;
                }
                match (keep, up_to) {
                    (Some(k), _) => {
                        let n = d
                            .len()
                            .saturating_sub(usize::try_from(k).unwrap_or(usize::MAX));
                        doomed.extend(d.iter().take(n));
                    }
                    (None, Some(u)) => doomed.extend(d.iter().filter(|x| **x < u)),
                    (None, None) => doomed.extend(d.iter()),
                }
            }
            doomed.sort_unstable();
        }
        let mut n = 0;
        for s in doomed {
            if self.remove_seq(s) {
                n += 1;
            }
        }
        if filter.is_empty() && keep.is_none() && up_to.is_none() {
            // A full purge moves first_seq past the last sequence, as nats-server does.
            self.state.first_seq = self.state.last_seq + 1;
            self.state_dirty = true;
        } else if n > 0 && self.msgs == 0 {
            self.advance_first();
        }
        n
    }

    /// Removes every entry (stream delete); updates object reference deltas.
    pub fn remove_all_entries(&mut self) {
        let keys: Vec<u64> = self.entries.keys().copied().collect();
        for k in keys {
            if let Some(e) = self.entries.remove(&k) {
                *self.obj_delta.entry(e.rec.object_key).or_default() -= 1;
            }
        }
        self.keys.clear();
        self.dirty.clear();
        self.open_key = None;
    }

    /// Forgets that entry `first_seq` is stored under `store_key`.
    fn leave_key(&mut self, store_key: u64, first_seq: u64) {
        if let Some(members) = self.keys.get_mut(&store_key) {
            members.remove(&first_seq);
            if members.is_empty() {
                self.keys.remove(&store_key);
            }
        }
    }

    /// Replaces consecutive entries by one segment entry. Fails, naming why, when the
    /// entries are not the current ones.
    pub fn swap(
        &mut self,
        replaced: &[v1::IndexEntryRef],
        segment_key: &str,
        segment_size: u64,
    ) -> Result<(), String> {
        let Some(first) = replaced.first() else {
            return Err("no entries to replace".into());
        };
        let mut keys = self.entries.range(first.first_seq..).map(|(k, _)| *k);
        for r in replaced {
            let Some(k) = keys.next() else {
                return Err(format!("entry at seq {} is gone", r.first_seq));
            };
            if k != r.first_seq {
                return Err(format!(
                    "entries are not consecutive or changed: expected seq {}, found {k}",
                    r.first_seq
                ));
            }
            match self.entries.get(&k) {
                Some(e)
                    if e.rec.object_key == r.object_key && e.rec.chunk_index == r.chunk_index => {}
                _ => return Err(format!("entry at seq {k} changed")),
            }
        }
        let mut seg = EntryRecord {
            object_key: segment_key.to_owned(),
            chunk_index: 0,
            byte_size: segment_size,
            first_seq: first.first_seq,
            committed_unix_nanos: 0,
            subjects: Vec::new(),
            records: Vec::new(),
            segment: true,
            more: Vec::new(),
            state: None,
            object_ref: 0,
        };
        let mut subj_idx: HashMap<String, u32> = HashMap::new();
        let mut live = 0;
        for r in replaced {
            let Some(e) = self.entries.remove(&r.first_seq) else {
                continue;
            };
            while seg.first_seq + (seg.records.len() as u64) < e.rec.first_seq {
                seg.records.push(RecMeta {
                    deleted: true,
                    ..Default::default()
                });
            }
            seg.committed_unix_nanos = seg.committed_unix_nanos.max(e.rec.committed_unix_nanos);
            for rec in &e.rec.records {
                let subj = e
                    .rec
                    .subjects
                    .get(rec.subject as usize)
                    .cloned()
                    .unwrap_or_default();
                let next = u32::try_from(seg.subjects.len()).unwrap_or(u32::MAX);
                let idx = *subj_idx.entry(subj.clone()).or_insert_with(|| {
                    seg.subjects.push(subj);
                    next
                });
                let position = u32::try_from(seg.records.len()).unwrap_or(u32::MAX);
                seg.records.push(RecMeta {
                    subject: idx,
                    position,
                    ..rec.clone()
                });
            }
            live += e.live;
            self.leave_key(e.key, r.first_seq);
            self.dirty.insert(e.key);
            *self.obj_delta.entry(e.rec.object_key).or_default() -= 1;
        }
        *self.obj_delta.entry(segment_key.to_owned()).or_default() += 1;
        // The segment is stored under its own first sequence (joining the entries
        // still stored there, if that key is in use).
        let store_key = first.first_seq;
        self.keys
            .entry(store_key)
            .or_default()
            .insert(first.first_seq);
        self.entries.insert(
            first.first_seq,
            Entry {
                rec: seg,
                live,
                key: store_key,
            },
        );
        self.dirty.insert(store_key);
        self.needs_fold = true;
        Ok(())
    }

    // ---- reads ----

    pub fn state(&self, deleted_details: bool) -> v1::StreamState {
        let first_ts = self.first_live().map_or(0, |(_, r)| r.ts);
        let num_deleted = if self.msgs == 0 {
            0
        } else {
            (self.state.last_seq + 1 - self.state.first_seq).saturating_sub(self.msgs)
        };
        let mut deleted = Vec::new();
        if deleted_details && num_deleted > 0 {
            let mut next = self.state.first_seq;
            'outer: for e in self.entries.values() {
                while next < e.rec.first_seq {
                    deleted.push(next);
                    next += 1;
                    if deleted.len() >= MAX_DELETED_DETAILS {
                        break 'outer;
                    }
                }
                for (i, r) in e.rec.records.iter().enumerate() {
                    let seq = e.rec.first_seq + i as u64;
                    if seq < self.state.first_seq {
                        continue;
                    }
                    if r.deleted {
                        deleted.push(seq);
                        if deleted.len() >= MAX_DELETED_DETAILS {
                            break 'outer;
                        }
                    }
                }
                next = next.max(e.last_seq() + 1);
            }
        }
        v1::StreamState {
            messages: self.msgs,
            bytes: self.bytes,
            first_seq: self.state.first_seq,
            first_ts_unix_nanos: first_ts,
            last_seq: self.state.last_seq,
            last_ts_unix_nanos: self.state.last_ts_unix_nanos,
            num_subjects: self.subjects.len() as u64,
            num_deleted,
            deleted,
            consumer_count: 0,
        }
    }

    pub fn read_index(&self, start: u64, end: u64, limit: usize) -> Vec<v1::IndexEntry> {
        let end = if end == 0 { u64::MAX } else { end };
        let begin = self
            .entries
            .range(..=start)
            .next_back()
            .filter(|(_, e)| e.last_seq() >= start)
            .map_or(start, |(k, _)| *k);
        self.entries
            .range(begin..=end)
            .take(limit)
            .map(|(_, e)| {
                let positions = if e.rec.segment {
                    Vec::new()
                } else {
                    e.rec.records.iter().map(|r| r.position).collect()
                };
                v1::IndexEntry {
                    object_key: e.rec.object_key.clone(),
                    chunk_index: e.rec.chunk_index,
                    chunk_byte_size: e.rec.byte_size,
                    first_seq: e.rec.first_seq,
                    last_seq: e.last_seq(),
                    positions,
                    deleted: e
                        .rec
                        .records
                        .iter()
                        .enumerate()
                        .filter(|(_, r)| r.deleted)
                        .map(|(i, _)| e.rec.first_seq + i as u64)
                        .collect(),
                    segment: e.rec.segment,
                    counter_values: if e.rec.records.iter().any(|r| r.counter.is_some()) {
                        e.rec
                            .records
                            .iter()
                            .map(|r| r.counter.clone().unwrap_or_default())
                            .collect()
                    } else {
                        Vec::new()
                    },
                    marker: e
                        .rec
                        .object_key
                        .is_empty()
                        .then(|| marker_record(&e.rec))
                        .flatten(),
                }
            })
            .collect()
    }

    pub fn seq_for_time(&self, ts: i64) -> u64 {
        for e in self.entries.values() {
            for (i, r) in e.rec.records.iter().enumerate() {
                if !r.deleted && r.ts >= ts {
                    return e.rec.first_seq + i as u64;
                }
            }
        }
        0
    }

    pub fn last_by_subject(&self, subjects: &[String]) -> Vec<v1::SubjectLast> {
        let one = |(s, d): (&String, &VecDeque<u64>)| {
            d.back().map(|last| v1::SubjectLast {
                subject: s.clone(),
                last_seq: *last,
                count: d.len() as u64,
            })
        };
        if subjects.is_empty() {
            self.subjects.iter().filter_map(one).collect()
        } else {
            // A filter with wildcards stands for every live subject it matches (as
            // nats-server's last_by_subj does); overlapping filters list a subject once.
            let mut out: Vec<v1::SubjectLast> = Vec::new();
            for want in subjects {
                if subject::is_literal(want) {
                    out.extend(self.subjects.get_key_value(want).and_then(one));
                } else {
                    out.extend(
                        self.subjects
                            .iter()
                            .filter(|(s, _)| subject::matches(want, s))
                            .filter_map(one),
                    );
                }
            }
            out.sort_by(|a, b| a.subject.cmp(&b.subject));
            out.dedup_by(|a, b| a.subject == b.subject);
            out
        }
    }

    /// Whether what changed since the last write can go to the round log: only
    /// appends (to the open key), nothing removed or replaced.
    pub fn can_log(&self, max_unfolded: usize) -> bool {
        !self.needs_fold
            && self.unfolded < max_unfolded
            && self.dirty.iter().all(|k| Some(*k) == self.open_key)
    }

    /// Appends this stream's part of round `round`'s log record (an encoded
    /// `LogStream` as field 1 of `LogRecord`) to `out`: the entries appended since the
    /// last write and the state. False when nothing changed. The entries stay in the
    /// open key, which the stream's next fold writes whole. Object keys go to
    /// `objects` (the record's table) and the entries refer to them.
    pub fn take_log(&mut self, round: u64, out: &mut Vec<u8>, objects: &mut ObjectTable) -> bool {
        use prost::encoding;
        let state_changed = std::mem::take(&mut self.state_dirty);
        let key = self.open_key.unwrap_or(0);
        let mut inner = Vec::new();
        encoding::string::encode(1, &self.spec.name, &mut inner);
        encoding::uint64::encode(2, &key, &mut inner);
        let mut n = 0;
        let Stream { keys, entries, .. } = self;
        if let Some(members) = keys.get(&key) {
            for seq in members.range(self.logged_upto.saturating_add(1)..) {
                if let Some(e) = entries.get_mut(seq) {
                    let object = std::mem::take(&mut e.rec.object_key);
                    e.rec.object_ref = objects.intern(&object);
                    encoding::message::encode(3, &e.rec, &mut inner);
                    e.rec.object_ref = 0;
                    e.rec.object_key = object;
                    n += 1;
                }
            }
        }
        self.dirty.clear();
        self.logged_upto = self.state.last_seq;
        if n == 0 && !state_changed {
            return false;
        }
        encoding::message::encode(4, &self.state, &mut inner);
        encoding::bytes::encode(1, &inner, out);
        self.unfolded += n;
        self.since.get_or_insert(round);
        true
    }

    /// Makes the next `take_entry_changes` write everything logged but not folded,
    /// with a state saying that the log up to `round` is folded.
    pub fn begin_fold(&mut self, round: u64) {
        if self.unfolded > 0
            && let Some(k) = self.open_key
            && self.keys.contains_key(&k)
        {
            self.dirty.insert(k);
        }
        self.state.folded_round = round;
        self.state_dirty = true;
        self.needs_fold = false;
        self.since = None;
        self.unfolded = 0;
        self.logged_upto = self.state.last_seq;
    }

    /// After loading: `unfolded` entries replayed from round log records (the oldest
    /// `since`) live in `open_key`, which is not written yet.
    pub fn restore_log(&mut self, open_key: u64, since: u64, unfolded: usize) {
        if unfolded > 0 {
            self.open_key = Some(open_key);
        }
        self.since = Some(since);
        self.unfolded = unfolded;
    }

    /// Takes the store keys to write (with their encoded value: every entry stored
    /// under the key, and the stream's current state) and to delete since the last
    /// call. New entries start a new key after this.
    pub fn take_entry_changes(&mut self) -> (Vec<(u64, Vec<u8>)>, Vec<u64>) {
        use prost::Message;
        self.open_key = None;
        let mut puts = Vec::new();
        let mut deletes = Vec::new();
        for k in std::mem::take(&mut self.dirty) {
            let members = self
                .keys
                .get(&k)
                .into_iter()
                .flatten()
                .filter_map(|seq| self.entries.get(seq));
            let mut buf = Vec::new();
            for (i, e) in members.enumerate() {
                if i == 0 {
                    e.rec.encode_raw(&mut buf);
                } else {
                    prost::encoding::message::encode(9, &e.rec, &mut buf);
                }
            }
            if buf.is_empty() {
                deletes.push(k);
            } else {
                prost::encoding::message::encode(10, &self.state, &mut buf);
                puts.push((k, buf));
            }
        }
        (puts, deletes)
    }
}

impl Stream {
    /// The first live sequence at or after `from` whose subject matches one of
    /// `filters` (all subjects when empty).
    pub fn next_live(&self, from: u64, filters: &[String]) -> Option<u64> {
        let begin = self
            .entries
            .range(..=from)
            .next_back()
            .map_or(from, |(k, _)| *k);
        for e in self.entries.range(begin..).map(|(_, e)| e) {
            // Start at `from`'s offset, not at the entry's first record: an entry holds
            // a whole writer round and claims ask once per message handed out.
            let skip = usize::try_from(from.saturating_sub(e.rec.first_seq)).unwrap_or(usize::MAX);
            for (i, r) in e.rec.records.iter().enumerate().skip(skip) {
                let seq = e.rec.first_seq + i as u64;
                if seq < from || r.deleted {
                    continue;
                }
                if filters.is_empty() {
                    return Some(seq);
                }
                let subj = e
                    .rec
                    .subjects
                    .get(r.subject as usize)
                    .map_or("", String::as_str);
                if filters.iter().any(|f| subject::matches(f, subj)) {
                    return Some(seq);
                }
            }
        }
        None
    }

    /// Whether `seq` is live.
    pub fn is_live(&self, seq: u64) -> bool {
        self.record(seq).is_some()
    }

    /// Live messages after `after` matching the filters.
    pub fn count_after(&self, after: u64, filters: &[String]) -> u64 {
        self.subjects
            .iter()
            .filter(|(s, _)| filters.is_empty() || filters.iter().any(|f| subject::matches(f, s)))
            .map(|(_, d)| (d.len() - d.partition_point(|x| *x <= after)) as u64)
            .sum()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use infinistream_proto::domain::Limits;

    pub(super) fn spec(limits: Limits) -> StreamSpec {
        StreamSpec {
            name: "S".into(),
            config_json: b"{}".to_vec(),
            limits: Limits {
                subjects: vec!["s.>".into()],
                duplicate_window_nanos: 120_000_000_000,
                ..limits
            },
        }
    }

    pub(super) fn rec(subject: &str) -> Record {
        Record {
            subject: subject.into(),
            size: 10,
            header_size: 0,
            timestamp_unix_nanos: 1,
            ..Record::default()
        }
    }

    fn commit(s: &mut Stream, records: Vec<Record>) -> Vec<RecordResult> {
        let chunk = Chunk {
            stream: "S".into(),
            chunk_index: 0,
            byte_size: 100,
            records,
        };
        s.commit_chunk(&chunk, "obj", 1_000)
    }

    fn seqs(r: &[RecordResult]) -> Vec<String> {
        r.iter()
            .map(|r| match &r.result {
                Some(record_result::Result::Seq(s)) => format!("{s}"),
                Some(record_result::Result::DuplicateOf(s)) => format!("dup{s}"),
                Some(record_result::Result::Error(e)) => format!("e{}", e.err_code),
                None => "none".into(),
            })
            .collect()
    }

    /// A record on a subject the stream no longer has (an agent's stale catalog
    /// captured it) is refused with 10077, also inside an atomic batch and on a retry
    /// of a Msg-Id stored before the change; its covered neighbours are stored.
    #[test]
    fn a_subject_the_stream_dropped_is_refused_at_commit() {
        let mut s = Stream::new(spec(Limits::default()), 0);
        let mut stored = rec("s.1");
        stored.msg_id = Some("m".into());
        assert_eq!(
            seqs(&commit(&mut s, vec![stored.clone(), rec("t.1")])),
            ["1", "e10077"]
        );
        s.spec.limits.subjects = vec!["s.a".into(), "u.*".into()];
        let batch = |subject: &str| Record {
            atomic_batch: Some("b".into()),
            ..rec(subject)
        };
        let answers = commit(
            &mut s,
            vec![
                rec("s.1"),
                rec("s.a"),
                rec("u.1"),
                stored,
                batch("s.a"),
                batch("s.2"),
            ],
        );
        assert_eq!(
            seqs(&answers),
            ["e10077", "2", "3", "e10077", "e10077", "e10077"]
        );
        let Some(record_result::Result::Error(e)) = &answers[0].result else {
            panic!("{answers:?}");
        };
        assert!(
            e.description
                .contains("subject s.1 is not in stream S's subjects"),
            "{e:?}"
        );
        assert_eq!((s.msgs, s.state.last_seq), (3, 3));
    }

    /// What the subject check adds to a commit, printed (`--nocapture`), never
    /// asserted: 20,000 records in chunks of 100 through `commit_chunk`, against the
    /// time `covers` alone takes for the same subjects, for a stream with one
    /// wildcard subject and for one with 1,000 literal subjects.
    #[test]
    fn commit_cost_of_the_subject_check() {
        for subjects in [
            vec!["s.>".to_owned()],
            (0..1000).map(|i| format!("s.{i}")).collect(),
        ] {
            let mut s = Stream::new(
                StreamSpec {
                    limits: Limits {
                        subjects: subjects.clone(),
                        ..spec(Limits::default()).limits
                    },
                    ..spec(Limits::default())
                },
                0,
            );
            let records: Vec<Record> = (0..20_000)
                .map(|i| rec(&format!("s.{}", i % 1000)))
                .collect();
            let started = std::time::Instant::now();
            for (i, chunk) in records.chunks(100).enumerate() {
                let chunk = Chunk {
                    stream: "S".into(),
                    chunk_index: 0,
                    byte_size: 100,
                    records: chunk.to_vec(),
                };
                s.commit_chunk(&chunk, &format!("obj{i}"), 1_000);
            }
            let commit = started.elapsed();
            let started = std::time::Instant::now();
            let covered = records
                .iter()
                .filter(|r| s.filter.covers(&r.subject))
                .count();
            let check = started.elapsed();
            assert_eq!((covered, s.msgs), (20_000, 20_000));
            println!(
                "{} subject(s): commit {:.2} µs/record, of which the subject check {:.3} µs ({:.1} %)",
                subjects.len(),
                commit.as_secs_f64() * 1e6 / 20_000.0,
                check.as_secs_f64() * 1e6 / 20_000.0,
                100.0 * check.as_secs_f64() / commit.as_secs_f64()
            );
        }
    }

    fn incr(subject: &str, by: &str) -> Record {
        Record {
            incr: Some(by.into()),
            ..rec(subject)
        }
    }

    fn totals(r: &[RecordResult]) -> Vec<String> {
        r.iter()
            .map(|r| match &r.result {
                Some(record_result::Result::Seq(_)) => r.counter_value.clone(),
                Some(record_result::Result::Error(e)) => format!("e{}", e.err_code),
                _ => "other".into(),
            })
            .collect()
    }

    /// Counter streams keep a total per subject from the Nats-Incr values, in commit
    /// order; the errors are nats-server's (probed against 2.15.1).
    #[test]
    fn counters_add_increments_per_subject() {
        let mut s = Stream::new(
            spec(Limits {
                allow_msg_counter: true,
                ..Default::default()
            }),
            0,
        );
        let mut payload = incr("s.a", "1");
        payload.incr_problem = IncrProblem::Payload;
        let mut refused = incr("s.a", "1");
        refused.incr_problem = IncrProblem::Invalid;
        let mut unparsable = rec("s.a");
        unparsable.incr_problem = IncrProblem::Invalid;
        let r = commit(
            &mut s,
            vec![
                incr("s.a", "1"),
                incr("s.a", "5"),
                incr("s.b", "-2"),
                incr("s.a", "-2"),
                rec("s.a"),
                payload,
                refused,
                unparsable,
                incr("s.b", "99999999999999999999999999"),
            ],
        );
        assert_eq!(
            totals(&r),
            [
                "1",
                "6",
                "-2",
                "4",
                "e10169",
                "e10170",
                "e10171",
                "e10171",
                "99999999999999999999999997"
            ]
        );
        // The total is the last live message's: deleting it steps back.
        assert!(s.remove_seq(4));
        let r = commit(&mut s, vec![incr("s.a", "0")]);
        assert_eq!(totals(&r), ["6"]);
        // The index carries each record's total for readers.
        let index = s.read_index(1, 0, 10);
        assert_eq!(index[0].counter_values[..3], ["1", "6", "-2"]);
        // Increments on a stream without counters: 10168.
        let mut plain = Stream::new(spec(Limits::default()), 0);
        assert_eq!(
            totals(&commit(&mut plain, vec![incr("s.a", "1")])),
            ["e10168"]
        );
    }

    /// A stream created with `first_seq` starts there, as nats-server's does.
    #[test]
    fn first_seq_starts_the_stream() {
        let mut s = Stream::new(
            spec(Limits {
                first_seq: 100,
                ..Default::default()
            }),
            0,
        );
        s.start_at_first_seq();
        let st = s.state(false);
        assert_eq!((st.messages, st.first_seq, st.last_seq), (0, 100, 99));
        assert_eq!(
            seqs(&commit(&mut s, vec![rec("s.a"), rec("s.b")])),
            ["100", "101"]
        );
        let st = s.state(false);
        assert_eq!((st.first_seq, st.last_seq), (100, 101));
    }

    /// When a TTL removes the last message on a subject, a marker takes its place and
    /// expires after the marker TTL; the marker's expiry leaves no new marker, and a
    /// subject that still has messages gets none.
    #[test]
    fn markers_replace_expired_subjects_and_expire() {
        const SEC: i64 = 1_000_000_000;
        let mut s = Stream::new(
            spec(Limits {
                allow_msg_ttl: true,
                subject_delete_marker_ttl_nanos: Some(SEC),
                ..Default::default()
            }),
            0,
        );
        let ttl = |subject: &str| Record {
            ttl_seconds: Some(1),
            ..rec(subject)
        };
        commit(&mut s, vec![ttl("s.a"), ttl("s.b"), rec("s.b")]);
        assert_eq!(s.next_expiry(), Some(1 + SEC));
        assert_eq!(s.enforce_time(SEC), 0, "not yet");
        assert_eq!(s.enforce_time(1 + SEC), 2);
        let st = s.state(false);
        assert_eq!((st.messages, st.first_seq, st.last_seq), (2, 3, 4));
        let index = s.read_index(4, 4, 1);
        let marker = index[0].marker.as_ref().expect("a marker entry");
        assert_eq!(index[0].object_key, "");
        assert_eq!(marker.subject, "s.a");
        assert_eq!(
            marker.headers,
            b"NATS/1.0\r\nNats-Marker-Reason: MaxAge\r\nNats-TTL: 1s\r\nNats-Rollup: sub\r\n\r\n"
        );
        assert_eq!(s.next_expiry(), Some(1 + 2 * SEC));
        assert_eq!(s.enforce_time(1 + 2 * SEC), 1, "the marker expires");
        let st = s.state(false);
        assert_eq!((st.messages, st.last_seq), (1, 4), "no marker for a marker");
    }

    /// With markers, a TTL below the marker TTL is raised to it (nats-server 2.15.1
    /// stores `Nats-TTL: 5` for a `1s` TTL on a stream with 5 s markers).
    #[test]
    fn a_ttl_below_the_marker_ttl_is_raised_to_it() {
        let s = Stream::new(
            spec(Limits {
                allow_msg_ttl: true,
                subject_delete_marker_ttl_nanos: Some(5_000_000_000),
                ..Default::default()
            }),
            0,
        );
        assert_eq!(s.effective_ttl(Some(1)), Some(5));
        assert_eq!(s.effective_ttl(Some(10)), Some(10));
        assert_eq!(s.effective_ttl(Some(-1)), Some(-1));
        assert_eq!(s.effective_ttl(None), None);
        let one_per_subject = Stream::new(
            spec(Limits {
                allow_msg_ttl: true,
                subject_delete_marker_ttl_nanos: Some(5_000_000_000),
                max_msgs_per_subject: Some(1),
                ..Default::default()
            }),
            0,
        );
        assert_eq!(one_per_subject.effective_ttl(Some(1)), Some(1));
    }

    #[test]
    fn max_msgs_discard_old_trims_from_the_front() {
        let mut s = Stream::new(
            spec(Limits {
                max_msgs: Some(2),
                ..Default::default()
            }),
            0,
        );
        let r = commit(&mut s, vec![rec("s.a"), rec("s.b"), rec("s.c")]);
        assert_eq!(seqs(&r), ["1", "2", "3"]);
        let st = s.state(true);
        assert_eq!((st.messages, st.first_seq, st.last_seq), (2, 2, 3));
    }

    #[test]
    fn rollup_subject_keeps_only_the_rollup() {
        let mut s = Stream::new(
            spec(Limits {
                allow_rollup: true,
                ..Default::default()
            }),
            0,
        );
        let mut roll = rec("s.a");
        roll.rollup = Rollup::Subject;
        let r = commit(&mut s, vec![rec("s.a"), rec("s.b"), rec("s.a"), roll]);
        assert_eq!(seqs(&r), ["1", "2", "3", "4"]);
        assert_eq!(s.last_by_subject(&[]).len(), 2);
        let st = s.state(true);
        assert_eq!(st.messages, 2);
        assert_eq!(st.deleted, vec![3]);
        assert_eq!(st.first_seq, 2);
    }

    /// A store as the engine writes it: index keys and the state key, each with the
    /// revision of its last write.
    #[derive(Default)]
    struct Mem {
        rev: i64,
        keys: BTreeMap<u64, (i64, Vec<u8>)>,
        state: (i64, StateRecord),
    }

    /// Writes `s`'s changes as the engine's `take_ops` does; returns the ops count.
    fn write(s: &mut Stream, store: &mut Mem) -> usize {
        store.rev += 1;
        let (puts, deletes) = s.take_entry_changes();
        let mut n = puts.len() + deletes.len();
        if std::mem::take(&mut s.state_dirty) && puts.is_empty() {
            store.state = (store.rev, s.state.clone());
            n += 1;
        }
        for (k, v) in puts {
            store.keys.insert(k, (store.rev, v));
        }
        for k in deletes {
            store.keys.remove(&k);
        }
        n
    }

    fn stored_keys(store: &Mem) -> Vec<u64> {
        store.keys.keys().copied().collect()
    }

    /// Loads a stream back as the engine does: every entry of every key; the newest
    /// state of the state key and the index keys.
    fn reload(store: &Mem) -> Stream {
        use prost::Message;
        let mut entries = Vec::new();
        let (mut rev, mut state) = store.state.clone();
        for (k, (r, v)) in &store.keys {
            let mut head = EntryRecord::decode(v.as_slice()).unwrap();
            let st = head.state.take().unwrap();
            if *r > rev {
                (rev, state) = (*r, st);
            }
            let more = std::mem::take(&mut head.more);
            entries.extend(std::iter::once(head).chain(more).map(|e| (*k, e)));
        }
        entries.sort_by_key(|(_, e)| e.first_seq);
        Stream::load(spec(Limits::default()), 0, state, entries, 1_000)
    }

    #[test]
    fn chunks_of_one_round_share_one_store_key_and_reload_exactly() {
        let mut s = Stream::new(spec(Limits::default()), 0);
        let mut store = Mem::default();
        write(&mut s, &mut store);
        // Three batches in one writer round: one key.
        for obj in ["o1", "o2", "o3"] {
            let chunk = Chunk {
                stream: "S".into(),
                chunk_index: 0,
                byte_size: 100,
                records: vec![rec("s.a"), rec("s.b")],
            };
            s.commit_chunk(&chunk, obj, 1_000);
        }
        assert_eq!(write(&mut s, &mut store), 1);
        assert_eq!(stored_keys(&store), [1]);
        // The next round starts a new key.
        commit(&mut s, vec![rec("s.c")]);
        assert_eq!(write(&mut s, &mut store), 1);
        assert_eq!(stored_keys(&store), [1, 7]);

        let back = reload(&store);
        assert_eq!(back.state(true), s.state(true));
        assert_eq!(back.read_index(1, 0, 100), s.read_index(1, 0, 100));

        // Emptying the first chunk rewrites its key without it; emptying the key's
        // every chunk deletes it.
        assert!(s.remove_seq(1) && s.remove_seq(2));
        assert_eq!(write(&mut s, &mut store), 1);
        let back = reload(&store);
        assert_eq!(back.state(true), s.state(true));
        assert_eq!(back.state(true).first_seq, 3);
        assert_eq!(back.read_index(1, 0, 100), s.read_index(1, 0, 100));
        for seq in 3..=6 {
            assert!(s.remove_seq(seq));
        }
        // Only a delete: the state key carries the state.
        assert_eq!(write(&mut s, &mut store), 2);
        assert_eq!(stored_keys(&store), [7]);
        let back = reload(&store);
        assert_eq!(back.state(true), s.state(true));
        assert_eq!(
            (back.state(true).first_seq, back.state(true).last_seq),
            (7, 7)
        );
    }
}
