//! Process plumbing shared by every InfiniStream binary mode.
//!
//! - [`tracing_init`]: one place that decides the log format and filter (`RUST_LOG`).
//! - [`shutdown_signal`]: SIGTERM/SIGINT become a [`CancellationToken`] that every
//!   listener and role loop watches, so shutdown is "stop accepting, drain, close".
//! - [`Supervisor`]: runs the role tasks of one process; the first task that fails
//!   brings the others down with it and its error becomes the exit reason.
//! - [`Metrics`]: the one Prometheus registry of a process, rendered on `/metrics`.
//! - [`RoleContext`]: what every role's entry point gets from the agent starting it.
//! - [`health::Readiness`]: what the process still lacks, for `/readyz`.
//! - [`zone`]: the availability zone from the cloud's instance metadata.

pub mod health;
pub mod zone;

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use prometheus_client::registry::Registry;
use tokio::task::JoinSet;
pub use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// Installs the global tracing subscriber. The filter comes from `RUST_LOG`, defaulting
/// to `info`. Safe to call more than once (later calls are ignored), which tests rely on.
pub fn tracing_init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(true)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let _already_set = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

/// Returns a token cancelled on the first SIGINT or SIGTERM.
pub fn shutdown_signal() -> std::io::Result<CancellationToken> {
    use tokio::signal::unix::{SignalKind, signal};
    let token = CancellationToken::new();
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let cancel = token.clone();
    tokio::spawn(async move {
        let name = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
            _ = cancel.cancelled() => return,
        };
        tracing::info!(signal = name, "shutdown requested: draining connections");
        cancel.cancel();
    });
    Ok(token)
}

/// An error that ended a supervised task.
#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    /// The task returned an error.
    #[error("{task} failed: {message}")]
    Failed { task: String, message: String },
    /// The task panicked or was aborted.
    #[error("{task} stopped unexpectedly: {message}")]
    Crashed { task: String, message: String },
}

/// Runs named long-lived tasks; the first to fail cancels the shared token.
pub struct Supervisor {
    shutdown: CancellationToken,
    tasks: JoinSet<(String, Result<(), String>)>,
}

impl fmt::Debug for Supervisor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Supervisor")
            .field("tasks", &self.tasks.len())
            .finish()
    }
}

impl Supervisor {
    /// A supervisor whose tasks stop when `shutdown` is cancelled.
    pub fn new(shutdown: CancellationToken) -> Self {
        Self {
            shutdown,
            tasks: JoinSet::new(),
        }
    }

    /// The token every task should watch.
    pub fn shutdown(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Starts a task. A task that returns `Ok` before shutdown is treated as finished
    /// work, not a failure.
    pub fn spawn<F, E>(&mut self, name: impl Into<String>, fut: F)
    where
        F: Future<Output = Result<(), E>> + Send + 'static,
        E: fmt::Display,
    {
        let name = name.into();
        self.tasks.spawn(async move {
            let result = fut.await.map_err(|e| e.to_string());
            (name, result)
        });
    }

    /// Waits for every task. Returns the first failure, after cancelling the rest.
    pub async fn wait(mut self) -> Result<(), TaskError> {
        let mut first_error = None;
        while let Some(joined) = self.tasks.join_next().await {
            let error = match joined {
                Ok((_, Ok(()))) => None,
                Ok((task, Err(message))) => Some(TaskError::Failed { task, message }),
                Err(join) => Some(TaskError::Crashed {
                    task: "task".into(),
                    message: join.to_string(),
                }),
            };
            if let Some(error) = error {
                tracing::error!(%error, "stopping the process");
                self.shutdown.cancel();
                first_error.get_or_insert(error);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

/// What the agent shares with each role it starts: who it is, the clock, the metrics
/// registry and the supervisor the role's tasks run under (its token is the shutdown
/// signal). Each role crate's `start` takes this plus the role's own dependencies and
/// settings, and returns a handle.
pub struct RoleContext<'a> {
    /// The agent's registry id (lease holder, consumer claims, batch ids).
    pub agent_id: &'a str,
    pub clock: infinistream_types::SharedClock,
    pub metrics: &'a Metrics,
    pub supervisor: &'a mut Supervisor,
}

impl fmt::Debug for RoleContext<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RoleContext")
            .field("agent_id", &self.agent_id)
            .finish_non_exhaustive()
    }
}

impl RoleContext<'_> {
    /// The token every task of the role watches.
    pub fn shutdown(&self) -> CancellationToken {
        self.supervisor.shutdown()
    }
}

/// The process-wide Prometheus registry.
#[derive(Clone, Default)]
pub struct Metrics {
    registry: Arc<parking_lot::Mutex<Registry>>,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Metrics")
    }
}

impl Metrics {
    /// An empty registry with the `infinistream` prefix.
    pub fn new() -> Self {
        Self {
            registry: Arc::new(parking_lot::Mutex::new(Registry::with_prefix(
                "infinistream",
            ))),
        }
    }

    /// Registers metrics: `f` receives the registry.
    pub fn register(&self, f: impl FnOnce(&mut Registry)) {
        f(&mut self.registry.lock());
    }

    /// Renders everything in the Prometheus text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Encoding into a String cannot fail except on fmt errors from our own
        // metric types, which would be a bug; render what we have in that case.
        if let Err(error) =
            prometheus_client::encoding::text::encode(&mut out, &self.registry.lock())
        {
            tracing::warn!(%error, "metrics encoding failed");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::metrics::counter::Counter;

    #[tokio::test]
    async fn first_failure_cancels_the_rest() {
        let token = CancellationToken::new();
        let mut sup = Supervisor::new(token.clone());
        let watcher = token.clone();
        sup.spawn("waits", async move {
            watcher.cancelled().await;
            Ok::<(), String>(())
        });
        sup.spawn("fails", async { Err::<(), _>("boom".to_owned()) });
        let err = sup.wait().await.expect_err("the failing task is reported");
        assert_eq!(err.to_string(), "fails failed: boom");
        assert!(token.is_cancelled());
    }

    #[test]
    fn metrics_render_registered_counters() {
        let metrics = Metrics::new();
        let counter = Counter::<u64>::default();
        metrics.register(|r| r.register("things", "Things seen", counter.clone()));
        counter.inc_by(3);
        let text = metrics.render();
        assert!(text.contains("infinistream_things_total 3"), "{text}");
    }
}
