//! The JetStream read routes: `STREAM.MSG.GET` and `DIRECT.GET`.
//!
//! Both answer from a [`StreamReader`]; they differ only in how they speak:
//! `STREAM.MSG.GET` replies with nats-server's JSON (`stream_msg_get_response`, base64
//! header block and payload, API errors 10037 / 10059 / 10003), while `DIRECT.GET`
//! replies with the stored message itself plus `Nats-Stream`, `Nats-Subject`,
//! `Nats-Sequence` and `Nats-Time-Stamp` headers, and with bare status lines for misses
//! (`404 Message Not Found`) and bad requests (`408 …`). KV clients rely on exactly these
//! forms: a `404` status makes `get` return "no entry".
//!
//! nats-server only subscribes a stream's direct-get subjects when the stream has
//! `allow_direct`; without it (or for an unknown stream) a request finds no responder
//! and the client sees `503`. Every `$JS.API` request reaches this agent's one internal
//! subscription, so the handler answers what the server's absence would: a bare
//! `NATS/1.0 503` status, which clients read as "no responders".
//!
//! Batched direct gets (`batch`, `multi_last`) stream several replies and an end-of-batch
//! status through the broker themselves.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use infinistream_broker::{Broker, InternalMsg};
use infinistream_jetstream::{Reply, RouteHandler, StreamCatalog, stream_home, stream_name};
use infinistream_protocol::jsapi::msg::{
    DirectGetMeta, DirectGetStatus, MsgGetRequest, MsgGetResponse, StoredMsg, direct_get_eob,
    status_header,
};
use infinistream_protocol::jsapi::response::types;
use infinistream_protocol::jsapi::subjects::ApiRoute;
use infinistream_protocol::jsapi::{ApiError, Timestamp, parse_request, render_error, render_ok};
use infinistream_protocol::subject::{is_literal, matches as subject_matches};
use tracing::Instrument;

use crate::reader::{ReadError, StoredMessage, StreamReader};

/// Most messages one batched direct get returns (nats-server caps multi-last the same).
const MAX_BATCH: usize = 1024;

/// Serves the read routes of the proxy-consume role.
#[derive(Debug, Clone)]
pub struct ReadHandler {
    reader: StreamReader,
    catalog: StreamCatalog,
    broker: Broker,
}

impl ReadHandler {
    /// A handler answering from `reader`; `catalog` says which streams allow direct
    /// gets; batched replies go out through `broker`.
    pub fn new(reader: StreamReader, catalog: StreamCatalog, broker: Broker) -> Self {
        Self {
            reader,
            catalog,
            broker,
        }
    }

    /// The reader behind the handler.
    pub fn reader(&self) -> &StreamReader {
        &self.reader
    }

    /// Wraps the handler for [`infinistream_jetstream::ApiServer::with_reads`].
    pub fn into_route_handler(self) -> Arc<dyn RouteHandler> {
        Arc::new(self)
    }

    async fn msg_get(&self, stream: &str, payload: &[u8]) -> Reply {
        let result = async {
            let request: MsgGetRequest = parse_request(payload)?;
            request.check_api()?;
            let found = self.lookup(stream, &request).await.map_err(|e| {
                log_failure(stream, &e);
                e.api_error()
            })?;
            Ok::<_, ApiError>(MsgGetResponse {
                message: StoredMsg {
                    subject: found.subject,
                    sequence: found.seq,
                    header: if request.no_headers {
                        Vec::new()
                    } else {
                        found.headers.to_vec()
                    },
                    data: found.payload.to_vec(),
                    time: Timestamp::from_unix_nanos(i128::from(found.timestamp)),
                },
            })
        }
        .await;
        Reply::json(match result {
            Ok(body) => render_ok(&body),
            Err(error) => render_error(types::STREAM_MSG_GET, &error),
        })
    }

    /// One message as `STREAM.MSG.GET` and a single `DIRECT.GET` address it.
    async fn lookup(
        &self,
        stream: &str,
        request: &MsgGetRequest,
    ) -> Result<StoredMessage, ReadError> {
        let start = match &request.start_time {
            Some(time) => {
                let nanos = i64::try_from(time.unix_nanos()).unwrap_or(i64::MAX);
                Some(self.reader.seq_for_time(stream, nanos).await?)
            }
            None => None,
        };
        if !request.last_for.is_empty() {
            return self.reader.last_by_subject(stream, &request.last_for).await;
        }
        let from = start.unwrap_or(request.seq);
        if !request.next_for.is_empty() || start.is_some() {
            return self
                .reader
                .next_matching(stream, &request.next_for, from, request.up_to_seq)
                .await;
        }
        self.reader.get(stream, from).await
    }

