//! Message schedules (ADR-51): firing the schedules that are due, each exactly once.
//!
//! One pass, under the `schedules` lease (so normally one jobs agent fires):
//! 1. `DueSchedules` lists the schedules whose firing time has come (and the group's
//!    backlog, exported as a gauge).
//! 2. For each, the schedule message is read from the bucket (and, with
//!    `Nats-Schedule-Source`, the last message of that subject), and the produced
//!    message is built as nats-server builds it: subject = `Nats-Schedule-Target`,
//!    schedule headers stripped, `Nats-Scheduler` and `Nats-Schedule-Next` added
//!    ([`fired_headers`]).
//! 3. It is written as a one-record batch object and committed with a
//!    `ScheduleFiring` naming the schedule's sequence and the due time read in step 1.
//!    The control plane stores it only if the schedule is still that message and still
//!    due at that time, and moves the schedule on (or purges it, for `@at`) in the same
//!    metadata write.
//!
//! Exactly once: the commit is the one point where a firing counts. A second agent
//! (a lease lost mid-pass, a zombie) or a retry after a lost answer is refused by the
//! fence, and its object, referenced by nothing, is deleted at once (or by orphan
//! collection if that delete fails). An agent killed before the commit stored nothing;
//! the schedule is still due and the next pass (any agent's) fires it.
//!
//! Bound: a schedule fires within `schedule_interval` plus one upload and one commit
//! of its time, while a jobs agent runs. The backlog gauge shows what is due and not
//! fired (e.g. in a cluster with no jobs agent).

use infinistream_proto::v1::{self, record_result};
use infinistream_protocol::HeaderMap;
use infinistream_protocol::jsapi::headers::{self, MessageTtl, parse_message_ttl};
use infinistream_protocol::jsapi::schedule::{ScheduleHeaders, fired_headers};
use infinistream_segment::{BatchBuilder, BuildOptions, RecordRef};

use crate::compaction::read_record;
use crate::ctx::Ctx;
use crate::error::JobsError;

/// Most due schedules fired per pass.
const PER_PASS: u32 = 1000;

/// What one schedules pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ScheduleReport {
    /// Another agent held the `schedules` lease; nothing was done.
    pub skipped: bool,
    /// Schedules due when the pass began (the group's backlog).
    pub due: u64,
    /// Firings stored.
    pub fired: u64,
    /// Firings the control plane refused (fired already, or the schedule changed).
    pub fenced: u64,
    /// Schedules whose message was gone or unreadable as a schedule.
    pub gone: u64,
    /// Firings that failed (retried next pass).
    pub failed: u64,
}

/// One pass (the caller holds the lease).
pub(crate) async fn run(ctx: &Ctx) -> Result<ScheduleReport, JobsError> {
    let resp = ctx.cp.due_schedules(PER_PASS).await?;
    ctx.metrics.schedule_backlog(resp.backlog);
    let mut report = ScheduleReport {
        due: resp.backlog,
        ..ScheduleReport::default()
    };
    for due in &resp.due {
        match fire(ctx, due).await {
            Ok(Fired::Stored(seq)) => {
                report.fired += 1;
                ctx.metrics.schedule_fired();
                tracing::debug!(stream = %due.stream, schedule = %due.subject, seq, "schedule fired");
            }
            Ok(Fired::Fenced(reason)) => {
                report.fenced += 1;
                tracing::debug!(stream = %due.stream, schedule = %due.subject, reason, "firing refused");
            }
            Ok(Fired::Gone) => report.gone += 1,
            Err(error) => {
                report.failed += 1;
                tracing::warn!(stream = %due.stream, schedule = %due.subject, %error, "cannot fire schedule; retrying next pass");
            }
        }
    }
    Ok(report)
}

enum Fired {
    Stored(u64),
    Fenced(String),
    Gone,
}

