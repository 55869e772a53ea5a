//! Stream reads through an in-process agent with unmodified async-nats: `STREAM.MSG.GET`
//! (by sequence, last by subject, next by subject), `DIRECT.GET` (by sequence, last by
//! subject via the subject form, batch, multi-last), the status lines clients match on,
//! deleted and purged messages staying invisible, and the read cache doing one bucket
//! GET per chunk however many messages are read from it.

use std::time::Duration;

use async_nats::jetstream;
use futures::StreamExt;
use infinistream_agent::AgentHandle;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[path = "scenarios/reads.rs"]
mod reads;
use reads::{MSGS, create, publish_all};

#[path = "support/in_process.rs"]
mod in_process;

use in_process::start_agent;

async fn js(agent: &AgentHandle) -> (async_nats::Client, jetstream::Context) {
    let client = async_nats::connect(format!("nats://{}", agent.client_addr()))
        .await
        .expect("connect");
    let mut ctx = jetstream::new(client.clone());
    ctx.set_timeout(Duration::from_secs(10));
    (client, ctx)
}

#[tokio::test]
async fn msg_get_by_seq_last_and_next_by_subject() {
    let dir = tempfile::tempdir().expect("tempdir");
    let agent = start_agent(&dir).await;
    let (_client, js) = js(&agent).await;
    reads::msg_get_by_seq_last_and_next_by_subject(&js).await;
}

#[tokio::test]
async fn direct_get_by_seq_and_last_for_subject() {
    let dir = tempfile::tempdir().expect("tempdir");
    let agent = start_agent(&dir).await;
    let (_client, js) = js(&agent).await;
    reads::direct_get_by_seq_and_last_for_subject(&js).await;
}

#[tokio::test]
async fn deleted_and_purged_messages_are_not_returned() {
    let dir = tempfile::tempdir().expect("tempdir");
    let agent = start_agent(&dir).await;
    let (_client, js) = js(&agent).await;
    reads::deleted_and_purged_messages_are_not_returned(&js).await;
}

