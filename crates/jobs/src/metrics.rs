//! Jobs metrics, exported under `jobs_` on `/metrics`.

use std::sync::Arc;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

type Labels = Vec<(&'static str, &'static str)>;

/// Counters of the jobs role. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct JobsMetrics {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    objects_deleted: Family<Labels, Counter>,
    bytes_reclaimed: Counter,
    segments_written: Counter,
    segment_bytes: Counter,
    entries_compacted: Counter,
    swaps_refused: Counter,
    lease_conflicts: Counter,
    messages_expired: Counter,
    schedules_fired: Counter,
    schedule_backlog: Gauge,
    passes: Family<Labels, Counter>,
    failures: Family<Labels, Counter>,
}

impl JobsMetrics {
    /// Fresh counters.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers everything under `jobs_`.
    pub fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("jobs");
        let i = &self.inner;
        r.register(
            "objects_deleted",
            "Objects deleted from the bucket, by reason (released, orphan, refused_segment)",
            i.objects_deleted.clone(),
        );
        r.register(
            "bytes_reclaimed",
            "Bytes of objects deleted from the bucket",
            i.bytes_reclaimed.clone(),
        );
        r.register(
            "segments_written",
            "Compacted segments swapped into the index",
            i.segments_written.clone(),
        );
        r.register(
            "segment_bytes",
            "Bytes of compacted segments swapped into the index",
            i.segment_bytes.clone(),
        );
        r.register(
            "entries_compacted",
            "Index entries replaced by compacted segments",
            i.entries_compacted.clone(),
        );
        r.register(
            "swaps_refused",
            "Index swaps the control plane refused because the entries changed",
            i.swaps_refused.clone(),
        );
        r.register(
            "lease_conflicts",
            "Jobs skipped because another agent holds their lease",
            i.lease_conflicts.clone(),
        );
        r.register(
            "messages_expired",
            "Messages removed by EnforceRetention (max_age, TTL)",
            i.messages_expired.clone(),
        );
        r.register(
            "schedules_fired",
            "Message schedule firings stored",
            i.schedules_fired.clone(),
        );
        r.register(
            "schedule_backlog",
            "Message schedules due and not yet fired, at the last schedules pass",
            i.schedule_backlog.clone(),
        );
        r.register("passes", "Job passes run, by job", i.passes.clone());
        r.register("failures", "Job passes failed, by job", i.failures.clone());
    }

    pub(crate) fn deleted(&self, reason: &'static str, bytes: u64) {
        self.inner
            .objects_deleted
            .get_or_create(&vec![("reason", reason)])
            .inc();
        self.inner.bytes_reclaimed.inc_by(bytes);
    }

    pub(crate) fn segment_written(&self, bytes: u64, entries: u64) {
        self.inner.segments_written.inc();
        self.inner.segment_bytes.inc_by(bytes);
        self.inner.entries_compacted.inc_by(entries);
    }

    pub(crate) fn swap_refused(&self) {
        self.inner.swaps_refused.inc();
    }

    pub(crate) fn lease_conflict(&self) {
        self.inner.lease_conflicts.inc();
    }

    pub(crate) fn expired(&self, n: u64) {
        self.inner.messages_expired.inc_by(n);
    }

    pub(crate) fn schedule_fired(&self) {
        self.inner.schedules_fired.inc();
    }

    pub(crate) fn schedule_backlog(&self, due: u64) {
        self.inner
            .schedule_backlog
            .set(i64::try_from(due).unwrap_or(i64::MAX));
    }

    /// Schedule firings stored by this agent.
    pub fn schedules_fired(&self) -> u64 {
        self.inner.schedules_fired.get()
    }

    pub(crate) fn pass(&self, job: &'static str, ok: bool) {
        self.inner.passes.get_or_create(&vec![("job", job)]).inc();
        if !ok {
            self.inner.failures.get_or_create(&vec![("job", job)]).inc();
        }
    }

    /// Objects deleted so far (all reasons).
    pub fn objects_deleted(&self) -> u64 {
        ["released", "orphan", "refused_segment"]
            .iter()
            .map(|r| {
                self.inner
                    .objects_deleted
                    .get_or_create(&vec![("reason", *r)])
                    .get()
            })
            .sum()
    }

    /// Bytes reclaimed so far.
    pub fn bytes_reclaimed(&self) -> u64 {
        self.inner.bytes_reclaimed.get()
    }

    /// Segments swapped in so far.
    pub fn segments_written(&self) -> u64 {
        self.inner.segments_written.get()
    }

    /// Lease conflicts so far.
    pub fn lease_conflicts(&self) -> u64 {
        self.inner.lease_conflicts.get()
    }
}
