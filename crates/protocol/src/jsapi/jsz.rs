//! `/jsz`: the JetStream monitoring document of nats-server's HTTP port.
//!
//! Prometheus exporters (prometheus-nats-exporter, nats-surveyor) and operators'
//! scripts read `/jsz` by nats-server's field names, so these types mirror its
//! `JSInfo`, `AccountDetail` and `StreamDetail` (nats-server 2.15.1): the same keys,
//! the same nesting, the same fields left out when empty. Stream state, stream config
//! and consumer info reuse the `$JS.API` types, as nats-server does.
//!
//! [`JszOptions::from_query`] reads the query string the way nats-server does:
//! booleans as Go's `strconv.ParseBool`, integers as `strconv.Atoi`, unknown keys
//! ignored, and a bad value is a 400 with a plain-text message ([`JszQueryError`]).

use super::consumer::ConsumerInfo;
use super::stream::{ClusterInfo, StreamConfig, StreamState, is_false, is_zero_u64};
use super::time::Timestamp;
use serde::{Deserialize, Serialize};

/// The account every JetStream asset lives in (nats-server's global account).
pub const GLOBAL_ACCOUNT: &str = "$G";

/// nats-server's default page size of `account_details`.
pub const DEFAULT_ACCOUNT_LIMIT: usize = 1024;

/// Storage counters shared by the server totals and each account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct JetStreamStats {
    /// Bytes in memory-storage streams.
    pub memory: u64,
    /// Bytes in file-storage streams.
    #[serde(rename = "storage")]
    pub store: u64,
    /// Memory bytes reserved by streams' `max_bytes`.
    pub reserved_memory: u64,
    /// Storage bytes reserved by streams' `max_bytes`.
    #[serde(rename = "reserved_storage")]
    pub reserved_store: u64,
    /// Accounts with JetStream (0 in an account's own detail).
    pub accounts: u64,
    /// Replicated (R>1) assets.
    pub ha_assets: u64,
    /// `$JS.API` counters.
    pub api: JszApiStats,
}

/// `$JS.API` request counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct JszApiStats {
    /// API level (nats-server reports 0 inside an account's detail).
    pub level: u32,
    /// Requests served.
    pub total: u64,
    /// Requests answered with an error.
    pub errors: u64,
    /// Requests in flight (nats-server omits 0).
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub inflight: u64,
}

/// The server's JetStream configuration (`JetStreamConfig`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct JszConfig {
    /// Memory storage limit in bytes (-1: unlimited).
    pub max_memory: i64,
    /// File storage limit in bytes (-1: unlimited).
    pub max_storage: i64,
    /// Storage directory (none here: the data lives in the bucket).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub store_dir: String,
    /// File-store fsync interval in nanoseconds.
    #[serde(default, skip_serializing_if = "is_zero_i64_ref")]
    pub sync_interval: i64,
    /// Every write is durable before it is acknowledged.
    #[serde(default, skip_serializing_if = "is_false")]
    pub sync_always: bool,
    /// JetStream domain.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub domain: String,
    /// Stream compression allowed.
    #[serde(default, skip_serializing_if = "is_false")]
    pub compress_ok: bool,
    /// Placement tag that must be unique among a stream's peers.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub unique_tag: String,
    /// Strict API request checking.
    #[serde(default, skip_serializing_if = "is_false")]
    pub strict: bool,
}

fn is_zero_i64_ref(v: &i64) -> bool {
    *v == 0
}

/// Server-wide JetStream limits (`JSLimitOpts`); unset limits are left out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct JszLimits {
    /// Most messages one pull request may ask for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_request_batch: Option<i64>,
    /// Most unacknowledged messages per consumer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_ack_pending: Option<i64>,
    /// Most replicated assets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_ha_assets: Option<i64>,
    /// Longest duplicate window (nanoseconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duplicate_window: Option<i64>,
    /// Consumers per stream when the stream does not say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_max_consumers: Option<i64>,
}

/// The `/jsz` document (`JSInfo`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Jsz {
    /// Storage and API totals.
    #[serde(flatten)]
    pub stats: JetStreamStats,
    /// The answering server's id.
    pub server_id: String,
    /// When the document was built.
    pub now: Timestamp,
    /// JetStream is disabled on this server.
    #[serde(default, skip_serializing_if = "is_false")]
    pub disabled: bool,
    /// The server's JetStream configuration.
    pub config: JszConfig,
    /// Server-wide limits.
    #[serde(default)]
    pub limits: JszLimits,
    /// Streams.
    pub streams: u64,
    /// Streams this server leads (with `raft=true`).
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub streams_leader: u64,
    /// Consumers.
    pub consumers: u64,
    /// Consumers this server leads (with `raft=true`).
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub consumers_leader: u64,
    /// Messages in all streams.
    pub messages: u64,
    /// Bytes in all streams.
    pub bytes: u64,
    /// Per-account details, when asked for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub account_details: Vec<AccountDetail>,
    /// Accounts with JetStream (before paging).
    pub total: u64,
}

