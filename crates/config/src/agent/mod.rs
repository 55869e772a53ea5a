//! Settings of `infinistream agent`: the raw merged form, its validation, and the
//! validated [`AgentConfig`]. Each concern with rules of its own has a module.

mod auth;
mod bucket;
mod cache;
mod jobs;
mod listen;
mod operator;
mod zone;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use infinistream_types::{Role, limits};
use serde::{Deserialize, Serialize};

pub use auth::{CalloutSpec, ClientAuth, RawAuthCallout, TlsFiles};
pub use cache::{CACHE_DISK_MIN, CACHE_MEMORY_DEFAULT};
pub use jobs::{FLUSH_DEADLINE, JobsSettings, MIN_ORPHAN_GRACE};
pub use operator::{OperatorSpec, RawJwtSetting};
pub use zone::{METADATA_URL_DEFAULT, MetadataUrls, ZoneSource};

use crate::advertise::Advertise;
use crate::error::{ConfigError, invalid};
use crate::link_tls::{LinkTls, RawLinkTls};
use crate::sources::{env_provider, merged};
use crate::values::{LogFormat, NumberOrString, RolesValue, check_name, parse_millis, parse_roles};

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
    pub publish_buffer: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pass: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// Users with their own credentials and permissions (config file only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub users: Option<Vec<crate::users::RawUser>>,
    /// Accounts, each with its users (config file only; see [`crate::accounts`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accounts: Option<std::collections::BTreeMap<String, crate::accounts::RawAccount>>,
    /// nats-server's decentralized JWT auth: the trusted operator JWT(s), inline or a
    /// file path (config file only; see `operator.rs`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operator: Option<operator::RawJwtSetting>,
    /// The account resolver for JWT auth: `"MEMORY"` or `"URL(http://…/accounts/)"`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resolver: Option<operator::RawJwtSetting>,
    /// Operator mode: the account (public key) whose users may push account JWT
    /// updates (`$SYS.REQ.ACCOUNT.<key>.CLAIMS.UPDATE`); default: the operator JWT's
    /// `system_account`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system_account: Option<String>,
    /// nats-server's `auth_callout`: an external service decides who signs in (config
    /// file only; see `auth.rs`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_callout: Option<auth::RawAuthCallout>,
    /// The memory resolver's account JWTs: account public key → account JWT.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resolver_preload: Option<std::collections::BTreeMap<String, String>>,
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
    // ---- TLS to the control plane (INFINISTREAM_CP_TLS_*) ----
    /// PEM CA the control plane's certificate must chain to; needed by an
    /// `https://` control plane (`INFINISTREAM_CP_TLS_CA`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cp_tls_ca: Option<PathBuf>,
    /// Client certificate presented when the control plane demands one (mTLS).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cp_tls_cert: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cp_tls_key: Option<PathBuf>,
    /// Name checked in the control plane's certificate (default: the URL's host).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cp_tls_server_name: Option<String>,
    // ---- TLS on the peer port (INFINISTREAM_PEER_TLS_*) ----
    /// This agent's peer-port certificate and key (also presented when dialling peers).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer_tls_cert: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer_tls_key: Option<PathBuf>,
    /// CA the peers' certificates chain to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer_tls_ca: Option<PathBuf>,
    /// Peers dialling this agent must present a certificate (mTLS).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer_tls_verify: Option<bool>,
    /// Name checked in a peer's certificate (default: the peer's address host).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer_tls_server_name: Option<String>,
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
    /// Bytes of JetStream publishes the produce role buffers or has in flight before
    /// publishers wait; a message larger than this is refused (10054).
    pub publish_buffer: usize,
    /// Client authentication, if any.
    pub auth: Option<ClientAuth>,
    /// TLS for NATS clients, if any.
    pub tls: Option<TlsFiles>,
    /// TLS to a remote control plane (its URL is then `https://`).
    pub cp_tls: Option<LinkTls>,
    /// TLS on the peer port, both serving and dialling (every agent of the group alike).
    pub peer_tls: Option<LinkTls>,
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
    merged(file, flags)
}

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
        let bucket = bucket::bucket_url(self.bucket.as_deref(), &data_dir)?;

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
            aws: zone::metadata_url("INFINISTREAM_METADATA_AWS_URL", &self.metadata_aws_url)?,
            gcp: zone::metadata_url("INFINISTREAM_METADATA_GCP_URL", &self.metadata_gcp_url)?,
            azure: zone::metadata_url("INFINISTREAM_METADATA_AZURE_URL", &self.metadata_azure_url)?,
        };

        let ports = self.ports()?;

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

        let publish_buffer = self.publish_buffer.unwrap_or(64 * 1024 * 1024);
        if !(1024..=u64::from(u32::MAX)).contains(&publish_buffer) {
            return Err(invalid(
                "INFINISTREAM_PUBLISH_BUFFER",
                format!("must be between 1 KiB and 4 GiB - 1, got {publish_buffer}"),
            ));
        }

        let auth = self.client_auth()?;

        let tls = self.tls_files()?;
        let (cp_tls, peer_tls) = self.link_tls(control_plane.as_deref())?;

        let cache = self.cache_settings(&data_dir)?;

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
            port: ports.client,
            http_port: ports.http,
            peer_port: ports.peer,
            data_dir,
            server_name,
            max_payload: max_payload as usize,
            max_pending: max_pending as usize,
            publish_buffer: publish_buffer as usize,
            auth,
            tls,
            cp_tls,
            peer_tls,
            log_format: self.log_format.unwrap_or_default(),
            jobs,
            cache_memory_bytes: cache.memory_bytes,
            cache_disk_bytes: cache.disk_bytes,
            cache_dir: cache.dir,
        })
    }
}

