//! Core NATS server: listener, connections, subject routing, monitoring (layer 1).
//!
//! Clients speak the NATS client protocol (parsed by `infinistream-protocol`); the
//! gateway and fetcher plug in as internal subscribers (`$JS.API.>`, stream subjects)
//! and publish replies and deliveries through [`Broker::publish`]. The design follows
//! nats-server: per connection a reader task that parses and routes and a writer task
//! that flushes a bounded outbound buffer, and a subscription index with a literal
//! fast path and per-reader result caches.

pub mod auth;
mod broker;
pub mod config;
mod error;
pub mod forward;
pub mod monitor;
pub mod routing;
pub mod tls;

pub use auth::{
    AccountName, Auth, Callout, Credential, DEFAULT_ACCOUNT, Permissions, ResponsePermission,
    ServiceImport, StreamImport, SubjectPermission, User, Users, UsersError, jwt,
};
pub use broker::peer::{
    InternalTarget, PEER_PENDING_LIMIT, Peer, PeerFrame, PeerMsg, account_or_default,
};
pub use broker::sub::InternalMsg;
pub use broker::{
    AccountFetcher, Broker, Deliveries, InternalSubscription, SubscriptionCloser, WAKE_EVERY_BYTES,
};
pub use config::{BrokerConfig, DEFAULT_ADVERTISED_VERSION, INFINISTREAM_VERSION};
pub use error::BrokerError;
pub use forward::Forwarded;
pub use monitor::{ClientDetails, ConnInfo, Connz, Varz};
pub use tls::{Tls, TlsError};
