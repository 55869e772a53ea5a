//! The NATS system API (`$SYS.REQ.*`) on every agent, for operators' tools: the `nats`
//! CLI's `server list`, `server info`, `server report jetstream`, `account info`.
//!
//! Each agent answers as one nats-server of a cluster would, with nats-server's JSON
//! shapes ([`infinistream_protocol::sysapi`]); the data of each endpoint is the
//! monitoring port's document, built by the same code (`Broker::varz`,
//! `Broker::connz_page`, [`JszSource::jsz`]):
//!
//! | subject | who answers |
//! |---|---|
//! | `$SYS.REQ.SERVER.PING` (STATSZ), `$SYS.REQ.SERVER.PING.<ENDPOINT>` | every agent of the group, once |
//! | `$SYS.REQ.SERVER.<server id>.<ENDPOINT>` | that agent, from a client on any agent |
//! | `$SYS.REQ.ACCOUNT.PING.CONNZ`, `$SYS.REQ.ACCOUNT.<account>.CONNZ` | every agent, its own connections |
//! | `$SYS.REQ.ACCOUNT.PING.STATZ`, `$SYS.REQ.ACCOUNT.<account>.STATZ` | every agent with connections in the account |
//! | `$SYS.REQ.USER.INFO` | the agent the requester is connected to |
//!
//! Endpoints: VARZ, JSZ, CONNZ, HEALTHZ, STATSZ, IDZ. "Every agent" works through
//! cluster-visible internal subscriptions (`Broker::subscribe_cluster_internal`): the
//! route mesh announces them to peers like a client's subscriptions, so a PING
//! published on any agent is forwarded once to each peer and answered once by each
//! responder. USER.INFO stays local, as nats-server keeps it (the answer describes the
//! requester's own connection).
//!
//! InfiniStream has one account (`$G`) and no system account: every client that may
//! connect may read these, as anyone who reaches the monitoring port reads `/varz`.
//!
//! Each subscription is served by its own task, one request after another, so the
//! answers to one subject leave in the order the requests came; a request whose body
//! is not the endpoint's JSON options gets a 400 error envelope; one whose filter
//! (`server_name`, `cluster`, `host`, `tags`, `domain`) does not select this agent gets
//! no answer, as with nats-server.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use infinistream_broker::monitor::{Connz, Varz, rfc3339};
use infinistream_broker::{Broker, BrokerError, InternalMsg, InternalSubscription};
use infinistream_protocol::jsapi::jsz::{GLOBAL_ACCOUNT, JszLimits, JszOptions};
use infinistream_protocol::jsapi::time::Timestamp;
use infinistream_protocol::sysapi::{
    ACCOUNT_CONNZ, ACCOUNT_STATZ, AccountStat, AccountStatz, AccountStatzEventOptions,
    ConnzEventOptions, DataStats, Endpoint, FilterOnly, HealthStatus, JetStreamVarz,
    JszEventOptions, SERVER_PING, ServerApiResponse, ServerId, ServerInfo, ServerStats,
    ServerStatsMsg, SysApiError, SysRequest, USER_INFO, UserInfo, parse_options,
};
use serde::Serialize;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, warn};

use crate::context::{ApiContext, now};
use crate::jsz::{JszSource, server_config};

/// Requests queued per subscription before publishers are back-pressured.
const CAPACITY: usize = 256;

/// What HEALTHZ reports: `Err(reason)` while the agent is not ready (the agent's
/// readiness, the same as its `/readyz`).
pub type HealthCheck = Arc<dyn Fn() -> Result<(), String> + Send + Sync>;

/// The system API responder of one agent.
pub struct SysApi {
    ctx: ApiContext,
    health: Option<HealthCheck>,
    jsz: JszSource,
    /// Reported as the server's cluster: the agent group.
    cluster: String,
    /// `ServerInfo.seq`: one counter for every answer this agent sends.
    seq: AtomicU64,
}

impl std::fmt::Debug for SysApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SysApi")
            .field("cluster", &self.cluster)
            .field("health", &self.health.is_some())
            .finish_non_exhaustive()
    }
}

/// A subscribed [`SysApi`]; [`RunningSysApi::run`] serves it.
#[derive(Debug)]
pub struct RunningSysApi {
    api: Arc<SysApi>,
    subscriptions: Vec<InternalSubscription>,
}

