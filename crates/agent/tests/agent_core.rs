//! The `infinistream agent` as a whole: an in-process agent on port 0 serves core NATS
//! to async-nats, reports on its monitoring port, answers JetStream with a clear error,
//! and the binary refuses bad configuration with a message naming the setting.

use std::collections::BTreeSet;
use std::time::Duration;

use futures::StreamExt;
use infinistream_agent::AgentHandle;
use infinistream_config::{RawAgentConfig, RolesValue};

#[path = "support/in_process.rs"]
mod in_process;
#[path = "support/procs.rs"]
mod procs;
use procs::http_get;

async fn start_agent(dir: &tempfile::TempDir) -> AgentHandle {
    in_process::start(RawAgentConfig {
        server_name: Some("test-agent".into()),
        batch_write: None,
        ..in_process::local(dir.path())
    })
    .await
}

#[tokio::test]
async fn core_pub_sub_through_the_agent() {
    let dir = tempfile::tempdir().expect("tempdir");
    let agent = start_agent(&dir).await;
    let url = format!("nats://{}", agent.client_addr());
    let client = async_nats::connect(&url).await.expect("connect");
    let mut sub = client.subscribe("orders.>").await.expect("subscribe");
    client.flush().await.expect("flush");
    for i in 0..100u32 {
        client
            .publish(format!("orders.{i}"), i.to_string().into())
            .await
            .expect("publish");
    }
    for i in 0..100u32 {
        let msg = tokio::time::timeout(Duration::from_secs(10), sub.next())
            .await
            .expect("message in time")
            .expect("subscription open");
        assert_eq!(msg.subject.as_str(), format!("orders.{i}"));
        assert_eq!(msg.payload, i.to_string().as_bytes());
    }
    let info = client.server_info();
    assert_eq!(info.server_name, "test-agent");
    assert!(info.headers);
    agent.stop();
    agent.wait().await.expect("clean shutdown");
}

#[tokio::test]
async fn monitoring_endpoints_answer() {
    let dir = tempfile::tempdir().expect("tempdir");
    let agent = start_agent(&dir).await;
    let client = async_nats::connect(format!("nats://{}", agent.client_addr()))
        .await
        .expect("connect");
    client.publish("a.b", "x".into()).await.expect("publish");
    client.flush().await.expect("flush");

    let (status, body) = http_get(agent.http_addr(), "/healthz").await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = http_get(agent.http_addr(), "/varz").await;
    assert_eq!(status, 200);
    let varz: serde_json::Value = serde_json::from_str(&body).expect("varz is JSON");
    assert_eq!(varz["server_name"], "test-agent");
    assert!(
        varz["connections"].as_u64().expect("connections") >= 1,
        "{varz}"
    );
    assert!(varz["in_msgs"].as_u64().expect("in_msgs") >= 1, "{varz}");
    let (status, body) = http_get(agent.http_addr(), "/connz").await;
    assert_eq!(status, 200);
    let connz: serde_json::Value = serde_json::from_str(&body).expect("connz is JSON");
    assert!(connz["num_connections"].as_u64().expect("num_connections") >= 1);
    let (status, body) = http_get(agent.http_addr(), "/metrics").await;
    assert_eq!(status, 200);
    assert!(body.contains("infinistream_"), "{body}");
}

#[tokio::test]
async fn unbuilt_jetstream_features_get_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let agent = start_agent(&dir).await;
    let client = async_nats::connect(format!("nats://{}", agent.client_addr()))
        .await
        .expect("connect");
    let reply = tokio::time::timeout(
        Duration::from_secs(10),
        client.request(
            "$JS.API.STREAM.SNAPSHOT.ORDERS",
            r#"{"deliver_subject":"snap.inbox"}"#.into(),
        ),
    )
    .await
    .expect("answered in time")
    .expect("a reply, not no-responders");
    let body: serde_json::Value = serde_json::from_slice(&reply.payload).expect("JSON");
    assert_eq!(
        body["type"], "io.nats.jetstream.api.v1.stream_snapshot_response",
        "{body}"
    );
    assert_eq!(body["error"]["code"], 400, "{body}");
    assert_eq!(body["error"]["err_code"], 10003, "{body}");
    let description = body["error"]["description"].as_str().expect("description");
    assert!(
        description.contains("not supported by InfiniStream yet"),
        "{description}"
    );
}

#[test]
fn binary_refuses_bad_settings_with_named_errors() {
    let bin = env!("CARGO_BIN_EXE_infinistream");
    type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str);
    let cases: &[Case<'_>] = &[
        (
            &["agent", "--batch-write", "20"],
            &[],
            "INFINISTREAM_BATCH_WRITE must be between 50 and 500 ms, got 20",
        ),
        (
            &["agent"],
            &[("INFINISTREAM_BATCH_WRITE", "900")],
            "INFINISTREAM_BATCH_WRITE must be between 50 and 500 ms, got 900",
        ),
        (
            &["agent", "--roles", "proxy,compactor"],
            &[],
            "got unknown role `compactor`",
        ),
        (
            &["agent", "--bucket", "ftp://nope"],
            &[],
            "INFINISTREAM_BUCKET_NAME must be a URL",
        ),
        (
            &["agent", "--tls-cert", "cert.pem"],
            &[],
            "INFINISTREAM_TLS_CERT and INFINISTREAM_TLS_KEY must be set together",
        ),
        (
            &["agent", "--tls-ca", "ca.pem"],
            &[],
            "INFINISTREAM_TLS_CA needs INFINISTREAM_TLS_CERT",
        ),
        (
            &[
                "agent",
                "-p",
                "0",
                "-m",
                "0",
                "--tls-cert",
                "/nonexistent/cert.pem",
                "--tls-key",
                "/nonexistent/key.pem",
            ],
            &[],
            "/nonexistent/cert.pem",
        ),
    ];
    let dir = tempfile::tempdir().expect("tempdir");
    for (args, env, expected) in cases {
        let output = std::process::Command::new(bin)
            .args(*args)
            .current_dir(dir.path())
            .envs(env.iter().copied())
            .env("RUST_LOG", "off")
            .output()
            .expect("run the binary");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{args:?} should fail");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
}

