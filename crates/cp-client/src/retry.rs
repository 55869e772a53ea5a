//! Riding out a control-plane leader change on a request path.
//!
//! While the control plane changes leader (a follower deposing a dead leader, a new
//! leader loading state) a call answers `Unavailable`, or fails at the transport when
//! the replica in use is the one that died (the client then moves to the next
//! replica). That lasts a fraction of a second; a JetStream client waits seconds for
//! its answer. So a request path retries such calls for a bounded time, well inside
//! the clients' default timeouts (5 s for async-nats, nats.go, nats.py and nats.js),
//! instead of answering `503` at once. Only the gRPC status `Unavailable` is retried
//! (not the other codes a [`CallError::Unavailable`] stands for, such as a deadline
//! passed): every other answer, including a JetStream refusal, is final.
//!
//! Retried calls must be safe to repeat: the control plane makes stream and consumer
//! creates idempotent for an identical config, reads are reads, and a commit is
//! replayed with its batch id.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use crate::CallError;

/// How long a request path keeps retrying an unavailable control plane by default.
pub const LEADER_CHANGE_BUDGET: Duration = Duration::from_secs(3);

/// First pause between attempts; doubled up to [`MAX_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_millis(25);
const MAX_PAUSE: Duration = Duration::from_millis(400);

/// Runs `call` until it returns anything but `Unavailable`, or `budget` has passed
/// (then the last `Unavailable` is returned).
pub async fn retry_unavailable<T, F, Fut>(budget: Duration, mut call: F) -> Result<T, CallError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, CallError>>,
{
    let deadline = Instant::now() + budget;
    let mut pause = FIRST_PAUSE;
    let mut attempt = 1u32;
    loop {
        match call().await {
            Err(error) if error.code() == Some(tonic::Code::Unavailable) => {
                if Instant::now() + pause >= deadline {
                    return Err(error);
                }
                tracing::debug!(attempt, error = %error.message(), "control plane unavailable; retrying");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(MAX_PAUSE);
                attempt += 1;
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    fn failed(status: tonic::Status) -> CallError {
        CallError::from_status("ReadIndex", &status)
    }

    #[tokio::test(start_paused = true)]
    async fn unavailable_is_retried_until_an_answer() {
        let calls = AtomicU32::new(0);
        let result = retry_unavailable(LEADER_CHANGE_BUDGET, || async {
            match calls.fetch_add(1, Ordering::SeqCst) {
                0..=2 => Err(failed(tonic::Status::unavailable("no leader"))),
                _ => Ok(7),
            }
        })
        .await;
        assert_eq!(result.expect("answered"), 7);
        assert_eq!(calls.load(Ordering::SeqCst), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn other_errors_are_final() {
        let calls = AtomicU32::new(0);
        let result: Result<(), _> = retry_unavailable(LEADER_CHANGE_BUDGET, || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(failed(tonic::Status::invalid_argument("bad")))
        })
        .await;
        assert_eq!(
            result.expect_err("refused").code(),
            Some(tonic::Code::InvalidArgument)
        );
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn the_budget_bounds_the_retries() {
        let started = Instant::now();
        let result: Result<(), _> = retry_unavailable(Duration::from_secs(1), || async {
            Err(failed(tonic::Status::unavailable("no leader")))
        })
        .await;
        assert_eq!(
            result.expect_err("gave up").code(),
            Some(tonic::Code::Unavailable)
        );
        assert!(started.elapsed() <= Duration::from_secs(1));
    }
}
