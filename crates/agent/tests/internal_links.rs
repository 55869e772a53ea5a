//! Issue 19 item 6, the internal links: TLS and mTLS on the control-plane gRPC and on
//! the peer port, strangers refused, the group key never on the wire, and no secret
//! in the logs or the monitoring pages.
//!
//! The wire checks record every byte through loopback proxies. HTTP/2 sends header
//! values Huffman-coded (HPACK), so a plain substring search would find nothing even
//! for a bearer key: [`holds_key`] also searches the Huffman form at every bit
//! alignment, and a control (a client sending the key the old way, as a bearer
//! token) proves the search finds a key that is there.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use infinistream_agent::AgentHandle;
use infinistream_config::{RawAgentConfig, RolesValue};
use infinistream_control_plane::store::memory::MemoryStore;
use infinistream_control_plane::{ControlPlane, ControlPlaneClient, GroupKeys};
use infinistream_cp_client::tls::{Acceptor, CertKey, ClientTls, PeerDialer, ServerTls};
use infinistream_cp_client::{CallError, ClientAuth};
use infinistream_proto::v1;
use infinistream_runtime::CancellationToken;
use infinistream_types::SystemClock;
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

#[path = "support/in_process.rs"]
mod in_process;

const GROUP: &str = "team";
/// Only characters with 5-bit HPACK Huffman codes (see [`huffman_patterns`]).
const KEY: &str = "coastiest0120tacos";
const CLIENT_TOKEN: &str = "client-token-7Q9Z";
/// Bound for "this should happen"; never a timing assertion.
const EVENTUALLY: Duration = Duration::from_secs(60);

// ---- certificates -------------------------------------------------------------------

struct Pki {
    ca: PathBuf,
    /// The control plane's certificate (localhost, 127.0.0.1).
    cp: (PathBuf, PathBuf),
    /// The agents' certificate: their peer port's, and their client one.
    agent: (PathBuf, PathBuf),
    /// A CA nobody trusts, and a certificate it signed.
    rogue_ca: PathBuf,
    rogue: (PathBuf, PathBuf),
}

fn pki(dir: &Path) -> Pki {
    let pem = |name: &str, text: String| {
        let path = dir.join(name);
        std::fs::write(&path, text).expect("write pem");
        path
    };
    let authority = |stem: &str| {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let key = KeyPair::generate().expect("key");
        let path = pem(
            &format!("{stem}.pem"),
            params.self_signed(&key).expect("ca").pem(),
        );
        (path, Issuer::new(params, key))
    };
    let signed = |issuer: &Issuer<'_, KeyPair>, names: &[&str], stem: &str| {
        let key = KeyPair::generate().expect("key");
        let cert =
            CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>())
                .expect("params")
                .signed_by(&key, issuer)
                .expect("signed");
        (
            pem(&format!("{stem}.pem"), cert.pem()),
            pem(&format!("{stem}-key.pem"), key.serialize_pem()),
        )
    };
    let (ca, issuer) = authority("ca");
    let (rogue_ca, rogue_issuer) = authority("rogue-ca");
    let loopback = ["localhost", "127.0.0.1", "127.0.0.2", "127.0.0.3"];
    Pki {
        cp: signed(&issuer, &loopback, "cp"),
        agent: signed(&issuer, &loopback, "agent"),
        rogue: signed(&rogue_issuer, &loopback, "rogue"),
        ca,
        rogue_ca,
    }
}

fn client_tls(
    ca: &Path,
    identity: Option<&(PathBuf, PathBuf)>,
) -> tonic::transport::ClientTlsConfig {
    ClientTls {
        ca: ca.to_path_buf(),
        identity: identity.map(|(cert, key)| CertKey {
            cert: cert.clone(),
            key: key.clone(),
        }),
        server_name: None,
    }
    .load()
    .expect("client tls")
}

// ---- the recording proxy and the key search ----------------------------------------

/// A loopback TCP proxy that keeps every byte it forwards, both ways.
#[derive(Clone)]
struct Recorder {
    addr: SocketAddr,
    bytes: Arc<Mutex<Vec<u8>>>,
}

