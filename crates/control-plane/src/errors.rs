//! The control plane's own errors: `CpError` (mapped to gRPC statuses) and `ServeError`
//! (why serving failed; here rather than in `server` so the replica proxy in `leader`
//! needs nothing from `server`). The JetStream API errors it answers inside responses
//! come from protocol's nats-server table (`ApiError::stream_not_found().into()`), so
//! agents forward them unchanged.

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

/// Errors of the control-plane server.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("invalid --store `{0}`: use `embedded:<dir>` or `etcd://host:port[,host:port…]`")]
    BadStore(String),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("no group configured: set INFINISTREAM_GROUP_ID/INFINISTREAM_GROUP_KEY or --groups")]
    NoGroups,
    #[error(transparent)]
    ControlPlane(#[from] CpError),
    #[error("grpc server failed: {0}")]
    Transport(#[from] tonic::transport::Error),
}
