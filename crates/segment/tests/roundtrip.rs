//! Property: what a builder wrote is exactly what the readers return, for random
//! streams, subjects, headers (empty and large), payloads (0 B – 1 MiB) and codecs.

mod common;

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;
use common::{Rec, compression_strategy, read_batch, rec_strategy};
use infinistream_segment::{
    BatchBuilder, BatchFooter, BuildOptions, Segment, SegmentBuilder, SegmentIndex, SegmentOptions,
    TailRead,
};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn batch_round_trip(
        items in proptest::collection::vec((0..12usize, rec_strategy()), 0..60),
        compression in compression_strategy(),
    ) {
        let mut builder = BatchBuilder::new(BuildOptions { compression, zstd_level: 1 });
        let mut expected: BTreeMap<String, Vec<Rec>> = BTreeMap::new();
        for (stream, rec) in &items {
            let name = format!("STREAM_{stream}");
            let pos = builder.push(&name, &rec.as_ref()).expect("push");
            let list = expected.entry(name).or_default();
            prop_assert_eq!(pos as usize, list.len());
            list.push(rec.clone());
        }
        let estimate = builder.encoded_len_estimate();
        let done = builder.finish().expect("finish");
        prop_assert!(done.object.len() <= estimate);

        // Reading through the tail, as a fetcher would: start with a tiny tail.
        let len = done.object.len() as u64;
        let footer = match BatchFooter::decode_from_tail(&done.object[done.object.len() - 16..], len).expect("tail") {
            TailRead::Complete(f) => f,
            TailRead::NeedTail(n) => {
                let tail = &done.object[done.object.len() - n as usize..];
                match BatchFooter::decode_from_tail(tail, len).expect("tail") {
                    TailRead::Complete(f) => f,
                    TailRead::NeedTail(m) => panic!("asked twice: {n} then {m}"),
                }
            }
        };
        prop_assert_eq!(&footer, &done.footer);

        let read = read_batch(&done.object).expect("read");
        prop_assert_eq!(read.len(), expected.len());
        for ((stream, records), (want_stream, want)) in read.iter().zip(&expected) {
            prop_assert_eq!(stream, want_stream);
            prop_assert_eq!(records.len(), want.len());
            for (r, w) in records.iter().zip(want) {
                prop_assert!(w.matches(r), "record differs in {}", stream);
            }
            let meta = footer.chunk(stream).expect("lookup");
            let r = meta.range();
            let chunk = infinistream_segment::decode_chunk(meta, done.object.slice(r.start as usize..r.end as usize)).expect("chunk");
            prop_assert_eq!(chunk.iter_refs().count(), want.len());
            for (got, w) in chunk.iter_refs().zip(want) {
                prop_assert_eq!(got, w.as_ref());
            }
            prop_assert_eq!(meta.record_count as usize, want.len());
            prop_assert_eq!(meta.min_timestamp, want.iter().map(|r| r.timestamp).min().expect("non-empty"));
            prop_assert_eq!(meta.max_timestamp, want.iter().map(|r| r.timestamp).max().expect("non-empty"));
        }
    }

    #[test]
    fn segment_round_trip(
        items in proptest::collection::vec((1..4u64, rec_strategy()), 0..80),
        subjects in 1..6usize,
        first in 1..1_000u64,
        block_size in 32..8192usize,
        compression in compression_strategy(),
        take_parts in any::<bool>(),
    ) {
        let mut builder = SegmentBuilder::new(
            "ORDERS",
            SegmentOptions { build: BuildOptions { compression, zstd_level: 1 }, block_size },
        ).expect("builder");
        // Reuse a few subjects so last-per-subject has something to do.
        let mut seq = first;
        let mut expected = Vec::new();
        let mut object = Vec::new();
        for (i, (gap, mut rec)) in items.into_iter().enumerate() {
            seq += gap;
            rec.subject = format!("orders.{}", i % subjects).into_bytes();
            builder.push(seq, &rec.as_ref()).expect("push");
            expected.push((seq, rec));
            if take_parts {
                object.extend_from_slice(&builder.take_sealed());
            }
        }
        let done = builder.finish().expect("finish");
        object.extend_from_slice(&done.tail);
        prop_assert_eq!(object.len() as u64, done.object_len);
        let object = Bytes::from(object);
        let index = SegmentIndex::decode(&object).expect("index");
        prop_assert_eq!(&index, &done.index);
        prop_assert_eq!(index.record_count(), expected.len() as u64);

        let seg = Segment::open(object).expect("open");
        let all: Vec<_> = seg.iter_from(0).collect::<Result<_, _>>().expect("iter");
        prop_assert_eq!(all.len(), expected.len());
        for (got, (s, want)) in all.iter().zip(&expected) {
            prop_assert_eq!(got.seq, *s);
            prop_assert!(want.matches(&got.record));
        }
        for (s, want) in &expected {
            let got = seg.get(*s).expect("get").expect("present");
            prop_assert!(want.matches(&got.record));
            prop_assert_eq!(seg.get(s - 1).expect("get").is_some(), expected.iter().any(|(x, _)| *x == s - 1));
        }
        for meta in seg.index().blocks() {
            let block = seg.block(meta).expect("block");
            for i in 0..block.len() {
                let (s, r) = block.record_ref_at(i).expect("in range");
                let owned = block.record_at(i).expect("in range");
                prop_assert_eq!(s, owned.seq);
                prop_assert_eq!(r, owned.record.as_ref());
            }
        }
        // Last sequence per subject.
        let mut last: HashMap<&[u8], u64> = HashMap::new();
        for (s, r) in &expected {
            last.insert(&r.subject, *s);
        }
        prop_assert_eq!(seg.index().subject_count(), last.len());
        for (subject, s) in &last {
            prop_assert_eq!(seg.last_seq_for_subject(subject), Some(*s));
        }
        prop_assert_eq!(seg.last_seq_for_subject(b"nope"), None);
        // By start time, against brute force, including skewed (random) timestamps.
        let mut probes: Vec<i64> = expected.iter().flat_map(|(_, r)| [r.timestamp, r.timestamp.saturating_add(1)]).collect();
        probes.extend([i64::MIN, i64::MAX]);
        for t in probes {
            let want = expected.iter().find(|(_, r)| r.timestamp >= t).map(|(s, _)| *s);
            prop_assert_eq!(seg.first_seq_at_or_after_time(t).expect("time"), want);
        }
        // Iterate from the middle.
        if let Some((mid, _)) = expected.get(expected.len() / 2) {
            let from: Vec<u64> = seg.iter_from(*mid).map(|r| r.expect("rec").seq).collect();
            let want: Vec<u64> = expected.iter().map(|(s, _)| *s).filter(|s| s >= mid).collect();
            prop_assert_eq!(from, want);
        }
    }
}

