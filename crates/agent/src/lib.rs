//! Agent wiring: builds the shared pieces once (bucket, control-plane client, NATS
//! listener, peer port, stream watch and catalog, monitoring, metrics) and starts the
//! roles the configuration asks for, each through its crate's one entry point.
//!
//! Start-up order, each step logged once:
//! 1. the zone: configured, else asked of the cloud's instance metadata (remote control
//!    plane only: with an embedded one there are no peers for a zone to matter), else
//!    `default`;
//! 2. bind the NATS, monitoring and peer listeners (a taken port stops the agent here)
//!    and serve monitoring at once: `/healthz` is 200 from now on, `/readyz` 503 until
//!    step 7 (see [`health`]);
//! 3. reach the control plane: embedded (the default: opened in-process over the data
//!    directory and called through the same gRPC services) or remote
//!    (`INFINISTREAM_CONTROL_PLANE`; retried with backoff while unreachable);
//! 4. open the bucket (retried with backoff while unreachable; a bad URL stops the
//!    agent);
//! 5. register the agent (id, roles, zone, addresses; retried while the control plane is
//!    unavailable, a refusal stops the agent) and keep its lease alive;
//! 6. the shared pieces: the peer port with the route mesh and the registry refresh
//!    (`infinistream_peer`), the agent's one stream watch and the stream catalog's
//!    first load from it;
//! 7. the roles, from the table in `start::Startup::roles`: `gateway::start`,
//!    `fetcher::start`, `jobs::start`, then `jetstream::start` (the JetStream and system
//!    APIs on every agent); serve the peer port and NATS clients; `/readyz` turns 200.
//!
//! [`AgentHandle::start_with`] runs these steps in order; each is one method of
//! `start::Startup`. The binary's `main` only parses flags; everything here is callable from tests,
//! which start agents in-process on port 0.

mod account_resolver;
pub mod client_auth;
pub mod control_plane;
mod embedded;
mod health;
mod jsz;
pub mod links;
pub mod monitor;
mod start;

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use infinistream_broker::{Broker, BrokerConfig};
use infinistream_config::{Advertise, AgentConfig, ZoneSource};
use infinistream_cp_client::{ClientError, ControlPlaneClient};
use infinistream_gateway::GatewayMetrics;
use infinistream_jetstream::StreamCatalog;
use infinistream_jobs::JobsOptions;
use infinistream_objstore::Bucket;
use infinistream_proto::v1;
use infinistream_runtime::health::Readiness;
use infinistream_runtime::zone::{self, MetadataEndpoints, ZoneOrigin};

use crate::start::{Shared, Startup};
use infinistream_runtime::{CancellationToken, Supervisor};

/// Longest start-up wait for the stream catalog's first load.
const CATALOG_LOAD: Duration = Duration::from_secs(5);

/// The version clients see as `infinistream_version` (and `--version`).
pub fn version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}

/// Hooks for tests; `Default` means none.
#[derive(Debug, Clone, Default)]
pub struct TestHooks {
    /// Fault injection under the bucket's retry and metrics layers.
    pub bucket_faults: Option<infinistream_objstore::FaultHandle>,
}

/// The bucket URL without credentials, for logs and errors.
fn redacted_bucket(url: &str) -> String {
    infinistream_objstore::BucketUrl::parse(url)
        .map(|u| u.redacted())
        .unwrap_or_else(|_| url.split('?').next().unwrap_or_default().to_owned())
}

/// A running agent.
#[derive(Debug)]
pub struct AgentHandle {
    id: String,
    client_addr: SocketAddr,
    http_addr: SocketAddr,
    broker: Broker,
    bucket: Bucket,
    catalog: StreamCatalog,
    gateway_metrics: GatewayMetrics,
    shutdown: CancellationToken,
    supervisor: Supervisor,
    // Keeps an embedded control plane alive for as long as the agent runs.
    _embedded: Option<embedded::Embedded>,
    jobs: Option<infinistream_jobs::Jobs>,
}

impl AgentHandle {
    /// Opens the dependencies, binds the listeners and starts every configured role.
    /// Returns once the agent accepts clients.
    pub async fn start(config: AgentConfig, shutdown: CancellationToken) -> anyhow::Result<Self> {
        Self::start_with(config, shutdown, TestHooks::default()).await
    }

