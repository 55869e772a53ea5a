//! Fault injection for tests: an [`ObjectStore`] decorator whose failures are
//! scripted at runtime through a [`FaultHandle`].
//!
//! The invariants (ack means durable, no loss on a crash, bounded retries) are only
//! worth something if tests can make the bucket misbehave on cue: fail the next N
//! PUTs, fail everything under a prefix for a while, stall a GET past the timeout, or
//! write an object and then report failure (the case that makes retries ambiguous).
//! Rules are checked in the order they were added; the first one that matches fires.
//! Delays use tokio's clock, so tests with a paused clock do not wait.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, Result, UploadPart,
};
use parking_lot::Mutex;
use tokio::time::Instant;

use crate::metrics::{DELETE_CONCURRENCY, Op, delete_one};

/// The `store` name of injected errors.
pub const STORE_NAME: &str = "objstore-faulty";

/// The error an injected failure reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultError {
    /// A transient failure (`Generic`, as a network or 5xx error would be).
    Transient,
    /// `NotFound`.
    NotFound,
    /// `PermissionDenied` (a permanent failure).
    PermissionDenied,
    /// `Precondition`.
    Precondition,
}

/// The injected failure's source, so tests can tell injected errors from real ones.
#[derive(Debug, thiserror::Error)]
#[error("injected fault on {op}: `{location}`")]
pub struct InjectedFault {
    /// The operation.
    pub op: Op,
    /// The object (or prefix).
    pub location: String,
}

impl FaultError {
    fn to_error(self, op: Op, location: &str) -> object_store::Error {
        let source = Box::new(InjectedFault {
            op,
            location: location.to_owned(),
        });
        let path = location.to_owned();
        match self {
            FaultError::Transient => object_store::Error::Generic {
                store: STORE_NAME,
                source,
            },
            FaultError::NotFound => object_store::Error::NotFound { path, source },
            FaultError::PermissionDenied => object_store::Error::PermissionDenied { path, source },
            FaultError::Precondition => object_store::Error::Precondition { path, source },
        }
    }
}

/// True if `error` was injected by a [`FaultyStore`].
pub fn is_injected(error: &object_store::Error) -> bool {
    use std::error::Error as _;
    error
        .source()
        .is_some_and(|source| source.is::<InjectedFault>())
}

/// What a rule does when it fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultAction {
    /// Fail without touching the store.
    Fail(FaultError),
    /// Wait, then perform the operation.
    Delay(Duration),
    /// Perform the write, then report a transient error (puts and multipart
    /// completion; other operations just fail).
    PartialWrite,
}

/// One scripted fault: which operations and keys it applies to, how often and for how
/// long.
#[derive(Debug, Clone)]
pub struct FaultRule {
    action: FaultAction,
    ops: Vec<Op>,
    prefix: Option<String>,
    remaining: Option<u64>,
    duration: Option<Duration>,
}

impl FaultRule {
    /// A rule with `action` on every operation, forever (narrow it with the builders).
    pub fn new(action: FaultAction) -> Self {
        Self {
            action,
            ops: Vec::new(),
            prefix: None,
            remaining: None,
            duration: None,
        }
    }

    /// Fail `op` with a transient error.
    pub fn fail(op: Op) -> Self {
        Self::new(FaultAction::Fail(FaultError::Transient)).on(op)
    }

    /// Delay `op` by `delay`.
    pub fn delay(op: Op, delay: Duration) -> Self {
        Self::new(FaultAction::Delay(delay)).on(op)
    }

    /// Write, then report failure, on PUTs.
    pub fn partial_write() -> Self {
        Self::new(FaultAction::PartialWrite).on(Op::Put)
    }

    /// Also apply to `op` (a rule with no operations applies to all).
    pub fn on(mut self, op: Op) -> Self {
        self.ops.push(op);
        self
    }

    /// Report `error` instead of a transient failure (for `Fail` rules).
    pub fn with_error(mut self, error: FaultError) -> Self {
        if let FaultAction::Fail(_) = self.action {
            self.action = FaultAction::Fail(error);
        }
        self
    }

    /// Only for keys starting with `prefix` (plain string prefix of the path).
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = Some(prefix.into());
        self
    }

    /// Fire at most `n` times, then retire.
    pub fn times(mut self, n: u64) -> Self {
        self.remaining = Some(n);
        self
    }

    /// Stay active for `duration` after being added (tokio clock).
    pub fn for_duration(mut self, duration: Duration) -> Self {
        self.duration = Some(duration);
        self
    }
}

/// Identifies an added rule, for [`FaultHandle::remove`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RuleId(u64);

