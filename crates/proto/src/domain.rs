//! Checked forms of the important wire messages.
//!
//! `TryFrom<wire>` validates what the control plane relies on (required fields,
//! names, subjects, counts that must agree) so logic never re-checks a wire message.
//! Failures name the field, so the gRPC `InvalidArgument` status says what to fix.

use crate::v1;
use infinistream_protocol::jsapi::schedule::ScheduleHeaders;
use infinistream_protocol::subject;

/// A wire message failed validation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid `{field}`: {reason}")]
pub struct InvalidArgument {
    pub field: &'static str,
    pub reason: String,
}

fn invalid(field: &'static str, reason: impl Into<String>) -> InvalidArgument {
    InvalidArgument {
        field,
        reason: reason.into(),
    }
}

/// Longest stream, consumer, agent or lease name accepted.
pub const MAX_NAME_LEN: usize = 255;

/// Checks a stream or consumer name the way nats-server does (protocol's
/// `is_valid_asset_name`): not empty, at most 255 bytes, no whitespace, `.`, `*`, `>` or
/// path separators.
pub fn check_name(field: &'static str, name: &str) -> Result<(), InvalidArgument> {
    if name.is_empty() {
        return Err(invalid(field, "must not be empty"));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(invalid(field, format!("longer than {MAX_NAME_LEN} bytes")));
    }
    if !infinistream_protocol::jsapi::is_valid_asset_name(name) {
        return Err(invalid(
            field,
            format!("contains whitespace, '.', '*', '>' or a path separator: `{name}`"),
        ));
    }
    Ok(())
}

/// nats-server's global account. Its streams are named by their bare name in the
/// control plane (the keys every store written before accounts holds).
pub const GLOBAL_ACCOUNT: &str = "$G";

/// The control plane's id of stream (or its consumers', KV bucket's, object
/// store's) `name` in `account`: the bare name in [`GLOBAL_ACCOUNT`] (or an empty
/// account), else `<account>.<name>`. A stream name has no `.` and an account name
/// none either, so ids of different accounts never collide and the split is exact.
pub fn stream_id(account: &str, name: &str) -> String {
    if account.is_empty() || account == GLOBAL_ACCOUNT {
        name.to_owned()
    } else {
        format!("{account}.{name}")
    }
}

/// The (account, name) of a stream id made by [`stream_id`].
pub fn split_stream_id(id: &str) -> (&str, &str) {
    match id.split_once('.') {
        Some((account, name)) => (account, name),
        None => (GLOBAL_ACCOUNT, id),
    }
}

/// The account of a stream id made by [`stream_id`].
pub fn stream_account(id: &str) -> &str {
    split_stream_id(id).0
}

/// Checks a stream id ([`stream_id`]): its name as [`check_name`], its account (if
/// any) not empty and free of whitespace, `.`, `*`, `>` and path separators.
pub fn check_stream_id(field: &'static str, id: &str) -> Result<(), InvalidArgument> {
    let (account, name) = split_stream_id(id);
    check_name(field, name)?;
    if id.len() > 2 * MAX_NAME_LEN {
        return Err(invalid(
            field,
            format!("longer than {} bytes", 2 * MAX_NAME_LEN),
        ));
    }
    if account.is_empty() || !infinistream_protocol::jsapi::is_valid_asset_name(account) {
        return Err(invalid(
            field,
            format!(
                "the account of `{id}` is empty or contains whitespace, '.', '*', '>' or a path separator"
            ),
        ));
    }
    Ok(())
}

/// Checks a free-form identifier (agent id, batch id, lease name, object key).
fn check_id(field: &'static str, id: &str, max: usize) -> Result<(), InvalidArgument> {
    if id.is_empty() {
        return Err(invalid(field, "must not be empty"));
    }
    if id.len() > max {
        return Err(invalid(field, format!("longer than {max} bytes")));
    }
    if id.chars().any(char::is_control) {
        return Err(invalid(field, "contains control characters"));
    }
    Ok(())
}

