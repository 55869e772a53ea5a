//! Subject validity and wildcard relations as nats-server applies them to configs.
//!
//! Stream and consumer checks need three relations between subjects with `*` and `>`
//! wildcards: validity (`IsValidSubject`), collision (two filters can match one literal
//! subject: stream subjects may not overlap) and subset (every subject one filter
//! matches, the other matches too: a delivery subject inside a stream's subjects
//! forms a cycle). They live here, beside the configs, rather than in the codec,
//! because they decide JetStream API errors.

/// A subject or filter token iterator.
fn tokens(subject: &str) -> std::str::Split<'_, char> {
    subject.split('.')
}

/// nats-server's `IsValidSubject`: non-empty tokens, no whitespace, `>` only last.
/// Wildcards are allowed (this validates filters as well as literal subjects).
pub fn is_valid_subject(subject: &str) -> bool {
    if subject.is_empty() {
        return false;
    }
    let mut seen_fwc = false;
    for token in tokens(subject) {
        if token.is_empty() || seen_fwc {
            return false;
        }
        if token
            .chars()
            .any(|c| matches!(c, ' ' | '\t' | '\n' | '\r' | '\u{c}'))
        {
            return false;
        }
        if token == ">" {
            seen_fwc = true;
        }
    }
    true
}

/// A valid subject without wildcard tokens (what a publish or a deliver subject must be).
pub fn is_valid_literal_subject(subject: &str) -> bool {
    is_valid_subject(subject) && is_literal(subject)
}

/// Whether `subject` has no `*` or `>` token.
pub fn is_literal(subject: &str) -> bool {
    tokens(subject).all(|t| t != "*" && t != ">")
}

/// Whether a literal `subject` is matched by `filter`.
pub fn subject_matches(filter: &str, subject: &str) -> bool {
    let mut f = tokens(filter);
    let mut s = tokens(subject);
    loop {
        match (f.next(), s.next()) {
            (None, None) => return true,
            (Some(">"), Some(_)) => return true,
            (Some("*"), Some(_)) => {}
            (Some(a), Some(b)) if a == b => {}
            _ => return false,
        }
    }
}

/// nats-server's `SubjectsCollide`: whether some literal subject matches both filters.
pub fn subjects_collide(a: &str, b: &str) -> bool {
    let mut ta = tokens(a);
    let mut tb = tokens(b);
    loop {
        match (ta.next(), tb.next()) {
            (None, None) => return true,
            (Some(">"), Some(_)) | (Some(_), Some(">")) => return true,
            (Some(x), Some(y)) if x == "*" || y == "*" || x == y => {}
            _ => return false,
        }
    }
}

/// nats-server's `subjectIsSubsetMatch`: whether every subject `subject` matches is also
/// matched by `test`.
pub fn subject_is_subset_match(subject: &str, test: &str) -> bool {
    let mut ts = tokens(subject);
    let mut tt = tokens(test);
    loop {
        match (ts.next(), tt.next()) {
            (None, None) => return true,
            (Some(_), Some(">")) => return true,
            (Some(">"), Some(_)) => return false,
            (Some(_), Some("*")) => {}
            (Some("*"), Some(_)) => return false,
            (Some(x), Some(y)) if x == y => {}
            _ => return false,
        }
    }
}
