//! Users, permissions and NKeys (issue 19): every answer compared with nats-server
//! 2.15.1 configured the same way, plus the flows users build on them (a service
//! answering under `allow_responses`, a worker allowed one JetStream consumer only,
//! NKey sign-in, a reload that changes one user's permissions, a reload that replaces
//! the client TLS certificate without dropping connections).

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};
use infinistream_agent::AgentHandle;
use infinistream_config::{RawAgentConfig, RolesValue};
use infinistream_runtime::CancellationToken;
use infinistream_testkit::nats::NatsServer;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

#[path = "support/in_process.rs"]
mod in_process;
#[path = "support/py_client.rs"]
mod py_client;

/// The same users in the agent's TOML and in nats-server's configuration.
const USERS_TOML: &str = r#"
[[users]]
user = "pub"
password = "pub-secret-1"
[users.permissions]
publish = { allow = ["orders.>", "$JS.API.>"], deny = ["orders.secret"] }
subscribe = { allow = ["foo.*", "_INBOX.>", "orders.>"], deny = ["foo.secret", "orders.secret"] }

[[users]]
user = "svc"
password = "svc-secret-2"
permissions = { subscribe = ["svc.>"], allow_responses = true }

[[users]]
user = "worker"
password = "worker-secret-3"
[users.permissions]
publish = ["$JS.API.CONSUMER.MSG.NEXT.ORDERS.worker", "$JS.ACK.ORDERS.worker.>"]
subscribe = ["_INBOX.>"]

[[users]]
user = "admin"
# bcrypt of "admin-secret-4" (cost 4)
password = "$2b$04$OpA.AITopyr9brYHvADQSeOEQ1n/fsiJXK50PAqhcRw0fdDoP9IHu"
"#;

const USERS_NATS_CONF: &str = r#"
authorization {
  users = [
    {user: pub, password: "pub-secret-1", permissions: {
      publish: {allow: ["orders.>", "$JS.API.>"], deny: ["orders.secret"]},
      subscribe: {allow: ["foo.*", "_INBOX.>", "orders.>"], deny: ["foo.secret", "orders.secret"]}}}
    {user: svc, password: "svc-secret-2", permissions: {subscribe: ["svc.>"], allow_responses: true}}
    {user: worker, password: "worker-secret-3", permissions: {
      publish: ["$JS.API.CONSUMER.MSG.NEXT.ORDERS.worker", "$JS.ACK.ORDERS.worker.>"],
      subscribe: ["_INBOX.>"]}}
    {user: admin, password: "$2b$04$OpA.AITopyr9brYHvADQSeOEQ1n/fsiJXK50PAqhcRw0fdDoP9IHu"}
  ]
}
"#;

async fn start_agent(
    dir: &tempfile::TempDir,
    users_toml: &str,
) -> (AgentHandle, std::path::PathBuf, RawAgentConfig) {
    let file = dir.path().join("agent.toml");
    std::fs::write(&file, users_toml).expect("write config");
    let flags = RawAgentConfig {
        host: Some("127.0.0.1".into()),
        port: Some(0),
        http_port: Some(0),
        data_dir: Some(dir.path().join("data")),
        roles: Some(RolesValue::List("proxy,jobs".into())),
        server_name: Some("security-test".into()),
        ..Default::default()
    };
    let config = infinistream_config::load_agent(Some(&file), &flags).expect("valid config");
    let agent = AgentHandle::start(config, CancellationToken::new())
        .await
        .expect("agent starts");
    (agent, file, flags)
}

/// A raw protocol session: what a client sees, line by line.
struct Raw {
    rd: BufReader<tokio::net::tcp::OwnedReadHalf>,
    wr: tokio::net::tcp::OwnedWriteHalf,
    info: serde_json::Value,
}

impl Raw {
    /// Connects and reads `INFO` (nothing sent yet).
    async fn open(addr: &str) -> anyhow::Result<Raw> {
        let stream = TcpStream::connect(addr).await?;
        let (rd, wr) = stream.into_split();
        let mut rd = BufReader::new(rd);
        let mut line = String::new();
        rd.read_line(&mut line).await?;
        let info = line
            .strip_prefix("INFO ")
            .context("INFO first")?
            .trim()
            .parse()?;
        Ok(Raw { rd, wr, info })
    }

