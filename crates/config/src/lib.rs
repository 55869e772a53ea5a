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

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use infinistream_types::{Role, limits};
use serde::{Deserialize, Serialize};

/// A configuration error. The message names the setting and the rule.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A value broke a rule.
    #[error("{setting} {rule}")]
    Invalid {
        /// The setting as the operator names it (env var, or flag when there is none).
        setting: &'static str,
        /// What is wrong, ending with the offending value.
        rule: String,
    },
    /// A source could not be read or a value had the wrong type.
    #[error("configuration error: {0}")]
    Source(Box<figment::Error>),
}

impl From<figment::Error> for ConfigError {
    fn from(err: figment::Error) -> Self {
        ConfigError::Source(Box::new(err))
    }
}

fn invalid(setting: &'static str, rule: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        setting,
        rule: rule.into(),
    }
}

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
fn env_provider() -> Env {
    Env::prefixed("INFINISTREAM_").map(|key| env_key(key.as_str()).into())
}

/// A value that may be written as a number or a string (`250` or `"250ms"`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum NumberOrString {
    Number(u64),
    String(String),
}

/// A roles value: `"proxy,jobs"` or `["proxy", "jobs"]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RolesValue {
    List(String),
    Items(Vec<String>),
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// Client authentication the NATS listener enforces.
#[derive(Clone, PartialEq, Eq)]
pub enum ClientAuth {
    UserPass {
        user: String,
        pass: String,
    },
    Token(String),
    /// The config file's `[[users]]` (see [`users`]).
    Users(Vec<UserSpec>),
}

impl std::fmt::Debug for ClientAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print secrets.
        match self {
            ClientAuth::UserPass { user, .. } => f
                .debug_struct("UserPass")
                .field("user", user)
                .field("pass", &"<redacted>")
                .finish(),
            ClientAuth::Token(_) => f.debug_tuple("Token").field(&"<redacted>").finish(),
            ClientAuth::Users(users) => f.debug_tuple("Users").field(users).finish(),
        }
    }
}

/// Every agent setting as merged from the sources, before defaults and checks.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RawAgentConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bucket: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch_write: Option<NumberOrString>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub roles: Option<RolesValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub control_plane: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_advertise: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_port: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer_port: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_payload: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_pending: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pass: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// Users with their own credentials and permissions (config file only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub users: Option<Vec<RawUser>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_format: Option<LogFormat>,
    // ---- TLS for NATS clients (INFINISTREAM_TLS_*) ----
    /// PEM certificate chain of the client listener (`INFINISTREAM_TLS_CERT`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of that certificate (`INFINISTREAM_TLS_KEY`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_key: Option<PathBuf>,
    /// PEM CA certificates client certificates must chain to; set = clients must
    /// present one (`INFINISTREAM_TLS_CA`, nats-server's `ca_file` + `verify`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_ca: Option<PathBuf>,
    /// Clients start TLS before `INFO` (`INFINISTREAM_TLS_HANDSHAKE_FIRST`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_handshake_first: Option<bool>,
    // ---- jobs role (INFINISTREAM_JOBS_*) ----
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jobs_retention_interval: Option<NumberOrString>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jobs_gc_interval: Option<NumberOrString>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jobs_compaction_interval: Option<NumberOrString>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jobs_orphan_grace: Option<NumberOrString>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jobs_release_grace: Option<NumberOrString>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jobs_compaction_min_entries: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jobs_compaction_target_bytes: Option<u64>,
    // ---- zone cache (INFINISTREAM_CACHE_*) ----
    /// Memory tier (`INFINISTREAM_CACHE_MEMORY_BYTES`): bytes, or a size like `256MiB`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_memory_bytes: Option<NumberOrString>,
    /// Disk tier (`INFINISTREAM_CACHE_DISK_BYTES`): 0 = off.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_disk_bytes: Option<NumberOrString>,
    /// Disk tier directory (`INFINISTREAM_CACHE_DIR`, `--cache_dir`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_dir: Option<PathBuf>,
    // ---- zone detection (INFINISTREAM_METADATA_*_URL; tests point them at fakes) ----
    /// AWS instance metadata base URL, or `off`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata_aws_url: Option<String>,
    /// GCP metadata server base URL, or `off`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata_gcp_url: Option<String>,
    /// Azure IMDS base URL, or `off`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata_azure_url: Option<String>,
}

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

