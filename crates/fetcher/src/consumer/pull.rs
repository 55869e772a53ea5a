//! A pull consumer's loop: the pull requests (`CONSUMER.MSG.NEXT`) parked on this
//! agent. It claims deliveries for the oldest request, reads their bodies and publishes
//! them to the request's reply subject, and answers with nats-server's status lines
//! when a request ends without its batch (`404 No Messages` for no_wait, `408 Request
//! Timeout` on expiry, `409 Message Size Exceeds MaxBytes`, `409 Consumer Deleted`) or
//! idles (`100 Idle Heartbeat`).

use std::sync::Arc;
use std::time::Duration;

use infinistream_broker::Deliveries;
use infinistream_protocol::jsapi::consumer::{NextRequest, PullStatus};
use tokio::time::Instant;

use super::Engine;
use super::claim::{MAX_CLAIM, Outgoing, claim, load, paused_until, release};
use super::pace::{self, Pace};
use super::runtime::{Runtime, Waiter};
use super::wake::wait_change;

/// A pull runtime with no requests for this long stops (it restarts on the next one).
const IDLE_EXIT: Duration = Duration::from_secs(60);

impl Runtime {
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

    /// Drops requests whose client went away, answers expired ones (408), sends due
    /// heartbeats. Returns the front request (reply, batch to claim) and the next
    /// time something is due.
    pub(super) fn housekeeping(&self, engine: &Engine) -> (Option<i64>, Option<Instant>) {
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

pub(super) async fn pull_loop(engine: &Arc<Engine>, rt: &Arc<Runtime>) {
    let mut notes = engine.watch.subscribe(&rt.stream);
    let fallback = engine.watch.fallback();
    let mut pace = Pace::of(&rt.config, pace::burst(engine, &rt.stream));
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
                    if rt.reap_if_inactive(engine, idle).await || idle >= IDLE_EXIT {
                        return;
                    }
                }
            }
            continue;
        };
        let Some((resp, flight)) = claim(engine, rt, pace::claim_size(pace.as_ref(), batch)).await
        else {
            continue;
        };
        match resp {
            resp if resp.deliveries.is_empty() => {
                drop(flight);
                rt.drained(engine);
                if rt.state.lock().waiters.is_empty() {
                    continue;
                }
                let mut deadline =
                    next_due.unwrap_or_else(|| Instant::now() + Duration::from_secs(1));
                // Paused: requests wait (heartbeats, expiry) until the pause ends.
                if let Some(until) = paused_until(&resp) {
                    deadline = deadline.min(until);
                }
                tokio::select! {
                    () = rt.kick.notified() => {}
                    () = wait_change(&mut notes, fallback) => {}
                    () = tokio::time::sleep_until(deadline) => {}
                    () = rt.cancel.cancelled() => return,
                }
            }
            mut resp => {
                let out = load(engine, rt, &mut resp).await;
                if !pace::hold(pace.as_mut(), engine, rt, &out).await {
                    return;
                }
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