#[tokio::test]
async fn direct_get_needs_allow_direct_and_unknown_streams_fail() {
    let dir = tempfile::tempdir().expect("tempdir");
    let agent = start_agent(&dir).await;
    let (client, js) = js(&agent).await;
    let stream = create(&js, "NODIRECT", "nodirect.>", false).await;
    publish_all(&js, &[("nodirect.a", "x", None)]).await;

    // As with nats-server, nothing answers direct gets of a stream without allow_direct.
    let err = stream.direct_get(1).await.expect_err("not allowed");
    assert!(
        !matches!(err.kind(), jetstream::stream::DirectGetErrorKind::NotFound),
        "{err:?}"
    );
    let reply = client
        .request("$JS.API.DIRECT.GET.NODIRECT", r#"{"seq":1}"#.into())
        .await;
    assert!(
        matches!(
            reply.as_ref().map_err(|e| e.kind()),
            Err(async_nats::RequestErrorKind::NoResponders)
        ),
        "{reply:?}"
    );
    // The JSON get still works.
    assert_eq!(stream.get_raw_message(1).await.expect("get").sequence, 1);

    // Unknown stream: 10059.
    let reply = client
        .request("$JS.API.STREAM.MSG.GET.MISSING", r#"{"seq":1}"#.into())
        .await
        .expect("reply");
    let body: serde_json::Value = serde_json::from_slice(&reply.payload).expect("json");
    assert_eq!(body["error"]["err_code"], 10059, "{body}");
    assert_eq!(
        body["type"],
        "io.nats.jetstream.api.v1.stream_msg_get_response"
    );

    // Bad requests: malformed JSON, no address, batch in a JSON get.
    for bad in [&b"{nope"[..], b"{}", br#"{"seq":1,"batch":2}"#] {
        let reply = client
            .request("$JS.API.STREAM.MSG.GET.NODIRECT", bad.to_vec().into())
            .await
            .expect("reply");
        let body: serde_json::Value = serde_json::from_slice(&reply.payload).expect("json");
        assert!(body["error"]["code"] == 400, "{body}");
    }
}

#[tokio::test]
async fn direct_get_status_lines_batch_and_multi_last() {
    let dir = tempfile::tempdir().expect("tempdir");
    let agent = start_agent(&dir).await;
    let (client, js) = js(&agent).await;
    create(&js, "BATCH", "reads.>", true).await;
    publish_all(&js, MSGS).await;

    // Status lines for bad requests.
    for (body, code, text) in [
        (&b""[..], 408u16, "Empty Request"),
        (b"{nope", 408, "Malformed Request"),
        (br#"{"seq":1,"last_by_subj":"reads.a"}"#, 408, "Bad Request"),
        (br#"{"seq":99}"#, 404, "Message Not Found"),
    ] {
        let reply = client
            .request("$JS.API.DIRECT.GET.BATCH", body.to_vec().into())
            .await
            .expect("reply");
        assert_eq!(reply.status.map(|s| s.as_u16()), Some(code), "{body:?}");
        assert_eq!(reply.description.as_deref(), Some(text), "{body:?}");
        assert!(reply.payload.is_empty());
    }

    // A batch of 3 from seq 2 on subject reads.a|b (wildcard filter), then EOB.
    let inbox = client.new_inbox();
    let mut sub = client.subscribe(inbox.clone()).await.expect("subscribe");
    client
        .publish_with_reply(
            "$JS.API.DIRECT.GET.BATCH",
            inbox.clone(),
            r#"{"seq":2,"batch":2,"next_by_subj":"reads.*"}"#.into(),
        )
        .await
        .expect("request");
    let mut got = Vec::new();
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), sub.next())
            .await
            .expect("reply in time")
            .expect("subscription open");
        if msg.status.is_some() {
            assert_eq!(msg.status.map(|s| s.as_u16()), Some(204));
            let headers = msg.headers.expect("eob headers");
            // After seqs 2 and 3, reads.b (5) and reads.a (6) still match.
            assert_eq!(
                headers.get("Nats-Num-Pending").map(|v| v.as_str()),
                Some("2")
            );
            assert_eq!(
                headers.get("Nats-Last-Sequence").map(|v| v.as_str()),
                Some("3")
            );
            break;
        }
        let headers = msg.headers.expect("headers");
        got.push((
            headers.get("Nats-Sequence").map(|v| v.to_string()),
            headers.get("Nats-Num-Pending").map(|v| v.to_string()),
            headers.get("Nats-Last-Sequence").map(|v| v.to_string()),
        ));
    }
    let s = |v: &str| Some(v.to_owned());
    assert_eq!(
        got,
        vec![(s("2"), s("3"), s("0")), (s("3"), s("2"), s("2"))]
    );

    // Without a filter the pending count comes from the index alone.
    let inbox2 = client.new_inbox();
    let mut sub2 = client.subscribe(inbox2.clone()).await.expect("subscribe");
    client
        .publish_with_reply(
            "$JS.API.DIRECT.GET.BATCH",
            inbox2,
            r#"{"seq":1,"batch":2}"#.into(),
        )
        .await
        .expect("request");
    let mut seqs = Vec::new();
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), sub2.next())
            .await
            .expect("reply in time")
            .expect("subscription open");
        let headers = msg.headers.clone().expect("headers");
        let pending = headers.get("Nats-Num-Pending").map(|v| v.to_string());
        if msg.status.is_some() {
            assert_eq!(pending.as_deref(), Some("4"), "seqs 3..=6 left");
            break;
        }
        seqs.push(headers.get("Nats-Sequence").map(|v| v.to_string()));
    }
    assert_eq!(seqs, vec![Some("1".to_owned()), Some("2".to_owned())]);

    // Multi-last: the last message of each matching subject, in sequence order.
    client
        .publish_with_reply(
            "$JS.API.DIRECT.GET.BATCH",
            inbox.clone(),
            r#"{"multi_last":["reads.a","reads.c.>"]}"#.into(),
        )
        .await
        .expect("request");
    let (seqs, up_to) = collect_batch(&mut sub).await;
    assert_eq!(seqs, vec![4, 6]);
    assert_eq!(up_to.as_deref(), Some("6"));

    // Bounded in the past: the last of each subject at or below seq 4.
    client
        .publish_with_reply(
            "$JS.API.DIRECT.GET.BATCH",
            inbox.clone(),
            r#"{"multi_last":["reads.a","reads.b"],"up_to_seq":4}"#.into(),
        )
        .await
        .expect("request");
    let (seqs, up_to) = collect_batch(&mut sub).await;
    assert_eq!(seqs, vec![2, 3]);
    assert_eq!(up_to.as_deref(), Some("4"));

    // Nothing matches: 404 No Results.
    let reply = client
        .request(
            "$JS.API.DIRECT.GET.BATCH",
            r#"{"multi_last":["other.>"]}"#.into(),
        )
        .await
        .expect("reply");
    assert_eq!(reply.status.map(|s| s.as_u16()), Some(404));
    assert_eq!(reply.description.as_deref(), Some("No Results"));
}

