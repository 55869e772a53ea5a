//! Object key naming: the one place that decides where objects live in the bucket.
//!
//! Every object an agent writes gets a fresh [ULID] in its name, so names are unique
//! and sort by creation time. Uniqueness matters for correctness: a retried upload
//! writes to the same fresh key (never to a key another writer might use), so a retry
//! is never ambiguous, and the control-plane commit that references the key is the one
//! point where a write counts (slatedb #766). Time order lets garbage collection list a
//! prefix and stop at the grace-period horizon.
//!
//! Layout (see docs/bucket.md):
//!
//! ```text
//! <group>/batches/<ULID>                 one object per agent flush
//! <group>/segments/<stream>/<ULID>       compacted per-stream segments
//! ```
//!
//! Group and stream names are *escaped* so that any string maps to a single, safe path
//! segment: ASCII letters, digits, `-` and `_` are kept; every other byte of the UTF-8
//! encoding (including `.`, `/`, `%` and `!`) becomes `!` followed by two upper-case hex
//! digits. `!` is used rather than `%` because object_store percent-encodes `%` itself,
//! which would double-escape. The encoding is injective, so parsing a listed key gives
//! back the original names.
//!
//! [ULID]: https://github.com/ulid/spec

use std::fmt;
use std::str::FromStr;
use std::sync::LazyLock;

use object_store::path::Path;
use parking_lot::Mutex;
use ulid::Ulid;

/// Directory under the group for batch objects.
pub const BATCHES: &str = "batches";
/// Directory under the group for compacted segments.
pub const SEGMENTS: &str = "segments";
/// The escape character of the name encoding.
pub const ESCAPE: char = '!';

/// Errors from building or parsing keys.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    /// A group or stream name was empty.
    #[error("empty {what} name")]
    EmptyName {
        /// `group` or `stream`.
        what: &'static str,
    },
    /// A key does not have the layout of a batch or segment key.
    #[error("not an infinistream object key: `{key}`")]
    Layout {
        /// The offending key.
        key: String,
    },
    /// An escaped name is malformed.
    #[error("malformed escaped name: `{name}`")]
    Escape {
        /// The offending path segment.
        name: String,
    },
    /// The last segment is not a ULID.
    #[error("invalid object id in key: `{key}`")]
    Id {
        /// The offending key.
        key: String,
    },
}

/// Escapes a group or stream name into one path segment (see the module docs).
pub fn escape_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for byte in name.bytes() {
        if byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_' {
            out.push(char::from(byte));
        } else {
            out.push(ESCAPE);
            out.push_str(&format!("{byte:02X}"));
        }
    }
    out
}

/// Reverses [`escape_name`]; rejects anything [`escape_name`] would not produce.
pub fn unescape_name(segment: &str) -> Result<String, KeyError> {
    let bad = || KeyError::Escape {
        name: segment.to_owned(),
    };
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let byte = bytes[i];
        if byte == b'!' {
            let hex = bytes.get(i + 1..i + 3).ok_or_else(bad)?;
            // Only upper-case hex, and only for bytes that would have been escaped,
            // so every name has exactly one encoding.
            if !hex
                .iter()
                .all(|h| h.is_ascii_digit() || (b'A'..=b'F').contains(h))
            {
                return Err(bad());
            }
            let text = std::str::from_utf8(hex).map_err(|_| bad())?;
            let value = u8::from_str_radix(text, 16).map_err(|_| bad())?;
            if value.is_ascii_alphanumeric() || value == b'-' || value == b'_' {
                return Err(bad());
            }
            out.push(value);
            i += 3;
        } else if byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_' {
            out.push(byte);
            i += 1;
        } else {
            return Err(bad());
        }
    }
    String::from_utf8(out).map_err(|_| bad())
}

static GENERATOR: LazyLock<Mutex<ulid::Generator>> =
    LazyLock::new(|| Mutex::new(ulid::Generator::new()));

/// A new ULID, strictly greater than every id this process generated before (a
/// monotonic generator, so ids made within one millisecond still sort in creation
/// order).
pub fn new_id() -> Ulid {
    let mut generator = GENERATOR.lock();
    match generator.generate() {
        Ok(id) => id,
        // 2^80 ids in one millisecond: not reachable in practice; a fresh random id
        // keeps uniqueness, which matters more than order.
        Err(_) => Ulid::generate(),
    }
}

