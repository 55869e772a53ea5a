//! The consumer advisories nats-server publishes (shapes in
//! [`infinistream_protocol::jsapi::advisory`]): created and deleted, paused and
//! resumed, a message that ran out of deliveries, a naked or terminated message. Each comes
//! from the agent that did the work — answered the request, made the claim that found
//! the message exhausted, applied the `+TERM` — so once per event for the group.

use infinistream_broker::Broker;
use infinistream_jetstream::advisory::{event, publish};
use infinistream_proto::v1;
use infinistream_protocol::jsapi::Timestamp;
use infinistream_protocol::jsapi::ack::AckSubject;
use infinistream_protocol::jsapi::advisory::{
    self, Action, ConsumerAction, ConsumerPause, MaxDeliveries, Naked, Terminated, types,
};

/// `CONSUMER.CREATED` / `CONSUMER.DELETED`.
pub(crate) fn consumer_action(broker: &Broker, stream: &str, consumer: &str, action: Action) {
    let Some(subject) = advisory::consumer_action_subject(action, stream, consumer) else {
        return;
    };
    publish(
        broker,
        &subject,
        &ConsumerAction {
            event: event(types::CONSUMER_ACTION),
            stream: stream.to_owned(),
            consumer: consumer.to_owned(),
            action,
            domain: String::new(),
        },
    );
}

/// `CONSUMER.PAUSE`: paused until `pause_until`, or resumed (`None`).
pub(crate) fn pause(
    broker: &Broker,
    stream: &str,
    consumer: &str,
    paused: bool,
    pause_until: Option<Timestamp>,
) {
    publish(
        broker,
        &advisory::consumer_pause_subject(stream, consumer),
        &ConsumerPause {
            event: event(types::CONSUMER_PAUSE),
            stream: stream.to_owned(),
            consumer: consumer.to_owned(),
            paused,
            pause_until: pause_until.unwrap_or_default(),
            domain: String::new(),
        },
    );
}

/// `CONSUMER.MAX_DELIVERIES`, one per message a claim found exhausted.
pub(crate) fn max_deliveries(broker: &Broker, stream: &str, consumer: &str, ds: &[v1::Delivery]) {
    if ds.is_empty() {
        return;
    }
    let subject = advisory::max_deliveries_subject(stream, consumer);
    for d in ds {
        publish(
            broker,
            &subject,
            &MaxDeliveries {
                event: event(types::MAX_DELIVER),
                stream: stream.to_owned(),
                consumer: consumer.to_owned(),
                stream_seq: d.stream_seq,
                deliveries: d.delivery_count,
                domain: String::new(),
            },
        );
    }
}

/// `CONSUMER.MSG_TERMINATED` for a `+TERM` the control plane applied.
pub(crate) fn terminated(broker: &Broker, ack: &AckSubject, reason: Option<&str>) {
    publish(
        broker,
        &advisory::terminated_subject(&ack.stream, &ack.consumer),
        &Terminated {
            event: event(types::TERMINATED),
            stream: ack.stream.clone(),
            consumer: ack.consumer.clone(),
            consumer_seq: ack.consumer_seq,
            stream_seq: ack.stream_seq,
            deliveries: ack.delivered,
            reason: reason.unwrap_or_default().to_owned(),
            domain: String::new(),
        },
    );
}

/// `CONSUMER.MSG_NAKED` for a `-NAK` the control plane applied.
pub(crate) fn naked(broker: &Broker, ack: &AckSubject) {
    publish(
        broker,
        &advisory::naked_subject(&ack.stream, &ack.consumer),
        &Naked {
            event: event(types::NAK),
            stream: ack.stream.clone(),
            consumer: ack.consumer.clone(),
            consumer_seq: ack.consumer_seq,
            stream_seq: ack.stream_seq,
            deliveries: ack.delivered,
            domain: String::new(),
        },
    );
}
