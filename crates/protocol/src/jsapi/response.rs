//! The JSON envelope of `$JS.API` replies and request parsing.
//!
//! Every nats-server API reply is one JSON object whose first key is
//! `"type":"io.nats.jetstream.api.v1.<kind>"`, followed either by `"error":{…}` or by
//! the body's fields inline. Clients look for `error` first, so rendering keeps that
//! shape for every response type through one function pair instead of a hand-written
//! envelope per handler. Requests with an empty payload mean "all defaults" in
//! nats-server, and malformed JSON is answered with `invalid JSON: …` (10025).

use super::ApiError;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// A response body and the `type` string nats-server tags it with.
pub trait ApiResponseType {
    /// e.g. `io.nats.jetstream.api.v1.stream_create_response`.
    const TYPE: &'static str;
}

#[derive(Serialize)]
struct OkEnvelope<'a, T> {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(flatten)]
    body: &'a T,
}

#[derive(Serialize)]
struct ErrEnvelope<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    error: &'a ApiError,
}

/// Renders a successful reply: `{"type":T::TYPE, …body}`.
pub fn render_ok<T: Serialize + ApiResponseType>(body: &T) -> Vec<u8> {
    let envelope = OkEnvelope {
        kind: T::TYPE,
        body,
    };
    // Serializing our own plain structs into a Vec cannot fail: no maps with
    // non-string keys, no I/O. Fall back to an error envelope rather than panic.
    serde_json::to_vec(&envelope).unwrap_or_else(|e| {
        render_error(
            T::TYPE,
            &ApiError::stream_general(format_args!("encoding reply: {e}")),
        )
    })
}

/// Renders an error reply of response type `kind`: `{"type":kind,"error":{…}}`.
pub fn render_error(kind: &str, error: &ApiError) -> Vec<u8> {
    let envelope = ErrEnvelope { kind, error };
    serde_json::to_vec(&envelope).unwrap_or_default()
}

#[derive(Serialize)]
struct ErrWithEnvelope<'a, T> {
    #[serde(rename = "type")]
    kind: &'static str,
    error: &'a ApiError,
    #[serde(flatten)]
    body: &'a T,
}

/// Renders an error reply that carries body fields as well, as some of nats-server's
/// do (`CONSUMER.PAUSE`): `{"type":T::TYPE,"error":{…}, …body}`.
pub fn render_error_with<T: Serialize + ApiResponseType>(error: &ApiError, body: &T) -> Vec<u8> {
    let envelope = ErrWithEnvelope {
        kind: T::TYPE,
        error,
        body,
    };
    serde_json::to_vec(&envelope).unwrap_or_else(|_| render_error(T::TYPE, error))
}

/// Renders either outcome under `T`'s type.
pub fn render_result<T: Serialize + ApiResponseType>(result: &Result<T, ApiError>) -> Vec<u8> {
    match result {
        Ok(body) => render_ok(body),
        Err(error) => render_error(T::TYPE, error),
    }
}

/// Parses a request payload: empty (or whitespace-only) means `T::default()`, as in
/// nats-server; malformed JSON is nats-server's `invalid JSON: …` error.
pub fn parse_request<T: DeserializeOwned + Default>(payload: &[u8]) -> Result<T, ApiError> {
    if payload.iter().all(u8::is_ascii_whitespace) || payload.trim_ascii() == b"null" {
        // Go's json.Unmarshal of `null` into a struct is a no-op: nats-server reads
        // it as "all defaults", and async-nats sends it for requests without a body.
        return Ok(T::default());
    }
    serde_json::from_slice(payload).map_err(ApiError::invalid_json)
}

/// Parses a payload that must be present (e.g. a stream config) with the same error.
pub fn parse_required<T: DeserializeOwned>(payload: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(payload).map_err(ApiError::invalid_json)
}

#[derive(Deserialize)]
struct ErrorProbe {
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    error: Option<ApiError>,
}

/// A parsed reply: its `type` (if any) and either the body or the API error.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedResponse<T> {
    /// The `type` field, absent in `PubAck`s.
    pub kind: Option<String>,
    /// The body or the `error` object.
    pub result: Result<T, ApiError>,
}

/// Parses a reply as a client would: `error` wins, otherwise the body.
pub fn parse_response<T: DeserializeOwned>(
    payload: &[u8],
) -> Result<ParsedResponse<T>, serde_json::Error> {
    let probe: ErrorProbe = serde_json::from_slice(payload)?;
    let result = match probe.error {
        Some(error) => Err(error),
        None => Ok(serde_json::from_slice(payload)?),
    };
    Ok(ParsedResponse {
        kind: probe.kind,
        result,
    })
}

