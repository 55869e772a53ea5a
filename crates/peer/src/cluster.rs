//! The group's agents, as routing by connection name, role forwarding and the route
//! mesh see them.
//!
//! The broker owns the protocol side (suffix parsing, `connect_urls`, lame-duck
//! redirects, and the peer choice for forwarded work; see
//! `infinistream_broker::routing` and `infinistream_broker::forward`); this module feeds
//! it the live agents from the control plane's registry, and keeps the route mesh in
//! step with the same list ([`start`]). What is forwarded for a role this agent does
//! not run is decided in `infinistream_jetstream::forward`.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use infinistream_broker::Broker;
use infinistream_broker::routing::{AgentEndpoint, ClusterView};
use infinistream_cp_client::{CallError, ControlPlaneClient};
use infinistream_proto::v1;
use infinistream_runtime::CancellationToken;

use infinistream_runtime::Supervisor;
use infinistream_types::Role;

use crate::PeerPort;
use crate::routes::{self, Mesh};

/// How often the registry is asked for the live agents (one `ListAgents` call).
pub const CLUSTER_REFRESH: Duration = Duration::from_secs(2);

/// The broker's routing identity for agent `agent_id` running `roles` in `zone`.
pub fn local_roles(
    agent_id: &str,
    roles: &std::collections::BTreeSet<Role>,
    zone: &str,
) -> infinistream_broker::routing::LocalRoles {
    infinistream_broker::routing::LocalRoles {
        agent_id: agent_id.to_owned(),
        produce: roles.contains(&Role::ProxyProduce),
        consume: roles.contains(&Role::ProxyConsume),
        zone: zone.to_owned(),
    }
}

/// Starts the route mesh on `port` and the registry refresh that keeps it and the
/// broker's cluster view current. The first list of agents is loaded before this
/// returns (so routing by connection name works for the first client); a failure is
/// logged and retried in the background.
pub async fn start(
    port: &mut PeerPort,
    cp: ControlPlaneClient,
    broker: Broker,
    agent_id: &str,
    supervisor: &mut Supervisor,
) {
    let shutdown = supervisor.shutdown();
    let refresh = Arc::new(Notify::new());
    let mut mesh = routes::register(
        port,
        broker.clone(),
        agent_id,
        refresh.clone(),
        shutdown.clone(),
    );
    match refresh_cluster(&cp, &broker).await {
        Ok(agents) => mesh.update(&agents),
        Err(status) => {
            tracing::warn!(error = %status.message(), "initial agent registry load failed; retrying in the background");
        }
    }
    supervisor.spawn(
        "cluster-view",
        run_cluster_view(cp, broker, mesh, refresh, shutdown),
    );
}

fn view_of(agents: Vec<v1::AgentInfo>) -> ClusterView {
    ClusterView::new(
        agents
            .into_iter()
            .filter(|a| !a.client_address.is_empty())
            .map(|a| AgentEndpoint {
                agent_id: a.agent_id,
                produce: a.roles.iter().any(|r| r == Role::ProxyProduce.as_str()),
                consume: a.roles.iter().any(|r| r == Role::ProxyConsume.as_str()),
                client_url: a.client_address,
                zone: a.zone,
            })
            .collect(),
    )
}

/// Asks the registry for the live agents once, hands them to the broker and returns
/// them.
async fn refresh_cluster(
    cp: &ControlPlaneClient,
    broker: &Broker,
) -> Result<Vec<v1::AgentInfo>, CallError> {
    let agents = cp.list_agents("", "").await?;
    broker.set_cluster(view_of(agents.clone()));
    Ok(agents)
}

/// Keeps the broker's cluster view and the route mesh in step with the registry (one
/// `ListAgents` per refresh for both) until shutdown; keeps the last view and links
/// (and logs once) while the control plane is away.
async fn run_cluster_view(
    cp: ControlPlaneClient,
    broker: Broker,
    mut mesh: Mesh,
    refresh_now: Arc<Notify>,
    shutdown: CancellationToken,
) -> Result<(), std::convert::Infallible> {
    let mut failing = false;
    loop {
        // Every CLUSTER_REFRESH, or at once when a peer this view does not list yet
        // linked to this agent (so work can be forwarded to it without waiting).
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = tokio::time::sleep(CLUSTER_REFRESH) => {}
            () = refresh_now.notified() => {}
        }
        match refresh_cluster(&cp, &broker).await {
            Ok(agents) => {
                mesh.update(&agents);
                if failing {
                    tracing::info!("agent registry refresh works again");
                    failing = false;
                }
            }
            Err(status) if !failing => {
                tracing::warn!(error = %status.message(), "agent registry refresh failed; keeping the last list of agents");
                failing = true;
            }
            Err(_) => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(addr: &str, zone: &str, roles: &[&str]) -> v1::AgentInfo {
        v1::AgentInfo {
            agent_id: addr.to_owned(),
            roles: roles.iter().map(|r| (*r).to_owned()).collect(),
            zone: zone.to_owned(),
            client_address: addr.to_owned(),
            ..v1::AgentInfo::default()
        }
    }

    #[test]
    fn registry_entries_become_endpoints() {
        let view = view_of(vec![
            info("p:4222", "a", &["proxy-produce", "jobs"]),
            info("c:4222", "b", &["proxy-consume"]),
            info("", "a", &["proxy-consume"]),
        ]);
        assert_eq!(
            view.agents(),
            &[
                AgentEndpoint {
                    agent_id: "c:4222".into(),
                    client_url: "c:4222".into(),
                    zone: "b".into(),
                    produce: false,
                    consume: true,
                },
                AgentEndpoint {
                    agent_id: "p:4222".into(),
                    client_url: "p:4222".into(),
                    zone: "a".into(),
                    produce: true,
                    consume: false,
                },
            ],
            "agents without a client address are left out"
        );
    }
}
