//! Consumer scenarios, run by `e2e_consumers_s3_etcd` against an agent with the
//! embedded control plane on a local bucket and against agents on a real S3 server and
//! a control plane over etcd. Each scenario creates the streams it uses under its own
//! names.

use std::time::Duration;

use async_nats::jetstream::{
    self,
    consumer::{self, AckPolicy, pull},
    kv, stream,
};
use bytes::Bytes;
use futures::StreamExt;

const WAIT: Duration = Duration::from_secs(20);

/// The durable consumer the restart scenario leaves behind.
pub const DURABLE_STREAM: &str = "DUR";
pub const DURABLE: &str = "D";
/// Short, so the redelivery after the restart comes quickly (time is under test here).
const DURABLE_ACK_WAIT: Duration = Duration::from_secs(2);

pub async fn fetch_n(c: &consumer::Consumer<pull::Config>, n: usize) -> Vec<jetstream::Message> {
    let mut out = Vec::new();
    while out.len() < n {
        let mut batch = c
            .batch()
            .max_messages(n - out.len())
            .expires(WAIT)
            .messages()
            .await
            .expect("batch");
        while let Some(m) = batch.next().await {
            out.push(m.expect("message"));
        }
    }
    out
}

fn sseq(m: &jetstream::Message) -> u64 {
    m.info().expect("ack info").stream_sequence
}

async fn publish(js: &jetstream::Context, subject: &str, n: u64) {
    let mut acks = Vec::new();
    for i in 1..=n {
        acks.push(
            js.publish(subject.to_owned(), Bytes::from(i.to_string()))
                .await
                .expect("publish sent"),
        );
    }
    for (i, ack) in acks.into_iter().enumerate() {
        assert_eq!(ack.await.expect("publish acked").sequence, i as u64 + 1);
    }
}

/// Before the restart: 10 messages, a durable pull consumer with explicit acks, 6
/// fetched, 1 and 4 double-acked and 2 acked with a confirmed `+ACK` request; 3, 5
/// and 6 left unacked.
pub async fn durable_before_restart(js: &jetstream::Context) {
    let stream = js
        .create_stream(stream::Config {
            name: DURABLE_STREAM.into(),
            subjects: vec!["dur.>".into()],
            ..Default::default()
        })
        .await
        .expect("create stream");
    publish(js, "dur.a", 10).await;
    let c = stream
        .create_consumer(pull::Config {
            durable_name: Some(DURABLE.into()),
            ack_policy: AckPolicy::Explicit,
            ack_wait: DURABLE_ACK_WAIT,
            ..Default::default()
        })
        .await
        .expect("create durable");
    let msgs = fetch_n(&c, 6).await;
    assert_eq!(
        msgs.iter().map(sseq).collect::<Vec<_>>(),
        vec![1, 2, 3, 4, 5, 6]
    );
    msgs[0].double_ack().await.expect("double ack 1");
    js.client()
        .request(
            msgs[1].reply.clone().expect("ack subject"),
            Bytes::from_static(b"+ACK"),
        )
        .await
        .expect("ack 2 confirmed");
    msgs[3].double_ack().await.expect("double ack 4");
    durable_state_unchanged(js).await;
}

/// The state `durable_before_restart` left: ack floor 2, pending acks 3, 5, 6,
/// delivered up to 6, 4 never delivered.
pub async fn durable_state_unchanged(js: &jetstream::Context) {
    // After a restart the agent may answer before a control-plane leader is elected
    // (503, 10008 "retry"): wait for the API to serve the stream, then check.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let stream = loop {
        match js.get_stream(DURABLE_STREAM).await {
            Ok(stream) => break stream,
            Err(e) if e.to_string().contains("10008") && std::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            Err(e) => panic!("stream: {e:?}"),
        }
    };
    let i = stream.consumer_info(DURABLE).await.expect("consumer info");
    assert_eq!(i.ack_floor.stream_sequence, 2, "{i:?}");
    assert_eq!(i.ack_floor.consumer_sequence, 2, "{i:?}");
    assert_eq!(i.num_ack_pending, 3, "{i:?}");
    assert_eq!(i.delivered.stream_sequence, 6, "{i:?}");
    assert_eq!(i.delivered.consumer_sequence, 6, "{i:?}");
    assert_eq!(i.num_pending, 4, "{i:?}");
    assert_eq!(i.config.ack_wait, DURABLE_ACK_WAIT, "{i:?}");
}

