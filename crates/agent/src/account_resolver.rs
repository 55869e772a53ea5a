//! Operator mode's account resolver in the agent, as nats-server runs it:
//!
//! - **URL resolver** (`resolver = "URL(http://…/jwt/v1/accounts/)"`): a user JWT that
//!   names an account this agent does not know yet holds its `CONNECT` while the
//!   account's JWT is fetched with `GET <url><account public key>` (timeout 1.9 s, as
//!   nats-server's); an account it imports from is fetched too. A failed fetch (not
//!   200, unreachable, a JWT the operator does not trust) refuses the client with
//!   `Authorization Violation`, as nats-server does. Fetched accounts are kept for the
//!   agent's life (and across a `SIGHUP`).
//! - **Account claims updates** (memory and URL resolvers): a user of the system
//!   account (`system_account`, else the operator JWT's) publishes an account JWT on
//!   `$SYS.REQ.ACCOUNT.<account>.CLAIMS.UPDATE` (or the older
//!   `$SYS.ACCOUNT.<account>.CLAIMS.UPDATE`). The new claims apply at once to open
//!   connections as a reload does ([`Broker::update_auth`]): revoked users are closed
//!   with `User Authentication Revoked`, connections over lowered limits are closed,
//!   others keep going under the new permissions. Each agent answers, as each server
//!   of a nats-server cluster does, with nats-server's JSON: `jwt updated`, `jwt update
//!   skipped` (an account this agent has not loaded), or an error (`request body is
//!   empty`, `subject does not match jwt content`, `account validation failed` for a
//!   JWT the operator did not sign, the JWT library's words for a malformed one).
//!   `$SYS.REQ.CLAIMS.UPDATE` is the full resolver's, which is not built: no
//!   responders, as on a nats-server with the URL resolver.
//!
//! JetStream keeps serving the account it served at start: an account fetched or
//! updated later whose JWT enables JetStream gets core NATS, and its JetStream API
//! answers `JetStream not enabled for account` (logged once per apply).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use infinistream_broker::jwt::{self, JwtError};
use infinistream_broker::{Auth, Broker, InternalSubscription, Users};
use infinistream_config::OperatorSpec;
use infinistream_protocol::jsapi::time::Timestamp;
use infinistream_protocol::sysapi::ServerInfo;
use infinistream_runtime::CancellationToken;
use serde::Serialize;
use tracing::Instrument;

/// nats-server's `DEFAULT_ACCOUNT_FETCH_TIMEOUT`.
const FETCH_TIMEOUT: Duration = Duration::from_millis(1900);
/// How many imported accounts one fetch follows.
const MAX_FETCHES: usize = 8;
/// The claims update subjects (new and old form).
const UPDATE_SUBJECTS: [&str; 2] = [
    "$SYS.REQ.ACCOUNT.*.CLAIMS.UPDATE",
    "$SYS.ACCOUNT.*.CLAIMS.UPDATE",
];

/// Sets up the URL resolver's fetches and the claims update service for `broker`
/// (operator mode only; nothing otherwise).
pub(crate) fn start(
    broker: &Broker,
    spec: &OperatorSpec,
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    let resolver = Arc::new(Resolver {
        broker: broker.clone(),
        url: spec.resolver_url.clone(),
        http: reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .build()
            .map_err(|e| anyhow::anyhow!("the URL resolver's HTTP client: {e}"))?,
        applying: tokio::sync::Mutex::new(()),
        seq: AtomicU64::new(0),
    });
    if let Some(url) = &resolver.url {
        tracing::info!(%url, "account resolver: URL");
        let fetcher = resolver.clone();
        broker.set_account_fetcher(Arc::new(move |account| {
            let fetcher = fetcher.clone();
            Box::pin(async move { fetcher.fetch(account).await })
        }));
    }
    let system = spec.system_account.clone().or_else(|| match broker.auth() {
        Some(Auth::Users(users)) => users.trust()?.system_account().map(str::to_owned),
        _ => None,
    });
    let Some(system) = system else {
        tracing::info!(
            "account claims updates off: no system account (system_account, or the operator JWT's)"
        );
        return Ok(());
    };
    let in_system = broker.in_account(&system);
    for subject in UPDATE_SUBJECTS {
        let sub = in_system.subscribe_cluster_internal(subject, None, 64)?;
        let resolver = resolver.clone();
        let system = in_system.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(
            async move { resolver.serve_updates(sub, system, shutdown).await }
                .instrument(tracing::info_span!("claims_update", subject)),
        );
    }
    tracing::info!(system_account = %system, "account claims updates served");
    Ok(())
}

