//! Priority groups (ADR-42) in the consumer state: the one pinned client of a
//! `pinned_client` consumer and the `overflow` conditions, decided under the same lock
//! and in the same write as the claim they gate. The pin lives in the consumer record,
//! so every agent serving the consumer sees one pin, not one each.
//!
//! nats-server's rules (`processNextMsgRequest`, `nextWaiting`), applied per claim:
//! - a pin that no pull named for `priority_timeout` is dropped (the claim that finds
//!   it so says `expired`; its agent publishes the UNPINNED advisory, reason timeout);
//! - pinned: a claim naming the pin gets deliveries and extends the pin to
//!   `pin_seen + priority_timeout`; one naming no pin gets nothing (standby); one
//!   naming another pin is `wrong_pin` (the request gets a 423);
//! - not pinned: a claim for a request of the group naming no pin pins a new client
//!   if it hands out something (`assigned`); one naming a stale pin is `wrong_pin`
//!   when there is something to deliver (nats-server answers it when a message comes);
//! - overflow: a request with `min_pending` / `min_ack_pending` gets messages only
//!   while at least that many are pending (per message, so a batch stops there) or
//!   await an ack.
//!
//! Pure logic over the record, with time passed in.

use infinistream_proto::v1;

use crate::consumer;
use crate::model::ConsumerRecord;
use crate::stream::Stream;

/// nats-server's `JsDefaultPinnedTTL`: 2 min.
pub const DEFAULT_PRIORITY_TIMEOUT_NANOS: i64 = 120_000_000_000;

/// What the priority rules allow one claim.
#[derive(Debug, Default)]
pub struct Admission {
    /// Most deliveries the claim may hand out (0: none).
    pub cap: usize,
    /// The pin as decided so far (pinned_client consumers only).
    pin: Option<v1::PinState>,
    /// This claim pinned a new client, kept only if it hands something out.
    tentative: bool,
}

pub(crate) fn policy(rec: &ConsumerRecord) -> v1::PriorityPolicy {
    rec.config
        .as_ref()
        .and_then(|c| v1::PriorityPolicy::try_from(c.priority_policy).ok())
        .unwrap_or(v1::PriorityPolicy::PriorityNone)
}

fn timeout(rec: &ConsumerRecord) -> i64 {
    match rec.config.as_ref().map_or(0, |c| c.priority_timeout_nanos) {
        t if t > 0 => t,
        _ => DEFAULT_PRIORITY_TIMEOUT_NANOS,
    }
}

fn clear(rec: &mut ConsumerRecord) {
    rec.pin_id.clear();
    rec.pinned_unix_nanos = 0;
    rec.pin_expires_unix_nanos = 0;
}

/// Whether a claim now would hand something out (new messages or redeliveries due).
pub(crate) fn has_work(rec: &ConsumerRecord, s: &Stream, now: i64) -> bool {
    let filters = rec
        .config
        .as_ref()
        .map(|c| c.filter_subjects.as_slice())
        .unwrap_or_default();
    rec.pending.iter().any(|p| p.deadline <= now) || consumer::num_pending(rec, s, filters) > 0
}

