//! Conversions between the JetStream wire vocabulary (`infinistream_protocol::jsapi`)
//! and the control plane's gRPC messages.
//!
//! The control plane stores a stream's full JetStream config as canonical JSON and
//! enforces only the limits it needs at commit; this module derives those limits from
//! a checked config and turns control-plane answers back into nats-server's shapes.

use infinistream_cp_client::CallError;
use infinistream_proto::v1;
use infinistream_protocol::jsapi::consumer::{
    ConsumerConfig, ConsumerInfo, PriorityGroupState, SequenceInfo,
};
use infinistream_protocol::jsapi::stream::{
    DiscardPolicy, RetentionPolicy, StreamConfig, StreamInfo, StreamState,
};
use infinistream_protocol::jsapi::{ApiError, Timestamp, codes};

/// A control-plane JetStream error as the wire's [`ApiError`].
pub fn api_error(err: &v1::JsError) -> ApiError {
    ApiError::from(err)
}

/// A failed control-plane call as the wire's [`ApiError`]: a JetStream refusal as
/// itself, any other failure as [`unavailable`].
pub fn call_error(error: &CallError) -> ApiError {
    match error {
        CallError::Refused { error, .. } => api_error(error),
        other => unavailable(other),
    }
}

/// A control-plane call that failed, as nats-server would report a JetStream
/// subsystem that cannot answer: 503, "JetStream system temporarily unavailable"
/// (10008), with the cause appended for operators.
pub fn unavailable(error: &CallError) -> ApiError {
    ApiError::with_description(
        codes::CLUSTER_NOT_AVAIL,
        format!(
            "JetStream system temporarily unavailable: control plane: {}",
            error.message()
        ),
    )
}

/// The control plane's form of a checked stream config.
pub fn proto_config(cfg: &StreamConfig) -> Result<v1::StreamConfig, ApiError> {
    let config_json = serde_json::to_vec(cfg)
        .map_err(|e| ApiError::stream_create(format_args!("encoding stream config: {e}")))?;
    Ok(v1::StreamConfig {
        name: cfg.name.clone(),
        config_json,
        limits: Some(limits(cfg)),
    })
}

/// What the control plane enforces at commit.
pub fn limits(cfg: &StreamConfig) -> v1::StreamLimits {
    v1::StreamLimits {
        subjects: cfg.subjects.clone(),
        retention: match cfg.retention {
            RetentionPolicy::Limits => v1::Retention::Limits,
            RetentionPolicy::Interest => v1::Retention::Interest,
            RetentionPolicy::WorkQueue => v1::Retention::WorkQueue,
        } as i32,
        max_msgs: cfg.max_msgs,
        max_bytes: cfg.max_bytes,
        max_age_nanos: cfg.max_age,
        max_msgs_per_subject: cfg.max_msgs_per_subject,
        max_msg_size: cfg.max_msg_size,
        discard: match cfg.discard {
            DiscardPolicy::Old => v1::Discard::Old,
            DiscardPolicy::New => v1::Discard::New,
        } as i32,
        discard_new_per_subject: cfg.discard_new_per_subject,
        duplicate_window_nanos: cfg.duplicate_window,
        deny_delete: cfg.deny_delete,
        deny_purge: cfg.deny_purge,
        sealed: cfg.sealed,
        allow_rollup: cfg.allow_rollup,
        allow_msg_ttl: cfg.allow_msg_ttl,
        first_seq: cfg.first_seq,
        subject_delete_marker_ttl_nanos: cfg.subject_delete_marker_ttl,
        allow_msg_counter: cfg.allow_msg_counter,
        allow_msg_schedules: cfg.allow_msg_schedules,
    }
}

/// Decodes the stored JetStream config of a control-plane stream.
pub fn stored_config(cfg: &v1::StreamConfig) -> Result<StreamConfig, ApiError> {
    serde_json::from_slice(&cfg.config_json).map_err(|e| {
        ApiError::stream_create(format_args!(
            "stored config of stream `{}` is unreadable: {e}",
            cfg.name
        ))
    })
}

