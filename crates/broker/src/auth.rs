//! Who may connect and what each connection may do: nats-server's `authorization`
//! model — one user/password or token for everyone, or a list of users (password,
//! bcrypt hash or NKey) each with publish and subscribe permissions.
//!
//! Checks run where nats-server runs them, with its answers:
//! - `CONNECT`: credentials; a mismatch is `-ERR 'Authorization Violation'` and the
//!   connection closes. An NKey user signs the `nonce` of this connection's `INFO`.
//! - `PUB`: the publish permissions (allow, then deny; a subject allowed only as the
//!   reply to a request this connection received passes under `allow_responses`).
//!   A refusal is `-ERR 'Permissions Violation for Publish to "<subject>"'`, the
//!   message is dropped and the connection stays open.
//! - `SUB`: the subscribe permissions, `…for Subscription to "<subject>"`; the
//!   subscription is not made and the connection stays open. A wildcard subscription
//!   that overlaps a denied subject is allowed, and messages on the denied subjects are
//!   then filtered at delivery.
//!
//! Accounts (nats-server's `accounts { A { users = [...] } }`): every user belongs to
//! one account, [`DEFAULT_ACCOUNT`] (`$G`) when none is named. Subjects are isolated
//! per account — a subscription sees only publishes made in its own account, on this
//! agent and across the route mesh, whose frames carry the account. JetStream lives in
//! one account ([`Users::jetstream_account`]): the broker's internal subscribers (the
//! JetStream API, stream capture, acks) and its own publishes are in that account, and
//! a `$JS.API` request from any other account is answered with nats-server's
//! `JetStream not enabled for account` (10039). A stream import ([`StreamImport`])
//! shares one account's publishes on some subjects with another: the publisher's
//! agent routes a copy into the importing account (forwarded to peers under that
//! account), so a peer never imports again.
//!
//! An auth callout ([`Callout`], see [`callout`]) hands every user but its own to an
//! external service, which answers with a user JWT.
//!
//! JetStream needs nothing of its own: its API, acks and flow control are subjects a
//! connection publishes to and inboxes it subscribes to, so a user allowed only
//! `$JS.API.CONSUMER.MSG.NEXT.ORDERS.worker`, `$JS.ACK.ORDERS.worker.>` and its inbox
//! can pull from that one consumer and do nothing else.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use infinistream_protocol::info::Connect;
use infinistream_protocol::subject;
use parking_lot::Mutex;

pub(crate) mod callout;
pub mod jwt;

/// An account's name: subjects, subscriptions and JetStream assets are isolated per
/// account.
pub type AccountName = Arc<str>;

/// nats-server's global account: users without an account, and every connection when
/// no accounts are configured.
pub const DEFAULT_ACCOUNT: &str = "$G";

/// Whether two account names are the same account (the pointer check is the common
/// case: one shared name).
pub(crate) fn same_account(a: &AccountName, b: &AccountName) -> bool {
    Arc::ptr_eq(a, b) || a == b
}

/// nats-server's stream import: what is published in `from` on `subject` (wildcards
/// allowed) also reaches the subscribers of `into`, on `prefix.<subject>` when a
/// prefix is set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamImport {
    pub from: AccountName,
    pub into: AccountName,
    pub subject: Bytes,
    pub prefix: Option<Bytes>,
}

impl StreamImport {
    /// The subject a publish on `subject` in `from` has in `into`, if imported.
    pub(crate) fn map(&self, subject: &[u8]) -> Option<Bytes> {
        if !subject::matches(&self.subject, subject) {
            return None;
        }
        Some(match &self.prefix {
            None => Bytes::copy_from_slice(subject),
            Some(prefix) => {
                let mut mapped = Vec::with_capacity(prefix.len() + 1 + subject.len());
                mapped.extend_from_slice(prefix);
                mapped.push(b'.');
                mapped.extend_from_slice(subject);
                Bytes::from(mapped)
            }
        })
    }
}

/// nats-server's service import: requests published in `into` on `local` reach the
/// subscribers of `from` on `subject` (the same subject unless the import names a
/// `to`), and their answers come back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceImport {
    pub from: AccountName,
    pub into: AccountName,
    /// The exported subject (literal, or a wildcard when `local` is the same).
    pub subject: Bytes,
    /// The subject the importing account's clients publish on.
    pub local: Bytes,
}

impl ServiceImport {
    /// The subject a publish on `published` in `into` has in `from`, if imported.
    pub(crate) fn map(&self, published: &[u8]) -> Option<Bytes> {
        if !subject::matches(&self.local, published) {
            return None;
        }
        Some(if self.local == self.subject {
            Bytes::copy_from_slice(published)
        } else {
            self.subject.clone()
        })
    }
}

