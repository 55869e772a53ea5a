//! An agent started before its control plane and before its bucket is reachable (a
//! fresh `helm install`) waits instead of crash-looping: it logs every retry, answers
//! `/healthz` 200 and `/readyz` 503 naming what is missing, then turns ready once both
//! come up and acks a JetStream publish. Its zone comes from a fake AWS instance
//! metadata service, since none is configured.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use infinistream_testkit::metadata::{FakeMetadata, aws_imds};
use infinistream_testkit::process::{ChildProcess, addr_in};
use infinistream_testkit::s3::S3Server;
use infinistream_testkit::tools::free_port;
use tokio::net::{TcpListener, TcpStream};

#[path = "support/procs.rs"]
mod procs;
use procs::{GROUP_ID, GROUP_KEY, READY, agent_cmd, context, http_get, start_control_plane_at};

/// From now on, forwards 127.0.0.1:`port` to `target`: the bucket becomes reachable.
async fn forward(port: u16, target: SocketAddr) -> tokio::task::JoinHandle<()> {
    let listener = TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("bind the bucket forwarder");
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            tokio::spawn(async move {
                if let Ok(mut outbound) = TcpStream::connect(target).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    })
}

/// `/readyz` as status and JSON body.
async fn readyz(http: SocketAddr) -> (u16, serde_json::Value) {
    let (code, body) = http_get(http, "/readyz").await;
    let json = serde_json::from_str(&body).unwrap_or_else(|e| panic!("/readyz `{body}`: {e}"));
    (code, json)
}

/// Polls `/readyz` until it answers `code` (bounded by [`READY`]); returns the body.
async fn await_readyz(http: SocketAddr, code: u16, agent: &mut ChildProcess) -> serde_json::Value {
    let deadline = Instant::now() + READY;
    loop {
        let (got, body) = readyz(http).await;
        if got == code {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "/readyz not {code} within {READY:?}: {body}\n{}",
            agent.output()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// Multi-threaded: the test blocks on the agent's log lines while the fake metadata
// service and the forwarder answer on the other worker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_started_before_control_plane_and_bucket_waits_then_serves() {
    let s3 = S3Server::shared().expect("SeaweedFS (cargo xtask install-tools)");
    let s3_addr: SocketAddr = s3
        .endpoint()
        .trim_start_matches("http://")
        .parse()
        .expect("S3 endpoint address");
    // The agent's bucket endpoint: a port nothing listens on until `forward`.
    let bucket_port = free_port().expect("free port");
    let bucket = s3
        .unique_url()
        .replace(&s3.endpoint(), &format!("http://127.0.0.1:{bucket_port}"));
    let cp_port = free_port().expect("free port");
    let dir = tempfile::tempdir().expect("tempdir");
    let imds = FakeMetadata::start(aws_imds("us-east-1a"))
        .await
        .expect("fake instance metadata");

    let mut cmd = agent_cmd(
        &dir.path().join("agent"),
        &[
            "--control-plane",
            &format!("http://127.0.0.1:{cp_port}"),
            "--bucket",
            &bucket,
        ],
    );
    cmd.env("INFINISTREAM_GROUP_ID", GROUP_ID)
        .env("INFINISTREAM_GROUP_KEY", GROUP_KEY)
        .env_remove("INFINISTREAM_ZONE")
        .env("INFINISTREAM_METADATA_AWS_URL", imds.url())
        .env("INFINISTREAM_METADATA_GCP_URL", "off")
        .env("INFINISTREAM_METADATA_AZURE_URL", "off");
    let mut agent = ChildProcess::spawn(cmd).expect("spawn agent");

    // The zone: detected, one line naming it and its source.
    let line = agent
        .wait_for_line("availability zone", READY)
        .expect("zone line");
    assert!(
        line.contains("zone=us-east-1a") && line.contains("source=aws"),
        "{line}"
    );

    // No control plane yet: alive, retrying, not ready, saying why.
    let line = agent
        .wait_for_line("monitoring on", READY)
        .expect("monitoring serves while waiting");
    let http = addr_in(&line).unwrap_or_else(|| panic!("no address in `{line}`"));
    let retry = agent
        .wait_for_line("control plane not reachable; retrying", READY)
        .expect("retries the control plane");
    assert!(
        retry.contains("WARN") && retry.contains("attempt="),
        "{retry}"
    );
    let (code, body) = http_get(http, "/healthz").await;
    assert_eq!((code, body.as_str()), (200, r#"{"status":"ok"}"#));
    let (code, body) = readyz(http).await;
    assert_eq!(code, 503, "{body}");
    assert_eq!(body["status"], "unavailable", "{body}");
    let error = body["error"].as_str().unwrap_or_default();
    assert!(error.contains("control plane: cannot connect"), "{body}");
    let (_, raw) = http_get(http, "/readyz").await;
    assert!(
        raw.starts_with(r#"{"status":"unavailable","error":""#),
        "nats-server's unhealthy shape: {raw}"
    );

    // The control plane comes up; the bucket is still unreachable.
    let cp_store = format!("embedded:{}", dir.path().join("cp").display());
    let mut cp = start_control_plane_at(cp_port, &cp_store);
    agent
        .wait_for_line("control plane reached", READY)
        .expect("reaches the control plane");
    agent
        .wait_for_line("bucket not reachable; retrying", READY)
        .expect("retries the bucket");
    let (code, body) = readyz(http).await;
    assert_eq!(code, 503, "{body}");
    let error = body["error"].as_str().unwrap_or_default();
    assert!(error.contains("bucket: bucket is unreachable"), "{body}");
    assert!(
        !error.contains("control plane: cannot connect"),
        "the control plane was reached: {body}"
    );

    // The bucket comes up: ready within a bounded wait, then a publish acks.
    let _forwarder = forward(bucket_port, s3_addr).await;
    let body = await_readyz(http, 200, &mut agent).await;
    assert_eq!(body, serde_json::json!({"status": "ok"}));
    let line = agent
        .wait_for_line("listening for NATS clients", READY)
        .expect("serves clients");
    let client = addr_in(&line).unwrap_or_else(|| panic!("no address in `{line}`"));
    let js = context(client).await;
    js.create_stream(async_nats::jetstream::stream::Config {
        name: "ORDERS".into(),
        subjects: vec!["orders.>".into()],
        ..Default::default()
    })
    .await
    .expect("create stream");
    let ack = js
        .publish("orders.1", "first".into())
        .await
        .expect("publish")
        .await
        .expect("PubAck");
    assert_eq!((ack.stream.as_str(), ack.sequence), ("ORDERS", 1));
    assert!(
        imds.connections() >= 1,
        "the zone came from the fake metadata service"
    );

    // The control plane goes away for longer than the agent's lease: not ready, and
    // ready again once it is back.
    cp.child.kill().expect("kill the control plane");
    let body = await_readyz(http, 503, &mut agent).await;
    let error = body["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("control plane: not renewed for longer than its lease"),
        "{body}"
    );
    let (code, _) = http_get(http, "/healthz").await;
    assert_eq!(code, 200, "still alive");
    let _cp = start_control_plane_at(cp_port, &cp_store);
    let body = await_readyz(http, 200, &mut agent).await;
    assert_eq!(body, serde_json::json!({"status": "ok"}));
}
