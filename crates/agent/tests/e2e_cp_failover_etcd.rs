//! Control-plane failover between real processes: three `infinistream control-plane`
//! replicas on one real etcd, clients committing batches through a multi-replica
//! [`ControlPlaneClient`] (`http://a,http://b,http://c`), and `kill -9` of the leader
//! process mid-run. A new leader must take over, the clients must carry on through the
//! surviving replicas, and afterwards every acknowledged record is in its stream,
//! contiguously from 1, with no sequence handed out twice and nothing unacknowledged
//! added.

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use infinistream_control_plane::leader::{LeaderElection, LeaderInfo};
use infinistream_control_plane::store::etcd::EtcdStore;
use infinistream_cp_client::{CallError, ControlPlaneClient};
use infinistream_proto::v1;
use infinistream_testkit::etcd::EtcdServer;
use infinistream_testkit::process::ChildProcess;
use infinistream_testkit::tools::free_port;
use tokio::sync::Notify;

type TestResult = Result<(), Box<dyn std::error::Error>>;

const GROUP: &str = "prod";
const KEY: &str = "k3y";
const READY: Duration = Duration::from_secs(60);
const STREAMS: usize = 8;
const CLIENTS: usize = 6;
const BATCHES: usize = 40;
/// Bound on retrying one request, so a broken failover fails instead of hanging.
const RETRY_FOR: Duration = Duration::from_secs(60);

struct Replica {
    process: ChildProcess,
    address: String,
}

fn replica(etcd: &str) -> Result<Replica, Box<dyn std::error::Error>> {
    let address = format!("127.0.0.1:{}", free_port()?);
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_infinistream"));
    cmd.args(["control-plane", "--listen", &address, "-m", "0"])
        .arg("--store")
        .arg(format!("etcd://{}", etcd.trim_start_matches("http://")))
        .env("INFINISTREAM_GROUP_ID", GROUP)
        .env("INFINISTREAM_GROUP_KEY", KEY)
        .env("RUST_LOG", "info");
    let mut process = ChildProcess::spawn(cmd)?;
    process.wait_for_line("control-plane replica serving", READY)?;
    Ok(Replica { process, address })
}

