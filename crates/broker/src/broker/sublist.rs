//! The subscription index: which subscriptions a published subject reaches.
//!
//! Literal subscriptions (the common case: inboxes, stream subjects) sit in a hash map
//! keyed by subject, so a publish costs one lookup; wildcard subscriptions are few and
//! are checked token by token. Match results are cached: each connection's reader keeps
//! its own cache tagged with the index's generation, which every insert/remove bumps,
//! so a steady publisher reuses the previous result without taking any lock.
//!
//! Every subscription belongs to one account, and a match sees only the subscriptions
//! of the account it is made in (nats-server keeps one sublist per account; one index
//! whose entries carry their account gives the same answers, and the common case of a
//! single account pays one pointer comparison per candidate).

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use infinistream_protocol::subject;

use super::sub::Subscription;
use crate::auth::{AccountName, same_account};

/// Subscriptions a subject reaches: plain ones each get a copy, each queue group one.
#[derive(Debug, Default)]
pub(crate) struct MatchResult {
    pub plain: Vec<Arc<Subscription>>,
    pub groups: Vec<Vec<Arc<Subscription>>>,
}

impl MatchResult {
    pub fn is_empty(&self) -> bool {
        self.plain.is_empty() && self.groups.is_empty()
    }
}

#[derive(Debug, Default)]
pub(crate) struct Sublist {
    literal: HashMap<Bytes, Vec<Arc<Subscription>>>,
    wildcard: Vec<Arc<Subscription>>,
    count: usize,
    /// Announced subscriptions per (subject, queue): what peers are told about.
    interest: ClientInterest,
}

impl Sublist {
    pub fn len(&self) -> usize {
        self.count
    }

    /// Adds `sub`; true when it is an announced subscription (a client's, or a
    /// cluster-visible internal one) on a (subject, queue) no other had (peers are to
    /// be told).
    pub fn insert(&mut self, sub: Arc<Subscription>) -> bool {
        let announce = sub.is_announced() && self.interest.add(&sub);
        if subject::is_literal(&sub.subject) {
            self.literal
                .entry(sub.subject.clone())
                .or_default()
                .push(sub);
        } else {
            self.wildcard.push(sub);
        }
        self.count += 1;
        announce
    }

    /// The (account, subject, queue) keys announced subscriptions cover now.
    pub fn client_interest(&self) -> impl Iterator<Item = &InterestKey> {
        self.interest.keys()
    }

    /// Removes `sub`; `(removed, last)`: `last` when it was the last announced
    /// subscription on its (subject, queue) (peers are to be told).
    pub fn remove_announced(&mut self, sub: &Subscription) -> (bool, bool) {
        let removed = self.remove_entry(sub);
        let last = removed && sub.is_announced() && self.interest.remove(sub);
        (removed, last)
    }

    /// Removes `sub`; false when it was not in the index.
    pub fn remove(&mut self, sub: &Subscription) -> bool {
        self.remove_announced(sub).0
    }

    fn remove_entry(&mut self, sub: &Subscription) -> bool {
        let removed = if subject::is_literal(&sub.subject) {
            match self.literal.get_mut(&sub.subject) {
                Some(v) => {
                    let before = v.len();
                    v.retain(|s| s.id != sub.id);
                    let removed = v.len() != before;
                    if v.is_empty() {
                        self.literal.remove(&sub.subject);
                    }
                    removed
                }
                None => false,
            }
        } else {
            let before = self.wildcard.len();
            self.wildcard.retain(|s| s.id != sub.id);
            self.wildcard.len() != before
        };
        if removed {
            self.count -= 1;
        }
        removed
    }

    /// Every subscription of `account` matching the literal `subject`, grouped by
    /// queue.
    pub fn matches(&self, account: &AccountName, subject: &[u8]) -> MatchResult {
        let mut result = MatchResult::default();
        let mut add = |s: &Arc<Subscription>| match &s.queue {
            _ if !same_account(&s.account, account) => {}
            None => result.plain.push(s.clone()),
            Some(q) => match result
                .groups
                .iter_mut()
                .find(|g| g.first().and_then(|f| f.queue.as_ref()) == Some(q))
            {
                Some(g) => g.push(s.clone()),
                None => result.groups.push(vec![s.clone()]),
            },
        };
        if let Some(v) = self.literal.get(subject) {
            v.iter().for_each(&mut add);
        }
        for s in &self.wildcard {
            if subject::matches(&s.subject, subject) {
                add(s);
            }
        }
        result
    }
}

/// A per-reader cache of match results, valid for one sublist generation.
#[derive(Debug, Default)]
pub(crate) struct MatchCache {
    generation: u64,
    entries: HashMap<Bytes, Arc<MatchResult>>,
}

const MAX_CACHE_ENTRIES: usize = 1024;

impl MatchCache {
    pub fn get(&mut self, current_generation: u64, subject: &[u8]) -> Option<Arc<MatchResult>> {
        if self.generation != current_generation {
            self.entries.clear();
            self.generation = current_generation;
            return None;
        }
        self.entries.get(subject).cloned()
    }