#[derive(Debug)]
struct ActiveRule {
    id: RuleId,
    rule: FaultRule,
    deadline: Option<Instant>,
}

#[derive(Debug, Default)]
struct State {
    rules: Vec<ActiveRule>,
    next_id: u64,
    injected: u64,
}

/// Runtime control of a [`FaultyStore`]; cheap to clone, shared with the store.
#[derive(Debug, Clone, Default)]
pub struct FaultHandle {
    state: Arc<Mutex<State>>,
}

impl FaultHandle {
    /// A handle with no rules.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `rule` after the existing ones.
    pub fn add(&self, rule: FaultRule) -> RuleId {
        let mut state = self.state.lock();
        let id = RuleId(state.next_id);
        state.next_id += 1;
        let deadline = rule.duration.map(|d| Instant::now() + d);
        state.rules.push(ActiveRule { id, rule, deadline });
        id
    }

    /// Removes a rule (no-op if it already retired).
    pub fn remove(&self, id: RuleId) {
        self.state.lock().rules.retain(|r| r.id != id);
    }

    /// Removes every rule.
    pub fn clear(&self) {
        self.state.lock().rules.clear();
    }

    /// Fails the next `n` requests of `op` with a transient error.
    pub fn fail_next(&self, op: Op, n: u64) -> RuleId {
        self.add(FaultRule::fail(op).times(n))
    }

    /// Fails every request of `op` for `duration`.
    pub fn fail_for(&self, op: Op, duration: Duration) -> RuleId {
        self.add(FaultRule::fail(op).for_duration(duration))
    }

    /// Fails every request of `op` on keys under `prefix` until removed.
    pub fn fail_prefix(&self, op: Op, prefix: impl Into<String>) -> RuleId {
        self.add(FaultRule::fail(op).prefix(prefix))
    }

    /// Delays every request of `op` by `delay` until removed.
    pub fn delay(&self, op: Op, delay: Duration) -> RuleId {
        self.add(FaultRule::delay(op, delay))
    }

    /// The next `n` PUTs write their object and then report a transient error.
    pub fn partial_write_next(&self, n: u64) -> RuleId {
        self.add(FaultRule::partial_write().times(n))
    }

    /// How many faults (failures, delays, partial writes) fired so far.
    pub fn injected(&self) -> u64 {
        self.state.lock().injected
    }

    /// Rules still active.
    pub fn active_rules(&self) -> usize {
        let mut state = self.state.lock();
        let now = Instant::now();
        state.rules.retain(|r| r.deadline.is_none_or(|d| now < d));
        state.rules.len()
    }

    /// The action for `op` on `location`, consuming one firing of the matching rule.
    fn check(&self, op: Op, location: &str) -> Option<FaultAction> {
        let mut state = self.state.lock();
        let now = Instant::now();
        state.rules.retain(|r| r.deadline.is_none_or(|d| now < d));
        let index = state.rules.iter().position(|r| {
            (r.rule.ops.is_empty() || r.rule.ops.contains(&op))
                && r.rule
                    .prefix
                    .as_deref()
                    .is_none_or(|prefix| location.starts_with(prefix))
        })?;
        let action = state.rules[index].rule.action;
        if let Some(remaining) = state.rules[index].rule.remaining.as_mut() {
            *remaining = remaining.saturating_sub(1);
            if *remaining == 0 {
                state.rules.remove(index);
            }
        }
        state.injected += 1;
        tracing::debug!(%op, location, ?action, "injecting object-store fault");
        Some(action)
    }
}

/// An [`ObjectStore`] decorator that injects the faults its [`FaultHandle`] scripts.
#[derive(Debug)]
pub struct FaultyStore {
    inner: Arc<dyn ObjectStore>,
    handle: FaultHandle,
}

impl FaultyStore {
    /// Wraps `inner`; returns the store and its control handle.
    pub fn new(inner: Arc<dyn ObjectStore>) -> (Self, FaultHandle) {
        let handle = FaultHandle::new();
        (Self::with_handle(inner, handle.clone()), handle)
    }

    /// Wraps `inner`, controlled by an existing `handle`.
    pub fn with_handle(inner: Arc<dyn ObjectStore>, handle: FaultHandle) -> Self {
        Self { inner, handle }
    }

    /// The control handle.
    pub fn handle(&self) -> &FaultHandle {
        &self.handle
    }
}

impl fmt::Display for FaultyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Faulty({})", self.inner)
    }
}

