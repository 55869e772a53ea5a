//! The disk tier: object ranges kept as files under the cache directory, bounded by
//! bytes (least recently used out).
//!
//! One file per range, written to a temporary name and renamed into place, so a
//! reader never sees a half-written file under a live name. A crash can still leave a
//! torn file (the rename reached the disk before the data): every file carries a
//! CRC32C over its contents and the range's name, so a torn or bit-rotted file is
//! detected on read, deleted, and read again from the peer or the bucket — the cache
//! is never trusted over the bucket. On start the directory is scanned: temporary
//! files are removed, the others are indexed (oldest modification first) and trimmed
//! to the bound.
//!
//! File layout (little endian):
//! `"ISZC" | version u8 (1) | crc32c u32 over the rest | object_len u64 | name_len u32 | name | data`.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use parking_lot::Mutex;

use super::ring::{fmix64, fnv1a};
use crate::cache::WeightedLru;

const MAGIC: &[u8; 4] = b"ISZC";
const VERSION: u8 = 1;
const HEADER_LEN: usize = 4 + 1 + 4 + 8 + 4;
const TMP_SUFFIX: &str = ".tmp";

/// Why the disk tier could not open.
#[derive(Debug, thiserror::Error)]
pub enum DiskError {
    #[error("cannot use the zone cache directory `{path}`: {source}")]
    Dir {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// What a lookup found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum DiskRead {
    /// The range's bytes and its object's length.
    Hit(Bytes, u64),
    /// Not on disk.
    Miss,
    /// A file was there but failed its checksum (or was unreadable); it was removed.
    Corrupt,
}

/// Files under one directory, bounded by bytes.
#[derive(Debug, Clone)]
pub(crate) struct DiskTier {
    inner: Arc<DiskInner>,
}

#[derive(Debug)]
struct DiskInner {
    dir: PathBuf,
    // file name → (), weighted by file size.
    index: Mutex<WeightedLru<String, ()>>,
}

impl DiskTier {
    /// Opens (creating) `dir`, indexing what a previous run left there.
    pub(crate) fn open(dir: &Path, capacity: u64) -> Result<Self, DiskError> {
        let dir_err = |source| DiskError::Dir {
            path: dir.display().to_string(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(dir_err)?;
        let mut found = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(dir_err)? {
            let entry = entry.map_err(dir_err)?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = entry.path();
            if name.ends_with(TMP_SUFFIX) {
                let _ = std::fs::remove_file(&path);
                continue;
            }
            let Ok(meta) = entry.metadata() else { continue };
            if !meta.is_file() {
                continue;
            }
            let modified = meta.modified().ok();
            found.push((modified, name, meta.len()));
        }
        found.sort();
        let mut index = WeightedLru::new(capacity);
        for (_, name, len) in found {
            for gone in index.insert_evicting(name, (), len) {
                let _ = std::fs::remove_file(dir.join(gone));
            }
        }
        Ok(Self {
            inner: Arc::new(DiskInner {
                dir: dir.to_path_buf(),
                index: Mutex::new(index),
            }),
        })
    }

    /// Bytes of files held.
    pub(crate) fn bytes(&self) -> u64 {
        self.inner.index.lock().weight()
    }

    /// The range named `name`, verified.
    pub(crate) async fn get(&self, name: &str) -> DiskRead {
        let file = file_name(name);
        if self.inner.index.lock().get(&file).is_none() {
            return DiskRead::Miss;
        }
        let path = self.inner.dir.join(&file);
        let read = tokio::task::spawn_blocking(move || std::fs::read(path)).await;
        let bytes = match read {
            Ok(Ok(bytes)) => Bytes::from(bytes),
            Ok(Err(e)) if e.kind() == ErrorKind::NotFound => {
                self.inner.index.lock().remove(&file);
                return DiskRead::Miss;
            }
            Ok(Err(error)) => {
                tracing::warn!(file = %file, %error, "zone cache file unreadable; dropping it");
                self.drop_file(&file).await;
                return DiskRead::Corrupt;
            }
            Err(_) => return DiskRead::Miss,
        };
        match decode(name, &bytes) {
            Decoded::Ok(data, object_len) => DiskRead::Hit(data, object_len),
            // Another range hashed to the same file name: a miss, not damage.
            Decoded::OtherName => DiskRead::Miss,
            Decoded::Corrupt(reason) => {
                tracing::warn!(file = %file, reason, "zone cache file failed its check (torn or damaged); dropping it");
                self.drop_file(&file).await;
                DiskRead::Corrupt
            }
        }
    }

    /// Stores the range `name`; evicts older files past the bound. Failures (a full
    /// disk) are logged, remove the partly written temporary file so they free what
    /// they took, and leave the tier without the range (it is only a cache); returns
    /// false then.
    pub(crate) async fn put(&self, name: &str, data: &Bytes, object_len: u64) -> bool {
        let file = file_name(name);
        let encoded = encode(name, data, object_len);
        let len = encoded.len() as u64;
        let dir = self.inner.dir.clone();
        let tmp = dir.join(format!("{file}{TMP_SUFFIX}"));
        let dest = dir.join(&file);
        let write = tokio::task::spawn_blocking(move || {
            let written =
                std::fs::write(&tmp, &encoded).and_then(|()| std::fs::rename(&tmp, &dest));
            if written.is_err() {
                let _ = std::fs::remove_file(&tmp);
            }
            written
        })
        .await;
        match write {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                tracing::warn!(file = %file, %error, "zone cache file write failed; range not cached on disk");
                return false;
            }
            Err(_) => return false,
        }
        let evicted = self.inner.index.lock().insert_evicting(file, (), len);
        if !evicted.is_empty() {
            let dir = self.inner.dir.clone();
            let _ = tokio::task::spawn_blocking(move || {
                for gone in evicted {
                    let _ = std::fs::remove_file(dir.join(gone));
                }
            })
            .await;
        }
        true
    }

    async fn drop_file(&self, file: &str) {
        self.inner.index.lock().remove(file);
        let path = self.inner.dir.join(file);
        let _ = tokio::task::spawn_blocking(move || std::fs::remove_file(path)).await;
    }

    /// The file a range is stored in (for tests that damage it).
    #[cfg(test)]
    pub(crate) fn path_of(&self, name: &str) -> PathBuf {
        self.inner.dir.join(file_name(name))
    }
}

/// A fixed-width file name for a range name: two independent 64-bit hashes.
fn file_name(name: &str) -> String {
    let a = fmix64(fnv1a(name.as_bytes()));
    let mut salted = Vec::with_capacity(name.len() + 1);
    salted.push(0x5a);
    salted.extend_from_slice(name.as_bytes());
    let b = fmix64(fnv1a(&salted));
    format!("{a:016x}{b:016x}")
}

fn encode(name: &str, data: &Bytes, object_len: u64) -> Vec<u8> {
    let mut rest = BytesMut::with_capacity(8 + 4 + name.len() + data.len());
    rest.extend_from_slice(&object_len.to_le_bytes());
    rest.extend_from_slice(&(name.len() as u32).to_le_bytes());
    rest.extend_from_slice(name.as_bytes());
    rest.extend_from_slice(data);
    let crc = crc32c::crc32c(&rest);
    let mut out = Vec::with_capacity(HEADER_LEN + rest.len());
    out.extend_from_slice(MAGIC);
    out.push(VERSION);
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(&rest);
    out
}

enum Decoded {
    Ok(Bytes, u64),
    OtherName,
    Corrupt(&'static str),
}

fn decode(name: &str, file: &Bytes) -> Decoded {
    if file.len() < HEADER_LEN {
        return Decoded::Corrupt("shorter than the header");
    }
    if &file[..4] != MAGIC {
        return Decoded::Corrupt("bad magic");
    }
    if file[4] != VERSION {
        return Decoded::Corrupt("unknown version");
    }
    let crc = u32::from_le_bytes([file[5], file[6], file[7], file[8]]);
    let rest = &file[9..];
    if crc32c::crc32c(rest) != crc {
        return Decoded::Corrupt("checksum mismatch");
    }
    let mut object_len = [0u8; 8];
    object_len.copy_from_slice(&rest[..8]);
    let object_len = u64::from_le_bytes(object_len);
    let name_len = u32::from_le_bytes([rest[8], rest[9], rest[10], rest[11]]) as usize;
    let Some(stored) = rest.get(12..12 + name_len) else {
        return Decoded::Corrupt("name past the end");
    };
    if stored != name.as_bytes() {
        return Decoded::OtherName;
    }
    Decoded::Ok(file.slice(9 + 12 + name_len..), object_len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn round_trip_and_survives_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let tier = DiskTier::open(dir.path(), 1 << 20).expect("open");
        let data = Bytes::from_static(b"chunk bytes");
        assert_eq!(tier.get("obj#0-11").await, DiskRead::Miss);
        tier.put("obj#0-11", &data, 4096).await;
        assert_eq!(
            tier.get("obj#0-11").await,
            DiskRead::Hit(data.clone(), 4096)
        );
        let reopened = DiskTier::open(dir.path(), 1 << 20).expect("reopen");
        assert_eq!(reopened.get("obj#0-11").await, DiskRead::Hit(data, 4096));
        assert!(reopened.bytes() > 0);
    }

    #[tokio::test]
    async fn torn_and_flipped_files_are_detected_and_dropped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let tier = DiskTier::open(dir.path(), 1 << 20).expect("open");
        let data = Bytes::from(vec![7u8; 10_000]);

        // Torn: the file lost its tail (as after a crash mid-write).
        tier.put("torn", &data, 1).await;
        let path = tier.path_of("torn");
        let full = std::fs::read(&path).expect("read");
        std::fs::write(&path, &full[..full.len() / 2]).expect("truncate");
        assert_eq!(tier.get("torn").await, DiskRead::Corrupt);
        assert!(!path.exists(), "the torn file is deleted");
        assert_eq!(tier.get("torn").await, DiskRead::Miss);

        // One flipped bit in the data.
        tier.put("flipped", &data, 1).await;
        let path = tier.path_of("flipped");
        let mut bytes = std::fs::read(&path).expect("read");
        let last = bytes.len() - 1;
        bytes[last] ^= 0x01;
        std::fs::write(&path, &bytes).expect("write");
        assert_eq!(tier.get("flipped").await, DiskRead::Corrupt);
        assert!(!path.exists());

        // Shorter than a header, and a leftover temporary file from a crash.
        tier.put("short", &data, 1).await;
        std::fs::write(tier.path_of("short"), b"ISZ").expect("write");
        std::fs::write(dir.path().join(format!("abc{TMP_SUFFIX}")), b"partial").expect("tmp");
        let reopened = DiskTier::open(dir.path(), 1 << 20).expect("reopen");
        assert_eq!(reopened.get("short").await, DiskRead::Corrupt);
        assert!(!dir.path().join(format!("abc{TMP_SUFFIX}")).exists());
        assert_eq!(reopened.bytes(), 0);
    }

    #[tokio::test]
    async fn bounded_by_bytes_least_recently_used_out() {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = Bytes::from(vec![1u8; 1000]);
        // Room for two files (each is the data plus a small header).
        let tier = DiskTier::open(dir.path(), 2 * 1100).expect("open");
        tier.put("a", &data, 1).await;
        tier.put("b", &data, 1).await;
        assert!(matches!(tier.get("a").await, DiskRead::Hit(..))); // a newer than b
        tier.put("c", &data, 1).await;
        assert_eq!(tier.get("b").await, DiskRead::Miss);
        assert!(!tier.path_of("b").exists(), "the evicted file is deleted");
        assert!(matches!(tier.get("a").await, DiskRead::Hit(..)));
        assert!(matches!(tier.get("c").await, DiskRead::Hit(..)));
        assert!(tier.bytes() <= 2 * 1100);
        let files = std::fs::read_dir(dir.path()).expect("ls").count();
        assert_eq!(files, 2);
    }
}
