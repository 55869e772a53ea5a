//! Client authentication and TLS on the NATS client listener.

use std::path::PathBuf;

use super::RawAgentConfig;
use crate::error::{ConfigError, invalid};
use crate::users::UserSpec;

/// Client authentication the NATS listener enforces.
#[derive(Clone, PartialEq, Eq)]
pub enum ClientAuth {
    UserPass {
        user: String,
        pass: String,
    },
    Token(String),
    /// The config file's `[[users]]` and `[accounts.NAME]` users (see
    /// [`crate::users`], [`crate::accounts`]).
    Users {
        users: Vec<UserSpec>,
        /// The JetStream account that owns the bare stream ids (`$G` unless an
        /// account says `jetstream = true`; see [`crate::accounts`]).
        jetstream_account: String,
        /// That account's JetStream limits (nats-server's account `jetstream {
        /// ... }`), enforced by the control plane.
        jetstream_limits: crate::accounts::JetStreamLimits,
        /// The other JetStream accounts (stream ids `<account>.<name>`) and their
        /// limits.
        jetstream_more: Vec<(String, crate::accounts::JetStreamLimits)>,
        /// Subjects one account's publishes share with another (see
        /// [`crate::accounts`]).
        stream_imports: Vec<crate::accounts::StreamImportSpec>,
        /// Services one account reaches in another (see [`crate::accounts`]).
        service_imports: Vec<crate::accounts::ServiceImportSpec>,
        /// An external service signs in every other user (see [`CalloutSpec`]).
        auth_callout: Option<CalloutSpec>,
    },
    /// Operator mode (decentralized JWT auth, see [`super::operator`]).
    Operator(super::operator::OperatorSpec),
}

impl std::fmt::Debug for ClientAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print secrets.
        match self {
            ClientAuth::UserPass { user, .. } => f
                .debug_struct("UserPass")
                .field("user", user)
                .field("pass", &"<redacted>")
                .finish(),
            ClientAuth::Token(_) => f.debug_tuple("Token").field(&"<redacted>").finish(),
            ClientAuth::Users {
                users,
                jetstream_account,
                jetstream_limits,
                jetstream_more,
                stream_imports,
                service_imports,
                auth_callout,
            } => f
                .debug_struct("Users")
                .field("users", users)
                .field("jetstream_account", jetstream_account)
                .field("jetstream_limits", jetstream_limits)
                .field("jetstream_more", jetstream_more)
                .field("stream_imports", stream_imports)
                .field("service_imports", service_imports)
                .field("auth_callout", auth_callout)
                .finish(),
            ClientAuth::Operator(spec) => f.debug_tuple("Operator").field(spec).finish(),
        }
    }
}

/// nats-server's `authorization { auth_callout { … } }`, written in TOML:
///
/// ```toml
/// [auth_callout]
/// issuer = "ABJ…"          # the account public key that signs the service's answers
/// auth_users = ["auth"]    # users that sign in themselves (the service's own)
/// account = "AUTH"         # where the service listens on $SYS.REQ.USER.AUTH (default $G)
/// ```
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RawAuthCallout {
    pub issuer: String,
    #[serde(default)]
    pub auth_users: Vec<String>,
    #[serde(default)]
    pub account: Option<String>,
    /// Encrypted requests (an X25519 public key): not supported yet.
    #[serde(default)]
    pub xkey: Option<String>,
}

/// The auth callout as checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CalloutSpec {
    /// The account public key whose signature the service's answers carry.
    pub issuer: String,
    /// Users that sign in with their own credentials, never through the service.
    pub auth_users: Vec<String>,
    /// The account the service's `$SYS.REQ.USER.AUTH` subscription is in.
    pub account: String,
}

impl RawAgentConfig {
    fn auth_callout(
        &self,
        users: &[crate::users::UserSpec],
    ) -> Result<Option<CalloutSpec>, ConfigError> {
        let Some(raw) = &self.auth_callout else {
            return Ok(None);
        };
        if raw.xkey.is_some() {
            return Err(invalid(
                "auth_callout.xkey",
                "encrypted callout requests (xkey) are not supported yet",
            ));
        }
        if !raw.issuer.starts_with('A') || raw.issuer.len() != 56 {
            return Err(invalid(
                "auth_callout.issuer",
                format!(
                    "must be an account public key (56 characters starting with A), got `{}`",
                    raw.issuer
                ),
            ));
        }
        if raw.auth_users.is_empty() {
            return Err(invalid(
                "auth_callout.auth_users",
                "must name the callout service's own users",
            ));
        }
        for name in &raw.auth_users {
            if !users.iter().any(|u| &u.name == name) {
                return Err(invalid(
                    "auth_callout.auth_users",
                    format!("`{name}` is not a configured user"),
                ));
            }
        }
        let account = raw.account.clone().unwrap_or_else(|| "$G".to_owned());
        let known = account == "$G"
            || self
                .accounts
                .as_ref()
                .is_some_and(|a| a.contains_key(&account));
        if !known {
            return Err(invalid(
                "auth_callout.account",
                format!("`{account}` is not a configured account"),
            ));
        }
        Ok(Some(CalloutSpec {
            issuer: raw.issuer.clone(),
            auth_users: raw.auth_users.clone(),
            account,
        }))
    }
}

