//! Priority groups (ADR-42) on the agent side: `overflow` and `pinned_client` pull
//! consumers, as nats-server 2.15.1 has them.
//!
//! The pin and the overflow conditions are decided by the control plane, in the
//! claim they gate (`control-plane/src/pin.rs`), so every agent serving the consumer
//! sees one pinned client. This module is what the agent adds around that:
//! - each parked pull request keeps what it asks of its group ([`Ask`]);
//! - the runtime remembers the pin its last claim reported ([`PinView`]) to answer a
//!   pull naming another pin at once (`423 Nats-Pin-Id mismatch`) and to pick the
//!   request the next claim is for ([`choose`]): the pinned client's first, then one
//!   naming a stale pin (it gets its 423), then the oldest;
//! - the pinned and unpinned advisories, from the agent whose claim pinned a client
//!   or found the pin timed out, or that answered `CONSUMER.UNPIN` (once per event);
//! - `CONSUMER.UNPIN` itself ([`unpin`]).
//!
//! `prioritized` is not built: such consumers are refused at creation.

use infinistream_jetstream::advisory::{event, publish};
use infinistream_jetstream::api::cp_call;
use infinistream_proto::v1;
use infinistream_protocol::jsapi::ApiError;
use infinistream_protocol::jsapi::consumer::{NextRequest, PriorityPolicy, PullStatus};
use infinistream_protocol::jsapi::priority::{
    self, GLOBAL_ACCOUNT, GroupPinned, GroupUnpinned, PINNED_TYPE, REASON_ADMIN, REASON_TIMEOUT,
    UNPINNED_TYPE, UnpinRequest, UnpinResponse, check_unpin_group,
};

use super::{Engine, store};

/// What a parked pull request asks of its priority group.
#[derive(Debug, Clone, Default)]
pub(crate) struct Ask {
    pub group: String,
    /// The pin it names ("" = none); set when a claim for it pins its client.
    pub pin_id: String,
    pub min_pending: i64,
    pub min_ack_pending: i64,
    /// When it arrived (Unix nanoseconds): a pull naming the pin extends it from then.
    pub arrived: i64,
}

impl Ask {
    pub(crate) fn of(request: &NextRequest) -> Ask {
        Ask {
            group: request.group.clone(),
            pin_id: request.id.clone(),
            min_pending: request.min_pending,
            min_ack_pending: request.min_ack_pending,
            arrived: i64::try_from(store::now_nanos()).unwrap_or(i64::MAX),
        }
    }

    /// Overflow: served only past a threshold.
    pub(crate) fn is_conditional(&self) -> bool {
        self.min_pending > 0 || self.min_ack_pending > 0
    }

    /// The claim's priority fields for this request.
    pub(crate) fn fill(&self, req: &mut v1::ClaimRequest) {
        req.group.clone_from(&self.group);
        req.pin_id.clone_from(&self.pin_id);
        req.pin_seen_unix_nanos = if self.pin_id.is_empty() {
            0
        } else {
            self.arrived
        };
        req.min_pending = self.min_pending;
        req.min_ack_pending = self.min_ack_pending;
    }
}

/// The pin as this agent's last claim for the consumer reported it.
#[derive(Debug, Clone, Default)]
pub(crate) struct PinView {
    pub pin_id: String,
    pub pinned: i64,
    pub expires: i64,
}

impl PinView {
    /// The pin, while it has not timed out.
    fn current(&self, now: i64) -> Option<&str> {
        (!self.pin_id.is_empty() && self.expires > now).then_some(self.pin_id.as_str())
    }

    /// A new pull naming another pin than the current one: `423 Nats-Pin-Id mismatch`
    /// at once, as nats-server answers it.
    pub(crate) fn check_arrival(&self, ask: &Ask) -> Result<(), PullStatus> {
        match self.current(ask.arrived) {
            Some(pin) if !ask.pin_id.is_empty() && ask.pin_id != pin => {
                Err(PullStatus::PinIdMismatch)
            }
            _ => Ok(()),
        }
    }

    /// Learns the pin from a claim's answer.
    pub(crate) fn learn(&mut self, st: &v1::PinState) {
        self.pin_id.clone_from(&st.pin_id);
        self.pinned = st.pinned_unix_nanos;
        self.expires = st.expires_unix_nanos;
    }

    /// When standby requests should claim again: the pin's timeout.
    pub(crate) fn standby_until(&self) -> Option<i64> {
        (!self.pin_id.is_empty()).then_some(self.expires)
    }
}

/// Which parked request (by position) the next claim is for, of `asks` in arrival order.
/// `tried`: overflow requests whose conditions the last claims found unmet.
pub(crate) fn choose<'a>(
    policy: PriorityPolicy,
    asks: impl Iterator<Item = &'a Ask> + Clone,
    view: &PinView,
    tried: usize,
) -> Option<usize> {
    match policy {
        PriorityPolicy::PinnedClient => {
            let now = i64::try_from(store::now_nanos()).unwrap_or(i64::MAX);
            let pin = view.current(now);
            asks.clone()
                .position(|a| pin.is_some_and(|p| a.pin_id == p))
                .or_else(|| {
                    asks.clone()
                        .position(|a| !a.pin_id.is_empty() && Some(a.pin_id.as_str()) != pin)
                })
                .or_else(|| asks.clone().position(|a| a.pin_id.is_empty()))
        }
        PriorityPolicy::Overflow => asks.clone().position(|a| !a.is_conditional()).or_else(|| {
            asks.enumerate()
                .filter(|(_, a)| a.is_conditional())
                .nth(tried)
                .map(|(i, _)| i)
        }),
        _ => asks.clone().next().map(|_| 0),
    }
}