/// VARZ data: `/varz` plus the `jetstream` section nats-server's carries.
#[derive(Debug, Serialize)]
struct VarzData {
    #[serde(flatten)]
    varz: Varz,
    jetstream: JetStreamVarz,
}

impl SysApi {
    pub(crate) fn new(ctx: ApiContext, jsz: JszSource, cluster: String) -> Self {
        SysApi {
            ctx,
            health: None,
            jsz,
            cluster,
            seq: AtomicU64::new(0),
        }
    }

    /// HEALTHZ answers from `check` instead of always "ok".
    pub fn with_health(mut self, check: HealthCheck) -> Self {
        self.health = Some(check);
        self
    }

    /// Subscribes to the system API's subjects (see the module doc for which are
    /// cluster-visible).
    pub fn subscribe(self) -> Result<RunningSysApi, BrokerError> {
        let broker = &self.ctx.broker;
        let mut subscriptions = vec![
            broker.subscribe_cluster_internal(SERVER_PING, None, CAPACITY)?,
            broker.subscribe_cluster_internal(ACCOUNT_CONNZ, None, CAPACITY)?,
            broker.subscribe_cluster_internal(ACCOUNT_STATZ, None, CAPACITY)?,
            broker.subscribe_internal(USER_INFO, None, CAPACITY)?,
        ];
        for endpoint in Endpoint::ALL {
            subscriptions.push(broker.subscribe_cluster_internal(
                &endpoint.ping_subject(),
                None,
                CAPACITY,
            )?);
            subscriptions.push(broker.subscribe_cluster_internal(
                &endpoint.server_subject(broker.server_id()),
                None,
                CAPACITY,
            )?);
        }
        Ok(RunningSysApi {
            api: Arc::new(self),
            subscriptions,
        })
    }

    fn broker(&self) -> &Broker {
        &self.ctx.broker
    }

    /// This agent as the envelope names it, with the next sequence number.
    fn server_info(&self) -> ServerInfo {
        self.broker().server_info(
            self.cluster.clone(),
            self.seq.fetch_add(1, Ordering::Relaxed) + 1,
            now(&self.ctx),
        )
    }

    /// The answer to one request, or `None` when this agent stays silent.
    async fn answer(&self, msg: &InternalMsg) -> Option<Vec<u8>> {
        match SysRequest::parse(&msg.subject)? {
            SysRequest::Ping(endpoint) => self.endpoint(endpoint, &msg.payload).await,
            SysRequest::Server { id, endpoint } if id == self.broker().server_id() => {
                self.endpoint(endpoint, &msg.payload).await
            }
            SysRequest::Server { .. } => None,
            SysRequest::UserInfo => self.envelope(Ok(self.user_info(msg.client_id))),
            SysRequest::AccountConnz { account } => {
                let opts = match parse_options::<ConnzEventOptions>(&msg.payload) {
                    Ok(opts) => opts,
                    Err(e) => return self.envelope::<Connz>(Err(e)),
                };
                let server = self.server_info();
                if !opts.filter.selects(&server) {
                    return None;
                }
                let data = self.account_connz(account, &opts);
                encode(&ServerApiResponse::from_result(server, Ok(data)))
            }
            SysRequest::AccountStatz { account } => {
                let opts = match parse_options::<AccountStatzEventOptions>(&msg.payload) {
                    Ok(opts) => opts,
                    Err(e) => return self.envelope::<AccountStatz>(Err(e)),
                };
                let server = self.server_info();
                if !opts.filter.selects(&server) {
                    return None;
                }
                // nats-server stays silent when no asked-for account is in use here.
                let data = self.account_statz(account, &opts)?;
                encode(&ServerApiResponse::from_result(server, Ok(data)))
            }
        }
    }

