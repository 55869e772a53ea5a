//! JetStream in several accounts: which account a request, a stream and its
//! control-plane id belong to.
//!
//! The control plane names a stream by its id: the bare name for the streams of the
//! account that owns the bare ids (the agent's broker account: the one JetStream
//! account, or the one marked `bare_stream_ids` when there are several, `$G` without
//! any), `<account>.<name>` for every other JetStream account (see
//! `infinistream_config::accounts`). Stream names never hold a `.`, so an id's last
//! part is always the name clients see.

use std::borrow::Cow;
use std::sync::Arc;

use infinistream_broker::Broker;
use infinistream_protocol::jsapi::subjects::ApiRoute;

/// The JetStream account one `$JS.API` server answers for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsAccount {
    /// The account's name.
    pub name: Arc<str>,
    /// Whether its streams have bare ids.
    pub bare: bool,
}

impl JsAccount {
    /// The account that owns the bare stream ids.
    pub fn bare(name: &str) -> Self {
        JsAccount {
            name: name.into(),
            bare: true,
        }
    }

    /// Another JetStream account: its streams' ids are `<account>.<name>`.
    pub fn prefixed(name: &str) -> Self {
        JsAccount {
            name: name.into(),
            bare: false,
        }
    }

    /// The control-plane id of this account's stream `name`.
    pub fn id<'a>(&self, name: &'a str) -> Cow<'a, str> {
        if self.bare {
            Cow::Borrowed(name)
        } else {
            Cow::Owned(format!("{}.{name}", self.name))
        }
    }

    /// `route` with its stream named by its control-plane id (the read routes; the
    /// others are returned as they are).
    pub fn route_ids(&self, route: ApiRoute) -> ApiRoute {
        match route {
            ApiRoute::StreamMsgGet(s) => ApiRoute::StreamMsgGet(self.id(&s).into_owned()),
            ApiRoute::DirectGet(s) => ApiRoute::DirectGet(self.id(&s).into_owned()),
            ApiRoute::DirectGetLastBySubject { stream, subject } => {
                ApiRoute::DirectGetLastBySubject {
                    stream: self.id(&stream).into_owned(),
                    subject,
                }
            }
            other => other,
        }
    }

    /// The `account` of a control-plane `ListStreams` for this account's streams.
    pub fn list_filter(&self) -> &str {
        if self.bare {
            infinistream_proto::domain::GLOBAL_ACCOUNT
        } else {
            &self.name
        }
    }
}

/// The name clients see of the stream with control-plane id `id`.
pub fn stream_name(id: &str) -> &str {
    infinistream_proto::domain::split_stream_id(id).1
}

/// The broker handle in the account of the stream with id `id` (`broker` itself for
/// a bare id: `broker` is in the account that owns them), and the stream's name.
pub fn stream_home<'a>(broker: &'a Broker, id: &'a str) -> (Cow<'a, Broker>, &'a str) {
    match id.split_once('.') {
        Some((account, name)) => (Cow::Owned(broker.in_account(account)), name),
        None => (Cow::Borrowed(broker), id),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_bare_only_in_the_owning_account() {
        assert_eq!(JsAccount::bare("A").id("ORDERS"), "ORDERS");
        assert_eq!(JsAccount::prefixed("B").id("ORDERS"), "B.ORDERS");
        assert_eq!(JsAccount::bare("A").list_filter(), "$G");
        assert_eq!(JsAccount::prefixed("B").list_filter(), "B");
        assert_eq!(stream_name("B.ORDERS"), "ORDERS");
        assert_eq!(stream_name("ORDERS"), "ORDERS");
    }
}
