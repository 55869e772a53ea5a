//! KV watch, history and keys, and the object store, through an in-process agent with
//! unmodified clients (async-nats and nats.py).
//!
//! Every one of these rides on consumers in the clients: watch is an ordered push
//! consumer with `deliver_policy: last_per_subject` (or `new`, or `all` for history),
//! keys and history are ordered consumers that stop at `num_pending == 0`, and the
//! object store reads an object back through an ordered consumer on its chunk subject.
//! So these tests prove the consumer path end to end with the clients' own state
//! machines, not ours.

use std::time::Duration;

use async_nats::jetstream::{self, kv, object_store};
use futures::StreamExt;
use infinistream_agent::AgentHandle;
use tokio::io::AsyncReadExt;

#[path = "support/in_process.rs"]
mod in_process;

use in_process::start_agent;

/// How long a single expected watch event may take (generous: 2 cores, shared).
const EVENT: Duration = Duration::from_secs(20);

async fn jetstream(agent: &AgentHandle) -> jetstream::Context {
    let client = async_nats::connect(format!("nats://{}", agent.client_addr()))
        .await
        .expect("connect");
    let mut js = jetstream::new(client);
    js.set_timeout(Duration::from_secs(10));
    js
}

async fn next_entry(watch: &mut kv::Watch) -> kv::Entry {
    tokio::time::timeout(EVENT, watch.next())
        .await
        .expect("watch event in time")
        .expect("watch still open")
        .expect("watch entry")
}

#[tokio::test]
async fn async_nats_kv_watch_history_keys() {
    let dir = tempfile::tempdir().expect("tempdir");
    let agent = start_agent(&dir).await;
    let js = jetstream(&agent).await;
    let store = js
        .create_key_value(kv::Config {
            bucket: "watched".into(),
            history: 10,
            ..Default::default()
        })
        .await
        .expect("create bucket");

    store.put("a", "1".into()).await.expect("put a");
    store.put("b", "1".into()).await.expect("put b");
    store.put("a", "2".into()).await.expect("put a again");

    // watch_with_history: the last value of every key first, then live updates.
    let mut all = store.watch_all_from_revision(1).await.expect("watch all");
    let mut seen = Vec::new();
    for _ in 0..3 {
        let e = next_entry(&mut all).await;
        seen.push((e.key.clone(), e.value.clone(), e.revision));
    }
    assert_eq!(
        seen,
        vec![
            ("a".to_owned(), "1".into(), 1),
            ("b".to_owned(), "1".into(), 2),
            ("a".to_owned(), "2".into(), 3),
        ]
    );

    // A key watch with history starts from the key's last value, then follows it only.
    let mut only_a = store.watch_with_history("a").await.expect("watch a");
    let first = next_entry(&mut only_a).await;
    assert_eq!((first.key.as_str(), &first.value[..]), ("a", &b"2"[..]));

    store.put("b", "2".into()).await.expect("put b");
    store.put("a", "3".into()).await.expect("put a");
    store.delete("a").await.expect("delete a");

    let e = next_entry(&mut all).await;
    assert_eq!(
        (e.key.as_str(), &e.value[..], e.revision),
        ("b", &b"2"[..], 4)
    );
    let e = next_entry(&mut all).await;
    assert_eq!(
        (e.key.as_str(), &e.value[..], e.revision),
        ("a", &b"3"[..], 5)
    );
    let e = next_entry(&mut all).await;
    assert_eq!((e.key.as_str(), e.operation), ("a", kv::Operation::Delete));

    let e = next_entry(&mut only_a).await;
    assert_eq!((e.key.as_str(), &e.value[..]), ("a", &b"3"[..]));
    let e = next_entry(&mut only_a).await;
    assert_eq!(e.operation, kv::Operation::Delete);

    // history: every kept revision of one key, oldest first, ending with the delete.
    let history: Vec<kv::Entry> = store
        .history("a")
        .await
        .expect("history")
        .map(|e| e.expect("history entry"))
        .collect()
        .await;
    let revisions: Vec<(u64, kv::Operation)> =
        history.iter().map(|e| (e.revision, e.operation)).collect();
    assert_eq!(
        revisions,
        vec![
            (1, kv::Operation::Put),
            (3, kv::Operation::Put),
            (5, kv::Operation::Put),
            (6, kv::Operation::Delete),
        ]
    );

    // keys: live keys only (a is deleted).
    let mut keys: Vec<String> = store
        .keys()
        .await
        .expect("keys")
        .map(|k| k.expect("key"))
        .collect()
        .await;
    keys.sort();
    assert_eq!(keys, vec!["b".to_owned()]);
}