/// TLS on the NATS client listener: PEM files, checked to exist when loaded by the
/// broker at start-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Clients must present a certificate chaining to these CAs.
    pub client_ca: Option<PathBuf>,
    pub handshake_first: bool,
}

/// Default bytes of the zone cache's memory tier.
pub const CACHE_MEMORY_DEFAULT: u64 = 256 * 1024 * 1024;
/// Smallest disk tier accepted (anything smaller holds too few chunks to help).
pub const CACHE_DISK_MIN: u64 = 16 * 1024 * 1024;

/// Settings of the jobs role (see docs/configuration.md, "Jobs").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobsSettings {
    /// How often retention runs.
    pub retention_interval: Duration,
    /// How often orphan collection lists the bucket.
    pub gc_interval: Duration,
    /// How often compaction looks at every stream.
    pub compaction_interval: Duration,
    /// Unreferenced objects younger than this are never deleted.
    pub orphan_grace: Duration,
    /// Released objects are deleted this long after their release at the earliest.
    pub release_grace: Duration,
    /// Fewest consecutive index entries worth one compacted segment.
    pub compaction_min_entries: usize,
    /// Largest compacted segment aimed for, in bytes.
    pub compaction_target_bytes: u64,
}

/// The proxy-produce flush deadline: a commit that has not succeeded this long after
/// its flush started is given up (the gateway's `BatcherConfig::flush_deadline`).
pub const FLUSH_DEADLINE: Duration = Duration::from_secs(4);

/// Smallest orphan grace accepted: 10 × [`FLUSH_DEADLINE`], so an upload whose commit
/// is merely slow is never taken for an orphan.
pub const MIN_ORPHAN_GRACE: Duration = Duration::from_secs(40);

/// A validated agent configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentConfig {
    /// Group id; `None` in embedded mode means "generate locally".
    pub group_id: Option<String>,
    /// Group key; never logged.
    pub group_key: Option<String>,
    /// Bucket URL (`file://` paths are absolute after validation).
    pub bucket: String,
    /// Batch window.
    pub batch_write: Duration,
    /// Roles to run, `proxy` expanded.
    pub roles: BTreeSet<Role>,
    /// Remote control plane URL; `None` runs it embedded.
    pub control_plane: Option<String>,
    /// Availability zone: the configured one, else `default` until detected.
    pub zone: String,
    /// Where [`AgentConfig::zone`] came from; [`ZoneSource::Unset`] asks the agent to
    /// detect it.
    pub zone_source: ZoneSource,
    /// The instance metadata services zone detection asks.
    pub metadata: MetadataUrls,
    /// Address the listeners bind.
    pub host: String,
    /// Where clients and peer agents reach this agent when that is not the bind
    /// address (nats-server's `client_advertise`); `None`: the bind address.
    pub client_advertise: Option<Advertise>,
    /// NATS client port.
    pub port: u16,
    /// HTTP monitoring port.
    pub http_port: u16,
    /// Agent-to-agent (zone cache) port.
    pub peer_port: u16,
    /// Local state: the embedded control plane's store and the default bucket.
    pub data_dir: PathBuf,
    /// Name shown in `INFO` and `/varz`.
    pub server_name: String,
    /// Largest accepted message payload.
    pub max_payload: usize,
    /// Largest outbound backlog per client before it is cut off as a slow consumer.
    pub max_pending: usize,
    /// Client authentication, if any.
    pub auth: Option<ClientAuth>,
    /// TLS for NATS clients, if any.
    pub tls: Option<TlsFiles>,
    /// Log format.
    pub log_format: LogFormat,
    /// The jobs role.
    pub jobs: JobsSettings,
    /// Zone cache: bytes of object ranges kept in memory (0 = none).
    pub cache_memory_bytes: u64,
    /// Zone cache: bytes of object ranges kept on disk (0 = no disk tier).
    pub cache_disk_bytes: u64,
    /// Zone cache: the disk tier's directory (default `<data_dir>/cache`).
    pub cache_dir: PathBuf,
}

impl AgentConfig {
    /// Whether the control plane runs inside this process.
    pub fn embedded_control_plane(&self) -> bool {
        self.control_plane.is_none()
    }

