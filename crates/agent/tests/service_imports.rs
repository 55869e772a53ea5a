//! Service exports and imports (issue 19, accounts): account B imports services that
//! account A exports, its requests reach A's responders under the exported subject
//! with a response subject of A's (`_R_.…`), and the first answer comes back to B's
//! reply subject, once — on one agent (compared with nats-server 2.15.1 configured the
//! same way) and across two agents over the route mesh.

use std::collections::BTreeMap;
use std::time::Duration;

use async_nats::client::RequestErrorKind;
use futures::StreamExt;
use infinistream_config::accounts::{RawAccount, RawExport, RawImport, RawImportSource};
use infinistream_config::{RawAgentConfig, RawUser};
use infinistream_testkit::nats::NatsServer;
use tokio::time::timeout;

#[path = "support/in_process.rs"]
mod in_process;
#[path = "support/procs.rs"]
mod procs;

/// Generous bound for "this should happen"; never a timing assertion.
const EVENTUALLY: Duration = Duration::from_secs(30);

const NATS_CONF: &str = r#"
accounts {
  A { users = [{user: a, password: pa}], exports = [{service: "svc.>"}] }
  B { users = [{user: b, password: pb}],
      imports = [{service: {account: A, subject: "svc.time"}, to: "time"},
                 {service: {account: A, subject: "svc.echo.*"}}] }
}
"#;

fn user(name: &str, password: &str) -> RawUser {
    RawUser {
        user: Some(name.into()),
        password: Some(password.into()),
        ..Default::default()
    }
}

fn service_import(subject: &str, to: Option<&str>) -> RawImport {
    RawImport {
        service: Some(RawImportSource {
            account: "A".into(),
            subject: subject.into(),
        }),
        to: to.map(Into::into),
        ..Default::default()
    }
}

/// [`NATS_CONF`] in the agent's TOML form.
fn accounts(raw: RawAgentConfig) -> RawAgentConfig {
    let a = RawAccount {
        users: Some(vec![user("a", "pa")]),
        exports: Some(vec![RawExport {
            service: Some("svc.>".into()),
            ..Default::default()
        }]),
        ..Default::default()
    };
    let b = RawAccount {
        users: Some(vec![user("b", "pb")]),
        imports: Some(vec![
            service_import("svc.time", Some("time")),
            service_import("svc.echo.*", None),
        ]),
        ..Default::default()
    };
    RawAgentConfig {
        accounts: Some(BTreeMap::from([("A".to_owned(), a), ("B".to_owned(), b)])),
        ..raw
    }
}

async fn login(url: &str, user: &str, pass: &str) -> async_nats::Client {
    async_nats::ConnectOptions::with_user_and_password(user.into(), pass.into())
        .request_timeout(Some(Duration::from_secs(10)))
        .connect(url)
        .await
        .unwrap_or_else(|e| panic!("{user} connects: {e}"))
}

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

async fn barrier(client: &async_nats::Client) {
    assert_eq!(ask(client, "barrier", "").await, "no responders");
}

/// A's responder on `svc.>`: answers each request twice with what it saw (subject,
/// payload, whether the reply is a response subject `_R_.…`).
async fn responder(a: &async_nats::Client) {
    let mut requests = a.subscribe("svc.>").await.expect("responder");
    barrier(a).await;
    let answering = a.clone();
    tokio::spawn(async move {
        while let Some(req) = requests.next().await {
            let Some(reply) = req.reply else { continue };
            let seen = format!(
                "{} {} {}",
                req.subject,
                String::from_utf8_lossy(&req.payload),
                reply.starts_with("_R_.")
            );
            for n in 1..=2 {
                let _ = answering
                    .publish(reply.clone(), format!("{seen} #{n}").into())
                    .await;
            }
            let _ = answering.flush().await;
        }
    });
}

