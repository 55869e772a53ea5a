//! The control-plane client (layer 1): what agents and role crates link to talk to
//! the control plane, without linking the server (its stores, redb, etcd-client).
//!
//! - [`ControlPlaneClient`]: the gRPC clients of every control-plane service,
//!   authenticated as one group, over a socket ([`ControlPlaneClient::connect`], with
//!   failover when given several replicas) or in-process
//!   ([`ControlPlaneClient::in_process`], the single-process default).
//! - Typed calls ([`calls`]): one method per request (`create_stream`, `commit_batch`,
//!   `claim`, `acquire_lease`…) failing with one [`CallError`], the only way in: the
//!   tonic stubs under them are private (the control plane's own tests reach them
//!   through the `raw-stubs` feature, which `cargo xtask check-deps` allows nowhere
//!   else).
//! - [`local`]: the direct path to a control plane in this process, which the typed
//!   calls take when one was handed over (no encoding; same answers and errors).
//! - [`retry`]: riding out a leader change on a request path (bounded retries of
//!   `Unavailable`).
//! - [`watch_client`]: `WatchStreams` as a stream that survives leader changes, and
//!   shared by all of an agent's listeners ([`SharedWatch`]).
//! - [`auth`]: group keys, the client interceptor that sends them and the server
//!   interceptor that checks them — agents use both on the peer port too.
//! - [`tls`]: TLS settings of the internal links (control plane and peer port).

pub mod auth;
pub mod calls;
pub mod client;
mod error;
mod failover;
pub mod local;
pub mod retry;
pub mod tls;
pub mod watch_client;

pub use auth::{ClientAuth, GroupKeys, GroupKeysError, ServerAuth};
pub use calls::CallError;
pub use client::{ClientError, ControlPlaneClient, TransportError};
pub use local::LocalCalls;
pub use watch_client::{SharedWatch, StreamWatch, WatchSubscription, Watched};

/// Largest gRPC message accepted or sent (a CommitBatch of a 4 MiB flush of tiny
/// messages carries tens of thousands of record metadata).
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;
