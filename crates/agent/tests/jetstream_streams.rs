//! JetStream streams through an in-process agent (embedded control plane, local
//! bucket) with unmodified async-nats: stream administration, acked publishes with
//! sequences from the control plane, de-duplication, expected-header checks, and the
//! one-object-per-window cost property.

use std::time::Duration;

use async_nats::jetstream::{self, stream};
use infinistream_agent::AgentHandle;
use infinistream_config::{NumberOrString, RawAgentConfig, RolesValue};
use infinistream_runtime::CancellationToken;

#[path = "scenarios/streams.rs"]
mod streams;

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
    streams::stream_api_basics(&js).await;
}

#[tokio::test]
async fn dedupe_and_expected_headers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let agent = start_agent(&dir, 50).await;
    let (_client, js) = js(&agent).await;
    streams::dedupe_and_expected_headers(&js).await;
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
    // The first publish reaches an idle agent and goes at once (with whatever is queued
    // behind it); the rest wait for the next flush, a window later: two objects (one if
    // all 100 were queued when the first arrived).
    let objects = agent.gateway_metrics().objects_written() - before;
    assert!(
        (1..=2).contains(&objects),
        "100 publishes to 20 streams inside one 500 ms window took {objects} objects"
    );
}