    /// The NATS client listen address.
    pub fn client_addr(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// The monitoring listen address.
    pub fn http_addr(&self) -> String {
        format!("{}:{}", self.host, self.http_port)
    }

    /// The peer listen address.
    pub fn peer_addr(&self) -> String {
        format!("{}:{}", self.host, self.peer_port)
    }
}

/// Loads the agent configuration: defaults < file < environment < flags.
pub fn load_agent(file: Option<&Path>, flags: &RawAgentConfig) -> Result<AgentConfig, ConfigError> {
    let mut config = agent_figment(file, flags)
        .extract::<RawAgentConfig>()?
        .validate()?;
    // `validate` sees merged values only; tell the zone's sources apart here.
    if config.zone_source != ZoneSource::Unset && flags.zone.is_none() {
        let from_env = Figment::from(env_provider())
            .extract_inner::<String>("zone")
            .is_ok();
        config.zone_source = if from_env {
            ZoneSource::Env
        } else {
            ZoneSource::File
        };
    }
    Ok(config)
}

/// The merged sources, exposed for tests and `infinistream config` style tooling.
pub fn agent_figment(file: Option<&Path>, flags: &RawAgentConfig) -> Figment {
    let mut figment = Figment::new();
    if let Some(file) = file {
        figment = figment.merge(Toml::file_exact(file));
    }
    figment
        .merge(env_provider())
        .merge(Serialized::globals(flags))
}

fn parse_millis(setting: &'static str, value: &NumberOrString) -> Result<u64, ConfigError> {
    match value {
        NumberOrString::Number(n) => Ok(*n),
        NumberOrString::String(s) => {
            let trimmed = s.trim();
            let digits = trimmed.strip_suffix("ms").unwrap_or(trimmed).trim();
            digits.parse::<u64>().map_err(|_| {
                invalid(
                    setting,
                    format!("must be a number of milliseconds, got `{s}`"),
                )
            })
        }
    }
}

/// Parses a byte size: a number, or a string with an optional unit (`512`, `64KiB`,
/// `256MiB`, `2GiB`, `1TiB`; `KB`/`MB`/`GB`/`TB` are powers of 1000).
fn parse_bytes(setting: &'static str, value: &NumberOrString) -> Result<u64, ConfigError> {
    let s = match value {
        NumberOrString::Number(n) => return Ok(*n),
        NumberOrString::String(s) => s,
    };
    let trimmed = s.trim();
    let split = trimmed
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(trimmed.len());
    let (digits, unit) = trimmed.split_at(split);
    let multiplier: Option<u64> = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => Some(1),
        "kib" | "k" => Some(1 << 10),
        "mib" | "m" => Some(1 << 20),
        "gib" | "g" => Some(1 << 30),
        "tib" | "t" => Some(1 << 40),
        "kb" => Some(1_000),
        "mb" => Some(1_000_000),
        "gb" => Some(1_000_000_000),
        "tb" => Some(1_000_000_000_000),
        _ => None,
    };
    digits
        .parse::<u64>()
        .ok()
        .zip(multiplier)
        .and_then(|(n, m)| n.checked_mul(m))
        .ok_or_else(|| {
            invalid(
                setting,
                format!("must be a byte size such as 268435456, 256MiB or 2GiB, got `{s}`"),
            )
        })
}

/// Parses a roles list (`proxy,jobs`), expanding `proxy`.
pub fn parse_roles(value: &RolesValue) -> Result<BTreeSet<Role>, ConfigError> {
    let items: Vec<String> = match value {
        RolesValue::List(s) => s.split(',').map(str::to_owned).collect(),
        RolesValue::Items(items) => items.clone(),
    };
    let mut roles = BTreeSet::new();
    for item in items.iter().map(|s| s.trim()).filter(|s| !s.is_empty()) {
        let parsed = Role::parse_one(item).ok_or_else(|| {
            invalid(
                "INFINISTREAM_AGENT_ROLES",
                format!(
                    "must be a comma-separated list of proxy-produce, proxy-consume, proxy, jobs; got unknown role `{item}`"
                ),
            )
        })?;
        roles.extend(parsed.iter().copied());
    }
    if roles.is_empty() {
        return Err(invalid(
            "INFINISTREAM_AGENT_ROLES",
            "must name at least one role (proxy-produce, proxy-consume, proxy, jobs), got an empty list",
        ));
    }
    Ok(roles)
}

