//! The retry layer against scripted faults: transient faults heal within the attempt
//! budget, permanent errors surface after one attempt, timeouts fire, and an
//! ambiguous create finds its own write. Runs on `memory://` with tokio's paused
//! clock, so backoffs and delays take no wall time.

use std::time::Duration;

use anyhow::{Result, ensure};
use bytes::Bytes;
use infinistream_objstore::object_store::{ObjectStoreExt, PutMode, PutOptions};
use infinistream_objstore::{
    Bucket, BucketOptions, FaultError, FaultHandle, FaultRule, Op, RetryConfig, is_timeout,
};
use prometheus_client::registry::Registry;

fn retry() -> RetryConfig {
    RetryConfig {
        max_attempts: 4,
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(100),
        multiplier: 2.0,
        request_timeout: Duration::from_secs(1),
    }
}

async fn faulty_bucket() -> Result<(Bucket, FaultHandle)> {
    let faults = FaultHandle::new();
    let options = BucketOptions {
        retry: retry(),
        faults: Some(faults.clone()),
        part_size: 1024,
        ..BucketOptions::for_group("g")
    };
    Ok((Bucket::open("memory://", options).await?, faults))
}

#[tokio::test(start_paused = true)]
async fn transient_put_failures_are_retried() -> Result<()> {
    let (bucket, faults) = faulty_bucket().await?;
    faults.fail_next(Op::Put, 3);
    let key = bucket.put_batch(Bytes::from_static(b"data")).await?;
    let m = bucket.metrics();
    ensure!(m.requests(Op::Put) == 4, "{}", m.requests(Op::Put));
    ensure!(m.errors(Op::Put) == 3);
    ensure!(m.retries(Op::Put) == 3);
    ensure!(m.objects_written() == 1);
    ensure!(faults.injected() == 3);
    ensure!(faults.active_rules() == 0, "a `times` rule retires");
    ensure!(bucket.get(key.path()).await?.as_ref() == b"data");
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn retries_are_bounded() -> Result<()> {
    let (bucket, faults) = faulty_bucket().await?;
    faults.fail_next(Op::Put, 100);
    let error = bucket
        .put_batch(Bytes::from_static(b"data"))
        .await
        .expect_err("attempts exhausted");
    ensure!(bucket.metrics().requests(Op::Put) == 4, "max_attempts = 4");
    ensure!(
        error
            .store_error()
            .is_some_and(infinistream_objstore::faults::is_injected),
        "{error:?}"
    );
    ensure!(bucket.list_batches().await?.is_empty());
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn permanent_errors_surface_after_one_attempt() -> Result<()> {
    let (bucket, faults) = faulty_bucket().await?;
    let key = bucket.put_batch(Bytes::from_static(b"data")).await?;

    let rule = faults.add(FaultRule::fail(Op::GetRange).with_error(FaultError::PermissionDenied));
    let error = bucket
        .get_range(key.path(), 0..2)
        .await
        .expect_err("denied");
    ensure!(
        matches!(
            error.store_error(),
            Some(infinistream_objstore::object_store::Error::PermissionDenied { .. })
        ),
        "{error:?}"
    );
    ensure!(bucket.metrics().requests(Op::GetRange) == 1);
    ensure!(bucket.metrics().retries(Op::GetRange) == 0);
    faults.remove(rule);

    // A real (not injected) NotFound is permanent too.
    let missing = key.path().clone().join("missing");
    ensure!(
        bucket
            .head(&missing)
            .await
            .expect_err("missing")
            .is_not_found()
    );
    ensure!(bucket.metrics().requests(Op::Head) == 1);
    ensure!(bucket.metrics().retries(Op::Head) == 0);
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn timeouts_fire_and_count_as_transient() -> Result<()> {
    let (bucket, faults) = faulty_bucket().await?;
    let key = bucket.put_batch(Bytes::from_static(b"0123456789")).await?;

    let stall = faults.delay(Op::GetRange, Duration::from_secs(60));
    let error = bucket
        .get_range(key.path(), 2..4)
        .await
        .expect_err("stalled");
    ensure!(
        error.store_error().is_some_and(is_timeout),
        "timeout expected: {error:?}"
    );
    ensure!(error.to_string().contains("get_range"), "{error}");
    ensure!(
        bucket.metrics().timeouts(Op::GetRange) == 4,
        "every attempt timed out"
    );
    faults.remove(stall);

    // One stalled attempt, then a healthy one: the caller sees success.
    faults.add(FaultRule::delay(Op::GetRange, Duration::from_secs(60)).times(1));
    ensure!(bucket.get_range(key.path(), 2..4).await?.as_ref() == b"23");
    ensure!(bucket.metrics().timeouts(Op::GetRange) == 5);
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn short_delays_do_not_time_out() -> Result<()> {
    let (bucket, faults) = faulty_bucket().await?;
    faults.delay(Op::Put, Duration::from_millis(500));
    bucket.put_batch(Bytes::from_static(b"slow")).await?;
    ensure!(bucket.metrics().timeouts(Op::Put) == 0);
    ensure!(bucket.metrics().requests(Op::Put) == 1);
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn ambiguous_create_finds_its_own_write() -> Result<()> {
    let (bucket, faults) = faulty_bucket().await?;
    // The first PUT lands, then reports failure; the retry gets AlreadyExists.
    faults.partial_write_next(1);
    let key = bucket.put_batch(Bytes::from_static(b"mine")).await?;
    ensure!(bucket.metrics().requests(Op::Put) == 2);
    ensure!(bucket.metrics().retries(Op::Put) == 1);
    ensure!(bucket.get(key.path()).await?.as_ref() == b"mine");
    ensure!(bucket.list_batches().await?.len() == 1);
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn ambiguous_create_does_not_claim_a_foreign_object() -> Result<()> {
    let (bucket, faults) = faulty_bucket().await?;
    let path = infinistream_objstore::keys::group_prefix("g")?.join("contended");
    bucket.store().put(&path, "theirs".into()).await?;
    // A transient failure first makes the retry ambiguous; the object holds other
    // bytes, so AlreadyExists must surface.
    faults.fail_next(Op::Put, 1);
    let create = PutOptions {
        mode: PutMode::Create,
        ..PutOptions::default()
    };
    let error = bucket
        .store()
        .put_opts(&path, "mine".into(), create)
        .await
        .expect_err("someone else's object");
    ensure!(
        matches!(
            error,
            infinistream_objstore::object_store::Error::AlreadyExists { .. }
        ),
        "{error:?}"
    );
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn faults_for_a_duration_then_recovery() -> Result<()> {
    let (bucket, faults) = faulty_bucket().await?;
    faults.fail_for(Op::Put, Duration::from_secs(30));
    bucket
        .put_batch(Bytes::from_static(b"x"))
        .await
        .expect_err("outage outlasts the retries");
    tokio::time::advance(Duration::from_secs(31)).await;
    bucket.put_batch(Bytes::from_static(b"x")).await?;
    ensure!(faults.active_rules() == 0);
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn prefix_rules_only_hit_matching_keys() -> Result<()> {
    let (bucket, faults) = faulty_bucket().await?;
    faults.add(
        FaultRule::fail(Op::Put)
            .prefix("g/segments/")
            .with_error(FaultError::PermissionDenied),
    );
    bucket.put_batch(Bytes::from_static(b"ok")).await?;
    let error = bucket
        .put_segment("S", Bytes::from_static(b"no"))
        .await
        .expect_err("segments denied");
    ensure!(error.to_string().contains("g/segments/S/"), "{error}");
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn list_delete_and_multipart_creation_are_retried() -> Result<()> {
    let (bucket, faults) = faulty_bucket().await?;
    let key = bucket.put_batch(Bytes::from_static(b"x")).await?;

    faults.fail_next(Op::List, 2);
    ensure!(bucket.list_batches().await?.len() == 1);
    ensure!(bucket.metrics().retries(Op::List) == 2);

    faults.fail_next(Op::Delete, 1);
    bucket.delete(key.path()).await?;
    ensure!(bucket.metrics().retries(Op::Delete) == 1);
    ensure!(
        bucket
            .head(key.path())
            .await
            .expect_err("gone")
            .is_not_found()
    );

    faults.fail_next(Op::Multipart, 1);
    let chunks =
        futures::stream::iter((0..5).map(|i| Ok::<_, std::io::Error>(Bytes::from(vec![i; 1000]))));
    let (segment, len) = bucket.put_segment_multipart("S", chunks).await?;
    ensure!(len == 5000);
    ensure!(bucket.metrics().retries(Op::Multipart) == 1);
    ensure!(bucket.get(segment.path()).await?.len() == 5000);
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn metrics_are_exported_to_the_registry() -> Result<()> {
    let mut registry = Registry::default();
    let options = BucketOptions::for_group("g");
    options.metrics.register(&mut registry);
    let bucket = Bucket::open("memory://", options).await?;
    bucket.put_batch(Bytes::from_static(b"abc")).await?;
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry)?;
    for needle in [
        "objstore_requests_total{op=\"put\"} 1",
        "objstore_written_bytes_total 3",
        "objstore_objects_written_total 1",
        "objstore_request_duration_seconds_count{op=\"put\"} 1",
    ] {
        ensure!(text.contains(needle), "missing `{needle}` in:\n{text}");
    }
    Ok(())
}
