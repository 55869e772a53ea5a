//! The deployment files that ship the agent: the Helm chart and the deploy/ scripts.
//!
//! The chart suite (`helm/tests/test_chart.py`) runs Helm's own engine (the pinned
//! `helm-python-sdk`, Helm's Go SDK) for `lint` and `template` of the default values, each
//! per-role values file and the zone layouts, validates every rendered resource strictly
//! against Kubernetes' schemas (the pinned `kubernetes-validate`, offline), asserts the
//! structure (kinds, ports, probes, env, PDBs, topology spread, zones, securityContext,
//! ServiceMonitor, NOTES.txt), and checks that the values schema refuses what the agent
//! would refuse. The deploy suite (`deploy/tests/test_deploy.py`) checks the image's
//! HEALTHCHECK script and `deploy/local/down.sh`. Both run with the tools venv's Python
//! (`cargo xtask install-tools`); the HEALTHCHECK also runs here against a real agent.

use std::process::Command;

use infinistream_config::RawAgentConfig;
use infinistream_testkit::tools::{venv_bin, workspace_root};

#[path = "support/in_process.rs"]
mod in_process;

/// Runs one of the Python unittest suites and fails with its output if it fails.
fn run_python_suite(script: &str) {
    let python = venv_bin("python");
    assert!(
        python.is_file(),
        "tools venv missing at {}: run `cargo xtask install-tools`",
        python.display()
    );
    let output = Command::new(&python)
        .arg(workspace_root().join(script))
        .current_dir(workspace_root())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.display()));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{script} failed ({})\nstdout:\n{stdout}\nstderr:\n{stderr}",
        output.status
    );
    // unittest reports on stderr; a suite that ran nothing would say "Ran 0 tests".
    assert!(
        stderr.contains("\nOK") && !stderr.contains("Ran 0 tests"),
        "{script} ran no test:\n{stderr}"
    );
}

#[test]
fn helm_chart_lints_renders_and_validates() {
    run_python_suite("helm/tests/test_chart.py");
}

#[test]
fn deploy_healthcheck_and_down_scripts() {
    run_python_suite("deploy/tests/test_deploy.py");
}

/// The image's HEALTHCHECK speaks to the agent's real monitoring port.
#[tokio::test]
async fn healthcheck_script_passes_against_a_running_agent() {
    let dir = tempfile::tempdir().expect("tempdir");
    // The defaults an operator gets: roles and batch window unset.
    let agent = in_process::start(RawAgentConfig {
        peer_port: Some(0),
        roles: None,
        batch_write: None,
        ..in_process::local(dir.path())
    })
    .await;
    let output = tokio::process::Command::new("bash")
        .arg(workspace_root().join("deploy/healthcheck.sh"))
        .env(
            "INFINISTREAM_HTTP_PORT",
            agent.http_addr().port().to_string(),
        )
        .env("INFINISTREAM_HOST", "127.0.0.1")
        .kill_on_drop(true)
        .output()
        .await
        .expect("bash runs");
    assert!(
        output.status.success(),
        "healthcheck failed against {}: {}",
        agent.http_addr(),
        String::from_utf8_lossy(&output.stderr)
    );
}
