//! The proxy-produce role: JetStream publishes become batch objects, commits, PubAcks.
//!
//! - [`batcher`]: the agent's one publish buffer, its flushes and their ordering.
//! - [`intake`]: stream capture subscriptions and PubAck delivery.
//! - [`metrics`]: objects written, flush latency, failures.

pub mod batcher;
pub mod intake;
pub mod metrics;

pub use batcher::{
    AckSink, Batcher, BatcherConfig, CommitError, Committer, PendingRecord, PublishOutcome,
    SubmitError,
};
pub use intake::{BrokerAcks, Intake};
pub use metrics::GatewayMetrics;
