//! Overload and resource faults on the real write path (batcher, bucket decorators,
//! control-plane engine): each gets a clear answer and loses nothing acked.
//!
//! Runs on tokio's paused clock: a "slow" bucket delays on timers, so the tests take no
//! wall-clock time and assert orderings of events, not durations.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use infinistream_gateway::{Batcher, BatcherConfig, GatewayMetrics, PendingRecord, PublishOutcome};
use infinistream_metastore::memory::MemoryStore;
use infinistream_objstore::object_store::memory::InMemory;
use infinistream_objstore::{Bucket, BucketOptions, FaultError, FaultHandle, FaultRule, Op};
use infinistream_proto::v1;
use infinistream_sim::harness::{self, ClientCommitter, ReplyAcks, TokioClock};
use infinistream_types::SharedClock;
use tokio_util::sync::CancellationToken;

struct Rig {
    batcher: Batcher,
    acks: Arc<ReplyAcks>,
    metrics: GatewayMetrics,
    faults: FaultHandle,
    bucket: Bucket,
    client: infinistream_control_plane::ControlPlaneClient,
    _cp: infinistream_control_plane::ControlPlane,
}

async fn rig(config: BatcherConfig) -> Rig {
    let clock: SharedClock = Arc::new(TokioClock::new());
    let (cp, mut client) = harness::control_plane(Arc::new(MemoryStore::new()), clock.clone())
        .await
        .expect("control plane");
    harness::create_stream(&mut client, "S", &["s.>"])
        .await
        .expect("stream");
    let faults = FaultHandle::new();
    let bucket = Bucket::with_store(
        Arc::new(InMemory::new()),
        "memory://",
        BucketOptions {
            faults: Some(faults.clone()),
            ..BucketOptions::for_group(harness::GROUP)
        },
    );
    let acks = Arc::new(ReplyAcks::default());
    let metrics = GatewayMetrics::new();
    let (batcher, _writer) = Batcher::start(
        config,
        bucket.clone(),
        Arc::new(ClientCommitter {
            client: client.clone(),
        }),
        acks.clone(),
        clock,
        metrics.clone(),
        CancellationToken::new(),
    );
    Rig {
        batcher,
        acks,
        metrics,
        faults,
        bucket,
        client,
        _cp: cp,
    }
}

fn record(i: usize, payload_len: usize) -> PendingRecord {
    let mut payload = format!("m{i:06}").into_bytes();
    payload.resize(payload_len.max(payload.len()), b'.');
    PendingRecord {
        stream: Arc::from("S"),
        subject: Bytes::from("s.x"),
        headers: Bytes::new(),
        payload: Bytes::from(payload),
        meta: v1::RecordMeta::default(),
        reply: Some(format!("r{i}")),
        batch: None,
    }
}

fn id_of(payload: &[u8]) -> String {
    String::from_utf8_lossy(&payload[..7.min(payload.len())]).into_owned()
}

/// Every `(id, seq)` acked must read back at `seq`, and no message is stored twice.
async fn assert_acked_stored(rig: &mut Rig, acked: &[(String, u64)]) -> usize {
    let stored = harness::read_all(&mut rig.client, rig.bucket.clone(), "S")
        .await
        .expect("read back");
    let ids: BTreeSet<String> = stored.iter().map(|(_, p)| id_of(p)).collect();
    assert_eq!(ids.len(), stored.len(), "a message is stored twice");
    for (id, seq) in acked {
        let at = stored.iter().find(|(s, _)| s == seq).map(|(_, p)| id_of(p));
        assert_eq!(
            at.as_deref(),
            Some(id.as_str()),
            "acked {id} at {seq} is lost"
        );
    }
    stored.len()
}

