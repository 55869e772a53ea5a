//! Compacted segments: one stream's records with absolute sequences, plus the indexes
//! that make stream reads cheap once the stream is older than a few batch windows.
//!
//! The jobs role rewrites a stream's chunks from many batch objects into segments so a
//! reader no longer touches one object per flush. A segment is
//! `block 0 | block 1 | ... | index | trailer`: blocks hold records in increasing
//! sequence order (gaps allowed where messages were deleted), each compressed and CRC'd
//! like a batch chunk; the index lists every block's byte range, sequence range and
//! timestamp range (the sparse sequence index and the time index) and a table of
//! subject → last sequence (for `last_per_subject`, KV and direct get). A reader does a
//! ranged GET of the tail ([`SegmentIndex::decode_from_tail`]), answers subject lookups
//! from the index alone, and fetches one block for a get by sequence or by time.
//!
//! [`SegmentBuilder`] streams: records go into the current block as they arrive, full
//! blocks are sealed at once and can be taken ([`SegmentBuilder::take_sealed`]) for a
//! multipart upload, so memory is one block plus the index (one entry per block and
//! one per distinct subject).

use std::collections::HashMap;
use std::ops::Range;

use bytes::{BufMut, Bytes, BytesMut};

use crate::batch::BuildOptions;
use crate::codec::{
    self, Compression, Compressor, Cursor, FastHash, Located, MAX_RAW_LEN, TRAILER_LEN, TailRead,
};
use crate::error::{BuildError, DecodeError, Part};
use crate::record::{RecordRef, SeqRecord};

/// Trailer magic of compacted segments.
pub const SEGMENT_MAGIC: [u8; 7] = *b"ISSEGMT";
/// The segment format version this crate writes and reads.
pub const SEGMENT_VERSION: u8 = 1;

/// Encoded size of one block entry in the index.
const BLOCK_ENTRY_LEN: usize = 8 + 4 + 4 + 8 + 8 + 4 + 8 + 8 + 1 + 4;
/// Smallest encoded subject entry: 1-byte varint + empty subject + u64.
const MIN_SUBJECT_ENTRY_LEN: usize = 1 + 8;
/// Smallest encoded block record: seq + timestamp + four 1-byte varints.
const MIN_BLOCK_RECORD_LEN: usize = 8 + 8 + 4;

/// Options of a [`SegmentBuilder`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentOptions {
    /// Compression of blocks (same rules as batch chunks).
    pub build: BuildOptions,
    /// A block is sealed once its raw size reaches this many bytes. Smaller blocks
    /// mean smaller reads per random get; larger ones compress better.
    pub block_size: usize,
}

impl Default for SegmentOptions {
    fn default() -> Self {
        SegmentOptions {
            build: BuildOptions::default(),
            block_size: 64 * 1024,
        }
    }
}

/// One block's entry in the segment index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockMeta {
    /// Byte offset of the block in the object.
    pub offset: u64,
    /// Stored (possibly compressed) length: the ranged GET length.
    pub stored_len: u32,
    /// Length after decompression.
    pub raw_len: u32,
    /// Sequence of the first record.
    pub first_seq: u64,
    /// Sequence of the last record.
    pub last_seq: u64,
    /// Number of records (≤ `last_seq - first_seq + 1`: gaps are deleted messages).
    pub record_count: u32,
    /// Smallest record timestamp (unix ns).
    pub min_timestamp: i64,
    /// Largest record timestamp (unix ns).
    pub max_timestamp: i64,
    /// Codec of the stored bytes.
    pub compression: Compression,
    /// CRC32C of the stored bytes.
    pub crc32c: u32,
}

impl BlockMeta {
    /// The byte range to GET for this block.
    pub fn range(&self) -> Range<u64> {
        self.offset..self.offset.saturating_add(u64::from(self.stored_len))
    }
}

