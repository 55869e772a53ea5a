//! The monitoring data in nats-server's JSON shape (`/varz`, `/connz`) and the
//! `/metrics` text; the agent serves them over HTTP (its tests read them there).

mod common;

use common::TestBroker;
use infinistream_broker::BrokerConfig;
use serde_json::Value;

fn json(value: impl serde::Serialize) -> Value {
    serde_json::to_value(value).expect("monitoring documents serialize")
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

    let v = json(tb.broker.varz());
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

    let v = json(tb.broker.connz());
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

    let body = tb
        .broker
        .metrics_text("# TYPE agent_up gauge\nagent_up 1\n# EOF\n");
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
    let client = tb.client().await;
    client.publish("x", "1".into()).await.expect("pub");
    common::sync(&client).await;
    let mut extra = String::new();
    prometheus_client::encoding::text::encode(&mut extra, &registry).expect("encode");
    let body = tb.broker.metrics_text(&extra);
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
