//! Retention: make time limits durable, then delete what the control plane released.

use std::collections::HashSet;

use crate::ctx::{Ctx, nanos};
use crate::error::JobsError;

/// What one retention pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RetentionReport {
    /// Another agent held the `retention` lease; nothing was done.
    pub skipped: bool,
    /// Messages `EnforceRetention` removed (max_age, TTL).
    pub expired_messages: u64,
    /// Released objects deleted from the bucket.
    pub objects_deleted: u64,
    /// Their bytes.
    pub bytes_reclaimed: u64,
    /// Released objects already gone from the bucket (forgotten without a delete).
    pub already_gone: u64,
    /// Released objects still within `release_grace`.
    pub waiting: u64,
    /// Deletions that failed (retried next pass).
    pub failed: u64,
}

/// One retention pass (the caller holds the lease).
pub(crate) async fn run(ctx: &Ctx) -> Result<RetentionReport, JobsError> {
    let mut report = RetentionReport {
        expired_messages: ctx.cp.enforce_retention().await?,
        ..RetentionReport::default()
    };
    ctx.metrics.expired(report.expired_messages);

    let listing = ctx.cp.list_objects().await?;
    let referenced: HashSet<&str> = listing.referenced.iter().map(String::as_str).collect();
    let now = ctx.clock.now_unix_nanos();
    let grace = nanos(ctx.opts.release_grace);
    let mut forget = Vec::new();
    for rel in &listing.released {
        let key = rel.object_key.as_str();
        if referenced.contains(key) {
            // Released after the reference list was read: next pass.
            continue;
        }
        if rel.released_unix_nanos.saturating_add(grace) > now {
            report.waiting += 1;
            continue;
        }
        let Some(path) = ctx.own_key(key) else {
            tracing::warn!(
                key,
                "released object is not a key of this group; forgetting it without deleting"
            );
            forget.push(key.to_owned());
            continue;
        };
        let size = match ctx.bucket.head(&path).await {
            Ok(meta) => Some(meta.size),
            Err(e) if e.is_not_found() => None,
            Err(error) => {
                tracing::warn!(key, %error, "cannot inspect released object; retrying next pass");
                report.failed += 1;
                continue;
            }
        };
        match size {
            None => report.already_gone += 1,
            Some(size) => match ctx.bucket.delete(&path).await {
                Ok(()) => {
                    ctx.metrics.deleted("released", size);
                    report.objects_deleted += 1;
                    report.bytes_reclaimed += size;
                    tracing::debug!(key, bytes = size, "deleted released object");
                }
                Err(e) if e.is_not_found() => report.already_gone += 1,
                Err(error) => {
                    tracing::warn!(key, %error, "cannot delete released object; retrying next pass");
                    report.failed += 1;
                    continue;
                }
            },
        }
        forget.push(key.to_owned());
    }
    for keys in forget.chunks(1000) {
        ctx.cp.forget_objects(keys.to_vec()).await?;
    }
    Ok(report)
}
