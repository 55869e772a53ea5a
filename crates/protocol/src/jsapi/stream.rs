//! Stream configuration, validation, info and the stream management requests.
//!
//! [`StreamConfig`] accepts every field nats-server 2.11–2.15 accepts, fills the same
//! defaults when fields are missing, and serializes the way nats-server does so a
//! client comparing what it sent with what `STREAM.INFO` returns sees no drift.
//! [`StreamConfig::check_and_default`] is nats-server's `checkStreamCfg` (validation
//! order and error texts included, minus server/account limits InfiniStream does not
//! have); [`StreamConfig::check_update`] is its update rule set; and
//! [`StreamConfig::unsupported_features`] is InfiniStream's own gate: fields whose
//! behaviour is not built yet are refused when set to a non-default value instead of
//! being silently ignored.

use super::response::{ApiResponseType, types};
use super::{ApiError, Nanos, Timestamp, is_valid_asset_name, metadata_len};
use super::{MAX_DESCRIPTION_LEN, MAX_METADATA_LEN, MAX_NAME_LEN};
use crate::subject::{
    is_subset_match, is_valid_publish_subject, is_valid_subject, subjects_collide,
};
use serde::{Deserialize, Deserializer, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Default duplicate window (`StreamDefaultDuplicatesWindow`): two minutes.
pub const DEFAULT_DUPLICATE_WINDOW: Nanos = 2 * 60 * 1_000_000_000;
/// Most replicas a stream may ask for (`StreamMaxReplicas`).
pub const MAX_REPLICAS: i64 = 5;
const MILLIS_100: Nanos = 100_000_000;
const SECOND: Nanos = 1_000_000_000;

/// Deserializes `null` as the type's default, as Go's `encoding/json` leaves a field
/// untouched on `null`.
pub(crate) fn null_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

pub(crate) fn is_false(v: &bool) -> bool {
    !*v
}
pub(crate) fn is_zero_i64(v: &i64) -> bool {
    *v == 0
}
pub(crate) fn is_zero_u64(v: &u64) -> bool {
    *v == 0
}
fn is_zero_i32(v: &i32) -> bool {
    *v == 0
}

/// When messages leave a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum RetentionPolicy {
    /// Kept until a limit (count, bytes, age) removes them.
    #[default]
    #[serde(rename = "limits")]
    Limits,
    /// Kept while some consumer has yet to ack them.
    #[serde(rename = "interest")]
    Interest,
    /// Removed once any consumer acks them.
    #[serde(rename = "workqueue")]
    WorkQueue,
}

/// What a full stream does with a new message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum DiscardPolicy {
    /// Drop the oldest messages.
    #[default]
    #[serde(rename = "old")]
    Old,
    /// Refuse the new message.
    #[serde(rename = "new")]
    New,
}

/// Storage class the client asked for; InfiniStream keeps it as given (durability comes
/// from the bucket either way).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum StorageType {
    /// `file`, nats-server's default.
    #[default]
    #[serde(rename = "file")]
    File,
    /// `memory`.
    #[serde(rename = "memory")]
    Memory,
}

/// Block compression asked for; a storage detail, accepted and reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum StoreCompression {
    /// `none`.
    #[default]
    #[serde(rename = "none")]
    None,
    /// `s2`.
    #[serde(rename = "s2")]
    S2,
}

/// Persistence mode (2.12+): `default` acks after the write, `async` before.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize)]
pub enum PersistMode {
    /// Omitted on the wire (Go's zero value).
    #[default]
    #[serde(rename = "default")]
    Default,
    /// `async`.
    #[serde(rename = "async")]
    Async,
}

impl PersistMode {
    fn is_default(&self) -> bool {
        *self == PersistMode::Default
    }
}

impl<'de> Deserialize<'de> for PersistMode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        match s.as_ref() {
            "default" | "" => Ok(PersistMode::Default),
            "async" => Ok(PersistMode::Async),
            other => Err(serde::de::Error::custom(format_args!(
                "can not unmarshal \"{other}\""
            ))),
        }
    }
}

/// Where replicas should be placed (accepted; InfiniStream has one placement).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Placement {
    /// Cluster name.
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_default"
    )]
    pub cluster: String,
    /// Server tags.
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_default"
    )]
    pub tags: Vec<String>,
    /// Preferred leader (refused by nats-server in configs).
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_default"
    )]
    pub preferred: String,
}

/// A subject transform `src` → `dest`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct SubjectTransform {
    /// Source filter.
    #[serde(rename = "src", deserialize_with = "null_default")]
    pub source: String,
    /// Destination mapping.
    #[serde(rename = "dest", deserialize_with = "null_default")]
    pub destination: String,
}

/// Republish stored messages to another subject.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct RePublish {
    /// Source filter (empty means `>`).
    #[serde(
        rename = "src",
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_default"
    )]
    pub source: String,
    /// Destination.
    #[serde(rename = "dest", deserialize_with = "null_default")]
    pub destination: String,
    /// Republish headers only.
    #[serde(skip_serializing_if = "is_false", deserialize_with = "null_default")]
    pub headers_only: bool,
}

/// Access to a stream in another account or domain.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ExternalStream {
    /// API prefix.
    #[serde(rename = "api", deserialize_with = "null_default")]
    pub api_prefix: String,
    /// Delivery prefix.
    #[serde(rename = "deliver", deserialize_with = "null_default")]
    pub deliver_prefix: String,
}

/// A durable consumer used for sourcing (2.14+).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct StreamConsumerSource {
    /// Consumer name.
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_default"
    )]
    pub name: String,
    /// Deliver subject.
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_default"
    )]
    pub deliver_subject: String,
}

