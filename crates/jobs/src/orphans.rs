//! Orphan collection: objects in the bucket the control plane never committed.

use std::collections::HashSet;

use crate::ctx::Ctx;
use crate::error::JobsError;

/// What one orphan pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct OrphanReport {
    /// Another agent held the `gc` lease; nothing was done.
    pub skipped: bool,
    /// Batch objects and segments of the group in the bucket.
    pub listed: u64,
    /// Keys of the orphans deleted.
    pub deleted: Vec<String>,
    /// Their bytes.
    pub bytes_reclaimed: u64,
    /// Unreferenced objects younger than `orphan_grace` (left alone).
    pub young: u64,
    /// Deletions that failed (retried next pass).
    pub failed: u64,
}

/// One orphan pass (the caller holds the lease).
pub(crate) async fn run(ctx: &Ctx) -> Result<OrphanReport, JobsError> {
    let mut report = OrphanReport::default();
    // The bucket first, the control plane second: an object listed here and committed
    // before `ListObjects` answers shows up as referenced (see the crate docs).
    let mut objects = ctx.bucket.list_batches().await?;
    objects.extend(ctx.bucket.list_segments(None).await?);
    report.listed = objects.len() as u64;
    let listing = ctx.cp.list_objects().await?;
    let known: HashSet<&str> = listing
        .referenced
        .iter()
        .map(String::as_str)
        .chain(listing.released.iter().map(|r| r.object_key.as_str()))
        .collect();
    let now_ms = ctx.clock.now_unix_nanos() / 1_000_000;
    let grace_ms = i64::try_from(ctx.opts.orphan_grace.as_millis()).unwrap_or(i64::MAX);
    for (key, meta) in objects {
        let text = key.to_string();
        if known.contains(text.as_str()) || key.group() != ctx.bucket.group() {
            continue;
        }
        let id_ms = i64::try_from(key.timestamp_ms()).unwrap_or(i64::MAX);
        let born_ms = id_ms.max(meta.last_modified.timestamp_millis());
        let age_ms = now_ms.saturating_sub(born_ms);
        if age_ms < grace_ms {
            report.young += 1;
            continue;
        }
        match ctx.bucket.delete(key.path()).await {
            Ok(()) => {
                ctx.metrics.deleted("orphan", meta.size);
                report.bytes_reclaimed += meta.size;
                tracing::info!(key = %text, bytes = meta.size, age_ms, "deleted orphan object (never committed)");
                report.deleted.push(text);
            }
            Err(e) if e.is_not_found() => {}
            Err(error) => {
                tracing::warn!(key = %text, %error, "cannot delete orphan object; retrying next pass");
                report.failed += 1;
            }
        }
    }
    Ok(report)
}
