//! A group's metadata in memory: loading it from the store, applying a CommitBatch
//! to its streams, and forming the store ops for what changed (the round log and the
//! folds into index keys).

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use infinistream_proto::domain::{CommitBatch, StreamSpec, stream_account};
use infinistream_proto::v1;
use prost::Message;

use super::{Group, apply_delta, error_info, info_of};
use crate::errors::CpError;
use crate::keys;
use crate::model::{
    BatchRecord, ConsumerRecord, EntryRecord, LogRecord, LogStream, ReleasedRecord, StateRecord,
    StreamRecord, decode,
};
use crate::store::{MetaStore, Op, StoreError};
use crate::stream::{ObjectTable, Stream};
use infinistream_protocol::jsapi::ApiError;

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
    pub(super) async fn load(
        store: &dyn MetaStore,
        name: &str,
        now: i64,
    ) -> Result<Group, CpError> {
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
                    if !e.object_key.is_empty() {
                        *g.object_refs.entry(e.object_key.clone()).or_default() += 1;
                    }
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
                    if !e.object_key.is_empty() {
                        *g.object_refs.entry(e.object_key.clone()).or_default() += 1;
                    }
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
            g.subjects.add(stream, &s.spec.limits.subjects);
            g.expiry.update(stream, Some(&s));
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
        let acct_prefix = keys::kind_prefix(name, "acct");
        for kv in store.scan_prefix(&acct_prefix).await? {
            let account = keys::suffix(&kv.key, &acct_prefix)
                .and_then(keys::limits_account)
                .ok_or_else(|| corrupt(&kv.key, "not an account limits key"))?;
            g.account_limits
                .insert(account.to_owned(), decode(&kv.key, &kv.value)?);
        }
        Ok(g)
    }

    pub(super) fn stream_info(&self, name: &str, details: bool) -> v1::StreamInfoResponse {
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

    pub(super) fn commit(
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
        // The storage room left per account, shared by the batch's chunks of it.
        let mut rooms: HashMap<&str, Option<u64>> = HashMap::new();
        for chunk in &batch.chunks {
            let room = rooms
                .entry(stream_account(&chunk.stream))
                .or_insert_with(|| self.account_storage_room(&chunk.stream));
            let result = match self.streams.get_mut(&chunk.stream) {
                None => {
                    let e: v1::JsError = ApiError::stream_not_found().into();
                    v1::ChunkResult {
                        stream: chunk.stream.clone(),
                        chunk_index: chunk.chunk_index,
                        records: chunk
                            .records
                            .iter()
                            .map(|_| v1::RecordResult {
                                result: Some(v1::record_result::Result::Error(e.clone())),
                                ..Default::default()
                            })
                            .collect(),
                        error: Some(e),
                    }
                }
                Some(s) => {
                    let before = s.state.last_seq;
                    let records = s.commit_chunk_within(chunk, &batch.object_key, now, room);
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
    pub(super) fn take_ops(&mut self, now: i64, ops: &mut Vec<Op>) {
        let g = self.name.clone();
        self.log_round += 1;
        let round = self.log_round;
        for name in std::mem::take(&mut self.dropped) {
            self.expiry.update(&name, None);
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
        for name in &touched {
            self.expiry.update(name, self.streams.get(name));
        }
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
