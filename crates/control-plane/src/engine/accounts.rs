//! Each JetStream account's limits (nats-server's account `jetstream { max_streams,
//! max_consumers, max_file, max_mem }`), enforced here at commit so that they hold
//! across every agent of the group: agents send their configured limits at start-up
//! (`SetAccountLimits`, naming the account), stored under
//! `g/<group>/acct/jetstream[.<account>]` (see `keys::account_limits`).
//!
//! A stream belongs to the account of its id (`domain::stream_id`: `$G` for a bare
//! name); an account's limits count only its own streams, consumers and bytes.
//! Refusals carry nats-server's codes: a stream past `max_streams` 10027, a consumer
//! past `max_consumers` 10026, a stream whose `max_bytes` exceeds the storage not yet
//! reserved by the account's other streams' `max_bytes` 10047, and a message that
//! would take the account's stored bytes past `max_storage` 10002.

use infinistream_proto::domain::{GLOBAL_ACCOUNT, StreamSpec, stream_account};
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
    /// Stores `limits` as the JetStream limits of `account` (the account part of its
    /// stream ids; empty = `$G`); unlimited ones remove them. A no-op when they are
    /// already in force.
    pub(crate) async fn set_account_limits(
        &self,
        group: &str,
        account: &str,
        limits: v1::AccountLimits,
    ) -> Result<(), CpError> {
        let account = if account.is_empty() {
            GLOBAL_ACCOUNT
        } else {
            account
        };
        let next = (!unlimited(&limits)).then_some(limits);
        let mut st = self.state.lock().await;
        let g = self.group_mut(&mut st, group).await?;
        if g.account_limits.get(account) == next.as_ref() {
            return Ok(());
        }
        let key = keys::account_limits(group, account);
        let op = match &next {
            Some(l) => Op::Put {
                key,
                value: l.encode_to_vec(),
            },
            None => Op::Delete { key },
        };
        self.write_ops(&mut st, vec![op]).await?;
        let g = self.group_mut(&mut st, group).await?;
        match next {
            Some(l) => {
                tracing::info!(
                    account,
                    name = %l.account,
                    max_streams = l.max_streams,
                    max_consumers = l.max_consumers,
                    max_storage = l.max_storage,
                    "JetStream account limits set"
                );
                g.account_limits.insert(account.to_owned(), l);
            }
            None => {
                tracing::info!(account, "JetStream account limits removed");
                g.account_limits.remove(account);
            }
        }
        Ok(())
    }
}

impl Group {
    /// The limits of the account of stream id `stream`, if any.
    fn limits_of(&self, stream: &str) -> Option<&v1::AccountLimits> {
        self.account_limits.get(stream_account(stream))
    }

    /// Why the account refuses stream `spec` (new, or an update of the stream of that
    /// id): past `max_streams` (new only), or its `max_bytes` past the storage the
    /// account's other streams have not reserved.
    pub(super) fn account_refuses_stream(&self, spec: &StreamSpec) -> Option<JsError> {
        let l = self.limits_of(&spec.name)?;
        let account = stream_account(&spec.name);
        let mine = || {
            self.streams
                .iter()
                .filter(move |(id, _)| stream_account(id) == account)
        };
        let exists = self.streams.contains_key(&spec.name);
        if !exists
            && let Some(max) = limit(l.max_streams)
            && mine().count() as u64 >= max
        {
            return Some(ApiError::maximum_streams_limit().into());
        }
        if let (Some(max), Some(wanted)) = (limit(l.max_storage), spec.limits.max_bytes) {
            let reserved: u64 = mine()
                .filter(|(id, _)| **id != spec.name)
                .filter_map(|(_, s)| s.spec.limits.max_bytes)
                .sum();
            if reserved.saturating_add(wanted) > max {
                return Some(ApiError::storage_resources_exceeded().into());
            }
        }
        None
    }

    /// Why the account of stream id `stream` refuses one more consumer: past
    /// `max_consumers`.
    pub(super) fn account_refuses_consumer(&self, stream: &str) -> Option<JsError> {
        let max = limit(self.limits_of(stream)?.max_consumers)?;
        let account = stream_account(stream);
        let used = self
            .consumers
            .keys()
            .filter(|(s, _)| stream_account(s) == account)
            .count() as u64;
        (used >= max).then(|| ApiError::maximum_consumers_limit().into())
    }

    /// The bytes the account of stream id `stream` may still store (`None` =
    /// unlimited).
    pub(super) fn account_storage_room(&self, stream: &str) -> Option<u64> {
        let max = limit(self.limits_of(stream)?.max_storage)?;
        let account = stream_account(stream);
        let used: u64 = self
            .streams
            .iter()
            .filter(|(id, _)| stream_account(id) == account)
            .map(|(_, s)| s.bytes)
            .sum();
        Some(max.saturating_sub(used))
    }
}