struct Resolver {
    broker: Broker,
    url: Option<String>,
    http: reqwest::Client,
    /// One fetch or update is applied at a time (each builds on the last).
    applying: tokio::sync::Mutex<()>,
    /// `ServerInfo.seq` of the update answers.
    seq: AtomicU64,
}

/// Why account JWTs were not applied.
#[derive(Debug, thiserror::Error)]
enum ApplyError {
    #[error(transparent)]
    Jwt(#[from] JwtError),
    #[error("not in operator mode")]
    NotOperator,
}

impl Resolver {
    /// The operator trust the broker authenticates with now.
    fn trust(&self) -> Option<Arc<Users>> {
        match self.broker.auth() {
            Some(Auth::Users(users)) if users.trust().is_some() => Some(users),
            _ => None,
        }
    }

    fn knows(&self, account: &str) -> bool {
        self.trust()
            .is_some_and(|u| u.trust().is_some_and(|op| op.knows(account)))
    }

    /// Applies `accounts` (public key → JWT) over the current trust: open connections
    /// are checked again under it.
    fn apply(&self, accounts: &BTreeMap<String, String>) -> Result<usize, ApplyError> {
        let users = self.trust().ok_or(ApplyError::NotOperator)?;
        let operator = users
            .trust()
            .ok_or(ApplyError::NotOperator)?
            .with_accounts(accounts)?;
        let serving = self.broker.jetstream_account().to_owned();
        for account in operator.jetstream_accounts() {
            if **account != *serving {
                tracing::warn!(%account, serving = %serving, "the account's JWT enables JetStream, but JetStream serves only the account it served at start: its JetStream API answers `JetStream not enabled for account`");
            }
        }
        let users = Users::operator_serving(operator, &serving);
        Ok(self.broker.update_auth(Some(Auth::Users(Arc::new(users)))))
    }

    /// The URL resolver: fetches `account` (and the accounts it imports from) unless
    /// known, and applies them.
    async fn fetch(&self, account: String) {
        let _one = self.applying.lock().await;
        if self.knows(&account) {
            return;
        }
        let mut fetched = BTreeMap::new();
        let mut next = account.clone();
        for _ in 0..MAX_FETCHES {
            match self.get(&next).await {
                Ok(jwt) => fetched.insert(next.clone(), jwt),
                Err(error) => {
                    tracing::warn!(account = %next, %error, "account fetch failed");
                    return;
                }
            };
            match self.apply(&fetched) {
                Ok(_) => {
                    tracing::info!(%account, fetched = fetched.len(), "account resolver: account JWT fetched");
                    return;
                }
                Err(ApplyError::Jwt(JwtError::UnknownAccount(other)))
                    if !fetched.contains_key(&other) && !self.knows(&other) =>
                {
                    next = other;
                }
                Err(error) => {
                    tracing::warn!(%account, %error, "account fetch failed: the fetched JWT is refused");
                    return;
                }
            }
        }
        tracing::warn!(%account, "account fetch failed: too many imported accounts to fetch");
    }

