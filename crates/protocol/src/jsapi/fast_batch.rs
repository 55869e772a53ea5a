//! Fast-ingest batch publish (nats-server 2.14, stream config `allow_batched`): the
//! reply-subject protocol and the flow messages the server answers with.
//!
//! A fast batch is not marked by headers but by the publish's reply subject,
//! `<prefix>.<batch id>.<flow>.<gap mode>.<batch seq>.<op>.$FI`:
//!
//! - `flow`: how many messages the client lets pass between two flow acks (0 or
//!   unparsable means 10, capped at 65,535);
//! - `gap mode`: `ok` (a lost message is reported and the batch goes on) or `fail`
//!   (a lost message ends the batch);
//! - `op`: 0 start (sequence 1 only), 1 append (sequence 2 and later), 2 commit,
//!   3 commit by end of batch (`eob`: the message itself is not stored), 4 ping
//!   (asks for the last flow ack again, or reports a gap).
//!
//! The answers all go to the message's reply subject: a flow ack `{"type":"ack",
//! "seq":N,"msgs":M}` (persisted up to N, next ack after M more), a gap report
//! `{"type":"gap","last_seq":E,"seq":S}`, a per-message error `{"type":"err","seq":S,
//! "error":{…}}`, and at the end one PubAck `{"stream","seq","batch","count"}`.
//! A message that cannot start or join a batch gets a plain PubAck error.

use serde::Serialize;

use super::ApiError;

/// The reply-subject suffix that marks a fast batch message.
pub const SUFFIX: &str = ".$FI";
/// Gap mode token: a gap is reported and the batch goes on.
pub const GAP_OK: &str = "ok";
/// Gap mode token: a gap ends the batch.
pub const GAP_FAIL: &str = "fail";
/// Longest batch id.
pub const MAX_ID_LEN: usize = 64;
/// The flow a client gets when it asks for none (or an unparsable one).
pub const DEFAULT_FLOW: u16 = 10;
/// The most messages between two flow acks the server offers on its own.
pub const SERVER_MAX_FLOW: u16 = 500;
/// Most fast batches in flight per stream (nats-server's default).
pub const MAX_INFLIGHT_PER_STREAM: usize = 1000;
/// Most fast batches in flight per server (here: per agent).
pub const MAX_INFLIGHT_TOTAL: usize = 50_000;

/// What a fast batch message asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FastBatchOp {
    /// The first message (sequence 1).
    Start,
    /// A later message.
    Append,
    /// The last message, stored, then the PubAck.
    Commit,
    /// Ends the batch at the previous message; this one is not stored.
    CommitEob,
    /// Resend the last flow ack (or report a gap up to this sequence).
    Ping,
}

/// A parsed fast batch reply subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FastBatchReply<'a> {
    pub id: &'a str,
    /// Messages between flow acks the client allows at most.
    pub flow: u16,
    pub gap_ok: bool,
    pub seq: u64,
    pub op: FastBatchOp,
}

impl FastBatchReply<'_> {
    /// A commit of either kind.
    pub fn is_commit(&self) -> bool {
        matches!(self.op, FastBatchOp::Commit | FastBatchOp::CommitEob)
    }
}

/// Go's `parseInt64` as nats-server uses it: decimal digits only, else -1.
fn parse_digits(s: &str) -> i64 {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return -1;
    }
    s.parse::<i64>().unwrap_or(-1)
}

/// Reads a publish's reply subject: `None` when it is not a fast batch reply (an
/// ordinary publish), `Some(Err)` when it ends in `.$FI` but breaks the pattern
/// (10206), as nats-server's `getFastBatch`.
pub fn parse_fast_batch_reply(reply: &str) -> Option<Result<FastBatchReply<'_>, ApiError>> {
    if reply.len() <= SUFFIX.len() || !reply.ends_with(SUFFIX) {
        return None;
    }
    Some(
        parse_tokens(&reply[..reply.len() - SUFFIX.len()])
            .ok_or_else(ApiError::batch_publish_invalid_pattern),
    )
}