/// A mirror or source origin.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct StreamSource {
    /// Origin stream name.
    #[serde(deserialize_with = "null_default")]
    pub name: String,
    /// Start sequence.
    #[serde(skip_serializing_if = "is_zero_u64", deserialize_with = "null_default")]
    pub opt_start_seq: u64,
    /// Start time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub opt_start_time: Option<Timestamp>,
    /// Filter.
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_default"
    )]
    pub filter_subject: String,
    /// Transforms.
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_default"
    )]
    pub subject_transforms: Vec<SubjectTransform>,
    /// Cross-account or cross-domain access.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external: Option<ExternalStream>,
    /// Durable sourcing consumer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consumer: Option<StreamConsumerSource>,
}

impl StreamSource {
    /// nats-server's `composeIName`: name, filter/transforms and external prefix, used to
    /// detect duplicate sources.
    fn identity(&self) -> String {
        let mut id = self.name.clone();
        if let Some(ext) = &self.external {
            id.push(':');
            id.push_str(&ext.api_prefix);
        }
        let mut parts: Vec<String> = if self.subject_transforms.is_empty() {
            vec![format!(
                "{}\u{0}",
                if self.filter_subject.is_empty() {
                    ">"
                } else {
                    &self.filter_subject
                }
            )]
        } else {
            self.subject_transforms
                .iter()
                .map(|t| {
                    format!(
                        "{}\u{0}{}",
                        if t.source.is_empty() { ">" } else { &t.source },
                        t.destination
                    )
                })
                .collect()
        };
        parts.sort();
        id.push(' ');
        id.push_str(&parts.join("\u{1}"));
        id
    }
}

/// Defaults the stream gives its consumers.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct StreamConsumerLimits {
    /// Default and cap for consumers' `inactive_threshold` (nanoseconds).
    #[serde(skip_serializing_if = "is_zero_i64", deserialize_with = "null_default")]
    pub inactive_threshold: Nanos,
    /// Default and cap for consumers' `max_ack_pending`.
    #[serde(skip_serializing_if = "is_zero_i64", deserialize_with = "null_default")]
    pub max_ack_pending: i64,
}

/// A stream's configuration, field for field nats-server's `StreamConfig`.
///
/// Missing fields take nats-server's defaults (`-1` for the unlimited limits, `file`
/// storage, `limits` retention); `check_and_default` fills the rest (subjects,
/// replicas, duplicate window).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct StreamConfig {
    /// Stream name.
    #[serde(deserialize_with = "null_default")]
    pub name: String,
    /// Free-form description (≤ 4 KiB).
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_default"
    )]
    pub description: String,
    /// Subjects captured (wildcards allowed); defaults to `[name]`.
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_default"
    )]
    pub subjects: Vec<String>,
    /// Retention policy.
    #[serde(deserialize_with = "null_default")]
    pub retention: RetentionPolicy,
    /// Most consumers (-1 unlimited).
    #[serde(deserialize_with = "null_default")]
    pub max_consumers: i64,
    /// Most messages (-1 unlimited).
    #[serde(deserialize_with = "null_default")]
    pub max_msgs: i64,
    /// Most bytes (-1 unlimited).
    #[serde(deserialize_with = "null_default")]
    pub max_bytes: i64,
    /// Oldest message age in nanoseconds (0 unlimited).
    #[serde(deserialize_with = "null_default")]
    pub max_age: Nanos,
    /// Most messages per subject (-1 unlimited).
    #[serde(deserialize_with = "null_default")]
    pub max_msgs_per_subject: i64,
    /// Largest message (-1 unlimited).
    #[serde(skip_serializing_if = "is_zero_i32", deserialize_with = "null_default")]
    pub max_msg_size: i32,
    /// Discard policy.
    #[serde(deserialize_with = "null_default")]
    pub discard: DiscardPolicy,
    /// Storage type.
    #[serde(deserialize_with = "null_default")]
    pub storage: StorageType,
    /// Replica count asked for (reported as given).
    #[serde(deserialize_with = "null_default")]
    pub num_replicas: i64,
    /// Do not ack publishes.
    #[serde(skip_serializing_if = "is_false", deserialize_with = "null_default")]
    pub no_ack: bool,
    /// Legacy stream templates (removed in 2.11); accepted and echoed.
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_default"
    )]
    pub template_owner: String,
    /// `Nats-Msg-Id` de-duplication window in nanoseconds.
    #[serde(skip_serializing_if = "is_zero_i64", deserialize_with = "null_default")]
    pub duplicate_window: Nanos,
    /// Placement.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub placement: Option<Placement>,
    /// Mirror origin.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mirror: Option<StreamSource>,
    /// Source origins.
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_default"
    )]
    pub sources: Vec<StreamSource>,
    /// Compression.
    #[serde(deserialize_with = "null_default")]
    pub compression: StoreCompression,
    /// First sequence of a new stream.
    #[serde(skip_serializing_if = "is_zero_u64", deserialize_with = "null_default")]
    pub first_seq: u64,
    /// Transform applied to incoming subjects.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject_transform: Option<SubjectTransform>,
    /// Republish after storing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub republish: Option<RePublish>,
    /// Serve `$JS.API.DIRECT.GET`.
    #[serde(deserialize_with = "null_default")]
    pub allow_direct: bool,
    /// Serve direct gets for the mirror origin.
    #[serde(deserialize_with = "null_default")]
    pub mirror_direct: bool,
    /// Discard new per subject (requires discard new and max_msgs_per_subject).
    #[serde(skip_serializing_if = "is_false", deserialize_with = "null_default")]
    pub discard_new_per_subject: bool,
    /// No more messages in or out.
    #[serde(deserialize_with = "null_default")]
    pub sealed: bool,
    /// Refuse message deletes.
    #[serde(deserialize_with = "null_default")]
    pub deny_delete: bool,
    /// Refuse purges.
    #[serde(deserialize_with = "null_default")]
    pub deny_purge: bool,
    /// Honour `Nats-Rollup`.
    #[serde(rename = "allow_rollup_hdrs", deserialize_with = "null_default")]
    pub allow_rollup: bool,
    /// Consumer defaults.
    #[serde(deserialize_with = "null_default")]
    pub consumer_limits: StreamConsumerLimits,
    /// Honour `Nats-TTL`.
    #[serde(deserialize_with = "null_default")]
    pub allow_msg_ttl: bool,
    /// TTL of subject delete markers (nanoseconds).
    #[serde(skip_serializing_if = "is_zero_i64", deserialize_with = "null_default")]
    pub subject_delete_marker_ttl: Nanos,
    /// Counter CRDT stream (2.12).
    #[serde(skip_serializing_if = "is_false", deserialize_with = "null_default")]
    pub allow_msg_counter: bool,
    /// Atomic batch publish (2.12).
    #[serde(
        rename = "allow_atomic",
        skip_serializing_if = "is_false",
        deserialize_with = "null_default"
    )]
    pub allow_atomic_publish: bool,
    /// Message schedules (2.12).
    #[serde(skip_serializing_if = "is_false", deserialize_with = "null_default")]
    pub allow_msg_schedules: bool,
    /// Persistence mode (2.12).
    #[serde(
        skip_serializing_if = "PersistMode::is_default",
        deserialize_with = "null_default"
    )]
    pub persist_mode: PersistMode,
    /// Fast batch publish (2.14).
    #[serde(
        rename = "allow_batched",
        skip_serializing_if = "is_false",
        deserialize_with = "null_default"
    )]
    pub allow_batch_publish: bool,
    /// User metadata (keys sorted, as Go writes maps).
    #[serde(
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "null_default"
    )]
    pub metadata: BTreeMap<String, String>,
}