    async fn get(&self, account: &str) -> Result<String, String> {
        let url = format!("{}{account}", self.url.as_deref().unwrap_or_default());
        let response = self
            .http
            .get(&url)
            .send()
            .await
            .map_err(|e| format!("could not fetch <{url:?}>: {e}"))?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!("could not fetch <{url:?}>: {status}"));
        }
        let body = response
            .text()
            .await
            .map_err(|e| format!("could not read <{url:?}>: {e}"))?;
        Ok(body.trim().to_owned())
    }

    /// Answers claims updates until `shutdown`.
    async fn serve_updates(
        &self,
        mut sub: InternalSubscription,
        system: Broker,
        shutdown: CancellationToken,
    ) {
        while let Some(msg) = sub.recv_until(&shutdown).await {
            let Some(account) = update_account(msg.subject.as_str()) else {
                continue;
            };
            let outcome = self.claims_update(account, &msg.payload).await;
            match &outcome {
                Ok(message) => tracing::info!(%account, message, "account claims update"),
                Err(description) => {
                    tracing::warn!(%account, description, "account claims update refused")
                }
            }
            if let Some(reply) = msg.reply.as_deref() {
                let answer = self.answer(account, outcome);
                system.publish(reply, None, None, answer);
            }
        }
    }

    /// nats-server's `accountClaimUpdate`: the message of a success, or the
    /// description of a failure.
    async fn claims_update(&self, account: &str, body: &[u8]) -> Result<&'static str, String> {
        if body.is_empty() {
            return Err("jwt update error - request body is empty".into());
        }
        let failed = |e: &dyn std::fmt::Display| format!("jwt update resulted in error - {e}");
        let jwt = std::str::from_utf8(body).map_err(|_| failed(&JwtError::Chunks))?;
        let subject = jwt::account_subject(jwt).map_err(|e| failed(&e))?;
        if subject != account {
            return Err(failed(&"subject does not match jwt content"));
        }
        let _one = self.applying.lock().await;
        if !self.knows(account) {
            return Ok("jwt update skipped");
        }
        let update = BTreeMap::from([(account.to_owned(), jwt.trim().to_owned())]);
        match self.apply(&update) {
            Ok(_) => Ok("jwt updated"),
            Err(ApplyError::Jwt(JwtError::UntrustedAccount { .. })) => {
                Err(failed(&"account validation failed"))
            }
            Err(e) => Err(failed(&e)),
        }
    }

    /// nats-server's answer to a claims update (`respondToUpdate`).
    fn answer(&self, account: &str, outcome: Result<&'static str, String>) -> Bytes {
        let server = self.broker.server_info(
            String::new(),
            self.seq.fetch_add(1, Ordering::Relaxed) + 1,
            Timestamp::from_unix_nanos(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos() as i128),
            ),
        );
        let (data, error) = match outcome {
            Ok(message) => (
                Some(UpdateData {
                    account,
                    code: 200,
                    message,
                }),
                None,
            ),
            Err(description) => (
                None,
                Some(UpdateError {
                    account,
                    code: 500,
                    description,
                }),
            ),
        };
        let answer = UpdateAnswer {
            server,
            data,
            error,
        };
        serde_json::to_vec(&answer).map_or_else(|_| Bytes::new(), Bytes::from)
    }
}

/// The account a claims update subject names.
fn update_account(subject: &str) -> Option<&str> {
    let tokens: Vec<&str> = subject.split('.').collect();
    match tokens.as_slice() {
        ["$SYS", "REQ", "ACCOUNT", account, "CLAIMS", "UPDATE"]
        | ["$SYS", "ACCOUNT", account, "CLAIMS", "UPDATE"] => Some(account),
        _ => None,
    }
}

#[derive(Serialize)]
struct UpdateAnswer<'a> {
    server: ServerInfo,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<UpdateData<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<UpdateError<'a>>,
}

#[derive(Serialize)]
struct UpdateData<'a> {
    account: &'a str,
    code: u16,
    message: &'static str,
}

#[derive(Serialize)]
struct UpdateError<'a> {
    account: &'a str,
    code: u16,
    description: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn update_subjects_name_their_account() {
        assert_eq!(
            update_account("$SYS.REQ.ACCOUNT.AABC.CLAIMS.UPDATE"),
            Some("AABC")
        );
        assert_eq!(
            update_account("$SYS.ACCOUNT.AABC.CLAIMS.UPDATE"),
            Some("AABC")
        );
        assert_eq!(update_account("$SYS.REQ.CLAIMS.UPDATE"), None);
        assert_eq!(update_account("$SYS.REQ.ACCOUNT.AABC.CLAIMS.LOOKUP"), None);
    }
}
