//! The embedded, durable single-node store: a redb file plus a write-ahead log under
//! the data directory.
//!
//! It is the default when no control-plane URL is configured, so `infinistream agent`
//! runs the control plane in-process with nothing else to install. Values are stored
//! in redb with their `mod_revision` (8 bytes big-endian in front); the global revision
//! counter lives in a second table and moves exactly once per successful writing
//! transaction.
//!
//! Why a log in front of redb: a redb commit with immediate durability writes back
//! every B-tree page the transaction touched. A CommitBatch touching 100 streams
//! changes ~100 keys spread over the tree, hundreds of KiB per commit. So each
//! transaction is instead made durable by appending its ops (a few KiB, one record
//! with a CRC) to `control-plane.wal` and `fdatasync`ing that, and only then applied
//! to an in-memory overlay (the keys written since the last checkpoint, deletions as
//! tombstones) that reads consult before redb. `txn` returning `Ok` therefore still
//! means the data is on disk, and nothing is visible before it is.
//!
//! Checkpoints are off the write path. Every [`CHECKPOINT_BYTES`] of log or
//! [`CHECKPOINT_EVERY`], the writer that finds one due (after its own transaction,
//! still holding the log lock) *rotates*: it `fdatasync`s the log if a deferred write
//! may be unsynced, renames it to [`FROZEN_WAL_FILE_NAME`], creates a fresh empty
//! [`WAL_FILE_NAME`], `fsync`s the directory (the rename and the new file are durable
//! before any write in the new file is acknowledged), points the background log sync
//! at the new file, and moves the active overlay into an immutable *frozen* overlay,
//! starting an empty active one. That costs one or two syncs once per checkpoint;
//! the redb commit itself runs on the `cp-checkpoint` thread: it writes the frozen
//! overlay into redb in ONE durable commit (a page touched by many transactions is
//! written once) at the revision of the frozen log's last record, then removes the
//! frozen log and only then drops the frozen overlay (under the overlay write lock,
//! held for a pointer swap). Writers and readers never wait for that commit. If it
//! fails, the frozen log and overlay stay and the thread retries after a growing
//! delay; no second rotation happens while one is frozen (the active log just grows).
//! Reads merge three layers: the active overlay, then the frozen one, then redb.
//!
//! Opening reads the frozen log (if any) and then the active log as one ordered
//! sequence of records: records at or below redb's durable revision are skipped, the
//! rest must continue it one revision at a time, a torn last record (never
//! acknowledged) is dropped only at the very end of the sequence, and damage anywhere
//! else is refused as corrupt. What is newer is committed to redb, then one empty
//! active log is left and no frozen log. Every crash point of a checkpoint replays to
//! the acknowledged state: before the rename the active log holds everything; after
//! the rename but before the new log exists only the frozen log does; before the
//! directory sync nothing was acknowledged in the new log; before redb's commit
//! the two logs hold everything; after it but before the frozen log is removed, the
//! frozen records are all at or below redb's revision and are skipped. A clean close
//! stops the checkpoint thread and commits whatever the logs hold, so a reopen
//! replays nothing.
//!
//! `txn_deferred` appends its record the same way but answers without the
//! `fdatasync`: a background thread syncs the log within [`SYNC_BEHIND`] (one
//! `fdatasync` for all the deferred writes of that moment), and any later `txn`'s own
//! sync covers it sooner, since the log is one file written in order (a rotation
//! syncs the log it freezes, so no deferred write is left unsynced behind it). A
//! process kill loses nothing (the record is in the page cache); a power loss in that
//! moment loses the deferred record with every record after it (should the disk have
//! kept a later unsynced page but not an earlier one, opening refuses the log as
//! damaged, as it refuses any log damaged before its end). A failed background sync
//! refuses every later write until the store is reopened, as a failed log write does.
//!
//! redb is synchronous, so every call runs on tokio's blocking pool (except a deferred
//! write that finds the log free and no checkpoint due: it only appends to the page
//! cache, on the caller's thread); writers are serialized by the log's mutex; readers
//! take the overlay's read lock and then open a redb read transaction (see
//! `Shared::get` for why in that order).

use std::cmp::Ordering as KeyOrder;
use std::collections::BTreeMap;
use std::collections::btree_map;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::iter::Peekable;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use super::{Compare, KeyValue, MetaStore, Op, StoreError, TxnOutcome};

const DATA: TableDefinition<&[u8], &[u8]> = TableDefinition::new("kv");
const META: TableDefinition<&str, i64> = TableDefinition::new("meta");
const REVISION: &str = "revision";

/// File name of the database inside the store directory.
pub const FILE_NAME: &str = "control-plane.redb";
/// File name of the (active) write-ahead log inside the store directory.
pub const WAL_FILE_NAME: &str = "control-plane.wal";
/// File name of the frozen write-ahead log: the log a checkpoint in flight is writing
/// into redb (removed once redb holds it durably).
pub const FROZEN_WAL_FILE_NAME: &str = "control-plane.wal.frozen";
/// Log size after which the log is frozen and checkpointed into redb.
pub const CHECKPOINT_BYTES: u64 = 32 << 20;
/// Longest time between checkpoints while writes happen.
pub const CHECKPOINT_EVERY: Duration = Duration::from_secs(30);
/// Longest a deferred write waits for the background sync (nats-server syncs its
/// files every 2 minutes by default).
pub const SYNC_BEHIND: Duration = Duration::from_millis(50);
/// First wait before retrying a failed checkpoint (or log rotation); it doubles up to
/// [`CHECKPOINT_EVERY`].
const CHECKPOINT_RETRY: Duration = Duration::from_secs(1);

const OP_PUT: u8 = 1;
const OP_DELETE: u8 = 2;
const OP_DELETE_PREFIX: u8 = 3;

/// A [`MetaStore`] in a redb file with a write-ahead log.
#[derive(Debug, Clone)]
pub struct EmbeddedStore {
    inner: Arc<Inner>,
    path: PathBuf,
}

#[derive(Debug)]
struct Inner {
    shared: Arc<Shared>,
    /// Lock order: `wal`, then `shared.layers`.
    wal: Mutex<Wal>,
    checkpoint_bytes: u64,
    sync_behind: Arc<SyncBehind>,
    /// The `cp-checkpoint` thread, joined at close.
    checkpointer: Option<JoinHandle<()>>,
}

/// What the writers, the readers and the checkpoint thread share.
#[derive(Debug)]
struct Shared {
    db: Database,
    dir: PathBuf,
    layers: RwLock<Layers>,
    /// A frozen overlay exists: set by the rotating writer (under the log lock),
    /// cleared by the checkpoint thread once it has removed the frozen log and dropped
    /// the frozen overlay (so a rotation never races that removal).
    frozen: AtomicBool,
    cp: Mutex<CpState>,
    cp_wake: Condvar,
}

/// The overlays over redb: keys written since the last rotation (`active`), and
/// those of the rotation a checkpoint is writing into redb (`frozen`).
#[derive(Debug, Default)]
struct Layers {
    active: Overlay,
    frozen: Option<Arc<Frozen>>,
}

#[derive(Debug)]
struct Frozen {
    overlay: Overlay,
    /// The store's revision at the rotation (the frozen log's last record).
    revision: i64,
    log_bytes: u64,
}

/// A key's value in an overlay: `Some((mod_revision, value))`, or `None` for a
/// deletion.
type Entry = Option<(i64, Vec<u8>)>;
type Overlay = BTreeMap<Vec<u8>, Entry>;

static EMPTY_OVERLAY: Overlay = BTreeMap::new();

impl Layers {
    /// The newest overlay entry for `key`, if an overlay has one.
    fn get(&self, key: &[u8]) -> Option<&Entry> {
        self.active
            .get(key)
            .or_else(|| self.frozen.as_ref()?.overlay.get(key))
    }

    /// The overlays' entries in `[lo, hi)`, in key order, the active one winning.
    fn range<'a>(&'a self, lo: &[u8], hi: Bound<&[u8]>) -> Merge<'a> {
        let bounds = (Bound::Included(lo), hi);
        let frozen = self.frozen.as_ref().map_or(&EMPTY_OVERLAY, |f| &f.overlay);
        Merge {
            newer: self.active.range::<[u8], _>(bounds).peekable(),
            older: frozen.range::<[u8], _>(bounds).peekable(),
        }
    }
}

/// Two key-ordered overlay ranges merged; on equal keys the newer entry wins.
struct Merge<'a> {
    newer: Peekable<btree_map::Range<'a, Vec<u8>, Entry>>,
    older: Peekable<btree_map::Range<'a, Vec<u8>, Entry>>,
}

impl<'a> Iterator for Merge<'a> {
    type Item = (&'a Vec<u8>, &'a Entry);

    fn next(&mut self) -> Option<Self::Item> {
        let order = match (self.newer.peek(), self.older.peek()) {
            (None, None) => return None,
            (Some(_), None) => KeyOrder::Less,
            (None, Some(_)) => KeyOrder::Greater,
            (Some((n, _)), Some((o, _))) => n.cmp(o),
        };
        match order {
            KeyOrder::Less => self.newer.next(),
            KeyOrder::Greater => self.older.next(),
            KeyOrder::Equal => {
                self.older.next();
                self.newer.next()
            }
        }
    }
}

/// The checkpoint thread's work and its test hooks.
#[derive(Debug)]
struct CpState {
    /// A frozen overlay waits for its redb commit.
    pending: bool,
    closing: bool,
    /// After a failure: no retry before this.
    retry_at: Option<Instant>,
    backoff: Duration,
    #[cfg(test)]
    hold: Option<Hold>,
    #[cfg(test)]
    held: bool,
    /// How many of the next commits fail.
    #[cfg(test)]
    fail_commits: u32,
}

impl Default for CpState {
    fn default() -> Self {
        CpState {
            pending: false,
            closing: false,
            retry_at: None,
            backoff: CHECKPOINT_RETRY,
            #[cfg(test)]
            hold: None,
            #[cfg(test)]
            held: false,
            #[cfg(test)]
            fail_commits: 0,
        }
    }
}

/// Where a test holds the checkpoint thread.
#[cfg(test)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hold {
    /// Do not start the redb commit.
    BeforeCommit,
    /// Committed to redb; the frozen log and overlay not yet dropped.
    BeforeDrop,
}

/// The background `fdatasync` of the log behind deferred writes.
#[derive(Debug)]
struct SyncBehind {
    state: Mutex<SyncState>,
    wake: Condvar,
}

#[derive(Debug)]
struct SyncState {
    /// A second handle on the active log: syncing takes no log lock. Replaced at a
    /// rotation (which syncs the log it freezes first).
    file: Arc<File>,
    /// Deferred writes logged so far, and how many of them a sync has covered.
    logged: u64,
    synced: u64,
    /// Why a background sync failed (the store then refuses writes).
    failed: Option<String>,
    closing: bool,
}

