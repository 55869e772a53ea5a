//! JetStream API errors with nats-server's wire codes.
//!
//! Clients branch on `err_code` (async-nats maps 10059 to "stream not found", nats.py
//! raises `NotFoundError` on 404, KV treats 10071 as a failed CAS), so InfiniStream must
//! answer with exactly the codes and descriptions nats-server uses, never new ones. The
//! table in `error_codes.rs` is generated from nats-server's `server/errors.json` and
//! gives one constructor per entry, e.g. [`ApiError::stream_not_found`] or
//! [`ApiError::stream_wrong_last_sequence`]`(seq)`, with `{placeholder}`s substituted the
//! way nats-server does.

use serde::{Deserialize, Serialize};
use std::fmt;

#[path = "error_codes.rs"]
mod error_codes;

pub use error_codes::codes;

/// One entry of nats-server's error table: the HTTP-ish `code`, the JetStream
/// `err_code`, and the description template (may hold `{placeholder}`s).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorCode {
    /// nats-server's constant name, e.g. `JSStreamNotFoundErr`.
    pub name: &'static str,
    /// HTTP-like status (400, 404, 500, 503…).
    pub code: u16,
    /// JetStream error code (10000–10999).
    pub err_code: u16,
    /// Description template as in `errors.json`.
    pub description: &'static str,
}

/// The `error` object of a JetStream API response:
/// `{"code":404,"err_code":10059,"description":"stream not found"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    /// HTTP-like status.
    pub code: u16,
    /// JetStream error code; 0 (omitted) only for errors from very old servers.
    #[serde(default, skip_serializing_if = "is_zero_u16")]
    pub err_code: u16,
    /// Human-readable description, already substituted.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
}

fn is_zero_u16(v: &u16) -> bool {
    *v == 0
}

impl ApiError {
    /// An error with explicit codes: for rebuilding one received from elsewhere (the
    /// control plane's answer, a reply parsed by a client). New errors come from the
    /// table's constructors.
    pub fn new(code: u16, err_code: u16, description: impl Into<String>) -> Self {
        Self {
            code,
            err_code,
            description: description.into(),
        }
    }

    /// The error for a table entry without placeholders (its template is used as is).
    pub fn from_code(code: ErrorCode) -> Self {
        Self::new(code.code, code.err_code, code.description)
    }

    /// The error for a table entry, substituting each `(placeholder, value)` pair
    /// (placeholders written with their braces, e.g. `"{seq}"`).
    pub fn with_args(code: ErrorCode, args: &[(&str, String)]) -> Self {
        let mut description = code.description.to_owned();
        for (placeholder, value) in args {
            description = description.replace(placeholder, value);
        }
        Self::new(code.code, code.err_code, description)
    }

    /// `code`'s status and error code with a description of InfiniStream's own, for
    /// answers where InfiniStream has more to say than nats-server's fixed text (which
    /// agent runs a missing role, why the control plane is unavailable). Clients
    /// branch on the codes, which still come from the table.
    pub fn with_description(code: ErrorCode, description: impl Into<String>) -> Self {
        Self::new(code.code, code.err_code, description)
    }

    /// An internal failure while serving a request (an unexpected answer from the
    /// control plane, a config that does not encode): nats-server's general stream
    /// error, 500 / 10051, with the cause as the description.
    pub fn internal(err: impl fmt::Display) -> Self {
        Self::stream_general(err)
    }

    /// Whether this error carries `code`'s JetStream error code.
    pub fn is(&self, code: ErrorCode) -> bool {
        self.err_code == code.err_code
    }

    /// nats-server's answer when a stream config value is valid JetStream but its
    /// behaviour is not built in InfiniStream yet: the stream-config error (10052)
    /// naming the field, so clients show a clear reason instead of a silent no-op.
    pub fn stream_feature_unsupported(field: &str) -> Self {
        Self::stream_invalid_config(format_args!(
            "stream configuration `{field}` is not supported by InfiniStream yet"
        ))
    }

    /// Like [`ApiError::stream_feature_unsupported`] for consumer config fields
    /// (nats-server also reports consumer config problems with 10052 in places).
    pub fn consumer_feature_unsupported(field: &str) -> Self {
        Self::stream_invalid_config(format_args!(
            "consumer configuration `{field}` is not supported by InfiniStream yet"
        ))
    }
}

/// filestore's limit errors, which nats-server answers inside `JSStreamStoreFailedF`
/// (503 / 10077) when a stream with `discard: new` is full:
/// `ApiError::stream_store_failed(store::MAX_MSGS)`.
pub mod store {
    /// `ErrMaxMsgs`.
    pub const MAX_MSGS: &str = "maximum messages exceeded";
    /// `ErrMaxBytes`.
    pub const MAX_BYTES: &str = "maximum bytes exceeded";
    /// `ErrMaxMsgsPerSubject`.
    pub const MAX_MSGS_PER_SUBJECT: &str = "maximum messages per subject exceeded";
}

impl fmt::Display for ApiError {
    /// Same text as nats-server's `ApiError.Error()`: `description (err_code)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.description, self.err_code)
    }
}

impl std::error::Error for ApiError {}
