//! One simulated cluster and its schedule.
//!
//! The cluster: a metadata store and a bucket (both the real in-memory stores), a
//! control-plane leader (plus deposed ones still running until they notice), a few
//! produce agents (each a real `Batcher` with its own bucket decorators and a
//! committer that calls the control plane in-process), publishers that retry with the
//! same `Nats-Msg-Id` until acked, and two agents of one pull consumer that claim,
//! read through the fetcher's `StreamReader`, and ack.
//!
//! The faults, each drawn from the seeded RNG at its point (the counters in the
//! [`Report`] name them):
//! - crash of an agent at each await of the flush and commit path: between steps
//!   (mid-upload when the bucket is slow), before the commit RPC, after the commit
//!   applied but before the batcher sees the answer, after the answer but before the
//!   PubAck reaches the publisher;
//! - crash of the control-plane leader before or after any metadata-store write, and
//!   leader change with the old leader still running (it must be fenced);
//! - lost requests, lost answers and duplicated answers of the commit, claim and ack
//!   RPCs, and RPCs routed to a deposed leader;
//! - a consumer agent paused past its claim's deadline whose release (fenced by
//!   delivery count) arrives after the other agent claimed the messages again;
//! - metadata-store writes that fail, fail after applying, or are delayed (reordering);
//! - bucket PUTs that fail (5xx), are refused (403), write then report failure, or are
//!   slow; bucket GETs that fail.
//!
//! The invariants, checked after every step through the current leader with faults
//! held off, and once more at the end through a freshly opened control plane (whose
//! cache comes from the store alone, so only what is durable counts):
//! 1. no acked message is lost: every acked `(msg id, seq)` reads back at `seq` with
//!    its payload, from the bucket;
//! 2. no duplicate: a msg id is stored at most once, and every answer for it names
//!    the same sequence;
//! 3. sequences are contiguous from 1 and the stream's state agrees with its index;
//! 4. each publisher's acked messages have increasing sequences (it awaits each ack);
//! 5. the consumer's ack floor never moves back, stays at or below the last sequence,
//!    and the delivered sequence is at or above it;
//! 6. nothing is delivered again after its ack was confirmed, nor claimed again before
//!    the deadline of its previous claim (a late release must not cancel a newer claim);
//! 7. a replayed commit answers what the first one did;
//! 8. at the end, with faults healed, every publisher finishes and the consumer
//!    drains the stream (every message delivered, ack floor at the last sequence).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use infinistream_control_plane::{
    ControlPlane, ControlPlaneClient, DirectClient, GroupKeys, Options,
};
use infinistream_cp_client::CallError;
use infinistream_fetcher::{ReaderOptions, StreamReader};
use infinistream_gateway::{
    AckSink, Batcher, BatcherConfig, CommitError, Committer, GatewayMetrics, PendingRecord,
    PublishOutcome,
};
use infinistream_metastore::memory::MemoryStore;
use infinistream_objstore::object_store::ObjectStore;
use infinistream_objstore::object_store::memory::InMemory;
use infinistream_objstore::{
    Bucket, BucketOptions, FaultAction, FaultError, FaultHandle, FaultRule, FaultyStore, Op,
    RetryConfig,
};
use infinistream_proto::v1;
use infinistream_types::SharedClock;
use parking_lot::Mutex;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep, timeout};
use tokio_util::sync::CancellationToken;

use crate::harness::{self, TokioClock, commit_within};
use crate::meta::FaultyMeta;
use crate::sched::{Ctx, FaultRates, Node};

use crate::harness::{GROUP, KEY};
const STREAM: &str = "S";
const CONSUMER: &str = "C";
/// An RPC's deadline (the control-plane client's order of magnitude).
const RPC_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a publisher waits for its PubAck before publishing again.
const PUBACK_TIMEOUT: Duration = Duration::from_secs(6);
/// Attempts per message before a publisher gives up on it (it is then neither
/// promised nor forbidden).
const MAX_ATTEMPTS: u32 = 40;
const ACK_WAIT: Duration = Duration::from_secs(1);
const ACK_WAIT_NANOS: i64 = ACK_WAIT.as_nanos() as i64;
/// The consumer's pause after a claim that delivered nothing, doubled while idle.
const FIRST_IDLE_PAUSE: Duration = Duration::from_millis(50);
const MAX_IDLE_PAUSE: Duration = Duration::from_millis(800);

/// The size of one schedule.
#[derive(Debug, Clone)]
pub struct Config {
    pub publishers: usize,
    pub messages_per_publisher: usize,
    pub agents: usize,
    pub steps: usize,
    pub rates: FaultRates,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            publishers: 3,
            messages_per_publisher: 6,
            agents: 2,
            steps: 12,
            rates: FaultRates::default(),
        }
    }
}

