//! A pull consumer's loop: the pull requests (`CONSUMER.MSG.NEXT`) parked on this
//! agent. It claims deliveries for the oldest request, reads their bodies and publishes
//! them to the request's reply subject, and answers with nats-server's status lines
//! when a request ends without its batch (`404 No Messages` for no_wait, `408 Request
//! Timeout` on expiry, `409 Message Size Exceeds MaxBytes`, `409 Consumer Deleted`) or
//! idles (`100 Idle Heartbeat`).

use std::sync::Arc;
use std::time::Duration;

use infinistream_broker::Deliveries;
use infinistream_proto::v1;
use infinistream_protocol::jsapi::consumer::{NextRequest, PriorityPolicy, PullStatus};
use infinistream_protocol::jsapi::headers::PIN_ID;
use tokio::time::Instant;

use super::Engine;
use super::claim::{MAX_CLAIM, Outgoing, claim, load, paused_until, release, with_header};
use super::pace::{self, Pace};
use super::priority::{self, Ask};
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
        if let Err(status) = request.check_priority(&self.config) {
            return engine.publish_status(reply, &status);
        }
        let ask = Ask::of(&request);
        if let Err(status) = self.pin.lock().check_arrival(&ask) {
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
            ask,
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
    /// heartbeats. Returns the request the next claim is for (the oldest, or as the
    /// priority policy picks: `tried` overflow requests found their thresholds unmet)
    /// and the next time something is due.
    pub(super) fn housekeeping(
        &self,
        engine: &Engine,
        tried: usize,
    ) -> (Option<Front>, Option<Instant>) {
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
        let policy = self.config.priority_policy;
        let index = if policy == PriorityPolicy::None {
            (!st.waiters.is_empty()).then_some(0)
        } else {
            let view = self.pin.lock();
            priority::choose(policy, st.waiters.iter().map(|w| &w.ask), &view, tried)
        };
        let mut front = index.and_then(|i| st.waiters.get(i)).map(|w| Front {
            batch: if w.max_bytes > 0 {
                1
            } else {
                w.remaining.min(MAX_CLAIM)
            },
            reply: w.reply.clone(),
            ask: (policy != PriorityPolicy::None).then(|| w.ask.clone()),
        });
        if policy == PriorityPolicy::Prioritized
            && let Some(ask) = front.as_mut().and_then(|f| f.ask.as_mut())
        {
            ask.waiting = priority::levels(st.waiters.iter().map(|w| (&w.ask, w.remaining)));
        }
        (front, next)
    }

    /// Priority groups: the pin this agent knows of has timed out (no pull named it for
    /// priority_timeout), so a probe should drop it and publish the UNPINNED advisory
    /// about when nats-server's timer would.
    fn pin_timed_out(&self) -> bool {
        self.config.priority_policy == PriorityPolicy::PinnedClient
            && self
                .pin
                .lock()
                .standby_until()
                .is_some_and(|t| i128::from(t) <= super::store::now_nanos())
    }

    /// A claim of nothing that drops a timed-out pin (once for the group: the control
    /// plane says which agent's probe did it, and that one publishes the advisory).
    async fn probe_pin(self: &Arc<Self>, engine: &Arc<Engine>) {
        let ask = Ask::default();
        if let Some((resp, _flight)) = claim(engine, self, 0, Some(&ask)).await
            && let Some(st) = &resp.pin
        {
            self.pin.lock().learn(st);
            let group = self
                .config
                .priority_groups
                .first()
                .map_or("", String::as_str);
            priority::advise(engine, &self.stream, &self.name, group, st);
        }
    }

    /// Priority groups: learns the pin from a claim's answer, publishes the advisories
    /// it calls for, marks the request it pinned, and answers a request whose pin is
    /// not the current one (423). Returns whether that request is gone.
    fn after_claim(&self, engine: &Engine, front: &Front, resp: &v1::ClaimResponse) -> bool {
        let (Some(st), Some(ask)) = (resp.pin.as_ref(), front.ask.as_ref()) else {
            return false;
        };
        self.pin.lock().learn(st);
        priority::advise(engine, &self.stream, &self.name, &ask.group, st);
        let mut waiters = self.state.lock();
        let Some(i) = waiters
            .waiters
            .iter()
            .position(|w| w.reply == front.reply && w.ask.arrived == ask.arrived)
        else {
            return false;
        };
        if st.wrong_pin {
            if let Some(w) = waiters.waiters.remove(i) {
                let status = priority::wrong_pin_status(st, &w.ask, w.remaining, w.pending_bytes());
                engine.publish_status(&w.reply, &status);
            }
            return true;
        }
        if st.assigned {
            waiters.waiters[i].ask.pin_id.clone_from(&st.pin_id);
        }
        false
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
    // Overflow: requests in a row whose thresholds were unmet (each is tried once).
    let mut tried = 0;
    // prioritized: the control plane holds a report of requests waiting here.
    let mut reported = false;
    loop {
        if rt.cancel.is_cancelled() {
            return;
        }
        let (front, next_due) = rt.housekeeping(engine, tried);
        let Some(front) = front else {
            if reported {
                // None wait here any more: withdraw the report (a claim of nothing),
                // so other agents' requests of worse priorities need not wait for it
                // to expire.
                let ask = Ask::default();
                reported = claim(engine, rt, 0, Some(&ask)).await.is_none();
                continue;
            }
            if tried > 0 {
                // Every overflow request was tried: wait for a change.
                tried = 0;
                tokio::select! {
                    () = rt.kick.notified() => {}
                    () = wait_change(&mut notes, fallback) => {}
                    () = tokio::time::sleep_until(next_due.unwrap_or_else(|| Instant::now() + Duration::from_secs(1))) => {}
                    () = rt.cancel.cancelled() => return,
                }
                continue;
            }
            // Nothing parked: wait for a request, reap or let go when idle.
            tokio::select! {
                () = rt.kick.notified() => {}
                () = rt.cancel.cancelled() => return,
                () = tokio::time::sleep(Duration::from_millis(500)) => {
                    if rt.pin_timed_out() {
                        rt.probe_pin(engine).await;
                    }
                    let idle = rt.state.lock().last_activity.elapsed();
                    if rt.reap_if_inactive(engine, idle).await || idle >= IDLE_EXIT {
                        return;
                    }
                }
            }
            continue;
        };
        let batch = pace::claim_size(pace.as_ref(), front.batch);
        let Some((resp, flight)) = claim(engine, rt, batch, front.ask.as_ref()).await else {
            continue;
        };
        reported = front.ask.as_ref().is_some_and(|a| !a.waiting.is_empty());
        if rt.after_claim(engine, &front, &resp) {
            // Its request got a 423: the next one goes now.
            drop(flight);
            continue;
        }
        match resp {
            resp if resp.deliveries.is_empty() => {
                drop(flight);
                if front.ask.as_ref().is_some_and(Ask::is_conditional) {
                    // Overflow thresholds unmet: the next request may have lower ones.
                    tried += 1;
                    continue;
                }
                tried = 0;
                if !resp.deferred {
                    // (Deferred behind a better priority on another agent: there is
                    // something to deliver, so no_wait requests wait too.)
                    rt.drained(engine);
                }
                if rt.state.lock().waiters.is_empty() {
                    continue;
                }
                let mut deadline =
                    next_due.unwrap_or_else(|| Instant::now() + Duration::from_secs(1));
                // Paused: requests wait (heartbeats, expiry) until the pause ends.
                if let Some(until) = paused_until(&resp) {
                    deadline = deadline.min(until);
                }
                // On standby behind another client's pin: until it times out.
                if let Some(until) = rt.pin.lock().standby_until() {
                    deadline = deadline.min(instant_at(until));
                }
                tokio::select! {
                    () = rt.kick.notified() => {}
                    () = wait_change(&mut notes, fallback) => {}
                    () = tokio::time::sleep_until(deadline) => {}
                    () = rt.cancel.cancelled() => return,
                }
            }
            mut resp => {
                tried = 0;
                let mut out = load(engine, rt, &mut resp).await;
                if rt.config.priority_policy == PriorityPolicy::PinnedClient {
                    // Every message carries the pin (empty for a request without a group).
                    let pin = resp.pin.as_ref().map_or("", |p| p.pin_id.as_str());
                    for msg in &mut out {
                        let block = msg.headers.take().unwrap_or_default();
                        msg.headers = Some(with_header(&block, PIN_ID, pin));
                    }
                }
                if !pace::hold(pace.as_mut(), engine, rt, &out).await {
                    return;
                }
                // A priority group's claim was for one request; prioritized: for the
                // requests of its priority, round-robin.
                let route = match rt.config.priority_policy {
                    PriorityPolicy::None => Route::Oldest,
                    PriorityPolicy::Prioritized => Route::Best,
                    _ => Route::Only(&front),
                };
                deliver_pull(engine, rt, out, &route);
                drop(flight);
            }
        }
    }
}

/// The request a claim was for.
pub(super) struct Front {
    batch: i64,
    reply: String,
    /// Its priority group's ask (consumers with a priority policy).
    ask: Option<Ask>,
}

impl Front {
    fn is(&self, w: &Waiter) -> bool {
        w.reply == self.reply && self.ask.as_ref().is_none_or(|a| a.arrived == w.ask.arrived)
    }
}

/// The `Instant` of a Unix time in nanoseconds.
fn instant_at(unix_nanos: i64) -> Instant {
    let left = i128::from(unix_nanos) - super::store::now_nanos();
    Instant::now() + Duration::from_nanos(u64::try_from(left.max(0)).unwrap_or(u64::MAX))
}

/// Which parked request each loaded message goes to.
enum Route<'a> {
    /// The oldest.
    Oldest,
    /// The one the claim was for.
    Only(&'a Front),
    /// prioritized: the first of the best priority, which then goes behind the others
    /// of its priority (nats-server's `popAndRequeue`).
    Best,
}

/// Hands loaded messages to the parked requests as `route` says.
fn deliver_pull(engine: &Arc<Engine>, rt: &Runtime, out: Vec<Outgoing>, route: &Route<'_>) {
    let mut unsent = Vec::new();
    let now = Instant::now();
    let mut st = rt.state.lock();
    // Routed per waiter: matched once, its connection woken once, not per message.
    let mut to: Option<(String, Deliveries<'_>)> = None;
    for msg in out {
        let size = msg.size() as i64;
        loop {
            let index = match route {
                Route::Oldest => Some(0),
                Route::Only(f) => st.waiters.iter().position(|w| f.is(w)),
                Route::Best => priority::best(st.waiters.iter().map(|w| &w.ask)),
            }
            .unwrap_or(st.waiters.len());
            let Some(w) = st.waiters.get_mut(index) else {
                unsent.push(msg.claimed());
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
                st.waiters.remove(index);
                continue;
            }
            // A request whose client went away while the claim was made still gets its
            // messages (they come back after ack_wait). Releasing them at once, as
            // nats-server hands them on, needs a release fenced by its delivery: an
            // unfenced release from an agent that was paused can cancel another
            // agent's newer delivery of the same message (the chaos run's "delivered
            // after ack").
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
                st.waiters.remove(index);
            } else if matches!(route, Route::Best)
                && let Some(w) = st.waiters.remove(index)
            {
                st.waiters.push_back(w);
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
