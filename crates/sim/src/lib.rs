//! A deterministic simulation of InfiniStream's write and read paths.
//!
//! One seed gives one schedule, and the same seed replays it. A schedule runs, on a
//! current-thread tokio runtime with a paused clock (time jumps to the next timer when
//! every task waits), the real production code of:
//!
//! - the gateway's [`Batcher`](infinistream_gateway::Batcher) (buffer, seal, PUT,
//!   ordered commits with retries, PubAcks) in several agents,
//! - the control plane's engine ([`ControlPlane`](infinistream_control_plane::ControlPlane),
//!   called in-process through its gRPC services) over the in-memory metadata store,
//! - consumer claims and acks, and the fetcher's
//!   [`StreamReader`](infinistream_fetcher::StreamReader) reading messages back from
//!   the in-memory bucket,
//!
//! with every choice drawn from one seeded RNG ([`rng`]): the workload, the time between
//! steps, which agent a publisher uses, and the faults (see [`FaultRates`]). After every
//! step the same invariants are checked ([`world`] lists them); the first violation
//! ends the schedule with its seed, so `SIM_SEED=<seed>` replays it.
//!
//! Nothing in the product depends on this crate (`cargo xtask check-deps` keeps it so).

pub mod harness;
pub mod meta;
pub mod rng;
pub mod sched;
pub mod world;

pub use sched::FaultRates;
pub use world::{Config, Failure, Report, run};
