//! `infinistream control-plane`: the metadata service as its own process.

use anyhow::Context;
use infinistream_config::{ControlPlaneConfig, StoreUrl};
use infinistream_control_plane::server::{ServeOptions, StoreSpec, run_control_plane};
use infinistream_control_plane::{GroupKeys, Options};
use infinistream_runtime::CancellationToken;

/// Runs the control-plane service until shutdown.
pub async fn run(config: ControlPlaneConfig, shutdown: CancellationToken) -> anyhow::Result<()> {
    let mut pairs = Vec::new();
    if let Some((id, key)) = &config.group {
        pairs.push((id.clone(), key.clone()));
    }
    let groups = match &config.groups_file {
        Some(path) => {
            let from_file = GroupKeys::from_toml_file(path)
                .with_context(|| format!("cannot read the groups file {}", path.display()))?;
            if pairs.is_empty() {
                from_file
            } else {
                anyhow::bail!(
                    "set either INFINISTREAM_GROUP_ID/INFINISTREAM_GROUP_KEY or --groups, not both"
                );
            }
        }
        None => GroupKeys::new(pairs).context("invalid group id or key")?,
    };
    let store = match &config.store {
        StoreUrl::Embedded(dir) => StoreSpec::Embedded(dir.clone()),
        StoreUrl::Etcd(endpoints) => StoreSpec::Etcd(
            endpoints
                .iter()
                .map(|e| {
                    if e.starts_with("http://") || e.starts_with("https://") {
                        e.clone()
                    } else {
                        format!("http://{e}")
                    }
                })
                .collect(),
        ),
    };
    tracing::info!(version = crate::version(), store = ?config.store, listen = %config.listen, "starting infinistream control plane");
    run_control_plane(
        ServeOptions {
            store,
            listen: config.listen,
            groups,
            options: Options::default(),
        },
        shutdown.cancelled_owned(),
    )
    .await
    .context("control plane failed")?;
    tracing::info!("control plane stopped");
    Ok(())
}