/// Response `type` strings, one per API reply kind.
pub mod types {
    /// `$JS.API.INFO`.
    pub const ACCOUNT_INFO: &str = "io.nats.jetstream.api.v1.account_info_response";
    /// `STREAM.CREATE`.
    pub const STREAM_CREATE: &str = "io.nats.jetstream.api.v1.stream_create_response";
    /// `STREAM.UPDATE`.
    pub const STREAM_UPDATE: &str = "io.nats.jetstream.api.v1.stream_update_response";
    /// `STREAM.INFO`.
    pub const STREAM_INFO: &str = "io.nats.jetstream.api.v1.stream_info_response";
    /// `STREAM.DELETE`.
    pub const STREAM_DELETE: &str = "io.nats.jetstream.api.v1.stream_delete_response";
    /// `STREAM.NAMES`.
    pub const STREAM_NAMES: &str = "io.nats.jetstream.api.v1.stream_names_response";
    /// `STREAM.LIST`.
    pub const STREAM_LIST: &str = "io.nats.jetstream.api.v1.stream_list_response";
    /// `STREAM.PURGE`.
    pub const STREAM_PURGE: &str = "io.nats.jetstream.api.v1.stream_purge_response";
    /// `STREAM.MSG.GET`.
    pub const STREAM_MSG_GET: &str = "io.nats.jetstream.api.v1.stream_msg_get_response";
    /// `STREAM.MSG.DELETE`.
    pub const STREAM_MSG_DELETE: &str = "io.nats.jetstream.api.v1.stream_msg_delete_response";
    /// `STREAM.SNAPSHOT`.
    pub const STREAM_SNAPSHOT: &str = "io.nats.jetstream.api.v1.stream_snapshot_response";
    /// `STREAM.RESTORE`.
    pub const STREAM_RESTORE: &str = "io.nats.jetstream.api.v1.stream_restore_response";
    /// `STREAM.PEER.REMOVE`.
    pub const STREAM_REMOVE_PEER: &str = "io.nats.jetstream.api.v1.stream_remove_peer_response";
    /// `STREAM.LEADER.STEPDOWN`.
    pub const STREAM_LEADER_STEPDOWN: &str =
        "io.nats.jetstream.api.v1.stream_leader_stepdown_response";
    /// `CONSUMER.CREATE` / `CONSUMER.DURABLE.CREATE`.
    pub const CONSUMER_CREATE: &str = "io.nats.jetstream.api.v1.consumer_create_response";
    /// `CONSUMER.INFO`.
    pub const CONSUMER_INFO: &str = "io.nats.jetstream.api.v1.consumer_info_response";
    /// `CONSUMER.DELETE`.
    pub const CONSUMER_DELETE: &str = "io.nats.jetstream.api.v1.consumer_delete_response";
    /// `CONSUMER.NAMES`.
    pub const CONSUMER_NAMES: &str = "io.nats.jetstream.api.v1.consumer_names_response";
    /// `CONSUMER.LIST`.
    pub const CONSUMER_LIST: &str = "io.nats.jetstream.api.v1.consumer_list_response";
    /// `CONSUMER.PAUSE`.
    pub const CONSUMER_PAUSE: &str = "io.nats.jetstream.api.v1.consumer_pause_response";
    /// `CONSUMER.UNPIN`.
    pub const CONSUMER_UNPIN: &str = "io.nats.jetstream.api.v1.consumer_unpin_response";
    /// `CONSUMER.RESET`.
    pub const CONSUMER_RESET: &str = "io.nats.jetstream.api.v1.consumer_reset_response";
    /// `CONSUMER.LEADER.STEPDOWN`.
    pub const CONSUMER_LEADER_STEPDOWN: &str =
        "io.nats.jetstream.api.v1.consumer_leader_stepdown_response";
    /// `META.LEADER.STEPDOWN`.
    pub const META_LEADER_STEPDOWN: &str = "io.nats.jetstream.api.v1.meta_leader_stepdown_response";
    /// `SERVER.REMOVE`.
    pub const META_SERVER_REMOVE: &str = "io.nats.jetstream.api.v1.meta_server_remove_response";
    /// `ACCOUNT.PURGE`.
    pub const ACCOUNT_PURGE: &str = "io.nats.jetstream.api.v1.account_purge_response";
    /// Replies to requests no handler understands (unknown `$JS.API` subjects).
    pub const SYSTEM: &str = "io.nats.jetstream.api.v1.system_response";
}
