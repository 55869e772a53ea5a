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
    BatchBuilder, BatchFooter, BuildOptions, Compression, Segment, SegmentBuilder, SegmentOptions,
    TailRead,
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

/// The committed seeds of the whole-object targets (`fuzz/seeds/<target>/`, copies of
/// the golden objects): random bytes never carry the magic and a matching CRC, so
/// libFuzzer starts from these to get past the trailer into the index, footer and
/// chunks. Each must stay a whole, valid object of its kind.
#[test]
fn whole_object_seeds_are_valid_objects() {
    let seeds = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds");
    let read = |target: &str| -> Vec<(String, Vec<u8>)> {
        let mut out: Vec<_> = std::fs::read_dir(seeds.join(target))
            .unwrap_or_else(|e| panic!("seeds of {target}: {e}"))
            .map(|entry| {
                let path = entry.expect("seed entry").path();
                let data = std::fs::read(&path).expect("read seed");
                (path.display().to_string(), data)
            })
            .collect();
        out.sort();
        out
    };
    let segments = read("segment_object");
    assert!(!segments.is_empty());
    for (name, data) in &segments {
        let segment = Segment::open(Bytes::copy_from_slice(data))
            .unwrap_or_else(|e| panic!("{name} is not a segment: {e}"));
        assert!(segment.iter_from(0).count() > 0, "{name} holds records");
        segment_object::run(data);
    }
    let batches = read("batch_object");
    assert!(!batches.is_empty());
    for (name, data) in &batches {
        match BatchFooter::decode_from_tail(data, data.len() as u64) {
            Ok(TailRead::Complete(footer)) => {
                assert!(!footer.chunks().is_empty(), "{name} holds chunks")
            }
            other => panic!("{name} is not a batch object: {other:?}"),
        }
        batch_object::run(data);
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