/// One account's usage (`AccountDetail`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AccountDetail {
    /// Account name.
    pub name: String,
    /// Account id.
    pub id: String,
    /// The account's storage and API counters.
    #[serde(flatten)]
    pub stats: JetStreamStats,
    /// Streams, with `streams=true`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stream_detail: Vec<StreamDetail>,
}

/// One stream (`StreamDetail`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct StreamDetail {
    /// Stream name.
    pub name: String,
    /// Creation time.
    pub created: Timestamp,
    /// Leader.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<ClusterInfo>,
    /// Config, with `config=true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<StreamConfig>,
    /// State.
    pub state: StreamState,
    /// Consumers, with `consumers=true`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub consumer_detail: Vec<ConsumerInfo>,
}

/// The `/jsz` query options (nats-server's `JSzOptions`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct JszOptions {
    /// `acc`: only this account.
    pub account: String,
    /// `accounts`: per-account details.
    pub accounts: bool,
    /// `streams`: stream details (implies `accounts`).
    pub streams: bool,
    /// `consumers`: consumer details (implies `streams`).
    pub consumers: bool,
    /// `config`: configs in the stream and consumer details.
    pub config: bool,
    /// `leader-only`: answer only on the meta leader.
    pub leader_only: bool,
    /// `raft`: leader counts and raft groups.
    pub raft: bool,
    /// `offset`: first account detail.
    pub offset: usize,
    /// `limit`: most account details.
    pub limit: usize,
}

/// A `/jsz` query value nats-server would refuse; answered with 400 and this text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JszQueryError {
    /// Not a Go boolean.
    #[error("Error decoding boolean for '{key}': invalid syntax: `{value}`")]
    Bool { key: String, value: String },
    /// Not a Go integer.
    #[error("Error decoding int for '{key}': invalid syntax: `{value}`")]
    Int { key: String, value: String },
}

impl JszOptions {
    /// Parses a raw (percent-encoded) query string, `accounts=true&acc=%24G`.
    pub fn from_query(query: &str) -> Result<Self, JszQueryError> {
        let mut opts = JszOptions {
            limit: DEFAULT_ACCOUNT_LIMIT,
            ..JszOptions::default()
        };
        // nats-server reads the first value of each key.
        let mut seen: Vec<String> = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let key = percent_decode(key);
            if seen.contains(&key) {
                continue;
            }
            let value = percent_decode(value);
            let flag = |v: &str| parse_bool(&key, v);
            match key.as_str() {
                "acc" => opts.account = value,
                "accounts" => opts.accounts = flag(&value)?,
                "streams" => opts.streams = flag(&value)?,
                "consumers" => opts.consumers = flag(&value)?,
                "config" => opts.config = flag(&value)?,
                "leader-only" => opts.leader_only = flag(&value)?,
                "raft" => opts.raft = flag(&value)?,
                "offset" => {
                    opts.offset = usize::try_from(parse_int(&key, &value)?.max(0)).unwrap_or(0);
                }
                "limit" => {
                    let limit = parse_int(&key, &value)?;
                    opts.limit = if limit <= 0 {
                        DEFAULT_ACCOUNT_LIMIT
                    } else {
                        usize::try_from(limit).unwrap_or(usize::MAX)
                    };
                }
                _ => {}
            }
            seen.push(key);
        }
        // Consumers imply streams, streams imply account details.
        opts.streams |= opts.consumers;
        opts.accounts |= opts.streams;
        Ok(opts)
    }

    /// Whether the document lists `account` in `account_details`: with
    /// `accounts` (or streams/consumers) every account, with `acc` that one.
    pub fn details_for(&self, account: &str) -> bool {
        self.accounts || self.account == account
    }
}

/// Go's `strconv.ParseBool`; an empty value is false (nats-server's `decodeBool`).
fn parse_bool(key: &str, value: &str) -> Result<bool, JszQueryError> {
    match value {
        "" | "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        _ => Err(JszQueryError::Bool {
            key: key.to_owned(),
            value: value.to_owned(),
        }),
    }
}

/// Go's `strconv.Atoi`; an empty value is 0 (nats-server's `decodeInt`).
fn parse_int(key: &str, value: &str) -> Result<i64, JszQueryError> {
    if value.is_empty() {
        return Ok(0);
    }
    value.parse::<i64>().map_err(|_| JszQueryError::Int {
        key: key.to_owned(),
        value: value.to_owned(),
    })
}

/// Decodes `%XX` escapes and `+` (form encoding); bad escapes are kept as written.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 3;
                }
                _ => {
                    out.push(b'%');
                    i += 1;
                }
            },
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}
