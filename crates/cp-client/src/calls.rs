//! Typed calls on the control plane: one method per request, one error type.
//!
//! Callers pass and get domain values instead of building requests on the raw tonic
//! stubs and matching `tonic::Status`; a call fails with a [`CallError`] that says
//! what the caller can do about it: retry later ([`CallError::Unavailable`]), forward
//! the JetStream API error ([`CallError::Refused`]), stop because someone else holds
//! what it held ([`CallError::Fenced`]), or report the failure ([`CallError::Failed`]).
//! A JetStream-level refusal is an answer, not a failure, on the wire (a response
//! carrying a `JsError` instead of its content); the typed calls return it as
//! `Err(Refused)`. Answers that are not refusals stay in the response: a commit's
//! per-record results, a lease held by someone else (`acquired: false`), a refused
//! index swap (`swapped: false`).
//!
//! The raw stubs under these calls are this crate's own; the control plane's tests,
//! which check the server's answers to requests no typed call builds, reach them
//! through the `raw-stubs` feature (`ControlPlaneClient::raw_streams`…).

use std::future::Future;

use infinistream_proto::v1;

use crate::ControlPlaneClient;

pub use crate::error::CallError;

/// The response of a unary call, or the call's failure as a [`CallError`] (also
/// used by the control plane's direct in-process calls, `DirectClient`).
pub async fn unary<T>(
    call: &'static str,
    response: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
) -> Result<T, CallError> {
    response
        .await
        .map(tonic::Response::into_inner)
        .map_err(|s| CallError::from_status(call, &s))
}

/// A response that may carry a JetStream API error instead of its answer.
pub trait MayRefuse {
    fn take_error(&mut self) -> Option<v1::JsError>;
}

macro_rules! may_refuse {
    ($($response:ty),* $(,)?) => {
        $(impl MayRefuse for $response {
            fn take_error(&mut self) -> Option<v1::JsError> {
                self.error.take()
            }
        })*
    };
}

may_refuse!(
    v1::StreamInfoResponse,
    v1::DeleteStreamResponse,
    v1::ReadIndexResponse,
    v1::SeqForTimeResponse,
    v1::LastBySubjectResponse,
    v1::PurgeStreamResponse,
    v1::DeleteMessageResponse,
    v1::ConsumerInfoResponse,
    v1::DeleteConsumerResponse,
    v1::ListConsumersResponse,
    v1::ClaimResponse,
    v1::AcknowledgeResponse,
    v1::ResetConsumerResponse,
    v1::UnpinResponse,
);

/// [`unary`], with a JetStream API error in the response as `Refused`.
pub async fn answered<T: MayRefuse>(
    call: &'static str,
    response: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
) -> Result<T, CallError> {
    let mut resp = unary(call, response).await?;
    match resp.take_error() {
        Some(error) => Err(CallError::Refused { call, error }),
        None => Ok(resp),
    }
}

/// Streams: their configs, reads of their index, commits.
impl ControlPlaneClient {
    /// Creates a stream (idempotent for an identical config); the stream as stored.
    pub async fn create_stream(
        &self,
        config: v1::StreamConfig,
    ) -> Result<v1::StreamInfoResponse, CallError> {
        let request = v1::CreateStreamRequest {
            config: Some(config),
        };
        answered("CreateStream", self.streams.clone().create_stream(request)).await
    }

    /// Replaces a stream's config (checked by the caller); the stream as stored.
    pub async fn update_stream(
        &self,
        config: v1::StreamConfig,
    ) -> Result<v1::StreamInfoResponse, CallError> {
        let request = v1::UpdateStreamRequest {
            config: Some(config),
        };
        answered("UpdateStream", self.streams.clone().update_stream(request)).await
    }

    /// Deletes a stream, its messages and its consumers.
    pub async fn delete_stream(&self, name: &str) -> Result<(), CallError> {
        let request = v1::DeleteStreamRequest {
            name: name.to_owned(),
        };
        answered("DeleteStream", self.streams.clone().delete_stream(request))
            .await
            .map(drop)
    }

    /// A stream's config and state (with its deleted sequences when asked); a
    /// stream the control plane does not know is `Refused`.
    pub async fn stream_info(
        &self,
        name: &str,
        deleted_details: bool,
    ) -> Result<v1::StreamInfoResponse, CallError> {
        let request = v1::StreamInfoRequest {
            name: name.to_owned(),
            deleted_details,
        };
        answered("StreamInfo", self.streams.clone().stream_info(request)).await
    }

    /// The group's streams (their configuration and state) whose subjects overlap
    /// `subject` (empty = all).
    pub async fn list_streams(
        &self,
        subject: &str,
    ) -> Result<Vec<v1::StreamInfoResponse>, CallError> {
        self.list_streams_in(subject, "").await
    }

