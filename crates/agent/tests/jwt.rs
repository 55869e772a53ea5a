//! Decentralized JWT auth (issue 19, item 4): an operator, accounts from the memory
//! resolver and users signing in with `nats` credentials files — JWTs made and signed
//! here with nkeys. Every answer is compared with nats-server 2.15.1 configured the
//! same way: who may sign in (a good user, one signed by an account signing key, a
//! bearer token; a wrong seed, an expired or early JWT, a revoked user, an untrusted
//! or forged issuer are refused with `Authorization Violation`), account isolation,
//! permissions from the claims, and JetStream only in the account whose JWT enables
//! it. A reload (SIGHUP) that revokes a signed-in user closes its connection only, and
//! a connection whose user or account JWT expires is closed at its expiry. Limits from
//! the claims (an account's `conn`, `subs`, `payload` and JetStream limits, a user's
//! `subs` and `src`) refuse with nats-server's errors.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_nats::client::RequestErrorKind;
use futures::StreamExt;
use infinistream_broker::jwt::{credentials_file, encode};
use infinistream_config::RawAgentConfig;
use infinistream_testkit::nats::NatsServer;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::time::timeout;

#[path = "support/in_process.rs"]
mod in_process;
#[path = "support/py_client.rs"]
mod py_client;

/// Generous bound for "this should happen"; never a timing assertion.
const EVENTUALLY: Duration = Duration::from_secs(30);

fn now() -> i64 {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs();
    i64::try_from(secs).expect("seconds fit")
}

/// nsc's "unlimited" for an account's and a user's limits.
fn unlimited() -> Value {
    json!({"subs": -1, "data": -1, "payload": -1, "imports": -1, "exports": -1,
           "wildcards": true, "conn": -1, "leaf": -1})
}

/// An operator with accounts A (JetStream, a signing key, a revoked user) and B, and
/// the users of the tests.
struct Trust {
    operator_jwt: String,
    a: nkeys::KeyPair,
    a_signer: nkeys::KeyPair,
    b: nkeys::KeyPair,
    b_scoped: nkeys::KeyPair,
    operator: nkeys::KeyPair,
    revoked: nkeys::KeyPair,
    /// nats-server's system account (it needs one for JetStream in operator mode);
    /// InfiniStream loads it as one more account.
    system: nkeys::KeyPair,
    /// When the revocations were made; users are issued before it.
    revoked_at: i64,
    /// A's limits over nsc's unlimited defaults (JetStream enabled and unlimited
    /// unless a test sets some).
    a_limits: Value,
    /// More accounts a test adds: (public key, account JWT).
    extra: Vec<(String, String)>,
}

impl Trust {
    fn new() -> Trust {
        let operator = nkeys::KeyPair::new_operator();
        let operator_jwt = encode(
            &json!({"jti": "op", "iat": now(), "iss": operator.public_key(),
                    "sub": operator.public_key(), "name": "OP",
                    "nats": {"type": "operator", "version": 2}}),
            &operator,
        )
        .expect("operator JWT");
        Trust {
            operator_jwt,
            a: nkeys::KeyPair::new_account(),
            a_signer: nkeys::KeyPair::new_account(),
            b: nkeys::KeyPair::new_account(),
            b_scoped: nkeys::KeyPair::new_account(),
            operator,
            revoked: nkeys::KeyPair::new_user(),
            system: nkeys::KeyPair::new_account(),
            revoked_at: now(),
            a_limits: json!({"mem_storage": -1, "disk_storage": -1, "streams": -1, "consumer": -1}),
            extra: Vec::new(),
        }
    }

    /// Account A's JWT; `revoke_also`: one more user revoked (a reload's change).
    fn account_a(&self, revoke_also: Option<&str>) -> String {
        let mut revocations = json!({self.revoked.public_key(): self.revoked_at});
        if let Some(user) = revoke_also {
            revocations[user] = json!(self.revoked_at);
        }
        let mut limits = unlimited();
        for (k, v) in self.a_limits.as_object().expect("limits object") {
            limits[k] = v.clone();
        }
        self.account_jwt(
            &self.a,
            json!({"limits": limits, "signing_keys": [self.a_signer.public_key()],
                   "revocations": revocations,
                   "exports": [{"name": "time", "subject": "svc.>", "type": "service"}]}),
        )
    }

    /// Account B: users without permissions of their own get its default ones; a
    /// scoped signing key gives its users the template's.
    fn account_b(&self) -> String {
        self.account_jwt(
            &self.b,
            json!({"limits": unlimited(),
                   "imports": [{"name": "time", "subject": "svc.time", "account": self.a.public_key(),
                                "local_subject": "time", "type": "service"}],
                   "default_permissions": {"pub": {"deny": ["secret.>"]}},
                   "signing_keys": [{"kind": "user_scope", "key": self.b_scoped.public_key(),
                                     "role": "reader", "template": {"pub": {"allow": ["reads.>", "barrier"]}}}]}),
        )
    }

    fn account_jwt(&self, account: &nkeys::KeyPair, nats: Value) -> String {
        self.account_jwt_with(account, nats, json!({}))
    }

    /// An account JWT with more top-level claims (`exp`).
    fn account_jwt_with(&self, account: &nkeys::KeyPair, mut nats: Value, extra: Value) -> String {
        nats["type"] = json!("account");
        nats["version"] = json!(2);
        let mut claims = json!({"jti": account.public_key(), "iat": now(),
                                "iss": self.operator.public_key(),
                                "sub": account.public_key(), "name": "acct", "nats": nats});
        for (k, v) in extra.as_object().expect("object") {
            claims[k] = v.clone();
        }
        encode(&claims, &self.operator).expect("account JWT")
    }

