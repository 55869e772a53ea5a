//! Compaction: a stream's small index entries rewritten into one compacted segment.
//!
//! 1. `ReadIndex` the stream; [`plan_run`] picks the first run of at least
//!    `min_entries` consecutive small entries (batch chunks, or segments smaller than
//!    half the target) totalling at most `target_bytes`.
//! 2. Every live record of the run is read (one tail GET per object for its footer or
//!    segment index, one ranged GET per chunk or block) and pushed with its sequence
//!    into a [`SegmentBuilder`]; the segment is uploaded under a fresh key.
//! 3. `SwapIndex` replaces the run by the segment in one transaction. The control plane
//!    refuses when any entry of the run is gone or changed (purged, trimmed, expired,
//!    compacted by someone else); the segment, which nothing references, is then
//!    deleted at once. If the swap's outcome is unknown (an RPC error), the segment is
//!    left alone: either it is referenced now, or orphan collection removes it later.
//!
//! Records deleted between step 1 and step 3 are in the segment but stay deleted: the
//! swap copies the index's current deleted flags, and readers go by the index.

use std::collections::{HashMap, HashSet};
use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use infinistream_cp_client::CallError;
use infinistream_objstore::ObjectKey;
use infinistream_objstore::object_store::path::Path;
use infinistream_objstore::object_store::{GetOptions, GetRange};
use infinistream_proto::v1;
use infinistream_segment::{
    BatchFooter, SUGGESTED_TAIL_LEN, SegmentBuilder, SegmentIndex, TailRead, decode_block,
    decode_chunk,
};

use crate::ctx::Ctx;
use crate::error::JobsError;
use crate::lease::lease_name;

/// Index entries read per `ReadIndex` call.
const PAGE: u32 = 1000;
/// Most index entries one plan looks at.
const MAX_SCAN: usize = 10_000;
/// Most segments written per stream per pass.
const MAX_RUNS: usize = 16;

/// What one compaction pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CompactionReport {
    /// Streams looked at.
    pub streams: u64,
    /// Streams skipped: unchanged since a pass left them with nothing to compact
    /// (every stream is looked at in a full sweep, see [`FULL_SWEEP_EVERY`]).
    pub unchanged: u64,
    /// Streams skipped because another agent held their `compact/<stream>` lease.
    pub lease_conflicts: u64,
    /// Segments swapped into the index.
    pub segments_written: u64,
    /// Index entries they replaced.
    pub entries_replaced: u64,
    /// Records written into them.
    pub records: u64,
    /// Bytes of the segments.
    pub segment_bytes: u64,
    /// Swaps refused because the entries changed (segment deleted, retried next pass).
    pub swaps_refused: u64,
    /// Streams whose compaction failed (logged; retried next pass).
    pub failed: u64,
}

/// A segment uploaded but not yet swapped in.
#[derive(Debug, Clone)]
pub struct PreparedSegment {
    /// The stream.
    pub stream: String,
    /// Where the segment is.
    pub key: ObjectKey,
    /// Its size.
    pub bytes: u64,
    /// Records in it.
    pub records: u64,
    /// The index entries it replaces, as read.
    pub replaced: Vec<v1::IndexEntryRef>,
}

/// The answer to a swap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SwapOutcome {
    /// The segment now serves the replaced range.
    Swapped,
    /// The control plane refused (the entries changed); the segment was deleted.
    Refused(String),
}

