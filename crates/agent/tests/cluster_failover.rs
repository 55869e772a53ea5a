//! `kill -9` of the control-plane leader while an application publishes steadily.
//!
//! Two `infinistream control-plane` replicas on one real etcd, one agent listing both
//! (`--control-plane http://a,http://b`), and an async-nats publisher sending acked
//! publishes with `Nats-Msg-Id`, a few in flight, retrying each until it is acked. The
//! leader replica is killed mid-run. Afterwards every acked message is in the stream
//! exactly once, in contiguous sequences, and the longest gap between two acks is
//! reported: the failover target is under a second; a gap of several seconds (the lease
//! TTL) means a dead leader was waited out instead of deposed, and fails the test.
//! Likewise a single replica restarted on its address serves at once, not after its
//! previous process's lease expired.

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, stream};
use futures::stream::{FuturesOrdered, StreamExt};
use infinistream_testkit::etcd::EtcdServer;
use infinistream_testkit::tools::free_port;

#[path = "support/procs.rs"]
mod procs;
use procs::{
    ControlPlane, GROUP_ID, GROUP_KEY, READY, agent_cmd, start_agent, start_control_plane_at,
};

/// Messages acked before the leader is killed, and after.
const BEFORE_KILL: usize = 150;
const AFTER_KILL: usize = 300;
/// Publishes in flight at once.
const IN_FLIGHT: usize = 8;
/// Far above the target (1 s) and below the lease TTL path (5 s): only a failover that
/// waits for the dead leader's lease to expire exceeds it.
const CLEARLY_STALLED: Duration = Duration::from_secs(3);

/// A control-plane replica over the etcd at `etcd` on 127.0.0.1:`port`.
fn replica_at(etcd: &str, port: u16) -> ControlPlane {
    start_control_plane_at(
        port,
        &format!("etcd://{}", etcd.trim_start_matches("http://")),
    )
}

fn replica(etcd: &str) -> ControlPlane {
    replica_at(etcd, free_port().expect("free port"))
}

