//! Consumer operations on the engine: create / update / info / list / delete, claims
//! and acks, and the removals interest and work-queue retention make after them.
//!
//! Every operation takes the state lock, applies the pure logic of
//! [`crate::consumer`], and writes what changed — the consumer's record and, when
//! retention removed messages, the stream's index — in ONE fenced store transaction
//! before answering. So a Claim or Acknowledge that succeeded is durable.

use infinistream_proto::v1::{self, JsError, StreamEventKind};
use infinistream_protocol::jsapi::ApiError;

use super::{Durability, Engine, Group, consumer_error};
use crate::consumer;
use crate::errors::CpError;
use crate::keys;
use crate::model::ConsumerRecord;
use crate::pin;
use crate::store::Op;
use crate::stream::Stream;

impl Group {
    /// The stream's consumers, except `skip`.
    fn consumers_of(&self, stream: &str, skip: &str) -> Vec<&ConsumerRecord> {
        self.consumers
            .range((stream.to_owned(), String::new())..)
            .take_while(|((s, _), _)| s == stream)
            .filter(|((_, n), _)| n != skip)
            .map(|(_, r)| r)
            .collect()
    }

    /// Removes what interest / work-queue retention allows in `[from, to]`; marks the
    /// stream touched when something went. Returns how many.
    pub(super) fn apply_ack_retention(&mut self, stream: &str, from: u64, to: u64) -> usize {
        let Some(s) = self.streams.get(stream) else {
            return 0;
        };
        if s.spec.limits.retention == v1::Retention::Limits {
            return 0;
        }
        let consumers = self.consumers_of(stream, "");
        let gone = consumer::removable(s, &consumers, from, to);
        if gone.is_empty() {
            return 0;
        }
        if let Some(s) = self.streams.get_mut(stream) {
            for seq in &gone {
                s.remove_seq(*seq);
            }
        }
        self.touched.insert(stream.to_owned());
        gone.len()
    }

    /// After a commit appended `(before, last]` to an interest stream: drops what no
    /// consumer is interested in (nats-server still acks the publish).
    pub(super) fn interest_after_commit(&mut self, stream: &str, before: u64) {
        let Some(s) = self.streams.get(stream) else {
            return;
        };
        if s.spec.limits.retention != v1::Retention::Interest || s.state.last_seq <= before {
            return;
        }
        let last = s.state.last_seq;
        self.apply_ack_retention(stream, before + 1, last);
    }

    /// Ops writing `stream`/`name`'s record (or deleting it) and whatever else the
    /// group changed.
    fn consumer_ops(&mut self, stream: &str, name: &str, now: i64) -> Vec<Op> {
        let key = keys::consumer(&self.name, stream, name);
        let mut ops = vec![match self
            .consumers
            .get_mut(&(stream.to_owned(), name.to_owned()))
        {
            Some(rec) => Op::Put {
                key,
                value: rec.encode_stored(),
            },
            None => Op::Delete { key },
        }];
        self.take_ops(now, &mut ops);
        ops
    }

    fn consumer_info_of(&self, stream: &str, name: &str) -> v1::ConsumerInfoResponse {
        let Some(s) = self.streams.get(stream) else {
            return consumer_error(ApiError::stream_not_found().into());
        };
        match self.consumers.get(&(stream.to_owned(), name.to_owned())) {
            Some(rec) => v1::ConsumerInfoResponse {
                error: None,
                config: rec.config.clone(),
                state: Some(consumer::state(rec, s)),
                created_unix_nanos: rec.created_unix_nanos,
            },
            None => consumer_error(ApiError::consumer_not_found().into()),
        }
    }
}

/// Most index entries one claim answers with.
const CLAIM_ENTRIES: usize = 64;
/// Read-ahead of an unfiltered consumer: entries up to this many batches past the
/// claim, while their chunks add up to at most [`READ_AHEAD_BYTES`] (the first
/// [`READ_AHEAD_MIN_BATCHES`] batches regardless).
const READ_AHEAD_BATCHES: u64 = 8;
const READ_AHEAD_MIN_BATCHES: u64 = 2;
const READ_AHEAD_BYTES: u64 = 16 << 20;