    async fn connect(addr: &str, connect: serde_json::Value) -> anyhow::Result<(Raw, Vec<String>)> {
        let mut raw = Raw::open(addr).await?;
        let answer = raw.exchange(&format!("CONNECT {connect}\r\n")).await?;
        Ok((raw, answer))
    }

    /// Reads until the server closes the connection (sends nothing: data sent to a
    /// closed socket can reset it before what the server said was read).
    async fn until_closed(&mut self) -> anyhow::Result<Vec<String>> {
        let mut out = Vec::new();
        loop {
            let mut line = String::new();
            let read = tokio::time::timeout(Duration::from_secs(10), self.rd.read_line(&mut line))
                .await
                .context("closed within 10 s")?;
            match read {
                Ok(0) => return Ok(out),
                Err(e) => {
                    out.push(format!("<{e}>"));
                    return Ok(out);
                }
                Ok(_) => out.push(line.trim_end().to_owned()),
            }
        }
    }

    /// Reads up to the next message (its `MSG` line), skipping `PONG` and `INFO`.
    async fn next_msg(&mut self) -> anyhow::Result<String> {
        loop {
            let mut line = String::new();
            let n = tokio::time::timeout(Duration::from_secs(10), self.rd.read_line(&mut line))
                .await
                .context("a message within 10 s")??;
            if n == 0 {
                bail!("connection closed");
            }
            if let Some(rest) = line.strip_prefix("MSG ") {
                let size: usize = rest.trim_end().rsplit(' ').next().unwrap_or("0").parse()?;
                let mut payload = vec![0; size + 2];
                self.rd.read_exact(&mut payload).await?;
                return Ok(line.trim_end().to_owned());
            }
        }
    }

    /// Sends a `CONNECT` the server is expected to refuse, and reads until it closes
    /// (no `PING`: a closed socket may reset on data sent after the close).
    async fn refused(addr: &str, connect: serde_json::Value) -> anyhow::Result<Vec<String>> {
        let mut raw = Raw::open(addr).await?;
        raw.wr
            .write_all(format!("CONNECT {connect}\r\n").as_bytes())
            .await?;
        raw.until_closed().await
    }

    async fn login(addr: &str, user: &str, pass: &str) -> anyhow::Result<Raw> {
        let connect = serde_json::json!({"user": user, "pass": pass, "verbose": false,
            "pedantic": false, "headers": true, "protocol": 1});
        let (raw, answer) = Raw::connect(addr, connect).await?;
        if !answer.is_empty() {
            bail!("login as {user}: {answer:?}");
        }
        Ok(raw)
    }

    /// Sends `cmd` and a `PING`; returns every line up to the `PONG` (`INFO` lines
    /// left out, a message as its `MSG` line and payload). `-ERR` closing the
    /// connection ends the answer too.
    async fn exchange(&mut self, cmd: &str) -> anyhow::Result<Vec<String>> {
        self.wr.write_all(cmd.as_bytes()).await?;
        self.wr.write_all(b"PING\r\n").await?;
        let mut out = Vec::new();
        loop {
            let mut line = String::new();
            let n = tokio::time::timeout(Duration::from_secs(10), self.rd.read_line(&mut line))
                .await
                .context("answer within 10 s")??;
            if n == 0 {
                out.push("<closed>".to_owned());
                return Ok(out);
            }
            let line = line.trim_end().to_owned();
            if line == "PONG" {
                return Ok(out);
            }
            if line.starts_with("INFO ") {
                continue;
            }
            if let Some(rest) = line.strip_prefix("MSG ") {
                let size: usize = rest.rsplit(' ').next().unwrap_or("0").parse()?;
                let mut payload = vec![0; size + 2];
                self.rd.read_exact(&mut payload).await?;
                payload.truncate(size);
                out.push(format!("MSG {rest} {}", String::from_utf8_lossy(&payload)));
                continue;
            }
            out.push(line);
        }
    }
}

