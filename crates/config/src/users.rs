//! The `[[users]]` of the agent's config file: nats-server's `authorization { users
//! = [...] }`, written in TOML. Checked here; the broker enforces them.
//!
//! ```toml
//! [[users]]
//! user = "orders-service"
//! password = "$2a$11$…"            # plain text, or a bcrypt hash as nats-server accepts
//! [users.permissions]
//! publish = ["orders.>"]            # a list is the allow list
//! subscribe = { allow = ["_INBOX.>"], deny = ["orders.audit"] }
//! allow_responses = true            # or { max = 5, expires = "1m" }
//!
//! [[users]]
//! nkey = "UDXU4RCSJNZOIQHZNWXHXORDPRTGNJAHAHFRGZNEEJCPQTT2M7NLCNF4"
//! ```

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{ConfigError, invalid};

/// One `[[users]]` entry as written.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RawUser {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nkey: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permissions: Option<RawPermissions>,
}

impl fmt::Debug for RawUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print secrets.
        f.debug_struct("RawUser")
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("nkey", &self.nkey)
            .field("permissions", &self.permissions)
            .finish()
    }
}

/// A user's `permissions` block as written.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RawPermissions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publish: Option<RawSubjectPermission>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscribe: Option<RawSubjectPermission>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_responses: Option<RawResponses>,
}

/// `"foo.>"`, `["a", "b"]` (both: the allow list), or `{ allow = [...], deny = [...] }`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RawSubjectPermission {
    One(String),
    List(Vec<String>),
    Rules {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        allow: Option<Vec<String>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        deny: Option<Vec<String>>,
    },
}

/// `true`, or `{ max = N, expires = "2m" }`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RawResponses {
    Flag(bool),
    Limits {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expires: Option<String>,
    },
}

/// A checked user.
#[derive(Clone, PartialEq, Eq)]
pub struct UserSpec {
    /// The user name, or the public NKey of an NKey user.
    pub name: String,
    /// The password (plain or a bcrypt hash); None for an NKey user.
    pub password: Option<String>,
    pub permissions: Option<PermissionsSpec>,
    /// The account the user is in (`[accounts.NAME]`); None: the global account.
    pub account: Option<String>,
}

impl fmt::Debug for UserSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserSpec")
            .field("name", &self.name)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("permissions", &self.permissions)
            .field("account", &self.account)
            .finish()
    }
}

/// Checked permissions: allow lists (None: everything) and deny lists.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PermissionsSpec {
    pub publish: Option<(Option<Vec<String>>, Vec<String>)>,
    pub subscribe: Option<(Option<Vec<String>>, Vec<String>)>,
    /// Replies allowed per request and for how long (nats-server's defaults: 1, 2 min).
    pub allow_responses: Option<(u64, Duration)>,
}

const SETTING: &str = "users";

/// Checks the `[[users]]` entries.
pub(crate) fn resolve(raw: &[RawUser]) -> Result<Vec<UserSpec>, ConfigError> {
    raw.iter()
        .enumerate()
        .map(|(i, u)| resolve_one(i, u))
        .collect()
}

fn resolve_one(index: usize, raw: &RawUser) -> Result<UserSpec, ConfigError> {
    let which = || {
        raw.user
            .clone()
            .or(raw.nkey.clone())
            .unwrap_or_else(|| format!("#{}", index + 1))
    };
    let (name, password) = match (&raw.user, &raw.password, &raw.nkey) {
        (Some(user), Some(pass), None) if !user.is_empty() && !pass.is_empty() => {
            (user.clone(), Some(pass.clone()))
        }
        (None, None, Some(nkey)) if nkey.starts_with('U') && nkey.len() == 56 => {
            (nkey.clone(), None)
        }
        (None, None, Some(nkey)) => {
            return Err(invalid(
                SETTING,
                format!(
                    "entry {}: nkey must be a user's public NKey (56 characters starting with U), got `{nkey}`",
                    index + 1
                ),
            ));
        }
        _ => {
            return Err(invalid(
                SETTING,
                format!(
                    "entry `{}`: needs either `user` and `password`, or `nkey` alone",
                    which()
                ),
            ));
        }
    };
    let permissions = raw
        .permissions
        .as_ref()
        .map(|p| resolve_permissions(&name, p))
        .transpose()?;
    Ok(UserSpec {
        name,
        password,
        permissions,
        account: None,
    })
}

