//! The subject rules (`infinistream_protocol::subject`) against nats-server 2.15's
//! `sublist.go`, and how the callers' rules differ.

use infinistream_protocol::jsapi::is_valid_asset_name;
use infinistream_protocol::subject::{
    is_literal, is_subset_match, is_valid_publish_subject, is_valid_subject, matches,
    subjects_collide,
};
use proptest::prelude::*;

/// What each caller accepts. nats-server applies a different rule per place:
/// - `SUB`, stream subjects, consumer filters, purge filters: `IsValidSubject`
///   (wildcards allowed);
/// - pedantic `PUB`, deliver subjects, republish destinations' prefixes: a valid
///   subject without wildcard tokens (`IsValidPublishSubject`);
/// - stream and consumer names are not subjects: `isValidAssetName` refuses `.`, `*`,
///   `>` anywhere, while a subject allows `*` and `>` inside a longer token.
#[test]
fn callers_differ() {
    // (value, subscription/stream subject, publish/deliver subject, name)
    let cases = [
        ("orders", true, true, true),
        ("orders.eu", true, true, false),
        ("orders.*", true, false, false),
        ("orders.>", true, false, false),
        ("orders.a*b", true, true, false),
        ("a*b", true, true, false),
        ("orders..eu", false, false, false),
        ("orders eu", false, false, false),
        ("orders.>.eu", false, false, false),
        ("", false, false, false),
    ];
    for (value, sub, publish, name) in cases {
        assert_eq!(is_valid_subject(value), sub, "subscription {value:?}");
        assert_eq!(
            is_valid_publish_subject(value),
            publish,
            "publish {value:?}"
        );
        assert_eq!(is_valid_asset_name(value), name, "name {value:?}");
    }
}

/// The three copies this module replaced disagreed here: one refused any Unicode
/// whitespace and subjects over 4096 bytes, one refused NUL but allowed `\f`, one
/// allowed NUL and refused `\f`. nats-server refuses exactly `' ' \t \n \r \f`.
#[test]
fn whitespace_is_nats_servers() {
    for bad in ["a b", "a\tb", "a\nb", "a\rb", "a\u{c}b"] {
        assert!(!is_valid_subject(bad), "{bad:?}");
    }
    for ok in ["a\0b", "a\u{b}b", "a\u{a0}b", "ü.ö"] {
        assert!(is_valid_subject(ok), "{ok:?}");
    }
    assert!(is_valid_subject("a.".repeat(4000) + "b"));
}

#[test]
fn relations() {
    assert!(subjects_collide("a.*", "a.b"));
    assert!(subjects_collide("a.>", "*.b.c"));
    assert!(subjects_collide("a.*.c", "a.b.*"));
    assert!(!subjects_collide("a.*", "a.b.c"));
    assert!(!subjects_collide("a.>", "a"));
    assert!(!subjects_collide("a.b", "a.c"));
    assert!(is_subset_match("a.b", "a.*"));
    assert!(is_subset_match("a.*.c", "a.>"));
    assert!(!is_subset_match("a.*", "a.b"));
    assert!(!is_subset_match("a.>", "a.*"));
    assert!(matches("$KV.b.>", "$KV.b.k.x"));
    assert!(!matches("$KV.b.*", "$KV.b.k.x"));
    assert!(matches("a.b".as_bytes(), bytes::Bytes::from_static(b"a.b")));
}

fn token() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("a".to_owned()),
        Just("b".to_owned()),
        Just("*".to_owned())
    ]
}

fn filter() -> impl Strategy<Value = String> {
    (prop::collection::vec(token(), 1..4), any::<bool>()).prop_map(|(mut t, fwc)| {
        if fwc {
            t.push(">".into());
        }
        t.join(".")
    })
}

fn literal() -> impl Strategy<Value = String> {
    prop::collection::vec(prop_oneof![Just("a"), Just("b")], 1..6).prop_map(|t| t.join("."))
}

/// Any token, including the ones that make a subject invalid.
fn any_token() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("*".to_owned()),
        Just(">".to_owned()),
        Just("a b".to_owned()),
        Just("x\u{c}".to_owned()),
        Just("a*".to_owned()),
        "[a-c]{1,3}",
    ]
}

proptest! {
    /// `IsValidSubject` restated: every token non-empty and free of whitespace, and
    /// `>` only as the last token.
    #[test]
    fn validity_is_the_token_rule(toks in prop::collection::vec(any_token(), 1..6)) {
        let subject = toks.join(".");
        let expected = toks.iter().all(|t| !t.is_empty() && !t.contains([' ', '\u{c}']))
            && toks.iter().position(|t| t == ">").is_none_or(|i| i + 1 == toks.len());
        prop_assert_eq!(is_valid_subject(&subject), expected);
        prop_assert_eq!(
            is_valid_publish_subject(&subject),
            expected && toks.iter().all(|t| t != "*" && t != ">")
        );
        prop_assert_eq!(is_literal(&subject), toks.iter().all(|t| t != "*" && t != ">"));
    }

    #[test]
    fn collide_is_symmetric(a in filter(), b in filter()) {
        prop_assert_eq!(subjects_collide(&a, &b), subjects_collide(&b, &a));
    }

    #[test]
    fn literal_collision_is_matching(f in filter(), s in literal()) {
        prop_assert_eq!(subjects_collide(&f, &s), matches(&f, &s));
        prop_assert_eq!(is_subset_match(&s, &f), matches(&f, &s));
    }

    #[test]
    fn subset_implies_every_match(a in filter(), b in filter(), s in literal()) {
        if is_subset_match(&a, &b) && matches(&a, &s) {
            prop_assert!(matches(&b, &s));
        }
    }

    #[test]
    fn common_match_implies_collision(a in filter(), b in filter(), s in literal()) {
        if matches(&a, &s) && matches(&b, &s) {
            prop_assert!(subjects_collide(&a, &b));
        }
    }
}
