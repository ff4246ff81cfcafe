//! The token database (SQLite at `db_path`): the reference's tables, so its readers keep working,
//! plus what the router adds (cache savings, which series rows were aggregated). Only the
//! accounting thread touches it.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension};
use rustc_hash::FxHashMap;
use serde_json::{json, Value};

/// The schema this build writes (`PRAGMA user_version`). A file of the reference router has
/// version 0 and its three tables; migrating it keeps every row.
pub const SCHEMA_VERSION: i64 = 1;

/// The newest rows `/api/stats` returns, as the reference does.
const STATS_SERIES_LIMIT: i64 = 50_000;

/// Totals per endpoint × model: (input, output).
pub type PairTotals = HashMap<(Arc<str>, Arc<str>), (u64, u64)>;
/// Endpoint and model.
pub type Pair = (Arc<str>, Arc<str>);
/// Endpoint, model and minute (unix seconds, floored).
pub type MinuteKey = (Arc<str>, Arc<str>, i64);

/// One flush: everything counted since the last one.
#[derive(Default)]
pub struct Batch {
    /// Per endpoint × model × minute (the totals are their sums).
    pub series: FxHashMap<MinuteKey, (u64, u64)>,
    /// Cache hits per model: (hits, input, output) tokens saved.
    pub cache: FxHashMap<Arc<str>, (u64, u64, u64)>,
}

impl Batch {
    pub fn is_empty(&self) -> bool {
        self.series.is_empty() && self.cache.is_empty()
    }

    /// The batch's totals per endpoint × model.
    pub fn counts(&self) -> PairTotals {
        let mut counts = PairTotals::new();
        for ((ep, model, _), v) in &self.series {
            add2(counts.entry((ep.clone(), model.clone())).or_default(), *v);
        }
        counts
    }

    /// Adds `other` (a batch that could not be written) back in.
    pub fn merge(&mut self, other: Batch) {
        for (k, v) in other.series {
            add2(self.series.entry(k).or_default(), v);
        }
        for (k, (h, i, o)) in other.cache {
            let e = self.cache.entry(k).or_default();
            *e = (e.0 + h, e.1 + i, e.2 + o);
        }
    }
}

pub fn add2(to: &mut (u64, u64), v: (u64, u64)) {
    to.0 = to.0.saturating_add(v.0);
    to.1 = to.1.saturating_add(v.1);
}

pub struct Db {
    conn: Connection,
}

