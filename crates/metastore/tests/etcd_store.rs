//! The etcd store against a real etcd: the shared conformance suite, prefix isolation,
//! request limits, and errors while etcd is down.

use std::sync::Arc;

use infinistream_metastore::conformance::conformance;
use infinistream_metastore::etcd::{EtcdStore, EtcdStoreOptions};
use infinistream_metastore::{Compare, MetaStore, Op, StoreError};
use infinistream_testkit::etcd::{EtcdServer, MAX_TXN_OPS};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn put(key: &[u8], value: &[u8]) -> Op {
    Op::Put {
        key: key.to_vec(),
        value: value.to_vec(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn etcd_store_passes_conformance() -> TestResult {
    let etcd = EtcdServer::shared()?;
    let store = EtcdStore::connect(&[etcd.endpoint()], etcd.prefix()).await?;
    conformance(Arc::new(store)).await;
    Ok(())
}

#[tokio::test]
async fn etcd_prefixes_isolate_stores() -> TestResult {
    let etcd = EtcdServer::shared()?;
    let a = EtcdStore::connect(&[etcd.endpoint()], &format!("{}a/", etcd.prefix())).await?;
    let b = EtcdStore::connect(&[etcd.endpoint()], &format!("{}b/", etcd.prefix())).await?;
    a.txn(vec![], vec![put(b"k", b"from a")]).await?;
    b.txn(vec![], vec![put(b"k", b"from b")]).await?;
    assert_eq!(
        a.get(b"k").await?.map(|kv| kv.value),
        Some(b"from a".to_vec())
    );
    assert_eq!(
        b.get(b"k").await?.map(|kv| kv.value),
        Some(b"from b".to_vec())
    );
    // An empty DeletePrefix and a to-the-end range stay inside the store's prefix.
    a.txn(vec![], vec![Op::DeletePrefix { prefix: Vec::new() }])
        .await?;
    assert!(a.range(b"", b"", 0).await?.is_empty());
    let in_b = b.range(b"", b"", 0).await?;
    assert_eq!(in_b.len(), 1);
    assert_eq!(in_b[0].key, b"k");
    Ok(())
}

#[tokio::test]
async fn etcd_oversized_txn_is_refused_clearly() -> TestResult {
    let etcd = EtcdServer::shared()?;
    let store = EtcdStore::connect(&[etcd.endpoint()], etcd.prefix()).await?;
    let value = vec![7u8; 1024 * 1024];
    let ops = vec![put(b"big/1", &value), put(b"big/2", &value)];
    match store.txn(vec![], ops).await {
        Err(StoreError::Backend(message)) => {
            assert!(message.contains("--max-request-bytes"), "{message}")
        }
        other => panic!("expected a size error, got {other:?}"),
    }
    assert_eq!(store.get(b"big/1").await?, None, "nothing applied");

    // With the local check off, etcd's own refusal is mapped to the same advice.
    let options = EtcdStoreOptions {
        prefix: etcd.prefix().to_owned(),
        max_request_bytes: usize::MAX,
        ..EtcdStoreOptions::default()
    };
    let unchecked = EtcdStore::connect_with(&[etcd.endpoint()], options).await?;
    let ops = vec![put(b"big/1", &value), put(b"big/2", &value)];
    match unchecked.txn(vec![], ops).await {
        Err(StoreError::Backend(message)) => {
            assert!(message.contains("--max-request-bytes"), "{message}")
        }
        other => panic!("expected etcd's size error, got {other:?}"),
    }

    // Too many ops: refused locally when the limit is configured, by etcd otherwise.
    let too_many: Vec<Op> = (0..=MAX_TXN_OPS)
        .map(|i| put(format!("op/{i}").as_bytes(), b""))
        .collect();
    let options = EtcdStoreOptions {
        prefix: etcd.prefix().to_owned(),
        max_txn_ops: Some(MAX_TXN_OPS),
        ..EtcdStoreOptions::default()
    };
    let limited = EtcdStore::connect_with(&[etcd.endpoint()], options).await?;
    match limited.txn(vec![], too_many.clone()).await {
        Err(StoreError::Backend(message)) => {
            assert!(message.contains("--max-txn-ops"), "{message}")
        }
        other => panic!("expected an ops error, got {other:?}"),
    }
    match store.txn(vec![], too_many).await {
        Err(StoreError::Backend(message)) => {
            assert!(message.contains("--max-txn-ops"), "{message}")
        }
        other => panic!("expected etcd's ops error, got {other:?}"),
    }
    Ok(())
}

#[tokio::test]
async fn etcd_large_batches_fit_in_one_txn() -> TestResult {
    // A CommitBatch touching 1,000 streams is one transaction of ~2,000 ops.
    let etcd = EtcdServer::shared()?;
    let store = EtcdStore::connect(&[etcd.endpoint()], etcd.prefix()).await?;
    let compares: Vec<Compare> = (0..1000)
        .map(|i| Compare::ModRevision {
            key: format!("s/{i:04}/tail").into_bytes(),
            revision: None,
        })
        .collect();
    let ops: Vec<Op> = (0..1000)
        .flat_map(|i| {
            [
                put(format!("s/{i:04}/tail").as_bytes(), &[0u8; 16]),
                put(format!("s/{i:04}/idx/1").as_bytes(), &[0u8; 48]),
            ]
        })
        .collect();
    let outcome = store.txn(compares, ops).await?;
    assert!(outcome.succeeded);
    assert_eq!(store.scan_prefix(b"s/").await?.len(), 2000);
    assert_eq!(store.range(b"s/", b"s0", 10).await?.len(), 10);
    Ok(())
}

#[tokio::test]
async fn etcd_down_is_unavailable_then_recovers() -> TestResult {
    let etcd = EtcdServer::start()?;
    let options = EtcdStoreOptions {
        request_timeout: std::time::Duration::from_secs(2),
        connect_timeout: std::time::Duration::from_secs(2),
        ..EtcdStoreOptions::default()
    };
    let store = EtcdStore::connect_with(&[etcd.endpoint()], options).await?;
    let before = store.txn(vec![], vec![put(b"k", b"1")]).await?;

    etcd.kill()?;
    match store.txn(vec![], vec![put(b"k", b"2")]).await {
        Err(StoreError::Unavailable(_)) => {}
        other => panic!("expected Unavailable while etcd is down, got {other:?}"),
    }
    match store.get(b"k").await {
        Err(StoreError::Unavailable(_)) => {}
        other => panic!("expected Unavailable while etcd is down, got {other:?}"),
    }

    etcd.restart()?;
    // The same client reconnects; committed data survived the kill.
    let mut read = store.get(b"k").await;
    for _ in 0..20 {
        if read.is_ok() {
            break;
        }
        read = store.get(b"k").await;
    }
    let kv = read?.ok_or("committed key lost across an etcd restart")?;
    assert_eq!(kv.mod_revision, before.revision);
    assert_eq!(kv.value, b"1");
    Ok(())
}

#[tokio::test]
async fn etcd_connect_to_nothing_is_unavailable() -> TestResult {
    let port = infinistream_testkit::tools::free_port()?;
    let options = EtcdStoreOptions {
        request_timeout: std::time::Duration::from_millis(500),
        connect_timeout: std::time::Duration::from_millis(500),
        ..EtcdStoreOptions::default()
    };
    match EtcdStore::connect_with(&[format!("http://127.0.0.1:{port}")], options).await {
        Err(StoreError::Unavailable(message)) => {
            assert!(message.contains("127.0.0.1"), "{message}")
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
    Ok(())
}
