//! CommitBatch throughput and latency on the embedded (redb) and etcd stores.
//!
//! `CARGO_TARGET_DIR=/work/target-bench cargo bench -p infinistream-control-plane --bench commit`
//! prints, per store and for batches touching 1, 100 and 1,000 streams (2 records per
//! stream): commits/s and p50/p99 commit latency with one committer (one agent
//! committing back to back), with `COMMIT_BENCH_AGENTS` concurrent committers back to
//! back (default 16: saturation, group-committed by the writer), and with
//! `COMMIT_BENCH_PACED_AGENTS` agents (default 125) each committing once per 250 ms
//! batch window (500 commits/s offered: the load the targets are stated for).
//!
//! - The in-process client is used (`ControlPlane::client`): since session 12 its
//!   `CommitBatch` calls the service directly (no protobuf encoding, routes or auth
//!   interceptor, as an embedded agent commits); the network hop to a remote control
//!   plane is not included either.
//! - etcd is a real `etcd` started by testkit on loopback (one member, its own temp
//!   data dir, `--max-txn-ops` 10,240); the control plane runs as an elected leader with
//!   every write fenced on the leader key's revision, as `infinistream control-plane`
//!   does.
//! - `COMMIT_BENCH_STORE` = `embedded`, `etcd`, `memory` (logic only, no durability)
//!   or a comma-separated list; default `embedded,etcd`.
//! - `COMMIT_BENCH_SECS` = time per case (default 3 s; 0.2 s without `--bench`, as
//!   `cargo test --benches` runs it).
//! - `COMMIT_BENCH_STREAMS` = comma-separated stream counts (default `1,100,1000`).
//! - `cpu/commit` = this process's CPU time (user + system, from `/proc/self/stat`,
//!   all threads: the committers' client side, the control plane and the embedded
//!   store, not etcd's process) divided by the commits: a load-independent measure on
//!   a shared machine.
//! - `etcd cpu/commit` = the etcd server process's CPU time over the case (from
//!   `/proc/<etcd pid>/stat`) divided by the commits.
//! - `txn/commit`, `ops/txn`, `B/txn` = store transactions per commit, ops (puts and
//!   deletes) per transaction and bytes (keys + values) written per transaction, counted
//!   by a wrapper around the store: what the commit path asks of the store.
//! - `COMMIT_BENCH_LOADS` = comma-separated loads to run: `single` (one committer back
//!   to back), `saturated` (`COMMIT_BENCH_AGENTS` back to back), `paced`; default all.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, UNIX_EPOCH};

use infinistream_control_plane::leader::{LeaderElection, Leadership};
use infinistream_control_plane::store::embedded::EmbeddedStore;
use infinistream_control_plane::store::etcd::{EtcdStore, EtcdStoreOptions};
use infinistream_control_plane::store::memory::MemoryStore;
use infinistream_control_plane::store::{
    Compare, KeyValue, MetaStore, Op, StoreError, TxnLimits, TxnOutcome,
};
use infinistream_control_plane::{ControlPlane, ControlPlaneClient, GroupKeys, Options};
use infinistream_proto::v1;
use infinistream_testkit::etcd::{EtcdServer, MAX_TXN_OPS};
use infinistream_types::MockClock;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Memory,
    Embedded,
    Etcd,
}

impl Kind {
    fn parse(s: &str) -> Kind {
        match s.trim() {
            "memory" => Kind::Memory,
            "embedded" => Kind::Embedded,
            "etcd" => Kind::Etcd,
            other => panic!("COMMIT_BENCH_STORE: unknown store `{other}` (memory, embedded, etcd)"),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Kind::Memory => "memory",
            Kind::Embedded => "embedded",
            Kind::Etcd => "etcd",
        }
    }
}

/// What a case keeps alive while it runs.
struct Fixture {
    _dir: tempfile::TempDir,
    _cp: ControlPlane,
    _leadership: Option<Leadership>,
    client: ControlPlaneClient,
    counts: Arc<Counts>,
}

/// Store transactions, ops and bytes written, counted by [`Counting`].
#[derive(Debug, Default)]
struct Counts {
    txns: AtomicU64,
    ops: AtomicU64,
    bytes: AtomicU64,
}

