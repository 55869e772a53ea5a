//! One chaos run: start the group, run the workloads and the nemesis for the duration,
//! heal everything, let the workloads drain, then check and report.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::Notify;

use crate::Error;
use crate::cluster::{self, Cluster, Wiring};
use crate::fencing::{self, Fenced};
use crate::linearizability::{self, Verdict};
use crate::nemesis::{self, FaultEvent, FaultKind, Targets};
use crate::proxy::{BucketProxy, Partition};
use crate::rng::Rng;
use crate::workloads::{self, Clock, KvRecord, StreamRecord, WorkRecord};

/// Memory bound per process (resident set), checked on every sample.
pub const RSS_BOUND: u64 = 768 * 1024 * 1024;
/// Search steps per KV key before the checker gives up on it.
const LINEARIZABILITY_BUDGET: u64 = 5_000_000;
/// How many operations of a violation's witness the summary prints.
const WITNESS_TAIL: usize = 16;
/// Longest wait for the route mesh to link every agent at start-up.
const MESH_TIMEOUT: Duration = Duration::from_secs(60);
/// How long after its end a fault's stall is measured.
const STALL_TAIL_MS: u64 = 15_000;

/// What to run.
#[derive(Debug, Clone)]
pub struct Config {
    /// The `infinistream` binary.
    pub binary: PathBuf,
    /// How long the nemesis works (the workloads run a little longer: setup, drain).
    pub duration: Duration,
    pub seed: u64,
    pub publishers: u64,
    pub kv_clients: u64,
    pub kv_keys: u64,
    pub workers: u64,
}

impl Config {
    pub fn new(binary: PathBuf, duration: Duration, seed: u64) -> Config {
        Config {
            binary,
            duration,
            seed,
            publishers: 3,
            kv_clients: 4,
            kv_keys: 32,
            workers: 2,
        }
    }
}

/// The stream workload's counts.
#[derive(Debug, Default, Serialize)]
pub struct StreamCounts {
    pub acked: u64,
    pub unacked_given_up: u64,
    pub retries: u64,
    pub in_stream: u64,
    pub lost: u64,
    pub duplicated: u64,
    pub wrong_sequence: u64,
    pub sequence_gaps: u64,
    pub out_of_order: u64,
}

/// The work-queue workload's counts.
#[derive(Debug, Default, Serialize)]
pub struct WorkCounts {
    pub published: u64,
    pub unacked_publishes: u64,
    pub deliveries: u64,
    pub confirmed_acks: u64,
    /// Acked publishes never delivered and acked by the end of the drain.
    pub never_done: u64,
    /// Deliveries by a fetch that started after the message's ack was confirmed.
    pub delivered_after_ack: u64,
    /// Messages left in the stream after the drain beyond those never acked.
    pub acked_left_in_stream: u64,
    /// Items delivered whose ack confirmation was lost but which left the stream.
    pub ack_unconfirmed: u64,
    /// The never-done items: (number, publish ack time ms, deliveries seen).
    pub never_done_items: Vec<(u64, u64, usize)>,
}

/// The whole report (also written as JSON).
#[derive(Debug, Serialize)]
pub struct Report {
    pub seed: u64,
    pub duration_s: f64,
    pub faults: Vec<FaultEvent>,
    pub stream: StreamCounts,
    pub ack_rate_per_s: f64,
    pub kv: linearizability::Summary,
    pub kv_verdict: Verdict,
    /// On a violation: the last operations of the shortest failing prefix of the key's
    /// history ([`linearizability::witness`]).
    pub kv_witness: Vec<linearizability::Operation>,
    /// KV client errors by operation and message (ambiguous writes, failed reads).
    pub kv_errors: BTreeMap<String, u64>,
    /// Each agent, alone, before the faults: a stream publish, a KV put and a KV get.
    pub agent_probes: BTreeMap<String, Vec<String>>,
    pub work_queue: WorkCounts,
    /// Longest gap between stream acks from each fault's start to 15 s after its end.
    pub longest_stall_ms: BTreeMap<FaultKind, u64>,
    pub max_rss_bytes: BTreeMap<String, u64>,
    pub rss_bound_bytes: u64,
    pub bucket_requests: u64,
    pub bucket_faulted: u64,
    /// The fenced refusals (the zombie check, [`crate::fencing`]).
    pub fenced: Fenced,
    /// The log lines they were counted from.
    pub fencing_log_lines: Vec<String>,
    pub failures: Vec<String>,
}

