//! Jobs against a real in-process control plane (memory store) and a `memory://`
//! bucket, with a mock clock: the swap refusal when the index changed under a
//! compaction, the release and orphan grace periods, and two jobs instances competing
//! for one stream; message schedules fired once by two jobs agents.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use infinistream_control_plane::store::memory::MemoryStore;
use infinistream_control_plane::{ControlPlane, ControlPlaneClient, GroupKeys, Options};
use infinistream_jobs::{Jobs, JobsMetrics, JobsOptions, SwapOutcome};
use infinistream_objstore::{Bucket, BucketOptions};
use infinistream_proto::domain::schedule_headers_to_proto;
use infinistream_proto::v1;
use infinistream_protocol::HeaderMap;
use infinistream_protocol::jsapi::schedule::ScheduleHeaders;
use infinistream_segment::{BatchBuilder, RecordRef};
use infinistream_types::{Clock, MockClock, SharedClock};

struct World {
    cp: ControlPlaneClient,
    bucket: Bucket,
    clock: Arc<MockClock>,
    control_plane: ControlPlane,
}

async fn world() -> World {
    let clock = Arc::new(MockClock::new(SystemTime::now()));
    let shared: SharedClock = clock.clone();
    let control_plane = ControlPlane::open_with(
        Arc::new(MemoryStore::new()),
        GroupKeys::new([("g", "k")]).expect("groups"),
        shared,
        Options {
            retention_interval: None,
            ..Options::default()
        },
    )
    .await
    .expect("control plane");
    let cp = control_plane.client("g", "k").expect("client");
    let bucket = Bucket::open("memory://", BucketOptions::for_group("g"))
        .await
        .expect("bucket");
    cp.create_stream(v1::StreamConfig {
        name: "S".into(),
        config_json: b"{\"name\":\"S\"}".to_vec(),
        limits: Some(v1::StreamLimits {
            subjects: vec!["s.>".into()],
            max_msgs: -1,
            max_bytes: -1,
            max_msgs_per_subject: -1,
            max_msg_size: -1,
            duplicate_window_nanos: 120_000_000_000,
            ..Default::default()
        }),
    })
    .await
    .expect("create");
    World {
        cp,
        bucket,
        clock,
        control_plane,
    }
}

fn jobs(w: &World, holder: &str, opts: JobsOptions) -> Jobs {
    Jobs::new(
        w.cp.clone(),
        w.bucket.clone(),
        w.clock.clone(),
        holder,
        opts,
        JobsMetrics::new(),
    )
}

fn opts() -> JobsOptions {
    JobsOptions {
        release_grace: Duration::from_secs(60),
        orphan_grace: Duration::from_secs(600),
        compaction_min_entries: 4,
        ..JobsOptions::default()
    }
}

/// Uploads one batch object with `n` records of stream S and commits it, like a
/// gateway flush. Returns the object key.
async fn flush(w: &World, tag: &str, n: usize) -> String {
    let mut b = BatchBuilder::new(Default::default());
    let now = w.clock.now_unix_nanos();
    let mut records = Vec::new();
    for i in 0..n {
        let subject = format!("s.{}", i % 2);
        let payload = format!("{tag}-{i}");
        b.push(
            "S",
            &RecordRef {
                subject: subject.as_bytes(),
                headers: b"",
                payload: payload.as_bytes(),
                timestamp: now,
                msg_id: None,
            },
        )
        .expect("push");
        records.push(v1::RecordMeta {
            subject,
            size: u32::try_from(payload.len() + 3).expect("small"),
            timestamp_unix_nanos: now,
            ..Default::default()
        });
    }
    let finished = b.finish().expect("finish");
    let chunk = finished.footer.chunk("S").expect("chunk").clone();
    let key = w
        .bucket
        .put_batch(finished.object)
        .await
        .expect("put")
        .to_string();
    let resp =
        w.cp.commit_batch(v1::CommitBatchRequest {
            batch_id: format!("batch-{tag}"),
            object_key: key.clone(),
            agent_id: "test".into(),
            chunks: vec![v1::ChunkMeta {
                stream: "S".into(),
                chunk_index: chunk.index,
                record_count: n as u32,
                byte_size: u64::from(chunk.stored_len),
                records,
            }],
        })
        .await
        .expect("commit");
    assert!(resp.chunks.iter().all(|c| c.error.is_none()));
    key
}

async fn objects(w: &World) -> usize {
    w.bucket.list_batches().await.expect("list").len()
        + w.bucket.list_segments(None).await.expect("list").len()
}

