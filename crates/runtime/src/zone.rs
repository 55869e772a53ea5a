//! The agent's availability zone from the cloud's instance metadata, for agents whose
//! zone is not configured (`INFINISTREAM_ZONE` / `--zone`), so a Deployment spread over
//! zones gets one zone per pod without hand configuration.
//!
//! Steps: ask the three clouds at once — AWS (IMDSv2: `PUT /latest/api/token`, then
//! `GET /latest/meta-data/placement/availability-zone` with the token), GCP
//! (`GET /computeMetadata/v1/instance/zone` → `projects/N/zones/ZONE`, take `ZONE`) and
//! Azure (IMDS `compute/location` and `compute/zone` → `LOCATION-ZONE`, e.g.
//! `westeurope-2`, the form Kubernetes' `topology.kubernetes.io/zone` label uses) — and
//! take the first valid answer.
//!
//! Bounds: one deadline covers every request and the whole detection (1 s by
//! default), so an agent outside a cloud, where the link-local address may swallow
//! packets, starts at most that much later. Answers are read up to 1 KiB.
//!
//! Failure handling: a refused, reset or timed-out connection, an HTTP error status, a
//! GCP answer without `Metadata-Flavor: Google`, an empty answer (Azure's "no zone")
//! and anything that is not a plain zone name ([`infinistream_types::is_plain_name`])
//! all count as "no answer" and are logged at debug; none is an error: the caller falls
//! back to `default`.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use futures::StreamExt;
use futures::stream::FuturesUnordered;

/// How long detection may take in all.
pub const DETECT_TIMEOUT: Duration = Duration::from_secs(1);

/// Longest answer read from a metadata service.
const MAX_ANSWER_BYTES: usize = 1024;

/// AWS IMDSv2 session tokens asked for live this long (seconds): one detection.
const AWS_TOKEN_TTL_SECONDS: &str = "60";

/// The cloud a zone came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cloud {
    Aws,
    Gcp,
    Azure,
}

impl Cloud {
    /// `aws`, `gcp` or `azure`, as logs name it.
    pub fn as_str(self) -> &'static str {
        match self {
            Cloud::Aws => "aws",
            Cloud::Gcp => "gcp",
            Cloud::Azure => "azure",
        }
    }
}

/// Base URLs of the metadata services to ask (e.g. `http://169.254.169.254`); `None`
/// skips that cloud.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetadataEndpoints {
    pub aws: Option<String>,
    pub gcp: Option<String>,
    pub azure: Option<String>,
}

/// Where the zone an agent runs with came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ZoneOrigin {
    /// Configured; no metadata service was asked.
    Configured,
    /// Answered by a cloud's metadata service.
    Detected(Cloud),
    /// Nothing configured and no valid answer: `default`.
    Default,
}

/// The zone to run with: `configured` as is (no request goes out), else the first
/// valid answer of the metadata services within `timeout`, else `default`.
pub async fn resolve_zone(
    configured: Option<&str>,
    endpoints: &MetadataEndpoints,
    timeout: Duration,
) -> (String, ZoneOrigin) {
    if let Some(zone) = configured {
        return (zone.to_owned(), ZoneOrigin::Configured);
    }
    match detect_zone(endpoints, timeout).await {
        Some((cloud, zone)) => (zone, ZoneOrigin::Detected(cloud)),
        None => ("default".to_owned(), ZoneOrigin::Default),
    }
}

/// Asks every configured metadata service at once; the first valid zone wins. `None`
/// when none answers validly within `timeout`.
pub async fn detect_zone(
    endpoints: &MetadataEndpoints,
    timeout: Duration,
) -> Option<(Cloud, String)> {
    let client = match reqwest::Client::builder()
        // Metadata is link-local: never through an HTTP(S)_PROXY from the environment.
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(timeout)
        .timeout(timeout)
        .build()
    {
        Ok(client) => client,
        Err(error) => {
            tracing::debug!(%error, "zone detection: no HTTP client");
            return None;
        }
    };
    type Probe<'a> = Pin<Box<dyn Future<Output = (Cloud, Result<String, ProbeError>)> + Send + 'a>>;
    let mut probes: FuturesUnordered<Probe<'_>> = FuturesUnordered::new();
    if let Some(base) = &endpoints.aws {
        probes.push(Box::pin(async { (Cloud::Aws, aws(&client, base).await) }));
    }
    if let Some(base) = &endpoints.gcp {
        probes.push(Box::pin(async { (Cloud::Gcp, gcp(&client, base).await) }));
    }
    if let Some(base) = &endpoints.azure {
        probes.push(Box::pin(async {
            (Cloud::Azure, azure(&client, base).await)
        }));
    }
    let first_valid = async {
        while let Some((cloud, answer)) = probes.next().await {
            match answer {
                Ok(zone) => return Some((cloud, zone)),
                Err(error) => {
                    tracing::debug!(cloud = cloud.as_str(), %error, "zone detection: no answer");
                }
            }
        }
        None
    };
    match tokio::time::timeout(timeout, first_valid).await {
        Ok(found) => found,
        Err(_) => {
            tracing::debug!(?timeout, "zone detection: no valid answer in time");
            None
        }
    }
}

