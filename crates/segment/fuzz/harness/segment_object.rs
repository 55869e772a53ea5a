//! Fuzzes the compacted-segment reader end to end: trailer, index, lookups, blocks.
//!
//! Shared by the cargo-fuzz target `segment_object` and the stable property test
//! `tests/fuzz_harness.rs`.

use bytes::Bytes;
use infinistream_segment::{Segment, SegmentIndex};

/// Runs the harness on `data`; panics only on a bug.
pub fn run(data: &[u8]) {
    for cut in [0usize, 8, 16, 64] {
        let tail = &data[data.len().saturating_sub(cut)..];
        let _ = SegmentIndex::decode_from_tail(tail, data.len() as u64);
    }
    let Ok(segment) = Segment::open(Bytes::copy_from_slice(data)) else {
        return;
    };
    let index = segment.index();
    let _ = index.last_seq_for_subject(b"a.b");
    for (subject, _) in index.subjects().take(4) {
        let _ = index.last_seq_for_subject(&subject);
    }
    if let Some(first) = index.first_seq() {
        let _ = segment.get(first);
        let _ = segment.get(first.wrapping_add(1));
    }
    let _ = segment.first_seq_at_or_after_time(0);
    for record in segment.iter_from(0).take(1024) {
        std::hint::black_box(record.ok());
    }
}
