//! The zombie check: what the control plane refused processes that came back on a
//! stale view, counted in the group's logs.
//!
//! An agent paused (SIGSTOP) or cut off from the control plane past its lease has been
//! dropped from the registry when it returns; its first heartbeat is refused and it
//! registers again (the agent logs [`AGENT_LEASE_REFUSED`]). Every such return must be
//! refused: one accepted would be a zombie the control plane still trusts. Besides the
//! checks by effect (no second sequence for a Msg-Id, no lost CAS), the report counts
//! the refusals of every kind:
//!
//! - agent heartbeats refused after the lease expired (and per zombie fault, whether
//!   its agent was among them — a run fails on a zombie not fenced);
//! - job leases lost while the job ran (renewal refused: another agent holds it; the
//!   job is abandoned, its upload left to orphan collection);
//! - compaction swaps refused because the index moved under the job's view;
//! - control-plane writes refused by the metadata store's fence (a deposed leader).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::nemesis::FaultEvent;

/// The agent's line when the control plane refused its heartbeat (lease expired).
pub const AGENT_LEASE_REFUSED: &str = "agent lease refused by the control plane";
/// The jobs role's lines when a job's lease was taken from it while it ran.
const JOB_LEASE_LOST: [&str; 2] = ["lease lost while the job ran", "giving the job up"];
/// The jobs role's compaction summary, carrying `swaps_refused=<n>`.
const COMPACTION_PASS: &str = "compaction pass done";
/// A control-plane replica's line when its write met another instance's fence.
pub const CP_FENCE_MOVED: &str = "metadata store fence moved";

/// The fenced refusals of a run.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct Fenced {
    /// Heartbeats refused because the agent's lease had expired, by agent.
    pub agent_leases_refused: BTreeMap<String, u64>,
    /// Faults that kept an agent away past its lease (pauses, partitions)…
    pub zombies: u64,
    /// …and how many of those returns the control plane refused.
    pub zombies_fenced: u64,
    pub job_leases_lost: u64,
    pub compaction_swaps_refused: u64,
    pub cp_fence_refusals: u64,
}

impl Fenced {
    /// Counts the refusals in `agent_lines` and `cp_lines` (`<process>: <log line>`)
    /// and matches the agent refusals with the zombie `faults`.
    pub fn count(agent_lines: &[String], cp_lines: &[String], faults: &[FaultEvent]) -> Fenced {
        let mut fenced = Fenced::default();
        for entry in agent_lines {
            let (agent, line) = entry.split_once(": ").unwrap_or(("", entry));
            if line.contains(AGENT_LEASE_REFUSED) {
                *fenced
                    .agent_leases_refused
                    .entry(agent.to_owned())
                    .or_default() += 1;
            }
            if JOB_LEASE_LOST.iter().any(|l| line.contains(l)) {
                fenced.job_leases_lost += 1;
            }
            if line.contains(COMPACTION_PASS) {
                fenced.compaction_swaps_refused += field(line, "swaps_refused=");
            }
        }
        fenced.cp_fence_refusals = cp_lines
            .iter()
            .filter(|l| l.contains(CP_FENCE_MOVED))
            .count() as u64;
        let mut zombies: BTreeMap<&str, u64> = BTreeMap::new();
        for f in faults.iter().filter(|f| f.error.is_none()) {
            if let Some(agent) = &f.zombie {
                *zombies.entry(agent).or_default() += 1;
            }
        }
        for (agent, n) in zombies {
            fenced.zombies += n;
            let refused = fenced.agent_leases_refused.get(agent).copied().unwrap_or(0);
            fenced.zombies_fenced += n.min(refused);
        }
        fenced
    }

    /// The zombies whose return was not refused (a failure of the run).
    pub fn unfenced(&self) -> u64 {
        self.zombies - self.zombies_fenced
    }
}

/// Whether a log line tells of a fenced refusal (kept in the report as evidence).
pub fn is_fencing_line(line: &str) -> bool {
    line.contains(AGENT_LEASE_REFUSED)
        || line.contains(CP_FENCE_MOVED)
        || JOB_LEASE_LOST.iter().any(|l| line.contains(l))
        || (line.contains(COMPACTION_PASS) && field(line, "swaps_refused=") > 0)
}

/// The number after `key` in a `key=value` log line (0 when absent).
fn field(line: &str, key: &str) -> u64 {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nemesis::FaultKind;

    fn fault(kind: FaultKind, zombie: Option<&str>, error: Option<&str>) -> FaultEvent {
        FaultEvent {
            kind,
            start_ms: 0,
            end_ms: 0,
            detail: String::new(),
            error: error.map(str::to_owned),
            zombie: zombie.map(str::to_owned),
        }
    }

    #[test]
    fn refusals_are_counted_and_matched_with_the_zombies() {
        let agents = [
            "a-jobs: 2026-12-07T13:03:01Z  INFO infinistream_agent: agent lease refused by the control plane; registering again error=agent `x`: lease expired, register again",
            "a-jobs: 2026-12-07T13:03:01Z  INFO infinistream_agent: registered with the control plane agent_id=x lease_ms=10000",
            "b-proxy-jobs: 2026-12-07T13:03:51Z  INFO infinistream_jobs::runner: compaction pass done job=\"compaction\" streams=3 segments_written=0 entries_replaced=0 records=0 segment_bytes=0 swaps_refused=2 lease_conflicts=1 failed=0",
            "b-proxy-jobs: 2026-12-07T13:03:52Z  WARN job{job=\"compaction\"}: infinistream_jobs::lease: lease lost while the job ran; job abandoned lease=\"compact/CHAOS\"",
            "b-proxy-jobs: 2026-12-07T13:03:53Z  INFO infinistream_jobs::runner: compaction pass done job=\"compaction\" swaps_refused=1",
        ]
        .map(str::to_owned);
        let cps = [
            "control-plane-1: 2026-12-07T13:03:01Z ERROR infinistream_control_plane::engine: metadata store fence moved: another control plane took over".to_owned(),
        ];
        let faults = [
            fault(FaultKind::AgentPause, Some("a-jobs"), None),
            fault(FaultKind::Partition, Some("b-proxy-jobs"), None),
            // A fault that failed to inject left no zombie.
            fault(
                FaultKind::AgentPause,
                Some("a-produce"),
                Some("kill -STOP failed"),
            ),
            fault(FaultKind::AgentKill, None, None),
        ];
        let fenced = Fenced::count(&agents, &cps, &faults);
        assert_eq!(
            fenced.agent_leases_refused,
            BTreeMap::from([("a-jobs".to_owned(), 1)])
        );
        assert_eq!((fenced.zombies, fenced.zombies_fenced), (2, 1));
        assert_eq!(fenced.unfenced(), 1, "b-proxy-jobs came back unrefused");
        assert_eq!(fenced.job_leases_lost, 1);
        assert_eq!(fenced.compaction_swaps_refused, 3);
        assert_eq!(fenced.cp_fence_refusals, 1);
    }

    #[test]
    fn a_zombie_twice_needs_two_refusals() {
        let line = format!("b-proxy: x INFO {AGENT_LEASE_REFUSED}; registering again");
        let faults = [
            fault(FaultKind::AgentPause, Some("b-proxy"), None),
            fault(FaultKind::AgentPause, Some("b-proxy"), None),
        ];
        let once = Fenced::count(std::slice::from_ref(&line), &[], &faults);
        assert_eq!((once.zombies, once.zombies_fenced), (2, 1));
        let twice = Fenced::count(&[line.clone(), line], &[], &faults);
        assert_eq!(twice.unfenced(), 0);
    }
}
