//! The jobs role's entry point.

use infinistream_cp_client::ControlPlaneClient;
use infinistream_objstore::Bucket;
use infinistream_runtime::RoleContext;

use crate::ctx::JobsOptions;
use crate::metrics::JobsMetrics;
use crate::runner::Jobs;

/// Starts the jobs role: its passes run under the supervisor, holding leases as the
/// agent; the returned handle triggers passes (tests) and reads the metrics.
pub fn start(
    ctx: &mut RoleContext<'_>,
    cp: ControlPlaneClient,
    bucket: Bucket,
    options: JobsOptions,
) -> Jobs {
    let jobs = Jobs::new(
        cp,
        bucket,
        ctx.clock.clone(),
        ctx.agent_id,
        options,
        JobsMetrics::new(),
    );
    ctx.metrics.register(|r| jobs.metrics().register(r));
    ctx.supervisor
        .spawn("jobs", jobs.clone().run(ctx.shutdown()));
    jobs
}