/// The first run of consecutive entries worth compacting, as a range of `entries`:
/// at least `min_entries` entries, each a batch chunk or a segment smaller than half of
/// `target_bytes`, together at most `target_bytes` (a single entry may exceed it).
pub fn plan_run(
    entries: &[v1::IndexEntry],
    min_entries: usize,
    target_bytes: u64,
) -> Option<Range<usize>> {
    let min_entries = min_entries.max(2);
    // A subject delete marker lives in the index alone (no object to rewrite): it
    // ends a run like a large segment does.
    let small = |e: &v1::IndexEntry| {
        e.marker.is_none() && (!e.segment || e.chunk_byte_size < target_bytes / 2)
    };
    let mut start = 0;
    let mut bytes = 0u64;
    for (i, e) in entries.iter().enumerate() {
        if !small(e) {
            if i - start >= min_entries {
                return Some(start..i);
            }
            start = i + 1;
            bytes = 0;
            continue;
        }
        if i > start && bytes.saturating_add(e.chunk_byte_size) > target_bytes {
            if i - start >= min_entries {
                return Some(start..i);
            }
            while start < i && bytes.saturating_add(e.chunk_byte_size) > target_bytes {
                bytes = bytes.saturating_sub(entries[start].chunk_byte_size);
                start += 1;
            }
        }
        bytes = bytes.saturating_add(e.chunk_byte_size);
    }
    (entries.len() - start >= min_entries).then_some(start..entries.len())
}

/// The stream's index entries from the start (at most [`MAX_SCAN`]).
async fn read_entries(ctx: &Ctx, stream: &str) -> Result<Vec<v1::IndexEntry>, JobsError> {
    let mut out: Vec<v1::IndexEntry> = Vec::new();
    let mut start = 0;
    loop {
        let resp = ctx
            .cp
            .read_index(v1::ReadIndexRequest {
                stream: stream.to_owned(),
                start_seq: start,
                end_seq: 0,
                limit: PAGE,
            })
            .await
            .map_err(|e| match e {
                CallError::Refused { call, error } => JobsError::Refused {
                    call,
                    stream: stream.to_owned(),
                    description: error.description,
                },
                other => other.into(),
            })?;
        let page = resp.entries.len();
        for e in resp.entries {
            // The first entry of a page may be the one the previous page ended with.
            if out.last().is_some_and(|l| l.first_seq >= e.first_seq) {
                continue;
            }
            start = e.last_seq.saturating_add(1);
            out.push(e);
        }
        if page < PAGE as usize || out.len() >= MAX_SCAN {
            return Ok(out);
        }
    }
}

/// Reads the run's live records into a new segment and uploads it; `None` when the
/// stream has nothing worth compacting.
pub(crate) async fn prepare(ctx: &Ctx, stream: &str) -> Result<Option<PreparedSegment>, JobsError> {
    let entries = read_entries(ctx, stream).await?;
    let Some(run) = plan_run(
        &entries,
        ctx.opts.compaction_min_entries,
        ctx.opts.compaction_target_bytes,
    ) else {
        return Ok(None);
    };
    let run = &entries[run];
    let mut builder =
        SegmentBuilder::new(stream, ctx.opts.segment).map_err(|source| JobsError::Build {
            stream: stream.to_owned(),
            source,
        })?;
    let mut tocs = Tocs::default();
    for entry in run {
        push_entry(ctx, stream, entry, &mut builder, &mut tocs).await?;
    }
    let records = builder.record_count();
    if records == 0 {
        // Every record died since the index was read; the next pass sees that.
        return Ok(None);
    }
    let finished = builder.finish().map_err(|source| JobsError::Build {
        stream: stream.to_owned(),
        source,
    })?;
    let bytes = finished.object_len;
    let key = ctx.bucket.put_segment(stream, finished.tail).await?;
    Ok(Some(PreparedSegment {
        stream: stream.to_owned(),
        key,
        bytes,
        records,
        replaced: run
            .iter()
            .map(|e| v1::IndexEntryRef {
                object_key: e.object_key.clone(),
                chunk_index: e.chunk_index,
                first_seq: e.first_seq,
            })
            .collect(),
    }))
}

