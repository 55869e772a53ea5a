//! Core NATS subjects across brokers linked as peers (the agent's route mesh), with
//! the transport replaced by in-process pumps: real clients on each broker, interest
//! and messages moved between brokers exactly as the agents' gRPC links move them.

mod common;

use std::time::Duration;

use async_nats::client::RequestErrorKind;
use common::{EVENTUALLY, TestBroker};
use futures::StreamExt;
use infinistream_broker::{Broker, BrokerConfig, Peer};
use tokio::task::JoinHandle;
use tokio::time::timeout;

/// A link between two brokers, both ways; dropping it breaks the link.
struct Link {
    pumps: Vec<JoinHandle<()>>,
}

impl Drop for Link {
    fn drop(&mut self) {
        for p in &self.pumps {
            p.abort();
        }
    }
}

fn link(a: &(&str, &Broker), b: &(&str, &Broker)) -> Link {
    // a's view of b, and b's view of a.
    let a_to_b = a.1.attach_peer(b.0);
    let b_to_a = b.1.attach_peer(a.0);
    // What a sends to b is applied by b's peer handle for a, and back.
    let (a_out, b_out) = (std::sync::Arc::new(a_to_b), std::sync::Arc::new(b_to_a));
    let pumps = vec![
        pump_shared(a_out.clone(), b_out.clone()),
        pump_shared(b_out, a_out),
    ];
    Link { pumps }
}

/// Links three brokers into a full mesh, as the agents' route mesh does.
fn full_mesh(a: &TestBroker, b: &TestBroker, c: &TestBroker) -> [Link; 3] {
    [
        link(&("a", &a.broker), &("b", &b.broker)),
        link(&("a", &a.broker), &("c", &c.broker)),
        link(&("b", &b.broker), &("c", &c.broker)),
    ]
}

fn pump_shared(from: std::sync::Arc<Peer>, to: std::sync::Arc<Peer>) -> JoinHandle<()> {
    tokio::spawn(async move {
        while let Some(batch) = from.next_batch(1 << 20).await {
            to.receive(batch);
        }
    })
}