/// How clients authenticate, when required.
#[derive(Clone, PartialEq, Eq)]
pub enum Auth {
    /// One user and password for every connection.
    UserPass { user: String, pass: String },
    /// One token for every connection.
    Token(String),
    /// A list of users, each with its own credential and permissions.
    Users(Arc<Users>),
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print secrets.
        match self {
            Auth::UserPass { user, .. } => f
                .debug_struct("UserPass")
                .field("user", user)
                .field("pass", &"<redacted>")
                .finish(),
            Auth::Token(_) => f.debug_tuple("Token").field(&"<redacted>").finish(),
            Auth::Users(users) => f.debug_tuple("Users").field(users).finish(),
        }
    }
}

/// The users of an `authorization { users = [...] }` block.
#[derive(Default, PartialEq, Eq)]
pub struct Users {
    users: Vec<User>,
    /// Plain passwords already checked against a bcrypt hash, by user: bcrypt costs
    /// ~100 ms by design, which every reconnect would otherwise pay on a runtime
    /// thread.
    bcrypt_verified: BcryptCache,
    /// The account JetStream serves (see the module docs).
    jetstream: AccountName,
    stream_imports: Vec<StreamImport>,
    service_imports: Vec<ServiceImport>,
    /// Operator mode (decentralized JWT auth): users sign in with user JWTs instead.
    operator: Option<Arc<jwt::Operator>>,
    /// Every user but the callout's own is signed in by an external service.
    callout: Option<Arc<Callout>>,
}

/// nats-server's `auth_callout`: a service subscribed to `$SYS.REQ.USER.AUTH` in
/// `account` decides who signs in (see [`callout`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Callout {
    /// The account public key that signs the service's answers and user JWTs.
    pub issuer: String,
    /// Users that sign in with their own credentials.
    pub auth_users: Vec<String>,
    pub account: AccountName,
}

impl fmt::Debug for Users {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(&self.users).finish()
    }
}

#[derive(Default)]
struct BcryptCache(Mutex<HashMap<String, String>>);

impl PartialEq for BcryptCache {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for BcryptCache {}

/// Why a user list was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UsersError {
    #[error("user `{0}` is listed twice")]
    Duplicate(String),
    #[error("`{0}` is not a valid user NKey (a public key starting with U)")]
    BadNKey(String),
    #[error("user `{user}`: permission subject `{subject}` is not a valid subject")]
    BadSubject { user: String, subject: String },
}

impl Users {
    /// Checks and indexes `users`.
    pub fn new(users: Vec<User>) -> Result<Users, UsersError> {
        let mut seen = std::collections::HashSet::new();
        for user in &users {
            if !seen.insert(user.name.as_str()) {
                return Err(UsersError::Duplicate(user.name.clone()));
            }
            if user.credential == Credential::NKey
                && nkeys::KeyPair::from_public_key(&user.name).map_or(true, |k| {
                    !user.name.starts_with('U') || k.public_key() != user.name
                })
            {
                return Err(UsersError::BadNKey(user.name.clone()));
            }
            if let Some(p) = &user.permissions {
                for rule in [&p.publish, &p.subscribe].into_iter().flatten() {
                    for s in rule.allow.iter().flatten().chain(&rule.deny) {
                        if !subject::is_valid_subject(s) {
                            return Err(UsersError::BadSubject {
                                user: user.name.clone(),
                                subject: s.clone(),
                            });
                        }
                    }
                }
            }
        }
        Ok(Users {
            users,
            bcrypt_verified: BcryptCache::default(),
            jetstream: DEFAULT_ACCOUNT.into(),
            stream_imports: Vec::new(),
            service_imports: Vec::new(),
            operator: None,
            callout: None,
        })
    }

    /// Signs every user but `callout.auth_users` in through the auth callout.
    pub fn with_callout(mut self, callout: Callout) -> Users {
        self.callout = Some(Arc::new(callout));
        self
    }

    /// The auth callout `connect` must go through (None: none configured, or one of
    /// its own users).
    pub(crate) fn callout_for(&self, connect: &Connect) -> Option<Arc<Callout>> {
        let callout = self.callout.as_ref()?;
        let name = connect.nkey.as_deref().or(connect.user.as_deref());
        (!name.is_some_and(|n| callout.auth_users.iter().any(|u| u == n))).then(|| callout.clone())
    }

    /// Whether `account` is one this configuration signs users in to.
    pub(crate) fn has_account(&self, account: &str) -> bool {
        account == DEFAULT_ACCOUNT
            || self.users.iter().any(|u| &*u.account == account)
            || self
                .callout
                .as_ref()
                .is_some_and(|c| &*c.account == account)
            || *self.jetstream == *account
    }

