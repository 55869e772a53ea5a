//! Generated gRPC code from `proto/` plus checked domain conversions (layer 0).
//!
//! The wire types (prost messages, tonic clients and servers) are generated at build
//! time from `proto/infinistream/v1/*.proto` into [`v1`]. Wire messages are loose by
//! nature (every field optional, strings unchecked), so the important ones have a
//! checked twin in [`domain`]: converting with `TryFrom` validates required fields,
//! names and subjects once, at the edge, and the control plane works only with the
//! checked forms.

pub mod domain;
mod jserror;

/// Generated code for package `infinistream.v1`.
#[allow(
    missing_docs,
    clippy::all,
    clippy::pedantic,
    missing_debug_implementations
)]
pub mod v1 {
    tonic::include_proto!("infinistream.v1");
}

pub use domain::InvalidArgument;
