//! The auth callout exchange (nats-server's `auth_callout`): a client that is not one
//! of the callout's own users is signed in by an external service.
//!
//! For each such `CONNECT` the agent makes a fresh user key and sends the service an
//! authorization request JWT (`authorization_request`, signed by this server's key,
//! `aud` `nats-authorization-request`, `sub` the user key; `nats`: `server_id`,
//! `user_nkey`, `client_info`, `connect_opts` with the client's credentials) on
//! `$SYS.REQ.USER.AUTH` in the callout account. The service answers with an
//! authorization response JWT signed by the configured issuer, for this server and
//! that user key, carrying a user JWT (signed by the issuer, `sub` the user key, `aud`
//! the account to sign in to, permissions and `exp` as any user JWT) or an `error`.
//! Anything else — an error, a bad signature, no answer within the auth timeout — is
//! `Authorization Violation`, as nats-server answers. Encrypted requests (`xkey`) and
//! callouts configured in account JWTs (operator mode) are not built (refused by the
//! configuration).

use std::net::IpAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use infinistream_protocol::Connect;
use serde_json::json;

use super::{Callout, Login, Users, jwt};

/// The subject the service listens on.
pub(crate) const AUTH_SUBJECT: &str = "$SYS.REQ.USER.AUTH";

/// Who is connecting, for the request's `client_info`.
pub(crate) struct Caller<'a> {
    pub cid: u64,
    pub host: IpAddr,
    pub nonce: Option<&'a str>,
}

/// This server as the request's `server_id` names it.
pub(crate) struct Server<'a> {
    pub key: &'a nkeys::KeyPair,
    pub name: &'a str,
    pub host: &'a str,
    pub version: &'a str,
}

/// One sign-in in flight: the signed request to send, and what its answer must name.
pub(crate) struct Request {
    /// The authorization request JWT, the message's payload.
    pub jwt: String,
    server_id: String,
    user: String,
}

/// Builds and signs the authorization request for `connect`, with a fresh user key;
/// None (logged) when it cannot be signed.
pub(crate) fn request(
    server: &Server<'_>,
    connect: &Connect,
    caller: &Caller<'_>,
) -> Option<Request> {
    let user_key = nkeys::KeyPair::new_user();
    let user = user_key.public_key();
    let server_id = server.key.public_key();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut connect_opts = json!({
        "user": connect.user, "pass": connect.pass, "auth_token": connect.auth_token,
        "jwt": connect.jwt, "nkey": connect.nkey, "sig": connect.sig,
        "name": connect.name, "lang": connect.lang, "version": connect.version,
        "protocol": connect.protocol,
    });
    if let Some(map) = connect_opts.as_object_mut() {
        map.retain(|_, v| !v.is_null() && v.as_str() != Some(""));
    }
    let claims = json!({
        "jti": super::new_nonce(),
        "iat": now,
        "iss": server_id,
        "sub": user,
        "aud": "nats-authorization-request",
        "nats": {
            "server_id": {"name": server.name, "host": server.host, "id": server_id,
                          "version": server.version},
            "user_nkey": user,
            "client_info": {"host": caller.host.to_string(), "id": caller.cid,
                            "user": connect.user.as_deref().unwrap_or_default(),
                            "name": connect.name.as_deref().unwrap_or_default(),
                            "kind": "Client", "type": "nats",
                            "nonce": caller.nonce.unwrap_or_default()},
            "connect_opts": connect_opts,
            "type": "authorization_request",
            "version": 2,
        }
    });
    match jwt::encode(&claims, server.key) {
        Ok(jwt) => Some(Request {
            jwt,
            server_id,
            user,
        }),
        Err(error) => {
            tracing::warn!(%error, "auth callout: cannot sign the request");
            None
        }
    }
}

/// The login the service's `answer` to `request` grants, or None (logged).
pub(crate) fn answer(
    request: &Request,
    answer: &[u8],
    users: &Users,
    callout: &Callout,
    cid: u64,
) -> Option<Login> {
    let answer = String::from_utf8_lossy(answer);
    match jwt::callout_answer(&answer, &callout.issuer, &request.server_id, &request.user) {
        Ok(approved) => users.callout_login(approved),
        Err(error) => {
            tracing::info!(cid, %error, "auth callout: refused");
            None
        }
    }
}
