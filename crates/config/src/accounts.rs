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
//! The JetStream account may carry nats-server's account limits instead of `true`;
//! the control plane enforces them across the agent group:
//!
//! ```toml
//! [accounts.ORDERS]
//! jetstream = { max_streams = 10, max_consumers = 100, max_file = "10GiB" }
//! ```
//!
//! Stream exports and imports share subjects one way, as nats-server's do: what is
//! published in the exporting account on an exported subject also reaches the
//! importing account's subscribers, on the same subject or under the import's
//! `prefix`:
//!
//! ```toml
//! [accounts.ORDERS]
//! exports = [{ stream = "orders.events.>" }]          # `accounts = [...]`: only those
//! [accounts.AUDIT]
//! imports = [{ stream = { account = "ORDERS", subject = "orders.events.>" }, prefix = "from_orders" }]
//! ```
//!
//! JetStream may serve several accounts; each owns its streams, consumers and KV
//! buckets (two accounts may both have a stream `ORDERS`). The control plane names a
//! stream by its id: the bare name for the account that owns bare ids, `<account>.<name>`
//! for the others. With one JetStream account, that account owns the bare ids (as
//! before several were possible: nothing to migrate). With several, one of them must
//! say `bare_stream_ids = true`: a group that ran JetStream in one account before marks
//! that account, so its streams keep their ids and data; a new group marks any one.
//!
//! ```toml
//! [accounts.ORDERS]
//! jetstream = true
//! bare_stream_ids = true            # its streams existed before BILLING had JetStream
//! [accounts.BILLING]
//! jetstream = true
//! ```
//!
//! What is not built yet is refused here, by name, rather than ignored: service
//! exports' non-singleton responses, a stream import's `to`, and the system account.
//! Decentralized JWT auth is the agent's `operator` setting.

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
    /// With several JetStream accounts: this one owns the streams named by their bare
    /// name in the control plane (see the module documentation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bare_stream_ids: Option<bool>,
}

/// `jetstream = true`, nats-server's `jetstream: enabled`, or its limits table
/// `jetstream = { max_streams = 10, max_consumers = 100, max_file = "1GiB", max_mem =
/// "256MiB" }` (which enables JetStream too; -1 = unlimited).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RawJetStreamFlag {
    Flag(bool),
    Word(String),
    Limits(BTreeMap<String, RawLimit>),
}

/// One account limit: a number (-1 = unlimited) or a byte size such as `"1GiB"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RawLimit {
    Number(i64),
    Text(String),
}

/// The JetStream account's limits (nats-server's account `jetstream { ... }`);
/// `None` = unlimited. The control plane enforces them for the whole agent group.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JetStreamLimits {
    pub max_streams: Option<u64>,
    pub max_consumers: Option<u64>,
    /// Bytes of stream storage (`max_file`, or `max_store`).
    pub max_file: Option<u64>,
    /// Memory bytes (`max_mem`, or `max_memory`): reported, not enforced (every
    /// stream is stored in the bucket).
    pub max_mem: Option<u64>,
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
    /// A service's answers per request: `"singleton"` (the default, the only one
    /// built), `"stream"` or `"chunked"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_type: Option<String>,
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

/// A checked stream import: publishes in `from` on `subject` also reach `into`'s
/// subscribers, on the subject behind `prefix` when there is one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamImportSpec {
    pub from: String,
    pub into: String,
    pub subject: String,
    pub prefix: Option<String>,
}

/// A checked service import: requests published in `into` on `local` reach `from`'s
/// responders on `subject`, and their answers come back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceImportSpec {
    pub from: String,
    pub into: String,
    pub subject: String,
    pub local: String,
}

/// What [`resolve`] checked: every user, the accounts JetStream serves, the stream
/// and service imports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Resolved {
    pub users: Vec<UserSpec>,
    /// The JetStream account that owns the bare stream ids (`$G` without any).
    pub jetstream: String,
    pub jetstream_limits: JetStreamLimits,
    /// The other JetStream accounts (ids `<account>.<name>`), with their limits.
    pub jetstream_more: Vec<(String, JetStreamLimits)>,
    pub stream_imports: Vec<StreamImportSpec>,
    pub service_imports: Vec<ServiceImportSpec>,
}

