//! Removing messages: purge, delete, and time-based limits (max_age, TTL) applied
//! now and on a timer.

use std::collections::{BTreeSet, HashMap};
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

    /// Applies time-based limits to the streams of `group` with something due now
    /// (found in the group's expiry index, not by walking every stream).
    pub(crate) async fn enforce_retention(&self, group: &str) -> Result<u64, CpError> {
        Ok(self.retention_pass(group).await?.removed)
    }

    /// One retention pass over `group`: what it removed and how many streams it looked
    /// at (the streams with an expiry due, whatever the number of idle streams).
    pub(crate) async fn retention_pass(&self, group: &str) -> Result<RetentionPass, CpError> {
        let mut st = self.state.lock().await;
        let now = self.now();
        let g = self.group_mut(&mut st, group).await?;
        let mut pass = RetentionPass::default();
        for name in g.expiry.due(now) {
            pass.visited += 1;
            let Some(s) = g.streams.get_mut(&name) else {
                g.expiry.update(&name, None);
                continue;
            };
            let n = s.enforce_time(now);
            g.expiry.update(&name, Some(s));
            if n > 0 {
                pass.removed += n;
                g.touched.insert(name);
            }
        }
        self.flush_group(&mut st, group).await?;
        Ok(pass)
    }

    /// The earliest time a message of a loaded stream expires (TTL or max_age).
    async fn next_expiry(&self) -> Option<i64> {
        let st = self.state.lock().await;
        st.groups.values().filter_map(|g| g.expiry.next()).min()
    }

    async fn loaded_groups(&self) -> Vec<String> {
        self.state.lock().await.groups.keys().cloned().collect()
    }
}

/// What one retention pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RetentionPass {
    /// Messages removed.
    pub removed: u64,
    /// Streams looked at.
    pub visited: u64,
}

/// A group's streams by when something in them next expires, kept as streams change
/// (every change to a stream goes through the group's `take_ops`, which refreshes its
/// entry), so a retention pass touches only streams with something due, and the
/// ticker's sleep is read off the first entry. Also the streams with schedules and
/// the shortest max_age, for the same reason.
#[derive(Debug, Default)]
pub(crate) struct ExpiryIndex {
    /// (next expiry, stream) of every stream with a message that expires.
    due: BTreeSet<(i64, String)>,
    /// (max_age, stream) of every stream with a max_age.
    ages: BTreeSet<(i64, String)>,
    /// Stream → its (next expiry, max_age) as entered above.
    of: HashMap<String, (Option<i64>, Option<i64>)>,
    /// Streams with message schedules.
    scheduled: BTreeSet<String>,
}

impl ExpiryIndex {
    /// Refreshes `name`'s entries from `s` (`None`: the stream is gone).
    pub(super) fn update(&mut self, name: &str, s: Option<&Stream>) {
        let now = s.map_or((None, None), |s| {
            (s.next_expiry(), s.spec.limits.max_age_nanos)
        });
        let has_schedules = s.is_some_and(Stream::has_schedules);
        if (has_schedules || !self.scheduled.is_empty())
            && has_schedules != self.scheduled.contains(name)
        {
            if has_schedules {
                self.scheduled.insert(name.to_owned());
            } else {
                self.scheduled.remove(name);
            }
        }
        let was = self.of.get(name).copied().unwrap_or((None, None));
        if was == now {
            return;
        }
        if let Some(at) = was.0 {
            self.due.remove(&(at, name.to_owned()));
        }
        if let Some(age) = was.1 {
            self.ages.remove(&(age, name.to_owned()));
        }
        if let Some(at) = now.0 {
            self.due.insert((at, name.to_owned()));
        }
        if let Some(age) = now.1 {
            self.ages.insert((age, name.to_owned()));
        }
        if now == (None, None) {
            self.of.remove(name);
        } else {
            self.of.insert(name.to_owned(), now);
        }
    }

    /// Streams with something expired at `now`.
    fn due(&self, now: i64) -> Vec<String> {
        self.due
            .iter()
            .take_while(|(at, _)| *at <= now)
            .map(|(_, name)| name.clone())
            .collect()
    }

    /// The earliest expiry.
    fn next(&self) -> Option<i64> {
        self.due.first().map(|(at, _)| *at)
    }

    /// The shortest max_age.
    fn shortest_max_age(&self) -> Option<i64> {
        self.ages.first().map(|(age, _)| *age)
    }

