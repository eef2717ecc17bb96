//! A bounded table keyed by id: when full, a new entry evicts the one
//! touched least recently, and the eviction is counted.

use std::collections::BTreeMap;

#[derive(Clone, Debug)]
struct Entry<V> {
    value: V,
    /// Event time of the last insert or update.
    touched: u64,
}

#[derive(Clone, Debug)]
pub(crate) struct Table<K, V> {
    cap: usize,
    entries: BTreeMap<K, Entry<V>>,
    evicted: u64,
}

impl<K: Ord + Clone, V> Table<K, V> {
    pub(crate) fn new(cap: usize) -> Self {
        Self {
            cap: cap.max(1),
            entries: BTreeMap::new(),
            evicted: 0,
        }
    }

    /// Inserts `key` with `make()` unless present. Returns the key evicted
    /// to make room, if any. Eviction scans the table: it only happens
    /// when the table is full, which a healthy agent never sees.
    pub(crate) fn ensure(&mut self, key: &K, ts: u64, make: impl FnOnce() -> V) -> Option<(K, V)> {
        if self.entries.contains_key(key) {
            return None;
        }
        let evicted = if self.entries.len() >= self.cap {
            let oldest = self
                .entries
                .iter()
                .min_by_key(|(_, e)| e.touched)
                .map(|(k, _)| k.clone());
            oldest.and_then(|k| {
                self.evicted += 1;
                self.entries.remove(&k).map(|e| (k, e.value))
            })
        } else {
            None
        };
        self.entries.insert(
            key.clone(),
            Entry {
                value: make(),
                touched: ts,
            },
        );
        evicted
    }

    /// Replaces (or inserts) `key`'s value; returns the evicted entry.
    pub(crate) fn insert(&mut self, key: K, ts: u64, value: V) -> Option<(K, V)> {
        if let Some(e) = self.entries.get_mut(&key) {
            *e = Entry { value, touched: ts };
            return None;
        }
        let mut value = Some(value);
        self.ensure(&key, ts, || value.take().expect("made once"))
    }

    /// The value of `key`, marked as touched at `ts`.
    pub(crate) fn touch(&mut self, key: &K, ts: u64) -> Option<&mut V> {
        self.entries.get_mut(key).map(|e| {
            e.touched = e.touched.max(ts);
            &mut e.value
        })
    }

    pub(crate) fn get(&self, key: &K) -> Option<&V> {
        self.entries.get(key).map(|e| &e.value)
    }

    pub(crate) fn remove(&mut self, key: &K) -> Option<V> {
        self.entries.remove(key).map(|e| e.value)
    }

    /// Removes every entry whose key is in `range`, returning how many.
    pub(crate) fn remove_range(&mut self, range: impl std::ops::RangeBounds<K>) -> usize {
        let keys: Vec<K> = self.entries.range(range).map(|(k, _)| k.clone()).collect();
        for k in &keys {
            self.entries.remove(k);
        }
        keys.len()
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.entries.iter().map(|(k, e)| (k, &e.value))
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(crate) fn evicted(&self) -> u64 {
        self.evicted
    }

    /// Counts evictions made on the table's behalf by its owner (entries
    /// removed because an entry they depend on was evicted).
    pub(crate) fn count_evicted(&mut self, n: u64) {
        self.evicted += n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_table_evicts_the_least_recently_touched() {
        let mut t: Table<u32, &str> = Table::new(2);
        assert!(t.ensure(&1, 10, || "a").is_none());
        assert!(t.ensure(&2, 20, || "b").is_none());
        t.touch(&1, 30);
        let gone = t.ensure(&3, 40, || "c");
        assert_eq!(gone, Some((2, "b")));
        assert_eq!(t.evicted(), 1);
        assert_eq!(t.len(), 2);
        assert_eq!(t.get(&1), Some(&"a"));
        // Present keys are left alone.
        assert!(t.ensure(&1, 50, || "z").is_none());
        assert_eq!(t.get(&1), Some(&"a"));
    }

    #[test]
    fn remove_range_takes_a_connections_streams() {
        let mut t: Table<(u64, u32), ()> = Table::new(10);
        for key in [(1, 1), (1, 3), (2, 1)] {
            t.ensure(&key, 0, || ());
        }
        assert_eq!(t.remove_range((1, 0)..=(1, u32::MAX)), 2);
        assert_eq!(t.len(), 1);
    }
}
