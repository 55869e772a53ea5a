//! The advisory nats-server publishes when a consumer's pause ends by itself:
//! `$JS.EVENT.ADVISORY.CONSUMER.PAUSE.<stream>.<consumer>` with `"paused":false` and
//! the `pause_until` that passed (not Go's zero time, which an explicit resume sends).
//!
//! The agent that set the pause (a `CONSUMER.PAUSE`, or a create with `pause_until`)
//! waits for its end, then asks the control plane whether the consumer still has that
//! pause: only then does it publish, so the advisory goes once for the group, and
//! not at all when the pause was changed, cleared or the consumer deleted meanwhile.
//! If that agent stops before the pause ends, the advisory is not sent (the pause
//! itself still ends on every agent: it is the control plane's).

use std::sync::Arc;
use std::time::Duration;

use infinistream_protocol::jsapi::Timestamp;

use super::{Engine, events, store};

/// Publishes the expiry advisory of `stream`/`name`'s pause until `until`, when it
/// comes and if the pause is still the consumer's.
pub(crate) fn watch(engine: &Arc<Engine>, stream: &str, name: &str, until: Timestamp) {
    let left = until.unix_nanos() - store::now_nanos();
    let Ok(left) = u64::try_from(left) else {
        return;
    };
    let (engine, stream, name) = (engine.clone(), stream.to_owned(), name.to_owned());
    tokio::spawn(async move {
        tokio::select! {
            () = engine.shutdown.cancelled() => return,
            () = tokio::time::sleep(Duration::from_nanos(left)) => {}
        }
        match store::fetch_info(&engine.cp, &stream, &name).await {
            Ok(stored) if stored.config.pause_until == Some(until) => {
                tracing::info!(stream = %stream, consumer = %name, "consumer pause ended");
                events::pause(&engine.broker, &stream, &name, false, Some(until));
            }
            Ok(_) => {}
            Err(e) => {
                tracing::debug!(stream = %stream, consumer = %name, error = %e.description, "pause expiry: consumer gone or unreadable");
            }
        }
    });
}
