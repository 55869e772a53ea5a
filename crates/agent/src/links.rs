//! TLS of the internal links, from the validated settings to what the clients and
//! servers take: the agent's dial to the control plane, its peer port, and the
//! control-plane process's listener and replica links. A file that cannot be used
//! stops the process at start-up, naming it.

use anyhow::Context;
use infinistream_config::LinkTls;
use infinistream_cp_client::tls::{Acceptor, CertKey, ClientTls, ServerTls};
use infinistream_peer::PeerTls;
use tonic::transport::ClientTlsConfig;

fn identity(tls: &LinkTls) -> Option<CertKey> {
    tls.identity.as_ref().map(|(cert, key)| CertKey {
        cert: cert.clone(),
        key: key.clone(),
    })
}

/// How the dialling side checks the server: the CA, its own certificate when it has
/// one, the name to check. `what` names the link in the error.
pub fn client(tls: &LinkTls, what: &str) -> anyhow::Result<Option<ClientTlsConfig>> {
    let Some(ca) = &tls.ca else {
        return Ok(None);
    };
    ClientTls {
        ca: ca.clone(),
        identity: identity(tls),
        server_name: tls.server_name.clone(),
    }
    .load()
    .map(Some)
    .with_context(|| format!("TLS of the {what}"))
}

/// The serving side: its certificate, and the CA client certificates must chain to
/// when it demands them.
pub fn server(tls: &LinkTls, what: &str) -> anyhow::Result<Option<Acceptor>> {
    let Some(identity) = identity(tls) else {
        return Ok(None);
    };
    ServerTls {
        identity,
        client_ca: tls.verify_clients.then(|| tls.ca.clone()).flatten(),
    }
    .acceptor()
    .map(Some)
    .with_context(|| format!("TLS of the {what}"))
}

/// The peer port's TLS: served and dialled with the same files.
pub fn peer(tls: Option<&LinkTls>) -> anyhow::Result<Option<PeerTls>> {
    let Some(tls) = tls else {
        return Ok(None);
    };
    match (server(tls, "peer port")?, client(tls, "peer port")?) {
        (Some(server), Some(client)) => Ok(Some(PeerTls { server, client })),
        _ => anyhow::bail!(
            "TLS of the peer port needs INFINISTREAM_PEER_TLS_CERT, _KEY and _CA together"
        ),
    }
}
