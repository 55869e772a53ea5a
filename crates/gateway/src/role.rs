//! The proxy-produce role's entry point: [`start`] wires the batcher to the bucket and
//! the control plane ([`CpCommitter`]) and captures the catalog's stream subjects into
//! it.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use infinistream_broker::Broker;
use infinistream_cp_client::{CallError, ControlPlaneClient};
use infinistream_jetstream::StreamCatalog;
use infinistream_objstore::Bucket;
use infinistream_proto::v1;
use infinistream_runtime::RoleContext;

use crate::batcher::{Batcher, BatcherConfig, CommitError, Committer};
use crate::intake::{BrokerAcks, Intake};
use crate::metrics::GatewayMetrics;

/// What the role uses of what the agent shares.
#[derive(Debug, Clone)]
pub struct GatewayDeps {
    pub broker: Broker,
    pub bucket: Bucket,
    pub cp: ControlPlaneClient,
    pub catalog: StreamCatalog,
    /// Where the role counts objects, flushes and failures (registered by the agent,
    /// which reports them whether or not it runs this role).
    pub metrics: GatewayMetrics,
}

/// Starts proxy-produce with batch window `window` and `buffer` bytes of publishes
/// buffered or in flight: the batcher (one writer task) and the intake that feeds it,
/// both under the supervisor.
pub fn start(ctx: &mut RoleContext<'_>, deps: GatewayDeps, window: Duration, buffer: usize) {
    let shutdown = ctx.shutdown();
    let acks = Arc::new(BrokerAcks::new(deps.broker.clone()));
    let (batcher, writer) = Batcher::start(
        BatcherConfig {
            window,
            max_buffered_bytes: buffer,
            agent_id: ctx.agent_id.to_owned(),
            ..BatcherConfig::default()
        },
        deps.bucket,
        Arc::new(CpCommitter { cp: deps.cp }),
        acks.clone(),
        ctx.clock.clone(),
        deps.metrics,
        shutdown.clone(),
    );
    let fast = acks.fast_batches();
    let intake = Intake::new(deps.broker, batcher, deps.catalog, acks, fast);
    ctx.supervisor.spawn("stream-intake", intake.run(shutdown));
    ctx.supervisor.spawn("publish-batcher", async move {
        writer
            .await
            .map_err(|e| format!("publish batcher crashed: {e}"))
    });
}

/// Commits through the control-plane client.
#[derive(Debug)]
pub struct CpCommitter {
    cp: ControlPlaneClient,
}

impl CpCommitter {
    pub fn new(cp: ControlPlaneClient) -> Self {
        CpCommitter { cp }
    }
}

#[async_trait]
impl Committer for CpCommitter {
    async fn commit(
        &self,
        request: v1::CommitBatchRequest,
    ) -> Result<v1::CommitBatchResponse, CommitError> {
        self.cp
            .commit_batch(request)
            .await
            .map_err(CommitError::from)
    }
}

/// A request the control plane refused as such (bad request, wrong key, wrong
/// state) is `Refused`: retrying it will not help. Anything else may have been
/// applied or not and is retried with the same batch id.
impl From<CallError> for CommitError {
    fn from(error: CallError) -> Self {
        let message = error.message().to_owned();
        if error.is_rejected() {
            CommitError::Refused(message)
        } else {
            CommitError::Unavailable(message)
        }
    }
}
