//! Consumer state and commit notifications against the memory and embedded (redb)
//! stores (cases in `consumer_cases`).

mod consumer_cases;
mod local_backends;
mod suite;

use local_backends::{embedded, memory};

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
    claim_carries_acks,
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
    claim_carries_acks,
);
