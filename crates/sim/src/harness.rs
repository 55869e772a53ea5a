//! Plain building blocks for tests that drive the real write path without the
//! simulation's scheduler (the overload and resource-fault tests): a control plane
//! in-process over any metadata store, a committer and an ack sink for the batcher,
//! and a read-back of a whole stream.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use infinistream_control_plane::{ControlPlane, ControlPlaneClient, GroupKeys};
use infinistream_cp_client::CallError;
use infinistream_fetcher::{ReaderOptions, StreamReader};
use infinistream_gateway::{AckSink, CommitError, Committer, PublishOutcome};
use infinistream_metastore::MetaStore;
use infinistream_objstore::Bucket;
use infinistream_proto::v1;
use infinistream_types::{Clock, SharedClock};
use parking_lot::Mutex;
use tokio::sync::oneshot;
use tokio::time::Instant;

/// Wall-clock time that follows tokio's clock (paused in tests), so ack_wait, leases
/// and timestamps move with `tokio::time::sleep` and the simulation's steps.
#[derive(Debug)]
pub struct TokioClock {
    base: SystemTime,
    start: Instant,
}

impl TokioClock {
    /// A clock at a fixed date (2023-11-14) when created; call inside a runtime.
    pub fn new() -> Self {
        TokioClock {
            base: UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            start: Instant::now(),
        }
    }
}

impl Default for TokioClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for TokioClock {
    fn now(&self) -> SystemTime {
        self.base + self.start.elapsed()
    }
}

/// The group and key the harness uses.
pub const GROUP: &str = "sim";
pub const KEY: &str = "sim-group-key";

/// Opens a control plane over `store` and a client of it.
pub async fn control_plane(
    store: Arc<dyn MetaStore>,
    clock: SharedClock,
) -> Result<(ControlPlane, ControlPlaneClient), String> {
    let groups = GroupKeys::new([(GROUP, KEY)]).map_err(|e| e.to_string())?;
    let cp = ControlPlane::open(store, groups, clock)
        .await
        .map_err(|e| format!("cannot open the control plane: {e}"))?;
    let client = cp.client(GROUP, KEY).map_err(|e| e.to_string())?;
    Ok((cp, client))
}

/// Creates stream `name` on `subjects` with no limits and a 10 minute duplicate window.
pub async fn create_stream(
    client: &mut ControlPlaneClient,
    name: &str,
    subjects: &[&str],
) -> Result<(), String> {
    client
        .create_stream(v1::StreamConfig {
            name: name.into(),
            config_json: format!("{{\"name\":\"{name}\"}}").into_bytes(),
            limits: Some(v1::StreamLimits {
                subjects: subjects.iter().map(|s| (*s).to_owned()).collect(),
                max_msgs: -1,
                max_bytes: -1,
                max_msgs_per_subject: -1,
                max_msg_size: -1,
                duplicate_window_nanos: 600_000_000_000,
                ..Default::default()
            }),
        })
        .await
        .map(drop)
        .map_err(|e| format!("create stream {name}: {e}"))
}

/// Creates durable pull consumer `name` on `stream`: explicit acks, deliver all, no
/// delivery or ack-pending limits.
pub async fn create_consumer(
    client: &mut ControlPlaneClient,
    stream: &str,
    name: &str,
    ack_wait: Duration,
) -> Result<(), String> {
    client
        .create_consumer(v1::ConsumerConfig {
            stream: stream.into(),
            name: name.into(),
            config_json: format!("{{\"durable_name\":\"{name}\"}}").into_bytes(),
            ack_policy: v1::AckPolicy::AckExplicit as i32,
            deliver_policy: v1::DeliverPolicy::DeliverAll as i32,
            ack_wait_nanos: i64::try_from(ack_wait.as_nanos()).unwrap_or(i64::MAX),
            max_deliver: -1,
            max_ack_pending: -1,
            ..Default::default()
        })
        .await
        .map(drop)
        .map_err(|e| format!("create consumer {name}: {e}"))
}

/// One CommitBatch call with an RPC deadline, its failure classified as the agent's
/// committer does.
pub async fn commit_call(
    client: &mut ControlPlaneClient,
    request: v1::CommitBatchRequest,
    deadline: Duration,
) -> Result<v1::CommitBatchResponse, CommitError> {
    commit_within(deadline, client.commit_batch(request)).await
}

/// A commit call (`call`) with an RPC deadline, its failure classified as the agent's
/// committer does.
pub async fn commit_within(
    deadline: Duration,
    call: impl std::future::Future<Output = Result<v1::CommitBatchResponse, CallError>>,
) -> Result<v1::CommitBatchResponse, CommitError> {
    match tokio::time::timeout(deadline, call).await {
        Err(_) => Err(CommitError::Unavailable("rpc deadline exceeded".into())),
        Ok(Ok(resp)) => Ok(resp),
        Ok(Err(error)) => Err(error.into()),
    }
}

/// Commits through a control-plane client.
#[derive(Debug, Clone)]
pub struct ClientCommitter {
    pub client: ControlPlaneClient,
}

#[async_trait]
impl Committer for ClientCommitter {
    async fn commit(
        &self,
        request: v1::CommitBatchRequest,
    ) -> Result<v1::CommitBatchResponse, CommitError> {
        commit_call(&mut self.client.clone(), request, Duration::from_secs(10)).await
    }
}

/// Hands each PubAck to whoever registered its reply subject.
#[derive(Debug, Default)]
pub struct ReplyAcks {
    waiters: Mutex<HashMap<String, oneshot::Sender<PublishOutcome>>>,
}

impl ReplyAcks {
    /// The answer to the publish with reply subject `reply`, once it comes.
    pub fn expect(&self, reply: &str) -> oneshot::Receiver<PublishOutcome> {
        let (tx, rx) = oneshot::channel();
        self.waiters.lock().insert(reply.to_owned(), tx);
        rx
    }
}

impl AckSink for ReplyAcks {
    fn deliver(&self, reply: &str, _stream: &str, outcome: PublishOutcome) {
        if let Some(waiter) = self.waiters.lock().remove(reply) {
            let _ = waiter.send(outcome);
        }
    }
}

/// Every live message of `stream` as (seq, payload), read back from the bucket.
pub async fn read_all(
    client: &mut ControlPlaneClient,
    bucket: Bucket,
    stream: &str,
) -> Result<Vec<(u64, Vec<u8>)>, String> {
    let state = match client.stream_info(stream, false).await {
        Ok(info) => info.state.unwrap_or_default(),
        // An unknown stream reads back as nothing.
        Err(CallError::Refused { .. }) => v1::StreamState::default(),
        Err(e) => return Err(format!("stream info: {e}")),
    };
    let seqs: Vec<u64> = (state.first_seq.max(1)..=state.last_seq).collect();
    let reader = StreamReader::new(client.clone(), bucket, ReaderOptions::default());
    let mut out = Vec::with_capacity(seqs.len());
    for (seq, message) in seqs.iter().zip(reader.get_many(stream, &seqs).await) {
        let message = message.map_err(|e| format!("seq {seq} does not read back: {e}"))?;
        out.push((*seq, message.payload.to_vec()));
    }
    Ok(out)
}
