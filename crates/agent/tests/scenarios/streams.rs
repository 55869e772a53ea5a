//! Stream API scenarios, run by `jetstream_streams` against an in-process agent and by
//! `e2e_s3_etcd` against agents on a real S3 server and etcd. Each scenario gets a
//! JetStream context on a fresh deployment, or one its earlier scenarios left as they
//! found it (every scenario deletes the streams it creates).

// `context::Publish` is deprecated in async-nats 0.51 but is still the way its
// JetStream context sends Msg-Id and expected headers.
#![allow(deprecated)]

use async_nats::jetstream::{self, context::Publish, stream};
use futures::StreamExt;

/// Create, idempotent create, config mismatch (10058), overlap (10065), names, many
/// publishes in flight acked with sequences 1..=N in order, info, delete.
pub async fn stream_api_basics(js: &jetstream::Context) {
    let mut stream = js
        .create_stream(stream::Config {
            name: "ORDERS".into(),
            subjects: vec!["orders.>".into()],
            ..Default::default()
        })
        .await
        .expect("create stream");
    assert_eq!(stream.cached_info().config.name, "ORDERS");

    // Many publishes in flight: sequences 1..=N in publish order, one ack each.
    let mut acks = Vec::new();
    for i in 0..200u32 {
        acks.push(
            js.publish(format!("orders.{}", i % 7), format!("order {i}").into())
                .await
                .expect("publish"),
        );
    }
    for (i, ack) in acks.into_iter().enumerate() {
        let ack = ack.await.expect("acked");
        assert_eq!(ack.stream, "ORDERS");
        assert_eq!(ack.sequence, i as u64 + 1);
        assert!(!ack.duplicate);
    }
    let info = stream.info().await.expect("info");
    assert_eq!(info.state.messages, 200);
    assert_eq!(info.state.first_sequence, 1);
    assert_eq!(info.state.last_sequence, 200);

    // Creating the same stream again is idempotent; a different config is refused.
    js.create_stream(stream::Config {
        name: "ORDERS".into(),
        subjects: vec!["orders.>".into()],
        ..Default::default()
    })
    .await
    .expect("idempotent create");
    let err = js
        .create_stream(stream::Config {
            name: "ORDERS".into(),
            subjects: vec!["other.>".into()],
            ..Default::default()
        })
        .await
        .expect_err("different config under the same name");
    assert!(err.to_string().contains("10058"), "{err}");

    // Overlapping subjects between streams are refused (10065).
    let err = js
        .create_stream(stream::Config {
            name: "OVERLAP".into(),
            subjects: vec!["orders.1".into()],
            ..Default::default()
        })
        .await
        .expect_err("overlap");
    assert!(err.to_string().contains("10065"), "{err}");

    let names: Vec<String> = js.stream_names().map(|n| n.expect("name")).collect().await;
    assert_eq!(names, vec!["ORDERS".to_owned()]);

    assert!(js.delete_stream("ORDERS").await.expect("delete").success);
    let err = js.get_stream("ORDERS").await.expect_err("gone");
    assert!(
        err.to_string().contains("10059") || err.to_string().contains("not found"),
        "{err}"
    );
}

/// Msg-Id de-duplication and `Nats-Expected-*` checks answered like nats-server.
pub async fn dedupe_and_expected_headers(js: &jetstream::Context) {
    js.create_stream(stream::Config {
        name: "PAY".into(),
        subjects: vec!["pay.*".into()],
        ..Default::default()
    })
    .await
    .expect("create");

    let first = js
        .send_publish(
            "pay.a",
            Publish::build().payload("1".into()).message_id("m-1"),
        )
        .await
        .expect("publish")
        .await
        .expect("ack");
    assert_eq!((first.sequence, first.duplicate), (1, false));
    let again = js
        .send_publish(
            "pay.a",
            Publish::build().payload("1".into()).message_id("m-1"),
        )
        .await
        .expect("publish")
        .await
        .expect("ack");
    assert_eq!((again.sequence, again.duplicate), (1, true));

    let ok = js
        .send_publish(
            "pay.b",
            Publish::build()
                .payload("2".into())
                .expected_last_sequence(1),
        )
        .await
        .expect("publish")
        .await
        .expect("expected last sequence 1 holds");
    assert_eq!(ok.sequence, 2);
    let err = js
        .send_publish(
            "pay.b",
            Publish::build()
                .payload("3".into())
                .expected_last_sequence(1),
        )
        .await
        .expect("publish")
        .await
        .expect_err("wrong last sequence");
    assert!(err.to_string().contains("wrong last sequence: 2"), "{err}");

    let err = js
        .send_publish(
            "pay.b",
            Publish::build()
                .payload("4".into())
                .expected_stream("OTHER"),
        )
        .await
        .expect("publish")
        .await
        .expect_err("wrong stream");
    assert!(
        err.to_string().contains("expected stream does not match"),
        "{err}"
    );

    let info = js
        .get_stream("PAY")
        .await
        .expect("stream")
        .info()
        .await
        .expect("info")
        .clone();
    assert_eq!(info.state.messages, 2);
    assert!(js.delete_stream("PAY").await.expect("delete").success);
}