/// Enforced stream limits (see `StreamLimits` in streams.proto).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Limits {
    pub subjects: Vec<String>,
    pub retention: v1::Retention,
    /// `None` = unlimited.
    pub max_msgs: Option<u64>,
    pub max_bytes: Option<u64>,
    pub max_age_nanos: Option<i64>,
    pub max_msgs_per_subject: Option<u64>,
    pub max_msg_size: Option<u32>,
    pub discard_new: bool,
    pub discard_new_per_subject: bool,
    pub duplicate_window_nanos: i64,
    pub deny_delete: bool,
    pub deny_purge: bool,
    pub sealed: bool,
    pub allow_rollup: bool,
    pub allow_msg_ttl: bool,
    /// The first sequence of a new stream (0 = unset, which starts at 1).
    pub first_seq: u64,
    /// Subject delete marker TTL in nanoseconds; `None` = no markers.
    pub subject_delete_marker_ttl_nanos: Option<i64>,
    pub allow_msg_counter: bool,
    /// `allow_msg_schedules`.
    pub allow_msg_schedules: bool,
}

fn positive_u64(v: i64) -> Option<u64> {
    u64::try_from(v).ok().filter(|v| *v > 0)
}

impl TryFrom<v1::StreamLimits> for Limits {
    type Error = InvalidArgument;

    fn try_from(l: v1::StreamLimits) -> Result<Self, Self::Error> {
        for s in &l.subjects {
            if !subject::is_valid_subject(s) {
                return Err(invalid("limits.subjects", format!("invalid subject `{s}`")));
            }
        }
        for (i, a) in l.subjects.iter().enumerate() {
            for b in &l.subjects[i + 1..] {
                if subject::subjects_collide(a, b) {
                    return Err(invalid(
                        "limits.subjects",
                        format!("subjects overlap: `{a}` and `{b}`"),
                    ));
                }
            }
        }
        let retention = v1::Retention::try_from(l.retention)
            .map_err(|_| invalid("limits.retention", format!("unknown value {}", l.retention)))?;
        let discard = v1::Discard::try_from(l.discard)
            .map_err(|_| invalid("limits.discard", format!("unknown value {}", l.discard)))?;
        if l.duplicate_window_nanos < 0 {
            return Err(invalid(
                "limits.duplicate_window_nanos",
                "must not be negative",
            ));
        }
        if l.max_age_nanos < 0 {
            return Err(invalid("limits.max_age_nanos", "must not be negative"));
        }
        if l.subject_delete_marker_ttl_nanos < 0 {
            return Err(invalid(
                "limits.subject_delete_marker_ttl_nanos",
                "must not be negative",
            ));
        }
        Ok(Limits {
            subjects: l.subjects,
            retention,
            max_msgs: positive_u64(l.max_msgs),
            max_bytes: positive_u64(l.max_bytes),
            max_age_nanos: Some(l.max_age_nanos).filter(|v| *v > 0),
            max_msgs_per_subject: positive_u64(l.max_msgs_per_subject),
            max_msg_size: u32::try_from(l.max_msg_size).ok().filter(|v| *v > 0),
            discard_new: discard == v1::Discard::New,
            discard_new_per_subject: l.discard_new_per_subject,
            duplicate_window_nanos: l.duplicate_window_nanos,
            deny_delete: l.deny_delete,
            deny_purge: l.deny_purge,
            sealed: l.sealed,
            allow_rollup: l.allow_rollup,
            allow_msg_ttl: l.allow_msg_ttl,
            first_seq: l.first_seq,
            subject_delete_marker_ttl_nanos: Some(l.subject_delete_marker_ttl_nanos)
                .filter(|v| *v > 0),
            allow_msg_counter: l.allow_msg_counter,
            allow_msg_schedules: l.allow_msg_schedules,
        })
    }
}

fn unlimited_i64(v: Option<u64>) -> i64 {
    v.map_or(-1, |v| i64::try_from(v).unwrap_or(i64::MAX))
}

impl From<&Limits> for v1::StreamLimits {
    fn from(l: &Limits) -> Self {
        v1::StreamLimits {
            subjects: l.subjects.clone(),
            retention: l.retention as i32,
            max_msgs: unlimited_i64(l.max_msgs),
            max_bytes: unlimited_i64(l.max_bytes),
            max_age_nanos: l.max_age_nanos.unwrap_or(0),
            max_msgs_per_subject: unlimited_i64(l.max_msgs_per_subject),
            max_msg_size: l
                .max_msg_size
                .map_or(-1, |v| i32::try_from(v).unwrap_or(i32::MAX)),
            discard: if l.discard_new {
                v1::Discard::New as i32
            } else {
                v1::Discard::Old as i32
            },
            discard_new_per_subject: l.discard_new_per_subject,
            duplicate_window_nanos: l.duplicate_window_nanos,
            deny_delete: l.deny_delete,
            deny_purge: l.deny_purge,
            sealed: l.sealed,
            allow_rollup: l.allow_rollup,
            allow_msg_ttl: l.allow_msg_ttl,
            first_seq: l.first_seq,
            subject_delete_marker_ttl_nanos: l.subject_delete_marker_ttl_nanos.unwrap_or(0),
            allow_msg_counter: l.allow_msg_counter,
            allow_msg_schedules: l.allow_msg_schedules,
        }
    }
}

