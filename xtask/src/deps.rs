//! Keeps the crate layers pointing one way (docs/architecture.md, "Crate map").
//!
//! Each internal crate has a layer; a normal dependency must point to a strictly lower
//! layer, except the dev-only test tooling (test kit, chaos suite), which only
//! dev-dependencies may use, and the same-layer pairs in [`SAME_LAYER`]. Nothing may
//! depend on the simulation crate (`crates/sim`), which drives production crates from
//! outside. The role
//! crates share one layer, so none can depend on another.
//!
//! The agent-side crates reach the control plane through `cp-client` only (its typed
//! calls: only the control plane's tests may enable its `raw-stubs` feature), and link
//! neither the server's storage (redb, etcd-client) nor an HTTP server (axum: the agent
//! serves monitoring and runs the peer port's gRPC server, the roles only provide
//! services and data): checked on `cargo tree -e normal` of each crate, which resolves
//! its dependencies and features as a build of that crate alone would.

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
    ("infinistream-cp-client", 1),
    ("infinistream-metastore", 1),
    ("infinistream-jetstream", 2),
    ("infinistream-peer", 2),
    // The roles: one layer, so none depends on another.
    ("infinistream-control-plane", 3),
    ("infinistream-gateway", 3),
    ("infinistream-fetcher", 3),
    ("infinistream-jobs", 3),
    ("infinistream", 4),
];

/// Test tooling at the top of the graph: only dev-dependencies may use it, so nothing in
/// production links it (the chaos suite may use the test kit).
const TEST_TOOLING: &[&str] = &["infinistream-testkit", "infinistream-chaos"];

/// Crates of the agent side, which talk to the control plane through `cp-client`: the
/// roles and the layer-1 crates they build on.
const AGENT_SIDE: &[&str] = &[
    "infinistream-cp-client",
    "infinistream-broker",
    "infinistream-jetstream",
    "infinistream-peer",
    "infinistream-gateway",
    "infinistream-fetcher",
    "infinistream-jobs",
];

/// What no agent-side crate links: the control-plane server's metadata stores and the
/// HTTP server framework (tonic's `router` feature brings it too; only through
/// [`PEER_PORT`]).
const FORBIDDEN: &[&str] = &["redb", "etcd-client", "axum"];

/// Layer-0 dependencies allowed inside the layer: proto's checked domain types use the
/// subject rules and error table of protocol, their one home.
const SAME_LAYER: &[(&str, &str)] = &[("infinistream-proto", "infinistream-protocol")];

pub fn check() -> anyhow::Result<()> {
    let mut problems = layering()?;
    problems.extend(agent_side_links()?);
    if problems.is_empty() {
        eprintln!(
            "xtask: crate layers point one way; agent-side crates link no redb, etcd-client or axum"
        );
        Ok(())
    } else {
        bail!("dependency violations:\n  {}", problems.join("\n  "))
    }
}

fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(crate::workspace_root());
    cmd
}

fn run(mut cmd: Command, what: &str) -> anyhow::Result<Vec<u8>> {
    let output = cmd.output().with_context(|| format!("cannot run {what}"))?;
    if !output.status.success() {
        bail!("{what} failed: {}", String::from_utf8_lossy(&output.stderr));
    }
    Ok(output.stdout)
}

fn layering() -> anyhow::Result<Vec<String>> {
    let mut cmd = cargo();
    cmd.args(["metadata", "--format-version", "1", "--no-deps"]);
    let meta: serde_json::Value = serde_json::from_slice(&run(cmd, "cargo metadata")?)?;
    let layers: HashMap<&str, u8> = LAYERS.iter().copied().collect();
    let mut problems = Vec::new();
    for package in meta["packages"].as_array().into_iter().flatten() {
        let name = package["name"].as_str().unwrap_or_default();
        problems.extend(raw_stubs(name, package));
        let Some(&layer) = layers.get(name) else {
            continue;
        };
        for dep in package["dependencies"].as_array().into_iter().flatten() {
            let dep_name = dep["name"].as_str().unwrap_or_default();
            let is_dev = dep["kind"].as_str() == Some("dev");
            if TEST_TOOLING.contains(&dep_name) && !is_dev {
                problems.push(format!(
                    "{name} depends on the test tooling {dep_name} outside dev-dependencies"
                ));
            }
            if dep_name == "infinistream-sim" {
                problems.push(format!(
                    "{name} depends on the simulation crate, which nothing may depend on"
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
    Ok(problems)
}

/// Who may enable cp-client's `raw-stubs` feature (its tonic stubs, beside the typed
/// calls): the control plane's own tests, through a dev-dependency. Everyone else
/// calls the control plane through the typed client.
const RAW_STUBS: (&str, &str) = ("infinistream-control-plane", "raw-stubs");

fn raw_stubs(name: &str, package: &serde_json::Value) -> Vec<String> {
    let mut problems = Vec::new();
    for dep in package["dependencies"].as_array().into_iter().flatten() {
        let enables = dep["name"].as_str() == Some("infinistream-cp-client")
            && dep["features"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|f| f.as_str() == Some(RAW_STUBS.1));
        let is_dev = dep["kind"].as_str() == Some("dev");
        if enables && !(name == RAW_STUBS.0 && is_dev) {
            problems.push(format!(
                "{name} enables infinistream-cp-client's `{}` feature: call the control plane through the typed client (only {}'s tests may use the raw stubs)",
                RAW_STUBS.1, RAW_STUBS.0
            ));
        }
    }
    problems
}

/// The one agent-side crate that may link `axum`: it owns the peer port's gRPC server
/// (tonic's `router` feature), which the route mesh and the zone cache register with.
const PEER_PORT: &str = "infinistream-peer";

/// The packages `package` links in a build of it alone (normal dependencies, features
/// resolved for it), not counting what it links only through `prune`.
fn linked(package: &str, prune: Option<&str>) -> anyhow::Result<Vec<String>> {
    let mut cmd = cargo();
    if let Some(prune) = prune {
        cmd.args(["tree", "--prune", prune]);
    } else {
        cmd.arg("tree");
    }
    cmd.args([
        "--package",
        package,
        "--edges",
        "normal",
        "--prefix",
        "none",
        "--format",
        "{p}",
    ]);
    let out = run(cmd, &format!("cargo tree -p {package}"))?;
    let mut names: Vec<String> = String::from_utf8_lossy(&out)
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_owned)
        .collect();
    names.sort();
    names.dedup();
    Ok(names)
}

fn agent_side_links() -> anyhow::Result<Vec<String>> {
    let mut problems = Vec::new();
    for &package in AGENT_SIDE {
        let all = linked(package, None)?;
        // axum may come only through the peer port's crate.
        let without_peer_port = if package == PEER_PORT {
            Vec::new()
        } else if all.iter().any(|n| n == PEER_PORT) {
            linked(package, Some(PEER_PORT))?
        } else {
            all.clone()
        };
        for &forbidden in FORBIDDEN {
            let links = if forbidden == "axum" {
                &without_peer_port
            } else {
                &all
            };
            if links.iter().any(|n| n == forbidden) {
                problems.push(format!(
                    "{package} links {forbidden}, which only the agent and the control-plane server may (see `cargo tree -p {package} -e normal -i {forbidden}`)"
                ));
            }
        }
    }
    Ok(problems)
}
