//! JetStream advisories: the `$JS.EVENT.ADVISORY.…` subjects and JSON bodies
//! nats-server publishes when a stream or consumer is created, updated or deleted, a
//! consumer is paused, a message is naked, runs out of deliveries or is terminated. Users build
//! dead-letter queues and alerting on them, so subjects, `type` strings and field
//! names are nats-server's (`server/jetstream_events.go`).

use serde::Serialize;

use super::Timestamp;

/// What every advisory starts with (nats-server's `TypedEvent`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TypedEvent {
    /// e.g. `io.nats.jetstream.advisory.v1.max_deliver`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Unique per event.
    pub id: String,
    /// When it happened (UTC).
    pub timestamp: Timestamp,
}

/// `action` of a stream or consumer action advisory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Create,
    Delete,
    Modify,
}

/// A stream was created, updated or deleted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StreamAction {
    #[serde(flatten)]
    pub event: TypedEvent,
    pub stream: String,
    pub action: Action,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub domain: String,
}

/// A consumer was created or deleted (nats-server sends no consumer update advisory).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConsumerAction {
    #[serde(flatten)]
    pub event: TypedEvent,
    pub stream: String,
    pub consumer: String,
    pub action: Action,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub domain: String,
}

/// A consumer was paused or resumed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConsumerPause {
    #[serde(flatten)]
    pub event: TypedEvent,
    pub stream: String,
    pub consumer: String,
    pub paused: bool,
    /// Go's zero time when resumed.
    pub pause_until: Timestamp,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub domain: String,
}

/// A message reached the consumer's max_deliver and is not delivered again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MaxDeliveries {
    #[serde(flatten)]
    pub event: TypedEvent,
    pub stream: String,
    pub consumer: String,
    pub stream_seq: u64,
    pub deliveries: u64,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub domain: String,
}

/// A message was negatively acknowledged (`-NAK`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Naked {
    #[serde(flatten)]
    pub event: TypedEvent,
    pub stream: String,
    pub consumer: String,
    pub consumer_seq: u64,
    pub stream_seq: u64,
    pub deliveries: u64,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub domain: String,
}

/// A message was terminated by its consumer (`+TERM`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Terminated {
    #[serde(flatten)]
    pub event: TypedEvent,
    pub stream: String,
    pub consumer: String,
    pub consumer_seq: u64,
    pub stream_seq: u64,
    pub deliveries: u64,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub reason: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub domain: String,
}

/// An ack of a consumer with `sample_freq`, sampled (nats-server's
/// `JSConsumerAckMetric`), on [`consumer_ack_metric_subject`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConsumerAckMetric {
    #[serde(flatten)]
    pub event: TypedEvent,
    pub stream: String,
    pub consumer: String,
    pub consumer_seq: u64,
    pub stream_seq: u64,
    /// From the delivery to the ack (nanoseconds).
    #[serde(rename = "ack_time")]
    pub delay: i64,
    pub deliveries: u64,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub domain: String,
}

/// The share of acks a consumer samples, in percent, from its `sample_freq` (`"30"`
/// or `"30%"`, as checked at create); 0 when unset or unreadable.
pub fn sample_percent(sample_freq: &str) -> u64 {
    sample_freq
        .strip_suffix('%')
        .unwrap_or(sample_freq)
        .parse()
        .unwrap_or(0)
}

/// The `type` strings.
pub mod types {
    pub const CONSUMER_ACK_METRIC: &str = "io.nats.jetstream.metric.v1.consumer_ack";
    pub const STREAM_ACTION: &str = "io.nats.jetstream.advisory.v1.stream_action";
    pub const CONSUMER_ACTION: &str = "io.nats.jetstream.advisory.v1.consumer_action";
    pub const CONSUMER_PAUSE: &str = "io.nats.jetstream.advisory.v1.consumer_pause";
    pub const MAX_DELIVER: &str = "io.nats.jetstream.advisory.v1.max_deliver";
    pub const TERMINATED: &str = "io.nats.jetstream.advisory.v1.terminated";
    pub const NAK: &str = "io.nats.jetstream.advisory.v1.nak";
}

const PREFIX: &str = "$JS.EVENT.ADVISORY";

/// `$JS.EVENT.ADVISORY.STREAM.{CREATED,UPDATED,DELETED}.<stream>`.
pub fn stream_action_subject(action: Action, stream: &str) -> String {
    let verb = match action {
        Action::Create => "CREATED",
        Action::Modify => "UPDATED",
        Action::Delete => "DELETED",
    };
    format!("{PREFIX}.STREAM.{verb}.{stream}")
}

