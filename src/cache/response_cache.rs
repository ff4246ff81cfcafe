//! The response cache as the proxy sees it: a lookup chain (exact, then — with `cache_similarity`
//! below 1 — semantic), the store of complete answers, coalescing, invalidation and the numbers.
//!
//! Tiers: with `memory`, `mmap` and `sqlite` every entry is in this process's memory (the file,
//! loaded at start and written behind the answers, makes it survive a restart), so a lookup is a
//! hash-map probe on the worker. With `redis` entries are shared by several routers and a lookup
//! asks Redis through the cache's thread, waiting at most `cache_lookup_timeout`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_channel::oneshot;

use super::answer::Answer;
use super::flights::Flights;
use super::key::{CacheKey, Family};
use super::memory::MemoryStore;
use super::mmap_log::MmapLog;
use super::privacy::looks_personal;
use super::redis_store::RedisStore;
use super::semantic::{Outcome, Semantic, SemanticSettings};
use super::sqlite_store::SqliteStore;
use super::stats::Stats;
use super::store::{now_ms, Durable};
use super::thread::{Backend, Job, Put, StoreThread};
use crate::config::{CacheBackend, CacheConfig};

/// A lookup's answer.
pub struct Hit {
    pub answer: Arc<Answer>,
    /// `None` for an exact hit; the similarity of a semantic one.
    pub similarity: Option<f32>,
}

pub struct ResponseCache {
    pub config: CacheConfig,
    pub stats: Arc<Stats>,
    pub flights: Arc<Flights>,
    tier: Tier,
    /// Why the configured store could not be opened (the cache then runs in memory only).
    pub store_error: Option<String>,
    /// Moves on every invalidation: an answer fetched before one is not stored after it.
    generation: AtomicU64,
    /// The semantic layer (`cache_similarity` below 1).
    pub semantic: Option<Semantic>,
}

enum Tier {
    Local {
        memory: Arc<MemoryStore<Answer>>,
        file: Option<StoreThread>,
    },
    Shared(StoreThread),
}

/// A lookup that found nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Miss {
    /// The embedding core has the request's vectors: its answer, once stored, joins the index.
    pub indexable: bool,
}

/// Why an answer was not kept.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    Personal,
    /// The cache was invalidated while the answer was being fetched.
    Invalidated,
    /// The store's thread is behind or gone: the write was dropped.
    Busy,
}

impl ResponseCache {
    /// Opens the configured store (loading a file's entries). A store that cannot be opened is
    /// logged and the cache runs in memory only: a cache problem never stops the router.
    /// Opens the cache, and with `cache_similarity` below 1 starts the embedding core: a model
    /// that cannot be loaded is an error (the configuration asked for something the router
    /// cannot do), while a store that cannot be opened only makes the cache memory-only.
    pub fn start(
        config: &CacheConfig,
        embedding_cpu: Option<usize>,
    ) -> Result<ResponseCache, String> {
        let mut cache = ResponseCache::open(config);
        if config.semantic() {
            let memory = match &cache.tier {
                Tier::Local { memory, .. } => Some(memory.clone()),
                Tier::Shared(_) => None,
            };
            let settings = SemanticSettings {
                model_dir: config.embedding_model.clone(),
                threshold: config.similarity as f32,
                history_weight: config.history_weight as f32,
                files: semantic_files(config, cache.store_error.is_some()),
                budget: config.semantic_budget,
                cpu: embedding_cpu,
                stall: std::env::var("NOMYO_TEST_EMBEDDING_STALL_MS")
                    .ok()
                    .and_then(|v| v.parse().ok())
                    .map_or(Duration::ZERO, Duration::from_millis),
                max_entries: config.max_entries,
            };
            cache.semantic = Some(Semantic::start(settings, memory)?);
        }
        Ok(cache)
    }

    /// The exact cache alone, with the configured store.
    pub fn open(config: &CacheConfig) -> ResponseCache {
        let stats = Arc::new(Stats::default());
        let memory = || Arc::new(MemoryStore::new(config.max_entries, config.max_bytes));
        let (tier, store_error) = match open_store(config, &stats, memory()) {
            Ok(tier) => (tier, None),
            Err(e) => {
                tracing::error!(
                    backend = config.backend.name(),
                    error = %e,
                    "the response cache's store could not be opened: caching in memory only"
                );
                let tier = Tier::Local {
                    memory: memory(),
                    file: None,
                };
                (tier, Some(e))
            }
        };
        ResponseCache {
            config: config.clone(),
            stats,
            flights: Arc::new(Flights::default()),
            tier,
            store_error,
            generation: AtomicU64::new(0),
            semantic: None,
        }
    }

