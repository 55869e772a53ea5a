//! CommitBatch throughput and latency on the embedded (redb) store.
//!
//! `cargo bench -p infinistream-control-plane --bench commit` prints, for batches
//! touching 1, 100 and 1,000 streams: sequential p50/p99 latency and commits/s (one
//! agent), and commits/s with 8 concurrent agents (group commit). The in-process
//! client is used, so protobuf encoding and the auth interceptor are included.
//! Set `COMMIT_BENCH_SECS` to change the time spent per case (default 3 s), and
//! `COMMIT_BENCH_STORE=memory` to measure the logic without redb's fsync.

use std::sync::Arc;
use std::time::{Duration, Instant, UNIX_EPOCH};

use infinistream_control_plane::store::MetaStore;
use infinistream_control_plane::store::embedded::EmbeddedStore;
use infinistream_control_plane::store::memory::MemoryStore;
use infinistream_control_plane::{ControlPlane, ControlPlaneClient, GroupKeys, Options};
use infinistream_proto::v1;
use infinistream_types::MockClock;

const AGENTS: usize = 8;

fn request(id: String, streams: usize, round: usize) -> v1::CommitBatchRequest {
    let chunks = (0..streams)
        .map(|s| v1::ChunkMeta {
            stream: format!("S{s}"),
            chunk_index: s as u32,
            record_count: 2,
            byte_size: 2048,
            records: (0..2)
                .map(|k| v1::RecordMeta {
                    subject: format!("s{s}.k{}", (round + k) % 16),
                    size: 1024,
                    timestamp_unix_nanos: 1,
                    ..Default::default()
                })
                .collect(),
        })
        .collect();
    v1::CommitBatchRequest {
        object_key: format!("objects/{id}"),
        batch_id: id,
        agent_id: "bench".into(),
        chunks,
    }
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

async fn setup(streams: usize) -> (tempfile::TempDir, ControlPlane, ControlPlaneClient) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store: Arc<dyn MetaStore> =
        if std::env::var("COMMIT_BENCH_STORE").as_deref() == Ok("memory") {
            Arc::new(MemoryStore::new())
        } else {
            Arc::new(EmbeddedStore::open(dir.path()).await.expect("open store"))
        };
    let groups = GroupKeys::new([("bench", "key")]).expect("groups");
    let clock = Arc::new(MockClock::new(
        UNIX_EPOCH + Duration::from_secs(1_700_000_000),
    ));
    let opts = Options {
        retention_interval: None,
        ..Options::default()
    };
    let cp = ControlPlane::open_with(store, groups, clock, opts)
        .await
        .expect("open control plane");
    let mut client = cp.client("bench", "key").expect("client");
    for s in 0..streams {
        let limits = v1::StreamLimits {
            subjects: vec![format!("s{s}.>")],
            max_msgs: -1,
            max_bytes: -1,
            max_msgs_per_subject: -1,
            max_msg_size: -1,
            duplicate_window_nanos: 120_000_000_000,
            ..Default::default()
        };
        client
            .streams
            .create_stream(v1::CreateStreamRequest {
                config: Some(v1::StreamConfig {
                    name: format!("S{s}"),
                    config_json: b"{}".to_vec(),
                    limits: Some(limits),
                }),
            })
            .await
            .expect("create stream");
    }
    (dir, cp, client)
}

async fn case(streams: usize, budget: Duration) {
    // Sequential: one agent, one commit at a time.
    let (_dir, _cp, mut client) = setup(streams).await;
    let mut lat = Vec::new();
    let start = Instant::now();
    let mut i = 0;
    while start.elapsed() < budget {
        let req = request(format!("seq-{i}"), streams, i);
        let t = Instant::now();
        client.streams.commit_batch(req).await.expect("commit");
        lat.push(t.elapsed());
        i += 1;
    }
    let secs = start.elapsed().as_secs_f64();
    lat.sort();
    println!(
        "streams/batch={streams:>5}  sequential: {:>7.0} commits/s  p50 {:>8.2?}  p99 {:>8.2?}  (n={})",
        lat.len() as f64 / secs,
        pct(&lat, 0.50),
        pct(&lat, 0.99),
        lat.len()
    );

    // Concurrent: 8 agents committing as fast as they can (group commit).
    let (_dir, _cp, client) = setup(streams).await;
    let start = Instant::now();
    let mut tasks = Vec::new();
    for a in 0..AGENTS {
        let mut client = client.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut i = 0;
            while start.elapsed() < budget {
                let req = request(format!("a{a}-{i}"), streams, i);
                let t = Instant::now();
                client.streams.commit_batch(req).await.expect("commit");
                lat.push(t.elapsed());
                i += 1;
            }
            lat
        }));
    }
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await.expect("agent task"));
    }
    let secs = start.elapsed().as_secs_f64();
    lat.sort();
    println!(
        "streams/batch={streams:>5}  {AGENTS} agents:   {:>7.0} commits/s  p50 {:>8.2?}  p99 {:>8.2?}  (n={})",
        lat.len() as f64 / secs,
        pct(&lat, 0.50),
        pct(&lat, 0.99),
        lat.len()
    );
}

fn main() {
    // `cargo test --benches` runs bench binaries with no arguments too; keep it short.
    let secs: f64 = std::env::var("COMMIT_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if std::env::args().any(|a| a == "--bench") {
            3.0
        } else {
            0.2
        });
    let budget = Duration::from_secs_f64(secs);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        for streams in [1, 100, 1000] {
            case(streams, budget).await;
        }
    });
}
