//! Typed calls on the control plane: one method per request, one error type.
//!
//! Callers pass and get domain values instead of building requests on the raw tonic
//! stubs and matching `tonic::Status`; a call fails with a [`CallError`] that says
//! what the caller can do about it: retry later ([`CallError::Unavailable`]), forward
//! the JetStream API error ([`CallError::Refused`]), stop because someone else holds
//! what it held ([`CallError::Fenced`]), or report the failure ([`CallError::Failed`]).
//! A JetStream-level refusal is an answer, not a failure, on the wire (a response
//! carrying a `JsError`); the typed calls return it as `Err(Refused)` only where
//! the response has no other use.

use infinistream_proto::v1;

use crate::ControlPlaneClient;

/// Why a typed control-plane call failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CallError {
    /// Not reached, no leader now, the metadata store unavailable, timed out: the
    /// call may be retried.
    #[error("control plane call {call} failed: {code:?}: {message}")]
    Unavailable {
        /// The RPC.
        call: &'static str,
        /// The gRPC status code.
        code: tonic::Code,
        /// The status message.
        message: String,
    },
    /// Refused with a JetStream API error (nats-server's code and wording).
    #[error("control plane refused {call}: {} (err_code {})", error.description, error.err_code)]
    Refused {
        /// The RPC.
        call: &'static str,
        /// The JetStream API error.
        error: v1::JsError,
    },
    /// What the caller held (a job lease) is now someone else's.
    #[error("control plane call {call}: {message}")]
    Fenced {
        /// The RPC.
        call: &'static str,
        /// Who holds it now.
        message: String,
    },
    /// Refused as a request (wrong key, invalid argument, not found, internal error).
    #[error("control plane call {call} failed: {code:?}: {message}")]
    Failed {
        /// The RPC.
        call: &'static str,
        /// The gRPC status code.
        code: tonic::Code,
        /// The status message.
        message: String,
    },
}

impl CallError {
    /// The error for a call that ended with `status`.
    pub fn from_status(call: &'static str, status: &tonic::Status) -> CallError {
        let (code, message) = (status.code(), status.message().to_owned());
        match code {
            tonic::Code::Unavailable
            | tonic::Code::DeadlineExceeded
            | tonic::Code::Cancelled
            | tonic::Code::Aborted
            | tonic::Code::ResourceExhausted
            | tonic::Code::Unknown => CallError::Unavailable {
                call,
                code,
                message,
            },
            _ => CallError::Failed {
                call,
                code,
                message,
            },
        }
    }

    /// The control plane's own words: the status message, the API error's
    /// description, or who holds what the caller held.
    pub fn message(&self) -> &str {
        match self {
            CallError::Unavailable { message, .. }
            | CallError::Fenced { message, .. }
            | CallError::Failed { message, .. } => message,
            CallError::Refused { error, .. } => &error.description,
        }
    }

    /// Whether retrying the call later may succeed.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, CallError::Unavailable { .. })
    }
}

/// `Refused` when a response carries a JetStream API error.
fn refuse(call: &'static str, error: Option<v1::JsError>) -> Result<(), CallError> {
    match error {
        Some(error) => Err(CallError::Refused { call, error }),
        None => Ok(()),
    }
}

impl ControlPlaneClient {
    /// The group's streams (their configuration and state) whose subjects overlap
    /// `subject` (empty = all).
    pub async fn list_streams(
        &self,
        subject: &str,
    ) -> Result<Vec<v1::StreamInfoResponse>, CallError> {
        let resp = self
            .streams
            .clone()
            .list_streams(v1::ListStreamsRequest {
                subject: subject.to_owned(),
            })
            .await
            .map_err(|s| CallError::from_status("ListStreams", &s))?;
        Ok(resp.into_inner().streams)
    }

    /// A page of a stream's index; a stream the control plane does not know is
    /// `Refused`.
    pub async fn read_index(
        &self,
        request: v1::ReadIndexRequest,
    ) -> Result<v1::ReadIndexResponse, CallError> {
        let mut resp = self
            .streams
            .clone()
            .read_index(request)
            .await
            .map_err(|s| CallError::from_status("ReadIndex", &s))?
            .into_inner();
        refuse("ReadIndex", resp.error.take())?;
        Ok(resp)
    }

    /// The last live sequence of each of `subjects` (all subjects when empty) in
    /// `stream`, in subject order; a JetStream error is `Refused`.
    pub async fn last_by_subject(
        &self,
        stream: &str,
        subjects: Vec<String>,
    ) -> Result<Vec<v1::SubjectLast>, CallError> {
        let mut resp = self
            .streams
            .clone()
            .last_by_subject(v1::LastBySubjectRequest {
                stream: stream.to_owned(),
                subjects,
            })
            .await
            .map_err(|s| CallError::from_status("LastBySubject", &s))?
            .into_inner();
        refuse("LastBySubject", resp.error.take())?;
        Ok(resp.subjects)
    }

    /// The first live sequence of `stream` stored at or after `timestamp_unix_nanos`
    /// (0 when there is none); a JetStream error is `Refused`.
    pub async fn seq_for_time(
        &self,
        stream: &str,
        timestamp_unix_nanos: i64,
    ) -> Result<u64, CallError> {
        let mut resp = self
            .streams
            .clone()
            .seq_for_time(v1::SeqForTimeRequest {
                stream: stream.to_owned(),
                timestamp_unix_nanos,
            })
            .await
            .map_err(|s| CallError::from_status("SeqForTime", &s))?
            .into_inner();
        refuse("SeqForTime", resp.error.take())?;
        Ok(resp.seq)
    }

