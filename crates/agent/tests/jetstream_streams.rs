//! JetStream streams through an in-process agent (embedded control plane, local
//! bucket) with unmodified async-nats: stream administration, acked publishes with
//! sequences from the control plane, de-duplication, expected-header checks, and the
//! one-object-per-window cost property.

use std::time::Duration;

use async_nats::jetstream::{self, stream};
use infinistream_agent::AgentHandle;
use infinistream_config::{NumberOrString, RawAgentConfig};

#[path = "scenarios/streams.rs"]
mod streams;

#[path = "support/in_process.rs"]
mod in_process;

async fn start_agent(dir: &tempfile::TempDir, batch_ms: u64) -> AgentHandle {
    in_process::start(RawAgentConfig {
        batch_write: Some(NumberOrString::Number(batch_ms)),
        ..in_process::local(dir.path())
    })
    .await
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

/// An invalid `Nats-Rollup` is answered exactly as nats-server 2.15.1 answers it: the
/// same publishes go to a real nats-server and to the agent and the PubAck JSON must
/// be equal. On a stream with `allow_rollup_hdrs` it is "rollup value invalid" (10111,
/// the value lowercased and quoted); on one without, "rollup not permitted" (10111)
/// whatever the value; values are case-insensitive; the expected-sequence check comes
/// before the rollup check, and a duplicate Msg-Id wins over an invalid rollup.
#[tokio::test]
async fn invalid_rollup_answers_like_nats_server() {
    let reference = infinistream_testkit::nats::NatsServer::start("")
        .expect("nats-server starts (INFINISTREAM_TOOLS_DIR)");
    let dir = tempfile::tempdir().expect("tempdir");
    let agent = start_agent(&dir, 50).await;
    let ours = async_nats::connect(format!("nats://{}", agent.client_addr()))
        .await
        .expect("connect to the agent");
    let theirs = async_nats::connect(reference.url())
        .await
        .expect("connect to nats-server");
    let streams = [
        (
            "ROLL",
            r#"{"name":"ROLL","subjects":["roll.>"],"allow_rollup_hdrs":true}"#,
        ),
        ("NOROLL", r#"{"name":"NOROLL","subjects":["noroll.>"]}"#),
    ];
    let cases: &[(&str, &[(&str, &str)])] = &[
        ("roll.a", &[("Nats-Rollup", "everything")]),
        ("roll.a", &[("Nats-Rollup", "Bogus")]),
        ("roll.a", &[("Nats-Rollup", "SUB")]),
        ("roll.a", &[("Nats-Rollup", "")]),
        (
            "roll.a",
            &[
                ("Nats-Rollup", "bad"),
                ("Nats-Expected-Last-Sequence", "999"),
            ],
        ),
        ("roll.b", &[("Nats-Msg-Id", "m1")]),
        ("roll.b", &[("Nats-Rollup", "bad"), ("Nats-Msg-Id", "m1")]),
        ("noroll.a", &[("Nats-Rollup", "everything")]),
        ("noroll.a", &[("Nats-Rollup", "sub")]),
        ("noroll.a", &[("Nats-Rollup", "")]),
    ];
    for client in [&ours, &theirs] {
        for (name, config) in streams {
            let reply = client
                .request(format!("$JS.API.STREAM.CREATE.{name}"), config.into())
                .await
                .expect("stream create answered");
            let body: serde_json::Value =
                serde_json::from_slice(&reply.payload).expect("json reply");
            assert!(body.get("error").is_none(), "{name}: {body}");
        }
    }
    for (subject, headers) in cases {
        let mut answers = Vec::new();
        for client in [&ours, &theirs] {
            let mut map = async_nats::HeaderMap::new();
            for (k, v) in *headers {
                map.insert(*k, *v);
            }
            let reply = client
                .request_with_headers(subject.to_string(), map, "x".into())
                .await
                .expect("publish answered");
            let body: serde_json::Value =
                serde_json::from_slice(&reply.payload).expect("json PubAck");
            answers.push(body);
        }
        assert_eq!(
            answers[0], answers[1],
            "{subject} {headers:?}: InfiniStream (left) vs nats-server 2.15.1 (right)"
        );
    }
}
