//! Subject validation and wildcard matching.
//!
//! Subjects are dot-separated tokens. In subscriptions a token may be `*` (exactly one
//! token) or, as the last token, `>` (one or more tokens); wildcard characters inside a
//! longer token are ordinary characters, as in nats-server. Publish subjects carry no
//! wildcard tokens. Everything works on bytes so the broker never needs UTF-8 checks
//! on its hot path.

/// Token separator.
pub const SEP: u8 = b'.';
/// Single-token wildcard.
pub const PWC: &[u8] = b"*";
/// Tail wildcard (last token only).
pub const FWC: &[u8] = b">";

#[inline]
fn bad_char(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n' | 0)
}

/// A valid subscription subject: non-empty tokens, no whitespace, `>` only last.
pub fn is_valid_subject(subject: &[u8]) -> bool {
    if subject.is_empty() {
        return false;
    }
    let mut tokens = subject.split(|b| *b == SEP).peekable();
    while let Some(t) = tokens.next() {
        if t.is_empty() || t.iter().any(|b| bad_char(*b)) {
            return false;
        }
        if t == FWC && tokens.peek().is_some() {
            return false;
        }
    }
    true
}

/// A valid publish subject: a valid subject without wildcard tokens.
pub fn is_valid_publish_subject(subject: &[u8]) -> bool {
    is_valid_subject(subject) && is_literal(subject)
}

/// True when no token is `*` or `>` (the subject matches only itself).
#[inline]
pub fn is_literal(subject: &[u8]) -> bool {
    // Fast path: no wildcard byte at all.
    if memchr::memchr2(b'*', b'>', subject).is_none() {
        return true;
    }
    !subject.split(|b| *b == SEP).any(|t| t == PWC || t == FWC)
}

/// A valid queue group name: non-empty, no whitespace.
pub fn is_valid_queue(queue: &[u8]) -> bool {
    !queue.is_empty() && !queue.iter().any(|b| bad_char(*b))
}

/// Whether the literal `subject` matches the subscription `pattern`.
pub fn matches(pattern: &[u8], subject: &[u8]) -> bool {
    let mut p = pattern.split(|b| *b == SEP);
    let mut s = subject.split(|b| *b == SEP);
    loop {
        match (p.next(), s.next()) {
            (None, None) => return true,
            (Some(pt), Some(_)) if pt == FWC => return true,
            (Some(pt), Some(st)) => {
                if pt != PWC && pt != st {
                    return false;
                }
            }
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates_subjects() {
        for ok in [
            "a",
            "a.b",
            "a.*",
            "*.b",
            "a.>",
            ">",
            "a*b.c",
            "$JS.API.>",
            "_INBOX.x.y",
        ] {
            assert!(is_valid_subject(ok.as_bytes()), "{ok}");
        }
        for bad in ["", ".", "a.", ".a", "a..b", "a.>.b", "a b", "a\tb", ">.a"] {
            assert!(!is_valid_subject(bad.as_bytes()), "{bad}");
        }
        assert!(is_valid_publish_subject(b"a.b"));
        assert!(is_valid_publish_subject(b"a*b.c>"));
        assert!(!is_valid_publish_subject(b"a.*"));
        assert!(!is_valid_publish_subject(b"a.>"));
        assert!(is_valid_queue(b"q1"));
        assert!(!is_valid_queue(b"q 1"));
    }

    #[test]
    fn matches_wildcards() {
        assert!(matches(b"a.b", b"a.b"));
        assert!(!matches(b"a.b", b"a.c"));
        assert!(matches(b"a.*", b"a.b"));
        assert!(!matches(b"a.*", b"a.b.c"));
        assert!(!matches(b"a.*", b"a"));
        assert!(matches(b"a.>", b"a.b.c"));
        assert!(!matches(b"a.>", b"a"));
        assert!(matches(b">", b"x"));
        assert!(matches(b"*.*.c", b"a.b.c"));
        assert!(!matches(b"a.b.c", b"a.b"));
    }
}