impl Recorder {
    async fn start(listen: &str, target: SocketAddr) -> Recorder {
        let listener = TcpListener::bind(listen).await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        let bytes = Arc::new(Mutex::new(Vec::new()));
        let log = bytes.clone();
        tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let log = log.clone();
                tokio::spawn(async move {
                    let Ok(outbound) = TcpStream::connect(target).await else {
                        return;
                    };
                    let (ri, wi) = inbound.into_split();
                    let (ro, wo) = outbound.into_split();
                    tokio::join!(pump(ri, wo, log.clone()), pump(ro, wi, log));
                });
            }
        });
        Recorder { addr, bytes }
    }

    fn captured(&self) -> Vec<u8> {
        self.bytes.lock().expect("capture").clone()
    }
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    log: Arc<Mutex<Vec<u8>>>,
) {
    use tokio::io::AsyncReadExt;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                log.lock().expect("capture").extend_from_slice(&buf[..n]);
                if to.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown().await;
}

/// The HPACK Huffman form of `key` (RFC 7541 Appendix B: `0 1 2 a c e i o s t` have the
/// 5-bit codes 0..=9), as the whole bytes it yields at each of the 8 bit alignments.
fn huffman_patterns(key: &str) -> Vec<Vec<u8>> {
    let code = |c: char| "012aceiost".find(c).expect("a 5-bit Huffman character") as u8;
    let bits: Vec<u8> = key
        .chars()
        .flat_map(|c| (0..5).rev().map(move |i| (code(c) >> i) & 1))
        .collect();
    (0..8)
        .map(|first| {
            bits[(8 - first) % 8..]
                .chunks_exact(8)
                .map(|byte| byte.iter().fold(0u8, |acc, bit| acc << 1 | bit))
                .collect()
        })
        .collect()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// Whether `capture` holds `key`, literally or Huffman-coded.
fn holds_key(capture: &[u8], key: &str) -> bool {
    contains(capture, key.as_bytes())
        || huffman_patterns(key)
            .iter()
            .any(|pattern| contains(capture, pattern))
}

// ---- the control plane, the agents, the logs ----------------------------------------

async fn served_control_plane(tls: Option<Acceptor>) -> (SocketAddr, CancellationToken) {
    let groups = GroupKeys::new([(GROUP, KEY)]).expect("groups");
    let cp = ControlPlane::open(Arc::new(MemoryStore::new()), groups, Arc::new(SystemClock))
        .await
        .expect("control plane");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let stop = CancellationToken::new();
    let until = stop.clone();
    tokio::spawn(async move {
        let _ = infinistream_control_plane::serve_with(&cp, listener, tls, until.cancelled_owned())
            .await;
    });
    (addr, stop)
}

/// A free port on 127.0.0.1 (the peer proxies listen on the same port at another
/// loopback address, which the agent advertises).
async fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    l.local_addr().expect("addr").port()
}

struct AgentSpec {
    dir: PathBuf,
    bucket: String,
    control_plane: String,
    peer_port: u16,
    advertise: &'static str,
    /// CA and the agent's certificate: mTLS to the control plane and on the peer port.
    tls: Option<(PathBuf, (PathBuf, PathBuf))>,
}

async fn agent(spec: AgentSpec) -> AgentHandle {
    let verify = spec.tls.is_some().then_some(true);
    let (ca, identity) = spec.tls.unzip();
    let (cert, key) = identity.unzip();
    let config = RawAgentConfig {
        cp_tls_ca: ca.clone(),
        cp_tls_cert: cert.clone(),
        cp_tls_key: key.clone(),
        peer_tls_ca: ca,
        peer_tls_cert: cert,
        peer_tls_key: key,
        peer_tls_verify: verify,
        group_id: Some(GROUP.into()),
        group_key: Some(KEY.into()),
        control_plane: Some(spec.control_plane),
        bucket: Some(spec.bucket),
        peer_port: Some(spec.peer_port),
        client_advertise: Some(spec.advertise.to_owned()),
        roles: Some(RolesValue::List("proxy,jobs".into())),
        token: Some(CLIENT_TOKEN.into()),
        ..in_process::local(&spec.dir)
    }
    .validate()
    .expect("valid config");
    in_process::start_config(config).await
}

