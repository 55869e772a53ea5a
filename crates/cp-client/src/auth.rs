//! Group authentication.
//!
//! Every request names its group (`x-infinistream-group`) and proves it with the
//! group key (`authorization: Bearer <key>`). The server checks the key in constant
//! time and stamps the authenticated group on the request; services then only ever
//! touch keys under that group's prefix, which is what isolates groups. Keys are
//! never logged, not even on failure.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::sync::Arc;

use tonic::metadata::MetadataValue;
use tonic::{Request, Status};

/// gRPC metadata key naming the group.
pub const GROUP_HEADER: &str = "x-infinistream-group";
/// gRPC metadata key carrying `Bearer <group key>`.
pub const AUTH_HEADER: &str = "authorization";

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
        match self.keys.get(group) {
            Some(expected) => constant_time_eq(expected.as_bytes(), key.as_bytes()),
            None => {
                // Same work as a real comparison, so timing does not reveal which
                // groups exist.
                let _ = constant_time_eq(key.as_bytes(), key.as_bytes());
                false
            }
        }
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= usize::from(x ^ y);
    }
    diff == 0
}

/// The authenticated group, stamped on a request by [`ServerAuth`].
#[derive(Debug, Clone)]
pub struct AuthedGroup(pub Arc<str>);

/// Server-side interceptor: checks group + key, stamps [`AuthedGroup`].
#[derive(Debug, Clone)]
pub struct ServerAuth {
    keys: GroupKeys,
}

impl ServerAuth {
    pub fn new(keys: GroupKeys) -> Self {
        ServerAuth { keys }
    }

    #[allow(clippy::result_large_err)]
    fn check(&self, mut req: Request<()>) -> Result<Request<()>, Status> {
        let group = req
            .metadata()
            .get(GROUP_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let key = req
            .metadata()
            .get(AUTH_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::to_owned);
        let (Some(group), Some(key)) = (group, key) else {
            tracing::warn!("refused control-plane request: missing group or key");
            return Err(Status::unauthenticated(format!(
                "missing `{GROUP_HEADER}` or `{AUTH_HEADER}: Bearer <group key>` metadata"
            )));
        };
        if !self.keys.check(&group, &key) {
            // Log the group (useful to operators), never the key.
            tracing::warn!(group = %group, "refused control-plane request: wrong group key");
            return Err(Status::unauthenticated(format!(
                "wrong key for group `{group}`"
            )));
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

/// Client-side interceptor: adds the group and key to every request.
#[derive(Clone)]
pub struct ClientAuth {
    group: MetadataValue<tonic::metadata::Ascii>,
    bearer: MetadataValue<tonic::metadata::Ascii>,
}

impl fmt::Debug for ClientAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientAuth")
            .field("group", &self.group)
            .finish_non_exhaustive()
    }
}

impl ClientAuth {
    /// Fails when the group or key is not valid ASCII metadata.
    pub fn new(group: &str, key: &str) -> Result<ClientAuth, GroupKeysError> {
        let group_v = group
            .parse()
            .map_err(|_| GroupKeysError::BadGroupId(group.to_owned()))?;
        let bearer = format!("Bearer {key}")
            .parse()
            .map_err(|_| GroupKeysError::EmptyKey(group.to_owned()))?;
        Ok(ClientAuth {
            group: group_v,
            bearer,
        })
    }
}

impl tonic::service::Interceptor for ClientAuth {
    fn call(&mut self, mut req: Request<()>) -> Result<Request<()>, Status> {
        req.metadata_mut().insert(GROUP_HEADER, self.group.clone());
        req.metadata_mut().insert(AUTH_HEADER, self.bearer.clone());
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

    #[test]
    fn toml_groups() {
        let k = GroupKeys::from_toml_str("[groups]\nteam-a = \"k1\"\nteam_b = \"k2\"\n").unwrap();
        assert_eq!(k.group_ids().collect::<Vec<_>>(), ["team-a", "team_b"]);
        assert!(GroupKeys::from_toml_str("[groups]\n\"a.b\" = \"k\"\n").is_err());
    }
}