/// TLS on the NATS client listener: PEM files, checked to exist when loaded by the
/// broker at start-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Clients must present a certificate chaining to these CAs.
    pub client_ca: Option<PathBuf>,
    pub handshake_first: bool,
}

impl RawAgentConfig {
    /// The client listener's authentication: user and password, or a token, or the
    /// `[[users]]` of the file, or none.
    pub(super) fn client_auth(&self) -> Result<Option<ClientAuth>, ConfigError> {
        if let Some(spec) = super::operator::resolve(self)? {
            if self.auth_callout.is_some() {
                return Err(invalid(
                    "auth_callout",
                    "in operator mode the callout is configured in the account JWT, which is not supported yet",
                ));
            }
            return Ok(Some(ClientAuth::Operator(spec)));
        }
        if self.auth_callout.is_some()
            && self.users.as_ref().is_none_or(|u| u.is_empty())
            && self.accounts.is_none()
        {
            return Err(invalid(
                "auth_callout",
                "needs the callout service's own users (`[[users]]` or `[accounts.NAME]`, named in `auth_users`)",
            ));
        }
        let accounts = self.accounts.as_ref().filter(|a| !a.is_empty());
        let users = self
            .users
            .as_deref()
            .filter(|u| !u.is_empty() || accounts.is_some());
        let users = users.or(accounts.map(|_| &[][..]));
        let auth = match (&self.user, &self.pass, &self.token) {
            (None, None, None) if users.is_some() => {
                let resolved = crate::accounts::resolve(
                    users.unwrap_or_default(),
                    accounts.unwrap_or(&Default::default()),
                )?;
                let auth_callout = self.auth_callout(&resolved.users)?;
                Some(ClientAuth::Users {
                    users: resolved.users,
                    jetstream_account: resolved.jetstream,
                    jetstream_limits: resolved.jetstream_limits,
                    jetstream_more: resolved.jetstream_more,
                    stream_imports: resolved.stream_imports,
                    service_imports: resolved.service_imports,
                    auth_callout,
                })
            }
            _ if users.is_some() => {
                return Err(invalid(
                    "users",
                    "cannot be combined with INFINISTREAM_USER / INFINISTREAM_PASS / INFINISTREAM_TOKEN",
                ));
            }
            (None, None, None) => None,
            (Some(user), Some(pass), None) => Some(ClientAuth::UserPass {
                user: user.clone(),
                pass: pass.clone(),
            }),
            (None, None, Some(token)) if !token.is_empty() => {
                Some(ClientAuth::Token(token.clone()))
            }
            (None, None, Some(_)) => {
                return Err(invalid("INFINISTREAM_TOKEN", "must not be empty"));
            }
            (Some(_), None, _) | (None, Some(_), _) => {
                return Err(invalid(
                    "INFINISTREAM_USER",
                    "and INFINISTREAM_PASS must be set together",
                ));
            }
            (Some(_), Some(_), Some(_)) => {
                return Err(invalid(
                    "INFINISTREAM_TOKEN",
                    "cannot be combined with INFINISTREAM_USER / INFINISTREAM_PASS",
                ));
            }
        };
        Ok(auth)
    }

    /// The client listener's TLS files: certificate and key together, a CA only with them.
    pub(super) fn tls_files(&self) -> Result<Option<TlsFiles>, ConfigError> {
        let tls = match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Some(TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
                client_ca: self.tls_ca.clone(),
                handshake_first: self.tls_handshake_first.unwrap_or(false),
            }),
            (None, None) if self.tls_ca.is_some() => {
                return Err(invalid(
                    "INFINISTREAM_TLS_CA",
                    "needs INFINISTREAM_TLS_CERT and INFINISTREAM_TLS_KEY (client certificates are checked inside TLS)",
                ));
            }
            (None, None) if self.tls_handshake_first == Some(true) => {
                return Err(invalid(
                    "INFINISTREAM_TLS_HANDSHAKE_FIRST",
                    "needs INFINISTREAM_TLS_CERT and INFINISTREAM_TLS_KEY",
                ));
            }
            (None, None) => None,
            _ => {
                return Err(invalid(
                    "INFINISTREAM_TLS_CERT",
                    "and INFINISTREAM_TLS_KEY must be set together",
                ));
            }
        };
        Ok(tls)
    }
}
