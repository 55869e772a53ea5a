//! Configuration for every InfiniStream process.
//!
//! Sources merge in one order everywhere: built-in defaults < a TOML file
//! (`--config`) < `INFINISTREAM_*` environment variables < command-line flags. Figment
//! does the merging into a "raw" struct whose fields are all optional; [`RawAgentConfig::validate`]
//! then applies defaults and checks every rule, so an error always names the setting
//! the operator typed (`INFINISTREAM_BATCH_WRITE must be between 50 and 500 ms, got 20`).
//!
//! Environment names are mapped explicitly (figment would otherwise split
//! `INFINISTREAM_BATCH_WRITE` on `_`). Unknown keys in the file or environment are
//! ignored rather than fatal, so a config written for a newer version still starts an
//! older agent during a rollback.

pub mod accounts;
mod advertise;
mod agent;
mod control_plane;
mod error;
mod link_tls;
mod sources;
pub mod users;
mod values;

pub use accounts::{GLOBAL_ACCOUNT, JetStreamLimits, RawAccount};
pub use advertise::Advertise;
pub use agent::{
    AgentConfig, CACHE_DISK_MIN, CACHE_MEMORY_DEFAULT, CalloutSpec, ClientAuth, FLUSH_DEADLINE,
    JobsSettings, METADATA_URL_DEFAULT, MIN_ORPHAN_GRACE, MetadataUrls, OperatorSpec,
    RawAgentConfig, RawAuthCallout, RawJwtSetting, TlsFiles, ZoneSource, agent_figment, load_agent,
};
pub use control_plane::{ControlPlaneConfig, RawControlPlaneConfig, StoreUrl, load_control_plane};
pub use error::ConfigError;
pub use link_tls::LinkTls;
pub use users::{PermissionsSpec, RawUser, UserSpec};
pub use values::{LogFormat, NumberOrString, RolesValue, parse_roles};

#[cfg(test)]
mod tests;
