//! Produce-path metrics: what the cost invariant (one object per window) and the ack
//! latency targets are checked against.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

type Labels = Vec<(&'static str, &'static str)>;

/// Counters and histograms of the produce path. Cheap to clone.
#[derive(Debug, Clone)]
pub struct GatewayMetrics {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    seals: Family<Labels, Counter>,
    objects_written: Counter,
    object_bytes: Counter,
    records_committed: Counter,
    flush_failures: Family<Labels, Counter>,
    upload_seconds: Histogram,
    flush_seconds: Histogram,
    commit_seconds: Histogram,
    objects: AtomicU64,
}

impl Default for GatewayMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl GatewayMetrics {
    pub fn new() -> Self {
        GatewayMetrics {
            inner: Arc::new(Inner {
                seals: Family::default(),
                objects_written: Counter::default(),
                object_bytes: Counter::default(),
                records_committed: Counter::default(),
                flush_failures: Family::default(),
                upload_seconds: Histogram::new(exponential_buckets(0.001, 2.0, 14)),
                flush_seconds: Histogram::new(exponential_buckets(0.001, 2.0, 14)),
                commit_seconds: Histogram::new(exponential_buckets(0.0005, 2.0, 14)),
                objects: AtomicU64::new(0),
            }),
        }
    }

    /// Registers everything under `gateway_`.
    pub fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("gateway");
        let i = &self.inner;
        r.register(
            "batches_sealed",
            "Batches sealed, by reason (window, size, shutdown)",
            i.seals.clone(),
        );
        r.register(
            "objects_written",
            "Batch objects uploaded",
            i.objects_written.clone(),
        );
        r.register(
            "object_bytes",
            "Bytes of batch objects uploaded",
            i.object_bytes.clone(),
        );
        r.register(
            "records_committed",
            "Records in committed flushes",
            i.records_committed.clone(),
        );
        r.register(
            "flush_failures",
            "Flushes that failed, by stage",
            i.flush_failures.clone(),
        );
        r.register(
            "upload_seconds",
            "Batch object upload latency",
            i.upload_seconds.clone(),
        );
        r.register(
            "flush_seconds",
            "Seal-to-commit latency of a flush",
            i.flush_seconds.clone(),
        );
        r.register(
            "commit_seconds",
            "CommitBatch call latency of a flush (after the previous flush's commit finished)",
            i.commit_seconds.clone(),
        );
    }

    pub(crate) fn record_seal(&self, reason: &'static str) {
        self.inner
            .seals
            .get_or_create(&vec![("reason", reason)])
            .inc();
    }

    pub(crate) fn record_upload(&self, bytes: usize, took: Duration) {
        self.inner.objects_written.inc();
        self.inner.objects.fetch_add(1, Ordering::Relaxed);
        self.inner.object_bytes.inc_by(bytes as u64);
        self.inner.upload_seconds.observe(took.as_secs_f64());
    }

    pub(crate) fn record_commit(&self, records: usize, took: Duration) {
        self.inner.records_committed.inc_by(records as u64);
        self.inner.flush_seconds.observe(took.as_secs_f64());
    }

    pub(crate) fn record_commit_call(&self, took: Duration) {
        self.inner.commit_seconds.observe(took.as_secs_f64());
    }

    pub(crate) fn flush_failed(&self, stage: &'static str) {
        self.inner
            .flush_failures
            .get_or_create(&vec![("stage", stage)])
            .inc();
    }

    /// Batch objects uploaded so far (for tests and benchmarks).
    pub fn objects_written(&self) -> u64 {
        self.inner.objects.load(Ordering::Relaxed)
    }
}
