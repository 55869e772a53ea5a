//! Wires routing by connection name to the agent registry, and refuses requests for
//! roles this agent does not run, naming the agents that do.
//!
//! The broker owns the protocol side (suffix parsing, `connect_urls`, lame-duck
//! redirects; see `infinistream_broker::routing`); this module feeds it the live
//! agents from the control plane's registry and answers, on an agent without a role:
//! - proxy-consume missing: stream reads and the consumer API get nats-server's
//!   JetStream API error JSON, and `CONSUMER.MSG.NEXT` a `400` status message (a pull
//!   client reads status messages there, not API JSON), both naming the agents to use;
//! - proxy-produce missing: a publish to a stream subject gets a PubAck error when it
//!   has a reply subject, else `-ERR` on the publishing connection (it stays open).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use infinistream_broker::routing::{AgentEndpoint, ClusterView, ProxyRole};
use infinistream_broker::{Broker, InternalMsg};
use infinistream_control_plane::ControlPlaneClient;
use infinistream_jetstream::{Reply, RouteHandler, StreamCatalog, serve_stream_subjects};
use infinistream_proto::v1;
use infinistream_protocol::jsapi::msg::render_pub_ack;
use infinistream_protocol::jsapi::response::types;
use infinistream_protocol::jsapi::subjects::ApiRoute;
use infinistream_protocol::jsapi::{ApiError, codes, render_error};
use infinistream_runtime::CancellationToken;

use crate::routes::Mesh;
use infinistream_types::Role;

/// How often the registry is asked for the live agents (one `ListAgents` call).
pub const CLUSTER_REFRESH: Duration = Duration::from_secs(2);

/// The broker's routing identity for an agent running `roles` in `zone`.
pub fn local_roles(
    roles: &std::collections::BTreeSet<Role>,
    zone: &str,
) -> infinistream_broker::routing::LocalRoles {
    infinistream_broker::routing::LocalRoles {
        produce: roles.contains(&Role::ProxyProduce),
        consume: roles.contains(&Role::ProxyConsume),
        zone: zone.to_owned(),
    }
}

