//! The `$JS.API` subject router, as a pure function of the subject.
//!
//! nats-server subscribes one handler per API subject pattern; InfiniStream's agent
//! receives every `$JS.API.>` request on one subscription and needs the same dispatch.
//! [`ApiRoute::from_subject`] maps a subject to the operation and the names embedded in
//! it (stream, consumer, filter, direct-get subject), with the same token rules as
//! nats-server's patterns, and [`ApiRoute::response_type`] gives the `type` string of
//! the reply. Domain-qualified subjects (`$JS.<domain>.API.…`) route like `$JS.API.…`.

use super::response::types;

/// How a consumer create subject names the consumer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConsumerCreateRoute {
    /// `$JS.API.CONSUMER.CREATE.<stream>`: legacy ephemeral (name from the body, if any).
    Ephemeral {
        /// Stream.
        stream: String,
    },
    /// `$JS.API.CONSUMER.CREATE.<stream>.<consumer>[.<filter>]`.
    Named {
        /// Stream.
        stream: String,
        /// Consumer name.
        consumer: String,
        /// Filter subject carried in the subject (may contain dots and wildcards).
        filter: Option<String>,
    },
    /// `$JS.API.CONSUMER.DURABLE.CREATE.<stream>.<durable>`: legacy durable.
    Durable {
        /// Stream.
        stream: String,
        /// Durable name.
        durable: String,
    },
}

impl ConsumerCreateRoute {
    /// The stream the consumer is created on.
    pub fn stream(&self) -> &str {
        match self {
            Self::Ephemeral { stream }
            | Self::Named { stream, .. }
            | Self::Durable { stream, .. } => stream,
        }
    }
}

/// A `$JS.API` operation with the names from its subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiRoute {
    /// `$JS.API.INFO`.
    Info,
    /// `STREAM.CREATE.<stream>`.
    StreamCreate(String),
    /// `STREAM.UPDATE.<stream>`.
    StreamUpdate(String),
    /// `STREAM.INFO.<stream>`.
    StreamInfo(String),
    /// `STREAM.DELETE.<stream>`.
    StreamDelete(String),
    /// `STREAM.PURGE.<stream>`.
    StreamPurge(String),
    /// `STREAM.NAMES`.
    StreamNames,
    /// `STREAM.LIST`.
    StreamList,
    /// `STREAM.MSG.GET.<stream>`.
    StreamMsgGet(String),
    /// `STREAM.MSG.DELETE.<stream>`.
    StreamMsgDelete(String),
    /// `STREAM.SNAPSHOT.<stream>`.
    StreamSnapshot(String),
    /// `STREAM.RESTORE.<stream>`.
    StreamRestore(String),
    /// `STREAM.LEADER.STEPDOWN.<stream>`.
    StreamLeaderStepdown(String),
    /// `STREAM.PEER.REMOVE.<stream>`.
    StreamPeerRemove(String),
    /// `DIRECT.GET.<stream>` (JSON body).
    DirectGet(String),
    /// `DIRECT.GET.<stream>.<subject…>`: last message on the subject.
    DirectGetLastBySubject {
        /// Stream.
        stream: String,
        /// Subject (all remaining tokens).
        subject: String,
    },
    /// `CONSUMER.CREATE…` / `CONSUMER.DURABLE.CREATE…`.
    ConsumerCreate(ConsumerCreateRoute),
    /// `CONSUMER.INFO.<stream>.<consumer>`.
    ConsumerInfo {
        /// Stream.
        stream: String,
        /// Consumer.
        consumer: String,
    },
    /// `CONSUMER.DELETE.<stream>.<consumer>`.
    ConsumerDelete {
        /// Stream.
        stream: String,
        /// Consumer.
        consumer: String,
    },
    /// `CONSUMER.NAMES.<stream>`.
    ConsumerNames(String),
    /// `CONSUMER.LIST.<stream>`.
    ConsumerList(String),
    /// `CONSUMER.MSG.NEXT.<stream>.<consumer>`: a pull request.
    ConsumerMsgNext {
        /// Stream.
        stream: String,
        /// Consumer.
        consumer: String,
    },
    /// `CONSUMER.PAUSE.<stream>.<consumer>`.
    ConsumerPause {
        /// Stream.
        stream: String,
        /// Consumer.
        consumer: String,
    },
    /// `CONSUMER.UNPIN.<stream>.<consumer>`.
    ConsumerUnpin {
        /// Stream.
        stream: String,
        /// Consumer.
        consumer: String,
    },
    /// `CONSUMER.RESET.<stream>.<consumer>`.
    ConsumerReset {
        /// Stream.
        stream: String,
        /// Consumer.
        consumer: String,
    },
    /// `CONSUMER.LEADER.STEPDOWN.<stream>.<consumer>`.
    ConsumerLeaderStepdown {
        /// Stream.
        stream: String,
        /// Consumer.
        consumer: String,
    },
    /// `META.LEADER.STEPDOWN` (system account).
    MetaLeaderStepdown,
    /// `SERVER.REMOVE` (system account).
    ServerRemove,
    /// `ACCOUNT.PURGE.<account>` (system account).
    AccountPurge(String),
    /// Under `$JS.API` but matching no endpoint: nats-server has no responder.
    Unknown,
}