/// Everything the test binary logs, at the level a normal run uses.
fn capture_logs() -> Arc<Mutex<Vec<u8>>> {
    #[derive(Clone)]
    struct Sink(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("log sink").extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let sink = Sink(Arc::new(Mutex::new(Vec::new())));
    let writer = sink.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("info"))
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    tracing::subscriber::set_global_default(subscriber).expect("one subscriber per test process");
    sink.0
}

async fn nats(agent: &AgentHandle) -> async_nats::Client {
    async_nats::ConnectOptions::with_token(CLIENT_TOKEN.into())
        .connect(format!("nats://{}", agent.client_addr()))
        .await
        .expect("client connects")
}

/// A message published on `a` reaches a subscriber on `b` (over the route mesh), and a
/// JetStream publish on `a` is acknowledged (a commit through the control plane).
async fn traffic_flows(a: &AgentHandle, b: &AgentHandle) {
    let (ca, cb) = (nats(a).await, nats(b).await);
    let mut sub = cb.subscribe("mesh.check").await.expect("subscribe");
    cb.flush().await.expect("flush");
    tokio::time::timeout(EVENTUALLY, async {
        loop {
            ca.publish("mesh.check", "over the route".into())
                .await
                .expect("publish");
            ca.flush().await.expect("flush");
            // The route and the peer's interest may still be on their way: publish again.
            if let Ok(Some(msg)) =
                tokio::time::timeout(Duration::from_millis(200), sub.next()).await
            {
                assert_eq!(&msg.payload[..], b"over the route");
                return;
            }
        }
    })
    .await
    .expect("a message crosses the route mesh");
    let js = async_nats::jetstream::new(ca);
    js.create_stream(async_nats::jetstream::stream::Config {
        name: "LINKS".into(),
        subjects: vec!["links.>".into()],
        ..Default::default()
    })
    .await
    .expect("create stream");
    let ack = js
        .publish("links.one", "committed".into())
        .await
        .expect("publish")
        .await
        .expect("acked");
    assert_eq!(ack.sequence, 1);
}

/// A raw control-plane call with the group key as a bearer token, as before proofs.
async fn bearer_call(url: &str) -> tonic::Status {
    let channel = tonic::transport::Endpoint::from_shared(url.to_owned())
        .expect("url")
        .connect()
        .await
        .expect("connect");
    let mut client = v1::streams_client::StreamsClient::with_interceptor(
        channel,
        |mut req: tonic::Request<()>| {
            req.metadata_mut()
                .insert("x-infinistream-group", GROUP.parse().expect("ascii"));
            req.metadata_mut().insert(
                "authorization",
                format!("Bearer {KEY}").parse().expect("ascii"),
            );
            Ok(req)
        },
    );
    client
        .list_streams(v1::ListStreamsRequest::default())
        .await
        .expect_err("bearer keys are refused")
}

async fn list_streams(client: &mut ControlPlaneClient) -> Result<(), CallError> {
    client.list_streams("").await.map(drop)
}

fn assert_no_secrets(what: &str, text: &[u8]) {
    for secret in [KEY, CLIENT_TOKEN] {
        assert!(
            !contains(text, secret.as_bytes()),
            "{what} holds `{secret}`"
        );
    }
}

// ---- the tests ----------------------------------------------------------------------