/// Streams records of one stream into a compacted segment.
#[derive(Debug)]
pub struct SegmentBuilder {
    stream: String,
    block_size: usize,
    compressor: Compressor,
    block: BytesMut,
    block_first: u64,
    block_count: u32,
    block_min: i64,
    block_max: i64,
    sealed: BytesMut,
    taken: u64,
    blocks: Vec<BlockMeta>,
    subjects: HashMap<Box<[u8]>, u64, FastHash>,
    last_seq: Option<u64>,
    records: u64,
}

/// The end of a finished segment and its index.
#[derive(Debug, Clone)]
pub struct FinishedSegment {
    /// The bytes not yet handed out by [`SegmentBuilder::take_sealed`]: the whole
    /// object if it was never called, otherwise the last part of it.
    pub tail: Bytes,
    /// Total object length (taken bytes + `tail`).
    pub object_len: u64,
    /// The segment's index, as a reader would decode it.
    pub index: SegmentIndex,
}

impl SegmentBuilder {
    /// A builder for a segment of `stream`.
    pub fn new(stream: &str, options: SegmentOptions) -> Result<Self, BuildError> {
        codec::check_stream_name(stream)?;
        let block_size = options.block_size.clamp(1, MAX_RAW_LEN);
        Ok(SegmentBuilder {
            stream: stream.to_owned(),
            block_size,
            compressor: Compressor::new(options.build.compression, options.build.zstd_level),
            block: BytesMut::with_capacity(block_size.min(1 << 20) + 1024),
            block_first: 0,
            block_count: 0,
            block_min: i64::MAX,
            block_max: i64::MIN,
            sealed: BytesMut::new(),
            taken: 0,
            blocks: Vec::new(),
            subjects: HashMap::default(),
            last_seq: None,
            records: 0,
        })
    }

    /// Appends the record with sequence `seq`; sequences must strictly increase.
    pub fn push(&mut self, seq: u64, record: &RecordRef<'_>) -> Result<(), BuildError> {
        if let Some(prev) = self.last_seq
            && seq <= prev
        {
            return Err(BuildError::SeqNotIncreasing { prev, seq });
        }
        let len = 8 + codec::record_len(record);
        if len > MAX_RAW_LEN {
            return Err(BuildError::TooLarge {
                part: Part::Block,
                max: MAX_RAW_LEN,
                len,
            });
        }
        if self.block.len() + len > MAX_RAW_LEN || self.block_count == u32::MAX {
            self.seal()?;
        }
        if self.block_count == 0 {
            self.block_first = seq;
            self.block_min = i64::MAX;
            self.block_max = i64::MIN;
        }
        self.block.put_u64_le(seq);
        codec::put_record(&mut self.block, record);
        self.block_count += 1;
        self.block_min = self.block_min.min(record.timestamp);
        self.block_max = self.block_max.max(record.timestamp);
        match self.subjects.get_mut(record.subject) {
            Some(last) => *last = seq,
            None => {
                self.subjects.insert(record.subject.into(), seq);
            }
        }
        self.last_seq = Some(seq);
        self.records += 1;
        if self.block.len() >= self.block_size {
            self.seal()?;
        }
        Ok(())
    }

    fn seal(&mut self) -> Result<(), BuildError> {
        if self.block_count == 0 {
            return Ok(());
        }
        let start = self.sealed.len();
        let (compression, stored_len) = self.compressor.seal(&self.block, &mut self.sealed)?;
        let crc = codec::crc32c(self.sealed.get(start..).unwrap_or_default());
        self.blocks.push(BlockMeta {
            offset: self.taken + start as u64,
            stored_len: stored_len as u32,
            raw_len: self.block.len() as u32,
            first_seq: self.block_first,
            last_seq: self.last_seq.unwrap_or(self.block_first),
            record_count: self.block_count,
            min_timestamp: self.block_min,
            max_timestamp: self.block_max,
            compression,
            crc32c: crc,
        });
        self.block.clear();
        self.block_count = 0;
        Ok(())
    }

    /// Hands out the blocks sealed so far (the next bytes of the object, in order), so
    /// a caller can upload parts while building and keep memory at one block.
    pub fn take_sealed(&mut self) -> Bytes {
        self.taken += self.sealed.len() as u64;
        self.sealed.split().freeze()
    }

