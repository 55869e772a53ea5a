//! Replicas over etcd with mTLS on the control-plane port: a client (with the group's
//! certificate) is answered by every replica, so the followers forward to the leader
//! over TLS too (the leader accepts nothing else); a client without a certificate is
//! refused.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use infinistream_control_plane::leader::{ReplicaOptions, serve_replica};
use infinistream_control_plane::store::etcd::EtcdStore;
use infinistream_control_plane::{ControlPlaneClient, GroupKeys, Options};
use infinistream_cp_client::tls::{CertKey, ClientTls, ServerTls};
use infinistream_proto::v1;
use infinistream_testkit::etcd::EtcdServer;
use infinistream_types::{SharedClock, SystemClock};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};

type TestResult = Result<(), Box<dyn std::error::Error>>;

const GROUP: &str = "team-a";
const KEY: &str = "key-a";
/// Bound on attempts while no leader is elected yet (no timing assertion).
const MAX_ATTEMPTS: usize = 600;

struct Pki {
    ca: std::path::PathBuf,
    cert: CertKey,
}

fn pki(dir: &Path) -> Result<Pki, Box<dyn std::error::Error>> {
    let write = |name: &str, text: String| -> std::io::Result<std::path::PathBuf> {
        let path = dir.join(name);
        std::fs::write(&path, text)?;
        Ok(path)
    };
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_key = KeyPair::generate()?;
    let ca = write("ca.pem", ca_params.self_signed(&ca_key)?.pem())?;
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate()?;
    let cert = CertificateParams::new(vec!["127.0.0.1".to_owned()])?.signed_by(&key, &issuer)?;
    Ok(Pki {
        ca,
        cert: CertKey {
            cert: write("cp.pem", cert.pem())?,
            key: write("cp-key.pem", key.serialize_pem())?,
        },
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_serve_and_forward_over_mtls() -> TestResult {
    let etcd = EtcdServer::shared()?;
    let dir = tempfile::tempdir()?;
    let pki = pki(dir.path())?;
    let client_tls = |identity: bool| {
        ClientTls {
            ca: pki.ca.clone(),
            identity: identity.then(|| pki.cert.clone()),
            server_name: None,
        }
        .load()
    };
    let mut urls = Vec::new();
    let stop = stop_signal();
    for _ in 0..2 {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?.to_string();
        urls.push(format!("https://{address}"));
        let replica = ReplicaOptions {
            ttl: Duration::from_secs(2),
            tls: Some(
                ServerTls {
                    identity: pki.cert.clone(),
                    client_ca: Some(pki.ca.clone()),
                }
                .acceptor()?,
            ),
            client_tls: Some(client_tls(true)?),
            ..ReplicaOptions::new(address)
        };
        let store = EtcdStore::connect(&[etcd.endpoint()], etcd.prefix()).await?;
        let groups = GroupKeys::new([(GROUP, KEY)])?;
        let clock: SharedClock = Arc::new(SystemClock);
        let mut stopped = stop.subscribe();
        tokio::spawn(async move {
            let shutdown = async move {
                let _ = stopped.recv().await;
            };
            serve_replica(
                store,
                groups,
                clock,
                Options::default(),
                replica,
                listener,
                shutdown,
            )
            .await
        });
    }
    let tls = client_tls(true)?;
    for url in &urls {
        let mut answered = None;
        for _ in 0..MAX_ATTEMPTS {
            let client = ControlPlaneClient::connect_with(url, GROUP, KEY, Some(&tls)).await?;
            match client
                .raw_streams()
                .clone()
                .list_streams(v1::ListStreamsRequest::default())
                .await
            {
                Ok(reply) => {
                    answered = Some(reply.into_inner());
                    break;
                }
                // No leader yet (or the follower has not learnt it): retry.
                Err(status) if status.code() == tonic::Code::Unavailable => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(status) => return Err(format!("{url}: {status}").into()),
            }
        }
        assert!(
            answered.is_some(),
            "{url} answers over mTLS (led or forwarded)"
        );
    }
    // Without a client certificate: refused.
    let bare = client_tls(false)?;
    for url in &urls {
        let refused = match ControlPlaneClient::connect_with(url, GROUP, KEY, Some(&bare)).await {
            Err(_) => true,
            Ok(client) => client
                .raw_streams()
                .clone()
                .list_streams(v1::ListStreamsRequest::default())
                .await
                .is_err(),
        };
        assert!(refused, "{url} refuses a client without a certificate");
    }
    let _ = stop.send(());
    Ok(())
}

/// A shutdown signal every replica listens to.
fn stop_signal() -> tokio::sync::broadcast::Sender<()> {
    tokio::sync::broadcast::channel(1).0
}
