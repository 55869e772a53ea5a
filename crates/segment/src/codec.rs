//! Building blocks shared by both formats: a bounds-checked cursor, LEB128 varints,
//! the record encoding, per-region compression with the skip rule, and the trailer.
//!
//! Everything that reads decoded input goes through [`Cursor`], which returns
//! [`DecodeError::Truncated`] instead of panicking, so the format modules never index
//! slices directly with lengths that came from an object.

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::{BuildError, DecodeError, Part};
use crate::record::{Record, RecordRef};

/// Largest uncompressed chunk or block, in bytes (256 MiB).
///
/// Readers refuse larger lengths before allocating, so a damaged (or hostile) index
/// cannot make them allocate gigabytes; builders refuse to produce them.
pub const MAX_RAW_LEN: usize = 256 * 1024 * 1024;

/// Size of the fixed trailer at the end of both formats.
pub const TRAILER_LEN: usize = 16;

/// A stored region is kept compressed only if it is at most this many tenths of the
/// raw size (i.e. compression saves at least 10 %).
const KEEP_COMPRESSED_TENTHS: usize = 9;

/// Compression codec of one chunk or block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[repr(u8)]
pub enum Compression {
    /// Stored as is; readers slice it without copying.
    #[default]
    None = 0,
    /// LZ4 block format (no frame), raw length in the index.
    Lz4 = 1,
    /// One zstd frame.
    Zstd = 2,
}

impl Compression {
    /// The byte written in footers and indexes.
    pub fn as_u8(self) -> u8 {
        self as u8
    }

    /// Parses the byte written in footers and indexes.
    pub fn from_u8(b: u8) -> Result<Self, DecodeError> {
        match b {
            0 => Ok(Compression::None),
            1 => Ok(Compression::Lz4),
            2 => Ok(Compression::Zstd),
            other => Err(DecodeError::UnknownCompression(other)),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }
}

/// CRC32C (Castagnoli), hardware-accelerated where the CPU has it.
pub fn crc32c(bytes: &[u8]) -> u32 {
    crc32c::crc32c(bytes)
}

/// Bounds-checked little-endian reader over a byte slice.
#[derive(Debug)]
pub(crate) struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
    part: Part,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(buf: &'a [u8], part: Part) -> Self {
        Cursor { buf, pos: 0, part }
    }

    pub(crate) fn at(buf: &'a [u8], pos: usize, part: Part) -> Self {
        Cursor { buf, pos, part }
    }

    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    fn truncated(&self) -> DecodeError {
        DecodeError::Truncated {
            part: self.part,
            at: self.pos,
        }
    }

    pub(crate) fn bytes(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self.pos.checked_add(n).ok_or_else(|| self.truncated())?;
        let out = self
            .buf
            .get(self.pos..end)
            .ok_or_else(|| self.truncated())?;
        self.pos = end;
        Ok(out)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let s = self.bytes(N)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.array::<1>()?[0])
    }

    pub(crate) fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_le_bytes(self.array()?))
    }

    pub(crate) fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    pub(crate) fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    pub(crate) fn i64(&mut self) -> Result<i64, DecodeError> {
        Ok(i64::from_le_bytes(self.array()?))
    }

    /// LEB128 unsigned varint, at most 10 bytes, no overflow past 64 bits.
    pub(crate) fn varint(&mut self) -> Result<u64, DecodeError> {
        let mut value: u64 = 0;
        for i in 0..10u32 {
            let b = self.u8()?;
            let low = u64::from(b & 0x7f);
            if i == 9 && b > 1 {
                return Err(DecodeError::Corrupt {
                    part: self.part,
                    reason: "varint overflows 64 bits",
                });
            }
            value |= low << (7 * i);
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(DecodeError::Corrupt {
            part: self.part,
            reason: "varint longer than 10 bytes",
        })
    }

    /// A varint that must fit in `usize` and in the remaining input.
    pub(crate) fn len_varint(&mut self) -> Result<usize, DecodeError> {
        let v = self.varint()?;
        usize::try_from(v).map_err(|_| self.truncated())
    }
}

