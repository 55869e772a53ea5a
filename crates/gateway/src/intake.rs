//! Stream capture: publishes on stream subjects become batcher records.
//!
//! For every subject of every stream in the catalog the intake holds one internal
//! broker subscription; the broker's subscription index does the subject matching, so
//! a publish costs no extra lookup here. Each subscription has a forwarding task that
//! reads the JetStream headers the control plane checks at commit (`Nats-Msg-Id`,
//! `Nats-Expected-*`, `Nats-Rollup`, `Nats-TTL`) and submits the record to the
//! batcher, waiting while the batcher's buffer is full — which back-pressures the
//! publishing connection through the broker's bounded internal channel, and only it.
//!
//! The subscriptions follow the catalog: when a stream appears, changes subjects or
//! goes away, the subscriptions follow (`serve_stream_subjects`). A core subscriber on the same subject still gets
//! every message, as with nats-server. Publishes that agents without the produce role
//! forward here arrive on one more subscription ([`Broker::subscribe_captures`]) naming
//! their stream, and take the same path from there.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use infinistream_broker::{Broker, InternalMsg};
use infinistream_jetstream::{StreamCatalog, StreamEntry, serve_stream_subjects, stream_home};
use infinistream_proto::domain::schedule_headers_to_proto;
use infinistream_proto::v1;
use infinistream_protocol::HeaderMap;
use infinistream_protocol::jsapi::headers::{
    self, MessageTtl, Rollup, parse_message_ttl, parse_rollup,
};
use infinistream_protocol::jsapi::msg::{PubAck, render_pub_ack};
use infinistream_protocol::jsapi::schedule::ScheduleHeaders;
use infinistream_protocol::jsapi::{ApiError, counter};
use tokio_util::sync::CancellationToken;

use infinistream_protocol::jsapi::fast_batch::{
    SUFFIX as FAST_BATCH_SUFFIX, parse_fast_batch_reply,
};
use infinistream_protocol::jsapi::stream::StreamConfig;

use crate::atomic::{self, AtomicBatches, Staged};
use crate::batcher::{AckSink, Batcher, PendingRecord, PublishOutcome, Refusal, SubmitError};
use crate::fast::{self, FastBatches, Incoming, Take};

/// Messages one capture subscription holds between the publishing connections and its
/// forwarding task. The channel is only a hand-off: the batcher's byte-bounded buffer
/// is where publishes wait. Channels are per stream subject and count messages, not
/// bytes, so their capacity multiplies with the number of streams: at 8,192 a publisher
/// outrunning the agent across 100 streams held ~800 MiB here (`cargo xtask bench js
/// outrun`); at 256 it is 25 MiB of 1 KiB messages.
const CAPTURE_CHANNEL: usize = 256;

/// Sends PubAcks back through the broker; the answers to fast batch messages go to
/// their batch's state ([`FastBatches::on_answer`]) instead, which says what to send.
#[derive(Debug, Clone)]
pub struct BrokerAcks {
    broker: Broker,
    fast: Arc<Mutex<FastBatches>>,
}

impl BrokerAcks {
    pub fn new(broker: Broker) -> Self {
        BrokerAcks {
            broker,
            fast: Arc::default(),
        }
    }

    /// The fast batches whose answers this sink routes (shared with the [`Intake`]).
    pub fn fast_batches(&self) -> Arc<Mutex<FastBatches>> {
        self.fast.clone()
    }
}

/// Publishes what the fast batch state answered.
fn publish_all(broker: &Broker, out: Vec<fast::Out>) {
    for o in out {
        broker.publish(&o.subject, None, None, Bytes::from(o.payload));
    }
}

