//! Calls straight into the control plane's services in-process: the same service
//! code and engine as every RPC, with the group taken as authenticated, and no
//! protobuf encoding, HTTP body, router or group proof. For the deterministic
//! simulation (`crates/sim`), whose thousands of schedules check the engine, not the
//! transport (the transport has its own tests), and for the embedded control plane's
//! commits: `ControlPlane::client` hands a [`DirectClient`] to the client as its
//! [`LocalCalls`], so an agent's flush commits without encoding. Answers and errors
//! are those of the typed calls of
//! [`ControlPlaneClient`](infinistream_cp_client::ControlPlaneClient).

use std::sync::Arc;

use infinistream_cp_client::CallError;
use infinistream_cp_client::auth::AuthedGroup;
use infinistream_cp_client::calls::{answered, unary};
use infinistream_cp_client::local::{LocalCall, LocalCalls};
use infinistream_proto::v1::{self, consumers_server::Consumers, streams_server::Streams};
use tonic::Request;

use crate::service::Service;

/// A group's direct calls (see the module docs); made by `ControlPlane::direct`.
#[derive(Debug, Clone)]
pub struct DirectClient {
    pub(crate) service: Service,
    pub(crate) group: Arc<str>,
}

impl DirectClient {
    fn request<T>(&self, message: T) -> Request<T> {
        let mut request = Request::new(message);
        request
            .extensions_mut()
            .insert(AuthedGroup(self.group.clone()));
        request
    }

    pub async fn commit_batch(
        &self,
        request: v1::CommitBatchRequest,
    ) -> Result<v1::CommitBatchResponse, CallError> {
        unary(
            "CommitBatch",
            self.service.commit_batch(self.request(request)),
        )
        .await
    }

    pub async fn stream_info(&self, name: &str) -> Result<v1::StreamInfoResponse, CallError> {
        let request = v1::StreamInfoRequest {
            name: name.to_owned(),
            deleted_details: false,
        };
        answered(
            "StreamInfo",
            self.service.stream_info(self.request(request)),
        )
        .await
    }

    pub async fn read_index(
        &self,
        request: v1::ReadIndexRequest,
    ) -> Result<v1::ReadIndexResponse, CallError> {
        answered("ReadIndex", self.service.read_index(self.request(request))).await
    }

    pub async fn consumer_info(
        &self,
        stream: &str,
        name: &str,
    ) -> Result<v1::ConsumerInfoResponse, CallError> {
        let request = v1::ConsumerInfoRequest {
            stream: stream.to_owned(),
            name: name.to_owned(),
        };
        answered(
            "ConsumerInfo",
            self.service.consumer_info(self.request(request)),
        )
        .await
    }

    pub async fn claim(&self, request: v1::ClaimRequest) -> Result<v1::ClaimResponse, CallError> {
        answered("Claim", self.service.claim(self.request(request))).await
    }

    pub async fn acknowledge(
        &self,
        request: v1::AcknowledgeRequest,
    ) -> Result<v1::AcknowledgeResponse, CallError> {
        answered(
            "Acknowledge",
            self.service.acknowledge(self.request(request)),
        )
        .await
    }
}

impl LocalCalls for DirectClient {
    fn commit_batch(
        &self,
        request: v1::CommitBatchRequest,
    ) -> LocalCall<'_, v1::CommitBatchResponse> {
        Box::pin(DirectClient::commit_batch(self, request))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use infinistream_cp_client::{ControlPlaneClient, GroupKeys};
    use infinistream_proto::v1;
    use infinistream_types::SystemClock;

    use crate::ControlPlane;
    use crate::store::MetaStore;
    use crate::store::embedded::EmbeddedStore;
    use crate::store::memory::MemoryStore;

    const STREAMS: usize = 2_000;
    const KEY: &str = "0123456789abcdef0123456789abcdef";

    /// This process's CPU time (user + system, every thread), from `/proc/self/stat`;
    /// zero where there is none.
    fn cpu() -> Duration {
        let ticks = std::fs::read_to_string("/proc/self/stat")
            .ok()
            .and_then(|s| {
                let rest = s.rsplit_once(')')?.1.split_whitespace().collect::<Vec<_>>();
                // Fields 14 and 15 (utime, stime), counted from after the command name.
                Some(rest.get(11)?.parse::<u64>().ok()? + rest.get(12)?.parse::<u64>().ok()?)
            })
            .unwrap_or(0);
        Duration::from_millis(ticks * 10)
    }

