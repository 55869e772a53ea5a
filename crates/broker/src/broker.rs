//! The broker: shared state, the listener loop, and message routing.
//!
//! Routing is synchronous and lock-light: a publisher's reader looks the subject up
//! (cached per reader, see [`crate::sublist`]), then appends the encoded `MSG` straight
//! into each subscriber's outbound buffer under that buffer's short mutex and remembers
//! which writers to wake. Wake-ups happen once per read batch, so a burst of publishes
//! becomes one `write` per subscriber (write coalescing, as nats-server's "pcd").

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use infinistream_protocol::Info;
use infinistream_protocol::subject::{self, Subject};
use parking_lot::{Mutex, RwLock};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, debug, info, info_span, warn};

pub(crate) mod client;
mod cluster;
mod cpu;
pub(crate) mod peer;
mod service;
pub(crate) mod sub;
pub(crate) mod sublist;

use crate::auth::{AccountName, Auth, DEFAULT_ACCOUNT};
use crate::config::{BrokerConfig, INFINISTREAM_VERSION};
use crate::error::BrokerError;
use crate::routing::ClusterView;
use client::Client;
use cpu::CpuSampler;
use peer::{Forward, PeerLink, PeerMsg};
use sub::{InternalMsg, Subscription};
use sublist::{MatchResult, Sublist};

/// Server-wide counters (also exported to Prometheus).
#[derive(Debug, Default)]
pub(crate) struct Stats {
    pub in_msgs: Counter,
    pub in_bytes: Counter,
    pub out_msgs: Counter,
    pub out_bytes: Counter,
    pub slow_consumers: Counter,
    pub internal_dropped: Counter,
    pub total_connections: Counter,
    pub connections: Gauge,
    pub subscriptions: Gauge,
    pub route_out_msgs: Counter,
    pub route_in_msgs: Counter,
    pub route_dropped: Counter,
    pub forwarded_out: Counter,
    pub forwarded_in: Counter,
}

impl Stats {
    /// Registers under `broker_` in `registry` (the agent's carries the `infinistream`
    /// prefix, as does the broker's own).
    fn register(&self, registry: &mut Registry) {
        let registry = registry.sub_registry_with_prefix("broker");
        registry.register(
            "in_msgs",
            "Messages received from clients and internal publishers",
            self.in_msgs.clone(),
        );
        registry.register("in_bytes", "Payload bytes received", self.in_bytes.clone());
        registry.register(
            "out_msgs",
            "Messages delivered to subscriptions",
            self.out_msgs.clone(),
        );
        registry.register(
            "out_bytes",
            "Payload bytes delivered",
            self.out_bytes.clone(),
        );
        registry.register(
            "slow_consumers",
            "Connections cut off for exceeding max_pending",
            self.slow_consumers.clone(),
        );
        registry.register(
            "internal_dropped",
            "Server-published messages without a reply subject dropped because an internal subscriber's backlog was full",
            self.internal_dropped.clone(),
        );
        registry.register(
            "connections_accepted",
            "Client connections accepted",
            self.total_connections.clone(),
        );
        registry.register(
            "connections",
            "Open client connections",
            self.connections.clone(),
        );
        registry.register(
            "subscriptions",
            "Active subscriptions (client and internal)",
            self.subscriptions.clone(),
        );
        registry.register(
            "route_out_msgs",
            "Messages forwarded to peer agents for their clients",
            self.route_out_msgs.clone(),
        );
        registry.register(
            "route_in_msgs",
            "Messages received from peer agents for this agent's clients",
            self.route_in_msgs.clone(),
        );
        registry.register(
            "route_dropped",
            "Messages for a peer agent dropped because its link was over its pending limit",
            self.route_dropped.clone(),
        );
        registry.register(
            "forwarded_out",
            "Requests and publishes forwarded to a peer agent that runs the role this agent does not",
            self.forwarded_out.clone(),
        );
        registry.register(
            "forwarded_in",
            "Requests and publishes peer agents forwarded to this agent's role handlers",
            self.forwarded_in.clone(),
        );
    }
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub config: BrokerConfig,
    pub server_id: String,
    /// The key pair `server_id` is the public key of.
    pub server_key: nkeys::KeyPair,
    pub sublist: RwLock<Sublist>,
    /// Bumped (under the sublist write lock) whenever subscriptions change.
    pub sub_generation: AtomicU64,
    pub clients: Mutex<HashMap<u64, Arc<Client>>>,
    pub next_cid: AtomicU64,
    pub next_sub_id: AtomicU64,
    pub stats: Stats,
    pub start: SystemTime,
    pub start_instant: Instant,
    pub local_addr: OnceLock<SocketAddr>,
    pub cpu: Mutex<CpuSampler>,
    pub metrics_registered_externally: AtomicBool,
    pub own_registry: Registry,
    /// The live agents, once the agent wired the registry in (see [`crate::routing`]).
    pub cluster: RwLock<Option<Arc<ClusterView>>>,
    /// Links to the peer agents (see [`crate::peer`]). Lock order: `sublist`, then this.
    pub peers: RwLock<Vec<Arc<PeerLink>>>,
    /// Where publishes forwarded by other agents for capture go (see
    /// [`crate::forward`]); set while this agent runs the produce role.
    pub captures: RwLock<Option<Arc<Subscription>>>,
    /// How clients authenticate; starts as `config.auth`, replaced by
    /// [`Broker::reload_auth`].
    pub auth: RwLock<Option<Auth>>,
    /// The account of the broker's internal subscribers and of its own publishes:
    /// the one JetStream serves (see [`crate::auth`]).
    pub internal_account: AccountName,
    /// The other accounts JetStream serves ([`Broker::serve_jetstream_in`]): their
    /// `$JS.API` requests are not answered with `JetStream not enabled for account`.
    pub more_jetstream: RwLock<Vec<AccountName>>,
    /// Response mappings of service imports (see [`service`]).
    pub responses: service::Responses,
    /// Operator mode with the URL resolver: fetches an account a user JWT names (see
    /// [`Broker::set_account_fetcher`]).
    pub account_fetcher: FetcherSlot,
}

