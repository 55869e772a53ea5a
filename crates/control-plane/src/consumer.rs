//! Consumer delivery state: claims with deadlines, acks, redelivery, and the
//! retention rules that follow from acks (interest, work queue).
//!
//! Consumer state lives in the control plane so any agent can serve any consumer and
//! a killed agent's in-flight messages come back. An agent *claims* deliveries: each
//! claimed message gets a deadline (now + ack_wait, or the backoff step); until it
//! passes, or the message is nak'ed, no other claim hands it out, so two agents
//! serving one durable never deliver the same message at the same time. Pure logic
//! over a [`ConsumerRecord`] and the stream, with time passed in.

use infinistream_proto::v1::{self, JsError};
use infinistream_protocol::jsapi::ApiError;
use infinistream_protocol::subject;

use crate::model::{ConsumerRecord, PendingRec};
use crate::stream::Stream;

/// Default ack_wait (nats-server's).
pub const DEFAULT_ACK_WAIT_NANOS: i64 = 30_000_000_000;

fn cfg(rec: &ConsumerRecord) -> v1::ConsumerConfig {
    rec.config.clone().unwrap_or_default()
}

fn ack_none(c: &v1::ConsumerConfig) -> bool {
    c.ack_policy == v1::AckPolicy::AckNone as i32
}

fn wait_for(c: &v1::ConsumerConfig, deliveries: u64) -> i64 {
    if !c.backoff_nanos.is_empty() {
        let i = usize::try_from(deliveries.saturating_sub(1)).unwrap_or(usize::MAX);
        return c.backoff_nanos[i.min(c.backoff_nanos.len() - 1)];
    }
    if c.ack_wait_nanos > 0 {
        c.ack_wait_nanos
    } else {
        DEFAULT_ACK_WAIT_NANOS
    }
}

fn filtered(filters: &[String], subj: &str) -> bool {
    filters.is_empty() || filters.iter().any(|f| subject::matches(f, subj))
}

/// The subject of live `seq`.
fn subject_at(s: &Stream, seq: u64) -> Option<&str> {
    let (first, e) = s.entries.range(..=seq).next_back()?;
    let r = e.rec.records.get(usize::try_from(seq - first).ok()?)?;
    if r.deleted {
        return None;
    }
    e.rec.subjects.get(r.subject as usize).map(String::as_str)
}

/// A new consumer's delivery state for `c` on `s`.
pub fn new_record(c: v1::ConsumerConfig, s: &Stream, now: i64) -> Result<ConsumerRecord, JsError> {
    let st = &s.state;
    let first = st.first_seq.max(1);
    let mut rec = ConsumerRecord {
        created_unix_nanos: now,
        ..Default::default()
    };
    let cursor = match v1::DeliverPolicy::try_from(c.deliver_policy) {
        Ok(v1::DeliverPolicy::DeliverAll) => first - 1,
        Ok(v1::DeliverPolicy::DeliverLast) => st.last_seq.saturating_sub(1),
        Ok(v1::DeliverPolicy::DeliverNew) => st.last_seq,
        Ok(v1::DeliverPolicy::DeliverByStartSequence) => c.opt_start_seq.max(1) - 1,
        Ok(v1::DeliverPolicy::DeliverByStartTime) => {
            match s.seq_for_time(c.opt_start_time_unix_nanos) {
                0 => st.last_seq,
                seq => seq - 1,
            }
        }
        Ok(v1::DeliverPolicy::DeliverLastPerSubject) => {
            if c.filter_subjects.is_empty() {
                return Err(ApiError::consumer_invalid_policy(
                    "consumer delivery policy is deliver last per subject, but optional filter subject is not set",
                )
                .into());
            }
            // The last message of every matching subject, then everything new.
            let mut starts: Vec<u64> = s
                .subjects
                .iter()
                .filter(|(subj, _)| filtered(&c.filter_subjects, subj))
                .filter_map(|(_, seqs)| seqs.back().copied())
                .collect();
            starts.sort_unstable();
            rec.start_upto = st.last_seq;
            let cursor = starts.first().map_or(st.last_seq, |f| f - 1);
            rec.start_seqs = starts;
            cursor
        }
        Err(_) => {
            return Err(ApiError::consumer_invalid_policy(format_args!(
                "unknown deliver policy {}",
                c.deliver_policy
            ))
            .into());
        }
    };
    rec.delivered_stream_seq = cursor;
    rec.ack_floor_stream_seq = cursor;
    rec.config = Some(c);
    Ok(rec)
}

