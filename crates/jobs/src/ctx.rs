//! What every job shares: the options, the control plane, the bucket and the leases.

use std::time::Duration;

use infinistream_cp_client::ControlPlaneClient;
use infinistream_objstore::object_store::path::Path;
use infinistream_objstore::{Bucket, ObjectKey};
use infinistream_segment::SegmentOptions;
use infinistream_types::SharedClock;

use crate::lease::Leases;
use crate::metrics::JobsMetrics;

/// Settings of the jobs role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobsOptions {
    /// How often retention runs (EnforceRetention + deleting released objects).
    pub retention_interval: Duration,
    /// How often orphan collection lists the bucket.
    pub orphan_interval: Duration,
    /// How often compaction looks at every stream.
    pub compaction_interval: Duration,
    /// How often due message schedules are fired (the firing-time bound).
    pub schedule_interval: Duration,
    /// Unreferenced objects younger than this are never deleted.
    pub orphan_grace: Duration,
    /// Released objects are deleted this long after their release at the earliest.
    pub release_grace: Duration,
    /// Job lease time to live (renewed while a compaction runs).
    pub lease_ttl: Duration,
    /// Fewest consecutive index entries worth one compacted segment (≥ 2).
    pub compaction_min_entries: usize,
    /// Largest compacted segment aimed for, in bytes.
    pub compaction_target_bytes: u64,
    /// Segment block size and compression.
    pub segment: SegmentOptions,
}

impl Default for JobsOptions {
    fn default() -> Self {
        JobsOptions {
            retention_interval: Duration::from_secs(10),
            orphan_interval: Duration::from_secs(300),
            compaction_interval: Duration::from_secs(60),
            schedule_interval: Duration::from_millis(250),
            orphan_grace: Duration::from_secs(600),
            release_grace: Duration::from_secs(60),
            lease_ttl: Duration::from_secs(60),
            compaction_min_entries: 8,
            compaction_target_bytes: 32 * 1024 * 1024,
            segment: SegmentOptions::default(),
        }
    }
}

pub(crate) fn nanos(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

/// What the jobs share.
#[derive(Debug)]
pub(crate) struct Ctx {
    pub(crate) cp: ControlPlaneClient,
    pub(crate) bucket: Bucket,
    pub(crate) clock: SharedClock,
    pub(crate) opts: JobsOptions,
    pub(crate) metrics: JobsMetrics,
    pub(crate) leases: Leases,
}

impl Ctx {
    /// `key` as a path, if it is a batch or segment key of this group (the only keys
    /// jobs ever delete).
    pub(crate) fn own_key(&self, key: &str) -> Option<Path> {
        let path = Path::parse(key).ok()?;
        let parsed = ObjectKey::parse(&path).ok()?;
        (parsed.group() == self.bucket.group()).then_some(path)
    }
}
