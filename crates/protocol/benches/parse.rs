//! Parser throughput on a realistic client stream: mostly PUBs of 16 B – 1 KiB, a
//! third HPUBs carrying a `Nats-Msg-Id` header, a few with reply subjects, and the
//! occasional PING. Reported as bytes/s (criterion prints GiB/s).

use bytes::{Bytes, BytesMut};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use infinistream_protocol::client::Publish;
use infinistream_protocol::{ClientOp, ClientParser, HeaderMap};

fn workload(payload_sizes: &[usize]) -> BytesMut {
    let mut wire = BytesMut::new();
    let mut i = 0usize;
    while wire.len() < 4 << 20 {
        let size = payload_sizes[i % payload_sizes.len()];
        let headers = i.is_multiple_of(3).then(|| {
            let mut h = HeaderMap::new();
            h.insert("Nats-Msg-Id", format!("msg-{i}"));
            h.to_bytes()
        });
        let reply = i
            .is_multiple_of(10)
            .then(|| Bytes::from(format!("_INBOX.abcdefgh.{i}")));
        ClientOp::Pub(Publish {
            subject: Bytes::from(format!("orders.region{}.created", i % 16)),
            reply,
            headers,
            payload: Bytes::from(vec![b'x'; size]),
        })
        .encode(&mut wire);
        if i.is_multiple_of(1000) {
            ClientOp::Ping.encode(&mut wire);
        }
        i += 1;
    }
    wire
}

fn bench(c: &mut Criterion) {
    let parser = ClientParser::default();
    let mut group = c.benchmark_group("client_parse");
    for (name, sizes) in [
        ("mix_16B", &[16usize][..]),
        ("mix_1KiB", &[1024][..]),
        ("mix_16B_to_1KiB", &[16, 128, 256, 1024, 64][..]),
    ] {
        let wire = workload(sizes);
        group.throughput(Throughput::Bytes(wire.len() as u64));
        group.bench_function(name, |b| {
            b.iter_batched(
                || wire.clone(),
                |mut buf| {
                    let mut n = 0usize;
                    while let Ok(Some(op)) = parser.parse(&mut buf) {
                        n += std::hint::black_box(op).name().len();
                    }
                    n
                },
                BatchSize::LargeInput,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
