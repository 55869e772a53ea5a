//! Broker settings. Defaults follow nats-server's so clients see familiar limits.

use std::time::Duration;

use crate::auth::Auth;
use crate::routing::LocalRoles;
use crate::tls::Tls;

/// The nats-server version advertised in `INFO`. Clients gate JetStream features on
/// it (e.g. async-nats and nats.go enable newer APIs from 2.10/2.11), so it names a
/// current nats-server release rather than InfiniStream's own version, which goes in
/// the `infinistream_version` field.
pub const DEFAULT_ADVERTISED_VERSION: &str = "2.11.0";

/// InfiniStream's own version.
pub const INFINISTREAM_VERSION: &str = env!("CARGO_PKG_VERSION");

#[derive(Debug, Clone)]
pub struct BrokerConfig {
    pub server_name: String,
    /// nats-server version advertised in `INFO` (see [`DEFAULT_ADVERTISED_VERSION`]).
    pub version: String,
    /// Host advertised in `INFO`.
    pub host: String,
    pub max_payload: usize,
    pub max_control_line: usize,
    /// Bytes queued to one connection before it is cut off as a slow consumer.
    pub max_pending: usize,
    pub ping_interval: Duration,
    pub max_pings_out: u32,
    pub auth: Option<Auth>,
    /// Time a client has to send `CONNECT` when auth is required.
    pub auth_timeout: Duration,
    /// Advertise JetStream in `INFO`.
    pub jetstream: bool,
    /// `connect_urls` advertised until [`crate::Broker::set_cluster`] gives the live
    /// agents (a standalone broker keeps these for good).
    pub connect_urls: Vec<String>,
    /// The roles and zone of this agent, for routing by connection name
    /// ([`crate::routing`]); the default serves every role, so it never redirects.
    pub roles: LocalRoles,
    /// How long shutdown waits for connections to flush before dropping them.
    pub shutdown_grace: Duration,
    /// TLS for every client connection (none: plain TCP).
    pub tls: Option<Tls>,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            server_name: "infinistream".to_owned(),
            version: DEFAULT_ADVERTISED_VERSION.to_owned(),
            host: "0.0.0.0".to_owned(),
            max_payload: infinistream_protocol::DEFAULT_MAX_PAYLOAD,
            max_control_line: infinistream_protocol::DEFAULT_MAX_CONTROL_LINE,
            max_pending: 64 * 1024 * 1024,
            ping_interval: Duration::from_secs(120),
            max_pings_out: 2,
            auth: None,
            auth_timeout: Duration::from_secs(2),
            jetstream: false,
            connect_urls: Vec::new(),
            roles: LocalRoles::default(),
            shutdown_grace: Duration::from_secs(5),
            tls: None,
        }
    }
}