/// After the restart(s): the unacked 3, 5, 6 come back (delivered twice) after
/// ack_wait along with the never-delivered 7..=10; 1, 2, 4 never come back. Once all
/// are acked nothing is delivered for longer than ack_wait. Deletes the stream.
pub async fn durable_after_restart(js: &jetstream::Context) {
    let stream = js.get_stream(DURABLE_STREAM).await.expect("stream");
    let c: consumer::Consumer<pull::Config> = stream
        .get_consumer(DURABLE)
        .await
        .expect("durable survives");
    let mut msgs = fetch_n(&c, 7).await;
    msgs.sort_by_key(sseq);
    let got: Vec<(u64, i64)> = msgs
        .iter()
        .map(|m| {
            let info = m.info().expect("ack info");
            (info.stream_sequence, info.delivered)
        })
        .collect();
    assert_eq!(
        got,
        vec![(3, 2), (5, 2), (6, 2), (7, 1), (8, 1), (9, 1), (10, 1)]
    );
    for m in &msgs {
        m.double_ack().await.expect("double ack");
    }
    let i = stream.consumer_info(DURABLE).await.expect("consumer info");
    assert_eq!(i.num_ack_pending, 0, "{i:?}");
    assert_eq!(i.num_pending, 0, "{i:?}");
    assert_eq!(i.num_redelivered, 0, "{i:?}");
    assert_eq!(i.ack_floor.stream_sequence, 10, "{i:?}");
    // Nothing comes back: a pull that outlives ack_wait ends with 408 and no message.
    let client = js.client();
    let inbox = client.new_inbox();
    let mut sub = client.subscribe(inbox.clone()).await.expect("subscribe");
    client
        .publish_with_reply(
            format!("$JS.API.CONSUMER.MSG.NEXT.{DURABLE_STREAM}.{DURABLE}"),
            inbox,
            Bytes::from(
                serde_json::json!({"batch": 1, "expires": (DURABLE_ACK_WAIT * 2).as_nanos() as u64})
                    .to_string(),
            ),
        )
        .await
        .expect("pull request");
    let reply = tokio::time::timeout(WAIT, sub.next())
        .await
        .expect("a reply in time")
        .expect("subscription open");
    assert_eq!(
        reply.status.map(|s| s.as_u16()),
        Some(408),
        "expected the request to expire, got {:?} {:?}",
        reply.headers,
        reply.payload
    );
    js.delete_stream(DURABLE_STREAM)
        .await
        .expect("delete stream");
}

/// A durable pull consumer with explicit acks consumed through async-nats' `messages()`
/// stream: 200 messages in order, each acked; the consumer ends fully acked.
pub async fn pull_consume_with_acks(js: &jetstream::Context) {
    let stream = js
        .create_stream(stream::Config {
            name: "PULL".into(),
            subjects: vec!["pull.>".into()],
            ..Default::default()
        })
        .await
        .expect("create stream");
    publish(js, "pull.x", 200).await;
    let c = stream
        .create_consumer(pull::Config {
            durable_name: Some("C".into()),
            ack_policy: AckPolicy::Explicit,
            ..Default::default()
        })
        .await
        .expect("create consumer");
    let mut messages = c.messages().await.expect("messages");
    for expected in 1..=200u64 {
        let m = tokio::time::timeout(WAIT, messages.next())
            .await
            .expect("message in time")
            .expect("stream open")
            .expect("message");
        assert_eq!(sseq(&m), expected);
        assert_eq!(m.payload, expected.to_string().as_bytes());
        m.double_ack().await.expect("double ack");
    }
    drop(messages);
    let i = stream.consumer_info("C").await.expect("consumer info");
    assert_eq!(i.num_ack_pending, 0, "{i:?}");
    assert_eq!(i.num_pending, 0, "{i:?}");
    assert_eq!(i.ack_floor.stream_sequence, 200, "{i:?}");
    js.delete_stream("PULL").await.expect("delete stream");
}

