//! Every bucket operation against the three backends with the same test bodies:
//! `memory://`, `file://` (a temp dir) and a real S3 server (SeaweedFS from the
//! testkit). Memory and file run one test per case; S3 runs all cases in one test,
//! because nextest runs each test in its own process and a server start costs about a
//! second.

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use infinistream_objstore::keys::{self, ObjectKey};
use infinistream_objstore::object_store::ObjectStoreExt;
use infinistream_objstore::{Bucket, BucketOptions, Op, OpenError};
use infinistream_testkit::s3::S3Server;

const PART: usize = 5 * 1024 * 1024;

fn options() -> BucketOptions {
    BucketOptions {
        part_size: PART,
        ..BucketOptions::for_group("grp.1")
    }
}

fn payload(len: usize, seed: u8) -> Bytes {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect::<Vec<u8>>()
        .into()
}

async fn put_get_head_delete(bucket: &Bucket) -> Result<()> {
    let data = payload(100_000, 1);
    let key = bucket.put_batch(data.clone()).await?;
    ensure!(key.group() == "grp.1");
    ensure!(bucket.get(key.path()).await? == data, "get");
    ensure!(
        bucket.head(key.path()).await?.size == data.len() as u64,
        "head"
    );
    ensure!(
        bucket.get_range(key.path(), 10..1010).await? == data.slice(10..1010),
        "get_range"
    );
    ensure!(
        bucket.get_tail(key.path(), 64).await? == data.slice(data.len() - 64..),
        "get_tail"
    );
    ensure!(
        bucket.get_tail(key.path(), 1 << 30).await? == data,
        "get_tail longer than the object"
    );
    bucket.delete(key.path()).await?;
    let missing = bucket.head(key.path()).await.expect_err("deleted object");
    ensure!(missing.is_not_found(), "head after delete: {missing}");
    let missing = bucket.get(key.path()).await.expect_err("deleted object");
    ensure!(missing.is_not_found(), "get after delete: {missing}");
    ensure!(
        missing.to_string().contains(key.path().as_ref()),
        "error names the key: {missing}"
    );
    Ok(())
}

async fn empty_object(bucket: &Bucket) -> Result<()> {
    let key = bucket.put_batch(Bytes::new()).await?;
    ensure!(bucket.get(key.path()).await?.is_empty());
    ensure!(bucket.head(key.path()).await?.size == 0);
    Ok(())
}

async fn conditional_create_conflicts(bucket: &Bucket) -> Result<()> {
    let key = ObjectKey::new_batch(bucket.group())?;
    bucket.put_new(&key, Bytes::from_static(b"first")).await?;
    let before = bucket.metrics().requests(Op::Put);
    let conflict = bucket
        .put_new(&key, Bytes::from_static(b"second"))
        .await
        .expect_err("second create must conflict");
    ensure!(conflict.is_already_exists(), "{conflict:?}");
    ensure!(
        bucket.metrics().requests(Op::Put) == before + 1,
        "a conflict is permanent: one attempt"
    );
    ensure!(bucket.get(key.path()).await? == Bytes::from_static(b"first"));
    Ok(())
}

/// `PutMode::Update` (compare-and-swap on the ETag) passes through the decorators;
/// the local file store does not implement it and says so.
async fn conditional_update_passthrough(bucket: &Bucket) -> Result<()> {
    use infinistream_objstore::object_store::{Error, PutMode, PutOptions, UpdateVersion};
    let path = keys::group_prefix(bucket.group())?.join("manifest");
    let first = bucket.store().put(&path, "v1".into()).await?;
    let update = |version: UpdateVersion| PutOptions {
        mode: PutMode::Update(version),
        ..PutOptions::default()
    };
    let current = UpdateVersion {
        e_tag: first.e_tag.clone(),
        version: first.version.clone(),
    };
    match bucket
        .store()
        .put_opts(&path, "v2".into(), update(current.clone()))
        .await
    {
        Ok(_) => {}
        Err(Error::NotImplemented { .. } | Error::NotSupported { .. }) => return Ok(()),
        Err(error) => return Err(error.into()),
    }
    let stale = bucket
        .store()
        .put_opts(&path, "v3".into(), update(current))
        .await
        .expect_err("stale etag");
    ensure!(matches!(stale, Error::Precondition { .. }), "{stale:?}");
    ensure!(bucket.get(&path).await?.as_ref() == b"v2");
    Ok(())
}

