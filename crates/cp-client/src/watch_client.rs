//! The agent side of `WatchStreams`: a stream of commit notifications that survives
//! leader changes.
//!
//! Semantics for callers:
//! - Every (re)connection starts with one `SNAPSHOT` event per selected stream (its
//!   current first/last sequence and message count), then one `SYNCED` event; live
//!   events follow. Treat a SNAPSHOT exactly like a STATE event: compare `last_seq`
//!   with what you knew and wake whatever waits for it. After SYNCED, a stream you
//!   knew that had no SNAPSHOT was deleted while you were disconnected.
//! - Only the leader knows commits as they happen, so followers forward the call to
//!   it. When the leader steps down the stream ends; when it crashes the stream
//!   fails. Either way this watch reconnects by itself (with a short backoff, through
//!   whichever replica the client's transport reaches) and starts again with a
//!   snapshot, so no change is missed — only intermediate states may be skipped.
//! - Errors that retrying cannot fix (wrong key, invalid stream name) are yielded
//!   once as `Err`, and the stream ends.
//!
//! An agent opens one such watch and shares it ([`SharedWatch`]) between everything
//! that follows stream events; a subscriber that falls behind, or joins late, gets a
//! [`Watched::Gap`] and resyncs.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use infinistream_proto::v1;
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;

use crate::ControlPlaneClient;

const BACKOFF_MIN: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(2);
const BUFFER: usize = 256;

/// Commit notifications, reconnecting on leader change (see the module docs).
pub type StreamWatch = ReceiverStream<Result<v1::StreamEvent, tonic::Status>>;

fn permanent(status: &tonic::Status) -> bool {
    matches!(
        status.code(),
        tonic::Code::Unauthenticated
            | tonic::Code::PermissionDenied
            | tonic::Code::InvalidArgument
            | tonic::Code::Unimplemented
    )
}

impl ControlPlaneClient {
    /// Watches the group's streams (`request.streams`, empty = all; with
    /// `request.consumers`, consumer events too) until the returned stream is dropped.
    /// Reconnects by itself after a leader change; see [`crate::watch_client`].
    pub fn watch_streams(&self, request: v1::WatchStreamsRequest) -> StreamWatch {
        let (tx, rx) = mpsc::channel(BUFFER);
        let mut streams = self.streams.clone();
        tokio::spawn(async move {
            let mut backoff = BACKOFF_MIN;
            loop {
                let failure = match streams.watch_streams(request.clone()).await {
                    Ok(response) => {
                        let mut events = response.into_inner();
                        loop {
                            let next = tokio::select! {
                                next = events.message() => next,
                                () = tx.closed() => return,
                            };
                            match next {
                                Ok(Some(event)) => {
                                    if event.kind == v1::StreamEventKind::StreamEventSynced as i32 {
                                        backoff = BACKOFF_MIN;
                                    }
                                    if tx.send(Ok(event)).await.is_err() {
                                        return;
                                    }
                                }
                                Ok(None) => break tonic::Status::unavailable("watch ended"),
                                Err(status) => break status,
                            }
                        }
                    }
                    Err(status) => status,
                };
                if permanent(&failure) {
                    tracing::warn!(code = ?failure.code(), message = failure.message(), "stream watch refused");
                    let _ = tx.send(Err(failure)).await;
                    return;
                }
                tracing::info!(
                    code = ?failure.code(),
                    message = failure.message(),
                    retry_in = ?backoff,
                    "stream watch interrupted (leader change?); reconnecting"
                );
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    () = tx.closed() => return,
                }
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
        });
        ReceiverStream::new(rx)
    }
}

/// Events one [`SharedWatch`] buffers for its slowest subscriber before that one gets a
/// [`Watched::Gap`] instead of what it missed.
const SHARED_BUFFER: usize = 16 * 1024;

type WatchItem = Result<v1::StreamEvent, tonic::Status>;