    /// Records pushed so far.
    pub fn record_count(&self) -> u64 {
        self.records
    }

    /// Bytes of the object produced so far (sealed blocks, taken or not).
    pub fn sealed_len(&self) -> u64 {
        self.taken + self.sealed.len() as u64
    }

    /// Seals the last block and appends the index and trailer.
    pub fn finish(mut self) -> Result<FinishedSegment, BuildError> {
        self.seal()?;
        let mut subjects: Vec<(Box<[u8]>, u64)> = self.subjects.into_iter().collect();
        subjects.sort_unstable_by(|a, b| a.0.cmp(&b.0));

        let mut index = BytesMut::new();
        index.put_u16_le(self.stream.len() as u16);
        index.extend_from_slice(self.stream.as_bytes());
        index.put_u64_le(self.records);
        index.put_u32_le(self.blocks.len() as u32);
        for b in &self.blocks {
            index.put_u64_le(b.offset);
            index.put_u32_le(b.stored_len);
            index.put_u32_le(b.raw_len);
            index.put_u64_le(b.first_seq);
            index.put_u64_le(b.last_seq);
            index.put_u32_le(b.record_count);
            index.put_i64_le(b.min_timestamp);
            index.put_i64_le(b.max_timestamp);
            index.put_u8(b.compression.as_u8());
            index.put_u32_le(b.crc32c);
        }
        index.put_u32_le(subjects.len() as u32);
        let table_start = index.len();
        let mut entries = Vec::with_capacity(subjects.len());
        for (subject, seq) in &subjects {
            codec::put_varint(&mut index, subject.len() as u64);
            let start = (index.len() - table_start) as u32;
            index.extend_from_slice(subject);
            entries.push(SubjectEntry {
                start,
                end: start + subject.len() as u32,
                last_seq: *seq,
            });
            index.put_u64_le(*seq);
        }
        let subject_table = Bytes::copy_from_slice(index.get(table_start..).unwrap_or_default());

        let mut tail = self.sealed;
        tail.reserve(index.len() + TRAILER_LEN);
        tail.extend_from_slice(&index);
        codec::put_trailer(&mut tail, &index, &SEGMENT_MAGIC, SEGMENT_VERSION);
        let object_len = self.taken + tail.len() as u64;
        let max_ts_prefix = prefix_max(&self.blocks);
        Ok(FinishedSegment {
            tail: tail.freeze(),
            object_len,
            index: SegmentIndex {
                stream: self.stream,
                record_count: self.records,
                blocks: self.blocks,
                max_ts_prefix,
                subject_table,
                subjects: entries,
                object_len,
            },
        })
    }
}

fn prefix_max(blocks: &[BlockMeta]) -> Vec<i64> {
    let mut max = i64::MIN;
    blocks
        .iter()
        .map(|b| {
            max = max.max(b.max_timestamp);
            max
        })
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct SubjectEntry {
    start: u32,
    end: u32,
    last_seq: u64,
}

/// The decoded index of a compacted segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentIndex {
    stream: String,
    record_count: u64,
    blocks: Vec<BlockMeta>,
    /// Running maximum of block max timestamps: monotone even when timestamps are not,
    /// so "first block holding a timestamp ≥ t" is a binary search.
    max_ts_prefix: Vec<i64>,
    subject_table: Bytes,
    subjects: Vec<SubjectEntry>,
    object_len: u64,
}

fn corrupt(reason: &'static str) -> DecodeError {
    DecodeError::Corrupt {
        part: Part::Index,
        reason,
    }
}

