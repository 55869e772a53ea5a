//! Settings of `infinistream control-plane`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use infinistream_types::limits;
use serde::{Deserialize, Serialize};

use crate::error::{ConfigError, invalid};
use crate::link_tls::{LinkTls, RawLinkTls};
use crate::sources;
use crate::values::{LogFormat, check_name};

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
    /// gRPC TLS certificate and key (`INFINISTREAM_TLS_CERT` / `_KEY`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_cert: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_key: Option<PathBuf>,
    /// CA that client certificates and the other replicas' certificates chain to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_ca: Option<PathBuf>,
    /// Clients (agents, replicas) must present a certificate chaining to `tls_ca`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_verify: Option<bool>,
    /// Name checked in the leader's certificate when forwarding (default: its host).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_server_name: Option<String>,
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
    /// TLS on the gRPC listener and on forwarding to the leader.
    pub tls: Option<LinkTls>,
}

/// Loads the control-plane configuration: defaults < file < environment < flags.
pub fn load_control_plane(
    file: Option<&Path>,
    flags: &RawControlPlaneConfig,
) -> Result<ControlPlaneConfig, ConfigError> {
    sources::merged(file, flags)
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
        let tls = RawLinkTls {
            cert: ("INFINISTREAM_TLS_CERT", &self.tls_cert),
            key: ("INFINISTREAM_TLS_KEY", &self.tls_key),
            ca: ("INFINISTREAM_TLS_CA", &self.tls_ca),
            verify: ("INFINISTREAM_TLS_VERIFY", self.tls_verify),
            server_name: ("INFINISTREAM_TLS_SERVER_NAME", &self.tls_server_name),
        }
        .validate()?;
        if let Some(tls) = &tls
            && tls.identity.is_none()
        {
            return Err(invalid(
                "INFINISTREAM_TLS_CERT",
                "and INFINISTREAM_TLS_KEY are required to serve the control plane over TLS",
            ));
        }
        Ok(ControlPlaneConfig {
            tls,
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
