//! Consumer delivery state: claims with deadlines, acks, redelivery.
//!
//! Consumer state lives in the control plane so any agent can serve any consumer and
//! a killed agent's in-flight messages come back. An agent *claims* deliveries: each
//! claimed message gets a deadline (now + ack_wait, or the backoff step); until it
//! passes, or the message is nak'ed, no other claim hands it out, so two agents
//! serving one durable never deliver the same message at the same time. Pure logic
//! over a [`ConsumerRecord`] and the stream, with time passed in.

use infinistream_proto::v1;

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

/// Where a new consumer starts: the cursor is the last stream sequence considered
/// delivered. `Err` names an unsupported policy.
pub fn start_cursor(c: &v1::ConsumerConfig, s: &Stream) -> Result<u64, String> {
    let st = &s.state;
    let first = st.first_seq.max(1);
    Ok(match v1::DeliverPolicy::try_from(c.deliver_policy) {
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
        Ok(v1::DeliverPolicy::DeliverLastPerSubject) | Err(_) => {
            return Err(format!(
                "deliver policy {} is not supported by the control plane",
                c.deliver_policy
            ));
        }
    })
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

/// Claims up to `batch` deliveries: expired ones first, then new messages.
pub fn claim(rec: &mut ConsumerRecord, s: &Stream, batch: usize, now: i64) -> Vec<v1::Delivery> {
    let c = cfg(rec);
    let mut out = Vec::new();
    // Drop pending messages that no longer exist or ran out of deliveries.
    let max_deliver = u64::try_from(c.max_deliver).ok().filter(|m| *m > 0);
    rec.pending.retain(|p| {
        s.is_live(p.stream_seq)
            && !(p.deadline <= now && max_deliver.is_some_and(|m| p.deliveries >= m))
    });
    for p in rec.pending.iter_mut() {
        if out.len() >= batch {
            break;
        }
        if p.deadline > now {
            continue;
        }
        p.deliveries += 1;
        rec.delivered_consumer_seq += 1;
        p.consumer_seq = rec.delivered_consumer_seq;
        p.deadline = now.saturating_add(wait_for(&c, p.deliveries));
        rec.num_redelivered += 1;
        out.push(v1::Delivery {
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
    while out.len() < batch && (ack_none(&c) || rec.pending.len() < max_pending) {
        let Some(seq) = s.next_live(rec.delivered_stream_seq + 1, &c.filter_subjects) else {
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
        out.push(v1::Delivery {
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
    }
    if !out.is_empty() {
        rec.last_active_unix_nanos = now;
    }
    out
}

/// Whether the consumer is at its max_ack_pending (claims return nothing new).
pub fn at_max_ack_pending(rec: &ConsumerRecord) -> bool {
    let c = cfg(rec);
    !ack_none(&c)
        && u64::try_from(c.max_ack_pending).is_ok_and(|m| m > 0 && rec.pending.len() as u64 >= m)
}

/// Applies an ack / nak / term / in-progress to delivered sequences.
pub fn acknowledge(
    rec: &mut ConsumerRecord,
    kind: v1::AckKind,
    seqs: &[u64],
    nak_delay: i64,
    now: i64,
) {
    let c = cfg(rec);
    match kind {
        v1::AckKind::Ack | v1::AckKind::Term => {
            if c.ack_policy == v1::AckPolicy::AckAll as i32 && kind == v1::AckKind::Ack {
                let upto = seqs.iter().copied().max().unwrap_or(0);
                rec.pending.retain(|p| p.stream_seq > upto);
            } else {
                rec.pending.retain(|p| !seqs.contains(&p.stream_seq));
            }
        }
        v1::AckKind::Nak => {
            for p in rec
                .pending
                .iter_mut()
                .filter(|p| seqs.contains(&p.stream_seq))
            {
                p.deadline = now.saturating_add(nak_delay.max(0));
            }
        }
        v1::AckKind::InProgress => {
            for p in rec
                .pending
                .iter_mut()
                .filter(|p| seqs.contains(&p.stream_seq))
            {
                p.deadline = now.saturating_add(wait_for(&c, p.deliveries));
            }
        }
    }
    update_floor(rec);
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
        num_redelivered: rec.num_redelivered,
        num_pending: s.count_after(rec.delivered_stream_seq, &c.filter_subjects),
    }
}
