//! `cargo xtask bench many-streams`: 10,000 streams × 10 messages, nats-server (file
//! storage) and InfiniStream (local bucket, embedded control plane, default window) in
//! one run: create every stream, publish 10 × 1 KiB to each (asynchronous, 4,096 acks
//! in flight), read every message back by sequence (`STREAM.MSG.GET`), each phase timed,
//! with the server's resident memory per stream (RSS growth over the run divided by
//! the streams; InfiniStream's includes its embedded control plane).
//!
//! `--streams N` changes the stream count (for a quick look); `--only` runs one server.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use async_nats::jetstream;
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::FuturesUnordered;

use crate::bench::{
    Server, build_release, parse_only, record, start_infinistream, start_nats_server,
};
use crate::tools;

const DEFAULT_STREAMS: usize = 10_000;
const PER_STREAM: u64 = 10;
const SIZE: usize = 1024;
/// Concurrent stream creations and reads; publishes keep this many acks in flight.
const CREATE_CONCURRENCY: usize = 64;
const READ_CONCURRENCY: usize = 256;
const PUBLISH_IN_FLIGHT: usize = 4096;
/// Longest any phase may take before the row is reported as failed.
const PHASE_BUDGET: Duration = Duration::from_secs(300);

/// One server's run, seconds per phase.
#[derive(Debug, Clone, Copy)]
struct Many {
    create_s: f64,
    publish_s: f64,
    read_s: f64,
    rss_per_stream_kib: f64,
}

impl Many {
    fn total_s(&self) -> f64 {
        self.create_s + self.publish_s + self.read_s
    }
}

pub fn run(args: &[String]) -> anyhow::Result<()> {
    let (mut nats, mut inf, mut streams) = (true, true, DEFAULT_STREAMS);
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = || it.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--only" => (nats, inf) = parse_only(value()?)?,
            "--streams" => {
                streams = value()?.parse().context("--streams takes a count")?;
                if streams == 0 {
                    bail!("--streams must be at least 1");
                }
            }
            other => {
                bail!("unknown option `{other}` for bench many-streams (try --streams, --only)")
            }
        }
    }
    tools::install_all()?;
    build_release()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(table(nats, inf, streams))
}

async fn table(nats: bool, inf: bool, streams: usize) -> anyhow::Result<()> {
    println!(
        "### Many streams: {streams} streams × {PER_STREAM} × 1 KiB (create, publish, read back by sequence)\n"
    );
    println!("| server | create s | publish s | read back s | end to end s | RSS per stream KiB |");
    println!("|---|---:|---:|---:|---:|---:|");
    let mut results = [None, None];
    for (i, run) in [nats, inf].into_iter().enumerate() {
        if !run {
            continue;
        }
        let server = if i == 0 {
            start_nats_server()?
        } else {
            start_infinistream(250)?
        };
        let name = if i == 0 {
            "nats-server (file)"
        } else {
            "InfiniStream, 250 ms window"
        };
        match many(&server, streams).await {
            Ok(m) => {
                println!(
                    "| {name} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} |",
                    m.create_s,
                    m.publish_s,
                    m.read_s,
                    m.total_s(),
                    m.rss_per_stream_kib
                );
                results[i] = Some(m);
            }
            Err(e) => println!("| {name} | failed: {e:#} | | | | |"),
        }
    }
    let [a, b] = results;
    let figures: [(&str, &'static str, crate::bench::Pick<Many>); 5] = [
        ("create", "s", |m| m.create_s),
        ("publish", "s", |m| m.publish_s),
        ("read back", "s", |m| m.read_s),
        ("end to end", "s", Many::total_s),
        ("RSS per stream", "KiB", |m| m.rss_per_stream_kib),
    ];
    for (what, unit, f) in figures {
        record(
            "many-streams",
            format!("{streams} streams × {PER_STREAM}: {what}"),
            unit,
            a.as_ref().map(f),
            b.as_ref().map(f),
            false,
        );
    }
    Ok(())
}

async fn within<T>(
    phase: &str,
    work: impl std::future::Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    match tokio::time::timeout(PHASE_BUDGET, work).await {
        Ok(result) => result.with_context(|| format!("{phase} failed")),
        Err(_) => bail!("{phase} did not finish in {} s", PHASE_BUDGET.as_secs()),
    }
}

async fn many(server: &Server, streams: usize) -> anyhow::Result<Many> {
    let client = async_nats::connect(format!("nats://127.0.0.1:{}", server.port)).await?;
    let mut js = jetstream::new(client);
    js.set_timeout(Duration::from_secs(60));
    let rss_before = crate::bench_js::rss_mib(server.child.id());

    let started = Instant::now();
    within("create", async {
        let mut creating = futures::stream::iter(0..streams)
            .map(|i| {
                let js = js.clone();
                async move {
                    js.create_stream(jetstream::stream::Config {
                        name: format!("M{i}"),
                        subjects: vec![format!("m.{i}")],
                        ..Default::default()
                    })
                    .await
                    .with_context(|| format!("create stream M{i}"))
                }
            })
            .buffer_unordered(CREATE_CONCURRENCY);
        while let Some(created) = creating.next().await {
            created?;
        }
        anyhow::Ok(())
    })
    .await?;
    let create_s = started.elapsed().as_secs_f64();

    let started = Instant::now();
    within("publish", async {
        let mut acks = FuturesUnordered::new();
        for n in 0..PER_STREAM {
            for i in 0..streams {
                while acks.len() >= PUBLISH_IN_FLIGHT {
                    if let Some(done) = acks.next().await {
                        done?;
                    }
                }
                let mut payload = vec![b'x'; SIZE];
                payload[..8].copy_from_slice(&n.to_be_bytes());
                let ack = js.publish(format!("m.{i}"), Bytes::from(payload)).await?;
                acks.push(async move { ack.await.map(drop).map_err(anyhow::Error::from) });
            }
        }
        while let Some(done) = acks.next().await {
            done?;
        }
        anyhow::Ok(())
    })
    .await?;
    let publish_s = started.elapsed().as_secs_f64();

    let started = Instant::now();
    within("read back", async {
        let mut reading = futures::stream::iter(0..streams)
            .map(|i| {
                let js = js.clone();
                async move {
                    let stream = js
                        .get_stream_no_info(format!("M{i}"))
                        .await
                        .with_context(|| format!("stream M{i}"))?;
                    for seq in 1..=PER_STREAM {
                        let msg = stream
                            .get_raw_message(seq)
                            .await
                            .with_context(|| format!("M{i} sequence {seq}"))?;
                        if msg.payload.len() != SIZE {
                            bail!("M{i} sequence {seq}: {} bytes", msg.payload.len());
                        }
                    }
                    anyhow::Ok(())
                }
            })
            .buffer_unordered(READ_CONCURRENCY / PER_STREAM as usize);
        while let Some(read) = reading.next().await {
            read?;
        }
        anyhow::Ok(())
    })
    .await?;
    let read_s = started.elapsed().as_secs_f64();
    let rss_after = crate::bench_js::rss_mib(server.child.id());
    Ok(Many {
        create_s,
        publish_s,
        read_s,
        rss_per_stream_kib: (rss_after - rss_before).max(0.0) * 1024.0 / streams as f64,
    })
}
