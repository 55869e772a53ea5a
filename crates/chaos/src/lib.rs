//! Chaos testing of a whole InfiniStream group on loopback (issue 16, `cargo xtask chaos`
//! and the short seeded run in the agent's test suite; docs/reliability.md).
//!
//! Test tooling only: nothing in production depends on this crate (`cargo xtask
//! check-deps` keeps it so).
//!
//! - [`linearizability`]: the pure checker of KV histories;
//! - [`fencing`]: the fenced refusals counted in the group's logs (the zombie check);
//! - [`proxy`]: the fault-injecting S3 proxy and the partition forwarders;
//! - [`cluster`]: etcd ×3, SeaweedFS, control planes and agents as processes;
//! - [`nemesis`]: the faults; [`workloads`]: the clients; [`run`]: the run, the checks
//!   and the report.

pub mod cluster;
pub mod fencing;
pub mod linearizability;
pub mod nemesis;
pub mod proxy;
pub mod reference;
pub mod rng;
pub mod run;
pub mod workloads;

/// Why a run could not be carried out (a finding is a report failure, not an error).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot start the cluster: {0}")]
    Setup(String),
    #[error("client: {0}")]
    Nats(String),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}