/// The subject is not a JetStream API subject at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a JetStream API subject: `{0}`")]
pub struct NotApiSubject(pub String);

impl ApiRoute {
    /// Routes `$JS.API.<rest>` (or `$JS.<domain>.API.<rest>`).
    pub fn from_subject(subject: &str) -> Result<ApiRoute, NotApiSubject> {
        let rest = api_rest(subject).ok_or_else(|| NotApiSubject(subject.to_owned()))?;
        let t: Vec<&str> = rest.split('.').collect();
        if t.iter().any(|tok| tok.is_empty()) {
            return Ok(ApiRoute::Unknown);
        }
        let s = |i: usize| t[i].to_owned();
        let tail = |i: usize| t[i..].join(".");
        let route = match t.as_slice() {
            ["INFO"] => ApiRoute::Info,
            ["STREAM", "NAMES"] => ApiRoute::StreamNames,
            ["STREAM", "LIST"] => ApiRoute::StreamList,
            ["STREAM", "CREATE", _] => ApiRoute::StreamCreate(s(2)),
            ["STREAM", "UPDATE", _] => ApiRoute::StreamUpdate(s(2)),
            ["STREAM", "INFO", _] => ApiRoute::StreamInfo(s(2)),
            ["STREAM", "DELETE", _] => ApiRoute::StreamDelete(s(2)),
            ["STREAM", "PURGE", _] => ApiRoute::StreamPurge(s(2)),
            ["STREAM", "SNAPSHOT", _] => ApiRoute::StreamSnapshot(s(2)),
            ["STREAM", "RESTORE", _] => ApiRoute::StreamRestore(s(2)),
            ["STREAM", "MSG", "GET", _] => ApiRoute::StreamMsgGet(s(3)),
            ["STREAM", "MSG", "DELETE", _] => ApiRoute::StreamMsgDelete(s(3)),
            ["STREAM", "LEADER", "STEPDOWN", _] => ApiRoute::StreamLeaderStepdown(s(3)),
            ["STREAM", "PEER", "REMOVE", _] => ApiRoute::StreamPeerRemove(s(3)),
            ["DIRECT", "GET", _] => ApiRoute::DirectGet(s(2)),
            ["DIRECT", "GET", _, _, ..] => ApiRoute::DirectGetLastBySubject {
                stream: s(2),
                subject: tail(3),
            },
            ["CONSUMER", "CREATE", _] => {
                ApiRoute::ConsumerCreate(ConsumerCreateRoute::Ephemeral { stream: s(2) })
            }
            ["CONSUMER", "CREATE", _, _] => ApiRoute::ConsumerCreate(ConsumerCreateRoute::Named {
                stream: s(2),
                consumer: s(3),
                filter: None,
            }),
            ["CONSUMER", "CREATE", _, _, _, ..] => {
                ApiRoute::ConsumerCreate(ConsumerCreateRoute::Named {
                    stream: s(2),
                    consumer: s(3),
                    filter: Some(tail(4)),
                })
            }
            ["CONSUMER", "DURABLE", "CREATE", _, _] => {
                ApiRoute::ConsumerCreate(ConsumerCreateRoute::Durable {
                    stream: s(3),
                    durable: s(4),
                })
            }
            ["CONSUMER", "NAMES", _] => ApiRoute::ConsumerNames(s(2)),
            ["CONSUMER", "LIST", _] => ApiRoute::ConsumerList(s(2)),
            ["CONSUMER", "INFO", _, _] => ApiRoute::ConsumerInfo {
                stream: s(2),
                consumer: s(3),
            },
            ["CONSUMER", "DELETE", _, _] => ApiRoute::ConsumerDelete {
                stream: s(2),
                consumer: s(3),
            },
            ["CONSUMER", "PAUSE", _, _] => ApiRoute::ConsumerPause {
                stream: s(2),
                consumer: s(3),
            },
            ["CONSUMER", "UNPIN", _, _] => ApiRoute::ConsumerUnpin {
                stream: s(2),
                consumer: s(3),
            },
            ["CONSUMER", "RESET", _, _] => ApiRoute::ConsumerReset {
                stream: s(2),
                consumer: s(3),
            },
            ["CONSUMER", "MSG", "NEXT", _, _] => ApiRoute::ConsumerMsgNext {
                stream: s(3),
                consumer: s(4),
            },
            ["CONSUMER", "LEADER", "STEPDOWN", _, _] => ApiRoute::ConsumerLeaderStepdown {
                stream: s(3),
                consumer: s(4),
            },
            ["META", "LEADER", "STEPDOWN"] => ApiRoute::MetaLeaderStepdown,
            ["SERVER", "REMOVE"] => ApiRoute::ServerRemove,
            ["ACCOUNT", "PURGE", _] => ApiRoute::AccountPurge(s(2)),
            _ => ApiRoute::Unknown,
        };
        Ok(route)
    }

