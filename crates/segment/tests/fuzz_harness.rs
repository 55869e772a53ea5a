//! The cargo-fuzz harnesses (`fuzz/harness/*.rs`, run under libFuzzer by
//! `cargo xtask fuzz`) run here on the stable toolchain, over random bytes and over
//! real objects damaged at random, so every suite run fuzzes a little and every
//! crash the fuzzer finds can be pinned in `regressions` below.

mod common;

#[path = "../fuzz/harness/batch_chunk.rs"]
mod batch_chunk;
#[path = "../fuzz/harness/batch_object.rs"]
mod batch_object;
#[path = "../fuzz/harness/segment_block.rs"]
mod segment_block;
#[path = "../fuzz/harness/segment_object.rs"]
mod segment_object;

use bytes::Bytes;
use common::{Rec, compression_strategy, small_rec_strategy};
use infinistream_segment::{
    BatchBuilder, BuildOptions, Compression, SegmentBuilder, SegmentOptions,
};
use proptest::collection::vec;
use proptest::prelude::*;

fn run_all(data: &[u8]) {
    batch_chunk::run(data);
    batch_object::run(data);
    segment_block::run(data);
    segment_object::run(data);
}

fn batch(items: &[Rec], compression: Compression) -> Bytes {
    let mut b = BatchBuilder::new(BuildOptions {
        compression,
        zstd_level: 1,
    });
    for (i, rec) in items.iter().enumerate() {
        b.push(&format!("S{}", i % 3), &rec.as_ref()).expect("push");
    }
    b.finish().expect("finish").object
}

fn segment(items: &[Rec], compression: Compression) -> Bytes {
    let mut b = SegmentBuilder::new(
        "S",
        SegmentOptions {
            build: BuildOptions {
                compression,
                zstd_level: 1,
            },
            block_size: 256,
        },
    )
    .expect("builder");
    for (i, rec) in items.iter().enumerate() {
        b.push(i as u64 + 1, &rec.as_ref()).expect("push");
    }
    b.finish().expect("finish").tail
}

/// `object` with `byte` written at `at`, then cut to `keep` bytes (all modulo its size).
fn damage(object: &Bytes, at: usize, byte: u8, keep: usize) -> Vec<u8> {
    let mut data = object.to_vec();
    if !data.is_empty() {
        let i = at % data.len();
        data[i] = byte;
        data.truncate(data.len() - keep % (data.len() / 4 + 1));
    }
    data
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_bytes_never_panic(data in vec(any::<u8>(), 0..4096)) {
        run_all(&data);
    }

    #[test]
    fn damaged_objects_never_panic(
        items in vec(small_rec_strategy(), 1..12),
        compression in compression_strategy(),
        at in any::<usize>(),
        byte in any::<u8>(),
        keep in any::<usize>(),
        head in any::<u8>(),
    ) {
        for object in [batch(&items, compression), segment(&items, compression)] {
            run_all(&object);
            let damaged = damage(&object, at, byte, keep);
            run_all(&damaged);
            // The chunk and block harnesses take a head byte, then a body whose CRC
            // they fix up: real object bytes get past the checksum into the decoders.
            let mut body = vec![head];
            body.extend_from_slice(&damaged);
            batch_chunk::run(&body);
            segment_block::run(&body);
        }
    }
}

/// Inputs that once crashed a harness, kept so they never crash again (none yet:
/// the fuzzer has found no crash in these decoders; add each one here).
#[test]
fn regressions() {
    let cases: &[&[u8]] = &[b"", &[0], &[0xff; 64]];
    for case in cases {
        run_all(case);
    }
}
