//! Atomic batch publish (ADR-50) at commit: all of a batch's records or none.
//!
//! The agent holds a batch until its commit message and then sends every record of it
//! contiguously in one chunk, each tagged with the batch id. Here the whole batch is
//! checked against the stream as it was before the batch, in nats-server's
//! `checkMsgHeadersPreClusteredProposal` terms, with the batch's own earlier records
//! staged beside it: a `Nats-Msg-Id` seen before or inside the batch refuses it
//! (10201); only the first record may carry `Nats-Expected-Last-Sequence`; an
//! expected-last-subject-sequence check or a subject rollup on a subject the batch
//! already wrote, and an `all` rollup after the first record, refuse it; discard-new
//! limits count the batch's records. Only when every record passes is each one
//! appended, so a failure anywhere (message 500 of 1,000) stores nothing and every
//! record answers with that error.

use std::collections::{HashMap, HashSet};
use std::ops::Range;

use infinistream_proto::domain::{Record, Rollup};
use infinistream_proto::v1::{JsError, RecordResult};
use infinistream_protocol::jsapi::ApiError;
use infinistream_protocol::jsapi::errors::store;

use super::{ChunkCtx, Stream, err};

/// What the batch's earlier records would change, for the checks of the later ones.
#[derive(Default)]
struct Staged<'a> {
    msg_ids: HashSet<&'a str>,
    /// Subject → (records, bytes) written by the batch so far.
    subjects: HashMap<&'a str, (u64, u64)>,
    msgs: u64,
    bytes: u64,
}