/// A checked stream config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamSpec {
    pub name: String,
    pub config_json: Vec<u8>,
    pub limits: Limits,
}

impl TryFrom<v1::StreamConfig> for StreamSpec {
    type Error = InvalidArgument;

    fn try_from(c: v1::StreamConfig) -> Result<Self, Self::Error> {
        check_stream_id("config.name", &c.name)?;
        let limits = c
            .limits
            .ok_or_else(|| invalid("config.limits", "required"))?
            .try_into()?;
        Ok(StreamSpec {
            name: c.name,
            config_json: c.config_json,
            limits,
        })
    }
}

impl From<&StreamSpec> for v1::StreamConfig {
    fn from(s: &StreamSpec) -> Self {
        v1::StreamConfig {
            name: s.name.clone(),
            config_json: s.config_json.clone(),
            limits: Some((&s.limits).into()),
        }
    }
}

/// A checked agent registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentSpec {
    pub agent_id: String,
    /// Known role names, sorted, `proxy` expanded.
    pub roles: Vec<String>,
    pub zone: String,
    pub client_address: String,
    pub peer_address: String,
    pub version: String,
}

impl TryFrom<v1::AgentInfo> for AgentSpec {
    type Error = InvalidArgument;

    fn try_from(a: v1::AgentInfo) -> Result<Self, Self::Error> {
        check_id("agent.agent_id", &a.agent_id, MAX_NAME_LEN)?;
        let mut roles = Vec::new();
        for r in &a.roles {
            match r.trim() {
                "proxy" => roles.extend(["proxy-produce".to_owned(), "proxy-consume".to_owned()]),
                n @ ("proxy-produce" | "proxy-consume" | "jobs") => roles.push(n.to_owned()),
                other => return Err(invalid("agent.roles", format!("unknown role `{other}`"))),
            }
        }
        if roles.is_empty() {
            return Err(invalid("agent.roles", "at least one role is required"));
        }
        roles.sort();
        roles.dedup();
        let zone = if a.zone.is_empty() {
            "default".to_owned()
        } else {
            a.zone
        };
        Ok(AgentSpec {
            agent_id: a.agent_id,
            roles,
            zone,
            client_address: a.client_address,
            peer_address: a.peer_address,
            version: a.version,
        })
    }
}

/// Nats-Rollup.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Rollup {
    #[default]
    None,
    Subject,
    All,
    /// A value that is neither `sub` nor `all` (lowercased), refused at commit.
    Invalid(String),
}

/// One checked record (message) of a chunk. `Default` is a plain message: no
/// `Nats-*` header in effect.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Record {
    pub subject: String,
    pub size: u32,
    pub header_size: u32,
    pub timestamp_unix_nanos: i64,
    pub msg_id: Option<String>,
    pub expected_stream: Option<String>,
    pub expected_last_seq: Option<u64>,
    pub expected_last_subject_seq: Option<u64>,
    pub expected_last_subject_seq_subject: Option<String>,
    pub expected_last_msg_id: Option<String>,
    pub rollup: Rollup,
    pub ttl_seconds: Option<i64>,
    /// The atomic batch (ADR-50) this record belongs to.
    pub atomic_batch: Option<String>,
    /// Nats-Incr as a canonical decimal.
    pub incr: Option<String>,
    pub incr_problem: v1::IncrProblem,
    /// The `Nats-Schedule*` headers, when any was published.
    pub schedule: Option<ScheduleHeaders>,
    /// A schedule firing (jobs only).
    pub firing: Option<v1::ScheduleFiring>,
    /// The fast batch (gap mode `fail`) this record belongs to.
    pub fail_batch: Option<String>,
    /// An earlier message of its `fail_batch` was refused: refuse this one too.
    pub withdrawn: bool,
}

