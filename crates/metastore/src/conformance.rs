//! A conformance suite for [`MetaStore`] implementations.
//!
//! Sequencing, de-duplication and failover are written once against the trait, so
//! they are only as correct as the weakest store under them. Every store (memory,
//! embedded, etcd) runs this same suite in its tests: `conformance(store).await` panics
//! with a message naming the broken rule. It is public (not `cfg(test)`) so integration
//! tests of any crate can call it.
//!
//! The suite writes only under `conformance/` (cleared first), but checks ranges that
//! run to the end of the keyspace, so give it a store with nothing after that prefix
//! (a fresh store, or an etcd store with a prefix of its own).
//!
//! What it pins down, beyond plain reads and writes:
//! - one successful transaction has one revision: every key it puts carries it, and
//!   revisions strictly increase from one writing transaction to the next;
//! - a failed compare applies nothing, and the revision does not move;
//! - `ModRevision { revision: None }` means "absent", `ValueEquals` fails on an absent
//!   key, several compares must all hold;
//! - `range` is `[start, end)` in byte order with `limit` (0 = all) and an empty end
//!   meaning "to the end"; `DeletePrefix` deletes exactly the keys with the prefix;
//! - concurrent compare-and-swap loops never lose an update;
//! - `txn_deferred` is a transaction like any other to everyone reading: compares,
//!   one revision in the same sequence, visible to the next read.

use std::sync::Arc;

use super::{Compare, KeyValue, MetaStore, Op, StoreError, TxnOutcome};

const ROOT: &[u8] = b"conformance/";

fn k(suffix: &str) -> Vec<u8> {
    let mut key = ROOT.to_vec();
    key.extend_from_slice(suffix.as_bytes());
    key
}

fn put(key: &[u8], value: &[u8]) -> Op {
    Op::Put {
        key: key.to_vec(),
        value: value.to_vec(),
    }
}

fn ok<T>(what: &str, result: Result<T, StoreError>) -> T {
    match result {
        Ok(v) => v,
        Err(e) => panic!("conformance: {what} failed: {e}"),
    }
}

async fn txn(store: &dyn MetaStore, compares: Vec<Compare>, ops: Vec<Op>) -> TxnOutcome {
    ok("txn", store.txn(compares, ops).await)
}

async fn get(store: &dyn MetaStore, key: &[u8]) -> Option<KeyValue> {
    ok("get", store.get(key).await)
}

fn keys(kvs: &[KeyValue]) -> Vec<Vec<u8>> {
    kvs.iter().map(|kv| kv.key.clone()).collect()
}

/// Runs every check against `store`; panics on the first violation.
pub async fn conformance(store: Arc<dyn MetaStore>) {
    let s = store.as_ref();
    txn(
        s,
        vec![],
        vec![Op::DeletePrefix {
            prefix: ROOT.to_vec(),
        }],
    )
    .await;
    reads_and_writes(s).await;
    compares(s).await;
    ranges(s).await;
    deletes(s).await;
    deferred_writes(s).await;
    concurrent_compare_and_swap(store.clone(), 8, 25).await;
    txn(
        s,
        vec![],
        vec![Op::DeletePrefix {
            prefix: ROOT.to_vec(),
        }],
    )
    .await;
}

/// A deferred put of `value` at `key` if the key is still at `revision`.
async fn deferred_put_at(s: &dyn MetaStore, key: &[u8], revision: i64, value: &[u8]) -> TxnOutcome {
    let compare = Compare::ModRevision {
        key: key.to_vec(),
        revision: Some(revision),
    };
    ok(
        "txn_deferred",
        s.txn_deferred(vec![compare], vec![put(key, value)]).await,
    )
}

async fn deferred_writes(s: &dyn MetaStore) {
    let a = k("deferred/a");
    let before = txn(s, vec![], vec![put(&a, b"1")]).await;
    let deferred = deferred_put_at(s, &a, before.revision, b"2").await;
    assert!(
        deferred.succeeded,
        "a deferred txn whose compares hold applies"
    );
    assert!(
        deferred.revision > before.revision,
        "a deferred txn takes the next revision"
    );
    let kv = get(s, &a)
        .await
        .unwrap_or_else(|| panic!("deferred write not readable"));
    assert_eq!(
        (kv.value.as_slice(), kv.mod_revision),
        (&b"2"[..], deferred.revision),
        "a deferred write is visible to the next read"
    );
    let refused = deferred_put_at(s, &a, before.revision, b"3").await;
    assert!(!refused.succeeded, "a deferred txn checks its compares");
    assert_eq!(
        get(s, &a).await.map(|kv| kv.value),
        Some(b"2".to_vec()),
        "a failed deferred compare applies nothing"
    );
    let after = txn(s, vec![], vec![put(&a, b"4")]).await;
    assert!(after.revision > deferred.revision);
}

