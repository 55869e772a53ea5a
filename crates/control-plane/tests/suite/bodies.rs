//! Test bodies shared by every backend.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use infinistream_control_plane::ControlPlaneClient;
use infinistream_proto::v1;
use infinistream_types::Clock;
use prost::Message;
use tonic::Code;

use super::*;

/// 8 simulated agents commit batches touching the same 50 streams concurrently.
/// Every stream ends contiguous from 1 with no duplicate, the index agrees with the
/// answers, and each agent's batches appear in its own commit order in every stream.
pub async fn concurrent_agents_keep_streams_contiguous(backend: &dyn Backend) {
    const STREAMS: usize = 50;
    const AGENTS: usize = 8;
    const BATCHES: usize = 40;
    let (_cp, mut client) = start(backend, clock()).await;
    for s in 0..STREAMS {
        create(&mut client, &format!("S{s}"), limits(&[&format!("s{s}.>")])).await;
    }
    let mut tasks = Vec::new();
    for a in 0..AGENTS {
        let mut client: ControlPlaneClient = client.clone();
        tasks.push(tokio::spawn(async move {
            // (stream, seq) -> (agent, batch number, position)
            let mut seen: Vec<(String, u64, usize, usize, u32)> = Vec::new();
            for b in 0..BATCHES {
                // A deterministic spread: each batch touches 10..50 streams, 1..3 records.
                let touched = 10 + (a * 7 + b * 13) % 41;
                let mut chunks = Vec::new();
                for i in 0..touched {
                    let s = (a * 11 + b * 3 + i) % STREAMS;
                    let n = 1 + (a + b + i) % 3;
                    let records = (0..n).map(|k| rec(&format!("s{s}.k{k}"))).collect();
                    chunks.push(chunk(&format!("S{s}"), i as u32, records));
                }
                let id = format!("a{a}-b{b}");
                let resp = commit(&mut client, batch(&id, chunks)).await;
                for c in resp.chunks {
                    for (pos, r) in c.records.iter().enumerate() {
                        match r.result {
                            Some(v1::record_result::Result::Seq(seq)) => {
                                seen.push((c.stream.clone(), seq, a, b, pos as u32))
                            }
                            _ => panic!("unexpected answer {}", show(r)),
                        }
                    }
                }
            }
            seen
        }));
    }
    let mut by_stream: BTreeMap<String, BTreeMap<u64, (usize, usize, u32)>> = BTreeMap::new();
    for t in tasks {
        for (stream, seq, a, b, pos) in t.await.unwrap() {
            let prev = by_stream
                .entry(stream.clone())
                .or_default()
                .insert(seq, (a, b, pos));
            assert!(prev.is_none(), "{stream}: seq {seq} assigned twice");
        }
    }
    assert_eq!(by_stream.len(), STREAMS);
    for (stream, seqs) in &by_stream {
        let n = seqs.len() as u64;
        assert_eq!(
            seqs.keys().copied().collect::<Vec<_>>(),
            (1..=n).collect::<Vec<_>>(),
            "{stream} not contiguous"
        );
        // Per agent, batches appear in commit order.
        let mut last_batch: HashMap<usize, usize> = HashMap::new();
        for (seq, (a, b, _)) in seqs {
            if let Some(prev) = last_batch.insert(*a, *b) {
                assert!(
                    prev <= *b,
                    "{stream}: agent {a} batch {b} at seq {seq} after batch {prev}"
                );
            }
        }
        // The index maps exactly the answered (object, position) -> seq.
        let idx = client
            .raw_streams()
            .read_index(v1::ReadIndexRequest {
                stream: stream.clone(),
                start_seq: 1,
                end_seq: 0,
                limit: 100_000,
            })
            .await
            .unwrap()
            .into_inner();
        let mut covered = 0;
        for e in &idx.entries {
            for (i, pos) in e.positions.iter().enumerate() {
                let seq = e.first_seq + i as u64;
                let (a, b, p) = seqs[&seq];
                assert_eq!(
                    e.object_key,
                    format!("objects/a{a}-b{b}"),
                    "{stream} seq {seq}"
                );
                assert_eq!(*pos, p);
                covered += 1;
            }
        }
        assert_eq!(covered, n);
        let st = idx.state.unwrap();
        assert_eq!((st.messages, st.first_seq, st.last_seq), (n, 1, n));
    }
}

/// Nats-Msg-Id and Nats-Expected-* semantics, case by case as nats-server answers.
pub async fn dedupe_and_expected_headers_match_nats_server(backend: &dyn Backend) {
    let clock = clock();
    let (_cp, mut c) = start(backend, clock.clone()).await;
    create(&mut c, "ORDERS", limits(&["orders.>"])).await;
    let with = |f: &dyn Fn(&mut v1::RecordMeta), subject: &str| {
        let mut r = rec(subject);
        f(&mut r);
        r
    };
    // First publish with a msg id, then its duplicate → original seq, duplicate.
    let id = |m: &str| {
        let m = m.to_string();
        move |r: &mut v1::RecordMeta| r.msg_id = Some(m.clone())
    };
    assert_eq!(
        commit_one(&mut c, "b1", "ORDERS", vec![with(&id("m1"), "orders.a")]).await,
        ["1"]
    );
    assert_eq!(
        commit_one(&mut c, "b2", "ORDERS", vec![with(&id("m1"), "orders.a")]).await,
        ["dup1"]
    );
    // Duplicates inside one chunk are caught too, and rejected records consume no seq.
    assert_eq!(
        commit_one(
            &mut c,
            "b3",
            "ORDERS",
            vec![
                with(&id("m2"), "orders.b"),
                with(&id("m2"), "orders.b"),
                rec("orders.c")
            ]
        )
        .await,
        ["2", "dup2", "3"]
    );
    // Expected stream.
    let es = |r: &mut v1::RecordMeta| r.expected_stream = Some("OTHER".into());
    assert_eq!(
        commit_one(&mut c, "b4", "ORDERS", vec![with(&es, "orders.a")]).await,
        ["e10060:expected stream does not match"]
    );
    let es_ok = |r: &mut v1::RecordMeta| r.expected_stream = Some("ORDERS".into());
    assert_eq!(
        commit_one(&mut c, "b5", "ORDERS", vec![with(&es_ok, "orders.a")]).await,
        ["4"]
    );
    // Expected last sequence: the stream's last seq.
    let els = |n: u64| move |r: &mut v1::RecordMeta| r.expected_last_seq = Some(n);
    assert_eq!(
        commit_one(
            &mut c,
            "b6",
            "ORDERS",
            vec![
                with(&els(3), "orders.a"),
                with(&els(4), "orders.a"),
                with(&els(5), "orders.a")
            ]
        )
        .await,
        ["e10071:wrong last sequence: 4", "5", "6"]
    );
    // Expected last subject sequence: the subject's last seq (0 = no message yet).
    let elss = |n: u64| move |r: &mut v1::RecordMeta| r.expected_last_subject_seq = Some(n);
    assert_eq!(
        commit_one(
            &mut c,
            "b7",
            "ORDERS",
            vec![
                with(&elss(0), "orders.new"),
                with(&elss(0), "orders.new"),
                with(&elss(2), "orders.b")
            ]
        )
        .await,
        ["7", "e10071:wrong last sequence: 7", "8"]
    );
    // ...of another subject (Nats-Expected-Last-Subject-Sequence-Subject), wildcards allowed.
    let other = |n: u64, s: &str| {
        let s = s.to_string();
        move |r: &mut v1::RecordMeta| {
            r.expected_last_subject_seq = Some(n);
            r.expected_last_subject_seq_subject = Some(s.clone());
        }
    };
    assert_eq!(
        commit_one(
            &mut c,
            "b8",
            "ORDERS",
            vec![
                with(&other(8, "orders.b"), "orders.x"),
                with(&other(7, "orders.*"), "orders.y")
            ]
        )
        .await,
        ["9", "e10071:wrong last sequence: 9"]
    );
    // The subject header without the sequence header is refused.
    let only_subj =
        |r: &mut v1::RecordMeta| r.expected_last_subject_seq_subject = Some("orders.b".into());
    assert_eq!(
        commit_one(&mut c, "b9", "ORDERS", vec![with(&only_subj, "orders.x")]).await,
        ["e10193:missing sequence for expected last sequence per subject"]
    );
    // Expected last msg id: the id of the *last stored* message ("" if it had none).
    let elm = |m: &str| {
        let m = m.to_string();
        move |r: &mut v1::RecordMeta| r.expected_last_msg_id = Some(m.clone())
    };
    assert_eq!(
        commit_one(&mut c, "b10", "ORDERS", vec![with(&elm("m2"), "orders.a")]).await,
        ["e10070:wrong last msg ID: "]
    );
    assert_eq!(
        commit_one(&mut c, "b11", "ORDERS", vec![with(&id("m3"), "orders.a")]).await,
        ["10"]
    );
    assert_eq!(
        commit_one(
            &mut c,
            "b12",
            "ORDERS",
            vec![with(&elm("m3"), "orders.a"), with(&elm("m3"), "orders.a")]
        )
        .await,
        ["11", "e10070:wrong last msg ID: "]
    );
    // Header checks come before de-duplication (as in processJetStreamMsg): a
    // duplicate with a wrong expected last seq is an error, not a duplicate.
    let dup_bad = |r: &mut v1::RecordMeta| {
        r.msg_id = Some("m1".into());
        r.expected_last_seq = Some(1);
    };
    assert_eq!(
        commit_one(&mut c, "b13", "ORDERS", vec![with(&dup_bad, "orders.a")]).await,
        ["e10071:wrong last sequence: 11"]
    );
    // The duplicate window: after it passes, the same id stores again.
    clock.advance(Duration::from_secs(121));
    assert_eq!(
        commit_one(&mut c, "b14", "ORDERS", vec![with(&id("m1"), "orders.a")]).await,
        ["12"]
    );
    assert_eq!(
        commit_one(&mut c, "b15", "ORDERS", vec![with(&id("m1"), "orders.a")]).await,
        ["dup12"]
    );
    // Unknown stream.
    assert_eq!(
        commit_one(&mut c, "b16", "NOPE", vec![rec("x")]).await,
        ["e10059:stream not found"]
    );
    let st = state(&mut c, "ORDERS").await;
    assert_eq!((st.messages, st.last_seq), (12, 12));
}

