//! The zone cache: object ranges read once per zone, not once per agent.
//!
//! Every bucket read of the read path (footer tails and whole chunks — reads always
//! over-fetch to whole chunks, so neighbouring messages share one range) goes through
//! [`ZoneCache::get`], which tries, in order:
//!
//! 1. **memory**: raw range bytes in an LRU bounded by bytes
//!    (`INFINISTREAM_CACHE_MEMORY_BYTES`);
//! 2. **the range's owner**: the proxy-consume agents of a zone form a
//!    rendezvous-hash [`Ring`] from the control plane's agent registry
//!    (`ListAgents`, refreshed every few seconds); when another agent owns the range,
//!    it is asked over the peer port ([`peer`], gRPC `ZoneCache.GetRange`). An owner
//!    that is down or slow is skipped for a few seconds with one log line, and the
//!    range is read locally instead;
//! 3. **disk** (owned ranges, or after a peer failure): files under the cache
//!    directory, bounded by bytes (`INFINISTREAM_CACHE_DISK_BYTES`), checksummed
//!    ([`disk`]);
//! 4. **the bucket**: one ranged GET.
//!
//! An owner answering a peer runs steps 1, 3 and 4 only — never forwarding — so two
//! agents whose ring views briefly differ cannot wait on each other. Concurrent
//! misses for one range are coalesced at each step ([`flight`]): one peer request,
//! one disk read, one bucket GET, however many readers wait. Objects are immutable,
//! so a cached range never goes stale.

pub mod disk;
mod flight;
pub mod metrics;
pub mod peer;
pub mod ring;

use std::fmt;
use std::future::Future;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use infinistream_cp_client::ControlPlaneClient;
use infinistream_objstore::{Bucket, BucketError};
use infinistream_proto::v1;
use object_store::path::Path;
use object_store::{GetOptions, GetRange};
use parking_lot::Mutex;
use tokio::sync::Semaphore;

use crate::cache::WeightedLru;
use crate::metrics::{CHUNKS, FOOTERS, ReaderMetrics};

pub use disk::DiskError;
pub use metrics::ZoneMetrics;
pub use ring::{Member, Ring};

use self::disk::{DiskRead, DiskTier};
use self::flight::SingleFlight;
use self::metrics::{DISK, MEMORY, PEER};

/// The role whose agents form the ring.
const RING_ROLE: &str = "proxy-consume";
/// How long an owner that failed is skipped before it is asked again.
const PEER_BACKOFF: Duration = Duration::from_secs(3);
/// Disk writes in flight at once; past that a range is not written to disk.
const DISK_WRITES: usize = 16;

/// Which bytes of an object.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RangeSpec {
    /// Bytes `[start, end)`.
    Bounded(Range<u64>),
    /// The last `n` bytes (a footer read; the answer carries the object's length).
    Suffix(u64),
}

/// One range of one object: the unit cached, owned and coalesced.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RangeKey {
    /// The object's key in the bucket.
    pub object: String,
    /// Which bytes.
    pub range: RangeSpec,
}

impl RangeKey {
    /// Bytes `[range.start, range.end)` of `object`.
    pub fn bounded(object: &str, range: Range<u64>) -> Self {
        Self {
            object: object.to_owned(),
            range: RangeSpec::Bounded(range),
        }
    }

    /// The last `n` bytes of `object`.
    pub fn suffix(object: &str, n: u64) -> Self {
        Self {
            object: object.to_owned(),
            range: RangeSpec::Suffix(n),
        }
    }

    /// The stable name hashed onto the ring and into disk file names.
    pub fn name(&self) -> String {
        self.to_string()
    }

    fn weight(&self, data: &RangeData) -> u64 {
        (data.bytes.len() + self.object.len() + 64) as u64
    }
}

impl fmt::Display for RangeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.range {
            RangeSpec::Bounded(r) => write!(f, "{}#{}-{}", self.object, r.start, r.end),
            RangeSpec::Suffix(n) => write!(f, "{}#tail-{n}", self.object),
        }
    }
}

/// A range's bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeData {
    /// The bytes.
    pub bytes: Bytes,
    /// The object's whole length (known for suffix reads; 0 when not asked for).
    pub object_len: u64,
}

