//! Errors: the control plane's own (`CpError`, mapped to gRPC statuses) and the
//! JetStream API errors it answers inside responses, with nats-server's numbers and
//! wording (server/errors.json, store.go) so agents forward them unchanged.

use infinistream_proto::InvalidArgument;
use infinistream_proto::v1::JsError;

use crate::store::StoreError;

/// Why a control-plane call failed (as opposed to a JetStream-level refusal, which is
/// a successful call carrying a [`JsError`]).
#[derive(Debug, thiserror::Error)]
pub enum CpError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Invalid(#[from] InvalidArgument),
    #[error("not found: {0}")]
    NotFound(String),
    /// Another control-plane instance took over the store; this one must stop writing.
    #[error("this control plane lost leadership of the metadata store: {0}")]
    NotLeader(String),
    /// The control plane is shutting down.
    #[error("control plane is shutting down")]
    ShuttingDown,
}

impl From<CpError> for tonic::Status {
    fn from(e: CpError) -> Self {
        match &e {
            CpError::Store(StoreError::Unavailable(_))
            | CpError::NotLeader(_)
            | CpError::ShuttingDown => tonic::Status::unavailable(e.to_string()),
            CpError::Store(_) => tonic::Status::internal(e.to_string()),
            CpError::Invalid(_) => tonic::Status::invalid_argument(e.to_string()),
            CpError::NotFound(_) => tonic::Status::not_found(e.to_string()),
        }
    }
}

fn js(code: u32, err_code: u32, description: impl Into<String>) -> JsError {
    JsError {
        code,
        err_code,
        description: description.into(),
    }
}

/// nats-server's JetStream errors, by constant name.
pub mod jserr {
    use super::{JsError, js};

    /// 10059 JSStreamNotFoundErr.
    pub fn stream_not_found() -> JsError {
        js(404, 10059, "stream not found")
    }
    /// 10058 JSStreamNameExistErr.
    pub fn stream_name_exist() -> JsError {
        js(
            400,
            10058,
            "stream name already in use with a different configuration",
        )
    }
    /// 10065 JSStreamSubjectOverlapErr.
    pub fn subject_overlap() -> JsError {
        js(400, 10065, "subjects overlap with an existing stream")
    }
    /// 10060 JSStreamNotMatchErr.
    pub fn stream_not_match() -> JsError {
        js(400, 10060, "expected stream does not match")
    }
    /// 10071 JSStreamWrongLastSequenceErrF.
    pub fn wrong_last_sequence(seq: u64) -> JsError {
        js(400, 10071, format!("wrong last sequence: {seq}"))
    }
    /// 10193 JSStreamExpectedLastSeqPerSubjectInvalid.
    pub fn expected_last_seq_per_subject_invalid() -> JsError {
        js(
            400,
            10193,
            "missing sequence for expected last sequence per subject",
        )
    }
    /// 10070 JSStreamWrongLastMsgIDErrF.
    pub fn wrong_last_msg_id(id: &str) -> JsError {
        js(400, 10070, format!("wrong last msg ID: {id}"))
    }
    /// 10109 JSStreamSealedErr.
    pub fn sealed() -> JsError {
        js(400, 10109, "invalid operation on sealed stream")
    }
    /// 10054 JSStreamMessageExceedsMaximumErr.
    pub fn message_exceeds_maximum() -> JsError {
        js(400, 10054, "message size exceeds maximum allowed")
    }
    /// 10111 JSStreamRollupFailedF.
    pub fn rollup_failed(reason: &str) -> JsError {
        js(500, 10111, reason)
    }
    /// 10165 JSMessageTTLInvalidErr.
    pub fn ttl_invalid() -> JsError {
        js(400, 10165, "invalid per-message TTL")
    }
    /// 10166 JSMessageTTLDisabledErr.
    pub fn ttl_disabled() -> JsError {
        js(400, 10166, "per-message TTL is disabled")
    }
    /// 10077 JSStreamStoreFailedF with filestore's ErrMaxMsgs.
    pub fn max_msgs() -> JsError {
        js(503, 10077, "maximum messages exceeded")
    }
    /// 10077 JSStreamStoreFailedF with filestore's ErrMaxBytes.
    pub fn max_bytes() -> JsError {
        js(503, 10077, "maximum bytes exceeded")
    }
    /// 10077 JSStreamStoreFailedF with filestore's ErrMaxMsgsPerSubject.
    pub fn max_msgs_per_subject() -> JsError {
        js(503, 10077, "maximum messages per subject exceeded")
    }
    /// 10110 JSStreamPurgeFailedF.
    pub fn purge_failed(reason: &str) -> JsError {
        js(500, 10110, reason)
    }
    /// 10057 JSStreamMsgDeleteFailedF.
    pub fn msg_delete_failed(reason: &str) -> JsError {
        js(500, 10057, reason)
    }
    /// 10014 JSConsumerNotFoundErr.
    pub fn consumer_not_found() -> JsError {
        js(404, 10014, "consumer not found")
    }
    /// 10148 JSConsumerAlreadyExists.
    pub fn consumer_already_exists() -> JsError {
        js(400, 10148, "consumer already exists")
    }
    /// 10094 JSConsumerInvalidPolicyErrF.
    pub fn consumer_invalid_policy(reason: &str) -> JsError {
        js(400, 10094, reason)
    }
    /// 10052 JSStreamInvalidConfigF.
    pub fn invalid_config(reason: &str) -> JsError {
        js(500, 10052, reason)
    }
}