/// One user's session of subscribes and publishes; returns the answers, per step.
async fn permission_matrix(addr: &str) -> anyhow::Result<Vec<(String, Vec<String>)>> {
    let steps = [
        "SUB foo.x 1\r\n",
        "SUB foo.* 2\r\n",
        "SUB foo.> 3\r\n",
        "SUB foo.secret 4\r\n",
        "SUB bar 5\r\n",
        "SUB > 6\r\n",
        "SUB foo.y workers 7\r\n",
        "SUB bar.x workers 9\r\n",
        "SUB orders.* 8\r\n",
        "PUB orders.new 2\r\nhi\r\n",
        "PUB orders.secret 2\r\nhi\r\n",
        "PUB billing.new 2\r\nhi\r\n",
        "PUB orders.a.b 2\r\nhi\r\n",
        // The wildcard subscription `orders.*` overlaps the denied `orders.secret`:
        // a message on it is filtered at delivery (published by someone allowed).
        "UNSUB 8\r\n",
    ];
    let mut raw = Raw::login(addr, "pub", "pub-secret-1").await?;
    let mut answers = Vec::new();
    for step in steps {
        let answer = raw
            .exchange(step)
            .await
            .with_context(|| format!("step `{}`", step.trim_end()))?;
        answers.push((step.trim_end().to_owned(), answer));
    }
    // The connection is still open after the violations.
    answers.push(("PING".to_owned(), raw.exchange("").await?));
    // Wrong password; unknown user.
    for (user, pass) in [("pub", "wrong"), ("nobody", "x")] {
        let connect =
            serde_json::json!({"user": user, "pass": pass, "protocol": 1, "verbose": false});
        // No PING after the CONNECT: the server closes on the refusal, and a PING
        // landing on the closed socket can reset it before the `-ERR` is read.
        let answer = Raw::refused(addr, connect).await?;
        answers.push((format!("CONNECT {user}"), answer));
    }
    // bcrypt password.
    answers.push((
        "CONNECT admin".to_owned(),
        Raw::login(addr, "admin", "admin-secret-4")
            .await
            .map(|_| Vec::new())?,
    ));
    Ok(answers)
}

#[tokio::test]
async fn permissions_answer_like_nats_server() {
    let reference = NatsServer::start(USERS_NATS_CONF).expect("nats-server");
    let dir = tempfile::tempdir().expect("tempdir");
    let (agent, _, _) = start_agent(&dir, USERS_TOML).await;
    let ours = permission_matrix(&agent.client_addr().to_string())
        .await
        .expect("matrix on InfiniStream");
    let theirs = permission_matrix(reference.url().trim_start_matches("nats://"))
        .await
        .expect("matrix on nats-server");
    for ((step, a), (_, b)) in ours.iter().zip(&theirs) {
        assert_eq!(a, b, "answer to `{step}`: InfiniStream vs nats-server");
    }
    assert_eq!(ours.len(), theirs.len());
    // The matrix is not vacuous: the violations are there.
    assert!(ours.iter().any(|(_, a)| {
        a.iter()
            .any(|l| l == "-ERR 'Permissions Violation for Publish to \"orders.secret\"'")
    }));
    assert!(ours.iter().any(|(_, a)| a.iter().any(|l| l
        == "-ERR 'Permissions Violation for Subscription to \"bar.x\" using queue \"workers\"'")));
}

#[tokio::test]
async fn denied_subjects_are_filtered_from_wildcard_deliveries() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (agent, _, _) = start_agent(&dir, USERS_TOML).await;
    let addr = agent.client_addr().to_string();
    let mut reader = Raw::login(&addr, "pub", "pub-secret-1").await.expect("pub");
    assert!(
        reader
            .exchange("SUB orders.* 1\r\n")
            .await
            .expect("sub")
            .is_empty()
    );
    let mut admin = Raw::login(&addr, "admin", "admin-secret-4")
        .await
        .expect("admin");
    let sent = admin
        .exchange("PUB orders.secret 1\r\nx\r\nPUB orders.open 1\r\ny\r\n")
        .await
        .expect("admin publishes");
    assert!(sent.is_empty(), "{sent:?}");
    // Both are routed before admin's PONG; the reader sees only the allowed one.
    let got = reader.exchange("").await.expect("deliveries");
    assert_eq!(got, vec!["MSG orders.open 1 1 y".to_owned()]);
}

