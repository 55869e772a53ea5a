//! `GET /jsz` on the monitoring port, against the JetStream API's own answers.
//!
//! A standalone control plane, an agent running the proxy roles (clients talk to it)
//! and a jobs-only agent (no client API traffic). Streams, consumers and messages are
//! made with unmodified async-nats; every `/jsz` number must equal what STREAM.INFO /
//! CONSUMER.INFO / `$JS.API.INFO` say, and the API counters must count exactly the
//! requests made.

#![allow(clippy::unwrap_used)] // tests may unwrap (rules)

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use serde_json::{Value, json};

/// `/jsz?streams=true&consumers=true&config=true&raft=true` of nats-server 2.15.1.
const NATS_SERVER_JSZ: &str =
    include_str!("../../protocol/tests/jsapi_golden/jsz_nats_server_2_15_1.txt");

#[path = "support/procs.rs"]
mod procs;
use procs::{http_get, key_paths, remote_agent_cmd, start_agent};

/// Bound for "this should happen"; never a timing assertion.
const EVENTUALLY: Duration = Duration::from_secs(30);

async fn jsz(addr: SocketAddr, query: &str) -> Value {
    let (status, body) = http_get(addr, &format!("/jsz{query}")).await;
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

/// One `$JS.API` request; counts it in `sent`.
async fn api(client: &async_nats::Client, sent: &mut u64, subject: &str, body: Value) -> Value {
    *sent += 1;
    let reply = client
        .request(
            format!("$JS.API.{subject}"),
            Bytes::from(serde_json::to_vec(&body).unwrap()),
        )
        .await
        .unwrap();
    serde_json::from_slice(&reply.payload).unwrap()
}

#[tokio::test]
async fn cluster_jsz_matches_stream_and_consumer_info() {
    let dir = tempfile::tempdir().unwrap();
    let (cp, bucket) = procs::embedded_control_plane(dir.path());
    let agent = |name: &str, roles: &str| {
        start_agent(remote_agent_cmd(
            &dir.path().join(name),
            &cp,
            &bucket,
            &["--roles", roles],
        ))
    };
    let (proxy, jobs) = (agent("p", "proxy"), agent("j", "jobs"));

    // Before anything: no streams, this agent's API counters as they are.
    let empty = jsz(proxy.http, "").await;
    assert_eq!(empty["streams"], 0);
    assert_eq!(empty["messages"], 0);
    assert_eq!(empty["accounts"], 1);
    assert_eq!(empty["total"], 1);
    assert!(empty.get("account_details").is_none());
    let base_total = empty["api"]["total"].as_u64().unwrap();
    let base_errors = empty["api"]["errors"].as_u64().unwrap();

    let client = async_nats::connect(format!("nats://{}", proxy.client))
        .await
        .unwrap();
    let js = async_nats::jetstream::new(client.clone());
    let mut sent = 0u64;
    let created = api(
        &client,
        &mut sent,
        "STREAM.CREATE.ORDERS",
        json!({"name": "ORDERS", "subjects": ["orders.>"], "max_bytes": 1_000_000}),
    )
    .await;
    assert!(created.get("error").is_none(), "{created}");
    let created = api(
        &client,
        &mut sent,
        "STREAM.CREATE.EVENTS",
        json!({"name": "EVENTS", "subjects": ["events.>"]}),
    )
    .await;
    assert!(created.get("error").is_none(), "{created}");
    for i in 0..5u32 {
        js.publish(format!("orders.{i}"), format!("order-{i}").into())
            .await
            .unwrap()
            .await
            .unwrap();
    }
    for i in 0..3u32 {
        js.publish(format!("events.{}", i % 2), "x".repeat(100).into())
            .await
            .unwrap()
            .await
            .unwrap();
    }
    for (stream, name) in [("ORDERS", "C1"), ("ORDERS", "C2"), ("EVENTS", "E1")] {
        let created = api(
            &client,
            &mut sent,
            &format!("CONSUMER.CREATE.{stream}.{name}"),
            json!({"stream_name": stream, "config": {"durable_name": name, "ack_policy": "explicit"}}),
        )
        .await;
        assert!(created.get("error").is_none(), "{created}");
    }

    // Give C1 some state: two deliveries (one pull request), one confirmed ack.
    let inbox = client.new_inbox();
    let mut deliveries = client.subscribe(inbox.clone()).await.unwrap();
    sent += 1;
    client
        .publish_with_reply(
            "$JS.API.CONSUMER.MSG.NEXT.ORDERS.C1",
            inbox,
            Bytes::from_static(br#"{"batch":2,"expires":10000000000}"#),
        )
        .await
        .unwrap();
    let mut got = Vec::new();
    while got.len() < 2 {
        let msg = tokio::time::timeout(EVENTUALLY, deliveries.next())
            .await
            .unwrap()
            .unwrap();
        if msg.reply.is_some() && !msg.payload.is_empty() {
            got.push(msg);
        }
    }
    client
        .request(got[0].reply.clone().unwrap(), Bytes::from_static(b"+ACK"))
        .await
        .unwrap();

    // One provoked error.
    let missing = api(&client, &mut sent, "STREAM.INFO.NOPE", json!({})).await;
    assert_eq!(missing["error"]["err_code"], 10059);

    // The JetStream API's own view.
    let orders = api(&client, &mut sent, "STREAM.INFO.ORDERS", json!({})).await;
    let events = api(&client, &mut sent, "STREAM.INFO.EVENTS", json!({})).await;
    let mut consumer_infos = Vec::new();
    for (stream, name) in [("ORDERS", "C1"), ("ORDERS", "C2"), ("EVENTS", "E1")] {
        consumer_infos.push(
            api(
                &client,
                &mut sent,
                &format!("CONSUMER.INFO.{stream}.{name}"),
                json!({}),
            )
            .await,
        );
    }
    assert_eq!(consumer_infos[0]["num_ack_pending"], 1);
    assert_eq!(consumer_infos[0]["delivered"]["stream_seq"], 2);
    let account = api(&client, &mut sent, "INFO", json!({})).await;
    let messages = orders["state"]["messages"].as_u64().unwrap()
        + events["state"]["messages"].as_u64().unwrap();
    let bytes =
        orders["state"]["bytes"].as_u64().unwrap() + events["state"]["bytes"].as_u64().unwrap();
    assert_eq!(messages, 8);

    // Top level: exact totals on both agents; this agent's counters count our requests.
    for (agent, counts_requests) in [(&proxy, true), (&jobs, false)] {
        let doc = jsz(agent.http, "").await;
        assert_eq!(doc["streams"], 2, "{doc}");
        assert_eq!(doc["consumers"], 3);
        assert_eq!(doc["messages"], messages);
        assert_eq!(doc["bytes"], bytes);
        assert_eq!(doc["storage"], bytes);
        assert_eq!(doc["storage"], account["storage"]);
        assert_eq!(doc["memory"], 0);
        assert_eq!(doc["reserved_storage"], 1_000_000);
        assert_eq!(doc["config"]["sync_always"], true);
        assert!(doc.get("account_details").is_none());
        if counts_requests {
            assert_eq!(doc["api"]["total"], base_total + sent, "{doc}");
            assert_eq!(doc["api"]["errors"], base_errors + 1, "{doc}");
            assert_eq!(account["api"]["total"], base_total + sent);
        }
    }

    // Details without configs: stream state and consumer state as the API reports them.
    let doc = jsz(proxy.http, "?streams=true&consumers=true").await;
    let acc = &doc["account_details"][0];
    assert_eq!(acc["name"], "$G");
    assert_eq!(acc["id"], "$G");
    assert_eq!(acc["storage"], bytes);
    assert_eq!(acc["api"]["total"], doc["api"]["total"]);
    let details = acc["stream_detail"].as_array().unwrap();
    let names: Vec<&str> = details
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["EVENTS", "ORDERS"]);
    for (detail, info) in details.iter().zip([&events, &orders]) {
        assert_eq!(detail["state"], info["state"]);
        assert_eq!(detail["created"], info["created"]);
        assert_eq!(detail["cluster"], info["cluster"]);
        assert!(detail.get("config").is_none());
    }
    let detail_consumers: Vec<&Value> = details
        .iter()
        .flat_map(|d| d["consumer_detail"].as_array().unwrap())
        .collect();
    assert_eq!(detail_consumers.len(), 3);
    for info in &consumer_infos {
        let found = detail_consumers
            .iter()
            .find(|c| c["name"] == info["name"] && c["stream_name"] == info["stream_name"])
            .unwrap();
        for key in [
            "created",
            "delivered",
            "ack_floor",
            "num_ack_pending",
            "num_redelivered",
            "num_pending",
        ] {
            assert_eq!(found[key], info[key], "{key} of {}", info["name"]);
        }
        assert!(found.get("config").is_none());
    }

    // config=true adds the configs STREAM.INFO / CONSUMER.INFO report.
    let doc = jsz(proxy.http, "?consumers=1&config=true").await;
    let details = doc["account_details"][0]["stream_detail"]
        .as_array()
        .unwrap();
    // As nats-server, /jsz shows the stored metadata (`_nats.req.level`); INFO answers
    // add the server's version and level (`_nats.ver`, `_nats.level`).
    let stored = |config: &Value| {
        let mut config = config.clone();
        if let Some(metadata) = config["metadata"].as_object_mut() {
            metadata.remove("_nats.ver");
            metadata.remove("_nats.level");
        }
        config
    };
    for (detail, info) in details.iter().zip([&events, &orders]) {
        assert_eq!(detail["config"], stored(&info["config"]));
        assert_eq!(detail["config"]["metadata"]["_nats.req.level"], "0");
    }
    let orders_consumers = details[1]["consumer_detail"].as_array().unwrap();
    assert_eq!(
        orders_consumers[0]["config"],
        stored(&consumer_infos[0]["config"])
    );
    assert_eq!(
        orders_consumers[1]["config"],
        stored(&consumer_infos[1]["config"])
    );

    // The same keys as nats-server's document for the same options.
    let ours = jsz(
        proxy.http,
        "?streams=true&consumers=true&config=true&raft=true",
    )
    .await;
    let theirs: Value = serde_json::from_str(
        &NATS_SERVER_JSZ
            .lines()
            .filter(|l| !l.starts_with("//"))
            .collect::<String>(),
    )
    .unwrap();
    let (ours_keys, theirs_keys) = (key_paths(&ours), key_paths(&theirs));
    let missing: Vec<&String> = theirs_keys.difference(&ours_keys).collect();
    let extra: Vec<&String> = ours_keys.difference(&theirs_keys).collect();
    // Left out on purpose: no local store dir or fsync interval, no strict mode or
    // default consumer limit configured.
    let allowed_missing = [
        "config.store_dir",
        "config.strict",
        "config.sync_interval",
        "limits.default_max_consumers",
    ];
    // sync_always instead of sync_interval; last_active because C1 has deliveries
    // (nats-server prints it too once a consumer delivered, the capture had none).
    let allowed_extra = [
        "config.sync_always",
        "account_details.stream_detail.consumer_detail.delivered.last_active",
        "account_details.stream_detail.consumer_detail.ack_floor.last_active",
    ];
    for key in &missing {
        assert!(
            allowed_missing.contains(&key.as_str()),
            "missing {key}: {missing:?}"
        );
    }
    for key in &extra {
        assert!(
            allowed_extra.contains(&key.as_str()),
            "extra {key}: {extra:?}"
        );
    }

    // Query options as nats-server reads them.
    let doc = jsz(proxy.http, "?acc=%24G").await;
    assert_eq!(doc["account_details"][0]["name"], "$G");
    assert!(doc["account_details"][0].get("stream_detail").is_none());
    assert!(
        jsz(proxy.http, "?acc=OTHER")
            .await
            .get("account_details")
            .is_none()
    );
    assert!(
        jsz(proxy.http, "?accounts=true&offset=1")
            .await
            .get("account_details")
            .is_none()
    );
    let doc = jsz(proxy.http, "?streams=true").await;
    assert!(
        doc["account_details"][0]["stream_detail"][0]
            .get("consumer_detail")
            .is_none()
    );
    let doc = jsz(jobs.http, "?raft=true").await;
    assert_eq!(doc["streams_leader"], 2);
    assert_eq!(doc["consumers_leader"], 3);
    let (status, body) = http_get(proxy.http, "/jsz?streams=maybe").await;
    assert_eq!(status, 400);
    assert!(body.contains("'streams'"), "{body}");
    let (status, _) = http_get(proxy.http, "/jsz?limit=abc").await;
    assert_eq!(status, 400);

    // The jobs-only agent lists the same details from the control plane.
    let doc = jsz(jobs.http, "?consumers=true").await;
    let details = doc["account_details"][0]["stream_detail"]
        .as_array()
        .unwrap();
    assert_eq!(details[1]["state"], orders["state"]);
    assert_eq!(
        details[1]["consumer_detail"][0]["num_ack_pending"],
        consumer_infos[0]["num_ack_pending"]
    );
}
