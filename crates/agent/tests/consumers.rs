//! Consumers through an in-process agent with unmodified async-nats: administration
//! (create / info / names / list / delete with nats-server's error codes), pull
//! requests and their status lines, every ack kind with its observable effect,
//! max_deliver, backoff, max_ack_pending, deliver policies, filters, push consumers
//! with flow control and heartbeats, and ordered consumers surviving a deleted
//! consumer.
//!
//! Status lines are checked on raw pull requests (an inbox subscription sees the
//! `404` / `408` / `409` / `100` headers that async-nats consumes internally).

use std::time::Duration;

use async_nats::jetstream::{
    self,
    consumer::{self, AckPolicy, DeliverPolicy, pull, push},
    stream,
};
use bytes::Bytes;
use futures::StreamExt;
use infinistream_agent::AgentHandle;

#[path = "support/in_process.rs"]
mod in_process;
#[path = "support/py_client.rs"]
mod py_client;
// This binary runs two of the shared consumer scenarios.
#[allow(dead_code)]
#[path = "scenarios/consumers.rs"]
mod scenarios;
use scenarios::{ack_sync, fetch_n, make_stream, publish_payloads};

const WAIT: Duration = Duration::from_secs(20);

struct Setup {
    dir: tempfile::TempDir,
    agent: AgentHandle,
    client: async_nats::Client,
    js: jetstream::Context,
}

async fn setup() -> Setup {
    let dir = tempfile::tempdir().expect("tempdir");
    let agent = in_process::start_agent(&dir).await;
    let client = async_nats::connect(format!("nats://{}", agent.client_addr()))
        .await
        .expect("connect");
    let mut js = jetstream::new(client.clone());
    js.set_timeout(Duration::from_secs(10));
    Setup {
        dir,
        agent,
        client,
        js,
    }
}

/// A raw JetStream API request; the parsed JSON reply.
async fn api(
    client: &async_nats::Client,
    subject: &str,
    body: serde_json::Value,
) -> serde_json::Value {
    let reply = client
        .request(subject.to_owned(), Bytes::from(body.to_string()))
        .await
        .expect("api reply");
    serde_json::from_slice(&reply.payload).expect("json reply")
}

/// Sends a raw pull request and returns the subscription its replies arrive on.
async fn raw_pull(
    client: &async_nats::Client,
    stream: &str,
    consumer: &str,
    body: serde_json::Value,
) -> async_nats::Subscriber {
    let inbox = client.new_inbox();
    let sub = client.subscribe(inbox.clone()).await.expect("subscribe");
    client
        .publish_with_reply(
            format!("$JS.API.CONSUMER.MSG.NEXT.{stream}.{consumer}"),
            inbox,
            Bytes::from(body.to_string()),
        )
        .await
        .expect("pull request");
    client.flush().await.expect("flush");
    sub
}

async fn next(sub: &mut async_nats::Subscriber) -> async_nats::Message {
    tokio::time::timeout(WAIT, sub.next())
        .await
        .expect("a reply in time")
        .expect("subscription open")
}

fn status(msg: &async_nats::Message) -> Option<(u16, String)> {
    msg.status
        .map(|s| (s.as_u16(), msg.description.clone().unwrap_or_default()))
}

fn header(msg: &async_nats::Message, name: &str) -> Option<String> {
    msg.headers
        .as_ref()
        .and_then(|h| h.get(name))
        .map(|v| v.as_str().to_owned())
}

async fn info(stream: &stream::Stream, name: &str) -> consumer::Info {
    stream.consumer_info(name).await.expect("consumer info")
}