#[tokio::test]
async fn a_service_answers_requests_under_allow_responses() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (agent, _, _) = start_agent(&dir, USERS_TOML).await;
    let url = format!("nats://{}", agent.client_addr());
    let svc =
        async_nats::ConnectOptions::with_user_and_password("svc".into(), "svc-secret-2".into())
            .connect(&url)
            .await
            .expect("svc connects");
    let mut requests = svc.subscribe("svc.echo").await.expect("subscribe");
    svc.flush().await.expect("flush");
    let server = tokio::spawn(async move {
        use futures::StreamExt;
        let req = requests.next().await.expect("a request");
        let reply = req.reply.clone().expect("reply subject");
        svc.publish(reply.clone(), req.payload.clone())
            .await
            .expect("answer");
        // A second answer to the same request is over `max_msgs` (1) and dropped.
        svc.publish(reply, "again".into())
            .await
            .expect("second answer sent");
        svc.flush().await.expect("flush");
    });
    let admin =
        async_nats::ConnectOptions::with_user_and_password("admin".into(), "admin-secret-4".into())
            .connect(&url)
            .await
            .expect("admin connects");
    let answer = admin
        .request("svc.echo", "ping".into())
        .await
        .expect("the service answers");
    assert_eq!(&answer.payload[..], b"ping");
    server.await.expect("service task");

    // Without a request to answer, the service may publish nowhere.
    let mut raw = Raw::login(&agent.client_addr().to_string(), "svc", "svc-secret-2")
        .await
        .expect("svc raw");
    assert_eq!(
        raw.exchange("PUB svc.echo 1\r\nx\r\n").await.expect("pub"),
        vec!["-ERR 'Permissions Violation for Publish to \"svc.echo\"'".to_owned()]
    );
}

#[tokio::test]
async fn a_worker_allowed_one_consumer_pulls_and_acks_and_nothing_else() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (agent, _, _) = start_agent(&dir, USERS_TOML).await;
    let url = format!("nats://{}", agent.client_addr());
    let admin =
        async_nats::ConnectOptions::with_user_and_password("admin".into(), "admin-secret-4".into())
            .connect(&url)
            .await
            .expect("admin connects");
    let js = async_nats::jetstream::new(admin);
    let stream = js
        .create_stream(async_nats::jetstream::stream::Config {
            name: "ORDERS".into(),
            subjects: vec!["orders.>".into()],
            ..Default::default()
        })
        .await
        .expect("stream");
    stream
        .create_consumer(async_nats::jetstream::consumer::pull::Config {
            durable_name: Some("worker".into()),
            ack_policy: async_nats::jetstream::consumer::AckPolicy::Explicit,
            ..Default::default()
        })
        .await
        .expect("consumer");
    js.publish("orders.1", "one".into())
        .await
        .expect("publish")
        .await
        .expect("acked");

    let mut worker = Raw::login(
        &agent.client_addr().to_string(),
        "worker",
        "worker-secret-3",
    )
    .await
    .expect("worker");
    assert!(
        worker
            .exchange("SUB _INBOX.w 1\r\n")
            .await
            .expect("sub")
            .is_empty()
    );
    let body = r#"{"batch":1,"expires":5000000000}"#;
    worker
        .wr
        .write_all(
            format!(
                "PUB $JS.API.CONSUMER.MSG.NEXT.ORDERS.worker _INBOX.w {}\r\n{body}\r\n",
                body.len()
            )
            .as_bytes(),
        )
        .await
        .expect("pull");
    let msg = worker.next_msg().await.expect("a message");
    assert!(
        msg.starts_with("MSG orders.1 1 $JS.ACK.ORDERS.worker."),
        "{msg}"
    );
    let ack = msg.split(' ').nth(3).expect("ack subject").to_owned();
    assert!(
        worker
            .exchange(&format!("PUB {ack} 0\r\n\r\n"))
            .await
            .expect("ack")
            .is_empty()
    );
    // Anything else of the JetStream API is refused, and the connection stays.
    assert_eq!(
        worker
            .exchange("PUB $JS.API.STREAM.DELETE.ORDERS _INBOX.w 0\r\n\r\n")
            .await
            .expect("delete"),
        vec![
            "-ERR 'Permissions Violation for Publish to \"$JS.API.STREAM.DELETE.ORDERS\"'"
                .to_owned()
        ]
    );
    assert!(js.get_stream("ORDERS").await.is_ok(), "stream still there");
    // The ack took: nothing left pending for the consumer.
    let mut consumer: async_nats::jetstream::consumer::PullConsumer = js
        .get_stream("ORDERS")
        .await
        .expect("stream")
        .get_consumer("worker")
        .await
        .expect("consumer");
    let info = consumer.info().await.expect("info");
    assert_eq!(info.num_ack_pending, 0);
    assert_eq!(info.ack_floor.stream_sequence, 1);
}

