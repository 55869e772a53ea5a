//! Consumer configuration, validation, info, and the consumer requests.
//!
//! [`ConsumerConfig`] carries every field nats-server accepts, and
//! [`ConsumerConfig::check_and_default`] is nats-server's `setConsumerConfigDefaults`
//! followed by `checkConsumerCfg`, with the same errors, so a client sees the same
//! refusal from InfiniStream as from nats-server. The create handler's subject checks
//! (`CONSUMER.CREATE.<stream>[.<name>[.<filter>]]`, `CONSUMER.DURABLE.CREATE…`) live in
//! [`CreateConsumerRequest::check_subject`], the update rules in
//! [`ConsumerConfig::check_update`], and pull requests (`CONSUMER.MSG.NEXT`) in
//! [`NextRequest`] together with the status lines pull clients expect.

use super::response::{ApiResponseType, types};
use super::stream::{
    ApiPaged, ClusterInfo, RetentionPolicy, StreamConfig, is_false, is_zero_i64, is_zero_u64,
    null_default,
};
use super::subjects::ConsumerCreateRoute;
use super::time::GoDuration;
use super::{ApiError, MAX_DESCRIPTION_LEN, MAX_METADATA_LEN, MAX_NAME_LEN, Nanos, Timestamp};
use super::{is_valid_asset_name, metadata_len};
use crate::subject::{is_literal, is_subset_match, is_valid_subject, subjects_collide};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::BTreeMap;

/// Default ack wait for explicit/all ack policies (`JsAckWaitDefault`): 30 s.
pub const DEFAULT_ACK_WAIT: Nanos = 30_000_000_000;
/// Default max ack pending (`JsDefaultMaxAckPending`).
pub const DEFAULT_MAX_ACK_PENDING: i64 = 1000;
/// Default max waiting pull requests (`JSWaitQueueDefaultMax`).
pub const DEFAULT_MAX_WAITING: i64 = 512;
/// Inactive threshold given to ephemerals that set none (`JsDeleteWaitTimeDefault`).
pub const DEFAULT_EPHEMERAL_INACTIVE_THRESHOLD: Nanos = 5_000_000_000;
/// Default pinned-client TTL (`JsDefaultPinnedTTL`): 2 min.
pub const DEFAULT_PINNED_TTL: Nanos = 120_000_000_000;
/// Heartbeat forced by the flow-control ack policy (`sourceHealthHB`): 1 s.
pub const FLOW_CONTROL_HEARTBEAT: Nanos = 1_000_000_000;
const MILLIS_100: Nanos = 100_000_000;
const MILLIS_1: Nanos = 1_000_000;

/// Where a consumer starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum DeliverPolicy {
    /// From the first message.
    #[default]
    #[serde(rename = "all", alias = "undefined")]
    All,
    /// From the last message.
    #[serde(rename = "last")]
    Last,
    /// Only messages stored after creation.
    #[serde(rename = "new")]
    New,
    /// From `opt_start_seq`.
    #[serde(rename = "by_start_sequence")]
    ByStartSequence,
    /// From `opt_start_time`.
    #[serde(rename = "by_start_time")]
    ByStartTime,
    /// The last message of each subject, then new ones.
    #[serde(rename = "last_per_subject")]
    LastPerSubject,
}

/// How deliveries are acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum AckPolicy {
    /// No acks (Go's zero value, so the default when missing).
    #[default]
    #[serde(rename = "none")]
    None,
    /// Acking a sequence acks everything before it.
    #[serde(rename = "all")]
    All,
    /// Each message is acked.
    #[serde(rename = "explicit")]
    Explicit,
    /// Acks derive from flow-control replies (2.14 sourcing consumers).
    #[serde(rename = "flow_control")]
    FlowControl,
}

/// Replay speed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum ReplayPolicy {
    /// As fast as possible.
    #[default]
    #[serde(rename = "instant")]
    Instant,
    /// At the original publish pace.
    #[serde(rename = "original")]
    Original,
}

/// Priority group policy (2.11+).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize)]
pub enum PriorityPolicy {
    /// No priority groups (omitted on the wire).
    #[default]
    #[serde(rename = "none")]
    None,
    /// Overflow to requests carrying min_pending / min_ack_pending.
    #[serde(rename = "overflow")]
    Overflow,
    /// One pinned client at a time.
    #[serde(rename = "pinned_client")]
    PinnedClient,
    /// Requests with lower priority first.
    #[serde(rename = "prioritized")]
    Prioritized,
}

impl<'de> Deserialize<'de> for PriorityPolicy {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        match s.as_ref() {
            "none" => Ok(PriorityPolicy::None),
            "overflow" => Ok(PriorityPolicy::Overflow),
            "pinned_client" => Ok(PriorityPolicy::PinnedClient),
            "prioritized" => Ok(PriorityPolicy::Prioritized),
            // nats-server's words.
            other => Err(serde::de::Error::custom(format_args!(
                "unknown priority policy: \"{other}\""
            ))),
        }
    }
}

impl PriorityPolicy {
    fn is_none(&self) -> bool {
        *self == PriorityPolicy::None
    }
}