impl SegmentIndex {
    /// Decodes the index from the last `tail.len()` bytes of an object of `object_len`
    /// bytes. Returns [`TailRead::NeedTail`] when the index is longer than the tail.
    pub fn decode_from_tail(
        tail: &[u8],
        object_len: u64,
    ) -> Result<TailRead<SegmentIndex>, DecodeError> {
        let located = match codec::locate_index(
            tail,
            object_len,
            &SEGMENT_MAGIC,
            SEGMENT_VERSION,
            "segment",
            Part::Index,
        )? {
            TailRead::NeedTail(n) => return Ok(TailRead::NeedTail(n)),
            TailRead::Complete(l) => l,
        };
        decode_index(&located, object_len).map(TailRead::Complete)
    }

    /// Decodes the index of a whole segment held in memory.
    pub fn decode(object: &[u8]) -> Result<SegmentIndex, DecodeError> {
        match Self::decode_from_tail(object, object.len() as u64)? {
            TailRead::Complete(i) => Ok(i),
            TailRead::NeedTail(_) => Err(DecodeError::Truncated {
                part: Part::Index,
                at: object.len(),
            }),
        }
    }

    /// The stream this segment belongs to.
    pub fn stream(&self) -> &str {
        &self.stream
    }

    /// Number of records.
    pub fn record_count(&self) -> u64 {
        self.record_count
    }

    /// Sequence of the first record, `None` for an empty segment.
    pub fn first_seq(&self) -> Option<u64> {
        self.blocks.first().map(|b| b.first_seq)
    }

    /// Sequence of the last record, `None` for an empty segment.
    pub fn last_seq(&self) -> Option<u64> {
        self.blocks.last().map(|b| b.last_seq)
    }

    /// Length of the whole object.
    pub fn object_len(&self) -> u64 {
        self.object_len
    }

    /// All blocks in sequence order.
    pub fn blocks(&self) -> &[BlockMeta] {
        &self.blocks
    }

    /// The block whose sequence range contains `seq` (the record may still be absent
    /// if it was deleted before compaction). O(log blocks).
    pub fn block_for_seq(&self, seq: u64) -> Option<&BlockMeta> {
        self.block_at_or_after_seq(seq)
            .map(|(_, b)| b)
            .filter(|b| b.first_seq <= seq)
    }

    /// The first block holding a sequence ≥ `seq`, with its position.
    pub fn block_at_or_after_seq(&self, seq: u64) -> Option<(usize, &BlockMeta)> {
        let i = self.blocks.partition_point(|b| b.last_seq < seq);
        self.blocks.get(i).map(|b| (i, b))
    }

    /// The block holding the first record (by sequence) whose timestamp is ≥ `t`;
    /// `None` if every record is older. O(log blocks).
    pub fn block_for_time(&self, t: i64) -> Option<(usize, &BlockMeta)> {
        let i = self.max_ts_prefix.partition_point(|&m| m < t);
        self.blocks.get(i).map(|b| (i, b))
    }

    /// The last sequence stored for `subject`, from the index alone. O(log subjects).
    pub fn last_seq_for_subject(&self, subject: &[u8]) -> Option<u64> {
        let i = self
            .subjects
            .binary_search_by(|e| self.entry_subject(e).cmp(subject))
            .ok()?;
        self.subjects.get(i).map(|e| e.last_seq)
    }

    /// Every subject with its last sequence, sorted by subject bytes.
    pub fn subjects(&self) -> impl Iterator<Item = (Bytes, u64)> + '_ {
        self.subjects.iter().map(|e| {
            (
                self.subject_table.slice(e.start as usize..e.end as usize),
                e.last_seq,
            )
        })
    }

    /// Number of distinct subjects.
    pub fn subject_count(&self) -> usize {
        self.subjects.len()
    }

    fn entry_subject(&self, e: &SubjectEntry) -> &[u8] {
        self.subject_table
            .get(e.start as usize..e.end as usize)
            .unwrap_or_default()
    }
}

