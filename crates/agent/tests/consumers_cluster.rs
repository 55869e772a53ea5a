//! Work-queue semantics across agents: two clients pull one durable through two
//! agents sharing a standalone control plane and bucket. Deliveries are claimed in the
//! control plane, so each message reaches exactly one client when all are acked, and
//! the unacked messages of a `kill -9`ed agent reach the other client after ack_wait.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{
    self,
    consumer::{AckPolicy, pull, push},
    stream,
};
use futures::StreamExt;
use tokio::sync::Mutex;

#[path = "support/procs.rs"]
mod procs;
use procs::{Agent, context, remote_agent_cmd, start_agent};

const TOTAL: u64 = 300;

/// Pulls and acks until `seen` holds `total` sequences; returns what this client got.
async fn drain(
    consumer: jetstream::consumer::Consumer<pull::Config>,
    seen: Arc<Mutex<Vec<u64>>>,
    total: usize,
) -> Vec<u64> {
    let mut mine = Vec::new();
    while seen.lock().await.len() < total {
        let mut batch = consumer
            .batch()
            .max_messages(10)
            .expires(Duration::from_millis(500))
            .messages()
            .await
            .expect("batch");
        while let Some(m) = batch.next().await {
            let m = m.expect("message");
            let seq = m.info().expect("info").stream_sequence;
            m.double_ack().await.expect("ack confirmed");
            mine.push(seq);
            seen.lock().await.push(seq);
        }
    }
    mine
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_cluster_work_queue_two_agents() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cp, bucket) = procs::embedded_control_plane(dir.path());
    let agent =
        |name: &str| start_agent(remote_agent_cmd(&dir.path().join(name), &cp, &bucket, &[]));
    let Agent {
        child: mut agent_a,
        client: addr_a,
        ..
    } = agent("a");
    let agent_b = agent("b");
    let addr_b = agent_b.client;
    let js_a = context(addr_a).await;
    let js_b = context(addr_b).await;

    js_a.create_stream(stream::Config {
        name: "WQ".into(),
        subjects: vec!["wq.>".into()],
        ..Default::default()
    })
    .await
    .expect("create stream");
    let mut acks = Vec::new();
    for i in 0..TOTAL {
        acks.push(
            js_a.publish(format!("wq.{}", i % 7), i.to_string().into())
                .await
                .expect("publish"),
        );
    }
    for a in acks {
        a.await.expect("acked");
    }
    let stream_a = js_a.get_stream("WQ").await.expect("stream via a");
    let consumer_a = stream_a
        .create_consumer(pull::Config {
            durable_name: Some("W".into()),
            ack_policy: jetstream::consumer::AckPolicy::Explicit,
            ack_wait: Duration::from_secs(2),
            ..Default::default()
        })
        .await
        .expect("create durable");
    let stream_b = js_b.get_stream("WQ").await.expect("stream via b");
    let consumer_b: jetstream::consumer::Consumer<pull::Config> =
        stream_b.get_consumer("W").await.expect("durable via b");

    // Both clients pull concurrently: every message exactly once.
    let seen = Arc::new(Mutex::new(Vec::new()));
    let total = usize::try_from(TOTAL).expect("fits");
    let (a, b) = tokio::join!(
        drain(consumer_a.clone(), seen.clone(), total),
        drain(consumer_b.clone(), seen.clone(), total),
    );
    let mut all: Vec<u64> = a.iter().chain(b.iter()).copied().collect();
    all.sort_unstable();
    assert_eq!(all, (1..=TOTAL).collect::<Vec<_>>(), "each message once");
    let info = stream_b.consumer_info("W").await.expect("info");
    assert_eq!(info.num_ack_pending, 0);
    assert_eq!(info.ack_floor.stream_sequence, TOTAL);

    // kill -9 agent a while its client holds unacked deliveries: they reach b's client
    // after ack_wait, as redeliveries.
    let mut acks = Vec::new();
    for i in 0..20u64 {
        acks.push(
            js_b.publish("wq.k", i.to_string().into())
                .await
                .expect("publish"),
        );
    }
    for a in acks {
        a.await.expect("acked");
    }
    let mut held = BTreeSet::new();
    while held.len() < 10 {
        let mut batch = consumer_a
            .batch()
            .max_messages(10 - held.len())
            .expires(Duration::from_secs(5))
            .messages()
            .await
            .expect("batch");
        while let Some(m) = batch.next().await {
            held.insert(m.expect("message").info().expect("info").stream_sequence);
        }
    }
    agent_a.kill().expect("kill -9 agent a");
    let mut got = BTreeSet::new();
    let mut redelivered = BTreeSet::new();
    while got.len() < 20 {
        let mut batch = consumer_b
            .batch()
            .max_messages(20)
            .expires(Duration::from_secs(5))
            .messages()
            .await
            .expect("batch");
        while let Some(m) = batch.next().await {
            let m = m.expect("message");
            let meta = m.info().expect("info");
            if meta.delivered > 1 {
                redelivered.insert(meta.stream_sequence);
            }
            got.insert(meta.stream_sequence);
            m.double_ack().await.expect("ack");
        }
    }
    assert_eq!(
        got,
        (TOTAL + 1..=TOTAL + 20).collect::<BTreeSet<_>>(),
        "every message reached the surviving client"
    );
    assert_eq!(redelivered, held, "the killed agent's deliveries came back");
}

