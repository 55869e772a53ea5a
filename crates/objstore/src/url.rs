//! Bucket URL → object_store: the one place that turns `--bucket` into a store.
//!
//! Forms (details and every option in docs/bucket.md):
//!
//! ```text
//! file:///absolute/path                      local directory (created if missing;
//!                                            file://rel/path is relative to the cwd)
//! memory://                                  in-process, for tests
//! s3://bucket[/prefix][?key=value&...]       AWS S3 or an S3-compatible server
//! gs://bucket[/prefix][?key=value&...]       Google Cloud Storage
//! az://container[/prefix][?key=value&...]    Azure Blob Storage
//! ```
//!
//! Cloud stores start from the usual environment (`AWS_*`, `GOOGLE_*`, `AZURE_*`, as
//! object_store's `from_env` reads them); query parameters override it and accept
//! object_store's configuration keys (`endpoint`, `region`, `allow_http`,
//! `access_key_id`, `secret_access_key`, `virtual_hosted_style_request`, …) plus
//! `path_style=true|false`. Unknown keys are an error, so typos do not silently fall
//! back to defaults. Secrets in query parameters are redacted from every message.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey};
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::prefix::PrefixStore;
use object_store::{BackoffConfig, ObjectStore};

/// Errors opening a bucket; each names the (redacted) URL.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The URL is malformed.
    #[error("invalid bucket url ({reason}): `{url}`")]
    InvalidUrl {
        /// What is wrong.
        reason: String,
        /// The URL, secrets redacted.
        url: String,
    },
    /// The scheme is not one of file, memory, s3, gs, az.
    #[error("unsupported bucket url scheme `{scheme}` (use file, memory, s3, gs or az): `{url}`")]
    UnsupportedScheme {
        /// The scheme.
        scheme: String,
        /// The URL, secrets redacted.
        url: String,
    },
    /// A query parameter is not an option of this store.
    #[error("unknown bucket url option `{key}`: `{url}`")]
    UnknownOption {
        /// The option.
        key: String,
        /// The URL, secrets redacted.
        url: String,
    },
    /// The local directory could not be created.
    #[error("cannot create bucket directory: `{url}`")]
    CreateDir {
        /// The URL.
        url: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// object_store rejected the configuration.
    #[error("cannot configure bucket: `{url}`")]
    Build {
        /// The URL, secrets redacted.
        url: String,
        /// Why.
        #[source]
        source: object_store::Error,
    },
    /// The startup probe failed: wrong endpoint, missing bucket, bad credentials…
    #[error("bucket is unreachable: `{url}`")]
    Unreachable {
        /// The URL, secrets redacted.
        url: String,
        /// Why.
        #[source]
        source: object_store::Error,
    },
    /// The startup probe did not answer in time.
    #[error("bucket did not answer within {timeout:?}: `{url}`")]
    ProbeTimeout {
        /// The limit.
        timeout: Duration,
        /// The URL, secrets redacted.
        url: String,
    },
    /// The group name cannot be used in keys.
    #[error("invalid group for bucket: `{url}`")]
    Group {
        /// The URL, secrets redacted.
        url: String,
        /// Why.
        #[source]
        source: crate::keys::KeyError,
    },
}

/// The store kind a URL selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// `file://`
    File,
    /// `memory://`
    Memory,
    /// `s3://`
    S3,
    /// `gs://`
    Gcs,
    /// `az://`
    Azure,
}

/// A parsed bucket URL.
#[derive(Clone, PartialEq, Eq)]
pub struct BucketUrl {
    scheme: Scheme,
    /// Bucket / container name, or the directory for `file`.
    location: String,
    /// Key prefix inside the bucket (cloud stores only).
    prefix: String,
    options: Vec<(String, String)>,
    raw: String,
}

impl fmt::Debug for BucketUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("BucketUrl").field(&self.redacted()).finish()
    }
}

impl fmt::Display for BucketUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// True for option names whose values must never be printed.
fn is_secret(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    [
        "secret",
        "token",
        "password",
        "sas",
        "account_key",
        "access_key",
    ]
    .iter()
    .any(|word| key.contains(word))
        && key != "access_key_id"
        && key != "aws_access_key_id"
}

/// `url` with secret query values replaced by `***`.
pub fn redact(url: &str) -> String {
    let Some((base, query)) = url.split_once('?') else {
        return url.to_owned();
    };
    let parts: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((key, _)) if is_secret(&percent_decode(key).unwrap_or_default()) => {
                format!("{key}=***")
            }
            _ => pair.to_owned(),
        })
        .collect();
    format!("{base}?{}", parts.join("&"))
}

fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            byte => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

fn parse_bool(url: &BucketUrl, key: &str, value: &str) -> Result<bool, OpenError> {
    match value.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" | "" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(url.invalid(format!(
            "option `{key}` must be true or false, got `{value}`"
        ))),
    }
}

