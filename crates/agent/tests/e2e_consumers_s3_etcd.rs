//! Consumer durability and consumption through real processes: a durable pull
//! consumer's ack floor, pending acks and delivery counts survive `kill -9` of the
//! agent and of the control plane (embedded: the agent process holds it; distributed:
//! a standalone control plane over a real etcd, agents on a real S3-compatible server).
//! The unacked messages come back after ack_wait, the acked ones never do. The pull
//! consume, KV watch, pause, reset, dead-letter queue and ack-subject scenarios run
//! on both setups (`scenarios/consumers.rs`); priority groups, replay original, rate
//! limit and sample_freq run on S3 and etcd next to nats-server
//! (`scenarios/priority.rs`, `scenarios/pacing.rs`).

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use async_nats::jetstream;
use infinistream_testkit::etcd::EtcdServer;
use infinistream_testkit::nats::NatsServer;
use infinistream_testkit::process::{ChildProcess, addr_in};
use infinistream_testkit::s3::S3Server;

#[path = "scenarios/consumers.rs"]
mod consumers;
#[path = "support/in_process.rs"]
mod in_process;
#[path = "scenarios/pacing.rs"]
mod pacing;
#[path = "scenarios/priority.rs"]
mod priority;
#[path = "support/py_client.rs"]
mod py_client;
#[path = "support/side_by_side.rs"]
mod side_by_side;

const READY: Duration = Duration::from_secs(60);

/// The distributed setup's shared group credentials.
const GROUP_ID: &str = "prod";
const GROUP_KEY: &str = "k3y";

fn control_plane(etcd: &str, port: u16) -> ChildProcess {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_infinistream"));
    cmd.args([
        "control-plane",
        "--listen",
        &format!("127.0.0.1:{port}"),
        "-m",
        "0",
    ])
    .arg("--store")
    .arg(format!("etcd://{}", etcd.trim_start_matches("http://")))
    .env("INFINISTREAM_GROUP_ID", GROUP_ID)
    .env("INFINISTREAM_GROUP_KEY", GROUP_KEY)
    .env("RUST_LOG", "info");
    let mut cp = ChildProcess::spawn(cmd).expect("spawn control plane");
    cp.wait_for_line("control plane serving", READY)
        .expect("control plane ready");
    cp
}

/// Where an agent keeps its consumer state and messages.
enum Backend<'a> {
    /// Embedded control plane and the default `file://` bucket in the data dir.
    Embedded,
    /// A standalone control plane on this port and this S3 bucket URL.
    Remote { cp_port: u16, bucket: &'a str },
}

fn agent(dir: &Path, backend: &Backend<'_>) -> (ChildProcess, SocketAddr) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_infinistream"));
    cmd.args([
        "agent",
        "-a",
        "127.0.0.1",
        "-p",
        "0",
        "-m",
        "0",
        "--batch-write",
        "50",
    ])
    .arg("--data-dir")
    .arg(dir)
    .env("RUST_LOG", "info");
    if let Backend::Remote { cp_port, bucket } = backend {
        cmd.args(["--control-plane", &format!("http://127.0.0.1:{cp_port}")])
            .args(["--bucket", bucket])
            .env("INFINISTREAM_GROUP_ID", GROUP_ID)
            .env("INFINISTREAM_GROUP_KEY", GROUP_KEY)
            // A set zone: no instance-metadata request leaves the test machine.
            .env("INFINISTREAM_ZONE", "default");
    }
    let mut child = ChildProcess::spawn(cmd).expect("spawn agent");
    let line = child
        .wait_for_line("listening for NATS clients", READY)
        .expect("agent ready");
    let addr = addr_in(&line).unwrap_or_else(|| panic!("no address in `{line}`"));
    (child, addr)
}

async fn context(addr: SocketAddr) -> jetstream::Context {
    let client = async_nats::connect(format!("nats://{addr}"))
        .await
        .expect("connect");
    let mut js = jetstream::new(client);
    js.set_timeout(Duration::from_secs(20));
    js
}

/// Embedded control plane: `kill -9` of the agent process takes the control plane
/// down with it; a new agent on the same data dir sees the same consumer state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_consumer_durability_embedded_kill9() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut a, addr) = agent(dir.path(), &Backend::Embedded);
    consumers::durable_before_restart(&context(addr).await).await;
    a.kill().expect("kill -9 agent");
    let (_a2, addr2) = agent(dir.path(), &Backend::Embedded);
    let js = context(addr2).await;
    consumers::durable_state_unchanged(&js).await;
    consumers::durable_after_restart(&js).await;
}