/// What one schedule did.
#[derive(Debug, Clone)]
pub struct Report {
    pub seed: u64,
    /// Messages acked to publishers.
    pub acked: usize,
    /// The stream's last sequence at the end.
    pub stored: u64,
    /// Faults injected, by point.
    pub faults: BTreeMap<&'static str, u64>,
    /// A digest of every choice and outcome: the same seed gives the same digest.
    pub digest: u64,
    /// The events the digest folds, in order.
    pub events: Vec<String>,
}

/// A violated invariant, with the seed that replays it.
#[derive(Debug, Clone)]
pub struct Failure {
    pub seed: u64,
    pub step: usize,
    pub message: String,
    /// The schedule's events up to the failure.
    pub events: Vec<String>,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "simulation seed {} failed at step {}: {}\n  replay: SIM_SEED={} cargo test -p infinistream-sim --test simulation -- replay --nocapture",
            self.seed, self.step, self.message, self.seed
        )
    }
}

impl std::error::Error for Failure {}

struct CpNode {
    node: Arc<Node>,
    /// The client the fetcher's `StreamReader` needs (over the gRPC services).
    client: ControlPlaneClient,
    /// Every other call: straight into the services, no codec (see `DirectClient`).
    direct: DirectClient,
    /// Keeps the engine (and its writer) alive while the node is.
    _cp: ControlPlane,
}

struct Agent {
    node: Arc<Node>,
    batcher: Batcher,
    /// This agent's own bucket decorator (a crash freezes its bucket calls).
    faults: FaultHandle,
    writer: JoinHandle<()>,
}

/// What publishers and the consumer observed.
#[derive(Debug, Default)]
struct History {
    /// msg id → the sequence its ack named.
    acked: BTreeMap<String, u64>,
    /// publisher → (message number, seq) in ack order.
    per_publisher: BTreeMap<usize, Vec<(usize, u64)>>,
    /// Sequences delivered to the consumer at least once.
    delivered: BTreeSet<u64>,
    /// Sequences whose ack the control plane confirmed.
    confirmed_acks: BTreeSet<u64>,
    /// seq → the deadline of its latest claim an agent saw.
    claimed_until: HashMap<u64, i64>,
    /// Highest ack floor seen so far.
    ack_floor: u64,
}

struct World {
    ctx: Arc<Ctx>,
    meta: Arc<MemoryStore>,
    /// The bucket below every agent's own decorators, with the bucket-wide faults.
    bucket_store: Arc<dyn ObjectStore>,
    bucket_faults: FaultHandle,
    /// The same bucket without faults, for the checker.
    raw_store: Arc<dyn ObjectStore>,
    clock: SharedClock,
    groups: GroupKeys,
    cps: Mutex<Vec<CpNode>>,
    agents: Mutex<Vec<Agent>>,
    agent_generation: Mutex<u64>,
    waiters: Mutex<HashMap<String, oneshot::Sender<PublishOutcome>>>,
    history: Mutex<History>,
    /// Cached readers per leader generation: `[checker's, consumer's]`.
    readers: Mutex<[Option<(usize, StreamReader)>; 2]>,
    /// The checker's read-back of each index entry (by first sequence): the entry as
    /// read, and the msg ids its messages read back as. Batch objects are written once
    /// and never change, so an entry equal to the one read back before reads back the
    /// same; only new or changed entries are read again (the final check reads all).
    read_back: Mutex<HashMap<u64, (v1::IndexEntry, Vec<String>)>>,
    /// One set of gateway counters for every agent incarnation (nothing reads them;
    /// made once, as registering them costs more than a step).
    gateway_metrics: GatewayMetrics,
    done: CancellationToken,
}

/// Runs the schedule of `seed`.
pub fn run(seed: u64, config: &Config) -> Result<Report, Failure> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .map_err(|e| Failure {
            seed,
            step: 0,
            message: format!("cannot build the runtime: {e}"),
            events: Vec::new(),
        })?;
    let result = runtime.block_on(schedule(seed, config));
    // Crashed processes wait forever; dropping the runtime drops them.
    runtime.shutdown_background();
    result
}

