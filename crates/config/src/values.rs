//! Value forms shared by several settings: durations in milliseconds, byte sizes,
//! role lists, log formats and plain names.

use std::collections::BTreeSet;

use infinistream_types::{Role, limits};
use serde::{Deserialize, Serialize};

use crate::error::{ConfigError, invalid};

/// A value that may be written as a number or a string (`250` or `"250ms"`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum NumberOrString {
    Number(u64),
    String(String),
}

/// A roles value: `"proxy,jobs"` or `["proxy", "jobs"]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RolesValue {
    List(String),
    Items(Vec<String>),
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

pub(crate) fn parse_millis(
    setting: &'static str,
    value: &NumberOrString,
) -> Result<u64, ConfigError> {
    match value {
        NumberOrString::Number(n) => Ok(*n),
        NumberOrString::String(s) => {
            let trimmed = s.trim();
            let digits = trimmed.strip_suffix("ms").unwrap_or(trimmed).trim();
            digits.parse::<u64>().map_err(|_| {
                invalid(
                    setting,
                    format!("must be a number of milliseconds, got `{s}`"),
                )
            })
        }
    }
}

/// Parses a byte size: a number, or a string with an optional unit (`512`, `64KiB`,
/// `256MiB`, `2GiB`, `1TiB`; `KB`/`MB`/`GB`/`TB` are powers of 1000).
pub(crate) fn parse_bytes(
    setting: &'static str,
    value: &NumberOrString,
) -> Result<u64, ConfigError> {
    let s = match value {
        NumberOrString::Number(n) => return Ok(*n),
        NumberOrString::String(s) => s,
    };
    let trimmed = s.trim();
    let split = trimmed
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(trimmed.len());
    let (digits, unit) = trimmed.split_at(split);
    let multiplier: Option<u64> = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => Some(1),
        "kib" | "k" => Some(1 << 10),
        "mib" | "m" => Some(1 << 20),
        "gib" | "g" => Some(1 << 30),
        "tib" | "t" => Some(1 << 40),
        "kb" => Some(1_000),
        "mb" => Some(1_000_000),
        "gb" => Some(1_000_000_000),
        "tb" => Some(1_000_000_000_000),
        _ => None,
    };
    digits
        .parse::<u64>()
        .ok()
        .zip(multiplier)
        .and_then(|(n, m)| n.checked_mul(m))
        .ok_or_else(|| {
            invalid(
                setting,
                format!("must be a byte size such as 268435456, 256MiB or 2GiB, got `{s}`"),
            )
        })
}

/// Parses a roles list (`proxy,jobs`), expanding `proxy`.
pub fn parse_roles(value: &RolesValue) -> Result<BTreeSet<Role>, ConfigError> {
    let items: Vec<String> = match value {
        RolesValue::List(s) => s.split(',').map(str::to_owned).collect(),
        RolesValue::Items(items) => items.clone(),
    };
    let mut roles = BTreeSet::new();
    for item in items.iter().map(|s| s.trim()).filter(|s| !s.is_empty()) {
        let parsed = Role::parse_one(item).ok_or_else(|| {
            invalid(
                "INFINISTREAM_AGENT_ROLES",
                format!(
                    "must be a comma-separated list of proxy-produce, proxy-consume, proxy, jobs; got unknown role `{item}`"
                ),
            )
        })?;
        roles.extend(parsed.iter().copied());
    }
    if roles.is_empty() {
        return Err(invalid(
            "INFINISTREAM_AGENT_ROLES",
            "must name at least one role (proxy-produce, proxy-consume, proxy, jobs), got an empty list",
        ));
    }
    Ok(roles)
}

pub(crate) fn check_name(setting: &'static str, value: &str) -> Result<(), ConfigError> {
    if value.is_empty() || value.len() > limits::NAME_MAX_LEN {
        return Err(invalid(
            setting,
            format!(
                "must be 1 to {} characters, got `{value}`",
                limits::NAME_MAX_LEN
            ),
        ));
    }
    if !infinistream_types::is_plain_name(value) {
        return Err(invalid(
            setting,
            format!("may only contain letters, digits, `-`, `_` and `.`, got `{value}`"),
        ));
    }
    Ok(())
}