#[tokio::test(start_paused = true)]
async fn a_publisher_that_outruns_the_bucket_is_slowed_with_bounded_memory_and_loses_nothing() {
    const LIMIT: usize = 64 * 1024;
    const MESSAGES: usize = 1000;
    let mut rig = rig(BatcherConfig {
        window: Duration::from_millis(50),
        max_buffered_bytes: LIMIT,
        flush_deadline: Duration::from_secs(60),
        agent_id: "agent-overload".into(),
        ..BatcherConfig::default()
    })
    .await;
    // Every PUT takes 2 s: the bucket is far slower than the publisher.
    rig.faults
        .add(FaultRule::delay(Op::Put, Duration::from_secs(2)));
    let mut answers = Vec::new();
    let mut before_first_put = 0;
    let mut peak = 0;
    for i in 0..MESSAGES {
        answers.push((format!("m{i:06}"), rig.acks.expect(&format!("r{i}"))));
        rig.batcher.submit(record(i, 1024)).await.expect("submit");
        peak = peak.max(rig.batcher.buffered_bytes());
        if rig.metrics.objects_written() == 0 {
            before_first_put += 1;
        }
    }
    assert!(
        peak <= LIMIT,
        "buffered {peak} bytes over the {LIMIT} limit"
    );
    // The publisher was held back: it could not hand over more than the buffer holds
    // before the bucket finished a PUT.
    assert!(
        before_first_put <= LIMIT / 1024,
        "{before_first_put} publishes were accepted before the first PUT finished"
    );
    let mut acked = Vec::new();
    for (id, rx) in answers {
        match rx.await.expect("an answer") {
            PublishOutcome::Stored { seq } => acked.push((id, seq)),
            other => panic!("{id}: {other:?}"),
        }
    }
    assert_eq!(assert_acked_stored(&mut rig, &acked).await, MESSAGES);
}

#[tokio::test(start_paused = true)]
async fn a_bucket_that_refuses_writes_fails_publishes_clearly_and_recovers() {
    let mut rig = rig(BatcherConfig {
        window: Duration::from_millis(50),
        agent_id: "agent-403".into(),
        ..BatcherConfig::default()
    })
    .await;
    let refusal = rig
        .faults
        .add(FaultRule::fail(Op::Put).with_error(FaultError::PermissionDenied));
    let answers: Vec<_> = (0..10).map(|i| rig.acks.expect(&format!("r{i}"))).collect();
    for i in 0..10 {
        rig.batcher.submit(record(i, 16)).await.expect("submit");
    }
    for rx in answers {
        match rx.await.expect("an answer") {
            PublishOutcome::Failed(e) => {
                assert_eq!((e.code, e.err_code), (503, 10077), "{e:?}");
                assert!(
                    e.description.contains("batch upload failed"),
                    "unclear error: {}",
                    e.description
                );
            }
            other => panic!("a refused upload was answered {other:?}"),
        }
    }
    // A 403 is permanent: no retries hammer the bucket, one refused PUT per flush.
    let flushes = rig
        .metrics
        .batches_sealed(infinistream_gateway::SealReason::Idle)
        + rig
            .metrics
            .batches_sealed(infinistream_gateway::SealReason::Window);
    assert_eq!(rig.faults.injected(), flushes, "a refused PUT was retried");

    rig.faults.remove(refusal);
    let answers: Vec<_> = (10..20)
        .map(|i| (format!("m{i:06}"), rig.acks.expect(&format!("r{i}"))))
        .collect();
    for i in 10..20 {
        rig.batcher.submit(record(i, 16)).await.expect("submit");
    }
    let mut acked = Vec::new();
    for (id, rx) in answers {
        match rx.await.expect("an answer") {
            PublishOutcome::Stored { seq } => acked.push((id, seq)),
            other => panic!("after the bucket recovered: {other:?}"),
        }
    }
    // Nothing refused was committed: the stream holds exactly the later ten, 1..=10.
    assert_eq!(
        acked.iter().map(|a| a.1).collect::<Vec<_>>(),
        (1..=10).collect::<Vec<_>>()
    );
    assert_eq!(assert_acked_stored(&mut rig, &acked).await, 10);
}

