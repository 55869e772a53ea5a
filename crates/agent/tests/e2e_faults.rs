//! A bucket that fails every PUT for 3 s: publishes in that window get JetStream errors
//! (never an ack), the agent keeps serving, buffered bytes stay bounded, and publishing
//! resumes by itself; every acked message is in the stream.

use std::time::{Duration, Instant};

use async_nats::jetstream::{self, stream};
use infinistream_agent::{AgentHandle, TestHooks};
use infinistream_objstore::{FaultHandle, FaultRule, Op};
use infinistream_runtime::CancellationToken;

#[path = "support/in_process.rs"]
mod in_process;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_bucket_outage_gives_errors_then_recovers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let faults = FaultHandle::new();
    let config = in_process::local(dir.path())
        .validate()
        .expect("valid config");
    let agent = AgentHandle::start_with(
        config,
        CancellationToken::new(),
        TestHooks {
            bucket_faults: Some(faults.clone()),
        },
    )
    .await
    .expect("agent starts");
    let client = async_nats::connect(format!("nats://{}", agent.client_addr()))
        .await
        .expect("connect");
    let mut js = jetstream::new(client);
    js.set_timeout(Duration::from_secs(20));
    js.create_stream(stream::Config {
        name: "F".into(),
        subjects: vec!["f".into()],
        ..Default::default()
    })
    .await
    .expect("create");

    let mut acked = 0u64;
    let mut failed = 0u64;
    let outage = Duration::from_secs(3);
    faults.add(FaultRule::fail(Op::Put).for_duration(outage));
    let started = Instant::now();
    // Publish through the outage and past it, until acks flow again.
    let mut recovered = false;
    while started.elapsed() < Duration::from_secs(30) {
        let mut batch = Vec::new();
        for i in 0..50 {
            batch.push(js.publish("f", format!("{i}").into()).await.expect("sent"));
        }
        let mut round_ok = 0;
        for ack in batch {
            match ack.await {
                Ok(ack) => {
                    assert_eq!(ack.sequence, acked + 1, "acks stay contiguous");
                    acked += 1;
                    round_ok += 1;
                }
                Err(err) => {
                    let text = err.to_string();
                    assert!(
                        text.contains("503") || text.contains("10077") || text.contains("upload"),
                        "outage errors are JetStream errors: {text}"
                    );
                    failed += 1;
                }
            }
        }
        assert!(
            agent.gateway_metrics().objects_written() < 10_000,
            "sanity: objects written"
        );
        if started.elapsed() > outage && round_ok == 50 {
            recovered = true;
            break;
        }
    }
    assert!(
        failed > 0,
        "publishes during the outage must fail, not hang or ack"
    );
    assert!(recovered, "publishing resumes after the outage");
    let info = js
        .get_stream("F")
        .await
        .expect("stream")
        .info()
        .await
        .expect("info")
        .clone();
    assert_eq!(
        info.state.messages, acked,
        "exactly the acked messages are stored"
    );
}
