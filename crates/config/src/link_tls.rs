//! TLS on the internal links: agent → control plane (`cp_tls_*`), agent ↔ agent on the
//! peer port (`peer_tls_*`), and the control plane's own listener and replica links
//! (`tls_*` of `infinistream control-plane`). Only PEM paths here; the processes load
//! them at start-up and fail naming the file.

use std::path::PathBuf;

use crate::error::{ConfigError, invalid};

/// TLS settings of one internal link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkTls {
    /// This side's certificate chain and key: the server's identity, and the client's
    /// when the other side demands one (mTLS).
    pub identity: Option<(PathBuf, PathBuf)>,
    /// CA certificates the other side's certificate must chain to.
    pub ca: Option<PathBuf>,
    /// The serving side demands a client certificate chaining to `ca` (mTLS).
    pub verify_clients: bool,
    /// The name checked in the server's certificate (default: the host dialled).
    pub server_name: Option<String>,
}

/// The raw settings of one link, with the names errors use.
pub(crate) struct RawLinkTls<'a> {
    pub cert: (&'static str, &'a Option<PathBuf>),
    pub key: (&'static str, &'a Option<PathBuf>),
    pub ca: (&'static str, &'a Option<PathBuf>),
    pub verify: (&'static str, Option<bool>),
    pub server_name: (&'static str, &'a Option<String>),
}

impl RawLinkTls<'_> {
    /// `None` when nothing is set; certificate and key only together; demanding client
    /// certificates needs the CA they chain to.
    pub(crate) fn validate(&self) -> Result<Option<LinkTls>, ConfigError> {
        let identity = match (self.cert.1, self.key.1) {
            (Some(cert), Some(key)) => Some((cert.clone(), key.clone())),
            (None, None) => None,
            (Some(_), None) => {
                return Err(invalid(
                    self.key.0,
                    format!("is required with {}", self.cert.0),
                ));
            }
            (None, Some(_)) => {
                return Err(invalid(
                    self.cert.0,
                    format!("is required with {}", self.key.0),
                ));
            }
        };
        let verify_clients = self.verify.1.unwrap_or(false);
        if verify_clients && self.ca.1.is_none() {
            return Err(invalid(
                self.ca.0,
                format!(
                    "is required with {} (client certificates chain to it)",
                    self.verify.0
                ),
            ));
        }
        if let Some(name) = self.server_name.1
            && name.trim().is_empty()
        {
            return Err(invalid(self.server_name.0, "must not be empty"));
        }
        if identity.is_none() && self.ca.1.is_none() {
            if verify_clients || self.server_name.1.is_some() {
                return Err(invalid(self.ca.0, "is required to use TLS on this link"));
            }
            return Ok(None);
        }
        Ok(Some(LinkTls {
            identity,
            ca: self.ca.1.clone(),
            verify_clients,
            server_name: self.server_name.1.clone(),
        }))
    }
}
