//! The peer port: what the agents of one group serve each other (layer 2).
//!
//! One gRPC listener per agent (`--peer_port`), owned here by [`PeerPort`]: it binds
//! the socket, checks every request's group proof (the key itself never travels: see
//! `infinistream_cp_client::auth`), serves TLS (optionally demanding client
//! certificates) when configured, and sets the HTTP/2 windows and keep-alives once for
//! everything on it. [`PeerPort::dialer`] is how this agent dials the others: the same
//! group proof, and TLS when the port uses it. The services on it register with it before
//! the agent serves it:
//! - the route mesh ([`routes`]), on every agent: core NATS subjects across agents;
//! - the zone cache (`infinistream_fetcher::zone`), on proxy-consume agents: object
//!   ranges fetched from their owner in the zone.
//!
//! [`cluster`] keeps the broker's view of the group's agents and the route mesh in
//! step with the control plane's registry.

pub mod cluster;
pub mod routes;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use infinistream_cp_client::GroupKeys;
use infinistream_cp_client::auth::{ClientAuth, GroupKeysError, ServerAuth};
use infinistream_cp_client::tls::Acceptor as TlsAcceptor;
use infinistream_cp_client::tls::{PeerDialer, TlsError};
use tokio::net::TcpListener;
use tonic::body::Body;
use tonic::codegen::Service;
use tonic::codegen::http::{Request, Response};
use tonic::server::NamedService;
use tonic::service::RoutesBuilder;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::ClientTlsConfig;
use tonic::transport::server::TcpIncoming;

/// HTTP/2 receive windows of the peer port, per stream and per connection: h2's default
/// 64 KiB would cap a route at one window per round trip (~70 MB/s of 1 KiB messages
/// on loopback). Dialling peers use the same.
pub const STREAM_WINDOW: u32 = 8 << 20;
pub const CONNECTION_WINDOW: u32 = 16 << 20;
/// HTTP/2 keep-alive, both sides: a peer silent this long (twice) is gone, so the
/// interest of a peer that vanished without closing its connection does not linger.
pub const KEEPALIVE: Duration = Duration::from_secs(10);

/// Why the peer port cannot start.
#[derive(Debug, thiserror::Error)]
pub enum PeerPortError {
    #[error("cannot listen for peer agents on {addr} (--peer_port): {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("invalid group id or key for the peer port: {0}")]
    Key(#[from] GroupKeysError),
    #[error("peer port TLS: {0}")]
    Tls(#[from] TlsError),
}

/// TLS on the peer port: what this agent serves, and how it checks the peers it dials.
/// Every agent of a group uses the same setting (a TLS port refuses plaintext peers).
#[derive(Debug, Clone)]
pub struct PeerTls {
    pub server: TlsAcceptor,
    pub client: ClientTlsConfig,
}

/// The agent's peer-port server: the bound listener, the group key its peers present,
/// and the services registered so far. [`PeerPort::serve`] runs it.
pub struct PeerPort {
    listener: TcpListener,
    addr: SocketAddr,
    server_auth: ServerAuth,
    dialer: PeerDialer,
    tls: Option<TlsAcceptor>,
    routes: RoutesBuilder,
    services: Vec<&'static str>,
}

impl std::fmt::Debug for PeerPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerPort")
            .field("addr", &self.addr)
            .field("tls", &self.tls.is_some())
            .field("services", &self.services)
            .finish()
    }
}

impl PeerPort {
    /// Binds `addr`; peers must present `key` for `group` (and this agent presents it
    /// when it dials them: [`PeerPort::client_auth`]).
    pub async fn bind(addr: &str, group: &str, key: &str) -> Result<PeerPort, PeerPortError> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| PeerPortError::Bind {
                addr: addr.to_owned(),
                source,
            })?;
        PeerPort::new(listener, group, key)
    }

    /// The peer port on an already bound `listener` (the agent binds every port before
    /// it knows its group, so a taken port stops it early).
    pub fn new(listener: TcpListener, group: &str, key: &str) -> Result<PeerPort, PeerPortError> {
        let addr = listener
            .local_addr()
            .map_err(|source| PeerPortError::Bind {
                addr: "the bound peer listener".to_owned(),
                source,
            })?;
        Ok(PeerPort {
            listener,
            addr,
            server_auth: ServerAuth::new(GroupKeys::new([(group, key)])?),
            dialer: PeerDialer::new(ClientAuth::new(group, key)?, None),
            tls: None,
            routes: RoutesBuilder::default(),
            services: Vec::new(),
        })
    }

    /// Serves TLS and dials peers over TLS (`None`: plaintext both ways).
    pub fn with_tls(mut self, tls: Option<PeerTls>) -> Self {
        match tls {
            Some(tls) => {
                self.tls = Some(tls.server);
                self.dialer.tls = Some(tls.client);
            }
            None => {
                self.tls = None;
                self.dialer.tls = None;
            }
        }
        self
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// How this agent dials a peer's port (the route mesh's and the zone cache's
    /// clients): its group proof, and TLS when this port uses it.
    pub fn dialer(&self) -> PeerDialer {
        self.dialer.clone()
    }

    /// Adds a gRPC service; every request to it must carry the group's key.
    pub fn register<S>(&mut self, service: S)
    where
        S: Service<Request<Body>, Response = Response<Body>, Error = Infallible>
            + NamedService
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        self.services.push(S::NAME);
        self.routes
            .add_service(InterceptedService::new(service, self.server_auth.clone()));
    }

    /// Serves the registered services until `shutdown` (which waits for open streams:
    /// long-lived ones must end on the same signal).
    pub fn serve(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> impl Future<Output = Result<(), tonic::transport::Error>> + Send + 'static {
        let tls = self.tls.is_some();
        tracing::info!(
            addr = %self.addr,
            tls,
            services = %self.services.join(","),
            "peer port listening on {}{}",
            self.addr,
            if tls { " (TLS)" } else { "" }
        );
        let server = tonic::transport::Server::builder()
            .http2_keepalive_interval(Some(KEEPALIVE))
            .http2_keepalive_timeout(Some(KEEPALIVE))
            .initial_stream_window_size(STREAM_WINDOW)
            .initial_connection_window_size(CONNECTION_WINDOW)
            .add_routes(self.routes.routes());
        async move {
            match self.tls {
                Some(acceptor) => {
                    let incoming =
                        infinistream_cp_client::tls::incoming(self.listener, acceptor, "peer port");
                    server
                        .serve_with_incoming_shutdown(incoming, shutdown)
                        .await
                }
                None => {
                    let incoming = TcpIncoming::from(self.listener).with_nodelay(Some(true));
                    server
                        .serve_with_incoming_shutdown(incoming, shutdown)
                        .await
                }
            }
        }
    }
}
