//! Wildcard relations used by stream/consumer checks: validity, collision, subset.

use infinistream_protocol::jsapi::subject::{
    is_valid_literal_subject, is_valid_subject, subject_is_subset_match, subject_matches,
    subjects_collide,
};
use proptest::prelude::*;

#[test]
fn validity() {
    for ok in ["a", "a.b", "a.*", "a.>", "*", ">", "$KV.b.>", "a.b*c"] {
        assert!(is_valid_subject(ok), "{ok}");
    }
    for bad in ["", "a..b", ".a", "a.", "a.>.b", "a b", "a.\t"] {
        assert!(!is_valid_subject(bad), "{bad:?}");
    }
    assert!(is_valid_literal_subject("a.b"));
    assert!(!is_valid_literal_subject("a.*"));
}

#[test]
fn relations() {
    assert!(subjects_collide("a.*", "a.b"));
    assert!(subjects_collide("a.>", "*.b.c"));
    assert!(subjects_collide("a.*.c", "a.b.*"));
    assert!(!subjects_collide("a.*", "a.b.c"));
    assert!(!subjects_collide("a.>", "a"));
    assert!(!subjects_collide("a.b", "a.c"));
    assert!(subject_is_subset_match("a.b", "a.*"));
    assert!(subject_is_subset_match("a.*.c", "a.>"));
    assert!(!subject_is_subset_match("a.*", "a.b"));
    assert!(!subject_is_subset_match("a.>", "a.*"));
    assert!(subject_matches("$KV.b.>", "$KV.b.k.x"));
    assert!(!subject_matches("$KV.b.*", "$KV.b.k.x"));
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

proptest! {
    #[test]
    fn collide_is_symmetric(a in filter(), b in filter()) {
        prop_assert_eq!(subjects_collide(&a, &b), subjects_collide(&b, &a));
    }

    #[test]
    fn literal_collision_is_matching(f in filter(), s in literal()) {
        prop_assert_eq!(subjects_collide(&f, &s), subject_matches(&f, &s));
    }

    #[test]
    fn subset_implies_every_match(a in filter(), b in filter(), s in literal()) {
        if subject_is_subset_match(&a, &b) && subject_matches(&a, &s) {
            prop_assert!(subject_matches(&b, &s));
        }
    }

    #[test]
    fn common_match_implies_collision(a in filter(), b in filter(), s in literal()) {
        if subject_matches(&a, &s) && subject_matches(&b, &s) {
            prop_assert!(subjects_collide(&a, &b));
        }
    }
}