    pub fn put(&mut self, generation: u64, subject: &[u8], result: Arc<MatchResult>) {
        if generation != self.generation {
            self.entries.clear();
            self.generation = generation;
        }
        if self.entries.len() >= MAX_CACHE_ENTRIES {
            self.entries.clear();
        }
        // Copy the key: `subject` may be a slice of a connection read buffer.
        self.entries.insert(Bytes::copy_from_slice(subject), result);
    }
}

/// (account, subject, queue) of an interest.
pub(crate) type InterestKey = (AccountName, Bytes, Option<Bytes>);

/// The interest to announce: client subscriptions counted per (subject, queue).
#[derive(Debug, Default)]
pub(crate) struct ClientInterest {
    counts: HashMap<InterestKey, usize>,
}

impl ClientInterest {
    /// Counts a client subscription in; true when it is the first on its key.
    pub fn add(&mut self, sub: &Subscription) -> bool {
        let n = self
            .counts
            .entry((sub.account.clone(), sub.subject.clone(), sub.queue.clone()))
            .or_insert(0);
        *n += 1;
        *n == 1
    }

    /// Counts a client subscription out; true when it was the last on its key.
    pub fn remove(&mut self, sub: &Subscription) -> bool {
        let key = (sub.account.clone(), sub.subject.clone(), sub.queue.clone());
        match self.counts.get_mut(&key) {
            Some(n) if *n > 1 => {
                *n -= 1;
                false
            }
            Some(_) => {
                self.counts.remove(&key);
                true
            }
            None => false,
        }
    }

    pub fn keys(&self) -> impl Iterator<Item = &InterestKey> {
        self.counts.keys()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::Target;

    fn sub(id: u64, subject: &str, queue: Option<&str>) -> Arc<Subscription> {
        sub_in("$G", id, subject, queue)
    }

    fn sub_in(account: &str, id: u64, subject: &str, queue: Option<&str>) -> Arc<Subscription> {
        let (tx, _rx) = tokio::sync::mpsc::channel(1);
        Arc::new(Subscription::new(
            id,
            account.into(),
            Bytes::copy_from_slice(subject.as_bytes()),
            queue.map(|q| Bytes::copy_from_slice(q.as_bytes())),
            Target::Internal {
                queue: Arc::new(crate::broker::InternalQueue::new(tx, 1)),
            },
        ))
    }

    #[test]
    fn literal_wildcard_and_queues() {
        let g: AccountName = "$G".into();
        let mut list = Sublist::default();
        let subs = [
            sub(1, "a.b", None),
            sub(2, "a.*", None),
            sub(3, "a.>", None),
            sub(4, "a.b", Some("q")),
            sub(5, "a.*", Some("q")),
            sub(6, "a.b", Some("r")),
            sub(7, "x.y", None),
        ];
        for s in &subs {
            list.insert(s.clone());
        }
        assert_eq!(list.len(), 7);
        let m = list.matches(&g, b"a.b");
        let mut plain: Vec<u64> = m.plain.iter().map(|s| s.id).collect();
        plain.sort_unstable();
        assert_eq!(plain, vec![1, 2, 3]);
        assert_eq!(m.groups.len(), 2);
        let q = m
            .groups
            .iter()
            .find(|g| g[0].queue.as_deref() == Some(&b"q"[..]))
            .expect("group q");
        assert_eq!(q.len(), 2);
        assert!(list.matches(&g, b"a").is_empty());
        assert_eq!(list.matches(&g, b"a.b.c").plain.len(), 1);
        assert!(list.remove(&subs[0]));
        assert!(!list.remove(&subs[0]));
        assert!(list.remove(&subs[2]));
        assert_eq!(list.matches(&g, b"a.b").plain.len(), 1);
        assert_eq!(list.len(), 5);
    }

    #[test]
    fn a_match_sees_only_its_own_account() {
        let (a, b): (AccountName, AccountName) = ("A".into(), "B".into());
        let mut list = Sublist::default();
        list.insert(sub_in("A", 1, "orders.*", None));
        list.insert(sub_in("B", 2, "orders.new", None));
        list.insert(sub_in("B", 3, ">", Some("q")));
        let in_a = list.matches(&a, b"orders.new");
        assert_eq!(in_a.plain.iter().map(|s| s.id).collect::<Vec<_>>(), vec![1]);
        assert!(in_a.groups.is_empty());
        let in_b = list.matches(&b, b"orders.new");
        assert_eq!(in_b.plain.iter().map(|s| s.id).collect::<Vec<_>>(), vec![2]);
        assert_eq!(in_b.groups.len(), 1);
        assert!(list.matches(&"C".into(), b"orders.new").is_empty());
    }

    #[test]
    fn cache_is_dropped_on_generation_change() {
        let mut cache = MatchCache::default();
        let r = Arc::new(MatchResult::default());
        cache.put(1, b"a", r);
        assert!(cache.get(1, b"a").is_some());
        assert!(cache.get(2, b"a").is_none());
        assert!(cache.get(2, b"a").is_none());
    }
}