impl AckSink for BrokerAcks {
    fn deliver(&self, reply: &str, stream: &str, outcome: PublishOutcome) {
        if let Some(Ok(batch)) = parse_fast_batch_reply(reply) {
            let out = match self.fast.lock() {
                Ok(mut fast) => fast.on_answer(stream, reply, &batch, outcome),
                Err(_) => Vec::new(),
            };
            publish_all(&self.broker, out);
            return;
        }
        // The stream's account holds the publisher's reply subject; the PubAck names
        // the stream as the client knows it.
        let (home, stream) = stream_home(&self.broker, stream);
        let result = match outcome {
            PublishOutcome::Stored { seq } => Ok(PubAck::new(stream, seq)),
            PublishOutcome::BatchStored { seq, batch } => Ok(batch.pub_ack(stream, seq)),
            PublishOutcome::Counted { seq, value } => Ok(PubAck {
                value,
                ..PubAck::new(stream, seq)
            }),
            PublishOutcome::Duplicate { seq } => Ok(PubAck::duplicate(stream, seq)),
            PublishOutcome::Failed(err) => Err((stream.to_owned(), err)),
        };
        home.publish(reply, None, None, Bytes::from(render_pub_ack(&result)));
    }

    fn flushed(&self) {
        let out = match self.fast.lock() {
            Ok(mut fast) => fast.on_flush(),
            Err(_) => Vec::new(),
        };
        publish_all(&self.broker, out);
    }
}

/// Captures every stream subject of the catalog into the batcher.
#[derive(Debug)]
pub struct Intake {
    broker: Broker,
    batcher: Batcher,
    catalog: StreamCatalog,
    acks: Arc<dyn AckSink>,
    fast: Arc<Mutex<FastBatches>>,
}

impl std::fmt::Debug for dyn AckSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AckSink")
    }
}

impl Intake {
    pub fn new(
        broker: Broker,
        batcher: Batcher,
        catalog: StreamCatalog,
        acks: Arc<dyn AckSink>,
        fast: Arc<Mutex<FastBatches>>,
    ) -> Self {
        Intake {
            broker,
            batcher,
            catalog,
            acks,
            fast,
        }
    }

    /// Captures, following the catalog, until shutdown. Sealed streams take no
    /// publishes, so they are not captured.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), std::convert::Infallible> {
        let Intake {
            broker,
            batcher,
            catalog,
            acks,
            fast,
        } = self;
        // One shared handle: a captured publish costs one reference count, not clones
        // of the batcher's sender and the ack sink.
        let sinks = Arc::new(Sinks {
            batcher,
            acks,
            broker: broker.clone(),
            catalog: catalog.clone(),
            atomic: Mutex::new(AtomicBatches::new()),
            fast,
            fast_order: tokio::sync::Mutex::new(()),
        });
        let capture = {
            let sinks = sinks.clone();
            move |stream: Arc<str>, msg: InternalMsg| {
                let sinks = sinks.clone();
                async move { forward(&stream, msg, &sinks).await }
            }
        };
        // Publishes other agents forward here (they do not run proxy-produce): each
        // names the stream the forwarding agent found, as this agent's catalog may not
        // list a just-created stream yet. One channel, in arrival order, so one
        // forwarding agent's publishes to a stream keep their order.
        let forwarded = match broker.subscribe_captures(CAPTURE_CHANNEL) {
            Ok(mut subscription) => {
                let shutdown = shutdown.clone();
                Some(tokio::spawn(async move {
                    loop {
                        let msg = tokio::select! {
                            () = shutdown.cancelled() => return,
                            msg = subscription.recv() => match msg {
                                Some(msg) => msg,
                                None => return,
                            },
                        };
                        let Some(stream) = msg.capture_stream.clone() else {
                            continue;
                        };
                        forward(&stream, msg, &sinks).await;
                    }
                }))
            }
            Err(error) => {
                tracing::warn!(%error, "cannot take publishes forwarded by other agents");
                None
            }
        };
        let served =
            serve_stream_subjects(broker, catalog, CAPTURE_CHANNEL, false, capture, shutdown).await;
        if let Some(task) = forwarded {
            task.abort();
        }
        served
    }
}

