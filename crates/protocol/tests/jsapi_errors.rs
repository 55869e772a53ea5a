//! The nats-server error table, substitution and the response envelope.

use infinistream_protocol::jsapi::response::{ParsedResponse, types};
use infinistream_protocol::jsapi::stream::{StreamDeleteResponse, StreamPurgeResponse};
use infinistream_protocol::jsapi::{
    ApiError, codes, parse_request, parse_response, render_error, render_ok, render_result,
};
use std::collections::BTreeSet;

#[test]
fn table_is_complete_and_unique() {
    assert!(codes::ALL.len() >= 200, "{} codes", codes::ALL.len());
    let err_codes: BTreeSet<u16> = codes::ALL.iter().map(|c| c.err_code).collect();
    assert_eq!(err_codes.len(), codes::ALL.len(), "err_codes are unique");
    let names: BTreeSet<&str> = codes::ALL.iter().map(|c| c.name).collect();
    assert_eq!(names.len(), codes::ALL.len());
    assert!(
        codes::ALL.windows(2).all(|w| w[0].err_code < w[1].err_code),
        "sorted"
    );
}

#[test]
fn well_known_codes() {
    let cases = [
        (ApiError::stream_not_found(), 404, 10059, "stream not found"),
        (
            ApiError::stream_name_exist(),
            400,
            10058,
            "stream name already in use with a different configuration",
        ),
        (
            ApiError::stream_subject_overlap(),
            400,
            10065,
            "subjects overlap with an existing stream",
        ),
        (
            ApiError::stream_wrong_last_sequence(7),
            400,
            10071,
            "wrong last sequence: 7",
        ),
        (
            ApiError::stream_wrong_last_msg_id("abc"),
            400,
            10070,
            "wrong last msg ID: abc",
        ),
        (
            ApiError::consumer_not_found(),
            404,
            10014,
            "consumer not found",
        ),
        (ApiError::bad_request(), 400, 10003, "bad request"),
        (ApiError::not_enabled(), 503, 10076, "JetStream not enabled"),
        (
            ApiError::not_enabled_for_account(),
            503,
            10039,
            "JetStream not enabled for account",
        ),
        (
            ApiError::insufficient_resources(),
            503,
            10023,
            "insufficient resources",
        ),
        (
            ApiError::stream_store_failed("bucket unreachable"),
            503,
            10077,
            "bucket unreachable",
        ),
        (
            ApiError::cluster_not_avail(),
            503,
            10008,
            "JetStream system temporarily unavailable",
        ),
        (
            ApiError::sequence_not_found(9),
            400,
            10043,
            "sequence 9 not found",
        ),
        (ApiError::no_message_found(), 404, 10037, "no message found"),
        (
            ApiError::stream_message_exceeds_maximum(),
            400,
            10054,
            "message size exceeds maximum allowed",
        ),
        (
            ApiError::stream_sealed(),
            400,
            10109,
            "invalid operation on sealed stream",
        ),
        (
            ApiError::message_ttl_invalid(),
            400,
            10165,
            "invalid per-message TTL",
        ),
        (
            ApiError::stream_external_del_prefix_overlaps("p", "s"),
            400,
            10022,
            "stream external delivery prefix p overlaps with stream subject s",
        ),
        (
            ApiError::restore_subscribe_failed("subj", "boom"),
            500,
            10042,
            "JetStream unable to subscribe to restore snapshot subj: boom",
        ),
        (
            ApiError::invalid_json("unexpected EOF"),
            400,
            10025,
            "invalid JSON: unexpected EOF",
        ),
    ];
    for (err, code, err_code, description) in cases {
        assert_eq!(
            (err.code, err.err_code, err.description.as_str()),
            (code, err_code, description)
        );
    }
    assert!(ApiError::stream_not_found().is(codes::STREAM_NOT_FOUND));
    assert_eq!(
        ApiError::stream_not_found().to_string(),
        "stream not found (10059)"
    );
}

#[test]
fn envelopes() {
    let err = render_error(types::STREAM_CREATE, &ApiError::stream_name_exist());
    assert_eq!(
        String::from_utf8(err).expect("utf8"),
        r#"{"type":"io.nats.jetstream.api.v1.stream_create_response","error":{"code":400,"err_code":10058,"description":"stream name already in use with a different configuration"}}"#
    );
    let ok = render_ok(&StreamPurgeResponse {
        success: true,
        purged: 3,
    });
    assert_eq!(
        String::from_utf8(ok).expect("utf8"),
        r#"{"type":"io.nats.jetstream.api.v1.stream_purge_response","success":true,"purged":3}"#
    );
    let res: Result<StreamDeleteResponse, ApiError> = Err(ApiError::stream_not_found());
    let parsed: ParsedResponse<StreamDeleteResponse> =
        parse_response(&render_result(&res)).expect("parses");
    assert_eq!(parsed.kind.as_deref(), Some(types::STREAM_DELETE));
    assert_eq!(parsed.result, res);
}

#[test]
fn empty_requests_mean_defaults() {
    let req: StreamPurgeResponse = parse_request(b"").expect("empty");
    assert_eq!(req, StreamPurgeResponse::default());
    let req: StreamPurgeResponse = parse_request(b" \r\n").expect("whitespace");
    assert_eq!(req, StreamPurgeResponse::default());
    assert_eq!(
        parse_request::<StreamPurgeResponse>(b"{")
            .expect_err("bad")
            .err_code,
        10025
    );
}