/// Receives `n` messages on `sub` (payloads in order), each within `bound`.
async fn receive(sub: &mut async_nats::Subscriber, n: usize, bound: Duration) -> Vec<String> {
    let mut got = Vec::new();
    while got.len() < n {
        let m = tokio::time::timeout(bound, sub.next())
            .await
            .unwrap_or_else(|_| panic!("push delivery {} did not come", got.len() + 1))
            .expect("subscription open");
        got.push(String::from_utf8_lossy(&m.payload).into_owned());
    }
    got
}

/// A push consumer is served by the agent its subscriber is connected to, found
/// through the control plane's consumer events (created through another agent while
/// the subscriber waits) and through this agent's own subscription changes (a
/// subscriber arriving for an existing consumer) — well before the scanner's 10 s
/// safety rescan.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_consumers_start_on_the_subscribers_agent() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cp, bucket) = procs::embedded_control_plane(dir.path());
    let agent =
        |name: &str| start_agent(remote_agent_cmd(&dir.path().join(name), &cp, &bucket, &[]));
    let agent_a = agent("a");
    let agent_b = agent("b");
    let js_a = context(agent_a.client).await;
    let client_b = async_nats::connect(format!("nats://{}", agent_b.client))
        .await
        .expect("connect b");
    let stream_a = js_a
        .create_stream(stream::Config {
            name: "PUSHX".into(),
            subjects: vec!["pushx.>".into()],
            ..Default::default()
        })
        .await
        .expect("create stream");
    for i in 0..5 {
        js_a.publish("pushx.k", i.to_string().into())
            .await
            .expect("publish")
            .await
            .expect("acked");
    }
    let want: Vec<String> = (0..5).map(|i| i.to_string()).collect();
    let bound = Duration::from_secs(8);

    // The subscriber on b first, the consumer created through a.
    let mut first = client_b.subscribe("deliver.first").await.expect("sub");
    client_b.flush().await.expect("flush");
    stream_a
        .create_consumer(push::Config {
            durable_name: Some("P1".into()),
            deliver_subject: "deliver.first".into(),
            ack_policy: AckPolicy::None,
            ..Default::default()
        })
        .await
        .expect("create P1");
    assert_eq!(receive(&mut first, 5, bound).await, want);

    // The consumer first (no subscriber anywhere), then a subscriber on b.
    stream_a
        .create_consumer(push::Config {
            durable_name: Some("P2".into()),
            deliver_subject: "deliver.second".into(),
            ack_policy: AckPolicy::None,
            ..Default::default()
        })
        .await
        .expect("create P2");
    let mut second = client_b.subscribe("deliver.second").await.expect("sub");
    client_b.flush().await.expect("flush");
    assert_eq!(receive(&mut second, 5, bound).await, want);
}

/// A JetStream API request with a raw JSON body; the parsed reply.
async fn api(client: &async_nats::Client, subject: &str, body: &str) -> serde_json::Value {
    let reply = client
        .request(subject.to_owned(), body.to_owned().into())
        .await
        .expect("api reply");
    serde_json::from_slice(&reply.payload).expect("json reply")
}

