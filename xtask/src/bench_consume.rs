//! `cargo xtask bench consume`: JetStream pull consumers, nats-server (file storage)
//! and InfiniStream (local bucket, embedded control plane) side by side, same client
//! (async-nats), one run.
//!
//! - throughput: a durable pull consumer drains 200,000 × 1 KiB in fetches of 500,
//!   with explicit acks (every message) and with ack-all (the last of each fetch);
//!   cold (right after a server restart: empty caches) and warm (again, on the same
//!   process); msgs/s and MB/s;
//! - InfiniStream's bucket GET bytes per consumed byte (from its `/metrics`);
//! - end-to-end latency publish → delivery p50/p99 at a steady 1,000 msg/s.
//!
//! A server whose consumers fail (e.g. not built yet) gets its rows reported as failed
//! with the error, and the run goes on.
//!
//! Options for iterating (the documented numbers use none of them):
//! `--only infinistream|nats-server` runs one server, `--messages N` consumes N
//! instead of 200,000, `--ack explicit|all` runs one ack mode, `--no-latency` skips
//! the latency part, `--pause` prints each InfiniStream agent's pid and waits a few
//! seconds before each pass (time to attach `perf record -p`).

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use async_nats::jetstream::{self, consumer};
use bytes::Bytes;
use futures::StreamExt;

use crate::bench::{
    Server, build_release, parse_only, pause_for_profiler, start_infinistream, start_nats_server,
};
use crate::bench_js::{metric_sum, publish_throughput, scrape};
use crate::tools;

const DEFAULT_TOTAL: usize = 200_000;
const SIZE: usize = 1024;
const BATCH: usize = 500;
/// The most one consume run may take before it is reported as stalled.
const RUN_BUDGET: Duration = Duration::from_secs(120);
const LATENCY_SECONDS: u64 = 10;

/// What one run measures (see the module docs for the options).
#[derive(Debug, Clone)]
struct Opts {
    total: usize,
    nats: bool,
    infinistream: bool,
    ack_modes: Vec<bool>,
    latency: bool,
    pause: bool,
}

impl Opts {
    fn parse(args: &[String]) -> anyhow::Result<Opts> {
        let mut o = Opts {
            total: DEFAULT_TOTAL,
            nats: true,
            infinistream: true,
            ack_modes: vec![false, true],
            latency: true,
            pause: false,
        };
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            let mut value = || it.next().with_context(|| format!("{arg} needs a value"));
            match arg.as_str() {
                "--only" => (o.nats, o.infinistream) = parse_only(value()?)?,
                "--messages" => {
                    o.total = value()?.parse().context("--messages takes a count")?;
                    if o.total == 0 {
                        bail!("--messages must be at least 1");
                    }
                }
                "--ack" => {
                    o.ack_modes = match value()?.as_str() {
                        "explicit" => vec![false],
                        "all" => vec![true],
                        other => bail!("--ack explicit|all, not `{other}`"),
                    }
                }
                "--no-latency" => o.latency = false,
                "--pause" => o.pause = true,
                other => bail!("unknown option `{other}` for bench consume"),
            }
        }
        Ok(o)
    }
}

pub fn run(args: &[String]) -> anyhow::Result<()> {
    let opts = Opts::parse(args)?;
    tools::install_all()?;
    build_release()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async_main(opts))
}

async fn context(server: &Server) -> anyhow::Result<jetstream::Context> {
    let client = async_nats::connect(format!("nats://127.0.0.1:{}", server.port)).await?;
    Ok(jetstream::context::ContextBuilder::new()
        .timeout(Duration::from_secs(30))
        .build(client))
}

/// Bytes the InfiniStream read path fetched from the bucket so far (0 for nats-server).
fn bucket_read_bytes(server: &Server) -> f64 {
    metric_sum(
        &scrape(server.http_port),
        "infinistream_fetcher_bucket_read_bytes_total",
    )
}

struct Consumed {
    msgs_per_sec: f64,
    mb_per_sec: f64,
    get_bytes_per_byte: f64,
}

