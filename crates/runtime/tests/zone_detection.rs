//! Zone detection against fake metadata services on 127.0.0.1: each cloud's answer,
//! a service that never answers, garbage, HTTP errors, nothing listening, and a
//! configured zone that sends no request at all.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use infinistream_runtime::zone::{
    Cloud, DETECT_TIMEOUT, MetadataEndpoints, ZoneOrigin, detect_zone, resolve_zone,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A request as the fake saw it.
#[derive(Debug)]
struct Request {
    method: String,
    path: String,
    /// Header lines, names lower-cased: `name: value`.
    headers: Vec<String>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        let prefix = format!("{}: ", name.to_ascii_lowercase());
        self.headers
            .iter()
            .find_map(|h| h.strip_prefix(prefix.as_str()))
    }
}

/// What the fake does with a request.
enum Reply {
    /// Status, extra header lines, body.
    Answer(u16, &'static [&'static str], String),
    /// Keep the connection open and never answer.
    Hang,
}

fn ok(body: &str) -> Reply {
    Reply::Answer(200, &[], body.to_owned())
}

fn status(code: u16) -> Reply {
    Reply::Answer(code, &[], String::new())
}

/// A fake metadata service on 127.0.0.1; `route` answers each request. Returns its
/// base URL and a count of the connections it accepted.
async fn fake(
    route: impl Fn(&Request) -> Reply + Send + Sync + 'static,
) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind fake");
    let addr = listener.local_addr().expect("fake addr");
    let route = Arc::new(route);
    let connections = Arc::new(AtomicUsize::new(0));
    let counted = connections.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            let route = route.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&head).into_owned();
                let mut lines = text.split("\r\n");
                let mut first = lines.next().unwrap_or_default().split(' ');
                let request = Request {
                    method: first.next().unwrap_or_default().to_owned(),
                    path: first.next().unwrap_or_default().to_owned(),
                    headers: lines
                        .take_while(|l| !l.is_empty())
                        .map(|l| match l.split_once(':') {
                            Some((n, v)) => format!("{}: {}", n.to_ascii_lowercase(), v.trim()),
                            None => l.to_owned(),
                        })
                        .collect(),
                };
                match route(&request) {
                    Reply::Hang => {
                        // Hold the connection until the client gives up.
                        let _ = stream.read(&mut buf).await;
                    }
                    Reply::Answer(code, headers, body) => {
                        let mut response = format!(
                            "HTTP/1.1 {code} X\r\nContent-Length: {}\r\nConnection: close\r\n",
                            body.len()
                        );
                        for h in headers {
                            response.push_str(h);
                            response.push_str("\r\n");
                        }
                        response.push_str("\r\n");
                        response.push_str(&body);
                        let _ = stream.write_all(response.as_bytes()).await;
                    }
                }
            });
        }
    });
    (format!("http://{addr}"), connections)
}

