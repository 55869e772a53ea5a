//! The etcd metadata store: the distributed [`MetaStore`] behind several control-plane
//! replicas.
//!
//! The control plane is stateless; past one machine its state lives in etcd, a
//! replicated store we reuse instead of building consensus. This module maps the
//! etcd-shaped trait one-to-one onto etcd's v3 KV API, so every `MetaStore::txn` is
//! exactly one etcd transaction and inherits etcd's guarantees (linearizable, durable on
//! a quorum once answered):
//!
//! - every key lives under a root prefix (default `/infinistream/`), so one etcd can
//!   hold several clusters or test runs; keys returned to callers have it stripped;
//! - `Compare::ModRevision { revision: None }` is `create_revision == 0` (the key does
//!   not exist), `Some(r)` is `mod_revision == r`; `ValueEquals` is a value compare,
//!   which etcd fails on a missing key, as the trait requires;
//! - the outcome's revision is the response header's: the transaction's own revision
//!   when it wrote, the current one otherwise.
//!
//! etcd limits requests (`--max-request-bytes`, 1.5 MiB by default, and
//! `--max-txn-ops`, 128 by default). A transaction over the configured byte limit is
//! refused here with a clear error before it is sent; the server's own refusals are
//! mapped to errors that name the etcd flag to raise. Every request has a timeout;
//! transport failures, timeouts and leader changes are [`StoreError::Unavailable`]
//! (retryable, and a timed-out transaction may have been applied), everything else is
//! [`StoreError::Backend`].
//!
//! etcd rejects a transaction that writes the same key twice (including a `Put` inside
//! a `DeletePrefix` range of the same transaction); callers keep one op per key.

use std::time::Duration;

use async_trait::async_trait;
use etcd_client::{
    Client, Compare as EtcdCompare, CompareOp, ConnectOptions, DeleteOptions, GetOptions, KvClient,
    Txn, TxnOp,
};
use tonic::Code;

use super::{Compare, KeyValue, MetaStore, Op, StoreError, TxnLimits, TxnOutcome, prefix_end};

/// Default root prefix of every key this store writes.
pub const DEFAULT_PREFIX: &str = "/infinistream/";

/// etcd's default `--max-request-bytes`.
pub const ETCD_DEFAULT_MAX_REQUEST_BYTES: usize = 1536 * 1024;

/// Per-op framing allowance used when estimating a transaction's encoded size
/// (protobuf tags, lengths and the op wrappers take well under this).
const OP_OVERHEAD_BYTES: usize = 16;

/// Largest range response this client accepts (tonic's default is 4 MiB).
const MAX_RESPONSE_BYTES: usize = 256 * 1024 * 1024;

/// Settings for [`EtcdStore`].
#[derive(Debug, Clone)]
pub struct EtcdStoreOptions {
    /// Root prefix under which every key is stored.
    pub prefix: String,
    /// Timeout of each request (get, range, txn).
    pub request_timeout: Duration,
    /// Timeout of establishing a connection.
    pub connect_timeout: Duration,
    /// The server's `--max-request-bytes`; larger transactions are refused locally.
    pub max_request_bytes: usize,
    /// The server's `--max-txn-ops` when known; transactions with more compares or more
    /// ops are refused locally. `None` leaves the check to the server.
    pub max_txn_ops: Option<usize>,
}

impl Default for EtcdStoreOptions {
    fn default() -> Self {
        EtcdStoreOptions {
            prefix: DEFAULT_PREFIX.to_owned(),
            request_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(5),
            max_request_bytes: ETCD_DEFAULT_MAX_REQUEST_BYTES,
            max_txn_ops: None,
        }
    }
}

/// A [`MetaStore`] on etcd.
#[derive(Clone)]
pub struct EtcdStore {
    client: Client,
    kv: KvClient,
    root: Vec<u8>,
    endpoints: Vec<String>,
    options: EtcdStoreOptions,
}

