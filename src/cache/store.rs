//! The interface between the cache and where its entries are kept (SPEC §6.4). Workers never call
//! these: every store runs on the cache's own thread (`cache/thread.rs`), which workers reach over a
//! bounded channel and await with a deadline, so a slow disk or an unreachable Redis costs a request
//! at most `cache_lookup_timeout` and then a miss.
//!
//! Two kinds of store:
//! - `Durable` (`mmap`, `sqlite`): this router's own file. The in-memory tier holds a full copy of
//!   what the file holds (loaded at start, bounded by the same limits); the file makes it survive a
//!   restart, so lookups never read it. Writes are behind the answer, in batches.
//! - `Shared` (`redis`): several routers' entries. Every lookup asks it (no local copy that could
//!   outlive an invalidation made by another router); entries expire by the store's own TTL.

use std::fmt;

/// One persisted entry. `value` is the encoded answer (`cache::codec`), opaque to stores.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// The exact key (`cache::key::CacheKey::exact`).
    pub key: [u8; 32],
    /// The resolved model the answer is for (invalidation by model).
    pub model: String,
    /// Unix time in milliseconds after which the entry is dead; 0 = never expires.
    pub expires_at_ms: u64,
    pub value: Vec<u8>,
}

impl Record {
    pub fn is_expired(&self, now_ms: u64) -> bool {
        self.expires_at_ms != 0 && now_ms >= self.expires_at_ms
    }
}

/// A store failed: I/O, a full disk, a lost connection. Logged and counted; a lookup that meets one
/// is a miss, a store that meets one is dropped.
#[derive(Debug)]
pub struct StoreError(pub String);

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StoreError {}

impl From<std::io::Error> for StoreError {
    fn from(e: std::io::Error) -> Self {
        StoreError(e.to_string())
    }
}

/// This router's persistent file (`mmap`, `sqlite`).
pub trait Durable: Send {
    /// Every live record (not expired at `now_ms`), oldest write first, so that loading them in
    /// order into an LRU keeps the newest. A damaged part of the file is skipped and reported by
    /// the store's own log line, never fatal.
    fn load(&mut self, now_ms: u64) -> Result<Vec<Record>, StoreError>;
    /// Appends (or replaces) records, in one batch.
    fn put(&mut self, records: &[Record]) -> Result<(), StoreError>;
    /// Removes every record, or those of `model`.
    fn invalidate(&mut self, model: Option<&str>) -> Result<(), StoreError>;
    /// Drops records that are expired at `now_ms` or for which `keep` says no (evicted from the
    /// in-memory tier), reclaiming their space where the store can.
    fn compact(&mut self, now_ms: u64, keep: &dyn Fn(&[u8; 32]) -> bool) -> Result<(), StoreError>;
    /// Makes what was written complete in the store's main file (at shutdown).
    fn sync(&mut self) -> Result<(), StoreError> {
        Ok(())
    }
}

/// A store several routers share (`redis`).
pub trait Shared: Send {
    fn get(&mut self, key: &[u8; 32]) -> Result<Option<Vec<u8>>, StoreError>;
    /// Stores a record; its expiry becomes the store's own (`expires_at_ms` 0: never).
    fn put(&mut self, record: &Record) -> Result<(), StoreError>;
    /// Removes every entry, or those of `model`; returns how many.
    fn invalidate(&mut self, model: Option<&str>) -> Result<u64, StoreError>;
    /// Live entries and their value bytes, as far as the store can tell cheaply.
    fn size(&mut self) -> Result<(u64, u64), StoreError>;
}

/// Unix time in milliseconds.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