    async fn endpoint(&self, endpoint: Endpoint, body: &Bytes) -> Option<Vec<u8>> {
        match endpoint {
            // nats-server answers IDZ bare and reads no options.
            Endpoint::Idz => {
                let server = self.server_info();
                encode(&ServerId {
                    name: server.name,
                    host: server.host,
                    id: server.id,
                })
            }
            Endpoint::Statsz => {
                let opts = match parse_options::<FilterOnly>(body) {
                    Ok(opts) => opts,
                    Err(e) => return self.envelope::<ServerStats>(Err(e)),
                };
                let server = self.server_info();
                if !opts.filter.selects(&server) {
                    return None;
                }
                let statsz = self.statsz().await;
                encode(&ServerStatsMsg { server, statsz })
            }
            Endpoint::Varz => {
                let opts = match parse_options::<FilterOnly>(body) {
                    Ok(opts) => opts,
                    Err(e) => return self.envelope::<VarzData>(Err(e)),
                };
                self.filtered(&opts.filter, async {
                    Ok(VarzData {
                        varz: self.broker().varz(),
                        jetstream: self.jetstream_varz().await,
                    })
                })
                .await
            }
            Endpoint::Jsz => {
                let opts = match parse_options::<JszEventOptions>(body) {
                    Ok(opts) => opts,
                    Err(e) => return self.envelope::<()>(Err(e)),
                };
                self.filtered(&opts.filter, async {
                    self.jsz
                        .jsz(&opts.jsz_options())
                        .await
                        .map_err(|e| SysApiError::internal(e.description))
                })
                .await
            }
            Endpoint::Connz => {
                let opts = match parse_options::<ConnzEventOptions>(body) {
                    Ok(opts) => opts,
                    Err(e) => return self.envelope::<Connz>(Err(e)),
                };
                let (offset, limit) = opts.page(infinistream_broker::monitor::DEFAULT_CONNZ_LIMIT);
                self.filtered(&opts.filter, async {
                    Ok(self.broker().connz_page(offset, limit))
                })
                .await
            }
            Endpoint::Healthz => {
                let opts = match parse_options::<FilterOnly>(body) {
                    Ok(opts) => opts,
                    Err(e) => return self.envelope::<HealthStatus>(Err(e)),
                };
                // The agent's readiness (registered, control plane and bucket
                // reachable): it has no local store to check beyond that.
                let status = match self.health.as_ref().map(|check| check()) {
                    Some(Err(reason)) => HealthStatus::unavailable(reason),
                    _ => HealthStatus::ok(),
                };
                self.filtered(&opts.filter, async { Ok(status) }).await
            }
        }
    }

    /// The envelope around `data` when `filter` selects this agent.
    async fn filtered<T: Serialize>(
        &self,
        filter: &infinistream_protocol::sysapi::EventFilterOptions,
        data: impl std::future::Future<Output = Result<T, SysApiError>>,
    ) -> Option<Vec<u8>> {
        let server = self.server_info();
        if !filter.selects(&server) {
            return None;
        }
        let data = data.await;
        encode(&ServerApiResponse::from_result(server, data))
    }

    fn envelope<T: Serialize>(&self, data: Result<T, SysApiError>) -> Option<Vec<u8>> {
        encode(&ServerApiResponse::from_result(self.server_info(), data))
    }

    /// The `jetstream` section of VARZ and STATSZ; without `stats` while the control
    /// plane does not answer.
    async fn jetstream_varz(&self) -> JetStreamVarz {
        let opts = JszOptions {
            limit: infinistream_protocol::jsapi::jsz::DEFAULT_ACCOUNT_LIMIT,
            ..JszOptions::default()
        };
        let stats = match self.jsz.jsz(&opts).await {
            Ok(jsz) => Some(jsz.stats),
            Err(e) => {
                warn!(error = %e.description, "system API: JetStream stats unavailable");
                None
            }
        };
        JetStreamVarz {
            config: Some(server_config()),
            stats,
            limits: Some(JszLimits::default()),
        }
    }

    /// STATSZ from the same counters as `/varz`.
    async fn statsz(&self) -> ServerStats {
        let varz = self.broker().varz();
        let received = DataStats::new(varz.in_msgs, varz.in_bytes);
        let sent = DataStats::new(varz.out_msgs, varz.out_bytes);
        ServerStats {
            start: Timestamp::parse(&varz.start).unwrap_or(Timestamp::ZERO),
            mem: i64::try_from(varz.mem).unwrap_or(i64::MAX),
            cores: varz.cores,
            cpu: varz.cpu,
            connections: varz.connections,
            total_connections: varz.total_connections,
            // One account, `$G`.
            active_accounts: 1,
            subscriptions: varz.subscriptions as u64,
            // The broker counts all traffic together (clients and in-process).
            sent,
            sent_to_clients: sent,
            received,
            received_from_clients: received,
            slow_consumers: i64::try_from(varz.slow_consumers).unwrap_or(i64::MAX),
            // The agents linked over the route mesh, and this one.
            active_servers: varz.routes as usize + 1,
            jetstream: Some(self.jetstream_varz().await),
            gomaxprocs: varz.cores,
        }
    }

