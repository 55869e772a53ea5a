//! `$JS.ACK` reply subjects and ack payloads.
//!
//! Every message a consumer delivers carries a reply subject that encodes where it came
//! from — `$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>` — and
//! clients both parse it (async-nats `Message::info`, nats.py `metadata`) and publish
//! their ack to it. Since consumer state lives in the control plane, an agent that
//! receives an ack may not be the one that delivered the message: the subject alone
//! must say which stream, consumer and sequences it acks. Newer servers and clients also
//! speak the v2 form with domain and account hash (`$JS.ACK.<domain>.<acchash>.…` plus an
//! optional random token); both are parsed, v1 is what InfiniStream sends.
//!
//! The payload says what kind of ack it is: `+ACK` (or empty), `-NAK` with an optional
//! `{"delay":ns}` (or a ` <duration>` suffix nats.go once sent), `+WPI`, `+TERM` with an
//! optional reason, `+NXT` with an optional batch request.

use super::consumer::{NextRequest, PullStatus};
use super::time::GoDuration;
use super::{Nanos, Timestamp};
use serde::Deserialize;
use std::fmt;

const PREFIX: &str = "$JS.ACK.";

/// What an ack reply subject says about the delivery it acks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AckSubject {
    /// JetStream domain (v2 form only; `_` on the wire means none).
    pub domain: Option<String>,
    /// Account hash (v2 form only).
    pub account_hash: Option<String>,
    /// Stream name.
    pub stream: String,
    /// Consumer name.
    pub consumer: String,
    /// Delivery count of this message (1 on first delivery).
    pub delivered: u64,
    /// Stream sequence.
    pub stream_seq: u64,
    /// Consumer sequence.
    pub consumer_seq: u64,
    /// Store time of the message, nanoseconds since the Unix epoch.
    pub timestamp_nanos: i64,
    /// Messages pending after this one.
    pub pending: u64,
    /// v2 random token, if present.
    pub token: Option<String>,
}

/// Why an ack subject did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AckSubjectError {
    /// Not under `$JS.ACK.`.
    #[error("not an ack subject: `{0}`")]
    NotAck(String),
    /// Wrong number of tokens (v1 has 9, v2 has 11 or 12).
    #[error("ack subject has {tokens} tokens, expected 9, 11 or 12: `{subject}`")]
    TokenCount {
        /// Tokens found.
        tokens: usize,
        /// The subject.
        subject: String,
    },
    /// A numeric token is not a number.
    #[error("ack subject field `{field}` is not a number: `{value}`")]
    BadNumber {
        /// Which field.
        field: &'static str,
        /// The token.
        value: String,
    },
    /// An empty token.
    #[error("ack subject has an empty token: `{0}`")]
    EmptyToken(String),
}

fn num<T: std::str::FromStr>(field: &'static str, value: &str) -> Result<T, AckSubjectError> {
    value.parse().map_err(|_| AckSubjectError::BadNumber {
        field,
        value: value.to_owned(),
    })
}

impl AckSubject {
    /// Parses the v1 (`$JS.ACK.` + 7 tokens) or v2 (`$JS.ACK.` + 9 or 10 tokens) form.
    pub fn parse(subject: &str) -> Result<AckSubject, AckSubjectError> {
        let rest = subject
            .strip_prefix(PREFIX)
            .ok_or_else(|| AckSubjectError::NotAck(subject.to_owned()))?;
        let tokens: Vec<&str> = rest.split('.').collect();
        if tokens.iter().any(|t| t.is_empty()) {
            return Err(AckSubjectError::EmptyToken(subject.to_owned()));
        }
        let (domain, account_hash, body, token) = match tokens.len() {
            7 => (None, None, &tokens[..], None),
            9 | 10 => {
                let domain = (tokens[0] != "_").then(|| tokens[0].to_owned());
                (
                    domain,
                    Some(tokens[1].to_owned()),
                    &tokens[2..9],
                    tokens.get(9).map(|t| (*t).to_owned()),
                )
            }
            n => {
                return Err(AckSubjectError::TokenCount {
                    tokens: n + 2,
                    subject: subject.to_owned(),
                });
            }
        };
        Ok(AckSubject {
            domain,
            account_hash,
            stream: body[0].to_owned(),
            consumer: body[1].to_owned(),
            delivered: num("delivered", body[2])?,
            stream_seq: num("stream_seq", body[3])?,
            consumer_seq: num("consumer_seq", body[4])?,
            timestamp_nanos: num("timestamp", body[5])?,
            pending: num("pending", body[6])?,
            token,
        })
    }

    /// The message's store time.
    pub fn timestamp(&self) -> Timestamp {
        Timestamp::from_unix_nanos(i128::from(self.timestamp_nanos))
    }

    /// Whether this is the v2 form (with domain and account hash).
    pub fn is_v2(&self) -> bool {
        self.account_hash.is_some()
    }
}