async fn listing_parses_keys_in_order(bucket: &Bucket) -> Result<()> {
    let mut written = Vec::new();
    for i in 0..5u8 {
        written.push(bucket.put_batch(payload(10, i)).await?);
    }
    let segment = bucket
        .put_segment("ORDERS.eu/x", Bytes::from_static(b"seg"))
        .await?;
    let batches = bucket.list_batches().await?;
    let listed: Vec<ObjectKey> = batches.iter().map(|(k, _)| k.clone()).collect();
    ensure!(listed == written, "batches in creation order: {listed:?}");
    ensure!(batches.iter().all(|(_, meta)| meta.size == 10));
    let segments = bucket.list_segments(Some("ORDERS.eu/x")).await?;
    ensure!(
        segments.len() == 1 && segments[0].0 == segment,
        "{segments:?}"
    );
    ensure!(segments[0].0.stream() == Some("ORDERS.eu/x"));
    ensure!(bucket.list_segments(Some("other")).await?.is_empty());
    let all: Vec<_> = bucket
        .list(&keys::group_prefix(bucket.group())?)
        .try_collect()
        .await?;
    ensure!(all.len() == 6, "{}", all.len());
    Ok(())
}

async fn multipart_segment(bucket: &Bucket) -> Result<()> {
    let data = payload(2 * PART + 123_457, 7);
    let chunks: Vec<Result<Bytes, std::io::Error>> = data
        .chunks(1024 * 1024)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    let written_before = bucket.metrics().objects_written();
    let (key, len) = bucket
        .put_segment_multipart("KV_cfg", futures::stream::iter(chunks))
        .await?;
    ensure!(len == data.len() as u64);
    ensure!(key.stream() == Some("KV_cfg"));
    ensure!(bucket.get(key.path()).await? == data, "multipart content");
    ensure!(
        bucket
            .get_range(key.path(), PART as u64 - 5..PART as u64 + 5)
            .await?
            == data.slice(PART - 5..PART + 5),
        "range across a part boundary"
    );
    ensure!(bucket.metrics().objects_written() == written_before + 1);
    Ok(())
}

async fn failed_source_aborts_upload(bucket: &Bucket) -> Result<()> {
    let chunks: Vec<Result<Bytes, std::io::Error>> = vec![
        Ok(payload(1024, 1)),
        Err(std::io::Error::other("source broke")),
    ];
    let error = bucket
        .put_segment_multipart("broken", futures::stream::iter(chunks))
        .await
        .expect_err("source error");
    ensure!(
        error.to_string().contains("segment source failed"),
        "{error}"
    );
    ensure!(bucket.list_segments(Some("broken")).await?.is_empty());
    Ok(())
}

async fn metrics_count_requests_and_bytes(bucket: &Bucket) -> Result<()> {
    let metrics = bucket.metrics().clone();
    let (puts, written, read) = (
        metrics.objects_written(),
        metrics.bytes_written(),
        metrics.bytes_read(),
    );
    let key = bucket.put_batch(payload(4096, 3)).await?;
    bucket.get_range(key.path(), 0..100).await?;
    ensure!(metrics.objects_written() == puts + 1);
    ensure!(metrics.bytes_written() == written + 4096);
    ensure!(
        metrics.bytes_read() == read + 100,
        "{}",
        metrics.bytes_read() - read
    );
    Ok(())
}

async fn decorated_store_is_usable_directly(bucket: &Bucket) -> Result<()> {
    let path = keys::group_prefix(bucket.group())?.join("raw");
    bucket.store().put(&path, "raw".into()).await?;
    let bytes = bucket.store().get(&path).await?.bytes().await?;
    ensure!(bytes.as_ref() == b"raw");
    let meta = bucket.store().head(&path).await?;
    ensure!(meta.size == 3);
    bucket.delete(&path).await?;
    Ok(())
}

macro_rules! cases {
    ($($case:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test]
                async fn $case() -> anyhow::Result<()> {
                    let bucket = super::Bucket::open("memory://", super::options()).await?;
                    super::$case(&bucket).await
                }
            )*
        }

        mod file {
            $(
                #[tokio::test]
                async fn $case() -> anyhow::Result<()> {
                    let dir = tempfile::tempdir()?;
                    let url = format!("file://{}/bucket", dir.path().display());
                    let bucket = super::Bucket::open(&url, super::options()).await?;
                    super::$case(&bucket).await
                }
            )*
        }

        /// All cases against one real S3 server, each under its own key prefix.
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn s3_all_cases() -> anyhow::Result<()> {
            let server = S3Server::shared()?;
            $(
                let bucket = Bucket::open(&server.unique_url(), options()).await?;
                $case(&bucket).await.context(concat!("s3: ", stringify!($case)))?;
            )*
            Ok(())
        }
    };
}

