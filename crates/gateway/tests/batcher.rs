//! The batcher against a real (in-memory) object store, a scripted control plane and a
//! recording ack sink: an idle publish flushes at once, the rest of a window is one
//! object, ack only after commit, order per stream across flushes, bounded buffering,
//! failures answered with errors.
//!
//! Tests about when flushes happen run on tokio's paused clock: time moves only when
//! every task waits on a timer, so "before the window" and "one window later" are
//! orderings of events, not wall-clock figures.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use infinistream_gateway::{
    AckSink, Batcher, BatcherConfig, CommitError, Committer, GatewayMetrics, PendingRecord,
    PublishOutcome, Refusal, SealReason, SubmitError,
};
use infinistream_objstore::{Bucket, BucketOptions, RetryConfig};
use infinistream_objstore::{FaultHandle, FaultRule, Op};
use infinistream_proto::v1;
use infinistream_protocol::jsapi::ApiError;
use infinistream_types::{SharedClock, SystemClock};
use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// A control plane that numbers records per stream, remembers batch ids, and can be
/// told to fail or to hold commits.
#[derive(Default)]
struct FakeControlPlane {
    state: Mutex<FakeState>,
    release: Notify,
}

#[derive(Default)]
struct FakeState {
    next_seq: HashMap<String, u64>,
    answered: HashMap<String, v1::CommitBatchResponse>,
    commits: Vec<v1::CommitBatchRequest>,
    fail_next: u32,
    /// Refuse this many attempts as a whole (before the batch id is looked up, as the
    /// real control plane checks a request's proof first).
    refuse_next: u32,
    /// Apply this many commits but answer them `Unavailable` (the answer lost)...
    lose_answer_next: u32,
    /// ...and then refuse the retry.
    refuse_after_lost_answer: bool,
    hold: bool,
}

#[async_trait]
impl Committer for FakeControlPlane {
    async fn commit(
        &self,
        request: v1::CommitBatchRequest,
    ) -> Result<v1::CommitBatchResponse, CommitError> {
        loop {
            let hold = self.state.lock().hold;
            if !hold {
                break;
            }
            self.release.notified().await;
        }
        let mut state = self.state.lock();
        if state.fail_next > 0 {
            state.fail_next -= 1;
            return Err(CommitError::Unavailable("injected".into()));
        }
        if state.refuse_next > 0 {
            state.refuse_next -= 1;
            return Err(CommitError::Refused("injected refusal".into()));
        }
        if let Some(answer) = state.answered.get(&request.batch_id) {
            return Ok(answer.clone());
        }
        let mut chunks = Vec::new();
        for chunk in &request.chunks {
            let next = state.next_seq.entry(chunk.stream.clone()).or_insert(1);
            let mut records = Vec::new();
            for record in &chunk.records {
                if record.withdrawn {
                    // As the control plane: a fast batch's record after its refused one.
                    records.push(v1::RecordResult {
                        result: Some(v1::record_result::Result::Error(
                            ApiError::batch_publish_unknown_batch_id().into(),
                        )),
                        ..Default::default()
                    });
                    continue;
                }
                records.push(v1::RecordResult {
                    result: Some(v1::record_result::Result::Seq(*next)),
                    ..Default::default()
                });
                *next += 1;
            }
            chunks.push(v1::ChunkResult {
                stream: chunk.stream.clone(),
                chunk_index: chunk.chunk_index,
                records,
                error: None,
            });
        }
        let response = v1::CommitBatchResponse {
            chunks,
            replayed: false,
        };
        state
            .answered
            .insert(request.batch_id.clone(), response.clone());
        state.commits.push(request);
        if state.lose_answer_next > 0 {
            state.lose_answer_next -= 1;
            if state.refuse_after_lost_answer {
                state.refuse_next = 1;
            }
            return Err(CommitError::Unavailable("answer lost".into()));
        }
        Ok(response)
    }
}

#[derive(Default)]
struct RecordingAcks {
    acks: Mutex<Vec<(String, String, PublishOutcome)>>,
    arrived: Notify,
}