impl fmt::Display for AckSubject {
    /// Writes the form it was parsed from: v1 unless an account hash is present.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(PREFIX)?;
        if let Some(hash) = &self.account_hash {
            write!(f, "{}.{}.", self.domain.as_deref().unwrap_or("_"), hash)?;
        }
        write!(
            f,
            "{}.{}.{}.{}.{}.{}.{}",
            self.stream,
            self.consumer,
            self.delivered,
            self.stream_seq,
            self.consumer_seq,
            self.timestamp_nanos,
            self.pending
        )?;
        if let (Some(_), Some(token)) = (&self.account_hash, &self.token) {
            write!(f, ".{token}")?;
        }
        Ok(())
    }
}

/// The subject pull requests go to: `$JS.API.CONSUMER.MSG.NEXT.<stream>.<consumer>`.
pub fn next_subject(stream: &str, consumer: &str) -> String {
    format!("$JS.API.CONSUMER.MSG.NEXT.{stream}.{consumer}")
}

/// The push flow-control reply subject prefix nats-server uses: `$JS.FC.<stream>.<consumer>.<id>`.
pub fn flow_control_subject(stream: &str, consumer: &str, id: &str) -> String {
    format!("$JS.FC.{stream}.{consumer}.{id}")
}

/// What an ack payload asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AckKind {
    /// `+ACK`, empty, or the legacy `+OK`.
    Ack,
    /// `-NAK`: redeliver, after `delay` if given (nanoseconds).
    Nak {
        /// Delay before redelivery.
        delay: Option<Nanos>,
    },
    /// `+WPI`: still working, reset the ack timer.
    Progress,
    /// `+NXT`: ack, then deliver the next message(s) to the ack's reply subject. The
    /// ack counts even when the request part is bad (nats-server answers the reply
    /// with the `400 Bad Request` status).
    Next {
        /// The pull request (batch 1 when the payload is just `+NXT`).
        request: Result<NextRequest, PullStatus>,
    },
    /// `+TERM`: never redeliver.
    Term {
        /// Optional reason after the verb.
        reason: Option<String>,
    },
}

/// Why an ack payload was not understood (nats-server ignores such acks).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown ack payload: `{0}`")]
pub struct AckKindError(pub String);

#[derive(Deserialize)]
struct NakOptions {
    #[serde(default)]
    delay: Nanos,
}

impl AckKind {
    /// Parses an ack payload as nats-server's `processAck` does.
    pub fn parse(payload: &[u8]) -> Result<AckKind, AckKindError> {
        let unknown = || AckKindError(String::from_utf8_lossy(payload).into_owned());
        if payload.is_empty() || payload == b"+ACK" || payload == b"+OK" {
            return Ok(AckKind::Ack);
        }
        let verb_len = 4;
        if payload.len() < verb_len {
            return Err(unknown());
        }
        let (verb, rest) = payload.split_at(verb_len);
        match verb {
            b"+ACK" => Ok(AckKind::Ack),
            b"+WPI" if rest.is_empty() => Ok(AckKind::Progress),
            b"-NAK" => {
                let rest = rest.trim_ascii();
                if rest.is_empty() {
                    return Ok(AckKind::Nak { delay: None });
                }
                // A delay nats-server can't parse makes a plain NAK, as there.
                let delay = if rest.first() == Some(&b'{') {
                    serde_json::from_slice::<NakOptions>(rest)
                        .ok()
                        .map(|o| o.delay)
                } else {
                    std::str::from_utf8(rest).ok().and_then(GoDuration::parse)
                };
                Ok(AckKind::Nak { delay })
            }
            b"+NXT" => Ok(AckKind::Next {
                request: NextRequest::parse(rest),
            }),
            _ if payload.starts_with(b"+TERM") => {
                let reason = payload[5..].trim_ascii();
                Ok(AckKind::Term {
                    reason: (!reason.is_empty())
                        .then(|| String::from_utf8_lossy(reason).into_owned()),
                })
            }
            _ => Err(unknown()),
        }
    }

    /// The payload a client sends for this ack.
    pub fn to_payload(&self) -> Vec<u8> {
        match self {
            AckKind::Ack => b"+ACK".to_vec(),
            AckKind::Progress => b"+WPI".to_vec(),
            AckKind::Nak { delay: None } => b"-NAK".to_vec(),
            AckKind::Nak { delay: Some(d) } => format!("-NAK {{\"delay\":{d}}}").into_bytes(),
            AckKind::Term { reason: None } => b"+TERM".to_vec(),
            AckKind::Term { reason: Some(r) } => format!("+TERM {r}").into_bytes(),
            AckKind::Next { request: Ok(r) } if *r == NextRequest::single() => b"+NXT".to_vec(),
            AckKind::Next { request: Ok(r) } => {
                let mut out = b"+NXT ".to_vec();
                out.extend_from_slice(&serde_json::to_vec(r).unwrap_or_default());
                out
            }
            AckKind::Next { request: Err(_) } => b"+NXT".to_vec(),
        }
    }
}
