//! Bucket URLs, key naming and object-store decorators (layer 1).
//!
//! The object store is the only place InfiniStream data lives, and this crate is the
//! only code that talks to it. Roles get a [`Bucket`]: a group's view of the store
//! named by a URL ([`url`]), probed at startup, with retries ([`retry`]), request
//! metrics ([`metrics`]) and — in tests — scripted faults ([`faults`]) stacked as
//! plain [`object_store::ObjectStore`] decorators, so the write path stays plain.
//! Object names come from [`keys`]: unique, time-ordered, parseable back for GC.
//!
//! See docs/bucket.md for URL options, key layout, defaults and bucket permissions.

pub mod bucket;
pub mod faults;
pub mod keys;
pub mod metrics;
pub mod retry;
pub mod url;

pub use bucket::{Bucket, BucketError, BucketOptions};
pub use faults::{FaultAction, FaultError, FaultHandle, FaultRule, FaultyStore};
pub use keys::{KeyError, ObjectKey, ObjectKind};
pub use metrics::{MeteredStore, Op, StoreMetrics};
pub use object_store;
pub use retry::{RetryConfig, RetryingStore, is_timeout, is_transient};
pub use url::{BucketUrl, OpenError, Scheme};
