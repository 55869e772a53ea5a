//! Routing by connection name at the protocol level: `connect_urls` from the cluster
//! view, async `INFO` on changes, lame-duck redirects and refused suffixes.

mod common;

use common::{Raw, TestBroker, assert_serving};
use infinistream_broker::BrokerConfig;
use infinistream_broker::routing::{AgentEndpoint, ClusterView, LocalRoles};
use infinistream_protocol::{Info, ServerOp};

fn agent(url: &str, zone: &str, produce: bool, consume: bool) -> AgentEndpoint {
    AgentEndpoint {
        agent_id: String::new(),
        client_url: url.to_owned(),
        zone: zone.to_owned(),
        produce,
        consume,
    }
}

/// A produce-only broker in zone `a` that knows a produce agent (itself), consume
/// agents in zones `a` and `b`, and a jobs-only agent.
async fn produce_only() -> TestBroker {
    let tb = TestBroker::start(BrokerConfig {
        roles: LocalRoles {
            produce: true,
            consume: false,
            zone: "a".to_owned(),
            agent_id: String::new(),
        },
        ..BrokerConfig::default()
    })
    .await;
    tb.broker.set_cluster(ClusterView::new(vec![
        agent(&tb.addr.to_string(), "a", true, false),
        agent("10.0.0.2:4222", "a", false, true),
        agent("10.0.0.3:4222", "b", false, true),
        agent("10.0.0.4:4222", "a", false, false),
    ]));
    tb
}

fn connect_line(name: &str) -> Vec<u8> {
    format!("CONNECT {{\"verbose\":false,\"pedantic\":false,\"protocol\":1,\"headers\":true,\"name\":\"{name}\"}}\r\nPING\r\n").into_bytes()
}

fn info_of(op: &ServerOp) -> Option<&Info> {
    match op {
        ServerOp::Info(info) => Some(info),
        _ => None,
    }
}

#[tokio::test]
async fn first_info_lists_every_proxy_agent() {
    let tb = produce_only().await;
    let (_raw, info) = Raw::connect(tb.addr).await;
    let mut want = vec![
        "10.0.0.2:4222".to_owned(),
        "10.0.0.3:4222".to_owned(),
        tb.addr.to_string(),
    ];
    want.sort();
    assert_eq!(info.connect_urls, want, "jobs-only agents are left out");
    assert!(!info.ldm);
    assert_eq!(tb.broker.varz().connect_urls, want);
}

#[tokio::test]
async fn wrong_role_gets_pong_then_lame_duck_info_then_close() {
    let tb = produce_only().await;
    let (mut raw, _) = Raw::connect(tb.addr).await;
    raw.send(&connect_line("app,infinistream_proxy_target=proxy-consume"))
        .await;
    let ops = raw.until_closed().await;
    assert!(matches!(ops.first(), Some(ServerOp::Pong)), "{ops:?}");
    let info = ops.iter().find_map(info_of).expect("lame-duck INFO");
    assert!(info.ldm, "{info:?}");
    assert_eq!(info.connect_urls, vec!["10.0.0.2:4222", "10.0.0.3:4222"]);
    assert_serving(&tb).await;
}

#[tokio::test]
async fn wrong_zone_is_redirected_to_the_zone() {
    let tb = TestBroker::start(BrokerConfig {
        roles: LocalRoles {
            produce: false,
            consume: true,
            zone: "a".to_owned(),
            agent_id: String::new(),
        },
        ..BrokerConfig::default()
    })
    .await;
    tb.broker.set_cluster(ClusterView::new(vec![
        agent(&tb.addr.to_string(), "a", false, true),
        agent("10.0.0.3:4222", "b", false, true),
    ]));
    let (mut raw, _) = Raw::connect(tb.addr).await;
    raw.send(&connect_line(
        "app,infinistream_az=b,infinistream_proxy_target=proxy-consume",
    ))
    .await;
    let ops = raw.until_closed().await;
    let info = ops.iter().find_map(info_of).expect("lame-duck INFO");
    assert!(info.ldm);
    assert_eq!(info.connect_urls, vec!["10.0.0.3:4222"]);

    // A zone nobody serves falls back to any zone: this agent keeps the client (its
    // first INFO already named both consume agents, so no second INFO is needed).
    let (mut raw, first) = Raw::connect(tb.addr).await;
    assert_eq!(first.connect_urls.len(), 2);
    raw.send(&connect_line(
        "app,infinistream_az=c,infinistream_proxy_target=proxy-consume",
    ))
    .await;
    let op = raw
        .expect(|op| matches!(op, ServerOp::Info(_) | ServerOp::Pong))
        .await;
    assert!(matches!(op, ServerOp::Pong), "{op:?}");
    raw.send(b"PING\r\n").await;
    raw.expect(|op| matches!(op, ServerOp::Pong)).await;
}

