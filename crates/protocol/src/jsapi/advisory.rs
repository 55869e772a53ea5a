//! JetStream advisories: the `$JS.EVENT.ADVISORY.…` subjects and JSON bodies
//! nats-server publishes when a stream or consumer is created, updated or deleted, a
//! consumer is paused, a message is naked, runs out of deliveries or is terminated, and
//! the audit of each JetStream API request answered. Users build
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

/// A JetStream API request was answered (nats-server's `JSAPIAudit`), on
/// [`API_AUDIT_SUBJECT`]: the request's subject and body, the answer's body, and who
/// asked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiAudit {
    #[serde(flatten)]
    pub event: TypedEvent,
    /// The answering server's name.
    pub server: String,
    pub client: AuditClient,
    pub subject: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub request: String,
    pub response: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub domain: String,
}

/// The requester in an [`ApiAudit`] (nats-server's `ClientInfo` as advisories carry
/// it: every field omitted when empty).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AuditClient {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start: Option<Timestamp>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub host: String,
    #[serde(skip_serializing_if = "is_zero")]
    pub id: u64,
    #[serde(rename = "acc", skip_serializing_if = "String::is_empty")]
    pub account: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub user: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub lang: String,
    #[serde(rename = "ver", skip_serializing_if = "String::is_empty")]
    pub version: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub server: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub kind: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub client_type: String,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// `$JS.EVENT.ADVISORY.API`: where [`ApiAudit`]s go.
pub const API_AUDIT_SUBJECT: &str = "$JS.EVENT.ADVISORY.API";

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
    pub const API_AUDIT: &str = "io.nats.jetstream.advisory.v1.api_audit";
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
    fn api_audit_renders_like_nats_server() {
        let a = ApiAudit {
            event: TypedEvent::new(types::API_AUDIT, "ID".into(), 1_700_000_000_000_000_000),
            server: "S1".into(),
            client: AuditClient {
                start: Some(Timestamp::from_unix_nanos(1_700_000_000_000_000_000)),
                host: "127.0.0.1".into(),
                id: 5,
                account: "$G".into(),
                name: "worker".into(),
                lang: "rust".into(),
                version: "0.46.0".into(),
                server: "S1".into(),
                kind: "Client".into(),
                client_type: "nats".into(),
                ..AuditClient::default()
            },
            subject: "$JS.API.INFO".into(),
            request: String::new(),
            response: r#"{"type":"t"}"#.into(),
            domain: String::new(),
        };
        assert_eq!(
            serde_json::to_string(&a).expect("json"),
            r#"{"type":"io.nats.jetstream.advisory.v1.api_audit","id":"ID","timestamp":"2023-11-14T22:13:20Z","server":"S1","client":{"start":"2023-11-14T22:13:20Z","host":"127.0.0.1","id":5,"acc":"$G","name":"worker","lang":"rust","ver":"0.46.0","server":"S1","kind":"Client","client_type":"nats"},"subject":"$JS.API.INFO","response":"{\"type\":\"t\"}"}"#
        );
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
