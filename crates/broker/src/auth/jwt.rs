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
//! Limits, as nats-server applies them: an account's `conn` (connections open on
//! this agent), and the per-connection `subs` and `payload` (the smaller of the
//! user's, or its scoped signing key template's, and the account's); a user's `src`
//! (the client address must be in one of the CIDR blocks) and `times` (wall-clock
//! windows in `times_location`, UTC when empty: refused outside them, closed with
//! `User Authentication Expired` when the window ends). `data` and `leaf` are
//! accepted and not enforced, as nats-server does not enforce them on clients. An
//! account's JetStream limits (`mem_storage`, `disk_storage`, `streams`, `consumer`)
//! are read by [`Operator::jetstream_limits`] for the control plane.
//!
//! What is not built yet is refused when the account JWTs are loaded, by name: stream
//! and chunked service responses, JetStream limits other than those four (per-stream
//! maxima, `max_bytes_required`, `max_ack_pending`, tiers).

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use bytes::Bytes;
use infinistream_protocol::jsapi::account::AccountLimits;
use infinistream_protocol::jsapi::schedule::Zone;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::{
    AccountName, ConnLimits, Expiry, Permissions, ResponsePermission, ServiceImport, StreamImport,
    SubjectPermission,
};

/// Why an operator or account JWT was refused at load, or a user JWT at `CONNECT`.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum JwtError {
    #[error("not a JWT (expected header.claims.signature in base64url)")]
    Malformed,
    /// nats' JWT library's words for a token that is not three dot-separated parts.
    #[error("expected 3 chunks")]
    Chunks,
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
    #[error("user `{0}` is outside its connect times")]
    OutsideTimes(String),
    #[error("account `{account}`: {what} is not supported yet")]
    Unsupported { account: String, what: String },
    #[error("user `{0}` is signed by a scoped signing key but carries permissions or limits")]
    ScopedUserClaims(String),
    #[error("user `{user}`: {what} in a user JWT are not supported yet")]
    UnsupportedUser { user: String, what: &'static str },
    #[error("{0}")]
    Permissions(String),
    #[error("auth callout: {0}")]
    Callout(String),
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
    #[serde(default)]
    system_account: String,
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
        template: Box<RawTemplate>,
    },
}

/// A scoped signing key's template: the permissions and limits of the users it signs.
#[derive(Debug, Default, Deserialize)]
struct RawTemplate {
    #[serde(flatten)]
    permissions: RawPermissions,
    #[serde(flatten)]
    limits: RawUserLimits,
}

/// The limits a user JWT (or a scoped key's template) carries.
#[derive(Debug, Default, Deserialize)]
struct RawUserLimits {
    #[serde(default)]
    subs: Option<i64>,
    #[serde(default)]
    data: Option<i64>,
    #[serde(default)]
    payload: Option<i64>,
    /// CIDR blocks: a list, or (older JWTs) one comma-separated string.
    #[serde(default)]
    src: Option<serde_json::Value>,
    #[serde(default)]
    times: Vec<RawTimeRange>,
    /// The IANA zone `times` are read in (empty: the server's, here UTC).
    #[serde(default)]
    times_location: String,
}

/// One connection time window of a user JWT: wall-clock `HH:MM:SS` times.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
struct RawTimeRange {
    #[serde(default)]
    start: String,
    #[serde(default)]
    end: String,
}

impl RawUserLimits {
    fn is_empty(&self) -> bool {
        [self.subs, self.data, self.payload]
            .iter()
            .all(|v| v.is_none_or(|v| v == 0))
            && self.sources().is_empty()
            && self.times.is_empty()
    }

    /// The `src` CIDR blocks as written (empty: any address).
    fn sources(&self) -> Vec<String> {
        let list = match &self.src {
            Some(serde_json::Value::String(s)) => s.split(',').map(str::to_owned).collect(),
            Some(serde_json::Value::Array(a)) => a
                .iter()
                .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
                .collect(),
            _ => Vec::new(),
        };
        list.into_iter()
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect()
    }

    fn limits(&self) -> UserLimits {
        UserLimits {
            max_subs: limit(self.subs),
            max_payload: limit(self.payload),
            sources: self.sources().into(),
            times: (!self.times.is_empty()).then(|| {
                Arc::new(Times {
                    ranges: self.times.clone(),
                    location: self.times_location.clone(),
                })
            }),
        }
    }
}