/// Runs the whole thing.
pub async fn run(config: Config) -> Result<Report, Error> {
    let started = Instant::now();
    let mut rng = Rng::new(config.seed);
    let stores = tokio::task::spawn_blocking(Cluster::start_stores)
        .await
        .map_err(|e| Error::Setup(e.to_string()))??;
    let s3_addr = stores
        .1
        .endpoint()
        .trim_start_matches("http://")
        .parse()
        .map_err(|e| Error::Setup(format!("S3 address: {e}")))?;
    let bucket = BucketProxy::start(s3_addr, rng.next_u64()).await?;
    let mut cp_ports = Vec::new();
    let mut partitions = Vec::new();
    for _ in 0..3 {
        let port = infinistream_testkit::tools::free_port()?;
        partitions.push(Partition::start(([127, 0, 0, 1], port).into()).await?);
        cp_ports.push(port);
    }
    let faketime = std::path::Path::new("/usr/lib/x86_64-linux-gnu/faketime").is_dir();
    let cluster = {
        let (binary, bucket, partitions, cp_ports) = (
            config.binary.clone(),
            bucket.clone(),
            partitions.clone(),
            cp_ports.clone(),
        );
        tokio::task::spawn_blocking(move || {
            Cluster::start(
                &binary,
                stores,
                Wiring {
                    bucket: &bucket,
                    partitions: &partitions,
                    cp_ports: &cp_ports,
                },
                cluster::layout(faketime),
            )
        })
        .await
        .map_err(|e| Error::Setup(e.to_string()))??
    };
    let cluster = Arc::new(cluster);
    let urls = cluster.client_urls();
    let clock = Clock::new();

    // Clients start once the group has formed (every agent linked to every other), as
    // they would with a nats-server cluster whose routes are up.
    let short = {
        let cluster = cluster.clone();
        tokio::task::spawn_blocking(move || cluster.until_meshed(MESH_TIMEOUT))
            .await
            .map_err(|e| Error::Setup(e.to_string()))?
    };
    if !short.is_empty() {
        return Err(Error::Setup(format!(
            "agents not linked to every other agent within {MESH_TIMEOUT:?}: {}",
            short.join(", ")
        )));
    }
    let admin = workloads::connect(&urls).await?;
    workloads::setup(&admin).await?;
    let mut agent_probes = BTreeMap::new();
    for (i, url) in urls.iter().enumerate() {
        agent_probes.insert(
            cluster.agent_name(i).to_owned(),
            workloads::probe(url).await,
        );
    }

    // Memory sampler.
    let sampling = Arc::new(AtomicBool::new(true));
    let max_rss: Arc<Mutex<BTreeMap<String, u64>>> = Arc::default();
    let sampler = {
        let (cluster, sampling, max_rss) = (cluster.clone(), sampling.clone(), max_rss.clone());
        std::thread::spawn(move || {
            while sampling.load(Ordering::Relaxed) {
                for (name, pid) in cluster.pids() {
                    if let Some(rss) = cluster::rss_bytes(pid) {
                        let mut m = max_rss.lock().unwrap_or_else(|p| p.into_inner());
                        let e = m.entry(name).or_default();
                        *e = (*e).max(rss);
                    }
                }
                std::thread::sleep(Duration::from_secs(1));
            }
        })
    };

    // Workloads.
    let stop = Arc::new(Notify::new());
    let stream_record: Arc<Mutex<StreamRecord>> = Arc::default();
    let kv_record: Arc<Mutex<KvRecord>> = Arc::default();
    let work_record: Arc<Mutex<WorkRecord>> = Arc::default();
    let workers_done = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for p in 0..config.publishers {
        let js = workloads::connect(&urls).await?;
        tasks.push(tokio::spawn(workloads::publisher(
            js,
            p,
            clock,
            stop.clone(),
            stream_record.clone(),
        )));
    }
    for c in 0..config.kv_clients {
        let js = workloads::connect(&urls).await?;
        tasks.push(tokio::spawn(workloads::kv_client(
            js,
            c,
            config.kv_keys,
            rng.fork(),
            clock,
            stop.clone(),
            kv_record.clone(),
        )));
    }
    let producer = tokio::spawn(workloads::work_producer(
        workloads::connect(&urls).await?,
        clock,
        stop.clone(),
        work_record.clone(),
    ));
    let mut workers = Vec::new();
    for _ in 0..config.workers {
        workers.push(tokio::spawn(workloads::worker(
            workloads::connect(&urls).await?,
            clock,
            stop.clone(),
            work_record.clone(),
            workers_done.clone(),
        )));
    }

    // The nemesis, on its own thread.
    let targets = Targets {
        cluster: cluster.clone(),
        bucket: bucket.clone(),
        partitions: partitions.clone(),
    };
    let nemesis_rng = rng.fork();
    let deadline = Instant::now() + config.duration;
    let nemesis_stop = Arc::new(AtomicBool::new(false));
    let nemesis = {
        let nemesis_stop = nemesis_stop.clone();
        tokio::task::spawn_blocking(move || {
            nemesis::run(targets, nemesis_rng, clock, deadline, nemesis_stop)
        })
    };
    let faults = nemesis
        .await
        .map_err(|e| Error::Setup(format!("nemesis: {e}")))?;
    // Everything healed by the nemesis itself; a quiet tail, then stop the writers.
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.notify_waiters();
    for task in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(120), task).await;
    }
    let _ = tokio::time::timeout(Duration::from_secs(120), producer).await;
    // Drain the work queue: every acked publish confirmed, or 30 s pass.
    let drain_deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let done = {
            let r = work_record.lock().unwrap_or_else(|p| p.into_inner());
            r.published.keys().all(|n| r.confirmed.contains_key(n))
        };
        if done || Instant::now() > drain_deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    workers_done.store(true, Ordering::Relaxed);
    for w in workers {
        let _ = tokio::time::timeout(Duration::from_secs(30), w).await;
    }

    // Checks.
    let mut failures = Vec::new();
    let stream_record =
        std::mem::take(&mut *stream_record.lock().unwrap_or_else(|p| p.into_inner()));
    let stream = check_stream(&admin, &stream_record).await?;
    let KvRecord {
        history,
        errors: kv_errors,
    } = std::mem::take(&mut *kv_record.lock().unwrap_or_else(|p| p.into_inner()));
    let (kv_verdict, kv, kv_witness) = tokio::task::spawn_blocking(move || {
        let (verdict, summary) = linearizability::check(&history, LINEARIZABILITY_BUDGET);
        let witness = match &verdict {
            Verdict::Violation { operations, .. } => {
                linearizability::witness(operations, LINEARIZABILITY_BUDGET, WITNESS_TAIL)
            }
            _ => Vec::new(),
        };
        (verdict, summary, witness)
    })
    .await
    .map_err(|e| Error::Setup(e.to_string()))?;
    let work_record = std::mem::take(&mut *work_record.lock().unwrap_or_else(|p| p.into_inner()));
    let work_queue = check_work(&admin, &work_record).await?;
    let ack_times: Vec<u64> = {
        let mut t: Vec<u64> = stream_record.acked.iter().map(|a| a.at_ms).collect();
        t.sort_unstable();
        t
    };
    let longest_stall_ms = stalls(&faults, &ack_times);
    sampling.store(false, Ordering::Relaxed);
    let _ = sampler.join();
    let max_rss_bytes = std::mem::take(&mut *max_rss.lock().unwrap_or_else(|p| p.into_inner()));

    for (what, n) in [
        ("acked stream messages lost", stream.lost),
        ("stream Msg-Ids duplicated", stream.duplicated),
        ("acks with a wrong sequence", stream.wrong_sequence),
        ("gaps in the stream's sequences", stream.sequence_gaps),
        ("messages out of order per publisher", stream.out_of_order),
        (
            "acked work items never delivered and acked",
            work_queue.never_done,
        ),
        (
            "work items delivered after their ack was confirmed",
            work_queue.delivered_after_ack,
        ),
        (
            "acked work items left in the stream",
            work_queue.acked_left_in_stream,
        ),
    ] {
        if n > 0 {
            failures.push(format!("{n} {what}"));
        }
    }
    match &kv_verdict {
        Verdict::Linearizable => {}
        Verdict::Violation { key, .. } => {
            failures.push(format!("KV history not linearizable on key {key}"))
        }
        Verdict::Undecided { key } => failures.push(format!(
            "KV linearizability undecided on key {key} within the search budget"
        )),
    }
    for f in &faults {
        if let Some(e) = &f.error {
            failures.push(format!("nemesis {:?} failed: {e}", f.kind));
        }
    }
    for (name, rss) in &max_rss_bytes {
        if *rss > RSS_BOUND {
            failures.push(format!(
                "{name} used {} MiB, over the {} MiB bound",
                rss >> 20,
                RSS_BOUND >> 20
            ));
        }
    }
    if stream.acked == 0 {
        failures.push("no stream publish was acked".into());
    }
    let counts = bucket.counts();
    // Every line of every process is scanned once; the counted ones are kept.
    let agent_lines = cluster.agent_log_lines("");
    let cp_lines = cluster.cp_log_lines("");
    let fenced = Fenced::count(&agent_lines, &cp_lines, &faults);
    if fenced.unfenced() > 0 {
        failures.push(format!(
            "{} of {} agents kept away past their lease came back without their lease refused (zombies not fenced)",
            fenced.unfenced(),
            fenced.zombies
        ));
    }
    let fencing_log_lines: Vec<String> = agent_lines
        .into_iter()
        .chain(cp_lines)
        .filter(|l| fencing::is_fencing_line(l))
        .collect();
    let duration_s = started.elapsed().as_secs_f64();
    Ok(Report {
        seed: config.seed,
        duration_s,
        ack_rate_per_s: stream.acked as f64 / (clock.ms().max(1) as f64 / 1000.0),
        faults,
        stream,
        kv,
        kv_verdict,
        kv_witness,
        agent_probes,
        kv_errors,
        work_queue,
        longest_stall_ms,
        max_rss_bytes,
        rss_bound_bytes: RSS_BOUND,
        bucket_requests: counts.requests,
        bucket_faulted: counts.faulted,
        fenced,
        fencing_log_lines,
        failures,
    })
}

