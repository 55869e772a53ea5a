//! `cargo xtask bench core --cluster`: core NATS across two servers on one machine, a
//! nats-server cluster (two servers, one route) against two InfiniStream agents of one
//! group (standalone control plane with its embedded store, a shared `file://` bucket,
//! one route-mesh link), same client (async-nats), one run.
//!
//! - pub/sub throughput, publisher on server 1, subscriber on server 2, 16 B and 1 KiB,
//!   with the windowed publisher of `bench core` (neither side sheds a slow consumer),
//!   best of three after a warm-up;
//! - request/reply round trip, requester on server 1, responder on server 2:
//!   [`REQUESTS`] sequential 16 B requests after [`WARMUP_REQUESTS`], p50 and p99.
//!
//! Nothing is measured before the subscription's (or the responder's) interest has
//! reached server 1: a probe message delivered, a request answered.
//!
//! Options: `--messages N` publishes N messages per pub/sub run for both payload sizes
//! (default 2,000,000 of 16 B and 500,000 of 1 KiB); `--only infinistream|nats-server`
//! runs one side.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use async_nats::client::RequestErrorKind;
use bytes::Bytes;
use futures::StreamExt;

use crate::bench::{
    build_release, infinistream_bin, nats_server_bin, parse_only, pubsub, wait_for_port,
};
use crate::bench_js::{metric_sum, scrape};
use crate::tools;

/// Sequential requests timed for the latency percentiles.
const REQUESTS: usize = 1_000;
/// Requests answered before timing starts.
const WARMUP_REQUESTS: usize = 200;
/// The group the standalone control plane serves.
const GROUP_ID: &str = "bench";
const GROUP_KEY: &str = "bench-key";
/// Bound for a server to become ready or interest to cross; never a timing assertion.
const READY: Duration = Duration::from_secs(30);

#[derive(Debug, Clone)]
struct Opts {
    /// Messages per pub/sub run, per payload size; `None` keeps the defaults.
    messages: Option<u64>,
    nats: bool,
    infinistream: bool,
}

impl Opts {
    fn parse(args: &[String]) -> anyhow::Result<Opts> {
        let mut o = Opts {
            messages: None,
            nats: true,
            infinistream: true,
        };
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            let mut value = || it.next().with_context(|| format!("{arg} needs a value"));
            match arg.as_str() {
                "--messages" => {
                    let n: u64 = value()?.parse().context("--messages takes a count")?;
                    if n == 0 {
                        bail!("--messages must be at least 1");
                    }
                    o.messages = Some(n);
                }
                "--only" => (o.nats, o.infinistream) = parse_only(value()?)?,
                other => bail!("unknown option `{other}` for bench core --cluster"),
            }
        }
        Ok(o)
    }
}

/// Processes killed when dropped, with the client ports of the two
/// servers measured.
pub(crate) struct Cluster {
    name: &'static str,
    children: Vec<Child>,
    /// Client ports of server 1 and server 2.
    pub(crate) ports: [u16; 2],
    /// Monitoring ports of server 1 and server 2.
    http_ports: [u16; 2],
    /// Data directories, bucket and control-plane store; removed when dropped.
    _dir: tempfile::TempDir,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // Every process first, so a survivor has no time to log its peers vanishing.
        for child in self.children.iter_mut().rev() {
            let _ = child.kill();
        }
        for child in &mut self.children {
            let _ = child.wait();
        }
    }
}

impl Cluster {
    /// What the servers counted (routed, dropped), for a run that did not complete.
    fn losses(&self) -> String {
        let per_server: Vec<String> = self
            .http_ports
            .iter()
            .map(|&port| {
                if self.name == "infinistream" {
                    let text = scrape(port);
                    let metric =
                        |name: &str| metric_sum(&text, &format!("infinistream_broker_{name}"));
                    format!(
                        "route out {}, route in {}, route dropped {}, slow consumers {}",
                        metric("route_out_msgs_total"),
                        metric("route_in_msgs_total"),
                        metric("route_dropped_total"),
                        metric("slow_consumers_total"),
                    )
                } else {
                    format!("slow consumers {}", varz_number(port, "slow_consumers"))
                }
            })
            .collect();
        format!("server 1: {}; server 2: {}", per_server[0], per_server[1])
    }
}

/// `n` distinct free loopback ports (all bound at once, so the OS cannot repeat one).
fn free_ports<const N: usize>() -> anyhow::Result<[u16; N]> {
    let listeners = (0..N)
        .map(|_| std::net::TcpListener::bind(("127.0.0.1", 0)))
        .collect::<Result<Vec<_>, _>>()?;
    let mut ports = [0u16; N];
    for (port, listener) in ports.iter_mut().zip(&listeners) {
        *port = listener.local_addr()?.port();
    }
    Ok(ports)
}

