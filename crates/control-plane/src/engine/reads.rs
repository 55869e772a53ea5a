//! Reads of a stream's index: by sequence range, by time, last by subject.

use infinistream_proto::v1;

use super::Engine;
use crate::errors::CpError;
use infinistream_protocol::jsapi::ApiError;

impl Engine {
    pub(crate) async fn read_index(
        &self,
        group: &str,
        req: v1::ReadIndexRequest,
    ) -> Result<v1::ReadIndexResponse, CpError> {
        let mut st = self.state.lock().await;
        let g = self.group_mut(&mut st, group).await?;
        let Some(s) = g.streams.get(&req.stream) else {
            return Ok(v1::ReadIndexResponse {
                error: Some(ApiError::stream_not_found().into()),
                ..Default::default()
            });
        };
        let limit = if req.limit == 0 {
            1000
        } else {
            req.limit as usize
        };
        Ok(v1::ReadIndexResponse {
            error: None,
            entries: s.read_index(req.start_seq, req.end_seq, limit),
            state: Some(s.state(false)),
        })
    }

    pub(crate) async fn seq_for_time(
        &self,
        group: &str,
        stream: &str,
        ts: i64,
    ) -> Result<v1::SeqForTimeResponse, CpError> {
        let mut st = self.state.lock().await;
        let g = self.group_mut(&mut st, group).await?;
        Ok(match g.streams.get(stream) {
            Some(s) => v1::SeqForTimeResponse {
                error: None,
                seq: s.seq_for_time(ts),
            },
            None => v1::SeqForTimeResponse {
                error: Some(ApiError::stream_not_found().into()),
                seq: 0,
            },
        })
    }

    pub(crate) async fn last_by_subject(
        &self,
        group: &str,
        stream: &str,
        subjects: &[String],
    ) -> Result<v1::LastBySubjectResponse, CpError> {
        let mut st = self.state.lock().await;
        let g = self.group_mut(&mut st, group).await?;
        Ok(match g.streams.get(stream) {
            Some(s) => v1::LastBySubjectResponse {
                error: None,
                subjects: s.last_by_subject(subjects),
            },
            None => v1::LastBySubjectResponse {
                error: Some(ApiError::stream_not_found().into()),
                subjects: Vec::new(),
            },
        })
    }
}
