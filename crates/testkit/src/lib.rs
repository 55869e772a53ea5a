//! Test fixtures that start real components on loopback.
//!
//! Every fixture binds 127.0.0.1 only, uses a fresh temporary directory, and stops what
//! it started when dropped, so nothing is left running after a test.

pub mod etcd;
pub mod metadata;
pub mod nats;
pub mod process;
pub mod s3;
pub mod tools;
