//! `CONSUMER.RESET` (JetStream 2.14, ADR-60) side by side with nats-server 2.15.1: the
//! same requests to both, the same answers (JSON and error codes), the same deliveries
//! after a reset (stream and consumer sequences, pending counts in the ack subjects);
//! nats.py's `reset_consumer` against both; and a reset made through one agent holding
//! for a pull request parked on another. Also the advisory of a pause that ends by
//! itself, side by side.

use bytes::Bytes;
use serde_json::{Value, json};

#[path = "support/in_process.rs"]
mod in_process;
#[path = "support/py_client.rs"]
mod py_client;
#[path = "support/side_by_side.rs"]
mod side_by_side;
use side_by_side::{Both, WAIT, api, connect, next};
#[path = "support/procs.rs"]
mod procs;

/// What of an answer both servers must agree on: the consumer's state, names, type,
/// `reset_seq` and errors (times, config and server details left out); for bad JSON,
/// the codes only (the parsers' wording differs).
fn comparable(v: Value) -> Value {
    const KEPT: [&str; 11] = [
        "type",
        "error",
        "stream_name",
        "name",
        "delivered",
        "ack_floor",
        "num_ack_pending",
        "num_redelivered",
        "num_pending",
        "num_waiting",
        "reset_seq",
    ];
    let mut out = serde_json::Map::new();
    for k in KEPT {
        if let Some(mut field) = v.get(k).cloned() {
            if let Some(o) = field.as_object_mut() {
                o.remove("last_active");
                if o.get("err_code") == Some(&json!(10025)) {
                    o.remove("description");
                }
            }
            out.insert(k.to_owned(), field);
        }
    }
    Value::Object(out)
}

/// `(delivery count, stream seq, consumer seq, pending)` from a v1 ack subject.
fn ack_fields(reply: &str) -> (u64, u64, u64, u64) {
    let t: Vec<u64> = reply
        .split('.')
        .skip(4)
        .map(|t| t.parse().expect("numeric ack token"))
        .collect();
    (t[0], t[1], t[2], t[4])
}

/// Pulls `n` messages with a raw request; their ack fields.
async fn pull(
    client: &async_nats::Client,
    stream: &str,
    consumer: &str,
    n: usize,
) -> Vec<(u64, u64, u64, u64)> {
    let inbox = client.new_inbox();
    let mut sub = client.subscribe(inbox.clone()).await.expect("subscribe");
    client
        .publish_with_reply(
            format!("$JS.API.CONSUMER.MSG.NEXT.{stream}.{consumer}"),
            inbox,
            Bytes::from(json!({"batch": n, "expires": 5_000_000_000u64}).to_string()),
        )
        .await
        .expect("pull request");
    let mut out = Vec::new();
    while out.len() < n {
        let m = next(&mut sub).await;
        assert!(m.status.is_none(), "status instead of a message: {m:?}");
        out.push(ack_fields(m.reply.as_deref().expect("ack subject")));
    }
    out
}

/// One API request of the scenario; its comparable answer goes to `out`.
async fn ask(client: &async_nats::Client, out: &mut Vec<Value>, subject: &str, body: &str) {
    out.push(comparable(api(client, subject, body).await));
}