impl Default for StreamConfig {
    fn default() -> Self {
        Self {
            name: String::new(),
            description: String::new(),
            subjects: Vec::new(),
            retention: RetentionPolicy::Limits,
            max_consumers: -1,
            max_msgs: -1,
            max_bytes: -1,
            max_age: 0,
            max_msgs_per_subject: -1,
            max_msg_size: -1,
            discard: DiscardPolicy::Old,
            storage: StorageType::File,
            num_replicas: 1,
            no_ack: false,
            template_owner: String::new(),
            duplicate_window: 0,
            placement: None,
            mirror: None,
            sources: Vec::new(),
            compression: StoreCompression::None,
            first_seq: 0,
            subject_transform: None,
            republish: None,
            allow_direct: false,
            mirror_direct: false,
            discard_new_per_subject: false,
            sealed: false,
            deny_delete: false,
            deny_purge: false,
            allow_rollup: false,
            consumer_limits: StreamConsumerLimits::default(),
            allow_msg_ttl: false,
            subject_delete_marker_ttl: 0,
            allow_msg_counter: false,
            allow_atomic_publish: false,
            allow_msg_schedules: false,
            persist_mode: PersistMode::Default,
            allow_batch_publish: false,
            metadata: BTreeMap::new(),
        }
    }
}

fn invalid(msg: impl std::fmt::Display) -> ApiError {
    ApiError::stream_invalid_config(msg)
}

/// Maps 0 and values below -1 to -1 (unlimited), refusing < -1 in pedantic mode.
fn unlimited(v: &mut i64, field: &str, pedantic: bool) -> Result<(), ApiError> {
    if *v == 0 || *v < -1 {
        if pedantic && *v < -1 {
            return Err(ApiError::pedantic(format_args!(
                "{field} must be set to -1"
            )));
        }
        *v = -1;
    }
    Ok(())
}

impl StreamConfig {
    /// A config with nats-server's defaults and the given name and subjects.
    pub fn new(
        name: impl Into<String>,
        subjects: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        Self {
            name: name.into(),
            subjects: subjects.into_iter().map(Into::into).collect(),
            ..Self::default()
        }
    }

    /// nats-server's `checkStreamCfg` (non-pedantic): validates and returns the config
    /// with defaults applied, or the error nats-server would give.
    ///
    /// Checks that need other streams (subject overlap between streams, mirror/source
    /// cycles, existing origin sizes) and account limits are the caller's.
    pub fn check_and_default(&self) -> Result<StreamConfig, ApiError> {
        self.check_and_default_with(false)
    }

