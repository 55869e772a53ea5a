//! The client matrix: unmodified NATS clients of four ecosystems against a split-role
//! group, through each kind of agent, with and without each routing suffix.
//!
//! The group: etcd and SeaweedFS, two control-plane replicas over that etcd, two
//! proxy-produce and two proxy-consume agents across zones `a` and `b`, and one jobs
//! agent, all on one S3 bucket. Each client (async-nats in this process; nats.go,
//! nats.js and nats.py as the small programs in `tests/clients/`) does a whole
//! application's flow over ONE connection: create a stream, publishes with PubAck in
//! sequence order, a pull consumer's fetch with acks, KV put/get/update (with the right
//! and a stale revision)/watch, and an object put/get. Each run reports its hop count
//! (connections made): 1 when the client asked for nothing or for what the agent runs;
//! at most 2 when a routing suffix named another role or zone (the agent answers the
//! handshake `PING`, sends a lame-duck `INFO` with the agents to use, and closes).
//!
//! Tools: `cargo xtask install-tools` installs nats.go from Debian (built here, offline,
//! in GOPATH mode against `/usr/share/gocode`), nats.js into `.tools/node` and nats.py
//! into the tools venv.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use async_nats::jetstream::{self, consumer, kv, object_store, stream};
use futures::StreamExt;
use infinistream_testkit::etcd::EtcdServer;
use infinistream_testkit::s3::S3Server;
use infinistream_testkit::tools::{tools_dir, venv_bin, workspace_root};
use tokio::io::AsyncReadExt;
use tokio::sync::Semaphore;
use tokio::time::timeout;

#[path = "support/procs.rs"]
mod procs;
use procs::{Agent, ControlPlane, group_agent_cmd, http_get, start_agent, start_control_plane};

/// Generous bound for "this should happen"; never a timing assertion.
const EVENTUALLY: Duration = Duration::from_secs(60);
/// Bound for one client run (a whole flow), so a hung client fails instead of hanging.
const RUN_BOUND: Duration = Duration::from_secs(120);
/// Client runs at once: enough to overlap process start-up and waits, few enough for a
/// 2-core machine that also runs the nine servers.
const PARALLEL_RUNS: usize = 4;

/// Which of the four clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Client {
    AsyncNats,
    Go,
    Js,
    Py,
}

impl fmt::Display for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Client::AsyncNats => "async-nats",
            Client::Go => "nats.go",
            Client::Js => "nats.js",
            Client::Py => "nats.py",
        })
    }
}

/// The kind of agent a run connects to first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Produce,
    Consume,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Produce => "produce",
            Kind::Consume => "consume",
        })
    }
}

/// The routing suffixes of the matrix and whether each one, sent to an agent of `kind`
/// in zone `a`, asks for something else (a redirect: one more hop).
const SUFFIXES: &[&str] = &[
    "",
    ",infinistream_proxy_target=proxy-produce",
    ",infinistream_proxy_target=proxy-consume",
    ",infinistream_az=b",
];

fn redirected(kind: Kind, suffix: &str) -> bool {
    match suffix {
        "" => false,
        ",infinistream_proxy_target=proxy-produce" => kind != Kind::Produce,
        ",infinistream_proxy_target=proxy-consume" => kind != Kind::Consume,
        // Every run starts on a zone-a agent.
        _ => true,
    }
}

/// What a run reported: connections made and distinct server ids seen.
#[derive(Debug, Clone, Copy)]
struct Hops {
    connections: u64,
    servers: u64,
}

/// Parses the programs' final `OK hops=N servers=M` line.
fn parse_ok(stdout: &str) -> anyhow::Result<Hops> {
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with("OK"))
        .context("no OK line")?;
    let field = |key: &str| -> anyhow::Result<u64> {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(key))
            .with_context(|| format!("no `{key}` in `{line}`"))?
            .parse()
            .with_context(|| format!("bad `{key}` in `{line}`"))
    };
    Ok(Hops {
        connections: field("hops=")?,
        servers: field("servers=")?,
    })
}