/// Where [`Broker::set_account_fetcher`] keeps the fetcher.
#[derive(Default)]
pub(crate) struct FetcherSlot(RwLock<Option<AccountFetcher>>);

impl std::fmt::Debug for FetcherSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.read().is_some() {
            "Some(..)"
        } else {
            "None"
        })
    }
}

/// Fetches the account JWT of the account named (its public key) and applies it
/// (a new [`Auth`] through [`Broker::update_auth`]); resolves when done, fetched or
/// not.
pub type AccountFetcher = Arc<
    dyn Fn(String) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> + Send + Sync,
>;

impl Inner {
    /// Whether JetStream serves `account` (the internal account or one added by
    /// [`Broker::serve_jetstream_in`]).
    pub(crate) fn serves_jetstream(&self, account: &AccountName) -> bool {
        crate::auth::same_account(account, &self.internal_account)
            || self
                .more_jetstream
                .read()
                .iter()
                .any(|a| crate::auth::same_account(a, account))
    }
}

impl Inner {
    pub(crate) fn auth(&self) -> Option<Auth> {
        self.auth.read().clone()
    }

    pub(crate) fn auth_required(&self) -> bool {
        self.auth.read().is_some()
    }

    /// The account a `CONNECT`'s user JWT names that the account fetcher must fetch
    /// before the sign-in is checked (None: no fetcher, or nothing to fetch).
    pub(crate) fn account_to_fetch(
        &self,
        connect: &infinistream_protocol::Connect,
    ) -> Option<String> {
        self.account_fetcher.0.read().as_ref()?;
        match &*self.auth.read() {
            Some(Auth::Users(users)) => users.unknown_account(connect),
            _ => None,
        }
    }

    /// The auth callout a `CONNECT` must go through, if any.
    pub(crate) fn callout_for(
        &self,
        connect: &infinistream_protocol::Connect,
    ) -> Option<(Arc<crate::auth::Users>, Arc<crate::auth::Callout>)> {
        match &*self.auth.read() {
            Some(Auth::Users(users)) => {
                let callout = users.callout_for(connect)?;
                Some((users.clone(), callout))
            }
            _ => None,
        }
    }

    /// Runs the account fetcher for `account` (see [`AccountFetcher`]).
    pub(crate) async fn fetch_account(&self, account: &str) {
        let fetcher = self.account_fetcher.0.read().clone();
        if let Some(fetch) = fetcher {
            fetch(account.to_owned()).await;
        }
    }

    /// How many connections other than `except` are signed in to `account` on this
    /// broker (for an account JWT's `conn` limit).
    pub(crate) fn account_conns(&self, account: &AccountName, except: u64) -> u64 {
        let clients: Vec<_> = self.clients.lock().values().cloned().collect();
        clients
            .iter()
            .filter(|c| c.cid != except)
            .filter(|c| {
                c.login()
                    .is_some_and(|l| crate::auth::same_account(&l.account, account))
            })
            .count() as u64
    }
}

/// A core NATS server. Cheap to clone; all clones share one server.
///
/// A handle has an account ([`Broker::in_account`]): its internal subscriptions and
/// its own publishes and deliveries are in that account's subject space. The handle
/// [`Broker::new`] returns is in the account JetStream serves.
#[derive(Debug, Clone)]
pub struct Broker {
    pub(crate) inner: Arc<Inner>,
    /// The account of this handle's internal subscriptions and publishes.
    pub(crate) account: AccountName,
}

/// Bytes queued by a [`Deliveries`] after which the connections it wrote to are woken
/// without waiting for its end (their writers start while the rest is routed).
pub const WAKE_EVERY_BYTES: u64 = 256 << 10;

/// Messages routed to one deliver subject from inside the server (see
/// [`Broker::deliveries`]); dropping it wakes the connections and applies
/// auto-unsubscribes.
pub struct Deliveries<'a> {
    inner: &'a Inner,
    result: MatchResult,
    ctx: RouteCtx,
    /// `ctx.out_bytes` when the connections were last woken.
    woken_at: u64,
}

impl Deliveries<'_> {
    /// Routes one message (see [`Broker::deliver`]).
    pub fn send(
        &mut self,
        subject: &str,
        reply: Option<&str>,
        headers: Option<Bytes>,
        payload: Bytes,
    ) {
        let msg = Msg {
            subject: subject.as_bytes(),
            subject_bytes: None,
            reply: reply.map(str::as_bytes),
            headers: headers.as_ref(),
            payload: &payload,
        };
        let stats = &self.inner.stats;
        stats.in_msgs.inc();
        stats
            .in_bytes
            .inc_by((payload.len() + headers.as_ref().map_or(0, Bytes::len)) as u64);
        self.inner
            .route(&mut self.ctx, &self.result, None, true, msg);
        if self.ctx.out_bytes >= self.woken_at + WAKE_EVERY_BYTES {
            self.woken_at = self.ctx.out_bytes;
            for c in self.ctx.flush.drain(..) {
                c.notify.notify_one();
            }
        }
    }
}

impl Drop for Deliveries<'_> {
    fn drop(&mut self) {
        self.inner.finish_sync(std::mem::take(&mut self.ctx));
    }
}

impl std::fmt::Debug for Deliveries<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deliveries")
            .field("out_msgs", &self.ctx.out_msgs)
            .field("out_bytes", &self.ctx.out_bytes)
            .finish_non_exhaustive()
    }
}

