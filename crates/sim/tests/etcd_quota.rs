//! etcd out of space (`--quota-backend-bytes` small): once the metadata store refuses
//! writes, publishes fail with an error that names the cause, the control plane keeps
//! serving reads, and every message acked before stays readable.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use infinistream_gateway::{Batcher, BatcherConfig, GatewayMetrics, PendingRecord, PublishOutcome};
use infinistream_metastore::etcd::EtcdStore;
use infinistream_objstore::object_store::memory::InMemory;
use infinistream_objstore::{Bucket, BucketOptions};
use infinistream_proto::v1;
use infinistream_sim::harness::{self, ClientCommitter, ReplyAcks};
use infinistream_testkit::etcd::EtcdServer;
use infinistream_types::{SharedClock, SystemClock};
use tokio_util::sync::CancellationToken;

/// 2 MiB: etcd's own bookkeeping fits, a few hundred flushes of long msg ids do not.
const QUOTA: &str = "2097152";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_out_of_space_fails_publishes_clearly_and_keeps_what_was_acked() {
    let etcd = EtcdServer::start_with_args(&["--quota-backend-bytes", QUOTA]).expect("etcd");
    let store = EtcdStore::connect(&[etcd.endpoint()], "/quota/")
        .await
        .expect("etcd store");
    let clock: SharedClock = Arc::new(SystemClock);
    let (_cp, mut client) = harness::control_plane(Arc::new(store), clock.clone())
        .await
        .expect("control plane");
    harness::create_stream(&mut client, "S", &["s.>"])
        .await
        .expect("stream");
    let bucket = Bucket::with_store(
        Arc::new(InMemory::new()),
        "memory://",
        BucketOptions::for_group(harness::GROUP),
    );
    let acks = Arc::new(ReplyAcks::default());
    let (batcher, _writer) = Batcher::start(
        BatcherConfig {
            window: Duration::from_millis(50),
            flush_deadline: Duration::from_secs(2),
            agent_id: "agent-quota".into(),
            ..BatcherConfig::default()
        },
        bucket.clone(),
        Arc::new(ClientCommitter {
            client: client.clone(),
        }),
        acks.clone(),
        clock,
        GatewayMetrics::new(),
        CancellationToken::new(),
    );

    // Long msg ids fill the store's de-duplication table fast.
    let mut acked: Vec<(String, u64)> = Vec::new();
    let mut refusal = None;
    'rounds: for round in 0..400 {
        let mut answers = Vec::new();
        for i in 0..100 {
            let id = format!("r{round:03}-{i:03}");
            let reply = format!("reply-{id}");
            answers.push((id.clone(), acks.expect(&reply)));
            batcher
                .submit(PendingRecord {
                    stream: Arc::from("S"),
                    subject: Bytes::from("s.x"),
                    headers: Bytes::new(),
                    payload: Bytes::from(id.clone()),
                    meta: v1::RecordMeta {
                        msg_id: Some(format!("{id}-{}", "x".repeat(1000))),
                        ..Default::default()
                    },
                    reply: Some(reply),
                    batch: None,
                })
                .await
                .expect("submit");
        }
        for (id, rx) in answers {
            match rx.await.expect("an answer") {
                PublishOutcome::Stored { seq } => acked.push((id, seq)),
                PublishOutcome::Failed(e) => {
                    refusal = Some(e);
                    break 'rounds;
                }
                other => panic!("{id}: {other:?}"),
            }
        }
    }
    let refusal = refusal.expect("etcd never ran out of space");
    assert!(
        refusal.description.contains("database space exceeded"),
        "the error does not name the cause: {refusal:?}"
    );
    assert!(!acked.is_empty(), "nothing was acked before the quota");

    // Reads still work, and everything acked is there.
    let stored = harness::read_all(&mut client, bucket, "S")
        .await
        .expect("read back while etcd is out of space");
    for (id, seq) in &acked {
        let at = stored
            .iter()
            .find(|(s, _)| s == seq)
            .map(|(_, p)| p.as_slice());
        assert_eq!(at, Some(id.as_bytes()), "acked {id} at {seq} is lost");
    }
    println!(
        "etcd quota {QUOTA} bytes: {} publishes acked, then: {}",
        acked.len(),
        refusal.description
    );
}
