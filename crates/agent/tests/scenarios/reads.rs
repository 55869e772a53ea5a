//! Stream read scenarios, run by `jetstream_reads` against an in-process agent and by
//! `e2e_s3_etcd` against agents on a real S3 server and etcd. Each scenario deletes
//! the stream it creates, so several can share one deployment.

use async_nats::HeaderMap;
use async_nats::jetstream::{self, stream};

pub async fn create(
    js: &jetstream::Context,
    name: &str,
    subjects: &str,
    direct: bool,
) -> stream::Stream {
    js.create_stream(stream::Config {
        name: name.into(),
        subjects: vec![subjects.into()],
        allow_direct: direct,
        ..Default::default()
    })
    .await
    .expect("create stream")
}

/// Publishes `(subject, payload, optional header)` in order and waits for every ack.
pub async fn publish_all(js: &jetstream::Context, msgs: &[(&str, &str, Option<&str>)]) -> Vec<u64> {
    let mut acks = Vec::new();
    for (subject, payload, header) in msgs {
        let ack = match header {
            Some(value) => {
                let mut headers = HeaderMap::new();
                headers.insert("X-Test", *value);
                js.publish_with_headers(subject.to_string(), headers, payload.to_string().into())
                    .await
            }
            None => {
                js.publish(subject.to_string(), payload.to_string().into())
                    .await
            }
        };
        acks.push(ack.expect("publish"));
    }
    let mut seqs = Vec::new();
    for ack in acks {
        seqs.push(ack.await.expect("ack").sequence);
    }
    seqs
}

pub const MSGS: &[(&str, &str, Option<&str>)] = &[
    ("reads.a", "a1", None),
    ("reads.b", "b1", Some("first")),
    ("reads.a", "a2", None),
    ("reads.c.x", "c1", Some("second")),
    ("reads.b", "b2", None),
    ("reads.a", "a3", Some("third")),
];

/// `STREAM.MSG.GET` by sequence, last by subject and next by subject; misses are 10037.
pub async fn msg_get_by_seq_last_and_next_by_subject(js: &jetstream::Context) {
    let stream = create(js, "READS", "reads.>", false).await;
    assert_eq!(publish_all(js, MSGS).await, vec![1, 2, 3, 4, 5, 6]);

    for (i, (subject, payload, header)) in MSGS.iter().enumerate() {
        let seq = i as u64 + 1;
        let msg = stream.get_raw_message(seq).await.expect("get by seq");
        assert_eq!(msg.sequence, seq);
        assert_eq!(msg.subject.as_str(), *subject);
        assert_eq!(&msg.payload[..], payload.as_bytes());
        assert_eq!(
            msg.headers.get("X-Test").map(|v| v.as_str()),
            *header,
            "headers round trip at seq {seq}"
        );
        assert!(msg.time.unix_timestamp() > 1_600_000_000);
    }

    let last = stream
        .get_last_raw_message_by_subject("reads.a")
        .await
        .expect("last by subject");
    assert_eq!((last.sequence, &last.payload[..]), (6, &b"a3"[..]));
    assert_eq!(
        last.headers.get("X-Test").map(|v| v.as_str()),
        Some("third")
    );

    let next = stream
        .get_first_raw_message_by_subject("reads.b", 3)
        .await
        .expect("next by subject");
    assert_eq!(next.sequence, 5);
    let next = stream
        .get_first_raw_message_by_subject("reads.c.*", 1)
        .await
        .expect("next by wildcard");
    assert_eq!(next.sequence, 4);
    let first = stream
        .get_first_raw_message_by_subject("reads.b", 1)
        .await
        .expect("first by subject");
    assert_eq!(first.sequence, 2);

    // Misses are nats-server's 10037.
    let err = stream.get_raw_message(99).await.expect_err("past the end");
    assert!(err.to_string().contains("no message found"), "{err}");
    let err = stream
        .get_last_raw_message_by_subject("reads.none")
        .await
        .expect_err("unknown subject");
    assert!(err.to_string().contains("no message found"), "{err}");
    let err = stream
        .get_first_raw_message_by_subject("reads.a", 7)
        .await
        .expect_err("nothing after");
    assert!(err.to_string().contains("no message found"), "{err}");
    assert!(js.delete_stream("READS").await.expect("delete").success);
}

