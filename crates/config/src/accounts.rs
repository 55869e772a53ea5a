//! The `[accounts.NAME]` of the agent's config file: nats-server's `accounts { A {
//! users = [...] } }`, written in TOML. Users listed under an account publish and
//! subscribe in it; the top-level `[[users]]` are in the global account `$G`.
//!
//! ```toml
//! [accounts.ORDERS]
//! jetstream = true                  # or "enabled": JetStream serves this account
//! [[accounts.ORDERS.users]]
//! user = "orders-app"
//! password = "…"
//!
//! [accounts.BILLING]
//! users = [{ user = "billing-app", password = "…" }]
//! ```
//!
//! What is not built yet is refused here, by name, rather than ignored: exports and
//! imports between accounts, JetStream in more than one account, the system account,
//! and decentralized JWT auth (`operator`, `resolver`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{ConfigError, invalid};
use crate::users::{self, RawUser, UserSpec};

/// One `[accounts.NAME]` table as written.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RawAccount {
    /// `true` / `"enabled"`: JetStream serves this account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jetstream: Option<RawJetStreamFlag>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub users: Option<Vec<RawUser>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exports: Option<Vec<RawExport>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub imports: Option<Vec<RawImport>>,
}

/// `jetstream = true` or nats-server's `jetstream: enabled`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RawJetStreamFlag {
    Flag(bool),
    Word(String),
}

/// An `exports` entry: `{ service = "svc.>" }` or `{ stream = "events.>" }`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RawExport {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accounts: Option<Vec<String>>,
}

/// An `imports` entry: `{ service = { account = "A", subject = "svc.>" }, to = "…" }`
/// or `{ stream = { account = "A", subject = "events.>" }, prefix = "…" }`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RawImport {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<RawImportSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<RawImportSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
}

/// Where an import comes from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RawImportSource {
    pub account: String,
    pub subject: String,
}

/// nats-server's global account.
pub const GLOBAL_ACCOUNT: &str = "$G";

const SETTING: &str = "accounts";

/// Every user (the top-level ones in `$G`, the others in their account) and the one
/// account JetStream serves.
pub(crate) fn resolve(
    top_level: &[RawUser],
    accounts: &BTreeMap<String, RawAccount>,
) -> Result<(Vec<UserSpec>, String), ConfigError> {
    let mut all = users::resolve(top_level)?;
    let mut jetstream = Vec::new();
    for (name, account) in accounts {
        check_name(name)?;
        if account.exports.as_ref().is_some_and(|e| !e.is_empty())
            || account.imports.as_ref().is_some_and(|i| !i.is_empty())
        {
            return Err(invalid(
                SETTING,
                format!(
                    "account `{name}`: exports and imports between accounts are not supported yet"
                ),
            ));
        }
        match &account.jetstream {
            None | Some(RawJetStreamFlag::Flag(false)) => {}
            Some(RawJetStreamFlag::Flag(true)) => jetstream.push(name.clone()),
            Some(RawJetStreamFlag::Word(word)) => match word.to_ascii_lowercase().as_str() {
                "enabled" | "enable" | "true" => jetstream.push(name.clone()),
                "disabled" | "disable" | "false" => {}
                _ => {
                    return Err(invalid(
                        SETTING,
                        format!(
                            "account `{name}`: jetstream must be true, false, \"enabled\" or \"disabled\", got `{word}`"
                        ),
                    ));
                }
            },
        }
        for mut user in users::resolve(account.users.as_deref().unwrap_or_default())? {
            user.account = Some(name.clone());
            all.push(user);
        }
    }
    if jetstream.len() > 1 {
        return Err(invalid(
            SETTING,
            format!(
                "JetStream in more than one account is not supported yet: pick one of `{}`",
                jetstream.join("`, `")
            ),
        ));
    }
    let jetstream = jetstream.pop().unwrap_or_else(|| GLOBAL_ACCOUNT.to_owned());
    Ok((all, jetstream))
}

fn check_name(name: &str) -> Result<(), ConfigError> {
    if name.is_empty() || name.contains(|c: char| c.is_whitespace() || c == '.') {
        return Err(invalid(
            SETTING,
            format!("account names must be non-empty without spaces or dots, got `{name}`"),
        ));
    }
    if name == "$SYS" {
        return Err(invalid(
            SETTING,
            "the system account `$SYS` is not supported yet",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(toml: &str) -> (Vec<RawUser>, BTreeMap<String, RawAccount>) {
        #[derive(Deserialize)]
        struct File {
            #[serde(default)]
            users: Vec<RawUser>,
            #[serde(default)]
            accounts: BTreeMap<String, RawAccount>,
        }
        let f = toml::from_str::<File>(toml).expect("toml");
        (f.users, f.accounts)
    }

    fn resolve_text(toml: &str) -> Result<(Vec<UserSpec>, String), ConfigError> {
        let (users, accounts) = parse(toml);
        resolve(&users, &accounts)
    }

    #[test]
    fn users_land_in_their_account() {
        let (users, jetstream) = resolve_text(
            r#"
            [[users]]
            user = "global"
            password = "g"

            [accounts.A]
            jetstream = "enabled"
            users = [{ user = "a", password = "pa" }]

            [accounts.B]
            [[accounts.B.users]]
            user = "b"
            password = "pb"
            permissions = { publish = ["b.>"] }
            "#,
        )
        .expect("valid");
        assert_eq!(jetstream, "A");
        let account = |name: &str| {
            users
                .iter()
                .find(|u| u.name == name)
                .and_then(|u| u.account.clone())
        };
        assert_eq!(account("global"), None);
        assert_eq!(account("a").as_deref(), Some("A"));
        assert_eq!(account("b").as_deref(), Some("B"));
    }

    #[test]
    fn jetstream_defaults_to_the_global_account() {
        let (_, jetstream) =
            resolve_text("[accounts.A]\nusers = [{ user = \"a\", password = \"p\" }]\n")
                .expect("valid");
        assert_eq!(jetstream, GLOBAL_ACCOUNT);
    }

    #[test]
    fn what_is_not_built_is_refused_by_name() {
        let err = |toml: &str| resolve_text(toml).expect_err("refused").to_string();
        assert!(
            err("[accounts.A]\nexports = [{ service = \"svc.>\" }]\n")
                .contains("exports and imports between accounts are not supported yet")
        );
        assert!(
            err("[accounts.B]\nimports = [{ stream = { account = \"A\", subject = \"e.>\" }, prefix = \"p\" }]\n")
                .contains("not supported yet")
        );
        assert!(
            err("[accounts.A]\njetstream = true\n[accounts.B]\njetstream = true\n")
                .contains("JetStream in more than one account is not supported yet")
        );
        assert!(err("[accounts.\"$SYS\"]\n").contains("system account"));
        assert!(err("[accounts.\"a.b\"]\n").contains("without spaces or dots"));
        assert!(err("[accounts.A]\njetstream = \"maybe\"\n").contains("got `maybe`"));
    }
}