    /// [`AgentHandle::start`] with test hooks (fault injection under the bucket).
    ///
    /// Waits (retrying) for an unreachable control plane or bucket; returns an error
    /// for a refusal, a bad setting, or `shutdown` cancelled before the agent serves.
    pub async fn start_with(
        config: AgentConfig,
        shutdown: CancellationToken,
        hooks: TestHooks,
    ) -> anyhow::Result<Self> {
        let mut start = Startup::new(config, shutdown);
        // 1. The zone.
        start.zone().await;
        // Settings read from files (TLS) next: a bad one stops the agent before it
        // touches the control plane or the bucket.
        let broker_config = broker_config(&start.config, &start.id)?;
        // 2. Listeners; monitoring serves from now on, readiness says what is missing.
        let listeners = start.listen().await?;
        let broker = Broker::new(broker_config);
        if let Some(infinistream_config::ClientAuth::Operator(spec)) = &start.config.auth {
            account_resolver::start(&broker, spec, &start.shutdown)?;
        }
        start
            .metrics
            .register(|registry| broker.register_metrics(registry));
        let jsz = Arc::new(OnceLock::new());
        start.serve_monitoring(listeners.http, listeners.http_addr, &broker, jsz.clone());
        // 3. The control plane.
        let cp = start.control_plane().await?;
        // 4. The bucket.
        let bucket = start.bucket(&cp.group, &hooks).await?;
        // 5. Registration.
        start
            .register(&cp.client, listeners.client_addr, listeners.peer_addr)
            .await?;
        // 6. What the roles share.
        let mut shared = start
            .shared(broker, bucket, cp.client, cp.group, listeners.peer)
            .await?;
        // 7. The roles, then serving.
        let roles = start.roles(&mut shared, &jsz)?;
        let Shared {
            broker,
            bucket,
            catalog,
            peer_port,
            ..
        } = shared;
        start.serve(peer_port, &broker, listeners.client, listeners.client_addr);
        Ok(Self {
            id: start.id,
            client_addr: listeners.client_addr,
            http_addr: listeners.http_addr,
            broker,
            bucket,
            catalog,
            gateway_metrics: roles.gateway_metrics,
            shutdown: start.shutdown,
            supervisor: start.supervisor,
            _embedded: cp.embedded,
            jobs: roles.jobs,
        })
    }

    /// This agent's registry id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The bound NATS client address.
    pub fn client_addr(&self) -> SocketAddr {
        self.client_addr
    }

    /// The bound monitoring address.
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// The agent's broker (tests publish and inspect through it).
    pub fn broker(&self) -> &Broker {
        &self.broker
    }

    /// The agent's bucket (tests count objects through it).
    pub fn bucket(&self) -> &Bucket {
        &self.bucket
    }

    /// The agent's copy of the group's stream configs (tests watch it follow changes).
    pub fn catalog(&self) -> &StreamCatalog {
        &self.catalog
    }

    /// The jobs role, when this agent runs it (tests trigger passes through it).
    pub fn jobs(&self) -> Option<&infinistream_jobs::Jobs> {
        self.jobs.as_ref()
    }

    /// Produce-path metrics (objects written, flush latency).
    pub fn gateway_metrics(&self) -> &GatewayMetrics {
        &self.gateway_metrics
    }

    /// Asks the agent to stop.
    pub fn stop(&self) {
        self.shutdown.cancel();
    }

    /// Runs until shutdown; returns the first role failure, if any.
    pub async fn wait(self) -> anyhow::Result<()> {
        self.supervisor.wait().await?;
        tracing::info!("agent stopped");
        Ok(())
    }
}

/// The address the registry gives out for a listener bound to `addr`: the configured
/// advertise address, else the bind address (the host name when bound to every
/// interface).
fn advertised(config: &AgentConfig, addr: SocketAddr, advertise: Option<&Advertise>) -> String {
    if let Some(a) = advertise {
        return a.address(addr.port());
    }
    let host = config.host.as_str();
    if host == "0.0.0.0" || host == "::" {
        format!("{}:{}", gethostname_or_loopback(), addr.port())
    } else {
        addr.to_string()
    }
}

fn gethostname_or_loopback() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "127.0.0.1".to_owned())
}

/// The zone to run with, set in `config`; returns where it came from, as logged.
/// Detection asks the cloud only with a remote control plane: an embedded one serves
/// this agent alone, and a zone only matters between agents.
async fn resolve_zone(config: &mut AgentConfig) -> &'static str {
    if config.zone_source == ZoneSource::Unset && config.embedded_control_plane() {
        return "default";
    }
    let configured = (config.zone_source != ZoneSource::Unset).then_some(config.zone.as_str());
    let endpoints = MetadataEndpoints {
        aws: config.metadata.aws.clone(),
        gcp: config.metadata.gcp.clone(),
        azure: config.metadata.azure.clone(),
    };
    let (zone, origin) = zone::resolve_zone(configured, &endpoints, zone::DETECT_TIMEOUT).await;
    config.zone = zone;
    match origin {
        ZoneOrigin::Configured => config.zone_source.as_str(),
        ZoneOrigin::Detected(cloud) => cloud.as_str(),
        ZoneOrigin::Default => "default",
    }
}

