//! `GET /jsz` on the monitoring port: nats-server's JetStream monitoring document.
//!
//! The broker's monitoring router knows nothing of JetStream (it must not depend on
//! it); this route is merged into it here, with the agent's [`JszSource`].

use axum::Json;
use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use infinistream_jetstream::JszSource;
use infinistream_protocol::jsapi::jsz::JszOptions;
use tracing::Instrument;

/// The `/jsz` route.
pub(crate) fn router(source: JszSource) -> Router {
    Router::new().route("/jsz", get(jsz)).with_state(source)
}

async fn jsz(State(source): State<JszSource>, RawQuery(query): RawQuery) -> Response {
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