/// Waits for a condition that an event elsewhere makes true (a frame crossing a link).
async fn until(what: &str, cond: impl Fn() -> bool) {
    timeout(EVENTUALLY, async {
        while !cond() {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("timed out waiting for {what}"));
}

async fn next(sub: &mut async_nats::Subscriber) -> async_nats::Message {
    timeout(EVENTUALLY, sub.next())
        .await
        .expect("message in time")
        .expect("subscription open")
}

/// Answers every request on `subject` with its own payload until aborted.
async fn echo_service(service: &async_nats::Client, subject: &str) -> JoinHandle<()> {
    let mut requests = service.subscribe(subject.to_owned()).await.expect("sub");
    service.flush().await.expect("flush");
    let service = service.clone();
    tokio::spawn(async move {
        while let Some(req) = requests.next().await {
            if let Some(reply) = req.reply {
                service.publish(reply, req.payload).await.expect("reply");
            }
        }
    })
}

async fn brokers(n: usize) -> Vec<TestBroker> {
    let mut v = Vec::new();
    for _ in 0..n {
        v.push(TestBroker::start(BrokerConfig::default()).await);
    }
    v
}

#[tokio::test]
async fn a_publish_reaches_a_subscriber_on_a_peer_with_subject_reply_and_headers() {
    let tbs = brokers(2).await;
    let (a, b) = (&tbs[0], &tbs[1]);
    let _link = link(&("a", &a.broker), &("b", &b.broker));
    let on_b = b.client().await;
    let mut sub = on_b.subscribe("orders.*").await.expect("sub");
    on_b.flush().await.expect("flush");
    until("a to learn b's interest", || {
        a.broker.has_peer_interest("orders.created")
    })
    .await;
    assert!(
        !a.broker.has_interest("orders.created"),
        "peer interest is not local"
    );
    let on_a = a.client().await;
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("X-Trace", "t1");
    on_a.publish_with_reply_and_headers("orders.created", "reply.here", headers, "hello".into())
        .await
        .expect("pub");
    let msg = next(&mut sub).await;
    assert_eq!(msg.subject.as_str(), "orders.created");
    assert_eq!(msg.reply.as_deref(), Some("reply.here"));
    assert_eq!(&msg.payload[..], b"hello");
    assert_eq!(
        msg.headers
            .as_ref()
            .and_then(|h| h.get("X-Trace"))
            .map(|v| v.as_str()),
        Some("t1")
    );
}

#[tokio::test]
async fn request_reply_crosses_agents_and_no_responders_follows_interest() {
    let tbs = brokers(2).await;
    let (a, b) = (&tbs[0], &tbs[1]);
    let _link = link(&("a", &a.broker), &("b", &b.broker));
    let service = b.client().await;
    let responder = echo_service(&service, "svc.echo").await;
    until("a to learn of the service", || {
        a.broker.has_peer_interest("svc.echo")
    })
    .await;
    let requester = a.client().await;
    // The requester's inbox subscription reaches b before the request does: every
    // request is answered, none waits for interest to spread.
    for i in 0..20 {
        let resp = timeout(
            EVENTUALLY,
            requester.request("svc.echo", format!("r{i}").into()),
        )
        .await
        .expect("answer in time")
        .expect("answered");
        assert_eq!(resp.payload, format!("r{i}").as_bytes());
    }
    responder.abort();
    drop(service);
    until("a to forget the service", || {
        !a.broker.has_peer_interest("svc.echo")
    })
    .await;
    let err = timeout(EVENTUALLY, requester.request("svc.echo", "late".into()))
        .await
        .expect("answer in time")
        .expect_err("nobody serves it now");
    assert_eq!(err.kind(), RequestErrorKind::NoResponders);
}

#[tokio::test]
async fn queue_groups_prefer_local_members_and_deliver_once_across_agents() {
    let tbs = brokers(3).await;
    let (a, b, c) = (&tbs[0], &tbs[1], &tbs[2]);
    let _links = full_mesh(a, b, c);
    let on_a = a.client().await;
    let on_b = b.client().await;
    let mut members = Vec::new();
    for client in [&on_a, &on_a, &on_b, &on_b] {
        members.push(
            client
                .queue_subscribe("work", "workers".into())
                .await
                .expect("qsub"),
        );
    }
    on_a.flush().await.expect("flush");
    on_b.flush().await.expect("flush");
    until("c to learn of both agents' members", || {
        c.broker.has_peer_interest("work")
    })
    .await;
    until("a and b to learn of each other's members", || {
        a.broker.has_peer_interest("work") && b.broker.has_peer_interest("work")
    })
    .await;
    // Published on a: a's own members take every message.
    for i in 0..50 {
        on_a.publish("work", format!("a{i}").into())
            .await
            .expect("pub");
    }
    // Published on c (no member there): each message to exactly one member anywhere.
    let on_c = c.client().await;
    for i in 0..50 {
        on_c.publish("work", format!("c{i}").into())
            .await
            .expect("pub");
    }
    on_a.flush().await.expect("flush");
    on_c.flush().await.expect("flush");
    let mut got: Vec<(usize, String)> = Vec::new();
    let deadline = tokio::time::Instant::now() + EVENTUALLY;
    while got.len() < 100 && tokio::time::Instant::now() < deadline {
        for (i, m) in members.iter_mut().enumerate() {
            if let Ok(Some(msg)) = timeout(Duration::from_millis(20), m.next()).await {
                got.push((i, String::from_utf8_lossy(&msg.payload).into_owned()));
            }
        }
    }
    let mut payloads: Vec<&str> = got.iter().map(|(_, p)| p.as_str()).collect();
    payloads.sort_unstable();
    let mut want: Vec<String> = (0..50).map(|i| format!("a{i}")).collect();
    want.extend((0..50).map(|i| format!("c{i}")));
    want.sort_unstable();
    assert_eq!(
        payloads,
        want.iter().map(String::as_str).collect::<Vec<_>>()
    );
    assert!(
        got.iter()
            .filter(|(_, p)| p.starts_with('a'))
            .all(|(i, _)| *i < 2),
        "a's publishes stay with a's members"
    );
    // Nothing more arrives for anyone (no duplicates).
    for m in &mut members {
        assert!(timeout(Duration::from_millis(50), m.next()).await.is_err());
    }
}

#[tokio::test]
async fn a_full_mesh_delivers_each_message_once_per_subscriber() {
    let tbs = brokers(3).await;
    let (a, b, c) = (&tbs[0], &tbs[1], &tbs[2]);
    let _links = full_mesh(a, b, c);
    let clients = [a.client().await, b.client().await, c.client().await];
    let mut subs = Vec::new();
    for cl in &clients {
        // Two overlapping subscriptions on one client: each gets its copy, and the
        // peer still sends one message per publish.
        subs.push(cl.subscribe("events.>").await.expect("sub"));
        subs.push(cl.subscribe("events.*").await.expect("sub"));
        cl.flush().await.expect("flush");
    }
    for tb in [a, b, c] {
        until("every peer's interest", || {
            tb.broker.has_peer_interest("events.x")
        })
        .await;
    }
    for (i, cl) in clients.iter().enumerate() {
        for j in 0..10 {
            cl.publish("events.x", format!("{i}-{j}").into())
                .await
                .expect("pub");
        }
        cl.flush().await.expect("flush");
    }
    for s in &mut subs {
        let mut got = Vec::new();
        for _ in 0..30 {
            got.push(String::from_utf8_lossy(&next(s).await.payload).into_owned());
        }
        got.sort_unstable();
        got.dedup();
        assert_eq!(got.len(), 30, "every message once");
        assert!(
            timeout(Duration::from_millis(50), s.next()).await.is_err(),
            "no copies"
        );
    }
    assert_eq!(a.broker.peers().len(), 2);
    let varz = a.broker.varz();
    assert_eq!(
        (varz.routes, varz.remotes),
        (2, 2),
        "/varz counts the links"
    );
}

#[tokio::test]
async fn internal_subscribers_are_neither_announced_nor_fed_by_peers() {
    let tbs = brokers(2).await;
    let (a, b) = (&tbs[0], &tbs[1]);
    let _link = link(&("a", &a.broker), &("b", &b.broker));
    let mut internal = b
        .broker
        .subscribe_internal("$JS.API.>", None, 16)
        .expect("sub");
    let on_b = b.client().await;
    // Let a full round of interest cross first: a client subscription made after the
    // internal one is seen by a, the internal one never is.
    let mut client_sub = on_b.subscribe("$JS.API.INFO").await.expect("sub");
    on_b.flush().await.expect("flush");
    until("a to learn of b's client", || {
        a.broker.has_peer_interest("$JS.API.INFO")
    })
    .await;
    assert!(!a.broker.has_peer_interest("$JS.API.STREAM.LIST"));
    let on_a = a.client().await;
    on_a.publish("$JS.API.INFO", "".into()).await.expect("pub");
    on_a.flush().await.expect("flush");
    next(&mut client_sub).await;
    assert!(
        internal.try_recv().is_none(),
        "a peer's publish never reaches b's handlers"
    );
}

/// A cluster-visible internal subscription (the system API's PING responders) is
/// announced and fed like a client's: a request from a client on any broker reaches the
/// responder of every broker once, and each answer comes back; a plain internal
/// subscription on the same subject still sees only its own broker's clients.
#[tokio::test]
async fn cluster_visible_internal_subscribers_hear_every_peers_clients_once() {
    let tbs = brokers(3).await;
    let (a, b, c) = (&tbs[0], &tbs[1], &tbs[2]);
    let _links = full_mesh(a, b, c);
    let mut responders = Vec::new();
    for (name, tb) in [("a", a), ("b", b), ("c", c)] {
        let mut sub = tb
            .broker
            .subscribe_cluster_internal("svc.ping", None, 16)
            .expect("sub");
        let broker = tb.broker.clone();
        responders.push(tokio::spawn(async move {
            while let Some(m) = sub.recv().await {
                if let Some(reply) = m.reply {
                    let body = format!("{name}:{}", String::from_utf8_lossy(&m.payload));
                    broker.publish(&reply, None, None, body.into());
                }
            }
        }));
    }
    let mut local_only = b
        .broker
        .subscribe_internal("svc.ping", None, 16)
        .expect("sub");
    for tb in [a, b, c] {
        until("every peer's responder to be announced", || {
            tb.broker.has_peer_interest("svc.ping")
        })
        .await;
    }
    let on_a = a.client().await;
    let inbox = on_a.new_inbox();
    let mut answers = on_a.subscribe(inbox.clone()).await.expect("sub");
    on_a.flush().await.expect("flush");
    until("a's reply interest to reach its peers", || {
        b.broker.has_peer_interest(&inbox) && c.broker.has_peer_interest(&inbox)
    })
    .await;
    // Round 2 is the barrier for round 1: each responder and each link is FIFO, so a
    // second answer to round 1 would arrive before that broker's answer to round 2.
    for round in ["1", "2"] {
        on_a.publish_with_reply("svc.ping", inbox.clone(), round.into())
            .await
            .expect("pub");
        on_a.flush().await.expect("flush");
        let mut got = Vec::new();
        for _ in 0..3 {
            got.push(String::from_utf8_lossy(&next(&mut answers).await.payload).into_owned());
        }
        got.sort_unstable();
        let want: Vec<String> = ["a", "b", "c"]
            .iter()
            .map(|n| format!("{n}:{round}"))
            .collect();
        assert_eq!(got, want, "one answer per broker");
    }
    assert!(
        local_only.try_recv().is_none(),
        "a plain internal subscription is not fed by peers"
    );
    for r in responders {
        r.abort();
    }
}

#[tokio::test]
async fn a_broken_link_forgets_the_peers_interest_and_a_new_one_relearns_it() {
    let tbs = brokers(2).await;
    let (a, b) = (&tbs[0], &tbs[1]);
    let on_b = b.client().await;
    let mut sub = on_b.subscribe("jobs.done").await.expect("sub");
    on_b.flush().await.expect("flush");
    let first = link(&("a", &a.broker), &("b", &b.broker));
    until("interest over the first link", || {
        a.broker.has_peer_interest("jobs.done")
    })
    .await;
    drop(first);
    until("interest gone with the link", || {
        !a.broker.has_peer_interest("jobs.done")
    })
    .await;
    assert!(a.broker.peers().is_empty());
    // A new link sends b's whole interest again.
    let _second = link(&("a", &a.broker), &("b", &b.broker));
    until("interest over the second link", || {
        a.broker.has_peer_interest("jobs.done")
    })
    .await;
    let on_a = a.client().await;
    on_a.publish("jobs.done", "1".into()).await.expect("pub");
    assert_eq!(&next(&mut sub).await.payload[..], b"1");
}

#[tokio::test]
async fn a_newer_link_to_the_same_peer_replaces_the_older() {
    let tbs = brokers(1).await;
    let a = &tbs[0];
    let old = a.broker.attach_peer("b");
    let new = a.broker.attach_peer("b");
    assert!(old.is_closed());
    assert!(!new.is_closed());
    assert!(old.next_batch(1024).await.is_none());
    assert_eq!(a.broker.peers(), vec!["b".to_owned()]);
    drop(old);
    assert_eq!(
        a.broker.peers(),
        vec!["b".to_owned()],
        "dropping the old link keeps the new"
    );
    drop(new);
    assert!(a.broker.peers().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_reply_after_a_burst_through_the_link() {
    let tbs = brokers(2).await;
    let (a, b) = (&tbs[0], &tbs[1]);
    let _link = link(&("a", &a.broker), &("b", &b.broker));
    let on_b = b.client().await;
    let mut sub = on_b.subscribe("bench.core").await.expect("sub");
    on_b.flush().await.expect("flush");
    until("interest", || a.broker.has_peer_interest("bench.core")).await;
    let on_a = a.client().await;
    let payload = bytes::Bytes::from(vec![b'x'; 1024]);
    for _ in 0..10_000 {
        on_a.publish("bench.core", payload.clone())
            .await
            .expect("pub");
    }
    on_a.flush().await.expect("flush");
    for _ in 0..10_000 {
        next(&mut sub).await;
    }
    let service = b.client().await;
    let _responder = echo_service(&service, "bench.rr").await;
    until("service", || a.broker.has_peer_interest("bench.rr")).await;
    let requester = a.client().await;
    for i in 0..1000 {
        let resp = timeout(
            EVENTUALLY,
            requester.request("bench.rr", format!("{i}").into()),
        )
        .await
        .expect("in time")
        .expect("answered");
        assert_eq!(resp.payload, format!("{i}").as_bytes());
    }
}