/// Swaps a prepared segment in; on refusal deletes it (nothing references it).
pub(crate) async fn commit(
    ctx: &Ctx,
    prepared: &PreparedSegment,
) -> Result<SwapOutcome, JobsError> {
    let resp = ctx
        .cp
        .swap_index(v1::SwapIndexRequest {
            stream: prepared.stream.clone(),
            replaced: prepared.replaced.clone(),
            segment_object_key: prepared.key.to_string(),
            segment_byte_size: prepared.bytes,
        })
        .await?;
    if resp.swapped {
        ctx.metrics
            .segment_written(prepared.bytes, prepared.replaced.len() as u64);
        return Ok(SwapOutcome::Swapped);
    }
    ctx.metrics.swap_refused();
    discard(ctx, prepared).await;
    Ok(SwapOutcome::Refused(resp.reason))
}

/// Deletes a segment that was never swapped in.
async fn discard(ctx: &Ctx, prepared: &PreparedSegment) {
    match ctx.bucket.delete(prepared.key.path()).await {
        Ok(()) => ctx.metrics.deleted("refused_segment", prepared.bytes),
        Err(error) => tracing::warn!(
            key = %prepared.key, %error,
            "cannot delete unused segment; orphan collection will"
        ),
    }
}

/// Compacts `stream` under its lease: up to [`MAX_RUNS`] segments. `true` when it
/// left nothing worth compacting (no lease conflict, no refused swap, runs not
/// capped), so the stream need not be looked at again until it changes.
pub(crate) async fn compact_stream(
    ctx: &Ctx,
    stream: &str,
    report: &mut CompactionReport,
) -> Result<bool, JobsError> {
    let lease = lease_name("compact", stream);
    if !ctx.leases.acquire(&lease).await? {
        report.lease_conflicts += 1;
        return Ok(false);
    }
    let result = compact_locked(ctx, stream, &lease, report).await;
    ctx.leases.release(&lease).await;
    result
}

async fn compact_locked(
    ctx: &Ctx,
    stream: &str,
    lease: &str,
    report: &mut CompactionReport,
) -> Result<bool, JobsError> {
    for _ in 0..MAX_RUNS {
        let Some(prepared) = ctx.leases.hold(lease, prepare(ctx, stream)).await? else {
            return Ok(true);
        };
        // Still ours? A lost lease means another agent may be compacting the same
        // entries; the swap would be safe either way, but the work is theirs now.
        match ctx.leases.renew(lease).await {
            Ok(true) => {}
            Ok(false) => {
                discard(ctx, &prepared).await;
                return Err(JobsError::LeaseLost(lease.to_owned()));
            }
            Err(e) => {
                discard(ctx, &prepared).await;
                return Err(e);
            }
        }
        match commit(ctx, &prepared).await? {
            SwapOutcome::Swapped => {
                report.segments_written += 1;
                report.entries_replaced += prepared.replaced.len() as u64;
                report.records += prepared.records;
                report.segment_bytes += prepared.bytes;
                tracing::debug!(
                    stream, key = %prepared.key, entries = prepared.replaced.len(),
                    records = prepared.records, bytes = prepared.bytes,
                    "compacted segment swapped in"
                );
            }
            SwapOutcome::Refused(reason) => {
                report.swaps_refused += 1;
                tracing::info!(stream, %reason, "index changed during compaction; segment discarded, retrying next pass");
                return Ok(false);
            }
        }
    }
    Ok(false)
}

/// Passes between two full sweeps: the other passes skip every stream unchanged
/// (same creation, first and last sequence) since a pass left it with nothing to
/// compact. New small index entries come only with new messages, so the sweep is a
/// safety net (for what a skipped change could leave), once an hour at the default
/// 60 s interval.
pub const FULL_SWEEP_EVERY: u64 = 60;

/// What compaction remembers between passes: the streams it left with nothing to
/// compact, as (created, first_seq, last_seq) when it did.
#[derive(Debug, Default)]
pub(crate) struct Settled {
    passes: u64,
    streams: HashMap<String, (i64, u64, u64)>,
}

