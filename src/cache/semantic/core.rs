//! The embedding core: one thread, pinned to its own CPU where there is more than one, that owns
//! the model, the vectors and the graphs. Workers send it jobs over a bounded channel and await
//! the answer in their own runtime, at most `cache_semantic_budget`; it takes what is waiting
//! (up to `BATCH` lookups) and embeds it in one pass, without waiting for more.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use crossbeam_channel::{Receiver, RecvTimeoutError};
use futures_channel::oneshot;

use super::embedder::{unit, Embedder};
use super::index::Index;
use super::query::{self, Query};
use super::vectors::{Arena, Quantized, SCRATCH};
use super::{guard, Counters, Found, DIMS};
use crate::cache::answer::Answer;
use crate::cache::key::Family;
use crate::cache::memory::MemoryStore;
use crate::cache::mmap_log::MmapLog;
use crate::cache::store::{now_ms, Durable, Record};

/// Lookups embedded in one pass at most.
const BATCH: usize = 32;
/// Candidates the guard looks at per lookup.
const CANDIDATES: usize = 8;
/// Two conversations' histories must be at least this alike for their next questions to share an
/// answer (their histories' BM25 summaries, compared as the questions are).
const HISTORY_MIN: f32 = 0.85;
/// Prepared lookups kept for the insert that follows a miss.
const RECENT: usize = 4096;
/// How often the entry log drops what died.
const COMPACT_EVERY: Duration = Duration::from_secs(300);

pub enum Job {
    Lookup {
        family: Family,
        body: Bytes,
        exact: [u8; 32],
        scope: [u8; 16],
        deadline: Instant,
        reply: oneshot::Sender<Option<Found>>,
    },
    Insert {
        exact: [u8; 32],
        model: Arc<str>,
        expires_at_ms: u64,
    },
    Forget([u8; 32]),
    Invalidate(Option<String>, oneshot::Sender<()>),
    Flush(std::sync::mpsc::Sender<()>),
}

pub struct Settings {
    pub model_dir: PathBuf,
    pub threshold: f32,
    pub history_weight: f32,
    /// `None`: vectors in anonymous memory, entries not kept across restarts.
    pub files: Option<(PathBuf, PathBuf)>,
    /// Test hook: a pause before every pass, to stand for a core that cannot keep up.
    pub stall: Duration,
    /// Entries kept at most (`cache_max_entries`); the oldest go first.
    pub max_entries: usize,
}

/// A lookup's texts and vectors, kept for the insert that follows its miss.
struct Prepared {
    question: String,
    mixed: [f32; DIMS],
    history: Option<[f32; DIMS]>,
    scope: [u8; 16],
}

struct Entry {
    key: [u8; 32],
    scope: [u8; 16],
    model: Arc<str>,
    expires_at_ms: u64,
    question: Box<str>,
}

pub struct Core {
    embedder: Embedder,
    settings: Settings,
    arena: Arena,
    index: Index,
    entries: Vec<Option<Entry>>,
    by_key: HashMap<[u8; 32], u32>,
    free: Vec<u32>,
    /// Keys in the order they were indexed: the oldest leave first when the index is full (the
    /// store's own evictions are only seen when a hit finds the answer gone).
    order: std::collections::VecDeque<[u8; 32]>,
    recent: lru::LruCache<[u8; 32], Prepared>,
    log: Option<MmapLog>,
    unwritten: Vec<Record>,
    memory: Option<Arc<MemoryStore<Answer>>>,
    counters: Arc<Counters>,
    last_compaction: Instant,
}

impl Core {
    pub fn open(
        settings: Settings,
        memory: Option<Arc<MemoryStore<Answer>>>,
        counters: Arc<Counters>,
    ) -> Result<Core, String> {
        let embedder = Embedder::load(&settings.model_dir).map_err(|e| e.to_string())?;
        let files = settings.files.as_ref().map(|(vectors, entries)| {
            let arena =
                Arena::open(Some(vectors)).map_err(|e| format!("{}: {e}", vectors.display()))?;
            let log = MmapLog::open(entries).map_err(|e| format!("{}: {e}", entries.display()))?;
            Ok::<_, String>((arena, log))
        });
        let (arena, log) = match files {
            Some(Ok((arena, log))) => (arena, Some(log)),
            other => {
                if let Some(Err(e)) = other {
                    // Like the entry store: a file problem costs persistence, not the feature.
                    tracing::error!(error = %e, "semantic cache: its files cannot be opened; keeping its index in memory only");
                }
                (Arena::open(None).map_err(|e| e.to_string())?, None)
            }
        };
        let index = Index::new(arena.view());
        Ok(Core {
            embedder,
            settings,
            arena,
            index,
            entries: vec![None],
            by_key: HashMap::new(),
            free: Vec::new(),
            order: std::collections::VecDeque::new(),
            recent: lru::LruCache::new(std::num::NonZeroUsize::new(RECENT).expect("non-zero")),
            log,
            unwritten: Vec::new(),
            memory,
            counters,
            last_compaction: Instant::now(),
        })
    }