pub(crate) async fn check_stream(
    js: &async_nats::jetstream::Context,
    record: &StreamRecord,
) -> Result<StreamCounts, Error> {
    let messages = workloads::read_all(js, workloads::STREAM).await?;
    let mut counts = StreamCounts {
        acked: record.acked.len() as u64,
        unacked_given_up: record.unacked,
        retries: record.retries,
        in_stream: messages.len() as u64,
        ..Default::default()
    };
    let mut seq_of: HashMap<&str, u64> = HashMap::new();
    let mut expected = 1u64;
    for (seq, id, _) in &messages {
        if *seq != expected {
            counts.sequence_gaps += 1;
        }
        expected = seq + 1;
        // Only the publishers' messages carry a Msg-Id (the agent probes' do not).
        if !id.is_empty() && seq_of.insert(id.as_str(), *seq).is_some() {
            counts.duplicated += 1;
        }
    }
    // Per publisher, the stream order of acked messages must follow their numbers.
    let mut last_seq: HashMap<u64, (u64, u64)> = HashMap::new();
    let mut acked = record.acked.clone();
    acked.sort_by_key(|a| (a.publisher, a.n));
    for a in &acked {
        let id = format!("p{}-{}", a.publisher, a.n);
        match seq_of.get(id.as_str()) {
            None => counts.lost += 1,
            Some(&seq) => {
                if seq != a.seq {
                    counts.wrong_sequence += 1;
                }
                if let Some(&(_, prev)) = last_seq.get(&a.publisher)
                    && seq < prev
                {
                    counts.out_of_order += 1;
                }
                last_seq.insert(a.publisher, (a.n, seq));
            }
        }
    }
    Ok(counts)
}

