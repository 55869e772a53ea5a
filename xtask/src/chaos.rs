//! `cargo xtask chaos [--duration D] [--seed S] [--report PATH]`: the long form of the
//! chaos suite (docs/reliability.md). Builds the release binary, runs the group under
//! the nemesis for `D` (`90s`, `30m`, `2h`; default 10m) with seed `S` (default: the
//! clock), prints the summary and writes the JSON report (default
//! `target/chaos-report-<seed>.json`). Fails when a checker found a problem.
//! `--reference` runs the same stream workload against a 3-node nats-server 2.15.1
//! cluster with an R3 stream under node kills instead, for the side-by-side table.

use std::time::Duration;

use anyhow::{Context, bail};
use infinistream_chaos::run::{Config, run};

pub fn chaos(args: &[String]) -> anyhow::Result<()> {
    let mut duration = Duration::from_secs(600);
    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(16);
    let mut report_path = None;
    let mut reference = false;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = || it.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--duration" => duration = parse_duration(value()?)?,
            "--seed" => seed = value()?.parse().context("--seed must be a number")?,
            "--report" => report_path = Some(std::path::PathBuf::from(value()?)),
            "--reference" => reference = true,
            other => bail!(
                "unknown argument `{other}` (usage: cargo xtask chaos [--duration D] [--seed S] [--report PATH] [--reference])"
            ),
        }
    }
    if reference {
        return run_reference(duration, seed, report_path);
    }
    crate::bench::build_release()?;
    let binary = crate::bench::infinistream_bin();
    let report_path = report_path.unwrap_or_else(|| {
        crate::workspace_root().join(format!("target/chaos-report-{seed}.json"))
    });
    eprintln!(
        "xtask: chaos run for {duration:?} with seed {seed} ({})",
        binary.display()
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()?;
    let report = runtime.block_on(run(Config::new(binary, duration, seed)))?;
    println!("{}", report.summary());
    std::fs::write(&report_path, serde_json::to_vec_pretty(&report)?)
        .with_context(|| format!("cannot write {}", report_path.display()))?;
    eprintln!("xtask: report written to {}", report_path.display());
    if !report.failures.is_empty() {
        bail!("the chaos run found {} problem(s)", report.failures.len());
    }
    Ok(())
}

/// `--reference`: the stream workload against a 3-node nats-server R3 cluster under
/// node kills.
fn run_reference(
    duration: Duration,
    seed: u64,
    report_path: Option<std::path::PathBuf>,
) -> anyhow::Result<()> {
    let report_path = report_path.unwrap_or_else(|| {
        crate::workspace_root().join(format!("target/chaos-reference-{seed}.json"))
    });
    eprintln!("xtask: nats-server R3 reference run for {duration:?} with seed {seed}");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()?;
    let report = runtime.block_on(infinistream_chaos::reference::run(duration, seed, 3))?;
    println!("{}", report.summary());
    std::fs::write(&report_path, serde_json::to_vec_pretty(&report)?)
        .with_context(|| format!("cannot write {}", report_path.display()))?;
    eprintln!("xtask: report written to {}", report_path.display());
    Ok(())
}

/// `90`, `90s`, `30m`, `2h`.
fn parse_duration(s: &str) -> anyhow::Result<Duration> {
    let (number, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = number
        .parse()
        .with_context(|| format!("bad duration `{s}` (e.g. 90s, 30m, 2h)"))?;
    Ok(Duration::from_secs(match unit {
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => bail!("bad duration unit in `{s}` (s, m or h)"),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("90").ok(), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("30m").ok(), Some(Duration::from_secs(1800)));
        assert_eq!(parse_duration("2h").ok(), Some(Duration::from_secs(7200)));
        assert!(parse_duration("2d").is_err());
        assert!(parse_duration("m").is_err());
    }
}
