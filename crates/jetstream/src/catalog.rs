//! The agent's view of the group's streams.
//!
//! The control plane is the truth; every agent keeps a copy of the stream configs it
//! needs on hot paths (which subjects to capture for publishing, whether direct get is
//! allowed) so a publish never waits on a metadata round trip. The copy is refreshed
//! right after this agent changes a stream and periodically for changes made through
//! other agents; consumers of the catalog watch its version to reconcile.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use infinistream_broker::{Broker, InternalMsg};

use infinistream_control_plane::ControlPlaneClient;
use infinistream_proto::v1;
use infinistream_protocol::jsapi::stream::StreamConfig;
use parking_lot::RwLock;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::convert;

/// One stream as the catalog knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamEntry {
    pub name: Arc<str>,
    pub config: Arc<StreamConfig>,
}

/// Shared, cheaply cloned catalog of the group's streams.
#[derive(Debug, Clone)]
pub struct StreamCatalog {
    streams: Arc<RwLock<BTreeMap<String, StreamEntry>>>,
    version: Arc<watch::Sender<u64>>,
}

impl Default for StreamCatalog {
    fn default() -> Self {
        Self::new()
    }
}

impl StreamCatalog {
    pub fn new() -> Self {
        let (tx, _rx) = watch::channel(0);
        StreamCatalog {
            streams: Arc::new(RwLock::new(BTreeMap::new())),
            version: Arc::new(tx),
        }
    }

    /// Every stream, by name.
    pub fn snapshot(&self) -> Vec<StreamEntry> {
        self.streams.read().values().cloned().collect()
    }

    /// One stream.
    pub fn get(&self, name: &str) -> Option<StreamEntry> {
        self.streams.read().get(name).cloned()
    }

    /// A receiver that changes whenever the catalog does.
    pub fn watch(&self) -> watch::Receiver<u64> {
        self.version.subscribe()
    }

    fn bump(&self) {
        self.version.send_modify(|v| *v += 1);
    }

    /// Records a stream created or updated through this agent.
    pub fn upsert(&self, config: StreamConfig) {
        let name = config.name.clone();
        let entry = StreamEntry {
            name: Arc::from(name.as_str()),
            config: Arc::new(config),
        };
        let changed = {
            let mut streams = self.streams.write();
            let changed = streams.get(&name) != Some(&entry);
            streams.insert(name, entry);
            changed
        };
        if changed {
            self.bump();
        }
    }

    /// Records a stream deleted through this agent.
    pub fn remove(&self, name: &str) {
        if self.streams.write().remove(name).is_some() {
            self.bump();
        }
    }

    /// Replaces the catalog with the control plane's list.
    pub fn replace(&self, streams: Vec<StreamConfig>) {
        let next: BTreeMap<String, StreamEntry> = streams
            .into_iter()
            .map(|cfg| {
                (
                    cfg.name.clone(),
                    StreamEntry {
                        name: Arc::from(cfg.name.as_str()),
                        config: Arc::new(cfg),
                    },
                )
            })
            .collect();
        let changed = {
            let mut current = self.streams.write();
            let changed = *current != next;
            *current = next;
            changed
        };
        if changed {
            self.bump();
        }
    }

    /// Loads the stream list from the control plane once.
    pub async fn refresh(&self, cp: &ControlPlaneClient) -> Result<(), tonic::Status> {
        let mut streams = cp.streams.clone();
        let list = streams
            .list_streams(v1::ListStreamsRequest::default())
            .await?
            .into_inner();
        let mut configs = Vec::with_capacity(list.streams.len());
        for info in list.streams {
            let Some(config) = info.config.as_ref() else {
                continue;
            };
            match convert::stored_config(config) {
                Ok(cfg) => configs.push(cfg),
                Err(error) => {
                    tracing::warn!(stream = %config.name, %error, "skipping a stream with an unreadable config");
                }
            }
        }
        self.replace(configs);
        Ok(())
    }