/// The reset conversation; every answer, comparable.
async fn reset_scenario(client: &async_nats::Client) -> Vec<Value> {
    let mut answers = Vec::new();
    api(
        client,
        "$JS.API.STREAM.CREATE.RS",
        r#"{"name":"RS","subjects":["rs.>"]}"#,
    )
    .await;
    let js = async_nats::jetstream::new(client.clone());
    for i in 0..10 {
        js.publish(format!("rs.{}", i % 2), Bytes::from(i.to_string()))
            .await
            .expect("publish")
            .await
            .expect("publish acked");
    }
    ask(
        client,
        &mut answers,
        "$JS.API.CONSUMER.CREATE.RS.C",
        r#"{"stream_name":"RS","config":{"durable_name":"C","ack_policy":"explicit"}}"#,
    )
    .await;
    let first = pull(client, "RS", "C", 4).await;
    answers.push(json!(first));
    // Stream seq 1 acked (confirmed), the others in flight across the resets.
    client
        .request(
            "$JS.ACK.RS.C.1.1.1.0.9".to_owned(),
            Bytes::from_static(b"+ACK"),
        )
        .await
        .expect("ack confirmed");
    ask(client, &mut answers, "$JS.API.CONSUMER.RESET.RS.C", "").await;
    ask(
        client,
        &mut answers,
        "$JS.API.CONSUMER.RESET.RS.C",
        r#"{"seq":7}"#,
    )
    .await;
    ask(
        client,
        &mut answers,
        "$JS.API.CONSUMER.RESET.RS.C",
        r#"{"seq":0}"#,
    )
    .await;
    ask(
        client,
        &mut answers,
        "$JS.API.CONSUMER.RESET.RS.C",
        r#"{"seq":100}"#,
    )
    .await;
    ask(
        client,
        &mut answers,
        "$JS.API.CONSUMER.RESET.RS.C",
        "garbage",
    )
    .await;
    ask(
        client,
        &mut answers,
        "$JS.API.CONSUMER.RESET.RS.C",
        r#"{"seq":-1}"#,
    )
    .await;
    ask(
        client,
        &mut answers,
        "$JS.API.CONSUMER.RESET.RS.C",
        r#"{"seq":3}"#,
    )
    .await;
    // Nothing from before the reset is pending (acks of those deliveries change
    // nothing: the control plane's unit tests; here their order against the next pull
    // would decide, on either server).
    ask(client, &mut answers, "$JS.API.CONSUMER.INFO.RS.C", "").await;
    // Deliveries restart at the reset point with consumer sequence 1.
    let after = pull(client, "RS", "C", 4).await;
    answers.push(json!(after));
    ask(client, &mut answers, "$JS.API.CONSUMER.INFO.RS.C", "").await;
    // Deliver policies: a sequence below the start, or any sequence where the policy
    // does not allow one.
    ask(
        client,
        &mut answers,
        "$JS.API.CONSUMER.CREATE.RS.B",
        r#"{"stream_name":"RS","config":{"durable_name":"B","ack_policy":"explicit","deliver_policy":"by_start_sequence","opt_start_seq":5}}"#,
    )
    .await;
    ask(
        client,
        &mut answers,
        "$JS.API.CONSUMER.RESET.RS.B",
        r#"{"seq":3}"#,
    )
    .await;
    ask(client, &mut answers, "$JS.API.CONSUMER.RESET.RS.B", "").await;
    ask(
        client,
        &mut answers,
        "$JS.API.CONSUMER.RESET.RS.B",
        r#"{"seq":8}"#,
    )
    .await;
    for (name, policy) in [("L", "last"), ("N", "new")] {
        ask(
            client,
            &mut answers,
            &format!("$JS.API.CONSUMER.CREATE.RS.{name}"),
            &format!(r#"{{"stream_name":"RS","config":{{"durable_name":"{name}","ack_policy":"explicit","deliver_policy":"{policy}"}}}}"#),
        )
        .await;
        ask(
            client,
            &mut answers,
            &format!("$JS.API.CONSUMER.RESET.RS.{name}"),
            r#"{"seq":8}"#,
        )
        .await;
        ask(
            client,
            &mut answers,
            &format!("$JS.API.CONSUMER.RESET.RS.{name}"),
            "",
        )
        .await;
    }
    ask(
        client,
        &mut answers,
        "$JS.API.CONSUMER.CREATE.RS.T",
        r#"{"stream_name":"RS","config":{"durable_name":"T","ack_policy":"none","deliver_policy":"by_start_time","opt_start_time":"2020-01-01T00:00:00Z"}}"#,
    )
    .await;
    ask(
        client,
        &mut answers,
        "$JS.API.CONSUMER.RESET.RS.T",
        r#"{"seq":3}"#,
    )
    .await;
    answers
}

/// Every answer and every delivery of [`reset_scenario`] is nats-server's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_answers_and_deliveries_as_nats_server() {
    let both = Both::start().await;
    let [theirs, ours] = both.clients().await;
    let expected = reset_scenario(&theirs).await;
    let got = reset_scenario(&ours).await;
    assert_eq!(got.len(), expected.len());
    for (i, (g, e)) in got.iter().zip(&expected).enumerate() {
        assert_eq!(g, e, "answer {i} differs from nats-server's");
    }
    // The deliveries after the reset to 3: stream 3.. with consumer seq 1...
    assert_eq!(
        got.iter().filter(|v| v.is_array()).nth(1),
        Some(&json!([
            [1, 3, 1, 7],
            [1, 4, 2, 6],
            [1, 5, 3, 5],
            [1, 6, 4, 4]
        ]))
    );
    // nats-server 2.15.1 does not answer a reset of a missing consumer; InfiniStream
    // answers with the error INFO gives.
    let missing = api(&ours, "$JS.API.CONSUMER.RESET.RS.NOPE", "").await;
    assert_eq!(missing["error"]["err_code"], json!(10014), "{missing}");
    assert_eq!(missing["reset_seq"], json!(0), "{missing}");
}

