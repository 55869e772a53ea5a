//! One client connection: a reader task that parses and routes, and a writer task
//! that flushes the connection's outbound buffer.
//!
//! Publishers (other connections' readers, or in-process code) append encoded
//! messages to [`Client::out`] under a short mutex and wake the writer, which swaps the
//! whole buffer out and writes it in one call — however many messages piled up. The
//! buffer is bounded by `max_pending`: a connection that cannot keep up is cut off as
//! a slow consumer instead of growing memory or stalling its publishers.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use bytes::{Bytes, BytesMut};
use infinistream_protocol::client::Publish;
use infinistream_protocol::{ClientOp, ClientParser, Connect, Limits, server, subject};
use parking_lot::{Mutex, RwLock};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, trace};

use super::Target;
use super::sub::Subscription;
use super::sublist::{MatchCache, MatchResult};
use crate::auth::{self, AccountName, Auth, ConnPermissions, DEFAULT_ACCOUNT, Login, same_account};
use crate::broker::{Broker, Inner, Msg, RouteCtx, random_seed};
use crate::routing::{self, Decision, RouteRequest};
use crate::tls::Tls;

const READ_CHUNK: usize = 64 * 1024;
const WRITE_SHRINK_ABOVE: usize = 1024 * 1024;
/// Longest a publisher's reader pauses per batch for one congested subscriber.
const STALL_MAX: Duration = Duration::from_millis(50);
/// Longest an aborted connection's writer waits to hand the kernel its last words
/// (`-ERR 'Slow Consumer'`).
const TAIL_WRITE: Duration = Duration::from_millis(10);

/// Outbound state, guarded by [`Client::out`].
#[derive(Debug, Default)]
pub(crate) struct Outbound {
    pub buf: Vec<u8>,
    /// Bytes the writer took and is writing now.
    pub in_flight: usize,
    /// No more messages are accepted.
    pub closed: bool,
    pub out_msgs: u64,
    pub out_bytes: u64,
}

/// Where a connection is pointed (see [`crate::routing`]).
#[derive(Debug, Default)]
pub(crate) struct ClientRouting {
    /// Sent `CONNECT` with protocol 1, so it takes async `INFO` (as nats-server).
    pub info_updates: bool,
    /// What its name asked for.
    pub request: RouteRequest,
    /// The `connect_urls` it was last told.
    pub sent_urls: Vec<String>,
}

/// What a client told us in `CONNECT`.
#[derive(Debug, Clone, Default)]
pub(crate) struct ClientInfo {
    pub name: String,
    pub lang: String,
    pub version: String,
    /// The user it authenticated as, as nats-server reports it: the user name,
    /// `[REDACTED]` for a token, empty without authentication.
    pub user: String,
}

#[derive(Debug)]
pub(crate) struct Client {
    pub cid: u64,
    pub addr: SocketAddr,
    pub start: SystemTime,
    pub out: Mutex<Outbound>,
    pub notify: Notify,
    /// Signalled by the writer after each completed write (publisher stalls wait on it).
    pub drained: Notify,
    /// Cancelled to abort the connection (slow consumer, shutdown timeout).
    pub token: CancellationToken,
    pub info: Mutex<ClientInfo>,
    pub routing: Mutex<ClientRouting>,
    headers: AtomicBool,
    pub subs: Mutex<HashMap<Bytes, Arc<Subscription>>>,
    pub in_msgs: AtomicU64,
    pub in_bytes: AtomicU64,
    max_pending: usize,
    /// The nonce this connection's `INFO` carried, when NKey users may sign in.
    nonce: OnceLock<String>,
    /// Who the connection authenticated as (None: no auth configured, or before
    /// `CONNECT`).
    login: Mutex<Option<Login>>,
    /// The permissions of `login`, read on every delivery (None: all allowed).
    permissions: RwLock<Option<Arc<ConnPermissions>>>,
    /// Bumped when `permissions` change, so the reader refreshes its copy.
    permissions_version: AtomicU64,
    /// The login's subscription and payload limits (u64::MAX: unlimited).
    max_subs: AtomicU64,
    max_payload: AtomicU64,
    /// Cancels the timer that closes the connection when its JWT expires.
    expiry_timer: Mutex<Option<CancellationToken>>,
}

impl Client {
    fn new(cid: u64, addr: SocketAddr, max_pending: usize) -> Self {
        Client {
            cid,
            addr,
            start: SystemTime::now(),
            out: Mutex::new(Outbound::default()),
            notify: Notify::new(),
            drained: Notify::new(),
            token: CancellationToken::new(),
            info: Mutex::new(ClientInfo::default()),
            routing: Mutex::new(ClientRouting::default()),
            // Until CONNECT says otherwise, like nats-server: no headers.
            headers: AtomicBool::new(false),
            subs: Mutex::new(HashMap::new()),
            in_msgs: AtomicU64::new(0),
            in_bytes: AtomicU64::new(0),
            max_pending,
            nonce: OnceLock::new(),
            login: Mutex::new(None),
            permissions: RwLock::new(None),
            permissions_version: AtomicU64::new(0),
            max_subs: AtomicU64::new(u64::MAX),
            max_payload: AtomicU64::new(u64::MAX),
            expiry_timer: Mutex::new(None),
        }
    }

    pub(crate) fn login(&self) -> Option<Login> {
        self.login.lock().clone()
    }

    /// Sets who the connection is (at `CONNECT`, and again after a reload): its
    /// permissions, limits, and the timer that closes it when its JWT expires.
    pub(crate) fn set_login(self: &Arc<Self>, login: Login) {
        *self.permissions.write() = login.permissions.clone();
        self.permissions_version.fetch_add(1, Ordering::AcqRel);
        self.info.lock().user = login.user.clone();
        let unlimited = |v: Option<u64>| v.unwrap_or(u64::MAX);
        self.max_subs
            .store(unlimited(login.limits.max_subs), Ordering::Relaxed);
        self.max_payload
            .store(unlimited(login.limits.max_payload), Ordering::Relaxed);
        let expires = login.expires;
        let before = self.login.lock().replace(login).and_then(|l| l.expires);
        if before != expires || self.expiry_timer.lock().is_none() {
            self.arm_expiry(expires);
        }
    }

