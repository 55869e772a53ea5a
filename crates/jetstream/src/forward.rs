//! Requests for a role this agent does not run: forwarded to a peer agent that runs it.
//!
//! Any agent serves any request; roles decide where the work runs. On an agent without
//! a role, what that role would serve goes over the peer links to an agent that runs
//! it ([`infinistream_broker::forward`] picks the peer and carries the message; the
//! answer comes back through the route mesh like any reply):
//!
//! - without proxy-consume: stream reads (`STREAM.MSG.GET`, `DIRECT.GET`), the
//!   consumer API including `CONSUMER.MSG.NEXT` ([`ConsumeForwarder`]), and the acks
//!   and flow-control replies clients send for deliveries ([`forward_consumer_replies`]);
//! - without proxy-produce: publishes to stream subjects ([`forward_publishes`]), to
//!   the produce agent's capture, which stores each exactly once and sends the PubAck.
//!
//! Work for one stream goes to one peer while the membership holds (rendezvous hashing
//! on the stream name), so one connection's publishes to a stream keep their order.
//! Only when no linked agent of the group runs the role does the client get an error,
//! in the protocol's own form: JetStream API error JSON (503, 10008, naming where the
//! role runs), a `400` status message for a pull request, a PubAck error for a publish
//! with a reply subject. A publish without a reply subject has no answer to carry an
//! error; it is logged and counted, never answered with a connection-closing `-ERR`.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use infinistream_broker::routing::ProxyRole;
use infinistream_broker::{Broker, BrokerError, Forwarded, InternalMsg, InternalTarget};
use infinistream_protocol::jsapi::ack::AckSubject;
use infinistream_protocol::jsapi::msg::{render_pub_ack, status_header};
use infinistream_protocol::jsapi::response::types;
use infinistream_protocol::jsapi::subjects::ApiRoute;
use infinistream_protocol::jsapi::{ApiError, codes, render_error};
use tokio_util::sync::CancellationToken;

use crate::catalog::{StreamCatalog, serve_stream_subjects};
use crate::context::{Reply, RouteHandler};

/// What a client is told about a role no reachable agent runs.
pub fn role_missing_text(broker: &Broker, role: ProxyRole, what: &str) -> String {
    let at = broker.agents_running(role);
    let place = if at.is_empty() {
        "no live agent of this group runs it now".to_owned()
    } else {
        format!("agents that run it: {}", at.join(", "))
    };
    format!(
        "this InfiniStream agent does not run the {role} role ({what}) and cannot reach an agent that does; {place}"
    )
}

/// The JetStream API error for a role no reachable agent runs (the code nats-server
/// uses for "JetStream system temporarily unavailable").
pub fn role_missing(broker: &Broker, role: ProxyRole, what: &str) -> ApiError {
    ApiError::with_description(
        codes::CLUSTER_NOT_AVAIL,
        role_missing_text(broker, role, what),
    )
}

/// Forwards `msg` to the peer that takes `role` work for `key`; false when none took it.
fn forward_to_role(
    broker: &Broker,
    role: ProxyRole,
    key: &str,
    msg: &InternalMsg,
    target: InternalTarget,
) -> bool {
    let Some(peer) = broker.role_peer(role, key.as_bytes()) else {
        return false;
    };
    match broker.forward(&peer, msg, target) {
        Forwarded::Sent => {
            tracing::trace!(%peer, subject = %msg.subject, "forwarded to a peer agent running {role}");
            true
        }
        outcome => {
            tracing::debug!(%peer, ?outcome, subject = %msg.subject, "could not forward to a peer agent running {role}");
            false
        }
    }
}

/// Serves stream reads or the consumer API on an agent without proxy-consume by
/// forwarding each request to a proxy-consume peer.
#[derive(Debug)]
pub struct ConsumeForwarder {
    broker: Broker,
    what: &'static str,
}