/// A number field of nats-server's `/varz` (0 when it cannot be read).
fn varz_number(http_port: u16, field: &str) -> f64 {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", http_port)) else {
        return 0.0;
    };
    let _ = stream.write_all(b"GET /varz HTTP/1.0\r\nHost: x\r\n\r\n");
    let mut body = String::new();
    let _ = stream.read_to_string(&mut body);
    let key = format!("\"{field}\":");
    body.split_once(&key)
        .and_then(|(_, rest)| {
            rest.trim_start()
                .split(|c: char| !c.is_ascii_digit())
                .next()
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0.0)
}

/// Two nats-servers routed to each other in cluster `bench`.
fn start_nats_cluster() -> anyhow::Result<Cluster> {
    let dir = tempfile::tempdir()?;
    let [c1, c2, r1, r2, m1, m2] = free_ports::<6>()?;
    let bin = nats_server_bin();
    let mut cluster = Cluster {
        name: "nats-server",
        children: Vec::new(),
        ports: [c1, c2],
        http_ports: [m1, m2],
        _dir: dir,
    };
    for (name, client, http, route, other) in [("n1", c1, m1, r1, r2), ("n2", c2, m2, r2, r1)] {
        let child = Command::new(&bin)
            .args(["-a", "127.0.0.1", "-n", name, "-p", &client.to_string()])
            .args(["-m", &http.to_string(), "--cluster_name", "bench"])
            .args(["--cluster", &format!("nats://127.0.0.1:{route}")])
            .args(["--routes", &format!("nats://127.0.0.1:{other}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| {
                format!(
                    "cannot start {} (run `cargo xtask install-tools`)",
                    bin.display()
                )
            })?;
        cluster.children.push(child);
    }
    wait_for_port(c1)?;
    wait_for_port(c2)?;
    Ok(cluster)
}

/// A standalone control plane (embedded store) and two agents of its group sharing a
/// `file://` bucket, each with its own data directory and a `batch_ms` window.
pub(crate) fn start_infinistream_cluster(batch_ms: u64) -> anyhow::Result<Cluster> {
    let dir = tempfile::tempdir()?;
    let [cp, c1, c2, m1, m2, p1, p2] = free_ports::<7>()?;
    let bin = infinistream_bin();
    let root = dir.path().to_path_buf();
    let bucket = root.join("bucket");
    std::fs::create_dir_all(&bucket)?;
    let mut cluster = Cluster {
        name: "infinistream",
        children: Vec::new(),
        ports: [c1, c2],
        http_ports: [m1, m2],
        _dir: dir,
    };
    let spawn = |cmd: &mut Command| -> anyhow::Result<Child> {
        cmd.env("INFINISTREAM_GROUP_ID", GROUP_ID)
            .env("INFINISTREAM_GROUP_KEY", GROUP_KEY)
            .env_remove("INFINISTREAM_CONTROL_PLANE")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("cannot start {}", bin.display()))
    };
    cluster.children.push(spawn(
        Command::new(&bin)
            .args(["control-plane", "--listen", &format!("127.0.0.1:{cp}")])
            .args(["-m", "0", "--store"])
            .arg(format!("embedded:{}", root.join("cp").display())),
    )?);
    wait_for_port(cp)?;
    for (name, client, http, peer) in [("a", c1, m1, p1), ("b", c2, m2, p2)] {
        let child = spawn(
            Command::new(&bin)
                .args(["agent", "-a", "127.0.0.1", "-p", &client.to_string()])
                .args(["-m", &http.to_string(), "--peer_port", &peer.to_string()])
                .args(["--batch-write", &batch_ms.to_string()])
                .args(["--control-plane", &format!("http://127.0.0.1:{cp}")])
                .args(["--zone", "default"])
                .arg("--bucket")
                .arg(format!("file://{}", bucket.display()))
                .arg("--data-dir")
                .arg(root.join(name)),
        )?;
        cluster.children.push(child);
    }
    wait_for_port(c1)?;
    wait_for_port(c2)?;
    Ok(cluster)
}

