//! Zone cache behaviour over an in-memory bucket and real peer listeners on loopback.

use std::time::Duration;

use infinistream_objstore::BucketOptions;
use infinistream_peer::PeerPort;

use super::*;

/// Stops a test's peer server when dropped.
struct Shutdown(#[allow(dead_code)] tokio::sync::oneshot::Sender<()>);

async fn bucket() -> Bucket {
    Bucket::open("memory://", BucketOptions::for_group("team"))
        .await
        .expect("memory bucket")
}

async fn object(bucket: &Bucket, len: usize) -> (String, Vec<u8>) {
    let body: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
    let key = bucket
        .put_batch(Bytes::from(body.clone()))
        .await
        .expect("put");
    (key.to_string(), body)
}

fn options(id: &str, key: &str) -> ZoneOptions {
    ZoneOptions {
        agent_id: id.to_owned(),
        zone: "z1".to_owned(),
        memory_bytes: 1 << 20,
        disk: None,
        peer: Some(infinistream_cp_client::tls::PeerDialer::new(
            infinistream_cp_client::ClientAuth::new("team", key).expect("valid group"),
            None,
        )),
        peer_timeout: Duration::from_secs(5),
        ring_refresh: Duration::from_secs(2),
    }
}

/// Serves `zone` on a loopback peer port with group key `s3cret`; returns its address.
async fn serve(zone: &ZoneCache) -> (String, Shutdown) {
    let mut port = PeerPort::bind("127.0.0.1:0", "team", "s3cret")
        .await
        .expect("bind");
    let addr = port.local_addr().to_string();
    port.register(peer::service(zone.clone()));
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(port.serve(async move {
        let _ = rx.await;
    }));
    (addr, Shutdown(tx))
}

fn ring_of(members: &[(&str, &str)]) -> Ring {
    Ring::new(members.iter().map(|(id, addr)| Member {
        agent_id: (*id).to_owned(),
        peer_address: (*addr).to_owned(),
    }))
}

#[tokio::test]
async fn misses_go_to_the_owner_once_and_the_bucket_once() {
    let bucket = bucket().await;
    let (obj, body) = object(&bucket, 100_000).await;
    let owner = ZoneCache::open(bucket.clone(), options("a", "s3cret")).expect("open");
    let asker = ZoneCache::open(bucket.clone(), options("b", "s3cret")).expect("open");
    let (addr, _stop) = serve(&owner).await;
    // Only `a` on the ring: `a` owns everything.
    owner.set_ring(ring_of(&[("a", &addr)]));
    asker.set_ring(ring_of(&[("a", &addr)]));

    // 16 concurrent misses of one range on the asker: one peer request, one GET.
    let key = RangeKey::bounded(&obj, 1000..51_000);
    let reads = (0..16).map(|_| asker.get(&key));
    for data in futures::future::join_all(reads).await {
        assert_eq!(&data.expect("read").bytes[..], &body[1000..51_000]);
    }
    assert_eq!(asker.metrics().peer_requests_made("ok"), 1);
    assert_eq!(asker.metrics().coalesced(PEER), 15);
    assert_eq!(owner.metrics().peer_requests_served(), 1);
    assert_eq!(owner.reader_metrics().bucket_gets(CHUNKS), 1);
    assert_eq!(asker.reader_metrics().bucket_gets(CHUNKS), 0);

    // Now in the asker's memory: no more peer requests.
    asker.get(&key).await.expect("again");
    assert_eq!(asker.metrics().hits(MEMORY), 1);
    assert_eq!(asker.metrics().peer_requests_made("ok"), 1);

    // A suffix read carries the object's length through the peer.
    let tail = asker
        .get(&RangeKey::suffix(&obj, 4096))
        .await
        .expect("tail");
    assert_eq!(tail.object_len, 100_000);
    assert_eq!(&tail.bytes[..], &body[100_000 - 4096..]);
    assert_eq!(owner.reader_metrics().bucket_gets(FOOTERS), 1);

    // The owner's own read of the range is a memory hit.
    owner.get(&key).await.expect("owner read");
    assert_eq!(owner.reader_metrics().bucket_gets(CHUNKS), 1);
}

#[tokio::test]
async fn a_down_or_refusing_owner_falls_back_to_the_bucket() {
    let bucket = bucket().await;
    let (obj, body) = object(&bucket, 10_000).await;

    // Nothing listens at the owner's address.
    let dead = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let dead_addr = dead.local_addr().expect("addr").to_string();
    drop(dead);
    let asker = ZoneCache::open(bucket.clone(), options("b", "s3cret")).expect("open");
    asker.set_ring(ring_of(&[("a", &dead_addr)]));
    let key = RangeKey::bounded(&obj, 0..10_000);
    let data = asker.get(&key).await.expect("read from the bucket");
    assert_eq!(&data.bytes[..], &body[..]);
    assert_eq!(asker.metrics().peer_requests_made("error"), 1);
    assert_eq!(asker.metrics().fallbacks(), 1);
    assert_eq!(asker.reader_metrics().bucket_gets(CHUNKS), 1);
    assert!(
        asker
            .inner
            .peers
            .is_down(&dead_addr, std::time::Instant::now())
    );
    // While backing off, the owner is not asked again.
    asker
        .get(&RangeKey::bounded(&obj, 0..10))
        .await
        .expect("second read");
    assert_eq!(asker.metrics().peer_requests_made("error"), 1);
    assert_eq!(asker.metrics().fallbacks(), 2);

    // An owner that refuses the group key: same fallback.
    let owner = ZoneCache::open(bucket.clone(), options("a", "s3cret")).expect("open");
    let (addr, _stop) = serve(&owner).await;
    let wrong = ZoneCache::open(bucket.clone(), options("c", "wrong")).expect("open");
    wrong.set_ring(ring_of(&[("a", &addr)]));
    let data = wrong.get(&key).await.expect("read from the bucket");
    assert_eq!(&data.bytes[..], &body[..]);
    assert_eq!(wrong.metrics().peer_requests_made("error"), 1);
    assert_eq!(owner.metrics().peer_requests_served(), 0);
}

#[tokio::test]
async fn owned_ranges_survive_on_disk_and_corruption_is_reread() {
    let bucket = bucket().await;
    let (obj, body) = object(&bucket, 50_000).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut opts = options("a", "s3cret");
    opts.disk = Some((dir.path().to_path_buf(), 1 << 20));
    let key = RangeKey::bounded(&obj, 100..20_100);
    {
        let zone = ZoneCache::open(bucket.clone(), opts.clone()).expect("open");
        zone.get(&key).await.expect("read");
        assert_eq!(zone.reader_metrics().bucket_gets(CHUNKS), 1);
        // The disk write is in the background: wait for the file.
        let disk = zone.inner.disk.clone().expect("disk tier");
        while !disk.path_of(&key.name()).exists() {
            tokio::task::yield_now().await;
        }
        while disk.bytes() == 0 {
            tokio::task::yield_now().await;
        }
    }
    // A restarted agent (empty memory) reads the range from disk, not the bucket.
    let zone = ZoneCache::open(bucket.clone(), opts.clone()).expect("reopen");
    let data = zone.get(&key).await.expect("read");
    assert_eq!(&data.bytes[..], &body[100..20_100]);
    assert_eq!(zone.metrics().hits(DISK), 1);
    assert_eq!(zone.reader_metrics().bucket_gets(CHUNKS), 0);

    // Damage the file: the next cold agent detects it, drops it and reads the bucket.
    let path = zone.inner.disk.as_ref().expect("disk").path_of(&key.name());
    let mut bytes = std::fs::read(&path).expect("read file");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&path, &bytes).expect("damage");
    let zone = ZoneCache::open(bucket.clone(), opts).expect("reopen");
    let data = zone.get(&key).await.expect("read");
    assert_eq!(
        &data.bytes[..],
        &body[100..20_100],
        "never the damaged bytes"
    );
    assert_eq!(zone.metrics().disk_corrupt(), 1);
    assert_eq!(zone.reader_metrics().bucket_gets(CHUNKS), 1);
}

