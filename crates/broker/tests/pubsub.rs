//! Core pub/sub behaviour driven by a real client (async-nats) against a broker on
//! an ephemeral port.

mod common;

use std::time::Duration;

use async_nats::client::RequestErrorKind;
use bytes::Bytes;
use common::{EVENTUALLY, Raw, TestBroker, is_err};
use futures::StreamExt;
use infinistream_broker::{Auth, BrokerConfig};
use infinistream_protocol::ServerOp;
use tokio::time::timeout;

async fn next(sub: &mut async_nats::Subscriber) -> async_nats::Message {
    timeout(EVENTUALLY, sub.next())
        .await
        .expect("message in time")
        .expect("subscription open")
}

#[tokio::test]
async fn publish_subscribe() {
    let tb = TestBroker::start(BrokerConfig::default()).await;
    let client = tb.client().await;
    let mut sub = client.subscribe("orders.created").await.expect("sub");
    common::sync(&client).await;
    client
        .publish("orders.created", "hello".into())
        .await
        .expect("pub");
    let msg = next(&mut sub).await;
    assert_eq!(msg.subject.as_str(), "orders.created");
    assert_eq!(&msg.payload[..], b"hello");
    assert!(tb.broker.has_interest("orders.created"));
    assert!(!tb.broker.has_interest("orders.deleted"));
}

#[tokio::test]
async fn wildcards() {
    let tb = TestBroker::start(BrokerConfig::default()).await;
    let client = tb.client().await;
    let mut star = client.subscribe("a.*.c").await.expect("sub");
    let mut tail = client.subscribe("a.>").await.expect("sub");
    client.flush().await.expect("flush");
    for s in ["a.b.c", "a.x.y.z", "b.b.c", "a.b.c"] {
        client.publish(s, s.into()).await.expect("pub");
    }
    client.flush().await.expect("flush");
    assert_eq!(next(&mut star).await.subject.as_str(), "a.b.c");
    assert_eq!(next(&mut star).await.subject.as_str(), "a.b.c");
    let got: Vec<String> = [
        next(&mut tail).await,
        next(&mut tail).await,
        next(&mut tail).await,
    ]
    .iter()
    .map(|m| m.subject.to_string())
    .collect();
    assert_eq!(got, vec!["a.b.c", "a.x.y.z", "a.b.c"]);
}

#[tokio::test]
async fn queue_group_splits_and_plain_gets_all() {
    let tb = TestBroker::start(BrokerConfig::default()).await;
    let client = tb.client().await;
    let mut q1 = client
        .queue_subscribe("jobs", "workers".into())
        .await
        .expect("q1");
    let mut q2 = client
        .queue_subscribe("jobs", "workers".into())
        .await
        .expect("q2");
    let mut plain = client.subscribe("jobs").await.expect("plain");
    client.flush().await.expect("flush");
    const N: usize = 200;
    for i in 0..N {
        client
            .publish("jobs", i.to_string().into())
            .await
            .expect("pub");
    }
    client.flush().await.expect("flush");
    for _ in 0..N {
        next(&mut plain).await;
    }
    // Every message reaches exactly one member of the group.
    let (mut n1, mut n2) = (0, 0);
    while n1 + n2 < N {
        tokio::select! {
            Some(_) = q1.next() => n1 += 1,
            Some(_) = q2.next() => n2 += 1,
            _ = tokio::time::sleep(EVENTUALLY) => panic!("queue deliveries missing: {n1} + {n2}"),
        }
    }
    assert_eq!(n1 + n2, N);
    assert!(n1 > 0 && n2 > 0, "both members get work: {n1} / {n2}");
    client.flush().await.expect("flush");
    assert!(q1.next().now_or_never_is_none());
}

trait NowOrNever {
    fn now_or_never_is_none(self) -> bool;
}

impl<F: std::future::Future> NowOrNever for F {
    fn now_or_never_is_none(self) -> bool {
        futures::FutureExt::now_or_never(self).is_none()
    }
}