/// `$JS.EVENT.ADVISORY.CONSUMER.{CREATED,DELETED}.<stream>.<consumer>`; `None` for an
/// update (nats-server has no consumer update advisory).
pub fn consumer_action_subject(action: Action, stream: &str, consumer: &str) -> Option<String> {
    let verb = match action {
        Action::Create => "CREATED",
        Action::Delete => "DELETED",
        Action::Modify => return None,
    };
    Some(format!("{PREFIX}.CONSUMER.{verb}.{stream}.{consumer}"))
}

/// `$JS.EVENT.METRIC.CONSUMER.ACK.<stream>.<consumer>`.
pub fn consumer_ack_metric_subject(stream: &str, consumer: &str) -> String {
    format!("$JS.EVENT.METRIC.CONSUMER.ACK.{stream}.{consumer}")
}

/// `$JS.EVENT.ADVISORY.CONSUMER.PAUSE.<stream>.<consumer>`.
pub fn consumer_pause_subject(stream: &str, consumer: &str) -> String {
    format!("{PREFIX}.CONSUMER.PAUSE.{stream}.{consumer}")
}

/// `$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.<stream>.<consumer>`.
pub fn max_deliveries_subject(stream: &str, consumer: &str) -> String {
    format!("{PREFIX}.CONSUMER.MAX_DELIVERIES.{stream}.{consumer}")
}

/// `$JS.EVENT.ADVISORY.CONSUMER.MSG_NAKED.<stream>.<consumer>`.
pub fn naked_subject(stream: &str, consumer: &str) -> String {
    format!("{PREFIX}.CONSUMER.MSG_NAKED.{stream}.{consumer}")
}

/// `$JS.EVENT.ADVISORY.CONSUMER.MSG_TERMINATED.<stream>.<consumer>`.
pub fn terminated_subject(stream: &str, consumer: &str) -> String {
    format!("{PREFIX}.CONSUMER.MSG_TERMINATED.{stream}.{consumer}")
}

impl TypedEvent {
    /// An event of `kind` with `id`, at `now_unix_nanos`.
    pub fn new(kind: &'static str, id: String, now_unix_nanos: i128) -> Self {
        Self {
            kind,
            id,
            timestamp: Timestamp::from_unix_nanos(now_unix_nanos),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_deliveries_renders_like_nats_server() {
        let a = MaxDeliveries {
            event: TypedEvent::new(types::MAX_DELIVER, "ID".into(), 1_700_000_000_000_000_000),
            stream: "ORDERS".into(),
            consumer: "C".into(),
            stream_seq: 7,
            deliveries: 3,
            domain: String::new(),
        };
        assert_eq!(
            serde_json::to_string(&a).expect("json"),
            r#"{"type":"io.nats.jetstream.advisory.v1.max_deliver","id":"ID","timestamp":"2023-11-14T22:13:20Z","stream":"ORDERS","consumer":"C","stream_seq":7,"deliveries":3}"#
        );
        assert_eq!(
            max_deliveries_subject("ORDERS", "C"),
            "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.ORDERS.C"
        );
        assert_eq!(
            stream_action_subject(Action::Modify, "S"),
            "$JS.EVENT.ADVISORY.STREAM.UPDATED.S"
        );
        assert_eq!(consumer_action_subject(Action::Modify, "S", "C"), None);
    }

    #[test]
    fn ack_metric_renders_like_nats_server() {
        let m = ConsumerAckMetric {
            event: TypedEvent::new(
                types::CONSUMER_ACK_METRIC,
                "ID".into(),
                1_700_000_000_000_000_000,
            ),
            stream: "SF".into(),
            consumer: "C".into(),
            consumer_seq: 5,
            stream_seq: 3,
            delay: 7_411_737,
            deliveries: 2,
            domain: String::new(),
        };
        assert_eq!(
            serde_json::to_string(&m).expect("json"),
            r#"{"type":"io.nats.jetstream.metric.v1.consumer_ack","id":"ID","timestamp":"2023-11-14T22:13:20Z","stream":"SF","consumer":"C","consumer_seq":5,"stream_seq":3,"ack_time":7411737,"deliveries":2}"#
        );
        assert_eq!(
            consumer_ack_metric_subject("SF", "C"),
            "$JS.EVENT.METRIC.CONSUMER.ACK.SF.C"
        );
        assert_eq!(
            [
                sample_percent("30%"),
                sample_percent("100"),
                sample_percent("")
            ],
            [30, 100, 0]
        );
    }
}
