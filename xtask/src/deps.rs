//! Keeps the crate layers pointing one way (docs/architecture.md, "Crate map").
//!
//! Each internal crate has a layer; a normal dependency must point to a strictly lower
//! layer, except the dev-only test kit, which only dev-dependencies may use, and the
//! same-layer pairs in [`SAME_LAYER`].

use std::collections::HashMap;
use std::process::Command;

use anyhow::{Context, bail};

const LAYERS: &[(&str, u8)] = &[
    ("infinistream-types", 0),
    ("infinistream-protocol", 0),
    ("infinistream-segment", 0),
    ("infinistream-proto", 0),
    ("infinistream-objstore", 1),
    ("infinistream-config", 1),
    ("infinistream-runtime", 1),
    ("infinistream-broker", 1),
    ("infinistream-control-plane", 2),
    ("infinistream-jetstream", 3),
    ("infinistream-gateway", 4),
    ("infinistream-fetcher", 4),
    ("infinistream-jobs", 4),
    ("infinistream", 5),
];

/// Layer-0 dependencies allowed inside the layer: proto's checked domain types use the
/// subject rules and error table of protocol, their one home.
const SAME_LAYER: &[(&str, &str)] = &[("infinistream-proto", "infinistream-protocol")];

pub fn check() -> anyhow::Result<()> {
    let output = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(crate::workspace_root())
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .output()
        .context("cannot run cargo metadata")?;
    if !output.status.success() {
        bail!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let meta: serde_json::Value = serde_json::from_slice(&output.stdout)?;
    let layers: HashMap<&str, u8> = LAYERS.iter().copied().collect();
    let mut problems = Vec::new();
    for package in meta["packages"].as_array().into_iter().flatten() {
        let name = package["name"].as_str().unwrap_or_default();
        let Some(&layer) = layers.get(name) else {
            continue;
        };
        for dep in package["dependencies"].as_array().into_iter().flatten() {
            let dep_name = dep["name"].as_str().unwrap_or_default();
            let is_dev = dep["kind"].as_str() == Some("dev");
            if dep_name == "infinistream-testkit" && !is_dev {
                problems.push(format!(
                    "{name} depends on the test kit outside dev-dependencies"
                ));
            }
            if is_dev {
                continue;
            }
            if let Some(&dep_layer) = layers.get(dep_name)
                && dep_layer >= layer
                && !SAME_LAYER.contains(&(name, dep_name))
            {
                problems.push(format!(
                    "{name} (layer {layer}) depends on {dep_name} (layer {dep_layer}): dependencies must point to a lower layer"
                ));
            }
        }
    }
    if problems.is_empty() {
        eprintln!("xtask: crate layers point one way");
        Ok(())
    } else {
        bail!("layering violations:\n  {}", problems.join("\n  "))
    }
}
