//! Ack reply subjects (v1 and v2) and ack payload kinds.

use infinistream_protocol::jsapi::ack::{AckKind, AckSubject, AckSubjectError};
use infinistream_protocol::jsapi::consumer::{NextRequest, PullStatus};
use proptest::prelude::*;

fn name() -> impl Strategy<Value = String> {
    "[A-Za-z0-9_-]{1,20}"
}

fn ack_subject() -> impl Strategy<Value = AckSubject> {
    (
        name(),
        name(),
        any::<u64>(),
        any::<u64>(),
        any::<u64>(),
        any::<i64>(),
        any::<u64>(),
        // `_` is the wire's "no domain", so it is never a domain name itself.
        prop::option::of((
            prop::option::of(name().prop_filter("not _", |d| d != "_")),
            name(),
            prop::option::of(name()),
        )),
    )
        .prop_map(
            |(stream, consumer, delivered, sseq, cseq, ts, pending, v2)| {
                let (domain, account_hash, token) = match v2 {
                    Some((d, h, t)) => (d, Some(h), t),
                    None => (None, None, None),
                };
                AckSubject {
                    domain,
                    account_hash,
                    stream,
                    consumer,
                    delivered,
                    stream_seq: sseq,
                    consumer_seq: cseq,
                    timestamp_nanos: ts,
                    pending,
                    token,
                }
            },
        )
}

proptest! {
    #[test]
    fn ack_subject_round_trips(ack in ack_subject()) {
        let s = ack.to_string();
        prop_assert_eq!(AckSubject::parse(&s), Ok(ack));
    }

    #[test]
    fn ack_parse_never_panics(s in "\\$JS\\.ACK\\.[A-Za-z0-9._-]{0,80}") {
        let _ = AckSubject::parse(&s);
    }

    #[test]
    fn ack_kind_parse_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        let _ = AckKind::parse(&bytes);
    }

    #[test]
    fn nak_delay_round_trips(delay in 1i64..i64::MAX) {
        let kind = AckKind::Nak { delay: Some(delay) };
        prop_assert_eq!(AckKind::parse(&kind.to_payload()), Ok(kind));
    }
}

#[test]
fn v1_and_v2_forms() {
    // As nats-server 2.15.1 sends it (captured).
    let v1 = AckSubject::parse("$JS.ACK.ORDERS.C1.1.2.2.1795333735104286640.0").expect("v1");
    assert_eq!(
        (v1.stream_seq, v1.consumer_seq, v1.pending, v1.delivered),
        (2, 2, 0, 1)
    );
    assert!(!v1.is_v2());
    assert_eq!(v1.timestamp().unix_parts().0, 1_795_333_735);
    let v2 = AckSubject::parse("$JS.ACK._.ACCHASH.ORDERS.C1.3.10.7.1795333735104286640.5.RANDOM")
        .expect("v2");
    assert_eq!(v2.domain, None);
    assert_eq!(v2.account_hash.as_deref(), Some("ACCHASH"));
    assert_eq!(v2.token.as_deref(), Some("RANDOM"));
    assert_eq!(
        (v2.delivered, v2.stream_seq, v2.consumer_seq, v2.pending),
        (3, 10, 7, 5)
    );
    let v2d = AckSubject::parse("$JS.ACK.hub.H.S.C.1.1.1.0.0").expect("v2 without token");
    assert_eq!(v2d.domain.as_deref(), Some("hub"));
    assert_eq!(v2d.to_string(), "$JS.ACK.hub.H.S.C.1.1.1.0.0");
}

#[test]
fn bad_ack_subjects() {
    assert!(matches!(
        AckSubject::parse("$JS.API.INFO"),
        Err(AckSubjectError::NotAck(_))
    ));
    assert!(matches!(
        AckSubject::parse("$JS.ACK.S.C.1.2"),
        Err(AckSubjectError::TokenCount { tokens: 6, .. })
    ));
    assert!(matches!(
        AckSubject::parse("$JS.ACK.S.C.x.2.3.4.5"),
        Err(AckSubjectError::BadNumber {
            field: "delivered",
            ..
        })
    ));
    assert!(matches!(
        AckSubject::parse("$JS.ACK.S..1.2.3.4.5"),
        Err(AckSubjectError::EmptyToken(_))
    ));
}

#[test]
fn ack_kinds() {
    assert_eq!(AckKind::parse(b""), Ok(AckKind::Ack));
    assert_eq!(AckKind::parse(b"+ACK"), Ok(AckKind::Ack));
    assert_eq!(AckKind::parse(b"+OK"), Ok(AckKind::Ack));
    assert_eq!(AckKind::parse(b"+WPI"), Ok(AckKind::Progress));
    assert_eq!(AckKind::parse(b"-NAK"), Ok(AckKind::Nak { delay: None }));
    assert_eq!(
        AckKind::parse(br#"-NAK {"delay":5000000000}"#),
        Ok(AckKind::Nak {
            delay: Some(5_000_000_000)
        })
    );
    assert_eq!(
        AckKind::parse(b"-NAK 1m30s"),
        Ok(AckKind::Nak {
            delay: Some(90_000_000_000)
        })
    );
    assert_eq!(
        AckKind::parse(b"-NAK {bad"),
        Ok(AckKind::Nak { delay: None }),
        "a bad delay is a plain NAK"
    );
    assert_eq!(AckKind::parse(b"+TERM"), Ok(AckKind::Term { reason: None }));
    assert_eq!(
        AckKind::parse(b"+TERM  poison pill "),
        Ok(AckKind::Term {
            reason: Some("poison pill".into())
        })
    );
    assert_eq!(
        AckKind::parse(b"+NXT"),
        Ok(AckKind::Next {
            request: Ok(NextRequest::single())
        })
    );
    let next = AckKind::parse(br#"+NXT {"batch":10}"#).expect("next");
    assert!(matches!(&next, AckKind::Next { request: Ok(r) } if r.batch == 10));
    assert_eq!(AckKind::parse(&next.to_payload()), Ok(next));
    assert!(matches!(
        AckKind::parse(br#"+NXT {"batch":1,"idle_heartbeat":5}"#),
        Ok(AckKind::Next {
            request: Err(PullStatus::BadRequest(_))
        })
    ));
    assert!(AckKind::parse(b"+WPIX").is_err());
    assert!(AckKind::parse(b"hello").is_err());
    for k in [
        AckKind::Ack,
        AckKind::Progress,
        AckKind::Nak { delay: None },
        AckKind::Term {
            reason: Some("r".into()),
        },
    ] {
        assert_eq!(AckKind::parse(&k.to_payload()), Ok(k));
    }
}
