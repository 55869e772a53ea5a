//! Role forwarding: work for a role this agent does not run goes to a peer that runs it.
//!
//! A NATS application uses one connection for everything (a KV user puts, gets and
//! watches on it), so an agent receives requests for roles it may not run. The
//! JetStream layer decides what is whose; this module carries the work over the peer
//! links the route mesh already has ([`crate::peer`]):
//!
//! - [`Broker::role_peer`] picks the linked peer that takes work of a role for a key
//!   (a stream name): agents running the role in this agent's zone first, else in any
//!   zone, and among them the highest rendezvous hash of (key, agent id). The same key
//!   goes to the same peer while the membership holds, so one connection's publishes
//!   to a stream, or its pull requests, keep their order through one link;
//! - [`Broker::forward`] queues the message on that link, marked for the peer's
//!   internal handlers ([`InternalTarget`]). The peer delivers it to the internal
//!   subscriptions matching its subject (JetStream API, acks, flow control), or to its
//!   produce role's capture ([`Broker::subscribe_captures`]) with the stream the
//!   sender found — the peer's own catalog may not list a just-created stream yet;
//! - the answer needs no way back of its own: the requester's reply subscription is
//!   interest this agent announced to every peer before the request went out (one
//!   ordered queue per link), so the peer's reply is routed like any message.
//!
//! A forwarded message is never forwarded again and never reaches the peer's clients,
//! so a publish is captured exactly once, by the one produce agent it went to. A
//! forwarded message with a reply subject that finds no handler is answered with a
//! `503` no-responders status, as a request to a subject nobody serves is.

use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use tokio::sync::mpsc;
use tracing::debug;

use crate::broker::{Broker, Inner, InternalQueue, InternalSubscription, Msg, RouteCtx};
use crate::error::BrokerError;
use crate::peer::{InternalTarget, PeerMsg};
use crate::routing::ProxyRole;
use crate::sub::{InternalMsg, Subscription, Target};

/// What became of a forward.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forwarded {
    /// Queued on the link to the peer.
    Sent,
    /// No link to that peer is up (it left, or the link is being redialled).
    NoLink,
    /// The link's queue is over its limit (a slow route): not sent.
    Dropped,
}

/// The status a request that reached nobody gets (nats-server's no-responders).
const NO_RESPONDERS: &[u8] = b"NATS/1.0 503\r\n\r\n";

impl Broker {
    /// The linked peer agent that should take work of `role` for `key`: see the
    /// module docs. `None` when no linked peer runs the role.
    pub fn role_peer(&self, role: ProxyRole, key: &[u8]) -> Option<String> {
        let candidates = self.linked_role_peers(role);
        let zone = &self.inner.config.roles.zone;
        let in_zone = candidates.iter().any(|(_, z)| z == zone);
        candidates
            .into_iter()
            .filter(|(_, z)| !in_zone || z == zone)
            .max_by_key(|(id, _)| rendezvous(key, id))
            .map(|(id, _)| id)
    }

    /// Whether this agent should serve the push consumer keyed `key` (its stream)
    /// delivering to `deliver_subject`: a client here subscribes to it, or a client of
    /// a linked peer that does not run proxy-consume does and this agent is the one
    /// that peer would pick for `key` ([`Broker::role_peer`] as that peer sees it). A
    /// push consumer is served next to its subscribers, and by one proxy-consume agent
    /// for those connected to agents without the role.
    pub fn serves_push(&self, deliver_subject: &str, key: &[u8]) -> bool {
        if self.has_interest(deliver_subject) {
            return true;
        }
        let roles = &self.inner.config.roles;
        if !roles.consume || roles.agent_id.is_empty() {
            return false;
        }
        let Some(view) = self.cluster() else {
            return false;
        };
        let interested: Vec<String> = {
            let result = self
                .inner
                .sublist
                .read()
                .matches(&self.account, deliver_subject.as_bytes());
            result
                .plain
                .iter()
                .chain(result.groups.iter().flatten())
                .filter_map(|s| match &s.target {
                    Target::Route { link } if !link.is_closed() => Some(link.peer_id().to_owned()),
                    _ => None,
                })
                .collect()
        };
        let consumers: Vec<&crate::routing::AgentEndpoint> = view
            .agents()
            .iter()
            .filter(|a| a.consume && !a.agent_id.is_empty())
            .collect();
        interested.iter().any(|peer| {
            let Some(peer) = view.agents().iter().find(|a| &a.agent_id == peer) else {
                return false;
            };
            if peer.consume {
                // That agent serves its own subscribers.
                return false;
            }
            let in_zone = consumers.iter().any(|a| a.zone == peer.zone);
            consumers
                .iter()
                .filter(|a| !in_zone || a.zone == peer.zone)
                .max_by_key(|a| rendezvous(key, &a.agent_id))
                .is_some_and(|a| a.agent_id == roles.agent_id)
        })
    }

    /// Every linked peer agent that runs `role` (for messages any of them may need).
    pub fn role_peers(&self, role: ProxyRole) -> Vec<String> {
        self.linked_role_peers(role)
            .into_iter()
            .map(|(id, _)| id)
            .collect()
    }

    /// (agent id, zone) of the linked peers the registry says run `role`.
    fn linked_role_peers(&self, role: ProxyRole) -> Vec<(String, String)> {
        let Some(view) = self.cluster() else {
            return Vec::new();
        };
        let peers = self.inner.peers.read();
        view.agents()
            .iter()
            .filter(|a| !a.agent_id.is_empty() && a.runs(Some(role)))
            .filter(|a| {
                peers
                    .iter()
                    .any(|l| l.peer_id() == a.agent_id && !l.is_closed())
            })
            .map(|a| (a.agent_id.clone(), a.zone.clone()))
            .collect()
    }