/// Where a subscription's messages go.
#[derive(Debug)]
pub(crate) enum Target {
    Client {
        client: Arc<Client>,
        sid: Bytes,
    },
    Internal {
        queue: Arc<InternalQueue>,
    },
    /// A peer agent's clients' interest (see [`crate::peer`]).
    Route {
        link: Arc<PeerLink>,
    },
    /// This agent's service-import response subjects in one exporting account (see
    /// [`crate::broker`]).
    Responses,
}

/// A message being routed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Msg<'a> {
    pub subject: &'a [u8],
    /// `subject` as shared bytes when the router holds them (a client's `PUB`, a
    /// peer's message), so a delivery that keeps the subject needs no copy.
    pub subject_bytes: Option<&'a Bytes>,
    pub reply: Option<&'a [u8]>,
    pub headers: Option<&'a Bytes>,
    pub payload: &'a Bytes,
}

impl Msg<'_> {
    /// The subject as owned bytes: the shared ones when they are still this message's
    /// subject (an import's mapped subject is not), else a copy.
    pub(crate) fn owned_subject(&self) -> Bytes {
        match self.subject_bytes {
            Some(bytes) if bytes.as_ref() == self.subject => bytes.clone(),
            _ => Bytes::copy_from_slice(self.subject),
        }
    }
}

/// Work collected while routing a batch, done once at the end of the batch.
#[derive(Debug, Default)]
pub(crate) struct RouteCtx {
    /// Writers to wake.
    pub flush: Vec<Arc<Client>>,
    /// Internal deliveries whose channel was full: the publisher awaits these.
    pub blocked: Vec<(mpsc::Sender<InternalMsg>, InternalMsg)>,
    /// Subscribers above their stall threshold: the publisher pauses for them.
    pub stalled: Vec<Arc<Client>>,
    /// Subscriptions that reached their auto-unsubscribe max or lost their receiver.
    pub expired: Vec<Arc<Subscription>>,
    pub out_msgs: u64,
    pub out_bytes: u64,
    /// Peers owed the message being routed (emptied at its end).
    pub forwards: Vec<Forward>,
    /// The subject the routed messages were matched on when it is not their own (a
    /// consumer's deliver subject, see [`Broker::deliver`]): a peer matches on it too.
    pub deliver_subject: Option<Bytes>,
    /// The account the routed messages were matched in (peers match in it too); the
    /// broker's internal account when not set.
    pub account: Option<AccountName>,
    rng: u64,
}

impl RouteCtx {
    pub fn new(seed: u64) -> Self {
        RouteCtx {
            rng: seed | 1,
            ..RouteCtx::default()
        }
    }

    pub(crate) fn next_random(&mut self) -> u64 {
        // xorshift64*: queue-member choice needs speed, not cryptographic quality.
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// Seed from std's randomly keyed hasher (no extra dependency).
pub(crate) fn random_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    h.finish()
}

/// A nats-style server id: `N` plus 55 base32 characters.
/// A server identity as nats-server makes one: an NKey server key pair, whose
/// public key (`N…`) is the server id; it signs auth callout requests.
fn generate_server_key() -> nkeys::KeyPair {
    nkeys::KeyPair::new_server()
}

impl Broker {
    pub fn new(config: BrokerConfig) -> Self {
        let stats = Stats::default();
        let mut own_registry = Registry::with_prefix("infinistream");
        stats.register(&mut own_registry);
        let internal_account = match &config.auth {
            Some(Auth::Users(users)) => users.jetstream_account().clone(),
            _ => DEFAULT_ACCOUNT.into(),
        };
        let auth = RwLock::new(config.auth.clone());
        let server_key = generate_server_key();
        Broker {
            account: internal_account.clone(),
            inner: Arc::new(Inner {
                auth,
                internal_account,
                more_jetstream: RwLock::new(Vec::new()),
                config,
                server_id: server_key.public_key(),
                server_key,
                sublist: RwLock::new(Sublist::default()),
                sub_generation: AtomicU64::new(1),
                clients: Mutex::new(HashMap::new()),
                next_cid: AtomicU64::new(1),
                next_sub_id: AtomicU64::new(1),
                stats,
                start: SystemTime::now(),
                start_instant: Instant::now(),
                local_addr: OnceLock::new(),
                cpu: Mutex::new(CpuSampler::default()),
                metrics_registered_externally: AtomicBool::new(false),
                own_registry,
                cluster: RwLock::new(None),
                peers: RwLock::new(Vec::new()),
                captures: RwLock::new(None),
                responses: service::Responses::default(),
                account_fetcher: FetcherSlot::default(),
            }),
        }
    }

    pub fn config(&self) -> &BrokerConfig {
        &self.inner.config
    }

    /// Replaces how clients authenticate (a configuration reload), as nats-server
    /// does on `SIGHUP`: connections whose user is gone or whose credential changed
    /// are closed with `Authorization Violation`; the others keep going under their
    /// user's new permissions and limits. As nats-server applies an account JWT's new
    /// limits: a connection now holding more subscriptions than allowed is closed
    /// with `maximum subscriptions exceeded`, and an account over its new `conn`
    /// limit loses its newest connections (`maximum account active connections
    /// exceeded`). Returns how many connections were closed.
    pub fn reload_auth(&self, auth: Option<Auth>) -> usize {
        self.replace_auth(auth, "Authorization Violation")
    }

    /// Applies account JWTs the account resolver fetched or an account claims update
    /// pushed (operator mode): as [`Broker::reload_auth`], except that a connection
    /// whose user the new claims revoke is told `User Authentication Revoked`, as
    /// nats-server tells it on a `CLAIMS.UPDATE`.
    pub fn update_auth(&self, auth: Option<Auth>) -> usize {
        self.replace_auth(auth, "User Authentication Revoked")
    }