    /// Whether the stream has `allow_direct`. A stream this agent's catalog does not
    /// know yet (created through another agent less than a refresh ago — a KV bucket
    /// created and read at once through different agents) triggers one catalog refresh
    /// before the request is treated as having no responder.
    async fn direct_allowed(&self, stream: &str) -> bool {
        if self.catalog.get(stream).is_none()
            && let Err(status) = self.catalog.refresh(self.reader.control_plane()).await
        {
            tracing::warn!(stream = %stream, error = %status.message(), "stream catalog refresh failed");
        }
        self.catalog
            .get(stream)
            .is_some_and(|entry| entry.config.allow_direct)
    }

    async fn direct_get(
        &self,
        stream: &str,
        request: MsgGetRequest,
        reply_to: &str,
    ) -> Option<Reply> {
        if !request.multi_last_for.is_empty() {
            self.multi_last(stream, &request, reply_to).await;
            return None;
        }
        if request.batch > 0 {
            self.batch(stream, &request, reply_to).await;
            return None;
        }
        Some(match self.lookup(stream, &request).await {
            Ok(found) => direct_reply(stream, &found, None, request.no_headers),
            Err(e) => {
                log_failure(stream, &e);
                failure_reply(&e)
            }
        })
    }

    /// `batch`: up to `batch` messages from `seq` (or `start_time`) on, optionally
    /// only those matching `next_by_subj`, each with `Nats-Num-Pending` and
    /// `Nats-Last-Sequence`, then the `204 EOB` status.
    async fn batch(&self, stream: &str, request: &MsgGetRequest, reply_to: &str) {
        let limit = usize::try_from(request.batch)
            .unwrap_or(MAX_BATCH)
            .min(MAX_BATCH);
        let filter = request.next_for.as_str();
        let mut from = request.seq.max(1);
        if let Some(time) = &request.start_time {
            let nanos = i64::try_from(time.unix_nanos()).unwrap_or(i64::MAX);
            match self.reader.seq_for_time(stream, nanos).await {
                Ok(seq) => from = seq,
                Err(e) => return self.publish_reply(stream, reply_to, failure_reply(&e)),
            }
        }
        let mut found = Vec::new();
        let mut bytes = 0usize;
        let max_bytes = usize::try_from(request.max_bytes).unwrap_or(0);
        while found.len() < limit {
            match self
                .reader
                .next_matching(stream, filter, from, request.up_to_seq)
                .await
            {
                Ok(msg) => {
                    from = msg.seq + 1;
                    bytes += msg.subject.len() + msg.headers.len() + msg.payload.len();
                    found.push(msg);
                    if max_bytes > 0 && bytes >= max_bytes {
                        break;
                    }
                }
                Err(ReadError::NoMessage) => break,
                Err(e) => {
                    log_failure(stream, &e);
                    if found.is_empty() {
                        return self.publish_reply(stream, reply_to, failure_reply(&e));
                    }
                    break;
                }
            }
        }
        if found.is_empty() {
            return self.publish_status(stream, reply_to, DirectGetStatus::NotFound);
        }
        // Matching messages left after the batch.
        let after = match self
            .reader
            .count_matching(stream, filter, from, request.up_to_seq)
            .await
        {
            Ok(n) => n,
            Err(e) => {
                log_failure(stream, &e);
                return self.publish_reply(stream, reply_to, failure_reply(&e));
            }
        };
        let total = found.len() as u64;
        let mut last = 0;
        for (i, msg) in found.iter().enumerate() {
            let pending = total - i as u64 - 1 + after;
            let reply = direct_reply(stream, msg, Some((pending, last)), request.no_headers);
            self.home(stream)
                .publish(reply_to, None, reply.headers, reply.payload);
            last = msg.seq;
        }
        self.home(stream).publish(
            reply_to,
            None,
            Some(Bytes::from(direct_get_eob(after, last, None))),
            Bytes::new(),
        );
    }

