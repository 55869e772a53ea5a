//! Claiming deliveries from the control plane and loading their messages.
//!
//! Claims go to the control plane, so several agents can serve one consumer without
//! handing out the same message twice; a claimed message this agent cannot deliver is
//! released at once (nak without delay) rather than waiting for ack_wait. A claim
//! carries the plain acks its runtime holds, applied first in the same write.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use infinistream_cp_client::CallError;
use infinistream_proto::v1;
use infinistream_protocol::jsapi::ApiError;
use infinistream_protocol::jsapi::ack::AckSubject;
use infinistream_protocol::jsapi::headers::MSG_SIZE;
use tokio::time::Instant;

use super::priority::Ask;
use super::runtime::{ClaimFlight, Runtime};
use super::{Engine, events};
use crate::reader::ReadError;

/// Most deliveries claimed at once.
pub(super) const MAX_CLAIM: i64 = 1024;
/// Back-off after a failed control-plane call.
const RETRY: Duration = Duration::from_millis(200);

/// A message ready to publish.
pub(super) struct Outgoing {
    pub(super) subject: String,
    pub(super) ack: String,
    pub(super) headers: Option<Bytes>,
    pub(super) payload: Bytes,
    pub(super) stream_seq: u64,
    pub(super) consumer_seq: u64,
    /// The claim's delivery count: a release names it, so it cannot cancel a newer claim.
    pub(super) delivery_count: u64,
    /// The stored message's timestamp (Unix nanoseconds): replay original paces by it.
    pub(super) timestamp: i64,
}

impl Outgoing {
    /// What counts against a request's max_bytes (nats-server: subject, reply,
    /// headers and payload).
    pub(super) fn size(&self) -> usize {
        self.subject.len()
            + self.ack.len()
            + self.headers.as_ref().map_or(0, Bytes::len)
            + self.payload.len()
    }

    /// What [`release`] takes for this message.
    pub(super) fn claimed(&self) -> Claimed {
        (self.stream_seq, self.delivery_count)
    }
}

/// A claimed delivery: its stream sequence and delivery count.
pub(super) type Claimed = (u64, u64);

/// Claims up to `batch` deliveries for a pull or push loop (for a pull request with
/// `ask` of its priority group when the consumer has one), counted in flight (see
/// [`Runtime::claims_settled`]) until the returned guard drops. A failure is handled
/// here, the same for both loops, and answers `None`: a consumer or stream that is
/// gone stops the runtime (its parked requests get `409 Consumer Deleted`; the loop
/// sees `rt.cancel`), any other failure holds the plain acks again and waits
/// [`RETRY`] (or until the runtime stops) before the loop claims again.
pub(super) async fn claim<'a>(
    engine: &Arc<Engine>,
    rt: &'a Arc<Runtime>,
    batch: i64,
    ask: Option<&Ask>,
) -> Option<(v1::ClaimResponse, ClaimFlight<'a>)> {
    let flight = rt.claim_flight();
    // The held plain acks go with the claim, applied first in its write.
    let acked = rt.take_held_acks();
    let mut request = v1::ClaimRequest {
        stream: rt.stream.clone(),
        consumer: rt.name.clone(),
        agent_id: engine.agent_id.clone(),
        // 0 only for a priority group's probe (see `pull.rs`).
        batch: u32::try_from(batch.clamp(0, MAX_CLAIM)).unwrap_or(1),
        acked_stream_seqs: acked.clone(),
        ..v1::ClaimRequest::default()
    };
    if let Some(ask) = ask {
        ask.fill(&mut request);
    }
    let result = engine.cp.claim(request).await;
    let error = match result {
        Ok(resp) => {
            events::max_deliveries(&engine.broker, &rt.stream, &rt.name, &resp.max_delivered);
            return Some((resp, flight));
        }
        Err(CallError::Refused { error: e, .. })
            if i64::from(e.err_code) == i64::from(ApiError::consumer_not_found().err_code)
                || i64::from(e.err_code) == i64::from(ApiError::stream_not_found().err_code) =>
        {
            drop(flight);
            rt.deleted(&engine.broker);
            return None;
        }
        Err(CallError::Refused { error: e, .. }) => e.description,
        Err(error) => format!("control plane unreachable: {}", error.message()),
    };
    tracing::warn!(error = %error, "claim failed");
    drop(flight);
    // Held again: the retry or the timer sends them.
    rt.hold_acks(engine, acked);
    tokio::select! {
        () = tokio::time::sleep(RETRY) => {}
        () = rt.cancel.cancelled() => {}
    }
    None
}