/// A JWT limit: negative (nats' `-1`) is unlimited.
fn limit(value: Option<i64>) -> Option<u64> {
    value.and_then(|v| u64::try_from(v).ok())
}

/// A user's limits once parsed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct UserLimits {
    max_subs: Option<u64>,
    max_payload: Option<u64>,
    sources: Arc<[String]>,
    times: Option<Arc<Times>>,
}

/// A user's connection time windows (nats-server's `times` and `times_location`).
#[derive(Debug, PartialEq, Eq)]
struct Times {
    ranges: Vec<RawTimeRange>,
    location: String,
}

impl Times {
    /// nats-server's `validateTimes`: the Unix second at which the window `now`
    /// (Unix seconds) falls in ends; None outside every window, or when a time or
    /// the location does not parse. Each window is read on the local day of `now`
    /// (an end before its start is the next day's), and holds strictly between its
    /// start and its end.
    fn window_end(&self, now: i64) -> Option<i64> {
        let zone = if self.location.is_empty() {
            Zone::default()
        } else {
            Zone::load(&self.location)?
        };
        let mut found = None;
        for range in &self.ranges {
            let (start, end) = (wall_clock(&range.start)?, wall_clock(&range.end)?);
            let start = zone.day_at(now, 0, start.0, start.1, start.2);
            let mut end_at = zone.day_at(now, 0, end.0, end.1, end.2);
            if start > end_at {
                end_at = zone.day_at(now, 1, end.0, end.1, end.2);
            }
            if found.is_none() && start < now && now < end_at {
                found = Some(end_at);
            }
        }
        found
    }
}

/// Go's `time.Parse("15:04:05", …)`: an hour of one or two digits (0–23), then
/// two-digit minutes and seconds (0–59).
fn wall_clock(text: &str) -> Option<(u32, u32, u32)> {
    let mut parts = text.split(':');
    let (Some(h), Some(m), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    let digits = |p: &str, lens: &[usize]| {
        (lens.contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()))
            .then(|| p.parse::<u32>().ok())
            .flatten()
    };
    let (h, m, s) = (digits(h, &[1, 2])?, digits(m, &[2])?, digits(s, &[2])?);
    (h < 24 && m < 60 && s < 60).then_some((h, m, s))
}

/// nats-server's `validateSrc`: the address is in one of the CIDR blocks (an
/// unparsable block matches nothing).
pub(crate) fn source_allowed(sources: &[String], addr: IpAddr) -> bool {
    sources.is_empty() || sources.iter().any(|cidr| cidr_contains(cidr, addr))
}

fn cidr_contains(cidr: &str, addr: IpAddr) -> bool {
    let Some((net, bits)) = cidr.split_once('/') else {
        return false;
    };
    let (Ok(net), Ok(bits)) = (net.parse::<IpAddr>(), bits.parse::<u32>()) else {
        return false;
    };
    let addr = match addr {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(addr, IpAddr::V4),
        v4 => v4,
    };
    match (net, addr) {
        (IpAddr::V4(n), IpAddr::V4(a)) if bits <= 32 => {
            let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
            u32::from(n) & mask == u32::from(a) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(a)) if bits <= 128 => {
            let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
            u128::from(n) & mask == u128::from(a) & mask
        }
        _ => false,
    }
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
    #[serde(default)]
    mem_max_stream_bytes: Option<i64>,
    #[serde(default)]
    disk_max_stream_bytes: Option<i64>,
    #[serde(default)]
    max_bytes_required: bool,
    #[serde(default)]
    max_ack_pending: Option<i64>,
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
    tiered_limits: HashMap<String, serde_json::Value>,
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
    #[serde(flatten)]
    limits: RawUserLimits,
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
            && self.limits.is_empty()
            && !self.bearer_token
            && self.allowed_connection_types.is_empty()
    }

    /// Restrictions a user JWT can carry that are not enforced yet: such a user is
    /// refused rather than let in without them.
    fn unsupported(&self) -> Option<&'static str> {
        if !self.allowed_connection_types.is_empty()
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
        return Err(JwtError::Chunks);
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

fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Expired once `now` (milliseconds) is past `exp` (Unix seconds), not yet valid
/// before `nbf`.
fn check_times(
    what: &'static str,
    exp: Option<i64>,
    nbf: Option<i64>,
    now: i64,
) -> Result<(), JwtError> {
    if exp.is_some_and(|exp| exp > 0 && now > exp.saturating_mul(1000)) {
        return Err(JwtError::Expired(what));
    }
    if nbf.is_some_and(|nbf| nbf > 0 && now < nbf.saturating_mul(1000)) {
        return Err(JwtError::NotYetValid(what));
    }
    Ok(())
}

impl<T> Claims<T> {
    /// As the nats JWT library's `Validate`, to the second: a user JWT is still good
    /// during its `exp` second (nats-server then closes it at once with `User
    /// Authentication Expired`). An account is expired from its `exp` on, to the
    /// millisecond (nats-server marks it when its timer fires).
    fn check_time(&self, what: &'static str, now: i64) -> Result<(), JwtError> {
        check_times(what, self.exp, self.nbf, now - now.rem_euclid(1000))
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

/// What a scoped signing key gives the users it signs.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Scope {
    permissions: Permissions,
    limits: UserLimits,
}

/// One account from an account JWT.
#[derive(Debug, PartialEq, Eq)]
struct Account {
    name: AccountName,
    /// Signing keys → what a scoped key gives its users (None: plain key).
    signing_keys: HashMap<String, Option<Scope>>,
    revocations: HashMap<String, i64>,
    default_permissions: Option<Permissions>,
    exp: Option<i64>,
    nbf: Option<i64>,
    /// The account's `conn`, `subs` and `payload` limits (None: unlimited).
    max_conns: Option<u64>,
    max_subs: Option<u64>,
    max_payload: Option<u64>,
    /// Its JetStream limits, when its JWT enables JetStream.
    jetstream: Option<AccountLimits>,
}

/// The operator's trust: its keys and the accounts the resolver knows.
#[derive(Debug, PartialEq, Eq)]
pub struct Operator {
    accounts: HashMap<String, Account>,
    /// The operator JWT's `system_account` (the first one that names it).
    system_account: Option<String>,
    /// The JWTs this trust was built from, to build it again with more or newer
    /// account JWTs ([`Operator::with_accounts`]).
    operator_jwts: Vec<String>,
    account_jwts: BTreeMap<String, String>,
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
    /// When the user JWT, or its account's, expires (the earlier).
    pub expires: Option<Expiry>,
    pub limits: ConnLimits,
    /// The CIDR blocks the client's address must be in (empty: any).
    pub sources: Arc<[String]>,
}

impl Operator {
    /// Checks the operator JWTs (`operators`, self-signed) and the preloaded account
    /// JWTs (account public key → JWT), each signed by one of the operators.
    pub fn new(
        operators: &[String],
        preload: &BTreeMap<String, String>,
    ) -> Result<Operator, JwtError> {
        let now = now_millis();
        let mut trusted = Vec::new();
        let mut system_account = None;
        for jwt in operators {
            let op: Claims<OperatorNats> = decode(jwt)?;
            check_type("operator", &op.nats.kind)?;
            if op.iss != op.sub && !op.nats.signing_keys.contains(&op.iss) {
                return Err(JwtError::OperatorIssuer(op.sub));
            }
            op.check_time("operator", now)?;
            if system_account.is_none() && !op.nats.system_account.is_empty() {
                system_account = Some(op.nats.system_account.clone());
            }
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
            let jetstream = jetstream_limits(limits, &claims.nats.tiered_limits)
                .map_err(|what| unsupported(what.into()))?;
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
                        Some(Scope {
                            permissions: template.permissions.permissions()?.unwrap_or_default(),
                            limits: template.limits.limits(),
                        }),
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
                    max_conns: limit(limits.conn),
                    max_subs: limit(limits.subs),
                    max_payload: limit(limits.payload),
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
            .filter(|a| a.jetstream.is_some())
            .map(|a| a.name.clone())
            .collect();
        jetstream.sort();
        Ok(Operator {
            accounts,
            system_account,
            operator_jwts: operators.to_vec(),
            account_jwts: preload.clone(),
            jetstream,
            stream_imports,
            service_imports,
        })
    }

    /// This trust with `accounts` (public key → account JWT) added or replacing the
    /// JWTs of the same accounts: an account resolver's fetch or a claims update.
    pub fn with_accounts(&self, accounts: &BTreeMap<String, String>) -> Result<Operator, JwtError> {
        let mut all = self.account_jwts.clone();
        all.extend(accounts.iter().map(|(k, v)| (k.clone(), v.clone())));
        Operator::new(&self.operator_jwts, &all)
    }

    /// The account JWTs this trust holds, by account public key.
    pub fn account_jwts(&self) -> &BTreeMap<String, String> {
        &self.account_jwts
    }

    /// The operator JWT's `system_account`, if it names one.
    pub fn system_account(&self) -> Option<&str> {
        self.system_account.as_deref()
    }

    /// Whether the resolver gave this operator `account`'s JWT.
    pub fn knows(&self, account: &str) -> bool {
        self.accounts.contains_key(account)
    }

    /// The account a user JWT names (its `issuer_account`, else its issuer) when this
    /// operator does not know it: the one a URL resolver fetches. None: known, or not
    /// a user JWT signed by an account key.
    pub(crate) fn unknown_account(&self, user_jwt: &str) -> Option<String> {
        let user: Claims<UserNats> = decode(user_jwt).ok()?;
        let account = user.nats.issuer_account.unwrap_or(user.iss);
        (account.starts_with('A') && !self.knows(&account)).then_some(account)
    }

    /// The accounts whose JWT enables JetStream.
    pub fn jetstream_accounts(&self) -> &[AccountName] {
        &self.jetstream
    }

    /// The JetStream limits `account`'s JWT sets (None: JetStream not enabled, or
    /// no such account).
    pub fn jetstream_limits(&self, account: &str) -> Option<AccountLimits> {
        self.accounts.get(account).and_then(|a| a.jetstream)
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
        let now = now_millis();
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
        check_times("account", account.exp, account.nbf, now)?;
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
        let (permissions, own) = match scope {
            Some(scope) => (Some(scope.permissions.clone()), scope.limits.clone()),
            None => (
                user.nats
                    .permissions
                    .permissions()?
                    .or_else(|| account.default_permissions.clone()),
                user.nats.limits.limits(),
            ),
        };
        // nats-server's `validateTimes`: refused outside the windows, closed (as an
        // expired user) when the window ends.
        let window_end = match &own.times {
            None => None,
            Some(times) => Some(
                times
                    .window_end(now.div_euclid(1000))
                    .ok_or_else(|| JwtError::OutsideTimes(user.sub.clone()))?,
            ),
        };
        // nats-server's applyAccountLimits: the smaller of the user's and the account's.
        let min = |a: Option<u64>, b: Option<u64>| match (a, b) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let expiry =
            |exp: Option<i64>, message| exp.filter(|at| *at > 0).map(|at| Expiry { at, message });
        Ok(JwtUser {
            key: user.sub,
            account: account.name.clone(),
            permissions,
            expires: Expiry::earliest(
                Expiry::earliest(
                    expiry(user.exp, "User Authentication Expired"),
                    expiry(window_end, "User Authentication Expired"),
                ),
                expiry(account.exp, "Account Authentication Expired"),
            ),
            limits: ConnLimits {
                max_subs: min(own.max_subs, account.max_subs),
                max_payload: min(own.max_payload, account.max_payload),
                max_account_conns: account.max_conns,
            },
            sources: own.sources,
        })
    }
}

/// An account JWT's JetStream limits in `$JS.API.INFO`'s form (None: JetStream not
/// enabled, as nats-server reads `mem_storage` and `disk_storage` both 0). Err: a
/// JetStream limit not enforced yet.
fn jetstream_limits(
    limits: &RawLimits,
    tiers: &HashMap<String, serde_json::Value>,
) -> Result<Option<AccountLimits>, &'static str> {
    let set = |v: Option<i64>| v.is_some_and(|v| v >= 0);
    if !tiers.is_empty() {
        return Err("tiered JetStream limits (tiered_limits)");
    }
    if set(limits.mem_max_stream_bytes) || set(limits.disk_max_stream_bytes) {
        return Err("the JetStream limits `mem_max_stream_bytes` / `disk_max_stream_bytes`");
    }
    if limits.max_bytes_required || set(limits.max_ack_pending) {
        return Err("the JetStream limits `max_bytes_required` / `max_ack_pending`");
    }
    let storage = [limits.mem_storage, limits.disk_storage];
    if !storage.iter().any(|v| v.is_some_and(|v| v != 0)) {
        return Ok(None);
    }
    let or_unlimited = |v: Option<i64>| v.map_or(-1, |v| v.max(-1));
    Ok(Some(AccountLimits {
        max_memory: or_unlimited(limits.mem_storage),
        max_store: or_unlimited(limits.disk_storage),
        max_streams: or_unlimited(limits.streams),
        max_consumers: or_unlimited(limits.consumer),
        ..AccountLimits::default()
    }))
}

/// The account an account JWT is about (its `sub`), once its signature verifies with
/// its issuer's key (whether the operator trusts that issuer is
/// [`Operator::new`]'s check).
pub fn account_subject(jwt: &str) -> Result<String, JwtError> {
    let claims: Claims<AccountNats> = decode(jwt)?;
    check_type("account", &claims.nats.kind)?;
    Ok(claims.sub)
}

/// What an auth callout service's answer lets in.
#[derive(Debug)]
pub(crate) struct CalloutUser {
    /// The account the user JWT's audience names.
    pub account: String,
    pub name: String,
    pub permissions: Option<Permissions>,
    pub exp: Option<i64>,
}

#[derive(Debug, Deserialize)]
struct CalloutResponseNats {
    #[serde(default)]
    jwt: String,
    #[serde(default)]
    error: String,
    #[serde(default, rename = "type")]
    kind: String,
}

#[derive(Debug, Deserialize)]
struct Audience {
    #[serde(default)]
    aud: String,
    #[serde(default)]
    name: String,
}

/// Reads the parts of a JWT's claims every claims type has but [`Claims`] does not
/// keep (`aud`, `name`), once [`decode`] verified it.
fn audience(jwt: &str) -> Result<Audience, JwtError> {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let claims = jwt.trim().split('.').nth(1).ok_or(JwtError::Chunks)?;
    let bytes = b64
        .decode(claims.trim_end_matches('='))
        .map_err(|_| JwtError::Malformed)?;
    serde_json::from_slice(&bytes).map_err(|e| JwtError::Claims(e.to_string()))
}

/// Checks an auth callout service's answer as nats-server does: an
/// `authorization_response` signed by `issuer`, for this server (`aud`) and the
/// request's user key (`sub`), without an `error`, carrying a user JWT signed by
/// `issuer` for the same user key, whose `aud` names the account to sign in to.
pub(crate) fn callout_answer(
    response: &str,
    issuer: &str,
    server_id: &str,
    user_key: &str,
) -> Result<CalloutUser, JwtError> {
    let now = now_millis();
    let answer: Claims<CalloutResponseNats> = decode(response)?;
    check_type("authorization_response", &answer.nats.kind)?;
    answer.check_time("authorization response", now)?;
    let to = audience(response)?;
    if answer.iss != issuer || to.aud != server_id || answer.sub != user_key {
        return Err(JwtError::Callout(format!(
            "the answer is from `{}` for server `{}` and user `{}`",
            answer.iss, to.aud, answer.sub
        )));
    }
    if !answer.nats.error.is_empty() {
        return Err(JwtError::Callout(format!(
            "the service refused: {}",
            answer.nats.error
        )));
    }
    let user: Claims<UserNats> = decode(&answer.nats.jwt)?;
    check_type("user", &user.nats.kind)?;
    user.check_time("user", now)?;
    if user.iss != issuer || user.sub != user_key {
        return Err(JwtError::Callout(format!(
            "the user JWT is from `{}` for user `{}`",
            user.iss, user.sub
        )));
    }
    if let Some(what) = user.nats.unsupported() {
        return Err(JwtError::UnsupportedUser {
            user: user.sub,
            what,
        });
    }
    let about = audience(&answer.nats.jwt)?;
    if about.aud.is_empty() {
        return Err(JwtError::Callout(
            "the user JWT names no account (aud)".into(),
        ));
    }
    Ok(CalloutUser {
        account: about.aud,
        name: about.name,
        permissions: user.nats.permissions.permissions()?,
        exp: user.exp.filter(|e| *e > 0),
    })
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
