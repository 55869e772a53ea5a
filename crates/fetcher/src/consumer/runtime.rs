//! One task per consumer this agent serves.
//!
//! A pull consumer's task owns the pull requests parked on this agent: it claims
//! deliveries for the oldest request, reads their bodies and publishes them to the
//! request's reply subject, and answers with nats-server's status lines when a request
//! ends without its batch (`404 No Messages` for no_wait, `408 Request Timeout` on
//! expiry, `409 Message Size Exceeds MaxBytes`, `409 Consumer Deleted`) or idles
//! (`100 Idle Heartbeat`). A push consumer's task delivers to the deliver subject while
//! this agent has a subscriber for it, with flow control and idle heartbeats.
//!
//! Claims go to the control plane, so several agents can serve one consumer without
//! handing out the same message twice; a claimed message this agent cannot deliver is
//! released at once (nak without delay) rather than waiting for ack_wait.
//!
//! Plain acks (sent without a reply subject, so nobody waits for their confirmation)
//! of a consumer served here are held by its runtime and sent with its next claim,
//! which applies them first in the same durable write: a draining consumer costs one
//! control-plane write per fetch, not one per fetch plus one per ack round. Acks no
//! claim picks up within [`ACK_HOLD`] go in an Acknowledge of their own.
//!
//! A claim counts in the control plane's consumer state (`delivered`, `num_pending`)
//! before its messages are read and sent. So that a `CONSUMER.INFO` answered here never
//! reports a delivery its subscriber has not been sent yet (nats-server sends the
//! message first; nats.py's KV watch takes `num_pending == 0` with nothing received as
//! "no initial values"), the runtime counts its claims in flight and the INFO waits
//! for those begun before its answer ([`Runtime::claims_settled`]).

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use infinistream_broker::{BrokerError, Deliveries};
use infinistream_cp_client::CallError;
use infinistream_proto::v1;
use infinistream_protocol::jsapi::ApiError;
use infinistream_protocol::jsapi::ack::{AckSubject, flow_control_subject};
use infinistream_protocol::jsapi::consumer::{ConsumerConfig, NextRequest, PullStatus};
use infinistream_protocol::jsapi::headers::MSG_SIZE;
use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::wake::wait_change;
use super::{Engine, admin};
use crate::reader::ReadError;

/// Most deliveries claimed at once.
const MAX_CLAIM: i64 = 1024;
/// Push flow control: ask the subscriber to confirm after this many bytes or messages.
const FC_MAX_BYTES: usize = 1 << 20;
const FC_MAX_MSGS: usize = 1024;
/// A pull runtime with no requests for this long stops (it restarts on the next one).
const IDLE_EXIT: Duration = Duration::from_secs(60);
/// A push runtime without a local subscriber for this long stops.
const PUSH_UNBOUND_EXIT: Duration = Duration::from_secs(10);
/// Back-off after a failed control-plane call.
const RETRY: Duration = Duration::from_millis(200);
/// Longest a held plain ack waits for a claim to carry it.
pub(crate) const ACK_HOLD: Duration = Duration::from_millis(10);
/// Longest a `CONSUMER.INFO` waits for the claims in flight to be sent.
const SETTLE_BOUND: Duration = Duration::from_secs(5);

/// Plain acks held for the next claim.
#[derive(Debug, Default)]
struct HeldAcks {
    seqs: Vec<u64>,
    /// Bumped whenever the held acks are taken (by a claim or sent on their own).
    generation: u64,
    /// A timer is pending for the acks held since this generation began: it sends
    /// them unless they were taken meanwhile.
    armed: bool,
}

#[derive(Debug)]
struct Waiter {
    reply: String,
    remaining: i64,
    max_bytes: i64,
    bytes_left: i64,
    no_wait: bool,
    expires_at: Option<Instant>,
    heartbeat: Option<Duration>,
    next_heartbeat: Instant,
}