/// The index entries holding `deliveries`, then read-ahead for the agent (see
/// `ClaimResponse.entries`): the entries of the next `2 × batch` sequences and, for a
/// consumer without a filter (every chunk ahead is its to read), further ones up to
/// `8 × batch` sequences or 16 MiB of chunks — a draining consumer keeps whole objects
/// loading ahead of it. Entries wholly past the claim serve only to load their chunks,
/// so they go without per-message positions; the others are cut to the claimed span
/// `[lo, hi]` (a claim of 500 in an entry of 4,000 messages sends 500 positions, not
/// 4,000 on every claim through that entry). Redeliveries far below the cursor may
/// fall outside the span kept: the agent reads those itself.
fn claim_entries(
    s: &Stream,
    deliveries: &[v1::Delivery],
    batch: u32,
    filtered: bool,
) -> Vec<v1::IndexEntry> {
    let (Some(lo), Some(hi)) = (
        deliveries.iter().map(|d| d.stream_seq).min(),
        deliveries.iter().map(|d| d.stream_seq).max(),
    ) else {
        return Vec::new();
    };
    let batch = u64::from(batch.max(1));
    let near = hi.saturating_add(READ_AHEAD_MIN_BATCHES * batch);
    let far = if filtered {
        near
    } else {
        hi.saturating_add(READ_AHEAD_BATCHES * batch)
    };
    let mut ahead_bytes = 0u64;
    let mut out = Vec::new();
    for mut e in s.read_index(lo, far, CLAIM_ENTRIES) {
        if e.first_seq > hi {
            if e.first_seq > near && ahead_bytes >= READ_AHEAD_BYTES {
                break;
            }
            ahead_bytes += e.chunk_byte_size;
            e.positions = Vec::new();
            e.deleted = Vec::new();
        } else if !e.segment {
            trim(&mut e, lo, hi);
        }
        out.push(e);
    }
    out
}

/// Cuts a batch entry to the sequences in `[lo, hi]` (positions and deletions with
/// it); left whole if its positions do not cover it one per sequence.
fn trim(e: &mut v1::IndexEntry, lo: u64, hi: u64) {
    let (from, to) = (e.first_seq.max(lo), e.last_seq.min(hi));
    if from > to || e.positions.len() as u64 != e.last_seq - e.first_seq + 1 {
        return;
    }
    let (Ok(start), Ok(end)) = (
        usize::try_from(from - e.first_seq),
        usize::try_from(to - e.first_seq + 1),
    ) else {
        return;
    };
    e.positions.truncate(end);
    e.positions.drain(..start);
    if !e.counter_values.is_empty() {
        e.counter_values.truncate(end);
        e.counter_values.drain(..start.min(e.counter_values.len()));
    }
    e.deleted.retain(|seq| (from..=to).contains(seq));
    e.first_seq = from;
    e.last_seq = to;
}

/// What CreateConsumer / UpdateConsumer may do (JetStream's `action`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CreateAction {
    Create,
    Update,
    CreateOrUpdate,
}

