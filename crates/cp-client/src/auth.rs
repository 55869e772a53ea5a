//! Group authentication on the internal links (agent → control plane, agent ↔ agent).
//!
//! Every request names its group (`x-infinistream-group`) and proves it knows the
//! group key without sending it: `authorization: InfiniStream-HMAC1 <ts>.<nonce>.<mac>`
//! where `mac = HMAC-SHA256(key, "infinistream-proof-v1" ‖ group ‖ ts ‖ nonce)`, `ts` is
//! the sender's clock in milliseconds and `nonce` is unique per request (a random
//! per-process prefix and a counter). The server recomputes the MAC in constant time,
//! refuses a timestamp more than [`PROOF_WINDOW`] off its own clock, and refuses a
//! nonce it has already accepted inside that window, so a proof captured on a
//! plaintext link can neither reveal the key nor be replayed to the same server. It
//! then stamps the authenticated group on the request; services only ever touch keys
//! under that group's prefix, which is what isolates groups. Keys and proofs are never
//! logged, not even on failure. docs/architecture.md ("Internal links") has the why.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ring::hmac;

use tonic::metadata::MetadataValue;
use tonic::{Request, Status};

/// gRPC metadata key naming the group.
pub const GROUP_HEADER: &str = "x-infinistream-group";
/// gRPC metadata key carrying the proof (`InfiniStream-HMAC1 <ts>.<nonce>.<mac>`).
pub const AUTH_HEADER: &str = "authorization";
/// The proof scheme in [`AUTH_HEADER`].
pub const PROOF_SCHEME: &str = "InfiniStream-HMAC1";
/// Largest difference between a proof's timestamp and the server's clock; nonces are
/// remembered this long after their timestamp.
pub const PROOF_WINDOW: Duration = Duration::from_secs(60);
/// Domain separation of the MAC input.
const PROOF_CONTEXT: &[u8] = b"infinistream-proof-v1";

