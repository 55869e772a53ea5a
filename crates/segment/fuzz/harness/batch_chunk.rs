//! Fuzzes the chunk decoder directly, with a footer entry whose CRC matches the input,
//! so the fuzzer gets past the checksum and exercises decompression and record parsing.
//!
//! Shared by the cargo-fuzz target `batch_chunk` and the stable property test
//! `tests/fuzz_harness.rs`.

use bytes::Bytes;
use infinistream_segment::{ChunkMeta, Compression, crc32c, decode_chunk};

/// Runs the harness on `data`; panics only on a bug.
pub fn run(data: &[u8]) {
    let Some((&head, body)) = data.split_first() else {
        return;
    };
    let compression = match head % 3 {
        0 => Compression::None,
        1 => Compression::Lz4,
        _ => Compression::Zstd,
    };
    let raw_len = match compression {
        Compression::None => body.len() as u32,
        _ => u32::from(head) * 64,
    };
    let meta = ChunkMeta {
        index: 0,
        stream: "S".to_owned(),
        offset: 0,
        stored_len: body.len() as u32,
        raw_len,
        record_count: u32::from(head % 16) + 1,
        min_timestamp: i64::MIN,
        max_timestamp: i64::MAX,
        compression,
        crc32c: crc32c(body),
    };
    if let Ok(chunk) = decode_chunk(&meta, Bytes::copy_from_slice(body)) {
        for record in chunk.iter() {
            std::hint::black_box(record);
        }
    }
}
