//! Fast-ingest batch publish (nats-server 2.14, `allow_batched`) with raw reply
//! subjects (async-nats 0.51 has no fast batch API): nats-server's answers, and a
//! publisher paced by flow acks as the clients' fast publishers are. Run by
//! `jetstream_batch` (against nats-server too) and `cluster_roles`.

// Each test binary uses its own subset.
#![allow(dead_code)]

use std::time::Duration;

use async_nats::HeaderMap;
use bytes::Bytes;
use futures::StreamExt;
use serde_json::Value;

/// Bound for one answer to arrive; a failure bound, never a timing assertion.
const ANSWER: Duration = Duration::from_secs(20);

/// Creates stream `name` on `<prefix>.>` with `allow_batched` as given.
pub async fn create(client: &async_nats::Client, name: &str, prefix: &str, batched: bool) {
    let body = serde_json::json!({
        "name": name,
        "subjects": [format!("{prefix}.>")],
        "allow_batched": batched,
    });
    let answer = client
        .request(
            format!("$JS.API.STREAM.CREATE.{name}"),
            Bytes::from(body.to_string()),
        )
        .await
        .unwrap_or_else(|e| panic!("create {name}: {e}"));
    let answer: Value = serde_json::from_slice(&answer.payload).expect("json");
    assert!(answer.get("error").is_none(), "create {name}: {answer}");
}

/// The reply subject of message `seq` of batch `id`.
pub fn reply(inbox: &str, id: &str, flow: u16, gap: &str, seq: u64, op: u8) -> String {
    format!("{inbox}.{id}.{flow}.{gap}.{seq}.{op}.$FI")
}

/// Whether an answer ends something (a PubAck or a PubAck error), not a flow message.
fn is_final(body: &str) -> bool {
    serde_json::from_str::<Value>(body).map_or(true, |v| v.get("type").is_none())
}

