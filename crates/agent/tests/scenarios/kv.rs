//! KV scenarios, run by `kv` against an in-process agent and by `e2e_s3_etcd` against
//! agents on a real S3 server and etcd.

use async_nats::jetstream::{self, kv};

/// async-nats `KeyValue`: create bucket, put, get, update (CAS on revision), create
/// (refused when the key exists, allowed after delete), delete, purge; then deletes
/// the bucket.
pub async fn async_nats_key_value(js: &jetstream::Context) {
    let store = js
        .create_key_value(kv::Config {
            bucket: "config".into(),
            history: 3,
            ..Default::default()
        })
        .await
        .expect("create bucket");

    // put / get
    let r1 = store.put("color", "red".into()).await.expect("put");
    assert_eq!(r1, 1);
    assert_eq!(
        store.get("color").await.expect("get").as_deref(),
        Some(&b"red"[..])
    );
    assert_eq!(store.get("missing").await.expect("get missing"), None);
    let entry = store.entry("color").await.expect("entry").expect("present");
    assert_eq!(entry.revision, 1);
    assert_eq!(entry.operation, kv::Operation::Put);

    // update: CAS on the revision
    let r2 = store
        .update("color", "green".into(), r1)
        .await
        .expect("update at the right revision");
    assert!(r2 > r1);
    let err = store
        .update("color", "blue".into(), r1)
        .await
        .expect_err("stale revision refused");
    assert_eq!(err.kind(), kv::UpdateErrorKind::WrongLastRevision, "{err}");
    assert_eq!(
        store.get("color").await.expect("get").as_deref(),
        Some(&b"green"[..])
    );

    // create: only when absent
    let err = store
        .create("color", "x".into())
        .await
        .expect_err("key exists");
    assert_eq!(err.kind(), kv::CreateErrorKind::AlreadyExists, "{err}");
    let r3 = store
        .create("size", "xl".into())
        .await
        .expect("create new key");
    assert!(r3 > r2);

    // delete: get says none, entry says Delete; create works again after a delete
    store.delete("size").await.expect("delete");
    assert_eq!(store.get("size").await.expect("get deleted"), None);
    let r4 = store
        .create("size", "m".into())
        .await
        .expect("create after delete");
    assert_eq!(
        store.get("size").await.expect("get").as_deref(),
        Some(&b"m"[..])
    );
    assert!(r4 > r3);

    // purge: the history collapses to one marker, get says none
    store.put("color", "blue".into()).await.expect("put");
    store.purge("color").await.expect("purge");
    assert_eq!(store.get("color").await.expect("get purged"), None);
    let stream = js.get_stream("KV_config").await.expect("kv stream");
    let last = stream
        .get_last_raw_message_by_subject("$KV.config.color")
        .await
        .expect("purge marker");
    assert_eq!(
        last.headers.get("KV-Operation").map(|v| v.as_str()),
        Some("PURGE")
    );
    let info = js
        .get_stream("KV_config")
        .await
        .expect("stream")
        .info()
        .await
        .expect("info")
        .clone();
    // color: only the purge marker (rollup); size: put, delete marker, put (≤ history).
    assert_eq!(info.state.messages, 4, "{:?}", info.state);
    js.delete_key_value("config").await.expect("delete bucket");
}
