//! Any agent serves any request; roles decide where the work runs. A split-role group
//! (a proxy-produce agent and a proxy-consume agent of one control plane) serves a
//! whole JetStream application over ONE connection to either agent: what the agent's
//! roles don't cover is forwarded over the peer links to an agent that runs the role,
//! and the answer comes back on the same connection.

use std::net::SocketAddr;
use std::time::Duration;

use async_nats::jetstream::{self, consumer, kv, object_store, stream};
use futures::StreamExt;
use tokio::io::AsyncReadExt;
use tokio::time::timeout;

#[path = "support/procs.rs"]
mod procs;
use procs::{Agent, http_get, remote_agent_cmd, start_agent};

#[path = "scenarios/atomic.rs"]
mod atomic;
#[path = "scenarios/fast.rs"]
mod fast;
#[path = "scenarios/kv.rs"]
mod kv_scenarios;

/// Generous bound for "this should happen"; never a timing assertion.
const EVENTUALLY: Duration = Duration::from_secs(30);

/// Waits until the agent's route mesh links it to `peers` other agents and its view of
/// the registry lists them (`/varz` `routes` and `connect_urls`).
async fn until_linked(agent: &Agent, peers: u64) {
    timeout(EVENTUALLY, async {
        loop {
            let (status, body) = http_get(agent.http, "/varz").await;
            if status == 200 {
                let varz: serde_json::Value = serde_json::from_str(&body).expect("varz JSON");
                let urls = varz["connect_urls"].as_array().map_or(0, Vec::len) as u64;
                if varz["routes"].as_u64() == Some(peers) && urls == peers + 1 {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the route mesh linked the agents");
}

async fn connect(addr: SocketAddr, name: &str) -> async_nats::Client {
    async_nats::ConnectOptions::new()
        .name(name)
        .request_timeout(Some(Duration::from_secs(20)))
        .connect(format!("nats://{addr}"))
        .await
        .expect("connect")
}

/// The v2 form (`$JS.ACK.<domain>.<account hash>.<stream>.<consumer>.….<token>`) of a
/// v1 ack subject, with no domain (`_`).
fn v2_ack_subject(v1: &str) -> String {
    let rest = v1.strip_prefix("$JS.ACK.").expect("a v1 ack subject");
    format!("$JS.ACK._.ACCHASH.{rest}.tok3n")
}

/// One connection does a whole application's flow: stream, acked publishes, a pull
/// consumer with acks (v1 and v2 ack subjects), a push consumer, KV (put/get/update/watch), object store.
async fn whole_flow(client: async_nats::Client, tag: &str) {
    let mut js = jetstream::new(client.clone());
    js.set_timeout(Duration::from_secs(20));
    let name = format!("ORDERS_{tag}");
    let subject = format!("orders.{tag}");
    let s = js
        .create_stream(stream::Config {
            name: name.clone(),
            subjects: vec![format!("{subject}.>")],
            ..Default::default()
        })
        .await
        .expect("create stream");
    assert_eq!(s.cached_info().config.name, name);

    // Acked publishes keep their order (one connection's publishes to a stream go
    // through one peer).
    let mut acks = Vec::new();
    for i in 0..20u64 {
        acks.push(
            js.publish(format!("{subject}.{i}"), format!("m{i}").into())
                .await
                .expect("publish"),
        );
    }
    for (i, ack) in acks.into_iter().enumerate() {
        let ack = ack.await.expect("PubAck");
        assert_eq!(ack.stream, name);
        assert_eq!(ack.sequence, i as u64 + 1, "sequences follow publish order");
    }
    // A core publish (no reply subject) to a stream subject is stored too, and the
    // connection stays usable.
    client
        .publish(format!("{subject}.core"), "core".into())
        .await
        .expect("core publish");
    client.flush().await.expect("flush");
    let mut stream = js.get_stream(&name).await.expect("stream");
    timeout(EVENTUALLY, async {
        loop {
            if stream.info().await.expect("info").state.messages == 21 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the core publish was stored");

    // Direct get and message get.
    let got = stream.get_raw_message(3).await.expect("get message 3");
    assert_eq!(&got.payload[..], b"m2");
    let last = stream
        .get_last_raw_message_by_subject(&format!("{subject}.core"))
        .await
        .expect("last by subject");
    assert_eq!(&last.payload[..], b"core");

    // A pull consumer with explicit acks: everything arrives in order, acks stick.
    let pull = stream
        .create_consumer(consumer::pull::Config {
            durable_name: Some("worker".into()),
            ack_policy: consumer::AckPolicy::Explicit,
            ..Default::default()
        })
        .await
        .expect("create pull consumer");
    let mut messages = pull
        .fetch()
        .max_messages(21)
        .expires(Duration::from_secs(10))
        .messages()
        .await
        .expect("fetch");
    let mut seen = 0u64;
    while let Some(msg) = messages.next().await {
        let msg = msg.expect("message");
        seen += 1;
        assert_eq!(msg.info().expect("ack info").stream_sequence, seen);
        if seen.is_multiple_of(2) {
            // nats-server 2.14's v2 ack subject, as a client that received it sends it
            // back: accepted too (and forwarded by an agent without proxy-consume).
            let reply = msg.reply.clone().expect("ack subject");
            client
                .request(v2_ack_subject(&reply), "+ACK".into())
                .await
                .expect("v2 ack confirmed");
        } else {
            msg.double_ack().await.expect("ack confirmed");
        }
        if seen == 21 {
            break;
        }
    }
    assert_eq!(seen, 21);
    let mut pull = pull;
    let info = pull.info().await.expect("consumer info");
    assert_eq!(info.ack_floor.stream_sequence, 21, "{info:?}");
    assert_eq!(info.num_ack_pending, 0);

    // A push consumer delivering to this connection's inbox.
    let inbox = client.new_inbox();
    let mut deliveries = client.subscribe(inbox.clone()).await.expect("subscribe");
    client.flush().await.expect("flush");
    stream
        .create_consumer(consumer::push::Config {
            durable_name: Some("pusher".into()),
            deliver_subject: inbox,
            ack_policy: consumer::AckPolicy::None,
            ..Default::default()
        })
        .await
        .expect("create push consumer");
    for i in 0..21 {
        let msg = timeout(EVENTUALLY, deliveries.next())
            .await
            .expect("push delivery")
            .expect("subscription open");
        if i == 0 {
            assert_eq!(&msg.payload[..], b"m0");
        }
    }

    // KV: put, get, update, create, delete, purge; then a watch on the same connection.
    kv_scenarios::async_nats_key_value(&js).await;
    let store = js
        .create_key_value(kv::Config {
            bucket: format!("watched_{tag}"),
            history: 3,
            ..Default::default()
        })
        .await
        .expect("create bucket");
    store.put("k", "v1".into()).await.expect("put");
    let mut watch = store.watch_with_history("k").await.expect("watch");
    let first = timeout(EVENTUALLY, watch.next())
        .await
        .expect("watch entry")
        .expect("watch open")
        .expect("entry");
    assert_eq!(&first.value[..], b"v1");
    store.put("k", "v2".into()).await.expect("put");
    let second = timeout(EVENTUALLY, watch.next())
        .await
        .expect("watch update")
        .expect("watch open")
        .expect("entry");
    assert_eq!(&second.value[..], b"v2");

    // Object store: put and get back a multi-chunk object.
    let objects = js
        .create_object_store(object_store::Config {
            bucket: format!("files_{tag}"),
            ..Default::default()
        })
        .await
        .expect("create object store");
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    objects
        .put("blob", &mut &data[..])
        .await
        .expect("object put");
    let mut object = objects.get("blob").await.expect("object get");
    let mut back = Vec::new();
    object.read_to_end(&mut back).await.expect("read object");
    assert_eq!(back.len(), data.len());
    assert!(back == data, "object content round-trips");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_connection_to_any_agent_does_everything() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cp, bucket) = procs::embedded_control_plane(dir.path());
    let produce = start_agent(remote_agent_cmd(
        &dir.path().join("p"),
        &cp,
        &bucket,
        &["--roles", "proxy-produce,jobs"],
    ));
    let consume = start_agent(remote_agent_cmd(
        &dir.path().join("c"),
        &cp,
        &bucket,
        &["--roles", "proxy-consume"],
    ));
    until_linked(&produce, 1).await;
    until_linked(&consume, 1).await;
    let agents = LogsOnFailure(vec![produce, consume]);

    whole_flow(connect(agents.0[0].client, "app-on-produce").await, "p").await;
    whole_flow(connect(agents.0[1].client, "app-on-consume").await, "c").await;
}

/// Two produce agents (one also running jobs) and a consume-only agent of one control
/// plane in `dir`, linked to each other.
async fn two_produce_one_consume(dir: &std::path::Path) -> (procs::ControlPlane, LogsOnFailure) {
    let (cp, bucket) = procs::embedded_control_plane(dir);
    let mut agents = Vec::new();
    for (name, roles) in [
        ("p1", "proxy-produce,jobs"),
        ("p2", "proxy-produce"),
        ("c", "proxy-consume"),
    ] {
        agents.push(start_agent(remote_agent_cmd(
            &dir.join(name),
            &cp,
            &bucket,
            &["--roles", roles],
        )));
    }
    for agent in &agents {
        until_linked(agent, 2).await;
    }
    (cp, LogsOnFailure(agents))
}

/// An atomic batch sent to an agent without proxy-produce is forwarded message by
/// message, and every message of it reaches the same one of two produce agents (the
/// stream's rendezvous peer), which holds it until the commit: 1,000 messages in, one
/// PubAck for 1,000, for several streams (so both produce agents take batches).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn atomic_batches_forwarded_to_one_produce_agent() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_cp, agents) = two_produce_one_consume(dir.path()).await;
    let client = connect(agents.0[2].client, "batches-on-consume").await;
    let js = jetstream::new(client.clone());
    for i in 0..4 {
        let name = format!("FWD{i}");
        let prefix = format!("fwd{i}");
        atomic::create(&js, &name, &prefix, true).await;
        let ack = atomic::batch(&client, &prefix, "b", 1000, None).await;
        assert_eq!(
            ack,
            format!(r#"{{"stream":"{name}","seq":1000,"batch":"b","count":1000}}"#)
        );
    }
}

/// A fast batch sent to an agent without proxy-produce is forwarded message by
/// message to the stream's produce agent, whose flow acks and PubAck come back to the
/// publisher: 2,000 messages paced by flow acks, for several streams.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fast_batches_forwarded_to_one_produce_agent() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_cp, agents) = two_produce_one_consume(dir.path()).await;
    let client = connect(agents.0[2].client, "fast-batches-on-consume").await;
    for i in 0..4 {
        let name = format!("FAST{i}");
        let prefix = format!("fast{i}");
        fast::create(&client, &name, &prefix, true).await;
        let (ack, _) = fast::publish(
            &client,
            &format!("{prefix}.1"),
            "b",
            2000,
            50,
            bytes::Bytes::from_static(b"x"),
        )
        .await;
        assert_eq!(
            ack,
            format!(r#"{{"stream":"{name}","seq":2000,"batch":"b","count":2000}}"#)
        );
    }
}

/// Agents whose logs are printed when the test fails.
struct LogsOnFailure(Vec<Agent>);

impl Drop for LogsOnFailure {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for (i, agent) in self.0.iter_mut().enumerate() {
                eprintln!("--- agent {i} log ---\n{}", agent.child.output());
            }
        }
    }
}