impl Counts {
    fn snapshot(&self) -> (u64, u64, u64) {
        (
            self.txns.load(Ordering::Relaxed),
            self.ops.load(Ordering::Relaxed),
            self.bytes.load(Ordering::Relaxed),
        )
    }
}

/// A store that counts what is asked of the one it wraps.
#[derive(Debug)]
struct Counting {
    inner: Arc<dyn MetaStore>,
    counts: Arc<Counts>,
}

#[async_trait::async_trait]
impl MetaStore for Counting {
    async fn get(&self, key: &[u8]) -> Result<Option<KeyValue>, StoreError> {
        self.inner.get(key).await
    }
    async fn range(
        &self,
        start: &[u8],
        end: &[u8],
        limit: usize,
    ) -> Result<Vec<KeyValue>, StoreError> {
        self.inner.range(start, end, limit).await
    }
    async fn txn(&self, compares: Vec<Compare>, ops: Vec<Op>) -> Result<TxnOutcome, StoreError> {
        let bytes: usize = ops
            .iter()
            .map(|op| match op {
                Op::Put { key, value } => key.len() + value.len(),
                Op::Delete { key } => key.len(),
                Op::DeletePrefix { prefix } => prefix.len(),
            })
            .sum();
        self.counts.txns.fetch_add(1, Ordering::Relaxed);
        self.counts
            .ops
            .fetch_add(ops.len() as u64, Ordering::Relaxed);
        self.counts.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
        self.inner.txn(compares, ops).await
    }
    fn txn_limits(&self) -> TxnLimits {
        self.inner.txn_limits()
    }
}

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
        object_key: format!("g/batches/{id}"),
        batch_id: id,
        agent_id: "bench".into(),
        chunks,
    }
}

/// This process's CPU time so far (user + system), from `/proc/self/stat`.
fn cpu_time() -> Duration {
    proc_cpu_time("self")
}

/// The pid of the etcd serving `endpoint` (the process whose command line names it).
fn etcd_pid(endpoint: &str) -> Option<String> {
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let pid = entry.file_name().to_string_lossy().into_owned();
        if !pid.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        let is_etcd = args
            .first()
            .is_some_and(|a| a.ends_with(b"etcd") || a.ends_with(b"etcd-server"));
        if is_etcd
            && args
                .windows(2)
                .any(|w| w[0] == b"--listen-client-urls" && w[1] == endpoint.as_bytes())
        {
            return Some(pid);
        }
    }
    None
}

/// A process's CPU time so far (user + system), from `/proc/<pid>/stat`.
fn proc_cpu_time(pid: &str) -> Duration {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return Duration::ZERO;
    };
    // Fields after the command name (which is in parentheses): utime is the 12th,
    // stime the 13th, in clock ticks (100 per second on Linux).
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    let ticks = f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0);
    Duration::from_millis(ticks * 10)
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

async fn setup(kind: Kind, etcd: Option<&EtcdServer>, case: usize, streams: usize) -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut leadership = None;
    let counts = Arc::new(Counts::default());
    let counted = |inner: Arc<dyn MetaStore>| -> Arc<dyn MetaStore> {
        Arc::new(Counting {
            inner,
            counts: counts.clone(),
        })
    };
    let store: Arc<dyn MetaStore> = match kind {
        Kind::Memory => counted(Arc::new(MemoryStore::new())),
        Kind::Embedded => counted(Arc::new(
            EmbeddedStore::open(dir.path()).await.expect("open store"),
        )),
        Kind::Etcd => {
            let etcd = etcd.expect("etcd server");
            let store = EtcdStore::connect_with(
                &[etcd.endpoint()],
                EtcdStoreOptions {
                    prefix: format!("/bench-{case}/"),
                    max_txn_ops: Some(MAX_TXN_OPS),
                    ..EtcdStoreOptions::default()
                },
            )
            .await
            .expect("connect to etcd");
            let election = LeaderElection::new(&store, "control-plane", Duration::from_secs(5));
            let lead = election.campaign("bench").await.expect("leadership");
            let fenced: Arc<dyn MetaStore> = counted(Arc::new(lead.fenced_store(Arc::new(store))));
            leadership = Some(lead);
            fenced
        }
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
    let client = cp.client("bench", "key").expect("client");
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
        let resp = client
            .raw_streams()
            .create_stream(v1::CreateStreamRequest {
                config: Some(v1::StreamConfig {
                    name: format!("S{s}"),
                    config_json: b"{}".to_vec(),
                    limits: Some(limits),
                }),
            })
            .await
            .expect("create stream")
            .into_inner();
        assert!(resp.error.is_none(), "create stream: {:?}", resp.error);
    }
    Fixture {
        _dir: dir,
        _cp: cp,
        _leadership: leadership,
        client,
        counts,
    }
}

