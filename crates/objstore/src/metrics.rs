//! Request metrics for the bucket: a decorator that counts every request the store
//! makes, its errors, bytes in and out, and latency per operation.
//!
//! Object-store requests are the system's main running cost (one PUT per flush is an
//! invariant), so they are counted at the store boundary rather than by callers. The
//! decorator sits *inside* the retry layer, so each attempt counts as one request —
//! what the provider bills. Metrics live in a [`StoreMetrics`] handle that the caller
//! registers into its `prometheus_client` registry (served on `/metrics`) and that
//! tests read directly (e.g. [`StoreMetrics::objects_written`]).

use std::fmt;
use std::ops::Range;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, GetResultPayload, ListResult, MultipartUpload, ObjectMeta,
    ObjectStore, PutMultipartOptions, PutOptions, PutPayload, PutResult, Result, UploadPart,
};
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

/// A store operation, as labelled in metrics, retry logs and fault rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Op {
    /// `put_opts` (plain or conditional PUT).
    Put,
    /// A GET of a whole object.
    Get,
    /// A GET with a byte range (including suffix ranges).
    GetRange,
    /// A HEAD.
    Head,
    /// A listing (`list`, `list_with_offset`, `list_with_delimiter`).
    List,
    /// A delete.
    Delete,
    /// A multipart upload (creation, parts and completion).
    Multipart,
    /// A server-side copy.
    Copy,
}

impl Op {
    /// Every operation, for iteration in tests and dashboards.
    pub const ALL: [Op; 8] = [
        Op::Put,
        Op::Get,
        Op::GetRange,
        Op::Head,
        Op::List,
        Op::Delete,
        Op::Multipart,
        Op::Copy,
    ];

    /// The operation a `get_opts` call performs.
    pub fn of_get(options: &GetOptions) -> Op {
        if options.head {
            Op::Head
        } else if options.range.is_some() {
            Op::GetRange
        } else {
            Op::Get
        }
    }

    /// The lower-case label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Put => "put",
            Op::Get => "get",
            Op::GetRange => "get_range",
            Op::Head => "head",
            Op::List => "list",
            Op::Delete => "delete",
            Op::Multipart => "multipart",
            Op::Copy => "copy",
        }
    }
}