impl std::fmt::Debug for EtcdStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdStore")
            .field("endpoints", &self.endpoints)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl EtcdStore {
    /// Connects to etcd with default options and the given root prefix, and checks that
    /// the cluster answers.
    pub async fn connect(endpoints: &[String], prefix: &str) -> Result<EtcdStore, StoreError> {
        let options = EtcdStoreOptions {
            prefix: prefix.to_owned(),
            ..EtcdStoreOptions::default()
        };
        EtcdStore::connect_with(endpoints, options).await
    }

    /// Connects with explicit options and checks that the cluster answers (one read of
    /// the root key), so a wrong address fails here rather than at the first commit.
    pub async fn connect_with(
        endpoints: &[String],
        options: EtcdStoreOptions,
    ) -> Result<EtcdStore, StoreError> {
        if endpoints.is_empty() {
            return Err(StoreError::Backend("no etcd endpoints given".to_owned()));
        }
        if options.prefix.is_empty() {
            return Err(StoreError::Backend(
                "the etcd key prefix must not be empty".to_owned(),
            ));
        }
        let connect = ConnectOptions::new()
            .with_connect_timeout(options.connect_timeout)
            .with_timeout(options.request_timeout)
            .with_keep_alive(Duration::from_secs(10), options.request_timeout)
            .with_require_leader(true);
        let client = tokio::time::timeout(
            options.connect_timeout,
            Client::connect(endpoints, Some(connect)),
        )
        .await
        .map_err(|_| {
            StoreError::Unavailable(format!(
                "connecting to etcd timed out after {:?}: {}",
                options.connect_timeout,
                endpoints.join(",")
            ))
        })?
        .map_err(classify)?;
        let kv = client
            .kv_client()
            .max_decoding_message_size(MAX_RESPONSE_BYTES);
        let store = EtcdStore {
            client,
            kv,
            root: options.prefix.as_bytes().to_vec(),
            endpoints: endpoints.to_vec(),
            options,
        };
        store.get(b"").await.map_err(|e| match e {
            StoreError::Unavailable(why) => StoreError::Unavailable(format!(
                "etcd at {} does not answer: {why}",
                store.endpoints.join(",")
            )),
            other => other,
        })?;
        tracing::info!(endpoints = %store.endpoints.join(","), prefix = %store.options.prefix, "connected to etcd");
        Ok(store)
    }

    /// The underlying client, for leases, watches and leader election on the same
    /// connection.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The options in force.
    pub fn options(&self) -> &EtcdStoreOptions {
        &self.options
    }

    /// The etcd key of a store key (root prefix + key).
    pub fn etcd_key(&self, key: &[u8]) -> Vec<u8> {
        let mut full = Vec::with_capacity(self.root.len() + key.len());
        full.extend_from_slice(&self.root);
        full.extend_from_slice(key);
        full
    }

    /// The store key of an etcd key under the root prefix.
    pub fn store_key<'a>(&self, etcd_key: &'a [u8]) -> Option<&'a [u8]> {
        etcd_key.strip_prefix(self.root.as_slice())
    }

    /// The etcd range end for every key starting with `etcd_prefix`.
    fn etcd_prefix_end(etcd_prefix: &[u8]) -> Vec<u8> {
        let end = prefix_end(etcd_prefix);
        if end.is_empty() { vec![0] } else { end }
    }

    fn to_key_value(&self, kv: &etcd_client::KeyValue) -> Result<KeyValue, StoreError> {
        let key = self.store_key(kv.key()).ok_or_else(|| {
            StoreError::Backend(format!(
                "etcd returned a key outside the prefix `{}`: `{}`",
                self.options.prefix,
                String::from_utf8_lossy(kv.key())
            ))
        })?;
        Ok(KeyValue {
            key: key.to_vec(),
            value: kv.value().to_vec(),
            mod_revision: kv.mod_revision(),
        })
    }

    async fn timed<T>(
        &self,
        what: &str,
        fut: impl Future<Output = Result<T, etcd_client::Error>>,
    ) -> Result<T, StoreError> {
        match tokio::time::timeout(self.options.request_timeout, fut).await {
            Ok(result) => result.map_err(classify),
            Err(_) => Err(StoreError::Unavailable(format!(
                "etcd {what} timed out after {:?}",
                self.options.request_timeout
            ))),
        }
    }

    /// Checks the configured request limits before sending.
    fn check_limits(&self, compares: &[Compare], ops: &[Op]) -> Result<(), StoreError> {
        if let Some(max) = self.options.max_txn_ops
            && (compares.len() > max || ops.len() > max)
        {
            return Err(StoreError::Backend(format!(
                "transaction has {} compares and {} ops, more than etcd's --max-txn-ops: {max}",
                compares.len(),
                ops.len()
            )));
        }
        let root = self.root.len();
        let mut size = 0usize;
        for c in compares {
            size += OP_OVERHEAD_BYTES
                + root
                + match c {
                    Compare::ModRevision { key, .. } => key.len() + 10,
                    Compare::ValueEquals { key, value } => key.len() + value.len(),
                };
        }
        for op in ops {
            size += OP_OVERHEAD_BYTES
                + match op {
                    Op::Put { key, value } => root + key.len() + value.len(),
                    Op::Delete { key } => root + key.len(),
                    Op::DeletePrefix { prefix } => 2 * (root + prefix.len() + 1),
                };
        }
        if size > self.options.max_request_bytes {
            return Err(StoreError::Backend(format!(
                "transaction too large for etcd: about {size} bytes ({} compares, {} ops) \
                 exceeds --max-request-bytes: {}",
                compares.len(),
                ops.len(),
                self.options.max_request_bytes
            )));
        }
        Ok(())
    }
}

