//! Delivery pacing scenarios, compared between nats-server 2.15.1 and InfiniStream:
//! `replay_policy: original`, `rate_limit_bps` and `sample_freq`'s ack metrics. Run by
//! `consumer_pacing` (in-process agent) and `e2e_consumers_s3_etcd` (real S3 server and
//! etcd). The including test binary provides `side_by_side`. The checks are events
//! and generous lower bounds only.

use std::time::Duration;

use bytes::Bytes;
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::side_by_side::{api, next};

async fn publish(client: &async_nats::Client, subject: &str, payload: Bytes) {
    async_nats::jetstream::new(client.clone())
        .publish(subject.to_owned(), payload)
        .await
        .expect("publish")
        .await
        .expect("publish acked");
}

/// `n` messages from `sub`: (stream seq, stored timestamp, when it arrived).
async fn receive(sub: &mut async_nats::Subscriber, n: usize) -> Vec<(u64, i64, Instant)> {
    let mut out = Vec::new();
    while out.len() < n {
        let m = next(sub).await;
        if m.status.is_some() {
            continue;
        }
        let reply = m.reply.as_deref().expect("ack subject");
        let t: Vec<&str> = reply.split('.').collect();
        out.push((
            t[5].parse().expect("stream seq"),
            t[7].parse().expect("timestamp"),
            Instant::now(),
        ));
    }
    out
}

/// Order 1, 2, 3, and the 1 → 2 gap (stored at least 400 ms apart) delivered at least
/// half as wide.
fn assert_replayed(got: &[(u64, i64, Instant)], server: &str) {
    let seqs: Vec<u64> = got.iter().map(|g| g.0).collect();
    assert_eq!(seqs, [1, 2, 3], "{server}");
    let stored = Duration::from_nanos(u64::try_from(got[1].1 - got[0].1).expect("ordered"));
    assert!(
        stored >= Duration::from_millis(400),
        "{server}: stored gap {stored:?}"
    );
    let delivered = got[1].2 - got[0].2;
    assert!(
        delivered >= stored / 2,
        "{server}: gap of {stored:?} delivered in {delivered:?}"
    );
}

pub async fn replay_original(client: &async_nats::Client, server: &str) {
    api(
        client,
        "$JS.API.STREAM.CREATE.RO",
        &json!({"name": "RO", "subjects": ["ro.>"]}).to_string(),
    )
    .await;
    publish(client, "ro.a", Bytes::from_static(b"1")).await;
    tokio::time::sleep(Duration::from_millis(450)).await;
    publish(client, "ro.a", Bytes::from_static(b"2")).await;
    publish(client, "ro.a", Bytes::from_static(b"3")).await;
    // Push.
    let mut push = client.subscribe("dlv.ro").await.expect("subscribe");
    client.flush().await.expect("flush");
    let created = api(
        client,
        "$JS.API.CONSUMER.CREATE.RO.P",
        &json!({"stream_name": "RO", "config": {"durable_name": "P", "ack_policy": "none",
            "deliver_subject": "dlv.ro", "replay_policy": "original"}})
        .to_string(),
    )
    .await;
    assert_eq!(
        created["config"]["replay_policy"],
        json!("original"),
        "{created}"
    );
    assert_replayed(&receive(&mut push, 3).await, server);
    // Pull: one request for all three.
    api(
        client,
        "$JS.API.CONSUMER.CREATE.RO.Q",
        &json!({"stream_name": "RO", "config": {"durable_name": "Q", "ack_policy": "explicit",
            "replay_policy": "original"}})
        .to_string(),
    )
    .await;
    let inbox = client.new_inbox();
    let mut pull = client.subscribe(inbox.clone()).await.expect("subscribe");
    client
        .publish_with_reply(
            "$JS.API.CONSUMER.MSG.NEXT.RO.Q".to_owned(),
            inbox,
            Bytes::from(json!({"batch": 3, "expires": 10_000_000_000u64}).to_string()),
        )
        .await
        .expect("pull request");
    assert_replayed(&receive(&mut pull, 3).await, server);
}

