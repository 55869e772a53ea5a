//! Reading and deleting single messages, publish acks, and direct get.
//!
//! Three read paths reach stored messages outside consumers: `STREAM.MSG.GET` (JSON
//! reply with base64 payload), `DIRECT.GET` (the raw message with `Nats-*` headers,
//! status lines for misses; what KV uses) and the `PubAck` every JetStream publish
//! gets. Their request checks, header names and status lines are nats-server's, because
//! clients match on them (`404 Message Not Found` makes a KV `get` return none).

use super::headers;
use super::response::{ApiResponseType, types};
use super::stream::{is_false, is_zero_u64, null_default};
use super::{ApiError, Timestamp};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt::Write as _;

/// Message get request: `STREAM.MSG.GET` body and `DIRECT.GET` body.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct MsgGetRequest {
    /// By sequence (or the start sequence of a batch / next-by-subject).
    #[serde(skip_serializing_if = "is_zero_u64", deserialize_with = "null_default")]
    pub seq: u64,
    /// Last message on this subject.
    #[serde(
        rename = "last_by_subj",
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_default"
    )]
    pub last_for: String,
    /// First message at or after `seq` on this subject (wildcards allowed).
    #[serde(
        rename = "next_by_subj",
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_default"
    )]
    pub next_for: String,
    /// Direct get only: up to this many messages, then an EOB status.
    #[serde(skip_serializing_if = "is_zero_i64", deserialize_with = "null_default")]
    pub batch: i64,
    /// Direct get only: stop after this many bytes.
    #[serde(skip_serializing_if = "is_zero_i64", deserialize_with = "null_default")]
    pub max_bytes: i64,
    /// Start at the first message at or after this time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Timestamp>,
    /// Direct get only: last message of each of these subjects (wildcards allowed).
    #[serde(
        rename = "multi_last",
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_default"
    )]
    pub multi_last_for: Vec<String>,
    /// Only messages up to this sequence.
    #[serde(skip_serializing_if = "is_zero_u64", deserialize_with = "null_default")]
    pub up_to_seq: u64,
    /// Only messages up to this time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub up_to_time: Option<Timestamp>,
    /// Omit headers from the reply.
    #[serde(
        rename = "no_hdr",
        skip_serializing_if = "is_false",
        deserialize_with = "null_default"
    )]
    pub no_headers: bool,
}

fn is_zero_i64(v: &i64) -> bool {
    *v == 0
}

impl MsgGetRequest {
    /// nats-server's `STREAM.MSG.GET` checks: no batch or max_bytes (JSON get is single),
    /// exactly one way of addressing the message; otherwise bad request.
    pub fn check_api(&self) -> Result<(), ApiError> {
        if self.batch > 0 || self.max_bytes > 0 {
            return Err(ApiError::bad_request());
        }
        let nothing = self.seq == 0
            && self.last_for.is_empty()
            && self.next_for.is_empty()
            && self.start_time.is_none();
        if nothing
            || (self.seq > 0 && self.start_time.is_some())
            || (self.start_time.is_some() && !self.last_for.is_empty())
            || (!self.last_for.is_empty() && !self.next_for.is_empty())
        {
            return Err(ApiError::bad_request());
        }
        Ok(())
    }

    /// nats-server's `DIRECT.GET.<stream>` checks, answered with status lines.
    pub fn check_direct(&self) -> Result<(), DirectGetStatus> {
        if self.seq == 0
            && self.last_for.is_empty()
            && self.next_for.is_empty()
            && self.multi_last_for.is_empty()
            && self.start_time.is_none()
        {
            return Err(DirectGetStatus::EmptyRequest);
        }
        let has_seq = self.seq > 0;
        let has_last = !self.last_for.is_empty();
        let has_next = !self.next_for.is_empty();
        let has_time = self.start_time.is_some();
        let has_multi = !self.multi_last_for.is_empty();
        // Pairs nats-server refuses together (batch is not allowed with last_by_subj).
        let conflicts = [
            has_seq && has_last,
            has_seq && has_time,
            has_time && has_last,
            has_last && has_next,
            has_last && self.batch > 0,
            has_last && has_multi,
            has_next && has_multi,
            self.up_to_seq > 0 && self.up_to_time.is_some(),
        ];
        if conflicts.contains(&true) {
            return Err(DirectGetStatus::BadRequest);
        }
        Ok(())
    }

