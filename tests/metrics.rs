//! `/metrics` (SPEC §8.3): valid Prometheus text (checked by `promtool`), counters that move as
//! requests pass, and no label value a client chose.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// `promtool check metrics` on `text`: its complaints, or nothing. A machine without promtool
/// fails the test with the command that installs it.
fn promtool(text: &str) -> String {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("promtool not found ({e}): apt-get install prometheus (scripts/test.sh does)")
        });
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() {
        String::new()
    } else {
        said
    }
}

fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|v| v.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

#[test]
fn metrics_are_valid_move_with_traffic_and_carry_no_client_strings() {
    let slow = Mock::start(&["--tokens", "5"]);
    let dead_port = free_port();
    let router = Router::start(
        &config_for(
            &[slow.url(), format!("http://127.0.0.1:{dead_port}")],
            "cache_enabled: true\ncache_backend: memory\n",
        ),
        &["--log-level", "warn"],
    );
    let before = get(&router.url("/metrics")).body;
    assert_eq!(promtool(&before), "", "{before}");
    let chat = r#"{"model":"llama3","messages":[{"role":"user","content":"a b"}],"stream":false}"#;
    for _ in 0..3 {
        assert_eq!(post(&router.url("/api/chat"), chat).status, 200);
    }
    // Hostile strings in every place a client controls: model, path, headers, query, key.
    let evil = "evil\"}\n{x=\"1";
    let body = serde_json::json!({"model": evil, "messages": []}).to_string();
    assert_eq!(
        post_with(
            &router.url("/api/chat?evil=1"),
            &body,
            &[
                ("x-request-id", "evil-id"),
                ("authorization", "Bearer evil-key")
            ]
        )
        .status,
        404
    );
    assert_eq!(get(&router.url("/evil/path")).status, 404);
    let text = get(&router.url("/metrics")).body;
    assert_eq!(promtool(&text), "", "{text}");
    assert!(!text.contains("evil"), "{text}");
    let ep = slow.url();
    let chat_ok =
        format!("nomyo_router_requests_total{{route=\"chat\",status=\"200\",endpoint=\"{ep}\"}}");
    // Three misses stored one answer; the two after it were hits (answered by the router).
    assert_eq!(value(&text, &chat_ok), 1.0, "{text}");
    assert_eq!(
        value(
            &text,
            "nomyo_router_requests_total{route=\"chat\",status=\"200\",endpoint=\"\"}"
        ),
        2.0
    );
    assert_eq!(
        value(
            &text,
            "nomyo_router_requests_total{route=\"chat\",status=\"404\",endpoint=\"\"}"
        ),
        1.0
    );
    assert_eq!(
        value(
            &text,
            "nomyo_router_cache_requests_total{result=\"hit_exact\"}"
        ),
        2.0
    );
    assert_eq!(
        value(
            &text,
            "nomyo_router_request_duration_seconds_count{route=\"chat\"}"
        ),
        4.0
    );
    assert_eq!(
        value(
            &text,
            "nomyo_router_request_duration_seconds_bucket{route=\"chat\",le=\"+Inf\"}"
        ),
        4.0
    );
    assert_eq!(
        value(
            &text,
            &format!("nomyo_router_endpoint_up{{endpoint=\"http://127.0.0.1:{dead_port}\"}}")
        ),
        0.0
    );
    assert_eq!(
        value(
            &text,
            &format!("nomyo_router_endpoint_up{{endpoint=\"{ep}\"}}")
        ),
        1.0
    );
    assert_eq!(
        value(
            &text,
            &format!("nomyo_router_model_loaded{{endpoint=\"{ep}\",model=\"llama3:latest\"}}")
        ),
        1.0
    );
    assert_eq!(
        value(
            &text,
            &format!("nomyo_router_slot_limit{{endpoint=\"{ep}\",model=\"llama3:latest\"}}")
        ),
        1.0
    );
    let tokens = format!(
        "nomyo_router_tokens_total{{endpoint=\"{ep}\",model=\"llama3:latest\",direction=\"output\"}}"
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while value(&get(&router.url("/metrics")).body, &tokens) != 5.0 {
        assert!(Instant::now() < deadline, "tokens not counted");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn upstream_failures_are_counted_by_reason() {
    let m = Mock::start(&[]);
    let router = Router::start(&config_for(&[m.url()], ""), &["--log-level", "warn"]);
    let chat = r#"{"model":"llama3","messages":[],"stream":false}"#;
    // A 500 is the backend's answer: relayed, and counted as a request with that status.
    let r = post_with(&router.url("/api/chat"), chat, &[("x-mock-fault", "500")]);
    assert_eq!(r.status, 500);
    // A connection closed without an answer is an upstream error.
    let r = post_with(
        &router.url("/api/chat"),
        chat,
        &[("x-mock-fault", "refuse")],
    );
    assert_eq!(r.status, 502, "{}", r.body);
    let (status, _) = stream_lines(
        &router.url("/api/chat"),
        r#"{"model":"llama3","messages":[]}"#,
        &[("x-mock-fault", "die")],
    );
    assert_eq!(status, 200);
    let text = get(&router.url("/metrics")).body;
    let ep = m.url();
    for reason in ["closed", "mid_body"] {
        let series =
            format!("nomyo_router_upstream_errors_total{{endpoint=\"{ep}\",reason=\"{reason}\"}}");
        assert_eq!(value(&text, &series), 1.0, "{reason}: {text}");
    }
    assert_eq!(
        value(
            &text,
            &format!("nomyo_router_upstream_requests_total{{endpoint=\"{ep}\"}}")
        ),
        3.0
    );
    assert_eq!(
        value(
            &text,
            &format!(
                "nomyo_router_requests_total{{route=\"chat\",status=\"500\",endpoint=\"{ep}\"}}"
            )
        ),
        1.0
    );
}

#[test]
fn two_hundred_idle_watchers_cost_no_request() {
    let m = Mock::start(&[]);
    let router = Router::start(&config_for(&[m.url()], ""), &["--log-level", "warn"]);
    let mut watchers: Vec<TcpStream> = (0..200)
        .map(|_| {
            let mut s = TcpStream::connect(("127.0.0.1", router.port)).unwrap();
            s.write_all(b"GET /api/usage-stream HTTP/1.1\r\nhost: x\r\n\r\n")
                .unwrap();
            s
        })
        .collect();
    // Each gets its snapshot.
    for s in &mut watchers {
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 4096];
        let mut seen = Vec::new();
        while !String::from_utf8_lossy(&seen).contains("\ndata: ") {
            let n = s.read(&mut buf).expect("a snapshot");
            assert!(n > 0);
            seen.extend_from_slice(&buf[..n]);
        }
    }
    let text = get(&router.url("/metrics")).body;
    assert_eq!(value(&text, "nomyo_router_usage_stream_watchers"), 200.0);
    let chat = r#"{"model":"llama3","messages":[],"stream":false}"#;
    for _ in 0..50 {
        assert_eq!(post(&router.url("/api/chat"), chat).status, 200);
    }
    watchers.truncate(10);
    // SIGTERM ends the open watchers' streams: the router stops at once, not after the grace
    // period (30 s).
    let started = Instant::now();
    router.stop();
    drop(watchers);
    assert!(started.elapsed() < Duration::from_secs(5));
}
