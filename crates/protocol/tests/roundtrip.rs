//! Property tests: encode → parse round trips, and parsing is independent of how the
//! byte stream is split into reads.

use bytes::{Bytes, BytesMut};
use infinistream_protocol::client::Publish;
use infinistream_protocol::server::Message;
use infinistream_protocol::{
    ClientOp, ClientParser, Connect, HeaderMap, Limits, ServerOp, ServerParser,
};
use proptest::prelude::*;

fn token() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9_$-]{1,8}"
}

fn subject() -> impl Strategy<Value = Bytes> {
    prop::collection::vec(token(), 1..5).prop_map(|t| Bytes::from(t.join(".")))
}

fn sub_subject() -> impl Strategy<Value = Bytes> {
    (
        prop::collection::vec(prop_oneof![token(), Just("*".to_owned())], 1..4),
        any::<bool>(),
    )
        .prop_map(|(mut t, fwc)| {
            if fwc {
                t.push(">".to_owned());
            }
            Bytes::from(t.join("."))
        })
}

fn payload() -> impl Strategy<Value = Bytes> {
    prop::collection::vec(any::<u8>(), 0..300).prop_map(Bytes::from)
}

fn headers() -> impl Strategy<Value = HeaderMap> {
    (
        prop::option::of(100u16..600),
        prop::collection::vec(("[A-Za-z][A-Za-z0-9-]{0,10}", "[ -~]{0,20}"), 0..4),
    )
        .prop_map(|(status, kv)| {
            let mut h = HeaderMap::new();
            if let Some(s) = status {
                h.set_status(s, None);
            }
            for (k, v) in kv {
                h.append(k, v.trim().to_owned());
            }
            h
        })
}

fn client_op() -> impl Strategy<Value = ClientOp> {
    prop_oneof![
        (
            subject(),
            prop::option::of(subject()),
            prop::option::of(headers()),
            payload()
        )
            .prop_map(|(subject, reply, headers, payload)| ClientOp::Pub(Publish {
                subject,
                reply,
                headers: headers.map(|h| h.to_bytes()),
                payload,
            })),
        (sub_subject(), prop::option::of(token()), 1u32..100000).prop_map(|(subject, q, sid)| {
            ClientOp::Sub {
                subject,
                queue: q.map(Bytes::from),
                sid: Bytes::from(sid.to_string()),
            }
        }),
        (1u32..1000, prop::option::of(0u64..1_000_000)).prop_map(|(sid, max)| ClientOp::Unsub {
            sid: Bytes::from(sid.to_string()),
            max
        }),
        Just(ClientOp::Ping),
        Just(ClientOp::Pong),
        (any::<bool>(), any::<bool>(), prop::option::of(token())).prop_map(
            |(verbose, echo, name)| {
                ClientOp::Connect(Box::new(Connect {
                    verbose,
                    echo,
                    name,
                    ..Connect::default()
                }))
            }
        ),
    ]
}

fn server_op() -> impl Strategy<Value = ServerOp> {
    prop_oneof![
        (
            subject(),
            1u32..1000,
            prop::option::of(subject()),
            prop::option::of(headers()),
            payload()
        )
            .prop_map(
                |(subject, sid, reply, headers, payload)| ServerOp::Msg(Message {
                    subject,
                    sid: Bytes::from(sid.to_string()),
                    reply,
                    headers: headers.map(|h| h.to_bytes()),
                    payload,
                })
            ),
        Just(ServerOp::Ping),
        Just(ServerOp::Pong),
        Just(ServerOp::Ok),
        "[a-zA-Z ]{1,30}".prop_map(|s| ServerOp::Err(s.trim().to_owned())),
    ]
}

fn parse_all(parser: &ClientParser, bytes: &[u8]) -> Vec<ClientOp> {
    let mut buf = BytesMut::from(bytes);
    let mut out = Vec::new();
    while let Some(op) = parser.parse(&mut buf).expect("valid stream") {
        out.push(op);
    }
    assert!(buf.is_empty());
    out
}

proptest! {
    #[test]
    fn client_ops_roundtrip(ops in prop::collection::vec(client_op(), 1..20)) {
        let mut buf = BytesMut::new();
        for op in &ops {
            op.encode(&mut buf);
        }
        let parser = ClientParser::new(Limits { max_control_line: 4096, max_payload: 1 << 20 });
        prop_assert_eq!(parse_all(&parser, &buf), ops);
    }

    #[test]
    fn client_split_at_every_boundary(ops in prop::collection::vec(client_op(), 1..6)) {
        let mut wire = BytesMut::new();
        for op in &ops {
            op.encode(&mut wire);
        }
        let parser = ClientParser::default();
        let whole = parse_all(&parser, &wire);
        for cut in 0..=wire.len() {
            // Feed in two reads split at `cut`, parsing after each read.
            let mut buf = BytesMut::new();
            let mut got = Vec::new();
            for part in [&wire[..cut], &wire[cut..]] {
                buf.extend_from_slice(part);
                while let Some(op) = parser.parse(&mut buf).expect("valid stream") {
                    got.push(op);
                }
            }
            prop_assert!(buf.is_empty());
            prop_assert_eq!(&got, &whole);
        }
    }

    #[test]
    fn client_byte_at_a_time(ops in prop::collection::vec(client_op(), 1..4)) {
        let mut wire = BytesMut::new();
        for op in &ops {
            op.encode(&mut wire);
        }
        let parser = ClientParser::default();
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for b in wire.iter() {
            buf.extend_from_slice(&[*b]);
            while let Some(op) = parser.parse(&mut buf).expect("valid stream") {
                got.push(op);
            }
        }
        prop_assert_eq!(got, ops);
    }

    #[test]
    fn server_ops_roundtrip_and_split(ops in prop::collection::vec(server_op(), 1..6)) {
        let mut wire = BytesMut::new();
        for op in &ops {
            op.encode(&mut wire);
        }
        let parser = ServerParser::default();
        for cut in 0..=wire.len() {
            let mut buf = BytesMut::new();
            let mut got = Vec::new();
            for part in [&wire[..cut], &wire[cut..]] {
                buf.extend_from_slice(part);
                while let Some(op) = parser.parse(&mut buf).expect("valid stream") {
                    got.push(op);
                }
            }
            prop_assert_eq!(&got, &ops);
        }
    }

    #[test]
    fn headers_roundtrip(h in headers()) {
        prop_assert_eq!(HeaderMap::parse(&h.to_bytes()).expect("parse"), h);
    }

    #[test]
    fn arbitrary_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..512)) {
        let parser = ClientParser::new(Limits { max_control_line: 64, max_payload: 128 });
        let mut buf = BytesMut::from(&data[..]);
        while let Ok(Some(_)) = parser.parse(&mut buf) {}
        let _ = HeaderMap::parse(&data);
        let _ = ServerParser::new(64).parse(&mut BytesMut::from(&data[..]));
    }
}
