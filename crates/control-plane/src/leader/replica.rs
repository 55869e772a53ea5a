//! Serving as one of several control-plane replicas: the leader runs the control
//! plane on a fenced store, followers forward every request to it as-is.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::sleep;

use super::election::{LeaderElection, LeaderInfo, RETRY_DELAY, Tasks};
use crate::store::MetaStore;
use crate::store::etcd::EtcdStore;

/// Settings of a control-plane replica sharing an etcd with others.
#[derive(Debug, Clone)]
pub struct ReplicaOptions {
    /// `host:port` where the other replicas reach this one's gRPC listener (recorded in
    /// the leader key while this replica leads).
    pub advertise: String,
    /// Leader lease TTL: a crashed leader is replaced after about this long.
    pub ttl: Duration,
    /// Election name; replicas of one cluster use the same one.
    pub election: String,
    /// Where requests reaching this replica are counted (led or forwarded).
    pub requests: crate::RequestMetrics,
    /// Serve gRPC over TLS.
    pub tls: Option<infinistream_cp_client::tls::Acceptor>,
    /// Dial the leader over TLS (`https://`) with these settings.
    pub client_tls: Option<tonic::transport::ClientTlsConfig>,
}

impl ReplicaOptions {
    /// Defaults for a replica advertising `advertise`: a 5 s lease, election
    /// `control-plane`.
    pub fn new(advertise: impl Into<String>) -> ReplicaOptions {
        ReplicaOptions {
            advertise: advertise.into(),
            ttl: Duration::from_secs(5),
            election: "control-plane".to_owned(),
            requests: crate::RequestMetrics::new(),
            tls: None,
            client_tls: None,
        }
    }
}

/// What the listener does right now.
#[derive(Clone)]
enum Mode {
    /// Serve every request here, with the control plane opened on the fenced store.
    Leader(tonic::service::Routes),
    /// Forward every request, unchanged (metadata, group key, streaming bodies), to the
    /// leader; answer `Unavailable` while no leader is known.
    Follower {
        leader: Option<String>,
        channel: Option<tonic::transport::Channel>,
    },
}

type SharedMode = Arc<std::sync::RwLock<Mode>>;

fn read_mode(mode: &SharedMode) -> Mode {
    match mode.read() {
        Ok(guard) => guard.clone(),
        Err(poisoned) => poisoned.into_inner().clone(),
    }
}

fn write_mode(mode: &SharedMode) -> std::sync::RwLockWriteGuard<'_, Mode> {
    mode.write()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Follower mode towards `leader`, reusing `current`'s channel when the address is the
/// same. Our own address is not a leader to forward to.
fn follower_mode(
    current: &Mode,
    leader: Option<&LeaderInfo>,
    advertise: &str,
    tls: Option<&tonic::transport::ClientTlsConfig>,
) -> Mode {
    let address = leader
        .map(|l| l.address.clone())
        .filter(|address| address != advertise);
    if let Mode::Follower {
        leader: Some(known),
        channel: Some(_),
    } = current
        && address.as_deref() == Some(known.as_str())
    {
        return current.clone();
    }
    let channel = address.as_ref().and_then(|address| {
        let scheme = infinistream_cp_client::tls::scheme(tls.is_some());
        tonic::transport::Endpoint::from_shared(format!("{scheme}://{address}"))
            .and_then(|endpoint| match tls {
                Some(tls) => endpoint.tls_config(tls.clone()),
                None => Ok(endpoint),
            })
            .map(|endpoint| endpoint.tcp_nodelay(true).connect_lazy())
            .map_err(|e| tracing::warn!(address, error = %e, "bad leader address or TLS settings"))
            .ok()
    });
    Mode::Follower {
        leader: address,
        channel,
    }
}

/// The listener's one service: dispatches on the current [`Mode`].
#[derive(Clone)]
struct ReplicaService {
    mode: SharedMode,
    /// Set at shutdown: ends forwarded watch streams (see `engine::watch`).
    stop: watch::Receiver<bool>,
}

type HttpRequest = tonic::codegen::http::Request<axum::body::Body>;
type HttpResponse = tonic::codegen::http::Response<axum::body::Body>;

impl tower::Service<HttpRequest> for ReplicaService {
    type Response = HttpResponse;
    type Error = std::convert::Infallible;
    type Future = std::pin::Pin<
        Box<dyn Future<Output = Result<HttpResponse, std::convert::Infallible>> + Send>,
    >;