impl Engine {
    pub(crate) async fn create_consumer(
        &self,
        group: &str,
        config: v1::ConsumerConfig,
        action: CreateAction,
    ) -> Result<v1::ConsumerInfoResponse, CpError> {
        let mut st = self.state.lock().await;
        let now = self.now();
        let g = self.group_mut(&mut st, group).await?;
        let (stream, name) = (config.stream.clone(), config.name.clone());
        let Some(s) = g.streams.get(&stream) else {
            return Ok(consumer_error(ApiError::stream_not_found().into()));
        };
        let key = (stream.clone(), name.clone());
        let others = g.consumers_of(&stream, &name);
        if let Err(e) = consumer::check(&config, s, &others) {
            return Ok(consumer_error(e));
        }
        let updated = match g.consumers.get(&key) {
            Some(existing) if existing.config.as_ref() == Some(&config) => {
                return Ok(g.consumer_info_of(&stream, &name));
            }
            Some(_) if action == CreateAction::Create => {
                return Ok(consumer_error(ApiError::consumer_already_exists().into()));
            }
            Some(existing) => {
                let mut rec = existing.clone();
                if let Err(e) = consumer::update(&mut rec, config) {
                    return Ok(consumer_error(e));
                }
                rec
            }
            None if action == CreateAction::Update => {
                return Ok(consumer_error(ApiError::consumer_does_not_exist().into()));
            }
            None => {
                if let Some(e) = g.account_refuses_consumer(&stream) {
                    return Ok(consumer_error(e));
                }
                match consumer::new_record(config, s, now) {
                    Ok(rec) => rec,
                    Err(e) => return Ok(consumer_error(e)),
                }
            }
        };
        let first = s.state.first_seq;
        let upto = consumer::acked_upto(&[&updated]);
        g.consumers.insert(key, updated);
        // A new interest consumer that starts past messages nobody else wants, or
        // an update that changed the filter, may make messages removable.
        g.apply_ack_retention(&stream, first, upto);
        g.note_consumer(StreamEventKind::StreamEventConsumer, &stream, &name, 0);
        let ops = g.consumer_ops(&stream, &name, now);
        self.write_ops(&mut st, ops).await?;
        let g = self.group_mut(&mut st, group).await?;
        Ok(g.consumer_info_of(&stream, &name))
    }

    pub(crate) async fn consumer_info(
        &self,
        group: &str,
        stream: &str,
        name: &str,
    ) -> Result<v1::ConsumerInfoResponse, CpError> {
        let mut st = self.state.lock().await;
        let g = self.group_mut(&mut st, group).await?;
        Ok(g.consumer_info_of(stream, name))
    }

    pub(crate) async fn list_consumers(
        &self,
        group: &str,
        stream: &str,
    ) -> Result<v1::ListConsumersResponse, CpError> {
        let mut st = self.state.lock().await;
        let g = self.group_mut(&mut st, group).await?;
        if !g.streams.contains_key(stream) {
            return Ok(v1::ListConsumersResponse {
                error: Some(ApiError::stream_not_found().into()),
                consumers: Vec::new(),
            });
        }
        let consumers = g
            .consumers
            .keys()
            .filter(|(s, _)| s == stream)
            .map(|(s, n)| g.consumer_info_of(s, n))
            .collect();
        Ok(v1::ListConsumersResponse {
            error: None,
            consumers,
        })
    }

    /// Every consumer of every stream, by stream then name (one call for a scan).
    pub(crate) async fn list_every_consumer(
        &self,
        group: &str,
    ) -> Result<v1::ListConsumersResponse, CpError> {
        let mut st = self.state.lock().await;
        let g = self.group_mut(&mut st, group).await?;
        let consumers = g
            .consumers
            .keys()
            .map(|(s, n)| g.consumer_info_of(s, n))
            .collect();
        Ok(v1::ListConsumersResponse {
            error: None,
            consumers,
        })
    }

    pub(crate) async fn delete_consumer(
        &self,
        group: &str,
        stream: &str,
        name: &str,
    ) -> Result<Option<JsError>, CpError> {
        let mut st = self.state.lock().await;
        let now = self.now();
        let g = self.group_mut(&mut st, group).await?;
        let Some(s) = g.streams.get(stream) else {
            return Ok(Some(ApiError::stream_not_found().into()));
        };
        let (first, last) = (s.state.first_seq, s.state.last_seq);
        g.waiting.remove(&(stream.to_owned(), name.to_owned()));
        if g.consumers
            .remove(&(stream.to_owned(), name.to_owned()))
            .is_none()
        {
            return Ok(Some(ApiError::consumer_not_found().into()));
        }
        // Interest: what only this consumer still held goes now.
        g.apply_ack_retention(stream, first, last);
        g.note_consumer(StreamEventKind::StreamEventConsumerDeleted, stream, name, 0);
        let ops = g.consumer_ops(stream, name, now);
        self.write_ops(&mut st, ops).await?;
        Ok(None)
    }