impl Waiter {
    fn pending_bytes(&self) -> i64 {
        if self.max_bytes > 0 {
            self.bytes_left
        } else {
            0
        }
    }
}

#[derive(Debug)]
struct State {
    waiters: VecDeque<Waiter>,
    last_consumer_seq: u64,
    last_stream_seq: u64,
    last_activity: Instant,
    /// Push: the flow-control reply subject the consumer waits for.
    fc_pending: Option<String>,
    fc_counter: u64,
}

/// A consumer served by this agent.
#[derive(Debug)]
pub struct Runtime {
    pub stream: String,
    pub name: String,
    pub(crate) created: i64,
    pub(crate) config: ConsumerConfig,
    state: Mutex<State>,
    held: Mutex<HeldAcks>,
    kick: Notify,
    cancel: CancellationToken,
    /// Claims sent to the control plane, and those whose messages were handed to the
    /// broker since (or that brought none): see the module docs.
    claims_begun: AtomicU64,
    claims_done: AtomicU64,
    claim_settled: Notify,
}

/// A claim in flight: counted done when dropped.
struct ClaimFlight<'a>(&'a Runtime);

impl Drop for ClaimFlight<'_> {
    fn drop(&mut self) {
        self.0.claims_done.fetch_add(1, Ordering::AcqRel);
        self.0.claim_settled.notify_waiters();
    }
}

impl Runtime {
    pub(crate) fn new(
        stream: &str,
        name: &str,
        config: ConsumerConfig,
        created: i64,
        cancel: CancellationToken,
    ) -> Runtime {
        Runtime {
            stream: stream.to_owned(),
            name: name.to_owned(),
            created,
            config,
            state: Mutex::new(State {
                waiters: VecDeque::new(),
                last_consumer_seq: 0,
                last_stream_seq: 0,
                last_activity: Instant::now(),
                fc_pending: None,
                fc_counter: 0,
            }),
            held: Mutex::new(HeldAcks::default()),
            kick: Notify::new(),
            cancel,
            claims_begun: AtomicU64::new(0),
            claims_done: AtomicU64::new(0),
            claim_settled: Notify::new(),
        }
    }

