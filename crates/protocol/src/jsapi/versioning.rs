//! JetStream API levels: the `_nats.*` metadata and the required-level header.
//!
//! Since 2.11 nats-server stamps each stream and consumer config with the API level
//! its features need (`_nats.req.level`, stored) and answers with its own version and
//! level (`_nats.ver`, `_nats.level`, added to replies only, never stored). Clients use
//! the required level to refuse assets they cannot handle, and send
//! `Nats-Required-Api-Level` to refuse servers that are too old — which matters for
//! InfiniStream, whose level ([`API_LEVEL`]) is lower than nats-server's.

use super::API_LEVEL;
use super::consumer::{AckPolicy, ConsumerConfig, PriorityPolicy};
use super::stream::{PersistMode, StreamConfig};
use std::collections::BTreeMap;

/// Stored: API level the asset's features need.
pub const REQUIRED_LEVEL_KEY: &str = "_nats.req.level";
/// Reply-only: server version.
pub const SERVER_VERSION_KEY: &str = "_nats.ver";
/// Reply-only: server API level.
pub const SERVER_LEVEL_KEY: &str = "_nats.level";

impl StreamConfig {
    /// nats-server's rule for the level a stream's features need.
    pub fn required_api_level(&self) -> u32 {
        let mut level = 0;
        if self.allow_msg_ttl || self.subject_delete_marker_ttl > 0 {
            level = level.max(1);
        }
        if self.allow_msg_counter
            || self.allow_atomic_publish
            || self.allow_msg_schedules
            || self.persist_mode == PersistMode::Async
        {
            level = level.max(2);
        }
        if self.allow_batch_publish {
            level = level.max(4);
        }
        level
    }

    /// Stamps the stored metadata as nats-server does on create/update.
    pub fn set_static_metadata(&mut self) {
        let level = self.required_api_level();
        set_static(&mut self.metadata, level);
    }

    /// The config as replies show it: stored metadata plus version and level.
    pub fn with_dynamic_metadata(&self, version: &str) -> StreamConfig {
        let mut cfg = self.clone();
        add_dynamic(&mut cfg.metadata, version);
        cfg
    }

    /// Equal but for `_nats.req.level`: an asset stored before the level was stamped
    /// is still the same asset (nats-server's `copyStreamMetadata` before comparing).
    pub fn same_apart_from_required_level(&self, other: &StreamConfig) -> bool {
        let strip = |c: &StreamConfig| {
            let mut c = c.clone();
            c.metadata.remove(REQUIRED_LEVEL_KEY);
            c
        };
        strip(self) == strip(other)
    }
}

impl ConsumerConfig {
    /// nats-server's rule for the level a consumer's features need.
    pub fn required_api_level(&self) -> u32 {
        let mut level = 0;
        if self.pause_until.is_some_and(|t| !t.is_zero()) {
            level = level.max(1);
        }
        if self.priority_policy != PriorityPolicy::None
            || self.pinned_ttl != 0
            || !self.priority_groups.is_empty()
        {
            level = level.max(1);
        }
        if self.ack_policy == AckPolicy::FlowControl {
            level = level.max(4);
        }
        level
    }

    /// Stamps the stored metadata as nats-server does on create/update.
    pub fn set_static_metadata(&mut self) {
        let level = self.required_api_level();
        set_static(&mut self.metadata, level);
    }

    /// The config as replies show it: stored metadata plus version and level.
    pub fn with_dynamic_metadata(&self, version: &str) -> ConsumerConfig {
        let mut cfg = self.clone();
        add_dynamic(&mut cfg.metadata, version);
        cfg
    }

    /// Equal but for `_nats.req.level` (nats-server's `copyConsumerMetadata`).
    pub fn same_apart_from_required_level(&self, other: &ConsumerConfig) -> bool {
        let strip = |c: &ConsumerConfig| {
            let mut c = c.clone();
            c.metadata.remove(REQUIRED_LEVEL_KEY);
            c
        };
        strip(self) == strip(other)
    }
}

fn set_static(metadata: &mut BTreeMap<String, String>, level: u32) {
    metadata.remove(SERVER_VERSION_KEY);
    metadata.remove(SERVER_LEVEL_KEY);
    metadata.insert(REQUIRED_LEVEL_KEY.to_owned(), level.to_string());
}

fn add_dynamic(metadata: &mut BTreeMap<String, String>, version: &str) {
    metadata.insert(SERVER_VERSION_KEY.to_owned(), version.to_owned());
    metadata.insert(SERVER_LEVEL_KEY.to_owned(), API_LEVEL.to_string());
}

/// Whether an asset's stored `_nats.req.level` is one we support (absent: yes).
pub fn supports_required_api_level(metadata: &BTreeMap<String, String>) -> bool {
    match metadata.get(REQUIRED_LEVEL_KEY).map(String::as_str) {
        None | Some("") => true,
        Some(l) => l.parse::<u32>().is_ok_and(|l| l <= API_LEVEL),
    }
}

/// nats-server's `errorOnRequiredApiLevel`: refuse a request whose
/// `Nats-Required-Api-Level` header is unparsable or above our level. Answered with
/// [`super::ApiError::required_api_level`] (JSON APIs) or a 412 status (direct get).
pub fn refuses_required_api_level(header_value: Option<&str>) -> bool {
    match header_value {
        None | Some("") => false,
        Some(v) => v.trim().parse::<u32>().map_or(true, |min| API_LEVEL < min),
    }
}
