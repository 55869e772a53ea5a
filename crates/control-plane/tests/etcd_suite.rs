//! The shared control-plane suite (`tests/suite`) against a real etcd: the same
//! sequencing, dedupe, retry, restart, auth and fencing bodies the memory and embedded
//! stores pass.

mod suite;

use std::sync::Arc;

use infinistream_control_plane::store::MetaStore;
use infinistream_control_plane::store::etcd::EtcdStore;
use infinistream_testkit::etcd::{EtcdServer, SharedEtcd};

use suite::Backend;

/// A key prefix of its own on the process's shared etcd; every `open` connects anew,
/// as a restarted control plane would.
struct Etcd(SharedEtcd);

#[async_trait::async_trait]
impl Backend for Etcd {
    fn name(&self) -> &'static str {
        "etcd"
    }
    async fn open(&self) -> Arc<dyn MetaStore> {
        match EtcdStore::connect(&[self.0.endpoint()], self.0.prefix()).await {
            Ok(store) => Arc::new(store),
            Err(e) => panic!("connect to etcd: {e}"),
        }
    }
}

fn etcd() -> Etcd {
    match EtcdServer::shared() {
        Ok(shared) => Etcd(shared),
        Err(e) => panic!("start etcd: {e}"),
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

suite_for!(etcd:
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
    a_late_release_leaves_a_newer_claim_alone,
    account_limits_refuse_at_commit,
    a_subject_the_stream_dropped_is_refused_at_commit,
    accounts_own_streams_of_one_name,
);
