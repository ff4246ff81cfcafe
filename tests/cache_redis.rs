//! `cache_backend: redis` end to end: two router processes share one real `redis-server`; when it
//! stops, requests are still answered (misses, errors counted, no wait beyond the lookup timeout);
//! when it is back, hits resume.

mod common;

use std::time::{Duration, Instant};

use common::redis::RedisServer;
use common::*;

const BODY: &str =
    r#"{"model":"llama3","messages":[{"role":"user","content":"shared?"}],"stream":false}"#;

fn router(mock: &Mock, redis_port: u16) -> Router {
    let extra = format!(
        "cache_enabled: true\ncache_backend: redis\ncache_redis_url: redis://127.0.0.1:{redis_port}/0\ncache_lookup_timeout: 200ms\n"
    );
    Router::start(&config_for(&[mock.url()], &extra), &["--log-level", "warn"])
}

fn x_cache(router: &Router, body: &str) -> String {
    let r = post(&router.url("/api/chat"), body);
    assert_eq!(r.status, 200, "{}", r.body);
    r.header("x-cache").unwrap_or("(none)").to_string()
}

/// Stores go through the cache's thread after the answer: wait until one is visible.
fn until_hit(router: &Router, body: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while x_cache(router, body) != "hit" {
        assert!(Instant::now() < deadline, "no hit within 5 s");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn two_routers_share_entries_and_survive_an_outage() {
    let redis = RedisServer::start();
    let mock = Mock::start(&[]);
    let a = router(&mock, redis.port);
    let b = router(&mock, redis.port);
    assert_eq!(x_cache(&a, BODY), "miss");
    until_hit(&b, BODY);
    assert_eq!(mock.stats()["inference"], 1, "b's hit is a's answer");
    let s = get(&b.url("/api/cache/stats")).json();
    assert_eq!(s["backend"], "redis");
    assert!(s["entries"].as_u64().unwrap() >= 1, "{s}");

    // Redis goes away: every request is still answered, as a miss, and the errors are counted.
    let port = redis.port;
    drop(redis);
    let other = BODY.replace("shared?", "during the outage");
    for _ in 0..5 {
        let started = Instant::now();
        assert_eq!(x_cache(&a, BODY), "miss");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "a lookup waited {:?}",
            started.elapsed()
        );
        assert_eq!(x_cache(&b, &other), "miss");
    }
    let s = get(&a.url("/api/cache/stats")).json();
    assert!(s["errors"].as_u64().unwrap() > 0, "{s}");

    // Back (empty: it kept nothing): a new answer is shared again.
    let _redis = RedisServer::start_on(port);
    let after = BODY.replace("shared?", "after the outage");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        x_cache(&a, &after);
        std::thread::sleep(Duration::from_millis(100));
        if x_cache(&b, &after) == "hit" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "hits did not resume after Redis came back"
        );
    }
    let r = post(&a.url("/api/cache/invalidate"), "");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        x_cache(&b, &after),
        "miss",
        "an invalidation on one router clears the shared store"
    );
}