    /// [`StreamConfig::check_and_default`] with nats-server's pedantic mode (the
    /// request's `"pedantic":true`): refuse instead of silently adjusting.
    pub fn check_and_default_with(&self, pedantic: bool) -> Result<StreamConfig, ApiError> {
        if !is_valid_asset_name(&self.name) {
            return Err(invalid(
                "stream name is required and can not contain '.', '*', '>', '\\', '/'",
            ));
        }
        if self.name.len() > MAX_NAME_LEN {
            return Err(invalid(format_args!(
                "stream name is too long, maximum allowed is {MAX_NAME_LEN}"
            )));
        }
        if self.description.len() > MAX_DESCRIPTION_LEN {
            return Err(invalid(format_args!(
                "stream description is too long, maximum allowed is {MAX_DESCRIPTION_LEN}"
            )));
        }
        if metadata_len(&self.metadata) > MAX_METADATA_LEN {
            return Err(invalid(format_args!(
                "stream metadata exceeds maximum size of {MAX_METADATA_LEN} bytes"
            )));
        }
        let mut cfg = self.clone();

        if cfg.num_replicas == 0 {
            cfg.num_replicas = 1;
        }
        if cfg.num_replicas > MAX_REPLICAS {
            return Err(invalid(format_args!("maximum replicas is {MAX_REPLICAS}")));
        }
        if cfg.num_replicas < 0 {
            return Err(ApiError::replicas_count_cannot_be_negative());
        }
        unlimited(&mut cfg.max_msgs, "max_msgs", pedantic)?;
        unlimited(
            &mut cfg.max_msgs_per_subject,
            "max_msgs_per_subject",
            pedantic,
        )?;
        unlimited(&mut cfg.max_bytes, "max_bytes", pedantic)?;
        if cfg.max_msg_size == 0 || cfg.max_msg_size < -1 {
            if pedantic && cfg.max_msg_size < -1 {
                return Err(ApiError::pedantic("max_msg_size must be set to -1"));
            }
            cfg.max_msg_size = -1;
        }
        unlimited(&mut cfg.max_consumers, "max_consumers", pedantic)?;
        if cfg.max_age < 0 {
            return Err(invalid("max age can not be negative"));
        }
        if cfg.max_age != 0 && cfg.max_age < MILLIS_100 {
            return Err(invalid("max age needs to be >= 100ms"));
        }

        if cfg.duplicate_window == 0 && cfg.mirror.is_none() && cfg.sources.is_empty() {
            if cfg.max_age != 0 && cfg.max_age < DEFAULT_DUPLICATE_WINDOW {
                if pedantic {
                    return Err(ApiError::pedantic(
                        "duplicate window cannot be bigger than max age",
                    ));
                }
                cfg.duplicate_window = cfg.max_age;
            } else {
                cfg.duplicate_window = DEFAULT_DUPLICATE_WINDOW;
            }
        }
        if cfg.duplicate_window < 0 {
            return Err(invalid("duplicates window can not be negative"));
        }
        if cfg.max_age != 0 && cfg.duplicate_window > cfg.max_age {
            return Err(invalid("duplicates window can not be larger then max age"));
        }
        if cfg.duplicate_window > 0 && cfg.duplicate_window < MILLIS_100 {
            return Err(invalid("duplicates window needs to be >= 100ms"));
        }

        if cfg.deny_purge && cfg.allow_rollup {
            return Err(invalid("roll-ups require the purge permission"));
        }

        if cfg.allow_msg_counter {
            if cfg.discard == DiscardPolicy::New {
                return Err(invalid("counter stream cannot use discard new"));
            }
            if cfg.allow_msg_ttl {
                return Err(invalid("counter stream cannot use message TTLs"));
            }
            if cfg.allow_msg_schedules {
                return Err(invalid("counter stream cannot use message schedules"));
            }
            if cfg.retention != RetentionPolicy::Limits {
                return Err(invalid("counter stream can only use limits retention"));
            }
        }

        if cfg.discard_new_per_subject {
            if cfg.discard != DiscardPolicy::New {
                return Err(invalid(
                    "discard new per subject requires discard new policy to be set",
                ));
            }
            if cfg.max_msgs_per_subject <= 0 {
                return Err(invalid(
                    "discard new per subject requires max msgs per subject > 0",
                ));
            }
        }

        if cfg.subject_delete_marker_ttl > 0 {
            if cfg.subject_delete_marker_ttl < SECOND {
                return Err(invalid(
                    "subject delete marker TTL must be at least 1 second",
                ));
            }
            if !cfg.allow_msg_ttl {
                if pedantic {
                    return Err(invalid(
                        "subject delete marker cannot be set if message TTLs are disabled",
                    ));
                }
                cfg.allow_msg_ttl = true;
            }
            if !cfg.allow_rollup {
                if pedantic {
                    return Err(invalid(
                        "subject delete marker cannot be set if roll-ups are disabled",
                    ));
                }
                cfg.allow_rollup = true;
                cfg.deny_purge = false;
            }
        } else if cfg.subject_delete_marker_ttl < 0 {
            return Err(invalid("subject delete marker TTL must not be negative"));
        }

        if cfg.allow_msg_schedules {
            if cfg.discard == DiscardPolicy::New {
                return Err(invalid("message scheduling cannot use discard new"));
            }
            if !cfg.allow_rollup {
                if pedantic {
                    return Err(invalid(
                        "message scheduling cannot be set if roll-ups are disabled",
                    ));
                }
                cfg.allow_rollup = true;
                cfg.deny_purge = false;
            }
        }

        if cfg.persist_mode == PersistMode::Async {
            if cfg.storage != StorageType::File {
                return Err(invalid(
                    "async persist mode is only supported on file storage",
                ));
            }
            if cfg.num_replicas > 1 {
                return Err(invalid(
                    "async persist mode is not supported on replicated streams",
                ));
            }
            if cfg.allow_atomic_publish {
                return Err(invalid(
                    "async persist mode is not supported with atomic batch publish",
                ));
            }
        }

        let mut delivery_prefixes = Vec::new();
        let mut api_prefixes = Vec::new();
        if let Some(mirror) = &cfg.mirror {
            check_mirror(&cfg, mirror)?;
            if let Some(ext) = &mirror.external {
                if !ext.deliver_prefix.is_empty() {
                    delivery_prefixes.push(ext.deliver_prefix.clone());
                }
                if !ext.api_prefix.is_empty() {
                    api_prefixes.push(ext.api_prefix.clone());
                }
            }
        }
        if !cfg.sources.is_empty() && cfg.allow_msg_schedules {
            return Err(ApiError::source_with_msg_schedules());
        }
        check_sources(&cfg.sources)?;
        for src in &cfg.sources {
            if let Some(ext) = &src.external {
                if !ext.deliver_prefix.is_empty() {
                    delivery_prefixes.push(ext.deliver_prefix.clone());
                }
                if !ext.api_prefix.is_empty() {
                    api_prefixes.push(ext.api_prefix.clone());
                }
            }
        }
        for pfx in &delivery_prefixes {
            if !is_valid_publish_subject(pfx) {
                return Err(ApiError::stream_invalid_external_delivery_subj(pfx));
            }
        }
        for pfx in &api_prefixes {
            if !is_valid_publish_subject(pfx) {
                return Err(invalid(format_args!(
                    "stream external api prefix {pfx:?} must be a valid subject without wildcards"
                )));
            }
            if subjects_collide(pfx, "$JS.API") {
                return Err(ApiError::stream_external_api_overlap(pfx, "$JS.API"));
            }
        }

        if cfg.subjects.is_empty() {
            if cfg.mirror.is_none() && cfg.sources.is_empty() {
                cfg.subjects.push(cfg.name.clone());
            }
        } else {
            if cfg.mirror.is_some() {
                return Err(ApiError::mirror_with_subjects());
            }
            check_subjects(&cfg)?;
        }

        if cfg.subjects.is_empty() && cfg.sources.is_empty() && cfg.mirror.is_none() {
            return Err(invalid(
                "stream needs at least one configured subject or be a source/mirror",
            ));
        }

        if let Some(tr) = &cfg.subject_transform {
            if !tr.source.is_empty() && !is_valid_subject(&tr.source) {
                return Err(ApiError::stream_transform_invalid_source(format_args!(
                    "invalid subject {}",
                    tr.source
                )));
            }
            if !is_valid_subject(&tr.destination) {
                return Err(ApiError::stream_transform_invalid_destination(
                    format_args!("invalid mapping destination {}", tr.destination),
                ));
            }
        }

        if let Some(rp) = cfg.republish.as_mut() {
            if rp.source.is_empty() {
                if pedantic {
                    return Err(ApiError::pedantic("republish source can not be empty"));
                }
                rp.source = ">".to_owned();
            }
            if rp.destination == ">"
                && rp.source == ">"
                && cfg.subjects.len() == 1
                && cfg
                    .subject_transform
                    .as_ref()
                    .is_some_and(|t| t.source == cfg.subjects[0])
            {
                if pedantic {
                    return Err(ApiError::pedantic(
                        "implicit republish based on subject transform",
                    ));
                }
                if let Some(t) = &cfg.subject_transform {
                    rp.source = t.destination.clone();
                    rp.destination = t.destination.clone();
                }
            }
            let rp = rp.clone();
            if cfg
                .subjects
                .iter()
                .any(|s| subjects_collide(&rp.destination, s))
            {
                return Err(invalid(
                    "stream configuration for republish destination forms a cycle",
                ));
            }
            if !is_valid_subject(&rp.source) || !is_valid_subject(&rp.destination) {
                return Err(invalid(format_args!(
                    "stream configuration for republish with transform from '{}' to '{}' not valid",
                    rp.source, rp.destination
                )));
            }
        }

        if cfg
            .placement
            .as_ref()
            .is_some_and(|p| *p == Placement::default())
        {
            cfg.placement = None;
        }
        if cfg
            .placement
            .as_ref()
            .is_some_and(|p| !p.preferred.is_empty())
        {
            return Err(invalid("preferred server not permitted in placement"));
        }
        Ok(cfg)
    }

