//! Zone cache counters (`fetcher_zone_*`), next to the reader's `fetcher_bucket_*`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};

/// The memory tier (`tier="memory"`).
pub const MEMORY: &str = "memory";
/// The disk tier (`tier="disk"`).
pub const DISK: &str = "disk";
/// The zone's owner of a range, asked over the peer port (`tier="peer"`).
pub const PEER: &str = "peer";

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(crate) struct TierLabel {
    pub(crate) tier: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(crate) struct ResultLabel {
    pub(crate) result: &'static str,
}

/// Counters of a [`ZoneCache`](super::ZoneCache); cheap to clone (clones share).
#[derive(Debug, Clone, Default)]
pub struct ZoneMetrics {
    pub(crate) hits: Family<TierLabel, Counter>,
    pub(crate) misses: Family<TierLabel, Counter>,
    pub(crate) coalesced: Family<TierLabel, Counter>,
    pub(crate) peer_made: Family<ResultLabel, Counter>,
    pub(crate) peer_served: Counter,
    pub(crate) peer_served_bytes: Counter,
    pub(crate) fallbacks: Counter,
    pub(crate) disk_corrupt: Counter,
    pub(crate) disk_write_failures: Counter,
    pub(crate) ring_members: Gauge,
    pub(crate) memory_bytes: Gauge,
    pub(crate) disk_bytes: Gauge,
}

impl ZoneMetrics {
    /// Registers the counters under `fetcher_zone_` in `registry`.
    pub fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("fetcher_zone");
        r.register(
            "cache_hits",
            "Object ranges served by a tier of the zone cache (memory, disk, peer)",
            self.hits.clone(),
        );
        r.register(
            "cache_misses",
            "Object ranges a tier could not serve (memory, disk; peer = the owner failed and the bucket was read)",
            self.misses.clone(),
        );
        r.register(
            "coalesced_waits",
            "Range reads that waited for an identical read already in flight instead of issuing their own (tier local = disk/bucket, peer = owner)",
            self.coalesced.clone(),
        );
        r.register(
            "peer_requests_made",
            "GetRange requests sent to the zone's owners, by result (ok, error)",
            self.peer_made.clone(),
        );
        r.register(
            "peer_requests_served",
            "GetRange requests served to other agents of the zone",
            self.peer_served.clone(),
        );
        r.register_with_unit(
            "peer_served",
            "Bytes served to other agents of the zone",
            Unit::Bytes,
            self.peer_served_bytes.clone(),
        );
        r.register(
            "peer_fallbacks",
            "Range reads that went to the bucket because the owner was down or slow",
            self.fallbacks.clone(),
        );
        r.register(
            "disk_corrupt",
            "Disk-tier files dropped because they failed their checksum (torn or damaged)",
            self.disk_corrupt.clone(),
        );
        r.register(
            "disk_write_failures",
            "Ranges the disk tier could not write (a full or failing disk); they are read from the bucket instead",
            self.disk_write_failures.clone(),
        );
        r.register(
            "ring_members",
            "Proxy-consume agents in this agent's zone ring",
            self.ring_members.clone(),
        );
        r.register_with_unit(
            "memory",
            "Bytes of object ranges held in the memory tier",
            Unit::Bytes,
            self.memory_bytes.clone(),
        );
        r.register_with_unit(
            "disk",
            "Bytes of object ranges held in the disk tier",
            Unit::Bytes,
            self.disk_bytes.clone(),
        );
    }

    /// Ranges served by `tier` ([`MEMORY`], [`DISK`], [`PEER`]).
    pub fn hits(&self, tier: &'static str) -> u64 {
        self.hits.get_or_create(&TierLabel { tier }).get()
    }

    /// Ranges `tier` could not serve.
    pub fn misses(&self, tier: &'static str) -> u64 {
        self.misses.get_or_create(&TierLabel { tier }).get()
    }

    /// Reads that joined an identical read in flight (`"local"` or [`PEER`]).
    pub fn coalesced(&self, tier: &'static str) -> u64 {
        self.coalesced.get_or_create(&TierLabel { tier }).get()
    }

    /// GetRange requests made with `result` (`"ok"`, `"error"`).
    pub fn peer_requests_made(&self, result: &'static str) -> u64 {
        self.peer_made.get_or_create(&ResultLabel { result }).get()
    }

    /// GetRange requests served.
    pub fn peer_requests_served(&self) -> u64 {
        self.peer_served.get()
    }

    /// Reads that fell back to the bucket.
    pub fn fallbacks(&self) -> u64 {
        self.fallbacks.get()
    }

    /// Disk files dropped as corrupt.
    pub fn disk_corrupt(&self) -> u64 {
        self.disk_corrupt.get()
    }

    /// Ranges the disk tier failed to write.
    pub fn disk_write_failures(&self) -> u64 {
        self.disk_write_failures.get()
    }

    pub(crate) fn hit(&self, tier: &'static str) {
        self.hits.get_or_create(&TierLabel { tier }).inc();
    }

    pub(crate) fn miss(&self, tier: &'static str) {
        self.misses.get_or_create(&TierLabel { tier }).inc();
    }
}
