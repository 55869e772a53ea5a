//! A control plane in this process, called without the transport.
//!
//! The embedded control plane (the single-process default) is reached through the
//! same tonic clients as a remote one (`ControlPlaneClient::in_process`): every call
//! is encoded, routed and decoded. On the publish path that is a measurable part of a
//! flush's commit (docs/benchmarks.md, "many streams"), so a co-located control plane
//! may also hand the client a [`LocalCalls`] (`ControlPlaneClient::with_local`),
//! which the typed calls listed there use instead: the same service code and engine,
//! the same answers, and failures given as the same [`CallError`] a routed call gets.
//! Callers see no difference; every other call still goes through the routes.

use std::future::Future;
use std::pin::Pin;

use infinistream_proto::v1;
use prost::Message;

use crate::error::CallError;

/// What a [`LocalCalls`] call returns.
pub type LocalCall<'a, T> = Pin<Box<dyn Future<Output = Result<T, CallError>> + Send + 'a>>;

/// The calls a control plane in this process serves without the transport, already
/// authenticated as the client's group (it is handed over only once the client's key
/// checked out). Implemented by the control-plane crate.
pub trait LocalCalls: Send + Sync + std::fmt::Debug + 'static {
    /// `CommitBatch`, as `ControlPlaneClient::commit_batch` gives it.
    fn commit_batch(
        &self,
        request: v1::CommitBatchRequest,
    ) -> LocalCall<'_, v1::CommitBatchResponse>;
}

/// The error a routed call gets for a request over the message size limit (tonic's
/// words), so the direct path refuses exactly what the routed one does.
pub(crate) fn over_size_limit(call: &'static str, request: &impl Message) -> Option<CallError> {
    let len = request.encoded_len();
    (len > crate::MAX_MESSAGE_BYTES).then(|| CallError::Failed {
        call,
        code: tonic::Code::OutOfRange,
        message: format!(
            "Error, encoded message length too large: found {len} bytes, the limit is: {} bytes",
            crate::MAX_MESSAGE_BYTES
        ),
    })
}
