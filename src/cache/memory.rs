//! The in-memory tier: bounded by entries and by bytes, least recently used evicted first, each
//! entry valid until its expiry. One lock for all workers; what runs under it is a hash-map
//! operation and a few list moves, never I/O.

use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use lru::LruCache;

/// A stored answer and what it cost to keep.
pub struct Stored<T> {
    pub value: Arc<T>,
    /// The model the answer is for (invalidation by model).
    pub model: Arc<str>,
    /// Bytes charged against `max_bytes`.
    pub bytes: usize,
    expires: Option<Instant>,
}

pub struct MemoryStore<T> {
    inner: Mutex<Inner<T>>,
    max_bytes: usize,
}

struct Inner<T> {
    entries: LruCache<[u8; 32], Stored<T>>,
    bytes: usize,
}

impl<T> MemoryStore<T> {
    /// At most `max_entries` entries of `max_bytes` in all.
    pub fn new(max_entries: usize, max_bytes: usize) -> Self {
        let cap = NonZeroUsize::new(max_entries.max(1)).expect("at least one");
        MemoryStore {
            inner: Mutex::new(Inner {
                entries: LruCache::new(cap),
                bytes: 0,
            }),
            max_bytes,
        }
    }

    /// The entry for `key`, if present and not expired (an expired one is dropped on the way).
    pub fn get(&self, key: &[u8; 32], now: Instant) -> Option<Arc<T>> {
        let mut inner = self.lock();
        let expired = match inner.entries.get(key) {
            None => return None,
            Some(s) if s.expires.is_some_and(|e| now >= e) => true,
            Some(s) => return Some(s.value.clone()),
        };
        if expired {
            if let Some(s) = inner.entries.pop(key) {
                inner.bytes -= s.bytes;
            }
        }
        None
    }

    /// Stores `value` (charged `bytes`) under `key` until `expires` (`None`: until evicted),
    /// evicting the least recently used entries until it fits. An entry larger than the whole
    /// budget is not stored.
    pub fn put(
        &self,
        key: &[u8; 32],
        model: Arc<str>,
        value: Arc<T>,
        bytes: usize,
        expires: Option<Instant>,
    ) {
        if bytes > self.max_bytes {
            return;
        }
        let stored = Stored {
            value,
            model,
            bytes,
            expires,
        };
        let mut inner = self.lock();
        if let Some(old) = inner.entries.pop(key) {
            inner.bytes -= old.bytes;
        }
        while inner.bytes + bytes > self.max_bytes {
            match inner.entries.pop_lru() {
                Some((_, old)) => inner.bytes -= old.bytes,
                None => break,
            }
        }
        // At the entry limit, `push` evicts the least recently used one and hands it back.
        if let Some((_, old)) = inner.entries.push(*key, stored) {
            inner.bytes -= old.bytes;
        }
        inner.bytes += bytes;
    }

    /// Drops the entry for `key`, if held.
    pub fn remove(&self, key: &[u8; 32]) {
        let mut inner = self.lock();
        if let Some(s) = inner.entries.pop(key) {
            inner.bytes -= s.bytes;
        }
    }

    /// Whether `key` is held (expired or not), without making it the most recent.
    pub fn contains(&self, key: &[u8; 32]) -> bool {
        self.lock().entries.contains(key)
    }

    /// Drops every entry, or those of `model`; returns how many.
    pub fn invalidate(&self, model: Option<&str>) -> usize {
        let mut inner = self.lock();
        let Some(model) = model else {
            let n = inner.entries.len();
            inner.entries.clear();
            inner.bytes = 0;
            return n;
        };
        let doomed: Vec<[u8; 32]> = inner
            .entries
            .iter()
            .filter(|(_, s)| &*s.model == model)
            .map(|(k, _)| *k)
            .collect();
        for k in &doomed {
            if let Some(s) = inner.entries.pop(k) {
                inner.bytes -= s.bytes;
            }
        }
        doomed.len()
    }

    /// Entries and bytes held.
    pub fn size(&self) -> (usize, usize) {
        let inner = self.lock();
        (inner.entries.len(), inner.bytes)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner<T>> {
        // A panic under the lock leaves consistent data (every step keeps `bytes` right).
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn key(n: u8) -> [u8; 32] {
        [n; 32]
    }

    fn put(s: &MemoryStore<String>, n: u8, model: &str, bytes: usize, now: Instant) {
        let expires = Some(now + Duration::from_secs(60));
        s.put(
            &key(n),
            model.into(),
            Arc::new(format!("v{n}")),
            bytes,
            expires,
        );
    }

    #[test]
    fn bounded_by_entries_least_recently_used_first() {
        let s = MemoryStore::new(2, 1 << 20);
        let now = Instant::now();
        put(&s, 1, "m", 10, now);
        put(&s, 2, "m", 10, now);
        assert!(s.get(&key(1), now).is_some(), "1 is now the most recent");
        put(&s, 3, "m", 10, now);
        assert!(s.get(&key(2), now).is_none(), "2 was the least recent");
        assert_eq!(s.size(), (2, 20));
    }

    #[test]
    fn bounded_by_bytes() {
        let s = MemoryStore::new(100, 100);
        let now = Instant::now();
        for n in 0..10 {
            put(&s, n, "m", 30, now);
        }
        let (entries, bytes) = s.size();
        assert_eq!((entries, bytes), (3, 90));
        put(&s, 50, "m", 101, now);
        assert!(
            s.get(&key(50), now).is_none(),
            "larger than the budget: not stored"
        );
        put(&s, 9, "m", 60, now);
        assert_eq!(s.size(), (2, 90), "a replaced entry gives its bytes back");
    }

    #[test]
    fn entries_expire_after_the_ttl() {
        let s = MemoryStore::new(10, 1000);
        let now = Instant::now();
        put(&s, 1, "m", 10, now);
        assert!(s.get(&key(1), now + Duration::from_secs(59)).is_some());
        assert!(s.get(&key(1), now + Duration::from_secs(60)).is_none());
        assert_eq!(s.size(), (0, 0));
    }

    #[test]
    fn invalidation_by_model_or_all() {
        let s = MemoryStore::new(10, 1000);
        let now = Instant::now();
        put(&s, 1, "a", 10, now);
        put(&s, 2, "b", 10, now);
        put(&s, 3, "a", 10, now);
        assert_eq!(s.invalidate(Some("a")), 2);
        assert_eq!(s.size(), (1, 10));
        assert!(s.get(&key(2), now).is_some());
        assert_eq!(s.invalidate(None), 1);
        assert_eq!(s.size(), (0, 0));
    }
}
