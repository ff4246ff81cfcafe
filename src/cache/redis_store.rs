//! The `redis` store: the `Shared` store several routers point at, so an answer one of them cached
//! is a hit for all, and an invalidation made through any of them holds for all. It runs on the
//! cache's own thread with one blocking connection, opened lazily and bounded by a timeout on every
//! step, so an unreachable or hung Redis is a fast error (a miss), never a stuck thread, and the
//! router starts whether Redis is up or not.
//!
//! Layout (every key under `nomyo:cache:`; `<hex>` is the 32-byte exact key in lowercase hex):
//! - `e:<hex>`: the entry, an envelope of model and value bytes (`encode`), with Redis's own
//!   expiry (PX) when the record has one;
//! - `idx`: sorted set of every `<hex>`, score = expiry in Unix ms (`+inf`: never), for counting
//!   and for invalidating everything;
//! - `m:<model>`: the same, per model, for invalidating one model;
//! - `models`: set of the models that have an `m:` set.
//!
//! A put writes all of these in one MULTI, and an invalidation removes entries and their index
//! members in one MULTI per batch, so a router writing while another invalidates never leaves an
//! entry that no index knows. Not for Redis Cluster: those keys live in different slots.

use std::time::{Duration, Instant};

use redis::{Client, Connection, ErrorKind, RedisError, RedisResult};

use super::store::{now_ms, Record, Shared, StoreError};

const IDX: &str = "nomyo:cache:idx";
const MODELS: &str = "nomyo:cache:models";
/// Index members walked, and entries deleted, per round trip of an invalidation.
const BATCH: isize = 500;
/// After a failure, no new connection is tried for this long: calls fail at once instead, so an
/// outage costs each lookup nothing rather than a connect timeout.
const BACKOFF: Duration = Duration::from_millis(500);
const ENVELOPE_VERSION: u8 = 1;
/// Forgets `model` once its set is gone, atomically, so a put racing with the invalidation keeps
/// its model listed.
const FORGET_MODEL: &str = "if redis.call('EXISTS', KEYS[1]) == 0 then \
     return redis.call('SREM', KEYS[2], ARGV[1]) end return 0";

pub struct RedisStore {
    client: Client,
    timeout: Duration,
    conn: Option<Connection>,
    /// Set by a failure: no connection attempt before this instant.
    retry_at: Option<Instant>,
    last_error: String,
}

impl RedisStore {
    /// Parses `url` (`redis://[user:pass@]host:port[/db]`, `redis+unix:///path`); connects on first
    /// use. `timeout` bounds the connect and every read and write.
    pub fn new(url: &str, timeout: Duration) -> Result<Self, StoreError> {
        if timeout.is_zero() {
            return Err(StoreError("redis: the timeout must be above zero".into()));
        }
        let client = Client::open(url).map_err(|e| StoreError(format!("redis url: {e}")))?;
        Ok(RedisStore {
            client,
            timeout,
            conn: None,
            retry_at: None,
            last_error: String::new(),
        })
    }

    /// Runs one command or MULTI on the connection, connecting first if needed. A connection the
    /// server had closed while idle (its `timeout`, a restart) gets one fresh try: every `op`
    /// here is safe to repeat, and failing it would put a healthy Redis into back-off.
    fn run<T>(&mut self, op: impl Fn(&mut Connection) -> RedisResult<T>) -> Result<T, StoreError> {
        let reused = self.conn.is_some();
        let err = match op(self.connection()?) {
            Ok(v) => return Ok(v),
            Err(e) => e,
        };
        if keeps_connection(&err) {
            return Err(StoreError(format!("redis: {err}")));
        }
        self.conn = None;
        if !(reused && err.is_connection_dropped() && !err.is_timeout()) {
            return Err(self.failed(err));
        }
        match op(self.connection()?) {
            Ok(v) => Ok(v),
            Err(e) if keeps_connection(&e) => Err(StoreError(format!("redis: {e}"))),
            Err(e) => {
                self.conn = None;
                Err(self.failed(e))
            }
        }
    }