async fn index(w: &World) -> Vec<v1::IndexEntry> {
    w.cp.read_index(v1::ReadIndexRequest {
        stream: "S".into(),
        start_seq: 0,
        end_seq: 0,
        limit: 0,
    })
    .await
    .expect("read index")
    .entries
}

#[tokio::test]
async fn swap_is_refused_when_the_index_changed_and_the_segment_is_deleted() {
    let w = world().await;
    for i in 0..5 {
        flush(&w, &format!("b{i}"), 2).await;
    }
    let j = jobs(&w, "a", opts());
    let prepared = j
        .prepare_compaction("S")
        .await
        .expect("prepare")
        .expect("a run");
    assert_eq!(prepared.records, 10);
    assert_eq!(objects(&w).await, 6, "five batches and the new segment");
    // Meanwhile the second entry dies completely (both its records deleted).
    for seq in [3, 4] {
        w.cp.delete_message("S", seq).await.expect("delete");
    }
    let before = index(&w).await;
    let outcome = j.commit_compaction(&prepared).await.expect("commit");
    let SwapOutcome::Refused(reason) = outcome else {
        panic!("swap must be refused, got {outcome:?}");
    };
    assert!(reason.contains("seq 3"), "{reason}");
    assert_eq!(index(&w).await, before, "index untouched");
    assert_eq!(
        objects(&w).await,
        5,
        "the unused segment is deleted at once"
    );
    assert!(before.iter().all(|e| !e.segment));

    // The next pass compacts what is there now.
    let report = j.compaction_pass().await.expect("pass");
    assert_eq!(report.segments_written, 1, "{report:?}");
    assert_eq!(report.records, 8);
    let after = index(&w).await;
    assert_eq!(after.len(), 1);
    assert!(after[0].segment);
    assert_eq!((after[0].first_seq, after[0].last_seq), (1, 10));
    assert_eq!(after[0].deleted, vec![3, 4]);
}

#[tokio::test]
async fn a_swap_of_entries_compacted_by_someone_else_is_refused() {
    let w = world().await;
    for i in 0..4 {
        flush(&w, &format!("b{i}"), 1).await;
    }
    let (a, b) = (jobs(&w, "a", opts()), jobs(&w, "b", opts()));
    let pa = a
        .prepare_compaction("S")
        .await
        .expect("prepare")
        .expect("run");
    let pb = b
        .prepare_compaction("S")
        .await
        .expect("prepare")
        .expect("run");
    assert_eq!(
        a.commit_compaction(&pa).await.expect("a"),
        SwapOutcome::Swapped
    );
    assert!(matches!(
        b.commit_compaction(&pb).await.expect("b"),
        SwapOutcome::Refused(_)
    ));
    // Four batches (released, not yet deleted) + a's segment.
    assert_eq!(objects(&w).await, 5);
}

#[tokio::test]
async fn released_objects_wait_for_the_release_grace() {
    let w = world().await;
    for i in 0..3 {
        flush(&w, &format!("b{i}"), 2).await;
    }
    w.cp.purge_stream(v1::PurgeStreamRequest {
        stream: "S".into(),
        ..Default::default()
    })
    .await
    .expect("purge");
    let j = jobs(&w, "a", opts());
    let early = j.retention_pass().await.expect("pass");
    assert_eq!((early.waiting, early.objects_deleted), (3, 0), "{early:?}");
    assert_eq!(objects(&w).await, 3, "a reader may still need them");
    w.clock.advance(Duration::from_secs(61));
    let late = j.retention_pass().await.expect("pass");
    assert_eq!((late.waiting, late.objects_deleted), (0, 3), "{late:?}");
    assert_eq!(objects(&w).await, 0);
    assert_eq!(j.metrics().objects_deleted(), 3);
}

#[tokio::test]
async fn orphans_wait_for_the_orphan_grace_and_committed_objects_stay() {
    let w = world().await;
    let committed = flush(&w, "kept", 2).await;
    let orphan = w
        .bucket
        .put_batch(Bytes::from_static(b"uploaded, never committed"))
        .await
        .expect("put")
        .to_string();
    let j = jobs(&w, "a", opts());
    let young = j.orphan_pass().await.expect("pass");
    assert_eq!((young.young, young.deleted.len()), (1, 0), "{young:?}");
    w.clock.advance(Duration::from_secs(601));
    let old = j.orphan_pass().await.expect("pass");
    assert_eq!(old.deleted, vec![orphan], "{old:?}");
    let left: Vec<String> = w
        .bucket
        .list_batches()
        .await
        .expect("list")
        .into_iter()
        .map(|(k, _)| k.to_string())
        .collect();
    assert_eq!(left, vec![committed]);
}

