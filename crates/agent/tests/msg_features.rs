//! Message features of nats-server 2.11–2.14 (issue 17): per-message TTL expiring at
//! its time with subject delete markers, KV per-key TTL seen by a watcher, counters
//! (exact under concurrency across agents), and `first_seq` — each run against an
//! in-process agent on a local bucket and against nats-server 2.15.1, whose answers
//! must match.

use std::time::Duration;

use infinistream_agent::AgentHandle;
use infinistream_config::{NumberOrString, RawAgentConfig, RolesValue};
use infinistream_runtime::CancellationToken;
use infinistream_testkit::nats::NatsServer;

#[path = "scenarios/fast.rs"]
mod fast;
#[path = "scenarios/msg_features.rs"]
mod msg_features;
#[path = "support/procs.rs"]
mod procs;

/// The tests' agent settings: all roles' work on one agent, a 50 ms window.
fn agent_config(dir: &tempfile::TempDir) -> RawAgentConfig {
    RawAgentConfig {
        host: Some("127.0.0.1".into()),
        port: Some(0),
        http_port: Some(0),
        data_dir: Some(dir.path().to_path_buf()),
        roles: Some(RolesValue::List("proxy,jobs".into())),
        batch_write: Some(NumberOrString::Number(50)),
        ..Default::default()
    }
}

async fn start_agent(dir: &tempfile::TempDir) -> AgentHandle {
    start_with(agent_config(dir)).await
}

async fn start_with(raw: RawAgentConfig) -> AgentHandle {
    AgentHandle::start(
        raw.validate().expect("valid config"),
        CancellationToken::new(),
    )
    .await
    .expect("agent starts")
}

async fn connect(url: &str) -> async_nats::Client {
    async_nats::ConnectOptions::new()
        .request_timeout(Some(Duration::from_secs(10)))
        .connect(url)
        .await
        .expect("connect")
}

fn js(client: &async_nats::Client) -> async_nats::jetstream::Context {
    let mut js = async_nats::jetstream::new(client.clone());
    js.set_timeout(Duration::from_secs(20));
    js
}

/// Both servers, fresh: (nats-server's client, InfiniStream's client).
async fn both() -> (
    NatsServer,
    tempfile::TempDir,
    AgentHandle,
    [async_nats::Client; 2],
) {
    let reference = NatsServer::start("# JetStream from the command line\n").expect("nats-server");
    let dir = tempfile::tempdir().expect("tempdir");
    let agent = start_agent(&dir).await;
    let theirs = connect(&reference.url()).await;
    let ours = connect(&format!("nats://{}", agent.client_addr())).await;
    (reference, dir, agent, [theirs, ours])
}

/// TTL 1 s: gone from get, info and a new consumer when its marker is stored, within
/// 1 s of the expiry; the marker expires; the same answers as nats-server's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ttl_expiry_and_subject_delete_marker_as_nats_server() {
    let (_reference, _dir, _agent, [theirs, ours]) = both().await;
    let expected = msg_features::ttl_expiry_and_marker(&theirs).await;
    let got = msg_features::ttl_expiry_and_marker(&ours).await;
    assert_eq!(got, expected);
}

/// KV `limit_markers` and `create_with_ttl` (async-nats): a watcher sees the expiry.
/// The stored `Nats-TTL` header of a TTL raised to the marker TTL, as nats-server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raised_ttl_is_stored_in_the_header_as_nats_server() {
    let (_reference, _dir, _agent, [theirs, ours]) = both().await;
    let expected = msg_features::raised_ttl_header(&theirs).await;
    assert_eq!(expected, serde_json::json!(["5", "1s"]), "nats-server");
    let got = msg_features::raised_ttl_header(&ours).await;
    assert_eq!(got, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kv_key_ttl_watcher_sees_the_expiry() {
    let (_reference, _dir, _agent, [theirs, ours]) = both().await;
    msg_features::kv_key_ttl_watch(&js(&theirs)).await;
    msg_features::kv_key_ttl_watch(&js(&ours)).await;
}

/// Counter PubAcks, stored values and errors, and `first_seq`, as nats-server answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_and_first_seq_as_nats_server() {
    let (_reference, _dir, _agent, [theirs, ours]) = both().await;
    let expected = msg_features::counters(&theirs).await;
    let got = msg_features::counters(&ours).await;
    assert_eq!(got, expected);
    let expected = msg_features::first_seq(&theirs).await;
    let got = msg_features::first_seq(&ours).await;
    assert_eq!(got, expected);
}

