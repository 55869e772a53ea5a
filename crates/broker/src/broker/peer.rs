//! Core NATS subjects across the agents of a group: interest routing over peer links.
//!
//! Every agent links to every other (a full mesh, one link per pair; the transport, a
//! gRPC stream on the peer port, lives in the agent crate). Over a link an agent
//! announces its clients' interest — one frame when the first client subscription on a
//! (subject, queue) appears here, one when the last one goes — and forwards what its
//! publishers send that the peer's clients want, once per peer per message, as
//! nats-server does over its cluster routes:
//! - a peer's interest sits in this broker's subject index as route subscriptions, so
//!   one match finds the local subscribers and the interested peers (and a request
//!   with responders only on other agents gets no `503` no-responders);
//! - a queue group is served by a member on this agent when there is one, else by one
//!   member on one peer: the forwarded message names the queue groups the receiver must
//!   serve, and the receiver picks one of its members;
//! - a message received from a peer goes to this agent's client subscriptions only: it
//!   is never forwarded again (full mesh, one hop) and never handed to an internal
//!   subscriber (the agent a client is connected to serves its JetStream requests,
//!   stream publishes and acks) — except work the sender forwarded explicitly for a
//!   role it does not run, which goes to internal handlers only ([`crate::forward`]);
//! - interest and messages share one ordered queue per link, so a peer learns of a
//!   requester's reply subscription before the request that names it.
//!
//! Internal subscriptions are not announced, for the same reason — except those made
//! cluster-visible ([`Broker::subscribe_cluster_internal`]: services every agent
//! answers, like the system API's PINGs), which are announced and fed like a client's
//! (a peer's message reaches them once, from the publisher's agent). A link's queue is
//! bounded in bytes: past [`PEER_PENDING_LIMIT`], messages for that peer are dropped and
//! counted (a slow route, as nats-server drops for a slow consumer); interest frames are
//! never dropped, so the peer's view of this agent's interest stays exact.
//!
//! Interest and messages name their account ([`crate::auth`]): a peer's interest in
//! account A is matched only by publishes made in A, and a forwarded message is
//! matched only against the receiver's subscriptions in the account it names.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::Notify;
use tracing::{debug, warn};

use super::Target;
use super::sub::Subscription;
use super::sublist::{InterestKey, Sublist};
use crate::auth::{AccountName, DEFAULT_ACCOUNT};
use crate::broker::{Broker, Inner, Msg, RouteCtx, random_seed};

/// Bytes of messages queued for one peer past which further messages to it are dropped.
pub const PEER_PENDING_LIMIT: usize = 64 << 20;

/// What one agent sends another over their link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerFrame {
    /// The sender's clients in `account` now have (`add`), or no longer have, a
    /// subscription on `subject` (in queue group `queue`).
    Interest {
        account: AccountName,
        subject: Bytes,
        queue: Option<Bytes>,
        add: bool,
    },
    /// A message published on the sender's agent.
    Msg(PeerMsg),
}

/// A message forwarded to a peer, with what the peer must do with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerMsg {
    /// The account the message was published in (matched only there).
    pub account: AccountName,
    pub subject: Bytes,
    /// The subject to match subscriptions on when it is not `subject`: a consumer's
    /// deliver subject (the message keeps the subject it was published on).
    pub deliver: Option<Bytes>,
    pub reply: Option<Bytes>,
    /// Raw header block (`NATS/1.0\r\n...`).
    pub headers: Option<Bytes>,
    pub payload: Bytes,
    /// Deliver to every matching subscription outside queue groups.
    pub plain: bool,
    /// Deliver to one member of each of these queue groups.
    pub queues: Vec<Bytes>,
    /// Work forwarded for a role the sender does not run: for this agent's internal
    /// handlers, never its clients (`plain` and `queues` are then unused; see
    /// [`crate::forward`]).
    pub internal: Option<InternalTarget>,
}

impl PeerMsg {
    /// The message to route on this agent (its subject's bytes shared).
    pub(crate) fn as_msg(&self) -> Msg<'_> {
        Msg {
            subject: &self.subject,
            subject_bytes: Some(&self.subject),
            reply: self.reply.as_deref(),
            headers: self.headers.as_ref(),
            payload: &self.payload,
        }
    }
}

