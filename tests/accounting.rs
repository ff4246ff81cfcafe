//! Token accounting (SPEC §8.4): exact counts from the backends' own numbers on every path —
//! native, translated and llama-server; streamed and whole; chat, generate, completions and
//! embeddings; OpenAI streams whose client did not ask for usage — kept across a restart, cache
//! hits apart, and a database that fails costs no request and loses no count.
//!
//! The mock counts a request's prompt as the whitespace-separated words of its JSON body, so
//! "one two three" is 3 prompt tokens on every route and in every translation; answers have
//! `--tokens` completion tokens, embeddings one prompt token per input.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

const MSG: &str = r#"[{"role":"user","content":"one two three"}]"#;

struct Fleet {
    ollama: Mock,
    openai: Mock,
    llama: Mock,
}

impl Fleet {
    fn start() -> Fleet {
        Fleet {
            ollama: Mock::start(&["--models", "alpha:latest"]),
            openai: Mock::start(&["--kind", "openai", "--models", "beta"]),
            llama: Mock::start(&["--kind", "llama-server", "--models", "gamma"]),
        }
    }

    fn config(&self, extra: &str) -> String {
        format!(
            "{}llama_server_endpoints:\n  - {}\n{extra}",
            config_for(
                &[self.ollama.url(), format!("{}/v1", self.openai.url())],
                ""
            ),
            self.llama.url()
        )
    }

    fn urls(&self) -> (String, String, String) {
        (
            self.ollama.url(),
            format!("{}/v1", self.openai.url()),
            self.llama.url(),
        )
    }
}

fn chat(model: &str, stream: bool) -> String {
    format!(r#"{{"model":"{model}","messages":{MSG},"stream":{stream}}}"#)
}

/// Sends `body` to `path` and reads the whole answer; it must succeed.
fn call(router: &Router, path: &str, body: &str) -> String {
    let r = post(&router.url(path), body);
    assert_eq!(r.status, 200, "{path} {body}: {}", r.body);
    r.body
}

/// Every path once; returns the expected (input, output) per model.
fn traffic(router: &Router) -> [(&'static str, (u64, u64)); 3] {
    // Native Ollama endpoint: both APIs, streamed and whole.
    call(router, "/api/chat", &chat("alpha", true));
    call(router, "/api/chat", &chat("alpha", false));
    call(
        router,
        "/api/generate",
        r#"{"model":"alpha","prompt":"one two three"}"#,
    );
    call(
        router,
        "/api/generate",
        r#"{"model":"alpha","prompt":"one two three","stream":false}"#,
    );
    call(
        router,
        "/api/embed",
        r#"{"model":"alpha","input":["x","y"]}"#,
    );
    let sse = call(router, "/v1/chat/completions", &chat("alpha", true));
    // The client did not ask for usage: it gets no usage chunk, yet the stream is counted.
    assert!(!sse.contains("\"choices\":[]"), "{sse}");
    assert!(sse.ends_with("data: [DONE]\n\n"), "{sse}");
    let asked = call(
        router,
        "/v1/chat/completions",
        &format!(
            r#"{{"model":"alpha","messages":{MSG},"stream":true,"stream_options":{{"include_usage":true}}}}"#
        ),
    );
    assert!(asked.contains("\"prompt_tokens\":3"), "{asked}");
    call(router, "/v1/chat/completions", &chat("alpha", false));
    call(
        router,
        "/v1/completions",
        r#"{"model":"alpha","prompt":"one two three","stream":true}"#,
    );
    call(
        router,
        "/v1/embeddings",
        r#"{"model":"alpha","input":["x","y","z"]}"#,
    );
    // OpenAI-compatible endpoint: Ollama clients translated, OpenAI clients as they are.
    call(router, "/api/chat", &chat("beta", true));
    call(router, "/api/chat", &chat("beta", false));
    call(
        router,
        "/api/generate",
        r#"{"model":"beta","prompt":"one two three"}"#,
    );
    call(
        router,
        "/api/embed",
        r#"{"model":"beta","input":["x","y"]}"#,
    );
    call(router, "/v1/chat/completions", &chat("beta", true));
    // llama-server: `timings` rather than `usage`.
    call(router, "/api/chat", &chat("gamma", true));
    call(router, "/v1/chat/completions", &chat("gamma", true));
    [
        ("alpha:latest", (8 * 3 + 2 + 3, 8 * 5)),
        ("beta", (4 * 3 + 2, 4 * 5)),
        ("gamma", (2 * 3, 2 * 5)),
    ]
}

fn counts(router: &Router) -> Value {
    let r = get(&router.url("/api/token_counts"));
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()
}

fn row<'a>(counts: &'a Value, endpoint: &str, model: &str) -> &'a Value {
    counts["breakdown"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["endpoint"] == endpoint && r["model"] == model)
        .unwrap_or_else(|| panic!("no row for {endpoint} {model}: {counts}"))
}

