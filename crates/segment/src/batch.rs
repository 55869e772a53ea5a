//! Batch objects: what one agent flush writes.
//!
//! An agent batches publishes from every stream it serves for one window (or 4 MiB) and
//! writes them as *one* object, so the bucket sees one PUT per window however many
//! streams are busy. Inside, each stream's records form one chunk (publish order kept),
//! chunks are sorted by stream name, and a footer at the end lists them. A reader does a
//! ranged GET of the tail ([`BatchFooter::decode_from_tail`]), binary-searches the footer
//! for its stream ([`BatchFooter::chunk`]) and does one ranged GET of that chunk
//! ([`ChunkMeta::range`], [`decode_chunk`]). Sequences are not stored: the control plane
//! assigns them at commit, and a record is addressed as (object, chunk index, position).
//!
//! Layout: `chunk 0 | chunk 1 | ... | footer | trailer` (see `docs/format.md`).

use std::collections::HashMap;
use std::ops::Range;

use bytes::{BufMut, Bytes, BytesMut};

use crate::codec::{
    self, Compression, Compressor, Cursor, FastHash, Located, MAX_RAW_LEN, TRAILER_LEN, TailRead,
};
use crate::error::{BuildError, DecodeError, Part};
use crate::record::{Record, RecordRef};

/// Trailer magic of batch objects.
pub const BATCH_MAGIC: [u8; 7] = *b"ISBATCH";
/// The batch-object format version this crate writes and reads.
pub const BATCH_VERSION: u8 = 1;

/// Fixed part of one footer entry (everything but the stream name bytes).
const ENTRY_FIXED_LEN: usize = 2 + 8 + 4 + 4 + 4 + 8 + 8 + 1 + 4;

/// Chunk buffers kept for reuse across flushes, and the largest one kept.
const MAX_SPARE_BUFFERS: usize = 256;
const MAX_SPARE_CAPACITY: usize = 8 << 20;

/// How a builder compresses the regions it seals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BuildOptions {
    /// Codec tried on every chunk/block; a region is stored raw when it saves < 10 %.
    pub compression: Compression,
    /// zstd level (1..=22) when `compression` is zstd.
    pub zstd_level: i32,
}

impl Default for BuildOptions {
    fn default() -> Self {
        BuildOptions {
            compression: Compression::None,
            zstd_level: 3,
        }
    }
}

#[derive(Debug)]
struct StreamBuf {
    name: String,
    raw: BytesMut,
    count: u32,
    min_ts: i64,
    max_ts: i64,
}

/// Accumulates records from many streams and encodes one batch object.
///
/// Memory is the raw records plus one small entry per stream; callers bound it by
/// flushing when [`BatchBuilder::encoded_len_estimate`] reaches their size cap.
/// [`BatchBuilder::finish`] resets the builder so one builder serves every flush.
#[derive(Debug)]
pub struct BatchBuilder {
    streams: Vec<StreamBuf>,
    by_name: HashMap<String, usize, FastHash>,
    /// Cleared chunk buffers from earlier flushes, reused so steady-state flushes
    /// don't regrow (and page-fault) a buffer per stream.
    spare: Vec<BytesMut>,
    /// Index of the stream pushed last: consecutive pushes to one stream skip hashing.
    last: Option<usize>,
    raw_bytes: usize,
    name_bytes: usize,
    records: u64,
    compressor: Compressor,
}

/// The encoded object and its footer (the manifest the gateway sends at commit).
#[derive(Debug, Clone)]
pub struct FinishedBatch {
    /// The whole object, ready to PUT.
    pub object: Bytes,
    /// Its footer: per stream, chunk index, offsets, record count, timestamps.
    pub footer: BatchFooter,
}

impl BatchBuilder {
    /// A builder sealing chunks with `options`.
    pub fn new(options: BuildOptions) -> Self {
        BatchBuilder {
            streams: Vec::new(),
            by_name: HashMap::default(),
            spare: Vec::new(),
            last: None,
            raw_bytes: 0,
            name_bytes: 0,
            records: 0,
            compressor: Compressor::new(options.compression, options.zstd_level),
        }
    }

