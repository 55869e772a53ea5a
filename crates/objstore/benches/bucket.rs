//! PUT and ranged-GET latency for 4 MiB objects through the objstore layer (retry,
//! metrics), against the local file backend and a real S3 server (SeaweedFS on
//! loopback, started here). These are the floors later latency targets compare with.

use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use infinistream_objstore::{Bucket, BucketOptions};
use infinistream_testkit::s3::S3Server;

const OBJECT: usize = 4 * 1024 * 1024;
const RANGE: u64 = 64 * 1024;

fn payload() -> Bytes {
    (0..OBJECT)
        .map(|i| (i as u8).wrapping_mul(131))
        .collect::<Vec<u8>>()
        .into()
}

fn bench(c: &mut Criterion) {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => panic!("tokio runtime: {error}"),
    };
    let server = match S3Server::start() {
        Ok(server) => server,
        Err(error) => panic!("S3 server: {error}"),
    };
    let dir = match tempfile::tempdir() {
        Ok(dir) => dir,
        Err(error) => panic!("temp dir: {error}"),
    };
    let backends = [
        ("file", format!("file://{}", dir.path().display())),
        ("s3", server.url("bench")),
    ];
    let data = payload();

    let mut group = c.benchmark_group("objstore_4mib");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    for (name, url) in &backends {
        let bucket = match runtime.block_on(Bucket::open(url, BucketOptions::for_group("bench"))) {
            Ok(bucket) => bucket,
            Err(error) => panic!("open {name}: {error}"),
        };

        group.throughput(Throughput::Bytes(OBJECT as u64));
        group.bench_function(BenchmarkId::new("put", name), |b| {
            b.to_async(&runtime).iter_custom(|iters| {
                let bucket = bucket.clone();
                let data = data.clone();
                async move {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let started = Instant::now();
                        let key = match bucket.put_batch(data.clone()).await {
                            Ok(key) => key,
                            Err(error) => panic!("put: {error}"),
                        };
                        total += started.elapsed();
                        // Untimed: keep the disk from filling up.
                        if let Err(error) = bucket.delete(key.path()).await {
                            panic!("delete: {error}");
                        }
                    }
                    total
                }
            });
        });

        let key = match runtime.block_on(bucket.put_batch(data.clone())) {
            Ok(key) => key,
            Err(error) => panic!("put: {error}"),
        };
        group.throughput(Throughput::Bytes(RANGE));
        group.bench_function(BenchmarkId::new("get_range_64k", name), |b| {
            b.to_async(&runtime).iter(|| async {
                match bucket
                    .get_range(key.path(), 1_000_000..1_000_000 + RANGE)
                    .await
                {
                    Ok(bytes) => bytes,
                    Err(error) => panic!("get_range: {error}"),
                }
            });
        });
        group.throughput(Throughput::Bytes(OBJECT as u64));
        group.bench_function(BenchmarkId::new("get_range_4m", name), |b| {
            b.to_async(&runtime).iter(|| async {
                match bucket.get_range(key.path(), 0..OBJECT as u64).await {
                    Ok(bytes) => bytes,
                    Err(error) => panic!("get_range: {error}"),
                }
            });
        });
        group.throughput(Throughput::Bytes(RANGE));
        group.bench_function(BenchmarkId::new("get_tail_64k", name), |b| {
            b.to_async(&runtime).iter(|| async {
                match bucket.get_tail(key.path(), RANGE).await {
                    Ok(bytes) => bytes,
                    Err(error) => panic!("get_tail: {error}"),
                }
            });
        });
    }
    group.finish();
    drop(server);
}

criterion_group!(benches, bench);
criterion_main!(benches);
