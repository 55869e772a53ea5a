//! Encode/decode throughput of both formats for 16 B and 1 KiB records, uncompressed
//! and zstd, plus the compression ratio on a JSON-ish payload (printed once).
//!
//! Throughput counts user bytes (subject + headers + payload), not encoded bytes.
//! Run: `cargo bench -p infinistream-segment -- --quick`

use std::hint::black_box;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use infinistream_segment::{
    BatchBuilder, BatchFooter, BuildOptions, Compression, RecordRef, Segment, SegmentBuilder,
    SegmentOptions, decode_chunk,
};

const STREAMS: usize = 8;
/// About one flush worth of data (the gateway's 4 MiB cap).
const BATCH_BYTES: usize = 4 << 20;

struct Input {
    subjects: Vec<Vec<u8>>,
    payloads: Vec<Vec<u8>>,
    user_bytes: u64,
}

/// Order-like JSON documents with varying ids, quantities and prices, cut to `size`.
fn json_payload(i: u64, size: usize) -> Vec<u8> {
    let mut x = i.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut s = format!(
        "{{\"id\":\"ord-{:08}\",\"customer\":{{\"id\":\"c-{}\",\"tier\":\"{}\"}},\"status\":\"{}\",\"items\":[",
        i,
        next() % 100_000,
        ["gold", "silver", "bronze"][(next() % 3) as usize],
        ["pending", "paid", "shipped"][(next() % 3) as usize],
    );
    while s.len() < size {
        s.push_str(&format!(
            "{{\"sku\":\"SKU-{}\",\"qty\":{},\"price\":{}.{:02}}},",
            next() % 10_000,
            next() % 9 + 1,
            next() % 500,
            next() % 100
        ));
    }
    let mut b = s.into_bytes();
    b.truncate(size);
    b
}

fn input(payload_size: usize) -> Input {
    let per_record = payload_size + 24;
    let n = BATCH_BYTES / per_record;
    let subjects: Vec<Vec<u8>> = (0..n)
        .map(|i| format!("orders.eu.{:06}", i % 1000).into_bytes())
        .collect();
    let payloads: Vec<Vec<u8>> = (0..n as u64)
        .map(|i| json_payload(i, payload_size))
        .collect();
    let user_bytes = subjects.iter().map(Vec::len).sum::<usize>() as u64
        + payloads.iter().map(Vec::len).sum::<usize>() as u64;
    Input {
        subjects,
        payloads,
        user_bytes,
    }
}

fn record<'a>(input: &'a Input, i: usize) -> RecordRef<'a> {
    RecordRef {
        subject: &input.subjects[i],
        headers: b"",
        payload: &input.payloads[i],
        timestamp: 1_763_800_000_000_000_000 + i as i64,
        msg_id: None,
    }
}

fn stream_names() -> Vec<String> {
    (0..STREAMS).map(|s| format!("STREAM_{s}")).collect()
}

fn encode_batch(b: &mut BatchBuilder, input: &Input, names: &[String]) -> Bytes {
    for i in 0..input.payloads.len() {
        b.push(&names[i % STREAMS], &record(input, i))
            .expect("push");
    }
    b.finish().expect("finish").object
}

fn decode_batch(object: &Bytes) -> usize {
    let footer = BatchFooter::decode(object).expect("footer");
    let mut n = 0;
    for meta in footer.chunks() {
        let r = meta.range();
        let chunk =
            decode_chunk(meta, object.slice(r.start as usize..r.end as usize)).expect("chunk");
        for rec in chunk.iter() {
            n += rec.payload.len();
        }
    }
    n
}

fn decode_batch_borrowed(object: &Bytes) -> usize {
    let footer = BatchFooter::decode(object).expect("footer");
    let mut n = 0;
    for meta in footer.chunks() {
        let r = meta.range();
        let chunk =
            decode_chunk(meta, object.slice(r.start as usize..r.end as usize)).expect("chunk");
        for rec in chunk.iter_refs() {
            n += rec.payload.len();
        }
    }
    n
}

fn encode_segment(input: &Input, opts: SegmentOptions) -> Bytes {
    let mut b = SegmentBuilder::new("ORDERS", opts).expect("builder");
    for i in 0..input.payloads.len() {
        b.push(i as u64 + 1, &record(input, i)).expect("push");
    }
    b.finish().expect("finish").tail
}

fn codecs() -> [(Compression, &'static str); 2] {
    [(Compression::None, "none"), (Compression::Zstd, "zstd")]
}

fn bench(c: &mut Criterion) {
    let names = stream_names();
    print_ratios();
    for (size, label) in [(16usize, "16B"), (1024, "1KiB")] {
        let input = input(size);
        for (compression, codec) in codecs() {
            let opts = BuildOptions {
                compression,
                zstd_level: 3,
            };
            let mut g = c.benchmark_group(format!("batch/{label}/{codec}"));
            g.throughput(Throughput::Bytes(input.user_bytes));
            let mut builder = BatchBuilder::new(opts);
            g.bench_function("encode", |b| {
                b.iter(|| black_box(encode_batch(&mut builder, &input, &names)))
            });
            let object = encode_batch(&mut builder, &input, &names);
            g.bench_function("decode", |b| b.iter(|| black_box(decode_batch(&object))));
            g.bench_function("decode_borrowed", |b| {
                b.iter(|| black_box(decode_batch_borrowed(&object)))
            });
            g.finish();

            let sopts = SegmentOptions {
                build: opts,
                block_size: 64 * 1024,
            };
            let mut g = c.benchmark_group(format!("segment/{label}/{codec}"));
            g.throughput(Throughput::Bytes(input.user_bytes));
            g.bench_function("encode", |b| {
                b.iter(|| black_box(encode_segment(&input, sopts)))
            });
            let object = encode_segment(&input, sopts);
            g.bench_function("decode", |b| {
                b.iter(|| {
                    let seg = Segment::open(object.clone()).expect("open");
                    let mut n = 0;
                    for r in seg.iter_from(0) {
                        n += r.expect("record").record.payload.len();
                    }
                    black_box(n)
                })
            });
            g.finish();
        }
    }
}

fn print_ratios() {
    let names = stream_names();
    for size in [16usize, 256, 1024] {
        let input = input(size);
        for (compression, codec) in [(Compression::Lz4, "lz4"), (Compression::Zstd, "zstd")] {
            let mut b = BatchBuilder::new(BuildOptions {
                compression,
                zstd_level: 3,
            });
            let object = encode_batch(&mut b, &input, &names);
            let mut raw = BatchBuilder::new(BuildOptions::default());
            let uncompressed = encode_batch(&mut raw, &input, &names);
            println!(
                "compression ratio batch {size} B JSON records {codec}: {:.2}x ({} -> {} bytes)",
                uncompressed.len() as f64 / object.len() as f64,
                uncompressed.len(),
                object.len()
            );
        }
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(std::time::Duration::from_millis(500))
        .measurement_time(std::time::Duration::from_secs(2));
    targets = bench
}
criterion_main!(benches);
