//! The nemesis: faults, each alone and then combined, in a seeded order, one after
//! another with a quiet gap between them, until the run's deadline. It runs on its own
//! thread (restarting a process blocks until the process is ready) and records when
//! each fault began and ended, for the stall checker.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::cluster::Cluster;
use crate::proxy::{BucketFault, BucketProxy, Partition};
use crate::rng::Rng;
use crate::workloads::Clock;

/// The kinds of fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    AgentKill,
    CpLeaderKill,
    EtcdMemberKill,
    EtcdLeaderKill,
    /// SIGSTOP past the agent's lease, then SIGCONT.
    AgentPause,
    Bucket5xx,
    BucketSlow,
    BucketTimeout,
    BucketCutMidBody,
    Bucket403,
    /// One agent cut off from every control-plane replica past its lease.
    Partition,
    /// The wall clock of one agent jumps forward, then back.
    ClockSkew,
    /// A random agent killed, an etcd member killed and bucket 5xx, at once.
    Combined,
}

pub const ALL: &[FaultKind] = &[
    FaultKind::AgentKill,
    FaultKind::CpLeaderKill,
    FaultKind::EtcdMemberKill,
    FaultKind::EtcdLeaderKill,
    FaultKind::AgentPause,
    FaultKind::Bucket5xx,
    FaultKind::BucketSlow,
    FaultKind::BucketTimeout,
    FaultKind::BucketCutMidBody,
    FaultKind::Bucket403,
    FaultKind::Partition,
    FaultKind::ClockSkew,
    FaultKind::Combined,
];

/// One fault as it happened.
#[derive(Debug, Clone, Serialize)]
pub struct FaultEvent {
    pub kind: FaultKind,
    pub start_ms: u64,
    pub end_ms: u64,
    pub detail: String,
    /// An error while injecting or repairing (the run fails on it).
    pub error: Option<String>,
    /// The agent this fault kept away past its lease (paused, or cut off from the
    /// control plane): a zombie when it returns, which the control plane must fence.
    pub zombie: Option<String>,
}

/// The agent's lease (the control plane's default) and how far past it a pause or a
/// partition lasts.
const LEASE: Duration = Duration::from_secs(10);
const PAST_LEASE: Duration = Duration::from_secs(3);
/// Time a killed process stays down before its restart.
const DOWN: Duration = Duration::from_secs(2);
/// How long a bucket fault lasts, and the share of requests it hits.
const BUCKET_FAULT: Duration = Duration::from_secs(5);
const BUCKET_SHARE: f64 = 0.5;
/// Quiet time between faults.
const GAP: Duration = Duration::from_secs(2);

/// What the nemesis controls.
#[derive(Debug, Clone)]
pub struct Targets {
    pub cluster: Arc<Cluster>,
    pub bucket: BucketProxy,
    pub partitions: Vec<Partition>,
}

/// Runs faults until `deadline` (each kind at least once first, in a seeded order),
/// then returns what it did. `stop` ends it early.
pub fn run(
    targets: Targets,
    mut rng: Rng,
    clock: Clock,
    deadline: Instant,
    stop: Arc<AtomicBool>,
) -> Vec<FaultEvent> {
    let mut events = Vec::new();
    let mut order: Vec<FaultKind> = ALL.to_vec();
    rng.shuffle(&mut order);
    let mut round = 0usize;
    while Instant::now() < deadline && !stop.load(Ordering::Relaxed) {
        let kind = if round < order.len() {
            order[round]
        } else {
            ALL[rng.below(ALL.len() as u64) as usize]
        };
        round += 1;
        let start_ms = clock.ms();
        let mut zombie = None;
        let (detail, result) = inject(&targets, kind, &mut rng, &mut zombie);
        events.push(FaultEvent {
            kind,
            start_ms,
            end_ms: clock.ms(),
            detail,
            error: result.err(),
            zombie,
        });
        std::thread::sleep(GAP);
    }
    events
}

