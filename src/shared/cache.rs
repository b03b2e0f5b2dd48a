//! A bounded cache shared by mounts: each entry kept until its own expiry,
//! at most so many entries and so many bytes, least recently used first
//! out. It serves both the token cache (`auth/cache.rs`) and the Key Vault
//! value cache (`reads.rs`).
//!
//! It holds what it is given and never fetches or refreshes anything in
//! place (an expired entry is simply gone); it must not know what its keys
//! or values mean.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use tokio::time::Instant;

struct Entry<V> {
    value: V,
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

/// Values by key, each until its expiry; clones of values are handed out
/// (use `Arc` for large ones).
pub struct Cache<K, V> {
    max_entries: usize,
    max_bytes: usize,
    lru: Mutex<Lru<K, V>>,
    evictions: AtomicU64,
}

// === impl Cache ===

impl<K, V> std::fmt::Debug for Cache<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("max_entries", &self.max_entries)
            .field("max_bytes", &self.max_bytes)
            .finish_non_exhaustive()
    }
}

impl<K: Hash + Eq + Clone, V: Clone> Cache<K, V> {
    /// At most `max_entries` (at least 1) and `max_bytes` (as the caller
    /// counts them in [`Cache::insert`]).
    pub fn new(max_entries: usize, max_bytes: usize) -> Self {
        Self {
            max_entries: max_entries.max(1),
            max_bytes,
            lru: Mutex::new(Lru {
                map: HashMap::new(),
                order: BTreeMap::new(),
                tick: 0,
                bytes: 0,
            }),
            evictions: AtomicU64::new(0),
        }
    }

    /// The value for `key` if it has not expired (an expired one is
    /// dropped); a hit makes the entry the most recently used.
    pub fn get(&self, key: &K) -> Option<V> {
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

    /// Keeps `value` (`bytes` is its approximate size) until `expires`,
    /// replacing any entry for `key` and evicting the least recently used
    /// entries to make room. A value larger than the whole byte budget is
    /// not kept.
    pub fn insert(&self, key: K, value: V, bytes: usize, expires: Instant) {
        if bytes > self.max_bytes {
            return;
        }
        let mut lru = self.lock();
        lru.remove(&key);
        let mut evicted = 0;
        while lru.map.len() >= self.max_entries || lru.bytes + bytes > self.max_bytes {
            let Some((_, oldest)) = lru.order.pop_first() else {
                break;
            };
            lru.remove(&oldest);
            evicted += 1;
        }
        self.evictions.fetch_add(evicted, Ordering::Relaxed);
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

    /// Drops every entry whose value `matches`.
    pub fn remove_where(&self, matches: impl Fn(&V) -> bool) {
        let mut lru = self.lock();
        let gone: Vec<K> = lru
            .map
            .iter()
            .filter(|(_, entry)| matches(&entry.value))
            .map(|(key, _)| key.clone())
            .collect();
        for key in &gone {
            lru.remove(key);
        }
    }

    /// Entries and bytes held now (expired ones included until touched).
    pub fn size(&self) -> (usize, usize) {
        let lru = self.lock();
        (lru.map.len(), lru.bytes)
    }

    /// Entries dropped so far to stay within the bounds.
    pub fn evictions(&self) -> u64 {
        self.evictions.load(Ordering::Relaxed)
    }

    fn lock(&self) -> MutexGuard<'_, Lru<K, V>> {
        // A poisoned lock only means a holder panicked; the maps are
        // updated together and stay consistent.
        self.lru.lock().unwrap_or_else(|e| e.into_inner())
    }
}

// === impl Lru ===

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
    use std::time::Duration;

    use super::*;

    fn in_secs(secs: u64) -> Instant {
        Instant::now() + Duration::from_secs(secs)
    }

    #[tokio::test(start_paused = true)]
    async fn entries_expire_at_their_own_time() {
        let cache = Cache::new(16, 1000);
        cache.insert("k", 1, 10, in_secs(30));
        cache.insert("short", 2, 10, in_secs(5));
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(cache.get(&"short"), None, "expired at 5 s");
        tokio::time::sleep(Duration::from_secs(24)).await;
        assert_eq!(cache.get(&"k"), Some(1));
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(cache.get(&"k"), None, "expired at 30 s");
        assert_eq!(cache.size(), (0, 0));
    }

    #[tokio::test(start_paused = true)]
    async fn least_recently_used_entries_go_first() {
        let cache = Cache::new(2, 1000);
        cache.insert("a", 1, 1, in_secs(30));
        cache.insert("b", 2, 1, in_secs(30));
        assert!(cache.get(&"a").is_some());
        cache.insert("c", 3, 1, in_secs(30));
        assert!(cache.get(&"b").is_none(), "b was the least recently used");
        assert!(cache.get(&"a").is_some() && cache.get(&"c").is_some());
        assert_eq!(cache.evictions(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn the_byte_budget_is_kept() {
        let cache = Cache::new(100, 100);
        for i in 0..10 {
            cache.insert(i, i, 30, in_secs(30));
        }
        let (entries, bytes) = cache.size();
        assert_eq!((entries, bytes), (3, 90));
        assert!(cache.get(&9).is_some() && cache.get(&6).is_none());
        cache.insert(99, 99, 101, in_secs(30));
        assert!(cache.get(&99).is_none(), "larger than the budget");
        cache.insert(9, 90, 10, in_secs(30));
        assert_eq!(cache.size(), (3, 70), "replacing keeps the tally right");
        assert_eq!(cache.evictions(), 7);
    }

    #[tokio::test(start_paused = true)]
    async fn entries_can_be_removed_by_value() {
        let cache = Cache::new(16, 1000);
        cache.insert("a", 1, 1, in_secs(30));
        cache.insert("b", 2, 1, in_secs(30));
        cache.remove_where(|v| *v == 1);
        assert_eq!((cache.get(&"a"), cache.get(&"b")), (None, Some(2)));
    }
}
