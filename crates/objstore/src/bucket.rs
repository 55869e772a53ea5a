//! The bucket façade: one group's view of the object store with the decorators
//! already stacked, and the handful of operations the roles need.
//!
//! Stack (outermost first): retry (bounded attempts, per-request timeout) → metrics
//! (each attempt is a request) → faults (tests only) → the store the URL names. The
//! façade keeps object_store types (`ObjectMeta`, `Path`, `PutResult`) visible and
//! [`Bucket::store`] gives the decorated store to code that needs more.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{Stream, StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{
    GetOptions, GetRange, ObjectMeta, ObjectStore, ObjectStoreExt, PutMode, PutMultipartOptions,
    PutOptions, PutPayload, PutResult, WriteMultipart,
};
use tracing::Instrument;

use crate::faults::{FaultHandle, FaultyStore};
use crate::keys::{self, KeyError, ObjectKey};
use crate::metrics::{MeteredStore, Op, StoreMetrics};
use crate::retry::{RetryConfig, RetryingStore};
use crate::url::{BucketUrl, OpenError, default_http_retry};

/// Boxed error of a segment's byte source.
pub type SourceError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Errors from bucket operations; each names the operation and the key.
#[derive(Debug, thiserror::Error)]
pub enum BucketError {
    /// The store failed (after retries, if the error was transient).
    #[error("object-store {op} failed: `{key}`")]
    Store {
        /// The operation.
        op: Op,
        /// The key or prefix.
        key: String,
        /// The store's error.
        #[source]
        source: object_store::Error,
    },
    /// A key could not be built.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The bytes fed to a multipart upload failed; the upload was aborted.
    #[error("segment source failed, upload aborted: `{key}`")]
    Source {
        /// The key being written.
        key: String,
        /// The source's error.
        #[source]
        source: SourceError,
    },
}

impl BucketError {
    fn store(op: Op, key: impl fmt::Display, source: object_store::Error) -> Self {
        BucketError::Store {
            op,
            key: key.to_string(),
            source,
        }
    }

    /// The underlying object_store error, if the store failed.
    pub fn store_error(&self) -> Option<&object_store::Error> {
        match self {
            BucketError::Store { source, .. } => Some(source),
            _ => None,
        }
    }

    /// The object does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(
            self.store_error(),
            Some(object_store::Error::NotFound { .. })
        )
    }

    /// A create-if-absent found the key taken.
    pub fn is_already_exists(&self) -> bool {
        matches!(
            self.store_error(),
            Some(object_store::Error::AlreadyExists { .. })
        )
    }
}

/// How to open a bucket. `Default` gives group `default`, the default retry policy,
/// fresh metrics, no faults, a 10 s probe and 8 MiB multipart parts.
#[derive(Debug, Clone)]
pub struct BucketOptions {
    /// The group whose keys this bucket reads and writes (the first key segment).
    pub group: String,
    /// The retry decorator's policy.
    pub retry: RetryConfig,
    /// object_store's own HTTP retries (cloud stores).
    pub http_retry: object_store::RetryConfig,
    /// Metrics to record into; register them with [`StoreMetrics::register`].
    pub metrics: StoreMetrics,
    /// Test-only fault injection under the metrics layer.
    pub faults: Option<FaultHandle>,
    /// Time limit of the startup probe.
    pub probe_timeout: Duration,
    /// Part size of multipart uploads (S3 requires ≥ 5 MiB except the last part).
    pub part_size: usize,
    /// Parts uploaded concurrently by a multipart upload.
    pub part_concurrency: usize,
}

impl Default for BucketOptions {
    fn default() -> Self {
        Self {
            group: "default".to_owned(),
            retry: RetryConfig::default(),
            http_retry: default_http_retry(),
            metrics: StoreMetrics::new(),
            faults: None,
            probe_timeout: Duration::from_secs(10),
            part_size: 8 * 1024 * 1024,
            part_concurrency: 4,
        }
    }
}

impl BucketOptions {
    /// Default options for `group`.
    pub fn for_group(group: impl Into<String>) -> Self {
        Self {
            group: group.into(),
            ..Self::default()
        }
    }
}

/// One group's view of the bucket, decorators included. Cheap to clone.
#[derive(Clone)]
pub struct Bucket {
    store: Arc<dyn ObjectStore>,
    group: String,
    metrics: StoreMetrics,
    url: String,
    part_size: usize,
    part_concurrency: usize,
}

impl fmt::Debug for Bucket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bucket")
            .field("url", &self.url)
            .field("group", &self.group)
            .finish_non_exhaustive()
    }
}

