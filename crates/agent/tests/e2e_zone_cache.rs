//! The zone cache across agents: three proxy-consume agents of one zone, sharing a
//! standalone control plane and one bucket, each read a whole stream — and the zone
//! reads each object range from the bucket about once (the agents' `fetcher_*`
//! metrics say so), the other agents getting it from the range's owner over the peer
//! port; pull consumers on those agents then read it again without touching the bucket.
//! A second zone's agents read it from the bucket once more, not once per agent.
//!
//! Stream size: `ZONE_CACHE_TEST_MB` MiB (default 50 MiB of 64 KiB messages, to fit
//! the shared build machine; the issue's 200 MB runs with `ZONE_CACHE_TEST_MB=200`).

use std::process::Command;
use std::time::Duration;

use async_nats::jetstream::{self, stream};
use futures::StreamExt;
use infinistream_agent::AgentHandle;
use infinistream_config::{NumberOrString, RawAgentConfig, RolesValue};
use infinistream_testkit::process::ChildProcess;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[path = "support/in_process.rs"]
mod in_process;

const READY: Duration = Duration::from_secs(60);
const PAYLOAD: usize = 64 * 1024;
const GROUP: &str = "team";
const KEY: &str = "s3cret";

struct Cluster {
    _dir: tempfile::TempDir,
    _cp: ChildProcess,
    cp_url: String,
    bucket_url: String,
    root: std::path::PathBuf,
}

impl Cluster {
    fn start() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().to_path_buf();
        let bucket = root.join("bucket");
        std::fs::create_dir_all(&bucket).expect("bucket dir");
        let port = infinistream_testkit::tools::free_port().expect("port");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_infinistream"));
        cmd.args([
            "control-plane",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "-m",
            "0",
        ])
        .arg("--store")
        .arg(format!("embedded:{}", root.join("cp").display()))
        .env("INFINISTREAM_GROUP_ID", GROUP)
        .env("INFINISTREAM_GROUP_KEY", KEY)
        .env("RUST_LOG", "info");
        let mut cp = ChildProcess::spawn(cmd).expect("spawn control plane");
        cp.wait_for_line("control plane serving", READY)
            .expect("control plane ready");
        Self {
            _dir: dir,
            _cp: cp,
            cp_url: format!("http://127.0.0.1:{port}"),
            bucket_url: format!("file://{}", bucket.display()),
            root,
        }
    }

    async fn agent(&self, name: &str, roles: &str, zone: &str) -> AgentHandle {
        in_process::start(RawAgentConfig {
            peer_port: Some(0),
            roles: Some(RolesValue::List(roles.into())),
            zone: Some(zone.into()),
            batch_write: Some(NumberOrString::Number(100)),
            control_plane: Some(self.cp_url.clone()),
            group_id: Some(GROUP.into()),
            group_key: Some(KEY.into()),
            bucket: Some(self.bucket_url.clone()),
            server_name: Some(name.into()),
            cache_memory_bytes: Some(NumberOrString::String("128MiB".into())),
            cache_disk_bytes: Some(NumberOrString::String("512MiB".into())),
            ..in_process::local(&self.root.join(name))
        })
        .await
    }
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

/// The sum of every sample of `name` (all label sets).
fn metric_sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Bytes this agent read from the bucket on the read path (chunks and footers).
async fn bucket_read_bytes(agent: &AgentHandle) -> f64 {
    metric_sum(
        &scrape(agent).await,
        "infinistream_fetcher_bucket_read_bytes_total",
    )
}