fn sseqs(msgs: &[jetstream::Message]) -> Vec<u64> {
    msgs.iter()
        .map(|m| m.info().expect("ack info").stream_sequence)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_create_info_names_list_delete() {
    let s = setup().await;
    let stream = make_stream(&s.js, "ADM", &["adm.>"]).await;
    publish_payloads(&s.js, "adm.a", &["1", "2"]).await;

    let mut c = stream
        .create_consumer(pull::Config {
            durable_name: Some("D".into()),
            ack_policy: AckPolicy::Explicit,
            ..Default::default()
        })
        .await
        .expect("create durable");
    let i = c.info().await.expect("info").clone();
    assert_eq!(i.name, "D");
    assert_eq!(i.num_pending, 2);
    assert_eq!(
        i.config.ack_wait,
        Duration::from_secs(30),
        "defaults filled"
    );
    assert_eq!(i.config.max_ack_pending, 1000);
    assert_eq!(i.config.max_waiting, 512);
    // The same config again is accepted (idempotent create).
    stream
        .create_consumer(pull::Config {
            durable_name: Some("D".into()),
            ack_policy: AckPolicy::Explicit,
            ..Default::default()
        })
        .await
        .expect("idempotent create");

    // action=create with another config: 10148; action=update of a missing one: 10149.
    let r = api(
        &s.client,
        "$JS.API.CONSUMER.CREATE.ADM.D",
        serde_json::json!({"stream_name":"ADM","action":"create",
            "config":{"durable_name":"D","ack_policy":"explicit","description":"other"}}),
    )
    .await;
    assert_eq!(r["error"]["err_code"], 10148, "{r}");
    let r = api(
        &s.client,
        "$JS.API.CONSUMER.CREATE.ADM.NOPE",
        serde_json::json!({"stream_name":"ADM","action":"update",
            "config":{"name":"NOPE","ack_policy":"explicit"}}),
    )
    .await;
    assert_eq!(r["error"]["err_code"], 10149, "{r}");
    // Create-or-update with an editable change updates in place; a non-editable one
    // is refused with nats-server's 10012.
    let r = api(
        &s.client,
        "$JS.API.CONSUMER.CREATE.ADM.D",
        serde_json::json!({"stream_name":"ADM",
            "config":{"durable_name":"D","ack_policy":"explicit","description":"updated","max_ack_pending":10}}),
    )
    .await;
    assert_eq!(r["config"]["description"], "updated", "{r}");
    assert_eq!(r["config"]["max_ack_pending"], 10, "{r}");
    assert_eq!(r["num_pending"], 2, "state kept: {r}");
    let r = api(
        &s.client,
        "$JS.API.CONSUMER.CREATE.ADM.D",
        serde_json::json!({"stream_name":"ADM",
            "config":{"durable_name":"D","ack_policy":"all"}}),
    )
    .await;
    assert_eq!(r["error"]["err_code"], 10012, "{r}");
    // Filter in the subject must match the config.
    let r = api(
        &s.client,
        "$JS.API.CONSUMER.CREATE.ADM.F.adm.a",
        serde_json::json!({"stream_name":"ADM","config":{"name":"F","ack_policy":"explicit","filter_subject":"adm.a"}}),
    )
    .await;
    assert_eq!(r["name"], "F", "{r}");
    let r = api(
        &s.client,
        "$JS.API.CONSUMER.CREATE.ADM.G.adm.a",
        serde_json::json!({"stream_name":"ADM","config":{"name":"G","ack_policy":"explicit","filter_subject":"adm.b"}}),
    )
    .await;
    assert_eq!(r["error"]["code"], 400, "{r}");
    // A bad config is refused with nats-server's status (by_start_sequence without a sequence).
    let r = api(
        &s.client,
        "$JS.API.CONSUMER.CREATE.ADM.H",
        serde_json::json!({"stream_name":"ADM","config":{"name":"H","ack_policy":"explicit","deliver_policy":"by_start_sequence"}}),
    )
    .await;
    assert_eq!(r["error"]["code"], 400, "{r}");
    // Unknown stream: 10059.
    let r = api(
        &s.client,
        "$JS.API.CONSUMER.CREATE.NOSTREAM.X",
        serde_json::json!({"stream_name":"NOSTREAM","config":{"name":"X"}}),
    )
    .await;
    assert_eq!(r["error"]["err_code"], 10059, "{r}");

    // Ephemeral: a generated 8-character name, inactive threshold defaulted.
    let mut e = stream
        .create_consumer(pull::Config {
            ack_policy: AckPolicy::Explicit,
            ..Default::default()
        })
        .await
        .expect("ephemeral");
    let ei = e.info().await.expect("info").clone();
    assert_eq!(ei.name.len(), 8, "{}", ei.name);
    assert_eq!(ei.config.inactive_threshold, Duration::from_secs(5));

    let mut names: Vec<String> = stream
        .consumer_names()
        .map(|n| n.expect("name"))
        .collect()
        .await;
    names.sort();
    let mut expected = vec!["D".to_owned(), "F".to_owned(), ei.name.clone()];
    expected.sort();
    assert_eq!(names, expected);
    let listed: Vec<consumer::Info> = stream.consumers().map(|c| c.expect("info")).collect().await;
    assert_eq!(listed.len(), 3);
    let f = listed.iter().find(|c| c.name == "F").expect("F listed");
    assert_eq!(f.num_pending, 2);
    // Paging: offset past the first two names.
    let r = api(
        &s.client,
        "$JS.API.CONSUMER.NAMES.ADM",
        serde_json::json!({"offset": 2}),
    )
    .await;
    assert_eq!(r["total"], 3, "{r}");
    assert_eq!(r["consumers"].as_array().map(Vec::len), Some(1), "{r}");

    assert_eq!(info(&stream, "D").await.name, "D");
    stream.delete_consumer("D").await.expect("delete");
    let r = api(
        &s.client,
        "$JS.API.CONSUMER.INFO.ADM.D",
        serde_json::json!({}),
    )
    .await;
    assert_eq!(r["error"]["err_code"], 10014, "{r}");
    let r = api(
        &s.client,
        "$JS.API.CONSUMER.DELETE.ADM.D",
        serde_json::json!({}),
    )
    .await;
    assert_eq!(r["error"]["err_code"], 10014, "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_batch_and_status_replies() {
    let s = setup().await;
    let stream = make_stream(&s.js, "PULL", &["pull.>"]).await;
    publish_payloads(&s.js, "pull.a", &["a", "b", "c"]).await;
    let c = stream
        .create_consumer(pull::Config {
            durable_name: Some("P".into()),
            ack_policy: AckPolicy::Explicit,
            ..Default::default()
        })
        .await
        .expect("create");

    // fetch (no_wait) returns what there is.
    let mut batch = c.fetch().max_messages(5).messages().await.expect("fetch");
    let mut got = Vec::new();
    while let Some(m) = batch.next().await {
        got.push(m.expect("message"));
    }
    assert_eq!(sseqs(&got), vec![1, 2, 3]);
    let meta = got[0].info().expect("info");
    assert_eq!(
        (meta.delivered, meta.consumer_sequence, meta.pending),
        (1, 1, 2)
    );
    assert_eq!(got[2].info().expect("info").pending, 0);
    assert_eq!(got[1].payload.as_ref(), b"b");

    // no_wait with nothing available: 404 No Messages.
    let mut sub = raw_pull(
        &s.client,
        "PULL",
        "P",
        serde_json::json!({"batch":5,"no_wait":true}),
    )
    .await;
    assert_eq!(
        status(&next(&mut sub).await),
        Some((404, "No Messages".into()))
    );

    // expires with nothing: 408 Request Timeout with what was left.
    let mut sub = raw_pull(
        &s.client,
        "PULL",
        "P",
        serde_json::json!({"batch":2,"expires":200_000_000}),
    )
    .await;
    let m = next(&mut sub).await;
    assert_eq!(status(&m), Some((408, "Request Timeout".into())));
    assert_eq!(header(&m, "Nats-Pending-Messages").as_deref(), Some("2"));
    assert_eq!(header(&m, "Nats-Pending-Bytes").as_deref(), Some("0"));

    // idle heartbeat while waiting.
    let mut sub = raw_pull(
        &s.client,
        "PULL",
        "P",
        serde_json::json!({"batch":1,"expires":2_000_000_000u64,"idle_heartbeat":300_000_000}),
    )
    .await;
    let m = next(&mut sub).await;
    assert_eq!(status(&m), Some((100, "Idle Heartbeat".into())));
    assert_eq!(header(&m, "Nats-Last-Consumer").as_deref(), Some("3"));
    assert_eq!(header(&m, "Nats-Last-Stream").as_deref(), Some("3"));
    drop(sub);

    // A parked request is woken by a publish.
    let mut sub = raw_pull(
        &s.client,
        "PULL",
        "P",
        serde_json::json!({"batch":1,"expires":10_000_000_000u64}),
    )
    .await;
    publish_payloads(&s.js, "pull.a", &["d"]).await;
    let m = next(&mut sub).await;
    assert_eq!(m.payload.as_ref(), b"d");
    assert!(
        m.reply
            .as_deref()
            .is_some_and(|r| r.starts_with("$JS.ACK.PULL.P.1.4.4.")),
        "{:?}",
        m.reply
    );

    // max_bytes smaller than the next message: 409 Message Size Exceeds MaxBytes.
    publish_payloads(&s.js, "pull.a", &[&"x".repeat(100)]).await;
    let mut sub = raw_pull(
        &s.client,
        "PULL",
        "P",
        serde_json::json!({"batch":5,"max_bytes":50}),
    )
    .await;
    let m = next(&mut sub).await;
    assert_eq!(
        status(&m),
        Some((409, "Message Size Exceeds MaxBytes".into()))
    );
    assert_eq!(header(&m, "Nats-Pending-Messages").as_deref(), Some("5"));
    assert_eq!(header(&m, "Nats-Pending-Bytes").as_deref(), Some("50"));

    // Consumer limits: max_waiting.
    stream
        .create_consumer(pull::Config {
            durable_name: Some("W".into()),
            ack_policy: AckPolicy::Explicit,
            deliver_policy: DeliverPolicy::New,
            max_waiting: 1,
            ..Default::default()
        })
        .await
        .expect("create W");
    let mut parked = raw_pull(
        &s.client,
        "PULL",
        "W",
        serde_json::json!({"batch":1,"expires":10_000_000_000u64}),
    )
    .await;
    while info(&stream, "W").await.num_waiting != 1 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut sub = raw_pull(
        &s.client,
        "PULL",
        "W",
        serde_json::json!({"batch":1,"expires":10_000_000_000u64}),
    )
    .await;
    assert_eq!(
        status(&next(&mut sub).await),
        Some((409, "Exceeded MaxWaiting".into()))
    );
    assert_eq!(info(&stream, "W").await.num_waiting, 1);

    // Deleting the consumer answers parked requests with 409 Consumer Deleted.
    stream.delete_consumer("W").await.expect("delete");
    assert_eq!(
        status(&next(&mut parked).await),
        Some((409, "Consumer Deleted".into()))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ack_kinds_and_their_effects() {
    let s = setup().await;
    let stream = make_stream(&s.js, "ACK", &["ack.>"]).await;
    publish_payloads(&s.js, "ack.a", &["1", "2", "3", "4", "5"]).await;
    let c = stream
        .create_consumer(pull::Config {
            durable_name: Some("A".into()),
            ack_policy: AckPolicy::Explicit,
            ack_wait: Duration::from_secs(30),
            ..Default::default()
        })
        .await
        .expect("create");
    let msgs = fetch_n(&c, 5).await;
    assert_eq!(sseqs(&msgs), vec![1, 2, 3, 4, 5]);
    assert_eq!(info(&stream, "A").await.num_ack_pending, 5);

    // +ACK (double ack: confirmed by the agent once the control plane has it).
    msgs[0].double_ack().await.expect("double ack");
    let i = info(&stream, "A").await;
    assert_eq!(i.num_ack_pending, 4);
    assert_eq!(i.ack_floor.stream_sequence, 1);

    // +TERM: never redelivered.
    ack_sync(&s.client, &msgs[2], "+TERM").await;
    assert_eq!(info(&stream, "A").await.num_ack_pending, 3);

    // -NAK: redelivered at once with delivered = 2.
    ack_sync(&s.client, &msgs[1], "-NAK").await;
    let again = fetch_n(&c, 1).await;
    let meta = again[0].info().expect("info");
    assert_eq!((meta.stream_sequence, meta.delivered), (2, 2));
    let i = info(&stream, "A").await;
    assert_eq!(i.num_redelivered, 1);
    assert_eq!(i.num_ack_pending, 3);

    // -NAK with a delay: not available before it passes, then redelivered.
    ack_sync(&s.client, &again[0], "-NAK {\"delay\": 1500000000}").await;
    let mut sub = raw_pull(
        &s.client,
        "ACK",
        "A",
        serde_json::json!({"batch":1,"no_wait":true}),
    )
    .await;
    assert_eq!(
        status(&next(&mut sub).await),
        Some((404, "No Messages".into()))
    );
    let later = fetch_n(&c, 1).await;
    let meta = later[0].info().expect("info");
    assert_eq!((meta.stream_sequence, meta.delivered), (2, 3));

    // An empty payload acks; +WPI keeps a message pending without redelivery.
    ack_sync(&s.client, &later[0], "").await;
    ack_sync(&s.client, &msgs[3], "+WPI").await;
    assert_eq!(
        info(&stream, "A").await.num_ack_pending,
        2,
        "WPI leaves it pending"
    );
    ack_sync(&s.client, &msgs[3], "+ACK").await;
    // +NXT acks and delivers the next message to the ack's reply subject.
    publish_payloads(&s.js, "ack.a", &["6"]).await;
    let inbox = s.client.new_inbox();
    let mut sub = s.client.subscribe(inbox.clone()).await.expect("sub");
    s.client
        .publish_with_reply(
            msgs[4].reply.clone().expect("reply"),
            inbox,
            Bytes::from_static(b"+NXT"),
        )
        .await
        .expect("+NXT");
    let m = next(&mut sub).await;
    assert_eq!(m.payload.as_ref(), b"6");
    let i = info(&stream, "A").await;
    assert_eq!(i.num_ack_pending, 1, "5 acked by +NXT, 6 pending");
    assert_eq!(i.delivered.stream_sequence, 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ack_wait_redelivery_wpi_and_max_deliver() {
    let s = setup().await;
    let stream = make_stream(&s.js, "RED", &["red.>"]).await;
    publish_payloads(&s.js, "red.a", &["1"]).await;
    let c = stream
        .create_consumer(pull::Config {
            durable_name: Some("R".into()),
            ack_policy: AckPolicy::Explicit,
            ack_wait: Duration::from_millis(800),
            max_deliver: 2,
            ..Default::default()
        })
        .await
        .expect("create");
    let first = fetch_n(&c, 1).await;
    assert_eq!(first[0].info().expect("info").delivered, 1);
    // +WPI resets the ack timer (the behaviour under test is time itself).
    tokio::time::sleep(Duration::from_millis(500)).await;
    ack_sync(&s.client, &first[0], "+WPI").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut sub = raw_pull(
        &s.client,
        "RED",
        "R",
        serde_json::json!({"batch":1,"no_wait":true}),
    )
    .await;
    assert_eq!(
        status(&next(&mut sub).await),
        Some((404, "No Messages".into())),
        "still within the extended ack_wait"
    );
    // Not acked: redelivered after ack_wait, delivered = 2.
    let second = fetch_n(&c, 1).await;
    assert_eq!(second[0].info().expect("info").delivered, 2);
    // max_deliver 2: never a third time.
    let mut sub = raw_pull(
        &s.client,
        "RED",
        "R",
        serde_json::json!({"batch":1,"expires":2_000_000_000u64}),
    )
    .await;
    assert_eq!(status(&next(&mut sub).await).map(|s| s.0), Some(408));
    let i = info(&stream, "R").await;
    assert_eq!(i.num_ack_pending, 0, "given up after max_deliver");
    assert_eq!(i.delivered.stream_sequence, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backoff_and_max_ack_pending() {
    let s = setup().await;
    let stream = make_stream(&s.js, "BO", &["bo.>"]).await;
    publish_payloads(&s.js, "bo.a", &["1", "2", "3", "4"]).await;
    let c = stream
        .create_consumer(pull::Config {
            durable_name: Some("B".into()),
            ack_policy: AckPolicy::Explicit,
            backoff: vec![Duration::from_millis(300), Duration::from_millis(600)],
            max_deliver: 3,
            max_ack_pending: 2,
            ..Default::default()
        })
        .await
        .expect("create");
    // max_ack_pending 2: a request for 4 gets 2.
    let mut batch = c.fetch().max_messages(4).messages().await.expect("fetch");
    let mut got = Vec::new();
    while let Some(m) = batch.next().await {
        got.push(m.expect("message"));
    }
    assert_eq!(sseqs(&got), vec![1, 2], "blocked at max_ack_pending");
    // Acking one frees room for one more.
    ack_sync(&s.client, &got[1], "+ACK").await;
    let more = fetch_n(&c, 1).await;
    let next_seq = more[0].info().expect("info");
    // Either seq 3 or seq 1 redelivered after its 300 ms backoff step.
    assert!(
        next_seq.stream_sequence == 3 || (next_seq.stream_sequence == 1 && next_seq.delivered == 2),
        "seq {} delivered {}",
        next_seq.stream_sequence,
        next_seq.delivered
    );
    ack_sync(&s.client, &more[0], "+ACK").await;
    // Seq 1 is never acked: redelivered on the backoff schedule, 3 deliveries in all.
    let mut deliveries_of_1 = vec![1];
    if next_seq.stream_sequence == 1 {
        deliveries_of_1.push(next_seq.delivered);
    }
    while deliveries_of_1.len() < 3 {
        let m = fetch_n(&c, 1).await;
        let meta = m[0].info().expect("info");
        if meta.stream_sequence == 1 {
            deliveries_of_1.push(meta.delivered);
        } else {
            ack_sync(&s.client, &m[0], "+ACK").await;
        }
    }
    assert_eq!(deliveries_of_1, vec![1, 2, 3]);
    // max_deliver 3 reached: seq 1 is not delivered again.
    let mut sub = raw_pull(
        &s.client,
        "BO",
        "B",
        serde_json::json!({"batch":1,"expires":1_500_000_000u64}),
    )
    .await;
    let m = next(&mut sub).await;
    if status(&m).is_none() {
        // Seq 4 may still be undelivered; it is the only other message allowed.
        assert!(
            m.reply.as_deref().is_some_and(|r| r.contains(".4.")),
            "{:?}",
            m.reply
        );
    } else {
        assert_eq!(status(&m).map(|s| s.0), Some(408));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliver_policies_and_filters() {
    let s = setup().await;
    let stream = make_stream(&s.js, "DP", &["dp.>"]).await;
    publish_payloads(&s.js, "dp.a", &["1"]).await;
    publish_payloads(&s.js, "dp.b", &["2"]).await;
    publish_payloads(&s.js, "dp.a", &["3"]).await;
    publish_payloads(&s.js, "dp.b", &["4"]).await;
    let create = |name: &str, policy: DeliverPolicy, filter: Vec<String>| {
        let stream = stream.clone();
        let name = name.to_owned();
        async move {
            stream
                .create_consumer(pull::Config {
                    durable_name: Some(name),
                    ack_policy: AckPolicy::Explicit,
                    deliver_policy: policy,
                    filter_subjects: filter,
                    ..Default::default()
                })
                .await
                .expect("create")
        }
    };
    let all = create("ALL", DeliverPolicy::All, vec![]).await;
    let all_msgs = fetch_n(&all, 4).await;
    assert_eq!(sseqs(&all_msgs), vec![1, 2, 3, 4]);
    let last = create("LAST", DeliverPolicy::Last, vec![]).await;
    assert_eq!(sseqs(&fetch_n(&last, 1).await), vec![4]);
    let by_seq = create(
        "SEQ",
        DeliverPolicy::ByStartSequence { start_sequence: 3 },
        vec![],
    )
    .await;
    assert_eq!(sseqs(&fetch_n(&by_seq, 2).await), vec![3, 4]);
    let t3 = all_msgs[2].info().expect("info").published;
    let by_time = create(
        "TIME",
        DeliverPolicy::ByStartTime { start_time: t3 },
        vec![],
    )
    .await;
    assert_eq!(sseqs(&fetch_n(&by_time, 2).await), vec![3, 4]);
    let filtered = create("FA", DeliverPolicy::All, vec!["dp.a".into()]).await;
    assert_eq!(sseqs(&fetch_n(&filtered, 2).await), vec![1, 3]);
    assert_eq!(info(&stream, "FA").await.num_pending, 0);
    let new = create("NEW", DeliverPolicy::New, vec![]).await;
    assert_eq!(info(&stream, "NEW").await.num_pending, 0);
    publish_payloads(&s.js, "dp.b", &["5"]).await;
    assert_eq!(sseqs(&fetch_n(&new, 1).await), vec![5]);
    let both = create(
        "FAB",
        DeliverPolicy::All,
        vec!["dp.a".into(), "dp.b".into()],
    )
    .await;
    assert_eq!(sseqs(&fetch_n(&both, 5).await), vec![1, 2, 3, 4, 5]);
    let lps = create("LPS", DeliverPolicy::LastPerSubject, vec!["dp.>".into()]).await;
    assert_eq!(sseqs(&fetch_n(&lps, 2).await), vec![3, 5]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_flow_control_and_heartbeats() {
    let s = setup().await;
    let stream = make_stream(&s.js, "PUSH", &["push.>"]).await;
    let payloads: Vec<String> = (0..1100).map(|i| i.to_string()).collect();
    let refs: Vec<&str> = payloads.iter().map(String::as_str).collect();
    publish_payloads(&s.js, "push.a", &refs).await;
    let deliver = s.client.new_inbox();
    let mut sub = s
        .client
        .subscribe(deliver.clone())
        .await
        .expect("subscribe");
    stream
        .create_consumer(push::Config {
            durable_name: Some("PF".into()),
            deliver_subject: deliver.clone(),
            ack_policy: AckPolicy::None,
            flow_control: true,
            idle_heartbeat: Duration::from_millis(500),
            ..Default::default()
        })
        .await
        .expect("create push");
    // Messages flow until a flow-control request; nothing more until it is answered.
    let mut data = 0;
    let fc = loop {
        let m = next(&mut sub).await;
        match status(&m) {
            None => data += 1,
            Some((100, d)) if d == "FlowControl Request" => break m,
            Some(other) => panic!("unexpected status {other:?}"),
        }
    };
    assert!(
        (1..1100).contains(&data),
        "flow control before the end: {data}"
    );
    let fc_reply = fc.reply.clone().expect("flow control reply subject");
    assert!(fc_reply.starts_with("$JS.FC.PUSH.PF."), "{fc_reply}");
    // While stalled no data flows, and heartbeats say so.
    let hb = next(&mut sub).await;
    assert_eq!(
        status(&hb),
        Some((100, "Idle Heartbeat".into())),
        "no data while stalled"
    );
    assert_eq!(
        header(&hb, "Nats-Consumer-Stalled").as_deref(),
        Some(fc_reply.as_str())
    );
    s.client
        .publish(fc_reply, Bytes::new())
        .await
        .expect("fc reply");
    while data < 1100 {
        let m = next(&mut sub).await;
        if status(&m).is_none() {
            data += 1;
        } else if let Some(reply) = m.reply.clone() {
            s.client
                .publish(reply, Bytes::new())
                .await
                .expect("fc reply");
        }
    }
    // Idle: heartbeats with the last sequences.
    let hb = loop {
        let m = next(&mut sub).await;
        if m.reply.is_none() && status(&m).is_some_and(|(c, _)| c == 100) {
            break m;
        }
        if let Some(reply) = m.reply.clone() {
            s.client
                .publish(reply, Bytes::new())
                .await
                .expect("fc reply");
        }
    };
    assert_eq!(header(&hb, "Nats-Last-Stream").as_deref(), Some("1100"));
    assert_eq!(header(&hb, "Nats-Last-Consumer").as_deref(), Some("1100"));
    let i = info(&stream, "PF").await;
    assert!(i.push_bound);
    assert_eq!(i.delivered.stream_sequence, 1100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_explicit_ack_with_async_nats() {
    let s = setup().await;
    let stream = make_stream(&s.js, "PA", &["pa.>"]).await;
    publish_payloads(&s.js, "pa.x", &["1", "2", "3"]).await;
    let c = stream
        .create_consumer(push::Config {
            durable_name: Some("PA".into()),
            deliver_subject: s.client.new_inbox(),
            ack_policy: AckPolicy::Explicit,
            ..Default::default()
        })
        .await
        .expect("create push");
    let mut msgs = c.messages().await.expect("messages");
    let mut seqs = Vec::new();
    while seqs.len() < 3 {
        let m = tokio::time::timeout(WAIT, msgs.next())
            .await
            .expect("in time")
            .expect("open")
            .expect("message");
        seqs.push(m.info().expect("info").stream_sequence);
        m.double_ack().await.expect("ack");
    }
    assert_eq!(seqs, vec![1, 2, 3]);
    let i = info(&stream, "PA").await;
    assert_eq!(i.num_ack_pending, 0);
    assert_eq!(i.ack_floor.stream_sequence, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ordered_push_consumer_survives_deleted_consumer() {
    let s = setup().await;
    let stream = make_stream(&s.js, "ORD", &["ord.>"]).await;
    publish_payloads(&s.js, "ord.a", &["1", "2", "3"]).await;
    let mut c = stream
        .create_consumer(push::OrderedConfig {
            deliver_subject: s.client.new_inbox(),
            ..Default::default()
        })
        .await
        .expect("ordered consumer");
    let first_name = c.info().await.expect("info").name.clone();
    let mut msgs = c.messages().await.expect("messages");
    let mut seqs = Vec::new();
    while seqs.len() < 3 {
        if let Ok(m) = tokio::time::timeout(WAIT, msgs.next())
            .await
            .expect("in time")
            .expect("open")
        {
            seqs.push(m.info().expect("info").stream_sequence);
        }
    }
    assert_eq!(seqs, vec![1, 2, 3]);
    stream.delete_consumer(&first_name).await.expect("delete");
    publish_payloads(&s.js, "ord.a", &["4", "5"]).await;
    while seqs.len() < 5 {
        // Missing heartbeats while the consumer is gone surface as errors; the client
        // recreates the consumer from the last stream sequence it saw.
        if let Ok(m) = tokio::time::timeout(Duration::from_secs(60), msgs.next())
            .await
            .expect("in time")
            .expect("open")
        {
            seqs.push(m.info().expect("info").stream_sequence);
        }
    }
    assert_eq!(seqs, vec![1, 2, 3, 4, 5], "in order, no gap, no duplicate");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ordered_pull_consumer() {
    let s = setup().await;
    let stream = make_stream(&s.js, "OP", &["op.>"]).await;
    publish_payloads(&s.js, "op.a", &["1", "2", "3"]).await;
    let c = stream
        .create_consumer(pull::OrderedConfig::default())
        .await
        .expect("ordered pull");
    let mut msgs = c.messages().await.expect("messages");
    let mut seqs = Vec::new();
    while seqs.len() < 4 {
        let m = tokio::time::timeout(WAIT, msgs.next())
            .await
            .expect("in time")
            .expect("open")
            .expect("message");
        seqs.push(m.info().expect("info").stream_sequence);
        if seqs.len() == 3 {
            publish_payloads(&s.js, "op.a", &["4"]).await;
        }
    }
    assert_eq!(seqs, vec![1, 2, 3, 4]);
}

/// nats.py 2.16: pull fetch with ack_sync, consumer info counts, ordered push consumer,
/// durable push with manual acks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_py_pull_push_and_ordered() {
    run_py("consumers.py", PY_CONSUMERS, "CONSUMERS OK").await;
}

/// Runs a nats.py script against a fresh agent; it must print `marker`.
async fn run_py(name: &str, source: &str, marker: &str) {
    let s = setup().await;
    let url = format!("nats://{}", s.agent.client_addr());
    let script = s.dir.path().join(name);
    std::fs::write(&script, source).expect("write script");
    let output = py_client::run(&script, &url).await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "nats.py script {name} failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(stdout.contains(marker), "{stdout}");
}

const PY_CONSUMERS: &str = r#"
import asyncio, sys
import nats

async def main(url):
    nc = await nats.connect(url)
    js = nc.jetstream(timeout=10)
    await js.add_stream(name="PY", subjects=["py.>"])
    for i in range(5):
        await js.publish("py.a", str(i).encode())
    psub = await js.pull_subscribe("py.>", durable="pd")
    msgs = await psub.fetch(3, timeout=5)
    assert [m.metadata.sequence.stream for m in msgs] == [1, 2, 3], msgs
    for m in msgs:
        await m.ack_sync()
    ci = await js.consumer_info("PY", "pd")
    assert (ci.num_ack_pending, ci.num_pending, ci.ack_floor.stream_seq) == (0, 2, 3), ci
    msgs = await psub.fetch(5, timeout=2)
    assert [m.metadata.sequence.stream for m in msgs] == [4, 5], msgs
    sub = await js.subscribe("py.>", ordered_consumer=True)
    got = [(await sub.next_msg(timeout=5)).metadata.sequence.stream for _ in range(5)]
    assert got == [1, 2, 3, 4, 5], got
    sub2 = await js.subscribe("py.>", durable="push1", manual_ack=True)
    got = []
    for _ in range(5):
        m = await sub2.next_msg(timeout=5)
        got.append(m.metadata.sequence.stream)
        await m.ack()
    assert got == [1, 2, 3, 4, 5], got
    await nc.close()
    print("CONSUMERS OK")

asyncio.run(main(sys.argv[1]))
"#;

/// nats.py: pause a pull consumer (its fetch finds nothing while messages wait,
/// consumer info says paused), resume it, and the fetch gets them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_py_pause_and_resume() {
    run_py("pause.py", PY_PAUSE, "PAUSE OK").await;
}

const PY_PAUSE: &str = r#"
import asyncio, sys
import nats
from nats.errors import TimeoutError as NatsTimeout

async def main(url):
    nc = await nats.connect(url)
    js = nc.jetstream(timeout=10)
    await js.add_stream(name="PYP", subjects=["pyp.>"])
    for i in range(3):
        await js.publish("pyp.a", str(i).encode())
    psub = await js.pull_subscribe("pyp.>", durable="pp")
    r = await js.pause_consumer("PYP", "pp", "2099-01-01T00:00:00Z")
    assert r.paused, r
    ci = await js.consumer_info("PYP", "pp")
    assert ci.paused, ci
    try:
        msgs = await psub.fetch(1, timeout=1)
        raise AssertionError(f"paused consumer delivered {msgs}")
    except NatsTimeout:
        pass
    r = await js.resume_consumer("PYP", "pp")
    assert not r.paused, r
    msgs = await psub.fetch(3, timeout=10)
    assert [m.metadata.sequence.stream for m in msgs] == [1, 2, 3], msgs
    ci = await js.consumer_info("PYP", "pp")
    assert not ci.paused, ci
    await nc.close()
    print("PAUSE OK")

asyncio.run(main(sys.argv[1]))
"#;

/// Advisories as nats-server 2.15.1 sends them for the same calls (its API audit
/// events aside), and a dead-letter queue built on them the way users do: a stream
/// capturing `$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.>`, a consumer with
/// max_deliver 3 and a client that always naks; the advisory names the sequence, and
/// the original message is fetched by it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn advisories_and_a_dead_letter_queue() {
    let s = setup().await;
    let mut advisories = s
        .client
        .subscribe("$JS.EVENT.ADVISORY.>")
        .await
        .expect("subscribe");
    s.client.flush().await.expect("flush");
    let orders = scenarios::dead_letter_queue(&s.js).await;

    let until = infinistream_protocol::jsapi::Timestamp::parse("2099-01-01T00:00:00Z")
        .expect("time")
        .to_string();
    orders
        .pause_consumer(
            "W",
            async_nats::datetime::parse_rfc3339(&until).expect("rfc3339"),
        )
        .await
        .expect("pause");
    orders.resume_consumer("W").await.expect("resume");
    orders.delete_consumer("W").await.expect("delete consumer");
    s.js.delete_stream("ADV").await.expect("delete stream");

    // What nats-server 2.15.1 publishes for the same calls, in order.
    let want = [
        "STREAM.CREATED.DLQ",
        "STREAM.CREATED.ADV",
        "STREAM.UPDATED.ADV",
        "CONSUMER.CREATED.ADV.W",
        "CONSUMER.MSG_NAKED.ADV.W",
        "CONSUMER.MSG_TERMINATED.ADV.W",
        "CONSUMER.MSG_NAKED.ADV.W",
        "CONSUMER.MSG_NAKED.ADV.W",
        "CONSUMER.MAX_DELIVERIES.ADV.W",
        "CONSUMER.CREATED.DLQ.dlq",
        "CONSUMER.PAUSE.ADV.W",
        "CONSUMER.PAUSE.ADV.W",
        "CONSUMER.DELETED.ADV.W",
        "STREAM.DELETED.ADV",
    ];
    let mut seen = Vec::new();
    let mut bodies = Vec::new();
    while seen.len() < want.len() {
        let m = next(&mut advisories).await;
        let subject = m
            .subject
            .as_str()
            .trim_start_matches("$JS.EVENT.ADVISORY.")
            .to_owned();
        bodies.push(serde_json::from_slice::<serde_json::Value>(&m.payload).expect("json"));
        seen.push(subject);
    }
    assert_eq!(seen, want);
    let term = &bodies[5];
    assert_eq!(term["type"], "io.nats.jetstream.advisory.v1.terminated");
    assert_eq!(
        (&term["stream_seq"], &term["deliveries"]),
        (&2.into(), &1.into()),
        "{term}"
    );
    let pause = &bodies[10];
    assert_eq!(
        (&pause["paused"], &pause["pause_until"]),
        (&true.into(), &"2099-01-01T00:00:00Z".into()),
        "{pause}"
    );
    let resume = &bodies[11];
    assert_eq!(resume["pause_until"], "0001-01-01T00:00:00Z", "{resume}");
    assert_eq!(bodies[0]["action"], "create");
    assert_eq!(bodies[2]["action"], "modify");
    assert_eq!(bodies[12]["action"], "delete");
}

/// Both ack subject forms: v1 (`$JS.ACK.<stream>.<consumer>.…`) and nats-server 2.14's
/// v2 (`$JS.ACK.<domain>.<account hash>.<stream>.<consumer>.….<token>`), each applied
/// and confirmed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ack_subjects_v1_and_v2() {
    let s = setup().await;
    scenarios::ack_subjects_v1_and_v2(&s.js).await;
}
