//! The jobs handle: explicit passes (tests, operators) and the periodic loops.

use std::sync::Arc;
use std::time::Duration;

use infinistream_cp_client::ControlPlaneClient;
use infinistream_objstore::Bucket;
use infinistream_runtime::CancellationToken;
use infinistream_types::SharedClock;
use tokio::sync::Mutex;
use tracing::Instrument;

use crate::compaction::{self, CompactionReport, PreparedSegment, SwapOutcome};
use crate::ctx::{Ctx, JobsOptions};
use crate::error::JobsError;
use crate::lease::Leases;
use crate::metrics::JobsMetrics;
use crate::orphans::{self, OrphanReport};
use crate::retention::{self, RetentionReport};
use crate::schedules::{self, ScheduleReport};

/// What one pass of every job did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PassReport {
    /// Compaction (runs first, so the objects it frees can go in the same pass).
    pub compaction: CompactionReport,
    /// Retention.
    pub retention: RetentionReport,
    /// Orphan collection.
    pub orphans: OrphanReport,
}

/// The jobs role of one agent. Cheap to clone; every clone shares the same locks, so
/// a pass never overlaps another pass of the same job in this process.
#[derive(Debug, Clone)]
pub struct Jobs {
    ctx: Arc<Ctx>,
    retention_lock: Arc<Mutex<()>>,
    orphan_lock: Arc<Mutex<()>>,
    /// Held by a compaction pass; what it remembers between passes.
    compaction_lock: Arc<Mutex<compaction::Settled>>,
    schedule_lock: Arc<Mutex<()>>,
    /// The `schedules` lease, with a short TTL: a holder killed mid-pass delays the
    /// firings by at most that (its passes are short and release the lease).
    schedule_leases: Arc<Leases>,
}

impl Jobs {
    /// Jobs working as `holder` (the agent id) on the bucket and control plane given.
    pub fn new(
        cp: ControlPlaneClient,
        bucket: Bucket,
        clock: SharedClock,
        holder: impl Into<String>,
        opts: JobsOptions,
        metrics: JobsMetrics,
    ) -> Jobs {
        let leases = Leases {
            cp: cp.clone(),
            holder: holder.into(),
            ttl: opts.lease_ttl,
            metrics: metrics.clone(),
        };
        let schedule_leases = Arc::new(Leases {
            ttl: (opts.schedule_interval * 4).max(Duration::from_secs(1)),
            ..leases.clone()
        });
        Jobs {
            ctx: Arc::new(Ctx {
                cp,
                bucket,
                clock,
                opts,
                metrics,
                leases,
            }),
            retention_lock: Arc::default(),
            orphan_lock: Arc::default(),
            compaction_lock: Arc::default(),
            schedule_lock: Arc::default(),
            schedule_leases,
        }
    }

    /// The metrics.
    pub fn metrics(&self) -> &JobsMetrics {
        &self.ctx.metrics
    }

    /// The options.
    pub fn options(&self) -> &JobsOptions {
        &self.ctx.opts
    }

    /// Runs every job once, in order: compaction, retention, orphan collection.
    pub async fn run_once(&self) -> Result<PassReport, JobsError> {
        Ok(PassReport {
            compaction: self.compaction_pass().await?,
            retention: self.retention_pass().await?,
            orphans: self.orphan_pass().await?,
        })
    }

    /// One retention pass under the `retention` lease; logged once.
    pub async fn retention_pass(&self) -> Result<RetentionReport, JobsError> {
        let _running = self.retention_lock.lock().await;
        let ctx = &self.ctx;
        let result = async {
            if !ctx.leases.acquire("retention").await? {
                return Ok(RetentionReport {
                    skipped: true,
                    ..Default::default()
                });
            }
            let out = ctx.leases.hold("retention", retention::run(ctx)).await;
            ctx.leases.release("retention").await;
            out
        }
        .instrument(tracing::info_span!("job", job = "retention"))
        .await;
        ctx.metrics.pass("retention", result.is_ok());
        match &result {
            Ok(r) if r.skipped => {
                tracing::info!(
                    job = "retention",
                    "retention pass skipped: another agent holds the lease"
                )
            }
            Ok(r) => tracing::info!(
                job = "retention",
                expired_messages = r.expired_messages,
                objects_deleted = r.objects_deleted,
                bytes_reclaimed = r.bytes_reclaimed,
                already_gone = r.already_gone,
                waiting_for_grace = r.waiting,
                failed = r.failed,
                "retention pass done"
            ),
            Err(error) => tracing::warn!(job = "retention", %error, "retention pass failed"),
        }
        result
    }

    /// One schedules pass: when any message schedule is due, fires the due ones under
    /// the `schedules` lease. Quiet (debug) unless it fired or failed something.
    pub async fn schedule_pass(&self) -> Result<ScheduleReport, JobsError> {
        let _running = self.schedule_lock.lock().await;
        let ctx = &self.ctx;
        let leases = &self.schedule_leases;
        let result = async {
            // A read first: an idle group costs no lease writes.
            let due = ctx.cp.due_schedules(1).await?.backlog;
            ctx.metrics.schedule_backlog(due);
            if due == 0 {
                return Ok(ScheduleReport::default());
            }
            if !leases.acquire("schedules").await? {
                return Ok(ScheduleReport {
                    skipped: true,
                    ..Default::default()
                });
            }
            let out = leases.hold("schedules", schedules::run(ctx)).await;
            leases.release("schedules").await;
            out
        }
        .instrument(tracing::info_span!("job", job = "schedules"))
        .await;
        ctx.metrics.pass("schedules", result.is_ok());
        match &result {
            Ok(r) if r.fired > 0 || r.failed > 0 => tracing::debug!(
                job = "schedules",
                due = r.due,
                fired = r.fired,
                fenced = r.fenced,
                gone = r.gone,
                failed = r.failed,
                "schedules pass done"
            ),
            Ok(_) => {}
            Err(error) => tracing::warn!(job = "schedules", %error, "schedules pass failed"),
        }
        result
    }

