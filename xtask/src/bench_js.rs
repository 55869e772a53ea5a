//! `cargo xtask bench js`: JetStream publishing, nats-server (file storage) and
//! InfiniStream (local bucket, embedded control plane) side by side, same client
//! (async-nats), same workloads, one run.
//!
//! - throughput: async publish with a fixed number of acks in flight spread over 8
//!   connections, 16 B and 1 KiB, 1 and 100 streams, at 4,096 and 65,536 in flight;
//!   msgs/s, MB/s and server CPU-seconds per GB ingested;
//! - ack latency p50/p99 at a steady 1,000 msg/s, InfiniStream with 50, 100 and 250 ms
//!   windows;
//! - objects written per second by InfiniStream (from its `/metrics`);
//! - sequential publishing (`sequential`): a publish or KV put on an idle server, each
//!   awaited, p50/p99, and 100 back-to-back awaited publishes, InfiniStream at 250 and
//!   50 ms windows, with the average of each step of the idle path (from `/metrics`);
//! - counter increments (`counters`): `Nats-Incr: 1` on one counter from 8 connections,
//!   4,096 in flight; increments/s, and the final total checked;
//! - atomic and fast-ingest batch publish (`atomic`, `fast`): see `bench_batch`.
//!
//! Options for iterating (the documented numbers use none of them):
//! `--only infinistream|nats-server` runs one server, `--case STREAMS,SIZE,IN_FLIGHT`
//! (repeatable) runs only those publish rows, `--pause` prints the agent's pid and waits
//! a few seconds before each InfiniStream row (time to attach `perf record -p`). Each
//! InfiniStream row also prints its flush timings (upload, commit call, upload to commit)
//! from the agent's `/metrics` on stderr.

use std::io::{Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use async_nats::jetstream::{self, stream};
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::FuturesUnordered;

use crate::bench::{
    Server, build_release, parse_only, pause_for_profiler, start_infinistream, start_nats_server,
};
use crate::tools;

/// Sections of the benchmark; `cargo xtask bench js` runs them all, `cargo xtask bench
/// js outrun latency` only those named.
const SECTIONS: [&str; 7] = [
    "publish",
    "outrun",
    "latency",
    "sequential",
    "counters",
    "atomic",
    "fast",
];

/// The publish rows: streams, payload size, messages, acks in flight.
const CASES: [(usize, usize, usize, usize); 6] = [
    (1, 16, 200_000, 4096),
    (1, 1024, 200_000, 4096),
    (100, 1024, 200_000, 4096),
    (1, 16, 400_000, 65_536),
    (1, 1024, 400_000, 65_536),
    (100, 1024, 400_000, 65_536),
];

/// What one run measures (see the module docs for the options).
#[derive(Debug, Clone)]
struct Opts {
    /// publish, outrun, latency, sequential, counters, atomic, fast.
    sections: [bool; 7],
    nats: bool,
    infinistream: bool,
    /// `(streams, size, in_flight)` filters on [`CASES`]; empty = all.
    cases: Vec<(usize, usize, usize)>,
    pause: bool,
}

impl Opts {
    fn parse(args: &[String]) -> anyhow::Result<Opts> {
        let mut o = Opts {
            sections: [false; 7],
            nats: true,
            infinistream: true,
            cases: Vec::new(),
            pause: false,
        };
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            let mut value = || it.next().with_context(|| format!("{arg} needs a value"));
            match arg.as_str() {
                "--only" => (o.nats, o.infinistream) = parse_only(value()?)?,
                "--case" => {
                    let v = value()?;
                    let parts: Vec<usize> = v
                        .split(',')
                        .map(str::parse)
                        .collect::<Result<_, _>>()
                        .with_context(|| format!("--case STREAMS,SIZE,IN_FLIGHT, not `{v}`"))?;
                    let &[streams, size, in_flight] = parts.as_slice() else {
                        bail!("--case STREAMS,SIZE,IN_FLIGHT, not `{v}`");
                    };
                    if !CASES
                        .iter()
                        .any(|c| (c.0, c.1, c.3) == (streams, size, in_flight))
                    {
                        bail!("--case `{v}` is not one of the publish rows {CASES:?}");
                    }
                    o.cases.push((streams, size, in_flight));
                }
                "--pause" => o.pause = true,
                section => match SECTIONS.iter().position(|s| *s == section) {
                    Some(i) => o.sections[i] = true,
                    None => bail!(
                        "unknown bench js section or option `{section}`; sections: {SECTIONS:?}, options: --only, --case, --pause"
                    ),
                },
            }
        }
        if !o.sections.contains(&true) {
            o.sections = [true; 7];
        }
        Ok(o)
    }

    fn runs_case(&self, (streams, size, _, in_flight): (usize, usize, usize, usize)) -> bool {
        self.cases.is_empty() || self.cases.contains(&(streams, size, in_flight))
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

fn cpu_seconds(pid: u32) -> f64 {
    // utime + stime, fields 14 and 15 of /proc/<pid>/stat, in clock ticks (100 Hz).
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    let Some(after_comm) = stat.rsplit_once(')').map(|(_, rest)| rest) else {
        return 0.0;
    };
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

/// The process's peak resident set so far (`VmHWM`), in MiB.
fn peak_rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kib| kib.parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0)
}

/// The agent's Prometheus text from `/metrics` (empty when it has no HTTP port).
pub(crate) fn scrape(http_port: u16) -> String {
    if http_port == 0 {
        return String::new();
    }
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", http_port)) else {
        return String::new();
    };
    let _ = stream.write_all(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n");
    let mut body = String::new();
    let _ = stream.read_to_string(&mut body);
    body
}

/// The sum of every sample of metric `name` (all label sets).
pub(crate) fn metric_sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
        })
        .filter_map(|l| l.rsplit(' ').next())
        .filter_map(|v| v.parse::<f64>().ok())
        .sum()
}

