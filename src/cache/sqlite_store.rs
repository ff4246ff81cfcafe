//! The `sqlite` store: the cache's records in one SQLite table, in WAL mode. A batch of writes is
//! one transaction; load order is insertion order (the rowid: a replaced record is inserted anew,
//! so it counts as the newest).
//!
//! The schema is versioned by `PRAGMA user_version` (1: this file's `cache_entries`). The reference
//! Python router kept a table of the same name in another shape: found in a database of version 0,
//! it is renamed to `cache_entries_reference_v0` and left as it was, never dropped.

use std::path::Path;
use std::time::Duration;

use rusqlite::{params, Connection, TransactionBehavior};

use super::store::{self, Durable, Record, StoreError};

const SCHEMA_VERSION: i64 = 1;
/// The columns of version 1, in order: a `cache_entries` of any other shape is not this store's.
const COLUMNS: [&str; 5] = ["key", "model", "expires_at_ms", "created_at_ms", "value"];
const CREATE: &str = "
    CREATE TABLE IF NOT EXISTS cache_entries (
        key BLOB PRIMARY KEY,
        model TEXT NOT NULL,
        expires_at_ms INTEGER NOT NULL,
        created_at_ms INTEGER NOT NULL,
        value BLOB NOT NULL
    );
    CREATE INDEX IF NOT EXISTS nomyo_cache_entries_model ON cache_entries (model);
    PRAGMA user_version = 1;
";

pub struct SqliteStore {
    conn: Connection,
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError(format!("sqlite: {e}"))
    }
}

impl SqliteStore {
    /// Opens (or creates, with its directory) the database at `path` and brings its schema to
    /// this version. Fails on a database of a newer version, leaving it untouched.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let mut conn = Connection::open(path)?;
        // Another process holding the database (a backup, an inspection) stalls the cache's own
        // thread at most this long; requests stop waiting for it sooner.
        conn.busy_timeout(Duration::from_secs(1))?;
        let mode: String =
            conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            tracing::warn!(path = %path.display(), mode, "cache database: WAL mode refused");
        }
        // With WAL, a crash loses at most the last transactions, never the database.
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        migrate(&mut conn, path)?;
        Ok(SqliteStore { conn })
    }
}

/// Brings the schema to `SCHEMA_VERSION`, in one transaction.
fn migrate(conn: &mut Connection, path: &Path) -> Result<(), StoreError> {
    // Immediate: two routers opening the same new file do not both migrate it.
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let version: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
    match version {
        SCHEMA_VERSION => return Ok(()),
        0 => {}
        v => {
            return Err(StoreError(format!(
                "cache database {} has schema version {v}; this router knows {SCHEMA_VERSION}",
                path.display()
            )))
        }
    }
    let columns: Vec<String> = tx
        .prepare("SELECT name FROM pragma_table_info('cache_entries') ORDER BY cid")?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    if !columns.is_empty() && columns != COLUMNS {
        let aside = free_table_name(&tx, "cache_entries_reference_v0")?;
        tx.execute_batch(&format!("ALTER TABLE cache_entries RENAME TO \"{aside}\""))?;
        tracing::warn!(
            path = %path.display(),
            renamed_to = aside,
            "cache database: an older cache_entries table of another shape was kept under a new name"
        );
    }
    tx.execute_batch(CREATE)?;
    tx.commit()?;
    Ok(())
}

/// `base`, or `base_1`, `base_2`... whichever no table or index of the database is called yet.
fn free_table_name(conn: &Connection, base: &str) -> Result<String, StoreError> {
    let mut taken = conn.prepare("SELECT 1 FROM sqlite_master WHERE name = ?1")?;
    let mut name = base.to_owned();
    for n in 1.. {
        if !taken.exists([&name])? {
            break;
        }
        name = format!("{base}_{n}");
    }
    Ok(name)
}

/// SQLite integers are signed: expiries past year 292 million are kept as that year.
fn sql_ms(ms: u64) -> i64 {
    i64::try_from(ms).unwrap_or(i64::MAX)
}

