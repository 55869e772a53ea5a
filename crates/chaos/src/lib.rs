//! Chaos testing of a whole InfiniStream group on loopback (issue 16, `cargo xtask chaos`).
//!
//! Test tooling only: nothing in production depends on this crate (`cargo xtask
//! check-deps` keeps it so). [`linearizability`] is the pure checker of KV histories.

pub mod linearizability;