/// Retries `op` on `client` until it succeeds or [`RETRY_FOR`] passes. The client
/// moves to another replica after a transport failure; a replica without a leader
/// answers `Unavailable` until one is elected.
async fn retry<T, F, Fut>(client: &ControlPlaneClient, mut op: F) -> Result<T, String>
where
    F: FnMut(ControlPlaneClient) -> Fut,
    Fut: Future<Output = Result<T, CallError>>,
{
    let deadline = Instant::now() + RETRY_FOR;
    loop {
        match op(client.clone()).await {
            Ok(value) => return Ok(value),
            Err(status) if Instant::now() < deadline => {
                note_retry(&status);
                // Between terms nobody leads for up to the lease TTL.
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(status) => return Err(format!("gave up after {RETRY_FOR:?}: {status}")),
        }
    }
}

fn note_retry(status: &CallError) {
    if std::env::var_os("FAILOVER_TEST_VERBOSE").is_some() {
        eprintln!("retrying after: {status}");
    }
}

fn stream_config(s: usize) -> v1::StreamConfig {
    v1::StreamConfig {
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
    }
}

fn batch(c: usize, b: usize) -> v1::CommitBatchRequest {
    let chunks = (0..3)
        .map(|i| {
            let s = (c + b + i) % STREAMS;
            let n = 1 + (c + b + i) % 3;
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
    v1::CommitBatchRequest {
        batch_id: format!("c{c}-b{b}"),
        object_key: format!("objects/c{c}-b{b}"),
        agent_id: format!("client-{c}"),
        chunks,
    }
}

/// (stream, seq, client, batch, position in chunk) of every acknowledged record.
type Acked = Vec<(String, u64, usize, usize, usize)>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_etcd_kill_9_of_the_leader_process_loses_no_acked_batch() -> TestResult {
    let etcd = EtcdServer::start()?;
    let mut replicas = Vec::new();
    for _ in 0..3 {
        replicas.push(replica(&etcd.endpoint())?);
    }

    // Who leads: the election key the binary writes under its `infinistream/` prefix.
    let observer = EtcdStore::connect(&[etcd.endpoint()], "infinistream/").await?;
    let election = LeaderElection::new(&observer, "control-plane", Duration::from_secs(5));
    let mut leaders = election.watch_leader().await?;
    let first: LeaderInfo = tokio::time::timeout(READY, leaders.wait_for(|l| l.is_some()))
        .await?
        .map_err(|e| e.to_string())?
        .clone()
        .ok_or("no leader")?;
    let leader = replicas
        .iter()
        .position(|r| r.address == first.address)
        .ok_or("the leader is none of the three replicas")?;
    replicas[leader]
        .process
        .wait_for_line("leading: serving writes", READY)?;

    // Each client lists all replicas, starting at a different one, so some talk to the
    // leader directly and the others through a forwarding follower.
    let urls: Vec<String> = replicas
        .iter()
        .map(|r| format!("http://{}", r.address))
        .collect();
    let client_for = |c: usize| {
        let mut list = urls.clone();
        list.rotate_left(c % urls.len());
        list.join(",")
    };

    let admin = ControlPlaneClient::connect(&client_for(leader + 1), GROUP, KEY).await?;
    for s in 0..STREAMS {
        retry(&admin, |client| async move {
            client.create_stream(stream_config(s)).await.map(drop)
        })
        .await?;
    }

    // Clients commit continuously; a third of the way through, the leader is killed.
    let acked = Arc::new(AtomicUsize::new(0));
    let kill_now = Arc::new(Notify::new());
    let mut clients = tokio::task::JoinSet::new();
    for c in 0..CLIENTS {
        let client = ControlPlaneClient::connect(&client_for(c), GROUP, KEY).await?;
        let (acked, kill_now) = (acked.clone(), kill_now.clone());
        clients.spawn(async move {
            let mut seen: Acked = Vec::new();
            for b in 0..BATCHES {
                let request = batch(c, b);
                // The same batch id on every retry: a commit applied before the failure
                // is answered again, never appended twice.
                let resp = retry(&client, |client| {
                    let request = request.clone();
                    async move { client.commit_batch(request).await }
                })
                .await
                .map_err(|e| format!("c{c}-b{b}: {e}"))?;
                for chunk in resp.chunks {
                    for (pos, record) in chunk.records.iter().enumerate() {
                        match record.result {
                            Some(v1::record_result::Result::Seq(seq)) => {
                                seen.push((chunk.stream.clone(), seq, c, b, pos))
                            }
                            ref other => {
                                return Err(format!("c{c}-b{b}: unexpected answer {other:?}"));
                            }
                        }
                    }
                }
                if acked.fetch_add(1, Ordering::SeqCst) + 1 == CLIENTS * BATCHES / 3 {
                    kill_now.notify_one();
                }
            }
            Ok(seen)
        });
    }

    kill_now.notified().await;
    replicas[leader].process.kill()?;
    let acked_at_kill = acked.load(Ordering::SeqCst);

    let mut by_stream: BTreeMap<String, BTreeMap<u64, (usize, usize, usize)>> = BTreeMap::new();
    while let Some(client) = clients.join_next().await {
        for (stream, seq, c, b, pos) in client?? {
            let previous = by_stream
                .entry(stream.clone())
                .or_default()
                .insert(seq, (c, b, pos));
            assert!(
                previous.is_none(),
                "{stream}: sequence {seq} handed out twice"
            );
        }
    }
    assert!(
        acked.load(Ordering::SeqCst) > acked_at_kill,
        "clients committed nothing after the leader was killed"
    );

    // A surviving replica leads, in a later term.
    let now = leaders.borrow().clone().ok_or("no leader after failover")?;
    assert_ne!(now.address, first.address, "the killed replica still leads");
    assert!(now.revision > first.revision, "no new leadership term");
    let new_leader = replicas
        .iter()
        .position(|r| r.address == now.address)
        .ok_or("the new leader is none of the replicas")?;
    replicas[new_leader]
        .process
        .wait_for_line("leading: serving writes", READY)?;

    // Every acked record is in its stream, contiguously from 1, where its batch put it;
    // nothing else is.
    let survivors: Vec<String> = urls
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != leader)
        .map(|(_, u)| u.clone())
        .collect();
    let reader = ControlPlaneClient::connect(&survivors.join(","), GROUP, KEY).await?;
    assert_eq!(by_stream.len(), STREAMS, "every stream got records");
    for (stream, seqs) in &by_stream {
        let n = seqs.len() as u64;
        assert_eq!(
            seqs.keys().copied().collect::<Vec<_>>(),
            (1..=n).collect::<Vec<_>>(),
            "{stream}: acked sequences not contiguous from 1"
        );
        let name = stream.clone();
        let index = retry(&reader, |client| {
            let name = name.clone();
            async move {
                client
                    .read_index(v1::ReadIndexRequest {
                        stream: name,
                        start_seq: 1,
                        end_seq: 0,
                        limit: 100_000,
                    })
                    .await
            }
        })
        .await?;
        let state = index.state.ok_or("no stream state")?;
        assert_eq!(
            (state.messages, state.first_seq, state.last_seq),
            (n, 1, n),
            "{stream}: the store holds other than exactly the acked records"
        );
        let mut indexed = 0;
        for entry in &index.entries {
            for (i, pos) in entry.positions.iter().enumerate() {
                let seq = entry.first_seq + i as u64;
                let (c, b, p) = seqs[&seq];
                assert_eq!(
                    entry.object_key,
                    format!("objects/c{c}-b{b}"),
                    "{stream} seq {seq}"
                );
                assert_eq!(*pos as usize, p, "{stream} seq {seq}");
                indexed += 1;
            }
        }
        assert_eq!(indexed, n, "{stream}: index entries cover every record");
    }
    Ok(())
}
