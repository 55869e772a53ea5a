//! The agents' handle on the control plane, remote or in-process.
//!
//! Both modes go through the same tonic clients, the same encoding and the same
//! server-side authentication: remotely over a `Channel`, in-process by calling the
//! control plane's routes as a tower service. So `infinistream agent` in its default
//! single-process mode exercises the interface a remote deployment does — except
//! `CommitBatch`, once per flush on the publish path, which the embedded control plane
//! serves without encoding ([`crate::local`]), with the same answers and errors.

use tonic::body::Body;
use tonic::codegen::http;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, ClientTlsConfig};
use tower::ServiceExt;
use tower::util::BoxCloneSyncService;

use infinistream_proto::v1::{
    agents_client::AgentsClient, consumers_client::ConsumersClient, jobs_client::JobsClient,
    streams_client::StreamsClient,
};

use std::sync::Arc;

use crate::LocalCalls;
use crate::MAX_MESSAGE_BYTES;
use crate::auth::ClientAuth;
use crate::error::error_chain;
pub use crate::error::{ClientError, TransportError};

/// The transport under the clients: a socket channel or the in-process routes.
pub type Transport = BoxCloneSyncService<http::Request<Body>, http::Response<Body>, TransportError>;

/// A transport that adds the group and key to every request.
pub type AuthedTransport = InterceptedService<Transport, ClientAuth>;

/// Clients for every control-plane service, authenticated as one group. Callers use
/// its typed calls (`crate::calls`); the stubs under them are this crate's.
#[derive(Debug, Clone)]
pub struct ControlPlaneClient {
    pub(crate) agents: AgentsClient<AuthedTransport>,
    pub(crate) streams: StreamsClient<AuthedTransport>,
    pub(crate) consumers: ConsumersClient<AuthedTransport>,
    pub(crate) jobs: JobsClient<AuthedTransport>,
    /// A control plane in this process: the calls it serves skip the transport
    /// (see [`crate::local`]).
    pub(crate) local: Option<Arc<dyn LocalCalls>>,
}

/// The raw stubs, for the control plane's own tests of its RPC surface (statuses,
/// requests no typed call builds); nothing else enables `raw-stubs`.
#[cfg(feature = "raw-stubs")]
impl ControlPlaneClient {
    /// The `Agents` service.
    pub fn raw_agents(&self) -> AgentsClient<AuthedTransport> {
        self.agents.clone()
    }

    /// The `Streams` service.
    pub fn raw_streams(&self) -> StreamsClient<AuthedTransport> {
        self.streams.clone()
    }

    /// The `Consumers` service.
    pub fn raw_consumers(&self) -> ConsumersClient<AuthedTransport> {
        self.consumers.clone()
    }

    /// The `Jobs` service.
    pub fn raw_jobs(&self) -> JobsClient<AuthedTransport> {
        self.jobs.clone()
    }
}

impl ControlPlaneClient {
    fn over(transport: Transport, auth: ClientAuth) -> ControlPlaneClient {
        let t = InterceptedService::new(transport, auth);
        ControlPlaneClient {
            agents: AgentsClient::new(t.clone())
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES),
            streams: StreamsClient::new(t.clone())
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES),
            consumers: ConsumersClient::new(t.clone())
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES),
            jobs: JobsClient::new(t)
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES),
            local: None,
        }
    }

    /// Connects to a remote control plane (`http://host:port`), authenticating as
    /// `group` with `key`. Connects eagerly so a wrong address fails here.
    ///
    /// Several replicas, comma-separated (`http://a:7070,http://b:7070`), give a client
    /// that moves to the next replica when one fails at the transport level (see
    /// `failover`); callers retry the failed call.
    pub async fn connect(
        url: &str,
        group: &str,
        key: &str,
    ) -> Result<ControlPlaneClient, ClientError> {
        ControlPlaneClient::connect_with(url, group, key, None).await
    }

    /// [`ControlPlaneClient::connect`] over TLS when `tls` is given (the URLs must then
    /// be `https://`; an `https://` URL needs `tls`).
    pub async fn connect_with(
        url: &str,
        group: &str,
        key: &str,
        tls: Option<&ClientTlsConfig>,
    ) -> Result<ControlPlaneClient, ClientError> {
        let auth = ClientAuth::new(group, key)?;
        let urls: Vec<String> = url
            .split(',')
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .map(str::to_owned)
            .collect();
        if urls.len() > 1 {
            let failover = crate::failover::Failover::connect(&urls, tls).await?;
            return Ok(ControlPlaneClient::over(
                BoxCloneSyncService::new(failover),
                auth,
            ));
        }
        let endpoint = crate::tls::control_plane_endpoint(url, tls)?;
        let channel: Channel =
            endpoint
                .tcp_nodelay(true)
                .connect()
                .await
                .map_err(|e| ClientError::Connect {
                    url: url.to_owned(),
                    reason: error_chain(&e),
                })?;
        let transport = BoxCloneSyncService::new(
            channel.map_err(|e: tonic::transport::Error| TransportError::new(error_chain(&e))),
        );
        Ok(ControlPlaneClient::over(transport, auth))
    }

    /// A client calling a control plane's services in-process (no socket): `routes`
    /// is the server's router as a tower service (`ControlPlane::client` of the
    /// control-plane crate passes its own).
    pub fn in_process<S>(
        routes: S,
        group: &str,
        key: &str,
    ) -> Result<ControlPlaneClient, ClientError>
    where
        S: tower::Service<
                http::Request<Body>,
                Response = http::Response<Body>,
                Error = std::convert::Infallible,
            > + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        let auth = ClientAuth::new(group, key)?;
        let svc = ServiceExt::<http::Request<Body>>::map_err(
            routes,
            |never: std::convert::Infallible| -> TransportError { match never {} },
        );
        let transport = BoxCloneSyncService::new(svc);
        Ok(ControlPlaneClient::over(transport, auth))
    }
}

impl ControlPlaneClient {
    /// This client with the calls `local` serves (today `CommitBatch`) going straight
    /// to it, without encoding (see [`crate::local`]): for a client made by
    /// [`ControlPlaneClient::in_process`]; the control plane hands `local` over only
    /// for a group whose key checked out.
    pub fn with_local(mut self, local: Arc<dyn LocalCalls>) -> ControlPlaneClient {
        self.local = Some(local);
        self
    }

    /// Whether calls skip the transport to a control plane in this process.
    pub fn is_direct(&self) -> bool {
        self.local.is_some()
    }
}
