//! Leader election among control-plane replicas that share one etcd.
//!
//! Sequencing needs one writer: several `infinistream control-plane` replicas run for
//! availability, but only the leader commits; followers forward to it. The leader is
//! whoever holds the leader key, created if absent and attached to an etcd lease that
//! the holder keeps alive. When the holder dies or is cut off, the lease expires, etcd
//! deletes the key, and the next candidate (watching for that delete) creates it.
//!
//! Timing alone never decides safety. A deposed leader may not know yet that its lease
//! expired (a GC pause, a partition), so every write it makes carries a **fence**: a
//! compare that the leader key still has the revision it had when this leader created
//! it. Once another replica has taken over, the key was deleted and re-created with a
//! higher revision, so the old leader's transactions fail atomically in etcd. Use
//! [`Leadership::fenced_store`] to wrap the store so every transaction is fenced; a
//! fenced-out transaction returns [`StoreError::Unavailable`] and flips
//! [`Leadership::lost`].
//!
//! The leader key lives in the store's own key space ([`LEADER_KEY_PREFIX`]), so the
//! fence is an ordinary [`Compare`]. Its value is the leader's advertised address, which
//! [`LeaderElection::current_leader`] and [`LeaderElection::watch_leader`] return so
//! followers know where to forward.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use etcd_client::{
    Compare as EtcdCompare, CompareOp, EventType, PutOptions, Txn, TxnOp, TxnOpResponse,
    WatchOptions,
};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep, timeout, timeout_at};

use crate::store::etcd::{EtcdStore, classify};
use crate::store::{Compare, KeyValue, MetaStore, Op, StoreError, TxnLimits, TxnOutcome};

/// Store keys of leader records: `_leader/<election name>`.
pub const LEADER_KEY_PREFIX: &[u8] = b"_leader/";

/// etcd refuses lease TTLs below about 1.5 s (three election ticks); use at least 2 s.
const MIN_TTL: Duration = Duration::from_secs(2);

/// Delay before retrying a failed watch or keep-alive stream.
pub(super) const RETRY_DELAY: Duration = Duration::from_millis(200);

/// The current leader as recorded in etcd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderInfo {
    /// The address the leader advertised (where followers forward requests).
    pub address: String,
    /// The leader key's revision: the fencing token of that leadership term. Strictly
    /// larger for every later term.
    pub revision: i64,
}

impl LeaderInfo {
    fn from_kv(kv: &KeyValue) -> LeaderInfo {
        LeaderInfo {
            address: String::from_utf8_lossy(&kv.value).into_owned(),
            revision: kv.mod_revision,
        }
    }
}

/// One named election on an etcd store.
#[derive(Debug, Clone)]
pub struct LeaderElection {
    store: EtcdStore,
    key: Vec<u8>,
    ttl: Duration,
}

impl LeaderElection {
    /// An election called `name` (e.g. `control-plane`) whose leaders hold a lease of
    /// `ttl` (rounded up to whole seconds, at least 2 s). A leader that stops renewing is
    /// replaced within about `ttl`.
    pub fn new(store: &EtcdStore, name: &str, ttl: Duration) -> LeaderElection {
        let mut key = LEADER_KEY_PREFIX.to_vec();
        key.extend_from_slice(name.as_bytes());
        LeaderElection {
            store: store.clone(),
            key,
            ttl: ttl.max(MIN_TTL),
        }
    }

    /// The store key of the leader record (for fences and reads).
    pub fn key(&self) -> &[u8] {
        &self.key
    }

    fn ttl_secs(&self) -> i64 {
        let secs = self.ttl.as_secs() + u64::from(self.ttl.subsec_nanos() > 0);
        i64::try_from(secs).unwrap_or(i64::MAX)
    }

    /// The current leader, if any.
    pub async fn current_leader(&self) -> Result<Option<LeaderInfo>, StoreError> {
        Ok(self
            .store
            .get(&self.key)
            .await?
            .map(|kv| LeaderInfo::from_kv(&kv)))
    }