async fn reads_and_writes(s: &dyn MetaStore) {
    let a = k("rw/a");
    assert_eq!(get(s, &a).await, None, "missing key must read as None");

    let first = txn(s, vec![], vec![put(&a, b"1")]).await;
    assert!(first.succeeded, "a txn without compares must succeed");
    assert!(first.revision > 0, "revisions start above 0");
    let kv = get(s, &a)
        .await
        .unwrap_or_else(|| panic!("put key not readable"));
    assert_eq!(kv.key, a);
    assert_eq!(kv.value, b"1");
    assert_eq!(
        kv.mod_revision, first.revision,
        "mod_revision = txn revision"
    );

    let second = txn(s, vec![], vec![put(&a, b"2")]).await;
    assert!(
        second.revision > first.revision,
        "revisions must strictly increase"
    );
    let kv = get(s, &a).await.unwrap_or_else(|| panic!("key vanished"));
    assert_eq!(
        (kv.value.as_slice(), kv.mod_revision),
        (&b"2"[..], second.revision)
    );

    // One transaction, one revision for all its writes.
    let (b, c) = (k("rw/b"), k("rw/c"));
    let multi = txn(s, vec![], vec![put(&b, b""), put(&c, &[0u8, 255, 7])]).await;
    assert!(multi.revision > second.revision);
    for key in [&b, &c] {
        let kv = get(s, key)
            .await
            .unwrap_or_else(|| panic!("multi-put key missing"));
        assert_eq!(
            kv.mod_revision, multi.revision,
            "all writes of a txn share its revision"
        );
    }
    assert_eq!(
        get(s, &b).await.map(|kv| kv.value),
        Some(Vec::new()),
        "empty value"
    );
    assert_eq!(
        get(s, &c).await.map(|kv| kv.value),
        Some(vec![0, 255, 7]),
        "binary value"
    );

    // Values up to 256 KiB round-trip.
    let big: Vec<u8> = (0..256 * 1024).map(|i| (i % 251) as u8).collect();
    txn(s, vec![], vec![put(&k("rw/big"), &big)]).await;
    assert_eq!(get(s, &k("rw/big")).await.map(|kv| kv.value), Some(big));

    // Binary keys.
    let binary = [ROOT, &[0u8, 0xff, 0x80][..]].concat();
    txn(s, vec![], vec![put(&binary, b"x")]).await;
    assert_eq!(get(s, &binary).await.map(|kv| kv.key), Some(binary.clone()));
}

