//! The short seeded chaos run (docs/reliability.md): the whole group as processes on
//! loopback — etcd ×3, SeaweedFS behind a fault-injecting proxy, three control planes,
//! agents per role in two zones — under every nemesis, with the stream, KV
//! (linearizability) and work-queue workloads and every checker. `cargo xtask chaos`
//! runs the same code for longer. `CHAOS_SEED` and `CHAOS_DURATION` (seconds) replay
//! or lengthen it; the report is written to `target/chaos-report.json`.

use std::time::Duration;

use infinistream_chaos::run::{Config, run};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn short_seeded_chaos_run_loses_nothing() {
    let seed = std::env::var("CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(16);
    let secs = std::env::var("CHAOS_DURATION")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(125);
    let config = Config::new(
        env!("CARGO_BIN_EXE_infinistream").into(),
        Duration::from_secs(secs),
        seed,
    );
    let report = run(config).await.expect("chaos run");
    let summary = report.summary();
    eprintln!("{summary}");
    let path = infinistream_testkit::tools::workspace_root().join("target/chaos-report.json");
    if let Ok(json) = serde_json::to_vec_pretty(&report) {
        let _ = std::fs::write(&path, json);
    }
    assert!(
        report.failures.is_empty(),
        "chaos run (seed {seed}) found problems; report in {}:\n{summary}",
        path.display()
    );
}
