//! The agent's view of the group's streams.
//!
//! The control plane is the truth; every agent keeps a copy of the stream configs it
//! needs on hot paths (which subjects to capture for publishing, whether direct get is
//! allowed) so a publish never waits on a metadata round trip. The copy is updated
//! right after this agent changes a stream, and follows changes made through other
//! agents from the agent's one `WatchStreams` subscription ([`StreamCatalog::follow`]):
//! a stream created, updated or deleted is taken from the event, which carries its
//! config (reloaded alone with `StreamInfo` when it does not, or when this agent changed
//! the stream itself and holds something else), and the whole
//! list is loaded (`ListStreams`) only when the watch (re)starts — at start-up, after a
//! reconnect or a leader change — or reports a gap. An idle group costs the control
//! plane nothing for the catalog but the open watch. Consumers of the catalog watch
//! its version to reconcile.
//!
//! A stream created, updated or deleted through this agent is answered only once the
//! agent's subject subscriptions follow the change ([`StreamCatalog::settled`]): a
//! client that publishes right after the API reply reaches the new stream, never the
//! deleted one that had the same subjects.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use infinistream_broker::{Broker, InternalMsg, SubscriptionCloser};

use infinistream_cp_client::{CallError, ControlPlaneClient, WatchSubscription, Watched};
use infinistream_proto::v1;
use infinistream_protocol::jsapi::codes;
use infinistream_protocol::jsapi::stream::StreamConfig;
use parking_lot::RwLock;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::convert;

/// Wait before retrying a resync that failed.
const RESYNC_RETRY: Duration = Duration::from_secs(1);
/// More streams changed at once than this are reloaded with one `ListStreams`.
const MAX_SINGLE_RELOADS: usize = 32;
/// Listing period when the control plane refuses the watch.
const POLL_FALLBACK: Duration = Duration::from_secs(1);
/// Catalog changes remembered for followers that reconcile only what changed; a
/// follower further behind reconciles every stream.
const JOURNAL_LEN: usize = 4096;

/// One stream as the catalog knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamEntry {
    pub name: Arc<str>,
    pub config: Arc<StreamConfig>,
}

/// The catalog's map plus what this agent changed itself and when.
#[derive(Debug, Default)]
struct Streams {
    by_name: BTreeMap<String, StreamEntry>,
    /// Stream → number of this agent's last change to it (create, update, delete),
    /// kept until a control-plane list requested after it has been applied: a list
    /// requested before the change must not undo it (a just-created stream would lose
    /// its subscriptions until the next refresh).
    local: HashMap<String, u64>,
    /// Numbers this agent's changes.
    local_epoch: u64,
    /// The catalog's version (each change adds one), published through
    /// [`StreamCatalog::watch`] after the change is in place.
    version: u64,
    /// The last [`JOURNAL_LEN`] versions: the stream each changed, or `None` for a
    /// change of the whole list, so a follower reconciles only what changed.
    journal: VecDeque<(u64, Option<Arc<str>>)>,
}

impl Streams {
    /// Counts one change (of `stream`, or of the whole list) and returns its version.
    fn note(&mut self, stream: Option<&str>) -> u64 {
        self.version += 1;
        if self.journal.len() == JOURNAL_LEN {
            self.journal.pop_front();
        }
        self.journal
            .push_back((self.version, stream.map(Arc::from)));
        self.version
    }

    /// The streams changed after `since`, or `None` when the journal no longer reaches
    /// back that far or a whole list changed since.
    fn changed_since(&self, since: u64) -> Option<BTreeSet<Arc<str>>> {
        if since >= self.version {
            return Some(BTreeSet::new());
        }
        let oldest = self.journal.front().map_or(u64::MAX, |(v, _)| *v);
        if oldest > since + 1 {
            return None;
        }
        self.journal
            .iter()
            .filter(|(v, _)| *v > since)
            .map(|(_, name)| name.clone())
            .collect()
    }
}

/// Shared, cheaply cloned catalog of the group's streams.
#[derive(Debug, Clone)]
pub struct StreamCatalog {
    streams: Arc<RwLock<Streams>>,
    version: Arc<watch::Sender<u64>>,
    /// Per follower of the catalog (see [`serve_stream_subjects`]), the last version
    /// whose subjects it serves.
    served: Arc<watch::Sender<BTreeMap<u64, u64>>>,
    next_follower: Arc<AtomicU64>,
    /// Whether a whole list has been loaded once.
    loaded: Arc<watch::Sender<bool>>,
}