    /// nats-server's `DIRECT.GET.<stream>.<subject>` handling: the optional body may
    /// set nothing but `no_hdr`/`max_bytes`; the subject tail becomes `last_by_subj`.
    pub fn direct_last_by_subject(
        body: &[u8],
        subject: &str,
    ) -> Result<MsgGetRequest, DirectGetStatus> {
        let mut req = if body.iter().all(u8::is_ascii_whitespace) {
            MsgGetRequest::default()
        } else {
            serde_json::from_slice::<MsgGetRequest>(body)
                .map_err(|_| DirectGetStatus::MalformedRequest)?
        };
        if subject.is_empty() {
            return Err(DirectGetStatus::BadRequest);
        }
        if !req.last_for.is_empty()
            || !req.next_for.is_empty()
            || !req.multi_last_for.is_empty()
            || req.seq != 0
            || req.batch != 0
            || req.start_time.is_some()
            || req.up_to_seq != 0
            || req.up_to_time.is_some()
        {
            return Err(DirectGetStatus::BadRequest);
        }
        req.last_for = subject.to_owned();
        Ok(req)
    }

    /// Parses and checks a `DIRECT.GET.<stream>` body (required) as nats-server does.
    pub fn parse_direct(body: &[u8]) -> Result<MsgGetRequest, DirectGetStatus> {
        if body.is_empty() {
            return Err(DirectGetStatus::EmptyRequest);
        }
        let req: MsgGetRequest =
            serde_json::from_slice(body).map_err(|_| DirectGetStatus::MalformedRequest)?;
        req.check_direct()?;
        Ok(req)
    }
}

/// Bytes as Go's `[]byte` in JSON: standard base64 with padding, omitted when empty.
fn ser_b64<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&STANDARD.encode(bytes))
}

fn de_b64<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
    let s: Option<std::borrow::Cow<'de, str>> = Option::deserialize(d)?;
    match s {
        None => Ok(Vec::new()),
        Some(s) => STANDARD
            .decode(s.as_bytes())
            .map_err(serde::de::Error::custom),
    }
}

/// A stored message as `STREAM.MSG.GET` returns it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct StoredMsg {
    /// Subject.
    pub subject: String,
    /// Stream sequence.
    #[serde(rename = "seq")]
    pub sequence: u64,
    /// Raw `NATS/1.0` header block (base64 on the wire).
    #[serde(
        rename = "hdrs",
        default,
        skip_serializing_if = "Vec::is_empty",
        serialize_with = "ser_b64",
        deserialize_with = "de_b64"
    )]
    pub header: Vec<u8>,
    /// Payload (base64 on the wire).
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        serialize_with = "ser_b64",
        deserialize_with = "de_b64"
    )]
    pub data: Vec<u8>,
    /// Store time.
    pub time: Timestamp,
}

/// `STREAM.MSG.GET` reply body.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct MsgGetResponse {
    /// The message.
    pub message: StoredMsg,
}
impl ApiResponseType for MsgGetResponse {
    const TYPE: &'static str = types::STREAM_MSG_GET;
}

/// `STREAM.MSG.DELETE` request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct MsgDeleteRequest {
    /// Sequence to delete.
    #[serde(deserialize_with = "null_default")]
    pub seq: u64,
    /// Skip overwriting the bytes (faster; InfiniStream never overwrites in place).
    #[serde(skip_serializing_if = "is_false", deserialize_with = "null_default")]
    pub no_erase: bool,
}

