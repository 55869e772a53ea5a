//! The steps of [`AgentHandle::start_with`](crate::AgentHandle::start_with), in the
//! order the crate docs give, each doing one thing and logging its lifecycle line.
//!
//! [`Startup`] holds what every step reads (settings, agent id, clock, metrics,
//! readiness, shutdown) and the supervisor the steps start tasks on; each step takes
//! what earlier steps built and returns what it builds.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use anyhow::Context;
use infinistream_broker::Broker;
use infinistream_config::{Advertise, AgentConfig};
use infinistream_cp_client::{ControlPlaneClient, SharedWatch};
use infinistream_fetcher::{ControlPlaneWatch, FetcherDeps, FetcherOptions};
use infinistream_gateway::{GatewayDeps, GatewayMetrics};
use infinistream_jetstream::{ApiDeps, JszSource, LocalRoutes, StreamCatalog};
use infinistream_objstore::{Bucket, BucketOptions, OpenError, StoreMetrics};
use infinistream_peer::PeerPort;
use infinistream_proto::v1;
use infinistream_runtime::health::Readiness;
use infinistream_runtime::{CancellationToken, Metrics, RoleContext, Supervisor};
use infinistream_types::{Role, SharedClock, SystemClock};
use tokio::net::TcpListener;

use crate::{CATALOG_LOAD, TestHooks, embedded, health, jsz, links, monitor, redacted_bucket};

/// The agent being started.
pub(crate) struct Startup {
    pub(crate) config: AgentConfig,
    pub(crate) id: String,
    pub(crate) clock: SharedClock,
    pub(crate) metrics: Metrics,
    pub(crate) readiness: Readiness,
    pub(crate) shutdown: CancellationToken,
    pub(crate) supervisor: Supervisor,
}

/// The bound listeners (step 2).
pub(crate) struct Listeners {
    pub(crate) client: TcpListener,
    pub(crate) client_addr: SocketAddr,
    pub(crate) http: TcpListener,
    pub(crate) http_addr: SocketAddr,
    pub(crate) peer: TcpListener,
    pub(crate) peer_addr: SocketAddr,
}

/// The control plane reached (step 3).
pub(crate) struct ControlPlane {
    pub(crate) client: ControlPlaneClient,
    pub(crate) group: String,
    /// Keeps an embedded control plane alive for as long as the agent runs.
    pub(crate) embedded: Option<embedded::Embedded>,
}

/// What the roles share (step 6).
pub(crate) struct Shared {
    pub(crate) broker: Broker,
    pub(crate) bucket: Bucket,
    pub(crate) cp: ControlPlaneClient,
    pub(crate) group: String,
    pub(crate) peer_port: PeerPort,
    pub(crate) stream_watch: SharedWatch,
    pub(crate) catalog: StreamCatalog,
}

/// What the role table started (step 7).
pub(crate) struct Roles {
    pub(crate) gateway_metrics: GatewayMetrics,
    pub(crate) jobs: Option<infinistream_jobs::Jobs>,
}

impl Startup {
    /// The agent's id and what every step shares; logs the start.
    pub(crate) fn new(config: AgentConfig, shutdown: CancellationToken) -> Startup {
        let roles: Vec<&str> = config.roles.iter().map(|r| r.as_str()).collect();
        let id = format!("{}-{}", config.server_name, ulid::Ulid::generate());
        tracing::info!(
            version = crate::version(),
            agent_id = %id,
            roles = %roles.join(","),
            bucket = %redacted_bucket(&config.bucket),
            batch_write_ms = config.batch_write.as_millis() as u64,
            control_plane = config.control_plane.as_deref().unwrap_or("embedded"),
            "starting infinistream agent"
        );
        Startup {
            config,
            id,
            clock: Arc::new(SystemClock),
            metrics: Metrics::new(),
            readiness: health::starting(),
            supervisor: Supervisor::new(shutdown.clone()),
            shutdown,
        }
    }

    /// Step 1: the zone (the broker's routing view and the registration carry it).
    pub(crate) async fn zone(&mut self) {
        let source = crate::resolve_zone(&mut self.config).await;
        tracing::info!(zone = %self.config.zone, source = %source, "availability zone");
    }