    /// Appends a record to `stream`'s chunk and returns its position in that chunk.
    pub fn push(&mut self, stream: &str, record: &RecordRef<'_>) -> Result<u32, BuildError> {
        let idx = match self.last {
            Some(i) if self.streams.get(i).is_some_and(|s| s.name == stream) => i,
            _ => match self.by_name.get(stream) {
                Some(&i) => i,
                None => {
                    codec::check_stream_name(stream)?;
                    let i = self.streams.len();
                    self.streams.push(StreamBuf {
                        name: stream.to_owned(),
                        raw: self.spare.pop().unwrap_or_default(),
                        count: 0,
                        min_ts: i64::MAX,
                        max_ts: i64::MIN,
                    });
                    self.by_name.insert(stream.to_owned(), i);
                    self.name_bytes += stream.len();
                    i
                }
            },
        };
        self.last = Some(idx);
        let Some(s) = self.streams.get_mut(idx) else {
            return Err(BuildError::TooManyRecords(Part::Chunk));
        };
        let len = codec::record_len(record);
        let new_len = s.raw.len().saturating_add(len);
        if new_len > MAX_RAW_LEN {
            return Err(BuildError::TooLarge {
                part: Part::Chunk,
                max: MAX_RAW_LEN,
                len: new_len,
            });
        }
        let pos = s.count;
        s.count = pos
            .checked_add(1)
            .ok_or(BuildError::TooManyRecords(Part::Chunk))?;
        codec::put_record(&mut s.raw, record);
        s.min_ts = s.min_ts.min(record.timestamp);
        s.max_ts = s.max_ts.max(record.timestamp);
        self.raw_bytes += len;
        self.records += 1;
        Ok(pos)
    }

    /// Upper bound of the encoded object size if finished now (compression only
    /// shrinks chunks). Compare it with the flush size cap.
    pub fn encoded_len_estimate(&self) -> usize {
        self.raw_bytes + self.name_bytes + self.streams.len() * ENTRY_FIXED_LEN + 4 + TRAILER_LEN
    }

    /// Records pushed since the last finish.
    pub fn record_count(&self) -> u64 {
        self.records
    }

    /// Streams pushed to since the last finish.
    pub fn stream_count(&self) -> usize {
        self.streams.len()
    }

    /// True when nothing was pushed since the last finish.
    pub fn is_empty(&self) -> bool {
        self.records == 0
    }

    /// Seals every chunk (sorted by stream name), writes the footer and trailer, and
    /// resets the builder. An empty builder yields a valid object with no chunks.
    /// The only possible error is the zstd context failing to allocate; the pushed
    /// records are then dropped with the reset, and the caller fails their publishes.
    pub fn finish(&mut self) -> Result<FinishedBatch, BuildError> {
        let mut streams = std::mem::take(&mut self.streams);
        self.by_name.clear();
        self.last = None;
        self.raw_bytes = 0;
        self.name_bytes = 0;
        self.records = 0;
        streams.sort_unstable_by(|a, b| a.name.cmp(&b.name));

        let data_len: usize = streams.iter().map(|s| s.raw.len()).sum();
        let mut out = BytesMut::with_capacity(data_len + 256 + streams.len() * 64);
        let mut chunks = Vec::with_capacity(streams.len());
        for (index, mut s) in streams.into_iter().enumerate() {
            let offset = out.len();
            let (compression, stored_len) = self.compressor.seal(&s.raw, &mut out)?;
            let crc = codec::crc32c(out.get(offset..).unwrap_or_default());
            chunks.push(ChunkMeta {
                index: index as u32,
                stream: s.name,
                offset: offset as u64,
                stored_len: stored_len as u32,
                raw_len: s.raw.len() as u32,
                record_count: s.count,
                min_timestamp: s.min_ts,
                max_timestamp: s.max_ts,
                compression,
                crc32c: crc,
            });
            if self.spare.len() < MAX_SPARE_BUFFERS && s.raw.capacity() <= MAX_SPARE_CAPACITY {
                s.raw.clear();
                self.spare.push(s.raw);
            }
        }
        let mut footer = BytesMut::with_capacity(4 + chunks.len() * (ENTRY_FIXED_LEN + 16));
        footer.put_u32_le(chunks.len() as u32);
        for c in &chunks {
            footer.put_u16_le(c.stream.len() as u16);
            footer.extend_from_slice(c.stream.as_bytes());
            footer.put_u64_le(c.offset);
            footer.put_u32_le(c.stored_len);
            footer.put_u32_le(c.raw_len);
            footer.put_u32_le(c.record_count);
            footer.put_i64_le(c.min_timestamp);
            footer.put_i64_le(c.max_timestamp);
            footer.put_u8(c.compression.as_u8());
            footer.put_u32_le(c.crc32c);
        }
        out.extend_from_slice(&footer);
        codec::put_trailer(&mut out, &footer, &BATCH_MAGIC, BATCH_VERSION);
        let object = out.freeze();
        let object_len = object.len() as u64;
        Ok(FinishedBatch {
            object,
            footer: BatchFooter { chunks, object_len },
        })
    }
}