fn view_of(agents: Vec<v1::AgentInfo>) -> ClusterView {
    ClusterView::new(
        agents
            .into_iter()
            .filter(|a| !a.client_address.is_empty())
            .map(|a| AgentEndpoint {
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
pub async fn refresh_cluster(
    cp: &ControlPlaneClient,
    broker: &Broker,
) -> Result<Vec<v1::AgentInfo>, tonic::Status> {
    let agents = cp
        .agents
        .clone()
        .list_agents(v1::ListAgentsRequest {
            role: String::new(),
            zone: String::new(),
        })
        .await?
        .into_inner()
        .agents;
    broker.set_cluster(view_of(agents.clone()));
    Ok(agents)
}

/// Keeps the broker's cluster view and the route mesh in step with the registry (one
/// `ListAgents` per refresh for both) until shutdown; keeps the last view and links
/// (and logs once) while the control plane is away.
pub async fn run_cluster_view(
    cp: ControlPlaneClient,
    broker: Broker,
    mut mesh: Mesh,
    shutdown: CancellationToken,
) -> Result<(), std::convert::Infallible> {
    let mut failing = false;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = tokio::time::sleep(CLUSTER_REFRESH) => {}
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

/// What a client is told about a role this agent does not run.
fn role_missing_text(broker: &Broker, role: ProxyRole, what: &str) -> String {
    let at = broker.agents_running(role);
    let place = if at.is_empty() {
        "no live agent of this group runs it now".to_owned()
    } else {
        format!("agents that run it: {}", at.join(", "))
    };
    format!(
        "this InfiniStream agent does not run the {role} role ({what}); {place}; connect there, e.g. with a connection name ending in `,infinistream_proxy_target={role}`"
    )
}

/// The JetStream API error for a role this agent does not run (the code nats-server
/// uses for "JetStream system temporarily unavailable").
fn role_missing_error(broker: &Broker, role: ProxyRole, what: &str) -> ApiError {
    ApiError::with_description(
        codes::CLUSTER_NOT_AVAIL,
        role_missing_text(broker, role, what),
    )
}

/// Answers stream reads and the consumer API on an agent without proxy-consume.
#[derive(Debug)]
pub struct ConsumeRefusal {
    broker: Broker,
    what: &'static str,
}

impl ConsumeRefusal {
    pub fn reads(broker: Broker) -> Arc<dyn RouteHandler> {
        Arc::new(ConsumeRefusal {
            broker,
            what: "message reads",
        })
    }

    pub fn consumers(broker: Broker) -> Arc<dyn RouteHandler> {
        Arc::new(ConsumeRefusal {
            broker,
            what: "consumers",
        })
    }
}

#[async_trait]
impl RouteHandler for ConsumeRefusal {
    async fn handle(&self, route: ApiRoute, msg: InternalMsg) -> Option<Reply> {
        tracing::debug!(subject = %msg.subject, "refusing a proxy-consume request: role not run here");
        if matches!(route, ApiRoute::ConsumerMsgNext { .. }) {
            // A pull request's inbox carries messages and status messages; answer with
            // a status a client reports as an error, as for a bad pull request.
            let text = role_missing_text(&self.broker, ProxyRole::Consume, "pull requests")
                .replace(['\r', '\n'], " ");
            return Some(Reply {
                headers: Some(Bytes::from(format!("NATS/1.0 400 {text}\r\n\r\n"))),
                payload: Bytes::new(),
            });
        }
        let kind = route.response_type().unwrap_or(types::SYSTEM);
        Some(Reply::json(render_error(
            kind,
            &role_missing_error(&self.broker, ProxyRole::Consume, self.what),
        )))
    }
}

/// Refuses publishes to stream subjects on an agent without proxy-produce: serves the
/// catalog's stream subjects as the produce role's capture does, answering each
/// publish with the error instead of storing it.
pub async fn refuse_produce(
    broker: Broker,
    catalog: StreamCatalog,
    shutdown: CancellationToken,
) -> Result<(), std::convert::Infallible> {
    let refuse = {
        let broker = broker.clone();
        move |stream: Arc<str>, msg: InternalMsg| {
            refuse_publish(&broker, &stream, msg);
            std::future::ready(())
        }
    };
    serve_stream_subjects(broker, catalog, 256, true, refuse, shutdown).await
}

fn refuse_publish(broker: &Broker, stream: &str, msg: InternalMsg) {
    let what = format!("publishes to stream `{stream}`");
    match &msg.reply {
        Some(reply) => {
            let error = role_missing_error(broker, ProxyRole::Produce, &what);
            let body = render_pub_ack(&Err((stream.to_owned(), error)));
            broker.publish(reply, None, None, Bytes::from(body));
        }
        None if msg.client_id != 0 => {
            let text = role_missing_text(broker, ProxyRole::Produce, &what);
            broker.send_client_error(msg.client_id, &text.replace('\'', "`"));
        }
        None => {}
    }
    tracing::debug!(stream, subject = %msg.subject, "refused a publish: proxy-produce not run here");
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
                    client_url: "c:4222".into(),
                    zone: "b".into(),
                    produce: false,
                    consume: true,
                },
                AgentEndpoint {
                    client_url: "p:4222".into(),
                    zone: "a".into(),
                    produce: true,
                    consume: false,
                },
            ],
            "agents without a client address are left out"
        );
    }

    #[test]
    fn role_errors_name_where_the_role_runs() {
        let broker = Broker::new(infinistream_broker::BrokerConfig {
            roles: local_roles(&[Role::ProxyProduce].into(), "a"),
            ..Default::default()
        });
        let text = role_missing_text(&broker, ProxyRole::Consume, "consumers");
        assert!(
            text.contains("no live agent of this group runs it now"),
            "{text}"
        );
        broker.set_cluster(view_of(vec![
            info("c-b:4222", "b", &["proxy-consume"]),
            info("c-a:4222", "a", &["proxy-consume"]),
        ]));
        let text = role_missing_text(&broker, ProxyRole::Consume, "consumers");
        assert!(
            text.contains("does not run the proxy-consume role (consumers)")
                && text.contains("agents that run it: c-a:4222;"),
            "this zone's agent only: {text}"
        );
    }
}