    fn claim_flight(&self) -> ClaimFlight<'_> {
        self.claims_begun.fetch_add(1, Ordering::AcqRel);
        ClaimFlight(self)
    }

    /// Waits (at most [`SETTLE_BOUND`]) until every claim begun so far has its
    /// messages handed to the broker, so an answer built from the control plane's
    /// state after this call's start never runs ahead of the deliveries it counts.
    pub(crate) async fn claims_settled(&self) {
        let target = self.claims_begun.load(Ordering::Acquire);
        let settled = async {
            loop {
                let notified = self.claim_settled.notified();
                if self.claims_done.load(Ordering::Acquire) >= target {
                    return;
                }
                notified.await;
            }
        };
        if tokio::time::timeout(SETTLE_BOUND, settled).await.is_err() {
            tracing::debug!(
                stream = %self.stream,
                consumer = %self.name,
                "claims still in flight after the settle bound; answering anyway"
            );
        }
    }

    /// Pull requests parked here.
    pub fn num_waiting(&self) -> u64 {
        self.state.lock().waiters.len() as u64
    }

    /// Takes over the parked requests of the runtime this one replaces.
    pub(crate) fn adopt(&self, old: &Runtime) {
        let moved: Vec<Waiter> = old.state.lock().waiters.drain(..).collect();
        if moved.is_empty() {
            return;
        }
        self.state.lock().waiters.extend(moved);
        self.kick.notify_one();
    }

    /// Re-check now (an ack may have freed room, a request arrived).
    pub(crate) fn wake(&self) {
        self.kick.notify_one();
    }

    /// Holds plain acks of this consumer for its next claim (see the module docs);
    /// after [`ACK_HOLD`] without one, they are sent on their own.
    pub(crate) fn hold_acks(self: &Arc<Self>, engine: &Arc<Engine>, seqs: Vec<u64>) {
        if seqs.is_empty() {
            return;
        }
        let arm = {
            let mut held = self.held.lock();
            held.seqs.extend(seqs);
            (!std::mem::replace(&mut held.armed, true)).then_some(held.generation)
        };
        // A request parked at max_ack_pending may fit now.
        self.kick.notify_one();
        if let Some(generation) = arm {
            let (engine, rt) = (engine.clone(), self.clone());
            tokio::spawn(async move {
                tokio::time::sleep(ACK_HOLD).await;
                // Taken by a claim meanwhile: the acks held since are younger, and
                // their own timer was armed when the first of them came.
                if rt.held.lock().generation == generation {
                    send_held_acks(&engine, &rt).await;
                }
            });
        }
    }

    fn take_held_acks(&self) -> Vec<u64> {
        let mut held = self.held.lock();
        held.generation += 1;
        held.armed = false;
        std::mem::take(&mut held.seqs)
    }

    pub(crate) fn stop(&self) {
        self.cancel.cancel();
    }

    /// The consumer is gone: answer parked requests and stop.
    pub(crate) fn deleted(&self, broker: &infinistream_broker::Broker) {
        self.take_held_acks();
        let waiters: Vec<Waiter> = self.state.lock().waiters.drain(..).collect();
        let hdr = Bytes::from(PullStatus::ConsumerDeleted.header_block());
        for w in waiters {
            broker.publish(&w.reply, None, Some(hdr.clone()), Bytes::new());
        }
        self.cancel.cancel();
    }

    /// Parks a pull request (checked against the consumer's limits first).
    pub(crate) fn enqueue(&self, engine: &Engine, reply: &str, request: NextRequest) {
        if let Err(status) = request.check_limits(&self.config) {
            return engine.publish_status(reply, &status);
        }
        let now = Instant::now();
        let heartbeat = (request.heartbeat > 0)
            .then(|| Duration::from_nanos(u64::try_from(request.heartbeat).unwrap_or(0)));
        let waiter = Waiter {
            reply: reply.to_owned(),
            remaining: request.batch.max(1),
            max_bytes: request.max_bytes.max(0),
            bytes_left: request.max_bytes.max(0),
            no_wait: request.no_wait,
            expires_at: (request.expires > 0)
                .then(|| now + Duration::from_nanos(u64::try_from(request.expires).unwrap_or(0))),
            heartbeat,
            next_heartbeat: now + heartbeat.unwrap_or(Duration::ZERO),
        };
        {
            let mut st = self.state.lock();
            st.last_activity = now;
            let max_waiting = usize::try_from(self.config.max_waiting).unwrap_or(0);
            if max_waiting > 0 && st.waiters.len() >= max_waiting {
                st.waiters.retain(|w| {
                    engine.broker.has_interest_anywhere(&w.reply)
                        && w.expires_at.is_none_or(|e| e > now)
                });
                if st.waiters.len() >= max_waiting {
                    drop(st);
                    return engine.publish_status(reply, &PullStatus::ExceededMaxWaiting);
                }
            }
            st.waiters.push_back(waiter);
        }
        self.kick.notify_one();
    }

    /// Push: a flow-control reply arrived.
    pub(crate) fn flow_control_reply(&self, subject: &str) {
        let mut st = self.state.lock();
        if st.fc_pending.as_deref() == Some(subject) {
            st.fc_pending = None;
            drop(st);
            self.kick.notify_one();
        }
    }

    /// Drops requests whose client went away, answers expired ones (408), sends due
    /// heartbeats. Returns the front request (reply, batch to claim) and the next
    /// time something is due.
    fn housekeeping(&self, engine: &Engine) -> (Option<i64>, Option<Instant>) {
        let now = Instant::now();
        let mut st = self.state.lock();
        let (last_c, last_s) = (st.last_consumer_seq, st.last_stream_seq);
        st.waiters.retain(|w| {
            // The requester may be connected to another agent that forwarded its request.
            if !engine.broker.has_interest_anywhere(&w.reply) {
                return false;
            }
            if w.expires_at.is_some_and(|e| e <= now) {
                engine.publish_status(
                    &w.reply,
                    &PullStatus::RequestTimeout {
                        pending_msgs: w.remaining,
                        pending_bytes: w.pending_bytes(),
                    },
                );
                return false;
            }
            true
        });
        let mut next: Option<Instant> = None;
        for w in st.waiters.iter_mut() {
            if let Some(hb) = w.heartbeat {
                if w.next_heartbeat <= now {
                    engine.publish_status(
                        &w.reply,
                        &PullStatus::IdleHeartbeat {
                            last_consumer: last_c,
                            last_stream: last_s,
                            stalled: None,
                        },
                    );
                    w.next_heartbeat = now + hb;
                }
                next = Some(next.map_or(w.next_heartbeat, |n| n.min(w.next_heartbeat)));
            }
            if let Some(e) = w.expires_at {
                next = Some(next.map_or(e, |n| n.min(e)));
            }
        }
        let front = st.waiters.front().map(|w| {
            if w.max_bytes > 0 {
                1
            } else {
                w.remaining.min(MAX_CLAIM)
            }
        });
        (front, next)
    }

    /// Nothing to deliver now: no_wait requests end with `404 No Messages`.
    fn drained(&self, engine: &Engine) {
        let mut st = self.state.lock();
        st.waiters.retain(|w| {
            if w.no_wait && w.expires_at.is_none() {
                engine.publish_status(&w.reply, &PullStatus::NoMessages);
                return false;
            }
            true
        });
    }
}

