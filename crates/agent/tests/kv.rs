//! KV buckets through an in-process agent with unmodified clients: async-nats and
//! nats.py `KeyValue` — create bucket, put, get, update (CAS on revision), create
//! (refused when the key exists, allowed after delete), delete, purge.
//!
//! KV is a stream (`KV_<bucket>`, subjects `$KV.<bucket>.>`, max_msgs_per_subject =
//! history, rollup headers, deny_delete, allow_direct) plus direct get by last subject:
//! these tests are what proves the produce path's limits and the read path's status
//! lines add up to what the clients expect.

use std::time::Duration;

use async_nats::jetstream;

#[path = "scenarios/kv.rs"]
mod kv_scenarios;

#[path = "support/in_process.rs"]
mod in_process;

use in_process::start_agent;

#[tokio::test]
async fn async_nats_key_value() {
    let dir = tempfile::tempdir().expect("tempdir");
    let agent = start_agent(&dir).await;
    let client = async_nats::connect(format!("nats://{}", agent.client_addr()))
        .await
        .expect("connect");
    let mut js = jetstream::new(client);
    js.set_timeout(Duration::from_secs(10));
    kv_scenarios::async_nats_key_value(&js).await;
}

/// nats.py drives the same operations against the agent's port.
#[tokio::test]
async fn nats_py_key_value() {
    let python = infinistream_testkit::tools::venv_bin("python");
    if !python.exists() {
        panic!(
            "nats.py venv missing at {}: run the README's tool setup",
            python.display()
        );
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let agent = start_agent(&dir).await;
    let script = dir.path().join("kv.py");
    std::fs::write(&script, PY_KV).expect("write script");
    let output = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new(&python)
            .arg(&script)
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
        output.status.success(),
        "nats.py KV script failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(stdout.contains("KV OK"), "{stdout}");
}

const PY_KV: &str = r#"
import asyncio, sys
import nats
from nats.js.errors import KeyWrongLastSequenceError, KeyNotFoundError, KeyDeletedError, BadRequestError, APIError

async def main(url):
    nc = await nats.connect(url)
    js = nc.jetstream(timeout=10)
    kv = await js.create_key_value(bucket="pybucket", history=5)

    rev1 = await kv.put("name", b"alice")
    assert rev1 == 1, rev1
    e = await kv.get("name")
    assert e.value == b"alice" and e.revision == 1, e

    rev2 = await kv.update("name", b"bob", last=rev1)
    assert rev2 > rev1
    try:
        await kv.update("name", b"carol", last=rev1)
        raise AssertionError("stale update accepted")
    except KeyWrongLastSequenceError:
        pass
    assert (await kv.get("name")).value == b"bob"

    try:
        await kv.create("name", b"dave")
        raise AssertionError("create over an existing key accepted")
    except (KeyWrongLastSequenceError, BadRequestError, APIError):
        pass
    rev3 = await kv.create("other", b"1")
    assert rev3 > rev2

    try:
        await kv.get("missing")
        raise AssertionError("missing key found")
    except KeyNotFoundError:
        pass

    await kv.delete("other")
    try:
        await kv.get("other")
        raise AssertionError("deleted key found")
    except (KeyDeletedError, KeyNotFoundError):
        pass
    rev4 = await kv.create("other", b"2")
    assert rev4 > rev3
    assert (await kv.get("other")).value == b"2"

    await kv.purge("name")
    try:
        await kv.get("name")
        raise AssertionError("purged key found")
    except (KeyDeletedError, KeyNotFoundError):
        pass

    status = await kv.status()
    assert status.bucket == "pybucket", status
    await nc.close()
    print("KV OK")

asyncio.run(main(sys.argv[1]))
"#;

/// A get by key racing puts on that key always finds a value. The agent reads the key's
/// last sequence and then the message: a put committed between the two supersedes
/// the message (history 1), and the get used to answer "no message found" for a key
/// that never lacked a value. Found by the chaos suite's linearizability check.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_racing_puts_on_the_key_always_finds_a_value() {
    let dir = tempfile::tempdir().expect("tempdir");
    let agent = start_agent(&dir).await;
    let client = async_nats::connect(format!("nats://{}", agent.client_addr()))
        .await
        .expect("connect");
    let mut js = jetstream::new(client);
    js.set_timeout(Duration::from_secs(10));
    let kv = js
        .create_key_value(jetstream::kv::Config {
            bucket: "race".into(),
            history: 1,
            ..Default::default()
        })
        .await
        .expect("bucket");
    kv.put("k", "0".into()).await.expect("first put");
    let writer = {
        let kv = kv.clone();
        tokio::spawn(async move {
            for i in 1..=150u32 {
                kv.put("k", i.to_string().into()).await.expect("put");
            }
        })
    };
    let mut gets = 0u32;
    while !writer.is_finished() {
        let entry = kv.entry("k").await.expect("get");
        assert!(
            matches!(&entry, Some(e) if e.operation == jetstream::kv::Operation::Put),
            "get {gets} of a key with a value answered {entry:?}"
        );
        gets += 1;
    }
    writer.await.expect("writer");
    assert!(gets > 0, "no get ran while the puts did");
}
