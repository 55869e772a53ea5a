//! The zone cache's tiers (`INFINISTREAM_CACHE_*`).

use std::path::{Path, PathBuf};

use super::RawAgentConfig;
use crate::error::{ConfigError, invalid};
use crate::values::parse_bytes;

/// Default bytes of the zone cache's memory tier.
pub const CACHE_MEMORY_DEFAULT: u64 = 256 * 1024 * 1024;
/// Smallest disk tier accepted (anything smaller holds too few chunks to help).
pub const CACHE_DISK_MIN: u64 = 16 * 1024 * 1024;

/// The zone cache's validated tiers.
pub(super) struct CacheSettings {
    pub(super) memory_bytes: u64,
    pub(super) disk_bytes: u64,
    pub(super) dir: PathBuf,
}

impl RawAgentConfig {
    /// The cache tiers, defaults applied (the disk tier under `data_dir` unless set).
    pub(super) fn cache_settings(&self, data_dir: &Path) -> Result<CacheSettings, ConfigError> {
        let cache_memory_bytes = match &self.cache_memory_bytes {
            Some(v) => parse_bytes("INFINISTREAM_CACHE_MEMORY_BYTES", v)?,
            None => CACHE_MEMORY_DEFAULT,
        };
        let cache_disk_bytes = match &self.cache_disk_bytes {
            Some(v) => parse_bytes("INFINISTREAM_CACHE_DISK_BYTES", v)?,
            None => 0,
        };
        if cache_disk_bytes != 0 && cache_disk_bytes < CACHE_DISK_MIN {
            return Err(invalid(
                "INFINISTREAM_CACHE_DISK_BYTES",
                format!("must be 0 (no disk tier) or at least 16MiB, got {cache_disk_bytes}"),
            ));
        }
        let cache_dir = self
            .cache_dir
            .clone()
            .unwrap_or_else(|| data_dir.join("cache"));
        if cache_dir.as_os_str().is_empty() {
            return Err(invalid("INFINISTREAM_CACHE_DIR", "must not be empty"));
        }
        Ok(CacheSettings {
            memory_bytes: cache_memory_bytes,
            disk_bytes: cache_disk_bytes,
            dir: cache_dir,
        })
    }
}
