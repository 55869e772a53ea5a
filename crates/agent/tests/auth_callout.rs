//! Auth callout (issue 19, item 5): `[auth_callout]` as nats-server's
//! `authorization { auth_callout { … } }`. A callout service written here (async-nats
//! and nkeys) answers `$SYS.REQ.USER.AUTH` with a user JWT or an error; every client's
//! outcome is compared with nats-server 2.15.1 configured the same way: a user the
//! service approves signs in with the permissions its user JWT carries, one it refuses,
//! one whose answer is for another user key, and one it never answers are refused with
//! `Authorization Violation`; the service's own user signs in without the callout.

use std::path::Path;
use std::time::Duration;

use async_nats::client::RequestErrorKind;
use base64::Engine as _;
use futures::StreamExt;
use infinistream_broker::jwt::encode;
use infinistream_testkit::nats::NatsServer;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::time::timeout;

#[path = "support/in_process.rs"]
mod in_process;

/// Generous bound for "this should happen"; never a timing assertion.
const EVENTUALLY: Duration = Duration::from_secs(30);

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

/// The claims of a JWT (not verified: the service trusts its server's request).
fn claims(jwt: &str) -> Value {
    let part = jwt.split('.').nth(1).expect("three parts");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .expect("base64url");
    serde_json::from_slice(&bytes).expect("JSON claims")
}