/// Why a range could not be read (after every tier).
#[derive(Debug, thiserror::Error)]
pub enum ZoneError {
    /// The key is not a valid object path.
    #[error("invalid object key: `{0}`")]
    BadKey(String),
    /// The bucket read failed (after the bucket's own retries).
    #[error(transparent)]
    Bucket(#[from] BucketError),
    /// A suffix read of the store failed.
    #[error("bucket read of `{key}` failed: {source}")]
    Store {
        key: String,
        #[source]
        source: object_store::Error,
    },
}

/// Settings of a [`ZoneCache`].
#[derive(Debug, Clone)]
pub struct ZoneOptions {
    /// This agent's registry id (its own place on the ring).
    pub agent_id: String,
    /// Its zone: only agents of the same zone share ranges.
    pub zone: String,
    /// Bytes of raw ranges kept in memory (0 = none).
    pub memory_bytes: u64,
    /// Directory and byte bound of the disk tier (`None` = no disk tier).
    pub disk: Option<(PathBuf, u64)>,
    /// How peers are dialled: the group proof, TLS (`None` = never ask peers).
    pub peer: Option<infinistream_cp_client::tls::PeerDialer>,
    /// How long a peer may take to answer before the bucket is read instead.
    pub peer_timeout: Duration,
    /// How often the ring is rebuilt from the registry.
    pub ring_refresh: Duration,
}

impl ZoneOptions {
    /// A cache on its own: no ring, no disk, `memory_bytes` of memory.
    pub fn local(memory_bytes: u64) -> Self {
        Self {
            agent_id: String::new(),
            zone: String::new(),
            memory_bytes,
            disk: None,
            peer: None,
            peer_timeout: Duration::from_secs(5),
            ring_refresh: Duration::from_secs(2),
        }
    }
}

/// The zone cache of one agent. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ZoneCache {
    inner: Arc<Inner>,
}

struct Inner {
    bucket: Bucket,
    options: ZoneOptions,
    memory: Mutex<WeightedLru<RangeKey, RangeData>>,
    disk: Option<DiskTier>,
    ring: Mutex<Arc<Ring>>,
    peers: peer::Peers,
    local_flight: SingleFlight<RangeKey, RangeData>,
    peer_flight: SingleFlight<RangeKey, RangeData>,
    disk_writes: Arc<Semaphore>,
    metrics: ZoneMetrics,
    reader_metrics: ReaderMetrics,
}

impl fmt::Debug for Inner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ZoneCache")
            .field("agent_id", &self.options.agent_id)
            .field("zone", &self.options.zone)
            .field("ring", &self.ring.lock().len())
            .finish_non_exhaustive()
    }
}

impl ZoneCache {
    /// A zone cache over `bucket`. Opens the disk tier when configured.
    pub fn open(bucket: Bucket, options: ZoneOptions) -> Result<Self, DiskError> {
        let disk = match &options.disk {
            Some((dir, bytes)) if *bytes > 0 => Some(DiskTier::open(dir, *bytes)?),
            _ => None,
        };
        let metrics = ZoneMetrics::default();
        if let Some(disk) = &disk {
            metrics.disk_bytes.set(disk.bytes() as i64);
        }
        let peers = peer::Peers::new(options.peer.clone(), options.peer_timeout, metrics.clone());
        Ok(Self {
            inner: Arc::new(Inner {
                bucket,
                memory: Mutex::new(WeightedLru::new(options.memory_bytes)),
                disk,
                ring: Mutex::new(Arc::new(Ring::default())),
                peers,
                local_flight: SingleFlight::default(),
                peer_flight: SingleFlight::default(),
                disk_writes: Arc::new(Semaphore::new(DISK_WRITES)),
                metrics,
                reader_metrics: ReaderMetrics::default(),
                options,
            }),
        })
    }

    /// A cache with no ring and no disk (what [`StreamReader::new`](crate::StreamReader::new) uses).
    pub fn local(bucket: Bucket, memory_bytes: u64) -> Self {
        let options = ZoneOptions::local(memory_bytes);
        let metrics = ZoneMetrics::default();
        let peers = peer::Peers::new(None, options.peer_timeout, metrics.clone());
        Self {
            inner: Arc::new(Inner {
                bucket,
                memory: Mutex::new(WeightedLru::new(memory_bytes)),
                disk: None,
                ring: Mutex::new(Arc::new(Ring::default())),
                peers,
                local_flight: SingleFlight::default(),
                peer_flight: SingleFlight::default(),
                disk_writes: Arc::new(Semaphore::new(DISK_WRITES)),
                metrics,
                reader_metrics: ReaderMetrics::default(),
                options,
            }),
        }
    }

    /// The zone counters.
    pub fn metrics(&self) -> &ZoneMetrics {
        &self.inner.metrics
    }

