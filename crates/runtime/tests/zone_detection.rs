//! Zone detection against fake metadata services on 127.0.0.1: each cloud's answer,
//! a service that never answers, garbage, HTTP errors, nothing listening, and a
//! configured zone that sends no request at all.

use std::time::Duration;

use infinistream_runtime::zone::{
    Cloud, DETECT_TIMEOUT, MetadataEndpoints, ZoneOrigin, detect_zone, resolve_zone,
};
use infinistream_testkit::metadata::{
    FakeMetadata, Reply, Request, aws_imds, azure_imds, gcp_metadata, ok, status,
};

async fn fake(route: impl Fn(&Request) -> Reply + Send + Sync + 'static) -> FakeMetadata {
    FakeMetadata::start(route)
        .await
        .expect("start fake metadata")
}

fn only_aws(fake: &FakeMetadata) -> MetadataEndpoints {
    MetadataEndpoints {
        aws: Some(fake.url().to_owned()),
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
    let aws = fake(aws_imds("us-east-1a")).await;
    assert_eq!(
        detect(&only_aws(&aws)).await,
        Some((Cloud::Aws, "us-east-1a".to_owned()))
    );
}

#[tokio::test]
async fn gcp_zone_is_the_last_segment_of_its_path() {
    let gcp = fake(gcp_metadata("projects/123456789/zones/europe-west1-b")).await;
    assert_eq!(
        detect(&all_at(gcp.url())).await,
        Some((Cloud::Gcp, "europe-west1-b".to_owned()))
    );
}

#[tokio::test]
async fn gcp_answer_without_its_flavor_header_is_not_gcp() {
    let impostor = fake(|r: &Request| match r.path.as_str() {
        "/computeMetadata/v1/instance/zone" => ok("projects/1/zones/europe-west1-b"),
        _ => status(404),
    })
    .await;
    assert_eq!(detect(&all_at(impostor.url())).await, None);
}

#[tokio::test]
async fn azure_zone_is_location_dash_zone() {
    let azure = fake(azure_imds("westeurope", "2")).await;
    assert_eq!(
        detect(&all_at(azure.url())).await,
        Some((Cloud::Azure, "westeurope-2".to_owned()))
    );
}

#[tokio::test]
async fn azure_vm_without_a_zone_gives_no_answer() {
    let azure = fake(azure_imds("westeurope", "")).await;
    assert_eq!(detect(&all_at(azure.url())).await, None);
}

#[tokio::test]
async fn aws_answer_wins_on_a_shared_address_where_the_others_are_404() {
    let aws = fake(aws_imds("eu-central-1b")).await;
    assert_eq!(
        detect(&all_at(aws.url())).await,
        Some((Cloud::Aws, "eu-central-1b".to_owned()))
    );
}

#[tokio::test]
async fn a_service_that_never_answers_gives_default_within_the_deadline() {
    let silent = fake(|_: &Request| Reply::Hang).await;
    let (zone, origin) = tokio::time::timeout(
        Duration::from_secs(30),
        resolve_zone(None, &all_at(silent.url()), Duration::from_millis(300)),
    )
    .await
    .expect("resolution ends within its own deadline");
    assert_eq!((zone.as_str(), origin), ("default", ZoneOrigin::Default));
    assert!(silent.connections() >= 1, "the fake was asked");
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
        let liar = fake(move |r: &Request| match r.method.as_str() {
            "PUT" => ok("token"),
            _ => Reply::Answer(200, vec!["Metadata-Flavor: Google".into()], body.clone()),
        })
        .await;
        assert_eq!(
            detect(&all_at(liar.url())).await,
            None,
            "answer `{garbage:.40}`"
        );
    }
}

#[tokio::test]
async fn http_errors_are_no_answer() {
    for code in [404, 500, 503] {
        let failing = fake(move |_: &Request| {
            Reply::Answer(
                code,
                vec!["Metadata-Flavor: Google".into()],
                "us-east-1a".to_owned(),
            )
        })
        .await;
        assert_eq!(detect(&all_at(failing.url())).await, None, "HTTP {code}");
    }
}

#[tokio::test]
async fn nothing_listening_resolves_to_default() {
    let port = infinistream_testkit::tools::free_port().expect("free port");
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
    let aws = fake(aws_imds("us-east-1a")).await;
    let (zone, origin) = resolve_zone(Some("rack-7"), &all_at(aws.url()), DETECT_TIMEOUT).await;
    assert_eq!((zone.as_str(), origin), ("rack-7", ZoneOrigin::Configured));
    assert_eq!(aws.connections(), 0, "no metadata request");
}

#[tokio::test]
async fn detected_zone_goes_through_resolution() {
    let aws = fake(aws_imds("ap-south-1c")).await;
    let (zone, origin) = resolve_zone(None, &only_aws(&aws), DETECT_TIMEOUT).await;
    assert_eq!(
        (zone.as_str(), origin),
        ("ap-south-1c", ZoneOrigin::Detected(Cloud::Aws))
    );
}
