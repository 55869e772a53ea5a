//! A stream created through one agent is served by every agent of the group as soon as
//! the create has answered, whatever roles the agent runs (the chaos suite's agent
//! probes found a jobs-only and a proxy agent answering no-responders, and a jobs-only
//! agent answering a KV direct get without headers).

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use async_nats::jetstream::{self, kv, stream};
use tokio::time::timeout;

#[path = "support/procs.rs"]
mod procs;
use infinistream_testkit::etcd::EtcdServer;
use infinistream_testkit::tools::free_port;
use procs::{Agent, ControlPlane, group_agent_cmd, http_get, start_agent, start_control_plane_at};

/// Generous bound for "this should happen"; never a timing assertion.
const EVENTUALLY: Duration = Duration::from_secs(30);

/// Waits until the agent's route mesh links it to `peers` other agents (a jobs-only
/// agent is linked, though not in the clients' `connect_urls`).
async fn until_linked(agent: &Agent, peers: u64) {
    timeout(EVENTUALLY, async {
        loop {
            let (status, body) = http_get(agent.http, "/varz").await;
            if status == 200 {
                let varz: serde_json::Value = serde_json::from_str(&body).expect("varz JSON");
                if varz["routes"].as_u64() == Some(peers) {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the route mesh linked the agents");
}

async fn js(addr: SocketAddr, name: &str) -> jetstream::Context {
    let client = async_nats::ConnectOptions::new()
        .name(name)
        .request_timeout(Some(Duration::from_secs(20)))
        .connect(format!("nats://{addr}"))
        .await
        .expect("connect");
    let mut js = jetstream::new(client);
    js.set_timeout(Duration::from_secs(20));
    js
}

/// Agents whose logs are printed when the test fails.
struct LogsOnFailure(Vec<(&'static str, Agent)>);

impl Drop for LogsOnFailure {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for (name, agent) in &mut self.0 {
                eprintln!("--- agent {name} log ---\n{}", agent.child.output());
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_created_through_one_agent_is_served_by_every_agent_at_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cp, bucket) = procs::embedded_control_plane(dir.path());
    every_agent_serves_a_new_stream_at_once(dir.path(), &cp.url, &bucket).await;
}

/// The same through three control-plane replicas on etcd (agents reach the leader
/// through followers, as in the chaos suite).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_created_through_one_agent_is_served_at_once_with_replicas() {
    let dir = tempfile::tempdir().expect("tempdir");
    let etcd = EtcdServer::start().expect("etcd");
    let store = format!("etcd://{}", etcd.endpoint().trim_start_matches("http://"));
    let replicas: Vec<ControlPlane> = (0..3)
        .map(|_| start_control_plane_at(free_port().expect("free port"), &store))
        .collect();
    let urls: Vec<String> = replicas.iter().map(|r| r.url.clone()).collect();
    let bucket = dir.path().join("bucket");
    std::fs::create_dir_all(&bucket).expect("bucket dir");
    every_agent_serves_a_new_stream_at_once(
        dir.path(),
        &urls.join(","),
        &format!("file://{}", bucket.display()),
    )
    .await;
}

async fn every_agent_serves_a_new_stream_at_once(dir: &Path, control_plane: &str, bucket: &str) {
    let layout: [(&'static str, &str, &str); 4] = [
        ("a-produce", "proxy-produce", "a"),
        ("a-consume", "proxy-consume", "a"),
        ("a-jobs", "jobs", "a"),
        ("b-proxy", "proxy", "b"),
    ];
    let mut agents = Vec::new();
    for (name, roles, zone) in layout {
        agents.push((
            name,
            start_agent(group_agent_cmd(
                &dir.join(name),
                control_plane,
                bucket,
                &["--roles", roles, "--zone", zone],
            )),
        ));
    }
    for (_, agent) in &agents {
        until_linked(agent, 3).await;
    }
    let agents = LogsOnFailure(agents);
    let mut contexts = Vec::new();
    for (name, agent) in &agents.0 {
        contexts.push((*name, js(agent.client, name).await));
    }

    for round in 0..4 {
        // Created through each agent in turn, then published through every agent at
        // once: each publish lands (no no-responders, no retry).
        let name = format!("NEW{round}");
        let (_, creator) = &contexts[round];
        creator
            .create_stream(stream::Config {
                name: name.clone(),
                subjects: vec![format!("new{round}.>")],
                ..Default::default()
            })
            .await
            .expect("create stream");
        let mut seqs = Vec::new();
        for (agent, js) in &contexts {
            let ack = js
                .publish(format!("new{round}.{agent}"), "m".into())
                .await
                .unwrap_or_else(|e| panic!("publish through {agent}: {e}"))
                .await
                .unwrap_or_else(|e| panic!("PubAck through {agent}: {e}"));
            assert_eq!(ack.stream, name);
            seqs.push(ack.sequence);
        }
        assert_eq!(seqs, [1, 2, 3, 4], "round {round}");

        // A KV bucket likewise: put and get (direct get by last subject) through each.
        let bucket = format!("probe{round}");
        creator
            .create_key_value(kv::Config {
                bucket: bucket.clone(),
                ..Default::default()
            })
            .await
            .expect("create bucket");
        for (i, (agent, js)) in contexts.iter().enumerate() {
            let store = js.get_key_value(&bucket).await.expect("bucket");
            let rev = store
                .put("k", agent.to_string().into())
                .await
                .unwrap_or_else(|e| panic!("kv put through {agent}: {e}"));
            assert_eq!(rev, i as u64 + 1);
            let entry = store
                .entry("k")
                .await
                .unwrap_or_else(|e| panic!("kv get through {agent}: {e}"))
                .unwrap_or_else(|| panic!("kv get through {agent}: not found"));
            assert_eq!(entry.revision, rev, "through {agent}");
            assert_eq!(&entry.value[..], agent.as_bytes());
        }
    }
}

/// A KV get through a jobs-only agent that can reach no proxy-consume agent is answered
/// with an error naming the missing role (a status message), not with a message
/// without headers (async-nats: "missing message header"); with a consume agent
/// linked it is forwarded and answered with the entry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kv_get_through_a_jobs_agent_is_forwarded_or_refused_clearly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cp, bucket) = procs::embedded_control_plane(dir.path());
    let agent = |name: &str, roles: &str| {
        start_agent(group_agent_cmd(
            &dir.path().join(name),
            &cp.url,
            &bucket,
            &["--roles", roles],
        ))
    };
    let mut agents = LogsOnFailure(vec![
        ("produce", agent("produce", "proxy-produce")),
        ("jobs", agent("jobs", "jobs")),
    ]);
    for (_, agent) in &agents.0 {
        until_linked(agent, 1).await;
    }
    let producer = js(agents.0[0].1.client, "producer").await;
    let store = producer
        .create_key_value(kv::Config {
            bucket: "JOBS".into(),
            ..Default::default()
        })
        .await
        .expect("create bucket");
    store.put("k", "v".into()).await.expect("put");
    let through_jobs = js(agents.0[1].1.client, "through-jobs")
        .await
        .get_key_value("JOBS")
        .await
        .expect("bucket through the jobs agent");
    let error = through_jobs
        .entry("k")
        .await
        .expect_err("no agent serves reads")
        .to_string();
    assert!(
        error.contains("proxy-consume") && !error.contains("missing message header"),
        "{error}"
    );

    agents
        .0
        .push(("consume", agent("consume", "proxy-consume")));
    for (_, agent) in &agents.0 {
        until_linked(agent, 2).await;
    }
    let entry = through_jobs
        .entry("k")
        .await
        .expect("forwarded get")
        .expect("an entry");
    assert_eq!((entry.revision, &entry.value[..]), (1, &b"v"[..]));

    // A delete and a purge marker keep their `KV-Operation` header on every path —
    // served here (consume), forwarded from a produce-only and from a jobs-only agent —
    // or async-nats would read the marker as a put (the chaos suite's `k0` report was
    // checked against this).
    let through_consume = js(agents.0[2].1.client, "through-consume")
        .await
        .get_key_value("JOBS")
        .await
        .expect("bucket through the consume agent");
    for op in [kv::Operation::Delete, kv::Operation::Purge] {
        if op == kv::Operation::Delete {
            store.delete("k").await.expect("delete");
        } else {
            store.purge("k").await.expect("purge");
        }
        for (path, store) in [
            ("consume", &through_consume),
            ("produce", &store),
            ("jobs", &through_jobs),
        ] {
            let entry = store
                .entry("k")
                .await
                .expect("get of a marker")
                .expect("the marker");
            assert_eq!(entry.operation, op, "{op:?} read through {path}");
        }
    }
}