    /// Whether this connection may hold no more subscriptions (nats-server's
    /// `subsAtLimit`).
    pub(crate) fn subs_at_limit(&self) -> bool {
        let max = self.max_subs.load(Ordering::Relaxed);
        max != u64::MAX && self.subs.lock().len() as u64 >= max
    }

    /// (Re)starts the timer that closes the connection at `expiry` (None: stops it).
    fn arm_expiry(self: &Arc<Self>, expiry: Option<auth::Expiry>) {
        let timer = expiry.map(|_| self.token.child_token());
        if let Some(old) = std::mem::replace(&mut *self.expiry_timer.lock(), timer.clone()) {
            old.cancel();
        }
        if let (Some(expiry), Some(timer)) = (expiry, timer) {
            close_at_expiry(self.clone(), expiry, timer);
        }
    }

    /// Whether a message on `subject` may be delivered to this connection (see
    /// [`ConnPermissions::on_delivery`]).
    fn admits(&self, subject: &[u8], reply: Option<&[u8]>) -> bool {
        match &*self.permissions.read() {
            None => true,
            Some(p) => p.on_delivery(subject, reply),
        }
    }

    /// Sends `-ERR '<message>'` instead of whatever is still queued and closes the
    /// connection.
    pub(crate) fn close_with_err(&self, message: &str) {
        let mut out = self.out.lock();
        if out.closed {
            return;
        }
        out.closed = true;
        out.buf.clear();
        server::write_err(&mut out.buf, message);
        drop(out);
        self.token.cancel();
    }

    pub fn wants_headers(&self) -> bool {
        self.headers.load(Ordering::Relaxed)
    }

    /// Aborts the connection without flushing.
    pub fn abort(&self) {
        self.out.lock().closed = true;
        self.token.cancel();
    }

    /// Appends a message for subscription `sid`; false if the connection is closed or
    /// just became a slow consumer.
    pub fn enqueue_msg(
        self: &Arc<Self>,
        inner: &Inner,
        ctx: &mut RouteCtx,
        sid: &[u8],
        msg: Msg<'_>,
        headers: Option<&Bytes>,
    ) -> bool {
        if !self.admits(msg.subject, msg.reply) {
            return false;
        }
        let hdr = headers.map(|h| &h[..]);
        let size = server::msg_len(msg.subject, sid, msg.reply, hdr, msg.payload);
        let mut out = self.out.lock();
        if out.closed {
            return false;
        }
        if out.buf.len() + out.in_flight + size > self.max_pending {
            out.closed = true;
            out.buf.clear();
            server::write_err(&mut out.buf, "Slow Consumer");
            drop(out);
            inner.stats.slow_consumers.inc();
            info!(
                cid = self.cid,
                max_pending = self.max_pending,
                "slow consumer detected: max_pending exceeded"
            );
            self.token.cancel();
            return false;
        }
        let was_empty = out.buf.is_empty();
        server::write_msg(&mut out.buf, msg.subject, sid, msg.reply, hdr, msg.payload);
        let stalled = out.buf.len() + out.in_flight > self.stall_threshold();
        let bytes = (msg.payload.len() + hdr.map_or(0, <[u8]>::len)) as u64;
        out.out_msgs += 1;
        out.out_bytes += bytes;
        drop(out);
        ctx.out_msgs += 1;
        ctx.out_bytes += bytes;
        if was_empty {
            ctx.flush.push(self.clone());
        }
        if stalled && !ctx.stalled.iter().any(|c| c.cid == self.cid) {
            ctx.stalled.push(self.clone());
        }
        true
    }

    /// Above this many pending bytes, publishers into this connection pause briefly
    /// (nats-server's stall gate), so a fast producer is slowed to its consumers' pace
    /// before anyone is cut off as a slow consumer.
    fn stall_threshold(&self) -> usize {
        self.max_pending / 4 * 3
    }

    /// Appends a protocol line (`PONG`, `+OK`, `-ERR`, `INFO`) and wakes the writer.
    fn enqueue_proto(&self, bytes: &[u8]) {
        let mut out = self.out.lock();
        if out.closed {
            return;
        }
        if out.buf.len() + out.in_flight + bytes.len() > self.max_pending {
            // E.g. a client flooding PINGs without reading the PONGs.
            out.closed = true;
            out.buf.clear();
            drop(out);
            info!(
                cid = self.cid,
                "closing connection: protocol replies exceed max_pending"
            );
            self.token.cancel();
            return;
        }
        out.buf.extend_from_slice(bytes);
        drop(out);
        self.notify.notify_one();
    }

    /// Tells a connected client its new `connect_urls` with an async `INFO`, once per
    /// change (nats-server does so when its cluster changes).
    pub(crate) fn update_connect_urls(&self, inner: &Inner, urls: Vec<String>) {
        let mut routing = self.routing.lock();
        if !routing.info_updates || routing.sent_urls == urls {
            return;
        }
        routing.sent_urls = urls.clone();
        drop(routing);
        let mut info = Broker::base_info(inner);
        info.connect_urls = urls;
        let mut line = Vec::with_capacity(512);
        server::write_info(&mut line, &info);
        self.enqueue_proto(&line);
    }

    pub(crate) fn send_err(&self, message: &str) {
        debug!(cid = self.cid, error = message, "sending -ERR");
        let mut line = Vec::with_capacity(message.len() + 10);
        server::write_err(&mut line, message);
        self.enqueue_proto(&line);
    }

    pub fn pending_bytes(&self) -> usize {
        let out = self.out.lock();
        out.buf.len() + out.in_flight
    }
}