/// A message ready to publish.
struct Outgoing {
    subject: String,
    ack: String,
    headers: Option<Bytes>,
    payload: Bytes,
    stream_seq: u64,
    consumer_seq: u64,
}

impl Outgoing {
    /// What counts against a request's max_bytes (nats-server: subject, reply,
    /// headers and payload).
    fn size(&self) -> usize {
        self.subject.len()
            + self.ack.len()
            + self.headers.as_ref().map_or(0, Bytes::len)
            + self.payload.len()
    }
}

enum Claimed {
    Deliveries(v1::ClaimResponse),
    Gone,
    Failed,
}

async fn claim(engine: &Arc<Engine>, rt: &Arc<Runtime>, batch: i64) -> Claimed {
    // The held plain acks go with the claim, applied first in its write.
    let acked = rt.take_held_acks();
    let result = engine
        .cp
        .claim(v1::ClaimRequest {
            stream: rt.stream.clone(),
            consumer: rt.name.clone(),
            agent_id: engine.agent_id.clone(),
            batch: u32::try_from(batch.clamp(1, MAX_CLAIM)).unwrap_or(1),
            acked_stream_seqs: acked.clone(),
        })
        .await;
    match result {
        Ok(resp) => Claimed::Deliveries(resp),
        Err(CallError::Refused { error: e, .. })
            if i64::from(e.err_code) == i64::from(ApiError::consumer_not_found().err_code)
                || i64::from(e.err_code) == i64::from(ApiError::stream_not_found().err_code) =>
        {
            Claimed::Gone
        }
        Err(CallError::Refused { error: e, .. }) => {
            tracing::warn!(error = %e.description, "claim refused");
            // Held again: the retry or the timer sends them.
            rt.hold_acks(engine, acked);
            Claimed::Failed
        }
        Err(error) => {
            tracing::warn!(error = %error.message(), "claim failed: control plane unreachable");
            rt.hold_acks(engine, acked);
            Claimed::Failed
        }
    }
}