    /// The `type` of the JSON reply, or `None` for routes answered with raw messages
    /// (direct get, pull requests) or not at all.
    pub fn response_type(&self) -> Option<&'static str> {
        Some(match self {
            ApiRoute::Info => types::ACCOUNT_INFO,
            ApiRoute::StreamCreate(_) => types::STREAM_CREATE,
            ApiRoute::StreamUpdate(_) => types::STREAM_UPDATE,
            ApiRoute::StreamInfo(_) => types::STREAM_INFO,
            ApiRoute::StreamDelete(_) => types::STREAM_DELETE,
            ApiRoute::StreamPurge(_) => types::STREAM_PURGE,
            ApiRoute::StreamNames => types::STREAM_NAMES,
            ApiRoute::StreamList => types::STREAM_LIST,
            ApiRoute::StreamMsgGet(_) => types::STREAM_MSG_GET,
            ApiRoute::StreamMsgDelete(_) => types::STREAM_MSG_DELETE,
            ApiRoute::StreamSnapshot(_) => types::STREAM_SNAPSHOT,
            ApiRoute::StreamRestore(_) => types::STREAM_RESTORE,
            ApiRoute::StreamLeaderStepdown(_) => types::STREAM_LEADER_STEPDOWN,
            ApiRoute::StreamPeerRemove(_) => types::STREAM_REMOVE_PEER,
            ApiRoute::ConsumerCreate(_) => types::CONSUMER_CREATE,
            ApiRoute::ConsumerInfo { .. } => types::CONSUMER_INFO,
            ApiRoute::ConsumerDelete { .. } => types::CONSUMER_DELETE,
            ApiRoute::ConsumerNames(_) => types::CONSUMER_NAMES,
            ApiRoute::ConsumerList(_) => types::CONSUMER_LIST,
            ApiRoute::ConsumerPause { .. } => types::CONSUMER_PAUSE,
            ApiRoute::ConsumerUnpin { .. } => types::CONSUMER_UNPIN,
            ApiRoute::ConsumerReset { .. } => types::CONSUMER_RESET,
            ApiRoute::ConsumerLeaderStepdown { .. } => types::CONSUMER_LEADER_STEPDOWN,
            ApiRoute::MetaLeaderStepdown => types::META_LEADER_STEPDOWN,
            ApiRoute::ServerRemove => types::META_SERVER_REMOVE,
            ApiRoute::AccountPurge(_) => types::ACCOUNT_PURGE,
            ApiRoute::DirectGet(_)
            | ApiRoute::DirectGetLastBySubject { .. }
            | ApiRoute::ConsumerMsgNext { .. }
            | ApiRoute::Unknown => return None,
        })
    }

    /// The stream the request is about, if any.
    pub fn stream(&self) -> Option<&str> {
        match self {
            ApiRoute::StreamCreate(s)
            | ApiRoute::StreamUpdate(s)
            | ApiRoute::StreamInfo(s)
            | ApiRoute::StreamDelete(s)
            | ApiRoute::StreamPurge(s)
            | ApiRoute::StreamMsgGet(s)
            | ApiRoute::StreamMsgDelete(s)
            | ApiRoute::StreamSnapshot(s)
            | ApiRoute::StreamRestore(s)
            | ApiRoute::StreamLeaderStepdown(s)
            | ApiRoute::StreamPeerRemove(s)
            | ApiRoute::DirectGet(s)
            | ApiRoute::ConsumerNames(s)
            | ApiRoute::ConsumerList(s) => Some(s),
            ApiRoute::DirectGetLastBySubject { stream, .. }
            | ApiRoute::ConsumerInfo { stream, .. }
            | ApiRoute::ConsumerDelete { stream, .. }
            | ApiRoute::ConsumerMsgNext { stream, .. }
            | ApiRoute::ConsumerPause { stream, .. }
            | ApiRoute::ConsumerUnpin { stream, .. }
            | ApiRoute::ConsumerReset { stream, .. }
            | ApiRoute::ConsumerLeaderStepdown { stream, .. } => Some(stream),
            ApiRoute::ConsumerCreate(c) => Some(c.stream()),
            ApiRoute::Info
            | ApiRoute::StreamNames
            | ApiRoute::StreamList
            | ApiRoute::MetaLeaderStepdown
            | ApiRoute::ServerRemove
            | ApiRoute::AccountPurge(_)
            | ApiRoute::Unknown => None,
        }
    }
}

/// Strips `$JS.API.` or `$JS.<domain>.API.`.
fn api_rest(subject: &str) -> Option<&str> {
    let after_js = subject.strip_prefix("$JS.")?;
    if let Some(rest) = after_js.strip_prefix("API.") {
        return Some(rest);
    }
    let (domain, rest) = after_js.split_once('.')?;
    if domain.is_empty() {
        return None;
    }
    rest.strip_prefix("API.")
}
