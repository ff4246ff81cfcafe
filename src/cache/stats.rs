//! The cache's counters (SPEC §6.6), shared by every worker: relaxed atomics, one add per event.

use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Default)]
pub struct Stats {
    pub exact_hits: AtomicU64,
    pub semantic_hits: AtomicU64,
    pub misses: AtomicU64,
    pub bypasses: AtomicU64,
    /// Misses answered by another request's upstream answer (coalesced).
    pub coalesced: AtomicU64,
    pub stores: AtomicU64,
    /// Complete answers not stored: errors, aborts, too large, personal.
    pub not_stored: AtomicU64,
    /// A store failed or was slow: lookups that timed out, writes that failed or were dropped.
    pub errors: AtomicU64,
    pub lookup_timeouts: AtomicU64,
}

/// A copy of the counters at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub exact_hits: u64,
    pub semantic_hits: u64,
    pub misses: u64,
    pub bypasses: u64,
    pub coalesced: u64,
    pub stores: u64,
    pub not_stored: u64,
    pub errors: u64,
    pub lookup_timeouts: u64,
}

impl Stats {
    pub fn add(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> Snapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Snapshot {
            exact_hits: get(&self.exact_hits),
            semantic_hits: get(&self.semantic_hits),
            misses: get(&self.misses),
            bypasses: get(&self.bypasses),
            coalesced: get(&self.coalesced),
            stores: get(&self.stores),
            not_stored: get(&self.not_stored),
            errors: get(&self.errors),
            lookup_timeouts: get(&self.lookup_timeouts),
        }
    }

    /// Back to zero (the reference resets its counters on invalidation).
    pub fn reset(&self) {
        for c in [
            &self.exact_hits,
            &self.semantic_hits,
            &self.misses,
            &self.bypasses,
            &self.coalesced,
            &self.stores,
            &self.not_stored,
            &self.errors,
            &self.lookup_timeouts,
        ] {
            c.store(0, Ordering::Relaxed);
        }
    }
}

impl Snapshot {
    pub fn hits(&self) -> u64 {
        self.exact_hits + self.semantic_hits
    }

    /// Hits over lookups (hits + misses), 0 before the first.
    pub fn hit_rate(&self) -> f64 {
        let lookups = self.hits() + self.misses;
        if lookups == 0 {
            0.0
        } else {
            self.hits() as f64 / lookups as f64
        }
    }
}
