//! Priority groups (ADR-42) as nats-server 2.15.1 has them: `overflow`,
//! `pinned_client` and `prioritized` consumers, their config errors, the pull-request fields and status
//! answers, the `Nats-Pin-Id` header, `CONSUMER.UNPIN`, info's `priority_groups`, and
//! the PINNED / UNPINNED advisories.
//!
//! - one scenario of raw requests (async-nats) runs against nats-server and against an
//!   in-process agent, and the transcripts must be equal;
//! - two in-process agents on one control plane: two async-nats clients pulling one
//!   pinned consumer through different agents see one pinned client, and the pin moves
//!   to the other client once the pinned one stops pulling; overflow serves a client
//!   only past its `min_pending`; a prioritized consumer serves a priority 0 request
//!   parked on one agent before a priority 5 one parked earlier on the other.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, consumer, stream};
use bytes::Bytes;
use futures::StreamExt;
use infinistream_agent::AgentHandle;
use infinistream_config::RawAgentConfig;
use infinistream_control_plane::store::memory::MemoryStore;
use infinistream_control_plane::{ControlPlane, GroupKeys};
use infinistream_runtime::CancellationToken;
use infinistream_testkit::nats::NatsServer;
use infinistream_types::SystemClock;
use serde_json::{Value, json};

#[path = "support/in_process.rs"]
mod in_process;
#[path = "scenarios/priority.rs"]
mod priority;