fn timestamp(nanos: i64) -> Timestamp {
    if nanos == 0 {
        Timestamp::ZERO
    } else {
        Timestamp::from_unix_nanos(i128::from(nanos))
    }
}

/// nats-server's stream state from the control plane's.
pub fn state(state: &v1::StreamState) -> StreamState {
    StreamState {
        msgs: state.messages,
        bytes: state.bytes,
        first_seq: state.first_seq,
        first_time: timestamp(state.first_ts_unix_nanos),
        last_seq: state.last_seq,
        last_time: timestamp(state.last_ts_unix_nanos),
        num_subjects: state.num_subjects,
        num_deleted: state.num_deleted,
        deleted: state.deleted.clone(),
        consumers: u64::from(state.consumer_count),
        ..StreamState::default()
    }
}

/// nats-server's stream info from a control-plane answer (whose `error` is unset).
pub fn stream_info(resp: &v1::StreamInfoResponse, now: Timestamp) -> Result<StreamInfo, ApiError> {
    let config = resp
        .config
        .as_ref()
        .ok_or_else(|| ApiError::stream_create("control plane returned no stream config"))?;
    Ok(StreamInfo {
        config: stored_config(config)?,
        created: timestamp(resp.created_unix_nanos),
        state: resp.state.as_ref().map(state).unwrap_or_default(),
        timestamp: now,
        ..StreamInfo::default()
    })
}

/// nats-server's consumer info from the control plane's stored config and state.
///
/// What lives only in the consume role's memory on the agent holding the consumer
/// (waiting pull requests, pause) is left at its default; `push_bound` is for the
/// caller to set from its own interest table.
pub fn consumer_info(
    stream: &str,
    resp: v1::ConsumerInfoResponse,
    now: Timestamp,
) -> Result<ConsumerInfo, ApiError> {
    if let Some(error) = &resp.error {
        return Err(api_error(error));
    }
    let stored = resp.config.unwrap_or_default();
    let config: ConsumerConfig = serde_json::from_slice(&stored.config_json).map_err(|e| {
        ApiError::internal(format_args!(
            "stored consumer config of `{}` does not decode: {e}",
            stored.name
        ))
    })?;
    let state = resp.state.unwrap_or_default();
    let seq = |s: Option<v1::SequenceInfo>| {
        let s = s.unwrap_or_default();
        SequenceInfo {
            consumer: s.consumer_seq,
            stream: s.stream_seq,
            last: (s.last_active_unix_nanos > 0)
                .then(|| Timestamp::from_unix_nanos(i128::from(s.last_active_unix_nanos))),
        }
    };
    Ok(ConsumerInfo {
        stream: stream.to_owned(),
        name: config.name.clone(),
        created: timestamp(resp.created_unix_nanos),
        delivered: seq(state.delivered),
        ack_floor: seq(state.ack_floor),
        num_ack_pending: state.num_ack_pending,
        num_redelivered: state.num_redelivered,
        num_pending: state.num_pending,
        timestamp: now,
        priority_groups: priority_groups(&config, &state, now),
        config: Some(config),
        ..ConsumerInfo::default()
    })
}

/// nats-server's `priority_groups` of a consumer's info: one pin per consumer, reported
/// on its first group; a pin past its timeout is gone.
fn priority_groups(
    config: &ConsumerConfig,
    state: &v1::ConsumerState,
    now: Timestamp,
) -> Vec<PriorityGroupState> {
    let Some(group) = config.priority_groups.first() else {
        return Vec::new();
    };
    let pinned = !state.pinned_client_id.is_empty()
        && i128::from(state.pin_expires_unix_nanos) > now.unix_nanos();
    vec![PriorityGroupState {
        group: group.clone(),
        pinned_client_id: if pinned {
            state.pinned_client_id.clone()
        } else {
            String::new()
        },
        pinned_ts: if pinned {
            timestamp(state.pinned_unix_nanos)
        } else {
            Timestamp::ZERO
        },
    }]
}
