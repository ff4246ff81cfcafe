//! The accounting thread: takes the workers' records, keeps the totals, writes a batch to the
//! database every `flush_every`, and answers the routes' queries (after writing what it holds, so
//! an answer includes every request that ended before it was asked).
//!
//! It never blocks on the channel: it wakes every `TICK` and takes everything waiting. A receiver
//! blocked on the channel would have every worker's send wake it, one futex call and one context
//! switch per request (on a busy box, on the workers' own cores).

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use crossbeam_channel::{Receiver, TryRecvError};
use rustc_hash::FxHashMap;
use serde_json::Value;

use super::db::{add2, Batch, Db, Pair};
use super::{Health, Msg, Query, Record, Totals};

/// How often the thread looks at the channel: the most a query or the stop waits.
const TICK: Duration = Duration::from_millis(20);
/// How often the totals others read are republished while records arrive.
const PUBLISH_EVERY: Duration = Duration::from_millis(100);
/// How often a database that cannot be opened is tried again.
const REOPEN_EVERY: Duration = Duration::from_secs(5);

pub struct Writer {
    path: PathBuf,
    flush_every: Duration,
    published: Arc<ArcSwap<Totals>>,
    health: Arc<Health>,
    db: Option<Db>,
    /// The open file's (device, inode): a file deleted or replaced under the router would take
    /// every later write with it, unseen.
    identity: Option<(u64, u64)>,
    next_open: Instant,
    pending: Batch,
    pending_records: u64,
    /// Per endpoint × model, of what is written: (all time, since start), each (input, output).
    /// What is pending is added when the totals are published: an answer costs one map update.
    pairs: FxHashMap<Pair, [(u64, u64); 2]>,
    /// Cache hits since start: (hits, input, output).
    cache_saved: (u64, u64, u64),
    version: u64,
    dirty: bool,
    /// The current failure streak was logged.
    failing: bool,
}

impl Writer {
    pub fn new(
        path: PathBuf,
        flush_every: Duration,
        published: Arc<ArcSwap<Totals>>,
        health: Arc<Health>,
    ) -> Self {
        Writer {
            path,
            flush_every,
            published,
            health,
            db: None,
            identity: None,
            next_open: Instant::now(),
            pending: Batch::default(),
            pending_records: 0,
            pairs: FxHashMap::default(),
            cache_saved: (0, 0, 0),
            version: 0,
            dirty: false,
            failing: false,
        }
    }

    pub fn run(mut self, rx: Receiver<Msg>) {
        self.open();
        if let Some(db) = &self.db {
            match db.totals() {
                Ok(t) => self.pairs = t.into_iter().map(|(k, v)| (k, [v, (0, 0)])).collect(),
                Err(e) => self.failed("read the totals", &e.to_string()),
            }
        }
        self.publish();
        let mut next_flush = Instant::now() + self.flush_every;
        let mut last_publish = Instant::now();
        loop {
            std::thread::sleep(TICK);
            // Records are stamped as they are taken, at most a tick after their answer ended.
            let now_unix = super::unix_now();
            let minute = now_unix - now_unix.rem_euclid(60);
            loop {
                match rx.try_recv() {
                    Ok(msg) => {
                        if !self.handle(msg, minute) {
                            return;
                        }
                    }
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => {
                        self.flush();
                        return;
                    }
                }
            }
            let now = Instant::now();
            if self.dirty && now >= last_publish + PUBLISH_EVERY {
                self.publish();
                last_publish = now;
            }
            if now >= next_flush {
                self.flush();
                next_flush = now + self.flush_every;
            }
        }
    }

    /// A query or the stop; `false` when the thread ends.
    fn handle(&mut self, msg: Msg, minute: i64) -> bool {
        match msg {
            Msg::Record(r) => self.add(r, minute),
            Msg::Query(q, reply) => {
                self.flush();
                let _ = reply.send(self.answer(q));
            }
            Msg::Stop(done) => {
                for attempt in 0..3 {
                    self.flush();
                    if self.pending.is_empty() {
                        break;
                    }
                    if attempt < 2 {
                        std::thread::sleep(Duration::from_millis(200));
                    }
                }
                if !self.pending.is_empty() {
                    tracing::error!(
                        records = self.pending_records,
                        path = %self.path.display(),
                        "token counts could not be written before the exit and are lost"
                    );
                }
                self.publish();
                let _ = done.send(());
                return false;
            }
        }
        true
    }

    /// Counts one answer in the series of `minute` (unix seconds, floored).
    fn add(&mut self, r: Record, minute: i64) {
        let pair = (r.endpoint, r.model);
        let t = (r.tokens.prompt, r.tokens.completion);
        if r.cached {
            let c = self.pending.cache.entry(pair.1).or_default();
            *c = (c.0 + 1, c.1.saturating_add(t.0), c.2.saturating_add(t.1));
            let s = &mut self.cache_saved;
            *s = (s.0 + 1, s.1.saturating_add(t.0), s.2.saturating_add(t.1));
        } else {
            add2(
                self.pending
                    .series
                    .entry((pair.0, pair.1, minute))
                    .or_default(),
                t,
            );
        }
        self.pending_records += 1;
        self.health
            .pending
            .store(self.pending_records, Ordering::Relaxed);
        self.dirty = true;
    }