/// What a key names.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ObjectKind {
    /// An agent flush: chunks of many streams.
    Batch,
    /// A compacted segment of one stream.
    Segment {
        /// The stream's (unescaped) name.
        stream: String,
    },
}

/// A parsed object key: group, kind and id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ObjectKey {
    group: String,
    kind: ObjectKind,
    id: Ulid,
    path: Path,
}

impl ObjectKey {
    /// The key of batch object `id` of `group`.
    pub fn batch(group: &str, id: Ulid) -> Result<Self, KeyError> {
        check_name("group", group)?;
        let path = Path::from_iter([escape_name(group), BATCHES.to_owned(), id.to_string()]);
        Ok(Self {
            group: group.to_owned(),
            kind: ObjectKind::Batch,
            id,
            path,
        })
    }

    /// The key of segment `id` of `stream` in `group`.
    pub fn segment(group: &str, stream: &str, id: Ulid) -> Result<Self, KeyError> {
        check_name("group", group)?;
        check_name("stream", stream)?;
        let path = Path::from_iter([
            escape_name(group),
            SEGMENTS.to_owned(),
            escape_name(stream),
            id.to_string(),
        ]);
        Ok(Self {
            group: group.to_owned(),
            kind: ObjectKind::Segment {
                stream: stream.to_owned(),
            },
            id,
            path,
        })
    }

    /// A new batch key with a fresh id.
    pub fn new_batch(group: &str) -> Result<Self, KeyError> {
        Self::batch(group, new_id())
    }

    /// A new segment key with a fresh id.
    pub fn new_segment(group: &str, stream: &str) -> Result<Self, KeyError> {
        Self::segment(group, stream, new_id())
    }

    /// Parses a key as listed from the bucket.
    pub fn parse(path: &Path) -> Result<Self, KeyError> {
        let layout = || KeyError::Layout {
            key: path.to_string(),
        };
        let parts: Vec<&str> = path.as_ref().split(object_store::path::DELIMITER).collect();
        let (group, kind, id) = match parts.as_slice() {
            [group, BATCHES, id] => (group, ObjectKind::Batch, id),
            [group, SEGMENTS, stream, id] => (
                group,
                ObjectKind::Segment {
                    stream: non_empty("stream", unescape_name(stream)?)?,
                },
                id,
            ),
            _ => return Err(layout()),
        };
        let group = non_empty("group", unescape_name(group)?)?;
        let id = Ulid::from_str(id).map_err(|_| KeyError::Id {
            key: path.to_string(),
        })?;
        // Only the canonical (upper-case) spelling parses, so parse∘format is the
        // identity and two spellings never name one object.
        if id.to_string() != *parts.last().ok_or_else(layout)? {
            return Err(KeyError::Id {
                key: path.to_string(),
            });
        }
        Ok(Self {
            group,
            kind,
            id,
            path: path.clone(),
        })
    }

    /// The group (unescaped).
    pub fn group(&self) -> &str {
        &self.group
    }

    /// Batch or segment (with its stream).
    pub fn kind(&self) -> &ObjectKind {
        &self.kind
    }

    /// The stream of a segment key.
    pub fn stream(&self) -> Option<&str> {
        match &self.kind {
            ObjectKind::Batch => None,
            ObjectKind::Segment { stream } => Some(stream),
        }
    }

    /// The object's unique, time-ordered id.
    pub fn id(&self) -> Ulid {
        self.id
    }

    /// Milliseconds since the Unix epoch at which the id was generated.
    pub fn timestamp_ms(&self) -> u64 {
        self.id.timestamp_ms()
    }

    /// The key as an object_store path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.path, f)
    }
}

impl From<ObjectKey> for Path {
    fn from(key: ObjectKey) -> Self {
        key.path
    }
}

/// The prefix under which all of `group`'s objects live.
pub fn group_prefix(group: &str) -> Result<Path, KeyError> {
    check_name("group", group)?;
    Ok(Path::from_iter([escape_name(group)]))
}