impl AckSink for RecordingAcks {
    fn deliver(&self, reply: &str, stream: &str, outcome: PublishOutcome) {
        self.acks
            .lock()
            .push((reply.to_owned(), stream.to_owned(), outcome));
        self.arrived.notify_waiters();
    }
}

impl RecordingAcks {
    async fn wait_for(&self, n: usize) -> Vec<(String, String, PublishOutcome)> {
        loop {
            let notified = self.arrived.notified();
            {
                let acks = self.acks.lock();
                if acks.len() >= n {
                    return acks.clone();
                }
            }
            tokio::time::timeout(Duration::from_secs(30), notified)
                .await
                .expect("acks arrive");
        }
    }
}

struct Harness {
    batcher: Batcher,
    cp: Arc<FakeControlPlane>,
    acks: Arc<RecordingAcks>,
    metrics: GatewayMetrics,
    bucket: Bucket,
    faults: FaultHandle,
    shutdown: CancellationToken,
    writer: tokio::task::JoinHandle<()>,
}

fn record(stream: &str, subject: &str, payload: &[u8], reply: Option<&str>) -> PendingRecord {
    PendingRecord {
        stream: Arc::from(stream),
        subject: Bytes::from(subject.to_owned()),
        headers: Bytes::new(),
        payload: Bytes::copy_from_slice(payload),
        meta: v1::RecordMeta::default(),
        reply: reply.map(str::to_owned),
        batch: None,
    }
}

async fn harness(config: BatcherConfig) -> Harness {
    let faults = FaultHandle::new();
    let options = BucketOptions {
        faults: Some(faults.clone()),
        retry: RetryConfig {
            max_attempts: 2,
            ..RetryConfig::default()
        },
        ..BucketOptions::for_group("test")
    };
    let bucket = Bucket::open("memory://", options)
        .await
        .expect("memory bucket");
    let cp = Arc::new(FakeControlPlane::default());
    let acks = Arc::new(RecordingAcks::default());
    let metrics = GatewayMetrics::new();
    let shutdown = CancellationToken::new();
    let clock: SharedClock = Arc::new(SystemClock);
    let (batcher, writer) = Batcher::start(
        config,
        bucket.clone(),
        cp.clone(),
        acks.clone(),
        clock,
        metrics.clone(),
        shutdown.clone(),
    );
    Harness {
        batcher,
        cp,
        acks,
        metrics,
        bucket,
        faults,
        shutdown,
        writer,
    }
}

fn config(window_ms: u64) -> BatcherConfig {
    BatcherConfig {
        window: Duration::from_millis(window_ms),
        agent_id: "agent-1".into(),
        ..BatcherConfig::default()
    }
}

#[tokio::test(start_paused = true)]
async fn an_idle_publish_is_acked_before_half_the_window() {
    let config = BatcherConfig {
        agent_id: "agent-1".into(),
        ..BatcherConfig::default()
    };
    let window = config.window;
    assert_eq!(window, Duration::from_millis(250), "the default window");
    let h = harness(config).await;
    h.batcher
        .submit(record("IDLE", "idle", b"x", Some("a")))
        .await
        .expect("submit");
    let half_window = tokio::time::sleep(window / 2);
    tokio::select! {
        biased;
        acks = h.acks.wait_for(1) => {
            assert_eq!(acks[0].2, PublishOutcome::Stored { seq: 1 });
        }
        () = half_window => panic!("the PubAck waited for half a window on an idle agent"),
    }
    assert_eq!(h.metrics.batches_sealed(SealReason::Idle), 1);
    assert_eq!(h.metrics.batches_sealed(SealReason::Window), 0);
    assert_eq!(h.metrics.objects_written(), 1);
}