    /// The login a callout-approved user gets.
    pub(crate) fn callout_login(&self, user: jwt::CalloutUser) -> Option<Login> {
        if !self.has_account(&user.account) {
            tracing::info!(account = %user.account, "auth callout: the user JWT names an unknown account");
            return None;
        }
        let account: AccountName = user.account.as_str().into();
        Some(Login {
            user: user.name,
            permissions: user
                .permissions
                .as_ref()
                .map(|p| Arc::new(ConnPermissions::new(p))),
            imports: self.imports_from(&account),
            services: self.services_into(&account),
            account,
            expires: user.exp.map(|at| Expiry {
                at,
                message: "User Authentication Expired",
            }),
            via_callout: true,
            ..Login::default()
        })
    }

    /// Operator mode: users sign in with user JWTs the operator's accounts signed
    /// (see [`jwt`]); the account JWTs' stream imports apply, and JetStream
    /// serves the account whose JWT enables it.
    pub fn operator(operator: jwt::Operator) -> Result<Users, jwt::JwtError> {
        let jetstream = match operator.jetstream_accounts() {
            [] => DEFAULT_ACCOUNT.into(),
            [one] => one.clone(),
            many => {
                return Err(jwt::JwtError::Unsupported {
                    account: many
                        .iter()
                        .map(|a| a.to_string())
                        .collect::<Vec<_>>()
                        .join("`, `"),
                    what: "JetStream in more than one account".into(),
                });
            }
        };
        Ok(Users {
            users: Vec::new(),
            bcrypt_verified: BcryptCache::default(),
            jetstream,
            stream_imports: operator.stream_imports().to_vec(),
            service_imports: operator.service_imports().to_vec(),
            operator: Some(Arc::new(operator)),
            callout: None,
        })
    }

    /// Operator mode with accounts an account resolver learned after start:
    /// JetStream keeps serving `jetstream` (the broker's, fixed for its life) even if
    /// another account's JWT enables it.
    pub fn operator_serving(operator: jwt::Operator, jetstream: &str) -> Users {
        Users {
            users: Vec::new(),
            bcrypt_verified: BcryptCache::default(),
            jetstream: jetstream.into(),
            stream_imports: operator.stream_imports().to_vec(),
            service_imports: operator.service_imports().to_vec(),
            operator: Some(Arc::new(operator)),
            callout: None,
        }
    }

    /// Shares subjects between accounts (see [`StreamImport`]).
    pub fn with_stream_imports(mut self, imports: Vec<StreamImport>) -> Users {
        self.stream_imports = imports;
        self
    }

    /// Lets accounts reach services other accounts export (see
    /// [`ServiceImport`]).
    pub fn with_service_imports(mut self, imports: Vec<ServiceImport>) -> Users {
        self.service_imports = imports;
        self
    }

    /// The service imports `account`'s publishes may reach.
    fn services_into(&self, account: &AccountName) -> Arc<[ServiceImport]> {
        self.service_imports
            .iter()
            .filter(|i| same_account(&i.into, account))
            .cloned()
            .collect()
    }

    /// The stream imports whose publishes come from `account`.
    fn imports_from(&self, account: &AccountName) -> Arc<[StreamImport]> {
        self.stream_imports
            .iter()
            .filter(|i| same_account(&i.from, account))
            .cloned()
            .collect()
    }

    /// Serves JetStream in `account` rather than [`DEFAULT_ACCOUNT`].
    pub fn with_jetstream_account(mut self, account: &str) -> Users {
        self.jetstream = account.into();
        self
    }

    /// The one account JetStream serves.
    pub fn jetstream_account(&self) -> &AccountName {
        &self.jetstream
    }

    /// Operator mode: the operator's trust (its accounts).
    pub fn trust(&self) -> Option<&jwt::Operator> {
        self.operator.as_deref()
    }

    /// Operator mode: the account `connect`'s user JWT names, if the operator does
    /// not know it (yet).
    pub(crate) fn unknown_account(&self, connect: &Connect) -> Option<String> {
        self.operator
            .as_ref()?
            .unknown_account(connect.jwt.as_deref()?)
    }

    /// Whether any user signs in with an NKey (then `INFO` carries a nonce).
    pub fn has_nkeys(&self) -> bool {
        self.operator.is_some() || self.users.iter().any(|u| u.credential == Credential::NKey)
    }

