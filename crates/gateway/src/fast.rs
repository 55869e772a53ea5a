//! Fast-ingest batch publish (nats-server 2.14, `allow_batched`) on the produce agent.
//!
//! Unlike an atomic batch, a fast batch is not held: each message is stored on its
//! own, through the ordinary buffer and commit, and the batch only paces the client.
//! The reply subject carries the batch (`jsapi::fast_batch`). This module is the pure
//! state of every fast batch the agent serves, fed from two sides:
//!
//! 1. [`FastBatches::on_message`], when the intake takes a message, in nats-server's
//!    order of `processJetStreamFastBatchMsg`: size (10054), disabled (10205), pattern
//!    (10206), id over 64 bytes (10207), unknown batch (10208), too many in flight
//!    (10211), required API level (10185); then a ping, a message of a batch already
//!    committing (skipped), gaps (reported; mode `ok` goes on, `fail` ends the batch),
//!    the commit, and the first flow ack (`{"type":"ack","seq":0,…}`) for message 1;
//! 2. [`FastBatches::on_answer`], when the batcher answers a message after its commit
//!    (the answers of one agent come in commit order). The persisted sequence moves
//!    on, a flow ack is sent each time it passes the next multiple of the flow (so one
//!    flush's commit can bring one), and once the batch is committing and nothing is
//!    pending, the PubAck `{"stream","seq","batch","count"}` ends it. A message the
//!    control plane refuses gets `{"type":"err",…}`; in mode `fail` it ends the batch
//!    at the message before with the PubAck at once (a refused first message gets a
//!    plain PubAck error).
//!
//! nats-server checks a message's headers before it takes the next one; here the
//! control plane checks them at commit, after later messages may have been taken. In
//! mode `fail` those are still not stored: each record carries its batch
//! (`fail_batch`), the control plane refuses a batch's records after its refused one
//! in the same chunk, and the batcher sends later flushes' records of that batch
//! `withdrawn` (refused unstored); their answers are nats-server's for a message after
//! the batch ended (10208, unknown batch). A message the batcher refuses itself (over
//! the publish buffer) is queued as a refusal in its place (`batcher::Refusal`), so its
//! answer also comes after the earlier messages' and the later ones are withdrawn.
//! The intake holds one ordering lock from this module's decision until the message
//! (or its refusal) is in the batcher's queue, so the queue keeps this module's order
//! even for a batch whose subjects are captured by two tasks. What that lock cannot
//! give: the order in which two capture tasks (one per stream subject) reach
//! `on_message` is theirs, not the client's, so a batch publishing on two subjects of
//! a stream can see a message before the one the client sent first (a gap here).
//!
//! Flow: each batch gets its client's flow up to what one flush carries ([`flow_for`]),
//! and when a flush ends a client waiting on its whole window gets an ack for what is
//! persisted ([`FastBatches::on_flush`]).
//!
//! Bounds, as nats-server's defaults: 1,000 batches in flight per stream, 50,000 per
//! agent, and a batch with no message for 10 s (and not committing) is dropped,
//! checked when a message arrives: a later message of it answers 10208.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use infinistream_protocol::jsapi::ApiError;
use infinistream_protocol::jsapi::fast_batch::{
    self, BatchFlow, FastBatchOp, FastBatchReply, MAX_INFLIGHT_PER_STREAM, MAX_INFLIGHT_TOTAL,
};
use infinistream_protocol::jsapi::msg::{PubAck, render_pub_ack};
use infinistream_protocol::jsapi::stream::StreamConfig;
use infinistream_protocol::jsapi::versioning::refuses_required_api_level;

use crate::batcher::PublishOutcome;

/// A batch with no message for this long is dropped (nats-server's batch timeout).
pub const BATCH_TIMEOUT: Duration = Duration::from_secs(10);

/// The bytes one batch's flow may cover: a client sends at most two flows past the last
/// flow ack, so two flows of a batch fit one object of the batcher's size cap (4 MiB).
pub const FLOW_BYTES: usize = 2 * 1024 * 1024;