/// Which of the receiver's internal handlers a forwarded message is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InternalTarget {
    /// The internal subscriptions matching its subject (JetStream API, acks, flow
    /// control).
    Handlers,
    /// The produce role's capture, for stream `0` (the sender's catalog found the
    /// subject captured by it; the receiver's catalog may not know the stream yet).
    Capture(std::sync::Arc<str>),
}

impl PeerFrame {
    fn size(&self) -> usize {
        match self {
            PeerFrame::Interest {
                account,
                subject,
                queue,
                ..
            } => account.len() + subject.len() + queue.as_ref().map_or(0, Bytes::len) + 16,
            PeerFrame::Msg(m) => {
                m.account.len()
                    + m.subject.len()
                    + m.deliver.as_ref().map_or(0, Bytes::len)
                    + m.reply.as_ref().map_or(0, Bytes::len)
                    + m.headers.as_ref().map_or(0, Bytes::len)
                    + m.payload.len()
                    + m.queues.iter().map(Bytes::len).sum::<usize>()
                    + match &m.internal {
                        Some(InternalTarget::Capture(stream)) => stream.len(),
                        _ => 0,
                    }
                    + 16
            }
        }
    }
}

/// The account a peer names: its own, or [`DEFAULT_ACCOUNT`] when it names none (an
/// agent from before accounts).
pub fn account_or_default(name: &str) -> AccountName {
    if name.is_empty() {
        DEFAULT_ACCOUNT.into()
    } else {
        name.into()
    }
}

/// The broker's side of one peer link.
#[derive(Debug)]
pub(crate) struct PeerLink {
    peer_id: String,
    out: Mutex<LinkQueue>,
    notify: Notify,
    /// Route subscriptions standing for the peer's interest. Changed only under the
    /// subject index's write lock.
    subs: Mutex<HashMap<InterestKey, Arc<Subscription>>>,
    closed: AtomicBool,
}

#[derive(Debug, Default)]
struct LinkQueue {
    frames: VecDeque<PeerFrame>,
    /// Bytes of messages queued (interest frames are not counted against the limit).
    msg_bytes: usize,
    /// Set while dropping, so one overload episode logs one line.
    dropping: bool,
}

impl PeerLink {
    pub(crate) fn peer_id(&self) -> &str {
        &self.peer_id
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    fn push_interest(&self, account: AccountName, subject: Bytes, queue: Option<Bytes>, add: bool) {
        self.out.lock().frames.push_back(PeerFrame::Interest {
            account,
            subject,
            queue,
            add,
        });
        self.notify.notify_one();
    }

    /// Queues a message for the peer; false when dropped (the link is over its limit).
    pub(crate) fn push_msg(&self, inner: &Inner, m: PeerMsg) -> bool {
        let frame = PeerFrame::Msg(m);
        let size = frame.size();
        let mut out = self.out.lock();
        if out.msg_bytes + size > PEER_PENDING_LIMIT {
            inner.stats.route_dropped.inc();
            if !out.dropping {
                out.dropping = true;
                warn!(
                    peer = %self.peer_id,
                    pending_bytes = out.msg_bytes,
                    "route to peer agent is slow: dropping messages for it"
                );
            }
            return false;
        }
        out.msg_bytes += size;
        out.frames.push_back(frame);
        drop(out);
        inner.stats.route_out_msgs.inc();
        self.notify.notify_one();
        true
    }

    fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.notify.notify_one();
    }
}

/// One connected peer agent, as handed to the transport: frames to send come from
/// [`Peer::next_batch`], frames received go to [`Peer::receive`]. Dropping it (the
/// link broke) forgets the peer's interest.
#[derive(Debug)]
pub struct Peer {
    link: Arc<PeerLink>,
    broker: Weak<Inner>,
}

impl Peer {
    pub fn peer_id(&self) -> &str {
        &self.link.peer_id
    }

    /// Whether the link was closed here (replaced by a newer link to the same peer, or
    /// the broker is gone): the transport should end it.
    pub fn is_closed(&self) -> bool {
        self.link.is_closed() || self.broker.strong_count() == 0
    }

    /// Ends the link from this side: the peer's interest is forgotten at once and
    /// [`Peer::next_batch`] returns `None`. Idempotent (dropping does the same).
    pub fn close(&self) {
        match self.broker.upgrade() {
            Some(inner) => inner.detach_peer(&self.link),
            None => self.link.close(),
        }
    }