/// Errors loading group keys.
#[derive(Debug, thiserror::Error)]
pub enum GroupKeysError {
    #[error("cannot read groups file `{path}`: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("invalid groups file `{path}`: {reason}")]
    Parse { path: String, reason: String },
    #[error("invalid group id `{0}`: use letters, digits, '-' and '_' (at most 64)")]
    BadGroupId(String),
    #[error("group `{0}` has an empty key")]
    EmptyKey(String),
    #[error("{0} is not set")]
    MissingEnv(&'static str),
    #[error("the system random source failed")]
    Random,
}

/// Accepted groups and their keys. `Debug` never shows a key.
#[derive(Clone, Default)]
pub struct GroupKeys {
    keys: Arc<BTreeMap<String, String>>,
}

impl fmt::Debug for GroupKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GroupKeys")
            .field("groups", &self.keys.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// Whether `id` is usable as a group id (it becomes part of every metadata key).
pub fn valid_group_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

impl GroupKeys {
    /// Groups from (id, key) pairs.
    pub fn new<I, A, B>(pairs: I) -> Result<GroupKeys, GroupKeysError>
    where
        I: IntoIterator<Item = (A, B)>,
        A: Into<String>,
        B: Into<String>,
    {
        let mut keys = BTreeMap::new();
        for (id, key) in pairs {
            let (id, key) = (id.into(), key.into());
            if !valid_group_id(&id) {
                return Err(GroupKeysError::BadGroupId(id));
            }
            if key.is_empty() {
                return Err(GroupKeysError::EmptyKey(id));
            }
            keys.insert(id, key);
        }
        Ok(GroupKeys {
            keys: Arc::new(keys),
        })
    }

    /// One group from `INFINISTREAM_GROUP_ID` / `INFINISTREAM_GROUP_KEY`.
    pub fn from_env() -> Result<GroupKeys, GroupKeysError> {
        let id = std::env::var("INFINISTREAM_GROUP_ID")
            .map_err(|_| GroupKeysError::MissingEnv("INFINISTREAM_GROUP_ID"))?;
        let key = std::env::var("INFINISTREAM_GROUP_KEY")
            .map_err(|_| GroupKeysError::MissingEnv("INFINISTREAM_GROUP_KEY"))?;
        GroupKeys::new([(id, key)])
    }

    /// Several groups from a TOML file:
    ///
    /// ```toml
    /// [groups]
    /// team-a = "key-a"
    /// team-b = "key-b"
    /// ```
    pub fn from_toml_file(path: &Path) -> Result<GroupKeys, GroupKeysError> {
        let p = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| GroupKeysError::Read {
            path: p.clone(),
            source,
        })?;
        GroupKeys::from_toml_str(&text).map_err(|e| match e {
            GroupKeysError::Parse { reason, .. } => GroupKeysError::Parse { path: p, reason },
            other => other,
        })
    }

    /// Parses the groups TOML (see [`GroupKeys::from_toml_file`]).
    pub fn from_toml_str(text: &str) -> Result<GroupKeys, GroupKeysError> {
        #[derive(serde::Deserialize)]
        struct File {
            groups: BTreeMap<String, String>,
        }
        let f: File = toml::from_str(text).map_err(|e| GroupKeysError::Parse {
            path: String::new(),
            reason: e.to_string(),
        })?;
        GroupKeys::new(f.groups)
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub fn group_ids(&self) -> impl Iterator<Item = &str> {
        self.keys.keys().map(String::as_str)
    }

    /// Whether `key` is the key of `group` (constant time in the key's content).
    pub fn check(&self, group: &str, key: &str) -> bool {
        let expected = self.keys.get(group).map_or("", String::as_str);
        // Compare MACs of both under one fixed key: constant time in the content, and
        // the same work whether or not the group exists.
        let k = hmac::Key::new(hmac::HMAC_SHA256, PROOF_CONTEXT);
        let tag = hmac::sign(&k, expected.as_bytes());
        self.keys.contains_key(group) && hmac::verify(&k, key.as_bytes(), tag.as_ref()).is_ok()
    }

    /// Verifies `mac` over `message` with `group`'s key (constant time).
    fn verify(&self, group: &str, message: &[u8], mac: &[u8]) -> bool {
        match self.keys.get(group) {
            Some(key) => hmac::verify(
                &hmac::Key::new(hmac::HMAC_SHA256, key.as_bytes()),
                message,
                mac,
            )
            .is_ok(),
            None => {
                // Same work as a real check, so timing does not reveal which groups exist.
                let _ = hmac::verify(
                    &hmac::Key::new(hmac::HMAC_SHA256, PROOF_CONTEXT),
                    message,
                    mac,
                );
                false
            }
        }
    }
}

/// Milliseconds since the Unix epoch on this host's clock.
fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// What the MAC covers.
fn proof_message(group: &str, ts: u64, nonce: &str) -> Vec<u8> {
    let mut m = Vec::with_capacity(PROOF_CONTEXT.len() + group.len() + nonce.len() + 24);
    m.extend_from_slice(PROOF_CONTEXT);
    m.push(0);
    m.extend_from_slice(group.as_bytes());
    m.push(0);
    m.extend_from_slice(ts.to_string().as_bytes());
    m.push(0);
    m.extend_from_slice(nonce.as_bytes());
    m
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// A proof parsed from [`AUTH_HEADER`].
struct Proof<'a> {
    ts: u64,
    nonce: &'a str,
    mac: Vec<u8>,
}

fn parse_proof(value: &str) -> Option<Proof<'_>> {
    let rest = value.strip_prefix(PROOF_SCHEME)?.strip_prefix(' ')?;
    let mut parts = rest.splitn(3, '.');
    let ts = parts.next()?.parse().ok()?;
    let nonce = parts.next()?;
    let mac = unhex(parts.next()?)?;
    (!nonce.is_empty() && nonce.len() <= 64 && nonce.bytes().all(|b| b.is_ascii_hexdigit()))
        .then_some(Proof { ts, nonce, mac })
}

/// Nonces accepted inside the proof window, so a proof is accepted once.
#[derive(Debug, Default)]
struct SeenNonces {
    /// (group, nonce) → the proof's timestamp.
    seen: HashMap<(Arc<str>, String), u64>,
    /// Size after the last purge: purge again when it doubles (amortised O(1)).
    purged_at: usize,
}

impl SeenNonces {
    /// Records `nonce`; false when it was already seen.
    fn insert(&mut self, group: &str, nonce: &str, ts: u64, now: u64) -> bool {
        if self.seen.len() >= self.purged_at.saturating_mul(2).max(1024) {
            let window = PROOF_WINDOW.as_millis() as u64;
            self.seen.retain(|_, t| t.saturating_add(window) >= now);
            self.purged_at = self.seen.len();
        }
        self.seen
            .insert((Arc::from(group), nonce.to_owned()), ts)
            .is_none()
    }
}

/// The authenticated group, stamped on a request by [`ServerAuth`].
#[derive(Debug, Clone)]
pub struct AuthedGroup(pub Arc<str>);

/// Server-side interceptor: checks the group's proof, stamps [`AuthedGroup`]. Clones
/// share the replay memory, so build one per server and clone it onto each service.
#[derive(Debug, Clone)]
pub struct ServerAuth {
    keys: GroupKeys,
    seen: Arc<Mutex<SeenNonces>>,
}

impl ServerAuth {
    pub fn new(keys: GroupKeys) -> Self {
        ServerAuth {
            keys,
            seen: Arc::default(),
        }
    }