    /// How clients authenticate now (the configured [`Auth`], as last replaced).
    pub fn auth(&self) -> Option<Auth> {
        self.inner.auth()
    }

    /// Operator mode with the URL resolver: `fetch` is asked for each account a
    /// signing-in user JWT names that the current [`Auth`] does not know, and the
    /// `CONNECT` is checked once it is done.
    pub fn set_account_fetcher(&self, fetch: AccountFetcher) {
        *self.inner.account_fetcher.0.write() = Some(fetch);
    }

    fn replace_auth(&self, auth: Option<Auth>, revoked: &'static str) -> usize {
        let old = std::mem::replace(&mut *self.inner.auth.write(), auth.clone());
        let mut clients: Vec<_> = self.inner.clients.lock().values().cloned().collect();
        clients.sort_by_key(|c| c.cid);
        let mut closed = 0;
        let mut conns: HashMap<AccountName, u64> = HashMap::new();
        for client in clients {
            let Some(login) = client.login() else {
                continue;
            };
            let Some(login) = crate::auth::relogin(old.as_ref(), auth.as_ref(), &login) else {
                tracing::info!(cid = client.cid, user = %login.user, "closing connection: its user is no longer authorized");
                client.close_with_err(if crate::auth::revoked(auth.as_ref(), &login) {
                    revoked
                } else {
                    "Authorization Violation"
                });
                closed += 1;
                continue;
            };
            let open = conns.entry(login.account.clone()).or_default();
            *open += 1;
            let over_conns = login
                .limits
                .max_account_conns
                .is_some_and(|max| *open > max);
            if over_conns {
                *open -= 1;
            }
            let over_subs = login
                .limits
                .max_subs
                .is_some_and(|max| client.subs.lock().len() as u64 > max);
            client.set_login(login);
            let message = if over_conns {
                "maximum account active connections exceeded"
            } else if over_subs {
                "maximum subscriptions exceeded"
            } else {
                continue;
            };
            tracing::info!(
                cid = client.cid,
                reason = message,
                "closing connection: over its account's new limits"
            );
            client.close_with_err(message);
            closed += 1;
        }
        closed
    }

    /// Replaces the client TLS certificate, key and CA (a configuration reload): new
    /// connections get the new ones, open connections stay up. Turning TLS on or off,
    /// or changing whether client certificates are required, needs a restart.
    pub fn reload_tls(&self, tls: Option<&crate::tls::Tls>) -> Result<(), crate::tls::TlsError> {
        match (&self.inner.config.tls, tls) {
            (Some(running), Some(new)) => running.replace_with(new),
            (None, None) => Ok(()),
            _ => Err(crate::tls::TlsError::Config(
                "turning TLS for NATS clients on or off needs a restart".into(),
            )),
        }
    }
    /// This agent as nats-server's system messages name their server (`server` in
    /// an envelope): `cluster` as the caller knows it, `seq` its message counter,
    /// `time` now.
    pub fn server_info(
        &self,
        cluster: String,
        seq: u64,
        time: infinistream_protocol::jsapi::time::Timestamp,
    ) -> infinistream_protocol::sysapi::ServerInfo {
        let config = self.config();
        infinistream_protocol::sysapi::ServerInfo {
            name: config.server_name.clone(),
            host: config.host.clone(),
            id: self.server_id().to_owned(),
            cluster,
            domain: String::new(),
            version: config.version.clone(),
            tags: Vec::new(),
            jetstream: config.jetstream,
            flags: if config.jetstream {
                infinistream_protocol::sysapi::FLAG_JETSTREAM
            } else {
                0
            },
            seq,
            time,
        }
    }

    pub fn server_id(&self) -> &str {
        &self.inner.server_id
    }

    /// The account JetStream serves: internal subscribers and the broker's own
    /// publishes live in it (fixed for the broker's life); for a handle made by
    /// [`Broker::in_account`], that account.
    pub fn jetstream_account(&self) -> &str {
        &self.account
    }

    /// A handle in the broker's own account (the one [`Broker::new`] returns a handle
    /// in): the agent's internal services between agents live there.
    pub fn internal(&self) -> Broker {
        Broker {
            inner: self.inner.clone(),
            account: self.inner.internal_account.clone(),
        }
    }

    /// Marks `account` as served by JetStream too (its own `$JS.API` responder runs
    /// on [`Broker::in_account`]): its API requests no longer get `JetStream not
    /// enabled for account` (10039) from the broker.
    pub fn serve_jetstream_in(&self, account: &str) {
        let mut more = self.inner.more_jetstream.write();
        if !more.iter().any(|a| &**a == account) {
            more.push(account.into());
        }
    }

    /// The accounts [`Broker::serve_jetstream_in`] added.
    pub fn more_jetstream_accounts(&self) -> Vec<String> {
        self.inner
            .more_jetstream
            .read()
            .iter()
            .map(|a| a.to_string())
            .collect()
    }

    /// A handle on the same server whose internal subscriptions, publishes and
    /// deliveries are in `account`'s subject space instead: a subscriber of one
    /// account never sees what is published in another (imports aside).
    pub fn in_account(&self, account: &str) -> Broker {
        Broker {
            inner: self.inner.clone(),
            account: account.into(),
        }
    }

    /// The address `serve` is listening on, once it started.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.inner.local_addr.get().copied()
    }

