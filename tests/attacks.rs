//! The attack table: smuggling, oversized and malformed framing, auth bypass attempts and invalid
//! UTF-8, sent raw to a router with a key. Each gets its 4xx, and afterwards every worker answers,
//! nothing is held, and neither the key nor a prompt appears in any log line or error body, with
//! logging at trace level.

mod common;

use std::time::{Duration, Instant};

use common::*;

const KEY: &str = "k3y-that-must-never-leak";
const PROMPT: &str = "prompt-that-must-never-leak";

struct Attack {
    name: &'static str,
    request: Vec<u8>,
    status: u16,
}

fn attack(name: &'static str, request: impl Into<Vec<u8>>, status: u16) -> Attack {
    Attack {
        name,
        request: request.into(),
        status,
    }
}

/// A request with the router key and `head_lines` (each ending in CRLF), closing after.
fn keyed(request_line: &str, head_lines: &str, body: &[u8]) -> Vec<u8> {
    let mut r = format!(
        "{request_line}\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\nConnection: close\r\n{head_lines}\r\n"
    )
    .into_bytes();
    r.extend_from_slice(body);
    r
}

fn get_as(path: &str, head_lines: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{head_lines}\r\n").into_bytes()
}

fn chat_body() -> String {
    format!(r#"{{"model":"m","stream":false,"messages":[{{"role":"user","content":"{PROMPT}"}}]}}"#)
}

fn table() -> Vec<Attack> {
    let post = "POST /api/chat HTTP/1.1";
    let body = chat_body();
    let cl = |n: usize| format!("Content-Length: {n}\r\n");
    let many_headers: String = (0..100_000).map(|i| format!("X-{i}: v\r\n")).collect();
    let mut invalid_path = b"GET /api/t\xffgs HTTP/1.1\r\nHost: x\r\n\r\n".to_vec();
    invalid_path.extend_from_slice(b"");
    vec![
        // Framing and smuggling.
        attack(
            "CL and TE",
            keyed(
                post,
                &format!("{}Transfer-Encoding: chunked\r\n", cl(5)),
                b"0\r\n\r\n",
            ),
            400,
        ),
        attack(
            "TE and CL",
            keyed(
                post,
                &format!("Transfer-Encoding: chunked\r\n{}", cl(5)),
                b"0\r\n\r\n",
            ),
            400,
        ),
        attack(
            "two different Content-Lengths",
            keyed(post, &format!("{}{}", cl(2), cl(3)), b"{}"),
            400,
        ),
        attack(
            "Content-Length list",
            keyed(post, "Content-Length: 2, 3\r\n", b"{}"),
            400,
        ),
        attack(
            "signed Content-Length",
            keyed(post, "Content-Length: +2\r\n", b"{}"),
            400,
        ),
        attack(
            "TE chunked twice",
            keyed(
                post,
                "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
                b"0\r\n\r\n",
            ),
            501,
        ),
        attack(
            "TE gzip, chunked",
            keyed(post, "Transfer-Encoding: gzip, chunked\r\n", b"0\r\n\r\n"),
            501,
        ),
        attack(
            "space before the colon",
            keyed(post, "Transfer-Encoding : chunked\r\n", b"0\r\n\r\n"),
            400,
        ),
        attack(
            "obs-fold",
            keyed("GET /api/tags HTTP/1.1", "X-A: a\r\n b\r\n", b""),
            400,
        ),
        attack(
            "chunk size past u64",
            keyed(
                post,
                "Transfer-Encoding: chunked\r\n",
                b"fffffffffffffffffffff\r\n",
            ),
            400,
        ),
        attack(
            "chunk size over the body limit",
            keyed(
                post,
                "Transfer-Encoding: chunked\r\n",
                b"fffffffffffffff\r\nab",
            ),
            413,
        ),
        attack(
            "negative chunk size",
            keyed(post, "Transfer-Encoding: chunked\r\n", b"-1\r\n"),
            400,
        ),
        attack(
            "chunk size without digits",
            keyed(post, "Transfer-Encoding: chunked\r\n", b";ext\r\n"),
            400,
        ),
        attack(
            "bare LF in chunk framing",
            keyed(post, "Transfer-Encoding: chunked\r\n", b"2\n{}\n0\n\n"),
            400,
        ),
        attack(
            "100k headers",
            format!("GET /api/tags HTTP/1.1\r\nHost: x\r\n{many_headers}\r\n"),
            431,
        ),
        attack(
            "no Host",
            b"GET /api/version HTTP/1.1\r\nConnection: close\r\n\r\n".to_vec(),
            400,
        ),
        attack(
            "two Hosts",
            keyed("GET /api/version HTTP/1.1", "Host: y\r\n", b""),
            400,
        ),
        attack(
            "NUL in a header value",
            keyed("GET /api/tags HTTP/1.1", "X-A: a\0b\r\n", b""),
            400,
        ),
        // Auth bypass attempts.
        attack("no key", get_as("/api/tags", ""), 401),
        attack(
            "lower-case scheme",
            get_as("/api/tags", &format!("Authorization: bearer {KEY}\r\n")),
            200,
        ),
        attack(
            "upper-case scheme, extra spaces",
            get_as("/api/tags", &format!("Authorization: BEARER   {KEY} \r\n")),
            200,
        ),
        attack(
            "Basic scheme",
            get_as("/api/tags", &format!("Authorization: Basic {KEY}\r\n")),
            401,
        ),
        attack(
            "empty bearer",
            get_as("/api/tags", "Authorization: Bearer \r\n"),
            401,
        ),
        attack(
            "key with a suffix",
            get_as("/api/tags", &format!("Authorization: Bearer {KEY}x\r\n")),
            403,
        ),
        attack(
            "key prefix",
            get_as(
                "/api/tags",
                &format!("Authorization: Bearer {}\r\n", &KEY[..5]),
            ),
            403,
        ),
        attack(
            "two Authorization headers",
            get_as(
                "/api/tags",
                &format!("Authorization: Bearer {KEY}\r\nAuthorization: Bearer x\r\n"),
            ),
            400,
        ),
        attack("empty query key", get_as("/api/tags?api_key=", ""), 401),
        attack(
            "query key",
            get_as(&format!("/api/tags?api_key={KEY}"), ""),
            200,
        ),
        attack(
            "encoded query key name",
            get_as(&format!("/api/tags?api%5Fkey={KEY}"), ""),
            200,
        ),
        attack(
            "two query keys",
            get_as(&format!("/api/tags?api_key={KEY}&api_key={KEY}"), ""),
            400,
        ),
        attack(
            "wrong header, right query: the header wins",
            get_as(
                &format!("/api/tags?api_key={KEY}"),
                "Authorization: Bearer nope\r\n",
            ),
            403,
        ),
        attack(
            "malformed escapes",
            get_as("/api/tags?api_key=%€x%", ""),
            403,
        ),
        attack("encoded public path", get_as("/%68ealth", ""), 401),
        attack("double slash", get_as("//api/tags", ""), 401),
        attack("dot segments", get_as("/health/../api/tags", ""), 401),
        attack("absolute form", get_as("http://x/api/tags", ""), 401),
        attack("public route", get_as("/health", ""), 200),
        attack(
            "a body is neither read nor asked for before auth",
            b"POST /api/chat HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 1000000\r\n\r\n".to_vec(),
            401,
        ),
        // Invalid UTF-8 and JSON.
        attack("invalid UTF-8 in the path", invalid_path, 400),
        attack(
            "invalid UTF-8 in the key",
            get_as("/api/tags", "Authorization: Bearer \u{fffd}\r\n"),
            403,
        ),
        attack(
            "invalid UTF-8 in the body",
            keyed(post, &cl(4), b"{\"\xff\"}"),
            400,
        ),
        attack(
            "lone surrogate in JSON",
            keyed(post, &cl(31), br#"{"model":"\ud800","messages":[]}"#),
            400,
        ),
        attack(
            "deep JSON nesting",
            {
                let nested = format!(
                    r#"{{"model":"m","messages":{}{}}}"#,
                    "[".repeat(100_000),
                    "]".repeat(100_000)
                );
                keyed(post, &cl(nested.len()), nested.as_bytes())
            },
            400,
        ),
        attack(
            "an ordinary chat",
            keyed(post, &cl(body.len()), body.as_bytes()),
            200,
        ),
    ]
}

#[test]
fn every_attack_gets_its_status_and_the_router_stays_whole() {
    let m = Mock::start(&["--models", "m"]);
    let yaml = config_for(
        &[m.url()],
        &format!("nomyo-router-api-key: {KEY}\nlimits:\n  max_body_bytes: 1048576\n"),
    );
    let router = Router::start_env(
        &yaml,
        &["--workers", "2", "--log-level", "trace"],
        &[("NOMYO_ROUTER_FAULT_INJECTION", "1")],
    );
    let mut failures = Vec::new();
    let mut answers = String::new();
    for a in table() {
        let response = raw(router.port, &a.request, Duration::from_secs(10));
        if status_of(&response) != a.status {
            failures.push(format!(
                "{}: expected {}, got {:?}",
                a.name,
                a.status,
                response.chars().take(200).collect::<String>()
            ));
        }
        answers.push_str(&response);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(
        !answers.contains(KEY) && !answers.contains(PROMPT),
        "an answer leaked"
    );

    // More traffic that carries the key and the prompt: streams, a translated-looking error, a
    // panic, a query key that must not reach the backend.
    let auth = format!("Bearer {KEY}");
    let body = chat_body();
    for fault in ["", "panic-upstream", "panic-body"] {
        let r = post_with(
            &router.url(&format!("/api/chat?api_key={KEY}")),
            &body,
            &[("Authorization", &auth), ("x-nomyo-fault", fault)],
        );
        assert!(
            !r.body.contains(KEY) && !r.body.contains(PROMPT),
            "{}",
            r.body
        );
    }
    let (_, lines) = stream_lines(
        &router.url("/api/chat"),
        &body.replace("\"stream\":false", "\"stream\":true"),
        &[("Authorization", &auth)],
    );
    assert!(!lines.is_empty());

    // Every worker answers and nothing is held.
    for i in 0..16 {
        let started = Instant::now();
        let r = request(
            "GET",
            &router.url("/api/version"),
            "",
            &[("Authorization", &auth)],
        );
        assert_eq!(r.status, 200, "connection {i}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }
    let u = router.wait_idle_as(&[("Authorization", &auth)]);
    assert_eq!(
        (u["total_in_flight"].as_u64(), u["total_queued"].as_u64()),
        (Some(0), Some(0)),
        "{u}"
    );
    assert!(
        m.stats()["auth"].to_string().find(KEY).is_none(),
        "the router key went upstream"
    );

    // Nothing secret in a full trace-level log.
    std::thread::sleep(Duration::from_millis(300));
    let log = router.log();
    assert!(
        log.lines().count() > 50,
        "trace logging wrote little: {log}"
    );
    for secret in [KEY, PROMPT] {
        if let Some(line) = log.lines().find(|l| l.contains(secret)) {
            panic!("the log leaked {secret:?}: {line}");
        }
    }
}
