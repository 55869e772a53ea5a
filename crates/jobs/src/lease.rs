//! Job leases: a named work item is done by the agent holding its lease.
//!
//! Leases live in the control plane (`AcquireLease` / `RenewLease` / `ReleaseLease`,
//! a compare-and-swap on one key with a generation as fencing token). A lease expires
//! on its own when its holder dies, so a killed jobs agent blocks nothing for longer
//! than the TTL. Leases make work exclusive; they are not what makes it safe: the
//! index swap and the deletion rule are safe on their own (see the crate docs).

use std::time::Duration;

use infinistream_control_plane::ControlPlaneClient;
use infinistream_proto::v1;

use crate::error::JobsError;
use crate::metrics::JobsMetrics;

/// Longest lease name the control plane accepts.
const MAX_NAME: usize = 255;

/// The lease name of `job` on `item` (`compact/<stream>`); long names are shortened
/// with a hash so they stay within the control plane's limit and stay distinct.
pub(crate) fn lease_name(job: &str, item: &str) -> String {
    let name = format!("{job}/{item}");
    if name.len() <= MAX_NAME {
        return name;
    }
    // FNV-1a: stable across processes and versions (unlike std's hasher).
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in item.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    let mut cut = MAX_NAME - job.len() - 1 - 17;
    while !item.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{job}/{}#{h:016x}", &item[..cut])
}

/// Acquires, renews and releases leases as one holder.
#[derive(Debug, Clone)]
pub(crate) struct Leases {
    pub(crate) cp: ControlPlaneClient,
    pub(crate) holder: String,
    pub(crate) ttl: Duration,
    pub(crate) metrics: JobsMetrics,
}

impl Leases {
    fn ttl_ms(&self) -> u64 {
        u64::try_from(self.ttl.as_millis())
            .unwrap_or(u64::MAX)
            .max(1)
    }

    /// Takes `name`; `Ok(false)` (and a conflict counted) when someone else holds it.
    pub(crate) async fn acquire(&self, name: &str) -> Result<bool, JobsError> {
        let mut jobs = self.cp.jobs.clone();
        let resp = jobs
            .acquire_lease(v1::AcquireLeaseRequest {
                name: name.to_owned(),
                holder: self.holder.clone(),
                ttl_ms: self.ttl_ms(),
            })
            .await
            .map_err(|s| JobsError::cp("AcquireLease", &s))?
            .into_inner();
        if !resp.acquired {
            self.metrics.lease_conflict();
            tracing::debug!(lease = name, holder = %resp.holder, "lease held by another agent; skipping");
        }
        Ok(resp.acquired)
    }

    /// Extends `name`; `Ok(false)` when it was lost.
    pub(crate) async fn renew(&self, name: &str) -> Result<bool, JobsError> {
        let mut jobs = self.cp.jobs.clone();
        let resp = jobs
            .renew_lease(v1::RenewLeaseRequest {
                name: name.to_owned(),
                holder: self.holder.clone(),
                ttl_ms: self.ttl_ms(),
            })
            .await
            .map_err(|s| JobsError::cp("RenewLease", &s))?
            .into_inner();
        Ok(resp.acquired)
    }

    /// Gives `name` back; failures are logged (the lease then simply expires).
    pub(crate) async fn release(&self, name: &str) {
        let mut jobs = self.cp.jobs.clone();
        if let Err(status) = jobs
            .release_lease(v1::ReleaseLeaseRequest {
                name: name.to_owned(),
                holder: self.holder.clone(),
            })
            .await
        {
            tracing::warn!(lease = name, error = %status.message(), "cannot release lease; it will expire");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_are_kept() {
        assert_eq!(lease_name("compact", "ORDERS"), "compact/ORDERS");
    }

    #[test]
    fn long_names_fit_and_stay_distinct() {
        let a = "a".repeat(300);
        let mut b = a.clone();
        b.push('b');
        let (na, nb) = (lease_name("compact", &a), lease_name("compact", &b));
        assert!(na.len() <= MAX_NAME && nb.len() <= MAX_NAME);
        assert_ne!(na, nb);
        assert!(na.starts_with("compact/aaa"));
    }
}
