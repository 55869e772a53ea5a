//! Errors of the jobs role.

use infinistream_cp_client::CallError;
use infinistream_objstore::BucketError;
use infinistream_segment::{BuildError, DecodeError};

/// Why a job pass failed. The pass is retried on the next tick.
#[derive(Debug, thiserror::Error)]
pub enum JobsError {
    /// A control-plane call failed (unreachable, refused, timed out).
    #[error(transparent)]
    ControlPlane(#[from] CallError),
    /// The control plane answered with a JetStream error for a stream.
    #[error("control plane refused {call} for stream `{stream}`: {description}")]
    Refused {
        /// The RPC.
        call: &'static str,
        /// The stream.
        stream: String,
        /// The JetStream error description.
        description: String,
    },
    /// A bucket operation failed.
    #[error(transparent)]
    Bucket(#[from] BucketError),
    /// An object the index names could not be decoded.
    #[error("cannot decode object `{key}`: {source}")]
    Decode {
        /// The object key.
        key: String,
        /// The decoder's error.
        #[source]
        source: DecodeError,
    },
    /// The compacted segment could not be built.
    #[error("cannot build a segment of stream `{stream}`: {source}")]
    Build {
        /// The stream.
        stream: String,
        /// The builder's error.
        #[source]
        source: BuildError,
    },
    /// The index and an object disagree (wrong stream, position past the chunk).
    #[error("index entry disagrees with object `{key}`: {reason}")]
    Inconsistent {
        /// The object key.
        key: String,
        /// What disagrees.
        reason: String,
    },
    /// The lease was lost while the job ran (another agent took it over).
    #[error("lease `{0}` was lost while the job ran")]
    LeaseLost(String),
}
