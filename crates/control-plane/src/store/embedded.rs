//! The embedded, durable single-node store: a redb file under the data directory.
//!
//! It is the default when no control-plane URL is configured, so `infinistream agent`
//! runs the control plane in-process with nothing else to install. Every transaction
//! is one redb write transaction committed with redb's default (immediate) durability,
//! so `txn` returning means the data is on disk. Values are stored with their
//! `mod_revision` (8 bytes big-endian in front); the global revision counter lives in
//! a second table and moves exactly once per successful writing transaction.
//!
//! redb is synchronous, so every call runs on tokio's blocking pool.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use super::{Compare, KeyValue, MetaStore, Op, StoreError, TxnOutcome};

const DATA: TableDefinition<&[u8], &[u8]> = TableDefinition::new("kv");
const META: TableDefinition<&str, i64> = TableDefinition::new("meta");
const REVISION: &str = "revision";

/// File name of the database inside the store directory.
pub const FILE_NAME: &str = "control-plane.redb";

/// A [`MetaStore`] in a redb file.
#[derive(Debug, Clone)]
pub struct EmbeddedStore {
    db: Arc<Database>,
    path: PathBuf,
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

impl EmbeddedStore {
    /// Opens (or creates) the store in `dir`, creating the directory if needed.
    pub async fn open(dir: impl AsRef<Path>) -> Result<EmbeddedStore, StoreError> {
        let dir = dir.as_ref().to_path_buf();
        tokio::task::spawn_blocking(move || {
            std::fs::create_dir_all(&dir)
                .map_err(|e| backend(&format!("create dir `{}`", dir.display()), e))?;
            let path = dir.join(FILE_NAME);
            let db = Database::create(&path)
                .map_err(|e| backend(&format!("open `{}`", path.display()), e))?;
            // Make sure both tables exist so read transactions never fail on them.
            let w = db.begin_write().map_err(|e| backend("begin write", e))?;
            {
                w.open_table(DATA).map_err(|e| backend("open table", e))?;
                w.open_table(META).map_err(|e| backend("open table", e))?;
            }
            w.commit().map_err(|e| backend("commit", e))?;
            Ok(EmbeddedStore {
                db: Arc::new(db),
                path,
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
        let db = self.db.clone();
        let key = key.to_vec();
        tokio::task::spawn_blocking(move || {
            let r = db.begin_read().map_err(|e| backend("begin read", e))?;
            let t = r.open_table(DATA).map_err(|e| backend("open table", e))?;
            match t.get(key.as_slice()).map_err(|e| backend("get", e))? {
                Some(v) => Ok(Some(decode(&key, v.value())?)),
                None => Ok(None),
            }
        })
        .await
        .map_err(unavailable)?
    }

    async fn range(
        &self,
        start: &[u8],
        end: &[u8],
        limit: usize,
    ) -> Result<Vec<KeyValue>, StoreError> {
        let db = self.db.clone();
        let (start, end) = (start.to_vec(), end.to_vec());
        tokio::task::spawn_blocking(move || {
            let r = db.begin_read().map_err(|e| backend("begin read", e))?;
            let t = r.open_table(DATA).map_err(|e| backend("open table", e))?;
            let iter = if end.is_empty() {
                t.range(start.as_slice()..)
            } else {
                if end <= start {
                    return Ok(Vec::new());
                }
                t.range(start.as_slice()..end.as_slice())
            }
            .map_err(|e| backend("range", e))?;
            let mut out = Vec::new();
            for item in iter {
                let (k, v) = item.map_err(|e| backend("range", e))?;
                out.push(decode(k.value(), v.value())?);
                if limit != 0 && out.len() >= limit {
                    break;
                }
            }
            Ok(out)
        })
        .await
        .map_err(unavailable)?
    }

    async fn txn(&self, compares: Vec<Compare>, ops: Vec<Op>) -> Result<TxnOutcome, StoreError> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || {
            let w = db.begin_write().map_err(|e| backend("begin write", e))?;
            let revision;
            {
                let mut meta = w.open_table(META).map_err(|e| backend("open table", e))?;
                let current = meta
                    .get(REVISION)
                    .map_err(|e| backend("get revision", e))?
                    .map_or(0, |v| v.value());
                let mut data = w.open_table(DATA).map_err(|e| backend("open table", e))?;
                for c in &compares {
                    let holds = match c {
                        Compare::ModRevision { key, revision } => {
                            let got =
                                match data.get(key.as_slice()).map_err(|e| backend("get", e))? {
                                    Some(v) => Some(decode(key, v.value())?.mod_revision),
                                    None => None,
                                };
                            got == *revision
                        }
                        Compare::ValueEquals { key, value } => {
                            match data.get(key.as_slice()).map_err(|e| backend("get", e))? {
                                Some(v) => decode(key, v.value())?.value == *value,
                                None => false,
                            }
                        }
                    };
                    if !holds {
                        // Dropping `w` aborts the transaction.
                        return Ok(TxnOutcome {
                            succeeded: false,
                            revision: current,
                        });
                    }
                }
                if ops.is_empty() {
                    return Ok(TxnOutcome {
                        succeeded: true,
                        revision: current,
                    });
                }
                revision = current + 1;
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
                            let p = prefix.clone();
                            if end.is_empty() {
                                data.retain_in(p.as_slice().., |_, _| false)
                            } else {
                                data.retain_in(p.as_slice()..end.as_slice(), |_, _| false)
                            }
                            .map_err(|e| backend("delete prefix", e))?;
                        }
                    }
                }
                meta.insert(REVISION, revision)
                    .map_err(|e| backend("set revision", e))?;
            }
            w.commit().map_err(|e| backend("commit", e))?;
            Ok(TxnOutcome {
                succeeded: true,
                revision,
            })
        })
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
}
