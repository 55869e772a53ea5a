//! The route mesh: core NATS subjects across the agents of a group.
//!
//! Every agent serves `Routes.Link` on its peer port and links to every other live
//! agent in the control plane's registry (a full mesh: the agent whose id sorts lower
//! dials, so each pair has one link). A link is one bidirectional gRPC stream; each
//! direction starts with a hello naming its agent, then carries that agent's client
//! interest and the messages the other side's clients want, as the broker hands them
//! out (`infinistream_broker::peer` has the routing rules). A broken link forgets the
//! peer's interest at once and is dialled again while the peer is in the registry;
//! HTTP/2 keep-alives find a peer that vanished without closing its connection.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt};
use infinistream_broker::{Broker, InternalTarget, Peer, PeerFrame, PeerMsg, account_or_default};
use infinistream_cp_client::tls::PeerDialer;
use infinistream_proto::v1;
use infinistream_proto::v1::route_frame::Kind;
use infinistream_proto::v1::route_msg::Internal;
use infinistream_proto::v1::routes_client::RoutesClient;
use infinistream_runtime::CancellationToken;
use tonic::{Request, Response, Status, Streaming};

use crate::PeerPort;

/// Wait before dialling a peer again after its link failed or closed.
const REDIAL: Duration = Duration::from_secs(1);
/// Frames sent in one batch, about (a single larger message goes alone).
const BATCH_BYTES: usize = 1 << 20;
/// Largest batch accepted: a batch plus one message of the largest payload nats-server
/// allows (64 MiB), with room for its frame.
pub const MAX_BATCH_BYTES: usize = BATCH_BYTES + (64 << 20) + (1 << 20);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Why a link ended or could not start.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("cannot reach the peer: {0}")]
    Connect(#[from] tonic::transport::Error),
    #[error("the peer refused or broke the route: {}", .0.message())]
    Status(#[from] Status),
    #[error("malformed route frame: {0}")]
    Malformed(&'static str),
}

/// The `Routes` service: the side of each link the lower-sorting peer dialled.
#[derive(Debug, Clone)]
struct RoutesService {
    broker: Broker,
    agent_id: String,
    /// Wakes the registry refresh when a peer the cluster view does not list links.
    refresh_view: Arc<tokio::sync::Notify>,
    /// Ends every accepted route (the peer port's graceful shutdown waits for them).
    shutdown: CancellationToken,
}

impl RoutesService {
    fn new(
        broker: Broker,
        agent_id: String,
        refresh_view: Arc<tokio::sync::Notify>,
        shutdown: CancellationToken,
    ) -> Self {
        RoutesService {
            broker,
            agent_id,
            refresh_view,
            shutdown,
        }
    }

    /// The gRPC server for this service, with the route size limits.
    fn into_server(self) -> v1::routes_server::RoutesServer<Self> {
        v1::routes_server::RoutesServer::new(self)
            .max_decoding_message_size(MAX_BATCH_BYTES)
            .max_encoding_message_size(MAX_BATCH_BYTES)
    }
}

type BatchStream = Pin<Box<dyn Stream<Item = Result<v1::RouteBatch, Status>> + Send>>;

#[tonic::async_trait]
impl v1::routes_server::Routes for RoutesService {
    type LinkStream = BatchStream;

    async fn link(
        &self,
        request: Request<Streaming<v1::RouteBatch>>,
    ) -> Result<Response<BatchStream>, Status> {
        let mut inbound = request.into_inner();
        let first = inbound
            .message()
            .await?
            .ok_or_else(|| Status::invalid_argument("the route ended before its hello"))?;
        let (peer_id, rest) =
            split_hello(first).map_err(|e| Status::invalid_argument(e.to_string()))?;
        if peer_id == self.agent_id {
            return Err(Status::invalid_argument(
                "a route from this agent to itself",
            ));
        }
        let span = tracing::info_span!("route", peer = %peer_id, side = "accepted");
        let peer = Arc::new(self.broker.attach_peer(&peer_id));
        let rest = frames(rest).map_err(|e| Status::invalid_argument(e.to_string()))?;
        peer.receive(rest);
        tracing::info!(parent: &span, peer = %peer_id, "route from peer agent {peer_id} up");
        let listed = self
            .broker
            .cluster()
            .is_some_and(|view| view.agents().iter().any(|a| a.agent_id == peer_id));
        if !listed {
            // A new agent: learn its roles now, not at the next periodic refresh.
            self.refresh_view.notify_one();
        }
        let reader = peer.clone();
        let shutdown = self.shutdown.clone();
        tokio::spawn(tracing::Instrument::instrument(
            async move {
                let ended = tokio::select! {
                    ended = read_inbound(&reader, &mut inbound) => ended,
                    () = shutdown.cancelled() => Ok(()),
                };
                // Also ends the answer stream below (the link is closed).
                reader.close();
                match ended {
                    Ok(()) => tracing::info!("route closed by the peer"),
                    Err(e) => tracing::info!(error = %e, "route broke"),
                }
            },
            span,
        ));
        Ok(Response::new(Box::pin(
            outbound(peer, Some(self.agent_id.clone()))
                .take_until(self.shutdown.clone().cancelled_owned())
                .map(Ok),
        )))
    }
}

/// Registers the `Routes` service on `port` and returns the mesh of links this agent
/// dials. `refresh_view` is notified when a peer the broker's cluster view does not list
/// yet links to this agent; every accepted route ends on `shutdown`.
pub fn register(
    port: &mut PeerPort,
    broker: Broker,
    agent_id: &str,
    refresh_view: Arc<tokio::sync::Notify>,
    shutdown: CancellationToken,
) -> Mesh {
    port.register(
        RoutesService::new(
            broker.clone(),
            agent_id.to_owned(),
            refresh_view,
            shutdown.clone(),
        )
        .into_server(),
    );
    Mesh::new(broker, agent_id.to_owned(), port.dialer(), shutdown)
}

/// This agent's dialled links, kept in step with the registry by the agent's one
/// registry refresh ([`crate::cluster::run_cluster_view`]).
#[derive(Debug)]
pub struct Mesh {
    broker: Broker,
    agent_id: String,
    dialer: PeerDialer,
    shutdown: CancellationToken,
    /// Peer id → (its peer address, the token ending its dial task).
    links: HashMap<String, (String, CancellationToken)>,
}

impl Mesh {
    fn new(
        broker: Broker,
        agent_id: String,
        dialer: PeerDialer,
        shutdown: CancellationToken,
    ) -> Self {
        Mesh {
            broker,
            agent_id,
            dialer,
            shutdown,
            links: HashMap::new(),
        }
    }

    /// Dials the live agents this one should (those whose id sorts higher) and ends
    /// the links to agents gone from the registry or moved to another address.
    pub fn update(&mut self, agents: &[v1::AgentInfo]) {
        let wanted: HashMap<&str, &str> = agents
            .iter()
            .filter(|a| a.agent_id > self.agent_id && !a.peer_address.is_empty())
            .map(|a| (a.agent_id.as_str(), a.peer_address.as_str()))
            .collect();
        self.links.retain(|id, (addr, token)| {
            let keep = wanted.get(id.as_str()) == Some(&addr.as_str());
            if !keep {
                token.cancel();
            }
            keep
        });
        for (id, addr) in wanted {
            if self.links.contains_key(id) {
                continue;
            }
            let token = self.shutdown.child_token();
            tokio::spawn(tracing::Instrument::instrument(
                dial(
                    self.broker.clone(),
                    self.agent_id.clone(),
                    id.to_owned(),
                    addr.to_owned(),
                    self.dialer.clone(),
                    token.clone(),
                ),
                tracing::info_span!("route", peer = %id, side = "dialled"),
            ));
            self.links.insert(id.to_owned(), (addr.to_owned(), token));
        }
    }
}

impl Drop for Mesh {
    fn drop(&mut self) {
        for (_, token) in self.links.values() {
            token.cancel();
        }
    }
}

/// Keeps one link to `peer_id` up until `token` is cancelled (the peer left the
/// registry, or shutdown).
async fn dial(
    broker: Broker,
    agent_id: String,
    peer_id: String,
    addr: String,
    dialer: PeerDialer,
    token: CancellationToken,
) {
    let mut failures = 0u32;
    while !token.is_cancelled() {
        match link_once(&broker, &agent_id, &peer_id, &addr, &dialer, &token).await {
            Ok(()) => {
                failures = 0;
                tracing::info!(%addr, "route to peer agent {peer_id} closed");
            }
            Err(e) => {
                // One line per outage, not per attempt.
                if failures == 0 {
                    tracing::warn!(%addr, error = %e, "route to peer agent {peer_id} failed; redialling every {REDIAL:?}");
                }
                failures += 1;
            }
        }
        tokio::select! {
            () = token.cancelled() => break,
            () = tokio::time::sleep(REDIAL) => {}
        }
    }
}

async fn link_once(
    broker: &Broker,
    agent_id: &str,
    peer_id: &str,
    addr: &str,
    dialer: &PeerDialer,
    token: &CancellationToken,
) -> Result<(), LinkError> {
    let channel = dialer
        .endpoint(addr)?
        .connect_timeout(CONNECT_TIMEOUT)
        .tcp_nodelay(true)
        .initial_stream_window_size(crate::STREAM_WINDOW)
        .initial_connection_window_size(crate::CONNECTION_WINDOW)
        .http2_keep_alive_interval(crate::KEEPALIVE)
        .keep_alive_timeout(crate::KEEPALIVE)
        .keep_alive_while_idle(true)
        .connect()
        .await?;
    let mut client = RoutesClient::with_interceptor(channel, dialer.auth.clone())
        .max_decoding_message_size(MAX_BATCH_BYTES)
        .max_encoding_message_size(MAX_BATCH_BYTES);
    let peer = Arc::new(broker.attach_peer(peer_id));
    let result = async {
        let mut inbound = client
            .link(outbound(peer.clone(), Some(agent_id.to_owned())))
            .await?
            .into_inner();
        let first = inbound
            .message()
            .await?
            .ok_or(LinkError::Malformed("the route ended before its hello"))?;
        let (their_id, rest) = split_hello(first)?;
        if their_id != peer_id {
            // The registry's address now belongs to another agent: dial again later.
            return Err(LinkError::Malformed(
                "the peer answered with another agent id",
            ));
        }
        peer.receive(frames(rest)?);
        tracing::info!(%addr, "route to peer agent {peer_id} up");
        tokio::select! {
            ended = read_inbound(&peer, &mut inbound) => ended,
            () = token.cancelled() => Ok(()),
        }
    }
    .await;
    peer.close();
    result
}

/// Applies the peer's batches until its stream ends.
async fn read_inbound(
    peer: &Peer,
    inbound: &mut Streaming<v1::RouteBatch>,
) -> Result<(), LinkError> {
    while let Some(batch) = inbound.message().await? {
        if peer.is_closed() {
            return Ok(());
        }
        peer.receive(frames(batch.frames)?);
    }
    Ok(())
}

/// This side's frames: the hello, then whatever the broker queues for the peer.
fn outbound(peer: Arc<Peer>, hello: Option<String>) -> impl Stream<Item = v1::RouteBatch> {
    futures::stream::unfold((peer, hello), |(peer, hello)| async move {
        if let Some(agent_id) = hello {
            let batch = v1::RouteBatch {
                frames: vec![v1::RouteFrame {
                    kind: Some(Kind::Hello(v1::RouteHello { agent_id })),
                }],
            };
            return Some((batch, (peer, None)));
        }
        let batch = peer.next_batch(BATCH_BYTES).await?;
        Some((to_proto(batch), (peer, None)))
    })
}

/// The hello's agent id and the frames after it.
fn split_hello(batch: v1::RouteBatch) -> Result<(String, Vec<v1::RouteFrame>), LinkError> {
    let mut frames = batch.frames.into_iter();
    match frames.next().and_then(|f| f.kind) {
        Some(Kind::Hello(h)) if !h.agent_id.is_empty() => Ok((h.agent_id, frames.collect())),
        _ => Err(LinkError::Malformed(
            "a route must start with a hello naming its agent",
        )),
    }
}

fn frames(frames: Vec<v1::RouteFrame>) -> Result<Vec<PeerFrame>, LinkError> {
    frames
        .into_iter()
        .map(|f| match f.kind {
            Some(Kind::Interest(i)) => Ok(PeerFrame::Interest {
                account: account_or_default(&i.account),
                subject: i.subject,
                queue: i.queue,
                add: i.add,
            }),
            Some(Kind::Msg(m)) => Ok(PeerFrame::Msg(PeerMsg {
                account: account_or_default(&m.account),
                internal: match m.internal {
                    None => None,
                    Some(Internal::Handlers(_)) => Some(InternalTarget::Handlers),
                    Some(Internal::CaptureStream(stream)) if !stream.is_empty() => {
                        Some(InternalTarget::Capture(stream.into()))
                    }
                    Some(Internal::CaptureStream(_)) => {
                        return Err(LinkError::Malformed("a capture forward without a stream"));
                    }
                },
                subject: m.subject,
                deliver: m.deliver,
                reply: m.reply,
                headers: m.headers,
                payload: m.payload,
                plain: m.plain,
                queues: m.queues,
            })),
            Some(Kind::Hello(_)) => Err(LinkError::Malformed("a second hello on one route")),
            None => Err(LinkError::Malformed("an empty route frame")),
        })
        .collect()
}

fn to_proto(frames: Vec<PeerFrame>) -> v1::RouteBatch {
    v1::RouteBatch {
        frames: frames
            .into_iter()
            .map(|f| v1::RouteFrame {
                kind: Some(match f {
                    PeerFrame::Interest {
                        account,
                        subject,
                        queue,
                        add,
                    } => Kind::Interest(v1::RouteInterest {
                        subject,
                        queue,
                        add,
                        account: account.to_string(),
                    }),
                    PeerFrame::Msg(m) => Kind::Msg(v1::RouteMsg {
                        account: m.account.to_string(),
                        subject: m.subject,
                        deliver: m.deliver,
                        reply: m.reply,
                        headers: m.headers,
                        payload: m.payload,
                        plain: m.plain,
                        queues: m.queues,
                        internal: m.internal.map(|target| match target {
                            InternalTarget::Handlers => Internal::Handlers(v1::InternalHandlers {}),
                            InternalTarget::Capture(stream) => {
                                Internal::CaptureStream(stream.to_string())
                            }
                        }),
                    }),
                }),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn frames_round_trip_through_the_wire_form() {
        let sent = vec![
            PeerFrame::Interest {
                account: "A".into(),
                subject: Bytes::from_static(b"orders.*"),
                queue: Some(Bytes::from_static(b"workers")),
                add: true,
            },
            PeerFrame::Msg(PeerMsg {
                account: "$G".into(),
                subject: Bytes::from_static(b"orders.new"),
                deliver: Some(Bytes::from_static(b"_INBOX.deliver")),
                reply: Some(Bytes::from_static(b"_INBOX.x")),
                headers: Some(Bytes::from_static(b"NATS/1.0\r\nA: b\r\n\r\n")),
                payload: Bytes::from_static(b"hello"),
                plain: true,
                queues: vec![Bytes::from_static(b"workers")],
                internal: None,
            }),
            PeerFrame::Msg(PeerMsg {
                account: "$G".into(),
                subject: Bytes::from_static(b"a"),
                deliver: None,
                reply: None,
                headers: None,
                payload: Bytes::new(),
                plain: false,
                queues: Vec::new(),
                internal: None,
            }),
            PeerFrame::Msg(PeerMsg {
                account: "$G".into(),
                subject: Bytes::from_static(b"$JS.API.CONSUMER.INFO.S.C"),
                deliver: None,
                reply: Some(Bytes::from_static(b"_INBOX.y")),
                headers: None,
                payload: Bytes::new(),
                plain: false,
                queues: Vec::new(),
                internal: Some(InternalTarget::Handlers),
            }),
            PeerFrame::Msg(PeerMsg {
                account: "$G".into(),
                subject: Bytes::from_static(b"orders.new"),
                deliver: None,
                reply: None,
                headers: None,
                payload: Bytes::from_static(b"x"),
                plain: false,
                queues: Vec::new(),
                internal: Some(InternalTarget::Capture("ORDERS".into())),
            }),
        ];
        let wire = to_proto(sent.clone());
        assert_eq!(frames(wire.frames).expect("well formed"), sent);
    }

    #[test]
    fn a_route_must_open_with_one_hello() {
        let hello = v1::RouteFrame {
            kind: Some(Kind::Hello(v1::RouteHello {
                agent_id: "agent-b".into(),
            })),
        };
        let (id, rest) = split_hello(v1::RouteBatch {
            frames: vec![hello.clone()],
        })
        .expect("hello");
        assert_eq!(id, "agent-b");
        assert!(rest.is_empty());
        assert!(split_hello(v1::RouteBatch { frames: vec![] }).is_err());
        assert!(
            split_hello(v1::RouteBatch {
                frames: vec![v1::RouteFrame { kind: None }]
            })
            .is_err()
        );
        assert!(frames(vec![hello]).is_err(), "a second hello is refused");
    }
}