    /// The checks nats-server's `STREAM.CREATE` handler makes around `checkStreamCfg`:
    /// the name in the subject must match the config, no path separators, a new
    /// stream can not be sealed, `mirror_direct` needs a mirror. Then
    /// [`StreamConfig::check_and_default_with`].
    pub fn check_create(
        &self,
        name_in_subject: &str,
        pedantic: bool,
    ) -> Result<StreamConfig, ApiError> {
        if name_in_subject != self.name {
            return Err(ApiError::stream_mismatch());
        }
        if name_in_subject.contains(['\\', '/']) {
            return Err(ApiError::stream_name_contains_path_separators());
        }
        if self.sealed {
            return Err(invalid("stream configuration for create can not be sealed"));
        }
        if self.mirror_direct && self.mirror.is_none() {
            return Err(invalid("stream has no mirror but does have mirror direct"));
        }
        self.check_and_default_with(pedantic)
    }

    /// nats-server's `configUpdateCheck`: validates `self` as an update of `old` (both
    /// as stored, i.e. already defaulted) and returns the config to store.
    pub fn check_update(
        &self,
        old: &StreamConfig,
        pedantic: bool,
    ) -> Result<StreamConfig, ApiError> {
        let mut cfg = self.check_and_default_with(pedantic)?;
        if cfg.name != old.name {
            return Err(invalid("stream configuration name must match original"));
        }
        if cfg.storage != old.storage {
            return Err(invalid(
                "stream configuration update can not change storage type",
            ));
        }
        if cfg.retention != old.retention
            && (old.retention == RetentionPolicy::WorkQueue
                || cfg.retention == RetentionPolicy::WorkQueue)
        {
            return Err(invalid(
                "stream configuration update can not change retention policy to/from workqueue",
            ));
        }
        if !cfg.sealed && old.sealed {
            return Err(invalid(
                "stream configuration update can not unseal a sealed stream",
            ));
        }
        if !cfg.deny_delete && old.deny_delete {
            return Err(invalid(
                "stream configuration update can not cancel deny message deletes",
            ));
        }
        if !cfg.deny_purge && old.deny_purge {
            return Err(invalid(
                "stream configuration update can not cancel deny purge",
            ));
        }
        if cfg.mirror.is_some() && cfg.mirror != old.mirror {
            return Err(ApiError::stream_mirror_not_updatable());
        }
        if old.allow_msg_ttl && !cfg.allow_msg_ttl {
            return Err(invalid("message TTL status can not be disabled"));
        }
        if cfg.allow_msg_counter != old.allow_msg_counter {
            return Err(invalid(
                "stream configuration update can not change message counter setting",
            ));
        }
        if old.allow_msg_schedules && !cfg.allow_msg_schedules {
            return Err(invalid("message schedules can not be disabled"));
        }
        if old.persist_mode != cfg.persist_mode {
            return Err(invalid(
                "stream configuration update can not change persist mode",
            ));
        }
        if cfg.sealed {
            cfg.max_age = 0;
            cfg.discard = DiscardPolicy::New;
            cfg.deny_delete = true;
            cfg.deny_purge = true;
            cfg.allow_rollup = false;
        }
        Ok(cfg)
    }

