//! `cargo xtask <command>`: the project's automation, in Rust so it runs wherever cargo
//! does.
//!
//! - `test`: installs what the suite needs (see `tools`), then runs every test with
//!   cargo-nextest. This is the README's test command and `.ci/run`.
//! - `run [ARGS…]`: installs the build prerequisites, then runs `infinistream agent`
//!   (all roles, embedded control plane, local bucket dir).
//! - `install-tools`: only the installation step of `test`.
//! - `bench` (no suite): every suite below against both servers in one run, a ratio
//!   table and a JSON report (see `bench_all`).
//! - `bench core`: core NATS pub/sub, nats-server and InfiniStream side by side.
//!   `--cluster`: across two servers (nats-server cluster, two agents of one group),
//!   pub/sub throughput and request/reply latency.
//! - `bench js`: JetStream publish throughput, ack latency and objects/s, side by side.
//! - `bench consume`: JetStream pull-consume throughput, e2e latency and bucket reads.
//! - `bench latency`: publish → PubAck and → delivery to tailing pull and push consumers.
//! - `bench many-streams`: 10,000 streams × 10 messages: create, publish, read back.
//! - `chaos [--duration D] [--seed S] [--report PATH]`: the chaos suite's long form
//!   (docs/reliability.md): the group on loopback under every nemesis, with the
//!   workloads and checkers; prints a summary and writes a JSON report.
//! - `check-deps`: fails if a crate depends on a crate of its own or a higher layer, or
//!   an agent-side crate links redb, etcd-client or axum (see `deps`), or
//!   if non-test code spells a JetStream error code or `Nats-*` header name outside
//!   `crates/protocol` (see `rules`), or if modules inside a crate import each other in
//!   a circle (see `cycles`).
//! - `fuzz-check`: type-checks the cargo-fuzz targets with the nightly toolchain.
//! - `fuzz [SECONDS] [TARGET…]`: runs every cargo-fuzz target (or the named ones) for
//!   SECONDS each (default 60) under libFuzzer, with the nightly toolchain, installing
//!   cargo-fuzz first if it is missing. Not part of CI: the suite runs the same
//!   harnesses on random inputs (`tests/fuzz_harness.rs` of protocol and segment).

mod bench;
mod bench_all;
mod bench_batch;
mod bench_cluster;
mod bench_consume;
mod bench_js;
mod bench_latency;
mod bench_many;
mod chaos;
mod cycles;
mod deps;
mod fuzz;
mod rules;
mod tools;

use std::process::{Command, ExitCode};

use anyhow::{Context, bail};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &[String]) -> anyhow::Result<()> {
    let (cmd, rest) = args
        .split_first()
        .map(|(c, r)| (c.as_str(), r))
        .unwrap_or(("help", &[]));
    match cmd {
        "test" => test(rest),
        "run" => run_agent(rest),
        "install-tools" => tools::install_all(),
        "bench" => bench::run(rest),
        "chaos" => chaos::chaos(rest),
        "check-deps" => deps::check()
            .and_then(|()| rules::check())
            .and_then(|()| cycles::check()),
        "fuzz-check" => fuzz_check(),
        "fuzz" => fuzz::run(rest),
        "help" | "-h" | "--help" => {
            println!(
                "usage: cargo xtask <test [nextest args…] | run [agent args…] | install-tools | bench [core [--cluster] | js | latency | consume | many-streams] | chaos [--duration D] [--seed S] [--report PATH] | check-deps | fuzz-check | fuzz [seconds] [target…]>"
            );
            Ok(())
        }
        other => bail!("unknown command `{other}` (try `cargo xtask help`)"),
    }
}

/// Runs a command, inheriting stdio, failing with its status.
pub(crate) fn status(cmd: &mut Command) -> anyhow::Result<()> {
    let shown = format!("{cmd:?}");
    let status = cmd
        .status()
        .with_context(|| format!("cannot run {shown}"))?;
    if !status.success() {
        bail!("{shown} failed with {status}");
    }
    Ok(())
}

pub(crate) fn workspace_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(std::path::Path::to_path_buf)
        .unwrap_or_else(|| ".".into())
}

fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(workspace_root());
    cmd
}

fn test(extra: &[String]) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    tools::install_all()?;
    deps::check()?;
    rules::check()?;
    eprintln!("xtask: building and running the whole test suite with cargo-nextest");
    let mut cmd = cargo();
    // Benches and examples are programs, not tests: `cargo bench` and `cargo xtask
    // bench` run them.
    cmd.args([
        "nextest",
        "run",
        "--workspace",
        "--lib",
        "--bins",
        "--tests",
        "--profile",
        "ci",
    ])
    .env("INFINISTREAM_TOOLS_DIR", tools::tools_dir())
    .args(extra);
    // A CI run builds a clean clone once: incremental state would only take disk
    // (gigabytes for this workspace) and time. A developer's own setting wins.
    if std::env::var_os("CI").is_some() && std::env::var_os("CARGO_INCREMENTAL").is_none() {
        cmd.env("CARGO_INCREMENTAL", "0");
    }
    status(&mut cmd)?;
    eprintln!("xtask: test suite passed in {:.0?}", started.elapsed());
    Ok(())
}

fn run_agent(extra: &[String]) -> anyhow::Result<()> {
    tools::ensure_build_prerequisites()?;
    let mut cmd = cargo();
    cmd.args([
        "run",
        "--release",
        "--package",
        "infinistream",
        "--",
        "agent",
    ])
    .args(extra);
    status(&mut cmd)
}

fn fuzz_check() -> anyhow::Result<()> {
    for dir in ["crates/protocol/fuzz", "crates/segment/fuzz"] {
        let path = workspace_root().join(dir);
        if !path.exists() {
            continue;
        }
        eprintln!("xtask: checking fuzz targets in {dir}");
        let mut cmd = Command::new("cargo");
        cmd.current_dir(&path).args(["+nightly", "check", "--bins"]);
        status(&mut cmd)?;
    }
    Ok(())
}