    /// Serves jobs until every sender is gone.
    pub fn run(mut self, jobs: Receiver<Job>) {
        self.load();
        loop {
            let first = match jobs.recv_timeout(Duration::from_secs(1)) {
                Ok(job) => job,
                Err(RecvTimeoutError::Timeout) => {
                    self.housekeeping(false);
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => break,
            };
            if !self.settings.stall.is_zero() {
                std::thread::sleep(self.settings.stall);
            }
            let mut lookups = Vec::new();
            let mut job = Some(first);
            while let Some(j) = job.take() {
                match j {
                    Job::Lookup { .. } => lookups.push(j),
                    other => self.handle(other),
                }
                if lookups.len() < BATCH {
                    job = jobs.try_recv().ok();
                }
            }
            self.lookups(lookups);
            self.housekeeping(false);
        }
        self.housekeeping(true);
    }

    fn handle(&mut self, job: Job) {
        match job {
            Job::Lookup { .. } => self.lookups(vec![job]),
            Job::Insert {
                exact,
                model,
                expires_at_ms,
            } => self.insert(exact, model, expires_at_ms),
            Job::Forget(key) => self.forget(&key),
            Job::Invalidate(model, done) => {
                self.invalidate(model.as_deref());
                let _ = done.send(());
            }
            Job::Flush(done) => {
                self.housekeeping(true);
                let _ = done.send(());
            }
        }
    }

    fn lookups(&mut self, jobs: Vec<Job>) {
        let now = Instant::now();
        let mut asked = Vec::with_capacity(jobs.len());
        for job in jobs {
            let Job::Lookup {
                family,
                body,
                exact,
                scope,
                deadline,
                reply,
            } = job
            else {
                continue;
            };
            if deadline <= now || reply.is_canceled() {
                Counters::add(&self.counters.late);
                continue;
            }
            match query::read(family, &body) {
                Some(q) => asked.push((q, exact, scope, reply)),
                None => {
                    Counters::add(&self.counters.ineligible);
                    let _ = reply.send(None);
                }
            }
        }
        if asked.is_empty() {
            return;
        }
        let mut texts: Vec<&str> = Vec::with_capacity(asked.len() * 2);
        for (q, ..) in &asked {
            texts.push(&q.question);
            if let Some(h) = &q.history {
                texts.push(h);
            }
        }
        let started = Instant::now();
        let vectors = match self.embedder.embed(&texts) {
            Ok(v) => v,
            Err(e) => {
                tracing::error!(error = %e, "semantic cache: embedding failed");
                Counters::add(&self.counters.errors);
                return;
            }
        };
        self.counters.observe_pass(started.elapsed(), asked.len());
        let mut vectors = vectors.into_iter();
        for (q, exact, scope, reply) in asked {
            let Query { question, history } = q;
            let Some(question_v) = vectors.next() else {
                break;
            };
            let history_v = history.as_ref().and_then(|_| vectors.next());
            let mixed = match &history_v {
                Some(h) => mix(h, &question_v, self.settings.history_weight),
                None => question_v,
            };
            let prepared = Prepared {
                question,
                mixed,
                history: history_v,
                scope,
            };
            let found = self.search(&prepared);
            self.recent.put(exact, prepared);
            let _ = reply.send(found);
        }
    }

    /// The best entry of the lookup's scope that is similar enough and that the guard lets
    /// answer it.
    fn search(&mut self, p: &Prepared) -> Option<Found> {
        if self
            .arena
            .write(SCRATCH, &Quantized::new(&p.mixed), None)
            .is_err()
        {
            return None;
        }
        let now = now_ms();
        let slots = {
            let entries = &self.entries;
            let live = |id: u32| live_in(entries, id, &p.scope, now);
            self.index.search(&p.scope, CANDIDATES, &live)
        };
        let mut ranked: Vec<(f32, Option<f32>, u32)> = slots
            .into_iter()
            .filter_map(|id| {
                let (sim, hist) = self.arena.similarity(id, &p.mixed, p.history.as_ref())?;
                Some((sim, hist, id))
            })
            .filter(|(sim, ..)| *sim >= self.settings.threshold)
            .collect();
        ranked.sort_by(|a, b| b.0.total_cmp(&a.0));
        for (sim, hist, id) in ranked {
            let Some(entry) = self.entries.get(id as usize).and_then(Option::as_ref) else {
                continue;
            };
            let histories_agree = match (p.history.is_some(), self.arena.has_history(id)) {
                (false, false) => true,
                (true, true) => hist.is_some_and(|h| h >= HISTORY_MIN),
                _ => false,
            };
            if !histories_agree {
                Counters::add(&self.counters.history_refused);
                continue;
            }
            if guard::agrees(&p.question, &entry.question).is_err() {
                Counters::add(&self.counters.guard_refused);
                continue;
            }
            if self
                .memory
                .as_ref()
                .is_some_and(|m| !m.contains(&entry.key))
            {
                let key = entry.key;
                self.forget(&key);
                continue;
            }
            return Some(Found {
                key: entry.key,
                similarity: sim.min(1.0),
            });
        }
        None
    }

    fn insert(&mut self, exact: [u8; 32], model: Arc<str>, expires_at_ms: u64) {
        let Some(p) = self.recent.pop(&exact) else {
            // Its lookup was never embedded (over budget, or not a plain conversation).
            return;
        };
        self.forget(&exact);
        let id = match self.free.pop() {
            Some(id) => id,
            None => {
                self.entries.push(None);
                (self.entries.len() - 1) as u32
            }
        };
        let history = p.history.as_ref().map(Quantized::new);
        let checksum = match self
            .arena
            .write(id, &Quantized::new(&p.mixed), history.as_ref())
        {
            Ok(sum) => sum,
            Err(e) => {
                tracing::error!(error = %e, "semantic cache: the vectors file cannot grow");
                Counters::add(&self.counters.errors);
                self.free.push(id);
                return;
            }
        };
        let entry = Entry {
            key: exact,
            scope: p.scope,
            model,
            expires_at_ms,
            question: p.question.into_boxed_str(),
        };
        if self.log.is_some() {
            self.unwritten.push(persisted(id, &entry, checksum));
        }
        self.place(id, entry);
    }

    fn place(&mut self, id: u32, entry: Entry) {
        self.index.insert(entry.scope, id);
        self.admit(id, entry);
    }

    /// Takes an entry in (its graph point is the caller's business).
    fn admit(&mut self, id: u32, entry: Entry) {
        self.by_key.insert(entry.key, id);
        self.order.push_back(entry.key);
        self.entries[id as usize] = Some(entry);
        while self.by_key.len() > self.settings.max_entries {
            let Some(oldest) = self.order.pop_front() else {
                break;
            };
            self.forget(&oldest);
        }
        // Keys forgotten otherwise stay in `order` until they come up: keep it from growing.
        if self.order.len() > 2 * self.settings.max_entries.max(self.by_key.len()) {
            let by_key = &self.by_key;
            self.order.retain(|k| by_key.contains_key(k));
        }
    }

    fn forget(&mut self, key: &[u8; 32]) {
        let Some(id) = self.by_key.remove(key) else {
            return;
        };
        if let Some(entry) = self.entries[id as usize].take() {
            self.free.push(id);
            let now = now_ms();
            let entries = &self.entries;
            let scope = entry.scope;
            self.index
                .died(&scope, &|s| live_in(entries, s, &scope, now));
        }
    }

    fn invalidate(&mut self, model: Option<&str>) {
        let keys: Vec<[u8; 32]> = self
            .entries
            .iter()
            .flatten()
            .filter(|e| model.is_none_or(|m| &*e.model == m))
            .map(|e| e.key)
            .collect();
        match model {
            None => {
                self.index.clear();
                self.by_key.clear();
                self.order.clear();
                self.entries = vec![None];
                self.free.clear();
                self.unwritten.clear();
            }
            Some(m) => {
                for k in keys {
                    self.forget(&k);
                }
                self.unwritten.retain(|r| r.model != m);
            }
        }
        if let Some(log) = &mut self.log {
            if let Err(e) = log.invalidate(model) {
                tracing::error!(error = %e, "semantic cache: the entry log could not be cleared");
            }
        }
    }

    /// Writes what waits, drops what died from the log now and then; everything at `shutdown`.
    fn housekeeping(&mut self, shutdown: bool) {
        self.counters.entries.store(
            self.by_key.len() as u64,
            std::sync::atomic::Ordering::Relaxed,
        );
        let Some(log) = &mut self.log else {
            return;
        };
        if !self.unwritten.is_empty() {
            self.arena.flush();
            if let Err(e) = log.put(&self.unwritten) {
                tracing::error!(error = %e, "semantic cache: entries could not be written");
                Counters::add(&self.counters.errors);
            }
            self.unwritten.clear();
        }
        if shutdown {
            if let Some(path) = self.graph_dump() {
                if let Err(e) = self.index.dump(&path) {
                    tracing::warn!(error = %e, "semantic cache: the graphs could not be written (the next start rebuilds them)");
                }
            }
        }
        let Some(log) = &mut self.log else {
            return;
        };
        if shutdown || self.last_compaction.elapsed() >= COMPACT_EVERY {
            self.last_compaction = Instant::now();
            let by_key = &self.by_key;
            let _ = log.compact(now_ms(), &|k| by_key.contains_key(k));
            if shutdown {
                let _ = log.sync();
            }
        }
    }

    /// Where the graphs are written at shutdown: beside the vectors file.
    fn graph_dump(&self) -> Option<PathBuf> {
        self.log.as_ref()?;
        self.settings
            .files
            .as_ref()
            .map(|(vectors, _)| vectors.with_extension("hnsw"))
    }

    /// Reads the entries of an earlier run back (those whose vectors are intact and, with a
    /// local store, whose answers are still there) and builds their graphs.
    fn load(&mut self) {
        let Some(log) = &mut self.log else {
            return;
        };
        let started = Instant::now();
        let records = match log.load(now_ms()) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "semantic cache: the entry log could not be read");
                return;
            }
        };
        let mut loaded = 0usize;
        for r in records {
            let Some(Logged {
                id,
                scope,
                checksum,
                question,
            }) = decode(&r.value)
            else {
                continue;
            };
            let intact = self.arena.checksum(id) == Some(checksum);
            let answered = self.memory.as_ref().is_none_or(|m| m.contains(&r.key));
            if !intact || !answered || self.by_key.contains_key(&r.key) {
                continue;
            }
            if self.entries.len() <= id as usize {
                self.entries.resize_with(id as usize + 1, || None);
            }
            if self.entries[id as usize].is_some() {
                continue;
            }
            let entry = Entry {
                key: r.key,
                scope,
                model: r.model.into(),
                expires_at_ms: r.expires_at_ms,
                question,
            };
            self.admit(id, entry);
            loaded += 1;
        }
        // The graphs as the last run left them, where they still fit the entries; the rest is
        // built again.
        let reloaded = match self.graph_dump() {
            Some(path) => {
                let entries = &self.entries;
                self.index.load(&path, &|scope, slot| {
                    entries
                        .get(slot as usize)
                        .and_then(Option::as_ref)
                        .is_some_and(|e| &e.scope == scope)
                })
            }
            None => 0,
        };
        let covered = self.index.covered();
        let missing: Vec<(u32, [u8; 16])> = self
            .entries
            .iter()
            .enumerate()
            .filter_map(|(id, e)| e.as_ref().map(|e| (id as u32, e.scope)))
            .filter(|(id, _)| !covered.contains(id))
            .collect();
        for (id, scope) in &missing {
            self.index.insert(*scope, *id);
        }
        self.free = (1..self.entries.len() as u32)
            .filter(|&id| self.entries[id as usize].is_none())
            .collect();
        self.counters
            .entries
            .store(loaded as u64, std::sync::atomic::Ordering::Relaxed);
        tracing::info!(
            entries = loaded,
            scopes = self.index.scopes(),
            reloaded_points = reloaded,
            inserted_points = missing.len(),
            took_ms = started.elapsed().as_millis() as u64,
            "semantic cache index built"
        );
    }
}