/// Runs one connection to completion.
pub(crate) async fn run(
    inner: Arc<Inner>,
    stream: TcpStream,
    addr: SocketAddr,
    cid: u64,
    shutdown: CancellationToken,
) {
    let _ = stream.set_nodelay(true);
    let client = Arc::new(Client::new(cid, addr, inner.config.max_pending));
    inner.clients.lock().insert(cid, client.clone());
    inner.stats.total_connections.inc();
    inner.stats.connections.inc();
    debug!("client connected");

    let mut info = Broker::base_info(&inner);
    info.client_id = Some(cid);
    info.client_ip = Some(addr.ip().to_string());
    if matches!(inner.auth(), Some(Auth::Users(users)) if users.has_nkeys()) {
        let nonce = auth::new_nonce();
        info.nonce = Some(nonce.clone());
        let _ = client.nonce.set(nonce);
    }
    let mut line = Vec::with_capacity(512);
    server::write_info(&mut line, &info);
    client.routing.lock().sent_urls = info.connect_urls;

    match inner.config.tls.clone() {
        None => {
            client.enqueue_proto(&line);
            let (rd, wr) = stream.into_split();
            serve(&inner, &client, rd, wr, &shutdown).await;
        }
        Some(tls) => match handshake(stream, &tls, &line, &shutdown).await {
            Ok(stream) => {
                if tls.handshake_first {
                    client.enqueue_proto(&line);
                }
                let (rd, wr) = tokio::io::split(stream);
                serve(&inner, &client, rd, wr, &shutdown).await;
            }
            Err(reason) => debug!(reason, "TLS handshake failed; connection closed"),
        },
    }
    inner.clients.lock().remove(&cid);
    inner.stats.connections.dec();
    debug!("client closed");
}

/// The TLS handshake: `INFO` in the clear first unless the client starts TLS itself
/// (`handshake_first`), all within the TLS timeout.
async fn handshake(
    mut stream: TcpStream,
    tls: &Tls,
    info: &[u8],
    shutdown: &CancellationToken,
) -> Result<tokio_rustls::server::TlsStream<TcpStream>, Reason> {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls.server_config());
    let steps = async {
        if !tls.handshake_first {
            stream
                .write_all(info)
                .await
                .map_err(|_| "write error before TLS")?;
        }
        acceptor.accept(stream).await.map_err(|e| {
            debug!(error = %e, "TLS handshake");
            "TLS handshake error"
        })
    };
    tokio::select! {
        r = tokio::time::timeout(tls.timeout, steps) => r.map_err(|_| "TLS handshake timeout")?,
        _ = shutdown.cancelled() => Err("server shutdown"),
    }
}

/// Reads and writes one established connection until it ends, then unsubscribes it
/// and lets its writer flush what is queued.
async fn serve<R, W>(
    inner: &Arc<Inner>,
    client: &Arc<Client>,
    rd: R,
    wr: W,
    shutdown: &CancellationToken,
) where
    R: AsyncRead + Unpin + Send,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let writer = tokio::spawn(write_loop(client.clone(), wr));
    let mut reader = Reader::new(inner.clone(), client.clone());
    let reason = reader.run(rd, shutdown).await;
    debug!(reason, "client reader finished");

    // Stop deliveries first, then let the writer flush what is queued.
    let subs: Vec<_> = client.subs.lock().drain().map(|(_, s)| s).collect();
    for sub in subs {
        inner.remove_sub(&sub);
    }
    {
        let mut out = client.out.lock();
        out.closed = true;
    }
    client.notify.notify_one();
    let mut writer = writer;
    if tokio::time::timeout(inner.config.shutdown_grace, &mut writer)
        .await
        .is_err()
    {
        client.token.cancel();
        let _ = writer.await;
    }
}

/// Drains the outbound buffer into the socket until the connection closes.
async fn write_loop<W: AsyncWrite + Unpin>(client: Arc<Client>, mut wr: W) {
    let mut local: Vec<u8> = Vec::with_capacity(READ_CHUNK);
    loop {
        let idle = {
            let mut out = client.out.lock();
            out.in_flight = 0;
            if out.buf.is_empty() {
                if out.closed {
                    break;
                }
                true
            } else {
                std::mem::swap(&mut out.buf, &mut local);
                out.in_flight = local.len();
                false
            }
        };
        if idle {
            tokio::select! {
                _ = client.notify.notified() => continue,
                _ = client.token.cancelled() => break,
            }
        }
        // Write first: a closing `-ERR` (see `Client::close_with_err`) was swapped in
        // with the cancellation already set, and a write that completes at once must
        // not lose the race to it.
        tokio::select! {
            biased;
            r = wr.write_all(&local) => {
                if let Err(e) = r {
                    trace!(error = %e, "write failed");
                    client.abort();
                    break;
                }
            }
            _ = client.token.cancelled() => break,
        }
        local.clear();
        client.drained.notify_waiters();
        if local.capacity() > WRITE_SHRINK_ABOVE {
            local = Vec::with_capacity(READ_CHUNK);
        }
    }
    if client.token.is_cancelled() {
        // Aborted (slow consumer): best effort to tell the client why, hardly waiting.
        let tail = std::mem::take(&mut client.out.lock().buf);
        if !tail.is_empty() {
            let _ = tokio::time::timeout(TAIL_WRITE, wr.write_all(&tail)).await;
        }
    }
    let _ = wr.shutdown().await;
    // Make the reader stop too (e.g. after a write error or a graceful close).
    client.token.cancel();
    let mut out = client.out.lock();
    out.buf = Vec::new();
    out.in_flight = 0;
}

/// Why a reader stopped (for logs).
type Reason = &'static str;