#[tokio::test]
async fn async_nats_object_store_50_mib_round_trip() {
    let dir = tempfile::tempdir().expect("tempdir");
    let agent = start_agent(&dir).await;
    let js = jetstream(&agent).await;
    let bucket = js
        .create_object_store(object_store::Config {
            bucket: "blobs".into(),
            ..Default::default()
        })
        .await
        .expect("create object store");

    // 50 MiB of non-repeating bytes, chunked by the client (128 KiB default chunks).
    let size = 50 * 1024 * 1024;
    let data: Vec<u8> = (0..size as u64)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let info = bucket
        .put("big.bin", &mut data.as_slice())
        .await
        .expect("put 50 MiB");
    assert_eq!(info.size, size);
    assert!(info.chunks > 1, "chunked: {info:?}");

    bucket
        .put("small.txt", &mut &b"hello"[..])
        .await
        .expect("put small");

    let got = bucket.info("big.bin").await.expect("info");
    assert_eq!((got.size, got.chunks), (info.size, info.chunks));
    assert_eq!(got.digest, info.digest);

    let mut object = bucket.get("big.bin").await.expect("get");
    let mut back = Vec::with_capacity(size);
    object.read_to_end(&mut back).await.expect("read back");
    assert_eq!(back.len(), data.len());
    assert!(back == data, "object bytes differ");

    let mut names: Vec<String> = bucket
        .list()
        .await
        .expect("list")
        .map(|o| o.expect("listed object").name)
        .collect()
        .await;
    names.sort();
    assert_eq!(names, vec!["big.bin".to_owned(), "small.txt".to_owned()]);

    bucket.delete("big.bin").await.expect("delete");
    let err = bucket.get("big.bin").await.expect_err("deleted object");
    assert_eq!(err.kind(), object_store::GetErrorKind::NotFound, "{err}");
    // Deleting purges the chunks: the stream keeps only the metadata messages.
    let stream = js
        .get_stream("OBJ_blobs")
        .await
        .expect("object store stream")
        .info()
        .await
        .expect("info")
        .clone();
    assert!(
        stream.state.bytes < 1024 * 1024,
        "chunks of a deleted object are purged: {:?}",
        stream.state
    );
}

async fn run_python(dir: &tempfile::TempDir, agent: &AgentHandle, name: &str, script: &str) {
    let python = infinistream_testkit::tools::venv_bin("python");
    assert!(
        python.exists(),
        "nats.py venv missing at {}: run the README's test command",
        python.display()
    );
    let path = dir.path().join(name);
    std::fs::write(&path, script).expect("write script");
    let output = tokio::time::timeout(
        Duration::from_secs(180),
        tokio::process::Command::new(&python)
            .arg(&path)
            .arg(format!("nats://{}", agent.client_addr()))
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("python finished in time")
    .expect("python runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains("PY OK"),
        "{name} failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
}

#[tokio::test]
async fn nats_py_kv_watch_history_keys() {
    let dir = tempfile::tempdir().expect("tempdir");
    let agent = start_agent(&dir).await;
    run_python(&dir, &agent, "kv_watch.py", PY_KV_WATCH).await;
}

#[tokio::test]
async fn nats_py_object_store_50_mib_round_trip() {
    let dir = tempfile::tempdir().expect("tempdir");
    let agent = start_agent(&dir).await;
    run_python(&dir, &agent, "obj.py", PY_OBJ).await;
}

const PY_KV_WATCH: &str = r#"
import asyncio, sys
import nats

async def main(url):
    nc = await nats.connect(url)
    js = nc.jetstream(timeout=10)
    kv = await js.create_key_value(bucket="pywatch", history=10)
    await kv.put("a", b"1")
    await kv.put("b", b"1")
    await kv.put("a", b"2")

    # include_history: every revision, then the end-of-initial-data marker (None).
    w = await kv.watchall(include_history=True)
    got = []
    while True:
        e = await w.updates(timeout=20)
        if e is None:
            break
        got.append((e.key, e.value, e.revision))
    assert got == [("a", b"1", 1), ("b", b"1", 2), ("a", b"2", 3)], got

    await kv.put("b", b"2")
    e = await w.updates(timeout=20)
    assert (e.key, e.value, e.revision) == ("b", b"2", 4), e
    await kv.delete("b")
    e = await w.updates(timeout=20)
    assert e.key == "b" and e.operation == "DEL", e
    await w.stop()

    # a key watch starts from the key's last value
    wa = await kv.watch("a")
    e = await wa.updates(timeout=20)
    assert (e.key, e.value) == ("a", b"2"), e
    await wa.stop()

    hist = await kv.history("a")
    assert [(h.revision, h.value) for h in hist] == [(1, b"1"), (3, b"2")], hist

    keys = await kv.keys()
    assert sorted(keys) == ["a"], keys
    await nc.close()
    print("PY OK")

asyncio.run(main(sys.argv[1]))
"#;

const PY_OBJ: &str = r#"
import asyncio, hashlib, random, sys
import nats
from nats.js.api import ObjectMeta, ObjectMetaOptions

async def main(url):
    nc = await nats.connect(url)
    js = nc.jetstream(timeout=20)
    obs = await js.create_object_store("pyblobs")
    size = 50 * 1024 * 1024
    data = random.Random(7).randbytes(size)
    # 512 KiB chunks (below the 1 MiB max payload) keep the sequential chunk publishes few.
    meta = ObjectMeta(name="big.bin", options=ObjectMetaOptions(max_chunk_size=512 * 1024))
    info = await obs.put("big.bin", data, meta=meta)
    assert info.size == size and info.chunks > 1, info
    res = await obs.get("big.bin")
    assert len(res.data) == size, len(res.data)
    assert hashlib.sha256(res.data).digest() == hashlib.sha256(data).digest()
    await obs.put("small.txt", b"hello")
    names = sorted(o.name for o in await obs.list())
    assert names == ["big.bin", "small.txt"], names
    await obs.delete("big.bin")
    try:
        await obs.get("big.bin")
        raise AssertionError("deleted object still readable")
    except nats.js.errors.ObjectDeletedError:
        pass
    except nats.js.errors.ObjectNotFoundError:
        pass
    await nc.close()
    print("PY OK")

asyncio.run(main(sys.argv[1]))
"#;