async fn next_entry(watch: &mut kv::Watch) -> kv::Entry {
    tokio::time::timeout(WAIT, watch.next())
        .await
        .expect("watch event in time")
        .expect("watch still open")
        .expect("watch entry")
}

/// KV watch: a key watch starts with the key's last value and then sees a put and a
/// delete; a watch of everything sees another key's put. Deletes the bucket.
pub async fn kv_watch(js: &jetstream::Context) {
    let store = js
        .create_key_value(kv::Config {
            bucket: "watched".into(),
            history: 5,
            ..Default::default()
        })
        .await
        .expect("create bucket");
    store.put("a", "1".into()).await.expect("put a");
    let mut watch_a = store.watch_with_history("a").await.expect("watch a");
    let e = next_entry(&mut watch_a).await;
    assert_eq!(
        (e.key.as_str(), e.value.as_ref(), e.operation),
        ("a", &b"1"[..], kv::Operation::Put)
    );
    let mut watch_all = store.watch_all().await.expect("watch all");
    store.put("a", "2".into()).await.expect("put a again");
    store.put("b", "x".into()).await.expect("put b");
    store.delete("a").await.expect("delete a");
    let e = next_entry(&mut watch_a).await;
    assert_eq!(
        (e.key.as_str(), e.value.as_ref(), e.operation),
        ("a", &b"2"[..], kv::Operation::Put)
    );
    let e = next_entry(&mut watch_a).await;
    assert_eq!((e.key.as_str(), e.operation), ("a", kv::Operation::Delete));
    let seen: Vec<(String, kv::Operation)> = [
        next_entry(&mut watch_all).await,
        next_entry(&mut watch_all).await,
        next_entry(&mut watch_all).await,
    ]
    .into_iter()
    .map(|e| (e.key, e.operation))
    .collect();
    assert_eq!(
        seen,
        vec![
            ("a".to_owned(), kv::Operation::Put),
            ("b".to_owned(), kv::Operation::Put),
            ("a".to_owned(), kv::Operation::Delete),
        ]
    );
    drop((watch_a, watch_all));
    js.delete_key_value("watched").await.expect("delete bucket");
}

/// `pause_until` as async-nats takes it: `secs` seconds from now.
fn pause_time(secs: i64) -> async_nats::datetime::DateTime {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_nanos() as i128;
    let at = infinistream_protocol::jsapi::Timestamp::from_unix_nanos(
        now + i128::from(secs) * 1_000_000_000,
    );
    async_nats::datetime::parse_rfc3339(&at.to_string()).expect("rfc3339 time")
}

/// A raw pull request; the first reply on its inbox.
async fn raw_pull_reply(
    client: &async_nats::Client,
    stream: &str,
    consumer: &str,
    body: &str,
) -> async_nats::Message {
    let inbox = client.new_inbox();
    let mut sub = client.subscribe(inbox.clone()).await.expect("subscribe");
    client
        .publish_with_reply(
            format!("$JS.API.CONSUMER.MSG.NEXT.{stream}.{consumer}"),
            inbox,
            Bytes::from(body.to_owned()),
        )
        .await
        .expect("pull request");
    tokio::time::timeout(WAIT, sub.next())
        .await
        .expect("a reply in time")
        .expect("subscription open")
}

fn status_of(m: &async_nats::Message) -> Option<(u16, String)> {
    m.status
        .map(|s| (s.as_u16(), m.description.clone().unwrap_or_default()))
}