async fn schedule(seed: u64, config: &Config) -> Result<Report, Failure> {
    let world = World::new(seed, config).map_err(|message| Failure {
        seed,
        step: 0,
        message,
        events: Vec::new(),
    })?;
    let ctx = world.ctx.clone();
    let fail = |step: usize, message: String| Failure {
        seed,
        step,
        message,
        events: ctx.events.lock().clone(),
    };
    world.open_leader().await.map_err(|m| fail(0, m))?;
    world.ctx.quiet(true);
    world.setup().await.map_err(|m| fail(0, m))?;
    world.ctx.quiet(false);
    for slot in 0..config.agents {
        let agent = world.start_agent(slot);
        world.agents.lock().push(agent);
    }
    let mut tasks = Vec::new();
    for p in 0..config.publishers {
        tasks.push(tokio::spawn(publisher(
            world.clone(),
            p,
            config.messages_per_publisher,
        )));
    }
    let consumer_tasks =
        ["fetcher-1", "fetcher-2"].map(|agent| tokio::spawn(consumer(world.clone(), agent)));

    for step in 1..=config.steps {
        let pause = 10 + world.ctx.below(400);
        sleep(Duration::from_millis(pause)).await;
        world.nemesis(step).await.map_err(|m| fail(step, m))?;
        world.check(step).await.map_err(|m| fail(step, m))?;
    }

    // Heal: no more faults; every publisher must finish.
    let step = config.steps + 1;
    world.ctx.quiet(true);
    world.bucket_faults.clear();
    for task in tasks {
        match timeout(Duration::from_secs(600), task).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(fail(step, format!("a publisher panicked: {e}"))),
            Err(_) => {
                return Err(fail(
                    step,
                    "a publisher did not finish after the heal".into(),
                ));
            }
        }
    }
    // Recovery: every control plane dies; a new one reads only what is durable, and
    // every message is read back again.
    for cp in world.cps.lock().iter() {
        cp.node.kill();
    }
    world.read_back.lock().clear();
    world.open_leader().await.map_err(|m| fail(step, m))?;
    world.check(step).await.map_err(|m| fail(step, m))?;
    let last = world.drain().await.map_err(|m| fail(step, m))?;
    world.done.cancel();
    for task in consumer_tasks {
        let _ = timeout(Duration::from_secs(10), task).await;
    }
    world.check(step + 1).await.map_err(|m| fail(step + 1, m))?;
    if let Some(v) = world.ctx.violations.lock().first() {
        return Err(fail(step + 1, v.clone()));
    }
    let history = world.history.lock();
    Ok(Report {
        seed,
        acked: history.acked.len(),
        stored: last,
        faults: world.ctx.faults.lock().clone(),
        digest: *world.ctx.digest.lock(),
        events: world.ctx.events.lock().clone(),
    })
}

impl World {
    fn new(seed: u64, config: &Config) -> Result<Arc<World>, String> {
        let bucket_faults = FaultHandle::new();
        let raw: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let bucket_store: Arc<dyn ObjectStore> =
            Arc::new(FaultyStore::with_handle(raw.clone(), bucket_faults.clone()));
        let groups = GroupKeys::new([(GROUP, KEY)]).map_err(|e| e.to_string())?;
        Ok(Arc::new(World {
            ctx: Arc::new(Ctx::new(seed, config.rates.clone())),
            meta: Arc::new(MemoryStore::new()),
            bucket_store,
            bucket_faults,
            raw_store: raw,
            clock: Arc::new(TokioClock::new()),
            groups,
            cps: Mutex::new(Vec::new()),
            agents: Mutex::new(Vec::new()),
            agent_generation: Mutex::new(0),
            waiters: Mutex::new(HashMap::new()),
            history: Mutex::new(History::default()),
            readers: Mutex::new([None, None]),
            read_back: Mutex::new(HashMap::new()),
            gateway_metrics: GatewayMetrics::new(),
            done: CancellationToken::new(),
        }))
    }

    /// Opens a new control plane on the store: it claims the writer fence, so any
    /// earlier one still running is deposed.
    async fn open_leader(&self) -> Result<(), String> {
        let generation = self.cps.lock().len();
        let node = Node::new(format!("cp-{generation}"));
        let store = Arc::new(FaultyMeta::new(
            self.meta.clone(),
            node.clone(),
            self.ctx.clone(),
        ));
        let options = Options {
            retention_interval: None,
            ..Options::default()
        };
        let cp = ControlPlane::open_with(store, self.groups.clone(), self.clock.clone(), options)
            .await
            .map_err(|e| format!("cannot open control plane {}: {e}", node.name))?;
        let client = cp
            .client(GROUP, KEY)
            .map_err(|e| format!("cannot make a client: {e}"))?;
        let direct = cp
            .direct(GROUP)
            .ok_or_else(|| format!("control plane {} lacks group {GROUP}", node.name))?;
        node.armed.store(true, Ordering::SeqCst);
        self.ctx.record(node.name.as_bytes());
        self.cps.lock().push(CpNode {
            node,
            client,
            direct,
            _cp: cp,
        });
        Ok(())
    }

    fn leader(&self) -> (usize, ControlPlaneClient) {
        let cps = self.cps.lock();
        let i = cps.len().saturating_sub(1);
        (i, cps[i].client.clone())
    }

