//! The cache's own thread: every store call runs here, never on a worker. Workers hand it jobs
//! over a bounded channel (`try_send`: a full channel is a dropped write or a missed lookup, counted,
//! never a wait) and await lookups' answers over one-shot channels with a deadline. Writes to a
//! durable file are batched; its compaction runs here too, on a timer and after many writes.

use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use futures_channel::oneshot;

use super::answer::Answer;
use super::memory::MemoryStore;
use super::stats::Stats;
use super::store::{now_ms, Durable, Record, Shared, StoreError};

/// Jobs waiting at most; past it, workers do not wait for room.
const QUEUE: usize = 4096;
/// Writes to a durable file in one batch at most.
const BATCH: usize = 256;
const COMPACT_EVERY: Duration = Duration::from_secs(300);
/// A store error is logged at most this often (an outage would otherwise log every request).
const WARN_EVERY: Duration = Duration::from_secs(10);

pub type Reply<T> = oneshot::Sender<Result<T, StoreError>>;

/// An answer to keep. It is encoded into a `Record` here, on the cache's thread: the worker that
/// stored it only hands over references.
pub struct Put {
    pub key: [u8; 32],
    pub model: Arc<str>,
    /// Unix milliseconds; 0: never.
    pub expires_at_ms: u64,
    pub answer: Arc<Answer>,
}

impl Put {
    fn record(self) -> Record {
        Record {
            key: self.key,
            model: self.model.to_string(),
            expires_at_ms: self.expires_at_ms,
            value: self.answer.encode(),
        }
    }
}

pub enum Job {
    Put(Put),
    Get([u8; 32], Reply<Option<Vec<u8>>>),
    Invalidate(Option<String>, Reply<u64>),
    Size(Reply<(u64, u64)>),
    /// Answered once everything sent before it is written (shutdown).
    Flush(std::sync::mpsc::Sender<()>),
}

/// The store behind the thread.
pub enum Backend {
    /// This router's file; `memory` is the tier it mirrors (what compaction keeps).
    Durable(Box<dyn Durable>, Arc<MemoryStore<Answer>>),
    Shared(Box<dyn Shared>),
}

pub struct StoreThread {
    tx: SyncSender<Job>,
    _handle: JoinHandle<()>,
}

impl StoreThread {
    pub fn start(backend: Backend, stats: Arc<Stats>, name: &str) -> std::io::Result<Self> {
        let (tx, rx) = sync_channel(QUEUE);
        let handle = std::thread::Builder::new()
            .name(format!("cache-{name}"))
            .spawn(move || serve(backend, rx, stats))?;
        Ok(StoreThread {
            tx,
            _handle: handle,
        })
    }

    /// Hands a job over without waiting; `false` when the thread is behind (or gone).
    pub fn send(&self, job: Job) -> bool {
        match self.tx.try_send(job) {
            Ok(()) => true,
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => false,
        }
    }

    /// Waits (blocking: for shutdown only) until the jobs sent so far are done, at most `limit`.
    pub fn flush(&self, limit: Duration) {
        let (tx, rx) = std::sync::mpsc::channel();
        if self.tx.send(Job::Flush(tx)).is_ok() {
            let _ = rx.recv_timeout(limit);
        }
    }
}

/// Returns the heap this thread freed to the system: glibc keeps a thread's freed memory in the
/// thread's own arena, and a compaction's index would otherwise stay in the RSS.
pub fn give_back_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks glibc's own free lists.
    unsafe {
        libc::malloc_trim(0);
    }
}

struct Worker {
    backend: Backend,
    stats: Arc<Stats>,
    last_warn: Option<Instant>,
    writes_since_compaction: usize,
    last_compaction: Instant,
}