/// Standalone control plane over etcd, agent on S3: `kill -9` of the agent, then of
/// the control plane; the consumer state is the same after each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_s3_etcd_consumer_durability_kill9() {
    let etcd = EtcdServer::start().expect("etcd");
    let s3 = S3Server::shared().expect("s3");
    let bucket = s3.unique_url();
    let dir = tempfile::tempdir().expect("tempdir");
    let cp_port = infinistream_testkit::tools::free_port().expect("port");
    let backend = Backend::Remote {
        cp_port,
        bucket: &bucket,
    };
    let mut cp = control_plane(&etcd.endpoint(), cp_port);
    let (mut a, addr) = agent(dir.path(), &backend);
    consumers::durable_before_restart(&context(addr).await).await;

    // kill -9 the agent; a new one on the same data dir, bucket and control plane.
    a.kill().expect("kill -9 agent");
    let (mut a2, addr2) = agent(dir.path(), &backend);
    consumers::durable_state_unchanged(&context(addr2).await).await;

    // kill -9 the control plane; a new one over the same etcd on the same port. It
    // answers 503 "no leader elected yet" until the dead one's etcd lease lapses.
    cp.kill().expect("kill -9 control plane");
    let mut cp2 = control_plane(&etcd.endpoint(), cp_port);
    cp2.wait_for_line("became leader", READY)
        .expect("new control plane leads");
    let js = context(addr2).await;
    consumers::durable_state_unchanged(&js).await;
    consumers::durable_after_restart(&js).await;
    let output = a2.output();
    assert!(
        !output.contains(GROUP_KEY) && !output.contains(s3.secret_access_key()),
        "keys are never logged:\n{output}"
    );
    a2.kill().expect("stop agent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_embedded_pull_consume_and_kv_watch() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_a, addr) = agent(dir.path(), &Backend::Embedded);
    let js = context(addr).await;
    consumers::pull_consume_with_acks(&js).await;
    consumers::kv_watch(&js).await;
    consumers::pause_resume(&js).await;
    consumers::reset(&js).await;
    consumers::dead_letter_queue(&js).await;
    consumers::ack_subjects_v1_and_v2(&js).await;
}

/// A control plane over a real etcd and one agent on a real S3 server.
struct Distributed {
    _etcd: EtcdServer,
    _dir: tempfile::TempDir,
    _cp: ChildProcess,
    _agent: ChildProcess,
    addr: SocketAddr,
}

impl Distributed {
    fn start() -> Distributed {
        let etcd = EtcdServer::start().expect("etcd");
        let s3 = S3Server::shared().expect("s3");
        let bucket = s3.unique_url();
        let dir = tempfile::tempdir().expect("tempdir");
        let cp_port = infinistream_testkit::tools::free_port().expect("port");
        let cp = control_plane(&etcd.endpoint(), cp_port);
        let (agent, addr) = agent(
            dir.path(),
            &Backend::Remote {
                cp_port,
                bucket: &bucket,
            },
        );
        Distributed {
            _etcd: etcd,
            _dir: dir,
            _cp: cp,
            _agent: agent,
            addr,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_s3_etcd_pull_consume_and_kv_watch() {
    let cluster = Distributed::start();
    let js = context(cluster.addr).await;
    consumers::pull_consume_with_acks(&js).await;
    consumers::kv_watch(&js).await;
    consumers::pause_resume(&js).await;
    consumers::reset(&js).await;
    consumers::dead_letter_queue(&js).await;
    consumers::ack_subjects_v1_and_v2(&js).await;
}

/// Priority groups (pinned client, overflow, prioritized), replay original, rate limit
/// and sample_freq's ack metrics on S3 and etcd, each transcript equal to nats-server
/// 2.15.1's for the same calls.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_s3_etcd_consumer_features_as_nats_server() {
    let reference = NatsServer::start("# JetStream from the command line\n").expect("nats-server");
    let cluster = Distributed::start();
    let theirs = priority::connect(&reference.url()).await;
    let ours = priority::connect(&format!("nats://{}", cluster.addr)).await;
    for (name, expected, got) in [
        (
            "pinned and overflow",
            priority::pinned_and_overflow(&theirs).await,
            priority::pinned_and_overflow(&ours).await,
        ),
        (
            "prioritized",
            priority::prioritized(&theirs).await,
            priority::prioritized(&ours).await,
        ),
    ] {
        assert_eq!(got, expected, "{name}");
    }
    pacing::replay_original(&theirs, "nats-server").await;
    pacing::replay_original(&ours, "InfiniStream").await;
    assert_eq!(
        pacing::rate_limited(&ours, "InfiniStream").await,
        pacing::rate_limited(&theirs, "nats-server").await
    );
    assert_eq!(
        pacing::sampled_acks(&ours).await,
        pacing::sampled_acks(&theirs).await
    );
}
