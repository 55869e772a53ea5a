//! Atomic batch publish (ADR-50): every answer as nats-server 2.15.1 gives it, 1,000
//! messages stored all or nothing, and an agent killed before the commit stores none.
//! Fast-ingest batch publish (2.14): every answer as nats-server's, and a paced batch.

use std::time::Duration;

use async_nats::jetstream;

#[path = "scenarios/atomic.rs"]
mod atomic;
#[path = "scenarios/fast.rs"]
mod fast;
#[path = "support/procs.rs"]
mod procs;

/// An agent (all roles, embedded control plane, local bucket) in `dir`.
fn start_agent(dir: &tempfile::TempDir) -> procs::Agent {
    procs::start_agent(procs::agent_cmd(dir.path(), &[]))
}

/// `[nats-server's, ours]`: the same answers, case by case.
fn same_answers<T: PartialEq + std::fmt::Debug>(mut results: Vec<Vec<(&str, T)>>) {
    let ours = results.pop().expect("ours");
    let theirs = results.pop().expect("theirs");
    for ((case, a), (_, b)) in ours.iter().zip(&theirs) {
        assert_eq!(a, b, "{case}: ours vs nats-server");
    }
    assert_eq!(ours.len(), theirs.len());
}

async fn connect(url: String) -> (async_nats::Client, jetstream::Context) {
    let client = async_nats::connect(url).await.expect("connect");
    let mut js = jetstream::new(client.clone());
    js.set_timeout(Duration::from_secs(10));
    (client, js)
}

/// The same batch calls against nats-server and the agent get the same answers:
/// staged messages' empty replies, the batch PubAck, and every refusal's code.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn atomic_batch_answers_like_nats_server() {
    let reference = infinistream_testkit::nats::NatsServer::start("")
        .expect("nats-server starts (INFINISTREAM_TOOLS_DIR)");
    let dir = tempfile::tempdir().expect("tempdir");
    let agent = start_agent(&dir);
    let mut results = Vec::new();
    for url in [reference.url(), format!("nats://{}", agent.client)] {
        let (client, js) = connect(url).await;
        atomic::create(&js, "B", "b", true).await;
        atomic::create(&js, "C", "c", false).await;
        results.push(atomic::answers(&client).await);
    }
    same_answers(results);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn atomic_batch_of_1000_all_or_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let agent = start_agent(&dir);
    let (client, js) = connect(format!("nats://{}", agent.client)).await;
    atomic::thousand_all_or_nothing(&client, &js).await;
}

/// 999 messages of a batch reach the agent (each answered, so each is staged), the
/// agent is killed with SIGKILL before the commit: after a restart the stream holds
/// nothing, and the commit of that batch is refused as incomplete.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn atomic_batch_killed_before_commit_stores_none() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut agent = start_agent(&dir);
    let (client, js) = connect(format!("nats://{}", agent.client)).await;
    atomic::create(&js, "KILL", "kill", true).await;
    for seq in 1..1000 {
        let staged = atomic::ask(&client, "kill.1", atomic::batch_headers("k", seq, None)).await;
        assert_eq!(staged, "", "message {seq} staged");
    }
    agent.child.kill().expect("kill -9 the agent");
    drop(client);

    let agent = start_agent(&dir);
    let (client, js) = connect(format!("nats://{}", agent.client)).await;
    let mut stream = js.get_stream("KILL").await.expect("stream survives");
    assert_eq!(stream.info().await.expect("info").state.messages, 0);
    let commit = atomic::ask(
        &client,
        "kill.1",
        atomic::batch_headers("k", 1000, Some("1")),
    )
    .await;
    assert_eq!(
        commit,
        r#"{"error":{"code":400,"err_code":10176,"description":"atomic publish batch is incomplete"},"stream":"KILL","seq":0}"#
    );
    assert_eq!(stream.info().await.expect("info").state.messages, 0);
}

/// The same fast batch messages against nats-server and the agent get the same
/// answers: flow acks, gap reports, per-message errors, PubAcks and every refusal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fast_batch_answers_like_nats_server() {
    let reference = infinistream_testkit::nats::NatsServer::start("")
        .expect("nats-server starts (INFINISTREAM_TOOLS_DIR)");
    let dir = tempfile::tempdir().expect("tempdir");
    let agent = start_agent(&dir);
    let mut results = Vec::new();
    for url in [reference.url(), format!("nats://{}", agent.client)] {
        let (client, _) = connect(url).await;
        fast::create(&client, "FB", "fb", true).await;
        fast::create(&client, "NB", "nb", false).await;
        results.push(fast::answers(&client, "nb.1", "fb.1").await);
    }
    same_answers(results);
}

/// A fast batch of 5,000 messages paced by flow acks (flow 100): all stored, flow acks
/// along the way, one PubAck with the count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fast_batch_of_5000_paced_by_flow_acks() {
    let dir = tempfile::tempdir().expect("tempdir");
    let agent = start_agent(&dir);
    let (client, js) = connect(format!("nats://{}", agent.client)).await;
    fast::create(&client, "PACED", "paced", true).await;
    let (ack, flow_acks) = fast::publish(
        &client,
        "paced.1",
        "big",
        5000,
        100,
        bytes::Bytes::from_static(b"x"),
    )
    .await;
    assert_eq!(
        ack,
        r#"{"stream":"PACED","seq":5000,"batch":"big","count":5000}"#
    );
    assert!(flow_acks >= 5000 / 200, "paced by flow acks: {flow_acks}");
    let mut stream = js.get_stream("PACED").await.expect("stream");
    assert_eq!(stream.info().await.expect("info").state.messages, 5000);
}
