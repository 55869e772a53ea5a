//! Real processes: `kill -9` of an agent loses no acknowledged message, and two agents
//! sharing one standalone control plane and one bucket de-duplicate across each other.

// `context::Publish` is deprecated in async-nats 0.51 but is still the way its
// JetStream context sends Msg-Id and expected headers; keep it until a replacement lands.
#![allow(deprecated)]

use std::collections::HashMap;

use async_nats::jetstream::{context::Publish, stream};

#[path = "scenarios/cluster.rs"]
mod cluster;

#[path = "support/procs.rs"]
mod procs;
use procs::{agent_cmd, context, remote_agent_cmd, start_agent};

const STREAMS: usize = 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_kill9_loses_no_acked_message() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut agent = start_agent(agent_cmd(dir.path(), &[]));
    let js = context(agent.client).await;
    for i in 0..STREAMS {
        js.create_stream(stream::Config {
            name: format!("D{i}"),
            subjects: vec![format!("d.{i}")],
            ..Default::default()
        })
        .await
        .expect("create stream");
    }

    // 100,000 acknowledged publishes, 4,096 in flight, each with a unique Msg-Id.
    const TOTAL: usize = 100_000;
    const WINDOW: usize = 4096;
    let mut acked: HashMap<usize, (u64, usize)> = HashMap::new(); // msg → (seq, stream)
    let mut next = 0;
    while next < TOTAL {
        let end = (next + WINDOW).min(TOTAL);
        let mut futures = Vec::with_capacity(end - next);
        for n in next..end {
            let s = n % STREAMS;
            futures.push((
                n,
                s,
                js.send_publish(
                    format!("d.{s}"),
                    Publish::build()
                        .payload(n.to_string().into())
                        .message_id(format!("m-{n}")),
                )
                .await
                .expect("publish sent"),
            ));
        }
        for (n, s, ack) in futures {
            let ack = ack.await.expect("acked");
            assert_eq!(ack.stream, format!("D{s}"));
            acked.insert(n, (ack.sequence, s));
        }
        next = end;
    }

    // More publishes in flight, then kill -9 while they are being batched.
    let mut in_flight = Vec::new();
    for n in TOTAL..TOTAL + 2000 {
        let s = n % STREAMS;
        in_flight.push(
            js.send_publish(
                format!("d.{s}"),
                Publish::build()
                    .payload(n.to_string().into())
                    .message_id(format!("m-{n}")),
            )
            .await
            .expect("publish sent"),
        );
    }
    agent.child.kill().expect("kill -9");
    drop(in_flight);

    // A new agent over the same data serves at once.
    let agent2 = start_agent(agent_cmd(dir.path(), &[]));
    let js = context(agent2.client).await;

    // Every acked message is there at its sequence: per stream, the acked sequences
    // are distinct and no higher than the stream's last sequence, and the stream has
    // no gaps.
    let mut per_stream: Vec<Vec<u64>> = vec![Vec::new(); STREAMS];
    for (seq, s) in acked.values() {
        per_stream[*s].push(*seq);
    }
    for (s, seqs) in per_stream.iter_mut().enumerate() {
        seqs.sort_unstable();
        let before = seqs.len();
        seqs.dedup();
        assert_eq!(
            seqs.len(),
            before,
            "stream D{s}: a sequence was acked twice"
        );
        let mut stream = js
            .get_stream(format!("D{s}"))
            .await
            .expect("stream survives");
        let info = stream.info().await.expect("info");
        assert_eq!(info.state.first_sequence, 1);
        assert!(
            info.state.last_sequence >= *seqs.last().expect("acked some"),
            "stream D{s}: last {} below an acked sequence",
            info.state.last_sequence
        );
        assert_eq!(
            info.state.messages, info.state.last_sequence,
            "stream D{s}: sequences are contiguous"
        );
    }

    // Republishing everything that was in flight at the kill, with the same Msg-Ids,
    // never duplicates: each stream then holds exactly one message per Msg-Id.
    let mut acks = Vec::new();
    for n in TOTAL..TOTAL + 2000 {
        let s = n % STREAMS;
        acks.push(
            js.send_publish(
                format!("d.{s}"),
                Publish::build()
                    .payload(n.to_string().into())
                    .message_id(format!("m-{n}")),
            )
            .await
            .expect("publish sent"),
        );
    }
    for ack in acks {
        ack.await.expect("acked after restart");
    }
    for s in 0..STREAMS {
        let mut stream = js.get_stream(format!("D{s}")).await.expect("stream");
        let info = stream.info().await.expect("info");
        assert_eq!(
            info.state.messages,
            ((TOTAL + 2000) / STREAMS) as u64,
            "stream D{s}: one message per Msg-Id"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_cluster_dedupe_across_two_agents() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cp, bucket) = procs::embedded_control_plane(dir.path());
    let agent =
        |name: &str| start_agent(remote_agent_cmd(&dir.path().join(name), &cp, &bucket, &[]));
    let (a, b) = (agent("a"), agent("b"));
    let (addr_a, addr_b) = (a.client, b.client);
    let js_a = context(addr_a).await;
    let js_b = context(addr_b).await;

    cluster::dedupe_across_two_agents(&js_a, &js_b).await;

    // A wrong group key is refused at startup with a clear message.
    let mut bad = remote_agent_cmd(&dir.path().join("c"), &cp, &bucket, &[]);
    bad.env("INFINISTREAM_GROUP_KEY", "wrong");
    let output = bad.output().expect("run agent with a wrong key");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.to_lowercase().contains("unauthenticated") || stderr.contains("refused"),
        "{stderr}"
    );
}
