//! The jobs role's wiring: configuration → [`infinistream_jobs::Jobs`].

use infinistream_config::AgentConfig;
use infinistream_cp_client::ControlPlaneClient;
use infinistream_jobs::{Jobs, JobsMetrics, JobsOptions};
use infinistream_objstore::Bucket;
use infinistream_types::SharedClock;

/// The jobs of this agent, holding leases as `agent_id`.
pub(crate) fn build(
    config: &AgentConfig,
    cp: ControlPlaneClient,
    bucket: Bucket,
    clock: SharedClock,
    agent_id: &str,
) -> Jobs {
    let s = &config.jobs;
    let options = JobsOptions {
        retention_interval: s.retention_interval,
        orphan_interval: s.gc_interval,
        compaction_interval: s.compaction_interval,
        orphan_grace: s.orphan_grace,
        release_grace: s.release_grace,
        compaction_min_entries: s.compaction_min_entries,
        compaction_target_bytes: s.compaction_target_bytes,
        ..JobsOptions::default()
    };
    Jobs::new(cp, bucket, clock, agent_id, options, JobsMetrics::new())
}
