//! Delivery pacing side by side with nats-server 2.15.1: `replay_policy: original`
//! (push and pull) reproduces the stored gap between messages, and `rate_limit_bps`
//! spreads a push consumer's deliveries once its burst (the stream's `max_msg_size`) is
//! spent. The checks are events and generous lower bounds only: the order, and that a
//! gap is there (at least half the stored one, or a second for the rate limit). And
//! `sample_freq`'s ack metrics, side by side.

#[path = "support/in_process.rs"]
mod in_process;
#[path = "support/py_client.rs"]
mod py_client;
#[path = "support/side_by_side.rs"]
mod side_by_side;
use side_by_side::Both;
#[path = "scenarios/pacing.rs"]
mod pacing;

/// Replay original, push and pull, on both servers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_original_reproduces_stored_gaps_as_nats_server() {
    let both = Both::start().await;
    let [theirs, ours] = both.clients().await;
    pacing::replay_original(&theirs, "nats-server").await;
    pacing::replay_original(&ours, "InfiniStream").await;
}

/// Rate limit on both servers; the same refusal for a pull consumer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_spreads_push_deliveries_as_nats_server() {
    let both = Both::start().await;
    let [theirs, ours] = both.clients().await;
    let expected = pacing::rate_limited(&theirs, "nats-server").await;
    let got = pacing::rate_limited(&ours, "InfiniStream").await;
    assert_eq!(got, expected);
    assert!(
        expected.is_object(),
        "nats-server accepted a rate-limited pull consumer"
    );
}

/// Ack metrics of `sample_freq`, as nats-server publishes them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sample_freq_ack_metrics_as_nats_server() {
    let both = Both::start().await;
    let [theirs, ours] = both.clients().await;
    let expected = pacing::sampled_acks(&theirs).await;
    let got = pacing::sampled_acks(&ours).await;
    assert_eq!(got, expected);
    let seqs: Vec<_> = expected
        .iter()
        .map(|v| (&v["consumer_seq"], &v["stream_seq"], &v["deliveries"]))
        .map(|(c, s, d)| (c.as_u64(), s.as_u64(), d.as_u64()))
        .collect();
    assert_eq!(
        seqs,
        [
            (Some(1), Some(1), Some(1)),
            (Some(2), Some(2), Some(1)),
            (Some(5), Some(3), Some(2))
        ]
    );
}
