//! TLS on the internal links: the control-plane gRPC (agent → control plane, replica
//! → leader) and the peer port (agent ↔ agent).
//!
//! Both links speak gRPC over tonic with rustls (ring, the one provider of the build).
//! The files are PEM; a server may also demand client certificates signed by a CA
//! (mTLS). TLS protects the traffic; the group key is proven on top of it either way
//! ([`crate::auth`]), so a link without TLS still never carries the key.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};

/// Time a connecting client has to finish the TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

use crate::auth::ClientAuth;
use crate::error::{ClientError, error_chain};

/// Why TLS settings cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {what} `{path}`: {source}")]
    Read {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{what} `{path}` holds no PEM {expected}")]
    NotPem {
        what: &'static str,
        path: PathBuf,
        expected: &'static str,
    },
    #[error("invalid TLS settings: {0}")]
    Config(String),
}

fn read_pem(what: &'static str, path: &Path, expected: &'static str) -> Result<Vec<u8>, TlsError> {
    let bytes = std::fs::read(path).map_err(|source| TlsError::Read {
        what,
        path: path.to_path_buf(),
        source,
    })?;
    let marker = format!("-----BEGIN {expected}");
    let found = if expected == "PRIVATE KEY" {
        // PKCS#8, PKCS#1 (`RSA PRIVATE KEY`) and SEC1 (`EC PRIVATE KEY`) all end so.
        bytes
            .windows(b"PRIVATE KEY-----".len())
            .any(|w| w == b"PRIVATE KEY-----")
    } else {
        bytes.windows(marker.len()).any(|w| w == marker.as_bytes())
    };
    if !found {
        return Err(TlsError::NotPem {
            what,
            path: path.to_path_buf(),
            expected,
        });
    }
    Ok(bytes)
}

/// A certificate chain and its key (a server's identity, or a client's for mTLS).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertKey {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl CertKey {
    fn identity(&self) -> Result<Identity, TlsError> {
        Ok(Identity::from_pem(
            read_pem("certificate", &self.cert, "CERTIFICATE")?,
            read_pem("private key", &self.key, "PRIVATE KEY")?,
        ))
    }
}

/// The dialling side: which CA the server's certificate must chain to, the name it
/// must carry, and this side's certificate when the server demands one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientTls {
    /// PEM CA certificates the server's certificate must chain to.
    pub ca: PathBuf,
    /// Presented when the server asks for a client certificate (mTLS).
    pub identity: Option<CertKey>,
    /// The name checked in the server's certificate; default: the host dialled.
    pub server_name: Option<String>,
}

impl ClientTls {
    /// Reads the files into tonic's client settings.
    pub fn load(&self) -> Result<ClientTlsConfig, TlsError> {
        let mut config = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(read_pem(
            "CA file",
            &self.ca,
            "CERTIFICATE",
        )?));
        if let Some(identity) = &self.identity {
            config = config.identity(identity.identity()?);
        }
        if let Some(name) = &self.server_name {
            config = config.domain_name(name.clone());
        }
        Ok(config.assume_http2(true))
    }
}

/// The serving side: its certificate, and the CA client certificates must chain to
/// when clients must present one (mTLS).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerTls {
    pub identity: CertKey,
    /// Set: every client must present a certificate chaining to these CAs.
    pub client_ca: Option<PathBuf>,
}

impl ServerTls {
    /// Reads the files into a TLS acceptor speaking HTTP/2 (for [`incoming`]).
    pub fn acceptor(&self) -> Result<Acceptor, TlsError> {
        let certs =
            |what: &'static str, path: &Path| -> Result<Vec<CertificateDer<'static>>, TlsError> {
                let pem = read_pem(what, path, "CERTIFICATE")?;
                CertificateDer::pem_slice_iter(&pem)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| TlsError::Config(format!("{what} `{}`: {e}", path.display())))
            };
        let chain = certs("certificate", &self.identity.cert)?;
        let key_pem = read_pem("private key", &self.identity.key, "PRIVATE KEY")?;
        let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
            TlsError::Config(format!(
                "private key `{}`: {e}",
                self.identity.key.display()
            ))
        })?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config(e.to_string()))?;
        let builder = match &self.client_ca {
            None => builder.with_no_client_auth(),
            Some(ca) => {
                let mut roots = rustls::RootCertStore::empty();
                for c in certs("client CA file", ca)? {
                    roots.add(c).map_err(|e| {
                        TlsError::Config(format!("client CA `{}`: {e}", ca.display()))
                    })?;
                }
                let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots),
                    provider,
                )
                .build()
                .map_err(|e| TlsError::Config(e.to_string()))?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let mut config = builder.with_single_cert(chain, key).map_err(|e| {
            TlsError::Config(format!(
                "certificate `{}` and key `{}`: {e}",
                self.identity.cert.display(),
                self.identity.key.display()
            ))
        })?;
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(Acceptor(TlsAcceptor::from(Arc::new(config))))
    }
}

