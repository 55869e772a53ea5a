//! Produce-path metrics: what the cost invariant (one object per window) and the ack
//! latency targets are checked against.
//!
//! The steps of a publish, each its own histogram, in order: `buffer_wait_seconds`
//! (oldest record buffered → flush start; about zero on an idle agent), `encode_seconds`
//! (sealing the buffer into an object), `upload_seconds` (the PUT),
//! `commit_wait_seconds` (waiting for the previous flush's commit: commits go in flush
//! order), `commit_seconds` (the CommitBatch call) and `answer_seconds` (handing every
//! answer of the flush to its connection). `flush_seconds` spans upload to commit.
//! `buffered_bytes` is a gauge of the bytes waiting for the next flush (accepted, not
//! yet sealed into an object).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::flush_policy::SealReason;

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
    buffer_wait_seconds: Histogram,
    encode_seconds: Histogram,
    upload_seconds: Histogram,
    flush_seconds: Histogram,
    commit_wait_seconds: Histogram,
    commit_seconds: Histogram,
    answer_seconds: Histogram,
    buffered_bytes: Gauge,
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
                buffer_wait_seconds: Histogram::new(exponential_buckets(0.0001, 2.0, 14)),
                encode_seconds: Histogram::new(exponential_buckets(0.000_025, 2.0, 16)),
                upload_seconds: Histogram::new(exponential_buckets(0.001, 2.0, 14)),
                flush_seconds: Histogram::new(exponential_buckets(0.001, 2.0, 14)),
                commit_wait_seconds: Histogram::new(exponential_buckets(0.0001, 2.0, 16)),
                commit_seconds: Histogram::new(exponential_buckets(0.0005, 2.0, 14)),
                answer_seconds: Histogram::new(exponential_buckets(0.000_005, 2.0, 16)),
                buffered_bytes: Gauge::default(),
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
            "Batches sealed, by reason (idle, window, size, shutdown)",
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
            "buffer_wait_seconds",
            "Time a flush's oldest record waited in the buffer before the flush started",
            i.buffer_wait_seconds.clone(),
        );
        r.register(
            "encode_seconds",
            "Time to encode a sealed buffer into a batch object",
            i.encode_seconds.clone(),
        );
        r.register(
            "upload_seconds",
            "Batch object upload latency",
            i.upload_seconds.clone(),
        );
        r.register(
            "flush_seconds",
            "Upload-to-commit latency of a flush (the upload, the wait for the previous commit, the commit)",
            i.flush_seconds.clone(),
        );
        r.register(
            "commit_wait_seconds",
            "Time a flush's commit waited for the previous flush's commit (commits go in flush order)",
            i.commit_wait_seconds.clone(),
        );
        r.register(
            "commit_seconds",
            "CommitBatch call latency of a flush (after the previous flush's commit finished)",
            i.commit_seconds.clone(),
        );
        r.register(
            "answer_seconds",
            "Time to hand every answer of a committed flush to its connection",
            i.answer_seconds.clone(),
        );
        r.register(
            "buffered_bytes",
            "Bytes of accepted publishes waiting for the next flush (not yet sealed into an object)",
            i.buffered_bytes.clone(),
        );
    }

    /// `bytes` more wait for the next flush.
    pub(crate) fn add_buffered(&self, bytes: u32) {
        self.inner.buffered_bytes.inc_by(i64::from(bytes));
    }

    /// The buffer was sealed (or dropped): nothing waits for the next flush.
    pub(crate) fn clear_buffered(&self) {
        self.inner.buffered_bytes.set(0);
    }

    /// Bytes waiting for the next flush (for tests and benchmarks).
    pub fn buffered_bytes(&self) -> i64 {
        self.inner.buffered_bytes.get()
    }

    pub(crate) fn record_seal(&self, reason: SealReason) {
        self.inner
            .seals
            .get_or_create(&vec![("reason", reason.as_str())])
            .inc();
    }

    pub(crate) fn record_buffer_wait(&self, took: Duration) {
        self.inner.buffer_wait_seconds.observe(took.as_secs_f64());
    }

    pub(crate) fn record_encode(&self, took: Duration) {
        self.inner.encode_seconds.observe(took.as_secs_f64());
    }

    pub(crate) fn record_commit_wait(&self, took: Duration) {
        self.inner.commit_wait_seconds.observe(took.as_secs_f64());
    }

    pub(crate) fn record_answer(&self, took: Duration) {
        self.inner.answer_seconds.observe(took.as_secs_f64());
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

    /// Batches sealed so far for `reason` (for tests and benchmarks).
    pub fn batches_sealed(&self, reason: SealReason) -> u64 {
        self.inner
            .seals
            .get_or_create(&vec![("reason", reason.as_str())])
            .get()
    }

    /// Batch objects uploaded so far (for tests and benchmarks).
    pub fn objects_written(&self) -> u64 {
        self.inner.objects.load(Ordering::Relaxed)
    }
}