    /// The leader's direct calls.
    fn leader_direct(&self) -> DirectClient {
        let cps = self.cps.lock();
        cps[cps.len().saturating_sub(1)].direct.clone()
    }

    /// Where an RPC goes: the leader, or now and then a deposed one still running.
    fn route(&self) -> DirectClient {
        if self
            .ctx
            .draw("rpc.routed_to_deposed_leader", self.ctx.rates.stale_route)
        {
            let cps = self.cps.lock();
            let stale: Vec<&CpNode> = cps[..cps.len() - 1]
                .iter()
                .filter(|c| c.node.alive())
                .collect();
            if !stale.is_empty() {
                let i = self.ctx.below(stale.len() as u64) as usize;
                return stale[i].direct.clone();
            }
        }
        self.leader_direct()
    }

    async fn setup(&self) -> Result<(), String> {
        let (_, mut client) = self.leader();
        harness::create_stream(&mut client, STREAM, &["s.>"]).await?;
        harness::create_consumer(&mut client, STREAM, CONSUMER, ACK_WAIT).await
    }

    fn start_agent(self: &Arc<Self>, slot: usize) -> Agent {
        let generation = {
            let mut g = self.agent_generation.lock();
            *g += 1;
            *g
        };
        let node = Node::new(format!("agent-{slot}-{generation}"));
        node.armed.store(true, Ordering::SeqCst);
        let faults = FaultHandle::new();
        let bucket = Bucket::with_store(
            self.bucket_store.clone(),
            "sim://bucket",
            BucketOptions {
                faults: Some(faults.clone()),
                // The retry layer's jitter is the one random draw outside the seed:
                // without a backoff it has nothing to jitter.
                retry: RetryConfig {
                    max_attempts: 3,
                    initial_backoff: Duration::ZERO,
                    ..RetryConfig::default()
                },
                ..BucketOptions::for_group(GROUP)
            },
        );
        let config = BatcherConfig {
            window: Duration::from_millis(50),
            agent_id: node.name.clone(),
            ..BatcherConfig::default()
        };
        let committer = Arc::new(SimCommitter {
            world: self.clone(),
            node: node.clone(),
        });
        let acks = Arc::new(SimAcks {
            world: self.clone(),
            node: node.clone(),
        });
        let (batcher, writer) = Batcher::start(
            config,
            bucket,
            committer,
            acks,
            self.clock.clone(),
            self.gateway_metrics.clone(),
            CancellationToken::new(),
        );
        self.ctx.record(node.name.as_bytes());
        Agent {
            node,
            batcher,
            faults,
            writer,
        }
    }

    fn kill_agent(self: &Arc<Self>, slot: usize) {
        let fresh = self.start_agent(slot);
        let old = std::mem::replace(&mut self.agents.lock()[slot], fresh);
        old.node.kill();
        // Its bucket calls in flight never finish; its writer stops at once.
        old.faults
            .add(FaultRule::new(FaultAction::Delay(Duration::from_secs(
                1_000_000,
            ))));
        old.writer.abort();
    }

    /// The faults injected between steps.
    async fn nemesis(self: &Arc<Self>, step: usize) -> Result<(), String> {
        let rates = self.ctx.rates.clone();
        self.ctx.record(format!("step {step}").as_bytes());
        // Agents that crashed at an await point come back as new incarnations.
        let crashed: Vec<usize> = self
            .agents
            .lock()
            .iter()
            .enumerate()
            .filter(|(_, a)| !a.node.alive())
            .map(|(i, _)| i)
            .collect();
        for slot in crashed {
            self.kill_agent(slot);
        }
        if self.ctx.draw("step.agent_killed", rates.step_agent_kill) {
            let n = self.agents.lock().len() as u64;
            let slot = self.ctx.below(n) as usize;
            self.kill_agent(slot);
        }
        let leader_dead = !self.cps.lock().last().is_some_and(|c| c.node.alive());
        if leader_dead {
            self.ctx.record(b"leader crashed: failover");
            self.open_leader().await?;
        } else if self
            .ctx
            .draw("step.leader_changed", rates.step_leader_change)
        {
            self.open_leader().await?;
        }
        if self.ctx.draw("step.bucket_fault", rates.step_bucket_fault) {
            let secs = Duration::from_millis(200 + self.ctx.below(2000));
            let rule = match self.ctx.below(5) {
                0 => {
                    self.ctx.record(b"bucket: 5xx on puts");
                    FaultRule::fail(Op::Put).times(1 + self.ctx.below(4))
                }
                1 => {
                    self.ctx.record(b"bucket: 403 on puts");
                    FaultRule::fail(Op::Put)
                        .with_error(FaultError::PermissionDenied)
                        .for_duration(secs)
                }
                2 => {
                    self.ctx.record(b"bucket: put written, failure reported");
                    FaultRule::partial_write().times(1 + self.ctx.below(2))
                }
                3 => {
                    self.ctx.record(b"bucket: slow puts");
                    FaultRule::delay(Op::Put, Duration::from_millis(500 + self.ctx.below(5000)))
                        .for_duration(secs)
                }
                _ => {
                    self.ctx.record(b"bucket: 5xx on gets");
                    FaultRule::fail(Op::Get)
                        .on(Op::GetRange)
                        .times(1 + self.ctx.below(4))
                }
            };
            self.bucket_faults.add(rule);
        }
        Ok(())
    }