#[tokio::test]
async fn nkey_users_sign_the_nonce() {
    let user = nkeys::KeyPair::new_user();
    let config = format!("[[users]]\nnkey = \"{}\"\n", user.public_key());
    let dir = tempfile::tempdir().expect("tempdir");
    let (agent, _, _) = start_agent(&dir, &config).await;
    let addr = agent.client_addr().to_string();
    let seed = user.seed().expect("seed");
    let client = async_nats::ConnectOptions::with_nkey(seed)
        .connect(format!("nats://{addr}"))
        .await
        .expect("async-nats signs in with the NKey");
    client.flush().await.expect("flush");

    // A signature by another key, or of another nonce, is refused like nats-server.
    let mut raw = Raw::open(&addr).await.expect("open");
    let nonce = raw.info["nonce"]
        .as_str()
        .expect("INFO has a nonce")
        .to_owned();
    let other = nkeys::KeyPair::new_user();
    use base64::Engine as _;
    let sig = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(other.sign(nonce.as_bytes()).expect("sign"));
    let connect =
        serde_json::json!({"nkey": user.public_key(), "sig": sig, "protocol": 1, "verbose": false});
    let answer = raw
        .exchange(&format!("CONNECT {connect}\r\n"))
        .await
        .expect("answer");
    assert_eq!(
        answer.first().map(String::as_str),
        Some("-ERR 'Authorization Violation'")
    );
}

#[tokio::test]
async fn reload_changes_one_users_permissions_without_dropping_the_others() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (agent, file, flags) = start_agent(&dir, USERS_TOML).await;
    let addr = agent.client_addr().to_string();
    let mut publisher = Raw::login(&addr, "pub", "pub-secret-1").await.expect("pub");
    let mut svc = Raw::login(&addr, "svc", "svc-secret-2").await.expect("svc");
    let mut worker = Raw::login(&addr, "worker", "worker-secret-3")
        .await
        .expect("worker");
    assert_eq!(
        publisher
            .exchange("PUB billing.new 1\r\nx\r\n")
            .await
            .expect("pub"),
        vec!["-ERR 'Permissions Violation for Publish to \"billing.new\"'".to_owned()]
    );

    // `pub` may now publish to billing.>; `worker` is removed.
    let changed = USERS_TOML.replace(
        r#"allow = ["orders.>", "$JS.API.>"]"#,
        r#"allow = ["orders.>", "$JS.API.>", "billing.>"]"#,
    );
    let without_worker = &changed[..changed
        .find("[[users]]\nuser = \"worker\"")
        .expect("worker entry")];
    let admin_entry = &changed[changed
        .find("[[users]]\nuser = \"admin\"")
        .expect("admin entry")..];
    write_config(&file, &format!("{without_worker}{admin_entry}"));
    infinistream_agent::client_auth::reload(agent.broker(), Some(&file), &flags).expect("reload");

    assert!(
        publisher
            .exchange("PUB billing.new 1\r\nx\r\n")
            .await
            .expect("pub")
            .is_empty(),
        "the new permission applies to the open connection"
    );
    assert!(
        svc.exchange("").await.expect("svc").is_empty(),
        "svc keeps its connection"
    );
    let gone = worker.until_closed().await.expect("worker");
    assert_eq!(gone, vec!["-ERR 'Authorization Violation'".to_owned()]);

    // A broken file is refused and the running users stay.
    write_config(&file, "[[users]]\nuser = \"x\"\n");
    assert!(infinistream_agent::client_auth::reload(agent.broker(), Some(&file), &flags).is_err());
    assert!(
        publisher
            .exchange("PUB billing.new 1\r\nx\r\n")
            .await
            .expect("pub")
            .is_empty()
    );
}

fn write_config(path: &Path, text: &str) {
    std::fs::write(path, text).expect("write config");
}

