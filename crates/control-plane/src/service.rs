//! The gRPC services: thin adapters from wire messages to the [`Engine`].
//!
//! Each RPC reads the group [`ServerAuth`](infinistream_cp_client::ServerAuth) stamped on the
//! request, converts the wire message to its checked domain type (invalid input →
//! `InvalidArgument`), runs inside a tracing span naming the RPC and the group, and
//! maps engine errors to statuses. JetStream-level refusals travel inside responses as
//! `JsError`s, not as statuses, so agents can forward them verbatim.

use std::sync::Arc;
use std::time::Duration;

use infinistream_proto::domain::{AgentSpec, CommitBatch, StreamSpec, check_name, check_stream_id};
use infinistream_proto::v1::{self, agents_server, consumers_server, jobs_server, streams_server};
use tonic::{Request, Response, Status};
use tracing::Instrument;

use crate::engine::{CreateAction, Engine};
use crate::errors::CpError;
use infinistream_cp_client::auth::AuthedGroup;

/// Implements every control-plane service over one engine.
#[derive(Debug, Clone)]
pub(crate) struct Service {
    pub(crate) engine: Arc<Engine>,
}

#[allow(clippy::result_large_err)]
fn group_of<T>(req: &Request<T>) -> Result<Arc<str>, Status> {
    req.extensions()
        .get::<AuthedGroup>()
        .map(|g| g.0.clone())
        .ok_or_else(|| Status::unauthenticated("request was not authenticated"))
}

fn invalid(e: infinistream_proto::InvalidArgument) -> Status {
    CpError::Invalid(e).into()
}

/// Runs an RPC body in a span with the authenticated group.
macro_rules! rpc {
    ($name:literal, $req:ident, |$g:ident, $m:ident| $body:block) => {{
        let $g = group_of(&$req)?;
        let $m = $req.into_inner();
        let span = tracing::info_span!("rpc", rpc = $name, group = %$g);
        async move {
            let out: Result<_, Status> = async { $body }.await;
            if let Err(s) = &out {
                tracing::debug!(code = ?s.code(), message = s.message(), "rpc failed");
            }
            out.map(Response::new)
        }
        .instrument(span)
        .await
    }};
}

#[tonic::async_trait]
impl agents_server::Agents for Service {
    async fn register(
        &self,
        request: Request<v1::RegisterRequest>,
    ) -> Result<Response<v1::RegisterResponse>, Status> {
        rpc!("Register", request, |g, m| {
            let agent = m.agent.ok_or_else(|| {
                invalid(infinistream_proto::InvalidArgument {
                    field: "agent",
                    reason: "required".into(),
                })
            })?;
            let spec = AgentSpec::try_from(agent).map_err(invalid)?;
            Ok(self
                .engine
                .register_agent(&g, spec, Duration::from_millis(m.lease_ms))
                .await?)
        })
    }

    async fn heartbeat(
        &self,
        request: Request<v1::HeartbeatRequest>,
    ) -> Result<Response<v1::HeartbeatResponse>, Status> {
        rpc!("Heartbeat", request, |g, m| {
            let expires = self.engine.heartbeat(&g, &m.agent_id).await?;
            Ok(v1::HeartbeatResponse {
                lease_expires_unix_nanos: expires,
            })
        })
    }

    async fn deregister(
        &self,
        request: Request<v1::DeregisterRequest>,
    ) -> Result<Response<v1::DeregisterResponse>, Status> {
        rpc!("Deregister", request, |g, m| {
            self.engine.deregister(&g, &m.agent_id).await?;
            Ok(v1::DeregisterResponse {})
        })
    }

    async fn list_agents(
        &self,
        request: Request<v1::ListAgentsRequest>,
    ) -> Result<Response<v1::ListAgentsResponse>, Status> {
        rpc!("ListAgents", request, |g, m| {
            let agents = self.engine.list_agents(&g, &m.role, &m.zone).await?;
            Ok(v1::ListAgentsResponse { agents })
        })
    }
}

fn stream_spec(config: Option<v1::StreamConfig>) -> Result<StreamSpec, Status> {
    let c = config.ok_or_else(|| {
        invalid(infinistream_proto::InvalidArgument {
            field: "config",
            reason: "required".into(),
        })
    })?;
    StreamSpec::try_from(c).map_err(invalid)
}

/// Checks a stream id (`domain::stream_id`: a bare name in `$G`, else
/// `<account>.<name>`).
#[allow(clippy::result_large_err)]
fn stream_name(field: &'static str, name: &str) -> Result<(), Status> {
    check_stream_id(field, name).map_err(invalid)
}

