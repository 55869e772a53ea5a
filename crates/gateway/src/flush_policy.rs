//! When the batcher seals its buffer: the batch window is the spacing between an
//! agent's objects, not a wait (BRIEF invariant 5).
//!
//! A pure state machine: no clock, no I/O, no buffer. The writer tells it when a record
//! joins the buffer and when a flush starts, and asks it what to do now given the
//! buffer's encoded size. The rule, in [`FlushPolicy::decide`]'s order:
//!
//! 1. nothing buffered: nothing to do ([`Decision::Empty`]);
//! 2. the buffer reached the size cap: seal now ([`SealReason::Size`]);
//! 3. no flush started within a window before the oldest buffered record arrived (or
//!    none ever): that record reached an idle agent, seal now ([`SealReason::Idle`]);
//! 4. otherwise the buffer is due one window after the previous flush started: seal
//!    then ([`SealReason::Window`]), keep buffering until then ([`Decision::SealAt`]).
//!
//! Every flush start counts, size-triggered ones included, so a non-size flush starts
//! at least one window after the flush before it: over any span `T` an agent starts at
//! most `T / window + 1` flushes besides size-triggered ones.
//!
//! Generic over the instant type: the writer drives it with tokio's monotonic clock,
//! the tests with [`infinistream_types::MockClock`].

use std::ops::Add;
use std::time::Duration;

/// What the policy needs of a point in time.
pub trait PolicyInstant: Copy + Ord + Add<Duration, Output = Self> {}

impl<T: Copy + Ord + Add<Duration, Output = T>> PolicyInstant for T {}

/// Why a buffer was sealed (the `reason` label of `gateway_batches_sealed_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SealReason {
    /// Its first record reached an agent that had not started a flush for a window.
    Idle,
    /// One window after the previous flush started.
    Window,
    /// The encoded batch reached the size cap.
    Size,
    /// The agent is stopping.
    Shutdown,
}

impl SealReason {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            SealReason::Idle => "idle",
            SealReason::Window => "window",
            SealReason::Size => "size",
            SealReason::Shutdown => "shutdown",
        }
    }
}

/// What the writer should do with its buffer now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision<T> {
    /// Nothing is buffered; wait for a record.
    Empty,
    /// Seal the buffer and start its flush now.
    Seal(SealReason),
    /// Keep buffering; seal at this instant unless the size cap comes first.
    SealAt(T),
}

/// The flush timing of one agent's buffer.
#[derive(Debug, Clone)]
pub struct FlushPolicy<T> {
    window: Duration,
    size_cap: usize,
    /// When the latest flush started (its object was handed to its upload).
    last_start: Option<T>,
    /// When the oldest record in the buffer arrived; `None` when the buffer is empty.
    oldest: Option<T>,
}

impl<T: PolicyInstant> FlushPolicy<T> {
    pub fn new(window: Duration, size_cap: usize) -> Self {
        FlushPolicy {
            window,
            size_cap,
            last_start: None,
            oldest: None,
        }
    }

    /// A record joined the buffer at `now`.
    pub fn record_buffered(&mut self, now: T) {
        self.oldest.get_or_insert(now);
    }

    /// The buffer was sealed and its flush started at `now`; the buffer is empty again.
    /// Returns when the oldest record of that flush arrived.
    pub fn flush_started(&mut self, now: T) -> Option<T> {
        self.last_start = Some(now);
        self.oldest.take()
    }

    /// The buffer was emptied without starting a flush (nothing was written).
    pub fn buffer_dropped(&mut self) {
        self.oldest = None;
    }

