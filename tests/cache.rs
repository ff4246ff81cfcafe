//! The exact response cache end to end (SPEC §6): real router and mock processes over sockets. What
//! hits, what never hits, what is never stored, bypass and opt-in, coalescing, the routes, TTL.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::*;

const CACHED: &str = "cache_enabled: true\ncache_backend: memory\n";

fn chat(content: &str) -> String {
    format!(
        r#"{{"model":"llama3","messages":[{{"role":"system","content":"be brief"}},{{"role":"user","content":"{content}"}}],"stream":false}}"#
    )
}

fn cached_router(mock: &Mock, extra: &str) -> Router {
    Router::start(
        &config_for(&[mock.url()], &format!("{CACHED}{extra}")),
        &["--log-level", "warn"],
    )
}

fn x_cache(r: &Resp) -> &str {
    r.header("x-cache").unwrap_or("(none)")
}

fn stats(router: &Router) -> serde_json::Value {
    get(&router.url("/api/cache/stats")).json()
}

#[test]
fn a_repeat_is_a_hit_that_never_reaches_the_backend() {
    let mock = Mock::start(&[]);
    let router = cached_router(&mock, "");
    let first = post(&router.url("/api/chat"), &chat("hello"));
    assert_eq!(
        (first.status, x_cache(&first)),
        (200, "miss"),
        "{}",
        first.body
    );
    let second = post(&router.url("/api/chat"), &chat("hello"));
    assert_eq!((second.status, x_cache(&second)), (200, "hit"));
    assert_eq!(second.json()["message"], first.json()["message"]);
    assert_eq!(second.json()["eval_count"], first.json()["eval_count"]);
    assert_eq!(
        second.header("x-router-endpoint"),
        None,
        "no endpoint served it"
    );
    // The same request as a stream, and with delivery-only fields changed, is the same entry.
    let streamed = r#"{"stream":true,"keep_alive":"1m","model":"llama3","messages":[{"role":"system","content":"be brief"},{"role":"user","content":"hello"}]}"#;
    let (status, lines) = stream_lines(&router.url("/api/chat"), streamed, &[]);
    assert_eq!(status, 200);
    let text: String = lines
        .iter()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .map(|v| v["message"]["content"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(text, first.json()["message"]["content"].as_str().unwrap());
    assert_eq!(mock.stats()["inference"], 1);
    let s = stats(&router);
    assert_eq!(
        (s["hits"].as_u64(), s["misses"].as_u64()),
        (Some(2), Some(1))
    );
    assert_eq!(s["exact_hits"], 2);
    assert_eq!(s["entries"], 1);
    assert_eq!(s["backend"], "memory");
    assert!(s["bytes"].as_u64().unwrap() > 0);
    assert_eq!(router.wait_idle()["total_in_flight"], 0);
}

#[test]
fn requests_that_differ_in_anything_that_matters_never_share_an_entry() {
    let mock = Mock::start(&[]);
    let router = cached_router(&mock, "");
    let base = r#"{"model":"llama3","messages":[{"role":"system","content":"be brief"},{"role":"user","content":"q"}],"stream":false}"#;
    let variants = [
        // an earlier turn of history
        r#"{"model":"llama3","messages":[{"role":"system","content":"be brief"},{"role":"user","content":"x"},{"role":"assistant","content":"y"},{"role":"user","content":"q"}],"stream":false}"#,
        // a tool result
        r#"{"model":"llama3","messages":[{"role":"system","content":"be brief"},{"role":"user","content":"q"},{"role":"assistant","content":"","tool_calls":[{"function":{"name":"f","arguments":{}}}]},{"role":"tool","content":"42"}],"stream":false}"#,
        // tools
        r#"{"model":"llama3","messages":[{"role":"system","content":"be brief"},{"role":"user","content":"q"}],"stream":false,"tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object"}}}]}"#,
        // options
        r#"{"model":"llama3","messages":[{"role":"system","content":"be brief"},{"role":"user","content":"q"}],"stream":false,"options":{"temperature":0.9}}"#,
        // system prompt
        r#"{"model":"llama3","messages":[{"role":"system","content":"be long"},{"role":"user","content":"q"}],"stream":false}"#,
        // format
        r#"{"model":"llama3","messages":[{"role":"system","content":"be brief"},{"role":"user","content":"q"}],"stream":false,"format":"json"}"#,
    ];
    assert_eq!(x_cache(&post(&router.url("/api/chat"), base)), "miss");
    for v in variants {
        let r = post(&router.url("/api/chat"), v);
        assert_eq!((r.status, x_cache(&r)), (200, "miss"), "{v}");
    }
    // Each variant is now stored under its own key, and the base still hits its own.
    for v in variants {
        assert_eq!(x_cache(&post(&router.url("/api/chat"), v)), "hit", "{v}");
    }
    assert_eq!(x_cache(&post(&router.url("/api/chat"), base)), "hit");
    // The query string goes upstream with the body: another query, another entry.
    let r = post(&router.url("/api/chat?x=1"), base);
    assert_eq!(x_cache(&r), "miss");
    // Names equal but for case are one field to Ollama, whose order the key cannot see: bypass.
    let folded = r#"{"model":"llama3","messages":[],"stream":false,"system":"A","System":"B"}"#;
    assert_eq!(x_cache(&post(&router.url("/api/chat"), folded)), "bypass");
    // Same body on another route family: another entry.
    let generate = r#"{"model":"llama3","prompt":"q","stream":false}"#;
    assert_eq!(
        x_cache(&post(&router.url("/api/generate"), generate)),
        "miss"
    );
    assert_eq!(mock.stats()["inference"], 1 + variants.len() as u64 + 3);
}

#[test]
fn failed_aborted_and_cut_answers_are_never_stored() {
    let mock = Mock::start(&["--tokens", "20"]);
    let router = cached_router(&mock, "");
    let url = router.url("/api/chat");
    // A 500.
    let r = post_with(&url, &chat("a"), &[("x-mock-fault", "500")]);
    assert_eq!(r.status, 500);
    assert_eq!(
        x_cache(&post(&url, &chat("a"))),
        "miss",
        "nothing stored from a 500"
    );
    // An upstream that dies mid-stream.
    let streamed = chat("b").replace("\"stream\":false", "\"stream\":true");
    let (status, lines) = stream_lines(&url, &streamed, &[("x-mock-fault", "die")]);
    assert_eq!(status, 200);
    assert!(lines.last().unwrap().contains("error"), "{lines:?}");
    assert_eq!(
        x_cache(&post(&url, &chat("b"))),
        "miss",
        "nothing stored from a cut stream"
    );
    // A client that leaves mid-stream.
    let body = chat("c").replace("\"stream\":false", "\"stream\":true");
    let mut s = TcpStream::connect(("127.0.0.1", router.port)).unwrap();
    write!(
        s,
        "POST /api/chat HTTP/1.1\r\nHost: x\r\nx-mock-delay-ms: 30\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut buf = [0u8; 512];
    let _ = s.read(&mut buf).unwrap();
    drop(s);
    router.wait_idle();
    assert_eq!(
        x_cache(&post(&url, &chat("c"))),
        "miss",
        "nothing stored from an abort"
    );
    let s = stats(&router);
    assert!(s["not_stored"].as_u64().unwrap() >= 1, "{s}");
    assert_eq!(router.wait_idle()["total_in_flight"], 0);
}

#[test]
fn opt_out_never_cached_routes_and_bad_flags() {
    let mock = Mock::start(&["--models", "llama3:latest,nomic-embed-text:latest"]);
    let router = cached_router(&mock, "");
    let url = router.url("/api/chat");
    let out = chat("d").replace(
        "\"stream\":false",
        "\"stream\":false,\"nomyo\":{\"cache\":false}",
    );
    for _ in 0..2 {
        assert_eq!(x_cache(&post(&url, &out)), "bypass");
        let r = post_with(
            &url,
            &chat("e"),
            &[("cache-control", "max-age=0, No-Cache")],
        );
        assert_eq!(x_cache(&r), "bypass");
        let r = post_with(&url, &chat("e"), &[("pragma", "no-cache")]);
        assert_eq!(x_cache(&r), "bypass");
    }
    let embed = post(
        &router.url("/api/embed"),
        r#"{"model":"nomic-embed-text","input":"x"}"#,
    );
    assert_eq!((embed.status, x_cache(&embed)), (200, "bypass"));
    let moe = post(&url, &chat("f").replace("llama3", "moe-llama3"));
    assert_eq!(x_cache(&moe), "bypass");
    for nomyo in [r#"{"cache":"yes"}"#, "[false]", "1"] {
        let with = format!("\"stream\":false,\"nomyo\":{nomyo}");
        let r = post(&url, &chat("g").replace("\"stream\":false", &with));
        assert_eq!(r.status, 400, "{nomyo}: {}", r.body);
        assert!(r.json()["error"].as_str().unwrap().contains("nomyo.cache"));
    }
    // The opted-out request was not stored either: a plain one is a miss.
    assert_eq!(x_cache(&post(&url, &chat("d"))), "miss");
}

#[test]
fn opt_in_mode_caches_only_requests_that_ask() {
    let mock = Mock::start(&[]);
    let router = cached_router(&mock, "cache_opt_in: true\n");
    let url = router.url("/api/chat");
    assert_eq!(x_cache(&post(&url, &chat("h"))), "bypass");
    assert_eq!(x_cache(&post(&url, &chat("h"))), "bypass");
    let asks = chat("h").replace(
        "\"stream\":false",
        "\"stream\":false,\"nomyo\":{\"cache\":true}",
    );
    assert_eq!(x_cache(&post(&url, &asks)), "miss");
    assert_eq!(x_cache(&post(&url, &asks)), "hit");
    assert_eq!(mock.stats()["inference"], 3);
}

#[test]
fn concurrent_identical_misses_make_one_upstream_request() {
    let mock = Mock::start(&["--tokens", "10", "--token-delay-ms", "30"]);
    let router = cached_router(&mock, "");
    let url = router.url("/api/chat");
    let handles: Vec<_> = (0..20)
        .map(|i| {
            let url = url.clone();
            std::thread::spawn(move || {
                // Half whole, half streamed: followers replay in their own format.
                let body = if i % 2 == 0 {
                    chat("together")
                } else {
                    chat("together").replace("\"stream\":false", "\"stream\":true")
                };
                post(&url, &body)
            })
        })
        .collect();
    let answers: Vec<Resp> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert!(answers.iter().all(|r| r.status == 200));
    assert_eq!(
        mock.stats()["inference"],
        1,
        "one upstream request for 20 clients"
    );
    assert_eq!(answers.iter().filter(|r| x_cache(r) == "miss").count(), 1);
    // Whole or streamed, every client got the same text.
    let text = |r: &Resp| -> String {
        r.body
            .lines()
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .map(|v| v["message"]["content"].as_str().unwrap_or("").to_string())
            .collect()
    };
    let first = text(&answers[0]);
    assert!(first.starts_with("tok0 "), "{first}");
    for (i, r) in answers.iter().enumerate() {
        assert_eq!(text(r), first, "client {i}");
        let streamed = r.body.trim_end().lines().count() > 1;
        assert_eq!(streamed, i % 2 == 1, "client {i} got its own format");
    }
    let s = stats(&router);
    assert_eq!(s["coalesced"], 19, "{s}");
}

#[test]
fn a_failed_leader_releases_its_followers_upstream() {
    let mock = Mock::start(&["--tokens", "5", "--first-byte-delay-ms", "300"]);
    let router = cached_router(&mock, "");
    let url = router.url("/api/chat");
    let leader = {
        let url = url.clone();
        std::thread::spawn(move || post_with(&url, &chat("lead"), &[("x-mock-fault", "500")]))
    };
    std::thread::sleep(Duration::from_millis(100));
    let followers: Vec<_> = (0..3)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || post(&url, &chat("lead")))
        })
        .collect();
    assert_eq!(leader.join().unwrap().status, 500);
    for f in followers {
        assert_eq!(
            f.join().unwrap().status,
            200,
            "followers went upstream themselves"
        );
    }
    assert_eq!(mock.stats()["inference"], 4);
}