    /// The group's live agents with `role` in `zone` (empty = any), by agent id.
    pub async fn list_agents(
        &self,
        role: &str,
        zone: &str,
    ) -> Result<Vec<v1::AgentInfo>, CallError> {
        let resp = self
            .agents
            .clone()
            .list_agents(v1::ListAgentsRequest {
                role: role.to_owned(),
                zone: zone.to_owned(),
            })
            .await
            .map_err(|s| CallError::from_status("ListAgents", &s))?;
        Ok(resp.into_inner().agents)
    }

    /// Claims up to `request.batch` deliveries of a consumer for an agent (applying
    /// the plain acks it carries first); a JetStream error (consumer or stream gone)
    /// is `Refused`.
    pub async fn claim(&self, request: v1::ClaimRequest) -> Result<v1::ClaimResponse, CallError> {
        let mut resp = self
            .consumers
            .clone()
            .claim(request)
            .await
            .map_err(|s| CallError::from_status("Claim", &s))?
            .into_inner();
        refuse("Claim", resp.error.take())?;
        Ok(resp)
    }

    /// Acknowledges deliveries of a consumer (ack, nak, term, progress, release); a
    /// JetStream error is `Refused`.
    pub async fn acknowledge(
        &self,
        request: v1::AcknowledgeRequest,
    ) -> Result<v1::AcknowledgeResponse, CallError> {
        let mut resp = self
            .consumers
            .clone()
            .acknowledge(request)
            .await
            .map_err(|s| CallError::from_status("Acknowledge", &s))?
            .into_inner();
        refuse("Acknowledge", resp.error.take())?;
        Ok(resp)
    }

    /// Applies time-based limits (max_age, TTL) to the group's streams now; returns
    /// how many messages they removed.
    pub async fn enforce_retention(&self) -> Result<u64, CallError> {
        let resp = self
            .jobs
            .clone()
            .enforce_retention(v1::EnforceRetentionRequest {})
            .await
            .map_err(|s| CallError::from_status("EnforceRetention", &s))?;
        Ok(resp.into_inner().removed)
    }

    /// Message schedules due now (at most `limit`, 0 = 1000) and the group's backlog.
    pub async fn due_schedules(&self, limit: u32) -> Result<v1::DueSchedulesResponse, CallError> {
        let resp = self
            .jobs
            .clone()
            .due_schedules(v1::DueSchedulesRequest { limit })
            .await
            .map_err(|s| CallError::from_status("DueSchedules", &s))?;
        Ok(resp.into_inner())
    }

    /// The objects the group's index references, and those it released.
    pub async fn list_objects(&self) -> Result<v1::ListObjectsResponse, CallError> {
        let resp = self
            .jobs
            .clone()
            .list_objects(v1::ListObjectsRequest {})
            .await
            .map_err(|s| CallError::from_status("ListObjects", &s))?;
        Ok(resp.into_inner())
    }

    /// Forgets released objects (once deleted from the bucket).
    pub async fn forget_objects(&self, object_keys: Vec<String>) -> Result<(), CallError> {
        self.jobs
            .clone()
            .forget_objects(v1::ForgetObjectsRequest { object_keys })
            .await
            .map_err(|s| CallError::from_status("ForgetObjects", &s))?;
        Ok(())
    }

    /// Swaps a compacted segment in for the index entries it replaces; a refused swap
    /// is an answer (`swapped: false` with the reason).
    pub async fn swap_index(
        &self,
        request: v1::SwapIndexRequest,
    ) -> Result<v1::SwapIndexResponse, CallError> {
        let resp = self
            .jobs
            .clone()
            .swap_index(request)
            .await
            .map_err(|s| CallError::from_status("SwapIndex", &s))?;
        Ok(resp.into_inner())
    }

    /// Takes the job lease `name` for `holder`; a lease held by someone else is an
    /// answer (`acquired: false`, with its holder).
    pub async fn acquire_lease(
        &self,
        name: &str,
        holder: &str,
        ttl_ms: u64,
    ) -> Result<v1::LeaseResponse, CallError> {
        let resp = self
            .jobs
            .clone()
            .acquire_lease(v1::AcquireLeaseRequest {
                name: name.to_owned(),
                holder: holder.to_owned(),
                ttl_ms,
            })
            .await
            .map_err(|s| CallError::from_status("AcquireLease", &s))?;
        Ok(resp.into_inner())
    }

    /// Extends `holder`'s job lease `name`; `Fenced` when it is no longer theirs.
    pub async fn renew_lease(
        &self,
        name: &str,
        holder: &str,
        ttl_ms: u64,
    ) -> Result<v1::LeaseResponse, CallError> {
        let resp = self
            .jobs
            .clone()
            .renew_lease(v1::RenewLeaseRequest {
                name: name.to_owned(),
                holder: holder.to_owned(),
                ttl_ms,
            })
            .await
            .map_err(|s| CallError::from_status("RenewLease", &s))?
            .into_inner();
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
        self.jobs
            .clone()
            .release_lease(v1::ReleaseLeaseRequest {
                name: name.to_owned(),
                holder: holder.to_owned(),
            })
            .await
            .map_err(|s| CallError::from_status("ReleaseLease", &s))?;
        Ok(())
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