impl Settled {
    /// Starts a pass: `true` when this one is a full sweep.
    pub(crate) fn begin(&mut self) -> bool {
        let full = self.passes.is_multiple_of(FULL_SWEEP_EVERY);
        self.passes += 1;
        if full {
            self.streams.clear();
        }
        full
    }

    /// The streams of `listing` a pass must look at (changed, or not settled); the
    /// others are counted in `report.unchanged`. Forgets deleted streams.
    pub(crate) fn worth_a_look(
        &mut self,
        listing: Vec<v1::StreamInfoResponse>,
        report: &mut CompactionReport,
    ) -> Vec<(String, (i64, u64, u64))> {
        let mut live = HashSet::with_capacity(listing.len());
        let mut visit = Vec::new();
        for s in listing {
            let Some(name) = s.config.map(|c| c.name) else {
                continue;
            };
            let st = s.state.unwrap_or_default();
            let mark = (s.created_unix_nanos, st.first_seq, st.last_seq);
            if self.streams.get(&name) == Some(&mark) {
                report.unchanged += 1;
            } else {
                visit.push((name.clone(), mark));
            }
            live.insert(name);
        }
        self.streams.retain(|name, _| live.contains(name));
        visit
    }

    /// `name` was left with nothing to compact at `mark`.
    pub(crate) fn settle(&mut self, name: String, mark: (i64, u64, u64)) {
        self.streams.insert(name, mark);
    }

    /// `name` has (or may have) work left.
    pub(crate) fn unsettle(&mut self, name: &str) {
        self.streams.remove(name);
    }
}

/// Footers and segment indexes read during one run, by object key.
#[derive(Default)]
struct Tocs {
    batches: HashMap<String, Arc<BatchFooter>>,
    segments: HashMap<String, Arc<SegmentIndex>>,
}

fn parse_path(key: &str) -> Result<Path, JobsError> {
    Path::parse(key).map_err(|e| JobsError::Inconsistent {
        key: key.to_owned(),
        reason: format!("not an object path: {e}"),
    })
}

/// The last `n` bytes of an object and its length.
async fn tail(ctx: &Ctx, key: &str, path: &Path, n: u64) -> Result<(Bytes, u64), JobsError> {
    let store_err = |source| {
        JobsError::Bucket(infinistream_objstore::BucketError::Store {
            op: infinistream_objstore::Op::GetRange,
            key: key.to_owned(),
            source,
        })
    };
    let result = ctx
        .bucket
        .store()
        .get_opts(
            path,
            GetOptions {
                range: Some(GetRange::Suffix(n)),
                ..GetOptions::default()
            },
        )
        .await
        .map_err(store_err)?;
    let len = result.meta.size;
    let bytes = result.bytes().await.map_err(store_err)?;
    Ok((bytes, len))
}

/// Decodes the footer (batch) or index (segment) of `key` from its tail.
async fn read_toc<T>(
    ctx: &Ctx,
    key: &str,
    path: &Path,
    decode: impl Fn(&[u8], u64) -> Result<TailRead<T>, infinistream_segment::DecodeError>,
) -> Result<T, JobsError> {
    let mut want = SUGGESTED_TAIL_LEN;
    loop {
        let (bytes, len) = tail(ctx, key, path, want).await?;
        match decode(&bytes, len).map_err(|source| JobsError::Decode {
            key: key.to_owned(),
            source,
        })? {
            TailRead::Complete(t) => return Ok(t),
            TailRead::NeedTail(n) if n > want => want = n,
            TailRead::NeedTail(_) => {
                return Err(JobsError::Inconsistent {
                    key: key.to_owned(),
                    reason: "footer asks for no more than the tail it was given".into(),
                });
            }
        }
    }
}