    /// Ends the term of `leader` without waiting for its lease to expire, when it is
    /// still the term on record: revokes that term's lease, so etcd deletes the key and
    /// the next candidate takes over at once. For a leader known to be dead (its port
    /// refuses connections, or it is this replica's own previous process). Safe even if
    /// the judgement is wrong: a leader that is in fact alive finds its fence broken and
    /// steps down; nothing it writes after the revoke is applied. Returns whether a
    /// lease was revoked.
    pub async fn depose(&self, leader: &LeaderInfo) -> Result<bool, StoreError> {
        let request_timeout = self.store.options().request_timeout;
        let etcd_key = self.store.etcd_key(&self.key);
        let mut kv = self.store.client().kv_client();
        let resp = timeout(request_timeout, kv.get(etcd_key, None))
            .await
            .map_err(|_| StoreError::Unavailable("etcd get timed out".to_owned()))?
            .map_err(classify)?;
        let Some(current) = resp.kvs().first() else {
            return Ok(false);
        };
        if current.mod_revision() != leader.revision || current.lease() == 0 {
            // Another term already (or a key without a lease): nothing to depose.
            return Ok(false);
        }
        let lease = current.lease();
        let mut leases = self.store.client().lease_client();
        match timeout(request_timeout, leases.revoke(lease)).await {
            Err(_) => Err(StoreError::Unavailable(
                "etcd lease revoke timed out".to_owned(),
            )),
            // Already expired or revoked: the term is over either way.
            Ok(Err(etcd_client::Error::GRpcStatus(status)))
                if status.code() == tonic::Code::NotFound =>
            {
                Ok(false)
            }
            Ok(Err(e)) => Err(classify(e)),
            Ok(Ok(_)) => {
                tracing::warn!(
                    lease,
                    term = leader.revision,
                    address = %leader.address,
                    "deposed a dead control-plane leader: revoked its lease"
                );
                Ok(true)
            }
        }
    }

    /// Waits until this candidate is the leader, advertising `address`, and returns the
    /// leadership. The lease is kept alive from the start, so a waiting candidate's
    /// lease never lapses. Cancelling this future abandons the candidacy (the lease
    /// then expires on its own).
    pub async fn campaign(&self, address: &str) -> Result<Leadership, StoreError> {
        let request_timeout = self.store.options().request_timeout;
        let mut leases = self.store.client().lease_client();
        let grant = timeout(request_timeout, leases.grant(self.ttl_secs(), None))
            .await
            .map_err(|_| StoreError::Unavailable("etcd lease grant timed out".to_owned()))?
            .map_err(classify)?;
        let lease = grant.id();
        let (lost_tx, lost_rx) = watch::channel(false);
        let mut tasks = Tasks(Vec::new());
        tasks.0.push(tokio::spawn(keep_alive(
            self.store.clone(),
            lease,
            Duration::from_secs(u64::try_from(grant.ttl()).unwrap_or(2)),
            lost_tx.clone(),
        )));
        tracing::debug!(lease, address, "campaigning for leadership");

        let etcd_key = self.store.etcd_key(&self.key);
        let revision = loop {
            if *lost_rx.borrow() {
                return Err(StoreError::Unavailable(
                    "lease lost while campaigning for leadership".to_owned(),
                ));
            }
            let txn = Txn::new()
                .when([EtcdCompare::create_revision(
                    etcd_key.clone(),
                    CompareOp::Equal,
                    0,
                )])
                .and_then([TxnOp::put(
                    etcd_key.clone(),
                    address.as_bytes().to_vec(),
                    Some(PutOptions::new().with_lease(lease)),
                )])
                .or_else([TxnOp::get(etcd_key.clone(), None)]);
            let mut kv = self.store.client().kv_client();
            let resp = match timeout(request_timeout, kv.txn(txn)).await {
                Ok(Ok(resp)) => resp,
                Ok(Err(e)) => return Err(classify(e)),
                Err(_) => {
                    // The create may have been applied; the next round finds out by the
                    // lease on the key.
                    tracing::warn!("leader campaign txn timed out; retrying");
                    continue;
                }
            };
            if resp.succeeded() {
                break resp.header().map(|h| h.revision()).ok_or_else(|| {
                    StoreError::Backend("etcd txn response without a header".to_owned())
                })?;
            }
            let holder = resp.op_responses().into_iter().find_map(|r| match r {
                TxnOpResponse::Get(get) => get.kvs().first().cloned(),
                _ => None,
            });
            let Some(holder) = holder else { continue };
            if holder.lease() == lease {
                // Our own create, applied by an earlier attempt that timed out.
                break holder.create_revision();
            }
            tracing::debug!(
                leader = %String::from_utf8_lossy(holder.value()),
                "another replica leads; waiting for its key to go"
            );
            let mut lost = lost_rx.clone();
            tokio::select! {
                () = wait_for_delete(&self.store, &etcd_key, holder.mod_revision()) => {}
                _ = lost.wait_for(|lost| *lost) => {}
            }
        };

        tasks.0.push(tokio::spawn(watch_own_key(
            self.store.clone(),
            etcd_key,
            revision,
            lost_tx.clone(),
        )));
        tracing::info!(lease, revision, address, "became leader");
        Ok(Leadership {
            store: self.store.clone(),
            key: self.key.clone(),
            address: address.to_owned(),
            lease,
            revision,
            lost_tx,
            lost_rx,
            tasks,
        })
    }