fn objects_written(http_port: u16) -> f64 {
    metric_sum(
        &scrape(http_port),
        "infinistream_gateway_objects_written_total",
    )
}

async fn setup_streams(port: u16, streams: usize) -> anyhow::Result<()> {
    let client = async_nats::connect(format!("nats://127.0.0.1:{port}")).await?;
    let js = jetstream::new(client);
    for i in 0..streams {
        let name = format!("B{i}");
        let _ = js.delete_stream(&name).await;
        js.create_stream(stream::Config {
            name,
            subjects: vec![format!("bench.{i}")],
            ..Default::default()
        })
        .await
        .context("create bench stream")?;
    }
    Ok(())
}

/// The most one throughput row may take before it is reported as stalled.
const ROW_BUDGET: Duration = Duration::from_secs(180);
/// How long each ack-latency measurement publishes at 1,000 msg/s.
const LATENCY_SECONDS: u64 = 10;

pub(crate) struct Throughput {
    msgs_per_sec: f64,
    mb_per_sec: f64,
    cpu_per_gb: f64,
    objects_per_sec: f64,
}

pub(crate) async fn publish_throughput(
    server: &Server,
    streams: usize,
    size: usize,
    total: usize,
    in_flight: usize,
) -> anyhow::Result<Throughput> {
    const CONNECTIONS: usize = 8;
    setup_streams(server.port, streams).await?;
    let progress = Arc::new(AtomicUsize::new(0));
    let payload = Bytes::from(vec![b'x'; size]);
    let cpu_before = cpu_seconds(server.child.id());
    let objects_before = objects_written(server.http_port);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..CONNECTIONS {
        let client = async_nats::connect(format!("nats://127.0.0.1:{}", server.port)).await?;
        let per_conn = total / CONNECTIONS;
        let window = (in_flight / CONNECTIONS).max(1);
        // async-nats bounds the acks a context keeps in flight (5,000 by default) and
        // makes `publish` wait for a permit that only an awaited ack future returns:
        // a window above that bound would deadlock this loop, so the context's bound is
        // the window itself.
        let js = jetstream::context::ContextBuilder::new()
            .timeout(Duration::from_secs(30))
            .max_ack_inflight(window)
            .build(client);
        let payload = payload.clone();
        let progress = progress.clone();
        tasks.push(tokio::spawn(async move {
            let mut pending = FuturesUnordered::new();
            for n in 0..per_conn {
                let subject = format!("bench.{}", (n * CONNECTIONS + c) % streams);
                let ack = js.publish(subject, payload.clone()).await?;
                pending.push(ack.into_future());
                while pending.len() >= window {
                    if let Some(result) = pending.next().await {
                        result?;
                        progress.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            while let Some(result) = pending.next().await {
                result?;
                progress.fetch_add(1, Ordering::Relaxed);
            }
            anyhow::Ok(())
        }));
    }
    let all = async {
        for task in tasks {
            task.await??;
        }
        anyhow::Ok(())
    };
    match tokio::time::timeout(ROW_BUDGET, all).await {
        Ok(done) => done?,
        Err(_) => bail!(
            "{}: {} of {total} publishes acked after {ROW_BUDGET:?}",
            server.name,
            progress.load(Ordering::Relaxed)
        ),
    }
    let elapsed = start.elapsed().as_secs_f64();
    let cpu = cpu_seconds(server.child.id()) - cpu_before;
    let bytes = (total * size) as f64;
    Ok(Throughput {
        msgs_per_sec: total as f64 / elapsed,
        mb_per_sec: bytes / elapsed / 1e6,
        cpu_per_gb: cpu / (bytes / 1e9),
        objects_per_sec: (objects_written(server.http_port) - objects_before) / elapsed,
    })
}

/// The process's resident set now (`VmRSS`), in MiB.
pub(crate) fn rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kib| kib.parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0)
}

struct Outrun {
    offered_per_sec: f64,
    stored: u64,
    rss_before: f64,
    rss_peak: f64,
}

/// A publisher that outruns the server: 8 connections core-publish 1 KiB messages (no
/// reply subject, so nothing waits for an ack) into `streams` streams as fast as the
/// connections take them for `seconds`; the server's resident set is sampled every
/// 50 ms. Then waits (up to 60 s) until the streams stop growing.
async fn outrun(server: &Server, streams: usize, seconds: u64) -> anyhow::Result<Outrun> {
    const CONNECTIONS: usize = 8;
    setup_streams(server.port, streams).await?;
    let pid = server.child.id();
    let rss_before = rss_mib(pid);
    let sent = Arc::new(AtomicUsize::new(0));
    let stop = Instant::now() + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for c in 0..CONNECTIONS {
        let client = async_nats::connect(format!("nats://127.0.0.1:{}", server.port)).await?;
        let sent = sent.clone();
        tasks.push(tokio::spawn(async move {
            let payload = Bytes::from(vec![b'x'; 1024]);
            let mut n = c;
            while Instant::now() < stop {
                for _ in 0..256 {
                    client
                        .publish(format!("bench.{}", n % streams), payload.clone())
                        .await?;
                    n += CONNECTIONS;
                }
                sent.fetch_add(256, Ordering::Relaxed);
            }
            client.flush().await?;
            anyhow::Ok(())
        }));
    }
    let mut rss_peak = rss_before;
    let started = Instant::now();
    while tasks.iter().any(|t| !t.is_finished()) {
        rss_peak = rss_peak.max(rss_mib(pid));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let offered_per_sec = sent.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64();
    for task in tasks {
        task.await??;
    }
    // Let the server store what it accepted, still sampling its memory.
    let client = async_nats::connect(format!("nats://127.0.0.1:{}", server.port)).await?;
    let js = jetstream::new(client);
    let mut stored = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let mut total = 0;
        for i in 0..streams {
            let mut stream = js.get_stream(format!("B{i}")).await?;
            total += stream.info().await?.state.messages;
        }
        rss_peak = rss_peak.max(rss_mib(pid));
        if total == stored {
            break;
        }
        stored = total;
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    Ok(Outrun {
        offered_per_sec,
        stored,
        rss_before,
        rss_peak,
    })
}

/// Ack latency p50 / p99 in ms and objects written per second, publishing 1 KiB at a
/// steady 1,000 msg/s.
async fn ack_latency(server: &Server, seconds: u64) -> anyhow::Result<(f64, f64, f64)> {
    setup_streams(server.port, 1).await?;
    let objects_before = objects_written(server.http_port);
    let start = Instant::now();
    let client = async_nats::connect(format!("nats://127.0.0.1:{}", server.port)).await?;
    let mut js = jetstream::new(client);
    js.set_timeout(Duration::from_secs(30));
    let mut pending = FuturesUnordered::new();
    let mut interval = tokio::time::interval(Duration::from_millis(1));
    let payload = Bytes::from(vec![b'x'; 1024]);
    let total = seconds * 1000;
    let mut latencies = Vec::with_capacity(total as usize);
    let mut sent = 0;
    while sent < total || !pending.is_empty() {
        tokio::select! {
            _ = interval.tick(), if sent < total => {
                let started = Instant::now();
                let ack = js.publish("bench.0", payload.clone()).await?;
                pending.push(async move { ack.await.map(|_| started.elapsed()) });
                sent += 1;
            }
            Some(result) = pending.next(), if !pending.is_empty() => {
                latencies.push(result?.as_secs_f64() * 1000.0);
            }
        }
    }
    let objects_per_sec =
        (objects_written(server.http_port) - objects_before) / start.elapsed().as_secs_f64();
    Ok((
        percentile(&mut latencies, 0.50),
        percentile(&mut latencies, 0.99),
        objects_per_sec,
    ))
}

/// The `p` quantile (0..1) of `samples` (sorted in place; 0 when empty).
pub(crate) fn percentile(samples: &mut [f64], p: f64) -> f64 {
    samples.sort_by(f64::total_cmp);
    let Some(last) = samples.len().checked_sub(1) else {
        return 0.0;
    };
    samples[((samples.len() as f64 * p) as usize).min(last)]
}

/// Awaited publishes and KV puts, each after a pause longer than any window.
const IDLE_SAMPLES: usize = 20;
const QUIET: Duration = Duration::from_millis(300);
/// Awaited publishes one right after the other.
const BACK_TO_BACK: usize = 100;

struct Sequential {
    publish_ms: (f64, f64),
    kv_put_ms: (f64, f64),
    back_to_back_s: f64,
    /// The idle publishes' and puts' metrics, to average each step of their path.
    idle_metrics: (String, String),
}

/// A publish (and a KV put) reaching an idle server, then a back-to-back sequence, each
/// awaiting its PubAck before the next.
async fn sequential(server: &Server) -> anyhow::Result<Sequential> {
    setup_streams(server.port, 1).await?;
    let client = async_nats::connect(format!("nats://127.0.0.1:{}", server.port)).await?;
    let mut js = jetstream::new(client);
    js.set_timeout(Duration::from_secs(30));
    let _ = js.delete_key_value("SEQ").await;
    let kv = js
        .create_key_value(jetstream::kv::Config {
            bucket: "SEQ".into(),
            ..Default::default()
        })
        .await
        .context("create KV bucket")?;
    let payload = Bytes::from(vec![b'x'; 1024]);
    let (mut publishes, mut puts) = (Vec::new(), Vec::new());
    let before = scrape(server.http_port);
    for _ in 0..IDLE_SAMPLES {
        tokio::time::sleep(QUIET).await;
        let started = Instant::now();
        js.publish("bench.0", payload.clone()).await?.await?;
        publishes.push(started.elapsed().as_secs_f64() * 1e3);
        tokio::time::sleep(QUIET).await;
        let started = Instant::now();
        kv.put("key", payload.clone()).await?;
        puts.push(started.elapsed().as_secs_f64() * 1e3);
    }
    let after = scrape(server.http_port);
    tokio::time::sleep(QUIET).await;
    let started = Instant::now();
    for _ in 0..BACK_TO_BACK {
        js.publish("bench.0", payload.clone()).await?.await?;
    }
    let back_to_back_s = started.elapsed().as_secs_f64();
    Ok(Sequential {
        publish_ms: (
            percentile(&mut publishes, 0.50),
            percentile(&mut publishes, 0.99),
        ),
        kv_put_ms: (percentile(&mut puts, 0.50), percentile(&mut puts, 0.99)),
        back_to_back_s,
        idle_metrics: (before, after),
    })
}

async fn sequential_table(nats: Option<&Server>, opts: &Opts) -> anyhow::Result<()> {
    println!(
        "\n### Sequential publishing (1 KiB, each awaited): idle p50/p99 ms after {} ms quiet, {BACK_TO_BACK} back-to-back\n",
        QUIET.as_millis()
    );
    println!(
        "| server | publish p50 | publish p99 | KV put p50 | KV put p99 | {BACK_TO_BACK} back-to-back s |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    let row = |name: &str, r: &Sequential| {
        println!(
            "| {name} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} |",
            r.publish_ms.0, r.publish_ms.1, r.kv_put_ms.0, r.kv_put_ms.1, r.back_to_back_s
        );
    };
    let reference = match nats {
        Some(nats) => {
            let r = sequential(nats).await?;
            row("nats-server (file)", &r);
            Some(r)
        }
        None => None,
    };
    if !opts.infinistream {
        return Ok(());
    }
    let mut steps = Vec::new();
    for window in [250u64, 50] {
        let inf = start_infinistream(window)?;
        let r = sequential(&inf).await?;
        row(&format!("InfiniStream, {window} ms window"), &r);
        let figures: [(&str, crate::bench::Pick<Sequential>); 2] = [
            ("idle publish p50", |r| r.publish_ms.0),
            ("idle KV put p50", |r| r.kv_put_ms.0),
        ];
        for (what, f) in figures {
            crate::bench::record(
                "publish",
                format!("{what}, {window} ms window"),
                "ms",
                reference.as_ref().map(f),
                Some(f(&r)),
                false,
            );
        }
        steps.push((window, r.idle_metrics));
    }
    println!(
        "\nInfiniStream's idle path, average ms per flush (`infinistream_gateway_*_seconds`; PUT and commit also p50, interpolated in the histogram's bucket):\n"
    );
    println!(
        "| window | buffer wait | encode | PUT | PUT p50 | commit wait | commit | commit p50 | answer |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (window, (before, after)) in steps {
        let avg = |step: &str| {
            histogram_avg_ms(
                &before,
                &after,
                &format!("infinistream_gateway_{step}_seconds"),
            )
        };
        let p50 = |step: &str| {
            histogram_quantile_ms(
                &before,
                &after,
                &format!("infinistream_gateway_{step}_seconds"),
                0.5,
            )
        };
        println!(
            "| {window} ms | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} |",
            avg("buffer_wait"),
            avg("encode"),
            avg("upload"),
            p50("upload"),
            avg("commit_wait"),
            avg("commit"),
            p50("commit"),
            avg("answer"),
        );
    }
    Ok(())
}

async fn async_main(opts: Opts) -> anyhow::Result<()> {
    let [
        publish,
        outrun_section,
        latency,
        sequential,
        counters,
        atomic,
        fast,
    ] = opts.sections;
    let nats = if opts.nats {
        Some(start_nats_server()?)
    } else {
        None
    };
    let inf = if opts.infinistream && (publish || outrun_section || counters || atomic || fast) {
        Some(start_infinistream(250)?)
    } else {
        None
    };
    if publish {
        publish_table(nats.as_ref(), inf.as_ref(), &opts).await;
    }
    if outrun_section {
        outrun_table(nats.as_ref(), inf.as_ref()).await;
    }
    if counters {
        counters_table(nats.as_ref(), inf.as_ref()).await;
    }
    if atomic {
        crate::bench_batch::atomic_table(nats.as_ref(), inf.as_ref()).await;
    }
    if fast {
        crate::bench_batch::fast_table(nats.as_ref(), inf.as_ref()).await;
    }
    drop(inf);
    if latency {
        latency_table(nats.as_ref(), &opts).await?;
    }
    if sequential {
        sequential_table(nats.as_ref(), &opts).await?;
    }
    Ok(())
}

/// The `q` quantile (0..1) of a Prometheus histogram between two scrapes, in
/// milliseconds, interpolated linearly inside the bucket it falls in (as Prometheus's
/// `histogram_quantile` does); 0 without samples.
fn histogram_quantile_ms(before: &str, after: &str, name: &str, q: f64) -> f64 {
    let buckets = |text: &str| -> Vec<(f64, f64)> {
        let prefix = format!("{name}_bucket{{");
        let mut out: Vec<(f64, f64)> = Vec::new();
        for line in text.lines().filter(|l| l.starts_with(&prefix)) {
            let Some(le) = line
                .split("le=\"")
                .nth(1)
                .and_then(|rest| rest.split('"').next())
            else {
                continue;
            };
            let bound = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().unwrap_or(f64::INFINITY)
            };
            let count = line
                .rsplit(' ')
                .next()
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0);
            match out.iter_mut().find(|(b, _)| *b == bound) {
                Some((_, c)) => *c += count,
                None => out.push((bound, count)),
            }
        }
        out.sort_by(|a, b| a.0.total_cmp(&b.0));
        out
    };
    let (b, a) = (buckets(before), buckets(after));
    let cumulative: Vec<(f64, f64)> = a
        .iter()
        .map(|(bound, count)| {
            let old = b.iter().find(|(x, _)| x == bound).map_or(0.0, |(_, c)| *c);
            (*bound, count - old)
        })
        .collect();
    let Some(&(_, total)) = cumulative.last() else {
        return 0.0;
    };
    if total <= 0.0 {
        return 0.0;
    }
    let rank = q * total;
    let (mut lower, mut below) = (0.0, 0.0);
    for (bound, count) in cumulative {
        if count >= rank {
            if bound.is_infinite() {
                return lower * 1e3;
            }
            let inside = count - below;
            let frac = if inside > 0.0 {
                (rank - below) / inside
            } else {
                1.0
            };
            return (lower + (bound - lower) * frac) * 1e3;
        }
        (lower, below) = (bound, count);
    }
    lower * 1e3
}