impl EncodeLabelValue for Op {
    fn encode(
        &self,
        encoder: &mut prometheus_client::encoding::LabelValueEncoder<'_>,
    ) -> Result<(), fmt::Error> {
        fmt::Write::write_str(encoder, self.as_str())
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct OpLabel {
    op: Op,
}

fn latency_histogram() -> Histogram {
    // 1 ms .. ~33 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

/// The bucket's request metrics; cheap to clone (all clones share the counters).
#[derive(Debug, Clone)]
pub struct StoreMetrics {
    requests: Family<OpLabel, Counter>,
    errors: Family<OpLabel, Counter>,
    retries: Family<OpLabel, Counter>,
    timeouts: Family<OpLabel, Counter>,
    latency: Family<OpLabel, Histogram, fn() -> Histogram>,
    bytes_written: Counter,
    bytes_read: Counter,
    objects_written: Counter,
}

impl Default for StoreMetrics {
    fn default() -> Self {
        Self {
            requests: Family::default(),
            errors: Family::default(),
            retries: Family::default(),
            timeouts: Family::default(),
            latency: Family::new_with_constructor(latency_histogram as fn() -> Histogram),
            bytes_written: Counter::default(),
            bytes_read: Counter::default(),
            objects_written: Counter::default(),
        }
    }
}

impl StoreMetrics {
    /// Fresh, unregistered metrics.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers the metrics under the `objstore_` prefix of `registry`.
    pub fn register(&self, registry: &mut Registry) {
        let registry = registry.sub_registry_with_prefix("objstore");
        registry.register(
            "requests",
            "Object-store requests by operation (each retry attempt counts)",
            self.requests.clone(),
        );
        registry.register(
            "errors",
            "Object-store requests that failed, by operation",
            self.errors.clone(),
        );
        registry.register(
            "retries",
            "Object-store operations retried after a transient error, by operation",
            self.retries.clone(),
        );
        registry.register(
            "timeouts",
            "Object-store attempts cut off by the per-request timeout, by operation",
            self.timeouts.clone(),
        );
        registry.register_with_unit(
            "request_duration",
            "Object-store request latency by operation",
            Unit::Seconds,
            self.latency.clone(),
        );
        registry.register_with_unit(
            "written",
            "Payload bytes sent to the object store",
            Unit::Bytes,
            self.bytes_written.clone(),
        );
        registry.register_with_unit(
            "read",
            "Payload bytes received from the object store",
            Unit::Bytes,
            self.bytes_read.clone(),
        );
        registry.register(
            "objects_written",
            "Objects successfully created or overwritten (PUTs and completed multipart uploads)",
            self.objects_written.clone(),
        );
    }

    /// Requests made for `op` (successful or not).
    pub fn requests(&self, op: Op) -> u64 {
        self.requests.get_or_create(&OpLabel { op }).get()
    }

    /// Requests for `op` that returned an error.
    pub fn errors(&self, op: Op) -> u64 {
        self.errors.get_or_create(&OpLabel { op }).get()
    }

    /// Retries of `op` (attempts after the first).
    pub fn retries(&self, op: Op) -> u64 {
        self.retries.get_or_create(&OpLabel { op }).get()
    }

    /// Attempts of `op` cut off by the per-request timeout.
    pub fn timeouts(&self, op: Op) -> u64 {
        self.timeouts.get_or_create(&OpLabel { op }).get()
    }

    /// PUT requests (attempts), successful or not.
    pub fn puts(&self) -> u64 {
        self.requests(Op::Put)
    }

    /// Objects successfully written (PUTs and completed multipart uploads).
    pub fn objects_written(&self) -> u64 {
        self.objects_written.get()
    }

    /// Payload bytes sent to the store.
    pub fn bytes_written(&self) -> u64 {
        self.bytes_written.get()
    }

    /// Payload bytes received from the store.
    pub fn bytes_read(&self) -> u64 {
        self.bytes_read.get()
    }

    pub(crate) fn record_retry(&self, op: Op) {
        self.retries.get_or_create(&OpLabel { op }).inc();
    }

    pub(crate) fn record_timeout(&self, op: Op) {
        self.timeouts.get_or_create(&OpLabel { op }).inc();
    }

    fn start(&self, op: Op) -> Instant {
        self.requests.get_or_create(&OpLabel { op }).inc();
        Instant::now()
    }

    fn finish<T>(&self, op: Op, started: Instant, result: &Result<T>) {
        self.latency
            .get_or_create(&OpLabel { op })
            .observe(started.elapsed().as_secs_f64());
        if result.is_err() {
            self.errors.get_or_create(&OpLabel { op }).inc();
        }
    }
}

/// An [`ObjectStore`] decorator that records [`StoreMetrics`].
#[derive(Debug)]
pub struct MeteredStore {
    inner: Arc<dyn ObjectStore>,
    metrics: StoreMetrics,
}

impl MeteredStore {
    /// Wraps `inner`, recording into `metrics`.
    pub fn new(inner: Arc<dyn ObjectStore>, metrics: StoreMetrics) -> Self {
        Self { inner, metrics }
    }

    /// The metrics this store records into.
    pub fn metrics(&self) -> &StoreMetrics {
        &self.metrics
    }
}

impl fmt::Display for MeteredStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Metered({})", self.inner)
    }
}

/// Counts bytes as a GET body streams through.
fn count_stream(
    stream: BoxStream<'static, Result<Bytes>>,
    metrics: StoreMetrics,
) -> BoxStream<'static, Result<Bytes>> {
    stream
        .inspect(move |chunk| {
            if let Ok(bytes) = chunk {
                metrics.bytes_read.inc_by(bytes.len() as u64);
            }
        })
        .boxed()
}

