//! Runs the deterministic simulation over many seeds (see the crate docs).
//!
//! - `SIM_SCHEDULES=N` — how many schedules `many_schedules` runs (default
//!   [`DEFAULT_SCHEDULES`]), spread over `SIM_THREADS` threads (default: the cores);
//! - `SIM_SEED_BASE=B` — the first seed (default 1; seeds B..B+N);
//! - `SIM_SEED=S` — `replay` runs schedule S alone and prints what it did.
//!
//! The first failing seed is printed with the command that replays it.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use infinistream_sim::{Config, run};

/// Schedules per run of the suite (see docs/reliability.md for what that explores).
const DEFAULT_SCHEDULES: u64 = 2_000;

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

#[test]
fn many_schedules() {
    let n = env_u64("SIM_SCHEDULES").unwrap_or(DEFAULT_SCHEDULES);
    let base = env_u64("SIM_SEED_BASE").unwrap_or(1);
    let threads = env_u64("SIM_THREADS")
        .and_then(|t| usize::try_from(t).ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |p| p.get()))
        .clamp(1, usize::try_from(n).unwrap_or(1).max(1));
    let config = Config::default();
    let started = Instant::now();
    let next = AtomicU64::new(base);
    let totals = Mutex::new(Totals::default());
    // Each schedule runs alone on its own single-threaded runtime, so the worker
    // threads only share the seed counter and the totals. Seeds are taken in order
    // and a failure stops new ones: every seed below a failing one has run, so the
    // lowest failing seed is the first, as a sequential run would report it.
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                loop {
                    if totals
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .failure
                        .is_some()
                    {
                        return;
                    }
                    let seed = next.fetch_add(1, Ordering::Relaxed);
                    if seed >= base + n {
                        return;
                    }
                    let result = run(seed, &config);
                    let mut t = totals.lock().unwrap_or_else(|p| p.into_inner());
                    match result {
                        Ok(report) => {
                            t.acked += report.acked;
                            t.stored += report.stored;
                            for (k, v) in report.faults {
                                *t.faults.entry(k).or_default() += v;
                            }
                        }
                        Err(failure) => {
                            if t.failure.as_ref().is_none_or(|(s, _)| seed < *s) {
                                t.failure = Some((seed, failure.to_string()));
                            }
                        }
                    }
                }
            });
        }
    });
    let t = totals.into_inner().unwrap_or_else(|p| p.into_inner());
    if let Some((_, failure)) = t.failure {
        panic!("{failure}");
    }
    let total: u64 = t.faults.values().sum();
    println!(
        "simulation: {n} schedules (seeds {base}..{}) on {threads} threads, {} acked publishes, {} stored, {total} faults in {:.1?}",
        base + n,
        t.acked,
        t.stored,
        started.elapsed()
    );
    for (point, count) in &t.faults {
        println!("  {point:<36} {count}");
    }
    assert!(t.acked > 0, "no schedule acked anything");
    assert!(total > 0, "no fault was injected");
}

/// What the schedules of [`many_schedules`] add up to, and the first failure.
#[derive(Default)]
struct Totals {
    acked: usize,
    stored: u64,
    faults: BTreeMap<&'static str, u64>,
    failure: Option<(u64, String)>,
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