/// 20 messages of 1,000 bytes through a push consumer limited to 10,000 bytes/s with
/// a 2,000-byte burst: all arrive, in order, over at least a second. A pull consumer
/// with a rate limit is refused with nats-server's error. Returns that error.
pub async fn rate_limited(client: &async_nats::Client, server: &str) -> Value {
    api(
        client,
        "$JS.API.STREAM.CREATE.RL",
        &json!({"name": "RL", "subjects": ["rl.>"], "max_msg_size": 2000}).to_string(),
    )
    .await;
    for _ in 0..20 {
        publish(client, "rl.a", Bytes::from(vec![b'x'; 1000])).await;
    }
    let mut push = client.subscribe("dlv.rl").await.expect("subscribe");
    client.flush().await.expect("flush");
    let created = api(
        client,
        "$JS.API.CONSUMER.CREATE.RL.P",
        &json!({"stream_name": "RL", "config": {"durable_name": "P", "ack_policy": "none",
            "deliver_subject": "dlv.rl", "rate_limit_bps": 80_000}})
        .to_string(),
    )
    .await;
    assert_eq!(
        created["config"]["rate_limit_bps"],
        json!(80_000),
        "{created}"
    );
    let got = receive(&mut push, 20).await;
    let seqs: Vec<u64> = got.iter().map(|g| g.0).collect();
    assert_eq!(seqs, (1..=20).collect::<Vec<u64>>(), "{server}");
    let spread = got[19].2 - got[0].2;
    assert!(
        spread >= Duration::from_secs(1),
        "{server}: 20 KB at 10 KB/s delivered in {spread:?}"
    );
    let refused = api(
        client,
        "$JS.API.CONSUMER.CREATE.RL.Q",
        &json!({"stream_name": "RL", "config": {"durable_name": "Q", "ack_policy": "explicit",
            "rate_limit_bps": 80_000}})
        .to_string(),
    )
    .await;
    refused["error"].clone()
}

/// `sample_freq: 100%`: one ack metric per `+ACK` (none for `-NAK` or `+TERM`), with
/// the delivery's sequences and count and a positive `ack_time`. Returns the metrics
/// without ids, times and `ack_time`.
pub async fn sampled_acks(client: &async_nats::Client) -> Vec<Value> {
    let mut metrics = client
        .subscribe("$JS.EVENT.METRIC.CONSUMER.ACK.>")
        .await
        .expect("subscribe");
    client.flush().await.expect("flush");
    api(
        client,
        "$JS.API.STREAM.CREATE.SF",
        &json!({"name": "SF", "subjects": ["sf.>"]}).to_string(),
    )
    .await;
    for _ in 0..4 {
        publish(client, "sf.a", Bytes::from_static(b"x")).await;
    }
    let created = api(
        client,
        "$JS.API.CONSUMER.CREATE.SF.C",
        &json!({"stream_name": "SF", "config": {"durable_name": "C", "ack_policy": "explicit",
            "sample_freq": "100%"}})
        .to_string(),
    )
    .await;
    assert_eq!(created["config"]["sample_freq"], json!("100%"), "{created}");
    let pull = async |n: usize| {
        let inbox = client.new_inbox();
        let mut sub = client.subscribe(inbox.clone()).await.expect("subscribe");
        client
            .publish_with_reply(
                "$JS.API.CONSUMER.MSG.NEXT.SF.C".to_owned(),
                inbox,
                Bytes::from(json!({"batch": n, "expires": 5_000_000_000u64}).to_string()),
            )
            .await
            .expect("pull request");
        let mut replies = Vec::new();
        while replies.len() < n {
            let m = next(&mut sub).await;
            replies.push(m.reply.expect("ack subject").to_string());
        }
        replies
    };
    let first = pull(4).await;
    for (reply, kind) in first.iter().zip(["+ACK", "+ACK", "-NAK", "+TERM"]) {
        client
            .request(reply.clone(), Bytes::from_static(kind.as_bytes()))
            .await
            .expect("ack confirmed");
    }
    let again = pull(1).await;
    client
        .request(again[0].clone(), Bytes::from_static(b"+ACK"))
        .await
        .expect("ack confirmed");
    let mut out = Vec::new();
    for _ in 0..3 {
        let m = next(&mut metrics).await;
        assert_eq!(m.subject.as_str(), "$JS.EVENT.METRIC.CONSUMER.ACK.SF.C");
        let mut v: Value = serde_json::from_slice(&m.payload).expect("json metric");
        assert!(v["ack_time"].as_i64().is_some_and(|t| t > 0), "{v}");
        if let Some(o) = v.as_object_mut() {
            for k in ["id", "timestamp", "ack_time"] {
                o.remove(k);
            }
        }
        out.push(v);
    }
    out
}