async fn transcript(url: &str) -> Vec<String> {
    let (a, b) = (login(url, "a", "pa").await, login(url, "b", "pb").await);
    responder(&a).await;
    let mut out = Vec::new();
    for (who, client, subject) in [
        ("B", &b, "time"),
        ("B", &b, "svc.echo.x"),
        ("B", &b, "svc.time"),
        ("B", &b, "svc.other"),
        ("A", &a, "time"),
    ] {
        out.push(format!(
            "{who} asks {subject}: {}",
            ask(client, subject, "hi").await
        ));
    }
    // The second answer is not routed back: after the first, the next message on
    // B's reply subject is B's own marker.
    let mut inbox = b.subscribe("replies.b").await.expect("inbox");
    barrier(&b).await;
    b.publish_with_reply("time", "replies.b", "once".into())
        .await
        .expect("request");
    let first = timeout(EVENTUALLY, inbox.next())
        .await
        .expect("an answer in time")
        .expect("open");
    out.push(format!(
        "B first answer: {} {}",
        first.subject,
        String::from_utf8_lossy(&first.payload)
    ));
    barrier(&a).await;
    b.publish("replies.b", "marker".into())
        .await
        .expect("marker");
    let next = timeout(EVENTUALLY, inbox.next())
        .await
        .expect("a message in time")
        .expect("open");
    out.push(format!(
        "B next: {}",
        String::from_utf8_lossy(&next.payload)
    ));
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_imports_answer_like_nats_server() {
    let reference = NatsServer::start(NATS_CONF).expect("nats-server");
    let dir = tempfile::tempdir().expect("tempdir");
    let agent = in_process::start(accounts(in_process::local(dir.path()))).await;
    let ours = transcript(&format!("nats://{}", agent.client_addr())).await;
    let theirs = transcript(&reference.url()).await;
    assert_eq!(ours, theirs, "InfiniStream vs nats-server");
    assert_eq!(ours[0], "B asks time: svc.time hi true #1");
    assert_eq!(ours[1], "B asks svc.echo.x: svc.echo.x hi true #1");
    assert_eq!(ours[2], "B asks svc.time: no responders");
    assert_eq!(ours[6], "B next: marker");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_imports_answer_across_agents() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cp, bucket) = procs::embedded_control_plane(dir.path());
    let agent = |name: &str| {
        accounts(RawAgentConfig {
            peer_port: Some(0),
            control_plane: Some(cp.url.clone()),
            group_id: Some(procs::GROUP_ID.into()),
            group_key: Some(procs::GROUP_KEY.into()),
            bucket: Some(bucket.clone()),
            zone: Some("default".into()),
            server_name: Some(name.into()),
            ..in_process::local(&dir.path().join(name))
        })
    };
    let one = in_process::start(agent("one")).await;
    let two = in_process::start(agent("two")).await;
    let a = login(&format!("nats://{}", one.client_addr()), "a", "pa").await;
    responder(&a).await;
    // B on agent two reaches A's responder on agent one once the route carries its
    // interest (the event awaited); the answer comes back through agent one's route
    // to agent two's response subscription.
    let b = login(&format!("nats://{}", two.client_addr()), "b", "pb").await;
    let answer = timeout(EVENTUALLY, async {
        loop {
            let answer = ask(&b, "time", "far").await;
            if answer != "no responders" {
                return answer;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("A's service reachable from agent two");
    assert_eq!(answer, "svc.time far true #1");
    drop(cp);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_changes_service_imports_without_dropping_connections() {
    const TOML: &str = r#"
[accounts.A]
users = [{ user = "a", password = "pa" }]
exports = [{ service = "svc.>" }]
[accounts.B]
users = [{ user = "b", password = "pb" }]
imports = [{ service = { account = "A", subject = "svc.time" }, to = "time" }]
"#;
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("agent.toml");
    std::fs::write(&file, TOML).expect("write");
    let flags = in_process::local(&dir.path().join("data"));
    let config = infinistream_config::load_agent(Some(&file), &flags).expect("valid config");
    let agent = in_process::start_config(config).await;
    let url = format!("nats://{}", agent.client_addr());
    let (a, b) = (login(&url, "a", "pa").await, login(&url, "b", "pb").await);
    responder(&a).await;
    assert_eq!(ask(&b, "time", "1").await, "svc.time 1 true #1");

    // B's import is removed: its open connection stays, the service is gone for it.
    let without = TOML.replace(
        "imports = [{ service = { account = \"A\", subject = \"svc.time\" }, to = \"time\" }]\n",
        "",
    );
    std::fs::write(&file, without).expect("write");
    infinistream_agent::client_auth::reload(agent.broker(), Some(&file), &flags).expect("reload");
    assert_eq!(ask(&b, "time", "2").await, "no responders");
    // And back.
    std::fs::write(&file, TOML).expect("write");
    infinistream_agent::client_auth::reload(agent.broker(), Some(&file), &flags).expect("reload");
    assert_eq!(ask(&b, "time", "3").await, "svc.time 3 true #1");
}
