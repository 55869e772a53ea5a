//! The jobs role end to end: purge / max_age → objects leave the bucket after a
//! retention pass; orphans (uploaded, never committed) are collected while committed
//! objects stay; compaction rewrites a stream into segments and every message still
//! reads back identically; two jobs agents never compact one stream at once. Passes
//! are triggered explicitly through `AgentHandle::jobs()` (the loops' intervals are a
//! day), so no test waits on a timer — except max_age, whose subject is time.

use std::net::SocketAddr;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::{self, stream};
use infinistream_agent::AgentHandle;
use infinistream_config::{NumberOrString, RawAgentConfig};
use infinistream_control_plane::store::memory::MemoryStore;
use infinistream_control_plane::{ControlPlane, ControlPlaneClient, GroupKeys};
use infinistream_runtime::CancellationToken;
use infinistream_testkit::etcd::EtcdServer;
use infinistream_testkit::process::ChildProcess;
use infinistream_testkit::s3::S3Server;
use infinistream_types::SystemClock;

#[path = "support/in_process.rs"]
mod in_process;

const DAY_MS: u64 = 86_400_000;

struct Setup<'a> {
    dir: &'a std::path::Path,
    bucket: Option<String>,
    control_plane: Option<String>,
    min_entries: usize,
}

async fn start_agent(s: Setup<'_>) -> AgentHandle {
    let raw = RawAgentConfig {
        bucket: s.bucket,
        group_id: s.control_plane.as_ref().map(|_| "g".to_owned()),
        group_key: s.control_plane.as_ref().map(|_| "k3y".to_owned()),
        control_plane: s.control_plane,
        // A set zone: no instance-metadata request leaves the test machine.
        zone: Some("default".into()),
        // Passes run only when a test asks.
        jobs_retention_interval: Some(NumberOrString::Number(DAY_MS)),
        jobs_gc_interval: Some(NumberOrString::Number(DAY_MS)),
        jobs_compaction_interval: Some(NumberOrString::Number(DAY_MS)),
        jobs_release_grace: Some(NumberOrString::Number(0)),
        jobs_compaction_min_entries: Some(s.min_entries as u64),
        ..in_process::local(s.dir)
    };
    let mut config = raw.validate().expect("valid config");
    // Below the operator floor on purpose: no commit is in flight when tests collect.
    config.jobs.orphan_grace = Duration::ZERO;
    in_process::start_config(config).await
}

async fn embedded(dir: &tempfile::TempDir, min_entries: usize) -> AgentHandle {
    start_agent(Setup {
        dir: dir.path(),
        bucket: None,
        control_plane: None,
        min_entries,
    })
    .await
}

async fn js(agent: &AgentHandle) -> jetstream::Context {
    let client = async_nats::connect(format!("nats://{}", agent.client_addr()))
        .await
        .expect("connect");
    let mut ctx = jetstream::new(client);
    ctx.set_timeout(Duration::from_secs(20));
    ctx
}

/// Publishes one message per batch (each ack awaited) with a header.
async fn publish_each(js: &jetstream::Context, subject_prefix: &str, from: u32, to: u32) {
    for i in from..to {
        let mut headers = HeaderMap::new();
        headers.insert("X-Index", i.to_string().as_str());
        js.publish_with_headers(
            format!("{subject_prefix}.{}", i % 3),
            headers,
            format!("payload-{i}").into(),
        )
        .await
        .expect("publish")
        .await
        .expect("ack");
    }
}

async fn batches(agent: &AgentHandle) -> usize {
    agent.bucket().list_batches().await.expect("list").len()
}

async fn segments(agent: &AgentHandle) -> usize {
    agent
        .bucket()
        .list_segments(None)
        .await
        .expect("list")
        .len()
}