impl SyncBehind {
    /// Starts the thread syncing `file` after deferred writes.
    fn start(file: File) -> Result<Arc<SyncBehind>, std::io::Error> {
        let sb = Arc::new(SyncBehind {
            state: Mutex::new(SyncState {
                file: Arc::new(file),
                logged: 0,
                synced: 0,
                failed: None,
                closing: false,
            }),
            wake: Condvar::new(),
        });
        let worker = sb.clone();
        std::thread::Builder::new()
            .name("cp-log-sync".into())
            .spawn(move || worker.run())?;
        Ok(sb)
    }

    fn run(&self) {
        loop {
            let (target, file) = {
                let Ok(mut st) = self.state.lock() else {
                    return;
                };
                while st.logged == st.synced && !st.closing {
                    st = match self.wake.wait(st) {
                        Ok(st) => st,
                        Err(_) => return,
                    };
                }
                if st.logged == st.synced {
                    return;
                }
                // Gather the deferred writes of the next moment into this sync: an
                // append to the page a sync is writing back waits for it.
                st = match self
                    .wake
                    .wait_timeout_while(st, SYNC_BEHIND, |st| !st.closing)
                {
                    Ok((st, _)) => st,
                    Err(_) => return,
                };
                // Taken together: every write counted in `logged` is in this file or
                // in a frozen log a rotation synced already.
                (st.logged, st.file.clone())
            };
            let res = file.sync_data();
            let Ok(mut st) = self.state.lock() else {
                return;
            };
            match res {
                Ok(()) => {
                    st.synced = st.synced.max(target);
                    self.wake.notify_all();
                }
                Err(e) => {
                    tracing::error!(error = %e, "embedded store: syncing the write-ahead log failed");
                    st.failed = Some(format!("background log sync failed: {e}"));
                    return;
                }
            }
        }
    }

    /// A deferred write was logged: sync it soon.
    fn logged(&self) {
        if let Ok(mut st) = self.state.lock() {
            st.logged += 1;
            self.wake.notify_all();
        }
    }

    /// The log was rotated to `file` after the old one was synced: every deferred
    /// write logged so far is on disk.
    fn switch(&self, file: File) -> Result<(), StoreError> {
        let mut st = self.state.lock().map_err(|_| lock_err())?;
        st.file = Arc::new(file);
        st.synced = st.logged;
        self.wake.notify_all();
        Ok(())
    }

    fn failed(&self) -> Option<String> {
        self.state.lock().map_or_else(
            |_| Some("log sync lock poisoned".into()),
            |st| st.failed.clone(),
        )
    }

    fn close(&self) {
        if let Ok(mut st) = self.state.lock() {
            st.closing = true;
            self.wake.notify_all();
        }
    }
}

fn lock_err() -> StoreError {
    StoreError::Backend("embedded store lock poisoned".into())
}

fn entry_kv(key: &[u8], entry: &Entry) -> Option<KeyValue> {
    entry.as_ref().map(|(rev, value)| KeyValue {
        key: key.to_vec(),
        value: value.clone(),
        mod_revision: *rev,
    })
}

/// Reads `key` from the overlays, else from redb.
fn lookup(
    layers: &Layers,
    data: &impl ReadableTable<&'static [u8], &'static [u8]>,
    key: &[u8],
) -> Result<Option<KeyValue>, StoreError> {
    if let Some(entry) = layers.get(key) {
        return Ok(entry_kv(key, entry));
    }
    match data.get(key).map_err(|e| backend("get", e))? {
        Some(v) => Ok(Some(decode(key, v.value())?)),
        None => Ok(None),
    }
}

#[derive(Debug)]
struct Wal {
    /// The active log.
    file: File,
    len: u64,
    /// A deferred write may be in the active log unsynced (a synced write's
    /// `fdatasync` covers every earlier one).
    unsynced: bool,
    /// The store's revision (redb's durable one plus the overlays' writes).
    revision: i64,
    last_checkpoint: Instant,
    /// No rotation before this (after one failed).
    next_rotation: Instant,
    rotation_backoff: Duration,
    /// Set when a write failed half-way (log and redb may disagree): every later
    /// write is refused until the store is reopened (which replays the log).
    poisoned: Option<String>,
    buf: Vec<u8>,
}

impl Wal {
    /// Refuses every later write; `why` becomes their error.
    fn poison(&mut self, why: String) -> StoreError {
        tracing::error!(error = %why, "embedded store: refusing writes until reopened");
        let err = StoreError::Unavailable(format!("embedded store {why}"));
        self.poisoned = Some(why);
        err
    }
}

fn backend(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(format!("redb {what}: {e}"))
}

fn io_err(what: &str, path: &Path, e: std::io::Error) -> StoreError {
    StoreError::Backend(format!("{what} `{}`: {e}", path.display()))
}

fn unavailable(e: tokio::task::JoinError) -> StoreError {
    StoreError::Unavailable(format!("redb task failed: {e}"))
}

fn decode(key: &[u8], raw: &[u8]) -> Result<KeyValue, StoreError> {
    let (rev, value) = raw.split_at_checked(8).ok_or_else(|| StoreError::Corrupt {
        key: String::from_utf8_lossy(key).into_owned(),
        reason: "value shorter than its revision header".into(),
    })?;
    let mut b = [0u8; 8];
    b.copy_from_slice(rev);
    Ok(KeyValue {
        key: key.to_vec(),
        value: value.to_vec(),
        mod_revision: i64::from_be_bytes(b),
    })
}

fn put_len(buf: &mut Vec<u8>, n: usize) {
    buf.extend_from_slice(&u32::try_from(n).unwrap_or(u32::MAX).to_be_bytes());
}

/// Appends one log record: `len:u32 crc32c:u32 payload`, payload = `revision:i64
/// op_count:u32` then per op `tag:u8 key_len:u32 key [value_len:u32 value]`.
fn encode_record(buf: &mut Vec<u8>, revision: i64, ops: &[Op]) {
    buf.clear();
    buf.extend_from_slice(&[0u8; 8]);
    buf.extend_from_slice(&revision.to_be_bytes());
    put_len(buf, ops.len());
    for op in ops {
        match op {
            Op::Put { key, value } => {
                buf.push(OP_PUT);
                put_len(buf, key.len());
                buf.extend_from_slice(key);
                put_len(buf, value.len());
                buf.extend_from_slice(value);
            }
            Op::Delete { key } => {
                buf.push(OP_DELETE);
                put_len(buf, key.len());
                buf.extend_from_slice(key);
            }
            Op::DeletePrefix { prefix } => {
                buf.push(OP_DELETE_PREFIX);
                put_len(buf, prefix.len());
                buf.extend_from_slice(prefix);
            }
        }
    }
    let payload_len = u32::try_from(buf.len() - 8).unwrap_or(u32::MAX);
    let crc = crc32c::crc32c(&buf[8..]);
    buf[..4].copy_from_slice(&payload_len.to_be_bytes());
    buf[4..8].copy_from_slice(&crc.to_be_bytes());
}

/// A cursor over a record payload; `None` = malformed.
struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = self.0.split_at_checked(n)?;
        self.0 = rest;
        Some(head)
    }
    fn u32(&mut self) -> Option<usize> {
        let b: [u8; 4] = self.take(4)?.try_into().ok()?;
        usize::try_from(u32::from_be_bytes(b)).ok()
    }
    fn i64(&mut self) -> Option<i64> {
        let b: [u8; 8] = self.take(8)?.try_into().ok()?;
        Some(i64::from_be_bytes(b))
    }
}

/// Decodes a record payload into its revision and ops.
fn decode_payload(payload: &[u8]) -> Option<(i64, Vec<Op>)> {
    let mut c = Cursor(payload);
    let revision = c.i64()?;
    let n = c.u32()?;
    let mut ops = Vec::with_capacity(n.min(1 << 16));
    for _ in 0..n {
        let tag = *c.take(1)?.first()?;
        let klen = c.u32()?;
        let key = c.take(klen)?.to_vec();
        ops.push(match tag {
            OP_PUT => {
                let vlen = c.u32()?;
                Op::Put {
                    key,
                    value: c.take(vlen)?.to_vec(),
                }
            }
            OP_DELETE => Op::Delete { key },
            OP_DELETE_PREFIX => Op::DeletePrefix { prefix: key },
            _ => return None,
        });
    }
    c.0.is_empty().then_some((revision, ops))
}

/// What a log holds: its whole records in order, and how many bytes of a torn last
/// record (a write cut short by a crash, never acknowledged) follow them.
#[derive(Debug, PartialEq)]
struct LogContents {
    records: Vec<(i64, Vec<Op>)>,
    torn_tail: usize,
}

/// Reads a log. A bad record is accepted only as the log's last one (a torn append);
/// a bad record with more log after it is corruption of acknowledged data, refused.
fn read_records(raw: &[u8]) -> Result<LogContents, String> {
    let mut records = Vec::new();
    let mut at = 0usize;
    while at < raw.len() {
        let mut c = Cursor(&raw[at..]);
        let (Some(len), Some(crc)) = (c.u32(), c.u32()) else {
            break;
        };
        let Some(payload) = c.take(len) else { break };
        let end = at + 8 + len;
        let whole = u32::try_from(crc).is_ok_and(|crc| crc32c::crc32c(payload) == crc);
        match whole.then(|| decode_payload(payload)).flatten() {
            Some(rec) => records.push(rec),
            None if end == raw.len() => break,
            None => {
                return Err(format!(
                    "record at byte {at} is damaged and {} bytes of log follow it",
                    raw.len() - end
                ));
            }
        }
        at = end;
    }
    Ok(LogContents {
        records,
        torn_tail: raw.len() - at,
    })
}

/// Applies `ops` at `revision` inside an open write transaction.
fn apply_ops(
    data: &mut redb::Table<'_, &'static [u8], &'static [u8]>,
    revision: i64,
    ops: Vec<Op>,
) -> Result<(), StoreError> {
    let mut buf = Vec::new();
    for op in ops {
        match op {
            Op::Put { key, value } => {
                buf.clear();
                buf.extend_from_slice(&revision.to_be_bytes());
                buf.extend_from_slice(&value);
                data.insert(key.as_slice(), buf.as_slice())
                    .map_err(|e| backend("insert", e))?;
            }
            Op::Delete { key } => {
                data.remove(key.as_slice())
                    .map_err(|e| backend("remove", e))?;
            }
            Op::DeletePrefix { prefix } => {
                let end = super::prefix_end(&prefix);
                if end.is_empty() {
                    data.retain_in(prefix.as_slice().., |_, _| false)
                } else {
                    data.retain_in(prefix.as_slice()..end.as_slice(), |_, _| false)
                }
                .map_err(|e| backend("delete prefix", e))?;
            }
        }
    }
    Ok(())
}

