//! Fuzzes the block decoder directly, with an index entry whose CRC matches the input,
//! (The harness is shared with the stable property test.)
#![no_main]

#[path = "../harness/segment_block.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::run(data));