/// `STREAM.MSG.DELETE` reply body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct MsgDeleteResponse {
    /// Deleted.
    #[serde(default, skip_serializing_if = "is_false")]
    pub success: bool,
}
impl ApiResponseType for MsgDeleteResponse {
    const TYPE: &'static str = types::STREAM_MSG_DELETE;
}

/// The reply to a JetStream publish: `{"stream":"ORDERS","seq":2}`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PubAck {
    /// Stream that stored the message.
    pub stream: String,
    /// Its sequence (0 in error replies).
    #[serde(rename = "seq", default)]
    pub sequence: u64,
    /// JetStream domain.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub domain: String,
    /// The `Nats-Msg-Id` was seen within the duplicate window; `seq` is the original's.
    #[serde(default, skip_serializing_if = "is_false")]
    pub duplicate: bool,
    /// Counter value (counter streams).
    #[serde(rename = "val", default, skip_serializing_if = "String::is_empty")]
    pub value: String,
    /// Batch id (batch publish).
    #[serde(rename = "batch", default, skip_serializing_if = "String::is_empty")]
    pub batch_id: String,
    /// Batch size (batch publish).
    #[serde(rename = "count", default, skip_serializing_if = "is_zero_u64")]
    pub batch_size: u64,
}

impl PubAck {
    /// The ack as JSON, byte for byte what `serde_json::to_vec` gives, written
    /// directly: one is rendered per stored message, and the serde pass (a formatter
    /// and an escape scan per field) is most of that cost. A string that would need
    /// escaping (never a valid stream name, id or counter value) takes the serde path.
    pub fn to_json(&self) -> Vec<u8> {
        let plain = |s: &str| {
            s.bytes()
                .all(|b| b >= 0x20 && b != b'"' && b != b'\\' && b != 0x7f)
        };
        if ![&self.stream, &self.domain, &self.value, &self.batch_id]
            .iter()
            .all(|s| plain(s))
        {
            return serde_json::to_vec(self).unwrap_or_default();
        }
        let mut out = Vec::with_capacity(
            48 + self.stream.len() + self.domain.len() + self.value.len() + self.batch_id.len(),
        );
        let field = |out: &mut Vec<u8>, name: &str, value: &str, quoted: bool| {
            out.extend_from_slice(b",\"");
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(if quoted { b"\":\"" } else { b"\":" });
            out.extend_from_slice(value.as_bytes());
            if quoted {
                out.push(b'"');
            }
        };
        out.extend_from_slice(b"{\"stream\":\"");
        out.extend_from_slice(self.stream.as_bytes());
        out.push(b'"');
        field(&mut out, "seq", &self.sequence.to_string(), false);
        if !self.domain.is_empty() {
            field(&mut out, "domain", &self.domain, true);
        }
        if self.duplicate {
            field(&mut out, "duplicate", "true", false);
        }
        if !self.value.is_empty() {
            field(&mut out, "val", &self.value, true);
        }
        if !self.batch_id.is_empty() {
            field(&mut out, "batch", &self.batch_id, true);
        }
        if self.batch_size != 0 {
            field(&mut out, "count", &self.batch_size.to_string(), false);
        }
        out.push(b'}');
        out
    }

    /// A plain ack.
    pub fn new(stream: impl Into<String>, sequence: u64) -> Self {
        Self {
            stream: stream.into(),
            sequence,
            ..Self::default()
        }
    }

    /// The ack for a duplicate publish, pointing at the original sequence.
    pub fn duplicate(stream: impl Into<String>, sequence: u64) -> Self {
        Self {
            duplicate: true,
            ..Self::new(stream, sequence)
        }
    }
}

#[derive(Serialize)]
struct PubAckError<'a> {
    error: &'a ApiError,
    stream: &'a str,
    seq: u64,
}