    /// A reader through the leader: over the faulty bucket (the consumer's) or the
    /// bucket without faults (the checker's).
    fn reader(&self, faulty: bool) -> StreamReader {
        let generation = self.cps.lock().len().saturating_sub(1);
        let mut cached = self.readers.lock();
        let slot = &mut cached[usize::from(faulty)];
        if let Some((g, reader)) = slot.as_ref()
            && *g == generation
        {
            return reader.clone();
        }
        let (generation, client) = self.leader();
        let store = if faulty {
            self.bucket_store.clone()
        } else {
            self.raw_store.clone()
        };
        let bucket = Bucket::with_store(
            store,
            "sim://bucket",
            BucketOptions {
                retry: RetryConfig {
                    max_attempts: 2,
                    initial_backoff: Duration::ZERO,
                    ..RetryConfig::default()
                },
                ..BucketOptions::for_group(GROUP)
            },
        );
        let reader = StreamReader::new(client, bucket, ReaderOptions::default());
        *slot = Some((generation, reader.clone()));
        reader
    }

    /// Checks every invariant through the leader, with faults held off.
    async fn check(&self, step: usize) -> Result<(), String> {
        let quiet_before = self.ctx.quiet.load(Ordering::SeqCst);
        self.ctx.quiet(true);
        let checked = within("the invariant check", self.check_inner(step)).await;
        self.ctx.quiet(quiet_before);
        checked?;
        if let Some(v) = self.ctx.violations.lock().first() {
            return Err(v.clone());
        }
        Ok(())
    }