impl RawAgentConfig {
    /// The internal links' TLS: to the control plane (which must then be `https://`,
    /// and an `https://` one needs the CA) and on the peer port (certificate, key and
    /// CA together: the port serves and dials with them).
    fn link_tls(
        &self,
        control_plane: Option<&str>,
    ) -> Result<(Option<LinkTls>, Option<LinkTls>), ConfigError> {
        let cp = RawLinkTls {
            cert: ("INFINISTREAM_CP_TLS_CERT", &self.cp_tls_cert),
            key: ("INFINISTREAM_CP_TLS_KEY", &self.cp_tls_key),
            ca: ("INFINISTREAM_CP_TLS_CA", &self.cp_tls_ca),
            verify: ("INFINISTREAM_CP_TLS_VERIFY", None),
            server_name: ("INFINISTREAM_CP_TLS_SERVER_NAME", &self.cp_tls_server_name),
        }
        .validate()?;
        match (control_plane, &cp) {
            (Some(url), None) if url.starts_with("https://") => {
                return Err(invalid(
                    "INFINISTREAM_CP_TLS_CA",
                    format!("is required by the https:// control plane `{url}`"),
                ));
            }
            (Some(url), Some(_)) if !url.starts_with("https://") => {
                return Err(invalid(
                    "INFINISTREAM_CONTROL_PLANE",
                    format!("must be https:// when INFINISTREAM_CP_TLS_* is set, got `{url}`"),
                ));
            }
            (None, Some(_)) => {
                return Err(invalid(
                    "INFINISTREAM_CP_TLS_CA",
                    "is for a remote control plane: set INFINISTREAM_CONTROL_PLANE too",
                ));
            }
            (_, Some(tls)) if tls.ca.is_none() => {
                return Err(invalid(
                    "INFINISTREAM_CP_TLS_CA",
                    "is required with INFINISTREAM_CP_TLS_CERT",
                ));
            }
            _ => {}
        }
        let peer = RawLinkTls {
            cert: ("INFINISTREAM_PEER_TLS_CERT", &self.peer_tls_cert),
            key: ("INFINISTREAM_PEER_TLS_KEY", &self.peer_tls_key),
            ca: ("INFINISTREAM_PEER_TLS_CA", &self.peer_tls_ca),
            verify: ("INFINISTREAM_PEER_TLS_VERIFY", self.peer_tls_verify),
            server_name: (
                "INFINISTREAM_PEER_TLS_SERVER_NAME",
                &self.peer_tls_server_name,
            ),
        }
        .validate()?;
        if let Some(tls) = &peer {
            if tls.identity.is_none() {
                return Err(invalid(
                    "INFINISTREAM_PEER_TLS_CERT",
                    "and INFINISTREAM_PEER_TLS_KEY are required for TLS on the peer port",
                ));
            }
            if tls.ca.is_none() {
                return Err(invalid(
                    "INFINISTREAM_PEER_TLS_CA",
                    "is required for TLS on the peer port (dialled peers are checked against it)",
                ));
            }
        }
        Ok((cp, peer))
    }
}