/// One chunk's entry in the footer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkMeta {
    /// Position in the footer (and in the object): the chunk's address in the batch.
    pub index: u32,
    /// The stream whose records the chunk holds.
    pub stream: String,
    /// Byte offset of the chunk in the object.
    pub offset: u64,
    /// Stored (possibly compressed) length: the ranged GET length.
    pub stored_len: u32,
    /// Length after decompression.
    pub raw_len: u32,
    /// Number of records.
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

impl ChunkMeta {
    /// The byte range to GET for this chunk.
    pub fn range(&self) -> Range<u64> {
        self.offset..self.offset.saturating_add(u64::from(self.stored_len))
    }
}

/// The decoded footer of a batch object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchFooter {
    chunks: Vec<ChunkMeta>,
    object_len: u64,
}

impl BatchFooter {
    /// Decodes the footer from the last `tail.len()` bytes of an object of `object_len`
    /// bytes. Returns [`TailRead::NeedTail`] when the footer is longer than the tail.
    pub fn decode_from_tail(
        tail: &[u8],
        object_len: u64,
    ) -> Result<TailRead<BatchFooter>, DecodeError> {
        let located = match codec::locate_index(
            tail,
            object_len,
            &BATCH_MAGIC,
            BATCH_VERSION,
            "batch",
            Part::Footer,
        )? {
            TailRead::NeedTail(n) => return Ok(TailRead::NeedTail(n)),
            TailRead::Complete(l) => l,
        };
        let chunks = decode_footer(&located)?;
        Ok(TailRead::Complete(BatchFooter { chunks, object_len }))
    }

    /// Decodes the footer of a whole object held in memory.
    pub fn decode(object: &[u8]) -> Result<BatchFooter, DecodeError> {
        match Self::decode_from_tail(object, object.len() as u64)? {
            TailRead::Complete(f) => Ok(f),
            TailRead::NeedTail(_) => Err(DecodeError::Truncated {
                part: Part::Footer,
                at: object.len(),
            }),
        }
    }

    /// The chunk of `stream`, by binary search over the sorted footer.
    pub fn chunk(&self, stream: &str) -> Option<&ChunkMeta> {
        let i = self
            .chunks
            .binary_search_by(|c| c.stream.as_str().cmp(stream))
            .ok()?;
        self.chunks.get(i)
    }

    /// The chunk at `index`.
    pub fn chunk_at(&self, index: u32) -> Option<&ChunkMeta> {
        self.chunks.get(usize::try_from(index).ok()?)
    }

    /// All chunks, sorted by stream name (index order).
    pub fn chunks(&self) -> &[ChunkMeta] {
        &self.chunks
    }

    /// Length of the whole object.
    pub fn object_len(&self) -> u64 {
        self.object_len
    }
}

fn corrupt(reason: &'static str) -> DecodeError {
    DecodeError::Corrupt {
        part: Part::Footer,
        reason,
    }
}

fn decode_footer(located: &Located<'_>) -> Result<Vec<ChunkMeta>, DecodeError> {
    let mut c = Cursor::new(located.index, Part::Footer);
    let count = c.u32()? as usize;
    if count > c.remaining() / ENTRY_FIXED_LEN {
        return Err(corrupt("chunk count exceeds footer size"));
    }
    let mut chunks: Vec<ChunkMeta> = Vec::with_capacity(count);
    let mut expected_offset = 0u64;
    for index in 0..count {
        let name_len = usize::from(c.u16()?);
        let name = std::str::from_utf8(c.bytes(name_len)?)
            .map_err(|_| corrupt("stream name is not utf-8"))?;
        if name.is_empty() {
            return Err(corrupt("empty stream name"));
        }
        if let Some(prev) = chunks.last()
            && prev.stream.as_str() >= name
        {
            return Err(corrupt("stream names not strictly sorted"));
        }
        let meta = ChunkMeta {
            index: index as u32,
            stream: name.to_owned(),
            offset: c.u64()?,
            stored_len: c.u32()?,
            raw_len: c.u32()?,
            record_count: c.u32()?,
            min_timestamp: c.i64()?,
            max_timestamp: c.i64()?,
            compression: Compression::from_u8(c.u8()?)?,
            crc32c: c.u32()?,
        };
        if meta.offset != expected_offset {
            return Err(corrupt("chunks not contiguous"));
        }
        if meta.record_count == 0 {
            return Err(corrupt("chunk with no records"));
        }
        if meta.min_timestamp > meta.max_timestamp {
            return Err(corrupt("min timestamp after max timestamp"));
        }
        if meta.raw_len as usize > MAX_RAW_LEN {
            return Err(corrupt("raw length above the format limit"));
        }
        if meta.compression == Compression::None && meta.stored_len != meta.raw_len {
            return Err(corrupt(
                "uncompressed chunk with stored length != raw length",
            ));
        }
        expected_offset += u64::from(meta.stored_len);
        chunks.push(meta);
    }
    if !c.is_empty() {
        return Err(corrupt("trailing bytes after the last entry"));
    }
    if expected_offset != located.index_start {
        return Err(corrupt("chunks do not end where the footer starts"));
    }
    Ok(chunks)
}

