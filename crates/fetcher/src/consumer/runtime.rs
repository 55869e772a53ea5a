//! One consumer served by this agent: its parked pull requests, the plain acks it
//! holds for its next claim, and its claims in flight. The loops that drive it are
//! [`super::pull`] and [`super::push`]; claiming and loading are [`super::claim`].
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
use infinistream_cp_client::CallError;
use infinistream_proto::v1;
use infinistream_protocol::jsapi::ApiError;
use infinistream_protocol::jsapi::consumer::{ConsumerConfig, PullStatus};
use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::priority::{Ask, PinView};
use super::{Engine, store};

/// Longest a held plain ack waits for a claim to carry it.
pub(crate) const ACK_HOLD: Duration = Duration::from_millis(10);
/// Longest a `CONSUMER.INFO` waits for the claims in flight to be sent.
const SETTLE_BOUND: Duration = Duration::from_secs(5);

/// Plain acks held for the next claim.
#[derive(Debug, Default)]
pub(super) struct HeldAcks {
    pub(super) seqs: Vec<u64>,
    /// Bumped whenever the held acks are taken (by a claim or sent on their own).
    pub(super) generation: u64,
    /// A timer is pending for the acks held since this generation began: it sends
    /// them unless they were taken meanwhile.
    pub(super) armed: bool,
}

#[derive(Debug)]
pub(super) struct Waiter {
    pub(super) reply: String,
    pub(super) remaining: i64,
    pub(super) max_bytes: i64,
    pub(super) bytes_left: i64,
    pub(super) no_wait: bool,
    pub(super) expires_at: Option<Instant>,
    pub(super) heartbeat: Option<Duration>,
    pub(super) next_heartbeat: Instant,
    /// What it asks of its priority group ([`super::priority`]).
    pub(super) ask: Ask,
}

impl Waiter {
    pub(super) fn pending_bytes(&self) -> i64 {
        if self.max_bytes > 0 {
            self.bytes_left
        } else {
            0
        }
    }
}

#[derive(Debug)]
pub(super) struct State {
    pub(super) waiters: VecDeque<Waiter>,
    pub(super) last_consumer_seq: u64,
    pub(super) last_stream_seq: u64,
    pub(super) last_activity: Instant,
    /// Push: the flow-control reply subject the consumer waits for.
    pub(super) fc_pending: Option<String>,
    pub(super) fc_counter: u64,
}

/// A consumer served by this agent.
#[derive(Debug)]
pub struct Runtime {
    pub stream: String,
    pub name: String,
    pub(crate) created: i64,
    pub(crate) config: ConsumerConfig,
    pub(super) state: Mutex<State>,
    pub(super) held: Mutex<HeldAcks>,
    pub(super) kick: Notify,
    pub(super) cancel: CancellationToken,
    /// Claims sent to the control plane, and those whose messages were handed to the
    /// broker since (or that brought none): see the module docs.
    pub(super) claims_begun: AtomicU64,
    pub(super) claims_done: AtomicU64,
    pub(super) claim_settled: Notify,
    /// `sample_freq`: delivery times for ack metrics ([`super::sampling`]).
    pub(crate) sampler: Option<super::sampling::Sampler>,
    /// Priority groups: the pin as this agent's last claim reported it.
    pub(super) pin: Mutex<PinView>,
}

/// A claim in flight: counted done when dropped.
pub(crate) struct ClaimFlight<'a>(&'a Runtime);

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
        let sampler = super::sampling::Sampler::of(&config);
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
            sampler,
            pin: Mutex::new(PinView::default()),
        }
    }

    pub(super) fn claim_flight(&self) -> ClaimFlight<'_> {
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

    /// Where deliveries stand (heartbeats report it).
    pub(crate) fn set_position(&self, consumer_seq: u64, stream_seq: u64) {
        let mut st = self.state.lock();
        st.last_consumer_seq = consumer_seq;
        st.last_stream_seq = stream_seq;
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
                    rt.send_held_acks(&engine).await;
                }
            });
        }
    }

    pub(super) fn take_held_acks(&self) -> Vec<u64> {
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

    /// Push: a flow-control reply arrived.
    pub(crate) fn flow_control_reply(&self, subject: &str) {
        let mut st = self.state.lock();
        if st.fc_pending.as_deref() == Some(subject) {
            st.fc_pending = None;
            drop(st);
            self.kick.notify_one();
        }
    }

    /// Sends the plain acks this runtime holds in an Acknowledge of their own (no claim took
    /// them in time, another kind of ack for the consumer must not overtake them, or the
    /// runtime stops).
    pub(crate) async fn send_held_acks(&self, engine: &Engine) {
        let seqs = self.take_held_acks();
        if seqs.is_empty() {
            return;
        }
        let result = engine
            .cp
            .acknowledge(v1::AcknowledgeRequest {
                stream: self.stream.clone(),
                consumer: self.name.clone(),
                kind: v1::AckKind::Ack as i32,
                stream_seqs: seqs,
                nak_delay_nanos: 0,
                ..Default::default()
            })
            .await;
        match result {
            Ok(_) => {}
            Err(CallError::Refused { error: e, .. }) => {
                tracing::debug!(stream = %self.stream, consumer = %self.name, error = %e.description, "held acks refused");
            }
            Err(error) => {
                tracing::warn!(stream = %self.stream, consumer = %self.name, error = %error.message(), "acknowledge failed: control plane unreachable");
            }
        }
        self.wake();
    }

    /// Deletes a consumer idle past its inactive_threshold, as nats-server does, unless
    /// another agent served it meanwhile (the control plane's last activity says).
    pub(super) async fn reap_if_inactive(&self, engine: &Arc<Engine>, idle: Duration) -> bool {
        let threshold = self.config.inactive_threshold;
        if threshold <= 0 || idle.as_nanos() < threshold as u128 {
            return false;
        }
        if let Ok(stored) = store::fetch_info(&engine.cp, &self.stream, &self.name).await {
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
        match engine.delete_consumer(&self.stream, &self.name).await {
            Ok(()) => true,
            Err(e) => {
                tracing::debug!(error = %e.description, "deleting an inactive consumer failed");
                e.err_code == ApiError::consumer_not_found().err_code
            }
        }
    }
}