#[test]
fn one_chunk_per_stream_many_streams() {
    let mut builder = BatchBuilder::new(BuildOptions::default());
    let rec = Rec {
        subject: b"s".to_vec(),
        headers: Vec::new(),
        payload: b"p".to_vec(),
        timestamp: 1,
        msg_id: None,
    };
    for round in 0..3 {
        for i in 0..2_000 {
            assert_eq!(
                builder
                    .push(&format!("S{i:05}"), &rec.as_ref())
                    .expect("push"),
                round
            );
        }
    }
    let done = builder.finish().expect("finish");
    assert_eq!(done.footer.chunks().len(), 2_000);
    for i in [0, 1, 999, 1_999] {
        let meta = done.footer.chunk(&format!("S{i:05}")).expect("found");
        assert_eq!(meta.index as usize, i);
        assert_eq!(meta.record_count, 3);
    }
}

/// The whole path a message takes: several agents' flushes (batch objects), sequences
/// assigned per stream in commit order from (object, chunk, position), then compaction
/// of one stream's chunks into a segment that answers by sequence, time and subject.
#[test]
fn batches_compact_into_a_segment() {
    let mut objects = Vec::new();
    let mut ts = 1_000;
    for flush in 0..3 {
        let mut b = BatchBuilder::new(BuildOptions::default());
        for i in 0..10 {
            ts += 1;
            let subject = format!("orders.{}", (flush + i) % 3);
            let payload = format!("flush {flush} msg {i}");
            for stream in ["AUDIT", "ORDERS"] {
                b.push(
                    stream,
                    &infinistream_segment::RecordRef {
                        subject: subject.as_bytes(),
                        headers: b"",
                        payload: payload.as_bytes(),
                        timestamp: ts,
                        msg_id: None,
                    },
                )
                .expect("push");
            }
        }
        objects.push(b.finish().expect("finish").object);
    }
    // Commit order = object order; ORDERS gets 1..=30, with seq 7 deleted later.
    let mut seg = SegmentBuilder::new("ORDERS", SegmentOptions::default()).expect("builder");
    let mut next_seq = 1u64;
    for object in &objects {
        let footer = BatchFooter::decode(object).expect("footer");
        let meta = footer.chunk("ORDERS").expect("chunk");
        let r = meta.range();
        let chunk = infinistream_segment::decode_chunk(
            meta,
            object.slice(r.start as usize..r.end as usize),
        )
        .expect("chunk");
        for rec in chunk.iter_refs() {
            if next_seq != 7 {
                seg.push(next_seq, &rec).expect("push");
            }
            next_seq += 1;
        }
    }
    let done = seg.finish().expect("finish");
    let seg = Segment::open(done.tail).expect("open");
    assert_eq!(seg.index().record_count(), 29);
    assert_eq!(seg.get(7).expect("get"), None);
    let r = seg.get(12).expect("get").expect("present");
    assert_eq!(&r.record.payload[..], b"flush 1 msg 1");
    assert_eq!(
        seg.first_seq_at_or_after_time(1_015).expect("time"),
        Some(15)
    );
    assert_eq!(seg.last_seq_for_subject(b"orders.2"), Some(30));
    assert_eq!(seg.last_seq_for_subject(b"orders.0"), Some(28));
}
