//! Bounded retries with backoff and per-request timeouts, as an [`ObjectStore`]
//! decorator so the write path stays plain.
//!
//! Why a layer of our own on top of object_store's HTTP retries: those retry only
//! some HTTP failures and never bound the time a caller waits in total, and they are
//! invisible to fault injection. This layer gives every operation a fixed number of
//! attempts, a timeout per attempt, and exponential backoff with jitter, and it never
//! retries an error that cannot heal by itself ([`is_transient`]). Retries that default
//! to forever hide outages (slatedb #1923); here the last error surfaces after
//! `max_attempts`.
//!
//! A retried create-if-absent (`PutMode::Create`) whose earlier attempt timed out may
//! find its own write (slatedb #766). When that happens the layer reads the object back
//! and, if the bytes are the ones it was writing, reports success.
//!
//! Scope of retries per operation: single-shot calls (put, head, ranged get, copy,
//! delete, `list_with_delimiter`) are retried whole. Ranged gets and heads read their
//! body inside the attempt, so a body that stalls is retried too; a whole-object
//! `get` returns once headers arrive and its body stream is not retried. A `list`
//! stream is restarted only if it fails before yielding anything. Multipart uploads
//! retry the creation; parts and completion get the timeout but no retries of our own
//! (part numbers are assigned per call, so only object_store's HTTP retry can resend a
//! part).

use std::fmt;
use std::future::Future;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, GetResultPayload, ListResult, MultipartUpload, ObjectMeta,
    ObjectStore, ObjectStoreExt, PutMode, PutMultipartOptions, PutOptions, PutPayload, PutResult,
    Result, UploadPart,
};
use tracing::{Instrument, debug, warn};

use crate::metrics::{DELETE_CONCURRENCY, Op, StoreMetrics, delete_one};

/// Retry policy. Defaults: 5 attempts, backoff 50 ms doubling to at most 2 s (with
/// jitter), 30 s per attempt.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryConfig {
    /// Attempts in total, including the first (at least 1).
    pub max_attempts: u32,
    /// Backoff before the second attempt.
    pub initial_backoff: Duration,
    /// Upper bound of the backoff between attempts.
    pub max_backoff: Duration,
    /// Backoff growth factor per attempt.
    pub multiplier: f64,
    /// Time limit of one attempt.
    pub request_timeout: Duration,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            initial_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(2),
            multiplier: 2.0,
            request_timeout: Duration::from_secs(30),
        }
    }
}

impl RetryConfig {
    /// The backoff before attempt `attempt + 1` (`attempt` ≥ 1): "equal jitter",
    /// uniformly random in `[d/2, d]` where `d = min(max, initial·multiplier^(attempt-1))`,
    /// so concurrent retriers spread out but never retry immediately.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let exponent = i32::try_from(attempt.saturating_sub(1)).unwrap_or(i32::MAX);
        let base = self.initial_backoff.as_secs_f64() * self.multiplier.max(1.0).powi(exponent);
        let capped = base.min(self.max_backoff.as_secs_f64()).max(0.0);
        let jittered = capped / 2.0 + rand::random_range(0.0..=1.0) * capped / 2.0;
        Duration::from_secs_f64(jittered)
    }
}

/// The error an attempt reports when it exceeds [`RetryConfig::request_timeout`]
/// (wrapped in [`object_store::Error::Generic`]; see [`is_timeout`]).
#[derive(Debug, thiserror::Error)]
#[error("{op} request timed out after {timeout:?}: `{location}`")]
pub struct RequestTimeout {
    /// The operation.
    pub op: Op,
    /// The limit that was hit.
    pub timeout: Duration,
    /// The object (or prefix).
    pub location: String,
}

/// The `store` name of errors this layer creates.
pub const STORE_NAME: &str = "objstore-retry";

fn timeout_error(op: Op, timeout: Duration, location: &str) -> object_store::Error {
    object_store::Error::Generic {
        store: STORE_NAME,
        source: Box::new(RequestTimeout {
            op,
            timeout,
            location: location.to_owned(),
        }),
    }
}

/// True if `error` is an attempt cut off by the per-request timeout.
pub fn is_timeout(error: &object_store::Error) -> bool {
    matches!(error, object_store::Error::Generic { source, .. } if source.is::<RequestTimeout>())
}