pub(crate) fn put_varint(buf: &mut BytesMut, mut v: u64) {
    while v >= 0x80 {
        buf.put_u8((v as u8) | 0x80);
        v >>= 7;
    }
    buf.put_u8(v as u8);
}

fn varint_len(v: u64) -> usize {
    // 1 byte per started group of 7 bits, at least 1.
    let bits = 64 - (v | 1).leading_zeros() as usize;
    bits.div_ceil(7)
}

/// Encoded size of one record (without a segment's sequence prefix).
pub(crate) fn record_len(r: &RecordRef<'_>) -> usize {
    let id_tag = r.msg_id.map_or(0, |id| id.len() as u64 + 1);
    8 + varint_len(r.subject.len() as u64)
        + varint_len(id_tag)
        + varint_len(r.headers.len() as u64)
        + varint_len(r.payload.len() as u64)
        + r.subject.len()
        + r.msg_id.map_or(0, <[u8]>::len)
        + r.headers.len()
        + r.payload.len()
}

/// Appends one record: `timestamp i64 LE`, varints `subject_len`, `msg_id_tag`
/// (0 = none, n+1 = n-byte id), `headers_len`, `payload_len`, then the four byte strings.
pub(crate) fn put_record(buf: &mut BytesMut, r: &RecordRef<'_>) {
    buf.reserve(record_len(r));
    buf.put_i64_le(r.timestamp);
    put_varint(buf, r.subject.len() as u64);
    put_varint(buf, r.msg_id.map_or(0, |id| id.len() as u64 + 1));
    put_varint(buf, r.headers.len() as u64);
    put_varint(buf, r.payload.len() as u64);
    buf.extend_from_slice(r.subject);
    if let Some(id) = r.msg_id {
        buf.extend_from_slice(id);
    }
    buf.extend_from_slice(r.headers);
    buf.extend_from_slice(r.payload);
}

/// Field boundaries of one record, as offsets into the region it was read from.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RecordSpan {
    pub(crate) timestamp: i64,
    subject: (usize, usize),
    msg_id: Option<(usize, usize)>,
    headers: (usize, usize),
    payload: (usize, usize),
}

/// Reads the record starting at the cursor, validating every length against the input.
pub(crate) fn scan_record(c: &mut Cursor<'_>) -> Result<RecordSpan, DecodeError> {
    let timestamp = c.i64()?;
    let subject_len = c.len_varint()?;
    let id_tag = c.varint()?;
    let headers_len = c.len_varint()?;
    let payload_len = c.len_varint()?;
    let mut take = |n: usize| -> Result<(usize, usize), DecodeError> {
        let start = c.pos();
        c.bytes(n)?;
        Ok((start, c.pos()))
    };
    let subject = take(subject_len)?;
    let msg_id = match id_tag.checked_sub(1) {
        None => None,
        Some(n) => {
            let n = usize::try_from(n).map_err(|_| DecodeError::Corrupt {
                part: Part::Record,
                reason: "message id length overflows",
            })?;
            Some(take(n)?)
        }
    };
    let headers = take(headers_len)?;
    let payload = take(payload_len)?;
    Ok(RecordSpan {
        timestamp,
        subject,
        msg_id,
        headers,
        payload,
    })
}

impl RecordSpan {
    /// Materializes the record as zero-copy slices of `data` (the region scanned).
    pub(crate) fn to_record(self, data: &Bytes) -> Record {
        let s = |(a, b): (usize, usize)| data.slice(a..b);
        Record {
            subject: s(self.subject),
            headers: s(self.headers),
            payload: s(self.payload),
            timestamp: self.timestamp,
            msg_id: self.msg_id.map(s),
        }
    }

