//! The shared control-plane suite against the memory and embedded (redb) stores.

mod local_backends;
mod suite;

use local_backends::{embedded, memory};

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
    a_late_release_leaves_a_newer_claim_alone,
    consumer_claims_acks_and_redelivery,
    account_limits_refuse_at_commit,
    a_subject_the_stream_dropped_is_refused_at_commit,
    accounts_own_streams_of_one_name,
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
    a_late_release_leaves_a_newer_claim_alone,
    consumer_claims_acks_and_redelivery,
    account_limits_refuse_at_commit,
    a_subject_the_stream_dropped_is_refused_at_commit,
    accounts_own_streams_of_one_name,
);
