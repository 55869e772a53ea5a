//! Fuzzes the client-op parser (the harness is shared with the stable property test).
#![no_main]

#[path = "../harness/parse_client.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::run(data));
