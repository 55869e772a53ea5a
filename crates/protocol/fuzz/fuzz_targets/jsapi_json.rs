//! Fuzzes the JetStream API JSON decoders (the harness is shared with the stable
//! property test).
#![no_main]

#[path = "../harness/jsapi_json.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::run(data));