/// Why one metadata service gave no zone.
#[derive(Debug, thiserror::Error)]
enum ProbeError {
    #[error("request failed: {0}")]
    Http(#[from] reqwest::Error),
    #[error("HTTP status {0}")]
    Status(reqwest::StatusCode),
    #[error("answer longer than {MAX_ANSWER_BYTES} bytes")]
    TooLong,
    #[error("not the GCP metadata server (no `Metadata-Flavor: Google`)")]
    NotGcp,
    #[error("no zone in the answer")]
    Empty,
    #[error("not a zone name: `{0}`")]
    Invalid(String),
}

/// AWS IMDSv2: a session token, then the availability zone.
async fn aws(client: &reqwest::Client, base: &str) -> Result<String, ProbeError> {
    let token = answer(
        client
            .put(format!("{base}/latest/api/token"))
            .header(
                "X-aws-ec2-metadata-token-ttl-seconds",
                AWS_TOKEN_TTL_SECONDS,
            )
            .send()
            .await?,
    )
    .await?;
    let token = token.trim();
    // A token is printable ASCII; anything else would not even make a header.
    if token.is_empty() || !token.chars().all(|c| c.is_ascii_graphic()) {
        return Err(ProbeError::Invalid(token.to_owned()));
    }
    let zone = answer(
        client
            .get(format!(
                "{base}/latest/meta-data/placement/availability-zone"
            ))
            .header("X-aws-ec2-metadata-token", token)
            .send()
            .await?,
    )
    .await?;
    zone_name(&zone)
}

/// GCP: `projects/<number>/zones/<zone>`.
async fn gcp(client: &reqwest::Client, base: &str) -> Result<String, ProbeError> {
    let response = client
        .get(format!("{base}/computeMetadata/v1/instance/zone"))
        .header("Metadata-Flavor", "Google")
        .send()
        .await?;
    if response
        .headers()
        .get("Metadata-Flavor")
        .is_none_or(|v| v.as_bytes() != b"Google")
    {
        return Err(ProbeError::NotGcp);
    }
    let path = answer(response).await?;
    let zone = match path.trim().rsplit_once("/zones/") {
        Some((_, zone)) => zone,
        None => return Err(ProbeError::Invalid(path)),
    };
    zone_name(zone)
}

/// Azure IMDS: `<location>-<zone>`; an empty zone means the VM is in no zone.
async fn azure(client: &reqwest::Client, base: &str) -> Result<String, ProbeError> {
    let text = |field: &str| {
        client
            .get(format!(
                "{base}/metadata/instance/compute/{field}?api-version=2021-02-01&format=text"
            ))
            .header("Metadata", "true")
            .send()
    };
    let (location, zone) = tokio::join!(text("location"), text("zone"));
    let (location, zone) = (answer(location?).await?, answer(zone?).await?);
    let (location, zone) = (zone_name(&location)?, zone.trim());
    if zone.is_empty() {
        return Err(ProbeError::Empty);
    }
    zone_name(&format!("{location}-{zone}"))
}

/// The body of a successful answer, up to [`MAX_ANSWER_BYTES`].
async fn answer(mut response: reqwest::Response) -> Result<String, ProbeError> {
    if !response.status().is_success() {
        return Err(ProbeError::Status(response.status()));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        if body.len() + chunk.len() > MAX_ANSWER_BYTES {
            return Err(ProbeError::TooLong);
        }
        body.extend_from_slice(&chunk);
    }
    String::from_utf8(body)
        .map_err(|e| ProbeError::Invalid(String::from_utf8_lossy(e.as_bytes()).into_owned()))
}

/// A plain zone name, surrounding whitespace removed.
fn zone_name(raw: &str) -> Result<String, ProbeError> {
    let zone = raw.trim();
    if zone.is_empty() {
        return Err(ProbeError::Empty);
    }
    if !infinistream_types::is_plain_name(zone) {
        return Err(ProbeError::Invalid(zone.chars().take(64).collect()));
    }
    Ok(zone.to_owned())
}