struct Row {
    store: &'static str,
    streams: usize,
    committers: usize,
    /// Each committer commits once per 250 ms window (else back to back).
    paced: bool,
    per_sec: f64,
    p50: Duration,
    p99: Duration,
    n: usize,
    cpu_per_commit: Duration,
    /// etcd's CPU per commit (etcd cases only).
    etcd_cpu_per_commit: Option<Duration>,
    txns_per_commit: f64,
    ops_per_txn: f64,
    bytes_per_txn: f64,
}

/// `committers` tasks commit for `budget`: back to back, or each once per `every`
/// (like agents flushing every batch window; a commit that takes longer delays the
/// next one, as an agent's flush does).
async fn run(
    client: &ControlPlaneClient,
    streams: usize,
    committers: usize,
    every: Option<Duration>,
    budget: Duration,
) -> (f64, Vec<Duration>) {
    let start = Instant::now();
    let mut tasks = Vec::new();
    for a in 0..committers {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut i = 0;
            let mut tick = every.map(|every| {
                // Spread the agents' windows evenly.
                let offset = every.mul_f64(a as f64 / committers as f64);
                let mut tick =
                    tokio::time::interval_at(tokio::time::Instant::now() + offset, every);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                tick
            });
            while start.elapsed() < budget {
                if let Some(tick) = tick.as_mut() {
                    tick.tick().await;
                }
                let req = request(format!("a{a}-{i}"), streams, i);
                let t = Instant::now();
                let resp = client
                    .raw_streams()
                    .commit_batch(req)
                    .await
                    .expect("commit")
                    .into_inner();
                lat.push(t.elapsed());
                assert_eq!(resp.chunks.len(), streams);
                i += 1;
            }
            lat
        }));
    }
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await.expect("committer task"));
    }
    let secs = start.elapsed().as_secs_f64();
    lat.sort();
    (lat.len() as f64 / secs, lat)
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let secs: f64 = std::env::var("COMMIT_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if bench { 3.0 } else { 0.2 });
    let budget = Duration::from_secs_f64(secs);
    let agents: usize = std::env::var("COMMIT_BENCH_AGENTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(16);
    let paced: usize = std::env::var("COMMIT_BENCH_PACED_AGENTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(125);
    let kinds: Vec<Kind> = std::env::var("COMMIT_BENCH_STORE")
        .unwrap_or_else(|_| "embedded,etcd".into())
        .split(',')
        .map(Kind::parse)
        .collect();
    let stream_counts: Vec<usize> = std::env::var("COMMIT_BENCH_STREAMS")
        .unwrap_or_else(|_| "1,100,1000".into())
        .split(',')
        .map(|s| s.trim().parse().expect("COMMIT_BENCH_STREAMS: numbers"))
        .collect();
    let loads: Vec<String> = std::env::var("COMMIT_BENCH_LOADS")
        .unwrap_or_else(|_| "single,saturated,paced".into())
        .split(',')
        .map(|s| s.trim().to_owned())
        .collect();
    for l in &loads {
        assert!(
            ["single", "saturated", "paced"].contains(&l.as_str()),
            "COMMIT_BENCH_LOADS: unknown load `{l}` (single, saturated, paced)"
        );
    }
    let etcd = kinds
        .contains(&Kind::Etcd)
        .then(|| EtcdServer::start().expect("start etcd (is etcd installed?)"));
    let etcd_pid = etcd.as_ref().and_then(|e| etcd_pid(&e.endpoint()));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let mut rows = Vec::new();
    let mut case = 0;
    rt.block_on(async {
        for &kind in &kinds {
            for &streams in &stream_counts {
                let window = Duration::from_millis(250);
                let all = [
                    ("single", 1, None),
                    ("saturated", agents, None),
                    ("paced", paced, Some(window)),
                ];
                for (load, committers, every) in all {
                    if !loads.iter().any(|l| l == load) {
                        continue;
                    }
                    case += 1;
                    let fx = setup(kind, etcd.as_ref(), case, streams).await;
                    let etcd_pid = etcd_pid.as_deref().filter(|_| kind == Kind::Etcd);
                    let cpu0 = cpu_time();
                    let etcd0 = etcd_pid.map(proc_cpu_time);
                    let (txns0, ops0, bytes0) = fx.counts.snapshot();
                    let (per_sec, lat) = run(&fx.client, streams, committers, every, budget).await;
                    let cpu = cpu_time().saturating_sub(cpu0);
                    let etcd_cpu = etcd_pid
                        .zip(etcd0)
                        .map(|(pid, t0)| proc_cpu_time(pid).saturating_sub(t0));
                    let (txns1, ops1, bytes1) = fx.counts.snapshot();
                    let (txns, ops, bytes) = (txns1 - txns0, ops1 - ops0, bytes1 - bytes0);
                    let n = u32::try_from(lat.len().max(1)).unwrap_or(u32::MAX);
                    let row = Row {
                        store: kind.name(),
                        streams,
                        committers,
                        paced: every.is_some(),
                        per_sec,
                        p50: pct(&lat, 0.50),
                        p99: pct(&lat, 0.99),
                        n: lat.len(),
                        cpu_per_commit: cpu / n,
                        etcd_cpu_per_commit: etcd_cpu.map(|c| c / n),
                        txns_per_commit: txns as f64 / f64::from(n),
                        ops_per_txn: ops as f64 / txns.max(1) as f64,
                        bytes_per_txn: bytes as f64 / txns.max(1) as f64,
                    };
                    println!(
                        "{:>8}  streams/batch={:>5}  committers={:>3}{}: {:>7.0} commits/s  p50 {:>9.2?}  p99 {:>9.2?}  cpu/commit {:>9.2?}{}  txn/commit {:.3}  ops/txn {:.0}  B/txn {:.0}  (n={})",
                        row.store,
                        row.streams,
                        row.committers,
                        if row.paced { " every 250 ms" } else { " back to back" },
                        row.per_sec,
                        row.p50,
                        row.p99,
                        row.cpu_per_commit,
                        row.etcd_cpu_per_commit
                            .map(|c| format!("  etcd cpu/commit {c:>9.2?}"))
                            .unwrap_or_default(),
                        row.txns_per_commit,
                        row.ops_per_txn,
                        row.bytes_per_txn,
                        row.n
                    );
                    rows.push(row);
                }
            }
        }
    });
    println!();
    println!(
        "| store | streams per batch | committers | commits/s | p50 | p99 | CPU per commit | etcd CPU per commit | txns per commit | ops per txn | bytes per txn |"
    );
    println!("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in &rows {
        println!(
            "| {} | {} | {} {} | {:.0} | {:.2} ms | {:.2} ms | {:.2} ms | {} | {:.3} | {:.0} | {:.0} |",
            r.store,
            r.streams,
            r.committers,
            if r.paced {
                "every 250 ms"
            } else {
                "back to back"
            },
            r.per_sec,
            r.p50.as_secs_f64() * 1e3,
            r.p99.as_secs_f64() * 1e3,
            r.cpu_per_commit.as_secs_f64() * 1e3,
            r.etcd_cpu_per_commit.map_or("-".to_owned(), |c| format!(
                "{:.2} ms",
                c.as_secs_f64() * 1e3
            )),
            r.txns_per_commit,
            r.ops_per_txn,
            r.bytes_per_txn
        );
    }
}
