//! An in-memory [`MetaStore`] for unit tests and the conformance suite.
//!
//! Same semantics as the durable stores (one revision per successful transaction,
//! compares evaluated atomically with the ops) but nothing survives the process.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Mutex;

use async_trait::async_trait;

use super::{Compare, KeyValue, MetaStore, Op, StoreError, TxnOutcome};

#[derive(Debug, Default)]
struct Inner {
    revision: i64,
    /// key → (value, mod_revision)
    data: BTreeMap<Vec<u8>, (Vec<u8>, i64)>,
}

/// A [`MetaStore`] held in memory.
#[derive(Debug, Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

pub(crate) fn end_bound(end: &[u8]) -> Bound<Vec<u8>> {
    if end.is_empty() {
        Bound::Unbounded
    } else {
        Bound::Excluded(end.to_vec())
    }
}

#[async_trait]
impl MetaStore for MemoryStore {
    async fn get(&self, key: &[u8]) -> Result<Option<KeyValue>, StoreError> {
        Ok(self.lock().data.get(key).map(|(v, r)| KeyValue {
            key: key.to_vec(),
            value: v.clone(),
            mod_revision: *r,
        }))
    }

    async fn range(
        &self,
        start: &[u8],
        end: &[u8],
        limit: usize,
    ) -> Result<Vec<KeyValue>, StoreError> {
        if !end.is_empty() && end <= start {
            return Ok(Vec::new());
        }
        let inner = self.lock();
        let iter = inner
            .data
            .range((Bound::Included(start.to_vec()), end_bound(end)))
            .map(|(k, (v, r))| KeyValue {
                key: k.clone(),
                value: v.clone(),
                mod_revision: *r,
            });
        Ok(if limit == 0 {
            iter.collect()
        } else {
            iter.take(limit).collect()
        })
    }

    async fn txn(&self, compares: Vec<Compare>, ops: Vec<Op>) -> Result<TxnOutcome, StoreError> {
        let mut inner = self.lock();
        for c in &compares {
            let holds = match c {
                Compare::ModRevision { key, revision } => {
                    inner.data.get(key).map(|(_, r)| *r) == *revision
                }
                Compare::ValueEquals { key, value } => {
                    inner.data.get(key).is_some_and(|(v, _)| v == value)
                }
            };
            if !holds {
                return Ok(TxnOutcome {
                    succeeded: false,
                    revision: inner.revision,
                });
            }
        }
        if ops.is_empty() {
            return Ok(TxnOutcome {
                succeeded: true,
                revision: inner.revision,
            });
        }
        inner.revision += 1;
        let rev = inner.revision;
        for op in ops {
            match op {
                Op::Put { key, value } => {
                    inner.data.insert(key, (value, rev));
                }
                Op::Delete { key } => {
                    inner.data.remove(&key);
                }
                Op::DeletePrefix { prefix } => {
                    let end = super::prefix_end(&prefix);
                    let doomed: Vec<Vec<u8>> = inner
                        .data
                        .range((Bound::Included(prefix.clone()), end_bound(&end)))
                        .map(|(k, _)| k.clone())
                        .collect();
                    for k in doomed {
                        inner.data.remove(&k);
                    }
                }
            }
        }
        Ok(TxnOutcome {
            succeeded: true,
            revision: rev,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[tokio::test]
    async fn memory_store_passes_conformance() {
        super::super::conformance::conformance(Arc::new(MemoryStore::new())).await;
    }
}