/// Checks a create or update against nats-server's rules for the stream's retention
/// and the stream's other consumers (`others`: name → record, this one excluded).
pub fn check(
    c: &v1::ConsumerConfig,
    s: &Stream,
    others: &[&ConsumerRecord],
) -> Result<(), JsError> {
    if s.spec.limits.retention != v1::Retention::WorkQueue {
        return Ok(());
    }
    match v1::AckPolicy::try_from(c.ack_policy) {
        Ok(v1::AckPolicy::AckExplicit) => {}
        Ok(v1::AckPolicy::AckNone) => {
            return Err(ApiError::consumer_pull_requires_ack().into());
        }
        _ => return Err(ApiError::consumer_wq_requires_explicit_ack().into()),
    }
    if c.deliver_policy != v1::DeliverPolicy::DeliverAll as i32 {
        return Err(ApiError::consumer_wq_consumer_not_deliver_all().into());
    }
    for other in others {
        let of = other
            .config
            .as_ref()
            .map(|o| o.filter_subjects.as_slice())
            .unwrap_or_default();
        if c.filter_subjects.is_empty() || of.is_empty() {
            if c.filter_subjects.is_empty() {
                return Err(ApiError::consumer_wq_multiple_unfiltered().into());
            }
            return Err(ApiError::consumer_wq_consumer_not_unique().into());
        }
        if c.filter_subjects
            .iter()
            .any(|a| of.iter().any(|b| subject::subjects_collide(a, b)))
        {
            return Err(ApiError::consumer_wq_consumer_not_unique().into());
        }
    }
    Ok(())
}

/// Applies an update to an existing consumer: non-editable fields are refused with
/// nats-server's error, the rest replace the config; the delivery state is kept.
pub fn update(rec: &mut ConsumerRecord, c: v1::ConsumerConfig) -> Result<(), JsError> {
    let old = cfg(rec);
    let refuse = |what: &str| -> JsError {
        ApiError::consumer_create(format_args!("{what} can not be updated")).into()
    };
    if old.deliver_policy != c.deliver_policy {
        return Err(refuse("deliver policy"));
    }
    if old.ack_policy != c.ack_policy {
        return Err(refuse("ack policy"));
    }
    if old.opt_start_seq != c.opt_start_seq {
        return Err(refuse("start sequence"));
    }
    if old.opt_start_time_unix_nanos != c.opt_start_time_unix_nanos {
        return Err(refuse("start time"));
    }
    rec.config = Some(c);
    Ok(())
}

/// The next message to deliver for the first time after the cursor.
fn next_new(rec: &mut ConsumerRecord, s: &Stream, filters: &[String]) -> Option<u64> {
    if rec.delivered_stream_seq < rec.start_upto {
        let cursor = rec.delivered_stream_seq;
        let gone = rec
            .start_seqs
            .iter()
            .take_while(|seq| **seq <= cursor || !s.is_live(**seq))
            .count();
        rec.start_seqs.drain(..gone);
        match rec.start_seqs.first() {
            Some(seq) => return Some(*seq),
            None => rec.delivered_stream_seq = rec.start_upto,
        }
    }
    s.next_live(rec.delivered_stream_seq + 1, filters)
}

/// What a claim handed out.
#[derive(Debug, Default)]
pub struct Claimed {
    pub deliveries: Vec<v1::Delivery>,
    /// Dropped at max_deliver in this claim.
    pub max_delivered: Vec<v1::Delivery>,
}

/// Claims up to `batch` deliveries: expired ones first, then new messages.
/// When the consumer is paused at `now`, the end of its pause (JetStream's
/// `pause_until`); 0 when it is not paused.
pub fn paused_until(rec: &ConsumerRecord, now: i64) -> i64 {
    let until = rec.config.as_ref().map_or(0, |c| c.pause_until_unix_nanos);
    if until > now { until } else { 0 }
}

