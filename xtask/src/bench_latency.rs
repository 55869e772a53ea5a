//! `cargo xtask bench latency`: publish → PubAck and publish → delivery to tailing
//! consumers, nats-server (file storage) and InfiniStream (local bucket, embedded
//! control plane) at its default 250 ms window and at 50 ms, one run.
//!
//! Stream `LAT` (subject `lat`) has two tailing consumers on the same server, both
//! with no acks so only delivery is timed: a pull consumer (`messages()`, the way
//! nats.go's `Consume` tails) and a push consumer (a deliver subject). Two phases, 1 KiB
//! messages, each message's publish, PubAck and deliveries timed in this process:
//!
//! - **idle**: 20 publishes, each after 300 ms of quiet (longer than any window), each
//!   awaited. What a lone publish costs: publish → PubAck, and how long after its PubAck
//!   each consumer has it (issue 15: within 5 ms p50 at low load).
//! - **200 msg/s**: 2,000 publishes at a steady 200/s, asynchronous (the next does not
//!   wait for the previous PubAck, so InfiniStream's window can fill): publish → PubAck
//!   and publish → delivery. At a 250 ms window this is mostly the window (a publish
//!   joins the next flush, due a window after the previous one); at 50 ms it shows what
//!   a latency-minded deployment gets. An awaited publisher at 200/s would instead get
//!   one PubAck per window (docs/operations.md, "Choosing the window").
//!
//! Then the same two phases across agents, InfiniStream only: two agents of one group
//! (standalone control plane, shared `file://` bucket, as `bench core --cluster`), the
//! publisher connected to agent A and both consumers to agent B, so a delivery needs
//! B to learn of A's commit (the control plane's commit watch) and read A's fresh object
//! (from the zone cache or the bucket). nats-server has no equivalent single-replica
//! setup to compare with (a stream lives on one server; a client of the other reaches it
//! through the route), so the row stands alone.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use async_nats::jetstream::{self, consumer};
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::FuturesUnordered;

use crate::bench::{
    Server, build_release, parse_only, record, start_infinistream, start_nats_server,
};
use crate::tools;

const SIZE: usize = 1024;
const IDLE_SAMPLES: usize = 20;
const QUIET: Duration = Duration::from_millis(300);
const RATE_MESSAGES: usize = 2_000;
const RATE_INTERVAL: Duration = Duration::from_millis(5);
/// InfiniStream windows measured: the default, and a latency-minded one.
const WINDOWS: [u64; 2] = [250, 50];

/// Per message index, when it was published, acked, pulled and pushed; shared by the
/// publisher and the two receivers.
#[derive(Debug, Default)]
struct Times {
    slots: std::sync::Mutex<Vec<[Option<Instant>; 4]>>,
}

impl Times {
    fn new(n: usize) -> Times {
        Times {
            slots: std::sync::Mutex::new(vec![[None; 4]; n]),
        }
    }

    fn set(&self, index: usize, which: usize, at: Instant) {
        if let Ok(mut slots) = self.slots.lock()
            && let Some(slot) = slots.get_mut(index)
            && slot[which].is_none()
        {
            slot[which] = Some(at);
        }
    }

    /// Milliseconds from `from` to `to` for every message that has both.
    fn spans(&self, from: usize, to: usize) -> Vec<f64> {
        self.slots.lock().map_or_else(
            |_| Vec::new(),
            |slots| {
                slots
                    .iter()
                    .filter_map(|s| Some(s[to]?.saturating_duration_since(s[from]?)))
                    .map(|d| d.as_secs_f64() * 1e3)
                    .collect()
            },
        )
    }

    fn count(&self, which: usize) -> usize {
        self.slots
            .lock()
            .map_or(0, |s| s.iter().filter(|s| s[which].is_some()).count())
    }
}

const PUBLISHED: usize = 0;
const ACKED: usize = 1;
const PULLED: usize = 2;
const PUSHED: usize = 3;

/// p50 and p99 of one span, in ms.
#[derive(Debug, Clone, Copy, Default)]
struct Span {
    p50: f64,
    p99: f64,
}

fn span(times: &Times, from: usize, to: usize) -> Span {
    let mut v = times.spans(from, to);
    Span {
        p50: crate::bench_js::percentile(&mut v, 0.50),
        p99: crate::bench_js::percentile(&mut v, 0.99),
    }
}

/// What one server measured.
#[derive(Debug, Clone, Copy, Default)]
struct Latency {
    idle_ack: Span,
    idle_ack_to_pull: Span,
    idle_ack_to_push: Span,
    rate_ack: Span,
    rate_pull: Span,
    rate_push: Span,
}

pub fn run(args: &[String]) -> anyhow::Result<()> {
    let (mut nats, mut inf) = (true, true);
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--only" => {
                (nats, inf) = parse_only(it.next().context("--only needs a value")?)?;
            }
            other => bail!("unknown option `{other}` for bench latency (try --only)"),
        }
    }
    tools::install_all()?;
    build_release()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(table(nats, inf))
}