/// A real AWS IMDSv2: a token only for a PUT with a TTL, the zone only with it.
fn aws_imds(zone: &'static str) -> impl Fn(&Request) -> Reply + Send + Sync + 'static {
    move |r| match (r.method.as_str(), r.path.as_str()) {
        ("PUT", "/latest/api/token")
            if r.header("X-aws-ec2-metadata-token-ttl-seconds").is_some() =>
        {
            ok("AQAEAFake-Token==")
        }
        ("PUT", "/latest/api/token") => status(400),
        ("GET", "/latest/meta-data/placement/availability-zone") => {
            match r.header("X-aws-ec2-metadata-token") {
                Some("AQAEAFake-Token==") => ok(zone),
                _ => status(401),
            }
        }
        _ => status(404),
    }
}

/// The GCP metadata server: it needs and sends `Metadata-Flavor: Google`.
fn gcp_metadata(answer: &'static str) -> impl Fn(&Request) -> Reply + Send + Sync + 'static {
    move |r| match (r.path.as_str(), r.header("Metadata-Flavor")) {
        ("/computeMetadata/v1/instance/zone", Some("Google")) => {
            Reply::Answer(200, &["Metadata-Flavor: Google"], answer.to_owned())
        }
        ("/computeMetadata/v1/instance/zone", _) => status(403),
        _ => status(404),
    }
}

/// Azure IMDS: it needs `Metadata: true` and the API version.
fn azure_imds(
    location: &'static str,
    zone: &'static str,
) -> impl Fn(&Request) -> Reply + Send + Sync + 'static {
    move |r| {
        if r.header("Metadata") != Some("true") {
            return status(400);
        }
        match r.path.as_str() {
            "/metadata/instance/compute/location?api-version=2021-02-01&format=text" => {
                ok(location)
            }
            "/metadata/instance/compute/zone?api-version=2021-02-01&format=text" => ok(zone),
            _ => status(404),
        }
    }
}

fn only_aws(base: &str) -> MetadataEndpoints {
    MetadataEndpoints {
        aws: Some(base.to_owned()),
        ..Default::default()
    }
}

/// Every cloud asked at the same base URL, as on a real VM (169.254.169.254).
fn all_at(base: &str) -> MetadataEndpoints {
    MetadataEndpoints {
        aws: Some(base.to_owned()),
        gcp: Some(base.to_owned()),
        azure: Some(base.to_owned()),
    }
}

/// Detection with a liveness guard: a hang fails the test instead of stalling it.
async fn detect(endpoints: &MetadataEndpoints) -> Option<(Cloud, String)> {
    tokio::time::timeout(
        Duration::from_secs(30),
        detect_zone(endpoints, DETECT_TIMEOUT),
    )
    .await
    .expect("detection ends within its own deadline")
}

#[tokio::test]
async fn aws_imdsv2_token_then_availability_zone() {
    let (base, _) = fake(aws_imds("us-east-1a")).await;
    assert_eq!(
        detect(&only_aws(&base)).await,
        Some((Cloud::Aws, "us-east-1a".to_owned()))
    );
}

#[tokio::test]
async fn gcp_zone_is_the_last_segment_of_its_path() {
    let (base, _) = fake(gcp_metadata("projects/123456789/zones/europe-west1-b")).await;
    assert_eq!(
        detect(&all_at(&base)).await,
        Some((Cloud::Gcp, "europe-west1-b".to_owned()))
    );
}

#[tokio::test]
async fn gcp_answer_without_its_flavor_header_is_not_gcp() {
    let (base, _) = fake(|r: &Request| match r.path.as_str() {
        "/computeMetadata/v1/instance/zone" => ok("projects/1/zones/europe-west1-b"),
        _ => status(404),
    })
    .await;
    assert_eq!(detect(&all_at(&base)).await, None);
}

#[tokio::test]
async fn azure_zone_is_location_dash_zone() {
    let (base, _) = fake(azure_imds("westeurope", "2")).await;
    assert_eq!(
        detect(&all_at(&base)).await,
        Some((Cloud::Azure, "westeurope-2".to_owned()))
    );
}

#[tokio::test]
async fn azure_vm_without_a_zone_gives_no_answer() {
    let (base, _) = fake(azure_imds("westeurope", "")).await;
    assert_eq!(detect(&all_at(&base)).await, None);
}

#[tokio::test]
async fn aws_answer_wins_on_a_shared_address_where_the_others_are_404() {
    let (base, _) = fake(aws_imds("eu-central-1b")).await;
    assert_eq!(
        detect(&all_at(&base)).await,
        Some((Cloud::Aws, "eu-central-1b".to_owned()))
    );
}

#[tokio::test]
async fn a_service_that_never_answers_gives_default_within_the_deadline() {
    let (base, connections) = fake(|_: &Request| Reply::Hang).await;
    let (zone, origin) = tokio::time::timeout(
        Duration::from_secs(30),
        resolve_zone(None, &all_at(&base), Duration::from_millis(300)),
    )
    .await
    .expect("resolution ends within its own deadline");
    assert_eq!((zone.as_str(), origin), ("default", ZoneOrigin::Default));
    assert!(
        connections.load(Ordering::SeqCst) >= 1,
        "the fake was asked"
    );
}

#[tokio::test]
async fn garbage_answers_are_no_answer() {
    for garbage in [
        "<html><body>Service Unavailable</body></html>".to_owned(),
        "us east 1a".to_owned(),
        "   \n".to_owned(),
        "z".repeat(200),
        "a".repeat(4096),
    ] {
        let body = garbage.clone();
        let (base, _) = fake(move |r: &Request| match r.method.as_str() {
            "PUT" => ok("token"),
            _ => Reply::Answer(200, &["Metadata-Flavor: Google"], body.clone()),
        })
        .await;
        assert_eq!(detect(&all_at(&base)).await, None, "answer `{garbage:.40}`");
    }
}

#[tokio::test]
async fn http_errors_are_no_answer() {
    for code in [404, 500, 503] {
        let (base, _) = fake(move |_: &Request| {
            Reply::Answer(code, &["Metadata-Flavor: Google"], "us-east-1a".to_owned())
        })
        .await;
        assert_eq!(detect(&all_at(&base)).await, None, "HTTP {code}");
    }
}

#[tokio::test]
async fn nothing_listening_resolves_to_default() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    };
    let (zone, origin) = resolve_zone(
        None,
        &all_at(&format!("http://127.0.0.1:{port}")),
        DETECT_TIMEOUT,
    )
    .await;
    assert_eq!((zone.as_str(), origin), ("default", ZoneOrigin::Default));
}

#[tokio::test]
async fn a_configured_zone_wins_without_any_request() {
    let (base, connections) = fake(aws_imds("us-east-1a")).await;
    let (zone, origin) = resolve_zone(Some("rack-7"), &all_at(&base), DETECT_TIMEOUT).await;
    assert_eq!((zone.as_str(), origin), ("rack-7", ZoneOrigin::Configured));
    assert_eq!(connections.load(Ordering::SeqCst), 0, "no metadata request");
}

#[tokio::test]
async fn detected_zone_goes_through_resolution() {
    let (base, _) = fake(aws_imds("ap-south-1c")).await;
    let (zone, origin) = resolve_zone(None, &only_aws(&base), DETECT_TIMEOUT).await;
    assert_eq!(
        (zone.as_str(), origin),
        ("ap-south-1c", ZoneOrigin::Detected(Cloud::Aws))
    );
}