    /// Waits for frames to send and takes them, up to about `max_bytes` (at least one
    /// frame); `None` once the link is closed.
    pub async fn next_batch(&self, max_bytes: usize) -> Option<Vec<PeerFrame>> {
        loop {
            let notified = self.link.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.is_closed() {
                return None;
            }
            {
                let mut out = self.link.out.lock();
                if !out.frames.is_empty() {
                    let mut batch = Vec::new();
                    let mut bytes = 0usize;
                    while let Some(frame) = out.frames.pop_front() {
                        let size = frame.size();
                        if let PeerFrame::Msg(_) = frame {
                            out.msg_bytes = out.msg_bytes.saturating_sub(size);
                        }
                        bytes += size;
                        batch.push(frame);
                        if bytes >= max_bytes {
                            break;
                        }
                    }
                    if out.dropping && out.msg_bytes < PEER_PENDING_LIMIT / 2 {
                        out.dropping = false;
                    }
                    return Some(batch);
                }
            }
            notified.await;
        }
    }

    /// Applies frames received from the peer, in order.
    pub fn receive(&self, frames: impl IntoIterator<Item = PeerFrame>) {
        let Some(inner) = self.broker.upgrade() else {
            return;
        };
        let mut ctx = RouteCtx::new(random_seed());
        for frame in frames {
            match frame {
                PeerFrame::Interest {
                    account,
                    subject,
                    queue,
                    add,
                } => inner.peer_interest(&self.link, (account, subject, queue), add),
                PeerFrame::Msg(m) if m.internal.is_some() => {
                    inner.deliver_forwarded(&mut ctx, &self.link.peer_id, &m);
                }
                PeerFrame::Msg(m) => inner.route_from_peer(&mut ctx, &m),
            }
        }
        inner.finish_sync(ctx);
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        if let Some(inner) = self.broker.upgrade() {
            inner.detach_peer(&self.link);
        }
    }
}

impl Broker {
    /// Links this broker to peer agent `peer_id`: the returned [`Peer`] first yields
    /// this agent's whole client interest, then every change and every message the
    /// peer's clients want. A newer link to the same peer replaces an older one.
    pub fn attach_peer(&self, peer_id: &str) -> Peer {
        let inner = &self.inner;
        let link = Arc::new(PeerLink {
            peer_id: peer_id.to_owned(),
            out: Mutex::new(LinkQueue::default()),
            notify: Notify::new(),
            subs: Mutex::new(HashMap::new()),
            closed: AtomicBool::new(false),
        });
        {
            let mut list = inner.sublist.write();
            // The snapshot and the link's registration happen under the index lock, so
            // no subscription change falls between them.
            for (account, subject, queue) in list.client_interest() {
                link.push_interest(account.clone(), subject.clone(), queue.clone(), true);
            }
            let mut peers = inner.peers.write();
            if let Some(i) = peers.iter().position(|l| l.peer_id == peer_id) {
                let old = peers.swap_remove(i);
                Inner::drop_route_subs(&mut list, &old);
                old.close();
                inner.sub_generation.fetch_add(1, Ordering::AcqRel);
            }
            peers.push(link.clone());
            inner.stats.subscriptions.set(list.len() as i64);
        }
        debug!(peer = %peer_id, "route to peer agent attached");
        Peer {
            link,
            broker: Arc::downgrade(inner),
        }
    }

    /// Whether a linked peer agent's clients subscribe to `subject`.
    pub fn has_peer_interest(&self, subject: &str) -> bool {
        self.any_subscription(subject, Subscription::is_route)
    }

    /// Whether anything here or on a linked peer agent subscribes to `subject` (a
    /// request forwarded from another agent waits on its requester's interest there).
    pub fn has_interest_anywhere(&self, subject: &str) -> bool {
        self.any_subscription(subject, |_| true)
    }

    /// The peer agents linked now.
    pub fn peers(&self) -> Vec<String> {
        self.inner
            .peers
            .read()
            .iter()
            .map(|l| l.peer_id.clone())
            .collect()
    }
}

impl Inner {
    /// Tells every peer that this agent's clients gained or lost an interest.
    pub(crate) fn announce(
        &self,
        account: &AccountName,
        subject: &Bytes,
        queue: &Option<Bytes>,
        add: bool,
    ) {
        for link in self.peers.read().iter() {
            link.push_interest(account.clone(), subject.clone(), queue.clone(), add);
        }
    }