    /// [`Self::list_streams`] of one account: the streams whose id's account part is
    /// `account` (`$G` for bare ids; empty = every account).
    pub async fn list_streams_in(
        &self,
        subject: &str,
        account: &str,
    ) -> Result<Vec<v1::StreamInfoResponse>, CallError> {
        let request = v1::ListStreamsRequest {
            subject: subject.to_owned(),
            account: account.to_owned(),
        };
        let resp = unary("ListStreams", self.streams.clone().list_streams(request)).await?;
        Ok(resp.streams)
    }

    /// Sets the JetStream account's limits, which the control plane enforces for the
    /// whole group at commit (all -1 = unlimited). They govern the streams named by
    /// their bare name (`$G`'s ids: the one account JetStream serves today).
    pub async fn set_account_limits(&self, limits: v1::AccountLimits) -> Result<(), CallError> {
        self.set_account_limits_in("", limits).await
    }

    /// [`Self::set_account_limits`] for the streams whose id's account part is
    /// `account` (`<account>.<name>`; empty or `$G`: the bare ids).
    pub async fn set_account_limits_in(
        &self,
        account: &str,
        limits: v1::AccountLimits,
    ) -> Result<(), CallError> {
        let request = v1::SetAccountLimitsRequest {
            limits: Some(limits),
            account: account.to_owned(),
        };
        unary(
            "SetAccountLimits",
            self.streams.clone().set_account_limits(request),
        )
        .await
        .map(drop)
    }

    /// Removes messages of a stream (by subject, keeping the newest, or below a
    /// sequence); how many it removed.
    pub async fn purge_stream(&self, request: v1::PurgeStreamRequest) -> Result<u64, CallError> {
        let resp = answered("PurgeStream", self.streams.clone().purge_stream(request)).await?;
        Ok(resp.purged)
    }

    /// Deletes one message of a stream.
    pub async fn delete_message(&self, stream: &str, seq: u64) -> Result<(), CallError> {
        let request = v1::DeleteMessageRequest {
            stream: stream.to_owned(),
            seq,
        };
        answered(
            "DeleteMessage",
            self.streams.clone().delete_message(request),
        )
        .await
        .map(drop)
    }

    /// Commits a batch of records (replayed with its batch id); a refused record is
    /// an answer, in its chunk's results.
    pub async fn commit_batch(
        &self,
        request: v1::CommitBatchRequest,
    ) -> Result<v1::CommitBatchResponse, CallError> {
        if let Some(local) = &self.local {
            if let Some(e) = crate::local::over_size_limit("CommitBatch", &request) {
                return Err(e);
            }
            return local.commit_batch(request).await;
        }
        unary("CommitBatch", self.streams.clone().commit_batch(request)).await
    }

    /// A page of a stream's index; a stream the control plane does not know is
    /// `Refused`.
    pub async fn read_index(
        &self,
        request: v1::ReadIndexRequest,
    ) -> Result<v1::ReadIndexResponse, CallError> {
        answered("ReadIndex", self.streams.clone().read_index(request)).await
    }

    /// The last live sequence of each of `subjects` (all subjects when empty) in
    /// `stream`, in subject order; a JetStream error is `Refused`.
    pub async fn last_by_subject(
        &self,
        stream: &str,
        subjects: Vec<String>,
    ) -> Result<Vec<v1::SubjectLast>, CallError> {
        let request = v1::LastBySubjectRequest {
            stream: stream.to_owned(),
            subjects,
        };
        let resp = answered(
            "LastBySubject",
            self.streams.clone().last_by_subject(request),
        )
        .await?;
        Ok(resp.subjects)
    }

    /// The first live sequence of `stream` stored at or after `timestamp_unix_nanos`
    /// (0 when there is none); a JetStream error is `Refused`.
    pub async fn seq_for_time(
        &self,
        stream: &str,
        timestamp_unix_nanos: i64,
    ) -> Result<u64, CallError> {
        let request = v1::SeqForTimeRequest {
            stream: stream.to_owned(),
            timestamp_unix_nanos,
        };
        let resp = answered("SeqForTime", self.streams.clone().seq_for_time(request)).await?;
        Ok(resp.seq)
    }
}

/// Consumers: their records, claims and acknowledgements.
impl ControlPlaneClient {
    /// Creates a consumer (idempotent for an identical config); the consumer as
    /// stored.
    pub async fn create_consumer(
        &self,
        config: v1::ConsumerConfig,
    ) -> Result<v1::ConsumerInfoResponse, CallError> {
        let request = v1::CreateConsumerRequest {
            config: Some(config),
        };
        answered(
            "CreateConsumer",
            self.consumers.clone().create_consumer(request),
        )
        .await
    }