    /// Signs in with a user JWT (operator mode); `signed`: the nonce and the
    /// client's signature of it, None on a reload (already signed in); `peer`: the
    /// client's address, checked against the user's `src` (None on a reload).
    fn jwt_login(
        &self,
        jwt: &str,
        signed: Option<(Option<&str>, Option<&str>)>,
        peer: Option<IpAddr>,
    ) -> Option<Login> {
        let operator = self.operator.as_ref()?;
        match operator.verify_user(jwt, signed) {
            Ok(user) if peer.is_some_and(|addr| !jwt::source_allowed(&user.sources, addr)) => {
                tracing::info!(user = %user.key, "user JWT refused: the client's address is not in its src");
                None
            }
            Ok(user) => Some(Login {
                user: user.key,
                permissions: user
                    .permissions
                    .as_ref()
                    .map(|p| Arc::new(ConnPermissions::new(p))),
                imports: self.imports_from(&user.account),
                services: self.services_into(&user.account),
                account: user.account,
                jwt: Some(jwt.into()),
                expires: user.expires,
                limits: user.limits,
                via_callout: false,
            }),
            Err(error) => {
                tracing::info!(%error, "user JWT refused");
                None
            }
        }
    }

    fn find(&self, name: &str) -> Option<&User> {
        self.users.iter().find(|u| u.name == name)
    }

    fn password_ok(&self, user: &User, given: &str) -> bool {
        match &user.credential {
            Credential::Password(pass) => constant_time_eq(pass.as_bytes(), given.as_bytes()),
            Credential::Bcrypt(hash) => {
                let mut cache = self.bcrypt_verified.0.lock();
                if cache
                    .get(&user.name)
                    .is_some_and(|ok| constant_time_eq(ok.as_bytes(), given.as_bytes()))
                {
                    return true;
                }
                let ok = bcrypt::verify(given, hash).unwrap_or(false);
                if ok {
                    cache.insert(user.name.clone(), given.to_owned());
                }
                ok
            }
            Credential::NKey => false,
        }
    }
}

/// One user.
#[derive(Clone, PartialEq, Eq)]
pub struct User {
    /// The user name, or the public NKey of an NKey user.
    pub name: String,
    pub credential: Credential,
    /// None: everything is allowed.
    pub permissions: Option<Permissions>,
    /// The account the user's connections publish and subscribe in.
    pub account: AccountName,
}

impl fmt::Debug for User {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("User")
            .field("name", &self.name)
            .field("credential", &self.credential)
            .field("permissions", &self.permissions)
            .field("account", &self.account)
            .finish()
    }
}

/// How a user proves who it is.
#[derive(Clone, PartialEq, Eq)]
pub enum Credential {
    /// A password in the clear.
    Password(String),
    /// A bcrypt hash of the password (`$2a$…`, `$2b$…`), as nats-server accepts.
    Bcrypt(String),
    /// An ed25519 signature of the connection's nonce by the user's NKey.
    NKey,
}

impl Credential {
    /// A password as configured: bcrypt when it looks like a bcrypt hash.
    pub fn password(pass: String) -> Credential {
        if pass.starts_with("$2") {
            Credential::Bcrypt(pass)
        } else {
            Credential::Password(pass)
        }
    }
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Credential::Password(_) => "Password(<redacted>)",
            Credential::Bcrypt(_) => "Bcrypt(<redacted>)",
            Credential::NKey => "NKey",
        })
    }
}

/// A user's permissions (nats-server's `permissions` block).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Permissions {
    /// None: any subject may be published to (unless `allow_responses` is set, which,
    /// as in nats-server, turns the blanket allow off).
    pub publish: Option<SubjectPermission>,
    /// None: any subject may be subscribed to.
    pub subscribe: Option<SubjectPermission>,
    /// Replies to requests this connection received may be published even where the
    /// publish permissions do not allow them.
    pub allow_responses: Option<ResponsePermission>,
}

/// Allow and deny lists of subjects (wildcards allowed); deny wins.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubjectPermission {
    /// None: everything not denied is allowed; `Some(vec![])`: nothing is.
    pub allow: Option<Vec<String>>,
    pub deny: Vec<String>,
}

/// nats-server's `allow_responses`: how many replies per request, for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponsePermission {
    pub max_msgs: usize,
    pub expires: Duration,
}

impl Default for ResponsePermission {
    /// nats-server's `allow_responses: true`: one reply within two minutes.
    fn default() -> Self {
        ResponsePermission {
            max_msgs: 1,
            expires: Duration::from_secs(120),
        }
    }
}

/// When a connection's sign-in stops being valid, and what it is told then
/// (nats-server's `User Authentication Expired` / `Account Authentication Expired`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Expiry {
    /// Unix seconds.
    pub at: i64,
    pub message: &'static str,
}

