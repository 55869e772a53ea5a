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
//! 7. the roles, from the table in [`AgentHandle::start_with`]: `gateway::start`,
//!    `fetcher::start`, `jobs::start`, then `jetstream::start` (the JetStream and system
//!    APIs on every agent); serve the peer port and NATS clients; `/readyz` turns 200.
//!
//! The binary's `main` only parses flags; everything here is callable from tests,
//! which start agents in-process on port 0.

pub mod client_auth;
pub mod control_plane;
mod embedded;
mod health;
mod jsz;
pub mod links;
pub mod monitor;

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::Context;
use infinistream_broker::{Broker, BrokerConfig};
use infinistream_config::{Advertise, AgentConfig, ZoneSource};
use infinistream_cp_client::{ClientError, ControlPlaneClient};
use infinistream_fetcher::{ControlPlaneWatch, FetcherDeps, FetcherOptions};
use infinistream_gateway::{GatewayDeps, GatewayMetrics};
use infinistream_jetstream::{ApiDeps, LocalRoutes, StreamCatalog};
use infinistream_jobs::JobsOptions;
use infinistream_objstore::{Bucket, BucketOptions, OpenError, StoreMetrics};
use infinistream_peer::PeerPort;
use infinistream_proto::v1;
use infinistream_runtime::health::Readiness;
use infinistream_runtime::zone::{self, MetadataEndpoints, ZoneOrigin};
use infinistream_runtime::{CancellationToken, Metrics, RoleContext, Supervisor};
use infinistream_types::{Role, SharedClock, SystemClock};
use tokio::net::TcpListener;

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
        mut config: AgentConfig,
        shutdown: CancellationToken,
        hooks: TestHooks,
    ) -> anyhow::Result<Self> {
        let roles: Vec<&str> = config.roles.iter().map(|r| r.as_str()).collect();
        let id = format!("{}-{}", config.server_name, ulid::Ulid::generate());
        tracing::info!(
            version = version(),
            agent_id = %id,
            roles = %roles.join(","),
            bucket = %redacted_bucket(&config.bucket),
            batch_write_ms = config.batch_write.as_millis() as u64,
            control_plane = config.control_plane.as_deref().unwrap_or("embedded"),
            "starting infinistream agent"
        );
        // 1. The zone (the broker's routing view and the registration carry it).
        let source = resolve_zone(&mut config).await;
        tracing::info!(zone = %config.zone, source = %source, "availability zone");
        // Settings read from files (TLS) next: a bad one stops the agent before it
        // touches the control plane or the bucket.
        let broker_config = broker_config(&config, &id)?;
        let clock: SharedClock = Arc::new(SystemClock);
        let metrics = Metrics::new();

        // 2. Listeners; monitoring serves from now on, readiness says what is missing.
        let client_listener = TcpListener::bind(config.client_addr())
            .await
            .with_context(|| {
                format!("cannot listen for NATS clients on {}", config.client_addr())
            })?;
        let client_addr = client_listener.local_addr()?;
        let http_listener = TcpListener::bind(config.http_addr())
            .await
            .with_context(|| format!("cannot listen for monitoring on {}", config.http_addr()))?;
        let http_addr = http_listener.local_addr()?;
        let peer_listener = TcpListener::bind(config.peer_addr())
            .await
            .with_context(|| {
                format!(
                    "cannot listen for peer agents on {} (--peer_port)",
                    config.peer_addr()
                )
            })?;
        let peer_addr = peer_listener.local_addr()?;
        let broker = Broker::new(broker_config);
        metrics.register(|registry| broker.register_metrics(registry));
        let readiness = health::starting();
        let jsz = Arc::new(OnceLock::new());
        let mut supervisor = Supervisor::new(shutdown.clone());
        let render = metrics.clone();
        let router = monitor::router(broker.clone(), Arc::new(move || render.render()))
            .merge(jsz::router(jsz.clone()))
            .merge(health::router(readiness.clone()));
        let http_shutdown = shutdown.clone();
        supervisor.spawn("monitoring", async move {
            axum::serve(http_listener, router)
                .with_graceful_shutdown(http_shutdown.cancelled_owned())
                .await
        });
        tracing::info!(addr = %http_addr, "monitoring on http://{http_addr}");

        // 3. The control plane (it also fixes the group in embedded mode).
        let (cp, group, embedded) = match &config.control_plane {
            None => {
                let embedded = embedded::Embedded::open(&config, clock.clone()).await?;
                // The embedded control plane's request counters and schedule backlog.
                metrics.register(|r| embedded.metrics().register(r));
                let client = embedded.client()?;
                let group = embedded.group().to_owned();
                (client, group, Some(embedded))
            }
            Some(url) => {
                let group = config.group_id.clone().unwrap_or_default();
                let key = config.group_key.clone().unwrap_or_default();
                let tls = match &config.cp_tls {
                    Some(tls) => links::client(tls, "control plane")?,
                    None => None,
                };
                let client =
                    connect_control_plane(url, (&group, &key), tls.as_ref(), &readiness, &shutdown)
                        .await?;
                tracing::info!(url = %url, group = %group, tls = tls.is_some(), "control plane reached");
                (client, group, None)
            }
        };
        // Reached; registration (its own check) comes after the bucket.
        readiness.ready(health::CONTROL_PLANE);

        // 4. The bucket.
        let store_metrics = StoreMetrics::new();
        let bucket_options = BucketOptions {
            metrics: store_metrics.clone(),
            faults: hooks.bucket_faults.clone(),
            ..BucketOptions::for_group(group.clone())
        };
        let bucket = health::retry("bucket", health::BUCKET, &readiness, &shutdown, || async {
            Bucket::open(&config.bucket, bucket_options.clone())
                .await
                .map_err(|error| match error {
                    OpenError::Unreachable { .. } | OpenError::ProbeTimeout { .. } => {
                        health::Failure::Retry(health::error_text(&error))
                    }
                    other => health::Failure::Fatal(anyhow::Error::new(other)),
                })
        })
        .await
        .with_context(|| format!("cannot open the bucket {}", redacted_bucket(&config.bucket)))?;
        readiness.ready(health::BUCKET);
        metrics.register(|r| store_metrics.register(r));

        // 5. Registration, with a lease kept alive in the background.
        let agent_info = v1::AgentInfo {
            agent_id: id.clone(),
            roles: roles.iter().map(|r| (*r).to_owned()).collect(),
            zone: config.zone.clone(),
            client_address: advertised(&config, client_addr, config.client_advertise.as_ref()),
            peer_address: advertised(
                &config,
                peer_addr,
                // The peer port is never remapped: only the advertised host applies.
                config
                    .client_advertise
                    .as_ref()
                    .map(|a| Advertise {
                        host: a.host.clone(),
                        port: None,
                    })
                    .as_ref(),
            ),
            lease_expires_unix_nanos: 0,
            version: version().to_owned(),
        };
        let lease = register(&cp, agent_info.clone(), &readiness, &shutdown).await?;
        tracing::info!(
            agent_id = %id,
            lease_ms = lease.as_millis() as u64,
            "registered with the control plane"
        );
        supervisor.spawn(
            "agent-lease",
            keep_lease(
                cp.clone(),
                agent_info,
                lease,
                readiness.clone(),
                shutdown.clone(),
            ),
        );

        // 6. What the roles share: the peer port (the route mesh on every agent and the
        // zone cache on proxy-consume agents register with it), the stream watch and
        // catalog, and the role context.
        // Peers present the group key. In embedded mode without a configured key no other
        // agent shares this control plane, so a key only this process knows is right.
        let peer_key = match &config.group_key {
            Some(key) if !key.is_empty() => key.clone(),
            _ => ulid::Ulid::generate().to_string(),
        };
        let mut peer_port = PeerPort::new(peer_listener, &group, &peer_key)
            .context("invalid group id or key")?
            .with_tls(links::peer(config.peer_tls.as_ref())?);
        let mut ctx = RoleContext {
            agent_id: &id,
            clock: clock.clone(),
            metrics: &metrics,
            supervisor: &mut supervisor,
        };
        // Routing by connection name and the route mesh: the live agents, before the
        // first client comes.
        infinistream_peer::cluster::start(
            &mut peer_port,
            cp.clone(),
            broker.clone(),
            &id,
            ctx.supervisor,
        )
        .await;

        // The agent's one stream watch, shared by the stream catalog every role reads
        // and the consumers' wake-ups; the catalog's first list is loaded before the
        // roles start.
        let stream_watch = cp.shared_watch(v1::WatchStreamsRequest {
            streams: Vec::new(),
            consumers: config.roles.contains(&Role::ProxyConsume),
        });
        let catalog = StreamCatalog::new();
        ctx.supervisor.spawn(
            "stream-catalog",
            catalog
                .clone()
                .follow(cp.clone(), stream_watch.subscribe(), shutdown.clone()),
        );
        if !catalog.loaded(CATALOG_LOAD).await {
            tracing::warn!("initial stream catalog load not done; it goes on in the background");
        }

        let gateway_metrics = GatewayMetrics::new();
        metrics.register(|r| gateway_metrics.register(r));
        let mut jobs_role = None;
        let mut consume = None;
        for role in &config.roles {
            match role {
                Role::ProxyProduce => infinistream_gateway::start(
                    &mut ctx,
                    GatewayDeps {
                        broker: broker.clone(),
                        bucket: bucket.clone(),
                        cp: cp.clone(),
                        catalog: catalog.clone(),
                        metrics: gateway_metrics.clone(),
                    },
                    config.batch_write,
                ),
                Role::ProxyConsume => {
                    let commits =
                        ControlPlaneWatch::follow(stream_watch.subscribe(), shutdown.clone());
                    let fetcher = infinistream_fetcher::start(
                        &mut ctx,
                        FetcherDeps {
                            broker: broker.clone(),
                            bucket: bucket.clone(),
                            cp: cp.clone(),
                            catalog: catalog.clone(),
                            commits: Arc::new(commits),
                        },
                        FetcherOptions {
                            zone: config.zone.clone(),
                            cache_memory_bytes: config.cache_memory_bytes,
                            cache_dir: config.cache_dir.clone(),
                            cache_disk_bytes: config.cache_disk_bytes,
                        },
                        peer_port.dialer(),
                    )?;
                    peer_port.register(fetcher.zone_service);
                    consume = Some((fetcher.reads, fetcher.consumers));
                }
                Role::Jobs => {
                    jobs_role = Some(infinistream_jobs::start(
                        &mut ctx,
                        cp.clone(),
                        bucket.clone(),
                        jobs_options(&config),
                    ));
                }
            }
            tracing::info!(role = role.as_str(), "role started");
        }
        // The JetStream API on every agent: what this agent's roles do not serve is
        // forwarded to a peer that runs them.
        let jsz_source = infinistream_jetstream::start(
            &mut ctx,
            ApiDeps {
                broker: broker.clone(),
                cp: cp.clone(),
                catalog: catalog.clone(),
                server_name: config.server_name.clone(),
                group: group.clone(),
                health: {
                    let readiness = readiness.clone();
                    Arc::new(move || readiness.status())
                },
            },
            LocalRoutes {
                consume,
                produce: config.roles.contains(&Role::ProxyProduce),
            },
        )?;
        // Set once: nothing else fills the cell.
        let _ = jsz.set(jsz_source);
        supervisor.spawn(
            "peer-port",
            peer_port.serve(shutdown.clone().cancelled_owned()),
        );

        let serve_broker = broker.clone();
        let serve_shutdown = shutdown.clone();
        supervisor.spawn("nats-listener", async move {
            serve_broker.serve(client_listener, serve_shutdown).await
        });
        tracing::info!(addr = %client_addr, "listening for NATS clients");
        // 7. Serving: ready (the lease keeps the control-plane check fresh).
        readiness.ready(health::REGISTRATION);
        tracing::info!(agent_id = %id, "agent ready");

        Ok(Self {
            id,
            client_addr,
            http_addr,
            broker,
            bucket,
            catalog,
            gateway_metrics,
            shutdown,
            supervisor,
            _embedded: embedded,
            jobs: jobs_role,
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
        || {
            let mut agents = cp.agents.clone();
            let request = v1::RegisterRequest {
                agent: Some(agent.clone()),
                lease_ms: 0,
            };
            async move {
                match agents.register(request).await {
                    Ok(resp) => Ok(Duration::from_millis(resp.into_inner().lease_ms.max(1000))),
                    Err(status)
                        if matches!(
                            status.code(),
                            tonic::Code::Unavailable | tonic::Code::DeadlineExceeded
                        ) =>
                    {
                        Err(health::Failure::Retry(format!(
                            "registration: {}",
                            status.message()
                        )))
                    }
                    Err(status) => Err(health::Failure::Fatal(anyhow::anyhow!(
                        "the control plane refused to register this agent ({:?}): {}",
                        status.code(),
                        status.message()
                    ))),
                }
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
    let mut agents = cp.agents.clone();
    let mut failing = false;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = tokio::time::sleep(period) => {}
        }
        let beat = agents
            .heartbeat(v1::HeartbeatRequest {
                agent_id: agent.agent_id.clone(),
            })
            .await;
        let result = match beat {
            Ok(_) => {
                readiness.ready_for(health::CONTROL_PLANE, lease);
                Ok(())
            }
            Err(status) if status.code() == tonic::Code::NotFound => {
                // Fenced: paused or cut off past its lease, this agent was dropped.
                tracing::info!(error = %status.message(), "agent lease refused by the control plane; registering again");
                readiness.not_ready(health::REGISTRATION, "lease lost; registering again");
                match register(&cp, agent.clone(), &readiness, &shutdown).await {
                    Ok(_) => {
                        readiness.ready(health::REGISTRATION);
                        Ok(())
                    }
                    Err(error) => Err(format!("{error:#}")),
                }
            }
            Err(status) => {
                readiness.renewal_failed(health::CONTROL_PLANE, status.message());
                Err(status.message().to_owned())
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
    let _ = agents
        .deregister(v1::DeregisterRequest {
            agent_id: agent.agent_id.clone(),
        })
        .await;
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
    let tls = match &config.tls {
        None => None,
        Some(files) => {
            let mut tls = infinistream_broker::Tls::from_pem_files(
                &files.cert,
                &files.key,
                files.client_ca.as_deref(),
            )
            .context("cannot set up TLS for NATS clients (INFINISTREAM_TLS_*)")?;
            tls.handshake_first = files.handshake_first;
            tracing::info!(
                cert = %files.cert.display(),
                verify_clients = tls.verify,
                handshake_first = tls.handshake_first,
                "TLS required for NATS clients"
            );
            Some(tls)
        }
    };
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
