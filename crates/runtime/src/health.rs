//! Readiness: what a process still lacks before it can do its work, for `/readyz`.
//!
//! Liveness (`/healthz`) only says the process runs; readiness says it can serve. A
//! process names its checks up front (each starts not ready, with a reason) and flips
//! them as its dependencies come and go. A check can also be ready for a while only —
//! a lease: it turns not ready by itself when nobody renews it in time, which catches a
//! dependency that stops answering without ever failing a call.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// Shared readiness state; clones see the same checks.
#[derive(Clone, Default)]
pub struct Readiness {
    checks: Arc<Mutex<Vec<Check>>>,
}

impl fmt::Debug for Readiness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Readiness")
            .field("status", &self.status())
            .finish()
    }
}

struct Check {
    name: &'static str,
    state: State,
}

enum State {
    NotReady(String),
    Ready,
    /// Ready until `until`; then not ready, naming the lease and the last failure.
    Leased {
        until: Instant,
        ttl: Duration,
        last_error: Option<String>,
    },
}

impl Readiness {
    /// No checks yet: ready.
    pub fn new() -> Self {
        Self::default()
    }

    /// Check `name` (added if new) is not ready because of `reason`.
    pub fn not_ready(&self, name: &'static str, reason: impl Into<String>) {
        self.set(name, State::NotReady(reason.into()));
    }

    /// Check `name` is ready.
    pub fn ready(&self, name: &'static str) {
        self.set(name, State::Ready);
    }

    /// Check `name` is ready for `ttl` from now unless renewed again.
    pub fn ready_for(&self, name: &'static str, ttl: Duration) {
        self.set(
            name,
            State::Leased {
                until: Instant::now() + ttl,
                ttl,
                last_error: None,
            },
        );
    }

    /// A renewal of leased check `name` failed: remembered for the message once the
    /// lease runs out. A check that is not leased is unchanged.
    pub fn renewal_failed(&self, name: &'static str, error: impl Into<String>) {
        let mut checks = self.checks.lock();
        if let Some(Check {
            state: State::Leased { last_error, .. },
            ..
        }) = checks.iter_mut().find(|c| c.name == name)
        {
            *last_error = Some(error.into());
        }
    }

    /// `Ok` when every check is ready, else every reason, `name: reason; …`.
    pub fn status(&self) -> Result<(), String> {
        self.status_at(Instant::now())
    }

    fn status_at(&self, now: Instant) -> Result<(), String> {
        let checks = self.checks.lock();
        let reasons: Vec<String> = checks
            .iter()
            .filter_map(|check| match &check.state {
                State::Ready => None,
                State::Leased { until, .. } if now < *until => None,
                State::Leased {
                    ttl, last_error, ..
                } => Some(format!(
                    "{}: not renewed for longer than its lease ({ttl:?}): {}",
                    check.name,
                    last_error.as_deref().unwrap_or("no answer")
                )),
                State::NotReady(reason) => Some(format!("{}: {reason}", check.name)),
            })
            .collect();
        if reasons.is_empty() {
            Ok(())
        } else {
            Err(reasons.join("; "))
        }
    }

    fn set(&self, name: &'static str, state: State) {
        let mut checks = self.checks.lock();
        match checks.iter_mut().find(|c| c.name == name) {
            Some(check) => check.state = state,
            None => checks.push(Check { name, state }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_when_every_check_is() {
        let readiness = Readiness::new();
        assert_eq!(readiness.status(), Ok(()));
        readiness.not_ready("control plane", "not reached yet");
        readiness.not_ready("bucket", "not reached yet");
        assert_eq!(
            readiness.status(),
            Err("control plane: not reached yet; bucket: not reached yet".to_owned())
        );
        readiness.ready("control plane");
        readiness.not_ready("bucket", "connection refused");
        assert_eq!(
            readiness.status(),
            Err("bucket: connection refused".to_owned())
        );
        readiness.ready("bucket");
        assert_eq!(readiness.status(), Ok(()));
    }

    #[test]
    fn a_lease_not_renewed_in_time_turns_not_ready() {
        let readiness = Readiness::new();
        let ttl = Duration::from_secs(10);
        readiness.ready_for("control plane", ttl);
        let now = Instant::now();
        assert_eq!(readiness.status_at(now), Ok(()));
        readiness.renewal_failed("control plane", "connection refused");
        assert_eq!(
            readiness.status_at(now),
            Ok(()),
            "a failed renewal within the lease changes nothing"
        );
        assert_eq!(
            readiness.status_at(now + ttl + Duration::from_millis(1)),
            Err(
                "control plane: not renewed for longer than its lease (10s): connection refused"
                    .to_owned()
            )
        );
        readiness.ready_for("control plane", ttl);
        assert_eq!(readiness.status_at(Instant::now()), Ok(()));
    }
}