fn check_name(setting: &'static str, value: &str) -> Result<(), ConfigError> {
    if value.is_empty() || value.len() > limits::NAME_MAX_LEN {
        return Err(invalid(
            setting,
            format!(
                "must be 1 to {} characters, got `{value}`",
                limits::NAME_MAX_LEN
            ),
        ));
    }
    if !infinistream_types::is_plain_name(value) {
        return Err(invalid(
            setting,
            format!("may only contain letters, digits, `-`, `_` and `.`, got `{value}`"),
        ));
    }
    Ok(())
}

/// A metadata service base URL: `off` = not asked, unset = [`METADATA_URL_DEFAULT`].
fn metadata_url(
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

/// Makes a `file://` bucket URL absolute (relative paths resolve against the working
/// directory), so every component and log line sees the same location.
fn absolutize_bucket(bucket: &str) -> Result<String, ConfigError> {
    let Some(path) = bucket.strip_prefix("file://") else {
        return Ok(bucket.to_owned());
    };
    if path.is_empty() {
        return Err(invalid(
            "INFINISTREAM_BUCKET_NAME",
            format!("must name a directory after file://, got `{bucket}`"),
        ));
    }
    let path = Path::new(path);
    if path.is_absolute() {
        return Ok(bucket.to_owned());
    }
    let cwd = std::env::current_dir().map_err(|e| {
        invalid(
            "INFINISTREAM_BUCKET_NAME",
            format!("is relative but the working directory is unknown ({e}), got `{bucket}`"),
        )
    })?;
    Ok(format!("file://{}", cwd.join(path).display()))
}

const SUPPORTED_SCHEMES: &[&str] = &["file://", "memory://", "s3://", "gs://", "az://"];

impl RawAgentConfig {
    /// Applies defaults and checks every rule.
    pub fn validate(&self) -> Result<AgentConfig, ConfigError> {
        let batch_ms = match &self.batch_write {
            Some(v) => parse_millis("INFINISTREAM_BATCH_WRITE", v)?,
            None => limits::BATCH_WRITE_DEFAULT.as_millis() as u64,
        };
        let (min, max) = (
            limits::BATCH_WRITE_MIN.as_millis() as u64,
            limits::BATCH_WRITE_MAX.as_millis() as u64,
        );
        if !(min..=max).contains(&batch_ms) {
            return Err(invalid(
                "INFINISTREAM_BATCH_WRITE",
                format!("must be between {min} and {max} ms, got {batch_ms}"),
            ));
        }

        let roles = parse_roles(
            self.roles
                .as_ref()
                .unwrap_or(&RolesValue::List("proxy,jobs".into())),
        )?;

        let data_dir = self
            .data_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from("data"));
        if data_dir.as_os_str().is_empty() {
            return Err(invalid("INFINISTREAM_DATA_DIR", "must not be empty"));
        }
        let bucket = match &self.bucket {
            Some(b) => b.trim().to_owned(),
            None => format!("file://{}", data_dir.join("bucket").display()),
        };
        if !SUPPORTED_SCHEMES.iter().any(|s| bucket.starts_with(s)) {
            return Err(invalid(
                "INFINISTREAM_BUCKET_NAME",
                format!(
                    "must be a URL starting with one of {}, got `{bucket}`",
                    SUPPORTED_SCHEMES.join(", ")
                ),
            ));
        }
        let bucket = absolutize_bucket(&bucket)?;

        let control_plane = match self.control_plane.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(url) if url.starts_with("http://") || url.starts_with("https://") => {
                Some(url.to_owned())
            }
            Some(url) => {
                return Err(invalid(
                    "INFINISTREAM_CONTROL_PLANE",
                    format!("must be an http:// or https:// URL, got `{url}`"),
                ));
            }
        };

        if let Some(id) = &self.group_id {
            check_name("INFINISTREAM_GROUP_ID", id)?;
        }
        if control_plane.is_some() {
            if self.group_id.is_none() {
                return Err(invalid(
                    "INFINISTREAM_GROUP_ID",
                    "is required when INFINISTREAM_CONTROL_PLANE is set",
                ));
            }
            if self.group_key.as_deref().is_none_or(str::is_empty) {
                return Err(invalid(
                    "INFINISTREAM_GROUP_KEY",
                    "is required when INFINISTREAM_CONTROL_PLANE is set",
                ));
            }
        }

        let (zone, zone_source) = match &self.zone {
            Some(zone) => (zone.clone(), ZoneSource::Flag),
            None => ("default".to_owned(), ZoneSource::Unset),
        };
        check_name("INFINISTREAM_ZONE", &zone)?;
        let metadata = MetadataUrls {
            aws: metadata_url("INFINISTREAM_METADATA_AWS_URL", &self.metadata_aws_url)?,
            gcp: metadata_url("INFINISTREAM_METADATA_GCP_URL", &self.metadata_gcp_url)?,
            azure: metadata_url("INFINISTREAM_METADATA_AZURE_URL", &self.metadata_azure_url)?,
        };

        let port = self.port.unwrap_or(limits::CLIENT_PORT_DEFAULT);
        let http_port = self.http_port.unwrap_or(limits::HTTP_PORT_DEFAULT);
        let peer_port = match self.peer_port {
            Some(p) => p,
            None if http_port == 0 => 0,
            None => http_port.checked_add(limits::PEER_PORT_OFFSET).ok_or_else(|| {
                invalid(
                    "--http_port",
                    format!(
                        "must leave room for the peer port (http_port + {}); set --peer_port explicitly, got {http_port}",
                        limits::PEER_PORT_OFFSET
                    ),
                )
            })?,
        };
        if port != 0 && (port == http_port || port == peer_port) {
            return Err(invalid(
                "--port",
                format!("must differ from --http_port and --peer_port, got {port}"),
            ));
        }
        if http_port != 0 && http_port == peer_port {
            return Err(invalid(
                "--peer_port",
                format!("must differ from --http_port, got {peer_port}"),
            ));
        }

        let max_payload = self
            .max_payload
            .unwrap_or(limits::MAX_PAYLOAD_DEFAULT as u64);
        if !(1..=64 * 1024 * 1024).contains(&max_payload) {
            return Err(invalid(
                "INFINISTREAM_MAX_PAYLOAD",
                format!("must be between 1 byte and 64 MiB, got {max_payload}"),
            ));
        }
        let max_pending = self.max_pending.unwrap_or(64 * 1024 * 1024);
        if max_pending < max_payload {
            return Err(invalid(
                "INFINISTREAM_MAX_PENDING",
                format!("must be at least max_payload ({max_payload}), got {max_pending}"),
            ));
        }

        let auth = match (&self.user, &self.pass, &self.token) {
            (None, None, None) if self.users.as_ref().is_some_and(|u| !u.is_empty()) => Some(
                ClientAuth::Users(users::resolve(self.users.as_deref().unwrap_or_default())?),
            ),
            _ if self.users.as_ref().is_some_and(|u| !u.is_empty()) => {
                return Err(invalid(
                    "users",
                    "cannot be combined with INFINISTREAM_USER / INFINISTREAM_PASS / INFINISTREAM_TOKEN",
                ));
            }
            (None, None, None) => None,
            (Some(user), Some(pass), None) => Some(ClientAuth::UserPass {
                user: user.clone(),
                pass: pass.clone(),
            }),
            (None, None, Some(token)) if !token.is_empty() => {
                Some(ClientAuth::Token(token.clone()))
            }
            (None, None, Some(_)) => {
                return Err(invalid("INFINISTREAM_TOKEN", "must not be empty"));
            }
            (Some(_), None, _) | (None, Some(_), _) => {
                return Err(invalid(
                    "INFINISTREAM_USER",
                    "and INFINISTREAM_PASS must be set together",
                ));
            }
            (Some(_), Some(_), Some(_)) => {
                return Err(invalid(
                    "INFINISTREAM_TOKEN",
                    "cannot be combined with INFINISTREAM_USER / INFINISTREAM_PASS",
                ));
            }
        };

        let tls = match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Some(TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
                client_ca: self.tls_ca.clone(),
                handshake_first: self.tls_handshake_first.unwrap_or(false),
            }),
            (None, None) if self.tls_ca.is_some() => {
                return Err(invalid(
                    "INFINISTREAM_TLS_CA",
                    "needs INFINISTREAM_TLS_CERT and INFINISTREAM_TLS_KEY (client certificates are checked inside TLS)",
                ));
            }
            (None, None) if self.tls_handshake_first == Some(true) => {
                return Err(invalid(
                    "INFINISTREAM_TLS_HANDSHAKE_FIRST",
                    "needs INFINISTREAM_TLS_CERT and INFINISTREAM_TLS_KEY",
                ));
            }
            (None, None) => None,
            _ => {
                return Err(invalid(
                    "INFINISTREAM_TLS_CERT",
                    "and INFINISTREAM_TLS_KEY must be set together",
                ));
            }
        };

        let cache_memory_bytes = match &self.cache_memory_bytes {
            Some(v) => parse_bytes("INFINISTREAM_CACHE_MEMORY_BYTES", v)?,
            None => CACHE_MEMORY_DEFAULT,
        };
        let cache_disk_bytes = match &self.cache_disk_bytes {
            Some(v) => parse_bytes("INFINISTREAM_CACHE_DISK_BYTES", v)?,
            None => 0,
        };
        if cache_disk_bytes != 0 && cache_disk_bytes < CACHE_DISK_MIN {
            return Err(invalid(
                "INFINISTREAM_CACHE_DISK_BYTES",
                format!("must be 0 (no disk tier) or at least 16MiB, got {cache_disk_bytes}"),
            ));
        }
        let cache_dir = self
            .cache_dir
            .clone()
            .unwrap_or_else(|| data_dir.join("cache"));
        if cache_dir.as_os_str().is_empty() {
            return Err(invalid("INFINISTREAM_CACHE_DIR", "must not be empty"));
        }

        let server_name = self
            .server_name
            .clone()
            .unwrap_or_else(|| format!("infinistream-{}", std::process::id()));
        let jobs = self.jobs_settings()?;

        Ok(AgentConfig {
            group_id: self.group_id.clone(),
            group_key: self.group_key.clone(),
            bucket,
            batch_write: Duration::from_millis(batch_ms),
            roles,
            control_plane,
            zone,
            zone_source,
            metadata,
            host: self.host.clone().unwrap_or_else(|| "0.0.0.0".into()),
            client_advertise: self
                .client_advertise
                .as_deref()
                .map(Advertise::parse)
                .transpose()?,
            port,
            http_port,
            peer_port,
            data_dir,
            server_name,
            max_payload: max_payload as usize,
            max_pending: max_pending as usize,
            auth,
            tls,
            log_format: self.log_format.unwrap_or_default(),
            jobs,
            cache_memory_bytes,
            cache_disk_bytes,
            cache_dir,
        })
    }

    /// The jobs role's settings, defaults applied and bounds checked.
    fn jobs_settings(&self) -> Result<JobsSettings, ConfigError> {
        const DAY_MS: u64 = 86_400_000;
        let millis = |setting: &'static str,
                      value: &Option<NumberOrString>,
                      default: u64,
                      min: u64,
                      max: u64|
         -> Result<Duration, ConfigError> {
            let ms = match value {
                Some(v) => parse_millis(setting, v)?,
                None => default,
            };
            if !(min..=max).contains(&ms) {
                return Err(invalid(
                    setting,
                    format!("must be between {min} and {max} ms, got {ms}"),
                ));
            }
            Ok(Duration::from_millis(ms))
        };
        let min_grace = MIN_ORPHAN_GRACE.as_millis() as u64;
        let orphan_grace = match &self.jobs_orphan_grace {
            Some(v) => {
                let ms = parse_millis("INFINISTREAM_JOBS_ORPHAN_GRACE", v)?;
                if ms < min_grace {
                    return Err(invalid(
                        "INFINISTREAM_JOBS_ORPHAN_GRACE",
                        format!(
                            "must be at least {min_grace} ms (10 × the {} s flush deadline, so a slow commit is never taken for an orphan), got {ms}",
                            FLUSH_DEADLINE.as_secs()
                        ),
                    ));
                }
                Duration::from_millis(ms)
            }
            None => Duration::from_secs(600),
        };
        let min_entries = self.jobs_compaction_min_entries.unwrap_or(8);
        if !(2..=10_000).contains(&min_entries) {
            return Err(invalid(
                "INFINISTREAM_JOBS_COMPACTION_MIN_ENTRIES",
                format!("must be between 2 and 10000, got {min_entries}"),
            ));
        }
        let target = self
            .jobs_compaction_target_bytes
            .unwrap_or(32 * 1024 * 1024);
        if !(1024 * 1024..=1024 * 1024 * 1024).contains(&target) {
            return Err(invalid(
                "INFINISTREAM_JOBS_COMPACTION_TARGET_BYTES",
                format!("must be between 1 MiB and 1 GiB (1048576..=1073741824), got {target}"),
            ));
        }
        Ok(JobsSettings {
            retention_interval: millis(
                "INFINISTREAM_JOBS_RETENTION_INTERVAL",
                &self.jobs_retention_interval,
                10_000,
                100,
                DAY_MS,
            )?,
            gc_interval: millis(
                "INFINISTREAM_JOBS_GC_INTERVAL",
                &self.jobs_gc_interval,
                300_000,
                100,
                DAY_MS,
            )?,
            compaction_interval: millis(
                "INFINISTREAM_JOBS_COMPACTION_INTERVAL",
                &self.jobs_compaction_interval,
                60_000,
                100,
                DAY_MS,
            )?,
            orphan_grace,
            release_grace: millis(
                "INFINISTREAM_JOBS_RELEASE_GRACE",
                &self.jobs_release_grace,
                60_000,
                0,
                DAY_MS,
            )?,
            compaction_min_entries: min_entries as usize,
            compaction_target_bytes: target,
        })
    }
}

