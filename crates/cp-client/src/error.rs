//! Errors of creating a client and of its transport, shared by the client and the
//! failover transport under it.

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
