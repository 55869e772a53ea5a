//! Batch-object and compacted-segment formats (layer 0, no I/O).
//!
//! This crate is the one place that knows how stream data lies in the bucket. It turns
//! records into bytes and bytes back into records, and nothing else: no tokio, no
//! object store. Callers fetch byte ranges; this crate tells them which ranges.
//!
//! - [`batch`]: what one agent flush writes — one chunk per stream, a footer to find a
//!   stream's chunk with one ranged GET. No sequences: the control plane assigns them.
//! - [`segment`]: what compaction writes — one stream, absolute sequences, blocks plus
//!   indexes by sequence, time and subject.
//!
//! Both formats end in the same 16-byte trailer (index length, index CRC32C, magic,
//! version), every stored region carries a CRC32C over its stored (compressed) bytes,
//! and decoders return typed [`DecodeError`]s rather than panicking on any input.
//! The byte layout is in `docs/format.md`; golden files in `testdata/` keep version 1
//! readable.

pub mod batch;
pub mod codec;
pub mod error;
pub mod record;
pub mod segment;

pub use batch::{
    BATCH_MAGIC, BATCH_VERSION, BatchBuilder, BatchFooter, BuildOptions, Chunk, ChunkIter,
    ChunkMeta, FinishedBatch, decode_chunk,
};
pub use codec::{Compression, MAX_RAW_LEN, TRAILER_LEN, TailRead, crc32c};
pub use error::{BuildError, DecodeError, Part};
pub use record::{Record, RecordRef, SeqRecord};
pub use segment::{
    Block, BlockIter, BlockMeta, FinishedSegment, SEGMENT_MAGIC, SEGMENT_VERSION, Segment,
    SegmentBuilder, SegmentIndex, SegmentIter, SegmentOptions, decode_block,
};

/// A good first tail fetch: most footers and small segment indexes fit, so a reader
/// usually needs one GET for the tail and one for the data.
pub const SUGGESTED_TAIL_LEN: u64 = 64 * 1024;