    /// Refreshes every `period` until shutdown, logging (not failing) on errors, so a
    /// control-plane outage degrades to a stale catalog rather than a dead agent.
    pub async fn run_refresh(
        self,
        cp: ControlPlaneClient,
        period: Duration,
        shutdown: CancellationToken,
    ) -> Result<(), std::convert::Infallible> {
        let mut failing = false;
        loop {
            match self.refresh(&cp).await {
                Ok(()) if failing => {
                    tracing::info!("stream catalog refresh recovered");
                    failing = false;
                }
                Ok(()) => {}
                Err(status) if !failing => {
                    tracing::warn!(error = %status.message(), "stream catalog refresh failed; serving the last known streams");
                    failing = true;
                }
                Err(_) => {}
            }
            tokio::select! {
                () = shutdown.cancelled() => return Ok(()),
                () = tokio::time::sleep(period) => {}
            }
        }
    }
}

/// Serves every subject of the catalog's streams: one internal broker subscription per
/// (stream, subject), each drained by its own task calling `serve(stream, msg)` (the
/// broker's subscription index does the matching, so a publish costs no lookup here).
/// Subscriptions follow the catalog until `shutdown`: added, removed, and replaced when
/// their task ended. Sealed streams are skipped unless `include_sealed`. `capacity` is
/// each subscription's channel size; a slow `serve` back-pressures only the publishing
/// connections of that subject.
pub async fn serve_stream_subjects<F, Fut>(
    broker: Broker,
    catalog: StreamCatalog,
    capacity: usize,
    include_sealed: bool,
    serve: F,
    shutdown: CancellationToken,
) -> Result<(), std::convert::Infallible>
where
    F: Fn(Arc<str>, InternalMsg) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let mut tasks: HashMap<(Arc<str>, String), JoinHandle<()>> = HashMap::new();
    let mut changes = catalog.watch();
    loop {
        let mut wanted = HashSet::new();
        for entry in catalog.snapshot() {
            if entry.config.sealed && !include_sealed {
                continue;
            }
            for subject in &entry.config.subjects {
                wanted.insert((entry.name.clone(), subject.clone()));
            }
        }
        tasks.retain(|key, task| {
            let keep = wanted.contains(key) && !task.is_finished();
            if !keep {
                task.abort();
                tracing::debug!(stream = %key.0, subject = %key.1, "stream subject released");
            }
            keep
        });
        for key in wanted {
            if tasks.contains_key(&key) {
                continue;
            }
            match broker.subscribe_internal(&key.1, None, capacity) {
                Ok(mut subscription) => {
                    let (stream, serve) = (key.0.clone(), serve.clone());
                    let task = tokio::spawn(async move {
                        while let Some(msg) = subscription.recv().await {
                            serve(stream.clone(), msg).await;
                        }
                    });
                    tracing::debug!(stream = %key.0, subject = %key.1, "stream subject served");
                    tasks.insert(key, task);
                }
                Err(error) => {
                    tracing::warn!(stream = %key.0, subject = %key.1, %error, "cannot subscribe to a stream subject");
                }
            }
        }
        tokio::select! {
            () = shutdown.cancelled() => break,
            changed = changes.changed() => if changed.is_err() { break },
        }
    }
    for (_, task) in tasks.drain() {
        task.abort();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(name: &str, subjects: &[&str]) -> StreamConfig {
        StreamConfig {
            name: name.into(),
            subjects: subjects.iter().map(|s| (*s).to_owned()).collect(),
            ..StreamConfig::default()
        }
    }

    #[test]
    fn changes_bump_the_version_and_repeats_do_not() {
        let catalog = StreamCatalog::new();
        let watch = catalog.watch();
        catalog.upsert(cfg("A", &["a.>"]));
        assert_eq!(*watch.borrow(), 1);
        catalog.upsert(cfg("A", &["a.>"]));
        assert_eq!(*watch.borrow(), 1, "same config is not a change");
        catalog.replace(vec![cfg("A", &["a.>"]), cfg("B", &["b"])]);
        assert_eq!(*watch.borrow(), 2);
        assert_eq!(catalog.snapshot().len(), 2);
        catalog.remove("A");
        assert_eq!(*watch.borrow(), 3);
        assert!(catalog.get("A").is_none());
        catalog.remove("A");
        assert_eq!(*watch.borrow(), 3);
    }
}