cases!(
    put_get_head_delete,
    empty_object,
    conditional_create_conflicts,
    conditional_update_passthrough,
    listing_parses_keys_in_order,
    multipart_segment,
    failed_source_aborts_upload,
    metrics_count_requests_and_bytes,
    decorated_store_is_usable_directly,
);

#[tokio::test]
async fn file_url_creates_the_directory() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let root = dir.path().join("a/b/c");
    let url = format!("file://{}", root.display());
    let bucket = Bucket::open(&url, options()).await?;
    ensure!(root.is_dir());
    let key = bucket.put_batch(Bytes::from_static(b"x")).await?;
    ensure!(root.join(key.path().as_ref()).is_file());
    Ok(())
}

#[tokio::test]
async fn relative_file_url_resolves_against_the_working_directory() -> Result<()> {
    let dir = tempfile::tempdir_in(".")?;
    let name = dir
        .path()
        .file_name()
        .and_then(|n| n.to_str())
        .context("temp dir name")?;
    let bucket = Bucket::open(&format!("file://{name}/bucket"), options()).await?;
    let key = bucket.put_batch(Bytes::from_static(b"x")).await?;
    ensure!(
        dir.path()
            .join("bucket")
            .join(key.path().as_ref())
            .is_file()
    );
    Ok(())
}

#[tokio::test]
async fn bad_urls_fail_with_the_url() {
    for url in [
        "nope",
        "ftp://host/x",
        "file://",
        "memory://x",
        "s3://b?bogus=1",
    ] {
        let error = Bucket::open(url, options()).await.expect_err(url);
        let text = error.to_string();
        assert!(
            text.contains(url.split('?').next().unwrap_or(url)),
            "{text}"
        );
    }
}

#[tokio::test]
async fn unreachable_endpoint_is_a_startup_error() -> Result<()> {
    let port = infinistream_testkit::tools::free_port()?;
    let url = format!(
        "s3://nowhere?endpoint=http://127.0.0.1:{port}&region=us-east-1\
         &access_key_id=a&secret_access_key=topsecret"
    );
    let options = BucketOptions {
        probe_timeout: Duration::from_secs(10),
        ..options()
    };
    let error = Bucket::open(&url, options)
        .await
        .expect_err("nothing listens");
    assert!(
        matches!(
            error,
            OpenError::Unreachable { .. } | OpenError::ProbeTimeout { .. }
        ),
        "{error:?}"
    );
    let text = error.to_string();
    assert!(text.contains(&format!("127.0.0.1:{port}")), "{text}");
    assert!(!text.contains("topsecret"), "secret leaked: {text}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_wrong_bucket_or_credentials_fail_at_open() -> Result<()> {
    let server = S3Server::shared()?;
    let missing = server
        .url("")
        .replacen(server.bucket(), "no-such-bucket", 1);
    let error = Bucket::open(&missing, options())
        .await
        .expect_err("missing bucket");
    assert!(matches!(error, OpenError::Unreachable { .. }), "{error:?}");
    assert!(error.to_string().contains("no-such-bucket"), "{error}");

    let bad_secret = server
        .url("")
        .replacen(server.secret_access_key(), "wrong-secret", 1);
    let error = Bucket::open(&bad_secret, options())
        .await
        .expect_err("wrong secret");
    assert!(matches!(error, OpenError::Unreachable { .. }), "{error:?}");
    assert!(!error.to_string().contains("wrong-secret"), "{error}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_concurrent_creates_have_one_winner() -> Result<()> {
    let server = S3Server::shared()?;
    let bucket = Bucket::open(&server.unique_url(), options()).await?;
    let key = ObjectKey::new_batch(bucket.group())?;
    let attempts = futures::stream::iter(0..4u8)
        .map(|i| {
            let bucket = bucket.clone();
            let key = key.clone();
            async move { bucket.put_new(&key, payload(1000, i)).await }
        })
        .buffer_unordered(4)
        .collect::<Vec<_>>()
        .await;
    let winners = attempts.iter().filter(|r| r.is_ok()).count();
    ensure!(winners == 1, "{attempts:?}");
    ensure!(
        attempts
            .iter()
            .filter_map(|r| r.as_ref().err())
            .all(|e| e.is_already_exists() || e.store_error().is_some()),
        "{attempts:?}"
    );
    Ok(())
}