    /// The open connection, or a new one unless still in back-off.
    fn connection(&mut self) -> Result<&mut Connection, StoreError> {
        if self.conn.is_none() {
            if let Some(at) = self.retry_at {
                let now = Instant::now();
                if now < at {
                    return Err(StoreError(format!(
                        "redis unavailable (next attempt in {} ms): {}",
                        (at - now).as_millis(),
                        self.last_error
                    )));
                }
            }
            let conn = self
                .client
                .get_connection_with_timeout(self.timeout)
                .and_then(|c| {
                    c.set_read_timeout(Some(self.timeout))?;
                    c.set_write_timeout(Some(self.timeout))?;
                    Ok(c)
                })
                .map_err(|e| self.failed(e))?;
            self.retry_at = None;
            self.conn = Some(conn);
        }
        Ok(self.conn.as_mut().expect("just set"))
    }

    fn failed(&mut self, e: RedisError) -> StoreError {
        self.last_error = e.to_string();
        self.retry_at = Some(Instant::now() + BACKOFF);
        StoreError(format!("redis: {e}"))
    }

    /// Deletes the entries listed in the sorted set `set` (removing them from `also` too), batch by
    /// batch; returns how many existed.
    fn drain(&mut self, set: &str, also: Option<&str>) -> Result<u64, StoreError> {
        let mut removed = 0;
        loop {
            let members: Vec<String> =
                self.run(|c| redis::cmd("ZRANGE").arg(set).arg(0).arg(BATCH - 1).query(c))?;
            if members.is_empty() {
                return Ok(removed);
            }
            let keys: Vec<String> = members.iter().map(|m| entry_key(m)).collect();
            let (deleted,): (u64,) = self.run(|c| {
                let mut p = redis::pipe();
                p.atomic().cmd("DEL").arg(&keys);
                p.cmd("ZREM").arg(set).arg(&members).ignore();
                if let Some(also) = also {
                    p.cmd("ZREM").arg(also).arg(&members).ignore();
                }
                p.query(c)
            })?;
            removed += deleted;
        }
    }

    fn invalidate_model(&mut self, model: &str) -> Result<u64, StoreError> {
        let set = model_key(model);
        let removed = self.drain(&set, Some(IDX))?;
        self.run(|c| {
            redis::cmd("EVAL")
                .arg(FORGET_MODEL)
                .arg(2)
                .arg(&set)
                .arg(MODELS)
                .arg(model)
                .query::<()>(c)
        })?;
        Ok(removed)
    }
}

impl Shared for RedisStore {
    fn get(&mut self, key: &[u8; 32]) -> Result<Option<Vec<u8>>, StoreError> {
        let k = entry_key(&hex(key));
        let raw: Option<Vec<u8>> = self.run(|c| redis::cmd("GET").arg(&k).query(c))?;
        match raw {
            None => Ok(None),
            Some(raw) => decode(&raw)
                .map(|(_, value)| Some(value.to_vec()))
                .ok_or_else(|| StoreError(format!("redis: malformed entry at {k}"))),
        }
    }

    fn put(&mut self, record: &Record) -> Result<(), StoreError> {
        let now = now_ms();
        if record.is_expired(now) {
            return Ok(());
        }
        let member = hex(&record.key);
        let entry = encode(&record.model, &record.value);
        let score = match record.expires_at_ms {
            0 => "+inf".to_string(),
            at => at.to_string(),
        };
        let set = model_key(&record.model);
        self.run(|c| {
            let mut p = redis::pipe();
            p.atomic().cmd("SET").arg(entry_key(&member)).arg(&entry);
            if record.expires_at_ms != 0 {
                p.arg("PX").arg(record.expires_at_ms - now);
            }
            p.ignore();
            p.cmd("ZADD").arg(IDX).arg(&score).arg(&member).ignore();
            p.cmd("ZADD").arg(&set).arg(&score).arg(&member).ignore();
            p.cmd("SADD").arg(MODELS).arg(&record.model).ignore();
            // Members whose entries Redis has expired go here, so the sets stay as large as
            // what is live.
            p.cmd("ZREMRANGEBYSCORE")
                .arg(IDX)
                .arg("-inf")
                .arg(now)
                .ignore();
            p.cmd("ZREMRANGEBYSCORE")
                .arg(&set)
                .arg("-inf")
                .arg(now)
                .ignore();
            p.query::<()>(c)
        })
    }