async fn compares(s: &dyn MetaStore) {
    let key = k("cmp/key");
    let other = k("cmp/other");

    // Create-if-absent.
    let created = txn(
        s,
        vec![Compare::ModRevision {
            key: key.clone(),
            revision: None,
        }],
        vec![put(&key, b"v1")],
    )
    .await;
    assert!(
        created.succeeded,
        "ModRevision None must hold for an absent key"
    );

    // Create-if-absent on an existing key fails and applies nothing, not even other ops.
    let before = txn(s, vec![], vec![put(&k("cmp/marker"), b"m")])
        .await
        .revision;
    let again = txn(
        s,
        vec![Compare::ModRevision {
            key: key.clone(),
            revision: None,
        }],
        vec![put(&key, b"v2"), put(&other, b"o")],
    )
    .await;
    assert!(
        !again.succeeded,
        "ModRevision None must fail for an existing key"
    );
    assert_eq!(
        again.revision, before,
        "a failed txn does not move the revision"
    );
    assert_eq!(get(s, &key).await.map(|kv| kv.value), Some(b"v1".to_vec()));
    assert_eq!(get(s, &other).await, None, "a failed txn must apply no op");

    // ModRevision Some: current passes, stale fails.
    let current = get(s, &key)
        .await
        .map(|kv| kv.mod_revision)
        .unwrap_or_default();
    let swapped = txn(
        s,
        vec![Compare::ModRevision {
            key: key.clone(),
            revision: Some(current),
        }],
        vec![put(&key, b"v2")],
    )
    .await;
    assert!(
        swapped.succeeded,
        "ModRevision with the current revision must hold"
    );
    let stale = txn(
        s,
        vec![Compare::ModRevision {
            key: key.clone(),
            revision: Some(current),
        }],
        vec![put(&key, b"v3")],
    )
    .await;
    assert!(
        !stale.succeeded,
        "ModRevision with a stale revision must fail"
    );
    assert_eq!(stale.revision, swapped.revision);
    assert_eq!(get(s, &key).await.map(|kv| kv.value), Some(b"v2".to_vec()));
    let absent = txn(
        s,
        vec![Compare::ModRevision {
            key: k("cmp/absent"),
            revision: Some(current),
        }],
        vec![put(&other, b"o")],
    )
    .await;
    assert!(
        !absent.succeeded,
        "ModRevision Some must fail for an absent key"
    );

    // ValueEquals.
    let eq = |v: &[u8]| Compare::ValueEquals {
        key: key.clone(),
        value: v.to_vec(),
    };
    assert!(
        txn(s, vec![eq(b"v2")], vec![put(&other, b"1")])
            .await
            .succeeded
    );
    assert!(
        !txn(s, vec![eq(b"nope")], vec![put(&other, b"2")])
            .await
            .succeeded
    );
    let on_absent = Compare::ValueEquals {
        key: k("cmp/absent"),
        value: Vec::new(),
    };
    assert!(
        !txn(s, vec![on_absent], vec![put(&other, b"3")])
            .await
            .succeeded,
        "ValueEquals must fail on an absent key, even against an empty value"
    );
    assert_eq!(get(s, &other).await.map(|kv| kv.value), Some(b"1".to_vec()));

    // All compares must hold.
    let absent_ok = Compare::ModRevision {
        key: k("cmp/absent"),
        revision: None,
    };
    assert!(
        txn(
            s,
            vec![eq(b"v2"), absent_ok.clone()],
            vec![put(&other, b"4")]
        )
        .await
        .succeeded
    );
    assert!(
        !txn(
            s,
            vec![eq(b"v2"), eq(b"x"), absent_ok],
            vec![put(&other, b"5")]
        )
        .await
        .succeeded
    );
    assert_eq!(get(s, &other).await.map(|kv| kv.value), Some(b"4".to_vec()));

    // A deleted key is absent again for create-if-absent.
    txn(s, vec![], vec![Op::Delete { key: key.clone() }]).await;
    let recreated = txn(
        s,
        vec![Compare::ModRevision {
            key: key.clone(),
            revision: None,
        }],
        vec![put(&key, b"again")],
    )
    .await;
    assert!(recreated.succeeded, "a deleted key must count as absent");
}

async fn ranges(s: &dyn MetaStore) {
    let names = ["rng/a", "rng/b", "rng/b0", "rng/c", "rng/d"];
    let ops = names.iter().map(|n| put(&k(n), n.as_bytes())).collect();
    txn(s, vec![], ops).await;
    let all: Vec<Vec<u8>> = names.iter().map(|n| k(n)).collect();

    let got = ok("range", s.range(&k("rng/a"), &k("rng/d"), 0).await);
    assert_eq!(
        keys(&got),
        all[..4].to_vec(),
        "range is [start, end) in key order"
    );
    for kv in &got {
        assert_eq!(kv.value, &kv.key[ROOT.len()..], "range returns values");
        assert!(kv.mod_revision > 0);
    }
    let got = ok("range", s.range(&k("rng/a"), &k("rng/z"), 2).await);
    assert_eq!(keys(&got), all[..2].to_vec(), "limit keeps the first keys");
    let got = ok("range", s.range(&k("rng/b"), &k("rng/b0"), 0).await);
    assert_eq!(keys(&got), vec![k("rng/b")]);
    let got = ok("range", s.range(&k("rng/c"), &k("rng/a"), 0).await);
    assert!(got.is_empty(), "an empty interval reads nothing");
    let got = ok("range", s.range(&k("rng/c"), &[], 0).await);
    let got: Vec<_> = keys(&got)
        .into_iter()
        .filter(|key| key.starts_with(&k("rng/")))
        .collect();
    assert_eq!(got, all[3..].to_vec(), "an empty end reads to the end");

    let got = ok("scan_prefix", s.scan_prefix(&k("rng/b")).await);
    assert_eq!(keys(&got), vec![k("rng/b"), k("rng/b0")], "scan_prefix");

    // Byte order, not string order: 0x00 < 'a' < 0x7f < 0xff.
    let bytes = [ROOT, b"bytes/"].concat();
    let mk = |b: u8| [bytes.as_slice(), &[b]].concat();
    let ops = [0xffu8, b'a', 0x00, 0x7f]
        .iter()
        .map(|b| put(&mk(*b), b""))
        .collect();
    txn(s, vec![], ops).await;
    let got = ok("scan_prefix", s.scan_prefix(&bytes).await);
    assert_eq!(
        keys(&got),
        vec![mk(0x00), mk(b'a'), mk(0x7f), mk(0xff)],
        "byte order"
    );
}