/// Sequences of a batched direct-get reply, and the EOB's `Nats-UpTo-Sequence`.
async fn collect_batch(sub: &mut async_nats::Subscriber) -> (Vec<u64>, Option<String>) {
    let mut seqs = Vec::new();
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), sub.next())
            .await
            .expect("reply in time")
            .expect("subscription open");
        let headers = msg.headers.clone().expect("headers");
        if msg.status.is_some() {
            assert_eq!(msg.status.map(|s| s.as_u16()), Some(204));
            let up_to = headers.get("Nats-UpTo-Sequence").map(|v| v.to_string());
            return (seqs, up_to);
        }
        let seq = headers
            .get("Nats-Sequence")
            .map(|v| v.as_str().parse::<u64>());
        seqs.push(seq.expect("sequence header").expect("numeric sequence"));
    }
}

/// Reads of many messages from one chunk cost one footer GET and one chunk GET, and
/// concurrent reads of a fresh chunk are coalesced.
#[tokio::test]
async fn read_cache_fetches_each_chunk_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let agent = start_agent(&dir).await;
    let (_client, js) = js(&agent).await;
    let stream = create(&js, "CACHED", "cached.>", true).await;
    // One burst: the first publish goes at once (the agent is idle), the rest in the next
    // flush; the GETs below are bounded by the objects, however many that took.
    let mut acks = Vec::new();
    for i in 0..50 {
        acks.push(
            js.publish(format!("cached.{}", i % 5), format!("m{i}").into())
                .await
                .expect("publish"),
        );
    }
    let mut seqs = Vec::new();
    for ack in acks {
        seqs.push(ack.await.expect("ack").sequence);
    }
    let objects = agent.bucket().list_batches().await.expect("list").len() as f64;

    let before = scrape(&agent).await;
    let gets = futures::future::join_all(seqs.iter().map(|&seq| stream.direct_get(seq))).await;
    for (seq, got) in seqs.iter().zip(gets) {
        assert_eq!(got.expect("get").sequence, *seq);
    }
    for &seq in &seqs {
        stream.get_raw_message(seq).await.expect("get again");
    }
    let after = scrape(&agent).await;
    let chunk_gets = metric(
        &after,
        "infinistream_fetcher_bucket_gets_total{cache=\"chunk\"}",
    ) - metric(
        &before,
        "infinistream_fetcher_bucket_gets_total{cache=\"chunk\"}",
    );
    let footer_gets = metric(
        &after,
        "infinistream_fetcher_bucket_gets_total{cache=\"footer\"}",
    ) - metric(
        &before,
        "infinistream_fetcher_bucket_gets_total{cache=\"footer\"}",
    );
    assert!(
        chunk_gets >= 1.0 && chunk_gets <= objects && footer_gets <= objects,
        "{chunk_gets} chunk and {footer_gets} footer GETs for {objects} objects"
    );
    let fetcher: Vec<&str> = after.lines().filter(|l| l.contains("fetcher")).collect();
    assert!(
        metric(
            &after,
            "infinistream_fetcher_cache_hits_total{cache=\"chunk\"}"
        ) >= 50.0,
        "{fetcher:?}"
    );
    assert!(
        metric(
            &after,
            "infinistream_fetcher_bucket_read_bytes_total{cache=\"chunk\"}"
        ) > 0.0
    );
}

async fn scrape(agent: &AgentHandle) -> String {
    let mut conn = tokio::net::TcpStream::connect(agent.http_addr())
        .await
        .expect("connect monitoring");
    conn.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .await
        .expect("request");
    let mut out = String::new();
    conn.read_to_string(&mut out).await.expect("response");
    out
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name).map(str::trim))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}