    /// The bucket counters (`fetcher_bucket_*`), shared with the reader over this cache.
    pub(crate) fn reader_metrics(&self) -> &ReaderMetrics {
        &self.inner.reader_metrics
    }

    /// The current ring.
    pub fn ring(&self) -> Arc<Ring> {
        self.inner.ring.lock().clone()
    }

    /// Replaces the ring (the membership task does this; tests may too).
    pub fn set_ring(&self, ring: Ring) {
        let mut current = self.inner.ring.lock();
        if **current != ring {
            tracing::info!(
                zone = %self.inner.options.zone,
                members = ring.len(),
                agents = %ring.members().map(|m| m.agent_id.as_str()).collect::<Vec<_>>().join(","),
                "zone cache ring changed"
            );
            self.inner.metrics.ring_members.set(ring.len() as i64);
            *current = Arc::new(ring);
        }
    }

    /// The range's bytes, from the cheapest tier that has them.
    #[tracing::instrument(level = "debug", skip(self), fields(range = %key))]
    pub async fn get(&self, key: &RangeKey) -> Result<RangeData, ZoneError> {
        if let Some(data) = self.memory_get(key) {
            self.inner.metrics.hit(MEMORY);
            return Ok(data);
        }
        self.inner.metrics.miss(MEMORY);
        let owner = self.remote_owner(key);
        let Some(owner) = owner else {
            return self.local_after_memory(key).await;
        };
        let (result, joined) = self
            .inner
            .peer_flight
            .run(key.clone(), || self.via_peer(owner, key))
            .await;
        if joined {
            self.inner
                .metrics
                .coalesced
                .get_or_create(&metrics::TierLabel { tier: PEER })
                .inc();
        }
        result
    }

    /// A range asked for by a peer: memory, disk, bucket — never another peer.
    pub(crate) async fn serve(&self, key: &RangeKey) -> Result<RangeData, ZoneError> {
        let data = match self.memory_get(key) {
            Some(data) => {
                self.inner.metrics.hit(MEMORY);
                data
            }
            None => {
                self.inner.metrics.miss(MEMORY);
                self.local_after_memory(key).await?
            }
        };
        self.inner.metrics.peer_served.inc();
        self.inner
            .metrics
            .peer_served_bytes
            .inc_by(data.bytes.len() as u64);
        Ok(data)
    }

    /// The owner of `key` when it is another agent with a reachable peer address.
    fn remote_owner(&self, key: &RangeKey) -> Option<Member> {
        if !self.inner.peers.enabled() {
            return None;
        }
        let ring = self.ring();
        let owner = ring.owner(key.name().as_bytes())?;
        (owner.agent_id != self.inner.options.agent_id && !owner.peer_address.is_empty())
            .then(|| owner.clone())
    }

    async fn via_peer(&self, owner: Member, key: &RangeKey) -> Result<RangeData, ZoneError> {
        // A flight that just finished may have filled memory.
        if let Some(data) = self.memory_get(key) {
            return Ok(data);
        }
        match self.inner.peers.get_range(&owner, key).await {
            Ok(data) => {
                self.inner.metrics.hit(PEER);
                self.memory_put(key, &data);
                Ok(data)
            }
            Err(peer::PeerSkipped) => {
                self.inner.metrics.miss(PEER);
                self.inner.metrics.fallbacks.inc();
                self.local_after_memory(key).await
            }
        }
    }

    /// Disk, then bucket, coalesced; the result is kept in memory (and on disk).
    async fn local_after_memory(&self, key: &RangeKey) -> Result<RangeData, ZoneError> {
        let (result, joined) = self
            .inner
            .local_flight
            .run(key.clone(), || self.load_local(key))
            .await;
        if joined {
            self.inner
                .metrics
                .coalesced
                .get_or_create(&metrics::TierLabel { tier: "local" })
                .inc();
        }
        result
    }

    async fn load_local(&self, key: &RangeKey) -> Result<RangeData, ZoneError> {
        if let Some(data) = self.memory_get(key) {
            return Ok(data);
        }
        if let Some(disk) = &self.inner.disk {
            match disk.get(&key.name()).await {
                DiskRead::Hit(bytes, object_len) => {
                    self.inner.metrics.hit(DISK);
                    let data = RangeData { bytes, object_len };
                    self.memory_put(key, &data);
                    return Ok(data);
                }
                DiskRead::Miss => self.inner.metrics.miss(DISK),
                DiskRead::Corrupt => {
                    self.inner.metrics.miss(DISK);
                    self.inner.metrics.disk_corrupt.inc();
                }
            }
        }
        let data = self.read_bucket(key).await?;
        self.memory_put(key, &data);
        self.disk_put(key, &data);
        Ok(data)
    }

