//! Operations: request logs (SPEC §8.2), graceful SIGTERM (§8.5), client auth (§5), the router's
//! own routes, management fan-out and merged listings.

mod common;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use common::*;

fn sigterm(pid: u32) {
    unsafe {
        libc::kill(pid as i32, libc::SIGTERM);
    }
}

#[test]
fn sigterm_lets_in_flight_streams_finish_then_exits_zero() {
    let m = Mock::start(&["--models", "m", "--tokens", "20", "--token-delay-ms", "40"]);
    let yaml = config_for(&[m.url()], "max_concurrent_connections: 16\n");
    let mut router = Router::start(&yaml, &["--log-format", "json"]);
    // Staggered streams end at different moments of the drain, one of them right as it polls.
    let streams: Vec<_> = (0..12)
        .map(|i| {
            let url = router.url("/api/chat");
            std::thread::sleep(Duration::from_millis(i * 7));
            std::thread::spawn(move || stream_lines(&url, r#"{"model":"m","messages":[]}"#, &[]))
        })
        .collect();
    let mut idle = std::net::TcpStream::connect(("127.0.0.1", router.port)).unwrap();
    idle.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    std::thread::sleep(Duration::from_millis(250));
    sigterm(router.pid());
    std::thread::sleep(Duration::from_millis(150));
    // No new connections once shutdown began.
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", router.port)).is_err(),
        "still accepting after SIGTERM"
    );
    // An open keep-alive connection still gets its answer, and is closed after it.
    idle.write_all(b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    idle.read_to_string(&mut answer).unwrap();
    let head = answer.to_ascii_lowercase();
    assert!(
        head.starts_with("http/1.1 200") && head.contains("connection: close"),
        "{answer}"
    );
    for stream in streams {
        let (status, lines) = stream.join().unwrap();
        assert_eq!(status, 200);
        assert_eq!(lines.len(), 21, "an in-flight stream was cut: {lines:?}");
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let code = loop {
        if let Some(s) = router.proc.child.try_wait().unwrap() {
            break s.code();
        }
        assert!(
            Instant::now() < deadline,
            "router did not exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(code, Some(0));
    let log = router.log();
    assert!(
        log.contains("shutting down") && log.contains("\"stopped\""),
        "{log}"
    );
}

#[test]
fn one_json_log_line_per_request_without_prompts_or_keys() {
    let m = Mock::start(&["--models", "m"]);
    let yaml = config_for(&[m.url()], "nomyo-router-api-key: top-secret-key\n");
    let router = Router::start(&yaml, &["--log-format", "json", "--log-level", "info"]);
    let body = r#"{"model":"m","messages":[{"role":"user","content":"private prompt text"}],"stream":false}"#;
    let r = post_with(
        &router.url("/api/chat?api_key=top-secret-key"),
        body,
        &[("x-request-id", "req-42")],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("x-request-id"), Some("req-42"));
    let deadline = Instant::now() + Duration::from_secs(5);
    let line = loop {
        let log = router.log();
        if let Some(l) = log.lines().find(|l| l.contains("req-42")) {
            break l.to_string();
        }
        assert!(
            Instant::now() < deadline,
            "no log line for the request:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["route"], "chat");
    assert_eq!(v["model"], "m");
    assert_eq!(v["endpoint"], m.url());
    assert_eq!(v["status"], 200);
    assert!(v["latency_ms"].is_string() || v["latency_ms"].is_number());
    assert_eq!(v["outcome"], "complete");
    let log = router.log();
    assert!(
        !log.contains("private prompt") && !log.contains("top-secret-key"),
        "{log}"
    );
    // The query-string key never reaches the backend either.
    assert!(m.stats()["auth"].as_array().unwrap().is_empty());
}

#[test]
fn router_key_guards_every_route_but_root_and_health() {
    let m = Mock::start(&["--models", "m"]);
    let router = Router::start(
        &config_for(&[m.url()], "nomyo-router-api-key: k1\n"),
        &["--log-level", "warn"],
    );
    assert_eq!(get(&router.url("/")).status, 200);
    assert_eq!(get(&router.url("/health")).status, 200);
    let r = get(&router.url("/api/tags"));
    assert_eq!(r.status, 401);
    assert!(r.json()["error"]
        .as_str()
        .unwrap()
        .contains("missing API key"));
    assert_eq!(
        request(
            "GET",
            &router.url("/api/tags"),
            "",
            &[("authorization", "Bearer nope")]
        )
        .status,
        403
    );
    let r = post(
        &router.url("/v1/chat/completions"),
        r#"{"model":"m","messages":[]}"#,
    );
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["error"]["type"], "authentication_error");
    assert_eq!(
        request(
            "GET",
            &router.url("/api/tags"),
            "",
            &[("authorization", "Bearer k1")]
        )
        .status,
        200
    );
    assert_eq!(get(&router.url("/api/tags?api_key=k1")).status, 200);
    // CORS preflight needs no key.
    let r = request(
        "OPTIONS",
        &router.url("/api/chat"),
        "",
        &[
            ("origin", "http://ui.local"),
            ("access-control-request-method", "POST"),
        ],
    );
    assert_eq!(r.status, 204);
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
}

#[test]
fn listings_merge_and_management_fans_out() {
    let a = Mock::start(&["--models", "llama3:latest,shared:1b", "--version", "0.6.5"]);
    let b = Mock::start(&[
        "--models",
        "qwen2:7b,shared:1b",
        "--loaded",
        "qwen2:7b,shared:1b",
        "--version",
        "0.5.12-rc1",
    ]);
    let router = Router::start(
        &config_for(&[a.url(), b.url()], ""),
        &["--log-level", "warn"],
    );
    let tags = get(&router.url("/api/tags")).json();
    let mut names: Vec<&str> = tags["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, vec!["llama3:latest", "qwen2:7b", "shared:1b"]);
    let ps = get(&router.url("/api/ps")).json();
    assert_eq!(ps["models"].as_array().unwrap().len(), 3, "{ps}");
    let details = get(&router.url("/api/ps_details")).json();
    assert_eq!(
        details["models"].as_array().unwrap().len(),
        4,
        "one per endpoint instance: {details}"
    );
    assert_eq!(
        get(&router.url("/api/version")).json()["version"],
        "0.5.12-rc1"
    );
    let models = get(&router.url("/v1/models")).json();
    assert_eq!(models["object"], "list");
    assert_eq!(models["data"].as_array().unwrap().len(), 3);
    assert_eq!(
        get(&router.url("/v1/models/qwen2:7b")).json()["id"],
        "qwen2:7b"
    );
    assert_eq!(get(&router.url("/v1/models/none")).status, 404);
    // Pull streams progress from both endpoints and one final status.
    let (status, lines) = stream_lines(&router.url("/api/pull"), r#"{"model":"shared:1b"}"#, &[]);
    assert_eq!(status, 200);
    assert_eq!(lines.last().unwrap(), r#"{"status":"success"}"#);
    assert_eq!(lines.iter().filter(|l| l.contains("success")).count(), 1);
    assert!(
        lines
            .iter()
            .filter(|l| l.contains("pulling manifest"))
            .count()
            == 2,
        "{lines:?}"
    );
    // Delete where the model lives on one endpoint only: success; nowhere: 404 naming each endpoint.
    assert_eq!(
        request(
            "DELETE",
            &router.url("/api/delete"),
            r#"{"model":"qwen2:7b"}"#,
            &[]
        )
        .status,
        200
    );
    let r = request(
        "DELETE",
        &router.url("/api/delete"),
        r#"{"model":"ghost"}"#,
        &[],
    );
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["endpoints"].as_array().unwrap().len(), 2);
    // Show goes to an endpoint that has the model.
    let r = post(&router.url("/api/show"), r#"{"model":"qwen2:7b"}"#);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-router-endpoint"), Some(b.url().as_str()));
    // /api/config names endpoints without secrets.
    let c = get(&router.url("/api/config")).json();
    assert_eq!(c["endpoints"].as_array().unwrap().len(), 2);
    assert_eq!(c["require_router_api_key"], false);
}

#[test]
fn the_worker_logs_its_io_driver() {
    let m = Mock::start(&["--models", "m"]);
    let router = Router::start_env(
        &config_for(&[m.url()], ""),
        &["--workers", "3"],
        &[("NOMYO_ROUTER_IO_DRIVER", "epoll")],
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while !router.log().contains("listening") {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(20));
    }
    let log = router.log();
    assert!(
        log.contains("driver=\"epoll\"") || log.contains("driver=epoll"),
        "{log}"
    );
    assert!(log.contains("workers=3"), "{log}");
    assert_eq!(
        post(
            &router.url("/api/chat"),
            r#"{"model":"m","messages":[],"stream":false}"#
        )
        .status,
        200
    );
}