    /// The requester is in JetStream's account: only it reaches these handlers.
    fn user_info(&self, cid: u64) -> UserInfo {
        let account = self.broker().jetstream_account().to_owned();
        UserInfo {
            user: self.broker().connection_user(cid).unwrap_or_default(),
            account: account.clone(),
            account_name: account,
        }
    }

    /// This agent's connections in `account` (`None`: the requester's, `$G`); every
    /// connection is in `$G`, so another account has none.
    fn account_connz(&self, account: Option<&str>, opts: &ConnzEventOptions) -> Connz {
        let (offset, limit) = opts.page(infinistream_broker::monitor::DEFAULT_CONNZ_LIMIT);
        if account.is_none_or(|a| a == GLOBAL_ACCOUNT) {
            return self.broker().connz_page(offset, limit);
        }
        Connz {
            server_id: self.broker().server_id().to_owned(),
            now: rfc3339(std::time::SystemTime::now()),
            num_connections: 0,
            total: 0,
            offset,
            limit,
            connections: Vec::new(),
        }
    }
}

impl SysApi {
    /// `$G`'s counters when it is asked for (`account`, else the body's `accounts`,
    /// else every account) and in use here (or `include_unused`). Every connection is
    /// in `$G`; its traffic is the broker's.
    fn account_statz(
        &self,
        account: Option<&str>,
        opts: &AccountStatzEventOptions,
    ) -> Option<AccountStatz> {
        let asked = match account {
            Some(a) => a == GLOBAL_ACCOUNT,
            None => opts.accounts.is_empty() || opts.accounts.iter().any(|a| a == GLOBAL_ACCOUNT),
        };
        let connz = self.broker().connz_page(0, usize::MAX);
        if !asked || (connz.total == 0 && !opts.include_unused) {
            return None;
        }
        let varz = self.broker().varz();
        Some(AccountStatz {
            server_id: self.broker().server_id().to_owned(),
            now: now(&self.ctx),
            account_statz: vec![AccountStat {
                acc: GLOBAL_ACCOUNT.to_owned(),
                name: GLOBAL_ACCOUNT.to_owned(),
                conns: connz.total,
                leafnodes: 0,
                total_conns: connz.total,
                num_subscriptions: connz
                    .connections
                    .iter()
                    .map(|c| c.subscriptions as u64)
                    .sum(),
                sent: DataStats::new(varz.out_msgs, varz.out_bytes),
                received: DataStats::new(varz.in_msgs, varz.in_bytes),
                slow_consumers: i64::try_from(varz.slow_consumers).unwrap_or(i64::MAX),
            }],
        })
    }
}

fn encode<T: Serialize>(value: &T) -> Option<Vec<u8>> {
    match serde_json::to_vec(value) {
        Ok(body) => Some(body),
        Err(e) => {
            warn!(error = %e, "system API: answer not encodable");
            None
        }
    }
}

impl RunningSysApi {
    /// Serves until shutdown: one task per subscription, each answering its requests
    /// in order.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), std::convert::Infallible> {
        let mut tasks = tokio::task::JoinSet::new();
        for mut subscription in self.subscriptions {
            let api = self.api.clone();
            let shutdown = shutdown.clone();
            tasks.spawn(async move {
                while let Some(msg) = subscription.recv_until(&shutdown).await {
                    // nats-server answers only requests (no reply: nothing to do).
                    let Some(reply) = msg.reply.clone() else {
                        continue;
                    };
                    let span = tracing::debug_span!("sysapi", subject = %msg.subject);
                    if let Some(body) = api.answer(&msg).instrument(span).await {
                        api.broker().publish(&reply, None, None, Bytes::from(body));
                    }
                }
            });
        }
        while tasks.join_next().await.is_some() {}
        Ok(())
    }
}