    pub(crate) async fn claim(
        &self,
        group: &str,
        req: v1::ClaimRequest,
    ) -> Result<v1::ClaimResponse, CpError> {
        let mut st = self.state.lock().await;
        let now = self.now();
        let g = self.group_mut(&mut st, group).await?;
        let Some(s) = g.streams.get(&req.stream) else {
            return Ok(v1::ClaimResponse {
                error: Some(ApiError::stream_not_found().into()),
                ..Default::default()
            });
        };
        let first = s.state.first_seq;
        let Some(rec) = g
            .consumers
            .get_mut(&(req.stream.clone(), req.consumer.clone()))
        else {
            return Ok(v1::ClaimResponse {
                error: Some(ApiError::consumer_not_found().into()),
                ..Default::default()
            });
        };
        let before = rec.clone();
        // Plain acks the agent held back for this claim go first, in the same write:
        // they may free room under max_ack_pending for what this claim hands out.
        let was_full = consumer::at_max_ack_pending(rec);
        if !req.acked_stream_seqs.is_empty() {
            consumer::acknowledge(rec, s, v1::AckKind::Ack, &req.acked_stream_seqs, 0, now);
        }
        let freed = was_full && !consumer::at_max_ack_pending(rec);
        // A paused consumer hands out nothing (its acks above still count).
        let paused_until = consumer::paused_until(rec, now);
        // Priority groups: the pin and overflow rules gate the claim (`pin.rs`).
        let admission = pin::admit(rec, s, &req, req.batch as usize, now);
        // prioritized: the agent's report of its waiting requests, and whether a
        // better one waits on another agent (`prioritized`).
        let prioritized = pin::policy(rec) == v1::PriorityPolicy::PriorityPrioritized;
        let mut deferred = false;
        if prioritized {
            let reports = g.waiting.entry((req.stream.clone(), req.consumer.clone()));
            let reports = reports.or_default();
            reports.report(&req.agent_id, &req.waiting, now);
            deferred = admission.cap > 0
                && paused_until == 0
                && reports.defer(&req.agent_id, req.priority, now)
                && pin::has_work(rec, s, now);
        }
        let claimed = if paused_until > 0 || admission.cap == 0 || deferred {
            consumer::Claimed::default()
        } else {
            consumer::claim(rec, s, admission.cap, now)
        };
        // Agents whose claims were deferred claim again once a better request is served.
        let wake_deferred = prioritized
            && g.waiting
                .get_mut(&(req.stream.clone(), req.consumer.clone()))
                .is_some_and(|r| {
                    r.served(&req.agent_id, req.priority, claimed.deliveries.len());
                    !claimed.deliveries.is_empty() && r.take_deferred()
                });
        let pin = pin::settle(rec, admission, !claimed.deliveries.is_empty());
        let filtered = rec
            .config
            .as_ref()
            .is_some_and(|c| !c.filter_subjects.is_empty());
        let entries = claim_entries(s, &claimed.deliveries, req.batch, filtered);
        let num_pending = consumer::state(rec, s).num_pending;
        let next_deadline = consumer::next_deadline(rec);
        let changed = *rec != before;
        let upto = rec.delivered_stream_seq;
        if changed {
            // ack none: delivered is acked; max_deliver drops count as acked too; and
            // the acks above (all at or below the cursor).
            g.apply_ack_retention(&req.stream, first, upto);
            if freed || wake_deferred {
                // As after an Acknowledge: agents waiting at max_ack_pending (or behind
                // a better priority elsewhere) look again.
                g.note_consumer(
                    StreamEventKind::StreamEventConsumer,
                    &req.stream,
                    &req.consumer,
                    0,
                );
            }
            // Answered before it is synced (the embedded store syncs it a moment
            // later; etcd is synced anyway): a claim a power cut loses only hands its
            // messages out again, their delivery count not raised, and the plain acks
            // riding on it asked for no confirmation.
            let ops = g.consumer_ops(&req.stream, &req.consumer, now);
            self.write_ops_with(&mut st, ops, Durability::Deferred)
                .await?;
        }
        Ok(v1::ClaimResponse {
            error: None,
            deliveries: claimed.deliveries,
            num_pending,
            next_deadline_unix_nanos: next_deadline,
            max_delivered: claimed.max_delivered,
            entries,
            paused_until_unix_nanos: paused_until,
            pin,
            deferred,
        })
    }