fn resolve_permissions(user: &str, raw: &RawPermissions) -> Result<PermissionsSpec, ConfigError> {
    let rules = |p: &Option<RawSubjectPermission>| -> Result<_, ConfigError> {
        let Some(p) = p else {
            return Ok(None);
        };
        let (allow, deny) = match p {
            RawSubjectPermission::One(s) => (Some(vec![s.clone()]), Vec::new()),
            RawSubjectPermission::List(l) => (Some(l.clone()), Vec::new()),
            RawSubjectPermission::Rules { allow, deny } => {
                (allow.clone(), deny.clone().unwrap_or_default())
            }
        };
        for s in allow.iter().flatten().chain(&deny) {
            if s.contains(char::is_whitespace) {
                return Err(invalid(
                    SETTING,
                    format!(
                        "user `{user}`: queue-group permissions (`subject queue`) are not supported yet, got `{s}`"
                    ),
                ));
            }
            if !infinistream_protocol::subject::is_valid_subject(s) {
                return Err(invalid(
                    SETTING,
                    format!("user `{user}`: `{s}` is not a valid subject"),
                ));
            }
        }
        Ok(Some((allow, deny)))
    };
    let allow_responses = match &raw.allow_responses {
        None | Some(RawResponses::Flag(false)) => None,
        Some(RawResponses::Flag(true)) => Some((1, DEFAULT_RESPONSE_EXPIRY)),
        Some(RawResponses::Limits { max, expires }) => {
            let expires = match expires {
                None => DEFAULT_RESPONSE_EXPIRY,
                Some(text) => infinistream_protocol::jsapi::time::GoDuration::parse(text)
                    .and_then(|nanos| u64::try_from(nanos).ok())
                    .map(Duration::from_nanos)
                    .ok_or_else(|| {
                        invalid(
                            SETTING,
                            format!("user `{user}`: allow_responses.expires must be a duration like `2m`, got `{text}`"),
                        )
                    })?,
            };
            Some((max.filter(|m| *m > 0).unwrap_or(1), expires))
        }
    };
    Ok(PermissionsSpec {
        publish: rules(&raw.publish)?,
        subscribe: rules(&raw.subscribe)?,
        allow_responses,
    })
}

/// nats-server's `DEFAULT_ALLOW_RESPONSE_EXPIRATION`.
const DEFAULT_RESPONSE_EXPIRY: Duration = Duration::from_secs(120);

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(toml: &str) -> Vec<RawUser> {
        #[derive(Deserialize)]
        struct File {
            users: Vec<RawUser>,
        }
        toml::from_str::<File>(toml).expect("toml").users
    }

    #[test]
    fn users_with_permissions_in_every_form() {
        let users = resolve(&parse(
            r#"
            [[users]]
            user = "a"
            password = "b"
            [users.permissions]
            publish = "orders.>"
            subscribe = { allow = ["_INBOX.>"], deny = ["orders.audit"] }
            allow_responses = { max = 3, expires = "1m" }

            [[users]]
            user = "svc"
            password = "$2a$04$abc"
            permissions = { subscribe = ["svc.>", "x"], allow_responses = true }

            [[users]]
            nkey = "UDXU4RCSJNZOIQHZNWXHXORDPRTGNJAHAHFRGZNEEJCPQTT2M7NLCNF4"
            "#,
        ))
        .expect("valid");
        assert_eq!(users.len(), 3);
        let a = users[0].permissions.as_ref().expect("perms");
        assert_eq!(a.publish, Some((Some(vec!["orders.>".to_owned()]), vec![])));
        assert_eq!(
            a.subscribe,
            Some((
                Some(vec!["_INBOX.>".to_owned()]),
                vec!["orders.audit".to_owned()]
            ))
        );
        assert_eq!(a.allow_responses, Some((3, Duration::from_secs(60))));
        let svc = users[1].permissions.as_ref().expect("perms");
        assert_eq!(svc.allow_responses, Some((1, Duration::from_secs(120))));
        assert_eq!(users[2].password, None);
        assert!(
            !format!("{:?}", users[0]).contains("\"b\""),
            "password redacted"
        );
    }

    #[test]
    fn bad_entries_say_what_is_wrong() {
        let err = |toml: &str| resolve(&parse(toml)).expect_err("invalid").to_string();
        assert!(err("[[users]]\nuser = \"a\"\n").contains("needs either"));
        assert!(err("[[users]]\nnkey = \"Nope\"\n").contains("public NKey"));
        assert!(
            err("[[users]]\nuser = \"a\"\npassword = \"b\"\npermissions = { publish = [\"a..b\"] }\n")
                .contains("not a valid subject")
        );
        assert!(
            err("[[users]]\nuser = \"a\"\npassword = \"b\"\npermissions = { subscribe = [\"a q\"] }\n")
                .contains("not supported yet")
        );
    }
}