    fn record(subject: String) -> v1::RecordMeta {
        v1::RecordMeta {
            size: 100,
            subject,
            ..Default::default()
        }
    }

    fn flush(n: usize, chunks: Vec<v1::ChunkMeta>) -> v1::CommitBatchRequest {
        v1::CommitBatchRequest {
            batch_id: format!("b{n}"),
            object_key: format!("obj/{n:020}"),
            agent_id: "a".into(),
            chunks,
        }
    }

    fn chunk(stream: String, records: Vec<v1::RecordMeta>) -> v1::ChunkMeta {
        v1::ChunkMeta {
            stream,
            chunk_index: 0,
            record_count: u32::try_from(records.len()).unwrap_or(u32::MAX),
            byte_size: 100,
            records,
        }
    }

    /// Opens a control plane with `STREAMS` streams `S0…` on subjects `s.N`.
    async fn with_streams(store: Arc<dyn MetaStore>) -> (ControlPlane, ControlPlaneClient) {
        let groups = GroupKeys::new([("g", KEY)]).expect("group keys");
        let cp = ControlPlane::open(store, groups, Arc::new(SystemClock))
            .await
            .expect("open");
        // The routes only, as every call went before the direct path.
        let client =
            ControlPlaneClient::in_process(cp.router().prepare(), "g", KEY).expect("client");
        for s in 0..STREAMS {
            client
                .create_stream(stream_config(s))
                .await
                .expect("create");
        }
        (cp, client)
    }

    /// Stream `S{s}` on subject `s.{s}`, without limits.
    fn stream_config(s: usize) -> v1::StreamConfig {
        v1::StreamConfig {
            name: format!("S{s}"),
            config_json: format!("{{\"name\":\"S{s}\"}}").into_bytes(),
            limits: Some(v1::StreamLimits {
                subjects: vec![format!("s.{s}")],
                max_msgs: -1,
                max_bytes: -1,
                max_msgs_per_subject: -1,
                max_msg_size: -1,
                ..Default::default()
            }),
        }
    }

    /// Runs `flushes` one-chunk, one-record commits back to back (the many-streams
    /// publish: every message its own chunk, one flush at a time) through `commit`;
    /// µs of wall and CPU time per chunk.
    async fn per_chunk<F, Fut>(from: usize, flushes: usize, commit: F) -> (f64, f64)
    where
        F: Fn(v1::CommitBatchRequest) -> Fut,
        Fut: std::future::Future<Output = v1::CommitBatchResponse>,
    {
        let (wall, cpu0) = (Instant::now(), cpu());
        for n in from..from + flushes {
            let s = n % STREAMS;
            let resp = commit(flush(
                n,
                vec![chunk(format!("S{s}"), vec![record(format!("s.{s}"))])],
            ))
            .await;
            assert!(
                matches!(
                    resp.chunks[0].records[0].result,
                    Some(v1::record_result::Result::Seq(_))
                ),
                "{resp:?}"
            );
        }
        let per = |d: Duration| d.as_secs_f64() * 1e6 / flushes as f64;
        (per(wall.elapsed()), per(cpu().saturating_sub(cpu0)))
    }