/// 4 clients on 2 agents (one embedded control plane, one local bucket) each add 1
/// 10,000 times: the total is 40,000 and every PubAck total is distinct.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_are_exact_from_four_clients_on_two_agents() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cp, bucket) = procs::embedded_control_plane(dir.path());
    let agent = |name: &str| {
        procs::start_agent(procs::remote_agent_cmd(
            &dir.path().join(name),
            &cp,
            &bucket,
            &[],
        ))
    };
    let (a, b) = (agent("a"), agent("b"));
    let mut contexts = Vec::new();
    for addr in [a.client, b.client, a.client, b.client] {
        contexts.push(procs::context(addr).await);
    }
    msg_features::counters_from_many(&contexts, 4, 10_000).await;
}

/// nats.py 2.16 KV with `limit_marker_ttl` and `create(..., msg_ttl=1)`: its watcher
/// sees the put, then the expiry as a purge — on nats-server and on InfiniStream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_py_kv_key_ttl_watcher_sees_the_expiry() {
    let python = infinistream_testkit::tools::venv_bin("python");
    assert!(
        python.exists(),
        "nats.py venv missing at {}: run the README's tool setup",
        python.display()
    );
    let reference = NatsServer::start("# JetStream from the command line\n").expect("nats-server");
    let dir = tempfile::tempdir().expect("tempdir");
    let agent = start_agent(&dir).await;
    let script = dir.path().join("kv_ttl.py");
    std::fs::write(&script, PY_KV_TTL).expect("write script");
    for url in [reference.url(), format!("nats://{}", agent.client_addr())] {
        let output = tokio::time::timeout(
            Duration::from_secs(60),
            tokio::process::Command::new(&python)
                .arg(&script)
                .arg(&url)
                .kill_on_drop(true)
                .output(),
        )
        .await
        .expect("python finished in time")
        .expect("python runs");
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.success() && stdout.contains("KV TTL OK"),
            "nats.py KV TTL script failed against {url}\nstdout:\n{stdout}\nstderr:\n{stderr}"
        );
    }
}

const PY_KV_TTL: &str = r#"
import asyncio, sys
import nats
from nats.js.api import KeyValueConfig

async def main(url):
    nc = await nats.connect(url)
    js = nc.jetstream(timeout=10)
    kv = await js.create_key_value(KeyValueConfig(bucket="pyttl", history=1, limit_marker_ttl=1))
    w = await kv.watch("k")
    first = await w.updates(timeout=20)
    assert first is None, first  # no initial values
    await kv.create("k", b"v", msg_ttl=1)
    put = await w.updates(timeout=20)
    assert put is not None and put.value == b"v" and put.operation is None, put
    gone = await w.updates(timeout=20)
    assert gone is not None and gone.operation == "PURGE", gone
    assert gone.revision > put.revision, (gone, put)
    await js.delete_key_value("pyttl")
    print("KV TTL OK")
    await nc.close()

asyncio.run(main(sys.argv[1]))
"#;

/// Message schedules: stream defaults and every bad schedule header answered with
/// nats-server's code; `@at` and `@every` firings shaped as nats-server's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedules_as_nats_server() {
    let (_reference, _dir, _agent, [theirs, ours]) = both().await;
    let expected = msg_features::schedule_errors(&theirs).await;
    let got = msg_features::schedule_errors(&ours).await;
    assert_eq!(got, expected);
    let expected = msg_features::schedules_fire(&theirs).await;
    let got = msg_features::schedules_fire(&ours).await;
    assert_eq!(got, expected);
}

/// `@every 1s` on a group with a proxy agent and two jobs-only agents, one of them
/// killed with -9 after the fourth firing: every firing's `Nats-Schedule-Next` is one
/// second after the previous firing's — no period skipped, none fired twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_second_fires_once_per_period_across_a_killed_jobs_agent() {
    use futures::StreamExt;
    use infinistream_protocol::jsapi::Timestamp;

    let dir = tempfile::tempdir().expect("tempdir");
    let (cp, bucket) = procs::embedded_control_plane(dir.path());
    let agent = |name: &str, roles: &str| {
        procs::start_agent(procs::remote_agent_cmd(
            &dir.path().join(name),
            &cp,
            &bucket,
            &["--roles", roles],
        ))
    };
    let proxy = agent("p", "proxy");
    let mut first_jobs = agent("j1", "jobs");
    let _second_jobs = agent("j2", "jobs");
    let client = connect(&format!("nats://{}", proxy.client)).await;
    let js = js(&client);
    js.create_stream(async_nats::jetstream::stream::Config {
        name: "TICK".into(),
        subjects: vec!["tick.>".into()],
        allow_message_schedules: true,
        ..Default::default()
    })
    .await
    .expect("stream");
    let mut events = client.subscribe("obs.tick").await.expect("subscribe");
    let stream = js.get_stream("TICK").await.expect("stream");
    stream
        .create_consumer(async_nats::jetstream::consumer::push::Config {
            deliver_subject: "obs.tick".into(),
            filter_subject: "tick.out".into(),
            ack_policy: async_nats::jetstream::consumer::AckPolicy::None,
            ..Default::default()
        })
        .await
        .expect("consumer");
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Nats-Schedule", "@every 1s");
    headers.insert("Nats-Schedule-Target", "tick.out");
    js.publish_with_headers("tick.schedule", headers, "tick".into())
        .await
        .expect("publish")
        .await
        .expect("ack");
    let mut nexts = Vec::new();
    for i in 0..10 {
        let msg = tokio::time::timeout(Duration::from_secs(20), events.next())
            .await
            .expect("a firing")
            .expect("open");
        let next = msg
            .headers
            .as_ref()
            .and_then(|h| h.get("Nats-Schedule-Next"))
            .map(|v| v.as_str().to_owned())
            .expect("Nats-Schedule-Next");
        nexts.push(Timestamp::parse(&next).expect("a time").unix_nanos());
        if i == 3 {
            first_jobs.child.kill().expect("kill -9");
        }
    }
    let steps: Vec<i128> = nexts.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(
        steps.iter().all(|s| *s == 1_000_000_000),
        "every firing is one period after the last: {steps:?}"
    );
}