#[tokio::test]
async fn max_age_is_enforced_by_the_retention_pass() {
    let w = world().await;
    w.cp.update_stream(v1::StreamConfig {
        name: "S".into(),
        config_json: b"{\"name\":\"S\",\"max_age\":1000000000}".to_vec(),
        limits: Some(v1::StreamLimits {
            subjects: vec!["s.>".into()],
            max_msgs: -1,
            max_bytes: -1,
            max_msgs_per_subject: -1,
            max_msg_size: -1,
            max_age_nanos: 1_000_000_000,
            duplicate_window_nanos: 1_000_000_000,
            ..Default::default()
        }),
    })
    .await
    .expect("update");
    flush(&w, "old", 3).await;
    w.clock.advance(Duration::from_secs(2));
    let j = jobs(
        &w,
        "a",
        JobsOptions {
            release_grace: Duration::ZERO,
            ..opts()
        },
    );
    let report = j.retention_pass().await.expect("pass");
    assert_eq!(report.expired_messages, 3, "{report:?}");
    assert_eq!(report.objects_deleted, 1);
    assert_eq!(objects(&w).await, 0);
}

#[tokio::test]
async fn two_jobs_instances_write_one_segment_for_one_stream() {
    let w = world().await;
    for i in 0..6 {
        flush(&w, &format!("b{i}"), 3).await;
    }
    let (a, b) = (jobs(&w, "a", opts()), jobs(&w, "b", opts()));
    let (ra, rb) = tokio::join!(a.compaction_pass(), b.compaction_pass());
    let (ra, rb) = (ra.expect("a"), rb.expect("b"));
    assert_eq!(
        ra.segments_written + rb.segments_written,
        1,
        "{ra:?} {rb:?}"
    );
    assert_eq!(
        ra.swaps_refused + rb.swaps_refused,
        0,
        "the lease kept them apart"
    );
    let entries = index(&w).await;
    assert_eq!(entries.len(), 1);
    assert!(entries[0].segment);
}

/// Creates stream T (`t.>`) with message schedules allowed.
async fn schedule_stream(w: &World) {
    w.cp.create_stream(v1::StreamConfig {
        name: "T".into(),
        config_json: b"{\"name\":\"T\"}".to_vec(),
        limits: Some(v1::StreamLimits {
            subjects: vec!["t.>".into()],
            max_msgs: -1,
            max_bytes: -1,
            max_msgs_per_subject: -1,
            max_msg_size: -1,
            duplicate_window_nanos: 120_000_000_000,
            allow_rollup: true,
            allow_msg_schedules: true,
            ..Default::default()
        }),
    })
    .await
    .expect("create");
}

/// Publishes one message with `headers` to stream T, as a gateway would: the header
/// block in the object, the schedule headers in the commit metadata.
async fn publish_with(w: &World, subject: &str, headers: &[(&str, &str)], payload: &str) -> u64 {
    let mut map = HeaderMap::new();
    for (k, v) in headers {
        map.append(*k, *v);
    }
    let block = map.to_bytes();
    let now = w.clock.now_unix_nanos();
    let mut b = BatchBuilder::new(Default::default());
    b.push(
        "T",
        &RecordRef {
            subject: subject.as_bytes(),
            headers: &block,
            payload: payload.as_bytes(),
            timestamp: now,
            msg_id: None,
        },
    )
    .expect("push");
    let finished = b.finish().expect("finish");
    let chunk = finished.footer.chunk("T").expect("chunk").clone();
    let key = w.bucket.put_batch(finished.object).await.expect("put");
    let resp =
        w.cp.commit_batch(v1::CommitBatchRequest {
            batch_id: key.id().to_string(),
            object_key: key.to_string(),
            agent_id: "test".into(),
            chunks: vec![v1::ChunkMeta {
                stream: "T".into(),
                chunk_index: chunk.index,
                record_count: 1,
                byte_size: u64::from(chunk.stored_len),
                records: vec![v1::RecordMeta {
                    subject: subject.into(),
                    size: u32::try_from(subject.len() + block.len() + payload.len())
                        .expect("small"),
                    header_size: u32::try_from(block.len()).expect("small"),
                    timestamp_unix_nanos: now,
                    schedule: ScheduleHeaders::from_headers(&map).map(schedule_headers_to_proto),
                    ..Default::default()
                }],
            }],
        })
        .await
        .expect("commit");
    match resp.chunks[0].records[0].result.clone() {
        Some(v1::record_result::Result::Seq(seq)) => seq,
        other => panic!("publish refused: {other:?}"),
    }
}