    /// `CONSUMER.UNPIN`: drops the consumer's pin (the group must be one of its
    /// groups); agents with pulls on standby are woken to claim.
    pub(crate) async fn unpin(
        &self,
        group: &str,
        req: v1::UnpinRequest,
    ) -> Result<Option<JsError>, CpError> {
        let mut st = self.state.lock().await;
        let now = self.now();
        let g = self.group_mut(&mut st, group).await?;
        if !g.streams.contains_key(&req.stream) {
            return Ok(Some(ApiError::stream_not_found().into()));
        }
        let Some(rec) = g
            .consumers
            .get_mut(&(req.stream.clone(), req.consumer.clone()))
        else {
            return Ok(Some(ApiError::consumer_not_found().into()));
        };
        if !rec
            .config
            .as_ref()
            .is_some_and(|c| c.priority_groups.contains(&req.group))
        {
            return Ok(Some(ApiError::consumer_invalid_priority_group().into()));
        }
        if rec.pin_id.is_empty() {
            return Ok(None);
        }
        pin::unpin(rec);
        g.note_consumer(
            StreamEventKind::StreamEventConsumer,
            &req.stream,
            &req.consumer,
            0,
        );
        let ops = g.consumer_ops(&req.stream, &req.consumer, now);
        self.write_ops(&mut st, ops).await?;
        Ok(None)
    }

    pub(crate) async fn acknowledge(
        &self,
        group: &str,
        req: v1::AcknowledgeRequest,
    ) -> Result<v1::AcknowledgeResponse, CpError> {
        let kind = v1::AckKind::try_from(req.kind).map_err(|_| {
            CpError::Invalid(infinistream_proto::InvalidArgument {
                field: "kind",
                reason: format!("unknown value {}", req.kind),
            })
        })?;
        let refused = |e: JsError| v1::AcknowledgeResponse {
            error: Some(e),
            ..Default::default()
        };
        let mut st = self.state.lock().await;
        let now = self.now();
        let g = self.group_mut(&mut st, group).await?;
        let Some(s) = g.streams.get(&req.stream) else {
            return Ok(refused(ApiError::stream_not_found().into()));
        };
        let first = s.state.first_seq;
        let Some(rec) = g
            .consumers
            .get_mut(&(req.stream.clone(), req.consumer.clone()))
        else {
            return Ok(refused(ApiError::consumer_not_found().into()));
        };
        let was_full = consumer::at_max_ack_pending(rec);
        let stale = consumer::acknowledge_fenced(
            rec,
            s,
            kind,
            &req.stream_seqs,
            &req.delivery_counts,
            req.nak_delay_nanos,
            now,
        );
        if !stale.is_empty() && stale.len() == req.stream_seqs.len() {
            // Every one answers an older delivery: nothing changes, nothing to write.
            return Ok(v1::AcknowledgeResponse {
                error: None,
                stale_stream_seqs: stale,
            });
        }
        let upto = rec.delivered_stream_seq;
        let ready = match kind {
            v1::AckKind::Nak => Some(now.saturating_add(req.nak_delay_nanos.max(0))),
            v1::AckKind::Release => Some(now),
            v1::AckKind::Ack | v1::AckKind::Term if was_full => Some(0),
            _ => None,
        };
        if let Some(ready) = ready {
            g.note_consumer(
                StreamEventKind::StreamEventConsumer,
                &req.stream,
                &req.consumer,
                ready,
            );
        }
        if matches!(kind, v1::AckKind::Ack | v1::AckKind::Term) {
            g.apply_ack_retention(&req.stream, first, upto);
        }
        // Durable before the answer: a confirmed ack survives kill -9.
        let ops = g.consumer_ops(&req.stream, &req.consumer, now);
        self.write_ops(&mut st, ops).await?;
        Ok(v1::AcknowledgeResponse {
            error: None,
            stale_stream_seqs: stale,
        })
    }
}