/// Pushes the live records of one index entry into `builder`.
async fn push_entry(
    ctx: &Ctx,
    stream: &str,
    entry: &v1::IndexEntry,
    builder: &mut SegmentBuilder,
    tocs: &mut Tocs,
) -> Result<(), JobsError> {
    let key = entry.object_key.as_str();
    let path = parse_path(key)?;
    let deleted: HashSet<u64> = entry.deleted.iter().copied().collect();
    let live =
        |seq: u64| seq >= entry.first_seq && seq <= entry.last_seq && !deleted.contains(&seq);
    let inconsistent = |reason: String| JobsError::Inconsistent {
        key: key.to_owned(),
        reason,
    };
    let build_err = |source| JobsError::Build {
        stream: stream.to_owned(),
        source,
    };
    let decode_err = |source| JobsError::Decode {
        key: key.to_owned(),
        source,
    };
    if entry.segment {
        let index = match tocs.segments.get(key) {
            Some(i) => i.clone(),
            None => {
                let i = Arc::new(read_toc(ctx, key, &path, SegmentIndex::decode_from_tail).await?);
                tocs.segments.insert(key.to_owned(), i.clone());
                i
            }
        };
        if index.stream() != stream {
            return Err(inconsistent(format!(
                "segment belongs to stream `{}`",
                index.stream()
            )));
        }
        for meta in index.blocks() {
            if meta.last_seq < entry.first_seq || meta.first_seq > entry.last_seq {
                continue;
            }
            let bytes = ctx.bucket.get_range(&path, meta.range()).await?;
            let block = decode_block(meta, bytes).map_err(decode_err)?;
            for pos in 0..block.len() {
                let Some((seq, record)) = block.record_ref_at(pos) else {
                    return Err(inconsistent(format!("block position {pos} unreadable")));
                };
                if live(seq) {
                    builder.push(seq, &record).map_err(build_err)?;
                }
            }
        }
        return Ok(());
    }
    let footer = match tocs.batches.get(key) {
        Some(f) => f.clone(),
        None => {
            let f = Arc::new(read_toc(ctx, key, &path, BatchFooter::decode_from_tail).await?);
            tocs.batches.insert(key.to_owned(), f.clone());
            f
        }
    };
    let meta = footer
        .chunk_at(entry.chunk_index)
        .ok_or_else(|| inconsistent(format!("no chunk {} in the footer", entry.chunk_index)))?;
    if meta.stream != stream {
        return Err(inconsistent(format!(
            "chunk {} belongs to stream `{}`",
            entry.chunk_index, meta.stream
        )));
    }
    let bytes = ctx.bucket.get_range(&path, meta.range()).await?;
    let chunk = decode_chunk(meta, bytes).map_err(decode_err)?;
    for (i, seq) in (entry.first_seq..=entry.last_seq).enumerate() {
        if !live(seq) {
            continue;
        }
        let position = *entry
            .positions
            .get(i)
            .ok_or_else(|| inconsistent(format!("no chunk position for seq {seq}")))?;
        let record = chunk
            .get_ref(position as usize)
            .ok_or_else(|| inconsistent(format!("position {position} past the chunk")))?;
        builder.push(seq, &record).map_err(build_err)?;
    }
    Ok(())
}