    /// The invalidation generation a request starts under (see `store`).
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// The stored answer for `key` (a request of `family` whose body is `body`), if any: the
    /// exact entry, else — with semantic matching — the entry of a question that means the same.
    /// Waits at most `cache_lookup_timeout` for a shared store and `cache_semantic_budget` for
    /// the embedding core.
    pub async fn lookup(&self, key: &CacheKey, family: Family, body: &Bytes) -> Result<Hit, Miss> {
        if let Some(answer) = self.get(&key.exact).await {
            return Ok(Hit {
                answer,
                similarity: None,
            });
        }
        let not_indexable = Miss { indexable: false };
        let Some(semantic) = self.semantic.as_ref() else {
            return Err(not_indexable);
        };
        let found = match semantic.find(family, body.clone(), key).await {
            Outcome::Found(found) => found,
            Outcome::Asked => return Err(Miss { indexable: true }),
            Outcome::NotAsked => return Err(not_indexable),
        };
        match self.get(&found.key).await {
            Some(answer) => Ok(Hit {
                answer,
                similarity: Some(found.similarity),
            }),
            None => {
                // Evicted or expired since it was indexed.
                semantic.forget(&found.key);
                Err(Miss { indexable: true })
            }
        }
    }

    async fn get(&self, key: &[u8; 32]) -> Option<Arc<Answer>> {
        match &self.tier {
            Tier::Local { memory, .. } => memory.get(key, Instant::now()),
            Tier::Shared(thread) => self.remote_lookup(thread, key).await,
        }
    }

    async fn remote_lookup(&self, thread: &StoreThread, key: &[u8; 32]) -> Option<Arc<Answer>> {
        let (tx, rx) = oneshot::channel();
        if !thread.send(Job::Get(*key, tx)) {
            Stats::add(&self.stats.errors);
            return None;
        }
        match monoio::time::timeout(self.config.lookup_timeout, rx).await {
            Ok(Ok(Ok(Some(bytes)))) => match Answer::decode(&bytes) {
                Some(a) => Some(Arc::new(a)),
                None => {
                    Stats::add(&self.stats.errors);
                    None
                }
            },
            Ok(Ok(Ok(None))) => None,
            // The thread counted the store's error.
            Ok(Ok(Err(_))) => None,
            Ok(Err(_)) => {
                Stats::add(&self.stats.errors);
                None
            }
            Err(_) => {
                Stats::add(&self.stats.errors);
                Stats::add(&self.stats.lookup_timeouts);
                None
            }
        }
    }

    /// Keeps a complete answer to the request `key` for `model`, fetched under `generation`: an
    /// invalidation since then means the answer may be of what was invalidated, and it is not
    /// kept. The privacy guard refuses answers that look personal unless the scope is (see
    /// `privacy`).
    pub fn store(
        &self,
        key: &CacheKey,
        model: &str,
        answer: Arc<Answer>,
        generation: u64,
        indexable: bool,
    ) -> Result<(), Refused> {
        if self.config.privacy_guard && !key.personal_scope && answer_looks_personal(&answer) {
            return Err(Refused::Personal);
        }
        if self.generation() != generation {
            return Err(Refused::Invalidated);
        }
        let ttl = self.ttl();
        let model: Arc<str> = model.into();
        let expires_at_ms = ttl.map_or(0, |t| now_ms().saturating_add(t.as_millis() as u64));
        let put = |answer: Arc<Answer>, model: Arc<str>| {
            Job::Put(Put {
                key: key.exact,
                model,
                expires_at_ms,
                answer,
            })
        };
        if let Some(semantic) = self.semantic.as_ref().filter(|_| indexable) {
            semantic.insert(key, model.clone(), expires_at_ms);
        }
        match &self.tier {
            Tier::Local { memory, file } => {
                let expires = ttl.map(|t| Instant::now() + t);
                let size = answer.size() + model.len();
                let job = file.as_ref().map(|_| put(answer.clone(), model.clone()));
                memory.put(&key.exact, model, answer, size, expires);
                // An invalidation moves the generation before it clears: either it cleared this
                // entry, or this sees the move and takes the entry back out.
                if self.generation() != generation {
                    memory.remove(&key.exact);
                    return Err(Refused::Invalidated);
                }
                if let (Some(file), Some(job)) = (file, job) {
                    if !file.send(job) {
                        Stats::add(&self.stats.errors);
                        return Err(Refused::Busy);
                    }
                }
            }
            Tier::Shared(thread) => {
                if !thread.send(put(answer, model)) {
                    Stats::add(&self.stats.errors);
                    return Err(Refused::Busy);
                }
            }
        }
        Ok(())
    }

    /// Drops every entry, or those of `model`, from memory and the store; how many (a file-backed
    /// store's count is memory's). Counters go back to zero.
    pub async fn invalidate(&self, model: Option<&str>) -> Result<u64, String> {
        self.generation.fetch_add(1, Ordering::SeqCst);
        if let Some(semantic) = &self.semantic {
            semantic.invalidate(model).await;
        }
        let (tx, rx) = oneshot::channel();
        let job = Job::Invalidate(model.map(str::to_string), tx);
        let removed = match &self.tier {
            Tier::Local { memory, file } => {
                let n = memory.invalidate(model) as u64;
                if let Some(file) = file {
                    ask(file, job, rx).await?;
                }
                n
            }
            Tier::Shared(thread) => ask(thread, job, rx).await?,
        };
        self.stats.reset();
        Ok(removed)
    }

