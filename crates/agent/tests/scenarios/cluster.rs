//! Scenarios over two agents sharing one control plane and one bucket, run by
//! `cluster_durability` (standalone embedded control plane, local bucket) and by
//! `e2e_s3_etcd` (control plane over etcd, S3 bucket).

// `context::Publish` is deprecated in async-nats 0.51 but is still the way its
// JetStream context sends Msg-Id and expected headers.
#![allow(deprecated)]

use std::time::Duration;

use async_nats::jetstream::{self, context::Publish, stream};

/// The same Msg-Id published through both agents is stored once; interleaved
/// publishes through both get contiguous sequences. Deletes its stream at the end.
pub async fn dedupe_across_two_agents(js_a: &jetstream::Context, js_b: &jetstream::Context) {
    js_a.create_stream(stream::Config {
        name: "SHARED".into(),
        subjects: vec!["shared.>".into()],
        ..Default::default()
    })
    .await
    .expect("create via A");

    // Agent B learns of the stream from the control plane.
    let mut learned = false;
    for _ in 0..100 {
        let ack = js_b
            .send_publish(
                "shared.x",
                Publish::build().payload("via b".into()).message_id("same"),
            )
            .await
            .expect("send")
            .await;
        if let Ok(ack) = ack {
            assert_eq!(ack.sequence, 1);
            assert!(!ack.duplicate);
            learned = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        learned,
        "agent B never captured the stream created through A"
    );
    let dup = js_a
        .send_publish(
            "shared.x",
            Publish::build().payload("via a".into()).message_id("same"),
        )
        .await
        .expect("send")
        .await
        .expect("ack");
    assert_eq!(
        (dup.sequence, dup.duplicate),
        (1, true),
        "same Msg-Id via A is a duplicate"
    );

    // Interleaved publishes through both agents get contiguous sequences.
    let mut acks = Vec::new();
    for i in 0..50 {
        let js = if i % 2 == 0 { &js_a } else { &js_b };
        acks.push(
            js.publish("shared.y", format!("{i}").into())
                .await
                .expect("send"),
        );
    }
    let mut seqs: Vec<u64> = Vec::new();
    for ack in acks {
        seqs.push(ack.await.expect("ack").sequence);
    }
    seqs.sort_unstable();
    assert_eq!(seqs, (2..=51).collect::<Vec<u64>>());
    let info = js_b
        .get_stream("SHARED")
        .await
        .expect("stream")
        .info()
        .await
        .expect("info")
        .clone();
    assert_eq!(info.state.messages, 51);
    assert!(js_a.delete_stream("SHARED").await.expect("delete").success);
}