/// Renders a publish reply: the ack, or nats-server's
/// `{"error":{…},"stream":"ORDERS","seq":0}` (stream empty when no stream was reached).
pub fn render_pub_ack(result: &Result<PubAck, (String, ApiError)>) -> Vec<u8> {
    match result {
        Ok(ack) => ack.to_json(),
        Err((stream, error)) => serde_json::to_vec(&PubAckError {
            error,
            stream,
            seq: 0,
        })
        .unwrap_or_default(),
    }
}

/// Parses a publish reply as clients do: `error` wins.
pub fn parse_pub_ack(payload: &[u8]) -> Result<Result<PubAck, ApiError>, serde_json::Error> {
    #[derive(Deserialize)]
    struct Probe {
        #[serde(default)]
        error: Option<ApiError>,
    }
    let probe: Probe = serde_json::from_slice(payload)?;
    match probe.error {
        Some(e) => Ok(Err(e)),
        None => Ok(Ok(serde_json::from_slice(payload)?)),
    }
}

/// Status replies of direct get (a bare `NATS/1.0 <code> <text>` header block).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DirectGetStatus {
    /// `404 Message Not Found`.
    NotFound,
    /// `404 No Results` (multi-last / time-bounded batch found nothing).
    NoResults,
    /// `408 Empty Request`.
    EmptyRequest,
    /// `408 Malformed Request`.
    MalformedRequest,
    /// `408 Bad Request`.
    BadRequest,
    /// `412 Required Api Level`.
    RequiredApiLevel,
    /// `413 Too Many Results`.
    TooManyResults,
}

impl DirectGetStatus {
    /// Status code and description.
    pub fn code_and_text(self) -> (u16, &'static str) {
        match self {
            Self::NotFound => (404, "Message Not Found"),
            Self::NoResults => (404, "No Results"),
            Self::EmptyRequest => (408, "Empty Request"),
            Self::MalformedRequest => (408, "Malformed Request"),
            Self::BadRequest => (408, "Bad Request"),
            Self::RequiredApiLevel => (412, "Required Api Level"),
            Self::TooManyResults => (413, "Too Many Results"),
        }
    }

    /// The header block to send (no payload).
    pub fn header_block(self) -> Vec<u8> {
        let (code, text) = self.code_and_text();
        status_header(code, text)
    }
}

/// A bare status header block: `NATS/1.0 <code> <text>\r\n\r\n`.
pub fn status_header(code: u16, text: &str) -> Vec<u8> {
    format!("NATS/1.0 {code} {text}\r\n\r\n").into_bytes()
}

/// A status header block with extra headers, e.g. a pull's
/// `NATS/1.0 408 Request Timeout\r\nNats-Pending-Messages: 1\r\nNats-Pending-Bytes: 0\r\n\r\n`.
pub fn status_header_with(code: u16, text: &str, extra: &[(&str, String)]) -> Vec<u8> {
    let mut s = format!("NATS/1.0 {code} {text}\r\n");
    for (k, v) in extra {
        let _ = write!(s, "{k}: {v}\r\n");
    }
    s.push_str("\r\n");
    s.into_bytes()
}

/// What a direct get reply tells about one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectGetMeta<'a> {
    /// Stream name.
    pub stream: &'a str,
    /// Message subject.
    pub subject: &'a str,
    /// Stream sequence.
    pub seq: u64,
    /// Store time.
    pub time: Timestamp,
    /// For batch replies: (messages pending after this one, previous sequence or 0).
    pub batch: Option<(u64, u64)>,
}

