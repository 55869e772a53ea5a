//! The JetStream account's limits (nats-server's account `jetstream { max_streams,
//! max_consumers, max_file, max_mem }`), enforced here at commit so that they hold
//! across every agent of the group: agents send their configured limits at start-up
//! (`SetAccountLimits`), stored under `g/<group>/acct/jetstream`.
//!
//! JetStream serves one account per group, so the account's streams and consumers
//! are the group's. Refusals carry nats-server's codes: a stream past `max_streams`
//! 10027, a consumer past `max_consumers` 10026, a stream whose `max_bytes` exceeds
//! the storage not yet reserved by other streams' `max_bytes` 10047, and a message
//! that would take the account's stored bytes past `max_storage` 10002.

use infinistream_proto::domain::StreamSpec;
use infinistream_proto::v1::{self, JsError};
use infinistream_protocol::jsapi::ApiError;
use prost::Message;

use super::{Engine, Group};
use crate::errors::CpError;
use crate::keys;
use crate::store::Op;

/// Whether no limit is set (nothing to store or enforce).
fn unlimited(l: &v1::AccountLimits) -> bool {
    l.max_streams < 0 && l.max_consumers < 0 && l.max_storage < 0 && l.max_memory < 0
}

/// A limit as a count: `None` when unlimited (negative).
fn limit(value: i64) -> Option<u64> {
    u64::try_from(value).ok()
}

impl Engine {
    /// Stores `limits` as the group's JetStream account limits (unlimited ones remove
    /// them); a no-op when they are already in force.
    pub(crate) async fn set_account_limits(
        &self,
        group: &str,
        limits: v1::AccountLimits,
    ) -> Result<(), CpError> {
        let next = (!unlimited(&limits)).then_some(limits);
        let mut st = self.state.lock().await;
        let g = self.group_mut(&mut st, group).await?;
        if g.account_limits == next {
            return Ok(());
        }
        let key = keys::account_limits(group);
        let op = match &next {
            Some(l) => Op::Put {
                key,
                value: l.encode_to_vec(),
            },
            None => Op::Delete { key },
        };
        self.write_ops(&mut st, vec![op]).await?;
        let g = self.group_mut(&mut st, group).await?;
        match &next {
            Some(l) => tracing::info!(
                account = %l.account,
                max_streams = l.max_streams,
                max_consumers = l.max_consumers,
                max_storage = l.max_storage,
                "JetStream account limits set"
            ),
            None => tracing::info!("JetStream account limits removed"),
        }
        g.account_limits = next;
        Ok(())
    }
}

impl Group {
    /// Why the account refuses stream `spec` (new, or an update of the stream of that
    /// name): past `max_streams` (new only), or its `max_bytes` past the storage the
    /// other streams have not reserved.
    pub(super) fn account_refuses_stream(&self, spec: &StreamSpec) -> Option<JsError> {
        let l = self.account_limits.as_ref()?;
        let exists = self.streams.contains_key(&spec.name);
        if !exists
            && let Some(max) = limit(l.max_streams)
            && self.streams.len() as u64 >= max
        {
            return Some(ApiError::maximum_streams_limit().into());
        }
        if let (Some(max), Some(wanted)) = (limit(l.max_storage), spec.limits.max_bytes) {
            let reserved: u64 = self
                .streams
                .iter()
                .filter(|(name, _)| **name != spec.name)
                .filter_map(|(_, s)| s.spec.limits.max_bytes)
                .sum();
            if reserved.saturating_add(wanted) > max {
                return Some(ApiError::storage_resources_exceeded().into());
            }
        }
        None
    }

    /// Why the account refuses one more consumer: past `max_consumers`.
    pub(super) fn account_refuses_consumer(&self) -> Option<JsError> {
        let max = limit(self.account_limits.as_ref()?.max_consumers)?;
        (self.consumers.len() as u64 >= max).then(|| ApiError::maximum_consumers_limit().into())
    }

    /// The bytes the account may still store (`None` = unlimited).
    pub(super) fn account_storage_room(&self) -> Option<u64> {
        let max = limit(self.account_limits.as_ref()?.max_storage)?;
        let used: u64 = self.streams.values().map(|s| s.bytes).sum();
        Some(max.saturating_sub(used))
    }
}
