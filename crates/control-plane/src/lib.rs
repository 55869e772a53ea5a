//! Control plane: metadata service, sequencing, consumer state, election (layer 3).
//!
//! The control plane is the only holder of metadata (stream configs, the sequence
//! index, agents, leases) and the one place sequences are assigned. It never sees a
//! payload byte: agents upload batch objects themselves and commit only metadata
//! here, one [`CommitBatch`](infinistream_proto::v1::CommitBatchRequest) per flush.
//!
//! How to use it:
//! - **Embedded** (single process, the default): open a store, build a
//!   [`ControlPlane`], and talk to it with [`ControlPlane::client`]; the
//!   same gRPC services, authentication and encoding run, without a socket.
//! - **Served**: [`ControlPlane::router`] gives tonic routes to serve on any listener
//!   ([`serve`] does it with graceful shutdown); agents use
//!   [`ControlPlaneClient::connect`]. [`run_control_plane`] is the whole
//!   `infinistream control-plane` subcommand.
//!
//! Module map: `engine` (logic and the writer loop, split by concern), `stream`
//! (per-stream sequencing rules), `consumer` (claims, acks, redelivery), `service`
//! (gRPC adapters), [`server`], [`leader`] (etcd election, and the replica proxy
//! that forwards to the leader). The stores are the `infinistream-metastore` crate
//! ([`store`]); the client and group-key auth are `infinistream-cp-client`.

mod consumer;
mod direct;
mod engine;
pub mod errors;
mod keys;
pub mod leader;
pub mod metrics;
mod model;
mod pin;
mod prioritized;
pub mod server;
mod service;
mod stream;

/// The metadata stores (the `infinistream-metastore` crate).
pub use infinistream_metastore as store;

use std::sync::Arc;

use infinistream_proto::v1::{agents_server, consumers_server, jobs_server, streams_server};
use infinistream_types::SharedClock;
use tonic::service::interceptor::InterceptedService;

pub use direct::DirectClient;
pub use engine::Options;
pub use errors::{CpError, ServeError};
pub use infinistream_cp_client::{
    ClientError, ControlPlaneClient, GroupKeys, GroupKeysError, MAX_MESSAGE_BYTES,
};
pub use metrics::RequestMetrics;
pub use server::{ServeOptions, StoreSpec, run_control_plane, serve, serve_with};

use crate::engine::Engine;
use crate::service::Service;
use infinistream_cp_client::ServerAuth;

/// A running control plane over a metadata store. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ControlPlane {
    engine: Arc<Engine>,
    groups: GroupKeys,
    /// Checks every request's group proof; one per control plane, so its replay
    /// memory covers every route to it.
    auth: ServerAuth,
    /// Counts the requests [`serve`] receives.
    requests: RequestMetrics,
}

impl ControlPlane {
    /// Opens a control plane with default [`Options`]: claims the store's writer fence
    /// (any other instance on the same store stops being able to write) and starts the
    /// commit writer. Groups are loaded from the store lazily, on first use.
    pub async fn open(
        store: Arc<dyn store::MetaStore>,
        groups: GroupKeys,
        clock: SharedClock,
    ) -> Result<ControlPlane, CpError> {
        ControlPlane::open_with(store, groups, clock, Options::default()).await
    }

    /// [`ControlPlane::open`] with explicit options.
    pub async fn open_with(
        store: Arc<dyn store::MetaStore>,
        groups: GroupKeys,
        clock: SharedClock,
        options: Options,
    ) -> Result<ControlPlane, CpError> {
        let engine = Engine::start(store, clock, options).await?;
        let engine_metrics = engine.metrics();
        Ok(ControlPlane {
            engine,
            auth: ServerAuth::new(groups.clone()),
            groups,
            requests: engine_metrics,
        })
    }

    /// Ends every open `WatchStreams` call (watchers reconnect and resync elsewhere).
    /// Call it when the server stops: a graceful shutdown waits for open streams.
    pub fn close_watches(&self) {
        self.engine.close_watches();
    }

    /// Counts served requests into `requests` (a process-wide family) instead of this
    /// control plane's own.
    pub fn with_request_metrics(mut self, requests: RequestMetrics) -> Self {
        self.engine.set_metrics(requests.clone());
        self.requests = requests;
        self
    }

    /// Sets the schedule gauges of [`RequestMetrics`] now (the retention ticker does it
    /// every second; with `retention_interval: None`, only this does).
    pub async fn refresh_schedule_metrics(&self) {
        self.engine.export_schedule_backlog().await;
    }

    /// The request counters of [`serve`].
    pub fn request_metrics(&self) -> &RequestMetrics {
        &self.requests
    }

    /// The groups this control plane accepts.
    pub fn groups(&self) -> &GroupKeys {
        &self.groups
    }

    fn service(&self) -> Service {
        Service {
            engine: self.engine.clone(),
        }
    }

    /// All services, authenticated, ready to serve on a listener (see [`serve`]) or
    /// to call in-process.
    pub fn router(&self) -> tonic::service::Routes {
        let auth = self.auth.clone();
        let svc = self.service();
        tonic::service::Routes::new(InterceptedService::new(
            agents_server::AgentsServer::new(svc.clone())
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES),
            auth.clone(),
        ))
        .add_service(InterceptedService::new(
            streams_server::StreamsServer::new(svc.clone())
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES),
            auth.clone(),
        ))
        .add_service(InterceptedService::new(
            consumers_server::ConsumersServer::new(svc.clone())
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES),
            auth.clone(),
        ))
        .add_service(InterceptedService::new(
            jobs_server::JobsServer::new(svc)
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES),
            auth,
        ))
    }

    /// A client using this control plane's services without a socket. For a group
    /// whose key checks out, `CommitBatch` also skips the encoding and the routes
    /// (`infinistream_cp_client::local`); a wrong key gets the routes' refusal.
    pub fn client(&self, group: &str, key: &str) -> Result<ControlPlaneClient, ClientError> {
        let client = ControlPlaneClient::in_process(self.router().prepare(), group, key)?;
        Ok(match self.direct(group) {
            Some(direct) if self.groups.check(group, key) => client.with_local(Arc::new(direct)),
            _ => client,
        })
    }

    /// Direct in-process calls as `group` (no codec, no group proof): for the
    /// simulation; `None` when the group is not one of this control plane's.
    pub fn direct(&self, group: &str) -> Option<DirectClient> {
        self.groups
            .group_ids()
            .any(|g| g == group)
            .then(|| DirectClient {
                service: self.service(),
                group: group.into(),
            })
    }
}
