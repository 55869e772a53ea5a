//! Commit notifications (`WatchStreams`): agents learn of commits as they become
//! durable, so parked pull requests and push consumers wake without polling.
//!
//! Every mutation queues its events on the [`Group`] it changed; the one place a
//! write becomes durable (`Engine::write_ops`) publishes them on a broadcast channel
//! once the store transaction succeeded. A failed write drops the group's cache and
//! with it the queued events, so no watcher ever hears of a change that is not
//! durable. Subscribing takes the state lock, so the snapshot a watcher starts from
//! and the first event it receives after it cannot miss or repeat a change.

use std::collections::BTreeSet;
use std::sync::{Arc, Weak};

use infinistream_proto::v1::{self, StreamEventKind};
use tokio::sync::{broadcast, mpsc};

use super::{Engine, Group, State};
use crate::errors::CpError;
use crate::stream::Stream;

/// Rounds of events a watcher may fall behind before it is resynced with a snapshot.
pub(crate) const CHANNEL_ROUNDS: usize = 1024;
/// Events buffered per watcher between its task and its gRPC stream.
const WATCHER_BUFFER: usize = 256;

/// What one durable write changed in one group.
#[derive(Debug)]
pub(crate) struct GroupEvents {
    group: String,
    events: Vec<v1::StreamEvent>,
}

pub(crate) type EventSender = broadcast::Sender<Arc<GroupEvents>>;

pub(crate) fn channel() -> EventSender {
    broadcast::channel(CHANNEL_ROUNDS).0
}

fn stream_event(kind: StreamEventKind, name: &str, s: &Stream) -> v1::StreamEvent {
    v1::StreamEvent {
        kind: kind as i32,
        stream: name.to_owned(),
        first_seq: s.state.first_seq,
        last_seq: s.state.last_seq,
        messages: s.msgs,
        config: matches!(
            kind,
            StreamEventKind::StreamEventCreated | StreamEventKind::StreamEventUpdated
        )
        .then(|| Box::new((&s.spec).into())),
        ..Default::default()
    }
}

impl Group {
    /// Queues an event carrying `name`'s current state (published once durable).
    pub(super) fn note_stream(&mut self, kind: StreamEventKind, name: &str) {
        if let Some(s) = self.streams.get(name) {
            let e = stream_event(kind, name, s);
            self.events.push(e);
        }
    }

    pub(super) fn note_stream_deleted(&mut self, name: &str) {
        self.events.push(v1::StreamEvent {
            kind: StreamEventKind::StreamEventDeleted as i32,
            stream: name.to_owned(),
            ..Default::default()
        });
    }

    /// Queues a consumer event: claims may return more from `ready_unix_nanos` on.
    pub(crate) fn note_consumer(
        &mut self,
        kind: StreamEventKind,
        stream: &str,
        consumer: &str,
        ready_unix_nanos: i64,
    ) {
        self.events.push(v1::StreamEvent {
            kind: kind as i32,
            stream: stream.to_owned(),
            consumer: consumer.to_owned(),
            ready_unix_nanos,
            ..Default::default()
        });
    }
}

/// Which events a watcher wants.
#[derive(Debug, Clone)]
struct Filter {
    group: String,
    streams: BTreeSet<String>,
    consumers: bool,
}

impl Filter {
    fn stream(&self, name: &str) -> bool {
        self.streams.is_empty() || self.streams.contains(name)
    }

    fn wants(&self, e: &v1::StreamEvent) -> bool {
        let consumer = matches!(
            StreamEventKind::try_from(e.kind),
            Ok(StreamEventKind::StreamEventConsumer | StreamEventKind::StreamEventConsumerDeleted)
        );
        (self.consumers || !consumer) && self.stream(&e.stream)
    }
}

pub(crate) type WatchItem = Result<v1::StreamEvent, tonic::Status>;

impl Engine {
    /// Publishes what the write that just succeeded made durable.
    /// Publishes one group's events of a durable round.
    pub(super) fn publish_group_events(&self, group: String, events: Vec<v1::StreamEvent>) {
        if !events.is_empty() {
            // No watcher is not an error.
            let _ = self.events.send(Arc::new(GroupEvents { group, events }));
        }
    }

    pub(super) fn publish_events(&self, st: &mut State) {
        for g in st.groups.values_mut() {
            if g.events.is_empty() {
                continue;
            }
            let events = std::mem::take(&mut g.events);
            // No watcher is not an error.
            let _ = self.events.send(Arc::new(GroupEvents {
                group: g.name.clone(),
                events,
            }));
        }
    }