    async fn check_inner(&self, _step: usize) -> Result<(), String> {
        let client = self.leader_direct();
        // What was acked before the index is read must be in it (acks arriving while
        // the check runs are checked at the next step).
        let (acked, per_publisher) = {
            let history = self.history.lock();
            (history.acked.clone(), history.per_publisher.clone())
        };
        // The consumer first: its floor was taken before the stream's last sequence.
        let info = match client.consumer_info(STREAM, CONSUMER).await {
            Ok(info) => info,
            Err(CallError::Refused { error, .. }) => {
                return Err(format!("consumer_info: {error:?}"));
            }
            Err(e) => return Err(format!("consumer_info failed with faults off: {e}")),
        };
        let cs = info.state.unwrap_or_default();
        let floor = cs.ack_floor.unwrap_or_default().stream_seq;
        let delivered = cs.delivered.unwrap_or_default().stream_seq;
        {
            let mut history = self.history.lock();
            if floor < history.ack_floor {
                return Err(format!(
                    "ack floor moved back from {} to {floor}",
                    history.ack_floor
                ));
            }
            history.ack_floor = floor;
        }
        // The index, entry by entry, must cover 1..=last with no gap.
        let mut entries: Vec<v1::IndexEntry> = Vec::new();
        let mut state;
        let mut start = 1;
        loop {
            let request = v1::ReadIndexRequest {
                stream: STREAM.into(),
                start_seq: start,
                end_seq: 0,
                limit: 0,
            };
            let resp = match client.read_index(request).await {
                Ok(resp) => resp,
                Err(CallError::Refused { error, .. }) => {
                    return Err(format!("read_index: {error:?}"));
                }
                Err(e) => return Err(format!("read_index failed with faults off: {e}")),
            };
            state = resp.state.unwrap_or_default();
            let got = resp.entries.len();
            entries.extend(resp.entries);
            match entries.last() {
                Some(e) if got > 0 && e.last_seq < state.last_seq => start = e.last_seq + 1,
                _ => break,
            }
        }
        let last = state.last_seq;
        if last > 0 && (state.first_seq != 1 || state.messages != last) {
            return Err(format!(
                "stream state not contiguous from 1: first {} last {} messages {}",
                state.first_seq, last, state.messages
            ));
        }
        let mut next = 1;
        for e in &entries {
            if e.first_seq != next || e.last_seq < e.first_seq || !e.deleted.is_empty() {
                return Err(format!(
                    "index gap or overlap: entry {}..={} (deleted {:?}) where {next} was next",
                    e.first_seq, e.last_seq, e.deleted
                ));
            }
            next = e.last_seq + 1;
        }
        if next != last + 1 {
            return Err(format!(
                "index ends at {} but the stream at {last}",
                next - 1
            ));
        }
        // Every stored message, read back from the bucket (entries read back before
        // and unchanged since are not read again).
        let unread: Vec<&v1::IndexEntry> = {
            let read_back = self.read_back.lock();
            entries
                .iter()
                .filter(|e| read_back.get(&e.first_seq).is_none_or(|(was, _)| was != *e))
                .collect()
        };
        let seqs: Vec<u64> = unread
            .iter()
            .flat_map(|e| e.first_seq..=e.last_seq)
            .collect();
        let mut messages = self
            .reader(false)
            .get_many(STREAM, &seqs)
            .await
            .into_iter()
            .zip(&seqs);
        for e in unread {
            let mut ids = Vec::new();
            for (message, seq) in messages.by_ref().take(ids_in(e)) {
                let message =
                    message.map_err(|err| format!("seq {seq} does not read back: {err}"))?;
                ids.push(String::from_utf8_lossy(&message.payload).into_owned());
            }
            self.read_back.lock().insert(e.first_seq, (e.clone(), ids));
        }
        let mut stored: HashMap<String, u64> = HashMap::new();
        let read_back = self.read_back.lock();
        for e in &entries {
            let ids = read_back.get(&e.first_seq).map(|(_, ids)| ids.as_slice());
            for (seq, id) in (e.first_seq..).zip(ids.unwrap_or_default()) {
                if let Some(first) = stored.insert(id.clone(), seq) {
                    return Err(format!(
                        "duplicate: msg id {id} stored at {first} and {seq}"
                    ));
                }
            }
        }
        drop(read_back);
        for (id, seq) in &acked {
            match stored.get(id) {
                Some(at) if at == seq => {}
                Some(at) => {
                    return Err(format!(
                        "msg id {id} was acked at {seq} but is stored at {at}"
                    ));
                }
                None => {
                    return Err(format!(
                        "acked message lost: {id} at seq {seq} (last {last})"
                    ));
                }
            }
        }
        for (p, acks) in &per_publisher {
            if acks.windows(2).any(|w| w[0].1 >= w[1].1) {
                return Err(format!("publisher {p}'s acks are out of order: {acks:?}"));
            }
        }
        if floor > last || delivered < floor {
            return Err(format!(
                "consumer state out of bounds: ack floor {floor}, delivered {delivered}, last {last}"
            ));
        }
        Ok(())
    }

    /// After the heal: the consumer must deliver and ack everything.
    async fn drain(&self) -> Result<u64, String> {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            self.ctx.quiet(true);
            let state = match self.leader_direct().stream_info(STREAM).await {
                Ok(info) => info.state.unwrap_or_default(),
                // Read as the raw response was: a refusal carries no state.
                Err(CallError::Refused { .. }) => v1::StreamState::default(),
                Err(e) => return Err(format!("stream_info: {e}")),
            };
            let last = state.last_seq;
            let floor = self.history.lock().ack_floor;
            if floor == last {
                let history = self.history.lock();
                if let Some(missing) = (1..=last).find(|s| !history.delivered.contains(s)) {
                    return Err(format!("seq {missing} was never delivered to the consumer"));
                }
                return Ok(last);
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "the consumer did not drain after the heal: ack floor {floor} of {last}"
                ));
            }
            sleep(Duration::from_millis(500)).await;
            within("the drain check", self.check_inner(0)).await?;
        }
    }
}

/// How many messages an index entry covers.
fn ids_in(entry: &v1::IndexEntry) -> usize {
    usize::try_from(entry.last_seq - entry.first_seq + 1).unwrap_or(usize::MAX)
}

async fn within<T>(what: &str, f: impl Future<Output = Result<T, String>>) -> Result<T, String> {
    timeout(Duration::from_secs(60), f)
        .await
        .map_err(|_| format!("{what} got no answer in 60 s (the leader hangs)"))?
}

/// Commits through the (possibly faulty) route to the control plane.
struct SimCommitter {
    world: Arc<World>,
    node: Arc<Node>,
}