impl TryFrom<v1::RecordMeta> for Record {
    type Error = InvalidArgument;

    fn try_from(r: v1::RecordMeta) -> Result<Self, Self::Error> {
        if !subject::is_valid_publish_subject(&r.subject) {
            return Err(invalid(
                "chunks.records.subject",
                format!("not a valid publish subject: `{}`", r.subject),
            ));
        }
        let invalid_rollup = r.rollup_invalid.filter(|v| !v.is_empty());
        let rollup = match (invalid_rollup, v1::Rollup::try_from(r.rollup)) {
            (Some(value), _) => Rollup::Invalid(value),
            (None, Ok(v1::Rollup::None)) => Rollup::None,
            (None, Ok(v1::Rollup::Subject)) => Rollup::Subject,
            (None, Ok(v1::Rollup::All)) => Rollup::All,
            (None, Err(_)) => {
                return Err(invalid(
                    "chunks.records.rollup",
                    format!("unknown value {}", r.rollup),
                ));
            }
        };
        Ok(Record {
            subject: r.subject,
            size: r.size,
            header_size: r.header_size,
            timestamp_unix_nanos: r.timestamp_unix_nanos,
            msg_id: r.msg_id.filter(|m| !m.is_empty()),
            expected_stream: r.expected_stream.filter(|m| !m.is_empty()),
            expected_last_seq: r.expected_last_seq,
            expected_last_subject_seq: r.expected_last_subject_seq,
            expected_last_subject_seq_subject: r
                .expected_last_subject_seq_subject
                .filter(|m| !m.is_empty()),
            expected_last_msg_id: r.expected_last_msg_id.filter(|m| !m.is_empty()),
            rollup,
            ttl_seconds: r.ttl_seconds,
            atomic_batch: r.atomic_batch.filter(|b| !b.is_empty()),
            incr: r.incr.filter(|v| !v.is_empty()),
            incr_problem: v1::IncrProblem::try_from(r.incr_problem)
                .unwrap_or(v1::IncrProblem::Invalid),
            schedule: r.schedule.map(|h| ScheduleHeaders {
                pattern: h.pattern,
                time_zone: h.time_zone,
                ttl: h.ttl,
                rollup: h.rollup,
                target: h.target,
                source: h.source,
                scheduler: h.scheduler,
                next: h.next,
            }),
            firing: r.firing,
            fail_batch: r.fail_batch.filter(|b| !b.is_empty()),
            withdrawn: r.withdrawn,
        })
    }
}

/// The wire form of a message's schedule headers.
pub fn schedule_headers_to_proto(h: ScheduleHeaders) -> v1::ScheduleHeaders {
    v1::ScheduleHeaders {
        pattern: h.pattern,
        time_zone: h.time_zone,
        ttl: h.ttl,
        rollup: h.rollup,
        target: h.target,
        source: h.source,
        scheduler: h.scheduler,
        next: h.next,
    }
}

/// One stream's checked chunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    pub stream: String,
    pub chunk_index: u32,
    pub byte_size: u64,
    pub records: Vec<Record>,
}

/// A checked CommitBatch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitBatch {
    pub batch_id: String,
    pub object_key: String,
    pub agent_id: String,
    pub chunks: Vec<Chunk>,
}

/// Most chunks one batch may carry.
pub const MAX_CHUNKS_PER_BATCH: usize = 100_000;

impl TryFrom<v1::CommitBatchRequest> for CommitBatch {
    type Error = InvalidArgument;

