//! Consumer state and commit notifications against the memory and embedded (redb)
//! stores (cases in `consumer_cases`).

mod consumer_cases;
mod suite;

use std::sync::Arc;

use infinistream_control_plane::store::MetaStore;
use infinistream_control_plane::store::embedded::EmbeddedStore;
use infinistream_control_plane::store::memory::MemoryStore;

use suite::Backend;

/// The memory store; "reopening" hands back the same map, as a restarted control
/// plane would find it in a store that outlives it.
struct Memory(Arc<MemoryStore>);

#[async_trait::async_trait]
impl Backend for Memory {
    fn name(&self) -> &'static str {
        "memory"
    }
    async fn open(&self) -> Arc<dyn MetaStore> {
        self.0.clone()
    }
}

/// A redb file in a temp dir, reopened from disk on every `open`.
struct Embedded(tempfile::TempDir);

#[async_trait::async_trait]
impl Backend for Embedded {
    fn name(&self) -> &'static str {
        "embedded"
    }
    async fn open(&self) -> Arc<dyn MetaStore> {
        match EmbeddedStore::open(self.0.path()).await {
            Ok(s) => Arc::new(s),
            Err(e) => panic!("open embedded store: {e}"),
        }
    }
}

fn memory() -> Memory {
    Memory(Arc::new(MemoryStore::new()))
}

fn embedded() -> Embedded {
    match tempfile::tempdir() {
        Ok(d) => Embedded(d),
        Err(e) => panic!("tempdir: {e}"),
    }
}

macro_rules! cases_for {
    ($backend:ident: $($test:ident),* $(,)?) => {
        mod $backend {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    let b = super::$backend();
                    super::consumer_cases::$test(&b).await;
                }
            )*
        }
    };
}

cases_for!(memory:
    watch_streams_reports_changes,
    watch_streams_survives_restart,
    last_per_subject_delivers_last_of_each_subject,
    workqueue_rules_and_removal_on_ack,
    interest_removes_once_every_consumer_acked,
    consumer_update_rules,
    redelivery_after_dead_agent_and_restart,
    term_removes_on_workqueue_and_interest,
    release_counts_nothing,
);

cases_for!(embedded:
    watch_streams_reports_changes,
    watch_streams_survives_restart,
    last_per_subject_delivers_last_of_each_subject,
    workqueue_rules_and_removal_on_ack,
    interest_removes_once_every_consumer_acked,
    consumer_update_rules,
    redelivery_after_dead_agent_and_restart,
    term_removes_on_workqueue_and_interest,
    release_counts_nothing,
);