    fn publish(&mut self) {
        self.version += 1;
        let mut totals = Totals {
            cache_saved: self.cache_saved,
            version: self.version,
            ..Totals::default()
        };
        for (pair, [all, start]) in &self.pairs {
            totals.all_time.insert(pair.clone(), *all);
            if *start != (0, 0) {
                totals.since_start.insert(pair.clone(), *start);
            }
        }
        for (pair, v) in self.pending.counts() {
            add2(totals.all_time.entry(pair.clone()).or_default(), v);
            add2(totals.since_start.entry(pair).or_default(), v);
        }
        self.published.store(Arc::new(totals));
        self.dirty = false;
    }

    fn open(&mut self) {
        if self.db.is_some() || Instant::now() < self.next_open {
            return;
        }
        match Db::open(&self.path) {
            Ok(db) => {
                self.db = Some(db);
                self.identity = file_identity(&self.path);
                self.health.db_ok.store(true, Ordering::Relaxed);
                tracing::info!(path = %self.path.display(), "token database open");
            }
            Err(e) => {
                self.next_open = Instant::now() + REOPEN_EVERY;
                self.failed("open", &e.to_string());
            }
        }
    }

    /// Writes the pending batch; on failure keeps it for the next try.
    fn flush(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        if self.db.is_some() && file_identity(&self.path) != self.identity {
            self.db = None;
            self.failed(
                "keep writing",
                "the file was deleted or replaced; a new one is made (the old file's totals are not in it)",
            );
        }
        self.open();
        let Some(db) = self.db.as_mut() else { return };
        let batch = std::mem::take(&mut self.pending);
        match db.write(&batch) {
            Ok(()) => {
                for (pair, v) in batch.counts() {
                    let [all, start] = self.pairs.entry(pair).or_default();
                    add2(all, v);
                    add2(start, v);
                }
                self.pending_records = 0;
                self.health.pending.store(0, Ordering::Relaxed);
                self.health.db_ok.store(true, Ordering::Relaxed);
                if self.failing {
                    self.failing = false;
                    tracing::info!(path = %self.path.display(), "token database writable again; held counts written");
                }
            }
            Err(e) => {
                self.pending.merge(batch);
                self.failed("write", &e.to_string());
            }
        }
    }

    fn failed(&mut self, what: &str, error: &str) {
        self.health.db_ok.store(false, Ordering::Relaxed);
        self.health.db_errors.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut last) = self.health.last_error.lock() {
            *last = Some(format!("{what}: {error}"));
        }
        if !self.failing {
            self.failing = true;
            tracing::error!(
                path = %self.path.display(),
                error,
                pending = self.pending_records,
                "token database: cannot {what}; counts are kept in memory and written when it works again"
            );
        }
    }

    fn answer(&mut self, q: Query) -> Result<Option<Value>, String> {
        let Some(db) = self.db.as_mut() else {
            return Err(self.unavailable());
        };
        let r = match q {
            Query::TokenCounts => db.token_counts().map(|mut v| {
                with_pending(&mut v, &self.pending);
                Some(v)
            }),
            // Counts are kept under the endpoint's name; `llama3` finds `llama3:latest`.
            Query::Stats(model) => match db.stats(&model) {
                Ok(None) if !model.contains(':') => db.stats(&format!("{model}:latest")),
                other => other,
            },
            Query::Aggregate { days, trim } => db
                .aggregate(days, trim, super::unix_now())
                .map(|groups| Some(Value::from(groups as u64))),
        };
        r.map_err(|e| {
            let msg = format!("token database: {e}");
            self.failed("read", &e.to_string());
            msg
        })
    }

    fn unavailable(&self) -> String {
        let last = self.health.last_error.lock().ok().and_then(|l| l.clone());
        format!(
            "token database unavailable: {}",
            last.unwrap_or_else(|| "not open".into())
        )
    }
}

fn file_identity(path: &std::path::Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// Adds the counts not written yet (the database refused them) to a `/api/token_counts` answer,
/// so that it still includes every request that ended.
fn with_pending(v: &mut Value, pending: &Batch) {
    if pending.is_empty() {
        return;
    }
    let num = |v: &Value| v.as_u64().unwrap_or(0);
    if let Some(rows) = v["breakdown"].as_array_mut() {
        for ((ep, model), (i, o)) in &pending.counts() {
            let at = rows
                .iter()
                .position(|r| r["endpoint"] == **ep && r["model"] == **model);
            let row = match at {
                Some(at) => &mut rows[at],
                None => {
                    rows.push(serde_json::json!({"endpoint": &**ep, "model": &**model,
                        "input_tokens": 0, "output_tokens": 0, "total_tokens": 0}));
                    rows.last_mut().expect("pushed")
                }
            };
            row["input_tokens"] = (num(&row["input_tokens"]) + i).into();
            row["output_tokens"] = (num(&row["output_tokens"]) + o).into();
            row["total_tokens"] = (num(&row["total_tokens"]) + i + o).into();
        }
        let total: u64 = rows.iter().map(|r| num(&r["total_tokens"])).sum();
        v["total_tokens"] = total.into();
    }
    let saved = &mut v["cache_saved"];
    for (h, i, o) in pending.cache.values() {
        saved["hits"] = (num(&saved["hits"]) + h).into();
        saved["input_tokens"] = (num(&saved["input_tokens"]) + i).into();
        saved["output_tokens"] = (num(&saved["output_tokens"]) + o).into();
        saved["total_tokens"] = (num(&saved["total_tokens"]) + i + o).into();
    }
}
