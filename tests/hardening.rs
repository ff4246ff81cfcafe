//! Regressions of a hostile review: requests that stopped a worker, and clients whose slot or queue
//! place outlived them. Every worker must keep answering and every count must return to zero.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;

const KEY: &str = "s3cret-router-key";

fn keyed_router(m: &Mock, extra: &str, env: &[(&str, &str)]) -> Router {
    let yaml = config_for(&[m.url()], &format!("nomyo-router-api-key: {KEY}\n{extra}"));
    Router::start_env(&yaml, &["--workers", "2", "--log-level", "debug"], env)
}

fn authed_get(router: &Router, path: &str) -> Resp {
    request(
        "GET",
        &router.url(path),
        "",
        &[("Authorization", &format!("Bearer {KEY}"))],
    )
}

/// Many fresh connections (spread over the workers by the kernel) each get an answer promptly.
fn every_worker_answers(router: &Router) {
    for i in 0..16 {
        let started = Instant::now();
        let r = authed_get(router, "/api/tags");
        assert_eq!(r.status, 200, "connection {i}: {}", r.body);
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "connection {i} was slow"
        );
    }
}

#[test]
fn crafted_query_escapes_do_not_stop_workers() {
    let m = Mock::start(&["--models", "m"]);
    let router = keyed_router(&m, "", &[]);
    // Raw UTF-8 after '%' panicked the hand-rolled decoder and, with it, the whole worker.
    for target in [
        "/api/tags?api_key=%€x",
        "/api/tags?api_key=%",
        "/api/tags?api_key=%e2%82",
    ] {
        for _ in 0..8 {
            let req = format!("GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
            let resp = raw(router.port, req.as_bytes(), Duration::from_secs(5));
            assert_eq!(status_of(&resp), 403, "{target}: {resp}");
        }
    }
    every_worker_answers(&router);
    let log = router.log();
    assert!(!log.contains("panic"), "{log}");
}

#[test]
fn an_injected_panic_answers_500_and_the_worker_lives_on() {
    let m = Mock::start(&["--models", "m", "--tokens", "50", "--token-delay-ms", "20"]);
    let router = keyed_router(&m, "", &[("NOMYO_ROUTER_FAULT_INJECTION", "1")]);
    let auth = format!("Bearer {KEY}");
    let body =
        r#"{"model":"m","messages":[{"role":"user","content":"my secret prompt"}],"stream":false}"#;
    for _ in 0..6 {
        let r = post_with(
            &router.url("/api/chat"),
            body,
            &[
                ("Authorization", &auth),
                ("x-nomyo-fault", "panic-upstream"),
            ],
        );
        assert_eq!(r.status, 500, "{}", r.body);
        assert!(r.json()["error"]
            .as_str()
            .unwrap()
            .contains("internal error"));
        // OpenAI routes answer in their own format.
        let r = post_with(
            &router.url("/v1/chat/completions"),
            r#"{"model":"m","messages":[]}"#,
            &[
                ("Authorization", &auth),
                ("x-nomyo-fault", "panic-upstream"),
            ],
        );
        assert_eq!(r.status, 500, "{}", r.body);
        assert_eq!(r.json()["error"]["type"], "api_error");
    }
    // A panic in the middle of a relayed stream: the body is cut short, the slot comes back.
    for _ in 0..6 {
        let (status, lines) = stream_lines(
            &router.url("/api/chat"),
            r#"{"model":"m","messages":[]}"#,
            &[("Authorization", &auth), ("x-nomyo-fault", "panic-body")],
        );
        assert_eq!(status, 200);
        assert!(
            lines.iter().all(|l| !l.contains("\"done\":true")),
            "{lines:?}"
        );
    }
    let u = router.wait_idle_as(&[("Authorization", &auth)]);
    assert_eq!(u["total_in_flight"], 0, "{u}");
    every_worker_answers(&router);
    // Whole answers still work on every worker.
    for _ in 0..8 {
        let r = post_with(&router.url("/api/chat"), body, &[("Authorization", &auth)]);
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let log = router.log();
    assert!(log.contains("panicked"), "the panic was not logged: {log}");
    assert!(
        !log.contains("my secret prompt") && !log.contains(KEY),
        "{log}"
    );
}

/// A request followed by extra bytes (one stray byte, the legacy CRLF, a pipelined request), then
/// the client leaves: its slot must come back and the backend must see the cancellation.
#[test]
fn a_client_that_leaves_after_trailing_bytes_frees_its_slot() {
    let m = Mock::start(&[
        "--models",
        "m",
        "--tokens",
        "100",
        "--token-delay-ms",
        "100",
    ]);
    let router = Router::start(&config_for(&[m.url()], ""), &["--log-level", "warn"]);
    let body = r#"{"model":"m","messages":[],"stream":false}"#;
    let head = format!(
        "POST /api/chat HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let trailers: [&[u8]; 3] = [b"\r\n", b"x", b"GET /api/tags HTTP/1.1\r\nHost: x\r\n\r\n"];
    for (i, extra) in trailers.iter().enumerate() {
        let mut s = TcpStream::connect(("127.0.0.1", router.port)).unwrap();
        s.write_all(head.as_bytes()).unwrap();
        s.write_all(extra).unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while router.usage()["total_in_flight"] != 1 {
            assert!(Instant::now() < deadline, "request {i} never took its slot");
            std::thread::sleep(Duration::from_millis(20));
        }
        drop(s);
        let u = router.wait_idle();
        assert_eq!(
            u["total_in_flight"], 0,
            "trailer {i}: slot kept after the client left: {u}"
        );
    }
    // Every request that reached the backend (one may have been dropped before it was sent) is
    // cancelled there once the router drops its upstream connection.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let stats = m.stats();
        if stats["in_flight"] == 0 && stats["cancelled"] == stats["inference"] {
            break;
        }
        assert!(Instant::now() < deadline, "{stats}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A queued client that leaves after trailing bytes loses its place and is never sent upstream.
#[test]
fn a_queued_client_that_leaves_after_trailing_bytes_loses_its_place() {
    let m = Mock::start(&["--models", "m", "--tokens", "20", "--token-delay-ms", "50"]);
    let router = Router::start(&config_for(&[m.url()], ""), &["--log-level", "warn"]);
    let body = r#"{"model":"m","messages":[],"stream":false}"#;
    let head = format!(
        "POST /api/chat HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}\r\n",
        body.len()
    );
    // The first holds the one slot for about a second; the second waits in line, then leaves.
    let mut first = TcpStream::connect(("127.0.0.1", router.port)).unwrap();
    first.write_all(head.as_bytes()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while router.usage()["total_in_flight"] != 1 {
        assert!(
            Instant::now() < deadline,
            "the first request never took the slot"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut second = TcpStream::connect(("127.0.0.1", router.port)).unwrap();
    second.write_all(head.as_bytes()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while router.usage()["total_queued"] != 1 {
        assert!(Instant::now() < deadline, "the second request never queued");
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(second);
    let deadline = Instant::now() + Duration::from_secs(5);
    while router.usage()["total_queued"] != 0 {
        assert!(
            Instant::now() < deadline,
            "the queue place outlived its client"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut answer = Vec::new();
    first
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&answer).contains("\"done\":true") {
        match first.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
        }
    }
    assert!(String::from_utf8_lossy(&answer).contains("\"done\":true"));
    assert_eq!(router.wait_idle()["total_in_flight"], 0);
    // Only the first request ever reached the backend.
    assert_eq!(m.stats()["inference"], 1, "{}", m.stats());
}

/// At `limits.max_connections` with every connection busy, new clients wait in the backlog until a
/// connection closes (idle ones would be closed to make room: see below).
#[test]
fn clients_past_the_connection_limit_wait_for_a_free_place() {
    let m = Mock::start(&["--models", "m", "--tokens", "200", "--token-delay-ms", "50"]);
    let router = Router::start(
        &config_for(
            &[m.url()],
            "max_concurrent_connections: 32\nlimits:\n  max_connections: 16\n",
        ),
        &["--workers", "1", "--log-level", "warn"],
    );
    let body = r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"stream":true}"#;
    let req = format!(
        "POST /api/chat HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let held: Vec<TcpStream> = (0..16)
        .map(|_| {
            let mut s = TcpStream::connect(("127.0.0.1", router.port)).unwrap();
            s.write_all(req.as_bytes()).unwrap();
            s
        })
        .collect();
    // Each is being served or queued for a slot: busy either way.
    std::thread::sleep(Duration::from_millis(300));
    let mut late = TcpStream::connect(("127.0.0.1", router.port)).unwrap();
    late.write_all(b"GET /api/version HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    late.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut buf = [0u8; 1024];
    assert!(late.read(&mut buf).is_err(), "served past the limit");
    drop(held);
    late.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let n = late.read(&mut buf).expect("served once a place freed");
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
}

/// An OpenAI-compatible backend on a raw socket: it lists model `m`, and answers every other
/// request with `answer` (one connection per request).
fn scripted_openai_backend(answer: fn(&mut TcpStream)) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "http://127.0.0.1:{}/v1",
        listener.local_addr().unwrap().port()
    );
    std::thread::spawn(move || {
        for mut s in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut reader = std::io::BufReader::new(s.try_clone().unwrap());
                let (mut first, mut length) = (String::new(), 0usize);
                loop {
                    let mut line = String::new();
                    if std::io::BufRead::read_line(&mut reader, &mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    if first.is_empty() {
                        first = line.clone();
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap_or(0);
                    }
                    if line == "\r\n" {
                        break;
                    }
                }
                let mut body = vec![0u8; length];
                let _ = reader.read_exact(&mut body);
                if first.starts_with("GET") {
                    let list = r#"{"object":"list","data":[{"id":"m","object":"model"}]}"#;
                    let _ = write!(
                        s,
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{list}",
                        list.len()
                    );
                } else {
                    answer(&mut s);
                }
            });
        }
    });
    url
}

/// An SSE event longer than the translator's bound ends the translated stream with one error line
/// at once, and frees the slot, although the backend keeps the connection open.
#[test]
fn an_over_long_translated_event_ends_the_stream_once_and_frees_the_slot() {
    let url = scripted_openai_backend(|s| {
        let _ = s.write_all(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\ndata: ",
        );
        let block = vec![b'x'; 1 << 20];
        for _ in 0..17 {
            if s.write_all(&block).is_err() {
                return;
            }
        }
        // Holds the connection (and, before the fix, the router's slot) for a long time.
        std::thread::sleep(Duration::from_secs(20));
    });
    let router = Router::start(&config_for(&[url], ""), &["--log-level", "warn"]);
    let started = Instant::now();
    let (status, lines) = stream_lines(
        &router.url("/api/chat"),
        r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#,
        &[],
    );
    assert_eq!(status, 200);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].contains("over-long"), "{lines:?}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the stream waited for the backend"
    );
    assert_eq!(router.wait_idle()["total_in_flight"], 0);
}

fn read_to_close(s: &mut TcpStream, within: Duration) -> Option<String> {
    s.set_read_timeout(Some(within)).unwrap();
    let mut all = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return Some(String::from_utf8_lossy(&all).into_owned()),
            Ok(n) => all.extend_from_slice(&buf[..n]),
            Err(_) => return None,
        }
    }
}

#[test]
fn connections_that_send_nothing_cannot_take_every_place() {
    let m = Mock::start(&["--models", "m", "--tokens", "40", "--token-delay-ms", "50"]);
    let yaml = config_for(&[m.url()], "limits:\n  max_connections: 16\n");
    let router = Router::start(&yaml, &["--workers", "1"]);
    // A client being served holds its place: it is never closed to make room.
    let mut busy = TcpStream::connect(("127.0.0.1", router.port)).unwrap();
    let body = r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"stream":true}"#;
    let req = format!(
        "POST /api/chat HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    busy.write_all(req.as_bytes()).unwrap();
    let mut first = [0u8; 64];
    busy.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    assert!(busy.read(&mut first).unwrap() > 0, "the stream began");
    // More silent connections than places: the router is at its cap, the rest wait in the backlog.
    let mut silent: Vec<TcpStream> = (0..40)
        .map(|_| TcpStream::connect(("127.0.0.1", router.port)).unwrap())
        .collect();
    for i in 0..5 {
        let r = get(&router.url("/health"));
        assert_eq!(r.status, 200, "client {i} got in: {}", r.body);
    }
    let closed = silent
        .iter_mut()
        .map(|s| read_to_close(s, Duration::from_millis(300)))
        .filter(|r| r.as_deref() == Some(""))
        .count();
    assert!(closed > 0, "no silent connection was closed to make room");
    let rest = read_to_close(&mut busy, Duration::from_secs(10)).expect("the stream ended");
    assert!(
        rest.contains("\"done\":true"),
        "the busy stream was cut: {rest}"
    );
}

#[test]
fn a_new_connection_has_header_read_timeout_to_begin_its_request() {
    let m = Mock::start(&["--models", "m"]);
    let yaml = config_for(&[m.url()], "limits:\n  header_read_timeout: 1\n");
    let router = Router::start(&yaml, &["--workers", "1"]);
    let mut silent = TcpStream::connect(("127.0.0.1", router.port)).unwrap();
    // Within 20 s (it waited for the 75 s keep-alive idle time before).
    assert_eq!(
        read_to_close(&mut silent, Duration::from_secs(20)).as_deref(),
        Some(""),
        "a connection that sends nothing is closed"
    );
    assert_eq!(get(&router.url("/health")).status, 200);
}

#[test]
fn unknown_paths_and_wrong_methods_under_v1_answer_in_openai_format() {
    let m = Mock::start(&["--models", "m"]);
    let router = Router::start(&config_for(&[m.url()], ""), &["--workers", "1"]);
    for (method, path, status) in [
        ("GET", "/v1/chat/completions", 405),
        ("POST", "/v1/models", 405),
        ("GET", "/v1/nope", 404),
        ("GET", "/v1", 404),
        ("GET", "/rerank", 405),
    ] {
        let r = request(method, &router.url(path), "", &[]);
        assert_eq!(r.status, status, "{method} {path}: {}", r.body);
        let e = &r.json()["error"];
        assert!(e["message"].is_string(), "{method} {path}: {}", r.body);
        assert!(e.get("type").is_some(), "{method} {path}: {}", r.body);
    }
    let r = request("GET", &router.url("/api/nope"), "", &[]);
    assert_eq!(r.status, 404);
    assert!(
        r.json()["error"].is_string(),
        "Ollama routes keep Ollama's form"
    );
}

#[test]
fn large_bodies_share_one_budget_and_the_overflow_gets_503() {
    let m = Mock::start(&["--models", "m"]);
    let extra = "limits:\n  max_body_bytes: 1048576\n  max_buffered_body_bytes: 1048576\n";
    let router = Router::start(&config_for(&[m.url()], extra), &["--workers", "2"]);
    let body = format!(
        r#"{{"model":"m","messages":[{{"role":"user","content":"{}"}}],"stream":false}}"#,
        "x".repeat(700 << 10)
    );
    let head = format!(
        "POST /api/chat HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    // The first upload is half sent: it holds 700 KiB of the 1 MiB budget.
    let mut first = TcpStream::connect(("127.0.0.1", router.port)).unwrap();
    first.write_all(head.as_bytes()).unwrap();
    first.write_all(&body.as_bytes()[..1000]).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let second = raw(
        router.port,
        format!("{head}{body}").as_bytes(),
        Duration::from_secs(10),
    );
    assert_eq!(
        status_of(&second),
        503,
        "{}",
        &second[..second.len().min(300)]
    );
    assert!(second.to_ascii_lowercase().contains("retry-after"));
    // Small bodies are not held back meanwhile.
    let small = post(
        &router.url("/api/chat"),
        r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"stream":false}"#,
    );
    assert_eq!(small.status, 200, "{}", small.body);
    // The first upload completes, and its share is given back.
    first.write_all(&body.as_bytes()[1000..]).unwrap();
    let mut answer = [0u8; 12];
    first
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    first.read_exact(&mut answer).unwrap();
    assert_eq!(&answer, b"HTTP/1.1 200");
    let again = post(&router.url("/api/chat"), &body);
    assert_eq!(
        again.status,
        200,
        "{}",
        &again.body[..again.body.len().min(300)]
    );
}

#[test]
fn a_refused_head_still_gets_a_request_id() {
    let m = Mock::start(&["--models", "m"]);
    let router = Router::start(&config_for(&[m.url()], ""), &["--workers", "1"]);
    let resp = raw(
        router.port,
        b"GET /api/tags HTTP/1.1\r\nHost: x\r\nbad header\r\n\r\n",
        Duration::from_secs(5),
    );
    assert_eq!(status_of(&resp), 400, "{resp}");
    let id = resp
        .lines()
        .find_map(|l| l.strip_prefix("x-request-id: "))
        .unwrap_or_else(|| panic!("no x-request-id: {resp}"));
    assert_eq!(id.trim().len(), 16, "{resp}");
}