#[tokio::test]
async fn headers_round_trip() {
    let tb = TestBroker::start(BrokerConfig::default()).await;
    let client = tb.client().await;
    let mut sub = client.subscribe("h").await.expect("sub");
    client.flush().await.expect("flush");
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Nats-Msg-Id", "id-1");
    headers.append("X-Multi", "a");
    headers.append("X-Multi", "b");
    client
        .publish_with_headers("h", headers, "body".into())
        .await
        .expect("pub");
    let msg = next(&mut sub).await;
    let h = msg.headers.expect("headers");
    assert_eq!(h.get("Nats-Msg-Id").map(|v| v.as_str()), Some("id-1"));
    let multi: Vec<&str> = h.get_all("X-Multi").map(|v| v.as_str()).collect();
    assert_eq!(multi, vec!["a", "b"]);
    assert_eq!(&msg.payload[..], b"body");
}

#[tokio::test]
async fn request_reply() {
    let tb = TestBroker::start(BrokerConfig::default()).await;
    let server = tb.client().await;
    let mut svc = server.subscribe("svc.echo").await.expect("sub");
    common::sync(&server).await;
    tokio::spawn(async move {
        while let Some(m) = svc.next().await {
            if let Some(reply) = m.reply {
                let mut body = b"echo:".to_vec();
                body.extend_from_slice(&m.payload);
                let _ = server.publish(reply, body.into()).await;
            }
        }
    });
    let client = tb.client().await;
    let resp = timeout(EVENTUALLY, client.request("svc.echo", "hi".into()))
        .await
        .expect("in time")
        .expect("response");
    assert_eq!(&resp.payload[..], b"echo:hi");
}

#[tokio::test]
async fn no_responders() {
    let tb = TestBroker::start(BrokerConfig::default()).await;
    let client = tb.client().await;
    let err = timeout(EVENTUALLY, client.request("nobody.home", "x".into()))
        .await
        .expect("in time")
        .expect_err("no responders");
    assert_eq!(err.kind(), RequestErrorKind::NoResponders);
}

#[tokio::test]
async fn unsubscribe_after_max() {
    let tb = TestBroker::start(BrokerConfig::default()).await;
    let client = tb.client().await;
    let mut sub = client.subscribe("limited").await.expect("sub");
    sub.unsubscribe_after(3).await.expect("unsub");
    client.flush().await.expect("flush");
    for i in 0..10 {
        client
            .publish("limited", format!("{i}").into())
            .await
            .expect("pub");
    }
    client.flush().await.expect("flush");
    for i in 0..3 {
        assert_eq!(next(&mut sub).await.payload, Bytes::from(i.to_string()));
    }
    assert!(
        timeout(EVENTUALLY, sub.next())
            .await
            .expect("ends")
            .is_none()
    );
    assert!(!tb.broker.has_interest("limited"));
}

#[tokio::test]
async fn ten_thousand_in_order() {
    let tb = TestBroker::start(BrokerConfig::default()).await;
    let sub_client = tb.client().await;
    let mut sub = sub_client.subscribe("seq").await.expect("sub");
    common::sync(&sub_client).await;
    let client = tb.client().await;
    for i in 0..10_000u32 {
        client
            .publish("seq", Bytes::copy_from_slice(&i.to_be_bytes()))
            .await
            .expect("pub");
    }
    client.flush().await.expect("flush");
    for i in 0..10_000u32 {
        let m = next(&mut sub).await;
        assert_eq!(&m.payload[..], &i.to_be_bytes());
    }
    let varz = tb.broker.varz();
    assert!(varz.in_msgs >= 10_000 && varz.out_msgs >= 10_000);
}

#[tokio::test]
async fn echo_false_skips_own_messages() {
    let tb = TestBroker::start(BrokerConfig::default()).await;
    let client = async_nats::ConnectOptions::new()
        .no_echo()
        .connect(tb.url())
        .await
        .expect("connect");
    let mut own = client.subscribe("echo").await.expect("sub");
    let other = tb.client().await;
    let mut theirs = other.subscribe("echo").await.expect("sub");
    common::sync(&client).await;
    common::sync(&other).await;
    client.publish("echo", "mine".into()).await.expect("pub");
    common::sync(&client).await;
    other.publish("echo", "other".into()).await.expect("pub");
    // The no-echo client sees only the other client's message...
    assert_eq!(&next(&mut own).await.payload[..], b"other");
    // ...while the echoing client sees both, in publish order.
    assert_eq!(&next(&mut theirs).await.payload[..], b"mine");
    assert_eq!(&next(&mut theirs).await.payload[..], b"other");
}