/// Live messages per subject of stream T.
async fn counts(w: &World) -> Vec<(String, u64)> {
    w.cp.last_by_subject("T", Vec::new())
        .await
        .expect("last by subject")
        .into_iter()
        .map(|s| (s.subject, s.count))
        .collect()
}

#[tokio::test]
async fn two_jobs_agents_fire_each_schedule_once() {
    let w = world().await;
    schedule_stream(&w).await;
    let (a, b) = (jobs(&w, "a", opts()), jobs(&w, "b", opts()));
    // Start on a whole second: `@every` counts from the publish time rounded to one.
    let rem = w.clock.now_unix_nanos().rem_euclid(1_000_000_000);
    w.clock
        .advance(Duration::from_nanos((1_000_000_000 - rem) as u64));
    let at = infinistream_protocol::jsapi::Timestamp::from_unix_nanos(i128::from(
        w.clock.now_unix_nanos() + 2_500_000_000,
    ));
    publish_with(
        &w,
        "t.every",
        &[
            ("Nats-Schedule", "@every 1s"),
            ("Nats-Schedule-Target", "t.out"),
        ],
        "tick",
    )
    .await;
    publish_with(
        &w,
        "t.once",
        &[
            ("Nats-Schedule", &format!("@at {at}")),
            ("Nats-Schedule-Target", "t.later"),
        ],
        "once",
    )
    .await;
    // Ten seconds, both agents trying every 500 ms: 10 ticks, one `@at` firing.
    for _ in 0..20 {
        w.clock.advance(Duration::from_millis(500));
        let (ra, rb) = tokio::join!(a.schedule_pass(), b.schedule_pass());
        let (ra, rb) = (ra.expect("pass a"), rb.expect("pass b"));
        assert_eq!(ra.failed + rb.failed, 0, "{ra:?} {rb:?}");
    }
    let fired = a.metrics().schedules_fired() + b.metrics().schedules_fired();
    let got = counts(&w).await;
    let count = |s: &str| got.iter().find(|(x, _)| x == s).map_or(0, |(_, n)| *n);
    assert_eq!(count("t.out"), 10, "{got:?}");
    assert_eq!(count("t.later"), 1, "{got:?}");
    assert_eq!(
        count("t.once"),
        0,
        "an @at schedule is purged when it fires"
    );
    assert_eq!(count("t.every"), 1, "a repeating schedule stays");
    assert_eq!(fired, count("t.out") + 1);
    // Nothing is due any more until the next tick.
    assert_eq!(w.cp.due_schedules(0).await.expect("due").backlog, 0);
}

#[tokio::test]
async fn a_firing_copies_the_schedule_as_nats_server_does() {
    let w = world().await;
    schedule_stream(&w).await;
    let a = jobs(&w, "a", opts());
    publish_with(&w, "t.src", &[("App", "from-source")], "latest state").await;
    publish_with(
        &w,
        "t.sched",
        &[
            ("Nats-Schedule", "@every 5s"),
            ("Nats-Schedule-Target", "t.out"),
            ("Nats-Schedule-Source", "t.src"),
            ("App", "from-schedule"),
        ],
        "",
    )
    .await;
    w.clock.advance(Duration::from_secs(6));
    let report = a.schedule_pass().await.expect("pass");
    assert_eq!(report.fired, 1, "{report:?}");
    let last =
        w.cp.last_by_subject("T", vec!["t.out".into()])
            .await
            .expect("last");
    let entries =
        w.cp.read_index(v1::ReadIndexRequest {
            stream: "T".into(),
            start_seq: last[0].last_seq,
            end_seq: last[0].last_seq,
            limit: 1,
        })
        .await
        .expect("index")
        .entries;
    let path = infinistream_objstore::object_store::path::Path::parse(&entries[0].object_key)
        .expect("path");
    let object = w.bucket.get(&path).await.expect("object");
    let footer = infinistream_segment::BatchFooter::decode_from_tail(&object, object.len() as u64)
        .expect("footer");
    let infinistream_segment::TailRead::Complete(footer) = footer else {
        panic!("short footer");
    };
    let meta = footer.chunk("T").expect("chunk");
    let bytes = w
        .bucket
        .get_range(&path, meta.range())
        .await
        .expect("range");
    let chunk = infinistream_segment::decode_chunk(meta, bytes).expect("chunk");
    let record = chunk.get_ref(0).expect("record");
    assert_eq!(record.subject, b"t.out");
    assert_eq!(record.payload, b"latest state");
    let headers = HeaderMap::parse(record.headers).expect("headers");
    assert_eq!(headers.get("App"), Some("from-source"));
    assert_eq!(headers.get("Nats-Scheduler"), Some("t.sched"));
    let next = headers.get("Nats-Schedule-Next").expect("next");
    assert!(next.ends_with('Z'), "{next}");
    assert_eq!(headers.get("Nats-Schedule"), None);
}

