//! Golden files: objects written by format version 1, committed in `testdata/`, must
//! keep decoding to the same records forever. A change that breaks this test breaks
//! every object already in users' buckets; bump the version instead (docs/format.md).
//!
//! Regenerate (only when adding a new golden file, never to "fix" this test):
//! `INFINISTREAM_REGEN_GOLDEN=1 cargo nextest run -p infinistream-segment --test golden`

mod common;

use std::path::PathBuf;

use bytes::Bytes;
use common::{Rec, read_batch, read_segment};
use infinistream_segment::{
    BATCH_MAGIC, BatchBuilder, BatchFooter, BuildOptions, Compression, SEGMENT_MAGIC,
    SegmentBuilder, SegmentIndex, SegmentOptions,
};

const CODECS: [(Compression, &str); 3] = [
    (Compression::None, "none"),
    (Compression::Lz4, "lz4"),
    (Compression::Zstd, "zstd"),
];

fn testdata(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(name)
}

fn regen() -> bool {
    std::env::var_os("INFINISTREAM_REGEN_GOLDEN").is_some_and(|v| v == "1")
}

/// The fixed content of the golden batch objects: (stream, record) in push order.
fn batch_content() -> Vec<(&'static str, Rec)> {
    let mut out = Vec::new();
    for i in 0..12i64 {
        let (stream, subject) = match i % 3 {
            0 => ("ORDERS", format!("orders.eu.{}", i % 4)),
            1 => ("KV_config", format!("$KV.config.key{}", i % 2)),
            _ => ("events", "events.login".to_owned()),
        };
        let headers = if i % 2 == 0 {
            format!("NATS/1.0\r\nNats-Msg-Id: m{i}\r\n\r\n").into_bytes()
        } else {
            Vec::new()
        };
        let payload = if i == 5 {
            Vec::new()
        } else {
            format!("{{\"order_id\":{i},\"customer\":\"c-{}\",\"items\":[{{\"sku\":\"A-1\",\"qty\":2}},{{\"sku\":\"B-7\",\"qty\":1}}],\"note\":\"{}\"}}", i * 7, "x".repeat(40))
                .into_bytes()
        };
        out.push((
            stream,
            Rec {
                subject: subject.into_bytes(),
                headers,
                payload,
                timestamp: 1_763_800_000_000_000_000 + i * 1_000_003,
                msg_id: (i % 2 == 0).then(|| format!("m{i}").into_bytes()),
            },
        ));
    }
    out
}

/// The fixed content of the golden segments: (seq, record), with gaps.
fn segment_content() -> Vec<(u64, Rec)> {
    (0..40u64)
        .filter(|i| i % 7 != 3)
        .map(|i| {
            (
                100 + i,
                Rec {
                    subject: format!("$KV.config.k{}", i % 5).into_bytes(),
                    headers: if i % 4 == 0 {
                        b"NATS/1.0\r\nKV-Operation: PUT\r\n\r\n".to_vec()
                    } else {
                        Vec::new()
                    },
                    payload: format!(
                        "{{\"value\":{i},\"enabled\":true,\"tags\":[\"alpha\",\"beta\",\"gamma\"]}}"
                    )
                    .into_bytes(),
                    // Skewed clock: one record goes back in time.
                    timestamp: 1_763_800_000_000_000_000 + (i as i64) * 500
                        - if i == 20 { 9_000 } else { 0 },
                    msg_id: (i % 6 == 0).then(|| format!("id-{i}").into_bytes()),
                },
            )
        })
        .collect()
}

fn write_batch(compression: Compression) -> Bytes {
    let mut b = BatchBuilder::new(BuildOptions {
        compression,
        zstd_level: 3,
    });
    for (stream, rec) in batch_content() {
        b.push(stream, &rec.as_ref()).expect("push");
    }
    b.finish().expect("finish").object
}

fn write_segment(compression: Compression) -> Bytes {
    let mut b = SegmentBuilder::new(
        "KV_config",
        SegmentOptions {
            build: BuildOptions {
                compression,
                zstd_level: 3,
            },
            block_size: 1024,
        },
    )
    .expect("builder");
    for (seq, rec) in segment_content() {
        b.push(seq, &rec.as_ref()).expect("push");
    }
    b.finish().expect("finish").tail
}

fn load(name: &str, fresh: impl FnOnce() -> Bytes) -> Bytes {
    let path = testdata(name);
    if regen() {
        std::fs::create_dir_all(path.parent().expect("has parent")).expect("mkdir testdata");
        std::fs::write(&path, fresh()).expect("write golden file");
    }
    Bytes::from(std::fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display())))
}

#[test]
fn batch_v1_golden_files_decode() {
    for (codec, label) in CODECS {
        let object = load(&format!("batch_v1_{label}.bin"), || write_batch(codec));
        assert_eq!(&object[object.len() - 8..object.len() - 1], &BATCH_MAGIC);
        assert_eq!(object[object.len() - 1], 1, "{label}: version byte");

        let footer = BatchFooter::decode(&object).expect("footer");
        let chunks = read_batch(&object).expect("decode golden batch");
        let streams: Vec<&str> = chunks.iter().map(|(s, _)| s.as_str()).collect();
        assert_eq!(streams, ["KV_config", "ORDERS", "events"], "{label}");
        for (stream, records) in &chunks {
            let want: Vec<Rec> = batch_content()
                .into_iter()
                .filter(|(s, _)| s == stream)
                .map(|(_, r)| r)
                .collect();
            assert_eq!(records.len(), want.len(), "{label} {stream}");
            for (got, want) in records.iter().zip(&want) {
                assert!(want.matches(got), "{label} {stream}: {got:?} != {want:?}");
            }
        }
        if codec != Compression::None {
            assert!(
                footer.chunks().iter().any(|c| c.compression == codec),
                "{label}: golden file should exercise its codec"
            );
        }
    }
}

#[test]
fn segment_v1_golden_files_decode() {
    for (codec, label) in CODECS {
        let object = load(&format!("segment_v1_{label}.bin"), || write_segment(codec));
        assert_eq!(&object[object.len() - 8..object.len() - 1], &SEGMENT_MAGIC);
        assert_eq!(object[object.len() - 1], 1, "{label}: version byte");

        let index = SegmentIndex::decode(&object).expect("index");
        assert!(index.blocks().len() > 1, "{label}: several blocks");
        if codec != Compression::None {
            assert!(
                index.blocks().iter().any(|b| b.compression == codec),
                "{label}: golden file should exercise its codec"
            );
        }
        let (stream, records) = read_segment(&object).expect("decode golden segment");
        assert_eq!(stream, "KV_config");
        let want = segment_content();
        assert_eq!(records.len(), want.len(), "{label}");
        for (got, (seq, rec)) in records.iter().zip(&want) {
            assert_eq!(got.seq, *seq, "{label}");
            assert!(rec.matches(&got.record), "{label} seq {seq}");
        }
        assert_eq!(index.last_seq_for_subject(b"$KV.config.k2"), Some(137));
        assert_eq!(index.last_seq_for_subject(b"$KV.config.k0"), Some(135));
        assert_eq!(index.first_seq(), Some(100));
        assert_eq!(index.last_seq(), Some(139));
    }
}