/// A JetStream publish and a core round trip over TLS with mutual authentication: the
/// agent's TLS settings reach its listener.
#[tokio::test]
async fn tls_clients_publish_to_jetstream() {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    // The test binary links ring and aws-lc-rs, as the agent binary does (whose main
    // picks ring the same way): async-nats' TLS client asks for the process default.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().expect("tempdir");
    let pem = |name: &str, text: String| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).expect("write pem");
        path
    };
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_key = KeyPair::generate().expect("key");
    let ca = pem("ca.pem", ca_params.self_signed(&ca_key).expect("ca").pem());
    let issuer = Issuer::new(ca_params, ca_key);
    let signed = |names: Vec<String>, stem: &str| {
        let key = KeyPair::generate().expect("key");
        let cert = CertificateParams::new(names)
            .expect("params")
            .signed_by(&key, &issuer)
            .expect("signed");
        (
            pem(&format!("{stem}.pem"), cert.pem()),
            pem(&format!("{stem}-key.pem"), key.serialize_pem()),
        )
    };
    let (server_cert, server_key) = signed(vec!["127.0.0.1".into()], "server");
    let (client_cert, client_key) = signed(vec!["client".into()], "client");
    // Roles and batch window unset: the defaults.
    let agent = in_process::start(RawAgentConfig {
        server_name: Some("tls-agent".into()),
        tls_cert: Some(server_cert),
        tls_key: Some(server_key),
        tls_ca: Some(ca.clone()),
        roles: None,
        batch_write: None,
        ..in_process::local(&dir.path().join("data"))
    })
    .await;
    let client = async_nats::ConnectOptions::new()
        .add_root_certificates(ca)
        .add_client_certificate(client_cert, client_key)
        .require_tls(true)
        .connect(format!("tls://{}", agent.client_addr()))
        .await
        .expect("mutual TLS connect");
    let js = async_nats::jetstream::new(client);
    js.create_stream(async_nats::jetstream::stream::Config {
        name: "SECURE".into(),
        subjects: vec!["secure.>".into()],
        ..Default::default()
    })
    .await
    .expect("create stream");
    let ack = js
        .publish("secure.one", "payload".into())
        .await
        .expect("publish")
        .await
        .expect("acked");
    assert_eq!(ack.stream, "SECURE");
    assert_eq!(ack.sequence, 1);
}

/// Issue 15 (BRIEF invariant 5: the window is a spacing, not a wait): on an idle agent
/// with the default 250 ms window, a synchronous publish is acked after one PUT and one
/// commit. Checked as an ordering of events rather than a wall-clock figure (which a
/// loaded machine could push past any bound): the publish started its own flush (sealed
/// as `idle` on arrival) and, by the time its PubAck arrived, no window timer had sealed
/// anything. The gateway's tests check the same on tokio's paused clock, where the
/// PubAck provably comes before half the window.
#[tokio::test]
async fn an_idle_agent_acks_a_publish_without_waiting_for_the_window() {
    use infinistream_gateway::SealReason;
    let dir = tempfile::tempdir().expect("tempdir");
    let agent = start_agent(&dir).await;
    let client = async_nats::connect(format!("nats://{}", agent.client_addr()))
        .await
        .expect("connect");
    let js = async_nats::jetstream::new(client);
    js.create_stream(async_nats::jetstream::stream::Config {
        name: "IDLE".into(),
        subjects: vec!["idle.>".into()],
        ..Default::default()
    })
    .await
    .expect("create stream");
    let metrics = agent.gateway_metrics();
    let sealed = |reason| metrics.batches_sealed(reason);
    let before = (sealed(SealReason::Idle), sealed(SealReason::Window));
    let objects = metrics.objects_written();

    let ack = js
        .publish("idle.one", "payload".into())
        .await
        .expect("publish")
        .await
        .expect("acked");
    let after = (sealed(SealReason::Idle), sealed(SealReason::Window));

    assert_eq!(ack.sequence, 1);
    assert_eq!(
        after.0 - before.0,
        1,
        "the publish started its own flush on arrival"
    );
    assert_eq!(
        after.1, before.1,
        "no window timer sealed a batch before the PubAck"
    );
    assert_eq!(
        metrics.objects_written() - objects,
        1,
        "one object, one PUT"
    );
}

#[test]
fn roles_are_reported_in_order() {
    let config = RawAgentConfig {
        roles: Some(RolesValue::List("jobs,proxy-consume".into())),
        ..Default::default()
    }
    .validate()
    .expect("valid");
    let names: BTreeSet<&str> = config.roles.iter().map(|r| r.as_str()).collect();
    assert_eq!(names, BTreeSet::from(["jobs", "proxy-consume"]));
}
