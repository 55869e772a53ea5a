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
//! (connections made).
//!
//! - Without a suffix, or with the role of the agent it connects to, a client stays
//!   where it connected: one connection.
//! - With another role or zone, the agent answers the handshake `PING`, sends a
//!   lame-duck `INFO` listing the agents to use, and closes; the client reconnects.
//!   How many hops that takes is the client's own server choice (see [`hop_bound`]).
//!
//! Tools: `cargo xtask install-tools` installs nats.go from Debian (built here, offline,
//! in GOPATH mode against `/usr/share/gocode`), nats.js into `.tools/node` and nats.py
//! into the tools venv. `CLIENT_MATRIX_ONLY=<text>` runs only the cells whose
//! "<client> <kind> app<suffix>;" contains it (e.g. `nats.go consume app;`).

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
const EVENTUALLY: Duration = Duration::from_secs(30);
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

/// The routing suffixes that ask for what an agent of `kind` in zone `a` runs.
fn staying(kind: Kind) -> [&'static str; 2] {
    match kind {
        Kind::Produce => ["", ",infinistream_proxy_target=proxy-produce"],
        Kind::Consume => ["", ",infinistream_proxy_target=proxy-consume"],
    }
}

/// The routing suffixes that ask an agent of `kind` in zone `a` for another role or
/// zone.
fn redirecting(kind: Kind) -> [&'static str; 2] {
    match kind {
        Kind::Produce => [
            ",infinistream_proxy_target=proxy-consume",
            ",infinistream_az=b",
        ],
        Kind::Consume => [
            ",infinistream_proxy_target=proxy-produce",
            ",infinistream_az=b",
        ],
    }
}