/// A 64 KiB tmpfs mounted on a temporary directory (tests run as root, as the
/// project's machines do), unmounted on drop.
struct TinyDisk {
    dir: tempfile::TempDir,
}

impl TinyDisk {
    fn mount() -> TinyDisk {
        let dir = tempfile::tempdir().expect("tempdir");
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=65536", "tmpfs"])
            .arg(dir.path())
            .status()
            .expect("run mount");
        assert!(
            status.success(),
            "mounting a 64 KiB tmpfs failed ({status}): this test needs root"
        );
        TinyDisk { dir }
    }
}

impl Drop for TinyDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(self.dir.path())
            .status();
    }
}

#[tokio::test]
async fn a_full_disk_under_the_disk_tier_reads_from_the_bucket_and_counts_the_failures() {
    let bucket = bucket().await;
    let disk = TinyDisk::mount();
    let mut opts = options("a", "s3cret");
    // The bound is far above what the filesystem holds: the disk fills first.
    opts.disk = Some((disk.dir.path().to_path_buf(), 64 << 20));
    opts.memory_bytes = 0;
    let zone = ZoneCache::open(bucket.clone(), opts).expect("open");
    let mut ranges = Vec::new();
    for _ in 0..8 {
        let (obj, body) = object(&bucket, 30_000).await;
        ranges.push((RangeKey::bounded(&obj, 0..30_000), body));
    }
    for _ in 0..2 {
        for (key, body) in &ranges {
            let data = zone.get(key).await.expect("a read with the disk full");
            assert_eq!(&data.bytes[..], &body[..]);
        }
        // Let the background writes finish.
        while zone.inner.disk_writes.available_permits() < DISK_WRITES {
            tokio::task::yield_now().await;
        }
    }
    assert!(
        zone.metrics().disk_write_failures() > 0,
        "240 KB of ranges fitted a 64 KiB disk"
    );
    let leftovers: Vec<_> = std::fs::read_dir(disk.dir.path())
        .expect("list")
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "failed writes left {leftovers:?}");
}

