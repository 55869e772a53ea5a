//! What jobs need of the index: swapping in compacted segments, the objects a group
//! references or released, forgetting released objects once deleted, and the message
//! schedules that are due.

use infinistream_proto::v1;

use super::Engine;
use crate::errors::CpError;
use crate::keys;
use crate::model::{ReleasedRecord, decode};
use crate::store::Op;

impl Engine {
    /// Schedules of `group` due now, oldest first (at most `limit`), and how many are
    /// due in all.
    pub(crate) async fn due_schedules(
        &self,
        group: &str,
        limit: u32,
    ) -> Result<v1::DueSchedulesResponse, CpError> {
        let limit = if limit == 0 { 1000 } else { limit as usize };
        let mut st = self.state.lock().await;
        let now = self.now();
        let g = self.group_mut(&mut st, group).await?;
        let mut due = Vec::new();
        let mut backlog = 0;
        for (name, s) in g
            .expiry
            .scheduled()
            .filter_map(|n| g.streams.get(n).map(|s| (n, s)))
        {
            for (subject, seq, at) in s.due_schedules(now) {
                backlog += 1;
                due.push(v1::DueSchedule {
                    stream: name.clone(),
                    subject,
                    seq,
                    due_unix_nanos: at,
                });
            }
        }
        due.sort_by_key(|d| d.due_unix_nanos);
        due.truncate(limit);
        Ok(v1::DueSchedulesResponse { due, backlog })
    }

    /// Sets the schedule gauges of every loaded group (the leader's view: what is due
    /// and not fired, whether or not a jobs agent runs).
    pub(crate) async fn export_schedule_backlog(&self) {
        let now = self.now();
        let metrics = self.metrics();
        let st = self.state.lock().await;
        for (group, g) in &st.groups {
            let scheduled = g.expiry.scheduled().filter_map(|n| g.streams.get(n));
            let (due, oldest) = scheduled.map(|s| s.schedule_backlog(now)).fold(
                (0, None::<i64>),
                |(n, o), (dn, d)| {
                    let oldest = match (o, d) {
                        (Some(a), Some(b)) => Some(a.min(b)),
                        (a, b) => a.or(b),
                    };
                    (n + dn, oldest)
                },
            );
            // Nanoseconds to seconds for the gauge (precision beyond 2^53 ns is moot).
            #[allow(clippy::cast_precision_loss)]
            let overdue = oldest.map_or(0.0, |o| now.saturating_sub(o) as f64 / 1e9);
            metrics.set_schedule_backlog(group, due, overdue);
        }
    }

    pub(crate) async fn swap_index(
        &self,
        group: &str,
        req: v1::SwapIndexRequest,
    ) -> Result<v1::SwapIndexResponse, CpError> {
        let mut st = self.state.lock().await;
        let g = self.group_mut(&mut st, group).await?;
        let Some(s) = g.streams.get_mut(&req.stream) else {
            return Ok(v1::SwapIndexResponse {
                swapped: false,
                reason: "stream not found".into(),
            });
        };
        if let Err(reason) = s.swap(
            &req.replaced,
            &req.segment_object_key,
            req.segment_byte_size,
        ) {
            return Ok(v1::SwapIndexResponse {
                swapped: false,
                reason,
            });
        }
        g.touched.insert(req.stream.clone());
        self.flush_group(&mut st, group).await?;
        Ok(v1::SwapIndexResponse {
            swapped: true,
            reason: String::new(),
        })
    }

    pub(crate) async fn list_objects(
        &self,
        group: &str,
    ) -> Result<v1::ListObjectsResponse, CpError> {
        let mut st = self.state.lock().await;
        let g = self.group_mut(&mut st, group).await?;
        let mut referenced: Vec<String> = g.object_refs.keys().cloned().collect();
        referenced.sort();
        drop(st);
        let prefix = keys::kind_prefix(group, "rel");
        let mut released = Vec::new();
        for kv in self.store.scan_prefix(&prefix).await? {
            let Some(obj) = keys::suffix(&kv.key, &prefix) else {
                continue;
            };
            let rec: ReleasedRecord = decode(&kv.key, &kv.value)?;
            released.push(v1::ReleasedObject {
                object_key: obj.to_owned(),
                released_unix_nanos: rec.released_unix_nanos,
            });
        }
        Ok(v1::ListObjectsResponse {
            referenced,
            released,
        })
    }

    pub(crate) async fn forget_objects(
        &self,
        group: &str,
        objects: &[String],
    ) -> Result<(), CpError> {
        let ops = objects
            .iter()
            .map(|o| Op::Delete {
                key: keys::released(group, o),
            })
            .collect::<Vec<_>>();
        if ops.is_empty() {
            return Ok(());
        }
        self.write_plain(vec![], ops).await.map(|_| ())
    }
}