impl Bucket {
    /// Opens the bucket `url` names and probes it with one cheap listing, so a bad
    /// URL, a missing bucket or wrong credentials fail at startup with the URL and
    /// the cause.
    pub async fn open(url: &str, options: BucketOptions) -> Result<Self, OpenError> {
        let parsed = BucketUrl::parse(url)?;
        let span = tracing::info_span!("objstore.open", url = %parsed);
        async move {
            let raw = parsed.build(&options.http_retry)?;
            let group_prefix =
                keys::group_prefix(&options.group).map_err(|source| OpenError::Group {
                    url: parsed.redacted(),
                    source,
                })?;
            match tokio::time::timeout(
                options.probe_timeout,
                raw.list_with_delimiter(Some(&group_prefix)),
            )
            .await
            {
                Ok(Ok(_)) => {}
                Ok(Err(source)) => {
                    return Err(OpenError::Unreachable {
                        url: parsed.redacted(),
                        source,
                    });
                }
                Err(_) => {
                    return Err(OpenError::ProbeTimeout {
                        timeout: options.probe_timeout,
                        url: parsed.redacted(),
                    });
                }
            }
            tracing::info!("bucket opened");
            Ok(Self::with_store(raw, parsed.redacted(), options))
        }
        .instrument(span)
        .await
    }

    /// Wraps an existing store (no probe) with the decorators `options` asks for.
    pub fn with_store(
        raw: Arc<dyn ObjectStore>,
        description: impl Into<String>,
        options: BucketOptions,
    ) -> Self {
        let mut store = raw;
        if let Some(handle) = options.faults.clone() {
            store = Arc::new(FaultyStore::with_handle(store, handle));
        }
        store = Arc::new(MeteredStore::new(store, options.metrics.clone()));
        store = Arc::new(
            RetryingStore::new(store, options.retry).with_metrics(options.metrics.clone()),
        );
        Self {
            store,
            group: options.group,
            metrics: options.metrics,
            url: description.into(),
            part_size: options.part_size.max(1),
            part_concurrency: options.part_concurrency.max(1),
        }
    }

    /// The decorated store.
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// The group.
    pub fn group(&self) -> &str {
        &self.group
    }

    /// The request metrics.
    pub fn metrics(&self) -> &StoreMetrics {
        &self.metrics
    }

    /// The URL it was opened with, secrets redacted.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Writes a batch object under a fresh key, create-if-absent.
    pub async fn put_batch(&self, bytes: Bytes) -> Result<ObjectKey, BucketError> {
        let key = ObjectKey::new_batch(&self.group)?;
        self.put_new(&key, bytes).await?;
        Ok(key)
    }

    /// Writes a segment in one PUT under a fresh key (for small segments).
    pub async fn put_segment(&self, stream: &str, bytes: Bytes) -> Result<ObjectKey, BucketError> {
        let key = ObjectKey::new_segment(&self.group, stream)?;
        self.put_new(&key, bytes).await?;
        Ok(key)
    }

    /// Writes `bytes` at `key` only if nothing is there.
    pub async fn put_new(&self, key: &ObjectKey, bytes: Bytes) -> Result<PutResult, BucketError> {
        let options = PutOptions {
            mode: PutMode::Create,
            ..PutOptions::default()
        };
        let len = bytes.len();
        self.store
            .put_opts(key.path(), PutPayload::from(bytes), options)
            .instrument(tracing::debug_span!("objstore.put", key = %key, len))
            .await
            .map_err(|source| BucketError::store(Op::Put, key, source))
    }

    /// Uploads a segment of `stream` from a stream of byte chunks, in parts of
    /// [`BucketOptions::part_size`]; on any error the upload is aborted (the bucket's
    /// lifecycle rule removes what an abort could not).
    pub async fn put_segment_multipart<S, E>(
        &self,
        stream: &str,
        mut data: S,
    ) -> Result<(ObjectKey, u64), BucketError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin + Send,
        E: Into<SourceError>,
    {
        let key = ObjectKey::new_segment(&self.group, stream)?;
        let span = tracing::debug_span!("objstore.put_multipart", key = %key);
        async {
            let upload = self
                .store
                .put_multipart_opts(key.path(), PutMultipartOptions::default())
                .await
                .map_err(|source| BucketError::store(Op::Multipart, &key, source))?;
            let mut writer = WriteMultipart::new_with_chunk_size(upload, self.part_size);
            let mut total = 0u64;
            loop {
                let chunk = match data.next().await {
                    None => break,
                    Some(Ok(chunk)) => chunk,
                    Some(Err(error)) => {
                        abort(writer, &key).await;
                        return Err(BucketError::Source {
                            key: key.to_string(),
                            source: error.into(),
                        });
                    }
                };
                if let Err(source) = writer.wait_for_capacity(self.part_concurrency).await {
                    abort(writer, &key).await;
                    return Err(BucketError::store(Op::Multipart, &key, source));
                }
                total += chunk.len() as u64;
                writer.put(chunk);
            }
            writer
                .finish()
                .await
                .map_err(|source| BucketError::store(Op::Multipart, &key, source))?;
            Ok((key.clone(), total))
        }
        .instrument(span)
        .await
    }

