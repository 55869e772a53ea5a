//! Monitoring endpoints over plain HTTP.

mod common;

use std::sync::Arc;

use common::{TestBroker, http_get};
use infinistream_broker::{BrokerConfig, monitor};
use serde_json::Value;

async fn serve_monitor(tb: &TestBroker, extra: monitor::MetricsFn) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let app = monitor::router(tb.broker.clone(), extra);
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

#[tokio::test]
async fn endpoints() {
    let tb = TestBroker::start(BrokerConfig {
        server_name: "mon-test".into(),
        ..BrokerConfig::default()
    })
    .await;
    let client = async_nats::ConnectOptions::new()
        .name("watcher")
        .connect(tb.url())
        .await
        .expect("connect");
    let _sub = client.subscribe("m").await.expect("sub");
    client.publish("m", "12345".into()).await.expect("pub");
    common::sync(&client).await;

    let http = serve_monitor(
        &tb,
        Arc::new(|| "# TYPE agent_up gauge\nagent_up 1\n# EOF\n".to_owned()),
    )
    .await;

    let (status, body) = http_get(http, "/healthz").await;
    assert!(status.contains("200"), "{status}");
    let v: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(v["status"], "ok");

    let (_, body) = http_get(http, "/varz").await;
    let v: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(v["server_name"], "mon-test");
    assert_eq!(v["server_id"], tb.broker.server_id());
    assert_eq!(
        v["version"],
        infinistream_broker::DEFAULT_ADVERTISED_VERSION
    );
    assert_eq!(v["connections"], 1);
    assert!(v["in_msgs"].as_u64().expect("in_msgs") >= 1);
    assert!(v["out_msgs"].as_u64().expect("out_msgs") >= 1);
    assert!(v["mem"].as_u64().expect("mem") > 0);
    assert!(v["uptime"].as_str().expect("uptime").ends_with('s'));
    for field in [
        "in_bytes",
        "out_bytes",
        "total_connections",
        "slow_consumers",
        "cpu",
        "start",
        "now",
        "max_payload",
        "subscriptions",
    ] {
        assert!(v.get(field).is_some(), "varz lacks {field}");
    }

    let (_, body) = http_get(http, "/connz").await;
    let v: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(v["num_connections"], 1);
    let c = &v["connections"][0];
    assert_eq!(c["name"], "watcher");
    assert_eq!(c["lang"], "rust");
    assert!(c["subscriptions"].as_u64().expect("subs") >= 1);
    for field in [
        "cid",
        "ip",
        "port",
        "in_msgs",
        "out_msgs",
        "in_bytes",
        "out_bytes",
        "pending_bytes",
        "version",
    ] {
        assert!(c.get(field).is_some(), "connz lacks {field}");
    }

    let (_, body) = http_get(http, "/metrics").await;
    assert!(body.contains("agent_up 1"), "{body}");
    assert!(body.contains("infinistream_broker_in_msgs_total"), "{body}");
    assert_eq!(body.matches("# EOF").count(), 1, "{body}");
}

#[tokio::test]
async fn metrics_in_external_registry() {
    let tb = TestBroker::start(BrokerConfig::default()).await;
    // The agent's registry carries the product prefix.
    let mut registry = prometheus_client::registry::Registry::with_prefix("infinistream");
    tb.broker.register_metrics(&mut registry);
    let registry = Arc::new(registry);
    let http = serve_monitor(
        &tb,
        Arc::new(move || {
            let mut s = String::new();
            prometheus_client::encoding::text::encode(&mut s, &registry).expect("encode");
            s
        }),
    )
    .await;
    let client = tb.client().await;
    client.publish("x", "1".into()).await.expect("pub");
    common::sync(&client).await;
    let (_, body) = http_get(http, "/metrics").await;
    assert_eq!(
        body.matches("# TYPE infinistream_broker_in_msgs counter")
            .count(),
        1,
        "{body}"
    );
    assert!(
        !body.contains("infinistream_broker_in_msgs_total 0\n"),
        "{body}"
    );
}
