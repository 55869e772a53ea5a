//! Core pub/sub throughput, 1 publisher → 1 subscriber, with async-nats.
//!
//! `core_bench serve <port>` runs an InfiniStream broker on 127.0.0.1:<port>;
//! `core_bench run <nats-url> <msg-size> <count>` measures msgs/s against any server
//! (run it against nats-server and against `serve` for a side-by-side ratio).

use std::time::Instant;

use anyhow::{Context, bail};
use bytes::Bytes;
use futures::StreamExt;
use infinistream_broker::{Broker, BrokerConfig};
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("serve") => {
            let port: u16 = args.get(1).context("port")?.parse()?;
            let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
            let broker = Broker::new(BrokerConfig::default());
            let shutdown = CancellationToken::new();
            let stop = shutdown.clone();
            tokio::spawn(async move {
                let _ = tokio::signal::ctrl_c().await;
                stop.cancel();
            });
            broker.serve(listener, shutdown).await?;
        }
        Some("run") => {
            let url = args.get(1).context("url")?;
            let size: usize = args.get(2).context("msg size")?.parse()?;
            let count: usize = args.get(3).context("count")?.parse()?;
            let rate = run(url, size, count).await?;
            println!("{url} size={size} count={count} msgs/s={rate:.0}");
        }
        _ => bail!("usage: core_bench serve <port> | run <url> <size> <count>"),
    }
    Ok(())
}

async fn run(url: &str, size: usize, count: usize) -> anyhow::Result<f64> {
    let sub_client = async_nats::ConnectOptions::new()
        .subscription_capacity(1 << 20)
        .connect(url)
        .await?;
    let mut sub = sub_client.subscribe("bench.core").await?;
    // Make sure the SUB is in place before publishing: a request to nobody answers
    // with no-responders only after the server processed the earlier SUB.
    let _ = sub_client.request("bench.sync", "".into()).await;
    let publisher = async_nats::connect(url).await?;
    let payload = Bytes::from(vec![b'x'; size]);
    let start = Instant::now();
    let receiver = tokio::spawn(async move {
        let mut n = 0;
        while n < count {
            if sub.next().await.is_none() {
                break;
            }
            n += 1;
        }
        n
    });
    for _ in 0..count {
        publisher.publish("bench.core", payload.clone()).await?;
    }
    publisher.flush().await?;
    let got = receiver.await?;
    let elapsed = start.elapsed().as_secs_f64();
    if got != count {
        bail!("received {got} of {count}");
    }
    Ok(count as f64 / elapsed)
}