/// The flow of a batch whose first message has `message_len` bytes: what the client
/// allows, up to [`FLOW_BYTES`] of such messages.
///
/// nats-server shares its flow cap (500) among a stream's batches and ramps a new one
/// up from 1: its acks follow each message, so a small flow costs it little. Here acks
/// follow commits, one flush apart, so a batch moves at most two flows per flush: a
/// shared, ramped flow (62 messages with 8 batches on a stream) held 8 batches at 0.06×
/// nats-server. So each batch gets its own flow, sized to what one flush carries; the
/// agent's byte-bounded publish buffer, not the flow, bounds what all batches hold.
pub fn flow_for(client_flow: u16, message_len: usize) -> u16 {
    let fits = u16::try_from(FLOW_BYTES / message_len.max(1)).unwrap_or(u16::MAX);
    client_flow.min(fits).max(1)
}

/// A message to publish: its subject and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Out {
    pub subject: String,
    pub payload: Vec<u8>,
}

/// What the intake does with a fast batch message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Take {
    /// Store it (remove `Nats-Required-Api-Level` first when `strip_level`).
    Submit { strip_level: bool },
    /// Answered (or skipped) here; nothing to store.
    Done,
}

/// A message as the intake read it, for [`FastBatches::on_message`].
#[derive(Debug, Clone, Copy)]
pub struct Incoming<'a> {
    pub stream: &'a Arc<str>,
    pub reply: &'a str,
    pub header_len: usize,
    pub payload_len: usize,
    /// The `Nats-Required-Api-Level` value, if the message has one.
    pub required_level: Option<&'a str>,
}

#[derive(Debug)]
struct Batch {
    gap_ok: bool,
    /// Messages between flow acks (see [`flow_for`]).
    flow: u16,
    /// Highest batch sequence taken (or skipped over by a gap).
    lseq: u64,
    /// Highest batch sequence answered.
    pseq: u64,
    /// Batch sequence of the last flow ack.
    fseq: u64,
    /// Stream sequence of the last stored message.
    sseq: u64,
    /// Messages taken and not answered yet.
    pending: u64,
    committing: bool,
    /// Where flow acks go: the reply of the latest message.
    reply: String,
    last_seen: Instant,
    /// Answered since the last flush ended (listed in `FastBatches::flushed`).
    answered_in_flush: bool,
}

/// Every fast batch this agent serves. Pure: time is passed in.
#[derive(Debug, Default)]
pub struct FastBatches {
    batches: HashMap<(Arc<str>, String), Batch>,
    per_stream: HashMap<Arc<str>, usize>,
    /// Batches answered since the last flush ended ([`FastBatches::on_flush`]).
    flushed: Vec<(Arc<str>, String)>,
}

fn refusal(stream: &str, reply: &str, error: ApiError) -> Out {
    Out {
        subject: reply.to_owned(),
        payload: render_pub_ack(&Err((stream.to_owned(), error))),
    }
}

fn flow(reply: &str, message: BatchFlow) -> Out {
    Out {
        subject: reply.to_owned(),
        payload: message.render(),
    }
}

impl FastBatches {
    pub fn new() -> Self {
        Self::default()
    }

    /// Batches in flight.
    pub fn len(&self) -> usize {
        self.batches.len()
    }

    pub fn is_empty(&self) -> bool {
        self.batches.is_empty()
    }