#[async_trait]
impl MetaStore for EtcdStore {
    async fn get(&self, key: &[u8]) -> Result<Option<KeyValue>, StoreError> {
        let mut kv = self.kv.clone();
        let full = self.etcd_key(key);
        let resp = self.timed("get", kv.get(full, None)).await?;
        match resp.kvs().first() {
            Some(found) => self.to_key_value(found).map(Some),
            None => Ok(None),
        }
    }

    async fn range(
        &self,
        start: &[u8],
        end: &[u8],
        limit: usize,
    ) -> Result<Vec<KeyValue>, StoreError> {
        let full_start = self.etcd_key(start);
        let full_end = if end.is_empty() {
            Self::etcd_prefix_end(&self.root)
        } else {
            self.etcd_key(end)
        };
        if full_end.as_slice() <= full_start.as_slice() && full_end != [0] {
            return Ok(Vec::new());
        }
        let mut options = GetOptions::new().with_range(full_end);
        if limit > 0 {
            let limit = i64::try_from(limit).unwrap_or(i64::MAX);
            options = options.with_limit(limit);
        }
        let mut kv = self.kv.clone();
        let resp = self
            .timed("range", kv.get(full_start, Some(options)))
            .await?;
        resp.kvs().iter().map(|kv| self.to_key_value(kv)).collect()
    }

    fn txn_limits(&self) -> TxnLimits {
        TxnLimits {
            max_ops: self.options.max_txn_ops,
            max_bytes: Some(self.options.max_request_bytes),
            costly_keys: true,
        }
    }

