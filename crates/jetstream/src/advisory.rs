//! Publishing JetStream advisories (`$JS.EVENT.ADVISORY.…`, shapes in
//! [`infinistream_protocol::jsapi::advisory`]). Each is published by the one agent
//! that did the work (answered the API request, made the claim, applied the ack), so
//! the group sends it once, not once per agent.

use bytes::Bytes;
use infinistream_broker::Broker;
use infinistream_protocol::jsapi::advisory::TypedEvent;
use serde::Serialize;

/// Publishes `body` on `subject`. An advisory nobody listens to costs nothing more
/// than the routing lookup.
pub fn publish<T: Serialize>(broker: &Broker, subject: &str, body: &T) {
    match serde_json::to_vec(body) {
        Ok(json) => broker.publish(subject, None, None, Bytes::from(json)),
        Err(e) => tracing::warn!(subject = %subject, error = %e, "encoding an advisory failed"),
    }
}

/// A new event of `kind`, now, with a unique id (22 characters, like nats-server's
/// nuid).
pub fn event(kind: &'static str) -> TypedEvent {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i128)
        .unwrap_or(0);
    TypedEvent::new(kind, infinistream_protocol::nuid::unique(), now)
}