    /// Step 2, first half: the NATS, monitoring and peer listeners (a taken port stops
    /// the agent here).
    pub(crate) async fn listen(&self) -> anyhow::Result<Listeners> {
        let config = &self.config;
        let client = TcpListener::bind(config.client_addr())
            .await
            .with_context(|| {
                format!("cannot listen for NATS clients on {}", config.client_addr())
            })?;
        let client_addr = client.local_addr()?;
        let http = TcpListener::bind(config.http_addr())
            .await
            .with_context(|| format!("cannot listen for monitoring on {}", config.http_addr()))?;
        let http_addr = http.local_addr()?;
        let peer = TcpListener::bind(config.peer_addr())
            .await
            .with_context(|| {
                format!(
                    "cannot listen for peer agents on {} (--peer_port)",
                    config.peer_addr()
                )
            })?;
        let peer_addr = peer.local_addr()?;
        Ok(Listeners {
            client,
            client_addr,
            http,
            http_addr,
            peer,
            peer_addr,
        })
    }

    /// Step 2, second half: monitoring serves from now on (`/jsz` once `jsz` is set),
    /// readiness says what is missing.
    pub(crate) fn serve_monitoring(
        &mut self,
        http: TcpListener,
        http_addr: SocketAddr,
        broker: &Broker,
        jsz: Arc<OnceLock<JszSource>>,
    ) {
        let render = self.metrics.clone();
        let router = monitor::router(broker.clone(), Arc::new(move || render.render()))
            .merge(jsz::router(jsz))
            .merge(health::router(self.readiness.clone()));
        let http_shutdown = self.shutdown.clone();
        self.supervisor.spawn("monitoring", async move {
            axum::serve(http, router)
                .with_graceful_shutdown(http_shutdown.cancelled_owned())
                .await
        });
        tracing::info!(addr = %http_addr, "monitoring on http://{http_addr}");
    }

    /// Step 3: the control plane, embedded or remote (it also fixes the group in
    /// embedded mode). Registration, its own readiness check, comes after the bucket.
    pub(crate) async fn control_plane(&self) -> anyhow::Result<ControlPlane> {
        let config = &self.config;
        let reached = match &config.control_plane {
            None => {
                let embedded = embedded::Embedded::open(config, self.clock.clone()).await?;
                // The embedded control plane's request counters and schedule backlog.
                self.metrics.register(|r| embedded.metrics().register(r));
                ControlPlane {
                    client: embedded.client()?,
                    group: embedded.group().to_owned(),
                    embedded: Some(embedded),
                }
            }
            Some(url) => {
                let group = config.group_id.clone().unwrap_or_default();
                let key = config.group_key.clone().unwrap_or_default();
                let tls = match &config.cp_tls {
                    Some(tls) => links::client(tls, "control plane")?,
                    None => None,
                };
                let client = crate::connect_control_plane(
                    url,
                    (&group, &key),
                    tls.as_ref(),
                    &self.readiness,
                    &self.shutdown,
                )
                .await?;
                tracing::info!(url = %url, group = %group, tls = tls.is_some(), "control plane reached");
                ControlPlane {
                    client,
                    group,
                    embedded: None,
                }
            }
        };
        self.readiness.ready(health::CONTROL_PLANE);
        Ok(reached)
    }

    /// Step 4: the bucket, retried while unreachable (a bad URL stops the agent).
    pub(crate) async fn bucket(&self, group: &str, hooks: &TestHooks) -> anyhow::Result<Bucket> {
        let config = &self.config;
        let store_metrics = StoreMetrics::new();
        let bucket_options = BucketOptions {
            metrics: store_metrics.clone(),
            faults: hooks.bucket_faults.clone(),
            ..BucketOptions::for_group(group.to_owned())
        };
        let readiness = &self.readiness;
        let bucket = health::retry(
            "bucket",
            health::BUCKET,
            readiness,
            &self.shutdown,
            || async {
                Bucket::open(&config.bucket, bucket_options.clone())
                    .await
                    .map_err(|error| match error {
                        OpenError::Unreachable { .. } | OpenError::ProbeTimeout { .. } => {
                            health::Failure::Retry(health::error_text(&error))
                        }
                        other => health::Failure::Fatal(anyhow::Error::new(other)),
                    })
            },
        )
        .await
        .with_context(|| format!("cannot open the bucket {}", redacted_bucket(&config.bucket)))?;
        readiness.ready(health::BUCKET);
        self.metrics.register(|r| store_metrics.register(r));
        Ok(bucket)
    }