    /// Takes a message whose reply subject ends in `.$FI` (`parsed` is that subject
    /// read); returns what to publish now and whether to store the message.
    pub fn on_message(
        &mut self,
        config: &StreamConfig,
        msg: Incoming<'_>,
        parsed: Result<FastBatchReply<'_>, ApiError>,
        now: Instant,
    ) -> (Take, Vec<Out>) {
        let stream = msg.stream;
        let reply = msg.reply;
        let refuse = |error: ApiError| (Take::Done, vec![refusal(stream, reply, error)]);
        if config.max_msg_size >= 0 {
            let max = usize::try_from(config.max_msg_size).unwrap_or(usize::MAX);
            if msg.header_len > max || msg.payload_len > max - msg.header_len {
                return refuse(ApiError::stream_message_exceeds_maximum());
            }
        }
        if !config.allow_batch_publish {
            return refuse(ApiError::batch_publish_disabled());
        }
        let batch = match parsed {
            Ok(batch) => batch,
            Err(error) => return refuse(error),
        };
        if batch.id.len() > fast_batch::MAX_ID_LEN {
            return refuse(ApiError::batch_publish_invalid_batch_id());
        }
        let key = (stream.clone(), batch.id.to_owned());
        if self
            .batches
            .get(&key)
            .is_some_and(|b| !b.committing && idle(b, now))
        {
            self.remove(&key);
        }
        if !self.batches.contains_key(&key) {
            if batch.seq != 1 {
                return refuse(ApiError::batch_publish_unknown_batch_id());
            }
            self.sweep(now);
            if self.per_stream.get(stream).copied().unwrap_or(0) + 1 > MAX_INFLIGHT_PER_STREAM
                || self.batches.len() + 1 > MAX_INFLIGHT_TOTAL
            {
                return refuse(ApiError::batch_publish_too_many_inflight());
            }
            *self.per_stream.entry(stream.clone()).or_default() += 1;
            self.batches.insert(
                key.clone(),
                Batch {
                    gap_ok: batch.gap_ok,
                    flow: flow_for(batch.flow, msg.header_len + msg.payload_len),
                    lseq: 0,
                    pseq: 0,
                    fseq: 0,
                    sseq: 0,
                    pending: 0,
                    committing: false,
                    reply: reply.to_owned(),
                    last_seen: now,
                    answered_in_flush: false,
                },
            );
        }
        let strip_level = msg.required_level.is_some();
        if refuses_required_api_level(msg.required_level) {
            self.remove(&key);
            return refuse(ApiError::required_api_level());
        }
        let Some(b) = self.batches.get_mut(&key) else {
            return refuse(ApiError::batch_publish_unknown_batch_id());
        };
        b.last_seen = now;
        let mut out = Vec::new();
        if batch.op == FastBatchOp::Ping {
            if batch.seq > b.lseq {
                out.push(flow(
                    reply,
                    BatchFlow::Gap {
                        last_seq: b.lseq + 1,
                        seq: batch.seq + 1,
                    },
                ));
                if b.gap_ok {
                    b.lseq = batch.seq;
                    if b.pending == 0 {
                        b.pseq = b.lseq;
                    }
                    match check_flow(b, reply) {
                        Some(ack) => out.push(ack),
                        None => out.push(flow_ack(b, reply)),
                    }
                } else {
                    self.commit(&key, stream, reply, &mut out);
                }
            } else {
                out.push(flow_ack(b, reply));
            }
            return (Take::Done, out);
        }
        if b.committing {
            // Ending (a gap or an error in mode `fail`): the client waits for the PubAck.
            return (Take::Done, out);
        }
        let expected = b.lseq + 1;
        if batch.seq != expected {
            if batch.seq > expected {
                out.push(flow(
                    reply,
                    BatchFlow::Gap {
                        last_seq: expected,
                        seq: batch.seq,
                    },
                ));
            }
            if !(b.gap_ok && batch.seq > expected) {
                self.commit(&key, stream, reply, &mut out);
                return (Take::Done, out);
            }
        }
        b.lseq = batch.seq;
        match batch.op {
            FastBatchOp::CommitEob => {
                // The eob message ends the batch at the one before and is not stored.
                b.lseq -= 1;
                self.commit(&key, stream, reply, &mut out);
                return (Take::Done, out);
            }
            FastBatchOp::Commit => b.committing = true,
            FastBatchOp::Start if batch.seq == 1 => out.push(flow(
                reply,
                BatchFlow::Ack {
                    seq: 0,
                    msgs: b.flow,
                },
            )),
            _ => {}
        }
        b.pending += 1;
        b.reply = reply.to_owned();
        (Take::Submit { strip_level }, out)
    }