    /// Entries and bytes held.
    pub async fn size(&self) -> Result<(u64, u64), String> {
        match &self.tier {
            Tier::Local { memory, .. } => {
                let (entries, bytes) = memory.size();
                Ok((entries as u64, bytes as u64))
            }
            Tier::Shared(thread) => {
                let (tx, rx) = oneshot::channel();
                ask(thread, Job::Size(tx), rx).await
            }
        }
    }

    /// Waits (blocking) until the store has every write made so far: for shutdown.
    pub fn flush(&self, limit: Duration) {
        if let Some(semantic) = &self.semantic {
            semantic.flush(limit);
        }
        match &self.tier {
            Tier::Local {
                file: Some(thread), ..
            }
            | Tier::Shared(thread) => thread.flush(limit),
            Tier::Local { file: None, .. } => {}
        }
    }

    fn ttl(&self) -> Option<Duration> {
        self.config.ttl.filter(|&t| t > 0).map(Duration::from_secs)
    }
}

/// Management calls wait longer than lookups: they are rare and a person is waiting.
const MANAGE_TIMEOUT: Duration = Duration::from_secs(5);

async fn ask<T>(
    thread: &StoreThread,
    job: Job,
    rx: oneshot::Receiver<Result<T, super::store::StoreError>>,
) -> Result<T, String> {
    if !thread.send(job) {
        return Err("the cache's store is busy".into());
    }
    match monoio::time::timeout(MANAGE_TIMEOUT, rx).await {
        Ok(Ok(result)) => result.map_err(|e| e.to_string()),
        Ok(Err(_)) => Err("the cache's store stopped".into()),
        Err(_) => Err(format!(
            "the cache's store did not answer within {MANAGE_TIMEOUT:?}"
        )),
    }
}

/// The semantic layer's vectors file and entry log, beside the store's file (`None`: in memory,
/// for the memory backend or a store that could not be opened).
fn semantic_files(config: &CacheConfig, store_failed: bool) -> Option<(PathBuf, PathBuf)> {
    let base = match config.backend {
        _ if store_failed => return None,
        CacheBackend::Memory => return None,
        CacheBackend::Mmap => config.mmap_path.clone(),
        CacheBackend::Sqlite => config.db_path.clone(),
        // Each router keeps its own index of the shared entries.
        CacheBackend::Redis => "llm_cache".to_string(),
    };
    Some((
        PathBuf::from(format!("{base}.vectors")),
        PathBuf::from(format!("{base}.semantic")),
    ))
}

fn answer_looks_personal(a: &Answer) -> bool {
    looks_personal(&a.content)
        || looks_personal(&a.thinking)
        || a.tool_calls
            .iter()
            .any(|c| looks_personal(&c.function.arguments.to_string()))
}

fn open_store(
    config: &CacheConfig,
    stats: &Arc<Stats>,
    memory: Arc<MemoryStore<Answer>>,
) -> Result<Tier, String> {
    let file: Box<dyn Durable> = match config.backend {
        CacheBackend::Memory => return Ok(Tier::Local { memory, file: None }),
        CacheBackend::Redis => {
            // Reads and writes may take a little longer than a lookup waits: a slow write is
            // not a miss.
            let timeout = config.lookup_timeout.max(Duration::from_millis(250));
            let store = RedisStore::new(&config.redis_url, timeout).map_err(|e| e.to_string())?;
            let thread =
                StoreThread::start(Backend::Shared(Box::new(store)), stats.clone(), "redis")
                    .map_err(|e| e.to_string())?;
            return Ok(Tier::Shared(thread));
        }
        CacheBackend::Mmap => Box::new(
            MmapLog::open(Path::new(&config.mmap_path))
                .map_err(|e| format!("{}: {e}", config.mmap_path))?,
        ),
        CacheBackend::Sqlite => Box::new(
            SqliteStore::open(Path::new(&config.db_path))
                .map_err(|e| format!("{}: {e}", config.db_path))?,
        ),
    };
    let mut file = file;
    let loaded = load(&mut *file, &memory).map_err(|e| e.to_string())?;
    super::thread::give_back_freed_memory();
    tracing::info!(
        backend = config.backend.name(),
        entries = loaded,
        "response cache loaded"
    );
    let thread = StoreThread::start(
        Backend::Durable(file, memory.clone()),
        stats.clone(),
        config.backend.name(),
    )
    .map_err(|e| e.to_string())?;
    Ok(Tier::Local {
        memory,
        file: Some(thread),
    })
}

/// Fills `memory` from a file's live records (oldest first, so the newest stay when it overflows).
fn load(
    file: &mut dyn Durable,
    memory: &MemoryStore<Answer>,
) -> Result<usize, super::store::StoreError> {
    let now = now_ms();
    let start = Instant::now();
    let mut loaded = 0;
    for r in file.load(now)? {
        let Some(answer) = Answer::decode(&r.value) else {
            continue;
        };
        let expires = (r.expires_at_ms != 0)
            .then(|| start + Duration::from_millis(r.expires_at_ms.saturating_sub(now)));
        let size = answer.size() + r.model.len();
        memory.put(&r.key, r.model.into(), Arc::new(answer), size, expires);
        loaded += 1;
    }
    Ok(loaded)
}
