//! The NATS system API (`$SYS.REQ.*`) that operators' tools read (`nats server list`,
//! `server info`, `server report jetstream`, `account info`):
//! - every request is answered in nats-server's JSON shape: the keys of each answer are
//!   compared with a real nats-server 2.15.1's answer to the same request;
//! - on a group of three agent processes, a PING made through one agent gets exactly
//!   one answer from each agent, and `$SYS.REQ.SERVER.<id>.*` reaches that agent only.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use async_nats::client::RequestErrorKind;
use futures::StreamExt;
use infinistream_testkit::nats::NatsServer;
use serde_json::Value;
use tokio::time::timeout;

#[path = "support/procs.rs"]
mod procs;
use procs::{Agent, agent_cmd, http_get, key_paths, remote_agent_cmd, start_agent};

/// Generous bound for "this should happen"; never a timing assertion.
const EVENTUALLY: Duration = Duration::from_secs(30);

/// nats-server answers the server endpoints to system-account users only, and account
/// CONNZ / USER.INFO to any account: one user of each.
const REFERENCE_CONFIG: &str = r#"
accounts {
  APP { jetstream: enabled, users: [ {user: app, password: app} ] }
  SYS { users: [ {user: sys, password: sys} ] }
}
system_account: SYS
"#;

async fn connect(url: &str, user: Option<&str>) -> async_nats::Client {
    let mut opts = async_nats::ConnectOptions::new().request_timeout(Some(Duration::from_secs(10)));
    if let Some(user) = user {
        opts = opts.user_and_password(user.to_owned(), user.to_owned());
    }
    opts.connect(url).await.expect("connect")
}

async fn agent_client(addr: SocketAddr) -> async_nats::Client {
    connect(&format!("nats://{addr}"), None).await
}

async fn request(client: &async_nats::Client, subject: &str, body: &str) -> Value {
    let msg = client
        .request(subject.to_owned(), body.to_owned().into())
        .await
        .unwrap_or_else(|e| panic!("{subject}: {e}"));
    serde_json::from_slice(&msg.payload)
        .unwrap_or_else(|e| panic!("{subject}: not JSON ({e}): {:?}", msg.payload))
}

/// Keys InfiniStream may send that this nats-server's answer lacks: fields nats-server
/// leaves out when empty or false (a standalone server has no cluster, its `/varz`
/// no `connect_urls`, its JetStream config no `sync_always`), and InfiniStream's own.
const MAY_ADD: &[&str] = &[
    "server.cluster",
    "data.connect_urls",
    "data.infinistream_version",
    "data.jetstream_enabled",
    "data.jetstream.config.sync_always",
    "data.config.sync_always",
    "statsz.jetstream.config.sync_always",
];

/// Compares InfiniStream's answer with nats-server's: every key InfiniStream sends is
/// one nats-server sends (or [`MAY_ADD`]), and InfiniStream sends `required`.
fn same_shape(what: &str, ours: &Value, reference: &Value, required: &[&str]) {
    let (ours, theirs) = (key_paths(ours), key_paths(reference));
    let extra: Vec<&String> = ours
        .difference(&theirs)
        .filter(|k| !MAY_ADD.contains(&k.as_str()))
        .collect();
    assert!(
        extra.is_empty(),
        "{what}: keys nats-server does not send: {extra:?}\nnats-server: {theirs:?}"
    );
    for key in required {
        assert!(ours.contains(*key), "{what}: `{key}` missing in {ours:?}");
        assert!(
            theirs.contains(*key),
            "{what}: `{key}` is not in nats-server's answer {theirs:?}"
        );
    }
}