    /// Accepts clients until `shutdown` is cancelled, then stops accepting, lets every
    /// connection flush what is queued (bounded by `shutdown_grace`) and closes them.
    pub async fn serve(
        &self,
        listener: TcpListener,
        shutdown: CancellationToken,
    ) -> std::io::Result<()> {
        let addr = listener.local_addr()?;
        let _ = self.inner.local_addr.set(addr);
        info!(%addr, server_id = %self.inner.server_id, "nats listener started");
        let tracker = TaskTracker::new();
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        let inner = self.inner.clone();
                        let shutdown = shutdown.clone();
                        let cid = inner.next_cid.fetch_add(1, Ordering::Relaxed);
                        let span = info_span!("nats_conn", cid, %peer);
                        tracker.spawn(
                            client::run(inner, stream, peer, cid, shutdown).instrument(span),
                        );
                    }
                    Err(e) => {
                        // Typically EMFILE/ECONNABORTED: keep serving the others.
                        warn!(error = %e, "accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    }
                },
            }
        }
        drop(listener);
        tracker.close();
        info!(
            connections = tracker.len(),
            "nats listener stopped, draining connections"
        );
        if tokio::time::timeout(self.inner.config.shutdown_grace, tracker.wait())
            .await
            .is_err()
        {
            warn!("connections did not drain in time, dropping them");
            let clients: Vec<_> = self.inner.clients.lock().values().cloned().collect();
            for c in clients {
                c.abort();
            }
            tracker.wait().await;
        }
        info!("nats listener drained");
        Ok(())
    }

    /// Publishes from inside the server, routed exactly like a client `PUB`.
    ///
    /// Never blocks. Client subscribers get the message like any other (a connection
    /// past `max_pending` is cut off as a slow consumer, as nats-server does). An
    /// internal subscriber whose channel is full gets it through that subscriber's
    /// ordered backlog (see [`InternalQueue`]): server-published messages reach each
    /// internal subscriber in publish order, memory stays bounded, and only messages
    /// without a reply subject are ever dropped (counted as slow-consumer events).
    pub fn publish(
        &self,
        subject: &str,
        reply: Option<&str>,
        headers: Option<Bytes>,
        payload: Bytes,
    ) {
        self.deliver(subject, subject, reply, headers, payload);
    }

    /// Routes a message to the subscribers of `deliver_subject` while the message
    /// keeps its own `subject`: how JetStream hands a stored message to a consumer
    /// (push deliver subject or pull request inbox) — the client sees the subject the
    /// message was published on (KV watchers take the key from it), as with
    /// nats-server. Otherwise exactly [`Broker::publish`].
    pub fn deliver(
        &self,
        deliver_subject: &str,
        subject: &str,
        reply: Option<&str>,
        headers: Option<Bytes>,
        payload: Bytes,
    ) {
        self.deliveries(deliver_subject)
            .send(subject, reply, headers, payload);
    }

    /// Several [`Broker::deliver`]s to one `deliver_subject` (a consumer's batch):
    /// its subscribers are matched once, and their connections are woken once per
    /// [`WAKE_EVERY_BYTES`] and when the returned value is dropped, instead of per
    /// message.
    pub fn deliveries(&self, deliver_subject: &str) -> Deliveries<'_> {
        let inner = &*self.inner;
        let mut ctx = RouteCtx::new(random_seed());
        ctx.deliver_subject = Some(Bytes::copy_from_slice(deliver_subject.as_bytes()));
        ctx.account = Some(self.account.clone());
        Deliveries {
            inner,
            result: inner
                .sublist
                .read()
                .matches(&self.account, deliver_subject.as_bytes()),
            ctx,
            woken_at: 0,
        }
    }

    /// Subscribes an in-process handler. Messages arrive on a bounded channel of
    /// `capacity`; a client publishing into a full channel waits (only that client).
    /// Dropping the returned value unsubscribes.
    pub fn subscribe_internal(
        &self,
        subject: &str,
        queue: Option<&str>,
        capacity: usize,
    ) -> Result<InternalSubscription, BrokerError> {
        self.subscribe_internal_with(subject, queue, capacity, false)
    }

    /// [`Broker::subscribe_internal`] for a service every agent of the group answers:
    /// the subscription is announced to peer agents like a client's, so what a client
    /// on any agent publishes on `subject` reaches it (once, forwarded by the
    /// publisher's agent). Stream capture and the JetStream API stay local
    /// (a publish must be captured once); the system API's PINGs are cluster-visible.
    pub fn subscribe_cluster_internal(
        &self,
        subject: &str,
        queue: Option<&str>,
        capacity: usize,
    ) -> Result<InternalSubscription, BrokerError> {
        self.subscribe_internal_with(subject, queue, capacity, true)
    }

    fn subscribe_internal_with(
        &self,
        subject: &str,
        queue: Option<&str>,
        capacity: usize,
        cluster_visible: bool,
    ) -> Result<InternalSubscription, BrokerError> {
        if !subject::is_valid_subject(subject.as_bytes()) {
            return Err(BrokerError::InvalidSubject(subject.to_owned()));
        }
        if let Some(q) = queue
            && !subject::is_valid_queue(q.as_bytes())
        {
            return Err(BrokerError::InvalidQueue(q.to_owned()));
        }
        if capacity == 0 {
            return Err(BrokerError::InvalidCapacity(capacity));
        }
        let (tx, rx) = mpsc::channel(capacity);
        let mut sub = Subscription::new(
            self.inner.next_sub_id.fetch_add(1, Ordering::Relaxed),
            self.account.clone(),
            Bytes::copy_from_slice(subject.as_bytes()),
            queue.map(|q| Bytes::copy_from_slice(q.as_bytes())),
            Target::Internal {
                queue: Arc::new(InternalQueue::new(tx, capacity)),
            },
        );
        sub.cluster_visible = cluster_visible;
        let sub = Arc::new(sub);
        self.inner.add_sub(sub.clone());
        Ok(InternalSubscription::new(
            rx,
            sub,
            Arc::downgrade(&self.inner),
        ))
    }

    /// A number that changes whenever a subscription is added or removed (anyone
    /// caching what [`Broker::has_interest`] said compares it to know when to ask again).
    pub fn subscription_generation(&self) -> u64 {
        self.inner.sub_generation.load(Ordering::Acquire)
    }

    /// Whether anything on this agent (a client or an internal handler) subscribes to
    /// `subject`; peer agents' interest does not count.
    pub fn has_interest(&self, subject: &str) -> bool {
        self.any_subscription(subject, |s| !s.is_route())
    }

    /// Whether a subscription matching `subject` satisfies `pred`.
    pub(crate) fn any_subscription(
        &self,
        subject: &str,
        pred: impl Fn(&Subscription) -> bool,
    ) -> bool {
        let result = self
            .inner
            .sublist
            .read()
            .matches(&self.account, subject.as_bytes());
        result
            .plain
            .iter()
            .chain(result.groups.iter().flatten())
            .any(|s| pred(s))
    }

    /// Registers the broker's counters in `registry` (then `/metrics` stops rendering
    /// them separately, so nothing is exported twice).
    pub fn register_metrics(&self, registry: &mut Registry) {
        self.inner.stats.register(registry);
        self.inner
            .metrics_registered_externally
            .store(true, Ordering::Release);
    }

    /// The `INFO` sent to a new connection.
    pub(crate) fn base_info(inner: &Inner) -> Info {
        let c = &inner.config;
        Info {
            server_id: inner.server_id.clone(),
            server_name: c.server_name.clone(),
            version: c.version.clone(),
            go: "go1.24.0".to_owned(),
            host: c.host.clone(),
            port: inner.local_addr.get().map_or(0, SocketAddr::port),
            headers: true,
            max_payload: c.max_payload,
            proto: 1,
            client_id: None,
            auth_required: inner.auth_required(),
            tls_required: c.tls.is_some(),
            jetstream: c.jetstream,
            client_ip: None,
            connect_urls: inner.connect_urls_for(None),
            ldm: false,
            nonce: None,
            infinistream_version: Some(INFINISTREAM_VERSION.to_owned()),
        }
    }
}

