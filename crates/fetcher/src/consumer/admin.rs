//! Consumer administration: create (named, ephemeral, durable, filter in the subject,
//! create / update / create-or-update actions), info, delete, names and list.
//!
//! Configs are checked and defaulted exactly as nats-server does
//! (`ConsumerConfig::check_and_default_with`) against the stream's config from the
//! catalog, then stored in the control plane ([`super::store`]).

use std::sync::Arc;

use infinistream_jetstream::Reply;
use infinistream_jetstream::api::cp_call;
use infinistream_jetstream::convert::unavailable;
use infinistream_protocol::jsapi::advisory::Action;
use infinistream_protocol::jsapi::consumer::{
    ConsumerAction, ConsumerCreateResponse, ConsumerDeleteResponse, ConsumerInfo,
    ConsumerInfoResponse, ConsumerListRequest, ConsumerListResponse, ConsumerNamesResponse,
    ConsumerPauseRequest, ConsumerPauseResponse, CreateConsumerRequest, pause_state,
};
use infinistream_protocol::jsapi::response::types;
use infinistream_protocol::jsapi::stream::{ApiPaged, StreamConfig};
use infinistream_protocol::jsapi::subjects::{ApiRoute, ConsumerCreateRoute};
use infinistream_protocol::jsapi::{
    ApiError, LIST_LIMIT, NAMES_LIMIT, Timestamp, parse_request, render_error, render_ok,
};
use tracing::Instrument;

use super::store::{self, StoredConsumer};
use super::{Engine, events, priority};

/// The stream's config, refreshing the catalog once for a stream created elsewhere.
async fn stream_config(engine: &Engine, stream: &str) -> Result<StreamConfig, ApiError> {
    if engine.catalog.get(stream).is_none()
        && let Err(status) = engine.catalog.refresh(&engine.cp).await
    {
        return Err(unavailable(&status));
    }
    engine
        .catalog
        .get(stream)
        .map(|e| (*e.config).clone())
        .ok_or_else(ApiError::stream_not_found)
}

/// nats-server's `ConsumerInfo` for a stored consumer.
pub(crate) fn info_of(engine: &Engine, stream: &str, stored: StoredConsumer) -> ConsumerInfo {
    let rt = engine.running(stream, &stored.config.name);
    let now = store::now_nanos();
    let (paused, pause_remaining) = pause_state(stored.config.pause_until, now);
    ConsumerInfo {
        paused,
        pause_remaining,
        num_waiting: rt.as_ref().map_or(0, |r| r.num_waiting()),
        push_bound: !stored.config.deliver_subject.is_empty()
            && engine
                .broker
                .has_interest_anywhere(&stored.config.deliver_subject),
        timestamp: Timestamp::from_unix_nanos(now),
        config: Some(stored.config),
        ..stored.info
    }
}

/// A consumer info as create and info answer it: nats-server adds its version and API
/// level to the metadata of those answers (`_nats.ver`, `_nats.level`), not to
/// `CONSUMER.LIST`'s.
pub(crate) fn answered(engine: &Engine, mut info: ConsumerInfo) -> ConsumerInfo {
    let version = &engine.broker.config().version;
    info.config = info.config.map(|c| c.with_dynamic_metadata(version));
    info
}

