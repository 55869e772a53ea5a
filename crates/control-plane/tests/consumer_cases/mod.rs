//! Consumer-state and commit-notification cases, written once and run against every
//! store (`consumers_memory_embedded.rs`, `consumers_etcd.rs`).
#![allow(dead_code, clippy::unwrap_used)]

use std::time::Duration;

use infinistream_control_plane::ControlPlaneClient;
use infinistream_cp_client::StreamWatch;
use infinistream_proto::v1::{self, StreamEventKind};
use infinistream_types::Clock;
use tokio_stream::StreamExt;

use crate::suite::*;

/// Bound so a missing event fails the test instead of hanging it; nothing asserts on
/// how fast an event arrives.
pub const HANG_GUARD: Duration = Duration::from_secs(20);

/// One event, shortly: "state W1 1..3 n3", "synced", "consumer W1/D".
pub fn show(e: &v1::StreamEvent) -> String {
    let kind = match StreamEventKind::try_from(e.kind) {
        Ok(StreamEventKind::StreamEventState) => "state",
        Ok(StreamEventKind::StreamEventCreated) => "created",
        Ok(StreamEventKind::StreamEventUpdated) => "updated",
        Ok(StreamEventKind::StreamEventDeleted) => return format!("deleted {}", e.stream),
        Ok(StreamEventKind::StreamEventSnapshot) => "snapshot",
        Ok(StreamEventKind::StreamEventSynced) => return "synced".into(),
        Ok(StreamEventKind::StreamEventConsumer) => {
            return format!("consumer {}/{}", e.stream, e.consumer);
        }
        Ok(StreamEventKind::StreamEventConsumerDeleted) => {
            return format!("consumer-deleted {}/{}", e.stream, e.consumer);
        }
        Err(_) => "unknown",
    };
    format!(
        "{kind} {} {}..{} n{}",
        e.stream, e.first_seq, e.last_seq, e.messages
    )
}

pub async fn next(w: &mut StreamWatch) -> String {
    match tokio::time::timeout(HANG_GUARD, w.next()).await {
        Ok(Some(Ok(e))) => show(&e),
        Ok(Some(Err(status))) => panic!("watch failed: {status}"),
        Ok(None) => panic!("watch ended"),
        Err(_) => panic!("no watch event within {HANG_GUARD:?}"),
    }
}

/// The next `n` events.
pub async fn take(w: &mut StreamWatch, n: usize) -> Vec<String> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(next(w).await);
    }
    out
}

/// Skips events until `want` arrives (after a reconnect, what precedes the snapshot
/// depends on timing).
pub async fn until(w: &mut StreamWatch, want: &str) {
    let mut seen = Vec::new();
    let found = tokio::time::timeout(HANG_GUARD, async {
        loop {
            match w.next().await {
                Some(Ok(e)) => {
                    let s = show(&e);
                    if s == want {
                        return;
                    }
                    seen.push(s);
                }
                Some(Err(status)) => panic!("watch failed: {status}"),
                None => panic!("watch ended"),
            }
        }
    })
    .await;
    assert!(found.is_ok(), "`{want}` never arrived; saw {seen:?}");
}

pub fn consumer_config(stream: &str, name: &str) -> v1::ConsumerConfig {
    v1::ConsumerConfig {
        stream: stream.into(),
        name: name.into(),
        config_json: b"{}".to_vec(),
        ack_wait_nanos: 30_000_000_000,
        ..Default::default()
    }
}

pub async fn create_consumer(c: &mut ControlPlaneClient, cfg: v1::ConsumerConfig) {
    let info = c
        .raw_consumers()
        .create_consumer(v1::CreateConsumerRequest { config: Some(cfg) })
        .await
        .unwrap()
        .into_inner();
    assert!(info.error.is_none(), "{:?}", info.error);
}