/// Plaintext links: agents work through recording proxies (control plane and both peer
/// ports), and no capture holds the group key; the same search finds the key in a
/// capture of the old bearer scheme.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn plaintext_links_never_carry_the_group_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cp_addr, stop) = served_control_plane(None).await;

    // The control: the key as a bearer token is on the wire, and found there.
    let control = Recorder::start("127.0.0.1:0", cp_addr).await;
    let refused = bearer_call(&format!("http://{}", control.addr)).await;
    assert_eq!(refused.code(), tonic::Code::Unauthenticated);
    assert!(
        refused.message().contains("bearer"),
        "{}",
        refused.message()
    );
    assert!(
        holds_key(&control.captured(), KEY),
        "the search finds a bearer key on the wire"
    );

    let cp_proxy = Recorder::start("127.0.0.1:0", cp_addr).await;
    let bucket = format!("file://{}", dir.path().join("bucket").display());
    let (pa, pb) = (free_port().await, free_port().await);
    let peer_a = Recorder::start(
        &format!("127.0.0.2:{pa}"),
        format!("127.0.0.1:{pa}").parse().expect("addr"),
    )
    .await;
    let peer_b = Recorder::start(
        &format!("127.0.0.3:{pb}"),
        format!("127.0.0.1:{pb}").parse().expect("addr"),
    )
    .await;
    let spec = |name: &str, port, advertise| AgentSpec {
        dir: dir.path().join(name),
        bucket: bucket.clone(),
        control_plane: format!("http://{}", cp_proxy.addr),
        peer_port: port,
        advertise,
        tls: None,
    };
    let a = agent(spec("a", pa, "127.0.0.2")).await;
    let b = agent(spec("b", pb, "127.0.0.3")).await;
    traffic_flows(&a, &b).await;

    let peers = [peer_a.captured(), peer_b.captured()].concat();
    assert!(
        !peers.is_empty(),
        "the route mesh went through the peer proxies"
    );
    assert!(!cp_proxy.captured().is_empty());
    assert!(
        !holds_key(&cp_proxy.captured(), KEY),
        "control-plane traffic holds the key"
    );
    assert!(!holds_key(&peers, KEY), "peer traffic holds the key");
    a.stop();
    b.stop();
    stop.cancel();
}

