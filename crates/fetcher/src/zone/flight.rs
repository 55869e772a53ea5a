//! Single-flight: concurrent requests for one key share one load.
//!
//! The first caller of a key runs its load; callers arriving while it runs wait for
//! the same result instead of issuing their own request. A failed load is not shared
//! as a failure: the next waiter runs its own load (the failure may have been
//! transient), so an error never sticks.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::OnceCell;

/// Coalesces concurrent loads per key.
#[derive(Debug)]
pub(crate) struct SingleFlight<K, V> {
    inflight: Mutex<HashMap<K, Arc<OnceCell<V>>>>,
}

impl<K, V> Default for SingleFlight<K, V> {
    fn default() -> Self {
        Self {
            inflight: Mutex::new(HashMap::new()),
        }
    }
}

impl<K: Hash + Eq + Clone, V: Clone> SingleFlight<K, V> {
    /// Runs `load` for `key` unless a load for it is already in flight, in which case
    /// waits for that one. Returns the value and whether this call joined another's
    /// load (a coalesced wait).
    pub(crate) async fn run<E, F, Fut>(&self, key: K, load: F) -> (Result<V, E>, bool)
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, E>>,
    {
        let (cell, joined) = {
            let mut inflight = self.inflight.lock();
            match inflight.get(&key) {
                Some(cell) => (cell.clone(), true),
                None => {
                    let cell = Arc::new(OnceCell::new());
                    inflight.insert(key.clone(), cell.clone());
                    (cell, false)
                }
            }
        };
        let result = cell.get_or_try_init(load).await.cloned();
        let mut inflight = self.inflight.lock();
        if inflight.get(&key).is_some_and(|c| Arc::ptr_eq(c, &cell)) {
            inflight.remove(&key);
        }
        (result, joined)
    }

    /// Loads in flight (for tests).
    #[cfg(test)]
    pub(crate) fn in_flight(&self) -> usize {
        self.inflight.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test]
    async fn concurrent_callers_share_one_load() {
        let flight: Arc<SingleFlight<&'static str, u32>> = Arc::new(SingleFlight::default());
        let loads = Arc::new(AtomicUsize::new(0));
        let joined = Arc::new(AtomicUsize::new(0));
        let (release, gate) = tokio::sync::watch::channel(false);
        let (entered_tx, mut entered_rx) = tokio::sync::mpsc::unbounded_channel();
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let (flight, loads, joined, entered) = (
                flight.clone(),
                loads.clone(),
                joined.clone(),
                entered_tx.clone(),
            );
            let mut gate = gate.clone();
            tasks.push(tokio::spawn(async move {
                let (result, was_joined) = flight
                    .run("k", || async move {
                        loads.fetch_add(1, Ordering::SeqCst);
                        let _ = entered.send(());
                        let _ = gate.wait_for(|open| *open).await;
                        Ok::<u32, String>(7)
                    })
                    .await;
                if was_joined {
                    joined.fetch_add(1, Ordering::SeqCst);
                }
                result
            }));
        }
        // The leader is inside its load; wait until the seven others have joined.
        entered_rx.recv().await.expect("a load started");
        while flight.inflight.lock().get("k").map(Arc::strong_count) != Some(9) {
            tokio::task::yield_now().await;
        }
        let _ = release.send(true);
        for task in tasks {
            assert_eq!(task.await.expect("join"), Ok(7));
        }
        assert_eq!(
            loads.load(Ordering::SeqCst),
            1,
            "one load for eight callers"
        );
        assert_eq!(joined.load(Ordering::SeqCst), 7, "seven coalesced waits");
        assert_eq!(flight.in_flight(), 0, "nothing left in flight");
    }

    #[tokio::test]
    async fn a_failure_is_not_shared_or_kept() {
        let flight: SingleFlight<&'static str, u32> = SingleFlight::default();
        let (first, _) = flight
            .run("k", || async { Err::<u32, &str>("bucket down") })
            .await;
        assert_eq!(first, Err("bucket down"));
        let (second, joined) = flight.run("k", || async { Ok::<u32, &str>(3) }).await;
        assert_eq!(second, Ok(3), "the next call loads again");
        assert!(!joined);
        assert_eq!(flight.in_flight(), 0);
    }
}