/// The 423 a parked request gets when its claim found its pin is not the current one:
/// `Nats-Pin-Id mismatch` when the pin predates the request (nats-server answers those
/// on arrival), else `Nats-Wrong-Pin-Id` with what was left of it.
pub(crate) fn wrong_pin_status(
    st: &v1::PinState,
    ask: &Ask,
    remaining: i64,
    bytes: i64,
) -> PullStatus {
    if !st.pin_id.is_empty() && st.pinned_unix_nanos <= ask.arrived {
        PullStatus::PinIdMismatch
    } else {
        PullStatus::WrongPinId {
            pending_msgs: remaining,
            pending_bytes: bytes,
        }
    }
}

/// The advisories a claim's pin state calls for (this agent made the change).
pub(crate) fn advise(
    engine: &Engine,
    stream: &str,
    consumer: &str,
    group: &str,
    st: &v1::PinState,
) {
    if st.expired {
        unpinned(engine, stream, consumer, group, REASON_TIMEOUT);
    }
    if st.assigned {
        tracing::debug!(stream = %stream, consumer = %consumer, group = %group, "client pinned");
        publish(
            &engine.broker,
            &priority::pinned_subject(stream, consumer),
            &GroupPinned {
                event: event(PINNED_TYPE),
                account: GLOBAL_ACCOUNT.to_owned(),
                stream: stream.to_owned(),
                consumer: consumer.to_owned(),
                domain: String::new(),
                group: group.to_owned(),
                pinned_client_id: st.pin_id.clone(),
            },
        );
    }
}

fn unpinned(engine: &Engine, stream: &str, consumer: &str, group: &str, reason: &str) {
    publish(
        &engine.broker,
        &priority::unpinned_subject(stream, consumer),
        &GroupUnpinned {
            event: event(UNPINNED_TYPE),
            account: GLOBAL_ACCOUNT.to_owned(),
            stream: stream.to_owned(),
            consumer: consumer.to_owned(),
            domain: String::new(),
            group: group.to_owned(),
            reason: reason.to_owned(),
        },
    );
}

/// `CONSUMER.UNPIN.<stream>.<consumer>` with `{"group": ...}`: nats-server's checks
/// in its order (body, stream, consumer, group), then the control plane drops the pin
/// and wakes the agents with requests on standby.
pub(crate) async fn unpin(
    engine: &Engine,
    stream: &str,
    consumer: &str,
    payload: &[u8],
) -> Result<UnpinResponse, ApiError> {
    let req = UnpinRequest::parse(payload)?;
    let stored = store::fetch_info(&engine.cp, stream, consumer).await?;
    check_unpin_group(&stored.config, &req.group)?;
    cp_call(|| engine.cp.unpin(stream, consumer, &req.group)).await?;
    tracing::info!(stream = %stream, consumer = %consumer, group = %req.group, "consumer unpinned");
    unpinned(engine, stream, consumer, &req.group, REASON_ADMIN);
    Ok(UnpinResponse {})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ask(pin: &str, min_pending: i64) -> Ask {
        Ask {
            group: "A".into(),
            pin_id: pin.into(),
            min_pending,
            ..Ask::default()
        }
    }

    #[test]
    fn the_pinned_client_goes_first_then_stale_pins_then_the_oldest() {
        let view = PinView {
            pin_id: "P".into(),
            pinned: 1,
            expires: i64::MAX,
        };
        let asks = [ask("", 0), ask("old", 0), ask("P", 0)];
        let pick = |asks: &[Ask], view: &PinView| {
            choose(PriorityPolicy::PinnedClient, asks.iter(), view, 0)
        };
        assert_eq!(pick(&asks, &view), Some(2));
        assert_eq!(pick(&asks[..2], &view), Some(1));
        assert_eq!(pick(&asks[..1], &view), Some(0));
        // A request naming another pin than the current one is refused on arrival.
        assert_eq!(
            view.check_arrival(&ask("old", 0)),
            Err(PullStatus::PinIdMismatch)
        );
        assert_eq!(view.check_arrival(&ask("P", 0)), Ok(()));
        assert_eq!(view.check_arrival(&ask("", 0)), Ok(()));
    }

    #[test]
    fn overflow_tries_unconditional_requests_first_then_each_conditional_one() {
        let asks = [ask("", 10), ask("", 5), ask("", 0)];
        let pick = |tried| {
            choose(
                PriorityPolicy::Overflow,
                asks.iter(),
                &PinView::default(),
                tried,
            )
        };
        assert_eq!(pick(0), Some(2));
        let asks = [ask("", 10), ask("", 5)];
        let pick = |tried| {
            choose(
                PriorityPolicy::Overflow,
                asks.iter(),
                &PinView::default(),
                tried,
            )
        };
        assert_eq!((pick(0), pick(1), pick(2)), (Some(0), Some(1), None));
    }
}
