//! The `$JS.ACK.>` subscriber.
//!
//! The ack subject names the stream, consumer and sequences, so any agent can take an
//! ack for a delivery another agent made. Acks arriving within [`COALESCE`] of each
//! other are grouped into one control-plane Acknowledge per (consumer, kind): a busy
//! consumer's acks cost one RPC per few milliseconds, not one per message; and only one
//! round is in flight at a time, so under load everything that arrived while the
//! previous round was being written goes in the next one (group commit). An ack sent
//! with a reply subject (`ack_sync`, double ack) is answered with the empty message
//! nats-server sends only after the control plane confirmed it durable; `+NXT` acks
//! first, then queues a pull request for the ack's reply subject. Plain acks of a
//! consumer this agent serves are not sent here: its runtime holds them for its next
//! claim (see [`super::runtime`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use infinistream_broker::{BrokerError, InternalMsg};
use infinistream_cp_client::CallError;
use infinistream_jetstream::convert::api_error;
use infinistream_proto::v1;
use infinistream_protocol::jsapi::ack::{AckKind, AckSubject};
use infinistream_protocol::jsapi::consumer::{AckPolicy, NextRequest, PullStatus};
use tokio::time::Instant;

use super::{Engine, Runtime, events};

/// How long the first ack of a group waits for others.
pub const COALESCE: Duration = Duration::from_millis(2);
/// Most acks taken into one round.
const MAX_ROUND: usize = 8192;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Ack,
    Nak(i64),
    Term,
    Progress,
}

#[derive(Debug, Default)]
struct Group {
    seqs: Vec<u64>,
    /// `+ACK` / `+NXT`: each ack's (stream seq, consumer seq, delivery count), for
    /// `sample_freq` (see [`super::sampling`]).
    acked: Vec<(u64, u64, u64)>,
    /// `-NAK` and `+TERM`: the acks (and term reasons), for the advisories.
    advised: Vec<(AckSubject, Option<String>)>,
    replies: Vec<String>,
    next: Vec<(String, Result<NextRequest, PullStatus>)>,
}

pub(crate) fn start(engine: Arc<Engine>) -> Result<(), BrokerError> {
    let mut sub = engine
        .broker
        .subscribe_internal("$JS.ACK.>", None, 65_536)?;
    tokio::spawn(async move {
        // The previous round's Acknowledge calls: at most one round in flight, so
        // acks arriving meanwhile join the next round (group commit) instead of each
        // few milliseconds of acks costing one more control-plane write.
        let mut inflight: Option<tokio::task::JoinHandle<()>> = None;
        loop {
            let first = tokio::select! {
                () = engine.shutdown.cancelled() => return,
                msg = sub.recv() => match msg { Some(m) => m, None => return },
            };
            let mut round = vec![first];
            let deadline = Instant::now() + COALESCE;
            while round.len() < MAX_ROUND {
                if let Some(m) = sub.try_recv() {
                    round.push(m);
                    continue;
                }
                tokio::select! {
                    () = tokio::time::sleep_until(deadline) => break,
                    msg = sub.recv() => match msg {
                        Some(m) => round.push(m),
                        None => break,
                    },
                }
            }
            if let Some(previous) = inflight.take() {
                tokio::select! {
                    () = engine.shutdown.cancelled() => return,
                    _ = previous => {}
                }
                while round.len() < MAX_ROUND {
                    match sub.try_recv() {
                        Some(m) => round.push(m),
                        None => break,
                    }
                }
            }
            inflight = Some(tokio::spawn(process(engine.clone(), round)));
        }
    });
    Ok(())
}

