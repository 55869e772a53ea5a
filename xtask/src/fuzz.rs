//! `cargo xtask fuzz [SECONDS] [TARGET…]`: every cargo-fuzz target under libFuzzer for a
//! stated time.
//!
//! The targets are thin wrappers around harnesses in `crates/*/fuzz/harness/`, which the
//! stable suite also runs on random inputs. Inputs in `crates/*/fuzz/seeds/<target>/`
//! (committed) start the search alongside the working corpus `corpus/<target>/` (not
//! committed). A crash leaves its input in
//! `crates/*/fuzz/artifacts/<target>/`; turn it into a case of that crate's
//! `tests/fuzz_harness.rs` `regressions` test before fixing it.

use std::process::Command;
use std::time::Instant;

use anyhow::{Context, bail};

/// (fuzz dir, target) pairs.
const TARGETS: &[(&str, &str)] = &[
    ("crates/protocol/fuzz", "parse_client"),
    ("crates/protocol/fuzz", "jsapi_json"),
    ("crates/segment/fuzz", "batch_object"),
    ("crates/segment/fuzz", "batch_chunk"),
    ("crates/segment/fuzz", "segment_object"),
    ("crates/segment/fuzz", "segment_block"),
];

pub fn run(args: &[String]) -> anyhow::Result<()> {
    let (seconds, names) = match args.first().map(|a| a.parse::<u64>()) {
        Some(Ok(s)) => (s, &args[1..]),
        _ => (60, args),
    };
    for name in names {
        if !TARGETS.iter().any(|(_, t)| t == name) {
            let known: Vec<&str> = TARGETS.iter().map(|(_, t)| *t).collect();
            bail!("unknown fuzz target `{name}` (known: {})", known.join(", "));
        }
    }
    ensure_cargo_fuzz()?;
    let mut summary = Vec::new();
    for (dir, target) in TARGETS {
        if !names.is_empty() && !names.iter().any(|n| n == target) {
            continue;
        }
        eprintln!("xtask: fuzzing {target} for {seconds} s");
        let started = Instant::now();
        // The working corpus (ignored by git) first, then the committed seeds, if any.
        let fuzz_dir = crate::workspace_root().join(dir);
        let corpus = fuzz_dir.join("corpus").join(target);
        std::fs::create_dir_all(&corpus)
            .with_context(|| format!("cannot create {}", corpus.display()))?;
        let seeds = fuzz_dir.join("seeds").join(target);
        let mut cmd = Command::new("cargo");
        cmd.current_dir(&fuzz_dir)
            .args(["+nightly", "fuzz", "run", target])
            .arg(&corpus)
            .args(seeds.is_dir().then_some(&seeds))
            .arg("--")
            .arg(format!("-max_total_time={seconds}"))
            .arg("-rss_limit_mb=2048");
        let result = crate::status(&mut cmd);
        summary.push(format!(
            "{target}: {} in {:.0?}",
            if result.is_ok() {
                "no crash"
            } else {
                "CRASHED"
            },
            started.elapsed()
        ));
        if let Err(e) = result {
            eprintln!("xtask: {}", summary.join("\n  "));
            return Err(e).with_context(|| {
                format!("{target} crashed: its input is under {dir}/artifacts/{target}/")
            });
        }
    }
    eprintln!("xtask: fuzzing done:\n  {}", summary.join("\n  "));
    Ok(())
}

fn ensure_cargo_fuzz() -> anyhow::Result<()> {
    let found = Command::new("cargo")
        .args(["+nightly", "fuzz", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if found {
        return Ok(());
    }
    eprintln!("xtask: installing cargo-fuzz (cargo install cargo-fuzz)");
    crate::status(Command::new("cargo").args(["install", "--locked", "cargo-fuzz"]))
        .context("cargo xtask fuzz needs cargo-fuzz and a nightly toolchain (rustup toolchain install nightly)")
}
