//! The JetStream consumer API of the proxy-consume role.
//!
//! Consumer state (delivered, ack floor, pending deliveries with deadlines,
//! redelivery counts) lives in the control plane; this module is the agent side that
//! makes it look like nats-server to unmodified clients:
//!
//! - [`admin`]: `CONSUMER.CREATE` / `DURABLE.CREATE` / `INFO` / `DELETE` / `LIST` /
//!   `NAMES`, config checks and defaults with nats-server's error codes; the full
//!   config is stored as JSON in the control plane;
//! - [`store`]: the consumer records in the control plane;
//! - [`runtime`]: one per consumer this agent serves, driven by one task: [`pull`]
//!   (parked `CONSUMER.MSG.NEXT` requests with batch / expires / no_wait / max_bytes /
//!   heartbeats and their status replies) or [`push`] (delivery to the deliver subject
//!   with flow control and idle heartbeats). Deliveries are *claimed* from the control
//!   plane ([`claim`]: any agent can serve any consumer, and two agents never hold one
//!   message at once), bodies read through the [`StreamReader`](crate::StreamReader),
//!   paced by [`pace`] for replay original and rate limits;
//! - [`acks`]: the `$JS.ACK.>` subscriber; acks arriving within a few milliseconds are
//!   coalesced into one Acknowledge per consumer and kind, and an ack sent with a reply
//!   subject is answered only once the control plane confirmed it;
//! - [`reset`]: `CONSUMER.RESET`, the delivery state moved in the control plane;
//! - [`wake`]: how parked consumers learn that a Claim may return something;
//! - [`events`]: the consumer advisories; [`pause_expiry`] the one for a pause that
//!   ends by itself; [`sampling`] the ack metrics of `sample_freq`.
//!
//! The modules depend one way: `store`, `wake` and `events` on nothing here; `runtime` on
//! `store`; `claim` on `runtime`; `pull` and `push` on `claim`; `admin` and `acks` on
//! `runtime`; `pace` on `claim`; `pause_expiry` on `store` and `events`; `reset` on
//! `admin`; `sampling` on nothing here (`runtime`, `claim` and `acks` call it). This
//! file ties them together ([`Engine`]) and is the only one that names them all.

pub mod acks;
pub mod admin;
pub mod claim;
pub mod events;
pub mod pace;
pub mod pause_expiry;
pub mod pull;
pub mod push;
pub mod reset;
pub mod runtime;
pub mod sampling;
pub mod store;
pub mod wake;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use bytes::Bytes;
use infinistream_broker::{Broker, BrokerError, InternalMsg};
use infinistream_cp_client::ControlPlaneClient;
use infinistream_jetstream::{Reply, RouteHandler, StreamCatalog};
use infinistream_protocol::jsapi::ApiError;
use infinistream_protocol::jsapi::advisory::Action;
use infinistream_protocol::jsapi::consumer::{ConsumerConfig, NextRequest, PullStatus};
use infinistream_protocol::jsapi::subjects::ApiRoute;
use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::reader::StreamReader;
pub use runtime::Runtime;
pub use wake::{CommitWatch, ControlPlaneWatch, TimerWatch};

/// Everything the consumer handlers and tasks share.
#[derive(Debug)]
pub struct Engine {
    pub(crate) cp: ControlPlaneClient,
    pub(crate) reader: StreamReader,
    pub(crate) catalog: StreamCatalog,
    pub(crate) broker: Broker,
    pub(crate) agent_id: String,
    pub(crate) watch: Arc<dyn CommitWatch>,
    pub(crate) shutdown: CancellationToken,
    /// Consumers this agent currently serves, by (stream, name).
    runtimes: Mutex<HashMap<(String, String), Arc<Runtime>>>,
    /// Runtimes that ended (the push scanner looks again after one did).
    pub(crate) ended: AtomicU64,
    name_counter: AtomicU64,
}

/// The consumer routes of the JetStream API plus the ack and flow-control
/// subscribers; see the module docs.
#[derive(Debug, Clone)]
pub struct ConsumerService {
    engine: Arc<Engine>,
}