fn parse_tokens(body: &str) -> Option<FastBatchReply<'_>> {
    // From the end: op, seq, gap mode, flow, id; the id must follow a prefix.
    let mut tokens = body.rsplitn(6, '.');
    let op = match parse_digits(tokens.next()?) {
        0 => FastBatchOp::Start,
        1 => FastBatchOp::Append,
        2 => FastBatchOp::Commit,
        3 => FastBatchOp::CommitEob,
        4 => FastBatchOp::Ping,
        _ => return None,
    };
    let seq = tokens.next()?;
    let seq = if seq.bytes().all(|b| b.is_ascii_digit()) {
        seq.parse::<u64>().ok()?
    } else {
        return None;
    };
    if seq == 0 || seq == u64::MAX {
        return None;
    }
    match op {
        FastBatchOp::CommitEob if seq == 1 => return None,
        FastBatchOp::Start if seq != 1 => return None,
        FastBatchOp::Append if seq <= 1 => return None,
        _ => {}
    }
    let gap_ok = match tokens.next()? {
        GAP_OK => true,
        GAP_FAIL => false,
        _ => return None,
    };
    let flow = match parse_digits(tokens.next()?) {
        f if f <= 0 => DEFAULT_FLOW,
        f => u16::try_from(f).unwrap_or(u16::MAX),
    };
    let id = tokens.next()?;
    // The prefix (the client's inbox) must be there.
    tokens.next()?;
    Some(FastBatchReply {
        id,
        flow,
        gap_ok,
        seq,
        op,
    })
}

/// A flow message of a fast batch, as nats-server renders it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum BatchFlow {
    /// `BatchFlowAck`: persisted up to `seq`; the next ack follows after `msgs` more.
    Ack { seq: u64, msgs: u16 },
    /// `BatchFlowGap`: messages from `last_seq` up to (not including) `seq` were lost.
    Gap { last_seq: u64, seq: u64 },
    /// `BatchFlowErr`: message `seq` was refused.
    Err { seq: u64, error: ApiError },
}

impl BatchFlow {
    /// The JSON body.
    pub fn render(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(reply: &str) -> Option<Result<FastBatchReply<'_>, u16>> {
        parse_fast_batch_reply(reply).map(|r| r.map_err(|e| e.err_code))
    }

    #[test]
    fn reply_subjects_as_nats_server_reads_them() {
        assert_eq!(parse("_INBOX.abc"), None);
        assert_eq!(parse(".$FI"), None);
        assert_eq!(
            parse("in.uuid.0.fail.1.0.$FI"),
            Some(Ok(FastBatchReply {
                id: "uuid",
                flow: DEFAULT_FLOW,
                gap_ok: false,
                seq: 1,
                op: FastBatchOp::Start
            }))
        );
        let long = parse("_INBOX.x.y.b.70000.ok.9.3.$FI")
            .and_then(Result::ok)
            .expect("valid");
        assert_eq!(
            (long.id, long.flow, long.gap_ok, long.seq, long.op),
            ("b", u16::MAX, true, 9, FastBatchOp::CommitEob)
        );
        for bad in [
            "in.x.$FI",
            "in.b.0.fail.1.3.$FI",
            "in.b.0.fail.2.0.$FI",
            "in.b.0.fail.1.1.$FI",
            "in.b.0.fail.1.9.$FI",
            "in.b.0.maybe.1.0.$FI",
            "in.b.0.fail.0.2.$FI",
            "in.b.0.fail.18446744073709551615.1.$FI",
            "b.0.fail.1.0.$FI",
        ] {
            assert_eq!(parse(bad), Some(Err(10206)), "{bad}");
        }
    }

    #[test]
    fn flow_messages_render_as_nats_server() {
        assert_eq!(
            BatchFlow::Ack { seq: 0, msgs: 10 }.render(),
            br#"{"type":"ack","seq":0,"msgs":10}"#
        );
        assert_eq!(
            BatchFlow::Gap {
                last_seq: 2,
                seq: 3
            }
            .render(),
            br#"{"type":"gap","last_seq":2,"seq":3}"#
        );
        let err = BatchFlow::Err {
            seq: 2,
            error: ApiError::batch_publish_unknown_batch_id(),
        };
        assert_eq!(
            String::from_utf8(err.render()).expect("utf-8"),
            r#"{"type":"err","seq":2,"error":{"code":400,"err_code":10208,"description":"batch publish ID unknown"}}"#
        );
    }
}
