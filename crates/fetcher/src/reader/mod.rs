//! Reading single messages of a stream: the control-plane index says where a sequence
//! lives, the bucket holds the bytes.
//!
//! A read is three steps, each cached so that reads of neighbouring sequences share
//! the work:
//! 1. `ReadIndex` (control plane) → the index entry holding the sequence: object key,
//!    chunk index, chunk positions per sequence, deleted sequences;
//! 2. the object's footer (batch) or index (compacted segment): one suffix-range GET of
//!    the object's tail, decoded and kept in a bounded LRU keyed by object key;
//! 3. the chunk (or segment block): one ranged GET, verified and decoded once, kept in an
//!    LRU bounded by bytes.
//!
//! Concurrent misses for the same footer or chunk are coalesced: the first caller
//! loads it, the others await the same cell, so a burst of KV gets against one fresh
//! object costs one GET per range. Deleted sequences are never returned: the index
//! marks them, and objects are immutable, so a cached chunk never goes stale — only
//! the index (always asked) decides what is live.

mod error;
mod objects;
mod queries;

use std::sync::Arc;

use bytes::Bytes;
use infinistream_cp_client::ControlPlaneClient;
use infinistream_objstore::Bucket;
use infinistream_segment::SUGGESTED_TAIL_LEN;
use prometheus_client::registry::Registry;

pub use crate::metrics::{CHUNKS, FOOTERS, ReaderMetrics};
use crate::zone::ZoneCache;
pub use error::ReadError;
use objects::{Data, Tier, Toc};

/// One stored message, as the read APIs return it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    /// Stream sequence.
    pub seq: u64,
    /// The subject it was published to.
    pub subject: String,
    /// The raw NATS header block, empty when none.
    pub headers: Bytes,
    /// The payload.
    pub payload: Bytes,
    /// Store time, unix nanoseconds.
    pub timestamp: i64,
}

/// Cache bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReaderOptions {
    /// Decoded footers / segment indexes kept.
    pub footer_entries: u64,
    /// Decoded chunk / block bytes kept.
    pub chunk_bytes: u64,
    /// First tail GET length for a footer.
    pub tail_len: u64,
}

impl Default for ReaderOptions {
    fn default() -> Self {
        Self {
            footer_entries: 4096,
            chunk_bytes: 256 * 1024 * 1024,
            tail_len: SUGGESTED_TAIL_LEN,
        }
    }
}

/// Reads stream messages by sequence and by subject. Cheap to clone.
#[derive(Debug, Clone)]
pub struct StreamReader {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    cp: ControlPlaneClient,
    zone: ZoneCache,
    tail_len: u64,
    tocs: Tier<String, Arc<Toc>>,
    data: Tier<(String, u32), Arc<Data>>,
    metrics: ReaderMetrics,
}

impl StreamReader {
    /// A reader over `bucket` using `cp`'s index, on its own (no zone ring, no disk).
    pub fn new(cp: ControlPlaneClient, bucket: Bucket, options: ReaderOptions) -> Self {
        Self::with_zone(cp, ZoneCache::local(bucket, 0), options)
    }

    /// A reader whose bucket reads go through `zone` (memory, the range's owner in
    /// the zone, disk, then the bucket).
    pub fn with_zone(cp: ControlPlaneClient, zone: ZoneCache, options: ReaderOptions) -> Self {
        let metrics = zone.reader_metrics().clone();
        Self {
            inner: Arc::new(Inner {
                cp,
                zone,
                tail_len: options
                    .tail_len
                    .max(infinistream_segment::TRAILER_LEN as u64),
                tocs: Tier::new(FOOTERS, options.footer_entries),
                data: Tier::new(CHUNKS, options.chunk_bytes),
                metrics,
            }),
        }
    }

    /// The control-plane client the reader asks.
    pub fn control_plane(&self) -> &ControlPlaneClient {
        &self.inner.cp
    }

    /// The reader's counters.
    pub fn metrics(&self) -> &ReaderMetrics {
        &self.inner.metrics
    }

    /// The zone cache under the reader.
    pub fn zone(&self) -> &ZoneCache {
        &self.inner.zone
    }

    /// Bytes of decoded chunks held in memory, and how many there are.
    pub fn cached_chunks(&self) -> (u64, usize) {
        let lru = self.inner.data.lru.lock();
        (lru.weight(), lru.len())
    }

    /// Registers the reader's counters (`fetcher_*`, zone cache `fetcher_zone_*`).
    pub fn register(&self, registry: &mut Registry) {
        self.inner.metrics.register(registry);
        self.inner.zone.metrics().register(registry);
    }
}

#[cfg(test)]
mod tests;