    fn peer_interest(&self, link: &Arc<PeerLink>, key: InterestKey, add: bool) {
        let (_, subject, queue) = &key;
        let valid = infinistream_protocol::subject::is_valid_subject(subject)
            && queue
                .as_ref()
                .is_none_or(|q| infinistream_protocol::subject::is_valid_queue(q));
        if !valid {
            warn!(peer = %link.peer_id, "peer announced an invalid subject or queue; ignored");
            return;
        }
        let mut list = self.sublist.write();
        if link.is_closed() {
            return;
        }
        let mut subs = link.subs.lock();
        if add {
            if subs.contains_key(&key) {
                return;
            }
            let sub = Arc::new(Subscription::new(
                self.next_sub_id.fetch_add(1, Ordering::Relaxed),
                key.0.clone(),
                key.1.clone(),
                key.2.clone(),
                Target::Route { link: link.clone() },
            ));
            list.insert(sub.clone());
            subs.insert(key, sub);
        } else {
            let Some(sub) = subs.remove(&key) else {
                return;
            };
            sub.closed.store(true, Ordering::Release);
            list.remove(&sub);
        }
        drop(subs);
        self.sub_generation.fetch_add(1, Ordering::AcqRel);
        self.stats.subscriptions.set(list.len() as i64);
    }

    fn drop_route_subs(list: &mut Sublist, link: &PeerLink) {
        for (_, sub) in link.subs.lock().drain() {
            sub.closed.store(true, Ordering::Release);
            list.remove(&sub);
        }
    }

    fn detach_peer(&self, link: &Arc<PeerLink>) {
        let mut list = self.sublist.write();
        let mut peers = self.peers.write();
        let Some(i) = peers.iter().position(|l| Arc::ptr_eq(l, link)) else {
            // Already replaced by a newer link (which dropped this one's interest).
            return;
        };
        peers.swap_remove(i);
        drop(peers);
        Inner::drop_route_subs(&mut list, link);
        link.close();
        self.sub_generation.fetch_add(1, Ordering::AcqRel);
        self.stats.subscriptions.set(list.len() as i64);
        drop(list);
        debug!(peer = %link.peer_id, "route to peer agent detached");
    }

    /// Delivers a message a peer forwarded to this agent's announced subscriptions
    /// (clients' and cluster-visible internal ones).
    fn route_from_peer(&self, ctx: &mut RouteCtx, m: &PeerMsg) {
        self.stats.route_in_msgs.inc();
        let result = self
            .sublist
            .read()
            .matches(&m.account, m.deliver.as_ref().unwrap_or(&m.subject));
        let msg = m.as_msg();
        if m.plain {
            for sub in result.plain.iter().filter(|s| s.is_announced()) {
                self.deliver(ctx, sub, None, true, msg);
            }
        }
        for queue in &m.queues {
            let Some(group) = result
                .groups
                .iter()
                .find(|g| g.first().and_then(|s| s.queue.as_ref()) == Some(queue))
            else {
                continue;
            };
            let n = group.len();
            let start = (ctx.next_random() % n as u64) as usize;
            for i in 0..n {
                let sub = &group[(start + i) % n];
                if sub.is_announced() && self.deliver(ctx, sub, None, true, msg) {
                    break;
                }
            }
        }
    }
}

/// What one forwarded message owes each peer, collected while routing it.
#[derive(Debug)]
pub(crate) struct Forward {
    pub link: Arc<PeerLink>,
    pub plain: bool,
    pub queues: Vec<Bytes>,
}

impl RouteCtx {
    pub(crate) fn forward_to(&mut self, link: &Arc<PeerLink>, queue: Option<&Bytes>) {
        let i = match self
            .forwards
            .iter()
            .position(|f| Arc::ptr_eq(&f.link, link))
        {
            Some(i) => i,
            None => {
                self.forwards.push(Forward {
                    link: link.clone(),
                    plain: false,
                    queues: Vec::new(),
                });
                self.forwards.len() - 1
            }
        };
        let f = &mut self.forwards[i];
        match queue {
            None => f.plain = true,
            Some(q) => f.queues.push(q.clone()),
        }
    }
}