    fn poll_ready(
        &mut self,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: HttpRequest) -> Self::Future {
        use tower::ServiceExt;
        let mode = read_mode(&self.mode);
        let stop = self.stop.clone();
        let watch = crate::engine::watch::is_watch(request.uri().path());
        Box::pin(async move {
            Ok(match mode {
                Mode::Leader(routes) => match routes.oneshot(request).await {
                    Ok(response) => response.map(axum::body::Body::new),
                    Err(never) => match never {},
                },
                Mode::Follower {
                    leader: Some(address),
                    channel: Some(channel),
                } => {
                    let request = request.map(tonic::body::Body::new);
                    match channel.oneshot(request).await {
                        Ok(response) if watch => response.map(|body| {
                            crate::engine::watch::cut_on_stop(axum::body::Body::new(body), stop)
                        }),
                        Ok(response) => response.map(axum::body::Body::new),
                        Err(e) => tonic::Status::unavailable(format!(
                            "not the leader; the leader at {address} is unreachable: {e}"
                        ))
                        .into_http(),
                    }
                }
                Mode::Follower { .. } => {
                    tonic::Status::unavailable("no control-plane leader elected yet; retry")
                        .into_http()
                }
            })
        })
    }
}

/// Serves one replica of a replicated control plane on `listener` until `shutdown`.
///
/// Every replica campaigns for leadership. The leader opens the control plane on a
/// [`FencedStore`] and serves all requests; followers forward each request as-is to
/// the leader's advertised address, so agents may talk to any replica. When the
/// leadership is lost (lease, key or fence), the replica drops its control plane,
/// becomes a follower and campaigns again. On shutdown the leader resigns, so another
/// replica takes over at once.
pub async fn serve_replica(
    store: EtcdStore,
    groups: crate::GroupKeys,
    clock: infinistream_types::SharedClock,
    options: crate::Options,
    replica: ReplicaOptions,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), crate::ServeError> {
    let election = LeaderElection::new(&store, &replica.election, replica.ttl);
    let leaders = election
        .watch_leader()
        .await
        .map_err(crate::CpError::from)?;
    // A term on record at our own address is this replica's previous process (we hold
    // that port now): it is dead, so end its term instead of waiting out its lease.
    let stale = leaders
        .borrow()
        .clone()
        .filter(|l| l.address == replica.advertise);
    if let Some(stale) = stale {
        match election.depose(&stale).await {
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "could not end this replica's previous term"),
        }
    }
    let mode: SharedMode = Arc::new(std::sync::RwLock::new(follower_mode(
        &Mode::Follower {
            leader: None,
            channel: None,
        },
        leaders.borrow().as_ref(),
        &replica.advertise,
        replica.client_tls.as_ref(),
    )));
    let (stop_tx, stop_rx) = watch::channel(false);

    let follower = tokio::spawn(follow(
        mode.clone(),
        leaders.clone(),
        replica.advertise.clone(),
        replica.client_tls.clone(),
    ));
    let prober = tokio::spawn(depose_dead_leaders(
        election.clone(),
        leaders.clone(),
        replica.advertise.clone(),
    ));
    let _follower = Tasks(vec![follower, prober]);
    let campaigner = tokio::spawn(lead_when_elected(
        election,
        store,
        groups,
        clock,
        options,
        replica.advertise.clone(),
        mode.clone(),
        leaders,
        stop_rx.clone(),
        replica.client_tls.clone(),
    ));

    let router = replica
        .requests
        .layer(axum::Router::new().fallback_service(ReplicaService {
            mode,
            stop: stop_rx.clone(),
        }));
    let mut server_stop = stop_rx;
    let builder =
        tonic::transport::Server::builder().add_routes(tonic::service::Routes::from(router));
    let stopped = async move {
        let _ = server_stop.wait_for(|stop| *stop).await;
    };
    let tls = replica.tls.is_some();
    let server = async move {
        match replica.tls {
            Some(acceptor) => {
                let incoming =
                    infinistream_cp_client::tls::incoming(listener, acceptor, "control plane");
                builder
                    .serve_with_incoming_shutdown(incoming, stopped)
                    .await
            }
            None => {
                let incoming =
                    tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
                builder
                    .serve_with_incoming_shutdown(incoming, stopped)
                    .await
            }
        }
    };
    tracing::info!(advertise = %replica.advertise, tls, "control-plane replica serving");
    tokio::pin!(server);
    let served = tokio::select! {
        result = &mut server => Some(result),
        () = shutdown => None,
    };
    stop_tx.send_replace(true);
    let served = match served {
        Some(result) => result,
        None => server.await,
    };
    if let Err(e) = campaigner.await {
        tracing::warn!(error = %e, "leader campaign task failed");
    }
    served.map_err(crate::ServeError::from)
}

/// Keeps follower mode pointed at the current leader.
async fn follow(
    mode: SharedMode,
    mut leaders: watch::Receiver<Option<LeaderInfo>>,
    advertise: String,
    tls: Option<tonic::transport::ClientTlsConfig>,
) {
    loop {
        {
            let leader = leaders.borrow_and_update().clone();
            let mut current = write_mode(&mode);
            if !matches!(*current, Mode::Leader(_)) {
                *current = follower_mode(&current, leader.as_ref(), &advertise, tls.as_ref());
            }
        }
        if leaders.changed().await.is_err() {
            return;
        }
    }
}

