//! Priority groups (ADR-42): what a pull request of a consumer with a
//! `priority_policy` must carry, the `CONSUMER.UNPIN` request, and the pinned and
//! unpinned advisories, as nats-server 2.15.1 has them (`processNextMsgRequest`,
//! `jsConsumerUnpinRequest`, `JSConsumerGroupPinnedAdvisory`).
//!
//! nats-server keeps one pin per consumer (its first group is the one reported), so
//! this module does too.

use serde::{Deserialize, Serialize};

use super::ApiError;
use super::advisory::TypedEvent;
use super::consumer::{ConsumerConfig, NextRequest, PriorityPolicy, PullStatus, valid_group_name};
use super::response::parse_required;
use super::response::{ApiResponseType, types};

/// `type` of the pinned advisory.
pub const PINNED_TYPE: &str = "io.nats.jetstream.advisory.v1.consumer_group_pinned";
/// `type` of the unpinned advisory.
pub const UNPINNED_TYPE: &str = "io.nats.jetstream.advisory.v1.consumer_group_unpinned";
/// The unpinned advisory's reason after `CONSUMER.UNPIN`.
pub const REASON_ADMIN: &str = "admin";
/// The unpinned advisory's reason when the pinned client stopped pulling.
pub const REASON_TIMEOUT: &str = "timeout";
/// The account nats-server names in these advisories (the global account).
pub const GLOBAL_ACCOUNT: &str = "$G";

/// `$JS.EVENT.ADVISORY.CONSUMER.PINNED.<stream>.<consumer>`.
pub fn pinned_subject(stream: &str, consumer: &str) -> String {
    format!("$JS.EVENT.ADVISORY.CONSUMER.PINNED.{stream}.{consumer}")
}

/// `$JS.EVENT.ADVISORY.CONSUMER.UNPINNED.<stream>.<consumer>`.
pub fn unpinned_subject(stream: &str, consumer: &str) -> String {
    format!("$JS.EVENT.ADVISORY.CONSUMER.UNPINNED.{stream}.{consumer}")
}

/// A group switched to a new pinned client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GroupPinned {
    #[serde(flatten)]
    pub event: TypedEvent,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub account: String,
    pub stream: String,
    pub consumer: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub domain: String,
    pub group: String,
    #[serde(rename = "pinned_id")]
    pub pinned_client_id: String,
}

/// A group lost its pinned client (`reason`: [`REASON_ADMIN`] or [`REASON_TIMEOUT`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GroupUnpinned {
    #[serde(flatten)]
    pub event: TypedEvent,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub account: String,
    pub stream: String,
    pub consumer: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub domain: String,
    pub group: String,
    pub reason: String,
}

/// `CONSUMER.UNPIN` request body.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct UnpinRequest {
    /// The group to unpin.
    pub group: String,
}

impl UnpinRequest {
    /// nats-server's checks of the body, in its order: JSON (an empty body is
    /// `unexpected end of JSON input`), a group, a valid group name. Whether the
    /// consumer has the group is [`check_unpin_group`], after the lookups.
    pub fn parse(payload: &[u8]) -> Result<UnpinRequest, ApiError> {
        if payload.trim_ascii().is_empty() {
            return Err(ApiError::invalid_json("unexpected end of JSON input"));
        }
        let req: Option<UnpinRequest> = parse_required(payload)?;
        let req = req.unwrap_or_default();
        if req.group.is_empty() {
            return Err(ApiError::invalid_json("consumer group not specified"));
        }
        if !valid_group_name(&req.group) {
            return Err(ApiError::consumer_invalid_group_name());
        }
        Ok(req)
    }
}

/// `CONSUMER.UNPIN` for `group` on a consumer configured with `cfg`: the group must be
/// one of its groups (any policy: nats-server unpins an overflow consumer too).
pub fn check_unpin_group(cfg: &ConsumerConfig, group: &str) -> Result<(), ApiError> {
    if cfg.priority_groups.iter().any(|g| g == group) {
        Ok(())
    } else {
        Err(ApiError::consumer_invalid_priority_group())
    }
}

/// `CONSUMER.UNPIN` reply body (nothing but the type).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct UnpinResponse {}

impl ApiResponseType for UnpinResponse {
    const TYPE: &'static str = types::CONSUMER_UNPIN;
}

