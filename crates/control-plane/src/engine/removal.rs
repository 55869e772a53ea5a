//! Removing messages: purge, delete, and time-based limits (max_age, TTL) applied
//! now and on a timer.

use std::time::Duration;

use infinistream_proto::v1::{self, JsError};
use infinistream_protocol::subject;

use super::Engine;
use crate::errors::CpError;
use crate::stream::Stream;
use infinistream_protocol::jsapi::ApiError;

impl Engine {
    pub(crate) async fn purge(
        &self,
        group: &str,
        req: v1::PurgeStreamRequest,
    ) -> Result<v1::PurgeStreamResponse, CpError> {
        let mut st = self.state.lock().await;
        let g = self.group_mut(&mut st, group).await?;
        let Some(s) = g.streams.get_mut(&req.stream) else {
            return Ok(v1::PurgeStreamResponse {
                error: Some(ApiError::stream_not_found().into()),
                purged: 0,
            });
        };
        let refuse = if s.spec.limits.sealed {
            Some(ApiError::stream_sealed().into())
        } else if s.spec.limits.deny_purge {
            Some(ApiError::stream_purge_failed("stream purge not permitted").into())
        } else {
            None
        };
        if let Some(e) = refuse {
            return Ok(v1::PurgeStreamResponse {
                error: Some(e),
                purged: 0,
            });
        }
        if !req.subject.is_empty() && !subject::is_valid_subject(&req.subject) {
            return Err(CpError::Invalid(infinistream_proto::InvalidArgument {
                field: "subject",
                reason: format!("invalid subject filter `{}`", req.subject),
            }));
        }
        let purged = s.purge(&req.subject, req.keep, req.up_to_seq);
        g.touched.insert(req.stream.clone());
        self.flush_group(&mut st, group).await?;
        Ok(v1::PurgeStreamResponse {
            error: None,
            purged,
        })
    }

    pub(crate) async fn delete_message(
        &self,
        group: &str,
        stream: &str,
        seq: u64,
    ) -> Result<Option<JsError>, CpError> {
        let mut st = self.state.lock().await;
        let g = self.group_mut(&mut st, group).await?;
        let Some(s) = g.streams.get_mut(stream) else {
            return Ok(Some(ApiError::stream_not_found().into()));
        };
        if s.spec.limits.sealed {
            return Ok(Some(ApiError::stream_sealed().into()));
        }
        if s.spec.limits.deny_delete {
            return Ok(Some(
                ApiError::stream_msg_delete_failed("message delete not permitted").into(),
            ));
        }
        if !s.remove_seq(seq) {
            return Ok(Some(
                ApiError::stream_msg_delete_failed("no message found").into(),
            ));
        }
        g.touched.insert(stream.to_owned());
        self.flush_group(&mut st, group).await?;
        Ok(None)
    }

    /// Applies time-based limits to every loaded stream of `group` now.
    pub(crate) async fn enforce_retention(&self, group: &str) -> Result<u64, CpError> {
        let mut st = self.state.lock().await;
        let now = self.now();
        let g = self.group_mut(&mut st, group).await?;
        let mut removed = 0;
        let names: Vec<String> = g.streams.keys().cloned().collect();
        for name in names {
            if let Some(s) = g.streams.get_mut(&name) {
                let n = s.enforce_time(now);
                if n > 0 {
                    removed += n;
                    g.touched.insert(name);
                }
            }
        }
        self.flush_group(&mut st, group).await?;
        Ok(removed)
    }

    /// The earliest time a message of a loaded stream expires (TTL or max_age).
    async fn next_expiry(&self) -> Option<i64> {
        let st = self.state.lock().await;
        st.groups
            .values()
            .flat_map(|g| g.streams.values())
            .filter_map(Stream::next_expiry)
            .min()
    }

    async fn loaded_groups(&self) -> Vec<String> {
        self.state.lock().await.groups.keys().cloned().collect()
    }
}

/// Shortest sleep between two passes: expiries closer together than this share one
/// pass and one metadata write (at most 20 removal writes a second however many
/// messages expire), and a clock that disagrees with the timer never makes the ticker
/// spin. An expired message is gone at most this long after its expiry time.
const MIN_WAIT: Duration = Duration::from_millis(50);

/// Applies time-based limits when the next message expires (and at least every
/// `every`), so an expired message leaves reads, counts and consumers at its expiry
/// time rather than at the next jobs pass. A message committed while the ticker
/// sleeps expires no earlier than `every` from now unless its stream's max_age is
/// shorter: the wait is capped by that too.
pub(super) async fn retention_ticker(engine: std::sync::Weak<Engine>, every: Duration) {
    loop {
        let wait = {
            let Some(engine) = engine.upgrade() else {
                break;
            };
            let now = engine.now();
            let cap = engine
                .shortest_max_age()
                .await
                .map_or(every, |a| a.min(every));
            match engine.next_expiry().await {
                Some(at) => {
                    let until = u64::try_from(at.saturating_sub(now)).unwrap_or(0);
                    Duration::from_nanos(until).min(cap)
                }
                None => cap,
            }
        };
        tokio::time::sleep(wait.max(MIN_WAIT)).await;
        let Some(engine) = engine.upgrade() else {
            break;
        };
        for group in engine.loaded_groups().await {
            if let Err(e) = engine.enforce_retention(&group).await {
                tracing::warn!(group, error = %e, "retention pass failed");
            }
        }
        engine.export_schedule_backlog().await;
    }
}

impl Engine {
    /// The shortest max_age of a loaded stream.
    async fn shortest_max_age(&self) -> Option<Duration> {
        let st = self.state.lock().await;
        st.groups
            .values()
            .flat_map(|g| g.streams.values())
            .filter_map(|s| s.spec.limits.max_age_nanos)
            .min()
            .map(|n| Duration::from_nanos(u64::try_from(n).unwrap_or(0)))
    }
}