    /// The `STREAM.UPDATE` handler's subject check, then [`StreamConfig::check_update`].
    pub fn check_update_request(
        &self,
        name_in_subject: &str,
        old: &StreamConfig,
        pedantic: bool,
    ) -> Result<StreamConfig, ApiError> {
        if name_in_subject != self.name {
            return Err(ApiError::stream_mismatch());
        }
        self.check_update(old, pedantic)
    }

    /// InfiniStream's gate for valid JetStream features whose behaviour is not built
    /// yet: the first such field set to a non-default value, as a clear error naming
    /// it. Accepted as storage details: `storage`, `num_replicas`, `placement`,
    /// `compression`, `persist_mode` (every ack is durable anyway), `no_ack`.
    pub fn unsupported_features(&self) -> Option<ApiError> {
        let refused: &[(&str, bool)] = &[
            ("mirror", self.mirror.is_some()),
            ("sources", !self.sources.is_empty()),
            ("mirror_direct", self.mirror_direct),
            ("republish", self.republish.is_some()),
            ("subject_transform", self.subject_transform.is_some()),
            ("template_owner", !self.template_owner.is_empty()),
        ];
        refused
            .iter()
            .find(|(_, set)| *set)
            .map(|(field, _)| ApiError::stream_feature_unsupported(field))
    }

    /// Whether a configured subject of this stream collides with any subject of `other`
    /// (the cross-stream overlap nats-server refuses with 10065).
    pub fn subjects_overlap(&self, other: &StreamConfig) -> bool {
        self.subjects
            .iter()
            .any(|a| other.subjects.iter().any(|b| subjects_collide(a, b)))
    }
}

fn check_mirror(cfg: &StreamConfig, mirror: &StreamSource) -> Result<(), ApiError> {
    if cfg.first_seq > 0 {
        return Err(ApiError::mirror_with_first_seq());
    }
    if !cfg.subjects.is_empty() {
        return Err(ApiError::mirror_with_subjects());
    }
    if !cfg.sources.is_empty() {
        return Err(ApiError::mirror_with_sources());
    }
    if cfg.allow_msg_counter {
        return Err(ApiError::mirror_with_counters());
    }
    if cfg.allow_atomic_publish {
        return Err(ApiError::mirror_with_atomic_publish());
    }
    if cfg.allow_batch_publish {
        return Err(ApiError::mirror_with_batch_publish());
    }
    if cfg.allow_msg_schedules {
        return Err(ApiError::mirror_with_msg_schedules());
    }
    if let Some(c) = &mirror.consumer
        && (!is_valid_asset_name(&c.name)
            || !is_valid_publish_subject(&c.deliver_subject)
            || mirror.opt_start_seq != 0
            || mirror.opt_start_time.is_some()
            || !mirror.filter_subject.is_empty())
    {
        return Err(ApiError::mirror_durable_consumer_cfg_invalid());
    }
    if !mirror.filter_subject.is_empty() && !mirror.subject_transforms.is_empty() {
        return Err(ApiError::mirror_multiple_filters_not_allowed());
    }
    if cfg.subject_delete_marker_ttl > 0 {
        return Err(invalid("subject delete markers forbidden on mirrors"));
    }
    for (i, tr) in mirror.subject_transforms.iter().enumerate() {
        if !tr.source.is_empty() && !is_valid_subject(&tr.source) {
            return Err(ApiError::mirror_invalid_subject_filter(format_args!(
                "invalid subject {}",
                tr.source
            )));
        }
        for (j, other) in mirror.subject_transforms.iter().enumerate() {
            if i != j && subjects_collide(&tr.source, &other.source) {
                return Err(ApiError::mirror_overlapping_subject_filters());
            }
        }
    }
    if mirror.external.is_none() && !is_valid_asset_name(&mirror.name) {
        return Err(ApiError::mirror_invalid_stream_name());
    }
    Ok(())
}

