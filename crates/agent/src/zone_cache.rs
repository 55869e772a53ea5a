//! Wiring of the zone cache (proxy-consume): the ring's membership task, the reader
//! over the cache and its service on the peer port. The cache itself lives in `infinistream_fetcher::zone`.

use std::time::Duration;

use anyhow::Context;
use infinistream_config::AgentConfig;
use infinistream_cp_client::auth::ServerAuth;
use infinistream_cp_client::{ControlPlaneClient, GroupKeys};
use infinistream_fetcher::zone::peer::{self, PeerService};
use infinistream_fetcher::zone::{ZoneCache, ZoneOptions};
use infinistream_fetcher::{ReaderOptions, StreamReader};
use infinistream_objstore::Bucket;
use infinistream_proto::v1::zone_cache_server::ZoneCacheServer;
use infinistream_runtime::{CancellationToken, Supervisor};
use tonic::service::interceptor::InterceptedService;

/// How long a peer may take before the bucket is read instead.
const PEER_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the ring is rebuilt from the agent registry.
const RING_REFRESH: Duration = Duration::from_secs(2);

/// The zone cache's part of the peer port.
pub(crate) type ZoneService = InterceptedService<ZoneCacheServer<PeerService>, ServerAuth>;

/// Opens the zone cache and starts its ring refresh; returns the reader over it and
/// the service answering the zone's other agents (for the peer port).
#[allow(clippy::too_many_arguments)]
pub(crate) fn start(
    config: &AgentConfig,
    agent_id: &str,
    group: &str,
    key: &str,
    cp: &ControlPlaneClient,
    bucket: &Bucket,
    supervisor: &mut Supervisor,
    shutdown: &CancellationToken,
) -> anyhow::Result<(StreamReader, ZoneService)> {
    let disk =
        (config.cache_disk_bytes > 0).then(|| (config.cache_dir.clone(), config.cache_disk_bytes));
    let zone = ZoneCache::open(
        bucket.clone(),
        ZoneOptions {
            agent_id: agent_id.to_owned(),
            zone: config.zone.clone(),
            memory_bytes: config.cache_memory_bytes,
            disk,
            peer_auth: Some((group.to_owned(), key.to_owned())),
            peer_timeout: PEER_TIMEOUT,
            ring_refresh: RING_REFRESH,
        },
    )
    .context("cannot open the zone cache (INFINISTREAM_CACHE_DIR)")?;
    let keys =
        GroupKeys::new([(group.to_owned(), key.to_owned())]).context("invalid group id or key")?;
    supervisor.spawn(
        "zone-ring",
        zone.clone()
            .run_membership(cp.clone(), shutdown.clone().cancelled_owned()),
    );
    tracing::info!(
        zone = %config.zone,
        memory_bytes = config.cache_memory_bytes,
        disk_bytes = config.cache_disk_bytes,
        "zone cache open"
    );
    let service = peer::service(zone.clone(), keys);
    Ok((
        StreamReader::with_zone(cp.clone(), zone, ReaderOptions::default()),
        service,
    ))
}
