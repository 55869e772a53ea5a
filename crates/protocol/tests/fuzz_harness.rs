//! The cargo-fuzz harnesses (`fuzz/harness/*.rs`, run under libFuzzer by
//! `cargo xtask fuzz`) run here on the stable toolchain, over random bytes and over
//! valid inputs damaged at random, so every suite run fuzzes a little and every crash
//! the fuzzer finds can be pinned in `regressions` below.

#[path = "../fuzz/harness/jsapi_json.rs"]
mod jsapi_json;
#[path = "../fuzz/harness/parse_client.rs"]
mod parse_client;

use proptest::collection::vec;
use proptest::prelude::*;

const CLIENT_OPS: &[&str] = &[
    "PUB a.b 5\r\nhello\r\n",
    "HPUB a.b r 12 17\r\nNATS/1.0\r\n\r\nhello\r\n",
    "SUB a.* q 1\r\n",
    "UNSUB 1 5\r\n",
    "CONNECT {\"verbose\":false,\"headers\":true}\r\n",
    "PING\r\nPONG\r\n",
];

const API_BODIES: &[&str] = &[
    r#"{"name":"ORDERS","subjects":["orders.>"],"max_age":3600000000000,"duplicate_window":120000000000,"storage":"file","retention":"limits"}"#,
    r#"{"stream_name":"ORDERS","config":{"durable_name":"C","ack_policy":"explicit","deliver_policy":"all","filter_subject":"orders.new","ack_wait":30000000000,"max_deliver":5},"action":"create"}"#,
    r#"{"batch":10,"expires":5000000000,"no_wait":true,"max_bytes":1024}"#,
    r#"{"seq":7}"#,
    r#"{"last_by_subj":"orders.new"}"#,
    r#"{"stream":"ORDERS","seq":12,"duplicate":true}"#,
    r#"{"error":{"code":503,"err_code":10077,"description":"stream store failed"}}"#,
    r#"{"filter":"orders.*","keep":3}"#,
    "2024-01-02T03:04:05.123456789Z",
];

fn mutate(base: &[u8], at: usize, byte: u8, keep: usize) -> Vec<u8> {
    let mut data = base.to_vec();
    if !data.is_empty() {
        let i = at % data.len();
        data[i] = byte;
        data.truncate(data.len() - keep % (data.len() / 3 + 1));
    }
    data
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_bytes_never_panic(data in vec(any::<u8>(), 0..1024)) {
        parse_client::run(&data);
        jsapi_json::run(&data);
    }

    #[test]
    fn damaged_inputs_never_panic(
        which in any::<usize>(),
        split in any::<u8>(),
        at in any::<usize>(),
        byte in any::<u8>(),
        keep in any::<usize>(),
    ) {
        let op = CLIENT_OPS[which % CLIENT_OPS.len()].as_bytes();
        let mut input = vec![split];
        input.extend_from_slice(op);
        parse_client::run(&input);
        parse_client::run(&mutate(&input, at, byte, keep));
        let body = API_BODIES[which % API_BODIES.len()].as_bytes();
        jsapi_json::run(body);
        jsapi_json::run(&mutate(body, at, byte, keep));
    }
}

/// Inputs that once crashed a harness, kept so they never crash again (none yet:
/// the fuzzer has found no crash in these decoders; add each one here).
#[test]
fn regressions() {
    let cases: &[&[u8]] = &[b"", b"\x00PUB", b"\x05PUB a 1\r\n"];
    for case in cases {
        parse_client::run(case);
        jsapi_json::run(case);
    }
}