#[tonic::async_trait]
impl streams_server::Streams for Service {
    async fn create_stream(
        &self,
        request: Request<v1::CreateStreamRequest>,
    ) -> Result<Response<v1::StreamInfoResponse>, Status> {
        rpc!("CreateStream", request, |g, m| {
            let spec = stream_spec(m.config)?;
            Ok(self.engine.create_stream(&g, spec).await?)
        })
    }

    async fn update_stream(
        &self,
        request: Request<v1::UpdateStreamRequest>,
    ) -> Result<Response<v1::StreamInfoResponse>, Status> {
        rpc!("UpdateStream", request, |g, m| {
            let spec = stream_spec(m.config)?;
            Ok(self.engine.update_stream(&g, spec).await?)
        })
    }

    async fn delete_stream(
        &self,
        request: Request<v1::DeleteStreamRequest>,
    ) -> Result<Response<v1::DeleteStreamResponse>, Status> {
        rpc!("DeleteStream", request, |g, m| {
            stream_name("name", &m.name)?;
            let error = self.engine.delete_stream(&g, &m.name).await?;
            Ok(v1::DeleteStreamResponse { error })
        })
    }

    async fn stream_info(
        &self,
        request: Request<v1::StreamInfoRequest>,
    ) -> Result<Response<v1::StreamInfoResponse>, Status> {
        rpc!("StreamInfo", request, |g, m| {
            stream_name("name", &m.name)?;
            Ok(self
                .engine
                .stream_info(&g, &m.name, m.deleted_details)
                .await?)
        })
    }

    async fn list_streams(
        &self,
        request: Request<v1::ListStreamsRequest>,
    ) -> Result<Response<v1::ListStreamsResponse>, Status> {
        rpc!("ListStreams", request, |g, m| {
            let streams = self.engine.list_streams(&g, &m.subject, &m.account).await?;
            Ok(v1::ListStreamsResponse { streams })
        })
    }

    async fn commit_batch(
        &self,
        request: Request<v1::CommitBatchRequest>,
    ) -> Result<Response<v1::CommitBatchResponse>, Status> {
        rpc!("CommitBatch", request, |g, m| {
            let batch = CommitBatch::try_from(m).map_err(invalid)?;
            let resp = self.engine.commit(&g, batch).await?;
            Ok(Arc::unwrap_or_clone(resp))
        })
    }

    async fn read_index(
        &self,
        request: Request<v1::ReadIndexRequest>,
    ) -> Result<Response<v1::ReadIndexResponse>, Status> {
        rpc!("ReadIndex", request, |g, m| {
            stream_name("stream", &m.stream)?;
            Ok(self.engine.read_index(&g, m).await?)
        })
    }

    async fn seq_for_time(
        &self,
        request: Request<v1::SeqForTimeRequest>,
    ) -> Result<Response<v1::SeqForTimeResponse>, Status> {
        rpc!("SeqForTime", request, |g, m| {
            stream_name("stream", &m.stream)?;
            Ok(self
                .engine
                .seq_for_time(&g, &m.stream, m.timestamp_unix_nanos)
                .await?)
        })
    }

    async fn last_by_subject(
        &self,
        request: Request<v1::LastBySubjectRequest>,
    ) -> Result<Response<v1::LastBySubjectResponse>, Status> {
        rpc!("LastBySubject", request, |g, m| {
            stream_name("stream", &m.stream)?;
            Ok(self
                .engine
                .last_by_subject(&g, &m.stream, &m.subjects)
                .await?)
        })
    }

    async fn purge_stream(
        &self,
        request: Request<v1::PurgeStreamRequest>,
    ) -> Result<Response<v1::PurgeStreamResponse>, Status> {
        rpc!("PurgeStream", request, |g, m| {
            stream_name("stream", &m.stream)?;
            Ok(self.engine.purge(&g, m).await?)
        })
    }

    async fn delete_message(
        &self,
        request: Request<v1::DeleteMessageRequest>,
    ) -> Result<Response<v1::DeleteMessageResponse>, Status> {
        rpc!("DeleteMessage", request, |g, m| {
            stream_name("stream", &m.stream)?;
            let error = self.engine.delete_message(&g, &m.stream, m.seq).await?;
            Ok(v1::DeleteMessageResponse { error })
        })
    }

    async fn set_account_limits(
        &self,
        request: Request<v1::SetAccountLimitsRequest>,
    ) -> Result<Response<v1::SetAccountLimitsResponse>, Status> {
        rpc!("SetAccountLimits", request, |g, m| {
            let limits = m
                .limits
                .ok_or_else(|| Status::invalid_argument("limits: required"))?;
            self.engine
                .set_account_limits(&g, &m.account, limits)
                .await?;
            Ok(v1::SetAccountLimitsResponse {})
        })
    }