/// Drains stream `B0` with a new durable pull consumer, `BATCH` per fetch.
async fn consume(
    server: &Server,
    name: &str,
    ack_all: bool,
    total: usize,
) -> anyhow::Result<Consumed> {
    let js = context(server).await?;
    let stream = js.get_stream("B0").await.context("get stream B0")?;
    let consumer = stream
        .create_consumer(consumer::pull::Config {
            durable_name: Some(name.to_owned()),
            ack_policy: if ack_all {
                consumer::AckPolicy::All
            } else {
                consumer::AckPolicy::Explicit
            },
            max_ack_pending: 2 * BATCH as i64,
            ..Default::default()
        })
        .await
        .context("create pull consumer")?;
    let read_before = bucket_read_bytes(server);
    let start = Instant::now();
    let mut got = 0usize;
    let drain = async {
        let mut empty = 0;
        while got < total {
            let mut batch = consumer
                .fetch()
                .max_messages(BATCH)
                .expires(Duration::from_secs(2))
                .messages()
                .await
                .context("fetch")?;
            let mut last = None;
            let mut n = 0;
            while let Some(msg) = batch.next().await {
                let msg = msg.map_err(|e| anyhow::anyhow!("fetched message: {e}"))?;
                n += 1;
                if ack_all {
                    last = Some(msg);
                } else {
                    msg.ack().await.map_err(|e| anyhow::anyhow!("ack: {e}"))?;
                }
            }
            if let Some(msg) = last {
                msg.ack()
                    .await
                    .map_err(|e| anyhow::anyhow!("ack all: {e}"))?;
            }
            got += n;
            if n == 0 {
                empty += 1;
                if empty == 5 {
                    bail!("five fetches in a row returned nothing after {got} of {total}");
                }
            } else {
                empty = 0;
            }
        }
        anyhow::Ok(())
    };
    match tokio::time::timeout(RUN_BUDGET, drain).await {
        Ok(result) => result?,
        Err(_) => bail!("{got} of {total} consumed after {RUN_BUDGET:?}"),
    }
    let elapsed = start.elapsed().as_secs_f64();
    let read = bucket_read_bytes(server) - read_before;
    let _ = stream.delete_consumer(name).await;
    let bytes = (total * SIZE) as f64;
    Ok(Consumed {
        msgs_per_sec: total as f64 / elapsed,
        mb_per_sec: bytes / elapsed / 1e6,
        get_bytes_per_byte: read / bytes,
    })
}

fn now_nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

/// Publish → delivery latency (p50, p99 in ms) with a pull consumer on stream `L`
/// while 1 KiB messages are published at a steady 1,000 msg/s.
async fn e2e_latency(server: &Server) -> anyhow::Result<(f64, f64)> {
    let js = context(server).await?;
    let _ = js.delete_stream("L").await;
    let stream = js
        .create_stream(jetstream::stream::Config {
            name: "L".into(),
            subjects: vec!["lat".into()],
            ..Default::default()
        })
        .await
        .context("create stream L")?;
    let consumer = stream
        .create_consumer(consumer::pull::Config {
            durable_name: Some("lat".into()),
            ack_policy: consumer::AckPolicy::Explicit,
            ..Default::default()
        })
        .await
        .context("create pull consumer")?;
    let mut messages = consumer.messages().await.context("consume")?;
    let total = (LATENCY_SECONDS * 1000) as usize;
    let publisher = {
        let js = context(server).await?;
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(1));
            let mut acks = futures::stream::FuturesUnordered::new();
            for _ in 0..total {
                tick.tick().await;
                let mut payload = vec![b'x'; SIZE];
                payload[..16].copy_from_slice(&now_nanos().to_be_bytes());
                let ack = js.publish("lat", Bytes::from(payload)).await?;
                acks.push(ack.into_future());
                while let Some(Some(ack)) = futures::FutureExt::now_or_never(acks.next()) {
                    ack?;
                }
            }
            while let Some(ack) = acks.next().await {
                ack?;
            }
            anyhow::Ok(())
        })
    };
    let mut latencies = Vec::with_capacity(total);
    let receive = async {
        while latencies.len() < total {
            let Some(msg) = messages.next().await else {
                bail!("the consumer's message stream ended");
            };
            let msg = msg.map_err(|e| anyhow::anyhow!("delivered message: {e}"))?;
            let sent = msg
                .payload
                .get(..16)
                .and_then(|b| <[u8; 16]>::try_from(b).ok())
                .map_or(0, u128::from_be_bytes);
            latencies.push(now_nanos().saturating_sub(sent) as f64 / 1e6);
            msg.ack().await.map_err(|e| anyhow::anyhow!("ack: {e}"))?;
        }
        anyhow::Ok(())
    };
    match tokio::time::timeout(Duration::from_secs(LATENCY_SECONDS + 60), receive).await {
        Ok(result) => result?,
        Err(_) => bail!(
            "{} of {total} delivered within {} s",
            latencies.len(),
            LATENCY_SECONDS + 60
        ),
    }
    publisher.await??;
    let _ = js.delete_stream("L").await;
    latencies.sort_by(f64::total_cmp);
    let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
    Ok((pct(0.50), pct(0.99)))
}

/// `--pause`: names the server's pid and gives a profiler time to attach.
async fn pause(server: &Server, opts: &Opts, pass: &str) {
    if opts.pause {
        pause_for_profiler(server, pass).await;
    }
}

