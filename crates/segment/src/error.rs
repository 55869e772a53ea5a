//! Typed errors for building and decoding both formats.
//!
//! Decoding errors are split by *what* went wrong (short input, wrong magic, unknown
//! version, checksum, structure) so a caller can tell "fetch more bytes" or "this is not
//! our object" from "this object is damaged" without parsing messages.

/// Which structure a decoding error refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// The fixed-size trailer at the end of an object.
    Trailer,
    /// The batch-object footer (chunk table).
    Footer,
    /// A batch-object chunk.
    Chunk,
    /// The compacted-segment index (block table + subject table).
    Index,
    /// A compacted-segment block.
    Block,
    /// One record inside a chunk or block.
    Record,
}

impl std::fmt::Display for Part {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Part::Trailer => "trailer",
            Part::Footer => "footer",
            Part::Chunk => "chunk",
            Part::Index => "index",
            Part::Block => "block",
            Part::Record => "record",
        })
    }
}

/// An object, footer, chunk or block could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The object is shorter than its fixed trailer.
    #[error("object shorter than the {expected}-byte trailer: {len}")]
    TooShort {
        /// Bytes the trailer needs.
        expected: u64,
        /// Bytes the object has.
        len: u64,
    },
    /// The trailer's magic does not name this format.
    #[error("bad magic, expected {expected}: {found:02x?}")]
    BadMagic {
        /// The format that was expected (`batch` or `segment`).
        expected: &'static str,
        /// The bytes found where the magic belongs.
        found: [u8; 7],
    },
    /// The trailer names a format version this reader does not know.
    #[error("unsupported {format} format version: {version}")]
    UnsupportedVersion {
        /// `batch` or `segment`.
        format: &'static str,
        /// The version byte found.
        version: u8,
    },
    /// Stored bytes do not match their CRC32C.
    #[error("{part} checksum mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    Checksum {
        /// What was being checked.
        part: Part,
        /// The checksum recorded in the object.
        stored: u32,
        /// The checksum of the bytes read.
        computed: u32,
    },
    /// A structure ended before all its fields were read.
    #[error("{part} truncated at byte {at}")]
    Truncated {
        /// What was being decoded.
        part: Part,
        /// Offset inside that structure where the input ran out.
        at: usize,
    },
    /// A structure is internally inconsistent.
    #[error("{part} corrupt: {reason}")]
    Corrupt {
        /// What was being decoded.
        part: Part,
        /// What is inconsistent.
        reason: &'static str,
    },
    /// The compression byte names no known codec.
    #[error("unknown compression codec: {0}")]
    UnknownCompression(u8),
    /// The compressed bytes did not inflate to the recorded length.
    #[error("{codec} decompression failed: {reason}")]
    Decompress {
        /// Codec name.
        codec: &'static str,
        /// Library message or length mismatch.
        reason: String,
    },
    /// The bytes handed in are not the length the index says.
    #[error("{part} length mismatch: expected {expected}, got {got}")]
    LengthMismatch {
        /// Chunk or block.
        part: Part,
        /// Length from the footer/index.
        expected: u64,
        /// Length handed in.
        got: u64,
    },
}

/// A record or stream could not be added to a builder.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    /// A stream name is empty or longer than the format allows.
    #[error("invalid stream name length (1..={max}): {len}")]
    StreamName {
        /// Maximum length in bytes.
        max: usize,
        /// Length given.
        len: usize,
    },
    /// Adding the record would grow one chunk or block past the format's limit.
    #[error("{part} would exceed {max} bytes uncompressed: {len}")]
    TooLarge {
        /// Chunk or block.
        part: Part,
        /// Limit in bytes.
        max: usize,
        /// Size it would have reached.
        len: usize,
    },
    /// A chunk or segment would hold more records than a `u32` counts.
    #[error("too many records in one {0}")]
    TooManyRecords(Part),
    /// Segment sequences must strictly increase.
    #[error("sequence not increasing after {prev}: {seq}")]
    SeqNotIncreasing {
        /// Last sequence pushed.
        prev: u64,
        /// Sequence given.
        seq: u64,
    },
    /// The compressor failed (zstd context allocation or an invalid level).
    #[error("compression failed: {0}")]
    Compress(String),
}
