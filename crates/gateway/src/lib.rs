//! The proxy-produce role: JetStream publishes become batch objects, commits, PubAcks.
//!
//! - [`batcher`]: the agent's one publish buffer, its flushes and their ordering.
//! - [`metrics`]: objects written, flush latency, failures.

pub mod batcher;
pub mod metrics;

pub use batcher::{
    AckSink, Batcher, BatcherConfig, CommitError, Committer, JsError, PendingRecord,
    PublishOutcome, SubmitError,
};
pub use metrics::GatewayMetrics;
