//! Priority groups (ADR-42), `prioritized`: a pull request carries a priority (0 is
//! served first, 9 last) and nats-server hands each message to the waiting request
//! of the best priority. Here the requests wait on the agents, so the order across
//! agents is kept by what each agent reports of its waiting requests:
//! - every claim of a `prioritized` consumer carries what its agent has waiting, per
//!   priority (`ClaimRequest.waiting`): it replaces that agent's previous report and
//!   lives [`REPORT_TTL_NANOS`] (an agent with requests parked claims at least every
//!   200 ms, so a report outlives its agent by at most that TTL);
//! - a claim for a request whose priority is worse than another live agent's best
//!   waiting one hands out nothing while there is something to deliver (`deferred`):
//!   the better request, parked on the other agent, gets it first;
//! - what a claim hands out is taken off its agent's report at once, so a request
//!   whose batch is filled stops holding the others back before its agent's next
//!   report; a claim that hands out something after one was deferred wakes the
//!   agents (a consumer event) to claim again.
//!
//! The reports are soft state in the control plane's memory, never written: a new
//! leader starts without them and has them again from the next claims. Ties (the same
//! priority on two agents) go to whichever claims first.

use std::collections::HashMap;

use infinistream_proto::v1;

/// How long an agent's report holds without a claim renewing it.
pub const REPORT_TTL_NANOS: i64 = 2_000_000_000;

/// One agent's waiting requests.
#[derive(Debug, Clone)]
struct Report {
    levels: Vec<v1::PriorityWaiting>,
    expires: i64,
}

/// The reports of one consumer's agents.
#[derive(Debug, Default)]
pub struct Reports {
    agents: HashMap<String, Report>,
    /// A claim was deferred since the last wake-up.
    deferred: bool,
}

impl Reports {
    /// Takes `agent`'s report from its claim (an empty one withdraws it) and drops
    /// the expired ones.
    pub fn report(&mut self, agent: &str, levels: &[v1::PriorityWaiting], now: i64) {
        self.agents.retain(|_, r| r.expires > now);
        let levels: Vec<_> = levels.iter().filter(|l| l.wanted > 0).cloned().collect();
        if levels.is_empty() {
            self.agents.remove(agent);
        } else {
            self.agents.insert(
                agent.to_owned(),
                Report {
                    levels,
                    expires: now.saturating_add(REPORT_TTL_NANOS),
                },
            );
        }
    }

    /// Whether another live agent has a request of a better priority than `priority`
    /// waiting; a claim that must so wait is counted for [`Reports::take_deferred`].
    pub fn defer(&mut self, agent: &str, priority: u32, now: i64) -> bool {
        let ahead = self.agents.iter().any(|(id, r)| {
            id != agent && r.expires > now && r.levels.iter().any(|l| l.priority < priority)
        });
        self.deferred |= ahead;
        ahead
    }

    /// Takes what a claim handed out off `agent`'s report at `priority`.
    pub fn served(&mut self, agent: &str, priority: u32, count: usize) {
        let Some(r) = self.agents.get_mut(agent) else {
            return;
        };
        let count = i64::try_from(count).unwrap_or(i64::MAX);
        for l in r.levels.iter_mut().filter(|l| l.priority == priority) {
            l.wanted = l.wanted.saturating_sub(count);
        }
        r.levels.retain(|l| l.wanted > 0);
        if r.levels.is_empty() {
            self.agents.remove(agent);
        }
    }

    /// Whether a claim was deferred since the last call (the agents should claim again).
    pub fn take_deferred(&mut self) -> bool {
        std::mem::take(&mut self.deferred)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(priority: u32, wanted: i64) -> v1::PriorityWaiting {
        v1::PriorityWaiting { priority, wanted }
    }

    #[test]
    fn a_worse_priority_waits_behind_another_agents_better_one() {
        let mut r = Reports::default();
        r.report("a", &[at(0, 1)], 0);
        r.report("b", &[at(5, 10)], 0);
        assert!(r.defer("b", 5, 1));
        // The same agent, or the same priority elsewhere, does not wait.
        assert!(!r.defer("a", 0, 1));
        assert!(!r.defer("c", 0, 1));
        assert!(r.take_deferred());
        assert!(!r.take_deferred());
        // Once a's request is served, b goes.
        r.served("a", 0, 1);
        assert!(!r.defer("b", 5, 2));
    }

    #[test]
    fn reports_expire_and_an_empty_one_withdraws() {
        let mut r = Reports::default();
        r.report("a", &[at(1, 3), at(4, 1)], 0);
        assert!(r.defer("b", 2, REPORT_TTL_NANOS - 1));
        assert!(!r.defer("b", 2, REPORT_TTL_NANOS));
        r.report("a", &[at(1, 3)], 10);
        r.report("a", &[], 11);
        assert!(!r.defer("b", 9, 12));
        // A partly served level still holds the others back.
        r.report("a", &[at(1, 3)], 20);
        r.served("a", 1, 2);
        assert!(r.defer("b", 2, 21));
    }
}