/// (seq, subject, payload, X-Index header) of every live message in 1..=last.
async fn snapshot(stream: &stream::Stream, last: u64) -> Vec<(u64, String, Vec<u8>, String)> {
    let mut out = Vec::new();
    for seq in 1..=last {
        match stream.get_raw_message(seq).await {
            Ok(m) => out.push((
                m.sequence,
                m.subject.to_string(),
                m.payload.to_vec(),
                m.headers
                    .get("X-Index")
                    .map(|v| v.as_str().to_owned())
                    .unwrap_or_default(),
            )),
            Err(e) => assert!(
                e.to_string().contains("no message found"),
                "seq {seq}: unexpected error {e}"
            ),
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_then_retention_pass_empties_the_bucket() {
    let dir = tempfile::tempdir().expect("tempdir");
    let agent = embedded(&dir, 8).await;
    let js = js(&agent).await;
    let stream = js
        .create_stream(stream::Config {
            name: "P".into(),
            subjects: vec!["p.>".into()],
            ..Default::default()
        })
        .await
        .expect("create");
    publish_each(&js, "p", 0, 5).await;
    assert_eq!(batches(&agent).await, 5, "one object per acked flush");
    stream.purge().await.expect("purge");
    let jobs = agent.jobs().expect("jobs role");
    let report = jobs.retention_pass().await.expect("retention pass");
    assert_eq!(report.objects_deleted, 5, "{report:?}");
    assert!(report.bytes_reclaimed > 0);
    assert_eq!(batches(&agent).await, 0, "purged objects left the bucket");
    // Forgotten: a second pass has nothing to do.
    let again = jobs.retention_pass().await.expect("second pass");
    assert_eq!((again.objects_deleted, again.already_gone), (0, 0));
    assert!(jobs.metrics().bytes_reclaimed() >= report.bytes_reclaimed);
    agent.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_age_expiry_reclaims_bytes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let agent = embedded(&dir, 8).await;
    let js = js(&agent).await;
    let mut stream = js
        .create_stream(stream::Config {
            name: "AGE".into(),
            subjects: vec!["age.>".into()],
            max_age: Duration::from_secs(1),
            ..Default::default()
        })
        .await
        .expect("create");
    publish_each(&js, "age", 0, 3).await;
    assert_eq!(batches(&agent).await, 3);
    // The behaviour under test is time: let max_age pass.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let report = agent
        .jobs()
        .expect("jobs role")
        .retention_pass()
        .await
        .expect("retention pass");
    assert_eq!(stream.info().await.expect("info").state.messages, 0);
    assert_eq!(report.objects_deleted, 3, "{report:?}");
    assert!(report.bytes_reclaimed > 0);
    assert_eq!(batches(&agent).await, 0);
    agent.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orphan_is_collected_and_committed_objects_are_kept() {
    let dir = tempfile::tempdir().expect("tempdir");
    let agent = embedded(&dir, 8).await;
    let js = js(&agent).await;
    let stream = js
        .create_stream(stream::Config {
            name: "O".into(),
            subjects: vec!["o.>".into()],
            ..Default::default()
        })
        .await
        .expect("create");
    publish_each(&js, "o", 0, 2).await;
    // An upload whose commit never happened (agent died between PUT and commit).
    let orphan = agent
        .bucket()
        .put_batch(bytes::Bytes::from_static(b"uploaded, then the agent died"))
        .await
        .expect("put orphan");
    assert_eq!(batches(&agent).await, 3);
    let report = agent
        .jobs()
        .expect("jobs role")
        .orphan_pass()
        .await
        .expect("orphan pass");
    assert_eq!(report.deleted, vec![orphan.to_string()], "{report:?}");
    assert_eq!(batches(&agent).await, 2, "committed objects stay");
    let snap = snapshot(&stream, 2).await;
    assert_eq!(snap.len(), 2, "committed messages still readable");
    agent.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_keeps_every_message_and_reduces_objects() {
    let dir = tempfile::tempdir().expect("tempdir");
    let agent = embedded(&dir, 4).await;
    let js = js(&agent).await;
    let mut stream = js
        .create_stream(stream::Config {
            name: "C".into(),
            subjects: vec!["c.>".into()],
            ..Default::default()
        })
        .await
        .expect("create");
    publish_each(&js, "c", 0, 12).await;
    stream.delete_message(5).await.expect("delete seq 5");
    let before = snapshot(&stream, 12).await;
    assert_eq!(before.len(), 11);
    let info_before = stream.info().await.expect("info").state.clone();
    assert_eq!(batches(&agent).await, 12);

    let jobs = agent.jobs().expect("jobs role");
    let pass = jobs.run_once().await.expect("pass");
    assert_eq!(pass.compaction.segments_written, 1, "{pass:?}");
    assert_eq!(pass.compaction.records, 11);
    assert_eq!(batches(&agent).await, 0, "replaced batch objects deleted");
    assert_eq!(segments(&agent).await, 1);
    assert_eq!(
        snapshot(&stream, 12).await,
        before,
        "same seq/subject/payload/headers"
    );
    let info_after = stream.info().await.expect("info").state.clone();
    assert_eq!(
        (
            info_after.messages,
            info_after.first_sequence,
            info_after.last_sequence
        ),
        (
            info_before.messages,
            info_before.first_sequence,
            info_before.last_sequence
        )
    );

    // New publishes after the segment, then a second pass merges the small segment
    // with them (the compactor reads segments too).
    publish_each(&js, "c", 12, 15).await;
    let before = snapshot(&stream, 15).await;
    assert_eq!(before.len(), 14);
    let pass = jobs.run_once().await.expect("second pass");
    assert_eq!(pass.compaction.segments_written, 1, "{pass:?}");
    assert_eq!((batches(&agent).await, segments(&agent).await), (0, 1));
    assert_eq!(snapshot(&stream, 15).await, before);
    // Last-by-subject reads come from the segment too.
    let last = stream
        .get_last_raw_message_by_subject("c.2")
        .await
        .expect("last by subject");
    assert_eq!(last.sequence, 15);
    // Nothing left worth compacting.
    let pass = jobs.run_once().await.expect("third pass");
    assert_eq!(pass.compaction.segments_written, 0);
    assert!(jobs.metrics().segments_written() >= 2);
    agent.stop();
}

/// A control plane (memory store) served on loopback for several agents.
async fn served_control_plane() -> (String, CancellationToken) {
    let groups = GroupKeys::new([("g", "k3y")]).expect("groups");
    let cp = ControlPlane::open(Arc::new(MemoryStore::new()), groups, Arc::new(SystemClock))
        .await
        .expect("control plane");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr: SocketAddr = listener.local_addr().expect("addr");
    let stop = CancellationToken::new();
    let until = stop.clone();
    tokio::spawn(async move {
        let _ = infinistream_control_plane::serve(&cp, listener, until.cancelled_owned()).await;
    });
    (format!("http://{addr}"), stop)
}

/// Two jobs agents on one control plane and bucket: concurrent passes write one
/// segment for the stream, and a held lease makes the other agent skip it.
async fn two_agents_share_compaction(cp_url: &str, bucket: &str, dirs: [&std::path::Path; 2]) {
    let a = start_agent(Setup {
        dir: dirs[0],
        bucket: Some(bucket.to_owned()),
        control_plane: Some(cp_url.to_owned()),
        min_entries: 4,
    })
    .await;
    let b = start_agent(Setup {
        dir: dirs[1],
        bucket: Some(bucket.to_owned()),
        control_plane: Some(cp_url.to_owned()),
        min_entries: 4,
    })
    .await;
    let js = js(&a).await;
    let stream = js
        .create_stream(stream::Config {
            name: "L".into(),
            subjects: vec!["l.>".into()],
            ..Default::default()
        })
        .await
        .expect("create");
    publish_each(&js, "l", 0, 8).await;
    let before = snapshot(&stream, 8).await;
    let (ja, jb) = (a.jobs().expect("jobs a"), b.jobs().expect("jobs b"));
    let (ra, rb) = tokio::join!(ja.compaction_pass(), jb.compaction_pass());
    let (ra, rb) = (ra.expect("pass a"), rb.expect("pass b"));
    assert_eq!(
        ra.segments_written + rb.segments_written,
        1,
        "one segment for one run, however many agents: {ra:?} {rb:?}"
    );
    assert_eq!(snapshot(&stream, 8).await, before);

    // A lease held by someone else: the stream is skipped.
    publish_each(&js, "l", 8, 16).await;
    let client = ControlPlaneClient::connect(cp_url, "g", "k3y")
        .await
        .expect("client");
    let held = client
        .acquire_lease("compact/L", "someone-else", 60_000)
        .await
        .expect("acquire");
    assert!(held.acquired);
    let skipped = ja.compaction_pass().await.expect("pass");
    assert_eq!(
        (skipped.lease_conflicts, skipped.segments_written),
        (1, 0),
        "{skipped:?}"
    );
    assert!(ja.metrics().lease_conflicts() >= 1);
    client
        .release_lease("compact/L", "someone-else")
        .await
        .expect("release");
    let done = jb.compaction_pass().await.expect("pass");
    assert_eq!(done.segments_written, 1, "{done:?}");
    let before = snapshot(&stream, 16).await;
    assert_eq!(before.len(), 16);

    // Retention on either agent deletes what compaction replaced; the messages stay.
    let r = ja.retention_pass().await.expect("retention");
    assert!(r.objects_deleted >= 16, "{r:?}");
    assert_eq!(a.bucket().list_batches().await.expect("list").len(), 0);
    assert_eq!(snapshot(&stream, 16).await, before);

    // Purge: every segment goes too.
    stream.purge().await.expect("purge");
    jb.retention_pass().await.expect("retention");
    assert_eq!(
        a.bucket().list_segments(None).await.expect("list").len(),
        0,
        "purged segments deleted"
    );
    a.stop();
    b.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_two_jobs_agents_never_compact_one_stream_at_once() {
    let (url, stop) = served_control_plane().await;
    let (d1, d2, bucket) = (
        tempfile::tempdir().expect("tempdir"),
        tempfile::tempdir().expect("tempdir"),
        tempfile::tempdir().expect("tempdir"),
    );
    let bucket_url = format!("file://{}", bucket.path().display());
    two_agents_share_compaction(&url, &bucket_url, [d1.path(), d2.path()]).await;
    stop.cancel();
}

fn etcd_control_plane(etcd: &str, port: u16) -> ChildProcess {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_infinistream"));
    cmd.args([
        "control-plane",
        "--listen",
        &format!("127.0.0.1:{port}"),
        "-m",
        "0",
    ])
    .arg("--store")
    .arg(format!("etcd://{}", etcd.trim_start_matches("http://")))
    .env("INFINISTREAM_GROUP_ID", "g")
    .env("INFINISTREAM_GROUP_KEY", "k3y")
    .env("RUST_LOG", "info");
    let mut cp = ChildProcess::spawn(cmd).expect("spawn control plane");
    cp.wait_for_line("control plane serving", Duration::from_secs(60))
        .expect("control plane ready");
    cp
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_etcd_jobs_compact_collect_and_purge() {
    let etcd = EtcdServer::start().expect("etcd");
    let s3 = S3Server::shared().expect("s3");
    let bucket = s3.unique_url();
    let port = infinistream_testkit::tools::free_port().expect("port");
    let _cp = etcd_control_plane(&etcd.endpoint(), port);
    let url = format!("http://127.0.0.1:{port}");
    let (d1, d2) = (
        tempfile::tempdir().expect("tempdir"),
        tempfile::tempdir().expect("tempdir"),
    );
    two_agents_share_compaction(&url, &bucket, [d1.path(), d2.path()]).await;

    // Orphans on S3: uploaded, never committed → collected.
    let agent = start_agent(Setup {
        dir: d1.path(),
        bucket: Some(bucket.clone()),
        control_plane: Some(url.clone()),
        min_entries: 8,
    })
    .await;
    let orphan = agent
        .bucket()
        .put_segment(
            "L",
            bytes::Bytes::from_static(b"not a segment anyone committed"),
        )
        .await
        .expect("put orphan");
    let report = agent
        .jobs()
        .expect("jobs")
        .orphan_pass()
        .await
        .expect("orphan pass");
    assert_eq!(report.deleted, vec![orphan.to_string()], "{report:?}");
    agent.stop();
}