/// A loaded server TLS configuration (see [`ServerTls::acceptor`]).
#[derive(Clone)]
pub struct Acceptor(TlsAcceptor);

impl std::fmt::Debug for Acceptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Acceptor").finish_non_exhaustive()
    }
}

/// A stream of TLS connections accepted on `listener`, for tonic's
/// `serve_with_incoming*`. Each handshake runs on its own task (a slow client holds up
/// no other); one that fails or times out is logged at WARN with the peer's address and
/// the reason (a wrong CA, no client certificate, plaintext) and dropped, so a refused
/// peer is visible on this side as well as on the dialler's.
pub fn incoming(
    listener: TcpListener,
    acceptor: Acceptor,
    link: &'static str,
) -> impl tokio_stream::Stream<Item = Result<TlsStream<TcpStream>, std::io::Error>> + Send + 'static
{
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    tokio::spawn(async move {
        loop {
            let (tcp, peer): (TcpStream, SocketAddr) = tokio::select! {
                () = tx.closed() => break,
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        tracing::warn!(link, error = %e, "accepting a {link} connection failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            let _ = tcp.set_nodelay(true);
            let acceptor = acceptor.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.0.accept(tcp)).await {
                    Ok(Ok(tls)) => {
                        let _ = tx.send(Ok(tls)).await;
                    }
                    Ok(Err(e)) => {
                        tracing::warn!(link, %peer, error = %e, "refused {link} connection from {peer}: TLS handshake failed: {e}");
                    }
                    Err(_) => {
                        tracing::warn!(link, %peer, "refused {link} connection from {peer}: no TLS handshake within {HANDSHAKE_TIMEOUT:?}");
                    }
                }
            });
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(rx)
}

/// The URL scheme for dialling with or without TLS.
pub fn scheme(tls: bool) -> &'static str {
    if tls { "https" } else { "http" }
}

/// How an agent dials its peers' ports (route mesh, zone cache): the group proof it
/// presents, and TLS when the group's peer ports use it.
#[derive(Debug, Clone)]
pub struct PeerDialer {
    pub auth: ClientAuth,
    pub tls: Option<ClientTlsConfig>,
}

impl PeerDialer {
    /// A dialler presenting `auth`, over TLS when `tls` is given.
    pub fn new(auth: ClientAuth, tls: Option<ClientTlsConfig>) -> Self {
        PeerDialer { auth, tls }
    }

    /// The endpoint of the peer port at `addr` (`host:port`).
    pub fn endpoint(&self, addr: &str) -> Result<Endpoint, tonic::transport::Error> {
        let endpoint = Endpoint::from_shared(format!("{}://{addr}", scheme(self.tls.is_some())))?;
        match &self.tls {
            Some(tls) => endpoint.tls_config(tls.clone()),
            None => Ok(endpoint),
        }
    }
}

/// The endpoint for one control-plane URL, with TLS when `tls` is given: the scheme
/// and the TLS settings must agree, so a plaintext link is never a silent fallback.
pub(crate) fn control_plane_endpoint(
    url: &str,
    tls: Option<&ClientTlsConfig>,
) -> Result<Endpoint, ClientError> {
    let endpoint = Endpoint::from_shared(url.to_owned()).map_err(|e| ClientError::BadUrl {
        url: url.to_owned(),
        reason: e.to_string(),
    })?;
    let https = url.starts_with("https://");
    match tls {
        Some(tls) if https => endpoint
            .tls_config(tls.clone())
            .map_err(|e| ClientError::BadUrl {
                url: url.to_owned(),
                reason: error_chain(&e),
            }),
        Some(_) => Err(ClientError::TlsWithHttp {
            url: url.to_owned(),
        }),
        None if https => Err(ClientError::HttpsWithoutTls {
            url: url.to_owned(),
        }),
        None => Ok(endpoint),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn missing_and_non_pem_files_are_named() {
        let dir = std::env::temp_dir().join(format!("cp-client-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let junk = dir.join("junk.pem");
        std::fs::write(&junk, "not a certificate").unwrap();
        let client = ClientTls {
            ca: junk.clone(),
            identity: None,
            server_name: None,
        };
        let e = client.load().unwrap_err().to_string();
        assert!(
            e.contains("junk.pem") && e.contains("no PEM CERTIFICATE"),
            "{e}"
        );
        let server = ServerTls {
            identity: CertKey {
                cert: dir.join("absent.pem"),
                key: junk,
            },
            client_ca: None,
        };
        let e = server.acceptor().unwrap_err().to_string();
        assert!(
            e.contains("cannot read certificate") && e.contains("absent.pem"),
            "{e}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