impl ConsumerService {
    /// Subscribes to acks and flow-control replies and returns the handler for
    /// [`infinistream_jetstream::ApiServer::with_consumers`]. Background tasks stop on
    /// `shutdown`.
    pub fn start(
        reader: StreamReader,
        catalog: StreamCatalog,
        broker: Broker,
        agent_id: String,
        watch: Arc<dyn CommitWatch>,
        shutdown: CancellationToken,
    ) -> Result<ConsumerService, BrokerError> {
        let engine = Arc::new(Engine {
            cp: reader.control_plane().clone(),
            reader,
            catalog,
            broker,
            agent_id,
            watch,
            shutdown,
            runtimes: Mutex::new(HashMap::new()),
            ended: AtomicU64::new(0),
            name_counter: AtomicU64::new(0),
        });
        acks::start(engine.clone())?;
        push::start_flow_control(engine.clone())?;
        tokio::spawn(push::push_scanner(engine.clone()));
        tracing::info!("consumer service started");
        Ok(ConsumerService { engine })
    }

    /// Wraps the service for [`infinistream_jetstream::ApiServer::with_consumers`].
    pub fn into_route_handler(self) -> Arc<dyn RouteHandler> {
        Arc::new(self)
    }
}

impl Engine {
    /// The runtime serving `stream`/`name` on this agent, if one runs.
    pub(crate) fn running(&self, stream: &str, name: &str) -> Option<Arc<Runtime>> {
        self.runtimes
            .lock()
            .get(&(stream.to_owned(), name.to_owned()))
            .cloned()
    }

    /// The runtimes of `stream`'s consumers on this agent.
    pub(crate) fn running_on(&self, stream: &str) -> Vec<Arc<Runtime>> {
        self.runtimes
            .lock()
            .iter()
            .filter(|((s, _), _)| s == stream)
            .map(|(_, rt)| rt.clone())
            .collect()
    }

    /// The runtime for a consumer, started from the control plane's config when this
    /// agent does not serve it yet.
    pub(crate) async fn runtime(
        self: &Arc<Self>,
        stream: &str,
        name: &str,
    ) -> Result<Arc<Runtime>, ApiError> {
        if let Some(rt) = self.running(stream, name) {
            return Ok(rt);
        }
        let info = store::fetch_info(&self.cp, stream, name).await?;
        Ok(self.install(stream, name, info.config, info.created_unix_nanos))
    }

    /// Starts (or returns) the runtime for a consumer whose config is known.
    pub(crate) fn install(
        self: &Arc<Self>,
        stream: &str,
        name: &str,
        config: ConsumerConfig,
        created: i64,
    ) -> Arc<Runtime> {
        let key = (stream.to_owned(), name.to_owned());
        let mut map = self.runtimes.lock();
        if let Some(rt) = map.get(&key)
            && rt.created == created
        {
            return rt.clone();
        }
        if let Some(old) = map.remove(&key) {
            old.stop();
        }
        let rt = Arc::new(Runtime::new(
            stream,
            name,
            config,
            created,
            self.shutdown.child_token(),
        ));
        map.insert(key, rt.clone());
        drop(map);
        let span = tracing::info_span!("consumer", stream = %stream, consumer = %name);
        tokio::spawn(serve(self.clone(), rt.clone()).instrument(span));
        tracing::info!(stream = %stream, consumer = %name, "serving consumer");
        rt
    }

    /// Restarts a consumer's runtime with an updated config; parked pull requests
    /// move to the new runtime.
    pub(crate) fn replace(
        self: &Arc<Self>,
        stream: &str,
        name: &str,
        config: ConsumerConfig,
        created: i64,
    ) {
        let old = self
            .runtimes
            .lock()
            .remove(&(stream.to_owned(), name.to_owned()));
        let rt = self.install(stream, name, config, created);
        if let Some(old) = old {
            old.stop();
            rt.adopt(&old);
        }
    }

    /// Forgets a runtime (it stopped, or its consumer is gone).
    pub(crate) fn remove(&self, rt: &Arc<Runtime>) {
        let key = (rt.stream.clone(), rt.name.clone());
        let mut map = self.runtimes.lock();
        if map.get(&key).is_some_and(|r| Arc::ptr_eq(r, rt)) {
            map.remove(&key);
        }
        self.ended.fetch_add(1, Ordering::Relaxed);
    }

