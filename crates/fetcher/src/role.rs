//! The proxy-consume role's entry point: [`start`] opens the zone cache, registers it
//! on the peer port, and starts the reads and consumers the JetStream API routes to.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use infinistream_broker::{Broker, BrokerError};
use infinistream_cp_client::ControlPlaneClient;
use infinistream_jetstream::{RouteHandler, StreamCatalog};
use infinistream_objstore::Bucket;
use infinistream_runtime::RoleContext;

use crate::consumer::{CommitWatch, ConsumerService};
use crate::handler::ReadHandler;
use crate::reader::{ReaderOptions, StreamReader};
use crate::zone::{DiskError, ZoneCache, ZoneOptions, peer};

/// How long a peer may take before the bucket is read instead.
const PEER_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the ring is rebuilt from the agent registry.
const RING_REFRESH: Duration = Duration::from_secs(2);

/// What the role uses of what the agent shares.
#[derive(Debug, Clone)]
pub struct FetcherDeps {
    pub broker: Broker,
    pub bucket: Bucket,
    pub cp: ControlPlaneClient,
    pub catalog: StreamCatalog,
    /// Where parked pulls and push consumers learn of commits.
    pub commits: Arc<dyn CommitWatch>,
}

/// The role's settings.
#[derive(Debug, Clone)]
pub struct FetcherOptions {
    /// The agent's zone: the ring is built of the zone's proxy-consume agents.
    pub zone: String,
    /// Memory tier of the zone cache.
    pub cache_memory_bytes: u64,
    /// Disk tier: directory and bytes (none when 0 bytes).
    pub cache_dir: PathBuf,
    pub cache_disk_bytes: u64,
}

/// Why the role could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot open the zone cache (INFINISTREAM_CACHE_DIR): {0}")]
    ZoneCache(#[from] DiskError),
    #[error("cannot start the consumer service: {0}")]
    Consumers(#[from] BrokerError),
}

/// The running role: the JetStream API routes it serves.
#[derive(Clone)]
pub struct Fetcher {
    /// The zone cache's gRPC service, served to the zone's other agents on the peer
    /// port (which checks the group key).
    pub zone_service: peer::ZoneCacheService,
    /// `STREAM.MSG.GET` and `DIRECT.GET`.
    pub reads: Arc<dyn RouteHandler>,
    /// `CONSUMER.*`.
    pub consumers: Arc<dyn RouteHandler>,
}

impl std::fmt::Debug for Fetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fetcher").finish_non_exhaustive()
    }
}

/// Starts proxy-consume: the zone cache (ring membership under the supervisor; its
/// service in [`Fetcher::zone_service`], for the agent to register on its peer port),
/// the reader over it, and the consumer service. `peer` (the peer port's dialler)
/// authenticates the zone cache's calls to its peers, over TLS when the port uses it.
pub fn start(
    ctx: &mut RoleContext<'_>,
    deps: FetcherDeps,
    options: FetcherOptions,
    peer: infinistream_cp_client::tls::PeerDialer,
) -> Result<Fetcher, StartError> {
    let shutdown = ctx.shutdown();
    let disk = (options.cache_disk_bytes > 0)
        .then(|| (options.cache_dir.clone(), options.cache_disk_bytes));
    let zone = ZoneCache::open(
        deps.bucket.clone(),
        ZoneOptions {
            agent_id: ctx.agent_id.to_owned(),
            zone: options.zone.clone(),
            memory_bytes: options.cache_memory_bytes,
            disk,
            peer: Some(peer),
            peer_timeout: PEER_TIMEOUT,
            ring_refresh: RING_REFRESH,
        },
    )?;
    ctx.supervisor.spawn(
        "zone-ring",
        zone.clone()
            .run_membership(deps.cp.clone(), shutdown.clone().cancelled_owned()),
    );
    let zone_service = peer::service(zone.clone());
    tracing::info!(
        zone = %options.zone,
        memory_bytes = options.cache_memory_bytes,
        disk_bytes = options.cache_disk_bytes,
        "zone cache open"
    );
    let reader = StreamReader::with_zone(deps.cp.clone(), zone, ReaderOptions::default());
    ctx.metrics.register(|r| reader.register(r));
    let consumers = ConsumerService::start(
        reader.clone(),
        deps.catalog.clone(),
        deps.broker.clone(),
        ctx.agent_id.to_owned(),
        deps.commits,
        shutdown,
    )?;
    Ok(Fetcher {
        zone_service,
        reads: ReadHandler::new(reader, deps.catalog, deps.broker).into_route_handler(),
        consumers: consumers.into_route_handler(),
    })
}
