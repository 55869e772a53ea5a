//! Priority-group scenarios (ADR-42): raw requests through async-nats whose
//! transcripts are compared between nats-server 2.15.1 and InfiniStream. Run by
//! `priority_groups` against an in-process agent and by `e2e_consumers_s3_etcd`
//! against an agent on a real S3 server with its control plane over etcd. Each
//! scenario creates stream `S` and deletes it at the end.

use std::time::Duration;

use async_nats::jetstream;
use bytes::Bytes;
use futures::StreamExt;
use serde_json::{Value, json};

pub const WAIT: Duration = Duration::from_secs(20);

pub async fn connect(url: &str) -> async_nats::Client {
    async_nats::connect(url).await.expect("connect")
}

pub async fn api(client: &async_nats::Client, subject: &str, body: Option<Value>) -> Value {
    let payload = body.map_or_else(Bytes::new, |b| Bytes::from(b.to_string()));
    let reply = tokio::time::timeout(WAIT, client.request(subject.to_owned(), payload))
        .await
        .expect("api reply in time")
        .expect("api reply");
    serde_json::from_slice(&reply.payload).expect("json reply")
}

/// The PINNED and UNPINNED advisories of `tail` (`>` or `<stream>.<consumer>`).
pub async fn pin_advisories(
    client: &async_nats::Client,
    tail: &str,
) -> futures::stream::Select<async_nats::Subscriber, async_nats::Subscriber> {
    let sub = |kind: &str| client.subscribe(format!("$JS.EVENT.ADVISORY.CONSUMER.{kind}.{tail}"));
    let pinned = sub("PINNED").await.expect("subscribe");
    let unpinned = sub("UNPINNED").await.expect("subscribe");
    client.flush().await.expect("flush");
    futures::stream::select(pinned, unpinned)
}

/// Pins seen so far, named by order of appearance (ids differ between servers).
#[derive(Default)]
struct Pins(Vec<String>);

impl Pins {
    fn name(&mut self, id: &str) -> String {
        if id.is_empty() {
            return "''".into();
        }
        let i = match self.0.iter().position(|p| p == id) {
            Some(i) => i,
            None => {
                self.0.push(id.to_owned());
                self.0.len() - 1
            }
        };
        format!("pin{}", i + 1)
    }
}

/// An API answer as the transcript keeps it: the error, or the priority fields.
fn answer(v: &Value, pins: &mut Pins) -> String {
    if let Some(e) = v.get("error") {
        return format!("error {} {} {}", e["code"], e["err_code"], e["description"]);
    }
    let mut out = format!("ok {}", v["type"]);
    if let Some(cfg) = v.get("config") {
        out += &format!(
            " policy={} groups={} timeout={}",
            cfg["priority_policy"], cfg["priority_groups"], cfg["priority_timeout"]
        );
    }
    if let Some(groups) = v.get("priority_groups").and_then(Value::as_array) {
        for g in groups {
            let id = g["pinned_client_id"].as_str().unwrap_or_default();
            let ts = g["pinned_ts"].as_str().unwrap_or_default();
            out += &format!(
                " [{} {} ts_zero={}]",
                g["group"],
                pins.name(id),
                ts == "0001-01-01T00:00:00Z"
            );
        }
    }
    out
}

/// Sends a raw pull and records up to `n` replies (messages or statuses).
async fn pull(
    client: &async_nats::Client,
    consumer: &str,
    body: &str,
    n: usize,
    pins: &mut Pins,
) -> Vec<String> {
    let inbox = client.new_inbox();
    let mut sub = client.subscribe(inbox.clone()).await.expect("subscribe");
    client
        .publish_with_reply(
            format!("$JS.API.CONSUMER.MSG.NEXT.S.{consumer}"),
            inbox,
            Bytes::from(body.to_owned()),
        )
        .await
        .expect("pull");
    client.flush().await.expect("flush");
    let mut out = Vec::new();
    while out.len() < n {
        let Ok(Some(m)) = tokio::time::timeout(WAIT, sub.next()).await else {
            out.push("nothing".into());
            break;
        };
        let headers = m.headers.clone().unwrap_or_default();
        let header = |name: &str| headers.get(name).map(|v| v.as_str().to_owned());
        if let Some(status) = m.status {
            out.push(format!(
                "status {} {:?} pending={:?}/{:?}",
                status.as_u16(),
                m.description.clone().unwrap_or_default(),
                header("Nats-Pending-Messages"),
                header("Nats-Pending-Bytes"),
            ));
            break;
        }
        let pin = header("Nats-Pin-Id").map(|p| pins.name(&p));
        out.push(format!(
            "msg {} pin={pin:?}",
            String::from_utf8_lossy(&m.payload)
        ));
    }
    out
}