    async fn read_bucket(&self, key: &RangeKey) -> Result<RangeData, ZoneError> {
        let path = Path::parse(&key.object).map_err(|_| ZoneError::BadKey(key.object.clone()))?;
        match &key.range {
            RangeSpec::Bounded(range) => {
                let bytes = self.inner.bucket.get_range(&path, range.clone()).await?;
                self.inner.reader_metrics.got(CHUNKS, bytes.len());
                Ok(RangeData {
                    bytes,
                    object_len: 0,
                })
            }
            RangeSpec::Suffix(n) => {
                let store_err = |source| ZoneError::Store {
                    key: key.object.clone(),
                    source,
                };
                let options = GetOptions {
                    range: Some(GetRange::Suffix(*n)),
                    ..GetOptions::default()
                };
                let result = self
                    .inner
                    .bucket
                    .store()
                    .get_opts(&path, options)
                    .await
                    .map_err(store_err)?;
                let object_len = result.meta.size;
                let bytes = result.bytes().await.map_err(store_err)?;
                self.inner.reader_metrics.got(FOOTERS, bytes.len());
                Ok(RangeData { bytes, object_len })
            }
        }
    }

    fn memory_get(&self, key: &RangeKey) -> Option<RangeData> {
        self.inner.memory.lock().get(key)
    }

    fn memory_put(&self, key: &RangeKey, data: &RangeData) {
        let mut memory = self.inner.memory.lock();
        memory.insert(key.clone(), data.clone(), key.weight(data));
        self.inner.metrics.memory_bytes.set(memory.weight() as i64);
    }

    /// Writes the range to disk in the background (skipped when many writes are
    /// already pending: the disk is a cache, the bucket still has the bytes).
    fn disk_put(&self, key: &RangeKey, data: &RangeData) {
        let Some(disk) = self.inner.disk.clone() else {
            return;
        };
        let Ok(permit) = self.inner.disk_writes.clone().try_acquire_owned() else {
            return;
        };
        let (name, data, metrics) = (key.name(), data.clone(), self.inner.metrics.clone());
        tokio::spawn(async move {
            if !disk.put(&name, &data.bytes, data.object_len).await {
                metrics.disk_write_failures.inc();
            }
            metrics.disk_bytes.set(disk.bytes() as i64);
            drop(permit);
        });
    }

    /// Keeps the ring in step with the registry: this zone's proxy-consume agents,
    /// asked every `ring_refresh` until `shutdown`.
    pub async fn run_membership(
        self,
        cp: ControlPlaneClient,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), std::convert::Infallible> {
        let mut failing = false;
        tokio::pin!(shutdown);
        loop {
            let listed = cp.list_agents(RING_ROLE, &self.inner.options.zone).await;
            match listed {
                Ok(agents) => {
                    if failing {
                        tracing::info!("zone cache ring refresh works again");
                        failing = false;
                    }
                    let members = ring_members(&self.inner.options.agent_id, agents);
                    self.set_ring(Ring::new(members));
                }
                Err(error) if !failing => {
                    tracing::warn!(error = %error.message(), "zone cache ring refresh failed; keeping the last ring");
                    failing = true;
                }
                Err(_) => {}
            }
            tokio::select! {
                () = &mut shutdown => break,
                () = tokio::time::sleep(self.inner.options.ring_refresh) => {}
            }
        }
        Ok(())
    }
}

/// The ring's members among the registry's agents: those with a peer address, except
/// earlier incarnations of this agent. A restarted agent registers under a new id
/// while its previous registration stays listed until its lease runs out, with the
/// same peer address (one address, one live process); keeping it would send the ranges
/// it "owns" through this agent's own peer port (measured: the cold consume pass right
/// after a restart read half its chunks that way, 4 MiB each through HTTP/2 flow
/// control, tens of ms per chunk).
fn ring_members(own_id: &str, agents: Vec<v1::AgentInfo>) -> Vec<Member> {
    let own_address = agents
        .iter()
        .find(|a| a.agent_id == own_id && !a.peer_address.is_empty())
        .map(|a| a.peer_address.clone());
    agents
        .into_iter()
        .filter(|a| !a.peer_address.is_empty())
        .filter(|a| a.agent_id == own_id || own_address.as_deref() != Some(a.peer_address.as_str()))
        .map(|a| Member {
            agent_id: a.agent_id,
            peer_address: a.peer_address,
        })
        .collect()
}

#[cfg(test)]
mod tests;