/// Fills stream `B0` with the run's message count × 1 KiB, then runs the consume
/// passes (cold and warm per ack mode).
async fn throughput_rows(
    server: &mut Server,
    opts: &Opts,
) -> Vec<(String, anyhow::Result<Consumed>)> {
    let mut rows = Vec::new();
    let total = opts.total;
    if let Err(e) = publish_throughput(server, 1, SIZE, total, 4096).await {
        rows.push(("fill".to_owned(), Err(e.context("publishing the data set"))));
        return rows;
    }
    for &ack_all in &opts.ack_modes {
        let ack = if ack_all { "ack all" } else { "explicit ack" };
        let restarted = server.restart().context("restart for a cold run");
        let cold = match restarted {
            Ok(()) => {
                pause(server, opts, "cold").await;
                consume(
                    server,
                    &format!("cold{}", u8::from(ack_all)),
                    ack_all,
                    total,
                )
                .await
            }
            Err(e) => Err(e),
        };
        rows.push((format!("cold, {ack}"), cold));
        pause(server, opts, "warm").await;
        let warm = consume(
            server,
            &format!("warm{}", u8::from(ack_all)),
            ack_all,
            total,
        )
        .await;
        rows.push((format!("warm, {ack}"), warm));
    }
    rows
}

async fn async_main(opts: Opts) -> anyhow::Result<()> {
    let total = opts.total;
    println!(
        "### Pull consume, {total} × 1 KiB, fetches of {BATCH} (cold = right after a server restart)\n"
    );
    println!(
        "| pass | nats-server msgs/s | InfiniStream msgs/s | ratio | nats-server MB/s | InfiniStream MB/s | InfiniStream bucket GET bytes per consumed byte |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    let mut nats = if opts.nats {
        Some(start_nats_server()?)
    } else {
        None
    };
    let a = match nats.as_mut() {
        Some(server) => throughput_rows(server, &opts).await,
        None => Vec::new(),
    };
    let mut inf = if opts.infinistream {
        Some(start_infinistream(250)?)
    } else {
        None
    };
    let b = match inf.as_mut() {
        Some(server) => throughput_rows(server, &opts).await,
        None => Vec::new(),
    };
    let show = |r: &anyhow::Result<Consumed>| match r {
        Ok(c) => format!("{:.0}", c.msgs_per_sec),
        Err(e) => format!("failed: {e:#}"),
    };
    for i in 0..a.len().max(b.len()) {
        let label = a.get(i).or(b.get(i)).map_or("", |(l, _)| l.as_str());
        let rate = |r: Option<&(String, anyhow::Result<Consumed>)>| match r {
            Some((_, Ok(c))) => Some(c.msgs_per_sec),
            _ => None,
        };
        crate::bench::record(
            "consume",
            format!("pull consume, {label}"),
            "msgs/s",
            rate(a.get(i)),
            rate(b.get(i)),
            true,
        );
        match (a.get(i).map(|r| &r.1), b.get(i).map(|r| &r.1)) {
            (Some(Ok(x)), Some(Ok(y))) => println!(
                "| {label} | {:.0} | {:.0} | {:.2}× | {:.1} | {:.1} | {:.3} |",
                x.msgs_per_sec,
                y.msgs_per_sec,
                y.msgs_per_sec / x.msgs_per_sec,
                x.mb_per_sec,
                y.mb_per_sec,
                y.get_bytes_per_byte
            ),
            (x, y) => {
                let cell = |r: Option<&anyhow::Result<Consumed>>| r.map_or(String::new(), show);
                let mb = |r: Option<&anyhow::Result<Consumed>>| match r {
                    Some(Ok(c)) => format!("{:.1}", c.mb_per_sec),
                    _ => String::new(),
                };
                // One server ran (`--only`) or one failed: its own columns still show.
                let gets = match y {
                    Some(Ok(c)) => format!("{:.3}", c.get_bytes_per_byte),
                    _ => String::new(),
                };
                println!(
                    "| {label} | {} | {} | | {} | {} | {gets} |",
                    cell(x),
                    cell(y),
                    mb(x),
                    mb(y)
                );
            }
        }
    }

    if !opts.latency {
        return Ok(());
    }
    println!("\n### Publish → delivery latency at 1,000 msg/s, 1 KiB, pull consumer\n");
    println!("| server | p50 ms | p99 ms |");
    println!("|---|---:|---:|");
    for (server, label) in [
        (&nats, "nats-server (file)"),
        (&inf, "InfiniStream, 250 ms window"),
    ] {
        let Some(server) = server else { continue };
        match e2e_latency(server).await {
            Ok((p50, p99)) => println!("| {label} | {p50:.2} | {p99:.2} |"),
            Err(e) => println!("| {label} | failed: {e:#} | |"),
        }
    }
    if !opts.infinistream {
        return Ok(());
    }
    drop(inf);
    let inf50 = start_infinistream(50)?;
    match e2e_latency(&inf50).await {
        Ok((p50, p99)) => println!("| InfiniStream, 50 ms window | {p50:.2} | {p99:.2} |"),
        Err(e) => println!("| InfiniStream, 50 ms window | failed: {e:#} | |"),
    }
    Ok(())
}
