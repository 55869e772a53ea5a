//! Consumer-state and commit-notification cases, written once and run against every
//! store (`consumers_memory_embedded.rs`, `consumers_etcd.rs`).
#![allow(dead_code, clippy::unwrap_used)]

use std::time::Duration;

use infinistream_control_plane::{ControlPlaneClient, StreamWatch};
use infinistream_proto::v1::{self, StreamEventKind};
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
        .consumers
        .create_consumer(v1::CreateConsumerRequest { config: Some(cfg) })
        .await
        .unwrap()
        .into_inner();
    assert!(info.error.is_none(), "{:?}", info.error);
}

pub async fn claim(c: &mut ControlPlaneClient, stream: &str, name: &str, batch: u32) -> Vec<u64> {
    let resp = c
        .consumers
        .claim(v1::ClaimRequest {
            stream: stream.into(),
            consumer: name.into(),
            agent_id: "agent-1".into(),
            batch,
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
        .consumers
        .acknowledge(v1::AcknowledgeRequest {
            stream: stream.into(),
            consumer: name.into(),
            kind: kind as i32,
            stream_seqs: seqs,
            nak_delay_nanos: 0,
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
        .streams
        .delete_stream(v1::DeleteStreamRequest { name: "W2".into() })
        .await
        .unwrap()
        .into_inner();
    assert!(deleted.error.is_none());
    assert_eq!(next(&mut all).await, "deleted W2");

    // Consumer events: a nak makes a message claimable; deletion stops serving.
    create_consumer(&mut c, consumer_config("W1", "D")).await;
    assert_eq!(claim(&mut c, "W1", "D", 10).await, [1, 2, 3, 4]);
    ack(&mut c, "W1", "D", v1::AckKind::Nak, vec![2]).await;
    assert_eq!(next(&mut all).await, "consumer W1/D");
    let gone = c
        .consumers
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
        .streams
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
