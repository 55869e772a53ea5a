//! JetStream header names and how nats-server reads their values.
//!
//! The one place that spells a `Nats-*` header: the gateway reads the publish headers
//! with these names, the fetcher writes direct-get and delivery headers with them
//! (`cargo xtask check-deps` fails on a `"Nats-…"` literal anywhere else).

use super::ApiError;
use super::time::GoDuration;

/// De-duplication id.
pub const MSG_ID: &str = "Nats-Msg-Id";
/// The prefix every `Nats-Expected-*` header shares.
pub const EXPECTED_PREFIX: &str = "Nats-Expected-";
/// Publish only if the stream has this name.
pub const EXPECTED_STREAM: &str = "Nats-Expected-Stream";
/// Publish only if the stream's last sequence is this.
pub const EXPECTED_LAST_SEQ: &str = "Nats-Expected-Last-Sequence";
/// Publish only if the subject's last sequence is this.
pub const EXPECTED_LAST_SUBJ_SEQ: &str = "Nats-Expected-Last-Subject-Sequence";
/// Subject (filter) the last-subject-sequence check applies to.
pub const EXPECTED_LAST_SUBJ_SEQ_SUBJ: &str = "Nats-Expected-Last-Subject-Sequence-Subject";
/// Publish only if the stream's last `Nats-Msg-Id` is this.
pub const EXPECTED_LAST_MSG_ID: &str = "Nats-Expected-Last-Msg-Id";
/// Rollup: `sub` or `all`.
pub const ROLLUP: &str = "Nats-Rollup";
/// Rollup value: purge the subject.
pub const ROLLUP_SUBJECT: &str = "sub";
/// Rollup value: purge the stream.
pub const ROLLUP_ALL: &str = "all";
/// Per-message TTL.
pub const TTL: &str = "Nats-TTL";
/// Counter increment (counter streams).
pub const INCR: &str = "Nats-Incr";
/// Why a marker message was written.
pub const MARKER_REASON: &str = "Nats-Marker-Reason";
/// Size of the omitted payload (headers-only delivery).
pub const MSG_SIZE: &str = "Nats-Msg-Size";
/// Stream name on direct get / republish.
pub const STREAM: &str = "Nats-Stream";
/// Stream sequence on direct get / republish.
pub const SEQUENCE: &str = "Nats-Sequence";
/// Store time (RFC 3339 nanos) on direct get.
pub const TIME_STAMP: &str = "Nats-Time-Stamp";
/// Original subject on direct get.
pub const SUBJECT: &str = "Nats-Subject";
/// Previous sequence in a batch reply (0 for the first).
pub const LAST_SEQUENCE: &str = "Nats-Last-Sequence";
/// Messages left after this one in a batch reply.
pub const NUM_PENDING: &str = "Nats-Num-Pending";
/// Sequence a multi-last batch was computed up to.
pub const UP_TO_SEQUENCE: &str = "Nats-UpTo-Sequence";
/// Pull status: messages left of the request.
pub const PENDING_MESSAGES: &str = "Nats-Pending-Messages";
/// Pull status: bytes left of the request.
pub const PENDING_BYTES: &str = "Nats-Pending-Bytes";
/// Heartbeat: last consumer sequence delivered.
pub const LAST_CONSUMER: &str = "Nats-Last-Consumer";
/// Heartbeat: last stream sequence delivered.
pub const LAST_STREAM: &str = "Nats-Last-Stream";
/// Heartbeat: stalled on this flow-control reply.
pub const CONSUMER_STALLED: &str = "Nats-Consumer-Stalled";
/// Minimum API level a request needs (answered 412 when higher than ours).
pub const REQUIRED_API_LEVEL: &str = "Nats-Required-Api-Level";
/// KV operation (`DEL`, `PURGE`).
pub const KV_OPERATION: &str = "KV-Operation";
/// Atomic batch publish (ADR-50): the batch a message belongs to (at most 64 bytes).
pub const BATCH_ID: &str = "Nats-Batch-Id";
/// Atomic batch publish: the message's 1-based position in its batch.
pub const BATCH_SEQUENCE: &str = "Nats-Batch-Sequence";
/// Atomic batch publish: `1` commits with this message, `eob` commits without it.
pub const BATCH_COMMIT: &str = "Nats-Batch-Commit";
/// The `Nats-Batch-Commit` value that commits and stores the message.
pub const BATCH_COMMIT_STORE: &str = "1";
/// The `Nats-Batch-Commit` value that commits without storing the message.
pub const BATCH_COMMIT_EOB: &str = "eob";
/// Message schedules (ADR-51): the schedule pattern (`@at …`, `@every …`, cron).
pub const SCHEDULE: &str = "Nats-Schedule";
/// Message schedules: the time zone cron patterns are read in.
pub const SCHEDULE_TIME_ZONE: &str = "Nats-Schedule-Time-Zone";
/// Message schedules: the `Nats-TTL` the produced message gets.
pub const SCHEDULE_TTL: &str = "Nats-Schedule-TTL";
/// Message schedules: the `Nats-Rollup` the produced message gets (`sub` only).
pub const SCHEDULE_ROLLUP: &str = "Nats-Schedule-Rollup";
/// Message schedules: the subject a firing publishes to.
pub const SCHEDULE_TARGET: &str = "Nats-Schedule-Target";
/// Message schedules: a subject whose last message a firing publishes instead.
pub const SCHEDULE_SOURCE: &str = "Nats-Schedule-Source";
/// Message schedules: the schedule subject a produced message came from.
pub const SCHEDULER: &str = "Nats-Scheduler";
/// Message schedules: the next firing time (RFC 3339), or `purge` after the last.
pub const SCHEDULE_NEXT: &str = "Nats-Schedule-Next";
/// The `Nats-Schedule-Next` value that purges the schedule.
pub const SCHEDULE_NEXT_PURGE: &str = "purge";