struct Reader {
    inner: Arc<Inner>,
    client: Arc<Client>,
    parser: ClientParser,
    cache: MatchCache,
    ctx: RouteCtx,
    connected: bool,
    echo: bool,
    headers: bool,
    verbose: bool,
    pedantic: bool,
    no_responders: bool,
    pings_out: u32,
    /// Set by a `CONNECT` whose name asks for a role or zone another agent serves:
    /// where to send the client once its handshake `PING` is answered.
    redirect: Option<Vec<String>>,
    /// Set once the lame-duck `INFO` of a redirect went out: the connection is served
    /// until it can be closed without cutting off an answer (see [`LameDuck`]).
    lame_duck: Option<LameDuck>,
    /// What the handshake decided for async `INFO` updates, applied once the first
    /// `PING` after `CONNECT` is answered: nats-server never sends an `INFO` between
    /// `CONNECT` and the handshake's `PONG` (nats.go fails on it, nats.py stalls).
    handshake: Option<Handshake>,
    /// This connection's permissions as last read from the client (see
    /// [`Reader::permissions`]).
    permissions: Option<Arc<ConnPermissions>>,
    permissions_seen: u64,
    /// Publish verdicts of `permissions`, by subject (bounded).
    publish_verdicts: HashMap<Bytes, bool>,
    /// The account this connection publishes and subscribes in (set by `CONNECT`;
    /// a reload that moves its user to another account closes the connection).
    account: AccountName,
    /// The stream imports this connection's publishes feed (refreshed with
    /// `permissions`).
    imports: Arc<[auth::StreamImport]>,
    /// The service imports this connection's publishes may reach (refreshed with
    /// `permissions`).
    services: Arc<[auth::ServiceImport]>,
    /// A `CONNECT` that waits for something before it is checked: the account its
    /// user JWT names (operator mode with the URL resolver), or the auth callout
    /// service's decision. The rest of the read buffer waits with it.
    pending_connect: Option<(Box<Connect>, PendingAuth)>,
    /// What the auth callout decided for the pending `CONNECT` (None: refused).
    callout_login: Option<Option<Login>>,
}

/// What a `CONNECT` waits for before it is checked.
enum PendingAuth {
    /// The account resolver fetches this account.
    Fetch(String),
    /// The auth callout service decides.
    Callout(Arc<auth::Users>, Arc<auth::Callout>),
}

/// A redirected connection on its way out, as nats-server's lame-duck mode does it:
/// the client was told where to go (`INFO` with `ldm: true` after the handshake's
/// `PONG`) and is still served meanwhile — clients send their first requests as soon
/// as the `PONG` arrives, and work for a role this agent does not run is forwarded —
/// then closed at the first quiet moment: nothing received from it or sent to it for
/// [`LAME_DUCK_QUIET`], and every request it sent answered by at least one message, at least
/// [`LAME_DUCK_GRACE`] after the `INFO`, and at the latest after [`LAME_DUCK_MAX`].
/// The client then reconnects to one of the agents the `INFO` named.
#[derive(Debug)]
struct LameDuck {
    since: tokio::time::Instant,
    /// The client's outbound message count when it last published with a reply
    /// subject: a request is answered once the count has moved past it.
    out_at_last_request: Option<u64>,
    /// The outbound message count last seen, and since when it has not moved: quiet
    /// means nothing sent to the client either (a consumer delivering to it, a watch).
    out_seen: (u64, tokio::time::Instant),
}

/// Least time between the lame-duck `INFO` and the close.
const LAME_DUCK_GRACE: Duration = Duration::from_millis(250);
/// Time without anything received from or sent to the client that counts as quiet.
const LAME_DUCK_QUIET: Duration = Duration::from_millis(250);
/// Longest a redirected connection is served before it is closed anyway.
const LAME_DUCK_MAX: Duration = Duration::from_secs(10);

/// The `INFO` behaviour a `CONNECT` asked for, held until the handshake's `PONG`.
#[derive(Debug)]
struct Handshake {
    /// The client accepts async `INFO` (`protocol` ≥ 1).
    info_updates: bool,
    /// A narrowed `connect_urls` to announce right after the `PONG`.
    connect_urls: Option<Vec<String>>,
}

impl Reader {
    fn new(inner: Arc<Inner>, client: Arc<Client>) -> Self {
        let parser = ClientParser::new(Limits {
            max_control_line: inner.config.max_control_line,
            max_payload: inner.config.max_payload,
        });
        Reader {
            inner,
            client,
            parser,
            cache: MatchCache::default(),
            ctx: RouteCtx::new(random_seed()),
            connected: false,
            echo: true,
            headers: false,
            verbose: false,
            pedantic: false,
            no_responders: false,
            pings_out: 0,
            redirect: None,
            lame_duck: None,
            handshake: None,
            pending_connect: None,
            callout_login: None,
            permissions: None,
            permissions_seen: 0,
            publish_verdicts: HashMap::new(),
            account: DEFAULT_ACCOUNT.into(),
            imports: Arc::new([]),
            services: Arc::new([]),
        }
    }

    /// The connection's permissions, refreshed after a reload changed them.
    fn permissions(&mut self) -> Option<&Arc<ConnPermissions>> {
        let version = self.client.permissions_version.load(Ordering::Acquire);
        if version != self.permissions_seen {
            self.permissions_seen = version;
            self.permissions = self.client.permissions.read().clone();
            self.publish_verdicts.clear();
            let login = self.client.login();
            self.services = login
                .as_ref()
                .map_or_else(|| Arc::new([]) as Arc<[_]>, |l| l.services.clone());
            self.imports = login.map_or_else(|| Arc::new([]) as Arc<[_]>, |l| l.imports);
        }
        self.permissions.as_ref()
    }

    /// nats-server's publish check: the permissions (cached per subject), else a
    /// reply this connection may still send under `allow_responses`.
    fn may_publish(&mut self, subject: &Bytes) -> bool {
        let Some(perms) = self.permissions().cloned() else {
            return true;
        };
        let allowed = match self.publish_verdicts.get(subject) {
            Some(v) => *v,
            None => {
                let v = perms.publish_rule(subject);
                if self.publish_verdicts.len() >= auth::PUBLISH_CACHE {
                    self.publish_verdicts.clear();
                }
                self.publish_verdicts.insert(subject.clone(), v);
                v
            }
        };
        allowed || perms.response_allowed(subject)
    }