    /// `None`: every model's entries, then whatever the global index still lists (entries of a
    /// model no longer in `models`).
    fn invalidate(&mut self, model: Option<&str>) -> Result<u64, StoreError> {
        if let Some(model) = model {
            return self.invalidate_model(model);
        }
        let models: Vec<String> = self.run(|c| redis::cmd("SMEMBERS").arg(MODELS).query(c))?;
        let mut removed = 0;
        for m in &models {
            removed += self.invalidate_model(m)?;
        }
        Ok(removed + self.drain(IDX, None)?)
    }

    /// Entries: the global index once its expired members are dropped (an entry Redis evicted
    /// under `maxmemory` stays counted until it would have expired). Bytes: 0, not tracked: Redis
    /// frees expired entries without telling anyone, so a counter would only drift upward, and
    /// summing STRLEN costs a round trip per entry.
    fn size(&mut self) -> Result<(u64, u64), StoreError> {
        let now = now_ms();
        let (entries,): (u64,) = self.run(|c| {
            redis::pipe()
                .atomic()
                .cmd("ZREMRANGEBYSCORE")
                .arg(IDX)
                .arg("-inf")
                .arg(now)
                .ignore()
                .cmd("ZCARD")
                .arg(IDX)
                .query(c)
        })?;
        Ok((entries, 0))
    }
}

/// Errors after which the connection is still in step with the server: it answered, with an
/// error or with a reply of an unexpected type. Anything else (I/O, a timeout with a reply still
/// due, a garbled reply) leaves it unusable.
fn keeps_connection(e: &RedisError) -> bool {
    matches!(
        e.kind(),
        ErrorKind::Server(_) | ErrorKind::Extension | ErrorKind::UnexpectedReturnType
    )
}

fn entry_key(member: &str) -> String {
    format!("nomyo:cache:e:{member}")
}

fn model_key(model: &str) -> String {
    format!("nomyo:cache:m:{model}")
}

fn hex(key: &[u8; 32]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(64);
    for b in key {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    s
}

/// Version byte, model length (u32, little-endian), model, then the value bytes as they are.
fn encode(model: &str, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(5 + model.len() + value.len());
    out.push(ENVELOPE_VERSION);
    out.extend_from_slice(&(model.len() as u32).to_le_bytes());
    out.extend_from_slice(model.as_bytes());
    out.extend_from_slice(value);
    out
}

fn decode(raw: &[u8]) -> Option<(&str, &[u8])> {
    let (&version, rest) = raw.split_first()?;
    if version != ENVELOPE_VERSION || rest.len() < 4 {
        return None;
    }
    let (len, rest) = rest.split_at(4);
    let len = u32::from_le_bytes(len.try_into().ok()?) as usize;
    if rest.len() < len {
        return None;
    }
    let (model, value) = rest.split_at(len);
    Some((std::str::from_utf8(model).ok()?, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_round_trips_binary_values() {
        let value = [0u8, 0xff, 0xfe, b'{', 0];
        let raw = encode("llama3:8b", &value);
        assert_eq!(decode(&raw), Some(("llama3:8b", &value[..])));
        assert_eq!(decode(&encode("", b"")), Some(("", &b""[..])));
    }

    #[test]
    fn malformed_envelopes_are_rejected() {
        assert_eq!(decode(b""), None);
        assert_eq!(decode(&[2, 0, 0, 0, 0]), None);
        assert_eq!(decode(&[1, 9, 0, 0, 0, b'a']), None);
        assert_eq!(decode(&[1, 0, 0]), None);
    }

    #[test]
    fn keys_are_lowercase_hex() {
        let mut key = [0u8; 32];
        key[0] = 0xab;
        key[31] = 0x01;
        let h = hex(&key);
        assert_eq!(h.len(), 64);
        assert!(h.starts_with("ab00") && h.ends_with("0001"));
        assert_eq!(entry_key(&h), format!("nomyo:cache:e:{h}"));
    }

    #[test]
    fn new_does_not_connect_and_rejects_bad_input() {
        // Port 1 on loopback: nothing listens, and `new` must not notice.
        assert!(RedisStore::new("redis://127.0.0.1:1/", Duration::from_millis(100)).is_ok());
        assert!(RedisStore::new("not a url", Duration::from_millis(100)).is_err());
        assert!(RedisStore::new("redis://127.0.0.1:1/", Duration::ZERO).is_err());
    }
}
