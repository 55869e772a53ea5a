//! The sources every process merges, in one order: built-in defaults < a TOML file
//! (`--config`) < `INFINISTREAM_*` environment variables < command-line flags.

use std::path::Path;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::Serialize;

/// Maps an `INFINISTREAM_*` variable (prefix stripped) to its config key.
fn env_key(name: &str) -> String {
    match name.to_ascii_uppercase().as_str() {
        "BUCKET_NAME" => "bucket".into(),
        "BATCH_WRITE" => "batch_write".into(),
        "AGENT_ROLES" => "roles".into(),
        other => other.to_ascii_lowercase(),
    }
}

/// The environment provider shared by every process.
pub(crate) fn env_provider() -> Env {
    Env::prefixed("INFINISTREAM_").map(|key| env_key(key.as_str()).into())
}

/// `file` (if any) < the environment < `flags`, merged; the defaults are applied by the
/// `validate` of the raw struct extracted from it.
pub(crate) fn merged(file: Option<&Path>, flags: &impl Serialize) -> Figment {
    let mut figment = Figment::new();
    if let Some(file) = file {
        figment = figment.merge(Toml::file_exact(file));
    }
    figment
        .merge(env_provider())
        .merge(Serialized::globals(flags))
}