    async fn run<R: AsyncRead + Unpin>(
        &mut self,
        mut rd: R,
        shutdown: &CancellationToken,
    ) -> Reason {
        let inner = self.inner.clone();
        let config = &inner.config;
        let auth_required = inner.auth_required();
        let auth_deadline = tokio::time::sleep(config.auth_timeout);
        tokio::pin!(auth_deadline);
        let ping_every = config.ping_interval.max(Duration::from_millis(1));
        let mut ping =
            tokio::time::interval_at(tokio::time::Instant::now() + ping_every, ping_every);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut data_since_tick = false;
        let mut last_read = tokio::time::Instant::now();
        // After a lame-duck check that could not close yet: not again before this.
        let mut next_check = tokio::time::Instant::now();
        let mut buf = BytesMut::with_capacity(READ_CHUNK);
        loop {
            let close_check = self.lame_duck.as_ref().map(|ld| {
                (ld.since + LAME_DUCK_GRACE)
                    .max(last_read + LAME_DUCK_QUIET)
                    .min(ld.since + LAME_DUCK_MAX)
                    .max(next_check)
            });
            if buf.capacity() - buf.len() < 4096 {
                let want = self
                    .parser
                    .frame_len_hint(&buf)
                    .map_or(READ_CHUNK, |n| n.saturating_sub(buf.len()).max(READ_CHUNK));
                buf.reserve(want);
            }
            tokio::select! {
                biased;
                _ = self.client.token.cancelled() => return "aborted",
                _ = shutdown.cancelled() => return "server shutdown",
                _ = &mut auth_deadline, if auth_required && !self.connected => {
                    self.client.send_err("Authentication Timeout");
                    return "authentication timeout";
                }
                _ = ping.tick() => {
                    if data_since_tick {
                        data_since_tick = false;
                        continue;
                    }
                    if self.pings_out + 1 > config.max_pings_out {
                        self.client.send_err("Stale Connection");
                        return "stale connection";
                    }
                    self.pings_out += 1;
                    self.client.enqueue_proto(server::PING);
                }
                () = sleep_until_or_never(close_check) => {
                    if self.lame_duck_may_close(last_read) {
                        return "redirected to an agent that serves the requested role";
                    }
                    next_check = tokio::time::Instant::now() + LAME_DUCK_QUIET / 4;
                }
                read = rd.read_buf(&mut buf) => match read {
                    Ok(0) => return "client closed",
                    Err(_) => return "read error",
                    Ok(_) => {
                        data_since_tick = true;
                        last_read = tokio::time::Instant::now();
                        let mut outcome = self.process(&mut buf);
                        while outcome.is_ok()
                            && let Some((connect, pending)) = self.pending_connect.take()
                        {
                            match pending {
                                PendingAuth::Fetch(account) => {
                                    self.inner.fetch_account(&account).await;
                                }
                                PendingAuth::Callout(users, callout) => {
                                    let broker = Broker {
                                        inner: self.inner.clone(),
                                        account: callout.account.clone(),
                                    };
                                    let caller = auth::callout::Caller {
                                        cid: self.client.cid,
                                        host: self.client.addr.ip(),
                                        nonce: self.client.nonce.get().map(String::as_str),
                                    };
                                    let login = ask_callout(
                                        &broker,
                                        &users,
                                        &callout,
                                        &connect,
                                        &caller,
                                        config.auth_timeout,
                                    )
                                    .await;
                                    self.callout_login = Some(login);
                                }
                            }
                            outcome = self
                                .handle(ClientOp::Connect(connect))
                                .and_then(|()| self.process(&mut buf));
                        }
                        self.finish_batch(shutdown).await;
                        if let Err(reason) = outcome {
                            return reason;
                        }
                    }
                },
            }
        }
    }

    /// Handles every whole frame in `buf`.
    fn process(&mut self, buf: &mut BytesMut) -> Result<(), Reason> {
        let mut in_msgs = 0u64;
        let mut in_bytes = 0u64;
        let result = loop {
            match self.parser.parse(buf) {
                Ok(Some(ClientOp::Pub(p))) => {
                    if p.reply.is_some()
                        && let Some(ld) = &mut self.lame_duck
                    {
                        ld.out_at_last_request = Some(self.client.out.lock().out_msgs);
                    }
                    if !self.connected && self.inner.auth_required() {
                        self.client.send_err("Authorization Violation");
                        break Err("publish before connect");
                    }
                    in_msgs += 1;
                    in_bytes += (p.payload.len() + p.headers.as_ref().map_or(0, Bytes::len)) as u64;
                    if let Err(reason) = self.publish(p) {
                        break Err(reason);
                    }
                    if self.verbose {
                        self.client.enqueue_proto(server::OK);
                    }
                }
                Ok(Some(ClientOp::Connect(c)))
                    if !self.connected
                        && let Some(account) = self.inner.account_to_fetch(&c) =>
                {
                    // The rest of `buf` waits until the account is fetched and the
                    // `CONNECT` handled (see `run`).
                    self.pending_connect = Some((c, PendingAuth::Fetch(account)));
                    break Ok(());
                }
                Ok(Some(ClientOp::Connect(c)))
                    if !self.connected
                        && self.callout_login.is_none()
                        && let Some((users, callout)) = self.inner.callout_for(&c) =>
                {
                    self.pending_connect = Some((c, PendingAuth::Callout(users, callout)));
                    break Ok(());
                }
                Ok(Some(op)) => {
                    let ping = matches!(op, ClientOp::Ping);
                    if let Err(reason) = self.handle(op) {
                        break Err(reason);
                    }
                    if ping {
                        // The handshake ends with the PONG to the first PING: only
                        // then may an INFO follow (nats-server never sends one before).
                        self.finish_handshake();
                    }
                }
                Ok(None) => break Ok(()),
                Err(e) => {
                    debug!(error = %e, "protocol error");
                    self.client.send_err(e.wire_message());
                    break Err("protocol error");
                }
            }
        };
        if in_msgs > 0 {
            self.client.in_msgs.fetch_add(in_msgs, Ordering::Relaxed);
            self.client.in_bytes.fetch_add(in_bytes, Ordering::Relaxed);
            self.inner.stats.in_msgs.inc_by(in_msgs);
            self.inner.stats.in_bytes.inc_by(in_bytes);
        }
        result
    }

