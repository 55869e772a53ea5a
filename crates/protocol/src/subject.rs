//! NATS subject rules, the one implementation every crate uses.
//!
//! Subjects are `.`-separated tokens. A token `*` matches exactly one token and a final
//! token `>` matches one or more; `*` or `>` inside a longer token (`a*b`) is an ordinary
//! character, as in nats-server. These functions follow nats-server 2.15's
//! `server/sublist.go` and the stream checks in `server/stream.go`:
//!
//! | rule | nats-server | used for |
//! |---|---|---|
//! | [`is_valid_subject`] | `IsValidSubject` | `SUB`, stream subjects, consumer filters, purge filters |
//! | [`is_valid_publish_subject`] | `IsValidPublishSubject` | pedantic `PUB`, deliver subjects, republish and API prefixes |
//! | [`is_literal`] | `subjectIsLiteral` | fast paths that look one subject up instead of scanning |
//! | [`matches`] | the sublist's `Match` | routing a published subject to subscriptions and filters |
//! | [`subjects_collide`] | `SubjectsCollide` | overlapping stream subjects, work-queue filters |
//! | [`is_subset_match`] | `subjectIsSubsetMatch` | one filter inside another (delivery cycles) |
//!
//! Everything takes bytes (`&str`, `&[u8]`, `Bytes`, …) so the broker's hot path needs
//! no UTF-8 check and the JetStream checks need no conversion. [`Subject`] carries a
//! published subject from the broker to its internal handlers (the gateway's capture,
//! the JetStream API) as shared text: checked for UTF-8 once, never copied.

use bytes::Bytes;

/// Token separator.
pub const SEP: u8 = b'.';
/// Single-token wildcard.
pub const PWC: &[u8] = b"*";
/// Tail wildcard (last token only).
pub const FWC: &[u8] = b">";

/// Whitespace nats-server refuses inside a subject (`"\t\n\f\r "`).
#[inline]
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0c)
}

#[inline]
fn tokens(subject: &[u8]) -> std::slice::Split<'_, u8, impl FnMut(&u8) -> bool> {
    subject.split(|b| *b == SEP)
}

/// nats-server's `IsValidSubject`: non-empty, no empty token, no whitespace
/// (`' '`, `\t`, `\n`, `\r`, `\f`), nothing after a `>` token. Wildcards are allowed;
/// other bytes (NUL, non-ASCII) are, too, as in nats-server.
pub fn is_valid_subject(subject: impl AsRef<[u8]>) -> bool {
    let subject = subject.as_ref();
    if subject.is_empty() {
        return false;
    }
    let mut after_fwc = false;
    for t in tokens(subject) {
        if t.is_empty() || after_fwc || t.iter().any(|b| is_space(*b)) {
            return false;
        }
        after_fwc = t == FWC;
    }
    true
}

/// nats-server's `IsValidPublishSubject`: a valid subject without wildcard tokens.
pub fn is_valid_publish_subject(subject: impl AsRef<[u8]>) -> bool {
    let subject = subject.as_ref();
    is_valid_subject(subject) && is_literal(subject)
}

/// nats-server's `subjectIsLiteral`: no token is `*` or `>`. Does not check validity.
#[inline]
pub fn is_literal(subject: impl AsRef<[u8]>) -> bool {
    let subject = subject.as_ref();
    // Fast path: no wildcard byte at all.
    if memchr::memchr2(b'*', b'>', subject).is_none() {
        return true;
    }
    !tokens(subject).any(|t| t == PWC || t == FWC)
}

/// A valid queue group name: non-empty, no whitespace or NUL.
pub fn is_valid_queue(queue: &[u8]) -> bool {
    !queue.is_empty() && !queue.iter().any(|b| is_space(*b) || *b == 0)
}

/// Whether the published `subject` matches `filter` (which may hold wildcards).
///
/// As in nats-server's subscription index, only the filter's tokens are wildcards: a
/// `*` token in the published subject is an ordinary token (a non-pedantic client may
/// publish to `a.*`; `a.*` and `a.>` filters receive it, `a.b` does not).
pub fn matches(filter: impl AsRef<[u8]>, subject: impl AsRef<[u8]>) -> bool {
    let mut f = tokens(filter.as_ref());
    let mut s = tokens(subject.as_ref());
    loop {
        match (f.next(), s.next()) {
            (None, None) => return true,
            (Some(ft), Some(_)) if ft == FWC => return true,
            (Some(ft), Some(st)) if ft == PWC || ft == st => {}
            _ => return false,
        }
    }
}

