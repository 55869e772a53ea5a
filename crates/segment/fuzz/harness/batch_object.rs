//! Fuzzes the batch-object reader end to end: trailer, footer, then every chunk.
//!
//! Shared by the cargo-fuzz target `batch_object` and the stable property test
//! `tests/fuzz_harness.rs`.

use bytes::Bytes;
use infinistream_segment::{BatchFooter, TailRead, decode_chunk};

/// Runs the harness on `data`; panics only on a bug.
pub fn run(data: &[u8]) {
    let object = Bytes::copy_from_slice(data);
    // Short tails must ask for more or fail, never panic.
    for cut in [0usize, 8, 16, 64] {
        let tail = &data[data.len().saturating_sub(cut)..];
        let _ = BatchFooter::decode_from_tail(tail, data.len() as u64);
    }
    let Ok(TailRead::Complete(footer)) = BatchFooter::decode_from_tail(data, data.len() as u64)
    else {
        return;
    };
    for meta in footer.chunks() {
        let r = meta.range();
        let Some(stored) =
            (r.end <= object.len() as u64).then(|| object.slice(r.start as usize..r.end as usize))
        else {
            return;
        };
        if let Ok(chunk) = decode_chunk(meta, stored) {
            for record in chunk.iter() {
                std::hint::black_box(record);
            }
        }
    }
}
