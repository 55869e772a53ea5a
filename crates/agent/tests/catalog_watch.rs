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

#[path = "support/in_process.rs"]
mod in_process;

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

/// A stream's subjects change while an agent's catalog still has the old ones (the
/// watch event not applied yet; here the old config is put back into its catalog):
/// the agent captures a publish on the dropped subject, and the control plane refuses
/// it at commit with 503 / 10077 naming the subject, storing nothing and taking no
/// sequence. Once the catalog has the new config the publish gets no responders,
/// which is what nats-server 2.15.1 answers right after the same update.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_catalogs_publish_on_a_dropped_subject_is_refused_at_commit() {
    use async_nats::RequestErrorKind;
    use async_nats::jetstream::{self, stream};

    let reference =
        infinistream_testkit::nats::NatsServer::start("# JetStream from the command line\n")
            .expect("nats-server");
    let dir = tempfile::tempdir().expect("tempdir");
    let agent = in_process::start_agent(&dir).await;
    let config = |subjects: &[&str]| stream::Config {
        name: "ORD".into(),
        subjects: subjects.iter().map(|s| (*s).to_owned()).collect(),
        ..Default::default()
    };
    for url in [reference.url(), format!("nats://{}", agent.client_addr())] {
        let client = async_nats::ConnectOptions::new()
            .request_timeout(Some(EVENTUALLY))
            .connect(&url)
            .await
            .expect("connect");
        let js = jetstream::new(client.clone());
        js.create_stream(config(&["ord.a", "ord.b"]))
            .await
            .expect("create");
        let ack = js.publish("ord.b", "1".into()).await.expect("publish");
        assert_eq!(ack.await.expect("acked").sequence, 1, "{url}");
        js.update_stream(config(&["ord.a"])).await.expect("update");
        // Both servers, their view current: nobody takes `ord.b` any more.
        let e = client
            .request("ord.b", "2".into())
            .await
            .expect_err("no responders");
        assert_eq!(e.kind(), RequestErrorKind::NoResponders, "{url}: {e}");
        if url == reference.url() {
            continue;
        }
        // The agent with a stale catalog captures it; the commit refuses it.
        let catalog = agent.catalog();
        let current = catalog.get("ORD").expect("in the catalog").config;
        let mut stale = (*current).clone();
        stale.subjects = vec!["ord.a".into(), "ord.b".into()];
        catalog.upsert(stale);
        assert!(
            catalog.settled(EVENTUALLY).await,
            "the gateway follows its catalog"
        );
        let answer = client
            .request("ord.b", "3".into())
            .await
            .expect("an answer");
        let answer: serde_json::Value =
            serde_json::from_slice(&answer.payload).expect("a JSON answer");
        let error = &answer["error"];
        assert_eq!(
            (error["code"].as_u64(), error["err_code"].as_u64()),
            (Some(503), Some(10077)),
            "{answer}"
        );
        let description = error["description"].as_str().unwrap_or_default();
        assert!(
            description.contains("subject ord.b is not in stream ORD's subjects")
                && description.contains("not stored"),
            "{answer}"
        );
        catalog.upsert((*current).clone());
        assert!(
            catalog.settled(EVENTUALLY).await,
            "the gateway follows its catalog"
        );
        let e = client
            .request("ord.b", "4".into())
            .await
            .expect_err("no responders");
        assert_eq!(e.kind(), RequestErrorKind::NoResponders, "{e}");
        // Nothing of the refused publish was stored; the next one takes sequence 2.
        let ack = js.publish("ord.a", "5".into()).await.expect("publish");
        assert_eq!(ack.await.expect("acked").sequence, 2);
        let mut ord = js.get_stream("ORD").await.expect("stream");
        let info = ord.info().await.expect("info");
        assert_eq!((info.state.messages, info.state.last_sequence), (2, 2));
    }
}