    /// The current state of the selected streams (+ SYNCED) and a receiver of every
    /// event after it, taken under the state lock so nothing falls between them.
    async fn subscribe(
        &self,
        filter: &Filter,
    ) -> Result<(Vec<v1::StreamEvent>, broadcast::Receiver<Arc<GroupEvents>>), CpError> {
        let mut st = self.state.lock().await;
        let g = self.group_mut(&mut st, &filter.group).await?;
        let mut snapshot: Vec<v1::StreamEvent> = g
            .streams
            .iter()
            .filter(|(name, _)| filter.stream(name))
            .map(|(name, s)| stream_event(StreamEventKind::StreamEventSnapshot, name, s))
            .collect();
        snapshot.push(v1::StreamEvent {
            kind: StreamEventKind::StreamEventSynced as i32,
            ..Default::default()
        });
        let rx = self.events.subscribe();
        Ok((snapshot, rx))
    }

    /// Starts a watch for `group`: the snapshot is taken now (errors surface to the
    /// caller), live events follow from a task that ends when the watcher goes away
    /// or this engine is dropped (the control plane stopped leading).
    pub(crate) async fn watch_streams(
        self: &Arc<Self>,
        group: &str,
        req: v1::WatchStreamsRequest,
    ) -> Result<mpsc::Receiver<WatchItem>, CpError> {
        let filter = Filter {
            group: group.to_owned(),
            streams: req.streams.into_iter().collect(),
            consumers: req.consumers,
        };
        let (snapshot, rx) = self.subscribe(&filter).await?;
        let (tx, out) = mpsc::channel(WATCHER_BUFFER);
        tracing::debug!(group, "stream watch started");
        let closed = self.watches_closed.subscribe();
        tokio::spawn(forward(
            Arc::downgrade(self),
            filter,
            snapshot,
            rx,
            tx,
            closed,
        ));
        Ok(out)
    }

    /// Ends every watch (now and later): the server is stopping, and a graceful
    /// shutdown waits for open streams. Watchers reconnect elsewhere.
    pub(crate) fn close_watches(&self) {
        self.watches_closed.send_replace(true);
    }
}

/// Sends the snapshot, then the live events, to one watcher.
async fn forward(
    engine: Weak<Engine>,
    filter: Filter,
    snapshot: Vec<v1::StreamEvent>,
    mut rx: broadcast::Receiver<Arc<GroupEvents>>,
    tx: mpsc::Sender<WatchItem>,
    mut closed: tokio::sync::watch::Receiver<bool>,
) {
    let mut pending = snapshot;
    loop {
        if *closed.borrow_and_update() {
            return;
        }
        for e in pending.drain(..) {
            if tx.send(Ok(e)).await.is_err() {
                return;
            }
        }
        let round = tokio::select! {
            r = rx.recv() => r,
            () = tx.closed() => return,
            _ = closed.changed() => return,
        };
        match round {
            Ok(round) => {
                if round.group == filter.group {
                    pending.extend(round.events.iter().filter(|e| filter.wants(e)).cloned());
                }
            }
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                // Too far behind: start over from a fresh snapshot.
                let Some(engine) = engine.upgrade() else {
                    return;
                };
                tracing::info!(
                    group = filter.group,
                    missed,
                    "stream watcher lagged; resyncing"
                );
                match engine.subscribe(&filter).await {
                    Ok((snapshot, fresh)) => {
                        pending = snapshot;
                        rx = fresh;
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e.into())).await;
                        return;
                    }
                }
            }
            // The engine is gone: this instance no longer leads. The watcher
            // reconnects (through a follower, to the new leader) and resyncs.
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

/// Whether a gRPC path is the WatchStreams call.
pub(crate) fn is_watch(path: &str) -> bool {
    path == "/infinistream.v1.Streams/WatchStreams"
}

/// A watch stream a follower forwards from the leader, cut when the follower stops:
/// a graceful shutdown waits for open streams, and this one would never end. The
/// watcher sees the stream fail and reconnects elsewhere.
pub(crate) fn cut_on_stop(
    body: axum::body::Body,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> axum::body::Body {
    use tokio_stream::StreamExt;
    let (tx, rx) = mpsc::channel::<Result<axum::body::Bytes, axum::Error>>(16);
    tokio::spawn(async move {
        let mut data = body.into_data_stream();
        loop {
            let next = tokio::select! {
                next = data.next() => next,
                _ = stop.wait_for(|stop| *stop) => return,
                () = tx.closed() => return,
            };
            match next {
                Some(chunk) => {
                    if tx.send(chunk).await.is_err() {
                        return;
                    }
                }
                None => return,
            }
        }
    });
    axum::body::Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx))
}
