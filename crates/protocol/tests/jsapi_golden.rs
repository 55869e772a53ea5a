//! Golden tests against replies captured from nats-server 2.15.1.
//!
//! `jsapi_golden/nats_server_2_15_1.jsonl` holds one request and the raw replies per
//! line, captured by `jsapi_golden/capture.py` (a raw-socket client) from the real
//! server. Each test feeds the request through our types and checks that we produce
//! the reply nats-server produced, or that our types read its reply back unchanged.

use infinistream_protocol::jsapi::ack::AckSubject;
use infinistream_protocol::jsapi::consumer::{
    ConsumerCreateResponse, ConsumerInfoResponse, ConsumerListResponse, ConsumerNamesResponse,
    CreateConsumerRequest,
};
use infinistream_protocol::jsapi::msg::{
    DirectGetMeta, DirectGetStatus, MsgDeleteResponse, MsgGetResponse, PubAck, direct_get_eob,
    parse_pub_ack, render_pub_ack,
};
use infinistream_protocol::jsapi::stream::{
    StreamConfig, StreamConfigRequest, StreamCreateResponse, StreamDeleteResponse,
    StreamInfoResponse, StreamListResponse, StreamNamesResponse, StreamPurgeRequest,
    StreamPurgeResponse,
};
use infinistream_protocol::jsapi::subjects::{ApiRoute, ConsumerCreateRoute};
use infinistream_protocol::jsapi::{
    ApiError, ApiResponseType, Timestamp, account::AccountInfo, parse_request, parse_response,
    render_error, render_ok, response::ParsedResponse,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

const GOLDEN: &str = include_str!("jsapi_golden/nats_server_2_15_1.jsonl");

struct Exchange {
    subject: String,
    body: String,
    replies: Vec<Value>,
}

fn exchanges() -> Vec<Exchange> {
    GOLDEN
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: Value = serde_json::from_str(l).expect("golden line is JSON");
            Exchange {
                subject: v["request"]["subject"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                body: v["request"]["body"].as_str().unwrap_or_default().to_owned(),
                replies: v["replies"].as_array().cloned().unwrap_or_default(),
            }
        })
        .collect()
}

/// The n-th exchange (0-based) whose subject and body start as given.
fn find(subject: &str, body_prefix: &str) -> Exchange {
    exchanges()
        .into_iter()
        .find(|e| e.subject == subject && e.body.starts_with(body_prefix))
        .unwrap_or_else(|| panic!("no golden exchange for {subject} {body_prefix}"))
}

fn payload(e: &Exchange) -> String {
    e.replies[0]["payload"]
        .as_str()
        .expect("payload")
        .to_owned()
}

fn json(s: &str) -> Value {
    serde_json::from_str(s).expect("valid JSON")
}

/// nats-server adds `_nats.*` metadata; InfiniStream's server layer decides on its own.
fn strip_nats_metadata(v: &mut Value) {
    if let Some(md) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        md.retain(|k, _| !k.starts_with("_nats."));
        if md.is_empty() {
            v.as_object_mut().expect("object").remove("metadata");
        }
    }
}

/// Parses a reply with our type and checks re-rendering gives the same JSON value.
fn round_trip<T: Serialize + DeserializeOwned + ApiResponseType + std::fmt::Debug>(raw: &str) -> T {
    let parsed: ParsedResponse<T> = parse_response(raw.as_bytes()).expect("parses");
    assert_eq!(parsed.kind.as_deref(), Some(T::TYPE));
    let body = parsed.result.expect("not an error");
    assert_eq!(
        json(&String::from_utf8(render_ok(&body)).expect("utf8")),
        json(raw),
        "round trip of {raw}"
    );
    body
}

#[test]
fn account_info_round_trips() {
    let e = find("$JS.API.INFO", "");
    let info: AccountInfo = round_trip(&payload(&e));
    assert_eq!(info.tier.limits.max_streams, -1);
    assert_eq!(info.api.level, 5);
}