/// The callout service: approves `alice` (publish `orders.>` and `barrier`, subscribe
/// `_INBOX.>`), refuses `bob` with an error, answers `mallory` for another user key,
/// never answers `silent`. Runs until the connection closes.
async fn callout_service(url: String, issuer: nkeys::KeyPair) -> async_nats::Client {
    let service =
        async_nats::ConnectOptions::with_user_and_password("auth".into(), "auth-pw".into())
            .connect(&url)
            .await
            .expect("the service signs in as an auth user");
    let mut requests = service
        .subscribe("$SYS.REQ.USER.AUTH")
        .await
        .expect("subscribe");
    service.flush().await.expect("flush");
    let answering = service.clone();
    tokio::spawn(async move {
        while let Some(msg) = requests.next().await {
            let request = claims(std::str::from_utf8(&msg.payload).expect("UTF-8"));
            let nats = &request["nats"];
            let user_key = nats["user_nkey"].as_str().expect("user_nkey").to_owned();
            let server = nats["server_id"]["id"]
                .as_str()
                .expect("server id")
                .to_owned();
            let user = nats["connect_opts"]["user"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let pass = nats["connect_opts"]["pass"].as_str().unwrap_or_default();
            let sub = match user.as_str() {
                "mallory" => nkeys::KeyPair::new_user().public_key(),
                _ => user_key.clone(),
            };
            let user_jwt = encode(
                &json!({"jti": format!("u{user_key}"), "iat": now(), "iss": issuer.public_key(),
                        "sub": sub, "aud": "$G", "name": user,
                        "nats": {"pub": {"allow": ["orders.>", "barrier"]},
                                 "sub": {"allow": ["_INBOX.>"]},
                                 "type": "user", "version": 2}}),
                &issuer,
            )
            .expect("user JWT");
            let mut answer =
                json!({"jwt": user_jwt, "type": "authorization_response", "version": 2});
            match (user.as_str(), pass) {
                ("silent", _) => continue,
                ("alice" | "mallory", "pw") => {}
                _ => {
                    answer = json!({"error": format!("{user} is not welcome"),
                                    "type": "authorization_response", "version": 2});
                }
            }
            let response = encode(
                &json!({"jti": format!("r{user_key}"), "iat": now(), "iss": issuer.public_key(),
                        "sub": sub, "aud": server, "nats": answer}),
                &issuer,
            )
            .expect("response JWT");
            if let Some(reply) = msg.reply {
                answering
                    .publish(reply, response.into())
                    .await
                    .expect("answer");
            }
        }
    });
    service
}

/// Signs in as `user` / `pw`, collecting the server's errors.
async fn sign_in(
    url: &str,
    user: &str,
) -> Result<(async_nats::Client, mpsc::UnboundedReceiver<String>), String> {
    let (tx, rx) = mpsc::unbounded_channel();
    async_nats::ConnectOptions::with_user_and_password(user.into(), "pw".into())
        .max_reconnects(Some(1))
        .connection_timeout(Duration::from_secs(10))
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

async fn barrier(client: &async_nats::Client) {
    let answer = client.request("barrier", "".into()).await;
    assert!(
        matches!(&answer, Err(e) if e.kind() == RequestErrorKind::NoResponders),
        "{answer:?}"
    );
}

/// What each user meets on the server at `url` (whose callout service runs).
async fn transcript(url: &str) -> Vec<String> {
    let mut out = Vec::new();
    let (alice, mut errors) = sign_in(url, "alice").await.expect("alice is approved");
    barrier(&alice).await;
    out.push("alice signed in".to_owned());
    alice
        .publish("payments.new", "x".into())
        .await
        .expect("publish");
    barrier(&alice).await;
    let told = timeout(EVENTUALLY, errors.recv()).await.ok().flatten();
    out.push(format!(
        "alice publishes outside her JWT's permissions: {told:?}"
    ));
    for user in ["bob", "mallory", "silent"] {
        out.push(format!("{user}: {:?}", sign_in(url, user).await.err()));
    }
    out
}

fn nats_conf(issuer: &str) -> String {
    format!(
        "authorization {{\n  users: [ {{ user: auth, password: auth-pw }} ]\n  auth_callout {{\n    issuer: {issuer}\n    auth_users: [ auth ]\n  }}\n}}\n"
    )
}

fn agent_toml(issuer: &str) -> String {
    format!(
        "[[users]]\nuser = \"auth\"\npassword = \"auth-pw\"\n\n[auth_callout]\nissuer = \"{issuer}\"\nauth_users = [\"auth\"]\n"
    )
}

async fn start_agent(dir: &Path, toml: &str) -> infinistream_agent::AgentHandle {
    let file = dir.join("agent.toml");
    std::fs::write(&file, toml).expect("write config");
    let flags = in_process::local(&dir.join("data"));
    let config = infinistream_config::load_agent(Some(&file), &flags).expect("valid config");
    in_process::start_config(config).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_callout_signs_users_in_like_nats_server() {
    let issuer = nkeys::KeyPair::new_account();
    let seed = issuer.seed().expect("seed");
    let reference = NatsServer::start(&nats_conf(&issuer.public_key())).expect("nats-server");
    let dir = tempfile::tempdir().expect("tempdir");
    let agent = start_agent(dir.path(), &agent_toml(&issuer.public_key())).await;
    let ours_url = format!("nats://{}", agent.client_addr());
    let key = || nkeys::KeyPair::from_seed(&seed).expect("key");
    let _ours_service = callout_service(ours_url.clone(), key()).await;
    let _their_service = callout_service(reference.url(), key()).await;
    let ours = transcript(&ours_url).await;
    let theirs = transcript(&reference.url()).await;
    assert_eq!(ours, theirs, "InfiniStream vs nats-server");
    // Not vacuous.
    assert!(
        ours[1].to_lowercase().contains("permissions violation"),
        "{}",
        ours[1]
    );
    for refused in &ours[2..] {
        assert!(refused.contains("AuthorizationViolation"), "{refused}");
    }
}

#[test]
fn what_the_callout_does_not_build_is_refused_by_name() {
    let dir = tempfile::tempdir().expect("tempdir");
    let issuer = nkeys::KeyPair::new_account().public_key();
    let refused = |toml: String| {
        let file = dir.path().join("agent.toml");
        std::fs::write(&file, toml).expect("write");
        let flags = in_process::local(&dir.path().join("data"));
        infinistream_config::load_agent(Some(&file), &flags)
            .expect_err("refused")
            .to_string()
    };
    let xkey = format!("{}xkey = \"XABC\"\n", agent_toml(&issuer));
    assert!(refused(xkey).contains("not supported yet"));
    let stranger =
        agent_toml(&issuer).replace("auth_users = [\"auth\"]", "auth_users = [\"nobody\"]");
    assert!(refused(stranger).contains("not a configured user"));
}