/// Where the control-plane service keeps its state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreUrl {
    /// redb under a directory.
    Embedded(PathBuf),
    /// One or more etcd endpoints (`host:port`).
    Etcd(Vec<String>),
}

impl StoreUrl {
    /// Parses `embedded:<dir>` or `etcd://host:port[,host:port…]`.
    pub fn parse(value: &str) -> Result<StoreUrl, ConfigError> {
        if let Some(dir) = value.strip_prefix("embedded:") {
            if dir.is_empty() {
                return Err(invalid(
                    "--store",
                    format!("must name a directory after embedded:, got `{value}`"),
                ));
            }
            return Ok(StoreUrl::Embedded(PathBuf::from(dir)));
        }
        if let Some(hosts) = value.strip_prefix("etcd://") {
            let endpoints: Vec<String> = hosts
                .split(',')
                .map(str::trim)
                .filter(|h| !h.is_empty())
                .map(str::to_owned)
                .collect();
            if endpoints.is_empty() || endpoints.iter().any(|e| !e.contains(':')) {
                return Err(invalid(
                    "--store",
                    format!("must list host:port endpoints after etcd://, got `{value}`"),
                ));
            }
            return Ok(StoreUrl::Etcd(endpoints));
        }
        Err(invalid(
            "--store",
            format!("must be embedded:<dir> or etcd://host:port[,host:port…], got `{value}`"),
        ))
    }
}

