//! `GET /jsz` on the monitoring port: nats-server's JetStream monitoring document.
//!
//! The monitoring router ([`crate::monitor`]) knows nothing of JetStream (the broker must not depend on
//! it); this route is merged into it here, with the agent's [`JszSource`] once the
//! agent has one (before that, during start-up, it answers 503).

use std::sync::{Arc, OnceLock};

use axum::Json;
use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use infinistream_jetstream::JszSource;
use infinistream_protocol::jsapi::jsz::JszOptions;
use tracing::Instrument;

/// The `/jsz` route, answering from `source` once it is set.
pub(crate) fn router(source: Arc<OnceLock<JszSource>>) -> Router {
    Router::new().route("/jsz", get(jsz)).with_state(source)
}

async fn jsz(
    State(source): State<Arc<OnceLock<JszSource>>>,
    RawQuery(query): RawQuery,
) -> Response {
    let Some(source) = source.get() else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "JetStream is not ready: the agent is starting (see /readyz)",
        )
            .into_response();
    };
    let query = query.unwrap_or_default();
    let span = tracing::debug_span!("monitor_jsz", query = %query);
    async move {
        // nats-server answers a bad option value with 400 and a plain-text message.
        let opts = match JszOptions::from_query(&query) {
            Ok(opts) => opts,
            Err(e) => return (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
        };
        match source.jsz(&opts).await {
            Ok(doc) => Json(doc).into_response(),
            Err(e) => {
                tracing::warn!(error = %e.description, "/jsz: control plane did not answer");
                (StatusCode::SERVICE_UNAVAILABLE, e.description).into_response()
            }
        }
    }
    .instrument(span)
    .await
}