    async fn txn(&self, compares: Vec<Compare>, ops: Vec<Op>) -> Result<TxnOutcome, StoreError> {
        self.check_limits(&compares, &ops)?;
        let when: Vec<EtcdCompare> = compares
            .into_iter()
            .map(|c| match c {
                Compare::ModRevision {
                    key,
                    revision: None,
                } => EtcdCompare::create_revision(self.etcd_key(&key), CompareOp::Equal, 0),
                Compare::ModRevision {
                    key,
                    revision: Some(r),
                } => EtcdCompare::mod_revision(self.etcd_key(&key), CompareOp::Equal, r),
                Compare::ValueEquals { key, value } => {
                    EtcdCompare::value(self.etcd_key(&key), CompareOp::Equal, value)
                }
            })
            .collect();
        let then: Vec<TxnOp> = ops
            .into_iter()
            .map(|op| match op {
                Op::Put { key, value } => TxnOp::put(self.etcd_key(&key), value, None),
                Op::Delete { key } => TxnOp::delete(self.etcd_key(&key), None),
                Op::DeletePrefix { prefix } => {
                    let full = self.etcd_key(&prefix);
                    let end = Self::etcd_prefix_end(&full);
                    TxnOp::delete(full, Some(DeleteOptions::new().with_range(end)))
                }
            })
            .collect();
        let mut kv = self.kv.clone();
        let resp = self
            .timed("txn", kv.txn(Txn::new().when(when).and_then(then)))
            .await?;
        let revision = resp
            .header()
            .map(|h| h.revision())
            .ok_or_else(|| StoreError::Backend("etcd txn response without a header".to_owned()))?;
        Ok(TxnOutcome {
            succeeded: resp.succeeded(),
            revision,
        })
    }
}

/// Sorts an etcd client error into retryable ([`StoreError::Unavailable`]) or not
/// (also used by the control plane's leader election, which talks to etcd directly).
pub fn classify(err: etcd_client::Error) -> StoreError {
    use etcd_client::Error as E;
    match err {
        E::GRpcStatus(status) => {
            let message = status.message().to_owned();
            let transient_message = [
                "leader changed",
                "no leader",
                "timed out",
                "too many requests",
            ]
            .iter()
            .any(|m| message.contains(m));
            match status.code() {
                Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled | Code::Aborted => {
                    StoreError::Unavailable(format!("etcd: {message}"))
                }
                Code::ResourceExhausted if message.contains("too many requests") => {
                    StoreError::Unavailable(format!("etcd: {message}"))
                }
                // tonic reports broken connections as `Unknown: transport error`; etcd
                // uses proper codes for its own refusals.
                Code::Unknown if transient_message || message.contains("transport") => {
                    StoreError::Unavailable(format!("etcd: {message}"))
                }
                Code::InvalidArgument if message.contains("request is too large") => {
                    StoreError::Backend(format!(
                        "etcd refused the request ({message}): raise etcd's --max-request-bytes \
                         or make the transaction smaller"
                    ))
                }
                Code::ResourceExhausted if message.contains("larger than max") => {
                    StoreError::Backend(format!(
                        "etcd refused the request ({message}): raise etcd's --max-request-bytes \
                         or make the transaction smaller"
                    ))
                }
                Code::InvalidArgument if message.contains("too many operations") => {
                    StoreError::Backend(format!(
                        "etcd refused the transaction ({message}): raise etcd's --max-txn-ops"
                    ))
                }
                code => StoreError::Backend(format!("etcd ({code:?}): {message}")),
            }
        }
        E::TransportError(e) => StoreError::Unavailable(format!("etcd transport: {e}")),
        E::IoError(e) => StoreError::Unavailable(format!("etcd i/o: {e}")),
        E::LeaseKeepAliveError(e) => StoreError::Unavailable(format!("etcd lease keep-alive: {e}")),
        E::WatchError(e) => StoreError::Unavailable(format!("etcd watch: {e}")),
        other => StoreError::Backend(format!("etcd: {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_of_all_ff_is_from_key() {
        assert_eq!(EtcdStore::etcd_prefix_end(&[0xff, 0xff]), vec![0]);
        assert_eq!(EtcdStore::etcd_prefix_end(b"/a/"), b"/a0".to_vec());
    }

    #[test]
    fn leader_changes_and_timeouts_are_retryable() {
        let status = tonic::Status::unavailable("etcdserver: leader changed");
        assert!(matches!(
            classify(etcd_client::Error::GRpcStatus(status)),
            StoreError::Unavailable(_)
        ));
        let status =
            tonic::Status::invalid_argument("etcdserver: too many operations in txn request");
        match classify(etcd_client::Error::GRpcStatus(status)) {
            StoreError::Backend(m) => assert!(m.contains("--max-txn-ops"), "{m}"),
            other => panic!("unexpected {other:?}"),
        }
    }
}