/// An in-process subscription; see [`Broker::subscribe_internal`].
#[derive(Debug)]
pub struct InternalSubscription {
    rx: mpsc::Receiver<InternalMsg>,
    sub: Arc<Subscription>,
    broker: Weak<Inner>,
}

impl InternalSubscription {
    pub(crate) fn new(
        rx: mpsc::Receiver<InternalMsg>,
        sub: Arc<Subscription>,
        broker: Weak<Inner>,
    ) -> Self {
        InternalSubscription { rx, sub, broker }
    }

    /// Next message; `None` once the broker is gone.
    pub async fn recv(&mut self) -> Option<InternalMsg> {
        self.rx.recv().await
    }

    pub fn try_recv(&mut self) -> Option<InternalMsg> {
        self.rx.try_recv().ok()
    }

    /// Next message; `None` once the broker is gone or `shutdown` is cancelled.
    pub async fn recv_until(&mut self, shutdown: &CancellationToken) -> Option<InternalMsg> {
        tokio::select! {
            () = shutdown.cancelled() => None,
            msg = self.rx.recv() => msg,
        }
    }

    pub fn subject(&self) -> &[u8] {
        &self.sub.subject
    }

    /// A handle that takes this subscription out of the subject index at once, from
    /// anywhere, while its owner may still drain what was already queued.
    pub fn closer(&self) -> SubscriptionCloser {
        SubscriptionCloser {
            sub: self.sub.clone(),
            broker: self.broker.clone(),
        }
    }
}

/// See [`InternalSubscription::closer`].
#[derive(Debug, Clone)]
pub struct SubscriptionCloser {
    sub: Arc<Subscription>,
    broker: Weak<Inner>,
}

impl SubscriptionCloser {
    /// Stops new messages from reaching the subscription; idempotent. Messages already
    /// queued stay readable with [`InternalSubscription::try_recv`].
    pub fn close(&self) {
        if let Some(inner) = self.broker.upgrade() {
            inner.remove_sub(&self.sub);
        }
    }
}

impl Drop for InternalSubscription {
    fn drop(&mut self) {
        if let Some(inner) = self.broker.upgrade() {
            inner.remove_sub(&self.sub);
        }
    }
}

impl Inner {
    pub(crate) fn add_sub(&self, sub: Arc<Subscription>) {
        let mut list = self.sublist.write();
        if list.insert(sub.clone()) {
            self.announce(&sub.account, &sub.subject, &sub.queue, true);
        }
        self.sub_generation.fetch_add(1, Ordering::AcqRel);
        self.stats.subscriptions.set(list.len() as i64);
    }

    /// Removes `sub` from the index and, for a client subscription, from its client.
    pub(crate) fn remove_sub(&self, sub: &Subscription) {
        sub.closed.store(true, Ordering::Release);
        {
            let mut list = self.sublist.write();
            let (removed, last) = list.remove_announced(sub);
            if removed {
                self.sub_generation.fetch_add(1, Ordering::AcqRel);
            }
            if last {
                self.announce(&sub.account, &sub.subject, &sub.queue, false);
            }
            self.stats.subscriptions.set(list.len() as i64);
        }
        if let Target::Client { client, sid } = &sub.target {
            let mut subs = client.subs.lock();
            if subs.get(sid).is_some_and(|s| s.id == sub.id) {
                subs.remove(sid);
            }
        }
    }

