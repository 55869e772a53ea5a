//! Service imports with response routing, as nats-server's: an account imports a
//! service another account exports, and its clients' requests on the import's local
//! subject reach the exporter's responders on the exported subject. The request's
//! reply subject is replaced by a response subject in the exporting account,
//! `_R_.<agent>.<random>`, which this agent maps back to the requester's reply subject
//! in the importing account; the first answer is routed there and the mapping goes
//! (nats-server's default `singleton` response type), or it expires after
//! [`RESPONSE_TTL`].
//!
//! The response subjects of one exporting account arrive through one subscription per
//! agent on `_R_.<agent>.>` in that account, announced to peer agents: a responder on
//! another agent answers on the route mesh like any publish, and the requester's agent,
//! where the mapping lives, routes the answer into the importing account.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::Mutex;

use super::Target;
use super::sub::Subscription;
use super::{Inner, Msg, RouteCtx};
use crate::auth::{AccountName, ServiceImport, same_account};

/// How long an unanswered request's response mapping lives (nats-server's default
/// response threshold).
pub const RESPONSE_TTL: Duration = Duration::from_secs(120);

/// Mappings past which expired ones are swept.
const SWEEP_AT: usize = 4096;

/// Where an answer on a response subject goes.
#[derive(Debug)]
struct ResponseRoute {
    into: AccountName,
    reply: Bytes,
    expires: Instant,
}

/// This agent's response mappings and response subscriptions.
#[derive(Debug)]
pub(crate) struct Responses {
    /// `_R_.<token>.` — this agent's prefix.
    prefix: String,
    routes: Mutex<HashMap<Bytes, ResponseRoute>>,
    /// One `_R_.<token>.>` subscription per exporting account.
    subs: Mutex<HashMap<AccountName, Arc<Subscription>>>,
}

impl Default for Responses {
    fn default() -> Self {
        Responses {
            prefix: format!(
                "_R_.{}.",
                infinistream_protocol::nuid::base62(super::random_seed(), 6)
            ),
            routes: Mutex::new(HashMap::new()),
            subs: Mutex::new(HashMap::new()),
        }
    }
}

impl Inner {
    /// Routes a request published in `import.into` on `published` to the exporter's
    /// responders; returns whether any got it.
    pub(crate) fn route_service(
        &self,
        ctx: &mut RouteCtx,
        import: &ServiceImport,
        mapped: &[u8],
        publisher: Option<u64>,
        msg: Msg<'_>,
    ) -> bool {
        let response = msg.reply.map(|reply| self.map_response(ctx, import, reply));
        let result = self.sublist.read().matches(&import.from, mapped);
        let own = ctx.account.replace(import.from.clone());
        let delivered = self.route(
            ctx,
            &result,
            publisher,
            true,
            Msg {
                subject: mapped,
                reply: response.as_deref(),
                ..msg
            },
        );
        ctx.account = own;
        delivered
    }

    /// A fresh response subject in `import.from` that answers to `reply` in
    /// `import.into`.
    fn map_response(&self, ctx: &mut RouteCtx, import: &ServiceImport, reply: &[u8]) -> Bytes {
        self.ensure_response_sub(&import.from);
        let subject = Bytes::from(format!(
            "{}{}{}",
            self.responses.prefix,
            infinistream_protocol::nuid::base62(ctx.next_random(), 6),
            infinistream_protocol::nuid::base62(ctx.next_random(), 6)
        ));
        let mut routes = self.responses.routes.lock();
        if routes.len() >= SWEEP_AT {
            let now = Instant::now();
            routes.retain(|_, r| r.expires > now);
        }
        routes.insert(
            subject.clone(),
            ResponseRoute {
                into: import.into.clone(),
                reply: Bytes::copy_from_slice(reply),
                expires: Instant::now() + RESPONSE_TTL,
            },
        );
        subject
    }

    fn ensure_response_sub(&self, account: &AccountName) {
        let mut subs = self.responses.subs.lock();
        if subs.keys().any(|a| same_account(a, account)) {
            return;
        }
        let mut sub = Subscription::new(
            self.next_sub_id
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            account.clone(),
            Bytes::from(format!("{}>", self.responses.prefix)),
            None,
            Target::Responses,
        );
        sub.cluster_visible = true;
        let sub = Arc::new(sub);
        subs.insert(account.clone(), sub.clone());
        drop(subs);
        self.add_sub(sub);
    }

    /// An answer on one of this agent's response subjects: routed to the requester's
    /// reply subject in the importing account (once). Returns whether it went anywhere.
    pub(crate) fn deliver_response(&self, ctx: &mut RouteCtx, msg: Msg<'_>) -> bool {
        let Some(route) = self.responses.routes.lock().remove(msg.subject) else {
            return false;
        };
        if route.expires < Instant::now() {
            return false;
        }
        let result = self.sublist.read().matches(&route.into, &route.reply);
        // A nested route: keep what the outer one owes peers for its own message.
        let outer_forwards = std::mem::take(&mut ctx.forwards);
        let outer_deliver = ctx.deliver_subject.take();
        let own = ctx.account.replace(route.into.clone());
        let delivered = self.route(
            ctx,
            &result,
            None,
            true,
            Msg {
                subject: &route.reply,
                reply: None,
                ..msg
            },
        );
        ctx.account = own;
        ctx.deliver_subject = outer_deliver;
        ctx.forwards = outer_forwards;
        delivered
    }
}
