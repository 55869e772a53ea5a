//! Errors of the wire codec.
//!
//! Every parse error is fatal for the connection (the byte stream can no longer be
//! framed), so each variant knows the `-ERR` text nats-server sends for it:
//! [`ProtocolError::wire_message`].

use thiserror::Error;

/// A frame that cannot be parsed. The connection should send
/// [`wire_message`](ProtocolError::wire_message) as `-ERR` and close.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ProtocolError {
    /// The operation name is not one this side of the protocol accepts.
    #[error("unknown protocol operation: {0:?}")]
    UnknownOperation(String),
    /// No line end within the control-line limit.
    #[error("maximum control line exceeded: limit {0}")]
    MaxControlLine(usize),
    /// A `PUB`/`HPUB` declared a payload larger than the limit.
    #[error("maximum payload exceeded: declared {size}, limit {limit}")]
    MaxPayload { size: usize, limit: usize },
    /// Wrong number or shape of arguments for an operation.
    #[error("invalid arguments for {op}: {args:?}")]
    BadArguments { op: &'static str, args: String },
    /// The payload was not followed by `\r\n` (declared size does not match the data).
    #[error("payload size mismatch for {op}: declared {size}")]
    SizeMismatch { op: &'static str, size: usize },
    /// The `CONNECT` or `INFO` JSON did not parse.
    #[error("invalid json in {op}: {reason}")]
    InvalidJson { op: &'static str, reason: String },
}

impl ProtocolError {
    /// The text nats-server puts inside `-ERR '...'` for this error.
    pub fn wire_message(&self) -> &'static str {
        match self {
            ProtocolError::MaxControlLine(_) => "maximum control line exceeded",
            ProtocolError::MaxPayload { .. } => "Maximum Payload Violation",
            ProtocolError::UnknownOperation(_)
            | ProtocolError::BadArguments { .. }
            | ProtocolError::SizeMismatch { .. }
            | ProtocolError::InvalidJson { .. } => "Unknown Protocol Operation",
        }
    }
}
