//! Decentralized JWT auth, as nats-server's operator mode: a trusted operator JWT,
//! account JWTs from the memory resolver (`resolver_preload`), and user JWTs that
//! clients present in `CONNECT` (`jwt`, with `sig`: the user key's signature of the
//! nonce this connection's `INFO` carried).
//!
//! A JWT is three base64url parts, `header.claims.signature`; the header is
//! `{"typ":"JWT","alg":"ed25519-nkey"}` and the signature is the issuer NKey's
//! ed25519 signature of `header.claims`. The chain checked at `CONNECT`:
//! - the user JWT is signed by its account's key or one of the account's signing keys
//!   (`issuer_account` then names the account; a scoped signing key's template gives
//!   the user's permissions);
//! - the account JWT (checked at load) is signed by the operator or one of the
//!   operator's signing keys;
//! - neither has expired (`exp`) nor is it early (`nbf`), the account has not revoked
//!   the user (`revocations`: user key, or `*`, → a time at or after the user JWT's
//!   `iat`), and the nonce signature verifies with the user's key (unless the JWT is
//!   a bearer token).
//!
//! Any failure is nats-server's `Authorization Violation`. Accounts are named by their
//! public key, as nats-server names them, and feed the same accounts machinery as
//! `[accounts.NAME]`: subject isolation, stream imports, the one JetStream account.
//!
//! What is not built yet is refused when the account JWTs are loaded, by name:
//! service exports and imports, account limits other than unlimited (connections,
//! subscriptions, data, payload, and JetStream limits other than "unlimited").

use std::collections::{BTreeMap, HashMap};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use bytes::Bytes;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::{
    AccountName, Permissions, ResponsePermission, ServiceImport, StreamImport, SubjectPermission,
};

