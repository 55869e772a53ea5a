//! Atomic batch publish (ADR-50) with raw headers (async-nats 0.51 has the stream
//! setting but no batch API): all or nothing, and nats-server's answers. Run by
//! `jetstream_batch` (in-process, and against nats-server) and `e2e_s3_etcd`.

// Each test binary uses its own subset.
#![allow(dead_code)]

use async_nats::HeaderMap;
use async_nats::jetstream::{self, stream};
use bytes::Bytes;

/// Creates stream `name` on `<prefix>.>` with `allow_atomic` as given.
pub async fn create(js: &jetstream::Context, name: &str, prefix: &str, atomic: bool) {
    js.create_stream(stream::Config {
        name: name.into(),
        subjects: vec![format!("{prefix}.>")],
        allow_atomic_publish: atomic,
        ..Default::default()
    })
    .await
    .unwrap_or_else(|e| panic!("create {name}: {e}"));
}

/// The batch headers of message `seq` of batch `id` (`commit`: `1` or `eob`).
pub fn batch_headers(id: &str, seq: u64, commit: Option<&str>) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert("Nats-Batch-Id", id);
    h.insert("Nats-Batch-Sequence", seq.to_string().as_str());
    if let Some(c) = commit {
        h.insert("Nats-Batch-Commit", c);
    }
    h
}

/// Sends a request and returns the reply payload as text.
pub async fn ask(client: &async_nats::Client, subject: &str, headers: HeaderMap) -> String {
    let reply = client
        .request_with_headers(subject.to_owned(), headers, Bytes::from_static(b"x"))
        .await
        .unwrap_or_else(|e| panic!("request to {subject}: {e}"));
    String::from_utf8_lossy(&reply.payload).into_owned()
}

/// Sends batch `id` as ADR-50 clients do: message 1 and every 100th as a request (the
/// empty reply says they are staged: flow control, as the Go batch publisher's
/// ack-every option), the others without replies, message `i` on
/// `<prefix>.<i>` (header `extra` on message `extra.0`), then the commit with message
/// `n`; returns the commit's answer.
pub async fn batch(
    client: &async_nats::Client,
    prefix: &str,
    id: &str,
    n: u64,
    extra: Option<(u64, &str, &str)>,
) -> String {
    for seq in 1..n {
        let mut h = batch_headers(id, seq, None);
        if let Some((at, name, value)) = extra
            && at == seq
        {
            h.insert(name, value);
        }
        let subject = format!("{prefix}.{seq}");
        let payload = Bytes::from(vec![b'x'; 1024]);
        if seq == 1 || seq % 100 == 0 {
            let started = client
                .request_with_headers(subject, h, payload)
                .await
                .expect("staged message answered");
            assert!(started.payload.is_empty(), "message {seq} staged");
        } else {
            client
                .publish_with_headers(subject, h, payload)
                .await
                .expect("publish");
        }
    }
    ask(
        client,
        &format!("{prefix}.{n}"),
        batch_headers(id, n, Some("1")),
    )
    .await
}

