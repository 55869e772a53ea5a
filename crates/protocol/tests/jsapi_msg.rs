//! Message get / direct get request checks, `Nats-TTL`, PubAck shapes, API levels.

use infinistream_protocol::jsapi::GoDuration;
use infinistream_protocol::jsapi::consumer::{AckPolicy, ConsumerConfig, PriorityPolicy};
use infinistream_protocol::jsapi::headers::{MessageTtl, parse_message_ttl};
use infinistream_protocol::jsapi::msg::{
    DirectGetStatus, MsgGetRequest, PubAck, StoredMsg, render_pub_ack,
};
use infinistream_protocol::jsapi::stream::StreamConfig;
use infinistream_protocol::jsapi::versioning::{
    REQUIRED_LEVEL_KEY, SERVER_LEVEL_KEY, SERVER_VERSION_KEY, refuses_required_api_level,
    supports_required_api_level,
};
use infinistream_protocol::jsapi::{API_LEVEL, ApiError, Timestamp, parse_request};

fn req(json: &str) -> MsgGetRequest {
    parse_request(json.as_bytes()).expect("parses")
}

#[test]
fn msg_get_api_checks() {
    req(r#"{"seq":1}"#).check_api().expect("by seq");
    req(r#"{"last_by_subj":"a.b"}"#)
        .check_api()
        .expect("last by subject");
    req(r#"{"seq":4,"next_by_subj":"a.*"}"#)
        .check_api()
        .expect("next by subject");
    for bad in [
        "{}",
        r#"{"seq":1,"batch":2}"#,
        r#"{"seq":1,"max_bytes":2}"#,
        r#"{"seq":1,"start_time":"2026-01-01T00:00:00Z"}"#,
        r#"{"last_by_subj":"a","next_by_subj":"b"}"#,
        r#"{"last_by_subj":"a","start_time":"2026-01-01T00:00:00Z"}"#,
    ] {
        assert_eq!(req(bad).check_api(), Err(ApiError::bad_request()), "{bad}");
    }
}

#[test]
fn direct_get_checks() {
    assert_eq!(
        MsgGetRequest::parse_direct(b""),
        Err(DirectGetStatus::EmptyRequest)
    );
    assert_eq!(
        MsgGetRequest::parse_direct(b"{}"),
        Err(DirectGetStatus::EmptyRequest)
    );
    assert_eq!(
        MsgGetRequest::parse_direct(b"{"),
        Err(DirectGetStatus::MalformedRequest)
    );
    assert_eq!(
        MsgGetRequest::parse_direct(br#"{"last_by_subj":"a","batch":2}"#),
        Err(DirectGetStatus::BadRequest)
    );
    assert_eq!(
        MsgGetRequest::parse_direct(
            br#"{"multi_last":["a.>"],"up_to_seq":5,"up_to_time":"2026-01-01T00:00:00Z"}"#
        ),
        Err(DirectGetStatus::BadRequest)
    );
    let batch =
        MsgGetRequest::parse_direct(br#"{"seq":1,"batch":10,"max_bytes":1024}"#).expect("batch");
    assert_eq!((batch.seq, batch.batch, batch.max_bytes), (1, 10, 1024));
    let last = MsgGetRequest::direct_last_by_subject(b"", "$KV.b.k").expect("key");
    assert_eq!(last.last_for, "$KV.b.k");
    assert_eq!(
        MsgGetRequest::direct_last_by_subject(br#"{"seq":1}"#, "$KV.b.k"),
        Err(DirectGetStatus::BadRequest)
    );
    assert_eq!(
        DirectGetStatus::TooManyResults.header_block(),
        b"NATS/1.0 413 Too Many Results\r\n\r\n"
    );
    assert_eq!(
        DirectGetStatus::RequiredApiLevel.header_block(),
        b"NATS/1.0 412 Required Api Level\r\n\r\n"
    );
}

#[test]
fn stored_msg_base64_and_headers_merge() {
    let m = StoredMsg {
        subject: "a".into(),
        sequence: 3,
        header: b"NATS/1.0\r\nK: v\r\n\r\n".to_vec(),
        data: vec![0, 255, 1],
        time: Timestamp::from_unix_nanos(1),
    };
    let v = serde_json::to_value(&m).expect("json");
    assert_eq!(v["data"], "AP8B");
    assert_eq!(v["hdrs"], "TkFUUy8xLjANCks6IHYNCg0K");
    assert_eq!(serde_json::from_value::<StoredMsg>(v).expect("back"), m);
    let empty = StoredMsg {
        header: vec![],
        data: vec![],
        ..m
    };
    let v = serde_json::to_value(&empty).expect("json");
    assert!(
        v.get("data").is_none() && v.get("hdrs").is_none(),
        "omitted when empty"
    );
    let meta = infinistream_protocol::jsapi::msg::DirectGetMeta {
        stream: "S",
        subject: "a",
        seq: 3,
        time: Timestamp::from_unix_nanos(0),
        batch: None,
    };
    assert_eq!(
        meta.header_block(b"NATS/1.0\r\nK: v\r\n\r\n"),
        b"NATS/1.0\r\nK: v\r\nNats-Stream: S\r\nNats-Subject: a\r\nNats-Sequence: 3\r\nNats-Time-Stamp: 1970-01-01T00:00:00Z\r\n\r\n"
    );
}

#[test]
fn pub_ack_errors_without_stream() {
    let out = render_pub_ack(&Err((String::new(), ApiError::stream_not_found())));
    assert_eq!(
        String::from_utf8(out).expect("utf8"),
        r#"{"error":{"code":404,"err_code":10059,"description":"stream not found"},"stream":"","seq":0}"#
    );
    let ack = PubAck {
        domain: "hub".into(),
        ..PubAck::new("S", 9)
    };
    assert_eq!(
        String::from_utf8(render_pub_ack(&Ok(ack))).expect("utf8"),
        r#"{"stream":"S","seq":9,"domain":"hub"}"#
    );
}

/// What nats-server 2.15.1 answered to these `Nats-TTL` values on a stream with
/// `allow_msg_ttl` (published with nats-py): stored with this TTL, or 10165.
#[test]
fn message_ttl_matches_nats_server_2_15_1() {
    let stored = [
        ("1.5s", Some(1)),
        ("00", None),
        ("never", Some(-1)),
        ("NEVER", Some(-1)),
        ("30", Some(30)),
        ("1m30s", Some(90)),
        ("+5s", Some(5)),
        ("5.s", Some(5)),
        ("1h", Some(3600)),
        // parseInt64 wraps: 2^64 reads as 0, no TTL.
        ("18446744073709551616", None),
        ("9223372036854775807", Some(i64::MAX)),
    ];
    for (value, ttl) in stored {
        let got = parse_message_ttl(value).map(|t| {
            t.map(|t| match t {
                MessageTtl::Never => -1,
                MessageTtl::Seconds(s) => i64::try_from(s).expect("fits"),
            })
        });
        assert_eq!(got, Ok(ttl), "{value:?}");
    }
    for refused in ["500ms", "0", "-1", "5 s", "1e3s", ".5s", "5µs"] {
        assert_eq!(
            parse_message_ttl(refused),
            Err(ApiError::message_ttl_invalid()),
            "{refused:?}"
        );
    }
}

#[test]
fn message_ttl() {
    assert_eq!(parse_message_ttl("never"), Ok(Some(MessageTtl::Never)));
    assert_eq!(parse_message_ttl("NEVER"), Ok(Some(MessageTtl::Never)));
    assert_eq!(parse_message_ttl("1h"), Ok(Some(MessageTtl::Seconds(3600))));
    assert_eq!(parse_message_ttl("1.9s"), Ok(Some(MessageTtl::Seconds(1))));
    assert_eq!(parse_message_ttl("30"), Ok(Some(MessageTtl::Seconds(30))));
    assert_eq!(
        parse_message_ttl("00"),
        Ok(None),
        "a whole 0 seconds is no TTL"
    );
    assert_eq!(parse_message_ttl(""), Ok(None));
    // "0" parses as a Go duration first, and durations under 1s are refused.
    for bad in ["0", "500ms", "0s", "-5", "abc", "5x", "-1h"] {
        assert_eq!(
            parse_message_ttl(bad),
            Err(ApiError::message_ttl_invalid()),
            "{bad}"
        );
    }
}

#[test]
fn go_durations_parse() {
    for (s, n) in [
        ("0", 0),
        ("5s", 5_000_000_000),
        ("1m30s", 90_000_000_000),
        ("-1.5h", -5_400_000_000_000),
        ("300ms", 300_000_000),
        ("1µs", 1_000),
        ("1us", 1_000),
        ("2h45m", 9_900_000_000_000),
        (".5s", 500_000_000),
        ("1.000000001s", 1_000_000_001),
    ] {
        assert_eq!(GoDuration::parse(s), Some(n), "{s}");
    }
    for bad in ["", "5", "s", "1.s.", "1d", "--1s", "9999999999h"] {
        assert_eq!(GoDuration::parse(bad), None, "{bad}");
    }
    for n in [
        1,
        999,
        1_000_000,
        1_500_000_000,
        90_000_000_000,
        3_723_000_000_000,
    ] {
        assert_eq!(GoDuration::parse(&GoDuration(n).to_string()), Some(n));
    }
}

#[test]
fn api_levels_and_metadata() {
    let mut s = StreamConfig::new("S", ["s"]);
    assert_eq!(s.required_api_level(), 0);
    s.allow_msg_ttl = true;
    assert_eq!(s.required_api_level(), 1);
    s.allow_msg_counter = true;
    assert_eq!(s.required_api_level(), 2);
    s.metadata.insert(SERVER_VERSION_KEY.into(), "x".into());
    s.set_static_metadata();
    assert_eq!(
        s.metadata.get(REQUIRED_LEVEL_KEY).map(String::as_str),
        Some("2")
    );
    assert!(!s.metadata.contains_key(SERVER_VERSION_KEY));
    assert!(supports_required_api_level(&s.metadata), "level 2 is ours");
    let mut batched = s.clone();
    batched.allow_batch_publish = true;
    assert_eq!(batched.required_api_level(), 4);
    batched.set_static_metadata();
    assert!(
        !supports_required_api_level(&batched.metadata),
        "level 4 is above ours"
    );
    let shown = s.with_dynamic_metadata("0.1.0");
    assert_eq!(
        shown.metadata.get(SERVER_LEVEL_KEY),
        Some(&API_LEVEL.to_string())
    );
    let mut c = ConsumerConfig {
        ack_policy: AckPolicy::Explicit,
        ..ConsumerConfig::default()
    };
    assert_eq!(c.required_api_level(), 0);
    c.priority_policy = PriorityPolicy::Overflow;
    assert_eq!(c.required_api_level(), 1);
    let unstamped = c.clone();
    c.set_static_metadata();
    assert!(supports_required_api_level(&c.metadata));
    // An asset stored before the level was stamped is the same asset.
    assert!(c.same_apart_from_required_level(&unstamped));
    let mut other = unstamped.clone();
    other.metadata.insert("app".into(), "x".into());
    assert!(!c.same_apart_from_required_level(&other));
    let plain = StreamConfig::new("S", ["s"]);
    let mut stamped = plain.clone();
    stamped.set_static_metadata();
    assert!(stamped.same_apart_from_required_level(&plain));
    assert!(!stamped.same_apart_from_required_level(&s));
    assert!(!refuses_required_api_level(None));
    assert!(!refuses_required_api_level(Some("1")));
    assert!(!refuses_required_api_level(Some("2")));
    assert!(refuses_required_api_level(Some("3")));
    assert!(refuses_required_api_level(Some("x")));
}