    /// Follows the leader record: the receiver holds the current leader (or `None`
    /// between terms) and changes on every change. The background watch ends when every
    /// receiver is dropped.
    pub async fn watch_leader(&self) -> Result<watch::Receiver<Option<LeaderInfo>>, StoreError> {
        let current = self.current_leader().await?;
        let (tx, rx) = watch::channel(current);
        let store = self.store.clone();
        let key = self.key.clone();
        tokio::spawn(async move {
            tokio::select! {
                () = follow_leader(store, key, &tx) => {}
                () = tx.closed() => {}
            }
        });
        Ok(rx)
    }
}

/// The leader's handle on its term. Dropping it stops renewing the lease (the key
/// expires after the TTL, as if this replica had crashed); [`Leadership::resign`] hands
/// over at once.
#[derive(Debug)]
pub struct Leadership {
    store: EtcdStore,
    key: Vec<u8>,
    address: String,
    lease: i64,
    revision: i64,
    lost_tx: watch::Sender<bool>,
    lost_rx: watch::Receiver<bool>,
    tasks: Tasks,
}

impl Leadership {
    /// The etcd lease this term is attached to.
    pub fn lease_id(&self) -> i64 {
        self.lease
    }

    /// The fencing token: the leader key's create revision.
    pub fn fencing_revision(&self) -> i64 {
        self.revision
    }

    /// The address this leader advertised.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// The compare that holds only while this term is current. Add it to every write
    /// transaction (or use [`Leadership::fenced_store`]).
    pub fn fence(&self) -> Compare {
        Compare::ModRevision {
            key: self.key.clone(),
            revision: Some(self.revision),
        }
    }

    /// True once the term is known to be over (lease expired or unrenewable, key gone
    /// or replaced, or a fenced write failed on the fence).
    pub fn is_lost(&self) -> bool {
        *self.lost_rx.borrow()
    }

    /// Resolves when the term is over; stop serving writes then.
    pub fn lost(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = self.lost_rx.clone();
        async move {
            // A closed channel means the tasks are gone: treat as lost too.
            let _ = rx.wait_for(|lost| *lost).await;
        }
    }

    /// Wraps `store` so every transaction carries this term's fence.
    pub fn fenced_store(&self, store: Arc<dyn MetaStore>) -> FencedStore {
        FencedStore {
            inner: store,
            fence: self.fence(),
            key: self.key.clone(),
            revision: self.revision,
            lost_tx: self.lost_tx.clone(),
        }
    }

    /// Ends the term now: revokes the lease, which deletes the leader key, so the next
    /// candidate takes over without waiting for the TTL.
    pub async fn resign(self) -> Result<(), StoreError> {
        self.tasks.abort();
        self.lost_tx.send_replace(true);
        let mut leases = self.store.client().lease_client();
        timeout(
            self.store.options().request_timeout,
            leases.revoke(self.lease),
        )
        .await
        .map_err(|_| StoreError::Unavailable("etcd lease revoke timed out".to_owned()))?
        .map_err(classify)?;
        tracing::info!(lease = self.lease, "resigned leadership");
        Ok(())
    }
}