/// Each case's answer, in order, for a stream `B` (`b.>`, atomic) and `C` (`c.>`,
/// not atomic), both created by the caller and empty.
pub async fn answers(client: &async_nats::Client) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    let h = batch_headers;
    let with = |mut map: HeaderMap, name: &str, value: &str| {
        map.insert(name, value);
        map
    };
    out.push(("disabled", ask(client, "c.1", h("x", 1, None)).await));
    out.push(("staged", ask(client, "b.1", h("a", 1, None)).await));
    out.push(("staged 2", ask(client, "b.2", h("a", 2, None)).await));
    out.push(("commit", ask(client, "b.3", h("a", 3, Some("1"))).await));
    out.push(("eob staged", ask(client, "b.1", h("e", 1, None)).await));
    out.push((
        "eob commit",
        ask(client, "b.1", h("e", 2, Some("eob"))).await,
    ));
    out.push(("gap staged", ask(client, "b.1", h("g", 1, None)).await));
    out.push(("gap", ask(client, "b.1", h("g", 3, None)).await));
    out.push(("after gap", ask(client, "b.1", h("g", 4, Some("1"))).await));
    out.push(("unknown", ask(client, "b.1", h("u", 5, Some("1"))).await));
    let mut no_seq = HeaderMap::new();
    no_seq.insert("Nats-Batch-Id", "n");
    out.push(("no sequence", ask(client, "b.1", no_seq).await));
    out.push((
        "bad commit",
        ask(client, "b.1", h("bc", 1, Some("yes"))).await,
    ));
    out.push((
        "long id",
        ask(client, "b.1", h(&"x".repeat(65), 1, None)).await,
    ));
    out.push((
        "too large",
        ask(client, "b.1", h("tl", 1001, Some("1"))).await,
    ));
    out.push((
        "last msg id",
        ask(
            client,
            "b.1",
            with(h("lm", 1, Some("1")), "Nats-Expected-Last-Msg-Id", "z"),
        )
        .await,
    ));
    out.push((
        "subject check staged",
        ask(client, "b.1", h("f", 1, None)).await,
    ));
    out.push((
        "subject check staged 2",
        ask(
            client,
            "b.9",
            with(h("f", 2, None), "Nats-Expected-Last-Subject-Sequence", "77"),
        )
        .await,
    ));
    out.push((
        "subject check",
        ask(client, "b.1", h("f", 3, Some("1"))).await,
    ));
    out.push(("last seq staged", ask(client, "b.1", h("l", 1, None)).await));
    out.push((
        "last seq not first",
        ask(
            client,
            "b.1",
            with(h("l", 2, Some("1")), "Nats-Expected-Last-Sequence", "5"),
        )
        .await,
    ));
    out.push((
        "same subject staged",
        ask(client, "b.q", h("s", 1, None)).await,
    ));
    out.push((
        "same subject",
        ask(
            client,
            "b.q",
            with(
                h("s", 2, Some("1")),
                "Nats-Expected-Last-Subject-Sequence",
                "0",
            ),
        )
        .await,
    ));
    out.push((
        "dup staged",
        ask(client, "b.1", with(h("d", 1, None), "Nats-Msg-Id", "m1")).await,
    ));
    out.push((
        "dup in batch",
        ask(
            client,
            "b.1",
            with(h("d", 2, Some("1")), "Nats-Msg-Id", "m1"),
        )
        .await,
    ));
    out.push((
        "msg id",
        ask(
            client,
            "b.1",
            with(h("d2", 1, Some("1")), "Nats-Msg-Id", "m2"),
        )
        .await,
    ));
    out.push((
        "msg id again",
        ask(
            client,
            "b.1",
            with(h("d3", 1, Some("1")), "Nats-Msg-Id", "m2"),
        )
        .await,
    ));
    out.push(("single", ask(client, "b.1", h("one", 1, Some("1"))).await));
    out.push((
        "eob first",
        ask(client, "b.1", h("eo", 1, Some("eob"))).await,
    ));
    out
}

/// 1,000 × 1 KiB in one batch are all stored; a batch whose message 500 fails
/// `Nats-Expected-Last-Subject-Sequence` stores none.
pub async fn thousand_all_or_nothing(client: &async_nats::Client, js: &jetstream::Context) {
    create(js, "ATOM", "atom", true).await;
    let ack = batch(client, "atom.x", "big", 1000, None).await;
    assert_eq!(
        ack, r#"{"stream":"ATOM","seq":1000,"batch":"big","count":1000}"#,
        "one PubAck for the batch"
    );
    let mut s = js.get_stream("ATOM").await.expect("stream");
    assert_eq!(s.info().await.expect("info").state.messages, 1000);

    let refused = batch(
        client,
        "atom.y",
        "bad",
        1000,
        Some((500, "Nats-Expected-Last-Subject-Sequence", "77")),
    )
    .await;
    assert_eq!(
        refused,
        r#"{"error":{"code":400,"err_code":10071,"description":"wrong last sequence: 0"},"stream":"ATOM","seq":0}"#
    );
    let info = s.info().await.expect("info");
    assert_eq!(
        info.state.messages, 1000,
        "none of the failed batch is stored"
    );
    assert_eq!(info.state.last_sequence, 1000);
    let msg = s.get_raw_message(1000).await.expect("last of the batch");
    assert_eq!(
        msg.headers.get("Nats-Batch-Commit").map(|v| v.as_str()),
        Some("1")
    );
}