/// The envelope keys every answer but STATSZ and IDZ carries.
const SERVER: &[&str] = &[
    "server.name",
    "server.host",
    "server.id",
    "server.ver",
    "server.jetstream",
    "server.flags",
    "server.seq",
    "server.time",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn system_api_answers_in_nats_server_shapes() {
    let mut reference = NatsServer::start(REFERENCE_CONFIG).expect("start nats-server");
    let sys = connect(&reference.url(), Some("sys")).await;
    let app = connect(&reference.url(), Some("app")).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let agent = start_agent(agent_cmd(dir.path(), &[]));
    let ours = agent_client(agent.client).await;
    // A stream and a consumer, so JSZ has details to show.
    let js = async_nats::jetstream::new(ours.clone());
    js.create_stream(async_nats::jetstream::stream::Config {
        name: "SYSAPI".into(),
        subjects: vec!["sysapi.>".into()],
        ..Default::default()
    })
    .await
    .expect("create stream");

    let with = |keys: &[&'static str]| -> Vec<&'static str> {
        SERVER.iter().chain(keys).copied().collect()
    };
    let cases: Vec<(&str, &str, &async_nats::Client, Vec<&str>)> = vec![
        (
            "$SYS.REQ.SERVER.PING",
            "",
            &sys,
            vec![
                "server.name",
                "server.id",
                "server.ver",
                "server.jetstream",
                "statsz.start",
                "statsz.mem",
                "statsz.cores",
                "statsz.cpu",
                "statsz.connections",
                "statsz.total_connections",
                "statsz.subscriptions",
                "statsz.sent.msgs",
                "statsz.received.bytes",
                "statsz.slow_consumers",
                "statsz.active_servers",
                "statsz.jetstream.stats.api.level",
            ],
        ),
        (
            "$SYS.REQ.SERVER.PING.STATSZ",
            "{}",
            &sys,
            vec!["server.id", "statsz.connections"],
        ),
        (
            "$SYS.REQ.SERVER.PING.VARZ",
            "",
            &sys,
            with(&[
                "data.server_id",
                "data.server_name",
                "data.version",
                "data.host",
                "data.port",
                "data.max_payload",
                "data.start",
                "data.uptime",
                "data.mem",
                "data.cpu",
                "data.connections",
                "data.subscriptions",
                "data.jetstream.config.max_memory",
                "data.jetstream.stats.api.level",
            ]),
        ),
        (
            "$SYS.REQ.SERVER.PING.JSZ",
            r#"{"streams":true,"config":true}"#,
            &sys,
            with(&[
                "data.server_id",
                "data.streams",
                "data.consumers",
                "data.messages",
                "data.bytes",
                "data.api.level",
                "data.account_details.stream_detail.name",
                "data.account_details.stream_detail.config.name",
                "data.account_details.stream_detail.state.messages",
            ]),
        ),
        (
            "$SYS.REQ.SERVER.PING.CONNZ",
            "",
            &sys,
            with(&[
                "data.server_id",
                "data.num_connections",
                "data.connections.cid",
                "data.connections.ip",
            ]),
        ),
        (
            "$SYS.REQ.SERVER.PING.HEALTHZ",
            "",
            &sys,
            with(&["data.status", "data.status_code"]),
        ),
        (
            "$SYS.REQ.SERVER.PING.IDZ",
            "",
            &sys,
            vec!["name", "host", "id"],
        ),
        (
            "$SYS.REQ.USER.INFO",
            "",
            &app,
            with(&["data.user", "data.account", "data.account_name"]),
        ),
        (
            "$SYS.REQ.ACCOUNT.PING.CONNZ",
            "",
            &app,
            with(&["data.num_connections", "data.connections.cid"]),
        ),
        (
            "$SYS.REQ.ACCOUNT.PING.STATZ",
            "",
            &app,
            with(&[
                "data.server_id",
                "data.account_statz.acc",
                "data.account_statz.conns",
                "data.account_statz.num_subscriptions",
                "data.account_statz.sent.msgs",
            ]),
        ),
        // A body that is not the endpoint's options: a 400 error envelope.
        (
            "$SYS.REQ.SERVER.PING.HEALTHZ",
            "{bad",
            &sys,
            with(&["error.code", "error.description"]),
        ),
    ];
    // The reference needs a stream for JSZ's details too.
    let ref_js = async_nats::jetstream::new(app.clone());
    ref_js
        .create_stream(async_nats::jetstream::stream::Config {
            name: "SYSAPI".into(),
            subjects: vec!["sysapi.>".into()],
            ..Default::default()
        })
        .await
        .expect("reference stream");
    for (subject, body, reference_client, required) in &cases {
        let theirs = request(reference_client, subject, body).await;
        let mine = request(&ours, subject, body).await;
        same_shape(&format!("{subject} {body}"), &mine, &theirs, required);
    }

    // Values the tools rely on.
    let statsz = request(&ours, "$SYS.REQ.SERVER.PING", "").await;
    let varz = request(&ours, "$SYS.REQ.SERVER.PING.VARZ", "").await;
    let id = varz["data"]["server_id"]
        .as_str()
        .expect("server id")
        .to_owned();
    assert_eq!(statsz["server"]["id"], id);
    assert_eq!(statsz["server"]["flags"], 1, "JetStream capability");
    assert_eq!(statsz["server"]["jetstream"], true);
    assert_eq!(
        varz["data"]["jetstream"]["stats"]["api"]["level"], 2,
        "the API level InfiniStream implements"
    );
    let healthz = request(&ours, "$SYS.REQ.SERVER.PING.HEALTHZ", "{bad").await;
    assert_eq!(healthz["error"]["code"], 400);
    let user = request(&ours, "$SYS.REQ.USER.INFO", "").await;
    assert_eq!(user["data"]["account"], "$G");
    // The direct subject of this agent answers; another id has no responder.
    let direct = request(&ours, &format!("$SYS.REQ.SERVER.{id}.VARZ"), "").await;
    assert_eq!(direct["data"]["server_id"], id);
    let missing = ours
        .request("$SYS.REQ.SERVER.NOSUCHSERVER.VARZ", "".into())
        .await
        .expect_err("nobody answers another server's subject");
    assert_eq!(missing.kind(), RequestErrorKind::NoResponders);
    // A filter that does not select this agent gets no answer: sent before one that
    // does (to another reply subject), the first answer to arrive is the second's,
    // since one subject's requests are answered in order.
    let inbox = ours.new_inbox();
    let mut answers = ours
        .subscribe(format!("{inbox}.>"))
        .await
        .expect("subscribe");
    for (tag, body) in [
        (
            "filtered",
            r#"{"server_name":"no-such-agent","exact_match":true}"#,
        ),
        ("selected", "{}"),
    ] {
        ours.publish_with_reply(
            "$SYS.REQ.SERVER.PING.VARZ",
            format!("{inbox}.{tag}"),
            body.to_owned().into(),
        )
        .await
        .expect("publish");
    }
    let first = timeout(EVENTUALLY, answers.next())
        .await
        .expect("an answer")
        .expect("open");
    assert_eq!(first.subject.as_str(), format!("{inbox}.selected"));
    drop(reference.output());
}

/// Requests until `subject` is answered (the event that the mesh carries it): a
/// request made before that gets no-responders or no answer.
async fn until_answered(client: &async_nats::Client, subject: &str) -> Value {
    timeout(EVENTUALLY, async {
        loop {
            match client.request(subject.to_owned(), "".into()).await {
                Ok(msg) => return serde_json::from_slice::<Value>(&msg.payload).expect("json"),
                Err(e)
                    if matches!(
                        e.kind(),
                        RequestErrorKind::NoResponders | RequestErrorKind::TimedOut
                    ) =>
                {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("{subject}: {e}"),
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{subject} was never answered"))
}

/// The next message on `sub`.
async fn next(sub: &mut async_nats::Subscriber) -> async_nats::Message {
    timeout(EVENTUALLY, sub.next())
        .await
        .expect("an answer in time")
        .expect("subscription open")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ping_gets_one_answer_per_agent_of_the_group() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_cp, bucket) = procs::embedded_control_plane(dir.path());
    let cp = &_cp;
    let agents: Vec<Agent> = ["a", "b", "c"]
        .iter()
        .map(|name| start_agent(remote_agent_cmd(&dir.path().join(name), cp, &bucket, &[])))
        .collect();
    let mut ids = BTreeSet::new();
    for agent in &agents {
        let (status, body) = http_get(agent.http, "/varz").await;
        assert_eq!(status, 200);
        let varz: Value = serde_json::from_str(&body).expect("varz json");
        ids.insert(varz["server_id"].as_str().expect("server_id").to_owned());
    }
    assert_eq!(ids.len(), 3);
    let client = agent_client(agents[0].client).await;
    let inbox = client.new_inbox();
    let mut answers = client
        .subscribe(format!("{inbox}.>"))
        .await
        .expect("subscribe");
    client.flush().await.expect("flush");
    // Each agent's own subject, asked through agent a, is answered by that agent: the
    // mesh is up, and (interest crosses a link in order) every agent knows the inbox.
    for id in &ids {
        let idz = until_answered(&client, &format!("$SYS.REQ.SERVER.{id}.IDZ")).await;
        assert_eq!(idz["id"], id.as_str(), "the addressed agent answers");
        let varz = until_answered(&client, &format!("$SYS.REQ.SERVER.{id}.VARZ")).await;
        assert_eq!(varz["data"]["server_id"], id.as_str());
        assert_eq!(varz["server"]["cluster"], procs::GROUP_ID);
    }

    // Every agent linked to both others (STATSZ counts them in `active_servers`).
    for agent in &agents {
        timeout(EVENTUALLY, async {
            loop {
                let (_, body) = http_get(agent.http, "/varz").await;
                let varz: Value = serde_json::from_str(&body).expect("varz json");
                if varz["routes"] == 2 {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await
        .expect("a full mesh");
    }

    // Round 1, then round 2 as its barrier: each agent answers one subject's requests
    // in order and each link is FIFO, so a second answer to round 1 would arrive before
    // that agent's answer to round 2, on round 1's reply subject.
    for endpoint in ["$SYS.REQ.SERVER.PING", "$SYS.REQ.SERVER.PING.JSZ"] {
        for round in ["r1", "r2"] {
            client
                .publish_with_reply(endpoint, format!("{inbox}.{endpoint}.{round}"), "".into())
                .await
                .expect("publish");
            client.flush().await.expect("flush");
            let mut answered = BTreeSet::new();
            while answered.len() < 3 {
                let msg = next(&mut answers).await;
                assert_eq!(
                    msg.subject.as_str(),
                    format!("{inbox}.{endpoint}.{round}"),
                    "an answer to an earlier round: a duplicate"
                );
                let answer: Value = serde_json::from_slice(&msg.payload).expect("json");
                let id = answer["server"]["id"].as_str().expect("id").to_owned();
                assert!(ids.contains(&id), "answer from an unknown server {id}");
                assert!(
                    answered.insert(id.clone()),
                    "{id} answered {endpoint} twice"
                );
                if endpoint.ends_with("PING") {
                    assert_eq!(answer["statsz"]["active_servers"], 3);
                } else {
                    assert_eq!(answer["data"]["server_id"], id.as_str());
                }
            }
        }
    }
}

/// The metadata keys of `config` in a JetStream answer, with `_nats.req.level`'s value.
fn versioning(answer: &Value) -> (BTreeSet<String>, Value) {
    let metadata = &answer["config"]["metadata"];
    let keys = metadata
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    (keys, metadata["_nats.req.level"].clone())
}

fn keys(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|k| (*k).to_owned()).collect()
}

/// nats-server's `_nats.*` metadata (ADR-44): `_nats.req.level` stored on create and
/// update (what the asset's features need), `_nats.ver` and `_nats.level` added to the
/// create / update / info answers only (never stored, so not in LIST), and a request
/// whose `Nats-Required-Api-Level` is above the server's level refused with 10185 (a
/// 412 status for direct gets).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jetstream_versioning_metadata_as_nats_server() {
    let reference = NatsServer::start(REFERENCE_CONFIG).expect("start nats-server");
    let app = connect(&reference.url(), Some("app")).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let agent = start_agent(agent_cmd(dir.path(), &[]));
    let ours = agent_client(agent.client).await;
    for (server, client) in [("nats-server", &app), ("infinistream", &ours)] {
        let created = request(client,
            "$JS.API.STREAM.CREATE.VER",
            r#"{"name":"VER","subjects":["ver.>"],"allow_direct":true,"metadata":{"app":"x","_nats.level":"99"}}"#,
        )
        .await;
        let answered = keys(&["_nats.level", "_nats.req.level", "_nats.ver", "app"]);
        assert_eq!(
            versioning(&created),
            (answered.clone(), "0".into()),
            "{server} create"
        );
        let level = created["config"]["metadata"]["_nats.level"].clone();
        // The same config again is the same stream (the level the client sent is not kept).
        let again = request(
            client,
            "$JS.API.STREAM.CREATE.VER",
            r#"{"name":"VER","subjects":["ver.>"],"allow_direct":true,"metadata":{"app":"x"}}"#,
        )
        .await;
        assert!(again.get("error").is_none(), "{server}: {again}");
        let info = request(client, "$JS.API.STREAM.INFO.VER", "").await;
        assert_eq!(
            versioning(&info),
            (answered.clone(), "0".into()),
            "{server} info"
        );
        let list = request(client, "$JS.API.STREAM.LIST", "{}").await;
        let listed = &list["streams"][0];
        assert_eq!(
            versioning(listed),
            (keys(&["_nats.req.level", "app"]), "0".into()),
            "{server} list shows the stored metadata"
        );
        // Per-message TTL needs level 1.
        let updated = request(
            client,
            "$JS.API.STREAM.UPDATE.VER",
            r#"{"name":"VER","subjects":["ver.>"],"allow_direct":true,"allow_msg_ttl":true}"#,
        )
        .await;
        assert_eq!(
            versioning(&updated),
            (
                keys(&["_nats.level", "_nats.req.level", "_nats.ver"]),
                "1".into()
            ),
            "{server} update"
        );
        let consumer = request(
            client,
            "$JS.API.CONSUMER.CREATE.VER.C",
            r#"{"stream_name":"VER","config":{"durable_name":"C","ack_policy":"explicit"}}"#,
        )
        .await;
        let consumer_keys = keys(&["_nats.level", "_nats.req.level", "_nats.ver"]);
        assert_eq!(
            versioning(&consumer),
            (consumer_keys.clone(), "0".into()),
            "{server} consumer create"
        );
        let cinfo = request(client, "$JS.API.CONSUMER.INFO.VER.C", "").await;
        assert_eq!(versioning(&cinfo), (consumer_keys, "0".into()));
        let clist = request(client, "$JS.API.CONSUMER.LIST.VER", "{}").await;
        assert_eq!(
            versioning(&clist["consumers"][0]),
            (keys(&["_nats.req.level"]), "0".into()),
            "{server} consumer list"
        );
        // Required API level above the server's: refused.
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Required-Api-Level", "99");
        let refused = client
            .request_with_headers("$JS.API.STREAM.INFO.VER", headers.clone(), "".into())
            .await
            .expect("answer");
        let refused: Value = serde_json::from_slice(&refused.payload).expect("json");
        assert_eq!(refused["error"]["err_code"], 10185, "{server}: {refused}");
        assert_eq!(refused["error"]["code"], 412);
        let direct = client
            .request_with_headers("$JS.API.DIRECT.GET.VER.ver.a", headers, "".into())
            .await
            .expect("answer");
        assert_eq!(
            direct.status.map(|s| s.as_u16()),
            Some(412),
            "{server}: direct get status"
        );
        // At or below the server's level: served.
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Required-Api-Level", level.as_str().expect("level"));
        let served = client
            .request_with_headers("$JS.API.STREAM.INFO.VER", headers, "".into())
            .await
            .expect("answer");
        let served: Value = serde_json::from_slice(&served.payload).expect("json");
        assert!(served.get("error").is_none(), "{server}: {served}");
        if server == "infinistream" {
            assert_eq!(level, "2", "the API level InfiniStream implements");
            let account = request(client, "$JS.API.INFO", "").await;
            assert_eq!(account["api"]["level"], 2);
        }
    }
}
