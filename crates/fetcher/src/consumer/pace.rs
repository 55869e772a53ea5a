//! Delivery pacing: `replay_policy: original` and `rate_limit_bps`, as nats-server
//! paces a consumer's deliveries.
//!
//! - **Replay original**: before each message, the loop waits for the gap between its
//!   stored timestamp and the previous delivered message's, counted from when that one
//!   was sent (nats-server waits the same gap; no wait for the first message or a gap
//!   under 1 ms). Tolerance: the claim and read of the next message run inside the
//!   gap, so a gap is reproduced to the timer's resolution (about 1 ms) when they take
//!   less than the gap, and stretched by their excess otherwise (a few milliseconds
//!   warm, one bucket GET cold); gaps never shrink.
//! - **Rate limit** (push consumers; nats-server refuses it on pull consumers): a token
//!   bucket of `rate_limit_bps / 8` bytes per second whose burst is nats-server's: the
//!   stream's `max_msg_size`, else the server's max payload (1 MiB), starting full; a
//!   message that does not fit waits for its tokens.
//!
//! A paced consumer claims one message at a time, so a claimed message waits at most
//! one gap before it is sent (its ack_wait starts at the claim: a gap longer than
//! ack_wait redelivers it, as a slow subscriber would). Pacing is per runtime: a push
//! consumer with subscribers on two agents is paced on each.

use std::sync::Arc;
use std::time::Duration;

use infinistream_protocol::jsapi::consumer::{ConsumerConfig, ReplayPolicy};
use tokio::time::Instant;

use super::Engine;
use super::claim::{Outgoing, release};
use super::runtime::Runtime;

/// How many deliveries a consumer paced by `pace` claims at once, at most `batch`.
pub(super) fn claim_size(pace: Option<&Pace>, batch: i64) -> i64 {
    if pace.is_some() { 1 } else { batch }
}

/// Waits until the claimed `out` may go (a paced consumer's claim brings one message);
/// `false` when the runtime stopped meanwhile: the claim is released.
pub(super) async fn hold(
    pace: Option<&mut Pace>,
    engine: &Arc<Engine>,
    rt: &Runtime,
    out: &[Outgoing],
) -> bool {
    let (Some(pace), Some(first)) = (pace, out.first()) else {
        return true;
    };
    if !pace.wait(first.timestamp, first.size(), &rt.cancel).await {
        release(engine, rt, out.iter().map(Outgoing::claimed).collect());
        return false;
    }
    pace.sent(first.timestamp, Instant::now());
    true
}

/// Gaps below this go out at once (nats-server's threshold).
const MIN_GAP: Duration = Duration::from_millis(1);

/// A consumer's pacing state; see the module docs.
#[derive(Debug)]
pub(super) struct Pace {
    replay_original: bool,
    /// The previous message's stored timestamp (Unix nanoseconds) and when it was sent.
    last: Option<(i64, Instant)>,
    bucket: Option<TokenBucket>,
}

impl Pace {
    /// The pacing `config` asks for; `None` when its deliveries go out as fast as
    /// they can.
    pub(super) fn of(config: &ConsumerConfig, burst: u64) -> Option<Pace> {
        let replay_original = config.replay_policy == ReplayPolicy::Original;
        let bucket =
            (config.rate_limit > 0).then(|| TokenBucket::new(config.rate_limit / 8, burst));
        (replay_original || bucket.is_some()).then_some(Pace {
            replay_original,
            last: None,
            bucket,
        })
    }

    /// How long from `now` a message stored at `timestamp` with `size` bytes on the
    /// wire must wait; takes its tokens. [`Pace::sent`] after sending it.
    fn delay(&mut self, timestamp: i64, size: usize, now: Instant) -> Duration {
        let mut wait = Duration::ZERO;
        if self.replay_original
            && let Some((prev_ts, prev_sent)) = self.last
        {
            let gap = Duration::from_nanos(u64::try_from(timestamp - prev_ts).unwrap_or(0));
            if gap >= MIN_GAP {
                wait = (prev_sent + gap).saturating_duration_since(now);
            }
        }
        if let Some(bucket) = &mut self.bucket {
            wait += bucket.take(size as u64, now + wait);
        }
        wait
    }

    /// A message stored at `timestamp` went out at `at`.
    fn sent(&mut self, timestamp: i64, at: Instant) {
        self.last = Some((timestamp, at));
    }