/// The buffered-bytes gauge counts what waits for the next flush: the publishes after
/// an idle flush, until the window seals them; then nothing.
#[tokio::test(start_paused = true)]
async fn the_buffered_bytes_gauge_counts_what_waits_for_the_next_flush() {
    let h = harness(config(100)).await;
    h.batcher
        .submit(record("S0", "s.0", b"first", Some("first")))
        .await
        .expect("submit");
    h.acks.wait_for(1).await;
    assert_eq!(
        h.metrics.buffered_bytes(),
        0,
        "the idle publish went at once"
    );
    let mut expected = 0;
    for i in 0..10u32 {
        let r = record("S0", "s.0", b"waiting", Some(&format!("r{i}")));
        expected += i64::try_from(r.buffered_len()).expect("small");
        h.batcher.submit(r).await.expect("submit");
    }
    // Time stands still while this task runs: the window cannot seal them meanwhile.
    while h.metrics.buffered_bytes() < expected {
        tokio::task::yield_now().await;
    }
    assert_eq!(h.metrics.buffered_bytes(), expected);
    h.acks.wait_for(11).await;
    assert_eq!(
        h.metrics.buffered_bytes(),
        0,
        "sealed into the second object"
    );
    assert_eq!(h.metrics.objects_written(), 2);
}

#[tokio::test(start_paused = true)]
async fn the_rest_of_a_burst_goes_one_window_after_the_idle_publish() {
    let window = Duration::from_millis(100);
    let h = harness(config(100)).await;
    let start = tokio::time::Instant::now();
    h.batcher
        .submit(record("S0", "s.0", b"first", Some("first")))
        .await
        .expect("submit");
    h.acks.wait_for(1).await;
    assert!(start.elapsed() < window, "the idle publish went at once");
    // 300 publishes to 30 streams arrive within the window after that flush started:
    // they make one object, due one window after it.
    for i in 0..300u32 {
        let stream = format!("S{}", i % 30);
        h.batcher
            .submit(record(
                &stream,
                &format!("s.{}", i % 30),
                b"payload",
                Some(&format!("r{i}")),
            ))
            .await
            .expect("submit");
    }
    let acks = h.acks.wait_for(301).await;
    assert!(start.elapsed() >= window, "the burst waited for its slot");
    assert_eq!(
        h.metrics.objects_written(),
        2,
        "the idle publish, then the rest"
    );
    assert_eq!(h.metrics.batches_sealed(SealReason::Idle), 1);
    assert_eq!(h.metrics.batches_sealed(SealReason::Window), 1);
    assert_eq!(h.cp.state.lock().commits.len(), 2, "one commit per flush");
    assert_eq!(h.bucket.list_batches().await.expect("list").len(), 2);
    // Per stream, sequences are contiguous in publish order (S0 starts after `first`).
    let mut expected: HashMap<String, u64> = HashMap::new();
    expected.insert("S0".into(), 2);
    let mut by_reply: HashMap<String, (String, PublishOutcome)> = HashMap::new();
    for (reply, stream, outcome) in acks {
        by_reply.insert(reply, (stream, outcome));
    }
    for i in 0..300u32 {
        let (stream, outcome) = by_reply.get(&format!("r{i}")).expect("every publish acked");
        let next = expected.entry(stream.clone()).or_insert(1);
        assert_eq!(outcome, &PublishOutcome::Stored { seq: *next });
        *next += 1;
    }
}

#[tokio::test]
async fn size_cap_seals_early() {
    let h = harness(BatcherConfig {
        size_cap: 64 * 1024,
        ..config(500)
    })
    .await;
    let payload = vec![7u8; 16 * 1024];
    for i in 0..16 {
        h.batcher
            .submit(record("BIG", "big", &payload, Some(&format!("r{i}"))))
            .await
            .expect("submit");
    }
    h.acks.wait_for(16).await;
    assert!(
        h.metrics.objects_written() >= 4,
        "256 KiB at a 64 KiB cap takes at least 4 objects, got {}",
        h.metrics.objects_written()
    );
}

