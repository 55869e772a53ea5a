//! The `$JS.API` dispatcher and the stream administration handlers.
//!
//! One internal subscription on `$JS.API.>` receives every JetStream API request that
//! reaches this agent. Each request is routed by subject ([`ApiRoute`]) and handled in
//! its own task, so a slow control-plane call never holds up another request:
//!
//! - account info and stream administration (create, update, info, delete, names,
//!   list, purge, message delete) are handled here, against the control plane;
//! - message reads (`STREAM.MSG.GET`, `DIRECT.GET`) and consumers go to the handlers
//!   the roles register ([`RouteHandler`]); an agent that does not run the role
//!   forwards them to a peer agent that does ([`crate::forward`]).
//!
//! Replies use nats-server's JSON shapes, `type` strings and error codes.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;

use infinistream_broker::{BrokerError, InternalMsg, InternalSubscription};
use infinistream_proto::v1;
use infinistream_protocol::jsapi::account::{AccountInfo, AccountTier, ApiStats};
use infinistream_protocol::jsapi::advisory;
use infinistream_protocol::jsapi::msg::{MsgDeleteRequest, MsgDeleteResponse};
use infinistream_protocol::jsapi::response::types;
use infinistream_protocol::jsapi::stream::{
    ApiPaged, StreamConfig, StreamConfigRequest, StreamCreateResponse, StreamDeleteResponse,
    StreamInfo, StreamInfoRequest, StreamInfoResponse, StreamListRequest, StreamListResponse,
    StreamNamesResponse, StreamPurgeRequest, StreamPurgeResponse, StreamUpdateResponse,
};
use infinistream_protocol::jsapi::subjects::ApiRoute;
use infinistream_protocol::jsapi::{
    API_LEVEL, ApiError, ApiResponseType, LIST_LIMIT, NAMES_LIMIT, codes, parse_request,
    render_error, render_ok, versioning,
};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

pub use crate::context::{ApiContext, Reply, RouteHandler, cp_call};
use crate::context::{ApiCounters, list_filtered, now};
use crate::convert;
use crate::forward::ConsumeForwarder;

/// Which routes a role serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Owner {
    Admin,
    Reads,
    Consumers,
    Unsupported,
}

fn owner(route: &ApiRoute) -> Owner {
    match route {
        ApiRoute::Info
        | ApiRoute::StreamCreate(_)
        | ApiRoute::StreamUpdate(_)
        | ApiRoute::StreamInfo(_)
        | ApiRoute::StreamDelete(_)
        | ApiRoute::StreamPurge(_)
        | ApiRoute::StreamNames
        | ApiRoute::StreamList
        | ApiRoute::StreamMsgDelete(_) => Owner::Admin,
        ApiRoute::StreamMsgGet(_)
        | ApiRoute::DirectGet(_)
        | ApiRoute::DirectGetLastBySubject { .. } => Owner::Reads,
        ApiRoute::ConsumerCreate(_)
        | ApiRoute::ConsumerInfo { .. }
        | ApiRoute::ConsumerDelete { .. }
        | ApiRoute::ConsumerNames(_)
        | ApiRoute::ConsumerList(_)
        | ApiRoute::ConsumerMsgNext { .. }
        | ApiRoute::ConsumerPause { .. }
        | ApiRoute::ConsumerUnpin { .. }
        | ApiRoute::ConsumerReset { .. } => Owner::Consumers,
        _ => Owner::Unsupported,
    }
}

/// The `$JS.API.>` responder.
pub struct ApiServer {
    ctx: ApiContext,
    reads: Arc<dyn RouteHandler>,
    consumers: Arc<dyn RouteHandler>,
    stats: Arc<ApiCounters>,
}

impl std::fmt::Debug for ApiServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiServer").finish_non_exhaustive()
    }
}