fn check_sources(sources: &[StreamSource]) -> Result<(), ApiError> {
    let mut identities = BTreeSet::new();
    let mut consumers = BTreeSet::new();
    for src in sources {
        if !is_valid_asset_name(&src.name) {
            return Err(ApiError::source_invalid_stream_name());
        }
        if !identities.insert(src.identity()) {
            return Err(ApiError::source_duplicate_detected());
        }
        if !src.filter_subject.is_empty() && !src.subject_transforms.is_empty() {
            return Err(ApiError::source_multiple_filters_not_allowed());
        }
        for tr in &src.subject_transforms {
            if !tr.source.is_empty() && !is_valid_subject(&tr.source) {
                return Err(ApiError::source_invalid_subject_filter(format_args!(
                    "invalid subject {}",
                    tr.source
                )));
            }
        }
        for (i, tr) in src.subject_transforms.iter().enumerate() {
            for (j, other) in src.subject_transforms.iter().enumerate() {
                if i != j && is_subset_match(&tr.source, &other.source) {
                    return Err(ApiError::source_overlapping_subject_filters());
                }
            }
        }
        if let Some(c) = &src.consumer {
            if !is_valid_asset_name(&c.name)
                || !is_valid_publish_subject(&c.deliver_subject)
                || src.opt_start_seq != 0
                || src.opt_start_time.is_some()
                || !src.filter_subject.is_empty()
            {
                return Err(ApiError::source_durable_consumer_cfg_invalid());
            }
            let api = src
                .external
                .as_ref()
                .map(|e| e.api_prefix.as_str())
                .unwrap_or("");
            if !consumers.insert(format!("{}:{}:{}", src.name, api, c.name)) {
                return Err(ApiError::source_durable_consumer_duplicate_detected());
            }
        }
    }
    Ok(())
}

fn check_subjects(cfg: &StreamConfig) -> Result<(), ApiError> {
    let mut seen = BTreeSet::new();
    for (i, subj) in cfg.subjects.iter().enumerate() {
        if !is_valid_subject(subj) {
            return Err(invalid("invalid subject"));
        }
        if seen.contains(subj.as_str()) {
            return Err(invalid("duplicate subjects detected"));
        }
        if subj == ">" {
            if !cfg.no_ack {
                return Err(invalid("capturing all subjects requires no-ack to be true"));
            }
            if cfg.num_replicas != 1 {
                return Err(invalid("capturing all subjects requires replicas of 1"));
            }
        }
        if !cfg.no_ack {
            for ns in ["$JS.>", "$JSC.>", "$NRG.>"] {
                if subjects_collide(subj, ns) && !is_subset_match(subj, "$JS.EVENT.>") {
                    return Err(invalid(
                        "subjects that overlap with jetstream api require no-ack to be true",
                    ));
                }
            }
            if subjects_collide(subj, "$SYS.>") && !is_subset_match(subj, "$SYS.ACCOUNT.>") {
                return Err(invalid(
                    "subjects that overlap with system api require no-ack to be true",
                ));
            }
        }
        for other in &cfg.subjects[i + 1..] {
            if subjects_collide(other, subj) {
                return Err(invalid(format_args!(
                    "subject {subj:?} overlaps with {other:?}"
                )));
            }
        }
        seen.insert(subj.as_str());
    }
    Ok(())
}

/// Body of `STREAM.CREATE` / `STREAM.UPDATE`: the config plus nats-server's
/// `pedantic` switch.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct StreamConfigRequest {
    /// The config.
    #[serde(flatten)]
    pub config: StreamConfig,
    /// Refuse instead of adjusting.
    #[serde(
        default,
        skip_serializing_if = "is_false",
        deserialize_with = "null_default"
    )]
    pub pedantic: bool,
}

/// Messages lost to corruption (reported by nats-server's file store).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct LostStreamData {
    /// Lost sequences.
    #[serde(default, deserialize_with = "null_default")]
    pub msgs: Vec<u64>,
    /// Lost bytes.
    #[serde(default)]
    pub bytes: u64,
}

/// A stream's current contents.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct StreamState {
    /// Message count.
    #[serde(rename = "messages")]
    pub msgs: u64,
    /// Byte count (nats-server's per-message size accounting).
    pub bytes: u64,
    /// First sequence (0 when empty and never written).
    pub first_seq: u64,
    /// Time of the first message (Go zero time when empty).
    #[serde(rename = "first_ts", default)]
    pub first_time: Timestamp,
    /// Last sequence.
    pub last_seq: u64,
    /// Time of the last message.
    #[serde(rename = "last_ts", default)]
    pub last_time: Timestamp,
    /// Distinct subjects.
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub num_subjects: u64,
    /// Per-subject counts, when asked for with `subjects_filter`.
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "null_default"
    )]
    pub subjects: BTreeMap<String, u64>,
    /// Interior deleted sequences.
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub num_deleted: u64,
    /// The deleted sequences, when asked for with `deleted_details`.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_default"
    )]
    pub deleted: Vec<u64>,
    /// Lost data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lost: Option<LostStreamData>,
    /// Consumers on the stream.
    #[serde(rename = "consumer_count")]
    pub consumers: u64,
}

/// A replica of a clustered asset.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PeerInfo {
    /// Server name.
    pub name: String,
    /// Caught up.
    #[serde(default)]
    pub current: bool,
    /// Not seen recently.
    #[serde(default, skip_serializing_if = "is_false")]
    pub offline: bool,
    /// Nanoseconds since last seen.
    #[serde(default)]
    pub active: Nanos,
    /// Operations behind.
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub lag: u64,
    /// Peer id.
    #[serde(default)]
    pub peer: String,
}

/// Cluster information of a stream or consumer (`cluster` in info replies).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ClusterInfo {
    /// Cluster name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Raft group.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub raft_group: String,
    /// Leader server name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub leader: String,
    /// Leader since.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader_since: Option<Timestamp>,
    /// Replicas other than the leader.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_default"
    )]
    pub replicas: Vec<PeerInfo>,
}

/// State of a mirror or source.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct StreamSourceInfo {
    /// Origin stream.
    pub name: String,
    /// External access.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external: Option<ExternalStream>,
    /// Messages behind.
    #[serde(default)]
    pub lag: u64,
    /// Nanoseconds since last contact.
    #[serde(default)]
    pub active: Nanos,
    /// Current error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ApiError>,
    /// Filter.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub filter_subject: String,
    /// Transforms.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_default"
    )]
    pub subject_transforms: Vec<SubjectTransform>,
}