/// A `Nats-TTL` header value as nats-server reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageTtl {
    /// `never`: the message outlives the stream's `max_age`.
    Never,
    /// Expires this many seconds after it is stored.
    Seconds(u64),
}

/// nats-server's `parseMessageTTL`: `never` (any case), a Go duration of at least 1 s
/// (truncated to whole seconds: `1.9s` is 1 s, `500ms` is invalid), or a number of
/// seconds. `Ok(None)` is "no TTL": an empty value, as nats-server treats an empty
/// header like a missing one, or a number that reads as 0 (`00`; a bare `0` is a Go
/// duration below 1 s, so invalid). Anything else is `invalid per-message TTL`
/// (10165).
pub fn parse_message_ttl(value: &str) -> Result<Option<MessageTtl>, ApiError> {
    if value.is_empty() {
        return Ok(None);
    }
    if value.eq_ignore_ascii_case("never") {
        return Ok(Some(MessageTtl::Never));
    }
    if let Some(nanos) = GoDuration::parse(value) {
        if nanos < 1_000_000_000 {
            return Err(ApiError::message_ttl_invalid());
        }
        return Ok(Some(MessageTtl::Seconds((nanos / 1_000_000_000) as u64)));
    }
    // nats-server's `parseInt64`: ASCII digits only, and an overflow wraps (a wrapped
    // negative is refused, a wrapped 0 is no TTL), kept so both answer alike.
    let secs = value.bytes().try_fold(0i64, |n, b| {
        b.is_ascii_digit()
            .then(|| n.wrapping_mul(10).wrapping_add(i64::from(b - b'0')))
    });
    match secs {
        Some(0) => Ok(None),
        Some(secs) if secs > 0 => Ok(Some(MessageTtl::Seconds(secs.unsigned_abs()))),
        _ => Err(ApiError::message_ttl_invalid()),
    }
}

/// A `Nats-Rollup` header value as nats-server reads it (`getRollup`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rollup {
    /// `sub` (any case): purge the subject's older messages.
    Subject,
    /// `all` (any case): purge the stream's older messages.
    All,
    /// Anything else, lowercased as nats-server reports it. It is refused only when
    /// the stream allows rollups (otherwise "rollup not permitted" comes first), after
    /// the de-duplication and expected-sequence checks: see [`rollup_invalid`].
    Invalid(String),
}

/// Reads a `Nats-Rollup` value; `None` when it is empty (no rollup, as in nats-server).
pub fn parse_rollup(value: &str) -> Option<Rollup> {
    if value.is_empty() {
        return None;
    }
    let value = value.to_lowercase();
    Some(match value.as_str() {
        ROLLUP_SUBJECT => Rollup::Subject,
        ROLLUP_ALL => Rollup::All,
        _ => Rollup::Invalid(value),
    })
}

/// nats-server's answer to an invalid `Nats-Rollup` on a stream that allows rollups:
/// `JSStreamRollupFailedF` (500 / 10111) with `rollup value invalid: "<value>"`.
pub fn rollup_invalid(value: &str) -> ApiError {
    ApiError::stream_rollup_failed(format_args!("rollup value invalid: {}", go_quote(value)))
}

/// nats-server's answer to a `Nats-Rollup` on a stream that does not allow rollups
/// (or denies purges), whatever its value: 500 / 10111 `rollup not permitted`.
pub fn rollup_not_permitted() -> ApiError {
    ApiError::stream_rollup_failed("rollup not permitted")
}

/// Go's `%q` for the strings a header value can hold: double quotes, backslash
/// escapes, `\xNN` for other control bytes.
fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{b}' => out.push_str("\\v"),
            '\u{c}' => out.push_str("\\f"),
            c if c.is_ascii_control() => {
                out.push_str(&format!("\\x{:02x}", u32::from(c)));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rollup_values_read_like_nats_server() {
        assert_eq!(parse_rollup(""), None);
        assert_eq!(parse_rollup("sub"), Some(Rollup::Subject));
        assert_eq!(parse_rollup("SUB"), Some(Rollup::Subject));
        assert_eq!(parse_rollup("All"), Some(Rollup::All));
        assert_eq!(
            parse_rollup("Everything"),
            Some(Rollup::Invalid("everything".into()))
        );
        let e = rollup_invalid("su b");
        assert_eq!((e.code, e.err_code), (500, 10111));
        assert_eq!(e.description, "rollup value invalid: \"su b\"");
        assert_eq!(go_quote("a\"b\\c\td\u{1}"), r#""a\"b\\c\td\x01""#);
    }
}