impl Engine {
    /// `CONSUMER.RESET` ([`consumer::reset`]): durable before the answer, and the
    /// consumer's agents are told (a consumer event) so parked requests claim again.
    pub(crate) async fn reset_consumer(
        &self,
        group: &str,
        req: v1::ResetConsumerRequest,
    ) -> Result<v1::ResetConsumerResponse, CpError> {
        let refused = |e: JsError| v1::ResetConsumerResponse {
            error: Some(e),
            ..Default::default()
        };
        let mut st = self.state.lock().await;
        let now = self.now();
        let g = self.group_mut(&mut st, group).await?;
        let Some(s) = g.streams.get(&req.stream) else {
            return Ok(refused(ApiError::stream_not_found().into()));
        };
        let (first, interest) = (
            s.state.first_seq,
            s.spec.limits.retention == v1::Retention::Interest,
        );
        let Some(rec) = g.consumers.get_mut(&(req.stream.clone(), req.name.clone())) else {
            return Ok(refused(ApiError::consumer_not_found().into()));
        };
        let reset_seq = match consumer::reset(rec, s, req.seq) {
            Ok(seq) => seq,
            Err(e) => return Ok(refused(e)),
        };
        // nats-server: on an interest stream what the reset skipped over counts as
        // acked (a work-queue stream keeps it until the consumer's next ack).
        if interest {
            g.apply_ack_retention(&req.stream, first, reset_seq - 1);
        }
        g.note_consumer(
            StreamEventKind::StreamEventConsumer,
            &req.stream,
            &req.name,
            0,
        );
        let ops = g.consumer_ops(&req.stream, &req.name, now);
        self.write_ops(&mut st, ops).await?;
        let g = self.group_mut(&mut st, group).await?;
        Ok(v1::ResetConsumerResponse {
            error: None,
            info: Some(g.consumer_info_of(&req.stream, &req.name)),
            reset_seq,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claim_entries_are_cut_to_the_claimed_span() {
        let mut e = v1::IndexEntry {
            object_key: "o".into(),
            first_seq: 10,
            last_seq: 19,
            positions: (0..10).map(|i| i * 3).collect(),
            deleted: vec![11, 15, 18],
            ..Default::default()
        };
        trim(&mut e, 14, 16);
        assert_eq!((e.first_seq, e.last_seq), (14, 16));
        assert_eq!(e.positions, [12, 15, 18]);
        assert_eq!(e.deleted, [15]);
        // A span past the entry, or positions that do not match it: left as is.
        let mut whole = v1::IndexEntry {
            first_seq: 10,
            last_seq: 19,
            positions: vec![0, 1],
            ..Default::default()
        };
        trim(&mut whole, 12, 13);
        assert_eq!((whole.first_seq, whole.positions.len()), (10, 2));
        let mut e = v1::IndexEntry {
            first_seq: 10,
            last_seq: 11,
            positions: vec![0, 1],
            ..Default::default()
        };
        trim(&mut e, 20, 30);
        assert_eq!((e.first_seq, e.last_seq), (10, 11));
    }
}