    /// The batcher's answer to a message this module let through (`reply` is its
    /// reply subject, `batch` that subject read); returns what to publish.
    pub fn on_answer(
        &mut self,
        stream: &str,
        reply: &str,
        batch: &FastBatchReply<'_>,
        outcome: PublishOutcome,
    ) -> Vec<Out> {
        let key = (Arc::<str>::from(stream), batch.id.to_owned());
        let Some(b) = self.batches.get_mut(&key) else {
            // A message taken after its batch (gap mode `fail`) ended at a refused one:
            // the control plane refused it as of an unknown batch, which is what
            // nats-server answers a message arriving after that end.
            return match outcome {
                PublishOutcome::Failed(error)
                    if error.err_code == ApiError::batch_publish_unknown_batch_id().err_code =>
                {
                    vec![refusal(stream, reply, error)]
                }
                _ => Vec::new(),
            };
        };
        b.pending = b.pending.saturating_sub(1);
        b.reply = reply.to_owned();
        let mut out = Vec::new();
        if batch.seq > b.lseq {
            // Taken before the batch ended at an earlier message: not counted.
            if b.committing && b.pending == 0 {
                self.finish(&key, stream, reply, &mut out);
            }
            return out;
        }
        let commit_message = batch.op == FastBatchOp::Commit;
        match outcome {
            PublishOutcome::Stored { seq }
            | PublishOutcome::BatchStored { seq, .. }
            | PublishOutcome::Counted { seq, .. } => b.sseq = b.sseq.max(seq),
            PublishOutcome::Duplicate { seq } => {
                if commit_message && !b.gap_ok && batch.seq == 1 {
                    // A batch of one duplicate message: the duplicate's PubAck.
                    out.push(Out {
                        subject: reply.to_owned(),
                        payload: render_pub_ack(&Ok(PubAck {
                            batch_id: batch.id.to_owned(),
                            batch_size: 1,
                            ..PubAck::duplicate(stream, seq)
                        })),
                    });
                    self.remove(&key);
                    return out;
                }
            }
            PublishOutcome::Failed(error) => {
                if !b.gap_ok && batch.seq == 1 {
                    // The first message failing answers as a plain publish would.
                    out.push(refusal(stream, reply, error));
                    self.remove(&key);
                    return out;
                }
                out.push(flow(
                    reply,
                    BatchFlow::Err {
                        seq: batch.seq,
                        error,
                    },
                ));
                if !b.gap_ok || commit_message {
                    // The batch ends at the message before this one, at once, as
                    // nats-server's does: every earlier message is answered (answers
                    // come in commit order), and the later ones taken are refused by
                    // the control plane (`fail_batch`) and answered as of an unknown
                    // batch above.
                    b.lseq = batch.seq - 1;
                    self.finish(&key, stream, reply, &mut out);
                    return out;
                }
            }
        }
        b.pseq = if b.pending == 0 { b.lseq } else { batch.seq };
        if b.committing && b.pending == 0 {
            self.finish(&key, stream, reply, &mut out);
            return out;
        }
        if let Some(ack) = check_flow(b, reply) {
            out.push(ack);
        }
        if !b.answered_in_flush {
            b.answered_in_flush = true;
            self.flushed.push(key);
        }
        out
    }

    /// A flush has answered all its messages: a batch whose client has used its whole
    /// window (two flows past the last flow ack) gets a flow ack for what is persisted
    /// now, so it can send on into the next flush rather than wait one more flush for
    /// the next multiple of its flow. Batches that are not waiting get nothing extra,
    /// so a client that keeps within its window sees nats-server's acks.
    pub fn on_flush(&mut self) -> Vec<Out> {
        let mut out = Vec::new();
        for key in std::mem::take(&mut self.flushed) {
            let Some(b) = self.batches.get_mut(&key) else {
                continue;
            };
            b.answered_in_flush = false;
            let every = u64::from(b.flow.max(1));
            if !b.committing && b.pseq > b.fseq && b.lseq >= b.fseq + 2 * every {
                b.fseq = b.pseq;
                out.push(flow_ack(b, &b.reply));
            }
        }
        out
    }

    /// Marks the batch committing; answers its PubAck at once when nothing is pending.
    fn commit(&mut self, key: &(Arc<str>, String), stream: &str, reply: &str, out: &mut Vec<Out>) {
        let Some(b) = self.batches.get_mut(key) else {
            return;
        };
        b.committing = true;
        if b.pending == 0 {
            self.finish(key, stream, reply, out);
        }
    }