    type WatchStreamsStream =
        tokio_stream::wrappers::ReceiverStream<Result<v1::StreamEvent, Status>>;

    async fn watch_streams(
        &self,
        request: Request<v1::WatchStreamsRequest>,
    ) -> Result<Response<Self::WatchStreamsStream>, Status> {
        rpc!("WatchStreams", request, |g, m| {
            for name in &m.streams {
                stream_name("streams", name)?;
            }
            let rx = self.engine.watch_streams(&g, m).await?;
            Ok(tokio_stream::wrappers::ReceiverStream::new(rx))
        })
    }
}

#[allow(clippy::result_large_err)]
fn consumer_names(stream: &str, name: &str) -> Result<(), Status> {
    stream_name("stream", stream)?;
    check_name("name", name).map_err(invalid)
}

/// A checked consumer config: names and filter subjects valid.
#[allow(clippy::result_large_err)]
fn consumer_config(config: Option<v1::ConsumerConfig>) -> Result<v1::ConsumerConfig, Status> {
    let config = config.ok_or_else(|| {
        invalid(infinistream_proto::InvalidArgument {
            field: "config",
            reason: "required".into(),
        })
    })?;
    consumer_names(&config.stream, &config.name)?;
    for f in &config.filter_subjects {
        if !infinistream_protocol::subject::is_valid_subject(f) {
            return Err(invalid(infinistream_proto::InvalidArgument {
                field: "config.filter_subjects",
                reason: format!("invalid subject `{f}`"),
            }));
        }
    }
    Ok(config)
}

#[tonic::async_trait]
impl consumers_server::Consumers for Service {
    async fn create_consumer(
        &self,
        request: Request<v1::CreateConsumerRequest>,
    ) -> Result<Response<v1::ConsumerInfoResponse>, Status> {
        rpc!("CreateConsumer", request, |g, m| {
            let config = consumer_config(m.config)?;
            Ok(self
                .engine
                .create_consumer(&g, config, CreateAction::Create)
                .await?)
        })
    }

    async fn update_consumer(
        &self,
        request: Request<v1::UpdateConsumerRequest>,
    ) -> Result<Response<v1::ConsumerInfoResponse>, Status> {
        rpc!("UpdateConsumer", request, |g, m| {
            let config = consumer_config(m.config)?;
            let action = if m.create_if_missing {
                CreateAction::CreateOrUpdate
            } else {
                CreateAction::Update
            };
            Ok(self.engine.create_consumer(&g, config, action).await?)
        })
    }

    async fn consumer_info(
        &self,
        request: Request<v1::ConsumerInfoRequest>,
    ) -> Result<Response<v1::ConsumerInfoResponse>, Status> {
        rpc!("ConsumerInfo", request, |g, m| {
            consumer_names(&m.stream, &m.name)?;
            Ok(self.engine.consumer_info(&g, &m.stream, &m.name).await?)
        })
    }

    async fn delete_consumer(
        &self,
        request: Request<v1::DeleteConsumerRequest>,
    ) -> Result<Response<v1::DeleteConsumerResponse>, Status> {
        rpc!("DeleteConsumer", request, |g, m| {
            consumer_names(&m.stream, &m.name)?;
            let error = self.engine.delete_consumer(&g, &m.stream, &m.name).await?;
            Ok(v1::DeleteConsumerResponse { error })
        })
    }

    async fn list_consumers(
        &self,
        request: Request<v1::ListConsumersRequest>,
    ) -> Result<Response<v1::ListConsumersResponse>, Status> {
        rpc!("ListConsumers", request, |g, m| {
            if m.every_stream {
                return Ok(self.engine.list_every_consumer(&g).await?);
            }
            stream_name("stream", &m.stream)?;
            Ok(self.engine.list_consumers(&g, &m.stream).await?)
        })
    }

    async fn claim(
        &self,
        request: Request<v1::ClaimRequest>,
    ) -> Result<Response<v1::ClaimResponse>, Status> {
        rpc!("Claim", request, |g, m| {
            consumer_names(&m.stream, &m.consumer)?;
            Ok(self.engine.claim(&g, m).await?)
        })
    }

    async fn acknowledge(
        &self,
        request: Request<v1::AcknowledgeRequest>,
    ) -> Result<Response<v1::AcknowledgeResponse>, Status> {
        rpc!("Acknowledge", request, |g, m| {
            consumer_names(&m.stream, &m.consumer)?;
            Ok(self.engine.acknowledge(&g, m).await?)
        })
    }

