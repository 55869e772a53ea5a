//! The `$JS.API` router: every endpoint, response types, and non-matches.

use infinistream_protocol::jsapi::response::types;
use infinistream_protocol::jsapi::subjects::{ApiRoute, ConsumerCreateRoute};

fn route(s: &str) -> ApiRoute {
    ApiRoute::from_subject(s).expect("api subject")
}

#[test]
fn routes_every_endpoint() {
    let cases: Vec<(&str, ApiRoute)> = vec![
        ("$JS.API.INFO", ApiRoute::Info),
        (
            "$JS.API.STREAM.CREATE.S",
            ApiRoute::StreamCreate("S".into()),
        ),
        (
            "$JS.API.STREAM.UPDATE.S",
            ApiRoute::StreamUpdate("S".into()),
        ),
        ("$JS.API.STREAM.INFO.S", ApiRoute::StreamInfo("S".into())),
        (
            "$JS.API.STREAM.DELETE.S",
            ApiRoute::StreamDelete("S".into()),
        ),
        ("$JS.API.STREAM.PURGE.S", ApiRoute::StreamPurge("S".into())),
        ("$JS.API.STREAM.NAMES", ApiRoute::StreamNames),
        ("$JS.API.STREAM.LIST", ApiRoute::StreamList),
        (
            "$JS.API.STREAM.MSG.GET.S",
            ApiRoute::StreamMsgGet("S".into()),
        ),
        (
            "$JS.API.STREAM.MSG.DELETE.S",
            ApiRoute::StreamMsgDelete("S".into()),
        ),
        (
            "$JS.API.STREAM.SNAPSHOT.S",
            ApiRoute::StreamSnapshot("S".into()),
        ),
        (
            "$JS.API.STREAM.RESTORE.S",
            ApiRoute::StreamRestore("S".into()),
        ),
        (
            "$JS.API.STREAM.LEADER.STEPDOWN.S",
            ApiRoute::StreamLeaderStepdown("S".into()),
        ),
        (
            "$JS.API.STREAM.PEER.REMOVE.S",
            ApiRoute::StreamPeerRemove("S".into()),
        ),
        ("$JS.API.DIRECT.GET.S", ApiRoute::DirectGet("S".into())),
        (
            "$JS.API.DIRECT.GET.KV_b.$KV.b.some.key",
            ApiRoute::DirectGetLastBySubject {
                stream: "KV_b".into(),
                subject: "$KV.b.some.key".into(),
            },
        ),
        (
            "$JS.API.CONSUMER.CREATE.S",
            ApiRoute::ConsumerCreate(ConsumerCreateRoute::Ephemeral { stream: "S".into() }),
        ),
        (
            "$JS.API.CONSUMER.CREATE.S.C",
            ApiRoute::ConsumerCreate(ConsumerCreateRoute::Named {
                stream: "S".into(),
                consumer: "C".into(),
                filter: None,
            }),
        ),
        (
            "$JS.API.CONSUMER.CREATE.S.C.orders.*.eu",
            ApiRoute::ConsumerCreate(ConsumerCreateRoute::Named {
                stream: "S".into(),
                consumer: "C".into(),
                filter: Some("orders.*.eu".into()),
            }),
        ),
        (
            "$JS.API.CONSUMER.DURABLE.CREATE.S.D",
            ApiRoute::ConsumerCreate(ConsumerCreateRoute::Durable {
                stream: "S".into(),
                durable: "D".into(),
            }),
        ),
        (
            "$JS.API.CONSUMER.INFO.S.C",
            ApiRoute::ConsumerInfo {
                stream: "S".into(),
                consumer: "C".into(),
            },
        ),
        (
            "$JS.API.CONSUMER.DELETE.S.C",
            ApiRoute::ConsumerDelete {
                stream: "S".into(),
                consumer: "C".into(),
            },
        ),
        (
            "$JS.API.CONSUMER.NAMES.S",
            ApiRoute::ConsumerNames("S".into()),
        ),
        (
            "$JS.API.CONSUMER.LIST.S",
            ApiRoute::ConsumerList("S".into()),
        ),
        (
            "$JS.API.CONSUMER.MSG.NEXT.S.C",
            ApiRoute::ConsumerMsgNext {
                stream: "S".into(),
                consumer: "C".into(),
            },
        ),
        (
            "$JS.API.CONSUMER.PAUSE.S.C",
            ApiRoute::ConsumerPause {
                stream: "S".into(),
                consumer: "C".into(),
            },
        ),
        (
            "$JS.API.CONSUMER.UNPIN.S.C",
            ApiRoute::ConsumerUnpin {
                stream: "S".into(),
                consumer: "C".into(),
            },
        ),
        (
            "$JS.API.CONSUMER.RESET.S.C",
            ApiRoute::ConsumerReset {
                stream: "S".into(),
                consumer: "C".into(),
            },
        ),
        (
            "$JS.API.CONSUMER.LEADER.STEPDOWN.S.C",
            ApiRoute::ConsumerLeaderStepdown {
                stream: "S".into(),
                consumer: "C".into(),
            },
        ),
        ("$JS.API.META.LEADER.STEPDOWN", ApiRoute::MetaLeaderStepdown),
        ("$JS.API.SERVER.REMOVE", ApiRoute::ServerRemove),
        (
            "$JS.API.ACCOUNT.PURGE.A",
            ApiRoute::AccountPurge("A".into()),
        ),
    ];
    for (subject, want) in cases {
        assert_eq!(route(subject), want, "{subject}");
    }
}