fn decode_index(located: &Located<'_>, object_len: u64) -> Result<SegmentIndex, DecodeError> {
    let mut c = Cursor::new(located.index, Part::Index);
    let name_len = usize::from(c.u16()?);
    let stream = std::str::from_utf8(c.bytes(name_len)?)
        .map_err(|_| corrupt("stream name is not utf-8"))?
        .to_owned();
    if stream.is_empty() {
        return Err(corrupt("empty stream name"));
    }
    let record_count = c.u64()?;
    let block_count = c.u32()? as usize;
    if block_count > c.remaining() / BLOCK_ENTRY_LEN {
        return Err(corrupt("block count exceeds index size"));
    }
    let mut blocks: Vec<BlockMeta> = Vec::with_capacity(block_count);
    let mut expected_offset = 0u64;
    let mut total = 0u64;
    for _ in 0..block_count {
        let b = BlockMeta {
            offset: c.u64()?,
            stored_len: c.u32()?,
            raw_len: c.u32()?,
            first_seq: c.u64()?,
            last_seq: c.u64()?,
            record_count: c.u32()?,
            min_timestamp: c.i64()?,
            max_timestamp: c.i64()?,
            compression: Compression::from_u8(c.u8()?)?,
            crc32c: c.u32()?,
        };
        if b.offset != expected_offset {
            return Err(corrupt("blocks not contiguous"));
        }
        if b.record_count == 0 {
            return Err(corrupt("block with no records"));
        }
        if b.first_seq > b.last_seq || b.last_seq - b.first_seq < u64::from(b.record_count) - 1 {
            return Err(corrupt(
                "block sequence range smaller than its record count",
            ));
        }
        if let Some(prev) = blocks.last()
            && prev.last_seq >= b.first_seq
        {
            return Err(corrupt("block sequences not increasing"));
        }
        if b.min_timestamp > b.max_timestamp {
            return Err(corrupt("min timestamp after max timestamp"));
        }
        if b.raw_len as usize > MAX_RAW_LEN {
            return Err(corrupt("raw length above the format limit"));
        }
        if b.compression == Compression::None && b.stored_len != b.raw_len {
            return Err(corrupt(
                "uncompressed block with stored length != raw length",
            ));
        }
        expected_offset += u64::from(b.stored_len);
        total += u64::from(b.record_count);
        blocks.push(b);
    }
    if expected_offset != located.index_start {
        return Err(corrupt("blocks do not end where the index starts"));
    }
    if total != record_count {
        return Err(corrupt("record count differs from the sum of blocks"));
    }
    let subject_count = c.u32()? as usize;
    let table = c.bytes(c.remaining())?;
    if subject_count > table.len() / MIN_SUBJECT_ENTRY_LEN {
        return Err(corrupt("subject count exceeds index size"));
    }
    let (first, last) = match (blocks.first(), blocks.last()) {
        (Some(f), Some(l)) => (f.first_seq, l.last_seq),
        _ => (1, 0),
    };
    let mut t = Cursor::new(table, Part::Index);
    let mut subjects: Vec<SubjectEntry> = Vec::with_capacity(subject_count);
    for _ in 0..subject_count {
        let len = t.len_varint()?;
        let start = t.pos();
        let subject = t.bytes(len)?;
        let last_seq = t.u64()?;
        if let Some(prev) = subjects.last()
            && table
                .get(prev.start as usize..prev.end as usize)
                .is_none_or(|p| p >= subject)
        {
            return Err(corrupt("subjects not strictly sorted"));
        }
        if last_seq < first || last_seq > last {
            return Err(corrupt("subject sequence outside the segment"));
        }
        subjects.push(SubjectEntry {
            start: start as u32,
            end: (start + len) as u32,
            last_seq,
        });
    }
    if !t.is_empty() {
        return Err(corrupt("trailing bytes after the subject table"));
    }
    let max_ts_prefix = prefix_max(&blocks);
    Ok(SegmentIndex {
        stream,
        record_count,
        blocks,
        max_ts_prefix,
        subject_table: Bytes::copy_from_slice(table),
        subjects,
        object_len,
    })
}