impl ApiServer {
    /// An API server whose reads and consumers are forwarded to proxy-consume peers
    /// until [`ApiServer::with_reads`] and [`ApiServer::with_consumers`] serve them here.
    pub fn new(ctx: ApiContext) -> Self {
        ApiServer {
            reads: ConsumeForwarder::reads(ctx.broker.clone()),
            consumers: ConsumeForwarder::consumers(ctx.broker.clone()),
            ctx,
            stats: Arc::new(ApiCounters::default()),
        }
    }

    /// Serves `STREAM.MSG.GET` and `DIRECT.GET` with `handler` (the proxy-consume role).
    pub fn with_reads(mut self, handler: Arc<dyn RouteHandler>) -> Self {
        self.reads = handler;
        self
    }

    /// Serves the consumer API with `handler` (the proxy-consume role).
    pub fn with_consumers(mut self, handler: Arc<dyn RouteHandler>) -> Self {
        self.consumers = handler;
        self
    }

    /// The `/jsz` monitoring document's source: this server's context and counters.
    pub fn jsz_source(&self) -> crate::jsz::JszSource {
        crate::jsz::JszSource::new(self.ctx.clone(), self.stats.clone())
    }

    /// The system API responder (`$SYS.REQ.*`), answering for this agent as a member of
    /// `cluster` (the agent group).
    pub fn sys_api(&self, cluster: impl Into<String>) -> crate::sysapi::SysApi {
        crate::sysapi::SysApi::new(self.ctx.clone(), self.jsz_source(), cluster.into())
    }

    /// Subscribes to `$JS.API.>`; call [`RunningApi::run`] to serve.
    pub fn subscribe(self) -> Result<RunningApi, BrokerError> {
        let subscription = self
            .ctx
            .broker
            .subscribe_internal("$JS.API.>", None, 4096)?;
        Ok(RunningApi {
            server: Arc::new(self),
            subscription,
            in_flight: Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT)),
        })
    }
}

/// A subscribed API server.
#[derive(Debug)]
pub struct RunningApi {
    server: Arc<ApiServer>,
    subscription: InternalSubscription,
    in_flight: Arc<tokio::sync::Semaphore>,
}

/// Most API requests handled at once by one agent.
const MAX_IN_FLIGHT: usize = 256;

impl RunningApi {
    /// Serves requests until shutdown.
    pub async fn run(
        mut self,
        shutdown: CancellationToken,
    ) -> Result<(), std::convert::Infallible> {
        loop {
            let msg = tokio::select! {
                () = shutdown.cancelled() => return Ok(()),
                msg = self.subscription.recv() => match msg {
                    Some(msg) => msg,
                    None => return Ok(()),
                },
            };
            // Bound the requests in flight: past the limit the dispatcher waits, which
            // back-pressures API publishers through the broker's bounded channel.
            let Ok(permit) = self.in_flight.clone().acquire_owned().await else {
                return Ok(());
            };
            let server = self.server.clone();
            let span = tracing::debug_span!("jsapi", subject = %msg.subject);
            tokio::spawn(
                async move {
                    server.dispatch(msg).await;
                    drop(permit);
                }
                .instrument(span),
            );
        }
    }
}

