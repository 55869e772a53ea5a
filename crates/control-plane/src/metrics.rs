//! Request counters of the control plane's gRPC port, and the message-schedule
//! backlog of each group, for Prometheus.
//!
//! Every request that reaches a served control plane (a replica's listener, whether it
//! leads or forwards) is counted once by method as its response starts, so operators see
//! what agents ask of it: a healthy group's idle traffic is lease heartbeats, registry
//! refreshes and one `WatchStreams` per agent, not periodic `ListStreams`. A
//! `WatchStreams` call counts when it opens, not per event.
//!
//! The schedule gauges are the control plane's own view of what is due and not fired
//! (refreshed by the leader every second with its retention pass), so a group that runs
//! no jobs agent — where no `jobs_schedule_backlog` exists — still shows its backlog.

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// The service every known method belongs to.
const PACKAGE: &str = "/infinistream.v1.";

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MethodLabels {
    /// `Streams`, `Consumers`, `Agents`, `Jobs`; `unknown` for anything else.
    service: String,
    /// The RPC (`ListStreams`, `CommitBatch`…); `unknown` for a path no service has.
    method: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GroupLabels {
    group: String,
}

/// Per-method request counters and per-group schedule gauges; clones count into the
/// same families.
#[derive(Debug, Clone, Default)]
pub struct RequestMetrics {
    requests: Family<MethodLabels, Counter>,
    schedule_backlog: Family<GroupLabels, Gauge>,
    schedule_overdue: Family<GroupLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
}

impl RequestMetrics {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `control_plane_requests_total{service,method}`,
    /// `control_plane_schedule_backlog{group}` and
    /// `control_plane_schedule_overdue_seconds{group}`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "control_plane_requests",
            "gRPC requests received by the control plane, by service and method",
            self.requests.clone(),
        );
        registry.register(
            "control_plane_schedule_backlog",
            "Message schedules due and not fired yet, by group (whether or not a jobs agent runs)",
            self.schedule_backlog.clone(),
        );
        registry.register(
            "control_plane_schedule_overdue_seconds",
            "How long the oldest due, unfired message schedule has waited, by group (0: none due)",
            self.schedule_overdue.clone(),
        );
    }

    /// The schedule backlog last set for `group`: (due and not fired, seconds the
    /// oldest has waited).
    pub fn schedule_backlog(&self, group: &str) -> (i64, f64) {
        let labels = GroupLabels {
            group: group.to_owned(),
        };
        (
            self.schedule_backlog.get_or_create(&labels).get(),
            self.schedule_overdue.get_or_create(&labels).get(),
        )
    }

    pub(crate) fn set_schedule_backlog(&self, group: &str, due: u64, overdue_secs: f64) {
        let labels = GroupLabels {
            group: group.to_owned(),
        };
        self.schedule_backlog
            .get_or_create(&labels)
            .set(i64::try_from(due).unwrap_or(i64::MAX));
        self.schedule_overdue
            .get_or_create(&labels)
            .set(overdue_secs);
    }

    /// Requests counted so far for `service`'s `method` (`"Streams", "ListStreams"`).
    pub fn requests(&self, service: &str, method: &str) -> u64 {
        self.requests
            .get_or_create(&MethodLabels {
                service: service.to_owned(),
                method: method.to_owned(),
            })
            .get()
    }

    fn count(&self, path: &str, known: bool) {
        let labels = match path.strip_prefix(PACKAGE).and_then(|p| p.split_once('/')) {
            Some((service, method)) if known => MethodLabels {
                service: service.to_owned(),
                method: method.to_owned(),
            },
            // Unroutable paths share one series, so clients cannot grow the family.
            _ => MethodLabels {
                service: "unknown".to_owned(),
                method: "unknown".to_owned(),
            },
        };
        self.requests.get_or_create(&labels).inc();
    }

    /// `router` with every request counted.
    pub fn layer(&self, router: axum::Router) -> axum::Router {
        let metrics = self.clone();
        router.layer(axum::middleware::from_fn(
            move |request: Request, next: Next| {
                let metrics = metrics.clone();
                async move {
                    let path = request.uri().path().to_owned();
                    let response: Response = next.run(request).await;
                    // tonic answers a path no service has with UNIMPLEMENTED (12).
                    let known = response
                        .headers()
                        .get("grpc-status")
                        .is_none_or(|status| status.as_bytes() != b"12");
                    metrics.count(&path, known);
                    response
                }
            },
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_methods_are_counted_by_name_and_others_together() {
        let metrics = RequestMetrics::new();
        metrics.count("/infinistream.v1.Streams/ListStreams", true);
        metrics.count("/infinistream.v1.Streams/ListStreams", true);
        metrics.count("/infinistream.v1.Streams/Nope", false);
        metrics.count("/elsewhere", true);
        assert_eq!(metrics.requests("Streams", "ListStreams"), 2);
        assert_eq!(metrics.requests("unknown", "unknown"), 2);
        let mut registry = Registry::default();
        metrics.register(&mut registry);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).expect("encode");
        assert!(
            text.contains(
                r#"control_plane_requests_total{service="Streams",method="ListStreams"} 2"#
            ),
            "{text}"
        );
        assert!(
            text.contains(r#"control_plane_requests_total{service="unknown",method="unknown"} 2"#),
            "{text}"
        );
    }
}