/// The group under test.
struct Group {
    _dir: tempfile::TempDir,
    _etcd: EtcdServer,
    control_planes: Vec<ControlPlane>,
    /// produce-a, produce-b, consume-a, consume-b, jobs.
    agents: Vec<(&'static str, Agent)>,
}

impl Group {
    fn agent(&self, name: &str) -> &Agent {
        &self
            .agents
            .iter()
            .find(|(n, _)| *n == name)
            .unwrap_or_else(|| panic!("no agent {name}"))
            .1
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for cp in &mut self.control_planes {
                eprintln!("--- control plane log ---\n{}", cp.child.output());
            }
            for (name, agent) in &mut self.agents {
                eprintln!("--- agent {name} log ---\n{}", agent.child.output());
            }
        }
    }
}

fn start_group() -> Group {
    let etcd = EtcdServer::start().expect("etcd");
    let s3 = S3Server::shared().expect("SeaweedFS");
    let bucket = s3.unique_url();
    let dir = tempfile::tempdir().expect("tempdir");
    let store = format!("etcd://{}", etcd.endpoint().trim_start_matches("http://"));
    let control_planes: Vec<ControlPlane> =
        (0..2).map(|_| start_control_plane(&store)).collect();
    let urls = control_planes
        .iter()
        .map(|cp| cp.url.as_str())
        .collect::<Vec<_>>()
        .join(",");
    let agent = |name: &'static str, roles: &str, zone: &str| {
        let cmd = group_agent_cmd(
            &dir.path().join(name),
            &urls,
            &bucket,
            &["--roles", roles, "--zone", zone],
        );
        (name, start_agent(cmd))
    };
    let agents = vec![
        agent("produce-a", "proxy-produce", "a"),
        agent("produce-b", "proxy-produce", "b"),
        agent("consume-a", "proxy-consume", "a"),
        agent("consume-b", "proxy-consume", "b"),
        agent("jobs", "jobs", "a"),
    ];
    Group {
        _dir: dir,
        _etcd: etcd,
        control_planes,
        agents,
    }
}

