//! Fuzzes the compacted-segment reader end to end: trailer, index, lookups, blocks.
//! (The harness is shared with the stable property test.)
#![no_main]

#[path = "../harness/segment_object.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::run(data));