    /// Delivers `msg` to everything in `result`. Returns whether anyone got it.
    pub(crate) fn route(
        &self,
        ctx: &mut RouteCtx,
        result: &MatchResult,
        publisher: Option<u64>,
        echo: bool,
        msg: Msg<'_>,
    ) -> bool {
        let mut delivered = false;
        for sub in &result.plain {
            if let Target::Route { link } = &sub.target {
                if !link.is_closed() {
                    ctx.forward_to(link, None);
                    delivered = true;
                }
                continue;
            }
            delivered |= self.deliver(ctx, sub, publisher, echo, msg);
        }
        for group in &result.groups {
            // A member on this agent first; else one member on one peer.
            let n = group.len();
            let start = (ctx.next_random() % n as u64) as usize;
            let mut remote = None;
            let mut served = false;
            for i in 0..n {
                let sub = &group[(start + i) % n];
                if let Target::Route { link } = &sub.target {
                    if remote.is_none() && !link.is_closed() {
                        remote = Some((link, &sub.queue));
                    }
                    continue;
                }
                if self.deliver(ctx, sub, publisher, echo, msg) {
                    served = true;
                    break;
                }
            }
            if !served && let Some((link, queue)) = remote {
                ctx.forward_to(link, queue.as_ref());
                served = true;
            }
            delivered |= served;
        }
        if !ctx.forwards.is_empty() {
            self.forward(ctx, msg);
        }
        delivered
    }

    /// Queues `msg` for the peers [`Inner::route`] found interested.
    fn forward(&self, ctx: &mut RouteCtx, msg: Msg<'_>) {
        for f in ctx.forwards.drain(..) {
            f.link.push_msg(
                self,
                PeerMsg {
                    account: ctx
                        .account
                        .clone()
                        .unwrap_or_else(|| self.internal_account.clone()),
                    subject: msg.owned_subject(),
                    deliver: ctx
                        .deliver_subject
                        .clone()
                        .filter(|d| d[..] != *msg.subject),
                    reply: msg.reply.map(Bytes::copy_from_slice),
                    headers: msg.headers.cloned(),
                    payload: msg.payload.clone(),
                    plain: f.plain,
                    queues: f.queues,
                    internal: None,
                },
            );
        }
    }

    pub(crate) fn deliver(
        &self,
        ctx: &mut RouteCtx,
        sub: &Arc<Subscription>,
        publisher: Option<u64>,
        echo: bool,
        msg: Msg<'_>,
    ) -> bool {
        if sub.is_closed() {
            return false;
        }
        match &sub.target {
            Target::Client { client, sid } => {
                if !echo && publisher == Some(client.cid) {
                    return false;
                }
                let (ok, last) = sub.take_delivery();
                if !ok {
                    return false;
                }
                if last {
                    ctx.expired.push(sub.clone());
                }
                let headers = if client.wants_headers() {
                    msg.headers
                } else {
                    None
                };
                client.enqueue_msg(self, ctx, sid, msg, headers)
            }
            Target::Internal { queue } => {
                let (ok, last) = sub.take_delivery();
                if !ok {
                    return false;
                }
                if last {
                    ctx.expired.push(sub.clone());
                }
                let m = InternalMsg {
                    subject: Subject::from_bytes(msg.owned_subject()),
                    reply: msg.reply.map(|r| String::from_utf8_lossy(r).into_owned()),
                    headers: msg.headers.cloned(),
                    payload: msg.payload.clone(),
                    client_id: publisher.unwrap_or(0),
                    capture_stream: None,
                };
                let bytes = (msg.payload.len() + msg.headers.map_or(0, Bytes::len)) as u64;
                let delivered = match publisher {
                    Some(_) => queue.deliver_from_client(ctx, m),
                    None => queue.deliver_from_server(self, m),
                };
                match delivered {
                    Delivered::Yes => {
                        ctx.out_msgs += 1;
                        ctx.out_bytes += bytes;
                        true
                    }
                    Delivered::Dropped => true,
                    Delivered::Closed => {
                        ctx.expired.push(sub.clone());
                        false
                    }
                }
            }
            // Peers are owed a message through `Inner::route`, never one by one.
            Target::Route { .. } => false,
            Target::Responses => self.deliver_response(ctx, msg),
        }
    }

    /// Sends a `503` no-responders status to the publisher's own reply subscription.
    pub(crate) fn no_responders(
        &self,
        ctx: &mut RouteCtx,
        client: &Arc<Client>,
        account: &AccountName,
        reply: &[u8],
    ) {
        const STATUS_503: &[u8] = b"NATS/1.0 503\r\n\r\n";
        let result = self.sublist.read().matches(account, reply);
        let Some(sub) = result
            .plain
            .iter()
            .find(|s| s.client_id() == Some(client.cid))
        else {
            return;
        };
        if let Target::Client { sid, .. } = &sub.target {
            let headers = Bytes::from_static(STATUS_503);
            let payload = Bytes::new();
            let msg = Msg {
                subject: reply,
                subject_bytes: None,
                reply: None,
                headers: Some(&headers),
                payload: &payload,
            };
            client.enqueue_msg(self, ctx, sid, msg, Some(&headers));
        }
    }

    /// Finishes a batch routed outside a connection reader (cannot await).
    pub(crate) fn finish_sync(&self, mut ctx: RouteCtx) {
        // In-process publishers never block; only client readers stall.
        ctx.stalled.clear();
        for c in ctx.flush.drain(..) {
            c.notify.notify_one();
        }
        for sub in ctx.expired.drain(..) {
            self.remove_sub(&sub);
        }
        // Server publishes never wait on internal subscribers (their backlogs take
        // the overflow), so nothing is ever blocked here.
        debug_assert!(ctx.blocked.is_empty());
        self.stats.out_msgs.inc_by(ctx.out_msgs);
        self.stats.out_bytes.inc_by(ctx.out_bytes);
    }
}

/// Whether an internal subscriber took a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Delivered {
    /// Queued (in the channel, in the backlog, or for the publishing reader to await).
    Yes,
    /// The backlog was full and the message had no reply subject: dropped and counted.
    Dropped,
    /// The subscriber is gone.
    Closed,
}