/// The index of the replica that leads now (the one that logged it).
async fn leader_of(replicas: &mut [ControlPlane]) -> usize {
    let deadline = Instant::now() + READY;
    loop {
        for (i, r) in replicas.iter_mut().enumerate() {
            if r.child.output().contains("leading: serving writes") {
                return i;
            }
        }
        assert!(Instant::now() < deadline, "no replica became leader");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// An agent of the control plane at `control_plane` (a `file://` bucket in a fresh
/// directory) and a JetStream context on it with stream `EVENTS` (`events.>`).
async fn agent_with_stream(
    control_plane: &str,
) -> (tempfile::TempDir, procs::Agent, jetstream::Context) {
    let dir = tempfile::tempdir().expect("tempdir");
    let bucket = dir.path().join("bucket");
    std::fs::create_dir_all(&bucket).expect("bucket dir");
    let mut cmd = agent_cmd(
        &dir.path().join("agent"),
        &[
            "--control-plane",
            control_plane,
            "--bucket",
            &format!("file://{}", bucket.display()),
        ],
    );
    cmd.env("INFINISTREAM_GROUP_ID", GROUP_ID)
        .env("INFINISTREAM_GROUP_KEY", GROUP_KEY);
    let agent = start_agent(cmd);
    let client = async_nats::ConnectOptions::new()
        .request_timeout(Some(Duration::from_secs(5)))
        .connect(format!("nats://{}", agent.client))
        .await
        .expect("connect");
    let mut js = jetstream::new(client);
    js.set_timeout(Duration::from_secs(5));
    js.create_stream(stream::Config {
        name: "EVENTS".into(),
        subjects: vec!["events.>".into()],
        ..Default::default()
    })
    .await
    .expect("create stream");
    (dir, agent, js)
}

/// Publishes message `i` until it is acked; returns its sequence and when it was acked.
async fn publish_until_acked(js: &jetstream::Context, i: usize) -> (usize, u64, Instant) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Msg-Id", format!("m-{i}").as_str());
        let attempt = async {
            js.publish_with_headers("events.x", headers, format!("{i}").into())
                .await?
                .await
        };
        match attempt.await {
            Ok(ack) => return (i, ack.sequence, Instant::now()),
            Err(e) => {
                assert!(
                    Instant::now() < deadline,
                    "message {i} not acked within 60 s: {e}"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_the_leader_stalls_publishes_briefly_and_loses_nothing() {
    let etcd = EtcdServer::start().expect("etcd");
    let mut replicas = vec![replica(&etcd.endpoint()), replica(&etcd.endpoint())];
    let leader = leader_of(&mut replicas).await;
    let urls: Vec<String> = replicas.iter().map(|r| r.url.clone()).collect();
    let (_dir, _agent, js) = agent_with_stream(&urls.join(",")).await;

    // Steady publishing, a few in flight; the leader dies after BEFORE_KILL acks.
    let total = BEFORE_KILL + AFTER_KILL;
    let mut pending = FuturesOrdered::new();
    let mut next = 0usize;
    let mut acks: Vec<(usize, u64, Instant)> = Vec::with_capacity(total);
    let mut killed_at = None;
    while acks.len() < total {
        while next < total && pending.len() < IN_FLIGHT {
            pending.push_back(publish_until_acked(&js, next));
            next += 1;
        }
        let Some(ack) = pending.next().await else {
            break;
        };
        acks.push(ack);
        if acks.len() == BEFORE_KILL {
            replicas[leader].child.kill().expect("kill -9 the leader");
            killed_at = Some(Instant::now());
        }
    }
    let killed_at = killed_at.expect("the leader was killed");

    // The longest gap between two consecutive acks (in ack order), and around the kill.
    let mut times: Vec<Instant> = acks.iter().map(|(_, _, t)| *t).collect();
    times.sort();
    let longest = times
        .windows(2)
        .map(|w| w[1] - w[0])
        .max()
        .unwrap_or_default();
    let first_after_kill = times
        .iter()
        .find(|t| **t > killed_at)
        .map(|t| *t - killed_at)
        .unwrap_or_default();
    eprintln!(
        "leader kill -9: longest gap between acks {longest:?}; first ack {first_after_kill:?} after the kill"
    );

    // Every acked message is stored exactly once: one sequence per message id, the
    // sequences contiguous from 1, and the stream holds exactly those.
    let mut by_seq: BTreeMap<u64, usize> = BTreeMap::new();
    for (i, seq, _) in &acks {
        if let Some(other) = by_seq.insert(*seq, *i) {
            assert_eq!(other, *i, "sequence {seq} acked for two messages");
        }
    }
    assert_eq!(by_seq.len(), total, "one sequence per acked message");
    assert_eq!(
        by_seq.keys().copied().collect::<Vec<_>>(),
        (1..=total as u64).collect::<Vec<_>>(),
        "contiguous sequences"
    );
    let mut stream = js.get_stream("EVENTS").await.expect("stream");
    let info = stream.info().await.expect("info");
    assert_eq!(info.state.messages, total as u64, "no message stored twice");
    let mut seen = HashSet::new();
    for (seq, i) in &by_seq {
        let msg = stream.get_raw_message(*seq).await.expect("stored");
        assert_eq!(msg.payload, i.to_string().as_bytes(), "sequence {seq}");
        assert!(seen.insert(*i));
    }

    assert!(
        longest < CLEARLY_STALLED,
        "publishes stalled for {longest:?} after the leader was killed (target: under 1 s)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_single_replica_serves_without_waiting_out_its_old_lease() {
    let etcd = EtcdServer::start().expect("etcd");
    let mut only = replica(&etcd.endpoint());
    only.child
        .wait_for_line("leading: serving writes", READY)
        .expect("leads");
    let (_dir, _agent, js) = agent_with_stream(&only.url).await;
    let (_, seq, _) = publish_until_acked(&js, 0).await;
    assert_eq!(seq, 1);

    let port: u16 = only
        .url
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("the replica's port");
    only.child.kill().expect("kill -9 the only replica");
    let restarted_at = Instant::now();
    let mut again = replica_at(&etcd.endpoint(), port);
    again
        .child
        .wait_for_line("leading: serving writes", READY)
        .expect("the restarted replica leads");
    let (_, seq, acked_at) = publish_until_acked(&js, 1).await;
    assert_eq!(seq, 2, "the publish after the restart follows the first");
    let stall = acked_at - restarted_at;
    eprintln!("single replica kill -9 and restart: first ack {stall:?} after the restart began");
    assert!(
        stall < CLEARLY_STALLED,
        "the restarted replica served only after {stall:?}: it waited out its old lease"
    );
}