/// A consumer's configuration, field for field nats-server's `ConsumerConfig`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ConsumerConfig {
    /// Durable name (legacy durable API).
    #[serde(
        rename = "durable_name",
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_default"
    )]
    pub durable: String,
    /// Name (must equal `durable_name` if both are set).
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_default"
    )]
    pub name: String,
    /// Description (≤ 4 KiB).
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_default"
    )]
    pub description: String,
    /// Start position.
    #[serde(deserialize_with = "null_default")]
    pub deliver_policy: DeliverPolicy,
    /// Start sequence for `by_start_sequence`.
    #[serde(skip_serializing_if = "is_zero_u64", deserialize_with = "null_default")]
    pub opt_start_seq: u64,
    /// Start time for `by_start_time`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub opt_start_time: Option<Timestamp>,
    /// Ack policy.
    #[serde(deserialize_with = "null_default")]
    pub ack_policy: AckPolicy,
    /// Redelivery timeout in nanoseconds.
    #[serde(skip_serializing_if = "is_zero_i64", deserialize_with = "null_default")]
    pub ack_wait: Nanos,
    /// Most deliveries per message (-1 unlimited).
    #[serde(skip_serializing_if = "is_zero_i64", deserialize_with = "null_default")]
    pub max_deliver: i64,
    /// Redelivery delays (nanoseconds), overriding `ack_wait` per attempt.
    #[serde(
        rename = "backoff",
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_default"
    )]
    pub backoff: Vec<Nanos>,
    /// One filter.
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_default"
    )]
    pub filter_subject: String,
    /// Several non-overlapping filters.
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_default"
    )]
    pub filter_subjects: Vec<String>,
    /// Replay speed.
    #[serde(deserialize_with = "null_default")]
    pub replay_policy: ReplayPolicy,
    /// Push rate limit in bits per second.
    #[serde(
        rename = "rate_limit_bps",
        skip_serializing_if = "is_zero_u64",
        deserialize_with = "null_default"
    )]
    pub rate_limit: u64,
    /// Ack sampling, e.g. `"50%"`.
    #[serde(
        rename = "sample_freq",
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_default"
    )]
    pub sample_frequency: String,
    /// Most pull requests waiting at once.
    #[serde(skip_serializing_if = "is_zero_i64", deserialize_with = "null_default")]
    pub max_waiting: i64,
    /// Most deliveries awaiting ack (-1 unlimited).
    #[serde(skip_serializing_if = "is_zero_i64", deserialize_with = "null_default")]
    pub max_ack_pending: i64,
    /// Push flow control.
    #[serde(skip_serializing_if = "is_false", deserialize_with = "null_default")]
    pub flow_control: bool,
    /// Deliver headers only (with `Nats-Msg-Size`).
    #[serde(skip_serializing_if = "is_false", deserialize_with = "null_default")]
    pub headers_only: bool,
    /// Largest batch a pull may ask for.
    #[serde(
        rename = "max_batch",
        skip_serializing_if = "is_zero_i64",
        deserialize_with = "null_default"
    )]
    pub max_request_batch: i64,
    /// Longest `expires` a pull may ask for (nanoseconds).
    #[serde(
        rename = "max_expires",
        skip_serializing_if = "is_zero_i64",
        deserialize_with = "null_default"
    )]
    pub max_request_expires: Nanos,
    /// Largest `max_bytes` a pull may ask for.
    #[serde(
        rename = "max_bytes",
        skip_serializing_if = "is_zero_i64",
        deserialize_with = "null_default"
    )]
    pub max_request_max_bytes: i64,
    /// Push: where deliveries go (empty for pull consumers).
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_default"
    )]
    pub deliver_subject: String,
    /// Push: queue group of the deliver subject.
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_default"
    )]
    pub deliver_group: String,
    /// Push: idle heartbeat interval (nanoseconds).
    #[serde(
        rename = "idle_heartbeat",
        skip_serializing_if = "is_zero_i64",
        deserialize_with = "null_default"
    )]
    pub heartbeat: Nanos,
    /// Delete after this long without interest (nanoseconds).
    #[serde(skip_serializing_if = "is_zero_i64", deserialize_with = "null_default")]
    pub inactive_threshold: Nanos,
    /// Replicas (0 = the stream's).
    #[serde(rename = "num_replicas", deserialize_with = "null_default")]
    pub replicas: i64,
    /// Force memory storage of consumer state.
    #[serde(
        rename = "mem_storage",
        skip_serializing_if = "is_false",
        deserialize_with = "null_default"
    )]
    pub memory_storage: bool,
    /// Internal direct consumer (mirrors/sources).
    #[serde(skip_serializing_if = "is_false", deserialize_with = "null_default")]
    pub direct: bool,
    /// Internal sourcing consumer (2.14).
    #[serde(skip_serializing_if = "is_false", deserialize_with = "null_default")]
    pub sourcing: bool,
    /// User metadata.
    #[serde(
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "null_default"
    )]
    pub metadata: BTreeMap<String, String>,
    /// Paused until this time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pause_until: Option<Timestamp>,
    /// Priority groups.
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_default"
    )]
    pub priority_groups: Vec<String>,
    /// Priority policy.
    #[serde(
        skip_serializing_if = "PriorityPolicy::is_none",
        deserialize_with = "null_default"
    )]
    pub priority_policy: PriorityPolicy,
    /// Pinned-client TTL (nanoseconds).
    #[serde(
        rename = "priority_timeout",
        skip_serializing_if = "is_zero_i64",
        deserialize_with = "null_default"
    )]
    pub pinned_ttl: Nanos,
}

/// The consumer's filters, `filter_subject` and `filter_subjects` together.
fn gather_filters(cfg: &ConsumerConfig) -> Vec<&str> {
    if cfg.filter_subject.is_empty() {
        cfg.filter_subjects.iter().map(String::as_str).collect()
    } else {
        vec![cfg.filter_subject.as_str()]
    }
}

/// A priority group name as nats-server accepts it: 1 to 16 of `A-Za-z0-9-_/=`.
pub fn valid_group_name(g: &str) -> bool {
    (1..=16).contains(&g.len())
        && g.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'_' | b'=' | b'-'))
}

impl ConsumerConfig {
    /// Whether this is a durable (legacy `durable_name` set).
    pub fn is_durable(&self) -> bool {
        !self.durable.is_empty()
    }

    /// Whether this is a pull consumer (no deliver subject).
    pub fn is_pull(&self) -> bool {
        self.deliver_subject.is_empty()
    }

    /// The consumer's name: durable name, else name (empty for a legacy ephemeral that
    /// the server must name).
    pub fn effective_name(&self) -> &str {
        if self.durable.is_empty() {
            &self.name
        } else {
            &self.durable
        }
    }

    /// The filters, `filter_subject` and `filter_subjects` together.
    pub fn filters(&self) -> Vec<&str> {
        gather_filters(self)
    }

    /// nats-server's `setConsumerConfigDefaults` + `checkConsumerCfg` (non-pedantic,
    /// no server or account limits) for a consumer on `stream`; also stamps the 5 s
    /// inactive threshold nats-server gives ephemerals.
    pub fn check_and_default(&self, stream: &StreamConfig) -> Result<ConsumerConfig, ApiError> {
        self.check_and_default_with(stream, false)
    }

    /// [`ConsumerConfig::check_and_default`] in nats-server's pedantic mode or not.
    pub fn check_and_default_with(
        &self,
        stream: &StreamConfig,
        pedantic: bool,
    ) -> Result<ConsumerConfig, ApiError> {
        let mut cfg = self.clone();
        cfg.set_defaults(stream, pedantic)?;
        cfg.check(stream)?;
        if !cfg.is_durable() && cfg.inactive_threshold <= 0 {
            cfg.inactive_threshold = DEFAULT_EPHEMERAL_INACTIVE_THRESHOLD;
        }
        // nats-server stores pause_until in UTC.
        cfg.pause_until = cfg.pause_until.map(Timestamp::to_utc);
        Ok(cfg)
    }