/// A [`MetaStore`] whose transactions only apply while a leadership term is current.
#[derive(Debug, Clone)]
pub struct FencedStore {
    inner: Arc<dyn MetaStore>,
    fence: Compare,
    key: Vec<u8>,
    revision: i64,
    lost_tx: watch::Sender<bool>,
}

#[async_trait]
impl MetaStore for FencedStore {
    async fn get(&self, key: &[u8]) -> Result<Option<KeyValue>, StoreError> {
        self.inner.get(key).await
    }

    async fn range(
        &self,
        start: &[u8],
        end: &[u8],
        limit: usize,
    ) -> Result<Vec<KeyValue>, StoreError> {
        self.inner.range(start, end, limit).await
    }

    fn txn_limits(&self) -> TxnLimits {
        self.inner.txn_limits()
    }

    /// Adds the fence. When the transaction fails, tells a failed fence (an error: this
    /// replica is no longer the leader) from the caller's own compares failing (`Ok`
    /// with `succeeded: false`).
    async fn txn(
        &self,
        mut compares: Vec<Compare>,
        ops: Vec<Op>,
    ) -> Result<TxnOutcome, StoreError> {
        compares.push(self.fence.clone());
        let outcome = self.inner.txn(compares, ops).await?;
        if outcome.succeeded {
            return Ok(outcome);
        }
        let holder = self.inner.get(&self.key).await?;
        if holder.as_ref().map(|kv| kv.mod_revision) == Some(self.revision) {
            return Ok(outcome);
        }
        self.lost_tx.send_replace(true);
        let leader = holder.map(|kv| LeaderInfo::from_kv(&kv).address);
        tracing::warn!(
            revision = self.revision,
            ?leader,
            "write refused: no longer the leader"
        );
        Err(StoreError::Unavailable(format!(
            "not the leader any more (term {} is over); leader is at: {}",
            self.revision,
            leader.as_deref().unwrap_or("unknown")
        )))
    }
}

/// Background tasks of a term, aborted when it ends.
#[derive(Debug)]
pub(super) struct Tasks(pub(super) Vec<JoinHandle<()>>);

