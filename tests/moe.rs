//! MOE (`moe-<model>` on chat): 2N+1 upstream requests spread over the endpoints with the model,
//! the final prompt built from the candidates' text, whole and streamed in both APIs, a failing
//! backend left out, a client that leaves cancelling every inner request.

mod common;

use std::io::Write;
use std::time::{Duration, Instant};

use common::*;

fn chat(model: &str, stream: bool) -> String {
    format!(
        r#"{{"model":"{model}","stream":{stream},"messages":[{{"role":"system","content":"be brief"}},{{"role":"user","content":"why is the sky blue?"}}]}}"#
    )
}

fn three(extra: &[&str]) -> Vec<Mock> {
    (0..3)
        .map(|i| {
            let mut args = vec!["--models", "m"];
            if i == 2 {
                args.extend_from_slice(extra);
            }
            Mock::start(&args)
        })
        .collect()
}

fn router_for(mocks: &[Mock]) -> Router {
    let urls: Vec<String> = mocks.iter().map(Mock::url).collect();
    Router::start(&config_for(&urls, "max_concurrent_connections: 1\n"), &[])
}

fn inference(mocks: &[Mock]) -> Vec<u64> {
    mocks
        .iter()
        .map(|m| m.stats()["inference"].as_u64().unwrap())
        .collect()
}

#[test]
fn candidates_and_critiques_spread_over_the_endpoints_and_feed_the_final_prompt() {
    let mocks = three(&[]);
    let router = router_for(&mocks);
    let r = post(&router.url("/api/chat"), &chat("moe-m", false));
    assert_eq!(r.status, 200, "{}", r.body);
    let moe = r.header("x-router-moe").unwrap().to_string();
    assert!(moe.starts_with("candidates=3;"), "{moe}");
    assert_eq!(r.json()["model"], "m");
    assert!(r.json()["message"]["content"]
        .as_str()
        .unwrap()
        .contains("tok0"));
    // 3 candidates, 3 critiques, 1 final; one slot per endpoint spreads them.
    let served = inference(&mocks);
    assert_eq!(served.iter().sum::<u64>(), 7, "{served:?}");
    assert!(served.iter().all(|&n| n >= 2), "{served:?}");
    let finals: Vec<String> = mocks
        .iter()
        .map(|m| m.stats()["last_user"].as_str().unwrap().to_string())
        .filter(|u| u.contains("<candidate_1>"))
        .collect();
    assert_eq!(finals.len(), 1, "one final prompt");
    let last = &finals[0];
    for n in 1..=3 {
        assert!(last.contains(&format!("<candidate_{n}>\ntok0")), "{last}");
        assert!(last.contains(&format!("<critique_{n}>\ntok0")), "{last}");
    }
    assert!(last.contains("why is the sky blue?"), "{last}");
    assert!(!last.contains("Object") && !last.contains("ChatResponse"));
    assert_eq!(router.wait_idle()["total_in_flight"], 0);
    // Nowhere in the listings.
    assert!(!get(&router.url("/api/tags")).body.contains("moe-"));
    assert!(!get(&router.url("/v1/models")).body.contains("moe-"));
}

#[test]
fn the_final_answer_streams_in_the_clients_format() {
    let mocks = three(&[]);
    let router = router_for(&mocks);
    let (status, lines) = stream_lines(&router.url("/api/chat"), &chat("moe-m", true), &[]);
    assert_eq!(status, 200);
    let last: serde_json::Value = serde_json::from_str(lines.last().unwrap()).unwrap();
    assert_eq!(last["done"], true, "{lines:?}");
    assert!(lines.len() > 2, "{lines:?}");
    let r = post(&router.url("/v1/chat/completions"), &chat("moe-m", true));
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.body.contains("data: {") && r.body.trim_end().ends_with("data: [DONE]"),
        "{}",
        r.body
    );
    let r = post(&router.url("/v1/chat/completions"), &chat("moe-m", false));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["object"], "chat.completion");
    assert_eq!(router.wait_idle()["total_in_flight"], 0);
}

#[test]
fn a_failing_backend_is_left_out_and_unknown_models_are_404() {
    let mocks = three(&["--fault", "500"]);
    let urls: Vec<String> = mocks.iter().map(Mock::url).collect();
    let router = Router::start(
        &config_for(
            &urls,
            "max_concurrent_connections: 1\nlimits:\n  max_retries: 0\n",
        ),
        &[],
    );
    let r = post(&router.url("/api/chat"), &chat("moe-m", false));
    assert_eq!(r.status, 200, "{}", r.body);
    let moe = r.header("x-router-moe").unwrap();
    assert!(
        moe.starts_with("candidates=2;") || moe.starts_with("candidates=3;"),
        "{moe}"
    );
    let r = post(&router.url("/api/chat"), &chat("moe-nothing", false));
    assert_eq!(r.status, 404, "{}", r.body);
    // Only chat has MOE.
    let r = post(
        &router.url("/api/generate"),
        r#"{"model":"moe-m","prompt":"hi"}"#,
    );
    assert_eq!(r.status, 404, "{}", r.body);
    assert_eq!(router.wait_idle()["total_in_flight"], 0);
}

#[test]
fn a_client_that_leaves_cancels_every_inner_request() {
    let mocks: Vec<Mock> = (0..3)
        .map(|_| {
            Mock::start(&[
                "--models",
                "m",
                "--tokens",
                "100",
                "--token-delay-ms",
                "100",
            ])
        })
        .collect();
    let router = router_for(&mocks);
    let body = chat("moe-m", false);
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", router.port)).unwrap();
    write!(
        conn,
        "POST /api/chat HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    // Every candidate is being generated on a backend.
    let generating = || -> u64 {
        mocks
            .iter()
            .map(|m| m.stats()["in_flight"].as_u64().unwrap())
            .sum()
    };
    while generating() != 3 {
        assert!(Instant::now() < deadline, "{}", router.usage());
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(conn);
    assert_eq!(router.wait_idle()["total_in_flight"], 0);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let cancelled: u64 = mocks
            .iter()
            .map(|m| m.stats()["cancelled"].as_u64().unwrap())
            .sum();
        if cancelled == 3 {
            break;
        }
        assert!(Instant::now() < deadline, "cancelled {cancelled}");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        inference(&mocks).iter().sum::<u64>(),
        3,
        "no critique or final began"
    );
}
