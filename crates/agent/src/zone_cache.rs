//! Wiring of the zone cache (proxy-consume): the peer listener, the ring's membership
//! task and the reader over the cache. The cache itself lives in `infinistream_fetcher::zone`.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use infinistream_config::AgentConfig;
use infinistream_control_plane::{ControlPlaneClient, GroupKeys};
use infinistream_fetcher::zone::{ZoneCache, ZoneOptions, peer};
use infinistream_fetcher::{ReaderOptions, StreamReader};
use infinistream_objstore::Bucket;
use infinistream_runtime::{CancellationToken, Supervisor};
use infinistream_types::Role;
use tokio::net::TcpListener;

/// How long a peer may take before the bucket is read instead.
const PEER_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the ring is rebuilt from the agent registry.
const RING_REFRESH: Duration = Duration::from_secs(2);

/// Binds the peer port when this agent serves reads (before registration, so the
/// registry gets the bound port even for `--peer_port 0`).
pub(crate) async fn bind(
    config: &AgentConfig,
) -> anyhow::Result<Option<(TcpListener, SocketAddr)>> {
    if !config.roles.contains(&Role::ProxyConsume) {
        return Ok(None);
    }
    let listener = TcpListener::bind(config.peer_addr())
        .await
        .with_context(|| {
            format!(
                "cannot listen for zone cache peers on {} (--peer_port)",
                config.peer_addr()
            )
        })?;
    let addr = listener.local_addr()?;
    Ok(Some((listener, addr)))
}

/// Opens the zone cache, starts its peer service and ring refresh, and returns the
/// reader over it.
#[allow(clippy::too_many_arguments)]
pub(crate) fn start(
    config: &AgentConfig,
    agent_id: &str,
    group: &str,
    peer_listener: Option<(TcpListener, SocketAddr)>,
    cp: &ControlPlaneClient,
    bucket: &Bucket,
    supervisor: &mut Supervisor,
    shutdown: &CancellationToken,
) -> anyhow::Result<StreamReader> {
    // Peers present the group key. In embedded mode without a configured key no other
    // agent shares this control plane, so a key only this process knows is right.
    let key = match &config.group_key {
        Some(key) if !key.is_empty() => key.clone(),
        _ => ulid::Ulid::generate().to_string(),
    };
    let disk =
        (config.cache_disk_bytes > 0).then(|| (config.cache_dir.clone(), config.cache_disk_bytes));
    let zone = ZoneCache::open(
        bucket.clone(),
        ZoneOptions {
            agent_id: agent_id.to_owned(),
            zone: config.zone.clone(),
            memory_bytes: config.cache_memory_bytes,
            disk,
            peer_auth: Some((group.to_owned(), key.clone())),
            peer_timeout: PEER_TIMEOUT,
            ring_refresh: RING_REFRESH,
        },
    )
    .context("cannot open the zone cache (INFINISTREAM_CACHE_DIR)")?;
    if let Some((listener, addr)) = peer_listener {
        let keys = GroupKeys::new([(group.to_owned(), key)]).context("invalid group id or key")?;
        supervisor.spawn(
            "zone-ring",
            zone.clone()
                .run_membership(cp.clone(), shutdown.clone().cancelled_owned()),
        );
        supervisor.spawn(
            "zone-peer",
            peer::serve(
                zone.clone(),
                listener,
                keys,
                shutdown.clone().cancelled_owned(),
            ),
        );
        tracing::info!(
            addr = %addr,
            zone = %config.zone,
            memory_bytes = config.cache_memory_bytes,
            disk_bytes = config.cache_disk_bytes,
            "zone cache peer listening on {addr}"
        );
    }
    Ok(StreamReader::with_zone(
        cp.clone(),
        zone,
        ReaderOptions::default(),
    ))
}