    /// Adds an account (to both servers' configurations) whose JWT carries `nats`
    /// and the top-level claims in `extra`.
    fn add_account(&mut self, nats: Value, extra: Value) -> nkeys::KeyPair {
        let account = nkeys::KeyPair::new_account();
        let jwt = self.account_jwt_with(&account, nats, extra);
        self.extra.push((account.public_key(), jwt));
        account
    }

    fn extra_accounts(&self, form: impl Fn(&str, &str) -> String) -> String {
        self.extra.iter().map(|(k, jwt)| form(k, jwt)).collect()
    }

    /// A credentials file for a user signed by `issuer`; `nats` claims merged in (a
    /// null removes the claim).
    fn creds(&self, user: &nkeys::KeyPair, issuer: &nkeys::KeyPair, extra: Value) -> String {
        let mut nats = unlimited();
        nats["type"] = json!("user");
        nats["version"] = json!(2);
        let mut claims = json!({"jti": user.public_key(), "iat": self.revoked_at - 10,
                                "iss": issuer.public_key(), "sub": user.public_key(),
                                "name": "user"});
        for (k, v) in extra.as_object().expect("object") {
            if k == "nats" {
                for (nk, nv) in v.as_object().expect("nats object") {
                    match (nv.is_null(), nats.as_object_mut()) {
                        (true, Some(nats)) => {
                            nats.remove(nk);
                        }
                        _ => nats[nk] = nv.clone(),
                    }
                }
            } else {
                claims[k] = v.clone();
            }
        }
        claims["nats"] = nats;
        let jwt = encode(&claims, issuer).expect("user JWT");
        credentials_file(&jwt, &user.seed().expect("seed"))
    }

    fn nats_conf(&self) -> String {
        format!(
            "operator: \"{}\"\nsystem_account: {}\nresolver: MEMORY\nresolver_preload: {{\n  {}: \"{}\"\n  {}: \"{}\"\n  {}: \"{}\"\n{}}}\n",
            self.operator_jwt,
            self.system.public_key(),
            self.system.public_key(),
            self.account_jwt(&self.system, json!({"limits": unlimited()})),
            self.a.public_key(),
            self.account_a(None),
            self.b.public_key(),
            self.account_b(),
            self.extra_accounts(|k, jwt| format!("  {k}: \"{jwt}\"\n"))
        )
    }

    fn agent_toml(&self, revoke_also: Option<&str>) -> String {
        format!(
            "operator = \"{}\"\nresolver = \"MEMORY\"\n[resolver_preload]\n{} = \"{}\"\n{} = \"{}\"\n{}",
            self.operator_jwt,
            self.a.public_key(),
            self.account_a(revoke_also),
            self.b.public_key(),
            self.account_b(),
            self.extra_accounts(|k, jwt| format!("{k} = \"{jwt}\"\n"))
        )
    }
}

async fn start_agent(dir: &Path, toml: &str) -> (infinistream_agent::AgentHandle, RawAgentConfig) {
    let file = dir.join("agent.toml");
    std::fs::write(&file, toml).expect("write config");
    let flags = in_process::local(&dir.join("data"));
    let config = infinistream_config::load_agent(Some(&file), &flags).expect("valid config");
    (in_process::start_config(config).await, flags)
}

/// Signs in with `creds`, collecting the server's errors.
async fn sign_in(
    url: &str,
    creds: &str,
) -> Result<(async_nats::Client, mpsc::UnboundedReceiver<String>), String> {
    let (tx, rx) = mpsc::unbounded_channel();
    async_nats::ConnectOptions::with_credentials(creds)
        .map_err(|e| format!("bad credentials: {e}"))?
        .request_timeout(Some(Duration::from_secs(10)))
        .max_reconnects(Some(1))
        .event_callback(move |event| {
            let tx = tx.clone();
            async move {
                if let async_nats::Event::ServerError(e) = event {
                    let _ = tx.send(e.to_string());
                }
            }
        })
        .connect(url)
        .await
        .map(|client| (client, rx))
        .map_err(|e| format!("refused: {:?}", e.kind()))
}

/// A request's answer as text: the payload, or the kind of failure.
async fn ask(client: &async_nats::Client, subject: &str, body: &str) -> String {
    match client
        .request(subject.to_owned(), body.to_owned().into())
        .await
    {
        Ok(msg) => String::from_utf8_lossy(&msg.payload).into_owned(),
        Err(e) if e.kind() == RequestErrorKind::NoResponders => "no responders".to_owned(),
        Err(e) => format!("error: {e}"),
    }
}

/// Returns once the server processed everything `client` sent before.
async fn barrier(client: &async_nats::Client) {
    assert_eq!(ask(client, "barrier", "").await, "no responders");
}

async fn next_subject(sub: &mut async_nats::Subscriber) -> String {
    let msg = timeout(EVENTUALLY, sub.next())
        .await
        .expect("a message in time")
        .expect("subscription open");
    format!("{} {}", msg.subject, String::from_utf8_lossy(&msg.payload))
}