    /// Wakes writers, waits for full internal subscribers, applies auto-unsubscribes.
    async fn finish_batch(&mut self, shutdown: &CancellationToken) {
        let ctx = &mut self.ctx;
        for c in ctx.flush.drain(..) {
            c.notify.notify_one();
        }
        for sub in ctx.expired.drain(..) {
            self.inner.remove_sub(&sub);
        }
        self.inner
            .stats
            .out_msgs
            .inc_by(std::mem::take(&mut ctx.out_msgs));
        self.inner
            .stats
            .out_bytes
            .inc_by(std::mem::take(&mut ctx.out_bytes));
        // Stall gate: wait (bounded) for congested subscribers to drain.
        for c in std::mem::take(&mut ctx.stalled) {
            let deadline = tokio::time::Instant::now() + STALL_MAX;
            loop {
                let drained = c.drained.notified();
                tokio::pin!(drained);
                drained.as_mut().enable();
                if c.pending_bytes() <= c.stall_threshold() || c.token.is_cancelled() {
                    break;
                }
                tokio::select! {
                    _ = drained => {}
                    _ = tokio::time::sleep_until(deadline) => break,
                    _ = self.client.token.cancelled() => return,
                    _ = shutdown.cancelled() => return,
                }
            }
        }
        // Backpressure: only this publisher waits for a full internal subscriber.
        for (tx, m) in std::mem::take(&mut ctx.blocked) {
            tokio::select! {
                _ = tx.send(m) => {}
                _ = self.client.token.cancelled() => return,
                _ = shutdown.cancelled() => return,
            }
        }
    }

    /// Err: the connection must close (a payload over its JWT's limit).
    fn publish(&mut self, p: Publish) -> Result<(), Reason> {
        let size = p.payload.len() + p.headers.as_ref().map_or(0, Bytes::len);
        let max = self.client.max_payload.load(Ordering::Relaxed);
        if max != u64::MAX && size as u64 > max {
            info!(
                cid = self.client.cid,
                size, max, "closing connection: maximum payload violation"
            );
            self.client.send_err("Maximum Payload Violation");
            return Err("maximum payload violation");
        }
        if self.pedantic && !subject::is_valid_publish_subject(&p.subject) {
            self.client.send_err("Invalid Publish Subject");
            return Ok(());
        }
        if !self.may_publish(&p.subject) {
            let subject = auth::quote(&p.subject);
            debug!(cid = self.client.cid, %subject, "publish permission violation");
            self.client
                .send_err(&format!("Permissions Violation for Publish to {subject}"));
            return Ok(());
        }
        let generation = self.inner.sub_generation.load(Ordering::Acquire);
        let result = match self.cache.get(generation, &p.subject) {
            Some(r) => r,
            None => {
                let list = self.inner.sublist.read();
                let generation = self.inner.sub_generation.load(Ordering::Acquire);
                let r = Arc::new(list.matches(&self.account, &p.subject));
                drop(list);
                self.cache.put(generation, &p.subject, r.clone());
                r
            }
        };
        let msg = Msg {
            subject: &p.subject,
            subject_bytes: Some(&p.subject),
            reply: p.reply.as_deref(),
            headers: p.headers.as_ref(),
            payload: &p.payload,
        };
        self.route(&result, msg);
        if !self.imports.is_empty() {
            self.route_imports(msg);
        }
        let served = !self.services.is_empty() && self.route_services(msg);
        if let Some(reply) = &p.reply {
            // As nats-server's JetStream service import: answered whoever else
            // subscribes to the subject in this account.
            if !self.inner.serves_jetstream(&self.account)
                && let Some(answer) = jetstream_not_enabled(&p.subject)
            {
                let result = self.inner.sublist.read().matches(&self.account, reply);
                let answer = Msg {
                    subject: reply,
                    subject_bytes: None,
                    reply: None,
                    headers: None,
                    payload: &answer,
                };
                self.inner.route(&mut self.ctx, &result, None, true, answer);
            } else if result.is_empty() && !served && self.no_responders && self.headers {
                self.inner
                    .no_responders(&mut self.ctx, &self.client, &self.account, reply);
            }
        }
        Ok(())
    }

    /// Routes a copy of `msg` into each account that imports it (forwarded to peers
    /// under that account).
    fn route_imports(&mut self, msg: Msg<'_>) {
        let imports = self.imports.clone();
        for import in imports.iter() {
            let Some(mapped) = import.map(msg.subject) else {
                continue;
            };
            let result = self.inner.sublist.read().matches(&import.into, &mapped);
            let own = self.ctx.account.replace(import.into.clone());
            self.inner.route(
                &mut self.ctx,
                &result,
                Some(self.client.cid),
                self.echo,
                Msg {
                    subject: &mapped,
                    ..msg
                },
            );
            self.ctx.account = own;
        }
    }

    /// Routes `msg` to the services this account imports on its subject; returns
    /// whether a responder got it.
    fn route_services(&mut self, msg: Msg<'_>) -> bool {
        let services = self.services.clone();
        let mut served = false;
        for import in services.iter() {
            if let Some(mapped) = import.map(msg.subject) {
                served |= self.inner.route_service(
                    &mut self.ctx,
                    import,
                    &mapped,
                    Some(self.client.cid),
                    msg,
                );
            }
        }
        served
    }

    fn route(&mut self, result: &MatchResult, msg: Msg<'_>) {
        self.inner
            .route(&mut self.ctx, result, Some(self.client.cid), self.echo, msg);
    }