#[test]
fn non_matches_are_unknown_or_not_api() {
    for s in [
        "$JS.API.STREAM.CREATE",
        "$JS.API.STREAM.CREATE.a.b",
        "$JS.API.STREAM.BOGUS",
        "$JS.API.CONSUMER.INFO.S",
        "$JS.API.CONSUMER.DURABLE.CREATE.S",
        "$JS.API.CONSUMER.MSG.NEXT.S",
        "$JS.API.STREAM.INFO..x",
        "$JS.API.DIRECT.GET",
    ] {
        assert_eq!(route(s), ApiRoute::Unknown, "{s}");
    }
    for s in [
        "orders.new",
        "$JS.ACK.S.C.1.1.1.1.1",
        "$JS.API",
        "$KV.b.k",
        "$JS..API.INFO",
    ] {
        assert!(ApiRoute::from_subject(s).is_err(), "{s}");
    }
}

#[test]
fn domain_prefixed_subjects_route() {
    assert_eq!(
        route("$JS.hub.API.STREAM.INFO.S"),
        ApiRoute::StreamInfo("S".into())
    );
    assert_eq!(route("$JS.hub.API.INFO"), ApiRoute::Info);
}

#[test]
fn response_types_and_streams() {
    assert_eq!(
        route("$JS.API.INFO").response_type(),
        Some(types::ACCOUNT_INFO)
    );
    assert_eq!(
        route("$JS.API.STREAM.CREATE.S").response_type(),
        Some("io.nats.jetstream.api.v1.stream_create_response")
    );
    assert_eq!(
        route("$JS.API.CONSUMER.DURABLE.CREATE.S.D").response_type(),
        Some("io.nats.jetstream.api.v1.consumer_create_response")
    );
    assert_eq!(
        route("$JS.API.STREAM.MSG.DELETE.S").response_type(),
        Some(types::STREAM_MSG_DELETE)
    );
    assert_eq!(route("$JS.API.DIRECT.GET.S").response_type(), None);
    assert_eq!(route("$JS.API.CONSUMER.MSG.NEXT.S.C").response_type(), None);
    assert_eq!(route("$JS.API.CONSUMER.CREATE.S.C.f.>").stream(), Some("S"));
    assert_eq!(route("$JS.API.STREAM.NAMES").stream(), None);
}