    /// Waits as [`Pace::delay`] says, unless `cancel` comes first (then `false`).
    async fn wait(
        &mut self,
        timestamp: i64,
        size: usize,
        cancel: &tokio_util::sync::CancellationToken,
    ) -> bool {
        let wait = self.delay(timestamp, size, Instant::now());
        if wait.is_zero() {
            return true;
        }
        tokio::select! {
            () = tokio::time::sleep(wait) => true,
            () = cancel.cancelled() => false,
        }
    }
}

/// The burst of a rate-limited consumer on `stream` (see the module docs).
pub(super) fn burst(engine: &Engine, stream: &str) -> u64 {
    engine
        .catalog
        .get(stream)
        .and_then(|e| u64::try_from(e.config.max_msg_size).ok())
        .filter(|m| *m > 0)
        .unwrap_or(engine.broker.config().max_payload as u64)
}

/// Bytes per second, refilled continuously, up to `burst` bytes.
#[derive(Debug)]
struct TokenBucket {
    rate: u64,
    burst: u64,
    tokens: f64,
    at: Option<Instant>,
}

impl TokenBucket {
    fn new(bytes_per_sec: u64, burst: u64) -> TokenBucket {
        let burst = burst.max(1);
        TokenBucket {
            rate: bytes_per_sec.max(1),
            burst,
            tokens: burst as f64,
            at: None,
        }
    }

    /// Takes `size` tokens at `now`; how long from `now` until they were there.
    fn take(&mut self, size: u64, now: Instant) -> Duration {
        let cap = self.burst.max(size) as f64;
        if let Some(at) = self.at {
            let refill = now.saturating_duration_since(at).as_secs_f64() * self.rate as f64;
            self.tokens = (self.tokens + refill).min(cap);
        }
        self.at = Some(now);
        self.tokens -= size as f64;
        if self.tokens >= 0.0 {
            return Duration::ZERO;
        }
        Duration::from_secs_f64(-self.tokens / self.rate as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(replay: ReplayPolicy, rate_limit: u64) -> ConsumerConfig {
        ConsumerConfig {
            replay_policy: replay,
            rate_limit,
            ..ConsumerConfig::default()
        }
    }

    #[test]
    fn nothing_to_pace_by_default() {
        assert!(Pace::of(&ConsumerConfig::default(), 1 << 20).is_none());
    }

    #[test]
    fn replay_original_waits_the_stored_gap_from_the_previous_send() {
        let mut pace = Pace::of(&config(ReplayPolicy::Original, 0), 1 << 20).expect("paced");
        let t0 = Instant::now();
        let ms = |n: u64| Duration::from_millis(n);
        // The first message goes at once.
        assert_eq!(pace.delay(1_000_000_000, 10, t0), Duration::ZERO);
        pace.sent(1_000_000_000, t0);
        // Stored 300 ms later; 20 ms already passed since the send: 280 ms to go.
        assert_eq!(pace.delay(1_300_000_000, 10, t0 + ms(20)), ms(280));
        pace.sent(1_300_000_000, t0 + ms(300));
        // A gap under 1 ms, or one already over: no wait.
        assert_eq!(pace.delay(1_300_000_500, 10, t0 + ms(300)), Duration::ZERO);
        assert_eq!(pace.delay(1_400_000_000, 10, t0 + ms(900)), Duration::ZERO);
    }

    #[test]
    fn rate_limit_spends_a_token_bucket() {
        // 8,000 bits/s = 1,000 bytes/s, a burst of 1,000 bytes.
        let mut pace = Pace::of(&config(ReplayPolicy::Instant, 8_000), 1_000).expect("paced");
        let t0 = Instant::now();
        assert_eq!(pace.delay(0, 600, t0), Duration::ZERO);
        assert_eq!(pace.delay(0, 400, t0), Duration::ZERO);
        // Empty: 500 bytes take half a second.
        assert_eq!(pace.delay(0, 500, t0), Duration::from_millis(500));
        // A message larger than the burst waits for all of its bytes, once.
        let mut pace = Pace::of(&config(ReplayPolicy::Instant, 8_000), 1_000).expect("paced");
        assert_eq!(pace.delay(0, 3_000, t0), Duration::from_secs(2));
    }
}