/// An advertised address: a host name or IP, with a port when it differs from the
/// bound one (`nats.example.com`, `10.0.0.7:4222`, `[fd00::7]:4222`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Advertise {
    pub host: String,
    pub port: Option<u16>,
}

impl Advertise {
    /// Parses `INFINISTREAM_CLIENT_ADVERTISE`.
    pub fn parse(value: &str) -> Result<Advertise, ConfigError> {
        let bad = || {
            invalid(
                "INFINISTREAM_CLIENT_ADVERTISE",
                format!(
                    "must be host or host:port (e.g. nats.example.com or 10.0.0.7:4222), got `{value}`"
                ),
            )
        };
        if value.is_empty() || value.contains(|c: char| c.is_whitespace() || c == '/') {
            return Err(bad());
        }
        if let Ok(addr) = value.parse::<SocketAddr>() {
            if addr.port() == 0 {
                return Err(bad());
            }
            let host = match addr {
                SocketAddr::V4(a) => a.ip().to_string(),
                SocketAddr::V6(a) => format!("[{}]", a.ip()),
            };
            return Ok(Advertise {
                host,
                port: Some(addr.port()),
            });
        }
        if let Ok(ip) = value.parse::<std::net::Ipv6Addr>() {
            return Ok(Advertise {
                host: format!("[{ip}]"),
                port: None,
            });
        }
        match value.rsplit_once(':') {
            None => Ok(Advertise {
                host: value.to_owned(),
                port: None,
            }),
            Some((host, port)) => {
                let port = port
                    .parse::<u16>()
                    .ok()
                    .filter(|p| *p != 0)
                    .ok_or_else(bad)?;
                if host.is_empty() || host.contains([':', '[', ']']) {
                    return Err(bad());
                }
                Ok(Advertise {
                    host: host.to_owned(),
                    port: Some(port),
                })
            }
        }
    }