impl BucketUrl {
    /// Parses `url` (no I/O).
    pub fn parse(url: &str) -> Result<Self, OpenError> {
        let invalid = |reason: &str| OpenError::InvalidUrl {
            reason: reason.to_owned(),
            url: redact(url),
        };
        let (scheme_text, rest) = url
            .split_once("://")
            .ok_or_else(|| invalid("expected scheme://…"))?;
        let scheme = match scheme_text.to_ascii_lowercase().as_str() {
            "file" => Scheme::File,
            "memory" => Scheme::Memory,
            "s3" | "s3a" => Scheme::S3,
            "gs" | "gcs" => Scheme::Gcs,
            "az" | "azure" | "abfs" | "abfss" => Scheme::Azure,
            _ => {
                return Err(OpenError::UnsupportedScheme {
                    scheme: scheme_text.to_owned(),
                    url: redact(url),
                });
            }
        };
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        let mut options = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let key =
                percent_decode(key).ok_or_else(|| invalid("bad percent-encoding in query"))?;
            let value =
                percent_decode(value).ok_or_else(|| invalid("bad percent-encoding in query"))?;
            options.push((key, value));
        }
        let path = percent_decode(path).ok_or_else(|| invalid("bad percent-encoding in path"))?;
        let (location, prefix) = match scheme {
            Scheme::File => {
                // `file:///abs/dir`, or `file://rel/dir` relative to the working
                // directory (what a `data/bucket` default turns into).
                if path.is_empty() {
                    return Err(invalid("file urls need a path: file:///dir"));
                }
                (path, String::new())
            }
            Scheme::Memory => {
                if !path.trim_matches('/').is_empty() {
                    return Err(invalid("memory:// takes no path"));
                }
                (String::new(), String::new())
            }
            Scheme::S3 | Scheme::Gcs | Scheme::Azure => {
                let (bucket, prefix) = path.split_once('/').unwrap_or((path.as_str(), ""));
                if bucket.is_empty() {
                    return Err(invalid("missing bucket name"));
                }
                (bucket.to_owned(), prefix.trim_matches('/').to_owned())
            }
        };
        if let (Scheme::File | Scheme::Memory, Some((key, _))) = (scheme, options.first()) {
            return Err(OpenError::UnknownOption {
                key: key.clone(),
                url: redact(url),
            });
        }
        Ok(Self {
            scheme,
            location,
            prefix,
            options,
            raw: url.to_owned(),
        })
    }

    /// The store kind.
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// The bucket or container (the directory for `file`).
    pub fn location(&self) -> &str {
        &self.location
    }

    /// The key prefix inside the bucket (empty for none).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The query options, decoded.
    pub fn options(&self) -> &[(String, String)] {
        &self.options
    }

    /// The URL with secret values replaced by `***`.
    pub fn redacted(&self) -> String {
        redact(&self.raw)
    }

    fn invalid(&self, reason: String) -> OpenError {
        OpenError::InvalidUrl {
            reason,
            url: self.redacted(),
        }
    }

    fn unknown(&self, key: &str) -> OpenError {
        OpenError::UnknownOption {
            key: key.to_owned(),
            url: self.redacted(),
        }
    }

    fn build_error(&self, source: object_store::Error) -> OpenError {
        OpenError::Build {
            url: self.redacted(),
            source,
        }
    }

    /// Builds the store (no request is made). `http_retry` configures object_store's
    /// own HTTP-level retries for cloud stores.
    pub fn build(
        &self,
        http_retry: &object_store::RetryConfig,
    ) -> Result<Arc<dyn ObjectStore>, OpenError> {
        let store: Arc<dyn ObjectStore> = match self.scheme {
            Scheme::Memory => Arc::new(InMemory::new()),
            Scheme::File => {
                std::fs::create_dir_all(&self.location).map_err(|source| OpenError::CreateDir {
                    url: self.redacted(),
                    source,
                })?;
                Arc::new(
                    LocalFileSystem::new_with_prefix(&self.location)
                        .map_err(|source| self.build_error(source))?,
                )
            }
            Scheme::S3 => Arc::new(self.build_s3(http_retry)?),
            Scheme::Gcs => {
                let mut builder = GoogleCloudStorageBuilder::from_env()
                    .with_url(format!("gs://{}", self.location))
                    .with_retry(http_retry.clone());
                for (key, value) in &self.options {
                    let key = GoogleConfigKey::from_str(key).map_err(|_| self.unknown(key))?;
                    builder = builder.with_config(key, value);
                }
                Arc::new(builder.build().map_err(|source| self.build_error(source))?)
            }
            Scheme::Azure => {
                let mut builder = MicrosoftAzureBuilder::from_env()
                    .with_url(format!("az://{}", self.location))
                    .with_retry(http_retry.clone());
                for (key, value) in &self.options {
                    let key = AzureConfigKey::from_str(key).map_err(|_| self.unknown(key))?;
                    builder = builder.with_config(key, value);
                }
                Arc::new(builder.build().map_err(|source| self.build_error(source))?)
            }
        };
        if self.prefix.is_empty() {
            Ok(store)
        } else {
            Ok(Arc::new(PrefixStore::new(
                store,
                object_store::path::Path::from(self.prefix.as_str()),
            )))
        }
    }

    fn build_s3(
        &self,
        http_retry: &object_store::RetryConfig,
    ) -> Result<object_store::aws::AmazonS3, OpenError> {
        let mut builder = AmazonS3Builder::from_env()
            .with_url(format!("s3://{}", self.location))
            .with_retry(http_retry.clone());
        let mut allow_http_set = false;
        for (key, value) in &self.options {
            match key.as_str() {
                "path_style" => {
                    let path_style = parse_bool(self, key, value)?;
                    builder = builder.with_config(
                        AmazonS3ConfigKey::VirtualHostedStyleRequest,
                        (!path_style).to_string(),
                    );
                }
                _ => {
                    let config = AmazonS3ConfigKey::from_str(key).map_err(|_| self.unknown(key))?;
                    if matches!(
                        config,
                        AmazonS3ConfigKey::Client(object_store::ClientConfigKey::AllowHttp)
                    ) {
                        allow_http_set = true;
                    }
                    builder = builder.with_config(config, value);
                }
            }
        }
        // An explicit http:// endpoint is a request for plain HTTP (local S3 servers).
        let http_endpoint = builder
            .get_config_value(&AmazonS3ConfigKey::Endpoint)
            .is_some_and(|e| e.starts_with("http://"));
        if http_endpoint && !allow_http_set && std::env::var_os("AWS_ALLOW_HTTP").is_none() {
            builder = builder.with_allow_http(true);
        }
        builder.build().map_err(|source| self.build_error(source))
    }
}