    fn try_from(b: v1::CommitBatchRequest) -> Result<Self, Self::Error> {
        check_id("batch_id", &b.batch_id, 128)?;
        check_id("object_key", &b.object_key, 1024)?;
        if b.chunks.len() > MAX_CHUNKS_PER_BATCH {
            return Err(invalid(
                "chunks",
                format!("more than {MAX_CHUNKS_PER_BATCH} chunks"),
            ));
        }
        let mut chunks = Vec::with_capacity(b.chunks.len());
        for c in b.chunks {
            check_stream_id("chunks.stream", &c.stream)?;
            if c.record_count as usize != c.records.len() {
                return Err(invalid(
                    "chunks.record_count",
                    format!(
                        "{} but {} records were sent for stream `{}`",
                        c.record_count,
                        c.records.len(),
                        c.stream
                    ),
                ));
            }
            let records = c
                .records
                .into_iter()
                .map(Record::try_from)
                .collect::<Result<Vec<_>, _>>()?;
            chunks.push(Chunk {
                stream: c.stream,
                chunk_index: c.chunk_index,
                byte_size: c.byte_size,
                records,
            });
        }
        Ok(CommitBatch {
            batch_id: b.batch_id,
            object_key: b.object_key,
            agent_id: b.agent_id,
            chunks,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn record(subject: &str) -> v1::RecordMeta {
        v1::RecordMeta {
            subject: subject.into(),
            size: 10,
            ..Default::default()
        }
    }

    #[test]
    fn names_are_checked_like_nats_server() {
        assert!(check_name("n", "ORDERS").is_ok());
        for bad in ["", "a.b", "a b", "a*", "a>", "a/b", "a\\b"] {
            assert!(check_name("n", bad).is_err(), "{bad}");
        }
    }

    /// `$G`'s ids are the bare names (today's keys); other accounts' carry the
    /// account, so two accounts' streams of one name are two ids.
    #[test]
    fn stream_ids_keep_global_names_and_split_exactly() {
        assert_eq!(stream_id("$G", "ORDERS"), "ORDERS");
        assert_eq!(stream_id("", "ORDERS"), "ORDERS");
        assert_eq!(stream_id("A", "ORDERS"), "A.ORDERS");
        assert_ne!(stream_id("A", "ORDERS"), stream_id("B", "ORDERS"));
        assert_eq!(split_stream_id("ORDERS"), ("$G", "ORDERS"));
        assert_eq!(split_stream_id("A.ORDERS"), ("A", "ORDERS"));
        assert_eq!(stream_account("KV_cfg"), "$G");
        assert!(check_stream_id("n", "ORDERS").is_ok());
        assert!(check_stream_id("n", "A.ORDERS").is_ok());
        for bad in [
            "", ".ORDERS", "A.", "A.B.C", "A B.C", "A/B.C", "*.C", "A.x y",
        ] {
            assert!(check_stream_id("n", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn commit_batch_counts_must_agree() {
        let req = v1::CommitBatchRequest {
            batch_id: "b1".into(),
            object_key: "o1".into(),
            agent_id: "a".into(),
            chunks: vec![v1::ChunkMeta {
                stream: "S".into(),
                chunk_index: 0,
                record_count: 2,
                byte_size: 20,
                records: vec![record("a")],
            }],
        };
        let err = CommitBatch::try_from(req).unwrap_err();
        assert_eq!(err.field, "chunks.record_count");
    }

    #[test]
    fn wildcard_publish_subject_is_refused() {
        assert!(Record::try_from(record("a.*")).is_err());
        assert!(Record::try_from(record("a.b")).is_ok());
    }

    #[test]
    fn limits_round_trip_and_unlimited_conventions() {
        let wire = v1::StreamLimits {
            subjects: vec!["a.>".into()],
            max_msgs: -1,
            max_bytes: 0,
            max_msgs_per_subject: 5,
            max_msg_size: -1,
            discard: v1::Discard::New as i32,
            duplicate_window_nanos: 120_000_000_000,
            ..Default::default()
        };
        let l = Limits::try_from(wire).unwrap();
        assert_eq!(l.max_msgs, None);
        assert_eq!(l.max_bytes, None);
        assert_eq!(l.max_msgs_per_subject, Some(5));
        assert!(l.discard_new);
        let back = v1::StreamLimits::from(&l);
        assert_eq!(Limits::try_from(back).unwrap(), l);
    }

    #[test]
    fn overlapping_own_subjects_refused() {
        let wire = v1::StreamLimits {
            subjects: vec!["a.>".into(), "a.b".into()],
            ..Default::default()
        };
        assert!(Limits::try_from(wire).is_err());
    }

    #[test]
    fn agent_roles_expand_and_validate() {
        let a = AgentSpec::try_from(v1::AgentInfo {
            agent_id: "x".into(),
            roles: vec!["proxy".into(), "jobs".into()],
            ..Default::default()
        })
        .unwrap();
        assert_eq!(a.roles, vec!["jobs", "proxy-consume", "proxy-produce"]);
        assert_eq!(a.zone, "default");
        assert!(
            AgentSpec::try_from(v1::AgentInfo {
                agent_id: "x".into(),
                roles: vec!["proxy-fetch".into()],
                ..Default::default()
            })
            .is_err()
        );
    }
}