    fn set_defaults(&mut self, stream: &StreamConfig, pedantic: bool) -> Result<(), ApiError> {
        let neg = |field: &str, msg: &str| ApiError::pedantic(format_args!("{field} {msg}"));
        if self.max_deliver == 0 || self.max_deliver < -1 {
            if pedantic && self.max_deliver < -1 {
                return Err(neg("max_deliver", "must be set to -1"));
            }
            self.max_deliver = -1;
        }
        if self.max_waiting < 0 {
            if pedantic {
                return Err(neg("max_waiting", "must not be negative"));
            }
            self.max_waiting = 0;
        }
        if self.max_ack_pending < -1 {
            if pedantic {
                return Err(neg("max_ack_pending", "must be set to -1"));
            }
            self.max_ack_pending = -1;
        }
        for (field, v) in [
            ("max_batch", &mut self.max_request_batch),
            ("max_expires", &mut self.max_request_expires),
            ("max_bytes", &mut self.max_request_max_bytes),
            ("idle_heartbeat", &mut self.heartbeat),
            ("inactive_threshold", &mut self.inactive_threshold),
            ("priority_timeout", &mut self.pinned_ttl),
        ] {
            if *v < 0 {
                if pedantic {
                    return Err(neg(field, "must not be negative"));
                }
                *v = 0;
            }
        }
        if self.deliver_subject.is_empty() && self.max_waiting == 0 {
            self.max_waiting = DEFAULT_MAX_WAITING;
        }
        if self.ack_wait == 0 && matches!(self.ack_policy, AckPolicy::Explicit | AckPolicy::All) {
            self.ack_wait = DEFAULT_ACK_WAIT;
        }
        if let Some(first) = self.backoff.first() {
            if pedantic && self.ack_wait != *first {
                return Err(ApiError::pedantic(
                    "first backoff value has to equal batch AckWait",
                ));
            }
            self.ack_wait = *first;
        }
        let limits = &stream.consumer_limits;
        if self.max_ack_pending == 0 {
            if pedantic && limits.max_ack_pending > 0 {
                return Err(ApiError::pedantic(
                    "max_ack_pending must be set if it's configured in stream limits",
                ));
            }
            self.max_ack_pending = limits.max_ack_pending;
        }
        if self.inactive_threshold == 0 {
            if pedantic && limits.inactive_threshold > 0 {
                return Err(ApiError::pedantic(
                    "inactive_threshold must be set if it's configured in stream limits",
                ));
            }
            self.inactive_threshold = limits.inactive_threshold;
        }
        if self.max_ack_pending == 0 && self.ack_policy != AckPolicy::None {
            self.max_ack_pending = DEFAULT_MAX_ACK_PENDING;
        }
        if self.priority_policy == PriorityPolicy::PinnedClient && self.pinned_ttl == 0 {
            self.pinned_ttl = DEFAULT_PINNED_TTL;
        }
        if self.ack_policy == AckPolicy::FlowControl && !pedantic {
            self.flow_control = true;
            self.heartbeat = FLOW_CONTROL_HEARTBEAT;
        }
        Ok(())
    }