/// Connects to a remote control plane, retrying while it is unreachable; a bad URL or
/// key is fatal.
async fn connect_control_plane(
    url: &str,
    (group, key): (&str, &str),
    tls: Option<&tonic::transport::ClientTlsConfig>,
    readiness: &Readiness,
    shutdown: &CancellationToken,
) -> anyhow::Result<ControlPlaneClient> {
    health::retry(
        "control plane",
        health::CONTROL_PLANE,
        readiness,
        shutdown,
        || async {
            match ControlPlaneClient::connect_with(url, group, key, tls).await {
                Ok(client) => Ok(client),
                Err(error @ ClientError::Connect { .. }) => {
                    Err(health::Failure::Retry(error.to_string()))
                }
                Err(error) => Err(health::Failure::Fatal(
                    anyhow::Error::new(error)
                        .context(format!("cannot use the control plane at {url}")),
                )),
            }
        },
    )
    .await
}

/// Registers the agent and returns its lease. A refusal (wrong key, bad request) fails
/// at once; an unavailable control plane is retried (see [`health::retry`]). Success
/// marks the control plane ready for one lease.
async fn register(
    cp: &ControlPlaneClient,
    agent: v1::AgentInfo,
    readiness: &Readiness,
    shutdown: &CancellationToken,
) -> anyhow::Result<Duration> {
    let lease = health::retry(
        "control plane",
        health::CONTROL_PLANE,
        readiness,
        shutdown,
        || async {
            match cp.register(agent.clone()).await {
                Ok(resp) => Ok(Duration::from_millis(resp.lease_ms.max(1000))),
                Err(error) if error.is_unavailable() => Err(health::Failure::Retry(format!(
                    "registration: {}",
                    error.message()
                ))),
                Err(error) => Err(health::Failure::Fatal(anyhow::anyhow!(
                    "the control plane refused to register this agent: {error}"
                ))),
            }
        },
    )
    .await?;
    readiness.ready_for(health::CONTROL_PLANE, lease);
    Ok(lease)
}

/// Heartbeats at a third of the lease; re-registers when the lease was lost (e.g. the
/// control plane restarted); logs, but never fails, while the control plane is away.
/// Each renewal keeps the control-plane readiness check fresh for one lease.
async fn keep_lease(
    cp: ControlPlaneClient,
    agent: v1::AgentInfo,
    lease: Duration,
    readiness: Readiness,
    shutdown: CancellationToken,
) -> Result<(), std::convert::Infallible> {
    let period = lease / 3;
    let mut failing = false;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = tokio::time::sleep(period) => {}
        }
        let result = match cp.heartbeat(&agent.agent_id).await {
            Ok(_) => {
                readiness.ready_for(health::CONTROL_PLANE, lease);
                Ok(())
            }
            Err(error) if error.is_not_found() => {
                // Fenced: paused or cut off past its lease, this agent was dropped.
                tracing::info!(error = %error.message(), "agent lease refused by the control plane; registering again");
                readiness.not_ready(health::REGISTRATION, "lease lost; registering again");
                match register(&cp, agent.clone(), &readiness, &shutdown).await {
                    Ok(_) => {
                        readiness.ready(health::REGISTRATION);
                        Ok(())
                    }
                    Err(error) => Err(format!("{error:#}")),
                }
            }
            Err(error) => {
                readiness.renewal_failed(health::CONTROL_PLANE, error.message());
                Err(error.message().to_owned())
            }
        };
        match result {
            Ok(()) if failing => {
                tracing::info!("agent lease renewed again");
                failing = false;
            }
            Ok(()) => {}
            Err(error) if !failing => {
                tracing::warn!(%error, "agent lease renewal failed; retrying");
                failing = true;
            }
            Err(_) => {}
        }
    }
    let _ = cp.deregister(&agent.agent_id).await;
    Ok(())
}

/// The jobs role's settings.
fn jobs_options(config: &AgentConfig) -> JobsOptions {
    let s = &config.jobs;
    JobsOptions {
        retention_interval: s.retention_interval,
        orphan_interval: s.gc_interval,
        compaction_interval: s.compaction_interval,
        orphan_grace: s.orphan_grace,
        release_grace: s.release_grace,
        compaction_min_entries: s.compaction_min_entries,
        compaction_target_bytes: s.compaction_target_bytes,
        ..JobsOptions::default()
    }
}

fn broker_config(config: &AgentConfig, agent_id: &str) -> anyhow::Result<BrokerConfig> {
    let tls = config
        .tls
        .as_ref()
        .map(client_auth::client_tls)
        .transpose()?;
    if let (Some(tls), Some(files)) = (&tls, &config.tls) {
        tracing::info!(
            cert = %files.cert.display(),
            verify_clients = tls.verify,
            handshake_first = tls.handshake_first,
            "TLS required for NATS clients"
        );
    }
    Ok(BrokerConfig {
        server_name: config.server_name.clone(),
        // The listen host, as nats-server reports it (`INFO`, `/varz`, `$SYS` answers).
        host: config.host.clone(),
        max_payload: config.max_payload,
        max_pending: config.max_pending,
        auth: config
            .auth
            .as_ref()
            .map(client_auth::broker_auth)
            .transpose()?,
        jetstream: true,
        roles: infinistream_peer::cluster::local_roles(agent_id, &config.roles, &config.zone),
        tls,
        ..BrokerConfig::default()
    })
}
