//! The control plane inside the agent process (no `INFINISTREAM_CONTROL_PLANE`).
//!
//! The store is redb under `<data_dir>/control-plane`; the agent calls the control
//! plane through the same gRPC services and authentication a remote deployment uses,
//! without a socket. Without `INFINISTREAM_GROUP_ID` the group is `local`, and without
//! `INFINISTREAM_GROUP_KEY` a key is generated per start: only this process holds it.

use std::sync::Arc;

use anyhow::Context;
use infinistream_config::AgentConfig;
use infinistream_control_plane::store::embedded::EmbeddedStore;
use infinistream_control_plane::{ControlPlane, ControlPlaneClient, GroupKeys};
use infinistream_types::SharedClock;

/// A control plane owned by this agent.
#[derive(Debug)]
pub(crate) struct Embedded {
    control_plane: ControlPlane,
    group: String,
    key: String,
}

impl Embedded {
    pub(crate) async fn open(config: &AgentConfig, clock: SharedClock) -> anyhow::Result<Self> {
        let dir = config.data_dir.join("control-plane");
        std::fs::create_dir_all(&dir).with_context(|| {
            format!(
                "cannot create the control-plane directory {}",
                dir.display()
            )
        })?;
        let store = EmbeddedStore::open(&dir).await.with_context(|| {
            format!(
                "cannot open the embedded control-plane store in {}",
                dir.display()
            )
        })?;
        let group = config
            .group_id
            .clone()
            .unwrap_or_else(|| "local".to_owned());
        let key = match &config.group_key {
            Some(key) if !key.is_empty() => key.clone(),
            _ => ulid::Ulid::generate().to_string(),
        };
        let groups =
            GroupKeys::new([(group.clone(), key.clone())]).context("invalid group id or key")?;
        let control_plane = ControlPlane::open(Arc::new(store), groups, clock)
            .await
            .context("cannot start the embedded control plane")?;
        tracing::info!(dir = %dir.display(), group = %group, "embedded control plane started");
        Ok(Embedded {
            control_plane,
            group,
            key,
        })
    }

    /// The embedded control plane's metrics (request counters, schedule backlog).
    pub(crate) fn metrics(&self) -> &infinistream_control_plane::RequestMetrics {
        self.control_plane.request_metrics()
    }

    pub(crate) fn group(&self) -> &str {
        &self.group
    }

    pub(crate) fn client(&self) -> anyhow::Result<ControlPlaneClient> {
        self.control_plane
            .client(&self.group, &self.key)
            .context("cannot create the in-process control-plane client")
    }
}