/// `STREAM.INFO`'s body and the element of `STREAM.LIST`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct StreamInfo {
    /// The stored config.
    pub config: StreamConfig,
    /// Creation time.
    pub created: Timestamp,
    /// Current state.
    pub state: StreamState,
    /// JetStream domain.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub domain: String,
    /// Cluster (nats-server reports `{"leader":<server>}` even standalone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<ClusterInfo>,
    /// Mirror state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirror: Option<StreamSourceInfo>,
    /// Sources state.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_default"
    )]
    pub sources: Vec<StreamSourceInfo>,
    /// When the info was gathered.
    #[serde(rename = "ts", default)]
    pub timestamp: Timestamp,
}

/// `STREAM.CREATE` reply body.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct StreamCreateResponse {
    /// The stream.
    #[serde(flatten)]
    pub info: StreamInfo,
    /// True when this request created the stream (false for an idempotent repeat).
    #[serde(default, skip_serializing_if = "is_false")]
    pub did_create: bool,
}
impl ApiResponseType for StreamCreateResponse {
    const TYPE: &'static str = types::STREAM_CREATE;
}

/// `STREAM.UPDATE` reply body.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct StreamUpdateResponse {
    /// The stream after the update.
    #[serde(flatten)]
    pub info: StreamInfo,
}
impl ApiResponseType for StreamUpdateResponse {
    const TYPE: &'static str = types::STREAM_UPDATE;
}

/// `STREAM.INFO` request (optional body).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct StreamInfoRequest {
    /// Page offset into the subjects map.
    #[serde(deserialize_with = "null_default")]
    pub offset: u64,
    /// Include deleted sequences.
    #[serde(skip_serializing_if = "is_false", deserialize_with = "null_default")]
    pub deleted_details: bool,
    /// Include per-subject counts for subjects matching this filter.
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_default"
    )]
    pub subjects_filter: String,
}

/// Paging fields nats-server puts in list-like replies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ApiPaged {
    /// Total items.
    #[serde(default)]
    pub total: u64,
    /// Offset of this page.
    #[serde(default)]
    pub offset: u64,
    /// Page size.
    #[serde(default)]
    pub limit: u64,
}

/// `STREAM.INFO` reply body: paging of the subjects map, then the info.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct StreamInfoResponse {
    /// Paging of `state.subjects`.
    #[serde(flatten)]
    pub paged: ApiPaged,
    /// The stream.
    #[serde(flatten)]
    pub info: StreamInfo,
}
impl ApiResponseType for StreamInfoResponse {
    const TYPE: &'static str = types::STREAM_INFO;
}

/// `STREAM.DELETE` reply body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct StreamDeleteResponse {
    /// Deleted.
    #[serde(default, skip_serializing_if = "is_false")]
    pub success: bool,
}
impl ApiResponseType for StreamDeleteResponse {
    const TYPE: &'static str = types::STREAM_DELETE;
}

/// `STREAM.NAMES` / `STREAM.LIST` request (optional body).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct StreamListRequest {
    /// Page offset.
    #[serde(deserialize_with = "null_default")]
    pub offset: u64,
    /// Only streams whose subjects collide with this subject.
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_default"
    )]
    pub subject: String,
}

/// `STREAM.NAMES` reply body.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct StreamNamesResponse {
    /// Paging.
    #[serde(flatten)]
    pub paged: ApiPaged,
    /// Names, sorted.
    #[serde(default, deserialize_with = "null_default")]
    pub streams: Vec<String>,
}
impl ApiResponseType for StreamNamesResponse {
    const TYPE: &'static str = types::STREAM_NAMES;
}

/// `STREAM.LIST` reply body.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct StreamListResponse {
    /// Paging.
    #[serde(flatten)]
    pub paged: ApiPaged,
    /// Streams.
    #[serde(default, deserialize_with = "null_default")]
    pub streams: Vec<StreamInfo>,
    /// Streams that could not be reached.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_default"
    )]
    pub missing: Vec<String>,
    /// Offline streams and why.
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "null_default"
    )]
    pub offline: BTreeMap<String, String>,
}
impl ApiResponseType for StreamListResponse {
    const TYPE: &'static str = types::STREAM_LIST;
}

/// `STREAM.PURGE` request (optional body).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct StreamPurgeRequest {
    /// Purge up to but not including this sequence.
    #[serde(
        rename = "seq",
        skip_serializing_if = "is_zero_u64",
        deserialize_with = "null_default"
    )]
    pub sequence: u64,
    /// Only messages matching this filter.
    #[serde(
        rename = "filter",
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_default"
    )]
    pub filter: String,
    /// Keep this many newest messages.
    #[serde(skip_serializing_if = "is_zero_u64", deserialize_with = "null_default")]
    pub keep: u64,
}

impl StreamPurgeRequest {
    /// nats-server's request checks: `seq` and `keep` are exclusive (bad request),
    /// a filter must be a valid subject.
    pub fn check(&self) -> Result<(), ApiError> {
        if self.sequence > 0 && self.keep > 0 {
            return Err(ApiError::bad_request());
        }
        if !self.filter.is_empty() && !is_valid_subject(&self.filter) {
            return Err(ApiError::stream_purge_failed("invalid subject"));
        }
        Ok(())
    }
}

/// `STREAM.PURGE` reply body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct StreamPurgeResponse {
    /// Purged.
    #[serde(default, skip_serializing_if = "is_false")]
    pub success: bool,
    /// Messages removed.
    #[serde(default)]
    pub purged: u64,
}
impl ApiResponseType for StreamPurgeResponse {
    const TYPE: &'static str = types::STREAM_PURGE;
}