impl Expiry {
    /// The earlier of two expiries (the user's wins a tie, as it is checked first).
    pub(crate) fn earliest(a: Option<Expiry>, b: Option<Expiry>) -> Option<Expiry> {
        match (a, b) {
            (Some(a), Some(b)) => Some(if b.at < a.at { b } else { a }),
            (a, b) => a.or(b),
        }
    }
}

/// Limits a connection signed in with a JWT carries (nats-server's per-connection
/// `msubs` and `mpay`: the smaller of the user's and its account's), and its
/// account's `conn` limit. None: unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct ConnLimits {
    pub max_subs: Option<u64>,
    pub max_payload: Option<u64>,
    /// Connections the account may have open on this agent.
    pub max_account_conns: Option<u64>,
}

/// Who a connection authenticated as.
#[derive(Debug, Clone, Default)]
pub(crate) struct Login {
    /// Shown in `/connz` and `$SYS` answers (never a password or token).
    pub user: String,
    pub permissions: Option<Arc<ConnPermissions>>,
    /// The account the connection publishes and subscribes in.
    pub account: AccountName,
    /// The stream imports this connection's publishes feed.
    pub imports: Arc<[StreamImport]>,
    /// The user JWT it signed in with (operator mode), checked again on reload.
    pub jwt: Option<Arc<str>>,
    /// The service imports this connection's publishes may reach.
    pub services: Arc<[ServiceImport]>,
    /// When the user or account JWT expires: the connection is closed then, as
    /// nats-server closes it.
    pub expires: Option<Expiry>,
    pub limits: ConnLimits,
    /// Signed in by the auth callout (kept on reload while the callout's issuer stays).
    pub via_callout: bool,
}

/// Checks `connect` against `auth` (`nonce`: the one this connection's `INFO` sent;
/// `peer`: the client's address).
/// `None`: refused.
pub(crate) fn authenticate(
    auth: &Auth,
    connect: &Connect,
    nonce: Option<&str>,
    peer: IpAddr,
) -> Option<Login> {
    match auth {
        Auth::UserPass { user, pass } => {
            let ok = connect.user.as_deref() == Some(user.as_str())
                && connect
                    .pass
                    .as_deref()
                    .is_some_and(|p| constant_time_eq(p.as_bytes(), pass.as_bytes()));
            ok.then(|| Login {
                user: user.clone(),
                permissions: None,
                account: DEFAULT_ACCOUNT.into(),
                imports: Arc::new([]),
                services: Arc::new([]),
                ..Login::default()
            })
        }
        Auth::Token(token) => connect
            .auth_token
            .as_deref()
            .is_some_and(|t| constant_time_eq(t.as_bytes(), token.as_bytes()))
            .then(|| Login {
                user: infinistream_protocol::sysapi::REDACTED_USER.to_owned(),
                permissions: None,
                account: DEFAULT_ACCOUNT.into(),
                imports: Arc::new([]),
                services: Arc::new([]),
                ..Login::default()
            }),
        Auth::Users(users) if users.operator.is_some() => {
            let jwt = connect.jwt.as_deref()?;
            let signed = Some((nonce, connect.sig.as_deref()));
            users.jwt_login(jwt, signed, Some(peer))
        }
        Auth::Users(users) => {
            let user = if let Some(nkey) = connect.nkey.as_deref() {
                let user = users
                    .find(nkey)
                    .filter(|u| u.credential == Credential::NKey)?;
                let signed = nonce.zip(connect.sig.as_deref())?;
                verify_nkey(nkey, signed.0, signed.1).then_some(user)?
            } else {
                let user = users.find(connect.user.as_deref()?)?;
                users
                    .password_ok(user, connect.pass.as_deref()?)
                    .then_some(user)?
            };
            Some(Login {
                user: user.name.clone(),
                permissions: user
                    .permissions
                    .as_ref()
                    .map(|p| Arc::new(ConnPermissions::new(p))),
                account: user.account.clone(),
                imports: users.imports_from(&user.account),
                services: users.services_into(&user.account),
                ..Login::default()
            })
        }
    }
}