async fn check_work(
    js: &async_nats::jetstream::Context,
    record: &WorkRecord,
) -> Result<WorkCounts, Error> {
    let stream = js
        .get_stream(workloads::WORK_STREAM)
        .await
        .map_err(|e| Error::Nats(format!("work stream: {e}")))?;
    // An item whose ack was never confirmed but which left the stream was acked (the
    // confirmation was lost); one still in the stream was neither redelivered nor done.
    let mut ack_unconfirmed = 0u64;
    let mut never_done_items = Vec::new();
    for (&n, &(at, seq)) in &record.published {
        if record.confirmed.contains_key(&n) {
            continue;
        }
        let seen = record.deliveries.iter().filter(|(d, _)| *d == n).count();
        match stream.get_raw_message(seq).await {
            Err(e)
                if e.kind()
                    == async_nats::jetstream::stream::LastRawMessageErrorKind::NoMessageFound
                    && seen > 0 =>
            {
                ack_unconfirmed += 1
            }
            _ => never_done_items.push((n, at, seen)),
        }
    }
    let never_done = never_done_items.len() as u64;
    let delivered_after_ack = record
        .deliveries
        .iter()
        .filter(|(n, fetch_started)| record.confirmed.get(n).is_some_and(|c| fetch_started > c))
        .count() as u64;
    let left = stream
        .clone()
        .info()
        .await
        .map_err(|e| Error::Nats(format!("work stream info: {e}")))?
        .state
        .messages;
    // Messages still in the stream beyond those never confirmed (published but unacked
    // ones may be in it too).
    let may_remain = never_done + ack_unconfirmed + record.unacked_publishes;
    Ok(WorkCounts {
        published: record.published.len() as u64,
        unacked_publishes: record.unacked_publishes,
        deliveries: record.deliveries.len() as u64,
        confirmed_acks: record.confirmed.len() as u64,
        never_done,
        delivered_after_ack,
        acked_left_in_stream: left.saturating_sub(may_remain),
        never_done_items,
        ack_unconfirmed,
    })
}

