//! `$JS.API` request and response shapes, nats-server's error codes, header names and
//! Go durations. Subject rules are [`crate::subject`].
//!
//! InfiniStream serves unmodified NATS clients, so every byte its JetStream layer
//! speaks must be what nats-server would say: the same JSON field names, the same
//! defaults filled in, the same validation order and error codes. This module is
//! that vocabulary and nothing else — pure types and pure functions, no I/O — so the
//! gateway, fetcher and control plane agree on it and it can be tested against
//! replies captured from a real nats-server.
//!
//! - [`errors`]: [`ApiError`] and the full nats-server error table.
//! - [`response`]: the `{"type":…}` envelope, request parsing.
//! - [`stream`]: stream config (with `check_and_default` mirroring nats-server's
//!   `checkStreamCfg`), info, state, list/names/purge/delete.
//! - [`msg`]: message get/delete, `PubAck`, direct get and its reply headers.
//! - [`consumer`]: consumer config (mirroring `checkConsumerCfg`), info, create and
//!   next requests.
//! - [`ack`]: `$JS.ACK.…` reply subjects and ack payload kinds.
//! - [`advisory`]: `$JS.EVENT.ADVISORY.…` subjects and bodies.
//! - [`account`]: `$JS.API.INFO` account info.
//! - [`jsz`]: the `/jsz` monitoring document and its query options.
//! - [`subjects`]: the `$JS.API` subject router.
//! - [`time`]: Go-compatible RFC 3339 timestamps (`0001-01-01T00:00:00Z` for zero) and
//!   Go durations ([`GoDuration`]).
//! - [`headers`]: every `Nats-*` header name, and `Nats-TTL` / `Nats-Rollup` values as
//!   nats-server reads them.
//! - [`schedule`]: message schedules (`Nats-Schedule`): patterns, cron, publish checks
//!   and the headers of a produced message.
//! - [`versioning`]: API levels, `_nats.*` metadata, `Nats-Required-Api-Level`.
//! - [`fast_batch`]: fast-ingest batch publish reply subjects and flow messages.

pub mod account;
pub mod ack;
pub mod advisory;
pub mod consumer;
pub mod counter;
pub mod errors;
pub mod fast_batch;
pub mod headers;
pub mod jsz;
pub mod msg;
pub mod response;
pub mod schedule;
pub mod stream;
pub mod subjects;
pub mod time;
pub mod versioning;

pub use errors::{ApiError, ErrorCode, codes};
pub use response::{
    ApiResponseType, parse_request, parse_response, render_error, render_ok, render_result,
};
pub use time::{GoDuration, Timestamp};

/// Durations on the JetStream wire are Go `time.Duration`s: signed nanoseconds.
pub type Nanos = i64;

/// Longest stream, consumer or template name nats-server accepts (`JSMaxNameLen`).
pub const MAX_NAME_LEN: usize = 255;
/// Longest stream or consumer description (`JSMaxDescriptionLen`).
pub const MAX_DESCRIPTION_LEN: usize = 4 * 1024;
/// Largest total of metadata key and value bytes (`JSMaxMetadataLen`).
pub const MAX_METADATA_LEN: usize = 128 * 1024;
/// Page size of `STREAM.NAMES` and `CONSUMER.NAMES` (`JSApiNamesLimit`).
pub const NAMES_LIMIT: usize = 1024;
/// Page size of `STREAM.LIST` and `CONSUMER.LIST` (`JSApiListLimit`).
pub const LIST_LIMIT: usize = 256;
/// Most subject details a stream info reply holds (`JSMaxSubjectDetails`).
pub const MAX_SUBJECT_DETAILS: usize = 100_000;
/// The JetStream API level InfiniStream reports in `api.level` (account info, `/jsz`,
/// the system API's VARZ and STATSZ), in `_nats.level`, and checks
/// `Nats-Required-Api-Level` against. Level 1 is nats-server 2.11's (per-message TTL);
/// level 2 (2.12) adds counters, atomic batches and message schedules (built) and async
/// persist (accepted: every ack is durable anyway). Level 3 needs snapshot `window_size` (snapshots are not built), so the
/// fast batch publish of level 4 is served without claiming 4 (nats-server 2.15
/// reports 5; docs/compatibility.md lists what each level adds).
pub const API_LEVEL: u32 = 2;

/// Whether `name` is a valid stream or consumer name (nats-server's `isValidAssetName`):
/// non-empty, no `.`, `*`, `>`, whitespace, `/` or `\`.
pub fn is_valid_asset_name(name: &str) -> bool {
    !name.is_empty()
        && !name.chars().any(|c| {
            matches!(
                c,
                ' ' | '\t' | '\r' | '\n' | '\u{c}' | '.' | '*' | '>' | '\\' | '/'
            )
        })
}

/// Sum of key and value lengths, the measure nats-server limits metadata by.
pub(crate) fn metadata_len(metadata: &std::collections::BTreeMap<String, String>) -> usize {
    metadata.iter().map(|(k, v)| k.len() + v.len()).sum()
}