/// What the capture tasks share.
struct Sinks {
    batcher: Batcher,
    acks: Arc<dyn AckSink>,
    broker: Broker,
    catalog: StreamCatalog,
    /// Atomic batches held until their commit (`atomic`); never locked across an await.
    atomic: Mutex<AtomicBatches>,
    /// Fast batches in flight (`fast`), shared with [`BrokerAcks`]; never locked across
    /// an await.
    fast: Arc<Mutex<FastBatches>>,
    /// Held by a fast-batch message from the batch state's decision until it is in the
    /// batcher's queue (as a record or a refusal): a batch's messages on two subjects
    /// of a stream are captured by two tasks, and without it a later message taken
    /// after a refused one could reach the queue first and escape the withdrawal.
    fast_order: tokio::sync::Mutex<()>,
}

async fn forward(stream: &Arc<str>, msg: InternalMsg, sinks: &Sinks) {
    let acks = sinks.acks.as_ref();
    let reply = msg.reply.clone();
    if let Some(reply) = reply.as_deref()
        && reply.ends_with(FAST_BATCH_SUFFIX)
    {
        if stream.contains('.') {
            // Its answers go through the fast-batch state, not the stream's account.
            let error = ApiError::with_description(
                infinistream_protocol::jsapi::codes::BAD_REQUEST,
                "fast-ingest batches in a JetStream account whose streams do not have bare ids are not supported yet",
            );
            acks.deliver(reply, stream, PublishOutcome::Failed(error));
            return;
        }
        return forward_fast(stream, msg, reply, sinks).await;
    }
    let is_batch = msg
        .headers
        .as_deref()
        .is_some_and(|h| contains(h, headers::BATCH_ID.as_bytes()));
    let mut record = match record_from(stream, msg) {
        Ok(record) => record,
        Err(error) => {
            if let Some(reply) = reply.as_deref() {
                acks.deliver(reply, stream, PublishOutcome::Failed(error));
            }
            return;
        }
    };
    raise_stored_ttl(&mut record, &sinks.catalog);
    let submitted = if is_batch {
        match stage_atomic(stream, record, sinks).await {
            Some(records) => sinks.batcher.submit_group(records).await,
            None => return,
        }
    } else {
        sinks.batcher.submit(record).await
    };
    if let Err(error) = submitted
        && let Some(reply) = reply.as_deref()
    {
        acks.deliver(reply, stream, PublishOutcome::Failed(submit_error(&error)));
    }
}

/// The JetStream error for a publish the batcher would not take.
fn submit_error(error: &SubmitError) -> ApiError {
    match error {
        SubmitError::TooLarge { .. } => ApiError::stream_message_exceeds_maximum(),
        SubmitError::Closed => ApiError::stream_store_failed(error),
    }
}

