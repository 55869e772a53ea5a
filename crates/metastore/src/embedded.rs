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
//! tombstones) that reads consult before redb. Every [`CHECKPOINT_BYTES`] of log or
//! [`CHECKPOINT_EVERY`], the overlay goes into redb in ONE durable commit (a page
//! touched by many transactions is written once) and the log is emptied. Opening
//! replays the log records newer than redb's durable revision (a torn last record,
//! never acknowledged, is dropped). `txn` returning `Ok` therefore still means the
//! data is on disk, and nothing is visible before it is.
//!
//! The log is zero-filled ahead of its end, [`LOG_STEP`] at a time, and records
//! overwrite the zeros in place: an `fdatasync` of a file whose size did not change
//! writes the record's pages and flushes the disk, without the filesystem journal
//! commit an appending write needs for the new size (on this project's ext4 machine,
//! under other processes' writes, a median 0.08 ms instead of 0.1–1.4 ms, and a far
//! shorter tail). A record header of zeros ends the log.
//!
//! `txn_deferred` appends its record the same way but answers without the
//! `fdatasync`: a background thread syncs the log within [`SYNC_BEHIND`] (one
//! `fdatasync` for all the deferred writes of that moment), and any later `txn`'s own
//! sync covers it sooner, since the log is one file written in order. A process kill
//! loses nothing (the record is in the page cache); a power loss in that moment loses
//! the deferred record with every record after it (should the disk have kept a later
//! unsynced page but not an earlier one, opening refuses the log as damaged, as it
//! refuses any log damaged before its end). A failed background sync refuses every later
//! write until the store is reopened, as a failed log write does.
//!
//! redb is synchronous, so every call runs on tokio's blocking pool (except a deferred
//! write that finds the log free and no checkpoint due: it only appends to the page
//! cache, on the caller's thread); writers are serialized by the log's mutex; readers
//! take the overlay's read lock.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Read;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use super::{Compare, KeyValue, MetaStore, Op, StoreError, TxnOutcome};

const DATA: TableDefinition<&[u8], &[u8]> = TableDefinition::new("kv");
const META: TableDefinition<&str, i64> = TableDefinition::new("meta");
const REVISION: &str = "revision";

/// File name of the database inside the store directory.
pub const FILE_NAME: &str = "control-plane.redb";
/// File name of the write-ahead log inside the store directory.
pub const WAL_FILE_NAME: &str = "control-plane.wal";
/// Log size after which redb is made durable and the log emptied.
pub const CHECKPOINT_BYTES: u64 = 32 << 20;
/// Longest time between checkpoints while writes happen.
pub const CHECKPOINT_EVERY: Duration = Duration::from_secs(30);
/// Longest a deferred write waits for the background sync (nats-server syncs its
/// files every 2 minutes by default).
pub const SYNC_BEHIND: Duration = Duration::from_millis(50);
/// How far the log is zero-filled ahead of its end at a time (see the module docs).
pub const LOG_STEP: u64 = 1 << 20;

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
    db: Database,
    wal: Mutex<Wal>,
    /// Keys written since the last checkpoint: `Some((revision, value))`, or `None`
    /// for a deletion. Lock order: `wal`, then `overlay`.
    overlay: RwLock<Overlay>,
    checkpoint_bytes: u64,
    sync_behind: Arc<SyncBehind>,
}

/// The background `fdatasync` of the log behind deferred writes.
#[derive(Debug)]
struct SyncBehind {
    /// A second handle on the log file: syncing takes no log lock.
    file: File,
    state: Mutex<SyncState>,
    wake: Condvar,
}

