//! Fuzzes the block decoder directly, with an index entry whose CRC matches the input,
//! so the fuzzer reaches decompression, sequence checks and record parsing.
//!
//! Shared by the cargo-fuzz target `segment_block` and the stable property test
//! `tests/fuzz_harness.rs`.

use bytes::Bytes;
use infinistream_segment::{BlockMeta, Compression, crc32c, decode_block};

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
    let first_seq = body
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .map_or(0, u64::from_le_bytes);
    let meta = BlockMeta {
        offset: 0,
        stored_len: body.len() as u32,
        raw_len,
        first_seq,
        last_seq: first_seq.saturating_add(u64::from(head)),
        record_count: u32::from(head % 8) + 1,
        min_timestamp: i64::MIN,
        max_timestamp: i64::MAX,
        compression,
        crc32c: crc32c(body),
    };
    if let Ok(block) = decode_block(&meta, Bytes::copy_from_slice(body)) {
        for record in block.iter_from(0) {
            std::hint::black_box(record);
        }
        let _ = block.get(first_seq);
        let _ = block.first_seq_at_or_after_time(0);
    }
}
