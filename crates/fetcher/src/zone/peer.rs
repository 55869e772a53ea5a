//! The zone cache on the peer port: asking a range's owner (client side) and answering
//! other agents of the zone (the `ZoneCache` gRPC service, registered on the agent's
//! `infinistream_peer::PeerPort`, which checks the group key).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use infinistream_cp_client::auth::ClientAuth;
use infinistream_cp_client::tls::PeerDialer;
use infinistream_proto::v1;
use infinistream_proto::v1::zone_cache_client::ZoneCacheClient;
use infinistream_proto::v1::zone_cache_server::ZoneCacheServer;
use parking_lot::Mutex;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic::{Request, Response, Status};

use super::metrics::{ResultLabel, ZoneMetrics};
use super::ring::Member;
use super::{PEER_BACKOFF, RangeData, RangeKey, RangeSpec, ZoneCache, ZoneError};

/// HTTP/2 receive windows of the peer client, per stream and per connection.
const PEER_STREAM_WINDOW: u32 = 8 << 20;
const PEER_CONNECTION_WINDOW: u32 = 16 << 20;

/// Largest range sent or received over the peer port (a chunk is bounded by the batch
/// size cap and the largest payload, far below this).
pub const MAX_RANGE_BYTES: usize = 256 * 1024 * 1024;

type Client = ZoneCacheClient<InterceptedService<Channel, ClientAuth>>;

/// The owner could not be used (down, slow, refused, or skipped while backing off);
/// already logged and counted.
#[derive(Debug)]
pub(crate) struct PeerSkipped;

/// Clients to the zone's other agents, with a back-off per failing peer.
pub(crate) struct Peers {
    dialer: Option<PeerDialer>,
    timeout: Duration,
    metrics: ZoneMetrics,
    state: Mutex<HashMap<String, PeerState>>,
}

struct PeerState {
    client: Client,
    down_until: Option<Instant>,
}

impl Peers {
    pub(crate) fn new(dialer: Option<PeerDialer>, timeout: Duration, metrics: ZoneMetrics) -> Self {
        Self {
            dialer,
            timeout,
            metrics,
            state: Mutex::new(HashMap::new()),
        }
    }

    /// Whether peers are asked at all.
    pub(crate) fn enabled(&self) -> bool {
        self.dialer.is_some()
    }

    #[cfg(test)]
    pub(crate) fn is_down(&self, addr: &str, now: Instant) -> bool {
        self.state
            .lock()
            .get(addr)
            .and_then(|s| s.down_until)
            .is_some_and(|until| now < until)
    }

    fn client(&self, addr: &str) -> Result<Client, PeerSkipped> {
        let Some(dialer) = &self.dialer else {
            return Err(PeerSkipped);
        };
        let mut state = self.state.lock();
        if let Some(peer) = state.get(addr) {
            if peer.down_until.is_some_and(|until| Instant::now() < until) {
                return Err(PeerSkipped);
            }
            return Ok(peer.client.clone());
        }
        let endpoint = dialer.endpoint(addr).map_err(|error| {
            tracing::warn!(peer = %addr, %error, "zone cache peer address is not usable");
            PeerSkipped
        })?;
        let channel = endpoint
            .connect_timeout(self.timeout.min(Duration::from_secs(1)))
            .timeout(self.timeout)
            .tcp_nodelay(true)
            // Answers are whole chunks (MiBs): with HTTP/2's default 64 KiB windows a
            // 4 MiB range crawls through window updates.
            .initial_stream_window_size(PEER_STREAM_WINDOW)
            .initial_connection_window_size(PEER_CONNECTION_WINDOW)
            .connect_lazy();
        let client = ZoneCacheClient::new(InterceptedService::new(channel, dialer.auth.clone()))
            .max_decoding_message_size(MAX_RANGE_BYTES + 1024)
            .max_encoding_message_size(MAX_RANGE_BYTES + 1024);
        state.insert(
            addr.to_owned(),
            PeerState {
                client: client.clone(),
                down_until: None,
            },
        );
        Ok(client)
    }