/// What each user meets on the server at `url`.
async fn transcript(trust: &Trust, url: &str) -> Vec<String> {
    let user = nkeys::KeyPair::new_user;
    let (alice, bob) = (user(), user());
    let stranger_account = nkeys::KeyPair::new_account();
    let wrong_seed = {
        let creds = trust.creds(&alice, &trust.a, json!({}));
        let other = user().seed().expect("seed");
        creds.replace(&alice.seed().expect("seed"), &other)
    };
    let cases = [
        ("A user", trust.creds(&alice, &trust.a, json!({}))),
        (
            "A signing key",
            trust.creds(
                &user(),
                &trust.a_signer,
                json!({"nats": {"issuer_account": trust.a.public_key()}}),
            ),
        ),
        (
            "scoped with limits",
            trust.creds(
                &user(),
                &trust.b_scoped,
                json!({"nats": {"issuer_account": trust.b.public_key()}}),
            ),
        ),
        ("wrong seed", wrong_seed),
        (
            "expired",
            trust.creds(&user(), &trust.a, json!({"exp": now() - 60})),
        ),
        (
            "not yet valid",
            trust.creds(&user(), &trust.a, json!({"nbf": now() + 3600})),
        ),
        ("revoked", trust.creds(&trust.revoked, &trust.a, json!({}))),
        (
            "unknown account",
            trust.creds(&user(), &stranger_account, json!({})),
        ),
        (
            "forged issuer_account",
            trust.creds(
                &user(),
                &stranger_account,
                json!({"nats": {"issuer_account": trust.a.public_key()}}),
            ),
        ),
    ];
    let mut out = Vec::new();
    for (label, creds) in &cases {
        let outcome = match sign_in(url, creds).await {
            Ok((client, _)) => {
                barrier(&client).await;
                "signed in".to_owned()
            }
            Err(e) => e,
        };
        out.push(format!("{label}: {outcome}"));
    }
    // A bearer token needs no nonce signature: a wrong seed still signs in.
    let holder = user();
    let bearer = trust
        .creds(&holder, &trust.a, json!({"nats": {"bearer_token": true}}))
        .replace(&holder.seed().expect("seed"), &user().seed().expect("seed"));
    let bearer_outcome = match sign_in(url, &bearer).await {
        Ok(_) => "signed in".to_owned(),
        Err(e) => e,
    };
    out.push(format!("bearer: {bearer_outcome}"));

    // Isolation: A and B subscribe to the same subjects and see only their own.
    let (a, _) = sign_in(url, &trust.creds(&alice, &trust.a, json!({})))
        .await
        .expect("alice");
    let (b, mut b_errors) = sign_in(
        url,
        &trust.creds(
            &bob,
            &trust.b,
            json!({"nats": {"pub": {"allow": ["orders.>", "barrier"]},
                            "sub": {"allow": ["orders.>", "_INBOX.>"], "deny": ["orders.secret"]}}}),
        ),
    )
    .await
    .expect("bob");
    let mut in_a = a.subscribe("orders.>").await.expect("sub A");
    let mut in_b = b.subscribe("orders.>").await.expect("sub B");
    barrier(&a).await;
    barrier(&b).await;
    for (client, subject) in [(&b, "orders.b"), (&a, "orders.a")] {
        client
            .publish(subject, subject.to_owned().into())
            .await
            .expect("publish");
        barrier(client).await;
    }
    out.push(format!("A sees: {}", next_subject(&mut in_a).await));
    out.push(format!("B sees: {}", next_subject(&mut in_b).await));

    // Permissions from bob's claims; the connection stays open.
    b.publish("billing.x", "x".into()).await.expect("publish");
    barrier(&b).await;
    let _denied = b.subscribe("orders.secret").await.expect("sub");
    barrier(&b).await;
    for _ in 0..2 {
        let err = timeout(EVENTUALLY, b_errors.recv())
            .await
            .expect("an error in time")
            .expect("events open");
        out.push(format!("B error: {err}"));
    }

    // B's default permissions for a user without its own; a scoped key's template.
    for (who, creds, subject) in [
        (
            "B default",
            trust.creds(&user(), &trust.b, json!({})),
            "secret.x",
        ),
        (
            "B scoped",
            // nats-server: a scoped key's users carry no permissions or limits.
            trust.creds(
                &user(),
                &trust.b_scoped,
                json!({"nats": {"issuer_account": trust.b.public_key(), "subs": null,
                                "data": null, "payload": null}}),
            ),
            "writes.x",
        ),
    ] {
        let (client, mut errors) = sign_in(url, &creds)
            .await
            .unwrap_or_else(|e| panic!("{who} signs in at {url}: {e}"));
        client.publish(subject, "x".into()).await.expect("publish");
        barrier(&client).await;
        client
            .publish("reads.x", "x".into())
            .await
            .expect("publish");
        barrier(&client).await;
        let err = timeout(EVENTUALLY, errors.recv())
            .await
            .expect("an error in time")
            .expect("events open");
        out.push(format!("{who} error: {err}"));
    }

    // B reaches A's exported service through its import, under its local subject.
    let mut service = a.subscribe("svc.>").await.expect("service");
    barrier(&a).await;
    let answering = a.clone();
    let served = tokio::spawn(async move {
        let req = service.next().await.expect("a request");
        let reply = req.reply.expect("reply subject");
        let seen = format!("{} {}", req.subject, reply.starts_with("_R_."));
        answering.publish(reply, seen.into()).await.expect("answer");
        answering.flush().await.expect("flush");
    });
    let (carl, _) = sign_in(url, &trust.creds(&user(), &trust.b, json!({})))
        .await
        .expect("carl");
    out.push(format!("B asks time: {}", ask(&carl, "time", "").await));
    served.await.expect("service task");

    // JetStream works in A, whose JWT enables it.
    let js = async_nats::jetstream::new(a.clone());
    let created = js
        .create_stream(async_nats::jetstream::stream::Config {
            name: "ORDERS".into(),
            subjects: vec!["orders.>".into()],
            ..Default::default()
        })
        .await
        .map(|s| s.cached_info().config.name.clone());
    out.push(format!("A stream: {created:?}"));
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwt_users_sign_in_like_nats_server() {
    let trust = Trust::new();
    let reference = NatsServer::start(&trust.nats_conf()).expect("nats-server");
    let dir = tempfile::tempdir().expect("tempdir");
    let (agent, _) = start_agent(dir.path(), &trust.agent_toml(None)).await;
    let ours = transcript(&trust, &format!("nats://{}", agent.client_addr())).await;
    let theirs = transcript(&trust, &reference.url()).await;
    assert_eq!(ours, theirs, "InfiniStream vs nats-server");
    // Not vacuous.
    assert_eq!(ours[0], "A user: signed in");
    assert_eq!(ours[1], "A signing key: signed in");
    for refused in &ours[2..9] {
        assert!(
            refused.ends_with("refused: AuthorizationViolation"),
            "{refused}"
        );
    }
    assert_eq!(ours[9], "bearer: signed in");
    assert_eq!(ours[10], "A sees: orders.a orders.a");
    assert_eq!(ours[11], "B sees: orders.b orders.b");
    assert!(
        ours[12].contains("Publish to \"billing.x\""),
        "{}",
        ours[12]
    );
    assert!(
        ours[13].contains("Subscription to \"orders.secret\""),
        "{}",
        ours[13]
    );
    assert!(ours[14].contains("Publish to \"secret.x\""), "{}", ours[14]);
    assert!(ours[15].contains("Publish to \"writes.x\""), "{}", ours[15]);
    assert_eq!(ours[16], "B asks time: svc.time true");
    assert_eq!(ours[17], "A stream: Ok(\"ORDERS\")");

    // B's JWT does not enable JetStream: InfiniStream answers nats-server's
    // `JetStream not enabled for account` (10039), as nats-server does for accounts
    // from its config file; nats-server 2.15.1 in operator mode leaves the request
    // unanswered (it times out), which no client can tell from a lost request.
    let bob = trust.creds(&nkeys::KeyPair::new_user(), &trust.b, json!({}));
    let (b, _) = sign_in(&format!("nats://{}", agent.client_addr()), &bob)
        .await
        .expect("bob");
    let answer = ask(
        &b,
        "$JS.API.STREAM.CREATE.S",
        r#"{"name":"S","subjects":["s.>"]}"#,
    )
    .await;
    assert!(answer.contains("\"err_code\":10039"), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_that_revokes_a_user_closes_only_its_connection() {
    let trust = Trust::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let (agent, flags) = start_agent(dir.path(), &trust.agent_toml(None)).await;
    let url = format!("nats://{}", agent.client_addr());
    let (carol_key, dave_key) = (nkeys::KeyPair::new_user(), nkeys::KeyPair::new_user());
    let (carol, mut carol_errors) = sign_in(&url, &trust.creds(&carol_key, &trust.a, json!({})))
        .await
        .expect("carol");
    let (dave, _) = sign_in(&url, &trust.creds(&dave_key, &trust.a, json!({})))
        .await
        .expect("dave");
    barrier(&carol).await;

    let file = dir.path().join("agent.toml");
    std::fs::write(&file, trust.agent_toml(Some(&carol_key.public_key()))).expect("write");
    infinistream_agent::client_auth::reload(agent.broker(), Some(&file), &flags).expect("reload");
    let err = timeout(EVENTUALLY, carol_errors.recv())
        .await
        .expect("carol told in time")
        .expect("events open");
    assert_eq!(err, "nats: authorization violation");
    barrier(&dave).await;
    // Carol cannot sign in again; a reload with a broken account JWT is refused and
    // changes nothing.
    assert_eq!(
        sign_in(&url, &trust.creds(&carol_key, &trust.a, json!({})))
            .await
            .err()
            .as_deref(),
        Some("refused: AuthorizationViolation")
    );
    let broken = trust
        .agent_toml(None)
        .replace(&trust.account_b(), "eyJ0eXAiOiJKV1QifQ.e30.c2ln");
    std::fs::write(&file, broken).expect("write");
    assert!(infinistream_agent::client_auth::reload(agent.broker(), Some(&file), &flags).is_err());
    barrier(&dave).await;
}

/// Signs in with `creds`, reporting every client event but `connected`.
async fn watched(url: &str, creds: &str) -> (async_nats::Client, mpsc::UnboundedReceiver<String>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let client = async_nats::ConnectOptions::with_credentials(creds)
        .expect("credentials")
        .max_reconnects(Some(1))
        .event_callback(move |event| {
            let tx = tx.clone();
            async move {
                let event = event.to_string();
                if event != "connected" {
                    let _ = tx.send(event);
                }
            }
        })
        .connect(url)
        .await
        .expect("signs in");
    (client, rx)
}

/// The next `n` events of a watched client (fewer if none comes in time).
async fn next_events(rx: &mut mpsc::UnboundedReceiver<String>, n: usize) -> Vec<String> {
    let mut events = Vec::new();
    while events.len() < n {
        match timeout(EVENTUALLY, rx.recv()).await {
            Ok(Some(event)) => events.push(event),
            Ok(None) | Err(_) => break,
        }
    }
    events
}

/// What a connection signed in with `creds`, whose user or account JWT expires in a
/// few seconds, is told, and whether it is then closed (read from the client's
/// events, awaited).
async fn expiry(creds: &str, url: &str) -> Vec<String> {
    let (client, mut rx) = watched(url, creds).await;
    barrier(&client).await;
    // Up to the close and the refused reconnect (the JWT stays expired).
    next_events(&mut rx, 3).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_user_jwt_closes_its_connection_like_nats_server() {
    let trust = Trust::new();
    let reference = NatsServer::start(&trust.nats_conf()).expect("nats-server");
    let dir = tempfile::tempdir().expect("tempdir");
    let (agent, _) = start_agent(dir.path(), &trust.agent_toml(None)).await;
    let (ours_url, theirs_url) = (format!("nats://{}", agent.client_addr()), reference.url());
    let creds = || {
        let user = nkeys::KeyPair::new_user();
        trust.creds(&user, &trust.a, json!({"exp": now() + 3}))
    };
    let (mine, reference_creds) = (creds(), creds());
    let (ours, theirs) = tokio::join!(
        expiry(&mine, &ours_url),
        expiry(&reference_creds, &theirs_url)
    );
    assert_eq!(ours, theirs, "InfiniStream vs nats-server");
    assert!(
        ours.iter().any(|e| e.to_lowercase().contains("expired")),
        "{ours:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_account_jwt_closes_its_connections_like_nats_server() {
    let mut trust = Trust::new();
    // Long enough for both servers to start and the clients to sign in first.
    let c = trust.add_account(json!({"limits": unlimited()}), json!({"exp": now() + 12}));
    let reference = NatsServer::start(&trust.nats_conf()).expect("nats-server");
    let dir = tempfile::tempdir().expect("tempdir");
    let (agent, _) = start_agent(dir.path(), &trust.agent_toml(None)).await;
    let (ours_url, theirs_url) = (format!("nats://{}", agent.client_addr()), reference.url());
    let creds = || trust.creds(&nkeys::KeyPair::new_user(), &c, json!({}));
    let (mine, reference_creds) = (creds(), creds());
    let (ours, theirs) = tokio::join!(
        expiry(&mine, &ours_url),
        expiry(&reference_creds, &theirs_url)
    );
    assert_eq!(ours, theirs, "InfiniStream vs nats-server");
    assert!(
        ours.iter()
            .any(|e| e.to_lowercase().contains("account authentication expired")),
        "{ours:?}"
    );
}

/// What the limits in account and user JWTs refuse on the server at `url`: account
/// `d` allows one connection and three subscriptions each, `e` 64-byte payloads; A's
/// JetStream one stream and one consumer.
async fn limits_transcript(
    trust: &Trust,
    (d, e): (&nkeys::KeyPair, &nkeys::KeyPair),
    url: &str,
) -> Vec<String> {
    let user = nkeys::KeyPair::new_user;
    let mut out = Vec::new();
    let (first, mut errors) = sign_in(url, &trust.creds(&user(), d, json!({})))
        .await
        .expect("first in D");
    barrier(&first).await; // its request inbox is its first subscription
    let second = sign_in(url, &trust.creds(&user(), d, json!({}))).await;
    out.push(format!("D second connection: {:?}", second.err()));
    let mut subs = Vec::new();
    for subject in ["one", "two", "three"] {
        subs.push(first.subscribe(subject).await.expect("subscribe"));
    }
    barrier(&first).await;
    let told = timeout(EVENTUALLY, errors.recv()).await.ok().flatten();
    out.push(format!("D fourth subscription: {told:?}"));
    // The connection stayed open.
    barrier(&first).await;
    drop(subs);

    // A user's own `subs` limit, in an unlimited account.
    let (solo, mut errors) = sign_in(
        url,
        &trust.creds(&user(), &trust.a, json!({"nats": {"subs": 1}})),
    )
    .await
    .expect("solo");
    barrier(&solo).await;
    let _sub = solo.subscribe("x").await.expect("subscribe");
    let told = timeout(EVENTUALLY, errors.recv()).await.ok().flatten();
    out.push(format!("user subs 1, second subscription: {told:?}"));

    // `src`: the client's address must be in one of the blocks.
    for src in [json!(["10.0.0.0/8"]), json!("10.0.0.0/8,127.0.0.0/8")] {
        let signed = sign_in(
            url,
            &trust.creds(&user(), &trust.a, json!({"nats": {"src": src}})),
        )
        .await;
        out.push(format!("src {src}: {:?}", signed.err()));
    }

    // JetStream limits from A's JWT.
    let (a, _) = sign_in(url, &trust.creds(&user(), &trust.a, json!({})))
        .await
        .expect("A user");
    for (subject, body) in [
        (
            "$JS.API.STREAM.CREATE.S1",
            r#"{"name":"S1","subjects":["s1.>"]}"#,
        ),
        (
            "$JS.API.STREAM.CREATE.S2",
            r#"{"name":"S2","subjects":["s2.>"]}"#,
        ),
        (
            "$JS.API.CONSUMER.CREATE.S1.C1",
            r#"{"stream_name":"S1","config":{"durable_name":"C1"}}"#,
        ),
        (
            "$JS.API.CONSUMER.CREATE.S1.C2",
            r#"{"stream_name":"S1","config":{"durable_name":"C2"}}"#,
        ),
    ] {
        let answer: Value = serde_json::from_str(&ask(&a, subject, body).await).expect("JSON");
        out.push(format!("{subject}: {}", answer["error"]));
    }

    // Over the payload limit: told, then closed.
    let (big, mut events) = watched(url, &trust.creds(&user(), e, json!({}))).await;
    big.publish("big", vec![b'x'; 65].into())
        .await
        .expect("publish");
    big.flush().await.ok();
    out.extend(next_events(&mut events, 2).await);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwt_limits_refuse_like_nats_server() {
    let mut trust = Trust::new();
    trust.a_limits = json!({"mem_storage": -1, "disk_storage": -1, "streams": 1, "consumer": 1});
    let mut limits = unlimited();
    for (k, v) in [("conn", 1), ("subs", 3)] {
        limits[k] = json!(v);
    }
    let d = trust.add_account(json!({"limits": limits}), json!({}));
    let mut limits = unlimited();
    limits["payload"] = json!(64);
    let e = trust.add_account(json!({"limits": limits}), json!({}));
    let reference = NatsServer::start(&trust.nats_conf()).expect("nats-server");
    let dir = tempfile::tempdir().expect("tempdir");
    let (agent, _) = start_agent(dir.path(), &trust.agent_toml(None)).await;
    let accounts = (&d, &e);
    let ours =
        limits_transcript(&trust, accounts, &format!("nats://{}", agent.client_addr())).await;
    let theirs = limits_transcript(&trust, accounts, &reference.url()).await;
    assert_eq!(ours, theirs, "InfiniStream vs nats-server");
    // Not vacuous.
    assert!(ours[0].contains("refused"), "{}", ours[0]);
    assert!(
        ours[1].contains("maximum subscriptions exceeded"),
        "{}",
        ours[1]
    );
    assert!(
        ours[2].contains("maximum subscriptions exceeded"),
        "{}",
        ours[2]
    );
    assert!(ours[3].contains("AuthorizationViolation"), "{}", ours[3]);
    assert_eq!(ours[4], "src \"10.0.0.0/8,127.0.0.0/8\": None");
    assert_eq!(ours[5], "$JS.API.STREAM.CREATE.S1: null");
    assert!(ours[6].contains("10027"), "{}", ours[6]);
    assert_eq!(ours[7], "$JS.API.CONSUMER.CREATE.S1.C1: null");
    assert!(ours[8].contains("10026"), "{}", ours[8]);
    assert!(
        ours[9].to_lowercase().contains("maximum payload"),
        "{}",
        ours[9]
    );
}

#[tokio::test]
async fn nats_py_signs_in_with_credentials_files_like_on_nats_server() {
    let trust = Trust::new();
    let reference = NatsServer::start(&trust.nats_conf()).expect("nats-server");
    let dir = tempfile::tempdir().expect("tempdir");
    let (agent, _) = start_agent(dir.path(), &trust.agent_toml(None)).await;
    let good = dir.path().join("good.creds");
    let revoked = dir.path().join("revoked.creds");
    std::fs::write(
        &good,
        trust.creds(&nkeys::KeyPair::new_user(), &trust.a, json!({})),
    )
    .expect("write");
    std::fs::write(&revoked, trust.creds(&trust.revoked, &trust.a, json!({}))).expect("write");
    let script = dir.path().join("jwt.py");
    std::fs::write(
        &script,
        format!(
            r#"
import asyncio, sys
import nats
from nats.errors import Error

async def main(url):
    nc = await nats.connect(url, user_credentials={good:?}, allow_reconnect=False)
    sub = await nc.subscribe("greet")
    await nc.publish("greet", b"hi")
    msg = await sub.next_msg(timeout=10)
    assert msg.data == b"hi", msg.data
    await nc.close()
    errors = []
    async def on_error(e):
        errors.append(str(e))
    try:
        await nats.connect(url, user_credentials={revoked:?}, allow_reconnect=False,
                           max_reconnect_attempts=0, error_cb=on_error, connect_timeout=5)
        print("revoked user signed in")
        return
    except Exception as e:
        errors.append(str(e))
    assert any("authorization violation" in e.lower() for e in errors), errors
    print("OK")

asyncio.run(main(sys.argv[1]))
"#,
            good = good.display().to_string(),
            revoked = revoked.display().to_string(),
        ),
    )
    .expect("script");
    for url in [format!("nats://{}", agent.client_addr()), reference.url()] {
        let output = py_client::run(&script, &url).await;
        assert!(
            output.status.success() && String::from_utf8_lossy(&output.stdout).trim() == "OK",
            "nats.py against {url}: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

/// A reload whose account JWTs lower the limits closes the connections now over them
/// (the newest first for `conn`, with the limit's error); the others stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_that_lowers_account_limits_closes_connections_over_them() {
    let mut trust = Trust::new();
    let d = trust.add_account(json!({"limits": unlimited()}), json!({}));
    let dir = tempfile::tempdir().expect("tempdir");
    let (agent, flags) = start_agent(dir.path(), &trust.agent_toml(None)).await;
    let url = format!("nats://{}", agent.client_addr());
    let creds = || trust.creds(&nkeys::KeyPair::new_user(), &d, json!({}));
    let (older, _) = sign_in(&url, &creds()).await.expect("older");
    barrier(&older).await;
    let (newer, mut newer_errors) = sign_in(&url, &creds()).await.expect("newer");
    barrier(&newer).await;
    // Three subscriptions, over the coming limit of two (the request inbox is one).
    let (busy, mut busy_errors) = sign_in(
        &url,
        &trust.creds(&nkeys::KeyPair::new_user(), &trust.a, json!({})),
    )
    .await
    .expect("busy");
    barrier(&busy).await;
    let _subs = (
        busy.subscribe("one").await.expect("sub"),
        busy.subscribe("two").await.expect("sub"),
    );
    barrier(&busy).await;

    trust.extra.clear();
    let mut d_limits = unlimited();
    d_limits["conn"] = json!(1);
    trust.extra.push((
        d.public_key(),
        trust.account_jwt_with(&d, json!({"limits": d_limits}), json!({})),
    ));
    trust.a_limits["subs"] = json!(2);
    let file = dir.path().join("agent.toml");
    std::fs::write(&file, trust.agent_toml(None)).expect("write");
    infinistream_agent::client_auth::reload(agent.broker(), Some(&file), &flags).expect("reload");
    assert_eq!(
        next_events(&mut newer_errors, 1).await,
        ["nats: maximum account active connections exceeded"]
    );
    assert_eq!(
        next_events(&mut busy_errors, 1).await,
        ["nats: maximum subscriptions exceeded"]
    );
    // The older connection of the account stays.
    barrier(&older).await;
}

/// A wall-clock time of day (UTC) `secs` from now, as a user JWT's `times` write it.
fn time_of_day(secs: i64) -> String {
    let t = (now() + secs).rem_euclid(86_400);
    format!("{:02}:{:02}:{:02}", t / 3600, t % 3600 / 60, t % 60)
}

/// What users with connection time windows meet on the server at `url`: refused
/// outside their windows or with a location that does not exist; inside one that
/// ends in a few seconds, signed in and then closed.
async fn times_transcript(trust: &Trust, url: &str) -> Vec<String> {
    let user = nkeys::KeyPair::new_user;
    let mut out = Vec::new();
    let window = |start: i64, end: i64, location: &str| {
        json!({"nats": {"times": [{"start": time_of_day(start), "end": time_of_day(end)}],
                        "times_location": location}})
    };
    for (what, claims) in [
        ("an hour from now", window(3600, 7200, "")),
        ("inside, unknown location", window(-60, 3600, "Nowhere/Bad")),
        (
            "inside, in Tokyo's wall clock",
            window(-60 + 9 * 3600, 3600 + 9 * 3600, "Asia/Tokyo"),
        ),
    ] {
        let signed = sign_in(url, &trust.creds(&user(), &trust.a, claims)).await;
        out.push(format!("{what}: {:?}", signed.map(|_| "signed in").err()));
    }
    let ending = trust.creds(&user(), &trust.a, window(-60, 3, "UTC"));
    out.extend(expiry(&ending, url).await);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_connect_times_refuse_and_close_like_nats_server() {
    // Not across midnight, UTC's or Tokyo's (15:00 UTC): there a window from a minute
    // ago starts "after" its end and so reaches into tomorrow, which both servers
    // read alike but which would not test what this test means to.
    let near_midnight = || {
        let t = now().rem_euclid(86_400);
        [0, 15 * 3600]
            .iter()
            .any(|m| (t - m).rem_euclid(86_400) < 120 || (m - t).rem_euclid(86_400) < 60)
    };
    if near_midnight() {
        tokio::time::sleep(Duration::from_secs(180)).await;
    }
    let trust = Trust::new();
    let reference = NatsServer::start(&trust.nats_conf()).expect("nats-server");
    let dir = tempfile::tempdir().expect("tempdir");
    let (agent, _) = start_agent(dir.path(), &trust.agent_toml(None)).await;
    let (ours_url, theirs_url) = (format!("nats://{}", agent.client_addr()), reference.url());
    let (ours, theirs) = tokio::join!(
        times_transcript(&trust, &ours_url),
        times_transcript(&trust, &theirs_url)
    );
    assert_eq!(ours, theirs, "InfiniStream vs nats-server");
    assert!(ours[0].contains("AuthorizationViolation"), "{}", ours[0]);
    assert!(ours[1].contains("AuthorizationViolation"), "{}", ours[1]);
    assert!(ours[2].ends_with("None"), "{}", ours[2]);
    assert!(
        ours[3..]
            .iter()
            .any(|e| e.to_lowercase().contains("user authentication expired")),
        "{ours:?}"
    );
}

/// A stand-in for nats-account-server: `GET <base>/<account key>` answers the JWT
/// `jwts` holds for the key, or 404; the base URL itself answers 200 (nats-server
/// checks it at start). Returns the resolver URL.
async fn account_server(
    jwts: std::collections::HashMap<String, String>,
) -> (String, tokio::task::JoinHandle<()>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!(
        "http://{}/jwt/v1/accounts/",
        listener.local_addr().expect("addr")
    );
    let jwts = std::sync::Arc::new(jwts);
    let serve = tokio::spawn(async move {
        loop {
            let Ok((mut conn, _)) = listener.accept().await else {
                return;
            };
            let jwts = jwts.clone();
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0u8; 4096];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&request);
                let path = text.split_whitespace().nth(1).unwrap_or_default();
                let key = path.trim_start_matches("/jwt/v1/accounts/");
                let (status, body) = match jwts.get(key) {
                    Some(jwt) => ("200 OK", jwt.clone()),
                    None if key.is_empty() => ("200 OK", String::new()),
                    None => ("404 Not Found", String::new()),
                };
                let answer = format!(
                    "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = conn.write_all(answer.as_bytes()).await;
                let _ = conn.shutdown().await;
            });
        }
    });
    (url, serve)
}

/// A claims update answer without its `server` part (which names the server).
fn update_answer(answer: &str) -> String {
    match serde_json::from_str::<Value>(answer) {
        Ok(mut v) => {
            if let Some(o) = v.as_object_mut() {
                o.remove("server");
            }
            v.to_string()
        }
        Err(_) => answer.to_owned(),
    }
}

/// Account fetches and claims updates on the server at `url` (URL resolver): a user
/// of A is let in once A is fetched, one of an account the account server does not
/// have is refused; the system account's pushes of A's claims (empty, garbage, about
/// another account, for an account not loaded, signed by another operator, on the
/// old subject, on the full resolver's subject) get nats-server's answers; one that
/// denies a subject applies to the open connection, one that revokes its user
/// closes it.
async fn resolver_transcript(
    trust: &Trust,
    (other_operator, stranger): (&nkeys::KeyPair, &nkeys::KeyPair),
    url: &str,
) -> Vec<String> {
    let user = nkeys::KeyPair::new_user;
    let mut out = Vec::new();
    let alice_key = user();
    let (alice, mut alice_events) =
        watched(url, &trust.creds(&alice_key, &trust.a, json!({}))).await;
    barrier(&alice).await;
    out.push("A user signed in (A fetched)".to_owned());
    let refused = sign_in(url, &trust.creds(&user(), stranger, json!({}))).await;
    out.push(format!("unknown account: {:?}", refused.err()));
    let (system, _) = sign_in(url, &trust.creds(&user(), &trust.system, json!({})))
        .await
        .expect("system user");
    let a = trust.a.public_key();
    let update = |account: &str| format!("$SYS.REQ.ACCOUNT.{account}.CLAIMS.UPDATE");
    let mut forged = Trust::new();
    forged.operator =
        nkeys::KeyPair::from_seed(&other_operator.seed().expect("seed")).expect("key");
    forged.a = nkeys::KeyPair::from_seed(&trust.a.seed().expect("seed")).expect("key");
    let stranger_jwt = trust.account_jwt(stranger, json!({"limits": unlimited()}));
    let denying = trust.account_jwt(
        &trust.a,
        json!({"limits": unlimited(), "default_permissions": {"pub": {"deny": ["secret.>"]}}}),
    );
    for (what, subject, body) in [
        ("empty", update(&a), String::new()),
        ("garbage", update(&a), "nonsense".to_owned()),
        (
            "about another account",
            update(&stranger.public_key()),
            trust.account_a(None),
        ),
        ("not loaded", update(&stranger.public_key()), stranger_jwt),
        ("another operator's", update(&a), forged.account_a(None)),
        (
            "full resolver subject",
            "$SYS.REQ.CLAIMS.UPDATE".to_owned(),
            trust.account_a(None),
        ),
        (
            "old subject",
            format!("$SYS.ACCOUNT.{a}.CLAIMS.UPDATE"),
            denying,
        ),
    ] {
        out.push(format!(
            "{what}: {}",
            update_answer(&ask(&system, &subject, &body).await)
        ));
    }
    // The denial applies to alice's open connection; A's own users cannot push.
    alice
        .publish("secret.x", "x".into())
        .await
        .expect("publish");
    barrier(&alice).await;
    out.extend(next_events(&mut alice_events, 1).await);
    out.push(format!(
        "from A: {}",
        ask(&alice, &update(&a), &trust.account_a(None)).await
    ));
    let revoking = trust.account_jwt(
        &trust.a,
        json!({"limits": unlimited(),
               "revocations": {alice_key.public_key(): trust.revoked_at}}),
    );
    out.push(format!(
        "revoke: {}",
        update_answer(&ask(&system, &update(&a), &revoking).await)
    ));
    out.extend(next_events(&mut alice_events, 2).await);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_url_resolver_and_claims_updates_answer_like_nats_server() {
    let trust = Trust::new();
    // Another operator's key, and an account the account server does not have.
    let others = (
        &nkeys::KeyPair::new_operator(),
        &nkeys::KeyPair::new_account(),
    );
    let served = std::collections::HashMap::from([
        (
            trust.system.public_key(),
            trust.account_jwt(&trust.system, json!({"limits": unlimited()})),
        ),
        (trust.a.public_key(), trust.account_a(None)),
        (trust.b.public_key(), trust.account_b()),
    ]);
    let (resolver, _server) = account_server(served).await;
    let reference = NatsServer::start(&format!(
        "operator: \"{}\"\nsystem_account: {}\nresolver: URL(\"{resolver}\")\n",
        trust.operator_jwt,
        trust.system.public_key()
    ))
    .expect("nats-server");
    let dir = tempfile::tempdir().expect("tempdir");
    let (agent, _) = start_agent(
        dir.path(),
        &format!(
            "operator = \"{}\"\nsystem_account = \"{}\"\nresolver = \"URL({resolver})\"\n",
            trust.operator_jwt,
            trust.system.public_key()
        ),
    )
    .await;
    let ours =
        resolver_transcript(&trust, others, &format!("nats://{}", agent.client_addr())).await;
    let theirs = resolver_transcript(&trust, others, &reference.url()).await;
    assert_eq!(ours, theirs, "InfiniStream vs nats-server");
    // Not vacuous.
    assert!(ours[1].contains("AuthorizationViolation"), "{}", ours[1]);
    assert!(ours[2].contains("request body is empty"), "{}", ours[2]);
    assert!(ours[5].contains("jwt update skipped"), "{}", ours[5]);
    assert!(ours[6].contains("account validation failed"), "{}", ours[6]);
    assert!(ours[7].ends_with("no responders"), "{}", ours[7]);
    assert!(ours[8].contains("jwt updated"), "{}", ours[8]);
    assert!(
        ours[9].to_lowercase().contains("permissions violation"),
        "{}",
        ours[9]
    );
    assert!(
        ours.iter().any(|e| e.to_lowercase().contains("revoked")),
        "{ours:?}"
    );
}
