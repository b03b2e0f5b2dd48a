//! The optional value cache (`--cache-ttl`): Key Vault answers kept for a
//! fixed time after they arrived, bounded in entries and in bytes (least
//! recently used first). Only successful reads are kept; an entry is never
//! refreshed in place, it expires and the next read asks Key Vault again.
//!
//! Keys are `ReadKey`s, so an entry is only served to a mount that holds a
//! token for the same tenant and client id. Values are shared (`Arc`); a
//! secret's value stays in its `SecretString`, zeroed when the last holder
//! drops it.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;

/// Most entries kept.
pub const MAX_ENTRIES: usize = 4096;

/// Most bytes of answers kept (Key Vault secrets are at most 25 KiB, so
/// this holds at least 640 of the largest).
pub const MAX_BYTES: usize = 16 << 20;

struct Entry<V> {
    value: Arc<V>,
    expires: Instant,
    bytes: usize,
    tick: u64,
}

struct Lru<K, V> {
    map: HashMap<K, Entry<V>>,
    /// tick → key, oldest first.
    order: BTreeMap<u64, K>,
    tick: u64,
    bytes: usize,
}

/// Answers by key, for `ttl` each.
pub struct ValueCache<K, V> {
    ttl: Duration,
    max_entries: usize,
    max_bytes: usize,
    lru: Mutex<Lru<K, V>>,
}

impl<K, V> std::fmt::Debug for ValueCache<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ValueCache")
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl<K: Hash + Eq + Clone, V> ValueCache<K, V> {
    pub fn new(ttl: Duration) -> Self {
        Self::bounded(ttl, MAX_ENTRIES, MAX_BYTES)
    }

    pub fn bounded(ttl: Duration, max_entries: usize, max_bytes: usize) -> Self {
        Self {
            ttl,
            max_entries: max_entries.max(1),
            max_bytes,
            lru: Mutex::new(Lru {
                map: HashMap::new(),
                order: BTreeMap::new(),
                tick: 0,
                bytes: 0,
            }),
        }
    }

    /// The value for `key` if it arrived less than `ttl` ago.
    pub fn get(&self, key: &K) -> Option<Arc<V>> {
        let now = Instant::now();
        let mut lru = self.lock();
        let entry = lru.map.get(key)?;
        if entry.expires <= now {
            lru.remove(key);
            return None;
        }
        let value = entry.value.clone();
        lru.touch(key);
        Some(value)
    }

    /// Keeps `value` (`bytes` is its approximate size) for `ttl` from now.
    /// A value larger than the whole byte budget is not kept.
    pub fn insert(&self, key: K, value: Arc<V>, bytes: usize) {
        if bytes > self.max_bytes {
            return;
        }
        let expires = Instant::now() + self.ttl;
        let mut lru = self.lock();
        lru.remove(&key);
        while lru.map.len() >= self.max_entries || lru.bytes + bytes > self.max_bytes {
            let Some((_, oldest)) = lru.order.pop_first() else {
                break;
            };
            lru.remove(&oldest);
        }
        lru.tick += 1;
        let tick = lru.tick;
        lru.order.insert(tick, key.clone());
        lru.bytes += bytes;
        lru.map.insert(
            key,
            Entry {
                value,
                expires,
                bytes,
                tick,
            },
        );
    }

    /// Entries and bytes held now (expired ones included until touched).
    pub fn size(&self) -> (usize, usize) {
        let lru = self.lock();
        (lru.map.len(), lru.bytes)
    }

    fn lock(&self) -> MutexGuard<'_, Lru<K, V>> {
        // A poisoned lock only means a holder panicked; the maps are
        // updated together and stay consistent.
        self.lru.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl<K: Hash + Eq + Clone, V> Lru<K, V> {
    fn remove(&mut self, key: &K) {
        if let Some(entry) = self.map.remove(key) {
            self.order.remove(&entry.tick);
            self.bytes -= entry.bytes;
        }
    }

    fn touch(&mut self, key: &K) {
        self.tick += 1;
        let tick = self.tick;
        if let Some(entry) = self.map.get_mut(key) {
            self.order.remove(&entry.tick);
            entry.tick = tick;
            self.order.insert(tick, key.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn entries_expire_after_the_ttl() {
        let cache = ValueCache::new(Duration::from_secs(30));
        cache.insert("k", Arc::new(1), 10);
        tokio::time::sleep(Duration::from_secs(29)).await;
        assert_eq!(cache.get(&"k").as_deref(), Some(&1));
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(cache.get(&"k"), None, "expired at 30 s");
        assert_eq!(cache.size(), (0, 0));
    }

    #[tokio::test(start_paused = true)]
    async fn least_recently_used_entries_go_first() {
        let cache = ValueCache::bounded(Duration::from_secs(30), 2, 1000);
        cache.insert("a", Arc::new(1), 1);
        cache.insert("b", Arc::new(2), 1);
        assert!(cache.get(&"a").is_some());
        cache.insert("c", Arc::new(3), 1);
        assert!(cache.get(&"b").is_none(), "b was the least recently used");
        assert!(cache.get(&"a").is_some() && cache.get(&"c").is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn the_byte_budget_is_kept() {
        let cache = ValueCache::bounded(Duration::from_secs(30), 100, 100);
        for i in 0..10 {
            cache.insert(i, Arc::new(i), 30);
        }
        let (entries, bytes) = cache.size();
        assert_eq!((entries, bytes), (3, 90));
        assert!(cache.get(&9).is_some() && cache.get(&6).is_none());
        cache.insert(99, Arc::new(99), 101);
        assert!(cache.get(&99).is_none(), "larger than the budget");
        cache.insert(9, Arc::new(90), 10);
        assert_eq!(cache.size(), (3, 70), "replacing keeps the tally right");
    }
}