/// Answers one admin route.
pub(crate) async fn handle(engine: &Arc<Engine>, route: ApiRoute, payload: &[u8]) -> Reply {
    let kind = route.response_type().unwrap_or(types::SYSTEM);
    let body = match route {
        ApiRoute::ConsumerCreate(r) => {
            let span = tracing::debug_span!("consumer_create", stream = %r.stream());
            create(engine, &r, payload)
                .instrument(span)
                .await
                .map(|info| {
                    render_ok(&ConsumerCreateResponse {
                        info: answered(engine, info),
                    })
                })
        }
        ApiRoute::ConsumerInfo { stream, consumer } => {
            // Acks held here for a claim count in the answer (read your own acks).
            if let Some(rt) = engine.running(&stream, &consumer) {
                rt.send_held_acks(engine).await;
            }
            let stored = store::fetch_info(&engine.cp, &stream, &consumer).await;
            // Deliveries the answer counts go out before it (a claim it counts was
            // begun before the control plane answered, by a runtime running now).
            if let Some(rt) = engine.running(&stream, &consumer) {
                rt.claims_settled().await;
            }
            stored.map(|stored| {
                render_ok(&ConsumerInfoResponse {
                    info: answered(engine, info_of(engine, &stream, stored)),
                })
            })
        }
        ApiRoute::ConsumerDelete { stream, consumer } => engine
            .delete_consumer(&stream, &consumer)
            .await
            .map(|()| render_ok(&ConsumerDeleteResponse { success: true })),
        ApiRoute::ConsumerNames(stream) => {
            names(engine, &stream, payload).await.map(|r| render_ok(&r))
        }
        ApiRoute::ConsumerList(stream) => {
            for rt in engine.running_on(&stream) {
                rt.send_held_acks(engine).await;
            }
            list(engine, &stream, payload).await.map(|r| render_ok(&r))
        }
        ApiRoute::ConsumerPause { stream, consumer } => {
            let span =
                tracing::debug_span!("consumer_pause", stream = %stream, consumer = %consumer);
            // nats-server answers errors of this route with the body's fields too.
            return Reply::json(
                match pause(engine, &stream, &consumer, payload)
                    .instrument(span)
                    .await
                {
                    Ok(answer) => render_ok(&answer),
                    Err(e) => ConsumerPauseResponse::render_error(&e),
                },
            );
        }
        ApiRoute::ConsumerUnpin { stream, consumer } => {
            let span =
                tracing::debug_span!("consumer_unpin", stream = %stream, consumer = %consumer);
            priority::unpin(engine, &stream, &consumer, payload)
                .instrument(span)
                .await
                .map(|r| render_ok(&r))
        }
        _ => Err(ApiError::internal("route not handled by the consumer API")),
    };
    Reply::json(match body {
        Ok(b) => b,
        Err(e) => render_error(kind, &e),
    })
}

/// `CONSUMER.PAUSE`: sets or clears the consumer's `pause_until` in its stored config.
/// The control plane hands out nothing for a paused consumer, so every agent serving
/// it stops delivering; clearing the pause (or the time passing) lets them go on.
async fn pause(
    engine: &Arc<Engine>,
    stream: &str,
    name: &str,
    payload: &[u8],
) -> Result<ConsumerPauseResponse, ApiError> {
    // Like nats-server, only a JSON object or array is read; anything else resumes.
    let json = payload
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| matches!(b, b'{' | b'['));
    let request: ConsumerPauseRequest = if json {
        parse_request(payload)?
    } else {
        ConsumerPauseRequest::default()
    };
    let stored = store::fetch_info(&engine.cp, stream, name).await?;
    let mut cfg = stored.config;
    let before = cfg.pause_until;
    cfg.pause_until = request.pause_until();
    cfg.set_static_metadata();
    let stored = store::update(&engine.cp, stream, store::proto_config(stream, &cfg)?).await?;
    let answer = ConsumerPauseResponse::new(cfg.pause_until, store::now_nanos());
    if before != cfg.pause_until {
        tracing::info!(stream = %stream, consumer = %name, paused = answer.paused, "consumer pause changed");
        events::pause(&engine.broker, stream, name, answer.paused, cfg.pause_until);
        if let Some(until) = cfg.pause_until.filter(|_| answer.paused) {
            super::pause_expiry::watch(engine, stream, name, until);
        }
    }
    if engine.running(stream, name).is_some() {
        engine.replace(stream, name, stored.config, stored.created_unix_nanos);
    }
    Ok(answer)
}