    /// The PubAck that ends a batch: the last stored stream sequence and the count.
    fn finish(&mut self, key: &(Arc<str>, String), stream: &str, reply: &str, out: &mut Vec<Out>) {
        let Some(b) = self.remove(key) else {
            return;
        };
        out.push(Out {
            subject: reply.to_owned(),
            payload: render_pub_ack(&Ok(PubAck {
                batch_id: key.1.clone(),
                batch_size: b.lseq,
                ..PubAck::new(stream, b.sseq)
            })),
        });
    }

    /// Drops batches idle for [`BATCH_TIMEOUT`] that are not committing.
    pub fn sweep(&mut self, now: Instant) {
        let expired: Vec<(Arc<str>, String)> = self
            .batches
            .iter()
            .filter(|(_, b)| !b.committing && idle(b, now))
            .map(|(k, _)| k.clone())
            .collect();
        for key in expired {
            tracing::debug!(stream = %key.0, batch = %key.1, "fast batch dropped: timeout");
            self.remove(&key);
        }
    }

    fn remove(&mut self, key: &(Arc<str>, String)) -> Option<Batch> {
        let batch = self.batches.remove(key)?;
        if let Some(n) = self.per_stream.get_mut(&key.0) {
            *n -= 1;
            if *n == 0 {
                self.per_stream.remove(&key.0);
            }
        }
        Some(batch)
    }
}

fn idle(b: &Batch, now: Instant) -> bool {
    now.saturating_duration_since(b.last_seen) >= BATCH_TIMEOUT
}

fn flow_ack(b: &Batch, reply: &str) -> Out {
    flow(
        reply,
        BatchFlow::Ack {
            seq: b.fseq,
            msgs: b.flow,
        },
    )
}

/// A flow ack once the persisted sequence passed the next multiple of the flow
/// (skipping to the last one passed).
fn check_flow(b: &mut Batch, reply: &str) -> Option<Out> {
    let every = u64::from(b.flow.max(1));
    if b.pseq < b.fseq + every {
        return None;
    }
    b.fseq += (b.pseq - b.fseq) / every * every;
    Some(flow_ack(b, reply))
}

#[cfg(test)]
mod tests {
    use infinistream_protocol::jsapi::fast_batch::parse_fast_batch_reply;
    use infinistream_protocol::jsapi::msg::parse_pub_ack;

    use super::*;

    fn config() -> StreamConfig {
        StreamConfig {
            name: "FB".into(),
            allow_batch_publish: true,
            ..Default::default()
        }
    }

    fn reply(id: &str, seq: u64, op: u8, flow: u16, gap: &str) -> String {
        format!("in.{id}.{flow}.{gap}.{seq}.{op}.$FI")
    }

    struct Client {
        fast: FastBatches,
        stream: Arc<str>,
        config: StreamConfig,
        /// Taken and not answered: their replies.
        taken: Vec<String>,
        next_seq: u64,
        now: Instant,
    }

    impl Client {
        fn new() -> Self {
            Client {
                fast: FastBatches::new(),
                stream: Arc::from("FB"),
                config: config(),
                taken: Vec::new(),
                next_seq: 1,
                now: Instant::now(),
            }
        }

        fn publish(&mut self, reply: &str) -> Vec<String> {
            let parsed = parse_fast_batch_reply(reply).expect("a fast batch reply");
            let (take, out) = self.fast.on_message(
                &self.config,
                Incoming {
                    stream: &self.stream,
                    reply,
                    header_len: 0,
                    payload_len: 1,
                    required_level: None,
                },
                parsed,
                self.now,
            );
            if let Take::Submit { .. } = take {
                self.taken.push(reply.to_owned());
            }
            bodies(out)
        }

        /// The batcher answers every taken message: stored, or `fail(seq)`.
        fn answer(&mut self, fail: impl Fn(u64) -> Option<PublishOutcome>) -> Vec<String> {
            let mut all = Vec::new();
            for reply in std::mem::take(&mut self.taken) {
                let parsed = parse_fast_batch_reply(&reply)
                    .and_then(Result::ok)
                    .expect("valid");
                let outcome = fail(parsed.seq).unwrap_or_else(|| {
                    let seq = self.next_seq;
                    self.next_seq += 1;
                    PublishOutcome::Stored { seq }
                });
                all.extend(bodies(self.fast.on_answer("FB", &reply, &parsed, outcome)));
            }
            all
        }
    }