impl NextRequest {
    /// nats-server's priority checks of a pull request (after the request limits):
    /// the fields of one policy on a consumer of another, the priority range, and,
    /// on a consumer with a policy, the group. A request that is not JSON carries no
    /// priority group and is checked for nothing here, as in nats-server.
    pub fn check_priority(&self, cfg: &ConsumerConfig) -> Result<(), PullStatus> {
        if !self.json {
            return Ok(());
        }
        let bad = |why: &str| Err(PullStatus::BadRequest(why.to_owned()));
        if (self.min_pending != 0 || self.min_ack_pending != 0)
            && cfg.priority_policy != PriorityPolicy::Overflow
        {
            return bad("Not a Overflow Priority consumer");
        }
        if !self.id.is_empty() && cfg.priority_policy != PriorityPolicy::PinnedClient {
            return bad("Not a Pinned Client Priority consumer");
        }
        if !(0..=9).contains(&self.priority) {
            return bad("Priority must be between 0 and 9");
        }
        if cfg.priority_policy != PriorityPolicy::None {
            if self.group.is_empty() {
                return bad("Priority Group missing");
            }
            if !cfg.priority_groups.contains(&self.group) {
                return bad("Invalid Priority Group");
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(policy: PriorityPolicy) -> ConsumerConfig {
        ConsumerConfig {
            priority_policy: policy,
            priority_groups: vec!["A".into()],
            ..ConsumerConfig::default()
        }
    }

    fn status(body: &str, policy: PriorityPolicy) -> Option<String> {
        let req = NextRequest::parse(body.as_bytes()).expect("parses");
        req.check_priority(&cfg(policy)).err().map(|s| {
            String::from_utf8(s.header_block())
                .expect("utf-8")
                .trim()
                .to_owned()
        })
    }

    #[test]
    fn pull_requests_are_checked_as_nats_server_does() {
        use PriorityPolicy::{Overflow, PinnedClient};
        // Answers captured from nats-server 2.15.1.
        assert_eq!(
            status(r#"{"batch":1}"#, PinnedClient).as_deref(),
            Some("NATS/1.0 400 Bad Request - Priority Group missing")
        );
        assert_eq!(
            status(r#"{"batch":1,"group":"B"}"#, PinnedClient).as_deref(),
            Some("NATS/1.0 400 Bad Request - Invalid Priority Group")
        );
        assert_eq!(
            status(r#"{"group":"A","min_pending":3}"#, PinnedClient).as_deref(),
            Some("NATS/1.0 400 Bad Request - Not a Overflow Priority consumer")
        );
        assert_eq!(
            status(r#"{"group":"A","priority":10}"#, PinnedClient).as_deref(),
            Some("NATS/1.0 400 Bad Request - Priority must be between 0 and 9")
        );
        assert_eq!(
            status(r#"{"group":"A","id":"x"}"#, Overflow).as_deref(),
            Some("NATS/1.0 400 Bad Request - Not a Pinned Client Priority consumer")
        );
        assert_eq!(status(r#"{"group":"A","min_pending":3}"#, Overflow), None);
        // No JSON, no priority group: nothing to check.
        assert_eq!(status("", PinnedClient), None);
        assert_eq!(status("5", Overflow), None);
    }

    #[test]
    fn unpin_requests_are_checked_in_nats_server_order() {
        let err = |body: &str| {
            UnpinRequest::parse(body.as_bytes())
                .err()
                .map(|e| e.err_code)
        };
        assert_eq!(err(""), Some(ApiError::invalid_json("x").err_code));
        assert_eq!(err("{}"), Some(ApiError::invalid_json("x").err_code));
        assert_eq!(
            UnpinRequest::parse(b"{}").err().map(|e| e.description),
            Some("invalid JSON: consumer group not specified".to_owned())
        );
        assert_eq!(
            err(r#"{"group":"a.b"}"#),
            Some(ApiError::consumer_invalid_group_name().err_code)
        );
        assert_eq!(err(r#"{"group":"A"}"#), None);
        let c = cfg(PriorityPolicy::Overflow);
        assert!(check_unpin_group(&c, "A").is_ok());
        assert_eq!(
            check_unpin_group(&c, "B").err().map(|e| e.err_code),
            Some(ApiError::consumer_invalid_priority_group().err_code)
        );
    }

    #[test]
    fn advisories_have_nats_server_fields() {
        let ev = TypedEvent::new(PINNED_TYPE, "ID".into(), 0);
        let pinned = GroupPinned {
            event: ev,
            account: GLOBAL_ACCOUNT.into(),
            stream: "S".into(),
            consumer: "P".into(),
            domain: String::new(),
            group: "A".into(),
            pinned_client_id: "PIN".into(),
        };
        let v = serde_json::to_value(&pinned).expect("json");
        assert_eq!(v["type"], PINNED_TYPE);
        assert_eq!(v["pinned_id"], "PIN");
        assert_eq!(v["account"], "$G");
        assert_eq!(v["group"], "A");
        assert_eq!(
            pinned_subject("S", "P"),
            "$JS.EVENT.ADVISORY.CONSUMER.PINNED.S.P"
        );
    }
}