fn assert_counts(router: &Router, fleet: &Fleet, expected: &[(&str, (u64, u64))], times: u64) {
    let c = counts(router);
    let (a, b, g) = fleet.urls();
    let mut total = 0;
    for ((model, (i, o)), ep) in expected.iter().zip([a, b, g]) {
        let r = row(&c, &ep, model);
        assert_eq!(
            (r["input_tokens"].as_u64(), r["output_tokens"].as_u64()),
            (Some(i * times), Some(o * times)),
            "{model}: {c}"
        );
        total += (i + o) * times;
    }
    assert_eq!(c["total_tokens"], total, "{c}");
    assert_eq!(c["breakdown"].as_array().unwrap().len(), 3, "{c}");
}

#[test]
fn every_path_is_counted_exactly_and_survives_a_restart() {
    let fleet = Fleet::start();
    let dir = scratch_dir("accounting");
    let db = dir.join("tokens.db");
    let config = fleet.config(&format!("db_path: {}\n", db.display()));
    let router = Router::start(&config, &["--log-level", "info"]);
    let expected = traffic(&router);
    assert_counts(&router, &fleet, &expected, 1);
    // The stats answer of one model: totals, its series, its endpoints.
    let stats = post(&router.url("/api/stats"), r#"{"model":"alpha"}"#).json();
    assert_eq!(stats["model"], "alpha:latest");
    assert_eq!(stats["input_tokens"], 29);
    assert_eq!(stats["output_tokens"], 40);
    assert_eq!(stats["endpoint_distribution"][fleet.ollama.url()], 69);
    let series = stats["time_series"].as_array().unwrap();
    assert!(!series.is_empty());
    assert_eq!(
        series
            .iter()
            .map(|r| r["total_tokens"].as_u64().unwrap())
            .sum::<u64>(),
        69
    );
    let missing = post(&router.url("/api/stats"), r#"{"model":"nope"}"#);
    assert_eq!(missing.status, 404, "{}", missing.body);
    // /api/usage and the request log carry the tokens too.
    let alpha = || router.usage()["token_usage_counts"][fleet.ollama.url()]["alpha:latest"].clone();
    eventually(alpha, json!(69));
    let log = router.log();
    assert!(log.contains("prompt_tokens=3 completion_tokens=5"), "{log}");
    router.stop();

    let router = Router::start(&config, &["--log-level", "warn"]);
    assert_counts(&router, &fleet, &expected, 1);
    assert_eq!(
        router.usage()["token_usage_counts"][fleet.llama.url()]["gamma"],
        16,
        "loaded from the database at start"
    );
    traffic(&router);
    assert_counts(&router, &fleet, &expected, 2);
}

#[test]
fn aggregation_rolls_each_row_once_and_validates_its_body() {
    let fleet = Fleet::start();
    let dir = scratch_dir("accounting-agg");
    let config = fleet.config(&format!("db_path: {}\n", dir.join("t.db").display()));
    let router = Router::start(&config, &["--log-level", "warn"]);
    call(&router, "/api/chat", &chat("alpha", false));
    let url = router.url("/api/aggregate_time_series_days");
    // Rows older than 0 days: everything up to now, in one (endpoint, model, day) group; a
    // second call finds nothing new (the reference counted the same rows again).
    for groups in [1, 0] {
        let r = post(&url, r#"{"days":0}"#);
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(
            r.json(),
            json!({"status": "ok", "days": 0, "trim_old": false, "aggregated_groups": groups})
        );
    }
    let r = post(&url, "");
    assert_eq!(r.json()["days"], 30);
    for bad in [
        r#"{"days":-1}"#,
        r#"{"days":"x"}"#,
        r#"{"trim_old":1}"#,
        "[1]",
        "{",
    ] {
        let r = post(&url, bad);
        assert_eq!(r.status, 400, "{bad}: {}", r.body);
        assert!(r.json()["error"].is_string(), "{}", r.body);
    }
}

#[test]
fn cache_hits_are_counted_apart_as_tokens_saved() {
    let fleet = Fleet::start();
    let dir = scratch_dir("accounting-cache");
    let config = fleet.config(&format!(
        "db_path: {}\ncache_enabled: true\ncache_backend: memory\n",
        dir.join("t.db").display()
    ));
    let router = Router::start(&config, &["--log-level", "info"]);
    let body = chat("alpha", false);
    call(&router, "/api/chat", &body);
    let hit = post(&router.url("/api/chat"), &body);
    assert_eq!(hit.header("x-cache"), Some("hit"));
    let c = counts(&router);
    assert_eq!(c["total_tokens"], 8, "{c}");
    assert_eq!(
        c["cache_saved"],
        json!({"hits": 1, "input_tokens": 3, "output_tokens": 5, "total_tokens": 8})
    );
    wait_for_metric(
        &router,
        "nomyo_router_cache_tokens_saved_total{direction=\"output\"} 5",
    );
}

#[test]
fn a_cached_stream_keeps_the_usage_its_client_did_not_see() {
    let fleet = Fleet::start();
    let dir = scratch_dir("accounting-cache-sse");
    let config = fleet.config(&format!(
        "db_path: {}\ncache_enabled: true\ncache_backend: memory\n",
        dir.join("t.db").display()
    ));
    let router = Router::start(&config, &["--log-level", "warn"]);
    let miss = call(&router, "/v1/chat/completions", &chat("alpha", true));
    assert!(!miss.contains("\"choices\":[]"), "{miss}");
    let asked = format!(
        r#"{{"model":"alpha","messages":{MSG},"stream":true,"stream_options":{{"include_usage":true}}}}"#
    );
    let hit = post(&router.url("/v1/chat/completions"), &asked);
    assert_eq!(hit.header("x-cache"), Some("hit"));
    assert!(
        hit.body.contains("\"prompt_tokens\":3") && hit.body.contains("\"completion_tokens\":5"),
        "{}",
        hit.body
    );
    assert_eq!(counts(&router)["cache_saved"]["total_tokens"], 8);
}

#[test]
fn answers_cut_short_count_nothing() {
    let fleet = Fleet::start();
    let dir = scratch_dir("accounting-cut");
    let config = fleet.config(&format!("db_path: {}\n", dir.join("t.db").display()));
    let router = Router::start(&config, &["--log-level", "warn"]);
    // llama-server's first chunk carries a running usage; the stream then dies.
    let r = post_with(
        &router.url("/v1/chat/completions"),
        &chat("gamma", true),
        &[("x-mock-fault", "die")],
    );
    assert!(r.body.contains("failed mid-response"), "{}", r.body);
    let (_, lines) = stream_lines(
        &router.url("/api/chat"),
        &chat("alpha", true),
        &[("x-mock-fault", "die")],
    );
    assert!(lines.last().unwrap().contains("error"), "{lines:?}");
    assert_eq!(counts(&router)["total_tokens"], 0);
}

#[test]
fn a_deleted_database_file_is_made_again() {
    let fleet = Fleet::start();
    let dir = scratch_dir("accounting-deleted");
    let db = dir.join("sub/t.db");
    let config = fleet.config(&format!("db_path: {}\n", db.display()));
    let router = Router::start(&config, &["--log-level", "info"]);
    call(&router, "/api/chat", &chat("alpha", false));
    assert_eq!(counts(&router)["total_tokens"], 8);
    std::fs::remove_dir_all(dir.join("sub")).unwrap();
    call(&router, "/api/chat", &chat("alpha", false));
    // The next write finds the file gone, says so, and makes a new one with what it holds.
    assert_eq!(counts(&router)["total_tokens"], 8);
    assert!(db.exists());
    assert!(
        router.log().contains("deleted or replaced"),
        "{}",
        router.log()
    );
    router.stop();
    assert_eq!(written_total(&db), 8);
}

#[test]
fn a_locked_database_costs_no_request_and_loses_no_count() {
    let fleet = Fleet::start();
    let dir = scratch_dir("accounting-locked");
    let db = dir.join("t.db");
    let config = fleet.config(&format!("db_path: {}\n", db.display()));
    let router = Router::start(&config, &["--log-level", "info"]);
    call(&router, "/api/chat", &chat("alpha", false));
    assert_eq!(counts(&router)["total_tokens"], 8);
    // Another process takes the write lock and keeps it.
    let other = rusqlite::Connection::open(&db).unwrap();
    other.execute_batch("BEGIN IMMEDIATE").unwrap();
    for _ in 0..3 {
        call(&router, "/api/chat", &chat("alpha", false));
    }
    let metrics = wait_for_metric(&router, "nomyo_router_accounting_db_up 0");
    assert!(
        metric_value(&metrics, "nomyo_router_accounting_db_errors_total") >= 1.0,
        "{metrics}"
    );
    assert_eq!(
        metric_value(&metrics, "nomyo_router_accounting_pending_records"),
        3.0
    );
    assert!(router.log().contains("token database: cannot write"));
    // Counts held in memory are part of the answer meanwhile.
    assert_eq!(counts(&router)["total_tokens"], 32);
    other.execute_batch("COMMIT").unwrap();
    drop(other);
    wait_for_metric(&router, "nomyo_router_accounting_db_up 1");
    assert_eq!(counts(&router)["total_tokens"], 32);
    router.stop();
    assert_eq!(written_total(&db), 32);
}

#[test]
fn a_database_that_cannot_open_leaves_the_router_serving() {
    let fleet = Fleet::start();
    let config = fleet.config("db_path: /proc/nomyo-router-none/t.db\n");
    let router = Router::start(&config, &["--log-level", "info"]);
    call(&router, "/api/chat", &chat("alpha", true));
    let r = get(&router.url("/api/token_counts"));
    assert_eq!(r.status, 503, "{}", r.body);
    assert!(r.json()["error"]
        .as_str()
        .unwrap()
        .contains("token database unavailable"));
    let metrics = get(&router.url("/metrics")).body;
    assert!(
        metrics.contains("nomyo_router_accounting_db_up 0"),
        "{metrics}"
    );
    // The live totals still count.
    eventually(
        || router.usage()["token_usage_counts"][fleet.ollama.url()]["alpha:latest"].clone(),
        json!(8),
    );
}

#[test]
fn accounting_and_metrics_can_be_off() {
    let m = Mock::start(&[]);
    let router = Router::start(
        &config_for(&[m.url()], "token_accounting: false\nmetrics: false\n"),
        &["--log-level", "warn"],
    );
    call(
        &router,
        "/api/chat",
        r#"{"model":"llama3","messages":[],"stream":false}"#,
    );
    assert_eq!(get(&router.url("/api/token_counts")).status, 404);
    assert_eq!(get(&router.url("/metrics")).status, 404);
    assert!(!router.dir.join("token_counts.db").exists());
}

/// Waits for `f` to give `want`: the live totals are republished at most every 100 ms.
fn eventually(f: impl Fn() -> Value, want: Value) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let got = f();
        if got == want {
            return;
        }
        assert!(Instant::now() < deadline, "{got} is not {want}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The total tokens in the database file itself (the router stopped).
fn written_total(db: &std::path::Path) -> i64 {
    rusqlite::Connection::open(db)
        .unwrap()
        .query_row("SELECT SUM(total_tokens) FROM token_counts", [], |r| {
            r.get(0)
        })
        .unwrap()
}

fn metric_value(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} not in:\n{text}"))
}

fn wait_for_metric(router: &Router, line: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = get(&router.url("/metrics")).body;
        if text.lines().any(|l| l == line) {
            return text;
        }
        assert!(Instant::now() < deadline, "no `{line}` in:\n{text}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn usage_stream_shows_a_stream_start_and_end() {
    let m = Mock::start(&["--tokens", "15", "--token-delay-ms", "100"]);
    let router = Router::start(&config_for(&[m.url()], ""), &["--log-level", "warn"]);
    let mut watcher = TcpStream::connect(("127.0.0.1", router.port)).unwrap();
    watcher
        .write_all(b"GET /api/usage-stream HTTP/1.1\r\nhost: x\r\n\r\n")
        .unwrap();
    watcher
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut events = BufReader::new(watcher);
    let in_flight = |line: &str| -> Option<u64> {
        let v: Value = serde_json::from_str(line.strip_prefix("data: ")?).ok()?;
        v["usage_counts"][m.url()]["llama3:latest"].as_u64()
    };
    let next = |events: &mut BufReader<TcpStream>| -> Option<u64> {
        let mut line = String::new();
        while events.read_line(&mut line).ok()? > 0 {
            if let Some(n) = in_flight(&line) {
                return Some(n);
            }
            line.clear();
        }
        None
    };
    // A snapshot on connect.
    assert_eq!(next(&mut events), Some(0));
    let url = router.url("/api/chat");
    let client = std::thread::spawn(move || {
        stream_lines(&url, r#"{"model":"llama3","messages":[]}"#, &[])
            .1
            .len()
    });
    assert_eq!(next(&mut events), Some(1), "the stream started");
    assert_eq!(next(&mut events), Some(0), "the stream ended");
    assert_eq!(client.join().unwrap(), 16);
    let metrics = get(&router.url("/metrics")).body;
    assert!(
        metrics.contains("nomyo_router_usage_stream_watchers 1"),
        "{metrics}"
    );
}