fn serve(backend: Backend, rx: Receiver<Job>, stats: Arc<Stats>) {
    let mut w = Worker {
        backend,
        stats,
        last_warn: None,
        writes_since_compaction: 0,
        last_compaction: Instant::now(),
    };
    loop {
        let job = match rx.recv_timeout(COMPACT_EVERY) {
            Ok(job) => job,
            Err(RecvTimeoutError::Timeout) => {
                w.maybe_compact(true);
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => return,
        };
        let mut puts = Vec::new();
        let mut next = Some(job);
        while let Some(job) = next.take() {
            match job {
                Job::Put(p) => puts.push(p.record()),
                other => {
                    w.write(&mut puts);
                    w.run(other);
                }
            }
            if puts.len() < BATCH {
                next = rx.try_recv().ok();
            }
        }
        w.write(&mut puts);
        w.maybe_compact(false);
    }
}

impl Worker {
    fn write(&mut self, puts: &mut Vec<Record>) {
        if puts.is_empty() {
            return;
        }
        let result = match &mut self.backend {
            Backend::Durable(store, _) => store.put(puts),
            Backend::Shared(store) => puts.iter().try_for_each(|r| store.put(r)),
        };
        self.writes_since_compaction += puts.len();
        puts.clear();
        self.check(result, "storing an answer");
    }

    fn run(&mut self, job: Job) {
        match (job, &mut self.backend) {
            (Job::Put(_), _) => unreachable!("puts are batched"),
            (Job::Get(key, reply), Backend::Shared(store)) => {
                let result = store.get(&key);
                if let Err(e) = &result {
                    self.warn("a lookup", e);
                }
                let _ = reply.send(result);
            }
            // A durable file's entries are all in memory: a lookup never comes here.
            (Job::Get(_, reply), Backend::Durable(..)) => {
                let _ = reply.send(Ok(None));
            }
            (Job::Invalidate(model, reply), Backend::Durable(store, _)) => {
                let result = store.invalidate(model.as_deref()).map(|()| 0);
                if let Err(e) = &result {
                    self.warn("an invalidation", e);
                }
                let _ = reply.send(result);
            }
            (Job::Invalidate(model, reply), Backend::Shared(store)) => {
                let result = store.invalidate(model.as_deref());
                if let Err(e) = &result {
                    self.warn("an invalidation", e);
                }
                let _ = reply.send(result);
            }
            (Job::Size(reply), Backend::Shared(store)) => {
                let _ = reply.send(store.size());
            }
            (Job::Size(reply), Backend::Durable(_, memory)) => {
                let (entries, bytes) = memory.size();
                let _ = reply.send(Ok((entries as u64, bytes as u64)));
            }
            (Job::Flush(done), Backend::Durable(store, _)) => {
                let result = store.sync();
                self.check(result, "syncing the cache file");
                let _ = done.send(());
            }
            (Job::Flush(done), Backend::Shared(_)) => {
                let _ = done.send(());
            }
        }
    }

    fn maybe_compact(&mut self, timer: bool) {
        let Backend::Durable(store, memory) = &mut self.backend else {
            return;
        };
        let (entries, _) = memory.size();
        let due = self.writes_since_compaction > (entries / 2).max(1024)
            || (timer && self.last_compaction.elapsed() >= COMPACT_EVERY);
        if !due || self.writes_since_compaction == 0 {
            return;
        }
        let memory = memory.clone();
        let result = store.compact(now_ms(), &|key| memory.contains(key));
        self.writes_since_compaction = 0;
        self.last_compaction = Instant::now();
        self.check(result, "compacting the cache file");
        give_back_freed_memory();
    }

    fn check(&mut self, result: Result<(), StoreError>, what: &str) {
        if let Err(e) = result {
            self.warn(what, &e);
        }
    }

    fn warn(&mut self, what: &str, e: &StoreError) {
        Stats::add(&self.stats.errors);
        if self.last_warn.is_none_or(|t| t.elapsed() >= WARN_EVERY) {
            self.last_warn = Some(Instant::now());
            tracing::warn!(error = %e, "response cache: {what} failed (requests go on as misses)");
        }
    }
}
