//! A subscription and where its messages go: a client connection's outbound buffer or
//! an internal (in-process) handler's bounded channel.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use bytes::Bytes;
use infinistream_protocol::subject::Subject;

use super::Target;
use crate::auth::AccountName;

/// A message delivered to an internal subscription.
#[derive(Debug, Clone)]
pub struct InternalMsg {
    /// The subject published to, shared with the publisher's buffer (no copy).
    pub subject: Subject,
    pub reply: Option<String>,
    /// Raw header block (`NATS/1.0\r\n...`), parse with `infinistream_protocol::HeaderMap`.
    pub headers: Option<Bytes>,
    pub payload: Bytes,
    /// Connection id of the publisher; 0 when published from inside the server.
    pub client_id: u64,
    /// For a publish another agent forwarded to be captured here (see
    /// [`crate::forward`]): the stream that agent found capturing the subject.
    pub capture_stream: Option<std::sync::Arc<str>>,
}

#[derive(Debug)]
pub(crate) struct Subscription {
    /// Unique across the broker (sids are only unique per connection).
    pub id: u64,
    /// The account whose subjects this subscription sees (and no other's).
    pub account: AccountName,
    pub subject: Bytes,
    pub queue: Option<Bytes>,
    pub target: Target,
    /// Auto-unsubscribe after this many deliveries; 0 = unlimited.
    pub max: AtomicU64,
    pub delivered: AtomicU64,
    pub closed: AtomicBool,
    /// An internal subscription the route mesh treats like a client's: announced to
    /// peer agents and fed what their clients publish (see
    /// [`crate::Broker::subscribe_cluster_internal`]).
    pub cluster_visible: bool,
}

impl Subscription {
    pub fn new(
        id: u64,
        account: AccountName,
        subject: Bytes,
        queue: Option<Bytes>,
        target: Target,
    ) -> Self {
        Subscription {
            id,
            account,
            subject,
            queue,
            target,
            max: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
            closed: AtomicBool::new(false),
            cluster_visible: false,
        }
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    pub fn client_id(&self) -> Option<u64> {
        match &self.target {
            Target::Client { client, .. } => Some(client.cid),
            Target::Internal { .. } | Target::Route { .. } | Target::Responses => None,
        }
    }

    /// A client connection's subscription on this agent.
    pub fn is_client(&self) -> bool {
        matches!(self.target, Target::Client { .. })
    }

    /// Whether peer agents are told of this subscription and may feed it: client
    /// subscriptions, and cluster-visible internal ones.
    pub fn is_announced(&self) -> bool {
        self.is_client() || self.cluster_visible
    }

    /// A peer agent's interest rather than a subscriber on this agent.
    pub fn is_route(&self) -> bool {
        matches!(self.target, Target::Route { .. })
    }

    /// Counts one delivery against `max`. Returns `(deliver, reached_max)`.
    pub fn take_delivery(&self) -> (bool, bool) {
        let max = self.max.load(Ordering::Relaxed);
        if max == 0 {
            return (true, false);
        }
        let n = self.delivered.fetch_add(1, Ordering::AcqRel) + 1;
        (n <= max, n == max)
    }
}