impl Stream {
    /// Commits the records `range` of `records` (one atomic batch) all or nothing,
    /// pushing one answer per record to `out`.
    pub(super) fn commit_atomic<'a>(
        &mut self,
        ctx: &mut ChunkCtx<'a>,
        records: &'a [Record],
        range: Range<usize>,
        now: i64,
        out: &mut Vec<RecordResult>,
    ) {
        let batch = &records[range.clone()];
        let checked = self.check_atomic(batch, now);
        match checked {
            Err(e) => out.extend(batch.iter().map(|_| err(e.clone()))),
            Ok(()) => {
                for pos in range {
                    out.push(self.store_checked(ctx, pos, &records[pos]));
                }
            }
        }
    }

    fn check_atomic(&self, batch: &[Record], now: i64) -> Result<(), JsError> {
        let limits = &self.spec.limits;
        let mut staged = Staged::default();
        for (i, r) in batch.iter().enumerate() {
            let first = i == 0;
            if let Some(id) = r.msg_id.as_deref()
                && staged.msg_ids.contains(id)
            {
                return Err(ApiError::atomic_publish_contains_duplicate_message().into());
            }
            if let Some(expected) = r.expected_last_seq
                && !first
            {
                // nats-server compares with the sequence the batch would have reached.
                let running = self.state.last_seq + i as u64;
                return Err(if expected == running {
                    ApiError::stream_wrong_last_sequence_constant()
                } else {
                    ApiError::stream_wrong_last_sequence(running)
                }
                .into());
            }
            if r.expected_last_subject_seq.is_some() {
                let subject = r
                    .expected_last_subject_seq_subject
                    .as_deref()
                    .unwrap_or(&r.subject);
                if staged.subjects.contains_key(subject) {
                    return Err(ApiError::stream_wrong_last_sequence_constant().into());
                }
            }
            if limits.allow_rollup && !limits.deny_purge {
                match r.rollup {
                    Rollup::Subject if staged.subjects.contains_key(r.subject.as_str()) => {
                        return Err(
                            ApiError::stream_rollup_failed("batch rollup sub invalid").into()
                        );
                    }
                    Rollup::All if !first => {
                        return Err(
                            ApiError::stream_rollup_failed("batch rollup all invalid").into()
                        );
                    }
                    _ => {}
                }
            }
            // The record's own checks, against the stream before the batch.
            if self.check(r, now)?.is_some() {
                return Err(ApiError::atomic_publish_contains_duplicate_message().into());
            }
            if let Some(id) = r.msg_id.as_deref() {
                staged.msg_ids.insert(id);
            }
            let size = u64::from(r.size);
            let on_subject = staged.subjects.entry(r.subject.as_str()).or_default();
            on_subject.0 += 1;
            on_subject.1 += size;
            let subject_ops = on_subject.0;
            staged.msgs += 1;
            staged.bytes += size;
            if limits.discard_new {
                if let Some(max) = limits.max_msgs
                    && self.msgs + staged.msgs > max
                {
                    return Err(ApiError::stream_store_failed(store::MAX_MSGS).into());
                }
                if let Some(max) = limits.max_bytes
                    && self.bytes + staged.bytes > max
                {
                    return Err(ApiError::stream_store_failed(store::MAX_BYTES).into());
                }
                if limits.discard_new_per_subject
                    && r.rollup == Rollup::None
                    && let Some(max) = limits.max_msgs_per_subject
                {
                    let stored = self.subjects.get(&r.subject).map_or(0, |d| d.len() as u64);
                    if stored + subject_ops > max {
                        return Err(
                            ApiError::stream_store_failed(store::MAX_MSGS_PER_SUBJECT).into()
                        );
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use infinistream_proto::domain::{Chunk, Limits};
    use infinistream_proto::v1::record_result;

    use super::super::tests::spec;
    use super::*;

    fn stream(limits: Limits) -> Stream {
        Stream::new(spec(limits), 0)
    }

    fn rec(subject: &str, batch: Option<&str>) -> Record {
        Record {
            atomic_batch: batch.map(str::to_owned),
            ..super::super::tests::rec(subject)
        }
    }

    fn commit(s: &mut Stream, records: Vec<Record>) -> Vec<Result<u64, u32>> {
        let chunk = Chunk {
            stream: "S".into(),
            chunk_index: 0,
            byte_size: 10,
            records,
        };
        s.commit_chunk(&chunk, "obj", 1)
            .into_iter()
            .map(|r| match r.result {
                Some(record_result::Result::Seq(seq)) => Ok(seq),
                Some(record_result::Result::Error(e)) => Err(e.err_code),
                other => panic!("unexpected answer {other:?}"),
            })
            .collect()
    }

    fn batch(n: usize, id: &str) -> Vec<Record> {
        (0..n).map(|i| rec(&format!("s.{i}"), Some(id))).collect()
    }

    #[test]
    fn a_batch_is_stored_whole_between_plain_records() {
        let mut s = stream(Limits::default());
        let mut records = vec![rec("s.p", None)];
        records.extend(batch(3, "b"));
        records.push(rec("s.p", None));
        let answers = commit(&mut s, records);
        assert_eq!(answers, vec![Ok(1), Ok(2), Ok(3), Ok(4), Ok(5)]);
        assert_eq!(s.msgs, 5);
    }

    /// A failing expected-last-subject-sequence on message 500 of 1,000 stores none of
    /// them, and every record answers with nats-server's error (10071).
    #[test]
    fn a_failing_check_stores_nothing() {
        let mut s = stream(Limits::default());
        let mut records = batch(1000, "b");
        records[499].expected_last_subject_seq = Some(77);
        let answers = commit(&mut s, records);
        assert!(answers.iter().all(|a| *a == Err(10071)), "{answers:?}");
        assert_eq!(s.msgs, 0);
        assert_eq!(s.state.last_seq, 0);
        // The next batch starts from the untouched stream.
        assert_eq!(commit(&mut s, batch(2, "c")), vec![Ok(1), Ok(2)]);
    }

    #[test]
    fn in_batch_rules_match_nats_server() {
        let mut s = stream(Limits::default());
        // A duplicate msg id inside the batch: 10201.
        let mut b = batch(2, "d");
        b[0].msg_id = Some("m".into());
        b[1].msg_id = Some("m".into());
        assert_eq!(commit(&mut s, b), vec![Err(10201), Err(10201)]);
        // Expected last sequence on a later message: 10164 when it matches the
        // running sequence, else 10071.
        let mut b = batch(2, "e");
        b[1].expected_last_seq = Some(1);
        assert_eq!(commit(&mut s, b), vec![Err(10164), Err(10164)]);
        // Expected last subject sequence on a subject the batch wrote: 10164.
        let mut b = vec![rec("s.q", Some("f")), rec("s.q", Some("f"))];
        b[1].expected_last_subject_seq = Some(0);
        assert_eq!(commit(&mut s, b), vec![Err(10164), Err(10164)]);
        // A msg id already in the stream: 10201.
        let mut one = rec("s.x", None);
        one.msg_id = Some("n".into());
        assert_eq!(commit(&mut s, vec![one]), vec![Ok(1)]);
        let mut b = batch(1, "g");
        b[0].msg_id = Some("n".into());
        assert_eq!(commit(&mut s, b), vec![Err(10201)]);
    }

    #[test]
    fn discard_new_counts_the_whole_batch() {
        let mut s = stream(Limits {
            max_msgs: Some(3),
            discard_new: true,
            ..Default::default()
        });
        assert_eq!(commit(&mut s, batch(4, "a")), vec![Err(10077); 4]);
        assert_eq!(commit(&mut s, batch(3, "b")), vec![Ok(1), Ok(2), Ok(3)]);
    }
}