    fn check(&self, stream: &StreamConfig) -> Result<(), ApiError> {
        if !self.name.is_empty() && !is_valid_asset_name(&self.name) {
            return Err(ApiError::stream_invalid_config(
                "consumer name can not contain '.', '*', '>', '\\', '/'",
            ));
        }
        if !self.durable.is_empty() && !is_valid_asset_name(&self.durable) {
            return Err(ApiError::stream_invalid_config(
                "consumer durable name can not contain '.', '*', '>', '\\', '/'",
            ));
        }
        if self.replicas > 0 && self.replicas > stream.num_replicas {
            return Err(ApiError::consumer_replicas_exceeds_stream());
        }
        if self.replicas < 0 {
            return Err(ApiError::replicas_count_cannot_be_negative());
        }
        if matches!(
            stream.retention,
            RetentionPolicy::Interest | RetentionPolicy::WorkQueue
        ) && self.replicas != 0
            && self.replicas != stream.num_replicas
        {
            return Err(ApiError::consumer_replicas_should_match_stream());
        }
        if self.backoff.iter().any(|b| *b < 0) {
            return Err(ApiError::consumer_back_off_negative());
        }
        if self.ack_wait < 0 {
            return Err(ApiError::consumer_ack_wait_negative());
        }
        if self.ack_policy == AckPolicy::FlowControl {
            if self.deliver_subject.is_empty() {
                return Err(ApiError::consumer_ack_fc_requires_push());
            }
            if !self.flow_control {
                return Err(ApiError::consumer_ack_fc_requires_fc());
            }
            if self.heartbeat != FLOW_CONTROL_HEARTBEAT {
                return Err(ApiError::stream_invalid_config(
                    "flow control ack policy heartbeat needs to be 1s",
                ));
            }
            if self.max_ack_pending <= 0 {
                return Err(ApiError::consumer_ack_fc_requires_max_ack_pending());
            }
            if self.ack_wait != 0 || !self.backoff.is_empty() {
                return Err(ApiError::consumer_ack_fc_requires_no_ack_wait());
            }
            if self.max_deliver > 0 {
                return Err(ApiError::consumer_ack_fc_requires_no_max_deliver());
            }
        }
        let lbo = self.backoff.len() as i64;
        if lbo > 0 && self.max_deliver != -1 && lbo > self.max_deliver {
            return Err(ApiError::consumer_max_deliver_backoff());
        }
        if self.description.len() > MAX_DESCRIPTION_LEN {
            return Err(ApiError::consumer_description_too_long(MAX_DESCRIPTION_LEN));
        }
        if !self.deliver_subject.is_empty() {
            if !is_literal(&self.deliver_subject) {
                return Err(ApiError::consumer_deliver_to_wildcards());
            }
            if !is_valid_subject(&self.deliver_subject) {
                return Err(ApiError::consumer_invalid_deliver_subject());
            }
            if stream
                .subjects
                .iter()
                .any(|s| is_subset_match(&self.deliver_subject, s))
            {
                return Err(ApiError::consumer_deliver_cycle());
            }
            if self.max_waiting != 0 {
                return Err(ApiError::consumer_push_max_waiting());
            }
            if self.max_ack_pending > 0 && self.ack_policy == AckPolicy::None {
                return Err(ApiError::consumer_max_pending_ack_policy_required());
            }
            if self.heartbeat > 0 && self.heartbeat < MILLIS_100 {
                return Err(ApiError::consumer_small_heartbeat());
            }
        } else {
            if self.ack_policy == AckPolicy::None && stream.retention == RetentionPolicy::WorkQueue
            {
                return Err(ApiError::consumer_pull_requires_ack());
            }
            if self.rate_limit > 0 {
                return Err(ApiError::consumer_pull_with_rate_limit());
            }
            if self.max_waiting < 0 {
                return Err(ApiError::consumer_max_waiting_negative());
            }
            if self.heartbeat > 0 {
                return Err(ApiError::consumer_hb_requires_push());
            }
            if self.flow_control {
                return Err(ApiError::consumer_fc_requires_push());
            }
            if self.max_request_batch < 0 {
                return Err(ApiError::consumer_max_request_batch_negative());
            }
            if self.max_request_expires != 0 && self.max_request_expires < MILLIS_1 {
                return Err(ApiError::consumer_max_request_expires_too_small());
            }
        }
        let limits = &stream.consumer_limits;
        if limits.max_ack_pending > 0 && self.max_ack_pending > limits.max_ack_pending {
            return Err(ApiError::consumer_max_pending_ack_excess(
                limits.max_ack_pending,
            ));
        }
        if limits.inactive_threshold > 0 && self.inactive_threshold > limits.inactive_threshold {
            return Err(ApiError::consumer_inactive_threshold_excess(GoDuration(
                limits.inactive_threshold,
            )));
        }
        if self.direct {
            if self.deliver_subject.is_empty() {
                return Err(ApiError::consumer_direct_requires_push());
            }
            if self.is_durable() {
                return Err(ApiError::consumer_direct_requires_ephemeral());
            }
        }
        if !self.filter_subject.is_empty() && !self.filter_subjects.is_empty() {
            return Err(ApiError::consumer_duplicate_filter_subjects());
        }
        if !self.filter_subject.is_empty() && !is_valid_subject(&self.filter_subject) {
            return Err(ApiError::stream_invalid_config("invalid subject"));
        }
        if self.filter_subjects.iter().any(String::is_empty) {
            return Err(ApiError::consumer_empty_filter());
        }
        let filters = gather_filters(self);
        for (i, f) in filters.iter().enumerate() {
            if !is_valid_subject(f) {
                return Err(ApiError::stream_invalid_config("invalid subject"));
            }
            for (j, g) in filters.iter().enumerate() {
                if i != j && is_subset_match(f, g) {
                    return Err(ApiError::consumer_overlapping_subject_filters());
                }
            }
        }
        self.check_start()?;
        if !self.sample_frequency.is_empty() {
            let s = self
                .sample_frequency
                .strip_suffix('%')
                .unwrap_or(&self.sample_frequency);
            match s.parse::<i64>() {
                Ok(v) if v >= 0 => {}
                Ok(_) => return Err(ApiError::consumer_invalid_sampling("<nil>")),
                Err(_) => {
                    return Err(ApiError::consumer_invalid_sampling(format_args!(
                        "strconv.Atoi: parsing {s:?}: invalid syntax"
                    )));
                }
            }
        }
        if self.flow_control && self.heartbeat == 0 {
            return Err(ApiError::consumer_with_flow_control_needs_heartbeats());
        }
        if !self.durable.is_empty() && !self.name.is_empty() && self.name != self.durable {
            return Err(ApiError::consumer_create_durable_and_name_mismatch());
        }
        if metadata_len(&self.metadata) > MAX_METADATA_LEN {
            return Err(ApiError::consumer_metadata_length(format_args!(
                "{}KB",
                MAX_METADATA_LEN / 1024
            )));
        }
        if self.priority_policy != PriorityPolicy::None {
            if !self.deliver_subject.is_empty() {
                return Err(ApiError::consumer_push_with_priority_group());
            }
            if self.priority_groups.is_empty() {
                return Err(ApiError::consumer_priority_policy_without_group());
            }
            for g in &self.priority_groups {
                if g.is_empty() {
                    return Err(ApiError::consumer_empty_group_name());
                }
                if !valid_group_name(g) {
                    return Err(ApiError::consumer_invalid_group_name());
                }
            }
        } else {
            if !self.priority_groups.is_empty() {
                return Err(ApiError::consumer_priority_group_with_policy_none());
            }
            if self.pinned_ttl > 0 {
                return Err(ApiError::consumer_pinned_ttl_without_priority_policy_none());
            }
        }
        if stream
            .placement
            .as_ref()
            .is_some_and(|p| !p.preferred.is_empty())
        {
            return Err(ApiError::stream_invalid_config(
                "preferred server not permitted in placement",
            ));
        }
        if self.durable.len() > MAX_NAME_LEN {
            return Err(ApiError::consumer_name_too_long(MAX_NAME_LEN));
        }
        Ok(())
    }

    fn check_start(&self) -> Result<(), ApiError> {
        let bad_start = |dp: &str, start: &str| {
            ApiError::consumer_invalid_policy(format_args!(
                "consumer delivery policy is deliver {dp}, but optional start {start} is also set"
            ))
        };
        let not_set = |dp: &str, what: &str| {
            ApiError::consumer_invalid_policy(format_args!(
                "consumer delivery policy is deliver {dp}, but optional {what} is not set"
            ))
        };
        let seq = self.opt_start_seq > 0;
        let time = self.opt_start_time.is_some();
        match self.deliver_policy {
            DeliverPolicy::All | DeliverPolicy::Last | DeliverPolicy::New => {
                let dp = match self.deliver_policy {
                    DeliverPolicy::All => "all",
                    DeliverPolicy::Last => "last",
                    _ => "new",
                };
                if seq {
                    return Err(bad_start(dp, "sequence"));
                }
                if time {
                    return Err(bad_start(dp, "time"));
                }
            }
            DeliverPolicy::LastPerSubject => {
                if seq {
                    return Err(bad_start("last per subject", "sequence"));
                }
                if time {
                    return Err(bad_start("last per subject", "time"));
                }
                if self.filter_subject.is_empty() && self.filter_subjects.is_empty() {
                    return Err(not_set("last per subject", "filter subject"));
                }
            }
            DeliverPolicy::ByStartSequence => {
                if !seq {
                    return Err(not_set("by start sequence", "start sequence"));
                }
                if time {
                    return Err(bad_start("by start sequence", "time"));
                }
            }
            DeliverPolicy::ByStartTime => {
                if !time {
                    return Err(not_set("by start time", "start time"));
                }
                if seq {
                    return Err(bad_start("by start time", "start sequence"));
                }
            }
        }
        Ok(())
    }

