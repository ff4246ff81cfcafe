//! The `redis` shared cache store against a real `redis-server` (one per test, on a free loopback
//! port, killed when the test ends): entries, expiry, invalidation, counting, sharing between
//! routers, and an outage or a hung server turning into fast errors rather than waits.

mod common;

use std::time::{Duration, Instant};

use common::free_port;
use common::redis::{RedisServer, TIMEOUT};

use nomyo_router::cache::redis_store::RedisStore;
use nomyo_router::cache::store::{now_ms, Record, Shared};

fn key(n: u32) -> [u8; 32] {
    let mut k = [0x5au8; 32];
    k[..4].copy_from_slice(&n.to_be_bytes());
    k
}

fn record(n: u32, model: &str, expires_at_ms: u64, value: &[u8]) -> Record {
    Record {
        key: key(n),
        model: model.to_string(),
        expires_at_ms,
        value: value.to_vec(),
    }
}

fn hex(k: &[u8; 32]) -> String {
    k.iter().map(|b| format!("{b:02x}")).collect()
}

/// Runs `f` and asserts it came back within `limit`.
fn timed<T>(limit: Duration, what: &str, f: impl FnOnce() -> T) -> T {
    let start = Instant::now();
    let out = f();
    let took = start.elapsed();
    assert!(took < limit, "{what} took {took:?}, more than {limit:?}");
    out
}

#[test]
fn put_then_get_returns_the_exact_bytes() {
    let server = RedisServer::start();
    let mut store = server.store();
    // NUL bytes, invalid UTF-8, and a quote and backslash a JSON encoding would escape.
    let value = vec![0x00, 0xff, 0xfe, 0x80, b'"', b'\\', 0x00, b'x', 0xc3];
    store.put(&record(1, "m", 0, &value)).unwrap();
    assert_eq!(store.get(&key(1)).unwrap(), Some(value.clone()));
    let empty = record(2, "m", 0, b"");
    store.put(&empty).unwrap();
    assert_eq!(store.get(&key(2)).unwrap(), Some(Vec::new()));
    // A second put of the same key replaces the value.
    store.put(&record(1, "m", 0, b"new")).unwrap();
    assert_eq!(store.get(&key(1)).unwrap(), Some(b"new".to_vec()));
}

#[test]
fn a_miss_is_ok_none() {
    let server = RedisServer::start();
    let mut store = server.store();
    assert_eq!(store.get(&key(42)).unwrap(), None);
}

#[test]
fn layout_is_the_documented_one() {
    let server = RedisServer::start();
    let mut store = server.store();
    let expires = now_ms() + 60_000;
    store
        .put(&record(7, "llama3:8b", expires, b"\x00value"))
        .unwrap();
    store.put(&record(8, "llama3:8b", 0, b"forever")).unwrap();
    let h7 = hex(&key(7));
    let h8 = hex(&key(8));
    let mut raw = server.raw();
    let entry: Vec<u8> = redis::cmd("GET")
        .arg(format!("nomyo:cache:e:{h7}"))
        .query(&mut raw)
        .unwrap();
    assert!(entry.ends_with(b"llama3:8b\x00value"), "{entry:?}");
    let pttl: i64 = redis::cmd("PTTL")
        .arg(format!("nomyo:cache:e:{h7}"))
        .query(&mut raw)
        .unwrap();
    assert!((55_000..=60_000).contains(&pttl), "PTTL {pttl}");
    let pttl: i64 = redis::cmd("PTTL")
        .arg(format!("nomyo:cache:e:{h8}"))
        .query(&mut raw)
        .unwrap();
    assert_eq!(pttl, -1, "no expiry");
    for set in ["nomyo:cache:idx", "nomyo:cache:m:llama3:8b"] {
        let s: f64 = redis::cmd("ZSCORE")
            .arg(set)
            .arg(&h7)
            .query(&mut raw)
            .unwrap();
        assert_eq!(s, expires as f64, "{set}");
        let s: f64 = redis::cmd("ZSCORE")
            .arg(set)
            .arg(&h8)
            .query(&mut raw)
            .unwrap();
        assert_eq!(s, f64::INFINITY, "{set}");
    }
    let listed: bool = redis::cmd("SISMEMBER")
        .arg("nomyo:cache:models")
        .arg("llama3:8b")
        .query(&mut raw)
        .unwrap();
    assert!(listed);
}