    /// Borrows the record from `data` (the region scanned): no reference counting.
    pub(crate) fn to_ref(self, data: &[u8]) -> Option<RecordRef<'_>> {
        let s = |(a, b): (usize, usize)| data.get(a..b);
        Some(RecordRef {
            subject: s(self.subject)?,
            headers: s(self.headers)?,
            payload: s(self.payload)?,
            timestamp: self.timestamp,
            msg_id: match self.msg_id {
                Some(r) => Some(s(r)?),
                None => None,
            },
        })
    }
}

/// FxHash-style hasher for the builders' small in-memory maps (stream names, subjects).
///
/// SipHash showed up in profiles of the 16-byte-record benchmark; the keys are names of
/// existing streams and subjects already accepted by the gateway, and a flood of
/// colliding keys would only slow one flush down, so a fast non-keyed hash is enough.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct FastHash;

impl std::hash::BuildHasher for FastHash {
    type Hasher = FastHasher;

    fn build_hasher(&self) -> FastHasher {
        FastHasher(0)
    }
}

#[derive(Debug)]
pub(crate) struct FastHasher(u64);

impl FastHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

impl std::hash::Hasher for FastHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.add(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            if let Some(dst) = w.get_mut(..rest.len()) {
                dst.copy_from_slice(rest);
            }
            self.add(u64::from_le_bytes(w) ^ ((rest.len() as u64) << 59));
        }
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    /// splitmix64's finalizer: the multiply-rotate above leaves the low bits (which
    /// pick the hash-table bucket) depending only on the keys' low bits, so subjects
    /// that differ only in their last bytes would all collide without it.
    #[inline]
    fn finish(&self) -> u64 {
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// Compresses regions with the builder's codec and applies the skip rule.
pub(crate) struct Compressor {
    compression: Compression,
    zstd_level: i32,
    zstd: Option<zstd::bulk::Compressor<'static>>,
}

impl std::fmt::Debug for Compressor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compressor")
            .field("compression", &self.compression)
            .field("zstd_level", &self.zstd_level)
            .finish_non_exhaustive()
    }
}

impl Compressor {
    pub(crate) fn new(compression: Compression, zstd_level: i32) -> Self {
        Compressor {
            compression,
            zstd_level,
            zstd: None,
        }
    }

    /// Appends `raw` to `out` compressed, or as is when compression doesn't save at
    /// least 10 %. Returns the codec used and the stored length.
    pub(crate) fn seal(
        &mut self,
        raw: &[u8],
        out: &mut BytesMut,
    ) -> Result<(Compression, usize), BuildError> {
        let start = out.len();
        let compressed = match self.compression {
            Compression::None => None,
            Compression::Lz4 => {
                out.resize(
                    start + lz4_flex::block::get_maximum_output_size(raw.len()),
                    0,
                );
                let dst = out.get_mut(start..).unwrap_or_default();
                Some(
                    lz4_flex::block::compress_into(raw, dst)
                        .map_err(|e| BuildError::Compress(e.to_string()))?,
                )
            }
            Compression::Zstd => {
                if self.zstd.is_none() {
                    let c = zstd::bulk::Compressor::new(self.zstd_level)
                        .map_err(|e| BuildError::Compress(e.to_string()))?;
                    self.zstd = Some(c);
                }
                out.resize(start + zstd::zstd_safe::compress_bound(raw.len()), 0);
                let dst = out.get_mut(start..).unwrap_or_default();
                match self.zstd.as_mut() {
                    Some(z) => Some(
                        z.compress_to_buffer(raw, dst)
                            .map_err(|e| BuildError::Compress(e.to_string()))?,
                    ),
                    None => None,
                }
            }
        };
        if let Some(n) = compressed
            && n.saturating_mul(10) <= raw.len().saturating_mul(KEEP_COMPRESSED_TENTHS)
        {
            out.truncate(start + n);
            return Ok((self.compression, n));
        }
        out.truncate(start);
        out.extend_from_slice(raw);
        Ok((Compression::None, raw.len()))
    }
}

