//! Publishing JetStream advisories (`$JS.EVENT.ADVISORY.…`, shapes in
//! [`infinistream_protocol::jsapi::advisory`]). Each is published by the one agent
//! that did the work (answered the API request, made the claim, applied the ack), so
//! the group sends it once, not once per agent.

use bytes::Bytes;
use infinistream_broker::{Broker, InternalMsg};
use infinistream_protocol::jsapi::Timestamp;
use infinistream_protocol::jsapi::advisory::{
    API_AUDIT_SUBJECT, ApiAudit, AuditClient, TypedEvent, types,
};
use infinistream_protocol::jsapi::subjects::ApiRoute;
use serde::Serialize;

/// Publishes `body` on `subject`. An advisory nobody listens to costs nothing more
/// than the routing lookup.
pub fn publish<T: Serialize>(broker: &Broker, subject: &str, body: &T) {
    match serde_json::to_vec(body) {
        Ok(json) => broker.publish(subject, None, None, Bytes::from(json)),
        Err(e) => tracing::warn!(subject = %subject, error = %e, "encoding an advisory failed"),
    }
}

/// A new event of `kind`, now, with a unique id (22 characters, like nats-server's
/// nuid).
pub fn event(kind: &'static str) -> TypedEvent {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i128)
        .unwrap_or(0);
    TypedEvent::new(kind, infinistream_protocol::nuid::unique(), now)
}

/// Which answers of a JetStream API route nats-server 2.15.1 audits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audited {
    /// Every answer goes through its audited response path.
    Always,
    /// Only errors: a message read's success (`STREAM.MSG.GET`) answers without it.
    OnError,
    /// Never: direct gets (served by the stream, not the API) and pull requests
    /// (answered with messages).
    Never,
}

impl Audited {
    pub fn of(route: &ApiRoute) -> Audited {
        match route {
            ApiRoute::StreamMsgGet(_) => Audited::OnError,
            ApiRoute::DirectGet(_)
            | ApiRoute::DirectGetLastBySubject { .. }
            | ApiRoute::ConsumerMsgNext { .. } => Audited::Never,
            _ => Audited::Always,
        }
    }

    /// Whether an answer (`error`: an API error) is audited.
    pub fn answer(self, error: bool) -> bool {
        match self {
            Audited::Always => true,
            Audited::OnError => error,
            Audited::Never => false,
        }
    }
}

/// Publishes the API audit advisory (`$JS.EVENT.ADVISORY.API`,
/// `io.nats.jetstream.advisory.v1.api_audit`) of `request` answered with `response`
/// by `server`, as nats-server does for every request it answers through its API
/// layer (see [`Audited`]); only when someone, on any agent, listens for it.
pub fn api_audit(broker: &Broker, server: &str, request: &InternalMsg, response: &[u8]) {
    if !broker.has_interest_anywhere(API_AUDIT_SUBJECT) {
        return;
    }
    let mut client = AuditClient {
        account: broker.jetstream_account().to_owned(),
        ..AuditClient::default()
    };
    // A request another agent forwarded here (this agent's role) names no client of
    // this agent: only the account is known.
    if let Some(c) = broker.client_details(request.client_id) {
        let start = c
            .start
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as i128)
            .unwrap_or(0);
        client = AuditClient {
            start: Some(Timestamp::from_unix_nanos(start)),
            host: c.host,
            id: c.id,
            account: c.account,
            user: c.user,
            name: c.name,
            lang: c.lang,
            version: c.version,
            server: server.to_owned(),
            kind: "Client".to_owned(),
            client_type: "nats".to_owned(),
        };
    }
    publish(
        broker,
        API_AUDIT_SUBJECT,
        &ApiAudit {
            event: event(types::API_AUDIT),
            server: server.to_owned(),
            client,
            subject: request.subject.to_string(),
            request: String::from_utf8_lossy(&request.payload).into_owned(),
            response: String::from_utf8_lossy(response).into_owned(),
            domain: String::new(),
        },
    );
}
