//! Fuzzes the chunk decoder directly, with a footer entry whose CRC matches the input,
//! (The harness is shared with the stable property test.)
#![no_main]

#[path = "../harness/batch_chunk.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::run(data));
