//! The one error type: which setting broke which rule.

/// A configuration error. The message names the setting and the rule.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A value broke a rule.
    #[error("{setting} {rule}")]
    Invalid {
        /// The setting as the operator names it (env var, or flag when there is none).
        setting: &'static str,
        /// What is wrong, ending with the offending value.
        rule: String,
    },
    /// A source could not be read or a value had the wrong type.
    #[error("configuration error: {0}")]
    Source(Box<figment::Error>),
}

impl From<figment::Error> for ConfigError {
    fn from(err: figment::Error) -> Self {
        ConfigError::Source(Box::new(err))
    }
}

pub(crate) fn invalid(setting: &'static str, rule: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        setting,
        rule: rule.into(),
    }
}
