//! Bad input as SPEC §7: a table of malformed requests, each with its expected status and error
//! body. None may crash the router, hang it, or leak a slot.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;

fn req(method: &str, path: &str, body: &str) -> Vec<u8> {
    format!("{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len())
        .into_bytes()
}

struct Case {
    name: &'static str,
    request: Vec<u8>,
    status: u16,
    /// Text the body must contain ("" = any).
    body: &'static str,
}

fn case(name: &'static str, request: Vec<u8>, status: u16, body: &'static str) -> Case {
    Case {
        name,
        request,
        status,
        body,
    }
}

fn table() -> Vec<Case> {
    let big_header = format!(
        "GET /api/tags HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(80 * 1024)
    );
    let many_headers = format!(
        "GET /api/tags HTTP/1.1\r\nHost: x\r\n{}\r\n",
        (0..150)
            .map(|i| format!("X-H{i}: v\r\n"))
            .collect::<String>()
    );
    let nested = format!(
        r#"{{"model":"m","messages":{}{}}}"#,
        "[".repeat(5000),
        "]".repeat(5000)
    );
    let huge_model = format!(r#"{{"model":"{}","messages":[]}}"#, "x".repeat(10_000));
    vec![
        case("garbage request line", b"GARBAGE\r\n\r\n".to_vec(), 400, ""),
        case("missing HTTP version", b"GET /api/tags\r\n\r\n".to_vec(), 400, ""),
        case("bad header line", b"GET /api/tags HTTP/1.1\r\nHost x\r\n\r\n".to_vec(), 400, ""),
        case("header too large", big_header.into_bytes(), 431, ""),
        case("too many headers", many_headers.into_bytes(), 431, ""),
        case(
            "declared body over the limit",
            b"POST /api/chat HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\nConnection: close\r\n\r\n{".to_vec(),
            413,
            "exceeds the limit",
        ),
        case("chunked body over the limit", {
            let chunk = "a".repeat(600 * 1024);
            format!("POST /api/chat HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n{:x}\r\n{chunk}\r\n{:x}\r\n{chunk}\r\n0\r\n\r\n", chunk.len(), chunk.len()).into_bytes()
        }, 413, "exceeds the limit"),
        case("invalid JSON", req("POST", "/api/chat", "{\"model\":"), 400, "invalid JSON"),
        case("empty body", req("POST", "/api/chat", ""), 400, "empty"),
        case("JSON array body", req("POST", "/api/chat", "[1,2]"), 400, "JSON object"),
        case("JSON null body", req("POST", "/api/generate", "null"), 400, "JSON object"),
        case("missing model", req("POST", "/api/chat", r#"{"messages":[]}"#), 400, "model is required"),
        case("model is a number", req("POST", "/api/chat", r#"{"model":5,"messages":[]}"#), 400, "model must be a string"),
        case("stream is a string", req("POST", "/api/chat", r#"{"model":"m","stream":"yes"}"#), 400, "stream must be a boolean"),
        case("messages is a string", req("POST", "/api/chat", r#"{"model":"m","messages":"hi"}"#), 400, "messages must be an array"),
        case("options is an array", req("POST", "/api/generate", r#"{"model":"m","options":[1]}"#), 400, "options must be an object"),
        case("prompt is a number", req("POST", "/api/generate", r#"{"model":"m","prompt":1}"#), 400, "prompt must be a string"),
        case("embed without input", req("POST", "/api/embed", r#"{"model":"m"}"#), 400, "input is required"),
        case("openai chat without messages", req("POST", "/v1/chat/completions", r#"{"model":"m"}"#), 400, "invalid_request_error"),
        case("openai invalid JSON", req("POST", "/v1/chat/completions", "{nope"), 400, "invalid_request_error"),
        case("invalid UTF-8 in JSON", {
            let mut r = req("POST", "/api/chat", "{\"model\":\"m?\"}");
            let n = r.len();
            r[n - 3] = 0xff;
            r
        }, 400, "not UTF-8"),
        case("nesting deeper than the parser allows", req("POST", "/api/chat", &nested), 400, "invalid"),
        case("unknown model", req("POST", "/api/chat", r#"{"model":"nope","messages":[]}"#), 404, "not found"),
        case("huge model name", req("POST", "/api/chat", &huge_model), 404, "not found"),
        case("unknown route", req("GET", "/api/nothing", ""), 404, "no route"),
        case("wrong method on chat", req("GET", "/api/chat", ""), 405, "use POST"),
        case("wrong method on tags", req("DELETE", "/api/tags", ""), 405, "GET"),
        case("show without model", req("POST", "/api/show", "{}"), 400, "model is required"),
        case("copy without destination", req("POST", "/api/copy", r#"{"source":"m"}"#), 400, "destination"),
        case("pull with invalid JSON", req("POST", "/api/pull", "{"), 400, "invalid JSON"),
    ]
}

#[test]
fn malformed_requests_get_clear_errors_and_leak_nothing() {
    let m = Mock::start(&["--models", "m"]);
    let router = Router::start(
        &config_for(&[m.url()], "limits:\n  max_body_bytes: 1048576\n  max_header_bytes: 65536\n  max_headers: 100\n  header_read_timeout: 1s\n"),
        &["--log-level", "warn"],
    );
    let cases = table();
    assert!(cases.len() >= 25);
    let mut failures = Vec::new();
    for c in &cases {
        let response = raw(router.port, &c.request, Duration::from_secs(5));
        let status = status_of(&response);
        if status != c.status || !response.contains(c.body) {
            failures.push(format!(
                "{}: expected {} with {:?}, got {:?}",
                c.name,
                c.status,
                c.body,
                response.chars().take(300).collect::<String>()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // Nothing reached the backend, nothing is held, and the router still serves.
    assert_eq!(m.stats()["inference"], 0);
    assert_eq!(router.wait_idle()["total_in_flight"], 0);
    assert_eq!(get(&router.url("/health")).status, 200);
}

#[test]
fn slow_clients_are_cut_off_without_holding_anything() {
    let m = Mock::start(&["--models", "m"]);
    let router = Router::start(
        &config_for(&[m.url()], "limits:\n  header_read_timeout: 500ms\n"),
        &["--log-level", "warn"],
    );
    // Headers that never finish: the connection is closed after the header timeout.
    let mut s = TcpStream::connect(("127.0.0.1", router.port)).unwrap();
    s.write_all(b"POST /api/chat HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let started = Instant::now();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "slow headers were not cut off"
    );
    // A body that stalls: 408 in the route's format.
    let response = raw(
        router.port,
        b"POST /api/chat HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"model\":",
        Duration::from_secs(5),
    );
    assert_eq!(status_of(&response), 408, "{response}");
    assert!(response.contains("\"error\""));
    // A client that sends half a body and hangs up.
    {
        let mut s = TcpStream::connect(("127.0.0.1", router.port)).unwrap();
        s.write_all(b"POST /api/chat HTTP/1.1\r\nHost: x\r\nContent-Length: 50\r\n\r\n{\"mo")
            .unwrap();
    }
    assert_eq!(router.wait_idle()["total_in_flight"], 0);
    assert_eq!(get(&router.url("/health")).status, 200);
    assert_eq!(m.stats()["inference"], 0);
}

#[test]
fn a_refused_body_the_client_keeps_sending_gets_413_and_a_closed_connection() {
    let m = Mock::start(&["--models", "m"]);
    let router = Router::start(
        &config_for(&[m.url()], "limits:\n  max_body_bytes: 1048576\n"),
        &["--log-level", "warn"],
    );
    // The client sends all of a 4 MiB body the router refused on sight. The router answers at once,
    // then reads and drops the rest for a bounded time before closing (a close with unread bytes
    // resets the connection, which some client stacks answer by discarding the unread 413).
    for _ in 0..3 {
        let mut s = TcpStream::connect(("127.0.0.1", router.port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(b"POST /api/chat HTTP/1.1\r\nHost: x\r\nContent-Length: 4194304\r\n\r\n")
            .unwrap();
        let mut writer = s.try_clone().unwrap();
        let sender = std::thread::spawn(move || {
            let piece = vec![b'a'; 64 * 1024];
            for _ in 0..64 {
                if writer.write_all(&piece).is_err() {
                    return;
                }
            }
            let _ = writer.shutdown(std::net::Shutdown::Write);
        });
        let mut response = Vec::new();
        let _ = s.read_to_end(&mut response);
        sender.join().unwrap();
        let response = String::from_utf8_lossy(&response);
        assert_eq!(status_of(&response), 413, "{response}");
        assert!(response.contains("exceeds the limit"), "{response}");
    }
    assert_eq!(m.stats()["inference"], 0);
    assert_eq!(router.wait_idle()["total_in_flight"], 0);
}
