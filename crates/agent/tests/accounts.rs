//! Accounts (issue 19, item 3): users in `[accounts.NAME]` publish and subscribe in
//! their own subject space — on one agent and across agents over the route mesh —
//! JetStream serves the accounts marked `jetstream = true` (each its own streams and
//! KV buckets, also two of one name) and answers the others with nats-server's
//! `JetStream not enabled for account` (10039); a stream import shares what one
//! account exports with another, under a prefix. The answers are compared with
//! nats-server 2.15.1 configured the same way.

use std::collections::BTreeMap;
use std::time::Duration;

use async_nats::client::RequestErrorKind;
use futures::StreamExt;
use infinistream_config::accounts::{
    RawAccount, RawExport, RawImport, RawImportSource, RawJetStreamFlag,
};
use infinistream_config::{RawAgentConfig, RawUser};
use infinistream_testkit::nats::NatsServer;
use tokio::time::timeout;

#[path = "support/in_process.rs"]
mod in_process;
#[path = "support/procs.rs"]
mod procs;
#[path = "support/py_client.rs"]
mod py_client;

/// Generous bound for "this should happen"; never a timing assertion.
const EVENTUALLY: Duration = Duration::from_secs(30);

/// nats-server's configuration of the same users and accounts as [`accounts`].
const NATS_CONF: &str = r#"
authorization { users = [{user: g, password: pg}] }
accounts {
  A { jetstream: enabled, users = [{user: a, password: pa}, {user: a2, password: pa2}],
      exports = [{stream: "ev.>"}] }
  B { users = [{user: b, password: pb}],
      imports = [{stream: {account: A, subject: "ev.>"}, prefix: "from_a"}] }
}
"#;

fn user(name: &str, password: &str) -> RawUser {
    RawUser {
        user: Some(name.into()),
        password: Some(password.into()),
        ..Default::default()
    }
}

/// `g` in the global account, `a`/`a2` in A (JetStream's), `b` in B; B imports A's
/// `ev.>` under `from_a`.
fn accounts(raw: RawAgentConfig) -> RawAgentConfig {
    let a = RawAccount {
        jetstream: Some(RawJetStreamFlag::Word("enabled".into())),
        users: Some(vec![user("a", "pa"), user("a2", "pa2")]),
        exports: Some(vec![RawExport {
            stream: Some("ev.>".into()),
            ..Default::default()
        }]),
        ..Default::default()
    };
    let b = RawAccount {
        users: Some(vec![user("b", "pb")]),
        imports: Some(vec![RawImport {
            stream: Some(RawImportSource {
                account: "A".into(),
                subject: "ev.>".into(),
            }),
            prefix: Some("from_a".into()),
            ..Default::default()
        }]),
        ..Default::default()
    };
    RawAgentConfig {
        users: Some(vec![user("g", "pg")]),
        accounts: Some(BTreeMap::from([("A".to_owned(), a), ("B".to_owned(), b)])),
        ..raw
    }
}

/// Two agents of one group (embedded control plane, shared bucket) configured by
/// `configure`; the control plane lives as long as the returned value.
async fn two_agents(
    dir: &std::path::Path,
    configure: fn(RawAgentConfig) -> RawAgentConfig,
) -> (
    procs::ControlPlane,
    infinistream_agent::AgentHandle,
    infinistream_agent::AgentHandle,
) {
    let (cp, bucket) = procs::embedded_control_plane(dir);
    let agent = |name: &str| {
        configure(RawAgentConfig {
            peer_port: Some(0),
            control_plane: Some(cp.url.clone()),
            group_id: Some(procs::GROUP_ID.into()),
            group_key: Some(procs::GROUP_KEY.into()),
            bucket: Some(bucket.clone()),
            zone: Some("default".into()),
            server_name: Some(name.into()),
            ..in_process::local(&dir.join(name))
        })
    };
    let one = in_process::start(agent("one")).await;
    let two = in_process::start(agent("two")).await;
    (cp, one, two)
}

async fn login(url: &str, user: &str, pass: &str) -> async_nats::Client {
    async_nats::ConnectOptions::with_user_and_password(user.into(), pass.into())
        .request_timeout(Some(Duration::from_secs(10)))
        .connect(url)
        .await
        .unwrap_or_else(|e| panic!("{user} connects: {e}"))
}

