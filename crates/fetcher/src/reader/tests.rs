//! The tiers' coalescing and caching, and the errors' JetStream codes.

use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;

#[tokio::test]
async fn concurrent_misses_share_one_load() {
    let tier: Arc<Tier<String, Arc<u32>>> = Arc::new(Tier::new(CHUNKS, 1024));
    let metrics = ReaderMetrics::default();
    let loads = Arc::new(AtomicUsize::new(0));
    let (release, gate) = tokio::sync::watch::channel(false);
    let (started_tx, mut started_rx) = tokio::sync::mpsc::unbounded_channel();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (tier, metrics, loads, started) = (
            tier.clone(),
            metrics.clone(),
            loads.clone(),
            started_tx.clone(),
        );
        let mut gate = gate.clone();
        tasks.push(tokio::spawn(async move {
            let _ = started.send(());
            tier.get_or_load("k".to_owned(), &metrics, || async move {
                loads.fetch_add(1, Ordering::SeqCst);
                // Hold the load open until every caller is waiting on it.
                let _ = gate.wait_for(|open| *open).await;
                Ok((Arc::new(7u32), 1))
            })
            .await
        }));
    }
    for _ in 0..8 {
        started_rx.recv().await.expect("task started");
    }
    // Let the callers reach the cell before the load completes.
    while metrics.misses(CHUNKS) < 8 {
        tokio::task::yield_now().await;
    }
    let _ = release.send(true);
    for task in tasks {
        assert_eq!(*task.await.expect("join").expect("loaded"), 7);
    }
    assert_eq!(loads.load(Ordering::SeqCst), 1, "one load for eight misses");
    // Now cached.
    let again = tier
        .get_or_load("k".to_owned(), &metrics, || async {
            Err::<(Arc<u32>, u64), _>(ReadError::NoMessage)
        })
        .await
        .expect("cached");
    assert_eq!(*again, 7);
    assert_eq!(metrics.hits(CHUNKS), 1);
    assert!(tier.loading.lock().is_empty());
}

#[tokio::test]
async fn failed_loads_are_not_cached() {
    let tier: Tier<String, Arc<u32>> = Tier::new(FOOTERS, 16);
    let metrics = ReaderMetrics::default();
    let err = tier
        .get_or_load("k".to_owned(), &metrics, || async {
            Err::<(Arc<u32>, u64), _>(ReadError::ControlPlane("down".into()))
        })
        .await;
    assert!(matches!(err, Err(ReadError::ControlPlane(_))));
    let ok = tier
        .get_or_load("k".to_owned(), &metrics, || async { Ok((Arc::new(1), 1)) })
        .await
        .expect("retried");
    assert_eq!(*ok, 1);
    assert!(tier.loading.lock().is_empty());
}

#[test]
fn errors_map_to_nats_server_codes() {
    assert_eq!(ReadError::NoMessage.api_error().err_code, 10037);
    assert_eq!(
        ReadError::StreamNotFound("S".into()).api_error().err_code,
        10059
    );
    assert_eq!(ReadError::ControlPlane("down".into()).api_error().code, 500);
}

/// Small chunks are fetched with their aligned span, cut at the end of the chunks;
/// large ones, and ones crossing a span boundary, alone.
#[test]
fn small_chunks_are_fetched_with_their_span() {
    use super::objects::span_of;
    const SPAN: u64 = 256 * 1024;
    // A 1 KiB chunk in the second span of a 4 MiB object.
    assert_eq!(span_of(&(SPAN + 10..SPAN + 1034), 4 << 20), SPAN..2 * SPAN);
    // The last span stops where the chunks end (the footer follows).
    assert_eq!(
        span_of(&(SPAN + 10..SPAN + 1034), SPAN + 5000),
        SPAN..SPAN + 5000
    );
    // Crossing a boundary, or large: alone.
    assert_eq!(
        span_of(&(SPAN - 10..SPAN + 10), 4 << 20),
        SPAN - 10..SPAN + 10
    );
    assert_eq!(span_of(&(0..SPAN / 2), 4 << 20), 0..SPAN / 2);
}
