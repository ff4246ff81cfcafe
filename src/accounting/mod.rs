//! Token accounting (SPEC §8.4): every answer's prompt and completion tokens per endpoint × model,
//! read off the answer by a `tap::Tap`, handed by the workers to one accounting thread over a
//! bounded lock-free channel (a worker never waits), kept in SQLite at `db_path` in batches
//! (`db.rs`), and answered from there (`/api/token_counts`, `/api/stats`).
//!
//! Nothing counted is lost quietly: a batch that cannot be written stays in memory and is tried
//! again each second (the failure is logged and counted in `/metrics`); a full channel, which means
//! the thread is stuck, counts the records it drops. SIGTERM flushes what is left.

pub mod db;
pub mod feed;
pub mod tap;
mod writer;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use crossbeam_channel::{Sender, TrySendError};
use serde_json::Value;

pub use tap::{Tap, Tokens};

/// Records in flight between the workers and the thread; far above what a second of traffic at
/// full speed produces, so only a stuck thread fills it.
const CHANNEL: usize = 65_536;

/// How long a route waits for the accounting thread's answer.
const QUERY_TIMEOUT: Duration = Duration::from_secs(10);

/// One answer's count.
pub struct Record {
    pub endpoint: Arc<str>,
    pub model: Arc<str>,
    pub tokens: Tokens,
    /// Answered from the cache: tokens saved, counted apart.
    pub cached: bool,
}

/// A question for the database, answered on the accounting thread.
pub enum Query {
    TokenCounts,
    Stats(String),
    Aggregate { days: u64, trim: bool },
}

enum Msg {
    Record(Record),
    Query(
        Query,
        futures_channel::oneshot::Sender<Result<Option<Value>, String>>,
    ),
    Stop(std::sync::mpsc::Sender<()>),
}

/// Totals the thread publishes after every change: for `/api/usage`, the live feed and `/metrics`.
#[derive(Clone, Debug, Default)]
pub struct Totals {
    /// Everything in the database plus what is not written yet: (input, output) per endpoint × model.
    pub all_time: BTreeMap<(Arc<str>, Arc<str>), (u64, u64)>,
    /// Since this process started (Prometheus counters).
    pub since_start: BTreeMap<(Arc<str>, Arc<str>), (u64, u64)>,
    /// Cache hits since start: (hits, input, output) tokens saved.
    pub cache_saved: (u64, u64, u64),
    /// Bumped on every change.
    pub version: u64,
}

/// The state of the accounting thread, for `/metrics` and `/health`.
#[derive(Default)]
pub struct Health {
    pub db_ok: AtomicBool,
    pub db_errors: AtomicU64,
    pub dropped: AtomicU64,
    /// Records counted but not in the database yet.
    pub pending: AtomicU64,
    pub last_error: Mutex<Option<String>>,
}

pub struct Accounting {
    tx: Sender<Msg>,
    pub totals: Arc<ArcSwap<Totals>>,
    pub health: Arc<Health>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Accounting {
    /// Starts the thread. The database opens on it: a file that cannot be opened is logged and
    /// retried, and counting goes on in memory meanwhile.
    pub fn start(db_path: PathBuf, flush_every: Duration) -> std::io::Result<Accounting> {
        let (tx, rx) = crossbeam_channel::bounded(CHANNEL);
        let totals = Arc::new(ArcSwap::from_pointee(Totals::default()));
        let health = Arc::new(Health::default());
        let w = writer::Writer::new(db_path, flush_every, totals.clone(), health.clone());
        let thread = std::thread::Builder::new()
            .name("accounting".into())
            .spawn(move || w.run(rx))?;
        Ok(Accounting {
            tx,
            totals,
            health,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Counts one answer. Never blocks: a full channel drops the record and counts it.
    pub fn record(&self, r: Record) {
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) =
            self.tx.try_send(Msg::Record(r))
        {
            if self
                .health
                .dropped
                .fetch_add(1, Ordering::Relaxed)
                .is_multiple_of(10_000)
            {
                tracing::error!("token accounting is not keeping up: records dropped");
            }
        }
    }

    /// Asks the database; `Ok(None)`: nothing found (an unknown model's stats).
    pub async fn query(&self, q: Query) -> Result<Option<Value>, String> {
        let (reply, rx) = futures_channel::oneshot::channel();
        self.tx
            .try_send(Msg::Query(q, reply))
            .map_err(|_| "the accounting thread is busy".to_string())?;
        match monoio::time::timeout(QUERY_TIMEOUT, rx).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(_)) => Err("the accounting thread stopped".into()),
            Err(_) => Err("the token database did not answer in time".into()),
        }
    }

    /// Writes what is left and stops the thread (SIGTERM); waits at most `wait`.
    pub fn flush_and_stop(&self, wait: Duration) {
        let (done, rx) = std::sync::mpsc::channel();
        if self.tx.send_timeout(Msg::Stop(done), wait).is_ok() {
            let _ = rx.recv_timeout(wait);
        }
        if let Some(t) = self.thread.lock().ok().and_then(|mut t| t.take()) {
            if t.is_finished() {
                let _ = t.join();
            }
        }
    }
}

/// Now, in unix seconds.
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}
