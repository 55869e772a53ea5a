//! proxy-consume role: stream reads, consumers and the zone cache (layer 3).
//!
//! Agents hold no stream data of their own: the control plane knows which object chunk
//! holds which sequences, the bucket holds the bytes. This crate turns the two into
//! reads that clients see as nats-server's:
//!
//! - [`reader`]: [`StreamReader`] — by sequence, last by subject, next matching a
//!   filter — with footers and chunks cached in memory and concurrent misses coalesced
//!   into one bucket GET;
//! - [`handler`]: [`ReadHandler`], the `STREAM.MSG.GET` and `DIRECT.GET` routes of the
//!   JetStream API (what KV clients use for `get`);
//! - [`zone`]: the zone cache under the reader — object ranges in memory and on disk,
//!   owned across a zone's agents on a rendezvous-hash ring and fetched from the owner
//!   over the peer port before the bucket;
//! - [`role`]: [`start`], the role's entry point.

mod cache;
pub mod consumer;
pub mod handler;
mod metrics;
pub mod reader;
pub mod role;
pub mod zone;

pub use consumer::{CommitWatch, ConsumerService, ControlPlaneWatch, TimerWatch};
pub use handler::ReadHandler;
pub use reader::{ReadError, ReaderMetrics, ReaderOptions, StoredMessage, StreamReader};
pub use role::{Fetcher, FetcherDeps, FetcherOptions, StartError, start};
