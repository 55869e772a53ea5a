//! Job leases: a named work item is done by the agent holding its lease.
//!
//! Leases live in the control plane (`AcquireLease` / `RenewLease` / `ReleaseLease`,
//! a compare-and-swap on one key with a generation as fencing token). A lease expires
//! on its own when its holder dies, so a killed jobs agent blocks nothing for longer
//! than the TTL. Leases make work exclusive; they are not what makes it safe: the
//! index swap and the deletion rule are safe on their own (see the crate docs).

use std::future::Future;
use std::time::Duration;

use infinistream_cp_client::{CallError, ControlPlaneClient};

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
        let resp = self
            .cp
            .acquire_lease(name, &self.holder, self.ttl_ms())
            .await?;
        if !resp.acquired {
            self.metrics.lease_conflict();
            tracing::debug!(lease = name, holder = %resp.holder, "lease held by another agent; skipping");
        }
        Ok(resp.acquired)
    }

    /// Extends `name`; `Ok(false)` when it was lost.
    pub(crate) async fn renew(&self, name: &str) -> Result<bool, JobsError> {
        match self.cp.renew_lease(name, &self.holder, self.ttl_ms()).await {
            Ok(_) => Ok(true),
            Err(CallError::Fenced { .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Runs `work` while holding `name`: renews it every third of the TTL for as long
    /// as `work` runs, so a job longer than the TTL (a big segment build on a slow
    /// bucket) keeps its lease. If a renewal answers that the lease is gone, or
    /// renewals keep failing for a whole TTL, `work` is dropped (cancelled) and
    /// [`JobsError::LeaseLost`] returned: someone else may be doing the work now.
    /// Dropping is safe for every job: an abandoned upload is an orphan that the
    /// orphan collection deletes, and index changes are single atomic calls.
    pub(crate) async fn hold<T>(
        &self,
        name: &str,
        work: impl Future<Output = Result<T, JobsError>>,
    ) -> Result<T, JobsError> {
        let every = (self.ttl / 3).max(Duration::from_millis(1));
        let renewals = async {
            let mut renewed = tokio::time::Instant::now();
            let mut tick = tokio::time::interval_at(renewed + every, every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                match self.renew(name).await {
                    Ok(true) => renewed = tokio::time::Instant::now(),
                    Ok(false) => return JobsError::LeaseLost(name.to_owned()),
                    Err(error) if renewed.elapsed() >= self.ttl => {
                        tracing::warn!(lease = name, %error, "cannot renew lease for a whole TTL; giving the job up");
                        return JobsError::LeaseLost(name.to_owned());
                    }
                    Err(error) => {
                        tracing::warn!(lease = name, %error, "cannot renew lease; retrying")
                    }
                }
            }
        };
        tokio::select! {
            out = work => out,
            lost = renewals => {
                tracing::warn!(lease = name, "lease lost while the job ran; job abandoned");
                Err(lost)
            }
        }
    }

    /// Gives `name` back; failures are logged (the lease then simply expires).
    pub(crate) async fn release(&self, name: &str) {
        if let Err(error) = self.cp.release_lease(name, &self.holder).await {
            tracing::warn!(lease = name, %error, "cannot release lease; it will expire");
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

    use std::sync::Arc;
    use std::time::SystemTime;

    use infinistream_control_plane::store::memory::MemoryStore;
    use infinistream_control_plane::{ControlPlane, GroupKeys, Options};
    use infinistream_types::{MockClock, SharedClock};

    /// A control plane judging lease expiry by `clock`, and two holders of `ttl`.
    async fn two_holders(clock: &Arc<MockClock>, ttl: Duration) -> (ControlPlane, Leases, Leases) {
        let shared: SharedClock = clock.clone();
        let control_plane = ControlPlane::open_with(
            Arc::new(MemoryStore::new()),
            GroupKeys::new([("g", "k")]).expect("groups"),
            shared,
            Options {
                retention_interval: None,
                ..Options::default()
            },
        )
        .await
        .expect("control plane");
        let cp = control_plane.client("g", "k").expect("client");
        let holder = |name: &str| Leases {
            cp: cp.clone(),
            holder: name.to_owned(),
            ttl,
            metrics: JobsMetrics::new(),
        };
        (control_plane, holder("a"), holder("b"))
    }

    #[tokio::test]
    async fn a_job_longer_than_the_ttl_keeps_its_lease() {
        let clock = Arc::new(MockClock::new(SystemTime::now()));
        let ttl = Duration::from_millis(600);
        let (_cp, a, b) = two_holders(&clock, ttl).await;
        assert!(a.acquire("compact/S").await.expect("acquire"));
        // The job runs for 3 TTLs of the control plane's clock; a renewal is due every
        // TTL/3 of real time while each step takes TTL/6 of both.
        let work = async {
            for _ in 0..18 {
                clock.advance(ttl / 6);
                tokio::time::sleep(ttl / 6).await;
                assert!(
                    !b.acquire("compact/S").await.expect("acquire"),
                    "the lease expired under a running job"
                );
            }
            Ok::<_, JobsError>("done")
        };
        assert_eq!(a.hold("compact/S", work).await.expect("held"), "done");
    }

    #[tokio::test]
    async fn a_lost_lease_abandons_the_job() {
        let clock = Arc::new(MockClock::new(SystemTime::now()));
        let ttl = Duration::from_millis(30);
        let (_cp, a, b) = two_holders(&clock, ttl).await;
        assert!(a.acquire("gc").await.expect("acquire"));
        clock.advance(ttl * 2);
        assert!(b.acquire("gc").await.expect("b takes the expired lease"));
        let never = std::future::pending::<Result<(), JobsError>>();
        match a.hold("gc", never).await {
            Err(JobsError::LeaseLost(name)) => assert_eq!(name, "gc"),
            other => panic!("expected LeaseLost, got {other:?}"),
        }
    }
}