/// The whole contents of `path`, `None` if it does not exist.
fn read_optional(path: &Path) -> Result<Option<Vec<u8>>, StoreError> {
    let mut raw = Vec::new();
    match File::open(path) {
        Ok(mut f) => {
            f.read_to_end(&mut raw)
                .map_err(|e| io_err("read", path, e))?;
            Ok(Some(raw))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err("open", path, e)),
    }
}

/// Makes the directory's entries (renames, new and removed files) durable.
fn sync_dir(dir: &Path) -> Result<(), std::io::Error> {
    File::open(dir)?.sync_all()
}

/// The upper bound of the keys starting with `prefix` (`prefix_end` as a bound).
fn prefix_upper(end: &[u8]) -> Bound<&[u8]> {
    if end.is_empty() {
        Bound::Unbounded
    } else {
        Bound::Excluded(end)
    }
}

/// Opens the database, replays the frozen and active logs into it durably, and
/// leaves one empty active log and no frozen log.
fn open_blocking(dir: &Path, checkpoint_bytes: u64) -> Result<Inner, StoreError> {
    std::fs::create_dir_all(dir).map_err(|e| io_err("create dir", dir, e))?;
    let path = dir.join(FILE_NAME);
    let db =
        Database::create(&path).map_err(|e| backend(&format!("open `{}`", path.display()), e))?;
    let wal_path = dir.join(WAL_FILE_NAME);
    let frozen_path = dir.join(FROZEN_WAL_FILE_NAME);
    let corrupt = |path: &Path, reason: String| StoreError::Corrupt {
        key: path.display().to_string(),
        reason,
    };
    // The frozen log (a checkpoint cut short) comes first: its records precede the
    // active log's.
    let frozen_raw = read_optional(&frozen_path)?;
    let active_raw = read_optional(&wal_path)?.unwrap_or_default();
    let mut logs = Vec::new();
    if let Some(raw) = &frozen_raw {
        let log = read_records(raw).map_err(|reason| corrupt(&frozen_path, reason))?;
        if log.torn_tail > 0 && !active_raw.is_empty() {
            // A rotation syncs the whole log before freezing it: a damaged end there
            // with records after it is damage to acknowledged data.
            return Err(corrupt(
                &frozen_path,
                format!(
                    "the last {} bytes are a damaged record and the active log follows it",
                    log.torn_tail
                ),
            ));
        }
        logs.push((frozen_path.as_path(), log));
    }
    let log = read_records(&active_raw).map_err(|reason| corrupt(&wal_path, reason))?;
    logs.push((wal_path.as_path(), log));
    // Make sure both tables exist so read transactions never fail on them, and
    // replay what the logs hold beyond redb's durable state.
    let w = db.begin_write().map_err(|e| backend("begin write", e))?;
    let mut replayed = 0usize;
    let revision;
    {
        let mut meta = w.open_table(META).map_err(|e| backend("open table", e))?;
        let mut data = w.open_table(DATA).map_err(|e| backend("open table", e))?;
        let mut current = meta
            .get(REVISION)
            .map_err(|e| backend("get revision", e))?
            .map_or(0, |v| v.value());
        for (log_path, log) in logs {
            if log.torn_tail > 0 {
                tracing::warn!(
                    log = %log_path.display(),
                    bytes = log.torn_tail,
                    "embedded store: dropping a torn last write-ahead log record (cut short by a crash; never acknowledged)"
                );
            }
            for (revision, ops) in log.records {
                if revision <= current {
                    continue;
                }
                if revision != current + 1 {
                    return Err(corrupt(
                        log_path,
                        format!("log record at revision {revision} follows revision {current}"),
                    ));
                }
                apply_ops(&mut data, revision, ops)?;
                current = revision;
                replayed += 1;
            }
        }
        meta.insert(REVISION, current)
            .map_err(|e| backend("set revision", e))?;
        revision = current;
    }
    w.commit().map_err(|e| backend("commit", e))?;
    if replayed > 0 {
        tracing::info!(
            records = replayed,
            "embedded store: replayed the write-ahead log"
        );
    }
    // redb holds every record now: whatever of the logs a crash below leaves is at or
    // below its durable revision and skipped at the next open.
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&wal_path)
        .map_err(|e| io_err("open", &wal_path, e))?;
    file.set_len(0)
        .map_err(|e| io_err("truncate", &wal_path, e))?;
    file.sync_all().map_err(|e| io_err("sync", &wal_path, e))?;
    if frozen_raw.is_some() {
        match std::fs::remove_file(&frozen_path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err("remove", &frozen_path, e)),
        }
    }
    sync_dir(dir).map_err(|e| io_err("sync dir", dir, e))?;
    let sync_behind = file
        .try_clone()
        .and_then(SyncBehind::start)
        .map_err(|e| io_err("start the log sync for", &wal_path, e))?;
    let shared = Arc::new(Shared {
        db,
        dir: dir.to_path_buf(),
        layers: RwLock::new(Layers::default()),
        frozen: AtomicBool::new(false),
        cp: Mutex::new(CpState::default()),
        cp_wake: Condvar::new(),
    });
    let worker = shared.clone();
    let checkpointer = std::thread::Builder::new()
        .name("cp-checkpoint".into())
        .spawn(move || worker.run_checkpoints());
    let checkpointer = match checkpointer {
        Ok(handle) => handle,
        Err(e) => {
            sync_behind.close();
            return Err(StoreError::Backend(format!(
                "start the embedded store checkpoint thread: {e}"
            )));
        }
    };
    let now = Instant::now();
    Ok(Inner {
        shared,
        wal: Mutex::new(Wal {
            file,
            len: 0,
            unsynced: false,
            revision,
            last_checkpoint: now,
            next_rotation: now,
            rotation_backoff: CHECKPOINT_RETRY,
            poisoned: None,
            buf: Vec::new(),
        }),
        checkpoint_bytes,
        sync_behind,
        checkpointer: Some(checkpointer),
    })
}

impl Shared {
    /// Writes `overlays` (oldest first) into redb in one durable commit that makes
    /// `revision` its durable revision. Returns how many keys it wrote.
    fn commit_overlays(&self, overlays: &[&Overlay], revision: i64) -> Result<usize, StoreError> {
        let w = self
            .db
            .begin_write()
            .map_err(|e| backend("begin write", e))?;
        let mut keys = 0;
        {
            let mut meta = w.open_table(META).map_err(|e| backend("open table", e))?;
            let mut data = w.open_table(DATA).map_err(|e| backend("open table", e))?;
            let mut buf = Vec::new();
            for overlay in overlays {
                keys += overlay.len();
                for (key, v) in overlay.iter() {
                    match v {
                        Some((rev, value)) => {
                            buf.clear();
                            buf.extend_from_slice(&rev.to_be_bytes());
                            buf.extend_from_slice(value);
                            data.insert(key.as_slice(), buf.as_slice())
                                .map_err(|e| backend("insert", e))?;
                        }
                        None => {
                            data.remove(key.as_slice())
                                .map_err(|e| backend("remove", e))?;
                        }
                    }
                }
            }
            meta.insert(REVISION, revision)
                .map_err(|e| backend("set revision", e))?;
        }
        w.commit().map_err(|e| backend("checkpoint commit", e))?;
        Ok(keys)
    }

    /// The `cp-checkpoint` thread: commits each frozen overlay into redb, retrying
    /// after a growing delay when that fails, until the store closes.
    fn run_checkpoints(&self) {
        loop {
            {
                let Ok(mut st) = self.cp.lock() else {
                    return;
                };
                loop {
                    if st.closing {
                        // The close commits whatever is left, on the closing thread.
                        return;
                    }
                    #[cfg(test)]
                    let held = st.hold == Some(Hold::BeforeCommit);
                    #[cfg(not(test))]
                    let held = false;
                    if st.pending && !held {
                        let now = Instant::now();
                        match st.retry_at {
                            Some(at) if at > now => {
                                st = match self.cp_wake.wait_timeout(st, at - now) {
                                    Ok((st, _)) => st,
                                    Err(_) => return,
                                };
                                continue;
                            }
                            _ => break,
                        }
                    }
                    st = match self.cp_wake.wait(st) {
                        Ok(st) => st,
                        Err(_) => return,
                    };
                }
            }
            let res = self.checkpoint_frozen();
            let Ok(mut st) = self.cp.lock() else {
                return;
            };
            match res {
                Ok(()) => {
                    st.pending = false;
                    st.retry_at = None;
                    st.backoff = CHECKPOINT_RETRY;
                }
                Err(e) => {
                    // The frozen log and overlay still hold everything.
                    tracing::warn!(
                        error = %e,
                        retry_in_ms = st.backoff.as_millis() as u64,
                        "embedded store: checkpoint failed; retrying later"
                    );
                    st.retry_at = Some(Instant::now() + st.backoff);
                    st.backoff = (st.backoff * 2).min(CHECKPOINT_EVERY);
                }
            }
            self.cp_wake.notify_all();
        }
    }

    /// Writes the frozen overlay into redb in one durable commit, then removes the
    /// frozen log and drops the frozen overlay.
    fn checkpoint_frozen(&self) -> Result<(), StoreError> {
        let frozen = self.layers.read().map_err(|_| lock_err())?.frozen.clone();
        let Some(frozen) = frozen else {
            return Ok(());
        };
        let started = Instant::now();
        #[cfg(test)]
        if let Ok(mut st) = self.cp.lock()
            && st.fail_commits > 0
        {
            st.fail_commits -= 1;
            return Err(StoreError::Backend("injected checkpoint failure".into()));
        }
        let keys = self.commit_overlays(&[&frozen.overlay], frozen.revision)?;
        // redb's commit is visible to every read transaction begun from here on, and
        // readers hold the overlay lock before they begin theirs (see `get`): the
        // frozen overlay can go once no reader can still miss the commit.
        #[cfg(test)]
        self.hold_at(Hold::BeforeDrop);
        // Every frozen record is at or below redb's durable revision now: a crash
        // before this removal is durable only makes the next open skip them. Removed
        // before `frozen` is cleared, so it can never be the next rotation's log.
        let frozen_path = self.dir.join(FROZEN_WAL_FILE_NAME);
        match std::fs::remove_file(&frozen_path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!(
                error = %e,
                log = %frozen_path.display(),
                "embedded store: could not remove the checkpointed frozen log (its records are skipped at open)"
            ),
        }
        self.layers.write().map_err(|_| lock_err())?.frozen = None;
        self.frozen.store(false, Ordering::Release);
        tracing::debug!(
            keys,
            log_bytes = frozen.log_bytes,
            revision = frozen.revision,
            ms = started.elapsed().as_millis() as u64,
            "embedded store: checkpoint"
        );
        Ok(())
    }