#[tokio::test]
async fn right_role_gets_filtered_urls_and_updates() {
    let tb = produce_only().await;
    let (mut raw, _) = Raw::connect(tb.addr).await;
    raw.send(&connect_line("app,infinistream_proxy_target=proxy-produce"))
        .await;
    // nats-server never sends an INFO between CONNECT and the handshake's PONG
    // (nats.go fails on it): the PONG comes first, the narrowed INFO right after.
    let op = raw
        .expect(|op| matches!(op, ServerOp::Info(_) | ServerOp::Pong))
        .await;
    assert!(matches!(op, ServerOp::Pong), "PONG before any INFO: {op:?}");
    let op = raw.expect(|op| matches!(op, ServerOp::Info(_))).await;
    let info = info_of(&op).expect("INFO");
    assert!(!info.ldm);
    assert_eq!(info.connect_urls, vec![tb.addr.to_string()]);

    // A second produce agent joins: an async INFO names both; an unrelated change
    // (a consume agent leaves) sends nothing to this client.
    tb.broker.set_cluster(ClusterView::new(vec![
        agent(&tb.addr.to_string(), "a", true, false),
        agent("10.0.0.5:4222", "b", true, false),
        agent("10.0.0.2:4222", "a", false, true),
        agent("10.0.0.3:4222", "b", false, true),
    ]));
    let op = raw.expect(|op| matches!(op, ServerOp::Info(_))).await;
    let mut want = vec!["10.0.0.5:4222".to_owned(), tb.addr.to_string()];
    want.sort();
    assert_eq!(info_of(&op).expect("INFO").connect_urls, want);
    tb.broker.set_cluster(ClusterView::new(vec![
        agent(&tb.addr.to_string(), "a", true, false),
        agent("10.0.0.5:4222", "b", true, false),
        agent("10.0.0.2:4222", "a", false, true),
    ]));
    raw.send(b"PING\r\n").await;
    let op = raw
        .expect(|op| matches!(op, ServerOp::Info(_) | ServerOp::Pong))
        .await;
    assert!(matches!(op, ServerOp::Pong), "no INFO expected: {op:?}");
}

#[tokio::test]
async fn a_redirected_connection_is_served_until_it_closes() {
    let tb = produce_only().await;
    let client = tb.client().await;
    let mut sub = client.subscribe("orders").await.expect("subscribe");
    client.flush().await.expect("flush");
    let (mut raw, _) = Raw::connect(tb.addr).await;
    // Clients send their first requests right after the handshake's PONG, before they
    // read the lame-duck INFO: those are served (as nats-server serves a lame-duck
    // server's clients until it closes them), not dropped with the connection.
    raw.send(b"CONNECT {\"verbose\":false,\"pedantic\":false,\"protocol\":1,\"name\":\"x,infinistream_proxy_target=proxy-consume\"}\r\nPING\r\nPUB orders 2\r\nhi\r\n").await;
    let ops = raw.until_closed().await;
    assert!(matches!(ops.first(), Some(ServerOp::Pong)), "{ops:?}");
    assert!(
        ops.iter().find_map(info_of).is_some_and(|i| i.ldm),
        "{ops:?}"
    );
    use futures::StreamExt;
    let msg = tokio::time::timeout(common::EVENTUALLY, sub.next())
        .await
        .expect("delivery")
        .expect("message");
    assert_eq!(&msg.payload[..], b"hi");
}

#[tokio::test]
async fn bad_suffixes_get_err_and_close() {
    let tb = produce_only().await;
    for (name, needle) in [
        (
            "app,infinistream_proxy_target=proxy",
            "unknown infinistream_proxy_target `proxy` (expected proxy-produce or proxy-consume)",
        ),
        ("app,infinistream_az=", "infinistream_az is empty"),
        (
            "app,infinistream_target=proxy-consume",
            "unknown key `infinistream_target`",
        ),
    ] {
        let (mut raw, _) = Raw::connect(tb.addr).await;
        raw.send(&connect_line(name)).await;
        let ops = raw.until_closed().await;
        assert!(
            ops.iter()
                .any(|op| matches!(op, ServerOp::Err(e) if e.contains(needle))),
            "{name}: {ops:?}"
        );
        assert!(
            !ops.iter().any(|op| matches!(op, ServerOp::Pong)),
            "{ops:?}"
        );
    }
    assert_serving(&tb).await;
}

#[tokio::test]
async fn standalone_broker_never_redirects() {
    // No cluster view and the default roles: every suffix is served here.
    let tb = TestBroker::start(BrokerConfig::default()).await;
    let (mut raw, info) = Raw::connect(tb.addr).await;
    assert!(info.connect_urls.is_empty());
    raw.send(&connect_line("app,infinistream_proxy_target=proxy-consume"))
        .await;
    raw.expect(|op| matches!(op, ServerOp::Pong)).await;
    assert!(tb.broker.send_client_error(
        tb.broker.connz().connections[0].cid,
        "Permissions Violation for Publish to \"x\""
    ));
    let op = raw.expect(|op| matches!(op, ServerOp::Err(_))).await;
    assert!(matches!(op, ServerOp::Err(e) if e.contains("Permissions Violation")));
    raw.send(b"PING\r\n").await;
    raw.expect(|op| matches!(op, ServerOp::Pong)).await;
}