    /// `multi_last`, as nats-server's `getDirectMulti`: the last message of every
    /// subject matching one of the filters at or below `up_to_seq` (default: the
    /// stream's last sequence), in sequence order, skipping sequences below `seq`, at
    /// most `batch` (and about `max_bytes`), then `204 EOB` with `Nats-UpTo-Sequence`.
    async fn multi_last(&self, stream: &str, request: &MsgGetRequest, reply_to: &str) {
        let seqs = match self.multi_last_seqs(stream, request).await {
            Ok(seqs) => seqs,
            Err(e) => {
                log_failure(stream, &e);
                return self.publish_reply(stream, reply_to, failure_reply(&e));
            }
        };
        let (mut seqs, up_to) = seqs;
        seqs.sort_unstable();
        if seqs.len() > MAX_BATCH {
            return self.publish_status(stream, reply_to, DirectGetStatus::TooManyResults);
        }
        if seqs.is_empty() {
            return self.publish_status(stream, reply_to, DirectGetStatus::NoResults);
        }
        let max_bytes = usize::try_from(request.max_bytes).unwrap_or(0);
        let mut pending = seqs.len() as u64 - 1;
        let (mut last, mut sent, mut bytes) = (0u64, 0i64, 0usize);
        for seq in seqs {
            if seq < request.seq {
                pending = pending.saturating_sub(1);
                continue;
            }
            let msg = match self.reader.get(stream, seq).await {
                Ok(msg) => msg,
                // Deleted since the index answered: nothing to send for it.
                Err(ReadError::NoMessage) => continue,
                Err(e) => {
                    log_failure(stream, &e);
                    return self.publish_reply(stream, reply_to, failure_reply(&e));
                }
            };
            let reply = direct_reply(stream, &msg, Some((pending, last)), request.no_headers);
            self.home(stream)
                .publish(reply_to, None, reply.headers, reply.payload);
            pending = pending.saturating_sub(1);
            last = msg.seq;
            sent += 1;
            bytes += msg.subject.len() + msg.headers.len() + msg.payload.len();
            if (request.batch > 0 && sent >= request.batch) || (max_bytes > 0 && bytes >= max_bytes)
            {
                break;
            }
        }
        self.home(stream).publish(
            reply_to,
            None,
            Some(Bytes::from(direct_get_eob(pending, last, Some(up_to)))),
            Bytes::new(),
        );
    }

    /// The sequences a multi-last request answers, and the sequence they hold up to.
    async fn multi_last_seqs(
        &self,
        stream: &str,
        request: &MsgGetRequest,
    ) -> Result<(Vec<u64>, u64), ReadError> {
        let mut up_to = request.up_to_seq;
        if let Some(time) = &request.up_to_time {
            // The first sequence at or after the time, less one: the ceiling.
            let nanos = i64::try_from(time.unix_nanos()).unwrap_or(i64::MAX);
            up_to = match self.reader.seq_for_time(stream, nanos).await {
                Ok(seq) => seq.saturating_sub(1),
                Err(ReadError::NoMessage) => self.reader.last_seq(stream).await?,
                Err(e) => return Err(e),
            };
        }
        if up_to == 0 && request.up_to_time.is_none() {
            up_to = self.reader.last_seq(stream).await?;
        }
        let filters = &request.multi_last_for;
        let wanted = if filters.iter().all(is_literal) {
            filters.clone()
        } else {
            Vec::new()
        };
        let lasts = self.reader.last_seqs(stream, wanted).await?;
        let matching: Vec<_> = lasts
            .iter()
            .filter(|s| filters.iter().any(|f| subject_matches(f, &s.subject)))
            .collect();
        if matching.iter().all(|s| s.last_seq <= up_to) {
            return Ok((matching.iter().map(|s| s.last_seq).collect(), up_to));
        }
        // Some subject moved past the ceiling: scan up to it.
        let lasts = self.reader.last_seqs_up_to(stream, filters, up_to).await?;
        Ok((lasts.into_values().collect(), up_to))
    }

    fn publish_status(&self, stream: &str, reply_to: &str, status: DirectGetStatus) {
        self.publish_reply(stream, reply_to, status_reply(status));
    }

