//! Runs the deterministic simulation over many seeds (see the crate docs).
//!
//! - `SIM_SCHEDULES=N` — how many schedules `many_schedules` runs (default 400);
//! - `SIM_SEED_BASE=B` — the first seed (default 1; seeds B..B+N);
//! - `SIM_SEED=S` — `replay` runs schedule S alone and prints what it did.
//!
//! The first failing seed is printed with the command that replays it.

use std::collections::BTreeMap;
use std::time::Instant;

use infinistream_sim::{Config, run};

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

#[test]
fn many_schedules() {
    let n = env_u64("SIM_SCHEDULES").unwrap_or(400);
    let base = env_u64("SIM_SEED_BASE").unwrap_or(1);
    let config = Config::default();
    let started = Instant::now();
    let mut faults: BTreeMap<&'static str, u64> = BTreeMap::new();
    let (mut acked, mut stored) = (0usize, 0u64);
    for seed in base..base + n {
        match run(seed, &config) {
            Ok(report) => {
                acked += report.acked;
                stored += report.stored;
                for (k, v) in report.faults {
                    *faults.entry(k).or_default() += v;
                }
            }
            Err(failure) => panic!("{failure}"),
        }
    }
    let total: u64 = faults.values().sum();
    println!(
        "simulation: {n} schedules (seeds {base}..{}), {acked} acked publishes, {stored} stored, {total} faults in {:.1?}",
        base + n,
        started.elapsed()
    );
    for (point, count) in &faults {
        println!("  {point:<36} {count}");
    }
    assert!(acked > 0, "no schedule acked anything");
    assert!(total > 0, "no fault was injected");
}

#[test]
fn a_seed_replays_the_same_schedule() {
    let config = Config::default();
    for seed in [3, 17, 4242] {
        let first = run(seed, &config).unwrap_or_else(|f| panic!("{f}"));
        let again = run(seed, &config).unwrap_or_else(|f| panic!("{f}"));
        if let Some(i) = (0..first.events.len().max(again.events.len()))
            .find(|&i| first.events.get(i) != again.events.get(i))
        {
            panic!(
                "seed {seed} did not replay: event {i} was {:?}, then {:?}",
                first.events.get(i),
                again.events.get(i)
            );
        }
        assert_eq!(first.digest, again.digest, "seed {seed} did not replay");
        assert_eq!(first.faults, again.faults, "seed {seed} did not replay");
    }
}

/// Replays one schedule (seed 1 unless `SIM_SEED` says):
/// `SIM_SEED=S cargo test -p infinistream-sim --test simulation -- replay --nocapture`
#[test]
fn replay() {
    let seed = env_u64("SIM_SEED").unwrap_or(1);
    match run(seed, &Config::default()) {
        Ok(report) => {
            println!("{report:#?}");
            assert_eq!(report.seed, seed);
        }
        Err(failure) => {
            for event in &failure.events {
                println!("  {event}");
            }
            panic!("{failure}")
        }
    }
}
