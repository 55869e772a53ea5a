//! Runs nats.py client scripts against a server: the files of `tests/clients/py`
//! ([`assert_script_ok`]) or scripts a test writes ([`run`]). Included with
//! `#[path = "support/py_client.rs"] mod py_client;`.

// Each test binary uses its own subset.
#![allow(dead_code)]

use std::path::Path;
use std::time::Duration;

/// Runs the nats.py script at `path` with `url` as its argument, with the tools venv's
/// Python, within 60 s.
pub async fn run(path: &Path, url: &str) -> std::process::Output {
    let python = infinistream_testkit::tools::venv_bin("python");
    assert!(
        python.exists(),
        "nats.py venv missing at {}: run the README's tool setup",
        python.display()
    );
    tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new(&python)
            .arg(path)
            .arg(url)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("nats.py finishes")
    .expect("python runs")
}

/// Runs `tests/clients/py/<script>` against `url` and asserts it printed `OK` and
/// exited cleanly.
pub async fn assert_script_ok(script: &str, url: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/clients/py")
        .join(script);
    let output = run(&path, url).await;
    assert!(
        output.status.success() && String::from_utf8_lossy(&output.stdout).trim() == "OK",
        "nats.py {script} against {url}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