async fn fire(ctx: &Ctx, due: &v1::DueSchedule) -> Result<Fired, JobsError> {
    let Some(schedule) = read_record(ctx, &due.stream, due.seq).await? else {
        return Ok(Fired::Gone);
    };
    let schedule_headers = HeaderMap::parse(&schedule.headers).unwrap_or_default();
    let Some(h) = ScheduleHeaders::from_headers(&schedule_headers) else {
        return Ok(Fired::Gone);
    };
    let (Ok(Some(pattern)), Some(target)) = (h.pattern(), h.target.clone()) else {
        return Ok(Fired::Gone);
    };
    let now = ctx.clock.now_unix_nanos();
    let next = if pattern.repeats() {
        pattern.next(due.due_unix_nanos, now)
    } else {
        None
    };
    // A source's last message, else the schedule's own content.
    let mut content = schedule.clone();
    if let Some(source) = h.source.as_deref().filter(|s| !s.is_empty()) {
        let last = ctx
            .cp
            .last_by_subject(&due.stream, vec![source.to_owned()])
            .await?;
        if let Some(l) = last.first().filter(|l| l.last_seq != 0)
            && let Some(r) = read_record(ctx, &due.stream, l.last_seq).await?
        {
            content = r;
        }
    }
    let content_headers = HeaderMap::parse(&content.headers).unwrap_or_default();
    let out_headers = fired_headers(&content_headers, &schedule_headers, &due.subject, next);
    let header_bytes = out_headers.to_bytes();

    let mut builder = BatchBuilder::new(BuildOptions::default());
    let record = RecordRef {
        subject: target.as_bytes(),
        headers: &header_bytes,
        payload: &content.payload,
        timestamp: now,
        msg_id: None,
    };
    builder
        .push(&due.stream, &record)
        .map_err(|source| JobsError::Build {
            stream: due.stream.clone(),
            source,
        })?;
    let finished = builder.finish().map_err(|source| JobsError::Build {
        stream: due.stream.clone(),
        source,
    })?;
    let Some(chunk) = finished.footer.chunks().first() else {
        return Err(JobsError::Inconsistent {
            key: String::new(),
            reason: "a one-record batch has no chunk".into(),
        });
    };
    let (chunk_index, byte_size) = (chunk.index, u64::from(chunk.stored_len));
    let key = ctx.bucket.put_batch(finished.object).await?;

    let size = target.len() + header_bytes.len() + content.payload.len();
    let ttl_seconds = h
        .ttl
        .as_deref()
        .and_then(|t| parse_message_ttl(t).ok().flatten())
        .map(|t| match t {
            MessageTtl::Never => -1,
            MessageTtl::Seconds(s) => i64::try_from(s).unwrap_or(i64::MAX),
        });
    let rollup = match h.rollup.as_deref() {
        Some(headers::ROLLUP_SUBJECT) => v1::Rollup::Subject,
        _ => v1::Rollup::None,
    };
    let meta = v1::RecordMeta {
        subject: target.clone(),
        size: u32::try_from(size).unwrap_or(u32::MAX),
        header_size: u32::try_from(header_bytes.len()).unwrap_or(u32::MAX),
        timestamp_unix_nanos: now,
        ttl_seconds,
        rollup: rollup as i32,
        firing: Some(v1::ScheduleFiring {
            scheduler: due.subject.clone(),
            schedule_seq: due.seq,
            due_unix_nanos: due.due_unix_nanos,
            next_unix_nanos: next.unwrap_or(0),
        }),
        ..v1::RecordMeta::default()
    };
    let request = v1::CommitBatchRequest {
        batch_id: key.id().to_string(),
        object_key: key.to_string(),
        agent_id: ctx.leases.holder.clone(),
        chunks: vec![v1::ChunkMeta {
            stream: due.stream.clone(),
            chunk_index,
            record_count: 1,
            byte_size,
            records: vec![meta],
        }],
    };
    let committed = ctx.cp.commit_batch(request).await;
    let result = match committed {
        Ok(resp) => resp
            .chunks
            .into_iter()
            .next()
            .and_then(|c| c.records.into_iter().next())
            .and_then(|r| r.result),
        // Unknown outcome: leave the object; if the commit was applied it is
        // referenced, else orphan collection removes it. The fence keeps a retry from
        // firing twice.
        Err(error) => return Err(error.into()),
    };
    match result {
        Some(record_result::Result::Seq(seq)) => Ok(Fired::Stored(seq)),
        other => {
            let reason = match other {
                Some(record_result::Result::Error(e)) => e.description,
                _ => "no answer for the record".to_owned(),
            };
            // Nothing references the object: delete it now.
            if let Err(error) = ctx.bucket.delete(key.path()).await {
                tracing::debug!(key = %key, %error, "cannot delete an unused firing object; orphan collection will");
            }
            Ok(Fired::Fenced(reason))
        }
    }
}