/// object_store's HTTP-level retry settings used for cloud stores: a few quick
/// retries of requests that never reached the server or got a 5xx, bounded in total
/// time; the decorator in [`crate::retry`] does the rest.
pub fn default_http_retry() -> object_store::RetryConfig {
    object_store::RetryConfig {
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(1),
            base: 2.0,
        },
        max_retries: 2,
        retry_timeout: Duration::from_secs(10),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_forms() {
        let url = BucketUrl::parse(
            "s3://bkt/some/prefix/?endpoint=http://127.0.0.1:8333&region=us-east-1&secret_access_key=abc%2Fd",
        )
        .expect("s3");
        assert_eq!(url.scheme(), Scheme::S3);
        assert_eq!(url.location(), "bkt");
        assert_eq!(url.prefix(), "some/prefix");
        assert_eq!(
            url.options()[2],
            ("secret_access_key".to_owned(), "abc/d".to_owned())
        );
        assert!(!url.to_string().contains("abc"));
        assert!(url.to_string().contains("secret_access_key=***"));

        assert_eq!(
            BucketUrl::parse("memory://").expect("memory").scheme(),
            Scheme::Memory
        );
        let file = BucketUrl::parse("file:///tmp/x%20y").expect("file");
        assert_eq!(file.location(), "/tmp/x y");
        assert_eq!(
            BucketUrl::parse("gs://b").expect("gs").scheme(),
            Scheme::Gcs
        );
        assert_eq!(BucketUrl::parse("az://c/p").expect("az").prefix(), "p");
    }

    #[test]
    fn rejects_bad_urls() {
        for (url, needle) in [
            ("bucket", "expected scheme"),
            ("ftp://x", "unsupported bucket url scheme `ftp`"),
            ("file://", "need a path"),
            ("memory://x", "takes no path"),
            ("s3://", "missing bucket"),
            (
                "file:///tmp/x?region=1",
                "unknown bucket url option `region`",
            ),
        ] {
            let error = BucketUrl::parse(url).expect_err(url).to_string();
            assert!(error.contains(needle), "{url}: {error}");
        }
    }

    #[test]
    fn unknown_cloud_option_is_an_error() {
        let url = BucketUrl::parse("s3://b?endpiont=http://x").expect("parse");
        let error = url
            .build(&default_http_retry())
            .expect_err("typo")
            .to_string();
        assert!(
            error.contains("unknown bucket url option `endpiont`"),
            "{error}"
        );
    }

    #[test]
    fn redaction_keeps_non_secrets() {
        let redacted = redact("s3://b?access_key_id=AK&secret_access_key=SK&token=T&region=r");
        assert_eq!(
            redacted,
            "s3://b?access_key_id=AK&secret_access_key=***&token=***&region=r"
        );
    }
}
