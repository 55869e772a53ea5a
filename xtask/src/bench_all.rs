//! `cargo xtask bench` with no suite named: every suite against nats-server and
//! InfiniStream in one run (core, publish, latency, consume, many-streams; about 10
//! minutes on the project's 2-core machine), then one ratio table of the figures both
//! servers were measured on, and a JSON report (commit, machine, versions, figures).
//!
//! - publish is `bench js publish sequential` (the deep-window rows, CPU per GB and the
//!   idle PubAck); latency is `bench latency` (InfiniStream at its default 250 ms
//!   window and at 50 ms); consume is `bench consume`; many-streams is `bench
//!   many-streams`.
//! - `--json PATH` names the report (default `target/bench/bench-<unix seconds>.json`);
//!   `--skip SUITE` (repeatable) leaves a suite out.
//!
//! A suite that fails is reported and the run goes on: one broken suite does not cost
//! the other figures.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use serde_json::json;

use crate::bench::{Figure, build_release, figures, infinistream_bin, nats_server_bin};
use crate::{tools, workspace_root};

const SUITES: [&str; 5] = ["core", "publish", "latency", "consume", "many-streams"];

pub fn run(args: &[String]) -> anyhow::Result<()> {
    let mut json_path: Option<PathBuf> = None;
    let mut skip: Vec<String> = Vec::new();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = || it.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--json" => json_path = Some(value()?.into()),
            "--skip" => {
                let suite = value()?;
                if !SUITES.contains(&suite.as_str()) {
                    bail!("--skip takes one of {SUITES:?}, not `{suite}`");
                }
                skip.push(suite.clone());
            }
            other => bail!("unknown option `{other}` for bench (try --json PATH, --skip SUITE)"),
        }
    }
    tools::install_all()?;
    build_release()?;
    let started_unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let load_before = load_average();
    let started = Instant::now();
    let mut failures = Vec::new();
    for suite in SUITES {
        if skip.iter().any(|s| s == suite) {
            continue;
        }
        println!("\n## {suite}\n");
        let suite_started = Instant::now();
        let result = match suite {
            "core" => crate::bench::core_table(&crate::bench::CORE_WORKLOADS, 2),
            "publish" => crate::bench_js::run(&["publish".into(), "sequential".into()]),
            "latency" => crate::bench_latency::run(&[]),
            "consume" => crate::bench_consume::run(&[]),
            _ => crate::bench_many::run(&[]),
        };
        eprintln!(
            "xtask: suite {suite} took {:.0} s",
            suite_started.elapsed().as_secs_f64()
        );
        if let Err(e) = result {
            eprintln!("xtask: suite {suite} failed: {e:#}");
            failures.push(json!({ "suite": suite, "error": format!("{e:#}") }));
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let figures = figures();
    print_summary(&figures, elapsed);

    let report = json!({
        "started_unix": started_unix,
        "duration_s": elapsed,
        "commit": git(&["rev-parse", "HEAD"]),
        "dirty": git(&["status", "--porcelain"]).is_some_and(|s| !s.is_empty()),
        "machine": {
            "hostname": read_trimmed("/proc/sys/kernel/hostname"),
            "kernel": read_trimmed("/proc/sys/kernel/osrelease"),
            "cpu": cpu_model(),
            "cores": std::thread::available_parallelism().map_or(0, std::num::NonZero::get),
            "memory_kib": mem_total_kib(),
            "load_average_before": load_before,
            "load_average_after": load_average(),
        },
        "versions": {
            "infinistream": output(Command::new(infinistream_bin()).arg("--version")),
            "nats_server": output(Command::new(nats_server_bin()).arg("--version")),
            "rustc": output(Command::new("rustc").arg("--version")),
            "client": "async-nats 0.51",
        },
        "failed_suites": failures,
        "figures": figures.iter().map(|f| json!({
            "suite": f.suite,
            "metric": f.metric,
            "unit": f.unit,
            "nats_server": f.nats,
            "infinistream": f.infinistream,
            "higher_is_better": f.higher_is_better,
            "infinistream_advantage": advantage(f),
        })).collect::<Vec<_>>(),
    });
    let path = match json_path {
        Some(p) => p,
        None => workspace_root()
            .join("target/bench")
            .join(format!("bench-{started_unix}.json")),
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    std::fs::write(&path, serde_json::to_string_pretty(&report)?)
        .with_context(|| format!("cannot write {}", path.display()))?;
    println!("\nReport: {}", path.display());
    if !failures.is_empty() {
        bail!("{} suite(s) failed (see above)", failures.len());
    }
    Ok(())
}

/// How many times better InfiniStream did (above 1: better, whichever way is better).
fn advantage(f: &Figure) -> Option<f64> {
    let (a, b) = (f.nats?, f.infinistream?);
    if a <= 0.0 || b <= 0.0 {
        return None;
    }
    Some(if f.higher_is_better { b / a } else { a / b })
}

fn print_summary(figures: &[Figure], elapsed: f64) {
    println!("\n## Summary ({elapsed:.0} s)\n");
    println!(
        "| suite | figure | unit | nats-server | InfiniStream | InfiniStream advantage (> 1: better) |"
    );
    println!("|---|---|---|---:|---:|---:|");
    let cell = |v: Option<f64>| v.map_or("–".to_string(), |v| format!("{v:.2}"));
    for f in figures {
        println!(
            "| {} | {} | {} | {} | {} | {} |",
            f.suite,
            f.metric,
            f.unit,
            cell(f.nats),
            cell(f.infinistream),
            advantage(f).map_or(String::new(), |a| format!("{a:.2}×"))
        );
    }
}

fn git(args: &[&str]) -> Option<String> {
    output(Command::new("git").current_dir(workspace_root()).args(args))
}

/// A command's trimmed stdout, `None` if it could not run or failed.
fn output(cmd: &mut Command) -> Option<String> {
    let out = cmd.output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn read_trimmed(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_owned())
}

fn load_average() -> Option<String> {
    read_trimmed("/proc/loadavg")
}

fn cpu_model() -> Option<String> {
    std::fs::read_to_string("/proc/cpuinfo").ok().and_then(|s| {
        s.lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_owned())
    })
}

fn mem_total_kib() -> Option<u64> {
    std::fs::read_to_string("/proc/meminfo").ok().and_then(|s| {
        s.lines()
            .find(|l| l.starts_with("MemTotal:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
    })
}
