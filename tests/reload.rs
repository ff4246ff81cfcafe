//! Configuration reload (SIGHUP and `POST /api/config/reload`): a stream running through the reload
//! completes on the old settings, the next request uses the new endpoint set, and a file that does
//! not load or validate is refused while the running configuration stays.

mod common;

use std::time::{Duration, Instant};

use common::*;

const CHAT: &str = r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"stream":false}"#;
const STREAM: &str = r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"stream":true}"#;

fn rewrite(router: &Router, yaml: &str) {
    std::fs::write(router.dir.join("config.yaml"), yaml).unwrap();
}

fn hangup(router: &Router) {
    unsafe { libc::kill(router.pid() as libc::pid_t, libc::SIGHUP) };
}

/// Waits until the router's log has `n` lines containing `text`.
fn wait_log(router: &Router, text: &str, n: usize) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let log = router.log();
        if log.matches(text).count() >= n {
            return log;
        }
        assert!(Instant::now() < deadline, "no '{text}' in the log:\n{log}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Asks until the answer comes from `endpoint` (a reload's new endpoint is usable once polled).
fn wait_answer_from(router: &Router, endpoint: &str, headers: &[(&str, &str)]) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = request("POST", &router.url("/api/chat"), CHAT, headers);
        if r.status == 200 && r.header("x-router-endpoint") == Some(endpoint) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no answer from {endpoint}: {} {:?}",
            r.status,
            r.header("x-router-endpoint")
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_stream_outlives_the_reload_and_the_next_request_takes_the_new_endpoints() {
    let old = Mock::start(&["--models", "m", "--tokens", "15", "--token-delay-ms", "100"]);
    let new = Mock::start(&["--models", "m"]);
    let router = Router::start(&config_for(&[old.url()], ""), &[]);
    let url = router.url("/api/chat");
    let stream = std::thread::spawn(move || stream_lines(&url, STREAM, &[]));
    let deadline = Instant::now() + Duration::from_secs(5);
    while router.usage()["total_in_flight"] != 1 {
        assert!(Instant::now() < deadline, "the stream never started");
        std::thread::sleep(Duration::from_millis(10));
    }

    rewrite(&router, &config_for(&[new.url()], ""));
    hangup(&router);
    wait_log(&router, "configuration reloaded", 1);
    wait_answer_from(&router, &new.url(), &[]);
    // The old endpoint is gone from the new configuration while its stream still runs.
    let (_, config) = get_json(&router.url("/api/config"));
    let urls: Vec<&str> = config["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["url"].as_str().unwrap())
        .collect();
    assert_eq!(urls, [new.url()]);
    assert_eq!(
        router.usage()["total_in_flight"],
        1,
        "the stream still runs"
    );

    let (status, lines) = stream.join().unwrap();
    assert_eq!(status, 200);
    assert_eq!(lines.len(), 16, "every token and the final line: {lines:?}");
    let last: serde_json::Value = serde_json::from_str(lines.last().unwrap()).unwrap();
    assert_eq!(last["done"], true);
    // Its slot was released: nothing is left in flight anywhere.
    assert_eq!(router.wait_idle()["total_in_flight"], 0);
    for _ in 0..5 {
        let r = post(&router.url("/api/chat"), CHAT);
        assert_eq!(r.header("x-router-endpoint"), Some(new.url().as_str()));
    }
}

#[test]
fn a_file_that_does_not_load_is_refused_and_the_running_configuration_stays() {
    let m = Mock::start(&["--models", "m"]);
    let router = Router::start(&config_for(&[m.url()], ""), &[]);
    assert_eq!(post(&router.url("/api/chat"), CHAT).status, 200);

    // Not YAML.
    rewrite(&router, "endpoints: [\n");
    let r = post(&router.url("/api/config/reload"), "");
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(r.body.contains("the running one stays"), "{}", r.body);
    // YAML, but not a valid configuration.
    rewrite(&router, "endpoints:\n  - ftp://nowhere:1\n");
    let r = post(&router.url("/api/config/reload"), "");
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(r.body.contains("ftp://nowhere"), "{}", r.body);
    hangup(&router);
    wait_log(&router, "configuration reload refused", 3);

    let r = post(&router.url("/api/chat"), CHAT);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("x-router-endpoint"), Some(m.url().as_str()));
    // A good file is taken after the refused ones.
    rewrite(&router, &config_for(&[m.url()], "workers: 7\n"));
    let r = post(&router.url("/api/config/reload"), "");
    assert_eq!(r.status, 200, "{}", r.body);
    let summary = &r.json()["summary"];
    assert_eq!(summary["needs_restart"], serde_json::json!(["workers"]));
    assert_eq!(summary["added"], serde_json::json!([]));
    assert_eq!(summary["removed"], serde_json::json!([]));
}

#[test]
fn the_router_key_changes_with_a_reload_and_the_reload_route_needs_it() {
    let m = Mock::start(&["--models", "m"]);
    let router = Router::start(&config_for(&[m.url()], "nomyo-router-api-key: old\n"), &[]);
    let old = [("authorization", "Bearer old")];
    let new = [("authorization", "Bearer new")];
    assert_eq!(post(&router.url("/api/config/reload"), "").status, 401);
    rewrite(
        &router,
        &config_for(&[m.url()], "nomyo-router-api-key: new\n"),
    );
    let r = request("POST", &router.url("/api/config/reload"), "", &old);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        request("POST", &router.url("/api/chat"), CHAT, &old).status,
        403
    );
    wait_answer_from(&router, &m.url(), &new);
}

