//! A transport over several control-plane replicas: `http://a:7070,http://b:7070,…`.
//!
//! Replicas over etcd elect one leader and followers forward to it, so an agent may
//! talk to any live replica. This transport sends every call to the replica it is
//! using now; when a call fails at the transport level (connection refused or reset,
//! the replica is gone) it moves to the next replica for the following calls. The
//! failed call itself is not retried here — a request body cannot be replayed, and
//! whether a CommitBatch was applied is only known by retrying it with the same batch
//! id — so callers retry, and their retry goes to a live replica.
//!
//! A replica that is alive but has no leader to forward to answers `Unavailable` (a
//! gRPC status, not a transport error): that does not move the transport, the caller
//! retries and the replica forwards once a new leader is elected.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tonic::body::Body;
use tonic::codegen::http;
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};
use tower::ServiceExt;

use crate::error::{ClientError, TransportError, error_chain};

/// How long connecting to one replica may take before the call fails over.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Calls one replica at a time, moving to the next after a transport failure.
#[derive(Debug, Clone)]
pub(crate) struct Failover {
    replicas: Arc<[(String, Channel)]>,
    /// Index (modulo the replica count) of the replica in use.
    current: Arc<AtomicUsize>,
}

fn endpoint(url: &str, tls: Option<&ClientTlsConfig>) -> Result<Endpoint, ClientError> {
    crate::tls::control_plane_endpoint(url, tls)
        .map(|e| e.tcp_nodelay(true).connect_timeout(CONNECT_TIMEOUT))
}

impl Failover {
    /// Connects to the replicas in `urls`. At least one must answer now (so a wrong
    /// address list fails here); the others are dialled when first needed.
    pub(crate) async fn connect(
        urls: &[String],
        tls: Option<&ClientTlsConfig>,
    ) -> Result<Failover, ClientError> {
        let mut replicas = Vec::with_capacity(urls.len());
        let mut first_up = None;
        let mut reasons = Vec::new();
        for url in urls {
            let endpoint = endpoint(url, tls)?;
            let channel = match endpoint.connect().await {
                Ok(channel) => {
                    first_up.get_or_insert(replicas.len());
                    channel
                }
                Err(e) => {
                    reasons.push(format!("{url}: {}", error_chain(&e)));
                    endpoint.connect_lazy()
                }
            };
            replicas.push((url.clone(), channel));
        }
        let Some(first_up) = first_up else {
            return Err(ClientError::Connect {
                url: urls.join(","),
                reason: reasons.join("; "),
            });
        };
        for reason in &reasons {
            tracing::warn!(
                reason,
                "control-plane replica not reachable now; will fail over to it when needed"
            );
        }
        Ok(Failover {
            replicas: replicas.into(),
            current: Arc::new(AtomicUsize::new(first_up)),
        })
    }
}

impl tower::Service<http::Request<Body>> for Failover {
    type Response = http::Response<Body>;
    type Error = TransportError;
    type Future =
        Pin<Box<dyn Future<Output = Result<http::Response<Body>, TransportError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // Each call readies its channel itself (`oneshot`).
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let turn = self.current.load(Ordering::Acquire);
        let (url, channel) = self.replicas[turn % self.replicas.len()].clone();
        let current = self.current.clone();
        let replicas = self.replicas.clone();
        Box::pin(async move {
            match channel.oneshot(request).await {
                Ok(response) => Ok(response),
                Err(e) => {
                    let reason = error_chain(&e);
                    // Only the first failure of this turn moves on (concurrent calls
                    // failing together must not skip a replica).
                    if replicas.len() > 1
                        && current
                            .compare_exchange(turn, turn + 1, Ordering::AcqRel, Ordering::Acquire)
                            .is_ok()
                    {
                        let (next, _) = &replicas[(turn + 1) % replicas.len()];
                        tracing::warn!(failed = %url, next = %next, error = %reason, "control-plane replica failed; failing over");
                    }
                    Err(TransportError::new(format!("{url}: {reason}")))
                }
            }
        })
    }
}
