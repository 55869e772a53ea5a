//! NATS subject rules the control plane needs: validity, wildcard matching and
//! overlap between subject filters.
//!
//! Kept here (pure, layer 0) because checked domain types validate subjects on
//! receipt and the control plane matches filters for purge and overlap rejection.

/// Whether `s` is a well-formed subject; with `wildcards`, `*` tokens and a final `>`
/// are allowed.
pub fn is_valid(s: &str, wildcards: bool) -> bool {
    if s.is_empty() || s.len() > 4096 {
        return false;
    }
    let tokens: Vec<&str> = s.split('.').collect();
    let n = tokens.len();
    for (i, t) in tokens.iter().enumerate() {
        if t.is_empty() || t.chars().any(|c| c.is_whitespace()) {
            return false;
        }
        if *t == "*" || *t == ">" {
            if !wildcards || (*t == ">" && i + 1 != n) {
                return false;
            }
        } else if t.contains('*') || t.contains('>') {
            // Wildcard characters inside a token are literal in NATS; allow them only
            // in literal subjects' tokens when not standalone. nats-server accepts
            // them, so we do too.
            continue;
        }
    }
    true
}

/// Whether the literal subject `subject` matches `filter` (which may hold wildcards).
pub fn matches(filter: &str, subject: &str) -> bool {
    let mut f = filter.split('.');
    let mut s = subject.split('.');
    loop {
        match (f.next(), s.next()) {
            (Some(">"), Some(_)) => return true,
            (Some("*"), Some(_)) => {}
            (Some(a), Some(b)) if a == b => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// Whether some literal subject matches both filters.
pub fn overlap(a: &str, b: &str) -> bool {
    let mut x = a.split('.');
    let mut y = b.split('.');
    loop {
        match (x.next(), y.next()) {
            (Some(">"), Some(_)) | (Some(_), Some(">")) => return true,
            (Some("*"), Some(_)) | (Some(_), Some("*")) => {}
            (Some(p), Some(q)) if p == q => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn validity() {
        assert!(is_valid("orders.eu", false));
        assert!(is_valid("orders.*", true));
        assert!(is_valid("orders.>", true));
        assert!(!is_valid("orders.*", false));
        assert!(!is_valid("orders.>.x", true));
        assert!(!is_valid("orders..x", true));
        assert!(!is_valid("", true));
        assert!(!is_valid("a b", true));
    }

    #[test]
    fn matching_and_overlap() {
        assert!(matches("a.*", "a.b"));
        assert!(!matches("a.*", "a.b.c"));
        assert!(matches("a.>", "a.b.c"));
        assert!(!matches("a.>", "a"));
        assert!(matches("a.b", "a.b"));
        assert!(overlap("a.*", "a.b"));
        assert!(overlap("a.>", "*.b.c"));
        assert!(!overlap("a.*", "b.*"));
        assert!(!overlap("a.*", "a.b.c"));
        assert!(overlap(">", "x"));
    }
}