#[test]
fn a_reload_adds_an_endpoint_and_raises_a_limit() {
    let a = Mock::start(&["--models", "m", "--tokens", "30", "--token-delay-ms", "100"]);
    let b = Mock::start(&["--models", "m"]);
    let router = Router::start(&config_for(&[a.url()], "queue:\n  mode: reject\n"), &[]);
    let url = router.url("/api/chat");
    let first = {
        let url = url.clone();
        std::thread::spawn(move || stream_lines(&url, STREAM, &[]))
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while router.usage()["total_in_flight"] != 1 {
        assert!(Instant::now() < deadline, "the stream never started");
        std::thread::sleep(Duration::from_millis(10));
    }
    // One slot per model, taken: refused.
    assert_eq!(post(&url, CHAT).status, 429);
    rewrite(
        &router,
        &config_for(
            &[
                format!("{{url: '{}', max_concurrent_connections: 2}}", a.url()),
                b.url(),
            ],
            "queue:\n  mode: reject\n",
        ),
    );
    hangup(&router);
    wait_log(&router, "configuration reloaded", 1);
    // `a` now has two slots, one of them held by the stream that began before the reload.
    let usage = router.usage();
    assert_eq!(usage["slot_limits"][a.url()]["m"], 2, "{usage}");
    assert_eq!(usage["usage_counts"][a.url()]["m"], 1, "{usage}");
    // Refused before the reload, served now.
    assert_eq!(post(&url, CHAT).status, 200);
    // `b` was polled at once and serves `m`.
    let deadline = Instant::now() + Duration::from_secs(5);
    while router.usage()["slot_limits"][b.url()]["m"] != 1 {
        assert!(Instant::now() < deadline, "{}", router.usage());
        std::thread::sleep(Duration::from_millis(20));
    }
    let (status, lines) = first.join().unwrap();
    assert_eq!((status, lines.len()), (200, 31));
    assert_eq!(router.wait_idle()["total_in_flight"], 0);
}

/// Requests queued behind a slot whose endpoint a reload changed: the place freed by the request
/// that began before the reload goes to them, one after the other, under the new limit (a waiter
/// once refused the old slot and passed it on, round and round, until the queue timed out).
fn queued_requests_get_the_places_of_requests_begun_before_a_reload(before: u32, after: u32) {
    let m = Mock::start(&["--models", "m", "--tokens", "5", "--token-delay-ms", "100"]);
    let endpoint = |limit: u32, weight: u32| {
        format!(
            "{{url: '{}', max_concurrent_connections: {limit}, weight: {weight}}}",
            m.url()
        )
    };
    let queue = "queue:\n  mode: queue\n  queue_timeout: 20s\n";
    let router = Router::start(&config_for(&[endpoint(before, 1)], queue), &[]);
    let url = router.url("/api/chat");
    let spawn = |n: u32| -> Vec<_> {
        (0..n)
            .map(|_| {
                let url = url.clone();
                std::thread::spawn(move || post(&url, CHAT))
            })
            .collect()
    };
    let running = spawn(before);
    let deadline = Instant::now() + Duration::from_secs(5);
    while router.usage()["total_in_flight"] != before {
        assert!(Instant::now() < deadline, "{}", router.usage());
        std::thread::sleep(Duration::from_millis(10));
    }
    rewrite(&router, &config_for(&[endpoint(after, 2)], queue));
    hangup(&router);
    wait_log(&router, "configuration reloaded", 1);
    let _ = request("POST", &format!("{}/mock/reset", m.url()), "", &[]);
    let queued = spawn(3);
    for r in running.into_iter().chain(queued) {
        let r = r.join().unwrap();
        assert_eq!(r.status, 200, "{}", r.body);
    }
    assert_eq!(router.wait_idle()["total_in_flight"], 0);
    // Once the requests begun before the reload ended, no more than the new limit ran.
    let max = m.stats()["max_in_flight"].as_u64().unwrap();
    assert!(max <= u64::from(before.max(after)), "{max}");
}

#[test]
fn a_changed_endpoint_hands_its_places_to_the_queue() {
    queued_requests_get_the_places_of_requests_begun_before_a_reload(1, 1);
}

#[test]
fn a_lowered_limit_hands_places_on_only_under_it() {
    queued_requests_get_the_places_of_requests_begun_before_a_reload(3, 1);
}

#[test]
fn a_reload_that_blocks_on_its_file_holds_up_neither_requests_nor_the_shutdown() {
    let m = Mock::start(&["--models", "m"]);
    let router = Router::start(&config_for(&[m.url()], ""), &[]);
    let config = router.dir.join("config.yaml");
    std::fs::remove_file(&config).unwrap();
    let fifo = std::ffi::CString::new(config.to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
    // Refused as not a regular file, by the route and by SIGHUP.
    let r = post(&router.url("/api/config/reload"), "");
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(r.body.contains("not a regular file"), "{}", r.body);
    hangup(&router);
    wait_log(&router, "configuration reload refused", 2);
    assert_eq!(post(&router.url("/api/chat"), CHAT).status, 200);
    router.stop();
}

#[test]
fn an_empty_file_is_refused_and_a_key_change_ends_usage_streams() {
    let m = Mock::start(&["--models", "m"]);
    let router = Router::start(&config_for(&[m.url()], "nomyo-router-api-key: a\n"), &[]);
    let a = [("authorization", "Bearer a")];
    rewrite(&router, "");
    let r = request("POST", &router.url("/api/config/reload"), "", &a);
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(r.body.contains("no endpoints"), "{}", r.body);
    assert_eq!(
        request("GET", &router.url("/api/usage"), "", &[]).status,
        401
    );

    // A usage stream opened with the old key ends when a reload changes the key.
    let url = router.url("/api/usage-stream");
    let watcher = std::thread::spawn(move || {
        let r = ureq::get(&url)
            .set("authorization", "Bearer a")
            .call()
            .unwrap();
        std::io::read_to_string(r.into_reader()).unwrap()
    });
    std::thread::sleep(Duration::from_millis(300));
    rewrite(
        &router,
        &config_for(&[m.url()], "nomyo-router-api-key: b\n"),
    );
    let r = request("POST", &router.url("/api/config/reload"), "", &a);
    assert_eq!(r.status, 200, "{}", r.body);
    let events = watcher.join().unwrap();
    assert!(events.starts_with("retry: 2000\ndata: {"), "{events}");
}