/// Applies the priority rules before a claim of `batch` for `req`: drops a timed-out
/// pin, extends or checks the current one, pins a new client tentatively, and caps
/// the claim for overflow conditions. A `batch` of 0 is a probe of a pinned_client
/// consumer: it hands out nothing.
pub fn admit(
    rec: &mut ConsumerRecord,
    s: &Stream,
    req: &v1::ClaimRequest,
    batch: usize,
    now: i64,
) -> Admission {
    // A claim of 0 only probes: a timed-out pin is dropped, nothing is handed out.
    let probe = batch == 0;
    let mut adm = Admission {
        cap: batch.max(1),
        ..Admission::default()
    };
    match policy(rec) {
        v1::PriorityPolicy::PriorityPinnedClient => {
            let mut st = v1::PinState::default();
            if !rec.pin_id.is_empty() && rec.pin_expires_unix_nanos <= now {
                clear(rec);
                st.expired = true;
            }
            if !rec.pin_id.is_empty() {
                if req.pin_id == rec.pin_id {
                    let seen = req.pin_seen_unix_nanos.clamp(0, now);
                    rec.pin_expires_unix_nanos = rec
                        .pin_expires_unix_nanos
                        .max(seen.saturating_add(timeout(rec)));
                } else {
                    adm.cap = 0;
                    st.wrong_pin = !req.pin_id.is_empty();
                }
            } else if !req.pin_id.is_empty() {
                adm.cap = 0;
                st.wrong_pin = has_work(rec, s, now);
            } else if !req.group.is_empty() {
                rec.pin_id = infinistream_protocol::nuid::unique();
                rec.pinned_unix_nanos = now;
                rec.pin_expires_unix_nanos = now.saturating_add(timeout(rec));
                adm.tentative = true;
            }
            if probe {
                adm.cap = 0;
            }
            adm.pin = Some(st);
        }
        v1::PriorityPolicy::PriorityOverflow if req.min_pending > 0 || req.min_ack_pending > 0 => {
            let ack_pending = rec.pending.len() as i64;
            adm.cap = if req.min_ack_pending > 0 && req.min_ack_pending <= ack_pending {
                batch
            } else if req.min_pending > 0 {
                let filters = rec
                    .config
                    .as_ref()
                    .map(|c| c.filter_subjects.clone())
                    .unwrap_or_default();
                let pending =
                    i64::try_from(consumer::num_pending(rec, s, &filters)).unwrap_or(i64::MAX);
                // Checked per message before it goes: pending, pending - 1, ...
                let allowed = pending.saturating_add(1).saturating_sub(req.min_pending);
                usize::try_from(allowed.max(0)).unwrap_or(0).min(batch)
            } else {
                0
            };
        }
        // A prioritized consumer's probe only reports what its agent has waiting.
        v1::PriorityPolicy::PriorityPrioritized if probe => adm.cap = 0,
        _ => {}
    }
    adm
}

/// After the claim: a tentative pin that handed nothing out is taken back (nats-server
/// pins a client only when a message goes to it). The pin state for the response.
pub fn settle(rec: &mut ConsumerRecord, adm: Admission, handed_out: bool) -> Option<v1::PinState> {
    let mut st = adm.pin?;
    if adm.tentative {
        if handed_out {
            st.assigned = true;
        } else {
            clear(rec);
        }
    }
    st.pin_id = rec.pin_id.clone();
    st.pinned_unix_nanos = rec.pinned_unix_nanos;
    st.expires_unix_nanos = rec.pin_expires_unix_nanos;
    Some(st)
}

