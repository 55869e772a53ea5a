//! The jobs role: retention, garbage collection and compaction (layer 3).
//!
//! The control plane decides what is live; the bucket holds the bytes. Jobs keep the
//! two in step, each pass under a lease from the control plane so that any number of
//! jobs agents never do the same work twice:
//!
//! - **retention** ([`Jobs::retention_pass`], lease `retention`): asks the control
//!   plane to apply time limits now (`EnforceRetention`: max_age and message TTLs
//!   become durable even when nobody publishes), then deletes every object the control
//!   plane has *released* (reference count dropped to zero: every record in it purged,
//!   deleted, trimmed by limits, expired, or moved into a segment by compaction) once
//!   it has been released for `release_grace`, and tells the control plane to forget
//!   it (`ForgetObjects`).
//! - **orphan collection** ([`Jobs::orphan_pass`], lease `gc`): batch objects and
//!   segments in the bucket that the control plane neither references nor has
//!   released — an upload whose commit failed, an agent killed between PUT and
//!   commit, a compaction whose swap outcome was lost — are deleted once older than
//!   `orphan_grace`.
//! - **compaction** ([`Jobs::compaction_pass`], lease `compact/<stream>`): per stream,
//!   a run of consecutive small index entries (chunks of many batch objects, small
//!   segments) is rewritten into one compacted segment, then `SwapIndex` replaces the
//!   run atomically. The control plane refuses the swap when any entry changed in the
//!   meantime; the unused segment is then deleted at once. The replaced objects lose
//!   their references and retention deletes them.
//! - **schedules** ([`Jobs::schedule_pass`], lease `schedules`): message schedules
//!   (ADR-51) that are due are fired, each exactly once, by a fenced commit (see the
//!   `schedules` module).
//!
//! # The deletion rule
//!
//! An object is deleted only when the control plane says nothing references it, and
//! only after a grace period:
//! - *released* objects: `released_unix_nanos + release_grace <= now` and the key is not
//!   in the same `ListObjects` answer's `referenced` list. Object keys are never reused
//!   (fresh ULID per upload), so a released object cannot be referenced again; the
//!   grace covers readers that looked the object up just before it was released.
//! - *orphans* (neither referenced nor released): the bucket is listed **before**
//!   `ListObjects` is asked, and an object is deleted only if it is older than
//!   `orphan_grace`, where its age counts from the later of its ULID time (the
//!   uploader's clock) and the bucket's last-modified time (the store's clock). A commit
//!   that references an object happens within the gateway's flush deadline (4 s) of
//!   its upload — after that the gateway gives up and fails the publishes — so any
//!   object still unreferenced long after that can no longer become referenced.
//!   `orphan_grace` (default 10 min, at least 10 × the flush deadline) also absorbs
//!   clock skew between agents and the store.
//!
//! Only keys that parse as this group's batch or segment keys are ever deleted.

mod compaction;
mod ctx;
mod error;
mod lease;
mod metrics;
mod orphans;
mod retention;
mod role;
mod runner;
mod schedules;

pub use compaction::{CompactionReport, FULL_SWEEP_EVERY, PreparedSegment, SwapOutcome, plan_run};
pub use ctx::JobsOptions;
pub use error::JobsError;
pub use metrics::JobsMetrics;
pub use orphans::OrphanReport;
pub use retention::RetentionReport;
pub use role::start;
pub use runner::{Jobs, PassReport};
pub use schedules::ScheduleReport;
