//! The persistent cache stores through the router: `mmap` and `sqlite` keep their entries across a
//! restart; an `mmap` log cut mid-record or with a flipped byte reopens with its good records.

mod common;

use std::path::Path;

use common::*;

fn body(n: usize) -> String {
    format!(
        r#"{{"model":"llama3","messages":[{{"role":"user","content":"question {n}"}}],"stream":false}}"#
    )
}

fn start(mock: &Mock, backend: &str, file: &Path) -> Router {
    let key = if backend == "sqlite" {
        "cache_db_path"
    } else {
        "cache_mmap_path"
    };
    let extra = format!(
        "cache_enabled: true\ncache_backend: {backend}\n{key}: {}\n",
        file.display()
    );
    Router::start(&config_for(&[mock.url()], &extra), &["--log-level", "info"])
}

fn x_cache(router: &Router, b: &str) -> String {
    let r = post(&router.url("/api/chat"), b);
    assert_eq!(r.status, 200, "{}", r.body);
    r.header("x-cache").unwrap_or("(none)").to_string()
}

fn restart_keeps_entries(backend: &str) {
    let mock = Mock::start(&[]);
    let d = scratch_dir(&format!("cache-{backend}"));
    let file = d.join(format!("cache.{backend}"));
    let router = start(&mock, backend, &file);
    for n in 0..5 {
        assert_eq!(x_cache(&router, &body(n)), "miss");
    }
    router.stop();
    let router = start(&mock, backend, &file);
    for n in 0..5 {
        assert_eq!(
            x_cache(&router, &body(n)),
            "hit",
            "{backend}: entry {n} after a restart"
        );
    }
    assert_eq!(mock.stats()["inference"], 5);
    let s = get(&router.url("/api/cache/stats")).json();
    assert_eq!(
        (s["backend"].as_str(), s["entries"].as_u64()),
        (Some(backend), Some(5))
    );
    // An invalidation is kept too.
    post(&router.url("/api/cache/invalidate"), "");
    router.stop();
    let router = start(&mock, backend, &file);
    assert_eq!(
        x_cache(&router, &body(0)),
        "miss",
        "{backend}: invalidated before the restart"
    );
    let _ = std::fs::remove_dir_all(d);
}

#[test]
fn mmap_keeps_entries_across_a_restart() {
    restart_keeps_entries("mmap");
}

#[test]
fn sqlite_keeps_entries_across_a_restart() {
    restart_keeps_entries("sqlite");
}

#[test]
fn a_damaged_mmap_log_reopens_with_its_good_records() {
    let mock = Mock::start(&[]);
    let d = scratch_dir("cache-damaged");
    let file = d.join("cache.mmap");
    let router = start(&mock, "mmap", &file);
    for n in 0..3 {
        x_cache(&router, &body(n));
    }
    router.stop();
    let good = std::fs::read(&file).unwrap();
    // Three records of about the same size: flip a byte in the middle one's payload, and cut the
    // last one short.
    let third = good.len() / 3;
    let mut damaged = good.clone();
    damaged[third + third / 2] ^= 0x5a;
    damaged.truncate(good.len() - 10);
    std::fs::write(&file, &damaged).unwrap();
    let router = start(&mock, "mmap", &file);
    assert_eq!(
        x_cache(&router, &body(0)),
        "hit",
        "the record before the damage"
    );
    assert_eq!(
        x_cache(&router, &body(1)),
        "miss",
        "the flipped record is skipped"
    );
    assert_eq!(
        x_cache(&router, &body(2)),
        "miss",
        "the torn record is skipped"
    );
    // The log takes new records after the cut, and they survive another restart.
    assert_eq!(x_cache(&router, &body(7)), "miss");
    router.stop();
    let router = start(&mock, "mmap", &file);
    assert_eq!(x_cache(&router, &body(7)), "hit");
    assert_eq!(x_cache(&router, &body(0)), "hit");
    let _ = std::fs::remove_dir_all(d);
}

#[test]
fn an_unusable_store_path_leaves_the_router_serving_from_memory() {
    let mock = Mock::start(&[]);
    let d = scratch_dir("cache-unusable");
    // A directory where the file should be: the store cannot open it.
    let file = d.join("is-a-dir");
    std::fs::create_dir_all(&file).unwrap();
    let router = start(&mock, "sqlite", &file);
    assert_eq!(x_cache(&router, &body(0)), "miss");
    assert_eq!(x_cache(&router, &body(0)), "hit");
    let s = get(&router.url("/api/cache/stats")).json();
    assert!(s["store_error"].as_str().is_some(), "{s}");
    assert!(
        router.log().contains("could not be opened"),
        "{}",
        router.log()
    );
    let _ = std::fs::remove_dir_all(d);
}