pub async fn claim(c: &mut ControlPlaneClient, stream: &str, name: &str, batch: u32) -> Vec<u64> {
    let resp = c
        .raw_consumers()
        .claim(v1::ClaimRequest {
            stream: stream.into(),
            consumer: name.into(),
            agent_id: "agent-1".into(),
            batch,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(resp.error.is_none(), "{:?}", resp.error);
    resp.deliveries.iter().map(|d| d.stream_seq).collect()
}

pub async fn ack(
    c: &mut ControlPlaneClient,
    stream: &str,
    name: &str,
    kind: v1::AckKind,
    seqs: Vec<u64>,
) {
    let resp = c
        .raw_consumers()
        .acknowledge(v1::AcknowledgeRequest {
            stream: stream.into(),
            consumer: name.into(),
            kind: kind as i32,
            stream_seqs: seqs,
            nak_delay_nanos: 0,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(resp.error.is_none(), "{:?}", resp.error);
}

fn watch_all() -> v1::WatchStreamsRequest {
    v1::WatchStreamsRequest {
        streams: vec![],
        consumers: true,
    }
}

/// WatchStreams: a snapshot, then every durable change in order; filters by stream;
/// consumer events only when asked for.
pub async fn watch_streams_reports_changes(backend: &dyn Backend) {
    let (_cp, mut c) = start(backend, clock()).await;
    create(&mut c, "W1", limits(&["w1.>"])).await;
    commit_one(&mut c, "wb1", "W1", vec![rec("w1.a")]).await;
    let mut all = c.watch_streams(watch_all());
    let mut only = c.watch_streams(v1::WatchStreamsRequest {
        streams: vec!["W1".into()],
        consumers: false,
    });
    assert_eq!(take(&mut all, 2).await, ["snapshot W1 1..1 n1", "synced"]);
    assert_eq!(take(&mut only, 2).await, ["snapshot W1 1..1 n1", "synced"]);

    commit_one(&mut c, "wb2", "W1", vec![rec("w1.a"), rec("w1.b")]).await;
    assert_eq!(next(&mut all).await, "state W1 1..3 n3");
    assert_eq!(next(&mut only).await, "state W1 1..3 n3");

    create(&mut c, "W2", limits(&["w2.>"])).await;
    assert_eq!(
        take(&mut all, 2).await,
        ["created W2 0..0 n0", "state W2 0..0 n0"]
    );
    // One batch over two streams: one event each, from one durable write.
    commit(
        &mut c,
        batch(
            "wb3",
            vec![
                chunk("W1", 0, vec![rec("w1.c")]),
                chunk("W2", 1, vec![rec("w2.a")]),
            ],
        ),
    )
    .await;
    assert_eq!(
        take(&mut all, 2).await,
        ["state W1 1..4 n4", "state W2 1..1 n1"]
    );
    assert_eq!(next(&mut only).await, "state W1 1..4 n4");

    let deleted = c
        .raw_streams()
        .delete_stream(v1::DeleteStreamRequest { name: "W2".into() })
        .await
        .unwrap()
        .into_inner();
    assert!(deleted.error.is_none());
    assert_eq!(next(&mut all).await, "deleted W2");

    // Consumer events: a nak makes a message claimable; deletion stops serving.
    create_consumer(&mut c, consumer_config("W1", "D")).await;
    assert_eq!(next(&mut all).await, "consumer W1/D");
    assert_eq!(claim(&mut c, "W1", "D", 10).await, [1, 2, 3, 4]);
    ack(&mut c, "W1", "D", v1::AckKind::Nak, vec![2]).await;
    assert_eq!(next(&mut all).await, "consumer W1/D");
    let gone = c
        .raw_consumers()
        .delete_consumer(v1::DeleteConsumerRequest {
            stream: "W1".into(),
            name: "D".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(gone.error.is_none());
    assert_eq!(next(&mut all).await, "consumer-deleted W1/D");

    // Removals move first_seq.
    let purged = c
        .raw_streams()
        .purge_stream(v1::PurgeStreamRequest {
            stream: "W1".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(purged.purged, 4);
    assert_eq!(next(&mut all).await, "state W1 5..4 n0");
    // The filtered watch saw no W2 and no consumer event in between.
    assert_eq!(next(&mut only).await, "state W1 5..4 n0");
}

/// A watch over TCP survives a control-plane restart: the stream ends when the server
/// stops, the client reconnects by itself and resyncs from a snapshot that includes
/// what was committed meanwhile.
pub async fn watch_streams_survives_restart(backend: &dyn Backend) {
    let clock = clock();
    let (cp, mut c) = start(backend, clock.clone()).await;
    create(&mut c, "R", limits(&["r.>"])).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server_cp = cp.clone();
    let server = tokio::spawn(async move {
        infinistream_control_plane::serve(&server_cp, listener, async {
            let _ = stop_rx.await;
        })
        .await
    });
    let url = format!("http://{addr}");
    let remote = ControlPlaneClient::connect(&url, GROUP, KEY).await.unwrap();
    let mut w = remote.watch_streams(watch_all());
    assert_eq!(take(&mut w, 2).await, ["snapshot R 0..0 n0", "synced"]);
    commit_one(&mut c, "rb1", "R", vec![rec("r.a")]).await;
    assert_eq!(next(&mut w).await, "state R 1..1 n1");

    // Stop: the graceful shutdown completes although a watch is open.
    let _ = stop_tx.send(());
    tokio::time::timeout(HANG_GUARD, server)
        .await
        .expect("graceful shutdown with an open watch")
        .unwrap()
        .unwrap();
    drop((cp, c));
    tokio::task::yield_now().await;

    // Restart on the same address; commit before the watcher is back.
    let (cp, mut c) = start(backend, clock).await;
    commit_one(&mut c, "rb2", "R", vec![rec("r.b"), rec("r.c")]).await;
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server_cp = cp.clone();
    let server = tokio::spawn(async move {
        infinistream_control_plane::serve(&server_cp, listener, async {
            let _ = stop_rx.await;
        })
        .await
    });
    until(&mut w, "snapshot R 1..3 n3").await;
    assert_eq!(next(&mut w).await, "synced");
    commit_one(&mut c, "rb3", "R", vec![rec("r.d")]).await;
    assert_eq!(next(&mut w).await, "state R 1..4 n4");
    drop(w);
    let _ = stop_tx.send(());
    tokio::time::timeout(HANG_GUARD, server)
        .await
        .expect("graceful shutdown")
        .unwrap()
        .unwrap();
}

/// Create or update, as JetStream's action "": the error code, if any.
async fn create_consumer_err(c: &mut ControlPlaneClient, cfg: v1::ConsumerConfig) -> Option<u32> {
    create_consumer_action(c, cfg, "").await
}

/// JetStream's action "create", "update" or "" through the RPCs an agent uses.
async fn create_consumer_action(
    c: &mut ControlPlaneClient,
    cfg: v1::ConsumerConfig,
    action: &str,
) -> Option<u32> {
    let resp = if action == "create" {
        c.raw_consumers()
            .create_consumer(v1::CreateConsumerRequest { config: Some(cfg) })
            .await
    } else {
        c.raw_consumers()
            .update_consumer(v1::UpdateConsumerRequest {
                config: Some(cfg),
                create_if_missing: action.is_empty(),
            })
            .await
    };
    resp.unwrap().into_inner().error.map(|e| e.err_code)
}

async fn consumer_state(c: &mut ControlPlaneClient, stream: &str, name: &str) -> v1::ConsumerState {
    let info = c
        .raw_consumers()
        .consumer_info(v1::ConsumerInfoRequest {
            stream: stream.into(),
            name: name.into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(info.error.is_none(), "{:?}", info.error);
    info.state.unwrap()
}

fn filtered(stream: &str, name: &str, filters: &[&str]) -> v1::ConsumerConfig {
    v1::ConsumerConfig {
        filter_subjects: filters.iter().map(|f| f.to_string()).collect(),
        ..consumer_config(stream, name)
    }
}

/// deliver_policy last_per_subject, as nats-server 2.15.1 does it: with subjects
/// l.a:1,3 l.b:2,5 l.c:4 and filter `l.>`, deliver 3, 4, 5 then new messages;
/// delivered/ack floor start at 2 and num_pending at 3; without a filter: 10094.
pub async fn last_per_subject_delivers_last_of_each_subject(backend: &dyn Backend) {
    let (_cp, mut c) = start(backend, clock()).await;
    create(&mut c, "L", limits(&["l.>"])).await;
    let recs = ["l.a", "l.b", "l.a", "l.c", "l.b"].map(rec).to_vec();
    commit_one(&mut c, "lb1", "L", recs).await;
    let lps = |name: &str, filters: &[&str]| v1::ConsumerConfig {
        deliver_policy: v1::DeliverPolicy::DeliverLastPerSubject as i32,
        ..filtered("L", name, filters)
    };
    assert_eq!(
        create_consumer_err(&mut c, lps("NOF", &[])).await,
        Some(10094)
    );
    create_consumer(&mut c, lps("LP", &["l.>"])).await;
    let st = consumer_state(&mut c, "L", "LP").await;
    assert_eq!(st.num_pending, 3);
    assert_eq!(st.delivered.unwrap().stream_seq, 2);
    assert_eq!(st.ack_floor.unwrap().stream_seq, 2);
    assert_eq!(claim(&mut c, "L", "LP", 2).await, [3, 4]);
    assert_eq!(consumer_state(&mut c, "L", "LP").await.num_pending, 1);
    commit_one(&mut c, "lb2", "L", vec![rec("l.d")]).await;
    assert_eq!(consumer_state(&mut c, "L", "LP").await.num_pending, 2);
    assert_eq!(claim(&mut c, "L", "LP", 10).await, [5, 6]);
    let st = consumer_state(&mut c, "L", "LP").await;
    assert_eq!((st.num_pending, st.delivered.unwrap().stream_seq), (0, 6));
    // One subject: its last message only (nats-server: delivered 4, pending 1).
    create_consumer(&mut c, lps("LPB", &["l.b"])).await;
    let st = consumer_state(&mut c, "L", "LPB").await;
    assert_eq!((st.num_pending, st.delivered.unwrap().stream_seq), (1, 4));
    assert_eq!(claim(&mut c, "L", "LPB", 10).await, [5]);
}

fn wq_limits(subjects: &[&str], retention: v1::Retention) -> v1::StreamLimits {
    v1::StreamLimits {
        retention: retention as i32,
        ..limits(subjects)
    }
}

/// Work-queue retention as nats-server 2.15.1: the consumer rules (10099, 10100,
/// 10084, 10098, 10101) and a message removed once acked, with the stream's counts
/// reflecting it at once.
pub async fn workqueue_rules_and_removal_on_ack(backend: &dyn Backend) {
    let (_cp, mut c) = start(backend, clock()).await;
    create(&mut c, "WQ", wq_limits(&["wq.>"], v1::Retention::WorkQueue)).await;
    create_consumer(&mut c, consumer_config("WQ", "A")).await;
    assert_eq!(
        create_consumer_err(&mut c, consumer_config("WQ", "B")).await,
        Some(10099)
    );
    assert_eq!(
        create_consumer_err(&mut c, filtered("WQ", "F1", &["wq.a"])).await,
        Some(10100)
    );
    let none = v1::ConsumerConfig {
        ack_policy: v1::AckPolicy::AckNone as i32,
        ..filtered("WQ", "N", &["wq.n"])
    };
    assert_eq!(create_consumer_err(&mut c, none).await, Some(10084));
    let all = v1::ConsumerConfig {
        ack_policy: v1::AckPolicy::AckAll as i32,
        ..filtered("WQ", "AA", &["wq.x"])
    };
    assert_eq!(create_consumer_err(&mut c, all).await, Some(10098));
    let last = v1::ConsumerConfig {
        deliver_policy: v1::DeliverPolicy::DeliverNew as i32,
        ..filtered("WQ", "NEW", &["wq.y"])
    };
    assert_eq!(create_consumer_err(&mut c, last).await, Some(10101));

    create(
        &mut c,
        "WQ2",
        wq_limits(&["wq2.>"], v1::Retention::WorkQueue),
    )
    .await;
    create_consumer(&mut c, filtered("WQ2", "X", &["wq2.a"])).await;
    assert_eq!(
        create_consumer_err(&mut c, consumer_config("WQ2", "Y")).await,
        Some(10099)
    );
    assert_eq!(
        create_consumer_err(&mut c, filtered("WQ2", "Z", &["wq2.b", "wq2.a"])).await,
        Some(10100)
    );
    create_consumer(&mut c, filtered("WQ2", "W", &["wq2.b"])).await;

    commit_one(
        &mut c,
        "wq1",
        "WQ",
        vec![rec("wq.a"), rec("wq.a"), rec("wq.a")],
    )
    .await;
    assert_eq!(state(&mut c, "WQ").await.messages, 3);
    assert_eq!(claim(&mut c, "WQ", "A", 2).await, [1, 2]);
    ack(&mut c, "WQ", "A", v1::AckKind::Ack, vec![1]).await;
    let st = state(&mut c, "WQ").await;
    assert_eq!((st.messages, st.first_seq), (2, 2));
    // Out of order: acking 3's neighbour 2 later still removes exactly what is acked.
    assert_eq!(claim(&mut c, "WQ", "A", 5).await, [3]);
    ack(&mut c, "WQ", "A", v1::AckKind::Ack, vec![3]).await;
    let st = state(&mut c, "WQ").await;
    assert_eq!((st.messages, st.first_seq, st.last_seq), (1, 2, 3));
    ack(&mut c, "WQ", "A", v1::AckKind::Ack, vec![2]).await;
    let st = state(&mut c, "WQ").await;
    assert_eq!((st.messages, st.first_seq), (0, 4));
    let cs = consumer_state(&mut c, "WQ", "A").await;
    assert_eq!((cs.num_pending, cs.num_ack_pending), (0, 0));
    assert_eq!(cs.ack_floor.unwrap().stream_seq, 3);
}

/// Interest retention as nats-server 2.15.1: with no consumer a publish is acked but
/// not kept; a message goes once every interested consumer acked it; deleting the
/// last consumers drops what only they held; ack none counts delivery as ack.
pub async fn interest_removes_once_every_consumer_acked(backend: &dyn Backend) {
    let (_cp, mut c) = start(backend, clock()).await;
    create(&mut c, "IN", wq_limits(&["in.>"], v1::Retention::Interest)).await;
    assert_eq!(
        commit_one(&mut c, "in1", "IN", vec![rec("in.a")]).await,
        ["1"]
    );
    let st = state(&mut c, "IN").await;
    assert_eq!((st.messages, st.first_seq, st.last_seq), (0, 2, 1));
    create_consumer(&mut c, consumer_config("IN", "C1")).await;
    create_consumer(&mut c, filtered("IN", "C2", &["in.a"])).await;
    commit_one(&mut c, "in2", "IN", vec![rec("in.a"), rec("in.b")]).await;
    assert_eq!(state(&mut c, "IN").await.messages, 2);
    assert_eq!(claim(&mut c, "IN", "C1", 10).await, [2, 3]);
    ack(&mut c, "IN", "C1", v1::AckKind::Ack, vec![2, 3]).await;
    let st = state(&mut c, "IN").await;
    assert_eq!((st.messages, st.first_seq), (1, 2));
    assert_eq!(claim(&mut c, "IN", "C2", 10).await, [2]);
    ack(&mut c, "IN", "C2", v1::AckKind::Ack, vec![2]).await;
    let st = state(&mut c, "IN").await;
    assert_eq!((st.messages, st.first_seq), (0, 4));
    commit_one(&mut c, "in3", "IN", vec![rec("in.a")]).await;
    assert_eq!(state(&mut c, "IN").await.messages, 1);
    for name in ["C2", "C1"] {
        let del = c
            .raw_consumers()
            .delete_consumer(v1::DeleteConsumerRequest {
                stream: "IN".into(),
                name: name.into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert!(del.error.is_none());
    }
    assert_eq!(state(&mut c, "IN").await.messages, 0);
    let none = v1::ConsumerConfig {
        ack_policy: v1::AckPolicy::AckNone as i32,
        ..consumer_config("IN", "N")
    };
    create_consumer(&mut c, none).await;
    commit_one(&mut c, "in4", "IN", vec![rec("in.c")]).await;
    assert_eq!(state(&mut c, "IN").await.messages, 1);
    assert_eq!(claim(&mut c, "IN", "N", 10).await, [5]);
    assert_eq!(state(&mut c, "IN").await.messages, 0);
}

/// `+TERM` on work-queue and interest streams as nats-server 2.15.1 (checked with
/// nats.py: publish 3, fetch 3, term 1, ack 2 → 1 message left, first_seq 3): a
/// terminated message counts as done and is removed like an acked one.
pub async fn term_removes_on_workqueue_and_interest(backend: &dyn Backend) {
    let (_cp, mut c) = start(backend, clock()).await;
    for (name, retention) in [
        ("TWQ", v1::Retention::WorkQueue),
        ("TIN", v1::Retention::Interest),
    ] {
        let subject = format!("{}.x", name.to_lowercase());
        let wildcard = format!("{}.>", name.to_lowercase());
        create(&mut c, name, wq_limits(&[wildcard.as_str()], retention)).await;
        create_consumer(&mut c, consumer_config(name, "D")).await;
        commit_one(
            &mut c,
            name,
            name,
            vec![rec(&subject), rec(&subject), rec(&subject)],
        )
        .await;
        assert_eq!(claim(&mut c, name, "D", 3).await, [1, 2, 3]);
        ack(&mut c, name, "D", v1::AckKind::Term, vec![1]).await;
        ack(&mut c, name, "D", v1::AckKind::Ack, vec![2]).await;
        let st = state(&mut c, name).await;
        assert_eq!((st.messages, st.first_seq), (1, 3), "{name}");
        let cs = consumer_state(&mut c, name, "D").await;
        assert_eq!(cs.num_ack_pending, 1, "{name}");
        assert_eq!(cs.ack_floor.unwrap().stream_seq, 2, "{name}");
    }
}

/// Claimed deliveries given back unsent (RELEASE) count nothing, as nats-server
/// never counts a message a pull request could not take: the newest first
/// deliveries become new again (cursors back), others stay pending with their
/// delivery count lowered back, and max_deliver is not reached by them.
pub async fn release_counts_nothing(backend: &dyn Backend) {
    let (_cp, mut c) = start(backend, clock()).await;
    create(&mut c, "REL", limits(&["rel.>"])).await;
    let cfg = v1::ConsumerConfig {
        max_deliver: 1,
        ..consumer_config("REL", "D")
    };
    create_consumer(&mut c, cfg).await;
    commit_one(
        &mut c,
        "rel1",
        "REL",
        vec![rec("rel.a"), rec("rel.a"), rec("rel.a")],
    )
    .await;
    assert_eq!(claim(&mut c, "REL", "D", 3).await, [1, 2, 3]);
    ack(&mut c, "REL", "D", v1::AckKind::Release, vec![2, 3]).await;
    let cs = consumer_state(&mut c, "REL", "D").await;
    let d = cs.delivered.unwrap();
    assert_eq!((d.stream_seq, d.consumer_seq), (1, 1));
    assert_eq!(
        (cs.num_ack_pending, cs.num_redelivered, cs.num_pending),
        (1, 0, 2)
    );
    // 1 is released below the top: pending, due now, still a first delivery, so
    // max_deliver 1 lets it out once more.
    assert_eq!(claim(&mut c, "REL", "D", 1).await, [2]);
    ack(&mut c, "REL", "D", v1::AckKind::Release, vec![1]).await;
    let resp = c
        .raw_consumers()
        .claim(v1::ClaimRequest {
            stream: "REL".into(),
            consumer: "D".into(),
            agent_id: "agent-1".into(),
            batch: 5,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(resp.error.is_none(), "{:?}", resp.error);
    assert!(resp.max_delivered.is_empty());
    let got: Vec<(u64, u64, u64)> = resp
        .deliveries
        .iter()
        .map(|d| (d.stream_seq, d.consumer_seq, d.delivery_count))
        .collect();
    assert_eq!(got, [(1, 3, 1), (3, 4, 1)]);
    ack(&mut c, "REL", "D", v1::AckKind::Ack, vec![1, 2, 3]).await;
    let cs = consumer_state(&mut c, "REL", "D").await;
    let d = cs.delivered.unwrap();
    assert_eq!((d.stream_seq, d.consumer_seq), (3, 4));
    assert_eq!(
        (cs.num_ack_pending, cs.num_redelivered, cs.num_pending),
        (0, 0, 0)
    );
}

/// CreateConsumer on an existing durable: editable fields update (state kept),
/// non-editable ones fail with 10012 as nats-server; action CREATE refuses a changed
/// config (10148), action UPDATE a missing consumer (10149).
pub async fn consumer_update_rules(backend: &dyn Backend) {
    let (_cp, mut c) = start(backend, clock()).await;
    create(&mut c, "U", limits(&["u.>"])).await;
    commit_one(&mut c, "ub1", "U", vec![rec("u.a"), rec("u.b")]).await;
    let base = filtered("U", "D", &["u.>"]);
    create_consumer(&mut c, base.clone()).await;
    assert_eq!(claim(&mut c, "U", "D", 1).await, [1]);
    let edited = v1::ConsumerConfig {
        max_deliver: 5,
        ack_wait_nanos: 10_000_000_000,
        filter_subjects: vec!["u.b".into()],
        config_json: b"{\"max_deliver\":5}".to_vec(),
        ..base.clone()
    };
    assert_eq!(
        create_consumer_action(&mut c, edited.clone(), "create").await,
        Some(10148)
    );
    assert_eq!(create_consumer_err(&mut c, edited.clone()).await, None);
    let st = consumer_state(&mut c, "U", "D").await;
    assert_eq!((st.num_ack_pending, st.num_pending), (1, 1));
    let policy = v1::ConsumerConfig {
        deliver_policy: v1::DeliverPolicy::DeliverNew as i32,
        ..edited.clone()
    };
    assert_eq!(create_consumer_err(&mut c, policy).await, Some(10012));
    let ack_all = v1::ConsumerConfig {
        ack_policy: v1::AckPolicy::AckAll as i32,
        ..edited.clone()
    };
    assert_eq!(create_consumer_err(&mut c, ack_all).await, Some(10012));
    assert_eq!(
        create_consumer_action(&mut c, filtered("U", "NOPE", &[]), "update").await,
        Some(10149)
    );
    let info = c
        .raw_consumers()
        .consumer_info(v1::ConsumerInfoRequest {
            stream: "U".into(),
            name: "D".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(info.config.unwrap().max_deliver, 5);
}

/// An agent claims and dies: after ack_wait the next claim (another agent) gets the
/// messages again; ClaimResponse tells when to retry; max_deliver drops are reported
/// once; counts (num_redelivered distinct, ack pending, floor) are exact; the state
/// survives a control-plane restart.
pub async fn redelivery_after_dead_agent_and_restart(backend: &dyn Backend) {
    let clock = clock();
    {
        let (_cp, mut c) = start(backend, clock.clone()).await;
        create(&mut c, "R", limits(&["r.>"])).await;
        commit_one(&mut c, "rb1", "R", vec![rec("r.a"), rec("r.b"), rec("r.c")]).await;
        let cfg = v1::ConsumerConfig {
            max_deliver: 2,
            ..consumer_config("R", "D")
        };
        create_consumer(&mut c, cfg).await;
        assert_eq!(claim(&mut c, "R", "D", 3).await, [1, 2, 3]);
        let resp = c
            .raw_consumers()
            .claim(v1::ClaimRequest {
                stream: "R".into(),
                consumer: "D".into(),
                agent_id: "agent-2".into(),
                batch: 3,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert!(resp.deliveries.is_empty());
        let now = clock.now_unix_nanos();
        assert_eq!(resp.next_deadline_unix_nanos, now + 30_000_000_000);
        ack(&mut c, "R", "D", v1::AckKind::Ack, vec![1]).await;
    }
    // Restart: state as it was.
    let (_cp, mut c) = start(backend, clock.clone()).await;
    let st = consumer_state(&mut c, "R", "D").await;
    assert_eq!(
        (st.num_ack_pending, st.ack_floor.unwrap().stream_seq),
        (2, 1)
    );
    clock.advance(Duration::from_secs(31));
    assert_eq!(claim(&mut c, "R", "D", 3).await, [2, 3]);
    let st = consumer_state(&mut c, "R", "D").await;
    assert_eq!((st.num_redelivered, st.num_ack_pending), (2, 2));
    ack(&mut c, "R", "D", v1::AckKind::Ack, vec![3]).await;
    assert_eq!(consumer_state(&mut c, "R", "D").await.num_redelivered, 1);
    clock.advance(Duration::from_secs(31));
    let resp = c
        .raw_consumers()
        .claim(v1::ClaimRequest {
            stream: "R".into(),
            consumer: "D".into(),
            agent_id: "agent-2".into(),
            batch: 3,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(resp.deliveries.is_empty());
    assert_eq!(
        resp.max_delivered
            .iter()
            .map(|d| (d.stream_seq, d.delivery_count))
            .collect::<Vec<_>>(),
        [(2, 2)]
    );
    let st = consumer_state(&mut c, "R", "D").await;
    assert_eq!((st.num_ack_pending, st.num_redelivered), (0, 0));
    assert_eq!(st.ack_floor.unwrap().stream_seq, 3);
}

/// A claim carrying plain acks (`acked_stream_seqs`) applies them before claiming, in
/// the same durable write: room freed under max_ack_pending is used by that claim, the
/// counts are exact, and both survive a control-plane restart.
pub async fn claim_carries_acks(backend: &dyn Backend) {
    let clock = clock();
    {
        let (_cp, mut c) = start(backend, clock.clone()).await;
        create(&mut c, "CA", limits(&["ca.>"])).await;
        commit_one(&mut c, "cab1", "CA", (0..6).map(|_| rec("ca.x")).collect()).await;
        let cfg = v1::ConsumerConfig {
            max_ack_pending: 2,
            ..consumer_config("CA", "D")
        };
        create_consumer(&mut c, cfg).await;
        assert_eq!(claim(&mut c, "CA", "D", 2).await, [1, 2]);
        // At max_ack_pending: nothing without acks.
        assert!(claim(&mut c, "CA", "D", 2).await.is_empty());
        let resp = c
            .raw_consumers()
            .claim(v1::ClaimRequest {
                stream: "CA".into(),
                consumer: "D".into(),
                agent_id: "agent-1".into(),
                batch: 2,
                acked_stream_seqs: vec![1, 2],
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert!(resp.error.is_none(), "{:?}", resp.error);
        let got: Vec<u64> = resp.deliveries.iter().map(|d| d.stream_seq).collect();
        assert_eq!(got, [3, 4]);
        assert_eq!(resp.num_pending, 2);
    }
    // Restart: the acks and the claim are both there.
    let (_cp, mut c) = start(backend, clock.clone()).await;
    let st = consumer_state(&mut c, "CA", "D").await;
    assert_eq!(
        (
            st.num_ack_pending,
            st.ack_floor.unwrap().stream_seq,
            st.delivered.unwrap().stream_seq,
            st.num_pending
        ),
        (2, 2, 4, 2)
    );
}