/// The message at `seq` of `stream` (subject, headers, payload), `None` when it is
/// not live. One `ReadIndex`, one tail GET for the object's footer or segment index,
/// one ranged GET for the chunk or block.
pub(crate) async fn read_record(
    ctx: &Ctx,
    stream: &str,
    seq: u64,
) -> Result<Option<infinistream_segment::Record>, JobsError> {
    let resp = ctx
        .cp
        .read_index(v1::ReadIndexRequest {
            stream: stream.to_owned(),
            start_seq: seq,
            end_seq: seq,
            limit: 1,
        })
        .await?;
    let Some(entry) = resp
        .entries
        .into_iter()
        .find(|e| e.first_seq <= seq && seq <= e.last_seq)
    else {
        return Ok(None);
    };
    if entry.deleted.contains(&seq) || entry.object_key.is_empty() {
        return Ok(None);
    }
    let key = entry.object_key.as_str();
    let path = parse_path(key)?;
    let inconsistent = |reason: String| JobsError::Inconsistent {
        key: key.to_owned(),
        reason,
    };
    let decode_err = |source| JobsError::Decode {
        key: key.to_owned(),
        source,
    };
    if entry.segment {
        let index = read_toc(ctx, key, &path, SegmentIndex::decode_from_tail).await?;
        for meta in index.blocks() {
            if meta.last_seq < seq || meta.first_seq > seq {
                continue;
            }
            let bytes = ctx.bucket.get_range(&path, meta.range()).await?;
            let block = decode_block(meta, bytes).map_err(decode_err)?;
            for pos in 0..block.len() {
                if let Some((s, record)) = block.record_ref_at(pos)
                    && s == seq
                {
                    return Ok(Some(owned(&record)));
                }
            }
        }
        return Err(inconsistent(format!("seq {seq} not in the segment")));
    }
    let footer = read_toc(ctx, key, &path, BatchFooter::decode_from_tail).await?;
    let meta = footer
        .chunk_at(entry.chunk_index)
        .ok_or_else(|| inconsistent(format!("no chunk {} in the footer", entry.chunk_index)))?;
    let bytes = ctx.bucket.get_range(&path, meta.range()).await?;
    let chunk = decode_chunk(meta, bytes).map_err(decode_err)?;
    let i = usize::try_from(seq - entry.first_seq).unwrap_or(usize::MAX);
    let position = *entry
        .positions
        .get(i)
        .ok_or_else(|| inconsistent(format!("no chunk position for seq {seq}")))?;
    let record = chunk
        .get_ref(position as usize)
        .ok_or_else(|| inconsistent(format!("position {position} past the chunk")))?;
    Ok(Some(owned(&record)))
}

fn owned(r: &infinistream_segment::RecordRef<'_>) -> infinistream_segment::Record {
    infinistream_segment::Record {
        subject: Bytes::copy_from_slice(r.subject),
        headers: Bytes::copy_from_slice(r.headers),
        payload: Bytes::copy_from_slice(r.payload),
        timestamp: r.timestamp,
        msg_id: r.msg_id.map(Bytes::copy_from_slice),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(first: u64, segment: bool, size: u64) -> v1::IndexEntry {
        v1::IndexEntry {
            object_key: format!("g/batches/{first}"),
            first_seq: first,
            last_seq: first,
            chunk_byte_size: size,
            segment,
            ..Default::default()
        }
    }

    #[test]
    fn too_few_entries_plan_nothing() {
        let entries: Vec<_> = (1..=3).map(|i| e(i, false, 10)).collect();
        assert_eq!(plan_run(&entries, 4, 1000), None);
        assert_eq!(plan_run(&entries, 3, 1000), Some(0..3));
    }

    #[test]
    fn large_segments_split_runs() {
        let mut entries: Vec<_> = (1..=3).map(|i| e(i, false, 10)).collect();
        entries.push(e(4, true, 900));
        entries.extend((5..=9).map(|i| e(i, false, 10)));
        // The first run has 3 entries (< 4); the big segment breaks it; the second has 5.
        assert_eq!(plan_run(&entries, 4, 1000), Some(4..9));
    }

    #[test]
    fn small_segments_merge_with_neighbours() {
        let mut entries = vec![e(1, true, 100)];
        entries.extend((2..=4).map(|i| e(i, false, 10)));
        assert_eq!(plan_run(&entries, 4, 1000), Some(0..4));
    }

    #[test]
    fn runs_stop_at_the_target_size() {
        let entries: Vec<_> = (1..=10).map(|i| e(i, false, 300)).collect();
        // 3 × 300 fit in 1000, a 4th would not.
        assert_eq!(plan_run(&entries, 3, 1000), Some(0..3));
        assert_eq!(plan_run(&entries, 4, 1000), None);
    }

    #[test]
    fn a_single_entry_never_is_a_run() {
        let entries = vec![e(1, false, 10)];
        assert_eq!(plan_run(&entries, 1, 1000), None);
    }
}