/// `CONSUMER.UNPIN`: the pin is dropped, whatever the policy.
pub fn unpin(rec: &mut ConsumerRecord) {
    clear(rec);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consumer::claim;
    use crate::consumer::tests::{consumer, stream};

    const TTL: i64 = 1_000;

    fn pinned(s: &Stream) -> ConsumerRecord {
        let mut rec = consumer(s, &[], -1);
        if let Some(c) = rec.config.as_mut() {
            c.priority_policy = v1::PriorityPolicy::PriorityPinnedClient as i32;
            c.priority_groups = vec!["A".into()];
            c.priority_timeout_nanos = TTL;
        }
        rec
    }

    fn req(pin: &str, seen: i64) -> v1::ClaimRequest {
        v1::ClaimRequest {
            group: "A".into(),
            pin_id: pin.into(),
            pin_seen_unix_nanos: seen,
            ..Default::default()
        }
    }

    /// One claim through the rules: (handed out, pin state).
    fn run(
        rec: &mut ConsumerRecord,
        s: &Stream,
        r: &v1::ClaimRequest,
        now: i64,
    ) -> (usize, v1::PinState) {
        let adm = admit(rec, s, r, 1, now);
        let n = if adm.cap > 0 {
            claim(rec, s, adm.cap, now).deliveries.len()
        } else {
            0
        };
        (n, settle(rec, adm, n > 0).expect("pinned policy"))
    }

    #[test]
    fn one_client_is_pinned_until_it_stops_pulling() {
        let s = stream(&["a"; 6]);
        let mut rec = pinned(&s);
        // The first pull without a pin is pinned; a second one waits.
        let (n, first) = run(&mut rec, &s, &req("", 0), 10);
        assert_eq!((n, first.assigned), (1, true));
        let pin = first.pin_id.clone();
        assert_eq!(pin.len(), 22);
        let (n, other) = run(&mut rec, &s, &req("", 0), 20);
        assert_eq!(
            (n, other.wrong_pin, other.pin_id.as_str()),
            (0, false, pin.as_str())
        );
        // A stale pin is told so.
        let (n, stale) = run(&mut rec, &s, &req("old", 0), 30);
        assert_eq!((n, stale.wrong_pin), (0, true));
        // The pinned client's pulls extend the pin from when they arrived.
        let (n, again) = run(&mut rec, &s, &req(&pin, 500), 600);
        assert_eq!((n, again.expires_unix_nanos), (1, 500 + TTL));
        // No pull naming it for the timeout: the next claim drops it and pins anew.
        let (n, moved) = run(&mut rec, &s, &req("", 0), 500 + TTL);
        assert!(moved.expired && moved.assigned, "{moved:?}");
        assert_eq!(n, 1);
        assert_ne!(moved.pin_id, pin);
    }

    #[test]
    fn a_probe_drops_a_timed_out_pin_and_hands_out_nothing() {
        let s = stream(&["a", "a"]);
        let mut rec = pinned(&s);
        let (_, first) = run(&mut rec, &s, &req("", 0), 10);
        let probe = v1::ClaimRequest::default();
        let adm = admit(&mut rec, &s, &probe, 0, 20);
        assert_eq!(adm.cap, 0);
        let st = settle(&mut rec, adm, false).expect("pinned");
        assert_eq!(
            (st.expired, st.pin_id.as_str()),
            (false, first.pin_id.as_str())
        );
        let adm = admit(&mut rec, &s, &probe, 0, 10 + TTL);
        assert_eq!(adm.cap, 0);
        let st = settle(&mut rec, adm, false).expect("pinned");
        assert!(st.expired && st.pin_id.is_empty(), "{st:?}");
    }

    #[test]
    fn a_pin_needs_a_message() {
        let s = stream(&["a"]);
        let mut rec = pinned(&s);
        assert_eq!(claim(&mut rec, &s, 1, 0).deliveries.len(), 1);
        let (n, st) = run(&mut rec, &s, &req("", 0), 10);
        assert_eq!((n, st.assigned, st.pin_id.as_str()), (0, false, ""));
        // Unpinned and nothing to deliver: a stale pin waits (nats-server answers it
        // when a message comes).
        let (_, st) = run(&mut rec, &s, &req("old", 0), 20);
        assert!(!st.wrong_pin);
    }

    #[test]
    fn overflow_serves_only_past_its_thresholds() {
        let s = stream(&["a"; 5]);
        let mut rec = consumer(&s, &[], -1);
        if let Some(c) = rec.config.as_mut() {
            c.priority_policy = v1::PriorityPolicy::PriorityOverflow as i32;
        }
        let over = |min_pending: i64, min_ack_pending: i64| v1::ClaimRequest {
            group: "A".into(),
            min_pending,
            min_ack_pending,
            ..Default::default()
        };
        // As nats-server 2.15.1: 5 pending, min_pending 100 gets nothing ...
        assert_eq!(admit(&mut rec, &s, &over(100, 0), 5, 0).cap, 0);
        // ... min_pending 2 gets 4 of a batch of 5 (pending 5, 4, 3, 2).
        let adm = admit(&mut rec, &s, &over(2, 0), 5, 0);
        assert_eq!(adm.cap, 4);
        assert_eq!(claim(&mut rec, &s, adm.cap, 0).deliveries.len(), 4);
        // 4 await an ack: min_ack_pending 2 gets the rest.
        assert_eq!(admit(&mut rec, &s, &over(0, 2), 5, 0).cap, 5);
        assert_eq!(admit(&mut rec, &s, &over(0, 5), 5, 0).cap, 0);
        // No thresholds: served as usual.
        assert_eq!(admit(&mut rec, &s, &over(0, 0), 5, 0).cap, 5);
    }
}
