//! A small weighted LRU map (the memory tiers of the read path and the index of the
//! disk tier).
//!
//! Readers keep decoded footers and chunks in memory so that a burst of gets against
//! the same batch object costs one footer GET and one chunk GET, not one of each per
//! message. The bound is a weight (bytes for chunks, an entry count for footers), so
//! memory stays bounded whatever the access pattern. Recency is a monotonically
//! increasing tick kept in an ordered map: touch and evict are both `O(log n)`.

use std::borrow::Borrow;
use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;

#[derive(Debug)]
struct Slot<V> {
    value: V,
    weight: u64,
    tick: u64,
}

/// A map that evicts its least recently used entries once the total weight passes
/// `capacity`. An entry heavier than the whole capacity is not kept.
#[derive(Debug)]
pub(crate) struct WeightedLru<K, V> {
    entries: HashMap<K, Slot<V>>,
    order: BTreeMap<u64, K>,
    next_tick: u64,
    weight: u64,
    capacity: u64,
}

impl<K: Hash + Eq + Clone, V: Clone> WeightedLru<K, V> {
    pub(crate) fn new(capacity: u64) -> Self {
        Self {
            entries: HashMap::new(),
            order: BTreeMap::new(),
            next_tick: 0,
            weight: 0,
            capacity,
        }
    }

    fn tick(&mut self) -> u64 {
        self.next_tick += 1;
        self.next_tick
    }

    /// The value under `key`, marked as just used.
    pub(crate) fn get<Q>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let tick = self.tick();
        let slot = self.entries.get_mut(key)?;
        if let Some(k) = self.order.remove(&slot.tick) {
            self.order.insert(tick, k);
        }
        slot.tick = tick;
        Some(slot.value.clone())
    }

    /// Inserts (or replaces) `key`, then evicts until the weight fits.
    pub(crate) fn insert(&mut self, key: K, value: V, weight: u64) {
        self.insert_evicting(key, value, weight);
    }

    /// [`WeightedLru::insert`], returning the keys it pushed out (the inserted key
    /// itself when it is heavier than the whole capacity), so a caller holding
    /// resources per entry (files of the disk tier) can release them.
    pub(crate) fn insert_evicting(&mut self, key: K, value: V, weight: u64) -> Vec<K> {
        self.remove(&key);
        if weight > self.capacity {
            return vec![key];
        }
        let tick = self.tick();
        self.order.insert(tick, key.clone());
        self.entries.insert(
            key,
            Slot {
                value,
                weight,
                tick,
            },
        );
        self.weight += weight;
        let mut evicted = Vec::new();
        while self.weight > self.capacity {
            let Some((_, oldest)) = self.order.pop_first() else {
                break;
            };
            if let Some(slot) = self.entries.remove(&oldest) {
                self.weight -= slot.weight;
            }
            evicted.push(oldest);
        }
        evicted
    }

    /// Whether `key` is held (without marking it used).
    pub(crate) fn contains<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.entries.contains_key(key)
    }

    /// Removes `key` if present.
    pub(crate) fn remove<Q>(&mut self, key: &Q)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        if let Some(slot) = self.entries.remove(key) {
            self.order.remove(&slot.tick);
            self.weight -= slot.weight;
        }
    }

    /// Total weight held.
    pub(crate) fn weight(&self) -> u64 {
        self.weight
    }

    /// Entries held.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::WeightedLru;

    #[test]
    fn evicts_least_recently_used_by_weight() {
        let mut lru = WeightedLru::new(10);
        lru.insert("a", 1, 4);
        lru.insert("b", 2, 4);
        assert_eq!(lru.get("a"), Some(1)); // a is now newer than b
        lru.insert("c", 3, 4); // 12 > 10: b goes
        assert_eq!(lru.get("b"), None);
        assert_eq!(lru.get("a"), Some(1));
        assert_eq!(lru.get("c"), Some(3));
        assert_eq!(lru.weight(), 8);
        assert_eq!(lru.len(), 2);
    }

    #[test]
    fn replacing_updates_weight_and_oversize_is_not_kept() {
        let mut lru = WeightedLru::new(10);
        lru.insert("a", 1, 4);
        lru.insert("a", 2, 6);
        assert_eq!(lru.weight(), 6);
        assert_eq!(lru.get("a"), Some(2));
        lru.insert("big", 9, 11);
        assert_eq!(lru.get("big"), None, "heavier than the capacity: not kept");
        assert_eq!(lru.get("a"), Some(2));
        lru.insert("a", 3, 11);
        assert_eq!(
            lru.get("a"),
            None,
            "an oversize replacement drops the old value"
        );
        assert_eq!(lru.weight(), 0);
    }

    #[test]
    fn insert_reports_what_it_evicted() {
        let mut lru = WeightedLru::new(10);
        assert!(lru.insert_evicting("a", 1, 4).is_empty());
        assert!(lru.insert_evicting("b", 2, 4).is_empty());
        assert_eq!(lru.insert_evicting("c", 3, 6), vec!["a"]);
        assert_eq!(lru.insert_evicting("huge", 4, 11), vec!["huge"]);
        assert!(lru.contains("b") && lru.contains("c") && !lru.contains("huge"));
    }

    #[test]
    fn remove_frees_weight() {
        let mut lru = WeightedLru::new(10);
        lru.insert(1u32, "x", 3);
        lru.remove(&1);
        assert_eq!(lru.weight(), 0);
        assert_eq!(lru.len(), 0);
        lru.remove(&1);
    }
}
