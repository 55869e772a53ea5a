//! Which stream owns which subjects, for the overlap check on stream create and
//! update: literal subjects in a hash map, wildcard subjects in a list. A stream with
//! literal subjects (the common case) is checked in O(its subjects + wildcard
//! subjects of other streams), not against every stream of the group. Streams of
//! different accounts never overlap (each account has its own subject space): only
//! owners in the account of the checked stream's id count.

use std::collections::HashMap;

use infinistream_proto::domain::stream_account;
use infinistream_protocol::subject;

/// The subjects of a group's streams.
#[derive(Debug, Default)]
pub(super) struct SubjectIndex {
    /// Literal subject → the streams with it (one, unless a stored state holds
    /// streams that overlap).
    literal: HashMap<String, Vec<String>>,
    /// (wildcard subject, stream).
    wild: Vec<(String, String)>,
}

impl SubjectIndex {
    /// Records `subjects` as `stream`'s.
    pub(super) fn add(&mut self, stream: &str, subjects: &[String]) {
        for s in subjects {
            if subject::is_literal(s) {
                let owners = self.literal.entry(s.clone()).or_default();
                if !owners.iter().any(|o| o == stream) {
                    owners.push(stream.to_owned());
                }
            } else if !self.wild.iter().any(|(w, o)| w == s && o == stream) {
                self.wild.push((s.clone(), stream.to_owned()));
            }
        }
    }

    /// Forgets `subjects` as `stream`'s.
    pub(super) fn remove(&mut self, stream: &str, subjects: &[String]) {
        for s in subjects {
            if subject::is_literal(s) {
                if let Some(owners) = self.literal.get_mut(s.as_str()) {
                    owners.retain(|o| o != stream);
                    if owners.is_empty() {
                        self.literal.remove(s.as_str());
                    }
                }
            } else {
                self.wild.retain(|(w, o)| !(w == s && o == stream));
            }
        }
    }

    /// Whether any of `subjects` collides with a subject of a stream other than
    /// `stream` in `stream`'s account (nats-server's subject overlap check).
    pub(super) fn overlaps(&self, stream: &str, subjects: &[String]) -> bool {
        let account = stream_account(stream);
        let rival = |o: &String| o != stream && stream_account(o) == account;
        let other = |owners: &[String]| owners.iter().any(rival);
        subjects.iter().any(|s| {
            let with_literal = if subject::is_literal(s) {
                // Two literals collide only when equal.
                self.literal.get(s.as_str()).is_some_and(|o| other(o))
            } else {
                self.literal
                    .iter()
                    .any(|(l, o)| other(o) && subject::subjects_collide(l, s))
            };
            with_literal
                || self
                    .wild
                    .iter()
                    .any(|(w, o)| rival(o) && subject::subjects_collide(w, s))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::SubjectIndex;

    fn subjects(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| (*x).to_owned()).collect()
    }

    /// The index answers as comparing with every other stream's subjects would.
    #[test]
    fn overlaps_as_a_pairwise_comparison_would() {
        let streams = [
            ("A", subjects(&["orders.new", "orders.paid"])),
            ("B", subjects(&["logs.*.error"])),
            ("C", subjects(&["metrics.>"])),
            ("D", subjects(&["a*b.c"])),
        ];
        let mut ix = SubjectIndex::default();
        for (name, subs) in &streams {
            ix.add(name, subs);
        }
        let probes = [
            "orders.new",
            "orders.*",
            "orders.>",
            ">",
            "orders",
            "logs.web.error",
            "logs.web.info",
            "logs.>",
            "metrics",
            "metrics.cpu.host1",
            "*.cpu.host1",
            "a*b.c",
            "a*b.*",
            "axb.c",
        ];
        for probe in probes {
            let probe = subjects(&[probe]);
            for me in ["A", "B", "C", "D", "new"] {
                let pairwise = streams.iter().any(|(name, subs)| {
                    *name != me
                        && subs.iter().any(|a| {
                            probe
                                .iter()
                                .any(|b| infinistream_protocol::subject::subjects_collide(a, b))
                        })
                });
                assert_eq!(ix.overlaps(me, &probe), pairwise, "{probe:?} as {me}");
            }
        }
    }

    /// Removing a stream frees its subjects; an update re-adds the new set.
    #[test]
    fn removal_and_update_free_subjects() {
        let mut ix = SubjectIndex::default();
        let a = subjects(&["x.1", "x.*"]);
        ix.add("A", &a);
        assert!(ix.overlaps("B", &subjects(&["x.1"])));
        assert!(ix.overlaps("B", &subjects(&["x.2"])));
        assert!(!ix.overlaps("A", &subjects(&["x.1", "x.2"])));
        ix.remove("A", &a);
        assert!(!ix.overlaps("B", &subjects(&["x.1"])));
        assert!(!ix.overlaps("B", &subjects(&[">"])));
        let a2 = subjects(&["y.1"]);
        ix.add("A", &a2);
        assert!(ix.overlaps("B", &subjects(&["y.*"])));
        assert!(!ix.overlaps("B", &subjects(&["x.1"])));
    }

    /// Two accounts' streams may claim the same subjects; within an account they
    /// still overlap.
    #[test]
    fn accounts_overlap_only_within_themselves() {
        let mut ix = SubjectIndex::default();
        ix.add("A.ORDERS", &subjects(&["orders.>"]));
        ix.add("ORDERS", &subjects(&["orders.new"]));
        assert!(!ix.overlaps("B.ORDERS", &subjects(&["orders.>"])));
        assert!(!ix.overlaps("B.X", &subjects(&["orders.new"])));
        assert!(ix.overlaps("A.OTHER", &subjects(&["orders.new"])));
        assert!(ix.overlaps("OTHER", &subjects(&["orders.*"])));
        assert!(!ix.overlaps("A.ORDERS", &subjects(&["orders.>"])));
    }

    /// Streams stored with overlapping subjects (an older state) each keep their own
    /// claim: removing one leaves the other's.
    #[test]
    fn shared_literal_keeps_every_owner() {
        let mut ix = SubjectIndex::default();
        let s = subjects(&["k.1"]);
        ix.add("A", &s);
        ix.add("B", &s);
        assert!(ix.overlaps("A", &s));
        ix.remove("B", &s);
        assert!(!ix.overlaps("A", &s));
        assert!(ix.overlaps("C", &s));
    }
}
