//! Failover: three control-plane replicas on one real etcd, agents committing through
//! any replica, the leader killed mid-run. A new leader must take over, and no
//! acknowledged batch may be lost or any sequence handed out twice.
//!
//! Each replica runs on its own tokio runtime; "killing" it shuts that runtime down
//! without any goodbye (no resign, connections and lease keep-alive just stop), which is
//! what `kill -9` does to a process.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use infinistream_control_plane::leader::{LeaderElection, ReplicaOptions, serve_replica};
use infinistream_control_plane::store::etcd::EtcdStore;
use infinistream_control_plane::{ControlPlaneClient, GroupKeys, Options};
use infinistream_proto::v1;
use infinistream_testkit::etcd::{EtcdServer, SharedEtcd};
use infinistream_types::{SharedClock, SystemClock};
use tokio::sync::Notify;

type TestResult = Result<(), Box<dyn std::error::Error>>;

const GROUP: &str = "team-a";
const KEY: &str = "key-a";
const STREAMS: usize = 6;
const AGENTS: usize = 4;
const BATCHES: usize = 30;
const TTL: Duration = Duration::from_secs(2);
/// Bound on retries of one request, so a broken failover fails instead of hanging.
const MAX_ATTEMPTS: usize = 300;

struct Replica {
    address: String,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Replica {
    fn start(etcd: &SharedEtcd) -> Result<Replica, Box<dyn std::error::Error>> {
        Replica::start_until(etcd, std::future::pending())
    }

    /// A replica that shuts down gracefully when `shutdown` resolves.
    fn start_until(
        etcd: &SharedEtcd,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<Replica, Box<dyn std::error::Error>> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()?;
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let address = listener.local_addr()?.to_string();
        let (endpoint, prefix) = (etcd.endpoint(), etcd.prefix().to_owned());
        let replica = ReplicaOptions {
            ttl: TTL,
            ..ReplicaOptions::new(address.clone())
        };
        runtime.spawn(async move {
            let result = async {
                let listener = tokio::net::TcpListener::from_std(listener)?;
                // The etcd client lives on this runtime, so a kill cuts it too.
                let store = EtcdStore::connect(&[endpoint], &prefix).await?;
                let groups = GroupKeys::new([(GROUP, KEY)])?;
                let clock: SharedClock = Arc::new(SystemClock);
                let options = Options {
                    retention_interval: None,
                    ..Options::default()
                };
                serve_replica(store, groups, clock, options, replica, listener, shutdown).await?;
                Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
            }
            .await;
            if let Err(e) = result {
                panic!("replica failed: {e}");
            }
        });
        Ok(Replica {
            address,
            runtime: Some(runtime),
        })
    }

    fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Stops the replica abruptly, like `kill -9`.
    fn kill(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Retries `op` against the replicas in turn until it succeeds.
async fn with_failover<T, F, Fut>(urls: &[String], start: usize, mut op: F) -> Result<T, String>
where
    F: FnMut(ControlPlaneClient) -> Fut,
    Fut: Future<Output = Result<T, tonic::Status>>,
{
    let mut last = String::new();
    for attempt in 0..MAX_ATTEMPTS {
        let url = &urls[(start + attempt) % urls.len()];
        match ControlPlaneClient::connect(url, GROUP, KEY).await {
            Ok(client) => match op(client).await {
                Ok(value) => return Ok(value),
                Err(status) => last = format!("{url}: {status}"),
            },
            Err(e) => last = e.to_string(),
        }
        // Between terms nobody leads for up to a TTL; back off a little.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(format!(
        "gave up after {MAX_ATTEMPTS} attempts; last error: {last}"
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_failover_loses_no_batch_and_reuses_no_sequence() -> TestResult {
    let etcd = EtcdServer::shared()?;
    let mut replicas = Vec::new();
    for _ in 0..3 {
        replicas.push(Replica::start(&etcd)?);
    }
    let urls: Vec<String> = replicas.iter().map(Replica::url).collect();

    // Who leads? Follow the leader record.
    let observer = EtcdStore::connect(&[etcd.endpoint()], etcd.prefix()).await?;
    let election = LeaderElection::new(&observer, "control-plane", TTL);
    let mut leaders = election.watch_leader().await?;
    let first = tokio::time::timeout(Duration::from_secs(30), leaders.wait_for(|l| l.is_some()))
        .await?
        .map_err(|e| e.to_string())?
        .clone()
        .ok_or("no leader")?;
    let leader_index = replicas
        .iter()
        .position(|r| r.address == first.address)
        .ok_or("leader is not one of the replicas")?;

    // Create the streams through a follower (forwarding works).
    let follower = (leader_index + 1) % replicas.len();
    for s in 0..STREAMS {
        with_failover(&urls, follower, |client| async move {
            let resp = client
                .raw_streams()
                .create_stream(v1::CreateStreamRequest {
                    config: Some(v1::StreamConfig {
                        name: format!("S{s}"),
                        config_json: format!("{{\"name\":\"S{s}\"}}").into_bytes(),
                        limits: Some(v1::StreamLimits {
                            subjects: vec![format!("s{s}.>")],
                            max_msgs: -1,
                            max_bytes: -1,
                            max_msgs_per_subject: -1,
                            max_msg_size: -1,
                            duplicate_window_nanos: 120_000_000_000,
                            ..Default::default()
                        }),
                    }),
                })
                .await?
                .into_inner();
            match resp.error {
                None => Ok(()),
                Some(e) if e.err_code == 10058 => Ok(()), // created by an earlier attempt
                Some(e) => Err(tonic::Status::internal(format!("create S{s}: {e:?}"))),
            }
        })
        .await?;
    }

    // Agents commit; after a third of all batches are acked, the leader is killed.
    let acked = Arc::new(AtomicUsize::new(0));
    let kill_now = Arc::new(Notify::new());
    let mut agents = tokio::task::JoinSet::new();
    for a in 0..AGENTS {
        let urls = urls.clone();
        let acked = acked.clone();
        let kill_now = kill_now.clone();
        agents.spawn(async move {
            let mut seen: Vec<(String, u64, usize, usize, usize)> = Vec::new();
            for b in 0..BATCHES {
                let chunks: Vec<v1::ChunkMeta> = (0..3)
                    .map(|i| {
                        let s = (a + b + i) % STREAMS;
                        let n = 1 + (a + i) % 2;
                        v1::ChunkMeta {
                            stream: format!("S{s}"),
                            chunk_index: i as u32,
                            record_count: n as u32,
                            byte_size: 100,
                            records: (0..n)
                                .map(|k| v1::RecordMeta {
                                    subject: format!("s{s}.k{k}"),
                                    size: 10,
                                    timestamp_unix_nanos: 1,
                                    ..Default::default()
                                })
                                .collect(),
                        }
                    })
                    .collect();
                let request = v1::CommitBatchRequest {
                    batch_id: format!("a{a}-b{b}"),
                    object_key: format!("objects/a{a}-b{b}"),
                    agent_id: format!("agent-{a}"),
                    chunks,
                };
                // The same batch id on every retry: a commit applied before a failure
                // is answered again, never appended twice.
                let resp = with_failover(&urls, a, |client| {
                    let request = request.clone();
                    async move {
                        Ok(client
                            .raw_streams()
                            .commit_batch(request)
                            .await?
                            .into_inner())
                    }
                })
                .await?;
                for chunk in resp.chunks {
                    for (pos, record) in chunk.records.iter().enumerate() {
                        match record.result {
                            Some(v1::record_result::Result::Seq(seq)) => {
                                seen.push((chunk.stream.clone(), seq, a, b, pos))
                            }
                            ref other => {
                                return Err(format!("a{a}-b{b}: unexpected answer {other:?}"));
                            }
                        }
                    }
                }
                if acked.fetch_add(1, Ordering::SeqCst) + 1 == AGENTS * BATCHES / 3 {
                    kill_now.notify_one();
                }
            }
            Ok(seen)
        });
    }

    kill_now.notified().await;
    replicas[leader_index].kill();
    let killed = first.address.clone();

    let mut by_stream: BTreeMap<String, BTreeMap<u64, (usize, usize, usize)>> = BTreeMap::new();
    while let Some(agent) = agents.join_next().await {
        for (stream, seq, a, b, pos) in agent?? {
            let previous = by_stream
                .entry(stream.clone())
                .or_default()
                .insert(seq, (a, b, pos));
            assert!(
                previous.is_none(),
                "{stream}: sequence {seq} handed out twice"
            );
        }
    }

    // A new leader took over, with a later term.
    let now = leaders.borrow().clone().ok_or("no leader after failover")?;
    assert_ne!(now.address, killed, "the killed replica still leads");
    assert!(now.revision > first.revision);

    // Every acked record is in the streams, contiguously, and nothing else is.
    let survivor = (leader_index + 1) % replicas.len();
    for (stream, seqs) in &by_stream {
        let n = seqs.len() as u64;
        assert_eq!(
            seqs.keys().copied().collect::<Vec<_>>(),
            (1..=n).collect::<Vec<_>>(),
            "{stream}: acked sequences not contiguous from 1"
        );
        let name = stream.clone();
        let index = with_failover(&urls, survivor, |client| {
            let name = name.clone();
            async move {
                Ok(client
                    .raw_streams()
                    .read_index(v1::ReadIndexRequest {
                        stream: name,
                        start_seq: 1,
                        end_seq: 0,
                        limit: 100_000,
                    })
                    .await?
                    .into_inner())
            }
        })
        .await?;
        let state = index.state.ok_or("no stream state")?;
        assert_eq!(
            (state.messages, state.first_seq, state.last_seq),
            (n, 1, n),
            "{stream}: the store holds other than exactly the acked records"
        );
        for entry in &index.entries {
            for (i, pos) in entry.positions.iter().enumerate() {
                let seq = entry.first_seq + i as u64;
                let (a, b, p) = seqs[&seq];
                assert_eq!(
                    entry.object_key,
                    format!("objects/a{a}-b{b}"),
                    "{stream} seq {seq}"
                );
                assert_eq!(*pos as usize, p);
            }
        }
    }
    let total: usize = by_stream.values().map(BTreeMap::len).sum();
    assert!(total > 0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_replica_shutdown_hands_over_leadership() -> TestResult {
    // A leader shutting down resigns: the next leader is elected from the revoke, and
    // the retiring replica's record is gone at once rather than after a TTL.
    let etcd = EtcdServer::shared()?;
    let observer = EtcdStore::connect(&[etcd.endpoint()], etcd.prefix()).await?;
    let election = LeaderElection::new(&observer, "control-plane", TTL);
    let mut leaders = election.watch_leader().await?;

    let (stop_first, stopped) = tokio::sync::oneshot::channel::<()>();
    let first = Replica::start_until(&etcd, async move {
        let _ = stopped.await;
    })?;
    let leading = |address: String| {
        move |l: &Option<infinistream_control_plane::leader::LeaderInfo>| {
            l.as_ref().map(|l| l.address.as_str()) == Some(address.as_str())
        }
    };
    tokio::time::timeout(
        Duration::from_secs(30),
        leaders.wait_for(leading(first.address.clone())),
    )
    .await?
    .map_err(|e| e.to_string())?;
    let second = Replica::start(&etcd)?;

    let _ = stop_first.send(());
    // The resign deletes the record, then the second replica takes the key.
    tokio::time::timeout(
        Duration::from_secs(30),
        leaders.wait_for(leading(second.address.clone())),
    )
    .await?
    .map_err(|e| e.to_string())?;

    // The new leader serves writes.
    let urls = vec![second.url()];
    with_failover(&urls, 0, |client| async move {
        client
            .raw_streams()
            .create_stream(v1::CreateStreamRequest {
                config: Some(v1::StreamConfig {
                    name: "AFTER".into(),
                    config_json: b"{\"name\":\"AFTER\"}".to_vec(),
                    limits: Some(v1::StreamLimits {
                        subjects: vec!["after.>".into()],
                        max_msgs: -1,
                        max_bytes: -1,
                        max_msgs_per_subject: -1,
                        max_msg_size: -1,
                        ..Default::default()
                    }),
                }),
            })
            .await
            .map(|_| ())
    })
    .await?;
    drop(first);
    Ok(())
}