pub fn claim(rec: &mut ConsumerRecord, s: &Stream, batch: usize, now: i64) -> Claimed {
    let c = cfg(rec);
    let mut out = Claimed::default();
    let max_deliver = u64::try_from(c.max_deliver).ok().filter(|m| *m > 0);
    // Drop pending messages that no longer exist or ran out of deliveries.
    let mut kept = Vec::with_capacity(rec.pending.len());
    for p in std::mem::take(&mut rec.pending) {
        if !s.is_live(p.stream_seq) {
            continue;
        }
        if p.deadline <= now && max_deliver.is_some_and(|m| p.deliveries >= m) {
            out.max_delivered.push(v1::Delivery {
                stream_seq: p.stream_seq,
                consumer_seq: p.consumer_seq,
                delivery_count: p.deliveries,
                deadline_unix_nanos: p.deadline,
            });
            continue;
        }
        kept.push(p);
    }
    rec.pending = kept;
    for p in rec.pending.iter_mut() {
        if out.deliveries.len() >= batch {
            break;
        }
        if p.deadline > now {
            continue;
        }
        p.deliveries += 1;
        rec.delivered_consumer_seq += 1;
        p.consumer_seq = rec.delivered_consumer_seq;
        p.deadline = now.saturating_add(wait_for(&c, p.deliveries));
        // A released first delivery (deliveries back at 0) is no redelivery.
        if p.deliveries > 1 {
            rec.num_redelivered += 1;
        }
        out.deliveries.push(v1::Delivery {
            stream_seq: p.stream_seq,
            consumer_seq: p.consumer_seq,
            delivery_count: p.deliveries,
            deadline_unix_nanos: p.deadline,
        });
    }
    let max_pending = usize::try_from(c.max_ack_pending)
        .ok()
        .filter(|m| *m > 0)
        .unwrap_or(usize::MAX);
    while out.deliveries.len() < batch && (ack_none(&c) || rec.pending.len() < max_pending) {
        let Some(seq) = next_new(rec, s, &c.filter_subjects) else {
            break;
        };
        rec.delivered_stream_seq = seq;
        rec.delivered_consumer_seq += 1;
        let deadline = now.saturating_add(wait_for(&c, 1));
        if !ack_none(&c) {
            rec.pending.push(PendingRec {
                stream_seq: seq,
                consumer_seq: rec.delivered_consumer_seq,
                deliveries: 1,
                deadline,
            });
        }
        out.deliveries.push(v1::Delivery {
            stream_seq: seq,
            consumer_seq: rec.delivered_consumer_seq,
            delivery_count: 1,
            deadline_unix_nanos: deadline,
        });
    }
    rec.pending.sort_by_key(|p| p.stream_seq);
    if ack_none(&c) {
        rec.ack_floor_stream_seq = rec.delivered_stream_seq;
        rec.ack_floor_consumer_seq = rec.delivered_consumer_seq;
    } else {
        update_floor(rec);
    }
    if !out.deliveries.is_empty() {
        rec.last_active_unix_nanos = now;
    }
    out
}

fn update_floor(rec: &mut ConsumerRecord) {
    match rec.pending.first() {
        None => {
            rec.ack_floor_stream_seq = rec.delivered_stream_seq;
            rec.ack_floor_consumer_seq = rec.delivered_consumer_seq;
        }
        Some(p) => {
            rec.ack_floor_stream_seq = rec.ack_floor_stream_seq.max(p.stream_seq.saturating_sub(1));
            let min_cseq = rec
                .pending
                .iter()
                .map(|p| p.consumer_seq)
                .min()
                .unwrap_or(0);
            rec.ack_floor_consumer_seq = rec.ack_floor_consumer_seq.max(min_cseq.saturating_sub(1));
        }
    }
}

/// Whether the consumer is at its max_ack_pending (claims return nothing new).
pub fn at_max_ack_pending(rec: &ConsumerRecord) -> bool {
    let c = cfg(rec);
    !ack_none(&c)
        && u64::try_from(c.max_ack_pending).is_ok_and(|m| m > 0 && rec.pending.len() as u64 >= m)
}

/// The earliest deadline among outstanding deliveries (0 = none).
pub fn next_deadline(rec: &ConsumerRecord) -> i64 {
    rec.pending.iter().map(|p| p.deadline).min().unwrap_or(0)
}