/// Average of a Prometheus histogram in milliseconds (`_sum / _count` between two scrapes).
fn histogram_avg_ms(before: &str, after: &str, name: &str) -> f64 {
    let sum =
        metric_sum(after, &format!("{name}_sum")) - metric_sum(before, &format!("{name}_sum"));
    let count =
        metric_sum(after, &format!("{name}_count")) - metric_sum(before, &format!("{name}_count"));
    if count > 0.0 { sum / count * 1e3 } else { 0.0 }
}

async fn publish_table(nats: Option<&Server>, inf: Option<&Server>, opts: &Opts) {
    println!("### Async publish throughput (8 connections)\n");
    println!(
        "| workload | in flight | nats-server msgs/s | InfiniStream msgs/s | ratio | nats-server MB/s | InfiniStream MB/s | nats-server CPU s/GB | InfiniStream CPU s/GB | InfiniStream objects/s | InfiniStream peak RSS MiB |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let show = |r: &Option<anyhow::Result<Throughput>>, f: fn(&Throughput) -> String| match r {
        None => "–".to_string(),
        Some(Ok(t)) => f(t),
        Some(Err(_)) => "failed".to_string(),
    };
    for case in CASES {
        if !opts.runs_case(case) {
            continue;
        }
        let (streams, size, total, in_flight) = case;
        let label = format!(
            "{streams} stream{}, {}",
            if streams == 1 { "" } else { "s" },
            if size == 16 { "16 B" } else { "1 KiB" }
        );
        let a = match nats {
            Some(nats) => Some(publish_throughput(nats, streams, size, total, in_flight).await),
            None => None,
        };
        let b = match inf {
            Some(inf) => {
                if opts.pause {
                    pause_for_profiler(inf, &format!("{label}, {in_flight} in flight")).await;
                }
                let before = scrape(inf.http_port);
                let (client_cpu, agent_cpu, started) = (
                    cpu_seconds(std::process::id()),
                    cpu_seconds(inf.child.id()),
                    Instant::now(),
                );
                let b = publish_throughput(inf, streams, size, total, in_flight).await;
                let after = scrape(inf.http_port);
                let secs = started.elapsed().as_secs_f64();
                eprintln!(
                    "xtask: InfiniStream {label}, {in_flight} in flight: {:.2} cores in the agent, {:.2} in this load generator; flush avg {:.1} ms = upload {:.1} ms + commit call {:.1} ms (+ waiting for the previous commit)",
                    (cpu_seconds(inf.child.id()) - agent_cpu) / secs,
                    (cpu_seconds(std::process::id()) - client_cpu) / secs,
                    histogram_avg_ms(&before, &after, "infinistream_gateway_flush_seconds"),
                    histogram_avg_ms(&before, &after, "infinistream_gateway_upload_seconds"),
                    histogram_avg_ms(&before, &after, "infinistream_gateway_commit_seconds"),
                );
                Some(b)
            }
            None => None,
        };
        for (name, r) in [("nats-server", &a), ("InfiniStream", &b)] {
            if let Some(Err(e)) = r {
                eprintln!("xtask: {name} {label}, {in_flight} in flight failed: {e:#}");
            }
        }
        let ratio = match (&a, &b) {
            (Some(Ok(a)), Some(Ok(b))) => format!("{:.2}×", b.msgs_per_sec / a.msgs_per_sec),
            _ => String::new(),
        };
        let ok = |r: &Option<anyhow::Result<Throughput>>, f: fn(&Throughput) -> f64| match r {
            Some(Ok(t)) => Some(f(t)),
            _ => None,
        };
        crate::bench::record(
            "publish",
            format!("{label}, {in_flight} in flight"),
            "msgs/s",
            ok(&a, |t| t.msgs_per_sec),
            ok(&b, |t| t.msgs_per_sec),
            true,
        );
        crate::bench::record(
            "publish",
            format!("{label}, {in_flight} in flight, server CPU"),
            "CPU s/GB",
            ok(&a, |t| t.cpu_per_gb),
            ok(&b, |t| t.cpu_per_gb),
            false,
        );
        let rss = inf.map_or("–".to_string(), |inf| {
            format!("{:.0}", peak_rss_mib(inf.child.id()))
        });
        println!(
            "| {label} | {in_flight} | {} | {} | {ratio} | {} | {} | {} | {} | {} | {rss} |",
            show(&a, |t| format!("{:.0}", t.msgs_per_sec)),
            show(&b, |t| format!("{:.0}", t.msgs_per_sec)),
            show(&a, |t| format!("{:.1}", t.mb_per_sec)),
            show(&b, |t| format!("{:.1}", t.mb_per_sec)),
            show(&a, |t| format!("{:.1}", t.cpu_per_gb)),
            show(&b, |t| format!("{:.1}", t.cpu_per_gb)),
            show(&b, |t| format!("{:.1}", t.objects_per_sec)),
        );
    }
}

