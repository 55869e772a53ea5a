//! `infinistream` processes on loopback for the multi-process tests: a standalone
//! control plane, agents with OS-picked ports, and the small client helpers those
//! tests share. Included with `#[path = "support/procs.rs"] mod procs;`.

// Each test binary uses its own subset.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use async_nats::jetstream;
use infinistream_testkit::process::{ChildProcess, addr_in};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Bound for a process to start; never a timing assertion.
pub const READY: Duration = Duration::from_secs(60);

/// The group the standalone control planes of these tests serve.
pub const GROUP_ID: &str = "team";
pub const GROUP_KEY: &str = "s3cret";

/// `infinistream agent` on 127.0.0.1 (client and monitoring ports picked by the OS,
/// 50 ms batch window) keeping its state in `data_dir`, then `extra` flags. Runs the
/// embedded control plane unless `extra` names one (see [`remote_agent_cmd`]).
pub fn agent_cmd(data_dir: &Path, extra: &[&str]) -> Command {
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
    .arg(data_dir)
    .args(extra)
    .env("RUST_LOG", "info")
    .env_remove("INFINISTREAM_CONTROL_PLANE");
    cmd
}

/// [`agent_cmd`] for an agent of `cp`'s group writing to `bucket`.
pub fn remote_agent_cmd(
    data_dir: &Path,
    cp: &ControlPlane,
    bucket: &str,
    extra: &[&str],
) -> Command {
    group_agent_cmd(data_dir, &cp.url, bucket, extra)
}

/// [`agent_cmd`] for an agent of the [`GROUP_ID`] group served by the control-plane
/// replicas at `control_plane` (comma-separated URLs), writing to `bucket`.
pub fn group_agent_cmd(
    data_dir: &Path,
    control_plane: &str,
    bucket: &str,
    extra: &[&str],
) -> Command {
    let mut cmd = agent_cmd(
        data_dir,
        &["--control-plane", control_plane, "--bucket", bucket],
    );
    cmd.args(extra)
        .env("INFINISTREAM_GROUP_ID", GROUP_ID)
        .env("INFINISTREAM_GROUP_KEY", GROUP_KEY)
        // A set zone (`--zone` in `extra` still wins): no instance-metadata request
        // leaves the test machine.
        .env("INFINISTREAM_ZONE", "default");
    cmd
}

/// A running agent and where it listens.
pub struct Agent {
    pub child: ChildProcess,
    /// NATS clients.
    pub client: SocketAddr,
    /// Monitoring (`/varz`, `/jsz`, `/metrics`).
    pub http: SocketAddr,
}

/// Spawns `cmd` and waits until it listens for clients and for monitoring.
pub fn start_agent(cmd: Command) -> Agent {
    let mut child = ChildProcess::spawn(cmd).expect("spawn infinistream agent");
    let line = child
        .wait_for_line("listening for NATS clients", READY)
        .expect("agent ready");
    let client = addr_in(&line).unwrap_or_else(|| panic!("no address in `{line}`"));
    let line = child
        .wait_for_line("monitoring on", READY)
        .expect("monitoring ready");
    let http = addr_in(&line).unwrap_or_else(|| panic!("no address in `{line}`"));
    Agent {
        child,
        client,
        http,
    }
}

/// A standalone `infinistream control-plane` serving [`GROUP_ID`].
pub struct ControlPlane {
    pub child: ChildProcess,
    /// What agents pass as `--control-plane`.
    pub url: String,
}

/// Starts a control plane on a free loopback port over `store` (`embedded:<dir>` or
/// `etcd://host:port`) and waits until it serves.
pub fn start_control_plane(store: &str) -> ControlPlane {
    start_control_plane_at(
        infinistream_testkit::tools::free_port().expect("free port"),
        store,
    )
}

/// [`start_control_plane`] on 127.0.0.1:`port`.
pub fn start_control_plane_at(port: u16, store: &str) -> ControlPlane {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_infinistream"));
    cmd.args([
        "control-plane",
        "--listen",
        &format!("127.0.0.1:{port}"),
        "-m",
        "0",
        "--store",
        store,
    ])
    .env("INFINISTREAM_GROUP_ID", GROUP_ID)
    .env("INFINISTREAM_GROUP_KEY", GROUP_KEY)
    .env("RUST_LOG", "info");
    let mut child = ChildProcess::spawn(cmd).expect("spawn control plane");
    child
        .wait_for_line("control plane serving", READY)
        .expect("control plane ready");
    ControlPlane {
        child,
        url: format!("http://127.0.0.1:{port}"),
    }
}

/// A control plane with its embedded store in `dir/cp`, and a `file://` bucket URL in
/// `dir/bucket` for its agents.
pub fn embedded_control_plane(dir: &Path) -> (ControlPlane, String) {
    let bucket = dir.join("bucket");
    std::fs::create_dir_all(&bucket).expect("bucket dir");
    let cp = start_control_plane(&format!("embedded:{}", dir.join("cp").display()));
    (cp, format!("file://{}", bucket.display()))
}

/// A JetStream context on the agent at `addr`, with a timeout long enough for a loaded
/// machine.
pub async fn context(addr: SocketAddr) -> jetstream::Context {
    let client = async_nats::connect(format!("nats://{addr}"))
        .await
        .expect("connect");
    let mut js = jetstream::new(client);
    js.set_timeout(Duration::from_secs(20));
    js
}

/// `GET path` on a monitoring port: status and body.
pub async fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connect http");
    let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).await.expect("read");
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// Every key path in a JSON document (`account_details.stream_detail.state.messages`;
/// array items' keys under the array's path), for comparing answers' shapes with
/// nats-server's.
pub fn key_paths(v: &serde_json::Value) -> std::collections::BTreeSet<String> {
    fn walk(v: &serde_json::Value, prefix: &str, out: &mut std::collections::BTreeSet<String>) {
        match v {
            serde_json::Value::Object(map) => {
                for (k, v) in map {
                    let path = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    out.insert(path.clone());
                    walk(v, &path, out);
                }
            }
            serde_json::Value::Array(items) => items.iter().for_each(|i| walk(i, prefix, out)),
            _ => {}
        }
    }
    let mut out = std::collections::BTreeSet::new();
    walk(v, "", &mut out);
    out
}