/// Round-trip latencies, sorted, of [`REQUESTS`] sequential 16 B requests on server 1
/// answered by a responder on server 2.
async fn request_reply(cluster: &Cluster) -> anyhow::Result<Vec<Duration>> {
    let connect = |port: u16| {
        async_nats::ConnectOptions::new()
            .request_timeout(Some(Duration::from_secs(5)))
            .connect(format!("nats://127.0.0.1:{port}"))
    };
    let requester = connect(cluster.ports[0]).await?;
    let responder = connect(cluster.ports[1]).await?;
    let mut requests = responder.subscribe("bench.rr").await?;
    responder.flush().await?;
    let serving = responder.clone();
    let service = tokio::spawn(async move {
        while let Some(req) = requests.next().await {
            if let Some(reply) = req.reply
                && serving.publish(reply, req.payload).await.is_err()
            {
                break;
            }
        }
    });
    let result = async {
        let payload = Bytes::from(vec![b'x'; 16]);
        // Until a request is answered, the responder's interest (or the requester's
        // inbox interest, for the way back) has not crossed yet.
        let crossed = async {
            loop {
                match requester.request("bench.rr", payload.clone()).await {
                    Ok(_) => return anyhow::Ok(()),
                    Err(e)
                        if matches!(
                            e.kind(),
                            RequestErrorKind::NoResponders | RequestErrorKind::TimedOut
                        ) =>
                    {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        };
        tokio::time::timeout(READY, crossed)
            .await
            .context("the responder's interest did not reach server 1")??;
        for _ in 0..WARMUP_REQUESTS {
            requester
                .request("bench.rr", payload.clone())
                .await
                .context("warm-up request")?;
        }
        let mut rtts = Vec::with_capacity(REQUESTS);
        for i in 0..REQUESTS {
            let start = Instant::now();
            let resp = requester
                .request("bench.rr", payload.clone())
                .await
                .with_context(|| format!("request {i} of {REQUESTS}"))?;
            rtts.push(start.elapsed());
            if resp.payload.len() != payload.len() {
                bail!("request {i}: answer of {} bytes", resp.payload.len());
            }
        }
        rtts.sort();
        Ok(rtts)
    }
    .await;
    service.abort();
    result
}

/// The `p`th percentile (nearest rank) of sorted `values`.
fn percentile(values: &[Duration], p: f64) -> Duration {
    let rank = ((p / 100.0) * values.len() as f64).ceil() as usize;
    values[rank.clamp(1, values.len()) - 1]
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// One side's results, `None` where it did not run or no run completed.
#[derive(Default)]
struct Side {
    pubsub: [Option<f64>; 2],
    p50: Option<Duration>,
    p99: Option<Duration>,
}

pub fn run(args: &[String]) -> anyhow::Result<()> {
    let opts = Opts::parse(args)?;
    tools::install_all()?;
    build_release()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let workloads: [(&str, usize, u64); 2] = [
        ("16 B", 16, opts.messages.unwrap_or(2_000_000)),
        ("1 KiB", 1024, opts.messages.unwrap_or(500_000)),
    ];
    let mut sides = [Side::default(), Side::default()];
    let mut clusters = Vec::new();
    if opts.nats {
        clusters.push((0, start_nats_cluster()?));
    }
    if opts.infinistream {
        clusters.push((1, start_infinistream_cluster(250)?));
    }
    for (i, cluster) in &clusters {
        let side = &mut sides[*i];
        let [one, two] = cluster.ports;
        for (w, (label, size, count)) in workloads.iter().enumerate() {
            // Warm up, then best of three; a run that stalls or loses messages is
            // reported with what the servers counted as dropped, and skipped.
            if let Err(e) = rt.block_on(pubsub(one, two, *size, (count / 10).max(1))) {
                eprintln!(
                    "xtask: {} {label} warm-up: {e:#} ({})",
                    cluster.name,
                    cluster.losses()
                );
            }
            for _ in 0..3 {
                match rt.block_on(pubsub(one, two, *size, *count)) {
                    Ok(rate) => side.pubsub[w] = Some(side.pubsub[w].unwrap_or(0.0).max(rate)),
                    Err(e) => eprintln!(
                        "xtask: {} {label}: run skipped: {e:#} ({})",
                        cluster.name,
                        cluster.losses()
                    ),
                }
            }
        }
        match rt.block_on(request_reply(cluster)) {
            Ok(rtts) => {
                side.p50 = Some(percentile(&rtts, 50.0));
                side.p99 = Some(percentile(&rtts, 99.0));
            }
            Err(e) => eprintln!("xtask: {} request/reply: {e:#}", cluster.name),
        }
    }
    drop(clusters);

    let [nats, inf] = &sides;
    let num = |v: Option<f64>| match v {
        Some(v) => format!("{v:.0}"),
        None => "—".into(),
    };
    let ratio = |n: Option<f64>, i: Option<f64>| match (n, i) {
        (Some(n), Some(i)) if n > 0.0 => format!("{:.2}×", i / n),
        _ => "—".into(),
    };
    println!(
        "| across two servers (pub/requester on 1, sub/responder on 2) | nats-server | InfiniStream | ratio |"
    );
    println!("|---|---:|---:|---:|");
    for (w, (label, _, count)) in workloads.iter().enumerate() {
        println!(
            "| pub/sub {label}, {count} msgs, msgs/s (higher is better) | {} | {} | {} |",
            num(nats.pubsub[w]),
            num(inf.pubsub[w]),
            ratio(nats.pubsub[w], inf.pubsub[w])
        );
    }
    for (label, n, i) in [("p50", nats.p50, inf.p50), ("p99", nats.p99, inf.p99)] {
        let (n, i) = (n.map(micros), i.map(micros));
        println!(
            "| request/reply 16 B, {label} µs (lower is better) | {} | {} | {} |",
            num(n),
            num(i),
            ratio(n, i)
        );
    }
    let failed = (opts.nats && (nats.pubsub.iter().any(Option::is_none) || nats.p50.is_none()))
        || (opts.infinistream && (inf.pubsub.iter().any(Option::is_none) || inf.p50.is_none()));
    if failed {
        bail!("some measurements did not complete (see above)");
    }
    Ok(())
}