impl Default for StreamCatalog {
    fn default() -> Self {
        Self::new()
    }
}

impl StreamCatalog {
    pub fn new() -> Self {
        let (tx, _rx) = watch::channel(0);
        let (served, _rx) = watch::channel(BTreeMap::new());
        StreamCatalog {
            streams: Arc::new(RwLock::new(Streams::default())),
            version: Arc::new(tx),
            served: Arc::new(served),
            next_follower: Arc::new(AtomicU64::new(0)),
            loaded: Arc::new(watch::channel(false).0),
        }
    }

    /// Waits (at most `timeout`) until the control plane's list of streams has been
    /// loaded once; returns whether it was.
    pub async fn loaded(&self, timeout: Duration) -> bool {
        let mut loaded = self.loaded.subscribe();
        tokio::time::timeout(timeout, loaded.wait_for(|l| *l))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Waits (at most `timeout`) until every follower serves the catalog as it is now;
    /// returns at once when nothing follows it. Returns whether they caught up.
    pub async fn settled(&self, timeout: Duration) -> bool {
        let version = *self.version.borrow();
        let mut served = self.served.subscribe();
        tokio::time::timeout(
            timeout,
            served.wait_for(|followers| followers.values().all(|v| *v >= version)),
        )
        .await
        .is_ok_and(|r| r.is_ok())
    }

    /// Registers a follower; it reports with [`Follower::served`] and leaves on drop.
    fn register_follower(&self) -> Follower {
        let id = self.next_follower.fetch_add(1, Ordering::Relaxed);
        self.served.send_modify(|f| {
            f.insert(id, 0);
        });
        Follower {
            id,
            served: self.served.clone(),
        }
    }

    /// Every stream, by name.
    pub fn snapshot(&self) -> Vec<StreamEntry> {
        self.streams.read().by_name.values().cloned().collect()
    }

    /// One stream.
    pub fn get(&self, name: &str) -> Option<StreamEntry> {
        self.streams.read().by_name.get(name).cloned()
    }

    /// A receiver that changes whenever the catalog does.
    pub fn watch(&self) -> watch::Receiver<u64> {
        self.version.subscribe()
    }

    /// Publishes `version` (noted under the lock) to the watchers; concurrent changes
    /// may publish out of order, so the watch only ever moves forward.
    fn publish(&self, version: u64) {
        self.version.send_if_modified(|v| {
            let newer = version > *v;
            if newer {
                *v = version;
            }
            newer
        });
    }

    /// The streams changed after version `since` (see [`Streams::changed_since`]).
    fn changed_since(&self, since: u64) -> Option<BTreeSet<Arc<str>>> {
        self.streams.read().changed_since(since)
    }

    /// Records a stream created or updated through this agent.
    pub fn upsert(&self, config: StreamConfig) {
        self.upsert_as(config.name.clone(), config);
    }

    /// Records a stream created or updated through this agent under its control-plane
    /// id (`<account>.<name>` for a stream of an account that does not own the bare
    /// ids, see [`crate::JsAccount`]).
    pub fn upsert_as(&self, name: String, config: StreamConfig) {
        let entry = StreamEntry {
            name: Arc::from(name.as_str()),
            config: Arc::new(config),
        };
        let changed = {
            let mut streams = self.streams.write();
            streams.local_epoch += 1;
            let epoch = streams.local_epoch;
            streams.local.insert(name.clone(), epoch);
            let changed = streams.by_name.get(&name) != Some(&entry);
            let version = changed.then(|| streams.note(Some(&name)));
            streams.by_name.insert(name, entry);
            version
        };
        if let Some(version) = changed {
            self.publish(version);
        }
    }

    /// Records a stream deleted through this agent.
    pub fn remove(&self, name: &str) {
        let removed = {
            let mut streams = self.streams.write();
            streams.local_epoch += 1;
            let epoch = streams.local_epoch;
            streams.local.insert(name.to_owned(), epoch);
            let removed = streams.by_name.remove(name).is_some();
            removed.then(|| streams.note(Some(name)))
        };
        if let Some(version) = removed {
            self.publish(version);
        }
    }

    /// Replaces the catalog with the control plane's list.
    pub fn replace(&self, streams: Vec<StreamConfig>) {
        let now = self.streams.read().local_epoch;
        let streams = streams.into_iter().map(|c| (c.name.clone(), c)).collect();
        self.replace_since(streams, now);
    }

    /// Replaces the catalog with a control-plane list requested when this agent's
    /// change counter was `asked_at`: streams this agent changed after that keep
    /// their local state (the list may predate the change).
    /// `streams`: (control-plane id, config).
    fn replace_since(&self, streams: Vec<(String, StreamConfig)>, asked_at: u64) {
        let mut next: BTreeMap<String, StreamEntry> = streams
            .into_iter()
            .map(|(id, cfg)| {
                (
                    id.clone(),
                    StreamEntry {
                        name: Arc::from(id),
                        config: Arc::new(cfg),
                    },
                )
            })
            .collect();
        let changed = {
            let mut current = self.streams.write();
            let current = &mut *current;
            current.local.retain(|name, epoch| {
                let newer = *epoch > asked_at;
                if newer {
                    match current.by_name.get(name) {
                        Some(entry) => {
                            next.insert(name.clone(), entry.clone());
                        }
                        None => {
                            next.remove(name);
                        }
                    }
                }
                newer
            });
            let changed = current.by_name != next;
            current.by_name = next;
            changed.then(|| current.note(None))
        };
        if let Some(version) = changed {
            self.publish(version);
        }
    }

    /// Loads the stream list from the control plane once.
    pub async fn refresh(&self, cp: &ControlPlaneClient) -> Result<(), CallError> {
        let asked_at = self.streams.read().local_epoch;
        let list = cp.list_streams("").await?;
        let mut configs = Vec::with_capacity(list.len());
        for info in list {
            let Some(config) = info.config.as_ref() else {
                continue;
            };
            match convert::stored_config(config) {
                Ok(cfg) => configs.push((config.name.clone(), cfg)),
                Err(error) => {
                    tracing::warn!(stream = %config.name, %error, "skipping a stream with an unreadable config");
                }
            }
        }
        self.replace_since(configs, asked_at);
        self.loaded.send_replace(true);
        Ok(())
    }

    /// Reloads one stream from the control plane (`StreamInfo`): its config now, or
    /// its removal when the control plane no longer has it. A change this agent made
    /// after asking keeps its local state.
    pub async fn refresh_stream(
        &self,
        cp: &ControlPlaneClient,
        name: &str,
    ) -> Result<(), CallError> {
        let asked_at = self.streams.read().local_epoch;
        let info = match cp.stream_info(name, false).await {
            Ok(info) => Some(info),
            Err(CallError::Refused { error, .. })
                if error.err_code == u32::from(codes::STREAM_NOT_FOUND.err_code) =>
            {
                None
            }
            Err(error) => return Err(error),
        };
        let config = match info.and_then(|info| info.config) {
            None => None,
            Some(config) => match convert::stored_config(&config) {
                Ok(config) => Some(config),
                Err(error) => {
                    tracing::warn!(stream = %name, %error, "skipping a stream with an unreadable config");
                    return Ok(());
                }
            },
        };
        self.apply_since(name, config, asked_at);
        Ok(())
    }

    /// Sets one stream (`None`: removes it) as the control plane had it when this
    /// agent's change counter was `asked_at`, unless this agent changed it since.
    fn apply_since(&self, name: &str, config: Option<StreamConfig>, asked_at: u64) {
        let changed = {
            let mut streams = self.streams.write();
            match streams.local.get(name) {
                Some(epoch) if *epoch > asked_at => return,
                Some(_) => {
                    streams.local.remove(name);
                }
                None => {}
            }
            let changed = match config {
                Some(config) => {
                    let entry = StreamEntry {
                        name: Arc::from(name),
                        config: Arc::new(config),
                    };
                    let changed = streams.by_name.get(name) != Some(&entry);
                    streams.by_name.insert(name.to_owned(), entry);
                    changed
                }
                None => streams.by_name.remove(name).is_some(),
            };
            changed.then(|| streams.note(Some(name)))
        };
        if let Some(version) = changed {
            self.publish(version);
        }
    }

    /// Applies a stream event that says what the stream now is (a config on CREATED
    /// and UPDATED, or DELETED), without asking the control plane: events arrive in
    /// commit order. Returns false when the stream must be reloaded instead: the event
    /// carries no config (an older control plane), or this agent changed the stream
    /// itself and holds something else (the event may predate that change).
    fn apply_event(&self, event: &v1::StreamEvent) -> bool {
        let name = event.stream.as_str();
        let config = match (event.kind(), &event.config) {
            (v1::StreamEventKind::StreamEventDeleted, _) => None,
            (_, Some(config)) => match convert::stored_config(config) {
                Ok(config) => Some(config),
                Err(_) => return false,
            },
            (_, None) => return false,
        };
        let version = {
            let mut streams = self.streams.write();
            let current = streams.by_name.get(name);
            let same = match (&config, current) {
                (Some(config), Some(entry)) => *entry.config == *config,
                (None, None) => true,
                _ => false,
            };
            if same {
                return true;
            }
            if streams.local.contains_key(name) {
                return false;
            }
            match config {
                Some(config) => {
                    let entry = StreamEntry {
                        name: Arc::from(name),
                        config: Arc::new(config),
                    };
                    streams.by_name.insert(name.to_owned(), entry);
                }
                None => {
                    streams.by_name.remove(name);
                }
            }
            streams.note(Some(name))
        };
        self.publish(version);
        true
    }

    /// Keeps the catalog in step with the control plane until `shutdown`, from
    /// `events`, a subscription to the agent's one stream watch (see the module doc):
    /// each SYNCED (the watch started or resynced after a reconnect or leader change)
    /// and each gap reloads the whole list, a stream created, updated or deleted is
    /// reloaded alone. Failures are logged, not fatal: the catalog serves what it knows
    /// and retries the list every [`RESYNC_RETRY`]. A control plane that refuses the
    /// watch is listed every second instead.
    pub async fn follow(
        self,
        cp: ControlPlaneClient,
        mut events: WatchSubscription,
        shutdown: CancellationToken,
    ) -> Result<(), std::convert::Infallible> {
        let mut resync = false;
        let mut failing = false;
        loop {
            let retry = async {
                if resync {
                    tokio::time::sleep(RESYNC_RETRY).await;
                } else {
                    std::future::pending::<()>().await;
                }
            };
            let first = tokio::select! {
                () = shutdown.cancelled() => return Ok(()),
                () = retry => None,
                item = events.next() => Some(item),
            };
            let mut changed = BTreeSet::new();
            if let Some(mut item) = first {
                // This event and whatever else is ready, handled in one go.
                loop {
                    match item {
                        // The shared watch is gone: the agent is stopping.
                        None => return Ok(()),
                        Some(Err(status)) => {
                            tracing::warn!(error = %status.message(), "stream watch refused; listing streams every {POLL_FALLBACK:?} instead");
                            return self.run_refresh(cp, POLL_FALLBACK, shutdown).await;
                        }
                        Some(Ok(Watched::Gap)) => resync = true,
                        Some(Ok(Watched::Event(event))) => match event.kind() {
                            v1::StreamEventKind::StreamEventSynced => resync = true,
                            v1::StreamEventKind::StreamEventCreated
                            | v1::StreamEventKind::StreamEventUpdated
                            | v1::StreamEventKind::StreamEventDeleted
                                if !self.apply_event(&event) =>
                            {
                                changed.insert(event.stream);
                            }
                            _ => {}
                        },
                    }
                    match events.try_next() {
                        Some(next) => item = Some(next),
                        None => break,
                    }
                }
            }
            if changed.len() > MAX_SINGLE_RELOADS {
                resync = true;
            }
            let result = if resync {
                self.refresh(&cp).await.map(|()| resync = false)
            } else {
                let mut result = Ok(());
                for name in &changed {
                    if let Err(status) = self.refresh_stream(&cp, name).await {
                        // The list reloads it, and anything else missed meanwhile.
                        resync = true;
                        result = Err(status);
                        break;
                    }
                }
                result
            };
            log_outcome(&mut failing, result);
        }
    }

    /// Refreshes every `period` until shutdown, logging (not failing) on errors, so a
    /// control-plane outage degrades to a stale catalog rather than a dead agent.
    pub async fn run_refresh(
        self,
        cp: ControlPlaneClient,
        period: Duration,
        shutdown: CancellationToken,
    ) -> Result<(), std::convert::Infallible> {
        let mut failing = false;
        loop {
            log_outcome(&mut failing, self.refresh(&cp).await);
            tokio::select! {
                () = shutdown.cancelled() => return Ok(()),
                () = tokio::time::sleep(period) => {}
            }
        }
    }
}

/// Logs a catalog reload's outcome once per outage: the first failure, and the recovery.
fn log_outcome(failing: &mut bool, result: Result<(), CallError>) {
    match result {
        Ok(()) if *failing => {
            tracing::info!("stream catalog in step with the control plane again");
            *failing = false;
        }
        Ok(()) => {}
        Err(status) if !*failing => {
            tracing::warn!(error = %status.message(), "stream catalog reload failed; serving the last known streams and retrying");
            *failing = true;
        }
        Err(_) => {}
    }
}

/// A task that keeps something in step with the catalog (see [`StreamCatalog::settled`]).
struct Follower {
    id: u64,
    served: Arc<watch::Sender<BTreeMap<u64, u64>>>,
}

impl Follower {
    fn served(&self, version: u64) {
        self.served.send_modify(|f| {
            f.insert(self.id, version);
        });
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        self.served.send_modify(|f| {
            f.remove(&self.id);
        });
    }
}

/// One served (stream, subject): its task, how to stop new messages at once, and how
/// to tell the task to finish what is queued.
struct Served {
    task: JoinHandle<()>,
    closer: SubscriptionCloser,
    stop: CancellationToken,
}

impl Served {
    /// Out of the subject index now; the task answers what was already queued, then ends.
    fn release(self) {
        self.closer.close();
        self.stop.cancel();
    }
}

/// Serves every subject of the catalog's streams: one internal broker subscription per
/// (stream, subject), each drained by its own task calling `serve(stream, msg)` (the
/// broker's subscription index does the matching, so a publish costs no lookup here).
/// Subscriptions follow the catalog until `shutdown`: added, removed, and replaced when
/// their task ended; a removed one leaves the subject index at once and its task still
/// serves what was queued before (so a publisher gets an answer, not silence). Each
/// catalog version is reported served once reconciled ([`StreamCatalog::settled`]).
/// Sealed streams are skipped unless `include_sealed`. `capacity` is each
/// subscription's channel size; a slow `serve` back-pressures only the publishing
/// connections of that subject. The follower is registered when this is called (not
/// when the future first runs), so a change made right after is waited for.
pub fn serve_stream_subjects<F, Fut>(
    broker: Broker,
    catalog: StreamCatalog,
    capacity: usize,
    include_sealed: bool,
    serve: F,
    shutdown: CancellationToken,
) -> impl Future<Output = Result<(), std::convert::Infallible>> + Send
where
    F: Fn(Arc<str>, InternalMsg) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send,
{
    let follower = catalog.register_follower();
    follow_stream_subjects(
        follower,
        broker,
        catalog,
        capacity,
        include_sealed,
        serve,
        shutdown,
    )
}

async fn follow_stream_subjects<F, Fut>(
    follower: Follower,
    broker: Broker,
    catalog: StreamCatalog,
    capacity: usize,
    include_sealed: bool,
    serve: F,
    shutdown: CancellationToken,
) -> Result<(), std::convert::Infallible>
where
    F: Fn(Arc<str>, InternalMsg) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send,
{
    let mut subjects = Subjects {
        served: HashMap::new(),
        broker,
        capacity,
        include_sealed,
        serve,
        shutdown: shutdown.clone(),
        ended: Arc::new(AtomicBool::new(false)),
    };
    let mut changes = catalog.watch();
    // The version last reconciled; `None` until every stream has been once.
    let mut reconciled: Option<u64> = None;
    loop {
        // Read the version before the catalog: a change after it wakes the loop again.
        let version = *changes.borrow_and_update();
        // Only the streams changed since the last pass, unless a task ended by itself
        // (its subject is served again) or the journal does not reach back.
        let ended = subjects.ended.swap(false, Ordering::AcqRel);
        let changed = reconciled
            .filter(|_| !ended)
            .and_then(|since| catalog.changed_since(since));
        match changed {
            Some(names) => {
                for name in names {
                    let entry = catalog.get(&name);
                    subjects.reconcile(&name, entry.as_ref());
                }
            }
            None => {
                let snapshot = catalog.snapshot();
                let listed: HashSet<&str> = snapshot.iter().map(|e| &*e.name).collect();
                let gone: Vec<Arc<str>> = subjects
                    .served
                    .keys()
                    .filter(|name| !listed.contains(&***name))
                    .cloned()
                    .collect();
                for name in gone {
                    subjects.reconcile(&name, None);
                }
                for entry in &snapshot {
                    subjects.reconcile(&entry.name, Some(entry));
                }
            }
        }
        reconciled = Some(version);
        follower.served(version);
        tokio::select! {
            () = shutdown.cancelled() => break,
            changed = changes.changed() => if changed.is_err() { break },
        }
    }
    for (_, by_subject) in subjects.served.drain() {
        for (_, s) in by_subject {
            s.closer.close();
            s.task.abort();
        }
    }
    Ok(())
}

/// What a follower of the catalog serves: per stream, per subject, its task.
struct Subjects<F> {
    served: HashMap<Arc<str>, HashMap<String, Served>>,
    broker: Broker,
    capacity: usize,
    include_sealed: bool,
    serve: F,
    shutdown: CancellationToken,
    /// Set when a task ended by itself (its subscription closed, or `serve` panicked).
    ended: Arc<AtomicBool>,
}

impl<F, Fut> Subjects<F>
where
    F: Fn(Arc<str>, InternalMsg) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send,
{
    /// Serves exactly `entry`'s subjects for stream `name` (none when it is gone or
    /// sealed and sealed streams are skipped), replacing tasks that ended.
    fn reconcile(&mut self, name: &Arc<str>, entry: Option<&StreamEntry>) {
        let wanted: &[String] = match entry {
            Some(e) if !e.config.sealed || self.include_sealed => &e.config.subjects,
            _ => &[],
        };
        if let Some(by_subject) = self.served.get_mut(name) {
            let gone: Vec<String> = by_subject
                .iter()
                .filter(|(subject, s)| !wanted.contains(subject) || s.task.is_finished())
                .map(|(subject, _)| subject.clone())
                .collect();
            for subject in gone {
                if let Some(s) = by_subject.remove(&subject) {
                    s.release();
                    tracing::debug!(stream = %name, %subject, "stream subject released");
                }
            }
            if by_subject.is_empty() {
                self.served.remove(name);
            }
        }
        for subject in wanted {
            if self
                .served
                .get(name)
                .is_some_and(|by_subject| by_subject.contains_key(subject))
            {
                continue;
            }
            if let Some(served) = self.start(name, subject) {
                self.served
                    .entry(name.clone())
                    .or_default()
                    .insert(subject.clone(), served);
            }
        }
    }

    /// Subscribes `subject` and starts the task serving it for `stream`.
    fn start(&self, stream: &Arc<str>, subject: &str) -> Option<Served> {
        let (home, _) = crate::account::stream_home(&self.broker, stream);
        let mut subscription = match home.subscribe_internal(subject, None, self.capacity) {
            Ok(subscription) => subscription,
            Err(error) => {
                tracing::warn!(%stream, %subject, %error, "cannot subscribe to a stream subject");
                return None;
            }
        };
        let (stream_name, serve) = (stream.clone(), self.serve.clone());
        let closer = subscription.closer();
        let stop = self.shutdown.child_token();
        let stopped = stop.clone();
        let mut alarm = EndAlarm(Some(self.ended.clone()));
        let task = tokio::spawn(async move {
            loop {
                tokio::select! {
                    biased;
                    msg = subscription.recv() => match msg {
                        Some(msg) => serve(stream_name.clone(), msg).await,
                        None => return,
                    },
                    () = stopped.cancelled() => break,
                }
            }
            // Released: answer what was queued before the subscription left.
            alarm.disarm();
            while let Some(msg) = subscription.try_recv() {
                serve(stream_name.clone(), msg).await;
            }
        });
        tracing::debug!(%stream, %subject, "stream subject served");
        Some(Served { task, closer, stop })
    }
}

/// Raises its flag when dropped armed: a serving task that ended other than by
/// being released.
struct EndAlarm(Option<Arc<AtomicBool>>);

impl EndAlarm {
    fn disarm(&mut self) {
        self.0 = None;
    }
}

impl Drop for EndAlarm {
    fn drop(&mut self) {
        if let Some(flag) = &self.0 {
            flag.store(true, Ordering::Release);
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn cfg(name: &str, subjects: &[&str]) -> StreamConfig {
        StreamConfig {
            name: name.into(),
            subjects: subjects.iter().map(|s| (*s).to_owned()).collect(),
            ..StreamConfig::default()
        }
    }

    #[tokio::test]
    async fn settled_without_followers_returns_at_once() {
        let catalog = StreamCatalog::new();
        catalog.upsert(cfg("A", &["a.>"]));
        assert!(catalog.settled(Duration::from_secs(5)).await);
    }

    /// Stream A on `x.>` is deleted and B created on the same subjects: once the change
    /// is settled, a publish reaches B only, and a message A had queued is still
    /// answered by A's task.
    #[tokio::test]
    async fn a_settled_change_moves_the_subjects_to_the_new_stream() {
        let broker = Broker::new(infinistream_broker::BrokerConfig::default());
        let catalog = StreamCatalog::new();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(Arc<str>, String)>();
        let (gate_tx, gate_rx) = tokio::sync::watch::channel(false);
        let shutdown = CancellationToken::new();
        let serve = move |stream: Arc<str>, msg: InternalMsg| {
            let (tx, mut gate) = (tx.clone(), gate_rx.clone());
            async move {
                // A's task holds its first message until the test opens the gate.
                if &*stream == "A" {
                    let _ = gate.wait_for(|open| *open).await;
                }
                let _ = tx.send((stream, msg.subject.into()));
            }
        };
        let task = tokio::spawn(serve_stream_subjects(
            broker.clone(),
            catalog.clone(),
            16,
            false,
            serve,
            shutdown.clone(),
        ));
        catalog.upsert(cfg("A", &["x.>"]));
        assert!(catalog.settled(Duration::from_secs(5)).await);
        broker.publish("x.1", None, None, Bytes::from_static(b"1"));
        broker.publish("x.2", None, None, Bytes::from_static(b"2"));

        catalog.remove("A");
        catalog.upsert(cfg("B", &["x.>"]));
        assert!(catalog.settled(Duration::from_secs(5)).await);
        broker.publish("x.3", None, None, Bytes::from_static(b"3"));
        assert_eq!(rx.recv().await, Some((Arc::from("B"), "x.3".to_owned())));

        // A's queued messages are answered after its release, by A.
        gate_tx.send_replace(true);
        let mut from_a = vec![rx.recv().await, rx.recv().await];
        from_a.sort();
        assert_eq!(
            from_a,
            vec![
                Some((Arc::from("A"), "x.1".to_owned())),
                Some((Arc::from("A"), "x.2".to_owned())),
            ]
        );
        shutdown.cancel();
        let _ = task.await;
        assert!(rx.try_recv().is_err(), "no message was served twice");
    }

    /// A list requested before this agent created B and deleted A must not undo
    /// either; a list requested after both is taken as it is.
    #[test]
    fn a_list_older_than_a_local_change_does_not_undo_it() {
        let catalog = StreamCatalog::new();
        catalog.upsert(cfg("A", &["a"]));
        let asked_at = catalog.streams.read().local_epoch;
        catalog.upsert(cfg("B", &["b"]));
        catalog.remove("A");
        catalog.replace_since(
            vec![
                ("A".into(), cfg("A", &["a"])),
                ("C".into(), cfg("C", &["c"])),
            ],
            asked_at,
        );
        let mut names: Vec<_> = catalog
            .snapshot()
            .iter()
            .map(|e| e.name.to_string())
            .collect();
        names.sort();
        assert_eq!(names, ["B", "C"]);
        let asked_at = catalog.streams.read().local_epoch;
        catalog.replace_since(vec![("C".into(), cfg("C", &["c"]))], asked_at);
        let names: Vec<_> = catalog
            .snapshot()
            .iter()
            .map(|e| e.name.to_string())
            .collect();
        assert_eq!(names, ["C"], "B was deleted through another agent");
        assert!(
            catalog.streams.read().local.is_empty(),
            "applied changes are forgotten"
        );
    }

    /// A single-stream reload requested before this agent changed the stream keeps the
    /// local change; one requested after it is taken, and forgets the local mark.
    #[test]
    fn a_stream_reload_older_than_a_local_change_does_not_undo_it() {
        let catalog = StreamCatalog::new();
        let asked_at = catalog.streams.read().local_epoch;
        catalog.upsert(cfg("A", &["a.new"]));
        catalog.apply_since("A", Some(cfg("A", &["a.old"])), asked_at);
        assert_eq!(
            catalog.get("A").map(|e| e.config.subjects.clone()),
            Some(vec!["a.new".to_owned()])
        );
        catalog.apply_since("A", None, asked_at);
        assert!(catalog.get("A").is_some(), "a stale 'not found' keeps it");
        let asked_at = catalog.streams.read().local_epoch;
        catalog.apply_since("A", None, asked_at);
        assert!(catalog.get("A").is_none(), "deleted through another agent");
        assert!(catalog.streams.read().local.is_empty());
        catalog.apply_since("B", Some(cfg("B", &["b"])), asked_at);
        assert!(catalog.get("B").is_some());
    }

    /// Followers reconcile only the streams changed since their last pass, as long as
    /// the journal reaches back and no whole list replaced the catalog meanwhile.
    #[test]
    fn the_journal_names_what_changed_since_a_version() {
        let catalog = StreamCatalog::new();
        catalog.upsert(cfg("A", &["a"]));
        let since = *catalog.watch().borrow();
        catalog.upsert(cfg("B", &["b"]));
        catalog.remove("A");
        catalog.upsert(cfg("B", &["b"]));
        let names: Vec<String> = catalog
            .changed_since(since)
            .map(|n| n.iter().map(|n| n.to_string()).collect())
            .unwrap_or_default();
        assert_eq!(names, ["A", "B"]);
        let now = *catalog.watch().borrow();
        assert_eq!(catalog.changed_since(now), Some(BTreeSet::new()));
        catalog.replace(vec![cfg("C", &["c"])]);
        assert_eq!(catalog.changed_since(now), None, "a whole list changed");
        let now = *catalog.watch().borrow();
        for i in 0..=JOURNAL_LEN {
            catalog.upsert(cfg(&format!("S{i}"), &[]));
        }
        assert_eq!(catalog.changed_since(now), None, "too far behind");
    }

    fn event(
        kind: v1::StreamEventKind,
        config: Option<&StreamConfig>,
        name: &str,
    ) -> v1::StreamEvent {
        v1::StreamEvent {
            kind: kind as i32,
            stream: name.into(),
            config: config.map(|c| Box::new(convert::proto_config(c).expect("a valid config"))),
            ..Default::default()
        }
    }

    /// A watch event carrying the config is applied without a reload, unless this
    /// agent changed the stream itself and holds something else; an echo of this
    /// agent's own change is a no-op; an event without a config asks for a reload.
    #[test]
    fn events_with_configs_apply_without_a_reload() {
        use v1::StreamEventKind::{StreamEventCreated, StreamEventDeleted, StreamEventUpdated};
        let catalog = StreamCatalog::new();
        let a = cfg("A", &["a"]);
        assert!(catalog.apply_event(&event(StreamEventCreated, Some(&a), "A")));
        assert_eq!(catalog.get("A").map(|e| (*e.config).clone()), Some(a));
        assert!(catalog.apply_event(&event(StreamEventDeleted, None, "A")));
        assert!(catalog.get("A").is_none());
        assert!(!catalog.apply_event(&event(StreamEventCreated, None, "A")));

        let b = cfg("B", &["b"]);
        catalog.upsert(b.clone());
        let version = *catalog.watch().borrow();
        assert!(catalog.apply_event(&event(StreamEventCreated, Some(&b), "B")));
        assert_eq!(
            *catalog.watch().borrow(),
            version,
            "an echo changes nothing"
        );
        let older = cfg("B", &["b.old"]);
        assert!(
            !catalog.apply_event(&event(StreamEventUpdated, Some(&older), "B")),
            "may predate this agent's change: reloaded"
        );
        assert_eq!(catalog.get("B").map(|e| (*e.config).clone()), Some(b));
    }

    #[test]
    fn changes_bump_the_version_and_repeats_do_not() {
        let catalog = StreamCatalog::new();
        let watch = catalog.watch();
        catalog.upsert(cfg("A", &["a.>"]));
        assert_eq!(*watch.borrow(), 1);
        catalog.upsert(cfg("A", &["a.>"]));
        assert_eq!(*watch.borrow(), 1, "same config is not a change");
        catalog.replace(vec![cfg("A", &["a.>"]), cfg("B", &["b"])]);
        assert_eq!(*watch.borrow(), 2);
        assert_eq!(catalog.snapshot().len(), 2);
        catalog.remove("A");
        assert_eq!(*watch.borrow(), 3);
        assert!(catalog.get("A").is_none());
        catalog.remove("A");
        assert_eq!(*watch.borrow(), 3);
    }
}
