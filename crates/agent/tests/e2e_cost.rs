//! The cost invariant (issues 5 and 15, BRIEF invariant 5): an agent writes at most one
//! object per batch window plus size-triggered flushes, however many streams and
//! connections feed it. 1,000 streams are published to concurrently for 10 s through a
//! 100 ms window; the bucket's batch objects and the gateway's seal counters are
//! compared with that bound. The rate is modest (about 2,400 msg/s, so every stream is written
//! to about twice a second) so the test fits a loaded 2-core machine; the property does not
//! depend on the rate.

use std::time::{Duration, Instant};

use async_nats::jetstream::{self, stream};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use infinistream_agent::AgentHandle;
use infinistream_config::{NumberOrString, RawAgentConfig, RolesValue};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[path = "support/in_process.rs"]
mod in_process;

const STREAMS: usize = 1000;
const WINDOW_MS: u64 = 100;
const PUBLISH_FOR: Duration = Duration::from_secs(10);
const PUBLISHERS: usize = 8;
/// Per publisher, messages per 10 ms tick: 8 publishers × 3 × 100 ticks/s = 2,400 msg/s.
const PER_TICK: usize = 3;
const TICK: Duration = Duration::from_millis(10);

async fn start_agent(dir: &tempfile::TempDir) -> AgentHandle {
    in_process::start(RawAgentConfig {
        // No jobs role: nothing compacts or deletes batch objects during the test, so
        // the bucket holds exactly what the gateway wrote.
        roles: Some(RolesValue::List("proxy".into())),
        batch_write: Some(NumberOrString::Number(WINDOW_MS)),
        ..in_process::local(dir.path())
    })
    .await
}

async fn context(agent: &AgentHandle) -> jetstream::Context {
    let client = async_nats::connect(format!("nats://{}", agent.client_addr()))
        .await
        .expect("connect");
    let mut js = jetstream::new(client);
    js.set_timeout(Duration::from_secs(30));
    js
}

async fn scrape(agent: &AgentHandle) -> String {
    let mut conn = tokio::net::TcpStream::connect(agent.http_addr())
        .await
        .expect("connect monitoring");
    conn.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .await
        .expect("request");
    let mut out = String::new();
    conn.read_to_string(&mut out).await.expect("response");
    out
}

fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name).map(str::trim))
        .and_then(|v| v.parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_cost_one_object_per_window_across_1000_streams() {
    let dir = tempfile::tempdir().expect("tempdir");
    let agent = start_agent(&dir).await;
    let js = context(&agent).await;

    // 1,000 streams, created 25 at a time.
    futures::stream::iter(0..STREAMS)
        .map(|i| {
            let js = js.clone();
            async move {
                js.create_stream(stream::Config {
                    name: format!("COST{i}"),
                    subjects: vec![format!("cost.{i}")],
                    ..Default::default()
                })
                .await
                .expect("create stream");
            }
        })
        .buffer_unordered(25)
        .collect::<Vec<()>>()
        .await;

    let objects_before = agent.gateway_metrics().objects_written();
    let batches_before = agent.bucket().list_batches().await.expect("list").len() as u64;
    let before = scrape(&agent).await;

    // Publishers on their own connections, each cycling over all the streams at a
    // steady pace, acks awaited as they come.
    let started = Instant::now();
    let mut publishers = Vec::new();
    for p in 0..PUBLISHERS {
        let js = context(&agent).await;
        publishers.push(tokio::spawn(async move {
            let mut acks = FuturesUnordered::new();
            let mut tick = tokio::time::interval(TICK);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut n = p;
            let mut sent = 0usize;
            let deadline = Instant::now() + PUBLISH_FOR;
            while Instant::now() < deadline {
                tokio::select! {
                    _ = tick.tick() => {
                        for _ in 0..PER_TICK {
                            let ack = js
                                .publish(format!("cost.{}", n % STREAMS), "x".into())
                                .await
                                .expect("publish sent");
                            acks.push(ack.into_future());
                            n += PUBLISHERS;
                            sent += 1;
                        }
                    }
                    Some(ack) = acks.next(), if !acks.is_empty() => {
                        ack.expect("acked");
                    }
                }
            }
            while let Some(ack) = acks.next().await {
                ack.expect("acked");
            }
            sent
        }));
    }
    let mut total = 0;
    for publisher in publishers {
        total += publisher.await.expect("publisher");
    }
    let elapsed = started.elapsed();

    let after = scrape(&agent).await;
    let objects = agent.gateway_metrics().objects_written() - objects_before;
    let batches = agent.bucket().list_batches().await.expect("list").len() as u64 - batches_before;
    let seal = |reason: &str| {
        let name = format!("infinistream_gateway_batches_sealed_total{{reason=\"{reason}\"}}");
        metric(&after, &name) - metric(&before, &name)
    };
    let (by_idle, by_window, by_size) = (seal("idle"), seal("window"), seal("size"));
    let committed = metric(&after, "infinistream_gateway_records_committed_total")
        - metric(&before, "infinistream_gateway_records_committed_total");

    assert!(
        total >= STREAMS,
        "every stream was published to ({total} messages)"
    );
    assert_eq!(committed, total as u64, "every publish was committed once");
    assert_eq!(
        batches, objects,
        "the bucket holds exactly the objects the gateway counted"
    );
    assert_eq!(
        objects,
        by_idle + by_window + by_size,
        "every object is one sealed batch"
    );
    // The window is a spacing between flush starts: a flush that is not size-triggered
    // starts at least WINDOW_MS after the flush before it, whether a publish found the
    // agent idle ("idle", the first flush here, as the agent was quiet before) or the
    // buffer waited for its slot ("window"). Every flush of the run started after the
    // first publish and before the last ack, so over `elapsed` there are at most
    // elapsed / WINDOW_MS + 1 of them: the +1 is the first publish, which went out at
    // once instead of waiting a window. Size-triggered flushes come on top.
    let windows = elapsed.as_millis() as u64 / WINDOW_MS + 1;
    assert!(
        by_idle + by_window <= windows,
        "{by_idle} idle- and {by_window} window-triggered objects in {elapsed:?} (at most {windows} for windows of {WINDOW_MS} ms) for {total} publishes to {STREAMS} streams"
    );
    eprintln!(
        "cost: {total} publishes to {STREAMS} streams in {elapsed:?}: {objects} objects ({by_idle} idle, {by_window} by window, {by_size} by size); at most {windows} besides size flushes"
    );
}
