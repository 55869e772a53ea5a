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

use std::time::Duration;

use infinistream_proto::v1;
use tokio::sync::mpsc;
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