#[test]
fn an_answer_fetched_across_an_invalidation_is_not_stored() {
    let mock = Mock::start(&["--tokens", "10"]);
    let router = cached_router(&mock, "");
    let url = router.url("/api/chat");
    let slow = {
        let url = url.clone();
        std::thread::spawn(move || post_with(&url, &chat("old"), &[("x-mock-delay-ms", "50")]))
    };
    std::thread::sleep(Duration::from_millis(150));
    assert_eq!(post(&router.url("/api/cache/invalidate"), "").status, 200);
    assert_eq!(slow.join().unwrap().status, 200);
    assert_eq!(
        x_cache(&post(&url, &chat("old"))),
        "miss",
        "the older answer was not kept"
    );
}

#[test]
fn stats_and_invalidation_by_model_and_all() {
    let mock = Mock::start(&["--models", "llama3:latest,qwen:latest"]);
    let router = cached_router(&mock, "");
    let url = router.url("/api/chat");
    let qwen = chat("i").replace("llama3", "qwen");
    for body in [chat("i"), qwen.clone()] {
        post(&url, &body);
        assert_eq!(x_cache(&post(&url, &body)), "hit");
    }
    assert_eq!(stats(&router)["entries"], 2);
    let r = post(
        &router.url("/api/cache/invalidate"),
        r#"{"model":"qwen:latest"}"#,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["removed"], 1);
    assert_eq!(r.json()["cleared"], true);
    assert_eq!(x_cache(&post(&url, &qwen)), "miss");
    assert_eq!(x_cache(&post(&url, &chat("i"))), "hit");
    let s = stats(&router);
    assert_eq!(
        (s["hits"].as_u64(), s["misses"].as_u64()),
        (Some(1), Some(1)),
        "counters restarted at the invalidation"
    );
    let r = post(&router.url("/api/cache/invalidate"), "");
    assert_eq!(r.json()["removed"], 2);
    assert_eq!(stats(&router)["entries"], 0);
    assert_eq!(
        post(&router.url("/api/cache/invalidate"), r#"{"model":7}"#).status,
        400
    );
    assert_eq!(get(&router.url("/api/cache/invalidate")).status, 405);
}

#[test]
fn the_cache_routes_need_the_router_key() {
    let mock = Mock::start(&[]);
    let router = cached_router(&mock, "router_api_key: sekrit\n");
    assert_eq!(get(&router.url("/api/cache/stats")).status, 401);
    assert_eq!(post(&router.url("/api/cache/invalidate"), "").status, 401);
    let auth = [("authorization", "Bearer sekrit")];
    let r = request("GET", &router.url("/api/cache/stats"), "", &auth);
    assert_eq!((r.status, r.json()["enabled"].as_bool()), (200, Some(true)));
}

#[test]
fn without_the_cache_nothing_changes() {
    let mock = Mock::start(&[]);
    let router = Router::start(&config_for(&[mock.url()], ""), &["--log-level", "warn"]);
    let r = post(&router.url("/api/chat"), &chat("j"));
    assert_eq!((r.status, r.header("x-cache")), (200, None));
    post(&router.url("/api/chat"), &chat("j"));
    assert_eq!(mock.stats()["inference"], 2);
    assert_eq!(
        get(&router.url("/api/cache/stats")).json(),
        serde_json::json!({"enabled": false})
    );
    let r = post(&router.url("/api/cache/invalidate"), "");
    assert_eq!(
        r.json(),
        serde_json::json!({"enabled": false, "cleared": false})
    );
}

#[test]
fn entries_expire_after_the_ttl() {
    let mock = Mock::start(&[]);
    let router = cached_router(&mock, "cache_ttl: 1\n");
    let url = router.url("/api/chat");
    post(&url, &chat("k"));
    assert_eq!(x_cache(&post(&url, &chat("k"))), "hit");
    std::thread::sleep(Duration::from_millis(1300));
    assert_eq!(x_cache(&post(&url, &chat("k"))), "miss");
}

#[test]
fn personal_answers_are_not_stored_unless_the_scope_is_personal() {
    // The mock's answer repeats nothing personal; a chat whose system prompt names a user id, with
    // the guard on, is stored (its scope is that user's); the guard's own rules are unit-tested.
    let mock = Mock::start(&[]);
    let router = cached_router(&mock, "cache_privacy_guard: true\n");
    let url = router.url("/api/chat");
    let body = chat("l").replace("be brief", "user id: 55512");
    post(&url, &body);
    assert_eq!(x_cache(&post(&url, &body)), "hit");
}