    /// One orphan-collection pass under the `gc` lease; logged once (and each
    /// deleted orphan with its key).
    pub async fn orphan_pass(&self) -> Result<OrphanReport, JobsError> {
        let _running = self.orphan_lock.lock().await;
        let ctx = &self.ctx;
        let result = async {
            if !ctx.leases.acquire("gc").await? {
                return Ok(OrphanReport {
                    skipped: true,
                    ..Default::default()
                });
            }
            let out = ctx.leases.hold("gc", orphans::run(ctx)).await;
            ctx.leases.release("gc").await;
            out
        }
        .instrument(tracing::info_span!("job", job = "gc"))
        .await;
        ctx.metrics.pass("gc", result.is_ok());
        match &result {
            Ok(r) if r.skipped => {
                tracing::info!(
                    job = "gc",
                    "orphan pass skipped: another agent holds the lease"
                )
            }
            Ok(r) => tracing::info!(
                job = "gc",
                listed = r.listed,
                orphans_deleted = r.deleted.len(),
                bytes_reclaimed = r.bytes_reclaimed,
                within_grace = r.young,
                failed = r.failed,
                "orphan pass done"
            ),
            Err(error) => tracing::warn!(job = "gc", %error, "orphan pass failed"),
        }
        result
    }

    /// One compaction pass over every stream, each under its `compact/<stream>` lease;
    /// logged once. A stream whose compaction fails is logged and counted; the others
    /// go on.
    pub async fn compaction_pass(&self) -> Result<CompactionReport, JobsError> {
        let mut settled = self.compaction_lock.lock().await;
        let ctx = &self.ctx;
        let result = async {
            settled.begin();
            let listing = ctx.cp.list_streams("").await?;
            let mut report = CompactionReport::default();
            for (name, mark) in settled.worth_a_look(listing, &mut report) {
                report.streams += 1;
                match compaction::compact_stream(ctx, &name, &mut report).await {
                    Ok(true) => settled.settle(name, mark),
                    Ok(false) => settled.unsettle(&name),
                    Err(error) => {
                        settled.unsettle(&name);
                        report.failed += 1;
                        tracing::warn!(stream = %name, %error, "compaction of stream failed");
                    }
                }
            }
            Ok(report)
        }
        .instrument(tracing::info_span!("job", job = "compaction"))
        .await;
        ctx.metrics.pass("compaction", result.is_ok());
        match &result {
            Ok(r) => tracing::info!(
                job = "compaction",
                streams = r.streams,
                unchanged = r.unchanged,
                segments_written = r.segments_written,
                entries_replaced = r.entries_replaced,
                records = r.records,
                segment_bytes = r.segment_bytes,
                swaps_refused = r.swaps_refused,
                lease_conflicts = r.lease_conflicts,
                failed = r.failed,
                "compaction pass done"
            ),
            Err(error) => tracing::warn!(job = "compaction", %error, "compaction pass failed"),
        }
        result
    }

    /// Compaction step 1 for `stream`, without a lease: builds and uploads the segment
    /// for the first run worth compacting. For tests and tools; passes use leases.
    pub async fn prepare_compaction(
        &self,
        stream: &str,
    ) -> Result<Option<PreparedSegment>, JobsError> {
        compaction::prepare(&self.ctx, stream).await
    }

    /// Compaction step 2: swaps a prepared segment in (or deletes it when refused).
    pub async fn commit_compaction(
        &self,
        prepared: &PreparedSegment,
    ) -> Result<SwapOutcome, JobsError> {
        compaction::commit(&self.ctx, prepared).await
    }

    /// Runs the three jobs on their intervals until `shutdown`. A tick that finds the
    /// previous pass of the same job still running is skipped.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), std::convert::Infallible> {
        let o = &self.ctx.opts;
        tracing::info!(
            retention_interval_ms = o.retention_interval.as_millis() as u64,
            gc_interval_ms = o.orphan_interval.as_millis() as u64,
            compaction_interval_ms = o.compaction_interval.as_millis() as u64,
            schedule_interval_ms = o.schedule_interval.as_millis() as u64,
            orphan_grace_ms = o.orphan_grace.as_millis() as u64,
            release_grace_ms = o.release_grace.as_millis() as u64,
            "jobs role running"
        );
        let retention = every(o.retention_interval, &shutdown, || async {
            let _ = self.retention_pass().await;
        });
        let gc = every(o.orphan_interval, &shutdown, || async {
            let _ = self.orphan_pass().await;
        });
        let compaction = every(o.compaction_interval, &shutdown, || async {
            let _ = self.compaction_pass().await;
        });
        let schedules = every(o.schedule_interval, &shutdown, || async {
            let _ = self.schedule_pass().await;
        });
        tokio::join!(retention, gc, compaction, schedules);
        tracing::info!("jobs role stopped");
        Ok(())
    }
}

/// Calls `pass` every `period` (first after one period) until `shutdown`.
async fn every<F, Fut>(period: Duration, shutdown: &CancellationToken, mut pass: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = pass() => {}
        }
    }
}