impl ApiServer {
    async fn dispatch(self: Arc<Self>, msg: InternalMsg) {
        let Some(reply_to) = msg.reply.clone() else {
            // nats-server ignores API requests nobody waits for.
            return;
        };
        self.stats.total.fetch_add(1, Ordering::Relaxed);
        let route = match ApiRoute::from_subject(&msg.subject) {
            Ok(route) => route,
            Err(_) => return,
        };
        let kind = route.response_type().unwrap_or(types::SYSTEM);
        let audited = crate::advisory::Audited::of(&route);
        let request = (audited != crate::advisory::Audited::Never).then(|| msg.clone());
        let reply = if refuses_required_level(&msg) {
            Some(required_level_refusal(&route, kind))
        } else {
            match owner(&route) {
                Owner::Admin => Some(
                    admin(
                        self.ctx.clone(),
                        self.stats.clone(),
                        route.clone(),
                        msg.payload.clone(),
                    )
                    .await,
                ),
                Owner::Consumers if !self.ctx.account.bare => Some(Reply::json(render_error(
                    kind,
                    &ApiError::with_description(
                        codes::BAD_REQUEST,
                        format!(
                            "consumers in JetStream account `{}` are not supported yet (only in the account whose streams have bare ids)",
                            self.ctx.account.name
                        ),
                    ),
                ))),
                Owner::Reads if !self.ctx.account.bare => {
                    self.reads
                        .handle(self.ctx.account.route_ids(route), msg)
                        .await
                }
                Owner::Reads => self.reads.handle(route, msg).await,
                Owner::Consumers => self.consumers.handle(route, msg).await,
                Owner::Unsupported => Some(Reply::json(render_error(
                    kind,
                    &ApiError::with_description(
                        codes::BAD_REQUEST,
                        "this JetStream API request is not supported by InfiniStream yet",
                    ),
                ))),
            }
        };
        if let Some(reply) = reply {
            let error = is_error_reply(&reply.payload);
            if error {
                self.stats.errors.fetch_add(1, Ordering::Relaxed);
            }
            self.ctx
                .broker
                .publish(&reply_to, None, reply.headers, reply.payload.clone());
            if let Some(request) = request.filter(|_| audited.answer(error)) {
                let server = &self.ctx.server_name;
                crate::advisory::api_audit(&self.ctx.broker, server, &request, &reply.payload);
            }
        }
    }
}

/// Whether the request's `Nats-Required-Api-Level` asks for more than [`API_LEVEL`]
/// (or is not a number), as nats-server's `errorOnRequiredApiLevel`.
fn refuses_required_level(msg: &InternalMsg) -> bool {
    let Some(raw) = &msg.headers else {
        return false;
    };
    let Ok(headers) = infinistream_protocol::HeaderMap::parse(raw) else {
        return false;
    };
    versioning::refuses_required_api_level(
        headers.get(infinistream_protocol::jsapi::headers::REQUIRED_API_LEVEL),
    )
}

/// nats-server's answer to a too-high required level: a `412` status for the routes
/// answered with messages (direct get, pull requests), else the JSON error 10185.
fn required_level_refusal(route: &ApiRoute, kind: &str) -> Reply {
    match route {
        ApiRoute::DirectGet(_)
        | ApiRoute::DirectGetLastBySubject { .. }
        | ApiRoute::ConsumerMsgNext { .. } => Reply {
            headers: Some(Bytes::from_static(
                b"NATS/1.0 412 Required Api Level\r\n\r\n",
            )),
            payload: Bytes::new(),
        },
        _ => Reply::json(render_error(kind, &ApiError::required_api_level())),
    }
}

async fn admin(ctx: ApiContext, stats: Arc<ApiCounters>, route: ApiRoute, payload: Bytes) -> Reply {
    let body = match route {
        ApiRoute::Info => respond(account_info(ctx, stats).await),
        ApiRoute::StreamCreate(name) => respond(create(ctx, name, payload).await),
        ApiRoute::StreamUpdate(name) => respond(update(ctx, name, payload).await),
        ApiRoute::StreamInfo(name) => respond(info(ctx, name, payload).await),
        ApiRoute::StreamDelete(name) => respond(delete(ctx, name).await),
        ApiRoute::StreamNames => respond(names(ctx, payload).await),
        ApiRoute::StreamList => respond(list(ctx, payload).await),
        ApiRoute::StreamPurge(name) => respond(purge(ctx, name, payload).await),
        ApiRoute::StreamMsgDelete(name) => respond(msg_delete(ctx, name, payload).await),
        _ => render_error(
            types::SYSTEM,
            &ApiError::internal("route not handled by the admin API"),
        ),
    };
    Reply::json(body)
}