fn live_in(entries: &[Option<Entry>], id: u32, scope: &[u8; 16], now_ms: u64) -> bool {
    entries
        .get(id as usize)
        .and_then(Option::as_ref)
        .is_some_and(|e| &e.scope == scope && (e.expires_at_ms == 0 || e.expires_at_ms > now_ms))
}

/// normalise(α·history + (1−α)·question), the reference's mix.
fn mix(history: &[f32; DIMS], question: &[f32; DIMS], alpha: f32) -> [f32; DIMS] {
    let mut out = [0f32; DIMS];
    for ((o, h), q) in out.iter_mut().zip(history).zip(question) {
        *o = alpha * h + (1.0 - alpha) * q;
    }
    unit(&out)
}

/// An entry as the log keeps it: slot, scope, the slot's checksum, the question.
fn persisted(id: u32, e: &Entry, checksum: [u8; 8]) -> Record {
    let mut value = Vec::with_capacity(4 + 16 + 8 + e.question.len());
    value.extend_from_slice(&id.to_le_bytes());
    value.extend_from_slice(&e.scope);
    value.extend_from_slice(&checksum);
    value.extend_from_slice(e.question.as_bytes());
    Record {
        key: e.key,
        model: e.model.to_string(),
        expires_at_ms: e.expires_at_ms,
        value,
    }
}

/// What `decode` reads back of a logged entry.
struct Logged {
    id: u32,
    scope: [u8; 16],
    checksum: [u8; 8],
    question: Box<str>,
}

fn decode(value: &[u8]) -> Option<Logged> {
    let id = u32::from_le_bytes(value.get(..4)?.try_into().ok()?);
    let logged = Logged {
        id,
        scope: value.get(4..20)?.try_into().ok()?,
        checksum: value.get(20..28)?.try_into().ok()?,
        question: std::str::from_utf8(value.get(28..)?).ok()?.into(),
    };
    (id != SCRATCH).then_some(logged)
}
