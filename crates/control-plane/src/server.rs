//! Serving the control plane: the `infinistream control-plane` subcommand's body.
//!
//! [`serve`] takes an already-bound listener (tests bind port 0) and a shutdown
//! future; [`run_control_plane`] adds opening the store named by `--store`.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use infinistream_cp_client::tls::Acceptor as TlsAcceptor;
use infinistream_types::{SharedClock, SystemClock};
use tokio::net::TcpListener;
use tonic::transport::ClientTlsConfig;
use tonic::transport::server::TcpIncoming;

use crate::errors::ServeError;
use crate::store::MetaStore;
use crate::store::embedded::EmbeddedStore;
use crate::store::etcd::EtcdStore;
use crate::{ControlPlane, CpError, GroupKeys, Options};

/// Where the metadata lives (`--store`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreSpec {
    /// `embedded:<dir>`: a redb file in `dir`.
    Embedded(PathBuf),
    /// `etcd://host:port[,host:port…]`.
    Etcd(Vec<String>),
}

impl StoreSpec {
    /// Parses `--store`.
    pub fn parse(s: &str) -> Result<StoreSpec, ServeError> {
        if let Some(dir) = s.strip_prefix("embedded:") {
            if dir.is_empty() {
                return Err(ServeError::BadStore(s.to_owned()));
            }
            return Ok(StoreSpec::Embedded(PathBuf::from(dir)));
        }
        if let Some(hosts) = s.strip_prefix("etcd://") {
            let endpoints: Vec<String> = hosts
                .split(',')
                .map(str::trim)
                .filter(|h| !h.is_empty())
                .map(|h| format!("http://{h}"))
                .collect();
            if endpoints.is_empty() {
                return Err(ServeError::BadStore(s.to_owned()));
            }
            return Ok(StoreSpec::Etcd(endpoints));
        }
        Err(ServeError::BadStore(s.to_owned()))
    }

    /// Opens the store.
    pub async fn open(&self) -> Result<Arc<dyn MetaStore>, CpError> {
        Ok(match self {
            StoreSpec::Embedded(dir) => Arc::new(EmbeddedStore::open(dir).await?),
            StoreSpec::Etcd(endpoints) => {
                Arc::new(EtcdStore::connect(endpoints, "infinistream/").await?)
            }
        })
    }
}

/// Options of `infinistream control-plane`.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub store: StoreSpec,
    pub listen: SocketAddr,
    /// `host:port` other replicas dial to reach this one (defaults to `listen`); only
    /// used over etcd, where followers forward to the elected leader.
    pub advertise: Option<String>,
    pub groups: GroupKeys,
    pub options: Options,
    /// Where served requests are counted (see [`crate::metrics`]).
    pub requests: crate::RequestMetrics,
    /// Serve gRPC over TLS (optionally demanding client certificates).
    pub tls: Option<TlsAcceptor>,
    /// How a follower replica dials the leader: TLS settings (with this replica's
    /// certificate when the leader demands one); `None`: plaintext.
    pub replica_tls: Option<ClientTlsConfig>,
}

/// Serves `control_plane` on `listener` until `shutdown` resolves.
pub async fn serve(
    control_plane: &ControlPlane,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    serve_with(control_plane, listener, None, shutdown).await
}

/// [`serve`], over TLS when `tls` is given.
pub async fn serve_with(
    control_plane: &ControlPlane,
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    let routes = tonic::service::Routes::from(
        control_plane
            .request_metrics()
            .layer(control_plane.router().into_axum_router()),
    );
    let cp = control_plane.clone();
    let shutdown = async move {
        shutdown.await;
        // Open watch streams would hold the graceful shutdown forever.
        cp.close_watches();
    };
    let server = tonic::transport::Server::builder().add_routes(routes);
    match tls {
        Some(acceptor) => {
            let incoming =
                infinistream_cp_client::tls::incoming(listener, acceptor, "control plane");
            server
                .serve_with_incoming_shutdown(incoming, shutdown)
                .await?;
        }
        None => {
            let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
            server
                .serve_with_incoming_shutdown(incoming, shutdown)
                .await?;
        }
    }
    Ok(())
}

/// The whole `infinistream control-plane` subcommand: open the store, claim it, serve
/// Binds the gRPC listener of `opts.listen`: the caller binds it before anything
/// else listens on an ephemeral port (monitoring on port 0 could otherwise be given
/// the very port chosen for gRPC).
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, ServeError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })
}

/// gRPC on `listener` (bound to `opts.listen` by [`bind`]) until `shutdown`.
///
/// Over etcd, several replicas may run, but until leader election lands the most
/// recently started one holds the write fence and the others answer writes with
/// `Unavailable` (never a double commit).
pub async fn run_control_plane(
    opts: ServeOptions,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    if opts.groups.is_empty() {
        return Err(ServeError::NoGroups);
    }
    let clock: SharedClock = Arc::new(SystemClock);
    if let StoreSpec::Etcd(endpoints) = &opts.store {
        // Several replicas may share one etcd: elect a leader, followers forward.
        let store = EtcdStore::connect(endpoints, "infinistream/")
            .await
            .map_err(crate::CpError::from)?;
        let advertise = opts
            .advertise
            .clone()
            .map(|a| {
                a.trim_start_matches("http://")
                    .trim_start_matches("https://")
                    .to_owned()
            })
            .unwrap_or_else(|| opts.listen.to_string());
        tracing::info!(
            listen = %opts.listen,
            advertise = %advertise,
            store = ?opts.store,
            groups = ?opts.groups.group_ids().collect::<Vec<_>>(),
            tls = opts.tls.is_some(),
            "control plane serving (replica over etcd: leader election, followers forward)"
        );
        return crate::leader::serve_replica(
            store,
            opts.groups,
            clock,
            opts.options,
            crate::leader::ReplicaOptions {
                requests: opts.requests,
                tls: opts.tls,
                client_tls: opts.replica_tls,
                ..crate::leader::ReplicaOptions::new(advertise)
            },
            listener,
            shutdown,
        )
        .await;
    }
    let store = opts.store.open().await?;
    let cp = ControlPlane::open_with(store, opts.groups.clone(), clock, opts.options)
        .await?
        .with_request_metrics(opts.requests);
    tracing::info!(
        listen = %opts.listen,
        store = ?opts.store,
        groups = ?opts.groups.group_ids().collect::<Vec<_>>(),
        tls = opts.tls.is_some(),
        "control plane serving"
    );
    serve_with(&cp, listener, opts.tls, shutdown).await
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn store_spec_parses() {
        assert_eq!(
            StoreSpec::parse("embedded:/tmp/x").unwrap(),
            StoreSpec::Embedded(PathBuf::from("/tmp/x"))
        );
        assert_eq!(
            StoreSpec::parse("etcd://a:1,b:2").unwrap(),
            StoreSpec::Etcd(vec!["http://a:1".into(), "http://b:2".into()])
        );
        assert!(StoreSpec::parse("redis://x").is_err());
        assert!(StoreSpec::parse("embedded:").is_err());
    }
}