#[test]
fn stream_create_defaults_match_nats_server() {
    for (name, body) in [
        ("ORDERS", r#"{"name":"ORDERS","subjects":["orders.*"]}"#),
        ("FULL", r#"{"name":"FULL","description""#),
        ("TTL", r#"{"name":"TTL","max_age":1000000000}"#),
        ("KV_b", r#"{"name":"KV_b""#),
        ("MIR", r#"{"name":"MIR""#),
    ] {
        let e = find(&format!("$JS.API.STREAM.CREATE.{name}"), body);
        let req: StreamConfigRequest = parse_request(e.body.as_bytes()).expect("request parses");
        let ours = req
            .config
            .check_create(name, req.pedantic)
            .expect("valid config");
        let reply = json(&payload(&e));
        let mut theirs = reply["config"].clone();
        strip_nats_metadata(&mut theirs);
        let mut ours_v = serde_json::to_value(&ours).expect("serializes");
        strip_nats_metadata(&mut ours_v);
        if name == "MIR" {
            // nats-server inherits mirror_direct from the origin's allow_direct.
            ours_v["mirror_direct"] = Value::Bool(true);
        }
        assert_eq!(ours_v, theirs, "config of {name}");
        let created: StreamCreateResponse = round_trip(&payload(&e));
        assert!(created.did_create);
    }
}

#[test]
fn stream_config_errors_match_nats_server() {
    for (subject, body) in [
        ("$JS.API.STREAM.CREATE.X", r#"{"name":"Y"}"#),
        (
            "$JS.API.STREAM.CREATE.X",
            r#"{"name":"X","subjects":["a.*","a.b"]}"#,
        ),
        (
            "$JS.API.STREAM.CREATE.X",
            r#"{"name":"X","discard_new_per_subject":true}"#,
        ),
        (
            "$JS.API.STREAM.CREATE.TTL",
            r#"{"name":"TTL","subject_delete_marker_ttl":500000000}"#,
        ),
        (
            "$JS.API.STREAM.CREATE.TTL",
            r#"{"name":"TTL","max_age":1000000000,"duplicate_window":5000000000}"#,
        ),
        (
            "$JS.API.STREAM.CREATE.SYS",
            r#"{"name":"SYS","subjects":["$JS.API.>"]}"#,
        ),
        (
            "$JS.API.STREAM.CREATE.ROLL",
            r#"{"name":"ROLL","deny_purge":true,"allow_rollup_hdrs":true}"#,
        ),
    ] {
        let e = find(subject, body);
        let route = ApiRoute::from_subject(subject).expect("api subject");
        let ApiRoute::StreamCreate(name) = route else {
            panic!("route {route:?}")
        };
        let req: StreamConfigRequest = parse_request(e.body.as_bytes()).expect("parses");
        let err = req
            .config
            .check_create(&name, false)
            .expect_err("must fail");
        let ours = json(&String::from_utf8(render_error(route_type(subject), &err)).expect("utf8"));
        assert_eq!(ours, json(&payload(&e)), "{subject} {body}");
    }
}

fn route_type(subject: &str) -> &'static str {
    ApiRoute::from_subject(subject)
        .expect("api")
        .response_type()
        .expect("json reply")
}

#[test]
fn invalid_json_is_10025() {
    let e = exchanges()
        .into_iter()
        .find(|e| e.body == r#"{"name":"X","#)
        .expect("truncated JSON exchange");
    let err = parse_request::<StreamConfigRequest>(e.body.as_bytes()).expect_err("bad JSON");
    let theirs: ApiError =
        serde_json::from_value(json(&payload(&e))["error"].clone()).expect("error");
    assert_eq!((err.code, err.err_code), (theirs.code, theirs.err_code));
    assert!(err.description.starts_with("invalid JSON: "));
}

#[test]
fn existing_stream_errors_match() {
    let e = find(
        "$JS.API.STREAM.CREATE.ORDERS",
        r#"{"name":"ORDERS","subjects":["orders.*"],"max_msgs":5}"#,
    );
    assert_eq!(
        json(&payload(&e))["error"],
        serde_json::to_value(ApiError::stream_name_exist()).expect("json")
    );
    let e = find("$JS.API.STREAM.CREATE.OTHER", "");
    assert_eq!(
        json(&payload(&e))["error"],
        serde_json::to_value(ApiError::stream_subject_overlap()).expect("json")
    );
    let orders = StreamConfig::new("ORDERS", ["orders.*"]);
    let other = StreamConfig::new("OTHER", ["orders.new"]);
    assert!(orders.subjects_overlap(&other));
    let e = find("$JS.API.STREAM.INFO.NOPE", "");
    assert_eq!(
        json(&payload(&e))["error"],
        serde_json::to_value(ApiError::stream_not_found()).expect("json")
    );
}

#[test]
fn stream_update_storage_change_refused() {
    let e = find("$JS.API.STREAM.UPDATE.ORDERS", "");
    let old = StreamConfig::new("ORDERS", ["orders.*"])
        .check_and_default()
        .expect("valid");
    let req: StreamConfigRequest = parse_request(e.body.as_bytes()).expect("parses");
    let err = req
        .config
        .check_update_request("ORDERS", &old, false)
        .expect_err("refused");
    let ours = json(&String::from_utf8(render_error(route_type(&e.subject), &err)).expect("utf8"));
    assert_eq!(ours, json(&payload(&e)));
}

#[test]
fn stream_info_list_names_round_trip() {
    let e = find("$JS.API.STREAM.INFO.ORDERS", "");
    let info: StreamInfoResponse = round_trip(&payload(&e));
    assert_eq!(info.info.state.msgs, 2);
    let first_ts = json(&payload(&e))["state"]["first_ts"]
        .as_str()
        .expect("first_ts")
        .to_owned();
    assert_eq!(info.info.state.first_time.to_string(), first_ts);
    let e = find("$JS.API.STREAM.INFO.ORDERS", r#"{"subjects_filter""#);
    let info: StreamInfoResponse = round_trip(&payload(&e));
    assert_eq!(info.info.state.subjects.get("orders.new"), Some(&2));
    assert_eq!(info.paged.limit, 100_000);
    let e = find("$JS.API.STREAM.LIST", "");
    let _: StreamListResponse = round_trip(&payload(&e));
    let e = find("$JS.API.STREAM.NAMES", r#"{"offset":0}"#);
    let names: StreamNamesResponse = round_trip(&payload(&e));
    assert_eq!(names.paged.total, names.streams.len() as u64);
    assert!(names.streams.contains(&"ORDERS".to_owned()));
    // An empty account: nats-server sends `"streams":null`, which we read as empty.
    let e = exchanges()
        .into_iter()
        .find(|e| e.subject == "$JS.API.STREAM.NAMES")
        .expect("first names");
    let parsed: ParsedResponse<StreamNamesResponse> =
        parse_response(payload(&e).as_bytes()).expect("parses");
    assert!(parsed.result.expect("ok").streams.is_empty());
}

#[test]
fn empty_stream_state_uses_go_zero_time() {
    let e = find(
        "$JS.API.STREAM.CREATE.ORDERS",
        r#"{"name":"ORDERS","subjects":["orders.*"]}"#,
    );
    let created: StreamCreateResponse = round_trip(&payload(&e));
    assert!(created.info.state.first_time.is_zero());
    assert_eq!(Timestamp::ZERO.to_string(), "0001-01-01T00:00:00Z");
}

#[test]
fn msg_get_purge_delete_round_trip() {
    let e = find("$JS.API.STREAM.MSG.GET.ORDERS", r#"{"seq":1}"#);
    let got: MsgGetResponse = round_trip(&payload(&e));
    assert_eq!(got.message.data, b"hello");
    let e = find("$JS.API.STREAM.MSG.GET.ORDERS", r#"{"last_by_subj""#);
    let got: MsgGetResponse = round_trip(&payload(&e));
    assert_eq!(got.message.header, b"NATS/1.0\r\nNats-Msg-Id: m1\r\n\r\n");
    let e = find("$JS.API.STREAM.MSG.GET.ORDERS", r#"{"seq":99}"#);
    assert_eq!(
        json(&payload(&e))["error"],
        serde_json::to_value(ApiError::no_message_found()).expect("json")
    );
    let e = find("$JS.API.STREAM.MSG.DELETE.ORDERS", "");
    let _: MsgDeleteResponse = round_trip(&payload(&e));
    let e = find("$JS.API.STREAM.PURGE.ORDERS", r#"{"filter""#);
    let _: StreamPurgeResponse = round_trip(&payload(&e));
    let e = find("$JS.API.STREAM.PURGE.ORDERS", r#"{"seq":2"#);
    let req: StreamPurgeRequest = parse_request(e.body.as_bytes()).expect("parses");
    assert_eq!(
        json(&payload(&e))["error"],
        serde_json::to_value(req.check().expect_err("bad")).expect("json")
    );
    let e = find("$JS.API.STREAM.DELETE.ORDERS", "");
    let _: StreamDeleteResponse = round_trip(&payload(&e));
}

#[test]
fn pub_acks_match() {
    let e = find("orders.new", "hello");
    let ack = parse_pub_ack(payload(&e).as_bytes())
        .expect("json")
        .expect("ack");
    assert_eq!(ack, PubAck::new("ORDERS", 1));
    assert_eq!(
        json(&String::from_utf8(render_pub_ack(&Ok(ack))).expect("utf8")),
        json(&payload(&e))
    );
    let dup = exchanges()
        .into_iter()
        .filter(|e| e.subject == "orders.new" && e.body == "world")
        .nth(1)
        .expect("dup");
    let ack = parse_pub_ack(payload(&dup).as_bytes())
        .expect("json")
        .expect("ack");
    assert_eq!(ack, PubAck::duplicate("ORDERS", 2));
    assert_eq!(
        json(&String::from_utf8(render_pub_ack(&Ok(ack))).expect("utf8")),
        json(&payload(&dup))
    );
    let errs: Vec<Exchange> = exchanges()
        .into_iter()
        .filter(|e| e.subject == "orders.new" && e.body == "x")
        .collect();
    for (e, err) in errs.iter().zip([
        ApiError::stream_wrong_last_sequence(2),
        ApiError::stream_not_match(),
    ]) {
        let rendered = render_pub_ack(&Err(("ORDERS".to_owned(), err.clone())));
        assert_eq!(
            json(&String::from_utf8(rendered).expect("utf8")),
            json(&payload(e))
        );
        assert_eq!(
            parse_pub_ack(payload(e).as_bytes()).expect("json"),
            Err(err)
        );
    }
}

#[test]
fn direct_get_headers_match() {
    let e = find("$JS.API.DIRECT.GET.KV_b.$KV.b.k1", "");
    let hdr = e.replies[0]["headers"].as_str().expect("headers");
    let ts = hdr
        .split("Nats-Time-Stamp: ")
        .nth(1)
        .and_then(|s| s.split("\r\n").next())
        .expect("ts");
    let meta = DirectGetMeta {
        stream: "KV_b",
        subject: "$KV.b.k1",
        seq: 1,
        time: Timestamp::parse(ts).expect("ts parses"),
        batch: None,
    };
    assert_eq!(
        String::from_utf8(meta.header_block(b"")).expect("utf8"),
        hdr
    );
    let route = ApiRoute::from_subject(&e.subject).expect("api");
    assert_eq!(
        route,
        ApiRoute::DirectGetLastBySubject {
            stream: "KV_b".into(),
            subject: "$KV.b.k1".into()
        }
    );

    let e = find("$JS.API.DIRECT.GET.KV_b.$KV.b.k2", "");
    assert_eq!(
        DirectGetStatus::NotFound.header_block(),
        e.replies[0]["headers"].as_str().expect("h").as_bytes()
    );

    let e = find("$JS.API.DIRECT.GET.KV_b", r#"{"seq":1,"batch":2}"#);
    let hdr = e.replies[0]["headers"].as_str().expect("headers");
    let meta = DirectGetMeta {
        batch: Some((0, 0)),
        ..meta
    };
    assert_eq!(
        String::from_utf8(meta.header_block(b"")).expect("utf8"),
        hdr
    );
    assert_eq!(
        direct_get_eob(0, 1, None),
        e.replies[1]["headers"].as_str().expect("eob").as_bytes()
    );
}

#[test]
fn consumer_create_matches_nats_server() {
    let stream = StreamConfig::new("ORDERS", ["orders.*"])
        .check_and_default()
        .expect("valid");
    let full_req: StreamConfigRequest =
        parse_request(find("$JS.API.STREAM.CREATE.FULL", "").body.as_bytes()).expect("parses");
    let full = full_req.config.check_create("FULL", false).expect("valid");
    for (subject, body, stream) in [
        (
            "$JS.API.CONSUMER.CREATE.ORDERS.C1",
            r#"{"stream_name":"ORDERS","config":{"name":"C1","ack_policy":"explicit"}"#,
            &stream,
        ),
        ("$JS.API.CONSUMER.CREATE.FULL.PUSH", "", &full),
    ] {
        let e = find(subject, body);
        let ApiRoute::ConsumerCreate(route) = ApiRoute::from_subject(subject).expect("api") else {
            panic!()
        };
        let req: CreateConsumerRequest = parse_request(e.body.as_bytes()).expect("parses");
        let cfg = req
            .check_subject(&route)
            .expect("subject ok")
            .check_and_default(stream)
            .expect("valid");
        let reply = json(&payload(&e));
        let mut theirs = reply["config"].clone();
        strip_nats_metadata(&mut theirs);
        assert_eq!(
            serde_json::to_value(&cfg).expect("json"),
            theirs,
            "{subject}"
        );
        let _: ConsumerCreateResponse = round_trip(&payload(&e));
    }
}

#[test]
fn consumer_errors_match() {
    let full_req: StreamConfigRequest =
        parse_request(find("$JS.API.STREAM.CREATE.FULL", "").body.as_bytes()).expect("parses");
    let full = full_req.config.check_create("FULL", false).expect("valid");
    let orders = StreamConfig::new("ORDERS", ["orders.*"])
        .check_and_default()
        .expect("valid");
    for (subject, stream) in [
        ("$JS.API.CONSUMER.CREATE.FULL.BAD", &full),
        ("$JS.API.CONSUMER.DURABLE.CREATE.ORDERS.D1", &orders),
    ] {
        let e = find(subject, "");
        let ApiRoute::ConsumerCreate(route) = ApiRoute::from_subject(subject).expect("api") else {
            panic!()
        };
        let req: CreateConsumerRequest = parse_request(e.body.as_bytes()).expect("parses");
        let err = req
            .check_subject(&route)
            .and_then(|c| c.check_and_default(stream))
            .expect_err("refused");
        assert_eq!(
            json(&payload(&e))["error"],
            serde_json::to_value(&err).expect("json"),
            "{subject}"
        );
    }
    let e = find("$JS.API.CONSUMER.INFO.ORDERS.NOPE", "");
    assert_eq!(
        json(&payload(&e))["error"],
        serde_json::to_value(ApiError::consumer_not_found()).expect("json")
    );
    let e = find(
        "$JS.API.CONSUMER.CREATE.ORDERS.C1",
        r#"{"stream_name":"ORDERS","config":{"name":"C1","ack_policy":"none"}"#,
    );
    assert_eq!(
        json(&payload(&e))["error"],
        serde_json::to_value(ApiError::consumer_already_exists()).expect("json")
    );
}

#[test]
fn consumer_info_list_names_round_trip() {
    let e = find("$JS.API.CONSUMER.INFO.ORDERS.C1", "");
    let info: ConsumerInfoResponse = round_trip(&payload(&e));
    assert_eq!(info.info.num_ack_pending, 2);
    assert!(info.info.delivered.last.is_some());
    let _: ConsumerNamesResponse = round_trip(&payload(&find("$JS.API.CONSUMER.NAMES.ORDERS", "")));
    let _: ConsumerListResponse = round_trip(&payload(&find("$JS.API.CONSUMER.LIST.FULL", "")));
    let e = find("$JS.API.CONSUMER.DELETE.ORDERS.C1", "");
    assert_eq!(json(&payload(&e))["success"], Value::Bool(true));
}

#[test]
fn delivered_ack_subjects_parse() {
    let next: Vec<Exchange> = exchanges()
        .into_iter()
        .filter(|e| e.subject == "$JS.API.CONSUMER.MSG.NEXT.ORDERS.C1")
        .collect();
    assert_eq!(next.len(), 2);
    for (i, e) in next.iter().enumerate() {
        let reply = e.replies[0]["reply"].as_str().expect("ack subject");
        let ack = AckSubject::parse(reply).expect("parses");
        assert_eq!(
            (ack.stream.as_str(), ack.consumer.as_str()),
            ("ORDERS", "C1")
        );
        assert_eq!(ack.stream_seq, i as u64 + 1);
        assert_eq!(ack.consumer_seq, i as u64 + 1);
        assert_eq!(ack.delivered, 1);
        assert_eq!(ack.pending, 1 - i as u64);
        assert_eq!(ack.to_string(), reply);
    }
    assert!(matches!(
        ApiRoute::from_subject("$JS.API.CONSUMER.CREATE.ORDERS.C1").expect("api"),
        ApiRoute::ConsumerCreate(ConsumerCreateRoute::Named { filter: None, .. })
    ));
}

/// What async-nats 0.4x sends for `create_stream(Config { name, subjects, ..Default })`
/// and for `create_key_value(kv::Config { bucket: "kv", .. })` (read from its serde
/// attributes: zeros for unset limits, `consumer_limits: null`).
#[test]
fn async_nats_requests_are_accepted_with_server_defaults() {
    let plain = r#"{"name":"events","max_bytes":0,"max_msgs":0,"max_msgs_per_subject":0,"discard":"old","subjects":["events.>"],"retention":"limits","max_consumers":0,"max_age":0,"storage":"file","num_replicas":0,"consumer_limits":null}"#;
    let cfg: StreamConfigRequest = parse_request(plain.as_bytes()).expect("parses");
    let cfg = cfg.config.check_create("events", false).expect("valid");
    assert_eq!(
        (
            cfg.max_msgs,
            cfg.max_bytes,
            cfg.max_msgs_per_subject,
            cfg.max_consumers
        ),
        (-1, -1, -1, -1)
    );
    assert_eq!(cfg.num_replicas, 1);
    assert_eq!(cfg.duplicate_window, 120_000_000_000);
    assert!(cfg.unsupported_features().is_none());

    let kv = r#"{"name":"KV_kv","description":"","max_bytes":-1,"max_msgs":0,"max_msgs_per_subject":1,"discard":"new","subjects":["$KV.kv.>"],"retention":"limits","max_consumers":0,"max_age":0,"max_msg_size":-1,"storage":"file","num_replicas":1,"allow_rollup_hdrs":true,"deny_delete":true,"allow_direct":true,"consumer_limits":null}"#;
    let cfg: StreamConfigRequest = parse_request(kv.as_bytes()).expect("parses");
    let cfg = cfg.config.check_create("KV_kv", false).expect("valid");
    assert!(cfg.allow_direct && cfg.allow_rollup && cfg.deny_delete);
    assert!(cfg.unsupported_features().is_none());

    // nats.py 2.11+ creates KV buckets with per-message TTL enabled.
    let py = r#"{"name":"KV_py","subjects":["$KV.py.>"],"max_msgs_per_subject":1,"discard":"new","allow_rollup_hdrs":true,"deny_delete":true,"allow_direct":true,"allow_msg_ttl":true,"duplicate_window":120000000000}"#;
    let cfg: StreamConfigRequest = parse_request(py.as_bytes()).expect("parses");
    let cfg = cfg.config.check_create("KV_py", false).expect("valid");
    assert!(cfg.allow_msg_ttl && cfg.unsupported_features().is_none());
}

/// Every stream create the capture refused for a config reason: our
/// `check_create` gives the identical error object. (10058/10065 need other
/// streams and are covered above.)
#[test]
fn every_stream_create_error_matches() {
    let mut checked = 0;
    for e in exchanges() {
        let Ok(ApiRoute::StreamCreate(name)) = ApiRoute::from_subject(&e.subject) else {
            continue;
        };
        let Some(reply) = e.replies.first().and_then(|r| r["payload"].as_str()) else {
            continue;
        };
        let reply = json(reply);
        let Some(theirs) = reply.get("error") else {
            continue;
        };
        if [10058, 10065, 10025].contains(&theirs["err_code"].as_u64().unwrap_or(0)) {
            continue;
        }
        let req: StreamConfigRequest = parse_request(e.body.as_bytes()).expect("parses");
        let err = req
            .config
            .check_create(&name, req.pedantic)
            .expect_err(&e.body);
        assert_eq!(
            serde_json::to_value(&err).expect("json"),
            *theirs,
            "{} {}",
            e.subject,
            e.body
        );
        checked += 1;
    }
    assert!(checked >= 20, "checked {checked}");
}

/// Every consumer create on `ORDERS` the capture answered: the same error, or the
/// same defaulted config. InfiniStream deliberately differs in one place: it
/// behaves like a clustered server, so `num_replicas` above the stream's gives
/// 10126 rather than standalone nats-server's "replicas > 1 not supported" (10074).
#[test]
fn every_orders_consumer_create_matches() {
    let orders = StreamConfig::new("ORDERS", ["orders.*"])
        .check_and_default()
        .expect("valid");
    let mut checked = 0;
    for e in exchanges() {
        let Ok(ApiRoute::ConsumerCreate(route)) = ApiRoute::from_subject(&e.subject) else {
            continue;
        };
        if route.stream() != "ORDERS" {
            continue;
        }
        let reply = json(&payload(&e));
        let req: CreateConsumerRequest = parse_request(e.body.as_bytes()).expect("parses");
        let ours = req
            .check_subject(&route)
            .and_then(|c| c.check_and_default(&orders));
        match reply.get("error") {
            Some(theirs) if theirs["err_code"] == 10148 => continue, // needs the existing consumer
            Some(theirs) if theirs["err_code"] == 10074 => {
                assert_eq!(ours.expect_err("refused").err_code, 10126);
            }
            Some(theirs) => {
                let err = ours.expect_err(&e.body);
                assert_eq!(
                    serde_json::to_value(&err).expect("json"),
                    *theirs,
                    "{}",
                    e.body
                );
            }
            None => {
                let mut theirs = reply["config"].clone();
                strip_nats_metadata(&mut theirs);
                let cfg = ours.expect(&e.body);
                assert_eq!(
                    serde_json::to_value(&cfg).expect("json"),
                    theirs,
                    "{}",
                    e.body
                );
            }
        }
        checked += 1;
    }
    assert!(checked >= 20, "checked {checked}");
}
