//! The metadata store abstraction (layer 1), a crate of its own so that only the
//! control-plane server links redb and etcd-client.
//!
//! Everything the control plane knows lives in a [`MetaStore`]: a small, ordered
//! key-value store with conditional multi-key transactions, the same shape as etcd's
//! v3 API. All control-plane logic (sequencing, de-duplication, consumer state, job
//! leases) is written once on top of this trait; the stores only move bytes:
//!
//! - `memory` — for unit tests only;
//! - `embedded` — redb under the data directory, the single-node default;
//! - `etcd` — the distributed store, shared by several control-plane replicas.
//!
//! Transactions are the unit of durability: when [`MetaStore::txn`] returns
//! `Ok(outcome)` with `outcome.succeeded`, every op in it is durable and visible to
//! every later read, on every replica ([`MetaStore::txn_deferred`] lets a store answer
//! before the durable part, for writes whose loss only repeats work).

use async_trait::async_trait;

pub mod conformance;
pub mod embedded;
pub mod etcd;
pub mod memory;

/// One stored key with its value and the store revision that last modified it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    pub key: Vec<u8>,
    pub value: Vec<u8>,
    /// Store-wide revision of the last write to this key (etcd's `mod_revision`).
    /// Strictly increases with every successful transaction.
    pub mod_revision: i64,
}

/// A condition a transaction checks before applying its ops.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Compare {
    /// The key's `mod_revision` equals the given value; `None` means the key must not
    /// exist.
    ModRevision { key: Vec<u8>, revision: Option<i64> },
    /// The key exists and its value equals the given bytes.
    ValueEquals { key: Vec<u8>, value: Vec<u8> },
}

/// A write inside a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Put {
        key: Vec<u8>,
        value: Vec<u8>,
    },
    Delete {
        key: Vec<u8>,
    },
    /// Deletes every key starting with the prefix.
    DeletePrefix {
        prefix: Vec<u8>,
    },
}

/// The result of a transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxnOutcome {
    /// False when a compare failed; then no op was applied.
    pub succeeded: bool,
    /// Store revision after the transaction (unchanged when it failed).
    pub revision: i64,
}

/// Errors from a metadata store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store could not be reached or timed out; the operation may be retried.
    /// A timed-out transaction may or may not have been applied: callers make
    /// transactions idempotent (compares on revisions, batch ids) before retrying.
    #[error("metadata store unavailable: {0}")]
    Unavailable(String),
    /// The store refused the request or returned something unusable.
    #[error("metadata store error: {0}")]
    Backend(String),
    /// Data read from the store could not be decoded.
    #[error("corrupt metadata at key `{key}`: {reason}")]
    Corrupt { key: String, reason: String },
}

/// Limits a store puts on one transaction (`None` = none known), and what a
/// transaction costs it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TxnLimits {
    /// Most compares or ops in one transaction (etcd's `--max-txn-ops`).
    pub max_ops: Option<usize>,
    /// Largest encoded transaction (etcd's `--max-request-bytes`).
    pub max_bytes: Option<usize>,
    /// Each key written costs the store far more than its bytes (etcd: ~20 µs of
    /// server CPU per key): the control plane then writes a commit round's appends as
    /// ONE round log key and folds streams into their index keys a few per round,
    /// instead of one index key per stream per round (which writes fewer bytes).
    pub costly_keys: bool,
}

/// An ordered key-value store with conditional transactions.
#[async_trait]
pub trait MetaStore: Send + Sync + std::fmt::Debug + 'static {
    /// Reads one key.
    async fn get(&self, key: &[u8]) -> Result<Option<KeyValue>, StoreError>;

    /// Reads keys in `[start, end)` in key order, at most `limit` of them (0 = no limit).
    async fn range(
        &self,
        start: &[u8],
        end: &[u8],
        limit: usize,
    ) -> Result<Vec<KeyValue>, StoreError>;

    /// Atomically: if every compare holds, applies every op durably.
    async fn txn(&self, compares: Vec<Compare>, ops: Vec<Op>) -> Result<TxnOutcome, StoreError>;

    /// As [`txn`](Self::txn), but the store may answer once the write is ordered after
    /// every earlier one and visible, and make it durable a moment later: a crash in
    /// that moment loses it together with every write after it, never one without the
    /// other (a later `txn` returning makes it durable too). For writes whose loss only
    /// repeats work: a consumer's claims (lost, their messages are delivered again, as
    /// after a crash of nats-server, which does not sync consumer state either). A
    /// store with nothing cheaper (etcd: every write is a quorum write) runs `txn`.
    async fn txn_deferred(
        &self,
        compares: Vec<Compare>,
        ops: Vec<Op>,
    ) -> Result<TxnOutcome, StoreError> {
        self.txn(compares, ops).await
    }

    /// The limits one transaction must stay within; the control plane sizes its
    /// group commits by them.
    fn txn_limits(&self) -> TxnLimits {
        TxnLimits::default()
    }

    /// Reads every key starting with `prefix`, in key order.
    async fn scan_prefix(&self, prefix: &[u8]) -> Result<Vec<KeyValue>, StoreError> {
        let end = prefix_end(prefix);
        self.range(prefix, &end, 0).await
    }
}

/// The smallest key greater than every key with `prefix` (etcd's range-end rule).
/// An empty result means "to the end of the keyspace".
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    Vec::new()
}