/// Sends a fast batch (mode `fail`) of five messages, the last one committing, with
/// message 3 given `third`'s headers and payload, all before any answer; returns the
/// answers (an `err` flow message reduced to its type and sequence) and the stream's
/// message count.
async fn fast_batch_refused_third(
    client: &async_nats::Client,
    third: (async_nats::HeaderMap, bytes::Bytes),
) -> (Vec<serde_json::Value>, u64) {
    use futures::StreamExt;
    fast::create(client, "FBR", "fbr", true).await;
    let inbox = client.new_inbox();
    let mut sub = client
        .subscribe(format!("{inbox}.>"))
        .await
        .expect("subscribe");
    client.flush().await.expect("flush");
    for seq in 1..=5u64 {
        let op = match seq {
            1 => 0,
            5 => 2,
            _ => 1,
        };
        let (headers, payload) = if seq == 3 {
            third.clone()
        } else {
            (
                async_nats::HeaderMap::new(),
                bytes::Bytes::from_static(b"x"),
            )
        };
        client
            .publish_with_reply_and_headers(
                "fbr.1",
                fast::reply(&inbox, "b", 0, "fail", seq, op),
                headers,
                payload,
            )
            .await
            .expect("publish");
    }
    let mut answers = Vec::new();
    let mut finals = 0;
    while finals < 3 {
        let msg = tokio::time::timeout(Duration::from_secs(20), sub.next())
            .await
            .unwrap_or_else(|_| panic!("no answer after {answers:?}"))
            .expect("subscription open");
        let mut body: serde_json::Value = serde_json::from_slice(&msg.payload).expect("json");
        if body["type"] == "err" {
            body = serde_json::json!({"type": "err", "seq": body["seq"]});
        }
        finals += usize::from(body.get("type").is_none());
        answers.push(body);
    }
    let info = client
        .request("$JS.API.STREAM.INFO.FBR", bytes::Bytes::new())
        .await
        .expect("info");
    let info: serde_json::Value = serde_json::from_slice(&info.payload).expect("json");
    let messages = info["state"]["messages"].as_u64().expect("messages");
    (answers, messages)
}

/// A fast batch message the agent's batcher refuses (over a 4 KiB publish buffer)
/// ends the batch as nats-server ends it at a refused message (here a failing
/// `Nats-Expected-Last-Sequence`): the error, the PubAck of the two messages before it,
/// and the later two messages (taken before the refusal was answered) answered as of
/// an unknown batch and not stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fast_batch_message_refused_by_the_batcher_ends_the_batch_as_nats_server() {
    let reference = NatsServer::start("# JetStream from the command line\n").expect("nats-server");
    let theirs = connect(&reference.url()).await;
    let mut wrong_last = async_nats::HeaderMap::new();
    wrong_last.insert("Nats-Expected-Last-Sequence", "1");
    let expected =
        fast_batch_refused_third(&theirs, (wrong_last, bytes::Bytes::from_static(b"x"))).await;

    let dir = tempfile::tempdir().expect("tempdir");
    let agent = start_with(RawAgentConfig {
        publish_buffer: Some(4096),
        ..agent_config(&dir)
    })
    .await;
    let ours = connect(&format!("nats://{}", agent.client_addr())).await;
    let got = fast_batch_refused_third(
        &ours,
        (
            async_nats::HeaderMap::new(),
            bytes::Bytes::from(vec![b'y'; 8192]),
        ),
    )
    .await;
    assert_eq!(
        expected.1, 2,
        "nats-server stored the two before: {expected:?}"
    );
    assert_eq!(got, expected);
}
