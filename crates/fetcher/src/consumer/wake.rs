//! How a parked pull request or a push consumer learns that a Claim may now return
//! something, without busy polling: the control plane's `WatchStreams` commit
//! notifications ([`ControlPlaneWatch`]), or a modest timer ([`TimerWatch`]). Either
//! way a fallback re-check remains, because a redelivery deadline passing (ack_wait,
//! backoff, a nak delay) is a moment, not an event.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use infinistream_cp_client::{ControlPlaneClient, WatchSubscription, Watched};
use infinistream_proto::v1;
use parking_lot::Mutex;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Where wake-ups come from.
pub trait CommitWatch: Send + Sync + std::fmt::Debug + 'static {
    /// A receiver that changes whenever a consumer of `stream` may have new
    /// deliveries (a commit, a nak, an ack freeing room); `None` when this source has
    /// no notifications and callers simply re-check every [`CommitWatch::fallback`].
    fn subscribe(&self, stream: &str) -> Option<watch::Receiver<u64>>;

    /// Longest wait without a notification before re-checking anyway.
    fn fallback(&self) -> Duration;

    /// A receiver that changes whenever a consumer of any stream was created, updated
    /// or changed state (see `StreamEventKind::StreamEventConsumer`); `None` when this
    /// source has no notifications.
    fn consumer_events(&self) -> Option<watch::Receiver<u64>> {
        None
    }
}

/// Waits for a notification on `notes` or the fallback, whichever comes first. A
/// closed notification source degrades to the fallback timer.
pub(crate) async fn wait_change(notes: &mut Option<watch::Receiver<u64>>, fallback: Duration) {
    match notes {
        Some(rx) => match tokio::time::timeout(fallback, rx.changed()).await {
            Ok(Ok(())) | Err(_) => {}
            Ok(Err(_)) => *notes = None,
        },
        None => tokio::time::sleep(fallback).await,
    }
}

/// Re-checks every `interval`: polling, for when no commit notifications exist.
#[derive(Debug, Clone, Copy)]
pub struct TimerWatch {
    pub interval: Duration,
}

impl Default for TimerWatch {
    fn default() -> Self {
        TimerWatch {
            interval: Duration::from_millis(50),
        }
    }
}

impl CommitWatch for TimerWatch {
    fn subscribe(&self, _stream: &str) -> Option<watch::Receiver<u64>> {
        None
    }

    fn fallback(&self) -> Duration {
        self.interval
    }
}

/// Wake-ups from the control plane's `WatchStreams` (stream commits and consumer
/// events), one counter per stream.
#[derive(Debug, Clone)]
pub struct ControlPlaneWatch {
    streams: Arc<Mutex<HashMap<String, watch::Sender<u64>>>>,
    consumers: Arc<watch::Sender<u64>>,
    fallback: Duration,
}

impl ControlPlaneWatch {
    /// Default re-check without a notification (redelivery deadlines).
    pub const DEFAULT_FALLBACK: Duration = Duration::from_millis(200);

    /// Starts watching with a watch of its own; the watch reconnects by itself and
    /// stops on `shutdown`.
    pub fn start(cp: &ControlPlaneClient, shutdown: CancellationToken) -> ControlPlaneWatch {
        let watch = cp.shared_watch(v1::WatchStreamsRequest {
            streams: Vec::new(),
            consumers: true,
        });
        Self::follow(watch.subscribe(), shutdown)
    }

    /// Wakes from `events`, a subscription to the agent's one shared watch (which must
    /// carry consumer events), until `shutdown`. A gap in the events wakes everyone.
    pub fn follow(mut events: WatchSubscription, shutdown: CancellationToken) -> ControlPlaneWatch {
        let this = ControlPlaneWatch {
            streams: Arc::new(Mutex::new(HashMap::new())),
            consumers: Arc::new(watch::channel(0).0),
            fallback: Self::DEFAULT_FALLBACK,
        };
        let me = this.clone();
        tokio::spawn(async move {
            loop {
                let event = tokio::select! {
                    () = shutdown.cancelled() => return,
                    e = events.next() => e,
                };
                match event {
                    Some(Ok(Watched::Event(event))) if !event.stream.is_empty() => {
                        if event.kind() == v1::StreamEventKind::StreamEventConsumer {
                            me.consumers.send_modify(|v| *v = v.wrapping_add(1));
                        }
                        me.bump(&event.stream);
                    }
                    Some(Ok(Watched::Event(_))) => {}
                    Some(Ok(Watched::Gap)) => me.bump_all(),
                    Some(Err(status)) => {
                        tracing::warn!(error = %status.message(), "commit watch refused; consumers fall back to polling");
                        return;
                    }
                    None => return,
                }
            }
        });
        tracing::info!("consumers wake on control-plane commit notifications");
        this
    }

    /// Wakes every waiter: what they wait for may have happened unseen.
    fn bump_all(&self) {
        for tx in self.streams.lock().values() {
            tx.send_modify(|v| *v = v.wrapping_add(1));
        }
        self.consumers.send_modify(|v| *v = v.wrapping_add(1));
    }

    fn bump(&self, stream: &str) {
        let streams = self.streams.lock();
        if let Some(tx) = streams.get(stream) {
            tx.send_modify(|v| *v = v.wrapping_add(1));
        }
    }
}

impl CommitWatch for ControlPlaneWatch {
    fn subscribe(&self, stream: &str) -> Option<watch::Receiver<u64>> {
        let mut streams = self.streams.lock();
        Some(
            streams
                .entry(stream.to_owned())
                .or_insert_with(|| watch::channel(0).0)
                .subscribe(),
        )
    }

    fn fallback(&self) -> Duration {
        self.fallback
    }

    fn consumer_events(&self) -> Option<watch::Receiver<u64>> {
        Some(self.consumers.subscribe())
    }
}