    /// Replaces a consumer's config (checked by the caller), creating it when
    /// `create_if_missing`; the consumer as stored.
    pub async fn update_consumer(
        &self,
        config: v1::ConsumerConfig,
        create_if_missing: bool,
    ) -> Result<v1::ConsumerInfoResponse, CallError> {
        let request = v1::UpdateConsumerRequest {
            config: Some(config),
            create_if_missing,
        };
        answered(
            "UpdateConsumer",
            self.consumers.clone().update_consumer(request),
        )
        .await
    }

    /// A consumer's config and state.
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
            self.consumers.clone().consumer_info(request),
        )
        .await
    }

    /// Deletes a consumer's record.
    pub async fn delete_consumer(&self, stream: &str, name: &str) -> Result<(), CallError> {
        let request = v1::DeleteConsumerRequest {
            stream: stream.to_owned(),
            name: name.to_owned(),
        };
        answered(
            "DeleteConsumer",
            self.consumers.clone().delete_consumer(request),
        )
        .await
        .map(drop)
    }

    /// Every consumer of `stream`, in the control plane's order.
    pub async fn list_consumers(
        &self,
        stream: &str,
    ) -> Result<Vec<v1::ConsumerInfoResponse>, CallError> {
        let request = v1::ListConsumersRequest {
            stream: stream.to_owned(),
            every_stream: false,
        };
        let resp = answered(
            "ListConsumers",
            self.consumers.clone().list_consumers(request),
        )
        .await?;
        Ok(resp.consumers)
    }

    /// Every consumer of every stream of the group (one call), by stream then name.
    /// A control plane older than this call refuses it (the stream name is empty).
    pub async fn list_every_consumer(&self) -> Result<Vec<v1::ConsumerInfoResponse>, CallError> {
        let request = v1::ListConsumersRequest {
            stream: String::new(),
            every_stream: true,
        };
        let resp = answered(
            "ListConsumers",
            self.consumers.clone().list_consumers(request),
        )
        .await?;
        Ok(resp.consumers)
    }

    /// Claims up to `request.batch` deliveries of a consumer for an agent (applying
    /// the plain acks it carries first); a JetStream error (consumer or stream gone)
    /// is `Refused`.
    pub async fn claim(&self, request: v1::ClaimRequest) -> Result<v1::ClaimResponse, CallError> {
        answered("Claim", self.consumers.clone().claim(request)).await
    }

    /// Acknowledges deliveries of a consumer (ack, nak, term, progress, release); a
    /// JetStream error is `Refused`.
    pub async fn acknowledge(
        &self,
        request: v1::AcknowledgeRequest,
    ) -> Result<v1::AcknowledgeResponse, CallError> {
        answered("Acknowledge", self.consumers.clone().acknowledge(request)).await
    }

    /// Moves a consumer's next delivery to `seq` (0: back to its deliver policy);
    /// the consumer after the reset, and the sequence it now delivers from.
    pub async fn reset_consumer(
        &self,
        stream: &str,
        name: &str,
        seq: u64,
    ) -> Result<v1::ResetConsumerResponse, CallError> {
        let request = v1::ResetConsumerRequest {
            stream: stream.to_owned(),
            name: name.to_owned(),
            seq,
        };
        answered(
            "ResetConsumer",
            self.consumers.clone().reset_consumer(request),
        )
        .await
    }

    /// Drops the pin of a consumer's priority `group`.
    pub async fn unpin(&self, stream: &str, consumer: &str, group: &str) -> Result<(), CallError> {
        let request = v1::UnpinRequest {
            stream: stream.to_owned(),
            consumer: consumer.to_owned(),
            group: group.to_owned(),
        };
        answered("Unpin", self.consumers.clone().unpin(request))
            .await
            .map(drop)
    }
}

/// Agents: registration and leases.
impl ControlPlaneClient {
    /// Registers `agent` (asking for the default lease); the lease granted.
    pub async fn register(&self, agent: v1::AgentInfo) -> Result<v1::RegisterResponse, CallError> {
        let request = v1::RegisterRequest {
            agent: Some(agent),
            lease_ms: 0,
        };
        unary("Register", self.agents.clone().register(request)).await
    }

    /// Renews an agent's lease; an agent the control plane dropped (paused or cut
    /// off past its lease) fails with `NotFound` (see [`CallError::code`]).
    pub async fn heartbeat(&self, agent_id: &str) -> Result<(), CallError> {
        let request = v1::HeartbeatRequest {
            agent_id: agent_id.to_owned(),
        };
        unary("Heartbeat", self.agents.clone().heartbeat(request))
            .await
            .map(drop)
    }

    /// Takes an agent out of the group at once (rather than when its lease ends).
    pub async fn deregister(&self, agent_id: &str) -> Result<(), CallError> {
        let request = v1::DeregisterRequest {
            agent_id: agent_id.to_owned(),
        };
        unary("Deregister", self.agents.clone().deregister(request))
            .await
            .map(drop)
    }