async fn next_subject(sub: &mut async_nats::Subscriber) -> String {
    let msg = timeout(EVENTUALLY, sub.next())
        .await
        .expect("a message in time")
        .expect("subscription open");
    format!("{} {}", msg.subject, String::from_utf8_lossy(&msg.payload))
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

/// Returns once the server processed everything `client` sent before (an async-nats
/// flush only writes the socket): a request nobody serves.
async fn barrier(client: &async_nats::Client) {
    assert_eq!(ask(client, "barrier", "").await, "no responders");
}

/// What each account's users see of the others: same subjects, a service, and the
/// JetStream API from accounts JetStream does not serve.
async fn isolation_transcript(url: &str) -> Vec<String> {
    let (g, a, a2, b) = (
        login(url, "g", "pg").await,
        login(url, "a", "pa").await,
        login(url, "a2", "pa2").await,
        login(url, "b", "pb").await,
    );
    let mut in_a = a.subscribe("orders.>").await.expect("sub A");
    let mut in_b = b.subscribe("orders.>").await.expect("sub B");
    let mut in_g = g.subscribe("orders.>").await.expect("sub $G");
    for c in [&a, &b, &g] {
        barrier(c).await;
    }
    // Each publish is processed (a round trip) before the next account's, so a leak
    // would be queued ahead of the account's own message.
    for (client, subject) in [(&g, "orders.g"), (&b, "orders.b"), (&a2, "orders.a")] {
        client
            .publish(subject, subject.to_owned().into())
            .await
            .expect("publish");
        barrier(client).await;
    }
    let mut transcript = vec![
        format!("A sees: {}", next_subject(&mut in_a).await),
        format!("B sees: {}", next_subject(&mut in_b).await),
        format!("$G sees: {}", next_subject(&mut in_g).await),
    ];
    // A service in A is invisible from B; B's own subjects stay B's.
    let mut service = a.subscribe("svc.time").await.expect("service");
    barrier(&a).await;
    let served = tokio::spawn(async move {
        let req = service.next().await.expect("a request");
        let reply = req.reply.expect("reply subject");
        a.publish(reply, "noon".into()).await.expect("answer");
        a.flush().await.expect("flush");
    });
    transcript.push(format!(
        "B asks svc.time: {}",
        ask(&b, "svc.time", "").await
    ));
    transcript.push(format!(
        "A asks svc.time: {}",
        ask(&a2, "svc.time", "").await
    ));
    served.await.expect("service task");
    // JetStream answers only in A.
    for (who, client) in [("B", &b), ("$G", &g)] {
        transcript.push(format!(
            "{who} INFO: {}",
            ask(client, "$JS.API.INFO", "").await
        ));
        transcript.push(format!(
            "{who} STREAM.CREATE: {}",
            ask(
                client,
                "$JS.API.STREAM.CREATE.S",
                r#"{"name":"S","subjects":["s.>"]}"#
            )
            .await
        ));
    }
    // B sees A's exported events under its prefix, and only those: A publishes
    // until B's import delivers (the event that B's subscription is in place; an
    // async-nats flush is no round trip), then B's own `ev.>` must see B's publish
    // first (A's `ev.1` copies were routed before it).
    let mut imported = b.subscribe("from_a.>").await.expect("sub import");
    let mut b_ev = b.subscribe("ev.>").await.expect("sub B ev");
    barrier(&b).await;
    let first = timeout(EVENTUALLY, async {
        loop {
            a2.publish("ev.1", "e".into()).await.expect("publish A");
            a2.flush().await.expect("flush");
            if let Ok(Some(msg)) = timeout(Duration::from_millis(100), imported.next()).await {
                return msg;
            }
        }
    })
    .await
    .expect("A's export reaches B");
    transcript.push(format!(
        "B imports: {} {}",
        first.subject,
        String::from_utf8_lossy(&first.payload)
    ));
    b.publish("ev.b", "b".into()).await.expect("publish B");
    b.flush().await.expect("flush");
    transcript.push(format!("B ev.>: {}", next_subject(&mut b_ev).await));
    transcript
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_isolate_subjects_and_jetstream_like_nats_server() {
    let reference = NatsServer::start(NATS_CONF).expect("nats-server");
    let dir = tempfile::tempdir().expect("tempdir");
    let agent = in_process::start(accounts(in_process::local(dir.path()))).await;
    let ours = isolation_transcript(&format!("nats://{}", agent.client_addr())).await;
    let theirs = isolation_transcript(&reference.url()).await;
    assert_eq!(ours, theirs, "InfiniStream vs nats-server");
    // Not vacuous: each account saw its own message, and B was refused JetStream.
    assert_eq!(ours[0], "A sees: orders.a orders.a");
    assert_eq!(ours[1], "B sees: orders.b orders.b");
    assert_eq!(ours[3], "B asks svc.time: no responders");
    assert!(ours[5].contains("\"err_code\":10039"), "{}", ours[5]);
    assert_eq!(ours[9], "B imports: from_a.ev.1 e");
    assert_eq!(ours[10], "B ev.>: ev.b b");

    // JetStream works in A.
    let js = async_nats::jetstream::new(
        login(&format!("nats://{}", agent.client_addr()), "a", "pa").await,
    );
    js.create_stream(async_nats::jetstream::stream::Config {
        name: "ORDERS".into(),
        subjects: vec!["orders.>".into()],
        ..Default::default()
    })
    .await
    .expect("stream in A");
    let ack = js
        .publish("orders.1", "one".into())
        .await
        .expect("publish")
        .await
        .expect("acked");
    assert_eq!(ack.stream, "ORDERS");
    // The system API answers in A, naming A.
    let a = login(&format!("nats://{}", agent.client_addr()), "a", "pa").await;
    let info = ask(&a, "$SYS.REQ.USER.INFO", "").await;
    assert!(info.contains("\"account\":\"A\""), "{info}");
    // B publishing on the same subject is not captured by A's stream.
    let b = login(&format!("nats://{}", agent.client_addr()), "b", "pb").await;
    assert_eq!(
        ask(&b, "orders.2", "two").await,
        "no responders",
        "B's publish reaches no stream"
    );
    let mut stream = js.get_stream("ORDERS").await.expect("stream");
    assert_eq!(stream.info().await.expect("info").state.messages, 1);
}

#[tokio::test]
async fn nats_py_meets_accounts_like_on_nats_server() {
    let reference = NatsServer::start(NATS_CONF).expect("nats-server");
    let dir = tempfile::tempdir().expect("tempdir");
    let agent = in_process::start(accounts(in_process::local(dir.path()))).await;
    for url in [format!("nats://{}", agent.client_addr()), reference.url()] {
        py_client::assert_script_ok("accounts.py", &url).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_stay_isolated_across_agents() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cp, one, two) = two_agents(dir.path(), accounts).await;
    let (url1, url2) = (
        format!("nats://{}", one.client_addr()),
        format!("nats://{}", two.client_addr()),
    );

    // A service in B on agent one; B on agent two reaches it once the route carries
    // its interest (the event awaited), A on agent two never does.
    let b1 = login(&url1, "b", "pb").await;
    let mut service = b1.subscribe("svc.echo").await.expect("service");
    b1.flush().await.expect("flush");
    let answering = b1.clone();
    tokio::spawn(async move {
        while let Some(req) = service.next().await {
            if let Some(reply) = req.reply {
                let _ = answering.publish(reply, req.payload).await;
            }
        }
    });
    let b2 = login(&url2, "b", "pb").await;
    timeout(EVENTUALLY, async {
        while ask(&b2, "svc.echo", "hi").await != "hi" {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("B's service reachable from agent two");
    let a2 = login(&url2, "a", "pa").await;
    assert_eq!(ask(&a2, "svc.echo", "hi").await, "no responders");

    // Subscribers of both accounts on agent one, same subjects; B publishes on agent
    // two. B's subscriber gets it; A's next message is A's own marker.
    let a1 = login(&url1, "a", "pa").await;
    let mut in_a = a1.subscribe("orders.>").await.expect("sub A");
    let mut in_b = b1.subscribe("orders.>").await.expect("sub B");
    barrier(&a1).await;
    barrier(&b1).await;
    timeout(EVENTUALLY, async {
        loop {
            b2.publish("orders.b", "from-b".into()).await.expect("pub");
            b2.flush().await.expect("flush");
            if let Ok(Some(msg)) = timeout(Duration::from_millis(200), in_b.next()).await {
                return msg;
            }
        }
    })
    .await
    .expect("B's subscriber on agent one gets B's publish from agent two");
    a1.publish("orders.marker", "a".into())
        .await
        .expect("marker");
    a1.flush().await.expect("flush");
    assert_eq!(next_subject(&mut in_a).await, "orders.marker a");

    // A's exported events published on agent two reach B's import on agent one.
    let mut imported = b1.subscribe("from_a.>").await.expect("sub import");
    b1.flush().await.expect("flush");
    let got = timeout(EVENTUALLY, async {
        loop {
            a2.publish("ev.x", "x".into()).await.expect("pub");
            a2.flush().await.expect("flush");
            if let Ok(Some(msg)) = timeout(Duration::from_millis(200), imported.next()).await {
                return msg;
            }
        }
    })
    .await
    .expect("A's export reaches B's import across agents");
    assert_eq!(got.subject.as_str(), "from_a.ev.x");
    drop(cp);
}

/// nats-server's configuration of [`limited`]: account A with JetStream limits.
const LIMITS_CONF: &str = r#"
accounts {
  A { jetstream { max_streams: 1, max_consumers: 1, max_file: 1000 },
      users = [{user: a, password: pa}] }
}
"#;

/// Account A with nats-server's JetStream account limits, as [`LIMITS_CONF`].
fn limited(raw: RawAgentConfig) -> RawAgentConfig {
    use infinistream_config::accounts::RawLimit;
    let limits = BTreeMap::from([
        ("max_streams".to_owned(), RawLimit::Number(1)),
        ("max_consumers".to_owned(), RawLimit::Number(1)),
        ("max_file".to_owned(), RawLimit::Number(1000)),
    ]);
    let a = RawAccount {
        jetstream: Some(RawJetStreamFlag::Limits(limits)),
        users: Some(vec![user("a", "pa")]),
        ..Default::default()
    };
    RawAgentConfig {
        accounts: Some(BTreeMap::from([("A".to_owned(), a)])),
        ..raw
    }
}

/// A JetStream answer's `error` (or `ok`), or a field of it.
fn answer_part(body: &str, field: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    match v.get("error") {
        Some(e) => e.to_string(),
        None => v
            .get(field)
            .map_or_else(|| "ok".to_owned(), ToString::to_string),
    }
}

/// What the limits of [`LIMITS_CONF`] refuse, one line per step; `urls` are the
/// servers to use in turn (one, or two agents of a group).
async fn limits_transcript(urls: &[String]) -> Vec<String> {
    let mut clients = Vec::new();
    for url in urls {
        clients.push(login(url, "a", "pa").await);
    }
    let on = |i: usize| &clients[i % clients.len()];
    let mut t = Vec::new();
    let info = ask(on(0), "$JS.API.INFO", "").await;
    t.push(format!("limits {}", answer_part(&info, "limits")));
    let stream = |name: &str, extra: &str| {
        format!(
            r#"{{"name":"{name}","subjects":["{}.>"],"storage":"file"{extra}}}"#,
            name.to_lowercase()
        )
    };
    for (i, name) in ["S1", "S2"].into_iter().enumerate() {
        let body = ask(
            on(i),
            &format!("$JS.API.STREAM.CREATE.{name}"),
            &stream(name, ""),
        )
        .await;
        t.push(format!("create {name}: {}", answer_part(&body, "none")));
    }
    for (i, name) in ["C1", "C2"].into_iter().enumerate() {
        let body = ask(
            on(i),
            &format!("$JS.API.CONSUMER.DURABLE.CREATE.S1.{name}"),
            &format!(r#"{{"stream_name":"S1","config":{{"durable_name":"{name}","ack_policy":"explicit"}}}}"#),
        )
        .await;
        t.push(format!("consumer {name}: {}", answer_part(&body, "none")));
    }
    // Messages until the account's storage is full (the byte count of a message
    // differs: nats-server counts its file-store record).
    let mut stored = 0;
    let mut refusal = "never refused".to_owned();
    for i in 0..50 {
        let body = ask(on(i), "s1.x", &"x".repeat(100)).await;
        if body.contains(r#""error""#) {
            refusal = answer_part(&body, "error");
            break;
        }
        stored += 1;
    }
    assert!(
        stored > 0,
        "messages were stored before the limit: {t:?} {refusal}"
    );
    t.push(format!("publish past max_file: {refusal}"));
    let body = ask(on(0), "$JS.API.STREAM.DELETE.S1", "").await;
    t.push(format!("delete S1: {}", answer_part(&body, "success")));
    let body = ask(
        on(1),
        "$JS.API.STREAM.CREATE.S3",
        &stream("S3", r#","max_bytes":2000"#),
    )
    .await;
    t.push(format!(
        "create S3 max_bytes 2000: {}",
        answer_part(&body, "none")
    ));
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn account_limits_refuse_like_nats_server() {
    let reference = NatsServer::start(LIMITS_CONF).expect("nats-server");
    let dir = tempfile::tempdir().expect("tempdir");
    let agent = in_process::start(limited(in_process::local(dir.path()))).await;
    let ours = limits_transcript(&[format!("nats://{}", agent.client_addr())]).await;
    let theirs = limits_transcript(&[reference.url()]).await;
    assert_eq!(ours, theirs, "InfiniStream vs nats-server");
    // Not vacuous: each limit refused with its code.
    assert!(ours[0].contains(r#""max_streams":1"#), "{}", ours[0]);
    assert!(ours[2].contains("10027"), "{}", ours[2]);
    assert!(ours[4].contains("10026"), "{}", ours[4]);
    assert!(ours[5].contains("10002"), "{}", ours[5]);
    assert!(ours[7].contains("10047"), "{}", ours[7]);
}

/// The control plane enforces the limits for the group: what one agent created
/// counts on the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn account_limits_hold_across_agents() {
    let reference = NatsServer::start(LIMITS_CONF).expect("nats-server");
    let dir = tempfile::tempdir().expect("tempdir");
    let (cp, one, two) = two_agents(dir.path(), limited).await;
    let ours = limits_transcript(&[
        format!("nats://{}", one.client_addr()),
        format!("nats://{}", two.client_addr()),
    ])
    .await;
    let theirs = limits_transcript(&[reference.url()]).await;
    assert_eq!(ours, theirs, "two agents vs one nats-server");
    assert!(ours[2].contains("10027"), "{}", ours[2]);
    drop(cp);
}

/// JetStream in a named account (A, not `$G`) on two agents of a group, with
/// async-nats and nats.py: publishes acked, a pull consumer fetched and acked, direct
/// get, KV and an object store (read through an ordered push consumer with flow
/// control), each written through one agent and read through the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jetstream_in_a_named_account_works_across_agents() {
    use async_nats::jetstream::{self, consumer, kv, object_store, stream};
    use tokio::io::AsyncReadExt;

    let dir = tempfile::tempdir().expect("tempdir");
    let (cp, one, two) = two_agents(dir.path(), accounts).await;
    let (url1, url2) = (
        format!("nats://{}", one.client_addr()),
        format!("nats://{}", two.client_addr()),
    );
    let js1 = jetstream::new(login(&url1, "a", "pa").await);
    let js2 = jetstream::new(login(&url2, "a", "pa").await);

    js1.create_stream(stream::Config {
        name: "ORDERS".into(),
        subjects: vec!["orders.>".into()],
        allow_direct: true,
        ..Default::default()
    })
    .await
    .expect("stream in A");
    for i in 1..=3u64 {
        let ack = js1
            .publish(format!("orders.{i}"), format!("o{i}").into())
            .await
            .expect("publish")
            .await
            .expect("acked");
        assert_eq!((ack.stream.as_str(), ack.sequence), ("ORDERS", i));
    }
    let orders = js2.get_stream("ORDERS").await.expect("stream via two");
    let direct = orders.direct_get(2).await.expect("direct get via two");
    assert_eq!(&direct.payload[..], b"o2");
    let pull = orders
        .create_consumer(consumer::pull::Config {
            durable_name: Some("worker".into()),
            ack_policy: consumer::AckPolicy::Explicit,
            ..Default::default()
        })
        .await
        .expect("pull consumer via two");
    let mut got = Vec::new();
    while got.len() < 3 {
        let mut batch = pull
            .fetch()
            .max_messages(3)
            .expires(Duration::from_secs(10))
            .messages()
            .await
            .expect("fetch");
        while let Some(msg) = batch.next().await {
            let msg = msg.expect("message");
            got.push(String::from_utf8_lossy(&msg.payload).into_owned());
            msg.double_ack().await.expect("ack");
        }
    }
    assert_eq!(got, ["o1", "o2", "o3"]);
    let mut pull = pull;
    let info = pull.info().await.expect("consumer info");
    assert_eq!(
        (info.ack_floor.stream_sequence, info.num_ack_pending),
        (3, 0)
    );

    let kv1 = js1
        .create_key_value(kv::Config {
            bucket: "settings".into(),
            ..Default::default()
        })
        .await
        .expect("bucket in A");
    let rev = kv1.put("color", "blue".into()).await.expect("kv put");
    let kv2 = js2.get_key_value("settings").await.expect("bucket via two");
    let entry = kv2.entry("color").await.expect("kv get").expect("an entry");
    assert_eq!((&entry.value[..], entry.revision), (&b"blue"[..], rev));

    let store1 = js1
        .create_object_store(object_store::Config {
            bucket: "files".into(),
            ..Default::default()
        })
        .await
        .expect("object store in A");
    let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    store1
        .put("blob", &mut &data[..])
        .await
        .expect("object put");
    let store2 = js2
        .get_object_store("files")
        .await
        .expect("object store via two");
    let mut object = store2.get("blob").await.expect("object get");
    let mut back = Vec::new();
    object.read_to_end(&mut back).await.expect("object read");
    assert!(back == data, "object of {} bytes read back", back.len());

    // A user of B sees none of it.
    let b = login(&url2, "b", "pb").await;
    assert!(
        ask(&b, "$JS.API.STREAM.INFO.ORDERS", "")
            .await
            .contains("10039"),
        "B is refused A's JetStream"
    );

    // nats.py's whole application flow, as user a, through agent two.
    let python = infinistream_testkit::tools::venv_bin("python");
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/py/client.py");
    let url = format!("nats://a:pa@{}", two.client_addr());
    let output = timeout(
        Duration::from_secs(60),
        tokio::process::Command::new(&python)
            .arg(&script)
            .args([url.as_str(), "acct", "py"])
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("nats.py finishes")
    .expect("python runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.lines().any(|l| l.starts_with("OK")),
        "nats.py client.py in account A: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    drop(cp);
}

/// nats-server's configuration of [`two_jetstream_accounts`]: JetStream in A and B.
const TWO_JS_CONF: &str = r#"
accounts {
  A { jetstream: enabled, users = [{user: a, password: pa}],
      exports = [{stream: "orders.>"}] }
  B { jetstream: enabled, users = [{user: b, password: pb}],
      imports = [{stream: {account: A, subject: "orders.>"}, prefix: "from_a"}] }
}
"#;

/// JetStream in accounts A and B, as [`TWO_JS_CONF`]; A keeps the bare stream ids
/// (`bare_stream_ids`, which nats-server does not need), B imports A's `orders.>`
/// under `from_a`.
fn two_jetstream_accounts(raw: RawAgentConfig) -> RawAgentConfig {
    let a = RawAccount {
        jetstream: Some(RawJetStreamFlag::Word("enabled".into())),
        bare_stream_ids: Some(true),
        users: Some(vec![user("a", "pa")]),
        exports: Some(vec![RawExport {
            stream: Some("orders.>".into()),
            ..Default::default()
        }]),
        ..Default::default()
    };
    let b = RawAccount {
        jetstream: Some(RawJetStreamFlag::Flag(true)),
        users: Some(vec![user("b", "pb")]),
        imports: Some(vec![RawImport {
            stream: Some(RawImportSource {
                account: "A".into(),
                subject: "orders.>".into(),
            }),
            prefix: Some("from_a".into()),
            ..Default::default()
        }]),
        ..Default::default()
    };
    RawAgentConfig {
        accounts: Some(BTreeMap::from([("A".to_owned(), a), ("B".to_owned(), b)])),
        ..raw
    }
}

/// A JetStream answer's `error`, or the value at `path` (`-` when absent).
fn pick(body: &str, path: &[&str]) -> String {
    let v: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    if let Some(e) = v.get("error") {
        return e.to_string();
    }
    path.iter()
        .try_fold(&v, |v, key| v.get(*key))
        .map_or_else(|| "-".to_owned(), ToString::to_string)
}

/// Both accounts create `ORDERS` on `orders.>` and a KV bucket `cfg`, publish, and
/// read back; one line per answer. `urls`: the servers to use in turn.
async fn two_accounts_transcript(urls: &[String]) -> Vec<String> {
    use async_nats::jetstream::{self, kv};
    let mut users = Vec::new();
    for (i, url) in urls.iter().enumerate() {
        users.push((
            login(url, "a", "pa").await,
            login(&urls[(i + 1) % urls.len()], "b", "pb").await,
        ));
    }
    let (a, b) = (&users[0].0, &users[0].1);
    let (a2, b2) = (&users[users.len() - 1].0, &users[users.len() - 1].1);
    let mut t = Vec::new();
    let orders = r#"{"name":"ORDERS","subjects":["orders.>"],"allow_direct":true}"#;
    for (who, c) in [("A", a), ("B", b)] {
        let body = ask(c, "$JS.API.STREAM.CREATE.ORDERS", orders).await;
        t.push(format!(
            "{who} create: {}",
            pick(&body, &["config", "subjects"])
        ));
    }
    // What B imports from A is A's subject space, not B's stream: B's ORDERS stores
    // only B's publishes.
    let mut imported = b.subscribe("from_a.orders.>").await.expect("sub import");
    barrier(b).await;
    for (who, c, subject, body) in [
        ("A", a2, "orders.1", "a1"),
        ("A", a, "orders.2", "a2"),
        ("B", b2, "orders.1", "b1"),
    ] {
        let ack = ask(c, subject, body).await;
        t.push(format!(
            "{who} publish {subject}: {} {}",
            pick(&ack, &["stream"]),
            pick(&ack, &["seq"])
        ));
    }
    t.push(format!("B import: {}", next_subject(&mut imported).await));
    for (who, c) in [("A", a2), ("B", b)] {
        let info = ask(c, "$JS.API.STREAM.INFO.ORDERS", "").await;
        t.push(format!(
            "{who} info: {} msgs",
            pick(&info, &["state", "messages"])
        ));
        let names = ask(c, "$JS.API.STREAM.NAMES", "").await;
        t.push(format!("{who} names: {}", pick(&names, &["streams"])));
        let account = ask(c, "$JS.API.INFO", "").await;
        t.push(format!(
            "{who} account streams: {}",
            pick(&account, &["streams"])
        ));
        let got = ask(c, "$JS.API.STREAM.MSG.GET.ORDERS", r#"{"seq":1}"#).await;
        t.push(format!(
            "{who} msg 1: {} {}",
            pick(&got, &["message", "subject"]),
            pick(&got, &["message", "data"])
        ));
        let direct = ask(c, "$JS.API.DIRECT.GET.ORDERS", r#"{"seq":2}"#).await;
        t.push(format!("{who} direct 2: {direct}"));
    }
    // Within an account the subjects still may not overlap.
    let other = r#"{"name":"OTHER","subjects":["orders.new"]}"#;
    let body = ask(b2, "$JS.API.STREAM.CREATE.OTHER", other).await;
    t.push(format!(
        "B overlapping: {}",
        pick(&body, &["config", "name"])
    ));
    // A KV bucket of one name in both.
    for (who, c, value) in [("A", a, "blue"), ("B", b2, "green")] {
        let js = jetstream::new(c.clone());
        let bucket = js
            .create_key_value(kv::Config {
                bucket: "cfg".into(),
                ..Default::default()
            })
            .await
            .unwrap_or_else(|e| panic!("{who}: bucket cfg: {e}"));
        let rev = bucket.put("color", value.into()).await.expect("kv put");
        t.push(format!("{who} kv put: revision {rev}"));
    }
    for (who, c) in [("A", a2), ("B", b)] {
        let js = jetstream::new(c.clone());
        let bucket = js.get_key_value("cfg").await.expect("bucket");
        let entry = bucket.entry("color").await.expect("kv get");
        t.push(format!(
            "{who} kv get: {:?}",
            entry.map(|e| (String::from_utf8_lossy(&e.value).into_owned(), e.revision))
        ));
    }
    for (who, c) in [("A", a), ("B", b2)] {
        let body = ask(c, "$JS.API.STREAM.DELETE.ORDERS", "").await;
        t.push(format!("{who} delete: {}", pick(&body, &["success"])));
    }
    let info = ask(a2, "$JS.API.STREAM.INFO.ORDERS", "").await;
    t.push(format!(
        "A after deletes: {}",
        pick(&info, &["config", "name"])
    ));
    t
}

/// nats.py in account B: publishes to B's `ORDERS`, reads it back by sequence and
/// through direct get, and writes and reads a KV bucket.
const PY_ACCOUNT_B: &str = r#"
import asyncio, sys
import nats

async def main():
    nc = await nats.connect(sys.argv[1], user="b", password="pb")
    js = nc.jetstream()
    ack = await js.publish("orders.py", b"from python")
    assert ack.stream == "ORDERS", ack
    msg = await js.get_msg("ORDERS", ack.seq)
    assert msg.data == b"from python", msg
    first = await js.get_msg("ORDERS", 1, direct=True)
    assert first.data == b"b1", first
    kv = await js.create_key_value(bucket="pycfg")
    await kv.put("color", b"green")
    entry = await kv.get("color")
    assert entry.value == b"green", entry
    info = await js.stream_info("ORDERS")
    print("OK", info.state.messages)
    await nc.close()

asyncio.run(main())
"#;

/// nats.py as user `b` after user `a` stored `a1`, `a2` and `b` stored `b1`: it
/// sees only B's messages.
async fn py_in_account_b(url: &str, dir: &std::path::Path) -> String {
    let a = login(url, "a", "pa").await;
    let b = login(url, "b", "pb").await;
    let orders = r#"{"name":"ORDERS","subjects":["orders.>"],"allow_direct":true}"#;
    for c in [&a, &b] {
        ask(c, "$JS.API.STREAM.CREATE.ORDERS", orders).await;
    }
    for (c, body) in [(&a, "a1"), (&a, "a2"), (&b, "b1")] {
        ask(c, "orders.1", body).await;
    }
    let script = dir.join("account_b.py");
    std::fs::write(&script, PY_ACCOUNT_B).expect("script");
    let output = py_client::run(&script, url).await;
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout).trim(),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// JetStream in two accounts at once on one agent: both have a stream `ORDERS` on
/// `orders.>` and a KV bucket `cfg`, each reads back only its own data (async-nats
/// and nats.py), an import shares what it names and nothing of the other's stream;
/// the answers are nats-server 2.15.1's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_jetstream_accounts_own_streams_of_one_name_like_nats_server() {
    let reference = NatsServer::start(TWO_JS_CONF).expect("nats-server");
    let dir = tempfile::tempdir().expect("tempdir");
    let agent = in_process::start(two_jetstream_accounts(in_process::local(dir.path()))).await;
    let url = format!("nats://{}", agent.client_addr());
    let ours = two_accounts_transcript(std::slice::from_ref(&url)).await;
    let theirs = two_accounts_transcript(&[reference.url()]).await;
    assert_eq!(ours, theirs, "InfiniStream vs nats-server");
    // Not vacuous: each account counted and read its own messages only.
    assert!(ours.contains(&"A info: 2 msgs".to_owned()), "{ours:?}");
    assert!(ours.contains(&"B info: 1 msgs".to_owned()), "{ours:?}");
    assert!(
        ours.contains(&r#"B kv get: Some(("green", 1))"#.to_owned()),
        "{ours:?}"
    );
    assert!(
        ours.iter()
            .any(|l| l.starts_with("B overlapping: ") && l.contains("10065"))
    );

    let py_dir = tempfile::tempdir().expect("tempdir");
    let py_ours = py_in_account_b(&url, py_dir.path()).await;
    let py_theirs = py_in_account_b(&reference.url(), py_dir.path()).await;
    assert_eq!(py_ours, py_theirs, "nats.py: InfiniStream vs nats-server");
    assert_eq!(py_ours, "OK 2");

    // A consumer in the account that keeps the bare ids works; in the other, not yet
    // (a clear refusal, where nats-server creates it).
    let consumer =
        r#"{"stream_name":"ORDERS","config":{"durable_name":"worker","ack_policy":"explicit"}}"#;
    let a = login(&url, "a", "pa").await;
    let b = login(&url, "b", "pb").await;
    let in_a = ask(
        &a,
        "$JS.API.CONSUMER.DURABLE.CREATE.ORDERS.worker",
        consumer,
    )
    .await;
    assert_eq!(pick(&in_a, &["name"]), "\"worker\"", "{in_a}");
    let in_b = ask(
        &b,
        "$JS.API.CONSUMER.DURABLE.CREATE.ORDERS.worker",
        consumer,
    )
    .await;
    assert!(in_b.contains("not supported yet"), "{in_b}");
}

/// The same on two agents of a group: each account's requests alternate between
/// the agents, so what one agent stored is read through the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_jetstream_accounts_across_agents_like_nats_server() {
    let reference = NatsServer::start(TWO_JS_CONF).expect("nats-server");
    let dir = tempfile::tempdir().expect("tempdir");
    let (cp, one, two) = two_agents(dir.path(), two_jetstream_accounts).await;
    let ours = two_accounts_transcript(&[
        format!("nats://{}", one.client_addr()),
        format!("nats://{}", two.client_addr()),
    ])
    .await;
    let theirs = two_accounts_transcript(&[reference.url()]).await;
    assert_eq!(ours, theirs, "two agents vs one nats-server");
    assert!(ours.contains(&"B info: 1 msgs".to_owned()), "{ours:?}");
    drop(cp);
}

/// [`two_jetstream_accounts`] with the roles split: agent `one` captures publishes
/// (and runs the jobs), agent `two` serves reads; each forwards to the other what it
/// does not serve.
fn two_jetstream_accounts_split(raw: RawAgentConfig) -> RawAgentConfig {
    use infinistream_config::RolesValue;
    let roles = match raw.server_name.as_deref() {
        Some("one") => "proxy-produce,jobs",
        _ => "proxy-consume",
    };
    two_jetstream_accounts(RawAgentConfig {
        roles: Some(RolesValue::List(roles.into())),
        ..raw
    })
}

/// The same with the roles split between the two agents: publishes through `two`
/// are forwarded to `one`, reads through `one` to `two`, in each account.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_jetstream_accounts_with_split_roles_like_nats_server() {
    let reference = NatsServer::start(TWO_JS_CONF).expect("nats-server");
    let dir = tempfile::tempdir().expect("tempdir");
    let (cp, one, two) = two_agents(dir.path(), two_jetstream_accounts_split).await;
    // Forwarding needs the agents linked: wait for each to see the other.
    timeout(EVENTUALLY, async {
        while one.broker().peers().is_empty() || two.broker().peers().is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the agents link up");
    let ours = two_accounts_transcript(&[
        format!("nats://{}", one.client_addr()),
        format!("nats://{}", two.client_addr()),
    ])
    .await;
    let theirs = two_accounts_transcript(&[reference.url()]).await;
    assert_eq!(ours, theirs, "split roles vs one nats-server");
    assert!(ours.contains(&"B info: 1 msgs".to_owned()), "{ours:?}");
    drop(cp);
}
