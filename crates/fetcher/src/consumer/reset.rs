//! `CONSUMER.RESET.<stream>.<consumer>` (JetStream 2.14, ADR-60): moves a consumer's
//! delivery state to a stream sequence, or to one above its ack floor.
//!
//! The reset itself is the control plane's (`ResetConsumer`: checked against the
//! deliver policy, durable before the answer, so it holds on every agent serving the
//! consumer). Here, in order:
//! 1. the plain acks this agent holds for the consumer go first (they arrived before
//!    the reset, as nats-server would have applied them);
//! 2. the control plane resets; its consumer event wakes the consumer's runtimes on
//!    every agent, so parked pull requests and push subscribers get the messages from
//!    the reset point on, with consumer sequences restarting at 1;
//! 3. the local runtime's position (what heartbeats report) follows the reset.
//!
//! Deliveries in flight before the reset are forgotten as nats-server forgets them:
//! they are not pending and not redelivered after ack_wait, and an ack of one changes
//! nothing until its message is delivered again (acks name the stream sequence). Unlike nats-server 2.15.1, which does not answer a reset of a consumer or
//! stream that does not exist, InfiniStream answers 10014 / 10059.

use std::sync::Arc;

use infinistream_jetstream::Reply;
use infinistream_jetstream::api::cp_call;
use infinistream_protocol::jsapi::consumer::{ConsumerResetRequest, ConsumerResetResponse};
use infinistream_protocol::jsapi::{ApiError, parse_request, render_ok};
use tracing::Instrument;

use super::{Engine, admin, store};

/// Answers `CONSUMER.RESET.<stream>.<name>`; nats-server answers its errors with
/// `"reset_seq":0`.
pub(crate) async fn handle(
    engine: &Arc<Engine>,
    stream: &str,
    name: &str,
    payload: &[u8],
) -> Reply {
    let span = tracing::debug_span!("consumer_reset", stream = %stream, consumer = %name);
    Reply::json(
        match reset(engine, stream, name, payload).instrument(span).await {
            Ok(answer) => render_ok(&answer),
            Err(e) => ConsumerResetResponse::render_error(&e),
        },
    )
}

/// Resets `stream`/`name` as `payload` (a [`ConsumerResetRequest`], or nothing) asks.
async fn reset(
    engine: &Arc<Engine>,
    stream: &str,
    name: &str,
    payload: &[u8],
) -> Result<ConsumerResetResponse, ApiError> {
    let request: ConsumerResetRequest = parse_request(payload)?;
    if let Some(rt) = engine.running(stream, name) {
        rt.send_held_acks(engine).await;
    }
    let resp = cp_call(|| engine.cp.reset_consumer(stream, name, request.seq)).await?;
    let info = resp
        .info
        .ok_or_else(|| ApiError::internal("consumer reset answered without the consumer"))?;
    let stored = store::decode(stream, info)?;
    tracing::info!(stream = %stream, consumer = %name, reset_seq = resp.reset_seq, "consumer reset");
    if let Some(rt) = engine.running(stream, name) {
        rt.set_position(0, resp.reset_seq.saturating_sub(1));
        rt.wake();
    }
    Ok(ConsumerResetResponse {
        info: admin::answered(engine, admin::info_of(engine, stream, stored)),
        reset_seq: resp.reset_seq,
    })
}