    /// The work-queue rules nats-server applies when adding a consumer to a
    /// work-queue stream (explicit ack, deliver all). Filter uniqueness against the
    /// stream's other consumers is checked with [`ConsumerConfig::filters_overlap`].
    pub fn check_workqueue(&self, stream: &StreamConfig) -> Result<(), ApiError> {
        if stream.retention != RetentionPolicy::WorkQueue || self.direct || self.sourcing {
            return Ok(());
        }
        if !matches!(
            self.ack_policy,
            AckPolicy::Explicit | AckPolicy::FlowControl
        ) {
            return Err(ApiError::consumer_wq_requires_explicit_ack());
        }
        if self.deliver_policy != DeliverPolicy::All {
            return Err(ApiError::consumer_wq_consumer_not_deliver_all());
        }
        Ok(())
    }

    /// Whether two consumers' filters could both match one subject (an unfiltered
    /// consumer overlaps everything): what makes a second work-queue consumer
    /// `consumer_wq_multiple_unfiltered` / `consumer_wq_consumer_not_unique`.
    pub fn filters_overlap(&self, other: &ConsumerConfig) -> bool {
        let a = gather_filters(self);
        let b = gather_filters(other);
        if a.is_empty() || b.is_empty() {
            return true;
        }
        a.iter().any(|x| b.iter().any(|y| subjects_collide(x, y)))
    }

    /// nats-server's `checkNewConsumerConfig`: which fields an update may change.
    /// Both configs as stored (defaulted). Errors are reported as nats-server does,
    /// wrapped in the consumer-create error (10012).
    pub fn check_update(&self, old: &ConsumerConfig) -> Result<(), ApiError> {
        if self == old {
            return Ok(());
        }
        let fail = |msg: &str| Err(ApiError::consumer_create(msg));
        if old.deliver_policy != self.deliver_policy {
            return fail("deliver policy can not be updated");
        }
        if old.memory_storage != self.memory_storage {
            return fail("storage type can not be updated");
        }
        if old.direct != self.direct {
            return fail("direct can not be updated");
        }
        if old.sourcing != self.sourcing {
            return fail("sourcing can not be updated");
        }
        if old.opt_start_seq != self.opt_start_seq {
            return fail("start sequence can not be updated");
        }
        if old.opt_start_time != self.opt_start_time {
            return fail("start time can not be updated");
        }
        if old.ack_policy != self.ack_policy {
            return fail("ack policy can not be updated");
        }
        if old.replay_policy != self.replay_policy {
            return fail("replay policy can not be updated");
        }
        if old.heartbeat != self.heartbeat {
            return fail("heart beats can not be updated");
        }
        if old.flow_control != self.flow_control {
            return fail("flow control can not be updated");
        }
        if old.deliver_subject != self.deliver_subject {
            if old.deliver_subject.is_empty() {
                return fail("can not update pull consumer to push based");
            }
            if self.deliver_subject.is_empty() {
                return fail("can not update push consumer to pull based");
            }
        }
        if old.max_waiting != self.max_waiting {
            return fail("max waiting can not be updated");
        }
        let lbo = self.backoff.len() as i64;
        if lbo > 0 && self.max_deliver != -1 && lbo > self.max_deliver {
            return Err(ApiError::consumer_max_deliver_backoff());
        }
        Ok(())
    }

    /// InfiniStream's gate for consumer features not built yet, refused only when set.
    pub fn unsupported_features(&self) -> Option<ApiError> {
        let refused: &[(&str, bool)] = &[
            ("direct", self.direct),
            ("sourcing", self.sourcing),
            ("ack_policy", self.ack_policy == AckPolicy::FlowControl),
        ];
        refused
            .iter()
            .find(|(_, set)| *set)
            .map(|(field, _)| ApiError::consumer_feature_unsupported(field))
    }
}

/// `action` of a create request: `""` create-or-update, `"create"`, `"update"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ConsumerAction {
    /// Create, or update if it exists (`""`, what legacy clients send).
    #[default]
    CreateOrUpdate,
    /// Only create; an existing consumer with another config is an error.
    Create,
    /// Only update; a missing consumer is an error.
    Update,
}

impl Serialize for ConsumerAction {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(match self {
            ConsumerAction::CreateOrUpdate => "",
            ConsumerAction::Create => "create",
            ConsumerAction::Update => "update",
        })
    }
}

impl<'de> Deserialize<'de> for ConsumerAction {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s: Option<std::borrow::Cow<'de, str>> = Option::deserialize(d)?;
        match s.as_deref() {
            None | Some("") => Ok(ConsumerAction::CreateOrUpdate),
            Some("create") => Ok(ConsumerAction::Create),
            Some("update") => Ok(ConsumerAction::Update),
            Some(other) => Err(serde::de::Error::custom(format_args!(
                "unknown consumer action: \"{other}\""
            ))),
        }
    }
}

/// Body of `CONSUMER.CREATE…` and `CONSUMER.DURABLE.CREATE…`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct CreateConsumerRequest {
    /// Stream (must match the subject).
    #[serde(rename = "stream_name", deserialize_with = "null_default")]
    pub stream: String,
    /// The config.
    #[serde(deserialize_with = "null_default")]
    pub config: ConsumerConfig,
    /// Create / update / either.
    pub action: ConsumerAction,
    /// Refuse instead of adjusting.
    #[serde(skip_serializing_if = "is_false", deserialize_with = "null_default")]
    pub pedantic: bool,
}

