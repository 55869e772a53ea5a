//! Stream administration: create, update, delete, info and list.

use infinistream_proto::domain::{StreamSpec, stream_account};
use infinistream_proto::v1::{self, JsError};
use infinistream_protocol::subject;
use prost::Message;

use super::{Engine, Group, apply_delta, error_info};
use crate::errors::CpError;
use crate::keys;
use crate::model::StreamRecord;
use crate::store::Op;
use crate::stream::Stream;
use infinistream_protocol::jsapi::ApiError;

impl Group {
    /// Creates a stream in memory, answered once the writer's round (which writes
    /// `ops`, where its config key goes, and this group's changes) is durable. An
    /// existing stream with the same config answers as created; one with another
    /// config, or subjects overlapping another stream's, answers the API error.
    pub(super) fn create_stream(
        &mut self,
        group: &str,
        spec: StreamSpec,
        now: i64,
        ops: &mut Vec<Op>,
    ) -> v1::StreamInfoResponse {
        if let Some(existing) = self.streams.get(&spec.name) {
            if existing.spec == spec {
                return self.stream_info(&spec.name, false);
            }
            return error_info(ApiError::stream_name_exist().into());
        }
        if self.subjects.overlaps(&spec.name, &spec.limits.subjects) {
            return error_info(ApiError::stream_subject_overlap().into());
        }
        if let Some(e) = self.account_refuses_stream(&spec) {
            return error_info(e);
        }
        let name = spec.name.clone();
        // The round's `take_ops` forms round `log_round + 1`.
        let created_round = self.log_round + 1;
        let rec = StreamRecord {
            config: Some((&spec).into()),
            created_unix_nanos: now,
            created_round,
        };
        let mut stream = Stream::new(spec, now);
        stream.start_at_first_seq();
        stream.created_round = created_round;
        self.subjects.add(&name, &stream.spec.limits.subjects);
        self.streams.insert(name.clone(), stream);
        self.touched.insert(name.clone());
        self.note_stream(v1::StreamEventKind::StreamEventCreated, &name);
        ops.push(Op::Put {
            key: keys::stream_cfg(group, &name),
            value: rec.encode_to_vec(),
        });
        self.stream_info(&name, false)
    }
}

impl Engine {
    pub(crate) async fn update_stream(
        &self,
        group: &str,
        spec: StreamSpec,
    ) -> Result<v1::StreamInfoResponse, CpError> {
        let mut st = self.state.lock().await;
        let g = self.group_mut(&mut st, group).await?;
        let Some(existing) = g.streams.get(&spec.name) else {
            return Ok(error_info(ApiError::stream_not_found().into()));
        };
        if existing.spec.limits.sealed && !spec.limits.sealed {
            return Ok(error_info(
                ApiError::stream_invalid_config(
                    "stream configuration update can not unseal a sealed stream",
                )
                .into(),
            ));
        }
        if g.subjects.overlaps(&spec.name, &spec.limits.subjects) {
            return Ok(error_info(ApiError::stream_subject_overlap().into()));
        }
        if let Some(e) = g.account_refuses_stream(&spec) {
            return Ok(error_info(e));
        }
        let now = self.now();
        let name = spec.name.clone();
        let created = existing.created;
        let rec = StreamRecord {
            config: Some((&spec).into()),
            created_unix_nanos: created,
            created_round: existing.created_round,
        };
        if let Some(s) = g.streams.get_mut(&name) {
            g.subjects.remove(&name, &s.spec.limits.subjects);
            g.subjects.add(&name, &spec.limits.subjects);
            s.spec = spec;
            s.enforce_all_limits(now);
        }
        g.touched.insert(name.clone());
        g.note_stream(v1::StreamEventKind::StreamEventUpdated, &name);
        let mut ops = vec![Op::Put {
            key: keys::stream_cfg(group, &name),
            value: rec.encode_to_vec(),
        }];
        g.take_ops(now, &mut ops);
        self.write_ops(&mut st, ops).await?;
        let g = self.group_mut(&mut st, group).await?;
        Ok(g.stream_info(&name, false))
    }

    pub(crate) async fn delete_stream(
        &self,
        group: &str,
        name: &str,
    ) -> Result<Option<JsError>, CpError> {
        let mut st = self.state.lock().await;
        let g = self.group_mut(&mut st, group).await?;
        let Some(mut s) = g.streams.remove(name) else {
            return Ok(Some(ApiError::stream_not_found().into()));
        };
        g.subjects.remove(name, &s.spec.limits.subjects);
        s.remove_all_entries();
        for (obj, d) in std::mem::take(&mut s.obj_delta) {
            apply_delta(&mut g.object_refs, &mut g.released, obj, d);
        }
        g.touched.remove(name);
        g.dropped.push(name.to_owned());
        g.consumers.retain(|(s, _), _| s != name);
        self.flush_group(&mut st, group).await?;
        Ok(None)
    }

    pub(crate) async fn stream_info(
        &self,
        group: &str,
        name: &str,
        details: bool,
    ) -> Result<v1::StreamInfoResponse, CpError> {
        let mut st = self.state.lock().await;
        let g = self.group_mut(&mut st, group).await?;
        Ok(g.stream_info(name, details))
    }

    /// The streams whose subjects collide with `filter` (all when empty), of
    /// `account` only when it is not empty.
    pub(crate) async fn list_streams(
        &self,
        group: &str,
        filter: &str,
        account: &str,
    ) -> Result<Vec<v1::StreamInfoResponse>, CpError> {
        let mut st = self.state.lock().await;
        let g = self.group_mut(&mut st, group).await?;
        Ok(g.streams
            .iter()
            .filter(|(id, _)| account.is_empty() || stream_account(id) == account)
            .filter(|(_, s)| {
                filter.is_empty()
                    || s.spec
                        .limits
                        .subjects
                        .iter()
                        .any(|x| subject::subjects_collide(x, filter))
            })
            .map(|(name, _)| g.stream_info(name, false))
            .collect())
    }
}