/// Sends the plain acks `rt` holds in an Acknowledge of their own (no claim took
/// them in time, another kind of ack for the consumer must not overtake them, or the
/// runtime stops).
pub(crate) async fn send_held_acks(engine: &Engine, rt: &Runtime) {
    let seqs = rt.take_held_acks();
    if seqs.is_empty() {
        return;
    }
    let result = engine
        .cp
        .acknowledge(v1::AcknowledgeRequest {
            stream: rt.stream.clone(),
            consumer: rt.name.clone(),
            kind: v1::AckKind::Ack as i32,
            stream_seqs: seqs,
            nak_delay_nanos: 0,
        })
        .await;
    match result {
        Ok(_) => {}
        Err(CallError::Refused { error: e, .. }) => {
            tracing::debug!(stream = %rt.stream, consumer = %rt.name, error = %e.description, "held acks refused");
        }
        Err(error) => {
            tracing::warn!(stream = %rt.stream, consumer = %rt.name, error = %error.message(), "acknowledge failed: control plane unreachable");
        }
    }
    rt.wake();
}

/// Gives claimed deliveries that were never sent back at once (RELEASE: unlike a
/// nak, nothing counts as delivered, as in nats-server).
pub(crate) fn release(engine: &Arc<Engine>, rt: &Runtime, seqs: Vec<u64>) {
    if seqs.is_empty()
        || rt.config.ack_policy == infinistream_protocol::jsapi::consumer::AckPolicy::None
    {
        return;
    }
    let cp = engine.cp.clone();
    let req = v1::AcknowledgeRequest {
        stream: rt.stream.clone(),
        consumer: rt.name.clone(),
        kind: v1::AckKind::Release as i32,
        stream_seqs: seqs,
        nak_delay_nanos: 0,
    };
    tokio::spawn(async move {
        match cp.acknowledge(req).await {
            Ok(_) | Err(CallError::Refused { .. }) => {}
            Err(error) => {
                tracing::warn!(error = %error.message(), "releasing claimed deliveries failed; they return after ack_wait");
            }
        }
    });
}

/// Reads the claimed messages and builds what goes on the wire, in claim order.
/// Messages that no longer exist are skipped; unreadable ones are released.
async fn load(engine: &Arc<Engine>, rt: &Runtime, resp: &mut v1::ClaimResponse) -> Vec<Outgoing> {
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
                failed.push(d.stream_seq);
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
        });
    }
    release(engine, rt, failed);
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
fn with_header(block: &Bytes, name: &str, value: &str) -> Bytes {
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

/// Runs a consumer until it is deleted, stopped, or idle long enough to let go.
pub(crate) async fn run(engine: Arc<Engine>, rt: Arc<Runtime>) {
    // Start heartbeats from the consumer's real position.
    if let Ok(stored) = admin::fetch_info(&engine, &rt.stream, &rt.name).await {
        let d = stored.state.delivered.unwrap_or_default();
        let mut st = rt.state.lock();
        st.last_consumer_seq = d.consumer_seq;
        st.last_stream_seq = d.stream_seq;
    }
    if rt.config.is_pull() {
        pull_loop(&engine, &rt).await;
    } else {
        push_loop(&engine, &rt).await;
    }
    engine.remove(&rt);
    // Acks arriving from now on go straight to the control plane; these go now.
    send_held_acks(&engine, &rt).await;
    tracing::debug!(stream = %rt.stream, consumer = %rt.name, "consumer runtime stopped");
}

/// Deletes a consumer idle past its inactive_threshold, as nats-server does, unless
/// another agent served it meanwhile (the control plane's last activity says).
async fn reap_if_inactive(engine: &Arc<Engine>, rt: &Runtime, idle: Duration) -> bool {
    let threshold = rt.config.inactive_threshold;
    if threshold <= 0 || idle.as_nanos() < threshold as u128 {
        return false;
    }
    if let Ok(stored) = admin::fetch_info(engine, &rt.stream, &rt.name).await {
        let last = stored
            .state
            .delivered
            .map_or(0, |d| d.last_active_unix_nanos);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as i64)
            .unwrap_or(0);
        if last > 0 && now.saturating_sub(last) < threshold {
            return false;
        }
    }
    match admin::delete(engine, &rt.stream, &rt.name).await {
        Ok(()) => {
            tracing::info!(stream = %rt.stream, consumer = %rt.name, "inactive consumer deleted");
            true
        }
        Err(e) => {
            tracing::debug!(error = %e.description, "deleting an inactive consumer failed");
            e.err_code == ApiError::consumer_not_found().err_code
        }
    }
}