    /// Forwards `msg` to peer `peer_id`'s internal handlers (see the module docs).
    pub fn forward(&self, peer_id: &str, msg: &InternalMsg, target: InternalTarget) -> Forwarded {
        let link = self
            .inner
            .peers
            .read()
            .iter()
            .find(|l| l.peer_id() == peer_id && !l.is_closed())
            .cloned();
        let Some(link) = link else {
            return Forwarded::NoLink;
        };
        let sent = link.push_msg(
            &self.inner,
            PeerMsg {
                account: self.account.clone(),
                subject: Bytes::copy_from_slice(msg.subject.as_bytes()),
                deliver: None,
                reply: msg
                    .reply
                    .as_ref()
                    .map(|r| Bytes::copy_from_slice(r.as_bytes())),
                headers: msg.headers.clone(),
                payload: msg.payload.clone(),
                plain: false,
                queues: Vec::new(),
                internal: Some(target),
            },
        );
        if sent {
            self.inner.stats.forwarded_out.inc();
            Forwarded::Sent
        } else {
            Forwarded::Dropped
        }
    }

    /// Receives the publishes other agents forward to be captured here (the produce
    /// role), each with its [`InternalMsg::capture_stream`]. One at a time: a newer
    /// subscription replaces an older one; dropping it stops the captures.
    pub fn subscribe_captures(&self, capacity: usize) -> Result<InternalSubscription, BrokerError> {
        if capacity == 0 {
            return Err(BrokerError::InvalidCapacity(capacity));
        }
        let (tx, rx) = mpsc::channel(capacity);
        let sub = Arc::new(Subscription::new(
            self.inner.next_sub_id.fetch_add(1, Ordering::Relaxed),
            self.inner.internal_account.clone(),
            Bytes::from_static(b">"),
            None,
            Target::Internal {
                queue: Arc::new(InternalQueue::new(tx, capacity)),
            },
        ));
        if let Some(old) = self.inner.captures.write().replace(sub.clone()) {
            old.closed.store(true, Ordering::Release);
        }
        Ok(InternalSubscription::new(
            rx,
            sub,
            Arc::downgrade(&self.inner),
        ))
    }
}

impl Inner {
    /// Delivers work peer `from` forwarded for this agent's internal handlers.
    pub(crate) fn deliver_forwarded(&self, ctx: &mut RouteCtx, from: &str, m: &PeerMsg) {
        self.stats.forwarded_in.inc();
        let msg = Msg {
            subject: &m.subject,
            reply: m.reply.as_deref(),
            headers: m.headers.as_ref(),
            payload: &m.payload,
        };
        let taken = match &m.internal {
            Some(InternalTarget::Capture(stream)) => self.capture(m, stream),
            Some(InternalTarget::Handlers) => {
                let result = self.sublist.read().matches(&m.account, &m.subject);
                let mut taken = false;
                for sub in result.plain.iter().filter(|s| is_internal(s)) {
                    taken |= self.deliver(ctx, sub, None, true, msg);
                }
                for group in &result.groups {
                    for sub in group.iter().filter(|s| is_internal(s)) {
                        if self.deliver(ctx, sub, None, true, msg) {
                            taken = true;
                            break;
                        }
                    }
                }
                taken
            }
            None => false,
        };
        if !taken {
            debug!(peer = %from, subject = %String::from_utf8_lossy(&m.subject), "forwarded work found no handler here");
            if let Some(reply) = &m.reply {
                let headers = Bytes::from_static(NO_RESPONDERS);
                let result = self.sublist.read().matches(&m.account, reply);
                let status = Msg {
                    subject: reply,
                    reply: None,
                    headers: Some(&headers),
                    payload: &Bytes::new(),
                };
                self.route(ctx, &result, None, true, status);
            }
        }
    }

    fn capture(&self, m: &PeerMsg, stream: &Arc<str>) -> bool {
        let Some(sub) = self.captures.read().clone() else {
            return false;
        };
        let Target::Internal { queue } = &sub.target else {
            return false;
        };
        if sub.is_closed() {
            return false;
        }
        let delivered = queue.deliver_from_server(
            self,
            InternalMsg {
                subject: String::from_utf8_lossy(&m.subject).into_owned(),
                reply: m
                    .reply
                    .as_ref()
                    .map(|r| String::from_utf8_lossy(r).into_owned()),
                headers: m.headers.clone(),
                payload: m.payload.clone(),
                client_id: 0,
                capture_stream: Some(stream.clone()),
            },
        );
        !matches!(delivered, crate::broker::Delivered::Closed)
    }
}

fn is_internal(sub: &Subscription) -> bool {
    matches!(sub.target, Target::Internal { .. })
}

/// Rendezvous (highest random weight) score of `agent` for `key`.
fn rendezvous(key: &[u8], agent: &str) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    key.hash(&mut h);
    agent.hash(&mut h);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rendezvous_spreads_keys_and_is_stable() {
        let agents = ["a", "b", "c"];
        let pick = |key: &str| {
            agents
                .iter()
                .max_by_key(|a| rendezvous(key.as_bytes(), a))
                .copied()
        };
        let mut seen = std::collections::HashSet::new();
        for i in 0..64 {
            let key = format!("stream-{i}");
            assert_eq!(pick(&key), pick(&key));
            seen.insert(pick(&key));
        }
        assert_eq!(seen.len(), 3, "64 keys reach every agent");
    }
}