#[test]
fn entries_expire_by_redis_ttl() {
    let server = RedisServer::start();
    let mut store = server.store();
    store
        .put(&record(1, "m", now_ms() + 300, b"short"))
        .unwrap();
    store.put(&record(2, "m", 0, b"long")).unwrap();
    assert_eq!(store.get(&key(1)).unwrap(), Some(b"short".to_vec()));
    assert_eq!(store.size().unwrap().0, 2);
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(store.get(&key(1)).unwrap(), None);
    assert_eq!(store.get(&key(2)).unwrap(), Some(b"long".to_vec()));
    assert_eq!(
        store.size().unwrap().0,
        1,
        "the expired entry is not counted"
    );
}

#[test]
fn already_expired_records_are_not_stored() {
    let server = RedisServer::start();
    let mut store = server.store();
    store.put(&record(1, "m", now_ms() - 1, b"old")).unwrap();
    store.put(&record(2, "m", 1, b"ancient")).unwrap();
    assert_eq!(store.get(&key(1)).unwrap(), None);
    assert_eq!(store.get(&key(2)).unwrap(), None);
    assert_eq!(store.size().unwrap(), (0, 0));
}

#[test]
fn invalidate_by_model_removes_only_that_model() {
    let server = RedisServer::start();
    let mut store = server.store();
    // More than one batch of 500 for `a`.
    for n in 0..1100 {
        store.put(&record(n, "a", 0, b"va")).unwrap();
    }
    let later = now_ms() + 60_000;
    for n in 2000..2003 {
        store.put(&record(n, "b", later, b"vb")).unwrap();
    }
    assert_eq!(store.size().unwrap().0, 1103);
    assert_eq!(store.invalidate(Some("a")).unwrap(), 1100);
    assert_eq!(store.get(&key(0)).unwrap(), None);
    assert_eq!(store.get(&key(1099)).unwrap(), None);
    assert_eq!(store.get(&key(2000)).unwrap(), Some(b"vb".to_vec()));
    assert_eq!(store.size().unwrap().0, 3);
    assert_eq!(store.invalidate(Some("a")).unwrap(), 0, "nothing left of a");
    assert_eq!(store.invalidate(Some("unknown")).unwrap(), 0);
    let mut raw = server.raw();
    let models: Vec<String> = redis::cmd("SMEMBERS")
        .arg("nomyo:cache:models")
        .query(&mut raw)
        .unwrap();
    assert_eq!(models, vec!["b".to_string()]);
}

#[test]
fn invalidate_all_removes_every_entry_and_index() {
    let server = RedisServer::start();
    let mut store = server.store();
    for n in 0..600 {
        store.put(&record(n, "a", 0, b"va")).unwrap();
    }
    for n in 1000..1010 {
        store
            .put(&record(n, "b", now_ms() + 60_000, b"vb"))
            .unwrap();
    }
    assert_eq!(store.invalidate(None).unwrap(), 610);
    assert_eq!(store.get(&key(5)).unwrap(), None);
    assert_eq!(store.get(&key(1005)).unwrap(), None);
    assert_eq!(store.size().unwrap(), (0, 0));
    let mut raw = server.raw();
    let (_, left): (u64, Vec<String>) = redis::cmd("SCAN")
        .arg(0)
        .arg("MATCH")
        .arg("nomyo:cache:*")
        .arg("COUNT")
        .arg(10_000)
        .query(&mut raw)
        .unwrap();
    assert!(left.is_empty(), "keys left behind: {left:?}");
    // The store works as before afterwards.
    store.put(&record(1, "a", 0, b"again")).unwrap();
    assert_eq!(store.get(&key(1)).unwrap(), Some(b"again".to_vec()));
    assert_eq!(store.invalidate(None).unwrap(), 1);
}

#[test]
fn size_counts_live_entries() {
    let server = RedisServer::start();
    let mut store = server.store();
    assert_eq!(store.size().unwrap(), (0, 0));
    for n in 0..5 {
        store.put(&record(n, "m", 0, b"1234")).unwrap();
    }
    store.put(&record(0, "m", 0, b"replaced")).unwrap();
    store
        .put(&record(9, "m", now_ms() + 200, b"brief"))
        .unwrap();
    assert_eq!(store.size().unwrap(), (6, 0), "bytes are not tracked");
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(store.size().unwrap(), (5, 0));
}