/// Sends one round's acks, one Acknowledge per (consumer, kind), concurrently, and
/// returns when all were answered.
async fn process(engine: Arc<Engine>, round: Vec<InternalMsg>) {
    let mut groups: HashMap<(String, String, Kind), Group> = HashMap::new();
    for msg in round {
        let subject = match AckSubject::parse(&msg.subject) {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(error = %e, "ignoring malformed ack subject");
                continue;
            }
        };
        let kind = match AckKind::parse(&msg.payload) {
            Ok(k) => k,
            Err(e) => {
                // nats-server ignores acks it does not understand.
                tracing::debug!(error = %e, "ignoring unknown ack payload");
                continue;
            }
        };
        let (key, next, advised) = match kind {
            AckKind::Ack => (Kind::Ack, None, None),
            AckKind::Nak { delay } => (Kind::Nak(delay.unwrap_or(0).max(0)), None, Some(None)),
            AckKind::Progress => (Kind::Progress, None, None),
            AckKind::Term { reason } => (Kind::Term, None, Some(reason)),
            AckKind::Next { request } => (Kind::Ack, Some(request), None),
        };
        let seqs = (subject.stream_seq, subject.consumer_seq, subject.delivered);
        // The parsed names become the key (no copies per ack) unless an advisory needs
        // them too.
        let g = match advised {
            Some(reason) => {
                let g = groups
                    .entry((subject.stream.clone(), subject.consumer.clone(), key))
                    .or_default();
                g.advised.push((subject, reason));
                g
            }
            None => groups
                .entry((subject.stream, subject.consumer, key))
                .or_default(),
        };
        g.seqs.push(seqs.0);
        if key == Kind::Ack {
            g.acked.push(seqs);
        }
        match (msg.reply, next) {
            (Some(reply), Some(request)) => g.next.push((reply, request)),
            (Some(reply), None) => g.replies.push(reply),
            (None, _) => {}
        }
    }
    let mut calls = Vec::with_capacity(groups.len());
    for ((stream, consumer, kind), mut group) in groups {
        let running = engine.running(&stream, &consumer);
        if let Some(sampler) = running.as_ref().and_then(|rt| rt.sampler.as_ref()) {
            // Once per consumer and round, not per ack: a consumer without
            // sample_freq costs nothing here.
            let acked = std::mem::take(&mut group.acked);
            super::sampling::on_acks(&engine, sampler, &stream, &consumer, acked);
        }
        let served = running.filter(|rt| rt.config.ack_policy != AckPolicy::None);
        match served {
            // Nobody waits for these: they go with the consumer's next claim.
            Some(rt) if kind == Kind::Ack && group.replies.is_empty() && group.next.is_empty() => {
                rt.hold_acks(&engine, group.seqs);
            }
            served => calls.push(acknowledge(&engine, served, stream, consumer, kind, group)),
        }
    }
    futures::future::join_all(calls).await;
}

async fn acknowledge(
    engine: &Arc<Engine>,
    served: Option<Arc<Runtime>>,
    stream: String,
    consumer: String,
    kind: Kind,
    group: Group,
) {
    // Held plain acks of the consumer go first: a later ack must not overtake them.
    if let Some(rt) = &served {
        rt.send_held_acks(engine).await;
    }
    let (kind_wire, delay) = match kind {
        Kind::Ack => (v1::AckKind::Ack, 0),
        Kind::Nak(d) => (v1::AckKind::Nak, d),
        Kind::Term => (v1::AckKind::Term, 0),
        Kind::Progress => (v1::AckKind::InProgress, 0),
    };
    let result = engine
        .cp
        .acknowledge(v1::AcknowledgeRequest {
            stream: stream.clone(),
            consumer: consumer.clone(),
            kind: kind_wire as i32,
            stream_seqs: group.seqs,
            nak_delay_nanos: delay,
            // A client's nak or progress is applied to the message's current delivery
            // whichever delivery it answers, as nats-server 2.15.1 applies a late one
            // (a stale nak redelivers at once, a stale progress extends the newer
            // delivery's deadline); neither can deliver after a confirmed ack. Only
            // releases are fenced (`claim::release`).
            delivery_counts: Vec::new(),
        })
        .await;
    match result {
        Ok(_) => {}
        Err(CallError::Refused { error: e, .. }) => {
            tracing::debug!(stream = %stream, consumer = %consumer, error = %api_error(&e).description, "ack refused");
            return;
        }
        Err(error) => {
            // Unconfirmed: no reply, so ack_sync callers see a timeout and retry.
            tracing::warn!(stream = %stream, consumer = %consumer, error = %error.message(), "acknowledge failed: control plane unreachable");
            return;
        }
    }
    for (ack, reason) in &group.advised {
        match kind {
            Kind::Term => events::terminated(&engine.broker, ack, reason.as_deref()),
            Kind::Nak(_) => events::naked(&engine.broker, ack),
            Kind::Ack | Kind::Progress => {}
        }
    }
    for reply in group.replies {
        engine.broker.publish(&reply, None, None, Bytes::new());
    }
    if let Some(rt) = engine.running(&stream, &consumer) {
        rt.wake();
    }
    if !group.next.is_empty() {
        // `+NXT` pulls may need a control-plane read: not on the ack round's path.
        let engine = engine.clone();
        tokio::spawn(async move {
            for (reply, request) in group.next {
                engine.pull(&stream, &consumer, &reply, request).await;
            }
        });
    }
}