/// A message of a fast batch (its reply subject ends in `.$FI`): the batch state
/// decides, its answers are published here, and a message it lets through is stored
/// like any publish (its answer comes back through [`BrokerAcks`]).
async fn forward_fast(stream: &Arc<str>, msg: InternalMsg, reply: &str, sinks: &Sinks) {
    let refuse = |error: ApiError| {
        let body = render_pub_ack(&Err((stream.to_string(), error)));
        sinks.broker.publish(reply, None, None, Bytes::from(body));
    };
    let Some(entry) = catalog_entry(&sinks.catalog, stream).await else {
        return refuse(ApiError::stream_not_found());
    };
    let mut record = match record_from(stream, msg) {
        Ok(record) => record,
        Err(error) => return refuse(error),
    };
    let map = if contains(&record.headers, headers::REQUIRED_API_LEVEL.as_bytes()) {
        HeaderMap::parse(&record.headers).ok()
    } else {
        None
    };
    let level = map
        .as_ref()
        .and_then(|m| m.get(headers::REQUIRED_API_LEVEL));
    // Decided and queued in one turn (see `Sinks::fast_order`); the batcher's queue is
    // FIFO, so queue order is the batch state's order.
    let _order = sinks.fast_order.lock().await;
    let (take, out) = match sinks.fast.lock() {
        Ok(mut fast) => fast.on_message(
            &entry.config,
            Incoming {
                stream,
                reply,
                header_len: record.headers.len(),
                payload_len: record.payload.len(),
                required_level: level,
            },
            parse_fast_batch_reply(reply)
                .unwrap_or_else(|| Err(ApiError::batch_publish_invalid_pattern())),
            Instant::now(),
        ),
        Err(_) => (
            Take::Done,
            vec![fast::Out {
                subject: reply.to_owned(),
                payload: render_pub_ack(&Err((
                    stream.to_string(),
                    ApiError::stream_store_failed("fast batch state unavailable"),
                ))),
            }],
        ),
    };
    publish_all(&sinks.broker, out);
    let Take::Submit { strip_level } = take else {
        return;
    };
    if strip_level && let Some(mut map) = map {
        map.remove(headers::REQUIRED_API_LEVEL);
        record.headers = map.to_bytes();
    }
    raise_ttl_header(&mut record, &entry.config);
    if let Some(Ok(batch)) = parse_fast_batch_reply(reply)
        && !batch.gap_ok
    {
        // Ends at its first refused message: the control plane stores none after it.
        record.meta.fail_batch = Some(batch.id.to_owned());
    }
    if let Err(error) = sinks.batcher.submit(record).await {
        // Counted as taken: its answer goes through the batch state like any other,
        // after the answers of the batch's messages queued before it, and the batch's
        // messages queued after it are withdrawn (mode `fail`).
        let fail_batch = parse_fast_batch_reply(reply)
            .and_then(Result::ok)
            .filter(|batch| !batch.gap_ok)
            .map(|batch| batch.id.to_owned());
        let refusal = Refusal {
            stream: stream.clone(),
            reply: reply.to_owned(),
            fail_batch,
            error: submit_error(&error),
        };
        if sinks.batcher.refuse(refusal.clone()).await.is_err() {
            // Shutting down: nothing queued after it will be taken either.
            sinks
                .acks
                .deliver(reply, stream, PublishOutcome::Failed(refusal.error));
        }
    }
}

/// [`raise_ttl_header`] with the stream's config from the catalog; only a message with
/// a TTL looks it up.
fn raise_stored_ttl(record: &mut PendingRecord, catalog: &StreamCatalog) {
    if record.meta.ttl_seconds.is_some_and(|t| t > 0)
        && let Some(entry) = catalog.get(&record.stream)
    {
        raise_ttl_header(record, &entry.config);
    }
}

/// With subject delete markers, nats-server raises a message TTL below the marker
/// TTL to it (whole seconds) and stores the raised value in the `Nats-TTL` header
/// (moved to the end of the headers), except with `max_msgs_per_subject` 1. The
/// control plane raises the TTL it keeps the same way.
fn raise_ttl_header(record: &mut PendingRecord, config: &StreamConfig) {
    let Some(ttl) = record.meta.ttl_seconds.filter(|t| *t > 0) else {
        return;
    };
    let marker_secs = config.subject_delete_marker_ttl / 1_000_000_000;
    if config.max_msgs_per_subject == 1 || ttl >= marker_secs {
        return;
    }
    if let Ok(mut map) = HeaderMap::parse(&record.headers) {
        map.remove(headers::TTL);
        map.insert(headers::TTL, marker_secs.to_string());
        record.headers = map.to_bytes();
    }
}