const SETTING: &str = "accounts";

/// Every user (the top-level ones in `$G`, the others in their account) and the
/// accounts JetStream serves.
pub(crate) fn resolve(
    top_level: &[RawUser],
    accounts: &BTreeMap<String, RawAccount>,
) -> Result<Resolved, ConfigError> {
    let mut all = users::resolve(top_level)?;
    let mut jetstream_more: Vec<(String, JetStreamLimits)> = Vec::new();
    let mut bare = Vec::new();
    let mut stream_imports = Vec::new();
    let mut service_imports = Vec::new();
    for (name, account) in accounts {
        check_name(name)?;
        for export in account.exports.iter().flatten() {
            check_export(name, export)?;
        }
        for import in account.imports.iter().flatten() {
            if import.service.is_some() && import.stream.is_none() {
                service_imports.push(check_service_import(name, import, accounts)?);
            } else {
                stream_imports.push(check_import(name, import, accounts)?);
            }
        }
        let enabled = match &account.jetstream {
            None | Some(RawJetStreamFlag::Flag(false)) => None,
            Some(RawJetStreamFlag::Flag(true)) => Some(JetStreamLimits::default()),
            Some(RawJetStreamFlag::Limits(table)) => Some(limits(name, table)?),
            Some(RawJetStreamFlag::Word(word)) => match word.to_ascii_lowercase().as_str() {
                "enabled" | "enable" | "true" => Some(JetStreamLimits::default()),
                "disabled" | "disable" | "false" => None,
                _ => {
                    return Err(invalid(
                        SETTING,
                        format!(
                            "account `{name}`: jetstream must be true, false, \"enabled\" or \"disabled\", got `{word}`"
                        ),
                    ));
                }
            },
        };
        match (enabled, account.bare_stream_ids == Some(true)) {
            (Some(limits), marked) => {
                if marked {
                    bare.push(name.clone());
                }
                jetstream_more.push((name.clone(), limits));
            }
            (None, true) => {
                return Err(invalid(
                    SETTING,
                    format!("account `{name}`: bare_stream_ids needs jetstream enabled"),
                ));
            }
            (None, false) => {}
        }
        for mut user in users::resolve(account.users.as_deref().unwrap_or_default())? {
            user.account = Some(name.clone());
            all.push(user);
        }
    }
    let owner = match (jetstream_more.len(), bare.as_slice()) {
        (0, _) => None,
        (1, _) => Some(0),
        (_, [one]) => jetstream_more.iter().position(|(n, _)| n == one),
        (_, []) => {
            return Err(invalid(
                SETTING,
                format!(
                    "JetStream in several accounts (`{}`): mark the one whose streams keep bare ids `bare_stream_ids = true` (the account that ran JetStream before, if any; its streams keep their data)",
                    names(&jetstream_more)
                ),
            ));
        }
        (_, many) => {
            return Err(invalid(
                SETTING,
                format!(
                    "only one account may say bare_stream_ids = true, got `{}`",
                    many.join("`, `")
                ),
            ));
        }
    };
    let (jetstream, jetstream_limits) = match owner {
        Some(i) => jetstream_more.remove(i),
        None => (GLOBAL_ACCOUNT.to_owned(), JetStreamLimits::default()),
    };
    Ok(Resolved {
        users: all,
        jetstream,
        jetstream_limits,
        jetstream_more,
        stream_imports,
        service_imports,
    })
}

fn names(accounts: &[(String, JetStreamLimits)]) -> String {
    accounts
        .iter()
        .map(|(n, _)| n.as_str())
        .collect::<Vec<_>>()
        .join("`, `")
}