#[tokio::test]
async fn nothing_is_acked_before_commit_and_order_holds_across_flushes() {
    let h = harness(config(50)).await;
    h.cp.state.lock().hold = true;
    h.batcher
        .submit(record("ORD", "o", b"1", Some("a")))
        .await
        .expect("submit");
    // Wait until the first flush has been uploaded (its commit is held).
    while h.metrics.objects_written() < 1 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    h.batcher
        .submit(record("ORD", "o", b"2", Some("b")))
        .await
        .expect("submit");
    while h.metrics.objects_written() < 2 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(
        h.acks.acks.lock().is_empty(),
        "no ack while commits are held"
    );
    h.cp.state.lock().hold = false;
    h.cp.release.notify_waiters();
    let acks = h.acks.wait_for(2).await;
    let seq_of = |reply: &str| {
        acks.iter()
            .find(|(r, _, _)| r == reply)
            .map(|(_, _, o)| o.clone())
            .expect("acked")
    };
    assert_eq!(seq_of("a"), PublishOutcome::Stored { seq: 1 });
    assert_eq!(seq_of("b"), PublishOutcome::Stored { seq: 2 });
}

#[tokio::test]
async fn transient_commit_failures_retry_with_the_same_batch_id() {
    let h = harness(config(50)).await;
    h.cp.state.lock().fail_next = 2;
    h.batcher
        .submit(record("R", "r", b"x", Some("a")))
        .await
        .expect("submit");
    let acks = h.acks.wait_for(1).await;
    assert_eq!(acks[0].2, PublishOutcome::Stored { seq: 1 });
    assert_eq!(h.cp.state.lock().commits.len(), 1);
}

#[tokio::test]
async fn upload_failures_answer_errors_then_recover() {
    let h = harness(config(50)).await;
    let rule = h.faults.add(FaultRule::fail(Op::Put));
    h.batcher
        .submit(record("F", "f", b"x", Some("a")))
        .await
        .expect("submit");
    let acks = h.acks.wait_for(1).await;
    match &acks[0].2 {
        PublishOutcome::Failed(err) => {
            assert_eq!((err.code, err.err_code), (503, 10077));
            assert!(err.description.contains("upload"), "{}", err.description);
        }
        other => panic!("expected a failure, got {other:?}"),
    }
    assert!(h.cp.state.lock().commits.is_empty(), "nothing committed");
    h.faults.remove(rule);
    h.batcher
        .submit(record("F", "f", b"y", Some("b")))
        .await
        .expect("submit");
    let acks = h.acks.wait_for(2).await;
    assert_eq!(acks[1].2, PublishOutcome::Stored { seq: 1 });
}

#[tokio::test]
async fn commit_that_never_succeeds_fails_within_the_deadline() {
    let h = harness(BatcherConfig {
        flush_deadline: Duration::from_millis(300),
        ..config(50)
    })
    .await;
    h.cp.state.lock().fail_next = u32::MAX;
    h.batcher
        .submit(record("D", "d", b"x", Some("a")))
        .await
        .expect("submit");
    let acks = h.acks.wait_for(1).await;
    assert!(matches!(acks[0].2, PublishOutcome::Failed(_)), "{acks:?}");
    // The object was uploaded but never committed: it stays for the jobs role.
    assert_eq!(h.bucket.list_batches().await.expect("list").len(), 1);
}

/// A commit applied whose answer was lost, then refused on the retry (a clock-skewed
/// agent's proof): the publish may be stored, so its answer must not say it failed
/// (the chaos suite's KV checker leaves a definite failure out of the history).
#[tokio::test]
async fn a_commit_that_may_have_applied_is_answered_as_an_unknown_outcome() {
    let h = harness(config(50)).await;
    {
        let mut state = h.cp.state.lock();
        state.lose_answer_next = 1;
        state.refuse_after_lost_answer = true;
    }
    h.batcher
        .submit(record("U", "u", b"x", Some("a")))
        .await
        .expect("submit");
    let acks = h.acks.wait_for(1).await;
    let PublishOutcome::Failed(err) = &acks[0].2 else {
        panic!("expected an error, got {acks:?}");
    };
    assert_eq!((err.code, err.err_code), (503, 10077));
    assert!(
        err.description
            .starts_with(infinistream_gateway::batcher::COMMIT_OUTCOME_UNKNOWN)
            && !err.description.contains("commit failed"),
        "{}",
        err.description
    );
    assert_eq!(h.cp.state.lock().commits.len(), 1, "the commit was applied");

    // Refused at the first attempt: nothing was applied, and the answer says so.
    {
        let mut state = h.cp.state.lock();
        state.refuse_after_lost_answer = false;
        state.refuse_next = 1;
    }
    h.batcher
        .submit(record("U", "u", b"y", Some("b")))
        .await
        .expect("submit");
    let acks = h.acks.wait_for(2).await;
    let PublishOutcome::Failed(err) = &acks[1].2 else {
        panic!("expected an error, got {acks:?}");
    };
    assert!(
        err.description
            .starts_with("commit failed: control plane refused the commit"),
        "{}",
        err.description
    );
    assert_eq!(h.cp.state.lock().commits.len(), 1, "nothing more applied");
}