    /// Checks `group`'s proof in `authorization` at `now` (ms): the error is the reason
    /// told to the caller and logged (it never holds the key or the proof).
    fn verify(&self, group: &str, authorization: &str, now: u64) -> Result<(), String> {
        if authorization.starts_with("Bearer ") {
            return Err(format!(
                "group `{group}` sent its key as a bearer token; this server accepts only \
                 `{PROOF_SCHEME}` proofs (the key never travels): upgrade the caller"
            ));
        }
        let Some(proof) = parse_proof(authorization) else {
            return Err(format!(
                "malformed `{AUTH_HEADER}` proof for group `{group}`"
            ));
        };
        if !self.keys.verify(
            group,
            &proof_message(group, proof.ts, proof.nonce),
            &proof.mac,
        ) {
            return Err(format!("wrong key for group `{group}`"));
        }
        let skew = proof.ts.abs_diff(now);
        if skew > PROOF_WINDOW.as_millis() as u64 {
            return Err(format!(
                "proof of group `{group}` is {} s off this server's clock (more than {} s): \
                 check the clocks (NTP) of both hosts",
                skew / 1000,
                PROOF_WINDOW.as_secs()
            ));
        }
        let fresh = self
            .seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(group, proof.nonce, proof.ts, now);
        if !fresh {
            return Err(format!("replayed proof for group `{group}`"));
        }
        Ok(())
    }

    #[allow(clippy::result_large_err)]
    fn check(&self, mut req: Request<()>) -> Result<Request<()>, Status> {
        let group = req
            .metadata()
            .get(GROUP_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let proof = req
            .metadata()
            .get(AUTH_HEADER)
            .and_then(|v| v.to_str().ok());
        let (Some(group), Some(proof)) = (group, proof) else {
            tracing::warn!("refused internal request: missing group or proof");
            return Err(Status::unauthenticated(format!(
                "missing `{GROUP_HEADER}` or `{AUTH_HEADER}: {PROOF_SCHEME} …` metadata"
            )));
        };
        if let Err(reason) = self.verify(&group, proof, now_millis()) {
            // Log the group and the reason (useful to operators), never a key or proof.
            tracing::warn!(group = %group, reason = %reason, "refused internal request: {reason}");
            return Err(Status::unauthenticated(reason));
        }
        req.extensions_mut().insert(AuthedGroup(group.into()));
        Ok(req)
    }
}

impl tonic::service::Interceptor for ServerAuth {
    fn call(&mut self, req: Request<()>) -> Result<Request<()>, Status> {
        self.check(req)
    }
}

/// Client-side interceptor: adds the group and a fresh proof to every request. The key
/// itself is never sent.
#[derive(Clone)]
pub struct ClientAuth {
    group: String,
    group_value: MetadataValue<tonic::metadata::Ascii>,
    key: hmac::Key,
    /// Random per client, so nonces of two processes never collide.
    nonce_prefix: Arc<str>,
    counter: Arc<AtomicU64>,
}

impl fmt::Debug for ClientAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientAuth")
            .field("group", &self.group)
            .finish_non_exhaustive()
    }
}

impl ClientAuth {
    /// Fails when the group is not a valid group id or the key is empty.
    pub fn new(group: &str, key: &str) -> Result<ClientAuth, GroupKeysError> {
        if !valid_group_id(group) {
            return Err(GroupKeysError::BadGroupId(group.to_owned()));
        }
        if key.is_empty() {
            return Err(GroupKeysError::EmptyKey(group.to_owned()));
        }
        let group_value = group
            .parse()
            .map_err(|_| GroupKeysError::BadGroupId(group.to_owned()))?;
        let mut prefix = [0u8; 12];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut prefix)
            .map_err(|_| GroupKeysError::Random)?;
        Ok(ClientAuth {
            group: group.to_owned(),
            group_value,
            key: hmac::Key::new(hmac::HMAC_SHA256, key.as_bytes()),
            nonce_prefix: hex(&prefix).into(),
            counter: Arc::new(AtomicU64::new(0)),
        })
    }

    /// A fresh `authorization` value for a request sent at `ts` (ms).
    fn proof(&self, ts: u64) -> String {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let nonce = format!("{}{n:016x}", self.nonce_prefix);
        let mac = hmac::sign(&self.key, &proof_message(&self.group, ts, &nonce));
        format!("{PROOF_SCHEME} {ts}.{nonce}.{}", hex(mac.as_ref()))
    }
}

