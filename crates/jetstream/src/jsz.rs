//! The `/jsz` monitoring document, built from the control plane.
//!
//! Every agent answers `/jsz` the same way, whatever its roles: the streams (with their
//! state and config) come from the control plane's stream list — the path
//! `$JS.API.INFO` and `STREAM.LIST` use — and consumers from its consumer list, so the
//! numbers are the group's, not one agent's. The API counters are this agent's (as
//! nats-server's are per server).
//!
//! InfiniStream keeps every message in the bucket: `storage` is the bytes of all
//! streams, whatever their configured storage type, and `memory` is 0.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use infinistream_cp_client::CallError;
use infinistream_protocol::jsapi::jsz::{
    AccountDetail, GLOBAL_ACCOUNT, JetStreamStats, Jsz, JszApiStats, JszConfig, JszLimits,
    JszOptions, StreamDetail,
};
use infinistream_protocol::jsapi::stream::ClusterInfo;
use infinistream_protocol::jsapi::{API_LEVEL, ApiError, Timestamp, codes};

use crate::context::{ApiContext, ApiCounters, list_filtered, now};
use crate::convert;

/// Builds `/jsz` documents for one agent (cheap to clone).
#[derive(Debug, Clone)]
pub struct JszSource {
    ctx: ApiContext,
    stats: Arc<ApiCounters>,
}

impl JszSource {
    pub(crate) fn new(ctx: ApiContext, stats: Arc<ApiCounters>) -> Self {
        JszSource { ctx, stats }
    }

    /// The document for `opts`. Fails only when the control plane cannot answer.
    pub async fn jsz(&self, opts: &JszOptions) -> Result<Jsz, ApiError> {
        let ctx = &self.ctx;
        let now = now(ctx);
        // The account whose streams have bare ids (the others' are not in `/jsz` yet).
        let listed = list_filtered(ctx, "").await?;

        let mut totals = Totals::default();
        let mut details = Vec::new();
        for resp in &listed {
            let info = convert::stream_info(resp, now)?;
            totals.streams += 1;
            totals.consumers += info.state.consumers;
            totals.messages += info.state.msgs;
            totals.bytes += info.state.bytes;
            // nats-server reserves a stream's max_bytes (times its replicas; R1 here).
            if info.config.max_bytes > 0 {
                totals.reserved += info.config.max_bytes.unsigned_abs();
            }
            if !opts.streams || !opts.details_for(GLOBAL_ACCOUNT) {
                continue;
            }
            let consumer_detail = if opts.consumers {
                self.consumers(&info.config.name, opts.config, now).await?
            } else {
                Vec::new()
            };
            details.push(StreamDetail {
                name: info.config.name.clone(),
                created: info.created,
                cluster: Some(ClusterInfo {
                    leader: ctx.server_name.clone(),
                    ..ClusterInfo::default()
                }),
                config: opts.config.then(|| info.config.clone()),
                state: info.state,
                consumer_detail,
            });
        }

        let api_total = self.stats.total.load(Ordering::Relaxed);
        let api_errors = self.stats.errors.load(Ordering::Relaxed);
        let account_stats = JetStreamStats {
            memory: 0,
            store: totals.bytes,
            // An account without reservations: nats-server prints its -1 as unsigned.
            reserved_memory: u64::MAX,
            reserved_store: u64::MAX,
            accounts: 0,
            ha_assets: 0,
            api: JszApiStats {
                level: 0,
                total: api_total,
                errors: api_errors,
                inflight: 0,
            },
        };
        // One JetStream account ($G); `offset`/`limit` page over the accounts.
        let account_details = [GLOBAL_ACCOUNT]
            .into_iter()
            .filter(|name| opts.details_for(name))
            .skip(opts.offset)
            .take(opts.limit)
            .map(|name| AccountDetail {
                name: name.to_owned(),
                id: name.to_owned(),
                stats: account_stats,
                stream_detail: std::mem::take(&mut details),
            })
            .collect();

        Ok(Jsz {
            stats: JetStreamStats {
                memory: 0,
                store: totals.bytes,
                reserved_memory: 0,
                reserved_store: totals.reserved,
                accounts: 1,
                ha_assets: 0,
                api: JszApiStats {
                    level: API_LEVEL,
                    total: api_total,
                    errors: api_errors,
                    inflight: 0,
                },
            },
            server_id: ctx.broker.server_id().to_owned(),
            now,
            disabled: false,
            config: server_config(),
            limits: JszLimits::default(),
            streams: totals.streams,
            // Every agent answers for every stream (STREAM.INFO names it the leader).
            streams_leader: if opts.raft { totals.streams } else { 0 },
            consumers: totals.consumers,
            consumers_leader: if opts.raft { totals.consumers } else { 0 },
            messages: totals.messages,
            bytes: totals.bytes,
            account_details,
            total: 1,
        })
    }

    /// A stream's consumers with their state, sorted by name.
    async fn consumers(
        &self,
        stream: &str,
        with_config: bool,
        now: Timestamp,
    ) -> Result<Vec<infinistream_protocol::jsapi::consumer::ConsumerInfo>, ApiError> {
        let consumers = match self.ctx.cp.list_consumers(stream).await {
            Ok(consumers) => consumers,
            // Deleted since the stream list was read: it has no consumers to show.
            Err(CallError::Refused { error, .. })
                if error.err_code == u32::from(codes::STREAM_NOT_FOUND.err_code) =>
            {
                return Ok(Vec::new());
            }
            Err(error) => return Err(convert::call_error(&error)),
        };
        let mut out = Vec::with_capacity(consumers.len());
        for item in consumers {
            let mut info = convert::consumer_info(stream, item, now)?;
            info.push_bound = info.config.as_ref().is_some_and(|c| {
                !c.deliver_subject.is_empty() && self.ctx.broker.has_interest(&c.deliver_subject)
            });
            if !with_config {
                info.config = None;
            }
            out.push(info);
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }
}

/// The agent's JetStream configuration, as `/jsz`, VARZ and STATSZ show it.
pub(crate) fn server_config() -> JszConfig {
    JszConfig {
        // No local memory or disk tier to bound: the bucket holds everything.
        max_memory: -1,
        max_storage: -1,
        // A publish is acknowledged only once its batch is in the bucket.
        sync_always: true,
        ..JszConfig::default()
    }
}

#[derive(Debug, Default)]
struct Totals {
    streams: u64,
    consumers: u64,
    messages: u64,
    bytes: u64,
    reserved: u64,
}