/// Verifies and decodes one chunk from exactly the bytes of [`ChunkMeta::range`].
///
/// The CRC is checked over the stored bytes before anything else; uncompressed chunks
/// are then sliced without copying. Every record is validated once here (lengths,
/// count, timestamp bounds), so reading from the [`Chunk`] afterwards cannot fail.
pub fn decode_chunk(meta: &ChunkMeta, stored: Bytes) -> Result<Chunk, DecodeError> {
    if stored.len() as u64 != u64::from(meta.stored_len) {
        return Err(DecodeError::LengthMismatch {
            part: Part::Chunk,
            expected: u64::from(meta.stored_len),
            got: stored.len() as u64,
        });
    }
    let data = codec::open_region(
        Part::Chunk,
        meta.compression,
        meta.crc32c,
        meta.raw_len as usize,
        stored,
    )?;
    let bad = |reason| DecodeError::Corrupt {
        part: Part::Chunk,
        reason,
    };
    let count = meta.record_count as usize;
    // Each record takes at least 12 bytes (timestamp + four varints).
    if count > data.len() / 12 {
        return Err(bad("record count exceeds chunk size"));
    }
    let mut offsets = Vec::with_capacity(count);
    let mut c = Cursor::new(&data, Part::Record);
    let (mut min_ts, mut max_ts) = (i64::MAX, i64::MIN);
    while !c.is_empty() {
        let start = c.pos();
        let span = codec::scan_record(&mut c)?;
        offsets.push(start as u32);
        min_ts = min_ts.min(span.timestamp);
        max_ts = max_ts.max(span.timestamp);
    }
    if offsets.len() != count {
        return Err(bad("record count differs from footer"));
    }
    if min_ts != meta.min_timestamp || max_ts != meta.max_timestamp {
        return Err(bad("timestamps differ from footer"));
    }
    Ok(Chunk { data, offsets })
}

/// A verified chunk: one stream's records from one batch object, by position.
///
/// Holds the raw chunk bytes and a table of record start offsets (4 bytes per record,
/// built while validating), so [`Chunk::get`] is O(1) and records are `Bytes` slices.
#[derive(Debug, Clone)]
pub struct Chunk {
    data: Bytes,
    offsets: Vec<u32>,
}

impl Chunk {
    /// Number of records.
    pub fn len(&self) -> usize {
        self.offsets.len()
    }

    /// True when the chunk has no records (never for a decoded chunk).
    pub fn is_empty(&self) -> bool {
        self.offsets.is_empty()
    }

    /// The record at `position` (publish order), or `None` past the end.
    pub fn get(&self, position: usize) -> Option<Record> {
        let start = *self.offsets.get(position)? as usize;
        let mut c = Cursor::at(&self.data, start, Part::Record);
        codec::scan_record(&mut c)
            .ok()
            .map(|span| span.to_record(&self.data))
    }

    /// Records from `position` on.
    pub fn iter_from(&self, position: usize) -> ChunkIter<'_> {
        ChunkIter {
            chunk: self,
            next: position,
        }
    }

    /// All records in publish order.
    pub fn iter(&self) -> ChunkIter<'_> {
        self.iter_from(0)
    }

    /// The record at `position`, borrowed from the chunk: no reference counting, for
    /// hot loops such as compaction feeding a [`crate::SegmentBuilder`].
    pub fn get_ref(&self, position: usize) -> Option<RecordRef<'_>> {
        let start = *self.offsets.get(position)? as usize;
        let mut c = Cursor::at(&self.data, start, Part::Record);
        codec::scan_record(&mut c).ok()?.to_ref(&self.data)
    }

    /// All records in publish order, borrowed from the chunk.
    pub fn iter_refs(&self) -> impl Iterator<Item = RecordRef<'_>> + '_ {
        (0..self.len()).filter_map(|i| self.get_ref(i))
    }

    /// The raw (decompressed) chunk bytes.
    pub fn raw(&self) -> &Bytes {
        &self.data
    }
}

