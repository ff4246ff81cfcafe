//! A soak of 2,000 mixed requests (streaming and not, OpenAI and Ollama, client aborts, backend 500s
//! and deaths mid-stream) against three mocks: every request gets a complete answer or a clean
//! error, and every slot counter and queue is back at zero afterwards.

mod common;

use std::io::{BufRead, BufReader};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;

#[derive(Default)]
struct Tally {
    complete: AtomicUsize,
    clean_errors: AtomicUsize,
    aborted_by_client: AtomicUsize,
}

fn chat(stream: bool) -> String {
    format!(r#"{{"model":"m","messages":[{{"role":"user","content":"hi"}}],"stream":{stream}}}"#)
}

/// One request of kind `i % 10`; panics on anything that is neither a full answer nor a clean error.
fn one(router: &Router, i: usize, tally: &Tally) {
    let chat_url = router.url("/api/chat");
    match i % 10 {
        0..=3 => {
            let r = post(&chat_url, &chat(false));
            assert_eq!(r.status, 200, "{}", r.body);
            assert_eq!(r.json()["done"], true);
            tally.complete.fetch_add(1, Ordering::Relaxed);
        }
        4 | 5 => {
            let (status, lines) = stream_lines(&chat_url, &chat(true), &[]);
            assert_eq!(status, 200);
            let last: serde_json::Value = serde_json::from_str(lines.last().unwrap()).unwrap();
            assert_eq!(last["done"], true, "{lines:?}");
            tally.complete.fetch_add(1, Ordering::Relaxed);
        }
        6 => {
            // Read the first chunk of a slow stream, then hang up.
            let resp = ureq::post(&chat_url)
                .set("x-mock-delay-ms", "20")
                .set("x-mock-tokens", "50")
                .send_string(&chat(true))
                .unwrap();
            let mut reader = BufReader::new(resp.into_reader());
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            assert!(line.contains("tok0"), "{line}");
            tally.aborted_by_client.fetch_add(1, Ordering::Relaxed);
        }
        7 => {
            let r = post_with(&chat_url, &chat(false), &[("x-mock-fault", "500")]);
            assert_eq!(r.status, 500);
            assert!(r.json()["error"].is_string());
            tally.clean_errors.fetch_add(1, Ordering::Relaxed);
        }
        8 => {
            let (status, lines) = stream_lines(
                &chat_url,
                &chat(true),
                &[("x-mock-fault", "die"), ("x-mock-tokens", "6")],
            );
            assert_eq!(status, 200);
            let last: serde_json::Value = serde_json::from_str(lines.last().unwrap()).unwrap();
            assert!(
                last["error"].as_str().unwrap().contains("mid-response"),
                "{lines:?}"
            );
            tally.clean_errors.fetch_add(1, Ordering::Relaxed);
        }
        _ => {
            let body = r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"stream":true}"#;
            let (status, lines) = stream_lines(&router.url("/v1/chat/completions"), body, &[]);
            assert_eq!(status, 200);
            assert_eq!(
                lines.last().map(String::as_str),
                Some("data: [DONE]"),
                "{lines:?}"
            );
            tally.complete.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[test]
fn two_thousand_mixed_requests_leave_nothing_behind() {
    let mocks: Vec<Mock> = (0..3)
        .map(|_| Mock::start(&["--models", "m", "--tokens", "4"]))
        .collect();
    let urls: Vec<String> = mocks.iter().map(Mock::url).collect();
    let router = Router::start(
        &config_for(&urls, "max_concurrent_connections: 3\n"),
        &["--log-level", "warn"],
    );
    let router = Arc::new(router);
    let tally = Arc::new(Tally::default());
    const THREADS: usize = 16;
    const TOTAL: usize = 2000;
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let (router, tally) = (router.clone(), tally.clone());
            std::thread::spawn(move || {
                for i in (t..TOTAL).step_by(THREADS) {
                    one(&router, i, &tally);
                }
            })
        })
        .collect();
    for h in handles {
        h.join()
            .expect("a request got neither a full answer nor a clean error");
    }
    let done = tally.complete.load(Ordering::Relaxed)
        + tally.clean_errors.load(Ordering::Relaxed)
        + tally.aborted_by_client.load(Ordering::Relaxed);
    assert_eq!(done, TOTAL);
    let usage = router.wait_idle();
    assert_eq!(usage["total_in_flight"], 0, "{usage}");
    assert_eq!(usage["total_queued"], 0, "{usage}");
    for (url, models) in usage["usage_counts"].as_object().unwrap() {
        for (model, v) in models.as_object().unwrap() {
            assert_eq!(*v, 0, "{url} {model}");
        }
    }
    // The backends saw every abort as a cancellation and hold nothing either.
    std::thread::sleep(Duration::from_millis(200));
    for m in &mocks {
        assert_eq!(m.stats()["in_flight"], 0);
    }
    assert_eq!(get(&router.url("/health")).status, 200);
}
