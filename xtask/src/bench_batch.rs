//! `cargo xtask bench js atomic fast`: batch publishing, nats-server and InfiniStream
//! side by side (sections of `bench js`, started by it).
//!
//! - `atomic` (ADR-50): 8 connections each send atomic batches of 100 and of 1,000 ×
//!   1 KiB one after another (messages without a reply, the commit as a request);
//!   messages/s and the batch ack latency (first message sent → commit's PubAck)
//!   p50/p99;
//! - `fast` (2.14 fast-ingest): 8 connections each send one fast batch of 1 KiB
//!   messages paced by flow acks (at most two flows past the last ack, as the clients'
//!   fast publishers), asking for flow 500; messages/s and flow acks received.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use futures::StreamExt;
use serde_json::Value;

use crate::bench::Server;
use crate::bench_js::percentile;

/// Connections per row.
const CONNECTIONS: usize = 8;
/// Payload of every message.
const SIZE: usize = 1024;
/// The most one row may take.
const ROW_BUDGET: Duration = Duration::from_secs(300);
/// One answer's bound.
const ANSWER: Duration = Duration::from_secs(60);

/// Creates (or recreates) stream `name` on `<subject>` with the config's flag `flag`.
async fn create(
    client: &async_nats::Client,
    name: &str,
    subject: &str,
    flag: &str,
) -> anyhow::Result<()> {
    let _ = client
        .request(format!("$JS.API.STREAM.DELETE.{name}"), Bytes::new())
        .await;
    let body = serde_json::json!({"name": name, "subjects": [subject], flag: true});
    let answer = client
        .request(
            format!("$JS.API.STREAM.CREATE.{name}"),
            Bytes::from(body.to_string()),
        )
        .await
        .context("stream create")?;
    let answer: Value = serde_json::from_slice(&answer.payload)?;
    if let Some(error) = answer.get("error") {
        bail!("create {name}: {error}");
    }
    Ok(())
}

fn url(server: &Server) -> String {
    format!("nats://127.0.0.1:{}", server.port)
}

pub(crate) struct AtomicRow {
    msgs_per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
}

/// `batches` atomic batches of `size` messages per connection.
async fn atomic_row(server: &Server, size: u64, batches: usize) -> anyhow::Result<AtomicRow> {
    let admin = async_nats::connect(url(server)).await?;
    create(&admin, "ATOMIC", "atomic.>", "allow_atomic").await?;
    let payload = Bytes::from(vec![b'x'; SIZE]);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..CONNECTIONS {
        let client = async_nats::ConnectOptions::new()
            .request_timeout(Some(ANSWER))
            .connect(url(server))
            .await?;
        let payload = payload.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(batches);
            for b in 0..batches {
                let id = format!("c{c}b{b}");
                let began = Instant::now();
                for seq in 1..=size {
                    let mut headers = async_nats::HeaderMap::new();
                    headers.insert("Nats-Batch-Id", id.as_str());
                    headers.insert("Nats-Batch-Sequence", seq.to_string().as_str());
                    let subject = format!("atomic.{c}");
                    if seq < size {
                        client
                            .publish_with_headers(subject, headers, payload.clone())
                            .await?;
                        continue;
                    }
                    headers.insert("Nats-Batch-Commit", "1");
                    let ack = client
                        .request_with_headers(subject, headers, payload.clone())
                        .await?;
                    let ack: Value = serde_json::from_slice(&ack.payload)?;
                    if ack["count"].as_u64() != Some(size) {
                        bail!("batch {id}: {ack}");
                    }
                }
                latencies.push(began.elapsed().as_secs_f64() * 1e3);
            }
            anyhow::Ok(latencies)
        }));
    }
    let all = async {
        let mut latencies = Vec::new();
        for task in tasks {
            latencies.extend(task.await??);
        }
        anyhow::Ok(latencies)
    };
    let mut latencies = tokio::time::timeout(ROW_BUDGET, all)
        .await
        .map_err(|_| anyhow::anyhow!("{}: atomic row over {ROW_BUDGET:?}", server.name))??;
    let elapsed = start.elapsed().as_secs_f64();
    let msgs = (CONNECTIONS * batches) as f64 * size as f64;
    Ok(AtomicRow {
        msgs_per_sec: msgs / elapsed,
        p50_ms: percentile(&mut latencies, 0.50),
        p99_ms: percentile(&mut latencies, 0.99),
    })
}