/// Most connections a redirected client makes, from how each client picks the server
/// it reconnects to (two of the four proxy agents are right for each redirect):
/// - nats.go and nats.js drop discovered servers an async `INFO` no longer lists, so
///   the lame-duck `INFO` leaves only right agents: one reconnect.
/// - nats.py adds the `INFO`'s servers but drops none, and takes the next server of its
///   (shuffled) pool: it may visit the other wrong agent once more.
/// - async-nats ignores the `connect_urls` of an async `INFO` and picks at random from
///   every server it has seen, so a reconnect may land on a wrong agent again. Each
///   wrong agent serves the connection until a quiet moment at least 250 ms after its
///   lame-duck `INFO`, so during one flow (a few seconds at most) it can be redirected
///   only a few times: 8 connections bound it with a wide margin.
fn hop_bound(client: Client) -> Option<u64> {
    match client {
        Client::Go | Client::Js => Some(2),
        Client::Py => Some(3),
        Client::AsyncNats => Some(8),
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
    let control_planes: Vec<ControlPlane> = (0..2).map(|_| start_control_plane(&store)).collect();
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
async fn run_client(
    client: Client,
    addr: SocketAddr,
    name: &str,
    tag: &str,
) -> anyhow::Result<Hops> {
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
            cmd.arg(clients.join("js/client.js"))
                .env("NODE_PATH", modules);
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
        ensure!(
            ack.stream == name && ack.sequence == i,
            "publish {i}: {ack:?}"
        );
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
    let entry = store
        .entry("k")
        .await
        .context("kv get")?
        .context("kv get: no entry")?;
    ensure!(
        &entry.value[..] == b"v1" && entry.revision == rev1,
        "kv get: {entry:?}"
    );
    let rev2 = store
        .update("k", "v2".into(), rev1)
        .await
        .context("kv update")?;
    ensure!(rev2 > rev1, "kv update: revision {rev2} after {rev1}");
    ensure!(
        store.update("k", "stale".into(), rev1).await.is_err(),
        "kv update with stale revision {rev1} succeeded"
    );
    let mut watch = store.watch_with_history("k").await.context("kv watch")?;
    for (want, then_put) in [("v2", Some("v3")), ("v3", None)] {
        let entry = timeout(EVENTUALLY, watch.next())
            .await
            .with_context(|| format!("kv watch: nothing, want {want}"))?
            .context("kv watch ended")?
            .context("kv watch entry")?;
        ensure!(
            &entry.value[..] == want.as_bytes(),
            "kv watch: {entry:?}, want {want}"
        );
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
    objects
        .put("blob", &mut &data[..])
        .await
        .context("object put")?;
    let mut object = objects.get("blob").await.context("object get")?;
    let mut back = Vec::new();
    object.read_to_end(&mut back).await.context("object read")?;
    ensure!(
        back == data,
        "object get: {} bytes differ from the {} put",
        back.len(),
        data.len()
    );

    let last_server = client.server_info().server_id;
    Ok(Hops {
        connections: client
            .statistics()
            .connects
            .load(std::sync::atomic::Ordering::Relaxed),
        servers: if first_server == last_server { 1 } else { 2 },
    })
}

/// One cell of the matrix and how it went.
struct Outcome {
    client: Client,
    kind: Kind,
    suffix: &'static str,
    /// Most connections the run may make (`None`: no bound, see [`hop_bound`]).
    bound: Option<u64>,
    elapsed: Duration,
    result: anyhow::Result<Hops>,
}

impl Outcome {
    /// `None` when the run passed: the flow succeeded within the hop bound.
    fn failure(&self) -> Option<String> {
        match &self.result {
            Err(e) => Some(format!("{e:#}")),
            Ok(h) if h.connections == 0 || self.bound.is_some_and(|b| h.connections > b) => {
                Some(format!(
                    "{} connections made, at most {:?} expected",
                    h.connections, self.bound
                ))
            }
            Ok(h) if h.servers > h.connections => Some(format!(
                "{} servers seen over {} connections",
                h.servers, h.connections
            )),
            Ok(_) => None,
        }
    }
}

const CLIENTS: [Client; 4] = [Client::AsyncNats, Client::Go, Client::Js, Client::Py];
const KINDS: [Kind; 2] = [Kind::Produce, Kind::Consume];

/// Starts the group, runs every cell (client, kind of the zone-a agent connected to,
/// suffix, hop bound) with [`PARALLEL_RUNS`] at once, prints a line per cell and fails
/// with every failed cell.
async fn run_matrix(cells: Vec<(Client, Kind, &'static str, Option<u64>)>) {
    let started = Instant::now();
    // `CLIENT_MATRIX_ONLY=nats.go` (any part of "<client> <kind> app<suffix>;") runs
    // only the matching cells, for a quicker look at one failure.
    let only = std::env::var("CLIENT_MATRIX_ONLY").ok();
    let cells: Vec<_> = cells
        .into_iter()
        .filter(|(client, kind, suffix, _)| {
            let cell = format!("{client} {kind} app{suffix};");
            only.as_ref()
                .is_none_or(|only| cell.contains(only.as_str()))
        })
        .collect();
    // Build the Go client while the group starts.
    let go = tokio::task::spawn_blocking(go_client);
    let group = tokio::task::spawn_blocking(start_group)
        .await
        .expect("group start-up");
    until_meshed(&group).await;
    go.await
        .expect("go build task")
        .expect("nats.go client built");
    let meshed = started.elapsed();

    let permits = Arc::new(Semaphore::new(PARALLEL_RUNS));
    let mut runs = Vec::new();
    for (i, (client, kind, suffix, bound)) in cells.into_iter().enumerate() {
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
                bound,
                elapsed: begun.elapsed(),
                result,
            }
        }));
    }
    let mut failures = Vec::new();
    for run in runs {
        let o = run.await.expect("run task");
        let verdict = o.failure();
        let hops = o.result.as_ref().map_or("-".to_owned(), |h| {
            format!("{}/{}", h.connections, h.servers)
        });
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
            failures.push(format!(
                "{} via the {} agent as `app{}`: {why}",
                o.client, o.kind, o.suffix
            ));
        }
    }
    eprintln!(
        "group meshed after {meshed:.1?}; matrix done after {:.1?}",
        started.elapsed()
    );
    assert!(
        failures.is_empty(),
        "{} runs failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Item 1 of the matrix: each client's whole flow over one connection through either
/// kind of agent, without a suffix and with the agent's own role: one connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_connection_does_the_whole_flow_through_either_agent_kind() {
    let mut cells = Vec::new();
    for client in CLIENTS {
        for kind in KINDS {
            for suffix in staying(kind) {
                cells.push((client, kind, suffix, Some(1)));
            }
        }
    }
    run_matrix(cells).await;
}

/// Item 2 of the matrix: a suffix naming the other role, or the other zone, moves the
/// client to an agent that serves it within its hop bound, and the flow succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirecting_suffix_converges_and_the_flow_succeeds() {
    let mut cells = Vec::new();
    for client in CLIENTS {
        for kind in KINDS {
            for suffix in redirecting(kind) {
                cells.push((client, kind, suffix, hop_bound(client)));
            }
        }
    }
    run_matrix(cells).await;
}