    /// Asks `owner` for `key`. A failure marks the owner down for [`PEER_BACKOFF`]
    /// with one log line; its answer is checked against the range asked for.
    pub(crate) async fn get_range(
        &self,
        owner: &Member,
        key: &RangeKey,
    ) -> Result<RangeData, PeerSkipped> {
        let addr = owner.peer_address.as_str();
        let mut client = self.client(addr)?;
        let (range, expected_len) = match &key.range {
            RangeSpec::Bounded(r) => (
                v1::get_range_request::Range::Bounded(v1::ByteRange {
                    start: r.start,
                    end: r.end,
                }),
                Some(r.end.saturating_sub(r.start)),
            ),
            RangeSpec::Suffix(n) => (v1::get_range_request::Range::Suffix(*n), None),
        };
        let answer = client
            .get_range(v1::GetRangeRequest {
                object_key: key.object.clone(),
                range: Some(range),
            })
            .await;
        let result = match answer {
            Ok(resp) => {
                let resp = resp.into_inner();
                match expected_len {
                    Some(len) if resp.data.len() as u64 != len => Err(format!(
                        "answered {} bytes for a {len}-byte range",
                        resp.data.len()
                    )),
                    _ => Ok(RangeData {
                        bytes: Bytes::from(resp.data),
                        object_len: resp.object_len,
                    }),
                }
            }
            Err(status) => Err(format!("{:?}: {}", status.code(), status.message())),
        };
        let label = |result| ResultLabel { result };
        match result {
            Ok(data) => {
                self.metrics.peer_made.get_or_create(&label("ok")).inc();
                let mut state = self.state.lock();
                if let Some(peer) = state.get_mut(addr)
                    && peer.down_until.take().is_some()
                {
                    tracing::info!(peer = %owner.agent_id, addr = %addr, "zone cache peer answering again");
                }
                Ok(data)
            }
            Err(error) => {
                self.metrics.peer_made.get_or_create(&label("error")).inc();
                let mut state = self.state.lock();
                if let Some(peer) = state.get_mut(addr) {
                    let was_up = peer.down_until.is_none();
                    peer.down_until = Some(Instant::now() + PEER_BACKOFF);
                    if was_up {
                        tracing::warn!(
                            peer = %owner.agent_id,
                            addr = %addr,
                            range = %key,
                            %error,
                            backoff_ms = PEER_BACKOFF.as_millis() as u64,
                            "zone cache peer failed; reading from the bucket instead"
                        );
                    }
                }
                Err(PeerSkipped)
            }
        }
    }
}

/// The `ZoneCache` gRPC service: answers ranges from this agent's tiers.
#[derive(Debug, Clone)]
pub struct PeerService {
    zone: ZoneCache,
}

impl PeerService {
    /// A service answering from `zone`.
    pub fn new(zone: ZoneCache) -> Self {
        Self { zone }
    }
}

#[allow(clippy::result_large_err)]
fn checked_key(req: &v1::GetRangeRequest) -> Result<RangeKey, Status> {
    if req.object_key.is_empty() || object_store::path::Path::parse(&req.object_key).is_err() {
        return Err(Status::invalid_argument(format!(
            "invalid object key: `{}`",
            req.object_key
        )));
    }
    match &req.range {
        None => Err(Status::invalid_argument(
            "missing range (bounded or suffix)",
        )),
        Some(v1::get_range_request::Range::Bounded(r)) => {
            if r.start >= r.end || r.end - r.start > MAX_RANGE_BYTES as u64 {
                return Err(Status::invalid_argument(format!(
                    "range must be non-empty and at most {MAX_RANGE_BYTES} bytes, got {}..{}",
                    r.start, r.end
                )));
            }
            Ok(RangeKey::bounded(&req.object_key, r.start..r.end))
        }
        Some(v1::get_range_request::Range::Suffix(n)) => {
            if *n == 0 || *n > MAX_RANGE_BYTES as u64 {
                return Err(Status::invalid_argument(format!(
                    "suffix must be 1 to {MAX_RANGE_BYTES} bytes, got {n}"
                )));
            }
            Ok(RangeKey::suffix(&req.object_key, *n))
        }
    }
}

#[tonic::async_trait]
impl v1::zone_cache_server::ZoneCache for PeerService {
    #[tracing::instrument(level = "debug", skip_all, fields(object = %request.get_ref().object_key))]
    async fn get_range(
        &self,
        request: Request<v1::GetRangeRequest>,
    ) -> Result<Response<v1::GetRangeResponse>, Status> {
        let key = checked_key(request.get_ref())?;
        match self.zone.serve(&key).await {
            Ok(data) => Ok(Response::new(v1::GetRangeResponse {
                data: data.bytes.to_vec(),
                object_len: data.object_len,
            })),
            Err(ZoneError::Bucket(e)) if e.is_not_found() => Err(Status::not_found(format!(
                "object not found: `{}`",
                key.object
            ))),
            Err(ZoneError::BadKey(k)) => Err(Status::invalid_argument(format!(
                "invalid object key: `{k}`"
            ))),
            Err(error) => {
                tracing::warn!(range = %key, %error, "zone cache could not serve a peer");
                Err(Status::unavailable(error.to_string()))
            }
        }
    }
}

/// The zone cache's gRPC service, as the agent registers it on its peer port.
pub type ZoneCacheService = ZoneCacheServer<PeerService>;

/// The `ZoneCache` service over `zone`, to register on the agent's peer port (which
/// checks the group key).
pub fn service(zone: ZoneCache) -> ZoneCacheService {
    ZoneCacheServer::new(PeerService::new(zone))
        .max_decoding_message_size(64 * 1024)
        .max_encoding_message_size(MAX_RANGE_BYTES + 1024)
}
