//! What workers hold of the semantic layer: a sender to the embedding core and the budget.
//! Every call is a `try_send` (a full queue is a miss, never a wait) and a bounded await.

use std::path::PathBuf;

pub use crate::config::default_model_dir;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::{Counters, Outcome};
use crate::cache::answer::Answer;
use crate::cache::key::{CacheKey, Family};
use crate::cache::memory::MemoryStore;

pub struct SemanticSettings {
    pub model_dir: PathBuf,
    pub threshold: f32,
    pub history_weight: f32,
    /// The vectors file and the entry log; `None` keeps both in memory.
    pub files: Option<(PathBuf, PathBuf)>,
    pub budget: Duration,
    /// The CPU the core is pinned to (`None`: not pinned).
    pub cpu: Option<usize>,
    /// Test hook (`NOMYO_TEST_EMBEDDING_STALL_MS`): the core pauses before every pass.
    pub stall: Duration,
    pub max_entries: usize,
}

/// Lookups that may wait for the core at once; past it a lookup is a miss at once.
#[cfg(feature = "semantic")]
const QUEUE: usize = 1024;

pub struct Semantic {
    #[cfg(feature = "semantic")]
    jobs: crossbeam_channel::Sender<super::core::Job>,
    budget: Duration,
    pub threshold: f32,
    pub counters: Arc<Counters>,
}

#[cfg(not(feature = "semantic"))]
impl Semantic {
    pub fn start(
        _: SemanticSettings,
        _: Option<Arc<MemoryStore<Answer>>>,
    ) -> Result<Semantic, String> {
        Err("this build has no semantic matching (cargo feature `semantic`): set cache_similarity to 1.0".into())
    }
    pub async fn find(&self, _: Family, _: Bytes, _: &CacheKey) -> Outcome {
        Outcome::NotAsked
    }
    pub fn insert(&self, _: &CacheKey, _: Arc<str>, _: u64) {}
    pub fn forget(&self, _: &[u8; 32]) {}
    pub async fn invalidate(&self, _: Option<&str>) {}
    pub fn flush(&self, _: Duration) {}
    pub fn budget(&self) -> Duration {
        self.budget
    }
}

#[cfg(feature = "semantic")]
impl Semantic {
    /// Loads the model and the entries of an earlier run on a new thread. Fails when the model
    /// cannot be loaded or the files cannot be opened.
    pub fn start(
        settings: SemanticSettings,
        memory: Option<Arc<MemoryStore<Answer>>>,
    ) -> Result<Semantic, String> {
        use super::core::{Core, Settings};
        let counters = Arc::new(Counters::default());
        let (jobs, queue) = crossbeam_channel::bounded(QUEUE);
        let (opened_tx, opened) = std::sync::mpsc::channel();
        let threshold = settings.threshold;
        let budget = settings.budget;
        let cpu = settings.cpu;
        let core_settings = Settings {
            model_dir: settings.model_dir,
            threshold: settings.threshold,
            history_weight: settings.history_weight,
            files: settings.files,
            stall: settings.stall,
            max_entries: settings.max_entries,
        };
        let core_counters = counters.clone();
        std::thread::Builder::new()
            .name("nomyo-embed".into())
            .spawn(move || {
                if let Some(cpu) = cpu {
                    if let Err(e) = crate::rt::run_on(&[cpu]) {
                        tracing::warn!(cpu, error = %e, "the embedding core could not be pinned");
                    }
                }
                match Core::open(core_settings, memory, core_counters) {
                    Ok(core) => {
                        let _ = opened_tx.send(Ok(()));
                        core.run(queue);
                    }
                    Err(e) => {
                        let _ = opened_tx.send(Err(e));
                    }
                }
            })
            .map_err(|e| format!("the embedding core's thread could not start: {e}"))?;
        opened
            .recv()
            .map_err(|_| "the embedding core stopped while loading".to_string())??;
        tracing::info!(cpu = ?cpu, threshold, budget_ms = budget.as_millis() as u64, "embedding core started");
        Ok(Semantic {
            jobs,
            budget,
            threshold,
            counters,
        })
    }

    /// The entry whose answer fits the request `key` (whose body is `body`), if the core finds
    /// one within the budget.
    pub async fn find(&self, family: Family, body: Bytes, key: &CacheKey) -> Outcome {
        // Behind a queue that takes longer than the budget the answer would come too late: a miss
        // now, not after waiting (under overload most requests go straight upstream). An empty
        // queue always takes the lookup, so the cost estimate keeps learning.
        let cost = Duration::from_micros(Counters::get(&self.counters.lookup_cost_us).max(1));
        if cost * self.jobs.len() as u32 > self.budget {
            Counters::add(&self.counters.over_budget);
            return Outcome::NotAsked;
        }
        let (reply, rx) = futures_channel::oneshot::channel();
        let job = super::core::Job::Lookup {
            family,
            body,
            exact: key.exact,
            scope: key.semantic_scope,
            deadline: std::time::Instant::now() + self.budget,
            reply,
        };
        if self.jobs.try_send(job).is_err() {
            Counters::add(&self.counters.over_budget);
            return Outcome::NotAsked;
        }
        match monoio::time::timeout(self.budget, rx).await {
            Ok(Ok(Some(found))) => Outcome::Found(found),
            Ok(Ok(None)) => Outcome::Asked,
            // The core dropped the lookup (it came too late) or stopped.
            Ok(Err(_)) => Outcome::NotAsked,
            // The core may still embed it and keep its vectors for the insert.
            Err(_) => {
                Counters::add(&self.counters.over_budget);
                Outcome::Asked
            }
        }
    }

    /// Indexes the answer just stored under `key` (the core kept the lookup's vectors).
    pub fn insert(&self, key: &CacheKey, model: Arc<str>, expires_at_ms: u64) {
        let job = super::core::Job::Insert {
            exact: key.exact,
            model,
            expires_at_ms,
        };
        if self.jobs.try_send(job).is_err() {
            Counters::add(&self.counters.errors);
        }
    }

    /// The entry `key` is gone from the store: it leaves the index.
    pub fn forget(&self, key: &[u8; 32]) {
        let _ = self.jobs.try_send(super::core::Job::Forget(*key));
    }

    pub async fn invalidate(&self, model: Option<&str>) {
        let (done, rx) = futures_channel::oneshot::channel();
        let mut job = super::core::Job::Invalidate(model.map(str::to_string), done);
        // Management, not a request: worth a short wait for room, on this runtime's clock (a
        // blocking send would stall every connection of the worker).
        for _ in 0..100 {
            match self.jobs.try_send(job) {
                Ok(()) => {
                    let _ = monoio::time::timeout(Duration::from_secs(5), rx).await;
                    return;
                }
                Err(crossbeam_channel::TrySendError::Full(back)) => job = back,
                Err(crossbeam_channel::TrySendError::Disconnected(_)) => return,
            }
            monoio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    /// Waits (blocking) until the core wrote what it holds: for shutdown.
    pub fn flush(&self, limit: Duration) {
        let (done, rx) = std::sync::mpsc::channel();
        if self
            .jobs
            .send_timeout(super::core::Job::Flush(done), limit)
            .is_ok()
        {
            let _ = rx.recv_timeout(limit);
        }
    }

    pub fn budget(&self) -> Duration {
        self.budget
    }
}