/// `DIRECT.GET` by sequence, last / next / first for a subject, with nats-server's headers.
pub async fn direct_get_by_seq_and_last_for_subject(js: &jetstream::Context) {
    let stream = create(js, "DIRECT", "reads.>", true).await;
    publish_all(js, MSGS).await;

    let msg = stream.direct_get(4).await.expect("direct get");
    assert_eq!(msg.sequence, 4);
    assert_eq!(msg.subject.as_str(), "reads.c.x");
    assert_eq!(&msg.payload[..], b"c1");
    assert_eq!(
        msg.headers.get("X-Test").map(|v| v.as_str()),
        Some("second")
    );
    assert_eq!(
        msg.headers.get("Nats-Stream").map(|v| v.as_str()),
        Some("DIRECT")
    );
    assert_eq!(
        msg.headers.get("Nats-Sequence").map(|v| v.as_str()),
        Some("4")
    );
    assert_eq!(
        msg.headers.get("Nats-Subject").map(|v| v.as_str()),
        Some("reads.c.x")
    );
    assert!(msg.headers.get("Nats-Time-Stamp").is_some());

    let last = stream
        .direct_get_last_for_subject("reads.b")
        .await
        .expect("direct last");
    assert_eq!((last.sequence, &last.payload[..]), (5, &b"b2"[..]));
    let next = stream
        .direct_get_next_for_subject("reads.a", Some(2))
        .await
        .expect("direct next");
    assert_eq!(next.sequence, 3);
    let first = stream
        .direct_get_first_for_subject("reads.c.>")
        .await
        .expect("direct first");
    assert_eq!(first.sequence, 4);

    let err = stream.direct_get(99).await.expect_err("missing");
    assert_eq!(
        err.kind(),
        jetstream::stream::DirectGetErrorKind::NotFound,
        "{err}"
    );
    let err = stream
        .direct_get_last_for_subject("reads.none")
        .await
        .expect_err("missing subject");
    assert_eq!(err.kind(), jetstream::stream::DirectGetErrorKind::NotFound);
    assert!(js.delete_stream("DIRECT").await.expect("delete").success);
}

/// Deleted and purged messages stay invisible to every read; later ones read back.
pub async fn deleted_and_purged_messages_are_not_returned(js: &jetstream::Context) {
    let mut stream = create(js, "GONE", "reads.>", true).await;
    publish_all(js, MSGS).await;

    assert!(stream.delete_message(6).await.expect("delete"));
    let err = stream.get_raw_message(6).await.expect_err("deleted");
    assert!(err.to_string().contains("no message found"), "{err}");
    let err = stream.direct_get(6).await.expect_err("deleted");
    assert_eq!(err.kind(), jetstream::stream::DirectGetErrorKind::NotFound);
    // The subject's last message is now the previous one.
    let last = stream
        .get_last_raw_message_by_subject("reads.a")
        .await
        .expect("last");
    assert_eq!(last.sequence, 3);
    let last = stream
        .direct_get_last_for_subject("reads.a")
        .await
        .expect("direct last");
    assert_eq!(last.sequence, 3);
    // Next-by-subject skips the deleted sequence.
    let err = stream
        .get_first_raw_message_by_subject("reads.a", 4)
        .await
        .expect_err("only the deleted one was after 4");
    assert!(err.to_string().contains("no message found"), "{err}");

    // Purge one subject, then everything.
    stream
        .purge()
        .filter("reads.b")
        .await
        .expect("purge subject");
    assert!(stream.get_raw_message(2).await.is_err());
    assert!(stream.direct_get_last_for_subject("reads.b").await.is_err());
    assert_eq!(stream.get_raw_message(1).await.expect("kept").sequence, 1);

    stream.purge().await.expect("purge all");
    for seq in 1..=6 {
        assert!(
            stream.get_raw_message(seq).await.is_err(),
            "seq {seq} purged"
        );
        assert!(stream.direct_get(seq).await.is_err(), "seq {seq} purged");
    }
    assert_eq!(stream.info().await.expect("info").state.messages, 0);

    // New messages after a purge are readable at their new sequences.
    let seqs = publish_all(js, &[("reads.a", "after", None)]).await;
    assert_eq!(seqs, vec![7]);
    let msg = stream.get_raw_message(7).await.expect("after purge");
    assert_eq!(&msg.payload[..], b"after");
    assert!(js.delete_stream("GONE").await.expect("delete").success);
}