/// Applies an ack / nak / term / in-progress / release to delivered sequences.
pub fn acknowledge(
    rec: &mut ConsumerRecord,
    s: &Stream,
    kind: v1::AckKind,
    seqs: &[u64],
    nak_delay: i64,
    now: i64,
) {
    let c = cfg(rec);
    // A round of acks names hundreds of sequences: look them up, not scan for each.
    let mut sorted = seqs.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let named = |seq: &u64| sorted.binary_search(seq).is_ok();
    match kind {
        v1::AckKind::Ack | v1::AckKind::Term => {
            if c.ack_policy == v1::AckPolicy::AckAll as i32 && kind == v1::AckKind::Ack {
                let upto = sorted.last().copied().unwrap_or(0);
                rec.pending.retain(|p| p.stream_seq > upto);
            } else {
                rec.pending.retain(|p| !named(&p.stream_seq));
            }
        }
        v1::AckKind::Nak => {
            for p in rec.pending.iter_mut().filter(|p| named(&p.stream_seq)) {
                p.deadline = now.saturating_add(nak_delay.max(0));
            }
        }
        v1::AckKind::InProgress => {
            for p in rec.pending.iter_mut().filter(|p| named(&p.stream_seq)) {
                p.deadline = now.saturating_add(wait_for(&c, p.deliveries));
            }
        }
        v1::AckKind::Release => release(rec, s, seqs, now),
    }
    update_floor(rec);
}

/// [`acknowledge`] fenced by delivery: `counts[i]` is the delivery count `seqs[i]`
/// answers (0, or missing, is unknown: applied as before). A NAK, RELEASE or
/// IN_PROGRESS naming a delivery other than the pending one is left out and returned:
/// it answers a claim that expired and was claimed again (a release from an agent
/// paused past the deadline), and a release applied to the newer claim would lower
/// its count and, at the top consumer sequence, move the stream cursor back under a
/// message another agent delivered: delivered once more, possibly after its ack. An
/// ACK or TERM is applied whatever delivery it names, as nats-server takes a late ack.
pub fn acknowledge_fenced(
    rec: &mut ConsumerRecord,
    s: &Stream,
    kind: v1::AckKind,
    seqs: &[u64],
    counts: &[u64],
    nak_delay: i64,
    now: i64,
) -> Vec<u64> {
    let fenced = matches!(
        kind,
        v1::AckKind::Nak | v1::AckKind::Release | v1::AckKind::InProgress
    );
    if !fenced || counts.iter().all(|c| *c == 0) {
        acknowledge(rec, s, kind, seqs, nak_delay, now);
        return Vec::new();
    }
    // Pending is kept in stream order (see `claim`).
    let pending_count = |seq: u64| {
        rec.pending
            .binary_search_by_key(&seq, |p| p.stream_seq)
            .ok()
            .map(|i| rec.pending[i].deliveries)
    };
    let (mut current, mut stale) = (Vec::with_capacity(seqs.len()), Vec::new());
    for (i, seq) in seqs.iter().enumerate() {
        let count = counts.get(i).copied().unwrap_or(0);
        match pending_count(*seq) {
            Some(pending) if count != 0 && pending != count => stale.push(*seq),
            _ => current.push(*seq),
        }
    }
    acknowledge(rec, s, kind, &current, nak_delay, now);
    stale
}

/// Gives back claimed deliveries that were never sent, counting nothing (what
/// nats-server does when a pull request cannot take a message). The released
/// deliveries holding the top consumer sequences give those sequences back; among
/// them, first deliveries the stream cursor can step back over (no other matching
/// message between them and the cursor) leave pending and are new messages again.
/// Every other released delivery stays pending, due now, with its delivery count
/// lowered back, so its next claim does not count as a redelivery.
fn release(rec: &mut ConsumerRecord, s: &Stream, seqs: &[u64], now: i64) {
    let c = cfg(rec);
    let mut released: Vec<(u64, u64, u64)> = rec
        .pending
        .iter()
        .filter(|p| seqs.contains(&p.stream_seq))
        .map(|p| (p.consumer_seq, p.stream_seq, p.deliveries))
        .collect();
    released.sort_unstable_by(|a, b| b.cmp(a));
    let mut cursor = rec.delivered_stream_seq;
    let mut cursor_movable = true;
    let mut undone = Vec::new();
    for (cseq, sseq, deliveries) in released {
        if cseq == 0 || cseq != rec.delivered_consumer_seq {
            break;
        }
        rec.delivered_consumer_seq -= 1;
        if deliveries > 1 {
            continue;
        }
        let nothing_between = sseq <= cursor
            && s.next_live(sseq + 1, &c.filter_subjects)
                .is_none_or(|next| next > cursor);
        if cursor_movable && nothing_between {
            cursor = sseq - 1;
            undone.push(sseq);
        } else {
            cursor_movable = false;
        }
    }
    rec.pending.retain(|p| !undone.contains(&p.stream_seq));
    for p in rec
        .pending
        .iter_mut()
        .filter(|p| seqs.contains(&p.stream_seq))
    {
        p.deliveries = p.deliveries.saturating_sub(1);
        p.deadline = now;
    }
    if !undone.is_empty() {
        rec.delivered_stream_seq = cursor;
        rec.start_seqs
            .extend(undone.iter().filter(|seq| **seq <= rec.start_upto));
        rec.start_seqs.sort_unstable();
        rec.start_seqs.dedup();
        rec.ack_floor_stream_seq = rec.ack_floor_stream_seq.min(cursor);
        rec.ack_floor_consumer_seq = rec.ack_floor_consumer_seq.min(rec.delivered_consumer_seq);
    }
}

