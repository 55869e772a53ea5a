//! The JetStream API JSON decoding harness, shared by the cargo-fuzz target
//! `jsapi_json` and the stable property test `tests/fuzz_harness.rs`: every request
//! body an agent decodes from a client is decoded and checked without panicking, and
//! a checked stream or consumer config survives the JSON round trip the agent makes
//! when it answers with it.

use infinistream_protocol::jsapi::consumer::{CreateConsumerRequest, NextRequest};
use infinistream_protocol::jsapi::msg::{MsgDeleteRequest, MsgGetRequest, parse_pub_ack};
use infinistream_protocol::jsapi::stream::{
    StreamConfig, StreamConfigRequest, StreamInfoRequest, StreamListRequest, StreamPurgeRequest,
};
use infinistream_protocol::jsapi::{Timestamp, parse_request};

/// Runs every decoder on `data`; panics only on a bug.
pub fn run(data: &[u8]) {
    if let Ok(request) = parse_request::<StreamConfigRequest>(data)
        && let Ok(checked) = request.config.check_and_default()
    {
        round_trip(&checked);
        let _ = checked.check_and_default();
    }
    if let Ok(request) = parse_request::<CreateConsumerRequest>(data) {
        let stream = StreamConfig::default();
        if let Ok(checked) = request.config.check_and_default(&stream) {
            let _ = checked.check_update(&request.config);
        }
    }
    let _ = NextRequest::parse(data);
    let _ = MsgGetRequest::parse_direct(data);
    let _ = MsgGetRequest::direct_last_by_subject(data, "a.b");
    let _ = parse_request::<MsgGetRequest>(data);
    let _ = parse_request::<MsgDeleteRequest>(data);
    let _ = parse_request::<StreamInfoRequest>(data);
    let _ = parse_request::<StreamListRequest>(data);
    if let Ok(purge) = parse_request::<StreamPurgeRequest>(data) {
        let _ = purge.check();
    }
    let _ = parse_pub_ack(data);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = Timestamp::parse(text);
    }
}

fn round_trip(config: &StreamConfig) {
    let json = serde_json::to_vec(config).expect("a stream config serializes");
    let back: StreamConfig = serde_json::from_slice(&json).expect("its own JSON parses");
    assert_eq!(
        &back, config,
        "the config changed across its JSON round trip"
    );
}