    /// Starts the checkpoint of a frozen overlay.
    fn request_checkpoint(&self) {
        if let Ok(mut st) = self.cp.lock() {
            st.pending = true;
            self.cp_wake.notify_all();
        }
    }

    fn close_checkpoints(&self) {
        if let Ok(mut st) = self.cp.lock() {
            st.closing = true;
            self.cp_wake.notify_all();
        }
    }

    #[cfg(test)]
    fn hold_at(&self, at: Hold) {
        let Ok(mut st) = self.cp.lock() else {
            return;
        };
        while st.hold == Some(at) && !st.closing {
            st.held = true;
            self.cp_wake.notify_all();
            st = match self.cp_wake.wait(st) {
                Ok(st) => st,
                Err(_) => return,
            };
        }
        st.held = false;
    }

    /// Reads one key.
    ///
    /// Readers take the overlay read lock FIRST and open their redb read transaction
    /// while holding it. The checkpoint thread commits to redb without that lock and
    /// only then takes the write lock to drop the frozen overlay. So a reader that
    /// sees the frozen overlay reads redb from before or after its commit, and the
    /// frozen overlay (a superset of that commit) covers both alike; a reader that
    /// sees no frozen overlay locked after the drop, hence after the commit, and its
    /// snapshot has the commit. (The other order would let a snapshot from before the
    /// commit meet the overlays after the drop: keys would vanish or go back.)
    fn get(&self, key: &[u8]) -> Result<Option<KeyValue>, StoreError> {
        let layers = self.layers.read().map_err(|_| lock_err())?;
        if let Some(entry) = layers.get(key) {
            return Ok(entry_kv(key, entry));
        }
        let r = self.db.begin_read().map_err(|e| backend("begin read", e))?;
        let t = r.open_table(DATA).map_err(|e| backend("open table", e))?;
        lookup(&layers, &t, key)
    }

    /// redb's keys merged with the overlays', in key order (lock order as in `get`).
    fn range(&self, start: &[u8], end: &[u8], limit: usize) -> Result<Vec<KeyValue>, StoreError> {
        if !end.is_empty() && end <= start {
            return Ok(Vec::new());
        }
        let layers = self.layers.read().map_err(|_| lock_err())?;
        let r = self.db.begin_read().map_err(|e| backend("begin read", e))?;
        let t = r.open_table(DATA).map_err(|e| backend("open table", e))?;
        let mut base = if end.is_empty() {
            t.range(start..)
        } else {
            t.range(start..end)
        }
        .map_err(|e| backend("range", e))?
        .peekable();
        let mut over = layers.range(start, prefix_upper(end)).peekable();
        let mut out = Vec::new();
        while limit == 0 || out.len() < limit {
            let base_key = match base.peek() {
                Some(Ok((k, _))) => Some(k.value().to_vec()),
                Some(Err(_)) => {
                    if let Some(Err(e)) = base.next() {
                        return Err(backend("range", e));
                    }
                    continue;
                }
                None => None,
            };
            let take_over = match (&base_key, over.peek()) {
                (None, None) => break,
                (None, Some(_)) => true,
                (Some(_), None) => false,
                (Some(b), Some((o, _))) => o.as_slice() <= b.as_slice(),
            };
            if take_over {
                let Some((k, v)) = over.next() else { break };
                if base_key.as_deref() == Some(k.as_slice()) {
                    base.next();
                }
                if let Some(kv) = entry_kv(k, v) {
                    out.push(kv);
                }
            } else if let Some(item) = base.next() {
                let (k, v) = item.map_err(|e| backend("range", e))?;
                out.push(decode(k.value(), v.value())?);
            }
        }
        Ok(out)
    }
}

/// The keys under `prefix` below the active overlay (live in the frozen overlay, or
/// in redb): a `DeletePrefix` tombstones them in the active overlay. redb's keys are
/// taken even where the frozen overlay deleted them (a harmless extra tombstone).
fn keys_below_active(
    layers: &Layers,
    data: &impl ReadableTable<&'static [u8], &'static [u8]>,
    prefix: &[u8],
) -> Result<Vec<Vec<u8>>, StoreError> {
    let end = super::prefix_end(prefix);
    let mut keys = Vec::new();
    if let Some(frozen) = &layers.frozen {
        let bounds = (Bound::Included(prefix), prefix_upper(&end));
        for (k, v) in frozen.overlay.range::<[u8], _>(bounds) {
            if v.is_some() {
                keys.push(k.clone());
            }
        }
    }
    let iter = if end.is_empty() {
        data.range(prefix..)
    } else {
        data.range(prefix..end.as_slice())
    }
    .map_err(|e| backend("range", e))?;
    for item in iter {
        let (k, _) = item.map_err(|e| backend("range", e))?;
        keys.push(k.value().to_vec());
    }
    Ok(keys)
}

impl Inner {
    /// One transaction on the blocking pool, then the log rotation if a checkpoint is
    /// due; `synced`: the log is `fdatasync`ed before it answers, else by the
    /// background sync right after.
    fn txn(
        &self,
        compares: Vec<Compare>,
        ops: Vec<Op>,
        synced: bool,
    ) -> Result<TxnOutcome, StoreError> {
        let mut guard = self.wal.lock().map_err(|_| lock_err())?;
        let out = self.txn_locked(&mut guard, compares, ops, synced)?;
        if self.checkpoint_due(&guard) {
            self.rotate_or_retry_later(&mut guard);
        }
        Ok(out)
    }

    /// Rotates the log; a rotation that failed without harm is tried again later.
    fn rotate_or_retry_later(&self, wal: &mut Wal) {
        match self.rotate(wal) {
            Ok(()) => wal.rotation_backoff = CHECKPOINT_RETRY,
            Err(e) => {
                // Nothing acknowledged is lost: the active log still holds it all.
                tracing::warn!(
                    error = %e,
                    retry_in_ms = wal.rotation_backoff.as_millis() as u64,
                    "embedded store: could not freeze the log for a checkpoint"
                );
                wal.next_rotation = Instant::now() + wal.rotation_backoff;
                wal.rotation_backoff = (wal.rotation_backoff * 2).min(CHECKPOINT_EVERY);
            }
        }
    }