/// A commit whose answer was lost (client timeout) is retried with the same batch id:
/// same answer, nothing appended twice.
pub async fn retry_with_same_batch_id_never_double_appends(backend: &dyn Backend) {
    let (_cp, mut c) = start(backend, clock()).await;
    create(&mut c, "S", limits(&["s.>"])).await;
    let req = batch("retry-1", vec![chunk("S", 0, vec![rec("s.a"), rec("s.b")])]);
    // The caller gives up before the answer arrives (its future is dropped).
    let c2 = c.clone();
    let r2 = req.clone();
    let _ = tokio::time::timeout(Duration::ZERO, async move {
        c2.raw_streams().commit_batch(r2).await
    })
    .await;
    // The caller's answer is lost after the commit happened.
    let first = commit(&mut c, req.clone()).await;
    let again = commit(&mut c, req.clone()).await;
    assert!(
        again.replayed,
        "a retry must be answered from the stored answer"
    );
    assert_eq!(first.chunks, again.chunks);
    let seqs: Vec<String> = again.chunks[0].records.iter().map(show).collect();
    assert_eq!(seqs, ["1", "2"]);
    let st = state(&mut c, "S").await;
    assert_eq!((st.messages, st.last_seq), (2, 2), "appended once");
    // A new batch continues after it.
    assert_eq!(
        commit_one(&mut c, "retry-2", "S", vec![rec("s.c")]).await,
        ["3"]
    );
}

/// Restarting the control plane on the same store loses nothing: streams, index,
/// dedupe window, stored batch answers, and sequencing resumes at last + 1.
pub async fn restart_keeps_everything_committed(backend: &dyn Backend) {
    let clock = clock();
    let before;
    {
        let (cp, mut c) = start(backend, clock.clone()).await;
        create(&mut c, "S", limits(&["s.>"])).await;
        create(&mut c, "T", limits(&["t.>"])).await;
        let mut r = rec("s.a");
        r.msg_id = Some("id-1".into());
        commit(
            &mut c,
            batch(
                "b1",
                vec![
                    chunk("S", 0, vec![r, rec("s.b")]),
                    chunk("T", 1, vec![rec("t.a")]),
                ],
            ),
        )
        .await;
        commit_one(&mut c, "b2", "S", vec![rec("s.a"), rec("s.c")]).await;
        let d = c
            .raw_streams()
            .delete_message(v1::DeleteMessageRequest {
                stream: "S".into(),
                seq: 3,
            })
            .await
            .unwrap()
            .into_inner();
        assert!(d.error.is_none());
        before = (info(&mut c, "S").await, info(&mut c, "T").await);
        drop(c);
        drop(cp);
    }
    // Let the writer notice the engine is gone before reopening the same file.
    tokio::task::yield_now().await;
    let (_cp, mut c) = start(backend, clock.clone()).await;
    assert_eq!(info(&mut c, "S").await, before.0);
    assert_eq!(info(&mut c, "T").await, before.1);
    let st = before.0.state.unwrap();
    assert_eq!(
        (st.messages, st.last_seq, st.deleted.clone()),
        (3, 4, vec![3])
    );
    // Dedupe survives the restart.
    let mut r = rec("s.a");
    r.msg_id = Some("id-1".into());
    assert_eq!(
        commit_one(&mut c, "b3", "S", vec![r, rec("s.d")]).await,
        ["dup1", "5"]
    );
    // So do stored answers.
    let replay = commit(
        &mut c,
        batch("b2", vec![chunk("S", 0, vec![rec("s.a"), rec("s.c")])]),
    )
    .await;
    assert!(replay.replayed);
    assert_eq!(
        replay.chunks[0]
            .records
            .iter()
            .map(show)
            .collect::<Vec<_>>(),
        ["3", "4"]
    );
    let last = c
        .raw_streams()
        .last_by_subject(v1::LastBySubjectRequest {
            stream: "S".into(),
            subjects: vec![],
        })
        .await
        .unwrap()
        .into_inner();
    let got: Vec<(String, u64, u64)> = last
        .subjects
        .into_iter()
        .map(|s| (s.subject, s.last_seq, s.count))
        .collect();
    assert_eq!(
        got,
        [
            ("s.a".into(), 1, 1),
            ("s.b".into(), 2, 1),
            ("s.c".into(), 4, 1),
            ("s.d".into(), 5, 1)
        ]
    );
}