/// After a reload: what a connection logged in as `login` keeps. `None`: it must go
/// (its user is gone, or its credential or account changed).
pub(crate) fn relogin(old: Option<&Auth>, new: Option<&Auth>, login: &Login) -> Option<Login> {
    match (old, new) {
        (_, Some(Auth::Users(new))) if login.via_callout => new
            .callout
            .is_some()
            .then(|| new.has_account(&login.account))
            .filter(|known| *known)
            .map(|_| login.clone()),
        (_, None) => Some(Login {
            user: String::new(),
            permissions: None,
            account: login.account.clone(),
            imports: Arc::new([]),
            services: Arc::new([]),
            ..Login::default()
        }),
        (Some(Auth::Users(_)), Some(Auth::Users(new))) if login.jwt.is_some() => {
            let jwt = login.jwt.as_deref()?;
            new.jwt_login(jwt, None, None)
                .filter(|l| same_account(&l.account, &login.account))
        }
        (Some(Auth::Users(old)), Some(Auth::Users(new))) => {
            let before = old.find(&login.user)?;
            let after = new.find(&login.user)?;
            (before.credential == after.credential && same_account(&after.account, &login.account))
                .then(|| Login {
                    user: after.name.clone(),
                    permissions: after
                        .permissions
                        .as_ref()
                        .map(|p| Arc::new(ConnPermissions::new(p))),
                    account: login.account.clone(),
                    imports: new.imports_from(&login.account),
                    services: new.services_into(&login.account),
                    ..Login::default()
                })
        }
        (Some(old), Some(new)) if old == new => Some(login.clone()),
        _ => None,
    }
}

/// Whether `login`'s user JWT is revoked under `auth` (operator mode).
pub(crate) fn revoked(auth: Option<&Auth>, login: &Login) -> bool {
    let (Some(Auth::Users(users)), Some(jwt)) = (auth, login.jwt.as_deref()) else {
        return false;
    };
    users
        .operator
        .as_ref()
        .is_some_and(|op| matches!(op.verify_user(jwt, None), Err(jwt::JwtError::Revoked(_))))
}