    fn publish_reply(&self, stream: &str, reply_to: &str, reply: Reply) {
        self.home(stream)
            .publish(reply_to, None, reply.headers, reply.payload);
    }

    /// The broker in the account of stream id `stream`: the requester's replies go
    /// there (see [`infinistream_jetstream::account`]).
    fn home<'a>(&'a self, stream: &'a str) -> std::borrow::Cow<'a, Broker> {
        stream_home(&self.broker, stream).0
    }
}

#[async_trait]
impl RouteHandler for ReadHandler {
    async fn handle(&self, route: ApiRoute, msg: InternalMsg) -> Option<Reply> {
        match route {
            ApiRoute::StreamMsgGet(stream) => {
                let span = tracing::debug_span!("stream_msg_get", stream = %stream);
                Some(self.msg_get(&stream, &msg.payload).instrument(span).await)
            }
            ApiRoute::DirectGet(stream) => {
                let span = tracing::debug_span!("direct_get", stream = %stream);
                async {
                    if !self.direct_allowed(&stream).await {
                        return Some(no_responders());
                    }
                    let reply_to = msg.reply.clone().unwrap_or_default();
                    match MsgGetRequest::parse_direct(&msg.payload) {
                        Ok(request) => self.direct_get(&stream, request, &reply_to).await,
                        Err(status) => Some(status_reply(status)),
                    }
                }
                .instrument(span)
                .await
            }
            ApiRoute::DirectGetLastBySubject { stream, subject } => {
                let span =
                    tracing::debug_span!("direct_get_last", stream = %stream, subject = %subject);
                async {
                    if !self.direct_allowed(&stream).await {
                        return Some(no_responders());
                    }
                    let reply_to = msg.reply.clone().unwrap_or_default();
                    match MsgGetRequest::direct_last_by_subject(&msg.payload, &subject) {
                        Ok(request) => self.direct_get(&stream, request, &reply_to).await,
                        Err(status) => Some(status_reply(status)),
                    }
                }
                .instrument(span)
                .await
            }
            other => {
                let kind = other.response_type().unwrap_or(types::SYSTEM);
                Some(Reply::json(render_error(
                    kind,
                    &ApiError::internal("route not handled by the read handler"),
                )))
            }
        }
    }
}

fn direct_reply(
    stream: &str,
    msg: &StoredMessage,
    batch: Option<(u64, u64)>,
    no_headers: bool,
) -> Reply {
    let meta = DirectGetMeta {
        stream: stream_name(stream),
        subject: &msg.subject,
        seq: msg.seq,
        time: Timestamp::from_unix_nanos(i128::from(msg.timestamp)),
        batch,
    };
    let stored: &[u8] = if no_headers { &[] } else { &msg.headers };
    Reply {
        headers: Some(Bytes::from(meta.header_block(stored))),
        payload: msg.payload.clone(),
    }
}

fn status_reply(status: DirectGetStatus) -> Reply {
    Reply {
        headers: Some(Bytes::from(status.header_block())),
        payload: Bytes::new(),
    }
}

/// What a client sees when nothing subscribes to the request subject.
fn no_responders() -> Reply {
    Reply {
        headers: Some(Bytes::from_static(b"NATS/1.0 503\r\n\r\n")),
        payload: Bytes::new(),
    }
}

/// Misses are `404 Message Not Found`. Any other failure (control plane or bucket
/// unreachable, a corrupt object) must not look like a miss — a KV `get` would report
/// "no entry" — so it is a `500` status line naming the cause, which clients surface
/// as an error.
fn failure_reply(error: &ReadError) -> Reply {
    match error {
        ReadError::NoMessage | ReadError::StreamNotFound(_) => {
            status_reply(DirectGetStatus::NotFound)
        }
        other => {
            // Status descriptions are one header line: keep it free of CR/LF.
            let text: String = other
                .to_string()
                .chars()
                .map(|c| if c.is_control() { ' ' } else { c })
                .collect();
            Reply {
                headers: Some(Bytes::from(status_header(500, &text))),
                payload: Bytes::new(),
            }
        }
    }
}

fn log_failure(stream: &str, error: &ReadError) {
    match error {
        ReadError::NoMessage | ReadError::StreamNotFound(_) => {}
        other => tracing::warn!(stream = %stream, error = %other, "stream read failed"),
    }
}
