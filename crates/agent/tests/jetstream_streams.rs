//! JetStream streams through an in-process agent (embedded control plane, local
//! bucket) with unmodified async-nats: stream administration, acked publishes with
//! sequences from the control plane, de-duplication, expected-header checks, and the
//! one-object-per-window cost property.

// `context::Publish` is deprecated in async-nats 0.51 but is still the way its
// JetStream context sends Msg-Id and expected headers; keep it until a replacement lands.
#![allow(deprecated)]

use std::time::Duration;

use async_nats::jetstream::{self, context::Publish, stream};
use futures::StreamExt;
use infinistream_agent::AgentHandle;
use infinistream_config::{NumberOrString, RawAgentConfig, RolesValue};
use infinistream_runtime::CancellationToken;

async fn start_agent(dir: &tempfile::TempDir, batch_ms: u64) -> AgentHandle {
    let raw = RawAgentConfig {
        host: Some("127.0.0.1".into()),
        port: Some(0),
        http_port: Some(0),
        data_dir: Some(dir.path().to_path_buf()),
        roles: Some(RolesValue::List("proxy,jobs".into())),
        batch_write: Some(NumberOrString::Number(batch_ms)),
        ..Default::default()
    };
    AgentHandle::start(
        raw.validate().expect("valid config"),
        CancellationToken::new(),
    )
    .await
    .expect("agent starts")
}

async fn js(agent: &AgentHandle) -> (async_nats::Client, jetstream::Context) {
    let client = async_nats::connect(format!("nats://{}", agent.client_addr()))
        .await
        .expect("connect");
    let mut ctx = jetstream::new(client.clone());
    ctx.set_timeout(Duration::from_secs(10));
    (client, ctx)
}

#[tokio::test]
async fn create_publish_info_delete() {
    let dir = tempfile::tempdir().expect("tempdir");
    let agent = start_agent(&dir, 50).await;
    let (_client, js) = js(&agent).await;

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

#[tokio::test]
async fn dedupe_and_expected_headers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let agent = start_agent(&dir, 50).await;
    let (_client, js) = js(&agent).await;
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
}

#[tokio::test]
async fn many_streams_one_object_per_window() {
    let dir = tempfile::tempdir().expect("tempdir");
    let agent = start_agent(&dir, 500).await;
    let (_client, js) = js(&agent).await;
    for i in 0..20 {
        js.create_stream(stream::Config {
            name: format!("S{i}"),
            subjects: vec![format!("s.{i}")],
            ..Default::default()
        })
        .await
        .expect("create");
    }
    let before = agent.gateway_metrics().objects_written();
    let mut acks = Vec::new();
    for round in 0..5 {
        for i in 0..20 {
            acks.push(
                js.publish(format!("s.{i}"), format!("{round}").into())
                    .await
                    .expect("publish"),
            );
        }
    }
    for ack in acks {
        ack.await.expect("acked");
    }
    let objects = agent.gateway_metrics().objects_written() - before;
    assert!(
        (1..=2).contains(&objects),
        "100 publishes to 20 streams inside one 500 ms window took {objects} objects"
    );
}