/// How often a follower checks that the leader's port still accepts connections.
const LEADER_PROBE: Duration = Duration::from_millis(150);
/// Bound on one probe's connect: a leader that does not answer within it is not judged
/// (a slow or partitioned leader is left to its lease TTL).
const LEADER_PROBE_TIMEOUT: Duration = Duration::from_millis(500);
/// Consecutive refused probes after which the leader is taken for dead.
const REFUSALS_TO_DEPOSE: u32 = 2;

/// Ends the term of a leader whose process is gone, so failover takes a few probes
/// instead of the lease TTL. A `kill -9`ed or crashed leader's port refuses connections
/// at once (the host answers with a reset) while its lease would stay valid for up to
/// the TTL; after [`REFUSALS_TO_DEPOSE`] refused probes in a row the follower revokes
/// that term's lease ([`LeaderElection::depose`]). Only a refusal counts: a timeout or
/// an unreachable host (a partition, a dead machine) leaves the decision to the TTL,
/// and the fence keeps a wrongly deposed leader from writing anything either way.
async fn depose_dead_leaders(
    election: LeaderElection,
    leaders: watch::Receiver<Option<LeaderInfo>>,
    advertise: String,
) {
    let mut refused = 0u32;
    let mut judged: Option<i64> = None;
    loop {
        sleep(LEADER_PROBE).await;
        let leader = leaders.borrow().clone();
        let Some(leader) = leader.filter(|l| l.address != advertise) else {
            refused = 0;
            continue;
        };
        if judged != Some(leader.revision) {
            judged = Some(leader.revision);
            refused = 0;
        }
        let probe = tokio::time::timeout(
            LEADER_PROBE_TIMEOUT,
            tokio::net::TcpStream::connect(&leader.address),
        )
        .await;
        match probe {
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => refused += 1,
            _ => refused = 0,
        }
        if refused >= REFUSALS_TO_DEPOSE {
            refused = 0;
            tracing::warn!(
                leader = %leader.address,
                term = leader.revision,
                "the control-plane leader refuses connections: its process is gone"
            );
            if let Err(e) = election.depose(&leader).await {
                tracing::warn!(error = %e, "could not depose the dead leader; its lease will expire");
            }
        }
    }
}

/// Campaigns, leads until the term ends, and campaigns again, until `stop`.
#[allow(clippy::too_many_arguments)]
async fn lead_when_elected(
    election: LeaderElection,
    store: EtcdStore,
    groups: crate::GroupKeys,
    clock: infinistream_types::SharedClock,
    options: crate::Options,
    advertise: String,
    mode: SharedMode,
    leaders: watch::Receiver<Option<LeaderInfo>>,
    mut stop: watch::Receiver<bool>,
    tls: Option<tonic::transport::ClientTlsConfig>,
) {
    let step_down = |mode: &SharedMode| {
        let leader = leaders.borrow().clone();
        let mut current = write_mode(mode);
        *current = follower_mode(
            &Mode::Follower {
                leader: None,
                channel: None,
            },
            leader.as_ref(),
            &advertise,
            tls.as_ref(),
        );
    };
    loop {
        let campaign = tokio::select! {
            result = election.campaign(&advertise) => result,
            _ = stop.wait_for(|stop| *stop) => return,
        };
        let leadership = match campaign {
            Ok(leadership) => leadership,
            Err(e) => {
                tracing::warn!(error = %e, "leader campaign failed; retrying");
                sleep(RETRY_DELAY).await;
                continue;
            }
        };
        let fenced: Arc<dyn MetaStore> = Arc::new(leadership.fenced_store(Arc::new(store.clone())));
        let control_plane = match crate::ControlPlane::open_with(
            fenced,
            groups.clone(),
            clock.clone(),
            options.clone(),
        )
        .await
        {
            Ok(control_plane) => control_plane,
            Err(e) => {
                tracing::error!(error = %e, "cannot open the control plane as leader; resigning");
                if let Err(e) = leadership.resign().await {
                    tracing::warn!(error = %e, "resigning failed");
                }
                sleep(RETRY_DELAY).await;
                continue;
            }
        };
        *write_mode(&mode) = Mode::Leader(control_plane.router().prepare());
        tracing::info!(
            advertise,
            term = leadership.fencing_revision(),
            "leading: serving writes"
        );
        let stopping = tokio::select! {
            () = leadership.lost() => false,
            _ = stop.wait_for(|stop| *stop) => true,
        };
        step_down(&mode);
        drop(control_plane);
        if stopping {
            if let Err(e) = leadership.resign().await {
                tracing::warn!(error = %e, "resigning at shutdown failed");
            }
            return;
        }
        tracing::warn!(advertise, "leadership lost: following, campaigning again");
    }
}