/// Whether retrying `error` may succeed.
///
/// Permanent: not found, precondition failed, already exists, not modified,
/// unauthenticated, permission denied, invalid path, not supported / not
/// implemented, unknown configuration key, a panicked task. Everything else —
/// timeouts, connection and HTTP errors, I/O errors, which object_store reports as
/// `Generic` — is transient.
pub fn is_transient(error: &object_store::Error) -> bool {
    use object_store::Error as E;
    match error {
        E::NotFound { .. }
        | E::Precondition { .. }
        | E::AlreadyExists { .. }
        | E::NotModified { .. }
        | E::Unauthenticated { .. }
        | E::PermissionDenied { .. }
        | E::InvalidPath { .. }
        | E::NotSupported { .. }
        | E::NotImplemented { .. }
        | E::UnknownConfigurationKey { .. }
        | E::JoinError { .. } => false,
        E::Generic { .. } => true,
        // object_store's Error is non-exhaustive; new kinds are treated as transient
        // (bounded attempts keep that safe).
        _ => true,
    }
}

/// An [`ObjectStore`] decorator that retries transient failures (see module docs).
#[derive(Debug, Clone)]
pub struct RetryingStore {
    inner: Arc<dyn ObjectStore>,
    config: RetryConfig,
    metrics: Option<StoreMetrics>,
}

impl RetryingStore {
    /// Wraps `inner` with `config`.
    pub fn new(inner: Arc<dyn ObjectStore>, config: RetryConfig) -> Self {
        Self {
            inner,
            config,
            metrics: None,
        }
    }

    /// Also counts retries and timeouts into `metrics`.
    pub fn with_metrics(mut self, metrics: StoreMetrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// The policy.
    pub fn config(&self) -> &RetryConfig {
        &self.config
    }

    /// Runs `attempt` until it succeeds, fails permanently or runs out of attempts.
    async fn run<T, F, Fut>(&self, op: Op, location: &str, mut attempt: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        run_with(
            &self.config,
            self.metrics.as_ref(),
            op,
            location,
            &mut attempt,
        )
        .instrument(tracing::debug_span!("objstore", %op, %location))
        .await
    }

    async fn put_attempts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        let create = matches!(opts.mode, PutMode::Create);
        let mut ambiguous = false;
        let mut attempt_no = 0;
        loop {
            attempt_no += 1;
            let outcome = self
                .timed(
                    Op::Put,
                    location.as_ref(),
                    self.inner.put_opts(location, payload.clone(), opts.clone()),
                )
                .await;
            match outcome {
                Ok(result) => return Ok(result),
                Err(object_store::Error::AlreadyExists { path, source }) if create && ambiguous => {
                    // An earlier attempt may have landed: if the object holds exactly
                    // our bytes, it was our write.
                    if let Some(result) = self.own_write(location, &payload).await {
                        debug!(%location, "create found its own earlier write");
                        return Ok(result);
                    }
                    return Err(object_store::Error::AlreadyExists { path, source });
                }
                Err(error) if is_transient(&error) && attempt_no < self.config.max_attempts => {
                    ambiguous = true;
                    self.before_retry(Op::Put, location.as_ref(), attempt_no, &error)
                        .await;
                }
                Err(error) => return Err(error),
            }
        }
    }

    /// If the object at `location` holds exactly `payload`, its put result.
    async fn own_write(&self, location: &Path, payload: &PutPayload) -> Option<PutResult> {
        let stored = self
            .run(Op::Get, location.as_ref(), || async move {
                self.inner.get(location).await?.bytes().await
            })
            .await
            .ok()?;
        let ours: Vec<u8> = payload.iter().flat_map(|b| b.iter().copied()).collect();
        if stored.as_ref() != ours.as_slice() {
            return None;
        }
        let meta = self.inner.head(location).await.ok()?;
        Some(PutResult {
            e_tag: meta.e_tag,
            version: meta.version,
            extensions: Default::default(),
        })
    }

    async fn timed<T>(
        &self,
        op: Op,
        location: &str,
        future: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        timed(&self.config, self.metrics.as_ref(), op, location, future).await
    }

    async fn before_retry(
        &self,
        op: Op,
        location: &str,
        attempt: u32,
        error: &object_store::Error,
    ) {
        before_retry(
            &self.config,
            self.metrics.as_ref(),
            op,
            location,
            attempt,
            error,
        )
        .await;
    }
}