#[async_trait]
impl ObjectStore for MeteredStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        let len = payload.content_length() as u64;
        let started = self.metrics.start(Op::Put);
        let result = self.inner.put_opts(location, payload, opts).await;
        self.metrics.finish(Op::Put, started, &result);
        if result.is_ok() {
            self.metrics.bytes_written.inc_by(len);
            self.metrics.objects_written.inc();
        }
        result
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        let started = self.metrics.start(Op::Multipart);
        let result = self.inner.put_multipart_opts(location, opts).await;
        match result {
            Ok(upload) => Ok(Box::new(MeteredUpload {
                inner: upload,
                metrics: self.metrics.clone(),
                started,
            })),
            Err(error) => {
                let result = Err(error);
                self.metrics.finish(Op::Multipart, started, &result);
                result
            }
        }
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        let op = Op::of_get(&options);
        let started = self.metrics.start(op);
        let result = self.inner.get_opts(location, options).await;
        self.metrics.finish(op, started, &result);
        let mut result = result?;
        if op != Op::Head {
            result.payload = match result.payload {
                GetResultPayload::Stream(stream) => {
                    GetResultPayload::Stream(count_stream(stream, self.metrics.clone()))
                }
                file @ GetResultPayload::File(..) => {
                    // A local file is read by the caller; count the range it was given.
                    self.metrics
                        .bytes_read
                        .inc_by(result.range.end.saturating_sub(result.range.start));
                    file
                }
            };
        }
        Ok(result)
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        let started = self.metrics.start(Op::GetRange);
        let result = self.inner.get_ranges(location, ranges).await;
        self.metrics.finish(Op::GetRange, started, &result);
        if let Ok(parts) = &result {
            let total: usize = parts.iter().map(Bytes::len).sum();
            self.metrics.bytes_read.inc_by(total as u64);
        }
        result
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        let inner = Arc::clone(&self.inner);
        let metrics = self.metrics.clone();
        locations
            .map(move |location| {
                let inner = Arc::clone(&inner);
                let metrics = metrics.clone();
                async move {
                    let location = location?;
                    let started = metrics.start(Op::Delete);
                    let result = delete_one(inner.as_ref(), location).await;
                    metrics.finish(Op::Delete, started, &result);
                    result
                }
            })
            .buffered(DELETE_CONCURRENCY)
            .boxed()
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        let started = self.metrics.start(Op::List);
        metered_list(self.inner.list(prefix), self.metrics.clone(), started)
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, Result<ObjectMeta>> {
        let started = self.metrics.start(Op::List);
        metered_list(
            self.inner.list_with_offset(prefix, offset),
            self.metrics.clone(),
            started,
        )
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        let started = self.metrics.start(Op::List);
        let result = self.inner.list_with_delimiter(prefix).await;
        self.metrics.finish(Op::List, started, &result);
        result
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        let started = self.metrics.start(Op::Copy);
        let result = self.inner.copy_opts(from, to, options).await;
        self.metrics.finish(Op::Copy, started, &result);
        if result.is_ok() {
            self.metrics.objects_written.inc();
        }
        result
    }
}

/// How many single-object deletes a decorator keeps in flight for `delete_stream`.
pub(crate) const DELETE_CONCURRENCY: usize = 8;

/// Deletes one object through the inner store's `delete_stream`.
pub(crate) async fn delete_one(store: &dyn ObjectStore, location: Path) -> Result<Path> {
    let mut results =
        store.delete_stream(futures::stream::once(async move { Ok(location) }).boxed());
    match results.next().await {
        Some(result) => result,
        None => Err(object_store::Error::Generic {
            store: "objstore",
            source: "delete stream ended without a result".into(),
        }),
    }
}

/// Records one listing: errors as they stream, latency when the listing ends.
fn metered_list(
    stream: BoxStream<'static, Result<ObjectMeta>>,
    metrics: StoreMetrics,
    started: Instant,
) -> BoxStream<'static, Result<ObjectMeta>> {
    struct State {
        stream: BoxStream<'static, Result<ObjectMeta>>,
        metrics: StoreMetrics,
        started: Instant,
        failed: bool,
    }
    let state = State {
        stream,
        metrics,
        started,
        failed: false,
    };
    futures::stream::unfold(Some(state), |state| async move {
        let mut state = state?;
        match state.stream.next().await {
            Some(item) => {
                if item.is_err() && !state.failed {
                    state.failed = true;
                    state
                        .metrics
                        .errors
                        .get_or_create(&OpLabel { op: Op::List })
                        .inc();
                }
                Some((item, Some(state)))
            }
            None => {
                state
                    .metrics
                    .latency
                    .get_or_create(&OpLabel { op: Op::List })
                    .observe(state.started.elapsed().as_secs_f64());
                None
            }
        }
    })
    .boxed()
}

#[derive(Debug)]
struct MeteredUpload {
    inner: Box<dyn MultipartUpload>,
    metrics: StoreMetrics,
    started: Instant,
}

#[async_trait]
impl MultipartUpload for MeteredUpload {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        let len = data.content_length() as u64;
        let metrics = self.metrics.clone();
        let part = self.inner.put_part(data);
        Box::pin(async move {
            let result = part.await;
            match &result {
                Ok(()) => {
                    metrics.bytes_written.inc_by(len);
                }
                Err(_) => {
                    metrics
                        .errors
                        .get_or_create(&OpLabel { op: Op::Multipart })
                        .inc();
                }
            }
            result
        })
    }

    async fn complete(&mut self) -> Result<PutResult> {
        let result = self.inner.complete().await;
        self.metrics.finish(Op::Multipart, self.started, &result);
        if result.is_ok() {
            self.metrics.objects_written.inc();
        }
        result
    }

    async fn abort(&mut self) -> Result<()> {
        self.inner.abort().await
    }
}