/// Why an operator or account JWT was refused at load, or a user JWT at `CONNECT`.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum JwtError {
    #[error("not a JWT (expected header.claims.signature in base64url)")]
    Malformed,
    #[error("unsupported JWT header (expected typ JWT, alg ed25519-nkey)")]
    Header,
    #[error("the JWT's claims do not parse: {0}")]
    Claims(String),
    #[error("the JWT's signature does not verify with its issuer `{0}`")]
    Signature(String),
    #[error("expected a {expected} JWT, got `{got}`")]
    Type { expected: &'static str, got: String },
    #[error("the {0} JWT has expired")]
    Expired(&'static str),
    #[error("the {0} JWT is not valid yet")]
    NotYetValid(&'static str),
    #[error("account `{account}` is not signed by the operator (issuer `{issuer}`)")]
    UntrustedAccount { account: String, issuer: String },
    #[error("resolver_preload key `{key}` holds the JWT of account `{subject}`")]
    PreloadKey { key: String, subject: String },
    #[error("operator JWT `{0}` is not self-signed")]
    OperatorIssuer(String),
    #[error("account `{0}` is not known to the resolver")]
    UnknownAccount(String),
    #[error("user `{user}` is not signed by account `{account}` or its signing keys")]
    UntrustedUser { user: String, account: String },
    #[error("user `{0}` is revoked")]
    Revoked(String),
    #[error("the nonce signature does not verify for user `{0}`")]
    Nonce(String),
    #[error("account `{account}`: {what} is not supported yet")]
    Unsupported { account: String, what: String },
    #[error("user `{0}` is signed by a scoped signing key but carries permissions or limits")]
    ScopedUserClaims(String),
    #[error("user `{user}`: {what} in a user JWT are not supported yet")]
    UnsupportedUser { user: String, what: &'static str },
    #[error("{0}")]
    Permissions(String),
}

/// The claims every NATS JWT carries.
#[derive(Debug, Deserialize)]
struct Claims<T> {
    #[serde(default)]
    iat: i64,
    iss: String,
    sub: String,
    #[serde(default)]
    exp: Option<i64>,
    #[serde(default)]
    nbf: Option<i64>,
    nats: T,
}

#[derive(Debug, Deserialize)]
struct Header {
    typ: String,
    alg: String,
}

#[derive(Debug, Deserialize)]
struct OperatorNats {
    #[serde(default)]
    signing_keys: Vec<String>,
    #[serde(default, rename = "type")]
    kind: String,
}

#[derive(Debug, Default, Deserialize)]
struct RawPermission {
    #[serde(default)]
    allow: Vec<String>,
    #[serde(default)]
    deny: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct RawResponse {
    #[serde(default)]
    max: i64,
    /// Nanoseconds.
    #[serde(default)]
    ttl: i64,
}

/// The permission claims shared by users, scoped signing keys and accounts'
/// `default_permissions`.
#[derive(Debug, Default, Deserialize)]
struct RawPermissions {
    #[serde(default, rename = "pub")]
    publish: RawPermission,
    #[serde(default, rename = "sub")]
    subscribe: RawPermission,
    #[serde(default)]
    resp: Option<RawResponse>,
}

impl RawPermissions {
    fn is_empty(&self) -> bool {
        [&self.publish, &self.subscribe]
            .iter()
            .all(|p| p.allow.is_empty() && p.deny.is_empty())
            && self.resp.is_none()
    }

    /// nats-server's reading: an empty allow list allows everything not denied.
    fn permissions(&self) -> Result<Option<Permissions>, JwtError> {
        if self.is_empty() {
            return Ok(None);
        }
        let rule = |p: &RawPermission| -> Result<Option<SubjectPermission>, JwtError> {
            for s in p.allow.iter().chain(&p.deny) {
                if !infinistream_protocol::subject::is_valid_subject(s) {
                    return Err(JwtError::Permissions(format!(
                        "permission subject `{s}` is not a valid subject (queue permissions are not supported yet)"
                    )));
                }
            }
            Ok(
                (!p.allow.is_empty() || !p.deny.is_empty()).then(|| SubjectPermission {
                    allow: (!p.allow.is_empty()).then(|| p.allow.clone()),
                    deny: p.deny.clone(),
                }),
            )
        };
        let default = ResponsePermission::default();
        Ok(Some(Permissions {
            publish: rule(&self.publish)?,
            subscribe: rule(&self.subscribe)?,
            allow_responses: self.resp.as_ref().map(|r| ResponsePermission {
                max_msgs: usize::try_from(r.max)
                    .ok()
                    .filter(|m| *m > 0)
                    .unwrap_or(default.max_msgs),
                expires: u64::try_from(r.ttl)
                    .ok()
                    .filter(|t| *t > 0)
                    .map_or(default.expires, std::time::Duration::from_nanos),
            }),
        }))
    }
}

/// An account signing key: a plain key, or a scoped one whose template sets the
/// permissions of the users it signs.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawSigningKey {
    Plain(String),
    Scoped {
        key: String,
        #[serde(default)]
        template: RawPermissions,
    },
}

#[derive(Debug, Deserialize)]
struct RawExport {
    #[serde(default)]
    subject: String,
    #[serde(default)]
    response_type: Option<String>,
    #[serde(default, rename = "type")]
    kind: String,
}

#[derive(Debug, Deserialize)]
struct RawImport {
    #[serde(default)]
    subject: String,
    #[serde(default)]
    account: String,
    #[serde(default)]
    local_subject: String,
    #[serde(default)]
    to: String,
    #[serde(default, rename = "type")]
    kind: String,
}

#[derive(Debug, Default, Deserialize)]
struct RawLimits {
    #[serde(default)]
    subs: Option<i64>,
    #[serde(default)]
    data: Option<i64>,
    #[serde(default)]
    payload: Option<i64>,
    #[serde(default)]
    conn: Option<i64>,
    #[serde(default)]
    mem_storage: Option<i64>,
    #[serde(default)]
    disk_storage: Option<i64>,
    #[serde(default)]
    streams: Option<i64>,
    #[serde(default)]
    consumer: Option<i64>,
}

#[derive(Debug, Deserialize)]
struct AccountNats {
    #[serde(default)]
    signing_keys: Vec<RawSigningKey>,
    #[serde(default)]
    revocations: HashMap<String, i64>,
    #[serde(default)]
    limits: RawLimits,
    #[serde(default)]
    exports: Vec<RawExport>,
    #[serde(default)]
    imports: Vec<RawImport>,
    #[serde(default)]
    default_permissions: RawPermissions,
    #[serde(default, rename = "type")]
    kind: String,
}

#[derive(Debug, Deserialize)]
struct UserNats {
    #[serde(flatten)]
    permissions: RawPermissions,
    #[serde(default)]
    issuer_account: Option<String>,
    #[serde(default)]
    bearer_token: bool,
    #[serde(default)]
    subs: Option<i64>,
    #[serde(default)]
    data: Option<i64>,
    #[serde(default)]
    payload: Option<i64>,
    #[serde(default)]
    src: Option<serde_json::Value>,
    #[serde(default)]
    times: Vec<serde_json::Value>,
    #[serde(default)]
    allowed_connection_types: Vec<String>,
    #[serde(default, rename = "type")]
    kind: String,
}

impl UserNats {
    /// nats-server's `HasEmptyPermissions`: no permissions, limits, bearer flag or
    /// connection types (required of a scoped signing key's users).
    fn is_empty(&self) -> bool {
        self.permissions.is_empty()
            && [self.subs, self.data, self.payload]
                .iter()
                .all(|v| v.is_none_or(|v| v == 0))
            && self
                .src
                .as_ref()
                .is_none_or(|s| s.is_null() || s.as_str() == Some(""))
            && self.times.is_empty()
            && !self.bearer_token
            && self.allowed_connection_types.is_empty()
    }

    /// Restrictions a user JWT can carry that are not enforced yet: such a user is
    /// refused rather than let in without them.
    fn unsupported(&self) -> Option<&'static str> {
        let limited = |v: Option<i64>| v.is_some_and(|v| v >= 0);
        if limited(self.subs) || limited(self.data) || limited(self.payload) {
            Some("user limits (subs, data, payload)")
        } else if self.src.as_ref().is_some_and(|s| {
            !s.is_null() && s.as_str() != Some("") && s.as_array().is_none_or(|a| !a.is_empty())
        }) {
            Some("source network restrictions (src)")
        } else if !self.times.is_empty() {
            Some("connection time windows (times)")
        } else if !self.allowed_connection_types.is_empty()
            && !self
                .allowed_connection_types
                .iter()
                .any(|t| t == "STANDARD")
        {
            Some("allowed_connection_types without STANDARD")
        } else {
            None
        }
    }
}

/// Decodes `jwt` and verifies its signature with the key in its `iss` claim.
fn decode<T: DeserializeOwned>(jwt: &str) -> Result<Claims<T>, JwtError> {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut parts = jwt.trim().split('.');
    let (Some(header), Some(claims), Some(sig), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwtError::Malformed);
    };
    let part = |p: &str| {
        b64.decode(p.trim_end_matches('='))
            .map_err(|_| JwtError::Malformed)
    };
    let parsed: Header = serde_json::from_slice(&part(header)?).map_err(|_| JwtError::Header)?;
    if !parsed.typ.eq_ignore_ascii_case("JWT") || parsed.alg != "ed25519-nkey" {
        return Err(JwtError::Header);
    }
    let claims_bytes = part(claims)?;
    let parsed: Claims<T> =
        serde_json::from_slice(&claims_bytes).map_err(|e| JwtError::Claims(e.to_string()))?;
    let signed = &jwt.trim()[..header.len() + 1 + claims.len()];
    let ok = nkeys::KeyPair::from_public_key(&parsed.iss)
        .is_ok_and(|k| part(sig).is_ok_and(|s| k.verify(signed.as_bytes(), &s).is_ok()));
    if !ok {
        return Err(JwtError::Signature(parsed.iss));
    }
    Ok(parsed)
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

impl<T> Claims<T> {
    fn check_time(&self, what: &'static str, now: i64) -> Result<(), JwtError> {
        if self.exp.is_some_and(|exp| exp > 0 && now > exp) {
            return Err(JwtError::Expired(what));
        }
        if self.nbf.is_some_and(|nbf| nbf > 0 && now < nbf) {
            return Err(JwtError::NotYetValid(what));
        }
        Ok(())
    }
}

fn check_type(expected: &'static str, got: &str) -> Result<(), JwtError> {
    if got == expected {
        Ok(())
    } else {
        Err(JwtError::Type {
            expected,
            got: got.to_owned(),
        })
    }
}

/// One account from an account JWT.
#[derive(Debug, PartialEq, Eq)]
struct Account {
    name: AccountName,
    /// Signing keys → the permissions of a scoped key's users (None: plain key).
    signing_keys: HashMap<String, Option<Permissions>>,
    revocations: HashMap<String, i64>,
    default_permissions: Option<Permissions>,
    exp: Option<i64>,
    nbf: Option<i64>,
    jetstream: bool,
}

/// The operator's trust: its keys and the accounts the resolver knows.
#[derive(Debug, PartialEq, Eq)]
pub struct Operator {
    accounts: HashMap<String, Account>,
    jetstream: Vec<AccountName>,
    stream_imports: Vec<StreamImport>,
    service_imports: Vec<ServiceImport>,
}

/// A user JWT that passed every check.
#[derive(Debug)]
pub(crate) struct JwtUser {
    /// The user's public key.
    pub key: String,
    pub account: AccountName,
    pub permissions: Option<Permissions>,
    /// The user JWT's `exp` (Unix seconds), if it has one.
    pub expires: Option<i64>,
}

impl Operator {
    /// Checks the operator JWTs (`operators`, self-signed) and the preloaded account
    /// JWTs (account public key → JWT), each signed by one of the operators.
    pub fn new(
        operators: &[String],
        preload: &BTreeMap<String, String>,
    ) -> Result<Operator, JwtError> {
        let now = now_secs();
        let mut trusted = Vec::new();
        for jwt in operators {
            let op: Claims<OperatorNats> = decode(jwt)?;
            check_type("operator", &op.nats.kind)?;
            if op.iss != op.sub && !op.nats.signing_keys.contains(&op.iss) {
                return Err(JwtError::OperatorIssuer(op.sub));
            }
            op.check_time("operator", now)?;
            trusted.push(op.sub);
            trusted.extend(op.nats.signing_keys);
        }
        let mut accounts = HashMap::new();
        let mut exports = HashMap::new();
        let mut imports = Vec::new();
        for (key, jwt) in preload {
            let claims: Claims<AccountNats> = decode(jwt)?;
            check_type("account", &claims.nats.kind)?;
            if &claims.sub != key {
                return Err(JwtError::PreloadKey {
                    key: key.clone(),
                    subject: claims.sub,
                });
            }
            if !trusted.contains(&claims.iss) {
                return Err(JwtError::UntrustedAccount {
                    account: claims.sub,
                    issuer: claims.iss,
                });
            }
            let unsupported = |what: String| JwtError::Unsupported {
                account: key.clone(),
                what,
            };
            let limits = &claims.nats.limits;
            for (name, value) in [
                ("conn", limits.conn),
                ("subs", limits.subs),
                ("data", limits.data),
                ("payload", limits.payload),
            ] {
                if value.is_some_and(|v| v >= 0) {
                    return Err(unsupported(format!("the account limit `{name}`")));
                }
            }
            let storage = [limits.mem_storage, limits.disk_storage];
            let jetstream = storage.iter().any(|v| v.is_some_and(|v| v != 0));
            if jetstream
                && (storage.iter().any(|v| v.is_some_and(|v| v > 0))
                    || [limits.streams, limits.consumer]
                        .iter()
                        .any(|v| v.is_some_and(|v| v >= 0)))
            {
                return Err(unsupported(
                    "JetStream limits from an account JWT other than unlimited (-1)".into(),
                ));
            }
            for export in &claims.nats.exports {
                let singleton = export
                    .response_type
                    .as_deref()
                    .is_none_or(|t| t.is_empty() || t.eq_ignore_ascii_case("singleton"));
                if !matches!(export.kind.as_str(), "stream" | "service") || !singleton {
                    return Err(unsupported(format!(
                        "the {} export `{}` (response type {:?})",
                        export.kind, export.subject, export.response_type
                    )));
                }
            }
            exports.insert(key.clone(), claims.nats.exports);
            for import in claims.nats.imports {
                if import.kind == "service" {
                    imports.push((key.clone(), import));
                    continue;
                }
                if import.kind != "stream" || !import.local_subject.is_empty() {
                    return Err(unsupported(format!(
                        "the {} import `{}` (only stream imports, with `to` as prefix)",
                        import.kind, import.subject
                    )));
                }
                imports.push((key.clone(), import));
            }
            let mut signing_keys = HashMap::new();
            for sk in &claims.nats.signing_keys {
                match sk {
                    RawSigningKey::Plain(k) => signing_keys.insert(k.clone(), None),
                    RawSigningKey::Scoped { key, template } => signing_keys.insert(
                        key.clone(),
                        Some(template.permissions()?.unwrap_or_default()),
                    ),
                };
            }
            let name: AccountName = key.as_str().into();
            accounts.insert(
                key.clone(),
                Account {
                    name,
                    signing_keys,
                    revocations: claims.nats.revocations,
                    default_permissions: claims.nats.default_permissions.permissions()?,
                    exp: claims.exp,
                    nbf: claims.nbf,
                    jetstream,
                },
            );
        }
        let mut stream_imports = Vec::new();
        let mut service_imports = Vec::new();
        for (into, import) in imports {
            let exported = exports.get(&import.account).is_some_and(|list| {
                list.iter().any(|e| {
                    e.kind == import.kind
                        && infinistream_protocol::subject::is_subset_match(
                            &import.subject,
                            &e.subject,
                        )
                })
            });
            let (Some(from), Some(to)) = (accounts.get(&import.account), accounts.get(&into))
            else {
                return Err(JwtError::UnknownAccount(import.account));
            };
            if !exported {
                return Err(JwtError::Unsupported {
                    account: into,
                    what: format!(
                        "importing `{}`, which account `{}` does not export,",
                        import.subject, import.account
                    ),
                });
            }
            if import.kind == "service" {
                let local = [&import.local_subject, &import.to]
                    .into_iter()
                    .find(|s| !s.is_empty())
                    .unwrap_or(&import.subject)
                    .clone();
                let wildcard = |s: &str| s.split('.').any(|t| t == "*" || t == ">");
                if local != import.subject && (wildcard(&local) || wildcard(&import.subject)) {
                    return Err(JwtError::Unsupported {
                        account: into,
                        what: format!(
                            "a service import remapping wildcards (`{}` to `{local}`)",
                            import.subject
                        ),
                    });
                }
                service_imports.push(ServiceImport {
                    from: from.name.clone(),
                    into: to.name.clone(),
                    subject: Bytes::from(import.subject),
                    local: Bytes::from(local),
                });
                continue;
            }
            stream_imports.push(StreamImport {
                from: from.name.clone(),
                into: to.name.clone(),
                subject: Bytes::from(import.subject),
                prefix: (!import.to.is_empty()).then(|| Bytes::from(import.to)),
            });
        }
        let mut jetstream: Vec<AccountName> = accounts
            .values()
            .filter(|a| a.jetstream)
            .map(|a| a.name.clone())
            .collect();
        jetstream.sort();
        Ok(Operator {
            accounts,
            jetstream,
            stream_imports,
            service_imports,
        })
    }

    /// The accounts whose JWT enables JetStream.
    pub fn jetstream_accounts(&self) -> &[AccountName] {
        &self.jetstream
    }

    /// The service imports the account JWTs declare.
    pub fn service_imports(&self) -> &[ServiceImport] {
        &self.service_imports
    }

    /// The stream imports the account JWTs declare.
    pub fn stream_imports(&self) -> &[StreamImport] {
        &self.stream_imports
    }

    /// Checks a user JWT and, unless it is a bearer token, `sig` over `nonce`
    /// (`None`: skip the signature, for a connection already signed in).
    pub(crate) fn verify_user(
        &self,
        jwt: &str,
        signed: Option<(Option<&str>, Option<&str>)>,
    ) -> Result<JwtUser, JwtError> {
        let now = now_secs();
        let user: Claims<UserNats> = decode(jwt)?;
        check_type("user", &user.nats.kind)?;
        user.check_time("user", now)?;
        if let Some(what) = user.nats.unsupported() {
            return Err(JwtError::UnsupportedUser {
                user: user.sub,
                what,
            });
        }
        let account_key = user.nats.issuer_account.as_deref().unwrap_or(&user.iss);
        let account = self
            .accounts
            .get(account_key)
            .ok_or_else(|| JwtError::UnknownAccount(account_key.to_owned()))?;
        let scope = if user.iss == account_key {
            None
        } else {
            match account.signing_keys.get(&user.iss) {
                Some(Some(_)) if !user.nats.is_empty() => {
                    return Err(JwtError::ScopedUserClaims(user.sub));
                }
                Some(scope) => scope.as_ref(),
                None => {
                    return Err(JwtError::UntrustedUser {
                        user: user.sub,
                        account: account_key.to_owned(),
                    });
                }
            }
        };
        if account.exp.is_some_and(|exp| exp > 0 && now > exp) {
            return Err(JwtError::Expired("account"));
        }
        if account.nbf.is_some_and(|nbf| nbf > 0 && now < nbf) {
            return Err(JwtError::NotYetValid("account"));
        }
        let revoked = [user.sub.as_str(), "*"]
            .iter()
            .any(|k| account.revocations.get(*k).is_some_and(|t| *t >= user.iat));
        if revoked {
            return Err(JwtError::Revoked(user.sub));
        }
        if let Some((nonce, sig)) = signed
            && !user.nats.bearer_token
        {
            let ok = nonce
                .zip(sig)
                .is_some_and(|(n, s)| super::verify_nkey(&user.sub, n, s));
            if !ok {
                return Err(JwtError::Nonce(user.sub));
            }
        }
        let permissions = match scope {
            Some(template) => Some(template.clone()),
            None => user
                .nats
                .permissions
                .permissions()?
                .or_else(|| account.default_permissions.clone()),
        };
        Ok(JwtUser {
            key: user.sub,
            account: account.name.clone(),
            permissions,
            expires: user.exp.filter(|exp| *exp > 0),
        })
    }
}

/// Test and tooling helper: encodes `claims` (JSON) as a JWT signed by `issuer`.
pub fn encode(claims: &serde_json::Value, issuer: &nkeys::KeyPair) -> Result<String, JwtError> {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let header = b64.encode(br#"{"typ":"JWT","alg":"ed25519-nkey"}"#);
    let body = b64.encode(claims.to_string());
    let signed = format!("{header}.{body}");
    let sig = issuer
        .sign(signed.as_bytes())
        .map_err(|_| JwtError::Signature(issuer.public_key()))?;
    Ok(format!("{signed}.{}", b64.encode(sig)))
}

/// The user JWT and seed as a `nats` credentials file, as `nsc` writes it.
pub fn credentials_file(jwt: &str, seed: &str) -> String {
    format!(
        "-----BEGIN NATS USER JWT-----\n{jwt}\n------END NATS USER JWT------\n\n\
         ************************* IMPORTANT *************************\n\
         NKEY Seed printed below can be used to sign and prove identity.\n\
         NKEYs are sensitive and should be treated as secrets.\n\n\
         -----BEGIN USER NKEY SEED-----\n{seed}\n------END USER NKEY SEED------\n\n\
         *************************************************************\n"
    )
}

#[cfg(test)]
mod tests;