#[tokio::test]
async fn secrets_stay_out_of_monitoring_and_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (agent, _, _) = start_agent(&dir, USERS_TOML).await;
    let addr = agent.client_addr().to_string();
    let _pub = Raw::login(&addr, "pub", "pub-secret-1").await.expect("pub");
    let refused = Raw::refused(
        &addr,
        serde_json::json!({"user": "pub", "pass": "wrong-secret-9", "protocol": 1}),
    )
    .await
    .expect("refused");
    let http = format!("http://{}", agent.http_addr());
    let mut outputs = refused.join("\n");
    for path in ["/varz", "/connz?auth=true", "/healthz"] {
        outputs.push_str(&get(&format!("{http}{path}")).await);
    }
    assert!(
        outputs.contains("\"pub\""),
        "connz names the user: {outputs}"
    );
    for secret in [
        "pub-secret-1",
        "wrong-secret-9",
        "admin-secret-4",
        "$2b$04$OpA.AIT",
    ] {
        assert!(!outputs.contains(secret), "`{secret}` leaked: {outputs}");
    }
}

async fn get(url: &str) -> String {
    let url = url.trim_start_matches("http://");
    let (host, path) = url.split_at(url.find('/').unwrap_or(url.len()));
    let mut stream = TcpStream::connect(host).await.expect("monitoring");
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").as_bytes())
        .await
        .expect("request");
    let mut body = String::new();
    stream.read_to_string(&mut body).await.expect("response");
    body
}

#[tokio::test]
async fn nats_py_meets_permissions_like_on_nats_server() {
    let reference = NatsServer::start(USERS_NATS_CONF).expect("nats-server");
    let dir = tempfile::tempdir().expect("tempdir");
    let (agent, _, _) = start_agent(&dir, USERS_TOML).await;
    for url in [format!("nats://{}", agent.client_addr()), reference.url()] {
        py_client::assert_script_ok("permissions.py", &url).await;
    }
}

/// A reload (SIGHUP) replaces the client TLS certificate: new connections are served
/// the new one (a client trusting only the old CA is refused, one trusting the new CA
/// gets in) and a connection opened before keeps working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_serves_a_new_tls_certificate_and_keeps_open_connections() {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    use tokio_stream::StreamExt as _;
    // As the agent binary: ring as the process provider (async-nats asks for it).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = |name: &str| dir.path().join(name);
    // A CA and a server certificate it signs, written to `stem`.pem / -key.pem;
    // returns the CA's PEM file.
    let issue = |stem: &str| {
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_key = KeyPair::generate().expect("key");
        let ca = path(&format!("{stem}-ca.pem"));
        std::fs::write(&ca, ca_params.self_signed(&ca_key).expect("ca").pem()).expect("write");
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let key = KeyPair::generate().expect("key");
        let cert = CertificateParams::new(vec!["127.0.0.1".to_owned()])
            .expect("params")
            .signed_by(&key, &issuer)
            .expect("signed");
        std::fs::write(path("server.pem"), cert.pem()).expect("write");
        std::fs::write(path("server-key.pem"), key.serialize_pem()).expect("write");
        ca
    };
    let old_ca = issue("old");
    let flags = RawAgentConfig {
        tls_cert: Some(path("server.pem")),
        tls_key: Some(path("server-key.pem")),
        ..in_process::local(&path("data"))
    };
    let agent = in_process::start(flags.clone()).await;
    let url = format!("tls://{}", agent.client_addr());
    let connect = |ca: std::path::PathBuf| {
        let url = url.clone();
        async move {
            async_nats::ConnectOptions::new()
                .add_root_certificates(ca)
                .require_tls(true)
                .max_reconnects(Some(1))
                .connect(url)
                .await
        }
    };
    let before = connect(old_ca.clone()).await.expect("trusts the first CA");
    let mut sub = before.subscribe("still.up").await.expect("subscribe");
    before.flush().await.expect("flush");

    let new_ca = issue("new");
    infinistream_agent::client_auth::reload(agent.broker(), None, &flags).expect("reload");
    let after = connect(new_ca)
        .await
        .expect("the new certificate is served");
    assert!(
        connect(old_ca).await.is_err(),
        "a client trusting only the old CA is refused after the reload"
    );
    // The connection opened before the reload is still up: it gets a message published
    // on a connection opened after.
    after
        .publish("still.up", "hi".into())
        .await
        .expect("publish");
    after.flush().await.expect("flush");
    let msg = tokio::time::timeout(Duration::from_secs(30), sub.next())
        .await
        .expect("delivered in time")
        .expect("subscription open");
    assert_eq!(&msg.payload[..], b"hi");
    assert_eq!(
        before.connection_state(),
        async_nats::connection::State::Connected
    );
}
