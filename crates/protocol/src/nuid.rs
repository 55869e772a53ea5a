//! Identifiers in nats-server's base62 alphabet (`A-Za-z0-9`), as its nuid makes them:
//! advisory ids, pin ids and reply-subject tokens.

use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};

const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// `len` base62 characters of `seed` (least significant first).
pub fn base62(mut seed: u64, len: usize) -> String {
    let mut out = String::with_capacity(len);
    for _ in 0..len {
        out.push(char::from(ALPHABET[(seed % 62) as usize]));
        seed /= 62;
    }
    out
}

/// A new 22-character id, unique within the process and unpredictable across
/// processes (a counter hashed with the process's random hash keys).
pub fn unique() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut out = String::with_capacity(22);
    for half in 0..2u64 {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(n);
        h.write_u64(half);
        out.push_str(&base62(h.finish(), 11));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_base62_of_their_length_and_distinct() {
        assert_eq!(base62(0, 3), "000");
        assert_eq!(base62(61 + 62, 2), "z1");
        let token = base62(u64::MAX, 6);
        assert_eq!(token.len(), 6);
        assert!(token.chars().all(|c| c.is_ascii_alphanumeric()));
        let (a, b) = (unique(), unique());
        assert_eq!(a.len(), 22);
        assert!(a.bytes().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(a, b);
    }
}