    /// The whole object.
    pub async fn get(&self, key: &Path) -> Result<Bytes, BucketError> {
        async { self.store.get(key).await?.bytes().await }
            .instrument(tracing::debug_span!("objstore.get", %key))
            .await
            .map_err(|source| BucketError::store(Op::Get, key, source))
    }

    /// Bytes `range` of the object (one ranged GET).
    pub async fn get_range(&self, key: &Path, range: Range<u64>) -> Result<Bytes, BucketError> {
        self.get_with(key, GetRange::Bounded(range)).await
    }

    /// The last `n` bytes of the object (the whole object if it is shorter): one
    /// suffix-range GET, for reading footers without a HEAD first.
    pub async fn get_tail(&self, key: &Path, n: u64) -> Result<Bytes, BucketError> {
        self.get_with(key, GetRange::Suffix(n)).await
    }

    async fn get_with(&self, key: &Path, range: GetRange) -> Result<Bytes, BucketError> {
        let options = GetOptions {
            range: Some(range.clone()),
            ..GetOptions::default()
        };
        async { self.store.get_opts(key, options).await?.bytes().await }
            .instrument(tracing::debug_span!("objstore.get_range", %key, %range))
            .await
            .map_err(|source| BucketError::store(Op::GetRange, key, source))
    }

    /// The object's metadata.
    pub async fn head(&self, key: &Path) -> Result<ObjectMeta, BucketError> {
        self.store
            .head(key)
            .instrument(tracing::debug_span!("objstore.head", %key))
            .await
            .map_err(|source| BucketError::store(Op::Head, key, source))
    }

    /// Every object under `prefix` (recursively; a prefix is whole path segments).
    pub fn list(&self, prefix: &Path) -> BoxStream<'static, Result<ObjectMeta, BucketError>> {
        let key = prefix.to_string();
        self.store
            .list(Some(prefix))
            .map_err(move |source| BucketError::store(Op::List, &key, source))
            .boxed()
    }

    /// Every batch object of the group with its parsed key; keys that do not parse
    /// are skipped with a warning (they are not ours to touch).
    pub async fn list_batches(&self) -> Result<Vec<(ObjectKey, ObjectMeta)>, BucketError> {
        self.list_parsed(keys::batches_prefix(&self.group)?).await
    }

    /// Every segment of the group (of `stream` if given) with its parsed key.
    pub async fn list_segments(
        &self,
        stream: Option<&str>,
    ) -> Result<Vec<(ObjectKey, ObjectMeta)>, BucketError> {
        self.list_parsed(keys::segments_prefix(&self.group, stream)?)
            .await
    }

    async fn list_parsed(&self, prefix: Path) -> Result<Vec<(ObjectKey, ObjectMeta)>, BucketError> {
        let span = tracing::debug_span!("objstore.list", %prefix);
        async {
            let mut out = Vec::new();
            let mut listing = self.list(&prefix);
            while let Some(meta) = listing.next().await {
                let meta = meta?;
                match ObjectKey::parse(&meta.location) {
                    Ok(key) => out.push((key, meta)),
                    Err(error) => tracing::warn!(%error, "skipping foreign object"),
                }
            }
            out.sort_by_key(|(key, _)| key.id());
            Ok(out)
        }
        .instrument(span)
        .await
    }

    /// Deletes the object (deleting a missing object is not an error on most stores).
    pub async fn delete(&self, key: &Path) -> Result<(), BucketError> {
        self.store
            .delete(key)
            .instrument(tracing::debug_span!("objstore.delete", %key))
            .await
            .map_err(|source| BucketError::store(Op::Delete, key, source))
    }
}

async fn abort(writer: WriteMultipart, key: &ObjectKey) {
    if let Err(error) = writer.abort().await {
        tracing::warn!(%key, %error, "cannot abort multipart upload; the bucket lifecycle rule will remove it");
    }
}