/// Waits until every proxy agent is linked to the four other agents and lists the four
/// proxy agents in its `connect_urls` (`/varz`).
async fn until_meshed(group: &Group) {
    for (name, agent) in group.agents.iter().filter(|(n, _)| *n != "jobs") {
        let linked = timeout(EVENTUALLY, async {
            loop {
                let (status, body) = http_get(agent.http, "/varz").await;
                if status == 200 {
                    let varz: serde_json::Value = serde_json::from_str(&body).expect("varz JSON");
                    let urls = varz["connect_urls"].as_array().map_or(0, Vec::len);
                    if varz["routes"].as_u64() == Some(4) && urls == 4 {
                        return;
                    }
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await;
        assert!(linked.is_ok(), "agent {name} did not join the mesh");
    }
}

/// Builds the nats.go program once per test process (Go's build cache in the target
/// dir keeps later processes' builds quick), offline: GOPATH mode against Debian's
/// golang-github-nats-io-go-nats-dev.
fn go_client() -> Result<PathBuf, String> {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("clients");
            let binary = out.join("nats-go-client");
            let source = workspace_root().join("crates/agent/tests/clients/go");
            let output = std::process::Command::new("go")
                .args(["build", "-o"])
                .arg(&binary)
                .arg(".")
                .current_dir(&source)
                .env("GO111MODULE", "off")
                .env("GOPATH", "/usr/share/gocode")
                .env("GOFLAGS", "")
                .env("GOCACHE", out.join("go-cache"))
                .output()
                .map_err(|e| format!("cannot run `go` ({e}); run `cargo xtask install-tools`"))?;
            if !output.status.success() {
                return Err(format!(
                    "go build of {} failed (run `cargo xtask install-tools` for golang-go and \
                     golang-github-nats-io-go-nats-dev):\n{}",
                    source.display(),
                    String::from_utf8_lossy(&output.stderr)
                ));
            }
            Ok(binary)
        })
        .clone()
}

/// One client run: `client` connects to `addr` as `app<suffix>` and does the flow.
async fn run_client(client: Client, addr: SocketAddr, name: &str, tag: &str) -> anyhow::Result<Hops> {
    let url = format!("nats://{addr}");
    let clients = workspace_root().join("crates/agent/tests/clients");
    let mut cmd = match client {
        Client::AsyncNats => {
            return timeout(RUN_BOUND, async_nats_flow(&url, name, tag))
                .await
                .context("the flow did not finish")?;
        }
        Client::Go => tokio::process::Command::new(go_client().map_err(anyhow::Error::msg)?),
        Client::Js => {
            let modules = tools_dir().join("node/node_modules");
            ensure!(
                modules.join("@nats-io/transport-node").is_dir(),
                "nats.js is not installed in {} (run `cargo xtask install-tools`)",
                modules.display()
            );
            let mut cmd = tokio::process::Command::new("node");
            cmd.arg(clients.join("js/client.js")).env("NODE_PATH", modules);
            cmd
        }
        Client::Py => {
            let python = venv_bin("python");
            ensure!(
                python.is_file(),
                "{} is missing (run `cargo xtask install-tools`)",
                python.display()
            );
            let mut cmd = tokio::process::Command::new(python);
            cmd.arg(clients.join("py/client.py"));
            cmd
        }
    };
    cmd.args([&url, name, tag]).kill_on_drop(true);
    let output = timeout(RUN_BOUND, cmd.output())
        .await
        .context("the program did not finish")?
        .context("cannot run the program")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!(
            "exited with {}: {}{}",
            output.status,
            stdout.trim(),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    parse_ok(&stdout)
}

/// The flow of the programs in `tests/clients/`, with async-nats.
async fn async_nats_flow(url: &str, name: &str, tag: &str) -> anyhow::Result<Hops> {
    let client = async_nats::ConnectOptions::new()
        .name(name)
        .request_timeout(Some(Duration::from_secs(20)))
        .connect(url)
        .await
        .context("connect")?;
    let first_server = client.server_info().server_id;
    let mut js = jetstream::new(client.clone());
    js.set_timeout(Duration::from_secs(20));

    // A stream, and publishes acked in order.
    let name = format!("S_{tag}");
    let subject = format!("s.{tag}");
    let stream = js
        .create_stream(stream::Config {
            name: name.clone(),
            subjects: vec![format!("{subject}.>")],
            ..Default::default()
        })
        .await
        .context("create stream")?;
    const COUNT: u64 = 5;
    for i in 1..=COUNT {
        let ack = js
            .publish(format!("{subject}.{i}"), format!("m{i}").into())
            .await
            .with_context(|| format!("publish {i}"))?
            .await
            .with_context(|| format!("PubAck {i}"))?;
        ensure!(ack.stream == name && ack.sequence == i, "publish {i}: {ack:?}");
    }

    // A pull consumer: fetch everything in order, ack each message.
    let mut pull = stream
        .create_consumer(consumer::pull::Config {
            durable_name: Some("worker".into()),
            ack_policy: consumer::AckPolicy::Explicit,
            ..Default::default()
        })
        .await
        .context("create pull consumer")?;
    let mut next = 1;
    while next <= COUNT {
        let mut batch = pull
            .fetch()
            .max_messages(COUNT as usize)
            .expires(Duration::from_secs(10))
            .messages()
            .await
            .context("fetch")?;
        while let Some(msg) = batch.next().await {
            let msg = msg.map_err(|e| anyhow::anyhow!("fetched message: {e}"))?;
            let seq = msg
                .info()
                .map_err(|e| anyhow::anyhow!("ack info: {e}"))?
                .stream_sequence;
            ensure!(seq == next, "fetched stream sequence {seq}, want {next}");
            msg.double_ack()
                .await
                .map_err(|e| anyhow::anyhow!("ack {next}: {e}"))?;
            next += 1;
        }
    }
    let info = pull.info().await.context("consumer info")?;
    ensure!(
        info.ack_floor.stream_sequence == COUNT && info.num_ack_pending == 0,
        "consumer after acks: {info:?}"
    );

    // KV: put, get, update with the right and a stale revision, watch an update arrive.
    let store = js
        .create_key_value(kv::Config {
            bucket: format!("kv_{tag}"),
            history: 3,
            ..Default::default()
        })
        .await
        .context("create bucket")?;
    let rev1 = store.put("k", "v1".into()).await.context("kv put")?;
    let entry = store.entry("k").await.context("kv get")?.context("kv get: no entry")?;
    ensure!(&entry.value[..] == b"v1" && entry.revision == rev1, "kv get: {entry:?}");
    let rev2 = store.update("k", "v2".into(), rev1).await.context("kv update")?;
    ensure!(rev2 > rev1, "kv update: revision {rev2} after {rev1}");
    ensure!(
        store.update("k", "stale".into(), rev1).await.is_err(),
        "kv update with stale revision {rev1} succeeded"
    );
    let mut watch = store.watch("k").await.context("kv watch")?;
    for (want, then_put) in [("v2", Some("v3")), ("v3", None)] {
        let entry = timeout(EVENTUALLY, watch.next())
            .await
            .with_context(|| format!("kv watch: nothing, want {want}"))?
            .context("kv watch ended")?
            .context("kv watch entry")?;
        ensure!(&entry.value[..] == want.as_bytes(), "kv watch: {entry:?}, want {want}");
        if let Some(value) = then_put {
            store.put("k", value.into()).await.context("kv put")?;
        }
    }

    // Object store: a multi-chunk object round-trips.
    let objects = js
        .create_object_store(object_store::Config {
            bucket: format!("obj_{tag}"),
            ..Default::default()
        })
        .await
        .context("create object store")?;
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    objects.put("blob", &mut &data[..]).await.context("object put")?;
    let mut object = objects.get("blob").await.context("object get")?;
    let mut back = Vec::new();
    object.read_to_end(&mut back).await.context("object read")?;
    ensure!(back == data, "object get: {} bytes differ from the {} put", back.len(), data.len());

    let last_server = client.server_info().server_id;
    Ok(Hops {
        connections: client.statistics().connects.load(std::sync::atomic::Ordering::Relaxed),
        servers: if first_server == last_server { 1 } else { 2 },
    })
}

/// One cell of the matrix and how it went.
struct Outcome {
    client: Client,
    kind: Kind,
    suffix: &'static str,
    elapsed: Duration,
    result: anyhow::Result<Hops>,
}

impl Outcome {
    /// `None` when the run passed: the flow succeeded within the hop bound.
    fn failure(&self) -> Option<String> {
        let bound = if redirected(self.kind, self.suffix) { 2 } else { 1 };
        match &self.result {
            Err(e) => Some(format!("{e:#}")),
            Ok(h) if h.connections == 0 || h.connections > bound => Some(format!(
                "{} connections made, at most {bound} expected",
                h.connections
            )),
            Ok(h) if h.servers > h.connections => Some(format!(
                "{} servers seen over {} connections",
                h.servers, h.connections
            )),
            Ok(_) => None,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_client_through_every_agent_kind_with_every_suffix() {
    let started = Instant::now();
    // Build the Go client while the group starts.
    let go = tokio::task::spawn_blocking(go_client);
    let group = tokio::task::spawn_blocking(start_group)
        .await
        .expect("group start-up");
    until_meshed(&group).await;
    go.await.expect("go build task").expect("nats.go client built");
    let meshed = started.elapsed();

    let entries = {
        let mut entries = Vec::new();
        for client in [Client::AsyncNats, Client::Go, Client::Js, Client::Py] {
            for kind in [Kind::Produce, Kind::Consume] {
                for suffix in SUFFIXES {
                    entries.push((client, kind, *suffix));
                }
            }
        }
        entries
    };
    let permits = Arc::new(Semaphore::new(PARALLEL_RUNS));
    let mut runs = Vec::new();
    for (i, (client, kind, suffix)) in entries.into_iter().enumerate() {
        let addr = match kind {
            Kind::Produce => group.agent("produce-a").client,
            Kind::Consume => group.agent("consume-a").client,
        };
        let permits = permits.clone();
        runs.push(tokio::spawn(async move {
            let _permit = permits.acquire_owned().await.expect("semaphore open");
            let tag = format!("r{i}");
            let begun = Instant::now();
            let result = run_client(client, addr, &format!("app{suffix}"), &tag).await;
            Outcome {
                client,
                kind,
                suffix,
                elapsed: begun.elapsed(),
                result,
            }
        }));
    }
    let mut failures = Vec::new();
    for run in runs {
        let o = run.await.expect("run task");
        let verdict = o.failure();
        let hops = o
            .result
            .as_ref()
            .map_or("-".to_owned(), |h| format!("{}/{}", h.connections, h.servers));
        eprintln!(
            "{:<10} {:<7} app{:<42} hops/servers {:<5} {:>6.1?} {}",
            o.client,
            o.kind,
            o.suffix,
            hops,
            o.elapsed,
            verdict.as_deref().unwrap_or("ok")
        );
        if let Some(why) = verdict {
            failures.push(format!("{} via the {} agent as `app{}`: {why}", o.client, o.kind, o.suffix));
        }
    }
    eprintln!(
        "group meshed after {meshed:.1?}; matrix done after {:.1?}",
        started.elapsed()
    );
    assert!(failures.is_empty(), "{} runs failed:\n{}", failures.len(), failures.join("\n"));
}