/// Resets the delivery state for JetStream's `CONSUMER.RESET` (ADR-60), as
/// nats-server 2.14 does: `seq` 0 resets to one above the ack floor; another `seq` is
/// allowed for deliver policies all, by_start_sequence (not below `opt_start_seq`) and
/// by_start_time (not below the start time's sequence). Every pending delivery is
/// dropped (an ack of one changes nothing until its message is delivered again, at
/// or above the reset point), and delivered and ack floor both become
/// (consumer 0, stream `reset_seq - 1`): consumer sequences restart at 1. Returns
/// `reset_seq`, the stream sequence the next delivery is at or above.
pub fn reset(rec: &mut ConsumerRecord, s: &Stream, seq: u64) -> Result<u64, JsError> {
    let c = cfg(rec);
    let reset_seq = if seq == 0 {
        rec.ack_floor_stream_seq.saturating_add(1)
    } else {
        match v1::DeliverPolicy::try_from(c.deliver_policy) {
            Ok(v1::DeliverPolicy::DeliverAll) => {}
            Ok(v1::DeliverPolicy::DeliverByStartSequence) if seq < c.opt_start_seq => {
                return Err(ApiError::consumer_invalid_reset("below start seq").into());
            }
            Ok(v1::DeliverPolicy::DeliverByStartSequence) => {}
            Ok(v1::DeliverPolicy::DeliverByStartTime) => {
                let start = match s.seq_for_time(c.opt_start_time_unix_nanos) {
                    0 => s.state.last_seq.saturating_add(1),
                    first => first,
                };
                if seq < start {
                    return Err(ApiError::consumer_invalid_reset("below start time").into());
                }
            }
            _ => return Err(ApiError::consumer_invalid_reset("not allowed").into()),
        }
        seq
    };
    let floor = reset_seq - 1;
    rec.pending.clear();
    rec.num_redelivered = 0;
    rec.start_seqs.clear();
    rec.start_upto = 0;
    rec.delivered_stream_seq = floor;
    rec.delivered_consumer_seq = 0;
    rec.ack_floor_stream_seq = floor;
    rec.ack_floor_consumer_seq = 0;
    rec.last_active_unix_nanos = 0;
    Ok(reset_seq)
}

/// Messages not yet delivered for the first time.
pub(crate) fn num_pending(rec: &ConsumerRecord, s: &Stream, filters: &[String]) -> u64 {
    if rec.delivered_stream_seq < rec.start_upto {
        let starts = rec
            .start_seqs
            .iter()
            .filter(|seq| **seq > rec.delivered_stream_seq && s.is_live(**seq))
            .count() as u64;
        return starts + s.count_after(rec.start_upto, filters);
    }
    s.count_after(rec.delivered_stream_seq, filters)
}

/// The consumer's state as reported in ConsumerInfo.
pub fn state(rec: &ConsumerRecord, s: &Stream) -> v1::ConsumerState {
    let c = cfg(rec);
    v1::ConsumerState {
        delivered: Some(v1::SequenceInfo {
            consumer_seq: rec.delivered_consumer_seq,
            stream_seq: rec.delivered_stream_seq,
            last_active_unix_nanos: rec.last_active_unix_nanos,
        }),
        ack_floor: Some(v1::SequenceInfo {
            consumer_seq: rec.ack_floor_consumer_seq,
            stream_seq: rec.ack_floor_stream_seq,
            last_active_unix_nanos: rec.last_active_unix_nanos,
        }),
        num_ack_pending: rec.pending.len() as u64,
        num_redelivered: rec.pending.iter().filter(|p| p.deliveries > 1).count() as u64,
        num_pending: num_pending(rec, s, &c.filter_subjects),
        pinned_client_id: rec.pin_id.clone(),
        pinned_unix_nanos: rec.pinned_unix_nanos,
        pin_expires_unix_nanos: rec.pin_expires_unix_nanos,
    }
}