const PY_RESET: &str = r#"
import asyncio, sys
import nats
from nats.js.errors import ConsumerInvalidResetError
from nats.js.api import ConsumerConfig, DeliverPolicy

async def main(url):
    nc = await nats.connect(url)
    js = nc.jetstream(timeout=10)
    await js.add_stream(name="PYR", subjects=["pyr.>"])
    for i in range(6):
        await js.publish("pyr.a", str(i).encode())
    psub = await js.pull_subscribe("pyr.>", durable="d")
    msgs = await psub.fetch(4, timeout=5)
    await msgs[0].ack_sync()
    r = await js.reset_consumer("PYR", "d")
    assert r.reset_seq == 2, r
    assert (r.info.delivered.stream_seq, r.info.num_ack_pending) == (1, 0), r
    r = await js.reset_consumer("PYR", "d", seq=5)
    assert r.reset_seq == 5 and r.info.num_pending == 2, r
    m = (await psub.fetch(1, timeout=5))[0]
    assert (m.metadata.sequence.stream, m.metadata.sequence.consumer) == (5, 1), m.metadata
    await js.add_consumer("PYR", ConsumerConfig(durable_name="s", deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=4))
    try:
        await js.reset_consumer("PYR", "s", seq=2)
        raise AssertionError("reset below the start sequence accepted")
    except ConsumerInvalidResetError as e:
        assert e.description == "invalid reset: below start seq", e
    await nc.close()
    print("RESET OK")

asyncio.run(main(sys.argv[1]))
"#;

/// nats.py's `reset_consumer`, against nats-server and InfiniStream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_py_reset_consumer() {
    let both = Both::start().await;
    side_by_side::run_py(both.dir.path(), PY_RESET, "RESET OK", &both.urls()).await;
}

/// A reset through agent A holds on agent B: a pull request parked on B gets the
/// message at the reset point, with consumer sequence 1, and B's INFO agrees.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_through_one_agent_holds_on_another() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_cp, bucket) = procs::embedded_control_plane(dir.path());
    let agent = |name: &str| {
        procs::start_agent(procs::remote_agent_cmd(
            &dir.path().join(name),
            &_cp,
            &bucket,
            &[],
        ))
    };
    let (a, b) = (agent("a"), agent("b"));
    let client_a = connect(&format!("nats://{}", a.client)).await;
    let client_b = connect(&format!("nats://{}", b.client)).await;
    api(
        &client_a,
        "$JS.API.STREAM.CREATE.X",
        r#"{"name":"X","subjects":["x.>"]}"#,
    )
    .await;
    api(
        &client_a,
        "$JS.API.CONSUMER.CREATE.X.C",
        r#"{"stream_name":"X","config":{"durable_name":"C","ack_policy":"explicit"}}"#,
    )
    .await;
    let js = async_nats::jetstream::new(client_a.clone());
    for i in 0..5 {
        js.publish("x.a", Bytes::from(i.to_string()))
            .await
            .expect("publish")
            .await
            .expect("publish acked");
    }
    // B delivers all five, unacked; then parks a request for more.
    assert_eq!(pull(&client_b, "X", "C", 5).await.len(), 5);
    let inbox = client_b.new_inbox();
    let mut parked = client_b.subscribe(inbox.clone()).await.expect("subscribe");
    client_b
        .publish_with_reply(
            "$JS.API.CONSUMER.MSG.NEXT.X.C".to_owned(),
            inbox,
            Bytes::from(json!({"batch": 1, "expires": 15_000_000_000u64}).to_string()),
        )
        .await
        .expect("pull request");
    client_b.flush().await.expect("flush");
    // The parked request is on B before the reset: B's INFO counts it.
    let deadline = tokio::time::Instant::now() + WAIT;
    while api(&client_b, "$JS.API.CONSUMER.INFO.X.C", "").await["num_waiting"] != json!(1) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "request never parked on B"
        );
        tokio::task::yield_now().await;
    }
    let r = api(&client_a, "$JS.API.CONSUMER.RESET.X.C", r#"{"seq":2}"#).await;
    assert_eq!(r["reset_seq"], json!(2), "{r}");
    let m = next(&mut parked).await;
    assert_eq!(
        ack_fields(m.reply.as_deref().expect("ack subject")),
        (1, 2, 1, 3)
    );
    let info = api(&client_b, "$JS.API.CONSUMER.INFO.X.C", "").await;
    assert_eq!(info["delivered"]["stream_seq"], json!(2), "{info}");
    assert_eq!(info["delivered"]["consumer_seq"], json!(1), "{info}");
    assert_eq!(info["num_ack_pending"], json!(1), "{info}");
}

