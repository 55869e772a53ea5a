//! The read path's cache and bucket counters, shared by the reader's tiers and the
//! zone cache under them.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::{Registry, Unit};

/// Cache and read counters of a [`StreamReader`]; cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct ReaderMetrics {
    hits: Family<CacheLabel, Counter>,
    misses: Family<CacheLabel, Counter>,
    gets: Family<CacheLabel, Counter>,
    bytes: Family<CacheLabel, Counter>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct CacheLabel {
    cache: &'static str,
}

/// The footer/index cache (`cache="footer"`).
pub const FOOTERS: &str = "footer";
/// The chunk/block cache (`cache="chunk"`).
pub const CHUNKS: &str = "chunk";

impl ReaderMetrics {
    /// Registers the counters under `fetcher_` in `registry`.
    pub fn register(&self, registry: &mut Registry) {
        let registry = registry.sub_registry_with_prefix("fetcher");
        registry.register(
            "cache_hits",
            "Reads served from the in-memory cache, by cache (footer, chunk)",
            self.hits.clone(),
        );
        registry.register(
            "cache_misses",
            "Reads that missed the in-memory cache, by cache (footer, chunk)",
            self.misses.clone(),
        );
        registry.register(
            "bucket_gets",
            "Ranged GETs sent to the bucket by the read path, by cache (footer, chunk)",
            self.gets.clone(),
        );
        registry.register_with_unit(
            "bucket_read",
            "Bytes read from the bucket by the read path, by cache (footer, chunk)",
            Unit::Bytes,
            self.bytes.clone(),
        );
    }

    /// Cache hits of `cache` ([`FOOTERS`] or [`CHUNKS`]).
    pub fn hits(&self, cache: &'static str) -> u64 {
        self.hits.get_or_create(&CacheLabel { cache }).get()
    }

    /// Cache misses of `cache`.
    pub fn misses(&self, cache: &'static str) -> u64 {
        self.misses.get_or_create(&CacheLabel { cache }).get()
    }

    /// Bucket GETs made for `cache`.
    pub fn bucket_gets(&self, cache: &'static str) -> u64 {
        self.gets.get_or_create(&CacheLabel { cache }).get()
    }

    /// Bytes read from the bucket for `cache`.
    pub fn bucket_bytes(&self, cache: &'static str) -> u64 {
        self.bytes.get_or_create(&CacheLabel { cache }).get()
    }

    pub(crate) fn hit(&self, cache: &'static str) {
        self.hits.get_or_create(&CacheLabel { cache }).inc();
    }

    pub(crate) fn miss(&self, cache: &'static str) {
        self.misses.get_or_create(&CacheLabel { cache }).inc();
    }

    pub(crate) fn got(&self, cache: &'static str, len: usize) {
        self.gets.get_or_create(&CacheLabel { cache }).inc();
        self.bytes
            .get_or_create(&CacheLabel { cache })
            .inc_by(len as u64);
    }
}
