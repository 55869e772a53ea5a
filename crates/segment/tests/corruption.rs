//! Property: flipping any byte or truncating anywhere gives a typed error, never a
//! panic and never different data. Every byte of both formats is covered by a CRC
//! (chunks/blocks by their own, footer/index by the trailer's) or is the trailer's
//! length, magic or version, so in practice every flip is an error; the assertion
//! allows "decodes to exactly the original" for completeness.

mod common;

use bytes::Bytes;
use common::{Rec, compression_strategy, read_batch, read_segment, small_rec_strategy};
use infinistream_segment::{
    BatchBuilder, BatchFooter, BuildOptions, Compression, DecodeError, SegmentBuilder,
    SegmentIndex, SegmentOptions, TailRead,
};
use proptest::prelude::*;

fn build_batch(items: &[(usize, Rec)], compression: Compression) -> Bytes {
    let mut b = BatchBuilder::new(BuildOptions {
        compression,
        zstd_level: 1,
    });
    for (stream, rec) in items {
        b.push(&format!("S{stream}"), &rec.as_ref()).expect("push");
    }
    b.finish().expect("finish").object
}

fn build_segment(items: &[(u64, Rec)], compression: Compression, block_size: usize) -> Bytes {
    let mut b = SegmentBuilder::new(
        "S",
        SegmentOptions {
            build: BuildOptions {
                compression,
                zstd_level: 1,
            },
            block_size,
        },
    )
    .expect("builder");
    let mut seq = 0;
    for (gap, rec) in items {
        seq += gap;
        b.push(seq, &rec.as_ref()).expect("push");
    }
    b.finish().expect("finish").tail
}

/// Every damaged variant must fail or read back identical to the original.
fn check_variants<T: PartialEq + std::fmt::Debug>(
    original: &Bytes,
    read: impl Fn(&Bytes) -> Result<T, DecodeError>,
    mask: u8,
) -> Result<(), TestCaseError> {
    let good = read(original).expect("original decodes");
    for i in 0..original.len() {
        let mut damaged = original.to_vec();
        damaged[i] ^= mask;
        if let Ok(v) = read(&Bytes::from(damaged)) {
            prop_assert_eq!(&v, &good, "flip at {} decoded to different data", i);
        }
    }
    for len in 0..original.len() {
        if let Ok(v) = read(&original.slice(..len)) {
            prop_assert_eq!(&v, &good, "truncation to {} decoded to different data", len);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    #[test]
    fn batch_flips_and_truncations_are_detected(
        items in proptest::collection::vec((0..4usize, small_rec_strategy()), 1..10),
        compression in compression_strategy(),
        mask in 1..=255u8,
    ) {
        let object = build_batch(&items, compression);
        check_variants(&object, read_batch, mask)?;
        // Flips must actually be errors (not silently accepted), since every byte is
        // covered; check that strictly too.
        for i in 0..object.len() {
            let mut damaged = object.to_vec();
            damaged[i] ^= mask;
            prop_assert!(read_batch(&Bytes::from(damaged)).is_err(), "flip at {} accepted", i);
        }
    }

    #[test]
    fn segment_flips_and_truncations_are_detected(
        items in proptest::collection::vec((1..3u64, small_rec_strategy()), 1..10),
        compression in compression_strategy(),
        block_size in 16..256usize,
        mask in 1..=255u8,
    ) {
        let object = build_segment(&items, compression, block_size);
        check_variants(&object, read_segment, mask)?;
        for i in 0..object.len() {
            let mut damaged = object.to_vec();
            damaged[i] ^= mask;
            prop_assert!(read_segment(&Bytes::from(damaged)).is_err(), "flip at {} accepted", i);
        }
    }

    /// Arbitrary bytes never panic any decoder.
    #[test]
    fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512), claimed in 0..4096u64) {
        let bytes = Bytes::from(bytes);
        let _ = read_batch(&bytes);
        let _ = read_segment(&bytes);
        let _ = BatchFooter::decode_from_tail(&bytes, claimed);
        let _ = SegmentIndex::decode_from_tail(&bytes, claimed);
    }
}

/// A footer that is internally consistent but lies (valid CRCs recomputed by an
/// attacker) is still refused by the structural checks rather than trusted.
#[test]
fn forged_footer_with_valid_crc_is_refused() {
    let rec = Rec {
        subject: b"a".to_vec(),
        headers: Vec::new(),
        payload: b"hello".to_vec(),
        timestamp: 7,
        msg_id: None,
    };
    let object = build_batch(&[(0, rec)], Compression::None);
    let n = object.len();
    let footer_len =
        u32::from_le_bytes(object[n - 16..n - 12].try_into().expect("4 bytes")) as usize;
    let footer_start = n - 16 - footer_len;
    // Claim 1000 records in the chunk, then fix up the footer CRC.
    let mut forged = object.to_vec();
    let count_at = footer_start + 4 + 2 + 2 + 8 + 4 + 4; // count, name len, "S0", offset, stored, raw
    forged[count_at..count_at + 4].copy_from_slice(&1000u32.to_le_bytes());
    let crc = infinistream_segment::crc32c(&forged[footer_start..n - 16]);
    forged[n - 12..n - 8].copy_from_slice(&crc.to_le_bytes());
    let footer = match BatchFooter::decode_from_tail(&forged, n as u64).expect("footer decodes") {
        TailRead::Complete(f) => f,
        TailRead::NeedTail(_) => panic!("whole object given"),
    };
    assert_eq!(footer.chunks()[0].record_count, 1000);
    assert!(matches!(
        read_batch(&Bytes::from(forged)),
        Err(DecodeError::Corrupt { .. })
    ));
}
