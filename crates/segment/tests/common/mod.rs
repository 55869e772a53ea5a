//! Helpers shared by the integration tests: owned record data, proptest strategies and
//! full decoders that read every chunk/block of an in-memory object.

#![allow(dead_code)]

use bytes::Bytes;
use infinistream_segment::{
    BatchFooter, Compression, DecodeError, Record, RecordRef, Segment, SeqRecord, decode_chunk,
};
use proptest::prelude::*;

/// An owned record used as test input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rec {
    pub subject: Vec<u8>,
    pub headers: Vec<u8>,
    pub payload: Vec<u8>,
    pub timestamp: i64,
    pub msg_id: Option<Vec<u8>>,
}

impl Rec {
    pub fn as_ref(&self) -> RecordRef<'_> {
        RecordRef {
            subject: &self.subject,
            headers: &self.headers,
            payload: &self.payload,
            timestamp: self.timestamp,
            msg_id: self.msg_id.as_deref(),
        }
    }

    pub fn matches(&self, r: &Record) -> bool {
        r.subject == self.subject
            && r.headers == self.headers
            && r.payload == self.payload
            && r.timestamp == self.timestamp
            && r.msg_id.as_deref() == self.msg_id.as_deref()
    }
}

/// Bytes that are incompressible when `noisy`, else a repeating JSON-ish pattern.
pub fn filler(len: usize, seed: u64, noisy: bool) -> Vec<u8> {
    if noisy {
        let mut x = seed | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect()
    } else {
        let pattern = format!("{{\"id\":{seed},\"kind\":\"order\",\"qty\":3}}");
        pattern.bytes().cycle().take(len).collect()
    }
}

fn sized_bytes(max_small: usize, large: usize) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        10 => Just(Vec::new()),
        60 => (1..=max_small, any::<u64>(), any::<bool>()).prop_map(|(n, s, z)| filler(n, s, z)),
        25 => (max_small..=4096usize, any::<u64>(), any::<bool>()).prop_map(|(n, s, z)| filler(n, s, z)),
        1 => (large / 2..=large, any::<u64>(), any::<bool>()).prop_map(|(n, s, z)| filler(n, s, z)),
    ]
}

pub fn rec_strategy() -> impl Strategy<Value = Rec> {
    (
        proptest::collection::vec(prop_oneof![b'a'..=b'z', Just(b'.'), Just(b'>')], 1..40),
        prop_oneof![
            3 => Just(Vec::new()),
            2 => Just(b"NATS/1.0\r\nNats-Msg-Id: x\r\n\r\n".to_vec()),
            1 => (0..=16_384usize, any::<u64>()).prop_map(|(n, s)| filler(n, s, true)),
        ],
        sized_bytes(64, 1 << 20),
        any::<i64>(),
        proptest::option::of(proptest::collection::vec(any::<u8>(), 0..24)),
    )
        .prop_map(|(subject, headers, payload, timestamp, msg_id)| Rec {
            subject,
            headers,
            payload,
            timestamp,
            msg_id,
        })
}

/// Small records for the corruption properties (objects stay a few hundred bytes).
pub fn small_rec_strategy() -> impl Strategy<Value = Rec> {
    (
        proptest::collection::vec(b'a'..=b'e', 1..6),
        proptest::collection::vec(any::<u8>(), 0..6),
        (0..80usize, any::<u64>(), any::<bool>()).prop_map(|(n, s, z)| filler(n, s, z)),
        any::<i64>(),
        proptest::option::of(proptest::collection::vec(any::<u8>(), 0..4)),
    )
        .prop_map(|(subject, headers, payload, timestamp, msg_id)| Rec {
            subject,
            headers,
            payload,
            timestamp,
            msg_id,
        })
}

pub fn compression_strategy() -> impl Strategy<Value = Compression> {
    prop_oneof![
        Just(Compression::None),
        Just(Compression::Lz4),
        Just(Compression::Zstd)
    ]
}

/// Reads a batch object the way a fetcher does: footer from the tail, then each chunk
/// from exactly its range.
pub fn read_batch(object: &Bytes) -> Result<Vec<(String, Vec<Record>)>, DecodeError> {
    let footer = BatchFooter::decode(object)?;
    let mut out = Vec::new();
    for meta in footer.chunks() {
        let r = meta.range();
        let stored = object.slice(r.start as usize..r.end as usize);
        let chunk = decode_chunk(meta, stored)?;
        out.push((meta.stream.clone(), chunk.iter().collect()));
    }
    Ok(out)
}

/// Reads every record of a segment object.
pub fn read_segment(object: &Bytes) -> Result<(String, Vec<SeqRecord>), DecodeError> {
    let seg = Segment::open(object.clone())?;
    let records = seg.iter_from(0).collect::<Result<Vec<_>, _>>()?;
    Ok((seg.index().stream().to_owned(), records))
}
