//! The sequencer's cache of key states it made durable, so an upsert of a key written
//! recently (an update, a hot key) skips the SlateDB read, which costs a few microseconds of
//! the single sequencer's time per key. It holds what the index holds: the sequencer is the
//! only writer of key states and adds a group's states only once they are durable.
//!
//! Bounded by bytes with two generations: entries go into the young one; when it holds half
//! the budget the old one is dropped and the young one becomes old. A hit in the old
//! generation moves the entry to the young one, so keys in use stay and the rest age out
//! (an approximate LRU with no per-entry bookkeeping).

use std::collections::HashMap;

use crate::pk::KeyState;

/// Bytes an entry is charged beyond its key and image: the map's slot and allocations.
const ENTRY_OVERHEAD: usize = 96;

/// Known key states by state key (`None`: the key has no row).
#[derive(Debug, Default)]
pub(crate) struct KeyStateCache {
    young: HashMap<Vec<u8>, Option<KeyState>>,
    old: HashMap<Vec<u8>, Option<KeyState>>,
    young_bytes: usize,
    budget: usize,
}

fn charge(key: &[u8], state: &Option<KeyState>) -> usize {
    key.len() + state.as_ref().map_or(0, |s| s.image.len()) + ENTRY_OVERHEAD
}

impl KeyStateCache {
    /// A cache of at most about `budget` bytes; 0 caches nothing.
    pub(crate) fn new(budget: usize) -> Self {
        Self {
            budget,
            ..Self::default()
        }
    }

    /// The known state of `key`, if cached.
    pub(crate) fn get(&mut self, key: &[u8]) -> Option<Option<KeyState>> {
        if let Some(state) = self.young.get(key) {
            return Some(state.clone());
        }
        let (key, state) = self.old.remove_entry(key)?;
        self.insert(key, state.clone());
        Some(state)
    }

    /// Records the durable state of `key`.
    pub(crate) fn insert(&mut self, key: Vec<u8>, state: Option<KeyState>) {
        if self.budget == 0 {
            return;
        }
        let bytes = charge(&key, &state);
        if let Some(replaced) = self.young.insert(key.clone(), state) {
            self.young_bytes = self.young_bytes.saturating_sub(charge(&key, &replaced));
        }
        self.old.remove(&key);
        self.young_bytes += bytes;
        if self.young_bytes > self.budget / 2 {
            self.old = std::mem::take(&mut self.young);
            self.young_bytes = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use inlet_core::ids::{Offset, TimestampMicros};

    use super::*;

    fn state(offset: u64, image_len: usize) -> Option<KeyState> {
        Some(KeyState {
            offset: Offset(offset),
            committed: TimestampMicros(0),
            version: None,
            image: vec![1; image_len],
        })
    }

    #[test]
    fn keeps_what_is_used_within_its_budget() {
        let mut cache = KeyStateCache::new(10 * (ENTRY_OVERHEAD + 8 + 100));
        for i in 0..100u64 {
            cache.insert(i.to_be_bytes().to_vec(), state(i, 100));
            // Key 0 is used all along: it stays.
            assert_eq!(
                cache.get(&0u64.to_be_bytes()),
                Some(state(0, 100)),
                "after {i}"
            );
        }
        assert_eq!(cache.get(&99u64.to_be_bytes()), Some(state(99, 100)));
        assert_eq!(cache.get(&50u64.to_be_bytes()), None, "aged out");
        let held: usize = cache.young.len() + cache.old.len();
        assert!(held <= 11, "{held} entries for a budget of 10");
        // A deleted key is a known absence.
        cache.insert(vec![7], None);
        assert_eq!(cache.get(&[7]), Some(None));
        let mut off = KeyStateCache::new(0);
        off.insert(vec![1], state(1, 1));
        assert_eq!(off.get(&[1]), None);
    }
}