/// TLS with client certificates on the control plane and the peer port: two agents
/// work; a client without a certificate, with one from another CA, trusting another
/// CA, speaking plaintext, or with the wrong key is refused. Logs (control plane and
/// agents, one process) and `/varz` / `/connz` hold no secret.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mtls_links_work_refuse_strangers_and_log_no_secret() {
    let logs = capture_logs();
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = pki(dir.path());
    let acceptor = ServerTls {
        identity: CertKey {
            cert: pki.cp.0.clone(),
            key: pki.cp.1.clone(),
        },
        client_ca: Some(pki.ca.clone()),
    }
    .acceptor()
    .expect("server tls");
    let (cp_addr, stop) = served_control_plane(Some(acceptor)).await;
    let url = format!("https://127.0.0.1:{}", cp_addr.port());

    let bucket = format!("file://{}", dir.path().join("bucket").display());
    let pa = free_port().await;
    let spec = |name: &str, peer_port| AgentSpec {
        dir: dir.path().join(name),
        bucket: bucket.clone(),
        control_plane: url.clone(),
        peer_port,
        advertise: "127.0.0.1",
        tls: Some((pki.ca.clone(), pki.agent.clone())),
    };
    let a = agent(spec("a", pa)).await;
    let b = agent(spec("b", 0)).await;
    traffic_flows(&a, &b).await;

    // The peer port: the group's certificate and key get an answer (a refused empty
    // range); a wrong key gets Unauthenticated; strangers do not get through TLS.
    let peer = format!("127.0.0.1:{pa}");
    let answer = get_range(&peer, KEY, client_tls(&pki.ca, Some(&pki.agent))).await;
    assert_eq!(answer.code(), tonic::Code::InvalidArgument, "{answer:?}");
    let answer = get_range(&peer, "not-the-key", client_tls(&pki.ca, Some(&pki.agent))).await;
    assert_eq!(answer.code(), tonic::Code::Unauthenticated, "{answer:?}");
    for (what, tls) in [
        ("no client certificate", client_tls(&pki.ca, None)),
        (
            "a certificate from another CA",
            client_tls(&pki.ca, Some(&pki.rogue)),
        ),
        (
            "trusting another CA",
            client_tls(&pki.rogue_ca, Some(&pki.agent)),
        ),
    ] {
        let answer = get_range(&peer, KEY, tls).await;
        assert!(
            !matches!(
                answer.code(),
                tonic::Code::InvalidArgument | tonic::Code::Unauthenticated
            ),
            "a peer with {what} is refused in TLS: {answer:?}"
        );
    }

    // The right CA, certificate and key: served.
    let ok = client_tls(&pki.ca, Some(&pki.agent));
    let mut good = ControlPlaneClient::connect_with(&url, GROUP, KEY, Some(&ok))
        .await
        .expect("connect");
    list_streams(&mut good).await.expect("served");
    // The wrong key over good TLS: refused by the proof check.
    let mut wrong = ControlPlaneClient::connect_with(&url, GROUP, "not-the-key", Some(&ok))
        .await
        .expect("connect");
    let status = list_streams(&mut wrong).await.expect_err("wrong key");
    assert_eq!(status.code(), Some(tonic::Code::Unauthenticated));
    assert_eq!(status.message(), format!("wrong key for group `{GROUP}`"));
    // No client certificate, one from another CA, trusting another CA: refused in TLS.
    for (what, tls) in [
        ("no client certificate", client_tls(&pki.ca, None)),
        (
            "a certificate from another CA",
            client_tls(&pki.ca, Some(&pki.rogue)),
        ),
        (
            "trusting another CA",
            client_tls(&pki.rogue_ca, Some(&pki.agent)),
        ),
    ] {
        let refused = match ControlPlaneClient::connect_with(&url, GROUP, KEY, Some(&tls)).await {
            Err(_) => true,
            Ok(mut client) => list_streams(&mut client).await.is_err(),
        };
        assert!(refused, "a client with {what} is refused");
    }
    // Plaintext to the TLS port.
    let plain = format!("http://127.0.0.1:{}", cp_addr.port());
    let refused = match ControlPlaneClient::connect(&plain, GROUP, KEY).await {
        Err(_) => true,
        Ok(mut client) => list_streams(&mut client).await.is_err(),
    };
    assert!(refused, "plaintext to a TLS control plane is refused");

    // The monitoring pages hold no secret either.
    for path in ["/varz", "/connz"] {
        let body = reqwest_free_get(a.http_addr(), path).await;
        assert_no_secrets(path, body.as_bytes());
    }
    a.stop();
    b.stop();
    stop.cancel();

    let logs = logs.lock().expect("logs").clone();
    let text = String::from_utf8_lossy(&logs);
    assert!(
        text.contains("control plane reached"),
        "the agents' logs were captured"
    );
    assert!(
        text.contains("refused control plane connection from"),
        "the control plane logs the refused TLS clients: {text}"
    );
    assert!(
        text.contains("refused peer port connection from"),
        "the peer port logs the refused TLS peers"
    );
    assert!(
        text.contains("wrong key for group"),
        "the control plane and the peer port log the wrong key"
    );
    assert_no_secrets("the logs", &logs);
}

/// A zone-cache `GetRange` for an empty range on the peer port at `addr`, dialled with
/// `key` over `tls`: its refusal (a transport error is `Unavailable`/`Unknown`).
async fn get_range(addr: &str, key: &str, tls: tonic::transport::ClientTlsConfig) -> tonic::Status {
    let dialer = PeerDialer::new(ClientAuth::new(GROUP, key).expect("auth"), Some(tls));
    let channel = match dialer.endpoint(addr).expect("endpoint").connect().await {
        Ok(channel) => channel,
        Err(e) => return tonic::Status::unavailable(e.to_string()),
    };
    v1::zone_cache_client::ZoneCacheClient::with_interceptor(channel, dialer.auth.clone())
        .get_range(v1::GetRangeRequest::default())
        .await
        .expect_err("an empty range is refused")
}

/// `GET path` on the monitoring port, without an HTTP client crate.
async fn reqwest_free_get(addr: SocketAddr, path: &str) -> String {
    use tokio::io::AsyncReadExt;
    let mut s = TcpStream::connect(addr).await.expect("connect monitoring");
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .expect("request");
    let mut out = String::new();
    s.read_to_string(&mut out).await.expect("response");
    out
}