async fn pull_loop(engine: &Arc<Engine>, rt: &Arc<Runtime>) {
    let mut notes = engine.watch.subscribe(&rt.stream);
    let fallback = engine.watch.fallback();
    loop {
        if rt.cancel.is_cancelled() {
            return;
        }
        let (front, next_due) = rt.housekeeping(engine);
        let Some(batch) = front else {
            // Nothing parked: wait for a request, reap or let go when idle.
            tokio::select! {
                () = rt.kick.notified() => {}
                () = rt.cancel.cancelled() => return,
                () = tokio::time::sleep(Duration::from_millis(500)) => {
                    let idle = rt.state.lock().last_activity.elapsed();
                    if reap_if_inactive(engine, rt, idle).await || idle >= IDLE_EXIT {
                        return;
                    }
                }
            }
            continue;
        };
        let flight = rt.claim_flight();
        match claim(engine, rt, batch).await {
            Claimed::Gone => {
                drop(flight);
                rt.deleted(&engine.broker);
                return;
            }
            Claimed::Failed => {
                drop(flight);
                tokio::select! {
                    () = tokio::time::sleep(RETRY) => {}
                    () = rt.cancel.cancelled() => return,
                }
            }
            Claimed::Deliveries(resp) if resp.deliveries.is_empty() => {
                drop(flight);
                rt.drained(engine);
                if rt.state.lock().waiters.is_empty() {
                    continue;
                }
                let deadline = next_due.unwrap_or_else(|| Instant::now() + Duration::from_secs(1));
                tokio::select! {
                    () = rt.kick.notified() => {}
                    () = wait_change(&mut notes, fallback) => {}
                    () = tokio::time::sleep_until(deadline) => {}
                    () = rt.cancel.cancelled() => return,
                }
            }
            Claimed::Deliveries(mut resp) => {
                let out = load(engine, rt, &mut resp).await;
                deliver_pull(engine, rt, out);
                drop(flight);
            }
        }
    }
}

