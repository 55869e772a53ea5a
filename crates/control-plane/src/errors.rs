//! The control plane's own errors (`CpError`, mapped to gRPC statuses). The JetStream
//! API errors it answers inside responses come from protocol's nats-server table
//! (`ApiError::stream_not_found().into()`), so agents forward them unchanged.

use infinistream_proto::InvalidArgument;

use crate::store::StoreError;

/// Why a control-plane call failed (as opposed to a JetStream-level refusal, which is
/// a successful call carrying a `JsError`).
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