/// One message of a case: subject, reply tail (after the inbox), headers.
type Msg = (&'static str, String, Vec<(&'static str, &'static str)>);

/// A step of a case: its messages, and how many final answers it gets.
type Step = (Vec<Msg>, usize);

/// The cases, by name.
fn cases(nb: &'static str, fb: &'static str) -> Vec<(&'static str, Vec<Step>)> {
    let r = |id: &str, seq: u64, op: u8| reply("", id, 0, "fail", seq, op);
    let ok = |id: &str, seq: u64, op: u8| reply("", id, 0, "ok", seq, op);
    let m = |s: &'static str, reply: String| (s, reply, Vec::new());
    let h =
        |s: &'static str, reply: String, hdr: Vec<(&'static str, &'static str)>| (s, reply, hdr);
    let wrong_last = vec![("Nats-Expected-Last-Sequence", "1")];
    let dup = vec![("Nats-Msg-Id", "dup1")];
    vec![
        ("disabled", vec![(vec![m(nb, r("a", 1, 0))], 1)]),
        ("bad pattern", vec![(vec![m(fb, ".x.$FI".into())], 1)]),
        ("eob first", vec![(vec![m(fb, r("b", 1, 3))], 1)]),
        ("unknown", vec![(vec![m(fb, r("c", 2, 1))], 1)]),
        ("commit at once", vec![(vec![m(fb, r("d", 1, 2))], 1)]),
        (
            "five",
            vec![(
                (1..=5)
                    .map(|s| {
                        m(
                            fb,
                            r(
                                "e",
                                s,
                                if s == 1 {
                                    0
                                } else if s == 5 {
                                    2
                                } else {
                                    1
                                },
                            ),
                        )
                    })
                    .collect(),
                1,
            )],
        ),
        (
            "gap fail",
            vec![(vec![m(fb, r("g", 1, 0)), m(fb, r("g", 3, 1))], 1)],
        ),
        (
            "gap ok",
            vec![(
                vec![
                    m(fb, ok("h", 1, 0)),
                    m(fb, ok("h", 3, 1)),
                    m(fb, ok("h", 4, 3)),
                ],
                1,
            )],
        ),
        (
            "flow 2",
            vec![(
                (1..=8)
                    .map(|s| {
                        let op = match s {
                            1 => 0,
                            8 => 3,
                            _ => 1,
                        };
                        m(fb, reply("", "i", 2, "fail", s, op))
                    })
                    .collect(),
                1,
            )],
        ),
        (
            "ping",
            vec![(
                vec![
                    m(fb, r("j", 1, 0)),
                    m(fb, r("j", 1, 4)),
                    m(fb, r("j", 5, 4)),
                ],
                1,
            )],
        ),
        ("long id", vec![(vec![m(fb, r(&"A".repeat(65), 1, 0))], 1)]),
        (
            "required level 9",
            vec![(
                vec![h(fb, r("k", 1, 0), vec![("Nats-Required-Api-Level", "9")])],
                1,
            )],
        ),
        (
            "required level 2",
            vec![(
                vec![h(fb, r("k2", 1, 2), vec![("Nats-Required-Api-Level", "2")])],
                1,
            )],
        ),
        (
            "eob after one",
            vec![(vec![m(fb, r("l", 1, 0)), m(fb, r("l", 2, 3))], 1)],
        ),
        ("bad op", vec![(vec![m(fb, r("m", 1, 9))], 1)]),
        (
            "bad gap mode",
            vec![(vec![m(fb, reply("", "n", 0, "maybe", 1, 0))], 1)],
        ),
        (
            "error, mode fail",
            vec![
                (
                    vec![m(fb, r("p", 1, 0)), h(fb, r("p", 2, 1), wrong_last.clone())],
                    1,
                ),
                (vec![m(fb, r("p", 3, 2))], 1),
            ],
        ),
        (
            // Messages 3 and 4 sent before message 2's refusal is answered: none of
            // them stored (the next case's PubAck sequence shows it), each answered as
            // of an unknown batch.
            "error, mode fail, more sent",
            vec![(
                vec![
                    m(fb, r("p2", 1, 0)),
                    h(fb, r("p2", 2, 1), wrong_last.clone()),
                    m(fb, r("p2", 3, 1)),
                    m(fb, r("p2", 4, 2)),
                ],
                3,
            )],
        ),
        (
            "error, mode ok",
            vec![(
                vec![
                    m(fb, ok("q", 1, 0)),
                    h(fb, ok("q", 2, 1), wrong_last.clone()),
                    m(fb, ok("q", 3, 2)),
                ],
                1,
            )],
        ),
        (
            "error on the first",
            vec![(vec![h(fb, r("r", 1, 0), wrong_last)], 1)],
        ),
        (
            "duplicates",
            vec![(
                vec![
                    h(fb, r("s", 1, 0), dup.clone()),
                    h(fb, r("s", 2, 1), dup.clone()),
                    h(fb, r("s", 3, 2), dup),
                ],
                1,
            )],
        ),
    ]
}

/// Every case's answers (their bodies, in order), on streams with subjects `nb` (no
/// `allow_batched`) and `fb` (with).
pub async fn answers(
    client: &async_nats::Client,
    nb: &'static str,
    fb: &'static str,
) -> Vec<(&'static str, Vec<String>)> {
    let inbox = client.new_inbox();
    let mut sub = client
        .subscribe(format!("{inbox}.>"))
        .await
        .expect("subscribe");
    client.flush().await.expect("flush");
    let mut all = Vec::new();
    for (case, steps) in cases(nb, fb) {
        let mut got = Vec::new();
        for (msgs, finals) in steps {
            for (subject, tail, hdrs) in msgs {
                let mut headers = HeaderMap::new();
                for (k, v) in hdrs {
                    headers.insert(k, v);
                }
                client
                    .publish_with_reply_and_headers(
                        subject,
                        format!("{inbox}{tail}"),
                        headers,
                        Bytes::from_static(b"x"),
                    )
                    .await
                    .expect("publish");
            }
            let mut seen = 0;
            while seen < finals {
                let msg = tokio::time::timeout(ANSWER, sub.next())
                    .await
                    .unwrap_or_else(|_| panic!("{case}: no answer after {got:?}"))
                    .expect("subscription open");
                let body = String::from_utf8_lossy(&msg.payload).into_owned();
                seen += usize::from(is_final(&body));
                got.push(body);
            }
        }
        all.push((case, got));
    }
    all
}

/// Publishes `n` messages on `subject` as one fast batch `id` (mode `fail`, the last
/// one commits), paced as the clients' fast publishers are: at most two flows of
/// messages past the last flow ack. Returns the PubAck and the flow acks seen.
pub async fn publish(
    client: &async_nats::Client,
    subject: &str,
    id: &str,
    n: u64,
    flow: u16,
    payload: Bytes,
) -> (String, usize) {
    let inbox = client.new_inbox();
    let mut sub = client
        .subscribe(format!("{inbox}.>"))
        .await
        .expect("subscribe");
    client.flush().await.expect("flush");
    let (mut acked, mut window, mut acks) = (0u64, 0u64, 0usize);
    for seq in 1..=n {
        while seq > 1 && seq > acked + 2 * window {
            let msg = tokio::time::timeout(ANSWER, sub.next())
                .await
                .unwrap_or_else(|_| panic!("batch {id}: no flow ack for {seq}"))
                .expect("subscription open");
            let body: Value = serde_json::from_slice(&msg.payload).expect("json");
            assert_eq!(body["type"], "ack", "batch {id}: {body}");
            acked = body["seq"].as_u64().expect("seq");
            window = body["msgs"].as_u64().expect("msgs");
            acks += 1;
        }
        let op = if seq == n {
            2
        } else if seq == 1 {
            0
        } else {
            1
        };
        client
            .publish_with_reply(
                subject.to_owned(),
                reply(&inbox, id, flow, "fail", seq, op),
                payload.clone(),
            )
            .await
            .expect("publish");
    }
    loop {
        let msg = tokio::time::timeout(ANSWER, sub.next())
            .await
            .unwrap_or_else(|_| panic!("batch {id}: no PubAck"))
            .expect("subscription open");
        let body = String::from_utf8_lossy(&msg.payload).into_owned();
        if is_final(&body) {
            return (body, acks);
        }
        acks += 1;
    }
}
