//! Start-up that waits instead of crash-looping, and `/readyz`.
//!
//! An agent started before its control plane or its bucket answers (a fresh
//! `helm install` starts everything at once) retries each with capped exponential
//! backoff — 100 ms doubling to 5 s, one WARN line per retry naming the attempt and
//! the error — until it connects, registers and serves. Only a refusal (a bad URL, a
//! wrong group key) stops it. Meanwhile the monitoring port already answers:
//! `/healthz` (the process is alive) with 200, `/readyz` with 503 and what is missing,
//! in nats-server's health JSON (`{"status":"unavailable","error":"…"}`).
//!
//! `/readyz` answers 200 once the agent is registered and can commit: the control
//! plane and the bucket answered, the roles run. It drops back to 503 when the control
//! plane has not renewed the agent's lease for longer than the lease — by then the
//! registry no longer lists the agent and its commits fail — and recovers with the
//! next renewal. The bucket is checked at start-up only; later bucket failures show as
//! failed flushes (`gateway_flush_failures_total`), not as unreadiness.

use std::future::Future;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::get;
use infinistream_runtime::CancellationToken;
use infinistream_runtime::health::Readiness;

/// Readiness check: the control plane answers (and renews the agent's lease).
pub(crate) const CONTROL_PLANE: &str = "control plane";
/// Readiness check: the bucket answered its start-up probe.
pub(crate) const BUCKET: &str = "bucket";
/// Readiness check: registered, listening, roles started.
pub(crate) const REGISTRATION: &str = "registration";

/// First wait between attempts.
const BACKOFF_FIRST: Duration = Duration::from_millis(100);
/// Longest wait between attempts.
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// The checks of an agent that has not reached anything yet.
pub(crate) fn starting() -> Readiness {
    let readiness = Readiness::new();
    readiness.not_ready(CONTROL_PLANE, "not reached yet");
    readiness.not_ready(BUCKET, "not reached yet");
    readiness.not_ready(REGISTRATION, "not registered with the control plane yet");
    readiness
}

/// The `/readyz` route.
pub(crate) fn router(readiness: Readiness) -> Router {
    Router::new()
        .route("/readyz", get(readyz))
        .with_state(readiness)
}

async fn readyz(State(readiness): State<Readiness>) -> Response {
    match readiness.status() {
        Ok(()) => Json(serde_json::json!({ "status": "ok" })).into_response(),
        // Written by hand for nats-server's key order (`status` first).
        Err(error) => (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::CONTENT_TYPE, "application/json")],
            format!(
                r#"{{"status":"unavailable","error":{}}}"#,
                serde_json::Value::String(error)
            ),
        )
            .into_response(),
    }
}

/// `error: cause: cause…` without the causes an outer message already quotes (the
/// object store's errors repeat their sources in their own text).
pub(crate) fn error_text(error: &dyn std::error::Error) -> String {
    let mut parts: Vec<String> = vec![error.to_string()];
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = cause.source();
    }
    parts.join(": ")
}

/// How one attempt failed.
pub(crate) enum Failure {
    /// Not reachable (yet): try again.
    Retry(String),
    /// Refused or misconfigured: trying again cannot help.
    Fatal(anyhow::Error),
}

/// Runs `attempt` until it succeeds, fails fatally, or `shutdown` is cancelled. Each
/// retry marks readiness check `check` not ready with the error and logs one WARN
/// line; the wait doubles from [`BACKOFF_FIRST`] up to [`BACKOFF_MAX`].
pub(crate) async fn retry<T, F, Fut>(
    what: &'static str,
    check: &'static str,
    readiness: &Readiness,
    shutdown: &CancellationToken,
    mut attempt: F,
) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Failure>>,
{
    let mut backoff = BACKOFF_FIRST;
    let mut attempts: u64 = 0;
    loop {
        attempts += 1;
        let result = tokio::select! {
            result = attempt() => result,
            () = shutdown.cancelled() => anyhow::bail!("shut down while waiting for the {what}"),
        };
        let error = match result {
            Ok(value) => return Ok(value),
            Err(Failure::Fatal(error)) => return Err(error),
            Err(Failure::Retry(error)) => error,
        };
        readiness.not_ready(check, error.clone());
        tracing::warn!(
            attempt = attempts,
            %error,
            retry_in_ms = backoff.as_millis() as u64,
            "{what} not reachable; retrying"
        );
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            () = shutdown.cancelled() => anyhow::bail!("shut down while waiting for the {what}"),
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn retries_until_success_and_reports_the_error_meanwhile() {
        let readiness = starting();
        let shutdown = CancellationToken::new();
        let mut calls = 0;
        let value = retry("bucket", BUCKET, &readiness, &shutdown, || {
            calls += 1;
            let n = calls;
            let readiness = readiness.clone();
            async move {
                if n < 4 {
                    return Err(Failure::Retry(format!("refused #{n}")));
                }
                // The failures before this one were reported.
                let status = readiness.status().expect_err("not ready yet");
                assert!(status.contains("bucket: refused #3"), "{status}");
                Ok(n)
            }
        })
        .await
        .expect("succeeds on the fourth attempt");
        assert_eq!(value, 4);
    }

    #[test]
    fn error_text_skips_causes_already_quoted() {
        #[derive(Debug, thiserror::Error)]
        #[error("{0}")]
        struct Leaf(&'static str);
        #[derive(Debug, thiserror::Error)]
        #[error("{text}")]
        struct Wrap {
            text: &'static str,
            #[source]
            source: Box<dyn std::error::Error + Send + Sync>,
        }
        let chain = Wrap {
            text: "bucket is unreachable",
            source: Box::new(Wrap {
                text: "list failed: connect error",
                source: Box::new(Wrap {
                    text: "connect error",
                    source: Box::new(Leaf("Connection refused (os error 111)")),
                }),
            }),
        };
        assert_eq!(
            error_text(&chain),
            "bucket is unreachable: list failed: connect error: Connection refused (os error 111)"
        );
    }

    #[tokio::test]
    async fn a_fatal_failure_or_shutdown_ends_the_wait() {
        let readiness = starting();
        let shutdown = CancellationToken::new();
        let err = retry(
            "control plane",
            CONTROL_PLANE,
            &readiness,
            &shutdown,
            || async { Err::<(), _>(Failure::Fatal(anyhow::anyhow!("wrong group key"))) },
        )
        .await
        .expect_err("fatal");
        assert_eq!(err.to_string(), "wrong group key");

        let stopper = shutdown.clone();
        let err = retry(
            "control plane",
            CONTROL_PLANE,
            &readiness,
            &shutdown,
            || {
                stopper.cancel();
                async { Err::<(), _>(Failure::Retry("refused".into())) }
            },
        )
        .await
        .expect_err("shut down");
        assert_eq!(
            err.to_string(),
            "shut down while waiting for the control plane"
        );
    }
}