impl ConsumeForwarder {
    /// For `STREAM.MSG.GET` and `DIRECT.GET`.
    pub fn reads(broker: Broker) -> Arc<dyn RouteHandler> {
        Arc::new(ConsumeForwarder {
            broker,
            what: "message reads",
        })
    }

    /// For the consumer API.
    pub fn consumers(broker: Broker) -> Arc<dyn RouteHandler> {
        Arc::new(ConsumeForwarder {
            broker,
            what: "consumers",
        })
    }
}

#[async_trait]
impl RouteHandler for ConsumeForwarder {
    async fn handle(&self, route: ApiRoute, msg: InternalMsg) -> Option<Reply> {
        let key = route.stream().unwrap_or_default();
        if forward_to_role(
            &self.broker,
            ProxyRole::Consume,
            key,
            &msg,
            InternalTarget::Handlers,
        ) {
            // The peer answers the requester directly.
            return None;
        }
        match route {
            ApiRoute::ConsumerMsgNext { .. } => {
                // A pull request's inbox carries messages and status messages; answer
                // with a status a client reports as an error, as for a bad pull request.
                return Some(status_reply(&self.broker, 400, "pull requests"));
            }
            ApiRoute::DirectGet(_) | ApiRoute::DirectGetLastBySubject { .. } => {
                // A direct get is answered with the message or a status, never JSON (a
                // client reads a JSON body as a message without headers). A `500` with
                // the reason, as the read handler's failures: clients turn a `503` into
                // a bare "no responders" and would hide it.
                return Some(status_reply(&self.broker, 500, "message reads"));
            }
            _ => {}
        }
        let kind = route.response_type().unwrap_or(types::SYSTEM);
        Some(Reply::json(render_error(
            kind,
            &role_missing(&self.broker, ProxyRole::Consume, self.what),
        )))
    }
}

/// A status message (`NATS/1.0 <code> <why>`) saying that no reachable agent runs
/// proxy-consume for `what`.
fn status_reply(broker: &Broker, code: u16, what: &str) -> Reply {
    let text = role_missing_text(broker, ProxyRole::Consume, what).replace(['\r', '\n'], " ");
    Reply {
        headers: Some(Bytes::from(status_header(code, &text))),
        payload: Bytes::new(),
    }
}

/// On an agent without proxy-consume: forwards the acks (`$JS.ACK.>`) and flow-control
/// replies (`$JS.FC.>`) its clients send to the proxy-consume agents, until shutdown.
/// An ack goes to one peer (any proxy-consume agent applies it to the consumer's state
/// in the control plane); a flow-control reply to every peer running the role (only the
/// one serving that push consumer waits for it).
pub async fn forward_consumer_replies(
    broker: Broker,
    shutdown: CancellationToken,
) -> Result<(), BrokerError> {
    let mut acks = broker.subscribe_internal("$JS.ACK.>", None, 65_536)?;
    let mut flow = broker.subscribe_internal("$JS.FC.>", None, 1024)?;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            msg = acks.recv() => {
                let Some(msg) = msg else { return Ok(()) };
                // The stream (v1 `$JS.ACK.<stream>.…` or v2 `$JS.ACK.<domain>.<account
                // hash>.<stream>.…`) keeps one consumer's acks on one peer.
                let stream = ack_stream(&msg.subject);
                if !forward_to_role(&broker, ProxyRole::Consume, &stream, &msg, InternalTarget::Handlers) {
                    tracing::debug!(subject = %msg.subject, "ack dropped: no reachable proxy-consume agent (the delivery is redelivered after ack_wait)");
                }
            }
            msg = flow.recv() => {
                let Some(msg) = msg else { return Ok(()) };
                for peer in broker.role_peers(ProxyRole::Consume) {
                    broker.forward(&peer, &msg, InternalTarget::Handlers);
                }
            }
        }
    }
}

/// The stream an ack subject names, in either form; a malformed one is still
/// forwarded (the consumer agent ignores it as nats-server does), keyed by its third
/// token.
fn ack_stream(subject: &str) -> String {
    match AckSubject::parse(subject) {
        Ok(ack) => ack.stream,
        Err(_) => subject.split('.').nth(2).unwrap_or_default().to_owned(),
    }
}