/// Wrong or missing keys are refused; one group never sees another's streams.
pub async fn auth_and_group_isolation(backend: &dyn Backend) {
    let (cp, mut a) = start(backend, clock()).await;
    let wrong = cp.client(GROUP, "not-the-key").unwrap();
    let err = wrong
        .raw_streams()
        .list_streams(v1::ListStreamsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    assert!(!err.message().contains("not-the-key"));
    let unknown = cp.client("team-z", KEY).unwrap();
    assert_eq!(
        unknown
            .raw_agents()
            .list_agents(v1::ListAgentsRequest::default())
            .await
            .unwrap_err()
            .code(),
        Code::Unauthenticated
    );
    // Group A's stream is invisible to group B, which may reuse name and subjects.
    create(&mut a, "S", limits(&["s.>"])).await;
    commit_one(&mut a, "b1", "S", vec![rec("s.a"), rec("s.a")]).await;
    let mut b = cp.client(GROUP_B, KEY_B).unwrap();
    let list = b
        .raw_streams()
        .list_streams(v1::ListStreamsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(list.streams.is_empty());
    assert_eq!(info(&mut b, "S").await.error.unwrap().err_code, 10059);
    assert_eq!(
        commit_one(&mut b, "b0", "S", vec![rec("s.a")]).await,
        ["e10059:stream not found"]
    );
    create(&mut b, "S", limits(&["s.>"])).await;
    // Same batch id in another group is another batch.
    assert_eq!(commit_one(&mut b, "b1", "S", vec![rec("s.a")]).await, ["1"]);
    assert_eq!(state(&mut a, "S").await.messages, 2);
    assert_eq!(state(&mut b, "S").await.messages, 1);
}

/// The CommitBatch request carries metadata only: its size does not depend on the
/// payload sizes of the records it commits.
pub async fn commit_request_size_is_independent_of_payload(backend: &dyn Backend) {
    let (_cp, mut c) = start(backend, clock()).await;
    create(&mut c, "S", limits(&["s.>"])).await;
    let build = |payload: u32| {
        let records = (0..100)
            .map(|i| {
                let mut r = rec(&format!("s.key{i}"));
                r.size = payload + 10;
                r.msg_id = Some(format!("id-{i}"));
                r
            })
            .collect();
        batch(
            if payload < 100 { "size-s" } else { "size-l" },
            vec![chunk("S", 0, records)],
        )
    };
    let small = build(10);
    let large = build(1_000_000);
    let (ls, ll) = (small.encoded_len(), large.encoded_len());
    // 100 records; only the varint width of `size` (and the id text) may differ.
    assert!(
        ll <= ls + 100 * 3,
        "request grew with payload: {ls} -> {ll}"
    );
    assert!(
        ll < 100 * 64,
        "request is not metadata-sized: {ll} bytes for 100 records"
    );
    commit(&mut c, small).await;
    let large_resp = commit(&mut c, large).await;
    // Same msg ids: the second batch is all duplicates; store it under new ids instead.
    assert!(
        large_resp.chunks[0]
            .records
            .iter()
            .all(|r| show(r).starts_with("dup"))
    );
    let mut again = build(1_000_000);
    again.batch_id = "size-l2".into();
    for r in &mut again.chunks[0].records {
        r.msg_id = None;
    }
    commit(&mut c, again).await;
    let st = state(&mut c, "S").await;
    assert_eq!(st.messages, 200);
    assert_eq!(st.bytes, 100 * 20 + 100 * 1_000_010);
}

/// Limits: discard old trims the index; discard new refuses with nats-server's codes.
pub async fn limits_discard_old_and_new(backend: &dyn Backend) {
    let (_cp, mut c) = start(backend, clock()).await;
    // max_msgs with discard old: the oldest sequences leave the index.
    let mut l = limits(&["old.>"]);
    l.max_msgs = 3;
    create(&mut c, "OLD", l).await;
    commit_one(&mut c, "o1", "OLD", vec![rec("old.a"), rec("old.b")]).await;
    commit_one(
        &mut c,
        "o2",
        "OLD",
        vec![rec("old.c"), rec("old.d"), rec("old.e")],
    )
    .await;
    let st = state(&mut c, "OLD").await;
    assert_eq!(
        (st.messages, st.first_seq, st.last_seq, st.num_deleted),
        (3, 3, 5, 0)
    );
    let idx = c
        .raw_streams()
        .read_index(v1::ReadIndexRequest {
            stream: "OLD".into(),
            start_seq: 1,
            end_seq: 0,
            limit: 0,
        })
        .await
        .unwrap()
        .into_inner();
    // The first batch's entry is gone entirely, the second holds 3..=5.
    assert_eq!(idx.entries.len(), 1);
    assert_eq!(
        (idx.entries[0].object_key.as_str(), idx.entries[0].first_seq),
        ("objects/o2", 3)
    );
    let objects = c
        .raw_jobs()
        .list_objects(v1::ListObjectsRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(objects.referenced, ["objects/o2"]);
    assert_eq!(
        objects
            .released
            .iter()
            .map(|r| r.object_key.as_str())
            .collect::<Vec<_>>(),
        ["objects/o1"]
    );

    // max_msgs with discard new.
    let mut l = limits(&["new.>"]);
    l.max_msgs = 2;
    l.discard = v1::Discard::New as i32;
    create(&mut c, "NEW", l).await;
    assert_eq!(
        commit_one(
            &mut c,
            "n1",
            "NEW",
            vec![rec("new.a"), rec("new.b"), rec("new.c")]
        )
        .await,
        ["1", "2", "e10077:maximum messages exceeded"]
    );
    // max_bytes with discard new.
    let mut l = limits(&["bytes.>"]);
    l.max_bytes = 250;
    l.discard = v1::Discard::New as i32;
    create(&mut c, "BYTES", l).await;
    assert_eq!(
        commit_one(
            &mut c,
            "y1",
            "BYTES",
            vec![rec("bytes.a"), rec("bytes.b"), rec("bytes.c")]
        )
        .await,
        ["1", "2", "e10077:maximum bytes exceeded"]
    );
    // Per subject, discard new per subject.
    let mut l = limits(&["ps.>"]);
    l.max_msgs_per_subject = 1;
    l.discard = v1::Discard::New as i32;
    l.discard_new_per_subject = true;
    create(&mut c, "PS", l).await;
    assert_eq!(
        commit_one(
            &mut c,
            "p1",
            "PS",
            vec![rec("ps.a"), rec("ps.b"), rec("ps.a")]
        )
        .await,
        ["1", "2", "e10077:maximum messages per subject exceeded"]
    );
    // Per subject with discard old (KV history 1): the older value leaves.
    let mut l = limits(&["kv.>"]);
    l.max_msgs_per_subject = 1;
    create(&mut c, "KV", l).await;
    assert_eq!(
        commit_one(
            &mut c,
            "k1",
            "KV",
            vec![rec("kv.a"), rec("kv.b"), rec("kv.a")]
        )
        .await,
        ["1", "2", "3"]
    );
    let st = state(&mut c, "KV").await;
    assert_eq!(
        (st.messages, st.first_seq, st.deleted.clone()),
        (2, 2, vec![])
    );
    // Max message size and sealed.
    let mut l = limits(&["big.>"]);
    l.max_msg_size = 50;
    create(&mut c, "BIG", l.clone()).await;
    let mut small = rec("big.a");
    small.size = 50 + "big.a".len() as u32;
    assert_eq!(
        commit_one(&mut c, "g1", "BIG", vec![rec("big.a"), small]).await,
        ["e10054:message size exceeds maximum allowed", "1"]
    );
    l.sealed = true;
    let up = c
        .raw_streams()
        .update_stream(v1::UpdateStreamRequest {
            config: Some(v1::StreamConfig {
                name: "BIG".into(),
                config_json: b"{}".to_vec(),
                limits: Some(l),
            }),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(up.error.is_none());
    assert_eq!(
        commit_one(&mut c, "g2", "BIG", vec![rec("big.a")]).await,
        ["e10109:invalid operation on sealed stream"]
    );
    // Lowering max_msgs on update trims at once.
    let mut l = limits(&["old.>"]);
    l.max_msgs = 1;
    c.raw_streams()
        .update_stream(v1::UpdateStreamRequest {
            config: Some(v1::StreamConfig {
                name: "OLD".into(),
                config_json: b"{}".to_vec(),
                limits: Some(l),
            }),
        })
        .await
        .unwrap();
    let st = state(&mut c, "OLD").await;
    assert_eq!((st.messages, st.first_seq), (1, 5));
}

/// Stream lifecycle and the index operations: overlap, purge, delete, time lookup,
/// max_age with an injected clock, compaction swap.
pub async fn streams_purge_delete_and_swap(backend: &dyn Backend) {
    let clock = clock();
    let (_cp, mut c) = start(backend, clock.clone()).await;
    create(&mut c, "S", limits(&["s.>"])).await;
    // Overlapping subjects and a changed config under the same name are refused.
    let resp = c
        .raw_streams()
        .create_stream(v1::CreateStreamRequest {
            config: Some(v1::StreamConfig {
                name: "T".into(),
                config_json: b"{}".to_vec(),
                limits: Some(limits(&["s.a"])),
            }),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(resp.error.unwrap().err_code, 10065);
    let resp = c
        .raw_streams()
        .create_stream(v1::CreateStreamRequest {
            config: Some(v1::StreamConfig {
                name: "S".into(),
                config_json: b"{}".to_vec(),
                limits: Some(limits(&["x.>"])),
            }),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(resp.error.unwrap().err_code, 10058);
    let ts = |t: i64, s: &str| {
        let mut r = rec(s);
        r.timestamp_unix_nanos = t;
        r
    };
    commit_one(
        &mut c,
        "b1",
        "S",
        vec![ts(10, "s.a"), ts(20, "s.b"), ts(30, "s.a")],
    )
    .await;
    commit_one(
        &mut c,
        "b2",
        "S",
        vec![ts(40, "s.c"), ts(50, "s.a"), ts(60, "s.b")],
    )
    .await;
    let sft = c
        .raw_streams()
        .seq_for_time(v1::SeqForTimeRequest {
            stream: "S".into(),
            timestamp_unix_nanos: 35,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(sft.seq, 4);
    // Purge by subject keeping 1.
    let p = c
        .raw_streams()
        .purge_stream(v1::PurgeStreamRequest {
            stream: "S".into(),
            subject: "s.a".into(),
            keep: Some(1),
            up_to_seq: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(p.purged, 2);
    let st = state(&mut c, "S").await;
    assert_eq!(
        (st.messages, st.first_seq, st.deleted.clone()),
        (4, 2, vec![3])
    );
    // Compaction: swap both entries for one segment.
    let idx = c
        .raw_streams()
        .read_index(v1::ReadIndexRequest {
            stream: "S".into(),
            start_seq: 1,
            end_seq: 0,
            limit: 0,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(idx.entries.len(), 2);
    let refs: Vec<v1::IndexEntryRef> = idx
        .entries
        .iter()
        .map(|e| v1::IndexEntryRef {
            object_key: e.object_key.clone(),
            chunk_index: e.chunk_index,
            first_seq: e.first_seq,
        })
        .collect();
    let swap = c
        .raw_jobs()
        .swap_index(v1::SwapIndexRequest {
            stream: "S".into(),
            replaced: refs.clone(),
            segment_object_key: "segments/S-1".into(),
            segment_byte_size: 999,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(swap.swapped, "{}", swap.reason);
    // The same swap again fails: the entries changed.
    let again = c
        .raw_jobs()
        .swap_index(v1::SwapIndexRequest {
            stream: "S".into(),
            replaced: refs,
            segment_object_key: "segments/S-2".into(),
            segment_byte_size: 1,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!again.swapped);
    let idx = c
        .raw_streams()
        .read_index(v1::ReadIndexRequest {
            stream: "S".into(),
            start_seq: 3,
            end_seq: 3,
            limit: 0,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(idx.entries.len(), 1);
    let seg = &idx.entries[0];
    assert!(seg.segment);
    assert_eq!(
        (seg.first_seq, seg.last_seq, seg.deleted.clone()),
        (1, 6, vec![1, 3])
    );
    let objects = c
        .raw_jobs()
        .list_objects(v1::ListObjectsRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(objects.referenced, ["segments/S-1"]);
    let mut released: Vec<String> = objects
        .released
        .iter()
        .map(|r| r.object_key.clone())
        .collect();
    released.sort();
    assert_eq!(released, ["objects/b1", "objects/b2"]);
    c.raw_jobs()
        .forget_objects(v1::ForgetObjectsRequest {
            object_keys: released,
        })
        .await
        .unwrap();
    assert!(
        c.raw_jobs()
            .list_objects(v1::ListObjectsRequest {})
            .await
            .unwrap()
            .into_inner()
            .released
            .is_empty()
    );
    // Delete a message, then a missing one.
    let d = c
        .raw_streams()
        .delete_message(v1::DeleteMessageRequest {
            stream: "S".into(),
            seq: 4,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(d.error.is_none());
    let d = c
        .raw_streams()
        .delete_message(v1::DeleteMessageRequest {
            stream: "S".into(),
            seq: 4,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(d.error.unwrap().err_code, 10057);
    // max_age with the injected clock: messages older than it go on EnforceRetention.
    let mut l = limits(&["age.>"]);
    l.max_age_nanos = 60_000_000_000;
    create(&mut c, "AGE", l).await;
    let now = clock.now_unix_nanos();
    commit_one(&mut c, "a1", "AGE", vec![ts(now, "age.a")]).await;
    clock.advance(Duration::from_secs(30));
    commit_one(
        &mut c,
        "a2",
        "AGE",
        vec![ts(clock.now_unix_nanos(), "age.b")],
    )
    .await;
    clock.advance(Duration::from_secs(45));
    let removed = c
        .raw_jobs()
        .enforce_retention(v1::EnforceRetentionRequest {})
        .await
        .unwrap()
        .into_inner()
        .removed;
    assert_eq!(removed, 1);
    let st = state(&mut c, "AGE").await;
    assert_eq!((st.messages, st.first_seq), (1, 2));
    // Full purge moves first_seq past last_seq; delete stream releases objects.
    let p = c
        .raw_streams()
        .purge_stream(v1::PurgeStreamRequest {
            stream: "S".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(p.purged, 3);
    let st = state(&mut c, "S").await;
    assert_eq!((st.messages, st.first_seq, st.last_seq), (0, 7, 6));
    assert!(
        c.raw_streams()
            .delete_stream(v1::DeleteStreamRequest { name: "AGE".into() })
            .await
            .unwrap()
            .into_inner()
            .error
            .is_none()
    );
    assert_eq!(info(&mut c, "AGE").await.error.unwrap().err_code, 10059);
    assert_eq!(
        commit_one(&mut c, "a3", "AGE", vec![rec("age.a")]).await,
        ["e10059:stream not found"]
    );
}

/// Agents register with leases; lapsed agents disappear; job leases are exclusive.
pub async fn agents_and_job_leases(backend: &dyn Backend) {
    let clock = clock();
    let (_cp, c) = start(backend, clock.clone()).await;
    let reg = |id: &str, roles: &[&str], zone: &str| v1::RegisterRequest {
        agent: Some(v1::AgentInfo {
            agent_id: id.into(),
            roles: roles.iter().map(|r| r.to_string()).collect(),
            zone: zone.into(),
            client_address: format!("{id}:4222"),
            peer_address: format!("{id}:9222"),
            ..Default::default()
        }),
        lease_ms: 10_000,
    };
    c.raw_agents()
        .register(reg("a1", &["proxy"], "z1"))
        .await
        .unwrap();
    c.raw_agents()
        .register(reg("a2", &["jobs"], "z1"))
        .await
        .unwrap();
    c.raw_agents()
        .register(reg("a3", &["proxy-consume"], "z2"))
        .await
        .unwrap();
    let bad = c
        .raw_agents()
        .register(reg("a4", &["proxy-fetch"], "z2"))
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    let list = |role: &str, zone: &str| v1::ListAgentsRequest {
        role: role.into(),
        zone: zone.into(),
    };
    let ids =
        |r: v1::ListAgentsResponse| r.agents.into_iter().map(|a| a.agent_id).collect::<Vec<_>>();
    assert_eq!(
        ids(c
            .raw_agents()
            .list_agents(list("proxy-consume", ""))
            .await
            .unwrap()
            .into_inner()),
        ["a1", "a3"]
    );
    assert_eq!(
        ids(c
            .raw_agents()
            .list_agents(list("", "z1"))
            .await
            .unwrap()
            .into_inner()),
        ["a1", "a2"]
    );
    clock.advance(Duration::from_secs(6));
    c.raw_agents()
        .heartbeat(v1::HeartbeatRequest {
            agent_id: "a1".into(),
        })
        .await
        .unwrap();
    clock.advance(Duration::from_secs(6));
    assert_eq!(
        ids(c
            .raw_agents()
            .list_agents(list("", ""))
            .await
            .unwrap()
            .into_inner()),
        ["a1"]
    );
    let lapsed = c
        .raw_agents()
        .heartbeat(v1::HeartbeatRequest {
            agent_id: "a2".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(lapsed.code(), Code::NotFound);

    let acquire = |holder: &str| v1::AcquireLeaseRequest {
        name: "compact/S".into(),
        holder: holder.into(),
        ttl_ms: 5_000,
    };
    let l1 = c
        .raw_jobs()
        .acquire_lease(acquire("j1"))
        .await
        .unwrap()
        .into_inner();
    assert!(l1.acquired);
    let l2 = c
        .raw_jobs()
        .acquire_lease(acquire("j2"))
        .await
        .unwrap()
        .into_inner();
    assert!(!l2.acquired);
    assert_eq!(l2.holder, "j1");
    let renew = c
        .raw_jobs()
        .renew_lease(v1::RenewLeaseRequest {
            name: "compact/S".into(),
            holder: "j1".into(),
            ttl_ms: 5_000,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(renew.acquired);
    assert_eq!(renew.generation, l1.generation);
    clock.advance(Duration::from_secs(6));
    let l3 = c
        .raw_jobs()
        .acquire_lease(acquire("j2"))
        .await
        .unwrap()
        .into_inner();
    assert!(l3.acquired, "an expired lease is free");
    assert!(l3.generation > l1.generation);
    let lost = c
        .raw_jobs()
        .renew_lease(v1::RenewLeaseRequest {
            name: "compact/S".into(),
            holder: "j1".into(),
            ttl_ms: 5_000,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!lost.acquired);
    let rel = c
        .raw_jobs()
        .release_lease(v1::ReleaseLeaseRequest {
            name: "compact/S".into(),
            holder: "j2".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(rel.released);
    assert!(
        c.raw_jobs()
            .acquire_lease(acquire("j1"))
            .await
            .unwrap()
            .into_inner()
            .acquired
    );
}

/// A second control plane opened on the same store takes the fence; the first can no
/// longer commit (no two writers ever append).
pub async fn a_deposed_control_plane_cannot_commit(backend: &dyn Backend) {
    let store = backend.open().await;
    let clock = clock();
    let first = infinistream_control_plane::ControlPlane::open_with(
        store.clone(),
        groups(),
        clock.clone(),
        options(),
    )
    .await
    .unwrap();
    let mut c1 = first.client(GROUP, KEY).unwrap();
    create(&mut c1, "S", limits(&["s.>"])).await;
    assert_eq!(
        commit_one(&mut c1, "b1", "S", vec![rec("s.a")]).await,
        ["1"]
    );
    let second =
        infinistream_control_plane::ControlPlane::open_with(store, groups(), clock, options())
            .await
            .unwrap();
    let err = c1
        .raw_streams()
        .commit_batch(batch("b2", vec![chunk("S", 0, vec![rec("s.a")])]))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable);
    let mut c2 = second.client(GROUP, KEY).unwrap();
    assert_eq!(
        commit_one(&mut c2, "b2", "S", vec![rec("s.a")]).await,
        ["2"]
    );
}

/// Served over TCP on port 0: the remote client works and a wrong key is refused.
pub async fn served_over_tcp(backend: &dyn Backend) {
    let (cp, _) = start(backend, clock()).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server_cp = cp.clone();
    let server = tokio::spawn(async move {
        infinistream_control_plane::serve(&server_cp, listener, async {
            let _ = stop_rx.await;
        })
        .await
    });
    let url = format!("http://{addr}");
    let mut c = infinistream_control_plane::ControlPlaneClient::connect(&url, GROUP, KEY)
        .await
        .unwrap();
    create(&mut c, "S", limits(&["s.>"])).await;
    assert_eq!(commit_one(&mut c, "b1", "S", vec![rec("s.a")]).await, ["1"]);
    let bad = infinistream_control_plane::ControlPlaneClient::connect(&url, GROUP, "wrong")
        .await
        .unwrap();
    let err = bad
        .raw_streams()
        .stream_info(v1::StreamInfoRequest {
            name: "S".into(),
            deleted_details: false,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    let _ = stop_tx.send(());
    server.await.unwrap().unwrap();
    let _ = Arc::clone(&Arc::new(()));
}

/// A release, nak or progress names the delivery it answers: one for a delivery that
/// expired and was claimed again (agent A paused past its deadline, agent B claimed the
/// message) leaves B's claim alone and is answered as stale; without the delivery
/// count (an older agent) it is applied as before, undoing B's claim. B's ack holds
/// through a restart: the message is not delivered again after it.
pub async fn a_late_release_leaves_a_newer_claim_alone(backend: &dyn Backend) {
    let clock = clock();
    let claim = |agent: &str| v1::ClaimRequest {
        stream: "S".into(),
        consumer: "D".into(),
        agent_id: agent.into(),
        batch: 5,
        ..Default::default()
    };
    let ack = |kind: v1::AckKind, count: u64| v1::AcknowledgeRequest {
        stream: "S".into(),
        consumer: "D".into(),
        kind: kind as i32,
        stream_seqs: vec![1],
        delivery_counts: vec![count],
        ..Default::default()
    };
    let claimed = |r: v1::ClaimResponse| -> Vec<(u64, u64)> {
        r.deliveries
            .iter()
            .map(|d| (d.stream_seq, d.delivery_count))
            .collect()
    };
    {
        let (_cp, mut c) = start(backend, clock.clone()).await;
        create(&mut c, "S", limits(&["s.>"])).await;
        commit_one(&mut c, "b1", "S", vec![rec("s.a")]).await;
        let cfg = v1::ConsumerConfig {
            stream: "S".into(),
            name: "D".into(),
            config_json: b"{}".to_vec(),
            ack_wait_nanos: 30_000_000_000,
            ..Default::default()
        };
        let info = c
            .raw_consumers()
            .create_consumer(v1::CreateConsumerRequest { config: Some(cfg) })
            .await
            .unwrap()
            .into_inner();
        assert!(info.error.is_none(), "{:?}", info.error);
        let mut cc = c.raw_consumers();
        assert_eq!(
            claimed(cc.claim(claim("a")).await.unwrap().into_inner()),
            [(1, 1)]
        );
        clock.advance(Duration::from_secs(31));
        assert_eq!(
            claimed(cc.claim(claim("b")).await.unwrap().into_inner()),
            [(1, 2)]
        );
        // A's release, nak and progress of delivery 1 arrive late: no-ops.
        for kind in [
            v1::AckKind::Release,
            v1::AckKind::Nak,
            v1::AckKind::InProgress,
        ] {
            let resp = cc.acknowledge(ack(kind, 1)).await.unwrap().into_inner();
            assert!(resp.error.is_none(), "{:?}", resp.error);
            assert_eq!(resp.stale_stream_seqs, [1], "{kind:?}");
            assert!(claimed(cc.claim(claim("c")).await.unwrap().into_inner()).is_empty());
        }
        // Unfenced (delivery count unknown), the same release undoes B's claim: the
        // message would go out a third time while B's client holds it.
        let resp = cc
            .acknowledge(ack(v1::AckKind::Release, 0))
            .await
            .unwrap()
            .into_inner();
        assert!(resp.stale_stream_seqs.is_empty());
        assert_eq!(
            claimed(cc.claim(claim("c")).await.unwrap().into_inner()),
            [(1, 2)]
        );
        // C's client acks (a late ack of delivery 1 is taken too, as nats-server).
        let resp = cc
            .acknowledge(ack(v1::AckKind::Ack, 1))
            .await
            .unwrap()
            .into_inner();
        assert!(resp.error.is_none() && resp.stale_stream_seqs.is_empty());
    }
    // After a restart and another ack_wait: acked, never delivered again.
    let (_cp, c) = start(backend, clock.clone()).await;
    clock.advance(Duration::from_secs(31));
    let mut cc = c.raw_consumers();
    assert!(claimed(cc.claim(claim("a")).await.unwrap().into_inner()).is_empty());
    let resp = cc
        .acknowledge(ack(v1::AckKind::Release, 1))
        .await
        .unwrap()
        .into_inner();
    assert!(resp.error.is_none() && resp.stale_stream_seqs.is_empty());
    assert!(claimed(cc.claim(claim("a")).await.unwrap().into_inner()).is_empty());
}

/// Consumer state: claims never overlap while their deadline runs, acks move the
/// floor, expired claims are redelivered with a higher count, nak/term/in-progress,
/// and the state survives a restart.
pub async fn consumer_claims_acks_and_redelivery(backend: &dyn Backend) {
    let clock = clock();
    {
        let (_cp, mut c) = start(backend, clock.clone()).await;
        create(&mut c, "S", limits(&["s.>"])).await;
        let recs = (0..10).map(|i| rec(&format!("s.{}", i % 2))).collect();
        commit_one(&mut c, "b1", "S", recs).await;
        let cfg = v1::ConsumerConfig {
            stream: "S".into(),
            name: "D".into(),
            config_json: b"{}".to_vec(),
            ack_wait_nanos: 30_000_000_000,
            max_deliver: 3,
            ..Default::default()
        };
        let info = c
            .raw_consumers()
            .create_consumer(v1::CreateConsumerRequest {
                config: Some(cfg.clone()),
            })
            .await
            .unwrap()
            .into_inner();
        assert!(info.error.is_none(), "{:?}", info.error);
        assert_eq!(info.state.unwrap().num_pending, 10);
        assert_eq!(info_stream_consumers(&mut c).await, 1);
        // Two agents claim concurrently: disjoint sets covering 1..=10.
        let claim = |agent: &str| v1::ClaimRequest {
            stream: "S".into(),
            consumer: "D".into(),
            agent_id: agent.into(),
            batch: 5,
            ..Default::default()
        };
        let (mut c1, mut c2) = (c.raw_consumers(), c.raw_consumers());
        let (a, b) = tokio::join!(c1.claim(claim("a1")), c2.claim(claim("a2")));
        let mut seqs: Vec<u64> = a
            .unwrap()
            .into_inner()
            .deliveries
            .iter()
            .chain(b.unwrap().into_inner().deliveries.iter())
            .map(|d| d.stream_seq)
            .collect();
        seqs.sort();
        assert_eq!(seqs, (1..=10).collect::<Vec<_>>());
        // Nothing more to claim while deadlines run.
        assert!(
            c.raw_consumers()
                .claim(claim("a3"))
                .await
                .unwrap()
                .into_inner()
                .deliveries
                .is_empty()
        );
        let ack = |kind: v1::AckKind, seqs: Vec<u64>, delay: i64| v1::AcknowledgeRequest {
            stream: "S".into(),
            consumer: "D".into(),
            kind: kind as i32,
            stream_seqs: seqs,
            nak_delay_nanos: delay,
            ..Default::default()
        };
        c.raw_consumers()
            .acknowledge(ack(v1::AckKind::Ack, vec![1, 2, 3], 0))
            .await
            .unwrap();
        c.raw_consumers()
            .acknowledge(ack(v1::AckKind::Term, vec![5], 0))
            .await
            .unwrap();
        c.raw_consumers()
            .acknowledge(ack(v1::AckKind::Nak, vec![4], 0))
            .await
            .unwrap();
        c.raw_consumers()
            .acknowledge(ack(v1::AckKind::Nak, vec![6], 10_000_000_000))
            .await
            .unwrap();
        // 4 was nak'ed without delay: claimable now, second delivery.
        let d = c
            .raw_consumers()
            .claim(claim("a1"))
            .await
            .unwrap()
            .into_inner()
            .deliveries;
        assert_eq!(
            d.iter()
                .map(|d| (d.stream_seq, d.delivery_count))
                .collect::<Vec<_>>(),
            [(4, 2)]
        );
        let st = c
            .raw_consumers()
            .consumer_info(v1::ConsumerInfoRequest {
                stream: "S".into(),
                name: "D".into(),
            })
            .await
            .unwrap()
            .into_inner()
            .state
            .unwrap();
        assert_eq!(st.ack_floor.unwrap().stream_seq, 3);
        assert_eq!(st.num_ack_pending, 6);
        // After ack_wait everything unacked comes back (6 after its nak delay too).
        clock.advance(Duration::from_secs(31));
        let d = c
            .raw_consumers()
            .claim(v1::ClaimRequest {
                batch: 100,
                ..claim("a2")
            })
            .await
            .unwrap()
            .into_inner()
            .deliveries;
        let got: Vec<(u64, u64)> = d.iter().map(|d| (d.stream_seq, d.delivery_count)).collect();
        assert_eq!(got, [(4, 3), (6, 2), (7, 2), (8, 2), (9, 2), (10, 2)]);
        c.raw_consumers()
            .acknowledge(ack(v1::AckKind::Ack, vec![6, 7, 8, 9, 10], 0))
            .await
            .unwrap();
        // 4 reached max_deliver (3): it is not delivered again.
        clock.advance(Duration::from_secs(31));
        assert!(
            c.raw_consumers()
                .claim(claim("a1"))
                .await
                .unwrap()
                .into_inner()
                .deliveries
                .is_empty()
        );
        // New messages flow to the consumer.
        commit_one(&mut c, "b2", "S", vec![rec("s.0")]).await;
        let d = c
            .raw_consumers()
            .claim(claim("a1"))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            d.deliveries
                .iter()
                .map(|d| d.stream_seq)
                .collect::<Vec<_>>(),
            [11]
        );
        assert_eq!(d.num_pending, 0);
    }
    tokio::task::yield_now().await;
    let (_cp, c) = start(backend, clock.clone()).await;
    let info = c
        .raw_consumers()
        .consumer_info(v1::ConsumerInfoRequest {
            stream: "S".into(),
            name: "D".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let st = info.state.unwrap();
    assert_eq!(st.delivered.unwrap().stream_seq, 11);
    assert_eq!(st.num_ack_pending, 1);
    let list = c
        .raw_consumers()
        .list_consumers(v1::ListConsumersRequest {
            stream: "S".into(),
            every_stream: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(list.consumers.len(), 1);
    // The every-stream listing (one call for the push scanner) names each consumer's
    // stream.
    let every = c.list_every_consumer().await.unwrap();
    let names: Vec<(&str, &str)> = every
        .iter()
        .filter_map(|r| r.config.as_ref())
        .map(|cfg| (cfg.stream.as_str(), cfg.name.as_str()))
        .collect();
    assert_eq!(names, [("S", "D")]);
    let del = c
        .raw_consumers()
        .delete_consumer(v1::DeleteConsumerRequest {
            stream: "S".into(),
            name: "D".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(del.error.is_none());
    let gone = c
        .raw_consumers()
        .consumer_info(v1::ConsumerInfoRequest {
            stream: "S".into(),
            name: "D".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(gone.error.unwrap().err_code, 10014);
}

/// S's consumer count, as STREAM.INFO reports it; asserts that the stream list
/// (STREAM.LIST, `$JS.API.INFO`) reports the same.
async fn info_stream_consumers(c: &mut ControlPlaneClient) -> u32 {
    let count = info(c, "S").await.state.unwrap().consumer_count;
    let list = c
        .raw_streams()
        .list_streams(v1::ListStreamsRequest::default())
        .await
        .unwrap()
        .into_inner();
    let listed = list
        .streams
        .iter()
        .find(|s| s.config.as_ref().is_some_and(|c| c.name == "S"))
        .and_then(|s| s.state.as_ref())
        .map(|st| st.consumer_count);
    assert_eq!(
        listed,
        Some(count),
        "the stream list agrees with STREAM.INFO"
    );
    count
}

/// The JetStream account's limits (`SetAccountLimits`) refuse, at commit, what
/// nats-server refuses: a stream past `max_streams` (10027), a consumer past
/// `max_consumers` (10026), a stream whose `max_bytes` exceeds the storage not yet
/// reserved (10047) and a message past `max_storage` (10002). They survive a
/// restart, and unlimited limits lift them.
pub async fn account_limits_refuse_at_commit(backend: &dyn Backend) {
    let clock = clock();
    let set =
        |max_streams: i64, max_consumers: i64, max_storage: i64| v1::SetAccountLimitsRequest {
            limits: Some(v1::AccountLimits {
                account: "ORDERS".into(),
                max_streams,
                max_consumers,
                max_storage,
                max_memory: -1,
            }),
            account: String::new(),
        };
    let consumer = |name: &str| v1::CreateConsumerRequest {
        config: Some(v1::ConsumerConfig {
            stream: "A".into(),
            name: name.into(),
            config_json: b"{}".to_vec(),
            ack_wait_nanos: 30_000_000_000,
            max_deliver: -1,
            ..Default::default()
        }),
    };
    let code = |e: Option<v1::JsError>| e.map(|e| (e.err_code, e.description));
    {
        let (_cp, mut c) = start(backend, clock.clone()).await;
        create(&mut c, "A", limits(&["a.>"])).await;
        c.raw_streams()
            .set_account_limits(set(2, 1, 350))
            .await
            .unwrap();
        // A stream reserving more than the account stores: 10047.
        let mut big = limits(&["b.>"]);
        big.max_bytes = 351;
        assert_eq!(
            code(try_create(&mut c, "B", big).await),
            Some((10047, "insufficient storage resources available".into()))
        );
        create(&mut c, "B", limits(&["b.>"])).await;
        // The same stream again is not a new one.
        create(&mut c, "B", limits(&["b.>"])).await;
        assert_eq!(
            code(try_create(&mut c, "C", limits(&["c.>"])).await),
            Some((10027, "maximum number of streams reached".into()))
        );
        let first = c
            .raw_consumers()
            .create_consumer(consumer("D1"))
            .await
            .unwrap()
            .into_inner();
        assert!(first.error.is_none(), "{:?}", first.error);
        let second = c
            .raw_consumers()
            .create_consumer(consumer("D2"))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            code(second.error),
            Some((10026, "maximum consumers limit reached".into()))
        );
        // 100 bytes a record: three fit in 350 across the account's streams.
        assert_eq!(
            commit_one(&mut c, "m1", "A", vec![rec("a.1"), rec("a.2")]).await,
            ["1", "2"]
        );
        assert_eq!(
            commit_one(&mut c, "m2", "B", vec![rec("b.1"), rec("b.2")]).await,
            ["1", "e10002:resource limits exceeded for account"]
        );
    }
    // After a restart the limits still hold; unlimited ones lift them.
    let (_cp, mut c) = start(backend, clock).await;
    assert_eq!(
        commit_one(&mut c, "m3", "A", vec![rec("a.3")]).await,
        ["e10002:resource limits exceeded for account"]
    );
    assert_eq!(
        try_create(&mut c, "C", limits(&["c.>"]))
            .await
            .map(|e| e.err_code),
        Some(10027)
    );
    c.raw_streams()
        .set_account_limits(set(-1, -1, -1))
        .await
        .unwrap();
    create(&mut c, "C", limits(&["c.>"])).await;
    assert_eq!(commit_one(&mut c, "m4", "A", vec![rec("a.3")]).await, ["3"]);
}

/// A record whose subject the stream dropped (an agent's catalog was stale when it
/// captured the publish) is refused at commit with 503 / 10077 and not stored; its
/// neighbours in the batch are. A replay of the batch answers the same, and so does
/// a control plane reopened on the store.
pub async fn a_subject_the_stream_dropped_is_refused_at_commit(backend: &dyn Backend) {
    let clock = clock();
    let update = |subjects: &[&str]| v1::UpdateStreamRequest {
        config: Some(v1::StreamConfig {
            name: "ORD".into(),
            config_json: b"{}".to_vec(),
            limits: Some(limits(subjects)),
        }),
    };
    let refused = "e10077:subject ord.b.1 is not in stream ORD's subjects any more (its \
                   config changed while the publish was on its way); the message was not stored";
    {
        let (_cp, mut c) = start(backend, clock.clone()).await;
        create(&mut c, "ORD", limits(&["ord.a", "ord.b.*"])).await;
        assert_eq!(
            commit_one(&mut c, "g1", "ORD", vec![rec("ord.a"), rec("ord.b.1")]).await,
            ["1", "2"]
        );
        let up = c.raw_streams().update_stream(update(&["ord.a"])).await;
        assert!(up.unwrap().into_inner().error.is_none());
        let records = || vec![rec("ord.b.1"), rec("ord.a"), rec("ord.c")];
        let answers = commit_one(&mut c, "g2", "ORD", records()).await;
        assert_eq!(answers[..2], [refused, "3"]);
        assert!(
            answers[2].starts_with("e10077:subject ord.c is not"),
            "{answers:?}"
        );
        assert_eq!(commit_one(&mut c, "g2", "ORD", records()).await, answers);
        let st = state(&mut c, "ORD").await;
        assert_eq!((st.messages, st.last_seq), (3, 3));
    }
    let (_cp, mut c) = start(backend, clock).await;
    assert_eq!(
        commit_one(&mut c, "g3", "ORD", vec![rec("ord.b.1")]).await,
        [refused]
    );
    let up = c.raw_streams().update_stream(update(&["ord.>"])).await;
    assert!(up.unwrap().into_inner().error.is_none());
    assert_eq!(
        commit_one(&mut c, "g4", "ORD", vec![rec("ord.b.1"), rec("ord.c")]).await,
        ["4", "5"]
    );
}

/// JetStream in several accounts: streams are keyed by (account, name) — id `ORDERS`
/// in `$G` (today's keys, byte for byte), `A.ORDERS` and `B.ORDERS` in accounts A and
/// B — so the three own `orders.>` at once, each stores and reads back only its own
/// records, each has a consumer of the same name, and each account's limits count
/// only its own streams. Reopening the store (written by `$G` as before accounts)
/// finds everything again.
pub async fn accounts_own_streams_of_one_name(backend: &dyn Backend) {
    let clock = clock();
    let consumer = |stream: &str| v1::CreateConsumerRequest {
        config: Some(v1::ConsumerConfig {
            stream: stream.into(),
            name: "worker".into(),
            config_json: b"{}".to_vec(),
            ack_wait_nanos: 30_000_000_000,
            max_deliver: -1,
            ..Default::default()
        }),
    };
    let a_limits = v1::SetAccountLimitsRequest {
        limits: Some(v1::AccountLimits {
            account: "A".into(),
            max_streams: 1,
            max_consumers: 1,
            max_storage: 350,
            max_memory: -1,
        }),
        account: "A".into(),
    };
    let objects = |idx: &v1::ReadIndexResponse| -> Vec<String> {
        idx.entries.iter().map(|e| e.object_key.clone()).collect()
    };
    let read = |c: &mut ControlPlaneClient, stream: &str| {
        let c = c.clone();
        let stream = stream.to_owned();
        async move {
            c.raw_streams()
                .read_index(v1::ReadIndexRequest {
                    stream,
                    start_seq: 1,
                    end_seq: 0,
                    limit: 100,
                })
                .await
                .unwrap()
                .into_inner()
        }
    };
    {
        let (_cp, mut c) = start(backend, clock.clone()).await;
        for id in ["ORDERS", "A.ORDERS", "B.ORDERS"] {
            create(&mut c, id, limits(&["orders.>"])).await;
        }
        // Within one account the overlap check still holds.
        assert_eq!(
            try_create(&mut c, "A.OTHER", limits(&["orders.new"]))
                .await
                .map(|e| e.err_code),
            Some(10065)
        );
        assert_eq!(
            try_create(&mut c, "OTHER", limits(&["orders.*"]))
                .await
                .map(|e| e.err_code),
            Some(10065)
        );
        assert_eq!(
            commit_one(&mut c, "g1", "ORDERS", vec![rec("orders.1")]).await,
            ["1"]
        );
        assert_eq!(
            commit_one(
                &mut c,
                "a1",
                "A.ORDERS",
                vec![rec("orders.1"), rec("orders.2")]
            )
            .await,
            ["1", "2"]
        );
        assert_eq!(
            commit_one(&mut c, "b1", "B.ORDERS", vec![rec("orders.9")]).await,
            ["1"]
        );
        assert_eq!(objects(&read(&mut c, "ORDERS").await), ["objects/g1"]);
        assert_eq!(objects(&read(&mut c, "A.ORDERS").await), ["objects/a1"]);
        assert_eq!(objects(&read(&mut c, "B.ORDERS").await), ["objects/b1"]);
        for id in ["ORDERS", "A.ORDERS", "B.ORDERS"] {
            let r = c
                .raw_consumers()
                .create_consumer(consumer(id))
                .await
                .unwrap()
                .into_inner();
            assert!(r.error.is_none(), "{id}: {:?}", r.error);
        }
        // Listing one account's streams names only its own.
        for (account, want) in [("$G", "ORDERS"), ("A", "A.ORDERS"), ("B", "B.ORDERS")] {
            let listed = c
                .raw_streams()
                .list_streams(v1::ListStreamsRequest {
                    subject: "orders.new".into(),
                    account: account.into(),
                })
                .await
                .unwrap()
                .into_inner()
                .streams;
            let names: Vec<_> = listed
                .iter()
                .filter_map(|s| s.config.as_ref().map(|c| c.name.clone()))
                .collect();
            assert_eq!(names, [want], "{account}");
        }
        // A's limits: one stream, one consumer, 350 bytes; B and $G are unlimited.
        c.raw_streams().set_account_limits(a_limits).await.unwrap();
        assert_eq!(
            try_create(&mut c, "A.MORE", limits(&["more.>"]))
                .await
                .map(|e| e.err_code),
            Some(10027)
        );
        create(&mut c, "B.MORE", limits(&["more.>"])).await;
        create(&mut c, "MORE", limits(&["more.>"])).await;
        let more = c
            .raw_consumers()
            .create_consumer(v1::CreateConsumerRequest {
                config: Some(v1::ConsumerConfig {
                    name: "second".into(),
                    ..consumer("A.ORDERS").config.unwrap()
                }),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(more.error.map(|e| e.err_code), Some(10026));
        // A holds 200 bytes: one more record fits, the one after does not; one batch
        // with chunks of A and B counts each against its own account.
        let mixed = commit(
            &mut c,
            batch(
                "ab",
                vec![
                    chunk("A.ORDERS", 0, vec![rec("orders.3"), rec("orders.4")]),
                    chunk("B.ORDERS", 1, vec![rec("orders.3"), rec("orders.4")]),
                ],
            ),
        )
        .await;
        let answers: Vec<Vec<String>> = mixed
            .chunks
            .iter()
            .map(|ch| ch.records.iter().map(show).collect())
            .collect();
        assert_eq!(
            answers,
            [
                vec![
                    "3".to_owned(),
                    "e10002:resource limits exceeded for account".to_owned()
                ],
                vec!["2".to_owned(), "3".to_owned()],
            ]
        );
        // Deleting A's stream leaves B's and $G's.
        let deleted = c
            .raw_streams()
            .delete_stream(v1::DeleteStreamRequest {
                name: "A.ORDERS".into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert!(deleted.error.is_none(), "{:?}", deleted.error);
        assert_eq!(state(&mut c, "B.ORDERS").await.last_seq, 3);
        assert_eq!(state(&mut c, "ORDERS").await.last_seq, 1);
    }
    // The store: `$G`'s keys are today's, byte for byte; A's and B's carry the account.
    {
        let store = backend.open().await;
        let keys: Vec<String> = store
            .scan_prefix(format!("g/{GROUP}/").as_bytes())
            .await
            .unwrap()
            .into_iter()
            .map(|kv| String::from_utf8_lossy(&kv.key).into_owned())
            .collect();
        for want in [
            format!("g/{GROUP}/cfg/ORDERS"),
            format!("g/{GROUP}/st/ORDERS"),
            format!("g/{GROUP}/con/ORDERS/worker"),
            format!("g/{GROUP}/cfg/B.ORDERS"),
            format!("g/{GROUP}/con/B.ORDERS/worker"),
            format!("g/{GROUP}/acct/jetstream.A"),
        ] {
            assert!(keys.contains(&want), "{want} not in {keys:?}");
        }
        assert!(
            !keys.iter().any(|k| k.contains("A.ORDERS")),
            "A's deleted stream left {keys:?}"
        );
    }
    // Reopened: every account's streams, consumers and limits are back.
    let (_cp, mut c) = start(backend, clock).await;
    assert_eq!(state(&mut c, "ORDERS").await.consumer_count, 1);
    assert_eq!(state(&mut c, "B.ORDERS").await.consumer_count, 1);
    assert_eq!(
        objects(&read(&mut c, "B.ORDERS").await),
        ["objects/b1", "objects/ab"]
    );
    assert_eq!(
        info(&mut c, "A.ORDERS").await.error.map(|e| e.err_code),
        Some(10059)
    );
    create(&mut c, "A.ORDERS", limits(&["orders.>"])).await;
    assert_eq!(
        try_create(&mut c, "A.AGAIN", limits(&["again.>"]))
            .await
            .map(|e| e.err_code),
        Some(10027)
    );
}
