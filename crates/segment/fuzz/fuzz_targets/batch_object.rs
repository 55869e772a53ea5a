//! Fuzzes the batch-object reader end to end: trailer, footer, then every chunk.
//! (The harness is shared with the stable property test.)
#![no_main]

#[path = "../harness/batch_object.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::run(data));
