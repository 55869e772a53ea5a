//! Consumer state and commit notifications against a real etcd: the store cases of
//! `consumer_cases`, and watches through control-plane replicas across a leader crash.

mod consumer_cases;
mod suite;

use std::sync::Arc;
use std::time::Duration;

use infinistream_control_plane::leader::{LeaderElection, ReplicaOptions, serve_replica};
use infinistream_control_plane::store::MetaStore;
use infinistream_control_plane::store::etcd::EtcdStore;
use infinistream_control_plane::{ControlPlaneClient, GroupKeys, Options};
use infinistream_proto::v1;
use infinistream_testkit::etcd::{EtcdServer, SharedEtcd};
use infinistream_types::{SharedClock, SystemClock};

use consumer_cases::{HANG_GUARD, next, take, until};
use suite::Backend;

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// A key prefix of its own on the process's shared etcd; every `open` connects anew,
/// as a restarted control plane would.
struct Etcd(SharedEtcd);

#[async_trait::async_trait]
impl Backend for Etcd {
    fn name(&self) -> &'static str {
        "etcd"
    }
    async fn open(&self) -> Arc<dyn MetaStore> {
        match EtcdStore::connect(&[self.0.endpoint()], self.0.prefix()).await {
            Ok(store) => Arc::new(store),
            Err(e) => panic!("connect to etcd: {e}"),
        }
    }
}

fn etcd() -> Etcd {
    match EtcdServer::shared() {
        Ok(shared) => Etcd(shared),
        Err(e) => panic!("start etcd: {e}"),
    }
}

macro_rules! cases_for {
    ($backend:ident: $($test:ident),* $(,)?) => {
        mod $backend {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    let b = super::$backend();
                    super::consumer_cases::$test(&b).await;
                }
            )*
        }
    };
}

cases_for!(etcd:
    watch_streams_reports_changes,
    watch_streams_survives_restart,
    last_per_subject_delivers_last_of_each_subject,
    workqueue_rules_and_removal_on_ack,
    interest_removes_once_every_consumer_acked,
    consumer_update_rules,
    redelivery_after_dead_agent_and_restart,
    term_removes_on_workqueue_and_interest,
    release_counts_nothing,
    claim_carries_acks,
);

const GROUP: &str = "team-a";
const KEY: &str = "key-a";
const TTL: Duration = Duration::from_secs(2);