/// Checks a stored region against its CRC and returns its raw bytes: the same `Bytes`
/// (no copy) when uncompressed, a fresh buffer of exactly `raw_len` bytes otherwise.
pub(crate) fn open_region(
    part: Part,
    compression: Compression,
    crc: u32,
    raw_len: usize,
    stored: Bytes,
) -> Result<Bytes, DecodeError> {
    let computed = crc32c(&stored);
    if computed != crc {
        return Err(DecodeError::Checksum {
            part,
            stored: crc,
            computed,
        });
    }
    if raw_len > MAX_RAW_LEN {
        return Err(DecodeError::Corrupt {
            part,
            reason: "raw length above the format limit",
        });
    }
    let fail = |reason: String| DecodeError::Decompress {
        codec: compression.name(),
        reason,
    };
    match compression {
        Compression::None => {
            if stored.len() != raw_len {
                return Err(DecodeError::Corrupt {
                    part,
                    reason: "uncompressed region length differs from raw length",
                });
            }
            Ok(stored)
        }
        Compression::Lz4 => {
            let mut raw = vec![0u8; raw_len];
            let n = lz4_flex::block::decompress_into(&stored, &mut raw)
                .map_err(|e| fail(e.to_string()))?;
            if n != raw_len {
                return Err(fail(format!("inflated to {n} bytes, expected {raw_len}")));
            }
            Ok(Bytes::from(raw))
        }
        Compression::Zstd => {
            let mut raw = vec![0u8; raw_len];
            let n = zstd::bulk::decompress_to_buffer(&stored, &mut raw[..])
                .map_err(|e| fail(e.to_string()))?;
            if n != raw_len {
                return Err(fail(format!("inflated to {n} bytes, expected {raw_len}")));
            }
            Ok(Bytes::from(raw))
        }
    }
}

/// Appends the trailer: `index_len u32`, `index_crc32c u32`, 7-byte magic, version.
pub(crate) fn put_trailer(out: &mut BytesMut, index: &[u8], magic: &[u8; 7], version: u8) {
    out.put_u32_le(index.len() as u32);
    out.put_u32_le(crc32c(index));
    out.extend_from_slice(magic);
    out.put_u8(version);
}

/// Outcome of reading an object's tail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TailRead<T> {
    /// The tail held the whole footer/index; here it is, decoded.
    Complete(T),
    /// The footer/index is longer than the tail given: fetch at least this many bytes
    /// from the end of the object and call again.
    NeedTail(u64),
}

/// Where the footer/index lies, found from the trailer.
pub(crate) struct Located<'a> {
    /// The footer/index bytes, CRC verified.
    pub(crate) index: &'a [u8],
    /// Offset of the footer/index in the object (= end of the data regions).
    pub(crate) index_start: u64,
}