    fn bodies(out: Vec<Out>) -> Vec<String> {
        out.into_iter()
            .map(|o| String::from_utf8(o.payload).expect("utf-8"))
            .collect()
    }

    /// The cases of the probe against nats-server 2.15.1 (see jetstream_batch.rs),
    /// each with the answers it gave.
    #[test]
    fn answers_as_nats_server() {
        let mut c = Client::new();
        assert_eq!(
            c.publish(&reply("d", 1, 2, 0, "fail")),
            Vec::<String>::new()
        );
        assert_eq!(
            c.answer(|_| None),
            vec![r#"{"stream":"FB","seq":1,"batch":"d","count":1}"#]
        );
        // Five messages, the last one commits.
        let mut got = c.publish(&reply("e", 1, 0, 0, "fail"));
        for seq in 2..5 {
            got.extend(c.publish(&reply("e", seq, 1, 0, "fail")));
        }
        got.extend(c.publish(&reply("e", 5, 2, 0, "fail")));
        got.extend(c.answer(|_| None));
        assert_eq!(
            got,
            vec![
                r#"{"type":"ack","seq":0,"msgs":10}"#,
                r#"{"stream":"FB","seq":6,"batch":"e","count":5}"#
            ]
        );
        // A gap in mode fail ends the batch at what was stored.
        let mut got = c.publish(&reply("g", 1, 0, 0, "fail"));
        got.extend(c.publish(&reply("g", 3, 1, 0, "fail")));
        got.extend(c.answer(|_| None));
        assert_eq!(
            got,
            vec![
                r#"{"type":"ack","seq":0,"msgs":10}"#,
                r#"{"type":"gap","last_seq":2,"seq":3}"#,
                r#"{"stream":"FB","seq":7,"batch":"g","count":1}"#
            ]
        );
        // Mode ok goes on; eob commits.
        let mut got = c.publish(&reply("h", 1, 0, 0, "ok"));
        got.extend(c.publish(&reply("h", 3, 1, 0, "ok")));
        got.extend(c.answer(|_| None));
        got.extend(c.publish(&reply("h", 4, 3, 0, "ok")));
        assert_eq!(
            got,
            vec![
                r#"{"type":"ack","seq":0,"msgs":10}"#,
                r#"{"type":"gap","last_seq":2,"seq":3}"#,
                r#"{"stream":"FB","seq":9,"batch":"h","count":3}"#
            ]
        );
        // Flow 2: acks at 2, 4, 6, whether answers come one by one or together.
        for one_by_one in [true, false] {
            let mut got = Vec::new();
            for seq in 1..8 {
                got.extend(c.publish(&reply("i", seq, u8::from(seq != 1), 2, "fail")));
                if one_by_one {
                    got.extend(c.answer(|_| None));
                }
            }
            got.extend(c.publish(&reply("i", 8, 3, 2, "fail")));
            got.extend(c.answer(|_| None));
            let last = c.next_seq - 1;
            assert_eq!(
                got,
                vec![
                    r#"{"type":"ack","seq":0,"msgs":2}"#.to_owned(),
                    r#"{"type":"ack","seq":2,"msgs":2}"#.to_owned(),
                    r#"{"type":"ack","seq":4,"msgs":2}"#.to_owned(),
                    r#"{"type":"ack","seq":6,"msgs":2}"#.to_owned(),
                    format!(r#"{{"stream":"FB","seq":{last},"batch":"i","count":7}}"#),
                ],
                "one by one: {one_by_one}"
            );
        }
        assert!(c.fast.is_empty());
    }

    #[test]
    fn pings_errors_and_duplicates_as_nats_server() {
        let mut c = Client::new();
        let mut got = c.publish(&reply("j", 1, 0, 0, "fail"));
        got.extend(c.publish(&reply("j", 1, 4, 0, "fail")));
        got.extend(c.publish(&reply("j", 5, 4, 0, "fail")));
        got.extend(c.answer(|_| None));
        assert_eq!(
            got,
            vec![
                r#"{"type":"ack","seq":0,"msgs":10}"#,
                r#"{"type":"ack","seq":0,"msgs":10}"#,
                r#"{"type":"gap","last_seq":2,"seq":6}"#,
                r#"{"stream":"FB","seq":1,"batch":"j","count":1}"#
            ]
        );
        let wrong = || PublishOutcome::Failed(ApiError::stream_wrong_last_sequence(1));
        // Mode fail: the error, then the PubAck up to the message before; the batch
        // is gone for the next message.
        let mut got = c.publish(&reply("p", 1, 0, 0, "fail"));
        got.extend(c.publish(&reply("p", 2, 1, 0, "fail")));
        got.extend(c.answer(|seq| (seq == 2).then(wrong)));
        got.extend(c.publish(&reply("p", 3, 2, 0, "fail")));
        assert_eq!(
            got,
            vec![
                r#"{"type":"ack","seq":0,"msgs":10}"#,
                r#"{"type":"err","seq":2,"error":{"code":400,"err_code":10071,"description":"wrong last sequence: 1"}}"#,
                r#"{"stream":"FB","seq":2,"batch":"p","count":1}"#,
                r#"{"error":{"code":400,"err_code":10208,"description":"batch publish ID unknown"},"stream":"FB","seq":0}"#
            ]
        );
        // Mode fail with later messages already taken: the PubAck at once, and those
        // (refused by the control plane as of the ended batch) answer 10208, as
        // nats-server answers messages arriving after the end; nothing of them stored.
        let mut c2 = Client::new();
        let mut got = c2.publish(&reply("p2", 1, 0, 0, "fail"));
        got.extend(c2.publish(&reply("p2", 2, 1, 0, "fail")));
        got.extend(c2.publish(&reply("p2", 3, 1, 0, "fail")));
        got.extend(c2.publish(&reply("p2", 4, 2, 0, "fail")));
        got.extend(c2.answer(|seq| match seq {
            2 => Some(wrong()),
            3 | 4 => Some(PublishOutcome::Failed(
                ApiError::batch_publish_unknown_batch_id(),
            )),
            _ => None,
        }));
        let unknown = r#"{"error":{"code":400,"err_code":10208,"description":"batch publish ID unknown"},"stream":"FB","seq":0}"#;
        assert_eq!(
            got,
            vec![
                r#"{"type":"ack","seq":0,"msgs":10}"#,
                r#"{"type":"err","seq":2,"error":{"code":400,"err_code":10071,"description":"wrong last sequence: 1"}}"#,
                r#"{"stream":"FB","seq":1,"batch":"p2","count":1}"#,
                unknown,
                unknown,
            ]
        );
        // Mode ok: the error, and the batch goes on.
        let mut got = c.publish(&reply("q", 1, 0, 0, "ok"));
        got.extend(c.publish(&reply("q", 2, 1, 0, "ok")));
        got.extend(c.publish(&reply("q", 3, 2, 0, "ok")));
        got.extend(c.answer(|seq| (seq == 2).then(wrong)));
        assert_eq!(
            got,
            vec![
                r#"{"type":"ack","seq":0,"msgs":10}"#,
                r#"{"type":"err","seq":2,"error":{"code":400,"err_code":10071,"description":"wrong last sequence: 1"}}"#,
                r#"{"stream":"FB","seq":4,"batch":"q","count":3}"#
            ]
        );
        // A failing first message answers as a plain publish.
        let mut got = c.publish(&reply("r", 1, 0, 0, "fail"));
        got.extend(c.answer(|_| Some(wrong())));
        assert_eq!(
            got,
            vec![
                r#"{"type":"ack","seq":0,"msgs":10}"#,
                r#"{"error":{"code":400,"err_code":10071,"description":"wrong last sequence: 1"},"stream":"FB","seq":0}"#
            ]
        );
        // Duplicates count as persisted: the PubAck has the last stored sequence.
        let mut got = c.publish(&reply("s", 1, 0, 0, "fail"));
        got.extend(c.publish(&reply("s", 2, 1, 0, "fail")));
        got.extend(c.publish(&reply("s", 3, 2, 0, "fail")));
        got.extend(c.answer(|seq| (seq > 1).then_some(PublishOutcome::Duplicate { seq: 5 })));
        assert_eq!(
            got,
            vec![
                r#"{"type":"ack","seq":0,"msgs":10}"#,
                r#"{"stream":"FB","seq":5,"batch":"s","count":3}"#
            ]
        );
        assert!(c.fast.is_empty());
    }

    #[test]
    fn refusals_and_bounds() {
        let mut c = Client::new();
        let code = |out: Vec<String>| -> u16 {
            match parse_pub_ack(out[0].as_bytes()).expect("json") {
                Err(e) => e.err_code,
                Ok(ack) => panic!("not refused: {ack:?}"),
            }
        };
        assert_eq!(code(c.publish(&reply("u", 2, 1, 0, "fail"))), 10208);
        assert_eq!(
            code(c.publish(&reply(&"A".repeat(65), 1, 0, 0, "fail"))),
            10207
        );
        c.config.allow_batch_publish = false;
        assert_eq!(code(c.publish(&reply("x", 1, 0, 0, "fail"))), 10205);
        c.config.allow_batch_publish = true;
        // A second batch on the stream gets its own flow (not a share, see `flow_for`).
        assert_eq!(
            c.publish(&reply("a", 1, 0, 0, "fail")),
            vec![r#"{"type":"ack","seq":0,"msgs":10}"#]
        );
        assert_eq!(
            c.publish(&reply("b", 1, 0, 0, "fail")),
            vec![r#"{"type":"ack","seq":0,"msgs":10}"#]
        );
        // Idle batches are dropped after the timeout.
        c.answer(|_| None);
        c.now += BATCH_TIMEOUT;
        assert_eq!(code(c.publish(&reply("a", 2, 1, 0, "fail"))), 10208);
        assert_eq!(c.fast.len(), 1);
        c.publish(&reply("c", 1, 0, 0, "fail"));
        assert_eq!(c.fast.len(), 1, "the sweep dropped b");
    }

    #[test]
    fn flow_is_what_the_client_allows_up_to_what_a_flush_carries() {
        assert_eq!(flow_for(500, 1024), 500);
        assert_eq!(
            flow_for(500, 64 * 1024),
            32,
            "two flows of 64 KiB fill 4 MiB"
        );
        assert_eq!(flow_for(500, 16 * 1024 * 1024), 1);
        assert_eq!(flow_for(u16::MAX, 1), u16::MAX);
    }

    /// A client that used its whole window (two flows past the last ack) gets an ack
    /// for what is persisted when a flush ends; one within its window does not.
    #[test]
    fn a_waiting_client_gets_an_ack_per_flush() {
        let mut c = Client::new();
        let mut got = Vec::new();
        // Flow 4: the client may send up to 8 past the last ack (0).
        for seq in 1..=8 {
            got.extend(c.publish(&reply("w", seq, u8::from(seq != 1), 4, "fail")));
        }
        assert_eq!(got, vec![r#"{"type":"ack","seq":0,"msgs":4}"#]);
        // A flush stores 1..=3 and ends: no multiple of 4 passed, and the client,
        // having sent 8, waits: an ack for 3 lets it send up to 11.
        let taken = std::mem::take(&mut c.taken);
        c.taken = taken[..3].to_vec();
        let mut got = c.answer(|_| None);
        got.extend(bodies(c.fast.on_flush()));
        assert_eq!(got, vec![r#"{"type":"ack","seq":3,"msgs":4}"#]);
        // The next flush stores 4..=8: 7 passes the next multiple (3 + 4), and the
        // client (allowed up to 15) is not waiting: no ack at the flush's end.
        c.taken = taken[3..].to_vec();
        let mut got = c.answer(|_| None);
        got.extend(bodies(c.fast.on_flush()));
        assert_eq!(got, vec![r#"{"type":"ack","seq":7,"msgs":4}"#]);
        assert_eq!(c.fast.on_flush(), Vec::new(), "nothing answered since");
    }
}