/// Hands loaded messages to the parked requests, oldest first.
fn deliver_pull(engine: &Arc<Engine>, rt: &Runtime, out: Vec<Outgoing>) {
    let mut unsent = Vec::new();
    let now = Instant::now();
    let mut st = rt.state.lock();
    // Routed per waiter: matched once, its connection woken once, not per message.
    let mut to: Option<(String, Deliveries<'_>)> = None;
    for msg in out {
        let size = msg.size() as i64;
        loop {
            let Some(w) = st.waiters.front_mut() else {
                unsent.push(msg.stream_seq);
                break;
            };
            if w.max_bytes > 0 && size > w.bytes_left {
                engine.publish_status(
                    &w.reply,
                    &PullStatus::MessageSizeExceedsMaxBytes {
                        pending_msgs: w.remaining,
                        pending_bytes: w.bytes_left,
                    },
                );
                st.waiters.pop_front();
                continue;
            }
            if to.as_ref().is_none_or(|(reply, _)| *reply != w.reply) {
                to = Some((w.reply.clone(), engine.broker.deliveries(&w.reply)));
            }
            if let Some((_, deliveries)) = &mut to {
                deliveries.send(
                    &msg.subject,
                    Some(&msg.ack),
                    msg.headers.clone(),
                    msg.payload.clone(),
                );
            }
            w.remaining -= 1;
            w.bytes_left -= size;
            if let Some(hb) = w.heartbeat {
                w.next_heartbeat = now + hb;
            }
            if w.remaining <= 0 {
                st.waiters.pop_front();
            }
            st.last_consumer_seq = st.last_consumer_seq.max(msg.consumer_seq);
            st.last_stream_seq = msg.stream_seq;
            st.last_activity = now;
            break;
        }
    }
    drop(to);
    drop(st);
    release(engine, rt, unsent);
}

async fn push_loop(engine: &Arc<Engine>, rt: &Arc<Runtime>) {
    let deliver = rt.config.deliver_subject.clone();
    let heartbeat = (rt.config.heartbeat > 0)
        .then(|| Duration::from_nanos(u64::try_from(rt.config.heartbeat).unwrap_or(0)));
    let mut last_sent = Instant::now();
    let mut unbound_since: Option<Instant> = None;
    let (mut fc_bytes, mut fc_msgs) = (0usize, 0usize);
    let mut notes = engine.watch.subscribe(&rt.stream);
    let fallback = engine.watch.fallback();
    loop {
        if rt.cancel.is_cancelled() {
            return;
        }
        let now = Instant::now();
        if !engine.broker.serves_push(&deliver, rt.stream.as_bytes()) {
            let since = *unbound_since.get_or_insert(now);
            if reap_if_inactive(engine, rt, since.elapsed()).await {
                return;
            }
            if rt.config.inactive_threshold <= 0 && since.elapsed() >= PUSH_UNBOUND_EXIT {
                return;
            }
            tokio::select! {
                () = tokio::time::sleep(Duration::from_millis(50)) => {}
                () = rt.cancel.cancelled() => return,
            }
            continue;
        }
        unbound_since = None;
        let heartbeat_due = heartbeat.is_some_and(|hb| last_sent + hb <= now);
        let stalled = rt.state.lock().fc_pending.clone();
        if heartbeat_due {
            let (c, s) = {
                let st = rt.state.lock();
                (st.last_consumer_seq, st.last_stream_seq)
            };
            engine.publish_status(
                &deliver,
                &PullStatus::IdleHeartbeat {
                    last_consumer: c,
                    last_stream: s,
                    stalled: stalled.clone(),
                },
            );
            last_sent = now;
        }
        let next_hb = heartbeat.map(|hb| last_sent + hb);
        if stalled.is_some() {
            let deadline = next_hb.unwrap_or(now + Duration::from_millis(100));
            tokio::select! {
                () = rt.kick.notified() => {}
                () = tokio::time::sleep_until(deadline) => {}
                () = rt.cancel.cancelled() => return,
            }
            continue;
        }
        let flight = rt.claim_flight();
        match claim(engine, rt, MAX_CLAIM).await {
            Claimed::Gone => {
                drop(flight);
                rt.deleted(&engine.broker);
                return;
            }
            Claimed::Failed => {
                drop(flight);
                tokio::select! {
                    () = tokio::time::sleep(RETRY) => {}
                    () = rt.cancel.cancelled() => return,
                }
            }
            Claimed::Deliveries(resp) if resp.deliveries.is_empty() => {
                drop(flight);
                let deadline = next_hb.unwrap_or(now + Duration::from_secs(1));
                tokio::select! {
                    () = rt.kick.notified() => {}
                    () = wait_change(&mut notes, fallback) => {}
                    () = tokio::time::sleep_until(deadline) => {}
                    () = rt.cancel.cancelled() => return,
                }
            }
            Claimed::Deliveries(mut resp) => {
                let out = load(engine, rt, &mut resp).await;
                let mut st = rt.state.lock();
                let mut deliveries = engine.broker.deliveries(&deliver);
                for msg in out {
                    fc_bytes += msg.size();
                    fc_msgs += 1;
                    deliveries.send(
                        &msg.subject,
                        Some(&msg.ack),
                        msg.headers.clone(),
                        msg.payload.clone(),
                    );
                    st.last_consumer_seq = st.last_consumer_seq.max(msg.consumer_seq);
                    st.last_stream_seq = msg.stream_seq;
                }
                drop(deliveries);
                drop(flight);
                st.last_activity = Instant::now();
                last_sent = Instant::now();
                if rt.config.flow_control && (fc_bytes >= FC_MAX_BYTES || fc_msgs >= FC_MAX_MSGS) {
                    st.fc_counter += 1;
                    let subject =
                        flow_control_subject(&rt.stream, &rt.name, &st.fc_counter.to_string());
                    engine.broker.publish(
                        &deliver,
                        Some(&subject),
                        Some(Bytes::from(PullStatus::FlowControlRequest.header_block())),
                        Bytes::new(),
                    );
                    st.fc_pending = Some(subject);
                    fc_bytes = 0;
                    fc_msgs = 0;
                }
            }
        }
    }
}

/// Subscribes to `$JS.FC.>`: subscribers' answers to flow-control requests.
pub(crate) fn start_flow_control(engine: Arc<Engine>) -> Result<(), BrokerError> {
    let mut sub = engine.broker.subscribe_internal("$JS.FC.>", None, 1024)?;
    tokio::spawn(async move {
        loop {
            let msg = tokio::select! {
                () = engine.shutdown.cancelled() => return,
                msg = sub.recv() => match msg { Some(m) => m, None => return },
            };
            let tokens: Vec<&str> = msg.subject.split('.').collect();
            if let [_, _, stream, consumer, _] = tokens.as_slice()
                && let Some(rt) = engine.running(stream, consumer)
            {
                rt.flow_control_reply(&msg.subject);
            }
        }
    });
    Ok(())
}

/// Longest a push consumer whose deliver subject has a subscriber here waits to be
/// started when nothing announced it (a safety net: subscriptions, consumer events
/// and ended runtimes are the path).
const PUSH_RESCAN: Duration = Duration::from_secs(10);

/// Starts push consumers whose deliver subject gained a subscriber on this agent (a
/// push consumer is served by the agents its subscribers are connected to). Checks
/// every second, but lists the consumers of every stream (one control-plane call per
/// stream) only when something could have changed: a subscription came or went here,
/// a consumer was created or updated anywhere (the control plane's consumer events),
/// a runtime here ended, or [`PUSH_RESCAN`] passed. Without consumer events (no
/// notifications), every second.
pub(crate) async fn push_scanner(engine: Arc<Engine>) {
    let mut events = engine.watch.consumer_events();
    let mut seen: Option<(u64, u64)> = None;
    let mut last_scan = Instant::now();
    loop {
        tokio::select! {
            () = engine.shutdown.cancelled() => return,
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
        let now = (
            engine.broker.subscription_generation(),
            engine.ended.load(std::sync::atomic::Ordering::Relaxed),
        );
        let announced = match &mut events {
            Some(rx) => match rx.has_changed() {
                Ok(changed) => {
                    rx.borrow_and_update();
                    changed
                }
                Err(_) => {
                    events = None;
                    true
                }
            },
            None => true,
        };
        if !announced && seen == Some(now) && last_scan.elapsed() < PUSH_RESCAN {
            continue;
        }
        // Marked before the scan: what changes during it is seen next time.
        seen = Some(now);
        last_scan = Instant::now();
        for entry in engine.catalog.snapshot() {
            let stream = entry.name.to_string();
            let Ok(all) = admin::list_stored(&engine, &stream).await else {
                continue;
            };
            for c in all {
                if c.config.deliver_subject.is_empty()
                    || engine.running(&stream, &c.config.name).is_some()
                    || !engine
                        .broker
                        .serves_push(&c.config.deliver_subject, stream.as_bytes())
                {
                    continue;
                }
                let name = c.config.name.clone();
                engine.install(&stream, &name, c.config, c.created_unix_nanos);
            }
        }
    }
}

#[cfg(test)]
mod tests {
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