impl CreateConsumerRequest {
    /// nats-server's create handler checks between the subject and the body, in its
    /// order; returns the config with `name` set as nats-server does (the durable or
    /// subject name), ready for [`ConsumerConfig::check_and_default`].
    pub fn check_subject(&self, route: &ConsumerCreateRoute) -> Result<ConsumerConfig, ApiError> {
        let mut cfg = self.config.clone();
        let (stream, consumer_name, filter, legacy_durable, legacy_ephemeral) = match route {
            ConsumerCreateRoute::Ephemeral { stream } => {
                (stream.as_str(), cfg.name.clone(), None, false, true)
            }
            ConsumerCreateRoute::Named {
                stream,
                consumer,
                filter,
            } => (
                stream.as_str(),
                consumer.clone(),
                filter.as_deref(),
                false,
                false,
            ),
            ConsumerCreateRoute::Durable { stream, durable } => {
                (stream.as_str(), durable.clone(), None, true, false)
            }
        };
        if stream != self.stream {
            return Err(ApiError::stream_mismatch());
        }
        if consumer_name.contains(['\\', '/']) {
            return Err(ApiError::consumer_name_contains_path_separators());
        }
        if legacy_durable {
            if cfg.durable.is_empty() {
                return Err(ApiError::consumer_durable_name_not_set());
            }
            if consumer_name != cfg.durable {
                return Err(ApiError::consumer_durable_name_not_match_subject());
            }
            cfg.name = consumer_name.clone();
        } else if !legacy_ephemeral {
            if !cfg.durable.is_empty() && consumer_name != cfg.durable {
                return Err(ApiError::consumer_durable_name_not_match_subject());
            }
            cfg.name = consumer_name.clone();
        }
        if legacy_ephemeral && !cfg.durable.is_empty() {
            return Err(ApiError::consumer_ephemeral_with_durable_name());
        }
        if let Some(filter) = filter {
            if !cfg.filter_subjects.is_empty() {
                return Err(ApiError::consumer_multiple_filters_not_allowed());
            }
            if cfg.filter_subject != filter {
                return Err(ApiError::consumer_create_filter_subject_mismatch());
            }
        }
        Ok(cfg)
    }
}

/// Consumer and stream sequence of a delivery or ack position.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SequenceInfo {
    /// Consumer sequence.
    #[serde(rename = "consumer_seq")]
    pub consumer: u64,
    /// Stream sequence.
    #[serde(rename = "stream_seq")]
    pub stream: u64,
    /// Last activity.
    #[serde(
        rename = "last_active",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub last: Option<Timestamp>,
}

/// State of one priority group.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PriorityGroupState {
    /// Group.
    pub group: String,
    /// Pinned client id.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub pinned_client_id: String,
    /// Pinned since (Go's zero time while no client is pinned).
    #[serde(default)]
    pub pinned_ts: Timestamp,
}

/// `CONSUMER.INFO`'s body, element of `CONSUMER.LIST`, body of create replies.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ConsumerInfo {
    /// Stream.
    #[serde(rename = "stream_name")]
    pub stream: String,
    /// Consumer name.
    pub name: String,
    /// Creation time.
    pub created: Timestamp,
    /// Stored config.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<ConsumerConfig>,
    /// Last delivered position.
    #[serde(default)]
    pub delivered: SequenceInfo,
    /// Ack floor.
    #[serde(default)]
    pub ack_floor: SequenceInfo,
    /// Delivered, not yet acked.
    #[serde(default)]
    pub num_ack_pending: u64,
    /// Delivered more than once and pending.
    #[serde(default)]
    pub num_redelivered: u64,
    /// Pull requests waiting.
    #[serde(default)]
    pub num_waiting: u64,
    /// Messages matching the filter not yet delivered.
    #[serde(default)]
    pub num_pending: u64,
    /// Cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<ClusterInfo>,
    /// Push consumer has an active subscriber.
    #[serde(default, skip_serializing_if = "is_false")]
    pub push_bound: bool,
    /// Paused.
    #[serde(default, skip_serializing_if = "is_false")]
    pub paused: bool,
    /// Pause time left (nanoseconds).
    #[serde(default, skip_serializing_if = "is_zero_i64")]
    pub pause_remaining: Nanos,
    /// When the info was gathered.
    #[serde(rename = "ts", default)]
    pub timestamp: Timestamp,
    /// Priority groups.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_default"
    )]
    pub priority_groups: Vec<PriorityGroupState>,
}

/// `CONSUMER.CREATE` reply body.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ConsumerCreateResponse {
    /// The consumer.
    #[serde(flatten)]
    pub info: ConsumerInfo,
}
impl ApiResponseType for ConsumerCreateResponse {
    const TYPE: &'static str = types::CONSUMER_CREATE;
}

/// `CONSUMER.INFO` reply body.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ConsumerInfoResponse {
    /// The consumer.
    #[serde(flatten)]
    pub info: ConsumerInfo,
}
impl ApiResponseType for ConsumerInfoResponse {
    const TYPE: &'static str = types::CONSUMER_INFO;
}

/// `CONSUMER.DELETE` reply body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ConsumerDeleteResponse {
    /// Deleted.
    #[serde(default, skip_serializing_if = "is_false")]
    pub success: bool,
}
impl ApiResponseType for ConsumerDeleteResponse {
    const TYPE: &'static str = types::CONSUMER_DELETE;
}

/// `CONSUMER.PAUSE` request. No body, no `pause_until` or Go's zero time resumes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ConsumerPauseRequest {
    /// Paused until this time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pause_until: Option<Timestamp>,
}

impl ConsumerPauseRequest {
    /// The `pause_until` a consumer gets from this request: `None` resumes.
    pub fn pause_until(&self) -> Option<Timestamp> {
        self.pause_until
            .map(Timestamp::to_utc)
            .filter(|t| !t.is_zero())
    }
}

/// `CONSUMER.PAUSE` reply body. nats-server sends `paused` and `pause_until` (Go's
/// zero time) with errors too ([`ConsumerPauseResponse::render_error`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ConsumerPauseResponse {
    /// Paused now.
    pub paused: bool,
    /// Paused until this time (Go's zero time when resumed).
    pub pause_until: Timestamp,
    /// Pause time left (nanoseconds).
    #[serde(default, skip_serializing_if = "is_zero_i64")]
    pub pause_remaining: Nanos,
}

impl ConsumerPauseResponse {
    /// The answer for a consumer now paused until `pause_until` (`None`: resumed).
    pub fn new(pause_until: Option<Timestamp>, now_unix_nanos: i128) -> Self {
        let until = pause_until.unwrap_or_default();
        let (paused, pause_remaining) = pause_state(pause_until, now_unix_nanos);
        Self {
            paused,
            pause_until: until,
            pause_remaining,
        }
    }

    /// nats-server's error answer: the error, `"paused":false` and a zero `pause_until`.
    pub fn render_error(error: &ApiError) -> Vec<u8> {
        super::response::render_error_with(error, &Self::default())
    }
}