/// Token kinds of a subject, as nats-server's `analyzeTokens` counts them.
fn wildcards(toks: &[&[u8]]) -> (bool, bool) {
    let pwc = toks.contains(&PWC);
    let fwc = toks.contains(&FWC);
    (pwc, fwc)
}

/// nats-server's `SubjectsCollide`: whether some literal subject could match both
/// `a` and `b` (stream subjects may not collide; work-queue filters neither).
///
/// Where both sides hold wildcards nats-server compares tokens by their first byte
/// (`tokensCanMatch`), so a token starting with `*` or `>` collides with anything;
/// that is kept, since it decides which stream configs are refused.
pub fn subjects_collide(a: impl AsRef<[u8]>, b: impl AsRef<[u8]>) -> bool {
    let (a, b) = (a.as_ref(), b.as_ref());
    if a == b {
        return true;
    }
    // Two literals (the common case, checked against every other stream's subjects on
    // each stream create) collide only when equal: answer without tokenizing.
    let maybe_wild = |s: &[u8]| s.iter().any(|&c| c == b'*' || c == b'>');
    if !maybe_wild(a) && !maybe_wild(b) {
        return false;
    }
    let ta: Vec<&[u8]> = tokens(a).collect();
    let tb: Vec<&[u8]> = tokens(b).collect();
    let (pwc_a, fwc_a) = wildcards(&ta);
    let (pwc_b, fwc_b) = wildcards(&tb);
    let literal_a = !(pwc_a || fwc_a);
    let literal_b = !(pwc_b || fwc_b);
    match (literal_a, literal_b) {
        (true, true) => return false, // equal literals returned above
        (true, false) => return subset_tokens(&ta, &tb),
        (false, true) => return subset_tokens(&tb, &ta),
        (false, false) => {}
    }
    if ta.len() != tb.len() {
        // Only a `>` lets different lengths meet, and it must be on the shorter side.
        let shorter_has_fwc = if ta.len() < tb.len() { fwc_a } else { fwc_b };
        if !shorter_has_fwc {
            return false;
        }
    }
    ta.iter()
        .zip(&tb)
        .all(|(x, y)| match (x.first(), y.first()) {
            (Some(&cx), Some(&cy)) => {
                matches!(cx, b'*' | b'>') || matches!(cy, b'*' | b'>') || x == y
            }
            _ => false,
        })
}

/// nats-server's `subjectIsSubsetMatch`: whether every subject `subject` stands for is
/// also matched by `test` (both may hold wildcards): `a.b` and `a.*` are inside `a.>`,
/// `a.>` is not inside `a.*`.
pub fn is_subset_match(subject: impl AsRef<[u8]>, test: impl AsRef<[u8]>) -> bool {
    let ts: Vec<&[u8]> = tokens(subject.as_ref()).collect();
    let tt: Vec<&[u8]> = tokens(test.as_ref()).collect();
    subset_tokens(&ts, &tt)
}

fn subset_tokens(subject: &[&[u8]], test: &[&[u8]]) -> bool {
    for (i, t) in test.iter().enumerate() {
        let Some(s) = subject.get(i) else {
            return false;
        };
        if t.is_empty() {
            return false;
        }
        if *t == FWC {
            return true;
        }
        if s.is_empty() || *s == FWC {
            return false;
        }
        if *s == PWC {
            if *t != PWC {
                return false;
            }
        } else if *t != PWC && s != t {
            return false;
        }
    }
    subject.len() == test.len()
}

/// A subject as it travels a message path (the broker's internal deliveries, the
/// gateway's capture): UTF-8 text in shared [`Bytes`], checked once where it is made,
/// so cloning it is a reference count and passing it on copies nothing.
///
/// It holds what was published; the rules above say whether that is a valid subject.
/// Bytes that are not UTF-8 are replaced as `String::from_utf8_lossy` does (NATS
/// subjects are text; the broker delivered them so before this type existed).
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Subject(bytestring::ByteString);