async fn outrun_table(nats: Option<&Server>, inf: Option<&Server>) {
    println!(
        "\n### Publisher outrunning the server (core publish, 1 KiB, no acks, 8 connections, 10 s)\n"
    );
    println!("| server | streams | offered msgs/s | stored msgs | RSS before MiB | peak RSS MiB |");
    println!("|---|---:|---:|---:|---:|---:|");
    for streams in [1usize, 100] {
        for server in [nats, inf].into_iter().flatten() {
            match outrun(server, streams, 10).await {
                Ok(o) => println!(
                    "| {} | {streams} | {:.0} | {} | {:.0} | {:.0} |",
                    server.name, o.offered_per_sec, o.stored, o.rss_before, o.rss_peak
                ),
                Err(e) => println!("| {} | {streams} | failed: {e:#} | | | |", server.name),
            }
        }
    }
}

async fn latency_table(nats: Option<&Server>, opts: &Opts) -> anyhow::Result<()> {
    println!("\n### Ack latency at 1,000 msg/s, 1 KiB\n");
    println!("| server | p50 ms | p99 ms | target p99 | objects/s |");
    println!("|---|---:|---:|---:|---:|");
    if let Some(nats) = nats {
        let (p50, p99, _) = ack_latency(nats, LATENCY_SECONDS).await?;
        println!("| nats-server (file) | {p50:.2} | {p99:.2} | | |");
    }
    if !opts.infinistream {
        return Ok(());
    }
    for window in [50u64, 100, 250] {
        let inf = start_infinistream(window)?;
        let (p50, p99, objects) = ack_latency(&inf, LATENCY_SECONDS).await?;
        println!(
            "| InfiniStream, {window} ms window | {p50:.2} | {p99:.2} | ≤ {} | {objects:.1} |",
            window + 50
        );
        if p99 > (window + 50) as f64 {
            eprintln!("note: p99 above window + 50 ms for the {window} ms window");
        }
    }
    Ok(())
}

