//! Where the agent's availability zone comes from, and the metadata services asked
//! when it is not configured.

use crate::error::{ConfigError, invalid};

/// Where the clouds' instance metadata services answer (all three share this link-local
/// address).
pub const METADATA_URL_DEFAULT: &str = "http://169.254.169.254";

/// Where the agent's zone setting came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ZoneSource {
    /// `--zone` (or a zone set by the program that built the configuration).
    Flag,
    /// `INFINISTREAM_ZONE`.
    Env,
    /// The `--config` file.
    File,
    /// Not set: the agent detects it (see [`AgentConfig::metadata`]) or uses `default`.
    Unset,
}

impl ZoneSource {
    /// `flag`, `env`, `file` or `unset`, as logs name it.
    pub fn as_str(self) -> &'static str {
        match self {
            ZoneSource::Flag => "flag",
            ZoneSource::Env => "env",
            ZoneSource::File => "file",
            ZoneSource::Unset => "unset",
        }
    }
}

/// Base URLs of the instance metadata services asked for the zone; `None` = not asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetadataUrls {
    pub aws: Option<String>,
    pub gcp: Option<String>,
    pub azure: Option<String>,
}

/// A metadata service base URL: `off` = not asked, unset = [`METADATA_URL_DEFAULT`].
pub(super) fn metadata_url(
    setting: &'static str,
    value: &Option<String>,
) -> Result<Option<String>, ConfigError> {
    let url = match value.as_deref().map(str::trim) {
        None => return Ok(Some(METADATA_URL_DEFAULT.to_owned())),
        Some("off") => return Ok(None),
        Some(url) => url,
    };
    let Some(rest) = url.strip_prefix("http://") else {
        return Err(invalid(
            setting,
            format!("must be an http:// URL or `off`, got `{url}`"),
        ));
    };
    if rest.is_empty() || rest.contains(['?', '#', ' ']) {
        return Err(invalid(
            setting,
            format!("must be a base URL such as {METADATA_URL_DEFAULT}, got `{url}`"),
        ));
    }
    Ok(Some(url.trim_end_matches('/').to_owned()))
}