/// Holds a message of an atomic batch; the whole batch once its commit arrived.
/// Refusals and staged messages are answered here.
async fn stage_atomic(
    stream: &Arc<str>,
    record: PendingRecord,
    sinks: &Sinks,
) -> Option<Vec<PendingRecord>> {
    let reply = record.reply.clone();
    let refuse = |error: ApiError| {
        if let Some(reply) = reply.as_deref() {
            sinks
                .acks
                .deliver(reply, stream, PublishOutcome::Failed(error));
        }
        None
    };
    let Some(entry) = catalog_entry(&sinks.catalog, stream).await else {
        return refuse(ApiError::stream_not_found());
    };
    let map = match HeaderMap::parse(&record.headers) {
        Ok(map) => map,
        Err(_) => return refuse(ApiError::atomic_publish_incomplete_batch()),
    };
    let Some(id) = atomic::batch_id(&map).map(str::to_owned) else {
        return refuse(ApiError::atomic_publish_missing_seq());
    };
    let staged = match sinks.atomic.lock() {
        Ok(mut batches) => batches.stage(&entry.config, &id, &map, record, Instant::now()),
        Err(_) => Staged::Refused(ApiError::atomic_publish_incomplete_batch()),
    };
    match staged {
        Staged::Held { reply } => {
            if let Some(reply) = reply.as_deref() {
                stream_home(&sinks.broker, stream)
                    .0
                    .publish(reply, None, None, Bytes::new());
            }
            None
        }
        Staged::Commit(records) => Some(records),
        Staged::Refused(error) => refuse(error),
    }
}

/// How long a publish forwarded by another agent waits for this agent's catalog to
/// list its stream (the catalog refreshes every second).
const CATALOG_WAIT: Duration = Duration::from_secs(3);