async fn timed<T>(
    config: &RetryConfig,
    metrics: Option<&StoreMetrics>,
    op: Op,
    location: &str,
    future: impl Future<Output = Result<T>>,
) -> Result<T> {
    match tokio::time::timeout(config.request_timeout, future).await {
        Ok(result) => result,
        Err(_) => {
            if let Some(metrics) = metrics {
                metrics.record_timeout(op);
            }
            Err(timeout_error(op, config.request_timeout, location))
        }
    }
}

async fn before_retry(
    config: &RetryConfig,
    metrics: Option<&StoreMetrics>,
    op: Op,
    location: &str,
    attempt: u32,
    error: &object_store::Error,
) {
    let backoff = config.backoff(attempt);
    warn!(%op, %location, attempt, ?backoff, %error, "transient object-store error, retrying");
    if let Some(metrics) = metrics {
        metrics.record_retry(op);
    }
    tokio::time::sleep(backoff).await;
}

async fn run_with<T, F, Fut>(
    config: &RetryConfig,
    metrics: Option<&StoreMetrics>,
    op: Op,
    location: &str,
    attempt: &mut F,
) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let mut attempt_no = 0;
    loop {
        attempt_no += 1;
        match timed(config, metrics, op, location, attempt()).await {
            Ok(value) => return Ok(value),
            Err(error) if is_transient(&error) && attempt_no < config.max_attempts => {
                before_retry(config, metrics, op, location, attempt_no, &error).await;
            }
            Err(error) => return Err(error),
        }
    }
}

impl fmt::Display for RetryingStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Retrying({})", self.inner)
    }
}

/// Reads a ranged or head response fully, so the body is covered by the attempt's
/// timeout and retries.
async fn buffered(mut result: GetResult) -> Result<GetResult> {
    let payload = std::mem::replace(
        &mut result.payload,
        GetResultPayload::Stream(futures::stream::empty().boxed()),
    );
    let body = GetResult {
        payload,
        meta: result.meta.clone(),
        range: result.range.clone(),
        attributes: Default::default(),
        extensions: Default::default(),
    }
    .bytes()
    .await?;
    result.payload =
        GetResultPayload::Stream(futures::stream::once(async move { Ok(body) }).boxed());
    Ok(result)
}

#[async_trait]
impl ObjectStore for RetryingStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        self.put_attempts(location, payload, opts)
            .instrument(tracing::debug_span!("objstore", op = %Op::Put, %location))
            .await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        let upload = self
            .run(Op::Multipart, location.as_ref(), || {
                self.inner.put_multipart_opts(location, opts.clone())
            })
            .await?;
        Ok(Box::new(TimedUpload {
            inner: upload,
            config: self.config,
            metrics: self.metrics.clone(),
            location: location.to_string(),
        }))
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        let op = Op::of_get(&options);
        let buffer = op != Op::Get;
        self.run(op, location.as_ref(), || {
            let options = options.clone();
            async move {
                let result = self.inner.get_opts(location, options).await?;
                if buffer {
                    buffered(result).await
                } else {
                    Ok(result)
                }
            }
        })
        .await
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        self.run(Op::GetRange, location.as_ref(), || {
            self.inner.get_ranges(location, ranges)
        })
        .await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        let this = self.clone();
        locations
            .map(move |location| {
                let this = this.clone();
                async move {
                    let location = location?;
                    this.run(Op::Delete, location.as_ref(), || {
                        delete_one(this.inner.as_ref(), location.clone())
                    })
                    .await
                }
            })
            .buffered(DELETE_CONCURRENCY)
            .boxed()
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        let inner = Arc::clone(&self.inner);
        let prefix = prefix.cloned();
        retrying_list(self.clone(), move || inner.list(prefix.as_ref()))
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, Result<ObjectMeta>> {
        let inner = Arc::clone(&self.inner);
        let prefix = prefix.cloned();
        let offset = offset.clone();
        retrying_list(self.clone(), move || {
            inner.list_with_offset(prefix.as_ref(), &offset)
        })
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        let location = prefix.map(Path::to_string).unwrap_or_default();
        self.run(Op::List, &location, || {
            self.inner.list_with_delimiter(prefix)
        })
        .await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.run(Op::Copy, to.as_ref(), || {
            self.inner.copy_opts(from, to, options.clone())
        })
        .await
    }
}

