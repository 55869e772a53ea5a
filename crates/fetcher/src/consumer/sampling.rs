//! `sample_freq`: ack metrics on `$JS.EVENT.METRIC.CONSUMER.ACK.<stream>.<consumer>`
//! (nats-server's `io.nats.jetstream.metric.v1.consumer_ack`), for that share of a
//! consumer's `+ACK`s (not naks, terms or progress, and none for ack policy none).
//!
//! The runtime serving a sampled consumer notes when it handed each message to the
//! broker; an ack this agent receives for one of them is sampled (every `100 / freq`th
//! ack, counted, where nats-server draws at random: the same share) and its metric
//! carries the time from that delivery to the ack. So each sampled ack is published
//! once, by the agent that received it. An ack for a delivery this agent did not make
//! (its client is connected to another agent than the one that served the pull) has
//! no delivery time here and gets no metric.

use std::collections::HashMap;
use std::time::Instant;

use infinistream_jetstream::advisory::{event, publish};
use infinistream_protocol::jsapi::advisory::{self, ConsumerAckMetric, types};
use infinistream_protocol::jsapi::consumer::{AckPolicy, ConsumerConfig};
use parking_lot::Mutex;

use super::Engine;

/// Most deliveries remembered at once: past it (acks that never come), the oldest
/// notes are forgotten and their acks go unsampled.
const MAX_NOTED: usize = 65_536;

/// A sampled consumer's delivery times and sampling counter.
#[derive(Debug)]
pub(crate) struct Sampler {
    percent: u64,
    state: Mutex<Noted>,
}

#[derive(Debug, Default)]
struct Noted {
    /// Stream sequence → when it was handed to the broker.
    delivered: HashMap<u64, Instant>,
    /// Percent points accumulated; an ack is sampled each time it passes 100.
    credit: u64,
}

impl Sampler {
    /// The sampler `config` asks for; `None` without sampling.
    pub(crate) fn of(config: &ConsumerConfig) -> Option<Sampler> {
        let percent = advisory::sample_percent(&config.sample_frequency).min(100);
        (percent > 0 && config.ack_policy != AckPolicy::None).then(|| Sampler {
            percent,
            state: Mutex::new(Noted::default()),
        })
    }

    /// `seqs` were handed to the broker now.
    pub(super) fn delivered(&self, seqs: impl Iterator<Item = u64>) {
        let now = Instant::now();
        let mut st = self.state.lock();
        if st.delivered.len() >= MAX_NOTED {
            st.delivered.clear();
        }
        for seq in seqs {
            st.delivered.insert(seq, now);
        }
    }

    /// An ack of `stream_seq` arrived: how long after its delivery, when this ack is
    /// one to sample.
    fn acked(&self, stream_seq: u64) -> Option<std::time::Duration> {
        let mut st = self.state.lock();
        let at = st.delivered.remove(&stream_seq)?;
        st.credit += self.percent;
        if st.credit < 100 {
            return None;
        }
        st.credit -= 100;
        Some(at.elapsed())
    }
}

/// `+ACK`s (or `+NXT`s) of `stream`/`consumer`'s deliveries arrived, each as (stream
/// seq, consumer seq, delivery count): the metrics of those `sampler` samples.
pub(super) fn on_acks(
    engine: &Engine,
    sampler: &Sampler,
    stream: &str,
    consumer: &str,
    acks: Vec<(u64, u64, u64)>,
) {
    for (stream_seq, consumer_seq, deliveries) in acks {
        let Some(delay) = sampler.acked(stream_seq) else {
            continue;
        };
        publish(
            &engine.broker,
            &advisory::consumer_ack_metric_subject(stream, consumer),
            &ConsumerAckMetric {
                event: event(types::CONSUMER_ACK_METRIC),
                stream: stream.to_owned(),
                consumer: consumer.to_owned(),
                consumer_seq,
                stream_seq,
                delay: i64::try_from(delay.as_nanos()).unwrap_or(i64::MAX),
                deliveries,
                domain: String::new(),
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_the_configured_share_of_delivered_acks() {
        let config = |freq: &str, ack_policy| ConsumerConfig {
            sample_frequency: freq.into(),
            ack_policy,
            ..ConsumerConfig::default()
        };
        assert!(Sampler::of(&config("", AckPolicy::Explicit)).is_none());
        assert!(Sampler::of(&config("0%", AckPolicy::Explicit)).is_none());
        assert!(Sampler::of(&config("100%", AckPolicy::None)).is_none());
        let s = Sampler::of(&config("50%", AckPolicy::Explicit)).expect("sampled");
        s.delivered(1..=4);
        let sampled: Vec<bool> = (1..=4).map(|seq| s.acked(seq).is_some()).collect();
        assert_eq!(sampled, [false, true, false, true]);
        // An ack of nothing delivered here: not sampled, and no credit spent.
        assert!(s.acked(9).is_none());
        let all = Sampler::of(&config("100", AckPolicy::All)).expect("sampled");
        all.delivered([7].into_iter());
        assert!(all.acked(7).is_some());
        assert!(all.acked(7).is_none(), "one metric per delivery");
    }
}