/// On an agent without proxy-produce: serves the catalog's stream subjects by
/// forwarding each publish to a proxy-produce peer's capture, until shutdown.
pub async fn forward_publishes(
    broker: Broker,
    catalog: StreamCatalog,
    shutdown: CancellationToken,
) -> Result<(), std::convert::Infallible> {
    let forward = {
        let broker = broker.clone();
        move |stream: Arc<str>, msg: InternalMsg| {
            let target = InternalTarget::Capture(stream.clone());
            if !forward_to_role(&broker, ProxyRole::Produce, &stream, &msg, target) {
                refuse_publish(&broker, &stream, &msg);
            }
            std::future::ready(())
        }
    };
    // Sealed streams too: the produce agent answers their publishes with the error.
    serve_stream_subjects(broker, catalog, 256, true, forward, shutdown).await
}

fn refuse_publish(broker: &Broker, stream: &str, msg: &InternalMsg) {
    let what = format!("publishes to stream `{stream}`");
    match &msg.reply {
        Some(reply) => {
            let error = role_missing(broker, ProxyRole::Produce, &what);
            let body = render_pub_ack(&Err((stream.to_owned(), error)));
            broker.publish(reply, None, None, Bytes::from(body));
        }
        None => {
            tracing::warn!(
                stream,
                subject = %msg.subject,
                "publish without a reply subject dropped: no reachable agent runs proxy-produce"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use infinistream_broker::BrokerConfig;
    use infinistream_broker::routing::{AgentEndpoint, ClusterView, LocalRoles};

    /// A KV get (direct get by last subject) on an agent that can reach no
    /// proxy-consume agent is answered with a status the client reports as an error,
    /// not with a JSON body it would read as a message without headers.
    #[tokio::test]
    async fn a_direct_get_nobody_can_serve_is_answered_with_a_status() {
        let broker = Broker::new(BrokerConfig::default());
        let reads = ConsumeForwarder::reads(broker);
        for subject in ["$JS.API.DIRECT.GET.KV_b.$KV.b.k", "$JS.API.DIRECT.GET.KV_b"] {
            let msg = InternalMsg {
                subject: subject.into(),
                reply: Some("_INBOX.1".into()),
                headers: None,
                payload: Bytes::new(),
                client_id: 1,
                capture_stream: None,
            };
            let route = ApiRoute::from_subject(subject).expect("an API route");
            let reply = reads.handle(route, msg).await.expect("answered here");
            let headers = reply.headers.expect("a status, not a JSON body");
            let text = String::from_utf8_lossy(&headers);
            assert!(
                text.starts_with(
                    "NATS/1.0 500 this InfiniStream agent does not run the proxy-consume role"
                ),
                "{text}"
            );
            assert!(reply.payload.is_empty());
        }
    }

    #[test]
    fn role_errors_name_where_the_role_runs() {
        let broker = Broker::new(BrokerConfig {
            roles: LocalRoles {
                produce: true,
                consume: false,
                zone: "a".into(),
                agent_id: String::new(),
            },
            ..Default::default()
        });
        let text = role_missing_text(&broker, ProxyRole::Consume, "consumers");
        assert!(
            text.contains("no live agent of this group runs it now"),
            "{text}"
        );
        let consume = |url: &str, zone: &str| AgentEndpoint {
            client_url: url.into(),
            zone: zone.into(),
            produce: false,
            consume: true,
            agent_id: url.into(),
        };
        broker.set_cluster(ClusterView::new(vec![
            consume("c-b:4222", "b"),
            consume("c-a:4222", "a"),
        ]));
        let text = role_missing_text(&broker, ProxyRole::Consume, "consumers");
        assert!(
            text.contains("does not run the proxy-consume role (consumers)")
                && text.contains("agents that run it: c-a:4222"),
            "this zone's agent only: {text}"
        );
    }
}