impl Db {
    /// Opens (creating the file and its folder) and migrates. A writer that finds the file locked
    /// waits at most 200 ms: the next flush tries again.
    pub fn open(path: &Path) -> rusqlite::Result<Db> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            let _ = std::fs::create_dir_all(dir);
        }
        let conn = Connection::open(path)?;
        conn.busy_timeout(Duration::from_millis(200))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        let mut db = Db { conn };
        db.migrate()?;
        Ok(db)
    }

    fn migrate(&mut self) -> rusqlite::Result<()> {
        let version: i64 = self
            .conn
            .pragma_query_value(None, "user_version", |r| r.get(0))?;
        if version >= SCHEMA_VERSION {
            return Ok(());
        }
        let tx = self.conn.transaction()?;
        // Version 0 → 1: the reference's tables (kept as they are when present), the daily
        // table it made lazily, the cache savings, and a mark on aggregated series rows (the
        // reference counted them again on every aggregation).
        tx.execute_batch(
            "CREATE TABLE IF NOT EXISTS token_counts (
                endpoint TEXT NOT NULL, model TEXT NOT NULL,
                input_tokens INTEGER DEFAULT 0, output_tokens INTEGER DEFAULT 0,
                total_tokens INTEGER DEFAULT 0, PRIMARY KEY (endpoint, model));
             CREATE TABLE IF NOT EXISTS token_time_series (
                id INTEGER PRIMARY KEY AUTOINCREMENT, endpoint TEXT NOT NULL, model TEXT NOT NULL,
                input_tokens INTEGER, output_tokens INTEGER, total_tokens INTEGER,
                timestamp INTEGER NOT NULL,
                FOREIGN KEY (endpoint, model) REFERENCES token_counts(endpoint, model));
             CREATE INDEX IF NOT EXISTS idx_token_time_series_timestamp ON token_time_series(timestamp);
             CREATE INDEX IF NOT EXISTS idx_token_time_series_model_ts ON token_time_series(model, timestamp);
             CREATE TABLE IF NOT EXISTS token_time_series_daily (
                id INTEGER PRIMARY KEY AUTOINCREMENT, endpoint TEXT NOT NULL, model TEXT NOT NULL,
                date TEXT NOT NULL, input_tokens INTEGER DEFAULT 0, output_tokens INTEGER DEFAULT 0,
                total_tokens INTEGER DEFAULT 0, UNIQUE(endpoint, model, date));
             CREATE TABLE IF NOT EXISTS cache_token_counts (
                model TEXT PRIMARY KEY, hits INTEGER DEFAULT 0,
                input_tokens INTEGER DEFAULT 0, output_tokens INTEGER DEFAULT 0);",
        )?;
        let has_mark: bool = tx
            .prepare(
                "SELECT 1 FROM pragma_table_info('token_time_series') WHERE name = 'aggregated'",
            )?
            .exists([])?;
        if !has_mark {
            tx.execute_batch(
                "ALTER TABLE token_time_series ADD COLUMN aggregated INTEGER NOT NULL DEFAULT 0",
            )?;
        }
        tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
        tx.commit()
    }

    /// Writes one batch in one transaction: all of it or nothing.
    pub fn write(&mut self, b: &Batch) -> rusqlite::Result<()> {
        let tx = self.conn.transaction()?;
        {
            let mut up = tx.prepare_cached(
                "INSERT INTO token_counts (endpoint, model, input_tokens, output_tokens, total_tokens)
                 VALUES (?1, ?2, ?3, ?4, ?3 + ?4)
                 ON CONFLICT(endpoint, model) DO UPDATE SET
                   input_tokens = input_tokens + excluded.input_tokens,
                   output_tokens = output_tokens + excluded.output_tokens,
                   total_tokens = total_tokens + excluded.total_tokens",
            )?;
            for ((ep, model), (i, o)) in &b.counts() {
                up.execute(params![&**ep, &**model, *i as i64, *o as i64])?;
            }
            let mut series = tx.prepare_cached(
                "INSERT INTO token_time_series (endpoint, model, input_tokens, output_tokens, total_tokens, timestamp)
                 VALUES (?1, ?2, ?3, ?4, ?3 + ?4, ?5)",
            )?;
            for ((ep, model, minute), (i, o)) in &b.series {
                series.execute(params![&**ep, &**model, *i as i64, *o as i64, minute])?;
            }
            let mut cache = tx.prepare_cached(
                "INSERT INTO cache_token_counts (model, hits, input_tokens, output_tokens)
                 VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(model) DO UPDATE SET hits = hits + excluded.hits,
                   input_tokens = input_tokens + excluded.input_tokens,
                   output_tokens = output_tokens + excluded.output_tokens",
            )?;
            for (model, (h, i, o)) in &b.cache {
                cache.execute(params![&**model, *h as i64, *i as i64, *o as i64])?;
            }
        }
        tx.commit()
    }

    /// Every endpoint × model's totals, as the router starts.
    pub fn totals(&self) -> rusqlite::Result<PairTotals> {
        let mut q = self
            .conn
            .prepare("SELECT endpoint, model, input_tokens, output_tokens FROM token_counts")?;
        let rows = q.query_map([], |r| {
            Ok((
                (
                    Arc::from(r.get::<_, String>(0)?),
                    Arc::from(r.get::<_, String>(1)?),
                ),
                (
                    r.get::<_, i64>(2)?.max(0) as u64,
                    r.get::<_, i64>(3)?.max(0) as u64,
                ),
            ))
        })?;
        rows.collect()
    }

    /// `/api/token_counts`: the reference's answer, plus what the cache saved.
    pub fn token_counts(&self) -> rusqlite::Result<Value> {
        let mut q = self.conn.prepare(
            "SELECT endpoint, model, input_tokens, output_tokens, total_tokens FROM token_counts
             ORDER BY endpoint, model",
        )?;
        let breakdown: Vec<Value> = q
            .query_map([], |r| {
                Ok(json!({
                    "endpoint": r.get::<_, String>(0)?,
                    "model": r.get::<_, String>(1)?,
                    "input_tokens": r.get::<_, i64>(2)?,
                    "output_tokens": r.get::<_, i64>(3)?,
                    "total_tokens": r.get::<_, i64>(4)?,
                }))
            })?
            .collect::<rusqlite::Result<_>>()?;
        let total: i64 = breakdown
            .iter()
            .filter_map(|b| b["total_tokens"].as_i64())
            .sum();
        let (hits, input, output): (i64, i64, i64) = self.conn.query_row(
            "SELECT COALESCE(SUM(hits), 0), COALESCE(SUM(input_tokens), 0), COALESCE(SUM(output_tokens), 0)
             FROM cache_token_counts",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )?;
        Ok(json!({
            "total_tokens": total,
            "breakdown": breakdown,
            "cache_saved": {"hits": hits, "input_tokens": input, "output_tokens": output,
                            "total_tokens": input + output},
        }))
    }

    /// `/api/stats` for one model; `None` when nothing was counted for it.
    pub fn stats(&self, model: &str) -> rusqlite::Result<Option<Value>> {
        let totals: Option<(i64, i64, i64)> = self
            .conn
            .query_row(
                "SELECT SUM(input_tokens), SUM(output_tokens), SUM(total_tokens) FROM token_counts
                 WHERE model = ?1 HAVING COUNT(*) > 0",
                [model],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?;
        let Some((input, output, total)) = totals else {
            return Ok(None);
        };
        let mut q = self.conn.prepare(
            "SELECT endpoint, input_tokens, output_tokens, total_tokens, timestamp FROM token_time_series
             WHERE model = ?1 ORDER BY timestamp DESC, id DESC LIMIT ?2",
        )?;
        let series: Vec<Value> = q
            .query_map(params![model, STATS_SERIES_LIMIT], |r| {
                Ok(json!({
                    "endpoint": r.get::<_, String>(0)?,
                    "input_tokens": r.get::<_, i64>(1)?,
                    "output_tokens": r.get::<_, i64>(2)?,
                    "total_tokens": r.get::<_, i64>(3)?,
                    "timestamp": r.get::<_, i64>(4)?,
                }))
            })?
            .collect::<rusqlite::Result<_>>()?;
        let mut q = self.conn.prepare(
            "SELECT endpoint, SUM(total_tokens) FROM token_time_series WHERE model = ?1 GROUP BY endpoint",
        )?;
        let distribution: serde_json::Map<String, Value> = q
            .query_map([model], |r| {
                Ok((r.get::<_, String>(0)?, json!(r.get::<_, i64>(1)?)))
            })?
            .collect::<rusqlite::Result<_>>()?;
        Ok(Some(json!({
            "model": model,
            "input_tokens": input,
            "output_tokens": output,
            "total_tokens": total,
            "time_series": series,
            "endpoint_distribution": distribution,
        })))
    }

    /// Rolls series rows older than `days` days (before `now`) into the daily table, each row
    /// once; `trim` deletes them afterwards. Returns the number of (endpoint, model, day) groups.
    pub fn aggregate(&mut self, days: u64, trim: bool, now: i64) -> rusqlite::Result<usize> {
        let cutoff = now.saturating_sub((days as i64).saturating_mul(86_400));
        let tx = self.conn.transaction()?;
        let groups = tx.execute(
            "INSERT INTO token_time_series_daily (endpoint, model, date, input_tokens, output_tokens, total_tokens)
             SELECT endpoint, model, date(timestamp, 'unixepoch'),
                    SUM(input_tokens), SUM(output_tokens), SUM(total_tokens)
             FROM token_time_series WHERE timestamp < ?1 AND aggregated = 0
             GROUP BY endpoint, model, date(timestamp, 'unixepoch')
             ON CONFLICT(endpoint, model, date) DO UPDATE SET
               input_tokens = input_tokens + excluded.input_tokens,
               output_tokens = output_tokens + excluded.output_tokens,
               total_tokens = total_tokens + excluded.total_tokens",
            [cutoff],
        )?;
        if trim {
            tx.execute(
                "DELETE FROM token_time_series WHERE timestamp < ?1",
                [cutoff],
            )?;
        } else {
            tx.execute(
                "UPDATE token_time_series SET aggregated = 1 WHERE timestamp < ?1 AND aggregated = 0",
                [cutoff],
            )?;
        }
        tx.commit()?;
        Ok(groups)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(ep: &str, model: &str, minute: i64, i: u64, o: u64) -> Batch {
        let mut b = Batch::default();
        b.series.insert((ep.into(), model.into(), minute), (i, o));
        b
    }

    #[test]
    fn writes_reads_and_aggregates_once() {
        let dir = crate::cache::test_dir::TestDir::new("accounting-db");
        let path = dir.path().join("sub/tokens.db");
        let mut db = Db::open(&path).unwrap();
        db.write(&batch("http://a", "m", 60, 3, 4)).unwrap();
        db.write(&batch("http://a", "m", 120, 1, 1)).unwrap();
        db.write(&batch("http://b", "m", 10 * 86_400, 5, 0))
            .unwrap();
        let counts = db.token_counts().unwrap();
        assert_eq!(counts["total_tokens"], 14);
        assert_eq!(counts["breakdown"][0]["input_tokens"], 4);
        let stats = db.stats("m").unwrap().unwrap();
        assert_eq!(stats["total_tokens"], 14);
        assert_eq!(stats["time_series"][0]["endpoint"], "http://b");
        assert_eq!(stats["endpoint_distribution"]["http://a"], 9);
        assert!(db.stats("nope").unwrap().is_none());
        // Rows older than 1 day before day 10: the two of day 0, one group.
        assert_eq!(db.aggregate(1, false, 10 * 86_400).unwrap(), 1);
        assert_eq!(db.aggregate(1, false, 10 * 86_400).unwrap(), 0);
        let daily: i64 = db
            .conn
            .query_row(
                "SELECT total_tokens FROM token_time_series_daily",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(daily, 9);
        assert_eq!(db.aggregate(1, true, 10 * 86_400).unwrap(), 0);
        let left: i64 = db
            .conn
            .query_row("SELECT COUNT(*) FROM token_time_series", [], |r| r.get(0))
            .unwrap();
        assert_eq!(left, 1);
        drop(db);
        // Reopened: totals come back, the migration does not run twice.
        let db = Db::open(&path).unwrap();
        let totals = db.totals().unwrap();
        assert_eq!(totals[&(Arc::from("http://a"), Arc::from("m"))], (4, 5));
    }

    #[test]
    fn migrates_a_reference_file() {
        let dir = crate::cache::test_dir::TestDir::new("accounting-ref");
        let path = dir.path().join("token_counts.db");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE token_counts (endpoint TEXT, model TEXT, input_tokens INTEGER DEFAULT 0,
               output_tokens INTEGER DEFAULT 0, total_tokens INTEGER DEFAULT 0, PRIMARY KEY(endpoint, model));
             CREATE TABLE token_time_series (id INTEGER PRIMARY KEY AUTOINCREMENT, endpoint TEXT, model TEXT,
               input_tokens INTEGER, output_tokens INTEGER, total_tokens INTEGER, timestamp INTEGER,
               FOREIGN KEY(endpoint, model) REFERENCES token_counts(endpoint, model));
             INSERT INTO token_counts VALUES ('http://a', 'm', 1, 2, 3);
             INSERT INTO token_time_series (endpoint, model, input_tokens, output_tokens, total_tokens, timestamp)
               VALUES ('http://a', 'm', 1, 2, 3, 60);",
        )
        .unwrap();
        drop(conn);
        let mut db = Db::open(&path).unwrap();
        db.write(&batch("http://a", "m", 120, 1, 0)).unwrap();
        let stats = db.stats("m").unwrap().unwrap();
        assert_eq!(stats["total_tokens"], 4);
        assert_eq!(stats["time_series"].as_array().unwrap().len(), 2);
    }
}