    /// What to do at `now` with `buffered` encoded bytes in the buffer.
    pub fn decide(&self, now: T, buffered: usize) -> Decision<T> {
        let Some(oldest) = self.oldest else {
            return Decision::Empty;
        };
        if buffered >= self.size_cap {
            return Decision::Seal(SealReason::Size);
        }
        let Some(last_start) = self.last_start else {
            return Decision::Seal(SealReason::Idle);
        };
        let due = last_start + self.window;
        if oldest >= due {
            Decision::Seal(SealReason::Idle)
        } else if now >= due {
            Decision::Seal(SealReason::Window)
        } else {
            Decision::SealAt(due)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{SystemTime, UNIX_EPOCH};

    use infinistream_types::{Clock, MockClock};

    use super::*;

    const WINDOW: Duration = Duration::from_millis(250);
    const CAP: usize = 4 * 1024 * 1024;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// A policy and a mock clock, with `bytes` counting what the buffer holds.
    struct Agent {
        clock: MockClock,
        policy: FlushPolicy<SystemTime>,
        bytes: usize,
        /// Every flush: when it started and why.
        flushes: Vec<(SystemTime, SealReason)>,
    }

    impl Agent {
        fn new() -> Self {
            Agent {
                clock: MockClock::new(UNIX_EPOCH + Duration::from_secs(1_000)),
                policy: FlushPolicy::new(WINDOW, CAP),
                bytes: 0,
                flushes: Vec::new(),
            }
        }

        /// A publish of `size` bytes arrives; the writer acts on the decision at once,
        /// as its loop does. Returns the decision taken on arrival.
        fn publish(&mut self, size: usize) -> Decision<SystemTime> {
            let now = self.clock.now();
            self.policy.record_buffered(now);
            self.bytes += size;
            let decision = self.policy.decide(now, self.bytes);
            if let Decision::Seal(reason) = decision {
                self.flush(reason);
            }
            decision
        }

        /// Moves the clock, firing the seal timer if it falls due on the way (as the
        /// writer's `sleep_until` would).
        fn advance(&mut self, by: Duration) {
            let until = self.clock.now() + by;
            while let Decision::SealAt(at) = self.policy.decide(self.clock.now(), self.bytes) {
                if at > until {
                    break;
                }
                let step = at.duration_since(self.clock.now()).unwrap_or_default();
                self.clock.advance(step);
                match self.policy.decide(self.clock.now(), self.bytes) {
                    Decision::Seal(reason) => self.flush(reason),
                    other => panic!("the timer fired at its instant but the policy said {other:?}"),
                }
            }
            let rest = until.duration_since(self.clock.now()).unwrap_or_default();
            self.clock.advance(rest);
        }

        fn flush(&mut self, reason: SealReason) {
            let now = self.clock.now();
            self.policy.flush_started(now);
            self.bytes = 0;
            self.flushes.push((now, reason));
        }

        fn reasons(&self) -> Vec<SealReason> {
            self.flushes.iter().map(|(_, r)| *r).collect()
        }
    }

    #[test]
    fn an_idle_publish_flushes_at_once() {
        let mut agent = Agent::new();
        assert_eq!(agent.publish(100), Decision::Seal(SealReason::Idle));
        // Again after a quiet window: idle again, no wait.
        agent.advance(WINDOW);
        assert_eq!(agent.publish(100), Decision::Seal(SealReason::Idle));
        agent.advance(ms(3_000));
        assert_eq!(agent.publish(100), Decision::Seal(SealReason::Idle));
        assert_eq!(
            agent.reasons(),
            vec![SealReason::Idle, SealReason::Idle, SealReason::Idle]
        );
        assert_eq!(agent.policy.decide(agent.clock.now(), 0), Decision::Empty);
    }

    #[test]
    fn a_burst_within_a_window_makes_one_object_after_the_first() {
        let mut agent = Agent::new();
        let start = agent.clock.now();
        agent.publish(100);
        // 99 more publishes over the next 200 ms all wait for the same slot.
        for _ in 0..99 {
            agent.advance(ms(2));
            assert_eq!(agent.publish(100), Decision::SealAt(start + WINDOW));
        }
        assert_eq!(agent.flushes.len(), 1, "only the first went at once");
        agent.advance(WINDOW);
        assert_eq!(
            agent.flushes,
            vec![
                (start, SealReason::Idle),
                (start + WINDOW, SealReason::Window)
            ]
        );
    }

    #[test]
    fn a_steady_stream_makes_one_object_per_window() {
        let mut agent = Agent::new();
        let start = agent.clock.now();
        // One publish every 10 ms for 10 s.
        for _ in 0..1_000 {
            agent.publish(1_000);
            agent.advance(ms(10));
        }
        let elapsed = agent.clock.now().duration_since(start).expect("forward");
        let windows = usize::try_from(elapsed.as_millis() / WINDOW.as_millis()).expect("small");
        // The first publish at once, then one flush at the end of each window.
        assert_eq!(agent.flushes.len(), windows + 1, "{:?}", agent.reasons());
        assert_eq!(agent.flushes[0], (start, SealReason::Idle));
        for pair in agent.flushes.windows(2) {
            assert_eq!(pair[1].0.duration_since(pair[0].0).ok(), Some(WINDOW));
            assert_eq!(pair[1].1, SealReason::Window);
        }
    }

    #[test]
    fn a_4_mib_burst_flushes_early() {
        let mut agent = Agent::new();
        let start = agent.clock.now();
        agent.publish(1_000);
        // 5 MiB of 64 KiB publishes within 50 ms: the buffer reaches the cap before the
        // window is due.
        let mut sealed_at = None;
        for i in 0..80 {
            if i % 8 == 0 {
                agent.advance(ms(5));
            }
            if agent.publish(64 * 1024) == Decision::Seal(SealReason::Size) {
                sealed_at = Some(agent.clock.now());
            }
        }
        let sealed_at = sealed_at.expect("a size flush");
        assert!(sealed_at < start + WINDOW);
        assert_eq!(
            agent.reasons(),
            vec![SealReason::Idle, SealReason::Size],
            "4 MiB of the 5 went early"
        );
        // The size flush counts as a start: the remainder is due one window after it.
        assert_eq!(
            agent.policy.decide(agent.clock.now(), agent.bytes),
            Decision::SealAt(sealed_at + WINDOW)
        );
    }

    #[test]
    fn a_sequential_publisher_gets_one_flush_per_window_after_the_first() {
        // Each publish waits for its ack (5 ms of PUT + commit) before the next.
        let mut agent = Agent::new();
        let start = agent.clock.now();
        for _ in 0..5 {
            let flushed = agent.flushes.len();
            agent.publish(100);
            // The ack comes 5 ms after the publish's flush started.
            while agent.flushes.len() == flushed {
                agent.advance(ms(1));
            }
            agent.advance(ms(5));
        }
        let starts: Vec<Duration> = agent
            .flushes
            .iter()
            .map(|(t, _)| t.duration_since(start).expect("forward"))
            .collect();
        assert_eq!(starts, vec![ms(0), ms(250), ms(500), ms(750), ms(1_000)]);
    }

    #[test]
    fn a_slow_flush_does_not_make_the_next_publish_wait_longer() {
        // The spacing runs from the previous flush's start, not its end: a publish that
        // arrives after a window has passed since that start goes at once even if the
        // previous flush is still uploading or committing.
        let mut agent = Agent::new();
        agent.publish(100);
        agent.advance(WINDOW + ms(1));
        assert_eq!(agent.publish(100), Decision::Seal(SealReason::Idle));
    }
}
