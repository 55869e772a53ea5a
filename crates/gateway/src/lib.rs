//! The proxy-produce role: JetStream publishes become batch objects, commits, PubAcks.
//!
//! - [`atomic`]: atomic batch publish (ADR-50), held until its commit.
//! - [`fast`]: fast-ingest batch publish (2.14), paced by flow acks after commits.
//! - [`batcher`]: the agent's one publish buffer, its flushes and their ordering.
//! - [`flush_policy`]: when the buffer is sealed (the window as a spacing).
//! - [`intake`]: stream capture subscriptions and PubAck delivery.
//! - [`metrics`]: objects written, flush latency, failures.
//! - [`role`]: [`start`], the role's entry point, and the commit adapter over the
//!   control-plane client.

pub mod atomic;
pub mod batcher;
pub mod fast;
pub mod flush_policy;
pub mod intake;
pub mod metrics;
pub mod role;

pub use batcher::{
    AckSink, Batcher, BatcherConfig, CommitError, Committer, PendingRecord, PublishOutcome,
    Refusal, SubmitError,
};
pub use flush_policy::SealReason;
pub use intake::{BrokerAcks, Intake};
pub use metrics::GatewayMetrics;
pub use role::{CpCommitter, GatewayDeps, start};
