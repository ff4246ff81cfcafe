//! The semantic layer of the response cache (SPEC §6.3): a paraphrase of an earlier question gets
//! its answer. `query` reads the question and its history off a request, `embedder` turns text
//! into vectors (all-MiniLM-L6-v2 in candle), `vectors` keeps them in a map, `index` finds the
//! nearest in the request's scope (HNSW), `guard` refuses look-alikes that need another answer,
//! and `core` runs all of it on the embedding core. `Semantic` is what the response cache holds.
//!
//! The model stack is the cargo feature `semantic` (on by default); without it the router builds
//! in a fraction of the time and refuses a configuration that asks for semantic matching.

pub mod guard;
pub mod query;

#[cfg(feature = "semantic")]
pub mod core;
#[cfg(feature = "semantic")]
pub mod embedder;
#[cfg(feature = "semantic")]
pub mod hnsw;
#[cfg(feature = "semantic")]
pub mod index;
#[cfg(feature = "semantic")]
pub mod vectors;

mod handle;

pub use handle::{default_model_dir, Semantic, SemanticSettings};

use std::sync::atomic::{AtomicU64, Ordering};

/// The embedding model's output size.
pub const DIMS: usize = 384;

/// The threshold the evaluation set (tests/fixtures/semantic/pairs.jsonl) supports: the one to
/// set `cache_similarity` to (docs/cache.md has the curve).
pub const RECOMMENDED_SIMILARITY: f32 = 0.88;

/// What a semantic lookup found: the entry to answer with.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Found {
    pub key: [u8; 32],
    pub similarity: f32,
}

/// What a semantic lookup came to.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Outcome {
    Found(Found),
    /// The core has (or will have) the request's vectors: its answer can be indexed.
    Asked,
    /// Not put to the core (over budget, or the layer is off): nothing to index.
    NotAsked,
}

/// The semantic layer's own numbers (shown in `/api/cache/stats`).
#[derive(Default, Debug)]
pub struct Counters {
    /// Lookups that did not get their answer within the budget (queue full, core busy).
    pub over_budget: AtomicU64,
    /// Lookups the core dropped because their worker had given up already.
    pub late: AtomicU64,
    /// Requests that are not plain conversations (tools, images, agent turns).
    pub ineligible: AtomicU64,
    /// Near enough, but the guard saw a difference that matters.
    pub guard_refused: AtomicU64,
    /// Near enough, but the conversations before the questions differ.
    pub history_refused: AtomicU64,
    pub errors: AtomicU64,
    /// Entries in the index.
    pub entries: AtomicU64,
    /// What one lookup has lately cost the core, in microseconds (a moving average over passes):
    /// a worker that would wait longer than the budget behind the queue does not queue.
    pub lookup_cost_us: AtomicU64,
}

impl Counters {
    pub fn add(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }

    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }

    /// A pass embedded `lookups` lookups in `took`: the per-lookup cost moves an eighth of the way.
    pub fn observe_pass(&self, took: std::time::Duration, lookups: usize) {
        let each = took.as_micros() as u64 / lookups.max(1) as u64;
        let old = self.lookup_cost_us.load(Ordering::Relaxed);
        let new = if old == 0 { each } else { (old * 7 + each) / 8 };
        self.lookup_cost_us.store(new.max(1), Ordering::Relaxed);
    }
}