impl tonic::service::Interceptor for ClientAuth {
    fn call(&mut self, mut req: Request<()>) -> Result<Request<()>, Status> {
        let proof = self
            .proof(now_millis())
            .parse()
            .map_err(|_| Status::internal("proof is not valid metadata"))?;
        req.metadata_mut()
            .insert(GROUP_HEADER, self.group_value.clone());
        req.metadata_mut().insert(AUTH_HEADER, proof);
        Ok(req)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn keys_check_and_debug_hides_keys() {
        let k = GroupKeys::new([("a", "secret-a"), ("b", "secret-b")]).unwrap();
        assert!(k.check("a", "secret-a"));
        assert!(!k.check("a", "secret-b"));
        assert!(!k.check("a", "secret-a2"));
        assert!(!k.check("c", "secret-a"));
        assert!(!format!("{k:?}").contains("secret"));
        assert!(GroupKeys::new([("a/b", "k")]).is_err());
        assert!(GroupKeys::new([("a", "")]).is_err());
    }

    fn server(key: &str) -> ServerAuth {
        ServerAuth::new(GroupKeys::new([("team", key)]).unwrap())
    }

    #[test]
    fn proofs_verify_once_and_never_hold_the_key() {
        let client = ClientAuth::new("team", "group-key-XYZ").unwrap();
        let server = server("group-key-XYZ");
        let now = now_millis();
        let proof = client.proof(now);
        assert!(!proof.contains("group-key-XYZ"));
        assert!(!format!("{client:?}").contains("group-key"));
        server.verify("team", &proof, now).unwrap();
        let replay = server.verify("team", &proof, now).unwrap_err();
        assert!(replay.contains("replayed"), "{replay}");
        // Each request gets its own nonce.
        server.verify("team", &client.proof(now), now).unwrap();
    }

    #[test]
    fn wrong_key_group_skew_and_bearer_are_refused() {
        let server = server("right");
        let now = now_millis();
        let wrong = ClientAuth::new("team", "wrong").unwrap();
        let e = server.verify("team", &wrong.proof(now), now).unwrap_err();
        assert_eq!(e, "wrong key for group `team`");
        let other = ClientAuth::new("other", "right").unwrap();
        assert!(server.verify("other", &other.proof(now), now).is_err());
        let good = ClientAuth::new("team", "right").unwrap();
        let skewed = good.proof(now - 120_000);
        let e = server.verify("team", &skewed, now).unwrap_err();
        assert!(e.contains("120 s off"), "{e}");
        let e = server.verify("team", "Bearer right", now).unwrap_err();
        assert!(e.contains("bearer") && !e.contains("right`"), "{e}");
        assert!(
            server
                .verify("team", "InfiniStream-HMAC1 1.zz.00", now)
                .is_err()
        );
        // A proof for one group does not pass as another's.
        let proof = good.proof(now);
        assert!(server.verify("other", &proof, now).is_err());
    }

    #[test]
    fn old_nonces_are_forgotten_after_the_window() {
        let mut seen = SeenNonces::default();
        let window = PROOF_WINDOW.as_millis() as u64;
        for i in 0..2000u64 {
            assert!(seen.insert("g", &format!("{i:x}"), 1_000, 1_000));
        }
        assert!(!seen.insert("g", "0", 1_000, 1_000));
        // Far past the window, a purge drops them (they would fail the clock check).
        for i in 0..4000u64 {
            seen.insert(
                "g",
                &format!("n{i:x}"),
                1_000 + 2 * window,
                1_000 + 2 * window,
            );
        }
        assert!(seen.seen.len() < 6000);
    }

    #[test]
    fn toml_groups() {
        let k = GroupKeys::from_toml_str("[groups]\nteam-a = \"k1\"\nteam_b = \"k2\"\n").unwrap();
        assert_eq!(k.group_ids().collect::<Vec<_>>(), ["team-a", "team_b"]);
        assert!(GroupKeys::from_toml_str("[groups]\n\"a.b\" = \"k\"\n").is_err());
    }
}
