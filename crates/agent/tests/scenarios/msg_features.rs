//! Message-feature scenarios (issue 17: per-message TTL with subject delete markers,
//! KV per-key TTL, counters, `first_seq`), run by `msg_features` against an in-process
//! agent and nats-server 2.15.1 side by side, and by `e2e_s3_etcd` against agents on a
//! real S3 server and etcd. The scenarios that take a raw client return what they saw
//! in a form both servers must agree on.

use std::collections::HashSet;
use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::{self, kv};
use base64::Engine as _;
use futures::StreamExt;
use serde_json::{Value, json};

/// Longest wait for one expected event (generous: 2 shared cores).
const EVENT: Duration = Duration::from_secs(20);

async fn request(client: &async_nats::Client, subject: &str, body: Value) -> Value {
    let msg = client
        .request(subject.to_owned(), body.to_string().into())
        .await
        .unwrap_or_else(|e| panic!("{subject}: {e}"));
    serde_json::from_slice(&msg.payload)
        .unwrap_or_else(|e| panic!("{subject}: not JSON ({e}): {:?}", msg.payload))
}

async fn publish(
    client: &async_nats::Client,
    subject: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Value {
    let mut map = HeaderMap::new();
    for (k, v) in headers {
        map.insert(*k, *v);
    }
    let msg = client
        .request_with_headers(subject.to_owned(), map, body.to_owned().into())
        .await
        .unwrap_or_else(|e| panic!("publish {subject}: {e}"));
    serde_json::from_slice(&msg.payload).expect("PubAck JSON")
}

/// A direct get: the status (0 when a message came back), the headers that matter
/// here, and the payload.
async fn direct_get(client: &async_nats::Client, stream: &str, body: Value) -> Value {
    let msg = client
        .request(
            format!("$JS.API.DIRECT.GET.{stream}"),
            body.to_string().into(),
        )
        .await
        .expect("direct get");
    let header = |name: &str| {
        msg.headers
            .as_ref()
            .and_then(|h| h.get(name))
            .map(|v| v.as_str().to_owned())
    };
    json!({
        "status": msg.status.map_or(0, |s| s.as_u16()),
        "marker_reason": header("Nats-Marker-Reason"),
        "ttl": header("Nats-TTL"),
        "rollup": header("Nats-Rollup"),
        "incr": header("Nats-Incr"),
        "subject": header("Nats-Subject"),
        "payload": String::from_utf8_lossy(&msg.payload),
    })
}

fn state(info: &Value) -> (u64, u64, u64) {
    let s = &info["state"];
    let n = |k: &str| {
        s[k].as_u64()
            .unwrap_or_else(|| panic!("state.{k} in {info}"))
    };
    (n("messages"), n("first_seq"), n("last_seq"))
}

/// Waits (state, not a clock) until the stream's state satisfies `done`.
async fn until_state(
    client: &async_nats::Client,
    stream: &str,
    done: impl Fn((u64, u64, u64)) -> bool,
) -> (u64, u64, u64) {
    let deadline = tokio::time::Instant::now() + EVENT;
    loop {
        let info = request(client, &format!("$JS.API.STREAM.INFO.{stream}"), json!({})).await;
        let st = state(&info);
        if done(st) {
            return st;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{stream}: state never got there: {info}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The publish time a push delivery's reply subject carries
/// (`$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>`).
fn delivered_ts(msg: &async_nats::Message) -> (u64, i64) {
    let reply = msg
        .reply
        .as_deref()
        .expect("a JetStream delivery has a reply subject");
    let tokens: Vec<&str> = reply.split('.').collect();
    let n = tokens.len();
    assert!(n >= 9, "ack subject `{reply}`");
    let seq = tokens[n - 4].parse().expect("stream seq");
    let ts = tokens[n - 2].parse().expect("timestamp");
    (seq, ts)
}

/// A message with a 1 s TTL leaves get, direct get, stream info and a new consumer by
/// the time the subject delete marker that replaces it is stored, and the marker is
/// stored within 1 s of the expiry (stored timestamps compared, not the test's clock).
/// The marker has nats-server's headers, then expires itself without leaving another.
/// Deletes its stream.
pub async fn ttl_expiry_and_marker(client: &async_nats::Client) -> Value {
    let created = request(
        client,
        "$JS.API.STREAM.CREATE.TTLM",
        json!({"name": "TTLM", "subjects": ["ttlm.>"], "allow_msg_ttl": true,
               "subject_delete_marker_ttl": 1_000_000_000u64, "allow_direct": true}),
    )
    .await;
    assert!(created.get("error").is_none(), "{created}");
    // Every stored message as an event: a push consumer delivering everything.
    let mut events = client.subscribe("obs.ttlm").await.expect("subscribe");
    let consumer = request(
        client,
        "$JS.API.CONSUMER.CREATE.TTLM",
        json!({"stream_name": "TTLM", "config": {"deliver_subject": "obs.ttlm",
               "ack_policy": "none", "deliver_policy": "all"}}),
    )
    .await;
    assert!(consumer.get("error").is_none(), "{consumer}");

    let ack = publish(client, "ttlm.a", &[("Nats-TTL", "1s")], "short-lived").await;
    assert_eq!(ack["seq"], 1, "{ack}");
    let first = tokio::time::timeout(EVENT, events.next())
        .await
        .expect("delivery")
        .expect("open");
    let (seq, published) = delivered_ts(&first);
    assert_eq!(seq, 1);
    let marker = tokio::time::timeout(EVENT, events.next())
        .await
        .expect("marker")
        .expect("open");
    let (marker_seq, marker_ts) = delivered_ts(&marker);
    assert_eq!(marker_seq, 2);
    let reason = marker
        .headers
        .as_ref()
        .and_then(|h| h.get("Nats-Marker-Reason"));
    assert_eq!(reason.map(|v| v.as_str()), Some("MaxAge"));
    let late = marker_ts - (published + 1_000_000_000);
    assert!(
        (0..1_000_000_000).contains(&late),
        "the marker is stored within 1 s of the expiry: {late} ns after it"
    );

    // The marker exists, so the expired message is gone everywhere.
    let get = request(client, "$JS.API.STREAM.MSG.GET.TTLM", json!({"seq": 1})).await;
    assert_eq!(get["error"]["err_code"], 10037, "{get}");
    let gone = direct_get(client, "TTLM", json!({"seq": 1})).await;
    assert_eq!(gone["status"], 404);
    let info = request(client, "$JS.API.STREAM.INFO.TTLM", json!({})).await;
    assert_eq!(state(&info), (1, 2, 2), "only the marker is left: {info}");
    let fresh = request(
        client,
        "$JS.API.CONSUMER.CREATE.TTLM",
        json!({"stream_name": "TTLM", "config": {"ack_policy": "explicit", "deliver_policy": "all"}}),
    )
    .await;
    assert_eq!(
        fresh["num_pending"], 1,
        "a new consumer sees the marker only: {fresh}"
    );
    let marker_msg = direct_get(client, "TTLM", json!({"seq": 2})).await;

    // The marker's own TTL ends it, and no marker marks a marker.
    let after = until_state(client, "TTLM", |(msgs, _, _)| msgs == 0).await;
    assert_eq!(after, (0, 3, 2), "the marker expired and left nothing");
    let deleted = request(client, "$JS.API.STREAM.DELETE.TTLM", json!({})).await;
    assert_eq!(deleted["success"], true);
    json!({"marker": marker_msg, "get": get["error"], "after": [after.0, after.1, after.2]})
}

/// With subject delete markers, a TTL below the marker TTL is raised to it and the
/// stored `Nats-TTL` header says so (`1s` is stored as `5`), except on a stream with
/// one message per subject, which keeps the value sent. Deletes its streams.
pub async fn raised_ttl_header(client: &async_nats::Client) -> Value {
    let mut seen = Vec::new();
    for (name, per_subject) in [("TTLR", -1), ("TTLONE", 1)] {
        let created = request(
            client,
            &format!("$JS.API.STREAM.CREATE.{name}"),
            json!({"name": name, "subjects": [format!("{}.>", name.to_lowercase())],
                   "allow_msg_ttl": true, "subject_delete_marker_ttl": 5_000_000_000u64,
                   "max_msgs_per_subject": per_subject, "allow_direct": true}),
        )
        .await;
        assert!(created.get("error").is_none(), "{created}");
        let subject = format!("{}.a", name.to_lowercase());
        let ack = publish(client, &subject, &[("Nats-TTL", "1s")], "x").await;
        assert_eq!(ack["seq"], 1, "{ack}");
        let stored = direct_get(client, name, json!({"seq": 1})).await;
        seen.push(stored["ttl"].clone());
        let deleted = request(client, &format!("$JS.API.STREAM.DELETE.{name}"), json!({})).await;
        assert_eq!(deleted["success"], true);
    }
    json!(seen)
}

/// KV with `limit_markers` and a per-key TTL (async-nats `create_with_ttl`): a watcher
/// sees the put, then the expiry as a purge; the key reads as gone. Deletes the bucket.
pub async fn kv_key_ttl_watch(js: &jetstream::Context) {
    let store = js
        .create_key_value(kv::Config {
            bucket: "ttlkv".into(),
            history: 1,
            limit_markers: Some(Duration::from_secs(1)),
            ..Default::default()
        })
        .await
        .expect("create bucket with limit markers");
    let mut watch = store.watch("session").await.expect("watch");
    store
        .create_with_ttl("session", "token".into(), Duration::from_secs(1))
        .await
        .expect("create with ttl");
    let put = tokio::time::timeout(EVENT, watch.next())
        .await
        .expect("put event")
        .expect("open")
        .expect("entry");
    assert_eq!(
        (put.operation, &put.value[..]),
        (kv::Operation::Put, &b"token"[..])
    );
    let expired = tokio::time::timeout(EVENT, watch.next())
        .await
        .expect("expiry event")
        .expect("open")
        .expect("entry");
    assert_eq!(expired.operation, kv::Operation::Purge, "{expired:?}");
    assert!(expired.revision > put.revision);
    assert_eq!(store.get("session").await.expect("get"), None);
    // The key can be created again once it expired.
    store
        .create("session", "again".into())
        .await
        .expect("create after expiry");
    js.delete_key_value("ttlkv").await.expect("delete bucket");
}

/// Counters: PubAcks carry the running total, gets serve `{"val":"…"}`, and the
/// errors for missing, invalid or payload-carrying increments and for incompatible
/// headers. Deletes its streams.
pub async fn counters(client: &async_nats::Client) -> Value {
    let created = request(
        client,
        "$JS.API.STREAM.CREATE.CNT",
        json!({"name": "CNT", "subjects": ["cnt.>"], "allow_msg_counter": true, "allow_direct": true}),
    )
    .await;
    assert!(created.get("error").is_none(), "{created}");
    let mut acks = Vec::new();
    for headers in [
        vec![("Nats-Incr", "1")],
        vec![("Nats-Incr", "+5")],
        vec![("Nats-Incr", "-2")],
        vec![("Nats-Incr", "x")],
        vec![("Nats-Incr", "1.5")],
        vec![],
        vec![("Nats-Incr", "1"), ("Nats-Msg-Id", "once")],
        vec![("Nats-Incr", "1"), ("Nats-Msg-Id", "once")],
        vec![("Nats-Incr", "99999999999999999999999999")],
        vec![("Nats-Incr", "1"), ("Nats-TTL", "5s")],
        vec![("Nats-Incr", "1"), ("Nats-Rollup", "sub")],
        vec![
            ("Nats-Incr", "1"),
            ("Nats-Expected-Last-Subject-Sequence", "1"),
        ],
        vec![("Nats-Incr", "0")],
    ] {
        acks.push(publish(client, "cnt.a", &headers, "").await);
    }
    acks.push(publish(client, "cnt.b", &[("Nats-Incr", "2")], "payload").await);
    acks.push(publish(client, "cnt.b", &[("Nats-Incr", "-7")], "").await);
    assert_eq!(acks[0]["val"], "1");
    assert_eq!(acks[8]["val"], "100000000000000000000000004");

    let last = request(
        client,
        "$JS.API.STREAM.MSG.GET.CNT",
        json!({"last_by_subj": "cnt.a"}),
    )
    .await;
    let data = |m: &Value| {
        let b64 = m["message"]["data"].as_str().unwrap_or_default();
        String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(b64)
                .expect("base64"),
        )
        .expect("utf-8")
    };
    let first = request(client, "$JS.API.STREAM.MSG.GET.CNT", json!({"seq": 1})).await;
    assert_eq!(data(&first), r#"{"val":"1"}"#);
    let direct = direct_get(client, "CNT", json!({"last_by_subj": "cnt.b"})).await;
    assert_eq!(direct["payload"], r#"{"val":"-7"}"#);

    // A plain stream refuses increments.
    let plain = request(
        client,
        "$JS.API.STREAM.CREATE.PLAIN",
        json!({"name": "PLAIN", "subjects": ["plain.>"]}),
    )
    .await;
    assert!(plain.get("error").is_none(), "{plain}");
    let refused = publish(client, "plain.a", &[("Nats-Incr", "1")], "").await;
    assert_eq!(refused["error"]["err_code"], 10168, "{refused}");
    for name in ["CNT", "PLAIN"] {
        let deleted = request(client, &format!("$JS.API.STREAM.DELETE.{name}"), json!({})).await;
        assert_eq!(deleted["success"], true);
    }
    json!({
        "acks": acks,
        "last": data(&last),
        "first": data(&first),
        "direct": direct,
        "refused": refused,
        "req_level": created["config"]["metadata"]["_nats.req.level"],
    })
}

/// `first_seq` on create: an empty stream reports first_seq..first_seq-1 and stores
/// its first message there; updates keep the state. Deletes its stream.
pub async fn first_seq(client: &async_nats::Client) -> Value {
    let created = request(
        client,
        "$JS.API.STREAM.CREATE.FSEQ",
        json!({"name": "FSEQ", "subjects": ["fseq.>"], "first_seq": 100}),
    )
    .await;
    assert!(created.get("error").is_none(), "{created}");
    assert_eq!(state(&created), (0, 100, 99));
    let ack = publish(client, "fseq.a", &[], "x").await;
    assert_eq!(ack["seq"], 100, "{ack}");
    let again = request(
        client,
        "$JS.API.STREAM.CREATE.FSEQ",
        json!({"name": "FSEQ", "subjects": ["fseq.>"], "first_seq": 101}),
    )
    .await;
    let negative = request(
        client,
        "$JS.API.STREAM.CREATE.FNEG",
        json!({"name": "FNEG", "subjects": ["fneg.>"], "first_seq": -1}),
    )
    .await;
    let info = request(client, "$JS.API.STREAM.INFO.FSEQ", json!({})).await;
    let deleted = request(client, "$JS.API.STREAM.DELETE.FSEQ", json!({})).await;
    assert_eq!(deleted["success"], true);
    json!({
        "created": [state(&created).0, state(&created).1, state(&created).2],
        "config_first_seq": created["config"]["first_seq"],
        "ack": ack,
        "again": again["error"]["err_code"],
        "negative": negative["error"]["err_code"],
        "info": [state(&info).0, state(&info).1, state(&info).2],
    })
}

/// `clients` connections (spread over the agents behind `contexts`) each add 1 to one
/// counter `per_client` times with many publishes in flight: the final total is
/// exact and every PubAck's total is distinct. Deletes its stream.
pub async fn counters_from_many(
    contexts: &[jetstream::Context],
    clients: usize,
    per_client: usize,
) {
    const IN_FLIGHT: usize = 256;
    contexts[0]
        .create_stream(jetstream::stream::Config {
            name: "HITS".into(),
            subjects: vec!["hits.>".into()],
            allow_message_counter: true,
            ..Default::default()
        })
        .await
        .expect("create counter stream");
    // Every agent captures the stream before the run (an increment of 0 adds nothing).
    for js in contexts {
        let mut captured = false;
        for _ in 0..200 {
            let mut h = HeaderMap::new();
            h.insert("Nats-Incr", "0");
            if let Ok(ack) = js.publish_with_headers("hits.page", h, "".into()).await
                && ack.await.is_ok()
            {
                captured = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(captured, "an agent never captured the counter stream");
    }
    let mut tasks = Vec::new();
    for c in 0..clients {
        let js = contexts[c % contexts.len()].clone();
        tasks.push(tokio::spawn(async move {
            let mut totals = Vec::with_capacity(per_client);
            let mut pending = std::collections::VecDeque::new();
            for _ in 0..per_client {
                let mut h = HeaderMap::new();
                h.insert("Nats-Incr", "1");
                pending.push_back(
                    js.publish_with_headers("hits.page", h, "".into())
                        .await
                        .expect("publish"),
                );
                if pending.len() >= IN_FLIGHT
                    && let Some(ack) = pending.pop_front()
                {
                    totals.push(ack.await.expect("acked").value.expect("val"));
                }
            }
            for ack in pending {
                totals.push(ack.await.expect("acked").value.expect("val"));
            }
            totals
        }));
    }
    let mut seen = HashSet::new();
    for t in tasks {
        for v in t.await.expect("client task") {
            let n: u64 = v.parse().expect("a decimal total");
            assert!(seen.insert(n), "total {n} answered twice");
        }
    }
    let expected = (clients * per_client) as u64;
    assert_eq!(seen.len() as u64, expected);
    assert_eq!(seen.iter().max().copied(), Some(expected));
    let stream = contexts[0].get_stream("HITS").await.expect("stream");
    let last = stream
        .get_last_raw_message_by_subject("hits.page")
        .await
        .expect("last");
    assert_eq!(
        String::from_utf8_lossy(&last.payload),
        format!(r#"{{"val":"{expected}"}}"#)
    );
    contexts[0].delete_stream("HITS").await.expect("delete");
}

/// The PubAck error code of a publish (0 when stored).
async fn err_code(client: &async_nats::Client, subject: &str, headers: &[(&str, &str)]) -> u64 {
    let ack = publish(client, subject, headers, "x").await;
    ack["error"]["err_code"].as_u64().unwrap_or(0)
}

/// Message schedules: stream config defaults, and nats-server's answer (error code) to
/// each bad schedule publish, on a stream with schedules and one without. Deletes its
/// streams.
pub async fn schedule_errors(client: &async_nats::Client) -> Value {
    let created = request(
        client,
        "$JS.API.STREAM.CREATE.SCHE",
        json!({"name": "SCHE", "subjects": ["sche.>"], "allow_msg_schedules": true}),
    )
    .await;
    assert!(created.get("error").is_none(), "{created}");
    let plain = request(
        client,
        "$JS.API.STREAM.CREATE.SCHN",
        json!({"name": "SCHN", "subjects": ["schn.>"]}),
    )
    .await;
    assert!(plain.get("error").is_none(), "{plain}");
    let later = "@at 2099-01-01T00:00:00Z";
    let t = ("Nats-Schedule-Target", "sche.target");
    let mut codes = Vec::new();
    for (subject, headers) in [
        (
            "schn.a",
            vec![("Nats-Schedule", later), ("Nats-Schedule-Target", "schn.t")],
        ),
        ("schn.a", vec![("Nats-Schedule", "nonsense")]),
        ("sche.a", vec![("Nats-Schedule", "nonsense"), t]),
        ("sche.a", vec![("Nats-Schedule", "@every 100ms"), t]),
        ("sche.a", vec![("Nats-Schedule", "* * * * *"), t]),
        ("sche.a", vec![("Nats-Schedule", later)]),
        (
            "sche.a",
            vec![("Nats-Schedule", later), ("Nats-Schedule-Target", "sche.a")],
        ),
        (
            "sche.a",
            vec![
                ("Nats-Schedule", later),
                ("Nats-Schedule-Target", "other.t"),
            ],
        ),
        (
            "sche.a",
            vec![("Nats-Schedule", later), ("Nats-Schedule-Target", "sche.*")],
        ),
        (
            "sche.a",
            vec![("Nats-Schedule", later), t, ("Nats-Schedule-TTL", "5s")],
        ),
        (
            "sche.a",
            vec![("Nats-Schedule", later), t, ("Nats-Schedule-Rollup", "all")],
        ),
        (
            "sche.a",
            vec![("Nats-Schedule", later), t, ("Nats-Rollup", "all")],
        ),
        (
            "sche.a",
            vec![
                ("Nats-Schedule", later),
                t,
                ("Nats-Schedule-Source", "sche.target"),
            ],
        ),
        (
            "sche.a",
            vec![
                ("Nats-Schedule", later),
                t,
                ("Nats-Schedule-Source", "elsewhere"),
            ],
        ),
        (
            "sche.a",
            vec![("Nats-Schedule", later), t, ("Nats-Schedule-Time-Zone", "")],
        ),
        (
            "sche.a",
            vec![
                ("Nats-Schedule", later),
                t,
                ("Nats-Schedule-Time-Zone", "UTC"),
            ],
        ),
        (
            "sche.a",
            vec![
                ("Nats-Schedule", "@every 1s"),
                t,
                ("Nats-Schedule-Time-Zone", "Nowhere/Land"),
            ],
        ),
        // Time zones: IANA names (exact case), refused with @at / @every.
        (
            "sche.z",
            vec![
                ("Nats-Schedule", "0 30 9 * * *"),
                t,
                ("Nats-Schedule-Time-Zone", "Europe/Amsterdam"),
            ],
        ),
        (
            "sche.z",
            vec![
                ("Nats-Schedule", "@daily"),
                t,
                ("Nats-Schedule-Time-Zone", "US/Eastern"),
            ],
        ),
        (
            "sche.z",
            vec![
                ("Nats-Schedule", "0 30 9 * * *"),
                t,
                ("Nats-Schedule-Time-Zone", "europe/amsterdam"),
            ],
        ),
        (
            "sche.z",
            vec![
                ("Nats-Schedule", "0 30 9 * * *"),
                t,
                ("Nats-Schedule-Time-Zone", "+02:00"),
            ],
        ),
        (
            "sche.z",
            vec![
                ("Nats-Schedule", later),
                t,
                ("Nats-Schedule-Time-Zone", "Europe/Amsterdam"),
            ],
        ),
        (
            "sche.z",
            vec![
                ("Nats-Schedule", "@every 1m"),
                t,
                ("Nats-Schedule-Time-Zone", "Asia/Tokyo"),
            ],
        ),
        (
            "sche.z",
            vec![
                ("Nats-Schedule", "@every 1m"),
                t,
                ("Nats-Schedule-Time-Zone", "Mars/Olympus"),
            ],
        ),
        // Sampling sources are literal subjects (ADR-51: no wildcards).
        (
            "sche.a",
            vec![
                ("Nats-Schedule", later),
                t,
                ("Nats-Schedule-Source", "sche.src.*"),
            ],
        ),
        (
            "sche.a",
            vec![
                ("Nats-Schedule", later),
                t,
                ("Nats-Schedule-Source", "sche.>"),
            ],
        ),
        ("sche.a", vec![("Nats-Scheduler", "sche.b")]),
        ("sche.a", vec![("Nats-Schedule-Next", "purge")]),
        (
            "sche.a",
            vec![
                ("Nats-Schedule-Next", "2099-01-01T00:00:00Z"),
                ("Nats-Scheduler", "sche.b"),
            ],
        ),
        (
            "sche.a",
            vec![
                ("Nats-Schedule-Next", "purge"),
                ("Nats-Scheduler", "sche.a"),
            ],
        ),
        ("sche.a", vec![("Nats-Schedule", "0 30 9 * * mon-fri"), t]),
        ("sche.a", vec![("Nats-Schedule", "@hourly"), t]),
        ("sche.a", vec![("Nats-Schedule", later), t]),
    ] {
        codes.push(json!([
            subject,
            headers,
            err_code(client, subject, &headers).await
        ]));
    }
    // The stored schedules, with the `Nats-Rollup: sub` nats-server adds.
    let mut stored = Vec::new();
    for subject in ["sche.a", "sche.z"] {
        let got = request(
            client,
            "$JS.API.STREAM.MSG.GET.SCHE",
            json!({"last_by_subj": subject}),
        )
        .await;
        let hdrs = got["message"]["hdrs"].as_str().unwrap_or_default();
        let hdrs = base64::engine::general_purpose::STANDARD
            .decode(hdrs)
            .expect("base64");
        // Lines sorted: the client's header map has no fixed order.
        let text = String::from_utf8(hdrs).expect("utf-8");
        let mut lines: Vec<&str> = text.lines().filter(|l| !l.is_empty()).collect();
        lines.sort_unstable();
        stored.push(lines.join("|"));
    }
    // A purge naming a subject that holds a plain message is refused; naming the
    // schedule's subject, it purges the schedule.
    publish(client, "sche.plain", &[], "plain").await;
    codes.push(json!(
        err_code(
            client,
            "sche.b",
            &[
                ("Nats-Schedule-Next", "purge"),
                ("Nats-Scheduler", "sche.plain")
            ]
        )
        .await
    ));
    codes.push(json!(
        err_code(
            client,
            "sche.b",
            &[
                ("Nats-Schedule-Next", "purge"),
                ("Nats-Scheduler", "sche.a")
            ]
        )
        .await
    ));
    let info = request(
        client,
        "$JS.API.STREAM.INFO.SCHE",
        json!({"subjects_filter": ">"}),
    )
    .await;
    let config = &info["config"];
    for name in ["SCHE", "SCHN"] {
        let deleted = request(client, &format!("$JS.API.STREAM.DELETE.{name}"), json!({})).await;
        assert_eq!(deleted["success"], true);
    }
    json!({
        "codes": codes,
        "stored": stored,
        "allow_rollup_hdrs": config["allow_rollup_hdrs"],
        "allow_msg_schedules": config["allow_msg_schedules"],
        "subjects": info["state"]["subjects"],
    })
}

/// `@at` fires once and purges its schedule; `@every 1s` fires again and again, each
/// firing naming the schedule and its next time; a client purge ends it. The shapes
/// both servers must agree on (times checked here, not compared). Deletes its stream.
pub async fn schedules_fire(client: &async_nats::Client) -> Value {
    let created = request(
        client,
        "$JS.API.STREAM.CREATE.SCHF",
        json!({"name": "SCHF", "subjects": ["schf.>"], "allow_msg_schedules": true,
               "allow_msg_ttl": true, "allow_direct": true}),
    )
    .await;
    assert!(created.get("error").is_none(), "{created}");
    let mut events = client.subscribe("obs.schf").await.expect("subscribe");
    let consumer = request(
        client,
        "$JS.API.CONSUMER.CREATE.SCHF",
        json!({"stream_name": "SCHF", "config": {"deliver_subject": "obs.schf",
               "ack_policy": "none", "deliver_policy": "all", "filter_subject": "schf.out.>"}}),
    )
    .await;
    assert!(consumer.get("error").is_none(), "{consumer}");
    let shape = |msg: &async_nats::Message| {
        let h = |k: &str| {
            msg.headers
                .as_ref()
                .and_then(|h| h.get(k))
                .map(|v| v.as_str().to_owned())
        };
        let next = h("Nats-Schedule-Next");
        let next_kind = match next.as_deref() {
            Some("purge") => "purge".to_owned(),
            Some(t) => {
                infinistream_protocol::jsapi::Timestamp::parse(t)
                    .expect("Nats-Schedule-Next is a time");
                "time".to_owned()
            }
            None => "none".to_owned(),
        };
        json!({
            "subject": msg.subject.as_str(),
            "payload": String::from_utf8_lossy(&msg.payload),
            "scheduler": h("Nats-Scheduler"),
            "next": next_kind,
            "ttl": h("Nats-TTL"),
            "app": h("App"),
            "schedule": h("Nats-Schedule"),
            "target": h("Nats-Schedule-Target"),
        })
    };

    // @at one second from now.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_nanos();
    let at = infinistream_protocol::jsapi::Timestamp::from_unix_nanos(
        i128::try_from(now).expect("fits") + 1_000_000_000,
    );
    let at_header = format!("@at {at}");
    let ack = publish(
        client,
        "schf.once",
        &[
            ("Nats-Schedule", &at_header),
            ("Nats-Schedule-Target", "schf.out.once"),
            ("Nats-Schedule-TTL", "60s"),
            ("App", "a"),
        ],
        "delayed",
    )
    .await;
    assert!(ack.get("error").is_none(), "{ack}");
    let fired = tokio::time::timeout(EVENT, events.next())
        .await
        .expect("the @at schedule fires")
        .expect("open");
    let (_, fired_ts) = delivered_ts(&fired);
    let at_nanos = i64::try_from(at.unix_nanos()).expect("fits");
    assert!(fired_ts >= at_nanos, "fired before its time");
    let once = shape(&fired);
    // The schedule message is purged by its firing.
    let gone = until_state(client, "SCHF", |(msgs, _, _)| msgs == 1).await;

    // @every 1s: three firings, then a client purge ends the schedule.
    let ack = publish(
        client,
        "schf.tick",
        &[
            ("Nats-Schedule", "@every 1s"),
            ("Nats-Schedule-Target", "schf.out.tick"),
        ],
        "tick",
    )
    .await;
    assert!(ack.get("error").is_none(), "{ack}");
    let mut ticks = Vec::new();
    for _ in 0..3 {
        let msg = tokio::time::timeout(EVENT, events.next())
            .await
            .expect("@every fires")
            .expect("open");
        ticks.push(shape(&msg));
    }
    let purge = publish(
        client,
        "schf.stop",
        &[
            ("Nats-Schedule-Next", "purge"),
            ("Nats-Scheduler", "schf.tick"),
        ],
        "",
    )
    .await;
    assert!(purge.get("error").is_none(), "{purge}");
    let info = request(
        client,
        "$JS.API.STREAM.INFO.SCHF",
        json!({"subjects_filter": "schf.tick"}),
    )
    .await;
    let deleted = request(client, "$JS.API.STREAM.DELETE.SCHF", json!({})).await;
    assert_eq!(deleted["success"], true);
    json!({
        "once": once,
        "after_once": gone.0,
        "ticks": ticks,
        "schedule_left": info["state"]["subjects"],
    })
}