/// Increments in the counter row.
const COUNTER_INCREMENTS: usize = 100_000;

async fn counters_table(nats: Option<&Server>, inf: Option<&Server>) {
    println!(
        "\n### Counter increments (`Nats-Incr: 1` on one subject, 8 connections, 4,096 in flight)\n"
    );
    println!("| server | increments | increments/s | final total |");
    println!("|---|---:|---:|---:|");
    for server in [nats, inf].into_iter().flatten() {
        match counter_increments(server, COUNTER_INCREMENTS, 4096).await {
            Ok((per_sec, total)) => println!(
                "| {} | {COUNTER_INCREMENTS} | {per_sec:.0} | {total} |",
                server.name
            ),
            Err(e) => println!(
                "| {} | {COUNTER_INCREMENTS} | failed: {e:#} | |",
                server.name
            ),
        }
    }
}

/// `total` increments of 1 on one counter from 8 connections with `in_flight` acks
/// outstanding; increments/s and the counter's final value (from the last PubAck).
async fn counter_increments(
    server: &Server,
    total: usize,
    in_flight: usize,
) -> anyhow::Result<(f64, u64)> {
    const CONNECTIONS: usize = 8;
    let client = async_nats::connect(format!("nats://127.0.0.1:{}", server.port)).await?;
    let js = jetstream::new(client);
    let _ = js.delete_stream("COUNTERS").await;
    js.create_stream(stream::Config {
        name: "COUNTERS".into(),
        subjects: vec!["count.>".into()],
        allow_message_counter: true,
        ..Default::default()
    })
    .await
    .context("create counter stream")?;
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..CONNECTIONS {
        let client = async_nats::connect(format!("nats://127.0.0.1:{}", server.port)).await?;
        let window = (in_flight / CONNECTIONS).max(1);
        let js = jetstream::context::ContextBuilder::new()
            .timeout(Duration::from_secs(30))
            .max_ack_inflight(window)
            .build(client);
        tasks.push(tokio::spawn(async move {
            let mut pending = FuturesUnordered::new();
            let mut highest = 0u64;
            let mut seen = |ack: jetstream::publish::PublishAck| -> anyhow::Result<()> {
                let value = ack.value.context("a counter PubAck without `val`")?;
                highest = highest.max(value.parse().context("`val` is not a number")?);
                Ok(())
            };
            for _ in 0..total / CONNECTIONS {
                let mut headers = async_nats::HeaderMap::new();
                headers.insert("Nats-Incr", "1");
                let ack = js
                    .publish_with_headers("count.hits", headers, Bytes::new())
                    .await?;
                pending.push(ack.into_future());
                while pending.len() >= window {
                    if let Some(result) = pending.next().await {
                        seen(result?)?;
                    }
                }
            }
            while let Some(result) = pending.next().await {
                seen(result?)?;
            }
            anyhow::Ok(highest)
        }));
    }
    let all = async {
        let mut highest = 0;
        for task in tasks {
            highest = highest.max(task.await??);
        }
        anyhow::Ok(highest)
    };
    let highest = tokio::time::timeout(ROW_BUDGET, all)
        .await
        .map_err(|_| anyhow::anyhow!("{}: counter row over {ROW_BUDGET:?}", server.name))??;
    let elapsed = start.elapsed().as_secs_f64();
    let expected = (total / CONNECTIONS * CONNECTIONS) as u64;
    if highest != expected {
        bail!(
            "{}: the counter ended at {highest}, not {expected}",
            server.name
        );
    }
    Ok((expected as f64 / elapsed, highest))
}