use priority::{WAIT, api, connect, create, pin_advisories, until_waiting};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn priority_groups_answer_as_nats_server() {
    let reference = NatsServer::start("# JetStream from the command line\n").expect("nats-server");
    let dir = tempfile::tempdir().expect("tempdir");
    let agent = in_process::start_agent(&dir).await;
    let theirs = priority::pinned_and_overflow(&connect(&reference.url()).await).await;
    let ours_client = connect(&format!("nats://{}", agent.client_addr())).await;
    let ours = priority::pinned_and_overflow(&ours_client).await;
    for (i, (a, b)) in theirs.iter().zip(&ours).enumerate() {
        assert_eq!(b, a, "step {i} differs");
    }
    assert_eq!(ours.len(), theirs.len(), "{ours:#?}");
    // pinned, unpinned (admin) of O and of P, pinned again, unpinned (timeout).
    let advisories = ours.iter().filter(|l| l.starts_with("$JS.EVENT")).count();
    assert_eq!(advisories, 5, "{ours:#?}");
    // nats-server's words (serde adds where in the body).
    let v = api(
        &ours_client,
        "$JS.API.CONSUMER.CREATE.S.E",
        Some(create(
            "E",
            json!({"priority_policy": "bogus", "priority_groups": ["A"]}),
        )),
    )
    .await;
    assert_eq!(v["error"]["err_code"], 10025, "{v}");
    let description = v["error"]["description"].as_str().unwrap_or_default();
    assert!(
        description.starts_with(r#"invalid JSON: unknown priority policy: "bogus""#),
        "{v}"
    );
}

/// A control plane (memory store) served on loopback for several agents.
async fn served_control_plane() -> (String, CancellationToken) {
    let groups = GroupKeys::new([("g", "k3y")]).expect("groups");
    let cp = ControlPlane::open(Arc::new(MemoryStore::new()), groups, Arc::new(SystemClock))
        .await
        .expect("control plane");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr: SocketAddr = listener.local_addr().expect("addr");
    let stop = CancellationToken::new();
    let until = stop.clone();
    tokio::spawn(async move {
        let _ = infinistream_control_plane::serve(&cp, listener, until.cancelled_owned()).await;
    });
    (format!("http://{addr}"), stop)
}

async fn agent_on(cp: &str, bucket: &str, dir: &std::path::Path, name: &str) -> AgentHandle {
    in_process::start(RawAgentConfig {
        bucket: Some(bucket.to_owned()),
        group_id: Some("g".into()),
        group_key: Some("k3y".into()),
        control_plane: Some(cp.to_owned()),
        zone: Some("default".into()),
        peer_port: Some(0),
        server_name: Some(name.to_owned()),
        ..in_process::local(dir)
    })
    .await
}

/// Receives from a pull stream until `n` messages came (acking each); their payloads.
async fn take(messages: &mut consumer::pull::Stream, n: usize) -> Vec<String> {
    let mut out = Vec::new();
    while out.len() < n {
        let m = tokio::time::timeout(WAIT, messages.next())
            .await
            .expect("a message in time")
            .expect("stream open")
            .expect("a message");
        m.ack().await.expect("ack");
        out.push(String::from_utf8_lossy(&m.payload).into_owned());
    }
    out
}

async fn publish(js: &jetstream::Context, from: usize, to: usize) {
    for i in from..to {
        js.publish("s.a", Bytes::from(format!("m{i}")))
            .await
            .expect("publish")
            .await
            .expect("acked");
    }
}

async fn pinned_id(js: &jetstream::Context) -> Option<String> {
    let info = js
        .get_stream("S")
        .await
        .expect("stream")
        .consumer_info("P")
        .await
        .expect("consumer info");
    info.priority_groups
        .first()
        .and_then(|g| g.pinned_client_id.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_pinned_client_across_two_agents_and_the_pin_moves() {
    let two = TwoAgents::start().await;
    let (ca, cb) = (two.ca.clone(), two.cb.clone());
    let (ja, jb, stop) = (two.ja.clone(), two.jb.clone(), two.stop.clone());
    // Advisories are watched from agent B; wait until agent A routes them there.
    let mut advisories = pin_advisories(&cb, "S.P").await;
    cb.flush().await.expect("flush");
    let routed = async {
        loop {
            ca.publish("$JS.EVENT.ADVISORY.CONSUMER.PINNED.S.P", "{}".into())
                .await
                .expect("publish");
            if let Ok(Some(_)) =
                tokio::time::timeout(Duration::from_millis(100), advisories.next()).await
            {
                return;
            }
        }
    };
    tokio::time::timeout(WAIT, routed)
        .await
        .expect("interest routed to agent A");
    // Drain the extra probes that crossed while waiting.
    while let Ok(Some(_)) =
        tokio::time::timeout(Duration::from_millis(200), advisories.next()).await
    {}
    let s = ja.get_stream("S").await.expect("stream");
    s.create_consumer(consumer::pull::Config {
        durable_name: Some("P".into()),
        ack_policy: consumer::AckPolicy::Explicit,
        priority_policy: consumer::PriorityPolicy::PinnedClient,
        priority_groups: vec!["A".into()],
        priority_timeout: Duration::from_secs(2),
        ..Default::default()
    })
    .await
    .expect("pinned consumer");
    let on = |js: &jetstream::Context| {
        let js = js.clone();
        async move {
            let c: consumer::PullConsumer = js
                .get_stream("S")
                .await
                .expect("stream")
                .get_consumer("P")
                .await
                .expect("consumer");
            c.stream()
                .group("A")
                .expires(Duration::from_millis(500))
                .max_messages_per_batch(10)
                .messages()
                .await
                .expect("pull stream")
        }
    };
    // Client 1 pulls through agent A first and gets pinned; client 2 (agent B) waits.
    let mut first = on(&ja).await;
    publish(&ja, 0, 5).await;
    assert_eq!(take(&mut first, 5).await, ["m0", "m1", "m2", "m3", "m4"]);
    let mut second = on(&jb).await;
    publish(&jb, 5, 15).await;
    assert_eq!(take(&mut first, 10).await.len(), 10);
    // All 15 went to client 1 (each message is delivered once): 2 got none.
    let pin = pinned_id(&jb).await.expect("one pinned client");
    assert_eq!(pinned_id(&ja).await.as_deref(), Some(pin.as_str()));

    // Client 1 goes away: within priority_timeout the pin moves to client 2.
    drop(first);
    drop(ca);
    publish(&jb, 15, 18).await;
    assert_eq!(take(&mut second, 3).await, ["m15", "m16", "m17"]);
    let moved = pinned_id(&jb).await.expect("pinned again");
    assert_ne!(moved, pin);
    // Advisories, once each for the group: pinned, unpinned (timeout), pinned.
    let mut seen = Vec::new();
    while seen.len() < 3 {
        let m = tokio::time::timeout(WAIT, advisories.next())
            .await
            .expect("advisory in time")
            .expect("advisory");
        let v: Value = serde_json::from_slice(&m.payload).expect("json");
        seen.push((
            m.subject.to_string(),
            v["pinned_id"]
                .as_str()
                .unwrap_or(v["reason"].as_str().unwrap_or(""))
                .to_owned(),
        ));
    }
    // The first is pinned before anything else; the other two may come from two
    // agents, so their order on B's connection is not fixed.
    seen[1..].sort();
    assert_eq!(
        seen,
        [
            (
                "$JS.EVENT.ADVISORY.CONSUMER.PINNED.S.P".to_owned(),
                pin.clone()
            ),
            (
                "$JS.EVENT.ADVISORY.CONSUMER.PINNED.S.P".to_owned(),
                moved.clone()
            ),
            (
                "$JS.EVENT.ADVISORY.CONSUMER.UNPINNED.S.P".to_owned(),
                "timeout".to_owned()
            ),
        ]
    );

    // UNPIN through agent B frees the pin for the next client at once.
    jb.get_stream("S")
        .await
        .expect("stream")
        .unpin_consumer("P", "A")
        .await
        .expect("unpin");
    drop(second);
    let mut third = on(&jb).await;
    publish(&jb, 18, 19).await;
    assert_eq!(take(&mut third, 1).await, ["m18"]);
    assert_ne!(pinned_id(&jb).await.as_deref(), Some(moved.as_str()));
    stop.cancel();
}

/// Two in-process agents on one control plane and bucket, a client and a JetStream
/// context on each, and stream `S` (`s.>`).
struct TwoAgents {
    ca: async_nats::Client,
    cb: async_nats::Client,
    ja: jetstream::Context,
    jb: jetstream::Context,
    stop: CancellationToken,
    _agents: [AgentHandle; 2],
    _dirs: [tempfile::TempDir; 3],
}

impl TwoAgents {
    async fn start() -> TwoAgents {
        let (cp, stop) = served_control_plane().await;
        let dirs = [
            tempfile::tempdir().expect("dir"),
            tempfile::tempdir().expect("dir"),
            tempfile::tempdir().expect("bucket"),
        ];
        let bucket = format!("file://{}", dirs[2].path().display());
        let a = agent_on(&cp, &bucket, dirs[0].path(), "a").await;
        let b = agent_on(&cp, &bucket, dirs[1].path(), "b").await;
        let ca = connect(&format!("nats://{}", a.client_addr())).await;
        let cb = connect(&format!("nats://{}", b.client_addr())).await;
        let (ja, jb) = (jetstream::new(ca.clone()), jetstream::new(cb.clone()));
        ja.create_stream(stream::Config {
            name: "S".into(),
            subjects: vec!["s.>".into()],
            ..Default::default()
        })
        .await
        .expect("stream");
        TwoAgents {
            ca,
            cb,
            ja,
            jb,
            stop,
            _agents: [a, b],
            _dirs: dirs,
        }
    }

    /// [`TwoAgents::start`] with a pull consumer `name` with priority group `A`.
    async fn with_consumer(name: &str, policy: consumer::PriorityPolicy) -> TwoAgents {
        let two = TwoAgents::start().await;
        two.ja
            .get_stream("S")
            .await
            .expect("stream")
            .create_consumer(consumer::pull::Config {
                durable_name: Some(name.into()),
                ack_policy: consumer::AckPolicy::Explicit,
                priority_policy: policy,
                priority_groups: vec!["A".into()],
                ..Default::default()
            })
            .await
            .expect("consumer");
        two
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overflow_serves_a_client_only_past_min_pending_across_agents() {
    let two = TwoAgents::with_consumer("O", consumer::PriorityPolicy::Overflow).await;
    let (ja, jb) = (&two.ja, &two.jb);
    let consumer: consumer::PullConsumer = jb
        .get_stream("S")
        .await
        .expect("stream")
        .get_consumer("O")
        .await
        .expect("consumer");
    // The overflow client on agent B asks for messages only past 10 pending.
    let mut overflow = consumer
        .stream()
        .group("A")
        .min_pending(10)
        .expires(Duration::from_millis(500))
        .max_messages_per_batch(20)
        .messages()
        .await
        .expect("overflow stream");
    publish(ja, 0, 5).await;
    // 5 pending: the overflow client gets nothing; a plain fetch on agent A gets them.
    let plain: consumer::PullConsumer = ja
        .get_stream("S")
        .await
        .expect("stream")
        .get_consumer("O")
        .await
        .expect("consumer");
    let mut batch = plain
        .batch()
        .group("A")
        .max_messages(5)
        .expires(Duration::from_secs(5))
        .messages()
        .await
        .expect("batch");
    let mut got = Vec::new();
    while let Some(m) = tokio::time::timeout(WAIT, batch.next())
        .await
        .expect("in time")
    {
        let m = m.expect("message");
        m.ack().await.expect("ack");
        got.push(String::from_utf8_lossy(&m.payload).into_owned());
    }
    assert_eq!(got, ["m0", "m1", "m2", "m3", "m4"]);
    // 12 pending: the overflow client is served while at least 10 are pending (3).
    publish(ja, 5, 17).await;
    assert_eq!(take(&mut overflow, 3).await, ["m5", "m6", "m7"]);
    let info = ja
        .get_stream("S")
        .await
        .expect("stream")
        .consumer_info("O")
        .await
        .expect("info");
    assert_eq!(
        info.num_pending, 9,
        "the overflow client stops at min_pending"
    );
    two.stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prioritized_answers_as_nats_server() {
    let reference = NatsServer::start("# JetStream from the command line\n").expect("nats-server");
    let dir = tempfile::tempdir().expect("tempdir");
    let agent = in_process::start_agent(&dir).await;
    let theirs = priority::prioritized(&connect(&reference.url()).await).await;
    let ours =
        priority::prioritized(&connect(&format!("nats://{}", agent.client_addr())).await).await;
    for (i, (a, b)) in theirs.iter().zip(&ours).enumerate() {
        assert_eq!(b, a, "step {i} differs");
    }
    assert_eq!(ours.len(), theirs.len(), "{ours:#?}");
    assert!(
        ours.iter().any(|l| l == "m0 to p0 status=None"),
        "{ours:#?}"
    );
}

/// One pull request (async-nats' priority-group API: a fetch, which waits until its
/// expiry for a first message) of `priority` through `js`.
async fn prioritized_batch(js: &jetstream::Context, priority: usize) -> consumer::pull::Batch {
    let consumer: consumer::PullConsumer = js
        .get_stream("S")
        .await
        .expect("stream")
        .get_consumer("Q")
        .await
        .expect("consumer");
    consumer
        .fetch()
        .group("A")
        .priority(priority)
        .max_messages(1)
        .expires(WAIT)
        .messages()
        .await
        .expect("batch")
}

/// The payload of the first message of a one-message batch (acked).
async fn first_of(batch: &mut consumer::pull::Batch) -> String {
    let m = tokio::time::timeout(WAIT, batch.next())
        .await
        .expect("a message in time")
        .expect("batch open")
        .expect("a message");
    m.ack().await.expect("ack");
    String::from_utf8_lossy(&m.payload).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prioritized_serves_the_better_priority_first_across_agents() {
    let two = TwoAgents::with_consumer("Q", consumer::PriorityPolicy::Prioritized).await;
    let (ja, jb, ca, cb) = (&two.ja, &two.jb, &two.ca, &two.cb);
    // Each round: the worse priority parks first, on one agent, then the better one
    // on the other; the first message goes to the better one, the next to the other.
    let rounds = [((jb, cb, 5), (ja, ca, 0)), ((ja, ca, 9), (jb, cb, 3))];
    for (round, ((worse_js, worse_c, worse), (better_js, better_c, better))) in
        rounds.into_iter().enumerate()
    {
        let mut late = prioritized_batch(worse_js, worse).await;
        until_waiting(worse_c, "Q", 1).await;
        let mut first = prioritized_batch(better_js, better).await;
        until_waiting(better_c, "Q", 1).await;
        publish(ja, 2 * round, 2 * round + 1).await;
        assert_eq!(first_of(&mut first).await, format!("m{}", 2 * round));
        publish(ja, 2 * round + 1, 2 * round + 2).await;
        assert_eq!(
            first_of(&mut late).await,
            format!("m{}", 2 * round + 1),
            "priority {worse} waits behind priority {better} on the other agent"
        );
    }
    two.stop.cancel();
}
