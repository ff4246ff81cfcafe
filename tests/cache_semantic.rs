//! The semantic cache end to end (SPEC §6.3): a router with `cache_similarity` below 1 and the
//! real embedding model, against a mock over sockets. Paraphrases hit, look-alikes do not; no hit
//! crosses a scope or a history; entries survive a restart; a stalled embedding core costs a
//! request no more than the budget. Needs the model (`bash scripts/fetch-embedding-model.sh`).
#![cfg(feature = "semantic")]

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;

// Debug builds embed in ~30 ms: the budget here is generous (its own test sets it tight).
const SEMANTIC: &str = "cache_enabled: true\ncache_similarity: 0.85\ncache_semantic_budget: 5s\n";

fn router(mock: &Mock, extra: &str) -> Router {
    Router::start(
        &config_for(&[mock.url()], &format!("{SEMANTIC}{extra}")),
        &["--log-level", "info"],
    )
}

fn memory_router(mock: &Mock) -> Router {
    router(mock, "cache_backend: memory\n")
}

fn chat_with(model: &str, messages: &str, extra: &str) -> String {
    format!(r#"{{"model":"{model}","messages":[{messages}],"stream":false{extra}}}"#)
}

fn user(text: &str) -> String {
    format!(r#"{{"role":"user","content":"{text}"}}"#)
}

fn ask(router: &Router, body: &str) -> Resp {
    let r = post(&router.url("/api/chat"), body);
    assert_eq!(r.status, 200, "{}", r.body);
    r
}

fn x_cache(r: &Resp) -> &str {
    r.header("x-cache").unwrap_or("(none)")
}

fn stats(router: &Router) -> serde_json::Value {
    get(&router.url("/api/cache/stats")).json()
}

/// One of `/api/cache/stats`'s `semantic_layer` counters.
fn layer(router: &Router, counter: &str) -> u64 {
    stats(router)["semantic_layer"][counter]
        .as_u64()
        .unwrap_or_else(|| panic!("no {counter} in {}", stats(router)))
}

/// Asks `body` (a miss) and waits until its answer is stored and indexed.
fn teach(router: &Router, body: &str) {
    let before = layer(router, "entries");
    let r = ask(router, body);
    assert_eq!(x_cache(&r), "miss", "{body}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while layer(router, "entries") <= before {
        assert!(Instant::now() < deadline, "never indexed: {body}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn paraphrases_hit_and_look_alikes_do_not() {
    let mock = Mock::start(&[]);
    let router = memory_router(&mock);
    for q in [
        "What is Python?",
        "How do I reverse a list in Python",
        "What is the capital of France?",
        "How do I install numpy?",
        "Is it safe to eat raw eggs?",
        "Is a 5 km run good for beginners?",
    ] {
        teach(&router, &chat_with("llama3", &user(q), ""));
    }
    let asked = mock.stats()["inference"].as_u64().unwrap();
    for (q, want) in [
        ("What's Python?", "hit"),
        ("python: reverse a list", "hit"),
        ("What is the capital of Spain?", "miss"),
        ("How do I uninstall numpy?", "miss"),
        ("Is it not safe to eat raw eggs?", "miss"),
        ("Is a 50 km run good for beginners?", "miss"),
    ] {
        let r = ask(&router, &chat_with("llama3", &user(q), ""));
        assert_eq!(x_cache(&r), want, "{q}");
        let similarity = r.header("x-cache-similarity");
        if want == "hit" {
            let s: f32 = similarity
                .expect("a semantic hit says how similar")
                .parse()
                .unwrap();
            assert!((0.85..=1.0).contains(&s), "{s}");
            assert!(r.json()["message"]["content"]
                .as_str()
                .is_some_and(|c| !c.is_empty()));
        } else {
            assert_eq!(similarity, None);
        }
    }
    assert_eq!(
        mock.stats()["inference"].as_u64().unwrap(),
        asked + 4,
        "the misses went upstream"
    );
    let s = stats(&router);
    assert_eq!(
        (s["semantic_hits"].as_u64(), s["exact_hits"].as_u64()),
        (Some(2), Some(0))
    );
    assert_eq!(s["semantic"], true);
    assert!(layer(&router, "guard_refused") >= 1);
    // An exact repeat is an exact hit, counted apart.
    let r = ask(&router, &chat_with("llama3", &user("What is Python?"), ""));
    assert_eq!((x_cache(&r), r.header("x-cache-similarity")), ("hit", None));
    assert_eq!(stats(&router)["exact_hits"], 1);
}

#[test]
fn no_semantic_hit_crosses_a_scope_or_a_history() {
    let mock = Mock::start(&["--models", "llama3:latest,mistral:latest"]);
    let router = memory_router(&mock);
    let system = r#"{"role":"system","content":"You are terse."}"#;
    let tools = r#","tools":[{"type":"function","function":{"name":"f","parameters":{}}}]"#;
    let history = |topic: &str| {
        format!(
            r#"{},{{"role":"assistant","content":"{topic}"}},{}"#,
            user(&format!("Tell me about {topic}")),
            user("How old is it?")
        )
    };
    teach(
        &router,
        &chat_with(
            "llama3",
            &user("What is Python?"),
            r#","options":{"temperature":0}"#,
        ),
    );
    teach(
        &router,
        &chat_with("llama3", &history("the Eiffel Tower in Paris"), ""),
    );
    for (label, body) in [
        (
            "other model",
            chat_with(
                "mistral",
                &user("What's Python?"),
                r#","options":{"temperature":0}"#,
            ),
        ),
        (
            "other options",
            chat_with(
                "llama3",
                &user("What's Python?"),
                r#","options":{"temperature":1}"#,
            ),
        ),
        (
            "no options",
            chat_with("llama3", &user("What's Python?"), ""),
        ),
        (
            "a system prompt",
            chat_with(
                "llama3",
                &format!("{system},{}", user("What's Python?")),
                r#","options":{"temperature":0}"#,
            ),
        ),
        (
            "tools",
            chat_with(
                "llama3",
                &user("What's Python?"),
                &format!(r#","options":{{"temperature":0}}{tools}"#),
            ),
        ),
        (
            "another history",
            chat_with("llama3", &history("the Colosseum in Rome"), ""),
        ),
        (
            "no history",
            chat_with("llama3", &user("How old is it?"), ""),
        ),
    ] {
        let r = ask(&router, &body);
        assert_eq!(x_cache(&r), "miss", "{label}");
    }
    let same_history = chat_with(
        "llama3",
        &history("the Eiffel Tower in Paris").replace("How old is it?", "How old is it"),
        "",
    );
    assert_eq!(
        x_cache(&ask(&router, &same_history)),
        "hit",
        "the same conversation, reworded"
    );
    assert!(layer(&router, "history_refused") >= 1);
}

#[test]
fn openai_clients_get_semantic_hits_in_their_format() {
    let mock = Mock::start(&[]);
    let router = memory_router(&mock);
    let body = |q: &str, stream: bool| {
        format!(
            r#"{{"model":"llama3","messages":[{}],"stream":{stream}}}"#,
            user(q)
        )
    };
    let first = post(
        &router.url("/v1/chat/completions"),
        &body("Explain recursion.", false),
    );
    assert_eq!((first.status, x_cache(&first)), (200, "miss"));
    let deadline = Instant::now() + Duration::from_secs(10);
    while layer(&router, "entries") != 1 {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(10));
    }
    let hit = post(
        &router.url("/v1/chat/completions"),
        &body("Can you explain recursion?", false),
    );
    assert_eq!(x_cache(&hit), "hit");
    assert_eq!(
        hit.json()["choices"][0]["message"]["content"],
        first.json()["choices"][0]["message"]["content"]
    );
    let (status, lines) = stream_lines(
        &router.url("/v1/chat/completions"),
        &body("Please explain recursion", true),
        &[],
    );
    assert_eq!(status, 200);
    assert_eq!(
        lines.last().map(String::as_str),
        Some("data: [DONE]"),
        "{lines:?}"
    );
    assert_eq!(mock.stats()["inference"], 1);
}

fn file_router(mock: &Mock, file: &Path) -> Router {
    router(
        mock,
        &format!("cache_backend: mmap\ncache_mmap_path: {}\n", file.display()),
    )
}

#[test]
fn semantic_entries_survive_a_restart_and_a_lost_vectors_file_only_costs_them() {
    let mock = Mock::start(&[]);
    let d = scratch_dir("semantic-restart");
    let file = d.join("cache.mmap");
    let r = file_router(&mock, &file);
    teach(
        &r,
        &chat_with("llama3", &user("How do I reverse a list in Python"), ""),
    );
    r.stop();
    // Its graph is reloaded from the dump written at shutdown; without the dump, rebuilt.
    for (dump, how) in [(true, "reloaded_points=1"), (false, "inserted_points=1")] {
        if !dump {
            std::fs::remove_file(d.join("cache.mmap.hnsw")).unwrap();
        }
        let r = file_router(&mock, &file);
        // The index is loaded on the embedding core after the router listens.
        let deadline = Instant::now() + Duration::from_secs(10);
        while !r.log().contains("semantic cache index built") {
            assert!(Instant::now() < deadline, "not reloaded: {}", r.log());
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(r.log().contains(how), "{how}: {}", r.log());
        assert_eq!(layer(&r, "entries"), 1);
        let hit = ask(
            &r,
            &chat_with("llama3", &user("python: reverse a list"), ""),
        );
        assert_eq!(x_cache(&hit), "hit", "after a restart ({how})");
        r.stop();
    }
    // Without its vectors the index cannot be trusted: its entries are dropped, the answers stay.
    std::fs::remove_file(d.join("cache.mmap.vectors")).unwrap();
    let r = file_router(&mock, &file);
    assert_eq!(layer(&r, "entries"), 0);
    assert_eq!(
        x_cache(&ask(
            &r,
            &chat_with("llama3", &user("python: reverse a list"), "")
        )),
        "miss"
    );
    assert_eq!(
        x_cache(&ask(
            &r,
            &chat_with("llama3", &user("How do I reverse a list in Python"), "")
        )),
        "hit"
    );
    // An invalidation empties the index too.
    post(&r.url("/api/cache/invalidate"), "");
    assert_eq!(layer(&r, "entries"), 0);
    drop(r);
    let _ = std::fs::remove_dir_all(d);
}

#[test]
fn a_stalled_embedding_core_costs_a_request_no_more_than_the_budget() {
    let mock = Mock::start(&[]);
    let yaml = config_for(
        &[mock.url()],
        &format!("{SEMANTIC}cache_backend: memory\ncache_semantic_budget: 20ms\n")
            .replace("cache_semantic_budget: 5s\n", ""),
    );
    let router = Router::start_env(
        &yaml,
        &["--log-level", "warn"],
        &[("NOMYO_TEST_EMBEDDING_STALL_MS", "3000")],
    );
    for n in 0..5 {
        let started = Instant::now();
        let r = ask(
            &router,
            &chat_with("llama3", &user(&format!("question number {n}")), ""),
        );
        // The core sleeps 3 s per pass: a request that waited for it would take that long.
        assert!(
            started.elapsed() < Duration::from_millis(1500),
            "request {n} waited for the core"
        );
        assert_eq!(x_cache(&r), "miss");
    }
    assert_eq!(mock.stats()["inference"], 5);
    assert!(layer(&router, "over_budget") >= 4);
}

#[test]
fn a_missing_model_is_a_startup_error_that_says_how_to_fetch_it() {
    let d = scratch_dir("semantic-nomodel");
    let yaml = format!(
        "endpoints: [http://127.0.0.1:1]\n{SEMANTIC}cache_embedding_model: {}\n",
        d.display()
    );
    let config = d.join("config.yaml");
    std::fs::write(&config, yaml).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_nomyo-router"))
        .args(["--config", config.to_str().unwrap(), "--check-config"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("scripts/fetch-embedding-model.sh") && err.contains("model.safetensors"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(d);
}