#[tokio::test]
async fn buffered_bytes_are_bounded() {
    let h = harness(BatcherConfig {
        max_buffered_bytes: 10_000,
        ..config(50)
    })
    .await;
    h.cp.state.lock().hold = true;
    for i in 0..5 {
        h.batcher
            .submit(record("B", "b", &[0u8; 1999], Some(&format!("r{i}"))))
            .await
            .expect("fits");
    }
    // The buffer is full: the next submit waits until a flush completes.
    let blocked = tokio::time::timeout(
        Duration::from_millis(200),
        h.batcher
            .submit(record("B", "b", &[0u8; 1999], Some("late"))),
    )
    .await;
    assert!(
        blocked.is_err(),
        "submit must wait while the buffer is full"
    );
    assert!(h.batcher.buffered_bytes() <= 10_000);
    let too_big = h
        .batcher
        .submit(record("B", "b", &[0u8; 20_000], Some("huge")))
        .await;
    assert!(too_big.is_err());
    h.cp.state.lock().hold = false;
    h.cp.release.notify_waiters();
    h.acks.wait_for(5).await;
    h.batcher
        .submit(record("B", "b", &[0u8; 1999], Some("after")))
        .await
        .expect("room again after the flush");
}

#[tokio::test]
async fn shutdown_flushes_what_was_admitted() {
    let h = harness(config(500)).await;
    for i in 0..10 {
        h.batcher
            .submit(record("Z", "z", b"x", Some(&format!("r{i}"))))
            .await
            .expect("submit");
    }
    h.shutdown.cancel();
    drop(h.batcher);
    tokio::time::timeout(Duration::from_secs(10), h.writer)
        .await
        .expect("writer stops")
        .expect("writer does not panic");
    assert_eq!(h.acks.acks.lock().len(), 10);
}

/// A message of fast batch `id` (gap mode `fail`) at batch sequence `seq`.
fn fast(id: &str, seq: u64, payload: &[u8]) -> PendingRecord {
    let mut r = record("FB", "fb", payload, Some(&format!("{id}.{seq}")));
    r.meta.fail_batch = Some(id.to_owned());
    r
}

/// Submits a fast batch message; one the batcher refuses is queued as a refusal, as the
/// intake does.
async fn submit_fast(h: &Harness, record: PendingRecord) {
    let reply = record.reply.clone().expect("a reply");
    let fail_batch = record.meta.fail_batch.clone();
    if let Err(error) = h.batcher.submit(record).await {
        assert!(matches!(error, SubmitError::TooLarge { .. }), "{error}");
        h.batcher
            .refuse(Refusal {
                stream: Arc::from("FB"),
                reply,
                fail_batch,
                error: ApiError::stream_message_exceeds_maximum(),
            })
            .await
            .expect("queued");
    }
}

fn withdrawn_in_commits(h: &Harness) -> Vec<(String, bool)> {
    h.cp.state
        .lock()
        .commits
        .iter()
        .flat_map(|c| c.chunks.iter())
        .flat_map(|c| c.records.iter())
        .map(|r| (r.subject.clone(), r.withdrawn))
        .collect()
}