/// Verifies and decodes one block from exactly the bytes of [`BlockMeta::range`].
///
/// The CRC is checked over the stored bytes first; every record is then validated once
/// (lengths, strictly increasing sequences matching the index, count, timestamp
/// bounds), so reads from the [`Block`] cannot fail afterwards.
pub fn decode_block(meta: &BlockMeta, stored: Bytes) -> Result<Block, DecodeError> {
    if stored.len() as u64 != u64::from(meta.stored_len) {
        return Err(DecodeError::LengthMismatch {
            part: Part::Block,
            expected: u64::from(meta.stored_len),
            got: stored.len() as u64,
        });
    }
    let data = codec::open_region(
        Part::Block,
        meta.compression,
        meta.crc32c,
        meta.raw_len as usize,
        stored,
    )?;
    let bad = |reason| DecodeError::Corrupt {
        part: Part::Block,
        reason,
    };
    let count = meta.record_count as usize;
    if count > data.len() / MIN_BLOCK_RECORD_LEN {
        return Err(bad("record count exceeds block size"));
    }
    let mut offsets = Vec::with_capacity(count);
    let mut seqs: Vec<u64> = Vec::with_capacity(count);
    let mut timestamps = Vec::with_capacity(count);
    let mut c = Cursor::new(&data, Part::Record);
    while !c.is_empty() {
        let start = c.pos();
        let seq = c.u64()?;
        if seqs.last().is_some_and(|&prev| prev >= seq) {
            return Err(bad("record sequences not increasing"));
        }
        let span = codec::scan_record(&mut c)?;
        offsets.push(start as u32);
        seqs.push(seq);
        timestamps.push(span.timestamp);
    }
    if seqs.len() != count
        || seqs.first() != Some(&meta.first_seq)
        || seqs.last() != Some(&meta.last_seq)
    {
        return Err(bad("records differ from the index entry"));
    }
    let min = timestamps.iter().copied().min();
    let max = timestamps.iter().copied().max();
    if min != Some(meta.min_timestamp) || max != Some(meta.max_timestamp) {
        return Err(bad("timestamps differ from the index entry"));
    }
    Ok(Block {
        data,
        offsets,
        seqs,
        timestamps,
    })
}

/// A verified block: records in increasing sequence order, with per-record offset,
/// sequence and timestamp tables built while validating.
#[derive(Debug, Clone)]
pub struct Block {
    data: Bytes,
    offsets: Vec<u32>,
    seqs: Vec<u64>,
    timestamps: Vec<i64>,
}

impl Block {
    /// Number of records.
    pub fn len(&self) -> usize {
        self.seqs.len()
    }

    /// True when the block has no records (never for a decoded block).
    pub fn is_empty(&self) -> bool {
        self.seqs.is_empty()
    }

    /// Sequences of the records, increasing.
    pub fn seqs(&self) -> &[u64] {
        &self.seqs
    }

    /// The record at `position` in the block.
    pub fn record_at(&self, position: usize) -> Option<SeqRecord> {
        let start = *self.offsets.get(position)? as usize;
        let seq = *self.seqs.get(position)?;
        let mut c = Cursor::at(&self.data, start.checked_add(8)?, Part::Record);
        let span = codec::scan_record(&mut c).ok()?;
        Some(SeqRecord {
            seq,
            record: span.to_record(&self.data),
        })
    }

    /// The record at `position` with its sequence, borrowed from the block.
    pub fn record_ref_at(&self, position: usize) -> Option<(u64, RecordRef<'_>)> {
        let start = *self.offsets.get(position)? as usize;
        let seq = *self.seqs.get(position)?;
        let mut c = Cursor::at(&self.data, start.checked_add(8)?, Part::Record);
        Some((seq, codec::scan_record(&mut c).ok()?.to_ref(&self.data)?))
    }

    /// The record with sequence `seq`, `None` if absent (deleted or another block).
    pub fn get(&self, seq: u64) -> Option<SeqRecord> {
        let i = self.seqs.binary_search(&seq).ok()?;
        self.record_at(i)
    }

    /// The first sequence whose record timestamp is ≥ `t`.
    pub fn first_seq_at_or_after_time(&self, t: i64) -> Option<u64> {
        let i = self.timestamps.iter().position(|&ts| ts >= t)?;
        self.seqs.get(i).copied()
    }