/// When a claim found the consumer paused: the end of the pause, when claiming is
/// worth trying again.
pub(super) fn paused_until(resp: &v1::ClaimResponse) -> Option<Instant> {
    if resp.paused_until_unix_nanos <= 0 {
        return None;
    }
    let left = i128::from(resp.paused_until_unix_nanos) - super::store::now_nanos();
    let left = u64::try_from(left.max(0)).unwrap_or(u64::MAX);
    Some(Instant::now() + Duration::from_nanos(left))
}

/// Gives claimed deliveries that were never sent back at once (RELEASE: unlike a
/// nak, nothing counts as delivered, as in nats-server). Each names its delivery
/// count: the control plane leaves a delivery claimed again since (this agent was
/// paused past the deadline, say) alone instead of cancelling the newer claim.
pub(super) fn release(engine: &Arc<Engine>, rt: &Runtime, claimed: Vec<Claimed>) {
    if claimed.is_empty()
        || rt.config.ack_policy == infinistream_protocol::jsapi::consumer::AckPolicy::None
    {
        return;
    }
    let cp = engine.cp.clone();
    let (stream_seqs, delivery_counts) = claimed.into_iter().unzip();
    let req = v1::AcknowledgeRequest {
        stream: rt.stream.clone(),
        consumer: rt.name.clone(),
        kind: v1::AckKind::Release as i32,
        stream_seqs,
        nak_delay_nanos: 0,
        delivery_counts,
    };
    tokio::spawn(async move {
        match cp.acknowledge(req).await {
            Ok(resp) if !resp.stale_stream_seqs.is_empty() => {
                tracing::debug!(seqs = ?resp.stale_stream_seqs, "released deliveries were claimed again meanwhile; left to the newer claim");
            }
            Ok(_) | Err(CallError::Refused { .. }) => {}
            Err(error) => {
                tracing::warn!(error = %error.message(), "releasing claimed deliveries failed; they return after ack_wait");
            }
        }
    });
}

/// Reads the claimed messages and builds what goes on the wire, in claim order.
/// Messages that no longer exist are skipped; unreadable ones are released.
pub(super) async fn load(
    engine: &Arc<Engine>,
    rt: &Runtime,
    resp: &mut v1::ClaimResponse,
) -> Vec<Outgoing> {
    let mut new_after = resp
        .deliveries
        .iter()
        .filter(|d| d.delivery_count <= 1)
        .count() as u64;
    let mut out = Vec::with_capacity(resp.deliveries.len());
    let mut failed = Vec::new();
    let ack_prefix = ack_prefix(rt);
    let seqs: Vec<u64> = resp.deliveries.iter().map(|d| d.stream_seq).collect();
    // The claim brought the index entries of its messages (no index read here) and
    // of the next ones: those start loading now, while this claim is delivered.
    let last = seqs.iter().copied().max().unwrap_or(0);
    let (ahead, entries): (Vec<_>, Vec<_>) = std::mem::take(&mut resp.entries)
        .into_iter()
        .partition(|e| e.first_seq > last);
    engine.reader.prefetch(&rt.stream, ahead);
    let loaded = if entries.is_empty() {
        // One clustered index read for the whole claim, not one per message.
        engine.reader.get_many(&rt.stream, &seqs).await
    } else {
        engine.reader.get_many_in(&rt.stream, &seqs, entries).await
    };
    for (d, read) in resp.deliveries.iter().zip(loaded) {
        let pending = if d.delivery_count <= 1 {
            new_after = new_after.saturating_sub(1);
            resp.num_pending + new_after
        } else {
            resp.num_pending
        };
        let msg = match read {
            Ok(msg) => msg,
            Err(ReadError::NoMessage) => continue,
            Err(e) => {
                tracing::warn!(seq = d.stream_seq, error = %e, "reading a claimed message failed; released");
                failed.push((d.stream_seq, d.delivery_count));
                continue;
            }
        };
        let ack = ack_subject(&ack_prefix, d, msg.timestamp, pending);
        let (headers, payload) = if rt.config.headers_only {
            (
                Some(with_header(
                    &msg.headers,
                    MSG_SIZE,
                    &msg.payload.len().to_string(),
                )),
                Bytes::new(),
            )
        } else {
            (
                (!msg.headers.is_empty()).then(|| msg.headers.clone()),
                msg.payload.clone(),
            )
        };
        out.push(Outgoing {
            subject: msg.subject,
            ack,
            headers,
            payload,
            stream_seq: d.stream_seq,
            consumer_seq: d.consumer_seq,
            delivery_count: d.delivery_count,
            timestamp: msg.timestamp,
        });
    }
    release(engine, rt, failed);
    if let Some(sampler) = &rt.sampler {
        sampler.delivered(out.iter().map(|m| m.stream_seq));
    }
    out
}

