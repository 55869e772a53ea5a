//! Agents started in-process, the one way every agent test starts one. Included with
//! `#[path = "support/in_process.rs"] mod in_process;`.
//!
//! [`local`] is the usual single-agent setting (loopback, OS-picked ports, state in a
//! temporary directory, `proxy,jobs`, a 50 ms batch window); a test that needs more
//! overrides fields with `RawAgentConfig { …, ..local(dir) }` and starts it with
//! [`start`], or adjusts the validated config and uses [`start_config`].

// Each test binary uses its own subset.
#![allow(dead_code)]

use std::path::Path;

use infinistream_agent::AgentHandle;
use infinistream_config::{AgentConfig, NumberOrString, RawAgentConfig, RolesValue};
use infinistream_runtime::CancellationToken;

/// One agent on 127.0.0.1 with OS-picked client, monitoring and peer ports, keeping
/// its state (embedded control plane, `file://` bucket) under `dir`, running
/// `proxy,jobs` with a 50 ms batch window.
pub fn local(dir: &Path) -> RawAgentConfig {
    RawAgentConfig {
        host: Some("127.0.0.1".into()),
        port: Some(0),
        http_port: Some(0),
        data_dir: Some(dir.to_path_buf()),
        roles: Some(RolesValue::List("proxy,jobs".into())),
        batch_write: Some(NumberOrString::Number(50)),
        ..Default::default()
    }
}

/// Validates `raw` and starts the agent.
pub async fn start(raw: RawAgentConfig) -> AgentHandle {
    start_config(raw.validate().expect("valid test config")).await
}

/// Starts an agent with `config`.
pub async fn start_config(config: AgentConfig) -> AgentHandle {
    AgentHandle::start(config, CancellationToken::new())
        .await
        .expect("agent starts")
}

/// The [`local`] agent under `dir`.
pub async fn start_agent(dir: &tempfile::TempDir) -> AgentHandle {
    start(local(dir.path())).await
}
