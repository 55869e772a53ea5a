//! The shared control-plane suite against the memory and embedded (redb) stores.

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

macro_rules! suite_for {
    ($backend:ident: $($test:ident),* $(,)?) => {
        mod $backend {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    let b = super::$backend();
                    super::suite::bodies::$test(&b).await;
                }
            )*
        }
    };
}

suite_for!(memory:
    concurrent_agents_keep_streams_contiguous,
    dedupe_and_expected_headers_match_nats_server,
    retry_with_same_batch_id_never_double_appends,
    restart_keeps_everything_committed,
    auth_and_group_isolation,
    commit_request_size_is_independent_of_payload,
    limits_discard_old_and_new,
    streams_purge_delete_and_swap,
    agents_and_job_leases,
    a_deposed_control_plane_cannot_commit,
    served_over_tcp,
    consumer_claims_acks_and_redelivery,
);

suite_for!(embedded:
    concurrent_agents_keep_streams_contiguous,
    dedupe_and_expected_headers_match_nats_server,
    retry_with_same_batch_id_never_double_appends,
    restart_keeps_everything_committed,
    auth_and_group_isolation,
    commit_request_size_is_independent_of_payload,
    limits_discard_old_and_new,
    streams_purge_delete_and_swap,
    agents_and_job_leases,
    a_deposed_control_plane_cannot_commit,
    served_over_tcp,
    consumer_claims_acks_and_redelivery,
);