#[derive(Debug, Default)]
struct SyncState {
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
            file,
            state: Mutex::new(SyncState::default()),
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
            let target = {
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
                st.logged
            };
            let res = self.file.sync_data();
            let Ok(mut st) = self.state.lock() else {
                return;
            };
            match res {
                Ok(()) => {
                    st.synced = target;
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

type Overlay = BTreeMap<Vec<u8>, Option<(i64, Vec<u8>)>>;

fn lock_err() -> StoreError {
    StoreError::Backend("embedded store lock poisoned".into())
}

/// Reads `key` from the overlay, else from redb.
fn lookup(
    overlay: &Overlay,
    data: &impl ReadableTable<&'static [u8], &'static [u8]>,
    key: &[u8],
) -> Result<Option<KeyValue>, StoreError> {
    if let Some(v) = overlay.get(key) {
        return Ok(v.as_ref().map(|(rev, value)| KeyValue {
            key: key.to_vec(),
            value: value.clone(),
            mod_revision: *rev,
        }));
    }
    match data.get(key).map_err(|e| backend("get", e))? {
        Some(v) => Ok(Some(decode(key, v.value())?)),
        None => Ok(None),
    }
}

#[derive(Debug)]
struct Wal {
    file: File,
    /// Bytes of records; the file holds zeros from here to `allocated`.
    len: u64,
    allocated: u64,
    /// The store's revision (redb's durable one plus the overlay's writes).
    revision: i64,
    last_checkpoint: Instant,
    /// Set when a write failed half-way (log and redb may disagree): every later
    /// write is refused until the store is reopened (which replays the log).
    poisoned: Option<String>,
    buf: Vec<u8>,
}

impl Wal {
    /// Zero-fills the log so that `needed` more bytes of records fit without changing
    /// the file's size (at least [`LOG_STEP`] ahead). Made durable by the next sync.
    fn reserve(&mut self, needed: u64) -> std::io::Result<()> {
        use std::os::unix::fs::FileExt;
        let want = self.len + needed;
        if want <= self.allocated {
            return Ok(());
        }
        let target = want.max(self.allocated + LOG_STEP);
        let zeros = [0u8; 64 << 10];
        let mut at = self.allocated;
        while at < target {
            let n = usize::try_from((target - at).min(zeros.len() as u64)).unwrap_or(zeros.len());
            self.file.write_all_at(&zeros[..n], at)?;
            at += n as u64;
        }
        self.allocated = target;
        Ok(())
    }

    /// Empties the log and zero-fills its first [`LOG_STEP`] again, durably. If emptying
    /// fails nothing changed; if filling fails, the next write fills again.
    fn reset(&mut self) -> std::io::Result<()> {
        self.file.set_len(0)?;
        self.len = 0;
        self.allocated = 0;
        self.reserve(LOG_STEP)?;
        self.file.sync_data()
    }
}

fn backend(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(format!("redb {what}: {e}"))
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

/// Reads a log: records up to a header of zeros (the zero-filled space ahead of the
/// log's end) or the end of the file. A bad record is accepted only as the log's last
/// one (a torn write), followed by nothing but zeros; a bad record with more log after
/// it is corruption of acknowledged data, refused.
fn read_records(raw: &[u8]) -> Result<LogContents, String> {
    let zeros = |from: usize| {
        raw.get(from..)
            .is_none_or(|rest| rest.iter().all(|b| *b == 0))
    };
    let mut records = Vec::new();
    let mut at = 0usize;
    let mut torn_tail = 0;
    while at < raw.len() {
        if zeros(at) {
            break;
        }
        let mut c = Cursor(&raw[at..]);
        let (Some(len), Some(crc)) = (c.u32(), c.u32()) else {
            torn_tail = raw.len() - at;
            break;
        };
        let Some(payload) = c.take(len) else {
            torn_tail = raw.len() - at;
            break;
        };
        let end = at + 8 + len;
        let whole = u32::try_from(crc).is_ok_and(|crc| crc32c::crc32c(payload) == crc);
        match whole.then(|| decode_payload(payload)).flatten() {
            Some(rec) => records.push(rec),
            None if zeros(end) => {
                torn_tail = end - at;
                break;
            }
            None => {
                return Err(format!(
                    "record at byte {at} is damaged and {} bytes of log follow it",
                    raw.len() - end
                ));
            }
        }
        at = end;
    }
    Ok(LogContents { records, torn_tail })
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

/// Opens the database, replays the log into it durably and empties the log.
fn open_blocking(dir: &Path, checkpoint_bytes: u64) -> Result<Inner, StoreError> {
    std::fs::create_dir_all(dir)
        .map_err(|e| backend(&format!("create dir `{}`", dir.display()), e))?;
    let path = dir.join(FILE_NAME);
    let db =
        Database::create(&path).map_err(|e| backend(&format!("open `{}`", path.display()), e))?;
    let wal_path = dir.join(WAL_FILE_NAME);
    let io =
        |what: &str, e: std::io::Error| backend(&format!("{what} `{}`", wal_path.display()), e);
    let mut raw = Vec::new();
    match File::open(&wal_path) {
        Ok(mut f) => {
            f.read_to_end(&mut raw).map_err(|e| io("read", e))?;
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io("open", e)),
    }
    // Make sure both tables exist so read transactions never fail on them, and
    // replay what the log holds beyond redb's durable state.
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
        let log = read_records(&raw).map_err(|reason| StoreError::Corrupt {
            key: wal_path.display().to_string(),
            reason,
        })?;
        if log.torn_tail > 0 {
            tracing::warn!(
                bytes = log.torn_tail,
                "embedded store: dropping a torn last write-ahead log record (cut short by a crash; never acknowledged)"
            );
        }
        for (revision, ops) in log.records {
            if revision <= current {
                continue;
            }
            if revision != current + 1 {
                return Err(StoreError::Corrupt {
                    key: wal_path.display().to_string(),
                    reason: format!("log record at revision {revision} follows revision {current}"),
                });
            }
            apply_ops(&mut data, revision, ops)?;
            current = revision;
            replayed += 1;
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
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&wal_path)
        .map_err(|e| io("open", e))?;
    let sync_behind = file
        .try_clone()
        .and_then(SyncBehind::start)
        .map_err(|e| io("start the log sync for", e))?;
    let mut wal = Wal {
        file,
        len: 0,
        allocated: 0,
        revision,
        last_checkpoint: Instant::now(),
        poisoned: None,
        buf: Vec::new(),
    };
    wal.reset().map_err(|e| io("empty", e))?;
    Ok(Inner {
        db,
        wal: Mutex::new(wal),
        overlay: RwLock::new(BTreeMap::new()),
        checkpoint_bytes,
        sync_behind,
    })
}

impl Inner {
    /// Writes the overlay into redb in one durable commit, then empties it and the log.
    fn checkpoint(&self, wal: &mut Wal) -> Result<(), StoreError> {
        let started = Instant::now();
        let mut overlay = self.overlay.write().map_err(|_| lock_err())?;
        let keys = overlay.len();
        let w = self
            .db
            .begin_write()
            .map_err(|e| backend("begin write", e))?;
        {
            let mut meta = w.open_table(META).map_err(|e| backend("open table", e))?;
            let mut data = w.open_table(DATA).map_err(|e| backend("open table", e))?;
            let mut buf = Vec::new();
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
            meta.insert(REVISION, wal.revision)
                .map_err(|e| backend("set revision", e))?;
        }
        w.commit().map_err(|e| backend("checkpoint commit", e))?;
        overlay.clear();
        drop(overlay);
        // Records left behind by a crash before this truncation is durable are not
        // newer than redb's durable revision and are skipped at replay.
        let log_bytes = wal.len;
        wal.last_checkpoint = Instant::now();
        // On failure the log is either untouched (its records are not newer than redb
        // now, skipped at replay) or empty with its zero-fill redone by the next write.
        wal.reset().map_err(|e| backend("empty log", e))?;
        // Writers wait for this: its duration is the embedded store's latency spike.
        tracing::debug!(
            keys,
            log_bytes,
            ms = started.elapsed().as_millis() as u64,
            "embedded store: checkpoint"
        );
        Ok(())
    }

    /// One transaction on the blocking pool, then the checkpoint if one is due;
    /// `synced`: the log is `fdatasync`ed before it answers, else by the background
    /// sync right after.
    fn txn(
        &self,
        compares: Vec<Compare>,
        ops: Vec<Op>,
        synced: bool,
    ) -> Result<TxnOutcome, StoreError> {
        let mut guard = self.wal.lock().map_err(|_| lock_err())?;
        let out = self.txn_locked(&mut guard, compares, ops, synced)?;
        if self.checkpoint_due(&guard)
            && let Err(e) = self.checkpoint(&mut guard)
        {
            // The log and the overlay still hold everything: retried at the next write.
            tracing::warn!(error = %e, "embedded store: checkpoint failed");
        }
        Ok(out)
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

    fn checkpoint_due(&self, wal: &Wal) -> bool {
        wal.len >= self.checkpoint_bytes || wal.last_checkpoint.elapsed() >= CHECKPOINT_EVERY
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
        let needs_redb =
            !compares.is_empty() || ops.iter().any(|op| matches!(op, Op::DeletePrefix { .. }));
        let read = if needs_redb {
            Some(self.db.begin_read().map_err(|e| backend("begin read", e))?)
        } else {
            None
        };
        let data = match &read {
            Some(r) => Some(r.open_table(DATA).map_err(|e| backend("open table", e))?),
            None => None,
        };
        {
            let overlay = self.overlay.read().map_err(|_| lock_err())?;
            for c in &compares {
                let Some(data) = &data else { break };
                let holds = match c {
                    Compare::ModRevision { key, revision } => {
                        lookup(&overlay, data, key)?.map(|kv| kv.mod_revision) == *revision
                    }
                    Compare::ValueEquals { key, value } => {
                        lookup(&overlay, data, key)?.is_some_and(|kv| kv.value == *value)
                    }
                };
                if !holds {
                    return Ok(TxnOutcome {
                        succeeded: false,
                        revision: current,
                    });
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
        let logged = wal.reserve(wal.buf.len() as u64).and_then(|()| {
            use std::os::unix::fs::FileExt;
            wal.file.write_all_at(&wal.buf, wal.len)?;
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
        wal.len += wal.buf.len() as u64;
        wal.revision = revision;
        {
            let mut overlay = self.overlay.write().map_err(|_| lock_err())?;
            for op in ops {
                match op {
                    Op::Put { key, value } => {
                        overlay.insert(key, Some((revision, value)));
                    }
                    Op::Delete { key } => {
                        overlay.insert(key, None);
                    }
                    Op::DeletePrefix { prefix } => {
                        let end = super::prefix_end(&prefix);
                        let upper = if end.is_empty() {
                            Bound::Unbounded
                        } else {
                            Bound::Excluded(end.clone())
                        };
                        for (_, v) in overlay.range_mut((Bound::Included(prefix.clone()), upper)) {
                            *v = None;
                        }
                        if let Some(data) = &data {
                            let iter = if end.is_empty() {
                                data.range(prefix.as_slice()..)
                            } else {
                                data.range(prefix.as_slice()..end.as_slice())
                            }
                            .map_err(|e| backend("range", e))?;
                            for item in iter {
                                let (k, _) = item.map_err(|e| backend("range", e))?;
                                overlay.insert(k.value().to_vec(), None);
                            }
                        }
                    }
                }
            }
        }
        drop(data);
        drop(read);
        Ok(TxnOutcome {
            succeeded: true,
            revision,
        })
    }

    fn get(&self, key: &[u8]) -> Result<Option<KeyValue>, StoreError> {
        let overlay = self.overlay.read().map_err(|_| lock_err())?;
        let r = self.db.begin_read().map_err(|e| backend("begin read", e))?;
        let t = r.open_table(DATA).map_err(|e| backend("open table", e))?;
        lookup(&overlay, &t, key)
    }

    /// redb's keys merged with the overlay's, in key order.
    fn range(&self, start: &[u8], end: &[u8], limit: usize) -> Result<Vec<KeyValue>, StoreError> {
        if !end.is_empty() && end <= start {
            return Ok(Vec::new());
        }
        let overlay = self.overlay.read().map_err(|_| lock_err())?;
        let r = self.db.begin_read().map_err(|e| backend("begin read", e))?;
        let t = r.open_table(DATA).map_err(|e| backend("open table", e))?;
        let mut base = if end.is_empty() {
            t.range(start..)
        } else {
            t.range(start..end)
        }
        .map_err(|e| backend("range", e))?
        .peekable();
        let upper = if end.is_empty() {
            Bound::Unbounded
        } else {
            Bound::Excluded(end.to_vec())
        };
        let mut over = overlay
            .range((Bound::Included(start.to_vec()), upper))
            .peekable();
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
                if let Some((rev, value)) = v {
                    out.push(KeyValue {
                        key: k.clone(),
                        value: value.clone(),
                        mod_revision: *rev,
                    });
                }
            } else if let Some(item) = base.next() {
                let (k, v) = item.map_err(|e| backend("range", e))?;
                out.push(decode(k.value(), v.value())?);
            }
        }
        Ok(out)
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.sync_behind.close();
        // A clean close leaves nothing to replay.
        if let Ok(mut wal) = self.wal.lock()
            && wal.poisoned.is_none()
            && wal.len > 0
        {
            let wal = &mut *wal;
            if let Err(e) = self.checkpoint(wal) {
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
        tokio::task::spawn_blocking(move || inner.get(&key))
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
        tokio::task::spawn_blocking(move || inner.range(&start, &end, limit))
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
        // Into redb; the overlay starts empty.
        {
            let mut wal = s.inner.wal.lock().unwrap();
            s.inner.checkpoint(&mut wal).unwrap();
        }
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

        // In the zero-filled space ahead of the log's end: zeros end the log, a torn
        // last record is followed by zeros only.
        let padded = [whole.clone(), vec![0; 4096]].concat();
        let log = read_records(&padded).unwrap();
        assert_eq!((log.records.len(), log.torn_tail), (3, 0));
        let torn_padded = [torn.clone(), vec![0; 4096]].concat();
        let log = read_records(&torn_padded).unwrap();
        assert_eq!((log.records.len(), log.torn_tail), (2, c.len()));
        let half = [a.clone(), b[..b.len() / 2].to_vec(), vec![0; 4096]].concat();
        let log = read_records(&half).unwrap();
        assert_eq!(log.records.len(), 1, "a half-written record is torn");
        // Zeros are no cover for damage with log after them.
        let hidden = [torn.clone(), vec![0; 64], c.clone()].concat();
        let err = read_records(&hidden).unwrap_err();
        assert!(err.starts_with("record at byte"), "{err}");

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
        let closed = std::fs::read(&wal).unwrap();
        assert!(
            closed.iter().all(|b| *b == 0),
            "a clean close leaves an empty (zero-filled) log"
        );
        assert_eq!(closed.len() as u64, LOG_STEP);

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
        // Written over the zero-filled space after the last record, as the log writes.
        let end = logged.iter().rposition(|b| *b != 0).unwrap() + 1;
        let half = &torn[..torn.len() - 3];
        logged[end..end + half.len()].copy_from_slice(half);
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
        let wal_len = s.inner.wal.lock().unwrap().len;
        assert!(
            wal_len < 400,
            "the log is emptied at checkpoints (deferred: {deferred}): {wal_len} bytes"
        );
        drop(s);
        let s = EmbeddedStore::open(dir.path()).await.unwrap();
        assert_eq!(s.scan_prefix(b"k").await.unwrap().len(), 100);
        assert_eq!(put(&s, "x", "v").await, 101);
    }
}