async fn table(nats: bool, inf: bool) -> anyhow::Result<()> {
    println!(
        "### Latency, 1 KiB, tailing pull and push consumers on the same server (ms)\n\n\
         idle: {IDLE_SAMPLES} awaited publishes, each after {} ms of quiet; rate: {RATE_MESSAGES} asynchronous publishes at {}/s\n",
        QUIET.as_millis(),
        1000 / RATE_INTERVAL.as_millis()
    );
    println!(
        "| server | idle publish → PubAck p50 / p99 | idle PubAck → pull delivery p50 / p99 | idle PubAck → push delivery p50 / p99 | rate publish → PubAck p50 / p99 | rate publish → pull delivery p50 / p99 | rate publish → push delivery p50 / p99 |"
    );
    println!("|---|---|---|---|---|---|---|");
    let row = |name: &str, l: &Latency| {
        let s = |s: Span| format!("{:.2} / {:.2}", s.p50, s.p99);
        println!(
            "| {name} | {} | {} | {} | {} | {} | {} |",
            s(l.idle_ack),
            s(l.idle_ack_to_pull),
            s(l.idle_ack_to_push),
            s(l.rate_ack),
            s(l.rate_pull),
            s(l.rate_push)
        );
    };
    let reference = if nats {
        let server = start_nats_server()?;
        match measure(&server).await {
            Ok(l) => {
                row("nats-server (file)", &l);
                Some(l)
            }
            Err(e) => {
                println!("| nats-server (file) | failed: {e:#} | | | | | |");
                None
            }
        }
    } else {
        None
    };
    if !inf {
        return Ok(());
    }
    for window in WINDOWS {
        let server = start_infinistream(window)?;
        let name = format!("InfiniStream, {window} ms window");
        let l = match measure(&server).await {
            Ok(l) => l,
            Err(e) => {
                println!("| {name} | failed: {e:#} | | | | | |");
                continue;
            }
        };
        row(&name, &l);
        let figures: [(&str, crate::bench::Pick<Latency>); 5] = [
            ("idle publish → PubAck p50", |l| l.idle_ack.p50),
            ("idle PubAck → pull delivery p50", |l| {
                l.idle_ack_to_pull.p50
            }),
            ("idle PubAck → push delivery p50", |l| {
                l.idle_ack_to_push.p50
            }),
            ("200/s publish → PubAck p50", |l| l.rate_ack.p50),
            ("200/s publish → pull delivery p50", |l| l.rate_pull.p50),
        ];
        for (what, f) in figures {
            record(
                "latency",
                format!("{what}, {window} ms window"),
                "ms",
                reference.as_ref().map(f),
                Some(f(&l)),
                false,
            );
        }
    }
    for window in WINDOWS {
        let name =
            format!("InfiniStream, publish on agent A, consume on agent B, {window} ms window");
        let result = async {
            let cluster = crate::bench_cluster::start_infinistream_cluster(window)?;
            let url = |port: u16| format!("nats://127.0.0.1:{port}");
            let a = async_nats::connect(url(cluster.ports[0])).await?;
            let b = async_nats::connect(url(cluster.ports[1])).await?;
            let measured = measure_across(&a, &b).await;
            drop(cluster);
            measured
        }
        .await;
        match result {
            Ok(l) => row(&name, &l),
            Err(e) => println!("| {name} | failed: {e:#} | | | | | |"),
        }
    }
    println!(
        "\nAt the 250 ms window the rate phase's PubAck waits for the flush the publish joined (up to one window); the idle phase is one PUT plus one commit."
    );
    Ok(())
}

async fn measure(server: &Server) -> anyhow::Result<Latency> {
    let client = async_nats::connect(format!("nats://127.0.0.1:{}", server.port)).await?;
    measure_across(&client, &client).await
}

/// Both phases with the publisher on `publisher`'s connection and the consumers on
/// `consumer`'s (the same connection, or one to another agent).
async fn measure_across(
    publisher: &async_nats::Client,
    consumer: &async_nats::Client,
) -> anyhow::Result<Latency> {
    let mut js = jetstream::new(publisher.clone());
    js.set_timeout(Duration::from_secs(30));
    let _ = js.delete_stream("LAT").await;
    js.create_stream(jetstream::stream::Config {
        name: "LAT".into(),
        subjects: vec!["lat".into()],
        ..Default::default()
    })
    .await
    .context("create stream LAT")?;
    let mut consumer_js = jetstream::new(consumer.clone());
    consumer_js.set_timeout(Duration::from_secs(30));
    let stream = consumer_js
        .get_stream("LAT")
        .await
        .context("stream LAT from the consumers' connection")?;
    let idle = phase(&js, &stream, consumer, "idle", IDLE_SAMPLES, None).await?;
    let rate = phase(
        &js,
        &stream,
        consumer,
        "rate",
        RATE_MESSAGES,
        Some(RATE_INTERVAL),
    )
    .await?;
    let _ = js.delete_stream("LAT").await;
    Ok(Latency {
        idle_ack: span(&idle, PUBLISHED, ACKED),
        idle_ack_to_pull: span(&idle, ACKED, PULLED),
        idle_ack_to_push: span(&idle, ACKED, PUSHED),
        rate_ack: span(&rate, PUBLISHED, ACKED),
        rate_pull: span(&rate, PUBLISHED, PULLED),
        rate_push: span(&rate, PUBLISHED, PUSHED),
    })
}