async fn account_info(ctx: ApiContext, stats: Arc<ApiCounters>) -> Result<AccountInfo, ApiError> {
    let streams = list_filtered(&ctx, "").await?;
    let mut tier = AccountTier {
        limits: ctx.account_limits,
        ..AccountTier::default()
    };
    for stream in &streams {
        tier.streams += 1;
        if let Some(state) = &stream.state {
            tier.store += state.bytes;
            tier.consumers += u64::from(state.consumer_count);
        }
    }
    Ok(AccountInfo {
        tier,
        api: ApiStats {
            level: API_LEVEL,
            total: stats.total.load(Ordering::Relaxed),
            errors: stats.errors.load(Ordering::Relaxed),
            ..ApiStats::default()
        },
        ..AccountInfo::default()
    })
}

fn is_error_reply(payload: &[u8]) -> bool {
    memchr_find(payload, b"\"error\":")
}

fn memchr_find(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn respond<T: serde::Serialize + ApiResponseType>(result: Result<T, ApiError>) -> Vec<u8> {
    match result {
        Ok(body) => render_ok(&body),
        Err(error) => render_error(T::TYPE, &error),
    }
}

fn with_leader(ctx: &ApiContext, mut info: StreamInfo) -> StreamInfo {
    info.cluster = Some(infinistream_protocol::jsapi::stream::ClusterInfo {
        leader: ctx.server_name.clone(),
        ..Default::default()
    });
    info
}

/// A stream info as create, update and info answer it: with the leader and, as
/// nats-server adds to those answers (not to `STREAM.LIST`), the server's version and
/// API level in the metadata (`_nats.ver`, `_nats.level`).
fn answered(ctx: &ApiContext, info: StreamInfo) -> StreamInfo {
    let mut info = with_leader(ctx, info);
    info.config = info
        .config
        .with_dynamic_metadata(&ctx.broker.config().version);
    info
}

async fn create(
    ctx: ApiContext,
    name: String,
    payload: Bytes,
) -> Result<StreamCreateResponse, ApiError> {
    let (ctx, name, payload) = (&ctx, name.as_str(), &payload[..]);
    let request: StreamConfigRequest = parse_request(payload)?;
    let mut config = request.config.check_create(name, request.pedantic)?;
    config.set_static_metadata();
    let info = match store_config(ctx, config.clone(), Store::Create).await {
        // A stream stored before `_nats.req.level` was stamped is the same stream when
        // only that differs (nats-server's `copyStreamMetadata`): answer it as created.
        Err(e) if e.err_code == codes::STREAM_NAME_EXIST.err_code => {
            let current = fetch_info(ctx, name, false).await?;
            let existing = convert::stream_info(&current, now(ctx))?;
            if !existing.config.same_apart_from_required_level(&config) {
                return Err(e);
            }
            existing
        }
        result => {
            let info = result?;
            stream_advisory(ctx, name, advisory::Action::Create);
            info
        }
    };
    Ok(StreamCreateResponse {
        info: answered(ctx, info),
        ..StreamCreateResponse::default()
    })
}

#[derive(Debug, Clone, Copy)]
enum Store {
    Create,
    Update,
}

/// Refuses unbuilt features, stores a checked config in the control plane, and
/// records the result in the catalog (so this agent captures the subjects at once).
async fn store_config(
    ctx: &ApiContext,
    config: StreamConfig,
    op: Store,
) -> Result<StreamInfo, ApiError> {
    if let Some(error) = config.unsupported_features() {
        return Err(error);
    }
    let mut wire = convert::proto_config(&config)?;
    let id = ctx.account.id(&config.name).into_owned();
    wire.name.clone_from(&id);
    let resp = cp_call(|| async {
        match op {
            Store::Create => ctx.cp.create_stream(wire.clone()).await,
            Store::Update => ctx.cp.update_stream(wire.clone()).await,
        }
    })
    .await?;
    let info = convert::stream_info(&resp, now(ctx))?;
    ctx.catalog.upsert_as(id.clone(), info.config.clone());
    settle(ctx, &id, Some(&info.config)).await;
    tracing::info!(stream = %config.name, ?op, "stream stored");
    Ok(info)
}

async fn fetch_info(
    ctx: &ApiContext,
    name: &str,
    deleted_details: bool,
) -> Result<v1::StreamInfoResponse, ApiError> {
    let id = ctx.account.id(name);
    cp_call(|| ctx.cp.stream_info(&id, deleted_details)).await
}

async fn update(
    ctx: ApiContext,
    name: String,
    payload: Bytes,
) -> Result<StreamUpdateResponse, ApiError> {
    let (ctx, name, payload) = (&ctx, name.as_str(), &payload[..]);
    let request: StreamConfigRequest = parse_request(payload)?;
    let current = fetch_info(ctx, name, false).await?;
    let old = convert::stream_info(&current, now(ctx))?.config;
    let mut config = request
        .config
        .check_update_request(name, &old, request.pedantic)?;
    config.set_static_metadata();
    let info = store_config(ctx, config, Store::Update).await?;
    stream_advisory(ctx, name, advisory::Action::Modify);
    Ok(StreamUpdateResponse {
        info: answered(ctx, info),
    })
}

async fn info(
    ctx: ApiContext,
    name: String,
    payload: Bytes,
) -> Result<StreamInfoResponse, ApiError> {
    let (ctx, name, payload) = (&ctx, name.as_str(), &payload[..]);
    let request: StreamInfoRequest = parse_request(payload)?;
    let resp = fetch_info(ctx, name, request.deleted_details).await?;
    let mut info = convert::stream_info(&resp, now(ctx))?;
    let mut paged = ApiPaged::default();
    if !request.subjects_filter.is_empty() {
        let id = ctx.account.id(name);
        let subjects = cp_call(|| ctx.cp.last_by_subject(&id, Vec::new())).await?;
        let filter = request.subjects_filter.as_str();
        for entry in subjects {
            if infinistream_protocol::subject::matches(filter, &entry.subject) {
                info.state.subjects.insert(entry.subject, entry.count);
            }
        }
        paged.total = info.state.subjects.len() as u64;
        paged.limit = infinistream_protocol::jsapi::MAX_SUBJECT_DETAILS as u64;
    }
    Ok(StreamInfoResponse {
        paged,
        info: answered(ctx, info),
    })
}

async fn delete(ctx: ApiContext, name: String) -> Result<StreamDeleteResponse, ApiError> {
    let (ctx, name) = (&ctx, name.as_str());
    let id = ctx.account.id(name);
    cp_call(|| ctx.cp.delete_stream(&id)).await?;
    ctx.catalog.remove(&id);
    settle(ctx, &id, None).await;
    tracing::info!(stream = %name, "stream deleted");
    stream_advisory(ctx, name, advisory::Action::Delete);
    Ok(StreamDeleteResponse { success: true })
}

/// nats-server's `$JS.EVENT.ADVISORY.STREAM.{CREATED,UPDATED,DELETED}.<stream>`.
fn stream_advisory(ctx: &ApiContext, name: &str, action: advisory::Action) {
    crate::advisory::publish(
        &ctx.broker,
        &advisory::stream_action_subject(action, name),
        &advisory::StreamAction {
            event: crate::advisory::event(advisory::types::STREAM_ACTION),
            stream: name.to_owned(),
            action,
            domain: String::new(),
        },
    );
}

/// How long a stream change waits for this agent's subject subscriptions to follow it.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(2);

/// Waits until this agent and its linked peers serve the catalog as changed (stream
/// `stream` now `config`, `None`: deleted), so the client's next publish, through any
/// agent, reaches the stream as it now is (see [`StreamCatalog::settled`] and
/// [`crate::group_sync`]).
async fn settle(ctx: &ApiContext, stream: &str, config: Option<&StreamConfig>) {
    // The peers' sync service lives in the broker's own account.
    let internal = ctx.broker.internal();
    let (local, (asked, late)) = tokio::join!(
        ctx.catalog.settled(SETTLE_TIMEOUT),
        crate::group_sync::settle_group(&internal, stream, config),
    );
    if !local {
        tracing::warn!(%stream, timeout = ?SETTLE_TIMEOUT, "stream change answered before this agent's subscriptions followed it");
    }
    if late > 0 {
        tracing::warn!(%stream, late, asked, timeout = ?crate::group_sync::GROUP_SETTLE_TIMEOUT, "stream change answered before every peer agent served it");
    }
}

fn page<T>(items: Vec<T>, offset: u64, limit: usize) -> (Vec<T>, ApiPaged) {
    let total = items.len() as u64;
    let start = usize::try_from(offset)
        .unwrap_or(usize::MAX)
        .min(items.len());
    let page: Vec<T> = items.into_iter().skip(start).take(limit).collect();
    (
        page,
        ApiPaged {
            total,
            offset,
            limit: limit as u64,
        },
    )
}

async fn names(ctx: ApiContext, payload: Bytes) -> Result<StreamNamesResponse, ApiError> {
    let (ctx, payload) = (&ctx, &payload[..]);
    let request: StreamListRequest = parse_request(payload)?;
    let all = list_filtered(ctx, &request.subject).await?;
    let names: Vec<String> = all
        .iter()
        .filter_map(|r| {
            r.config
                .as_ref()
                .map(|c| crate::account::stream_name(&c.name).to_owned())
        })
        .collect();
    let (streams, paged) = page(names, request.offset, NAMES_LIMIT);
    Ok(StreamNamesResponse { paged, streams })
}

async fn list(ctx: ApiContext, payload: Bytes) -> Result<StreamListResponse, ApiError> {
    let (ctx, payload) = (&ctx, &payload[..]);
    let request: StreamListRequest = parse_request(payload)?;
    let all = list_filtered(ctx, &request.subject).await?;
    let (page_items, paged) = page(all, request.offset, LIST_LIMIT);
    let now = now(ctx);
    let mut streams = Vec::with_capacity(page_items.len());
    for item in &page_items {
        streams.push(with_leader(ctx, convert::stream_info(item, now)?));
    }
    Ok(StreamListResponse {
        paged,
        streams,
        ..StreamListResponse::default()
    })
}

async fn purge(
    ctx: ApiContext,
    name: String,
    payload: Bytes,
) -> Result<StreamPurgeResponse, ApiError> {
    let (ctx, name, payload) = (&ctx, name.as_str(), &payload[..]);
    let request: StreamPurgeRequest = parse_request(payload)?;
    request.check()?;
    let purge = v1::PurgeStreamRequest {
        stream: ctx.account.id(name).into_owned(),
        subject: request.filter.clone(),
        keep: (request.keep > 0).then_some(request.keep),
        up_to_seq: (request.sequence > 0).then_some(request.sequence),
    };
    let purged = cp_call(|| ctx.cp.purge_stream(purge.clone())).await?;
    Ok(StreamPurgeResponse {
        success: true,
        purged,
    })
}

async fn msg_delete(
    ctx: ApiContext,
    name: String,
    payload: Bytes,
) -> Result<MsgDeleteResponse, ApiError> {
    let (ctx, name, payload) = (&ctx, name.as_str(), &payload[..]);
    let request: MsgDeleteRequest =
        infinistream_protocol::jsapi::response::parse_required(payload)?;
    if request.seq == 0 {
        return Err(ApiError::bad_request());
    }
    let id = ctx.account.id(name);
    cp_call(|| ctx.cp.delete_message(&id, request.seq)).await?;
    Ok(MsgDeleteResponse { success: true })
}