    /// The group's live agents with `role` in `zone` (empty = any), by agent id.
    pub async fn list_agents(
        &self,
        role: &str,
        zone: &str,
    ) -> Result<Vec<v1::AgentInfo>, CallError> {
        let request = v1::ListAgentsRequest {
            role: role.to_owned(),
            zone: zone.to_owned(),
        };
        let resp = unary("ListAgents", self.agents.clone().list_agents(request)).await?;
        Ok(resp.agents)
    }
}

/// Jobs: retention, schedules, objects, compaction and the job leases.
impl ControlPlaneClient {
    /// Applies time-based limits (max_age, TTL) to the group's streams now; returns
    /// how many messages they removed.
    pub async fn enforce_retention(&self) -> Result<u64, CallError> {
        let request = v1::EnforceRetentionRequest {};
        let resp = unary(
            "EnforceRetention",
            self.jobs.clone().enforce_retention(request),
        )
        .await?;
        Ok(resp.removed)
    }

    /// Message schedules due now (at most `limit`, 0 = 1000) and the group's backlog.
    pub async fn due_schedules(&self, limit: u32) -> Result<v1::DueSchedulesResponse, CallError> {
        let request = v1::DueSchedulesRequest { limit };
        unary("DueSchedules", self.jobs.clone().due_schedules(request)).await
    }

    /// The objects the group's index references, and those it released.
    pub async fn list_objects(&self) -> Result<v1::ListObjectsResponse, CallError> {
        let request = v1::ListObjectsRequest {};
        unary("ListObjects", self.jobs.clone().list_objects(request)).await
    }

    /// Forgets released objects (once deleted from the bucket).
    pub async fn forget_objects(&self, object_keys: Vec<String>) -> Result<(), CallError> {
        let request = v1::ForgetObjectsRequest { object_keys };
        unary("ForgetObjects", self.jobs.clone().forget_objects(request))
            .await
            .map(drop)
    }

    /// Swaps a compacted segment in for the index entries it replaces; a refused swap
    /// is an answer (`swapped: false` with the reason).
    pub async fn swap_index(
        &self,
        request: v1::SwapIndexRequest,
    ) -> Result<v1::SwapIndexResponse, CallError> {
        unary("SwapIndex", self.jobs.clone().swap_index(request)).await
    }

    /// Takes the job lease `name` for `holder`; a lease held by someone else is an
    /// answer (`acquired: false`, with its holder).
    pub async fn acquire_lease(
        &self,
        name: &str,
        holder: &str,
        ttl_ms: u64,
    ) -> Result<v1::LeaseResponse, CallError> {
        let request = v1::AcquireLeaseRequest {
            name: name.to_owned(),
            holder: holder.to_owned(),
            ttl_ms,
        };
        unary("AcquireLease", self.jobs.clone().acquire_lease(request)).await
    }

    /// Extends `holder`'s job lease `name`; `Fenced` when it is no longer theirs.
    pub async fn renew_lease(
        &self,
        name: &str,
        holder: &str,
        ttl_ms: u64,
    ) -> Result<v1::LeaseResponse, CallError> {
        let request = v1::RenewLeaseRequest {
            name: name.to_owned(),
            holder: holder.to_owned(),
            ttl_ms,
        };
        let resp = unary("RenewLease", self.jobs.clone().renew_lease(request)).await?;
        if !resp.acquired {
            return Err(CallError::Fenced {
                call: "RenewLease",
                message: format!("lease `{name}` is held by `{}`", resp.holder),
            });
        }
        Ok(resp)
    }

    /// Gives `holder`'s job lease `name` back.
    pub async fn release_lease(&self, name: &str, holder: &str) -> Result<(), CallError> {
        let request = v1::ReleaseLeaseRequest {
            name: name.to_owned(),
            holder: holder.to_owned(),
        };
        unary("ReleaseLease", self.jobs.clone().release_lease(request))
            .await
            .map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_sort_into_retryable_or_not() {
        let e = CallError::from_status("CommitBatch", &tonic::Status::unavailable("no leader"));
        assert!(e.is_unavailable());
        assert_eq!(
            e.to_string(),
            "control plane call CommitBatch failed: Unavailable: no leader"
        );
        let e = CallError::from_status("ReadIndex", &tonic::Status::invalid_argument("bad"));
        assert!(!e.is_unavailable());
        assert!(matches!(
            e,
            CallError::Failed {
                call: "ReadIndex",
                code: tonic::Code::InvalidArgument,
                ..
            }
        ));
        let e = CallError::from_status("Register", &tonic::Status::unauthenticated("wrong key"));
        assert!(!e.is_unavailable());
    }
}