/// Publishes `count` messages (each awaited after a quiet pause when `interval` is
/// `None`, else asynchronously every `interval`) with both consumers tailing the stream
/// from its end, and returns every message's timestamps.
async fn phase(
    js: &jetstream::Context,
    stream: &jetstream::stream::Stream,
    client: &async_nats::Client,
    name: &str,
    count: usize,
    interval: Option<Duration>,
) -> anyhow::Result<Arc<Times>> {
    let times = Arc::new(Times::new(count));
    let pull = stream
        .create_consumer(consumer::pull::Config {
            durable_name: Some(format!("pull_{name}")),
            ack_policy: consumer::AckPolicy::None,
            deliver_policy: consumer::DeliverPolicy::New,
            ..Default::default()
        })
        .await
        .context("create pull consumer")?;
    let inbox = client.new_inbox();
    let push = stream
        .create_consumer(consumer::push::Config {
            durable_name: Some(format!("push_{name}")),
            deliver_subject: inbox,
            ack_policy: consumer::AckPolicy::None,
            deliver_policy: consumer::DeliverPolicy::New,
            ..Default::default()
        })
        .await
        .context("create push consumer")?;
    let mut pulled = pull.messages().await.context("pull consume")?;
    let mut pushed = push.messages().await.context("push consume")?;
    let receivers = {
        let times = times.clone();
        tokio::spawn(async move {
            let index = |payload: &Bytes| {
                payload
                    .get(..8)
                    .and_then(|b| <[u8; 8]>::try_from(b).ok())
                    .map(u64::from_be_bytes)
                    .and_then(|i| usize::try_from(i).ok())
            };
            let (mut got_pull, mut got_push) = (0, 0);
            while got_pull < count || got_push < count {
                tokio::select! {
                    m = pulled.next(), if got_pull < count => {
                        let m = m.context("pull stream ended")?.map_err(|e| anyhow::anyhow!("pull: {e}"))?;
                        if let Some(i) = index(&m.payload) {
                            times.set(i, PULLED, Instant::now());
                        }
                        got_pull += 1;
                    }
                    m = pushed.next(), if got_push < count => {
                        let m = m.context("push stream ended")?.map_err(|e| anyhow::anyhow!("push: {e}"))?;
                        if let Some(i) = index(&m.payload) {
                            times.set(i, PUSHED, Instant::now());
                        }
                        got_push += 1;
                    }
                }
            }
            anyhow::Ok(())
        })
    };
    let payload = |i: usize| {
        let mut p = vec![b'x'; SIZE];
        p[..8].copy_from_slice(&(i as u64).to_be_bytes());
        Bytes::from(p)
    };
    match interval {
        None => {
            for i in 0..count {
                tokio::time::sleep(QUIET).await;
                times.set(i, PUBLISHED, Instant::now());
                js.publish("lat", payload(i)).await?.await?;
                times.set(i, ACKED, Instant::now());
            }
        }
        Some(every) => {
            let mut tick = tokio::time::interval(every);
            let mut acks = FuturesUnordered::new();
            for i in 0..count {
                tick.tick().await;
                times.set(i, PUBLISHED, Instant::now());
                let ack = js.publish("lat", payload(i)).await?;
                let times = times.clone();
                acks.push(async move {
                    ack.await?;
                    times.set(i, ACKED, Instant::now());
                    anyhow::Ok(())
                });
                while let Some(Some(done)) = futures::FutureExt::now_or_never(acks.next()) {
                    done?;
                }
            }
            while let Some(done) = acks.next().await {
                done?;
            }
        }
    }
    match tokio::time::timeout(Duration::from_secs(60), receivers).await {
        Ok(joined) => joined??,
        Err(_) => bail!(
            "{name}: after 60 s the pull consumer had {} and the push consumer {} of {count}",
            times.count(PULLED),
            times.count(PUSHED)
        ),
    }
    let _ = stream.delete_consumer(&format!("pull_{name}")).await;
    let _ = stream.delete_consumer(&format!("push_{name}")).await;
    Ok(times)
}