impl DirectGetMeta<'_> {
    /// The reply's header block: the message's own headers (if any) followed by
    /// `Nats-Stream`, `Nats-Subject`, `Nats-Sequence`, `Nats-Time-Stamp` and, in batches,
    /// `Nats-Num-Pending` and `Nats-Last-Sequence`, as nats-server writes them.
    pub fn header_block(&self, stored_headers: &[u8]) -> Vec<u8> {
        let mut out = String::new();
        let _ = write!(out, "{}: {}\r\n", headers::STREAM, self.stream);
        let _ = write!(out, "{}: {}\r\n", headers::SUBJECT, self.subject);
        let _ = write!(out, "{}: {}\r\n", headers::SEQUENCE, self.seq);
        let _ = write!(out, "{}: {}\r\n", headers::TIME_STAMP, self.time);
        if let Some((pending, last)) = self.batch {
            let _ = write!(out, "{}: {}\r\n", headers::NUM_PENDING, pending);
            let _ = write!(out, "{}: {}\r\n", headers::LAST_SEQUENCE, last);
        }
        let mut block = if stored_headers.ends_with(b"\r\n\r\n") {
            stored_headers[..stored_headers.len() - 2].to_vec()
        } else {
            b"NATS/1.0\r\n".to_vec()
        };
        block.extend_from_slice(out.as_bytes());
        block.extend_from_slice(b"\r\n");
        block
    }
}

/// The end-of-batch status after a direct get batch:
/// `NATS/1.0 204 EOB\r\nNats-Num-Pending: n\r\nNats-Last-Sequence: s\r\n\r\n`
/// (plus `Nats-UpTo-Sequence` for multi-last batches).
pub fn direct_get_eob(num_pending: u64, last_seq: u64, up_to_seq: Option<u64>) -> Vec<u8> {
    let mut extra = vec![
        (headers::NUM_PENDING, num_pending.to_string()),
        (headers::LAST_SEQUENCE, last_seq.to_string()),
    ];
    if let Some(up_to) = up_to_seq {
        extra.push((headers::UP_TO_SEQUENCE, up_to.to_string()));
    }
    status_header_with(204, "EOB", &extra)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acks() -> Vec<PubAck> {
        let mut all = Vec::new();
        for stream in [
            "ORDERS",
            "$G/ORDERS",
            "KV_a-b_c",
            "s\"q",
            "back\\slash",
            "tab\t",
            "é",
        ] {
            for (duplicate, value, batch_id, batch_size, domain) in [
                (false, "", "", 0, ""),
                (true, "", "", 0, "hub"),
                (false, "-12345678901234567890", "", 0, ""),
                (false, "", "b1", 1000, ""),
                (false, "7", "id\"", 0, ""),
            ] {
                all.push(PubAck {
                    stream: stream.into(),
                    sequence: u64::MAX,
                    domain: domain.into(),
                    duplicate,
                    value: value.into(),
                    batch_id: batch_id.into(),
                    batch_size,
                });
            }
        }
        all
    }

    #[test]
    fn pub_ack_json_is_serdes_byte_for_byte() {
        for ack in acks() {
            let serde = serde_json::to_vec(&ack).unwrap_or_default();
            assert_eq!(
                String::from_utf8_lossy(&ack.to_json()),
                String::from_utf8_lossy(&serde)
            );
            assert_eq!(parse_pub_ack(&ack.to_json()).ok(), Some(Ok(ack)));
        }
    }

    /// What rendering one PubAck costs, written directly and through serde, printed
    /// (`--nocapture`), never asserted (debug builds: compare the two rows only).
    #[test]
    fn pub_ack_render_cost() {
        let acks: Vec<PubAck> = (0..20_000u64)
            .map(|i| PubAck {
                value: if i % 2 == 0 {
                    i.to_string()
                } else {
                    String::new()
                },
                ..PubAck::new("ORDERS", i)
            })
            .collect();
        let started = std::time::Instant::now();
        let direct: usize = acks.iter().map(|a| a.to_json().len()).sum();
        let direct_t = started.elapsed();
        let started = std::time::Instant::now();
        let serde: usize = acks
            .iter()
            .map(|a| serde_json::to_vec(a).unwrap_or_default().len())
            .sum();
        let serde_t = started.elapsed();
        assert_eq!(direct, serde);
        println!(
            "PubAck JSON: direct {:.2} µs, serde {:.2} µs per ack",
            direct_t.as_secs_f64() * 1e6 / 20_000.0,
            serde_t.as_secs_f64() * 1e6 / 20_000.0
        );
    }
}
