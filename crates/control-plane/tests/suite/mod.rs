//! The control-plane test suite, written once and run against every store.
//!
//! Each test body takes a [`Backend`]: something that opens the metadata store, and
//! opens it *again* to simulate a control-plane restart (the embedded backend reopens
//! its redb file; the memory backend hands back the same map). The etcd backend plugs
//! in by implementing [`Backend`] and calling the same bodies (see `memory_embedded.rs`).
#![allow(dead_code, clippy::unwrap_used)]

pub mod bodies;

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use infinistream_control_plane::store::MetaStore;
use infinistream_control_plane::{ControlPlane, ControlPlaneClient, GroupKeys, Options};
use infinistream_proto::v1;
use infinistream_types::MockClock;

/// A metadata store the suite can open, and reopen after a simulated restart.
#[async_trait::async_trait]
pub trait Backend: Send + Sync {
    fn name(&self) -> &'static str;
    /// Opens the store. Called again after everything holding the previous handle
    /// was dropped (restart).
    async fn open(&self) -> Arc<dyn MetaStore>;
}

pub const GROUP: &str = "team-a";
pub const KEY: &str = "key-a";
pub const GROUP_B: &str = "team-b";
pub const KEY_B: &str = "key-b";

pub fn groups() -> GroupKeys {
    GroupKeys::new([(GROUP, KEY), (GROUP_B, KEY_B)]).unwrap()
}

pub fn clock() -> Arc<MockClock> {
    Arc::new(MockClock::new(
        UNIX_EPOCH + Duration::from_secs(1_700_000_000),
    ))
}

pub fn options() -> Options {
    Options {
        retention_interval: None,
        ..Options::default()
    }
}

/// A control plane over the backend's store, plus a client for group A.
pub async fn start(
    backend: &dyn Backend,
    clock: Arc<MockClock>,
) -> (ControlPlane, ControlPlaneClient) {
    let store = backend.open().await;
    let cp = ControlPlane::open_with(store, groups(), clock, options())
        .await
        .unwrap();
    let client = cp.client(GROUP, KEY).unwrap();
    (cp, client)
}

pub fn limits(subjects: &[&str]) -> v1::StreamLimits {
    v1::StreamLimits {
        subjects: subjects.iter().map(|s| s.to_string()).collect(),
        max_msgs: -1,
        max_bytes: -1,
        max_msgs_per_subject: -1,
        max_msg_size: -1,
        duplicate_window_nanos: 120_000_000_000,
        ..Default::default()
    }
}

pub async fn create(client: &mut ControlPlaneClient, name: &str, limits: v1::StreamLimits) {
    let error = try_create(client, name, limits).await;
    assert!(error.is_none(), "create {name}: {error:?}");
}

/// Creates a stream; the error it was refused with, if any.
pub async fn try_create(
    client: &mut ControlPlaneClient,
    name: &str,
    limits: v1::StreamLimits,
) -> Option<v1::JsError> {
    client
        .raw_streams()
        .create_stream(v1::CreateStreamRequest {
            config: Some(v1::StreamConfig {
                name: name.into(),
                config_json: format!("{{\"name\":\"{name}\"}}").into_bytes(),
                limits: Some(limits),
            }),
        })
        .await
        .unwrap()
        .into_inner()
        .error
}

pub fn rec(subject: &str) -> v1::RecordMeta {
    v1::RecordMeta {
        subject: subject.into(),
        size: 100,
        timestamp_unix_nanos: 1,
        ..Default::default()
    }
}

pub fn chunk(stream: &str, index: u32, records: Vec<v1::RecordMeta>) -> v1::ChunkMeta {
    v1::ChunkMeta {
        stream: stream.into(),
        chunk_index: index,
        record_count: records.len() as u32,
        byte_size: 1000,
        records,
    }
}

pub fn batch(id: &str, chunks: Vec<v1::ChunkMeta>) -> v1::CommitBatchRequest {
    v1::CommitBatchRequest {
        batch_id: id.into(),
        object_key: format!("objects/{id}"),
        agent_id: "agent-1".into(),
        chunks,
    }
}

pub async fn commit(
    client: &mut ControlPlaneClient,
    req: v1::CommitBatchRequest,
) -> v1::CommitBatchResponse {
    client
        .raw_streams()
        .commit_batch(req)
        .await
        .unwrap()
        .into_inner()
}

/// One record's answer as a short string: "7", "dup3" or "e10071:wrong last sequence: 2".
pub fn show(r: &v1::RecordResult) -> String {
    match &r.result {
        Some(v1::record_result::Result::Seq(s)) => s.to_string(),
        Some(v1::record_result::Result::DuplicateOf(s)) => format!("dup{s}"),
        Some(v1::record_result::Result::Error(e)) => format!("e{}:{}", e.err_code, e.description),
        None => "none".into(),
    }
}

/// Every record answer of a one-chunk batch.
pub async fn commit_one(
    client: &mut ControlPlaneClient,
    id: &str,
    stream: &str,
    records: Vec<v1::RecordMeta>,
) -> Vec<String> {
    let resp = commit(client, batch(id, vec![chunk(stream, 0, records)])).await;
    resp.chunks[0].records.iter().map(show).collect()
}

pub async fn info(client: &mut ControlPlaneClient, name: &str) -> v1::StreamInfoResponse {
    client
        .raw_streams()
        .stream_info(v1::StreamInfoRequest {
            name: name.into(),
            deleted_details: true,
        })
        .await
        .unwrap()
        .into_inner()
}

pub async fn state(client: &mut ControlPlaneClient, name: &str) -> v1::StreamState {
    info(client, name).await.state.unwrap()
}