#[tokio::test(start_paused = true)]
async fn a_thousand_slow_consumers_get_redeliveries_and_hold_up_no_one() {
    const SLOW: usize = 1000;
    let mut rig = rig(BatcherConfig {
        window: Duration::from_millis(50),
        agent_id: "agent-slow".into(),
        ..BatcherConfig::default()
    })
    .await;
    async fn publish(rig: &Rig, range: std::ops::Range<usize>) -> Vec<u64> {
        let answers: Vec<_> = range
            .clone()
            .map(|i| rig.acks.expect(&format!("r{i}")))
            .collect();
        for i in range {
            rig.batcher.submit(record(i, 64)).await.expect("submit");
        }
        let mut seqs = Vec::new();
        for rx in answers {
            match rx.await.expect("an answer") {
                PublishOutcome::Stored { seq } => seqs.push(seq),
                other => panic!("{other:?}"),
            }
        }
        seqs
    }
    async fn claim(
        client: &mut infinistream_control_plane::ControlPlaneClient,
        name: &str,
    ) -> Vec<v1::Delivery> {
        let resp = client
            .claim(v1::ClaimRequest {
                stream: "S".into(),
                consumer: name.into(),
                agent_id: "agent-slow".into(),
                batch: 100,
                acked_stream_seqs: Vec::new(),
                ..Default::default()
            })
            .await
            .unwrap_or_else(|e| panic!("claim {name}: {e}"));
        resp.deliveries
    }
    assert_eq!(publish(&rig, 0..20).await, (1..=20).collect::<Vec<_>>());
    let ack_wait = Duration::from_secs(1);
    for c in 0..SLOW {
        harness::create_consumer(&mut rig.client, "S", &format!("slow{c}"), ack_wait)
            .await
            .expect("consumer");
    }
    harness::create_consumer(&mut rig.client, "S", "fast", ack_wait)
        .await
        .expect("consumer");
    // Every slow consumer takes everything and never acks.
    for c in 0..SLOW {
        assert_eq!(claim(&mut rig.client, &format!("slow{c}")).await.len(), 20);
    }
    // Publishing and a consumer that keeps up are not held up by them.
    assert_eq!(publish(&rig, 20..40).await, (21..=40).collect::<Vec<_>>());
    let fast: Vec<u64> = claim(&mut rig.client, "fast")
        .await
        .iter()
        .map(|d| d.stream_seq)
        .collect();
    assert_eq!(fast, (1..=40).collect::<Vec<_>>());
    rig.client
        .acknowledge(v1::AcknowledgeRequest {
            stream: "S".into(),
            consumer: "fast".into(),
            kind: v1::AckKind::Ack as i32,
            stream_seqs: fast,
            nak_delay_nanos: 0,
            ..Default::default()
        })
        .await
        .expect("ack");
    // After ack_wait each slow consumer gets its 20 again, plus the 20 new ones.
    tokio::time::sleep(ack_wait + Duration::from_millis(100)).await;
    for c in 0..SLOW {
        let name = format!("slow{c}");
        let deliveries = claim(&mut rig.client, &name).await;
        let again = deliveries.iter().filter(|d| d.delivery_count == 2).count();
        assert_eq!((deliveries.len(), again), (40, 20), "{name}");
    }
    let info = |name: &'static str| {
        let client = rig.client.clone();
        async move {
            client
                .consumer_info("S", name)
                .await
                .expect("info")
                .state
                .unwrap_or_default()
        }
    };
    let slow = info("slow999").await;
    assert_eq!((slow.num_ack_pending, slow.num_redelivered), (40, 20));
    let fast = info("fast").await;
    assert_eq!(fast.ack_floor.unwrap_or_default().stream_seq, 40);
    assert_eq!(fast.num_ack_pending, 0);
}