    async fn reset_consumer(
        &self,
        request: Request<v1::ResetConsumerRequest>,
    ) -> Result<Response<v1::ResetConsumerResponse>, Status> {
        rpc!("ResetConsumer", request, |g, m| {
            consumer_names(&m.stream, &m.name)?;
            Ok(self.engine.reset_consumer(&g, m).await?)
        })
    }

    async fn unpin(
        &self,
        request: Request<v1::UnpinRequest>,
    ) -> Result<Response<v1::UnpinResponse>, Status> {
        rpc!("Unpin", request, |g, m| {
            consumer_names(&m.stream, &m.consumer)?;
            let error = self.engine.unpin(&g, m).await?;
            Ok(v1::UnpinResponse { error })
        })
    }
}

#[allow(clippy::result_large_err)]
fn lease_args(name: &str, holder: &str, ttl_ms: u64) -> Result<Duration, Status> {
    let bad = |field: &'static str, reason: &str| {
        invalid(infinistream_proto::InvalidArgument {
            field,
            reason: reason.into(),
        })
    };
    if name.is_empty() || name.len() > 255 {
        return Err(bad("name", "must be 1..=255 bytes"));
    }
    if holder.is_empty() {
        return Err(bad("holder", "must not be empty"));
    }
    if ttl_ms == 0 {
        return Err(bad("ttl_ms", "must be positive"));
    }
    Ok(Duration::from_millis(ttl_ms))
}

#[tonic::async_trait]
impl jobs_server::Jobs for Service {
    async fn acquire_lease(
        &self,
        request: Request<v1::AcquireLeaseRequest>,
    ) -> Result<Response<v1::LeaseResponse>, Status> {
        rpc!("AcquireLease", request, |g, m| {
            let ttl = lease_args(&m.name, &m.holder, m.ttl_ms)?;
            Ok(self
                .engine
                .acquire_lease(&g, &m.name, &m.holder, ttl, false)
                .await?)
        })
    }

    async fn renew_lease(
        &self,
        request: Request<v1::RenewLeaseRequest>,
    ) -> Result<Response<v1::LeaseResponse>, Status> {
        rpc!("RenewLease", request, |g, m| {
            let ttl = lease_args(&m.name, &m.holder, m.ttl_ms)?;
            Ok(self
                .engine
                .acquire_lease(&g, &m.name, &m.holder, ttl, true)
                .await?)
        })
    }

    async fn release_lease(
        &self,
        request: Request<v1::ReleaseLeaseRequest>,
    ) -> Result<Response<v1::ReleaseLeaseResponse>, Status> {
        rpc!("ReleaseLease", request, |g, m| {
            lease_args(&m.name, &m.holder, 1)?;
            let released = self.engine.release_lease(&g, &m.name, &m.holder).await?;
            Ok(v1::ReleaseLeaseResponse { released })
        })
    }

    async fn swap_index(
        &self,
        request: Request<v1::SwapIndexRequest>,
    ) -> Result<Response<v1::SwapIndexResponse>, Status> {
        rpc!("SwapIndex", request, |g, m| {
            stream_name("stream", &m.stream)?;
            if m.segment_object_key.is_empty() {
                return Err(invalid(infinistream_proto::InvalidArgument {
                    field: "segment_object_key",
                    reason: "must not be empty".into(),
                }));
            }
            Ok(self.engine.swap_index(&g, m).await?)
        })
    }

    async fn list_objects(
        &self,
        request: Request<v1::ListObjectsRequest>,
    ) -> Result<Response<v1::ListObjectsResponse>, Status> {
        rpc!("ListObjects", request, |g, _m| {
            Ok(self.engine.list_objects(&g).await?)
        })
    }

    async fn forget_objects(
        &self,
        request: Request<v1::ForgetObjectsRequest>,
    ) -> Result<Response<v1::ForgetObjectsResponse>, Status> {
        rpc!("ForgetObjects", request, |g, m| {
            self.engine.forget_objects(&g, &m.object_keys).await?;
            Ok(v1::ForgetObjectsResponse {})
        })
    }

    async fn enforce_retention(
        &self,
        request: Request<v1::EnforceRetentionRequest>,
    ) -> Result<Response<v1::EnforceRetentionResponse>, Status> {
        rpc!("EnforceRetention", request, |g, _m| {
            let removed = self.engine.enforce_retention(&g).await?;
            Ok(v1::EnforceRetentionResponse { removed })
        })
    }

    async fn due_schedules(
        &self,
        request: Request<v1::DueSchedulesRequest>,
    ) -> Result<Response<v1::DueSchedulesResponse>, Status> {
        rpc!("DueSchedules", request, |g, m| {
            Ok(self.engine.due_schedules(&g, m.limit).await?)
        })
    }
}
