//! The bucket URL (`INFINISTREAM_BUCKET_NAME`).

use std::path::Path;

use crate::error::{ConfigError, invalid};

const SUPPORTED_SCHEMES: &[&str] = &["file://", "memory://", "s3://", "gs://", "az://"];

/// Makes a `file://` bucket URL absolute (relative paths resolve against the working
/// directory), so every component and log line sees the same location.
fn absolutize_bucket(bucket: &str) -> Result<String, ConfigError> {
    let Some(path) = bucket.strip_prefix("file://") else {
        return Ok(bucket.to_owned());
    };
    if path.is_empty() {
        return Err(invalid(
            "INFINISTREAM_BUCKET_NAME",
            format!("must name a directory after file://, got `{bucket}`"),
        ));
    }
    let path = Path::new(path);
    if path.is_absolute() {
        return Ok(bucket.to_owned());
    }
    let cwd = std::env::current_dir().map_err(|e| {
        invalid(
            "INFINISTREAM_BUCKET_NAME",
            format!("is relative but the working directory is unknown ({e}), got `{bucket}`"),
        )
    })?;
    Ok(format!("file://{}", cwd.join(path).display()))
}

/// The bucket URL: the configured one, else a `file://` bucket under `data_dir`; its
/// scheme checked and a `file://` path made absolute.
pub(super) fn bucket_url(configured: Option<&str>, data_dir: &Path) -> Result<String, ConfigError> {
    let bucket = match configured {
        Some(b) => b.trim().to_owned(),
        None => format!("file://{}", data_dir.join("bucket").display()),
    };
    if !SUPPORTED_SCHEMES.iter().any(|s| bucket.starts_with(s)) {
        return Err(invalid(
            "INFINISTREAM_BUCKET_NAME",
            format!(
                "must be a URL starting with one of {}, got `{bucket}`",
                SUPPORTED_SCHEMES.join(", ")
            ),
        ));
    }
    let bucket = absolutize_bucket(&bucket)?;
    Ok(bucket)
}
