//! HTTP monitoring in nats-server's shape: `/healthz`, `/varz`, `/connz`, `/metrics`.
//!
//! The broker gathers the data ([`Broker::varz`], [`Broker::connz_page`],
//! [`Broker::metrics_text`]); the agent serves it, merged with `/jsz` and `/readyz`, so
//! the role crates that link the broker link no HTTP server.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Json};
use axum::routing::get;
use infinistream_broker::Broker;
use infinistream_broker::monitor::{Connz, DEFAULT_CONNZ_LIMIT, Varz};
use serde::Deserialize;

/// Renders extra metrics text (the agent's registry) for `/metrics`.
pub type MetricsFn = Arc<dyn Fn() -> String + Send + Sync>;

#[derive(Clone)]
struct MonitorState {
    broker: Broker,
    metrics: MetricsFn,
}

#[derive(Debug, Deserialize)]
struct ConnzQuery {
    offset: Option<usize>,
    limit: Option<usize>,
    /// nats-server's `auth=true`: include who each connection authenticated as.
    #[serde(default)]
    auth: bool,
}

/// The monitoring HTTP routes over `broker`, `/metrics` also rendering `metrics`.
pub fn router(broker: Broker, metrics: MetricsFn) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/varz", get(varz))
        .route("/connz", get(connz))
        .route("/metrics", get(prometheus))
        .with_state(MonitorState { broker, metrics })
}

async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

async fn varz(State(s): State<MonitorState>) -> Json<Varz> {
    let _span = tracing::debug_span!("monitor_varz").entered();
    Json(s.broker.varz())
}

async fn connz(State(s): State<MonitorState>, Query(q): Query<ConnzQuery>) -> Json<Connz> {
    let _span = tracing::debug_span!("monitor_connz").entered();
    let mut page = s.broker.connz_page(
        q.offset.unwrap_or(0),
        q.limit.unwrap_or(DEFAULT_CONNZ_LIMIT),
    );
    if !q.auth {
        for c in &mut page.connections {
            c.authorized_user.clear();
        }
    }
    Json(page)
}

async fn prometheus(State(s): State<MonitorState>) -> impl IntoResponse {
    let body = s.broker.metrics_text(&(s.metrics)());
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        body,
    )
}