/// Parses the trailer at the end of `tail` (the last `tail.len()` bytes of an object of
/// `object_len` bytes) and returns the verified footer/index bytes.
pub(crate) fn locate_index<'a>(
    tail: &'a [u8],
    object_len: u64,
    magic: &[u8; 7],
    version: u8,
    format: &'static str,
    part: Part,
) -> Result<TailRead<Located<'a>>, DecodeError> {
    let trailer_len = TRAILER_LEN as u64;
    if object_len < trailer_len {
        return Err(DecodeError::TooShort {
            expected: trailer_len,
            len: object_len,
        });
    }
    if tail.len() as u64 > object_len {
        return Err(DecodeError::LengthMismatch {
            part: Part::Trailer,
            expected: object_len,
            got: tail.len() as u64,
        });
    }
    let Some(trailer_start) = tail.len().checked_sub(TRAILER_LEN) else {
        return Ok(TailRead::NeedTail(trailer_len));
    };
    let mut c = Cursor::at(tail, trailer_start, Part::Trailer);
    let index_len = c.u32()?;
    let index_crc = c.u32()?;
    let found_magic: [u8; 7] = c.array()?;
    let found_version = c.u8()?;
    if &found_magic != magic {
        return Err(DecodeError::BadMagic {
            expected: format,
            found: found_magic,
        });
    }
    if found_version != version {
        return Err(DecodeError::UnsupportedVersion {
            format,
            version: found_version,
        });
    }
    let needed = u64::from(index_len) + trailer_len;
    if needed > object_len {
        return Err(DecodeError::Corrupt {
            part: Part::Trailer,
            reason: "index length exceeds object length",
        });
    }
    if (tail.len() as u64) < needed {
        return Ok(TailRead::NeedTail(needed));
    }
    let index_len = index_len as usize;
    let index = tail
        .get(trailer_start.saturating_sub(index_len)..trailer_start)
        .ok_or(DecodeError::Truncated { part, at: 0 })?;
    let computed = crc32c(index);
    if computed != index_crc {
        return Err(DecodeError::Checksum {
            part,
            stored: index_crc,
            computed,
        });
    }
    Ok(TailRead::Complete(Located {
        index,
        index_start: object_len - needed,
    }))
}

/// Checks a stream name for the builders (1..=`u16::MAX` bytes).
pub(crate) fn check_stream_name(stream: &str) -> Result<(), BuildError> {
    let max = usize::from(u16::MAX);
    if stream.is_empty() || stream.len() > max {
        return Err(BuildError::StreamName {
            max,
            len: stream.len(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varint_round_trips_edges() {
        for v in [
            0u64,
            1,
            127,
            128,
            300,
            16_383,
            16_384,
            u64::MAX / 2,
            u64::MAX,
        ] {
            let mut b = BytesMut::new();
            put_varint(&mut b, v);
            assert_eq!(b.len(), varint_len(v), "len of {v}");
            let mut c = Cursor::new(&b, Part::Record);
            assert_eq!(c.varint().expect("decodes"), v);
            assert!(c.is_empty());
        }
    }

    #[test]
    fn varint_rejects_overflow_and_overlong() {
        let overflow = [0xff; 9].iter().copied().chain([0x02]).collect::<Vec<_>>();
        assert!(matches!(
            Cursor::new(&overflow, Part::Record).varint(),
            Err(DecodeError::Corrupt { .. })
        ));
        let truncated = [0x80u8, 0x80];
        assert!(matches!(
            Cursor::new(&truncated, Part::Record).varint(),
            Err(DecodeError::Truncated { .. })
        ));
    }

    #[test]
    fn skip_rule_stores_incompressible_data_raw() {
        // A simple LCG gives bytes no codec can shrink by 10 %.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let raw: Vec<u8> = (0..4096)
            .map(|_| {
                x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                (x >> 56) as u8
            })
            .collect();
        for c in [Compression::Lz4, Compression::Zstd] {
            let mut out = BytesMut::new();
            let (used, n) = Compressor::new(c, 3).seal(&raw, &mut out).expect("seals");
            assert_eq!(used, Compression::None);
            assert_eq!(n, raw.len());
            assert_eq!(&out[..], &raw[..]);
        }
        let text = b"{\"k\":\"v\"}".repeat(500);
        for c in [Compression::Lz4, Compression::Zstd] {
            let mut out = BytesMut::from(&b"prefix"[..]);
            let (used, n) = Compressor::new(c, 3).seal(&text, &mut out).expect("seals");
            assert_eq!(used, c);
            assert_eq!(out.len(), 6 + n);
            let stored = Bytes::copy_from_slice(&out[6..]);
            let raw =
                open_region(Part::Chunk, c, crc32c(&stored), text.len(), stored).expect("opens");
            assert_eq!(&raw[..], &text[..]);
        }
    }
}