    /// Records with sequence ≥ `seq`, in order.
    pub fn iter_from(&self, seq: u64) -> BlockIter<'_> {
        BlockIter {
            block: self,
            next: self.seqs.partition_point(|&s| s < seq),
        }
    }
}

/// Iterator over a block's records.
#[derive(Debug, Clone)]
pub struct BlockIter<'a> {
    block: &'a Block,
    next: usize,
}

impl Iterator for BlockIter<'_> {
    type Item = SeqRecord;

    fn next(&mut self) -> Option<SeqRecord> {
        let r = self.block.record_at(self.next)?;
        self.next += 1;
        Some(r)
    }
}

/// A whole segment held in memory: the index plus block decoding on demand.
///
/// Readers that fetch by range use [`SegmentIndex`] and [`decode_block`] directly;
/// this type is for objects already in memory (tests, compaction of segments, caches).
#[derive(Debug, Clone)]
pub struct Segment {
    object: Bytes,
    index: SegmentIndex,
}

impl Segment {
    /// Decodes the index of a whole segment object.
    pub fn open(object: Bytes) -> Result<Self, DecodeError> {
        let index = SegmentIndex::decode(&object)?;
        Ok(Segment { object, index })
    }

    /// The decoded index.
    pub fn index(&self) -> &SegmentIndex {
        &self.index
    }

    /// Decodes one block of this segment.
    pub fn block(&self, meta: &BlockMeta) -> Result<Block, DecodeError> {
        let start = usize::try_from(meta.offset).map_err(|_| corrupt("block offset overflows"))?;
        let end = start
            .checked_add(meta.stored_len as usize)
            .filter(|&e| e <= self.object.len())
            .ok_or(corrupt("block range outside the object"))?;
        decode_block(meta, self.object.slice(start..end))
    }

    /// The record with sequence `seq`, `None` if not in this segment.
    pub fn get(&self, seq: u64) -> Result<Option<SeqRecord>, DecodeError> {
        match self.index.block_for_seq(seq) {
            None => Ok(None),
            Some(meta) => Ok(self.block(meta)?.get(seq)),
        }
    }

    /// The first sequence whose timestamp is ≥ `t` (for `by_start_time`).
    pub fn first_seq_at_or_after_time(&self, t: i64) -> Result<Option<u64>, DecodeError> {
        match self.index.block_for_time(t) {
            None => Ok(None),
            Some((_, meta)) => Ok(self.block(meta)?.first_seq_at_or_after_time(t)),
        }
    }

    /// The last sequence stored for `subject`.
    pub fn last_seq_for_subject(&self, subject: &[u8]) -> Option<u64> {
        self.index.last_seq_for_subject(subject)
    }

    /// Records with sequence ≥ `seq`, decoding one block at a time. Yields one error
    /// and stops if a block is damaged.
    pub fn iter_from(&self, seq: u64) -> SegmentIter<'_> {
        let next_block = self
            .index
            .block_at_or_after_seq(seq)
            .map_or(self.index.blocks.len(), |(i, _)| i);
        SegmentIter {
            segment: self,
            next_block,
            from: seq,
            current: None,
            done: false,
        }
    }
}

/// Iterator over a segment's records from a sequence on.
#[derive(Debug)]
pub struct SegmentIter<'a> {
    segment: &'a Segment,
    next_block: usize,
    from: u64,
    current: Option<(Block, usize)>,
    done: bool,
}

