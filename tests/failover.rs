//! Failover (SPEC §4.6): a backend killed mid-run; requests that had not started streaming succeed
//! on another backend; a stream cut mid-way ends with an error line; a hung backend times out.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;

const CHAT: &str = r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"stream":false}"#;

#[test]
fn killed_backend_mid_run_loses_no_request_that_had_not_started_streaming() {
    let mut a = Mock::start(&["--models", "m", "--tokens", "5", "--token-delay-ms", "2"]);
    let b = Mock::start(&["--models", "m", "--tokens", "5", "--token-delay-ms", "2"]);
    let router = Arc::new(Router::start(
        &config_for(&[a.url(), b.url()], "max_concurrent_connections: 4\n"),
        &["--log-level", "warn"],
    ));
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..6)
        .map(|_| {
            let (router, stop, ok) = (router.clone(), stop.clone(), ok.clone());
            std::thread::spawn(move || {
                let mut failures = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let r = post(&router.url("/api/chat"), CHAT);
                    if r.status == 200 {
                        ok.fetch_add(1, Ordering::Relaxed);
                    } else {
                        failures.push(format!("{} {}", r.status, r.body));
                    }
                }
                failures
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(600));
    let served_by_a_before = a.stats()["inference"].as_u64().unwrap();
    a.kill();
    std::thread::sleep(Duration::from_millis(900));
    stop.store(true, Ordering::Relaxed);
    let failures: Vec<String> = workers
        .into_iter()
        .flat_map(|w| w.join().unwrap())
        .collect();
    assert!(
        failures.is_empty(),
        "{} requests failed: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    assert!(
        served_by_a_before > 0,
        "A never served: the test did not exercise failover"
    );
    assert!(ok.load(Ordering::Relaxed) > 50);
    let health = get(&router.url("/health"));
    assert_eq!(health.status, 200);
    assert_eq!(health.json()["endpoints"][a.url()]["status"], "error");
    assert_eq!(router.wait_idle()["total_in_flight"], 0);
}

#[test]
fn stream_cut_mid_way_ends_with_an_error_line_in_its_format() {
    let mut a = Mock::start(&["--models", "m", "--tokens", "40", "--token-delay-ms", "25"]);
    let router = Router::start(&config_for(&[a.url()], ""), &["--log-level", "warn"]);
    let url = router.url("/api/chat");
    let reader =
        std::thread::spawn(move || stream_lines(&url, r#"{"model":"m","messages":[]}"#, &[]));
    std::thread::sleep(Duration::from_millis(300));
    a.kill();
    let (status, lines) = reader.join().unwrap();
    assert_eq!(status, 200);
    assert!(lines.len() > 2 && lines.len() < 40, "{lines:?}");
    let last: serde_json::Value = serde_json::from_str(lines.last().unwrap()).unwrap();
    assert!(last["error"].is_string(), "{last}");
    assert_eq!(router.wait_idle()["total_in_flight"], 0);
}

/// A backend slow to answer is still generating: a first-byte timeout is the client's 504, the
/// generation is not re-run on another backend, and the slow endpoint stays up.
#[test]
fn a_first_byte_timeout_is_the_clients_504_and_is_not_rerun_elsewhere() {
    let hung = Mock::start(&["--models", "m", "--fault", "hang"]);
    let good = Mock::start(&["--models", "m"]);
    let router = Router::start(
        &config_for(
            &[hung.url(), good.url()],
            "timeouts:\n  first_byte: 400ms\n  first_byte_cold: 400ms\n",
        ),
        &["--log-level", "warn"],
    );
    let (mut ok, mut timed_out) = (0, 0);
    for _ in 0..6 {
        let r = post(&router.url("/api/chat"), CHAT);
        match r.status {
            200 => {
                assert_eq!(r.header("x-router-endpoint"), Some(good.url().as_str()));
                ok += 1;
            }
            504 => timed_out += 1,
            other => panic!("{other}: {}", r.body),
        }
    }
    assert!(
        ok > 0 && timed_out > 0,
        "ties rotate over both: {ok} ok, {timed_out} timed out"
    );
    assert_eq!(
        good.stats()["inference"],
        ok,
        "a timed-out request was re-run"
    );
    let health = get(&router.url("/health")).json();
    assert_eq!(health["endpoints"][hung.url()]["status"], "ok", "{health}");
    // With only the hung backend, the client gets a 504 in its format.
    let alone = Router::start(
        &config_for(
            &[hung.url()],
            "timeouts:\n  first_byte: 300ms\n  first_byte_cold: 300ms\n",
        ),
        &["--log-level", "warn"],
    );
    let r = post(
        &alone.url("/v1/chat/completions"),
        r#"{"model":"m","messages":[]}"#,
    );
    assert_eq!(r.status, 504, "{}", r.body);
    assert!(r.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("no response head"));
    assert_eq!(alone.wait_idle()["total_in_flight"], 0);
}

#[test]
fn one_client_connection_gets_a_fresh_first_byte_limit_for_each_request() {
    let m = Mock::start(&["--models", "m"]);
    let router = Router::start(
        &config_for(
            &[m.url()],
            "timeouts:\n  first_byte: 400ms\n  first_byte_cold: 400ms\n",
        ),
        &["--log-level", "warn"],
    );
    let url = router.url("/api/chat");
    // One agent: every request goes over the same keep-alive connection, whose timer they share.
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(10))
        .build();
    let status = |headers: &[(&str, &str)]| {
        let mut req = agent.post(&url);
        for (k, v) in headers {
            req = req.set(k, v);
        }
        match req.send_string(CHAT) {
            Ok(r) => r.status(),
            Err(ureq::Error::Status(code, _)) => code,
            Err(e) => panic!("transport error: {e}"),
        }
    };
    for _ in 0..3 {
        assert_eq!(status(&[]), 200);
    }
    // Longer than the limit: the last request's deadline passes while the connection is idle.
    std::thread::sleep(Duration::from_millis(700));
    assert_eq!(
        status(&[("x-mock-first-byte-ms", "150")]),
        200,
        "a head inside the limit was refused"
    );
    assert_eq!(status(&[("x-mock-fault", "hang")]), 504);
    assert_eq!(router.wait_idle()["total_in_flight"], 0);
}

/// A router in front of `m` (with `extra` configuration) and one streaming chat through it: the
/// router (kept for checks after), the status, the body lines and how long the stream took.
fn stream_chat_through(m: &Mock, extra: &str) -> (Router, u16, Vec<String>, Duration) {
    let router = Router::start(&config_for(&[m.url()], extra), &["--log-level", "warn"]);
    let started = std::time::Instant::now();
    let (status, lines) = stream_lines(
        &router.url("/api/chat"),
        r#"{"model":"m","messages":[]}"#,
        &[],
    );
    (router, status, lines, started.elapsed())
}

#[test]
fn total_time_limit_ends_a_long_stream_with_an_error_line() {
    let m = Mock::start(&["--models", "m", "--tokens", "40", "--token-delay-ms", "50"]);
    let (router, status, lines, took) = stream_chat_through(&m, "timeouts:\n  total: 600ms\n");
    assert_eq!(status, 200);
    assert!(
        took < Duration::from_millis(1500),
        "the limit did not apply"
    );
    let last: serde_json::Value = serde_json::from_str(lines.last().unwrap()).unwrap();
    assert!(
        last["error"].as_str().unwrap().contains("total time limit"),
        "{last}"
    );
    assert_eq!(router.wait_idle()["total_in_flight"], 0);
    // The backend saw the cancellation.
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(m.stats()["cancelled"], 1);
}

#[test]
fn the_idle_limit_counts_from_the_last_chunk_not_the_start() {
    // 10 tokens 100 ms apart: 1 s in all, never 300 ms without a chunk. It must complete.
    let steady = Mock::start(&["--models", "m", "--tokens", "10", "--token-delay-ms", "100"]);
    let (_router, status, lines, _) = stream_chat_through(&steady, "timeouts:\n  idle: 300ms\n");
    assert_eq!(status, 200);
    let last: serde_json::Value = serde_json::from_str(lines.last().unwrap()).unwrap();
    assert_eq!(last["done"], true, "{last}");
    assert_eq!(lines.len(), 11, "{lines:?}");
    // 800 ms between tokens: the stream ends with an error line once 300 ms pass without a chunk.
    let stalling = Mock::start(&["--models", "m", "--tokens", "5", "--token-delay-ms", "800"]);
    let (router, status, lines, took) =
        stream_chat_through(&stalling, "timeouts:\n  idle: 300ms\n");
    assert_eq!(status, 200);
    assert!(took < Duration::from_millis(2500));
    let last: serde_json::Value = serde_json::from_str(lines.last().unwrap()).unwrap();
    assert!(
        last["error"].as_str().unwrap().contains("sent nothing for"),
        "{last}"
    );
    assert_eq!(router.wait_idle()["total_in_flight"], 0);
}

#[test]
fn a_backend_that_comes_up_later_is_used_at_the_next_loaded_poll() {
    let port = free_port();
    let yaml = format!(
        "endpoints:\n  - http://127.0.0.1:{port}\ndiscovery:\n  loaded_interval: 200ms\n  models_interval: 1h\n  poll_timeout: 500ms\n"
    );
    let router = Router::start(&yaml, &["--log-level", "warn"]);
    assert_eq!(post(&router.url("/api/chat"), CHAT).status, 503);
    let _m = Mock::start_on(port, &["--models", "m"]);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let r = post(&router.url("/api/chat"), CHAT);
        if r.status == 200 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never routed to the new backend: {} {}",
            r.status,
            r.body
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