/// A pause that ends by itself: after the `paused: true` advisory of `CONSUMER.PAUSE`,
/// one `paused: false` advisory naming the `pause_until` that passed (an explicit
/// resume names Go's zero time). Returns both bodies without ids and timestamps.
async fn pause_expiry_advisories(client: &async_nats::Client) -> Vec<Value> {
    let mut advisories = client
        .subscribe("$JS.EVENT.ADVISORY.CONSUMER.PAUSE.>")
        .await
        .expect("subscribe");
    client.flush().await.expect("flush");
    api(
        client,
        "$JS.API.STREAM.CREATE.PX",
        r#"{"name":"PX","subjects":["px.>"]}"#,
    )
    .await;
    api(
        client,
        "$JS.API.CONSUMER.CREATE.PX.C",
        r#"{"stream_name":"PX","config":{"durable_name":"C","ack_policy":"explicit"}}"#,
    )
    .await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_nanos() as i128;
    let until = infinistream_protocol::jsapi::Timestamp::from_unix_nanos(now + 1_000_000_000);
    let answer = api(
        client,
        "$JS.API.CONSUMER.PAUSE.PX.C",
        &json!({ "pause_until": until.to_string() }).to_string(),
    )
    .await;
    assert_eq!(answer["paused"], json!(true), "{answer}");
    let mut bodies = Vec::new();
    for _ in 0..2 {
        let m = next(&mut advisories).await;
        assert_eq!(m.subject.as_str(), "$JS.EVENT.ADVISORY.CONSUMER.PAUSE.PX.C");
        let mut v: Value = serde_json::from_slice(&m.payload).expect("json advisory");
        if let Some(o) = v.as_object_mut() {
            o.remove("id");
            o.remove("timestamp");
        }
        // The same instant, however either server spells its fraction.
        let at = v["pause_until"].as_str().expect("pause_until").to_owned();
        let at: infinistream_protocol::jsapi::Timestamp =
            serde_json::from_value(json!(at)).expect("rfc3339 pause_until");
        assert_eq!(at, until, "{v}");
        v["pause_until"] = json!("the pause's end");
        bodies.push(v);
    }
    // Ended: a pull gets the message published during the pause.
    let js = async_nats::jetstream::new(client.clone());
    js.publish("px.a", Bytes::from_static(b"x"))
        .await
        .expect("publish")
        .await
        .expect("publish acked");
    assert_eq!(pull(client, "PX", "C", 1).await[0].1, 1);
    bodies
}

/// The advisory of a pause that ends by itself, as nats-server sends it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_expiry_advisory_as_nats_server() {
    let both = Both::start().await;
    let [theirs, ours] = both.clients().await;
    let expected = pause_expiry_advisories(&theirs).await;
    assert_eq!(expected[1]["paused"], json!(false), "{expected:?}");
    let got = pause_expiry_advisories(&ours).await;
    assert_eq!(got, expected);
}