    /// Streams with message schedules.
    pub(super) fn scheduled(&self) -> impl Iterator<Item = &String> {
        self.scheduled.iter()
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
            .filter_map(|g| g.expiry.shortest_max_age())
            .min()
            .map(|n| Duration::from_nanos(u64::try_from(n).unwrap_or(0)))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::Arc;
    use std::time::{Duration, UNIX_EPOCH};

    use infinistream_proto::domain::{Chunk, CommitBatch, Limits, Record, StreamSpec};
    use infinistream_types::{Clock, MockClock};

    use super::super::{Engine, Options};
    use super::RetentionPass;
    use crate::store::memory::MemoryStore;

    const AGING: usize = 10;

    /// Idle streams: 1,000 by default (creating them one by one is the slow part);
    /// `RETENTION_IDLE_STREAMS=10000` for the figure in docs/benchmarks.md.
    fn idle() -> usize {
        std::env::var("RETENTION_IDLE_STREAMS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(1_000)
    }

    fn spec(name: &str, max_age: Option<Duration>, ttl: bool) -> StreamSpec {
        StreamSpec {
            name: name.into(),
            config_json: b"{}".to_vec(),
            limits: Limits {
                subjects: vec![format!("{name}.>")],
                max_age_nanos: max_age.map(|a| i64::try_from(a.as_nanos()).unwrap()),
                allow_msg_ttl: ttl,
                ..Default::default()
            },
        }
    }

    /// This process's resident set in KiB (Linux), for the printed figure only.
    fn rss_kib() -> Option<u64> {
        let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
        let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
        Some(pages * 4)
    }

    fn chunk(stream: &str, records: Vec<Record>) -> Chunk {
        Chunk {
            stream: stream.into(),
            chunk_index: 0,
            byte_size: 10,
            records,
        }
    }

    /// The many-streams case of issue 15: many idle streams (a message each, nothing
    /// that expires), 10 with max_age and one with a TTL'd message. A retention pass
    /// looks at the streams with something due, never at the idle ones (before the
    /// expiry index, every pass walked every stream three times and cloned every name).
    /// The pass's time is printed for docs/benchmarks.md, not asserted.
    #[tokio::test]
    #[allow(clippy::cast_precision_loss)]
    async fn a_retention_pass_visits_only_streams_with_something_due() {
        let clock = Arc::new(MockClock::new(
            UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        ));
        let opts = Options {
            retention_interval: None,
            ..Options::default()
        };
        let engine = Engine::start(Arc::new(MemoryStore::new()), clock.clone(), opts)
            .await
            .unwrap();
        let rss_before = rss_kib();
        let mut names = Vec::new();
        for i in 0..idle() {
            names.push((format!("I{i}"), None));
        }
        for i in 0..AGING {
            names.push((format!("A{i}"), Some(Duration::from_secs(60))));
        }
        for (name, age) in &names {
            let r = engine
                .create_stream("g", spec(name, *age, false))
                .await
                .unwrap();
            assert!(r.error.is_none());
        }
        let r = engine
            .create_stream("g", spec("T", None, true))
            .await
            .unwrap();
        assert!(r.error.is_none());
        let now = clock.now_unix_nanos();
        let record = |name: &str| Record {
            subject: format!("{name}.x"),
            size: 10,
            timestamp_unix_nanos: now,
            ..Record::default()
        };
        let mut chunks: Vec<Chunk> = names
            .iter()
            .map(|(name, _)| chunk(name, vec![record(name)]))
            .collect();
        chunks.push(chunk(
            "T",
            vec![Record {
                ttl_seconds: Some(5),
                ..record("T")
            }],
        ));
        for (i, c) in chunks.iter_mut().enumerate() {
            c.chunk_index = u32::try_from(i).unwrap();
        }
        let resp = engine
            .commit(
                "g",
                CommitBatch {
                    batch_id: "b".into(),
                    object_key: "obj-b".into(),
                    agent_id: "a".into(),
                    chunks,
                },
            )
            .await
            .unwrap();
        assert!(resp.chunks.iter().all(|c| c.error.is_none()));
        if let (Some(before), Some(after)) = (rss_before, rss_kib()) {
            println!(
                "control plane (engine + memory store) RSS growth per stream with one message: {:.1} KiB",
                after.saturating_sub(before) as f64 / names.len() as f64
            );
        }

        let started = std::time::Instant::now();
        let idle = engine.retention_pass("g").await.unwrap();
        println!(
            "retention pass over {} streams, none due: {:?}",
            names.len() + 1,
            started.elapsed()
        );
        assert_eq!(idle, RetentionPass::default());
        assert_eq!(engine.next_expiry().await, Some(now + 5_000_000_000));
        assert_eq!(
            engine.shortest_max_age().await,
            Some(Duration::from_secs(60))
        );

        clock.advance(Duration::from_secs(6));
        let ttl = engine.retention_pass("g").await.unwrap();
        assert_eq!(
            ttl,
            RetentionPass {
                removed: 1,
                visited: 1
            }
        );
        clock.advance(Duration::from_secs(55));
        let aged = engine.retention_pass("g").await.unwrap();
        assert_eq!(
            aged,
            RetentionPass {
                removed: AGING as u64,
                visited: AGING as u64
            }
        );
        assert_eq!(engine.next_expiry().await, None, "nothing left to expire");
        let info = engine.stream_info("g", "A0", false).await.unwrap();
        assert_eq!(info.state.unwrap().messages, 0);
        let info = engine.stream_info("g", "I0", false).await.unwrap();
        assert_eq!(info.state.unwrap().messages, 1);

        // A deleted stream leaves the index; a new message in an aged stream enters it.
        assert!(engine.delete_stream("g", "A1").await.unwrap().is_none());
        let later = clock.now_unix_nanos();
        let again = CommitBatch {
            batch_id: "b2".into(),
            object_key: "obj-b2".into(),
            agent_id: "a".into(),
            chunks: vec![chunk(
                "A0",
                vec![Record {
                    timestamp_unix_nanos: later,
                    ..record("A0")
                }],
            )],
        };
        assert!(
            engine.commit("g", again).await.unwrap().chunks[0]
                .error
                .is_none()
        );
        assert_eq!(engine.next_expiry().await, Some(later + 60_000_000_000));
        clock.advance(Duration::from_secs(61));
        assert_eq!(
            engine.retention_pass("g").await.unwrap(),
            RetentionPass {
                removed: 1,
                visited: 1
            }
        );
    }
}
