//! What one schedule shares: its seeded randomness and fault switch ([`Ctx`]), the
//! fault probabilities ([`FaultRates`]) and the simulated processes ([`Node`]) that
//! the decorators (`meta`) and the world (`world`) both use.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::Mutex;
use tokio::time::Instant;

use crate::rng::SimRng;

/// The probability of each fault at its point.
#[derive(Debug, Clone)]
pub struct FaultRates {
    /// A metadata-store call fails (before applying, or after: answer lost).
    pub meta_fail: f64,
    /// The control plane crashes before / after a metadata-store write.
    pub cp_crash: f64,
    /// A store write or an RPC is delayed (reorders it against others).
    pub delay: f64,
    /// An agent crashes around its commit RPC or before sending a PubAck.
    pub agent_crash: f64,
    /// An RPC's request or answer is lost.
    pub rpc_lost: f64,
    /// An RPC's answer is delivered twice (the call is made again).
    pub rpc_duplicated: f64,
    /// An RPC goes to a deposed leader that still runs.
    pub stale_route: f64,
    /// Per step: an agent is killed.
    pub step_agent_kill: f64,
    /// Per step: a new leader takes over while the old one still runs.
    pub step_leader_change: f64,
    /// Per step: the bucket starts misbehaving for a while.
    pub step_bucket_fault: f64,
    /// A consumer agent is paused (SIGSTOP) right after a claim, past the claim's
    /// deadline, then releases what it claimed: the other consumer agent may have
    /// claimed it meanwhile.
    pub consumer_paused: f64,
}

impl Default for FaultRates {
    fn default() -> Self {
        FaultRates {
            meta_fail: 0.02,
            cp_crash: 0.01,
            delay: 0.05,
            agent_crash: 0.02,
            rpc_lost: 0.03,
            rpc_duplicated: 0.03,
            stale_route: 0.03,
            step_agent_kill: 0.06,
            step_leader_change: 0.04,
            step_bucket_fault: 0.10,
            consumer_paused: 0.05,
        }
    }
}

/// The schedule's shared randomness, fault switch and records.
#[derive(Debug)]
pub(crate) struct Ctx {
    pub(crate) rng: Mutex<SimRng>,
    pub(crate) rates: FaultRates,
    /// Faults held off (while checking, and after the heal).
    pub(crate) quiet: AtomicBool,
    pub(crate) faults: Mutex<BTreeMap<&'static str, u64>>,
    pub(crate) digest: Mutex<u64>,
    pub(crate) events: Mutex<Vec<String>>,
    pub(crate) start: Instant,
    pub(crate) violations: Mutex<Vec<String>>,
}

impl Ctx {
    pub(crate) fn new(seed: u64, rates: FaultRates) -> Self {
        Ctx {
            rng: Mutex::new(SimRng::new(seed)),
            rates,
            quiet: AtomicBool::new(false),
            faults: Mutex::new(BTreeMap::new()),
            digest: Mutex::new(0xcbf2_9ce4_8422_2325),
            events: Mutex::new(Vec::new()),
            start: Instant::now(),
            violations: Mutex::new(Vec::new()),
        }
    }

    /// True when the fault at `point` fires (never while faults are held off).
    pub(crate) fn draw(&self, point: &'static str, p: f64) -> bool {
        if self.quiet.load(Ordering::SeqCst) {
            return false;
        }
        let hit = self.rng.lock().chance(p);
        if hit {
            *self.faults.lock().entry(point).or_default() += 1;
            self.record(point.as_bytes());
        }
        hit
    }

    pub(crate) fn below(&self, n: u64) -> u64 {
        self.rng.lock().below(n)
    }

    /// Folds an event into the digest (FNV-1a).
    pub(crate) fn record(&self, event: &[u8]) {
        self.events.lock().push(format!(
            "{:?} {}",
            self.start.elapsed(),
            String::from_utf8_lossy(event)
        ));
        let mut h = self.digest.lock();
        for b in event.iter().chain(b"|") {
            *h ^= u64::from(*b);
            *h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }

    pub(crate) fn violation(&self, message: String) {
        self.violations.lock().push(message);
    }

    pub(crate) fn quiet(&self, on: bool) {
        self.quiet.store(on, Ordering::SeqCst);
    }
}

/// A simulated process: alive until crashed; a crashed one stops at its next await.
#[derive(Debug)]
pub(crate) struct Node {
    pub(crate) name: String,
    pub(crate) alive: AtomicBool,
    /// Faults apply only once armed (a control plane opens without them).
    pub(crate) armed: AtomicBool,
}

impl Node {
    pub(crate) fn new(name: String) -> Arc<Self> {
        Arc::new(Node {
            name,
            alive: AtomicBool::new(true),
            armed: AtomicBool::new(false),
        })
    }

    pub(crate) fn alive(&self) -> bool {
        self.alive.load(Ordering::SeqCst)
    }

    pub(crate) fn armed(&self) -> bool {
        self.armed.load(Ordering::SeqCst)
    }

    /// Waits forever if the process has crashed (it never gets past this await).
    pub(crate) async fn gate(&self) {
        if !self.alive() {
            std::future::pending::<()>().await;
        }
    }

    /// Crashes the process here: never returns.
    pub(crate) async fn crash(&self) -> ! {
        self.kill();
        std::future::pending::<()>().await;
        unreachable!("a pending future never completes")
    }

    pub(crate) fn kill(&self) {
        self.alive.store(false, Ordering::SeqCst);
    }
}