/// Waits until every agent's ring has `members` members.
async fn await_ring(agents: &[&AgentHandle], members: f64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    for agent in agents {
        loop {
            let text = scrape(agent).await;
            if metric_sum(&text, "infinistream_fetcher_zone_ring_members") == members {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "agent {} never saw a ring of {members}",
                agent.id()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn payload(i: u64) -> Vec<u8> {
    let mut p = vec![(i % 251) as u8; PAYLOAD];
    p[..8].copy_from_slice(&i.to_be_bytes());
    p
}

/// Reads sequences `1..=last` with batched direct gets, checking every payload.
async fn read_all(agent: &AgentHandle, stream: &str, last: u64) {
    let client = async_nats::connect(format!("nats://{}", agent.client_addr()))
        .await
        .expect("connect");
    let mut next = 1u64;
    while next <= last {
        let inbox = client.new_inbox();
        let mut sub = client.subscribe(inbox.clone()).await.expect("subscribe");
        client
            .publish_with_reply(
                format!("$JS.API.DIRECT.GET.{stream}"),
                inbox,
                format!(r#"{{"seq":{next},"batch":64}}"#).into(),
            )
            .await
            .expect("request");
        loop {
            let msg = tokio::time::timeout(Duration::from_secs(60), sub.next())
                .await
                .expect("batch reply in time")
                .expect("subscription open");
            if let Some(status) = msg.status {
                assert_eq!(status.as_u16(), 204, "end of batch, got {msg:?}");
                break;
            }
            let seq: u64 = msg
                .headers
                .as_ref()
                .and_then(|h| h.get("Nats-Sequence"))
                .map(|v| v.as_str().parse().expect("numeric sequence"))
                .expect("sequence header");
            assert_eq!(seq, next, "sequences in order with no gap");
            assert_eq!(msg.payload.len(), PAYLOAD);
            assert_eq!(&msg.payload[..], &payload(seq - 1)[..], "payload of {seq}");
            next += 1;
        }
    }
}

/// Reads sequences `1..=last` through an ephemeral pull consumer (no acks), checking
/// every payload.
async fn pull_all(agent: &AgentHandle, stream: &str, last: u64) {
    use jetstream::consumer::{AckPolicy, pull};
    let client = async_nats::connect(format!("nats://{}", agent.client_addr()))
        .await
        .expect("connect");
    let mut js = jetstream::new(client);
    js.set_timeout(Duration::from_secs(30));
    let consumer: jetstream::consumer::PullConsumer = js
        .get_stream(stream)
        .await
        .expect("stream")
        .create_consumer(pull::Config {
            ack_policy: AckPolicy::None,
            ..Default::default()
        })
        .await
        .expect("create pull consumer");
    let mut next = 1u64;
    while next <= last {
        let mut batch = consumer
            .fetch()
            .max_messages(128)
            .messages()
            .await
            .expect("fetch");
        while let Some(msg) = batch.next().await {
            let msg = msg.expect("message");
            let seq = msg.info().expect("jetstream message").stream_sequence;
            assert_eq!(seq, next, "pull consumer delivers in order with no gap");
            assert_eq!(&msg.payload[..], &payload(seq - 1)[..], "payload of {seq}");
            next += 1;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn e2e_zone_cache_reads_each_range_from_the_bucket_once_per_zone() {
    let megabytes: u64 = std::env::var("ZONE_CACHE_TEST_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    let count = megabytes * 1024 * 1024 / PAYLOAD as u64;
    let cluster = Cluster::start();
    let producer = cluster.agent("producer", "proxy-produce", "z0").await;
    let zone_a = [
        cluster.agent("a1", "proxy-consume", "za").await,
        cluster.agent("a2", "proxy-consume", "za").await,
        cluster.agent("a3", "proxy-consume", "za").await,
    ];
    let zone_b = [
        cluster.agent("b1", "proxy-consume", "zb").await,
        cluster.agent("b2", "proxy-consume", "zb").await,
    ];

    // The stream: `count` messages of 64 KiB, published with 256 in flight.
    let client = async_nats::connect(format!("nats://{}", producer.client_addr()))
        .await
        .expect("connect");
    let mut js = jetstream::new(client);
    js.set_timeout(Duration::from_secs(30));
    js.create_stream(stream::Config {
        name: "BIG".into(),
        subjects: vec!["big".into()],
        allow_direct: true,
        max_message_size: 1 << 20,
        ..Default::default()
    })
    .await
    .expect("create stream");
    // The producer's intake picks the new stream up from its catalog: retry the first
    // publish until it is captured (no responders → StreamNotFound before that).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let ack = js.publish("big", payload(0).into()).await.expect("publish");
        match ack.await {
            Ok(ack) => {
                assert_eq!(ack.sequence, 1);
                break;
            }
            Err(e) => assert!(
                tokio::time::Instant::now() < deadline,
                "the stream is never captured: {e}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut next = 1u64;
    while next < count {
        let end = (next + 256).min(count);
        let mut acks = Vec::new();
        for i in next..end {
            acks.push(js.publish("big", payload(i).into()).await.expect("publish"));
        }
        for (i, ack) in (next..end).zip(acks) {
            assert_eq!(ack.await.expect("ack").sequence, i + 1);
        }
        next = end;
    }
    let objects = producer
        .bucket()
        .list_batches()
        .await
        .expect("list objects");
    let stored: u64 = objects.iter().map(|(_, meta)| meta.size).sum();
    assert!(stored >= count * PAYLOAD as u64, "stored {stored} bytes");

    // Zone A: three agents, each read fully by its own client, at once.
    await_ring(&zone_a.iter().collect::<Vec<_>>(), 3.0).await;
    futures::future::join_all(zone_a.iter().map(|a| read_all(a, "BIG", count))).await;
    let mut zone_a_bytes = 0.0;
    let mut served = 0.0;
    let mut peer_hits = 0.0;
    for agent in &zone_a {
        let text = scrape(agent).await;
        zone_a_bytes += metric_sum(&text, "infinistream_fetcher_bucket_read_bytes_total");
        served += metric_sum(
            &text,
            "infinistream_fetcher_zone_peer_requests_served_total",
        );
        peer_hits += metric_sum(
            &text,
            "infinistream_fetcher_zone_cache_hits_total{tier=\"peer\"}",
        );
    }
    let ratio_a = zone_a_bytes / stored as f64;
    eprintln!(
        "zone A: {megabytes} MiB stream, {} objects, {stored} bytes stored; 3 agents read {zone_a_bytes} bytes from the bucket ({ratio_a:.3}x); {served} peer requests served, {peer_hits} ranges from peers",
        objects.len()
    );
    assert!(
        ratio_a <= 1.1,
        "zone A read {zone_a_bytes} bytes from the bucket for a {stored}-byte stream ({ratio_a:.3}x)"
    );
    assert!(
        served > 0.0 && peer_hits > 0.0,
        "the agents used their peers"
    );

    // A pull consumer on each agent of zone A reads the whole stream again: every
    // range is in the zone's cache now, so the bucket is not read at all.
    futures::future::join_all(zone_a.iter().map(|a| pull_all(a, "BIG", count))).await;
    let mut zone_a_pulled = 0.0;
    for agent in &zone_a {
        zone_a_pulled += bucket_read_bytes(agent).await;
    }
    assert_eq!(
        zone_a_pulled, zone_a_bytes,
        "pull consumers read from the zone cache only"
    );

    // Zone B: two more agents read it — from the bucket once more, not per agent.
    await_ring(&zone_b.iter().collect::<Vec<_>>(), 2.0).await;
    futures::future::join_all(zone_b.iter().map(|a| read_all(a, "BIG", count))).await;
    let mut zone_b_bytes = 0.0;
    for agent in &zone_b {
        zone_b_bytes += bucket_read_bytes(agent).await;
    }
    let ratio_b = zone_b_bytes / stored as f64;
    eprintln!("zone B: 2 agents read {zone_b_bytes} bytes from the bucket ({ratio_b:.3}x)");
    assert!(
        ratio_b <= 1.1,
        "zone B read {zone_b_bytes} bytes from the bucket ({ratio_b:.3}x)"
    );
    // Zone A read nothing more while zone B read.
    let mut zone_a_after = 0.0;
    for agent in &zone_a {
        zone_a_after += bucket_read_bytes(agent).await;
    }
    assert_eq!(zone_a_after, zone_a_bytes);

    for agent in zone_a.iter().chain(&zone_b).chain([&producer]) {
        agent.stop();
    }
}