impl Iterator for SegmentIter<'_> {
    type Item = Result<SeqRecord, DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.done {
                return None;
            }
            if let Some((block, pos)) = &mut self.current {
                if let Some(r) = block.record_at(*pos) {
                    *pos += 1;
                    return Some(Ok(r));
                }
                self.current = None;
            }
            let Some(meta) = self.segment.index.blocks.get(self.next_block) else {
                self.done = true;
                return None;
            };
            self.next_block += 1;
            match self.segment.block(meta) {
                Ok(block) => {
                    let pos = block.seqs.partition_point(|&s| s < self.from);
                    self.current = Some((block, pos));
                }
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(subject: &[u8], ts: i64) -> RecordRef<'_> {
        RecordRef {
            subject,
            headers: b"",
            payload: b"payload",
            timestamp: ts,
            msg_id: None,
        }
    }

    fn build(block_size: usize, items: &[(u64, &[u8], i64)]) -> Segment {
        let mut b = SegmentBuilder::new(
            "KV_cfg",
            SegmentOptions {
                block_size,
                ..SegmentOptions::default()
            },
        )
        .expect("builder");
        for &(seq, subject, ts) in items {
            b.push(seq, &rec(subject, ts)).expect("push");
        }
        let done = b.finish().expect("finish");
        let seg = Segment::open(done.tail.clone()).expect("open");
        assert_eq!(seg.index(), &done.index);
        seg
    }

    #[test]
    fn lookups_with_gaps_and_skewed_clocks() {
        let seg = build(
            64,
            &[
                (5, b"a", 100),
                (6, b"b", 90),
                (9, b"a", 200),
                (12, b"c", 150),
                (20, b"b", 300),
            ],
        );
        assert!(seg.index().blocks().len() > 1);
        assert_eq!(seg.index().first_seq(), Some(5));
        assert_eq!(seg.index().last_seq(), Some(20));
        assert_eq!(
            seg.get(9).expect("get").map(|r| r.record.timestamp),
            Some(200)
        );
        assert_eq!(seg.get(7).expect("get"), None);
        assert_eq!(seg.get(1).expect("get"), None);
        assert_eq!(seg.get(21).expect("get"), None);
        assert_eq!(seg.last_seq_for_subject(b"a"), Some(9));
        assert_eq!(seg.last_seq_for_subject(b"b"), Some(20));
        assert_eq!(seg.last_seq_for_subject(b"z"), None);
        assert_eq!(seg.first_seq_at_or_after_time(95).expect("t"), Some(5));
        assert_eq!(seg.first_seq_at_or_after_time(160).expect("t"), Some(9));
        assert_eq!(seg.first_seq_at_or_after_time(250).expect("t"), Some(20));
        assert_eq!(seg.first_seq_at_or_after_time(301).expect("t"), None);
        let from_8: Vec<u64> = seg.iter_from(8).map(|r| r.expect("rec").seq).collect();
        assert_eq!(from_8, vec![9, 12, 20]);
    }

    #[test]
    fn rejects_non_increasing_sequences() {
        let mut b = SegmentBuilder::new("S", SegmentOptions::default()).expect("builder");
        b.push(3, &rec(b"x", 0)).expect("push");
        assert_eq!(
            b.push(3, &rec(b"x", 0)),
            Err(BuildError::SeqNotIncreasing { prev: 3, seq: 3 })
        );
    }

    #[test]
    fn take_sealed_streams_the_object() {
        let mut b = SegmentBuilder::new(
            "S",
            SegmentOptions {
                block_size: 100,
                ..SegmentOptions::default()
            },
        )
        .expect("builder");
        let mut parts = BytesMut::new();
        for seq in 1..=200u64 {
            b.push(seq, &rec(format!("s.{}", seq % 7).as_bytes(), seq as i64))
                .expect("push");
            parts.extend_from_slice(&b.take_sealed());
        }
        let done = b.finish().expect("finish");
        parts.extend_from_slice(&done.tail);
        assert_eq!(parts.len() as u64, done.object_len);
        let seg = Segment::open(parts.freeze()).expect("open");
        assert_eq!(seg.iter_from(0).count(), 200);
        assert_eq!(seg.index().subject_count(), 7);
        assert_eq!(seg.last_seq_for_subject(b"s.3"), Some(199));
    }

    #[test]
    fn empty_segment_is_valid() {
        let seg = build(64, &[]);
        assert_eq!(seg.index().first_seq(), None);
        assert_eq!(seg.get(1).expect("get"), None);
        assert_eq!(seg.iter_from(0).count(), 0);
    }
}