impl Subject {
    /// The subject in `bytes`: shared without a copy when it is UTF-8, else copied
    /// with invalid sequences replaced.
    pub fn from_bytes(bytes: Bytes) -> Subject {
        match bytestring::ByteString::try_from(bytes.clone()) {
            Ok(text) => Subject(text),
            Err(_) => Subject(String::from_utf8_lossy(&bytes).into_owned().into()),
        }
    }

    /// A subject known when compiling.
    pub const fn from_static(subject: &'static str) -> Subject {
        Subject(bytestring::ByteString::from_static(subject))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The subject's bytes, shared.
    pub fn as_bytes(&self) -> &Bytes {
        self.0.as_bytes()
    }

    /// The subject's bytes, shared.
    pub fn into_bytes(self) -> Bytes {
        self.0.into_bytes()
    }
}

impl std::ops::Deref for Subject {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for Subject {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl AsRef<[u8]> for Subject {
    fn as_ref(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl std::borrow::Borrow<str> for Subject {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl From<&str> for Subject {
    fn from(subject: &str) -> Subject {
        Subject(subject.into())
    }
}

impl From<String> for Subject {
    fn from(subject: String) -> Subject {
        Subject(subject.into())
    }
}

impl From<Subject> for String {
    fn from(subject: Subject) -> String {
        subject.as_str().to_owned()
    }
}

impl PartialEq<str> for Subject {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Subject {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl std::fmt::Display for Subject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::fmt::Debug for Subject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.as_str(), f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subject_shares_utf8_bytes_and_replaces_the_rest() {
        let bytes = Bytes::from_static(b"orders.eu");
        let subject = Subject::from_bytes(bytes.clone());
        assert_eq!(subject, "orders.eu");
        assert_eq!(
            subject.as_bytes().as_ptr(),
            bytes.as_ptr(),
            "shared, not copied"
        );
        assert_eq!(subject.clone().into_bytes().as_ptr(), bytes.as_ptr());
        let lossy = Subject::from_bytes(Bytes::from_static(b"a.\xff"));
        assert_eq!(lossy.as_str(), String::from_utf8_lossy(b"a.\xff"));
        assert_eq!(format!("{subject} {subject:?}"), "orders.eu \"orders.eu\"");
        assert!(matches(">", &subject));
    }

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
            "a.b*c",
            "a\0b",
            "a\u{b}b",
            "ünï.cödé",
        ] {
            assert!(is_valid_subject(ok), "{ok:?}");
        }
        for bad in [
            "", ".", "a.", ".a", "a..b", "a.>.b", ">.a", "a b", "a\tb", "a\nb", "a\rb", "a\u{c}b",
        ] {
            assert!(!is_valid_subject(bad), "{bad:?}");
        }
    }

    #[test]
    fn publish_subjects_are_literal() {
        assert!(is_valid_publish_subject("a.b"));
        assert!(is_valid_publish_subject("a*b.c>"));
        assert!(!is_valid_publish_subject("a.*"));
        assert!(!is_valid_publish_subject("a.>"));
        assert!(!is_valid_publish_subject("a..b"));
        assert!(is_literal("a..b"), "is_literal does not check validity");
        assert!(!is_literal("*"));
        assert!(is_valid_queue(b"q1"));
        assert!(!is_valid_queue(b"q 1"));
        assert!(!is_valid_queue(b""));
    }

    #[test]
    fn matches_wildcards() {
        assert!(matches("a.b", "a.b"));
        assert!(!matches("a.b", "a.c"));
        assert!(matches("a.*", "a.b"));
        assert!(!matches("a.*", "a.b.c"));
        assert!(!matches("a.*", "a"));
        assert!(matches("a.>", "a.b.c"));
        assert!(!matches("a.>", "a"));
        assert!(matches(">", "x"));
        assert!(matches("*.*.c", "a.b.c"));
        assert!(!matches("a.b.c", "a.b"));
        // A published `*` token is an ordinary token.
        assert!(matches("a.*", "a.*"));
        assert!(!matches("a.b", "a.*"));
    }

    /// nats-server compares tokens by their first byte when both sides hold wildcards.
    #[test]
    fn collision_quirk_is_kept() {
        assert!(subjects_collide("a.*x.>", "a.b.*"));
        assert!(subjects_collide("a.*.>", "a.>"));
        assert!(!subjects_collide("a.b.>", "a.*"));
        assert!(is_subset_match("a.*", "a.*"));
        assert!(!is_subset_match("a", "a.>"));
    }
}