/// The nonce an NKey user signs: random, URL-safe base64, as nats-server sends.
pub(crate) fn new_nonce() -> String {
    use base64::Engine as _;
    let mut bytes = [0u8; 11];
    rand::fill(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Whether `sig` (base64, URL-safe or standard, as clients send it) is `nkey`'s
/// signature of `nonce`.
pub(crate) fn verify_nkey(nkey: &str, nonce: &str, sig: &str) -> bool {
    use base64::Engine as _;
    let sig = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(sig.trim_end_matches('='))
        .or_else(|_| base64::engine::general_purpose::STANDARD.decode(sig));
    let Ok(sig) = sig else {
        return false;
    };
    nkeys::KeyPair::from_public_key(nkey).is_ok_and(|k| k.verify(nonce.as_bytes(), &sig).is_ok())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// One connection's permissions, compiled from its user's.
#[derive(Debug)]
pub(crate) struct ConnPermissions {
    publish: Option<Rules>,
    subscribe: Option<Rules>,
    responses: Option<ResponsePermission>,
    /// Reply subjects of requests delivered to this connection, while
    /// `allow_responses` lets it answer them: subject → (answers so far, since).
    replies: Mutex<HashMap<Bytes, (usize, Instant)>>,
    /// Set once a wildcard or queue subscription overlaps a denied subject: then
    /// deliveries are checked against the subscribe deny list.
    filter_deliveries: AtomicBool,
}

#[derive(Debug)]
struct Rules {
    allow: Option<Vec<Bytes>>,
    deny: Vec<Bytes>,
}

impl Rules {
    fn new(p: &SubjectPermission) -> Rules {
        let bytes = |v: &Vec<String>| v.iter().map(|s| Bytes::from(s.clone())).collect();
        Rules {
            allow: p.allow.as_ref().map(bytes),
            deny: bytes(&p.deny),
        }
    }

    /// nats-server's check: some allow entry matches (wildcards in `subject` match
    /// only the same wildcard), and no deny entry does.
    fn admits(&self, subject: &[u8]) -> bool {
        self.allow
            .as_ref()
            .is_none_or(|allow| allow.iter().any(|p| subject::matches(p, subject)))
            && !self.denies(subject)
    }

    fn denies(&self, subject: &[u8]) -> bool {
        self.deny.iter().any(|p| subject::matches(p, subject))
    }
}

/// How many publish verdicts a connection remembers (nats-server's
/// `maxPermCacheSize`).
pub(crate) const PUBLISH_CACHE: usize = 128;

impl ConnPermissions {
    fn new(p: &Permissions) -> ConnPermissions {
        let mut publish = p.publish.as_ref().map(Rules::new);
        if p.allow_responses.is_some() {
            // As nats-server: with responses allowed, publishing is allowed only
            // where the publish permissions say so explicitly.
            let rules = publish.get_or_insert(Rules {
                allow: None,
                deny: Vec::new(),
            });
            rules.allow.get_or_insert_with(Vec::new);
        }
        ConnPermissions {
            publish,
            subscribe: p.subscribe.as_ref().map(Rules::new),
            responses: p.allow_responses,
            replies: Mutex::new(HashMap::new()),
            filter_deliveries: AtomicBool::new(false),
        }
    }

    /// The publish verdict the permissions alone give (cacheable).
    pub(crate) fn publish_rule(&self, subject: &[u8]) -> bool {
        self.publish.as_ref().is_none_or(|r| r.admits(subject))
    }

    /// Whether `subject` is the reply to a request this connection received and may
    /// still be answered (counts the answer).
    pub(crate) fn response_allowed(&self, subject: &[u8]) -> bool {
        let Some(limit) = self.responses else {
            return false;
        };
        let mut replies = self.replies.lock();
        let Some((n, since)) = replies.get_mut(subject) else {
            return false;
        };
        *n += 1;
        if *n > limit.max_msgs || since.elapsed() > limit.expires {
            replies.remove(subject);
            return false;
        }
        true
    }

    /// Whether a subscription to `subject` (in `queue`) is allowed; remembers whether
    /// deliveries must be filtered from now on.
    pub(crate) fn may_subscribe(&self, subject: &[u8], queue: Option<&[u8]>) -> bool {
        let Some(rules) = &self.subscribe else {
            return true;
        };
        if !rules.admits(subject) {
            return false;
        }
        if (queue.is_some() || !subject::is_literal(subject))
            && rules
                .deny
                .iter()
                .any(|d| subject::subjects_collide(d, subject))
        {
            self.filter_deliveries.store(true, Ordering::Release);
        }
        true
    }

    /// Called for each message delivered to this connection: false drops it (a
    /// denied subject reached through a wildcard subscription). Tracks reply subjects
    /// for `allow_responses`.
    pub(crate) fn on_delivery(&self, subject: &[u8], reply: Option<&[u8]>) -> bool {
        if self.filter_deliveries.load(Ordering::Acquire)
            && self.subscribe.as_ref().is_some_and(|r| r.denies(subject))
        {
            return false;
        }
        if let (Some(limit), Some(reply)) = (self.responses, reply) {
            let mut replies = self.replies.lock();
            if replies.len() >= REPLIES_PRUNE_AT {
                replies.retain(|_, (n, since)| {
                    *n < limit.max_msgs && since.elapsed() <= limit.expires
                });
            }
            replies.insert(Bytes::copy_from_slice(reply), (0, Instant::now()));
        }
        true
    }
}

/// Tracked replies past which expired or used ones are swept.
const REPLIES_PRUNE_AT: usize = 4096;

/// Go's `%q` for the subjects in permission errors (nats-server's wording).
pub(crate) fn quote(subject: &[u8]) -> String {
    let mut out = String::with_capacity(subject.len() + 2);
    out.push('"');
    for c in String::from_utf8_lossy(subject).chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn perms(
        publish: Option<SubjectPermission>,
        subscribe: Option<SubjectPermission>,
    ) -> ConnPermissions {
        ConnPermissions::new(&Permissions {
            publish,
            subscribe,
            allow_responses: None,
        })
    }

    fn rule(allow: Option<&[&str]>, deny: &[&str]) -> Option<SubjectPermission> {
        Some(SubjectPermission {
            allow: allow.map(|a| a.iter().map(|s| (*s).to_owned()).collect()),
            deny: deny.iter().map(|s| (*s).to_owned()).collect(),
        })
    }

    #[test]
    fn publish_allow_then_deny() {
        let p = perms(rule(Some(&["orders.>"]), &["orders.secret"]), None);
        assert!(p.publish_rule(b"orders.new"));
        assert!(p.publish_rule(b"orders.eu.new"));
        assert!(!p.publish_rule(b"orders.secret"));
        assert!(!p.publish_rule(b"billing.new"));
        let deny_only = perms(rule(None, &["admin.*"]), None);
        assert!(deny_only.publish_rule(b"anything"));
        assert!(!deny_only.publish_rule(b"admin.reset"));
    }

    #[test]
    fn subscribe_wildcards_match_like_nats_server() {
        let p = perms(None, rule(Some(&["foo.*", "bar.>"]), &[]));
        assert!(p.may_subscribe(b"foo.x", None));
        assert!(p.may_subscribe(b"foo.*", None));
        assert!(p.may_subscribe(b"bar.a.b", None));
        assert!(p.may_subscribe(b"bar.>", None));
        // nats-server 2.15.1 matches the subscription's own tokens against the
        // allow list, so `foo.>` passes `foo.*` (its `>` is one token there).
        assert!(p.may_subscribe(b"foo.>", None));
        assert!(!p.may_subscribe(b">", None));
        assert!(!p.may_subscribe(b"baz", None));
    }

    #[test]
    fn wildcard_subscription_over_a_denied_subject_filters_deliveries() {
        let p = perms(None, rule(None, &["orders.secret"]));
        assert!(!p.may_subscribe(b"orders.secret", None));
        assert!(
            p.on_delivery(b"orders.secret", None),
            "no filter before a wildcard sub"
        );
        assert!(p.may_subscribe(b"orders.*", None));
        assert!(!p.on_delivery(b"orders.secret", None));
        assert!(p.on_delivery(b"orders.new", None));
    }

    #[test]
    fn responses_allowed_once_within_expiry() {
        let p = ConnPermissions::new(&Permissions {
            publish: None,
            subscribe: None,
            allow_responses: Some(ResponsePermission::default()),
        });
        // allow_responses turns the blanket publish allow off.
        assert!(!p.publish_rule(b"svc.reply"));
        assert!(!p.response_allowed(b"_INBOX.abc"));
        assert!(p.on_delivery(b"svc.req", Some(b"_INBOX.abc")));
        assert!(p.response_allowed(b"_INBOX.abc"));
        assert!(!p.response_allowed(b"_INBOX.abc"), "max_msgs 1");
    }

    #[test]
    fn nkey_signatures_verify() {
        let kp = nkeys::KeyPair::new_user();
        let nonce = new_nonce();
        let sig = kp.sign(nonce.as_bytes()).expect("sign");
        use base64::Engine as _;
        let encoded = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&sig);
        assert!(verify_nkey(&kp.public_key(), &nonce, &encoded));
        assert!(!verify_nkey(&kp.public_key(), "other", &encoded));
        let other = nkeys::KeyPair::new_user();
        assert!(!verify_nkey(&other.public_key(), &nonce, &encoded));
        assert!(!verify_nkey(&kp.public_key(), &nonce, "not base64!"));
    }

    #[test]
    fn users_are_checked() {
        let dup = Users::new(vec![
            User {
                name: "a".into(),
                credential: Credential::password("x".into()),
                permissions: None,
                account: DEFAULT_ACCOUNT.into(),
            },
            User {
                name: "a".into(),
                credential: Credential::password("y".into()),
                permissions: None,
                account: DEFAULT_ACCOUNT.into(),
            },
        ]);
        assert_eq!(dup.err(), Some(UsersError::Duplicate("a".into())));
        let bad = Users::new(vec![User {
            name: "UNOTAKEY".into(),
            credential: Credential::NKey,
            permissions: None,
            account: DEFAULT_ACCOUNT.into(),
        }]);
        assert!(matches!(bad, Err(UsersError::BadNKey(_))));
    }

    #[test]
    fn bcrypt_passwords_verify() {
        let hash = bcrypt::hash("s3cret", 4).expect("hash");
        let users = Users::new(vec![User {
            name: "alice".into(),
            credential: Credential::password(hash),
            permissions: None,
            account: DEFAULT_ACCOUNT.into(),
        }])
        .expect("users");
        let user = users.find("alice").expect("alice");
        assert!(users.password_ok(user, "s3cret"));
        assert!(users.password_ok(user, "s3cret"), "cached");
        assert!(!users.password_ok(user, "wrong"));
    }

    #[test]
    fn stream_imports_map_under_their_prefix() {
        let import = |prefix: Option<&'static str>| StreamImport {
            from: "A".into(),
            into: "B".into(),
            subject: Bytes::from_static(b"ev.*"),
            prefix: prefix.map(|p| Bytes::from_static(p.as_bytes())),
        };
        assert_eq!(
            import(Some("from_a")).map(b"ev.1").as_deref(),
            Some(&b"from_a.ev.1"[..])
        );
        assert_eq!(import(None).map(b"ev.1").as_deref(), Some(&b"ev.1"[..]));
        assert_eq!(import(None).map(b"ev.1.x"), None);
        assert_eq!(import(None).map(b"other"), None);
    }

    #[test]
    fn imports_map_their_local_subject_onto_the_export() {
        let import = |subject: &'static str, local: &'static str| ServiceImport {
            from: "A".into(),
            into: "B".into(),
            subject: Bytes::from_static(subject.as_bytes()),
            local: Bytes::from_static(local.as_bytes()),
        };
        assert_eq!(
            import("svc.time", "time").map(b"time").as_deref(),
            Some(&b"svc.time"[..])
        );
        assert_eq!(import("svc.time", "time").map(b"svc.time"), None);
        assert_eq!(
            import("svc.*", "svc.*").map(b"svc.echo").as_deref(),
            Some(&b"svc.echo"[..])
        );
        assert_eq!(import("svc.*", "svc.*").map(b"svc.a.b"), None);
    }

    #[test]
    fn quotes_like_go() {
        assert_eq!(quote(b"foo.bar"), "\"foo.bar\"");
        assert_eq!(quote(b"a\"b"), "\"a\\\"b\"");
    }
}