    fn handle(&mut self, op: ClientOp) -> Result<(), Reason> {
        let auth_required = self.inner.auth_required();
        if auth_required && !self.connected && !matches!(op, ClientOp::Connect(_)) {
            self.client.send_err("Authorization Violation");
            return Err("operation before connect");
        }
        match op {
            ClientOp::Connect(c) => self.connect(*c)?,
            ClientOp::Sub {
                subject: subj,
                queue,
                sid,
            } => {
                if !subject::is_valid_subject(&subj)
                    || queue.as_ref().is_some_and(|q| !subject::is_valid_queue(q))
                {
                    self.client.send_err("Invalid Subject");
                    return Ok(());
                }
                if let Some(perms) = self.permissions()
                    && !perms.may_subscribe(&subj, queue.as_deref())
                {
                    let message = match &queue {
                        Some(q) => format!(
                            "Permissions Violation for Subscription to {} using queue {}",
                            auth::quote(&subj),
                            auth::quote(q)
                        ),
                        None => format!(
                            "Permissions Violation for Subscription to {}",
                            auth::quote(&subj)
                        ),
                    };
                    debug!(cid = self.client.cid, "{message}");
                    self.client.send_err(&message);
                    return Ok(());
                }
                if self.client.subs_at_limit() {
                    debug!(cid = self.client.cid, "maximum subscriptions exceeded");
                    self.client.send_err("maximum subscriptions exceeded");
                    return Ok(());
                }
                let mut subs = self.client.subs.lock();
                if !subs.contains_key(&sid) {
                    // Copy: the parsed slices pin the whole read buffer.
                    let sid = Bytes::copy_from_slice(&sid);
                    let sub = Arc::new(Subscription::new(
                        self.inner.next_sub_id.fetch_add(1, Ordering::Relaxed),
                        self.account.clone(),
                        Bytes::copy_from_slice(&subj),
                        queue.map(|q| Bytes::copy_from_slice(&q)),
                        Target::Client {
                            client: self.client.clone(),
                            sid: sid.clone(),
                        },
                    ));
                    subs.insert(sid, sub.clone());
                    drop(subs);
                    self.inner.add_sub(sub);
                }
                if self.verbose {
                    self.client.enqueue_proto(server::OK);
                }
            }
            ClientOp::Unsub { sid, max } => {
                let sub = self.client.subs.lock().get(&sid).cloned();
                if let Some(sub) = sub {
                    match max {
                        Some(n) if n > 0 && sub.delivered.load(Ordering::Acquire) < n => {
                            sub.max.store(n, Ordering::Release);
                        }
                        _ => self.inner.remove_sub(&sub),
                    }
                }
                if self.verbose {
                    self.client.enqueue_proto(server::OK);
                }
            }
            ClientOp::Ping => self.client.enqueue_proto(server::PONG),
            ClientOp::Pong => self.pings_out = 0,
            // Publishes are handled on the hot path in `process`.
            ClientOp::Pub(p) => self.publish(p)?,
        }
        Ok(())
    }

    fn connect(&mut self, c: Connect) -> Result<(), Reason> {
        let decided = self.callout_login.take();
        let login = match self.inner.auth() {
            None => None,
            Some(_) if decided.is_some() => match decided.flatten() {
                Some(login) => Some(login),
                None => {
                    info!(
                        cid = self.client.cid,
                        "authorization violation (auth callout)"
                    );
                    self.client.send_err("Authorization Violation");
                    return Err("authorization violation");
                }
            },
            Some(auth) => {
                let nonce = self.client.nonce.get().map(String::as_str);
                match auth::authenticate(&auth, &c, nonce, self.client.addr.ip()) {
                    Some(login) => Some(login),
                    None => {
                        info!(
                            cid = self.client.cid,
                            user = c.user.as_deref().or(c.nkey.as_deref()).unwrap_or(""),
                            "authorization violation"
                        );
                        self.client.send_err("Authorization Violation");
                        return Err("authorization violation");
                    }
                }
            }
        };
        let request = match routing::parse_client_name(c.name.as_deref().unwrap_or_default()) {
            Ok(request) => request,
            Err(error) => {
                info!(
                    name = c.name.as_deref().unwrap_or_default(),
                    %error,
                    "refusing connection: bad routing suffix in its name"
                );
                self.client.send_err(&error.to_string());
                return Err("bad routing suffix");
            }
        };
        if !(0..=1).contains(&c.protocol) {
            self.client.send_err("invalid client protocol");
            return Err("bad client protocol");
        }
        if c.no_responders && !c.headers {
            self.client
                .send_err("no responders requires headers support");
            return Err("no responders without headers");
        }
        self.connected = true;
        self.echo = c.echo;
        self.headers = c.headers;
        self.verbose = c.verbose;
        self.pedantic = c.pedantic;
        self.no_responders = c.no_responders;
        self.client.headers.store(c.headers, Ordering::Relaxed);
        *self.client.info.lock() = ClientInfo {
            name: c.name.clone().unwrap_or_default(),
            lang: c.lang.clone(),
            version: c.version.clone(),
            user: String::new(),
        };
        if let Some(login) = login {
            if !same_account(&login.account, &self.account) {
                self.account = login.account.clone();
                self.cache = MatchCache::default();
            }
            self.ctx.account = Some(self.account.clone());
            if let Some(max) = login.limits.max_account_conns
                && self.inner.account_conns(&login.account, self.client.cid) >= max
            {
                info!(cid = self.client.cid, account = %login.account, "refusing connection: the account's connection limit is reached");
                self.client
                    .send_err("maximum account active connections exceeded");
                return Err("account connection limit");
            }
            self.client.set_login(login);
        }
        debug!(name = c.name.as_deref().unwrap_or(""), lang = %c.lang, "client connect");
        if self.verbose {
            self.client.enqueue_proto(server::OK);
        }
        self.client.routing.lock().request = request.clone();
        self.handshake = Some(Handshake {
            info_updates: c.protocol >= 1,
            connect_urls: None,
        });
        if !request.is_empty() {
            self.route_connection(&request);
        }
        Ok(())
    }

    /// Once the handshake's `PING` is answered (or the client moved on without one):
    /// turns on async `INFO` updates and sends the narrowed `connect_urls` a routing
    /// suffix asked for.
    fn finish_handshake(&mut self) {
        let Some(handshake) = self.handshake.take() else {
            return;
        };
        if self.redirect.is_some() {
            self.start_lame_duck();
            return;
        }
        self.client.routing.lock().info_updates = handshake.info_updates;
        if let Some(urls) = handshake.connect_urls {
            self.client.update_connect_urls(&self.inner, urls);
        }
    }