impl Durable for SqliteStore {
    fn load(&mut self, now_ms: u64) -> Result<Vec<Record>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT key, model, expires_at_ms, value FROM cache_entries
             WHERE expires_at_ms = 0 OR expires_at_ms > ?1 ORDER BY rowid",
        )?;
        let mut rows = stmt.query([sql_ms(now_ms)])?;
        let mut live = Vec::new();
        let mut skipped = 0usize;
        while let Some(row) = rows.next()? {
            // A row this store did not write (a key of another length, a model that is not text)
            // is passed over, as a damaged record of the mmap log is.
            let record = (|| {
                let key: Vec<u8> = row.get(0).ok()?;
                Some(Record {
                    key: key.try_into().ok()?,
                    model: row.get(1).ok()?,
                    expires_at_ms: u64::try_from(row.get::<_, i64>(2).ok()?).ok()?,
                    value: row.get(3).ok()?,
                })
            })();
            match record {
                Some(r) => live.push(r),
                None => skipped += 1,
            }
        }
        if skipped > 0 {
            tracing::warn!(skipped, "cache database: unreadable rows skipped");
        }
        Ok(live)
    }

    fn put(&mut self, records: &[Record]) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        {
            let mut insert = tx.prepare_cached(
                "INSERT OR REPLACE INTO cache_entries
                 (key, model, expires_at_ms, created_at_ms, value) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            let now = sql_ms(store::now_ms());
            for r in records {
                insert.execute(params![
                    &r.key[..],
                    r.model,
                    sql_ms(r.expires_at_ms),
                    now,
                    r.value
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn invalidate(&mut self, model: Option<&str>) -> Result<(), StoreError> {
        match model {
            None => self.conn.execute("DELETE FROM cache_entries", [])?,
            Some(m) => self
                .conn
                .execute("DELETE FROM cache_entries WHERE model = ?1", [m])?,
        };
        Ok(())
    }

    fn compact(&mut self, now_ms: u64, keep: &dyn Fn(&[u8; 32]) -> bool) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        tx.execute(
            "DELETE FROM cache_entries WHERE expires_at_ms != 0 AND expires_at_ms <= ?1",
            [sql_ms(now_ms)],
        )?;
        let keys: Vec<Vec<u8>> = tx
            .prepare("SELECT key FROM cache_entries")?
            .query_map([], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        {
            let mut delete = tx.prepare("DELETE FROM cache_entries WHERE key = ?1")?;
            for key in keys {
                // A key of another length never loads: nothing to keep.
                let kept = <&[u8; 32]>::try_from(key.as_slice()).is_ok_and(keep);
                if !kept {
                    delete.execute([&key])?;
                }
            }
        }
        tx.commit()?;
        // Gives the WAL's pages back; freed pages in the database are reused by later writes.
        self.sync()
    }

    /// Moves the WAL into the database file: at shutdown, the `.db` file alone holds everything.
    fn sync(&mut self) -> Result<(), StoreError> {
        self.conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::test_dir::{rec, TestDir};
    use std::path::PathBuf;

    fn reopen_load(path: &Path) -> Vec<Record> {
        SqliteStore::open(path).unwrap().load(0).unwrap()
    }

    fn db(dir: &TestDir) -> PathBuf {
        dir.join("sub/dir/cache.db")
    }

    #[test]
    fn put_and_load_round_trip_across_reopen() {
        let dir = TestDir::new("sqlite-round-trip");
        let path = db(&dir);
        let (a, b, c) = (rec(1, "m", 0), rec(2, "n", 0), rec(3, "m", 0));
        let mut s = SqliteStore::open(&path).unwrap();
        assert_eq!(s.load(0).unwrap(), vec![]);
        s.put(&[a.clone(), b.clone()]).unwrap();
        s.put(std::slice::from_ref(&c)).unwrap();
        assert_eq!(s.load(0).unwrap(), vec![a.clone(), b.clone(), c.clone()]);
        drop(s);
        assert_eq!(reopen_load(&path), vec![a, b, c]);
    }

    #[test]
    fn the_latest_put_of_a_key_wins_at_its_own_place() {
        let dir = TestDir::new("sqlite-latest");
        let path = db(&dir);
        let a2 = Record {
            value: b"newer".to_vec(),
            ..rec(1, "m", 0)
        };
        let mut s = SqliteStore::open(&path).unwrap();
        s.put(&[rec(1, "m", 0), rec(2, "m", 0), rec(3, "m", 0)])
            .unwrap();
        s.put(std::slice::from_ref(&a2)).unwrap();
        // The same key twice in one batch: the later one stands.
        s.put(&[rec(2, "m", 0), rec(2, "x", 7)]).unwrap();
        drop(s);
        assert_eq!(reopen_load(&path), vec![rec(3, "m", 0), a2, rec(2, "x", 7)]);
    }

    #[test]
    fn invalidations_survive_reopen() {
        let dir = TestDir::new("sqlite-invalidate");
        let path = db(&dir);
        let mut s = SqliteStore::open(&path).unwrap();
        s.put(&[rec(1, "a", 0), rec(2, "b", 0), rec(3, "a", 0)])
            .unwrap();
        s.invalidate(Some("a")).unwrap();
        s.put(&[rec(4, "a", 0)]).unwrap();
        drop(s);
        assert_eq!(reopen_load(&path), vec![rec(2, "b", 0), rec(4, "a", 0)]);

        let mut s = SqliteStore::open(&path).unwrap();
        s.invalidate(None).unwrap();
        s.put(&[rec(5, "b", 0)]).unwrap();
        drop(s);
        assert_eq!(reopen_load(&path), vec![rec(5, "b", 0)]);
    }

    #[test]
    fn expired_records_are_not_loaded() {
        let dir = TestDir::new("sqlite-expired");
        let path = db(&dir);
        let (a, b, c) = (rec(1, "m", 100), rec(2, "m", 0), rec(3, "m", u64::MAX));
        let mut s = SqliteStore::open(&path).unwrap();
        s.put(&[a.clone(), b.clone(), c.clone()]).unwrap();
        // An expiry beyond SQLite's integers is kept as the largest one.
        let c = Record {
            expires_at_ms: i64::MAX as u64,
            ..c
        };
        assert_eq!(s.load(99).unwrap(), vec![a, b.clone(), c.clone()]);
        assert_eq!(s.load(100).unwrap(), vec![b.clone(), c]);
        assert_eq!(s.load(u64::MAX).unwrap(), vec![b]);
    }

    #[test]
    fn compaction_drops_expired_and_unkept_records() {
        let dir = TestDir::new("sqlite-compact");
        let path = db(&dir);
        let mut s = SqliteStore::open(&path).unwrap();
        let records: Vec<Record> = (0..20).map(|n| rec(n, "m", 0)).collect();
        s.put(&records).unwrap();
        s.put(&[rec(1, "m", 50), rec(3, "m", 70)]).unwrap();

        s.compact(60, &|k| k[0] % 2 == 1 || k[0] < 6).unwrap();
        let mut want = vec![
            rec(0, "m", 0),
            rec(2, "m", 0),
            rec(4, "m", 0),
            rec(5, "m", 0),
        ];
        want.extend((7..20).step_by(2).map(|n| rec(n, "m", 0)));
        want.push(rec(3, "m", 70));
        assert_eq!(s.load(60).unwrap(), want);
        let count: i64 = s
            .conn
            .query_row("SELECT count(*) FROM cache_entries", [], |r| r.get(0))
            .unwrap();
        assert_eq!(count as usize, want.len(), "the expired row is gone too");
        let wal = dir.join("sub/dir/cache.db-wal");
        assert_eq!(std::fs::metadata(wal).map_or(0, |m| m.len()), 0);

        s.put(&[rec(30, "m", 0)]).unwrap();
        drop(s);
        want.push(rec(30, "m", 0));
        assert_eq!(reopen_load(&path), want);
    }

    #[test]
    fn rows_it_did_not_write_are_skipped() {
        let dir = TestDir::new("sqlite-foreign-rows");
        let path = db(&dir);
        let mut s = SqliteStore::open(&path).unwrap();
        s.put(&[rec(1, "m", 0)]).unwrap();
        s.conn
            .execute(
                "INSERT INTO cache_entries VALUES (x'0102', 'm', 0, 0, x'00')",
                [],
            )
            .unwrap();
        s.put(&[rec(2, "m", 0)]).unwrap();
        assert_eq!(s.load(0).unwrap(), vec![rec(1, "m", 0), rec(2, "m", 0)]);
        s.compact(0, &|_| true).unwrap();
        let count: i64 = s
            .conn
            .query_row("SELECT count(*) FROM cache_entries", [], |r| r.get(0))
            .unwrap();
        assert_eq!(count, 2, "compaction drops the unreadable row");
    }

    #[test]
    fn a_reference_shaped_table_is_renamed_not_dropped() {
        let dir = TestDir::new("sqlite-reference");
        let path = db(&dir);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let old = Connection::open(&path).unwrap();
        old.execute_batch(
            "CREATE TABLE cache_entries (key TEXT PRIMARY KEY, prompt TEXT, response BLOB,
                 embedding BLOB, created_at REAL, ttl INTEGER, namespace TEXT, hit_count INTEGER);
             CREATE INDEX idx_namespace ON cache_entries (namespace);
             INSERT INTO cache_entries VALUES ('k1', 'hello', x'7b7d', NULL, 1.5, 60, 'ns', 3);
             CREATE TABLE cache_entries_reference_v0 (x INTEGER);",
        )
        .unwrap();
        drop(old);

        let mut s = SqliteStore::open(&path).unwrap();
        s.put(&[rec(1, "m", 0)]).unwrap();
        drop(s);
        // A second open finds version 1 and renames nothing more.
        assert_eq!(reopen_load(&path), vec![rec(1, "m", 0)]);

        let conn = Connection::open(&path).unwrap();
        let kept: (String, String, i64) = conn
            .query_row(
                "SELECT key, prompt, hit_count FROM cache_entries_reference_v0_1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap();
        assert_eq!(kept, ("k1".into(), "hello".into(), 3));
        let tables: Vec<String> = conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            tables,
            [
                "cache_entries",
                "cache_entries_reference_v0",
                "cache_entries_reference_v0_1"
            ]
        );
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(version, 1);
    }

    #[test]
    fn a_newer_schema_is_refused_and_left_alone() {
        let dir = TestDir::new("sqlite-newer");
        let path = db(&dir);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let newer = Connection::open(&path).unwrap();
        newer
            .execute_batch("CREATE TABLE cache_entries (k BLOB); PRAGMA user_version = 2;")
            .unwrap();
        drop(newer);
        assert!(SqliteStore::open(&path).is_err());
        let conn = Connection::open(&path).unwrap();
        let columns: Vec<String> = conn
            .prepare("SELECT name FROM pragma_table_info('cache_entries')")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(columns, ["k"]);
    }
}
