//! Leader election on a real etcd: one leader at a time, takeover after a crash or a
//! resignation, and fencing of a deposed leader's writes.

use std::sync::Arc;
use std::time::Duration;

use infinistream_control_plane::leader::{LeaderElection, Leadership};
use infinistream_control_plane::store::etcd::EtcdStore;
use infinistream_control_plane::store::{MetaStore, Op, StoreError};
use infinistream_testkit::etcd::EtcdServer;

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// Generous bound so a broken election fails the test instead of hanging it; no test
/// asserts on how fast anything happens.
const HANG_GUARD: Duration = Duration::from_secs(20);
const TTL: Duration = Duration::from_secs(2);

async fn store() -> Result<EtcdStore, Box<dyn std::error::Error>> {
    let etcd = EtcdServer::shared()?;
    Ok(EtcdStore::connect(&[etcd.endpoint()], etcd.prefix()).await?)
}

async fn within<T>(what: &str, fut: impl Future<Output = T>) -> Result<T, String> {
    tokio::time::timeout(HANG_GUARD, fut)
        .await
        .map_err(|_| format!("{what} did not happen within {HANG_GUARD:?}"))
}

fn put(key: &[u8], value: &[u8]) -> Op {
    Op::Put {
        key: key.to_vec(),
        value: value.to_vec(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_election_one_leader_then_takeover_after_crash() -> TestResult {
    let store = store().await?;
    let election = LeaderElection::new(&store, "cp", TTL);
    let a = election.campaign("10.0.0.1:7000").await?;
    assert_eq!(
        election
            .current_leader()
            .await?
            .map(|l| (l.address, l.revision)),
        Some(("10.0.0.1:7000".to_owned(), a.fencing_revision()))
    );

    let mut leaders = election.watch_leader().await?;
    assert_eq!(
        leaders.borrow().as_ref().map(|l| l.address.clone()),
        Some("10.0.0.1:7000".into())
    );

    let b_election = election.clone();
    let b = tokio::spawn(async move { b_election.campaign("10.0.0.2:7000").await });
    // B cannot win while A renews: A is still the recorded leader once B is waiting.
    tokio::task::yield_now().await;
    assert!(!b.is_finished() || a.is_lost(), "two leaders at once");

    // A crashes: it stops renewing, its key expires with the lease, B takes over.
    let a_revision = a.fencing_revision();
    drop(a);
    let b: Leadership = within("takeover", b).await???;
    assert!(b.fencing_revision() > a_revision, "fencing tokens grow");
    assert!(!b.is_lost());

    // The watch saw the change.
    within(
        "leader watch update",
        leaders.wait_for(|l| l.as_ref().map(|l| l.address.as_str()) == Some("10.0.0.2:7000")),
    )
    .await??;
    b.resign().await?;
    within("leader record removal", leaders.wait_for(|l| l.is_none())).await??;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_election_concurrent_candidates_take_turns() -> TestResult {
    let store = store().await?;
    let election = LeaderElection::new(&store, "cp", TTL);
    let mut candidates = tokio::task::JoinSet::new();
    for i in 0..3 {
        let election = election.clone();
        candidates.spawn(async move { election.campaign(&format!("replica-{i}")).await });
    }
    let mut seen = Vec::new();
    let mut last_revision = 0;
    while let Some(next) = within("a candidate winning", candidates.join_next()).await? {
        let leadership = next??;
        let current = election
            .current_leader()
            .await?
            .ok_or("no leader recorded")?;
        assert_eq!(
            current.address,
            leadership.address(),
            "the winner is the recorded leader"
        );
        assert!(leadership.fencing_revision() > last_revision);
        last_revision = leadership.fencing_revision();
        seen.push(leadership.address().to_owned());
        leadership.resign().await?;
    }
    seen.sort();
    assert_eq!(seen, vec!["replica-0", "replica-1", "replica-2"]);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_deposed_leader_writes_are_fenced() -> TestResult {
    let store = store().await?;
    let shared: Arc<dyn MetaStore> = Arc::new(store.clone());
    let election = LeaderElection::new(&store, "cp", TTL);
    let a = election.campaign("a:1").await?;
    let a_store = a.fenced_store(shared.clone());
    assert!(
        a_store
            .txn(vec![], vec![put(b"data/x", b"from a")])
            .await?
            .succeeded
    );
    let a_lost = a.lost();

    // A's lease disappears behind its back (as after a long pause), B takes over.
    store.client().lease_client().revoke(a.lease_id()).await?;
    let b = within("takeover", election.campaign("b:1")).await??;
    let b_store = b.fenced_store(shared.clone());

    // A's fenced writes now fail atomically, whatever A believes.
    let raw = shared
        .txn(vec![a.fence()], vec![put(b"data/x", b"stale a")])
        .await?;
    assert!(!raw.succeeded, "a deposed leader's fenced txn must fail");
    match a_store.txn(vec![], vec![put(b"data/x", b"stale a")]).await {
        Err(StoreError::Unavailable(message)) => {
            assert!(message.contains("not the leader"), "{message}");
            assert!(message.contains("b:1"), "names the new leader: {message}");
        }
        other => panic!("expected a fencing error, got {other:?}"),
    }
    within("A noticing it lost", a_lost).await?;
    assert!(a.is_lost());

    // B's writes go through; a failed compare of B's own is not a fencing error.
    assert!(
        b_store
            .txn(vec![], vec![put(b"data/x", b"from b")])
            .await?
            .succeeded
    );
    let stale = infinistream_control_plane::store::Compare::ModRevision {
        key: b"data/x".to_vec(),
        revision: None,
    };
    let failed = b_store.txn(vec![stale], vec![put(b"data/y", b"")]).await?;
    assert!(!failed.succeeded);
    assert!(!b.is_lost());
    assert_eq!(
        shared.get(b"data/x").await?.map(|kv| kv.value),
        Some(b"from b".to_vec())
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_leader_keeps_its_lease_past_the_ttl() -> TestResult {
    // Renewal works: after several TTLs of the leader doing nothing, it still leads and a
    // rival is still waiting.
    let store = store().await?;
    let election = LeaderElection::new(&store, "cp", TTL);
    let a = election.campaign("a:1").await?;
    let rival_election = election.clone();
    let rival = tokio::spawn(async move { rival_election.campaign("b:1").await });
    let lost = a.lost();
    tokio::select! {
        () = lost => panic!("leader lost its lease while renewing"),
        res = rival => panic!("rival won while the leader renewed: {res:?}"),
        () = tokio::time::sleep(TTL * 3) => {}
    }
    assert_eq!(
        election.current_leader().await?.map(|l| l.address),
        Some("a:1".to_owned())
    );
    a.resign().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_leader_notices_when_etcd_is_gone() -> TestResult {
    // Cut off from etcd, a leader cannot renew: it must report the term lost rather than
    // go on believing it leads.
    let etcd = EtcdServer::start()?;
    let store = EtcdStore::connect(&[etcd.endpoint()], "/leader-test/").await?;
    let election = LeaderElection::new(&store, "cp", TTL);
    let leader = election.campaign("a:1").await?;
    let lost = leader.lost();
    etcd.kill()?;
    within("the leader noticing", lost).await?;
    assert!(leader.is_lost());

    // Back up, a fresh campaign wins with a later term once the old lease has expired.
    etcd.restart()?;
    let again = within("a new term", election.campaign("a:2")).await??;
    assert!(again.fencing_revision() > leader.fencing_revision());
    Ok(())
}
