//! TLS on the client listener, driven by async-nats with certificates made for the
//! test (a CA, a server certificate for 127.0.0.1, a client certificate): INFO in the
//! clear then TLS (the default), TLS first, client certificates required, and plain
//! or untrusting clients refused.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{EVENTUALLY, TestBroker};
use futures::StreamExt;
use infinistream_broker::{BrokerConfig, Tls};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use tokio::io::AsyncReadExt;
use tokio::time::timeout;

/// PEM files of a CA, a server certificate for 127.0.0.1 and a client certificate,
/// both signed by the CA.
struct Pki {
    _dir: tempfile::TempDir,
    ca: PathBuf,
    server_cert: PathBuf,
    server_key: PathBuf,
    client_cert: PathBuf,
    client_key: PathBuf,
}

fn pki() -> Pki {
    // A workspace build links rustls with ring and aws-lc-rs (feature unification), as
    // the agent binary does (its main picks ring the same way): async-nats' TLS client
    // asks for the process default provider.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().expect("tempdir");
    let write = |name: &str, pem: String| {
        let path = dir.path().join(name);
        std::fs::write(&path, pem).expect("write pem");
        path
    };
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_key = KeyPair::generate().expect("ca key");
    let ca_cert = ca_params.self_signed(&ca_key).expect("ca cert");
    let issuer = Issuer::new(ca_params, ca_key);
    let server_key = KeyPair::generate().expect("server key");
    let server_cert = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
        .expect("server params")
        .signed_by(&server_key, &issuer)
        .expect("server cert");
    let client_key = KeyPair::generate().expect("client key");
    let client_cert = CertificateParams::new(vec!["client.test".to_owned()])
        .expect("client params")
        .signed_by(&client_key, &issuer)
        .expect("client cert");
    Pki {
        ca: write("ca.pem", ca_cert.pem()),
        server_cert: write("server.pem", server_cert.pem()),
        server_key: write("server-key.pem", server_key.serialize_pem()),
        client_cert: write("client.pem", client_cert.pem()),
        client_key: write("client-key.pem", client_key.serialize_pem()),
        _dir: dir,
    }
}

async fn tls_broker(pki: &Pki, client_ca: Option<&Path>, handshake_first: bool) -> TestBroker {
    let mut tls = Tls::from_pem_files(&pki.server_cert, &pki.server_key, client_ca).expect("tls");
    tls.handshake_first = handshake_first;
    TestBroker::start(BrokerConfig {
        tls: Some(tls),
        ..BrokerConfig::default()
    })
    .await
}

async fn round_trip(client: &async_nats::Client) {
    let mut sub = client.subscribe("secure.greeting").await.expect("sub");
    client.flush().await.expect("flush");
    client
        .publish("secure.greeting", "hello".into())
        .await
        .expect("pub");
    let msg = timeout(EVENTUALLY, sub.next())
        .await
        .expect("in time")
        .expect("open");
    assert_eq!(&msg.payload[..], b"hello");
}

#[tokio::test]
async fn tls_after_a_clear_info_carries_pub_sub() {
    let pki = pki();
    let tb = tls_broker(&pki, None, false).await;
    let client = async_nats::ConnectOptions::new()
        .add_root_certificates(pki.ca.clone())
        .require_tls(true)
        .connect(tb.url())
        .await
        .expect("TLS connect");
    round_trip(&client).await;
}

#[tokio::test]
async fn tls_first_clients_are_served_when_configured() {
    let pki = pki();
    let tb = tls_broker(&pki, None, true).await;
    let client = async_nats::ConnectOptions::new()
        .add_root_certificates(pki.ca.clone())
        .tls_first()
        .connect(tb.url())
        .await
        .expect("TLS-first connect");
    round_trip(&client).await;
}

#[tokio::test]
async fn a_plain_client_gets_no_further_than_info() {
    let pki = pki();
    let tb = tls_broker(&pki, None, false).await;
    let mut raw = tokio::net::TcpStream::connect(tb.addr).await.expect("tcp");
    // INFO comes in the clear and says TLS is required.
    let mut buf = vec![0u8; 4096];
    let n = timeout(EVENTUALLY, raw.read(&mut buf))
        .await
        .expect("info in time")
        .expect("read");
    let info = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(info.starts_with("INFO "), "{info}");
    assert!(info.contains("\"tls_required\":true"), "{info}");
    // A plain CONNECT is not a TLS ClientHello: the connection is closed.
    use tokio::io::AsyncWriteExt;
    raw.write_all(b"CONNECT {\"verbose\":false}\r\nPING\r\n")
        .await
        .expect("write");
    let mut rest = Vec::new();
    let closed = timeout(EVENTUALLY, raw.read_to_end(&mut rest))
        .await
        .expect("closed in time");
    assert!(closed.is_err() || !String::from_utf8_lossy(&rest).contains("PONG"));
    // A client that does not trust the server's certificate fails to connect.
    let untrusting = async_nats::ConnectOptions::new()
        .require_tls(true)
        .connection_timeout(Duration::from_secs(2))
        .connect(tb.url());
    let attempt = timeout(EVENTUALLY, untrusting).await.expect("attempt ends");
    assert!(attempt.is_err(), "an unknown CA is refused by the client");
}

#[tokio::test]
async fn client_certificates_are_required_when_a_client_ca_is_set() {
    let pki = pki();
    let tb = tls_broker(&pki, Some(&pki.ca), false).await;
    let with_cert = async_nats::ConnectOptions::new()
        .add_root_certificates(pki.ca.clone())
        .add_client_certificate(pki.client_cert.clone(), pki.client_key.clone())
        .require_tls(true)
        .connect(tb.url())
        .await
        .expect("mutual TLS connect");
    round_trip(&with_cert).await;
    let without = async_nats::ConnectOptions::new()
        .add_root_certificates(pki.ca.clone())
        .require_tls(true)
        .connection_timeout(Duration::from_secs(2))
        .connect(tb.url());
    let refused = timeout(EVENTUALLY, without).await.expect("attempt ends");
    assert!(
        refused.is_err(),
        "a client without a certificate is refused"
    );
}

#[test]
fn unreadable_or_empty_pem_files_are_clear_errors() {
    let pki = pki();
    let missing = pki.ca.with_file_name("missing.pem");
    let err = Tls::from_pem_files(&missing, &pki.server_key, None).expect_err("missing cert");
    assert!(err.to_string().contains("missing.pem"), "{err}");
    let empty = pki.ca.with_file_name("empty.pem");
    std::fs::write(&empty, "").expect("write");
    let err = Tls::from_pem_files(&empty, &pki.server_key, None).expect_err("empty cert");
    assert!(
        err.to_string().contains("holds no PEM certificate"),
        "{err}"
    );
    let err = Tls::from_pem_files(&pki.server_cert, &pki.client_key, None)
        .expect_err("key of another certificate");
    assert!(err.to_string().contains("certificate and key"), "{err}");
    let err =
        Tls::from_pem_files(&pki.server_cert, &pki.server_key, Some(&empty)).expect_err("empty CA");
    assert!(err.to_string().contains("client CA"), "{err}");
}
