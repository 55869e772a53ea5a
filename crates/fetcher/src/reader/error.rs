//! Why a read failed, and the JetStream API error that answers it.

use infinistream_cp_client::CallError;
use infinistream_objstore::BucketError;
use infinistream_protocol::jsapi::{ApiError, codes};
use infinistream_segment::DecodeError;

use crate::zone::ZoneError;

/// Why a read failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The stream does not exist (10059).
    #[error("stream not found: `{0}`")]
    StreamNotFound(String),
    /// No live message matches (10037).
    #[error("no message found")]
    NoMessage,
    /// The control plane answered with a JetStream error other than the above.
    #[error("control plane refused the read: {0}")]
    Refused(ApiError),
    /// The control plane could not be reached.
    #[error("control plane unavailable: {0}")]
    ControlPlane(String),
    /// The index names an object key that is not a valid path.
    #[error("invalid object key in the index: `{0}`")]
    BadKey(String),
    /// A bucket request failed (after the bucket's own retries).
    #[error("bucket read failed: {0}")]
    Bucket(#[from] BucketError),
    /// A bucket request of the store itself failed.
    #[error("bucket read of `{key}` failed: {source}")]
    Store {
        key: String,
        #[source]
        source: object_store::Error,
    },
    /// The object's bytes did not decode.
    #[error("corrupt object `{key}`: {source}")]
    Decode {
        key: String,
        #[source]
        source: DecodeError,
    },
    /// The index and the object disagree (wrong chunk, missing position).
    #[error("index and object `{key}` disagree: {reason}")]
    Inconsistent { key: String, reason: &'static str },
}

impl From<ZoneError> for ReadError {
    fn from(e: ZoneError) -> Self {
        match e {
            ZoneError::BadKey(key) => ReadError::BadKey(key),
            ZoneError::Bucket(e) => ReadError::Bucket(e),
            ZoneError::Store { key, source } => ReadError::Store { key, source },
        }
    }
}

impl ReadError {
    /// The JetStream API error for this failure, as nats-server would answer.
    pub fn api_error(&self) -> ApiError {
        match self {
            Self::StreamNotFound(_) => ApiError::stream_not_found(),
            Self::NoMessage => ApiError::no_message_found(),
            Self::Refused(e) => e.clone(),
            other => ApiError::internal(other),
        }
    }
}

/// A failed control-plane call as a read error: a JetStream refusal by its code,
/// anything else with the control plane's message.
pub(super) fn cp_error(stream: &str, error: CallError) -> ReadError {
    match error {
        CallError::Refused { error: e, .. } => {
            let e = ApiError::from(&e);
            if e.is(codes::STREAM_NOT_FOUND) {
                ReadError::StreamNotFound(stream.to_owned())
            } else if e.is(codes::NO_MESSAGE_FOUND) {
                ReadError::NoMessage
            } else {
                ReadError::Refused(e)
            }
        }
        other => ReadError::ControlPlane(other.message().to_owned()),
    }
}
