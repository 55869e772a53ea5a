//! Core NATS subjects across agents: three agent processes of one group (standalone
//! control plane, shared bucket) link into a route mesh, so pub/sub, request/reply and
//! queue groups work whichever agent each client is connected to, as with a
//! nats-server cluster, and a `kill -9`ed agent's subscribers stop counting at once.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use async_nats::client::RequestErrorKind;
use async_nats::jetstream::stream;
use futures::StreamExt;
use tokio::time::timeout;

#[path = "support/procs.rs"]
mod procs;
use procs::{Agent, remote_agent_cmd, start_agent};

/// Generous bound for "this should happen"; never a timing assertion.
const EVENTUALLY: Duration = Duration::from_secs(30);

async fn connect(addr: SocketAddr) -> async_nats::Client {
    async_nats::ConnectOptions::new()
        .request_timeout(Some(Duration::from_secs(10)))
        .connect(format!("nats://{addr}"))
        .await
        .expect("connect")
}

/// Serves `subject` on `client`, answering each request with `tag:payload`.
fn serve(
    client: async_nats::Client,
    subject: &'static str,
    tag: &'static str,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut requests = client.subscribe(subject).await.expect("sub");
        client.flush().await.expect("flush");
        while let Some(req) = requests.next().await {
            if let Some(reply) = req.reply {
                let body = format!("{tag}:{}", String::from_utf8_lossy(&req.payload));
                client.publish(reply, body.into()).await.expect("reply");
            }
        }
    })
}

/// Requests until the service answers: the event that its interest reached the
/// requester's agent (a request before that gets no-responders at once).
async fn until_served(client: &async_nats::Client, subject: &str) -> String {
    timeout(EVENTUALLY, async {
        loop {
            match client.request(subject.to_owned(), "ping".into()).await {
                Ok(resp) => return String::from_utf8_lossy(&resp.payload).into_owned(),
                Err(e) if e.kind() == RequestErrorKind::NoResponders => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("request failed: {e}"),
            }
        }
    })
    .await
    .expect("the service became reachable")
}

/// Requests until nobody serves `subject` any more.
async fn until_unserved(client: &async_nats::Client, subject: &str) {
    timeout(EVENTUALLY, async {
        loop {
            match client.request(subject.to_owned(), "ping".into()).await {
                Err(e) if e.kind() == RequestErrorKind::NoResponders => return,
                _ => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    })
    .await
    .expect("the service's interest went away");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_core_subjects_cross_agents() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cp, bucket) = procs::embedded_control_plane(dir.path());
    let agent =
        |name: &str| start_agent(remote_agent_cmd(&dir.path().join(name), &cp, &bucket, &[]));
    let mut a = agent("a");
    let Agent {
        child: mut b_child,
        client: b_addr,
        ..
    } = agent("b");
    let c = agent("c");
    let on_a = connect(a.client).await;
    let on_b = connect(b_addr).await;
    let on_c = connect(c.client).await;

    // Request/reply: requester on a, service on b.
    let service_b = serve(on_b.clone(), "svc.echo", "b");
    assert_eq!(until_served(&on_a, "svc.echo").await, "b:ping");
    for i in 0..50 {
        let resp = on_a
            .request("svc.echo", format!("r{i}").into())
            .await
            .expect("answered");
        assert_eq!(resp.payload, format!("b:r{i}").as_bytes());
    }

    // Pub/sub with a wildcard, and a stream subject: a stream captures the publish
    // once (on the publisher's agent) and a core subscriber on another agent sees it.
    let js_a = async_nats::jetstream::new(on_a.clone());
    js_a.create_stream(stream::Config {
        name: "ORDERS".into(),
        subjects: vec!["orders.>".into()],
        ..Default::default()
    })
    .await
    .expect("create stream");
    let mut watch_c = on_c.subscribe("orders.>").await.expect("sub");
    on_c.flush().await.expect("flush");
    // c's interest is known on a once a request through c's agent is answered by b.
    let _probe = serve(on_c.clone(), "svc.probe.c", "c");
    until_served(&on_a, "svc.probe.c").await;
    let ack = js_a
        .publish("orders.new", "o1".into())
        .await
        .expect("publish")
        .await
        .expect("acked");
    assert_eq!(ack.sequence, 1);
    let msg = timeout(EVENTUALLY, watch_c.next())
        .await
        .expect("in time")
        .expect("open");
    assert_eq!(msg.subject.as_str(), "orders.new");
    assert_eq!(&msg.payload[..], b"o1");
    let mut orders = js_a.get_stream("ORDERS").await.expect("stream");
    assert_eq!(
        orders.info().await.expect("info").state.messages,
        1,
        "stored once"
    );

    // A queue group with members on b and c, published on a: each message once.
    let mut members = vec![
        on_b.queue_subscribe("work", "workers".into())
            .await
            .expect("qsub"),
        on_c.queue_subscribe("work", "workers".into())
            .await
            .expect("qsub"),
    ];
    on_b.flush().await.expect("flush");
    on_c.flush().await.expect("flush");
    let _probe_b = serve(on_b.clone(), "svc.probe.b", "b");
    until_served(&on_a, "svc.probe.b").await;
    until_served(&on_a, "svc.probe.c").await;
    for i in 0..100 {
        on_a.publish("work", i.to_string().into())
            .await
            .expect("pub");
    }
    on_a.flush().await.expect("flush");
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + EVENTUALLY;
    while got.len() < 100 && tokio::time::Instant::now() < deadline {
        for m in &mut members {
            if let Ok(Some(msg)) = timeout(Duration::from_millis(20), m.next()).await {
                got.push(
                    String::from_utf8_lossy(&msg.payload)
                        .parse::<u32>()
                        .expect("number"),
                );
            }
        }
    }
    let distinct: BTreeSet<u32> = got.iter().copied().collect();
    assert_eq!(got.len(), 100, "each message once");
    assert_eq!(distinct, (0..100).collect());

    // kill -9 b: its service stops counting on a at once (no-responders, not a
    // timeout), and a replacement on c is found.
    b_child.kill().expect("kill -9 agent b");
    service_b.abort();
    until_unserved(&on_a, "svc.echo").await;
    let _service_c = serve(on_c.clone(), "svc.echo", "c");
    assert_eq!(until_served(&on_a, "svc.echo").await, "c:ping");

    // A graceful stop of an agent with live routes completes: its peer port waits for
    // its route streams, which end with it.
    let term = std::process::Command::new("kill")
        .args(["-TERM", &a.child.id().to_string()])
        .status()
        .expect("kill -TERM");
    assert!(term.success());
    a.child
        .wait_for_line("agent stopped", EVENTUALLY)
        .expect("agent a stops gracefully with routes up");
}