#[tokio::test]
async fn max_payload_rejected() {
    let tb = TestBroker::start(BrokerConfig {
        max_payload: 1024,
        ..BrokerConfig::default()
    })
    .await;
    // The client learns the limit from INFO and refuses locally...
    let client = tb.client().await;
    assert_eq!(client.server_info().max_payload, 1024);
    let err = client
        .publish("big", vec![0u8; 2048].into())
        .await
        .expect_err("too big");
    assert_eq!(
        err.kind(),
        async_nats::client::PublishErrorKind::MaxPayloadExceeded
    );
    // ...and the server enforces it for clients that do not.
    let (mut raw, _) = Raw::connect(tb.addr).await;
    raw.send(b"CONNECT {}\r\nPUB big 2048\r\n").await;
    let ops = raw.until_closed().await;
    assert!(
        ops.iter().any(is_err("Maximum Payload Violation")),
        "{ops:?}"
    );
    common::assert_serving(&tb).await;
}

#[tokio::test]
async fn user_pass_auth() {
    let tb = TestBroker::start(BrokerConfig {
        auth: Some(Auth::UserPass {
            user: "alice".into(),
            pass: "s3cret".into(),
        }),
        ..BrokerConfig::default()
    })
    .await;
    let ok = async_nats::ConnectOptions::with_user_and_password("alice".into(), "s3cret".into())
        .connect(tb.url())
        .await
        .expect("good credentials");
    let mut sub = ok.subscribe("x").await.expect("sub");
    ok.publish("x", "1".into()).await.expect("pub");
    assert_eq!(&next(&mut sub).await.payload[..], b"1");
    let err = async_nats::ConnectOptions::with_user_and_password("alice".into(), "wrong".into())
        .connect(tb.url())
        .await
        .expect_err("bad credentials");
    assert_eq!(
        err.kind(),
        async_nats::ConnectErrorKind::AuthorizationViolation
    );
    // Raw: anything before CONNECT is a violation when auth is required.
    let (mut raw, info) = Raw::connect(tb.addr).await;
    assert!(info.auth_required);
    raw.send(b"SUB x 1\r\n").await;
    let ops = raw.until_closed().await;
    assert!(ops.iter().any(is_err("Authorization Violation")), "{ops:?}");
}

#[tokio::test]
async fn token_auth() {
    let tb = TestBroker::start(BrokerConfig {
        auth: Some(Auth::Token("tok".into())),
        ..BrokerConfig::default()
    })
    .await;
    let ok = async_nats::ConnectOptions::with_token("tok".into())
        .connect(tb.url())
        .await
        .expect("good token");
    ok.flush().await.expect("flush");
    let err = async_nats::ConnectOptions::with_token("nope".into())
        .connect(tb.url())
        .await
        .expect_err("bad token");
    assert_eq!(
        err.kind(),
        async_nats::ConnectErrorKind::AuthorizationViolation
    );
}