/// How many times the backlog's limit an atomic batch message without a reply subject
/// (`Nats-Batch-Id`, forwarded to the produce agent that stages the batch) may wait
/// behind: dropping one fails its whole batch, and the batch limits (1,000 messages,
/// 50 batches per stream) bound what a publisher has in flight, as a reply subject
/// does for other publishes.
const BATCH_BACKLOG_FACTOR: usize = 64;

/// Whether `m` is a message of an atomic batch.
fn is_batch_message(m: &InternalMsg) -> bool {
    let needle = infinistream_protocol::jsapi::headers::BATCH_ID.as_bytes();
    m.headers.as_deref().is_some_and(|h| {
        h.windows(needle.len())
            .any(|w| w.eq_ignore_ascii_case(needle))
    })
}

/// An internal subscriber's inbox: its bounded channel plus an ordered backlog for
/// messages published from inside the server while the channel is full.
///
/// - A client's publish into a full channel makes that client's reader wait
///   ([`RouteCtx::blocked`]), which back-pressures only that connection; later
///   publishes of the same read batch to the same subscriber queue behind it, so one
///   connection's messages keep their order.
/// - A server publish (PubAcks, API replies, consumer deliveries) cannot wait. While
///   the channel is full, or while earlier overflow is still being drained, it joins
///   the backlog, which one drainer task moves into the channel in FIFO order, so
///   server-published messages keep their order too. The backlog holds at most the
///   channel's capacity; past that a message without a reply subject is dropped and
///   counted as a slow-consumer event (nats-server drops messages for a slow consumer
///   rather than grow without bound); a message of an atomic batch, which would fail
///   its whole batch, waits up to [`BATCH_BACKLOG_FACTOR`] times longer (a batch
///   message forwarded to the produce agent often has no reply subject). A message
///   with a reply subject expects an answer — a publish waiting for its PubAck, a request, a delivery to be acked — and
///   is never dropped: those are bounded by their publishers' own in-flight limits
///   (pending acks, max_ack_pending, request timeouts).
#[derive(Debug)]
pub(crate) struct InternalQueue {
    tx: mpsc::Sender<InternalMsg>,
    backlog: Mutex<Backlog>,
    limit: usize,
}

#[derive(Debug, Default)]
struct Backlog {
    msgs: VecDeque<InternalMsg>,
    /// A drainer task owns the channel's ordering until it finds the backlog empty.
    draining: bool,
    /// Set while dropping, so one overload episode logs one line.
    dropping: bool,
}

impl InternalQueue {
    pub(crate) fn new(tx: mpsc::Sender<InternalMsg>, limit: usize) -> Self {
        InternalQueue {
            tx,
            backlog: Mutex::new(Backlog::default()),
            limit: limit.max(1),
        }
    }

    fn deliver_from_client(&self, ctx: &mut RouteCtx, m: InternalMsg) -> Delivered {
        // Behind an earlier message of this batch that is waiting: keep the order.
        if ctx.blocked.iter().any(|(tx, _)| tx.same_channel(&self.tx)) {
            ctx.blocked.push((self.tx.clone(), m));
            return Delivered::Yes;
        }
        match self.tx.try_send(m) {
            Ok(()) => Delivered::Yes,
            Err(mpsc::error::TrySendError::Full(m)) => {
                ctx.blocked.push((self.tx.clone(), m));
                Delivered::Yes
            }
            Err(mpsc::error::TrySendError::Closed(_)) => Delivered::Closed,
        }
    }

    pub(crate) fn deliver_from_server(
        self: &Arc<Self>,
        inner: &Inner,
        m: InternalMsg,
    ) -> Delivered {
        let mut backlog = self.backlog.lock();
        let m = if backlog.draining {
            m
        } else {
            match self.tx.try_send(m) {
                Ok(()) => return Delivered::Yes,
                Err(mpsc::error::TrySendError::Closed(_)) => return Delivered::Closed,
                Err(mpsc::error::TrySendError::Full(m)) => m,
            }
        };
        let batch = m.reply.is_none() && is_batch_message(&m);
        let bound = if batch {
            self.limit.saturating_mul(BATCH_BACKLOG_FACTOR)
        } else {
            self.limit
        };
        if backlog.msgs.len() >= bound && m.reply.is_none() {
            inner.stats.internal_dropped.inc();
            if batch {
                // Its batch's commit is refused as incomplete (10176).
                warn!(
                    subject = %m.subject,
                    bound,
                    "atomic batch message dropped: the internal subscriber's backlog holds its bound for batch messages"
                );
            }
            if !backlog.dropping {
                backlog.dropping = true;
                inner.stats.slow_consumers.inc();
                warn!(
                    subject = %m.subject,
                    backlog = backlog.msgs.len(),
                    "internal subscriber is a slow consumer: dropping server messages without a reply subject"
                );
            }
            return Delivered::Dropped;
        }
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            // No runtime to drain with (only possible from non-async code at shutdown).
            inner.stats.internal_dropped.inc();
            debug!(subject = %m.subject, "internal subscriber full outside a runtime; message dropped");
            return Delivered::Dropped;
        };
        backlog.msgs.push_back(m);
        if !backlog.draining {
            backlog.draining = true;
            let queue = self.clone();
            handle.spawn(async move { queue.drain().await });
        }
        Delivered::Yes
    }

    /// Moves the backlog into the channel in order, waiting for room.
    async fn drain(self: Arc<Self>) {
        loop {
            let next = {
                let mut backlog = self.backlog.lock();
                match backlog.msgs.pop_front() {
                    Some(m) => m,
                    None => {
                        backlog.draining = false;
                        backlog.dropping = false;
                        return;
                    }
                }
            };
            if self.tx.send(next).await.is_err() {
                // The subscriber is gone: nothing left to deliver to.
                let mut backlog = self.backlog.lock();
                backlog.msgs.clear();
                backlog.draining = false;
                return;
            }
        }
    }
}