/// Whether `rec` is done with `seq` (on `subj`): `None` when it has no interest in
/// the subject, else whether it acked it (delivered, or skipped, and not pending).
fn done_with(rec: &ConsumerRecord, seq: u64, subj: &str) -> Option<bool> {
    let c = rec.config.as_ref()?;
    if !filtered(&c.filter_subjects, subj) {
        return None;
    }
    Some(
        seq <= rec.delivered_stream_seq
            && rec
                .pending
                .binary_search_by_key(&seq, |p| p.stream_seq)
                .is_err(),
    )
}

/// The live sequences in `[from, to]` that interest or work-queue retention removes
/// now, given the stream's consumers: interest — every interested consumer acked it
/// (so with no interested consumer at all, at once); work queue — the interested
/// consumer acked it (kept while no consumer is interested).
pub fn removable(s: &Stream, consumers: &[&ConsumerRecord], from: u64, to: u64) -> Vec<u64> {
    let retention = s.spec.limits.retention;
    if retention == v1::Retention::Limits {
        return Vec::new();
    }
    let mut out = Vec::new();
    let mut next = from.max(s.state.first_seq);
    while next <= to {
        let Some(seq) = s.next_live(next, &[]) else {
            break;
        };
        if seq > to {
            break;
        }
        next = seq + 1;
        let Some(subj) = subject_at(s, seq) else {
            continue;
        };
        let mut interested = false;
        let mut all_done = true;
        for rec in consumers {
            if let Some(done) = done_with(rec, seq, subj) {
                interested = true;
                all_done &= done;
            }
        }
        let remove = match retention {
            v1::Retention::Interest => all_done,
            _ => interested && all_done,
        };
        if remove {
            out.push(seq);
        }
    }
    out
}