    /// `host:port`, with `bound` when no port was given.
    pub fn address(&self, bound: u16) -> String {
        format!("{}:{}", self.host, self.port.unwrap_or(bound))
    }
}

/// Settings of `infinistream control-plane` as merged from the sources.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RawControlPlaneConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub advertise: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_port: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub groups: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_format: Option<LogFormat>,
}

/// A validated control-plane configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlPlaneConfig {
    pub store: StoreUrl,
    pub listen: SocketAddr,
    /// Address other replicas and agents use to reach this one (defaults to `listen`).
    pub advertise: String,
    pub host: String,
    pub http_port: u16,
    /// Single group from the environment, if given.
    pub group: Option<(String, String)>,
    /// A TOML file of `[groups] id = "key"` entries, if given.
    pub groups_file: Option<PathBuf>,
    pub log_format: LogFormat,
}

/// Loads the control-plane configuration: defaults < file < environment < flags.
pub fn load_control_plane(
    file: Option<&Path>,
    flags: &RawControlPlaneConfig,
) -> Result<ControlPlaneConfig, ConfigError> {
    let mut figment = Figment::new();
    if let Some(file) = file {
        figment = figment.merge(Toml::file_exact(file));
    }
    figment
        .merge(env_provider())
        .merge(Serialized::globals(flags))
        .extract::<RawControlPlaneConfig>()?
        .validate()
}