async fn deletes(s: &dyn MetaStore) {
    let names = ["del/p", "del/p/a", "del/p/b", "del/p0", "del/q"];
    let ops = names.iter().map(|n| put(&k(n), b"x")).collect();
    let written = txn(s, vec![], ops).await;

    let outcome = txn(
        s,
        vec![],
        vec![Op::DeletePrefix {
            prefix: k("del/p/"),
        }],
    )
    .await;
    assert!(outcome.succeeded);
    assert!(
        outcome.revision > written.revision,
        "a deleting txn gets a new revision"
    );
    let left = ok("scan_prefix", s.scan_prefix(&k("del/")).await);
    assert_eq!(
        keys(&left),
        vec![k("del/p"), k("del/p0"), k("del/q")],
        "DeletePrefix deletes exactly the keys with the prefix"
    );

    txn(s, vec![], vec![Op::Delete { key: k("del/p") }]).await;
    assert_eq!(get(s, &k("del/p")).await, None, "Delete removes the key");
    let missing = txn(
        s,
        vec![],
        vec![Op::Delete {
            key: k("del/never"),
        }],
    )
    .await;
    assert!(missing.succeeded, "deleting an absent key is not an error");

    // Prefixes ending in 0xff delete the right range.
    let ff = [ROOT, b"del/\xff"].concat();
    let ops = vec![
        put(&ff, b""),
        put(&[ff.as_slice(), b"\xff\x01"].concat(), b""),
    ];
    txn(s, vec![], ops).await;
    txn(s, vec![], vec![Op::DeletePrefix { prefix: ff.clone() }]).await;
    let left = ok("scan_prefix", s.scan_prefix(&k("del/")).await);
    assert_eq!(keys(&left), vec![k("del/p0"), k("del/q")], "0xff prefixes");
}

/// `tasks` tasks each add 1 to one counter `rounds` times with read + CAS retry loops;
/// the final value must be `tasks * rounds`.
async fn concurrent_compare_and_swap(store: Arc<dyn MetaStore>, tasks: u64, rounds: u64) {
    let counter = k("cas/counter");
    let mut handles = Vec::new();
    for _ in 0..tasks {
        let store = store.clone();
        let counter = counter.clone();
        handles.push(tokio::spawn(async move {
            let mut conflicts = 0u64;
            for _ in 0..rounds {
                loop {
                    let current = ok("get", store.get(&counter).await);
                    let (value, compare) = match &current {
                        Some(kv) => (
                            decode(&kv.value),
                            Compare::ModRevision {
                                key: counter.clone(),
                                revision: Some(kv.mod_revision),
                            },
                        ),
                        None => (
                            0,
                            Compare::ModRevision {
                                key: counter.clone(),
                                revision: None,
                            },
                        ),
                    };
                    let next = (value + 1).to_be_bytes().to_vec();
                    let done = ok(
                        "txn",
                        store.txn(vec![compare], vec![put(&counter, &next)]).await,
                    );
                    if done.succeeded {
                        break;
                    }
                    conflicts += 1;
                }
            }
            conflicts
        }));
    }
    for handle in handles {
        if let Err(e) = handle.await {
            panic!("conformance: a compare-and-swap task failed: {e}");
        }
    }
    let final_value = get(store.as_ref(), &counter)
        .await
        .map(|kv| decode(&kv.value));
    assert_eq!(
        final_value,
        Some(tasks * rounds),
        "a compare-and-swap update was lost"
    );
}

fn decode(value: &[u8]) -> u64 {
    match <[u8; 8]>::try_from(value) {
        Ok(bytes) => u64::from_be_bytes(bytes),
        Err(_) => panic!("conformance: counter value is not 8 bytes: {value:?}"),
    }
}
