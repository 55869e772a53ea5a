//! The stream catalog follows the control plane from one `WatchStreams` per agent.
//!
//! With 1,000 streams and 3 agents on one control plane, the control plane's own
//! request counters (`infinistream_control_plane_requests_total`, as Prometheus renders
//! them) show: one `ListStreams` per agent for its initial load and none after, one
//! `WatchStreams` per agent, and a stream created or deleted through the control plane
//! reaching every agent's catalog through the watch alone (the event carries the
//! config: no `StreamInfo`, no list). The
//! idle period is measured by the group's other periodic traffic (the registry
//! refresh's `ListAgents`), never by a sleep: before the watch, each agent listed every
//! stream once a second, so four refresh rounds would have seen about a dozen lists.

use std::sync::Arc;
use std::time::Duration;

use infinistream_agent::AgentHandle;
use infinistream_config::{RawAgentConfig, RolesValue};
use infinistream_control_plane::store::memory::MemoryStore;
use infinistream_control_plane::{ControlPlane, ControlPlaneClient, GroupKeys};
use infinistream_jetstream::StreamCatalog;
use infinistream_jetstream::convert::proto_config;
use infinistream_protocol::jsapi::stream::StreamConfig;
use infinistream_runtime::{CancellationToken, Metrics};
use infinistream_types::SystemClock;
use tokio::time::timeout;

const STREAMS: usize = 1000;
const AGENTS: u64 = 3;
/// Generous bound for "this should happen"; never a timing assertion.
const EVENTUALLY: Duration = Duration::from_secs(60);

/// The control plane's request counters of interest, read from its Prometheus text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Requests {
    list_streams: u64,
    watch_streams: u64,
    stream_info: u64,
    list_agents: u64,
}

fn requests(metrics: &Metrics) -> Requests {
    let text = metrics.render();
    let count = |service: &str, method: &str| -> u64 {
        let series = format!(
            "infinistream_control_plane_requests_total{{service=\"{service}\",method=\"{method}\"}} "
        );
        text.lines()
            .find_map(|line| line.strip_prefix(series.as_str()))
            .map_or(0, |n| n.trim().parse().expect("a counter value"))
    };
    Requests {
        list_streams: count("Streams", "ListStreams"),
        watch_streams: count("Streams", "WatchStreams"),
        stream_info: count("Streams", "StreamInfo"),
        list_agents: count("Agents", "ListAgents"),
    }
}

async fn create_stream(cp: &ControlPlaneClient, name: &str) {
    let config = StreamConfig {
        name: name.to_owned(),
        subjects: vec![format!("{}.>", name.to_lowercase())],
        ..StreamConfig::default()
    };
    let config = proto_config(&config).expect("a valid config");
    if let Err(error) = cp.create_stream(config).await {
        panic!("create stream {name}: {error}");
    }
}

async fn start_agent(dir: &std::path::Path, bucket: &str, cp_url: &str) -> AgentHandle {
    let raw = RawAgentConfig {
        host: Some("127.0.0.1".into()),
        port: Some(0),
        http_port: Some(0),
        data_dir: Some(dir.to_path_buf()),
        roles: Some(RolesValue::List("proxy".into())),
        bucket: Some(bucket.to_owned()),
        group_id: Some("g".into()),
        group_key: Some("k3y".into()),
        control_plane: Some(cp_url.to_owned()),
        // A set zone: no instance-metadata request leaves the test machine.
        zone: Some("default".into()),
        ..Default::default()
    };
    AgentHandle::start(
        raw.validate().expect("valid config"),
        CancellationToken::new(),
    )
    .await
    .expect("agent starts")
}

/// Waits until `catalog` satisfies `done`, woken by its changes.
async fn until(catalog: &StreamCatalog, done: impl Fn(&StreamCatalog) -> bool) {
    let mut changes = catalog.watch();
    timeout(EVENTUALLY, async {
        while !done(catalog) {
            changes.changed().await.expect("the catalog lives");
        }
    })
    .await
    .expect("the catalog followed the control plane");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_idle_group_lists_streams_only_at_start_up() {
    let groups = GroupKeys::new([("g", "k3y")]).expect("groups");
    let cp = ControlPlane::open(Arc::new(MemoryStore::new()), groups, Arc::new(SystemClock))
        .await
        .expect("control plane");
    let metrics = Metrics::new();
    metrics.register(|r| cp.request_metrics().register(r));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let cp_url = format!("http://{}", listener.local_addr().expect("addr"));
    let stop = CancellationToken::new();
    let served = {
        let (cp, until) = (cp.clone(), stop.clone());
        tokio::spawn(async move {
            infinistream_control_plane::serve(&cp, listener, until.cancelled_owned()).await
        })
    };
    // In-process calls are not served requests: they leave the counters alone.
    let admin = cp.client("g", "k3y").expect("client");
    for i in 0..STREAMS {
        create_stream(&admin, &format!("S{i:04}")).await;
    }

    let bucket_dir = tempfile::tempdir().expect("tempdir");
    let bucket = format!("file://{}", bucket_dir.path().display());
    let dirs: Vec<_> = (0..AGENTS)
        .map(|_| tempfile::tempdir().expect("tempdir"))
        .collect();
    let mut agents = Vec::new();
    for dir in &dirs {
        agents.push(start_agent(dir.path(), &bucket, &cp_url).await);
    }
    for agent in &agents {
        until(agent.catalog(), |c| c.snapshot().len() == STREAMS).await;
    }
    let started = requests(&metrics);
    assert_eq!(
        started.watch_streams, AGENTS,
        "one stream watch per agent: {started:?}"
    );
    assert_eq!(
        started.list_streams, AGENTS,
        "one list per agent, for its initial load: {started:?}"
    );

    // An event: a stream created through the control plane reaches every catalog
    // through the watch.
    create_stream(&admin, "LATE").await;
    for agent in &agents {
        until(agent.catalog(), |c| c.get("LATE").is_some()).await;
    }
    let created = requests(&metrics);
    assert_eq!(
        (created.stream_info, created.list_streams),
        (started.stream_info, started.list_streams),
        "each agent took the new stream from the event, asking nothing: {created:?}"
    );

    // Idle: the registry refresh goes on (ListAgents every few seconds per agent);
    // after four rounds of it, the catalog has asked for nothing.
    timeout(EVENTUALLY, async {
        while requests(&metrics).list_agents < created.list_agents + 4 * AGENTS {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("the registry refresh runs");
    let idle = requests(&metrics);
    assert_eq!(
        (idle.list_streams, idle.watch_streams, idle.stream_info),
        (started.list_streams, AGENTS, created.stream_info),
        "no periodic ListStreams, no watch reopened: {idle:?}"
    );

    // A deletion reaches every catalog the same way.
    admin.delete_stream("LATE").await.expect("delete");
    for agent in &agents {
        until(agent.catalog(), |c| c.get("LATE").is_none()).await;
    }
    assert_eq!(
        requests(&metrics).list_streams,
        started.list_streams,
        "a deletion needs no list either"
    );

    for agent in agents {
        agent.stop();
        timeout(EVENTUALLY, agent.wait())
            .await
            .expect("the agent stops")
            .expect("the agent stops cleanly");
    }
    stop.cancel();
    served
        .await
        .expect("server task")
        .expect("control plane served");
}
