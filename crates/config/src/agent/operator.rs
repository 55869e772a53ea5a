//! Decentralized JWT auth (nats-server's operator mode), written in TOML:
//!
//! ```toml
//! operator = "/etc/infinistream/operator.jwt"    # a file, or the JWT inline; or a list
//! resolver = "MEMORY"
//! [resolver_preload]
//! ACSU3XZAMG3HT2OXGXF56YXXPGPCKD3V3RZJYOROIGEKUN2PTPYOEOEY = "eyJ0eXAiOiJKV1Qi…"
//! ```
//!
//! or, as nats-server fetches account JWTs from an account server over HTTP:
//!
//! ```toml
//! resolver = "URL(http://accounts.example:9090/jwt/v1/accounts/)"
//! system_account = "AD…"   # optional: else the operator JWT's `system_account`
//! ```
//!
//! Clients sign in with a user JWT and its seed (a `nats` credentials file). The JWTs
//! are read here; the broker checks signatures, the chain and the claims
//! (`infinistream_broker::jwt`); the agent fetches accounts from the URL resolver and
//! applies `CLAIMS.UPDATE` pushes (`infinistream_agent::account_resolver`). The `full`
//! (directory) resolver is refused by name, and so are `resolver_preload` with the
//! URL resolver (as nats-server refuses it) and combining operator mode with
//! `[[users]]`, `[accounts.NAME]` or the single user/token settings (nats-server's
//! operator mode takes its users and accounts from JWTs only).

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::RawAgentConfig;
use crate::error::{ConfigError, invalid};

/// An `operator` or `resolver` setting, in whatever form nats-server takes it (a
/// string, a list, a table); what is not built yet is refused by name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RawJwtSetting {
    Text(String),
    List(Vec<String>),
    Table(std::collections::BTreeMap<String, String>),
}

/// Operator mode as configured: the operator JWTs and the memory resolver's account
/// JWTs, as text.
#[derive(Clone, PartialEq, Eq)]
pub struct OperatorSpec {
    pub operators: Vec<String>,
    /// Account public key → account JWT.
    pub accounts: BTreeMap<String, String>,
    /// The URL resolver's base URL (ending in `/`): account `K`'s JWT is at `<url>K`.
    pub resolver_url: Option<String>,
    /// The `system_account` setting (account public key), if set.
    pub system_account: Option<String>,
}

impl fmt::Debug for OperatorSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OperatorSpec")
            .field("operators", &self.operators.len())
            .field("accounts", &self.accounts.keys().collect::<Vec<_>>())
            .field("resolver_url", &self.resolver_url)
            .field("system_account", &self.system_account)
            .finish()
    }
}