    /// `ControlPlane::client` commits directly for a group whose key checks out, and
    /// its answers and errors are the routed client's: a stored record, a refused one,
    /// a replay, an invalid request; a wrong key keeps the routes (and their refusal).
    #[tokio::test]
    async fn direct_commits_answer_as_routed_ones() {
        let groups = GroupKeys::new([("g", KEY)]).expect("group keys");
        let cp = ControlPlane::open(Arc::new(MemoryStore::new()), groups, Arc::new(SystemClock))
            .await
            .expect("open");
        let routed =
            ControlPlaneClient::in_process(cp.router().prepare(), "g", KEY).expect("client");
        let direct = cp.client("g", KEY).expect("client");
        assert!(direct.is_direct() && !routed.is_direct());
        let wrong = cp.client("g", "not-the-key").expect("client");
        assert!(!wrong.is_direct());
        routed
            .create_stream(stream_config(0))
            .await
            .expect("create");
        let mut answers = Vec::new();
        for (i, client) in [&routed, &direct].into_iter().enumerate() {
            let ok = flush(i, vec![chunk("S0".into(), vec![record("s.0".into())])]);
            let refused = flush(10 + i, vec![chunk("S9".into(), vec![record("s.9".into())])]);
            let invalid = v1::CommitBatchRequest {
                batch_id: String::new(),
                ..flush(20 + i, Vec::new())
            };
            let stored = client.commit_batch(ok.clone()).await.expect("commit");
            let replayed = client.commit_batch(ok).await.expect("replay");
            assert!(replayed.replayed && replayed.chunks == stored.chunks);
            answers.push((
                stored.chunks[0].records[0].result.is_some(),
                client
                    .commit_batch(refused)
                    .await
                    .map(|r| r.chunks)
                    .map_err(|e| e.to_string()),
                client
                    .commit_batch(invalid)
                    .await
                    .map_err(|e| e.to_string()),
            ));
        }
        assert_eq!(answers[0].1, answers[1].1);
        assert_eq!(answers[0].2, answers[1].2);
        assert!(answers[0].2.is_err(), "{:?}", answers[0].2);
        let e = wrong
            .commit_batch(flush(30, Vec::new()))
            .await
            .expect_err("wrong key");
        assert_eq!(e.code(), Some(tonic::Code::Unauthenticated), "{e}");
    }

    /// What one committed chunk costs on the commit path, printed (`--nocapture`),
    /// never asserted: one-record chunks of 2,000 streams committed one flush at a
    /// time through the in-process gRPC client and through the direct call, on the
    /// memory store (logic only) and the embedded store; then 1,000-record flushes
    /// of one stream (per-record cost). Debug builds: compare rows of one run only.
    #[tokio::test]
    async fn commit_cost_of_one_chunk_flushes() {
        let dir = tempfile::tempdir().expect("temp dir");
        // (store, flushes): the embedded store syncs once per flush here.
        let stores: [(&str, Arc<dyn MetaStore>, usize); 2] = [
            ("memory", Arc::new(MemoryStore::new()), 4_000),
            (
                "embedded",
                Arc::new(
                    EmbeddedStore::open(dir.path())
                        .await
                        .expect("embedded store"),
                ),
                500,
            ),
        ];
        for (name, store, flushes) in stores {
            if std::env::var("COMMIT_COST_STORE").is_ok_and(|only| only != name) {
                continue;
            }
            let (cp, client) = with_streams(store).await;
            let direct = cp.direct("g").expect("direct client");
            let (grpc_wall, grpc_cpu) = per_chunk(0, flushes, |r| {
                let client = client.clone();
                async move { client.commit_batch(r).await.expect("commit") }
            })
            .await;
            let (direct_wall, direct_cpu) = per_chunk(flushes, flushes, |r| {
                let direct = direct.clone();
                async move { direct.commit_batch(r).await.expect("commit") }
            })
            .await;
            // Per record: 1,000-record flushes of one stream, direct.
            let records = 1_000;
            let rounds = 20;
            let (wall, cpu0) = (Instant::now(), cpu());
            for n in 0..rounds {
                let recs = (0..records).map(|_| record("s.0".into())).collect();
                let resp = direct
                    .commit_batch(flush(2 * flushes + n, vec![chunk("S0".into(), recs)]))
                    .await
                    .expect("commit");
                assert_eq!(resp.chunks[0].records.len(), records);
            }
            let per = |d: Duration| d.as_secs_f64() * 1e6 / (records * rounds) as f64;
            println!(
                "{name}: per one-record chunk: gRPC in-process {grpc_wall:.1} µs wall / {grpc_cpu:.1} µs CPU, \
                 direct {direct_wall:.1} µs wall / {direct_cpu:.1} µs CPU; \
                 per record of 1,000-record flushes (direct): {:.2} µs wall / {:.2} µs CPU",
                per(wall.elapsed()),
                per(cpu().saturating_sub(cpu0)),
            );
        }
    }
}