/// The prefix of `group`'s batch objects.
pub fn batches_prefix(group: &str) -> Result<Path, KeyError> {
    check_name("group", group)?;
    Ok(Path::from_iter([escape_name(group), BATCHES.to_owned()]))
}

/// The prefix of `group`'s segments, of one stream when `stream` is given.
pub fn segments_prefix(group: &str, stream: Option<&str>) -> Result<Path, KeyError> {
    check_name("group", group)?;
    let mut parts = vec![escape_name(group), SEGMENTS.to_owned()];
    if let Some(stream) = stream {
        check_name("stream", stream)?;
        parts.push(escape_name(stream));
    }
    Ok(Path::from_iter(parts))
}

fn check_name(what: &'static str, name: &str) -> Result<(), KeyError> {
    if name.is_empty() {
        Err(KeyError::EmptyName { what })
    } else {
        Ok(())
    }
}

fn non_empty(what: &'static str, name: String) -> Result<String, KeyError> {
    check_name(what, &name)?;
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_round_trips_awkward_names() {
        for name in [
            "orders",
            "KV_config",
            "a.b",
            "with space",
            "slash/and\\back",
            "100%",
            "bang!",
            "ünïcødé",
            "..",
            "*>",
        ] {
            let escaped = escape_name(name);
            assert!(
                escaped
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_!".contains(c)),
                "{escaped}"
            );
            assert_eq!(unescape_name(&escaped).as_deref(), Ok(name));
        }
        assert_eq!(escape_name("a.b"), "a!2Eb");
    }

    proptest::proptest! {
        #[test]
        fn escape_round_trips_any_name(name in "\\PC{0,40}") {
            let escaped = escape_name(&name);
            proptest::prop_assert!(escaped
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'!'));
            proptest::prop_assert_eq!(unescape_name(&escaped), Ok(name.clone()));
            if !name.is_empty() {
                let key = ObjectKey::new_segment(&name, &name).expect("segment key");
                proptest::prop_assert_eq!(ObjectKey::parse(key.path()), Ok(key));
            }
        }

        #[test]
        fn unescape_never_panics(segment in "[!-~]{0,20}") {
            let _ = unescape_name(&segment);
        }
    }

    #[test]
    fn unescape_rejects_non_canonical_forms() {
        for bad in ["!", "!4", "!zz", "!2e", "!41", "a.b", "a%2E"] {
            assert!(unescape_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn keys_parse_back() {
        let batch = ObjectKey::new_batch("g1").expect("batch");
        assert_eq!(batch.path().as_ref(), format!("g1/batches/{}", batch.id()));
        assert_eq!(ObjectKey::parse(batch.path()), Ok(batch.clone()));

        let segment = ObjectKey::new_segment("g.1", "ORDERS.eu").expect("segment");
        assert_eq!(
            segment.path().as_ref(),
            format!("g!2E1/segments/ORDERS!2Eeu/{}", segment.id())
        );
        let parsed = ObjectKey::parse(segment.path()).expect("parse");
        assert_eq!(parsed.stream(), Some("ORDERS.eu"));
        assert_eq!(parsed.group(), "g.1");
        assert_eq!(parsed, segment);
    }

    #[test]
    fn parse_rejects_foreign_keys() {
        for key in [
            "g/batches",
            "g/other/01ARZ3NDEKTSV4RRFFQ69G5FAV",
            "g/batches/not-a-ulid",
            "g/batches/01arz3ndektsv4rrffq69g5fav",
            "g/segments/01ARZ3NDEKTSV4RRFFQ69G5FAV",
            "g/batches/01ARZ3NDEKTSV4RRFFQ69G5FAV/extra",
            "g.x/batches/01ARZ3NDEKTSV4RRFFQ69G5FAV",
        ] {
            assert!(ObjectKey::parse(&Path::from(key)).is_err(), "{key}");
        }
    }

    #[test]
    fn ids_are_strictly_increasing() {
        let mut previous = new_id();
        for _ in 0..10_000 {
            let next = new_id();
            assert!(next > previous);
            previous = next;
        }
    }

    #[test]
    fn empty_names_are_rejected() {
        assert_eq!(
            ObjectKey::new_batch(""),
            Err(KeyError::EmptyName { what: "group" })
        );
        assert!(ObjectKey::new_segment("g", "").is_err());
    }
}