impl ApiResponseType for ConsumerPauseResponse {
    const TYPE: &'static str = types::CONSUMER_PAUSE;
}

/// nats-server's `paused` and `pause_remaining` for a consumer paused until
/// `pause_until`, at `now_unix_nanos`.
pub fn pause_state(pause_until: Option<Timestamp>, now_unix_nanos: i128) -> (bool, Nanos) {
    match pause_until {
        Some(t) if t.unix_nanos() > now_unix_nanos => (
            true,
            Nanos::try_from(t.unix_nanos() - now_unix_nanos).unwrap_or(Nanos::MAX),
        ),
        _ => (false, 0),
    }
}

/// `CONSUMER.RESET` request (2.14, ADR-60). No body, or `seq` 0, resets to one above
/// the ack floor; another `seq` resets so the next delivery is at or above it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ConsumerResetRequest {
    /// The stream sequence to deliver from (0: one above the ack floor).
    #[serde(deserialize_with = "null_default", skip_serializing_if = "is_zero_u64")]
    pub seq: u64,
}

/// `CONSUMER.RESET` reply body: the consumer's info after the reset and the stream
/// sequence it was reset to. nats-server sends `"reset_seq":0` with errors too
/// ([`ConsumerResetResponse::render_error`]).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ConsumerResetResponse {
    /// The consumer after the reset.
    #[serde(flatten)]
    pub info: ConsumerInfo,
    /// The stream sequence the next delivery is at or above.
    pub reset_seq: u64,
}

impl ConsumerResetResponse {
    /// nats-server's error answer: the error and `"reset_seq":0`.
    pub fn render_error(error: &ApiError) -> Vec<u8> {
        #[derive(Serialize)]
        struct ResetSeq {
            reset_seq: u64,
        }
        impl ApiResponseType for ResetSeq {
            const TYPE: &'static str = types::CONSUMER_RESET;
        }
        super::response::render_error_with(error, &ResetSeq { reset_seq: 0 })
    }
}

impl ApiResponseType for ConsumerResetResponse {
    const TYPE: &'static str = types::CONSUMER_RESET;
}

/// `CONSUMER.NAMES` / `CONSUMER.LIST` request (optional body).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ConsumerListRequest {
    /// Page offset.
    #[serde(deserialize_with = "null_default")]
    pub offset: u64,
}

/// `CONSUMER.NAMES` reply body.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ConsumerNamesResponse {
    /// Paging.
    #[serde(flatten)]
    pub paged: ApiPaged,
    /// Names, sorted.
    #[serde(default, deserialize_with = "null_default")]
    pub consumers: Vec<String>,
}
impl ApiResponseType for ConsumerNamesResponse {
    const TYPE: &'static str = types::CONSUMER_NAMES;
}

/// `CONSUMER.LIST` reply body.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ConsumerListResponse {
    /// Paging.
    #[serde(flatten)]
    pub paged: ApiPaged,
    /// Consumers.
    #[serde(default, deserialize_with = "null_default")]
    pub consumers: Vec<ConsumerInfo>,
    /// Consumers that could not be reached.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_default"
    )]
    pub missing: Vec<String>,
    /// Offline consumers and why.
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "null_default"
    )]
    pub offline: BTreeMap<String, String>,
}
impl ApiResponseType for ConsumerListResponse {
    const TYPE: &'static str = types::CONSUMER_LIST;
}

/// A pull request (`CONSUMER.MSG.NEXT` body).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct NextRequest {
    /// How long the request waits (nanoseconds; 0 = until the batch is done).
    #[serde(skip_serializing_if = "is_zero_i64", deserialize_with = "null_default")]
    pub expires: Nanos,
    /// Messages wanted.
    #[serde(skip_serializing_if = "is_zero_i64", deserialize_with = "null_default")]
    pub batch: i64,
    /// Byte budget.
    #[serde(skip_serializing_if = "is_zero_i64", deserialize_with = "null_default")]
    pub max_bytes: i64,
    /// Answer at once (404/408) when nothing is available.
    #[serde(skip_serializing_if = "is_false", deserialize_with = "null_default")]
    pub no_wait: bool,
    /// Heartbeat interval while waiting (nanoseconds).
    #[serde(
        rename = "idle_heartbeat",
        skip_serializing_if = "is_zero_i64",
        deserialize_with = "null_default"
    )]
    pub heartbeat: Nanos,
    /// Priority group.
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_default"
    )]
    pub group: String,
    /// Overflow: only when at least this many are pending.
    #[serde(skip_serializing_if = "is_zero_i64", deserialize_with = "null_default")]
    pub min_pending: i64,
    /// Overflow: only when at least this many await ack.
    #[serde(skip_serializing_if = "is_zero_i64", deserialize_with = "null_default")]
    pub min_ack_pending: i64,
    /// Pinned client id.
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_default"
    )]
    pub id: String,
    /// Prioritized policy: 0 (first) to 9.
    #[serde(skip_serializing_if = "is_zero_i64", deserialize_with = "null_default")]
    pub priority: i64,
    /// The request was JSON, so it carries a priority group (nats-server checks the
    /// group of JSON requests only).
    #[serde(skip)]
    pub json: bool,
}

impl NextRequest {
    /// The request an empty payload means: one message, wait indefinitely.
    pub fn single() -> NextRequest {
        NextRequest {
            batch: 1,
            ..NextRequest::default()
        }
    }

    /// nats-server's `nextReqFromMsg`: empty means batch 1; a bare number is the
    /// batch; JSON is a request. A bad request is the status pull clients get,
    /// `400 Bad Request - <why>`.
    pub fn parse(payload: &[u8]) -> Result<NextRequest, PullStatus> {
        let trimmed = payload.trim_ascii();
        if trimmed.is_empty() {
            return Ok(NextRequest::single());
        }
        if trimmed[0] == b'{' {
            let mut req: NextRequest = serde_json::from_slice(trimmed)
                .map_err(|e| PullStatus::BadRequest(e.to_string()))?;
            req.json = true;
            if req.heartbeat > 0 && req.heartbeat.saturating_mul(2) > req.expires {
                return Err(PullStatus::BadRequest(
                    "heartbeat value too large".to_owned(),
                ));
            }
            return Ok(req);
        }
        let batch = std::str::from_utf8(trimmed)
            .ok()
            .and_then(|s| s.parse::<i64>().ok())
            .unwrap_or(1);
        Ok(NextRequest {
            batch,
            ..NextRequest::default()
        })
    }

