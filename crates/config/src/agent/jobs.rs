//! Settings of the jobs role (`INFINISTREAM_JOBS_*`).

use std::time::Duration;

use super::RawAgentConfig;
use crate::error::{ConfigError, invalid};
use crate::values::{NumberOrString, parse_millis};

/// Settings of the jobs role (see docs/configuration.md, "Jobs").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobsSettings {
    /// How often retention runs.
    pub retention_interval: Duration,
    /// How often orphan collection lists the bucket.
    pub gc_interval: Duration,
    /// How often compaction looks at every stream.
    pub compaction_interval: Duration,
    /// Unreferenced objects younger than this are never deleted.
    pub orphan_grace: Duration,
    /// Released objects are deleted this long after their release at the earliest.
    pub release_grace: Duration,
    /// Fewest consecutive index entries worth one compacted segment.
    pub compaction_min_entries: usize,
    /// Largest compacted segment aimed for, in bytes.
    pub compaction_target_bytes: u64,
}

/// The proxy-produce flush deadline: a commit that has not succeeded this long after
/// its flush started is given up (the gateway's `BatcherConfig::flush_deadline`).
pub const FLUSH_DEADLINE: Duration = Duration::from_secs(4);

/// Smallest orphan grace accepted: 10 × [`FLUSH_DEADLINE`], so an upload whose commit
/// is merely slow is never taken for an orphan.
pub const MIN_ORPHAN_GRACE: Duration = Duration::from_secs(40);

impl RawAgentConfig {
    /// The jobs role's settings, defaults applied and bounds checked.
    pub(super) fn jobs_settings(&self) -> Result<JobsSettings, ConfigError> {
        const DAY_MS: u64 = 86_400_000;
        let millis = |setting: &'static str,
                      value: &Option<NumberOrString>,
                      default: u64,
                      min: u64,
                      max: u64|
         -> Result<Duration, ConfigError> {
            let ms = match value {
                Some(v) => parse_millis(setting, v)?,
                None => default,
            };
            if !(min..=max).contains(&ms) {
                return Err(invalid(
                    setting,
                    format!("must be between {min} and {max} ms, got {ms}"),
                ));
            }
            Ok(Duration::from_millis(ms))
        };
        let min_grace = MIN_ORPHAN_GRACE.as_millis() as u64;
        let orphan_grace = match &self.jobs_orphan_grace {
            Some(v) => {
                let ms = parse_millis("INFINISTREAM_JOBS_ORPHAN_GRACE", v)?;
                if ms < min_grace {
                    return Err(invalid(
                        "INFINISTREAM_JOBS_ORPHAN_GRACE",
                        format!(
                            "must be at least {min_grace} ms (10 × the {} s flush deadline, so a slow commit is never taken for an orphan), got {ms}",
                            FLUSH_DEADLINE.as_secs()
                        ),
                    ));
                }
                Duration::from_millis(ms)
            }
            None => Duration::from_secs(600),
        };
        let min_entries = self.jobs_compaction_min_entries.unwrap_or(8);
        if !(2..=10_000).contains(&min_entries) {
            return Err(invalid(
                "INFINISTREAM_JOBS_COMPACTION_MIN_ENTRIES",
                format!("must be between 2 and 10000, got {min_entries}"),
            ));
        }
        let target = self
            .jobs_compaction_target_bytes
            .unwrap_or(32 * 1024 * 1024);
        if !(1024 * 1024..=1024 * 1024 * 1024).contains(&target) {
            return Err(invalid(
                "INFINISTREAM_JOBS_COMPACTION_TARGET_BYTES",
                format!("must be between 1 MiB and 1 GiB (1048576..=1073741824), got {target}"),
            ));
        }
        Ok(JobsSettings {
            retention_interval: millis(
                "INFINISTREAM_JOBS_RETENTION_INTERVAL",
                &self.jobs_retention_interval,
                10_000,
                100,
                DAY_MS,
            )?,
            gc_interval: millis(
                "INFINISTREAM_JOBS_GC_INTERVAL",
                &self.jobs_gc_interval,
                300_000,
                100,
                DAY_MS,
            )?,
            compaction_interval: millis(
                "INFINISTREAM_JOBS_COMPACTION_INTERVAL",
                &self.jobs_compaction_interval,
                60_000,
                100,
                DAY_MS,
            )?,
            orphan_grace,
            release_grace: millis(
                "INFINISTREAM_JOBS_RELEASE_GRACE",
                &self.jobs_release_grace,
                60_000,
                0,
                DAY_MS,
            )?,
            compaction_min_entries: min_entries as usize,
            compaction_target_bytes: target,
        })
    }
}