/// Iterator over a chunk's records.
#[derive(Debug, Clone)]
pub struct ChunkIter<'a> {
    chunk: &'a Chunk,
    next: usize,
}

impl Iterator for ChunkIter<'_> {
    type Item = Record;

    fn next(&mut self) -> Option<Record> {
        let r = self.chunk.get(self.next)?;
        self.next += 1;
        Some(r)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.chunk.len().saturating_sub(self.next);
        (n, Some(n))
    }
}

impl ExactSizeIterator for ChunkIter<'_> {}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(subject: &'static [u8], payload: &'static [u8], ts: i64) -> RecordRef<'static> {
        RecordRef {
            subject,
            headers: b"",
            payload,
            timestamp: ts,
            msg_id: None,
        }
    }

    #[test]
    fn groups_by_stream_and_keeps_arrival_order() {
        let mut b = BatchBuilder::new(BuildOptions::default());
        assert_eq!(b.push("ORDERS", &rec(b"o.1", b"a", 3)).expect("push"), 0);
        assert_eq!(b.push("AUDIT", &rec(b"a.1", b"x", 1)).expect("push"), 0);
        assert_eq!(b.push("ORDERS", &rec(b"o.2", b"b", 2)).expect("push"), 1);
        let est = b.encoded_len_estimate();
        let done = b.finish().expect("finish");
        assert!(done.object.len() <= est);
        assert!(b.is_empty());
        let footer = BatchFooter::decode(&done.object).expect("footer");
        assert_eq!(footer, done.footer);
        let orders = footer.chunk("ORDERS").expect("orders chunk");
        assert_eq!(orders.index, 1);
        assert_eq!((orders.min_timestamp, orders.max_timestamp), (2, 3));
        let chunk = decode_chunk(
            orders,
            done.object
                .slice(orders.offset as usize..orders.offset as usize + orders.stored_len as usize),
        )
        .expect("chunk");
        let payloads: Vec<_> = chunk.iter().map(|r| r.payload).collect();
        assert_eq!(
            payloads,
            vec![Bytes::from_static(b"a"), Bytes::from_static(b"b")]
        );
        assert!(footer.chunk("NOPE").is_none());
    }

    #[test]
    fn rejects_bad_stream_names() {
        let mut b = BatchBuilder::new(BuildOptions::default());
        assert!(matches!(
            b.push("", &rec(b"s", b"", 0)),
            Err(BuildError::StreamName { .. })
        ));
    }

    #[test]
    fn empty_batch_is_valid() {
        let done = BatchBuilder::new(BuildOptions::default())
            .finish()
            .expect("finish");
        assert_eq!(done.object.len(), 4 + TRAILER_LEN);
        assert!(
            BatchFooter::decode(&done.object)
                .expect("footer")
                .chunks()
                .is_empty()
        );
    }

    #[test]
    fn short_tail_asks_for_more() {
        let mut b = BatchBuilder::new(BuildOptions::default());
        for i in 0..50 {
            b.push(&format!("S{i}"), &rec(b"x", b"y", i)).expect("push");
        }
        let obj = b.finish().expect("finish").object;
        let len = obj.len() as u64;
        let tail = &obj[obj.len() - 20..];
        let TailRead::NeedTail(n) = BatchFooter::decode_from_tail(tail, len).expect("ok") else {
            panic!("expected NeedTail");
        };
        let tail = &obj[obj.len() - n as usize..];
        assert!(matches!(
            BatchFooter::decode_from_tail(tail, len).expect("ok"),
            TailRead::Complete(_)
        ));
        assert_eq!(
            BatchFooter::decode_from_tail(&obj[obj.len() - 3..], len).expect("ok"),
            TailRead::NeedTail(TRAILER_LEN as u64)
        );
    }

    #[test]
    fn unknown_version_is_typed() {
        let mut obj = BatchBuilder::new(BuildOptions::default())
            .finish()
            .expect("finish")
            .object
            .to_vec();
        let last = obj.len() - 1;
        obj[last] = 2;
        assert_eq!(
            BatchFooter::decode(&obj),
            Err(DecodeError::UnsupportedVersion {
                format: "batch",
                version: 2
            })
        );
    }
}