async fn create(
    engine: &Arc<Engine>,
    route: &ConsumerCreateRoute,
    payload: &[u8],
) -> Result<ConsumerInfo, ApiError> {
    let request: CreateConsumerRequest = parse_request(payload)?;
    let stream = route.stream().to_owned();
    let cfg = request.check_subject(route)?;
    let stream_cfg = stream_config(engine, &stream).await?;
    let mut cfg = cfg.check_and_default_with(&stream_cfg, request.pedantic)?;
    if let Some(e) = cfg.unsupported_features() {
        return Err(e);
    }
    if cfg.name.is_empty() {
        cfg.name = engine.ephemeral_name();
    }
    // `_nats.req.level`, stored (nats-server's `setStaticConsumerMetadata`).
    cfg.set_static_metadata();
    // Existing consumer: the action decides (nats-server's create/update semantics).
    let existing = match store::fetch_info(&engine.cp, &stream, &cfg.name).await {
        Ok(stored) => Some(stored),
        Err(e) if e.err_code == ApiError::consumer_not_found().err_code => None,
        Err(e) => return Err(e),
    };
    if let Some(stored) = existing {
        if stored.config.same_apart_from_required_level(&cfg) {
            let info = info_of(engine, &stream, stored.clone());
            engine.install(&stream, &cfg.name, stored.config, stored.created_unix_nanos);
            return Ok(info);
        }
        if request.action == ConsumerAction::Create {
            return Err(ApiError::consumer_already_exists());
        }
        cfg.check_update(&stored.config)?;
        let stored =
            store::update(&engine.cp, &stream, store::proto_config(&stream, &cfg)?).await?;
        tracing::info!(stream = %stream, consumer = %cfg.name, "consumer updated");
        engine.replace(
            &stream,
            &stored.config.name,
            stored.config.clone(),
            stored.created_unix_nanos,
        );
        return Ok(info_of(engine, &stream, stored));
    }
    if request.action == ConsumerAction::Update {
        return Err(ApiError::consumer_does_not_exist());
    }
    // Work-queue rules that need no other consumer; filter uniqueness against the
    // stream's other consumers is checked atomically by the control plane.
    cfg.check_workqueue(&stream_cfg)?;
    let wire = store::proto_config(&stream, &cfg)?;
    let resp = cp_call(|| engine.cp.create_consumer(wire.clone())).await?;
    let stored = store::decode(&stream, resp)?;
    tracing::info!(stream = %stream, consumer = %cfg.name, pull = cfg.is_pull(), "consumer created");
    events::consumer_action(&engine.broker, &stream, &cfg.name, Action::Create);
    // Created paused: nats-server announces the pause, and later its end.
    if let Some(until) = cfg
        .pause_until
        .filter(|t| t.unix_nanos() > store::now_nanos())
    {
        events::pause(&engine.broker, &stream, &cfg.name, true, Some(until));
        super::pause_expiry::watch(engine, &stream, &cfg.name, until);
    }
    engine.install(
        &stream,
        &stored.config.name,
        stored.config.clone(),
        stored.created_unix_nanos,
    );
    Ok(info_of(engine, &stream, stored))
}

fn page<T>(items: Vec<T>, offset: u64, limit: usize) -> (ApiPaged, Vec<T>) {
    let total = items.len() as u64;
    let start = usize::try_from(offset)
        .unwrap_or(usize::MAX)
        .min(items.len());
    let page = items.into_iter().skip(start).take(limit).collect();
    (
        ApiPaged {
            total,
            offset,
            limit: limit as u64,
        },
        page,
    )
}

async fn names(
    engine: &Engine,
    stream: &str,
    payload: &[u8],
) -> Result<ConsumerNamesResponse, ApiError> {
    let request: ConsumerListRequest = parse_request(payload)?;
    stream_config(engine, stream).await?;
    let names = store::list_stored(&engine.cp, stream)
        .await?
        .into_iter()
        .map(|c| c.config.name)
        .collect();
    let (paged, consumers) = page(names, request.offset, NAMES_LIMIT);
    Ok(ConsumerNamesResponse { paged, consumers })
}

async fn list(
    engine: &Engine,
    stream: &str,
    payload: &[u8],
) -> Result<ConsumerListResponse, ApiError> {
    let request: ConsumerListRequest = parse_request(payload)?;
    stream_config(engine, stream).await?;
    let all = store::list_stored(&engine.cp, stream).await?;
    let (paged, stored) = page(all, request.offset, LIST_LIMIT);
    Ok(ConsumerListResponse {
        paged,
        consumers: stored
            .into_iter()
            .map(|s| info_of(engine, stream, s))
            .collect(),
        ..ConsumerListResponse::default()
    })
}