/// What a [`WatchSubscription`] yields.
#[derive(Debug, Clone)]
pub enum Watched {
    /// An event as `WatchStreams` sent it (the SNAPSHOT and SYNCED of every
    /// (re)connection included).
    Event(v1::StreamEvent),
    /// Events were missed (this subscriber fell behind, or it joined after the watch had
    /// synced): whatever it derived from them must be resynced.
    Gap,
}

/// One `WatchStreams` subscription shared by every part of an agent that follows the
/// control plane's stream events (the stream catalog, the consumers' wake-ups), so an
/// agent holds one watch however many parts listen. Lives while a handle or a
/// subscription does.
#[derive(Debug, Clone)]
pub struct SharedWatch {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    tx: broadcast::Sender<WatchItem>,
    /// Set once the first SYNCED went out: a later subscriber missed the snapshot.
    synced: Arc<AtomicBool>,
    /// Dropped with the last handle: ends the upstream watch.
    _stop: oneshot::Sender<()>,
}

/// One listener of a [`SharedWatch`].
#[derive(Debug)]
pub struct WatchSubscription {
    rx: broadcast::Receiver<WatchItem>,
    gap: bool,
    _shared: Arc<Shared>,
}

impl ControlPlaneClient {
    /// Starts one [`ControlPlaneClient::watch_streams`] for `request` that any number of
    /// subscribers share (see [`SharedWatch`]).
    pub fn shared_watch(&self, request: v1::WatchStreamsRequest) -> SharedWatch {
        let (tx, _) = broadcast::channel(SHARED_BUFFER);
        let (stop, mut stopped) = oneshot::channel();
        let synced = Arc::new(AtomicBool::new(false));
        let mut upstream = self.watch_streams(request);
        let (forward, flag) = (tx.clone(), synced.clone());
        tokio::spawn(async move {
            loop {
                let item = tokio::select! {
                    _ = &mut stopped => return,
                    item = upstream.next() => item,
                };
                match item {
                    Some(Ok(event)) => {
                        if event.kind == v1::StreamEventKind::StreamEventSynced as i32 {
                            flag.store(true, Ordering::SeqCst);
                        }
                        // No subscriber now is not an error.
                        let _ = forward.send(Ok(event));
                    }
                    Some(Err(status)) => {
                        let _ = forward.send(Err(status));
                    }
                    // Ends only after a refusal, already forwarded.
                    None => return,
                }
            }
        });
        SharedWatch {
            shared: Arc::new(Shared {
                tx,
                synced,
                _stop: stop,
            }),
        }
    }
}

impl SharedWatch {
    /// A new listener: it receives every event from now on, starting with a
    /// [`Watched::Gap`] when the watch had already synced (it missed the snapshot).
    pub fn subscribe(&self) -> WatchSubscription {
        // Subscribe before reading the flag: a SYNCED sent after a `false` read is
        // received.
        let rx = self.shared.tx.subscribe();
        WatchSubscription {
            rx,
            gap: self.shared.synced.load(Ordering::SeqCst),
            _shared: self.shared.clone(),
        }
    }
}

impl WatchSubscription {
    /// The next event or gap; `Err` once when the control plane refused the watch
    /// (nothing follows it); `None` when the watch ended.
    pub async fn next(&mut self) -> Option<Result<Watched, tonic::Status>> {
        if std::mem::take(&mut self.gap) {
            return Some(Ok(Watched::Gap));
        }
        match self.rx.recv().await {
            Ok(item) => Some(item.map(Watched::Event)),
            Err(broadcast::error::RecvError::Lagged(_)) => Some(Ok(Watched::Gap)),
            Err(broadcast::error::RecvError::Closed) => None,
        }
    }

    /// [`WatchSubscription::next`] without waiting: `None` when nothing is ready.
    pub fn try_next(&mut self) -> Option<Result<Watched, tonic::Status>> {
        if std::mem::take(&mut self.gap) {
            return Some(Ok(Watched::Gap));
        }
        match self.rx.try_recv() {
            Ok(item) => Some(item.map(Watched::Event)),
            Err(broadcast::error::TryRecvError::Lagged(_)) => Some(Ok(Watched::Gap)),
            Err(_) => None,
        }
    }
}
