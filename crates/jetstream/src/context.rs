//! What the `$JS.API` dispatcher, the role handlers, `/jsz` and the system API share:
//! the context they answer from, the reply and handler types, and the control-plane
//! calls on the request path.

use std::sync::atomic::AtomicU64;

use async_trait::async_trait;
use bytes::Bytes;
use infinistream_broker::{Broker, InternalMsg};
use infinistream_cp_client::retry::{LEADER_CHANGE_BUDGET, retry_unavailable};
use infinistream_cp_client::{CallError, ControlPlaneClient};
use infinistream_proto::v1;
use infinistream_protocol::jsapi::subjects::ApiRoute;
use infinistream_protocol::jsapi::{ApiError, Timestamp};
use infinistream_types::SharedClock;

use crate::catalog::StreamCatalog;
use crate::convert;

/// A reply to an API request: optional NATS headers and the payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub headers: Option<Bytes>,
    pub payload: Bytes,
}

impl Reply {
    /// A JSON body without headers.
    pub fn json(payload: Vec<u8>) -> Self {
        Reply {
            headers: None,
            payload: Bytes::from(payload),
        }
    }
}

/// Handles the API routes of one role (reads, consumers).
#[async_trait]
pub trait RouteHandler: Send + Sync + 'static {
    /// Answers one request. `None` means the handler replied by itself (several
    /// messages, or later) or that the request needs no reply.
    async fn handle(&self, route: ApiRoute, msg: InternalMsg) -> Option<Reply>;
}

/// Everything the admin handlers need.
#[derive(Debug, Clone)]
pub struct ApiContext {
    pub broker: Broker,
    pub cp: ControlPlaneClient,
    pub catalog: StreamCatalog,
    pub clock: SharedClock,
    /// Server name reported as the stream leader in infos.
    pub server_name: String,
    /// The JetStream account's limits, as `$JS.API.INFO` reports them (the control
    /// plane enforces them).
    pub account_limits: infinistream_protocol::jsapi::account::AccountLimits,
    /// The account this context answers for (`broker` is in it) and how its streams
    /// are named in the control plane.
    pub account: crate::account::JsAccount,
}

/// `$JS.API` requests served and answered with an error (account info, `/jsz`).
#[derive(Debug, Default)]
pub(crate) struct ApiCounters {
    pub(crate) total: AtomicU64,
    pub(crate) errors: AtomicU64,
}

pub(crate) fn now(ctx: &ApiContext) -> Timestamp {
    Timestamp::from_unix_nanos(i128::from(ctx.clock.now_unix_nanos()))
}

/// One typed control-plane call on the request path: retried while the control
/// plane changes leader (bounded well inside the clients' timeouts), then answered
/// as nats-server's "temporarily unavailable" when it still cannot be reached; a
/// JetStream refusal is answered as itself.
pub async fn cp_call<T, F, Fut>(call: F) -> Result<T, ApiError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, CallError>>,
{
    retry_unavailable(LEADER_CHANGE_BUDGET, call)
        .await
        .map_err(|e| convert::call_error(&e))
}

/// The streams of the context's account whose subjects overlap `subject` (empty =
/// all), by id.
pub(crate) async fn list_filtered(
    ctx: &ApiContext,
    subject: &str,
) -> Result<Vec<v1::StreamInfoResponse>, ApiError> {
    let account = ctx.account.list_filter();
    let mut list = cp_call(|| ctx.cp.list_streams_in(subject, account)).await?;
    list.sort_by(|a, b| {
        let name = |r: &v1::StreamInfoResponse| r.config.as_ref().map(|c| c.name.clone());
        name(a).cmp(&name(b))
    });
    Ok(list)
}