impl RawControlPlaneConfig {
    /// Applies defaults and checks every rule.
    pub fn validate(&self) -> Result<ControlPlaneConfig, ConfigError> {
        let store = StoreUrl::parse(
            self.store
                .as_deref()
                .unwrap_or("embedded:data/control-plane"),
        )?;
        let listen_text = self
            .listen
            .clone()
            .unwrap_or_else(|| "127.0.0.1:7070".into());
        let listen: SocketAddr = listen_text.parse().map_err(|_| {
            invalid(
                "--listen",
                format!("must be an ip:port socket address, got `{listen_text}`"),
            )
        })?;
        let group = match (&self.group_id, &self.group_key) {
            (Some(id), Some(key)) if !key.is_empty() => {
                check_name("INFINISTREAM_GROUP_ID", id)?;
                Some((id.clone(), key.clone()))
            }
            (Some(_), _) => {
                return Err(invalid(
                    "INFINISTREAM_GROUP_KEY",
                    "is required when INFINISTREAM_GROUP_ID is set",
                ));
            }
            (None, Some(_)) => {
                return Err(invalid(
                    "INFINISTREAM_GROUP_ID",
                    "is required when INFINISTREAM_GROUP_KEY is set",
                ));
            }
            (None, None) => None,
        };
        if group.is_none() && self.groups.is_none() {
            return Err(invalid(
                "INFINISTREAM_GROUP_ID",
                "and INFINISTREAM_GROUP_KEY (or --groups <file>) are required by the control plane",
            ));
        }
        Ok(ControlPlaneConfig {
            store,
            listen,
            advertise: self
                .advertise
                .clone()
                .unwrap_or_else(|| format!("http://{listen}")),
            host: self.host.clone().unwrap_or_else(|| "0.0.0.0".into()),
            http_port: self.http_port.unwrap_or(limits::HTTP_PORT_DEFAULT + 1),
            group,
            groups_file: self.groups.clone(),
            log_format: self.log_format.unwrap_or_default(),
        })
    }
}

#[cfg(test)]
mod tests;
pub mod users;
pub use users::{PermissionsSpec, RawUser, UserSpec};