#[async_trait]
impl Committer for SimCommitter {
    async fn commit(
        &self,
        request: v1::CommitBatchRequest,
    ) -> Result<v1::CommitBatchResponse, CommitError> {
        let ctx = &self.world.ctx;
        let rates = &ctx.rates;
        self.node.gate().await;
        if ctx.draw("agent.crash_before_commit", rates.agent_crash) {
            self.node.crash().await;
        }
        if ctx.draw("rpc.commit_request_lost", rates.rpc_lost) {
            return Err(CommitError::Unavailable("injected: request lost".into()));
        }
        if ctx.draw("rpc.commit_delayed", rates.delay) {
            sleep(Duration::from_millis(1 + ctx.below(500))).await;
        }
        let client = self.world.route();
        let mut result = commit_within(RPC_TIMEOUT, client.commit_batch(request.clone())).await;
        if let Ok(first) = &result
            && ctx.draw("rpc.commit_answer_duplicated", rates.rpc_duplicated)
        {
            // The same request arrives again (a retry racing the answer): it must
            // answer what the first did.
            let again = commit_within(RPC_TIMEOUT, client.commit_batch(request.clone())).await;
            if let Ok(again) = &again
                && again.chunks != first.chunks
            {
                ctx.violation(format!(
                    "a replayed commit of batch {} answered {:?}, the first {:?}",
                    request.batch_id, again.chunks, first.chunks
                ));
            }
            result = again.or(result);
        }
        if ctx.draw("agent.crash_after_commit", rates.agent_crash) {
            self.node.crash().await;
        }
        if result.is_ok() && ctx.draw("rpc.commit_answer_lost", rates.rpc_lost) {
            return Err(CommitError::Unavailable("injected: answer lost".into()));
        }
        self.node.gate().await;
        result
    }
}

/// Hands PubAcks to the waiting publishers, unless the agent died first.
struct SimAcks {
    world: Arc<World>,
    node: Arc<Node>,
}

impl AckSink for SimAcks {
    fn deliver(&self, reply: &str, _stream: &str, outcome: PublishOutcome) {
        let ctx = &self.world.ctx;
        if !self.node.alive() || ctx.draw("agent.crash_before_puback", ctx.rates.agent_crash) {
            self.node.kill();
            return;
        }
        if let Some(waiter) = self.world.waiters.lock().remove(reply) {
            let _ = waiter.send(outcome);
        }
    }
}

/// Publishes `messages` messages one at a time, each with its own msg id, retrying
/// (on any agent) until acked.
async fn publisher(world: Arc<World>, p: usize, messages: usize) {
    for n in 0..messages {
        let msg_id = format!("p{p}-{n}");
        for attempt in 1..=MAX_ATTEMPTS {
            let reply = format!("{msg_id}.a{attempt}");
            let (tx, rx) = oneshot::channel();
            world.waiters.lock().insert(reply.clone(), tx);
            let batcher = {
                let agents = world.agents.lock();
                let i = world.ctx.below(agents.len() as u64) as usize;
                agents[i].batcher.clone()
            };
            let record = PendingRecord {
                stream: Arc::from(STREAM),
                subject: Bytes::from(format!("s.{p}")),
                headers: Bytes::new(),
                payload: Bytes::from(msg_id.clone()),
                meta: v1::RecordMeta {
                    msg_id: Some(msg_id.clone()),
                    ..Default::default()
                },
                reply: Some(reply.clone()),
                batch: None,
            };
            let outcome = match timeout(PUBACK_TIMEOUT, batcher.submit(record)).await {
                Ok(Ok(())) => timeout(PUBACK_TIMEOUT, rx).await.ok().and_then(Result::ok),
                _ => None,
            };
            world.waiters.lock().remove(&reply);
            match outcome {
                Some(PublishOutcome::Stored { seq } | PublishOutcome::Duplicate { seq }) => {
                    world.ctx.record(format!("{msg_id}={seq}").as_bytes());
                    let mut history = world.history.lock();
                    if let Some(before) = history.acked.insert(msg_id.clone(), seq)
                        && before != seq
                    {
                        world
                            .ctx
                            .violation(format!("msg id {msg_id} acked at {before}, then at {seq}"));
                    }
                    history.per_publisher.entry(p).or_default().push((n, seq));
                    break;
                }
                Some(PublishOutcome::Failed(_)) | None => {
                    sleep(Duration::from_millis(20 + world.ctx.below(200))).await;
                }
                // The simulated publishers send neither atomic batches nor counters.
                Some(
                    other @ (PublishOutcome::BatchStored { .. } | PublishOutcome::Counted { .. }),
                ) => {
                    world
                        .ctx
                        .violation(format!("msg id {msg_id}: unexpected outcome {other:?}"));
                    break;
                }
            }
        }
    }
}