/// The stream's catalog entry; a stream just created through another agent may not be
/// listed yet, so a miss waits for the catalog to change, up to [`CATALOG_WAIT`].
async fn catalog_entry(catalog: &StreamCatalog, stream: &str) -> Option<StreamEntry> {
    let mut changes = catalog.watch();
    let found = tokio::time::timeout(CATALOG_WAIT, async {
        loop {
            if let Some(entry) = catalog.get(stream) {
                return Some(entry);
            }
            if changes.changed().await.is_err() {
                return None;
            }
        }
    })
    .await;
    found.ok().flatten()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Reads the publish headers into the commit metadata. Values the control plane must
/// refuse (an invalid `Nats-TTL` or `Nats-Rollup`) travel with the record, so it
/// answers them at nats-server's point in its checks, after de-duplication and the
/// expected-* headers.
pub fn record_from(stream: &Arc<str>, msg: InternalMsg) -> Result<PendingRecord, ApiError> {
    let mut meta = v1::RecordMeta::default();
    let mut raw_headers = msg.headers.unwrap_or_default();
    if !raw_headers.is_empty() {
        let map = HeaderMap::parse(&raw_headers).map_err(|e| {
            ApiError::with_description(
                infinistream_protocol::jsapi::codes::BAD_REQUEST,
                format!("bad request: invalid message headers: {e}"),
            )
        })?;
        meta.msg_id = map
            .get(headers::MSG_ID)
            .filter(|v| !v.is_empty())
            .map(str::to_owned);
        meta.expected_stream = map.get(headers::EXPECTED_STREAM).map(str::to_owned);
        meta.expected_last_seq = map
            .get(headers::EXPECTED_LAST_SEQ)
            .and_then(|v| v.trim().parse().ok());
        meta.expected_last_subject_seq = map
            .get(headers::EXPECTED_LAST_SUBJ_SEQ)
            .and_then(|v| v.trim().parse().ok());
        meta.expected_last_subject_seq_subject = map
            .get(headers::EXPECTED_LAST_SUBJ_SEQ_SUBJ)
            .filter(|v| !v.is_empty())
            .map(str::to_owned);
        meta.expected_last_msg_id = map.get(headers::EXPECTED_LAST_MSG_ID).map(str::to_owned);
        meta.rollup = match map.get(headers::ROLLUP).and_then(parse_rollup) {
            None => v1::Rollup::None,
            Some(Rollup::Subject) => v1::Rollup::Subject,
            Some(Rollup::All) => v1::Rollup::All,
            Some(Rollup::Invalid(value)) => {
                meta.rollup_invalid = Some(value);
                v1::Rollup::None
            }
        } as i32;
        if let Some(ttl) = map.get(headers::TTL) {
            // An invalid value goes as 0, which the control plane answers with 10165.
            meta.ttl_seconds = match parse_message_ttl(ttl) {
                Ok(None) => None,
                Ok(Some(MessageTtl::Never)) => Some(-1),
                Ok(Some(MessageTtl::Seconds(secs))) => {
                    Some(i64::try_from(secs).unwrap_or(i64::MAX))
                }
                Err(_) => Some(0),
            };
        }
        if let Some(value) = map.get(headers::INCR).filter(|v| !v.is_empty()) {
            read_incr(&mut meta, &map, value, msg.payload.is_empty());
        }
        let schedule = ScheduleHeaders::from_headers(&map);
        // nats-server stores a schedule with `Nats-Rollup: sub` added when the publisher
        // set none (a refused schedule is not stored, so adding it early changes nothing).
        if schedule
            .as_ref()
            .is_some_and(|h| h.pattern.as_deref().is_some_and(|p| !p.is_empty()))
            && map.get(headers::ROLLUP).is_none_or(str::is_empty)
        {
            let mut map = map;
            map.append(headers::ROLLUP, headers::ROLLUP_SUBJECT);
            raw_headers = map.to_bytes();
        }
        meta.schedule = schedule.map(schedule_headers_to_proto);
    }
    Ok(PendingRecord {
        stream: stream.clone(),
        subject: msg.subject.into_bytes(),
        headers: raw_headers,
        payload: msg.payload,
        meta,
        reply: msg.reply,
        batch: None,
    })
}

/// `Nats-Incr` as nats-server's pre-checks read it: an integer, on a message without
/// a payload and without the headers a counter refuses (Nats-Rollup, Nats-Expected-*).
/// What is wrong travels as `incr_problem`, answered by the control plane in its order
/// (after it knows the stream counts at all).
fn read_incr(meta: &mut v1::RecordMeta, map: &HeaderMap, value: &str, no_payload: bool) {
    let Some(incr) = counter::parse_incr(value) else {
        meta.incr_problem = v1::IncrProblem::Invalid as i32;
        return;
    };
    let refused = [
        headers::ROLLUP,
        headers::EXPECTED_STREAM,
        headers::EXPECTED_LAST_MSG_ID,
        headers::EXPECTED_LAST_SUBJ_SEQ_SUBJ,
    ]
    .iter()
    .any(|h| map.get(h).is_some_and(|v| !v.is_empty()))
        || [headers::EXPECTED_LAST_SEQ, headers::EXPECTED_LAST_SUBJ_SEQ]
            .iter()
            .any(|h| map.get(h).is_some_and(|v| v.trim().parse::<u64>().is_ok()));
    meta.incr_problem = if !no_payload {
        v1::IncrProblem::Payload
    } else if refused {
        v1::IncrProblem::Invalid
    } else {
        v1::IncrProblem::None
    } as i32;
    meta.incr = Some(incr);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The commit metadata of a publish to `s` with one header.
    fn meta_with(name: &str, value: &str) -> v1::RecordMeta {
        let mut map = HeaderMap::new();
        map.insert(name, value);
        let msg = InternalMsg {
            subject: "s".into(),
            reply: None,
            headers: Some(map.to_bytes()),
            payload: Bytes::new(),
            client_id: 1,
            capture_stream: None,
        };
        record_from(&Arc::from("S"), msg)
            .expect("headers never fail the intake")
            .meta
    }

    /// `Nats-Incr` with other headers and a payload, as the intake reads it.
    fn incr_meta(headers: &[(&str, &str)], payload: &'static [u8]) -> v1::RecordMeta {
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.insert(*k, *v);
        }
        let msg = InternalMsg {
            subject: "s".into(),
            reply: None,
            headers: Some(map.to_bytes()),
            payload: Bytes::from_static(payload),
            client_id: 1,
            capture_stream: None,
        };
        record_from(&Arc::from("S"), msg)
            .expect("headers never fail the intake")
            .meta
    }

    /// The increment travels canonical; what only the agent sees (a payload, a header
    /// a counter refuses, an unparsable value) travels as the problem the control
    /// plane answers in nats-server's order.
    #[test]
    fn incr_forms() {
        let read = |h: &[(&str, &str)], p: &'static [u8]| {
            let m = incr_meta(h, p);
            (m.incr, v1::IncrProblem::try_from(m.incr_problem).ok())
        };
        let none = Some(v1::IncrProblem::None);
        assert_eq!(
            read(&[(headers::INCR, "+5")], b""),
            (Some("5".into()), none)
        );
        assert_eq!(
            read(&[(headers::INCR, "-0")], b""),
            (Some("0".into()), none)
        );
        assert_eq!(read(&[(headers::INCR, "")], b""), (None, none));
        assert_eq!(
            read(&[(headers::INCR, "1.5")], b""),
            (None, Some(v1::IncrProblem::Invalid))
        );
        assert_eq!(
            read(&[(headers::INCR, "1")], b"body"),
            (Some("1".into()), Some(v1::IncrProblem::Payload))
        );
        for refused in [
            (headers::ROLLUP, "sub"),
            (headers::EXPECTED_LAST_SEQ, "3"),
            (headers::EXPECTED_LAST_SUBJ_SEQ, "0"),
            (headers::EXPECTED_STREAM, "S"),
            (headers::EXPECTED_LAST_MSG_ID, "m"),
        ] {
            assert_eq!(
                read(&[(headers::INCR, "1"), refused], b""),
                (Some("1".into()), Some(v1::IncrProblem::Invalid)),
                "{refused:?}"
            );
        }
    }

    fn ttl_of(value: &str) -> Option<i64> {
        meta_with(headers::TTL, value).ttl_seconds
    }

    /// `Nats-TTL` as nats-server reads it: invalid values travel as 0 for the control
    /// plane to refuse (10165) in its order; sub-second durations are invalid, not 1 s.
    #[test]
    fn ttl_forms() {
        assert_eq!(ttl_of("30"), Some(30));
        assert_eq!(ttl_of("1m30s"), Some(90));
        assert_eq!(ttl_of("1.9s"), Some(1));
        assert_eq!(ttl_of("never"), Some(-1));
        assert_eq!(ttl_of("2h"), Some(7200));
        assert_eq!(ttl_of("500ms"), Some(0));
        assert_eq!(ttl_of("0"), Some(0));
        assert_eq!(ttl_of("soon"), Some(0));
        assert_eq!(ttl_of(""), None);
    }

    #[test]
    fn headers_become_commit_metadata() {
        let mut map = HeaderMap::new();
        map.insert(headers::MSG_ID, "abc");
        map.insert(headers::EXPECTED_LAST_SEQ, "7");
        map.insert(headers::ROLLUP, "sub");
        map.insert(headers::TTL, "10s");
        let msg = InternalMsg {
            subject: "orders.1".into(),
            reply: Some("_INBOX.1".into()),
            headers: Some(map.to_bytes()),
            payload: Bytes::from_static(b"x"),
            client_id: 1,
            capture_stream: None,
        };
        let record = record_from(&Arc::from("ORDERS"), msg).expect("valid");
        assert_eq!(record.meta.msg_id.as_deref(), Some("abc"));
        assert_eq!(record.meta.expected_last_seq, Some(7));
        assert_eq!(record.meta.rollup, v1::Rollup::Subject as i32);
        assert_eq!(record.meta.ttl_seconds, Some(10));
        assert_eq!(record.reply.as_deref(), Some("_INBOX.1"));
    }

    /// The control plane refuses an invalid rollup (after the checks nats-server runs
    /// first); the intake only carries it, lowercased as nats-server reports it.
    #[test]
    fn bad_rollup_travels_to_the_control_plane() {
        let meta = meta_with(headers::ROLLUP, "Everything");
        assert_eq!(meta.rollup, v1::Rollup::None as i32);
        assert_eq!(meta.rollup_invalid.as_deref(), Some("everything"));
    }
}