    /// The consumer-limit checks nats-server makes on a pull request.
    pub fn check_limits(&self, cfg: &ConsumerConfig) -> Result<(), PullStatus> {
        if !cfg.is_pull() {
            return Err(PullStatus::ConsumerIsPushBased);
        }
        if cfg.max_request_batch > 0 && self.batch > cfg.max_request_batch {
            return Err(PullStatus::ExceededMaxRequestBatch(cfg.max_request_batch));
        }
        if cfg.max_request_expires > 0 && self.expires > cfg.max_request_expires {
            return Err(PullStatus::ExceededMaxRequestExpires(
                cfg.max_request_expires,
            ));
        }
        if cfg.max_request_max_bytes > 0 && self.max_bytes > cfg.max_request_max_bytes {
            return Err(PullStatus::ExceededMaxRequestMaxBytes(
                cfg.max_request_max_bytes,
            ));
        }
        Ok(())
    }
}

/// Status messages a pull or push consumer sends instead of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PullStatus {
    /// `404 No Messages` (no_wait, nothing available).
    NoMessages,
    /// `408 Request Timeout` with what was left of the request.
    RequestTimeout {
        /// Messages not delivered.
        pending_msgs: i64,
        /// Bytes not used.
        pending_bytes: i64,
    },
    /// `408 Requests Pending` (no_wait while other requests wait).
    RequestsPending,
    /// `409 Batch Completed` when the byte budget ran out first.
    BatchCompleted {
        /// Messages not delivered.
        pending_msgs: i64,
        /// Bytes not used.
        pending_bytes: i64,
    },
    /// `409 Message Size Exceeds MaxBytes`.
    MessageSizeExceedsMaxBytes {
        /// Messages not delivered.
        pending_msgs: i64,
        /// Bytes not used.
        pending_bytes: i64,
    },
    /// `409 Exceeded MaxWaiting`.
    ExceededMaxWaiting,
    /// `409 Exceeded MaxRequestBatch of <n>`.
    ExceededMaxRequestBatch(i64),
    /// `409 Exceeded MaxRequestExpires of <duration>`.
    ExceededMaxRequestExpires(Nanos),
    /// `409 Exceeded MaxRequestMaxBytes of <n>`.
    ExceededMaxRequestMaxBytes(i64),
    /// `409 Consumer Deleted`.
    ConsumerDeleted,
    /// `409 Consumer is push based`.
    ConsumerIsPushBased,
    /// `409 Leadership Change`.
    LeadershipChange,
    /// `400 Bad Request - <why>`.
    BadRequest(String),
    /// `100 Idle Heartbeat` with last delivered consumer/stream sequences.
    IdleHeartbeat {
        /// Last consumer sequence delivered.
        last_consumer: u64,
        /// Last stream sequence delivered.
        last_stream: u64,
        /// Flow-control reply the consumer is stalled on, if any.
        stalled: Option<String>,
    },
    /// `100 FlowControl Request` (push flow control; reply to it to continue).
    FlowControlRequest,
    /// `423 Nats-Pin-Id mismatch`: a pull naming another pin than the current one.
    PinIdMismatch,
    /// `423 Nats-Wrong-Pin-Id`: a parked pull whose pin is no longer the current one.
    WrongPinId {
        /// Messages not delivered.
        pending_msgs: i64,
        /// Bytes not used.
        pending_bytes: i64,
    },
}

impl PullStatus {
    /// The header block (no payload) nats-server sends for this status.
    pub fn header_block(&self) -> Vec<u8> {
        use super::headers::{
            CONSUMER_STALLED, LAST_CONSUMER, LAST_STREAM, PENDING_BYTES, PENDING_MESSAGES,
            PIN_ID_MISMATCH, WRONG_PIN_ID,
        };
        use super::msg::{status_header, status_header_with};
        let pending = |m: &i64, b: &i64| {
            vec![
                (PENDING_MESSAGES, m.to_string()),
                (PENDING_BYTES, b.to_string()),
            ]
        };
        match self {
            Self::NoMessages => status_header(404, "No Messages"),
            Self::RequestTimeout {
                pending_msgs,
                pending_bytes,
            } => status_header_with(
                408,
                "Request Timeout",
                &pending(pending_msgs, pending_bytes),
            ),
            Self::RequestsPending => status_header(408, "Requests Pending"),
            Self::BatchCompleted {
                pending_msgs,
                pending_bytes,
            } => status_header_with(
                409,
                "Batch Completed",
                &pending(pending_msgs, pending_bytes),
            ),
            Self::MessageSizeExceedsMaxBytes {
                pending_msgs,
                pending_bytes,
            } => status_header_with(
                409,
                "Message Size Exceeds MaxBytes",
                &pending(pending_msgs, pending_bytes),
            ),
            Self::ExceededMaxWaiting => status_header(409, "Exceeded MaxWaiting"),
            Self::ExceededMaxRequestBatch(n) => {
                status_header(409, &format!("Exceeded MaxRequestBatch of {n}"))
            }
            Self::ExceededMaxRequestExpires(d) => status_header(
                409,
                &format!("Exceeded MaxRequestExpires of {}", GoDuration(*d)),
            ),
            Self::ExceededMaxRequestMaxBytes(n) => {
                status_header(409, &format!("Exceeded MaxRequestMaxBytes of {n}"))
            }
            Self::ConsumerDeleted => status_header(409, "Consumer Deleted"),
            Self::ConsumerIsPushBased => status_header(409, "Consumer is push based"),
            Self::LeadershipChange => status_header(409, "Leadership Change"),
            Self::BadRequest(why) => status_header(400, &format!("Bad Request - {why}")),
            Self::IdleHeartbeat {
                last_consumer,
                last_stream,
                stalled,
            } => {
                let mut extra = vec![
                    (LAST_CONSUMER, last_consumer.to_string()),
                    (LAST_STREAM, last_stream.to_string()),
                ];
                if let Some(fc) = stalled {
                    extra.push((CONSUMER_STALLED, fc.clone()));
                }
                status_header_with(100, "Idle Heartbeat", &extra)
            }
            Self::FlowControlRequest => status_header(100, "FlowControl Request"),
            Self::PinIdMismatch => status_header(423, PIN_ID_MISMATCH),
            Self::WrongPinId {
                pending_msgs,
                pending_bytes,
            } => status_header_with(423, WRONG_PIN_ID, &pending(pending_msgs, pending_bytes)),
        }
    }
}