    /// Step 5: registers the agent (its listeners at their advertised addresses) and
    /// keeps its lease alive in the background.
    pub(crate) async fn register(
        &mut self,
        cp: &ControlPlaneClient,
        client_addr: SocketAddr,
        peer_addr: SocketAddr,
    ) -> anyhow::Result<()> {
        let agent_info = self.agent_info(client_addr, peer_addr);
        let lease =
            crate::register(cp, agent_info.clone(), &self.readiness, &self.shutdown).await?;
        tracing::info!(
            agent_id = %self.id,
            lease_ms = lease.as_millis() as u64,
            "registered with the control plane"
        );
        // The JetStream account's limits, which the control plane enforces for the
        // group: in force before this agent serves a request.
        crate::client_auth::send_jetstream_limits(
            cp,
            self.config.auth.as_ref(),
            &self.readiness,
            &self.shutdown,
        )
        .await?;
        self.supervisor.spawn(
            "agent-lease",
            crate::keep_lease(
                cp.clone(),
                agent_info,
                lease,
                self.readiness.clone(),
                self.shutdown.clone(),
            ),
        );
        Ok(())
    }

    /// The registry's entry for this agent.
    fn agent_info(&self, client_addr: SocketAddr, peer_addr: SocketAddr) -> v1::AgentInfo {
        let config = &self.config;
        v1::AgentInfo {
            agent_id: self.id.clone(),
            roles: config.roles.iter().map(|r| r.as_str().to_owned()).collect(),
            zone: config.zone.clone(),
            client_address: crate::advertised(
                config,
                client_addr,
                config.client_advertise.as_ref(),
            ),
            peer_address: crate::advertised(
                config,
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
            version: crate::version().to_owned(),
        }
    }

    /// Step 6: what the roles share. The peer port (the route mesh on every agent and
    /// the zone cache on proxy-consume agents register with it) with routing by
    /// connection name and the route mesh, the live agents loaded before the first
    /// client comes; the agent's one stream watch, shared by the stream catalog every
    /// role reads and the consumers' wake-ups, and the catalog's first load from it.
    pub(crate) async fn shared(
        &mut self,
        broker: Broker,
        bucket: Bucket,
        cp: ControlPlaneClient,
        group: String,
        peer_listener: TcpListener,
    ) -> anyhow::Result<Shared> {
        let mut peer_port = self.peer_port(peer_listener, &group)?;
        infinistream_peer::cluster::start(
            &mut peer_port,
            cp.clone(),
            broker.clone(),
            &self.id,
            &mut self.supervisor,
        )
        .await;
        let stream_watch = cp.shared_watch(v1::WatchStreamsRequest {
            streams: Vec::new(),
            consumers: self.config.roles.contains(&Role::ProxyConsume),
        });
        let catalog = StreamCatalog::new();
        self.supervisor.spawn(
            "stream-catalog",
            catalog
                .clone()
                .follow(cp.clone(), stream_watch.subscribe(), self.shutdown.clone()),
        );
        if !catalog.loaded(CATALOG_LOAD).await {
            tracing::warn!("initial stream catalog load not done; it goes on in the background");
        }
        Ok(Shared {
            broker,
            bucket,
            cp,
            group,
            peer_port,
            stream_watch,
            catalog,
        })
    }

    /// The peer port: peers present the group key. In embedded mode without a
    /// configured key no other agent shares this control plane, so a key only this
    /// process knows is right.
    fn peer_port(&self, listener: TcpListener, group: &str) -> anyhow::Result<PeerPort> {
        let peer_key = match &self.config.group_key {
            Some(key) if !key.is_empty() => key.clone(),
            _ => ulid::Ulid::generate().to_string(),
        };
        Ok(PeerPort::new(listener, group, &peer_key)
            .context("invalid group id or key")?
            .with_tls(links::peer(self.config.peer_tls.as_ref())?))
    }

    /// Step 7, first half: the roles the configuration asks for, each through its
    /// crate's one entry point, then the JetStream API on every agent (what this
    /// agent's roles do not serve is forwarded to a peer that runs them); sets `jsz`.
    pub(crate) fn roles(
        &mut self,
        shared: &mut Shared,
        jsz: &OnceLock<JszSource>,
    ) -> anyhow::Result<Roles> {
        let gateway_metrics = GatewayMetrics::new();
        self.metrics.register(|r| gateway_metrics.register(r));
        let Startup {
            config,
            id,
            clock,
            metrics,
            readiness,
            shutdown,
            supervisor,
        } = self;
        let mut ctx = RoleContext {
            agent_id: id,
            clock: clock.clone(),
            metrics,
            supervisor,
        };
        let mut jobs = None;
        let mut consume = None;
        for role in &config.roles {
            match role {
                Role::ProxyProduce => infinistream_gateway::start(
                    &mut ctx,
                    GatewayDeps {
                        broker: shared.broker.clone(),
                        bucket: shared.bucket.clone(),
                        cp: shared.cp.clone(),
                        catalog: shared.catalog.clone(),
                        metrics: gateway_metrics.clone(),
                    },
                    config.batch_write,
                    config.publish_buffer,
                ),
                Role::ProxyConsume => {
                    let commits = ControlPlaneWatch::follow(
                        shared.stream_watch.subscribe(),
                        shutdown.clone(),
                    );
                    let fetcher = infinistream_fetcher::start(
                        &mut ctx,
                        FetcherDeps {
                            broker: shared.broker.clone(),
                            bucket: shared.bucket.clone(),
                            cp: shared.cp.clone(),
                            catalog: shared.catalog.clone(),
                            commits: Arc::new(commits),
                        },
                        FetcherOptions {
                            zone: config.zone.clone(),
                            cache_memory_bytes: config.cache_memory_bytes,
                            cache_dir: config.cache_dir.clone(),
                            cache_disk_bytes: config.cache_disk_bytes,
                        },
                        shared.peer_port.dialer(),
                    )?;
                    shared.peer_port.register(fetcher.zone_service);
                    consume = Some((fetcher.reads, fetcher.consumers));
                }
                Role::Jobs => {
                    jobs = Some(infinistream_jobs::start(
                        &mut ctx,
                        shared.cp.clone(),
                        shared.bucket.clone(),
                        crate::jobs_options(config),
                    ));
                }
            }
            tracing::info!(role = role.as_str(), "role started");
        }
        let routes = LocalRoutes {
            consume,
            produce: config.roles.contains(&Role::ProxyProduce),
        };
        // What every account's `$JS.API` server shares, with that account's limits.
        let api_deps = |account_limits| ApiDeps {
            broker: shared.broker.clone(),
            cp: shared.cp.clone(),
            catalog: shared.catalog.clone(),
            server_name: config.server_name.clone(),
            group: shared.group.clone(),
            health: {
                let readiness = readiness.clone();
                Arc::new(move || readiness.status())
            },
            account_limits,
        };
        let jsz_source = infinistream_jetstream::start(
            &mut ctx,
            api_deps(crate::client_auth::jetstream_limits(config.auth.as_ref())),
            routes.clone(),
        )?;
        // Every other JetStream account: its own `$JS.API` server (see
        // `infinistream_config::accounts` for how its streams are named).
        for (account, limits) in crate::client_auth::more_jetstream(config.auth.as_ref()) {
            infinistream_jetstream::start_account(
                &mut ctx,
                api_deps(limits),
                &routes,
                &account,
                limits,
            )?;
        }
        // Set once: nothing else fills the cell.
        let _ = jsz.set(jsz_source);
        Ok(Roles {
            gateway_metrics,
            jobs,
        })
    }

    /// Step 7, second half: serve the peer port and NATS clients; ready (the lease
    /// keeps the control-plane check fresh).
    pub(crate) fn serve(
        &mut self,
        peer_port: PeerPort,
        broker: &Broker,
        client: TcpListener,
        client_addr: SocketAddr,
    ) {
        self.supervisor.spawn(
            "peer-port",
            peer_port.serve(self.shutdown.clone().cancelled_owned()),
        );
        let serve_broker = broker.clone();
        let serve_shutdown = self.shutdown.clone();
        self.supervisor.spawn("nats-listener", async move {
            serve_broker.serve(client, serve_shutdown).await
        });
        tracing::info!(addr = %client_addr, "listening for NATS clients");
        self.readiness.ready(health::REGISTRATION);
        tracing::info!(agent_id = %self.id, "agent ready");
    }
}