/// An account's `jetstream = { ... }` table.
fn limits(
    account: &str,
    table: &BTreeMap<String, RawLimit>,
) -> Result<JetStreamLimits, ConfigError> {
    let mut out = JetStreamLimits::default();
    for (key, value) in table {
        let slot = match key.as_str() {
            "max_streams" => &mut out.max_streams,
            "max_consumers" => &mut out.max_consumers,
            "max_file" | "max_store" | "max_file_store" => &mut out.max_file,
            "max_mem" | "max_memory" | "max_memory_store" => &mut out.max_mem,
            other => {
                return Err(invalid(
                    SETTING,
                    format!(
                        "account `{account}`: jetstream limit `{other}` is not supported yet (max_streams, max_consumers, max_file, max_mem are)"
                    ),
                ));
            }
        };
        *slot = match value {
            RawLimit::Number(n) if *n < 0 => None,
            RawLimit::Number(n) => Some(n.unsigned_abs()),
            RawLimit::Text(text) => Some(crate::values::parse_bytes(
                SETTING,
                &crate::values::NumberOrString::String(text.clone()),
            )?),
        };
    }
    Ok(out)
}

fn check_export(account: &str, export: &RawExport) -> Result<(), ConfigError> {
    match (&export.stream, &export.service) {
        (Some(subject), None) if infinistream_protocol::subject::is_valid_subject(subject) => {
            Ok(())
        }
        (Some(subject), None) => Err(invalid(
            SETTING,
            format!("account `{account}`: export `{subject}` is not a valid subject"),
        )),
        (None, Some(subject)) if !infinistream_protocol::subject::is_valid_subject(subject) => {
            Err(invalid(
                SETTING,
                format!("account `{account}`: export `{subject}` is not a valid subject"),
            ))
        }
        (None, Some(subject)) => match export.response_type.as_deref() {
            None => Ok(()),
            Some(t) if t.eq_ignore_ascii_case("singleton") => Ok(()),
            Some(t) => Err(invalid(
                SETTING,
                format!(
                    "account `{account}`: service `{subject}`: response_type `{t}` is not supported yet (only singleton)"
                ),
            )),
        },
        _ => Err(invalid(
            SETTING,
            format!("account `{account}`: an export names either `stream` or `service`"),
        )),
    }
}

fn check_import(
    into: &str,
    import: &RawImport,
    accounts: &BTreeMap<String, RawAccount>,
) -> Result<StreamImportSpec, ConfigError> {
    let refuse = |rule: String| Err(invalid(SETTING, format!("account `{into}`: {rule}")));
    let (Some(source), None) = (&import.stream, &import.service) else {
        return refuse("an import names either `stream` or `service`".to_owned());
    };
    if import.to.is_some() {
        return refuse("a stream import's `to` is not supported yet (use `prefix`)".to_owned());
    }
    let subject = &source.subject;
    let exported = exports_to(accounts, &source.account, into, subject, |e| &e.stream);
    if !exported || !infinistream_protocol::subject::is_valid_subject(subject) {
        return refuse(format!(
            "account `{}` exports no stream `{subject}` to it",
            source.account
        ));
    }
    if let Some(prefix) = &import.prefix
        && (prefix.contains(['*', '>'])
            || !infinistream_protocol::subject::is_valid_subject(prefix))
    {
        return refuse(format!(
            "import prefix must be literal subject tokens, got `{prefix}`"
        ));
    }
    Ok(StreamImportSpec {
        from: source.account.clone(),
        into: into.to_owned(),
        subject: subject.clone(),
        prefix: import.prefix.clone(),
    })
}

/// Whether account `from` exports `subject` (the export `kind` picks: its stream or
/// its service subject) to account `into`.
fn exports_to(
    accounts: &BTreeMap<String, RawAccount>,
    from: &str,
    into: &str,
    subject: &str,
    kind: impl Fn(&RawExport) -> &Option<String>,
) -> bool {
    accounts.get(from).is_some_and(|from| {
        from.exports.iter().flatten().any(|e| {
            kind(e).as_ref().is_some_and(|s| {
                infinistream_protocol::subject::is_subset_match(subject, s)
                    && e.accounts
                        .as_ref()
                        .is_none_or(|allowed| allowed.iter().any(|a| a == into))
            })
        })
    })
}

