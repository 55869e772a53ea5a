//! The nats.py client scripts of `tests/clients/py`, run against a server. Included
//! with `#[path = "support/py_client.rs"] mod py_client;`.

use std::time::Duration;

/// Runs `tests/clients/py/<script>` against `url` with the tools venv's Python and
/// asserts it printed `OK` and exited cleanly.
pub async fn assert_script_ok(script: &str, url: &str) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/clients/py")
        .join(script);
    let python = infinistream_testkit::tools::venv_bin("python");
    let output = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new(&python)
            .arg(&path)
            .arg(url)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("nats.py finishes")
    .expect("python runs");
    assert!(
        output.status.success() && String::from_utf8_lossy(&output.stdout).trim() == "OK",
        "nats.py {script} against {url}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