/// The highest sequence any of `consumers` may have acked.
pub fn acked_upto(consumers: &[&ConsumerRecord]) -> u64 {
    consumers
        .iter()
        .map(|r| r.delivered_stream_seq)
        .max()
        .unwrap_or(0)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use infinistream_proto::domain::{Chunk, Limits, Record, StreamSpec};

    const NOW: i64 = 1_000_000;

    pub(crate) fn stream(subjects: &[&str]) -> Stream {
        let mut s = Stream::new(
            StreamSpec {
                name: "S".into(),
                config_json: b"{}".to_vec(),
                limits: Limits {
                    subjects: vec![">".into()],
                    ..Default::default()
                },
            },
            1,
        );
        let records = subjects
            .iter()
            .map(|subject| Record {
                subject: (*subject).into(),
                size: 10,
                header_size: 0,
                timestamp_unix_nanos: 1,
                ..Record::default()
            })
            .collect();
        let chunk = Chunk {
            stream: "S".into(),
            chunk_index: 0,
            byte_size: 100,
            records,
        };
        s.commit_chunk(&chunk, "obj", 1_000);
        s
    }

    pub(crate) fn consumer(s: &Stream, filters: &[&str], max_deliver: i64) -> ConsumerRecord {
        let c = v1::ConsumerConfig {
            stream: "S".into(),
            name: "C".into(),
            config_json: b"{}".to_vec(),
            ack_wait_nanos: 30_000_000_000,
            max_deliver,
            filter_subjects: filters.iter().map(|f| (*f).into()).collect(),
            ..Default::default()
        };
        new_record(c, s, 0).expect("valid consumer config")
    }

    fn seqs(c: &Claimed) -> Vec<(u64, u64, u64)> {
        c.deliveries
            .iter()
            .map(|d| (d.stream_seq, d.consumer_seq, d.delivery_count))
            .collect()
    }

    fn counts(rec: &ConsumerRecord, s: &Stream) -> (u64, u64, u64, u64, u64) {
        let st = state(rec, s);
        let d = st.delivered.expect("delivered is always set");
        (
            d.stream_seq,
            d.consumer_seq,
            st.num_ack_pending,
            st.num_redelivered,
            st.num_pending,
        )
    }

    #[test]
    fn release_of_the_newest_first_deliveries_rolls_the_cursor_back() {
        let s = stream(&["s.a", "s.b", "s.a", "s.b", "s.a"]);
        let mut rec = consumer(&s, &["s.a"], 0);
        let c = claim(&mut rec, &s, 3, NOW);
        assert_eq!(seqs(&c), [(1, 1, 1), (3, 2, 1), (5, 3, 1)]);
        acknowledge(&mut rec, &s, v1::AckKind::Release, &[3, 5], 0, NOW);
        assert_eq!(counts(&rec, &s), (2, 1, 1, 0, 2));
        // Handed out again as first deliveries with the same consumer sequences.
        let c = claim(&mut rec, &s, 5, NOW);
        assert_eq!(seqs(&c), [(3, 2, 1), (5, 3, 1)]);
        assert_eq!(rec.num_redelivered, 0);
        assert_eq!(counts(&rec, &s), (5, 3, 3, 0, 0));
        acknowledge(&mut rec, &s, v1::AckKind::Ack, &[1, 3, 5], 0, NOW);
        assert_eq!(
            (rec.ack_floor_stream_seq, rec.ack_floor_consumer_seq),
            (5, 3)
        );
    }

    #[test]
    fn a_late_release_nak_or_progress_of_an_older_delivery_leaves_the_newer_claim_alone() {
        let s = stream(&["s.a", "s.a"]);
        let mut rec = consumer(&s, &[], 0);
        // Agent X claims 1 (delivery 1) and is paused past its deadline; agent Y
        // claims 1 again (delivery 2).
        assert_eq!(seqs(&claim(&mut rec, &s, 1, NOW)), [(1, 1, 1)]);
        let later = NOW + 30_000_000_000;
        assert_eq!(seqs(&claim(&mut rec, &s, 1, later)), [(1, 2, 2)]);
        let deadline = rec.pending[0].deadline;
        // X's release, nak or progress for delivery 1 arrives: a no-op, reported.
        for kind in [
            v1::AckKind::Release,
            v1::AckKind::Nak,
            v1::AckKind::InProgress,
        ] {
            let stale = acknowledge_fenced(&mut rec, &s, kind, &[1], &[1], 0, later + 1);
            assert_eq!(stale, [1], "{kind:?}");
            assert_eq!(
                (rec.pending[0].deliveries, rec.pending[0].deadline),
                (2, deadline)
            );
            assert_eq!(seqs(&claim(&mut rec, &s, 1, later + 2)), [(2, 3, 1)]);
            acknowledge(&mut rec, &s, v1::AckKind::Release, &[2], 0, later + 2);
        }
        // Naming delivery 2 (Y's), or no delivery (an older agent), applies.
        let stale = acknowledge_fenced(&mut rec, &s, v1::AckKind::Nak, &[1], &[2], 0, later + 3);
        assert!(stale.is_empty());
        assert_eq!(rec.pending[0].deadline, later + 3);
        assert_eq!(seqs(&claim(&mut rec, &s, 1, later + 3)), [(1, 3, 3)]);
        let stale =
            acknowledge_fenced(&mut rec, &s, v1::AckKind::Release, &[1], &[0], 0, later + 4);
        assert!(stale.is_empty());
        assert_eq!(rec.pending[0].deadline, later + 4);
        // A late ack of delivery 1 is still taken, as nats-server takes it.
        let stale = acknowledge_fenced(&mut rec, &s, v1::AckKind::Ack, &[1], &[1], 0, later + 5);
        assert!(stale.is_empty());
        assert!(rec.pending.is_empty());
    }

    #[test]
    fn release_never_counts_toward_redelivery_or_max_deliver() {
        let s = stream(&["s.a", "s.a", "s.a"]);
        let mut rec = consumer(&s, &[], 2);
        assert_eq!(claim(&mut rec, &s, 3, NOW).deliveries.len(), 3);
        // 1 is not at the top of the consumer sequences: it stays pending, due now,
        // and its next claim is still a first delivery.
        acknowledge(&mut rec, &s, v1::AckKind::Release, &[1], 0, NOW);
        assert_eq!(counts(&rec, &s), (3, 3, 3, 0, 0));
        let c = claim(&mut rec, &s, 5, NOW);
        assert_eq!(seqs(&c), [(1, 4, 1)]);
        assert_eq!(rec.num_redelivered, 0);
        // A nak counts: the second delivery is a redelivery.
        acknowledge(&mut rec, &s, v1::AckKind::Nak, &[1], 0, NOW);
        let c = claim(&mut rec, &s, 5, NOW);
        assert_eq!(seqs(&c), [(1, 5, 2)]);
        assert_eq!(counts(&rec, &s), (3, 5, 3, 1, 0));
        // Released at the top: the consumer sequence goes back, the count too, and
        // max_deliver (2) is not reached by the undelivered attempt.
        acknowledge(&mut rec, &s, v1::AckKind::Release, &[1], 0, NOW);
        assert_eq!(counts(&rec, &s), (3, 4, 3, 0, 0));
        let c = claim(&mut rec, &s, 5, NOW);
        assert_eq!(seqs(&c), [(1, 5, 2)]);
        assert!(c.max_delivered.is_empty());
    }

    #[test]
    fn reset_to_the_ack_floor_drops_pending_and_restarts_consumer_sequences() {
        let s = stream(&["s.a", "s.b", "s.a", "s.b", "s.a"]);
        let mut rec = consumer(&s, &[], 0);
        assert_eq!(claim(&mut rec, &s, 4, NOW).deliveries.len(), 4);
        acknowledge(&mut rec, &s, v1::AckKind::Ack, &[1], 0, NOW);
        acknowledge(&mut rec, &s, v1::AckKind::Nak, &[3], 0, NOW);
        assert_eq!(claim(&mut rec, &s, 1, NOW).deliveries[0].delivery_count, 2);
        // As nats-server: reset_seq 2, delivered and ack floor (0, 1), nothing pending.
        assert_eq!(reset(&mut rec, &s, 0), Ok(2));
        assert_eq!(counts(&rec, &s), (1, 0, 0, 0, 4));
        // An ack of a delivery from before the reset changes nothing.
        acknowledge(&mut rec, &s, v1::AckKind::Ack, &[4], 0, NOW);
        assert_eq!(counts(&rec, &s), (1, 0, 0, 0, 4));
        let c = claim(&mut rec, &s, 2, NOW);
        assert_eq!(seqs(&c), [(2, 1, 1), (3, 2, 1)]);
        // To a sequence past the stream's end: accepted, nothing left to deliver.
        assert_eq!(reset(&mut rec, &s, 100), Ok(100));
        assert_eq!(counts(&rec, &s), (99, 0, 0, 0, 0));
    }

    #[test]
    fn reset_to_a_sequence_follows_the_deliver_policy() {
        let s = stream(&["s.a", "s.a", "s.a", "s.a", "s.a"]);
        let mut rec = consumer(&s, &[], 0);
        assert_eq!(reset(&mut rec, &s, 3), Ok(3));
        assert_eq!(claim(&mut rec, &s, 1, NOW).deliveries[0].stream_seq, 3);
        let policy = |p: v1::DeliverPolicy, start: u64| {
            let mut rec = consumer(&s, &[], 0);
            if let Some(c) = rec.config.as_mut() {
                c.deliver_policy = p as i32;
                c.opt_start_seq = start;
            }
            rec
        };
        let mut by_seq = policy(v1::DeliverPolicy::DeliverByStartSequence, 3);
        let err = reset(&mut by_seq, &s, 2).expect_err("below the start sequence");
        assert_eq!(err.err_code, 10204);
        assert_eq!(err.description, "invalid reset: below start seq");
        assert_eq!(reset(&mut by_seq, &s, 3), Ok(3));
        let mut last = policy(v1::DeliverPolicy::DeliverLast, 0);
        let err = reset(&mut last, &s, 4).expect_err("not allowed for deliver last");
        assert_eq!(err.description, "invalid reset: not allowed");
        assert_eq!(reset(&mut last, &s, 0), Ok(1));
    }

    #[test]
    fn release_keeps_the_cursor_when_a_newer_message_was_delivered() {
        let s = stream(&["s.a", "s.a", "s.a"]);
        let mut rec = consumer(&s, &[], 0);
        assert_eq!(claim(&mut rec, &s, 2, NOW).deliveries.len(), 2);
        acknowledge(&mut rec, &s, v1::AckKind::Release, &[1], 0, NOW);
        assert_eq!(claim(&mut rec, &s, 1, NOW).deliveries[0].stream_seq, 1);
        // 1 now holds the top consumer sequence, but 2 was delivered after it in
        // stream order: the cursor cannot step back over 2.
        acknowledge(&mut rec, &s, v1::AckKind::Ack, &[2], 0, NOW);
        acknowledge(&mut rec, &s, v1::AckKind::Release, &[1], 0, NOW);
        assert_eq!(counts(&rec, &s), (2, 2, 1, 0, 1));
        let c = claim(&mut rec, &s, 5, NOW);
        assert_eq!(seqs(&c), [(1, 3, 1), (3, 4, 1)]);
        assert_eq!(rec.num_redelivered, 0);
    }
}
