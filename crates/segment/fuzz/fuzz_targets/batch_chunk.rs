//! Fuzzes the chunk decoder directly, with a footer entry whose CRC matches the input,
//! so the fuzzer gets past the checksum and exercises decompression and record parsing.
#![no_main]

use bytes::Bytes;
use infinistream_segment::{ChunkMeta, Compression, crc32c, decode_chunk};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
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
});
