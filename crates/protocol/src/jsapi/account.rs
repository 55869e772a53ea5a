//! `$JS.API.INFO`: the account's JetStream usage and limits.
//!
//! Clients call it to learn whether JetStream is enabled at all (async-nats'
//! `query_account`, the `nats account info` CLI) and read `api.level` to decide which
//! features to use, so the shape must match nats-server's `JetStreamAccountStats`.

use super::response::{ApiResponseType, types};
use super::stream::is_zero_u64;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Account limits; -1 means unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountLimits {
    /// Memory storage bytes.
    pub max_memory: i64,
    /// File storage bytes.
    #[serde(rename = "max_storage")]
    pub max_store: i64,
    /// Streams.
    pub max_streams: i64,
    /// Consumers.
    pub max_consumers: i64,
    /// Max ack pending per consumer.
    pub max_ack_pending: i64,
    /// Max bytes of one memory stream.
    pub memory_max_stream_bytes: i64,
    /// Max bytes of one file stream.
    #[serde(rename = "storage_max_stream_bytes")]
    pub store_max_stream_bytes: i64,
    /// Streams must set max_bytes.
    pub max_bytes_required: bool,
}

impl Default for AccountLimits {
    /// Unlimited, as nats-server reports without account limits.
    fn default() -> Self {
        Self {
            max_memory: -1,
            max_store: -1,
            max_streams: -1,
            max_consumers: -1,
            max_ack_pending: -1,
            memory_max_stream_bytes: -1,
            store_max_stream_bytes: -1,
            max_bytes_required: false,
        }
    }
}

/// Usage of one tier (or the totals).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AccountTier {
    /// Memory bytes used.
    pub memory: u64,
    /// Storage bytes used.
    #[serde(rename = "storage")]
    pub store: u64,
    /// Memory bytes reserved.
    #[serde(default)]
    pub reserved_memory: u64,
    /// Storage bytes reserved.
    #[serde(rename = "reserved_storage", default)]
    pub reserved_store: u64,
    /// Streams.
    pub streams: u64,
    /// Consumers.
    pub consumers: u64,
    /// Limits.
    #[serde(default)]
    pub limits: AccountLimits,
}

/// API usage counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ApiStats {
    /// API level implemented (see [`super::API_LEVEL`]).
    #[serde(default)]
    pub level: u32,
    /// Requests served.
    pub total: u64,
    /// Requests answered with an error.
    pub errors: u64,
    /// Requests in flight.
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub inflight: u64,
}

/// `$JS.API.INFO` reply body.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AccountInfo {
    /// Totals.
    #[serde(flatten)]
    pub tier: AccountTier,
    /// JetStream domain.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub domain: String,
    /// API counters.
    pub api: ApiStats,
    /// Per-tier usage.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tiers: BTreeMap<String, AccountTier>,
}
impl ApiResponseType for AccountInfo {
    const TYPE: &'static str = types::ACCOUNT_INFO;
}