/// A group with no jobs agent: the control plane's own gauges show the schedules due
/// and not fired, and how long the oldest has waited; a jobs pass clears them.
#[tokio::test]
async fn a_jobs_less_group_shows_its_backlog_on_the_control_plane() {
    let w = world().await;
    schedule_stream(&w).await;
    let backlog = || w.control_plane.request_metrics().schedule_backlog("g");
    let at = infinistream_protocol::jsapi::Timestamp::from_unix_nanos(i128::from(
        w.clock.now_unix_nanos() + 1_000_000_000,
    ));
    for subject in ["t.one", "t.two"] {
        publish_with(
            &w,
            subject,
            &[
                ("Nats-Schedule", &format!("@at {at}")),
                ("Nats-Schedule-Target", "t.out"),
            ],
            "later",
        )
        .await;
    }
    w.control_plane.refresh_schedule_metrics().await;
    assert_eq!(backlog(), (0, 0.0), "nothing due yet");
    // Due for 4 s, and no jobs agent fired them.
    w.clock.advance(Duration::from_secs(5));
    w.control_plane.refresh_schedule_metrics().await;
    assert_eq!(backlog(), (2, 4.0));
    let a = jobs(&w, "a", opts());
    let report = a.schedule_pass().await.expect("pass");
    assert_eq!(report.fired, 2, "{report:?}");
    w.control_plane.refresh_schedule_metrics().await;
    assert_eq!(backlog(), (0, 0.0));
}

/// Issue 15: a compaction pass looks only at streams that changed since a pass left
/// them with nothing to compact (each look is a lease write, an index read and a
/// release); idle streams cost one list entry each. Every stream is looked at again
/// in a full sweep, every `FULL_SWEEP_EVERY` passes.
#[tokio::test]
async fn a_compaction_pass_looks_only_at_changed_streams() {
    const IDLE: u64 = 200;
    let w = world().await;
    for i in 0..IDLE {
        w.cp.create_stream(v1::StreamConfig {
            name: format!("I{i}"),
            config_json: format!("{{\"name\":\"I{i}\"}}").into_bytes(),
            limits: Some(v1::StreamLimits {
                subjects: vec![format!("i{i}.>")],
                max_msgs: -1,
                max_bytes: -1,
                max_msgs_per_subject: -1,
                max_msg_size: -1,
                ..Default::default()
            }),
        })
        .await
        .expect("create");
    }
    for i in 0..6 {
        flush(&w, &format!("b{i}"), 3).await;
    }
    let j = jobs(&w, "a", opts());
    let first = j.compaction_pass().await.expect("pass");
    assert_eq!(
        (first.streams, first.unchanged, first.segments_written),
        (IDLE + 1, 0, 1),
        "{first:?}"
    );
    let idle = j.compaction_pass().await.expect("pass");
    assert_eq!((idle.streams, idle.unchanged), (0, IDLE + 1), "{idle:?}");
    for i in 0..4 {
        flush(&w, &format!("c{i}"), 3).await;
    }
    let one = j.compaction_pass().await.expect("pass");
    assert_eq!(
        (one.streams, one.unchanged, one.segments_written),
        (1, IDLE, 1),
        "{one:?}"
    );
    for _ in 3..infinistream_jobs::FULL_SWEEP_EVERY {
        let r = j.compaction_pass().await.expect("pass");
        assert_eq!(r.streams, 0, "{r:?}");
    }
    let sweep = j.compaction_pass().await.expect("pass");
    assert_eq!(
        (sweep.streams, sweep.unchanged, sweep.segments_written),
        (IDLE + 1, 0, 0),
        "the full sweep: {sweep:?}"
    );
}
