//! A stream's subjects compiled for the commit-time check that a record's subject is
//! still the stream's. An agent captures a publish by its own copy of the catalog,
//! which reaches it through the stream watch a moment after a stream update; in that
//! moment it may capture a subject the stream just dropped. The commit refuses such a
//! record instead of storing it (see docs/reliability.md).

use std::collections::HashSet;

use infinistream_protocol::subject;

/// Literal subjects in a hash set, wildcard subjects in a list: a record is checked
/// in O(1) plus the stream's wildcard subjects, however many literals it has.
#[derive(Debug, Default)]
pub(crate) struct SubjectFilter {
    literal: HashSet<String>,
    wild: Vec<String>,
}

impl SubjectFilter {
    pub fn new(subjects: &[String]) -> SubjectFilter {
        let mut f = SubjectFilter::default();
        for s in subjects {
            if subject::is_literal(s) {
                f.literal.insert(s.clone());
            } else if !f.wild.contains(s) {
                f.wild.push(s.clone());
            }
        }
        f
    }

    /// Compiles `subjects` again unless they are the ones it holds (checked once per
    /// committed chunk, so an update of the stream's config is seen by its next commit
    /// however the config was replaced).
    pub fn refresh(&mut self, subjects: &[String]) {
        if !self.holds(subjects) {
            *self = SubjectFilter::new(subjects);
        }
    }

    /// Whether it holds exactly `subjects` (a config's subjects are distinct).
    fn holds(&self, subjects: &[String]) -> bool {
        subjects.len() == self.literal.len() + self.wild.len()
            && subjects.iter().all(|s| {
                if subject::is_literal(s) {
                    self.literal.contains(s.as_str())
                } else {
                    self.wild.contains(s)
                }
            })
    }

    /// Whether a publish on `subject` is the stream's.
    pub fn covers(&self, subject: &str) -> bool {
        self.literal.contains(subject) || self.wild.iter().any(|w| subject::matches(w, subject))
    }
}

#[cfg(test)]
mod tests {
    use super::SubjectFilter;

    fn subjects(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| (*x).to_owned()).collect()
    }

    #[test]
    fn covers_literal_and_wildcard_subjects() {
        let f = SubjectFilter::new(&subjects(&["a", "b.*", "c.>"]));
        for s in ["a", "b.1", "c.1", "c.1.2"] {
            assert!(f.covers(s), "{s}");
        }
        for s in ["a.1", "b", "b.1.2", "c", "d"] {
            assert!(!f.covers(s), "{s}");
        }
    }

    #[test]
    fn refresh_follows_a_changed_config() {
        let mut f = SubjectFilter::new(&subjects(&["a", "b"]));
        f.refresh(&subjects(&["b", "a"]));
        assert!(f.covers("a") && f.covers("b"));
        f.refresh(&subjects(&["a"]));
        assert!(f.covers("a") && !f.covers("b"));
        f.refresh(&subjects(&["a", "x.*"]));
        assert!(f.covers("x.1") && !f.covers("b"));
        f.refresh(&subjects(&["a", "y.*"]));
        assert!(f.covers("y.1") && !f.covers("x.1"));
        // Same count, one literal swapped for another.
        f.refresh(&subjects(&["c", "y.*"]));
        assert!(f.covers("c") && !f.covers("a"));
    }
}