/// A listing that restarts (bounded) when it fails before yielding anything, with
/// each page bounded by the request timeout.
fn retrying_list<F>(store: RetryingStore, start: F) -> BoxStream<'static, Result<ObjectMeta>>
where
    F: Fn() -> BoxStream<'static, Result<ObjectMeta>> + Send + 'static,
{
    struct State<F> {
        store: RetryingStore,
        start: F,
        stream: BoxStream<'static, Result<ObjectMeta>>,
        attempt: u32,
        yielded: bool,
        done: bool,
    }
    let stream = start();
    let state = State {
        store,
        start,
        stream,
        attempt: 1,
        yielded: false,
        done: false,
    };
    futures::stream::unfold(state, |mut state| async move {
        if state.done {
            return None;
        }
        loop {
            let next = timed(
                &state.store.config,
                state.store.metrics.as_ref(),
                Op::List,
                "",
                async { state.stream.next().await.transpose() },
            )
            .await;
            match next {
                Ok(Some(meta)) => {
                    state.yielded = true;
                    return Some((Ok(meta), state));
                }
                Ok(None) => return None,
                Err(error)
                    if !state.yielded
                        && is_transient(&error)
                        && state.attempt < state.store.config.max_attempts =>
                {
                    before_retry(
                        &state.store.config,
                        state.store.metrics.as_ref(),
                        Op::List,
                        "",
                        state.attempt,
                        &error,
                    )
                    .await;
                    state.attempt += 1;
                    state.stream = (state.start)();
                }
                Err(error) => {
                    state.done = true;
                    return Some((Err(error), state));
                }
            }
        }
    })
    .boxed()
}

/// A multipart upload whose parts and completion are bounded by the request timeout.
#[derive(Debug)]
struct TimedUpload {
    inner: Box<dyn MultipartUpload>,
    config: RetryConfig,
    metrics: Option<StoreMetrics>,
    location: String,
}

#[async_trait]
impl MultipartUpload for TimedUpload {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        let part = self.inner.put_part(data);
        let config = self.config;
        let metrics = self.metrics.clone();
        let location = self.location.clone();
        Box::pin(
            async move { timed(&config, metrics.as_ref(), Op::Multipart, &location, part).await },
        )
    }

    async fn complete(&mut self) -> Result<PutResult> {
        let config = self.config;
        let metrics = self.metrics.clone();
        timed(
            &config,
            metrics.as_ref(),
            Op::Multipart,
            &self.location.clone(),
            self.inner.complete(),
        )
        .await
    }

    async fn abort(&mut self) -> Result<()> {
        let config = self.config;
        let metrics = self.metrics.clone();
        timed(
            &config,
            metrics.as_ref(),
            Op::Multipart,
            &self.location.clone(),
            self.inner.abort(),
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let config = RetryConfig::default();
        for attempt in 1..20 {
            let backoff = config.backoff(attempt);
            assert!(backoff <= config.max_backoff, "{attempt}: {backoff:?}");
            let base = (config.initial_backoff.as_secs_f64() * 2f64.powi(attempt as i32 - 1))
                .min(config.max_backoff.as_secs_f64());
            assert!(
                backoff.as_secs_f64() >= base / 2.0 - 1e-9,
                "{attempt}: {backoff:?}"
            );
        }
    }

    #[test]
    fn classification() {
        let generic = object_store::Error::Generic {
            store: "x",
            source: "boom".into(),
        };
        assert!(is_transient(&generic));
        let timeout = timeout_error(Op::Put, Duration::from_secs(1), "k");
        assert!(is_transient(&timeout));
        assert!(is_timeout(&timeout));
        assert!(!is_timeout(&generic));
        for permanent in [
            object_store::Error::NotFound {
                path: "k".into(),
                source: "x".into(),
            },
            object_store::Error::AlreadyExists {
                path: "k".into(),
                source: "x".into(),
            },
            object_store::Error::Precondition {
                path: "k".into(),
                source: "x".into(),
            },
            object_store::Error::NotModified {
                path: "k".into(),
                source: "x".into(),
            },
            object_store::Error::PermissionDenied {
                path: "k".into(),
                source: "x".into(),
            },
            object_store::Error::Unauthenticated {
                path: "k".into(),
                source: "x".into(),
            },
        ] {
            assert!(!is_transient(&permanent), "{permanent}");
        }
    }
}