/// Pause across agents: the pause lives in the consumer's stored config and the
/// control plane hands out nothing for a paused consumer, so a pull on agent A and a
/// push subscriber on agent B are both held, and both get their messages once the
/// consumers are resumed (through agent A).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_holds_pull_and_push_on_every_agent() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cp, bucket) = procs::embedded_control_plane(dir.path());
    let agent =
        |name: &str| start_agent(remote_agent_cmd(&dir.path().join(name), &cp, &bucket, &[]));
    let agent_a = agent("a");
    let agent_b = agent("b");
    let js_a = context(agent_a.client).await;
    let client_a = js_a.client();
    let client_b = async_nats::connect(format!("nats://{}", agent_b.client))
        .await
        .expect("connect b");
    js_a.create_stream(stream::Config {
        name: "PZ".into(),
        subjects: vec!["pz.>".into()],
        ..Default::default()
    })
    .await
    .expect("create stream");
    for i in 0..3 {
        js_a.publish("pz.k", i.to_string().into())
            .await
            .expect("publish")
            .await
            .expect("acked");
    }
    let until = "2099-01-01T00:00:00Z";
    let created = api(
        &client_a,
        "$JS.API.CONSUMER.CREATE.PZ.PULL",
        &format!(r#"{{"stream_name":"PZ","config":{{"durable_name":"PULL","ack_policy":"explicit","pause_until":"{until}"}}}}"#),
    )
    .await;
    assert!(created["error"].is_null(), "{created}");
    let created = api(
        &client_a,
        "$JS.API.CONSUMER.CREATE.PZ.PUSH",
        &format!(r#"{{"stream_name":"PZ","config":{{"durable_name":"PUSH","ack_policy":"none","deliver_subject":"pzout","idle_heartbeat":300000000,"pause_until":"{until}"}}}}"#),
    )
    .await;
    assert!(created["error"].is_null(), "{created}");

    // Push on b: while paused, the first thing its subscriber gets is an idle
    // heartbeat that says nothing was delivered (unpaused, the runtime claims before
    // its first heartbeat is due).
    let mut pushed = client_b.subscribe("pzout").await.expect("sub");
    client_b.flush().await.expect("flush");
    let first = tokio::time::timeout(Duration::from_secs(20), pushed.next())
        .await
        .expect("heartbeat in time")
        .expect("subscription open");
    assert_eq!(first.status.map(|s| s.as_u16()), Some(100), "{first:?}");
    let last_stream = first
        .headers
        .as_ref()
        .and_then(|h| h.get("Nats-Last-Stream"))
        .map(|v| v.as_str().to_owned());
    assert_eq!(last_stream.as_deref(), Some("0"), "{first:?}");

    // Pull on a: no_wait finds nothing although three messages wait; a waiting
    // request stays parked.
    let inbox = client_a.new_inbox();
    let mut pulled = client_a.subscribe(inbox.clone()).await.expect("sub");
    client_a
        .publish_with_reply(
            "$JS.API.CONSUMER.MSG.NEXT.PZ.PULL",
            inbox.clone(),
            r#"{"batch":1,"no_wait":true}"#.into(),
        )
        .await
        .expect("pull");
    let m = tokio::time::timeout(Duration::from_secs(20), pulled.next())
        .await
        .expect("reply in time")
        .expect("open");
    assert_eq!(m.status.map(|s| s.as_u16()), Some(404), "{m:?}");
    client_a
        .publish_with_reply(
            "$JS.API.CONSUMER.MSG.NEXT.PZ.PULL",
            inbox,
            r#"{"batch":3,"expires":30000000000}"#.into(),
        )
        .await
        .expect("pull");
    client_a.flush().await.expect("flush");
    let info = api(&client_b, "$JS.API.CONSUMER.INFO.PZ.PULL", "").await;
    assert_eq!(info["paused"], true, "{info}");
    assert!(
        info["pause_remaining"].as_i64().is_some_and(|n| n > 0),
        "{info}"
    );

    // Resume both through a: both agents deliver.
    for name in ["PULL", "PUSH"] {
        let r = api(&client_a, &format!("$JS.API.CONSUMER.PAUSE.PZ.{name}"), "").await;
        assert_eq!(r["paused"], false, "{r}");
    }
    let mut got = Vec::new();
    while got.len() < 3 {
        let m = tokio::time::timeout(Duration::from_secs(20), pulled.next())
            .await
            .expect("pulled message in time")
            .expect("open");
        assert!(m.status.is_none(), "{m:?}");
        got.push(String::from_utf8_lossy(&m.payload).into_owned());
    }
    assert_eq!(got, ["0", "1", "2"]);
    let mut got = Vec::new();
    while got.len() < 3 {
        let m = tokio::time::timeout(Duration::from_secs(20), pushed.next())
            .await
            .expect("pushed message in time")
            .expect("open");
        if m.status.is_none() {
            got.push(String::from_utf8_lossy(&m.payload).into_owned());
        }
    }
    assert_eq!(got, ["0", "1", "2"]);
}