    /// Freezes the active log and overlay and hands them to the checkpoint thread
    /// (the steps and their crash points are in the module docs).
    fn rotate(&self, wal: &mut Wal) -> Result<(), StoreError> {
        let dir = &self.shared.dir;
        let active_path = dir.join(WAL_FILE_NAME);
        let frozen_path = dir.join(FROZEN_WAL_FILE_NAME);
        if wal.unsynced {
            // Deferred writes in the log to freeze: durable before it is frozen (the
            // background sync then moves to the new log).
            if let Err(e) = wal.file.sync_data() {
                return Err(wal.poison(format!("log sync failed: {e}")));
            }
            wal.unsynced = false;
        }
        std::fs::rename(&active_path, &frozen_path)
            .map_err(|e| io_err("freeze log", &active_path, e))?;
        let fresh = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&active_path)
            .and_then(|file| Ok((file.try_clone()?, file)));
        let (sync_handle, file) = match fresh {
            Ok(files) => files,
            Err(e) => {
                // Back to the old log (its handle is still ours), replacing a new
                // file, if any: whichever name a crash leaves it under, it holds
                // every record and replays.
                return Err(match std::fs::rename(&frozen_path, &active_path) {
                    Ok(()) => io_err("create log", &active_path, e),
                    Err(back) => wal.poison(format!(
                        "log rotation failed: creating `{}`: {e}; renaming the frozen log back: {back}",
                        active_path.display()
                    )),
                });
            }
        };
        // The rename and the new file durable before a write in it is acknowledged
        // (else a crash could lose the new file or bring back the old name).
        if let Err(e) = sync_dir(dir) {
            return Err(wal.poison(format!(
                "log rotation failed: syncing `{}`: {e}",
                dir.display()
            )));
        }
        if let Err(e) = self.sync_behind.switch(sync_handle) {
            return Err(wal.poison(format!("log rotation failed: {e}")));
        }
        let Ok(mut layers) = self.shared.layers.write() else {
            return Err(wal.poison("log rotation failed: overlay lock poisoned".into()));
        };
        let active = std::mem::take(&mut layers.active);
        layers.frozen = Some(Arc::new(Frozen {
            overlay: active,
            revision: wal.revision,
            log_bytes: wal.len,
        }));
        drop(layers);
        self.shared.frozen.store(true, Ordering::Release);
        wal.file = file;
        wal.len = 0;
        wal.last_checkpoint = Instant::now();
        self.shared.request_checkpoint();
        tracing::debug!(
            revision = wal.revision,
            "embedded store: froze the write-ahead log for a checkpoint"
        );
        Ok(())
    }

    /// A deferred transaction on the caller's thread, when it only appends to the
    /// page cache: the log is free (no synced write is waiting on its disk) and no
    /// checkpoint is due. Otherwise hands the transaction back.
    #[allow(clippy::type_complexity)]
    fn try_deferred_inline(
        &self,
        compares: Vec<Compare>,
        ops: Vec<Op>,
    ) -> Result<Result<TxnOutcome, StoreError>, (Vec<Compare>, Vec<Op>)> {
        let mut guard = match self.wal.try_lock() {
            Ok(guard) => guard,
            Err(std::sync::TryLockError::WouldBlock) => return Err((compares, ops)),
            Err(std::sync::TryLockError::Poisoned(_)) => return Ok(Err(lock_err())),
        };
        if self.checkpoint_due(&guard) {
            return Err((compares, ops));
        }
        Ok(self.txn_locked(&mut guard, compares, ops, false))
    }

    /// A rotation is due: the log holds records, none is frozen already, and it is
    /// big or old enough.
    fn checkpoint_due(&self, wal: &Wal) -> bool {
        wal.len > 0
            && !self.shared.frozen.load(Ordering::Acquire)
            && (wal.len >= self.checkpoint_bytes
                || wal.last_checkpoint.elapsed() >= CHECKPOINT_EVERY)
            && Instant::now() >= wal.next_rotation
    }

    fn txn_locked(
        &self,
        wal: &mut Wal,
        compares: Vec<Compare>,
        ops: Vec<Op>,
        synced: bool,
    ) -> Result<TxnOutcome, StoreError> {
        if wal.poisoned.is_none() {
            wal.poisoned = self.sync_behind.failed();
        }
        if let Some(why) = &wal.poisoned {
            return Err(StoreError::Backend(format!(
                "embedded store refuses writes until reopened: {why}"
            )));
        }
        let current = wal.revision;
        // What the compares and prefix deletions need from below the active overlay,
        // read before anything is logged. The keys a prefix deletion finds below stay
        // right until it is applied: only this writer (holding the log lock) changes
        // what the store holds; a checkpoint meanwhile only moves keys from the frozen
        // overlay into redb.
        let mut below = Vec::new();
        if !compares.is_empty() || ops.iter().any(|op| matches!(op, Op::DeletePrefix { .. })) {
            // Overlay lock first, then the redb snapshot (see `Shared::get`).
            let layers = self.shared.layers.read().map_err(|_| lock_err())?;
            let r = self
                .shared
                .db
                .begin_read()
                .map_err(|e| backend("begin read", e))?;
            let data = r.open_table(DATA).map_err(|e| backend("open table", e))?;
            for c in &compares {
                let holds = match c {
                    Compare::ModRevision { key, revision } => {
                        lookup(&layers, &data, key)?.map(|kv| kv.mod_revision) == *revision
                    }
                    Compare::ValueEquals { key, value } => {
                        lookup(&layers, &data, key)?.is_some_and(|kv| kv.value == *value)
                    }
                };
                if !holds {
                    return Ok(TxnOutcome {
                        succeeded: false,
                        revision: current,
                    });
                }
            }
            for op in &ops {
                if let Op::DeletePrefix { prefix } = op {
                    below.push(keys_below_active(&layers, &data, prefix)?);
                }
            }
        }
        if ops.is_empty() {
            return Ok(TxnOutcome {
                succeeded: true,
                revision: current,
            });
        }
        let revision = current + 1;
        encode_record(&mut wal.buf, revision, &ops);
        // Durable first (the log), visible second (the overlay); deferred: in the page
        // cache first, synced by the background thread.
        let logged = wal.file.write_all(&wal.buf).and_then(|()| {
            if synced {
                wal.file.sync_data()
            } else {
                self.sync_behind.logged();
                Ok(())
            }
        });
        if let Err(e) = logged {
            // The record may or may not be on disk: stop writing until a reopen
            // replays whatever is.
            wal.poisoned = Some(format!("log write failed: {e}"));
            tracing::error!(error = %e, "embedded store: write-ahead log write failed");
            return Err(StoreError::Unavailable(format!(
                "embedded store log write failed: {e}"
            )));
        }
        wal.unsynced = !synced;
        wal.len += wal.buf.len() as u64;
        wal.revision = revision;
        let Ok(mut layers) = self.shared.layers.write() else {
            // Logged but not visible: only a reopen can reconcile the two.
            return Err(wal.poison("write failed: overlay lock poisoned".into()));
        };
        let mut below = below.into_iter();
        for op in ops {
            match op {
                Op::Put { key, value } => {
                    layers.active.insert(key, Some((revision, value)));
                }
                Op::Delete { key } => {
                    layers.active.insert(key, None);
                }
                Op::DeletePrefix { prefix } => {
                    let end = super::prefix_end(&prefix);
                    let bounds = (Bound::Included(prefix.as_slice()), prefix_upper(&end));
                    for (_, v) in layers.active.range_mut::<[u8], _>(bounds) {
                        *v = None;
                    }
                    for key in below.next().unwrap_or_default() {
                        layers.active.insert(key, None);
                    }
                }
            }
        }
        Ok(TxnOutcome {
            succeeded: true,
            revision,
        })
    }

    /// Rotates now (if nothing is frozen) regardless of the log's size or age.
    #[cfg(test)]
    fn checkpoint_now(&self) {
        let mut wal = self.wal.lock().unwrap_or_else(|e| e.into_inner());
        if wal.len > 0 && !self.shared.frozen.load(Ordering::Acquire) {
            self.rotate(&mut wal).expect("rotate");
        }
    }

    /// Waits until no frozen overlay waits for its checkpoint.
    #[cfg(test)]
    fn wait_checkpoint_idle(&self) {
        let mut st = self.shared.cp.lock().unwrap_or_else(|e| e.into_inner());
        while st.pending {
            st = self
                .shared
                .cp_wake
                .wait(st)
                .unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Holds the checkpoint thread at `hold` (`None` releases it).
    #[cfg(test)]
    fn hold_checkpoint(&self, hold: Option<Hold>) {
        let mut st = self.shared.cp.lock().unwrap_or_else(|e| e.into_inner());
        st.hold = hold;
        self.shared.cp_wake.notify_all();
    }

    /// Waits until a checkpoint failed and waits for its retry.
    #[cfg(test)]
    fn wait_checkpoint_failed(&self) {
        let mut st = self.shared.cp.lock().unwrap_or_else(|e| e.into_inner());
        while st.retry_at.is_none() {
            st = self
                .shared
                .cp_wake
                .wait(st)
                .unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Waits until the checkpoint thread is held (at `Hold::BeforeDrop`).
    #[cfg(test)]
    fn wait_held(&self) {
        let mut st = self.shared.cp.lock().unwrap_or_else(|e| e.into_inner());
        while !st.held {
            st = self
                .shared
                .cp_wake
                .wait(st)
                .unwrap_or_else(|e| e.into_inner());
        }
    }

    /// At close: commits the frozen and active overlays into redb in one durable
    /// commit, then removes the frozen log and empties the active one.
    fn checkpoint_at_close(&self, wal: &mut Wal) -> Result<(), StoreError> {
        let started = Instant::now();
        let mut layers = self.shared.layers.write().map_err(|_| lock_err())?;
        let mut overlays = Vec::new();
        if let Some(frozen) = &layers.frozen {
            overlays.push(&frozen.overlay);
        }
        overlays.push(&layers.active);
        let keys = self.shared.commit_overlays(&overlays, wal.revision)?;
        layers.frozen = None;
        layers.active.clear();
        drop(layers);
        // Records left behind by a crash before these are durable are not newer than
        // redb's durable revision and are skipped at replay.
        let frozen_path = self.shared.dir.join(FROZEN_WAL_FILE_NAME);
        match std::fs::remove_file(&frozen_path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err("remove", &frozen_path, e)),
        }
        wal.file
            .set_len(0)
            .map_err(|e| backend("truncate log", e))?;
        tracing::debug!(
            keys,
            log_bytes = wal.len,
            ms = started.elapsed().as_millis() as u64,
            "embedded store: checkpoint at close"
        );
        wal.len = 0;
        Ok(())
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.sync_behind.close();
        // The checkpoint thread finishes a commit it is in, then stops; its Arc on
        // the database goes with it, so the store can be reopened right after.
        self.shared.close_checkpoints();
        if let Some(handle) = self.checkpointer.take()
            && handle.join().is_err()
        {
            tracing::warn!("embedded store: the checkpoint thread panicked");
        }
        // A clean close leaves nothing to replay.
        let frozen = self.shared.frozen.load(Ordering::Acquire);
        if let Ok(mut wal) = self.wal.lock()
            && wal.poisoned.is_none()
            && (wal.len > 0 || frozen)
        {
            let wal = &mut *wal;
            if let Err(e) = self.checkpoint_at_close(wal) {
                tracing::warn!(error = %e, "embedded store: checkpoint at close failed");
            }
        }
    }
}

impl EmbeddedStore {
    /// Opens (or creates) the store in `dir`, creating the directory if needed, and
    /// replays its write-ahead log.
    pub async fn open(dir: impl AsRef<Path>) -> Result<EmbeddedStore, StoreError> {
        Self::open_with(dir, CHECKPOINT_BYTES).await
    }

    async fn open_with(
        dir: impl AsRef<Path>,
        checkpoint_bytes: u64,
    ) -> Result<EmbeddedStore, StoreError> {
        let dir = dir.as_ref().to_path_buf();
        tokio::task::spawn_blocking(move || {
            let inner = open_blocking(&dir, checkpoint_bytes)?;
            Ok(EmbeddedStore {
                inner: Arc::new(inner),
                path: dir.join(FILE_NAME),
            })
        })
        .await
        .map_err(unavailable)?
    }

    /// Path of the redb file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[async_trait]
impl MetaStore for EmbeddedStore {
    async fn get(&self, key: &[u8]) -> Result<Option<KeyValue>, StoreError> {
        let inner = self.inner.clone();
        let key = key.to_vec();
        tokio::task::spawn_blocking(move || inner.shared.get(&key))
            .await
            .map_err(unavailable)?
    }

    async fn range(
        &self,
        start: &[u8],
        end: &[u8],
        limit: usize,
    ) -> Result<Vec<KeyValue>, StoreError> {
        let inner = self.inner.clone();
        let (start, end) = (start.to_vec(), end.to_vec());
        tokio::task::spawn_blocking(move || inner.shared.range(&start, &end, limit))
            .await
            .map_err(unavailable)?
    }

    async fn txn(&self, compares: Vec<Compare>, ops: Vec<Op>) -> Result<TxnOutcome, StoreError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || inner.txn(compares, ops, true))
            .await
            .map_err(unavailable)?
    }

    /// Usually on the caller's thread: appending a record to the page cache takes
    /// microseconds, less than the two thread hops of the blocking pool. When the log
    /// is busy with a synced write or a checkpoint is due, on the blocking pool.
    async fn txn_deferred(
        &self,
        compares: Vec<Compare>,
        ops: Vec<Op>,
    ) -> Result<TxnOutcome, StoreError> {
        let (compares, ops) = match self.inner.try_deferred_inline(compares, ops) {
            Ok(done) => return done,
            Err(handed_back) => handed_back,
        };
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || inner.txn(compares, ops, false))
            .await
            .map_err(unavailable)?
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn embedded_store_passes_conformance() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(dir.path()).await.unwrap();
        super::super::conformance::conformance(Arc::new(store)).await;
    }

    /// Checkpoints every few writes: reads and compares see redb and the overlay
    /// merged (overwrites, deletions and prefix deletions across both).
    #[tokio::test]
    async fn embedded_store_passes_conformance_across_checkpoints() {
        for every in [1, 150, 700] {
            let dir = tempfile::tempdir().unwrap();
            let store = EmbeddedStore::open_with(dir.path(), every).await.unwrap();
            super::super::conformance::conformance(Arc::new(store)).await;
        }
    }

    #[tokio::test]
    async fn embedded_store_merges_the_overlay_over_redb() {
        let dir = tempfile::tempdir().unwrap();
        let s = EmbeddedStore::open(dir.path()).await.unwrap();
        for k in ["a/1", "a/2", "a/3", "b/1"] {
            put(&s, k, "old").await;
        }
        // Into redb; the overlays start empty.
        s.inner.checkpoint_now();
        s.inner.wait_checkpoint_idle();
        assert!(s.inner.shared.layers.read().unwrap().active.is_empty());
        put(&s, "a/2", "new").await;
        put(&s, "a/25", "added").await;
        s.txn(
            vec![],
            vec![Op::Delete {
                key: b"a/3".to_vec(),
            }],
        )
        .await
        .unwrap();
        let got: Vec<(String, String)> = s
            .scan_prefix(b"a/")
            .await
            .unwrap()
            .into_iter()
            .map(|kv| {
                (
                    String::from_utf8(kv.key).unwrap(),
                    String::from_utf8(kv.value).unwrap(),
                )
            })
            .collect();
        let want = [("a/1", "old"), ("a/2", "new"), ("a/25", "added")];
        assert_eq!(
            got,
            want.map(|(k, v)| (k.to_owned(), v.to_owned())).to_vec()
        );
        assert_eq!(s.range(b"a/", b"b", 2).await.unwrap().len(), 2);
        s.txn(
            vec![],
            vec![Op::DeletePrefix {
                prefix: b"a/".to_vec(),
            }],
        )
        .await
        .unwrap();
        assert!(s.scan_prefix(b"a/").await.unwrap().is_empty());
        assert_eq!(s.scan_prefix(b"").await.unwrap().len(), 1);
        drop(s);
        let s = EmbeddedStore::open(dir.path()).await.unwrap();
        assert!(s.scan_prefix(b"a/").await.unwrap().is_empty());
        assert_eq!(s.get(b"b/1").await.unwrap().unwrap().value, b"old");
    }

    #[tokio::test]
    async fn embedded_store_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let rev = {
            let s = EmbeddedStore::open(dir.path()).await.unwrap();
            let out = s
                .txn(
                    vec![],
                    vec![Op::Put {
                        key: b"k".to_vec(),
                        value: b"v".to_vec(),
                    }],
                )
                .await
                .unwrap();
            out.revision
        };
        let s = EmbeddedStore::open(dir.path()).await.unwrap();
        let kv = s.get(b"k").await.unwrap().unwrap();
        assert_eq!((kv.value.as_slice(), kv.mod_revision), (&b"v"[..], rev));
        let next = s
            .txn(vec![], vec![Op::Delete { key: b"k".to_vec() }])
            .await
            .unwrap();
        assert!(next.revision > rev);
    }

    async fn put(s: &EmbeddedStore, k: &str, v: &str) -> i64 {
        s.txn(
            vec![],
            vec![Op::Put {
                key: k.as_bytes().to_vec(),
                value: v.as_bytes().to_vec(),
            }],
        )
        .await
        .unwrap()
        .revision
    }

    fn record(revision: i64, key: &str) -> Vec<u8> {
        let mut out = Vec::new();
        encode_record(
            &mut out,
            revision,
            &[Op::Put {
                key: key.as_bytes().to_vec(),
                value: b"v".to_vec(),
            }],
        );
        out
    }

    #[test]
    fn a_damaged_last_record_is_a_torn_tail_but_damage_before_more_log_is_refused() {
        let (a, b, c) = (record(1, "a"), record(2, "b"), record(3, "c"));
        let whole = [a.clone(), b.clone(), c.clone()].concat();
        let log = read_records(&whole).unwrap();
        assert_eq!((log.records.len(), log.torn_tail), (3, 0));

        // The last record complete in length but with a byte not written: torn.
        let mut torn = whole.clone();
        let last = torn.len() - 1;
        torn[last] ^= 0xff;
        let log = read_records(&torn).unwrap();
        assert_eq!((log.records.len(), log.torn_tail), (2, c.len()));

        // The same damage in the middle record: acknowledged records follow it, so
        // dropping them would lose data silently.
        let mut damaged = whole;
        damaged[a.len() + b.len() - 1] ^= 0xff;
        let err = read_records(&damaged).unwrap_err();
        assert_eq!(
            err,
            format!(
                "record at byte {} is damaged and {} bytes of log follow it",
                a.len(),
                c.len()
            )
        );
    }

    #[tokio::test]
    async fn embedded_store_refuses_to_open_a_log_damaged_in_the_middle() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = [record(1, "a"), record(2, "b"), record(3, "c")].concat();
        log[10] ^= 0xff;
        std::fs::write(dir.path().join(WAL_FILE_NAME), &log).unwrap();
        match EmbeddedStore::open(dir.path()).await {
            Err(StoreError::Corrupt { key, reason }) => {
                assert!(key.ends_with(WAL_FILE_NAME), "{key}");
                assert!(
                    reason.starts_with("record at byte 0 is damaged"),
                    "{reason}"
                );
            }
            other => panic!("expected a corrupt-log error, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn embedded_store_replays_the_log_and_drops_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let s = EmbeddedStore::open(dir.path()).await.unwrap();
        for i in 0..50 {
            put(&s, &format!("k{i:02}"), &format!("v{i}")).await;
        }
        s.txn(
            vec![],
            vec![Op::DeletePrefix {
                prefix: b"k4".to_vec(),
            }],
        )
        .await
        .unwrap();
        // What the log holds on disk now, as a crash would leave it (the close below
        // checkpoints and empties the log).
        let wal = dir.path().join(WAL_FILE_NAME);
        let mut logged = std::fs::read(&wal).unwrap();
        assert!(!logged.is_empty());
        drop(s);
        assert_eq!(std::fs::metadata(&wal).unwrap().len(), 0);

        // A fresh database with only the log (the redb file lost every non-durable
        // commit) plus half of an unacknowledged record: replay restores all of it.
        let crashed = tempfile::tempdir().unwrap();
        let mut torn = Vec::new();
        encode_record(
            &mut torn,
            52,
            &[Op::Put {
                key: b"z".to_vec(),
                value: b"torn".to_vec(),
            }],
        );
        logged.extend_from_slice(&torn[..torn.len() - 3]);
        std::fs::write(crashed.path().join(WAL_FILE_NAME), &logged).unwrap();
        let s = EmbeddedStore::open(crashed.path()).await.unwrap();
        let all = s.scan_prefix(b"").await.unwrap();
        assert_eq!(all.len(), 40, "k40..k49 were deleted");
        assert_eq!(s.get(b"k07").await.unwrap().unwrap().value, b"v7");
        assert!(s.get(b"z").await.unwrap().is_none());
        assert_eq!(
            put(&s, "z", "next").await,
            52,
            "revisions continue after the replay"
        );
    }

    /// Waits until every deferred write logged so far is synced (or syncing failed).
    fn wait_synced(sb: &SyncBehind) {
        let mut st = sb.state.lock().unwrap();
        while st.synced < st.logged && st.failed.is_none() {
            st = sb.wake.wait(st).unwrap();
        }
    }

    async fn put_deferred(s: &EmbeddedStore, k: &str, v: &str) -> i64 {
        s.txn_deferred(
            vec![],
            vec![Op::Put {
                key: k.as_bytes().to_vec(),
                value: v.as_bytes().to_vec(),
            }],
        )
        .await
        .unwrap()
        .revision
    }

    /// Deferred writes answer before their sync, are visible at once, take their place
    /// in the one log (so a crash keeps them in order with the synced writes around
    /// them) and are synced behind.
    #[tokio::test]
    async fn deferred_writes_are_visible_at_once_ordered_in_the_log_and_synced_behind() {
        let dir = tempfile::tempdir().unwrap();
        let s = EmbeddedStore::open(dir.path()).await.unwrap();
        assert_eq!(put(&s, "a", "1").await, 1);
        assert_eq!(put_deferred(&s, "b", "2").await, 2);
        assert_eq!(s.get(b"b").await.unwrap().unwrap().value, b"2");
        assert_eq!(put_deferred(&s, "a", "3").await, 3);
        assert_eq!(put(&s, "c", "4").await, 4);
        wait_synced(&s.inner.sync_behind);
        {
            let st = s.inner.sync_behind.state.lock().unwrap();
            assert_eq!((st.logged, st.synced, st.failed.as_deref()), (2, 2, None));
        }

        // The log as a kill -9 now would leave it: replaying it alone gives every
        // write, deferred or not, at its revision.
        let logged = std::fs::read(dir.path().join(WAL_FILE_NAME)).unwrap();
        let crashed = tempfile::tempdir().unwrap();
        std::fs::write(crashed.path().join(WAL_FILE_NAME), &logged).unwrap();
        let r = EmbeddedStore::open(crashed.path()).await.unwrap();
        let got: Vec<(Vec<u8>, Vec<u8>, i64)> = r
            .scan_prefix(b"")
            .await
            .unwrap()
            .into_iter()
            .map(|kv| (kv.key, kv.value, kv.mod_revision))
            .collect();
        assert_eq!(
            got,
            vec![
                (b"a".to_vec(), b"3".to_vec(), 3),
                (b"b".to_vec(), b"2".to_vec(), 2),
                (b"c".to_vec(), b"4".to_vec(), 4),
            ]
        );
        assert_eq!(put(&r, "d", "5").await, 5);
    }

    /// A background sync that failed leaves it unknown what is on disk: the store
    /// refuses every later write (synced or not), as after a failed log write.
    #[tokio::test]
    async fn a_failed_background_sync_refuses_later_writes() {
        let dir = tempfile::tempdir().unwrap();
        let s = EmbeddedStore::open(dir.path()).await.unwrap();
        put_deferred(&s, "a", "1").await;
        s.inner.sync_behind.state.lock().unwrap().failed =
            Some("background log sync failed: injected".into());
        for deferred in [false, true] {
            let ops = vec![Op::Put {
                key: b"b".to_vec(),
                value: b"2".to_vec(),
            }];
            let res = if deferred {
                s.txn_deferred(vec![], ops).await
            } else {
                s.txn(vec![], ops).await
            };
            match res {
                Err(StoreError::Backend(why)) => assert_eq!(
                    why,
                    "embedded store refuses writes until reopened: background log sync failed: injected"
                ),
                other => panic!("expected a refusal, got {other:?}"),
            }
        }
        assert!(s.get(b"b").await.unwrap().is_none());
    }

    /// Synced writes, and deferred writes alone (the inline path hands a due
    /// checkpoint to the blocking pool), keep the log small.
    #[tokio::test]
    async fn embedded_store_checkpoints_and_stays_consistent() {
        for deferred in [false, true] {
            checkpoints_and_stays_consistent(deferred).await;
        }
    }

    async fn checkpoints_and_stays_consistent(deferred: bool) {
        let dir = tempfile::tempdir().unwrap();
        let s = EmbeddedStore::open_with(dir.path(), 200).await.unwrap();
        for i in 0..100 {
            let key = format!("k{i:03}");
            if deferred {
                put_deferred(&s, &key, "v").await;
            } else {
                put(&s, &key, "v").await;
            }
        }
        // While a checkpoint is in flight the active log grows past the threshold; once
        // it is done, the next write freezes the log again.
        s.inner.wait_checkpoint_idle();
        put(&s, "w", "v").await;
        s.inner.wait_checkpoint_idle();
        let wal_len = std::fs::metadata(dir.path().join(WAL_FILE_NAME))
            .unwrap()
            .len();
        assert!(
            wal_len < 400,
            "the log is emptied at checkpoints (deferred: {deferred}): {wal_len} bytes"
        );
        assert!(!dir.path().join(FROZEN_WAL_FILE_NAME).exists());
        drop(s);
        let s = EmbeddedStore::open(dir.path()).await.unwrap();
        assert_eq!(s.scan_prefix(b"k").await.unwrap().len(), 100);
        assert_eq!(put(&s, "x", "v").await, 102);
    }

    /// Every key, value and revision the store holds, in key order.
    async fn dump(s: &EmbeddedStore) -> Vec<(String, String, i64)> {
        s.scan_prefix(b"")
            .await
            .unwrap()
            .into_iter()
            .map(|kv| {
                (
                    String::from_utf8(kv.key).unwrap(),
                    String::from_utf8(kv.value).unwrap(),
                    kv.mod_revision,
                )
            })
            .collect()
    }

    fn want(rows: &[(&str, &str, i64)]) -> Vec<(String, String, i64)> {
        rows.iter()
            .map(|(k, v, r)| ((*k).to_owned(), (*v).to_owned(), *r))
            .collect()
    }

    async fn write(s: &EmbeddedStore, compares: Vec<Compare>, ops: Vec<Op>) -> TxnOutcome {
        s.txn(compares, ops).await.unwrap()
    }

    fn delete(k: &str) -> Op {
        Op::Delete {
            key: k.as_bytes().to_vec(),
        }
    }

    fn delete_prefix(p: &str) -> Op {
        Op::DeletePrefix {
            prefix: p.as_bytes().to_vec(),
        }
    }

    fn put_op(k: &str, v: &str) -> Op {
        Op::Put {
            key: k.as_bytes().to_vec(),
            value: v.as_bytes().to_vec(),
        }
    }

    /// redb's durable revision (what a checkpoint has committed so far).
    fn redb_revision(s: &EmbeddedStore) -> i64 {
        let r = s.inner.shared.db.begin_read().unwrap();
        let meta = r.open_table(META).unwrap();
        meta.get(REVISION).unwrap().map_or(0, |v| v.value())
    }

    fn frozen_layer(s: &EmbeddedStore) -> bool {
        s.inner.shared.layers.read().unwrap().frozen.is_some()
    }

    /// Writes and reads go on while the checkpoint thread holds a frozen overlay (not
    /// committed yet, then committed but not dropped), and read the active overlay
    /// over the frozen one over redb: overwrites, deletions and prefix deletions of
    /// keys that live only in the frozen overlay or only in redb. Then the
    /// checkpoint completes, and everything reads the same, before and after a reopen.
    #[tokio::test]
    async fn writes_and_reads_proceed_while_a_checkpoint_is_in_flight() {
        let dir = tempfile::tempdir().unwrap();
        let s = EmbeddedStore::open(dir.path()).await.unwrap();
        for k in ["a/1", "a/2", "a/3", "b/1", "b/2"] {
            put(&s, k, "redb").await;
        }
        s.inner.checkpoint_now();
        s.inner.wait_checkpoint_idle();
        assert_eq!(redb_revision(&s), 5);

        // The frozen layer: an overwrite of a redb key and keys only it holds.
        for k in ["a/2", "a/4", "c/1", "c/2"] {
            put(&s, k, "frozen").await;
        }
        s.inner.hold_checkpoint(Some(Hold::BeforeCommit));
        s.inner.checkpoint_now();
        assert!(frozen_layer(&s));
        assert!(dir.path().join(FROZEN_WAL_FILE_NAME).exists());
        assert_eq!(
            std::fs::metadata(dir.path().join(WAL_FILE_NAME))
                .unwrap()
                .len(),
            0
        );

        // A compare on a key only the frozen overlay holds.
        let a4 = s.get(b"a/4").await.unwrap().unwrap();
        assert_eq!((a4.value.as_slice(), a4.mod_revision), (&b"frozen"[..], 7));
        let out = write(
            &s,
            vec![Compare::ModRevision {
                key: b"a/4".to_vec(),
                revision: Some(7),
            }],
            vec![put_op("a/2", "active")],
        )
        .await;
        assert_eq!((out.succeeded, out.revision), (true, 10));
        let out = write(
            &s,
            vec![Compare::ValueEquals {
                key: b"a/2".to_vec(),
                value: b"frozen".to_vec(),
            }],
            vec![put_op("z", "never")],
        )
        .await;
        assert_eq!((out.succeeded, out.revision), (false, 10));
        assert_eq!(write(&s, vec![], vec![delete("a/4")]).await.revision, 11);
        assert_eq!(write(&s, vec![], vec![delete("a/1")]).await.revision, 12);
        // Prefix deletions of keys only in the frozen overlay, and only in redb (with
        // a put under the prefix in the same transaction, before the deletion).
        assert_eq!(
            write(&s, vec![], vec![delete_prefix("c/")]).await.revision,
            13
        );
        assert_eq!(
            write(&s, vec![], vec![put_op("b/3", "gone"), delete_prefix("b/")])
                .await
                .revision,
            14
        );
        assert_eq!(put_deferred(&s, "d/1", "active").await, 15);
        let mut expected = want(&[
            ("a/2", "active", 10),
            ("a/3", "redb", 3),
            ("d/1", "active", 15),
        ]);
        assert_eq!(dump(&s).await, expected);
        for gone in ["a/1", "a/4", "b/1", "b/3", "c/1", "c/2", "z"] {
            assert!(s.get(gone.as_bytes()).await.unwrap().is_none(), "{gone}");
        }
        let two = s.range(b"a/", b"e", 2).await.unwrap();
        assert_eq!(
            two.iter().map(|kv| kv.key.as_slice()).collect::<Vec<_>>(),
            [&b"a/2"[..], b"a/3"]
        );
        assert_eq!(redb_revision(&s), 5, "the checkpoint has not committed yet");

        // Committed to redb, the frozen overlay and log still there.
        s.inner.hold_checkpoint(Some(Hold::BeforeDrop));
        s.inner.wait_held();
        assert_eq!(redb_revision(&s), 9);
        assert!(frozen_layer(&s));
        assert!(dir.path().join(FROZEN_WAL_FILE_NAME).exists());
        assert_eq!(dump(&s).await, expected);
        // A prefix deletion of a key only redb holds, in that state.
        let out = write(
            &s,
            vec![Compare::ModRevision {
                key: b"a/3".to_vec(),
                revision: Some(3),
            }],
            vec![delete_prefix("a/3"), put_op("e/1", "active")],
        )
        .await;
        assert_eq!((out.succeeded, out.revision), (true, 16));
        expected = want(&[
            ("a/2", "active", 10),
            ("d/1", "active", 15),
            ("e/1", "active", 16),
        ]);
        assert_eq!(dump(&s).await, expected);

        // Done: the frozen overlay and log are gone, and nothing reads differently.
        s.inner.hold_checkpoint(None);
        s.inner.wait_checkpoint_idle();
        assert!(!frozen_layer(&s));
        assert!(!dir.path().join(FROZEN_WAL_FILE_NAME).exists());
        assert_eq!(dump(&s).await, expected);
        for gone in ["a/1", "a/3", "a/4", "b/1", "c/1"] {
            assert!(s.get(gone.as_bytes()).await.unwrap().is_none(), "{gone}");
        }
        // And after the active overlay is checkpointed too, and after a reopen.
        s.inner.checkpoint_now();
        s.inner.wait_checkpoint_idle();
        assert_eq!(redb_revision(&s), 16);
        assert_eq!(dump(&s).await, expected);
        drop(s);
        let s = EmbeddedStore::open(dir.path()).await.unwrap();
        assert_eq!(dump(&s).await, expected);
        assert_eq!(put(&s, "f", "next").await, 17);
    }

    fn copy_logs(from: &Path, to: &Path, frozen: bool, active: bool) {
        if frozen {
            std::fs::copy(
                from.join(FROZEN_WAL_FILE_NAME),
                to.join(FROZEN_WAL_FILE_NAME),
            )
            .unwrap();
        }
        if active {
            std::fs::copy(from.join(WAL_FILE_NAME), to.join(WAL_FILE_NAME)).unwrap();
        }
    }

    /// Opening leaves one empty active log and no frozen log.
    fn assert_logs_settled(dir: &Path) {
        assert!(!dir.join(FROZEN_WAL_FILE_NAME).exists());
        assert_eq!(std::fs::metadata(dir.join(WAL_FILE_NAME)).unwrap().len(), 0);
    }

    /// Crashes between a rotation and its checkpoint's redb commit (redb still at its
    /// revision from before; here a fresh database, at 0): the frozen log, then the
    /// active one, replay to exactly the acknowledged state. Also a crash after the
    /// rename but before the new log existed (the frozen log alone), or before
    /// anything was written to it (an empty active log).
    #[tokio::test]
    async fn reopen_replays_the_frozen_log_then_the_active_log() {
        let dir = tempfile::tempdir().unwrap();
        let s = EmbeddedStore::open(dir.path()).await.unwrap();
        for i in 0..10 {
            put(&s, &format!("k{i}"), "1").await;
        }
        s.inner.hold_checkpoint(Some(Hold::BeforeCommit));
        s.inner.checkpoint_now();
        let at_rotation = dump(&s).await;
        let only_frozen = tempfile::tempdir().unwrap();
        copy_logs(dir.path(), only_frozen.path(), true, false);
        let empty_active = tempfile::tempdir().unwrap();
        copy_logs(dir.path(), empty_active.path(), true, true);

        assert_eq!(put_deferred(&s, "k3", "2").await, 11);
        assert_eq!(write(&s, vec![], vec![delete("k4")]).await.revision, 12);
        assert_eq!(
            write(&s, vec![], vec![delete_prefix("k0")]).await.revision,
            13
        );
        assert_eq!(put(&s, "z", "2").await, 14);
        let acknowledged = dump(&s).await;
        let both = tempfile::tempdir().unwrap();
        copy_logs(dir.path(), both.path(), true, true);

        for (crashed, expected, next) in [
            (&only_frozen, &at_rotation, 11),
            (&empty_active, &at_rotation, 11),
            (&both, &acknowledged, 15),
        ] {
            let r = EmbeddedStore::open(crashed.path()).await.unwrap();
            assert_logs_settled(crashed.path());
            assert_eq!(&dump(&r).await, expected);
            assert_eq!(redb_revision(&r), next - 1);
            assert_eq!(put(&r, "y", "3").await, next);
        }
    }

    /// A crash after the checkpoint's redb commit but before the frozen log was
    /// removed: its records are all at or below redb's durable revision, so they are
    /// skipped (not applied again) and the log removed; the active log replays.
    #[tokio::test]
    async fn a_frozen_log_already_in_redb_is_skipped_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let s = EmbeddedStore::open(dir.path()).await.unwrap();
        for i in 0..5 {
            put(&s, &format!("k{i}"), "1").await;
        }
        s.inner.hold_checkpoint(Some(Hold::BeforeDrop));
        s.inner.checkpoint_now();
        s.inner.wait_held();
        assert_eq!(redb_revision(&s), 5);
        let frozen = std::fs::read(dir.path().join(FROZEN_WAL_FILE_NAME)).unwrap();
        assert_eq!(put(&s, "k1", "2").await, 6);
        assert_eq!(write(&s, vec![], vec![delete("k2")]).await.revision, 7);
        let active = std::fs::read(dir.path().join(WAL_FILE_NAME)).unwrap();
        let acknowledged = dump(&s).await;

        // The same redb state (revision 5, the same five writes, cleanly closed)
        // with the two logs as the crash left them.
        let crashed = tempfile::tempdir().unwrap();
        {
            let c = EmbeddedStore::open(crashed.path()).await.unwrap();
            for i in 0..5 {
                put(&c, &format!("k{i}"), "1").await;
            }
        }
        std::fs::write(crashed.path().join(FROZEN_WAL_FILE_NAME), &frozen).unwrap();
        let r = EmbeddedStore::open(crashed.path()).await.unwrap();
        assert_logs_settled(crashed.path());
        assert_eq!(
            dump(&r).await,
            want(&[
                ("k0", "1", 1),
                ("k1", "1", 2),
                ("k2", "1", 3),
                ("k3", "1", 4),
                ("k4", "1", 5)
            ])
        );
        drop(r);
        std::fs::write(crashed.path().join(FROZEN_WAL_FILE_NAME), &frozen).unwrap();
        std::fs::write(crashed.path().join(WAL_FILE_NAME), &active).unwrap();
        let r = EmbeddedStore::open(crashed.path()).await.unwrap();
        assert_logs_settled(crashed.path());
        assert_eq!(dump(&r).await, acknowledged);
        assert_eq!(put(&r, "y", "3").await, 8);
    }

    async fn open_err(dir: &Path) -> (String, String) {
        match EmbeddedStore::open(dir).await {
            Err(StoreError::Corrupt { key, reason }) => (key, reason),
            other => panic!("expected a corrupt-log error, got {other:?}"),
        }
    }

    /// The two logs are one sequence: damage in the frozen log with more log after
    /// it (in the frozen log or in the active one) and a revision gap across the two
    /// are refused; a torn record is dropped only at the very end.
    #[tokio::test]
    async fn damage_in_the_frozen_log_before_more_log_is_refused() {
        let (r1, r2, r3) = (record(1, "a"), record(2, "b"), record(3, "c"));
        let torn = |mut rec: Vec<u8>| {
            let last = rec.len() - 1;
            rec[last] ^= 0xff;
            rec
        };

        // A damaged record in the middle of the frozen log.
        let dir = tempfile::tempdir().unwrap();
        let mut frozen = [r1.clone(), r2.clone(), r3.clone()].concat();
        frozen[r1.len() + 10] ^= 0xff;
        std::fs::write(dir.path().join(FROZEN_WAL_FILE_NAME), &frozen).unwrap();
        let (key, reason) = open_err(dir.path()).await;
        assert!(key.ends_with(FROZEN_WAL_FILE_NAME), "{key}");
        assert!(
            reason.starts_with(&format!("record at byte {} is damaged", r1.len())),
            "{reason}"
        );

        // A damaged last record of the frozen log, with the active log after it.
        let dir = tempfile::tempdir().unwrap();
        let frozen = [r1.clone(), torn(r2.clone())].concat();
        std::fs::write(dir.path().join(FROZEN_WAL_FILE_NAME), &frozen).unwrap();
        std::fs::write(dir.path().join(WAL_FILE_NAME), &r3).unwrap();
        let (key, reason) = open_err(dir.path()).await;
        assert!(key.ends_with(FROZEN_WAL_FILE_NAME), "{key}");
        assert_eq!(
            reason,
            format!(
                "the last {} bytes are a damaged record and the active log follows it",
                r2.len()
            )
        );

        // A revision missing between the two logs.
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FROZEN_WAL_FILE_NAME), &r1).unwrap();
        std::fs::write(dir.path().join(WAL_FILE_NAME), &r3).unwrap();
        let (key, reason) = open_err(dir.path()).await;
        assert!(key.ends_with(WAL_FILE_NAME), "{key}");
        assert_eq!(reason, "log record at revision 3 follows revision 1");

        // The same torn record with nothing after it ends the sequence: dropped.
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FROZEN_WAL_FILE_NAME), &frozen).unwrap();
        let s = EmbeddedStore::open(dir.path()).await.unwrap();
        assert_logs_settled(dir.path());
        assert_eq!(dump(&s).await, want(&[("a", "v", 1)]));
        drop(s);

        // A torn record at the end of the active log, after a whole frozen log.
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FROZEN_WAL_FILE_NAME), &r1).unwrap();
        std::fs::write(dir.path().join(WAL_FILE_NAME), [r2, torn(r3)].concat()).unwrap();
        let s = EmbeddedStore::open(dir.path()).await.unwrap();
        assert_logs_settled(dir.path());
        assert_eq!(dump(&s).await, want(&[("a", "v", 1), ("b", "v", 2)]));
    }

    /// A clean close while a checkpoint is in flight (not committed yet, or
    /// committed but not dropped) stops the thread and commits everything: the
    /// reopen replays nothing and loses nothing.
    #[tokio::test]
    async fn reopen_after_close_with_a_checkpoint_in_flight_loses_nothing() {
        for hold in [Hold::BeforeCommit, Hold::BeforeDrop] {
            let dir = tempfile::tempdir().unwrap();
            let s = EmbeddedStore::open(dir.path()).await.unwrap();
            for i in 0..10 {
                put(&s, &format!("k{i}"), "1").await;
            }
            s.inner.hold_checkpoint(Some(hold));
            s.inner.checkpoint_now();
            if hold == Hold::BeforeDrop {
                s.inner.wait_held();
            }
            put_deferred(&s, "k1", "2").await;
            write(&s, vec![], vec![delete("k2"), delete_prefix("k3")]).await;
            put(&s, "z", "2").await;
            let acknowledged = dump(&s).await;
            assert_eq!(acknowledged.len(), 9, "{hold:?}");
            drop(s);
            assert_logs_settled(dir.path());
            let s = EmbeddedStore::open(dir.path()).await.unwrap();
            assert_eq!(redb_revision(&s), 13, "{hold:?}");
            assert_eq!(dump(&s).await, acknowledged, "{hold:?}");
            assert_eq!(put(&s, "y", "3").await, 14, "{hold:?}");
        }
    }

    fn wal_len(dir: &Path) -> u64 {
        std::fs::metadata(dir.join(WAL_FILE_NAME)).unwrap().len()
    }

    /// A failed checkpoint commit keeps the frozen overlay and log, writes go on into
    /// the active log (which grows past the threshold: no second rotation while one
    /// is frozen), and the thread retries on its own.
    #[tokio::test]
    async fn a_failed_checkpoint_keeps_the_frozen_log_and_is_retried() {
        let dir = tempfile::tempdir().unwrap();
        let s = EmbeddedStore::open_with(dir.path(), 100).await.unwrap();
        s.inner.shared.cp.lock().unwrap().fail_commits = 1;
        let mut rev = 0;
        while !frozen_layer(&s) {
            rev = put(&s, &format!("k{rev:02}"), "1").await;
        }
        s.inner.wait_checkpoint_failed();
        let frozen = std::fs::read(dir.path().join(FROZEN_WAL_FILE_NAME)).unwrap();
        assert_eq!(redb_revision(&s), 0);
        for i in 0..10 {
            rev = put(&s, &format!("k{:02}", rev), "2").await;
            if i == 5 {
                write(&s, vec![], vec![delete("k00")]).await;
            }
        }
        assert!(wal_len(dir.path()) > 100, "the active log grew");
        assert_eq!(
            std::fs::read(dir.path().join(FROZEN_WAL_FILE_NAME)).unwrap(),
            frozen,
            "no second rotation while one is frozen"
        );
        let acknowledged = dump(&s).await;
        assert_eq!(acknowledged.len(), rev as usize - 2);
        s.inner.wait_checkpoint_idle();
        assert!(!frozen_layer(&s));
        assert!(!dir.path().join(FROZEN_WAL_FILE_NAME).exists());
        assert!(redb_revision(&s) > 0);
        assert_eq!(dump(&s).await, acknowledged);
        // The next write finds the log due and nothing frozen: it rotates again.
        put(&s, "z", "3").await;
        assert!(frozen_layer(&s) || redb_revision(&s) == rev + 1);
        s.inner.wait_checkpoint_idle();
        assert_eq!(redb_revision(&s), rev + 1);
    }

    /// A rotation that fails (the frozen log's name taken by a directory) loses
    /// nothing and refuses nothing: writes go on in the active log, and the rotation
    /// is tried again after a delay.
    #[tokio::test]
    async fn a_failed_rotation_is_retried_later_and_loses_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let s = EmbeddedStore::open_with(dir.path(), 100).await.unwrap();
        let blocker = dir.path().join(FROZEN_WAL_FILE_NAME);
        std::fs::create_dir(&blocker).unwrap();
        for i in 0..10 {
            put(&s, &format!("k{i}"), "1").await;
        }
        assert!(!frozen_layer(&s));
        assert!(wal_len(dir.path()) > 100);
        assert!(s.inner.wal.lock().unwrap().next_rotation > Instant::now());
        std::fs::remove_dir(&blocker).unwrap();
        // The retry time reached (set instead of waited for).
        s.inner.wal.lock().unwrap().next_rotation = Instant::now();
        assert_eq!(put(&s, "z", "2").await, 11);
        assert_eq!(wal_len(dir.path()), 0, "rotated");
        s.inner.wait_checkpoint_idle();
        assert_eq!(redb_revision(&s), 11);
        let acknowledged = dump(&s).await;
        assert_eq!(acknowledged.len(), 11);
        drop(s);
        let s = EmbeddedStore::open(dir.path()).await.unwrap();
        assert_eq!(dump(&s).await, acknowledged);
    }
}