impl Tasks {
    fn abort(&self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

impl Drop for Tasks {
    fn drop(&mut self) {
        self.abort();
    }
}

/// Renews `lease` every third of its TTL. Signals `lost` when etcd says the lease is
/// gone, or when no renewal succeeded for a whole TTL (it may have expired).
async fn keep_alive(store: EtcdStore, lease: i64, ttl: Duration, lost: watch::Sender<bool>) {
    let interval = ttl / 3;
    // Conservative: the lease's clock started before we got the grant answer.
    let mut expires = Instant::now() + ttl;
    loop {
        let mut leases = store.client().lease_client();
        let started = Instant::now();
        let stream = timeout_at(expires, leases.keep_alive(lease)).await;
        let (mut keeper, mut responses) = match stream {
            Err(_) => break,
            Ok(Err(etcd_client::Error::LeaseKeepAliveError(e))) => {
                tracing::warn!(lease, error = %e, "lease is gone");
                break;
            }
            Ok(Err(e)) => {
                tracing::warn!(lease, error = %e, "lease keep-alive stream failed; retrying");
                if timeout_at(expires, sleep(RETRY_DELAY)).await.is_err() {
                    break;
                }
                continue;
            }
            Ok(Ok(pair)) => pair,
        };
        // keep_alive() already renewed once.
        expires = started + ttl;
        loop {
            if timeout_at(expires, sleep(interval)).await.is_err() {
                break;
            }
            let sent = Instant::now();
            if keeper.keep_alive().await.is_err() {
                break;
            }
            match timeout_at(expires, responses.message()).await {
                Ok(Ok(Some(resp))) if resp.ttl() > 0 => {
                    expires = sent + Duration::from_secs(u64::try_from(resp.ttl()).unwrap_or(0));
                }
                Ok(Ok(Some(_))) => {
                    tracing::warn!(lease, "lease expired");
                    lost.send_replace(true);
                    return;
                }
                _ => break,
            }
        }
        if Instant::now() >= expires {
            break;
        }
    }
    tracing::warn!(lease, "could not renew the leader lease within its ttl");
    lost.send_replace(true);
}

/// Returns once `etcd_key` is deleted at or after `revision` (or the watch fails, so
/// the caller re-checks).
async fn wait_for_delete(store: &EtcdStore, etcd_key: &[u8], revision: i64) {
    let mut watches = store.client().watch_client();
    let options = WatchOptions::new().with_start_revision(revision + 1);
    let Ok(mut stream) = watches.watch(etcd_key.to_vec(), Some(options)).await else {
        sleep(RETRY_DELAY).await;
        return;
    };
    loop {
        match stream.message().await {
            Ok(Some(resp)) => {
                if resp.canceled() {
                    return;
                }
                if resp
                    .events()
                    .iter()
                    .any(|e| e.event_type() == EventType::Delete)
                {
                    return;
                }
            }
            _ => {
                sleep(RETRY_DELAY).await;
                return;
            }
        }
    }
}

/// Signals `lost` when the leader key created at `revision` is deleted or replaced.
async fn watch_own_key(
    store: EtcdStore,
    etcd_key: Vec<u8>,
    revision: i64,
    lost: watch::Sender<bool>,
) {
    let mut from = revision + 1;
    loop {
        let mut watches = store.client().watch_client();
        let options = WatchOptions::new().with_start_revision(from);
        if let Ok(mut stream) = watches.watch(etcd_key.clone(), Some(options)).await {
            while let Ok(Some(resp)) = stream.message().await {
                if resp.canceled() {
                    break;
                }
                for event in resp.events() {
                    let replaced = event.kv().map(|kv| kv.create_revision() != revision);
                    if event.event_type() == EventType::Delete || replaced == Some(true) {
                        tracing::warn!(revision, "leader key deleted or replaced: term over");
                        lost.send_replace(true);
                        return;
                    }
                    if let Some(kv) = event.kv() {
                        from = from.max(kv.mod_revision() + 1);
                    }
                }
            }
        }
        // The watch broke: check directly, then watch again.
        match store.client().kv_client().get(etcd_key.clone(), None).await {
            Ok(resp) => {
                let current = resp.kvs().first().map(|kv| kv.create_revision());
                if current != Some(revision) {
                    tracing::warn!(revision, "leader key gone: term over");
                    lost.send_replace(true);
                    return;
                }
                if let Some(header) = resp.header() {
                    from = from.max(header.revision() + 1);
                }
            }
            Err(e) => tracing::debug!(error = %e, "leader key check failed; retrying"),
        }
        sleep(RETRY_DELAY).await;
    }
}

/// Keeps `tx` equal to the leader record, re-reading and re-watching after failures.
async fn follow_leader(store: EtcdStore, key: Vec<u8>, tx: &watch::Sender<Option<LeaderInfo>>) {
    let etcd_key = store.etcd_key(&key);
    loop {
        let mut kv = store.client().kv_client();
        let from = match kv.get(etcd_key.clone(), None).await {
            Ok(resp) => {
                let leader = resp.kvs().first().map(|kv| LeaderInfo {
                    address: String::from_utf8_lossy(kv.value()).into_owned(),
                    revision: kv.mod_revision(),
                });
                tx.send_if_modified(|current| replace_if_changed(current, leader));
                resp.header().map(|h| h.revision() + 1).unwrap_or(0)
            }
            Err(e) => {
                tracing::debug!(error = %e, "reading the leader failed; retrying");
                sleep(RETRY_DELAY).await;
                continue;
            }
        };
        let mut watches = store.client().watch_client();
        let options = WatchOptions::new().with_start_revision(from);
        if let Ok(mut stream) = watches.watch(etcd_key.clone(), Some(options)).await {
            while let Ok(Some(resp)) = stream.message().await {
                if resp.canceled() {
                    break;
                }
                for event in resp.events() {
                    let leader = match event.event_type() {
                        EventType::Delete => None,
                        EventType::Put => event.kv().map(|kv| LeaderInfo {
                            address: String::from_utf8_lossy(kv.value()).into_owned(),
                            revision: kv.mod_revision(),
                        }),
                    };
                    tx.send_if_modified(|current| replace_if_changed(current, leader));
                }
            }
        }
        sleep(RETRY_DELAY).await;
    }
}

fn replace_if_changed(current: &mut Option<LeaderInfo>, next: Option<LeaderInfo>) -> bool {
    if *current == next {
        return false;
    }
    *current = next;
    true
}
