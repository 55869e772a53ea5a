//! Errors of creating a client and of its transport, shared by the client and the
//! failover transport under it.

use infinistream_proto::v1;

use crate::auth::GroupKeysError;

/// A transport failure. A concrete type rather than `BoxError`: with `BoxError` as the
/// service error, futures of the generated clients are not provably `Send` across
/// `tokio::spawn` ("implementation of `From` is not general enough").
///
/// It carries an `Unavailable` status as its source, so a call that failed at the
/// transport (the replica in use is gone: the failover moves on) reaches the caller as
/// `Unavailable`, retryable like a replica's "no leader yet", rather than `Unknown`.
#[derive(Debug, thiserror::Error)]
#[error("control plane transport: {message}")]
pub struct TransportError {
    message: String,
    #[source]
    status: tonic::Status,
}

impl TransportError {
    pub(crate) fn new(message: String) -> Self {
        let status = tonic::Status::unavailable(format!("control plane unreachable: {message}"));
        TransportError { message, status }
    }
}

/// `error: cause: cause…`, so a refused connection says why.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        out.push_str(": ");
        out.push_str(&s.to_string());
        src = s.source();
    }
    out
}

/// Errors creating a client.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("invalid control plane url `{url}`: {reason}")]
    BadUrl { url: String, reason: String },
    #[error("cannot connect to the control plane at `{url}`: {reason}")]
    Connect { url: String, reason: String },
    #[error(transparent)]
    Auth(#[from] GroupKeysError),
    #[error(
        "control plane url `{url}` is https:// but no CA is configured to check it (INFINISTREAM_CP_TLS_CA)"
    )]
    HttpsWithoutTls { url: String },
    #[error("TLS to the control plane is configured but url `{url}` is http://: use https://")]
    TlsWithHttp { url: String },
}

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

    /// The gRPC status code the call ended with (`None` for an answer: a JetStream
    /// refusal, or a fence).
    pub fn code(&self) -> Option<tonic::Code> {
        match self {
            CallError::Unavailable { code, .. } | CallError::Failed { code, .. } => Some(*code),
            CallError::Refused { .. } | CallError::Fenced { .. } => None,
        }
    }

    /// Whether retrying the call later may succeed.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, CallError::Unavailable { .. })
    }

    /// Whether the control plane refused the request as such: invalid, not
    /// authenticated (wrong group key), not permitted, or not valid in the state it
    /// found. The same request will be refused again; a retry cannot help.
    pub fn is_rejected(&self) -> bool {
        matches!(
            self,
            CallError::Failed {
                code: tonic::Code::InvalidArgument
                    | tonic::Code::Unauthenticated
                    | tonic::Code::PermissionDenied
                    | tonic::Code::FailedPrecondition,
                ..
            }
        )
    }

    /// Whether the control plane does not know what the call named (e.g. an agent
    /// whose lease it dropped).
    pub fn is_not_found(&self) -> bool {
        matches!(
            self,
            CallError::Failed {
                code: tonic::Code::NotFound,
                ..
            }
        )
    }
}
