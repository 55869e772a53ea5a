//! Sans-IO NATS client protocol and JetStream API types.
//!
//! Layer 0: no sockets, no async runtime. The codec parses whole frames from byte
//! buffers and encodes server operations into them; the `jsapi` module holds the
//! `$JS.API` request and response shapes and nats-server's error codes. Both are
//! tested on byte slices, fuzzed and benchmarked without a network.
//!
//! * [`client`]: client → server operations (`CONNECT`, `PUB`, `HPUB`, `SUB`, `UNSUB`,
//!   `PING`, `PONG`): a parser that only yields whole frames and enforces
//!   `max_control_line` / `max_payload` before buffering, plus an encoder (for clients,
//!   tests and fuzzing).
//! * [`server`]: server → client operations (`INFO`, `MSG`, `HMSG`, `PING`, `PONG`, `+OK`,
//!   `-ERR`): hot-path encoders and a parser (for tests and tools).
//! * [`subject`]: subject validation and wildcard matching.
//! * [`headers`]: the `NATS/1.0` header block (status lines, multi-value keys).
//! * [`sysapi`]: the system API (`$SYS.REQ.*`): subjects, request options, answer shapes.

pub mod client;
pub mod error;
pub mod headers;
pub mod info;
pub mod jsapi;
pub mod nuid;
pub mod server;
pub mod subject;
pub mod sysapi;

pub use client::{ClientOp, ClientParser, Limits};
pub use error::ProtocolError;
pub use headers::{HeaderError, HeaderMap};
pub use info::{Connect, Info};
pub use server::{ServerOp, ServerParser};

/// Default maximum control line (bytes), as nats-server's `MAX_CONTROL_LINE_SIZE`.
pub const DEFAULT_MAX_CONTROL_LINE: usize = 4096;
/// Default maximum payload (bytes), as nats-server's `MAX_PAYLOAD_SIZE`.
pub const DEFAULT_MAX_PAYLOAD: usize = 1024 * 1024;
