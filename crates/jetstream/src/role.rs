//! The JetStream API's entry point: [`start`] serves `$JS.API.>` and `$SYS.REQ.*` on
//! every agent, with reads and consumers served here or forwarded to a proxy-consume
//! peer, and publishes forwarded to a proxy-produce peer when this agent does not run
//! that role.

use std::sync::Arc;

use infinistream_broker::{Broker, BrokerError};
use infinistream_cp_client::ControlPlaneClient;
use infinistream_protocol::jsapi::account::AccountLimits;
use infinistream_runtime::RoleContext;

use crate::api::{ApiContext, ApiServer, RouteHandler};
use crate::catalog::StreamCatalog;
use crate::jsz::JszSource;
use crate::sysapi::HealthCheck;

/// What the API uses of what the agent shares.
#[derive(Clone)]
pub struct ApiDeps {
    pub broker: Broker,
    pub cp: ControlPlaneClient,
    pub catalog: StreamCatalog,
    /// Reported as the stream leader and the system API's server name.
    pub server_name: String,
    /// The agent group: the system API's cluster.
    pub group: String,
    /// `$SYS.REQ.*` HEALTHZ answers from it (the agent's readiness).
    pub health: HealthCheck,
    /// The JetStream account's limits (nats-server's account `jetstream { ... }`),
    /// as `$JS.API.INFO` reports them (the agent sent them to the control plane,
    /// which enforces them for the group).
    pub account_limits: AccountLimits,
}

impl std::fmt::Debug for ApiDeps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiDeps")
            .field("server_name", &self.server_name)
            .field("group", &self.group)
            .finish_non_exhaustive()
    }
}

/// The routes of the roles this agent runs.
#[derive(Clone, Default)]
pub struct LocalRoutes {
    /// Reads and consumers (proxy-consume); `None` forwards them to a peer.
    pub consume: Option<(Arc<dyn RouteHandler>, Arc<dyn RouteHandler>)>,
    /// Whether this agent captures publishes itself (proxy-produce); when not, they
    /// are forwarded to a peer.
    pub produce: bool,
}

impl std::fmt::Debug for LocalRoutes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalRoutes")
            .field("consume", &self.consume.is_some())
            .field("produce", &self.produce)
            .finish()
    }
}

/// Subscribes the JetStream and system APIs and starts serving them (and the
/// forwarding of what this agent's roles do not serve) under the supervisor. Returns
/// the `/jsz` document's source.
pub fn start(
    ctx: &mut RoleContext<'_>,
    deps: ApiDeps,
    routes: LocalRoutes,
) -> Result<JszSource, BrokerError> {
    let shutdown = ctx.shutdown();
    // Peers' stream changes wait for this agent's catalog (see `group_sync`).
    let sync = crate::group_sync::serve_sync(
        deps.broker.clone(),
        deps.catalog.clone(),
        deps.cp.clone(),
        shutdown.clone(),
    )?;
    ctx.supervisor.spawn("catalog-sync", sync);
    let api = ApiServer::new(ApiContext {
        account_limits: deps.account_limits,
        account: crate::account::JsAccount::bare(deps.broker.jetstream_account()),
        broker: deps.broker.clone(),
        cp: deps.cp,
        catalog: deps.catalog.clone(),
        clock: ctx.clock.clone(),
        server_name: deps.server_name,
    });
    let api = match routes.consume {
        Some((reads, consumers)) => api.with_reads(reads).with_consumers(consumers),
        None => {
            // Reads and consumers go to proxy-consume peers (the API's default), and so
            // do the acks and flow-control replies of this agent's clients.
            ctx.supervisor.spawn(
                "consumer-replies-forward",
                crate::forward::forward_consumer_replies(deps.broker.clone(), shutdown.clone()),
            );
            api
        }
    };
    if !routes.produce {
        ctx.supervisor.spawn(
            "publish-forward",
            crate::forward::forward_publishes(
                deps.broker.clone(),
                deps.catalog.clone(),
                shutdown.clone(),
            ),
        );
    }
    let jsz = api.jsz_source();
    // The system API (`$SYS.REQ.*`): this agent answers as one server of the group.
    let sys_api = api
        .sys_api(deps.group)
        .with_health(deps.health)
        .subscribe()?;
    ctx.supervisor
        .spawn("system-api", sys_api.run(shutdown.clone()));
    let api = api.subscribe()?;
    ctx.supervisor.spawn("jetstream-api", api.run(shutdown));
    Ok(jsz)
}

/// Serves `$JS.API.>` for one more JetStream account, `account`, whose streams' ids
/// are `<account>.<name>` (see [`crate::account`]): stream administration and
/// `$JS.API.INFO` for its own streams, with its own `limits`. `deps.broker` may be in
/// any account: the server subscribes in `account`. The stream catalog, the capture
/// of stream subjects and the catalog sync are the agent's ([`start`]). Message reads
/// are served by `routes`' read handler (or forwarded to a proxy-consume peer);
/// consumers in such an account are refused by name (not built yet).
pub fn start_account(
    ctx: &mut RoleContext<'_>,
    deps: ApiDeps,
    routes: &LocalRoutes,
    account: &str,
    limits: AccountLimits,
) -> Result<(), BrokerError> {
    let broker = deps.broker.in_account(account);
    let mut api = ApiServer::new(ApiContext {
        account_limits: limits,
        account: crate::account::JsAccount::prefixed(account),
        broker: broker.clone(),
        cp: deps.cp,
        catalog: deps.catalog,
        clock: ctx.clock.clone(),
        server_name: deps.server_name,
    });
    if let Some((reads, _)) = &routes.consume {
        api = api.with_reads(reads.clone());
    }
    let api = api.subscribe()?;
    broker.serve_jetstream_in(account);
    tracing::info!(account, "JetStream API serving another account");
    let shutdown = ctx.shutdown();
    ctx.supervisor
        .spawn(format!("jetstream-api-{account}"), api.run(shutdown));
    Ok(())
}
