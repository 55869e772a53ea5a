//! TLS for client connections, as nats-server's `tls` block: a certificate and key,
//! optionally a CA whose certificates clients must present (`verify`), and
//! `handshake_first`.
//!
//! Without `handshake_first` the server sends `INFO` (with `tls_required: true`) in the
//! clear and the client then starts the TLS handshake, which is what every NATS client
//! does by default; with it, the client starts TLS at once and `INFO` is the first
//! thing sent inside it (async-nats `tls_first()`, nats.go `TLSHandshakeFirst()`).
//! Either way a client that does not speak TLS gets no further than `INFO`.
//!
//! The certificate, key and client CA can be replaced while the broker runs
//! ([`crate::Broker::reload_tls`], on `SIGHUP`): new connections get the new ones,
//! open connections keep the session they have.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;

/// nats-server's default TLS handshake timeout.
pub const DEFAULT_TLS_TIMEOUT: Duration = Duration::from_secs(2);

/// TLS settings of the client listener.
#[derive(Clone)]
pub struct Tls {
    /// Shared by the clones: a reload replaces what they all hand out.
    config: Arc<RwLock<Arc<rustls::ServerConfig>>>,
    /// Clients start TLS before the server's `INFO`.
    pub handshake_first: bool,
    /// Time a client has to complete the handshake.
    pub timeout: Duration,
    /// Clients must present a certificate signed by the configured CA.
    pub verify: bool,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("handshake_first", &self.handshake_first)
            .field("timeout", &self.timeout)
            .field("verify", &self.verify)
            .finish_non_exhaustive()
    }
}

/// Why the TLS settings cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {what} `{path}`: {reason}")]
    Read {
        what: &'static str,
        path: PathBuf,
        reason: String,
    },
    #[error("{what} `{path}` holds no {expected}")]
    Empty {
        what: &'static str,
        path: PathBuf,
        expected: &'static str,
    },
    #[error("invalid TLS settings: {0}")]
    Config(String),
}

impl Tls {
    /// Loads PEM files: the server's certificate chain and private key, and, when
    /// `client_ca` is given, the CA certificates that client certificates must chain to
    /// (every client must then present one).
    pub fn from_pem_files(
        cert: &Path,
        key: &Path,
        client_ca: Option<&Path>,
    ) -> Result<Tls, TlsError> {
        let read_err =
            |what: &'static str, path: &Path, e: rustls::pki_types::pem::Error| TlsError::Read {
                what,
                path: path.to_path_buf(),
                reason: e.to_string(),
            };
        let chain = CertificateDer::pem_file_iter(cert)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|e| read_err("certificate", cert, e))?;
        if chain.is_empty() {
            return Err(TlsError::Empty {
                what: "certificate file",
                path: cert.to_path_buf(),
                expected: "PEM certificate",
            });
        }
        let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| read_err("key", key, e))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config(e.to_string()))?;
        let builder = match client_ca {
            None => builder.with_no_client_auth(),
            Some(ca) => {
                let mut roots = rustls::RootCertStore::empty();
                let cas = CertificateDer::pem_file_iter(ca)
                    .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                    .map_err(|e| read_err("client CA", ca, e))?;
                if cas.is_empty() {
                    return Err(TlsError::Empty {
                        what: "client CA file",
                        path: ca.to_path_buf(),
                        expected: "PEM certificate",
                    });
                }
                for c in cas {
                    roots.add(c).map_err(|e| {
                        TlsError::Config(format!("client CA `{}`: {e}", ca.display()))
                    })?;
                }
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                        .build()
                        .map_err(|e| TlsError::Config(e.to_string()))?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let config = builder
            .with_single_cert(chain, key_der)
            .map_err(|e| TlsError::Config(format!("certificate and key: {e}")))?;
        Ok(Tls {
            config: Arc::new(RwLock::new(Arc::new(config))),
            handshake_first: false,
            timeout: DEFAULT_TLS_TIMEOUT,
            verify: client_ca.is_some(),
        })
    }
}

impl Tls {
    /// The rustls settings new connections are accepted with.
    pub(crate) fn server_config(&self) -> Arc<rustls::ServerConfig> {
        self.config.read().clone()
    }

    /// Serves `new`'s certificate, key and client CA to new connections from now on.
    /// Whether clients must present a certificate, and `handshake_first`, cannot
    /// change without a restart (clients were told in `INFO`).
    pub(crate) fn replace_with(&self, new: &Tls) -> Result<(), TlsError> {
        if new.verify != self.verify || new.handshake_first != self.handshake_first {
            return Err(TlsError::Config(
                "requiring client certificates, or handshake_first, changes only with a restart"
                    .into(),
            ));
        }
        *self.config.write() = new.server_config();
        Ok(())
    }
}
