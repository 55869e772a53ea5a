//! Control plane: metadata service, sequencing, embedded and etcd stores (layer 2).
//!
//! The control plane is the only holder of metadata (stream configs, the sequence
//! index, agents, leases) and the one place sequences are assigned. It never sees a
//! payload byte: agents upload batch objects themselves and commit only metadata
//! here, one [`CommitBatch`](infinistream_proto::v1::CommitBatchRequest) per flush.
//!
//! How to use it:
//! - **Embedded** (single process, the default): open a store, build a
//!   [`ControlPlane`], and talk to it with [`ControlPlaneClient::in_process`]; the
//!   same gRPC services, authentication and encoding run, without a socket.
//! - **Served**: [`ControlPlane::router`] gives tonic routes to serve on any listener
//!   ([`serve`] does it with graceful shutdown); agents use
//!   [`ControlPlaneClient::connect`]. [`run_control_plane`] is the whole
//!   `infinistream control-plane` subcommand.
//!
//! Module map: [`store`] (the `MetaStore` trait and stores), `engine` (logic and
//! the writer loop), `stream` (per-stream sequencing rules), `consumer` (claims,
//! acks, redelivery), `service` (gRPC adapters), [`auth`] (group keys), [`client`],
//! [`server`], [`leader`] (etcd election and replica mode).

pub mod auth;
pub mod client;
mod consumer;
mod engine;
pub mod errors;
mod failover;
mod keys;
pub mod leader;
mod model;
pub mod server;
mod service;
pub mod store;
mod stream;
pub mod watch_client;

use std::sync::Arc;

use infinistream_proto::v1::{agents_server, consumers_server, jobs_server, streams_server};
use infinistream_types::SharedClock;
use tonic::service::interceptor::InterceptedService;

pub use auth::{ClientAuth, GroupKeys, GroupKeysError};
pub use client::{ClientError, ControlPlaneClient, TransportError};
pub use engine::Options;
pub use errors::CpError;
pub use server::{ServeError, ServeOptions, StoreSpec, run_control_plane, serve};
pub use watch_client::StreamWatch;

use crate::auth::ServerAuth;
use crate::engine::Engine;
use crate::service::Service;

/// Largest gRPC message accepted or sent (a CommitBatch of a 4 MiB flush of tiny
/// messages carries tens of thousands of record metadata).
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

/// A running control plane over a metadata store. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ControlPlane {
    engine: Arc<Engine>,
    groups: GroupKeys,
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
        Ok(ControlPlane { engine, groups })
    }

    /// Ends every open `WatchStreams` call (watchers reconnect and resync elsewhere).
    /// Call it when the server stops: a graceful shutdown waits for open streams.
    pub fn close_watches(&self) {
        self.engine.close_watches();
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
        let auth = ServerAuth::new(self.groups.clone());
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

    /// A client using this control plane's services without a socket.
    pub fn client(&self, group: &str, key: &str) -> Result<ControlPlaneClient, ClientError> {
        ControlPlaneClient::in_process(self, group, key)
    }
}