/// The longest gap between consecutive acks from each fault's start until
/// [`STALL_TAIL_MS`] after its end, the maximum per kind.
pub fn stalls(faults: &[FaultEvent], ack_times: &[u64]) -> BTreeMap<FaultKind, u64> {
    let mut out: BTreeMap<FaultKind, u64> = BTreeMap::new();
    for f in faults {
        let end = f.end_ms + STALL_TAIL_MS;
        let mut prev = f.start_ms;
        let mut longest = 0;
        let first = ack_times.partition_point(|&t| t <= f.start_ms);
        let mut reached_end = false;
        for &t in &ack_times[first..] {
            longest = longest.max(t - prev);
            prev = t;
            if t > end {
                reached_end = true;
                break;
            }
        }
        if !reached_end {
            longest = longest.max(end.saturating_sub(prev));
        }
        let e = out.entry(f.kind).or_default();
        *e = (*e).max(longest);
    }
    out
}

impl Report {
    /// A human summary.
    pub fn summary(&self) -> String {
        let mut s = String::new();
        use std::fmt::Write;
        let _ = writeln!(
            s,
            "chaos run: seed {} for {:.0} s, {} faults",
            self.seed,
            self.duration_s,
            self.faults.len()
        );
        let st = &self.stream;
        let _ = writeln!(
            s,
            "stream: {} acked ({:.0}/s), {} in stream, {} retries, {} given up; lost {}, duplicated {}, wrong sequence {}, gaps {}, out of order {}",
            st.acked,
            self.ack_rate_per_s,
            st.in_stream,
            st.retries,
            st.unacked_given_up,
            st.lost,
            st.duplicated,
            st.wrong_sequence,
            st.sequence_gaps,
            st.out_of_order
        );
        let _ = writeln!(
            s,
            "kv: {} operations on {} keys ({} ambiguous): {:?}",
            self.kv.operations,
            self.kv.keys,
            self.kv.ambiguous,
            match &self.kv_verdict {
                Verdict::Linearizable => "linearizable".to_string(),
                Verdict::Violation { key, .. } => format!("NOT linearizable on {key}"),
                Verdict::Undecided { key } => format!("undecided on {key}"),
            }
        );
        for op in &self.kv_witness {
            let _ = writeln!(
                s,
                "  witness: client {} {:?} -> {:?} called {} us, returned {} us",
                op.client, op.input, op.output, op.call, op.ret
            );
        }
        let mut errors: Vec<_> = self.kv_errors.iter().collect();
        errors.sort_by(|a, b| b.1.cmp(a.1));
        for (e, n) in errors.iter().take(5) {
            let _ = writeln!(s, "  kv error ×{n}: {e}");
        }
        for (agent, answers) in &self.agent_probes {
            if answers.iter().any(|a| !a.contains(": ok")) {
                let _ = writeln!(s, "  probe of agent {agent}: {}", answers.join("; "));
            }
        }
        let w = &self.work_queue;
        let _ = writeln!(
            s,
            "work queue: {} published, {} deliveries, {} acks confirmed, {} acked without confirmation; never done {}, delivered after ack {}, acked left in stream {}",
            w.published,
            w.deliveries,
            w.confirmed_acks,
            w.ack_unconfirmed,
            w.never_done,
            w.delivered_after_ack,
            w.acked_left_in_stream
        );
        let _ = writeln!(
            s,
            "bucket proxy: {} requests, {} faulted",
            self.bucket_requests, self.bucket_faulted
        );
        let f = &self.fenced;
        let _ = writeln!(
            s,
            "fenced: {} of {} zombie agents (paused or cut off past the lease) refused on return; agent leases refused {}, job leases lost {}, compaction swaps refused {}, control-plane writes refused by the fence {}",
            f.zombies_fenced,
            f.zombies,
            f.agent_leases_refused.values().sum::<u64>(),
            f.job_leases_lost,
            f.compaction_swaps_refused,
            f.cp_fence_refusals
        );
        for (kind, ms) in &self.longest_stall_ms {
            let _ = writeln!(s, "  longest ack stall after {kind:?}: {ms} ms");
        }
        for (name, rss) in &self.max_rss_bytes {
            let _ = writeln!(s, "  max RSS {name}: {} MiB", rss >> 20);
        }
        if self.failures.is_empty() {
            let _ = writeln!(s, "PASS");
        } else {
            for f in &self.failures {
                let _ = writeln!(s, "FAIL: {f}");
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stall_is_the_longest_gap_around_a_fault() {
        let fault = FaultEvent {
            kind: FaultKind::AgentKill,
            start_ms: 1000,
            end_ms: 2000,
            detail: String::new(),
            error: None,
            zombie: None,
        };
        let acks = [500, 900, 1100, 1200, 4200, 4300, 20_000];
        // No ack from 4300 until 20000, past the window's end (17000): the longest gap.
        assert_eq!(stalls(&[fault], &acks)[&FaultKind::AgentKill], 15_700);
    }
}