#[tokio::test]
async fn peer_requests_are_validated() {
    use v1::zone_cache_server::ZoneCache as _;
    let bucket = bucket().await;
    let zone = ZoneCache::open(bucket, options("a", "s3cret")).expect("open");
    let svc = peer::PeerService::new(zone);
    let bad = [
        v1::GetRangeRequest {
            object_key: String::new(),
            range: Some(v1::get_range_request::Range::Suffix(10)),
        },
        v1::GetRangeRequest {
            object_key: "team/batches/x".into(),
            range: None,
        },
        v1::GetRangeRequest {
            object_key: "team/batches/x".into(),
            range: Some(v1::get_range_request::Range::Bounded(v1::ByteRange {
                start: 10,
                end: 10,
            })),
        },
        v1::GetRangeRequest {
            object_key: "team/batches/x".into(),
            range: Some(v1::get_range_request::Range::Suffix(0)),
        },
    ];
    for req in bad {
        let status = svc
            .get_range(tonic::Request::new(req.clone()))
            .await
            .expect_err("refused");
        assert_eq!(status.code(), tonic::Code::InvalidArgument, "{req:?}");
    }
    let status = svc
        .get_range(tonic::Request::new(v1::GetRangeRequest {
            object_key: "team/batches/missing".into(),
            range: Some(v1::get_range_request::Range::Bounded(v1::ByteRange {
                start: 0,
                end: 10,
            })),
        }))
        .await
        .expect_err("missing object");
    assert_eq!(status.code(), tonic::Code::NotFound);
}

#[test]
fn a_restarted_agents_previous_registration_is_not_a_ring_member() {
    let agent = |id: &str, addr: &str| v1::AgentInfo {
        agent_id: id.to_owned(),
        peer_address: addr.to_owned(),
        ..Default::default()
    };
    let listed = vec![
        // This agent's previous process: same peer address, lease not run out yet.
        agent("old", "10.0.0.1:9222"),
        agent("me", "10.0.0.1:9222"),
        agent("other", "10.0.0.2:9222"),
        agent("no-peer", ""),
    ];
    let ids: Vec<String> = ring_members("me", listed.clone())
        .into_iter()
        .map(|m| m.agent_id)
        .collect();
    assert_eq!(ids, ["me", "other"]);
    // Another agent keeps everyone with a distinct address (it cannot tell which of
    // two registrations at one address is alive; the ring skips a dead owner).
    let ids: Vec<String> = ring_members("other", listed)
        .into_iter()
        .map(|m| m.agent_id)
        .collect();
    assert_eq!(ids, ["old", "me", "other"]);
}