/// Pause and resume, as nats-server 2.15.1 answers them: a consumer created paused
/// reports `paused` and `pause_remaining`; pull requests get `404 No Messages`
/// (no_wait) or `408 Request Timeout` (expires) while messages wait; `CONSUMER.PAUSE`
/// without a time resumes it and delivery goes on; a pause that runs out ends by
/// itself. Deletes the stream.
pub async fn pause_resume(js: &jetstream::Context) {
    let client = js.client();
    let stream = js
        .create_stream(stream::Config {
            name: "PAUSE".into(),
            subjects: vec!["pause.>".into()],
            ..Default::default()
        })
        .await
        .expect("create stream");
    publish(js, "pause.x", 3).await;
    let c = stream
        .create_consumer(pull::Config {
            durable_name: Some("P".into()),
            ack_policy: AckPolicy::Explicit,
            pause_until: Some(pause_time(3600)),
            ..Default::default()
        })
        .await
        .expect("create paused consumer");
    let i = stream.consumer_info("P").await.expect("consumer info");
    assert!(i.paused, "{i:?}");
    assert!(
        i.pause_remaining
            .is_some_and(|d| d > Duration::from_secs(3000)),
        "{i:?}"
    );
    assert!(i.config.pause_until.is_some(), "{i:?}");

    let m = raw_pull_reply(&client, "PAUSE", "P", r#"{"batch":1,"no_wait":true}"#).await;
    assert_eq!(status_of(&m), Some((404, "No Messages".into())));
    let m = raw_pull_reply(&client, "PAUSE", "P", r#"{"batch":1,"expires":300000000}"#).await;
    assert_eq!(status_of(&m), Some((408, "Request Timeout".into())));
    assert_eq!(
        m.headers
            .as_ref()
            .and_then(|h| h.get("Nats-Pending-Messages"))
            .map(|v| v.as_str().to_owned()),
        Some("1".into())
    );

    // Resume: the waiting request gets its messages.
    let mut batch = c
        .batch()
        .max_messages(3)
        .expires(WAIT)
        .messages()
        .await
        .expect("batch");
    let r = stream.resume_consumer("P").await.expect("resume");
    assert!(!r.paused, "resumed");
    assert_eq!(r.pause_remaining, None, "resumed");
    let mut got = Vec::new();
    while let Some(m) = batch.next().await {
        let m = m.expect("message");
        got.push(sseq(&m));
        m.double_ack().await.expect("ack");
    }
    assert_eq!(got, vec![1, 2, 3]);
    let i = stream.consumer_info("P").await.expect("consumer info");
    assert!(!i.paused && i.config.pause_until.is_none(), "{i:?}");

    // Paused again, then the pause runs out by itself.
    let r = stream
        .pause_consumer("P", pause_time(5))
        .await
        .expect("pause");
    assert!(r.paused && r.pause_remaining.is_some(), "paused again");
    publish_more(js, "pause.x", 4).await;
    let m = raw_pull_reply(&client, "PAUSE", "P", r#"{"batch":1,"no_wait":true}"#).await;
    assert_eq!(status_of(&m), Some((404, "No Messages".into())));
    let m = fetch_n(&c, 1).await;
    assert_eq!(sseq(&m[0]), 4);
    let i = stream.consumer_info("P").await.expect("consumer info");
    assert!(!i.paused, "{i:?}");

    // Errors as nats-server's: the error, with `paused` and a zero `pause_until`.
    let reply = client
        .request("$JS.API.CONSUMER.PAUSE.PAUSE.NOPE", Bytes::new())
        .await
        .expect("pause reply");
    let v: serde_json::Value = serde_json::from_slice(&reply.payload).expect("json");
    assert_eq!(
        v["type"],
        "io.nats.jetstream.api.v1.consumer_pause_response"
    );
    assert_eq!(v["error"]["err_code"], 10014, "{v}");
    assert_eq!(v["paused"], false, "{v}");
    assert_eq!(v["pause_until"], "0001-01-01T00:00:00Z", "{v}");
    let reply = client
        .request(
            "$JS.API.CONSUMER.PAUSE.PAUSE.P",
            Bytes::from_static(b"{bad"),
        )
        .await
        .expect("pause reply");
    let v: serde_json::Value = serde_json::from_slice(&reply.payload).expect("json");
    assert_eq!(v["error"]["err_code"], 10025, "{v}");
    js.delete_stream("PAUSE").await.expect("delete stream");
}

/// Publishes one more message and checks it got `seq`.
async fn publish_more(js: &jetstream::Context, subject: &str, seq: u64) {
    let ack = js
        .publish(subject.to_owned(), Bytes::from(seq.to_string()))
        .await
        .expect("publish sent")
        .await
        .expect("publish acked");
    assert_eq!(ack.sequence, seq);
}

/// `CONSUMER.RESET` on this setup's control plane: 6 messages, 4 fetched and 1
/// acked; a reset to 3 leaves nothing pending and the next fetch starts at stream
/// sequence 3 with consumer sequence 1; a reset with no body goes to one above the
/// ack floor. Deletes the stream.
pub async fn reset(js: &jetstream::Context) {
    let stream = js
        .create_stream(stream::Config {
            name: "RESET".into(),
            subjects: vec!["reset.>".into()],
            ..Default::default()
        })
        .await
        .expect("create stream");
    publish(js, "reset.x", 6).await;
    let c = stream
        .create_consumer(pull::Config {
            durable_name: Some("R".into()),
            ack_policy: AckPolicy::Explicit,
            ..Default::default()
        })
        .await
        .expect("create consumer");
    let first = fetch_n(&c, 4).await;
    first[0].double_ack().await.expect("ack confirmed");
    let reset = async |body: &'static [u8]| {
        let reply = js
            .client()
            .request("$JS.API.CONSUMER.RESET.RESET.R", Bytes::from_static(body))
            .await
            .expect("reset reply");
        let v: serde_json::Value = serde_json::from_slice(&reply.payload).expect("json");
        assert_eq!(
            v["type"],
            "io.nats.jetstream.api.v1.consumer_reset_response"
        );
        v
    };
    let v = reset(br#"{"seq":3}"#).await;
    assert_eq!(v["reset_seq"], 3, "{v}");
    assert_eq!(
        (
            &v["delivered"]["stream_seq"],
            &v["delivered"]["consumer_seq"]
        ),
        (&2.into(), &0.into()),
        "{v}"
    );
    assert_eq!(
        (&v["num_ack_pending"], &v["num_pending"]),
        (&0.into(), &4.into()),
        "{v}"
    );
    let again = fetch_n(&c, 2).await;
    let got: Vec<(u64, u64)> = again
        .iter()
        .map(|m| {
            let info = m.info().expect("ack info");
            (info.stream_sequence, info.consumer_sequence)
        })
        .collect();
    assert_eq!(got, [(3, 1), (4, 2)]);
    for m in &again {
        m.double_ack().await.expect("ack confirmed");
    }
    let v = reset(b"").await;
    assert_eq!(v["reset_seq"], 5, "{v}");
    js.delete_stream("RESET").await.expect("delete stream");
}

pub async fn make_stream(js: &jetstream::Context, name: &str, subjects: &[&str]) -> stream::Stream {
    js.create_stream(stream::Config {
        name: name.into(),
        subjects: subjects.iter().map(|s| (*s).to_owned()).collect(),
        ..Default::default()
    })
    .await
    .expect("create stream")
}

pub async fn publish_payloads(js: &jetstream::Context, subject: &str, payloads: &[&str]) {
    for p in payloads {
        js.publish(subject.to_owned(), Bytes::from(p.to_string()))
            .await
            .expect("publish sent")
            .await
            .expect("publish acked");
    }
}

/// Acks with a reply and waits for the server's confirmation (an empty reply).
pub async fn ack_sync(client: &async_nats::Client, msg: &jetstream::Message, kind: &'static str) {
    let reply = msg.reply.clone().expect("ack subject");
    client
        .request(reply, Bytes::from_static(kind.as_bytes()))
        .await
        .expect("ack confirmed");
}

/// A dead-letter queue built on advisories the way users do: stream `DLQ` captures
/// `$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.>`; stream `ADV` (created, then updated
/// to `max_messages` 100) holds "poison" and "term"; durable `W` (max_deliver 3) is
/// consumed by a client that naks "poison" every time and terminates "term". The
/// advisory in `DLQ` names the sequence, and the original message is fetched by it.
/// Returns `ADV`, with `W` still on it.
pub async fn dead_letter_queue(js: &jetstream::Context) -> stream::Stream {
    let client = &js.client();
    let dlq = make_stream(js, "DLQ", &["$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.>"]).await;
    let orders = make_stream(js, "ADV", &["adv.>"]).await;
    js.update_stream(stream::Config {
        name: "ADV".into(),
        subjects: vec!["adv.>".into()],
        max_messages: 100,
        ..Default::default()
    })
    .await
    .expect("update stream");
    publish_payloads(js, "adv.a", &["poison", "term"]).await;
    let c = orders
        .create_consumer(pull::Config {
            durable_name: Some("W".into()),
            ack_policy: AckPolicy::Explicit,
            max_deliver: 3,
            filter_subject: "adv.a".into(),
            ..Default::default()
        })
        .await
        .expect("create consumer");

    // The client naks "poison" every time it comes and terminates "term".
    let mut naks = 0;
    while naks < 3 {
        for m in fetch_n(&c, if naks == 0 { 2 } else { 1 }).await {
            if m.payload.as_ref() == b"term" {
                ack_sync(client, &m, "+TERM").await;
            } else {
                ack_sync(client, &m, "-NAK").await;
                naks += 1;
            }
        }
    }
    // The next claim finds it exhausted: nothing more to deliver, the advisory goes out.
    let reply = raw_pull_reply(client, "ADV", "W", r#"{"batch":1,"no_wait":true}"#).await;
    assert_eq!(status_of(&reply), Some((404, "No Messages".into())));

    // The dead-letter queue holds the advisory; it leads back to the message.
    let dead = dlq
        .create_consumer(pull::Config {
            durable_name: Some("dlq".into()),
            ..Default::default()
        })
        .await
        .expect("dlq consumer");
    let got = fetch_n(&dead, 1).await;
    assert_eq!(
        got[0].subject.as_str(),
        "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.ADV.W"
    );
    let advisory: serde_json::Value = serde_json::from_slice(&got[0].payload).expect("json");
    assert_eq!(
        advisory["type"],
        "io.nats.jetstream.advisory.v1.max_deliver"
    );
    assert_eq!(
        (
            &advisory["stream"],
            &advisory["consumer"],
            &advisory["deliveries"]
        ),
        (&"ADV".into(), &"W".into(), &3.into()),
        "{advisory}"
    );
    let mut keys: Vec<&str> = advisory
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    let mut want_keys = [
        "type",
        "id",
        "timestamp",
        "stream",
        "consumer",
        "stream_seq",
        "deliveries",
    ];
    want_keys.sort_unstable();
    assert_eq!(keys, want_keys, "nats-server's fields");
    let seq = advisory["stream_seq"].as_u64().expect("stream_seq");
    let original = orders.get_raw_message(seq).await.expect("original message");
    assert_eq!(original.payload.as_ref(), b"poison");
    orders
}

/// Both ack subject forms: v1 (`$JS.ACK.<stream>.<consumer>.…`) and nats-server 2.14's
/// v2 (`$JS.ACK.<domain>.<account hash>.<stream>.<consumer>.….<token>`), each applied
/// and confirmed, on stream `ACKS`.
pub async fn ack_subjects_v1_and_v2(js: &jetstream::Context) {
    let client = &js.client();
    let stream = make_stream(js, "ACKS", &["acks.>"]).await;
    publish_payloads(js, "acks.a", &["1", "2", "3"]).await;
    let c = stream
        .create_consumer(pull::Config {
            durable_name: Some("A".into()),
            ack_policy: AckPolicy::Explicit,
            ..Default::default()
        })
        .await
        .expect("create consumer");
    let msgs = fetch_n(&c, 3).await;
    // v1, as delivered.
    ack_sync(client, &msgs[0], "+ACK").await;
    // v2 without a domain, and with one and no token.
    for (m, prefix, token) in [(&msgs[1], "_.HASH", ".t0k"), (&msgs[2], "hub.HASH", "")] {
        let v1 = m.reply.clone().expect("ack subject");
        let rest = v1.as_str().strip_prefix("$JS.ACK.").expect("v1 form");
        client
            .request(format!("$JS.ACK.{prefix}.{rest}{token}"), "+ACK".into())
            .await
            .expect("v2 ack confirmed");
    }
    let i = stream.consumer_info("A").await.expect("consumer info");
    assert_eq!(i.ack_floor.stream_sequence, 3, "{i:?}");
    assert_eq!(i.num_ack_pending, 0, "{i:?}");
}