fn check_service_import(
    into: &str,
    import: &RawImport,
    accounts: &BTreeMap<String, RawAccount>,
) -> Result<ServiceImportSpec, ConfigError> {
    let refuse = |rule: String| Err(invalid(SETTING, format!("account `{into}`: {rule}")));
    let Some(source) = &import.service else {
        return refuse("an import names either `stream` or `service`".to_owned());
    };
    if import.prefix.is_some() {
        return refuse("a service import takes `to`, not `prefix`".to_owned());
    }
    let subject = &source.subject;
    let exported = exports_to(accounts, &source.account, into, subject, |e| &e.service);
    if !exported || !infinistream_protocol::subject::is_valid_subject(subject) {
        return refuse(format!(
            "account `{}` exports no service `{subject}` to it",
            source.account
        ));
    }
    let local = import.to.clone().unwrap_or_else(|| subject.clone());
    let wildcard = |s: &str| s.split('.').any(|t| t == "*" || t == ">");
    if !infinistream_protocol::subject::is_valid_subject(&local) {
        return refuse(format!(
            "service import `to` `{local}` is not a valid subject"
        ));
    }
    if local != *subject && (wildcard(&local) || wildcard(subject)) {
        return refuse(format!(
            "a service import's `to` remapping wildcards (`{subject}` to `{local}`) is not supported yet"
        ));
    }
    Ok(ServiceImportSpec {
        from: source.account.clone(),
        into: into.to_owned(),
        subject: subject.clone(),
        local,
    })
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

    fn resolve_text(toml: &str) -> Result<Resolved, ConfigError> {
        let (users, accounts) = parse(toml);
        resolve(&users, &accounts)
    }

    #[test]
    fn users_land_in_their_account() {
        let Resolved {
            users, jetstream, ..
        } = resolve_text(
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
    fn jetstream_limits_enable_the_account() {
        let resolved = resolve_text(
            r#"
            [accounts.A]
            jetstream = { max_streams = 2, max_consumers = -1, max_file = "1KiB", max_mem = 1000 }
            "#,
        )
        .expect("valid");
        assert_eq!(resolved.jetstream, "A");
        assert_eq!(
            resolved.jetstream_limits,
            JetStreamLimits {
                max_streams: Some(2),
                max_consumers: None,
                max_file: Some(1024),
                max_mem: Some(1000),
            }
        );
        let err = resolve_text("[accounts.A]\njetstream = { max_ack_pending = 5 }\n")
            .expect_err("refused")
            .to_string();
        assert!(
            err.contains("`max_ack_pending` is not supported yet"),
            "{err}"
        );
    }

    #[test]
    fn several_jetstream_accounts_name_the_owner_of_bare_ids() {
        let resolved = resolve_text(
            r#"
            [accounts.A]
            jetstream = { max_streams = 1 }
            [accounts.B]
            jetstream = true
            bare_stream_ids = true
            [accounts.C]
            jetstream = "disabled"
            "#,
        )
        .expect("valid");
        assert_eq!(resolved.jetstream, "B");
        assert_eq!(resolved.jetstream_limits, JetStreamLimits::default());
        assert_eq!(
            resolved.jetstream_more,
            vec![(
                "A".to_owned(),
                JetStreamLimits {
                    max_streams: Some(1),
                    ..JetStreamLimits::default()
                }
            )]
        );
        // One JetStream account owns the bare ids without saying so (as before).
        let one = resolve_text("[accounts.A]\njetstream = true\n").expect("valid");
        assert_eq!(one.jetstream, "A");
        assert!(one.jetstream_more.is_empty());
    }

    #[test]
    fn jetstream_defaults_to_the_global_account() {
        let resolved = resolve_text("[accounts.A]\nusers = [{ user = \"a\", password = \"p\" }]\n")
            .expect("valid");
        assert_eq!(resolved.jetstream, GLOBAL_ACCOUNT);
    }

    #[test]
    fn stream_imports_need_a_matching_export() {
        let resolved = resolve_text(
            r#"
            [accounts.A]
            exports = [{ stream = "ev.>", accounts = ["B"] }]
            [accounts.B]
            imports = [{ stream = { account = "A", subject = "ev.eu.*" }, prefix = "from_a" }]
            "#,
        )
        .expect("valid");
        assert_eq!(
            resolved.stream_imports,
            vec![StreamImportSpec {
                from: "A".into(),
                into: "B".into(),
                subject: "ev.eu.*".into(),
                prefix: Some("from_a".into()),
            }]
        );
        let err = |toml: &str| resolve_text(toml).expect_err("refused").to_string();
        assert!(
            err("[accounts.A]\nexports = [{ stream = \"ev.>\", accounts = [\"X\"] }]\n[accounts.B]\nimports = [{ stream = { account = \"A\", subject = \"ev.x\" } }]\n")
                .contains("exports no stream `ev.x` to it")
        );
        assert!(
            err("[accounts.A]\nexports = [{ stream = \"ev.>\" }]\n[accounts.B]\nimports = [{ stream = { account = \"A\", subject = \"other\" } }]\n")
                .contains("exports no stream")
        );
    }

    #[test]
    fn service_imports_need_a_matching_export() {
        let resolved = resolve_text(
            r#"
            [accounts.A]
            exports = [{ service = "svc.>", accounts = ["B"] }]
            [accounts.B]
            imports = [{ service = { account = "A", subject = "svc.time" }, to = "time" },
                       { service = { account = "A", subject = "svc.*" } }]
            "#,
        )
        .expect("valid");
        assert_eq!(
            resolved.service_imports,
            vec![
                ServiceImportSpec {
                    from: "A".into(),
                    into: "B".into(),
                    subject: "svc.time".into(),
                    local: "time".into(),
                },
                ServiceImportSpec {
                    from: "A".into(),
                    into: "B".into(),
                    subject: "svc.*".into(),
                    local: "svc.*".into(),
                },
            ]
        );
    }

    #[test]
    fn what_is_not_built_is_refused_by_name() {
        let err = |toml: &str| resolve_text(toml).expect_err("refused").to_string();
        assert!(
            err("[accounts.A]\nexports = [{ service = \"svc.>\", response_type = \"stream\" }]\n")
                .contains("response_type `stream` is not supported yet")
        );
        assert!(
            err("[accounts.B]\nimports = [{ service = { account = \"A\", subject = \"s\" } }]\n")
                .contains("exports no service `s` to it")
        );
        assert!(
            err("[accounts.A]\nexports = [{ service = \"svc.>\" }]\n[accounts.B]\nimports = [{ service = { account = \"A\", subject = \"svc.*\" }, to = \"x.*\" }]\n")
                .contains("remapping wildcards")
        );
        assert!(
            err("[accounts.B]\nimports = [{ stream = { account = \"A\", subject = \"e.>\" }, to = \"x\" }]\n")
                .contains("`to` is not supported yet")
        );
        assert!(
            err("[accounts.A]\njetstream = true\n[accounts.B]\njetstream = true\n")
                .contains("mark the one whose streams keep bare ids `bare_stream_ids = true`")
        );
        assert!(
            err("[accounts.A]\njetstream = true\nbare_stream_ids = true\n[accounts.B]\njetstream = true\nbare_stream_ids = true\n")
                .contains("only one account may say bare_stream_ids")
        );
        assert!(
            err("[accounts.A]\nbare_stream_ids = true\n")
                .contains("bare_stream_ids needs jetstream enabled")
        );
        assert!(err("[accounts.\"$SYS\"]\n").contains("system account"));
        assert!(err("[accounts.\"a.b\"]\n").contains("without spaces or dots"));
        assert!(err("[accounts.A]\njetstream = \"maybe\"\n").contains("got `maybe`"));
    }
}