    /// Points a connection whose name asked for a role or zone at the agents that
    /// serve it: an async `INFO` when this agent is one of them, else a redirect.
    fn route_connection(&mut self, request: &RouteRequest) {
        let Some(view) = self.inner.cluster.read().clone() else {
            // No registry wired in (a standalone broker): nothing to route on.
            return;
        };
        let target = request.target.map_or("any proxy role", |r| r.as_str());
        let zone = request.zone.as_deref().unwrap_or("");
        let (_, fell_back) = view.urls_for(request);
        if fell_back {
            info!(
                target,
                zone,
                "no live agent runs the requested role in the requested zone; using agents of any zone"
            );
        }
        match routing::decide(&self.inner.config.roles, &view, request) {
            Decision::Stay { urls } => {
                if urls.is_empty() {
                    info!(
                        target,
                        "no live agent runs the requested role; keeping the connection (requests for the role are refused)"
                    );
                }
                if let Some(handshake) = &mut self.handshake {
                    handshake.connect_urls = Some(urls);
                }
            }
            Decision::Redirect { urls } => {
                info!(
                    target,
                    zone,
                    to = %urls.join(","),
                    "this agent does not serve the role or zone the client asked for; redirecting it"
                );
                self.redirect = Some(urls);
            }
        }
    }

    /// Sends the lame-duck `INFO` with the agents to use instead and starts serving the
    /// connection on its way out ([`LameDuck`]), as nats-server does for the clients of
    /// a server in lame-duck mode.
    fn start_lame_duck(&mut self) {
        let mut info = Broker::base_info(&self.inner);
        info.ldm = true;
        info.connect_urls = self.redirect.take().unwrap_or_default();
        let mut line = Vec::with_capacity(512);
        server::write_info(&mut line, &info);
        self.client.enqueue_proto(&line);
        let now = tokio::time::Instant::now();
        self.lame_duck = Some(LameDuck {
            since: now,
            out_at_last_request: None,
            out_seen: (self.client.out.lock().out_msgs, now),
        });
    }

    /// Whether a lame-duck connection may be closed now (see [`LameDuck`]).
    fn lame_duck_may_close(&mut self, last_read: tokio::time::Instant) -> bool {
        let out_msgs = self.client.out.lock().out_msgs;
        let Some(ld) = &mut self.lame_duck else {
            return false;
        };
        let now = tokio::time::Instant::now();
        if now >= ld.since + LAME_DUCK_MAX {
            return true;
        }
        if out_msgs != ld.out_seen.0 {
            ld.out_seen = (out_msgs, now);
        }
        let answered = ld.out_at_last_request.is_none_or(|at| out_msgs > at);
        now >= ld.since + LAME_DUCK_GRACE
            && now >= last_read + LAME_DUCK_QUIET
            && now >= ld.out_seen.1 + LAME_DUCK_QUIET
            && answered
    }
}

/// Sleeps until `at`, or forever when `None` (a disabled `select!` branch).
async fn sleep_until_or_never(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// nats-server's answer to a `$JS.API` request from an account JetStream does not
/// serve: the operation's reply type with `JetStream not enabled for account` (10039).
/// None for subjects that are not JSON API requests (they get no responders).
fn jetstream_not_enabled(subject: &[u8]) -> Option<Bytes> {
    use infinistream_protocol::jsapi::subjects::ApiRoute;
    use infinistream_protocol::jsapi::{ApiError, render_error};
    let subject = std::str::from_utf8(subject).ok()?;
    if !subject.starts_with("$JS.API.") {
        return None;
    }
    let kind = ApiRoute::from_subject(subject).ok()?.response_type()?;
    Some(Bytes::from(render_error(
        kind,
        &ApiError::not_enabled_for_account(),
    )))
}

/// Closes `client` with nats-server's `User Authentication Expired` (or `Account
/// Authentication Expired`) when its user (or account) JWT expires, unless the
/// connection ends or a reload re-arms the timer first (`timer` cancelled).
fn close_at_expiry(client: Arc<Client>, expiry: auth::Expiry, timer: CancellationToken) {
    // To the millisecond, as nats-server's timer: a reconnect right after the close
    // then meets the same second's verdict as on nats-server.
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let at = u128::try_from(expiry.at).unwrap_or(0).saturating_mul(1000);
    let left = Duration::from_millis(u64::try_from(at.saturating_sub(now)).unwrap_or(u64::MAX));
    tokio::spawn(async move {
        tokio::select! {
            _ = timer.cancelled() => {}
            _ = tokio::time::sleep(left) => {
                info!(cid = client.cid, reason = expiry.message, "closing connection: its JWT expired");
                client.close_with_err(expiry.message);
            }
        }
    });
}

/// Asks the auth callout service, in `broker`'s account (the callout's), about
/// `connect` (see [`auth::callout`]): the login it grants, or None when it refuses,
/// answers wrongly or not within `timeout`.
async fn ask_callout(
    broker: &Broker,
    users: &auth::Users,
    callout: &auth::Callout,
    connect: &Connect,
    caller: &auth::callout::Caller<'_>,
    timeout: Duration,
) -> Option<Login> {
    let config = broker.config();
    let server = auth::callout::Server {
        key: &broker.inner.server_key,
        name: &config.server_name,
        host: &config.host,
        version: &config.version,
    };
    let request = auth::callout::request(&server, connect, caller)?;
    let inbox = format!("_INBOX.callout.{}", auth::new_nonce());
    let mut answers = match broker.subscribe_internal(&inbox, None, 1) {
        Ok(sub) => sub,
        Err(error) => {
            tracing::warn!(%error, "auth callout: cannot subscribe to its answer");
            return None;
        }
    };
    broker.publish(
        auth::callout::AUTH_SUBJECT,
        Some(&inbox),
        None,
        Bytes::from(request.jwt.clone()),
    );
    match tokio::time::timeout(timeout, answers.recv()).await {
        Ok(Some(msg)) => auth::callout::answer(&request, &msg.payload, users, callout, caller.cid),
        Ok(None) | Err(_) => {
            tracing::info!(cid = caller.cid, "auth callout: no answer in time");
            None
        }
    }
}