#[tokio::test]
async fn slow_consumer_is_cut_off_others_unaffected() {
    let tb = TestBroker::start(BrokerConfig {
        max_pending: 256 * 1024,
        ..BrokerConfig::default()
    })
    .await;
    // A subscriber that never reads.
    let (mut raw, _) = Raw::connect(tb.addr).await;
    raw.send(b"CONNECT {\"verbose\":false}\r\nSUB firehose 1\r\nPING\r\n")
        .await;
    raw.expect(|op| matches!(op, ServerOp::Pong)).await;
    // A healthy subscriber on the same subject.
    let good = tb.client().await;
    let mut good_sub = good.subscribe("firehose").await.expect("sub");
    common::sync(&good).await;
    let publisher = tb.client().await;
    let payload = Bytes::from(vec![b'x'; 1024]);
    const N: usize = 16_000;
    let reader = tokio::spawn(async move {
        let mut n = 0;
        while n < N {
            match timeout(EVENTUALLY, good_sub.next()).await {
                Ok(Some(_)) => n += 1,
                _ => break,
            }
        }
        n
    });
    for i in 0..N {
        publisher
            .publish("firehose", payload.clone())
            .await
            .expect("pub");
        if i % 100 == 99 {
            // Pace the publisher by server round trips (flush is client-local).
            common::sync(&publisher).await;
        }
    }
    publisher.flush().await.expect("flush");
    assert_eq!(
        reader.await.expect("reader"),
        N,
        "healthy subscriber got everything"
    );
    assert!(tb.broker.varz().slow_consumers >= 1);
    // The stalled connection is gone: reading it drains what the kernel held, then EOF.
    let mut buf = vec![0u8; 1 << 16];
    loop {
        use tokio::io::AsyncReadExt;
        match timeout(EVENTUALLY, raw.stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(_)) => {}
            Err(_) => panic!("slow consumer connection was not closed"),
        }
    }
    assert_eq!(tb.broker.connz().num_connections, 2);
}

