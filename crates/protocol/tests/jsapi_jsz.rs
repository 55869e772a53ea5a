//! `/jsz` against a document captured from nats-server 2.15.1
//! (`jsapi_golden/jsz_nats_server_2_15_1.txt`, the capture is described in its header).
//!
//! Reading nats-server's document into our types and writing it back must give the
//! same JSON: every key it prints we print, under the same nesting, and we add none.

#![allow(clippy::unwrap_used)] // tests may unwrap (rules)

use infinistream_protocol::jsapi::jsz::{DEFAULT_ACCOUNT_LIMIT, Jsz, JszOptions};
use serde_json::Value;

const CAPTURED: &str = include_str!("jsapi_golden/jsz_nats_server_2_15_1.txt");

fn captured() -> Value {
    let json: String = CAPTURED
        .lines()
        .filter(|l| !l.starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    serde_json::from_str(&json).unwrap()
}

/// Every key path in `v` (`account_details.stream_detail.state.messages`).
fn key_paths(v: &Value, prefix: &str, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                out.push(path.clone());
                key_paths(v, &path, out);
            }
        }
        Value::Array(items) => {
            for item in items {
                key_paths(item, prefix, out);
            }
        }
        _ => {}
    }
}

#[test]
fn nats_server_jsz_round_trips_unchanged() {
    let theirs = captured();
    let jsz: Jsz = serde_json::from_value(theirs.clone()).unwrap();
    let ours = serde_json::to_value(&jsz).unwrap();
    assert_eq!(ours, theirs);
}

#[test]
fn key_names_and_nesting_match_nats_server() {
    let theirs = captured();
    let mut expected = Vec::new();
    key_paths(&theirs, "", &mut expected);
    expected.sort();
    expected.dedup();
    let jsz: Jsz = serde_json::from_value(theirs).unwrap();
    let mut got = Vec::new();
    key_paths(&serde_json::to_value(&jsz).unwrap(), "", &mut got);
    got.sort();
    got.dedup();
    assert_eq!(got, expected);
    // The paths exporters read.
    for path in [
        "api.total",
        "api.errors",
        "streams",
        "consumers",
        "messages",
        "bytes",
        "storage",
        "memory",
        "account_details.stream_detail.state.messages",
        "account_details.stream_detail.state.consumer_count",
        "account_details.stream_detail.consumer_detail.num_pending",
        "account_details.stream_detail.consumer_detail.num_ack_pending",
        "account_details.stream_detail.consumer_detail.delivered.stream_seq",
        "account_details.stream_detail.config.subjects",
    ] {
        assert!(expected.iter().any(|p| p == path), "{path}");
    }
    assert_eq!(jsz.account_details[0].name, "$G");
    assert_eq!(
        jsz.account_details[0].stream_detail[0].consumer_detail[0].name,
        "C1"
    );
}

#[test]
fn query_defaults_and_implications() {
    let o = JszOptions::from_query("").unwrap();
    assert_eq!(o.limit, DEFAULT_ACCOUNT_LIMIT);
    assert!(!o.accounts && !o.streams && !o.consumers && !o.config);
    let o = JszOptions::from_query("consumers=1").unwrap();
    assert!(o.accounts && o.streams && o.consumers);
    let o = JszOptions::from_query("streams=True&config=t").unwrap();
    assert!(o.accounts && o.streams && !o.consumers && o.config);
    let o = JszOptions::from_query("acc=%24G&foo=bar&streams=").unwrap();
    assert_eq!(o.account, "$G");
    assert!(!o.streams && o.details_for("$G") && !o.details_for("B"));
    let o = JszOptions::from_query("offset=-1&limit=0").unwrap();
    assert_eq!((o.offset, o.limit), (0, DEFAULT_ACCOUNT_LIMIT));
    // The first value of a key counts.
    let o = JszOptions::from_query("limit=3&limit=abc").unwrap();
    assert_eq!(o.limit, 3);
    // Bad escapes are kept as written.
    assert_eq!(JszOptions::from_query("acc=a%2").unwrap().account, "a%2");
    assert_eq!(
        JszOptions::from_query("acc=%zz+x").unwrap().account,
        "%zz x"
    );
}

#[test]
fn bad_query_values_name_the_key() {
    let e = JszOptions::from_query("streams=foo").unwrap_err();
    assert_eq!(
        e.to_string(),
        "Error decoding boolean for 'streams': invalid syntax: `foo`"
    );
    let e = JszOptions::from_query("limit=abc").unwrap_err();
    assert!(e.to_string().starts_with("Error decoding int for 'limit'"));
    assert!(JszOptions::from_query("raft=yes").is_err());
    assert!(JszOptions::from_query("offset=1.5").is_err());
}