    /// Deletes a consumer and stops serving it here.
    pub(crate) async fn delete_consumer(&self, stream: &str, name: &str) -> Result<(), ApiError> {
        store::delete(&self.cp, stream, name).await?;
        self.deleted(stream, name);
        events::consumer_action(&self.broker, stream, name, Action::Delete);
        tracing::info!(stream = %stream, consumer = %name, "consumer deleted");
        Ok(())
    }

    /// Stops serving a deleted consumer: waiting pull requests get `409 Consumer Deleted`.
    pub(crate) fn deleted(&self, stream: &str, name: &str) {
        let rt = self
            .runtimes
            .lock()
            .remove(&(stream.to_owned(), name.to_owned()));
        if let Some(rt) = rt {
            rt.deleted(&self.broker);
        }
    }

    /// A name for an ephemeral consumer, like nats-server's: 8 random characters.
    pub(crate) fn ephemeral_name(&self) -> String {
        use std::hash::{BuildHasher, Hasher};
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(self.name_counter.fetch_add(1, Ordering::Relaxed));
        h.write(self.agent_id.as_bytes());
        let mut v = h.finish();
        (0..8)
            .map(|_| {
                let c = ALPHABET[(v % ALPHABET.len() as u64) as usize];
                v /= ALPHABET.len() as u64;
                char::from(c)
            })
            .collect()
    }

    pub(crate) fn publish_status(&self, reply: &str, status: &PullStatus) {
        self.broker.publish(
            reply,
            None,
            Some(Bytes::from(status.header_block())),
            Bytes::new(),
        );
    }

    /// `CONSUMER.MSG.NEXT` (and `+NXT`): queue a pull request on the consumer's runtime.
    pub(crate) async fn pull(
        self: &Arc<Self>,
        stream: &str,
        name: &str,
        reply: &str,
        request: Result<NextRequest, PullStatus>,
    ) {
        let request = match request {
            Ok(r) => r,
            Err(status) => return self.publish_status(reply, &status),
        };
        match self.runtime(stream, name).await {
            Ok(rt) => rt.enqueue(self, reply, request),
            Err(e) => {
                // nats-server has no responder for an unknown consumer's next subject.
                tracing::debug!(stream = %stream, consumer = %name, error = %e.description, "pull for unknown consumer");
                self.broker.publish(
                    reply,
                    None,
                    Some(Bytes::from_static(b"NATS/1.0 503\r\n\r\n")),
                    Bytes::new(),
                );
            }
        }
    }
}

/// Runs a consumer until it is deleted, stopped, or idle long enough to let go.
async fn serve(engine: Arc<Engine>, rt: Arc<Runtime>) {
    // Start heartbeats from the consumer's real position.
    if let Ok(stored) = store::fetch_info(&engine.cp, &rt.stream, &rt.name).await {
        let d = stored.state.delivered.unwrap_or_default();
        rt.set_position(d.consumer_seq, d.stream_seq);
    }
    if rt.config.is_pull() {
        pull::pull_loop(&engine, &rt).await;
    } else {
        push::push_loop(&engine, &rt).await;
    }
    engine.remove(&rt);
    // Acks arriving from now on go straight to the control plane; these go now.
    rt.send_held_acks(&engine).await;
    tracing::debug!(stream = %rt.stream, consumer = %rt.name, "consumer runtime stopped");
}

#[async_trait]
impl RouteHandler for ConsumerService {
    async fn handle(&self, route: ApiRoute, msg: InternalMsg) -> Option<Reply> {
        let engine = &self.engine;
        match route {
            ApiRoute::ConsumerMsgNext { stream, consumer } => {
                let reply = msg.reply.clone().unwrap_or_default();
                let span =
                    tracing::debug_span!("consumer_next", stream = %stream, consumer = %consumer);
                engine
                    .pull(&stream, &consumer, &reply, NextRequest::parse(&msg.payload))
                    .instrument(span)
                    .await;
                None
            }
            ApiRoute::ConsumerReset { stream, consumer } => {
                Some(reset::handle(engine, &stream, &consumer, &msg.payload).await)
            }
            route => Some(admin::handle(engine, route, &msg.payload).await),
        }
    }
}
