//! A stream change answered only once the group's agents serve it.
//!
//! Every agent keeps its own copy of the stream catalog, following the control plane's
//! stream watch, and serves a stream's subjects (captures its publishes, or forwards
//! them to a produce agent) only once its copy lists the stream. The watch reaches the
//! other agents a little after the change: a client that created a stream through
//! agent A and published through agent B right after the answer could find B not
//! serving the subject yet and get a no-responders status (the chaos suite's agent
//! probes saw it on a jobs-only agent and on a proxy agent in the other zone).
//! nats-server answers STREAM.CREATE once a publish through any server lands.
//!
//! So the agent that changed a stream (create, update, delete) asks every linked peer,
//! over the route mesh, to bring that one stream up to date and to report once its
//! subscriptions serve it ([`settle_group`]); it answers the client when every peer
//! has reported or after [`GROUP_SETTLE_TIMEOUT`]. A peer ([`serve_sync`]) reloads the
//! stream from the control plane (`StreamInfo`) unless its catalog already holds what
//! the changing agent holds, waits for its followers, and replies.
//!
//! Why here and not on the publish path: a publish to a subject no stream covers is an
//! ordinary core request (NATS services use request/reply on any subject), answered
//! no-responders at once; checking the control plane on that path would cost every such
//! request a round trip, where this costs one message per peer per stream change (and
//! one `StreamInfo` per peer that had not caught up, which its watch would make anyway).
//! The bound: an agent not linked to the changing one (just started, or its link down)
//! is not waited for and catches up from its watch as before; a peer slower than the
//! timeout is logged and answered past. That costs availability, never an acked
//! publish: until its catalog lists the stream such an agent neither captures nor
//! forwards the subject, so a publish is answered no-responders (nothing stored), as
//! on a nats-server the stream's interest has not reached (docs/reliability.md,
//! "Catalog changes and agents not linked yet").

use std::convert::Infallible;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use infinistream_broker::{Broker, BrokerError, Forwarded, InternalMsg, InternalTarget};
use infinistream_cp_client::ControlPlaneClient;
use infinistream_protocol::jsapi::stream::StreamConfig;
use tokio_util::sync::CancellationToken;

use crate::catalog::StreamCatalog;

/// Subject prefix of a sync request; the stream name follows. Agent-internal: only
/// forwarded between agents (never announced to peers, and a client's publish to it is
/// ignored).
pub const SYNC_PREFIX: &str = "$IS.CATALOG.SYNC.";
/// Reply inboxes of sync requests: `<prefix><server id>.<n>`.
const INBOX_PREFIX: &str = "$IS.CATALOG.SYNCED.";
/// Longest wait for the peers; the client's request timeout is usually 5 s.
pub const GROUP_SETTLE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a peer waits for its own subscriptions to follow.
const PEER_SETTLE_TIMEOUT: Duration = Duration::from_secs(2);

/// The expected state of a stream as the changing agent sends it: the config as JSON,
/// empty when the stream was deleted.
fn expected(config: Option<&StreamConfig>) -> Bytes {
    config
        .and_then(|c| serde_json::to_vec(c).ok())
        .map(Bytes::from)
        .unwrap_or_default()
}

/// Asks every linked peer to serve stream `name` as `config` (`None`: deleted) and
/// waits for their replies, at most [`GROUP_SETTLE_TIMEOUT`]. Returns how many peers
/// were asked and how many did not reply in time.
pub async fn settle_group(
    broker: &Broker,
    name: &str,
    config: Option<&StreamConfig>,
) -> (usize, usize) {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let peers = broker.peers();
    if peers.is_empty() {
        return (0, 0);
    }
    let inbox = format!(
        "{INBOX_PREFIX}{}.{}",
        token(broker.server_id()),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    // Cluster-visible, so the peers' replies route back here; its interest travels on
    // each link ahead of the request.
    let mut replies = match broker.subscribe_cluster_internal(&inbox, None, peers.len()) {
        Ok(s) => s,
        Err(error) => {
            tracing::warn!(%error, stream = %name, "cannot wait for the peer agents' catalogs");
            return (peers.len(), peers.len());
        }
    };
    let request = InternalMsg {
        subject: format!("{SYNC_PREFIX}{name}").into(),
        reply: Some(inbox),
        headers: None,
        payload: expected(config),
        client_id: 0,
        capture_stream: None,
    };
    let mut waiting = 0usize;
    for peer in &peers {
        if broker.forward(peer, &request, InternalTarget::Handlers) == Forwarded::Sent {
            waiting += 1;
        }
    }
    let asked = waiting;
    // Each peer replies once: with its confirmation, or (an agent without this
    // service) the no-responders status.
    let _ = tokio::time::timeout(GROUP_SETTLE_TIMEOUT, async {
        while waiting > 0 && replies.recv().await.is_some() {
            waiting -= 1;
        }
    })
    .await;
    (asked, waiting)
}

/// A server id as one subject token (it is one already; kept safe).
fn token(agent: &str) -> String {
    agent
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Subscribes to the sync requests of peer agents and returns the task serving them
/// until shutdown (see the module docs).
pub fn serve_sync(
    broker: Broker,
    catalog: StreamCatalog,
    cp: ControlPlaneClient,
    shutdown: CancellationToken,
) -> Result<impl Future<Output = Result<(), Infallible>> + Send, BrokerError> {
    // `>`: a stream id of an account that does not own the bare ids is two tokens.
    let mut requests = broker.subscribe_internal(&format!("{SYNC_PREFIX}>"), None, 1024)?;
    Ok(async move {
        loop {
            let msg = tokio::select! {
                () = shutdown.cancelled() => return Ok(()),
                msg = requests.recv() => match msg {
                    Some(msg) => msg,
                    None => return Ok(()),
                },
            };
            // Only peers forward these; a client's publish here is not a request.
            if msg.client_id != 0 {
                continue;
            }
            let (Some(reply), Some(name)) =
                (msg.reply.clone(), msg.subject.strip_prefix(SYNC_PREFIX))
            else {
                continue;
            };
            tokio::spawn(sync_one(
                broker.clone(),
                catalog.clone(),
                cp.clone(),
                name.to_owned(),
                msg.payload,
                reply,
            ));
        }
    })
}

/// One sync request: reload stream `name` unless the catalog holds `expected` already,
/// wait for this agent's subscriptions, confirm.
async fn sync_one(
    broker: Broker,
    catalog: StreamCatalog,
    cp: ControlPlaneClient,
    name: String,
    wanted: Bytes,
    reply: String,
) {
    let have = expected(catalog.get(&name).as_ref().map(|e| &*e.config));
    if have != wanted
        && let Err(status) = catalog.refresh_stream(&cp, &name).await
    {
        tracing::debug!(stream = %name, error = %status.message(), "catalog sync: stream reload failed");
    }
    if !catalog.settled(PEER_SETTLE_TIMEOUT).await {
        tracing::debug!(stream = %name, "catalog sync: subscriptions not settled in time");
    }
    broker.publish(&reply, None, None, Bytes::new());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_become_one_token() {
        assert_eq!(token("NBX4-01M9"), "NBX4-01M9");
        assert_eq!(token("host.example:42 x"), "host_example_42_x");
    }

    #[test]
    fn a_deleted_stream_is_expected_as_nothing() {
        assert!(expected(None).is_empty());
        let config = StreamConfig {
            name: "S".into(),
            ..StreamConfig::default()
        };
        assert!(!expected(Some(&config)).is_empty());
    }
}