#[tokio::test]
async fn internal_subscription_and_publish() {
    let tb = TestBroker::start(BrokerConfig::default()).await;
    let mut api = tb
        .broker
        .subscribe_internal("$JS.API.>", None, 16)
        .expect("internal sub");
    assert!(tb.broker.has_interest("$JS.API.INFO"));
    // A handler answering requests through Broker::publish.
    let broker = tb.broker.clone();
    tokio::spawn(async move {
        while let Some(m) = api.recv().await {
            if let Some(reply) = m.reply {
                let body = format!("{{\"subject\":\"{}\"}}", m.subject);
                broker.publish(&reply, None, None, body.into());
            }
        }
    });
    let client = tb.client().await;
    let resp = timeout(EVENTUALLY, client.request("$JS.API.INFO", "".into()))
        .await
        .expect("in time")
        .expect("internal handler answers (and counts as interest)");
    assert_eq!(&resp.payload[..], br#"{"subject":"$JS.API.INFO"}"#);

    // Broker::publish reaches plain client subscribers, with headers.
    let mut sub = client.subscribe("deliver.x").await.expect("sub");
    common::sync(&client).await;
    tb.broker.publish(
        "deliver.x",
        Some("ack.1"),
        Some(Bytes::from_static(b"NATS/1.0\r\nA: 1\r\n\r\n")),
        "payload".into(),
    );
    let m = next(&mut sub).await;
    assert_eq!(m.reply.as_deref(), Some("ack.1"));
    assert_eq!(
        m.headers.expect("headers").get("A").map(|v| v.as_str()),
        Some("1")
    );
    assert_eq!(&m.payload[..], b"payload");
}

#[tokio::test]
async fn internal_subscriber_backpressures_only_its_publisher() {
    let tb = TestBroker::start(BrokerConfig::default()).await;
    let mut capture = tb
        .broker
        .subscribe_internal("stream.in", None, 1)
        .expect("internal sub");
    let producer = tb.client().await;
    for i in 0..50u32 {
        producer
            .publish("stream.in", Bytes::copy_from_slice(&i.to_be_bytes()))
            .await
            .expect("pub");
    }
    // While the producer's reader waits for the full channel, others are served.
    common::assert_serving(&tb).await;
    for i in 0..50u32 {
        let m = timeout(EVENTUALLY, capture.recv())
            .await
            .expect("in time")
            .expect("message");
        assert_eq!(&m.payload[..], &i.to_be_bytes());
        assert_ne!(m.client_id, 0);
    }
    drop(capture);
    assert!(!tb.broker.has_interest("stream.in"));
}

#[tokio::test]
async fn server_publishes_into_a_full_internal_subscriber_keep_order() {
    let tb = TestBroker::start(BrokerConfig::default()).await;
    let mut capture = tb
        .broker
        .subscribe_internal("stream.in", None, 2)
        .expect("internal sub");
    // Far more than the channel holds, each expecting a reply (like a publish that
    // waits for its PubAck): none may be lost or reordered.
    for i in 0..200u32 {
        tb.broker.publish(
            "stream.in",
            Some("reply.to"),
            None,
            Bytes::copy_from_slice(&i.to_be_bytes()),
        );
    }
    for i in 0..200u32 {
        let m = timeout(EVENTUALLY, capture.recv())
            .await
            .expect("in time")
            .expect("message");
        assert_eq!(&m.payload[..], &i.to_be_bytes(), "message {i} in order");
        assert_eq!(m.client_id, 0);
    }
    assert_eq!(tb.broker.varz().slow_consumers, 0);
}

#[tokio::test]
async fn server_publishes_without_reply_past_the_backlog_are_dropped_and_counted() {
    let tb = TestBroker::start(BrokerConfig::default()).await;
    let mut capture = tb
        .broker
        .subscribe_internal("events", None, 4)
        .expect("internal sub");
    // 4 fit the channel, 4 the backlog; the next 4 have no reply subject and are
    // dropped; the last 4 carry a reply subject and are kept.
    for i in 0..16u32 {
        let reply = (i >= 12).then_some("reply.to");
        tb.broker.publish(
            "events",
            reply,
            None,
            Bytes::copy_from_slice(&i.to_be_bytes()),
        );
    }
    let mut got = Vec::new();
    for _ in 0..12 {
        let m = timeout(EVENTUALLY, capture.recv())
            .await
            .expect("in time")
            .expect("message");
        got.push(u32::from_be_bytes(
            m.payload[..].try_into().expect("4 bytes"),
        ));
    }
    let expected: Vec<u32> = (0..8).chain(12..16).collect();
    assert_eq!(got, expected);
    assert_eq!(tb.broker.varz().slow_consumers, 1, "one overload episode");
    // Once drained, the subscriber is served again.
    tb.broker
        .publish("events", None, None, Bytes::from_static(b"after"));
    let m = timeout(EVENTUALLY, capture.recv())
        .await
        .expect("in time")
        .expect("message");
    assert_eq!(&m.payload[..], b"after");
}

/// A message of an atomic batch without a reply subject (as forwarded to the produce
/// agent) is not dropped where other server publishes are: losing one fails its
/// whole batch. Past its own larger bound it is dropped and counted too.
#[tokio::test]
async fn batch_messages_without_reply_wait_longer_in_the_backlog() {
    let tb = TestBroker::start(BrokerConfig::default()).await;
    let mut capture = tb
        .broker
        .subscribe_internal("events", None, 1)
        .expect("internal sub");
    let batch_headers = || {
        let mut h = infinistream_protocol::HeaderMap::new();
        h.insert(infinistream_protocol::jsapi::headers::BATCH_ID, "b");
        Some(h.to_bytes())
    };
    // 1 fits the channel, 1 the backlog; a plain message is dropped, batch messages
    // wait up to 64 in the backlog, the 65th is dropped.
    tb.broker
        .publish("events", None, None, Bytes::from_static(b"0"));
    tb.broker
        .publish("events", None, None, Bytes::from_static(b"1"));
    tb.broker
        .publish("events", None, None, Bytes::from_static(b"plain"));
    for i in 0..64u32 {
        tb.broker.publish(
            "events",
            None,
            batch_headers(),
            Bytes::from(format!("b{i}")),
        );
    }
    let mut got = Vec::new();
    for _ in 0..65 {
        let m = timeout(EVENTUALLY, capture.recv())
            .await
            .expect("in time")
            .expect("message");
        got.push(String::from_utf8_lossy(&m.payload).into_owned());
    }
    let expected: Vec<String> = ["0", "1"]
        .into_iter()
        .map(str::to_owned)
        .chain((0..63).map(|i| format!("b{i}")))
        .collect();
    assert_eq!(got, expected);
    assert_eq!(tb.broker.varz().slow_consumers, 1, "one overload episode");
}

#[tokio::test]
async fn connection_name_in_connz() {
    let tb = TestBroker::start(BrokerConfig::default()).await;
    let client = async_nats::ConnectOptions::new()
        .name("app,infinistream_proxy_target=proxy-produce")
        .connect(tb.url())
        .await
        .expect("connect");
    let _sub = client.subscribe("a").await.expect("sub");
    common::sync(&client).await;
    let connz = tb.broker.connz();
    assert_eq!(connz.num_connections, 1);
    let c = &connz.connections[0];
    assert_eq!(c.name, "app,infinistream_proxy_target=proxy-produce");
    assert_eq!(c.lang, "rust");
    // "a", plus the sync round trip's inbox unless its UNSUB already arrived.
    assert!(c.subscriptions >= 1);
}

#[tokio::test]
async fn graceful_shutdown_closes_clients() {
    let tb = TestBroker::start(BrokerConfig::default()).await;
    let (mut raw, info) = Raw::connect(tb.addr).await;
    assert_eq!(
        info.version,
        infinistream_broker::DEFAULT_ADVERTISED_VERSION
    );
    assert_eq!(info.proto, 1);
    assert!(info.headers);
    assert!(info.client_id.is_some());
    assert_eq!(info.server_id.len(), 56);
    raw.send(b"CONNECT {\"verbose\":true}\r\nSUB a 1\r\nPUB a 2\r\nhi\r\n")
        .await;
    raw.expect(|op| matches!(op, ServerOp::Msg(m) if &m.payload[..] == b"hi"))
        .await;
    tb.shutdown.cancel();
    let _ = raw.until_closed().await;
    timeout(Duration::from_secs(10), tb.handle)
        .await
        .expect("serve returns")
        .expect("join")
        .expect("serve ok");
}

#[tokio::test]
async fn stale_connection_after_unanswered_pings() {
    let tb = TestBroker::start(BrokerConfig {
        ping_interval: Duration::from_millis(20),
        max_pings_out: 2,
        ..BrokerConfig::default()
    })
    .await;
    let (mut raw, _) = Raw::connect(tb.addr).await;
    raw.send(b"CONNECT {}\r\n").await;
    let ops = raw.until_closed().await;
    assert!(ops.iter().filter(|o| matches!(o, ServerOp::Ping)).count() >= 2);
    assert!(ops.iter().any(is_err("Stale Connection")), "{ops:?}");
}

/// A consumer's batch through `Broker::deliveries`: every message reaches the
/// deliver subject's subscriber in order with its own subject and reply, a batch past
/// the mid-batch wake size included, and an auto-unsubscribe max still cuts it off.
#[tokio::test]
async fn deliveries_reach_the_subscriber_in_order_and_honour_max() {
    let tb = TestBroker::start(BrokerConfig::default()).await;
    let client = tb.client().await;
    let mut inbox = client.subscribe("_INBOX.batch").await.expect("sub");
    let mut limited = client.subscribe("_INBOX.limited").await.expect("sub");
    limited.unsubscribe_after(2).await.expect("unsub");
    common::sync(&client).await;

    let payload = Bytes::from(vec![7u8; 1024]);
    let n = (infinistream_broker::WAKE_EVERY_BYTES / 1024) as usize * 2 + 3;
    {
        let mut d = tb.broker.deliveries("_INBOX.batch");
        for i in 0..n {
            d.send(
                &format!("orders.{i}"),
                Some(&format!("ack.{i}")),
                None,
                payload.clone(),
            );
        }
        let mut d = tb.broker.deliveries("_INBOX.limited");
        for i in 0..5 {
            d.send("kv.key", None, None, Bytes::from(i.to_string()));
        }
    }
    for i in 0..n {
        let m = next(&mut inbox).await;
        assert_eq!(m.subject.as_str(), format!("orders.{i}"));
        assert_eq!(m.reply.as_deref(), Some(format!("ack.{i}").as_str()));
        assert_eq!(m.payload.len(), 1024);
    }
    for i in 0..2 {
        let m = next(&mut limited).await;
        assert_eq!(
            (m.subject.as_str(), m.payload),
            ("kv.key", Bytes::from(i.to_string()))
        );
    }
    assert!(
        timeout(EVENTUALLY, limited.next())
            .await
            .expect("ends")
            .is_none(),
        "the subscription ends after its max"
    );
    assert!(!tb.broker.has_interest("_INBOX.limited"));
}