#[test]
fn two_stores_on_one_server_share_entries() {
    let server = RedisServer::start();
    let mut a = server.store();
    let mut b = server.store();
    a.put(&record(1, "m", 0, b"from a")).unwrap();
    assert_eq!(b.get(&key(1)).unwrap(), Some(b"from a".to_vec()));
    b.put(&record(2, "n", 0, b"from b")).unwrap();
    assert_eq!(a.get(&key(2)).unwrap(), Some(b"from b".to_vec()));
    assert_eq!(a.size().unwrap().0, 2);
    // An invalidation through one holds for the other.
    assert_eq!(b.invalidate(Some("m")).unwrap(), 1);
    assert_eq!(a.get(&key(1)).unwrap(), None);
    assert_eq!(a.invalidate(None).unwrap(), 1);
    assert_eq!(b.get(&key(2)).unwrap(), None);
}

#[test]
fn starts_with_redis_down_and_fails_fast() {
    let port = free_port();
    let mut store =
        RedisStore::new(&format!("redis://127.0.0.1:{port}/"), TIMEOUT).expect("no connect in new");
    let err = timed(Duration::from_secs(2), "first get", || {
        store.get(&key(1)).unwrap_err()
    });
    assert!(!err.0.is_empty());
    // In back-off: no connection attempt, an error at once.
    let err = timed(Duration::from_millis(100), "get in back-off", || {
        store.get(&key(1)).unwrap_err()
    });
    assert!(err.0.contains("redis unavailable"), "{err}");
    // Redis comes up: after the back-off the store connects.
    let server = RedisServer::start_on(port);
    std::thread::sleep(Duration::from_millis(600));
    store.put(&record(1, "m", 0, b"up")).unwrap();
    assert_eq!(store.get(&key(1)).unwrap(), Some(b"up".to_vec()));
    drop(server);
}

#[test]
fn outage_fails_fast_and_recovers_after_restart() {
    let server = RedisServer::start();
    let port = server.port;
    let mut store = server.store();
    store.put(&record(1, "m", 0, b"before")).unwrap();
    assert!(store.get(&key(1)).unwrap().is_some());
    drop(server);

    let err = timed(Duration::from_secs(2), "get after the kill", || {
        store.get(&key(1)).unwrap_err()
    });
    assert!(!err.0.is_empty());
    for _ in 0..10 {
        let err = timed(Duration::from_millis(100), "call in back-off", || {
            store.put(&record(2, "m", 0, b"x")).unwrap_err()
        });
        assert!(err.0.contains("redis unavailable"), "{err}");
    }
    assert!(store.invalidate(None).is_err());
    assert!(store.size().is_err());

    // Same port again: after the back-off a new connection is made (the data is gone with the
    // old process, which never saved).
    let _server = RedisServer::start_on(port);
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(store.get(&key(1)).unwrap(), None);
    store.put(&record(3, "m", 0, b"after")).unwrap();
    assert_eq!(store.get(&key(3)).unwrap(), Some(b"after".to_vec()));
}

#[test]
fn hung_server_times_out_instead_of_blocking() {
    let server = RedisServer::start();
    let mut store = server.store();
    store.put(&record(1, "m", 0, b"v")).unwrap();
    server.signal(libc::SIGSTOP);

    // The open connection: the read times out.
    let err = timed(Duration::from_secs(2), "get on a hung server", || {
        store.get(&key(1)).unwrap_err()
    });
    assert!(!err.0.is_empty());
    let err = timed(Duration::from_millis(100), "get in back-off", || {
        store.get(&key(1)).unwrap_err()
    });
    assert!(err.0.contains("redis unavailable"), "{err}");
    // A new connection: the kernel accepts it, the handshake times out.
    std::thread::sleep(Duration::from_millis(600));
    timed(Duration::from_secs(2), "reconnect to a hung server", || {
        store.get(&key(1)).unwrap_err()
    });

    server.signal(libc::SIGCONT);
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(store.get(&key(1)).unwrap(), Some(b"v".to_vec()));
}

#[test]
fn a_connection_the_server_closed_while_idle_is_replaced_without_an_error() {
    let server = RedisServer::start();
    let mut store = server.store();
    store.put(&record(1, "m", 0, b"v")).unwrap();
    // What Redis's idle `timeout` or an operator's CLIENT KILL does to the store's connection.
    let mut raw = server.raw();
    let killed: u64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("normal")
        .arg("SKIPME")
        .arg("yes")
        .query(&mut raw)
        .unwrap();
    assert_eq!(killed, 1);
    assert_eq!(store.get(&key(1)).unwrap(), Some(b"v".to_vec()));
}