/// Applies a non-write action before an operation: `Err` to fail, `Ok` to proceed.
async fn before(action: Option<FaultAction>, op: Op, location: &str) -> Result<()> {
    match action {
        None => Ok(()),
        Some(FaultAction::Delay(delay)) => {
            tokio::time::sleep(delay).await;
            Ok(())
        }
        Some(FaultAction::Fail(error)) => Err(error.to_error(op, location)),
        Some(FaultAction::PartialWrite) => Err(FaultError::Transient.to_error(op, location)),
    }
}

#[async_trait]
impl ObjectStore for FaultyStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        match self.handle.check(Op::Put, location.as_ref()) {
            Some(FaultAction::PartialWrite) => {
                self.inner.put_opts(location, payload, opts).await?;
                Err(FaultError::Transient.to_error(Op::Put, location.as_ref()))
            }
            action => {
                before(action, Op::Put, location.as_ref()).await?;
                self.inner.put_opts(location, payload, opts).await
            }
        }
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        let partial = match self.handle.check(Op::Multipart, location.as_ref()) {
            Some(FaultAction::PartialWrite) => true,
            action => {
                before(action, Op::Multipart, location.as_ref()).await?;
                false
            }
        };
        let inner = self.inner.put_multipart_opts(location, opts).await?;
        Ok(Box::new(FaultyUpload {
            inner,
            partial,
            location: location.to_string(),
        }))
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        let op = Op::of_get(&options);
        before(
            self.handle.check(op, location.as_ref()),
            op,
            location.as_ref(),
        )
        .await?;
        self.inner.get_opts(location, options).await
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        let action = self.handle.check(Op::GetRange, location.as_ref());
        before(action, Op::GetRange, location.as_ref()).await?;
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        let inner = Arc::clone(&self.inner);
        let handle = self.handle.clone();
        locations
            .map(move |location| {
                let inner = Arc::clone(&inner);
                let handle = handle.clone();
                async move {
                    let location = location?;
                    match handle.check(Op::Delete, location.as_ref()) {
                        Some(FaultAction::PartialWrite) => {
                            delete_one(inner.as_ref(), location.clone()).await?;
                            Err(FaultError::Transient.to_error(Op::Delete, location.as_ref()))
                        }
                        action => {
                            before(action, Op::Delete, location.as_ref()).await?;
                            delete_one(inner.as_ref(), location).await
                        }
                    }
                }
            })
            .buffered(DELETE_CONCURRENCY)
            .boxed()
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        let location = prefix.map(Path::to_string).unwrap_or_default();
        let action = self.handle.check(Op::List, &location);
        let listing = self.inner.list(prefix);
        faulty_list(action, location, listing)
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, Result<ObjectMeta>> {
        let location = prefix.map(Path::to_string).unwrap_or_default();
        let action = self.handle.check(Op::List, &location);
        let listing = self.inner.list_with_offset(prefix, offset);
        faulty_list(action, location, listing)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        let location = prefix.map(Path::to_string).unwrap_or_default();
        before(self.handle.check(Op::List, &location), Op::List, &location).await?;
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        match self.handle.check(Op::Copy, to.as_ref()) {
            Some(FaultAction::PartialWrite) => {
                self.inner.copy_opts(from, to, options).await?;
                Err(FaultError::Transient.to_error(Op::Copy, to.as_ref()))
            }
            action => {
                before(action, Op::Copy, to.as_ref()).await?;
                self.inner.copy_opts(from, to, options).await
            }
        }
    }
}

fn faulty_list(
    action: Option<FaultAction>,
    location: String,
    listing: BoxStream<'static, Result<ObjectMeta>>,
) -> BoxStream<'static, Result<ObjectMeta>> {
    futures::stream::once(async move { before(action, Op::List, &location).await })
        .flat_map(move |outcome| match outcome {
            Ok(()) => futures::stream::empty().boxed(),
            Err(error) => futures::stream::once(async move { Err(error) }).boxed(),
        })
        .chain(listing)
        .boxed()
        .scan(false, |failed, item| {
            // After an injected failure the listing ends, like a failed page request.
            if *failed {
                return futures::future::ready(None);
            }
            *failed = item.is_err();
            futures::future::ready(Some(item))
        })
        .boxed()
}

#[derive(Debug)]
struct FaultyUpload {
    inner: Box<dyn MultipartUpload>,
    partial: bool,
    location: String,
}

#[async_trait]
impl MultipartUpload for FaultyUpload {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        self.inner.put_part(data)
    }

    async fn complete(&mut self) -> Result<PutResult> {
        let result = self.inner.complete().await?;
        if self.partial {
            return Err(FaultError::Transient.to_error(Op::Multipart, &self.location));
        }
        Ok(result)
    }

    async fn abort(&mut self) -> Result<()> {
        self.inner.abort().await
    }
}