/// `$JS.ACK.<stream>.<consumer>.`: what every ack subject of `rt` starts with.
fn ack_prefix(rt: &Runtime) -> String {
    let mut prefix = AckSubject {
        domain: None,
        account_hash: None,
        stream: rt.stream.clone(),
        consumer: rt.name.clone(),
        delivered: 0,
        stream_seq: 0,
        consumer_seq: 0,
        timestamp_nanos: 0,
        pending: 0,
        token: None,
    }
    .to_string();
    // Drop the five zero fields ("0.0.0.0.0"), keep the dot before them.
    prefix.truncate(prefix.len() - "0.0.0.0.0".len());
    prefix
}

/// The ack subject of delivery `d` ([`AckSubject`]'s form without domain or account
/// hash), built on the consumer's prefix: no per-message copies of the stream and
/// consumer names.
fn ack_subject(prefix: &str, d: &v1::Delivery, timestamp: i64, pending: u64) -> String {
    // One per delivered message: itoa, not `fmt` (a few percent of a warm consume).
    let mut buf = itoa::Buffer::new();
    let mut ack = String::with_capacity(prefix.len() + 64);
    ack.push_str(prefix);
    ack.push_str(buf.format(d.delivery_count));
    for n in [d.stream_seq, d.consumer_seq] {
        ack.push('.');
        ack.push_str(buf.format(n));
    }
    ack.push('.');
    ack.push_str(buf.format(timestamp));
    ack.push('.');
    ack.push_str(buf.format(pending));
    ack
}

/// Appends one header to a raw header block (or starts one).
pub(super) fn with_header(block: &Bytes, name: &str, value: &str) -> Bytes {
    let mut out = Vec::with_capacity(block.len() + name.len() + value.len() + 16);
    match block.strip_suffix(b"\r\n\r\n") {
        Some(head) if !block.is_empty() => {
            out.extend_from_slice(head);
            out.extend_from_slice(b"\r\n");
        }
        _ => out.extend_from_slice(b"NATS/1.0\r\n"),
    }
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value.as_bytes());
    out.extend_from_slice(b"\r\n\r\n");
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use infinistream_protocol::jsapi::consumer::ConsumerConfig;
    use tokio_util::sync::CancellationToken;

    use super::*;

    #[test]
    fn ack_subjects_match_the_protocol_form() {
        let rt = Runtime::new(
            "ORDERS",
            "C-1",
            ConsumerConfig::default(),
            0,
            CancellationToken::new(),
        );
        let d = v1::Delivery {
            stream_seq: 42,
            consumer_seq: 7,
            delivery_count: 2,
            deadline_unix_nanos: 0,
        };
        let expected = AckSubject {
            domain: None,
            account_hash: None,
            stream: "ORDERS".into(),
            consumer: "C-1".into(),
            delivered: 2,
            stream_seq: 42,
            consumer_seq: 7,
            timestamp_nanos: 1_700_000_000_123_456_789,
            pending: 10,
            token: None,
        }
        .to_string();
        let got = ack_subject(&ack_prefix(&rt), &d, 1_700_000_000_123_456_789, 10);
        assert_eq!(got, expected);
        assert_eq!(got, "$JS.ACK.ORDERS.C-1.2.42.7.1700000000123456789.10");
    }
}