pub(crate) async fn atomic_table(nats: Option<&Server>, inf: Option<&Server>) {
    println!(
        "\n### Atomic batch publish (8 connections, batches one after another per connection, 1 KiB)\n"
    );
    println!("| batch | server | messages | msgs/s | batch ack p50 ms | batch ack p99 ms |");
    println!("|---:|---|---:|---:|---:|---:|");
    for (size, batches) in [(100u64, 50usize), (1000, 10)] {
        let mut rates = Vec::new();
        for server in [nats, inf].into_iter().flatten() {
            let msgs = CONNECTIONS * batches * size as usize;
            match atomic_row(server, size, batches).await {
                Ok(r) => {
                    rates.push(r.msgs_per_sec);
                    println!(
                        "| {size} | {} | {msgs} | {:.0} | {:.1} | {:.1} |",
                        server.name, r.msgs_per_sec, r.p50_ms, r.p99_ms
                    );
                }
                Err(e) => println!("| {size} | {} | {msgs} | failed: {e:#} | | |", server.name),
            }
        }
        if let [a, b] = rates[..] {
            println!(
                "| {size} | ratio InfiniStream / nats-server | | {:.2}× | | |",
                b / a
            );
        }
    }
}

/// One fast batch of `n` messages on `subject` with flow `flow`, mode `fail`; the flow
/// acks received.
async fn fast_batch(
    client: &async_nats::Client,
    subject: String,
    id: &str,
    n: u64,
    flow: u16,
    payload: Bytes,
) -> anyhow::Result<usize> {
    let inbox = client.new_inbox();
    let mut sub = client.subscribe(format!("{inbox}.>")).await?;
    client.flush().await?;
    let reply = |seq: u64, op: u8| format!("{inbox}.{id}.{flow}.fail.{seq}.{op}.$FI");
    let (mut acked, mut window, mut acks) = (0u64, 0u64, 0usize);
    for seq in 1..=n {
        while seq > 1 && seq > acked + 2 * window {
            let body = next_answer(&mut sub).await?;
            if body["type"] != "ack" {
                bail!("batch {id} at {seq}: {body}");
            }
            acked = body["seq"].as_u64().unwrap_or(0);
            window = body["msgs"].as_u64().unwrap_or(1).max(1);
            acks += 1;
        }
        let op = match seq {
            s if s == n => 2,
            1 => 0,
            _ => 1,
        };
        client
            .publish_with_reply(subject.clone(), reply(seq, op), payload.clone())
            .await?;
    }
    loop {
        let body = next_answer(&mut sub).await?;
        if body.get("type").is_none() {
            if body["count"].as_u64() != Some(n) {
                bail!("batch {id}: {body}");
            }
            return Ok(acks);
        }
        acks += 1;
    }
}

/// The next answer on a batch's inbox, as JSON.
async fn next_answer(sub: &mut async_nats::Subscriber) -> anyhow::Result<Value> {
    let msg = tokio::time::timeout(ANSWER, sub.next())
        .await
        .context("no answer")?
        .context("subscription closed")?;
    Ok(serde_json::from_slice(&msg.payload)?)
}

pub(crate) async fn fast_table(nats: Option<&Server>, inf: Option<&Server>) {
    const PER_CONNECTION: u64 = 25_000;
    const FLOW: u16 = 500;
    println!(
        "\n### Fast-ingest batch publish (8 connections, one batch of {PER_CONNECTION} × 1 KiB each, flow {FLOW})\n"
    );
    println!("| server | messages | msgs/s | flow acks |");
    println!("|---|---:|---:|---:|");
    let mut rates = Vec::new();
    for server in [nats, inf].into_iter().flatten() {
        let total = CONNECTIONS as u64 * PER_CONNECTION;
        let row = async {
            let admin = async_nats::connect(url(server)).await?;
            create(&admin, "FAST", "fast.>", "allow_batched").await?;
            let payload = Bytes::from(vec![b'x'; SIZE]);
            let start = Instant::now();
            let mut tasks = Vec::new();
            for c in 0..CONNECTIONS {
                let client = async_nats::connect(url(server)).await?;
                let payload = payload.clone();
                tasks.push(tokio::spawn(async move {
                    fast_batch(
                        &client,
                        format!("fast.{c}"),
                        &format!("f{c}"),
                        PER_CONNECTION,
                        FLOW,
                        payload,
                    )
                    .await
                }));
            }
            let mut acks = 0;
            for task in tasks {
                acks += task.await??;
            }
            anyhow::Ok((total as f64 / start.elapsed().as_secs_f64(), acks))
        };
        match tokio::time::timeout(ROW_BUDGET, row).await {
            Ok(Ok((rate, acks))) => {
                rates.push(rate);
                println!("| {} | {total} | {rate:.0} | {acks} |", server.name);
            }
            Ok(Err(e)) => println!("| {} | {total} | failed: {e:#} | |", server.name),
            Err(_) => println!("| {} | {total} | over {ROW_BUDGET:?} | |", server.name),
        }
    }
    if let [a, b] = rates[..] {
        println!("| ratio InfiniStream / nats-server | | {:.2}× | |", b / a);
    }
}