/// Injects one fault and repairs it; sets `zombie` to the agent it kept away past its
/// lease.
fn inject(
    t: &Targets,
    kind: FaultKind,
    rng: &mut Rng,
    zombie: &mut Option<String>,
) -> (String, Result<(), String>) {
    let c = &t.cluster;
    let random_agent = |rng: &mut Rng| rng.below(c.agent_count() as u64) as usize;
    let s = |r: Result<(), crate::Error>| r.map_err(|e| e.to_string());
    match kind {
        FaultKind::AgentKill => {
            let i = random_agent(rng);
            let r = c.kill_agent(i).and_then(|()| {
                std::thread::sleep(DOWN);
                c.restart_agent(i)
            });
            (format!("kill -9 agent {}", c.agent_name(i)), s(r))
        }
        FaultKind::CpLeaderKill => {
            let (i, how) = match c.cp_leader() {
                Ok(i) => (i, "leader".to_owned()),
                Err(why) => (
                    rng.below(c.cp_count() as u64) as usize,
                    format!("random: {why}"),
                ),
            };
            let r = c.kill_cp(i).and_then(|()| {
                std::thread::sleep(DOWN);
                c.restart_cp(i)
            });
            (format!("kill -9 control plane {i} ({how})"), s(r))
        }
        FaultKind::EtcdMemberKill | FaultKind::EtcdLeaderKill => {
            let leader = c.etcd_leader();
            let i = if kind == FaultKind::EtcdLeaderKill {
                leader.unwrap_or(0)
            } else {
                // A follower when the leader is known.
                let n = c.etcd.len();
                let pick = rng.below(n as u64) as usize;
                if Some(pick) == leader {
                    (pick + 1) % n
                } else {
                    pick
                }
            };
            let r = c
                .etcd
                .kill(i)
                .and_then(|()| {
                    std::thread::sleep(DOWN);
                    c.etcd.restart(i)
                })
                .map_err(|e| e.to_string());
            (
                format!("kill -9 etcd member {i} (leader was {leader:?})"),
                r,
            )
        }
        FaultKind::AgentPause => {
            let i = random_agent(rng);
            *zombie = Some(c.agent_name(i).to_owned());
            let r = c.pause_agent(i, true).and_then(|()| {
                std::thread::sleep(LEASE + PAST_LEASE);
                c.pause_agent(i, false)
            });
            (
                format!(
                    "SIGSTOP agent {} for {:?}, then SIGCONT",
                    c.agent_name(i),
                    LEASE + PAST_LEASE
                ),
                s(r),
            )
        }
        FaultKind::Bucket5xx
        | FaultKind::BucketSlow
        | FaultKind::BucketTimeout
        | FaultKind::BucketCutMidBody
        | FaultKind::Bucket403 => {
            let fault = match kind {
                FaultKind::Bucket5xx => BucketFault::ServerError,
                FaultKind::BucketSlow => BucketFault::Slow(Duration::from_millis(1500)),
                FaultKind::BucketTimeout => BucketFault::Hang(Duration::from_secs(40)),
                FaultKind::BucketCutMidBody => BucketFault::CutMidBody,
                _ => BucketFault::Forbidden,
            };
            t.bucket.inject(fault, BUCKET_SHARE);
            std::thread::sleep(BUCKET_FAULT);
            t.bucket.heal();
            (
                format!(
                    "{fault:?} on {:.0}% of bucket requests for {BUCKET_FAULT:?}",
                    BUCKET_SHARE * 100.0
                ),
                Ok(()),
            )
        }
        FaultKind::Partition => {
            let Some(i) = c.partitionable_agent() else {
                return ("no partitionable agent".into(), Ok(()));
            };
            *zombie = Some(c.agent_name(i).to_owned());
            t.partitions.iter().for_each(|p| p.set_cut(true));
            std::thread::sleep(LEASE + PAST_LEASE);
            t.partitions.iter().for_each(|p| p.set_cut(false));
            (
                format!(
                    "agent {} cut from every control plane for {:?}",
                    c.agent_name(i),
                    LEASE + PAST_LEASE
                ),
                Ok(()),
            )
        }
        FaultKind::ClockSkew => {
            let Some(i) = c.skewed_agent() else {
                return ("no skewed agent (libfaketime missing)".into(), Ok(()));
            };
            let r = c
                .set_skew("+5m")
                .and_then(|()| {
                    std::thread::sleep(Duration::from_secs(5));
                    c.set_skew("-5m")
                })
                .and_then(|()| {
                    std::thread::sleep(Duration::from_secs(5));
                    c.set_skew("+0")
                });
            (
                format!(
                    "wall clock of agent {} +5m for 5s, then -5m for 5s",
                    c.agent_name(i)
                ),
                s(r),
            )
        }
        FaultKind::Combined => {
            let i = random_agent(rng);
            let member = rng.below(c.etcd.len() as u64) as usize;
            t.bucket.inject(BucketFault::ServerError, BUCKET_SHARE);
            let r = c
                .kill_agent(i)
                .and_then(|()| c.etcd.kill(member).map_err(crate::Error::from))
                .and_then(|()| {
                    std::thread::sleep(DOWN);
                    c.etcd.restart(member).map_err(crate::Error::from)
                })
                .and_then(|()| c.restart_agent(i));
            t.bucket.heal();
            (
                format!(
                    "kill -9 agent {} + kill -9 etcd member {member} + bucket 5xx",
                    c.agent_name(i)
                ),
                s(r),
            )
        }
    }
}