/// One control-plane replica on its own runtime; dropping it is `kill -9`.
struct Replica {
    address: String,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Replica {
    fn start(etcd: &SharedEtcd) -> Result<Replica, Box<dyn std::error::Error>> {
        let (_stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (replica, _done) = Replica::start_until(etcd, async move {
            let _ = stopped.await;
            std::future::pending::<()>().await;
        })?;
        Ok(replica)
    }

    /// A replica that shuts down gracefully when `shutdown` resolves; the receiver
    /// fires once it has.
    fn start_until(
        etcd: &SharedEtcd,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(Replica, tokio::sync::oneshot::Receiver<()>), Box<dyn std::error::Error>> {
        let (done_tx, done) = tokio::sync::oneshot::channel();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()?;
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let address = listener.local_addr()?.to_string();
        let (endpoint, prefix) = (etcd.endpoint(), etcd.prefix().to_owned());
        let replica = ReplicaOptions {
            ttl: TTL,
            ..ReplicaOptions::new(address.clone())
        };
        runtime.spawn(async move {
            let result = async {
                let listener = tokio::net::TcpListener::from_std(listener)?;
                let store = EtcdStore::connect(&[endpoint], &prefix).await?;
                let groups = GroupKeys::new([(GROUP, KEY)])?;
                let clock: SharedClock = Arc::new(SystemClock);
                let options = Options {
                    retention_interval: None,
                    ..Options::default()
                };
                serve_replica(store, groups, clock, options, replica, listener, shutdown).await?;
                let _ = done_tx.send(());
                Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
            }
            .await;
            if let Err(e) = result {
                panic!("replica failed: {e}");
            }
        });
        Ok((
            Replica {
                address,
                runtime: Some(runtime),
            },
            done,
        ))
    }

    fn url(&self) -> String {
        format!("http://{}", self.address)
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// Retries `op` on a fresh client of `url` until it succeeds (no leader between terms).
async fn retry<T, F, Fut>(url: &str, mut op: F) -> Result<T, String>
where
    F: FnMut(ControlPlaneClient) -> Fut,
    Fut: Future<Output = Result<T, tonic::Status>>,
{
    let mut last = String::new();
    for _ in 0..400 {
        match ControlPlaneClient::connect(url, GROUP, KEY).await {
            Ok(client) => match op(client).await {
                Ok(v) => return Ok(v),
                Err(status) => last = status.to_string(),
            },
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(format!("gave up; last error: {last}"))
}

async fn commit_to(url: &str, id: &str, subject: &str) -> Result<(), String> {
    let id = id.to_owned();
    let subject = subject.to_owned();
    retry(url, move |c| {
        let req = suite::batch(&id, vec![suite::chunk("F", 0, vec![suite::rec(&subject)])]);
        async move { c.raw_streams().commit_batch(req).await.map(|_| ()) }
    })
    .await
}

/// A watch opened on a follower is served by the leader (the follower forwards); when
/// the leader is killed the watch reconnects by itself, resyncs from a snapshot that
/// includes commits made meanwhile, and then follows the new leader's commits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_cluster_watch_through_follower_survives_leader_crash() -> TestResult {
    let etcd = EtcdServer::shared()?;
    let observer = EtcdStore::connect(&[etcd.endpoint()], etcd.prefix()).await?;
    let election = LeaderElection::new(&observer, "control-plane", TTL);
    let mut leaders = election.watch_leader().await?;

    let first = Replica::start(&etcd)?;
    let first_address = first.address.clone();
    tokio::time::timeout(
        HANG_GUARD,
        leaders.wait_for(|l| l.as_ref().map(|l| l.address.as_str()) == Some(&first_address)),
    )
    .await??;
    let second = Replica::start(&etcd)?;
    let follower = second.url();

    retry(&follower, |c| async move {
        c.raw_streams()
            .create_stream(v1::CreateStreamRequest {
                config: Some(v1::StreamConfig {
                    name: "F".into(),
                    config_json: b"{\"name\":\"F\"}".to_vec(),
                    limits: Some(suite::limits(&["f.>"])),
                }),
            })
            .await
            .map(|_| ())
    })
    .await?;

    let client = ControlPlaneClient::connect(&follower, GROUP, KEY).await?;
    let mut w = client.watch_streams(v1::WatchStreamsRequest {
        streams: vec!["F".into()],
        consumers: false,
    });
    assert_eq!(take(&mut w, 2).await, ["snapshot F 0..0 n0", "synced"]);
    commit_to(&first.url(), "fb1", "f.a").await?;
    assert_eq!(next(&mut w).await, "state F 1..1 n1");

    // kill -9 the leader; the follower takes over and the watch follows it.
    drop(first);
    commit_to(&follower, "fb2", "f.b").await?;
    until(&mut w, "snapshot F 1..2 n2").await;
    assert_eq!(next(&mut w).await, "synced");
    commit_to(&follower, "fb3", "f.c").await?;
    assert_eq!(next(&mut w).await, "state F 1..3 n3");
    drop(second);
    Ok(())
}

/// A follower stopping gracefully does not wait forever for the watches it forwards:
/// it cuts them, and the watcher reconnects to a live replica.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_cluster_follower_shutdown_cuts_forwarded_watches() -> TestResult {
    let etcd = EtcdServer::shared()?;
    let observer = EtcdStore::connect(&[etcd.endpoint()], etcd.prefix()).await?;
    let election = LeaderElection::new(&observer, "control-plane", TTL);
    let mut leaders = election.watch_leader().await?;
    let leader = Replica::start(&etcd)?;
    let leader_address = leader.address.clone();
    tokio::time::timeout(
        HANG_GUARD,
        leaders.wait_for(|l| l.as_ref().map(|l| l.address.as_str()) == Some(&leader_address)),
    )
    .await??;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (follower, done) = Replica::start_until(&etcd, async move {
        let _ = stopped.await;
    })?;
    let client = retry(&follower.url(), |c| async move { Ok(c) }).await?;
    let mut w = client.watch_streams(v1::WatchStreamsRequest::default());
    until(&mut w, "synced").await;
    let _ = stop.send(());
    tokio::time::timeout(HANG_GUARD, done)
        .await
        .map_err(|_| "follower shutdown hung on an open watch")??;
    drop((follower, leader));
    Ok(())
}
