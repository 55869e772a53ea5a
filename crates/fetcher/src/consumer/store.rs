//! Consumer records in the control plane: the typed fields it needs to claim
//! deliveries, plus the whole defaulted JetStream config as JSON, which `INFO` returns
//! verbatim. Reading, listing and deleting them, and the stored form of a config.

use infinistream_cp_client::ControlPlaneClient;
use infinistream_jetstream::api::cp_call;
use infinistream_jetstream::convert;
use infinistream_proto::v1;
use infinistream_protocol::jsapi::consumer::{
    AckPolicy, ConsumerConfig, ConsumerInfo, DeliverPolicy, PriorityPolicy,
};
use infinistream_protocol::jsapi::{ApiError, Timestamp};

/// A consumer as the control plane reports it, with its JetStream config decoded.
#[derive(Debug, Clone)]
pub(crate) struct StoredConsumer {
    pub config: ConsumerConfig,
    pub created_unix_nanos: i64,
    pub state: v1::ConsumerState,
    /// The same as JetStream reports it (jetstream's `convert::consumer_info`, shared
    /// with `/jsz`), without `config` (above) and without what only this agent knows
    /// (`admin::info_of` adds both).
    pub info: ConsumerInfo,
}

pub(crate) fn now_nanos() -> i128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i128)
        .unwrap_or(0)
}

pub(crate) fn decode(
    stream: &str,
    resp: v1::ConsumerInfoResponse,
) -> Result<StoredConsumer, ApiError> {
    let created_unix_nanos = resp.created_unix_nanos;
    let state = resp.state.clone().unwrap_or_default();
    let mut info = convert::consumer_info(stream, resp, Timestamp::from_unix_nanos(now_nanos()))?;
    let Some(config) = info.config.take() else {
        return Err(ApiError::internal(format_args!(
            "consumer info of `{}` came without its config",
            info.name
        )));
    };
    Ok(StoredConsumer {
        config,
        created_unix_nanos,
        state,
        info,
    })
}

/// The consumer's stored config and state from the control plane.
pub(crate) async fn fetch_info(
    cp: &ControlPlaneClient,
    stream: &str,
    name: &str,
) -> Result<StoredConsumer, ApiError> {
    let resp = cp_call(|| cp.consumer_info(stream, name)).await?;
    decode(stream, resp)
}

/// The control plane's form of a priority policy.
fn proto_policy(p: PriorityPolicy) -> v1::PriorityPolicy {
    match p {
        PriorityPolicy::None => v1::PriorityPolicy::PriorityNone,
        PriorityPolicy::Overflow => v1::PriorityPolicy::PriorityOverflow,
        PriorityPolicy::PinnedClient => v1::PriorityPolicy::PriorityPinnedClient,
        PriorityPolicy::Prioritized => v1::PriorityPolicy::PriorityPrioritized,
    }
}

/// The control plane's form of a checked config.
pub(crate) fn proto_config(
    stream: &str,
    cfg: &ConsumerConfig,
) -> Result<v1::ConsumerConfig, ApiError> {
    let config_json = serde_json::to_vec(cfg)
        .map_err(|e| ApiError::internal(format_args!("encoding consumer config: {e}")))?;
    let ack_policy = match cfg.ack_policy {
        AckPolicy::None => v1::AckPolicy::AckNone,
        AckPolicy::All => v1::AckPolicy::AckAll,
        AckPolicy::Explicit | AckPolicy::FlowControl => v1::AckPolicy::AckExplicit,
    };
    let deliver_policy = match cfg.deliver_policy {
        DeliverPolicy::All => v1::DeliverPolicy::DeliverAll,
        DeliverPolicy::Last => v1::DeliverPolicy::DeliverLast,
        DeliverPolicy::New => v1::DeliverPolicy::DeliverNew,
        DeliverPolicy::ByStartSequence => v1::DeliverPolicy::DeliverByStartSequence,
        DeliverPolicy::ByStartTime => v1::DeliverPolicy::DeliverByStartTime,
        DeliverPolicy::LastPerSubject => v1::DeliverPolicy::DeliverLastPerSubject,
    };
    Ok(v1::ConsumerConfig {
        stream: stream.to_owned(),
        name: cfg.name.clone(),
        config_json,
        ack_policy: ack_policy as i32,
        deliver_policy: deliver_policy as i32,
        opt_start_seq: cfg.opt_start_seq,
        opt_start_time_unix_nanos: cfg
            .opt_start_time
            .as_ref()
            .map(|t| i64::try_from(t.unix_nanos()).unwrap_or(i64::MAX))
            .unwrap_or(0),
        ack_wait_nanos: cfg.ack_wait,
        max_deliver: cfg.max_deliver,
        filter_subjects: cfg.filters().into_iter().map(str::to_owned).collect(),
        backoff_nanos: cfg.backoff.clone(),
        max_ack_pending: cfg.max_ack_pending,
        pause_until_unix_nanos: cfg
            .pause_until
            .as_ref()
            .map_or(0, |t| i64::try_from(t.unix_nanos()).unwrap_or(i64::MAX)),
        priority_policy: proto_policy(cfg.priority_policy) as i32,
        priority_groups: cfg.priority_groups.clone(),
        priority_timeout_nanos: cfg.pinned_ttl,
    })
}

/// Deletes the consumer's record (the caller stops serving it).
pub(crate) async fn delete(
    cp: &ControlPlaneClient,
    stream: &str,
    name: &str,
) -> Result<(), ApiError> {
    cp_call(|| cp.delete_consumer(stream, name)).await
}

/// Replaces a consumer's stored config (checked by the caller); the stored consumer.
pub(crate) async fn update(
    cp: &ControlPlaneClient,
    stream: &str,
    config: v1::ConsumerConfig,
) -> Result<StoredConsumer, ApiError> {
    let resp = cp_call(|| cp.update_consumer(config.clone(), false)).await?;
    decode(stream, resp)
}

/// Every consumer of every stream (one control-plane call), with its stream.
pub(crate) async fn list_every_stored(
    cp: &ControlPlaneClient,
) -> Result<Vec<(String, StoredConsumer)>, ApiError> {
    let consumers = cp_call(|| cp.list_every_consumer()).await?;
    consumers
        .into_iter()
        .map(|resp| {
            let stream = resp
                .config
                .as_ref()
                .map(|c| c.stream.clone())
                .unwrap_or_default();
            decode(&stream, resp).map(|c| (stream, c))
        })
        .collect()
}

/// Every consumer of a stream, sorted by name.
pub(crate) async fn list_stored(
    cp: &ControlPlaneClient,
    stream: &str,
) -> Result<Vec<StoredConsumer>, ApiError> {
    let consumers = cp_call(|| cp.list_consumers(stream)).await?;
    let mut out = consumers
        .into_iter()
        .map(|resp| decode(stream, resp))
        .collect::<Result<Vec<_>, _>>()?;
    out.sort_by(|a, b| a.config.name.cmp(&b.config.name));
    Ok(out)
}