/// A fast batch message the batcher refuses (over the publish buffer) is answered after
/// the batch's messages queued before it, which are stored; the ones queued after it
/// are withdrawn (refused unstored), in the same buffer or a later one.
#[tokio::test(start_paused = true)]
async fn a_refused_fast_batch_message_withdraws_only_the_later_ones() {
    let h = harness(BatcherConfig {
        max_buffered_bytes: 1024,
        ..config(100)
    })
    .await;
    // An idle publish first, so the batch's messages wait for the window together.
    h.batcher
        .submit(record("OTHER", "other", b"x", Some("idle")))
        .await
        .expect("submit");
    h.acks.wait_for(1).await;
    submit_fast(&h, fast("B", 1, b"one")).await;
    submit_fast(&h, fast("B", 2, b"two")).await;
    submit_fast(&h, fast("B", 3, &[0u8; 2048])).await;
    submit_fast(&h, fast("B", 4, b"four")).await;
    let acks = h.acks.wait_for(5).await;
    let answers: Vec<(String, PublishOutcome)> = acks[1..]
        .iter()
        .map(|(r, _, o)| (r.clone(), o.clone()))
        .collect();
    assert_eq!(
        answers,
        vec![
            ("B.1".into(), PublishOutcome::Stored { seq: 1 }),
            ("B.2".into(), PublishOutcome::Stored { seq: 2 }),
            (
                "B.3".into(),
                PublishOutcome::Failed(ApiError::stream_message_exceeds_maximum())
            ),
            (
                "B.4".into(),
                PublishOutcome::Failed(ApiError::batch_publish_unknown_batch_id())
            ),
        ]
    );
    // One object for the three buffered messages; the refusal is not a record.
    assert_eq!(h.metrics.objects_written(), 2);
    let mut withdrawn = withdrawn_in_commits(&h);
    withdrawn.retain(|(subject, _)| subject == "fb");
    assert_eq!(
        withdrawn.iter().map(|(_, w)| *w).collect::<Vec<_>>(),
        vec![false, false, true]
    );

    // A message of the batch in a later buffer is withdrawn too, and another batch is
    // not touched.
    submit_fast(&h, fast("B", 5, b"five")).await;
    submit_fast(&h, fast("C", 1, b"other batch")).await;
    let acks = h.acks.wait_for(7).await;
    assert_eq!(
        acks[5].2,
        PublishOutcome::Failed(ApiError::batch_publish_unknown_batch_id())
    );
    assert_eq!(acks[6].2, PublishOutcome::Stored { seq: 3 });
}

/// A refusal queued while the buffer is empty and an earlier flush is still committing
/// writes no object, is answered after that flush, and withdraws only what follows.
#[tokio::test(start_paused = true)]
async fn a_refusal_alone_waits_for_the_earlier_flush() {
    let h = harness(BatcherConfig {
        max_buffered_bytes: 1024,
        ..config(100)
    })
    .await;
    h.cp.state.lock().hold = true;
    submit_fast(&h, fast("B", 1, b"one")).await;
    while h.metrics.objects_written() < 1 {
        tokio::task::yield_now().await;
    }
    submit_fast(&h, fast("B", 2, &[0u8; 2048])).await;
    submit_fast(&h, fast("B", 3, b"three")).await;
    // Let the refusal's flush and the window pass while the commit is held.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(h.acks.acks.lock().is_empty(), "nothing answered before B.1");
    h.cp.state.lock().hold = false;
    h.cp.release.notify_waiters();
    let acks = h.acks.wait_for(3).await;
    let answers: Vec<(String, PublishOutcome)> = acks
        .iter()
        .map(|(r, _, o)| (r.clone(), o.clone()))
        .collect();
    assert_eq!(
        answers,
        vec![
            ("B.1".into(), PublishOutcome::Stored { seq: 1 }),
            (
                "B.2".into(),
                PublishOutcome::Failed(ApiError::stream_message_exceeds_maximum())
            ),
            (
                "B.3".into(),
                PublishOutcome::Failed(ApiError::batch_publish_unknown_batch_id())
            ),
        ]
    );
    assert_eq!(h.metrics.objects_written(), 2, "B.1's object, then B.3's");
    assert_eq!(
        withdrawn_in_commits(&h)
            .iter()
            .map(|(_, w)| *w)
            .collect::<Vec<_>>(),
        vec![false, true]
    );
}
