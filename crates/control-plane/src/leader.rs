//! Several control-plane replicas sharing one etcd: `election` elects the one leader
//! and fences its writes; `replica` serves a replica's listener, running the control
//! plane while it leads and forwarding every request to the leader otherwise.

mod election;
mod replica;

pub use election::{FencedStore, LEADER_KEY_PREFIX, LeaderElection, LeaderInfo, Leadership};
pub use replica::{ReplicaOptions, serve_replica};