pub fn create(name: &str, extra: Value) -> Value {
    let mut config = json!({"durable_name": name, "ack_policy": "explicit"});
    if let (Some(c), Some(e)) = (config.as_object_mut(), extra.as_object()) {
        c.extend(e.clone());
    }
    json!({"stream_name": "S", "config": config})
}

/// Creates each consumer (name, config fields) on stream `S`; the answers.
async fn create_all(
    client: &async_nats::Client,
    creates: impl IntoIterator<Item = (&str, Value)>,
    pins: &mut Pins,
) -> Vec<String> {
    let mut t = Vec::new();
    for (name, extra) in creates {
        let v = api(
            client,
            &format!("$JS.API.CONSUMER.CREATE.S.{name}"),
            Some(create(name, extra)),
        )
        .await;
        t.push(format!("create {name}: {}", answer(&v, pins)));
    }
    t
}

/// The scenario both servers run; its transcript.
pub async fn pinned_and_overflow(client: &async_nats::Client) -> Vec<String> {
    let mut pins = Pins::default();
    let mut t = Vec::new();
    let mut advisories = pin_advisories(client, ">").await;
    api(
        client,
        "$JS.API.STREAM.CREATE.S",
        Some(json!({"name": "S", "subjects": ["s.>"]})),
    )
    .await;
    let js = jetstream::new(client.clone());
    for i in 0..5 {
        js.publish("s.a", Bytes::from(format!("x{i}")))
            .await
            .expect("publish")
            .await
            .expect("acked");
    }
    let creates = [
        (
            "O",
            json!({"priority_policy": "overflow", "priority_groups": ["A"]}),
        ),
        (
            "P",
            json!({"priority_policy": "pinned_client", "priority_groups": ["A"], "priority_timeout": 1_000_000_000}),
        ),
        ("E", json!({"priority_policy": "overflow"})),
        ("E", json!({"priority_groups": ["A"]})),
        ("E", json!({"priority_timeout": 1000})),
        (
            "E",
            json!({"priority_policy": "pinned_client", "priority_groups": ["A"], "deliver_subject": "d"}),
        ),
        (
            "E",
            json!({"priority_policy": "overflow", "priority_groups": ["bad.name"]}),
        ),
        (
            "E",
            json!({"priority_policy": "overflow", "priority_groups": [""]}),
        ),
    ];
    t.extend(create_all(client, creates, &mut pins).await);
    let short = r#""expires":500000000"#;
    let pulls = [
        ("P", format!(r#"{{"batch":1,{short}}}"#)),
        ("P", String::new()),
        ("P", format!(r#"{{"batch":1,"group":"B",{short}}}"#)),
        (
            "P",
            format!(r#"{{"batch":1,"group":"A","min_pending":3,{short}}}"#),
        ),
        (
            "P",
            format!(r#"{{"batch":1,"group":"A","priority":10,{short}}}"#),
        ),
        (
            "O",
            format!(r#"{{"batch":1,"group":"A","id":"x",{short}}}"#),
        ),
        ("P", format!(r#"{{"batch":1,"group":"A",{short}}}"#)),
    ];
    for (consumer, body) in pulls {
        let r = pull(client, consumer, &body, 1, &mut pins).await;
        t.push(format!("pull {consumer} {body}: {r:?}"));
    }
    let pin1 = pins.0.first().cloned().unwrap_or_default();
    let v = api(client, "$JS.API.CONSUMER.INFO.S.P", None).await;
    t.push(format!("info P: {}", answer(&v, &mut pins)));
    for body in [
        format!(r#"{{"batch":1,"group":"A","id":"wrong",{short}}}"#),
        format!(r#"{{"batch":1,"group":"A",{short}}}"#),
    ] {
        let r = pull(client, "P", &body, 1, &mut pins).await;
        t.push(format!("pull P {body}: {r:?}"));
    }
    let body = format!(r#"{{"batch":2,"group":"A","id":"{pin1}",{short}}}"#);
    let r = pull(client, "P", &body, 2, &mut pins).await;
    t.push(format!("pull P with pin1: {r:?}"));
    for (target, body) in [
        ("S.P", Some(json!({"group": "B"}))),
        ("S.P", Some(json!({}))),
        ("S.P", Some(json!({"group": "a.b"}))),
        ("S.P", None),
        ("S.NOPE", Some(json!({"group": "A"}))),
        ("NOPE.P", Some(json!({"group": "A"}))),
        ("S.O", Some(json!({"group": "A"}))),
        ("S.P", Some(json!({"group": "A"}))),
    ] {
        let v = api(
            client,
            &format!("$JS.API.CONSUMER.UNPIN.{target}"),
            body.clone(),
        )
        .await;
        t.push(format!(
            "unpin {target} {body:?}: {}",
            answer(&v, &mut pins)
        ));
    }
    let body = format!(r#"{{"batch":1,"group":"A","id":"{pin1}",{short}}}"#);
    let r = pull(client, "P", &body, 1, &mut pins).await;
    t.push(format!("pull P old pin1: {r:?}"));
    let r = pull(
        client,
        "P",
        &format!(r#"{{"batch":1,"group":"A",{short}}}"#),
        1,
        &mut pins,
    )
    .await;
    t.push(format!("pull P fresh: {r:?}"));
    let v = api(client, "$JS.API.CONSUMER.INFO.S.P", None).await;
    t.push(format!("info P: {}", answer(&v, &mut pins)));
    // Overflow: 5 messages, none delivered to O yet.
    for body in [
        format!(r#"{{"batch":1,"group":"A","min_pending":100,{short}}}"#),
        format!(r#"{{"batch":5,"group":"A","min_pending":2,{short}}}"#),
        format!(r#"{{"batch":5,"group":"A","min_ack_pending":2,{short}}}"#),
    ] {
        let r = pull(client, "O", &body, 6, &mut pins).await;
        t.push(format!("pull O {body}: {r:?}"));
    }
    // The pinned client stops pulling: after priority_timeout (1 s) the pin is dropped.
    let mut seen = Vec::new();
    loop {
        let Ok(Some(m)) = tokio::time::timeout(WAIT, advisories.next()).await else {
            seen.push("no more advisories".to_owned());
            break;
        };
        let v: Value = serde_json::from_slice(&m.payload).expect("advisory json");
        let id = v["pinned_id"].as_str().map(|p| pins.name(p));
        let reason = v["reason"].as_str().unwrap_or_default().to_owned();
        seen.push(format!(
            "{} {} account={} group={} pinned={id:?} reason={reason}",
            m.subject, v["type"], v["account"], v["group"]
        ));
        if reason == "timeout" {
            break;
        }
    }
    t.extend(seen);
    let v = api(client, "$JS.API.CONSUMER.INFO.S.P", None).await;
    t.push(format!("info P after timeout: {}", answer(&v, &mut pins)));
    api(client, "$JS.API.STREAM.DELETE.S", None).await;
    t
}

/// Polls `CONSUMER.INFO` until `n` pull requests wait on `consumer` (as the server
/// answering sees them).
pub async fn until_waiting(client: &async_nats::Client, consumer: &str, n: u64) {
    let subject = format!("$JS.API.CONSUMER.INFO.S.{consumer}");
    let wait = async {
        while api(client, &subject, None).await["num_waiting"] != json!(n) {
            tokio::task::yield_now().await;
        }
    };
    tokio::time::timeout(WAIT, wait)
        .await
        .expect("pull requests parked in time");
}

/// The `prioritized` scenario both servers run; its transcript: config and pull
/// errors, then which parked request gets each message published one at a time.
pub async fn prioritized(client: &async_nats::Client) -> Vec<String> {
    let mut pins = Pins::default();
    let mut t = Vec::new();
    api(
        client,
        "$JS.API.STREAM.CREATE.S",
        Some(json!({"name": "S", "subjects": ["s.>"]})),
    )
    .await;
    let creates = [
        (
            "Q",
            json!({"priority_policy": "prioritized", "priority_groups": ["A"]}),
        ),
        (
            "T",
            json!({"priority_policy": "prioritized", "priority_groups": ["A"], "priority_timeout": 1_000_000_000}),
        ),
        ("E", json!({"priority_policy": "prioritized"})),
        (
            "E",
            json!({"priority_policy": "prioritized", "priority_groups": ["A"], "deliver_subject": "d"}),
        ),
        (
            "E",
            json!({"priority_policy": "prioritized", "priority_groups": ["a.b"]}),
        ),
    ];
    t.extend(create_all(client, creates, &mut pins).await);
    let short = r#""expires":300000000"#;
    for body in [
        format!(r#"{{"batch":1,"group":"A","priority":10,{short}}}"#),
        format!(r#"{{"batch":1,"group":"A","priority":-1,{short}}}"#),
        format!(r#"{{"batch":1,"priority":1,{short}}}"#),
        format!(r#"{{"batch":1,"group":"B","priority":1,{short}}}"#),
        format!(r#"{{"batch":1,"group":"A","id":"x",{short}}}"#),
        format!(r#"{{"batch":1,"group":"A","min_pending":2,{short}}}"#),
        r#"{"batch":1,"group":"A","priority":3,"no_wait":true}"#.to_owned(),
    ] {
        let r = pull(client, "Q", &body, 1, &mut pins).await;
        t.push(format!("pull Q {body}: {r:?}"));
    }
    // Parked in this order; nats-server serves the best priority first, round-robin
    // among requests of one priority, and a request that is not JSON (no group) last.
    let long = r#""expires":20000000000"#;
    let parked = [
        (
            "p5",
            format!(r#"{{"batch":1,"group":"A","priority":5,{long}}}"#),
        ),
        ("plain", "1".to_owned()),
        ("p0", format!(r#"{{"batch":1,"group":"A",{long}}}"#)),
        (
            "p2a",
            format!(r#"{{"batch":2,"group":"A","priority":2,{long}}}"#),
        ),
        (
            "p2b",
            format!(r#"{{"batch":2,"group":"A","priority":2,{long}}}"#),
        ),
    ];
    let mut inboxes = Vec::new();
    for (name, body) in &parked {
        let inbox = client.new_inbox();
        let sub = client.subscribe(inbox.clone()).await.expect("subscribe");
        client
            .publish_with_reply("$JS.API.CONSUMER.MSG.NEXT.S.Q", inbox, body.clone().into())
            .await
            .expect("pull");
        inboxes.push(sub.map(move |m| (*name, m)));
    }
    until_waiting(client, "Q", parked.len() as u64).await;
    let mut replies = futures::stream::select_all(inboxes);
    let js = jetstream::new(client.clone());
    for i in 0..7 {
        js.publish("s.a", Bytes::from(format!("m{i}")))
            .await
            .expect("publish")
            .await
            .expect("acked");
        let Ok(Some((name, m))) = tokio::time::timeout(WAIT, replies.next()).await else {
            t.push(format!("m{i}: nobody"));
            break;
        };
        t.push(format!(
            "{} to {name} status={:?}",
            String::from_utf8_lossy(&m.payload),
            m.status.map(|s| s.as_u16())
        ));
    }
    api(client, "$JS.API.STREAM.DELETE.S", None).await;
    t
}