/// The operator mode the config asks for, if any.
pub(crate) fn resolve(raw: &RawAgentConfig) -> Result<Option<OperatorSpec>, ConfigError> {
    let Some(operator) = &raw.operator else {
        for (setting, set) in [
            ("resolver", raw.resolver.is_some()),
            ("resolver_preload", raw.resolver_preload.is_some()),
            ("system_account", raw.system_account.is_some()),
        ] {
            if set {
                return Err(invalid(
                    setting,
                    "needs `operator` (decentralized JWT auth)",
                ));
            }
        }
        return Ok(None);
    };
    let combined: [(&'static str, bool); 4] = [
        ("users", raw.users.as_ref().is_some_and(|u| !u.is_empty())),
        (
            "accounts",
            raw.accounts.as_ref().is_some_and(|a| !a.is_empty()),
        ),
        ("INFINISTREAM_USER", raw.user.is_some()),
        ("INFINISTREAM_TOKEN", raw.token.is_some()),
    ];
    if let Some((setting, _)) = combined.iter().find(|(_, set)| *set) {
        return Err(invalid(
            setting,
            "cannot be combined with `operator`: in operator mode users and accounts come from JWTs",
        ));
    }
    let operators = match operator {
        RawJwtSetting::Text(one) => vec![one.clone()],
        RawJwtSetting::List(many) if !many.is_empty() => many.clone(),
        _ => {
            return Err(invalid(
                "operator",
                "must be an operator JWT or the path of its file (or a list of them)",
            ));
        }
    };
    let operators = operators
        .iter()
        .map(|o| read_jwt("operator", o))
        .collect::<Result<Vec<_>, _>>()?;
    let resolver_url = match &raw.resolver {
        Some(RawJwtSetting::Text(kind)) if kind.eq_ignore_ascii_case("MEMORY") => None,
        Some(RawJwtSetting::Text(kind)) if resolver_url(kind).is_some() => {
            if raw.resolver_preload.is_some() {
                return Err(invalid(
                    "resolver_preload",
                    "resolver preloads only available for writeable resolver types MEM/DIR/CACHE_DIR (nats-server's rule; not with the URL resolver)",
                ));
            }
            let url = resolver_url(kind).unwrap_or_default();
            if !url.starts_with("http://") && !url.starts_with("https://") {
                return Err(invalid(
                    "resolver",
                    format!("`{url}` is not an http:// or https:// URL"),
                ));
            }
            Some(if url.ends_with('/') {
                url
            } else {
                format!("{url}/")
            })
        }
        None => {
            return Err(invalid(
                "resolver",
                "operator mode needs a resolver: resolver = \"MEMORY\" with [resolver_preload], or resolver = \"URL(http://…)\"",
            ));
        }
        Some(_) => {
            return Err(invalid(
                "resolver",
                "the full (directory) resolver is not supported yet: use resolver = \"MEMORY\" with [resolver_preload], or resolver = \"URL(http://…)\"",
            ));
        }
    };
    if let Some(key) = &raw.system_account
        && !key.starts_with('A')
    {
        return Err(invalid(
            "system_account",
            format!("must be an account public key (starting with A), got `{key}`"),
        ));
    }
    let mut accounts = BTreeMap::new();
    for (key, jwt) in raw.resolver_preload.iter().flatten() {
        if !key.starts_with('A') {
            return Err(invalid(
                "resolver_preload",
                format!("keys must be account public keys (starting with A), got `{key}`"),
            ));
        }
        accounts.insert(key.clone(), read_jwt("resolver_preload", jwt)?);
    }
    Ok(Some(OperatorSpec {
        operators,
        accounts,
        resolver_url,
        system_account: raw.system_account.clone(),
    }))
}

/// nats-server's `URL(...)` resolver setting: the URL inside, unquoted.
fn resolver_url(setting: &str) -> Option<String> {
    let inner = setting
        .trim()
        .strip_prefix("URL(")?
        .strip_suffix(')')?
        .trim();
    let inner = inner
        .strip_prefix('"')
        .and_then(|i| i.strip_suffix('"'))
        .unwrap_or(inner);
    Some(inner.to_owned())
}

/// A JWT given inline, or the path of a file holding one (raw, or between the
/// `-----BEGIN … JWT-----` lines `nsc` writes).
fn read_jwt(setting: &'static str, value: &str) -> Result<String, ConfigError> {
    let value = value.trim();
    if looks_like_jwt(value) {
        return Ok(value.to_owned());
    }
    let text = std::fs::read_to_string(value).map_err(|e| {
        invalid(
            setting,
            format!("`{value}` is neither a JWT nor a readable file: {e}"),
        )
    })?;
    let found = text.lines().map(str::trim).find(|l| looks_like_jwt(l));
    match found {
        Some(jwt) => Ok(jwt.to_owned()),
        None => Err(invalid(setting, format!("file `{value}` holds no JWT"))),
    }
}

fn looks_like_jwt(s: &str) -> bool {
    s.starts_with("eyJ") && s.split('.').count() == 3
}

#[cfg(test)]
mod tests {
    use super::*;

    const JWT: &str = "eyJ0eXAiOiJKV1QiLCJhbGciOiJlZDI1NTE5LW5rZXkifQ.eyJzdWIiOiJPIn0.c2ln";

    fn raw(toml: &str) -> RawAgentConfig {
        toml::from_str(toml).expect("toml")
    }

    #[test]
    fn inline_and_file_jwts_with_the_memory_resolver() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("op.jwt");
        std::fs::write(
            &file,
            format!(
                "-----BEGIN NATS OPERATOR JWT-----\n{JWT}\n------END NATS OPERATOR JWT------\n"
            ),
        )
        .expect("write");
        let spec = resolve(&raw(&format!(
            "operator = {:?}\nresolver = \"MEMORY\"\n[resolver_preload]\nAABC = \"{JWT}\"\n",
            file.display().to_string()
        )))
        .expect("valid")
        .expect("operator mode");
        assert_eq!(spec.operators, vec![JWT.to_owned()]);
        assert_eq!(spec.accounts.get("AABC").map(String::as_str), Some(JWT));
        let inline = resolve(&raw(&format!(
            "operator = [\"{JWT}\"]\nresolver = \"memory\"\n"
        )))
        .expect("valid")
        .expect("operator mode");
        assert_eq!(inline.operators.len(), 1);
        assert_eq!(inline.resolver_url, None);
        assert_eq!(resolve(&raw("")).expect("valid"), None);
        for (setting, url) in [
            (
                "URL(http://h:9090/jwt/v1/accounts/)",
                "http://h:9090/jwt/v1/accounts/",
            ),
            (
                "URL(\\\"https://h/jwt/v1/accounts\\\")",
                "https://h/jwt/v1/accounts/",
            ),
        ] {
            let spec = resolve(&raw(&format!(
                "operator = \"{JWT}\"\nresolver = \"{setting}\"\nsystem_account = \"ASYS\"\n"
            )))
            .expect("valid")
            .expect("operator mode");
            assert_eq!(spec.resolver_url.as_deref(), Some(url), "{setting}");
            assert_eq!(spec.system_account.as_deref(), Some("ASYS"));
        }
    }

    #[test]
    fn what_is_not_built_or_contradictory_is_refused_by_name() {
        let err = |toml: &str| resolve(&raw(toml)).expect_err("refused").to_string();
        let op = format!("operator = \"{JWT}\"\n");
        assert!(err(&op).contains("needs a resolver"));
        assert!(
            err(&format!(
                "{op}resolver = \"URL(http://x)\"\n[resolver_preload]\nAABC = \"{JWT}\"\n"
            ))
            .contains("resolver preloads only available")
        );
        assert!(err(&format!("{op}resolver = \"URL(ftp://x)\"\n")).contains("not an http"));
        assert!(
            err(&format!(
                "{op}resolver = {{ type = \"full\", dir = \"/x\" }}\n"
            ))
            .contains("full (directory) resolver is not supported yet")
        );
        assert!(
            err(&format!(
                "{op}resolver = \"MEMORY\"\nsystem_account = \"UX\"\n"
            ))
            .contains("account public key")
        );
        assert!(err("system_account = \"AX\"\n").contains("needs `operator`"));
        assert!(err("resolver = \"MEMORY\"\n").contains("needs `operator`"));
        assert!(
            err(&format!(
                "{op}resolver = \"MEMORY\"\n[[users]]\nuser = \"a\"\npassword = \"b\"\n"
            ))
            .contains("cannot be combined with `operator`")
        );
        assert!(
            err(&format!(
                "{op}resolver = \"MEMORY\"\n[resolver_preload]\nUABC = \"{JWT}\"\n"
            ))
            .contains("account public keys")
        );
        assert!(
            err("operator = \"/nonexistent/op.jwt\"\nresolver = \"MEMORY\"\n")
                .contains("neither a JWT nor a readable file")
        );
    }
}