/// One agent of the pull consumer: claim, read back, check, ack.
async fn consumer(world: Arc<World>, agent: &'static str) {
    let rates = world.ctx.rates.clone();
    // An idle consumer claims less and less often (a claim with nothing to deliver
    // costs a schedule the most and explores nothing), but well within ack_wait.
    let mut idle = FIRST_IDLE_PAUSE;
    while !world.done.is_cancelled() {
        let client = world.route();
        let claim = timeout(
            RPC_TIMEOUT,
            client.claim(v1::ClaimRequest {
                stream: STREAM.into(),
                consumer: CONSUMER.into(),
                agent_id: agent.into(),
                batch: 4,
                acked_stream_seqs: Vec::new(),
                ..Default::default()
            }),
        )
        .await;
        // An answer (deliveries or a refusal) may be lost on its way back.
        let answered = match claim {
            Ok(Ok(resp)) => Some(resp.deliveries),
            Ok(Err(CallError::Refused { .. })) => Some(Vec::new()),
            _ => None,
        };
        let deliveries = match answered {
            Some(deliveries) if !world.ctx.draw("rpc.claim_answer_lost", rates.rpc_lost) => {
                deliveries
            }
            _ => Vec::new(),
        };
        if deliveries.is_empty() {
            sleep(idle + Duration::from_millis(world.ctx.below(200))).await;
            idle = (idle * 2).min(MAX_IDLE_PAUSE);
            continue;
        }
        idle = FIRST_IDLE_PAUSE;
        if world
            .ctx
            .draw("consumer.paused_past_deadline", rates.consumer_paused)
        {
            // SIGSTOP past the deadline, then the release of what its gone pull request
            // never got (`claim::release`): it names its deliveries, so it must leave a
            // newer claim by the other agent alone.
            sleep(ACK_WAIT + Duration::from_millis(world.ctx.below(500))).await;
            let request = v1::AcknowledgeRequest {
                stream: STREAM.into(),
                consumer: CONSUMER.into(),
                kind: v1::AckKind::Release as i32,
                stream_seqs: deliveries.iter().map(|d| d.stream_seq).collect(),
                delivery_counts: deliveries.iter().map(|d| d.delivery_count).collect(),
                ..Default::default()
            };
            let _ = timeout(RPC_TIMEOUT, world.route().acknowledge(request)).await;
            continue;
        }
        let seqs: Vec<u64> = deliveries.iter().map(|d| d.stream_seq).collect();
        {
            let mut history = world.history.lock();
            for d in &deliveries {
                let seq = d.stream_seq;
                if history.confirmed_acks.contains(&seq) {
                    world.ctx.violation(format!(
                        "seq {seq} delivered again after its ack was confirmed"
                    ));
                }
                // Claimed at its deadline less ack_wait (no backoff): no earlier than
                // the previous claim's deadline, whichever agent held it, unless that
                // agent gave it back itself (it never does here before its deadline).
                let at = d.deadline_unix_nanos - ACK_WAIT_NANOS;
                if let Some(until) = history.claimed_until.get(&seq)
                    && at < *until
                {
                    world.ctx.violation(format!(
                        "seq {seq} claimed again (delivery {}) {} ns before the previous claim's deadline",
                        d.delivery_count,
                        until - at
                    ));
                }
                history.claimed_until.insert(seq, d.deadline_unix_nanos);
                history.delivered.insert(seq);
            }
        }
        // A read through a control plane that crashed meanwhile never answers: give up
        // as the agent's RPC deadline would, and let ack_wait redeliver.
        let Ok(read) = timeout(RPC_TIMEOUT, world.reader(true).get_many(STREAM, &seqs)).await
        else {
            continue;
        };
        let mut readable = Vec::new();
        for (seq, message) in seqs.iter().zip(read) {
            let Ok(message) = message else { continue };
            let id = String::from_utf8_lossy(&message.payload).into_owned();
            if let Some(acked) = world.history.lock().acked.get(&id)
                && acked != seq
            {
                world
                    .ctx
                    .violation(format!("consumer got {id} at {seq}, acked at {acked}"));
            }
            readable.push(*seq);
        }
        if readable.is_empty() || world.ctx.draw("rpc.ack_request_lost", rates.rpc_lost) {
            continue;
        }
        let client = world.route();
        let request = v1::AcknowledgeRequest {
            stream: STREAM.into(),
            consumer: CONSUMER.into(),
            kind: v1::AckKind::Ack as i32,
            stream_seqs: readable.clone(),
            nak_delay_nanos: 0,
            ..Default::default()
        };
        let mut acked = timeout(RPC_TIMEOUT, client.acknowledge(request.clone())).await;
        if world.ctx.draw("rpc.ack_duplicated", rates.rpc_duplicated) {
            acked = timeout(RPC_TIMEOUT, client.acknowledge(request)).await;
        }
        if let Ok(Ok(_)) = acked
            && !world.ctx.draw("rpc.ack_answer_lost", rates.rpc_lost)
        {
            world.history.lock().confirmed_acks.extend(readable);
        }
    }
}
